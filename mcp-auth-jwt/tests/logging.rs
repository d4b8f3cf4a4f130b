//! Rejections are explainable from one log line (reason, expected vs found) and never log the
//! token itself.

use std::io::Write;
use std::sync::{Arc, Mutex};

use mcp_auth_jwt::TokenVerifier;
use mcp_auth_jwt::dev::{DevIssuer, TokenSpec};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn rejection_log_names_reason_and_values_but_not_the_token() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
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
    let out = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
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
