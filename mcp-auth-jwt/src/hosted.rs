//! Hosted identity providers: the plumbing every `mcp-auth-<idp>` crate shares.
//!
//! A hosted IdP (Scalekit, WorkOS AuthKit, a Keycloak realm, ...) is described by a few facts:
//! where its keys are, which `iss` and `aud` its access tokens carry, which algorithm signs them,
//! which authorization server MCP clients are sent to, and where its authorization-server
//! metadata lives. A provider crate derives those facts from the values its users copy from the
//! IdP's dashboard, as a [`HostedIdp`], and leaves the rest to [`HostedProviderBuilder`]: the
//! [`JwtVerifier`], core's [`RemoteAuthProvider`] with its metadata routes, the
//! [`MetadataForwarder`] for `/.well-known/oauth-authorization-server`, the shared HTTP client,
//! scopes, metadata fields, a replacement verifier and the start-up log line.
//!
//! A provider crate implements [`DataSheet`] on its validated URL type and names the builder:
//!
//! ```
//! use std::sync::Arc;
//! use axum::Router;
//! use mcp_auth_core::{AuthProvider, BuildError, ProtectedResource, Setting, TokenVerifier};
//! use mcp_auth_jwt::hosted::{DataSheet, HostedIdp, HostedProvider, HostedProviderBuilder};
//!
//! /// Acme's URLs, derived from the tenant name.
//! #[derive(Debug, Clone)]
//! pub struct AcmeUrls { issuer: String }
//!
//! impl AcmeUrls {
//!     pub fn new(tenant: &str) -> Result<Self, BuildError> {
//!         if tenant.is_empty() || !tenant.bytes().all(|b| b.is_ascii_alphanumeric()) {
//!             return Err(BuildError::invalid(Setting::new("acme_tenant", "Acme tenant"), "letters and digits only"));
//!         }
//!         Ok(AcmeUrls { issuer: format!("https://{tenant}.acme-login.example") })
//!     }
//! }
//!
//! impl DataSheet for AcmeUrls {
//!     type Provider = AcmeProvider;
//!     fn hosted_idp(&self) -> HostedIdp {
//!         HostedIdp::new(
//!             "Acme",
//!             format!("{}/jwks", self.issuer),
//!             format!("{}/.well-known/oauth-authorization-server", self.issuer),
//!         )
//!         .issuer(&self.issuer)
//!         .authorization_server(&self.issuer)
//!     }
//!     fn into_provider(self, hosted: HostedProvider) -> AcmeProvider {
//!         AcmeProvider { hosted, urls: self }
//!     }
//! }
//!
//! /// The provider: the generic one plus the URLs it was derived from.
//! #[derive(Debug, Clone)]
//! pub struct AcmeProvider { hosted: HostedProvider, urls: AcmeUrls }
//!
//! /// Builder for [`AcmeProvider`].
//! pub type AcmeProviderBuilder = HostedProviderBuilder<AcmeUrls>;
//!
//! impl AcmeProvider {
//!     pub fn builder(tenant: &str, resource_url: &str) -> AcmeProviderBuilder {
//!         HostedProviderBuilder::new(AcmeUrls::new(tenant)).resource_url(resource_url)
//!     }
//! }
//!
//! impl AuthProvider for AcmeProvider {
//!     fn verifier(&self) -> Arc<dyn TokenVerifier> { self.hosted.verifier() }
//!     fn protected_resource(&self) -> &ProtectedResource { self.hosted.protected_resource() }
//!     fn routes(&self) -> Router { self.hosted.routes() }
//! }
//!
//! let provider = AcmeProvider::builder("shop", "https://mcp.example.com/mcp")
//!     .scopes_supported(["todo:read", "todo:write"])
//!     .initial_scopes(["todo:read"])
//!     .build()?;
//! assert_eq!(
//!     provider.metadata().authorization_servers,
//!     ["https://shop.acme-login.example"]
//! );
//! assert!(AcmeProvider::builder("a/b", "https://mcp.example.com/mcp").build().is_err());
//! # Ok::<(), BuildError>(())
//! ```

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use mcp_auth_core::config::{ConfigError, CoreConfig, EnvTable};
use mcp_auth_core::fetch::{HttpClient, check_url};
use mcp_auth_core::forward::MetadataForwarder;
use mcp_auth_core::{
    AuthProvider, BuildError, ProtectedResource, RemoteAuthProvider, RemoteAuthProviderBuilder,
    ResourceUrl, Setting, TokenVerifier,
};

/// The hosted IdP's data sheet (issuers, audience aliases), a code-only setting.
const DATA_SHEET: Setting = Setting::new("hosted_idp", "hosted IdP data sheet");
use url::Url;

use crate::{Algorithm, JwtVerifier, JwtVerifierBuilder};

/// What a hosted IdP's conventions derive for one MCP server: the data sheet in code.
///
/// The accepted audiences are always the resource URL (R, plus R with `/` when R is
/// origin-only); [`accepted_audience`](Self::accepted_audience) adds an IdP-side alias, which is
/// then accepted by both the JWT verifier and core's bearer layer.
///
/// The forwarded metadata is served at core's
/// [`AS_METADATA_PATH`](mcp_auth_core::forward::AS_METADATA_PATH)
/// (`/.well-known/oauth-authorization-server`), whatever the upstream's own path.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct HostedIdp {
    name: &'static str,
    jwks_uri: String,
    metadata_upstream: String,
    issuers: Vec<String>,
    audience_aliases: Vec<String>,
    algorithms: Vec<Algorithm>,
    authorization_servers: Vec<String>,
    setup_hint: Option<String>,
    discover_keys: bool,
    claims: VendorClaims,
    challenge_prefix: Option<String>,
}

