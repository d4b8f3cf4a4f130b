//! Calling other APIs as the user (feature `exchange`): RFC 8693 token exchange, and Microsoft
//! Entra's on-behalf-of flow, never passing the MCP token through.
//!
//! The MCP authorization spec forbids token passthrough: a tool that calls another API on the
//! user's behalf must not forward the token it received (its audience is this MCP server, R).
//! It asks the IdP instead for a token whose audience is the downstream API:
//!
//! * [`TokenExchanger`] holds the client credentials ([`ClientAuth`], shared with the
//!   introspection client), the token endpoint of every accepted issuer (configured, or read
//!   from the issuer's metadata under the discovery rule: the document's `issuer` must equal the
//!   configured one, and credentials go only to an endpoint on the issuer's origin), and the
//!   allowlist of downstream [`Target`]s with the scopes each may get. A tool, and so a model's
//!   input, can never name another audience.
//! * The bearer layer, given an exchanger ([`crate::BearerAuthLayer::with_token_exchange`]),
//!   removes the `Authorization` header once the token is verified and keeps the raw token in a
//!   [`SubjectToken`] request extension: no accessor, redacted `Debug`, dropped with the request.
//! * Tools ask through the rmcp extractor: `auth.exchange_for("https://api.example.com")`
//!   (feature `rmcp`), or [`SubjectToken::exchange_for`] in plain axum handlers.
//!
//! The exchange goes to the token endpoint of the issuer that verified the token, never to
//! another IdP. Exchanged tokens are cached per (BLAKE3 hash of the subject token, target,
//! scopes), never past their own `exp` nor the subject token's; concurrent misses for one key
//! share one call. Logs carry token hashes (8 hex digits), never a token.
//!
//! ```no_run
//! # fn demo() -> Result<(), mcp_auth_core::BuildError> {
//! use mcp_auth_core::exchange::{Target, TokenExchanger};
//!
//! let exchanger = TokenExchanger::builder()
//!     .issuer("https://idp.example.com")                       // token endpoint from metadata
//!     .client_secret_basic("mcp-server", "s3cret")
//!     .target(Target::audience("https://api.example.com").scopes(["notes:read"]))
//!     .build()?;
//! # let _ = exchanger; Ok(()) }
//! ```
//!
//! The raw token cannot be read from a [`SubjectToken`]: it has no accessor, and neither
//! `Display`, `Deref`, `AsRef` nor `Serialize`.
//!
//! ```
//! // The type is public (so code can name it), and this is all it shows:
//! fn describe(t: &mcp_auth_core::exchange::SubjectToken) -> String {
//!     format!("{t:?}") // SubjectToken([redacted] 1a2b3c4d)
//! }
//! ```
//! ```compile_fail,E0616
//! fn leak(t: &mcp_auth_core::exchange::SubjectToken) -> String {
//!     t.0.to_string() // private field
//! }
//! ```
//! ```compile_fail,E0599
//! fn leak(t: &mcp_auth_core::exchange::SubjectToken) -> String {
//!     t.to_string() // no Display
//! }
//! ```
//! ```compile_fail
//! fn leak(t: &mcp_auth_core::exchange::SubjectToken) -> &str {
//!     t.as_ref() // no AsRef<str>
//! }
//! ```
//! ```compile_fail,E0614
//! fn leak(t: &mcp_auth_core::exchange::SubjectToken) -> &str {
//!     &**t // no Deref
//! }
//! ```
//! ```compile_fail
//! fn leak(t: &mcp_auth_core::exchange::SubjectToken) -> String {
//!     serde_json::to_string(t).unwrap() // no Serialize
//! }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::HeaderValue;
use moka::Expiry;
use moka::future::Cache;
use serde::Deserialize;
use tokio::sync::OnceCell;
use url::Url;

use crate::challenge::MAX_RETRY_AFTER;
use crate::client_auth::{ClientAuth, ClientSecret, CredentialSettings, PreparedAuth};
use crate::fetch::{
    DEFAULT_CONNECT_TIMEOUT, HttpClient, HttpClientConfig, check_url, retry_after, same_origin,
};
use crate::scope::validate_scope;
use crate::token::token_tag;
use crate::{AccessToken, BuildError, Setting};

/// `grant_type` of RFC 8693 token exchange.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// `grant_type` of Entra's on-behalf-of flow (RFC 7523 JWT bearer grant).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// RFC 8693 token type of an access token (`subject_token_type`, `requested_token_type`).
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Default bound on the memory held by the exchanged-token cache (approximate bytes).
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Default cap on a token endpoint response body.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// How long an exchanged token without `expires_in` is cached (never past the subject's `exp`).
pub const DEFAULT_TTL_WITHOUT_EXPIRY: Duration = Duration::from_secs(60);
/// An exchanged token is dropped from the cache this long before its `exp` (or at half its
/// lifetime, when that is shorter), so the downstream API never receives one about to expire.
pub const DEFAULT_EXPIRY_MARGIN: Duration = Duration::from_secs(10);

/// The environment variables the exchanger's settings come from (named in errors and logs).
pub mod var {
    /// The token endpoint (else read from the issuer's metadata).
    pub const TOKEN_ENDPOINT: &str = "MCP_AUTH_EXCHANGE_TOKEN_ENDPOINT";
    /// Our client id at the IdP.
    pub const CLIENT_ID: &str = "MCP_AUTH_EXCHANGE_CLIENT_ID";
    /// Its secret.
    pub const CLIENT_SECRET: &str = "MCP_AUTH_EXCHANGE_CLIENT_SECRET";
    /// `client_secret_basic` (default) or `client_secret_post`.
    pub const AUTH_METHOD: &str = "MCP_AUTH_EXCHANGE_AUTH_METHOD";
    /// The downstream targets and their scopes.
    pub const TARGETS: &str = "MCP_AUTH_EXCHANGE_TARGETS";
    /// `token_exchange` (default) or `on_behalf_of`.
    pub const GRANT: &str = "MCP_AUTH_EXCHANGE_GRANT";
    /// `audience` (default), `resource` or `both`.
    pub const TARGET_PARAMETER: &str = "MCP_AUTH_EXCHANGE_TARGET_PARAMETER";
}

pub(crate) mod setting {
    use crate::Setting;
    pub(crate) const TOKEN_ENDPOINT: Setting =
        Setting::new("exchange_token_endpoint", "token-exchange token endpoint");
    pub(crate) const CLIENT_ID: Setting =
        Setting::new("exchange_client_id", "token-exchange client id");
    pub(crate) const CLIENT_SECRET: Setting =
        Setting::new("exchange_client_secret", "token-exchange client secret");
    pub(crate) const AUTH_METHOD: Setting = Setting::new(
        "exchange_auth_method",
        "token-exchange client authentication",
    );
    pub(crate) const TARGETS: Setting = Setting::new("exchange_targets", "token-exchange targets");
    pub(crate) const GRANT: Setting = Setting::new("exchange_grant", "token-exchange grant");
    pub(crate) const TARGET_PARAMETER: Setting = Setting::new(
        "exchange_target_parameter",
        "token-exchange target parameter",
    );
    pub(crate) const ISSUER: Setting = Setting::new("authorization_servers", "issuer");
}

