//! The data sheet: AuthKit's URL layout, and the provider built from it.

use std::sync::Arc;

use axum::Router;
use mcp_auth_core::forward::AS_METADATA_PATH;
use mcp_auth_core::{
    AuthProvider, BuildError, ProtectedResource, RemoteAuthProvider, Setting, TokenVerifier,
};
use mcp_auth_jwt::hosted::{DataSheet, HostedIdp, HostedProvider, HostedProviderBuilder, origin};

/// Path of the JWKS under the AuthKit domain.
pub const JWKS_PATH: &str = "/oauth2/jwks";

/// Setting name of the domain in build errors.
const DOMAIN_SETTING: Setting = Setting::new("domain", "AuthKit domain");

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
        let trimmed = domain.trim();
        if trimmed.trim_end_matches('/').is_empty() {
            return Err(BuildError::Missing(DOMAIN_SETTING));
        }
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_owned()
        } else {
            format!("https://{trimmed}")
        };
        Ok(AuthKitUrls {
            domain: origin(&with_scheme, DOMAIN_SETTING)?,
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

impl DataSheet for AuthKitUrls {
    type Provider = AuthKitProvider;

    fn hosted_idp(&self) -> HostedIdp {
        HostedIdp::new("AuthKit", self.jwks_uri(), self.as_metadata_upstream())
            .issuer(self.issuer())
            .authorization_server(self.authorization_server())
            .setup_hint(
                "tokens must carry aud = expected_audience; register exactly this URL as a \
                 resource indicator in the WorkOS dashboard, or AuthKit leaves it out of aud and \
                 every token is refused",
            )
    }

    fn into_provider(self, inner: HostedProvider) -> AuthKitProvider {
        AuthKitProvider { inner, urls: self }
    }
}

/// The WorkOS AuthKit provider.
///
/// * JWKS `<domain>/oauth2/jwks`, RS256; issuer `<domain>`.
/// * Audience: the resource URL (R). AuthKit puts R in `aud` only when R is registered as a
///   resource indicator in the WorkOS dashboard; the exact value is logged at start-up.
/// * Metadata: `authorization_servers: ["<domain>"]`.
/// * Routes: the metadata routes, plus `/.well-known/oauth-authorization-server` forwarding
///   `<domain>/.well-known/oauth-authorization-server` (cached, CORS, 502 on upstream failure).
///
/// A thin wrapper over `mcp-auth-jwt`'s [`HostedProvider`].
#[derive(Debug, Clone)]
pub struct AuthKitProvider {
    inner: HostedProvider,
    urls: AuthKitUrls,
}

/// Builder for [`AuthKitProvider`]: `mcp-auth-jwt`'s shared [`HostedProviderBuilder`] for
/// AuthKit's URLs. Setters are infallible; `build()` validates, builds the RS256 JWKS verifier
/// (unless one was given) and logs the exact expected audience at info level. To treat AuthKit
/// role permissions as scopes: `.configure_verifier(|b| b.scope_claims(["scope",
/// "permissions"]))`.
pub type AuthKitProviderBuilder = HostedProviderBuilder<AuthKitUrls>;

impl AuthKitProvider {
    /// Starts a builder from the AuthKit domain (`acme.authkit.app`, with or without
    /// `https://`) and the MCP server's resource URL (R).
    pub fn builder(
        domain: impl Into<String>,
        resource_url: impl Into<String>,
    ) -> AuthKitProviderBuilder {
        HostedProviderBuilder::new(AuthKitUrls::new(&domain.into())).resource_url(resource_url)
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
        self.inner.audiences()
    }

    /// The exact `aud` value AuthKit must put in tokens: R, which must be registered as a
    /// resource indicator in the WorkOS dashboard.
    pub fn expected_audience(&self) -> &str {
        self.inner.protected_resource().resource().as_str()
    }

    /// The wrapped core provider.
    pub fn inner(&self) -> &RemoteAuthProvider {
        self.inner.remote()
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
        self.inner.routes()
    }
}
