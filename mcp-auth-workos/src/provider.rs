//! The data sheet: AuthKit's URL layout, and the provider built from it.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use mcp_auth_core::config::CoreConfig;
use mcp_auth_core::forward::{AS_METADATA_PATH, MetadataForwarder};
use mcp_auth_core::http::{HttpClient, check_url};
use mcp_auth_core::{
    AuthProvider, BuildError, ProtectedResource, RemoteAuthProvider, RemoteAuthProviderBuilder,
    ResourceUrl, TokenVerifier,
};
use mcp_auth_jwt::{Algorithm, JwtVerifier, JwtVerifierBuilder};

/// Path of the JWKS under the AuthKit domain.
pub const JWKS_PATH: &str = "/oauth2/jwks";

/// Setting name of the domain in build errors.
const DOMAIN_SETTING: &str = "AuthKit domain (AUTHKIT_DOMAIN)";

/// The URLs of one AuthKit environment, derived from its domain.
///
/// ```
/// use mcp_auth_workos::AuthKitUrls;
/// let urls = AuthKitUrls::new("acme.authkit.app/").unwrap();
/// assert_eq!(urls.domain(), "https://acme.authkit.app");
/// assert_eq!(urls.issuer(), "https://acme.authkit.app");
/// assert_eq!(urls.jwks_uri(), "https://acme.authkit.app/oauth2/jwks");
/// assert_eq!(
///     urls.as_metadata_upstream(),
///     "https://acme.authkit.app/.well-known/oauth-authorization-server"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthKitUrls {
    domain: String,
}

impl AuthKitUrls {
    /// Normalises and validates the domain: `https://` is added when no scheme is given, trailing
    /// slashes are removed, and the result must be an `https` origin (`http` only on loopback,
    /// for tests), e.g. `https://acme.authkit.app` or a custom domain.
    pub fn new(domain: &str) -> Result<Self, BuildError> {
        let trimmed = domain.trim().trim_end_matches('/');
        if trimmed.is_empty() {
            return Err(BuildError::Missing(DOMAIN_SETTING));
        }
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_owned()
        } else {
            format!("https://{trimmed}")
        };
        let url = url::Url::parse(&with_scheme).map_err(|e| {
            BuildError::invalid(DOMAIN_SETTING, format!("{trimmed:?} is not a domain: {e}"))
        })?;
        check_url(&url).map_err(|_| {
            BuildError::invalid(DOMAIN_SETTING, "must be https (http only on loopback)")
        })?;
        if url.host().is_none()
            || !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
            || url.path() != "/"
        {
            return Err(BuildError::invalid(
                DOMAIN_SETTING,
                format!("{trimmed:?} must be a bare domain such as acme.authkit.app"),
            ));
        }
        Ok(AuthKitUrls {
            domain: url.origin().ascii_serialization(),
        })
    }

    /// The domain as an origin (`https://acme.authkit.app`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The accepted `iss`: the domain itself.
    pub fn issuer(&self) -> &str {
        &self.domain
    }

    /// `<domain>/oauth2/jwks`.
    pub fn jwks_uri(&self) -> String {
        format!("{}{JWKS_PATH}", self.domain)
    }

    /// The authorization server advertised in the protected-resource metadata: the domain.
    pub fn authorization_server(&self) -> &str {
        &self.domain
    }

    /// `<domain>/.well-known/oauth-authorization-server`.
    pub fn as_metadata_upstream(&self) -> String {
        format!("{}{AS_METADATA_PATH}", self.domain)
    }
}

type VerifierHook = Box<dyn FnOnce(JwtVerifierBuilder) -> JwtVerifierBuilder>;
type ResourceHook = Box<dyn FnOnce(RemoteAuthProviderBuilder) -> RemoteAuthProviderBuilder>;

/// The WorkOS AuthKit provider.
///
/// * JWKS `<domain>/oauth2/jwks`, RS256; issuer `<domain>`.
/// * Audience: the resource URL (R). AuthKit puts R in `aud` only when R is registered as a
///   resource indicator in the WorkOS dashboard; the exact value is logged at start-up.
/// * Metadata: `authorization_servers: ["<domain>"]`.
/// * Routes: the metadata routes, plus `/.well-known/oauth-authorization-server` forwarding
///   `<domain>/.well-known/oauth-authorization-server` (cached, CORS, 502 on upstream failure).
///
/// A thin wrapper over a [`RemoteAuthProvider`].
#[derive(Clone)]
pub struct AuthKitProvider {
    inner: RemoteAuthProvider,
    urls: AuthKitUrls,
    forwarder: MetadataForwarder,
}