/// Which grant asks for the downstream token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Grant {
    /// RFC 8693 token exchange: `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`,
    /// `subject_token` (access token type), `audience` and/or `resource`, `scope`.
    #[default]
    TokenExchange,
    /// Microsoft Entra's on-behalf-of flow: `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`,
    /// `assertion`, `requested_token_use=on_behalf_of`, and the target named by its scopes
    /// (`<App ID URI>/<scope>` or `<App ID URI>/.default`): no `audience` or `resource`.
    OnBehalfOf,
}

impl Grant {
    /// The configuration spelling (`MCP_AUTH_EXCHANGE_GRANT`).
    pub fn as_str(self) -> &'static str {
        match self {
            Grant::TokenExchange => "token_exchange",
            Grant::OnBehalfOf => "on_behalf_of",
        }
    }
}

impl std::str::FromStr for Grant {
    type Err = BuildError;

    /// Parses `token_exchange` or `on_behalf_of` (ASCII case-insensitive).
    fn from_str(s: &str) -> Result<Self, BuildError> {
        let s = s.trim();
        for g in [Grant::TokenExchange, Grant::OnBehalfOf] {
            if s.eq_ignore_ascii_case(g.as_str()) {
                return Ok(g);
            }
        }
        Err(BuildError::invalid(
            setting::GRANT,
            "use token_exchange or on_behalf_of",
        ))
    }
}

/// Which RFC 8693 parameter names a target: `audience` (a logical name of the downstream
/// service), `resource` (RFC 8707: its URL) or both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TargetParameter {
    /// `audience=<target>` (default).
    #[default]
    Audience,
    /// `resource=<target>`: the target must then be an absolute URL without fragment.
    Resource,
    /// Both parameters, with the same value.
    Both,
}

impl std::str::FromStr for TargetParameter {
    type Err = BuildError;

    /// Parses `audience`, `resource` or `both` (ASCII case-insensitive).
    fn from_str(s: &str) -> Result<Self, BuildError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "audience" => Ok(TargetParameter::Audience),
            "resource" => Ok(TargetParameter::Resource),
            "both" => Ok(TargetParameter::Both),
            _ => Err(BuildError::invalid(
                setting::TARGET_PARAMETER,
                "use audience, resource or both",
            )),
        }
    }
}

/// One downstream API a tool may get a token for, and the scopes it may ask for there.
///
/// ```
/// use mcp_auth_core::exchange::{Target, TargetParameter};
/// let t = Target::audience("https://api.example.com").scopes(["notes:read", "notes:write"]);
/// assert_eq!(t.id(), "https://api.example.com");
/// assert_eq!(t.parameter(), TargetParameter::Audience);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    id: String,
    parameter: TargetParameter,
    scopes: Vec<String>,
}

impl Target {
    /// A target named by `audience=<id>`.
    pub fn audience(id: impl Into<String>) -> Self {
        Target {
            id: id.into(),
            parameter: TargetParameter::Audience,
            scopes: Vec::new(),
        }
    }

    /// A target named by `resource=<url>` (RFC 8707).
    pub fn resource(url: impl Into<String>) -> Self {
        Target {
            id: url.into(),
            parameter: TargetParameter::Resource,
            scopes: Vec::new(),
        }
    }

    /// Names the target by `parameter`.
    pub fn parameter_kind(mut self, parameter: TargetParameter) -> Self {
        self.parameter = parameter;
        self
    }

    /// The scopes a tool may ask for at this target (all of them by default, through
    /// `exchange_for`; a subset through `exchange_for_scopes`). None: no `scope` parameter.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// The identifier tools name the target by (the audience or resource value).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Which parameter carries it.
    pub fn parameter(&self) -> TargetParameter {
        self.parameter
    }

    /// The allowed scopes.
    pub fn allowed_scopes(&self) -> &[String] {
        &self.scopes
    }
}

/// Parses `MCP_AUTH_EXCHANGE_TARGETS`: entries separated by `;`, each `<target>` or
/// `<target>=<scope> <scope>` (scopes comma- or space-separated), every target named by
/// `parameter`.
///
/// ```
/// use mcp_auth_core::exchange::{TargetParameter, parse_targets};
/// let targets = parse_targets(
///     "https://notes.example.com=notes:read notes:write; https://cal.example.com",
///     TargetParameter::Audience,
/// ).unwrap();
/// assert_eq!(targets[0].allowed_scopes(), ["notes:read", "notes:write"]);
/// assert!(targets[1].allowed_scopes().is_empty());
/// ```
pub fn parse_targets(raw: &str, parameter: TargetParameter) -> Result<Vec<Target>, BuildError> {
    let mut out = Vec::new();
    for entry in raw.split([';', '\n']) {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let (id, scopes) = match entry.split_once('=') {
            Some((id, scopes)) => (id.trim(), crate::scope::split_list(scopes)),
            None => (entry, Vec::new()),
        };
        out.push(
            Target::audience(id)
                .parameter_kind(parameter)
                .scopes(scopes),
        );
    }
    Ok(out)
}

/// Why a downstream token could not be had. Tools turn it into an MCP error (with feature
/// `rmcp`, `ErrorData: From<ExchangeError>`); nothing in it comes from a token.
///
/// | cause | variant | MCP error |
/// |---|---|---|
/// | target not in the allowlist, scope not allowed there | `UnknownTarget`, `ScopeNotAllowed` | invalid params |
/// | the request carries no subject token (no exchanger on the layer) | `NoSubjectToken` | internal |
/// | the token's issuer has no token endpoint here | `UnknownIssuer` | internal |
/// | the subject token has expired | `SubjectExpired` | invalid request |
/// | the IdP refused the exchange (400: `invalid_grant`, `invalid_target`, `invalid_scope`, consent missing) | `Refused` | invalid request |
/// | the IdP is down: timeout, connection refused, 5xx, 429, garbage | `Unavailable` | internal, "try again" |
/// | the IdP refused *our* credentials (401, 403, `invalid_client`) | `Credentials` (error log naming the variable) | internal |
/// | the endpoint or the metadata is unusable | `Misconfigured` (error log naming the variable) | internal |
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The target is not one of the configured ones.
    #[error("unknown token-exchange target")]
    UnknownTarget,
    /// A requested scope is not allowed at the target.
    #[error("scope not allowed for this token-exchange target")]
    ScopeNotAllowed,
    /// No subject token in the request: the layer has no exchanger, or the server is not
    /// behind the bearer layer.
    #[error("no subject token: the bearer layer has no token exchanger")]
    NoSubjectToken,
    /// The token was verified for an issuer that has no token endpoint configured here.
    #[error("no token endpoint for the token's issuer")]
    UnknownIssuer,
    /// The subject token has expired (within the verifier's leeway it still passed the layer).
    #[error("the subject token has expired")]
    SubjectExpired,
    /// The IdP refused the exchange (HTTP 400): `error` is its RFC 6749 error code, filtered to
    /// the RFC 6749 character set and shortened.
    #[error("the identity provider refused the token exchange: {error}")]
    Refused {
        /// The IdP's `error` code (`invalid_grant`, `invalid_target`, ...).
        error: String,
    },
    /// The IdP could not be reached, answered 5xx or 429, or sent an unusable answer.
    #[error("the identity provider is unavailable")]
    Unavailable {
        /// The IdP's `Retry-After` (at most 300 s), when it sent one.
        retry_after: Option<Duration>,
    },
    /// The IdP refused our client credentials: fix the variable named.
    #[error("the identity provider refused our client credentials: check {variable}")]
    Credentials {
        /// The variable to fix.
        variable: &'static str,
    },
    /// The token endpoint, or the metadata naming it, is unusable: fix the variable named.
    #[error("token exchange misconfigured: check {variable}")]
    Misconfigured {
        /// The variable to fix.
        variable: &'static str,
    },
}

