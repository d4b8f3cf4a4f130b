//! # mcp-auth-keycloak (example provider crate)
//!
//! [`KeycloakProvider`]: tokens from one [Keycloak](https://www.keycloak.org) realm. This crate
//! was written by following `docs/new-provider.md`; it is the template for publishing
//! `mcp-auth-<idp>` crates outside this workspace.
//!
//! ## From the Keycloak admin console to code
//!
//! 1. **Realm.** Pick (or create) the realm MCP users log in to. Its name is
//!    `MCP_AUTH_KEYCLOAK_REALM`; the server's public base URL (`https://sso.example.com`, plus
//!    `/auth` on old WildFly-based servers) is `MCP_AUTH_KEYCLOAK_URL`.
//! 2. **Audience.** Keycloak does not bind tokens to a resource indicator by itself: create a
//!    client scope (e.g. `mcp`) with an *Audience* mapper whose *Included Custom Audience* is the
//!    exact public URL of your MCP endpoint (`MCP_AUTH_RESOURCE_URL`, e.g.
//!    `https://mcp.example.com/mcp`), with "Add to access token" on, and make it a default client
//!    scope of the realm so that dynamically registered MCP clients get it.
//! 3. **Scopes.** Create client scopes for your tools (`todo:read`, `todo:write`) as optional
//!    client scopes; Keycloak lists granted ones in the space-separated `scope` claim. Set
//!    `MCP_AUTH_SCOPES_SUPPORTED` and, if every request needs some, `MCP_AUTH_REQUIRED_SCOPES`.
//! 4. **Client registration.** Allow anonymous dynamic client registration (realm client
//!    registration policies) if MCP clients should register themselves.
//!
//! ```text
//! MCP_AUTH_KEYCLOAK_URL=https://sso.example.com
//! MCP_AUTH_KEYCLOAK_REALM=acme
//! MCP_AUTH_RESOURCE_URL=https://mcp.example.com/mcp
//! MCP_AUTH_SCOPES_SUPPORTED=todo:read,todo:write
//! ```
//!
//! ```no_run
//! use mcp_auth_core::AuthProvider;
//! use mcp_auth_keycloak::KeycloakProvider;
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let provider = KeycloakProvider::builder("https://sso.example.com", "acme", "https://mcp.example.com/mcp")
//!     .scopes_supported(["todo:read", "todo:write"])
//!     .build()?;
//! let routes: axum::Router = provider.routes();
//! # let _ = routes; Ok(()) }
//! ```
//!
//! ## Data sheet
//!
//! | | value |
//! |---|---|
//! | issuer (`iss`, and `authorization_servers`) | `<base>/realms/<realm>` |
//! | JWKS | `<issuer>/protocol/openid-connect/certs`, RS256 |
//! | audience | the resource URL (R), added by the audience mapper |
//! | scopes | `scope` claim, space-separated |
//! | `/.well-known/oauth-authorization-server` | forwards `<issuer>/.well-known/openid-configuration` |
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::sync::Arc;

use axum::Router;
use figment::Figment;
use mcp_auth_core::config::{ConfigError, CoreConfig, EnvTable, extract_with_core, figment};
use mcp_auth_core::{AuthProvider, BuildError, ProtectedResource, Setting, TokenVerifier};
use mcp_auth_jwt::hosted::{DataSheet, HostedIdp, HostedProvider, HostedProviderBuilder, base_url};
use serde::Deserialize;

const URL_SETTING: Setting = Setting::new("keycloak_url", "Keycloak URL");
const REALM_SETTING: Setting = Setting::new("keycloak_realm", "Keycloak realm");

/// The URLs of one Keycloak realm.
///
/// ```
/// use mcp_auth_keycloak::KeycloakUrls;
/// let u = KeycloakUrls::new("https://sso.example.com/", "acme").unwrap();
/// assert_eq!(u.issuer(), "https://sso.example.com/realms/acme");
/// assert_eq!(u.jwks_uri(), "https://sso.example.com/realms/acme/protocol/openid-connect/certs");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeycloakUrls {
    issuer: String,
}

impl KeycloakUrls {
    /// Validates the base URL (`https`, `http` only on loopback; a path prefix such as `/auth`
    /// is kept, trailing slashes removed) and the realm name (letters, digits, `_`, `-`, `.`).
    pub fn new(base: &str, realm: &str) -> Result<Self, BuildError> {
        let url = base_url(base, URL_SETTING)?;
        let realm = realm.trim();
        if realm.is_empty() {
            return Err(BuildError::Missing(REALM_SETTING));
        }
        if !realm
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            || realm.starts_with('.')
        {
            return Err(BuildError::invalid(
                REALM_SETTING,
                format!("{realm:?} is not a realm name"),
            ));
        }
        let base = format!(
            "{}{}",
            url.origin().ascii_serialization(),
            url.path().trim_end_matches('/')
        );
        Ok(KeycloakUrls {
            issuer: format!("{base}/realms/{realm}"),
        })
    }

    /// `<base>/realms/<realm>`: `iss` of the realm's tokens, and the authorization server.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `<issuer>/protocol/openid-connect/certs`.
    pub fn jwks_uri(&self) -> String {
        format!("{}/protocol/openid-connect/certs", self.issuer)
    }

    /// `<issuer>/.well-known/openid-configuration`: the metadata forwarded for older clients.
    pub fn metadata_upstream(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }
}

impl DataSheet for KeycloakUrls {
    type Provider = KeycloakProvider;

