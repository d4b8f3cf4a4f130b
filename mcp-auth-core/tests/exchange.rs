//! RFC 8693 token exchange through the bearer layer, against a local token endpoint that answers
//! what a test needs (faults no real IdP produces on demand: 5xx, 429, garbage, redirects). The
//! real-IdP flows are in `examples/tests/todo_exchange.rs`.

mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use base64::Engine as _;
use common::{Server, client, fake, mint_claims, now};
use mcp_auth_core::exchange::{
    ExchangeError, SubjectToken, Target, TargetParameter, TokenExchanger,
};
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
    /// The answer at the issuer's RFC 8414 metadata URL (none: 404, as at the OpenID one).
    metadata: Mutex<Option<Answer>>,
    metadata_fetches: AtomicUsize,
}

fn respond((status, header, body): Answer) -> Response {
    let mut resp = (StatusCode::from_u16(status).unwrap(), body).into_response();
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    if let Some((k, v)) = header {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

async fn metadata(State(stub): State<Arc<Stub>>) -> Response {
    stub.metadata_fetches.fetch_add(1, Ordering::SeqCst);
    let answer = stub.metadata.lock().unwrap().clone();
    respond(answer.unwrap_or((404, None, String::new())))
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
    let answer = stub
        .answers
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or((500, None, String::new()));
    respond(answer)
}

fn ok_body(token: &str) -> String {
    json!({"access_token": token, "token_type": "Bearer", "expires_in": 300,
        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "scope": "a b"})
    .to_string()
}

/// The protected handler: what reached it, and what the exchange gave (for `?target=`, by
/// default [`API`]).
async fn api(
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    subject: Option<Extension<SubjectToken>>,
) -> Json<Value> {
    let target = query.get("target").map_or(API, String::as_str);
    let result = match &subject {
        Some(Extension(s)) => s.exchange_for(target).await,
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
            "variable": match &e {
                ExchangeError::Misconfigured { variable }
                | ExchangeError::Credentials { variable } => Some(*variable),
                _ => None,
            },
        }),
    })
}

struct Setup {
    stub: Arc<Stub>,
    idp: Server,
    app: Server,
    issuer: String,
}

/// The local IdP (token endpoint at `/token`, metadata at the RFC 8414 URL) and the app behind
/// the bearer layer, exchanging with the default exchanger: the IdP's issuer, its `/token`
/// configured, basic auth, target [`API`] with scopes `a` and `b`.
async fn setup() -> Setup {
    setup_with(|idp| {
        let issuer = idp.url("");
        let exchanger = TokenExchanger::builder()
            .issuer_token_endpoint(&issuer, idp.url("/token"))
            .client_secret_basic("mcp server", "s3cret:1")
            .target(Target::audience(API).scopes(["b", "a"]))
            .build()
            .unwrap();
        (issuer, exchanger)
    })
    .await
}

/// [`setup`] with the issuer (the `iss` of the tokens) and exchanger `exchanger` returns.
async fn setup_with(exchanger: impl FnOnce(&Server) -> (String, TokenExchanger)) -> Setup {
    let stub = Arc::new(Stub::default());
    let idp = Server::start(
        Router::new()
            .route("/token", post(token_endpoint))
            .route("/.well-known/oauth-authorization-server", get(metadata))
            .with_state(stub.clone()),
    )
    .await;
    let (issuer, exchanger) = exchanger(&idp);
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
        idp,
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
        self.call_for(token, API).await
    }

    /// The exchange for `target`.
    async fn call_for(&self, token: &str, target: &str) -> Value {
        client()
            .get(self.app.url("/api"))
            .query(&[("target", target)])
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

    /// The form of the `i`th request to the token endpoint.
    fn form(&self, i: usize) -> Form {
        Form::parse(&self.stub.seen.lock().unwrap()[i].1)
    }

    fn set_metadata(&self, answer: Answer) {
        *self.stub.metadata.lock().unwrap() = Some(answer);
    }

    async fn stop(self) {
        self.app.stop().await;
        self.idp.stop().await;
    }
}