impl ExchangeError {
    /// Whether retrying later may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, ExchangeError::Unavailable { .. })
    }

    /// A stable code for logs and MCP error data.
    pub fn code(&self) -> &'static str {
        match self {
            ExchangeError::UnknownTarget => "unknown_target",
            ExchangeError::ScopeNotAllowed => "scope_not_allowed",
            ExchangeError::NoSubjectToken => "no_subject_token",
            ExchangeError::UnknownIssuer => "unknown_issuer",
            ExchangeError::SubjectExpired => "subject_expired",
            ExchangeError::Refused { .. } => "refused",
            ExchangeError::Unavailable { .. } => "unavailable",
            ExchangeError::Credentials { .. } => "credentials_refused",
            ExchangeError::Misconfigured { .. } => "misconfigured",
        }
    }
}

/// A token for a downstream API, obtained by exchange. Send it to that API only.
///
/// `Debug` shows the target, scopes and expiry, never the token.
#[derive(Clone)]
pub struct ExchangedToken {
    inner: Arc<Issued>,
}

struct Issued {
    access_token: String,
    authorization: HeaderValue,
    target: String,
    scopes: Vec<String>,
    expires_at: Option<u64>,
    issued_token_type: Option<String>,
}

impl ExchangedToken {
    /// The downstream access token itself.
    pub fn access_token(&self) -> &str {
        &self.inner.access_token
    }

    /// `Bearer <token>` for the downstream request's `Authorization` header (marked sensitive,
    /// so HTTP clients keep it out of their logs).
    pub fn authorization(&self) -> HeaderValue {
        self.inner.authorization.clone()
    }

    /// The target (audience or resource) it was issued for.
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    /// The scopes granted (the IdP's `scope`, else the ones requested).
    pub fn scopes(&self) -> &[String] {
        &self.inner.scopes
    }

    /// Its expiry (from `expires_in`), as seconds since the Unix epoch.
    pub fn expires_at_unix(&self) -> Option<u64> {
        self.inner.expires_at
    }

    /// RFC 8693 `issued_token_type`, when the IdP sent one.
    pub fn issued_token_type(&self) -> Option<&str> {
        self.inner.issued_token_type.as_deref()
    }
}

impl fmt::Debug for ExchangedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangedToken")
            .field("access_token", &"[redacted]")
            .field("target", &self.inner.target)
            .field("scopes", &self.inner.scopes)
            .field("expires_at", &self.inner.expires_at)
            .finish()
    }
}

/// The raw incoming access token, kept by the bearer layer for the exchanger only.
///
/// It sits in the request extensions of requests the layer let through when the layer has a
/// [`TokenExchanger`], and is dropped with the request. It has no accessor: the only thing code
/// can do with it is ask for a downstream token ([`SubjectToken::exchange_for`]; in rmcp tools,
/// the `Auth` extractor's `exchange_for`). `Debug` prints a hash prefix, never the token.
#[derive(Clone)]
pub struct SubjectToken(Arc<SubjectInner>);

struct SubjectInner {
    raw: Box<str>,
    verified: AccessToken,
    exchanger: TokenExchanger,
}

impl fmt::Debug for SubjectToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubjectToken([redacted] {})", token_tag(&self.0.raw))
    }
}

impl SubjectToken {
    pub(crate) fn new(raw: &str, verified: AccessToken, exchanger: TokenExchanger) -> Self {
        SubjectToken(Arc::new(SubjectInner {
            raw: raw.into(),
            verified,
            exchanger,
        }))
    }

    /// A token for `target` (one of the exchanger's targets) with every scope allowed there.
    pub async fn exchange_for(&self, target: &str) -> Result<ExchangedToken, ExchangeError> {
        self.0
            .exchanger
            .exchange(&self.0.raw, &self.0.verified, target, None)
            .await
    }

    /// A token for `target` with `scopes`, each of which must be allowed there.
    pub async fn exchange_for_scopes(
        &self,
        target: &str,
        scopes: &[&str],
    ) -> Result<ExchangedToken, ExchangeError> {
        self.0
            .exchanger
            .exchange(&self.0.raw, &self.0.verified, target, Some(scopes))
            .await
    }
}

/// Asks the IdP for downstream tokens on behalf of the caller. Cheap to clone (shared state,
/// shared cache). See the [module documentation](self).
#[derive(Clone)]
pub struct TokenExchanger {
    inner: Arc<Inner>,
}

struct Inner {
    endpoints: HashMap<String, Arc<Endpoint>>,
    auth: PreparedAuth,
    grant: Grant,
    targets: HashMap<String, Target>,
    http: HttpClient,
    max_body: usize,
    cache: Cache<[u8; 32], Entry>,
    margin: Duration,
    started: Instant,
    last_error_log: AtomicU64,
}

enum Endpoint {
    Fixed(Url),
    Discover { issuer: String, url: OnceCell<Url> },
}

#[derive(Clone)]
struct Entry {
    token: ExchangedToken,
    ttl: Duration,
}

struct EntryExpiry;

impl Expiry<[u8; 32], Entry> for EntryExpiry {
    fn expire_after_create(&self, _: &[u8; 32], value: &Entry, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

impl fmt::Debug for TokenExchanger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut issuers: Vec<&String> = self.inner.endpoints.keys().collect();
        issuers.sort();
        let mut targets: Vec<&String> = self.inner.targets.keys().collect();
        targets.sort();
        f.debug_struct("TokenExchanger")
            .field("grant", &self.inner.grant)
            .field("issuers", &issuers)
            .field("targets", &targets)
            .finish_non_exhaustive()
    }
}

/// Builder for [`TokenExchanger`]; see [`TokenExchanger::builder`].
#[derive(Debug, Clone)]
pub struct TokenExchangerBuilder {
    endpoints: Vec<(String, Option<String>)>,
    auth: Option<ClientAuth>,
    grant: Grant,
    targets: Vec<Target>,
    http: Option<HttpClient>,
    timeout: Option<Duration>,
    max_response_bytes: usize,
    cache_max_bytes: u64,
    margin: Duration,
}

