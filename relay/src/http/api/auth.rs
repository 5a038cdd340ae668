//! The admin token: when the relay has one, `/api/stats` and `/metrics` need it, as
//! `Authorization: Bearer TOKEN` or `?token=TOKEN`. Compared in constant time.

use std::collections::HashMap;

use axum::http::{header, HeaderMap};

use super::ApiError;
use crate::app::AppState;

/// Passes when no token is configured or the request carries the right one.
pub fn check(
    app: &AppState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<(), ApiError> {
    let Some(expected) = app.admin_token.as_deref() else {
        return Ok(());
    };
    let from_header = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(bearer);
    let from_query = params.get("token").map(String::as_str);
    // Every candidate is compared, so the time taken does not depend on which matched.
    let ok = from_header.chain(from_query).fold(false, |ok, given| {
        ok | constant_time_eq(given.as_bytes(), expected.as_bytes())
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// The token of an `Authorization: Bearer TOKEN` value (scheme case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Equality whose time depends only on the lengths, not on where the bytes differ.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        let g = given.get(i).copied().unwrap_or(!*e);
        diff |= g ^ e;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret1", b"secret"));
        assert!(!constant_time_eq(b"secre", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn parses_bearer() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }
}
