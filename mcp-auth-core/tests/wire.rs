//! The wire contract (the table in the core crate docs, README "The flow"), over real HTTP on
//! 127.0.0.1 through the bearer layer.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use common::{FakeVerifier, Server, client, fake, mint, mint_claims, now};
use http::header;
use mcp_auth_core::testkit::{check_provider, in_contract_order, parse_challenge};
use mcp_auth_core::{AccessToken, AuthProvider, RemoteAuthProvider, ScopeHierarchy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const R: &str = "http://127.0.0.1:8000/mcp";
const META: &str = "http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp";

fn provider(verifier: Arc<FakeVerifier>) -> RemoteAuthProvider {
    RemoteAuthProvider::builder(verifier)
        .resource_url(R)
        .authorization_server("https://idp.example.com")
        .scopes_supported(["todo:read", "todo:write"])
        .initial_scopes(["todo:read"])
        .build()
        .unwrap()
}

/// The app: provider routes + a protected `/mcp` whose handler counts its calls.
fn app(p: &RemoteAuthProvider, hits: Arc<AtomicUsize>) -> Router {
    Router::new()
        .route(
            "/mcp",
            post(move |token: AccessToken| {
                let hits = hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    axum::Json(serde_json::json!({
                        "sub": token.subject(),
                        "client_id": token.client_id(),
                        "scopes": token.scopes(),
                        "resource": token.resource(),
                    }))
                }
            }),
        )
        .layer(p.layer())
        .merge(p.routes())
}

async fn start(p: &RemoteAuthProvider) -> (Server, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    (Server::start(app(p, hits.clone())).await, hits)
}