/// The vendor's claim conventions, applied to the JWT verifier (core's
/// [`ClaimRules`](mcp_auth_core::claims::ClaimRules)) and, for the client allowlist, to the
/// bearer layer too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct VendorClaims {
    scope_claims: Option<Vec<String>>,
    client_id_claims: Option<Vec<String>>,
    extra_scope_claims: Vec<String>,
    strip_scope_prefix: Option<String>,
    required: Vec<(String, String)>,
    allowed_clients: Option<Vec<String>>,
}

impl HostedIdp {
    /// A data sheet for the IdP called `name` (used in the start-up log), with its JWKS URL and
    /// the authorization-server metadata document to forward. Tokens are RS256 unless
    /// [`algorithms`](Self::algorithms) says otherwise.
    pub fn new(
        name: &'static str,
        jwks_uri: impl Into<String>,
        metadata_upstream: impl Into<String>,
    ) -> Self {
        HostedIdp {
            name,
            jwks_uri: jwks_uri.into(),
            metadata_upstream: metadata_upstream.into(),
            issuers: Vec::new(),
            audience_aliases: Vec::new(),
            algorithms: vec![Algorithm::RS256],
            authorization_servers: Vec::new(),
            setup_hint: None,
            discover_keys: false,
            claims: VendorClaims::default(),
            challenge_prefix: None,
        }
    }

    /// Finds the keys through the issuer's metadata (`jwks_uri` of its discovery document)
    /// instead of the JWKS URL given to [`new`](Self::new).
    pub fn discover_keys(mut self) -> Self {
        self.discover_keys = true;
        self
    }

    /// Claim names read for scopes, first present wins (default `scope`, then `scp`; Entra's
    /// `scp`, then `roles`).
    pub fn scope_claims<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.claims.scope_claims = Some(strings(names));
        self
    }

    /// Claim names read for the client id (default `client_id`, then `azp`; Okta's `cid`).
    pub fn client_id_claims<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.claims.client_id_claims = Some(strings(names));
        self
    }

    /// A claim added to the scopes when present (Auth0's `permissions`).
    pub fn extra_scope_claim(mut self, name: impl Into<String>) -> Self {
        self.claims.extra_scope_claims.push(name.into());
        self
    }

    /// A claim that must hold exactly `value` (Entra's `tid`, Cognito's `token_use`).
    pub fn require_claim(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.claims.required.push((name.into(), value.into()));
        self
    }

    /// The client ids allowed to call this resource; a token without `aud` is accepted when its
    /// client is one of them, by the verifier and by the bearer layer of this resource only
    /// (Cognito access tokens carry `client_id` and usually no `aud`).
    pub fn clients_in_place_of_audience<I, S>(mut self, clients: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.claims.allowed_clients = Some(strings(clients));
        self
    }

    /// The prefix clients must put before each scope they request (Entra's App ID URI,
    /// Cognito's resource-server identifier): challenges and `scopes_supported` name
    /// `<prefix>/<scope>` ([`RemoteAuthProviderBuilder::challenge_scope_prefix`]). With
    /// `in_tokens`, tokens carry the prefixed form too (Cognito) and the verifier strips it.
    pub fn challenge_scope_prefix(mut self, prefix: impl Into<String>, in_tokens: bool) -> Self {
        let prefix = prefix.into();
        if in_tokens {
            self.claims.strip_scope_prefix = Some(format!("{}/", prefix.trim_end_matches('/')));
        }
        self.challenge_prefix = Some(prefix);
        self
    }

    /// Adds an accepted `iss` value (at least one is required; `iss` must equal one exactly).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Adds an audience value, other than R, that the IdP may put in `aud` for this resource
    /// (Scalekit's resource id, say).
    pub fn accepted_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience_aliases.push(audience.into());
        self
    }

    /// Sets the algorithm allowlist (default RS256).
    pub fn algorithms<I: IntoIterator<Item = Algorithm>>(mut self, algorithms: I) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Adds an authorization server advertised in the protected-resource metadata (at least one
    /// is required; advertised exactly as given).
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.authorization_servers.push(issuer.into());
        self
    }

    /// A sentence appended to the start-up log line: what to check in the IdP's dashboard when
    /// every token is refused (the line also carries `expected_audience`).
    pub fn setup_hint(mut self, hint: impl Into<String>) -> Self {
        self.setup_hint = Some(hint.into());
        self
    }

    /// The IdP's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The JWKS URL.
    pub fn jwks_uri(&self) -> &str {
        &self.jwks_uri
    }

    /// The authorization-server metadata document that is forwarded.
    pub fn metadata_upstream(&self) -> &str {
        &self.metadata_upstream
    }

    /// The accepted issuers.
    pub fn issuers(&self) -> &[String] {
        &self.issuers
    }

    /// The audience aliases accepted next to R.
    pub fn audience_aliases(&self) -> &[String] {
        &self.audience_aliases
    }

    /// The algorithm allowlist.
    pub fn allowed_algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// The advertised authorization servers.
    pub fn authorization_servers(&self) -> &[String] {
        &self.authorization_servers
    }

    /// Starts a builder for a [`HostedProvider`] straight from this data sheet, for an IdP that
    /// needs no crate of its own.
    pub fn builder(self) -> HostedProviderBuilder<HostedIdp> {
        HostedProviderBuilder::new(Ok(self))
    }
}

/// The vendor half of a provider crate: the IdP's validated inputs, which derive a [`HostedIdp`],
/// and how the built [`HostedProvider`] becomes the crate's own provider type.
///
/// Implement it on the type that holds the normalised dashboard values (`ScalekitUrls`, say);
/// see the [module example](self).
pub trait DataSheet: Sized {
    /// The provider type [`HostedProviderBuilder::build`] returns.
    type Provider;

