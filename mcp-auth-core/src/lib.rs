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
//! * `serve` (feature `rmcp`): the serving helper (a listener with `TCP_NODELAY`, rmcp's service
//!   shared, the hosts rmcp accepts for R, graceful shutdown).
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
//! let app: Router = Router::new()
//!     .route("/mcp", post(|token: AccessToken| async move {
//!         format!("hello {}", token.subject().unwrap_or("?"))
//!     }))
//!     .layer(provider.layer())      // protected
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
pub mod client_auth;
pub mod config;
pub mod diagnose;
pub mod dpop;
mod error;
#[cfg(feature = "exchange")]
pub mod exchange;
pub mod extract;
pub mod forward;
pub mod http;
mod layer;
pub mod metadata;
mod multi;
pub mod policy;
mod provider;
pub mod readiness;
mod resource;
#[cfg(feature = "rmcp")]
pub mod rmcp_ext;
mod scope;
#[cfg(feature = "rmcp")]
pub mod serve;
pub mod store;
pub mod telemetry;
mod token;
mod verifier;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use error::{BuildError, InvalidToken, Setting, VerifyError};
pub use layer::{BearerAuth, BearerAuthLayer, is_b64token, token_tag};
pub use metadata::{ProtectedResourceMetadata, metadata_router};
pub use multi::{MultiIssuerVerifier, MultiIssuerVerifierBuilder};
pub use provider::{
    AuthProvider, DEFAULT_MAX_TOKEN_BYTES, ProtectedResource, RemoteAuthProvider,
    RemoteAuthProviderBuilder,
};
pub use resource::{PRM_WELL_KNOWN, ResourceUrl, is_loopback_url};
pub use scope::{ScopeHierarchy, ScopeSet, is_scope_char, split_list, validate_scope};
pub use token::{AccessToken, AccessTokenBuilder, Owner, Principal};
pub use verifier::{TokenVerifier, constant_time_eq};

/// Re-exported so verifier implementations need not depend on it directly.
pub use async_trait::async_trait;