fn www(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

const NO_CREDS: &str = "Bearer scope=\"todo:read\", resource_metadata=\"http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp\"";

fn invalid_token_header(description: &str) -> String {
    format!(
        "Bearer error=\"invalid_token\", error_description=\"{description}\", scope=\"todo:read\", resource_metadata=\"{META}\""
    )
}

#[tokio::test]
async fn no_credentials_and_other_schemes_get_a_bare_challenge() {
    let v = fake();
    let p = provider(v.clone());
    let (srv, hits) = start(&p).await;
    let c = client();
    for (auth, query) in [
        (None, ""),
        (Some("Basic dXNlcjpwYXNz"), ""),
        (Some("Negotiate abc"), ""),
        (Some("Bearerx abc"), ""),
        (None, "?access_token=abc"),
    ] {
        let mut req = c.post(srv.url(&format!("/mcp{query}"))).body("{}");
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{auth:?} {query}");
        assert_eq!(www(&resp), NO_CREDS, "{auth:?} {query}");
        assert!(resp.bytes().await.unwrap().is_empty());
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    assert_eq!(
        v.calls.load(Ordering::SeqCst),
        0,
        "verifier must not be asked"
    );
    srv.stop().await;
}

#[tokio::test]
async fn bad_tokens_get_invalid_token_with_fixed_descriptions() {
    let v = fake();
    let p = provider(v.clone());
    let (srv, hits) = start(&p).await;
    let c = client();
    let big = "a".repeat(16 * 1024);
    let cases: Vec<(String, &str)> = vec![
        ("Bearer".into(), "The access token is malformed"),
        ("Bearer ".into(), "The access token is malformed"),
        ("Bearer a b".into(), "The access token is malformed"),
        ("Bearer a\"b".into(), "The access token is malformed"),
        (
            "Bearer tok1, Bearer tok2".into(),
            "The access token is malformed",
        ),
        (format!("Bearer {big}"), "The access token is too large"),
        ("Bearer garbage".into(), "The access token is malformed"),
        (
            format!("Bearer {}x", &mint(&["todo:read"], R)),
            "The access token signature is invalid",
        ),
        (
            format!(
                "Bearer {}",
                mint_claims(serde_json::json!({"sub":"u","aud":R,"exp": now() - 10}))
            ),
            "The access token expired",
        ),
        (
            format!(
                "Bearer {}",
                mint(&["todo:read"], "http://127.0.0.1:8000/other")
            ),
            "The access token was not issued for this resource",
        ),
    ];
    for (auth, description) in &cases {
        let resp = c
            .post(srv.url("/mcp"))
            .header(header::AUTHORIZATION, auth.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{auth:.40}");
        assert_eq!(www(&resp), invalid_token_header(description), "{auth:.40}");
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "application/json",
            "{auth:.40}"
        );
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": "invalid_token", "error_description": description})
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    srv.stop().await;
}

#[tokio::test]
async fn valid_token_reaches_the_handler_with_the_access_token() {
    let p = provider(fake());
    let (srv, hits) = start(&p).await;
    let c = client();
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let resp = c
            .post(srv.url("/mcp"))
            .header(
                header::AUTHORIZATION,
                format!("{scheme}  {}", mint(&["todo:read"], R)),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{scheme}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["sub"], "user-1");
        assert_eq!(body["client_id"], "client-1");
        assert_eq!(body["scopes"], serde_json::json!(["todo:read"]));
        assert_eq!(body["resource"], R);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    srv.stop().await;
}

#[tokio::test]
async fn duplicate_credentials_are_a_bad_request() {
    let p = provider(fake());
    let (srv, hits) = start(&p).await;
    let c = client();
    let t = mint(&["todo:read"], R);
    let two_headers = c
        .post(srv.url("/mcp"))
        .header(header::AUTHORIZATION, format!("Bearer {t}"))
        .header(header::AUTHORIZATION, format!("Bearer {t}"))
        .send()
        .await
        .unwrap();
    let header_and_query = c
        .post(srv.url(&format!("/mcp?access_token={t}")))
        .header(header::AUTHORIZATION, format!("Bearer {t}"))
        .send()
        .await
        .unwrap();
    for (resp, description) in [
        (
            two_headers,
            "The request carries more than one Authorization header",
        ),
        (
            header_and_query,
            "The access token was sent in more than one way",
        ),
    ] {
        assert_eq!(resp.status(), 400);
        assert_eq!(
            www(&resp),
            format!(
                "Bearer error=\"invalid_request\", error_description=\"{description}\", resource_metadata=\"{META}\""
            )
        );
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    srv.stop().await;
}

#[tokio::test]
async fn idp_unavailable_is_503_with_retry_after_never_401() {
    let p = provider(fake());
    let (srv, hits) = start(&p).await;
    let c = client();
    for (token, retry) in [
        ("idp-down", "7"),
        ("idp-down-no-hint", "5"),
        // A verifier's hint is capped like an IdP's `Retry-After`.
        ("idp-down-for-ever", "300"),
    ] {
        let resp = c
            .post(srv.url("/mcp"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()[header::RETRY_AFTER], retry);
        assert!(resp.headers().get(header::WWW_AUTHENTICATE).is_none());
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": "temporarily_unavailable"})
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    srv.stop().await;
}

#[tokio::test]
async fn internal_errors_are_500_and_never_echo_the_message() {
    let p = provider(fake());
    let (srv, hits) = start(&p).await;
    let resp = client()
        .post(srv.url("/mcp"))
        .header(header::AUTHORIZATION, "Bearer misconfigured")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    assert!(resp.headers().get(header::WWW_AUTHENTICATE).is_none());
    let body = resp.text().await.unwrap();
    assert_eq!(body, r#"{"error":"server_error"}"#);
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    srv.stop().await;
}

#[tokio::test]
async fn required_scopes_give_403_naming_them_and_hierarchy_satisfies_them() {
    let p = RemoteAuthProvider::builder(fake())
        .resource_url(R)
        .authorization_server("https://idp.example.com")
        .required_scopes(["todo:read", "todo:write"])
        .scope_hierarchy(ScopeHierarchy::new().imply("todo:admin", ["todo:read", "todo:write"]))
        .build()
        .unwrap();
    let (srv, hits) = start(&p).await;
    let c = client();
    let weak = c
        .post(srv.url("/mcp"))
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", mint(&["todo:read"], R)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(weak.status(), 403);
    assert_eq!(
        www(&weak),
        format!(
            "Bearer error=\"insufficient_scope\", error_description=\"The access token lacks a required scope\", scope=\"todo:read todo:write\", resource_metadata=\"{META}\""
        )
    );
    let body: serde_json::Value = weak.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");
    // The 401 challenge names the required scopes.
    let none = c.post(srv.url("/mcp")).send().await.unwrap();
    assert_eq!(
        www(&none),
        format!("Bearer scope=\"todo:read todo:write\", resource_metadata=\"{META}\"")
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    let admin = c
        .post(srv.url("/mcp"))
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", mint(&["todo:admin"], R)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 200);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    srv.stop().await;
}

#[tokio::test]
async fn a_shared_verifier_cannot_let_one_resources_token_into_another() {
    let shared = fake();
    let a = provider(shared.clone());
    let b = RemoteAuthProvider::builder(shared.clone())
        .resource_url("http://127.0.0.1:8000/other")
        .authorization_server("https://idp.example.com")
        .build()
        .unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h2 = hits.clone();
    let app = app(&a, hits.clone()).merge(
        Router::new()
            .route(
                "/other",
                post(move || {
                    let h = h2.clone();
                    async move {
                        h.fetch_add(1, Ordering::SeqCst);
                        "other"
                    }
                }),
            )
            .layer(b.layer()),
    );
    let srv = Server::start(app).await;
    let token_for_a = mint(&["todo:read"], R);
    let c = client();
    let on_a = c
        .post(srv.url("/mcp"))
        .bearer_auth(&token_for_a)
        .send()
        .await
        .unwrap();
    assert_eq!(on_a.status(), 200);
    let on_b = c
        .post(srv.url("/other"))
        .bearer_auth(&token_for_a)
        .send()
        .await
        .unwrap();
    assert_eq!(on_b.status(), 401);
    // Refused for its audience, and the challenge sends the client to b's metadata.
    let challenge = www(&on_b);
    assert!(
        challenge.starts_with(
            "Bearer error=\"invalid_token\", error_description=\"The access token was not issued \
             for this resource\""
        ),
        "{challenge}"
    );
    assert!(
        challenge.contains(
            "resource_metadata=\"http://127.0.0.1:8000/.well-known/oauth-protected-resource/other\""
        ),
        "{challenge}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    srv.stop().await;
}

#[tokio::test]
async fn origin_only_resource_accepts_the_trailing_slash_audience() {
    let p = RemoteAuthProvider::builder(fake())
        .resource_url("http://127.0.0.1:8000")
        .authorization_server("https://idp.example.com")
        .build()
        .unwrap();
    let app = Router::new()
        .route("/", post(|| async { "root" }))
        .layer(p.layer())
        .merge(p.routes());
    let srv = Server::start(app).await;
    let c = client();
    for aud in ["http://127.0.0.1:8000", "http://127.0.0.1:8000/"] {
        let resp = c
            .post(srv.url("/"))
            .bearer_auth(mint(&[], aud))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{aud}");
    }
    let meta: serde_json::Value = c
        .get(srv.url("/.well-known/oauth-protected-resource"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["resource"], "http://127.0.0.1:8000");
    srv.stop().await;
}

#[tokio::test]
async fn metadata_is_served_at_both_urls_and_the_root_alias_can_be_switched_off() {
    let p = RemoteAuthProvider::builder(fake())
        .resource_url("https://api.example.com/v1/mcp")
        .authorization_server("https://idp.example.com/tenant")
        .scopes_supported(["a:read"])
        .resource_name("Example")
        .resource_documentation("https://docs.example.com")
        .metadata_field(
            "resource_policy_uri",
            serde_json::json!("https://example.com/p"),
        )
        .build()
        .unwrap();
    let srv = Server::start(p.routes()).await;
    let c = client();
    let expected = serde_json::json!({
        "resource": "https://api.example.com/v1/mcp",
        "authorization_servers": ["https://idp.example.com/tenant"],
        "scopes_supported": ["a:read"],
        "bearer_methods_supported": ["header"],
        "resource_name": "Example",
        "resource_documentation": "https://docs.example.com",
        "resource_policy_uri": "https://example.com/p",
    });
    for path in [
        "/.well-known/oauth-protected-resource/v1/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let resp = c.get(srv.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()[header::CACHE_CONTROL],
            "public, max-age=3600"
        );
        assert_eq!(resp.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body, expected, "{path}");
        let plain_options = c
            .request(http::Method::OPTIONS, srv.url(path))
            .send()
            .await
            .unwrap();
        assert!(plain_options.status().is_success());
    }
    srv.stop().await;

    let p = RemoteAuthProvider::builder(fake())
        .resource_url("https://api.example.com/v1/mcp")
        .authorization_server("https://idp.example.com")
        .root_metadata_alias(false)
        .build()
        .unwrap();
    let srv = Server::start(p.routes()).await;
    let root = c
        .get(srv.url("/.well-known/oauth-protected-resource"))
        .send()
        .await
        .unwrap();
    assert_eq!(root.status(), 404);
    let doc: serde_json::Value = c
        .get(srv.url("/.well-known/oauth-protected-resource/v1/mcp"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc.get("scopes_supported").is_none(),
        "empty fields omitted"
    );
    srv.stop().await;
}

#[tokio::test]
async fn oversized_headers_get_431_and_the_server_keeps_serving() {
    let p = provider(fake());
    let (srv, _) = start(&p).await;
    let mut stream = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let huge = "a".repeat(1024 * 1024);
    let req = format!(
        "POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {huge}\r\nContent-Length: 0\r\n\r\n"
    );
    let _ = stream.write_all(req.as_bytes()).await;
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 431"), "got {head:?}");
    drop(stream);
    let ok = client()
        .post(srv.url("/mcp"))
        .bearer_auth(mint(&[], R))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    srv.stop().await;
}

#[tokio::test]
async fn non_utf8_authorization_bytes_are_rejected_cleanly() {
    let v = fake();
    let p = provider(v.clone());
    let (srv, hits) = start(&p).await;
    for raw in [
        &b"Bearer \xff\xfe\xfd"[..],
        b"\xffBearer abc",
        b"Bearer abc\xc3\xa9",
    ] {
        let mut stream = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        let mut req = b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\nAuthorization: ".to_vec();
        req.extend_from_slice(raw);
        req.extend_from_slice(b"\r\n\r\n");
        stream.write_all(&req).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 401"), "{raw:?}: {text}");
        assert!(
            text.to_ascii_lowercase()
                .contains("www-authenticate: bearer")
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    assert_eq!(v.calls.load(Ordering::SeqCst), 0);
    srv.stop().await;
}

/// A preflight is answered by the layer itself (the `.options()` handler behind it never runs
/// without a token); a plain OPTIONS is authenticated.
#[tokio::test]
async fn cors_preflight_is_answered_without_auth_and_without_the_route() {
    let p = provider(fake());
    let app = Router::new()
        .route(
            "/mcp",
            post(|| async { "ok" }).options(|| async { "preflight" }),
        )
        .layer(p.layer());
    let srv = Server::start(app).await;
    let resp = client()
        .request(http::Method::OPTIONS, srv.url("/mcp"))
        .header(header::ORIGIN, "https://app.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.text().await.unwrap(), "", "the options() handler ran");
    // A plain OPTIONS (not a preflight) is authenticated like anything else.
    let plain = client()
        .request(http::Method::OPTIONS, srv.url("/mcp"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 401);
    srv.stop().await;
}

#[tokio::test]
async fn extractor_without_the_layer_fails_closed() {
    let app = Router::new().route(
        "/mcp",
        get(|t: AccessToken| async move { t.subject().unwrap_or("").to_owned() }),
    );
    let srv = Server::start(app).await;
    let resp = client().get(srv.url("/mcp")).send().await.unwrap();
    assert_eq!(resp.status(), 500);
    srv.stop().await;
}

#[tokio::test]
async fn metrics_count_outcomes() {
    use mcp_auth_core::telemetry::{REQUESTS, VERIFY_DURATION};
    let m = mcp_auth_idp_harness::metrics::MetricsCapture::new();
    let _recording = m.install();
    let p = provider(fake());
    let app = Router::new()
        .route("/mcp", post(|| async { "ok" }))
        .layer(p.layer());
    let srv = Server::start(app).await;
    let c = client();
    let send = |token: Option<String>| {
        let mut r = c.post(srv.url("/mcp"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move { r.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(send(None).await, 401);
    assert_eq!(send(Some("garbage".into())).await, 401);
    assert_eq!(send(Some(mint(&[], R))).await, 200);
    assert_eq!(send(Some("idp-down".into())).await, 503);
    let count = |outcome, reason| m.counter(REQUESTS, &[("outcome", outcome), ("reason", reason)]);
    assert_eq!(count("accepted", "none"), 1, "{m:?}");
    assert_eq!(count("no_credentials", "none"), 1);
    assert_eq!(count("invalid_token", "malformed"), 1);
    assert_eq!(count("unavailable", "none"), 1);
    assert_eq!(m.counter(REQUESTS, &[]), 4);
    // The three requests that reached the verifier were timed, by verification outcome.
    assert_eq!(m.histogram_count(VERIFY_DURATION, &[("outcome", "ok")]), 1);
    assert_eq!(
        m.histogram_count(VERIFY_DURATION, &[("outcome", "invalid")]),
        1
    );
    assert_eq!(
        m.histogram_count(VERIFY_DURATION, &[("outcome", "unavailable")]),
        1
    );
    srv.stop().await;
}

#[tokio::test]
async fn testkit_passes_for_a_correct_provider() {
    let p = RemoteAuthProvider::builder(fake())
        .resource_url("https://api.example.com/mcp")
        .authorization_server("https://idp.example.com")
        .scopes_supported(["todo:read", "todo:write"])
        .required_scopes(["todo:read"])
        .build()
        .unwrap();
    let report = check_provider(&p, mint).await;
    report.assert_ok();
    assert!(report.passed.len() >= 40, "{} checks", report.passed.len());
}

/// A provider that forgets to serve its metadata and lets any token through: the kit must say so.
struct Broken(RemoteAuthProvider);

impl AuthProvider for Broken {
    fn verifier(&self) -> Arc<dyn mcp_auth_core::TokenVerifier> {
        self.0.verifier()
    }
    fn protected_resource(&self) -> &mcp_auth_core::ProtectedResource {
        self.0.protected_resource()
    }
    fn routes(&self) -> Router {
        Router::new()
    }
}

#[tokio::test]
async fn testkit_reports_a_broken_provider() {
    let p = Broken(provider(fake()));
    let report = check_provider(&p, mint).await;
    assert!(!report.is_ok());
    assert!(
        report
            .failures
            .iter()
            .any(|f| f.starts_with("metadata (path-inserted): 200")),
        "{:?}",
        report.failures
    );
}

#[test]
fn challenge_parser_agrees_with_the_layer_order() {
    let params = parse_challenge(&invalid_token_header("x")).unwrap();
    assert!(in_contract_order(&params));
}

#[tokio::test]
async fn challenge_scopes_name_the_prefixed_form_while_checks_use_the_bare_one() {
    let p = RemoteAuthProvider::builder(fake())
        .resource_url(R)
        .authorization_server("https://idp.example.com")
        .scopes_supported(["todo:read", "todo:write", "openid"])
        .required_scopes(["todo:read"])
        .challenge_scope_prefix("api://todo")
        .build()
        .unwrap();
    assert_eq!(
        p.metadata().scopes_supported,
        ["api://todo/todo:read", "api://todo/todo:write", "openid"]
    );
    let (srv, hits) = start(&p).await;
    let c = client();
    let none = c.post(srv.url("/mcp")).send().await.unwrap();
    assert_eq!(
        www(&none),
        format!("Bearer scope=\"api://todo/todo:read\", resource_metadata=\"{META}\"")
    );
    let weak = c
        .post(srv.url("/mcp"))
        .bearer_auth(mint(&["todo:write"], R))
        .send()
        .await
        .unwrap();
    assert_eq!(weak.status(), 403);
    assert!(
        www(&weak).contains("scope=\"api://todo/todo:read\""),
        "{}",
        www(&weak)
    );
    // The token carries the bare scope (as Entra's `scp` does): accepted.
    let ok = c
        .post(srv.url("/mcp"))
        .bearer_auth(mint(&["todo:read"], R))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    srv.stop().await;
    for bad in ["", "a b", "x\"y"] {
        assert!(
            RemoteAuthProvider::builder(fake())
                .resource_url(R)
                .authorization_server("https://idp.example.com")
                .challenge_scope_prefix(bad)
                .build()
                .is_err(),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn an_allowlisted_client_stands_in_for_a_missing_audience_per_resource() {
    let shared = fake();
    let a = RemoteAuthProvider::builder(shared.clone())
        .resource_url(R)
        .authorization_server("https://idp.example.com")
        .clients_in_place_of_audience(["app-a"])
        .build()
        .unwrap();
    let b = RemoteAuthProvider::builder(shared.clone())
        .resource_url("http://127.0.0.1:8000/other")
        .authorization_server("https://idp.example.com")
        .clients_in_place_of_audience(["app-b"])
        .build()
        .unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h2 = hits.clone();
    let app = app(&a, hits.clone()).merge(
        Router::new()
            .route(
                "/other",
                post(move || {
                    let h = h2.clone();
                    async move {
                        h.fetch_add(1, Ordering::SeqCst);
                        "other"
                    }
                }),
            )
            .layer(b.layer()),
    );
    let srv = Server::start(app).await;
    let no_aud = |client: &str| {
        mint_claims(serde_json::json!({
            "sub": "user-1", "client_id": client, "iss": "https://idp.example.com",
            "scope": "todo:read", "exp": now() + 3600,
        }))
    };
    let c = client();
    let status = |path: &'static str, token: String| {
        let req = c.post(srv.url(path)).bearer_auth(token);
        async move { req.send().await.unwrap().status() }
    };
    assert_eq!(status("/mcp", no_aud("app-a")).await, 200);
    assert_eq!(status("/other", no_aud("app-a")).await, 401);
    assert_eq!(status("/mcp", no_aud("app-b")).await, 401);
    assert_eq!(status("/other", no_aud("app-b")).await, 200);
    // A present `aud` is still checked, whatever the client.
    let mut with_aud = serde_json::json!({
        "sub": "user-1", "client_id": "app-a", "iss": "https://idp.example.com",
        "aud": "http://127.0.0.1:8000/other", "exp": now() + 3600,
    });
    assert_eq!(status("/mcp", mint_claims(with_aud.clone())).await, 401);
    with_aud["aud"] = serde_json::json!(R);
    assert_eq!(status("/mcp", mint_claims(with_aud)).await, 200);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    srv.stop().await;
}

/// A verifier that remembers what it verified, like a token cache, and answers the layer's
/// `verify_cached` from it.
struct Remembering {
    inner: Arc<FakeVerifier>,
    seen: std::sync::Mutex<Vec<(String, AccessToken)>>,
}

#[mcp_auth_core::async_trait]
impl mcp_auth_core::TokenVerifier for Remembering {
    async fn verify(&self, token: &str) -> Result<AccessToken, mcp_auth_core::VerifyError> {
        let verified = self.inner.verify(token).await?;
        if mcp_auth_core::token::is_b64token(token.as_bytes()) {
            let mut seen = self.seen.lock().unwrap();
            seen.push((token.to_owned(), verified.clone()));
        }
        Ok(verified)
    }

    fn verify_cached(&self, token: &[u8]) -> Option<AccessToken> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .find(|(t, _)| mcp_auth_core::token::constant_time_eq(t.as_bytes(), token))
            .map(|(_, a)| a.clone())
    }
}

#[tokio::test]
async fn a_cached_token_skips_verify_but_not_the_layers_checks() {
    let fake = fake();
    let verifier = Arc::new(Remembering {
        inner: fake.clone(),
        seen: Default::default(),
    });
    let p = RemoteAuthProvider::builder(verifier)
        .resource_url(R)
        .authorization_server("https://idp.example.com")
        .required_scopes(["todo:write"])
        .build()
        .unwrap();
    let (srv, hits) = start(&p).await;
    let c = client();
    let send = |token: String| {
        c.post(srv.url("/mcp"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .send()
    };
    let writer = mint(&["todo:write"], R);
    let reader = mint(&["todo:read"], R);
    let elsewhere = mint(&["todo:write"], "https://other.example.com/mcp");
    for round in 0..2 {
        // The second round is answered by `verify_cached`: `verify` ran once per token.
        for (token, status, error) in [
            (&writer, 200, None),
            (&reader, 403, Some("insufficient_scope")),
            (&elsewhere, 401, Some("invalid_token")),
        ] {
            let resp = send(token.clone()).await.unwrap();
            assert_eq!(resp.status(), status, "round {round}");
            let challenge = www(&resp);
            match error {
                Some(e) => assert!(challenge.contains(&format!("error=\"{e}\"")), "{challenge}"),
                None => assert_eq!(challenge, "", "round {round}"),
            }
        }
        assert_eq!(fake.calls.load(Ordering::SeqCst), 3, "round {round}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    // Not cached and not a b64token: refused by the layer's syntax check, never verified.
    let bad = send("abc!def".into()).await.unwrap();
    assert_eq!(bad.status(), 401);
    assert_eq!(
        www(&bad),
        "Bearer error=\"invalid_token\", error_description=\"The access token is malformed\", \
         scope=\"todo:write\", resource_metadata=\"http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp\""
    );
    assert_eq!(fake.calls.load(Ordering::SeqCst), 3);
    srv.stop().await;
}
