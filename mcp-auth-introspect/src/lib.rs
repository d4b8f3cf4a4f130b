//! # mcp-auth-introspect
//!
//! RFC 7662 token introspection for MCP resource servers: the IdP says whether an (opaque) access
//! token is active, and [`IntrospectionVerifier`] turns its answer into an
//! [`mcp_auth_core::AccessToken`] after checking expiry, audience and issuer itself.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use mcp_auth_core::RemoteAuthProvider;
//! use mcp_auth_introspect::IntrospectionVerifier;
//!
//! // MCP_AUTH_INTROSPECT_URL, _CLIENT_ID, _CLIENT_SECRET, MCP_AUTH_RESOURCE_URL, ...
//! let verifier = IntrospectionVerifier::from_env()?;
//! let provider = RemoteAuthProvider::builder(Arc::new(verifier))
//!     .resource_url("https://api.example.com/mcp")
//!     .authorization_server("https://idp.example.com")
//!     .build()?;
//! # let _ = provider; Ok(()) }
//! ```
//!
//! ## Configuration
//!
//! | variable | meaning |
//! |---|---|
//! | `MCP_AUTH_INTROSPECT_URL` | the introspection endpoint (else discovered from the issuer) |
//! | `MCP_AUTH_INTROSPECT_CLIENT_ID` | our client id at the IdP (read as a raw string) |
//! | `MCP_AUTH_INTROSPECT_CLIENT_SECRET` | its secret, or the bearer credential (raw string) |
//! | `MCP_AUTH_INTROSPECT_AUTH_METHOD` | `client_secret_basic` (default), `client_secret_post`, `bearer` |
//! | `MCP_AUTH_INTROSPECT_AUDIENCE` | audience aliases accepted next to `MCP_AUTH_RESOURCE_URL` |
//! | `MCP_AUTH_INTROSPECT_ISSUER` | the issuer (required, else `MCP_AUTH_AUTHORIZATION_SERVERS`): a response's `iss`, when present, must be a configured issuer; a response without `iss` is vouched for by the endpoint; also the discovery base |
//! | `MCP_AUTH_INTROSPECT_CACHE_TTL_SECS` | cache lifetime of an active result, default 60 (0 = off) |
//!
//! ## Claims
//!
//! An active response is mapped by core's identity model ([`mcp_auth_core::claims`]), the same
//! rules as for JWTs: one leeway for `exp`, `nbf` and `iat`; `aud` a string or an array of
//! strings; scopes from `scope` (string or array); `client_id`, else `azp`; a user principal when
//! `sub` is present, a machine principal (client credentials: RFC 7662 makes `sub` optional)
//! otherwise, and a refusal when the response names neither; duplicate members refused.
//!
//! ## Revocation lag
//!
//! An active result is cached for at most `MCP_AUTH_INTROSPECT_CACHE_TTL_SECS` (and never past
//! the token's `exp`): a token revoked at the IdP keeps working here for up to that long. Lower it
//! (or set 0) if revocation must bite sooner, at the price of more introspection calls.
//!
//! ## Not yet implemented
//!
//! RFC 9701 signed (JWT) introspection responses: planned as feature `jwt-response` on top of
//! `mcp-auth-jwt`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod config;
mod response;
mod shared;
mod verifier;

pub use config::IntrospectConfig;
/// Client authentication lives in core, shared with the token-exchange client; re-exported here
/// under the names this crate always had.
pub use mcp_auth_core::client_auth::{AuthMethod, ClientAuth, ClientSecret};
pub use verifier::{
    DEFAULT_CACHE_MAX_BYTES, DEFAULT_CACHE_TTL, DEFAULT_LEEWAY, DEFAULT_MAX_CONCURRENT,
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_RESERVED_FOR_KNOWN, IntrospectionVerifier,
    IntrospectionVerifierBuilder, MAX_RETRY_AFTER, SATURATED_RETRY_AFTER,
};
