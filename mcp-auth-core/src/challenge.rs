//! `WWW-Authenticate: Bearer …` challenges (RFC 6750 §3, RFC 9728 §5.1), their `DPoP …` twins
//! (RFC 9449 §7.1), and the error responses the bearer layer and the policy answer with.
//!
//! Parameter order is always `error, error_description, scope, resource_metadata`, then `algs`
//! on the DPoP scheme. Every value is
//! filtered to the RFC 6750 character set (`%x20-21 / %x23-5B / %x5D-7E`; no `"` or `\`, no
//! control characters), so building a header never fails and never panics.

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::error::InvalidToken;

/// The `error` codes a bearer challenge can carry (RFC 6750 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeError {
    /// 400: credentials sent twice or in two ways.
    InvalidRequest,
    /// 401: the token is not acceptable.
    InvalidToken,
    /// 403: the token lacks scopes (or fails a claims policy).
    InsufficientScope,
    /// 401: the DPoP proof is not acceptable (RFC 9449 §7.1).
    InvalidDpopProof,
    /// 401: the DPoP proof must carry the server nonce given in `DPoP-Nonce` (RFC 9449 §9).
    UseDpopNonce,
}

impl ChallengeError {
    /// The wire code.
    pub fn code(&self) -> &'static str {
        match self {
            ChallengeError::InvalidRequest => "invalid_request",
            ChallengeError::InvalidToken => "invalid_token",
            ChallengeError::InsufficientScope => "insufficient_scope",
            ChallengeError::InvalidDpopProof => "invalid_dpop_proof",
            ChallengeError::UseDpopNonce => "use_dpop_nonce",
        }
    }

    /// The HTTP status that goes with the code.
    pub fn status(&self) -> StatusCode {
        match self {
            ChallengeError::InvalidRequest => StatusCode::BAD_REQUEST,
            ChallengeError::InvalidToken
            | ChallengeError::InvalidDpopProof
            | ChallengeError::UseDpopNonce => StatusCode::UNAUTHORIZED,
            ChallengeError::InsufficientScope => StatusCode::FORBIDDEN,
        }
    }
}

/// Whether `b` may appear inside a quoted challenge value (RFC 6750 `error_description` set).
pub fn is_quoted_value_char(b: u8) -> bool {
    b == 0x20 || b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)
}

/// Drops every character outside the RFC 6750 value set.
pub fn filter_value(s: &str) -> String {
    s.bytes()
        .filter(|b| is_quoted_value_char(*b))
        .map(char::from)
        .collect()
}

/// A bearer challenge under construction.
///
/// ```
/// use mcp_auth_core::challenge::{BearerChallenge, ChallengeError};
/// let header = BearerChallenge::new("https://api.example.com/.well-known/oauth-protected-resource/mcp")
///     .error(ChallengeError::InsufficientScope, "The access token lacks a required scope")
///     .scope("todo:write")
///     .to_string();
/// assert_eq!(
///     header,
///     "Bearer error=\"insufficient_scope\", error_description=\"The access token lacks a required scope\", \
///      scope=\"todo:write\", resource_metadata=\"https://api.example.com/.well-known/oauth-protected-resource/mcp\""
/// );
/// ```
///
/// On the DPoP scheme ([`Scheme::Dpop`]) the same parameters are followed by `algs`:
///
/// ```
/// use mcp_auth_core::challenge::{BearerChallenge, Scheme};
/// let header = BearerChallenge::new("https://api.example.com/.well-known/oauth-protected-resource/mcp")
///     .scope("todo:read")
///     .scheme(Scheme::Dpop { algs: "ES256 EdDSA" })
///     .to_string();
/// assert_eq!(
///     header,
///     "DPoP scope=\"todo:read\", resource_metadata=\"https://api.example.com/.well-known/oauth-protected-resource/mcp\", algs=\"ES256 EdDSA\""
/// );
/// ```
#[derive(Debug, Clone, Default)]
pub struct BearerChallenge<'a> {
    error: Option<(ChallengeError, &'a str)>,
    scope: Option<&'a str>,
    resource_metadata: &'a str,
    scheme: Scheme<'a>,
}

