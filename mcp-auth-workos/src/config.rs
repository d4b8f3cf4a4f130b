//! Configuration tests: the configuration types are declared with the provider
//! (`hosted_provider!` in `provider.rs`).

#[cfg(test)]
// figment::Jail's closures return figment's (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use crate::*;
    use mcp_auth_core::AuthProvider;
    use mcp_auth_core::config::ConfigError;

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
