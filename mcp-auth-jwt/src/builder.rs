//! The builder of [`JwtVerifier`].

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use mcp_auth_core::claims::ClaimRules;
use mcp_auth_core::fetch::{HttpClient, check_url};
use mcp_auth_core::{BuildError, ResourceUrl};
use url::Url;

use crate::cache::{DEFAULT_TOKEN_CACHE_BYTES, TokenCache};
use crate::jwks::{JwksTiming, KeyStore, Source};
use crate::keys::{Key, is_hmac, parse_static};
use crate::verifier::{Inner, JwtVerifier, KeyStores};

/// The builder settings, keyed on the configuration keys of [`crate::ENV`] so that
/// configuration errors name the variable (`mcp_auth_core::config::ConfigError::from_build_in`).
pub(crate) mod setting {
    use mcp_auth_core::Setting;
    pub(crate) const JWKS_URI: Setting = Setting::new("jwt_jwks_uri", "jwks_uri");
    pub(crate) const ISSUER: Setting = Setting::new("jwt_issuer", "issuer");
    pub(crate) const TYP: Setting = Setting::new("jwt_typ", "typ policy");
    pub(crate) const AUDIENCE: Setting = Setting::new("jwt_audience", "audience (or resource URL)");
    pub(crate) const ALGORITHMS: Setting = Setting::new("jwt_algorithms", "algorithms");
    pub(crate) const PUBLIC_KEY: Setting = Setting::new("jwt_public_key", "public key");
    pub(crate) const HMAC_SECRET: Setting = Setting::new("hmac_secret", "hmac secret");
    pub(crate) const ALLOWED_CLIENTS: Setting = Setting::new("allowed_clients", "client allowlist");
    pub(crate) const JWKS_TTL_BOUNDS: Setting = Setting::new("jwks_ttl_bounds", "jwks_ttl_bounds");
    pub(crate) const KEY_SOURCE: Setting = Setting::new(
        "jwt_jwks_uri",
        "a key source: jwks_uri, issuer (discovery), public_key or hmac_secret",
    );
}

/// Default leeway for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Default minimum time between two JWKS fetches triggered by unknown keys (and retries after a
/// failure). A key the IdP has just added may be refused for at most this long.
pub const DEFAULT_JWKS_COOLDOWN: Duration = Duration::from_secs(5);
/// Default lower bound of the JWKS TTL taken from `Cache-Control`.
pub const DEFAULT_JWKS_MIN_TTL: Duration = Duration::from_secs(5 * 60);
/// Default upper bound of the JWKS TTL taken from `Cache-Control`.
pub const DEFAULT_JWKS_MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// JWKS TTL when the response has no `Cache-Control: max-age`.
pub const DEFAULT_JWKS_TTL: Duration = Duration::from_secs(3600);
/// How long expired keys keep serving while the JWKS endpoint fails.
pub const DEFAULT_JWKS_MAX_STALE: Duration = Duration::from_secs(24 * 3600);
/// Default bound on the size of a token (larger ones are refused before any parsing).
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Which `typ` header values are accepted (RFC 9068 §2.1, RFC 8725 §3.11).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TypPolicy {
    /// `at+jwt` / `application/at+jwt` (any case), `JWT`, or no `typ`; every other value refused.
    #[default]
    Default,
    /// Only `at+jwt` / `application/at+jwt` (any case): for IdPs known to send it.
    Strict,
}

impl TypPolicy {
    pub(crate) fn accepts(self, typ: Option<&str>) -> bool {
        let is_at = |t: &str| {
            t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
        };
        match (self, typ) {
            (_, Some(t)) if is_at(t) => true,
            (TypPolicy::Default, None) => true,
            (TypPolicy::Default, Some(t)) => t.eq_ignore_ascii_case("jwt"),
            (TypPolicy::Strict, _) => false,
        }
    }

    pub(crate) fn expected(self) -> &'static str {
        match self {
            TypPolicy::Default => "at+jwt, application/at+jwt, JWT or none",
            TypPolicy::Strict => "at+jwt or application/at+jwt",
        }
    }
}

impl std::str::FromStr for TypPolicy {
    type Err = BuildError;

