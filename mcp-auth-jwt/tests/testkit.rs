//! Core's provider test kit against a `RemoteAuthProvider` built on `JwtVerifier`, minting with
//! the development issuer: the whole wire contract holds with real signed JWTs.

use std::sync::Arc;
use std::time::Duration;

use mcp_auth_core::RemoteAuthProvider;
use mcp_auth_core::testkit::check_provider;
use mcp_auth_jwt::dev::{DevAlg, DevIssuer, TokenSpec};

const R: &str = "http://127.0.0.1:8000/mcp";
const ISS: &str = "https://dev-issuer.test";

#[tokio::test]
async fn wire_contract_holds_with_dev_issuer_tokens() {
    let dev = DevIssuer::generate(ISS);
    let verifier = dev.verifier_builder().resource_url(R).build().unwrap();
    let provider = RemoteAuthProvider::builder(Arc::new(verifier))
        .resource_url(R)
        .authorization_server(ISS)
        .scopes_supported(["todo:read", "todo:write"])
        .initial_scopes(["todo:read"])
        .required_scopes(["todo:read"])
        .build()
        .unwrap();
    let mint = |scopes: &[&str], audience: &str| {
        dev.mint(
            TokenSpec::new("testkit-user")
                .scopes(scopes.iter().copied())
                .audience(audience)
                .alg(DevAlg::ES256),
        )
    };
    let report = tokio::time::timeout(Duration::from_secs(60), check_provider(&provider, mint))
        .await
        .expect("testkit finished in time");
    report.assert_ok();
    assert!(!report.passed.is_empty());
}
