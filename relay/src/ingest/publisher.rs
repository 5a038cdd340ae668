//! What every ingest source shares: [`LivePublisher`] (a channel's publisher slot, counted
//! in the `publishers` gauge while it lives), the key a relay-run source presents, the
//! silence timeout and small URL and shutdown helpers.

use std::time::Duration;

use bytes::Bytes;
use lockstep_media::flv::TagKind;
use tokio::sync::watch;

use crate::app::AppState;
use crate::channel::{PublishError, Publisher};

/// A publisher (or a connection that has not published yet) silent this long is dropped.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A live [`Publisher`] counted in the `publishers` gauge for as long as it lives.
pub(crate) struct LivePublisher {
    pub publisher: Publisher,
    app: AppState,
}

impl LivePublisher {
    /// Claims `name` for `peer` with `key`, counting the publisher while it lives.
    pub fn claim(
        app: &AppState,
        name: &str,
        key: Option<&str>,
        peer: &str,
    ) -> Result<Self, PublishError> {
        let publisher = app.registry.publish(name, key, peer)?;
        app.metrics.publishers.inc();
        Ok(LivePublisher {
            publisher,
            app: app.clone(),
        })
    }

    /// Forwards one tag body, counting its bytes.
    pub fn push(&self, kind: TagKind, timestamp: u32, body: Bytes) -> Result<(), String> {
        self.count_bytes(body.len());
        self.publisher.push_tag(kind, timestamp, body)
    }

    /// Counts ingested bytes pushed by other means (an [`super::flv_stream::FlvIngest`]).
    pub fn count_bytes(&self, n: usize) {
        self.app.metrics.bytes_in.inc_by(n as u64);
    }

    pub fn channel_name(&self) -> &str {
        &self.publisher.channel().name
    }
}

impl Drop for LivePublisher {
    fn drop(&mut self) {
        self.app.metrics.publishers.dec();
    }
}

/// The key configured for `channel` (per-channel key, else the global key): what a source
/// the relay runs itself (pull, file) presents.
pub(crate) fn configured_key(app: &AppState, channel: &str) -> Option<String> {
    app.registry.expected_key(channel).cloned()
}

/// The value of `name` in a URL query string (`a=1&key=K`), without percent-decoding.
pub(crate) fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Resolves once shutdown is signalled (or the signal is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}
