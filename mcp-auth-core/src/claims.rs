//! The identity model shared by every verifier: one mapping from claims (a verified JWT payload
//! or an RFC 7662 introspection response) to an [`AccessToken`], with the time, issuer and
//! audience checks decided once.
//!
//! `mcp-auth-jwt` and `mcp-auth-introspect` both call [`map_claims`], so a rule holds for JWTs
//! and opaque tokens alike:
//!
//! | claim | rule |
//! |---|---|
//! | any member set to `null` | treated as absent |
//! | duplicate members | the whole object is refused ([`parse_unique_object`]) |
//! | `exp`, `nbf`, `iat` | NumericDate (RFC 7519 §2): a non-negative number, fractions truncated; any other type is refused (`missing_claim`); `exp` + leeway must be after now, `nbf` and `iat` no later than now + leeway; `exp` is required when [`ClaimRules::require_exp`] says so (JWTs) |
//! | `iss` | a string (any other type: `issuer`); must be one of the accepted issuers; when absent, refused unless an [`implicit issuer`](ClaimRules::implicit_issuer) vouches (an introspection endpoint speaks for its issuer) |
//! | `aud` | a string or an array of strings (any other item refuses the token); absent: refused (`audience`) unless [`ClaimRules::audience_optional_for_allowed_clients`] lets a client allowlist stand in for it; at least one value must be an accepted audience |
//! | scopes | the first present claim of [`ClaimRules::scope_claims`] (default `scope`, then `scp`): a space-separated string or an array of strings; anything else refuses the token. Then every present claim of [`ClaimRules::extra_scope_claims`] (Auth0's `permissions`) is added, and a [`ClaimRules::strip_scope_prefix`] prefix is removed |
//! | `sub` | a string, or absent |
//! | client | the first present claim of [`ClaimRules::client_id_claims`] (default `client_id`, then `azp`): a string, or absent; never a placeholder; must be in [`ClaimRules::allowed_clients`] when that is set (`audience`) |
//! | required values | each [`ClaimRules::require_claim`] pair: the claim must be that exact string (Entra's `tid`, Cognito's `token_use`); absent or different: refused (`missing_claim`) |
//! | `cnf` | an object with exactly one member, `jkt`, holding a base64url SHA-256 key thumbprint: the token is DPoP-bound ([`AccessToken::dpop_thumbprint`](crate::AccessToken::dpop_thumbprint); RFC 9449 §6), and the bearer layer demands a proof signed by that key. Any other `cnf` (an mTLS `x5t#S256` binding, RFC 8705, a malformed `jkt`, another shape) is refused (`sender_constrained`): a binding this server cannot check |
//! | identity | `sub` makes a user [`Principal`](crate::Principal); without `sub`, the client id makes a machine principal (client credentials, RFC 7662 §2.2 makes `sub` optional); with neither the token is refused (`missing_claim`) |
//!
//! ```
//! use mcp_auth_core::claims::{ClaimRules, map_claims};
//! use serde_json::json;
//!
//! let rules = ClaimRules::new(["https://api.example.com/mcp", "api://todo"])
//!     .issuers(["https://tenant.example.com/"]);
//! let claims = json!({
//!     "iss": "https://tenant.example.com/", "sub": "auth0|42",
//!     "aud": ["api://todo", "https://tenant.example.com/userinfo"],
//!     "scope": "todo:read", "azp": "client-1", "exp": 4_102_444_800u64,
//! });
//! let token = map_claims(claims.as_object().unwrap().clone(), &rules, 1_800_000_000).unwrap();
//! assert_eq!(token.client_id(), Some("client-1"));
//! assert!(token.principal().unwrap().is_user());
//! ```

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::{AccessToken, InvalidToken};

/// Default clock-skew leeway for `exp`, `nbf` and `iat`, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;

/// Seconds since the Unix epoch (0 for a clock set before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What a verifier accepts: issuers, audiences, scope claim names, leeway. Built once at start-up.
///
/// ```
/// use mcp_auth_core::claims::ClaimRules;
/// let rules = ClaimRules::new(["https://api.example.com/mcp"])
///     .issuers(["https://idp.example.com"])
///     .leeway_secs(10);
/// assert_eq!(rules.accepted_audiences(), Some(&["https://api.example.com/mcp".to_owned()][..]));
/// ```
#[derive(Debug, Clone)]
pub struct ClaimRules {
    issuers: Vec<String>,
    implicit_issuer: Option<String>,
    audiences: Option<Arc<[String]>>,
    scope_claims: Vec<String>,
    leeway: u64,
    require_exp: bool,
    client_id_claims: Vec<String>,
    extra_scope_claims: Vec<String>,
    scope_prefix: Option<String>,
    required_values: Vec<(String, String)>,
    allowed_clients: Option<Arc<[String]>>,
    audience_optional: bool,
}

