//! `JwtVerifier::verify` on arbitrary strings (header and claims decoding, base64, JSON): never
//! panics and never accepts anything (no token signed by its keys can come out of the fuzzer).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mcp_auth_jwt::dev::DevIssuer;
use mcp_auth_jwt::{JwtVerifier, TokenVerifier};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().unwrap())
}

fn verifier() -> &'static JwtVerifier {
    static V: OnceLock<JwtVerifier> = OnceLock::new();
    V.get_or_init(|| {
        DevIssuer::generate_fresh("https://idp.example")
            .verifier_builder()
            .audience("https://api.example/mcp")
            .build()
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let result = runtime().block_on(verifier().verify(text));
    assert!(result.is_err(), "the fuzzer forged a token");
});
