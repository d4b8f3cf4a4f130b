//! The verifier, its builder, the result cache and the outbound call.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use mcp_auth_core::fetch::{
    DEFAULT_CONNECT_TIMEOUT, FetchError, HttpClient, HttpClientConfig, MetadataError,
    authorization_server_metadata, check_url, retry_after, same_origin,
};
use mcp_auth_core::token::token_tag;
use mcp_auth_core::{
    AccessToken, BuildError, InvalidToken, ResourceUrl, TokenVerifier, VerifyError, async_trait,
};
use moka::Expiry;
use moka::future::Cache;
use serde_json::Value;
use tokio::sync::{OnceCell, Semaphore};
use url::Url;

use crate::config::setting;
use crate::response::{Checks, Mapped, map_body};
use crate::{ClientAuth, ClientSecret};
use mcp_auth_core::Setting;
use mcp_auth_core::claims::ClaimRules;
use mcp_auth_core::client_auth::{CredentialSettings, PreparedAuth};
use mcp_auth_core::store::Store;
use mcp_auth_core::telemetry;

use crate::shared::{Namespace, Shared};

/// Default lifetime of a cached active result: also the longest time a revoked token keeps
/// working (the revocation lag).
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);
/// Default bound on the memory held by the result cache (weighed in bytes, approximately).
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Default bound on concurrent introspection calls (cache misses) per verifier.
pub const DEFAULT_MAX_CONCURRENT: usize = 32;
/// Default cap on an introspection response body.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Default clock leeway for `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Default number of extra introspection slots that only tokens seen active before may use.
pub const DEFAULT_RESERVED_FOR_KNOWN: usize = 8;
/// How many tokens seen active are remembered (their BLAKE3 hash and `exp`), for the reserved
/// slots.
const SEEN_ACTIVE_CAPACITY: u64 = 100_000;
/// The longest a token is remembered as seen active (when it carries no `exp`).
const SEEN_ACTIVE_TTL: Duration = Duration::from_secs(24 * 3600);
/// The `Retry-After` hint when every introspection slot is busy.
pub const SATURATED_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Most of the readiness probe's answer read (only its status matters).
const PROBE_MAX_BODY: usize = 64 * 1024;

/// The largest `Retry-After` passed on from the IdP (core's cap, the same for every verifier).
pub const MAX_RETRY_AFTER: Duration = mcp_auth_core::challenge::MAX_RETRY_AFTER;

const CREDENTIALS_HINT: &str = "the introspection endpoint refused our client credentials: check \
    MCP_AUTH_INTROSPECT_CLIENT_ID, MCP_AUTH_INTROSPECT_CLIENT_SECRET and \
    MCP_AUTH_INTROSPECT_AUTH_METHOD";

/// Verifies opaque (or any) access tokens by asking the authorization server (RFC 7662).
///
/// Only an HTTP 200 answer with `"active": true` that passes the local checks (`exp`/`nbf` with
/// leeway, `aud` naming a configured audience, `iss` when configured, not a refresh token, no
/// `cnf` other than a DPoP key binding) yields an [`AccessToken`]; a `cnf.jkt` binding marks it
/// DPoP-bound, and the bearer layer then demands a proof of that key. How other answers map:
///
/// | IdP answer | result | on the wire |
/// |---|---|---|
/// | 200, `active: false` | `Invalid(Inactive)` | 401 |
/// | 200, `active` missing or not a boolean | `Invalid(Inactive)` (fail closed) | 401 |
/// | 200, body not a JSON object, or over the size cap | `Unavailable` (logged at error) | 503 |
/// | 400 | `Invalid(Inactive)`; but `invalid_client` in the body is treated as 401 | 401 |
/// | 401, 403 (our credentials refused) | `Internal` (error log naming `MCP_AUTH_INTROSPECT_CLIENT_ID`) | 500 |
/// | 429, 5xx, timeout, connection error | `Unavailable` with the IdP's `Retry-After` (at most 300 s) | 503 |
/// | redirect (never followed), other statuses | `Internal` (error log naming `MCP_AUTH_INTROSPECT_URL`) | 500 |
/// | all introspection slots busy (a token seen active before may also use a reserve of its own) | `Unavailable`, retry after 1 s | 503 |
///
/// Garbage from a 200 maps to "unavailable" rather than "internal" because what usually sends it
/// is a proxy or a half-deployed IdP, which a retry outlives; it never blames the token.
///
/// Results are cached per token: active results for `min(cache_ttl, exp - now)`, the IdP's
/// `active: false` only when a negative TTL is set (never a refusal decided locally on an active
/// answer), errors never. Concurrent misses for one token share one call; distinct misses are
/// bounded by a semaphore, with a reserve for tokens seen active before. Cheap to clone (shared
/// state); the cache belongs to this verifier (and its clones) only.
///
/// The cache key is the 256-bit BLAKE3 digest of the token, so the cache never holds a token and
/// needs no comparison with a stored one (a collision is cryptographically out of reach). Keying
/// by the token itself with a constant-time comparison was measured slower (see the crate's
/// bench): a hit costs about 0.5-0.8 µs for a 43-byte opaque token, about 2 µs for a 1 KB one.
///
/// When the audience check is turned off, a response without `token_type` is refused
/// (`InvalidToken::Type`): `oidc-provider` reports refresh tokens `active` with neither `aud` nor
/// `token_type`, and without the audience check nothing else tells them from access tokens.
///
/// ```no_run
/// # fn demo() -> Result<(), mcp_auth_core::BuildError> {
/// use mcp_auth_introspect::IntrospectionVerifier;
/// let verifier = IntrospectionVerifier::builder()
///     .endpoint("https://idp.example.com/oauth2/introspect")
///     .client_secret_basic("mcp-server", "s3cret")
///     .resource_url("https://api.example.com/mcp")
///     .build()?;
/// # let _ = verifier; Ok(()) }
/// ```
#[derive(Clone)]
pub struct IntrospectionVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Endpoint,
    method: crate::AuthMethod,
    auth: PreparedAuth,
    checks: Checks,
    /// The resource URL (R) the verifier was built for, if any.
    resource: Option<String>,
    http: HttpClient,
    max_body: usize,
    cache: Option<Cache<[u8; 32], Entry>>,
    /// The second-level cache shared by replicas, when a store is configured.
    shared: Option<Shared>,
    cache_ttl: Duration,
    negative_ttl: Option<Duration>,
    permits: Semaphore,
    max_concurrent: usize,
    /// Slots only tokens seen active before may use: random bearer strings, each new, cannot
    /// take every slot from users whose cached result just expired.
    known_permits: Semaphore,
    /// Tokens seen active (BLAKE3 hash) and their `exp` (unix seconds).
    seen_active: moka::sync::Cache<[u8; 32], u64>,
    last_saturated_log: AtomicU64,
    saturated_unlogged: AtomicU64,
    ready: AtomicBool,
    started: Instant,
    last_error_log: AtomicU64,
    audience_warned: AtomicBool,
    /// The last readiness probe: when, and whether the IdP answered.
    last_probe: tokio::sync::Mutex<Option<(Instant, bool)>>,
}

