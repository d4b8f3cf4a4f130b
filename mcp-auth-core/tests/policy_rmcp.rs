//! The MCP-aware policy in front of a real rmcp streamable-HTTP server, in session and stateless
//! mode: per-tool scopes, claims predicates, tools/list filtering, parser-differential bodies and
//! session takeover.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use common::{Server, client, fake, initialize, message, mint_claims, now, post};
use http::header;
use mcp_auth_core::policy::{McpPolicy, Rule};
use mcp_auth_core::rmcp_ext::Auth;
use mcp_auth_core::testkit::parse_challenge;
use mcp_auth_core::{AccessToken, AuthProvider, RemoteAuthProvider};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, schemars, tool, tool_handler, tool_router};

const R: &str = "http://127.0.0.1:8000/mcp";

#[derive(Clone)]
struct Todo {
    tool_router: ToolRouter<Self>,
    writes: Arc<AtomicUsize>,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct AddTodo {
    text: String,
}

#[tool_router]
impl Todo {
    #[tool(description = "List todos")]
    fn list_todos(&self, auth: Auth) -> Result<String, ErrorData> {
        auth.require_scopes(&["todo:read"])?;
        Ok("[]".into())
    }

    #[tool(description = "Add a todo")]
    fn add_todo(
        &self,
        auth: Auth,
        Parameters(p): Parameters<AddTodo>,
    ) -> Result<String, ErrorData> {
        auth.require_scopes(&["todo:write"])?;
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(format!("added {}", p.text))
    }

    #[tool(description = "Who am I")]
    fn whoami(&self, token: AccessToken) -> String {
        format!(
            "{}|{}",
            token.subject().unwrap_or(""),
            token.client_id().unwrap_or("")
        )
    }

    #[tool(description = "Tenant report")]
    fn tenant_report(&self) -> String {
        "report".into()
    }

    #[tool(description = "Unlisted in the policy")]
    fn secret_tool(&self) -> String {
        "secret".into()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Todo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

struct App {
    srv: Server,
    writes: Arc<AtomicUsize>,
}

async fn app(session_mode: bool, default_deny: bool) -> App {
    app_with(session_mode, default_deny, false).await
}

/// Stands in for a parser difference: rewrites a `list_todos` call into an `add_todo` call after
/// the policy layer has decided on `list_todos`.
async fn swap_tool(req: axum::extract::Request) -> axum::extract::Request {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024).await.unwrap();
    let mut msg: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    if msg["params"]["name"] == "list_todos" {
        msg["params"]["name"] = serde_json::json!("add_todo");
        msg["params"]["arguments"] = serde_json::json!({"text": "smuggled"});
    }
    axum::extract::Request::from_parts(parts, axum::body::Body::from(msg.to_string()))
}

/// [`app`]; with `swap`, [`swap_tool`] sits between the policy layer and rmcp.
async fn app_with(session_mode: bool, default_deny: bool, swap: bool) -> App {
    let provider = RemoteAuthProvider::builder(fake())
        .resource_url(R)
        .authorization_server("https://idp.example.com")
        .scopes_supported(["todo:read", "todo:write"])
        .build()
        .unwrap();
    let policy = McpPolicy::builder()
        .tool("list_todos", Rule::scopes(["todo:read"]))
        .tool("add_todo", Rule::scopes(["todo:write"]))
        .tool("whoami", Rule::authenticated())
        .tool(
            "tenant_report",
            Rule::scopes(["todo:read"]).require_claim("tenant", "acme"),
        )
        .default_deny(default_deny)
        .filter_lists(true)
        .max_body_bytes(64 * 1024)
        .build(&provider)
        .unwrap();
    let writes = Arc::new(AtomicUsize::new(0));
    let w = writes.clone();
    let todo = Todo {
        tool_router: Todo::tool_router(),
        writes: w,
    };
    let missing = policy.report_router(&todo.tool_router);
    assert_eq!(missing, vec!["secret_tool".to_string()]);
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(session_mode)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_max_request_body_bytes(64 * 1024);
    let service: StreamableHttpService<Todo, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(todo.clone()), Default::default(), config);
    let mut mcp = Router::new().nest_service("/mcp", service);
    if swap {
        mcp = mcp.layer(axum::middleware::map_request(swap_tool));
    }
    let app = mcp
        .layer(policy.layer())
        .layer(provider.layer())
        .merge(provider.routes());
    App {
        srv: Server::start(app).await,
        writes,
    }
}

fn token(scopes: &str, sub: &str, extra: serde_json::Value) -> String {
    let mut claims = serde_json::json!({
        "sub": sub, "client_id": "client-1", "iss": "https://idp.example.com",
        "aud": R, "scope": scopes, "exp": now() + 3600,
    });
    if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    mint_claims(claims)
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

fn call(name: &str, args: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"{name}","arguments":{args}}}}}"#
    )
}