impl Default for TokenExchangerBuilder {
    fn default() -> Self {
        TokenExchangerBuilder {
            endpoints: Vec::new(),
            auth: None,
            grant: Grant::default(),
            targets: Vec::new(),
            http: None,
            timeout: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            cache_max_bytes: DEFAULT_CACHE_MAX_BYTES,
            margin: DEFAULT_EXPIRY_MARGIN,
        }
    }
}

impl TokenExchangerBuilder {
    /// An issuer whose tokens may be exchanged; its token endpoint is read from its metadata
    /// (RFC 8414, then OpenID Connect discovery) on first use, and used only if the document's
    /// `issuer` equals `issuer` exactly and the endpoint is on the issuer's origin.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.endpoints.push((issuer.into(), None));
        self
    }

    /// An issuer whose tokens are exchanged at `token_endpoint` (`MCP_AUTH_EXCHANGE_TOKEN_ENDPOINT`).
    /// Needed where discovery cannot vouch for the endpoint: Entra v1 tokens name
    /// `https://sts.windows.net/<tenant>/` while the token endpoint is on
    /// `login.microsoftonline.com`.
    pub fn issuer_token_endpoint(
        mut self,
        issuer: impl Into<String>,
        token_endpoint: impl Into<String>,
    ) -> Self {
        self.endpoints
            .push((issuer.into(), Some(token_endpoint.into())));
        self
    }

    /// Sets the client authentication (shared with introspection: basic or post).
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// `client_secret_basic` with these credentials (the default method).
    pub fn client_secret_basic(
        self,
        client_id: impl Into<String>,
        secret: impl Into<ClientSecret>,
    ) -> Self {
        self.client_auth(ClientAuth::ClientSecretBasic {
            client_id: client_id.into(),
            client_secret: secret.into(),
        })
    }

    /// `client_secret_post` with these credentials.
    pub fn client_secret_post(
        self,
        client_id: impl Into<String>,
        secret: impl Into<ClientSecret>,
    ) -> Self {
        self.client_auth(ClientAuth::ClientSecretPost {
            client_id: client_id.into(),
            client_secret: secret.into(),
        })
    }

    /// The grant (default RFC 8693 token exchange).
    pub fn grant(mut self, grant: Grant) -> Self {
        self.grant = grant;
        self
    }

    /// Adds a downstream target.
    pub fn target(mut self, target: Target) -> Self {
        self.targets.push(target);
        self
    }

    /// Adds downstream targets.
    pub fn targets(mut self, targets: impl IntoIterator<Item = Target>) -> Self {
        self.targets.extend(targets);
        self
    }

    /// Uses this HTTP client (default: the process-wide [`HttpClient::shared`]).
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.http = Some(client);
        self
    }

    /// Overall timeout of one call to the token endpoint (default 5 s); builds a dedicated client.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Bound on the cache's memory, in approximate bytes (default 16 MiB).
    pub fn cache_max_bytes(mut self, bytes: u64) -> Self {
        self.cache_max_bytes = bytes;
        self
    }

    /// How long before its `exp` an exchanged token leaves the cache (default 10 s, at most half
    /// its lifetime).
    pub fn expiry_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// Validates the settings. Fails without an issuer, credentials or targets, with a
    /// non-https URL outside loopback, an issuer named twice, a target with a scope outside the
    /// RFC 6749 character set, a `resource` target that is not an absolute URL, or an
    /// on-behalf-of target without scopes (Entra names the target by its scopes).
    pub fn build(self) -> Result<TokenExchanger, BuildError> {
        let auth = self.auth.ok_or(BuildError::Missing(setting::CLIENT_ID))?;
        if matches!(auth, ClientAuth::Bearer(_)) {
            return Err(BuildError::invalid(
                setting::AUTH_METHOD,
                "a token endpoint authenticates clients with client_secret_basic or client_secret_post",
            ));
        }
        let prepared = auth.prepare(CredentialSettings {
            client_id: setting::CLIENT_ID,
            client_secret: setting::CLIENT_SECRET,
        })?;
        if self.endpoints.is_empty() {
            return Err(BuildError::Missing(setting::ISSUER));
        }
        let mut endpoints = HashMap::new();
        for (issuer, endpoint) in self.endpoints {
            if issuer.trim().is_empty() {
                return Err(BuildError::invalid(setting::ISSUER, "empty issuer"));
            }
            let ep = match endpoint {
                Some(e) => Endpoint::Fixed(parse_url(setting::TOKEN_ENDPOINT, &e)?),
                None => {
                    parse_url(setting::ISSUER, &issuer)?;
                    Endpoint::Discover {
                        issuer: issuer.clone(),
                        url: OnceCell::new(),
                    }
                }
            };
            if endpoints.insert(issuer, Arc::new(ep)).is_some() {
                return Err(BuildError::invalid(
                    setting::TOKEN_ENDPOINT,
                    "an issuer has two token endpoints",
                ));
            }
        }
        if self.targets.is_empty() {
            return Err(BuildError::Missing(setting::TARGETS));
        }
        let mut targets = HashMap::new();
        for t in self.targets {
            if t.id.is_empty() || t.id.chars().any(|c| c.is_control() || c == ' ') {
                return Err(BuildError::invalid(
                    setting::TARGETS,
                    "a target is empty or holds spaces or control characters",
                ));
            }
            for s in &t.scopes {
                validate_scope(s).map_err(|_| {
                    BuildError::invalid(
                        setting::TARGETS,
                        "a scope holds characters outside RFC 6749's set",
                    )
                })?;
            }
            if t.parameter != TargetParameter::Audience {
                match Url::parse(&t.id) {
                    Ok(u) if u.fragment().is_none() => {}
                    _ => {
                        return Err(BuildError::invalid(
                            setting::TARGETS,
                            "a resource target must be an absolute URL without fragment (RFC 8707)",
                        ));
                    }
                }
            }
            if self.grant == Grant::OnBehalfOf && t.scopes.is_empty() {
                return Err(BuildError::invalid(
                    setting::TARGETS,
                    "on-behalf-of names the target by its scopes (<App ID URI>/.default): give every target one",
                ));
            }
            if targets.insert(t.id.clone(), t).is_some() {
                return Err(BuildError::invalid(
                    setting::TARGETS,
                    "a target is listed twice",
                ));
            }
        }
        let http = match (self.http, self.timeout) {
            (Some(c), _) => c,
            (None, Some(t)) => HttpClient::new(HttpClientConfig {
                timeout: t,
                connect_timeout: t.min(DEFAULT_CONNECT_TIMEOUT),
                max_body_bytes: self.max_response_bytes,
            })?,
            (None, None) => HttpClient::shared(),
        };
        let cache = Cache::builder()
            .max_capacity(self.cache_max_bytes)
            .weigher(|_: &[u8; 32], e: &Entry| {
                u32::try_from(e.token.inner.access_token.len() * 2 + 256).unwrap_or(u32::MAX)
            })
            .expire_after(EntryExpiry)
            .build();
        Ok(TokenExchanger {
            inner: Arc::new(Inner {
                endpoints,
                auth: prepared,
                grant: self.grant,
                targets,
                http,
                max_body: self.max_response_bytes,
                cache,
                margin: self.margin,
                started: Instant::now(),
                last_error_log: AtomicU64::new(u64::MAX),
            }),
        })
    }
}