    /// Derives the data sheet from the validated values.
    fn hosted_idp(&self) -> HostedIdp;

    /// Completes the sheet with the validated resource URL (R) before
    /// [`hosted_idp`](Self::hosted_idp): a value that defaults to R, a start-up warning when
    /// a dashboard value and R disagree. Default: nothing.
    fn resolve(&mut self, resource: &ResourceUrl) -> Result<(), BuildError> {
        let _ = resource;
        Ok(())
    }

    /// Wraps the built provider (keep `self` to offer the derived URLs).
    fn into_provider(self, hosted: HostedProvider) -> Self::Provider;
}

impl DataSheet for HostedIdp {
    type Provider = HostedProvider;

    fn hosted_idp(&self) -> HostedIdp {
        self.clone()
    }

    fn into_provider(self, hosted: HostedProvider) -> HostedProvider {
        hosted
    }
}

/// A provider for tokens from a hosted IdP: core's [`RemoteAuthProvider`] (verifier, resource,
/// metadata routes) plus the forwarded authorization-server metadata.
///
/// Routes: the protected-resource metadata routes, and
/// `/.well-known/oauth-authorization-server` serving the IdP's document (cached, CORS, 502 with
/// a generic body when the upstream fails).
#[derive(Debug, Clone)]
pub struct HostedProvider {
    remote: RemoteAuthProvider,
    forwarder: MetadataForwarder,
    idp: Arc<HostedIdp>,
}

impl HostedProvider {
    /// The wrapped core provider.
    pub fn remote(&self) -> &RemoteAuthProvider {
        &self.remote
    }

    /// The data sheet it was built from.
    pub fn idp(&self) -> &HostedIdp {
        &self.idp
    }

    /// The audiences the bearer layer accepts: R (plus R with `/` when origin-only) and the
    /// IdP's aliases.
    pub fn audiences(&self) -> &[String] {
        self.remote.protected_resource().audiences()
    }

    /// Returns a copy with another verifier (an introspection verifier, a wrapper that maps
    /// claims, ...). Metadata and routes are unchanged.
    pub fn with_verifier(mut self, verifier: Arc<dyn TokenVerifier>) -> Self {
        self.remote = self.remote.with_verifier(verifier);
        self
    }
}

impl AuthProvider for HostedProvider {
    fn verifier(&self) -> Arc<dyn TokenVerifier> {
        self.remote.verifier()
    }

    fn protected_resource(&self) -> &ProtectedResource {
        self.remote.protected_resource()
    }

    fn routes(&self) -> Router {
        self.remote.routes().merge(self.forwarder.clone().router())
    }
}

type VerifierHook = Box<dyn FnOnce(JwtVerifierBuilder) -> JwtVerifierBuilder>;
type ResourceHook = Box<dyn FnOnce(RemoteAuthProviderBuilder) -> RemoteAuthProviderBuilder>;

/// Builds the provider of a hosted IdP from its [`DataSheet`] and the settings every provider
/// shares. Setters are infallible; [`build`](Self::build) validates.
///
/// Provider crates name it for their sheet (`pub type ScalekitProviderBuilder =
/// HostedProviderBuilder<ScalekitUrls>`), so their users see one builder with one set of
/// methods whatever the IdP.
#[must_use]
pub struct HostedProviderBuilder<S> {
    sheet: Result<S, BuildError>,
    /// Core's builder: R, scopes and metadata fields live there; the verifier, the data
    /// sheet's audiences, clients and challenge prefix are added at build.
    core: RemoteAuthProviderBuilder,
    verifier: Option<Arc<dyn TokenVerifier>>,
    http: Option<HttpClient>,
    forward_ttl: Option<Duration>,
    verifier_hook: Option<VerifierHook>,
    resource_hook: Option<ResourceHook>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for HostedProviderBuilder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostedProviderBuilder")
            .field("sheet", &self.sheet)
            .field("resource_url", &self.core.resource_url_setting())
            .finish_non_exhaustive()
    }
}

fn strings<I, S>(items: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    items.into_iter().map(Into::into).collect()
}

impl<S> HostedProviderBuilder<S> {
    /// Starts from the vendor's validated inputs, or from the error validating them, which
    /// [`build`](Self::build) reports before anything else.
    pub fn new(sheet: Result<S, BuildError>) -> Self {
        HostedProviderBuilder {
            sheet,
            core: RemoteAuthProvider::builder_without_verifier(),
            verifier: None,
            http: None,
            forward_ttl: None,
            verifier_hook: None,
            resource_hook: None,
        }
    }

    /// Applies `f` to core's builder now: the settings core owns exist there once.
    fn core(
        mut self,
        f: impl FnOnce(RemoteAuthProviderBuilder) -> RemoteAuthProviderBuilder,
    ) -> Self {
        self.core = f(self.core);
        self
    }

    /// The resource URL (R): the MCP endpoint's public URL, https except on loopback
    /// ([`RemoteAuthProviderBuilder::resource_url`]).
    pub fn resource_url(self, url: impl Into<String>) -> Self {
        self.core(|b| b.resource_url(url))
    }

    /// Scopes every request needs, 403 `insufficient_scope` otherwise
    /// ([`RemoteAuthProviderBuilder::required_scopes`]).
    pub fn required_scopes(self, scopes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.core(|b| b.required_scopes(scopes))
    }

    /// Scopes named in the 401 challenge when none are required, least privilege first
    /// ([`RemoteAuthProviderBuilder::initial_scopes`]).
    pub fn initial_scopes(self, scopes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.core(|b| b.initial_scopes(scopes))
    }

    /// The metadata's `scopes_supported` ([`RemoteAuthProviderBuilder::scopes_supported`]).
    pub fn scopes_supported(self, scopes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.core(|b| b.scopes_supported(scopes))
    }

