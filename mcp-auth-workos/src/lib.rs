//! # mcp-auth-workos
//!
//! [`AuthKitProvider`]: protect an MCP server with tokens issued by
//! [WorkOS AuthKit](https://workos.com/docs/authkit). AuthKit is the authorization server (client
//! registration, login, consent); the MCP server only checks tokens and publishes the metadata
//! that sends MCP clients to AuthKit.
//!
//! ## From the WorkOS dashboard to code
//!
//! 1. **Let MCP clients register.** In the WorkOS dashboard, under *Connect → Configuration*,
//!    turn on dynamic client registration and/or client ID metadata documents: MCP clients
//!    register themselves with AuthKit.
//! 2. **Copy the AuthKit domain** (`<something>.authkit.app`, or your custom auth domain) from
//!    the dashboard's domains page. It becomes `AUTHKIT_DOMAIN`; `https://` is added if you leave
//!    it out, and a trailing slash is removed.
//! 3. **Register the resource indicator. Required.** Add the exact public URL of your MCP
//!    endpoint (e.g. `https://mcp.example.com/mcp`: same scheme and host clients use, no trailing
//!    slash) as an MCP resource indicator for the environment. AuthKit puts that URL in the
//!    token's `aud` **only** when it is registered; without it every token is refused with
//!    `invalid_token` (audience). The provider logs the exact value it expects at start-up
//!    (info, target `mcp_auth_jwt::hosted`), so compare that line with the dashboard entry. The same URL is
//!    `MCP_AUTH_RESOURCE_URL`.
//! 4. **Scopes.** The scopes AuthKit grants are in the token's `scope` claim. List those your
//!    tools use in `MCP_AUTH_SCOPES_SUPPORTED` and the ones every request needs in
//!    `MCP_AUTH_REQUIRED_SCOPES`. To enforce AuthKit role permissions (the `permissions` claim)
//!    instead, read them as scopes with
//!    [`configure_verifier`](AuthKitProviderBuilder::configure_verifier) and
//!    `.scope_claims(["scope", "permissions"])`.
//! 5. **Set the variables:**
//!
//! ```text
//! AUTHKIT_DOMAIN=acme.authkit.app
//! MCP_AUTH_RESOURCE_URL=https://mcp.example.com/mcp
//! MCP_AUTH_SCOPES_SUPPORTED=todo:read,todo:write
//! ```
//!
//! `MCP_AUTH_WORKOS_AUTHKIT_DOMAIN` is accepted too; set both to different values and start-up
//! fails. No API key or client secret is needed: tokens are checked against AuthKit's public
//! keys.
//!
//! ```no_run
//! use axum::{routing::post, Router};
//! use mcp_auth_core::AuthProvider;
//! use mcp_auth_workos::AuthKitProvider;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let provider = AuthKitProvider::from_env()?;
//! // or in code:
//! let provider = AuthKitProvider::builder("acme.authkit.app", "https://mcp.example.com/mcp")
//!     .scopes_supported(["todo:read", "todo:write"])
//!     .initial_scopes(["todo:read"])
//!     .build()?;
//! println!("register {} as a resource indicator", provider.expected_audience());
//!
//! let mcp = tower::ServiceBuilder::new()
//!     .layer(provider.layer())
//!     .service(post(|| async { "your rmcp service here" }));
//! let app: Router = Router::new()
//!     .route_service("/mcp", mcp)
//!     .merge(provider.routes());
//! # let _ = app; Ok(()) }
//! ```
//!
//! ## What it derives
//!
//! | | value |
//! |---|---|
//! | JWKS | `<domain>/oauth2/jwks`, RS256 |
//! | accepted `iss` | `<domain>` |
//! | accepted `aud` | the resource URL (R) |
//! | `authorization_servers` in the metadata | `<domain>` |
//! | `/.well-known/oauth-authorization-server` | forwards `<domain>/.well-known/oauth-authorization-server` |
//!
//! ## Customising
//!
//! [`AuthKitProviderBuilder`] is `mcp-auth-jwt`'s shared builder for hosted IdPs.
//! [`AuthKitProviderBuilder::verifier`] / [`AuthKitProvider::with_verifier`] swap the verifier;
//! [`AuthKitProviderBuilder::configure_verifier`] and
//! [`AuthKitProviderBuilder::configure_resource`] adjust the JWT verifier and core's builder;
//! [`AuthKitProviderBuilder::http_client`] sets the HTTP client. The domain may be
//! `http://127.0.0.1:<port>` so tests can serve AuthKit's URL layout locally.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod provider;

