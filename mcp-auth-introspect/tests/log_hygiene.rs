//! The refused-credentials error log names the variable to fix and holds no secret. In its own
//! test binary: tracing caches callsite interest per process, and this error log is rate-limited,
//! so a sibling test running concurrently could hide the event from this test's subscriber.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{AUD, Stub, bounded};
use mcp_auth_core::TokenVerifier;
use mcp_auth_idp_harness::logs::LogBuffer;
use mcp_auth_introspect::IntrospectionVerifier;

#[tokio::test]
async fn refused_credentials_log_names_the_variable_never_secrets() {
    let logs = LogBuffer::new();
    let _guard = tracing::subscriber::set_default(logs.subscriber());

    let stub = Stub::start(Duration::ZERO, |_, _, _| -> common::Reply {
        (
            StatusCode::UNAUTHORIZED,
            vec![],
            r#"{"error":"invalid_client"}"#.to_owned(),
        )
    })
    .await;
    let v = IntrospectionVerifier::builder()
        .endpoint(stub.url())
        .issuer("https://issuer.test")
        .audience(AUD)
        .timeout(Duration::from_secs(2))
        .client_secret_basic("rs-client", "very-secret-value")
        .build()
        .unwrap();
    let err = bounded(v.verify("bearer-token-value-123"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 500);
    assert!(format!("{v:?}").contains("client_secret_basic"));

    let text = logs.contents();
    assert!(text.contains("ERROR"), "{text}");
    assert!(text.contains("MCP_AUTH_INTROSPECT_CLIENT_ID"), "{text}");
    for secret in ["very-secret-value", "bearer-token-value-123"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(!format!("{v:?}").contains("very-secret-value"));
}
