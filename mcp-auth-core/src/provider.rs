//! The provider trait and the ready-made [`RemoteAuthProvider`].

use std::sync::Arc;

use axum::Router;

#[cfg(feature = "config")]
use crate::config::{ConfigError, CoreConfig};
use crate::dpop::{Dpop, DpopKeyVerifier, DpopMode, DpopSettings, ReplayCache};
use crate::layer::BearerAuthLayer;
use crate::metadata::{ProtectedResourceMetadata, metadata_router};
use crate::resource::ResourceUrl;
use crate::scope::{ScopeHierarchy, ScopeSet};
use crate::{BuildError, Setting, TokenVerifier};

/// Default bound on the bearer token length, in bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Everything the bearer layer and the metadata routes need to know about the protected resource.
/// Built by [`RemoteAuthProvider::builder`]; validated once, at start-up.
#[derive(Debug, Clone)]
pub struct ProtectedResource {
    pub(crate) resource: ResourceUrl,
    pub(crate) metadata: ProtectedResourceMetadata,
    pub(crate) required_scopes: ScopeSet,
    pub(crate) initial_scopes: ScopeSet,
    pub(crate) hierarchy: ScopeHierarchy,
    pub(crate) audiences: Vec<String>,
    pub(crate) check_audience: bool,
    pub(crate) root_alias: bool,
    pub(crate) max_token_bytes: usize,
    pub(crate) audience_free_clients: Vec<String>,
    pub(crate) challenge_prefix: Option<String>,
    pub(crate) dpop: Arc<Dpop>,
}

impl ProtectedResource {
    /// The DPoP settings (mode, proof algorithms, replay cache, nonces).
    pub fn dpop(&self) -> &Dpop {
        &self.dpop
    }

    /// The canonical resource URL (R).
    pub fn resource(&self) -> &ResourceUrl {
        &self.resource
    }

    /// The metadata document.
    pub fn metadata(&self) -> &ProtectedResourceMetadata {
        &self.metadata
    }

    /// Scopes every request needs.
    pub fn required_scopes(&self) -> &ScopeSet {
        &self.required_scopes
    }

    /// Scopes named in the 401 challenge when no scope is required.
    pub fn initial_scopes(&self) -> &ScopeSet {
        &self.initial_scopes
    }

    /// The scope hierarchy.
    pub fn hierarchy(&self) -> &ScopeHierarchy {
        &self.hierarchy
    }

    /// Audience values accepted for this resource (R, plus any configured alias such as an IdP's
    /// resource id).
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// Whether the layer checks audiences (off only through the `dangerous` builder call).
    pub fn checks_audience(&self) -> bool {
        self.check_audience
    }

    /// Whether the root metadata alias is served.
    pub fn serves_root_alias(&self) -> bool {
        self.root_alias
    }

    /// The bound on the bearer token length.
    pub fn max_token_bytes(&self) -> usize {
        self.max_token_bytes
    }

    /// The `scope` value of the 401 challenge: the required scopes, else the initial ones, in
    /// the form clients ask for ([`challenge_scopes`](Self::challenge_scopes)).
    pub fn challenge_scope(&self) -> String {
        if self.required_scopes.is_empty() {
            self.challenge_scopes(&self.initial_scopes)
        } else {
            self.challenge_scopes(&self.required_scopes)
        }
    }

