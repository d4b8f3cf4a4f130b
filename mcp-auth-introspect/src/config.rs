//! Configuration from figment (environment plus optional TOML file).

use std::time::Duration;

use figment::Figment;
use mcp_auth_core::config::{ConfigError, EnvTable, deserialize_list, extract, figment};
use mcp_auth_core::{BuildError, ResourceUrl};
use serde::{Deserialize, Deserializer};

use crate::{
    AuthMethod, ClientAuth, ClientSecret, IntrospectionVerifier, IntrospectionVerifierBuilder,
};

/// The introspection settings (`MCP_AUTH_INTROSPECT_*`, plus `MCP_AUTH_RESOURCE_URL` as the
/// default audience). Keys are the variable names without `MCP_AUTH_`, lower-cased.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct IntrospectConfig {
    /// `MCP_AUTH_INTROSPECT_URL`.
    #[serde(default)]
    pub introspect_url: Option<String>,
    /// `MCP_AUTH_INTROSPECT_CLIENT_ID` (raw string).
    #[serde(default)]
    pub introspect_client_id: Option<String>,
    /// `MCP_AUTH_INTROSPECT_CLIENT_SECRET` (raw string; `Debug` redacts it).
    #[serde(default, deserialize_with = "deserialize_secret")]
    pub introspect_client_secret: Option<ClientSecret>,
    /// `MCP_AUTH_INTROSPECT_AUTH_METHOD`.
    #[serde(default)]
    pub introspect_auth_method: Option<String>,
    /// `MCP_AUTH_INTROSPECT_AUDIENCE` (comma- or space-separated).
    #[serde(default, deserialize_with = "deserialize_list")]
    pub introspect_audience: Vec<String>,
    /// `MCP_AUTH_INTROSPECT_ISSUER`.
    #[serde(default)]
    pub introspect_issuer: Option<String>,
    /// `MCP_AUTH_INTROSPECT_CACHE_TTL_SECS` (default 60; 0 turns the cache off).
    #[serde(
        default,
        deserialize_with = "mcp_auth_core::config::deserialize_whole_number"
    )]
    pub introspect_cache_ttl_secs: Option<u64>,
    /// `MCP_AUTH_RESOURCE_URL`: always an accepted audience.
    #[serde(default)]
    pub resource_url: Option<String>,
    /// `MCP_AUTH_AUTHORIZATION_SERVERS`: accepted issuers next to `MCP_AUTH_INTROSPECT_ISSUER`.
    #[serde(default, deserialize_with = "mcp_auth_core::config::deserialize_list")]
    pub authorization_servers: Vec<String>,
}

fn deserialize_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ClientSecret>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(ClientSecret::new))
}

fn config_error(err: BuildError) -> ConfigError {
    ConfigError::from_build_in(&IntrospectConfig::ENV, err)
}

/// The builder settings, keyed on the configuration keys of [`IntrospectConfig::ENV`].
pub(crate) mod setting {
    use mcp_auth_core::Setting;
    pub(crate) const URL: Setting = Setting::new("introspect_url", "introspection endpoint");
    pub(crate) const CLIENT_ID: Setting =
        Setting::new("introspect_client_id", "introspection client id");
    pub(crate) const CLIENT_SECRET: Setting =
        Setting::new("introspect_client_secret", "introspection client secret");
    pub(crate) const AUTH_METHOD: Setting = Setting::new(
        "introspect_auth_method",
        "introspection client authentication",
    );
    pub(crate) const ISSUER: Setting = Setting::new("introspect_issuer", "issuer");
    pub(crate) const ALLOWED_CLIENTS: Setting =
        Setting::new("introspect_allowed_clients", "client allowlist");
    pub(crate) const AUDIENCE: Setting =
        Setting::new("introspect_audience", "audience (or resource URL)");
    pub(crate) const MAX_CONCURRENT: Setting = Setting::new(
        "max_concurrent_introspections",
        "max_concurrent_introspections",
    );
}

impl IntrospectConfig {
    /// The keys and their variables.
    pub const ENV: EnvTable = EnvTable::new(&[
        ("introspect_url", "MCP_AUTH_INTROSPECT_URL"),
        ("introspect_client_id", "MCP_AUTH_INTROSPECT_CLIENT_ID"),
        (
            "introspect_client_secret",
            "MCP_AUTH_INTROSPECT_CLIENT_SECRET",
        ),
        ("introspect_auth_method", "MCP_AUTH_INTROSPECT_AUTH_METHOD"),
        ("introspect_audience", "MCP_AUTH_INTROSPECT_AUDIENCE"),
        ("introspect_issuer", "MCP_AUTH_INTROSPECT_ISSUER"),
        (
            "introspect_cache_ttl_secs",
            "MCP_AUTH_INTROSPECT_CACHE_TTL_SECS",
        ),
        ("resource_url", "MCP_AUTH_RESOURCE_URL"),
        ("authorization_servers", "MCP_AUTH_AUTHORIZATION_SERVERS"),
    ]);