/// A form-encoded request body.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &str) -> Form {
        Form(
            url::form_urlencoded::parse(body.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// Every value of `key`, in order.
    fn get(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
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
    let form = Form::parse(&form);
    let get = |k: &str| form.get(k);
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

/// A success answer whose token lives `expires_in` seconds.
fn body_expiring(token: &str, expires_in: u64) -> String {
    json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in}).to_string()
}

#[tokio::test]
async fn the_cache_honours_the_exchanged_tokens_own_expiry() {
    let s = setup().await;
    // The subject token lives 600 s; the exchanged ones 4 s, cached for 2 s (their lifetime
    // less the expiry margin, which is at most half of it).
    let subject = s.token("user-short");
    s.answer((200, None, body_expiring("short-1", 4)));
    s.answer((200, None, body_expiring("short-2", 4)));
    let first = Instant::now();
    assert_eq!(s.call(&subject).await["token"], "short-1");
    assert_eq!(s.requests(), 1);
    // Within its lifetime: from the cache.
    assert_eq!(s.call(&subject).await["token"], "short-1");
    assert_eq!(
        s.requests(),
        1,
        "a second call within the TTL is a cache hit"
    );

    // Past it (polled, with a generous bound): exchanged again, once.
    let deadline = first + Duration::from_secs(30);
    let refreshed = loop {
        let got = s.call(&subject).await;
        if got["token"] != "short-1" {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "a cached token outlived its expires_in by far: {:?}",
            first.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(refreshed["token"], "short-2", "{refreshed}");
    assert_eq!(s.requests(), 2);
    // The same subject token, exchanged again.
    assert_eq!(s.form(1).get("subject_token"), [subject.as_str()]);
    // And the new one is cached in turn.
    assert_eq!(s.call(&subject).await["token"], "short-2");
    assert_eq!(s.requests(), 2);
    s.stop().await;
}

/// An exchanger whose token endpoint is read from the metadata of `issuer`.
fn discovering(issuer: String) -> (String, TokenExchanger) {
    let exchanger = TokenExchanger::builder()
        .issuer(&issuer)
        .client_secret_basic("mcp server", "s3cret:1")
        .target(Target::audience(API).scopes(["a"]))
        .build()
        .unwrap();
    (issuer, exchanger)
}

#[tokio::test]
async fn unusable_metadata_is_misconfigured_unavailable_metadata_is_transient_and_nothing_is_sent()
{
    let s = setup_with(|idp| discovering(idp.url(""))).await;
    // A second origin with a token endpoint that counts its requests with the IdP's.
    let other = Server::start(
        Router::new()
            .route("/token", post(token_endpoint))
            .with_state(s.stub.clone()),
    )
    .await;
    let subject = s.token("user-discovery");
    let doc = |issuer: &str, endpoint: String| {
        json!({"issuer": issuer, "token_endpoint": endpoint}).to_string()
    };
    let misconfigured = json!({"error": "misconfigured",
        "variable": "MCP_AUTH_EXCHANGE_TOKEN_ENDPOINT"});
    let cases: Vec<(&str, Option<Answer>, Value)> = vec![
        (
            "metadata naming another issuer (RFC 8414 §3.3)",
            Some((
                200,
                None,
                doc("https://idp.other.test", s.idp.url("/token")),
            )),
            misconfigured.clone(),
        ),
        (
            "token endpoint on another origin",
            Some((200, None, doc(&s.issuer, other.url("/token")))),
            misconfigured.clone(),
        ),
        (
            "no token endpoint",
            Some((200, None, json!({"issuer": s.issuer}).to_string())),
            misconfigured.clone(),
        ),
        (
            "not JSON",
            Some((200, None, "<html>sign in</html>".into())),
            misconfigured.clone(),
        ),
        ("no metadata at either URL", None, misconfigured.clone()),
        (
            "metadata server error",
            Some((503, Some(("retry-after", "7")), String::new())),
            json!({"error": "unavailable", "retry_after": 7}),
        ),
        (
            "metadata server error, no hint",
            Some((500, None, String::new())),
            json!({"error": "unavailable", "retry_after": null}),
        ),
    ];
    for (i, (case, answer, expected)) in cases.into_iter().enumerate() {
        *s.stub.metadata.lock().unwrap() = answer;
        let before = s.stub.metadata_fetches.load(Ordering::SeqCst);
        let got = s.call(&subject).await;
        for (k, v) in expected.as_object().unwrap() {
            assert_eq!(&got[k], v, "case {i} ({case}): {got}");
        }
        // A failed discovery is not remembered: every call looked again.
        assert!(
            s.stub.metadata_fetches.load(Ordering::SeqCst) > before,
            "case {i} ({case})"
        );
        // And no exchange request went anywhere: neither the issuer's origin nor the other.
        assert_eq!(s.requests(), 0, "case {i} ({case})");
    }

    // Usable metadata: the discovered endpoint gets the exchange (the faults above were the
    // metadata's, not the setup's).
    s.set_metadata((200, None, doc(&s.issuer, s.idp.url("/token"))));
    s.answer((200, None, ok_body("discovered")));
    assert_eq!(s.call(&subject).await["token"], "discovered");
    assert_eq!(s.requests(), 1);
    other.stop().await;
    s.stop().await;
}

#[tokio::test]
async fn metadata_of_an_issuer_that_refuses_connections_is_unavailable() {
    // A port that was just free: nothing listens there.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let s = setup_with(|_| discovering(dead)).await;
    let subject = s.token("user-refused");
    let got = s.call(&subject).await;
    assert_eq!(got["error"], "unavailable", "{got}");
    assert_eq!(got["retry_after"], Value::Null, "{got}");
    // The local IdP (another issuer) was neither asked for metadata nor sent the token.
    assert_eq!(s.stub.metadata_fetches.load(Ordering::SeqCst), 0);
    assert_eq!(s.requests(), 0);
    s.stop().await;
}

#[tokio::test]
async fn resource_and_both_targets_send_what_is_configured_and_no_scope_when_none() {
    const RESOURCE: &str = "https://files.test/api";
    const BOTH: &str = "https://calendar.test/api";
    let s = setup_with(|idp| {
        let issuer = idp.url("");
        let exchanger = TokenExchanger::builder()
            .issuer_token_endpoint(&issuer, idp.url("/token"))
            .client_secret_basic("mcp server", "s3cret:1")
            .target(Target::resource(RESOURCE))
            .target(
                Target::audience(BOTH)
                    .parameter_kind(TargetParameter::Both)
                    .scopes(["cal:read"]),
            )
            .target(Target::audience(API))
            .build()
            .unwrap();
        (issuer, exchanger)
    })
    .await;
    let subject = s.token("user-targets");
    let ok = |token: &str| {
        json!({"access_token": token, "token_type": "Bearer", "expires_in": 300}).to_string()
    };
    for (i, target) in [RESOURCE, BOTH, API].into_iter().enumerate() {
        s.answer((200, None, ok(&format!("t{i}"))));
        assert_eq!(s.call_for(&subject, target).await["token"], format!("t{i}"));
    }
    assert_eq!(s.requests(), 3);

    // resource only (RFC 8707 URL), and no scope when the target has none.
    let f = s.form(0);
    assert_eq!(f.get("resource"), [RESOURCE]);
    assert!(f.get("audience").is_empty(), "{:?}", f.0);
    assert!(f.get("scope").is_empty(), "{:?}", f.0);
    // both parameters with the same value, and the scope.
    let f = s.form(1);
    assert_eq!(f.get("resource"), [BOTH]);
    assert_eq!(f.get("audience"), [BOTH]);
    assert_eq!(f.get("scope"), ["cal:read"]);
    // audience only, no scope.
    let f = s.form(2);
    assert_eq!(f.get("audience"), [API]);
    assert!(f.get("resource").is_empty(), "{:?}", f.0);
    assert!(f.get("scope").is_empty(), "{:?}", f.0);
    for i in 0..3 {
        assert_eq!(
            s.form(i).get("grant_type"),
            ["urn:ietf:params:oauth:grant-type:token-exchange"]
        );
    }
    s.stop().await;
}
