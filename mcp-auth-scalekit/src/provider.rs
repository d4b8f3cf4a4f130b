//! The data sheet: Scalekit's URL layout, and the provider built from it.

use std::sync::Arc;

use axum::Router;
use mcp_auth_core::{
    AuthProvider, BuildError, ProtectedResource, RemoteAuthProvider, Setting, TokenVerifier,
};
use mcp_auth_jwt::hosted::{DataSheet, HostedIdp, HostedProvider, HostedProviderBuilder, origin};

/// Path of the JWKS under the environment URL.
pub const JWKS_PATH: &str = "/keys";

/// Setting name of the environment URL in build errors.
const ENV_SETTING: Setting = Setting::new("environment_url", "Scalekit environment URL");
/// Setting name of the resource id in build errors.
const RESOURCE_ID_SETTING: Setting = Setting::new("resource_id", "Scalekit resource id");

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
        let environment_url = origin(environment_url, ENV_SETTING)?;
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

impl DataSheet for ScalekitUrls {
    type Provider = ScalekitProvider;

    fn hosted_idp(&self) -> HostedIdp {
        let [env_issuer, resource_issuer] = self.issuers();
        HostedIdp::new("Scalekit", self.jwks_uri(), self.as_metadata_upstream())
            .issuer(env_issuer)
            .issuer(resource_issuer)
            .accepted_audience(self.resource_id())
            .authorization_server(self.authorization_server())
    }

    fn into_provider(self, inner: HostedProvider) -> ScalekitProvider {
        ScalekitProvider { inner, urls: self }
    }
}

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
/// A thin wrapper over `mcp-auth-jwt`'s [`HostedProvider`], which does all the work.
#[derive(Debug, Clone)]
pub struct ScalekitProvider {
    inner: HostedProvider,
    urls: ScalekitUrls,
}

/// Builder for [`ScalekitProvider`]: `mcp-auth-jwt`'s shared [`HostedProviderBuilder`] for
/// Scalekit's URLs. Setters are infallible; `build()` validates, builds the RS256 JWKS verifier
/// (unless one was given) and logs the accepted issuers and audiences at info level.
pub type ScalekitProviderBuilder = HostedProviderBuilder<ScalekitUrls>;

impl ScalekitProvider {
    /// Starts a builder from the three values of the Scalekit dashboard: the environment URL,
    /// the MCP server's resource id (`res_…`) and its resource URL (the "Server URL", R).
    pub fn builder(
        environment_url: impl Into<String>,
        resource_id: impl Into<String>,
        resource_url: impl Into<String>,
    ) -> ScalekitProviderBuilder {
        HostedProviderBuilder::new(ScalekitUrls::new(
            &environment_url.into(),
            &resource_id.into(),
        ))
        .resource_url(resource_url)
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
        self.inner.audiences()
    }

    /// The wrapped core provider.
    pub fn inner(&self) -> &RemoteAuthProvider {
        self.inner.remote()
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
        self.inner.routes()
    }
}