    /// `scopes` as a challenge's `scope` value, in the form a client must ask its authorization
    /// server for: each scope behind the
    /// [`challenge_scope_prefix`](RemoteAuthProviderBuilder::challenge_scope_prefix) when one
    /// is set (Entra's `<App ID URI>/<scope>`), except the OpenID Connect scopes; else as is.
    /// Policies and scope checks keep using the bare scopes that tokens carry.
    pub fn challenge_scopes(&self, scopes: &ScopeSet) -> String {
        match &self.challenge_prefix {
            None => scopes.to_header_value(),
            Some(prefix) => scopes
                .iter()
                .map(|s| prefixed(prefix, s))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// Clients whose tokens may omit `aud` for this resource: the layer accepts such a token
    /// only when its client is on this list (see
    /// [`clients_in_place_of_audience`](RemoteAuthProviderBuilder::clients_in_place_of_audience)).
    pub fn audience_free_clients(&self) -> &[String] {
        &self.audience_free_clients
    }
}

/// OpenID Connect scopes (OIDC Core §5.4, §11), never prefixed: IdPs grant them as they are.
const OIDC_SCOPES: [&str; 6] = [
    "openid",
    "profile",
    "email",
    "address",
    "phone",
    "offline_access",
];

fn prefixed(prefix: &str, scope: &str) -> String {
    if OIDC_SCOPES.contains(&scope) || scope.starts_with(prefix) {
        scope.to_owned()
    } else if prefix.ends_with('/') {
        format!("{prefix}{scope}")
    } else {
        format!("{prefix}/{scope}")
    }
}

/// An authentication provider: a token verifier plus the protected resource it guards, and the
/// routes it serves.
///
/// Implement it by composition: hold a [`RemoteAuthProvider`] (or any provider), delegate the two
/// required methods, and override [`AuthProvider::routes`] to add routes or
/// [`AuthProvider::verifier`] to swap the verifier:
///
/// ```
/// use std::sync::Arc;
/// use axum::{routing::get, Router};
/// use mcp_auth_core::{AuthProvider, ProtectedResource, RemoteAuthProvider, TokenVerifier};
///
/// /// A provider that also serves a health route next to the metadata.
/// struct WithHealth(RemoteAuthProvider);
///
/// impl AuthProvider for WithHealth {
///     fn verifier(&self) -> Arc<dyn TokenVerifier> {
///         self.0.verifier()
///     }
///     fn protected_resource(&self) -> &ProtectedResource {
///         self.0.protected_resource()
///     }
///     fn routes(&self) -> Router {
///         // The Rust counterpart of calling super().get_routes() first.
///         self.0.routes().route("/health", get(|| async { "ok" }))
///     }
/// }
/// ```
pub trait AuthProvider: Send + Sync + 'static {
    /// The verifier that checks bearer tokens.
    fn verifier(&self) -> Arc<dyn TokenVerifier>;

    /// The protected resource (R, metadata, scopes, audiences).
    fn protected_resource(&self) -> &ProtectedResource;

    /// The metadata document.
    fn metadata(&self) -> &ProtectedResourceMetadata {
        &self.protected_resource().metadata
    }

    /// Scopes every request needs.
    fn required_scopes(&self) -> &ScopeSet {
        &self.protected_resource().required_scopes
    }

    /// The public routes (no authentication): by default the metadata routes. Merge them at the
    /// host root, outside the bearer layer.
    fn routes(&self) -> Router {
        let pr = self.protected_resource();
        metadata_router(&pr.resource, &pr.metadata, pr.root_alias)
    }

    /// The bearer-auth layer for the protected routes.
    fn layer(&self) -> BearerAuthLayer {
        BearerAuthLayer::new(self.verifier(), self.protected_resource().clone())
    }
}

/// The ready-made provider: any verifier, the authorization servers that issue its tokens, and
/// the resource it protects.
///
/// ```
/// use std::sync::Arc;
/// # use async_trait::async_trait;
/// # use mcp_auth_core::{AccessToken, InvalidToken, VerifyError};
/// # struct MyVerifier;
/// # #[async_trait]
/// # impl mcp_auth_core::TokenVerifier for MyVerifier {
/// #     async fn verify(&self, _: &str) -> Result<AccessToken, VerifyError> {
/// #         Err(InvalidToken::Malformed.into())
/// #     }
/// # }
/// use axum::{routing::post, Router};
/// use mcp_auth_core::{AuthProvider, RemoteAuthProvider};
///
/// let provider = RemoteAuthProvider::builder(Arc::new(MyVerifier))
///     .resource_url("https://api.example.com/mcp")
///     .authorization_server("https://idp.example.com")
///     .scopes_supported(["todo:read", "todo:write"])
///     .initial_scopes(["todo:read"])
///     .build()
///     .unwrap();
///
/// let mcp = tower::ServiceBuilder::new()
///     .layer(provider.layer())
///     .service(post(|| async { "protected" }));
/// let app: Router = Router::new()
///     .route_service("/mcp", mcp)
///     .merge(provider.routes());
/// ```
#[derive(Clone)]
pub struct RemoteAuthProvider {
    verifier: Arc<dyn TokenVerifier>,
    resource: ProtectedResource,
}

impl std::fmt::Debug for RemoteAuthProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteAuthProvider")
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}

