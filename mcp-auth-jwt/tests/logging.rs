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
        out.contains(&mcp_auth_core::token::token_tag(&token)),
        "token tag missing: {out}"
    );
    for part in token.split('.') {
        assert!(!out.contains(part), "a token segment was logged: {out}");
    }
}

#[test]
fn entra_warns_at_start_up_when_the_app_id_uri_is_not_r() {
    use mcp_auth_jwt::presets::{Preset, entra::Entra};
    let build = |app_id_uri: Option<&str>| {
        let logs = LogBuffer::new();
        tracing::subscriber::with_default(logs.subscriber(), || {
            let mut e = Entra::new("9188040d-6c67-4c5b-b112-36a304b66dad", "client-1");
            if let Some(uri) = app_id_uri {
                e = e.app_id_uri(uri);
            }
            e.builder()
                .resource_url("https://mcp.example.com/mcp")
                .build()
                .unwrap();
        });
        logs.contents()
    };
    let differs = build(Some("api://todo"));
    assert!(
        differs.contains("App ID URI differs from R") && differs.contains("AADSTS9010010"),
        "{differs}"
    );
    assert!(!build(None).contains("App ID URI differs"));
    assert!(!build(Some("https://mcp.example.com/mcp")).contains("App ID URI differs"));
}
