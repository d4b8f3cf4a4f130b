//! Rejections are explainable from one log line (reason, expected vs found) and never log the
//! token itself.

use mcp_auth_idp_harness::logs::LogBuffer;
use mcp_auth_jwt::TokenVerifier;
use mcp_auth_jwt::dev::{DevIssuer, TokenSpec};

#[test]
fn rejection_log_names_reason_and_values_but_not_the_token() {
    let logs = LogBuffer::new();
    let subscriber = logs.subscriber();
    let dev = DevIssuer::generate("https://issuer.test");
    let token = dev.mint(TokenSpec::new("alice").audience("https://elsewhere.example/api"));
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let v = dev
                .verifier_builder()
                .audience("https://api.example.com/mcp")
                .build()
                .unwrap();
            assert!(v.verify(&token).await.is_err());
        });
    });
    let out = logs.contents();
    assert!(
        out.contains("reason=\"audience\"") || out.contains("reason=audience"),
        "{out}"
    );
    assert!(
        out.contains("https://api.example.com/mcp"),
        "expected value missing: {out}"
    );
    assert!(
        out.contains("https://elsewhere.example/api"),
        "found value missing: {out}"
    );
    assert!(
        out.contains(&mcp_auth_core::token_tag(&token)),
        "token tag missing: {out}"
    );
    for part in token.split('.') {
        assert!(!out.contains(part), "a token segment was logged: {out}");
    }
}
