//! A configurable introspection stub on 127.0.0.1:0, stopped on drop.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const AUD: &str = "http://127.0.0.1:8000/mcp";

/// What the stub answers: status, extra headers, body.
pub type Reply = (StatusCode, Vec<(&'static str, String)>, String);

type Behavior = Arc<dyn Fn(usize, &HeaderMap, &str) -> Reply + Send + Sync>;

/// One recorded introspection request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub headers: HeaderMap,
    pub body: String,
}

#[derive(Clone)]
struct Shared {
    behavior: Behavior,
    delay: Duration,
    calls: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
    metadata: Arc<Mutex<Option<Value>>>,
}

pub struct Stub {
    pub addr: SocketAddr,
    shared: Shared,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

async fn introspect(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let n = s.calls.fetch_add(1, Ordering::SeqCst) + 1;
    let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    s.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let body = String::from_utf8_lossy(&body).into_owned();
    s.seen.lock().unwrap().push(Seen {
        headers: headers.clone(),
        body: body.clone(),
    });
    if !s.delay.is_zero() {
        tokio::time::sleep(s.delay).await;
    }
    let (status, extra, text) = (s.behavior)(n, &headers, &body);
    s.in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut resp = (status, text).into_response();
    for (k, v) in extra {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

async fn metadata(State(s): State<Shared>) -> Response {
    match s.metadata.lock().unwrap().clone() {
        Some(v) => axum::Json(v).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

impl Stub {
    /// A stub answering with `behavior(call_number, headers, form_body)` after `delay`.
    pub async fn start(
        delay: Duration,
        behavior: impl Fn(usize, &HeaderMap, &str) -> Reply + Send + Sync + 'static,
    ) -> Stub {
        let shared = Shared {
            behavior: Arc::new(behavior),
            delay,
            calls: Arc::default(),
            in_flight: Arc::default(),
            max_in_flight: Arc::default(),
            seen: Arc::default(),
            metadata: Arc::default(),
        };
        let app = Router::new()
            .route("/introspect", post(introspect))
            .route("/.well-known/oauth-authorization-server", get(metadata))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Stub {
            addr,
            shared,
            stop: Some(stop),
            task,
        }
    }

    /// A stub that always answers 200 with `json`.
    pub async fn json(json: Value) -> Stub {
        let text = json.to_string();
        Stub::start(Duration::ZERO, move |_, _, _| {
            (
                StatusCode::OK,
                vec![("content-type", "application/json".into())],
                text.clone(),
            )
        })
        .await
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self) -> String {
        format!("http://{}/introspect", self.addr)
    }

    pub fn set_metadata(&self, doc: Value) {
        *self.shared.metadata.lock().unwrap() = Some(doc);
    }

    pub fn calls(&self) -> usize {
        self.shared.calls.load(Ordering::SeqCst)
    }

    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An active response for `AUD`.
pub fn active() -> Value {
    serde_json::json!({
        "active": true, "sub": "alice", "client_id": "app", "scope": "todo:read todo:write",
        "aud": AUD, "exp": now() + 600, "iss": "https://issuer.test", "token_type": "Bearer"
    })
}

/// Runs `f` with a 30 s bound.
pub async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("test step timed out")
}