impl RemoteAuthProvider {
    /// Starts a builder around `verifier`.
    pub fn builder(verifier: Arc<dyn TokenVerifier>) -> RemoteAuthProviderBuilder {
        Self::builder_without_verifier().verifier(verifier)
    }

    /// Starts a builder whose verifier comes later
    /// ([`RemoteAuthProviderBuilder::verifier`]): for code that gathers the resource's settings
    /// before its verifier can exist (a hosted IdP's JWT verifier needs R first).
    /// [`build`](RemoteAuthProviderBuilder::build) fails while no verifier is set.
    pub fn builder_without_verifier() -> RemoteAuthProviderBuilder {
        RemoteAuthProviderBuilder {
            verifier: None,
            resource_url: None,
            authorization_servers: Vec::new(),
            scopes_supported: Vec::new(),
            required_scopes: Vec::new(),
            initial_scopes: Vec::new(),
            hierarchy: ScopeHierarchy::new(),
            resource_name: None,
            resource_documentation: None,
            extra_audiences: Vec::new(),
            check_audience: true,
            root_alias: true,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            metadata_extra: serde_json::Map::new(),
            audience_free_clients: Vec::new(),
            challenge_prefix: None,
            dpop: DpopSettings::default(),
        }
    }

    /// Builds from core's configuration (`MCP_AUTH_*`), naming the variable on errors.
    #[cfg(feature = "config")]
    pub fn from_config(
        config: &CoreConfig,
        verifier: Arc<dyn TokenVerifier>,
    ) -> Result<Self, ConfigError> {
        Self::builder(verifier)
            .apply_config(config)
            .build()
            .map_err(|e| ConfigError::from_build_in(&CoreConfig::ENV, e))
    }

    /// Returns a copy with another verifier (everything else unchanged).
    pub fn with_verifier(mut self, verifier: Arc<dyn TokenVerifier>) -> Self {
        self.verifier = verifier;
        self
    }
}

impl AuthProvider for RemoteAuthProvider {
    fn verifier(&self) -> Arc<dyn TokenVerifier> {
        self.verifier.clone()
    }

    fn protected_resource(&self) -> &ProtectedResource {
        &self.resource
    }
}

/// Builder for [`RemoteAuthProvider`].
#[must_use]
pub struct RemoteAuthProviderBuilder {
    verifier: Option<Arc<dyn TokenVerifier>>,
    resource_url: Option<String>,
    authorization_servers: Vec<String>,
    scopes_supported: Vec<String>,
    required_scopes: Vec<String>,
    initial_scopes: Vec<String>,
    hierarchy: ScopeHierarchy,
    resource_name: Option<String>,
    resource_documentation: Option<String>,
    extra_audiences: Vec<String>,
    check_audience: bool,
    root_alias: bool,
    max_token_bytes: usize,
    metadata_extra: serde_json::Map<String, serde_json::Value>,
    audience_free_clients: Vec<String>,
    challenge_prefix: Option<String>,
    dpop: DpopSettings,
}

fn strings<I, S>(items: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    items.into_iter().map(Into::into).collect()
}

impl RemoteAuthProviderBuilder {
    /// Sets (or replaces) the verifier.
    pub fn verifier(mut self, verifier: Arc<dyn TokenVerifier>) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// The resource URL as set so far (unvalidated), if any.
    pub fn resource_url_setting(&self) -> Option<&str> {
        self.resource_url.as_deref()
    }

    /// The canonical resource URL (R): `https` except on loopback.
    pub fn resource_url(mut self, url: impl Into<String>) -> Self {
        self.resource_url = Some(url.into());
        self
    }