    /// The metadata's `resource_name` ([`RemoteAuthProviderBuilder::resource_name`]).
    pub fn resource_name(self, name: impl Into<String>) -> Self {
        self.core(|b| b.resource_name(name))
    }

    /// The metadata's `resource_documentation`
    /// ([`RemoteAuthProviderBuilder::resource_documentation`]).
    pub fn resource_documentation(self, url: impl Into<String>) -> Self {
        self.core(|b| b.resource_documentation(url))
    }

    /// Applies core's configuration (`MCP_AUTH_RESOURCE_URL`, scopes, resource name and
    /// documentation) on top of what is set, through
    /// [`RemoteAuthProviderBuilder::apply_config`]: unset values leave the builder's alone.
    /// `authorization_servers` is ignored: the IdP's are derived.
    pub fn apply_config(self, config: &CoreConfig) -> Self {
        let mut config = config.clone();
        config.authorization_servers.clear();
        self.core(|b| b.apply_config(&config))
    }

    /// Uses this verifier instead of the JWT verifier built from the data sheet (URLs, metadata
    /// and routes stay).
    pub fn verifier(mut self, verifier: Arc<dyn TokenVerifier>) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// The HTTP client for the JWKS and the metadata forwarding (default: core's shared client).
    /// Tests pass one with short timeouts.
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.http = Some(client);
        self
    }

    /// How long the forwarded authorization-server metadata is cached (default: core's
    /// [`DEFAULT_FORWARD_TTL`](mcp_auth_core::forward::DEFAULT_FORWARD_TTL)).
    pub fn forward_ttl(mut self, ttl: Duration) -> Self {
        self.forward_ttl = Some(ttl);
        self
    }

    /// Adjusts the JWT verifier builder after the data sheet is applied (leeway, cache,
    /// cooldown, `typ` policy, scope claim names, more algorithms). Not used with
    /// [`verifier`](Self::verifier).
    pub fn configure_verifier(
        mut self,
        hook: impl FnOnce(JwtVerifierBuilder) -> JwtVerifierBuilder + 'static,
    ) -> Self {
        self.verifier_hook = Some(Box::new(hook));
        self
    }

    /// Adjusts core's provider builder after the data sheet and settings are applied (scope
    /// hierarchy, root metadata alias, extra metadata fields).
    pub fn configure_resource(
        mut self,
        hook: impl FnOnce(RemoteAuthProviderBuilder) -> RemoteAuthProviderBuilder + 'static,
    ) -> Self {
        self.resource_hook = Some(Box::new(hook));
        self
    }
}

impl<S: DataSheet> HostedProviderBuilder<S> {
    /// Validates (the vendor's inputs first, then R), derives the data sheet, builds the JWT
    /// verifier (unless one was given), core's provider and the metadata forwarder, and logs at
    /// info level the expected audience, the accepted issuers and audiences, and the JWKS URL.
    pub fn build(self) -> Result<S::Provider, BuildError> {
        let mut sheet = self.sheet?;
        let raw = self
            .core
            .resource_url_setting()
            .ok_or(BuildError::Missing(Setting::RESOURCE_URL))?;
        let resource = ResourceUrl::parse(raw)?;
        sheet.resolve(&resource)?;
        let idp = sheet.hosted_idp();
        if idp.issuers.is_empty() {
            return Err(BuildError::Missing(DATA_SHEET));
        }
        if idp
            .issuers
            .iter()
            .chain(&idp.audience_aliases)
            .any(|v| v.trim().is_empty())
        {
            return Err(BuildError::invalid(
                DATA_SHEET,
                "an issuer or audience alias is empty",
            ));
        }
        let mut audiences = resource.audiences();
        for alias in &idp.audience_aliases {
            if !audiences.contains(alias) {
                audiences.push(alias.clone());
            }
        }

        let replaced = self.verifier.is_some();
        let verifier: Arc<dyn TokenVerifier> = match self.verifier {
            Some(v) => v,
            None => {
                let mut b = JwtVerifier::builder()
                    .issuers(idp.issuers.clone())
                    .audiences(audiences.clone())
                    .algorithms(idp.algorithms.clone())
                    .extra_scope_claims(idp.claims.extra_scope_claims.clone());
                b = match idp.discover_keys {
                    true => b.discovery(true),
                    false => b.jwks_uri(idp.jwks_uri.clone()),
                };
                let c = &idp.claims;
                if let Some(names) = &c.scope_claims {
                    b = b.scope_claims(names.clone());
                }
                if let Some(names) = &c.client_id_claims {
                    b = b.client_id_claims(names.clone());
                }
                if let Some(prefix) = &c.strip_scope_prefix {
                    b = b.strip_scope_prefix(prefix.clone());
                }
                for (name, value) in &c.required {
                    b = b.require_claim(name.clone(), value.clone());
                }
                if let Some(clients) = &c.allowed_clients {
                    b = b
                        .allowed_clients(clients.clone())
                        .audience_optional_for_allowed_clients(true);
                }
                if let Some(http) = &self.http {
                    b = b.http_client(http.clone());
                }
                if let Some(hook) = self.verifier_hook {
                    b = hook(b);
                }
                Arc::new(b.build()?)
            }
        };

        // DPoP proofs are checked with this crate's crypto: `allowed` unless MCP_AUTH_DPOP says
        // otherwise.
        let mut rb = self
            .core
            .verifier(verifier)
            .dpop_key_verifier(crate::DpopKeys::shared())
            .authorization_servers(idp.authorization_servers.clone());
        for alias in &idp.audience_aliases {
            rb = rb.accepted_audience(alias.clone());
        }
        if let Some(clients) = &idp.claims.allowed_clients {
            rb = rb.clients_in_place_of_audience(clients.clone());
        }
        if let Some(prefix) = &idp.challenge_prefix {
            rb = rb.challenge_scope_prefix(prefix.clone());
        }
        if let Some(hook) = self.resource_hook {
            rb = hook(rb);
        }
        let remote = rb.build()?;

        let mut forwarder = MetadataForwarder::new(&idp.metadata_upstream)?;
        if let Some(http) = self.http {
            forwarder = forwarder.http_client(http);
        }
        if let Some(ttl) = self.forward_ttl {
            forwarder = forwarder.ttl(ttl);
        }

        let hint = idp.setup_hint.as_deref().unwrap_or("");
        tracing::info!(
            expected_audience = %resource,
            accepted_audiences = ?remote.protected_resource().audiences(),
            issuers = ?idp.issuers,
            jwks_uri = if idp.discover_keys { "(issuer discovery)" } else { idp.jwks_uri.as_str() },
            authorization_servers = ?idp.authorization_servers,
            replaced_verifier = replaced,
            "{} provider ready{}{hint}",
            idp.name,
            if hint.is_empty() { "" } else { ": " },
        );
        Ok(sheet.into_provider(HostedProvider {
            remote,
            forwarder,
            idp: Arc::new(idp),
        }))
    }

