//! A Keycloak realm's URL layout served from 127.0.0.1, tokens minted with the jwt `dev` keys
//! the way Keycloak issues them (`iss` = realm URL, `aud` from the audience mapper, `typ: JWT`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use mcp_auth_core::AuthProvider;
use mcp_auth_core::fetch::{HttpClient, HttpClientConfig};
use mcp_auth_core::testkit::check_provider;
use mcp_auth_jwt::dev::{DevIssuer, TokenSpec};
use mcp_auth_keycloak::KeycloakProvider;

const REALM: &str = "acme";
const R: &str = "http://127.0.0.1:9/mcp";

struct Server {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(app: Router) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Server {
            url,
            stop: Some(tx),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.abort();
    }
}

const DISCOVERY: &str = r#"{"issuer":"ISSUER","jwks_uri":"ISSUER/protocol/openid-connect/certs","authorization_endpoint":"ISSUER/protocol/openid-connect/auth","token_endpoint":"ISSUER/protocol/openid-connect/token"}"#;

/// Starts the fake realm: JWKS and discovery document; returns the server, its issuer and the
/// discovery hit counter.
async fn start_realm() -> (Server, String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let issuer_cell = Arc::new(std::sync::OnceLock::<String>::new());
    let (h, cell) = (hits.clone(), issuer_cell.clone());
    let app = DevIssuer::generate("http://placeholder.invalid")
        .jwks_router(&format!("/realms/{REALM}/protocol/openid-connect/certs"))
        .route(
            &format!("/realms/{REALM}/.well-known/openid-configuration"),
            get(move || {
                let (h, cell) = (h.clone(), cell.clone());
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    DISCOVERY.replace("ISSUER", cell.get().map(String::as_str).unwrap_or(""))
                }
            }),
        );
    let server = Server::start(app).await;
    let issuer = format!("{}/realms/{REALM}", server.url);
    let _ = issuer_cell.set(issuer.clone());
    (server, issuer, hits)
}

fn provider(base: &str) -> KeycloakProvider {
    KeycloakProvider::builder(base, REALM, R)
        .scopes_supported(["todo:read", "todo:write"])
        .initial_scopes(["todo:read"])
        .http_client(
            HttpClient::new(HttpClientConfig {
                timeout: Duration::from_secs(2),
                ..HttpClientConfig::default()
            })
            .unwrap(),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn testkit_passes() {
    let (realm, issuer, _) = start_realm().await;
    let p = provider(&realm.url);
    let dev = DevIssuer::generate(issuer);
    let report = check_provider(&p, |scopes: &[&str], audience: &str| {
        dev.mint(
            TokenSpec::new("5f0c2a1e-user")
                .typ(Some("JWT"))
                .scopes(scopes.iter().copied())
                .audiences([audience, "account"])
                .claim("azp", serde_json::json!("mcp-client")),
        )
    })
    .await;
    report.assert_ok();
    realm.stop().await;
}

#[tokio::test]
async fn audience_issuer_and_forwarding() {
    let (realm, issuer, hits) = start_realm().await;
    let p = provider(&format!("{}/", realm.url));
    let app = Server::start(
        Router::new()
            .route("/mcp", axum::routing::post(|| async { "ok" }))
            .layer(p.layer())
            .merge(p.routes()),
    )
    .await;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    let dev = DevIssuer::generate(issuer.clone());
    let send = |token: String| {
        let client = client.clone();
        let url = format!("{}/mcp", app.url);
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Keycloak's default audience only ("account"): the audience mapper is missing, refused.
    assert_eq!(
        send(dev.mint(TokenSpec::new("u").audience("account"))).await,
        401
    );
    // With the mapper: accepted.
    assert_eq!(
        send(dev.mint(TokenSpec::new("u").audiences(["account", R]))).await,
        200
    );
    // Another realm on the same server: refused.
    let other = format!("{}/realms/other", realm.url);
    assert_eq!(
        send(dev.mint(TokenSpec::new("u").issuer(other).audience(R))).await,
        401
    );

    let url = format!("{}/.well-known/oauth-authorization-server", app.url);
    for _ in 0..3 {
        let resp = client.get(&url).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(
            resp.text().await.unwrap(),
            DISCOVERY.replace("ISSUER", &issuer)
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    app.stop().await;
    realm.stop().await;
}