/// How long a readiness probe's answer is reused.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

enum Endpoint {
    Fixed(Url),
    Discover { issuer: Url, url: OnceCell<Url> },
}

#[derive(Clone)]
struct Entry {
    outcome: Outcome,
    ttl: Duration,
    weight: u32,
}

#[derive(Clone)]
enum Outcome {
    Active(AccessToken),
    Rejected(InvalidToken),
}

struct EntryExpiry;

impl Expiry<[u8; 32], Entry> for EntryExpiry {
    fn expire_after_create(&self, _: &[u8; 32], value: &Entry, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _: &[u8; 32],
        value: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

impl fmt::Debug for IntrospectionVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let endpoint = match &self.inner.endpoint {
            Endpoint::Fixed(u) => u.as_str().to_owned(),
            Endpoint::Discover { issuer, url } => match url.get() {
                Some(u) => u.as_str().to_owned(),
                None => format!("(discovered from {issuer})"),
            },
        };
        f.debug_struct("IntrospectionVerifier")
            .field("endpoint", &endpoint)
            .field("auth_method", &self.inner.method.as_str())
            .field("audiences", &self.inner.checks.rules.accepted_audiences())
            .field("issuers", &self.inner.checks.rules.accepted_issuers())
            .field(
                "cache_ttl",
                &self.inner.cache.as_ref().map(|_| self.inner.cache_ttl),
            )
            .field("negative_cache_ttl", &self.inner.negative_ttl)
            .field("max_concurrent", &self.inner.max_concurrent)
            .finish_non_exhaustive()
    }
}

/// Builder for [`IntrospectionVerifier`]; see [`IntrospectionVerifier::builder`].
#[derive(Debug, Clone)]
pub struct IntrospectionVerifierBuilder {
    endpoint: Option<String>,
    issuer: Option<String>,
    other_issuers: Vec<String>,
    any_issuer: bool,
    auth: Option<ClientAuth>,
    audiences: Vec<String>,
    resource_url: Option<String>,
    skip_audience: bool,
    cache_ttl: Duration,
    negative_ttl: Option<Duration>,
    cache_max_bytes: u64,
    max_concurrent: usize,
    reserved_for_known: usize,
    leeway: Duration,
    http: Option<HttpClient>,
    timeout: Option<Duration>,
    max_response_bytes: usize,
    store: Option<Arc<dyn Store>>,
    store_prefix: String,
    claims: VendorClaims,
}

/// The claim conventions of an IdP, applied to core's [`ClaimRules`] at build (the same setters
/// as the JWT builder's, so a preset's rules work with opaque tokens too).
#[derive(Debug, Clone, Default)]
struct VendorClaims {
    scope_claims: Option<Vec<String>>,
    client_id_claims: Option<Vec<String>>,
    extra_scope_claims: Vec<String>,
    scope_prefix: Option<String>,
    required: Vec<(String, String)>,
    allowed_clients: Option<Vec<String>>,
    audience_optional: bool,
}

impl VendorClaims {
    fn apply(self, mut rules: ClaimRules) -> ClaimRules {
        if let Some(names) = self.scope_claims {
            rules = rules.scope_claims(names);
        }
        if let Some(names) = self.client_id_claims {
            rules = rules.client_id_claims(names);
        }
        if let Some(prefix) = self.scope_prefix {
            rules = rules.strip_scope_prefix(prefix);
        }
        for (name, value) in self.required {
            rules = rules.require_claim(name, value);
        }
        if let Some(clients) = self.allowed_clients {
            rules = rules.allowed_clients(clients);
        }
        rules
            .extra_scope_claims(self.extra_scope_claims)
            .audience_optional_for_allowed_clients(self.audience_optional)
    }
}

impl Default for IntrospectionVerifierBuilder {
    fn default() -> Self {
        IntrospectionVerifierBuilder {
            endpoint: None,
            issuer: None,
            other_issuers: Vec::new(),
            any_issuer: false,
            auth: None,
            audiences: Vec::new(),
            resource_url: None,
            skip_audience: false,
            cache_ttl: DEFAULT_CACHE_TTL,
            negative_ttl: None,
            cache_max_bytes: DEFAULT_CACHE_MAX_BYTES,
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            reserved_for_known: DEFAULT_RESERVED_FOR_KNOWN,
            leeway: DEFAULT_LEEWAY,
            http: None,
            timeout: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            store: None,
            store_prefix: "mcp-auth".into(),
            claims: VendorClaims::default(),
        }
    }
}

