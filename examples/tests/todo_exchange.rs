//! Calling other APIs as the user: the todo binary's `downstream_whoami` tool gets a token for a
//! downstream API from the real test IdP (oidc-provider with an RFC 8693 token-exchange grant and
//! an Entra-style on-behalf-of grant) and calls a second local service with it. The downstream
//! service records the audience of every token it receives and verifies it against the IdP's
//! keys for its own audience.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use base64::Engine as _;
use mcp_auth_idp_harness::{ResourceSpec, TestIdp};
use mcp_auth_jwt::JwtVerifier;
use mcp_auth_jwt::TokenVerifier;
use serde_json::{Value, json};
use support::{Mcp, Todo, body_message, free_port};
use tokio::io::{AsyncBufReadExt, BufReader};

const SCOPES: [&str; 2] = ["todo:read", "todo:write"];
/// The downstream API's audience at the IdP (a logical name, not where it listens).
const NOTES: &str = "https://notes.downstream.test/api";
const NOTES_SCOPES: [&str; 2] = ["notes:read", "notes:write"];
const TOOL: &str = "downstream_whoami";

/// The `aud` of a JWT, read without verification (what the downstream was sent, good or bad).
fn audiences(token: &str) -> Vec<String> {
    let payload = token.split('.').nth(1).unwrap_or("");
    let claims: Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    match &claims["aud"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => vec!["<no aud>".to_owned()],
    }
}

fn claim(token: &str, name: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap_or("");
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .map(|c| c[name].clone())
        .unwrap_or(Value::Null)
}

#[derive(Clone)]
struct DownstreamState {
    verifier: Arc<JwtVerifier>,
    /// The audiences of every token received, in order.
    seen: Arc<Mutex<Vec<Vec<String>>>>,
}

/// The downstream API: answers who the (verified) token names, 401 otherwise.
async fn whoami(State(s): State<DownstreamState>, headers: HeaderMap) -> (StatusCode, String) {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned();
    s.seen.lock().unwrap().push(audiences(&token));
    match s.verifier.verify(&token).await {
        Ok(t) => (
            StatusCode::OK,
            json!({
                "iss": t.issuer(),
                "sub": t.subject(),
                "aud": t.audiences(),
                "scopes": t.scopes(),
                "act": t.claim("act"),
            })
            .to_string(),
        ),
        Err(e) => (StatusCode::UNAUTHORIZED, e.to_string()),
    }
}

