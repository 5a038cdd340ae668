//! Command line and config file. Every option can be given on the command line or in a TOML
//! file (`--config relay.toml`, same names with `_` for `-`); the command line wins.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;

/// Lockstep relay: takes a live stream in (RTMP from OBS or ffmpeg, FLV over HTTP, a pulled
/// URL or a file) and sends it to every browser over WebSocket with the least delay.
///
/// Publish with OBS: server rtmp://HOST:1935/live, stream key NAME?key=KEY.
/// Publish with ffmpeg: ffmpeg -re -i in.mp4 -c copy -f flv "rtmp://HOST:1935/live/NAME?key=KEY".
/// Watch: http://HOST:8080/?channel=NAME (player page), ws://HOST:8080/ws/NAME (protocol),
/// http://HOST:8080/live/NAME.flv (HTTP-FLV). Channels: http://HOST:8080/api/channels.
#[derive(Debug, Clone, Parser, Default)]
#[command(name = "lockstep-relay", version, about, long_about = None, verbatim_doc_comment)]
pub struct Cli {
    /// HTTP listen address: player page, WebSocket viewers, HTTP-FLV in and out, API.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// RTMP listen address for publishers (OBS, ffmpeg). "off" disables RTMP.
    #[arg(long, value_name = "ADDR|off")]
    pub rtmp: Option<String>,
    /// Key every publisher must give (`?key=KEY` in the URL or stream key).
    #[arg(long, env = "LOCKSTEP_PUBLISH_KEY", value_name = "KEY")]
    pub publish_key: Option<String>,
    /// TOML file mapping channel names to their own publish keys: `NAME = "KEY"`.
    #[arg(long, value_name = "FILE")]
    pub keys_file: Option<PathBuf>,
    /// A second publisher on a live channel replaces the first (default: it is refused).
    #[arg(long)]
    pub takeover: bool,
    /// Pull a channel from an HTTP-FLV or RTMP URL, reconnecting when it drops. Repeatable.
    #[arg(long, value_name = "NAME=URL")]
    pub pull: Vec<String>,
    /// Play a channel from an FLV file, paced in real time. Repeatable.
    #[arg(long, value_name = "NAME=PATH")]
    pub file: Vec<String>,
    /// Loop --file sources forever.
    #[arg(long = "loop")]
    pub loop_files: bool,
    /// Token required by /api/stats and /metrics (`Authorization: Bearer TOKEN` or `?token=`).
    #[arg(long, env = "LOCKSTEP_ADMIN_TOKEN", value_name = "TOKEN")]
    pub admin_token: Option<String>,
    /// Folder served at / (player page, dashboard).
    #[arg(long, value_name = "DIR")]
    pub www: Option<PathBuf>,
    /// Shared playout delay D, ms: every viewer shows the frame ingested at T at T + D.
    /// 0 (default): chosen automatically from what the viewers report they can hold.
    #[arg(long, value_name = "MS")]
    pub delay_ms: Option<u32>,
    /// TOML config file with any of the options above.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The options a TOML config file may hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    http: Option<SocketAddr>,
    rtmp: Option<String>,
    publish_key: Option<String>,
    keys_file: Option<PathBuf>,
    keys: Option<HashMap<String, String>>,
    takeover: Option<bool>,
    pull: Option<Vec<String>>,
    file: Option<Vec<String>>,
    #[serde(rename = "loop")]
    loop_files: Option<bool>,
    admin_token: Option<String>,
    www: Option<PathBuf>,
    delay_ms: Option<u32>,
}

/// The relay's resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub http: SocketAddr,
    pub rtmp: Option<SocketAddr>,
    pub publish_key: Option<String>,
    pub channel_keys: HashMap<String, String>,
    pub takeover: bool,
    pub pulls: Vec<(String, String)>,
    pub files: Vec<(String, PathBuf)>,
    pub loop_files: bool,
    pub admin_token: Option<String>,
    pub www: PathBuf,
    pub delay_ms: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

fn read_toml<T: for<'de> Deserialize<'de>>(path: &PathBuf) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.clone(),
        source,
    })
}

fn split_pair(s: &str, what: &str) -> Result<(String, String), ConfigError> {
    match s.split_once('=') {
        Some((name, value)) if crate::channel::valid_channel_name(name) && !value.is_empty() => {
            Ok((name.to_string(), value.to_string()))
        }
        _ => {
            Err(ConfigError::Invalid(format!(
            "--{what} expects NAME={}, with a channel name of letters, digits, _ - . (got {s:?})",
            what.to_uppercase().replace("PULL", "URL").replace("FILE", "PATH")
        )))
        }
    }
}

