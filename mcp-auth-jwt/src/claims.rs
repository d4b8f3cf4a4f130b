//! JOSE header and claims parsing: strict base64url, duplicate members refused.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
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

/// A JSON object whose top-level members must be unique (RFC 7519 §4 lets a parser reject
/// duplicates, and two `aud` or `sub` members are a classic confusion attack).
pub(crate) struct UniqueObject(pub(crate) Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<UniqueObject, A::Error> {
                let mut map = Map::new();
                while let Some(key) = access.next_key::<String>()? {
                    let value: Value = access.next_value()?;
                    if map.insert(key, value).is_some() {
                        return Err(serde::de::Error::custom("duplicate member"));
                    }
                }
                Ok(UniqueObject(map))
            }
        }
        d.deserialize_map(V)
    }
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
    let bytes = b64url(segment)?;
    serde_json::from_slice::<UniqueObject>(&bytes)
        .ok()
        .map(|o| o.0)
}

/// A NumericDate claim (RFC 7519 §2) as whole seconds. `Err` when present with the wrong type.
pub(crate) fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, ()> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                Ok(Some(u))
            } else if let Some(f) = n.as_f64() {
                if f.is_finite() && (0.0..1e15).contains(&f) {
                    Ok(Some(f as u64))
                } else {
                    Err(())
                }
            } else {
                Err(())
            }
        }
        Some(_) => Err(()),
    }
}

/// `aud` as a list (a string or an array of strings). `Err` on any other shape.
pub(crate) fn string_or_array(v: &Value) -> Result<Vec<String>, ()> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned).ok_or(()))
            .collect(),
        _ => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused() {
        assert!(serde_json::from_str::<UniqueObject>(r#"{"a":1,"a":2}"#).is_err());
        assert!(serde_json::from_str::<UniqueObject>(r#"{"a":1,"b":{"a":2}}"#).is_ok());
        assert!(serde_json::from_str::<UniqueObject>("[1]").is_err());
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
