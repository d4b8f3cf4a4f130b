//! # mcp-auth-scalekit
//!
//! [`ScalekitProvider`]: protect an MCP server with tokens issued by
//! [Scalekit](https://scalekit.com). The MCP server is a resource server only: Scalekit runs
//! client registration, login and consent; this crate checks the tokens and publishes the
//! metadata that sends MCP clients to Scalekit.
//!
//! ## From the Scalekit dashboard to code
//!
//! 1. **Register the MCP server.** In the Scalekit dashboard open *MCP servers* and add one. Give
//!    it a name (shown on the consent screen) and turn on dynamic client registration and/or
//!    client ID metadata documents, which MCP clients use to register themselves.
//! 2. **Server URL.** Set the server URL (resource identifier) to the exact public URL of your
//!    MCP endpoint, e.g. `https://mcp.example.com/mcp`: no trailing slash, same scheme and host
//!    as clients use. This value becomes `MCP_AUTH_RESOURCE_URL`.
//! 3. **Scopes.** Create the scopes your tools need on that MCP server (e.g. `todo:read`,
//!    `todo:write`). List them in `MCP_AUTH_SCOPES_SUPPORTED`; put the ones every request needs in
//!    `MCP_AUTH_REQUIRED_SCOPES`, or leave that empty and enforce per-tool scopes with core's
//!    policy layer.
//! 4. **Copy two values.** The MCP server's *resource id* (`res_…`) from its page, and your
//!    *environment URL* (`https://<env>.scalekit.com`, or your custom domain) from the API
//!    credentials settings. No client id or secret is needed: tokens are checked against the
//!    environment's public keys.
//! 5. **Set the variables:**
//!
//! ```text
//! SCALEKIT_ENVIRONMENT_URL=https://acme.scalekit.com
//! SCALEKIT_RESOURCE_ID=res_1234567890
//! MCP_AUTH_RESOURCE_URL=https://mcp.example.com/mcp
//! MCP_AUTH_SCOPES_SUPPORTED=todo:read,todo:write
//! MCP_AUTH_REQUIRED_SCOPES=todo:read
//! ```
//!
//! `MCP_AUTH_SCALEKIT_ENVIRONMENT_URL` and `MCP_AUTH_SCALEKIT_RESOURCE_ID` are accepted too; set
//! both spellings of one setting to different values and start-up fails. Ids are read as raw
//! strings, and trailing slashes on the environment URL are removed.
//!
//! ```no_run
//! use axum::{routing::post, Router};
//! use mcp_auth_core::AuthProvider;
//! use mcp_auth_scalekit::ScalekitProvider;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // From the environment above...
//! let provider = ScalekitProvider::from_env()?;
//! // ...or in code.
//! let provider = ScalekitProvider::builder(
//!     "https://acme.scalekit.com",
//!     "res_1234567890",
//!     "https://mcp.example.com/mcp",
//! )
//! .scopes_supported(["todo:read", "todo:write"])
//! .required_scopes(["todo:read"])
//! .resource_name("Todo MCP server")
//! .build()?;
//!
//! let mcp = tower::ServiceBuilder::new()
//!     .layer(provider.layer())     // protected
//!     .service(post(|| async { "your rmcp service here" }));
//! let app: Router = Router::new()
//!     .route_service("/mcp", mcp)
//!     .merge(provider.routes());   // public: metadata + AS-metadata forwarding
//! # let _ = app; Ok(()) }
//! ```
//!
//! ## What it derives
//!
//! | | value |
//! |---|---|
//! | JWKS | `<env>/keys`, RS256 |
//! | accepted `iss` | `<env>` and `<env>/resources/<resource_id>` (Scalekit is migrating between the two) |
//! | accepted `aud` | the resource URL and the resource id |
//! | `authorization_servers` in the metadata | `<env>/resources/<resource_id>` |
//! | `/.well-known/oauth-authorization-server` | forwards `<env>/.well-known/oauth-authorization-server/resources/<resource_id>` |
//!
//! At start-up the provider logs (info, target `mcp_auth_jwt::hosted`) the JWKS URL, the issuers
//! and audiences it accepts. A token rejected for its issuer or audience is logged by
//! `mcp-auth-jwt` with the expected and found values.
//!
//! ## Customising
//!
//! [`ScalekitProviderBuilder`] is `mcp-auth-jwt`'s shared builder for hosted IdPs, so it has the
//! same methods as every other provider crate's:
//!
//! * [`ScalekitProviderBuilder::verifier`] or [`ScalekitProvider::with_verifier`]: another
//!   verifier (URLs, metadata and routes stay).
//! * [`ScalekitProviderBuilder::configure_verifier`]: tune the JWT verifier (leeway, caches).
//! * [`ScalekitProviderBuilder::configure_resource`]: core's builder (scope hierarchy, root
//!   metadata alias, extra metadata fields).
//! * [`ScalekitProviderBuilder::http_client`]: the HTTP client for the JWKS and forwarding. The
//!   environment URL may be `http://127.0.0.1:<port>` so tests can serve Scalekit's URL layout
//!   locally.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod provider;