impl IntrospectionVerifierBuilder {
    /// The introspection endpoint (`MCP_AUTH_INTROSPECT_URL`). Credentials are sent here. When
    /// unset, it is discovered from the [`issuer`](Self::issuer)'s metadata.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// The issuer (`MCP_AUTH_INTROSPECT_ISSUER`): a response's `iss`, when it carries one, must
    /// be this value (or one of [`issuers`](Self::issuers)); a response without `iss` is vouched
    /// for by the configured endpoint and takes this issuer. Without an explicit endpoint the
    /// `introspection_endpoint` is read from its RFC 8414 metadata (used only if the metadata's
    /// `issuer` equals this value and the endpoint is on its origin). An issuer is required,
    /// here or through [`issuers`](Self::issuers).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Further accepted issuers (the authorization servers of the protected resource). The first
    /// one vouches for responses without `iss` when [`issuer`](Self::issuer) is not set.
    pub fn issuers<I, S>(mut self, issuers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.other_issuers
            .extend(issuers.into_iter().map(Into::into));
        self
    }

    /// Accept responses whatever their `iss`. Dangerous: the principal's issuer is then
    /// whatever the IdP says, or none. Logged as a warning at start-up.
    pub fn dangerous_accept_any_issuer(mut self) -> Self {
        self.any_issuer = true;
        self
    }

    /// Sets the client authentication.
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

    /// A static bearer credential for the introspection endpoint.
    pub fn bearer_credential(self, credential: impl Into<ClientSecret>) -> Self {
        self.client_auth(ClientAuth::Bearer(credential.into()))
    }

    /// Adds an accepted audience (`MCP_AUTH_INTROSPECT_AUDIENCE`).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Adds accepted audiences.
    pub fn audiences<I, S>(mut self, audiences: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.audiences.extend(audiences.into_iter().map(Into::into));
        self
    }

    /// The canonical resource URL (`MCP_AUTH_RESOURCE_URL`): its audience values are accepted
    /// (R, and R with a trailing slash for an origin-only R). Parsed in [`build`](Self::build).
    pub fn resource_url(mut self, url: impl Into<String>) -> Self {
        self.resource_url = Some(url.into());
        self
    }

    /// Turns the audience check off: any active token of the IdP is accepted, including tokens
    /// minted for other services. Logs a warning at build time. Only for IdPs that cannot put an
    /// audience into introspection responses, and only when the bearer layer checks audiences.
    pub fn dangerous_skip_audience(mut self) -> Self {
        self.skip_audience = true;
        self
    }

    /// Claim names read for scopes, first present wins (default `scope`, then `scp`; Entra's
    /// `scp`, then `roles`) ([`ClaimRules::scope_claims`]).
    pub fn scope_claims<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.claims.scope_claims = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Claim names read for the client id, first present wins (default `client_id`, then
    /// `azp`): Okta's `cid`, Entra v1's `appid` ([`ClaimRules::client_id_claims`]).
    pub fn client_id_claims<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.claims.client_id_claims = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Claims added to the scopes when present: Auth0's `permissions`
    /// ([`ClaimRules::extra_scope_claims`]).
    pub fn extra_scope_claims<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.claims.extra_scope_claims = names.into_iter().map(Into::into).collect();
        self
    }

