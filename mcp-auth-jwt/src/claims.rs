//! JOSE header and claims parsing: strict base64url, duplicate members refused.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_auth_core::claims::parse_unique_object;
use serde::{Deserialize, de};
use serde_json::{Map, Value};

/// The header members we act on. Other members (`jku`, `x5u`, `jwk`, `x5c`, ...) are ignored:
/// keys come only from the configured sources. Duplicate members, whichever they are, make the
/// header malformed (RFC 7515 §4). `kid`, `typ` and `crit` set to `null` count as absent.
#[derive(Debug)]
pub(crate) struct Header {
    pub(crate) alg: String,
    pub(crate) kid: Option<String>,
    pub(crate) typ: Option<String>,
    pub(crate) crit: Option<Value>,
}

/// A member name, borrowed from the decoded header unless it holds escapes.
#[derive(Deserialize)]
struct Name<'a>(#[serde(borrow)] Cow<'a, str>);

// Read in one pass, without building a map of the whole header first (this runs for every
// never-seen token, before its signature is checked).
impl<'de> Deserialize<'de> for Header {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Header;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JOSE header object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
                let mut names: Vec<Cow<'de, str>> = Vec::with_capacity(4);
                let (mut alg, mut kid, mut typ, mut crit) = (None, None, None, None);
                while let Some(Name(name)) = map.next_key::<Name<'de>>()? {
                    match name.as_ref() {
                        "alg" => alg = Some(map.next_value::<String>()?),
                        "kid" => kid = map.next_value::<Option<String>>()?,
                        "typ" => typ = map.next_value::<Option<String>>()?,
                        "crit" => crit = map.next_value::<Option<Value>>()?,
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                    names.push(name);
                }
                // Sorted, any duplicate sits next to its twin: n log n whatever the header holds.
                names.sort_unstable();
                if names.windows(2).any(|w| w[0] == w[1]) {
                    return Err(de::Error::custom("duplicate member"));
                }
                Ok(Header {
                    alg: alg.ok_or_else(|| de::Error::missing_field("alg"))?,
                    kid,
                    typ,
                    crit,
                })
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
    // UTF-8 checked once, as in `parse_unique_object`.
    serde_json::from_str(std::str::from_utf8(&bytes).ok()?).ok()
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
    fn invalid_text_is_refused() {
        // Invalid UTF-8 inside a string, outside one, and a lone surrogate escape.
        for bytes in [
            &b"{\"sub\":\"a\xff\"}"[..],
            b"{\"sub\":\"a\"}\xc3",
            br#"{"sub":"\ud800"}"#,
        ] {
            assert!(parse_unique_object(bytes).is_none(), "{bytes:?}");
            let segment = URL_SAFE_NO_PAD.encode(bytes);
            assert!(parse_claims(&segment).is_none(), "{bytes:?}");
        }
        assert_eq!(
            parse_unique_object("{\"name\":\"Zoë \\u00e9\"}".as_bytes()).unwrap()["name"],
            "Zoë é"
        );
        let h = URL_SAFE_NO_PAD.encode(b"{\"alg\":\"RS256\",\"kid\":\"k\xff\"}");
        assert!(parse_header(&h).is_none());
    }

    fn header(json: &str) -> Option<Header> {
        parse_header(&URL_SAFE_NO_PAD.encode(json))
    }

    #[test]
    fn header_members() {
        let h = header(r#"{"alg":"RS256","kid":"k1","typ":"at+jwt","x5u":"https://x"}"#).unwrap();
        assert_eq!(
            (h.alg.as_str(), h.kid.as_deref(), h.typ.as_deref()),
            ("RS256", Some("k1"), Some("at+jwt"))
        );
        assert!(h.crit.is_none());
        let h = header(r#"{"alg":"RS256","kid":null,"typ":null,"crit":["exp"]}"#).unwrap();
        assert!(h.kid.is_none() && h.typ.is_none());
        assert_eq!(h.crit, Some(serde_json::json!(["exp"])));
        // `null` is no value for `crit` either: absent, as it always was.
        assert!(
            header(r#"{"alg":"RS256","crit":null}"#)
                .unwrap()
                .crit
                .is_none()
        );
        for bad in [
            r#"{"kid":"k1"}"#,
            r#"{"alg":null}"#,
            r#"{"alg":"RS256","kid":7}"#,
            r#"{"alg":"RS256","typ":["JWT"]}"#,
            r#"{"alg":"RS256","x5u":"a","x5u":"b"}"#,
            r#"{"alg":"RS256","\u0061lg":"none"}"#,
            r#"{"alg":"RS256","kid":"a","kid":"a"}"#,
            r#"{"alg":"RS256"} x"#,
            r#"["alg"]"#,
            r#"{"alg":"RS256","x":{"a":1,}}"#,
        ] {
            assert!(header(bad).is_none(), "{bad}");
        }
        // Duplicates inside a member's value are the value's business, not the header's.
        assert!(header(r#"{"alg":"RS256","x":{"a":1,"a":2}}"#).is_some());
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
