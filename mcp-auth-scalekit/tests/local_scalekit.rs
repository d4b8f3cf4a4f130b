//! Scalekit's URL layout served from 127.0.0.1: JWKS at `/keys`, authorization-server metadata at
//! `/.well-known/oauth-authorization-server/resources/<id>`, tokens minted with the jwt `dev` keys
//! using Scalekit's issuer and audience conventions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use mcp_auth_core::fetch::{HttpClient, HttpClientConfig};
use mcp_auth_core::testkit::check_provider;
use mcp_auth_core::{AccessToken, AuthProvider};
use mcp_auth_jwt::dev::{DevIssuer, TokenSpec};
use mcp_auth_scalekit::ScalekitProvider;

const RESOURCE_ID: &str = "res_88056357768398086";
const R: &str = "https://mcp.example.com/mcp";

/// A server on 127.0.0.1:0, stopped (and awaited) when dropped or by `stop()`.
struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    async fn start(app: Router) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Server {
            addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The fake Scalekit environment.
struct Scalekit {
    server: Server,
    dev: DevIssuer,
    metadata_hits: Arc<AtomicUsize>,
    fail_metadata: Arc<AtomicBool>,
}

impl Scalekit {
    fn env_url(&self) -> String {
        self.server.url()
    }

    fn upstream_document(&self) -> String {
        let env = self.env_url();
        // Exact bytes the forwarder must pass on unchanged (issuer is never rewritten).
        format!(
            "{{\"issuer\":\"{env}/resources/{RESOURCE_ID}\",\"authorization_endpoint\":\"{env}/oauth/authorize\",\"token_endpoint\":\"{env}/oauth/token\",\"registration_endpoint\":\"{env}/resources/{RESOURCE_ID}/register\",\"jwks_uri\":\"{env}/keys\",\"code_challenge_methods_supported\":[\"S256\"]}}"
        )
    }

    fn mint(&self, spec: TokenSpec) -> String {
        self.dev.mint(spec)
    }
}

async fn start_scalekit() -> Scalekit {
    let metadata_hits = Arc::new(AtomicUsize::new(0));
    let fail_metadata = Arc::new(AtomicBool::new(false));
    // The document mentions the server's own address, known only after binding: serve it from a
    // shared cell filled after start.
    let doc = Arc::new(std::sync::OnceLock::<String>::new());
    let placeholder = DevIssuer::generate("http://placeholder.invalid");
    let (hits, fail, d) = (metadata_hits.clone(), fail_metadata.clone(), doc.clone());
    let app = placeholder.jwks_router("/keys").route(
        &format!("/.well-known/oauth-authorization-server/resources/{RESOURCE_ID}"),
        get(move || {
            let (hits, fail, d) = (hits.clone(), fail.clone(), d.clone());
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                if fail.load(Ordering::SeqCst) {
                    return (
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        "boom".to_owned(),
                    );
                }
                (
                    axum::http::StatusCode::OK,
                    d.get().cloned().unwrap_or_default(),
                )
            }
        }),
    );
    let server = Server::start(app).await;
    let dev = DevIssuer::generate(server.url());
    let s = Scalekit {
        server,
        dev,
        metadata_hits,
        fail_metadata,
    };
    let _ = doc.set(s.upstream_document());
    s
}

fn test_client() -> HttpClient {
    HttpClient::new(HttpClientConfig {
        timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        ..HttpClientConfig::default()
    })
    .unwrap()
}

fn provider(sk: &Scalekit) -> ScalekitProvider {
    ScalekitProvider::builder(format!("{}/", sk.env_url()), RESOURCE_ID, R)
        .scopes_supported(["todo:read", "todo:write"])
        .initial_scopes(["todo:read"])
        .http_client(test_client())
        .build()
        .unwrap()
}

