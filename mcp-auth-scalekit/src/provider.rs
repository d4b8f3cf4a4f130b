//! The data sheet: Scalekit's URL layout; the provider, its builder and configuration are
//! `mcp-auth-jwt`'s shared ones, declared by `hosted_provider!`.

use mcp_auth_core::{BuildError, Setting, forward::AS_METADATA_PATH};
use mcp_auth_jwt::hosted::{HostedIdp, identifier, origin};

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
        let id_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        let resource_id = identifier(resource_id, RESOURCE_ID_SETTING, id_char)?;
        if !resource_id.starts_with("res_") {
            tracing::warn!(
                resource_id,
                "ids start with res_: check SCALEKIT_RESOURCE_ID"
            );
        }
        Ok(ScalekitUrls {
            environment_url,
            resource_id,
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
        let (env, id) = (&self.environment_url, &self.resource_id);
        format!("{env}{AS_METADATA_PATH}/resources/{id}")
    }
}

mcp_auth_jwt::hosted_provider! {
    name: "Scalekit",
    /// The Scalekit provider.
    ///
    /// * JWKS `<environment>/keys`, RS256.
    /// * Issuers: `<environment>` and `<environment>/resources/<resource id>`.
    /// * Audiences: the resource URL (R) and the resource id.
    /// * Metadata: `authorization_servers: ["<environment>/resources/<resource id>"]`.
    /// * Routes: the metadata routes, plus `/.well-known/oauth-authorization-server` forwarding
    ///   Scalekit's per-resource document (cached, CORS, 502 on upstream failure).
    ///
    /// A thin wrapper over `mcp-auth-jwt`'s [`HostedProvider`](mcp_auth_jwt::HostedProvider).
    provider: ScalekitProvider,
    builder: ScalekitProviderBuilder,
    sheet: ScalekitUrls,
    /// The Scalekit settings, as read from configuration (raw strings).
    config: ScalekitConfig {
        /// `SCALEKIT_ENVIRONMENT_URL`: `https://<env>.scalekit.com` (or a custom domain).
        environment_url,
        /// `SCALEKIT_RESOURCE_ID`: the MCP server's resource id (`res_…`).
        resource_id,
    },
    env: [
        ("environment_url", "SCALEKIT_ENVIRONMENT_URL"),
        ("environment_url", "MCP_AUTH_SCALEKIT_ENVIRONMENT_URL"),
        ("resource_id", "SCALEKIT_RESOURCE_ID"),
        ("resource_id", "MCP_AUTH_SCALEKIT_RESOURCE_ID"),
    ],
    hosted_idp: |urls| HostedIdp::new("Scalekit", urls.jwks_uri(), urls.as_metadata_upstream())
        .issuer(urls.environment_url())
        .issuer(urls.resource_issuer())
        .accepted_audience(urls.resource_id())
        .authorization_server(urls.authorization_server()),
}