    /// [`build`](Self::build) for configuration loading: an error names the variable `table`
    /// maps the failing setting's key to (a vendor setting's key is its configuration key, as in
    /// `Setting::new("resource_id", "Scalekit resource id")`), or else the `MCP_AUTH_*` variable
    /// of core's setting ([`ConfigError::from_build_in`]).
    pub fn build_for_config(self, table: &EnvTable) -> Result<S::Provider, ConfigError> {
        self.build()
            .map_err(|e| ConfigError::from_build_in(table, e))
    }
}

/// Checks a base URL copied from an IdP's dashboard: trims it, removes trailing slashes, and
/// requires an `https` URL (`http` only on loopback, for tests) with a host and without
/// credentials, query or fragment. A path (`/auth`) is kept. `setting` names it in errors.
///
/// ```
/// use mcp_auth_jwt::hosted::base_url;
/// # use mcp_auth_core::Setting;
/// const URL: Setting = Setting::new("keycloak_url", "Keycloak URL");
/// let url = base_url(" https://sso.example.com/auth/ ", URL).unwrap();
/// assert_eq!(url.as_str(), "https://sso.example.com/auth");
/// assert!(base_url("http://sso.example.com", URL).is_err());
/// assert!(base_url("https://user:pw@sso.example.com", URL).is_err());
/// ```
pub fn base_url(raw: &str, setting: Setting) -> Result<Url, BuildError> {
    let trimmed = raw.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(BuildError::Missing(setting));
    }
    let url = Url::parse(trimmed)
        .map_err(|e| BuildError::invalid(setting, format!("{trimmed:?} is not a URL: {e}")))?;
    check_url(&url)
        .map_err(|_| BuildError::invalid(setting, "must be https (http only on loopback)"))?;
    if url.host().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(BuildError::invalid(
            setting,
            format!("{trimmed:?} must be a plain base URL (no credentials, query or fragment)"),
        ));
    }
    Ok(url)
}

/// [`base_url`] that must also be a bare origin (no path); returns it serialised
/// (`https://acme.example.com`, default port dropped, host lower-cased).
///
/// ```
/// use mcp_auth_jwt::hosted::origin;
/// # use mcp_auth_core::Setting;
/// const DOMAIN: Setting = Setting::new("domain", "domain");
/// assert_eq!(origin("https://ACME.example.com:443/", DOMAIN).unwrap(), "https://acme.example.com");
/// assert!(origin("https://acme.example.com/path", DOMAIN).is_err());
/// ```
pub fn origin(raw: &str, setting: Setting) -> Result<String, BuildError> {
    let url = base_url(raw, setting)?;
    if url.path() != "/" {
        return Err(BuildError::invalid(
            setting,
            format!(
                "{:?} must be a bare origin such as https://acme.example.com",
                raw.trim()
            ),
        ));
    }
    Ok(url.origin().ascii_serialization())
}

/// Checks an identifier copied from an IdP's dashboard (a tenant, client or resource id):
/// trimmed, not blank, every character `allowed`. `setting` names it in errors.
///
/// ```
/// use mcp_auth_jwt::hosted::identifier;
/// # use mcp_auth_core::{BuildError, Setting};
/// const ID: Setting = Setting::new("resource_id", "resource id");
/// let ok = |c: char| c.is_ascii_alphanumeric() || c == '_';
/// assert_eq!(identifier(" res_1 ", ID, ok).unwrap(), "res_1");
/// assert_eq!(identifier(" ", ID, ok).unwrap_err(), BuildError::Missing(ID));
/// assert!(identifier("res/1", ID, ok).is_err());
/// ```
pub fn identifier(
    raw: &str,
    setting: Setting,
    allowed: impl Fn(char) -> bool,
) -> Result<String, BuildError> {
    let v = raw.trim();
    if v.is_empty() {
        return Err(BuildError::Missing(setting));
    }
    if !v.chars().all(allowed) {
        return Err(BuildError::invalid(
            setting,
            format!("{v:?} holds an unexpected character"),
        ));
    }
    Ok(v.to_owned())
}

