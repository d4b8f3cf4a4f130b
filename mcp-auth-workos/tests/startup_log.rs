//! The start-up log names the exact audience AuthKit must put in `aud`. In its own test binary:
//! tracing caches callsite interest per process, so a concurrent test without a subscriber could
//! hide the event from this one's scoped subscriber.

use mcp_auth_idp_harness::logs::LogBuffer;
use mcp_auth_workos::AuthKitProvider;

#[test]
fn start_up_logs_the_exact_expected_audience() {
    let logs = LogBuffer::new();
    tracing::subscriber::with_default(logs.subscriber(), || {
        AuthKitProvider::builder("acme.authkit.app", "https://mcp.example.com/mcp/")
            .build()
            .unwrap();
    });
    let text = logs.contents();
    assert!(text.contains(" INFO "), "{text}");
    assert!(
        text.contains("expected_audience=https://mcp.example.com/mcp ")
            && text.contains("resource indicator"),
        "{text}"
    );
}
