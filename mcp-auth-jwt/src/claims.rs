//! JOSE header and claims parsing: strict base64url, duplicate members refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_auth_core::claims::{UniqueObject, parse_unique_object};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The header members we act on. Other members (`jku`, `x5u`, `jwk`, `x5c`, ...) are ignored:
/// keys come only from the configured sources. Duplicate members make the header malformed.
#[derive(Debug, Deserialize)]
pub(crate) struct Header {
    pub(crate) alg: String,
    #[serde(default)]
    pub(crate) kid: Option<String>,
    #[serde(default)]
    pub(crate) typ: Option<String>,
    #[serde(default)]
    pub(crate) crit: Option<Value>,
}

/// Decodes one base64url segment (no padding, URL alphabet only).
pub(crate) fn b64url(segment: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(segment).ok()
}

/// Splits a compact JWS into its three segments: exactly two dots, header and payload non-empty.
pub(crate) fn split(token: &str) -> Option<(&str, &str, &str)> {
    let mut it = token.split('.');
    let (h, p, s) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || h.is_empty() || p.is_empty() {
        return None;
    }
    Some((h, p, s))
}

/// Parses the header segment; checks the header has unique members too.
pub(crate) fn parse_header(segment: &str) -> Option<Header> {
    let bytes = b64url(segment)?;
    let UniqueObject(map) = serde_json::from_slice(&bytes).ok()?;
    serde_json::from_value(Value::Object(map)).ok()
}

/// Parses the payload segment into its claims.
pub(crate) fn parse_claims(segment: &str) -> Option<Map<String, Value>> {
    parse_unique_object(&b64url(segment)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused() {
        assert!(parse_unique_object(br#"{"a":1,"a":2}"#).is_none());
        assert!(parse_unique_object(br#"{"a":1,"b":{"a":2}}"#).is_some());
        assert!(parse_unique_object(b"[1]").is_none());
        let dup_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","alg":"none"}"#);
        assert!(parse_header(&dup_header).is_none());
    }

    #[test]
    fn split_needs_three_segments() {
        assert!(split("a.b.c").is_some());
        assert!(split("a.b.").is_some());
        assert!(split("a.b").is_none());
        assert!(split("a.b.c.d").is_none());
        assert!(split(".b.c").is_none());
    }

    #[test]
    fn padding_is_refused() {
        assert!(b64url("YQ").is_some());
        assert!(b64url("YQ==").is_none());
        assert!(b64url("Y+Q").is_none());
    }
}