/// The authentication scheme of a challenge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scheme<'a> {
    /// `Bearer` (RFC 6750).
    #[default]
    Bearer,
    /// `DPoP` (RFC 9449 §7.1), with the proof algorithms the server accepts (`algs`).
    Dpop {
        /// Space-separated JWS algorithm names.
        algs: &'a str,
    },
}

impl<'a> BearerChallenge<'a> {
    /// A challenge pointing at the metadata document.
    pub fn new(resource_metadata: &'a str) -> Self {
        BearerChallenge {
            error: None,
            scope: None,
            resource_metadata,
            scheme: Scheme::Bearer,
        }
    }

    /// Sets the scheme (default `Bearer`).
    pub fn scheme(mut self, scheme: Scheme<'a>) -> Self {
        self.scheme = scheme;
        self
    }

    /// Adds `error` and `error_description`.
    pub fn error(mut self, error: ChallengeError, description: &'a str) -> Self {
        self.error = Some((error, description));
        self
    }

    /// Adds `scope` (omitted when empty).
    pub fn scope(mut self, scope: &'a str) -> Self {
        self.scope = if scope.is_empty() { None } else { Some(scope) };
        self
    }

    /// The header value. Always valid: every value is filtered first.
    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::from_str(&self.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }
}

impl std::fmt::Display for BearerChallenge<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.scheme {
            Scheme::Bearer => "Bearer ",
            Scheme::Dpop { .. } => "DPoP ",
        })?;
        let mut first = true;
        let mut param = |f: &mut std::fmt::Formatter<'_>, name: &str, value: &str| {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{name}=\"{}\"", filter_value(value))
        };
        if let Some((error, description)) = self.error {
            param(f, "error", error.code())?;
            param(f, "error_description", description)?;
        }
        if let Some(scope) = self.scope {
            param(f, "scope", scope)?;
        }
        param(f, "resource_metadata", self.resource_metadata)?;
        match self.scheme {
            Scheme::Dpop { algs } if !algs.is_empty() => param(f, "algs", algs),
            _ => Ok(()),
        }
    }
}

/// The longest `Retry-After` taken from an IdP (and passed on to clients): a hint of hours or
/// years from a confused or hostile IdP must not keep clients away that long. The same cap for
/// JWKS, discovery and introspection answers, and for a custom verifier's hint.
pub const MAX_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(300);

const JSON: HeaderValue = HeaderValue::from_static("application/json");

fn json_body(error: &str, description: Option<&str>) -> Bytes {
    let mut obj = serde_json::Map::new();
    obj.insert("error".into(), error.into());
    if let Some(d) = description {
        obj.insert("error_description".into(), d.into());
    }
    Bytes::from(serde_json::Value::Object(obj).to_string())
}

/// 401 without `error`: the request carried no usable credentials (RFC 6750 §3.1). Empty body.
pub fn unauthorized(challenge: HeaderValue) -> Response<Body> {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::UNAUTHORIZED;
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, challenge);
    resp
}

/// A 400/401/403 with `error` in the challenge and the JSON body `{"error","error_description"}`.
pub fn error_response(
    error: ChallengeError,
    description: &str,
    scope: &str,
    resource_metadata: &str,
) -> Response<Body> {
    error_response_on(Scheme::Bearer, error, description, scope, resource_metadata)
}

/// [`error_response`] on `scheme`.
pub fn error_response_on(
    scheme: Scheme<'_>,
    error: ChallengeError,
    description: &str,
    scope: &str,
    resource_metadata: &str,
) -> Response<Body> {
    let challenge = BearerChallenge::new(resource_metadata)
        .error(error, description)
        .scope(scope)
        .scheme(scheme);
    let mut resp = Response::new(Body::from(json_body(
        error.code(),
        Some(&filter_value(description)),
    )));
    *resp.status_mut() = error.status();
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, challenge.header_value());
    resp.headers_mut().insert(header::CONTENT_TYPE, JSON);
    resp
}

