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
use mcp_auth_core::config::{
    ConfigError, CoreConfig, EnvTable, deserialize_list, extract, figment,
};
use mcp_auth_core::forward::MetadataForwarder;
use mcp_auth_core::http::{HttpClient, check_url};
use mcp_auth_core::{
    AuthProvider, BuildError, ProtectedResource, RemoteAuthProvider, ResourceUrl, TokenVerifier,
};
use mcp_auth_jwt::{Algorithm, JwtVerifier};
use serde::Deserialize;

const URL_SETTING: &str = "Keycloak URL (MCP_AUTH_KEYCLOAK_URL)";
const REALM_SETTING: &str = "Keycloak realm (MCP_AUTH_KEYCLOAK_REALM)";

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
    pub fn new(base_url: &str, realm: &str) -> Result<Self, BuildError> {
        let base = base_url.trim().trim_end_matches('/');
        if base.is_empty() {
            return Err(BuildError::Missing(URL_SETTING));
        }
        let url = url::Url::parse(base)
            .map_err(|e| BuildError::invalid(URL_SETTING, format!("{base:?} is not a URL: {e}")))?;
        check_url(&url).map_err(|_| {
            BuildError::invalid(URL_SETTING, "must be https (http only on loopback)")
        })?;
        if url.host().is_none()
            || !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(BuildError::invalid(URL_SETTING, "must be a plain base URL"));
        }
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

/// Tokens from one Keycloak realm. A thin wrapper over a [`RemoteAuthProvider`].
#[derive(Debug, Clone)]
pub struct KeycloakProvider {
    inner: RemoteAuthProvider,
    urls: KeycloakUrls,
    forwarder: MetadataForwarder,
}

impl KeycloakProvider {
    /// A builder from the base URL, the realm and the resource URL (R).
    pub fn builder(
        base_url: impl Into<String>,
        realm: impl Into<String>,
        resource_url: impl Into<String>,
    ) -> KeycloakProviderBuilder {
        KeycloakProviderBuilder {
            base_url: base_url.into(),
            realm: realm.into(),
            core: CoreConfig::default(),
            resource_url: resource_url.into(),
            verifier: None,
            http: None,
        }
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
        self.inner.routes().merge(self.forwarder.clone().router())
    }
}

/// Builder for [`KeycloakProvider`].
#[must_use]
pub struct KeycloakProviderBuilder {
    base_url: String,
    realm: String,
    resource_url: String,
    core: CoreConfig,
    verifier: Option<Arc<dyn TokenVerifier>>,
    http: Option<HttpClient>,
}

impl KeycloakProviderBuilder {
    /// The metadata's `scopes_supported`.
    pub fn scopes_supported<I: IntoIterator<Item = S>, S: Into<String>>(mut self, s: I) -> Self {
        self.core.scopes_supported = s.into_iter().map(Into::into).collect();
        self
    }

    /// Scopes every request needs.
    pub fn required_scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, s: I) -> Self {
        self.core.required_scopes = s.into_iter().map(Into::into).collect();
        self
    }

    /// Scopes named in the 401 challenge when none are required.
    pub fn initial_scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, s: I) -> Self {
        self.core.initial_scopes = s.into_iter().map(Into::into).collect();
        self
    }

    /// Applies core's configuration (resource URL, scopes, metadata fields); the authorization
    /// server stays the realm's issuer.
    pub fn apply_config(mut self, config: &CoreConfig) -> Self {
        if let Some(r) = &config.resource_url {
            self.resource_url = r.clone();
        }
        let mut merged = config.clone();
        merged.authorization_servers = Vec::new();
        for (mine, theirs) in [
            (&mut self.core.scopes_supported, merged.scopes_supported),
            (&mut self.core.required_scopes, merged.required_scopes),
            (&mut self.core.initial_scopes, merged.initial_scopes),
        ] {
            if !theirs.is_empty() {
                *mine = theirs;
            }
        }
        if merged.resource_name.is_some() {
            self.core.resource_name = merged.resource_name;
        }
        if merged.resource_documentation.is_some() {
            self.core.resource_documentation = merged.resource_documentation;
        }
        self
    }

    /// Uses another verifier instead of the realm's JWKS verifier.
    pub fn verifier(mut self, verifier: Arc<dyn TokenVerifier>) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// The HTTP client for the JWKS and the forwarding (tests use short timeouts).
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.http = Some(client);
        self
    }

    /// Derives the URLs and builds the provider.
    pub fn build(self) -> Result<KeycloakProvider, BuildError> {
        let urls = KeycloakUrls::new(&self.base_url, &self.realm)?;
        let resource = ResourceUrl::parse(&self.resource_url)?;
        let verifier: Arc<dyn TokenVerifier> = match self.verifier {
            Some(v) => v,
            None => {
                let mut b = JwtVerifier::builder()
                    .jwks_uri(urls.jwks_uri())
                    .issuer(urls.issuer())
                    .resource_url(resource.as_str())
                    .algorithms([Algorithm::RS256]);
                if let Some(http) = &self.http {
                    b = b.http_client(http.clone());
                }
                Arc::new(b.build()?)
            }
        };
        let mut core = self.core;
        core.resource_url = Some(resource.as_str().to_owned());
        core.authorization_servers = vec![urls.issuer().to_owned()];
        let inner = RemoteAuthProvider::builder(verifier)
            .apply_config(&core)
            .build()?;
        let mut forwarder = MetadataForwarder::new(&urls.metadata_upstream())?;
        if let Some(http) = self.http {
            forwarder = forwarder.http_client(http);
        }
        tracing::info!(issuer = %urls.issuer(), audience = %resource, "Keycloak provider ready");
        Ok(KeycloakProvider {
            inner,
            urls,
            forwarder,
        })
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
]);

#[derive(Deserialize)]
struct KeycloakConfig {
    keycloak_url: String,
    keycloak_realm: String,
    resource_url: String,
    #[serde(default, deserialize_with = "deserialize_list")]
    required_scopes: Vec<String>,
    #[serde(default, deserialize_with = "deserialize_list")]
    initial_scopes: Vec<String>,
    #[serde(default, deserialize_with = "deserialize_list")]
    scopes_supported: Vec<String>,
}

impl KeycloakProvider {
    /// Builds from the environment; errors name the variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_figment(&figment(&ENV))
    }

    /// Builds from a figment the caller assembled.
    pub fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        let c: KeycloakConfig = extract(figment, &ENV)?;
        KeycloakProvider::builder(c.keycloak_url, c.keycloak_realm, c.resource_url)
            .scopes_supported(c.scopes_supported)
            .required_scopes(c.required_scopes)
            .initial_scopes(c.initial_scopes)
            .build()
            .map_err(|e| {
                let text = e.to_string();
                let variable = if text.contains("MCP_AUTH_KEYCLOAK_URL") {
                    "MCP_AUTH_KEYCLOAK_URL"
                } else if text.contains("MCP_AUTH_KEYCLOAK_REALM") {
                    "MCP_AUTH_KEYCLOAK_REALM"
                } else if text.contains("resource URL") {
                    "MCP_AUTH_RESOURCE_URL"
                } else {
                    return ConfigError::Other(text);
                };
                ConfigError::from_build(variable, e)
            })
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
