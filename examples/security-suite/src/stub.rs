//! A stub IdP on 127.0.0.1 that misbehaves on command: `/jwks` (a JWKS document) and
//! `/introspect` (RFC 7662: canned answers per token, optionally proxying every other token to a
//! real introspection endpoint). Counts calls and the peak of concurrent introspections.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How the stub answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Normal answers.
    Ok,
    /// This status with an empty body (`Retry-After: 1` on 429 and 503).
    Status(u16),
    /// Never answers.
    Hang,
    /// 200 with this content type and body.
    Garbage {
        /// `Content-Type`.
        content_type: &'static str,
        /// Body.
        body: &'static str,
    },
    /// Normal answers after a delay.
    Slow(Duration),
}

/// Shared state of a [`Stub`].
pub struct StubState {
    mode: Mutex<Mode>,
    jwks: Mutex<Value>,
    cache_control: Mutex<Option<String>>,
    canned: Mutex<HashMap<String, Value>>,
    upstream: Mutex<Option<String>>,
    http: reqwest::Client,
    jwks_fetches: AtomicU64,
    introspections: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running stub; aborted on drop.
pub struct Stub {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its state.
    pub state: Arc<StubState>,
    handle: JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

struct InFlight<'a>(&'a StubState);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn misbehave(mode: &Mode) -> Option<Response> {
    match mode {
        Mode::Ok => None,
        Mode::Status(code) => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut resp = status.into_response();
            if *code == 429 || *code == 503 {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            }
            Some(resp)
        }
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Some(StatusCode::GATEWAY_TIMEOUT.into_response())
        }
        Mode::Garbage { content_type, body } => {
            Some(([(header::CONTENT_TYPE, *content_type)], *body).into_response())
        }
        Mode::Slow(d) => {
            tokio::time::sleep(*d).await;
            None
        }
    }
}

async fn serve_jwks(State(s): State<Arc<StubState>>) -> Response {
    s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let mode = lock(&s.mode).clone();
    if let Some(resp) = misbehave(&mode).await {
        return resp;
    }
    let body = lock(&s.jwks).to_string();
    let mut resp = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(cc) = lock(&s.cache_control).clone()
        && let Ok(v) = header::HeaderValue::from_str(&cc)
    {
        resp.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    resp
}

fn form_token(body: &[u8]) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

async fn serve_introspect(
    State(s): State<Arc<StubState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.introspections.fetch_add(1, Ordering::SeqCst);
    let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    s.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let _guard = InFlight(&s);
    let mode = lock(&s.mode).clone();
    if let Some(resp) = misbehave(&mode).await {
        return resp;
    }
    let token = form_token(&body).unwrap_or_default();
    if let Some(answer) = lock(&s.canned).get(&token).cloned() {
        return axum::Json(answer).into_response();
    }
    let upstream = lock(&s.upstream).clone();
    let Some(upstream) = upstream else {
        return axum::Json(json!({"active": false})).into_response();
    };
    let mut req = s
        .http
        .post(upstream)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body);
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        req = req.header(header::AUTHORIZATION, auth.clone());
    }
    match req.send().await {
        Ok(r) => {
            let status =
                StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let bytes = r.bytes().await.unwrap_or_default();
            (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

impl Stub {
    /// Starts a stub on a free port, serving `jwks` and answering `{"active": false}` to
    /// introspection of unknown tokens.
    pub async fn start(jwks: Value) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        Stub::start_on(listener, jwks)
    }

    /// Starts a stub on `listener` (e.g. a port reserved earlier).
    pub fn start_on(listener: TcpListener, jwks: Value) -> Stub {
        let state = Arc::new(StubState {
            mode: Mutex::new(Mode::Ok),
            jwks: Mutex::new(jwks),
            cache_control: Mutex::new(None),
            canned: Mutex::new(HashMap::new()),
            upstream: Mutex::new(None),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("reqwest client"),
            jwks_fetches: AtomicU64::new(0),
            introspections: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/jwks", get(serve_jwks))
            .route("/introspect", post(serve_introspect))
            .with_state(Arc::clone(&state));
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Stub {
            base,
            state,
            handle,
        }
    }

    /// `{base}/jwks`.
    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.base)
    }

    /// `{base}/introspect`.
    pub fn introspection_uri(&self) -> String {
        format!("{}/introspect", self.base)
    }

    /// Changes how the stub answers.
    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.state.mode) = mode;
    }

    /// Replaces the JWKS document.
    pub fn set_jwks(&self, doc: Value) {
        *lock(&self.state.jwks) = doc;
    }

    /// Sets the `Cache-Control` header of JWKS answers.
    pub fn set_cache_control(&self, value: Option<&str>) {
        *lock(&self.state.cache_control) = value.map(str::to_owned);
    }

    /// Answers introspection of `token` with `answer`.
    pub fn can(&self, token: &str, answer: Value) {
        lock(&self.state.canned).insert(token.to_owned(), answer);
    }

    /// Forwards introspection of tokens without a canned answer (credentials included) to
    /// `endpoint`.
    pub fn proxy_to(&self, endpoint: &str) {
        *lock(&self.state.upstream) = Some(endpoint.to_owned());
    }

    /// JWKS requests received.
    pub fn jwks_fetches(&self) -> u64 {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Introspection requests received.
    pub fn introspections(&self) -> u64 {
        self.state.introspections.load(Ordering::SeqCst)
    }

    /// The most introspection requests in progress at once.
    pub fn max_concurrent_introspections(&self) -> u64 {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }
}
