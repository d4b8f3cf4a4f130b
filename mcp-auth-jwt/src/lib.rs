//! # mcp-auth-jwt
//!
//! [`JwtVerifier`]: a [`TokenVerifier`] for JWT access tokens (RFC 9068, RFC 8725) that survives
//! key rotation, IdP outages and hostile tokens.
//!
//! ```no_run
//! use std::sync::Arc;
//! use mcp_auth_jwt::{Algorithm, JwtVerifier};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = JwtVerifier::builder()
//!     .issuer("https://idp.example.com")            // JWKS found through discovery
//!     .resource_url("https://api.example.com/mcp")  // the expected audience
//!     .algorithms([Algorithm::RS256, Algorithm::ES256])
//!     .build()?;
//! let provider = mcp_auth_core::RemoteAuthProvider::builder(Arc::new(verifier))
//!     .resource_url("https://api.example.com/mcp")
//!     .authorization_server("https://idp.example.com")
//!     .build()?;
//! # let _ = provider; Ok(()) }
//! ```
//!
//! ## What is checked
//!
//! * The `alg` is on the allowlist (default RS256; `none` never), the key's type and curve fit it,
//!   and a JWK's own `alg`, when present, equals it. HMAC needs an explicit secret; `oct` keys
//!   from a fetched JWKS are never used. `jku`, `x5u`, `jwk` headers are ignored.
//! * `exp` is required; `nbf` and `iat` must not be in the future; leeway 30 s by default.
//! * `iss` equals a configured issuer (an issuer is required to build;
//!   `dangerous_accept_any_issuer` opts out with a warning); with several issuers, a token is
//!   routed by its `iss` to that issuer's keys only, and an unknown `iss` is refused before any
//!   fetch. `aud` (string or array) names a configured audience: R from `resource_url` plus the
//!   aliases of `audience` (an audience is required to build; `dangerous_skip_audience` opts out
//!   with a warning).
//! * Claims are mapped by core's identity model ([`mcp_auth_core::claims`]), the same rules as
//!   introspection: `null` members are absent, one leeway for `exp`/`nbf`/`iat`, a user or
//!   machine principal or a refusal.
//! * `typ`: [`TypPolicy`]; unknown `crit` refused; a `cnf.jkt` key binding marks the token
//!   DPoP-bound (the bearer layer then demands a proof; [`DpopKeys`] checks proof signatures),
//!   any other `cnf` is refused; duplicate header or claim members refused; size bounded (16 KiB
//!   by default).
//! * Scopes from `scope` or `scp` (string or array; names configurable); client id from
//!   `client_id`, then `azp`.
//!
//! ## Keys
//!
//! The JWKS is prefetched by `build()` (failure logged, not fatal) and fetched once for any number
//! of concurrent cold requests. Its TTL comes from `Cache-Control: max-age`, clamped to 5 min..24 h
//! (1 h when absent). An unknown `kid`, or a known kid whose signature fails, triggers a refetch,
//! **at most one per cooldown** (5 s by default, counted from the last completed fetch): a key
//! the IdP has just published may be refused for up to that long. A successful fetch replaces the
//! set: removed keys stop working at once and cached tokens they signed are purged; a failed fetch
//! never evicts keys. Expired keys keep serving while the endpoint fails for at most 24 h, then
//! verification answers [`VerifyError::Unavailable`] (503). Unusable keys (unknown `kty`, `use:
//! enc`, short RSA moduli, `oct`) are skipped. A token without `kid` is accepted only when exactly
//! one key fits its `alg`.
//!
//! ## Verified-token cache
//!
//! On by default: a repeated token costs a keyed SipHash of its signature, a lookup and a
//! constant-time comparison of the full stored token. Entries never outlive `exp`, the cache is
//! bounded in bytes, and it belongs to one verifier instance.
//!
//! ## Why was my token rejected?
//!
//! Every rejection is logged (target `mcp_auth_jwt`, level debug; warn for the first
//! issuer/audience mismatch before any token was accepted) with its reason code and the
//! expected-versus-found values, never the token (only its [`mcp_auth_core::token::token_tag`]).
//! Metrics (JWKS fetches, token-cache lookups) go through the `metrics` facade, named as in
//! [`mcp_auth_core::telemetry`]; the bearer layer counts outcomes by reason.
//!
//! ## Provider crates for hosted IdPs
//!
//! [`hosted`] holds what every `mcp-auth-<idp>` crate (Scalekit, WorkOS AuthKit, ...) shares: a
//! crate derives a [`HostedIdp`] data sheet (JWKS, issuers, audience aliases, algorithms,
//! authorization servers, metadata to forward) from its users' dashboard values, and
//! [`HostedProviderBuilder`] builds the verifier, core's provider, the metadata forwarding and
//! the start-up log line from it.
//!
//! ## Features
//!
//! * `aws-lc-rs` (default) or `rust-crypto`: the crypto backend. Public keys (RSA, EC, Ed25519)
//!   are parsed by it once, when they are loaded, and kept for every verification; HMAC goes
//!   through jsonwebtoken's matching backend. At least one must be enabled; with both on (the
//!   features are additive, so `--all-features` or two dependents asking for different backends
//!   does this) aws-lc-rs is used. `build()` installs the matching jsonwebtoken crypto provider,
//!   so a dependency graph that turns on both jsonwebtoken backends does not panic.
//! * `dev`: `dev::DevIssuer`, development keys that mint tokens and serve their JWKS (the module
//!   exists only with the feature on).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

// Features are additive: with both backends on (e.g. `--all-features`, or two crates in one
// graph asking for different ones) aws-lc-rs is used and the RustCrypto code is not compiled.
#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!(
    "mcp-auth-jwt: enable one of the features `aws-lc-rs` (default) and `rust-crypto` \
     (use `default-features = false, features = [\"rust-crypto\"]` for RustCrypto)"
);

mod builder;
mod cache;
mod claims;
mod config;
mod crypto;
#[cfg(feature = "dev")]
pub mod dev;
mod doctor;
mod dpop;
pub mod hosted;
mod jwks;
mod keys;
pub mod presets;
mod verifier;

pub use builder::{
    DEFAULT_JWKS_COOLDOWN, DEFAULT_JWKS_MAX_STALE, DEFAULT_JWKS_MAX_TTL, DEFAULT_JWKS_MIN_TTL,
    DEFAULT_JWKS_TTL, DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_BYTES, JwtVerifierBuilder, TypPolicy,
};
pub use cache::{CacheUsage, DEFAULT_TOKEN_CACHE_BYTES, MAX_TOKEN_CACHE_TTL};
pub use config::ENV;
pub use dpop::DpopKeys;
pub use hosted::{DataSheet, HostedIdp, HostedProvider, HostedProviderBuilder};
pub use jsonwebtoken::Algorithm;
pub use mcp_auth_core::{AccessToken, InvalidToken, TokenVerifier, VerifyError};
pub use verifier::JwtVerifier;

/// What [`hosted_provider!`] expands to needs, so the invoking crate need not name it.
#[doc(hidden)]
pub mod __private {
    pub use axum;
    pub use figment;
    pub use mcp_auth_core;
}

/// Installs jsonwebtoken's process-wide crypto provider for the selected backend; a provider
/// installed earlier (by us or anyone) is kept. Called by `build()`.
pub(crate) fn install_crypto_provider() {
    #[cfg(feature = "aws-lc-rs")]
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
}
