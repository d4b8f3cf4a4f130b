//! Mapping an RFC 7662 introspection response onto an [`AccessToken`] or a rejection reason.
//!
//! The introspection-only rules (`active`, `token_type`) are decided here; everything a response
//! shares with a JWT payload (time with leeway, issuer, audience, scopes, client, principal,
//! duplicate and `null` members) is core's identity model, [`mcp_auth_core::claims`].

use mcp_auth_core::claims::{ClaimRules, map_claims, parse_unique_object};
use mcp_auth_core::{AccessToken, InvalidToken};
use serde_json::{Map, Value};

/// The checks applied to an active response.
#[derive(Debug, Clone)]
pub(crate) struct Checks {
    /// Core's rules: accepted issuers (the vouching issuer fills in a missing `iss`), audiences
    /// (`None` only after `dangerous_skip_audience()`), leeway; `exp` optional.
    pub(crate) rules: ClaimRules,
    /// The configured issuer (discovery source), when set.
    pub(crate) issuer: Option<String>,
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

/// Maps the body of an HTTP 200 answer. `now` is seconds since the Unix epoch. An object with a
/// duplicate member is refused as malformed (the same rule as for a JWT payload).
pub(crate) fn map_body(body: &[u8], checks: &Checks, now: u64) -> Result<Mapped, Garbage> {
    match parse_unique_object(body) {
        Some(obj) => Ok(map_object(obj, checks, now)),
        None if serde_json::from_slice::<Map<String, Value>>(body).is_ok() => {
            tracing::debug!(
                reason = "malformed",
                "introspection response has a duplicate member"
            );
            Ok(reject(InvalidToken::Malformed))
        }
        None => Err(Garbage),
    }
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

    if let Some(tt) = obj.get("token_type").filter(|v| !v.is_null()) {
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
        if lower == "n_a" {
            // `N_A` (RFC 8693) is not an access token at all.
            return reject(InvalidToken::Type);
        }
        if lower == "dpop" && obj.get("cnf").is_none_or(Value::is_null) {
            // A DPoP token whose key binding the IdP does not tell: nothing to check a proof
            // against (RFC 9449 §6.2 puts `cnf.jkt` in the response).
            return reject(InvalidToken::SenderConstrained);
        }
    }
    if checks.rules.accepted_audiences().is_none()
        && obj.get("token_type").is_none_or(Value::is_null)
    {
        // Without an audience check, `token_type` is the only way to tell an access token from a
        // refresh token: oidc-provider, for one, answers `active: true` for a refresh token with
        // neither `aud` nor `token_type`. Fail closed.
        tracing::debug!(
            reason = "type",
            "no token_type in the response and the audience check is off"
        );
        return reject(InvalidToken::Type);
    }

    match map_claims(obj, &checks.rules, now) {
        Ok(token) => {
            let exp = token.expires_at_unix();
            Mapped::Active { token, exp }
        }
        Err(rejection) => {
            tracing::debug!(
                reason = rejection.reason.code(),
                "token rejected ({})",
                rejection.detail
            );
            reject(rejection.reason)
        }
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
            rules: ClaimRules::new([R])
                .issuers(["https://idp.example.com"])
                .implicit_issuer("https://idp.example.com")
                .require_exp(false),
            issuer: Some("https://idp.example.com".to_owned()),
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
        assert_eq!(reason(v), InvalidToken::Malformed);
        // The dangerous opt-out accepts a missing audience, but then insists on a `token_type`
        // (the shape of an oidc-provider refresh token: active, no aud, no token_type).
        let mut v = good();
        v.as_object_mut().unwrap().remove("aud");
        let skip = Checks {
            rules: ClaimRules::dangerous_any_audience()
                .issuers(["https://idp.example.com"])
                .require_exp(false),
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
        // Without `iss`, the configured endpoint vouches for its issuer.
        let mut v = good();
        v.as_object_mut().unwrap().remove("iss");
        let Mapped::Active { token, .. } = map(v) else {
            panic!("rejected")
        };
        assert_eq!(token.issuer(), Some("https://idp.example.com"));
    }

    #[test]
    fn duplicate_members_are_malformed() {
        let body = br#"{"active":true,"sub":"a","sub":"b","aud":"https://api.example.com/mcp"}"#;
        assert!(matches!(
            map_body(body, &checks(), NOW),
            Ok(Mapped::Rejected(InvalidToken::Malformed))
        ));
    }

    #[test]
    fn scopes_as_string_or_array_and_client_id_fallback() {
        let mut v = good();
        v["scope"] = json!(["a", "b,c", 3]);
        assert_eq!(
            reason(v),
            InvalidToken::Malformed,
            "a non-string scope item"
        );
        let mut v = good();
        v["scope"] = json!(["a", "b,c"]);
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
        assert_eq!(reason(v), InvalidToken::Malformed);
    }
}
