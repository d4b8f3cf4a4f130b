//! Mapping an RFC 7662 introspection response onto an [`AccessToken`] or a rejection reason.

use mcp_auth_core::{AccessToken, InvalidToken};
use serde_json::{Map, Value};

/// The checks applied to an active response.
#[derive(Debug, Clone)]
pub(crate) struct Checks {
    /// Accepted audiences; `None` only after `dangerous_skip_audience()`.
    pub(crate) audiences: Option<Vec<String>>,
    /// Required issuer, when configured.
    pub(crate) issuer: Option<String>,
    /// Clock leeway in seconds for `exp` and `nbf`.
    pub(crate) leeway_secs: u64,
}

/// What a well-formed response says about the token.
#[derive(Debug, Clone)]
pub(crate) enum Mapped {
    /// Active and acceptable. `exp` is the token's expiry, when the IdP gave one.
    Active {
        token: AccessToken,
        exp: Option<u64>,
    },
    /// Not acceptable, for this reason.
    Rejected(InvalidToken),
}

/// The body is not a JSON object: the IdP (or something in front of it) is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Garbage;

/// Maps the body of an HTTP 200 answer. `now` is seconds since the Unix epoch.
pub(crate) fn map_body(body: &[u8], checks: &Checks, now: u64) -> Result<Mapped, Garbage> {
    let obj: Map<String, Value> = serde_json::from_slice(body).map_err(|_| Garbage)?;
    Ok(map_object(obj, checks, now))
}

fn reject(reason: InvalidToken) -> Mapped {
    Mapped::Rejected(reason)
}

/// Maps a decoded response object.
pub(crate) fn map_object(obj: Map<String, Value>, checks: &Checks, now: u64) -> Mapped {
    match obj.get("active") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return reject(InvalidToken::Inactive),
        Some(_) | None => {
            // Fail closed: only a literal `true` means active (RFC 7662 §2.2 makes it REQUIRED).
            tracing::warn!(
                reason = "inactive",
                "introspection response has no boolean `active` member: treating the token as inactive"
            );
            return reject(InvalidToken::Inactive);
        }
    }

    if let Some(tt) = obj.get("token_type") {
        let Some(tt) = tt.as_str() else {
            return reject(InvalidToken::Type);
        };
        let lower = tt.to_ascii_lowercase();
        if lower.contains("refresh") {
            tracing::debug!(
                reason = "refresh_token",
                "introspection says this is a refresh token"
            );
            return reject(InvalidToken::RefreshToken);
        }
        if lower == "dpop" || lower == "n_a" {
            // DPoP-bound tokens need proof checking we do not implement; `N_A` (RFC 8693) is not
            // an access token at all.
            return reject(if lower == "dpop" {
                InvalidToken::SenderConstrained
            } else {
                InvalidToken::Type
            });
        }
    }
    if checks.audiences.is_none() && !obj.contains_key("token_type") {
        // Without an audience check, `token_type` is the only way to tell an access token from a
        // refresh token: oidc-provider, for one, answers `active: true` for a refresh token with
        // neither `aud` nor `token_type`. Fail closed.
        tracing::debug!(
            reason = "type",
            "no token_type in the response and the audience check is off"
        );
        return reject(InvalidToken::Type);
    }
    if obj.contains_key("cnf") {
        tracing::debug!(
            reason = "sender_constrained",
            "token is bound to a key (cnf)"
        );
        return reject(InvalidToken::SenderConstrained);
    }

    let exp = match numeric_date(&obj, "exp") {
        Ok(v) => v,
        Err(()) => return reject(InvalidToken::MissingClaim),
    };
    if let Some(exp) = exp
        && now >= exp.saturating_add(checks.leeway_secs)
    {
        tracing::debug!(reason = "expired", exp, now, "token rejected");
        return reject(InvalidToken::Expired);
    }
    match numeric_date(&obj, "nbf") {
        Ok(Some(nbf)) if nbf > now.saturating_add(checks.leeway_secs) => {
            tracing::debug!(reason = "not_yet_valid", nbf, now, "token rejected");
            return reject(InvalidToken::NotYetValid);
        }
        Ok(_) => {}
        Err(()) => return reject(InvalidToken::MissingClaim),
    }

    let iss = obj.get("iss").and_then(Value::as_str);
    if let Some(expected) = &checks.issuer
        && iss != Some(expected.as_str())
    {
        tracing::debug!(reason = "issuer", expected = %expected, found = ?iss, "token rejected");
        return reject(InvalidToken::Issuer);
    }

    let audiences = match obj.get("aud") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(_) => return reject(InvalidToken::Audience),
    };
    if let Some(accepted) = &checks.audiences
        && !audiences.iter().any(|a| accepted.contains(a))
    {
        tracing::debug!(reason = "audience", expected = ?accepted, found = ?audiences, "token rejected");
        return reject(InvalidToken::Audience);
    }

    let scopes: Vec<String> = match obj.get("scope") {
        None | Some(Value::Null) => Vec::new(),
        // RFC 7662 §2.2 / RFC 6749 §3.3: space-delimited; scope tokens may contain commas.
        Some(Value::String(s)) => s
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        // Some IdPs send an array; non-string items only ever remove privileges, so skip them.
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(_) => return reject(InvalidToken::MissingClaim),
    };

    let client_id = obj
        .get("client_id")
        .and_then(Value::as_str)
        .or_else(|| obj.get("azp").and_then(Value::as_str))
        .map(str::to_owned);

    let mut b = AccessToken::builder().scopes(scopes).audiences(audiences);
    if let Some(sub) = obj.get("sub").and_then(Value::as_str) {
        b = b.subject(sub);
    }
    if let Some(c) = client_id {
        b = b.client_id(c);
    }
    if let Some(iss) = iss {
        b = b.issuer(iss);
    }
    if let Some(exp) = exp {
        b = b.expires_at_unix(exp);
    }
    Mapped::Active {
        token: b.claims(obj).build(),
        exp,
    }
}