impl std::fmt::Debug for AuthKitProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthKitProvider")
            .field("urls", &self.urls)
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl AuthKitProvider {
    /// Starts a builder from the AuthKit domain (`acme.authkit.app`, with or without
    /// `https://`) and the MCP server's resource URL (R).
    pub fn builder(
        domain: impl Into<String>,
        resource_url: impl Into<String>,
    ) -> AuthKitProviderBuilder {
        AuthKitProviderBuilder {
            domain: domain.into(),
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
    pub fn urls(&self) -> &AuthKitUrls {
        &self.urls
    }

    /// The accepted issuer.
    pub fn issuer(&self) -> &str {
        self.urls.issuer()
    }

    /// The accepted audiences: R (and R with `/` when R is origin-only).
    pub fn audiences(&self) -> &[String] {
        self.inner.protected_resource().audiences()
    }

    /// The exact `aud` value AuthKit must put in tokens: R, which must be registered as a
    /// resource indicator in the WorkOS dashboard.
    pub fn expected_audience(&self) -> &str {
        self.inner.protected_resource().resource().as_str()
    }

    /// The wrapped provider.
    pub fn inner(&self) -> &RemoteAuthProvider {
        &self.inner
    }

    /// Returns a copy with another verifier. URLs, metadata and routes are unchanged.
    pub fn with_verifier(mut self, verifier: Arc<dyn TokenVerifier>) -> Self {
        self.inner = self.inner.with_verifier(verifier);
        self
    }
}

impl AuthProvider for AuthKitProvider {
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

/// Builder for [`AuthKitProvider`]. Setters are infallible; [`build`](Self::build) validates.
#[must_use]
pub struct AuthKitProviderBuilder {
    domain: String,
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

impl std::fmt::Debug for AuthKitProviderBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthKitProviderBuilder")
            .field("domain", &self.domain)
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

impl AuthKitProviderBuilder {
    /// Replaces the resource URL (R).
    pub fn resource_url(mut self, url: impl Into<String>) -> Self {
        self.resource_url = Some(url.into());
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

    /// Scopes named in the 401 challenge when none are required.
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
    /// documentation). `authorization_servers` is ignored: AuthKit's is the domain.
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

    /// Uses this verifier instead of the JWT verifier built from the AuthKit URLs.
    pub fn verifier(mut self, verifier: Arc<dyn TokenVerifier>) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// The HTTP client for the JWKS and the metadata forwarding (default: core's shared client).
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.http = Some(client);
        self
    }

    /// How long the forwarded authorization-server metadata is cached (default: core's).
    pub fn forward_ttl(mut self, ttl: Duration) -> Self {
        self.forward_ttl = Some(ttl);
        self
    }

    /// Adjusts the JWT verifier builder after the AuthKit settings are applied, e.g.
    /// `.scope_claims(["scope", "permissions"])` to treat AuthKit role permissions as scopes.
    /// Not used with [`verifier`](Self::verifier).
    pub fn configure_verifier(
        mut self,
        hook: impl FnOnce(JwtVerifierBuilder) -> JwtVerifierBuilder + 'static,
    ) -> Self {
        self.verifier_hook = Some(Box::new(hook));
        self
    }

    /// Adjusts core's provider builder after the AuthKit settings are applied.
    pub fn configure_resource(
        mut self,
        hook: impl FnOnce(RemoteAuthProviderBuilder) -> RemoteAuthProviderBuilder + 'static,
    ) -> Self {
        self.resource_hook = Some(Box::new(hook));
        self
    }

    /// Validates, derives the URLs, builds the verifier (RS256 JWKS verifier unless one was
    /// given) and the provider. Logs the exact expected audience at info level.
    pub fn build(self) -> Result<AuthKitProvider, BuildError> {
        let urls = AuthKitUrls::new(&self.domain)?;
        let raw = self
            .resource_url
            .ok_or(BuildError::Missing("resource URL (MCP_AUTH_RESOURCE_URL)"))?;
        let resource = ResourceUrl::parse(&raw)?;

        let verifier: Arc<dyn TokenVerifier> = match self.verifier {
            Some(v) => v,
            None => {
                let mut b = JwtVerifier::builder()
                    .jwks_uri(urls.jwks_uri())
                    .issuer(urls.issuer())
                    .audiences(resource.audiences())
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
            expected_audience = %resource,
            issuer = %urls.issuer(),
            jwks_uri = %urls.jwks_uri(),
            "AuthKit provider ready: tokens must carry aud = \"{resource}\"; register exactly this \
             URL as a resource indicator in the WorkOS dashboard, or AuthKit leaves it out of aud \
             and every token is refused"
        );
        Ok(AuthKitProvider {
            inner,
            urls,
            forwarder,
        })
    }
}
