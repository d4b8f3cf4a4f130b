//! Configuration tests: the configuration types are declared with the provider
//! (`hosted_provider!` in `provider.rs`).

#[cfg(test)]
// figment::Jail's closures return figment's (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use crate::*;
    use mcp_auth_core::AuthProvider;
    use mcp_auth_core::config::ConfigError;

    const ENV_URL: &str = "https://acme.scalekit.com";

    fn set_minimal(jail: &mut figment::Jail) {
        jail.set_env("SCALEKIT_ENVIRONMENT_URL", "https://acme.scalekit.com/");
        jail.set_env("SCALEKIT_RESOURCE_ID", "res_42");
        jail.set_env("MCP_AUTH_RESOURCE_URL", "https://mcp.example.com/mcp");
    }

    #[test]
    fn loads_vendor_names_and_core_names() {
        figment::Jail::expect_with(|jail| {
            set_minimal(jail);
            jail.set_env("MCP_AUTH_REQUIRED_SCOPES", "todo:read, todo:write");
            jail.set_env("MCP_AUTH_SCOPES_SUPPORTED", "todo:read todo:write");
            jail.set_env("MCP_AUTH_RESOURCE_NAME", "Todo");
            let p = ScalekitProvider::from_env().unwrap();
            assert_eq!(p.urls().environment_url(), ENV_URL);
            assert_eq!(p.urls().resource_id(), "res_42");
            assert_eq!(
                p.required_scopes().iter().collect::<Vec<_>>(),
                ["todo:read", "todo:write"]
            );
            assert_eq!(p.metadata().resource_name.as_deref(), Some("Todo"));
            assert_eq!(
                p.metadata().authorization_servers,
                ["https://acme.scalekit.com/resources/res_42"]
            );
            Ok(())
        });
    }

    #[test]
    fn alias_spellings_load_and_conflicts_fail() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("MCP_AUTH_SCALEKIT_ENVIRONMENT_URL", ENV_URL);
            jail.set_env("MCP_AUTH_SCALEKIT_RESOURCE_ID", "res_7");
            jail.set_env("MCP_AUTH_RESOURCE_URL", "https://mcp.example.com/mcp");
            let c = ScalekitConfig::from_env().unwrap();
            assert_eq!(c.environment_url, ENV_URL);
            assert_eq!(c.resource_id, "res_7");

            // Same value under both names: fine.
            jail.set_env("SCALEKIT_RESOURCE_ID", "res_7");
            assert!(ScalekitConfig::from_env().is_ok());

            // Different values: start-up error naming both variables.
            jail.set_env("SCALEKIT_RESOURCE_ID", "res_8");
            let text = ScalekitConfig::from_env().unwrap_err().to_string();
            assert!(
                text.contains("SCALEKIT_RESOURCE_ID")
                    && text.contains("MCP_AUTH_SCALEKIT_RESOURCE_ID"),
                "{text}"
            );
            jail.set_env("SCALEKIT_RESOURCE_ID", "res_7");
            jail.set_env("SCALEKIT_ENVIRONMENT_URL", "https://other.scalekit.com");
            let text = ScalekitProvider::from_env().unwrap_err().to_string();
            assert!(
                text.contains("SCALEKIT_ENVIRONMENT_URL")
                    && text.contains("MCP_AUTH_SCALEKIT_ENVIRONMENT_URL"),
                "{text}"
            );
            Ok(())
        });
    }

    #[test]
    fn numeric_looking_ids_stay_strings() {
        figment::Jail::expect_with(|jail| {
            set_minimal(jail);
            jail.set_env("SCALEKIT_RESOURCE_ID", "00123");
            let c = ScalekitConfig::from_env().unwrap();
            assert_eq!(c.resource_id, "00123");
            jail.set_env("SCALEKIT_RESOURCE_ID", "[res_1, res_2]");
            let c = ScalekitConfig::from_env().unwrap();
            assert_eq!(c.resource_id, "[res_1, res_2]");
            // ...which the provider refuses, naming the variable.
            let err = ScalekitProvider::from_env().unwrap_err();
            assert!(
                matches!(&err, ConfigError::Invalid { variable, .. } if variable == "SCALEKIT_RESOURCE_ID"),
                "{err:?}"
            );
            Ok(())
        });
    }

    #[test]
    fn missing_values_name_the_variable() {
        figment::Jail::expect_with(|jail| {
            let err = ScalekitProvider::from_env().unwrap_err();
            assert_eq!(err.to_string(), "SCALEKIT_ENVIRONMENT_URL is missing");
            jail.set_env("SCALEKIT_ENVIRONMENT_URL", ENV_URL);
            let err = ScalekitProvider::from_env().unwrap_err();
            assert_eq!(err.to_string(), "SCALEKIT_RESOURCE_ID is missing");
            jail.set_env("SCALEKIT_RESOURCE_ID", "res_1");
            let err = ScalekitProvider::from_env().unwrap_err();
            assert_eq!(err.to_string(), "MCP_AUTH_RESOURCE_URL is missing");
            Ok(())
        });
    }

    #[test]
    fn invalid_values_name_the_variable() {
        figment::Jail::expect_with(|jail| {
            set_minimal(jail);
            jail.set_env("SCALEKIT_ENVIRONMENT_URL", "http://acme.scalekit.com");
            let err = ScalekitProvider::from_env().unwrap_err();
            assert!(
                matches!(&err, ConfigError::Invalid { variable, .. } if variable == "SCALEKIT_ENVIRONMENT_URL"),
                "{err:?}"
            );
            set_minimal(jail);
            jail.set_env("MCP_AUTH_RESOURCE_URL", "http://mcp.example.com/mcp");
            let err = ScalekitProvider::from_env().unwrap_err();
            assert!(
                matches!(&err, ConfigError::Invalid { variable, .. } if variable == "MCP_AUTH_RESOURCE_URL"),
                "{err:?}"
            );
            set_minimal(jail);
            jail.set_env("MCP_AUTH_REQUIRED_SCOPES", "offline_access");
            let err = ScalekitProvider::from_env().unwrap_err();
            assert!(
                matches!(&err, ConfigError::Invalid { variable, .. } if variable == "MCP_AUTH_REQUIRED_SCOPES"),
                "{err:?}"
            );
            Ok(())
        });
    }

    #[test]
    fn toml_type_errors_name_the_variable() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("MCP_AUTH_CONFIG_FILE", "auth.toml");
            for (line, variable) in [
                ("resource_url = 5", "MCP_AUTH_RESOURCE_URL"),
                ("required_scopes = 7", "MCP_AUTH_REQUIRED_SCOPES"),
            ] {
                jail.create_file(
                    "auth.toml",
                    &format!("environment_url = \"{ENV_URL}\"\nresource_id = \"res_1\"\n{line}\n"),
                )?;
                let err = ScalekitConfig::from_env().unwrap_err();
                assert!(
                    matches!(&err, ConfigError::Invalid { variable: v, .. } if v == variable),
                    "{line}: {err:?}"
                );
            }
            Ok(())
        });
    }

    #[test]
    fn toml_file_is_read_and_environment_wins() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "auth.toml",
                r#"
                environment_url = "https://file.scalekit.com"
                resource_id = "res_file"
                resource_url = "https://mcp.example.com/mcp"
                "#,
            )?;
            jail.set_env("MCP_AUTH_CONFIG_FILE", "auth.toml");
            let c = ScalekitConfig::from_env().unwrap();
            assert_eq!(c.environment_url, "https://file.scalekit.com");
            jail.set_env("SCALEKIT_ENVIRONMENT_URL", ENV_URL);
            let c = ScalekitConfig::from_env().unwrap();
            assert_eq!(c.environment_url, ENV_URL);
            assert_eq!(c.resource_id, "res_file");
            Ok(())
        });
    }
}
