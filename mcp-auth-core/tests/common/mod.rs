//! Shared test support: a keyed fake-token verifier and a server on 127.0.0.1.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_auth_core::{AccessToken, InvalidToken, TokenVerifier, VerifyError, async_trait};

const KEY: [u8; 32] = *b"mcp-auth-core-test-verifier-key!";

/// Mints a fake token: base64url(JSON claims) "." keyed BLAKE3 MAC of the claims.
pub fn mint(scopes: &[&str], audience: &str) -> String {
    mint_claims(serde_json::json!({
        "sub": "user-1",
        "client_id": "client-1",
        "iss": "https://idp.example.com",
        "aud": audience,
        "scope": scopes.join(" "),
        "exp": now() + 3600,
    }))
}

pub fn mint_claims(claims: serde_json::Value) -> String {
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mac = blake3::keyed_hash(&KEY, payload.as_bytes());
    format!("{payload}.{}", mac.to_hex())
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Verifies [`mint`]ed tokens; some magic tokens produce the other error kinds. It does NOT check
/// expiry or audience itself, so the layer's own checks are exercised.
#[derive(Default)]
pub struct FakeVerifier {
    pub calls: AtomicUsize,
}

#[async_trait]
impl TokenVerifier for FakeVerifier {
    async fn verify(&self, token: &str) -> Result<AccessToken, VerifyError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match token {
            "idp-down" => {
                return Err(VerifyError::Unavailable {
                    retry_after: Some(Duration::from_secs(7)),
                });
            }
            "idp-down-no-hint" => return Err(VerifyError::unavailable()),
            "idp-down-for-ever" => {
                return Err(VerifyError::Unavailable {
                    retry_after: Some(Duration::MAX),
                });
            }
            "misconfigured" => {
                return Err(VerifyError::Internal(
                    "introspection refused \"our\"\r\ncredentials: check MCP_AUTH_INTROSPECT_CLIENT_ID"
                        .into(),
                ));
            }
            _ => {}
        }
        let (payload, mac) = token.split_once('.').ok_or(InvalidToken::Malformed)?;
        let expected = blake3::keyed_hash(&KEY, payload.as_bytes()).to_hex();
        if !mcp_auth_core::token::constant_time_eq(expected.as_bytes(), mac.as_bytes()) {
            return Err(InvalidToken::BadSignature.into());
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| InvalidToken::Malformed)?;
        let claims =
            mcp_auth_core::claims::parse_unique_object(&bytes).ok_or(InvalidToken::Malformed)?;
        // Core's identity model, as every verifier uses it; the audience is left to the layer
        // (this fake stands for a custom verifier that does not declare its audiences), and no
        // leeway so that the tests' just-expired tokens are expired.
        let rules = mcp_auth_core::claims::ClaimRules::dangerous_any_audience().leeway_secs(0);
        mcp_auth_core::claims::map_claims(claims, &rules, now())
            .map_err(|e| VerifyError::Invalid(e.reason))
    }
}

/// A server on 127.0.0.1:0, stopped on drop.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub async fn start(app: Router) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Server {
            addr,
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), h).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub fn fake() -> Arc<FakeVerifier> {
    Arc::new(FakeVerifier::default())
}

/// POSTs a JSON-RPC body to an MCP endpoint as protocol 2025-06-18 (session or stateless).
pub async fn post(
    url: &str,
    bearer: &str,
    session: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    post_as("2025-06-18", url, bearer, session, &[], body).await
}

/// POSTs a JSON-RPC body to an MCP endpoint with the given `Mcp-Protocol-Version` and extra
/// headers.
pub async fn post_as(
    version: &str,
    url: &str,
    bearer: &str,
    session: Option<&str>,
    headers: &[(&str, String)],
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut req = client()
        .post(url)
        .bearer_auth(bearer)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json, text/event-stream")
        .header("mcp-protocol-version", version);
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    req.body(body).send().await.unwrap()
}

/// Sends `initialize` (the given body) and `notifications/initialized`; returns the session id
/// (session mode only).
pub async fn initialize(url: &str, bearer: &str, init: &'static str) -> Option<String> {
    let resp = post(url, bearer, None, init).await;
    assert_eq!(resp.status(), 200);
    let id = resp
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let ack = post(
        url,
        bearer,
        id.as_deref(),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .await;
    assert!(ack.status().is_success(), "{}", ack.status());
    id
}

/// The JSON-RPC message of a response (JSON or the last message of an SSE stream).
pub async fn message(resp: reqwest::Response) -> serde_json::Value {
    let ct = resp.headers()[http::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    let text = resp.text().await.unwrap();
    if ct.starts_with("text/event-stream") {
        let data: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .collect();
        serde_json::from_str(data.last().unwrap()).unwrap()
    } else {
        serde_json::from_str(&text).unwrap()
    }
}