    /// Parses `default` or `strict` (the `MCP_AUTH_JWT_TYP` values; empty means `default`).
    fn from_str(s: &str) -> Result<Self, BuildError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "default" | "" => Ok(TypPolicy::Default),
            "strict" => Ok(TypPolicy::Strict),
            _ => Err(BuildError::invalid(
                setting::TYP,
                format!("{s:?}: expected default or strict"),
            )),
        }
    }
}

/// Builder for [`JwtVerifier`]. Every setter is infallible; problems surface in [`build`].
///
/// [`build`]: JwtVerifierBuilder::build
#[derive(Debug, Default)]
pub struct JwtVerifierBuilder {
    jwks_uri: Option<String>,
    discovery: bool,
    issuers: Vec<String>,
    audiences: Vec<String>,
    resource_url: Option<String>,
    skip_audience: bool,
    any_issuer: bool,
    algorithms: Option<Vec<Algorithm>>,
    typ: TypPolicy,
    scope_claims: Option<Vec<String>>,
    leeway: Option<Duration>,
    http: Option<HttpClient>,
    cooldown: Option<Duration>,
    ttl_bounds: Option<(Duration, Duration)>,
    default_ttl: Option<Duration>,
    max_stale: Option<Duration>,
    token_cache: Option<(bool, u64)>,
    max_token_bytes: Option<usize>,
    static_keys: Vec<Key>,
    hmac: Option<Key>,
    prefetch: Option<bool>,
    client_id_claims: Option<Vec<String>>,
    extra_scope_claims: Vec<String>,
    scope_prefix: Option<String>,
    required_claims: Vec<(String, String)>,
    allowed_clients: Option<Vec<String>>,
    audience_optional: bool,
    errors: Vec<BuildError>,
}

impl JwtVerifierBuilder {
    /// The JWKS URL (https, or http on loopback).
    pub fn jwks_uri(mut self, url: impl Into<String>) -> Self {
        self.jwks_uri = Some(url.into());
        self
    }

    /// Finds the JWKS through the (first) issuer's metadata: `/.well-known/openid-configuration`,
    /// then `/.well-known/oauth-authorization-server`. A document is used only when its `issuer`
    /// equals the configured one. Discovery is also used automatically when an issuer is set and
    /// no JWKS URI, static key or HMAC secret is.
    pub fn discovery(mut self, on: bool) -> Self {
        self.discovery = on;
        self
    }

