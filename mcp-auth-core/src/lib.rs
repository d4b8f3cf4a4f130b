//! # mcp-auth-core
//!
//! OAuth 2.1 resource-server building blocks for MCP servers: the MCP server validates bearer
//! tokens issued by an external identity provider, enforces scopes, and publishes the discovery
//! metadata (RFC 9728) that MCP clients need to find that IdP. It never mints tokens.
//!
//! * [`TokenVerifier`]: bearer string in, [`AccessToken`] or a typed [`VerifyError`] out.
//! * [`AuthProvider`] / [`RemoteAuthProvider`]: a verifier plus the [`ProtectedResource`] it
//!   guards, and the public routes (metadata) it serves.
//! * [`BearerAuthLayer`]: the tower layer answering 401 / 403 / 400 / 503 with the exact
//!   `WWW-Authenticate` challenges of RFC 6750 and RFC 9728.
//! * [`forward::MetadataForwarder`]: serves an IdP's authorization-server metadata on our origin.
//! * [`config`]: figment-based configuration whose errors name the variable to fix.
//! * [`fetch`]: the outbound HTTP client every verifier shares (timeouts, body caps, `https`
//!   outside loopback, no redirects).
//! * [`token`], [`scope`], [`resource`]: the access token and raw-token helpers, scope syntax
//!   and sets, the canonical resource URL.
//! * `serve` (feature `rmcp`): the serving helper (a listener with `TCP_NODELAY`, rmcp's service
//!   shared, the hosts rmcp accepts for R, graceful shutdown).
//!
//! ## Features
//!
//! `http-client` (reqwest: [`fetch`], `client_auth`, `forward`), `config` (figment: [`config`],
//! every `from_env`) and `cache` (moka: the policy's session binding, `store::MemoryStore`, the
//! metadata forwarder's cache) are on by default; a crate that only implements its own
//! [`TokenVerifier`] can turn them off with `default-features = false` and keep the traits, the
//! bearer layer, the policy and the metadata routes. `rmcp` (the extractor and `serve`),
//! `exchange` (RFC 8693 token exchange), `redis` (`store::RedisStore`) and `testkit` are opt-in.
//!
//! ## Quick start
//!
//! ```
//! use std::sync::Arc;
//! # use async_trait::async_trait;
//! # use mcp_auth_core::{InvalidToken, VerifyError};
//! # struct JwtVerifier;
//! # #[async_trait]
//! # impl mcp_auth_core::TokenVerifier for JwtVerifier {
//! #     async fn verify(&self, _: &str) -> Result<AccessToken, VerifyError> {
//! #         Err(InvalidToken::Malformed.into())
//! #     }
//! # }
//! use axum::{routing::post, Router};
//! use mcp_auth_core::{AccessToken, AuthProvider, RemoteAuthProvider};
//!
//! // Any verifier: mcp_auth_jwt::JwtVerifier in real servers.
//! let provider = RemoteAuthProvider::builder(Arc::new(JwtVerifier))
//!     .resource_url("https://api.example.com/mcp")
//!     .authorization_server("https://idp.example.com")
//!     .scopes_supported(["todo:read", "todo:write"])
//!     .initial_scopes(["todo:read"])
//!     .build()?;
//!
//! // The layer goes on the MCP service with `ServiceBuilder`, not with `Router::layer` (which
//! // boxes it into every route and clones what is below it per request).
//! let mcp = tower::ServiceBuilder::new()
//!     .layer(provider.layer())      // protected
//!     .service(post(|token: AccessToken| async move {
//!         format!("hello {}", token.subject().unwrap_or("?"))
//!     }));
//! let app: Router = Router::new()
//!     .route_service("/mcp", mcp)
//!     .merge(provider.routes());    // public: /.well-known/oauth-protected-resource/mcp
//! # Ok::<(), mcp_auth_core::BuildError>(())
//! ```
//!
//! ## Extending a provider
//!
//! Where FastMCP subclasses `RemoteAuthProvider` and overrides `get_routes()`, here a provider
//! wraps another and delegates: see the example on [`AuthProvider`]. Swapping the verifier is
//! [`RemoteAuthProvider::with_verifier`].
//!
//! ## Wire contract
//!
//! | request | answer |
//! |---|---|
//! | no `Authorization`, another scheme, or a token only in the query | 401, `Bearer scope="…", resource_metadata="…"` (no `error`), empty body |
//! | bad token | 401, `Bearer error="invalid_token", error_description="…", scope="…", resource_metadata="…"`, JSON body |
//! | missing required scope | 403, `Bearer error="insufficient_scope", error_description="…", scope="<needed>", resource_metadata="…"` |
//! | two `Authorization` headers, or header and query | 400 `invalid_request` |
//! | IdP unavailable | 503, `Retry-After`, `{"error":"temporarily_unavailable"}` |
//! | DPoP-bound token as Bearer | 401, `Bearer error="invalid_token"` (bound to a key, needs the DPoP scheme) |
//! | `DPoP` scheme, bad proof | 401, `DPoP error="invalid_dpop_proof", …, algs="…"` (see [`dpop`]) |
//!
//! Parameter order is always `error, error_description, scope, resource_metadata` (then `algs` on
//! the DPoP scheme); descriptions are fixed server texts.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod challenge;
pub mod claims;
#[cfg(feature = "http-client")]
pub mod client_auth;
#[cfg(feature = "config")]
pub mod config;
pub mod diagnose;
pub mod dpop;
mod error;
#[cfg(feature = "exchange")]
pub mod exchange;
pub mod extract;
#[cfg(feature = "http-client")]
pub mod fetch;
#[cfg(all(feature = "http-client", feature = "cache"))]
pub mod forward;
mod layer;
pub mod metadata;
mod multi;
pub mod policy;
mod provider;
pub mod readiness;
pub mod resource;
#[cfg(feature = "rmcp")]
pub mod rmcp_ext;
pub mod scope;
#[cfg(feature = "rmcp")]
pub mod serve;
pub mod store;
pub mod telemetry;
pub mod token;
mod verifier;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use error::{BuildError, InvalidToken, Setting, VerifyError};
pub use layer::{BearerAuth, BearerAuthLayer};
pub use metadata::ProtectedResourceMetadata;
pub use multi::{MultiIssuerVerifier, MultiIssuerVerifierBuilder};
pub use provider::{
    AuthProvider, ProtectedResource, RemoteAuthProvider, RemoteAuthProviderBuilder,
};
pub use resource::ResourceUrl;
pub use scope::{ScopeHierarchy, ScopeSet};
pub use token::{AccessToken, AccessTokenBuilder, Owner, Principal};
pub use verifier::TokenVerifier;

/// Re-exported so verifier implementations need not depend on it directly.
pub use async_trait::async_trait;