impl Config {
    pub fn from_cli(cli: Cli) -> Result<Self, ConfigError> {
        let file: FileConfig = match &cli.config {
            Some(p) => read_toml(p)?,
            None => FileConfig::default(),
        };
        let rtmp = match cli.rtmp.or(file.rtmp).as_deref() {
            Some("off") => None,
            Some(a) => Some(a.parse().map_err(|_| {
                ConfigError::Invalid(format!("--rtmp expects ADDR:PORT or off, got {a:?}"))
            })?),
            None => Some(SocketAddr::from(([127, 0, 0, 1], 1935))),
        };
        let mut channel_keys = file.keys.unwrap_or_default();
        if let Some(p) = cli.keys_file.or(file.keys_file) {
            let keys: HashMap<String, String> = read_toml(&p)?;
            channel_keys.extend(keys);
        }
        let mut pulls = Vec::new();
        for p in cli.pull.iter().chain(file.pull.iter().flatten()) {
            pulls.push(split_pair(p, "pull")?);
        }
        let mut files = Vec::new();
        for f in cli.file.iter().chain(file.file.iter().flatten()) {
            let (name, path) = split_pair(f, "file")?;
            files.push((name, PathBuf::from(path)));
        }
        let www = cli.www.or(file.www).unwrap_or_else(default_www);
        Ok(Config {
            http: cli
                .http
                .or(file.http)
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
            rtmp,
            publish_key: cli.publish_key.or(file.publish_key),
            channel_keys,
            takeover: cli.takeover || file.takeover.unwrap_or(false),
            pulls,
            files,
            loop_files: cli.loop_files || file.loop_files.unwrap_or(false),
            admin_token: cli.admin_token.or(file.admin_token),
            www,
            delay_ms: cli.delay_ms.or(file.delay_ms).unwrap_or(0),
        })
    }
}

/// `www/` next to the working directory, or the repository's `www/` when run from a checkout.
fn default_www() -> PathBuf {
    let here = PathBuf::from("www");
    if here.is_dir() {
        return here;
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../www"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("lockstep-relay").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn defaults_listen_on_localhost() {
        let c = Config::from_cli(cli(&[])).unwrap();
        assert_eq!(c.http, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.rtmp, Some("127.0.0.1:1935".parse().unwrap()));
        assert!(c.publish_key.is_none() && !c.takeover);
    }

    #[test]
    fn command_line_sources_and_rtmp_off() {
        let c = Config::from_cli(cli(&[
            "--http",
            "0.0.0.0:9000",
            "--rtmp",
            "off",
            "--publish-key",
            "k",
            "--pull",
            "cam=http://origin/live/cam.flv",
            "--file",
            "test=/tmp/a.flv",
            "--loop",
        ]))
        .unwrap();
        assert_eq!(c.http.port(), 9000);
        assert_eq!(c.rtmp, None);
        assert_eq!(c.publish_key.as_deref(), Some("k"));
        assert_eq!(
            c.pulls,
            vec![("cam".into(), "http://origin/live/cam.flv".into())]
        );
        assert_eq!(c.files, vec![("test".into(), PathBuf::from("/tmp/a.flv"))]);
        assert!(c.loop_files);
    }

    #[test]
    fn bad_pairs_are_explained() {
        let e = Config::from_cli(cli(&["--pull", "no-equals-sign"])).unwrap_err();
        assert!(e.to_string().contains("NAME=URL"), "{e}");
        let e = Config::from_cli(cli(&["--file", "bad/name=x.flv"])).unwrap_err();
        assert!(e.to_string().contains("NAME=PATH"), "{e}");
        let e = Config::from_cli(cli(&["--rtmp", "nowhere"])).unwrap_err();
        assert!(e.to_string().contains("--rtmp"), "{e}");
    }

    #[test]
    fn toml_file_and_keys_file_with_command_line_winning() {
        let dir = std::env::temp_dir().join(format!("lockstep-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let keys = dir.join("keys.toml");
        std::fs::write(&keys, "studio = \"s3cret\"\n").unwrap();
        let conf = dir.join("relay.toml");
        std::fs::write(
            &conf,
            format!(
                "http = \"127.0.0.1:7000\"\nrtmp = \"off\"\npublish_key = \"from-file\"\n\
                 keys_file = {:?}\ntakeover = true\ndelay_ms = 120\n[keys]\nlobby = \"l\"\n",
                keys.to_str().unwrap()
            ),
        )
        .unwrap();
        let c = Config::from_cli(cli(&[
            "--config",
            conf.to_str().unwrap(),
            "--publish-key",
            "from-cli",
        ]))
        .unwrap();
        assert_eq!(c.http.port(), 7000);
        assert_eq!(c.rtmp, None);
        assert_eq!(c.publish_key.as_deref(), Some("from-cli"));
        assert_eq!(
            c.channel_keys.get("studio").map(String::as_str),
            Some("s3cret")
        );
        assert_eq!(c.channel_keys.get("lobby").map(String::as_str), Some("l"));
        assert!(c.takeover);
        assert_eq!(c.delay_ms, 120);
        std::fs::write(&conf, "htp = \"typo\"\n").unwrap();
        let e = Config::from_cli(cli(&["--config", conf.to_str().unwrap()])).unwrap_err();
        assert!(e.to_string().contains("relay.toml"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