    /// The one accepted issuer (`iss` must equal it exactly). Required: `build()` fails without
    /// an issuer unless [`dangerous_accept_any_issuer`](Self::dangerous_accept_any_issuer).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers = vec![issuer.into()];
        self
    }

    /// Several accepted issuers. A token is checked only against the keys of the issuer its
    /// `iss` names: with a [`jwks_uri`](Self::jwks_uri) (or static keys) the issuers share those
    /// keys; without, each issuer has its own discovery, key set, cooldowns and retries. An `iss`
    /// that is not listed is refused before any key is looked up.
    pub fn issuers<I, S>(mut self, issuers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.issuers = issuers.into_iter().map(Into::into).collect();
        self
    }

    /// Adds an accepted audience (`aud` must contain at least one accepted audience): an alias
    /// that names this server at its IdP (an Auth0 API identifier, an Entra App ID URI). The
    /// resource URL given to [`resource_url`](Self::resource_url) stays accepted.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Adds accepted audiences (see [`audience`](Self::audience)).
    pub fn audiences<I, S>(mut self, audiences: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.audiences.extend(audiences.into_iter().map(Into::into));
        self
    }

    /// The canonical resource URL (R): always accepted as audience (with a trailing slash too
    /// when it is origin-only), next to any alias given to [`audience`](Self::audience).
    pub fn resource_url(mut self, url: impl Into<String>) -> Self {
        self.resource_url = Some(url.into());
        self
    }

    /// Turns the audience check off. Dangerous: a token minted for any other service of the same
    /// IdP is accepted. Logged as a warning at start-up. The bearer layer still checks the
    /// audience against its resource unless that is switched off as well.
    pub fn dangerous_skip_audience(mut self) -> Self {
        self.skip_audience = true;
        self
    }

    /// Accept tokens of any issuer. Dangerous: with a key set shared by many tenants (Entra's
    /// multi-tenant keys, say) another tenant's tokens get in. Logged as a warning at start-up.
    pub fn dangerous_accept_any_issuer(mut self) -> Self {
        self.any_issuer = true;
        self
    }

    /// The accepted algorithms (default RS256). `none` does not exist here; HMAC algorithms need
    /// [`hmac_secret`](Self::hmac_secret).
    pub fn algorithms<I: IntoIterator<Item = Algorithm>>(mut self, algorithms: I) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// The `typ` policy (default: [`TypPolicy::Default`]).
    pub fn typ_policy(mut self, policy: TypPolicy) -> Self {
        self.typ = policy;
        self
    }

    /// Claim names read for scopes, first present wins (default `scope`, then `scp`). Each may
    /// hold a space-separated string or an array of strings.
    pub fn scope_claims<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scope_claims = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Clock-skew leeway for `exp`, `nbf` and `iat` (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = Some(leeway);
        self
    }

    /// The HTTP client for discovery and JWKS (default: core's shared client).
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.http = Some(client);
        self
    }

    /// Minimum time between JWKS fetches caused by unknown kids, failed signatures with a known
    /// kid, or retries after a failure (default 5 s, counted from the last completed fetch). A
    /// key the IdP has just published may be refused for at most this long.
    pub fn jwks_cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = Some(cooldown);
        self
    }

    /// Bounds of the JWKS TTL taken from `Cache-Control: max-age` (default 5 min to 24 h).
    pub fn jwks_ttl_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.ttl_bounds = Some((min, max));
        self
    }

    /// JWKS TTL when the response carries no `max-age` (default 1 h).
    pub fn jwks_default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }

    /// How long keys keep serving after their TTL while the JWKS endpoint fails (default 24 h);
    /// after that, verification answers "unavailable" (503).
    pub fn jwks_max_stale(mut self, max_stale: Duration) -> Self {
        self.max_stale = Some(max_stale);
        self
    }

    /// Turns the verified-token cache on or off and sets its byte budget (default on, 8 MiB).
    pub fn token_cache(mut self, on: bool, max_bytes: u64) -> Self {
        self.token_cache = Some((on, max_bytes));
        self
    }

    /// Tokens longer than this are refused before parsing (default 16 KiB).
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = Some(bytes);
        self
    }

    /// Adds static public keys: a PEM public key (RSA, EC P-256/P-384, Ed25519), a JWK, or a JWKS.
    pub fn public_key(mut self, key: &str) -> Self {
        match parse_static(key) {
            Ok(keys) => self.static_keys.extend(keys),
            Err(reason) => self
                .errors
                .push(BuildError::invalid(setting::PUBLIC_KEY, reason)),
        }
        self
    }

    /// Enables HMAC verification with a shared secret (explicit opt-in; at least 32 bytes). The
    /// algorithms default to HS256 when none are set. An HMAC key is never used for an
    /// asymmetric algorithm, and `oct` keys from a fetched JWKS are never used.
    pub fn hmac_secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        let secret = secret.as_ref();
        if secret.len() < 32 {
            self.errors.push(BuildError::invalid(
                setting::HMAC_SECRET,
                "must be at least 32 bytes (RFC 7518 §3.2)",
            ));
        } else {
            self.hmac = Some(Key::hmac(secret, None));
        }
        self
    }

    /// Whether `build()` starts fetching the JWKS in the background (default true; needs a
    /// running tokio runtime, otherwise the first request fetches).
    pub fn prefetch(mut self, on: bool) -> Self {
        self.prefetch = Some(on);
        self
    }

    /// Claim names read for the client id, first present wins (default `client_id`, then
    /// `azp`): Okta's `cid`, Entra v1's `appid` ([`ClaimRules::client_id_claims`]).
    pub fn client_id_claims<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.client_id_claims = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Claims added to the scopes when present: Auth0's `permissions`
    /// ([`ClaimRules::extra_scope_claims`]).
    pub fn extra_scope_claims<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_scope_claims = names.into_iter().map(Into::into).collect();
        self
    }

    /// Strips `prefix` from granted scopes: Cognito's `<resource server>/`
    /// ([`ClaimRules::strip_scope_prefix`]).
    pub fn strip_scope_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.scope_prefix = Some(prefix.into());
        self
    }

    /// The claim `name` must be the string `value`: Entra's `tid`, Cognito's `token_use`
    /// ([`ClaimRules::require_claim`]). Cumulative.
    pub fn require_claim(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.required_claims.push((name.into(), value.into()));
        self
    }

    /// The client id must be one of `clients` ([`ClaimRules::allowed_clients`]); an empty list
    /// fails the build.
    pub fn allowed_clients<I, S>(mut self, clients: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_clients = Some(names_of(clients));
        self
    }

    /// Accept tokens without `aud` whose client is on the [`allowed_clients`](Self::allowed_clients)
    /// list ([`ClaimRules::audience_optional_for_allowed_clients`]). The bearer layer needs the
    /// same list (`RemoteAuthProviderBuilder::clients_in_place_of_audience`), else it refuses
    /// such tokens.
    pub fn audience_optional_for_allowed_clients(mut self, on: bool) -> Self {
        self.audience_optional = on;
        self
    }

    /// Validates the settings, installs jsonwebtoken's crypto provider and builds the verifier.
    pub fn build(self) -> Result<JwtVerifier, BuildError> {
        crate::install_crypto_provider();
        if let Some(e) = self.errors.into_iter().next() {
            return Err(e);
        }
        let resource = self
            .resource_url
            .as_deref()
            .map(ResourceUrl::parse)
            .transpose()?;
        let mut audiences = resource
            .as_ref()
            .map(ResourceUrl::audiences)
            .unwrap_or_default();
        for a in self.audiences {
            if !audiences.contains(&a) {
                audiences.push(a);
            }
        }
        if audiences.iter().any(|a| a.trim().is_empty()) {
            return Err(BuildError::invalid(setting::AUDIENCE, "empty audience"));
        }
        if audiences.is_empty() && !self.skip_audience {
            return Err(BuildError::Missing(setting::AUDIENCE));
        }
        if self.skip_audience {
            tracing::warn!(
                "JWT audience check is OFF (dangerous_skip_audience): tokens minted for other services of the same issuer are accepted"
            );
        }
        if let Some(clients) = &self.allowed_clients
            && (clients.is_empty() || clients.iter().any(|c| c.trim().is_empty()))
        {
            return Err(BuildError::invalid(
                setting::ALLOWED_CLIENTS,
                "empty list or empty client id",
            ));
        }
        if self.issuers.iter().any(|i| i.trim().is_empty()) {
            return Err(BuildError::invalid(setting::ISSUER, "empty issuer"));
        }
        if self.issuers.is_empty() {
            if !self.any_issuer {
                return Err(BuildError::Missing(setting::ISSUER));
            }
            tracing::warn!(
                "JWT issuer check is OFF (dangerous_accept_any_issuer): tokens of any issuer \
                 whose keys verify are accepted"
            );
        }

        let algorithms = match self.algorithms {
            Some(a) => a,
            None if self.hmac.is_some()
                && self.static_keys.is_empty()
                && self.jwks_uri.is_none() =>
            {
                vec![Algorithm::HS256]
            }
            None => vec![Algorithm::RS256],
        };
        if algorithms.is_empty() {
            return Err(BuildError::invalid(
                setting::ALGORITHMS,
                "the allowlist is empty",
            ));
        }
        if algorithms.iter().any(|a| is_hmac(*a)) && self.hmac.is_none() {
            return Err(BuildError::invalid(
                setting::ALGORITHMS,
                "HMAC algorithms need an explicit hmac_secret",
            ));
        }
        if self.hmac.is_some() && !algorithms.iter().any(|a| is_hmac(*a)) {
            return Err(BuildError::invalid(
                setting::ALGORITHMS,
                "an HMAC secret is set but no HS* algorithm is allowed",
            ));
        }

        let discovery = self.discovery || (self.static_keys.is_empty() && self.hmac.is_none());
        let sources: Vec<(Option<String>, Source)> = match &self.jwks_uri {
            Some(u) => {
                let url = Url::parse(u).map_err(|e| {
                    BuildError::invalid(setting::JWKS_URI, format!("not a URL: {e}"))
                })?;
                check_url(&url).map_err(|_| {
                    BuildError::invalid(setting::JWKS_URI, "must be https (http only on loopback)")
                })?;
                vec![(None, Source::Jwks(url))]
            }
            None if discovery => {
                let mut out = Vec::new();
                for iss in &self.issuers {
                    let url = Url::parse(iss).map_err(|e| {
                        BuildError::invalid(setting::ISSUER, format!("not a URL: {e}"))
                    })?;
                    check_url(&url).map_err(|_| {
                        BuildError::invalid(
                            setting::ISSUER,
                            "must be https (http only on loopback)",
                        )
                    })?;
                    out.push((
                        Some(iss.clone()),
                        Source::Discovery {
                            issuer: iss.clone(),
                        },
                    ));
                }
                out
            }
            None => Vec::new(),
        };
        if sources.is_empty() && self.static_keys.is_empty() && self.hmac.is_none() {
            return Err(BuildError::Missing(setting::KEY_SOURCE));
        }
        if sources.is_empty()
            && self.static_keys.is_empty()
            && algorithms.iter().any(|a| !is_hmac(*a))
        {
            return Err(BuildError::invalid(
                setting::ALGORITHMS,
                "asymmetric algorithms are allowed but only an HMAC secret is configured",
            ));
        }

        let (min_ttl, max_ttl) = self
            .ttl_bounds
            .unwrap_or((DEFAULT_JWKS_MIN_TTL, DEFAULT_JWKS_MAX_TTL));
        if min_ttl > max_ttl {
            return Err(BuildError::invalid(
                setting::JWKS_TTL_BOUNDS,
                "min is above max",
            ));
        }
        let timing = JwksTiming {
            cooldown: self.cooldown.unwrap_or(DEFAULT_JWKS_COOLDOWN),
            min_ttl,
            max_ttl,
            default_ttl: self
                .default_ttl
                .unwrap_or(DEFAULT_JWKS_TTL)
                .clamp(min_ttl, max_ttl),
            max_stale: self.max_stale.unwrap_or(DEFAULT_JWKS_MAX_STALE),
        };
        let cache = match self
            .token_cache
            .unwrap_or((true, DEFAULT_TOKEN_CACHE_BYTES))
        {
            (true, bytes) if bytes > 0 => Some(TokenCache::new(bytes)),
            _ => None,
        };
        let http = self.http.unwrap_or_else(HttpClient::shared);
        let new_store =
            |source: Source| Arc::new(KeyStore::new(source, http.clone(), timing, cache.clone()));
        let stores = match sources.len() {
            0 => KeyStores::None,
            1 => KeyStores::Shared(new_store(sources.into_iter().next().expect("one").1)),
            _ => KeyStores::PerIssuer(
                sources
                    .into_iter()
                    .map(|(iss, src)| (iss.unwrap_or_default(), new_store(src)))
                    .collect(),
            ),
        };
        let mut static_keys: Vec<Arc<Key>> = self.static_keys.into_iter().map(Arc::new).collect();
        if let Some(h) = self.hmac {
            static_keys.push(Arc::new(h));
        }
        if self.prefetch.unwrap_or(true)
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            for store in stores.all() {
                let store = Arc::clone(store);
                handle.spawn(async move {
                    if let Err(e) = store.current().await {
                        tracing::warn!(error = %e, "JWKS prefetch failed; requests will retry (not fatal)");
                    }
                });
            }
        }
        let mut rules = if self.skip_audience {
            ClaimRules::dangerous_any_audience()
        } else {
            ClaimRules::new(audiences)
        }
        .issuers(self.issuers)
        .extra_scope_claims(self.extra_scope_claims)
        .audience_optional_for_allowed_clients(self.audience_optional);
        if let Some(names) = self.client_id_claims {
            rules = rules.client_id_claims(names);
        }
        if let Some(prefix) = self.scope_prefix {
            rules = rules.strip_scope_prefix(prefix);
        }
        for (name, value) in self.required_claims {
            rules = rules.require_claim(name, value);
        }
        if let Some(clients) = self.allowed_clients {
            rules = rules.allowed_clients(clients);
        }
        let rules = rules
            .leeway_secs(self.leeway.unwrap_or(DEFAULT_LEEWAY).as_secs())
            .scope_claims(
                self.scope_claims
                    .unwrap_or_else(|| vec!["scope".to_owned(), "scp".to_owned()]),
            );
        Ok(JwtVerifier {
            inner: Arc::new(Inner {
                algorithms,
                rules,
                resource: resource.map(|r| r.as_str().to_owned()),
                typ: self.typ,
                max_token_bytes: self.max_token_bytes.unwrap_or(DEFAULT_MAX_TOKEN_BYTES),
                static_keys,
                stores,
                cache,
                accepted_any: Default::default(),
                misconfig_warned: Default::default(),
            }),
        })
    }
}

fn names_of<I, S>(items: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    items.into_iter().map(Into::into).collect()
}