    /// Loads from the environment (and `MCP_AUTH_CONFIG_FILE`).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_figment(&figment(&Self::ENV))
    }

    /// Loads from a figment the caller assembled.
    pub fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        extract(figment, &Self::ENV)
    }

    /// A builder with these settings (adjust further in code, then `build()`).
    pub fn into_builder(self) -> Result<IntrospectionVerifierBuilder, ConfigError> {
        let method = match &self.introspect_auth_method {
            Some(m) => AuthMethod::parse_for(m, setting::AUTH_METHOD).map_err(config_error)?,
            None => AuthMethod::default(),
        };
        let secret = self.introspect_client_secret.ok_or(ConfigError::Missing {
            variable: "MCP_AUTH_INTROSPECT_CLIENT_SECRET".into(),
        })?;
        if method != AuthMethod::Bearer && self.introspect_client_id.is_none() {
            return Err(ConfigError::Missing {
                variable: "MCP_AUTH_INTROSPECT_CLIENT_ID".into(),
            });
        }
        let mut b = IntrospectionVerifier::builder().client_auth(ClientAuth::new(
            method,
            self.introspect_client_id,
            secret,
        ));
        if let Some(u) = self.introspect_url {
            b = b.endpoint(u);
        }
        let has_issuer = self.introspect_issuer.is_some();
        if let Some(i) = self.introspect_issuer {
            b = b.issuer(i);
        }
        // The accepted audiences: R, plus the aliases of MCP_AUTH_INTROSPECT_AUDIENCE.
        if let Some(r) = self.resource_url {
            ResourceUrl::parse(&r).map_err(|e| match e {
                BuildError::Invalid { reason, .. } => ConfigError::Invalid {
                    variable: "MCP_AUTH_RESOURCE_URL".into(),
                    reason: reason.into_owned(),
                },
                other => config_error(other),
            })?;
            b = b.resource_url(r);
        } else if self.introspect_audience.is_empty() {
            return Err(ConfigError::Missing {
                variable: "MCP_AUTH_INTROSPECT_AUDIENCE (or MCP_AUTH_RESOURCE_URL)".into(),
            });
        }
        b = b.audiences(self.introspect_audience);
        // Accepted issuers: MCP_AUTH_INTROSPECT_ISSUER and the advertised authorization servers;
        // one of the two is required (accepting any issuer is code-only, dangerous_*).
        if !has_issuer && self.authorization_servers.is_empty() {
            return Err(ConfigError::Missing {
                variable: "MCP_AUTH_INTROSPECT_ISSUER (or MCP_AUTH_AUTHORIZATION_SERVERS)".into(),
            });
        }
        b = b.issuers(self.authorization_servers);
        if let Some(secs) = self.introspect_cache_ttl_secs {
            b = b.cache_ttl(Duration::from_secs(secs));
        }
        Ok(b)
    }
}

impl IntrospectionVerifier {
    /// Builds from the environment (`MCP_AUTH_INTROSPECT_*`, `MCP_AUTH_RESOURCE_URL`) and the
    /// optional `MCP_AUTH_CONFIG_FILE`. Errors name the variable to fix.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_figment(&figment(&IntrospectConfig::ENV))
    }

    /// Builds from a figment the caller assembled.
    pub fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        IntrospectConfig::from_figment(figment)?
            .into_builder()?
            .build()
            .map_err(config_error)
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature
mod tests {
    use super::*;
    use figment::Jail;

    fn load() -> Result<IntrospectionVerifier, ConfigError> {
        IntrospectionVerifier::from_env()
    }

    #[test]
    fn env_builds_a_verifier_with_raw_strings() {
        Jail::expect_with(|jail| {
            jail.set_env(
                "MCP_AUTH_INTROSPECT_URL",
                "https://idp.example.com/introspect",
            );
            jail.set_env("MCP_AUTH_INTROSPECT_CLIENT_ID", "0123");
            jail.set_env("MCP_AUTH_INTROSPECT_CLIENT_SECRET", "[a, b]");
            jail.set_env("MCP_AUTH_RESOURCE_URL", "https://api.example.com/mcp");
            jail.set_env("MCP_AUTH_INTROSPECT_CACHE_TTL_SECS", "15");
            assert_eq!(
                load().unwrap_err().to_string(),
                "MCP_AUTH_INTROSPECT_ISSUER (or MCP_AUTH_AUTHORIZATION_SERVERS) is missing",
                "an issuer is required"
            );
            jail.set_env("MCP_AUTH_AUTHORIZATION_SERVERS", "https://idp.example.com");
            let c = IntrospectConfig::from_env().unwrap();
            assert_eq!(c.introspect_client_id.as_deref(), Some("0123"));
            assert_eq!(
                c.introspect_client_secret.as_ref().unwrap().expose(),
                "[a, b]"
            );
            assert!(!format!("{c:?}").contains("[a, b]"));
            assert_eq!(c.introspect_cache_ttl_secs, Some(15));
            let v = load().unwrap();
            let dbg = format!("{v:?}");
            assert!(dbg.contains("https://api.example.com/mcp"), "{dbg}");
            assert!(dbg.contains("client_secret_basic"), "{dbg}");
            assert!(dbg.contains("15s"), "{dbg}");
            Ok(())
        });
    }