/// A hosted-IdP provider crate's boilerplate, declared once: the env table (the IdP's variables,
/// then core's), the configuration struct with `from_env`/`from_figment`/`builder`, the provider
/// type wrapping a [`HostedProvider`] with the data sheet it was derived from (`urls()`,
/// `audiences()`, `expected_audience()`, `inner()`, `with_verifier()`, `from_env()`,
/// `from_figment()`, and `builder(<the config fields>..., resource_url)`), its [`AuthProvider`]
/// implementation, the builder alias, and the [`DataSheet`] implementation whose `hosted_idp` is
/// the given body.
///
/// The data sheet type must have `fn new(&str, ...) -> Result<Self, BuildError>` taking the
/// configuration fields in order. The invoking crate needs `serde` (derive) among its
/// dependencies.
///
/// ```
/// use mcp_auth_core::{AuthProvider, BuildError, Setting};
/// use mcp_auth_jwt::hosted::{HostedIdp, origin};
///
/// /// Acme's URLs, derived from the tenant URL.
/// #[derive(Debug, Clone, PartialEq, Eq)]
/// pub struct AcmeUrls { origin: String }
///
/// impl AcmeUrls {
///     /// Validates the tenant URL.
///     pub fn new(url: &str) -> Result<Self, BuildError> {
///         Ok(AcmeUrls { origin: origin(url, Setting::new("tenant_url", "Acme tenant URL"))? })
///     }
/// }
///
/// mcp_auth_jwt::hosted_provider! {
///     name: "Acme",
///     /// The Acme provider.
///     provider: AcmeProvider,
///     builder: AcmeProviderBuilder,
///     sheet: AcmeUrls,
///     /// Acme's settings.
///     config: AcmeConfig {
///         /// `ACME_TENANT_URL`.
///         tenant_url,
///     },
///     env: [("tenant_url", "ACME_TENANT_URL")],
///     hosted_idp: |urls| {
///         HostedIdp::new("Acme", format!("{}/jwks", urls.origin), format!("{}/.well-known/oauth-authorization-server", urls.origin))
///             .issuer(&urls.origin)
///             .authorization_server(&urls.origin)
///     },
/// }
///
/// let p = AcmeProvider::builder("https://acme.example", "https://mcp.example.com/mcp").build()?;
/// assert_eq!(p.metadata().authorization_servers, ["https://acme.example"]);
/// assert_eq!(p.expected_audience(), "https://mcp.example.com/mcp");
/// assert_eq!(ENV.variable_for("tenant_url"), Some("ACME_TENANT_URL"));
/// # Ok::<(), BuildError>(())
/// ```
#[macro_export]
macro_rules! hosted_provider {
    (
        name: $name:literal,
        $(#[$pmeta:meta])*
        provider: $provider:ident,
        builder: $builder:ident,
        sheet: $sheet:ident,
        $(#[$cmeta:meta])*
        config: $config:ident { $( $(#[$fmeta:meta])* $field:ident ),* $(,)? },
        env: [ $( ($key:literal, $var:literal) ),* $(,)? ],
        hosted_idp: |$s:ident| $idp:expr $(,)?
    ) => {
        /// The keys read by the configuration and the variables that set them: the IdP's
        /// (a key listed twice has an alias; both set to different values is an error), then
        /// core's.
        pub const ENV: $crate::__private::mcp_auth_core::config::EnvTable =
            $crate::__private::mcp_auth_core::config::EnvTable::new(&[
                $(($key, $var),)*
                ("resource_url", "MCP_AUTH_RESOURCE_URL"),
                ("required_scopes", "MCP_AUTH_REQUIRED_SCOPES"),
                ("initial_scopes", "MCP_AUTH_INITIAL_SCOPES"),
                ("scopes_supported", "MCP_AUTH_SCOPES_SUPPORTED"),
                ("resource_name", "MCP_AUTH_RESOURCE_NAME"),
                ("resource_documentation", "MCP_AUTH_RESOURCE_DOCUMENTATION"),
                ("dpop", "MCP_AUTH_DPOP"),
                ("dpop_algorithms", "MCP_AUTH_DPOP_ALGORITHMS"),
                ("dpop_nonce_secs", "MCP_AUTH_DPOP_NONCE_SECS"),
            ]);

        $(#[$cmeta])*
        #[derive(Debug, Clone, PartialEq, Eq, ::serde::Deserialize)]
        #[non_exhaustive]
        pub struct $config {
            $( $(#[$fmeta])* pub $field: String, )*
            /// Core's settings: `MCP_AUTH_RESOURCE_URL` (required to build), scopes, resource
            /// name and documentation. `authorization_servers` is not read: the IdP's are
            /// derived.
            #[serde(flatten)]
            pub core: $crate::__private::mcp_auth_core::config::CoreConfig,
        }

        impl $config {
            /// The keys and their variables.
            pub const ENV: $crate::__private::mcp_auth_core::config::EnvTable = ENV;

            /// Reads the environment (and the TOML file named by `MCP_AUTH_CONFIG_FILE`).
            pub fn from_env() -> Result<Self, $crate::__private::mcp_auth_core::config::ConfigError> {
                Self::from_figment(&$crate::__private::mcp_auth_core::config::figment(&ENV))
            }

            /// Reads a figment the caller assembled (flat keys, as in [`ENV`]).
            pub fn from_figment(
                figment: &$crate::__private::figment::Figment,
            ) -> Result<Self, $crate::__private::mcp_auth_core::config::ConfigError> {
                $crate::__private::mcp_auth_core::config::extract_with_core(figment, &ENV)
            }

            /// The provider builder with these settings applied.
            pub fn builder(&self) -> $builder {
                $crate::hosted::HostedProviderBuilder::new($sheet::new($(&self.$field),*))
                    .apply_config(&self.core)
            }
        }

        $(#[$pmeta])*
        #[derive(Debug, Clone)]
        pub struct $provider {
            inner: $crate::hosted::HostedProvider,
            urls: $sheet,
        }

        #[doc = concat!("Builder for the ", $name, " provider: `mcp-auth-jwt`'s shared")]
        /// [`HostedProviderBuilder`](mcp_auth_jwt::hosted::HostedProviderBuilder) for this
        /// IdP's data sheet. Setters are infallible; `build()` validates, builds the JWT
        /// verifier (unless one was given) and logs the exact expected audience at info level.
        pub type $builder = $crate::hosted::HostedProviderBuilder<$sheet>;

        impl $provider {
            #[doc = concat!("Starts a builder from the ", $name, " settings (as in the configuration, in order) and the MCP server's resource URL (R).")]
            pub fn builder(
                $($field: impl Into<String>,)*
                resource_url: impl Into<String>,
            ) -> $builder {
                $crate::hosted::HostedProviderBuilder::new($sheet::new($(&$field.into()),*))
                    .resource_url(resource_url)
            }

            /// Builds the provider from the environment (and `MCP_AUTH_CONFIG_FILE`); the
            /// variables are those of [`ENV`]. Errors name the variable to fix.
            pub fn from_env() -> Result<Self, $crate::__private::mcp_auth_core::config::ConfigError> {
                Self::from_figment(&$crate::__private::mcp_auth_core::config::figment(&ENV))
            }

            /// Builds the provider from a figment the caller assembled.
            pub fn from_figment(
                figment: &$crate::__private::figment::Figment,
            ) -> Result<Self, $crate::__private::mcp_auth_core::config::ConfigError> {
                $config::from_figment(figment)?.builder().build_for_config(&ENV)
            }

            /// The derived URLs.
            pub fn urls(&self) -> &$sheet {
                &self.urls
            }

            /// The accepted issuers.
            pub fn issuers(&self) -> &[String] {
                self.inner.idp().issuers()
            }

            /// The accepted audiences: R (and R with `/` when R is origin-only) and the IdP's
            /// aliases.
            pub fn audiences(&self) -> &[String] {
                self.inner.audiences()
            }

            /// The exact `aud` value the IdP must put in tokens: R (logged at start-up).
            pub fn expected_audience(&self) -> &str {
                $crate::__private::mcp_auth_core::AuthProvider::protected_resource(&self.inner)
                    .resource()
                    .as_str()
            }

            /// The wrapped core provider.
            pub fn inner(&self) -> &$crate::__private::mcp_auth_core::RemoteAuthProvider {
                self.inner.remote()
            }

            /// Returns a copy with another verifier. URLs, metadata and routes are unchanged.
            pub fn with_verifier(
                mut self,
                verifier: ::std::sync::Arc<dyn $crate::__private::mcp_auth_core::TokenVerifier>,
            ) -> Self {
                self.inner = self.inner.with_verifier(verifier);
                self
            }
        }

        impl $crate::__private::mcp_auth_core::AuthProvider for $provider {
            fn verifier(&self) -> ::std::sync::Arc<dyn $crate::__private::mcp_auth_core::TokenVerifier> {
                $crate::__private::mcp_auth_core::AuthProvider::verifier(&self.inner)
            }

            fn protected_resource(&self) -> &$crate::__private::mcp_auth_core::ProtectedResource {
                $crate::__private::mcp_auth_core::AuthProvider::protected_resource(&self.inner)
            }

            fn routes(&self) -> $crate::__private::axum::Router {
                $crate::__private::mcp_auth_core::AuthProvider::routes(&self.inner)
            }
        }

        impl $crate::hosted::DataSheet for $sheet {
            type Provider = $provider;

            fn hosted_idp(&self) -> $crate::hosted::HostedIdp {
                let $s = self;
                $idp
            }

            fn into_provider(self, inner: $crate::hosted::HostedProvider) -> $provider {
                $provider { inner, urls: self }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_auth_core::AuthProvider;
    use serde_json::json;

    fn sheet() -> HostedIdp {
        HostedIdp::new(
            "Test",
            "https://idp.example.com/keys",
            "https://idp.example.com/.well-known/oauth-authorization-server",
        )
        .issuer("https://idp.example.com")
        .issuer("https://idp.example.com/tenant")
        .authorization_server("https://idp.example.com/tenant")
    }

    #[test]
    fn builds_metadata_and_audiences_from_the_sheet() {
        let p = sheet()
            .accepted_audience("res_1")
            .builder()
            .resource_url("https://mcp.example.com")
            .scopes_supported(["a", "b"])
            .initial_scopes(["a"])
            .resource_name("Demo")
            .build()
            .unwrap();
        assert_eq!(
            serde_json::to_value(p.metadata()).unwrap(),
            json!({
                "resource": "https://mcp.example.com",
                "authorization_servers": ["https://idp.example.com/tenant"],
                "scopes_supported": ["a", "b"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Demo",
                // DPoP is allowed by default: proofs are checked with this crate's crypto.
                "dpop_signing_alg_values_supported": ["ES256", "ES384", "EdDSA", "PS256", "RS256"],
            })
        );
        assert_eq!(
            p.audiences(),
            [
                "https://mcp.example.com",
                "https://mcp.example.com/",
                "res_1"
            ]
        );
        assert_eq!(p.protected_resource().challenge_scope(), "a");
        assert_eq!(p.idp().issuers().len(), 2);
    }

    #[test]
    fn apply_config_overrides_set_values_but_not_the_authorization_server() {
        let mut core = CoreConfig::default();
        core.resource_url = Some("https://other.example.com/mcp".into());
        core.required_scopes = vec!["x".into()];
        core.authorization_servers = vec!["https://elsewhere.example.com".into()];
        let p = sheet()
            .builder()
            .resource_url("https://mcp.example.com/mcp")
            .required_scopes(["y"])
            .resource_documentation("https://docs.example.com")
            .apply_config(&core)
            .build()
            .unwrap();
        assert_eq!(p.metadata().resource, "https://other.example.com/mcp");
        assert_eq!(p.required_scopes().iter().collect::<Vec<_>>(), ["x"]);
        assert_eq!(
            p.metadata().resource_documentation.as_deref(),
            Some("https://docs.example.com")
        );
        assert_eq!(
            p.metadata().authorization_servers,
            ["https://idp.example.com/tenant"]
        );
    }

    #[test]
    fn fails_closed_on_missing_or_bad_facts() {
        let no_resource = sheet().builder().build().unwrap_err();
        assert_eq!(no_resource, BuildError::Missing(Setting::RESOURCE_URL));
        let r = "https://mcp.example.com/mcp";
        let no_issuer = HostedIdp::new("T", "https://i.example.com/k", "https://i.example.com/m")
            .authorization_server("https://i.example.com")
            .builder()
            .resource_url(r)
            .build();
        // Each refusal names the setting at fault and says what is wrong with it.
        let refused = |r: Result<HostedProvider, BuildError>| match r {
            Ok(_) => panic!("built"),
            Err(e) => (e.setting().key(), e.to_string()),
        };
        let (key, msg) = refused(no_issuer);
        assert_eq!(key, "hosted_idp", "{msg}");
        assert_eq!(msg, BuildError::Missing(DATA_SHEET).to_string());
        let no_as = HostedIdp::new("T", "https://i.example.com/k", "https://i.example.com/m")
            .issuer("https://i.example.com")
            .builder()
            .resource_url(r)
            .build();
        let (key, msg) = refused(no_as);
        assert_eq!(key, "authorization_servers", "{msg}");
        assert!(msg.contains("required"), "{msg}");
        let http_jwks = HostedIdp::new("T", "http://i.example.com/k", "https://i.example.com/m")
            .issuer("https://i.example.com")
            .authorization_server("https://i.example.com")
            .builder()
            .resource_url(r)
            .build();
        let (key, msg) = refused(http_jwks);
        assert_eq!(key, "jwt_jwks_uri", "{msg}");
        assert!(msg.contains("must be https"), "{msg}");
        let http_upstream =
            HostedIdp::new("T", "https://i.example.com/k", "http://i.example.com/m")
                .issuer("https://i.example.com")
                .authorization_server("https://i.example.com")
                .builder()
                .resource_url(r)
                .build();
        let (key, msg) = refused(http_upstream);
        assert_eq!(key, "metadata_upstream", "{msg}");
        assert!(msg.contains("must be https"), "{msg}");
        let empty_alias = sheet()
            .accepted_audience(" ")
            .builder()
            .resource_url(r)
            .verifier(
                sheet()
                    .builder()
                    .resource_url(r)
                    .build()
                    .unwrap()
                    .verifier(),
            )
            .build();
        let (key, msg) = refused(empty_alias);
        assert_eq!(key, "hosted_idp", "{msg}");
        assert!(msg.contains("alias is empty"), "{msg}");
        let tenant = Setting::new("tenant", "Test tenant");
        let vendor_error =
            HostedProviderBuilder::<HostedIdp>::new(Err(BuildError::Missing(tenant)))
                .build()
                .unwrap_err();
        assert_eq!(vendor_error, BuildError::Missing(tenant));
    }

    #[test]
    fn replacement_verifier_is_used() {
        let other = sheet()
            .builder()
            .resource_url("https://mcp.example.com/mcp")
            .build()
            .unwrap();
        let replacement = other.verifier();
        let p = sheet()
            .builder()
            .resource_url("https://mcp.example.com/mcp")
            .verifier(replacement.clone())
            .build()
            .unwrap();
        assert!(Arc::ptr_eq(&p.verifier(), &replacement));
        let swapped = other.clone().with_verifier(p.verifier());
        assert!(Arc::ptr_eq(&swapped.verifier(), &replacement));
    }

    #[test]
    fn config_errors_name_the_variable() {
        const TABLE: EnvTable = EnvTable::new(&[
            ("tenant", "TEST_TENANT"),
            ("tenant", "MCP_AUTH_TEST_TENANT"),
            ("resource_url", "MCP_AUTH_RESOURCE_URL"),
        ]);
        let vendor = HostedProviderBuilder::<HostedIdp>::new(Err(BuildError::invalid(
            Setting::new("tenant", "Test tenant"),
            "bad",
        )))
        .build_for_config(&TABLE)
        .unwrap_err();
        assert!(
            matches!(&vendor, ConfigError::Invalid { variable, .. } if variable == "TEST_TENANT"),
            "{vendor:?}"
        );
        let missing = sheet().builder().build_for_config(&TABLE).unwrap_err();
        assert_eq!(missing.to_string(), "MCP_AUTH_RESOURCE_URL is missing");
        let scopes = sheet()
            .builder()
            .resource_url("https://mcp.example.com/mcp")
            .scopes_supported(["offline_access"])
            .build_for_config(&TABLE)
            .unwrap_err();
        assert!(
            matches!(&scopes, ConfigError::Invalid { variable, .. } if variable == "MCP_AUTH_SCOPES_SUPPORTED"),
            "{scopes:?}"
        );
    }

    #[test]
    fn base_urls_and_origins() {
        const S: Setting = Setting::new("s", "s");
        assert_eq!(
            base_url("http://127.0.0.1:8080/", S).unwrap().as_str(),
            "http://127.0.0.1:8080/"
        );
        for bad in [
            "",
            " / ",
            "ftp://a.example.com",
            "https://a.example.com/#f",
            "x",
        ] {
            assert!(base_url(bad, S).is_err(), "{bad:?}");
        }
        assert_eq!(base_url("", S).unwrap_err(), BuildError::Missing(S));
        assert_eq!(
            origin("https://a.example.com//", S).unwrap(),
            "https://a.example.com"
        );
        assert!(origin("https://a.example.com/x", S).is_err());
    }
}
