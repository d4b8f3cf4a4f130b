//! RFC 8693 token exchange through the bearer layer, against a local token endpoint that answers
//! what a test needs (faults no real IdP produces on demand: 5xx, 429, garbage, redirects). The
//! real-IdP flows are in `examples/tests/todo_exchange.rs`.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use base64::Engine as _;
use common::{Server, client, fake, mint_claims, now};
use mcp_auth_core::exchange::{ExchangeError, SubjectToken, Target, TokenExchanger};
use mcp_auth_core::{AuthProvider, RemoteAuthProvider};
use serde_json::{Value, json};

const R: &str = "http://127.0.0.1:9/mcp";
const API: &str = "https://api.test";

/// One canned answer: status, extra header, body.
type Answer = (u16, Option<(&'static str, &'static str)>, String);

#[derive(Default)]
struct Stub {
    answers: Mutex<VecDeque<Answer>>,
    /// (Authorization header, form body) of every request.
    seen: Mutex<Vec<(Option<String>, String)>>,
}

async fn token_endpoint(
    State(stub): State<Arc<Stub>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    stub.seen.lock().unwrap().push((auth, body));
    // Long enough for concurrent callers to overlap (the single-flight case).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, header, body) =
        stub.answers
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or((500, None, String::new()));
    let mut resp = (StatusCode::from_u16(status).unwrap(), body).into_response();
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    if let Some((k, v)) = header {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

fn ok_body(token: &str) -> String {
    json!({"access_token": token, "token_type": "Bearer", "expires_in": 300,
        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "scope": "a b"})
    .to_string()
}

/// The protected handler: what reached it, and what the exchange gave.
async fn api(headers: HeaderMap, subject: Option<Extension<SubjectToken>>) -> Json<Value> {
    let result = match &subject {
        Some(Extension(s)) => s.exchange_for(API).await,
        None => Err(ExchangeError::NoSubjectToken),
    };
    Json(match result {
        Ok(t) => json!({
            "authorization_header": headers.contains_key("authorization"),
            "token": t.access_token(),
            "scopes": t.scopes(),
            "debug": format!("{t:?} {:?}", subject.map(|s| s.0)),
        }),
        Err(e) => json!({
            "error": e.code(),
            "refused": match &e { ExchangeError::Refused { error } => Some(error.clone()), _ => None },
            "retry_after": match &e {
                ExchangeError::Unavailable { retry_after } => retry_after.map(|d| d.as_secs()),
                _ => None,
            },
        }),
    })
}

struct Setup {
    stub: Arc<Stub>,
    _idp: Server,
    app: Server,
    issuer: String,
}

async fn setup() -> Setup {
    let stub = Arc::new(Stub::default());
    let idp = Server::start(
        Router::new()
            .route("/token", post(token_endpoint))
            .with_state(stub.clone()),
    )
    .await;
    let issuer = idp.url("");
    let exchanger = TokenExchanger::builder()
        .issuer_token_endpoint(&issuer, idp.url("/token"))
        .client_secret_basic("mcp server", "s3cret:1")
        .target(Target::audience(API).scopes(["b", "a"]))
        .build()
        .unwrap();
    let provider = RemoteAuthProvider::builder(fake())
        .resource_url(R)
        .authorization_server(&issuer)
        .build()
        .unwrap();
    let app = Router::new()
        .route("/api", get(api))
        .layer(provider.layer().with_token_exchange(exchanger));
    Setup {
        stub,
        _idp: idp,
        app: Server::start(app).await,
        issuer,
    }
}

impl Setup {
    fn token(&self, sub: &str) -> String {
        mint_claims(json!({"sub": sub, "iss": self.issuer, "aud": R, "exp": now() + 600}))
    }

    fn answer(&self, a: Answer) {
        self.stub.answers.lock().unwrap().push_back(a);
    }

    async fn call(&self, token: &str) -> Value {
        client()
            .get(self.app.url("/api"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    fn requests(&self) -> usize {
        self.stub.seen.lock().unwrap().len()
    }
}

#[tokio::test]
async fn the_request_is_rfc_8693_and_the_raw_token_reaches_only_the_exchanger() {
    let s = setup().await;
    let subject = s.token("user-1");
    s.answer((200, None, ok_body("downstream-1")));
    let got = s.call(&subject).await;
    assert_eq!(got["token"], "downstream-1", "{got}");
    assert_eq!(got["scopes"], json!(["a", "b"]));
    // The handler behind the layer saw no Authorization header, and no Debug shows a token.
    assert_eq!(got["authorization_header"], false);
    let debug = got["debug"].as_str().unwrap();
    assert!(
        !debug.contains("downstream-1") && !debug.contains(&subject),
        "{debug}"
    );
    assert!(debug.contains("[redacted]"), "{debug}");

    let (auth, form) = s.stub.seen.lock().unwrap()[0].clone();
    // client_secret_basic, form-encoded first (RFC 6749 §2.3.1).
    let basic = auth.unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic.strip_prefix("Basic ").unwrap())
        .unwrap();
    assert_eq!(decoded, b"mcp+server:s3cret%3A1");
    let form: Vec<(String, String)> = url::form_urlencoded::parse(form.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| {
        form.iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        get("grant_type"),
        ["urn:ietf:params:oauth:grant-type:token-exchange"]
    );
    assert_eq!(get("subject_token"), [subject.as_str()]);
    assert_eq!(
        get("subject_token_type"),
        ["urn:ietf:params:oauth:token-type:access_token"]
    );
    assert_eq!(
        get("requested_token_type"),
        ["urn:ietf:params:oauth:token-type:access_token"]
    );
    assert_eq!(get("audience"), [API]);
    assert!(get("resource").is_empty());
    assert_eq!(get("scope"), ["a b"]);
    assert!(
        get("client_secret").is_empty(),
        "basic auth sends no secret in the body"
    );

    // Cached: the same subject token, target and scopes cost no second exchange.
    assert_eq!(s.call(&subject).await["token"], "downstream-1");
    assert_eq!(s.requests(), 1);
}

#[tokio::test]
async fn concurrent_misses_share_one_exchange() {
    let s = Arc::new(setup().await);
    let subject = s.token("user-2");
    s.answer((200, None, ok_body("shared")));
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (s, t) = (s.clone(), subject.clone());
            tokio::spawn(async move { s.call(&t).await })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap()["token"], "shared");
    }
    assert_eq!(s.requests(), 1);
}

#[tokio::test]
async fn exchanges_and_their_cache_are_counted_in_the_metrics_scheme() {
    use mcp_auth_core::telemetry::{CACHE_LOOKUPS, IDP_REQUESTS};
    let m = mcp_auth_idp_harness::metrics::MetricsCapture::new();
    let _recording = m.install();
    let s = setup().await;
    let exchange = |result| {
        m.counter(
            IDP_REQUESTS,
            &[("kind", "token_exchange"), ("result", result)],
        )
    };
    let lookup = |result| {
        m.counter(
            CACHE_LOOKUPS,
            &[
                ("cache", "exchange"),
                ("layer", "process"),
                ("result", result),
            ],
        )
    };
    // A fault: one call, counted as an error, nothing cached.
    s.answer((503, None, String::new()));
    let subject = s.token("user-metrics");
    assert_eq!(s.call(&subject).await["error"], "unavailable");
    assert_eq!((exchange("ok"), exchange("error")), (0, 1), "{m:?}");
    assert_eq!((lookup("hit"), lookup("miss")), (0, 1));
    // A success: a second call; then the cache answers without a third.
    s.answer((200, None, ok_body("downstream-m")));
    assert_eq!(s.call(&subject).await["token"], "downstream-m");
    assert_eq!(s.call(&subject).await["token"], "downstream-m");
    assert_eq!((exchange("ok"), exchange("error")), (1, 1), "{m:?}");
    assert_eq!((lookup("hit"), lookup("miss")), (1, 2));
    // The metrics agree with what the token endpoint saw.
    assert_eq!(s.requests(), 2);
}

#[tokio::test]
async fn idp_faults_map_to_typed_errors_and_are_never_cached() {
    let s = setup().await;
    let json = |v: Value| v.to_string();
    let cases: Vec<(Answer, Value)> = vec![
        (
            (503, Some(("retry-after", "7")), String::new()),
            json!({"error": "unavailable", "retry_after": 7}),
        ),
        (
            (429, Some(("retry-after", "86400")), String::new()),
            json!({"error": "unavailable", "retry_after": 300}),
        ),
        (
            (502, None, "<html>".into()),
            json!({"error": "unavailable"}),
        ),
        (
            (200, None, "not json".into()),
            json!({"error": "unavailable"}),
        ),
        (
            (200, None, ok_body("has space")),
            json!({"error": "unavailable"}),
        ),
        (
            (400, None, json(json!({"error": "invalid_grant"}))),
            json!({"error": "refused", "refused": "invalid_grant"}),
        ),
        (
            (400, None, json(json!({"error": "invalid_target\"\r\nx"}))),
            json!({"error": "refused", "refused": "invalid_targetx"}),
        ),
        (
            (400, None, json(json!({"error": "invalid_client"}))),
            json!({"error": "credentials_refused"}),
        ),
        (
            (401, None, String::new()),
            json!({"error": "credentials_refused"}),
        ),
        (
            (403, None, String::new()),
            json!({"error": "credentials_refused"}),
        ),
        (
            (
                302,
                Some(("location", "https://elsewhere.test/")),
                String::new(),
            ),
            json!({"error": "misconfigured"}),
        ),
        (
            (
                200,
                None,
                json(json!({"access_token": "x", "token_type": "DPoP", "expires_in": 60})),
            ),
            json!({"error": "misconfigured"}),
        ),
    ];
    let subject = s.token("user-3");
    for (i, (answer, expected)) in cases.into_iter().enumerate() {
        s.answer(answer);
        let got = s.call(&subject).await;
        for (k, v) in expected.as_object().unwrap() {
            assert_eq!(&got[k], v, "case {i}: {got}");
        }
        // Errors are not cached: every call reached the endpoint.
        assert_eq!(s.requests(), i + 1, "case {i}");
    }
    // After the faults, a good answer is served (and only now cached).
    s.answer((200, None, ok_body("finally")));
    assert_eq!(s.call(&subject).await["token"], "finally");
}

#[tokio::test]
async fn a_token_of_another_issuer_is_never_sent_to_this_idp() {
    let s = setup().await;
    let foreign = mint_claims(
        json!({"sub": "u", "iss": "https://other-idp.test", "aud": R,
        "exp": now() + 600}),
    );
    assert_eq!(s.call(&foreign).await["error"], "unknown_issuer");
    assert_eq!(s.requests(), 0);
}