pub use provider::{
    ENV, JWKS_PATH, ScalekitConfig, ScalekitProvider, ScalekitProviderBuilder, ScalekitUrls,
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
        for env in [
            "https://acme.scalekit.com",
            "https://acme.scalekit.com/",
            " https://acme.scalekit.com// ",
            "https://ACME.scalekit.com:443",
        ] {
            let u = ScalekitUrls::new(env, "res_123").unwrap();
            assert_eq!(u.environment_url(), "https://acme.scalekit.com", "{env}");
            assert_eq!(u.resource_id(), "res_123");
            assert_eq!(u.jwks_uri(), "https://acme.scalekit.com/keys");
            assert_eq!(
                u.issuers(),
                [
                    "https://acme.scalekit.com",
                    "https://acme.scalekit.com/resources/res_123"
                ]
            );
            assert_eq!(
                u.authorization_server(),
                "https://acme.scalekit.com/resources/res_123"
            );
            assert_eq!(
                u.as_metadata_upstream(),
                "https://acme.scalekit.com/.well-known/oauth-authorization-server/resources/res_123"
            );
        }
        let local = ScalekitUrls::new("http://127.0.0.1:4567/", "res_1").unwrap();
        assert_eq!(local.jwks_uri(), "http://127.0.0.1:4567/keys");
    }

    #[test]
    fn bad_inputs_are_refused() {
        for env in [
            "",
            "acme.scalekit.com",
            "http://acme.scalekit.com",
            "https://acme.scalekit.com/path",
            "https://acme.scalekit.com?x=1",
            "https://user:pw@acme.scalekit.com",
            "ftp://acme.scalekit.com",
        ] {
            assert!(ScalekitUrls::new(env, "res_1").is_err(), "{env:?} accepted");
        }
        for id in ["", " ", "res/1", "res_1?x", "../keys", "res 1"] {
            assert!(
                ScalekitUrls::new("https://a.scalekit.com", id).is_err(),
                "{id:?} accepted"
            );
        }
    }

    #[test]
    fn metadata_document_is_exact() {
        let p = ScalekitProvider::builder(
            "https://acme.scalekit.com/",
            "res_123",
            "https://mcp.example.com/mcp/",
        )
        .scopes_supported(["todo:read", "todo:write"])
        .required_scopes(["todo:read"])
        .resource_name("Todo")
        .resource_documentation("https://docs.example.com/todo")
        .build()
        .unwrap();
        assert_eq!(
            serde_json::to_value(p.metadata()).unwrap(),
            json!({
                "resource": "https://mcp.example.com/mcp",
                "authorization_servers": ["https://acme.scalekit.com/resources/res_123"],
                "scopes_supported": ["todo:read", "todo:write"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Todo",
                "resource_documentation": "https://docs.example.com/todo",
                "dpop_signing_alg_values_supported": ["ES256", "ES384", "EdDSA", "PS256", "RS256"],
            })
        );
        assert_eq!(
            p.audiences(),
            [
                "https://mcp.example.com/mcp".to_owned(),
                "res_123".to_owned()
            ]
        );
        assert_eq!(p.protected_resource().challenge_scope(), "todo:read");

        let minimal = ScalekitProvider::builder(
            "https://acme.scalekit.com",
            "res_1",
            "https://mcp.example.com",
        )
        .build()
        .unwrap();
        assert_eq!(
            serde_json::to_value(minimal.metadata()).unwrap(),
            json!({
                "resource": "https://mcp.example.com",
                "authorization_servers": ["https://acme.scalekit.com/resources/res_1"],
                "bearer_methods_supported": ["header"],
                "dpop_signing_alg_values_supported": ["ES256", "ES384", "EdDSA", "PS256", "RS256"],
            })
        );
        assert_eq!(
            minimal.audiences(),
            [
                "https://mcp.example.com".to_owned(),
                "https://mcp.example.com/".to_owned(),
                "res_1".to_owned()
            ]
        );
    }

    #[test]
    fn core_config_applies_but_never_overrides_the_authorization_server() {
        let mut core = mcp_auth_core::config::CoreConfig::default();
        core.resource_url = Some("https://other.example.com/mcp".into());
        core.scopes_supported = vec!["a".into(), "b".into()];
        core.initial_scopes = vec!["a".into()];
        core.authorization_servers = vec!["https://elsewhere.example.com".into()];
        let p = ScalekitProvider::builder(
            "https://acme.scalekit.com",
            "res_1",
            "https://x.example.com",
        )
        .apply_config(&core)
        .build()
        .unwrap();
        assert_eq!(p.metadata().resource, "https://other.example.com/mcp");
        assert_eq!(p.metadata().scopes_supported, ["a", "b"]);
        assert_eq!(p.protected_resource().challenge_scope(), "a");
        assert_eq!(
            p.metadata().authorization_servers,
            ["https://acme.scalekit.com/resources/res_1"]
        );
    }
}
