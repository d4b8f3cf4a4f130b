//! `IntrospectionVerifier` with an arbitrary introspection-endpoint answer (RFC 7662 response
//! mapping: `active`, `token_type`, the claims, duplicate members, size): never panics, and
//! accepts a token only when the answer is a JSON object whose `active` is the literal `true`.
#![no_main]

#[path = "common/upstream.rs"]
mod upstream;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mcp_auth_core::TokenVerifier;
use mcp_auth_introspect::IntrospectionVerifier;
use serde_json::Value;

const RESOURCE: &str = "https://api.example/mcp";

fn verifier() -> &'static IntrospectionVerifier {
    static V: OnceLock<IntrospectionVerifier> = OnceLock::new();
    V.get_or_init(|| {
        let issuer = upstream::url("");
        IntrospectionVerifier::builder()
            .endpoint(upstream::url("/introspect"))
            .issuer(issuer)
            .client_secret_basic("fuzz-client", "fuzz-secret")
            .resource_url(RESOURCE)
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    upstream::answer_with(data);
    // A token never seen before, so that the verifier's caches cannot answer for the endpoint.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let token = format!("opaque-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let result = upstream::runtime().block_on(verifier().verify(&token));
    if result.is_ok() {
        let active = serde_json::from_slice::<Value>(data)
            .ok()
            .and_then(|v| v.get("active").cloned());
        assert_eq!(
            active,
            Some(Value::Bool(true)),
            "accepted a token without `active: true`"
        );
    }
});
