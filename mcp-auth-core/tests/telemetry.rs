//! The bearer layer's metrics (one naming scheme, through the `metrics` facade) and its request
//! spans (outcome and client id; identity only when switched on; never the token).

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use common::{fake, mint};
use http::Request;
use mcp_auth_core::{AuthProvider, RemoteAuthProvider, telemetry};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower::ServiceExt;

const R: &str = "http://127.0.0.1:8000/mcp";

fn provider() -> RemoteAuthProvider {
    RemoteAuthProvider::builder(fake())
        .resource_url(R)
        .authorization_server("https://idp.example.com")
        .scopes_supported(["todo:read", "todo:write"])
        .build()
        .unwrap()
}

async fn send(app: &Router, token: Option<&str>) -> u16 {
    let mut req = Request::post("/mcp");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    app.clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The tests of this file run one at a time: tracing caches each callsite's interest for the
/// whole process, so a request traced on one test thread with no subscriber can hide the
/// layer's span from the subscriber another test thread installed.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn requests_are_counted_by_outcome_and_reason_with_verify_latency() {
    let _serial = serial();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let p = provider();
    let app = Router::new()
        .route("/mcp", post(|| async { "ok" }))
        .layer(p.layer());
    let token = mint(&[], R);
    metrics::with_local_recorder(&recorder, || {
        rt().block_on(async {
            assert_eq!(send(&app, None).await, 401);
            assert_eq!(send(&app, Some("garbage")).await, 401);
            assert_eq!(send(&app, Some(&token)).await, 200);
            assert_eq!(send(&app, Some(&token)).await, 200);
            assert_eq!(send(&app, Some("idp-down")).await, 503);
        })
    });
    let mut requests = Vec::new();
    let mut latencies = 0;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let k = key.key();
        let labels: Vec<(String, String)> = k
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        match (k.name(), value) {
            (telemetry::REQUESTS, DebugValue::Counter(n)) => requests.push((labels, n)),
            (telemetry::VERIFY_DURATION, DebugValue::Histogram(v)) => latencies += v.len(),
            _ => {}
        }
    }
    let count = |outcome: &str, reason: &str| {
        requests
            .iter()
            .find(|(l, _)| {
                l.contains(&("outcome".into(), outcome.into()))
                    && l.contains(&("reason".into(), reason.into()))
            })
            .map_or(0, |(_, n)| *n)
    };
    assert_eq!(count("accepted", "none"), 2, "{requests:?}");
    assert_eq!(count("no_credentials", "none"), 1);
    assert_eq!(count("invalid_token", "malformed"), 1);
    assert_eq!(count("unavailable", "none"), 1);
    // Every request that reached the verifier was timed.
    assert_eq!(latencies, 4);
}

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn spans(identity: bool, token: &str) -> String {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .finish();
    let p = provider();
    let app = Router::new()
        .route("/mcp", post(|| async { "ok" }))
        .layer(p.layer().identity_in_spans(identity));
    tracing::subscriber::with_default(subscriber, || {
        rt().block_on(async {
            assert_eq!(send(&app, Some(token)).await, 200);
            assert_eq!(send(&app, Some("garbage")).await, 401);
        })
    });
    String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn request_spans_carry_outcome_and_client_and_identity_only_when_on() {
    let _serial = serial();
    let token = mint(&["todo:read"], R);
    let off = spans(false, &token);
    assert!(off.contains("mcp_auth.request"), "{off}");
    assert!(off.contains("outcome=\"accepted\""), "{off}");
    assert!(off.contains("client_id=\"client-1\""), "{off}");
    assert!(off.contains("outcome=\"invalid_token\"") && off.contains("reason=\"malformed\""));
    assert!(
        !off.contains("user-1"),
        "subject only when switched on: {off}"
    );
    assert!(!off.contains(&token));
    let on = spans(true, &token);
    assert!(on.contains("enduser.id=\"user-1\""), "{on}");
    assert!(on.contains("enduser.scope=\"todo:read\""), "{on}");
    assert!(!on.contains(&token));
}
