//! The data sheet: Scalekit's URL layout, and the provider built from it.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use mcp_auth_core::config::CoreConfig;
use mcp_auth_core::forward::MetadataForwarder;
use mcp_auth_core::http::{HttpClient, check_url};
use mcp_auth_core::{
    AuthProvider, BuildError, ProtectedResource, RemoteAuthProvider, RemoteAuthProviderBuilder,
    ResourceUrl, TokenVerifier,
};
use mcp_auth_jwt::{Algorithm, JwtVerifier, JwtVerifierBuilder};

/// Path of the JWKS under the environment URL.
pub const JWKS_PATH: &str = "/keys";

/// Setting name of the environment URL in build errors.
const ENV_SETTING: &str = "Scalekit environment URL (SCALEKIT_ENVIRONMENT_URL)";
/// Setting name of the resource id in build errors.
const RESOURCE_ID_SETTING: &str = "Scalekit resource id (SCALEKIT_RESOURCE_ID)";

/// The URLs Scalekit uses for one MCP server registration, derived from the environment URL and
/// the resource id (`res_…`).
///
/// ```
/// use mcp_auth_scalekit::ScalekitUrls;
/// let urls = ScalekitUrls::new("https://acme.scalekit.com/", "res_123").unwrap();
/// assert_eq!(urls.environment_url(), "https://acme.scalekit.com");
/// assert_eq!(urls.jwks_uri(), "https://acme.scalekit.com/keys");
/// assert_eq!(urls.authorization_server(), "https://acme.scalekit.com/resources/res_123");
/// assert_eq!(
///     urls.issuers(),
///     ["https://acme.scalekit.com", "https://acme.scalekit.com/resources/res_123"]
/// );
/// assert_eq!(
///     urls.as_metadata_upstream(),
///     "https://acme.scalekit.com/.well-known/oauth-authorization-server/resources/res_123"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalekitUrls {
    environment_url: String,
    resource_id: String,
}

impl ScalekitUrls {
    /// Normalises and validates the inputs: the environment URL must be an `https` origin
    /// (`http` only on loopback, for tests), trailing slashes are removed; the resource id must
    /// be a non-empty run of letters, digits, `_` and `-` (it is pasted into URL paths).
    pub fn new(environment_url: &str, resource_id: &str) -> Result<Self, BuildError> {
        let environment_url = normalise_origin(environment_url, ENV_SETTING)?;
        let resource_id = resource_id.trim();
        if resource_id.is_empty() {
            return Err(BuildError::Missing(RESOURCE_ID_SETTING));
        }
        if !resource_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(BuildError::invalid(
                RESOURCE_ID_SETTING,
                format!("{resource_id:?} is not a Scalekit resource id (expected res_…)"),
            ));
        }
        if !resource_id.starts_with("res_") {
            tracing::warn!(
                resource_id,
                "Scalekit resource ids usually start with res_: check SCALEKIT_RESOURCE_ID"
            );
        }
        Ok(ScalekitUrls {
            environment_url,
            resource_id: resource_id.to_owned(),
        })
    }

    /// The environment URL, normalised (`https://acme.scalekit.com`).
    pub fn environment_url(&self) -> &str {
        &self.environment_url
    }

    /// The resource id (`res_…`).
    pub fn resource_id(&self) -> &str {
        &self.resource_id
    }

    /// `<env>/keys`: the environment's JWKS.
    pub fn jwks_uri(&self) -> String {
        format!("{}{JWKS_PATH}", self.environment_url)
    }

    /// `<env>/resources/<resource_id>`: the per-resource issuer.
    pub fn resource_issuer(&self) -> String {
        format!("{}/resources/{}", self.environment_url, self.resource_id)
    }

    /// The accepted `iss` values: `<env>` and `<env>/resources/<resource_id>` (Scalekit is
    /// migrating from the first to the second).
    pub fn issuers(&self) -> [String; 2] {
        [self.environment_url.clone(), self.resource_issuer()]
    }

    /// The authorization server advertised in the protected-resource metadata:
    /// `<env>/resources/<resource_id>`.
    pub fn authorization_server(&self) -> String {
        self.resource_issuer()
    }

    /// The upstream authorization-server metadata (RFC 8414 path-inserted form):
    /// `<env>/.well-known/oauth-authorization-server/resources/<resource_id>`.
    pub fn as_metadata_upstream(&self) -> String {
        format!(
            "{}/.well-known/oauth-authorization-server/resources/{}",
            self.environment_url, self.resource_id
        )
    }
}