    /// Adds an authorization server (issuer URL, advertised exactly as given).
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.authorization_servers.push(issuer.into());
        self
    }

    /// Sets all authorization servers.
    pub fn authorization_servers<I, S>(mut self, issuers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.authorization_servers = strings(issuers);
        self
    }

    /// The metadata's `scopes_supported`.
    pub fn scopes_supported<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes_supported = strings(scopes);
        self
    }

    /// Scopes every request needs (403 `insufficient_scope` otherwise).
    pub fn required_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required_scopes = strings(scopes);
        self
    }

    /// Scopes named in the 401 challenge when none are required, so that clients start
    /// least-privileged. Never the whole catalogue, never `offline_access`.
    pub fn initial_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.initial_scopes = strings(scopes);
        self
    }

    /// Which scopes imply which.
    pub fn scope_hierarchy(mut self, hierarchy: ScopeHierarchy) -> Self {
        self.hierarchy = hierarchy;
        self
    }

    /// The metadata's `resource_name`.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// The metadata's `resource_documentation`.
    pub fn resource_documentation(mut self, url: impl Into<String>) -> Self {
        self.resource_documentation = Some(url.into());
        self
    }

    /// Another audience value that names this resource (an IdP-side resource id, say).
    pub fn accepted_audience(mut self, audience: impl Into<String>) -> Self {
        self.extra_audiences.push(audience.into());
        self
    }

    /// Another metadata member, served as given.
    pub fn metadata_field(mut self, name: impl Into<String>, value: serde_json::Value) -> Self {
        self.metadata_extra.insert(name.into(), value);
        self
    }

    /// Serve (default) or not the root metadata alias. Switch it off when one host serves
    /// several resources.
    pub fn root_metadata_alias(mut self, on: bool) -> Self {
        self.root_alias = on;
        self
    }

    /// The bound on the bearer token length (default 8 KiB).
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// Names the scopes in challenges and in the metadata's `scopes_supported` as
    /// `<prefix>/<scope>` (FastMCP's `get_challenge_scopes`): Entra clients must ask for
    /// `<App ID URI>/<scope>` while its tokens carry `<scope>`, and Cognito's resource-server
    /// scopes are `<identifier>/<scope>`. Scope settings, policies and checks stay bare; OpenID
    /// Connect scopes (`openid`, `profile`, ...) and scopes already prefixed are left as they
    /// are. The prefix must be a non-empty scope token (RFC 6749 §3.3).
    pub fn challenge_scope_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.challenge_prefix = Some(prefix.into());
        self
    }

    /// Lets a token without `aud` in when its client id is one of `clients` (Cognito access
    /// tokens name their app client and usually no audience). A token that carries `aud` is
    /// still checked against the audiences. The list is per resource: a verifier shared by two
    /// resources cannot let one's clients into the other. Empty entries are refused at build.
    pub fn clients_in_place_of_audience<I, S>(mut self, clients: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.audience_free_clients = strings(clients);
        self
    }

    /// Accept tokens whatever their audience. Dangerous: a token minted for any other service of
    /// the same IdP gets in. Logs a warning at build time.
    pub fn dangerous_accept_any_audience(mut self) -> Self {
        self.check_audience = false;
        self
    }

    /// The DPoP mode (`MCP_AUTH_DPOP`). Default: [`DpopMode::Allowed`] when a proof signature
    /// verifier is set ([`dpop_key_verifier`](Self::dpop_key_verifier)), else
    /// [`DpopMode::Off`]; `Allowed` or `Required` without a verifier fails at build (core has no
    /// crypto backend of its own). See [`crate::dpop`].
    pub fn dpop(mut self, mode: DpopMode) -> Self {
        self.dpop.mode = Some(mode);
        self.dpop.mode_text = None;
        self
    }

    /// Verifies the signatures of DPoP proofs: `mcp_auth_jwt::DpopKeys` (either crypto
    /// backend). Setting it turns DPoP on (`allowed`) unless [`dpop`](Self::dpop) says otherwise.
    pub fn dpop_key_verifier(mut self, keys: Arc<dyn DpopKeyVerifier>) -> Self {
        self.dpop.keys = Some(keys);
        self
    }

    /// The proof algorithms (`MCP_AUTH_DPOP_ALGORITHMS`; default `ES256 ES384 EdDSA PS256
    /// RS256`). Only asymmetric JWS algorithms: `none` or an HMAC name fails at build.
    pub fn dpop_algorithms<I, S>(mut self, algs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.dpop.algs = Some(strings(algs));
        self
    }

    /// How old a proof's `iat` may be (default 5 minutes); its replay-cache entry lives this long
    /// plus the leeway after `iat`.
    pub fn dpop_window(mut self, window: std::time::Duration) -> Self {
        self.dpop.window = Some(window);
        self
    }

    /// How far ahead of our clock a proof's `iat` may be (default 30 s).
    pub fn dpop_leeway(mut self, leeway: std::time::Duration) -> Self {
        self.dpop.leeway = Some(leeway);
        self
    }

    /// The replay cache (default: an [`InMemoryReplayCache`](crate::dpop::InMemoryReplayCache)
    /// per resource). A store shared by replicas implements [`ReplayCache`].
    pub fn dpop_replay_cache(mut self, cache: Arc<dyn ReplayCache>) -> Self {
        self.dpop.replay = Some(cache);
        self
    }

    /// Capacity of the default in-process replay cache (default 100,000 proofs). When full of
    /// unexpired entries, new proofs are refused (503, or `use_dpop_nonce` with nonces on).
    pub fn dpop_replay_capacity(mut self, proofs: usize) -> Self {
        self.dpop.replay_capacity = Some(proofs);
        self
    }

    /// Turns server nonces on (RFC 9449 §8, off by default): every proof must carry a nonce
    /// this server issued (`DPoP-Nonce` response header) within the last `lifetime` to two.
    pub fn dpop_nonces(mut self, lifetime: std::time::Duration) -> Self {
        self.dpop.nonces = Some(lifetime);
        self
    }

    /// Applies core's configuration on top of what is set.
    #[cfg(feature = "config")]
    pub fn apply_config(mut self, config: &CoreConfig) -> Self {
        if let Some(r) = &config.resource_url {
            self.resource_url = Some(r.clone());
        }
        if !config.authorization_servers.is_empty() {
            self.authorization_servers = config.authorization_servers.clone();
        }
        if !config.scopes_supported.is_empty() {
            self.scopes_supported = config.scopes_supported.clone();
        }
        if !config.required_scopes.is_empty() {
            self.required_scopes = config.required_scopes.clone();
        }
        if !config.initial_scopes.is_empty() {
            self.initial_scopes = config.initial_scopes.clone();
        }
        if let Some(n) = &config.resource_name {
            self.resource_name = Some(n.clone());
        }
        if let Some(d) = &config.resource_documentation {
            self.resource_documentation = Some(d.clone());
        }
        if let Some(m) = &config.dpop {
            self.dpop.mode_text = Some(m.clone());
        }
        if !config.dpop_algorithms.is_empty() {
            self.dpop.algs = Some(config.dpop_algorithms.clone());
        }
        if let Some(n) = &config.dpop_nonce_secs {
            self.dpop.nonce_text = Some(n.clone());
        }
        self
    }

    /// Validates everything and builds the provider.
    pub fn build(self) -> Result<RemoteAuthProvider, BuildError> {
        let verifier = self.verifier.ok_or(BuildError::Missing(Setting::new(
            "verifier",
            "token verifier",
        )))?;
        let raw = self
            .resource_url
            .ok_or(BuildError::Missing(Setting::RESOURCE_URL))?;
        let resource = ResourceUrl::parse(&raw)?;
        if self.authorization_servers.is_empty() {
            return Err(BuildError::Missing(Setting::AUTHORIZATION_SERVERS));
        }
        for issuer in &self.authorization_servers {
            let ok = url::Url::parse(issuer)
                .is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some());
            if !ok {
                return Err(BuildError::invalid(
                    Setting::AUTHORIZATION_SERVERS,
                    format!("{issuer:?} is not an http(s) URL"),
                ));
            }
        }
        let scope_list = |what: Setting, list: Vec<String>| {
            if list.iter().any(|s| s == "offline_access") {
                return Err(BuildError::invalid(
                    what,
                    "offline_access is never advertised or challenged for",
                ));
            }
            ScopeSet::try_from_iter(list).map_err(|e| match e {
                BuildError::Invalid { reason, .. } => BuildError::invalid(what, reason),
                other => other,
            })
        };
        let scopes_supported = scope_list(Setting::SCOPES_SUPPORTED, self.scopes_supported)?;
        let required_scopes = scope_list(Setting::REQUIRED_SCOPES, self.required_scopes)?;
        let initial_scopes = scope_list(Setting::INITIAL_SCOPES, self.initial_scopes)?;
        if self.max_token_bytes == 0 {
            return Err(BuildError::invalid(
                Setting::new("max_token_bytes", "max_token_bytes"),
                "must be positive",
            ));
        }

        if let Some(p) = &self.challenge_prefix
            && (p.is_empty() || ScopeSet::try_from_iter([p.as_str()]).is_err())
        {
            return Err(BuildError::invalid(
                Setting::new("challenge_scope_prefix", "challenge scope prefix"),
                "must be a non-empty scope token (no spaces, quotes or backslashes)",
            ));
        }
        if self
            .audience_free_clients
            .iter()
            .any(|c| c.trim().is_empty())
        {
            return Err(BuildError::invalid(
                Setting::new("clients_in_place_of_audience", "client allowlist"),
                "a client id is empty",
            ));
        }

        let mut metadata = ProtectedResourceMetadata::new(resource.as_str());
        metadata.authorization_servers = self.authorization_servers;
        metadata.scopes_supported = match &self.challenge_prefix {
            Some(p) => scopes_supported.iter().map(|s| prefixed(p, s)).collect(),
            None => scopes_supported.as_slice().to_vec(),
        };
        metadata.resource_name = self.resource_name;
        metadata.resource_documentation = self.resource_documentation;
        metadata.extra = self.metadata_extra;
        let dpop = self.dpop.build(&resource)?;
        if dpop.mode() != DpopMode::Off {
            metadata.dpop_signing_alg_values_supported = dpop
                .algorithms()
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect();
            if dpop.mode() == DpopMode::Required {
                metadata.dpop_bound_access_tokens_required = Some(true);
            }
        }

        let mut audiences = resource.audiences();
        for a in self.extra_audiences {
            if !audiences.contains(&a) {
                audiences.push(a);
            }
        }
        // One list. When the verifier says what it accepts, it must accept everything the
        // resource does (else it would refuse what the layer lets through); when it was built for
        // this very resource, its aliases become the resource's too (MCP_AUTH_JWT_AUDIENCE
        // reaches the layer). A verifier built from a bare list may serve several resources: its
        // other values stay out of this resource's list.
        if self.check_audience
            && let Some(verifier_list) = verifier.accepted_audiences()
        {
            // R's trailing-slash twin (origin-only R) is a courtesy, not a requirement.
            let twin = format!("{}/", resource.as_str());
            if let Some(missing) = audiences
                .iter()
                .find(|a| !(verifier_list.contains(a) || resource.is_origin_only() && **a == twin))
            {
                return Err(BuildError::invalid(
                    Setting::new("accepted_audiences", "accepted audiences"),
                    format!(
                        "the resource accepts {missing:?} but its verifier does not (it accepts \
                         {verifier_list:?}): give the verifier the resource URL and the same aliases"
                    ),
                ));
            }
            if verifier.resource().as_deref() == Some(resource.as_str()) {
                for a in verifier_list {
                    if !audiences.contains(&a) {
                        audiences.push(a);
                    }
                }
            }
        }
        if !self.check_audience {
            tracing::warn!(
                resource = %resource,
                "audience check disabled (dangerous_accept_any_audience): tokens minted for other \
                 services are accepted"
            );
        }
        Ok(RemoteAuthProvider {
            verifier,
            resource: ProtectedResource {
                resource,
                metadata,
                required_scopes,
                initial_scopes,
                hierarchy: self.hierarchy,
                audiences,
                check_audience: self.check_audience,
                root_alias: self.root_alias,
                max_token_bytes: self.max_token_bytes,
                audience_free_clients: self.audience_free_clients,
                challenge_prefix: self.challenge_prefix,
                dpop: Arc::new(dpop),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccessToken, InvalidToken, VerifyError};

    struct Refuse;

    #[async_trait::async_trait]
    impl TokenVerifier for Refuse {
        async fn verify(&self, _: &str) -> Result<AccessToken, VerifyError> {
            Err(InvalidToken::Malformed.into())
        }
    }

    #[test]
    fn a_builder_without_verifier_holds_settings_and_needs_one_to_build() {
        let b = RemoteAuthProvider::builder_without_verifier()
            .resource_url("http://127.0.0.1:8000/mcp")
            .authorization_server("https://idp.example.com");
        assert_eq!(b.resource_url_setting(), Some("http://127.0.0.1:8000/mcp"));
        let missing = RemoteAuthProvider::builder_without_verifier()
            .resource_url("http://127.0.0.1:8000/mcp")
            .authorization_server("https://idp.example.com")
            .build()
            .unwrap_err();
        assert_eq!(missing.to_string(), "token verifier is required");
        let verifier: Arc<dyn TokenVerifier> = Arc::new(Refuse);
        let p = b.verifier(verifier.clone()).build().unwrap();
        assert!(Arc::ptr_eq(&p.verifier(), &verifier));
        assert_eq!(p.metadata().resource, "http://127.0.0.1:8000/mcp");
    }
}