fn parse_url(setting: Setting, raw: &str) -> Result<Url, BuildError> {
    let url = Url::parse(raw.trim())
        .map_err(|e| BuildError::invalid(setting, format!("not a URL: {e}")))?;
    if check_url(&url).is_err() {
        return Err(BuildError::invalid(
            setting,
            "must use https (plain http is allowed only on loopback)",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err(BuildError::invalid(
            setting,
            "must not carry credentials or a fragment",
        ));
    }
    Ok(url)
}

/// The token endpoint's success answer (RFC 6749 §5.1, RFC 8693 §2.2.1).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    issued_token_type: Option<String>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
}

/// An IdP's error code, reduced to RFC 6749's `error` character set and 64 characters.
fn filtered_code(code: &str) -> String {
    code.chars()
        .filter(|c| matches!(c, '\x20'..='\x7e') && *c != '"' && *c != '\\')
        .take(64)
        .collect()
}

impl TokenExchanger {
    /// Starts a builder.
    pub fn builder() -> TokenExchangerBuilder {
        TokenExchangerBuilder::default()
    }

    /// The configured targets.
    pub fn targets(&self) -> impl Iterator<Item = &Target> {
        self.inner.targets.values()
    }

    /// The grant in use.
    pub fn grant(&self) -> Grant {
        self.inner.grant
    }

    /// Drops every cached downstream token.
    pub fn invalidate_cache(&self) {
        self.inner.cache.invalidate_all();
    }

    /// Resolves every discovered token endpoint now, so a misconfiguration shows at start-up.
    pub async fn discover(&self) -> Result<(), ExchangeError> {
        for ep in self.inner.endpoints.values() {
            self.inner.endpoint(ep).await?;
        }
        Ok(())
    }

    async fn exchange(
        &self,
        raw: &str,
        verified: &AccessToken,
        target: &str,
        scopes: Option<&[&str]>,
    ) -> Result<ExchangedToken, ExchangeError> {
        let inner = &*self.inner;
        let target = inner
            .targets
            .get(target)
            .ok_or(ExchangeError::UnknownTarget)?;
        let scopes: Vec<String> = match scopes {
            None => {
                let mut all = target.scopes.clone();
                all.sort();
                all.dedup();
                all
            }
            Some(wanted) => {
                let mut out: Vec<String> = Vec::with_capacity(wanted.len());
                for s in wanted {
                    if !target.scopes.iter().any(|a| a == s) {
                        return Err(ExchangeError::ScopeNotAllowed);
                    }
                    if !out.iter().any(|o| o == s) {
                        out.push((*s).to_owned());
                    }
                }
                out.sort();
                out
            }
        };
        let endpoint = verified
            .issuer()
            .and_then(|i| inner.endpoints.get(i))
            .ok_or_else(|| {
                tracing::warn!(issuer = ?verified.issuer(), "token exchange refused: no token endpoint for the token's issuer");
                ExchangeError::UnknownIssuer
            })?
            .clone();
        let now = crate::claims::unix_now();
        let subject_exp = verified.expires_at_unix();
        if subject_exp.is_some_and(|exp| now >= exp) {
            return Err(ExchangeError::SubjectExpired);
        }
        let key = cache_key(raw, &target.id, &scopes);
        if let Some(entry) = inner.cache.get(&key).await {
            crate::telemetry::cache_lookup("exchange", "process", true);
            tracing::debug!(subject = %token_tag(raw), target = %target.id, "exchanged token from the cache");
            return Ok(entry.token);
        }
        crate::telemetry::cache_lookup("exchange", "process", false);
        let result = inner
            .cache
            .try_get_with(key, async {
                let token = inner.call(&endpoint, raw, target, &scopes).await?;
                let ttl = inner.ttl(&token, subject_exp, crate::claims::unix_now());
                Ok::<_, ExchangeError>(Entry { token, ttl })
            })
            .await;
        match result {
            Ok(entry) => {
                if entry.ttl.is_zero() {
                    inner.cache.invalidate(&key).await;
                }
                Ok(entry.token)
            }
            Err(e) => Err((*e).clone()),
        }
    }
}

/// The cache key: BLAKE3 over the subject token's hash, the target and the sorted scopes, each
/// length-prefixed (no two inputs share a key).
fn cache_key(raw: &str, target: &str, scopes: &[String]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("mcp-auth token exchange cache v1");
    h.update(blake3::hash(raw.as_bytes()).as_bytes());
    h.update(&(target.len() as u64).to_le_bytes());
    h.update(target.as_bytes());
    for s in scopes {
        h.update(&(s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    }
    h.finalize().into()
}

impl Inner {
    /// How long `token` may be served from the cache: never past its own `exp` (less the
    /// margin), nor past the subject token's.
    fn ttl(&self, token: &ExchangedToken, subject_exp: Option<u64>, now: u64) -> Duration {
        let own = match token.inner.expires_at {
            Some(exp) => {
                let life = exp.saturating_sub(now);
                let margin = self.margin.as_secs().min(life / 2);
                Duration::from_secs(life.saturating_sub(margin))
            }
            None => DEFAULT_TTL_WITHOUT_EXPIRY,
        };
        match subject_exp {
            Some(exp) => own.min(Duration::from_secs(exp.saturating_sub(now))),
            None => own,
        }
    }

    async fn endpoint<'a>(&self, ep: &'a Endpoint) -> Result<&'a Url, ExchangeError> {
        match ep {
            Endpoint::Fixed(u) => Ok(u),
            Endpoint::Discover { issuer, url } => {
                url.get_or_try_init(|| self.discover(issuer)).await
            }
        }
    }

    async fn discover(&self, issuer: &str) -> Result<Url, ExchangeError> {
        let doc = match crate::fetch::authorization_server_metadata(&self.http, issuer).await {
            Ok(doc) => doc,
            Err(e) if e.is_transient() => {
                tracing::warn!(issuer, error = %e, "authorization server metadata unavailable");
                return Err(ExchangeError::Unavailable {
                    retry_after: e.retry_after(),
                });
            }
            Err(e) => {
                self.log_config(var::TOKEN_ENDPOINT, &format!("{issuer}: {e}"));
                return Err(ExchangeError::Misconfigured {
                    variable: var::TOKEN_ENDPOINT,
                });
            }
        };
        let found = doc.get("token_endpoint").and_then(|v| v.as_str());
        let issuer_url = Url::parse(issuer).map_err(|_| ExchangeError::Misconfigured {
            variable: var::TOKEN_ENDPOINT,
        })?;
        match found.map(Url::parse) {
            Some(Ok(u)) if check_url(&u).is_ok() && same_origin(&issuer_url, &u) => {
                tracing::info!(issuer, endpoint = %u, "token endpoint discovered");
                Ok(u)
            }
            _ => {
                self.log_config(
                    var::TOKEN_ENDPOINT,
                    &format!(
                        "{issuer}: the metadata's token_endpoint is missing or not an https URL on \
                         the issuer's origin: credentials are not sent there; configure it"
                    ),
                );
                Err(ExchangeError::Misconfigured {
                    variable: var::TOKEN_ENDPOINT,
                })
            }
        }
    }

    /// Logs a configuration problem at error (at most once per 10 s; debug otherwise).
    fn log_config(&self, variable: &'static str, message: &str) {
        let now = self.started.elapsed().as_secs();
        let last = self.last_error_log.load(Ordering::Relaxed);
        let due = (last == u64::MAX || now >= last.saturating_add(10))
            && self
                .last_error_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if due {
            tracing::error!(variable, "token exchange: {message}");
        } else {
            tracing::debug!(variable, "token exchange: {message}");
        }
    }

    async fn call(
        &self,
        endpoint: &Endpoint,
        raw: &str,
        target: &Target,
        scopes: &[String],
    ) -> Result<ExchangedToken, ExchangeError> {
        let url = self.endpoint(endpoint).await?;
        let scope = scopes.join(" ");
        let mut form: Vec<(&str, &str)> = Vec::with_capacity(8);
        match self.grant {
            Grant::TokenExchange => {
                form.push(("grant_type", TOKEN_EXCHANGE_GRANT));
                form.push(("subject_token", raw));
                form.push(("subject_token_type", ACCESS_TOKEN_TYPE));
                form.push(("requested_token_type", ACCESS_TOKEN_TYPE));
                if target.parameter != TargetParameter::Resource {
                    form.push(("audience", &target.id));
                }
                if target.parameter != TargetParameter::Audience {
                    form.push(("resource", &target.id));
                }
            }
            Grant::OnBehalfOf => {
                form.push(("grant_type", JWT_BEARER_GRANT));
                form.push(("assertion", raw));
                form.push(("requested_token_use", "on_behalf_of"));
            }
        }
        if !scope.is_empty() {
            form.push(("scope", &scope));
        }
        let subject = token_tag(raw);
        let resp = match self
            .http
            .post_form(url, &form, Some(&self.auth), self.max_body)
            .await
        {
            Ok(r) => {
                crate::telemetry::idp_request("token_exchange", r.status().is_success());
                r
            }
            Err(e) => {
                crate::telemetry::idp_request("token_exchange", false);
                tracing::warn!(error = %e, endpoint = %url, %subject, "token exchange request failed");
                return Err(ExchangeError::Unavailable { retry_after: None });
            }
        };
        let status = resp.status().as_u16();
        let hint = retry_after(resp.headers()).map(|d| d.min(MAX_RETRY_AFTER));
        let body = resp.into_body();
        let error_code = || {
            serde_json::from_slice::<ErrorResponse>(&body)
                .ok()
                .map(|e| filtered_code(&e.error))
        };
        match status {
            200 => {}
            400 => {
                let code = error_code().unwrap_or_else(|| "invalid_request".to_owned());
                if code == "invalid_client" || code == "unauthorized_client" {
                    return Err(self.credentials_refused(status, &code));
                }
                tracing::info!(%subject, target = %target.id, error = %code, "the IdP refused the token exchange");
                return Err(ExchangeError::Refused { error: code });
            }
            401 | 403 => {
                let code = error_code().unwrap_or_default();
                return Err(self.credentials_refused(status, &code));
            }
            s if s == 429 || s >= 500 => {
                tracing::warn!(status, endpoint = %url, "token endpoint unavailable");
                return Err(ExchangeError::Unavailable { retry_after: hint });
            }
            s => {
                self.log_config(
                    var::TOKEN_ENDPOINT,
                    &format!("the token endpoint {url} answered {s}"),
                );
                return Err(ExchangeError::Misconfigured {
                    variable: var::TOKEN_ENDPOINT,
                });
            }
        }
        let parsed: TokenResponse = match serde_json::from_slice(&body) {
            Ok(p) => p,
            Err(_) => {
                tracing::error!(endpoint = %url, "token endpoint answered 200 with an unusable body");
                return Err(ExchangeError::Unavailable { retry_after: None });
            }
        };
        if !parsed.token_type.eq_ignore_ascii_case("bearer") {
            // N_A (not an access token) or a sender-constrained (DPoP) token: not usable as a
            // bearer credential downstream.
            self.log_config(
                var::GRANT,
                &format!(
                    "the IdP issued a token of type {:?}, not a bearer access token",
                    filtered_code(&parsed.token_type)
                ),
            );
            return Err(ExchangeError::Misconfigured {
                variable: var::GRANT,
            });
        }
        let mut authorization = match HeaderValue::from_str(&format!(
            "Bearer {}",
            parsed.access_token
        )) {
            // RFC 6750 b64token: anything else is no bearer token a downstream API can take.
            Ok(h) if crate::token::is_b64token(parsed.access_token.as_bytes()) => h,
            _ => {
                tracing::error!(endpoint = %url, "token endpoint issued an empty or unprintable token");
                return Err(ExchangeError::Unavailable { retry_after: None });
            }
        };
        authorization.set_sensitive(true);
        let granted = match parsed.scope {
            Some(s) => crate::scope::split_list(&s),
            None => scopes.to_vec(),
        };
        let expires_at = parsed
            .expires_in
            .map(|s| crate::claims::unix_now().saturating_add(s));
        tracing::debug!(%subject, issued = %token_tag(&parsed.access_token), target = %target.id,
            "token exchanged");
        Ok(ExchangedToken {
            inner: Arc::new(Issued {
                access_token: parsed.access_token,
                authorization,
                target: target.id.clone(),
                scopes: granted,
                expires_at,
                issued_token_type: parsed.issued_token_type,
            }),
        })
    }

    fn credentials_refused(&self, status: u16, code: &str) -> ExchangeError {
        self.log_config(
            var::CLIENT_ID,
            &format!(
                "the token endpoint refused our client credentials (HTTP {status} {code}): check \
                 {}, {} and {}",
                var::CLIENT_ID,
                var::CLIENT_SECRET,
                var::AUTH_METHOD
            ),
        );
        ExchangeError::Credentials {
            variable: var::CLIENT_SECRET,
        }
    }
}

/// The exchanger's settings from the environment (and `MCP_AUTH_CONFIG_FILE`): the
/// `MCP_AUTH_EXCHANGE_*` variables of [`var`]. Keys are the variable names without `MCP_AUTH_`,
/// lower-cased.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct ExchangeConfig {
    /// `MCP_AUTH_EXCHANGE_TOKEN_ENDPOINT`.
    #[serde(default)]
    pub exchange_token_endpoint: Option<String>,
    /// `MCP_AUTH_EXCHANGE_CLIENT_ID` (raw string).
    #[serde(default)]
    pub exchange_client_id: Option<String>,
    /// `MCP_AUTH_EXCHANGE_CLIENT_SECRET` (raw string; `Debug` redacts it).
    #[serde(default, deserialize_with = "deserialize_secret")]
    pub exchange_client_secret: Option<ClientSecret>,
    /// `MCP_AUTH_EXCHANGE_AUTH_METHOD`.
    #[serde(default)]
    pub exchange_auth_method: Option<String>,
    /// `MCP_AUTH_EXCHANGE_TARGETS`.
    #[serde(default)]
    pub exchange_targets: Option<String>,
    /// `MCP_AUTH_EXCHANGE_GRANT`.
    #[serde(default)]
    pub exchange_grant: Option<String>,
    /// `MCP_AUTH_EXCHANGE_TARGET_PARAMETER`.
    #[serde(default)]
    pub exchange_target_parameter: Option<String>,
}