pub use provider::{
    AuthKitConfig, AuthKitProvider, AuthKitProviderBuilder, AuthKitUrls, ENV, JWKS_PATH,
};

#[cfg(test)]
mod config;

#[cfg(test)]
mod tests {

    use super::*;
    use mcp_auth_core::AuthProvider;
    use serde_json::json;

    #[test]
    fn derived_urls_are_pinned() {
        for domain in [
            "acme.authkit.app",
            "acme.authkit.app/",
            "https://acme.authkit.app",
            " https://acme.authkit.app// ",
            "HTTPS://ACME.authkit.app:443/",
        ] {
            let u = AuthKitUrls::new(domain).unwrap();
            assert_eq!(u.domain(), "https://acme.authkit.app", "{domain}");
            assert_eq!(u.issuer(), "https://acme.authkit.app");
            assert_eq!(u.authorization_server(), "https://acme.authkit.app");
            assert_eq!(u.jwks_uri(), "https://acme.authkit.app/oauth2/jwks");
            assert_eq!(
                u.as_metadata_upstream(),
                "https://acme.authkit.app/.well-known/oauth-authorization-server"
            );
        }
        let custom = AuthKitUrls::new("auth.example.com").unwrap();
        assert_eq!(custom.jwks_uri(), "https://auth.example.com/oauth2/jwks");
        let local = AuthKitUrls::new("http://127.0.0.1:9999/").unwrap();
        assert_eq!(local.issuer(), "http://127.0.0.1:9999");
    }

    #[test]
    fn bad_domains_are_refused() {
        for d in [
            "",
            "/",
            "http://acme.authkit.app",
            "acme.authkit.app/oauth2",
            "acme.authkit.app?x=1",
            "user@acme.authkit.app",
            "ftp://acme.authkit.app",
        ] {
            assert!(AuthKitUrls::new(d).is_err(), "{d:?} accepted");
        }
    }

    #[test]
    fn metadata_document_is_exact() {
        let p = AuthKitProvider::builder("acme.authkit.app", "https://mcp.example.com/mcp")
            .scopes_supported(["todo:read", "todo:write"])
            .required_scopes(["todo:write"])
            .resource_name("Todo")
            .resource_documentation("https://docs.example.com/todo")
            .build()
            .unwrap();
        assert_eq!(
            serde_json::to_value(p.metadata()).unwrap(),
            json!({
                "resource": "https://mcp.example.com/mcp",
                "authorization_servers": ["https://acme.authkit.app"],
                "scopes_supported": ["todo:read", "todo:write"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Todo",
                "resource_documentation": "https://docs.example.com/todo",
                "dpop_signing_alg_values_supported": ["ES256", "ES384", "EdDSA", "PS256", "RS256"],
            })
        );
        assert_eq!(p.audiences(), ["https://mcp.example.com/mcp".to_owned()]);
        assert_eq!(p.expected_audience(), "https://mcp.example.com/mcp");
        assert_eq!(p.protected_resource().challenge_scope(), "todo:write");

        let minimal = AuthKitProvider::builder("acme.authkit.app", "https://mcp.example.com")
            .build()
            .unwrap();
        assert_eq!(
            serde_json::to_value(minimal.metadata()).unwrap(),
            json!({
                "resource": "https://mcp.example.com",
                "authorization_servers": ["https://acme.authkit.app"],
                "bearer_methods_supported": ["header"],
                "dpop_signing_alg_values_supported": ["ES256", "ES384", "EdDSA", "PS256", "RS256"],
            })
        );
    }
}