    #[test]
    fn errors_name_the_variable() {
        Jail::expect_with(|jail| {
            jail.set_env(
                "MCP_AUTH_INTROSPECT_URL",
                "https://idp.example.com/introspect",
            );
            jail.set_env("MCP_AUTH_INTROSPECT_CLIENT_SECRET", "s");
            jail.set_env("MCP_AUTH_RESOURCE_URL", "https://api.example.com/mcp");
            jail.set_env("MCP_AUTH_AUTHORIZATION_SERVERS", "https://idp.example.com");
            assert_eq!(
                load().unwrap_err().to_string(),
                "MCP_AUTH_INTROSPECT_CLIENT_ID is missing"
            );
            jail.set_env("MCP_AUTH_INTROSPECT_CLIENT_ID", "rs");
            jail.set_env("MCP_AUTH_INTROSPECT_AUTH_METHOD", "private_key_jwt");
            let e = load().unwrap_err();
            assert!(
                matches!(&e, ConfigError::Invalid { variable, .. } if variable == "MCP_AUTH_INTROSPECT_AUTH_METHOD"),
                "{e:?}"
            );
            jail.set_env("MCP_AUTH_INTROSPECT_AUTH_METHOD", "client_secret_post");
            jail.set_env("MCP_AUTH_INTROSPECT_CACHE_TTL_SECS", "soon");
            let e = load().unwrap_err();
            assert!(
                matches!(&e, ConfigError::Invalid { variable, .. } if variable == "MCP_AUTH_INTROSPECT_CACHE_TTL_SECS"),
                "{e:?}"
            );
            jail.set_env("MCP_AUTH_INTROSPECT_CACHE_TTL_SECS", "0");
            jail.set_env(
                "MCP_AUTH_INTROSPECT_URL",
                "http://idp.example.com/introspect",
            );
            let e = load().unwrap_err();
            assert!(
                matches!(&e, ConfigError::Invalid { variable, .. } if variable == "MCP_AUTH_INTROSPECT_URL"),
                "{e:?}"
            );
            jail.set_env("MCP_AUTH_INTROSPECT_URL", "");
            assert_eq!(
                load().unwrap_err().to_string(),
                "MCP_AUTH_INTROSPECT_URL is missing"
            );
            jail.set_env("MCP_AUTH_INTROSPECT_ISSUER", "https://idp.example.com");
            jail.set_env("MCP_AUTH_RESOURCE_URL", "");
            assert_eq!(
                load().unwrap_err().to_string(),
                "MCP_AUTH_INTROSPECT_AUDIENCE (or MCP_AUTH_RESOURCE_URL) is missing"
            );
            jail.set_env("MCP_AUTH_INTROSPECT_AUDIENCE", "urn:a, urn:b");
            let v = load().unwrap();
            assert!(format!("{v:?}").contains("urn:b"));
            Ok(())
        });
    }

    #[test]
    fn bearer_method_needs_only_the_secret() {
        Jail::expect_with(|jail| {
            jail.set_env("MCP_AUTH_INTROSPECT_URL", "http://127.0.0.1:9/introspect");
            jail.set_env("MCP_AUTH_INTROSPECT_AUTH_METHOD", "bearer");
            jail.set_env("MCP_AUTH_RESOURCE_URL", "http://127.0.0.1:8000/mcp");
            jail.set_env("MCP_AUTH_INTROSPECT_ISSUER", "http://127.0.0.1:9");
            assert_eq!(
                load().unwrap_err().to_string(),
                "MCP_AUTH_INTROSPECT_CLIENT_SECRET is missing"
            );
            jail.set_env("MCP_AUTH_INTROSPECT_CLIENT_SECRET", "api-key");
            assert!(load().is_ok());
            Ok(())
        });
    }

    #[test]
    fn build_requires_an_audience_unless_dangerous() {
        let b = || {
            IntrospectionVerifier::builder()
                .endpoint("https://idp.example.com/introspect")
                .issuer("https://idp.example.com")
                .client_secret_basic("rs", "s")
        };
        assert!(matches!(b().build(), Err(BuildError::Missing(_))));
        assert!(b().dangerous_skip_audience().build().is_ok());
        assert!(b().audience("urn:x").build().is_ok());
        assert!(b().resource_url("http://10.0.0.1/mcp").build().is_err());
        assert!(
            IntrospectionVerifier::builder()
                .endpoint("https://idp.example.com/introspect")
                .audience("urn:x")
                .build()
                .is_err(),
            "credentials are required"
        );
    }
}
