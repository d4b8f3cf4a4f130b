//! Configuration from the environment (and `MCP_AUTH_CONFIG_FILE`) through figment.

use std::time::Duration;

use figment::Figment;
use mcp_auth_core::config::{ConfigError, EnvTable, deserialize_list, extract, figment};
use mcp_auth_core::{BuildError, ResourceUrl};
use serde::Deserialize;

use crate::keys::parse_alg;
use crate::{JwtVerifier, JwtVerifierBuilder, TypPolicy};

/// The keys read by [`JwtVerifier::from_figment`] and their environment variables (the names the
/// README's provider table lists).
pub const ENV: EnvTable = EnvTable::new(&[
    ("jwt_jwks_uri", "MCP_AUTH_JWT_JWKS_URI"),
    ("jwt_issuer", "MCP_AUTH_JWT_ISSUER"),
    ("jwt_audience", "MCP_AUTH_JWT_AUDIENCE"),
    ("jwt_algorithms", "MCP_AUTH_JWT_ALGORITHMS"),
    ("jwt_public_key", "MCP_AUTH_JWT_PUBLIC_KEY"),
    ("jwt_leeway_secs", "MCP_AUTH_JWT_LEEWAY_SECS"),
    ("jwt_typ", "MCP_AUTH_JWT_TYP"),
    ("resource_url", "MCP_AUTH_RESOURCE_URL"),
    ("authorization_servers", "MCP_AUTH_AUTHORIZATION_SERVERS"),
]);

#[derive(Debug, Default, Deserialize)]
struct JwtConfig {
    #[serde(default)]
    jwt_jwks_uri: Option<String>,
    #[serde(default, deserialize_with = "deserialize_list")]
    jwt_issuer: Vec<String>,
    #[serde(default, deserialize_with = "deserialize_list")]
    jwt_audience: Vec<String>,
    #[serde(default, deserialize_with = "deserialize_list")]
    jwt_algorithms: Vec<String>,
    #[serde(default)]
    jwt_public_key: Option<String>,
    #[serde(default)]
    jwt_leeway_secs: Option<String>,
    #[serde(default)]
    jwt_typ: Option<String>,
    #[serde(default)]
    resource_url: Option<String>,
    #[serde(default, deserialize_with = "deserialize_list")]
    authorization_servers: Vec<String>,
}

fn invalid(variable: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        variable: variable.into(),
        reason: reason.into(),
    }
}

fn build_error(variable: &'static str, e: BuildError) -> ConfigError {
    ConfigError::from_build(variable, e)
}

impl JwtVerifier {
    /// The configuration keys and variables this crate reads.
    pub const ENV: EnvTable = ENV;

    /// Builds a verifier from the environment (and the TOML file named by
    /// `MCP_AUTH_CONFIG_FILE`). Errors name the variable to fix.
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `MCP_AUTH_JWT_JWKS_URI` | JWKS URL |
    /// | `MCP_AUTH_JWT_ISSUER` | accepted issuer(s), comma/space separated (default: `MCP_AUTH_AUTHORIZATION_SERVERS`; one of the two is required); without a JWKS URI or key, each issuer's keys are found by its own discovery |
    /// | `MCP_AUTH_JWT_AUDIENCE` | audience aliases accepted next to `MCP_AUTH_RESOURCE_URL` (an Auth0 API identifier, an Entra App ID URI) |
    /// | `MCP_AUTH_JWT_ALGORITHMS` | allowlist (default `RS256`) |
    /// | `MCP_AUTH_JWT_PUBLIC_KEY` | static public key: PEM (literal `\n` accepted), JWK or JWKS |
    /// | `MCP_AUTH_JWT_LEEWAY_SECS` | clock leeway (default 30) |
    /// | `MCP_AUTH_JWT_TYP` | `default` or `strict` |
    pub fn from_env() -> Result<JwtVerifier, ConfigError> {
        Self::from_figment(&figment(&ENV))
    }

