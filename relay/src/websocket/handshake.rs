//! The opening handshake (RFC 6455 §4.2): checks the upgrade request, answers 101 with
//! `Sec-WebSocket-Accept` and the `lockstep.v1` subprotocol when offered, and hands over the
//! upgraded connection (the raw TCP stream when it is one, so writes need no lock).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Why an upgrade request was refused (answered with 400 / 426).
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("not a WebSocket upgrade request (GET with Upgrade: websocket)")]
    NotUpgrade,
    #[error("unsupported Sec-WebSocket-Version (13 is required)")]
    Version,
    #[error("missing or malformed Sec-WebSocket-Key")]
    Key,
    #[error("the connection cannot be upgraded")]
    NoUpgrade,
}

impl IntoResponse for HandshakeError {
    fn into_response(self) -> Response {
        let status = match self {
            HandshakeError::Version => StatusCode::UPGRADE_REQUIRED,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut r = (status, self.to_string()).into_response();
        if status == StatusCode::UPGRADE_REQUIRED {
            r.headers_mut()
                .insert("sec-websocket-version", HeaderValue::from_static("13"));
        }
        r
    }
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// An accepted upgrade: the 101 response to return, and the connection that follows it.
pub struct Upgrade {
    pub response: Response,
    pub on_upgrade: OnUpgrade,
}

/// Validates `req` and prepares the 101 answer, selecting `subprotocol` if the client
/// offered it.
pub fn accept(mut req: Request, subprotocol: &str) -> Result<Upgrade, HandshakeError> {
    let h = req.headers();
    if req.method() != Method::GET
        || !has_token(h, header::UPGRADE, "websocket")
        || !has_token(h, header::CONNECTION, "upgrade")
    {
        return Err(HandshakeError::NotUpgrade);
    }
    if h.get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        return Err(HandshakeError::Version);
    }
    let key = h
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|v| v.as_bytes().trim_ascii())
        .filter(|k| {
            base64::engine::general_purpose::STANDARD
                .decode(k)
                .is_ok_and(|d| d.len() == 16)
        })
        .ok_or(HandshakeError::Key)?;
    let accept = accept_key(key);
    let offered = has_token(h, header::SEC_WEBSOCKET_PROTOCOL, subprotocol);
    let on_upgrade = req
        .extensions_mut()
        .remove::<OnUpgrade>()
        .ok_or(HandshakeError::NoUpgrade)?;
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let rh = response.headers_mut();
    rh.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    rh.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        rh.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if offered {
        if let Ok(v) = HeaderValue::from_str(subprotocol) {
            rh.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
        }
    }
    Ok(Upgrade {
        response,
        on_upgrade,
    })
}

/// The two halves of an upgraded connection and any bytes the client sent early.
pub struct Halves {
    pub reader: Box<dyn AsyncRead + Send + Unpin>,
    pub writer: Box<dyn AsyncWrite + Send + Unpin>,
    pub early: Bytes,
    /// The halves are the TCP stream's own (no lock between reads and writes).
    pub lock_free: bool,
}

/// Waits for the upgrade and splits the connection: a plain TCP stream splits without a
/// lock; anything else (a TLS layer in front, say) through `tokio::io::split`.
pub async fn connect(on_upgrade: OnUpgrade) -> Result<Halves, hyper::Error> {
    let upgraded = on_upgrade.await?;
    match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            let (r, w) = parts.io.into_inner().into_split();
            Ok(Halves {
                reader: Box::new(r),
                writer: Box::new(w),
                early: parts.read_buf,
                lock_free: true,
            })
        }
        Err(upgraded) => {
            let (r, w) = tokio::io::split(TokioIo::new(upgraded));
            Ok(Halves {
                reader: Box::new(r),
                writer: Box::new(w),
                early: Bytes::new(),
                lock_free: false,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6455_example_key() {
        // RFC 6455 §1.3.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
