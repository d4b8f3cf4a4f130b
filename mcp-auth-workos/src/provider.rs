//! The data sheet: AuthKit's URL layout; the provider, its builder and configuration are
//! `mcp-auth-jwt`'s shared ones, declared by `hosted_provider!`.

use mcp_auth_core::forward::AS_METADATA_PATH;
use mcp_auth_core::{BuildError, Setting};
use mcp_auth_jwt::hosted::{HostedIdp, origin};

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

mcp_auth_jwt::hosted_provider! {
    name: "WorkOS AuthKit",
    /// The WorkOS AuthKit provider.
    ///
    /// * JWKS `<domain>/oauth2/jwks`, RS256; issuer `<domain>`.
    /// * Audience: the resource URL (R). AuthKit puts R in `aud` only when R is registered as a
    ///   resource indicator in the WorkOS dashboard; the exact value is logged at start-up.
    /// * Metadata: `authorization_servers: ["<domain>"]`.
    /// * Routes: the metadata routes, plus `/.well-known/oauth-authorization-server` forwarding
    ///   `<domain>/.well-known/oauth-authorization-server` (cached, CORS, 502 on upstream
    ///   failure).
    ///
    /// A thin wrapper over `mcp-auth-jwt`'s [`HostedProvider`](mcp_auth_jwt::HostedProvider).
    /// To treat AuthKit role permissions as scopes:
    /// `.configure_verifier(|b| b.scope_claims(["scope", "permissions"]))` on the builder.
    provider: AuthKitProvider,
    builder: AuthKitProviderBuilder,
    sheet: AuthKitUrls,
    /// The AuthKit settings, as read from configuration (raw strings).
    config: AuthKitConfig {
        /// `AUTHKIT_DOMAIN`: `acme.authkit.app` or `https://acme.authkit.app` (or a custom
        /// domain).
        domain,
    },
    env: [
        ("domain", "AUTHKIT_DOMAIN"),
        ("domain", "MCP_AUTH_WORKOS_AUTHKIT_DOMAIN"),
    ],
    hosted_idp: |urls| HostedIdp::new("AuthKit", urls.jwks_uri(), urls.as_metadata_upstream())
        .issuer(urls.issuer())
        .authorization_server(urls.authorization_server())
        .setup_hint(
            "tokens must carry aud = expected_audience; register exactly this URL as a \
             resource indicator in the WorkOS dashboard, or AuthKit leaves it out of aud and \
             every token is refused",
        ),
}

impl AuthKitProvider {
    /// The accepted issuer: the domain.
    pub fn issuer(&self) -> &str {
        self.urls().issuer()
    }
}