impl ClaimRules {
    /// Rules accepting `audiences` (at least one must appear in `aud`), no issuer yet (call
    /// [`issuers`](Self::issuers)), scopes from `scope` then `scp`, 30 s leeway, `exp` required.
    pub fn new<I, S>(audiences: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ClaimRules {
            issuers: Vec::new(),
            implicit_issuer: None,
            audiences: Some(audiences.into_iter().map(Into::into).collect()),
            scope_claims: vec!["scope".to_owned(), "scp".to_owned()],
            leeway: DEFAULT_LEEWAY_SECS,
            require_exp: true,
            client_id_claims: vec!["client_id".to_owned(), "azp".to_owned()],
            extra_scope_claims: Vec::new(),
            scope_prefix: None,
            required_values: Vec::new(),
            allowed_clients: None,
            audience_optional: false,
        }
    }

    /// Rules that accept any audience. Dangerous: only for verifiers whose caller checks the
    /// audience another way (the bearer layer still checks its resource's list).
    pub fn dangerous_any_audience() -> Self {
        ClaimRules {
            audiences: None,
            ..ClaimRules::new(Vec::<String>::new())
        }
    }

    /// The accepted issuers (`iss` must equal one exactly). Empty: any issuer (verifier builders
    /// only allow that through a `dangerous_*` call).
    pub fn issuers<I, S>(mut self, issuers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.issuers = issuers.into_iter().map(Into::into).collect();
        self
    }

    /// The issuer that vouches for claims carrying no `iss` (an introspection endpoint speaks
    /// for its authorization server). Unset: claims without `iss` are refused when issuers are
    /// configured.
    pub fn implicit_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.implicit_issuer = Some(issuer.into());
        self
    }

    /// Claim names read for scopes, first present wins (default `scope`, then `scp`).
    pub fn scope_claims<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scope_claims = names.into_iter().map(Into::into).collect();
        self
    }

    /// Clock-skew leeway for `exp`, `nbf` and `iat`, in seconds (default 30).
    pub fn leeway_secs(mut self, secs: u64) -> Self {
        self.leeway = secs;
        self
    }

    /// Whether `exp` must be present (default true; RFC 7662 makes it optional in responses).
    pub fn require_exp(mut self, on: bool) -> Self {
        self.require_exp = on;
        self
    }

    /// Claim names read for the client id, first present wins (default `client_id`, then
    /// `azp`; Okta's `cid`, Entra v1's `appid`).
    pub fn client_id_claims<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.client_id_claims = names.into_iter().map(Into::into).collect();
        self
    }

    /// Claims whose values are added to the scopes when present (Auth0's `permissions` array
    /// when RBAC is on). Same shapes as a scope claim.
    pub fn extra_scope_claims<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_scope_claims = names.into_iter().map(Into::into).collect();
        self
    }

    /// Removes `prefix` from the front of every scope that starts with it (Cognito's
    /// `<resource server>/<scope>`), so policies name the bare scope. Scopes without it are kept.
    pub fn strip_scope_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.scope_prefix = Some(prefix.into());
        self
    }

    /// The claim `name` must be the string `value` (Entra's `tid` = the tenant, Cognito's
    /// `token_use` = `access`). Cumulative.
    pub fn require_claim(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.required_values.push((name.into(), value.into()));
        self
    }

    /// The client id must be one of `clients` (Cognito's app client ids); a token naming no
    /// client, or another, is refused (`audience`).
    pub fn allowed_clients<I, S>(mut self, clients: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_clients = Some(clients.into_iter().map(Into::into).collect());
        self
    }

    /// Accept a token without `aud` when [`allowed_clients`](Self::allowed_clients) is set and
    /// its client is on the list (Cognito access tokens carry `client_id` and usually no `aud`).
    /// A present `aud` is still checked. Without an allowlist this has no effect: no `aud` is
    /// refused.
    pub fn audience_optional_for_allowed_clients(mut self, on: bool) -> Self {
        self.audience_optional = on;
        self
    }

    /// The client allowlist, if any.
    pub fn accepted_clients(&self) -> Option<&[String]> {
        self.allowed_clients.as_deref()
    }

    /// The accepted audiences, or `None` when any audience is accepted.
    pub fn accepted_audiences(&self) -> Option<&[String]> {
        self.audiences.as_deref()
    }

    /// The accepted issuers.
    pub fn accepted_issuers(&self) -> &[String] {
        &self.issuers
    }

    /// The leeway in seconds.
    pub fn leeway(&self) -> u64 {
        self.leeway
    }

    /// The scope claim names.
    pub fn scope_claim_names(&self) -> &[String] {
        &self.scope_claims
    }

    /// The client id claim names, first present wins.
    pub fn client_id_claim_names(&self) -> &[String] {
        &self.client_id_claims
    }

    /// The claims that must hold an exact value ([`require_claim`](Self::require_claim)).
    pub fn required_claims(&self) -> &[(String, String)] {
        &self.required_values
    }

    /// Whether `exp` is required.
    pub fn requires_exp(&self) -> bool {
        self.require_exp
    }

    /// Whether a token without `aud` is accepted when its client is allowed
    /// ([`audience_optional_for_allowed_clients`](Self::audience_optional_for_allowed_clients)).
    pub fn audience_optional(&self) -> bool {
        self.audience_optional
    }
}