/// A second local service on 127.0.0.1 accepting only tokens for [`NOTES`]; stopped on drop.
struct Downstream {
    url: String,
    seen: Arc<Mutex<Vec<Vec<String>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Downstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Downstream {
    async fn start(idp: &TestIdp) -> Downstream {
        Self::start_for(&[idp]).await
    }

    /// Accepting tokens of every one of `idps` (keys found by each issuer's discovery).
    async fn start_for(idps: &[&TestIdp]) -> Downstream {
        let verifier = JwtVerifier::builder()
            .issuers(idps.iter().map(|i| i.issuer().to_owned()))
            .audience(NOTES)
            .build()
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/whoami", get(whoami))
            .with_state(DownstreamState {
                verifier: Arc::new(verifier),
                seen: seen.clone(),
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Downstream {
            url: format!("http://{addr}/whoami"),
            seen,
            task,
        }
    }

    fn seen(&self) -> Vec<Vec<String>> {
        self.seen.lock().unwrap().clone()
    }
}

/// The IdP with R (the MCP server, tokens valid `ttl` s) and the downstream API as resources.
async fn idp_for(resource: &str, ttl: u64) -> TestIdp {
    idp_with(&[resource], ttl).await
}

/// [`idp_for`] with several MCP servers.
async fn idp_with(resources: &[&str], ttl: u64) -> TestIdp {
    let mut specs: Vec<ResourceSpec> = resources
        .iter()
        .map(|r| {
            let mut spec = ResourceSpec::jwt(r, &SCOPES, "RS256");
            spec.ttl_secs = ttl;
            spec
        })
        .collect();
    specs.push(ResourceSpec::jwt(NOTES, &NOTES_SCOPES, "RS256"));
    TestIdp::start(specs).await.expect("test IdP")
}

/// The todo server for `idp` at `port`, exchanging with `extra` settings on top of the defaults
/// (token exchange, the resource-server client, target NOTES with notes:read).
async fn todo(idp: &TestIdp, port: u16, downstream: &str, extra: &[(&str, &str)]) -> Todo {
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let (id, secret) = idp.introspection_client();
    let targets = format!("{NOTES}=notes:read");
    let mut env: Vec<(&str, &str)> = vec![
        ("MCP_AUTH_PROVIDER", "jwt"),
        ("MCP_AUTH_JWT_ISSUER", idp.issuer()),
        ("MCP_AUTH_RESOURCE_URL", &resource),
        ("MCP_AUTH_EXCHANGE_TARGETS", &targets),
        ("MCP_AUTH_EXCHANGE_CLIENT_ID", id),
        ("MCP_AUTH_EXCHANGE_CLIENT_SECRET", secret),
        ("TODO_DOWNSTREAM_URL", downstream),
    ];
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push((k, v));
    }
    Todo::start_on(port, &env).await
}

/// Calls the tool; the JSON-RPC message.
async fn call(mcp: &Mcp) -> Value {
    let resp = mcp.call(TOOL, json!({})).await;
    assert_eq!(resp.status(), 200);
    body_message(resp).await
}

/// Calls the tool, which must succeed; what the downstream answered.
async fn call_ok(mcp: &Mcp) -> Value {
    let text = mcp.call_ok(TOOL, json!({})).await;
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("downstream answer: {text}"))
}

#[tokio::test]
async fn downstream_gets_its_own_audience_and_the_users_subject_never_the_mcp_token() {
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let idp = idp_for(&resource, 300).await;
    let downstream = Downstream::start(&idp).await;
    let server = todo(&idp, port, &downstream.url, &[]).await;
    assert_eq!(
        server.printed("downstream"),
        format!("{NOTES} (TokenExchange)")
    );

    let alice = idp
        .authorization_code(&resource, "todo:read todo:write", "alice")
        .await
        .unwrap();
    assert_eq!(
        audiences(&alice.access_token),
        std::slice::from_ref(&resource)
    );
    let mut mcp = Mcp::new(&resource, &alice.access_token);
    mcp.initialize().await;

    // The tool is listed to a caller with todo:read.
    let listed = body_message(
        mcp.send(json!({"jsonrpc":"2.0","id":5,"method":"tools/list","params":{}}))
            .await,
    )
    .await;
    assert!(
        listed["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == TOOL),
        "{listed}"
    );

    // The downstream verified a token for its own audience naming the user, with the target's
    // scope, acted on by the MCP server's client (RFC 8693 `act`).
    let seen_by_downstream = call_ok(&mcp).await;
    assert_eq!(seen_by_downstream["sub"], "alice");
    assert_eq!(seen_by_downstream["aud"], json!([NOTES]));
    assert_eq!(seen_by_downstream["scopes"], json!(["notes:read"]));
    assert_eq!(
        seen_by_downstream["act"]["sub"],
        idp.introspection_client().0
    );
    assert_eq!(idp.exchange_count().await.unwrap(), 1);

    // The cache holds across calls: the same (subject token, target, scopes), no new exchange.
    assert_eq!(call_ok(&mcp).await["sub"], "alice");
    assert_eq!(idp.exchange_count().await.unwrap(), 1);

    // Another user gets their own downstream token.
    let bob = idp
        .authorization_code(&resource, "todo:read", "bob")
        .await
        .unwrap();
    let mut mcp_bob = Mcp::new(&resource, &bob.access_token);
    mcp_bob.initialize().await;
    assert_eq!(call_ok(&mcp_bob).await["sub"], "bob");
    assert_eq!(idp.exchange_count().await.unwrap(), 2);

    // What the downstream received: three tokens, each for its own audience; never one whose
    // audience is R (the MCP token never left the server).
    let seen = downstream.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    for auds in &seen {
        assert_eq!(auds, &[NOTES.to_owned()]);
        assert!(!auds.contains(&resource));
    }
    server.stop().await;
}

#[tokio::test]
async fn entra_style_on_behalf_of_is_the_same_tool_call() {
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let idp = idp_for(&resource, 300).await;
    let downstream = Downstream::start(&idp).await;
    // Entra names the target by its scopes (`<App ID URI>/.default`), authenticates the client
    // in the body, and takes the token as `assertion` with requested_token_use=on_behalf_of.
    let targets = format!("{NOTES}={NOTES}/.default");
    let endpoint = idp.token_endpoint();
    let server = todo(
        &idp,
        port,
        &downstream.url,
        &[
            ("MCP_AUTH_EXCHANGE_GRANT", "on_behalf_of"),
            ("MCP_AUTH_EXCHANGE_AUTH_METHOD", "client_secret_post"),
            ("MCP_AUTH_EXCHANGE_TARGETS", &targets),
            // Configured, as Entra's must be (its v1 issuer cannot vouch for the endpoint).
            ("MCP_AUTH_EXCHANGE_TOKEN_ENDPOINT", &endpoint),
        ],
    )
    .await;
    assert_eq!(
        server.printed("downstream"),
        format!("{NOTES} (OnBehalfOf)")
    );
    let user = idp
        .authorization_code(&resource, "todo:read", "carol")
        .await
        .unwrap();
    let mut mcp = Mcp::new(&resource, &user.access_token);
    mcp.initialize().await;
    let answer = call_ok(&mcp).await;
    assert_eq!(answer["sub"], "carol");
    assert_eq!(answer["aud"], json!([NOTES]));
    // `.default`: every scope the downstream API has.
    assert_eq!(answer["scopes"], json!(NOTES_SCOPES));
    assert_eq!(idp.exchange_count().await.unwrap(), 1);
    assert_eq!(downstream.seen(), [vec![NOTES.to_owned()]]);
    server.stop().await;
}

#[tokio::test]
async fn the_cache_never_outlives_the_subject_token() {
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    // MCP tokens live 4 s; the verifier's 30 s leeway still lets them through the layer after.
    let idp = idp_for(&resource, 4).await;
    let downstream = Downstream::start(&idp).await;
    let server = todo(&idp, port, &downstream.url, &[]).await;

    let token = idp
        .client_credentials(&resource, "todo:read")
        .await
        .unwrap()
        .access_token;
    let exp = claim(&token, "exp").as_u64().unwrap();
    let mut mcp = Mcp::new(&resource, &token);
    mcp.initialize().await;
    // The machine's token carries sub = its client id (oidc-provider's JWT client credentials).
    assert_eq!(call_ok(&mcp).await["sub"], idp.m2m_client().0);
    assert_eq!(call_ok(&mcp).await["aud"], json!([NOTES]));
    assert_eq!(
        idp.exchange_count().await.unwrap(),
        1,
        "second call from the cache"
    );

    // Past the subject token's exp (the exchanged one lives 300 s): no cached token is served,
    // and an expired subject token is not sent to the IdP either.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if exp + 1 > now {
        tokio::time::sleep(Duration::from_secs(exp + 1 - now)).await;
    }
    let msg = call(&mcp).await;
    assert_eq!(
        msg["error"]["data"]["exchange_error"], "subject_expired",
        "{msg}"
    );
    assert_eq!(idp.exchange_count().await.unwrap(), 1);
    assert_eq!(downstream.seen().len(), 2);
    server.stop().await;
}

/// Reads `server`'s log until a line contains `needle` (bounded), returning everything read.
async fn log_until(stderr: tokio::process::ChildStderr, needle: &str) -> String {
    let mut lines = BufReader::new(stderr).lines();
    let mut all = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(line)) = lines.next_line().await {
            all.push_str(&line);
            all.push('\n');
            if line.contains(needle) {
                break;
            }
        }
    })
    .await;
    all
}