/// A NumericDate member: absent is `Ok(None)`, a non-negative number is `Ok(Some)`, anything
/// else is an error (fail closed).
fn numeric_date(obj: &Map<String, Value>, name: &str) -> Result<Option<u64>, ()> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(v) = n.as_u64() {
                Ok(Some(v))
            } else {
                match n.as_f64() {
                    Some(f) if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => {
                        Ok(Some(f as u64))
                    }
                    _ => Err(()),
                }
            }
        }
        Some(_) => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;
    const R: &str = "https://api.example.com/mcp";

    fn checks() -> Checks {
        Checks {
            audiences: Some(vec![R.to_owned()]),
            issuer: Some("https://idp.example.com".to_owned()),
            leeway_secs: 30,
        }
    }

    fn map(v: Value) -> Mapped {
        map_body(v.to_string().as_bytes(), &checks(), NOW).unwrap()
    }

    fn reason(v: Value) -> InvalidToken {
        match map(v) {
            Mapped::Rejected(r) => r,
            Mapped::Active { .. } => panic!("accepted"),
        }
    }

    fn good() -> Value {
        json!({
            "active": true, "sub": "alice", "client_id": "app", "scope": "todo:read todo:write",
            "iss": "https://idp.example.com", "aud": R, "exp": NOW + 600, "token_type": "Bearer"
        })
    }

    #[test]
    fn active_maps_every_field() {
        let Mapped::Active { token, exp } = map(good()) else {
            panic!("rejected")
        };
        assert_eq!(exp, Some(NOW + 600));
        assert_eq!(token.subject(), Some("alice"));
        assert_eq!(token.client_id(), Some("app"));
        assert_eq!(token.scopes(), ["todo:read", "todo:write"]);
        assert_eq!(token.issuer(), Some("https://idp.example.com"));
        assert_eq!(token.audiences(), [R]);
        assert_eq!(token.expires_at_unix(), Some(NOW + 600));
        assert_eq!(token.claim("token_type"), Some(&json!("Bearer")));
    }

    #[test]
    fn active_must_be_literal_true() {
        for active in [json!(false), json!("true"), json!(1), json!(null)] {
            let mut v = good();
            v["active"] = active.clone();
            assert_eq!(reason(v), InvalidToken::Inactive, "{active}");
        }
        let mut v = good();
        v.as_object_mut().unwrap().remove("active");
        assert_eq!(reason(v), InvalidToken::Inactive);
    }

    #[test]
    fn garbage_is_not_a_decision() {
        for body in [
            &b"<html>oops</html>"[..],
            b"[1,2]",
            b"\"active\"",
            b"",
            b"{\"active\":",
        ] {
            assert_eq!(map_body(body, &checks(), NOW).unwrap_err(), Garbage);
        }
    }

    #[test]
    fn refresh_and_sender_constrained_are_refused() {
        for tt in [
            "refresh_token",
            "urn:ietf:params:oauth:token-type:refresh_token",
        ] {
            let mut v = good();
            v["token_type"] = json!(tt);
            assert_eq!(reason(v), InvalidToken::RefreshToken);
        }
        let mut v = good();
        v["token_type"] = json!("DPoP");
        assert_eq!(reason(v), InvalidToken::SenderConstrained);
        let mut v = good();
        v["cnf"] = json!({"jkt": "abc"});
        assert_eq!(reason(v), InvalidToken::SenderConstrained);
    }

    #[test]
    fn time_checks_use_leeway() {
        let mut v = good();
        v["exp"] = json!(NOW - 10);
        assert!(matches!(map(v), Mapped::Active { .. }), "within leeway");
        let mut v = good();
        v["exp"] = json!(NOW - 30);
        assert_eq!(reason(v), InvalidToken::Expired);
        let mut v = good();
        v["nbf"] = json!(NOW + 20);
        assert!(matches!(map(v), Mapped::Active { .. }));
        let mut v = good();
        v["nbf"] = json!(NOW + 31);
        assert_eq!(reason(v), InvalidToken::NotYetValid);
        let mut v = good();
        v["exp"] = json!("soon");
        assert_eq!(reason(v), InvalidToken::MissingClaim);
        let mut v = good();
        v["exp"] = json!((NOW + 60) as f64 + 0.5);
        assert!(matches!(map(v), Mapped::Active { exp: Some(e), .. } if e == NOW + 60));
    }

    #[test]
    fn audience_is_required_and_matched() {
        let mut v = good();
        v["aud"] = json!(["https://other.example.com/mcp", R]);
        assert!(matches!(map(v), Mapped::Active { .. }));
        let mut v = good();
        v["aud"] = json!("https://other.example.com/mcp");
        assert_eq!(reason(v), InvalidToken::Audience);
        let mut v = good();
        v.as_object_mut().unwrap().remove("aud");
        assert_eq!(reason(v), InvalidToken::Audience);
        let mut v = good();
        v["aud"] = json!(7);
        assert_eq!(reason(v), InvalidToken::Audience);
        // The dangerous opt-out accepts a missing audience, but then insists on a `token_type`
        // (the shape of an oidc-provider refresh token: active, no aud, no token_type).
        let mut v = good();
        v.as_object_mut().unwrap().remove("aud");
        let skip = Checks {
            audiences: None,
            ..checks()
        };
        assert!(matches!(
            map_body(v.to_string().as_bytes(), &skip, NOW),
            Ok(Mapped::Active { .. })
        ));
        v.as_object_mut().unwrap().remove("token_type");
        assert!(matches!(
            map_body(v.to_string().as_bytes(), &skip, NOW),
            Ok(Mapped::Rejected(InvalidToken::Type))
        ));
    }

    #[test]
    fn issuer_checked_when_configured() {
        let mut v = good();
        v["iss"] = json!("https://evil.example.com");
        assert_eq!(reason(v), InvalidToken::Issuer);
        let mut v = good();
        v.as_object_mut().unwrap().remove("iss");
        assert_eq!(reason(v), InvalidToken::Issuer);
        let no_iss = Checks {
            issuer: None,
            ..checks()
        };
        let mut v = good();
        v["iss"] = json!("https://any.example.com");
        assert!(matches!(
            map_body(v.to_string().as_bytes(), &no_iss, NOW),
            Ok(Mapped::Active { .. })
        ));
    }

    #[test]
    fn scopes_as_string_or_array_and_client_id_fallback() {
        let mut v = good();
        v["scope"] = json!(["a", "b,c", 3]);
        v.as_object_mut().unwrap().remove("client_id");
        v["azp"] = json!("from-azp");
        let Mapped::Active { token, .. } = map(v) else {
            panic!()
        };
        assert_eq!(token.scopes(), ["a", "b,c"]);
        assert_eq!(token.client_id(), Some("from-azp"));
        let mut v = good();
        v.as_object_mut().unwrap().remove("client_id");
        v.as_object_mut().unwrap().remove("scope");
        let Mapped::Active { token, .. } = map(v) else {
            panic!()
        };
        assert!(token.scopes().is_empty());
        assert_eq!(token.client_id(), None, "never a placeholder");
        let mut v = good();
        v["scope"] = json!({"x": 1});
        assert_eq!(reason(v), InvalidToken::MissingClaim);
    }
}