/// 401 `invalid_token` for `reason` (fixed description).
pub fn invalid_token(reason: InvalidToken, scope: &str, resource_metadata: &str) -> Response<Body> {
    invalid_token_on(Scheme::Bearer, reason, scope, resource_metadata)
}

/// [`invalid_token`] on `scheme`.
pub fn invalid_token_on(
    scheme: Scheme<'_>,
    reason: InvalidToken,
    scope: &str,
    resource_metadata: &str,
) -> Response<Body> {
    error_response_on(
        scheme,
        ChallengeError::InvalidToken,
        reason.description(),
        scope,
        resource_metadata,
    )
}

/// Fixed description of a 403 caused by missing scopes.
pub const INSUFFICIENT_SCOPE_DESCRIPTION: &str = "The access token lacks a required scope";
/// Fixed description of a 403 caused by a claims policy.
pub const POLICY_DENIED_DESCRIPTION: &str =
    "The access token is not allowed to perform this operation";

/// 403 `insufficient_scope` naming every scope the operation needs.
pub fn insufficient_scope(
    description: &str,
    scope: &str,
    resource_metadata: &str,
) -> Response<Body> {
    insufficient_scope_on(Scheme::Bearer, description, scope, resource_metadata)
}

/// [`insufficient_scope`] on `scheme`.
pub fn insufficient_scope_on(
    scheme: Scheme<'_>,
    description: &str,
    scope: &str,
    resource_metadata: &str,
) -> Response<Body> {
    error_response_on(
        scheme,
        ChallengeError::InsufficientScope,
        description,
        scope,
        resource_metadata,
    )
}

/// 503 with `Retry-After` (seconds) and `{"error":"temporarily_unavailable"}`.
pub fn unavailable(retry_after_secs: u64) -> Response<Body> {
    let mut resp = Response::new(Body::from(json_body("temporarily_unavailable", None)));
    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    resp.headers_mut().insert(header::CONTENT_TYPE, JSON);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    resp
}

/// 500 with `{"error":"server_error"}` (details go to the log, never to the client).
pub fn server_error() -> Response<Body> {
    let mut resp = Response::new(Body::from(json_body("server_error", None)));
    *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    resp.headers_mut().insert(header::CONTENT_TYPE, JSON);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_omissions() {
        let c = BearerChallenge::new("https://r/.well-known/oauth-protected-resource").to_string();
        assert_eq!(
            c,
            "Bearer resource_metadata=\"https://r/.well-known/oauth-protected-resource\""
        );
        let c = BearerChallenge::new("m").scope("a b").to_string();
        assert_eq!(c, "Bearer scope=\"a b\", resource_metadata=\"m\"");
        let c = BearerChallenge::new("m").scope("").to_string();
        assert_eq!(c, "Bearer resource_metadata=\"m\"");
    }

    #[test]
    fn hostile_text_is_filtered() {
        let c = BearerChallenge::new("m\"\r\n")
            .error(
                ChallengeError::InvalidToken,
                "bad \"quote\" \\ \r\nInjected: yes\u{0}é",
            )
            .scope("a\"b")
            .to_string();
        assert_eq!(
            c,
            "Bearer error=\"invalid_token\", error_description=\"bad quote  Injected: yes\", scope=\"ab\", resource_metadata=\"m\""
        );
        assert!(HeaderValue::from_str(&c).is_ok());
    }

    #[test]
    fn every_fixed_description_is_in_charset() {
        for r in InvalidToken::ALL {
            assert!(r.description().bytes().all(is_quoted_value_char), "{r}");
        }
    }
}