    fn hosted_idp(&self) -> HostedIdp {
        HostedIdp::new("Keycloak", self.jwks_uri(), self.metadata_upstream())
            .issuer(self.issuer())
            .authorization_server(self.issuer())
            .setup_hint(
                "the realm's audience mapper must add expected_audience to the access token's aud",
            )
    }

    fn into_provider(self, inner: HostedProvider) -> KeycloakProvider {
        KeycloakProvider { inner, urls: self }
    }
}

/// Tokens from one Keycloak realm. A thin wrapper over `mcp-auth-jwt`'s [`HostedProvider`].
#[derive(Debug, Clone)]
pub struct KeycloakProvider {
    inner: HostedProvider,
    urls: KeycloakUrls,
}

/// Builder for [`KeycloakProvider`]: the shared [`HostedProviderBuilder`] for a realm's URLs.
pub type KeycloakProviderBuilder = HostedProviderBuilder<KeycloakUrls>;

impl KeycloakProvider {
    /// A builder from the base URL, the realm and the resource URL (R).
    pub fn builder(
        base_url: impl Into<String>,
        realm: impl Into<String>,
        resource_url: impl Into<String>,
    ) -> KeycloakProviderBuilder {
        HostedProviderBuilder::new(KeycloakUrls::new(&base_url.into(), &realm.into()))
            .resource_url(resource_url)
    }

    /// The derived URLs.
    pub fn urls(&self) -> &KeycloakUrls {
        &self.urls
    }

    /// Returns a copy with another verifier (URLs, metadata and routes unchanged).
    pub fn with_verifier(mut self, verifier: Arc<dyn TokenVerifier>) -> Self {
        self.inner = self.inner.with_verifier(verifier);
        self
    }
}

impl AuthProvider for KeycloakProvider {
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

/// The variables this crate reads.
pub const ENV: EnvTable = EnvTable::new(&[
    ("keycloak_url", "MCP_AUTH_KEYCLOAK_URL"),
    ("keycloak_realm", "MCP_AUTH_KEYCLOAK_REALM"),
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

#[derive(Deserialize)]
struct KeycloakConfig {
    keycloak_url: String,
    keycloak_realm: String,
    #[serde(flatten)]
    core: CoreConfig,
}

impl KeycloakProvider {
    /// Builds from the environment; errors name the variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_figment(&figment(&ENV))
    }

    /// Builds from a figment the caller assembled.
    pub fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        let c: KeycloakConfig = extract_with_core(figment, &ENV)?;
        HostedProviderBuilder::new(KeycloakUrls::new(&c.keycloak_url, &c.keycloak_realm))
            .apply_config(&c.core)
            .build_for_config(&ENV)
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn derived_urls_are_pinned() {
        let u = KeycloakUrls::new("https://sso.example.com/", "acme").unwrap();
        assert_eq!(u.issuer(), "https://sso.example.com/realms/acme");
        assert_eq!(
            u.jwks_uri(),
            "https://sso.example.com/realms/acme/protocol/openid-connect/certs"
        );
        assert_eq!(
            u.metadata_upstream(),
            "https://sso.example.com/realms/acme/.well-known/openid-configuration"
        );
        let legacy = KeycloakUrls::new("https://sso.example.com/auth/", "acme").unwrap();
        assert_eq!(legacy.issuer(), "https://sso.example.com/auth/realms/acme");
        for (base, realm) in [
            ("http://sso.example.com", "acme"),
            ("https://sso.example.com", "a/b"),
            ("https://sso.example.com", ""),
            ("https://sso.example.com?x", "acme"),
        ] {
            assert!(KeycloakUrls::new(base, realm).is_err(), "{base} {realm}");
        }
    }

    #[test]
    fn metadata_document_is_exact() {
        let p = KeycloakProvider::builder(
            "https://sso.example.com",
            "acme",
            "https://mcp.example.com/mcp",
        )
        .scopes_supported(["todo:read", "todo:write"])
        .build()
        .unwrap();
        assert_eq!(
            serde_json::to_value(p.metadata()).unwrap(),
            json!({
                "resource": "https://mcp.example.com/mcp",
                "authorization_servers": ["https://sso.example.com/realms/acme"],
                "scopes_supported": ["todo:read", "todo:write"],
                "bearer_methods_supported": ["header"],
                "dpop_signing_alg_values_supported": ["ES256", "ES384", "EdDSA", "PS256", "RS256"],
            })
        );
    }

    #[test]
    fn from_env_names_the_variables() {
        figment::Jail::expect_with(|jail| {
            assert_eq!(
                KeycloakProvider::from_env().unwrap_err().to_string(),
                "MCP_AUTH_KEYCLOAK_URL is missing"
            );
            jail.set_env("MCP_AUTH_KEYCLOAK_URL", "https://sso.example.com");
            jail.set_env("MCP_AUTH_KEYCLOAK_REALM", "a/b");
            jail.set_env("MCP_AUTH_RESOURCE_URL", "https://mcp.example.com/mcp");
            let err = KeycloakProvider::from_env().unwrap_err();
            assert!(
                matches!(&err, ConfigError::Invalid { variable, .. } if variable == "MCP_AUTH_KEYCLOAK_REALM"),
                "{err:?}"
            );
            jail.set_env("MCP_AUTH_KEYCLOAK_REALM", "0042");
            let p = KeycloakProvider::from_env().unwrap();
            assert_eq!(p.urls().issuer(), "https://sso.example.com/realms/0042");
            Ok(())
        });
    }
}
