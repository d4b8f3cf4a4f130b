//! Auth0: tenant or custom domain, API identifier, RBAC permissions.
//!
//! Facts from Auth0's documentation: access tokens for an API carry `iss` =
//! `https://<domain>/` (with the slash) and `aud` = the API identifier, an array that also
//! names `https://<domain>/userinfo` when `openid` was requested; keys are at
//! `https://<domain>/.well-known/jwks.json`; with RBAC and "Add Permissions in the Access Token"
//! on, the granted permissions arrive in a `permissions` array.
//!
//! ```
//! use mcp_auth_core::AuthProvider;
//! use mcp_auth_jwt::presets::{Preset, auth0::Auth0};
//!
//! let provider = Auth0::new("acme.eu.auth0.com")
//!     .audience("api://todo")
//!     .permissions_as_scopes(true)
//!     .builder()
//!     .resource_url("https://mcp.example.com/mcp")
//!     .scopes_supported(["todo:read"])
//!     .build()?;
//! assert_eq!(provider.metadata().authorization_servers, ["https://acme.eu.auth0.com/"]);
//! assert!(provider.audiences().contains(&"api://todo".to_owned()));
//! # Ok::<(), mcp_auth_core::BuildError>(())
//! ```

use mcp_auth_core::config::EnvTable;
use mcp_auth_core::{BuildError, ResourceUrl, Setting};
use serde::Deserialize;

use super::{OIDC, Preset, at, env_table, flag, non_blank};
use crate::hosted::{HostedIdp, origin};

const DOMAIN: Setting = Setting::new("auth0_domain", "Auth0 domain");

/// The Auth0 preset: the tenant (or custom) domain, the API identifier, RBAC permissions.
/// Reads `AUTH0_DOMAIN`, `AUTH0_AUDIENCE` and `AUTH0_PERMISSIONS_AS_SCOPES` (`1` or `0`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Auth0 {
    auth0_domain: String,
    auth0_audience: Option<String>,
    #[serde(deserialize_with = "flag")]
    auth0_permissions_as_scopes: bool,
}

impl Auth0 {
    /// The tenant or custom domain (`acme.eu.auth0.com`; `https://` is added when missing;
    /// `http://127.0.0.1:port` is accepted for tests).
    pub fn new(domain: impl Into<String>) -> Self {
        Auth0 {
            auth0_domain: domain.into(),
            ..Self::default()
        }
    }

    /// The API identifier (`aud`), when it is not R.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.auth0_audience = Some(audience.into());
        self
    }

    /// Count the `permissions` array as scopes (RBAC with permissions in the access token).
    pub fn permissions_as_scopes(mut self, on: bool) -> Self {
        self.auth0_permissions_as_scopes = on;
        self
    }
}

impl Preset for Auth0 {
    const ENV: EnvTable = env_table!(
        ("auth0_domain", "AUTH0_DOMAIN"),
        ("auth0_audience", "AUTH0_AUDIENCE"),
        ("auth0_permissions_as_scopes", "AUTH0_PERMISSIONS_AS_SCOPES"),
    );

    fn idp(&self, _: &ResourceUrl) -> Result<HostedIdp, BuildError> {
        let raw = self.auth0_domain.trim();
        let scheme = if raw.is_empty() || raw.contains("://") {
            ""
        } else {
            "https://"
        };
        let d = origin(&format!("{scheme}{raw}"), DOMAIN)?;
        let mut idp = at("Auth0", &format!("{d}/"), "/.well-known/jwks.json", OIDC)
            .setup_hint("the API's identifier must be R or AUTH0_AUDIENCE");
        if let Some(a) = non_blank(self.auth0_audience.as_deref()) {
            idp = idp.accepted_audience(a);
        }
        if self.auth0_permissions_as_scopes {
            idp = idp.extra_scope_claim("permissions");
        }
        Ok(idp)
    }
}
