//! Fail closed through the whole `todo` binary (default-deny): a valid token reaches only
//! discovery, housekeeping and what its rules allow, whatever method it sends; lists show the
//! write tools to every caller so that step-up is reachable; sessions cannot be read or ended
//! with another principal's token.
//!
//! The issuer is a local server publishing a discovery document and a JWKS, minting tokens of
//! exactly the shape each case needs (a token with no scope at all, two distinct users).

mod support;

use std::time::Duration;

use mcp_auth_jwt::dev::TokenSpec;
use serde_json::{Value, json};
use support::{Issuer, Mcp, Todo, body_message, www};

const DENIED: &str = mcp_auth_core::challenge::POLICY_DENIED_DESCRIPTION;
const SCOPE: &str = mcp_auth_core::challenge::INSUFFICIENT_SCOPE_DESCRIPTION;

/// A token of `idp` for the todo server, with `scopes`.
fn token(idp: &Issuer, todo: &Todo, subject: &str, scopes: &[&str]) -> String {
    idp.mint(
        TokenSpec::new(subject)
            .client_id("client-a")
            .audience(todo.url())
            .scopes(scopes.iter().copied()),
    )
}

async fn todo_with(idp: &Issuer) -> Todo {
    Todo::start(&[
        ("MCP_AUTH_PROVIDER", "jwt"),
        ("MCP_AUTH_JWT_ISSUER", &idp.origin),
    ])
    .await
}

/// The full 403 challenge, in the wire contract's parameter order.
fn forbidden(todo: &Todo, description: &str, scope: &str) -> String {
    let scope = if scope.is_empty() {
        String::new()
    } else {
        format!(", scope=\"{scope}\"")
    };
    format!(
        "Bearer error=\"insufficient_scope\", error_description=\"{description}\"{scope}, \
         resource_metadata=\"{}\"",
        todo.printed("metadata")
    )
}

fn rpc(method: &str, params: Value) -> Value {
    json!({"jsonrpc":"2.0","id":5,"method":method,"params":params})
}

fn names(msg: &Value) -> Vec<String> {
    let mut v: Vec<String> = msg["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools: {msg}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_token_without_scopes_reaches_only_discovery_and_housekeeping() {
    let idp = Issuer::start().await;
    let todo = todo_with(&idp).await;
    let nothing = token(&idp, &todo, "alice", &[]);
    let mut mcp = Mcp::new(&todo.url(), &nothing);
    mcp.initialize().await;

    // Open to any valid token.
    let pong = mcp.send(rpc("ping", json!({}))).await;
    assert_eq!(pong.status(), 200);
    assert!(body_message(pong).await.get("result").is_some());
    let listed = body_message(mcp.send(rpc("tools/list", json!({}))).await).await;
    assert_eq!(
        names(&listed),
        vec!["add_todo", "complete_todo", "whoami"],
        "list_todos is hidden from a token that may not call it; the write tools stay listed"
    );
    assert!(mcp.call_ok("whoami", json!({})).await.contains("alice"));

    // Everything else needs a rule, and the todo server has none for these.
    let denied = forbidden(&todo, DENIED, "");
    for (what, body) in [
        ("admin/reset", rpc("admin/reset", json!({}))),
        (
            "completion/complete of a prompt",
            rpc(
                "completion/complete",
                json!({"ref":{"type":"ref/prompt","name":"p"},"argument":{"name":"a","value":""}}),
            ),
        ),
        (
            "completion/complete of a resource",
            rpc(
                "completion/complete",
                json!({"ref":{"type":"ref/resource","uri":"todo://x"},"argument":{"name":"a","value":""}}),
            ),
        ),
        (
            "resources/subscribe",
            rpc("resources/subscribe", json!({"uri":"todo://x"})),
        ),
        (
            "resources/unsubscribe",
            rpc("resources/unsubscribe", json!({"uri":"todo://x"})),
        ),
        (
            "resources/read",
            rpc("resources/read", json!({"uri":"file:///etc/passwd"})),
        ),
        (
            "resources/directory/read",
            rpc("resources/directory/read", json!({"uri":"file:///"})),
        ),
        (
            "skills/get",
            rpc("skills/get", json!({"uri":"skill://x/SKILL.md"})),
        ),
        (
            "subscriptions/listen",
            rpc(
                "subscriptions/listen",
                json!({"notifications":{"resourceSubscriptions":["todo://x"]}}),
            ),
        ),
        ("prompts/get", rpc("prompts/get", json!({"name":"p"}))),
        ("tasks/get", rpc("tasks/get", json!({"taskId":"t"}))),
        ("tasks/cancel", rpc("tasks/cancel", json!({"taskId":"t"}))),
    ] {
        let resp = mcp.send(body).await;
        assert_eq!(resp.status(), 403, "{what}");
        assert_eq!(www(&resp), denied, "{what}");
    }
    // A tool it may not call: the step-up challenge names the scope.
    let resp = mcp.call("list_todos", json!({})).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(www(&resp), forbidden(&todo, SCOPE, "todo:read"));
    todo.stop().await;
}

#[tokio::test]
async fn a_reader_sees_the_write_tools_and_meets_the_step_up_challenge() {
    let todo = Todo::start(&[]).await;
    let ro = todo.printed("token (read-only");
    let mut reader = Mcp::new(&todo.url(), &ro);
    reader.initialize().await;
    // What the Inspector CLI does: look the tool up in tools/list, then call it.
    let listed = body_message(reader.send(rpc("tools/list", json!({}))).await).await;
    let tool = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "add_todo")
        .cloned()
        .expect("add_todo is listed to a reader");
    assert!(tool["inputSchema"].is_object());
    let resp = reader.call("add_todo", json!({"text": "milk"})).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(www(&resp), forbidden(&todo, SCOPE, "todo:write"));
    todo.stop().await;
}