/// Initializes (both modes) and returns the session id (session mode only).
async fn open_session(url: &str, bearer: &str) -> Option<String> {
    initialize(url, bearer, INIT).await
}

fn text_of(msg: &serde_json::Value) -> String {
    msg["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn assert_forbidden(resp: &reqwest::Response, scope: &str) {
    assert_eq!(resp.status(), 403);
    let www = resp.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
    let params = parse_challenge(www).unwrap();
    assert_eq!(params[0].value, "insufficient_scope");
    let s = params
        .iter()
        .find(|p| p.name == "scope")
        .map(|p| p.value.as_str());
    assert_eq!(s, Some(scope), "{www}");
}

async fn per_tool_scopes(session_mode: bool) {
    let a = app(session_mode, false).await;
    let url = a.srv.url("/mcp");
    let reader = token("todo:read", "alice", serde_json::json!({}));
    let writer = token("todo:read todo:write", "alice", serde_json::json!({}));
    let sid_r = open_session(&url, &reader).await;
    let sid_w = open_session(&url, &writer).await;

    let resp = post(
        &url,
        &reader,
        sid_r.as_deref(),
        call("add_todo", r#"{"text":"x"}"#),
    )
    .await;
    assert_forbidden(&resp, "todo:write");
    assert_eq!(a.writes.load(Ordering::SeqCst), 0);

    let ok = post(&url, &reader, sid_r.as_deref(), call("list_todos", "{}")).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(text_of(&message(ok).await), "[]");

    let ok = post(
        &url,
        &writer,
        sid_w.as_deref(),
        call("add_todo", r#"{"text":"milk"}"#),
    )
    .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(text_of(&message(ok).await), "added milk");
    assert_eq!(a.writes.load(Ordering::SeqCst), 1);

    let who = post(&url, &reader, sid_r.as_deref(), call("whoami", "{}")).await;
    assert_eq!(text_of(&message(who).await), "alice|client-1");

    // Claims predicate: another tenant is refused even with the scope.
    let other = token(
        "todo:read",
        "alice",
        serde_json::json!({"tenant": "globex"}),
    );
    let acme = token("todo:read", "alice", serde_json::json!({"tenant": "acme"}));
    let sid_o = open_session(&url, &other).await;
    let sid_a = open_session(&url, &acme).await;
    let resp = post(&url, &other, sid_o.as_deref(), call("tenant_report", "{}")).await;
    assert_forbidden(&resp, "todo:read");
    let ok = post(&url, &acme, sid_a.as_deref(), call("tenant_report", "{}")).await;
    assert_eq!(text_of(&message(ok).await), "report");

    // tools/list is filtered to what the caller may call.
    let list = r#"{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{}}"#;
    let names = |msg: serde_json::Value| -> Vec<String> {
        let mut v: Vec<String> = msg["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    let r_tools = names(message(post(&url, &reader, sid_r.as_deref(), list).await).await);
    assert_eq!(r_tools, vec!["list_todos", "secret_tool", "whoami"]);
    let w_tools = names(message(post(&url, &writer, sid_w.as_deref(), list).await).await);
    assert_eq!(
        w_tools,
        vec!["add_todo", "list_todos", "secret_tool", "whoami"]
    );
    a.srv.stop().await;
}

#[tokio::test]
async fn per_tool_scopes_in_session_mode() {
    per_tool_scopes(true).await;
}

#[tokio::test]
async fn per_tool_scopes_in_stateless_mode() {
    per_tool_scopes(false).await;
}

#[tokio::test]
async fn default_deny_refuses_tools_without_a_rule() {
    let a = app(false, true).await;
    let url = a.srv.url("/mcp");
    let t = token("todo:read todo:write", "alice", serde_json::json!({}));
    let sid = open_session(&url, &t).await;
    let resp = post(&url, &t, sid.as_deref(), call("secret_tool", "{}")).await;
    assert_eq!(resp.status(), 403);
    // Refused by default-deny (no rule names the tool), not for a missing scope: the challenge
    // says so and points at the metadata.
    let www = resp.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
    let params = parse_challenge(www).unwrap();
    let param = |name: &str| {
        params
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.value.as_str())
    };
    assert_eq!(param("error"), Some("insufficient_scope"), "{www}");
    assert_eq!(
        param("error_description"),
        Some(mcp_auth_core::challenge::POLICY_DENIED_DESCRIPTION),
        "{www}"
    );
    assert_eq!(
        param("resource_metadata"),
        Some("http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp"),
        "{www}"
    );
    let ok = post(&url, &t, sid.as_deref(), call("whoami", "{}")).await;
    assert_eq!(ok.status(), 200);
    a.srv.stop().await;
}

#[tokio::test]
async fn parser_differential_bodies_never_reach_a_protected_tool() {
    let a = app(true, false).await;
    let url = a.srv.url("/mcp");
    let reader = token("todo:read", "alice", serde_json::json!({}));
    let sid = open_session(&url, &reader).await;
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    let cases: Vec<(&str, String, u16)> = vec![
        (
            "duplicate name",
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"list_todos","name":"add_todo","arguments":{"text":"x"}}}"#.into(),
            400,
        ),
        (
            "duplicate method",
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","method":"tools/call","params":{"name":"add_todo","arguments":{"text":"x"}}}"#.into(),
            400,
        ),
        (
            "duplicate params",
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"list_todos"},"params":{"name":"add_todo","arguments":{"text":"x"}}}"#.into(),
            400,
        ),
        ("batch", format!("[{}]", call("add_todo", r#"{"text":"x"}"#)), 400),
        (
            "unicode-escaped name",
            call("\\u0061dd_todo", r#"{"text":"x"}"#),
            403,
        ),
        ("deeply nested", call("add_todo", &format!(r#"{{"text":"x","n":{deep}}}"#)), 403),
        (
            "just over the limit",
            call("add_todo", &format!(r#"{{"text":"{}"}}"#, "x".repeat(64 * 1024))),
            413,
        ),
        ("not JSON", "tools/call add_todo".into(), 400),
    ];
    for (name, body, status) in cases {
        let resp = post(&url, &reader, sid.as_deref(), body).await;
        assert_eq!(resp.status().as_u16(), status, "{name}");
    }
    // A non-JSON content type with a JSON body is still checked.
    let resp = client()
        .post(&url)
        .bearer_auth(&reader)
        .header(header::CONTENT_TYPE, "text/plain")
        .header(header::ACCEPT, "application/json, text/event-stream")
        .header("mcp-session-id", sid.as_deref().unwrap())
        .body(call("add_todo", r#"{"text":"x"}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // Mcp-Method / Mcp-Name headers disagreeing with the body are not trusted.
    let resp = client()
        .post(&url)
        .bearer_auth(&reader)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream")
        .header("mcp-session-id", sid.as_deref().unwrap())
        .header("mcp-method", "tools/call")
        .header("mcp-name", "list_todos")
        .body(call("add_todo", r#"{"text":"x"}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(a.writes.load(Ordering::SeqCst), 0, "no write ever ran");
    a.srv.stop().await;
}

#[tokio::test]
async fn sessions_are_bound_to_their_principal() {
    let a = app(true, false).await;
    let url = a.srv.url("/mcp");
    let alice = token("todo:read todo:write", "alice", serde_json::json!({}));
    let bob = token("todo:read todo:write", "bob", serde_json::json!({}));
    let sid = open_session(&url, &alice).await;
    assert!(sid.is_some(), "session mode hands out a session id");

    let takeover = post(
        &url,
        &bob,
        sid.as_deref(),
        call("add_todo", r#"{"text":"evil"}"#),
    )
    .await;
    assert_eq!(takeover.status(), 404);
    let invented = post(&url, &bob, Some("not-a-session"), call("whoami", "{}")).await;
    assert_eq!(invented.status(), 404);
    assert_eq!(a.writes.load(Ordering::SeqCst), 0);

    // A refreshed token of the same principal (new token, same iss/sub/client) keeps working.
    let refreshed = mint_claims(serde_json::json!({
        "sub": "alice", "client_id": "client-1", "iss": "https://idp.example.com",
        "aud": R, "scope": "todo:read todo:write", "exp": now() + 7200, "jti": "refreshed",
    }));
    assert_ne!(refreshed, alice);
    let ok = post(
        &url,
        &refreshed,
        sid.as_deref(),
        call("add_todo", r#"{"text":"ok"}"#),
    )
    .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(a.writes.load(Ordering::SeqCst), 1);
    a.srv.stop().await;
}

/// Something between the policy layer and rmcp turns an allowed `list_todos` call into
/// `add_todo`: the policy layer let `list_todos` through for a read-only token, but the `Auth`
/// extractor re-checks the policy for the tool rmcp actually runs and refuses in-band.
async fn in_tool_recheck_catches_a_parser_difference(session_mode: bool) {
    let a = app_with(session_mode, false, true).await;
    let url = a.srv.url("/mcp");
    let reader = token("todo:read", "carol", serde_json::json!({}));
    let sid = open_session(&url, &reader).await;
    let resp = post(&url, &reader, sid.as_deref(), call("list_todos", "{}")).await;
    assert_eq!(
        resp.status(),
        200,
        "the layer saw list_todos and allowed it"
    );
    let msg = message(resp).await;
    assert_eq!(msg["error"]["code"], -32600, "{msg}");
    assert_eq!(
        msg["error"]["message"], "insufficient scope for this tool",
        "{msg}"
    );
    assert_eq!(
        a.writes.load(Ordering::SeqCst),
        0,
        "the write tool never ran"
    );

    // The same swap for a writer runs the write tool: the re-check refuses only what the
    // policy refuses.
    let writer = token("todo:read todo:write", "dave", serde_json::json!({}));
    let sid = open_session(&url, &writer).await;
    let resp = post(&url, &writer, sid.as_deref(), call("list_todos", "{}")).await;
    assert_eq!(resp.status(), 200);
    let msg = message(resp).await;
    assert_eq!(text_of(&msg), "added smuggled", "{msg}");
    assert_eq!(a.writes.load(Ordering::SeqCst), 1);
    a.srv.stop().await;
}

#[tokio::test]
async fn in_tool_recheck_catches_a_parser_difference_in_session_mode() {
    in_tool_recheck_catches_a_parser_difference(true).await;
}

#[tokio::test]
async fn in_tool_recheck_catches_a_parser_difference_in_stateless_mode() {
    in_tool_recheck_catches_a_parser_difference(false).await;
}
