//! Typed errors: verification outcomes, build and configuration errors.

use std::borrow::Cow;
use std::time::Duration;

/// Why a token verification failed. The bearer layer maps each variant to one HTTP answer:
/// [`VerifyError::Invalid`] to 401 `invalid_token`, [`VerifyError::Unavailable`] to 503 with
/// `Retry-After`, [`VerifyError::Internal`] to 500.
///
/// ```
/// use mcp_auth_core::{InvalidToken, VerifyError};
/// let err = VerifyError::Invalid(InvalidToken::Expired);
/// assert_eq!(err.status(), 401);
/// assert_eq!(VerifyError::unavailable().status(), http::StatusCode::SERVICE_UNAVAILABLE);
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The token is not acceptable (malformed, bad signature, expired, wrong audience, ...).
    #[error("invalid token: {}", .0.code())]
    Invalid(InvalidToken),
    /// The identity provider could not be reached (or answered 5xx/429) and nothing cached can
    /// decide: the request is refused with 503, never let through and never blamed on the token.
    #[error("identity provider unavailable")]
    Unavailable {
        /// Suggested delay before retrying (the `Retry-After` header).
        retry_after: Option<Duration>,
    },
    /// A server-side failure, typically a misconfiguration (the IdP refused *our* credentials).
    /// The message is server-written, logged at error level, and never sent to the client.
    #[error("internal error: {0}")]
    Internal(Cow<'static, str>),
}

impl VerifyError {
    /// An `Unavailable` error without a retry hint.
    pub fn unavailable() -> Self {
        VerifyError::Unavailable { retry_after: None }
    }

    /// The HTTP status the bearer layer answers with.
    pub fn status(&self) -> http::StatusCode {
        match self {
            VerifyError::Invalid(_) => http::StatusCode::UNAUTHORIZED,
            VerifyError::Unavailable { .. } => http::StatusCode::SERVICE_UNAVAILABLE,
            VerifyError::Internal(_) => http::StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether this is an invalid-token error.
    pub fn is_invalid(&self) -> bool {
        matches!(self, VerifyError::Invalid(_))
    }

    /// Whether this is an IdP-unavailable error.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, VerifyError::Unavailable { .. })
    }
}

impl From<InvalidToken> for VerifyError {
    fn from(reason: InvalidToken) -> Self {
        VerifyError::Invalid(reason)
    }
}

/// The reason a token is invalid. Each has a stable `code` (for logs and metrics) and a fixed,
/// server-written `description` (sent as `error_description`): attacker input never reaches the
/// `WWW-Authenticate` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidToken {
    /// Not a well-formed token (bad encoding, not JSON, bad structure).
    Malformed,
    /// Larger than the configured bound.
    TooLarge,
    /// The signature does not verify.
    BadSignature,
    /// The algorithm is not allowed, or does not fit the key.
    Algorithm,
    /// No key fits the token (unknown `kid`).
    UnknownKey,
    /// `exp` is in the past.
    Expired,
    /// `nbf` (or `iat`) is in the future.
    NotYetValid,
    /// `iss` is not an accepted issuer.
    Issuer,
    /// `aud` does not name this resource.
    Audience,
    /// A required claim (such as `exp`) is missing or has the wrong type.
    MissingClaim,
    /// The `typ` header is not accepted.
    Type,
    /// The token carries an unknown critical header parameter (`crit`).
    Critical,
    /// The token is sender-constrained in a way this server cannot check: DPoP is off, or
    /// `cnf` is not a DPoP key binding (an mTLS certificate binding, say).
    SenderConstrained,
    /// A DPoP-bound token (`cnf.jkt`) presented on the `Bearer` scheme: it needs the `DPoP`
    /// scheme and a proof (RFC 9449 §7.2).
    DpopBound,
    /// A token without a key binding presented on the `DPoP` scheme.
    NotDpopBound,
    /// The IdP says the token is not active (revoked, expired or unknown).
    Inactive,
    /// A refresh token was presented as an access token.
    RefreshToken,
}

