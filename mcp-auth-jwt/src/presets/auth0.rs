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

use mcp_auth_core::{BuildError, ResourceUrl};

use super::{OIDC, at, non_blank, preset};
use crate::hosted::{HostedIdp, origin};

preset! {
    /// The Auth0 preset: the tenant (or custom) domain, the API identifier, RBAC permissions.
    /// Reads `AUTH0_DOMAIN`, `AUTH0_AUDIENCE` and `AUTH0_PERMISSIONS_AS_SCOPES` (`1` or `0`).
    Auth0 {
        /// The tenant or custom domain (`acme.eu.auth0.com`; `https://` is added when missing;
        /// `http://127.0.0.1:port` is accepted for tests).
        new {
            domain => auth0_domain: String = DOMAIN("AUTH0_DOMAIN", "Auth0 domain"),
        }
        set {
            /// The API identifier (`aud`), when it is not R.
            audience => auth0_audience: Option<String> =
                AUDIENCE("AUTH0_AUDIENCE", "Auth0 audience"),
            /// Count the `permissions` array as scopes (RBAC with permissions in the access
            /// token).
            permissions_as_scopes => auth0_permissions_as_scopes: bool =
                PERMISSIONS("AUTH0_PERMISSIONS_AS_SCOPES", "Auth0 permissions as scopes")
                with "super::flag",
        }
        idp: auth0_idp,
    }
}

/// Auth0's data sheet: the issuer with its slash, the API identifier as an audience alias,
/// `permissions` as scopes when asked.
fn auth0_idp(a: &Auth0, _: &ResourceUrl) -> Result<HostedIdp, BuildError> {
    let raw = a.auth0_domain.trim();
    let scheme = if raw.is_empty() || raw.contains("://") {
        ""
    } else {
        "https://"
    };
    let d = origin(&format!("{scheme}{raw}"), DOMAIN)?;
    let mut idp = at("Auth0", &format!("{d}/"), "/.well-known/jwks.json", OIDC)
        .setup_hint("the API's identifier must be R or AUTH0_AUDIENCE");
    if let Some(aud) = non_blank(a.auth0_audience.as_deref()) {
        idp = idp.accepted_audience(aud);
    }
    if a.auth0_permissions_as_scopes {
        idp = idp.extra_scope_claim("permissions");
    }
    Ok(idp)
}