/// Trims, removes trailing slashes, and checks that `raw` is an `https` origin (`http` on
/// loopback). Returns the serialised origin.
fn normalise_origin(raw: &str, setting: &'static str) -> Result<String, BuildError> {
    let trimmed = raw.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(BuildError::Missing(setting));
    }
    let url = url::Url::parse(trimmed)
        .map_err(|e| BuildError::invalid(setting, format!("{trimmed:?} is not a URL: {e}")))?;
    check_url(&url)
        .map_err(|_| BuildError::invalid(setting, "must be https (http only on loopback)"))?;
    if url.host().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
        || url.path() != "/"
    {
        return Err(BuildError::invalid(
            setting,
            format!("{trimmed:?} must be a bare origin such as https://acme.scalekit.com"),
        ));
    }
    Ok(url.origin().ascii_serialization())
}

type VerifierHook = Box<dyn FnOnce(JwtVerifierBuilder) -> JwtVerifierBuilder>;
type ResourceHook = Box<dyn FnOnce(RemoteAuthProviderBuilder) -> RemoteAuthProviderBuilder>;

/// The Scalekit provider: tokens from a Scalekit environment for one registered MCP server.
///
/// * JWKS `<env>/keys`, RS256.
/// * Issuers `<env>` and `<env>/resources/<resource_id>`.
/// * Audiences: the resource id and the resource URL (R), in the verifier and in the bearer
///   layer's own audience check.
/// * Metadata: `authorization_servers: ["<env>/resources/<resource_id>"]`.
/// * Routes: the metadata routes, plus `/.well-known/oauth-authorization-server` forwarding
///   `<env>/.well-known/oauth-authorization-server/resources/<resource_id>` (cached, CORS, 502
///   when the upstream fails).
///
/// It is a thin wrapper over a [`RemoteAuthProvider`], which does all the work.
#[derive(Clone)]
pub struct ScalekitProvider {
    inner: RemoteAuthProvider,
    urls: ScalekitUrls,
    forwarder: MetadataForwarder,
}

impl std::fmt::Debug for ScalekitProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScalekitProvider")
            .field("urls", &self.urls)
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl ScalekitProvider {
    /// Starts a builder from the three values of the Scalekit dashboard: the environment URL,
    /// the MCP server's resource id (`res_…`) and its resource URL (the "Server URL", R).
    pub fn builder(
        environment_url: impl Into<String>,
        resource_id: impl Into<String>,
        resource_url: impl Into<String>,
    ) -> ScalekitProviderBuilder {
        ScalekitProviderBuilder {
            environment_url: environment_url.into(),
            resource_id: resource_id.into(),
            resource_url: Some(resource_url.into()),
            required_scopes: Vec::new(),
            initial_scopes: Vec::new(),
            scopes_supported: Vec::new(),
            resource_name: None,
            resource_documentation: None,
            verifier: None,
            http: None,
            forward_ttl: None,
            verifier_hook: None,
            resource_hook: None,
        }
    }

    /// The derived URLs.
    pub fn urls(&self) -> &ScalekitUrls {
        &self.urls
    }

    /// The accepted issuers.
    pub fn issuers(&self) -> [String; 2] {
        self.urls.issuers()
    }

    /// The accepted audiences: R (plus R with `/` when origin-only) and the resource id.
    pub fn audiences(&self) -> &[String] {
        self.inner.protected_resource().audiences()
    }

    /// The wrapped provider.
    pub fn inner(&self) -> &RemoteAuthProvider {
        &self.inner
    }

    /// Returns a copy with another verifier (an introspection verifier, a wrapper that maps
    /// claims, ...). URLs, metadata and routes are unchanged.
    pub fn with_verifier(mut self, verifier: Arc<dyn TokenVerifier>) -> Self {
        self.inner = self.inner.with_verifier(verifier);
        self
    }
}

impl AuthProvider for ScalekitProvider {
    fn verifier(&self) -> Arc<dyn TokenVerifier> {
        self.inner.verifier()
    }

    fn protected_resource(&self) -> &ProtectedResource {
        self.inner.protected_resource()
    }

    fn routes(&self) -> Router {
        self.inner.routes().merge(self.forwarder.clone().router())
    }
}

/// Builder for [`ScalekitProvider`]. Setters are infallible; [`build`](Self::build) validates.
#[must_use]
pub struct ScalekitProviderBuilder {
    environment_url: String,
    resource_id: String,
    resource_url: Option<String>,
    required_scopes: Vec<String>,
    initial_scopes: Vec<String>,
    scopes_supported: Vec<String>,
    resource_name: Option<String>,
    resource_documentation: Option<String>,
    verifier: Option<Arc<dyn TokenVerifier>>,
    http: Option<HttpClient>,
    forward_ttl: Option<Duration>,
    verifier_hook: Option<VerifierHook>,
    resource_hook: Option<ResourceHook>,
}

impl std::fmt::Debug for ScalekitProviderBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScalekitProviderBuilder")
            .field("environment_url", &self.environment_url)
            .field("resource_id", &self.resource_id)
            .field("resource_url", &self.resource_url)
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

impl ScalekitProviderBuilder {
    /// Replaces the resource URL (R).
    pub fn resource_url(mut self, url: impl Into<String>) -> Self {
        self.resource_url = Some(url.into());
        self
    }