/// Why [`map_claims`] refused: the reason (sent to the client as a fixed text) and a detail for
/// the server's log (expected versus found; never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimsRejection {
    /// The reason code.
    pub reason: InvalidToken,
    /// Expected versus found, for logs.
    pub detail: String,
}

fn refuse(reason: InvalidToken, detail: impl Into<String>) -> ClaimsRejection {
    ClaimsRejection {
        reason,
        detail: detail.into(),
    }
}

/// A member, with `null` meaning absent.
fn present<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    claims.get(name).filter(|v| !v.is_null())
}

/// A NumericDate member (RFC 7519 §2) as whole seconds: absent or `null` is `Ok(None)`, a
/// non-negative finite number is `Ok(Some)` (fractions truncated), anything else `Err`.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, ()> {
    match present(claims, name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                Ok(Some(u))
            } else {
                match n.as_f64() {
                    Some(f) if f.is_finite() && (0.0..1e15).contains(&f) => Ok(Some(f as u64)),
                    _ => Err(()),
                }
            }
        }
        Some(_) => Err(()),
    }
}

/// A string or an array of strings (`aud`, an array-valued scope claim). `Err` on any other
/// shape, including a non-string item.
fn string_or_array(v: &Value) -> Result<Vec<String>, ()> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned).ok_or(()))
            .collect(),
        _ => Err(()),
    }
}

fn optional_string(
    claims: &Map<String, Value>,
    name: &str,
) -> Result<Option<String>, ClaimsRejection> {
    match present(claims, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(refuse(
            InvalidToken::Malformed,
            format!("{name} is not a string"),
        )),
    }
}