fn deserialize_secret<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<ClientSecret>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(ClientSecret::new))
}

impl ExchangeConfig {
    /// The keys and their variables.
    pub const ENV: crate::config::EnvTable = crate::config::EnvTable::new(&[
        ("exchange_token_endpoint", var::TOKEN_ENDPOINT),
        ("exchange_client_id", var::CLIENT_ID),
        ("exchange_client_secret", var::CLIENT_SECRET),
        ("exchange_auth_method", var::AUTH_METHOD),
        ("exchange_targets", var::TARGETS),
        ("exchange_grant", var::GRANT),
        ("exchange_target_parameter", var::TARGET_PARAMETER),
    ]);

    /// Loads from the environment (and `MCP_AUTH_CONFIG_FILE`).
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        Self::from_figment(&crate::config::figment(&Self::ENV))
    }

    /// Loads from a figment the caller assembled.
    pub fn from_figment(figment: &figment::Figment) -> Result<Self, crate::config::ConfigError> {
        crate::config::extract(figment, &Self::ENV)
    }

    /// Whether token exchange is configured at all (`MCP_AUTH_EXCHANGE_TARGETS` set).
    pub fn is_enabled(&self) -> bool {
        self.exchange_targets
            .as_deref()
            .is_some_and(|t| !t.trim().is_empty())
    }

    /// A builder for tokens of `issuers` (the protected resource's accepted issuers), with these
    /// settings on top of `base` (a preset's builder, or [`TokenExchanger::builder`]).
    /// `MCP_AUTH_EXCHANGE_TOKEN_ENDPOINT` is for a single issuer (with several, each issuer's
    /// metadata names its own), or overrides the endpoint of a preset whose issuers are one IdP
    /// (Entra's v1 and v2 issuers).
    pub fn apply(
        self,
        mut base: TokenExchangerBuilder,
        issuers: &[String],
    ) -> Result<TokenExchangerBuilder, crate::config::ConfigError> {
        let err = |e: BuildError| crate::config::ConfigError::from_build_in(&Self::ENV, e);
        let method = match &self.exchange_auth_method {
            Some(m) => {
                crate::client_auth::AuthMethod::parse_for(m, setting::AUTH_METHOD).map_err(err)?
            }
            // A preset's method (Entra: client_secret_post), else basic.
            None => base
                .auth
                .as_ref()
                .map(ClientAuth::method)
                .unwrap_or_default(),
        };
        if let Some(grant) = &self.exchange_grant {
            base = base.grant(grant.parse::<Grant>().map_err(err)?);
        }
        let parameter = match &self.exchange_target_parameter {
            Some(p) => p.parse::<TargetParameter>().map_err(err)?,
            None => TargetParameter::Audience,
        };
        let targets = parse_targets(self.exchange_targets.as_deref().unwrap_or(""), parameter)
            .map_err(err)?;
        base = base.targets(targets);
        match (self.exchange_client_id, self.exchange_client_secret) {
            (Some(id), Some(secret)) => {
                base = base.client_auth(ClientAuth::new(method, Some(id), secret));
            }
            (None, _) if base.auth.is_none() => {
                return Err(crate::config::ConfigError::Missing {
                    variable: var::CLIENT_ID.into(),
                });
            }
            (_, None) if base.auth.is_none() => {
                return Err(crate::config::ConfigError::Missing {
                    variable: var::CLIENT_SECRET.into(),
                });
            }
            (id, secret) => {
                // A preset gave the client id (Entra: the API's own application id).
                let preset_id = base
                    .auth
                    .as_ref()
                    .and_then(|a| a.client_id())
                    .map(str::to_owned);
                let secret = secret.ok_or(crate::config::ConfigError::Missing {
                    variable: var::CLIENT_SECRET.into(),
                })?;
                base = base.client_auth(ClientAuth::new(method, id.or(preset_id), secret));
            }
        }
        if base.endpoints.is_empty() {
            if issuers.is_empty() {
                return Err(crate::config::ConfigError::Missing {
                    variable: "MCP_AUTH_AUTHORIZATION_SERVERS".into(),
                });
            }
            if issuers.len() > 1 && self.exchange_token_endpoint.is_some() {
                // One endpoint for several issuers would send one IdP's tokens to another.
                return Err(crate::config::ConfigError::Invalid {
                    variable: var::TOKEN_ENDPOINT.into(),
                    reason: "serves a single issuer; with several, leave it unset and each \
                             issuer's metadata names its own"
                        .into(),
                });
            }
            for i in issuers {
                base = match &self.exchange_token_endpoint {
                    Some(ep) => base.issuer_token_endpoint(i.clone(), ep.clone()),
                    None => base.issuer(i.clone()),
                };
            }
        } else if let Some(ep) = self.exchange_token_endpoint {
            // A preset named the issuers; the variable overrides its endpoint for all of them.
            for e in &mut base.endpoints {
                e.1 = Some(ep.clone());
            }
        }
        Ok(base)
    }

    /// [`apply`](Self::apply) on a fresh builder, then `build()`.
    pub fn into_exchanger(
        self,
        issuers: &[String],
    ) -> Result<TokenExchanger, crate::config::ConfigError> {
        self.apply(TokenExchanger::builder(), issuers)?
            .build()
            .map_err(|e| crate::config::ConfigError::from_build_in(&Self::ENV, e))
    }
}

