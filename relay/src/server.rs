//! Starting and stopping the relay: binds the listeners, spawns the HTTP server, the RTMP
//! server and the pull / file sources, and shuts them down together.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::app::AppState;
use crate::channel::{PublishPolicy, Registry};
use crate::config::Config;
use crate::metrics::Metrics;

/// A running relay.
pub struct Server {
    pub http_addr: SocketAddr,
    pub rtmp_addr: Option<SocketAddr>,
    pub app: AppState,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Server {
    /// Binds every listener and starts every task.
    pub async fn start(config: Config) -> std::io::Result<Server> {
        let registry = Arc::new(Registry::new(PublishPolicy {
            key: config.publish_key.clone(),
            channel_keys: config.channel_keys.clone(),
            takeover: config.takeover,
            delay_ms: config.delay_ms,
        }));
        let app = AppState {
            registry,
            metrics: Arc::new(Metrics::new()),
            www: config.www.clone(),
            admin_token: config.admin_token.clone(),
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();

        let http = TcpListener::bind(config.http).await?;
        let http_addr = http.local_addr()?;
        tasks.spawn(crate::http::serve::serve(
            http,
            crate::http::router(app.clone()),
            shutdown_rx.clone(),
        ));
        tracing::info!("HTTP on http://{http_addr} (WebSocket ws://{http_addr}/ws/NAME)");

        let rtmp_addr = match config.rtmp {
            Some(addr) => {
                let listener = TcpListener::bind(addr).await?;
                let bound = listener.local_addr()?;
                tasks.spawn(crate::ingest::rtmp::serve(
                    listener,
                    app.clone(),
                    shutdown_rx.clone(),
                ));
                tracing::info!("RTMP on rtmp://{bound}/live/NAME");
                Some(bound)
            }
            None => None,
        };
        if config.delay_ms == 0 {
            tasks.spawn(auto_delay(app.clone(), shutdown_rx.clone()));
        }
        for (name, url) in config.pulls.clone() {
            tasks.spawn(crate::ingest::pull::run(
                name,
                url,
                app.clone(),
                shutdown_rx.clone(),
            ));
        }
        for (name, path) in config.files.clone() {
            tasks.spawn(crate::ingest::file::run(
                name,
                path,
                config.loop_files,
                app.clone(),
                shutdown_rx.clone(),
            ));
        }
        Ok(Server {
            http_addr,
            rtmp_addr,
            app,
            shutdown,
            tasks,
        })
    }

    /// Stops accepting, ends every session and source, and waits for the tasks.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let deadline = tokio::time::sleep(std::time::Duration::from_secs(5));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = self.tasks.join_next() => if next.is_none() { break },
                _ = &mut deadline => {
                    tracing::warn!("shutdown: tasks still running after 5 s, aborting them");
                    self.tasks.abort_all();
                    break;
                }
            }
        }
    }
}

/// Automatic shared delay: once a second, every channel re-chooses D from its viewers.
async fn auto_delay(app: AppState, mut shutdown: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = every.tick() => {
                let now = std::time::Instant::now();
                for channel in app.registry.list() {
                    channel.auto_delay(now);
                }
            }
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}