/// POST `initialize` + `notifications/initialized` with `token`; the session id.
async fn open_session(url: &str, token: &str) -> String {
    let http = support::http();
    let post = |body: Value, session: Option<String>| {
        let mut req = http
            .post(url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18");
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        req.json(&body).send()
    };
    let resp = post(
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
            "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let sid = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = resp.text().await;
    let ack = post(
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        Some(sid.clone()),
    )
    .await
    .unwrap();
    assert!(ack.status().is_success());
    sid
}

#[tokio::test]
async fn another_principal_can_neither_listen_on_nor_end_a_session() {
    let idp = Issuer::start().await;
    let todo = todo_with(&idp).await;
    let url = todo.url();
    let alice = token(&idp, &todo, "alice", &["todo:read", "todo:write"]);
    let bob = token(&idp, &todo, "bob", &["todo:read", "todo:write"]);
    let sid = open_session(&url, &alice).await;
    let http = support::http();

    // GET: the server-to-client SSE stream of alice's session.
    let stream = tokio::time::timeout(
        Duration::from_secs(5),
        http.get(&url)
            .bearer_auth(&bob)
            .header("accept", "text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .header("mcp-session-id", &sid)
            .send(),
    )
    .await
    .expect("answered at once, not streamed")
    .unwrap();
    assert_eq!(stream.status(), 404, "bob listens on alice's session");
    let msg: Value = serde_json::from_str(&stream.text().await.unwrap()).unwrap();
    assert_eq!(msg["error"]["message"], "Session not found");

    // DELETE: ending alice's session.
    let end = http
        .delete(&url)
        .bearer_auth(&bob)
        .header("mcp-protocol-version", "2025-06-18")
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(end.status(), 404, "bob ends alice's session");

    // Alice's session is intact.
    let resp = http
        .post(&url)
        .bearer_auth(&alice)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .header("mcp-session-id", &sid)
        .json(&json!({"jsonrpc":"2.0","id":3,"method":"tools/call",
            "params":{"name":"whoami","arguments":{}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let who = body_message(resp).await;
    assert!(
        who["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("alice")),
        "{who}"
    );
    todo.stop().await;
}