/// The first present claim of `names` as a string (a non-string refuses the token).
fn first_string(
    claims: &Map<String, Value>,
    names: &[String],
) -> Result<Option<String>, ClaimsRejection> {
    for name in names {
        if let Some(v) = optional_string(claims, name)? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// A scope claim's values: a space-separated string or an array of strings.
fn scope_values(name: &str, v: &Value) -> Result<Vec<String>, ClaimsRejection> {
    match v {
        Value::String(s) => Ok(s.split_ascii_whitespace().map(str::to_owned).collect()),
        Value::Array(_) => match string_or_array(v) {
            Ok(list) => Ok(list.into_iter().filter(|s| !s.is_empty()).collect()),
            Err(()) => Err(refuse(
                InvalidToken::Malformed,
                format!("{name} holds a non-string"),
            )),
        },
        _ => Err(refuse(
            InvalidToken::Malformed,
            format!("{name} is not a string or an array"),
        )),
    }
}

fn escaped(v: &[String]) -> Vec<String> {
    v.iter().map(|a| a.escape_debug().to_string()).collect()
}

/// Maps claims onto an [`AccessToken`] after every check of the table in the [module
/// docs](self). `now` is seconds since the Unix epoch.
pub fn map_claims(
    claims: Map<String, Value>,
    rules: &ClaimRules,
    now: u64,
) -> Result<AccessToken, ClaimsRejection> {
    let leeway = rules.leeway;
    let exp = match numeric_date(&claims, "exp") {
        Ok(Some(e)) => Some(e),
        Ok(None) if !rules.require_exp => None,
        _ => {
            return Err(refuse(
                InvalidToken::MissingClaim,
                "exp missing or not a number",
            ));
        }
    };
    if let Some(exp) = exp
        && exp.saturating_add(leeway) <= now
    {
        return Err(refuse(
            InvalidToken::Expired,
            format!("exp {exp} is before now {now} (leeway {leeway}s)"),
        ));
    }
    for name in ["nbf", "iat"] {
        match numeric_date(&claims, name) {
            Ok(Some(t)) if t > now.saturating_add(leeway) => {
                return Err(refuse(
                    InvalidToken::NotYetValid,
                    format!("{name} {t} is after now {now} (leeway {leeway}s)"),
                ));
            }
            Ok(_) => {}
            Err(()) => {
                return Err(refuse(
                    InvalidToken::MissingClaim,
                    format!("{name} is not a number"),
                ));
            }
        }
    }
    let jkt = match present(&claims, "cnf") {
        None => None,
        Some(cnf) => Some(dpop_binding(cnf)?),
    };

    let iss = match present(&claims, "iss") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(refuse(InvalidToken::Issuer, "iss is not a string")),
    };
    let issuer = match iss {
        Some(iss) => {
            if !rules.issuers.is_empty() && !rules.issuers.contains(&iss) {
                return Err(refuse(
                    InvalidToken::Issuer,
                    format!(
                        "iss expected one of {:?}, found {:?}",
                        rules.issuers,
                        iss.escape_debug().to_string()
                    ),
                ));
            }
            Some(iss)
        }
        None => match &rules.implicit_issuer {
            Some(vouching) => Some(vouching.clone()),
            None if rules.issuers.is_empty() => None,
            None => {
                return Err(refuse(
                    InvalidToken::Issuer,
                    format!("iss expected one of {:?}, found none", rules.issuers),
                ));
            }
        },
    };

    let audiences = match present(&claims, "aud").map(string_or_array) {
        Some(Ok(a)) => a,
        Some(Err(())) => {
            return Err(refuse(
                InvalidToken::Malformed,
                "aud is not a string or an array of strings",
            ));
        }
        None => Vec::new(),
    };
    let client_id = first_string(&claims, &rules.client_id_claims)?;
    if let Some(allowed) = &rules.allowed_clients
        && !client_id.as_ref().is_some_and(|c| allowed.contains(c))
    {
        return Err(refuse(
            InvalidToken::Audience,
            format!(
                "client expected one of {:?}, found {:?}",
                allowed,
                client_id
                    .as_deref()
                    .map(str::escape_debug)
                    .map(|c| c.to_string())
            ),
        ));
    }
    // An allowlisted client stands in for a missing `aud` only when asked for (Cognito).
    let client_stands_in =
        audiences.is_empty() && rules.audience_optional && rules.allowed_clients.is_some();
    if let Some(accepted) = &rules.audiences
        && !client_stands_in
        && !audiences.iter().any(|a| accepted.contains(a))
    {
        return Err(refuse(
            InvalidToken::Audience,
            format!(
                "aud expected one of {:?}, found {:?}",
                accepted,
                escaped(&audiences)
            ),
        ));
    }

    for (name, value) in &rules.required_values {
        if optional_string(&claims, name)?.as_deref() != Some(value.as_str()) {
            return Err(refuse(
                InvalidToken::MissingClaim,
                format!("{name} must be {value:?}"),
            ));
        }
    }

    let subject = optional_string(&claims, "sub")?;
    if subject.is_none() && client_id.is_none() {
        return Err(refuse(
            InvalidToken::MissingClaim,
            format!(
                "neither sub nor {}: the token names no principal",
                rules.client_id_claims.join("/")
            ),
        ));
    }

    let mut scopes: Vec<String> = Vec::new();
    for name in &rules.scope_claims {
        let Some(v) = present(&claims, name) else {
            continue;
        };
        scopes = scope_values(name, v)?;
        break;
    }
    for name in &rules.extra_scope_claims {
        if let Some(v) = present(&claims, name) {
            for s in scope_values(name, v)? {
                if !scopes.contains(&s) {
                    scopes.push(s);
                }
            }
        }
    }
    if let Some(prefix) = rules.scope_prefix.as_deref().filter(|p| !p.is_empty()) {
        for s in &mut scopes {
            if let Some(bare) = s.strip_prefix(prefix).filter(|b| !b.is_empty()) {
                *s = bare.to_owned();
            }
        }
    }

    let mut b = AccessToken::builder().scopes(scopes).audiences(audiences);
    if let Some(jkt) = jkt {
        b = b.dpop_thumbprint(jkt);
    }
    if let Some(exp) = exp {
        b = b.expires_at_unix(exp);
    }
    if let Some(s) = subject {
        b = b.subject(s);
    }
    if let Some(c) = client_id {
        b = b.client_id(c);
    }
    if let Some(i) = issuer {
        b = b.issuer(i);
    }
    Ok(b.claims(claims).build())
}

/// The key thumbprint of a DPoP binding (`cnf: {"jkt": "<43 base64url characters>"}`); any other
/// confirmation method is a binding this server cannot check.
fn dpop_binding(cnf: &Value) -> Result<String, ClaimsRejection> {
    let obj = cnf.as_object().filter(|o| o.len() == 1);
    match obj.and_then(|o| o.get("jkt")).and_then(Value::as_str) {
        Some(jkt) if crate::dpop::is_thumbprint(jkt) => Ok(jkt.to_owned()),
        _ => Err(refuse(
            InvalidToken::SenderConstrained,
            "cnf is not a DPoP key binding (jkt) this server can check",
        )),
    }
}

/// A JSON object whose top-level members must be unique (RFC 7519 §4 lets a parser reject
/// duplicates; two `aud` or `sub` members are a classic confusion attack). Used for JWT headers
/// and payloads and for introspection responses alike.
pub struct UniqueObject(pub Map<String, Value>);

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

/// Parses `bytes` as a JSON object with unique top-level members; `None` for anything else.
///
/// ```
/// use mcp_auth_core::claims::parse_unique_object;
/// assert!(parse_unique_object(br#"{"sub":"a"}"#).is_some());
/// assert!(parse_unique_object(br#"{"sub":"a","sub":"b"}"#).is_none());
/// assert!(parse_unique_object(b"[1]").is_none());
/// ```
pub fn parse_unique_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    // UTF-8 checked once for the whole text, not string by string as `from_slice` would: the
    // same texts are accepted.
    let text = std::str::from_utf8(bytes).ok()?;
    serde_json::from_str::<UniqueObject>(text).ok().map(|o| o.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;
    const R: &str = "https://api.example.com/mcp";
    const ISS: &str = "https://idp.example.com";

    fn rules() -> ClaimRules {
        ClaimRules::new([R]).issuers([ISS])
    }

    fn good() -> Value {
        json!({"iss": ISS, "sub": "alice", "aud": R, "exp": NOW + 60, "scope": "a b"})
    }

    fn map(v: Value) -> Result<AccessToken, InvalidToken> {
        map_claims(v.as_object().unwrap().clone(), &rules(), NOW).map_err(|e| e.reason)
    }

    fn with(k: &str, v: Value) -> Value {
        let mut g = good();
        g[k] = v;
        g
    }

    fn without(k: &str) -> Value {
        let mut g = good();
        g.as_object_mut().unwrap().remove(k);
        g
    }

    #[test]
    fn user_and_machine_principals() {
        let t = map(good()).unwrap();
        let p = t.principal().unwrap();
        assert!(p.is_user());
        assert_eq!(p.issuer(), Some(ISS));
        let mut m = without("sub");
        m["client_id"] = json!("svc");
        let t = map(m).unwrap();
        let mp = t.principal().unwrap();
        assert!(!mp.is_user());
        assert_ne!(p, mp);
        // A user whose subject equals a machine's client id is still another principal.
        let mut u = good();
        u["sub"] = json!("svc");
        u["client_id"] = json!("svc");
        let u = map(u).unwrap();
        assert_ne!(u.principal(), t.principal());
        assert_eq!(map(without("sub")).unwrap_err(), InvalidToken::MissingClaim);
        assert_eq!(
            map(with("sub", Value::Null)).unwrap_err(),
            InvalidToken::MissingClaim
        );
    }

    #[test]
    fn issuer_rules() {
        assert_eq!(
            map(with("iss", json!("https://evil.example"))).unwrap_err(),
            InvalidToken::Issuer
        );
        assert_eq!(map(without("iss")).unwrap_err(), InvalidToken::Issuer);
        assert_eq!(
            map(with("iss", json!(5))).unwrap_err(),
            InvalidToken::Issuer
        );
        let vouched = rules().implicit_issuer(ISS);
        let t = map_claims(without("iss").as_object().unwrap().clone(), &vouched, NOW).unwrap();
        assert_eq!(t.issuer(), Some(ISS));
    }

    #[test]
    fn vendor_extensions() {
        // Okta's `cid`, Entra v1's `appid`: configured names win over the defaults.
        let okta = rules().client_id_claims(["cid"]);
        let mut t = good();
        t["cid"] = json!("0oa1");
        t["client_id"] = json!("ignored");
        let tok = map_claims(t.as_object().unwrap().clone(), &okta, NOW).unwrap();
        assert_eq!(tok.client_id(), Some("0oa1"));

        // Auth0 permissions are added to `scope`; a non-string member refuses.
        let auth0 = rules().extra_scope_claims(["permissions"]);
        let tok = map_claims(
            with("permissions", json!(["c", "a"]))
                .as_object()
                .unwrap()
                .clone(),
            &auth0,
            NOW,
        )
        .unwrap();
        assert_eq!(tok.scopes().iter().collect::<Vec<_>>(), ["a", "b", "c"]);
        let bad = with("permissions", json!([1]));
        assert_eq!(
            map_claims(bad.as_object().unwrap().clone(), &auth0, NOW)
                .unwrap_err()
                .reason,
            InvalidToken::Malformed
        );

        // Entra: `roles` only when `scp` is absent.
        let entra = rules()
            .scope_claims(["scp", "roles"])
            .require_claim("tid", "t1");
        let mut app = without("scope");
        app["roles"] = json!(["Tasks.Read"]);
        app["tid"] = json!("t1");
        let tok = map_claims(app.as_object().unwrap().clone(), &entra, NOW).unwrap();
        assert_eq!(tok.scopes().iter().collect::<Vec<_>>(), ["Tasks.Read"]);
        app["scp"] = json!("user.read");
        let tok = map_claims(app.as_object().unwrap().clone(), &entra, NOW).unwrap();
        assert_eq!(tok.scopes().iter().collect::<Vec<_>>(), ["user.read"]);
        for tid in [json!("t2"), json!(7), Value::Null] {
            app["tid"] = tid;
            assert!(map_claims(app.as_object().unwrap().clone(), &entra, NOW).is_err());
        }

        // Cognito: allowlisted client, `aud` optional only then, prefixed scopes stripped.
        let cognito = rules()
            .allowed_clients(["app1"])
            .audience_optional_for_allowed_clients(true)
            .strip_scope_prefix("https://rs.example/");
        let mut c = without("aud");
        c["client_id"] = json!("app1");
        c["scope"] = json!("https://rs.example/todo:read openid https://rs.example/");
        let tok = map_claims(c.as_object().unwrap().clone(), &cognito, NOW).unwrap();
        assert_eq!(
            tok.scopes().iter().collect::<Vec<_>>(),
            ["todo:read", "openid", "https://rs.example/"]
        );
        let mut other = c.clone();
        other["client_id"] = json!("app2");
        assert_eq!(
            map_claims(other.as_object().unwrap().clone(), &cognito, NOW)
                .unwrap_err()
                .reason,
            InvalidToken::Audience
        );
        let mut wrong_aud = c.clone();
        wrong_aud["aud"] = json!("https://other.example");
        assert_eq!(
            map_claims(wrong_aud.as_object().unwrap().clone(), &cognito, NOW)
                .unwrap_err()
                .reason,
            InvalidToken::Audience
        );
        // Without an allowlist, the flag does not make `aud` optional.
        let loose = rules().audience_optional_for_allowed_clients(true);
        assert_eq!(
            map_claims(c.as_object().unwrap().clone(), &loose, NOW)
                .unwrap_err()
                .reason,
            InvalidToken::Audience
        );
    }
}