#[tokio::test]
async fn idp_faults_map_as_specified() {
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let bad_port = free_port();
    let bad_resource = format!("http://127.0.0.1:{bad_port}/mcp");
    let mut idp = idp_with(&[&resource, &bad_resource], 300).await;
    let downstream = Downstream::start(&idp).await;

    // Our credentials refused: an internal MCP error carrying only the code, and an error log
    // naming the variable to fix, with no token in it.
    let mut bad = todo(
        &idp,
        bad_port,
        &downstream.url,
        &[("MCP_AUTH_EXCHANGE_CLIENT_SECRET", "not-the-secret")],
    )
    .await;
    let stderr = bad.take_stderr().unwrap();
    let token = idp
        .client_credentials(&bad_resource, "todo:read")
        .await
        .unwrap()
        .access_token;
    let mut mcp = Mcp::new(&bad_resource, &token);
    mcp.initialize().await;
    let msg = call(&mcp).await;
    assert_eq!(
        msg["error"]["data"]["exchange_error"], "credentials_refused",
        "{msg}"
    );
    assert_eq!(msg["error"]["code"], -32603, "{msg}");
    assert!(!msg.to_string().contains("not-the-secret"), "{msg}");
    let log = log_until(stderr, "MCP_AUTH_EXCHANGE_CLIENT_SECRET").await;
    assert!(
        log.contains("refused our client credentials")
            && log.contains("MCP_AUTH_EXCHANGE_CLIENT_SECRET"),
        "{log}"
    );
    assert!(!log.contains(&token), "a token in the log: {log}");
    assert!(
        !log.contains("not-the-secret"),
        "the secret in the log: {log}"
    );
    assert_eq!(idp.exchange_count().await.unwrap(), 0);
    bad.stop().await;

    let server = todo(&idp, port, &downstream.url, &[]).await;
    let alice = idp
        .authorization_code(&resource, "todo:read", "alice")
        .await
        .unwrap();
    let dave = idp
        .authorization_code(&resource, "todo:read", "dave")
        .await
        .unwrap();
    let mut mcp = Mcp::new(&resource, &alice.access_token);
    mcp.initialize().await;
    assert_eq!(call_ok(&mcp).await["sub"], "alice");

    // The IdP goes down. Alice's cached downstream token still serves; Dave's exchange cannot
    // happen: a typed "unavailable", which the tool returns as an in-band error.
    idp.stop().await.unwrap();
    assert_eq!(call_ok(&mcp).await["sub"], "alice");
    let mut mcp_dave = Mcp::new(&resource, &dave.access_token);
    mcp_dave.initialize().await;
    let msg = call(&mcp_dave).await;
    assert_eq!(
        msg["error"]["data"]["exchange_error"], "unavailable",
        "{msg}"
    );
    assert_eq!(msg["error"]["code"], -32603, "{msg}");
    assert_eq!(downstream.seen().len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn with_two_issuers_each_token_is_exchanged_at_its_own_idp() {
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let idp_a = idp_for(&resource, 300).await;
    let idp_b = idp_for(&resource, 300).await;
    let downstream = Downstream::start_for(&[&idp_a, &idp_b]).await;
    let issuers = format!("{} {}", idp_a.issuer(), idp_b.issuer());
    // No token endpoint configured: each issuer's metadata names its own.
    let server = todo(
        &idp_a,
        port,
        &downstream.url,
        &[("MCP_AUTH_JWT_ISSUER", &issuers)],
    )
    .await;

    for (idp, user) in [(&idp_a, "erin"), (&idp_b, "frank")] {
        let token = idp
            .authorization_code(&resource, "todo:read", user)
            .await
            .unwrap();
        let mut mcp = Mcp::new(&resource, &token.access_token);
        mcp.initialize().await;
        let answer = call_ok(&mcp).await;
        assert_eq!(answer["sub"], user);
        assert_eq!(answer["iss"], idp.issuer(), "{answer}");
    }
    // Each IdP exchanged exactly its own user's token.
    assert_eq!(idp_a.exchange_count().await.unwrap(), 1);
    assert_eq!(idp_b.exchange_count().await.unwrap(), 1);
    server.stop().await;
}
