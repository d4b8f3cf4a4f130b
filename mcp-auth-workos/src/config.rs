//! Configuration from the environment (and `MCP_AUTH_CONFIG_FILE`) through core's `EnvTable`.

use figment::Figment;
use mcp_auth_core::config::{ConfigError, CoreConfig, EnvTable, extract_with_core, figment};
use mcp_auth_jwt::hosted::HostedProviderBuilder;
use serde::Deserialize;

use crate::{AuthKitProvider, AuthKitProviderBuilder, AuthKitUrls};

/// The keys read by [`AuthKitConfig::from_figment`] and the variables that set them.
/// `AUTHKIT_DOMAIN` and `MCP_AUTH_WORKOS_AUTHKIT_DOMAIN` set to different values is an error.
pub const ENV: EnvTable = EnvTable::new(&[
    ("domain", "AUTHKIT_DOMAIN"),
    ("domain", "MCP_AUTH_WORKOS_AUTHKIT_DOMAIN"),
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

/// The AuthKit settings, as read from configuration (raw strings).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct AuthKitConfig {
    /// `AUTHKIT_DOMAIN`: `acme.authkit.app` or `https://acme.authkit.app` (or a custom domain).
    pub domain: String,
    /// Core's settings: `MCP_AUTH_RESOURCE_URL` (required to build, and to be registered as a
    /// resource indicator), scopes, resource name and documentation. `authorization_servers` is
    /// not read: AuthKit's is the domain.
    #[serde(flatten)]
    pub core: CoreConfig,
}

impl AuthKitConfig {
    /// The keys and their variables.
    pub const ENV: EnvTable = ENV;

    /// Reads the environment (and the TOML file named by `MCP_AUTH_CONFIG_FILE`).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_figment(&figment(&ENV))
    }

    /// Reads a figment the caller assembled (flat keys: `domain`, `resource_url`, ...).
    pub fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        extract_with_core(figment, &ENV)
    }

    /// The provider builder with these settings applied.
    pub fn builder(&self) -> AuthKitProviderBuilder {
        HostedProviderBuilder::new(AuthKitUrls::new(&self.domain)).apply_config(&self.core)
    }
}

impl AuthKitProvider {
    /// Builds the provider from the environment (and `MCP_AUTH_CONFIG_FILE`):
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `AUTHKIT_DOMAIN` (or `MCP_AUTH_WORKOS_AUTHKIT_DOMAIN`) | the AuthKit domain |
    /// | `MCP_AUTH_RESOURCE_URL` | the MCP server's public URL, registered as a resource indicator |
    /// | `MCP_AUTH_REQUIRED_SCOPES` | scopes every request needs |
    /// | `MCP_AUTH_INITIAL_SCOPES` | scopes named in the 401 challenge |
    /// | `MCP_AUTH_SCOPES_SUPPORTED` | the metadata's `scopes_supported` |
    /// | `MCP_AUTH_RESOURCE_NAME`, `MCP_AUTH_RESOURCE_DOCUMENTATION` | metadata fields |
    ///
    /// Errors name the variable to fix.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_figment(&figment(&ENV))
    }

    /// Builds the provider from a figment the caller assembled.
    pub fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        AuthKitConfig::from_figment(figment)?
            .builder()
            .build_for_config(&ENV)
    }
}

#[cfg(test)]
// figment::Jail's closures return figment's (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use mcp_auth_core::AuthProvider;

    #[test]
    fn loads_and_normalises_the_domain() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("AUTHKIT_DOMAIN", "acme.authkit.app/");
            jail.set_env("MCP_AUTH_RESOURCE_URL", "https://mcp.example.com/mcp");
            jail.set_env("MCP_AUTH_SCOPES_SUPPORTED", "todo:read,todo:write");
            jail.set_env("MCP_AUTH_INITIAL_SCOPES", "todo:read");
            let p = AuthKitProvider::from_env().unwrap();
            assert_eq!(p.urls().domain(), "https://acme.authkit.app");
            assert_eq!(
                p.metadata().authorization_servers,
                ["https://acme.authkit.app"]
            );
            assert_eq!(p.metadata().scopes_supported, ["todo:read", "todo:write"]);
            assert_eq!(p.protected_resource().challenge_scope(), "todo:read");
            Ok(())
        });
    }

    #[test]
    fn alias_loads_and_conflicts_fail() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("MCP_AUTH_WORKOS_AUTHKIT_DOMAIN", "https://acme.authkit.app");
            jail.set_env("MCP_AUTH_RESOURCE_URL", "https://mcp.example.com/mcp");
            assert_eq!(
                AuthKitConfig::from_env().unwrap().domain,
                "https://acme.authkit.app"
            );
            jail.set_env("AUTHKIT_DOMAIN", "https://acme.authkit.app");
            assert!(AuthKitProvider::from_env().is_ok());
            jail.set_env("AUTHKIT_DOMAIN", "https://other.authkit.app");
            let text = AuthKitProvider::from_env().unwrap_err().to_string();
            assert!(
                text.contains("AUTHKIT_DOMAIN") && text.contains("MCP_AUTH_WORKOS_AUTHKIT_DOMAIN"),
                "{text}"
            );
            Ok(())
        });
    }

    #[test]
    fn errors_name_the_variable() {
        figment::Jail::expect_with(|jail| {
            assert_eq!(
                AuthKitProvider::from_env().unwrap_err().to_string(),
                "AUTHKIT_DOMAIN is missing"
            );
            jail.set_env("AUTHKIT_DOMAIN", "acme.authkit.app");
            assert_eq!(
                AuthKitProvider::from_env().unwrap_err().to_string(),
                "MCP_AUTH_RESOURCE_URL is missing"
            );
            jail.set_env("MCP_AUTH_RESOURCE_URL", "https://mcp.example.com/mcp");
            jail.set_env("AUTHKIT_DOMAIN", "http://acme.authkit.app");
            let err = AuthKitProvider::from_env().unwrap_err();
            assert!(
                matches!(&err, ConfigError::Invalid { variable, .. } if variable == "AUTHKIT_DOMAIN"),
                "{err:?}"
            );
            jail.set_env("AUTHKIT_DOMAIN", "acme.authkit.app/oauth2");
            let err = AuthKitProvider::from_env().unwrap_err();
            assert!(
                matches!(&err, ConfigError::Invalid { variable, .. } if variable == "AUTHKIT_DOMAIN"),
                "{err:?}"
            );
            jail.set_env("AUTHKIT_DOMAIN", "acme.authkit.app");
            jail.set_env("MCP_AUTH_SCOPES_SUPPORTED", "todo:read offline_access");
            let err = AuthKitProvider::from_env().unwrap_err();
            assert!(
                matches!(&err, ConfigError::Invalid { variable, .. } if variable == "MCP_AUTH_SCOPES_SUPPORTED"),
                "{err:?}"
            );
            Ok(())
        });
    }

    #[test]
    fn values_stay_raw_strings() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("AUTHKIT_DOMAIN", "0123");
            jail.set_env("MCP_AUTH_RESOURCE_URL", "https://mcp.example.com/mcp");
            assert_eq!(AuthKitConfig::from_env().unwrap().domain, "0123");
            Ok(())
        });
    }
}