    /// Strips `prefix` from granted scopes: Cognito's `<resource server>/`
    /// ([`ClaimRules::strip_scope_prefix`]).
    pub fn strip_scope_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.claims.scope_prefix = Some(prefix.into());
        self
    }

    /// The claim `name` must be the string `value`: Entra's `tid`, Cognito's `token_use`
    /// ([`ClaimRules::require_claim`]). Cumulative.
    pub fn require_claim(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.claims.required.push((name.into(), value.into()));
        self
    }

    /// The client id must be one of `clients` ([`ClaimRules::allowed_clients`]); an empty list
    /// fails the build.
    pub fn allowed_clients<I, S>(mut self, clients: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.claims.allowed_clients = Some(clients.into_iter().map(Into::into).collect());
        self
    }

    /// Accept responses without `aud` whose client is on the
    /// [`allowed_clients`](Self::allowed_clients) list
    /// ([`ClaimRules::audience_optional_for_allowed_clients`]). The bearer layer needs the same
    /// list (`RemoteAuthProviderBuilder::clients_in_place_of_audience`).
    pub fn audience_optional_for_allowed_clients(mut self, on: bool) -> Self {
        self.claims.audience_optional = on;
        self
    }

    /// Lifetime of a cached active result (`MCP_AUTH_INTROSPECT_CACHE_TTL_SECS`, default 60 s),
    /// never past the token's `exp`. This is the revocation lag: a revoked token keeps working
    /// this long. Zero turns the cache off (every request is introspected).
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// Caches the IdP's `active: false` answers for `ttl` (default: not cached). Keep it short;
    /// it spares the IdP repeated calls for the same bad token. Refusals decided here on an
    /// active answer (wrong audience, …) and errors are never cached. Random bearer strings are
    /// each new, so this does not help against a flood of them: the reserve of
    /// [`IntrospectionVerifierBuilder::reserved_introspections_for_known_tokens`] does.
    pub fn negative_cache_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = (!ttl.is_zero()).then_some(ttl);
        self
    }

    /// Bound on the cache's memory, in (approximate) bytes (default 16 MiB).
    pub fn cache_max_bytes(mut self, bytes: u64) -> Self {
        self.cache_max_bytes = bytes;
        self
    }

    /// Bound on concurrent introspection calls (default 32). A cache miss beyond it is answered
    /// "unavailable" (503, retry after 1 s) at once, so a flood of random bearer strings cannot
    /// exhaust the IdP or get our client throttled.
    pub fn max_concurrent_introspections(mut self, n: usize) -> Self {
        self.max_concurrent = n;
        self
    }

    /// Extra introspection slots (default [`DEFAULT_RESERVED_FOR_KNOWN`]) that only tokens seen
    /// active before may use, once the shared ones are busy: a flood of random bearer strings
    /// (each one new, so no cache helps) cannot starve users whose cached result just expired.
    /// Zero turns the reserve off.
    pub fn reserved_introspections_for_known_tokens(mut self, n: usize) -> Self {
        self.reserved_for_known = n;
        self
    }

    /// Clock leeway for `exp` and `nbf` (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Uses this HTTP client (default: the process-wide [`HttpClient::shared`]).
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.http = Some(client);
        self
    }

    /// Overall timeout of one introspection call (default 5 s); builds a dedicated client.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Cap on the response body (default 64 KiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// A second-level result cache in `store`, shared by every replica that uses the same store
    /// (`MCP_AUTH_STORE_URL`): a token introspected by one replica is not introspected again by
    /// the others while the entry lives. Behind the process cache (a hot token costs no store
    /// round trip), never past `exp` nor [`cache_ttl`](Self::cache_ttl); a store that is down or
    /// slow means asking the IdP, never a refusal. Entries are keyed by a hash of the token,
    /// namespaced by issuer, endpoint, client id and resource. Not used when the cache is off
    /// (`cache_ttl` zero). Whoever can write to the store can make a token look active: protect
    /// it like the IdP.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// The prefix of the shared cache's keys (`MCP_AUTH_STORE_PREFIX`, default `mcp-auth`).
    pub fn store_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.store_prefix = prefix.into();
        self
    }

    /// Validates the settings and builds the verifier. Fails without credentials, without an
    /// endpoint or issuer, with a non-https URL outside loopback, or without an audience (unless
    /// [`dangerous_skip_audience`](Self::dangerous_skip_audience)).
    pub fn build(self) -> Result<IntrospectionVerifier, BuildError> {
        let auth = self.auth.ok_or(BuildError::Missing(setting::CLIENT_ID))?;
        let prepared = auth.prepare(CredentialSettings {
            client_id: setting::CLIENT_ID,
            client_secret: setting::CLIENT_SECRET,
        })?;

        let issuer = self
            .issuer
            .as_deref()
            .map(|i| parse_url(setting::ISSUER, i))
            .transpose()?;
        let endpoint = match (&self.endpoint, &issuer) {
            (Some(e), _) => Endpoint::Fixed(parse_url(setting::URL, e)?),
            (None, Some(iss)) => Endpoint::Discover {
                issuer: iss.clone(),
                url: OnceCell::new(),
            },
            (None, None) => return Err(BuildError::Missing(setting::URL)),
        };

        let mut audiences = self.audiences;
        audiences.retain(|a| !a.trim().is_empty());
        let resource = self
            .resource_url
            .as_deref()
            .map(ResourceUrl::parse)
            .transpose()?;
        if let Some(r) = &resource {
            // R first, then the aliases.
            let mut with_r = r.audiences();
            for a in audiences {
                if !with_r.contains(&a) {
                    with_r.push(a);
                }
            }
            audiences = with_r;
        }
        let rules = if self.skip_audience {
            tracing::warn!(
                "introspection audience check is OFF (dangerous_skip_audience): tokens minted \
                 for other services are accepted unless the bearer layer checks the audience"
            );
            ClaimRules::dangerous_any_audience()
        } else if audiences.is_empty() {
            return Err(BuildError::Missing(setting::AUDIENCE));
        } else {
            ClaimRules::new(audiences)
        };
        let mut issuers: Vec<String> = self.issuer.iter().cloned().collect();
        for i in self.other_issuers {
            if i.trim().is_empty() {
                return Err(BuildError::invalid(setting::ISSUER, "empty issuer"));
            }
            if !issuers.contains(&i) {
                issuers.push(i);
            }
        }
        let issuer_id = issuers.join(" ");
        let rules = match issuers.first() {
            Some(vouching) => rules.implicit_issuer(vouching.clone()).issuers(issuers),
            None if self.any_issuer => {
                tracing::warn!(
                    "introspection issuer check is OFF (dangerous_accept_any_issuer): the \
                     principal's issuer is whatever the IdP says"
                );
                rules
            }
            None => {
                return Err(BuildError::Missing(setting::ISSUER));
            }
        }
        .leeway_secs(self.leeway.as_secs())
        .require_exp(false);
        if self
            .claims
            .allowed_clients
            .as_ref()
            .is_some_and(|c| c.is_empty() || c.iter().any(|c| c.trim().is_empty()))
        {
            return Err(BuildError::invalid(
                setting::ALLOWED_CLIENTS,
                "the client allowlist is empty or names an empty client id",
            ));
        }
        let rules = self.claims.apply(rules);

        if self.max_concurrent == 0 {
            return Err(BuildError::invalid(
                setting::MAX_CONCURRENT,
                "must be at least 1",
            ));
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

        let shared = match (&self.store, self.cache_ttl.is_zero()) {
            (Some(store), false) => {
                let endpoint_id = match &endpoint {
                    Endpoint::Fixed(u) => u.as_str().to_owned(),
                    Endpoint::Discover { issuer, .. } => format!("discover:{issuer}"),
                };
                let client_id = auth.client_id().unwrap_or_default().to_owned();
                let resource_id = match &resource {
                    Some(r) => r.as_str().to_owned(),
                    None => rules.accepted_audiences().unwrap_or_default().join(" "),
                };
                Some(Shared::new(
                    store.clone(),
                    &self.store_prefix,
                    Namespace {
                        issuer: &issuer_id,
                        endpoint: &endpoint_id,
                        client_id: &client_id,
                        resource: &resource_id,
                    },
                    self.max_response_bytes,
                ))
            }
            _ => None,
        };
        let cache = (!self.cache_ttl.is_zero()).then(|| {
            Cache::builder()
                .max_capacity(self.cache_max_bytes)
                .weigher(|_: &[u8; 32], e: &Entry| e.weight)
                .expire_after(EntryExpiry)
                .build()
        });

        Ok(IntrospectionVerifier {
            inner: Arc::new(Inner {
                endpoint,
                method: auth.method(),
                auth: prepared,
                checks: Checks {
                    rules,
                    issuer: self.issuer.clone(),
                },
                resource: resource.map(|r| r.as_str().to_owned()),
                http,
                max_body: self.max_response_bytes,
                cache,
                shared,
                cache_ttl: self.cache_ttl,
                negative_ttl: self.negative_ttl,
                permits: Semaphore::new(self.max_concurrent),
                max_concurrent: self.max_concurrent,
                known_permits: Semaphore::new(self.reserved_for_known),
                seen_active: moka::sync::Cache::builder()
                    .max_capacity(SEEN_ACTIVE_CAPACITY)
                    .time_to_live(SEEN_ACTIVE_TTL)
                    .build(),
                last_saturated_log: AtomicU64::new(u64::MAX),
                saturated_unlogged: AtomicU64::new(0),
                ready: AtomicBool::new(false),
                started: Instant::now(),
                last_error_log: AtomicU64::new(u64::MAX),
                audience_warned: AtomicBool::new(false),
                last_probe: tokio::sync::Mutex::new(None),
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

use mcp_auth_core::claims::unix_now as now_unix;

fn unavailable(retry_after: Option<Duration>) -> VerifyError {
    VerifyError::Unavailable {
        retry_after: retry_after.map(|d| d.min(MAX_RETRY_AFTER)),
    }
}

impl IntrospectionVerifier {
    /// Starts a builder.
    pub fn builder() -> IntrospectionVerifierBuilder {
        IntrospectionVerifierBuilder::default()
    }

    /// Drops every cached result (after a known revocation, say).
    pub fn invalidate_cache(&self) {
        if let Some(c) = &self.inner.cache {
            c.invalidate_all();
        }
    }

    /// Resolves the introspection endpoint now (discovery, when configured that way), so a
    /// misconfiguration shows at start-up instead of on the first request. Returns the endpoint.
    pub async fn discover(&self) -> Result<Url, VerifyError> {
        self.inner.endpoint().await.cloned()
    }

    async fn verify_with_cache(
        &self,
        cache: &Cache<[u8; 32], Entry>,
        token: &str,
    ) -> Result<AccessToken, VerifyError> {
        let key: [u8; 32] = blake3::hash(token.as_bytes()).into();
        if let Some(entry) = cache.get(&key).await {
            telemetry::cache_lookup("introspection", "process", true);
            return self.inner.entry_result(entry);
        }
        telemetry::cache_lookup("introspection", "process", false);
        let inner = &self.inner;
        // Single flight per process: concurrent misses for one token share this future.
        let entry = cache
            .try_get_with(key, async move {
                let store_key = inner.shared.as_ref().map(|s| s.key(token));
                if let (Some(shared), Some(k)) = (&inner.shared, &store_key)
                    && let Some(found) = shared.get(k).await
                    && let Some(entry) = inner.entry_from_store(&found.value, found.ttl)
                {
                    return Ok(entry);
                }
                let (mapped, body) = inner.introspect_bounded(token, &key).await?;
                let entry = inner.to_entry((mapped, body.len()))?;
                if let (Some(shared), Some(k), Outcome::Active(_)) =
                    (&inner.shared, &store_key, &entry.outcome)
                {
                    // Awaited (bounded by the store's timeout) so the next request at another
                    // replica finds it.
                    shared.set(k, &body, entry.ttl).await;
                }
                Ok::<_, VerifyError>(entry)
            })
            .await
            .map_err(|e| (*e).clone())?;
        self.inner.entry_result(entry)
    }
}

impl Inner {
    /// The readiness probe (see `check_ready`).
    async fn probe(&self) -> Result<(), VerifyError> {
        let mut last = self.last_probe.lock().await;
        if let Some((at, ok)) = *last
            && at.elapsed() < PROBE_INTERVAL
        {
            return if ok { Ok(()) } else { Err(unavailable(None)) };
        }
        let ok = match &self.endpoint {
            Endpoint::Discover { .. } => match self.endpoint().await {
                Ok(_) => true,
                Err(VerifyError::Unavailable { .. }) => false,
                // Reachable, but misconfigured: not ready either (logged by discovery).
                Err(_) => false,
            },
            Endpoint::Fixed(ep) => {
                let target = match &self.checks.issuer {
                    Some(iss) => Url::parse(&format!(
                        "{}/.well-known/openid-configuration",
                        iss.trim_end_matches('/')
                    ))
                    .ok(),
                    None => ep.join("/").ok(),
                };
                match target {
                    Some(u) => {
                        let probe = http::Request::get(u.as_str()).body(Default::default());
                        match probe {
                            Ok(probe) => match self.http.send(probe, PROBE_MAX_BODY).await {
                                Ok(r) => r.status().as_u16() < 500,
                                // A discovery document over the cap still shows the IdP up.
                                Err(FetchError::TooLarge(_)) => true,
                                Err(e) => {
                                    tracing::debug!(error = %e, "readiness probe failed");
                                    false
                                }
                            },
                            Err(_) => false,
                        }
                    }
                    None => false,
                }
            }
        };
        *last = Some((Instant::now(), ok));
        if ok {
            self.ready.store(true, Ordering::Relaxed);
            Ok(())
        } else {
            Err(unavailable(None))
        }
    }

    /// A process-cache entry from a shared-store value: the same checks as a fresh answer, and
    /// a lifetime no longer than the store entry's remaining one. `None` (ask the IdP) when the
    /// value does not map to an acceptable active token.
    fn entry_from_store(&self, body: &[u8], remaining: Duration) -> Option<Entry> {
        match map_body(body, &self.checks, now_unix()) {
            Ok(mapped @ Mapped::Active { .. }) => {
                let mut entry = self.to_entry((mapped, body.len())).ok()?;
                entry.ttl = entry.ttl.min(remaining);
                (!entry.ttl.is_zero()).then_some(entry)
            }
            _ => {
                tracing::debug!("shared cache entry not acceptable: asking the IdP");
                None
            }
        }
    }

    fn entry_result(&self, entry: Entry) -> Result<AccessToken, VerifyError> {
        match entry.outcome {
            Outcome::Active(t) => {
                // The entry's TTL already ends at `exp`; this re-check costs one clock read.
                if let Some(exp) = t.expires_at_unix()
                    && now_unix() >= exp.saturating_add(self.checks.rules.leeway())
                {
                    return Err(InvalidToken::Expired.into());
                }
                Ok(t)
            }
            Outcome::Rejected(r) => Err(r.into()),
        }
    }

    /// Turns a fresh answer into a cache entry; answers that must not be cached become errors
    /// (shared with concurrent waiters, never stored).
    fn to_entry(&self, mapped: (Mapped, usize)) -> Result<Entry, VerifyError> {
        let (mapped, body_len) = mapped;
        match mapped {
            Mapped::Active { token, exp } => {
                let mut ttl = self.cache_ttl;
                if let Some(exp) = exp {
                    ttl = ttl.min(Duration::from_secs(exp.saturating_sub(now_unix())));
                }
                Ok(Entry {
                    outcome: Outcome::Active(token),
                    ttl,
                    weight: u32::try_from(body_len.saturating_mul(2) + 128).unwrap_or(u32::MAX),
                })
            }
            // Only the IdP's own "not active" is cached negatively: a refusal decided here (an
            // active token with the wrong audience, not yet valid, …) is decided again on the
            // next answer, and errors are never cached.
            Mapped::Rejected(r @ InvalidToken::Inactive) => match self.negative_ttl {
                Some(ttl) => Ok(Entry {
                    outcome: Outcome::Rejected(r),
                    ttl,
                    weight: 64,
                }),
                None => Err(r.into()),
            },
            Mapped::Rejected(r) => Err(r.into()),
        }
    }

    async fn endpoint(&self) -> Result<&Url, VerifyError> {
        match &self.endpoint {
            Endpoint::Fixed(u) => Ok(u),
            Endpoint::Discover { issuer, url } => {
                url.get_or_try_init(|| self.discover_endpoint(issuer)).await
            }
        }
    }

    /// RFC 8414 discovery (path-inserted well-known URL), falling back to OpenID Connect
    /// discovery when the first answers 404.
    async fn discover_endpoint(&self, issuer: &Url) -> Result<Url, VerifyError> {
        let configured = self.checks.issuer.as_deref().unwrap_or(issuer.as_str());
        // Core's discovery: RFC 8414, then OpenID Connect; the document's `issuer` must equal
        // the configured one (the rule token exchange follows too).
        let doc = match authorization_server_metadata(&self.http, configured).await {
            Ok(doc) => doc,
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, issuer = configured, "authorization server metadata unavailable");
                return Err(unavailable(e.retry_after()));
            }
            Err(e @ MetadataError::Fetch(_)) | Err(e @ MetadataError::BadIssuer) => {
                return Err(self.config_error(
                    "MCP_AUTH_INTROSPECT_ISSUER",
                    format!("discovery from {configured} failed: {e}"),
                ));
            }
            Err(MetadataError::NotFound) => {
                self.ready.store(true, Ordering::Relaxed);
                return Err(self.config_error(
                    "MCP_AUTH_INTROSPECT_ISSUER",
                    "the issuer publishes no authorization server metadata; set \
                     MCP_AUTH_INTROSPECT_URL"
                        .into(),
                ));
            }
            Err(e) => {
                self.ready.store(true, Ordering::Relaxed);
                return Err(self.config_error(
                    "MCP_AUTH_INTROSPECT_ISSUER",
                    format!("{e} (configured {configured:?}): metadata ignored"),
                ));
            }
        };
        self.ready.store(true, Ordering::Relaxed);
        let Some(ep) = doc.get("introspection_endpoint").and_then(Value::as_str) else {
            return Err(self.config_error(
                "MCP_AUTH_INTROSPECT_URL",
                "the metadata has no introspection_endpoint; set MCP_AUTH_INTROSPECT_URL".into(),
            ));
        };
        let ep = match Url::parse(ep) {
            Ok(u) if check_url(&u).is_ok() && same_origin(issuer, &u) => u,
            _ => {
                return Err(self.config_error(
                    "MCP_AUTH_INTROSPECT_URL",
                    format!(
                        "discovered introspection_endpoint {ep:?} is not an https URL on the \
                         issuer's origin: credentials are not sent there; set MCP_AUTH_INTROSPECT_URL"
                    ),
                ));
            }
        };
        tracing::info!(endpoint = %ep, "introspection endpoint discovered");
        Ok(ep)
    }

    /// Logs a configuration problem (at error, at most once per 10 s; debug otherwise) and
    /// returns the `Internal` error.
    fn config_error(&self, variable: &'static str, message: String) -> VerifyError {
        if self.error_log_due() {
            tracing::error!(variable, "{message}");
        } else {
            tracing::debug!(variable, "{message}");
        }
        VerifyError::Internal(Cow::Owned(message))
    }

    fn error_log_due(&self) -> bool {
        self.log_due(&self.last_error_log)
    }

    /// At most one log line per 10 s per `slot` (seconds since start, `u64::MAX` for never).
    fn log_due(&self, slot: &AtomicU64) -> bool {
        let now = self.started.elapsed().as_secs();
        let last = slot.load(Ordering::Relaxed);
        let due = last == u64::MAX || now >= last.saturating_add(10);
        due && slot
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Whether the token with BLAKE3 hash `key` was seen active and has not expired since.
    fn seen_active(&self, key: &[u8; 32]) -> bool {
        self.seen_active
            .get(key)
            .is_some_and(|exp| now_unix() < exp.saturating_add(self.checks.rules.leeway()))
    }

    /// One introspection call, if a slot is free: a shared one, or for a token seen active
    /// before, a reserved one.
    async fn introspect_bounded(
        &self,
        token: &str,
        key: &[u8; 32],
    ) -> Result<(Mapped, Vec<u8>), VerifyError> {
        let permit = match self.permits.try_acquire() {
            Ok(p) => Some(p),
            Err(_) if self.seen_active(key) => self.known_permits.try_acquire().ok(),
            Err(_) => None,
        };
        let Some(_permit) = permit else {
            telemetry::idp_saturated("introspection");
            // A flood makes one of these per request: one warning per 10 s, with the count.
            let unlogged = self.saturated_unlogged.fetch_add(1, Ordering::Relaxed) + 1;
            if self.log_due(&self.last_saturated_log) {
                self.saturated_unlogged.store(0, Ordering::Relaxed);
                tracing::warn!(
                    max = self.max_concurrent,
                    refused = unlogged,
                    "every introspection slot is busy: answering 503"
                );
            } else {
                tracing::debug!("every introspection slot is busy: answering 503");
            }
            return Err(unavailable(Some(SATURATED_RETRY_AFTER)));
        };
        let result = self.introspect(token).await;
        if let Ok((Mapped::Active { exp, .. }, _)) = &result {
            let until = exp.unwrap_or_else(|| now_unix().saturating_add(SEEN_ACTIVE_TTL.as_secs()));
            self.seen_active.insert(*key, until);
        }
        if let Ok((Mapped::Rejected(r), _)) = &result {
            if *r == InvalidToken::Audience && !self.audience_warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    expected = ?self.checks.rules.accepted_audiences(),
                    "an active token was rejected on audience; if every token fails this way, \
                     check MCP_AUTH_INTROSPECT_AUDIENCE / MCP_AUTH_RESOURCE_URL"
                );
            }
            tracing::debug!(reason = r.code(), token = %token_tag(token), "introspection rejected the token");
        }
        result
    }

    async fn introspect(&self, token: &str) -> Result<(Mapped, Vec<u8>), VerifyError> {
        let url = self.endpoint().await?;
        let mut form: Vec<(&str, &str)> = Vec::with_capacity(4);
        form.push(("token", token));
        form.push(("token_type_hint", "access_token"));
        let resp = match self
            .http
            .post_form(url, &form, Some(&self.auth), self.max_body)
            .await
        {
            Ok(r) => {
                telemetry::idp_request("introspection", r.status().is_success());
                r
            }
            Err(e) => {
                telemetry::idp_request("introspection", false);
                if e.is_transient() {
                    tracing::warn!(error = %e, endpoint = %url, "introspection request failed");
                } else {
                    tracing::error!(error = %e, endpoint = %url,
                        "introspection response unusable: answering 503");
                }
                return Err(unavailable(None));
            }
        };
        self.ready.store(true, Ordering::Relaxed);
        let status = resp.status().as_u16();
        match status {
            200 => {
                let body = resp.into_body();
                match map_body(&body, &self.checks, now_unix()) {
                    Ok(m) => Ok((m, body.to_vec())),
                    Err(_) => {
                        if self.error_log_due() {
                            tracing::error!(endpoint = %url,
                                "introspection answered 200 without a JSON object: answering 503; \
                                 check MCP_AUTH_INTROSPECT_URL");
                        }
                        Err(unavailable(None))
                    }
                }
            }
            400 => {
                // RFC 6749 §5.2 lets servers answer `invalid_client` with 400 too.
                let error = serde_json::from_slice::<Value>(resp.body())
                    .ok()
                    .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned));
                if matches!(
                    error.as_deref(),
                    Some("invalid_client" | "unauthorized_client")
                ) {
                    return Err(self.config_error(
                        "MCP_AUTH_INTROSPECT_CLIENT_ID",
                        format!("{CREDENTIALS_HINT} (HTTP 400 {})", error.unwrap_or_default()),
                    ));
                }
                Ok((Mapped::Rejected(InvalidToken::Inactive), Vec::new()))
            }
            401 | 403 => Err(self.config_error(
                "MCP_AUTH_INTROSPECT_CLIENT_ID",
                format!("{CREDENTIALS_HINT} (HTTP {status})"),
            )),
            429 | 500..=599 => {
                let hint = retry_after(resp.headers());
                tracing::warn!(status, endpoint = %url, "introspection endpoint unavailable");
                Err(unavailable(hint))
            }
            300..=399 => Err(self.config_error(
                "MCP_AUTH_INTROSPECT_URL",
                format!(
                    "the introspection endpoint answered a redirect (HTTP {status}), which is \
                     never followed: set MCP_AUTH_INTROSPECT_URL to the final URL"
                ),
            )),
            _ => Err(self.config_error(
                "MCP_AUTH_INTROSPECT_URL",
                format!(
                    "the introspection endpoint answered HTTP {status}: check MCP_AUTH_INTROSPECT_URL"
                ),
            )),
        }
    }
}

#[async_trait]
impl TokenVerifier for IntrospectionVerifier {
    async fn verify(&self, token: &str) -> Result<AccessToken, VerifyError> {
        match &self.inner.cache {
            Some(cache) => self.verify_with_cache(cache, token).await,
            None => {
                let key: [u8; 32] = blake3::hash(token.as_bytes()).into();
                let (mapped, _) = self.inner.introspect_bounded(token, &key).await?;
                match mapped {
                    Mapped::Active { token, .. } => Ok(token),
                    Mapped::Rejected(r) => Err(r.into()),
                }
            }
        }
    }

    /// The process cache's result for exactly these bytes, for the bearer layer's lookup before
    /// its own checks: only an active result (a refusal is left to [`verify`](Self::verify),
    /// which answers it from the cache the same way), only for a `b64token`, and not past the
    /// token's `exp` (the check `verify` makes on a cached result). The cache's key is the
    /// BLAKE3 hash of the token, so a lookup compares hashes, never the token itself. The
    /// shared store is not asked (that is I/O), and neither is the IdP.
    ///
    /// moka's cache answers through a future; it is polled once here (`now_or_never`). Should
    /// it have to wait (its housekeeping busy on another thread), it is dropped (moka's futures
    /// may be dropped at any await), this answers `None`, and the layer takes the `verify` path,
    /// which waits for it.
    fn verify_cached(&self, token: &[u8]) -> Option<AccessToken> {
        let cache = self.inner.cache.as_ref()?;
        if !mcp_auth_core::token::is_b64token(token) {
            return None;
        }
        let key: [u8; 32] = blake3::hash(token).into();
        let entry = cache.get(&key).now_or_never()??;
        let token = self.inner.entry_result(entry).ok()?;
        telemetry::cache_lookup("introspection", "process", true);
        Some(token)
    }

    fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Relaxed)
    }

    /// Asks the IdP now: its metadata document (`{issuer}/.well-known/openid-configuration`,
    /// any answer below 500 means reachable; the introspection endpoint itself is not called),
    /// or with discovery, the discovery itself. At most one probe per second; callers in between
    /// get the last answer.
    async fn check_ready(&self) -> Result<(), VerifyError> {
        self.inner.probe().await
    }

    fn accepted_audiences(&self) -> Option<Vec<String>> {
        self.inner
            .checks
            .rules
            .accepted_audiences()
            .map(<[String]>::to_vec)
    }

    fn resource(&self) -> Option<String> {
        self.inner.resource.clone()
    }

    fn diagnostics(&self) -> Option<&dyn mcp_auth_core::diagnose::Diagnose> {
        Some(self)
    }
}