impl TokenExchangerBuilder {
    /// The client id set so far (a preset's), if any.
    pub fn client_id(&self) -> Option<&str> {
        self.auth.as_ref().and_then(|a| a.client_id())
    }

    /// The token endpoint configured so far for `issuer` (a preset's: Entra's for its v1 and v2
    /// issuers): `None` for an issuer not named, or one whose endpoint is read from its metadata.
    ///
    /// ```
    /// use mcp_auth_core::exchange::TokenExchanger;
    /// let b = TokenExchanger::builder()
    ///     .issuer_token_endpoint("https://idp.example.com", "https://idp.example.com/token")
    ///     .issuer("https://other.example.com");
    /// assert_eq!(b.token_endpoint("https://idp.example.com"), Some("https://idp.example.com/token"));
    /// assert_eq!(b.token_endpoint("https://other.example.com"), None);
    /// ```
    pub fn token_endpoint(&self, issuer: &str) -> Option<&str> {
        self.endpoints
            .iter()
            .find(|(i, _)| i == issuer)
            .and_then(|(_, e)| e.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchanger() -> TokenExchanger {
        TokenExchanger::builder()
            .issuer_token_endpoint("https://idp.example.com", "https://idp.example.com/token")
            .client_secret_basic("rs", "secret")
            .target(Target::audience("https://a.example.com").scopes(["a:read", "a:write"]))
            .build()
            .unwrap()
    }

    #[test]
    fn builder_refuses_what_cannot_work() {
        let base = || {
            TokenExchanger::builder()
                .issuer("https://idp.example.com")
                .client_secret_basic("rs", "secret")
        };
        assert_eq!(
            base().build().unwrap_err(),
            BuildError::Missing(setting::TARGETS)
        );
        assert!(
            base()
                .target(Target::resource("not a url"))
                .build()
                .is_err()
        );
        assert!(
            base()
                .target(Target::audience("a").scopes(["bad\"scope"]))
                .build()
                .is_err()
        );
        assert!(
            base()
                .grant(Grant::OnBehalfOf)
                .target(Target::audience("api://x"))
                .build()
                .is_err()
        );
        assert!(
            TokenExchanger::builder()
                .issuer("http://idp.example.com")
                .client_secret_basic("rs", "secret")
                .target(Target::audience("a"))
                .build()
                .is_err(),
            "plain http outside loopback"
        );
        assert_eq!(
            TokenExchanger::builder()
                .issuer("https://idp.example.com")
                .client_secret_basic("", "secret")
                .target(Target::audience("a"))
                .build()
                .unwrap_err(),
            BuildError::Missing(setting::CLIENT_ID)
        );
    }

    #[test]
    fn cache_key_separates_subject_target_and_scopes() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let k = cache_key("tok", "https://a", &s(&["x"]));
        assert_eq!(k, cache_key("tok", "https://a", &s(&["x"])));
        assert_ne!(k, cache_key("tok2", "https://a", &s(&["x"])));
        assert_ne!(k, cache_key("tok", "https://b", &s(&["x"])));
        assert_ne!(k, cache_key("tok", "https://a", &s(&["y"])));
        assert_ne!(
            cache_key("tok", "ab", &s(&["c"])),
            cache_key("tok", "a", &s(&["bc"]))
        );
    }

    #[test]
    fn ttl_never_outlives_either_token() {
        let ex = exchanger();
        let issued = |exp: Option<u64>| ExchangedToken {
            inner: Arc::new(Issued {
                access_token: "t".into(),
                authorization: HeaderValue::from_static("Bearer t"),
                target: "a".into(),
                scopes: vec![],
                expires_at: exp,
                issued_token_type: None,
            }),
        };
        let now = 1_000_000;
        let i = &ex.inner;
        // Own exp 300 s away, margin 10 s; subject far away.
        assert_eq!(
            i.ttl(&issued(Some(now + 300)), Some(now + 3600), now),
            Duration::from_secs(290)
        );
        // The subject token expires first.
        assert_eq!(
            i.ttl(&issued(Some(now + 300)), Some(now + 20), now),
            Duration::from_secs(20)
        );
        // A short-lived exchanged token keeps half its life.
        assert_eq!(
            i.ttl(&issued(Some(now + 8)), None, now),
            Duration::from_secs(4)
        );
        // No expires_in: the default, still bounded by the subject.
        assert_eq!(
            i.ttl(&issued(None), Some(now + 5), now),
            Duration::from_secs(5)
        );
        assert_eq!(i.ttl(&issued(None), None, now), DEFAULT_TTL_WITHOUT_EXPIRY);
    }

    #[tokio::test]
    async fn tool_input_cannot_pick_a_target_or_scope() {
        let m = mcp_auth_idp_harness::metrics::MetricsCapture::new();
        let _recording = m.install();
        let ex = exchanger();
        let verified = AccessToken::builder()
            .subject("u")
            .issuer("https://idp.example.com")
            .build();
        let subject = SubjectToken::new("raw-token", verified, ex.clone());
        assert_eq!(
            subject
                .exchange_for("https://evil.example.com")
                .await
                .unwrap_err(),
            ExchangeError::UnknownTarget
        );
        assert_eq!(
            subject
                .exchange_for_scopes("https://a.example.com", &["admin"])
                .await
                .unwrap_err(),
            ExchangeError::ScopeNotAllowed
        );
        // A token of another issuer is never sent to this IdP.
        let other = AccessToken::builder()
            .subject("u")
            .issuer("https://other.example.com")
            .build();
        let subject = SubjectToken::new("raw-token", other, ex.clone());
        assert_eq!(
            subject
                .exchange_for("https://a.example.com")
                .await
                .unwrap_err(),
            ExchangeError::UnknownIssuer
        );
        // Nothing was sent to the token endpoint, and nothing was even looked up (each call,
        // answered or not, is counted; each lookup too).
        assert_eq!(m.counter(crate::telemetry::IDP_REQUESTS, &[]), 0, "{m:?}");
        assert_eq!(m.counter(crate::telemetry::CACHE_LOOKUPS, &[]), 0, "{m:?}");
        let dbg = format!("{subject:?}");
        assert!(!dbg.contains("raw-token"), "{dbg}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature
    fn configuration_names_the_variable_to_fix() {
        use crate::config::ConfigError;
        let load = || ExchangeConfig::from_env();
        figment::Jail::expect_with(|jail| {
            jail.set_env(var::TARGETS, "https://a.example.com=a:read");
            jail.set_env(var::CLIENT_ID, "0123");
            let issuers = vec!["https://idp.example.com".to_owned()];
            let missing = load().unwrap().into_exchanger(&issuers).unwrap_err();
            assert_eq!(
                missing,
                ConfigError::Missing {
                    variable: var::CLIENT_SECRET.into()
                }
            );
            jail.set_env(var::CLIENT_SECRET, "s");
            jail.set_env(var::GRANT, "impersonation");
            let bad = load().unwrap().into_exchanger(&issuers).unwrap_err();
            assert!(
                matches!(&bad, ConfigError::Invalid { variable, .. } if variable == var::GRANT),
                "{bad:?}"
            );
            jail.set_env(var::GRANT, "token_exchange");
            jail.set_env(var::TOKEN_ENDPOINT, "https://idp.example.com/token");
            let two = vec![issuers[0].clone(), "https://other.example.com".to_owned()];
            let shared = load().unwrap().into_exchanger(&two).unwrap_err();
            assert!(
                matches!(&shared, ConfigError::Invalid { variable, .. } if variable == var::TOKEN_ENDPOINT),
                "{shared:?}"
            );
            let cfg = load().unwrap();
            // The id is read as a raw string (figment would make 0123 a number).
            assert_eq!(cfg.exchange_client_id.as_deref(), Some("0123"));
            let ex = cfg.into_exchanger(&issuers).unwrap();
            assert_eq!(ex.grant(), Grant::TokenExchange);
            assert_eq!(ex.targets().count(), 1);
            Ok(())
        });
    }

    #[test]
    fn targets_parse_from_the_variable() {
        let t = parse_targets(
            "https://n.example.com=n:read,n:write;\napi://x=api://x/.default",
            TargetParameter::Resource,
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].id(), "https://n.example.com");
        assert_eq!(t[0].allowed_scopes(), ["n:read", "n:write"]);
        assert_eq!(t[1].allowed_scopes(), ["api://x/.default"]);
        assert_eq!(t[1].parameter(), TargetParameter::Resource);
        assert_eq!(filtered_code("invalid_grant\"\u{7}x"), "invalid_grantx");
    }
}
