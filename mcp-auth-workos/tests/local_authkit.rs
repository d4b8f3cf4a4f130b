//! AuthKit's URL layout served from 127.0.0.1: JWKS at `/oauth2/jwks`, authorization-server
//! metadata at `/.well-known/oauth-authorization-server`, tokens minted with the jwt `dev` keys
//! using AuthKit's conventions (`iss` = the domain, `aud` = the registered resource indicator).

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
use mcp_auth_workos::AuthKitProvider;

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

/// The fake AuthKit environment.
struct AuthKit {
    server: Server,
    dev: DevIssuer,
    metadata_hits: Arc<AtomicUsize>,
    fail_metadata: Arc<AtomicBool>,
}

impl AuthKit {
    fn domain(&self) -> String {
        self.server.url()
    }

    fn upstream_document(&self) -> String {
        let d = self.domain();
        format!(
            "{{\"issuer\":\"{d}\",\"authorization_endpoint\":\"{d}/oauth2/authorize\",\"token_endpoint\":\"{d}/oauth2/token\",\"registration_endpoint\":\"{d}/oauth2/register\",\"jwks_uri\":\"{d}/oauth2/jwks\",\"code_challenge_methods_supported\":[\"S256\"]}}"
        )
    }

    fn mint(&self, spec: TokenSpec) -> String {
        self.dev.mint(spec)
    }
}

async fn start_authkit() -> AuthKit {
    let metadata_hits = Arc::new(AtomicUsize::new(0));
    let fail_metadata = Arc::new(AtomicBool::new(false));
    let doc = Arc::new(std::sync::OnceLock::<String>::new());
    let placeholder = DevIssuer::generate("http://placeholder.invalid");
    let (hits, fail, d) = (metadata_hits.clone(), fail_metadata.clone(), doc.clone());
    let app = placeholder.jwks_router("/oauth2/jwks").route(
        "/.well-known/oauth-authorization-server",
        get(move || {
            let (hits, fail, d) = (hits.clone(), fail.clone(), d.clone());
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                if fail.load(Ordering::SeqCst) {
                    return (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        "upstream secret detail".to_owned(),
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
    let s = AuthKit {
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

fn provider(ak: &AuthKit) -> AuthKitProvider {
    // A bare host:port as the domain would get https://; tests pass the full loopback origin.
    AuthKitProvider::builder(format!("{}/", ak.domain()), R)
        .scopes_supported(["todo:read", "todo:write"])
        .initial_scopes(["todo:read"])
        .http_client(test_client())
        .build()
        .unwrap()
}

async fn start_app(p: &AuthKitProvider) -> Server {
    let app = Router::new()
        .route(
            "/mcp",
            post(|t: AccessToken| async move {
                axum::Json(serde_json::json!({
                    "sub": t.subject(),
                    "iss": t.issuer(),
                    "scopes": t.scopes(),
                }))
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
    let ak = start_authkit().await;
    let p = provider(&ak);
    let report = check_provider(&p, |scopes: &[&str], audience: &str| {
        ak.mint(
            TokenSpec::new("user_01HXYZ")
                .scopes(scopes.iter().copied())
                .audience(audience)
                .client_id("client_01HXYZ"),
        )
    })
    .await;
    report.assert_ok();
    ak.server.stop().await;
}

#[tokio::test]
async fn tokens_follow_authkit_conventions() {
    let ak = start_authkit().await;
    let p = provider(&ak);
    let app = start_app(&p).await;

    // iss = domain, aud = the registered resource indicator: accepted.
    let t = ak.mint(
        TokenSpec::new("user_1")
            .audience(R)
            .scopes(["openid", "todo:read"]),
    );
    let (status, body) = call(&app, &t).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["iss"], ak.domain());
    assert_eq!(body["scopes"], serde_json::json!(["openid", "todo:read"]));

    // No aud at all (resource indicator not registered in the dashboard): refused.
    let t = ak.mint(TokenSpec::new("user_2"));
    let (status, body) = call(&app, &t).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_token");

    // Wrong audience (another resource, or the WorkOS client id): refused.
    for aud in [
        "https://other.example.com/mcp",
        "client_01HXYZ",
        "https://mcp.example.com",
    ] {
        let t = ak.mint(TokenSpec::new("user_3").audience(aud));
        let (status, _) = call(&app, &t).await;
        assert_eq!(status, 401, "aud {aud} accepted");
    }

    // Wrong issuer (the domain with a slash, another environment): refused.
    for iss in [
        format!("{}/", ak.domain()),
        "https://evil.authkit.app".to_owned(),
    ] {
        let t = ak.mint(TokenSpec::new("user_4").issuer(iss.clone()).audience(R));
        let (status, _) = call(&app, &t).await;
        assert_eq!(status, 401, "iss {iss} accepted");
    }

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
        serde_json::json!([ak.domain()])
    );
    assert_eq!(meta["resource"], R);
    app.stop().await;
    ak.server.stop().await;
}

#[tokio::test]
async fn forwarding_serves_the_upstream_document_unchanged_and_caches_it() {
    let ak = start_authkit().await;
    let p = provider(&ak);
    let app = start_app(&p).await;
    let url = format!("{}/.well-known/oauth-authorization-server", app.url());
    for _ in 0..5 {
        let resp = client()
            .get(&url)
            .header("origin", "https://client.example")
            .header("authorization", "Bearer must-not-be-forwarded")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(resp.headers()["content-type"], "application/json");
        assert_eq!(resp.headers()["access-control-allow-origin"], "*");
        assert_eq!(resp.text().await.unwrap(), ak.upstream_document());
    }
    assert_eq!(ak.metadata_hits.load(Ordering::SeqCst), 1);
    app.stop().await;
    ak.server.stop().await;
}

#[tokio::test]
async fn upstream_failure_is_a_502_and_is_not_cached() {
    let ak = start_authkit().await;
    ak.fail_metadata.store(true, Ordering::SeqCst);
    let p = provider(&ak);
    let app = start_app(&p).await;
    let url = format!("{}/.well-known/oauth-authorization-server", app.url());
    for _ in 0..2 {
        let resp = client().get(&url).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 502);
        let body = resp.text().await.unwrap();
        assert_eq!(body, r#"{"error":"upstream_unavailable"}"#);
    }
    assert_eq!(ak.metadata_hits.load(Ordering::SeqCst), 2);
    ak.fail_metadata.store(false, Ordering::SeqCst);
    let resp = client().get(&url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().await.unwrap(), ak.upstream_document());
    app.stop().await;
    ak.server.stop().await;
}
