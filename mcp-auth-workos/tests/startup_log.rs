//! The start-up log names the exact audience AuthKit must put in `aud`. In its own test binary:
//! tracing caches callsite interest per process, so a concurrent test without a subscriber could
//! hide the event from this one's scoped subscriber.

use std::io::Write;
use std::sync::{Arc, Mutex};

use mcp_auth_workos::AuthKitProvider;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn start_up_logs_the_exact_expected_audience() {
    let buf = Buffer::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        AuthKitProvider::builder("acme.authkit.app", "https://mcp.example.com/mcp/")
            .build()
            .unwrap();
    });
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains(" INFO "), "{text}");
    assert!(
        text.contains("expected_audience=https://mcp.example.com/mcp ")
            && text.contains("resource indicator"),
        "{text}"
    );
}