    /// Builds a verifier from a figment the caller assembled (flat keys: `jwt_jwks_uri`, ...).
    pub fn from_figment(figment: &Figment) -> Result<JwtVerifier, ConfigError> {
        Self::builder_from_figment(figment)?
            .build()
            .map_err(|e| ConfigError::from_build_in(&ENV, e))
    }

    /// The builder with the configured settings applied, for callers (provider crates) that add
    /// their own conventions before `build()`.
    pub fn builder_from_figment(figment: &Figment) -> Result<JwtVerifierBuilder, ConfigError> {
        let c: JwtConfig = extract(figment, &ENV)?;
        let mut b = JwtVerifier::builder();
        if let Some(u) = &c.jwt_jwks_uri {
            let url = url::Url::parse(u)
                .map_err(|e| invalid("MCP_AUTH_JWT_JWKS_URI", format!("not a URL: {e}")))?;
            mcp_auth_core::fetch::check_url(&url).map_err(|_| {
                invalid(
                    "MCP_AUTH_JWT_JWKS_URI",
                    "must be https (http only on loopback)",
                )
            })?;
            b = b.jwks_uri(u.clone());
        }
        // The accepted issuers: MCP_AUTH_JWT_ISSUER, else the advertised authorization servers.
        // One of the two is required (a verifier accepting any `iss` is code-only, dangerous_*).
        let issuers = if c.jwt_issuer.is_empty() {
            c.authorization_servers.clone()
        } else {
            c.jwt_issuer.clone()
        };
        if issuers.is_empty() {
            return Err(ConfigError::Missing {
                variable: "MCP_AUTH_JWT_ISSUER (or MCP_AUTH_AUTHORIZATION_SERVERS)".into(),
            });
        }
        b = b.issuers(issuers);
        // The accepted audiences: R, plus the aliases of MCP_AUTH_JWT_AUDIENCE.
        if let Some(r) = &c.resource_url {
            ResourceUrl::parse(r).map_err(|e| build_error("MCP_AUTH_RESOURCE_URL", e))?;
            b = b.resource_url(r.clone());
        }
        if !c.jwt_audience.is_empty() {
            b = b.audiences(c.jwt_audience.clone());
        } else if c.resource_url.is_none() {
            return Err(ConfigError::Missing {
                variable: "MCP_AUTH_JWT_AUDIENCE (or MCP_AUTH_RESOURCE_URL)".into(),
            });
        }
        if !c.jwt_algorithms.is_empty() {
            let mut algs = Vec::new();
            for name in &c.jwt_algorithms {
                match parse_alg(name) {
                    Some(a) if !crate::keys::is_hmac(a) => algs.push(a),
                    Some(_) => {
                        return Err(invalid(
                            "MCP_AUTH_JWT_ALGORITHMS",
                            format!(
                                "{name} needs an HMAC secret, which is configured in code only"
                            ),
                        ));
                    }
                    None => {
                        return Err(invalid(
                            "MCP_AUTH_JWT_ALGORITHMS",
                            format!(
                                "unsupported algorithm {name:?} (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)"
                            ),
                        ));
                    }
                }
            }
            b = b.algorithms(algs);
        }
        if let Some(k) = &c.jwt_public_key {
            crate::keys::parse_static(k).map_err(|r| invalid("MCP_AUTH_JWT_PUBLIC_KEY", r))?;
            b = b.public_key(k);
        }
        if let Some(l) = &c.jwt_leeway_secs {
            let secs: u64 = l.trim().parse().map_err(|_| {
                invalid(
                    "MCP_AUTH_JWT_LEEWAY_SECS",
                    format!("{l:?} is not a whole number of seconds"),
                )
            })?;
            if secs > 600 {
                return Err(invalid("MCP_AUTH_JWT_LEEWAY_SECS", "at most 600 seconds"));
            }
            b = b.leeway(Duration::from_secs(secs));
        }
        if let Some(t) = &c.jwt_typ {
            let p: TypPolicy = t.parse().map_err(|_| {
                invalid(
                    "MCP_AUTH_JWT_TYP",
                    format!("{t:?}: expected default or strict"),
                )
            })?;
            b = b.typ_policy(p);
        }
        Ok(b)
    }
}
