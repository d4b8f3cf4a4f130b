//! Stub JWKS / discovery server on 127.0.0.1 for fault drills, and helpers.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mcp_auth_core::fetch::{HttpClient, HttpClientConfig};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

pub const AUD: &str = "http://127.0.0.1:9/mcp";

#[derive(Clone, Debug)]
pub enum Mode {
    /// Serve the configured body with 200.
    Ok,
    /// Answer 500.
    Down,
    /// Never answer.
    Hang,
    /// Serve this text with 200.
    Garbage(&'static str),
    /// Serve the body after a delay.
    Slow(Duration),
}

pub struct StubState {
    pub mode: Mutex<Mode>,
    pub jwks: Mutex<Value>,
    pub cache_control: Mutex<Option<String>>,
    pub discovery_issuer: Mutex<Option<String>>,
    pub fetches: AtomicU64,
    pub base: Mutex<String>,
}

/// A stub IdP: `/jwks` and `/.well-known/openid-configuration`. Aborted on drop.
pub struct Stub {
    pub base: String,
    pub state: Arc<StubState>,
    handle: JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

async fn jwks(State(s): State<Arc<StubState>>) -> Response {
    s.fetches.fetch_add(1, Ordering::SeqCst);
    let mode = s.mode.lock().unwrap().clone();
    let body = s.jwks.lock().unwrap().to_string();
    let cc = s.cache_control.lock().unwrap().clone();
    match mode {
        Mode::Ok => {}
        Mode::Down => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Mode::Garbage(text) => return text.into_response(),
        Mode::Slow(d) => tokio::time::sleep(d).await,
    }
    let mut resp = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(cc) = cc {
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, cc.parse().unwrap());
    }
    resp
}

async fn discovery(State(s): State<Arc<StubState>>) -> Response {
    let issuer = s.discovery_issuer.lock().unwrap().clone();
    match issuer {
        Some(iss) => axum::Json(json!({
            "issuer": iss,
            "jwks_uri": format!("{}/jwks", s.base.lock().unwrap()),
        }))
        .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

impl Stub {
    pub async fn start(jwks_doc: Value) -> Stub {
        let state = Arc::new(StubState {
            mode: Mutex::new(Mode::Ok),
            jwks: Mutex::new(jwks_doc),
            cache_control: Mutex::new(None),
            discovery_issuer: Mutex::new(None),
            fetches: AtomicU64::new(0),
            base: Mutex::new(String::new()),
        });
        let app = Router::new()
            .route("/jwks", get(jwks))
            .route("/.well-known/openid-configuration", get(discovery))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        *state.base.lock().unwrap() = base.clone();
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Stub {
            base,
            state,
            handle,
        }
    }

    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.base)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    pub fn set_jwks(&self, doc: Value) {
        *self.state.jwks.lock().unwrap() = doc;
    }

    pub fn fetches(&self) -> u64 {
        self.state.fetches.load(Ordering::SeqCst)
    }
}

/// An HTTP client with sub-second timeouts for fault drills.
pub fn fast_client() -> HttpClient {
    HttpClient::new(HttpClientConfig {
        timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
        ..HttpClientConfig::default()
    })
    .unwrap()
}

/// Bounds every test.
pub async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test timed out")
}
