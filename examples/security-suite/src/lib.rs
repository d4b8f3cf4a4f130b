//! Reliability and security suite of mcp-auth: helpers shared by the hostile-input suite, the IdP
//! fault drills, the secrets-hygiene test and the load client (`load` binary, driven by
//! `scripts/soak.sh`).
//!
//! * [`raw`]: a byte-exact HTTP/1.1 client over TCP (two `Authorization` headers, non-UTF-8
//!   bytes, oversized headers: what `reqwest` refuses to send).
//! * [`server`]: serves the todo app (`mcp_auth_examples::app::todo_app`) on 127.0.0.1:0 in
//!   process, with a JWT (development issuer) or introspection provider, and counts panics.
//! * [`stub`]: JWKS and introspection stubs on 127.0.0.1 that misbehave on command.
//! * [`mcp`]: the few MCP messages the suite sends.
#![forbid(unsafe_code)]

pub mod mcp;
pub mod raw;
pub mod server;
pub mod stub;

/// The todo server's read scope.
pub const READ: &str = mcp_auth_examples::todo::READ;
/// The todo server's write scope.
pub const WRITE: &str = mcp_auth_examples::todo::WRITE;

/// Bounds a future with a timeout, panicking with `what` when it expires.
pub async fn bounded<F: std::future::Future>(what: &str, secs: u64, f: F) -> F::Output {
    match tokio::time::timeout(std::time::Duration::from_secs(secs), f).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within {secs} s"),
    }
}