/// The MCP server: provider routes plus a protected `/mcp` echoing the token.
async fn start_app(p: &ScalekitProvider) -> Server {
    let app = Router::new()
        .route(
            "/mcp",
            post(|t: AccessToken| async move {
                axum::Json(serde_json::json!({ "sub": t.subject(), "iss": t.issuer() }))
            }),
        )
        .layer(p.layer())
        .merge(p.routes());
    Server::start(app).await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn call(app: &Server, token: &str) -> (u16, serde_json::Value) {
    let resp = client()
        .post(format!("{}/mcp", app.url()))
        .bearer_auth(token)
        .body("{}")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn testkit_passes() {
    let sk = start_scalekit().await;
    let p = provider(&sk);
    let report = check_provider(&p, |scopes: &[&str], audience: &str| {
        sk.mint(
            TokenSpec::new("user_1")
                .scopes(scopes.iter().copied())
                .audience(audience)
                .client_id("skc_1"),
        )
    })
    .await;
    report.assert_ok();
    sk.server.stop().await;
}

#[tokio::test]
async fn testkit_passes_with_the_resource_issuer() {
    let sk = start_scalekit().await;
    let p = provider(&sk);
    let resource_issuer = format!("{}/resources/{RESOURCE_ID}", sk.env_url());
    // Tokens of the newer layout: the per-resource issuer.
    let report = check_provider(&p, |scopes: &[&str], audience: &str| {
        sk.mint(
            TokenSpec::new("user_1")
                .issuer(resource_issuer.clone())
                .scopes(scopes.iter().copied())
                .audience(audience),
        )
    })
    .await;
    report.assert_ok();
    sk.server.stop().await;
}

#[tokio::test]
async fn issuers_and_audiences_follow_scalekit_conventions() {
    let sk = start_scalekit().await;
    let p = provider(&sk);
    let app = start_app(&p).await;
    let env = sk.env_url();
    let resource_issuer = format!("{env}/resources/{RESOURCE_ID}");

    // Environment issuer, aud = R.
    let t = sk.mint(TokenSpec::new("u1").audience(R));
    let (status, body) = call(&app, &t).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["iss"], env.as_str());

    // The other issuer variant (per resource), aud = resource id only.
    let t = sk.mint(
        TokenSpec::new("u2")
            .issuer(resource_issuer.clone())
            .audience(RESOURCE_ID),
    );
    let (status, body) = call(&app, &t).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["iss"], resource_issuer.as_str());
    assert_eq!(body["sub"], "u2");

    // Wrong audience: 401 invalid_token.
    let t = sk.mint(TokenSpec::new("u3").audience("res_someone_else"));
    let (status, body) = call(&app, &t).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_token");

    // Another issuer (a different environment, or another resource of this one): 401.
    for iss in [
        "https://evil.scalekit.com".to_owned(),
        format!("{env}/resources/res_other"),
        format!("{env}/"),
    ] {
        let t = sk.mint(TokenSpec::new("u4").issuer(iss.clone()).audience(R));
        let (status, _) = call(&app, &t).await;
        assert_eq!(status, 401, "issuer {iss} accepted");
    }

    // The metadata sends clients to the per-resource authorization server.
    let meta: serde_json::Value = client()
        .get(format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            app.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        meta["authorization_servers"],
        serde_json::json!([resource_issuer])
    );
    app.stop().await;
    sk.server.stop().await;
}

#[tokio::test]
async fn forwarding_serves_the_upstream_document_unchanged_and_caches_it() {
    let sk = start_scalekit().await;
    let p = provider(&sk);
    let app = start_app(&p).await;
    let url = format!("{}/.well-known/oauth-authorization-server", app.url());
    for _ in 0..4 {
        let resp = client()
            .get(&url)
            .header("origin", "https://client.example")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(resp.headers()["content-type"], "application/json");
        assert_eq!(resp.headers()["access-control-allow-origin"], "*");
        let body = resp.text().await.unwrap();
        assert_eq!(body, sk.upstream_document());
    }
    let doc: serde_json::Value = serde_json::from_str(&sk.upstream_document()).unwrap();
    assert_eq!(
        doc["issuer"],
        format!("{}/resources/{RESOURCE_ID}", sk.env_url())
    );
    assert_eq!(sk.metadata_hits.load(Ordering::SeqCst), 1);
    app.stop().await;
    sk.server.stop().await;
}

#[tokio::test]
async fn upstream_failure_is_a_502_and_is_not_cached() {
    let sk = start_scalekit().await;
    sk.fail_metadata.store(true, Ordering::SeqCst);
    let p = provider(&sk);
    let app = start_app(&p).await;
    let url = format!("{}/.well-known/oauth-authorization-server", app.url());
    let resp = client().get(&url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 502);
    let body = resp.text().await.unwrap();
    assert!(!body.contains("boom"), "upstream body leaked: {body}");
    assert_eq!(body, r#"{"error":"upstream_unavailable"}"#);

    // Recovery: the failure was not cached.
    sk.fail_metadata.store(false, Ordering::SeqCst);
    let resp = client().get(&url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().await.unwrap(), sk.upstream_document());
    assert_eq!(sk.metadata_hits.load(Ordering::SeqCst), 2);
    app.stop().await;
    sk.server.stop().await;
}

#[tokio::test]
async fn unreachable_upstream_is_a_502() {
    // A port nobody serves: below the ephemeral range, so no parallel `bind(:0)` takes it.
    let port = mcp_auth_idp_harness::ports::free_port();
    let p = ScalekitProvider::builder(format!("http://127.0.0.1:{port}"), RESOURCE_ID, R)
        .http_client(test_client())
        .build()
        .unwrap();
    let app = start_app(&p).await;
    let resp = client()
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            app.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 502);
    app.stop().await;
}