/// The introspection verifier's part of a diagnosis: the issuer's metadata, the endpoint, and
/// what the IdP answers for the token (an opaque token has no claims to read before that).
#[async_trait]
impl mcp_auth_core::diagnose::Diagnose for IntrospectionVerifier {
    async fn check_issuers(&self, scopes: &[String]) -> Vec<mcp_auth_core::diagnose::IssuerReport> {
        use mcp_auth_core::diagnose::{Check, IssuerReport, check_authorization_server};
        let endpoint = match self.discover().await {
            Ok(url) => Check::pass("introspection endpoint", "reachable URL", url.as_str()),
            Err(e) => Check::fail(
                "introspection endpoint",
                "an endpoint (configured or discovered)",
                &e.to_string(),
            )
            .because("no token can be checked: every request is refused with 503"),
        };
        let issuers = self.inner.checks.rules.accepted_issuers();
        let mut reports = Vec::new();
        for issuer in issuers {
            let (mut checks, _) =
                check_authorization_server(&self.inner.http, issuer, scopes).await;
            if reports.is_empty() {
                checks.push(endpoint.clone());
            }
            reports.push(IssuerReport {
                issuer: issuer.clone(),
                checks,
            });
        }
        if reports.is_empty() {
            reports.push(IssuerReport {
                issuer: "(any issuer: issuer check off)".into(),
                checks: vec![endpoint],
            });
        }
        reports
    }

    async fn check_token(&self, token: &str) -> Vec<mcp_auth_core::diagnose::Check> {
        use mcp_auth_core::diagnose::{Check, check_claims};
        let mut out = Vec::new();
        match self.verify(token).await {
            Ok(t) => {
                out.push(Check::pass("introspection", "active: true", "active: true"));
                out.extend(check_claims(
                    &self.inner.checks.rules,
                    t.claims(),
                    now_unix(),
                ));
            }
            Err(VerifyError::Invalid(InvalidToken::Inactive)) => out.push(
                Check::fail("introspection", "active: true", "active: false")
                    .because("the IdP does not know the token, or it expired or was revoked"),
            ),
            Err(VerifyError::Invalid(reason)) => out.push(
                Check::fail(
                    "introspection",
                    "an active response for this resource",
                    &format!("refused ({})", reason.code()),
                )
                .because(reason.description()),
            ),
            Err(e) => out.push(
                Check::fail("introspection", "an answer", &e.to_string())
                    .because("the introspection endpoint did not answer usably"),
            ),
        }
        out
    }
}