impl InvalidToken {
    /// A stable machine-readable code (for logs and metrics).
    pub fn code(&self) -> &'static str {
        match self {
            InvalidToken::Malformed => "malformed",
            InvalidToken::TooLarge => "too_large",
            InvalidToken::BadSignature => "bad_signature",
            InvalidToken::Algorithm => "algorithm",
            InvalidToken::UnknownKey => "unknown_key",
            InvalidToken::Expired => "expired",
            InvalidToken::NotYetValid => "not_yet_valid",
            InvalidToken::Issuer => "issuer",
            InvalidToken::Audience => "audience",
            InvalidToken::MissingClaim => "missing_claim",
            InvalidToken::Type => "type",
            InvalidToken::Critical => "critical",
            InvalidToken::SenderConstrained => "sender_constrained",
            InvalidToken::DpopBound => "dpop_bound",
            InvalidToken::NotDpopBound => "not_dpop_bound",
            InvalidToken::Inactive => "inactive",
            InvalidToken::RefreshToken => "refresh_token",
        }
    }

    /// The fixed `error_description` text (within the RFC 6750 character set).
    pub fn description(&self) -> &'static str {
        match self {
            InvalidToken::Malformed => "The access token is malformed",
            InvalidToken::TooLarge => "The access token is too large",
            InvalidToken::BadSignature => "The access token signature is invalid",
            InvalidToken::Algorithm => "The access token algorithm is not accepted",
            InvalidToken::UnknownKey => "The access token was signed by an unknown key",
            InvalidToken::Expired => "The access token expired",
            InvalidToken::NotYetValid => "The access token is not yet valid",
            InvalidToken::Issuer => "The access token issuer is not accepted",
            InvalidToken::Audience => "The access token was not issued for this resource",
            InvalidToken::MissingClaim => "The access token lacks a required claim",
            InvalidToken::Type => "The access token type is not accepted",
            InvalidToken::Critical => "The access token has an unsupported critical header",
            InvalidToken::SenderConstrained => "Sender-constrained access tokens are not supported",
            InvalidToken::DpopBound => {
                "The access token is bound to a key and must be sent with the DPoP scheme and a proof"
            }
            InvalidToken::NotDpopBound => {
                "The access token is not bound to a key and cannot be used with the DPoP scheme"
            }
            InvalidToken::Inactive => "The access token is not active",
            InvalidToken::RefreshToken => "A refresh token cannot be used as an access token",
        }
    }

    /// Every reason, for metrics tables and tests.
    pub const ALL: [InvalidToken; 17] = [
        InvalidToken::Malformed,
        InvalidToken::TooLarge,
        InvalidToken::BadSignature,
        InvalidToken::Algorithm,
        InvalidToken::UnknownKey,
        InvalidToken::Expired,
        InvalidToken::NotYetValid,
        InvalidToken::Issuer,
        InvalidToken::Audience,
        InvalidToken::MissingClaim,
        InvalidToken::Type,
        InvalidToken::Critical,
        InvalidToken::SenderConstrained,
        InvalidToken::DpopBound,
        InvalidToken::NotDpopBound,
        InvalidToken::Inactive,
        InvalidToken::RefreshToken,
    ];
}

impl std::fmt::Display for InvalidToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// A builder setting: a stable key and a label.
///
/// The key is the setting's configuration key (`resource_url`, `jwt_jwks_uri`, ...), the same key
/// an [`EnvTable`](crate::config::EnvTable) maps to its environment variable, so a
/// [`BuildError`] raised while applying configuration names the variable to fix
/// ([`ConfigError::from_build_in`](crate::config::ConfigError::from_build_in)) without reading
/// error texts. The label is what code-only users see in the message.
///
/// ```
/// use mcp_auth_core::{BuildError, Setting};
/// let err = BuildError::Missing(Setting::RESOURCE_URL);
/// assert_eq!(err.setting().key(), "resource_url");
/// assert_eq!(err.to_string(), "resource URL is required");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Setting {
    key: &'static str,
    label: &'static str,
}

impl Setting {
    /// A setting with a configuration `key` and a human `label`.
    pub const fn new(key: &'static str, label: &'static str) -> Self {
        Setting { key, label }
    }

    /// The configuration key.
    pub const fn key(&self) -> &'static str {
        self.key
    }

    /// The label.
    pub const fn label(&self) -> &'static str {
        self.label
    }

    /// The canonical resource URL (`MCP_AUTH_RESOURCE_URL`).
    pub const RESOURCE_URL: Setting = Setting::new("resource_url", "resource URL");
    /// The authorization servers (`MCP_AUTH_AUTHORIZATION_SERVERS`).
    pub const AUTHORIZATION_SERVERS: Setting =
        Setting::new("authorization_servers", "authorization servers");
    /// The metadata's `scopes_supported` (`MCP_AUTH_SCOPES_SUPPORTED`).
    pub const SCOPES_SUPPORTED: Setting = Setting::new("scopes_supported", "scopes_supported");
    /// Scopes every request needs (`MCP_AUTH_REQUIRED_SCOPES`).
    pub const REQUIRED_SCOPES: Setting = Setting::new("required_scopes", "required scopes");
    /// Scopes of the 401 challenge (`MCP_AUTH_INITIAL_SCOPES`).
    pub const INITIAL_SCOPES: Setting = Setting::new("initial_scopes", "initial scopes");
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label)
    }
}

/// A builder was given settings that cannot work (caught at start-up, never per request).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A required setting is missing.
    #[error("{0} is required")]
    Missing(Setting),
    /// A setting has an unusable value.
    #[error("{setting}: {reason}")]
    Invalid {
        /// The setting.
        setting: Setting,
        /// What is wrong with it.
        reason: Cow<'static, str>,
    },
}

impl BuildError {
    /// Shorthand for [`BuildError::Invalid`].
    pub fn invalid(setting: Setting, reason: impl Into<Cow<'static, str>>) -> Self {
        BuildError::Invalid {
            setting,
            reason: reason.into(),
        }
    }

    /// The setting at fault.
    pub fn setting(&self) -> Setting {
        match self {
            BuildError::Missing(s) | BuildError::Invalid { setting: s, .. } => *s,
        }
    }
}