    /// Scopes every request needs (403 `insufficient_scope` otherwise). Create them on the MCP
    /// server in the Scalekit dashboard.
    pub fn required_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required_scopes = strings(scopes);
        self
    }

    /// Scopes named in the 401 challenge when none are required (least privilege first).
    pub fn initial_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.initial_scopes = strings(scopes);
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

    /// Applies core's configuration (`MCP_AUTH_RESOURCE_URL`, scopes, resource name and
    /// documentation) on top of what is set. `authorization_servers` is ignored: Scalekit's is
    /// derived.
    pub fn apply_config(mut self, config: &CoreConfig) -> Self {
        if let Some(r) = &config.resource_url {
            self.resource_url = Some(r.clone());
        }
        if !config.required_scopes.is_empty() {
            self.required_scopes = config.required_scopes.clone();
        }
        if !config.initial_scopes.is_empty() {
            self.initial_scopes = config.initial_scopes.clone();
        }
        if !config.scopes_supported.is_empty() {
            self.scopes_supported = config.scopes_supported.clone();
        }
        if let Some(n) = &config.resource_name {
            self.resource_name = Some(n.clone());
        }
        if let Some(d) = &config.resource_documentation {
            self.resource_documentation = Some(d.clone());
        }
        self
    }

    /// Uses this verifier instead of the JWT verifier built from the Scalekit URLs.
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

    /// How long the forwarded authorization-server metadata is cached (default: core's).
    pub fn forward_ttl(mut self, ttl: Duration) -> Self {
        self.forward_ttl = Some(ttl);
        self
    }

    /// Adjusts the JWT verifier builder after the Scalekit settings are applied (leeway, cache,
    /// cooldown, `typ` policy, more algorithms). Not used with [`verifier`](Self::verifier).
    pub fn configure_verifier(
        mut self,
        hook: impl FnOnce(JwtVerifierBuilder) -> JwtVerifierBuilder + 'static,
    ) -> Self {
        self.verifier_hook = Some(Box::new(hook));
        self
    }

    /// Adjusts core's provider builder after the Scalekit settings are applied (scope
    /// hierarchy, root metadata alias, extra metadata fields).
    pub fn configure_resource(
        mut self,
        hook: impl FnOnce(RemoteAuthProviderBuilder) -> RemoteAuthProviderBuilder + 'static,
    ) -> Self {
        self.resource_hook = Some(Box::new(hook));
        self
    }

    /// Validates, derives the URLs, builds the verifier (RS256 JWKS verifier unless one was
    /// given) and the provider. Logs the accepted issuers and audiences at info level.
    pub fn build(self) -> Result<ScalekitProvider, BuildError> {
        let urls = ScalekitUrls::new(&self.environment_url, &self.resource_id)?;
        let raw = self
            .resource_url
            .ok_or(BuildError::Missing("resource URL (MCP_AUTH_RESOURCE_URL)"))?;
        let resource = ResourceUrl::parse(&raw)?;
        let mut audiences = resource.audiences();
        audiences.push(urls.resource_id().to_owned());

        let verifier: Arc<dyn TokenVerifier> = match self.verifier {
            Some(v) => v,
            None => {
                let mut b = JwtVerifier::builder()
                    .jwks_uri(urls.jwks_uri())
                    .issuers(urls.issuers())
                    .audiences(audiences.clone())
                    .algorithms([Algorithm::RS256]);
                if let Some(http) = &self.http {
                    b = b.http_client(http.clone());
                }
                if let Some(hook) = self.verifier_hook {
                    b = hook(b);
                }
                Arc::new(b.build()?)
            }
        };

        let mut rb = RemoteAuthProvider::builder(verifier)
            .resource_url(resource.as_str())
            .authorization_server(urls.authorization_server())
            .accepted_audience(urls.resource_id())
            .required_scopes(self.required_scopes)
            .initial_scopes(self.initial_scopes)
            .scopes_supported(self.scopes_supported);
        if let Some(n) = self.resource_name {
            rb = rb.resource_name(n);
        }
        if let Some(d) = self.resource_documentation {
            rb = rb.resource_documentation(d);
        }
        if let Some(hook) = self.resource_hook {
            rb = hook(rb);
        }
        let inner = rb.build()?;

        let mut forwarder = MetadataForwarder::new(&urls.as_metadata_upstream())?;
        if let Some(http) = self.http {
            forwarder = forwarder.http_client(http);
        }
        if let Some(ttl) = self.forward_ttl {
            forwarder = forwarder.ttl(ttl);
        }
        tracing::info!(
            jwks_uri = %urls.jwks_uri(),
            issuers = ?urls.issuers(),
            audiences = ?inner.protected_resource().audiences(),
            authorization_server = %urls.authorization_server(),
            "Scalekit provider ready"
        );
        Ok(ScalekitProvider {
            inner,
            urls,
            forwarder,
        })
    }
}
