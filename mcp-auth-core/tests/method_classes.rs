//! Fail closed everywhere: the three method classes under default-deny (open discovery and
//! housekeeping, methods on named targets decided by every target they name, every other method
//! only with an explicit rule), every list filtered in JSON and SSE answers (CRLF framing
//! included, unparseable answers refused), and CORS preflights answered by the bearer layer
//! itself.
//!
//! The MCP server behind the layers is a stub that answers every method and counts what reaches
//! it, so each case can assert that a refused request never ran.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{any, post};
use common::{Server, client, fake, mint_claims, now, post as post_body};
use http::header;
use mcp_auth_core::challenge::{INSUFFICIENT_SCOPE_DESCRIPTION, POLICY_DENIED_DESCRIPTION};
use mcp_auth_core::policy::{McpPolicy, Rule};
use mcp_auth_core::{AuthProvider, RemoteAuthProvider};
use serde_json::{Value, json};

const R: &str = "http://127.0.0.1:8000/mcp";
const META: &str = "http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp";

fn provider() -> RemoteAuthProvider {
    RemoteAuthProvider::builder(fake())
        .resource_url(R)
        .authorization_server("https://idp.example.com")
        .scopes_supported(["todo:read", "todo:write"])
        .build()
        .unwrap()
}

fn policy(provider: &RemoteAuthProvider, default_deny: bool) -> McpPolicy {
    McpPolicy::builder()
        .tool("list_todos", Rule::scopes(["todo:read"]))
        .tool(
            "add_todo",
            Rule::scopes(["todo:write"]).listed_when_refused(),
        )
        .tool("whoami", Rule::authenticated())
        .resource("todo://acme/*", Rule::scopes(["todo:read"]))
        .resource("todo://admin/*", Rule::scopes(["todo:write"]))
        .resource(
            "todo://tenant/*",
            Rule::scopes(["todo:read"]).require_claim("tenant", "acme"),
        )
        .prompt("greet", Rule::scopes(["todo:read"]))
        .method("tasks/get", Rule::authenticated())
        .method("admin/reset", Rule::scopes(["todo:write"]))
        .default_deny(default_deny)
        .filter_lists(true)
        .build(provider)
        .unwrap()
}

fn token(scopes: &str) -> String {
    mint_claims(json!({
        "sub": "alice", "client_id": "client-1", "iss": "https://idp.example.com",
        "aud": R, "scope": scopes, "exp": now() + 3600,
    }))
}

/// Canned list results, with entries the policy must sort out.
fn list_result(method: &str, v2026: bool) -> Value {
    let mut result = match method {
        "tools/list" => json!({"tools": [
            {"name": "list_todos"}, {"name": "add_todo"}, {"name": "whoami"}, {"name": "secret"}]}),
        "resources/list" => json!({"resources": [
            {"uri": "todo://acme/1", "name": "a"}, {"uri": "todo://admin/1", "name": "b"},
            {"uri": "file:///etc/passwd", "name": "c"}]}),
        "resources/templates/list" => json!({"resourceTemplates": [
            {"uriTemplate": "todo://acme/{id}", "name": "a"},
            {"uriTemplate": "file:///{path}", "name": "c"}]}),
        "prompts/list" => json!({"prompts": [{"name": "greet"}, {"name": "other"}]}),
        "skills/list" => json!({"skills": [
            {"uri": "todo://acme/skill/SKILL.md"}, {"uri": "skill://other/SKILL.md"}]}),
        _ => unreachable!("{method}"),
    };
    if v2026 {
        result["resultType"] = json!("complete");
        result["cacheScope"] = json!("public");
        result["ttlMs"] = json!(60000);
    }
    result
}

/// The stub MCP server: lists answered per `x-answer` (json, sse, sse-crlf, garbage-sse,
/// garbage-json, v2026), everything else answered `{"ran": method}`; counts what ran.
fn stub(ran: Arc<AtomicUsize>) -> Router {
    let h = move |headers: HeaderMap, body: Bytes| {
        let ran = ran.clone();
        async move {
            let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let method = msg["method"].as_str().unwrap_or("").to_owned();
            let answer = headers
                .get("x-answer")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("json")
                .to_owned();
            let is_list = method.ends_with("/list") && method != "roots/list";
            if !is_list {
                ran.fetch_add(1, Ordering::SeqCst);
                let reply = json!({"jsonrpc":"2.0","id":msg["id"],"result":{"ran": method}});
                return (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    reply.to_string(),
                );
            }
            let reply = json!({"jsonrpc":"2.0","id":msg["id"],
                "result": list_result(&method, answer == "v2026")});
            let pretty = serde_json::to_string_pretty(&reply).unwrap();
            let (ct, body) = match answer.as_str() {
                "sse" => (
                    "text/event-stream",
                    format!(
                        "id: 0\nretry: 3000\ndata: \n\n: keep-alive\n\nevent: message\nid: 1\ndata: {reply}\n\n"
                    ),
                ),
                // CRLF line ends and the message split over several data lines.
                "sse-crlf" => (
                    "text/event-stream",
                    format!(
                        "id: 0\r\ndata:\r\n\r\nevent: message\r\n{}\r\n\r\n",
                        pretty
                            .lines()
                            .map(|l| format!("data: {l}"))
                            .collect::<Vec<_>>()
                            .join("\r\n")
                    ),
                ),
                "garbage-sse" => ("text/event-stream", format!("dta: {reply}\n\n")),
                "garbage-json" => ("application/json", format!("{reply} trailing")),
                _ => ("application/json", reply.to_string()),
            };
            (StatusCode::OK, [(header::CONTENT_TYPE, ct)], body)
        }
    };
    Router::new().route("/mcp", post(h))
}

struct App {
    srv: Server,
    ran: Arc<AtomicUsize>,
}

async fn app(default_deny: bool) -> App {
    let provider = provider();
    let policy = policy(&provider, default_deny);
    let ran = Arc::new(AtomicUsize::new(0));
    let app = stub(ran.clone())
        .layer(policy.layer())
        .layer(provider.layer());
    App {
        srv: Server::start(app).await,
        ran,
    }
}

fn rpc(method: &str, params: Value) -> String {
    json!({"jsonrpc":"2.0","id":7,"method":method,"params":params}).to_string()
}

/// The full challenge of a 403, in the wire contract's parameter order.
fn forbidden(description: &str, scope: &str) -> String {
    let scope = if scope.is_empty() {
        String::new()
    } else {
        format!(", scope=\"{scope}\"")
    };
    format!(
        "Bearer error=\"insufficient_scope\", error_description=\"{description}\"{scope}, \
         resource_metadata=\"{META}\""
    )
}

#[derive(Debug)]
enum Want {
    /// Reached the server.
    Ran,
    /// 403 with exactly this challenge.
    Refused(String),
    /// This status, the server not reached.
    Status(u16),
}

async fn expect(a: &App, bearer: &str, name: &str, body: String, want: Want) {
    let before = a.ran.load(Ordering::SeqCst);
    let resp = post_body(&a.srv.url("/mcp"), bearer, None, body).await;
    let status = resp.status().as_u16();
    let www = resp
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let ran = a.ran.load(Ordering::SeqCst) - before;
    match want {
        Want::Ran => {
            assert_eq!((status, ran), (200, 1), "{name}: {www:?}");
        }
        Want::Refused(challenge) => {
            assert_eq!(status, 403, "{name}");
            assert_eq!(www.as_deref(), Some(challenge.as_str()), "{name}");
            assert_eq!(ran, 0, "{name} reached the server");
        }
        Want::Status(s) => {
            assert_eq!(status, s, "{name}");
            assert_eq!(ran, 0, "{name} reached the server");
        }
    }
}

#[tokio::test]
async fn default_deny_covers_every_method_class() {
    let a = app(true).await;
    let none = token("");
    let reader = token("todo:read");
    let writer = token("todo:read todo:write");
    let denied = || Want::Refused(forbidden(POLICY_DENIED_DESCRIPTION, ""));
    let scope = |s: &str| Want::Refused(forbidden(INSUFFICIENT_SCOPE_DESCRIPTION, s));

    // (a) Discovery and housekeeping: any valid token, no rule needed.
    for (name, body) in [
        (
            "initialize",
            rpc(
                "initialize",
                json!({"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}),
            ),
        ),
        ("ping", rpc("ping", json!({}))),
        ("server/discover", rpc("server/discover", json!({}))),
        (
            "logging/setLevel",
            rpc("logging/setLevel", json!({"level":"info"})),
        ),
        (
            "notification",
            json!({"jsonrpc":"2.0","method":"notifications/initialized"}).to_string(),
        ),
        (
            "custom notification",
            json!({"jsonrpc":"2.0","method":"notifications/whatever"}).to_string(),
        ),
        (
            "response to the server",
            json!({"jsonrpc":"2.0","id":"srv-1","result":{}}).to_string(),
        ),
        (
            "error response to the server",
            json!({"jsonrpc":"2.0","id":"srv-2","error":{"code":-1,"message":"no"}}).to_string(),
        ),
    ] {
        expect(&a, &none, name, body, Want::Ran).await;
    }

    // (b) Methods on named targets: every target must be allowed by its rule.
    let sub = |uri: &str| rpc("resources/subscribe", json!({"uri": uri}));
    expect(
        &a,
        &none,
        "subscribe, no scope",
        sub("todo://acme/1"),
        scope("todo:read"),
    )
    .await;
    expect(
        &a,
        &reader,
        "subscribe, read",
        sub("todo://acme/1"),
        Want::Ran,
    )
    .await;
    expect(
        &a,
        &writer,
        "subscribe without a rule",
        sub("file:///etc/passwd"),
        denied(),
    )
    .await;
    for method in [
        "resources/unsubscribe",
        "resources/directory/read",
        "skills/get",
        "resources/read",
    ] {
        let body = |uri: &str| rpc(method, json!({"uri": uri}));
        expect(&a, &none, method, body("todo://acme/x"), scope("todo:read")).await;
        expect(&a, &reader, method, body("todo://acme/x"), Want::Ran).await;
        expect(&a, &writer, method, body("file:///x"), denied()).await;
        // The claims predicate of a matching rule still applies.
        expect(
            &a,
            &writer,
            method,
            body("todo://tenant/x"),
            Want::Refused(forbidden(POLICY_DENIED_DESCRIPTION, "todo:read")),
        )
        .await;
    }
    let listen = |uris: Value| {
        rpc(
            "subscriptions/listen",
            json!({"_meta": {}, "notifications": {"toolsListChanged": true, "resourceSubscriptions": uris}}),
        )
    };
    expect(
        &a,
        &reader,
        "listen, all allowed",
        listen(json!(["todo://acme/1", "todo://acme/2"])),
        Want::Ran,
    )
    .await;
    expect(
        &a,
        &reader,
        "listen, one unruled",
        listen(json!(["todo://acme/1", "file:///etc/passwd"])),
        denied(),
    )
    .await;
    expect(
        &a,
        &none,
        "listen, scopes named together",
        listen(json!(["todo://acme/1", "todo://admin/1"])),
        scope("todo:read todo:write"),
    )
    .await;
    expect(
        &a,
        &reader,
        "listen, no resource",
        rpc(
            "subscriptions/listen",
            json!({"notifications": {"toolsListChanged": true}}),
        ),
        Want::Ran,
    )
    .await;
    expect(&a, &reader, "listen, duplicate filter key", r#"{"jsonrpc":"2.0","id":7,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["todo://acme/1"],"resourceSubscriptions":["file:///x"]}}}"#.to_owned(), Want::Status(400)).await;
    expect(
        &a,
        &reader,
        "listen, filter not a list",
        listen(json!("file:///x")),
        Want::Status(400),
    )
    .await;

    let complete = |r: Value| {
        rpc(
            "completion/complete",
            json!({"ref": r, "argument": {"name": "a", "value": ""}}),
        )
    };
    expect(
        &a,
        &none,
        "complete prompt, no scope",
        complete(json!({"type":"ref/prompt","name":"greet"})),
        scope("todo:read"),
    )
    .await;
    expect(
        &a,
        &reader,
        "complete prompt",
        complete(json!({"type":"ref/prompt","name":"greet"})),
        Want::Ran,
    )
    .await;
    expect(
        &a,
        &writer,
        "complete unruled prompt",
        complete(json!({"type":"ref/prompt","name":"other"})),
        denied(),
    )
    .await;
    expect(
        &a,
        &reader,
        "complete resource",
        complete(json!({"type":"ref/resource","uri":"todo://acme/{id}"})),
        Want::Ran,
    )
    .await;
    expect(
        &a,
        &writer,
        "complete unruled resource",
        complete(json!({"type":"ref/resource","uri":"file:///{p}"})),
        denied(),
    )
    .await;
    expect(
        &a,
        &writer,
        "complete, unknown ref type",
        complete(json!({"type":"ref/tool","name":"greet"})),
        Want::Status(400),
    )
    .await;
    expect(
        &a,
        &writer,
        "complete, no ref",
        rpc("completion/complete", json!({"argument": {}})),
        Want::Status(400),
    )
    .await;
    expect(
        &a,
        &none,
        "prompts/get, no scope",
        rpc("prompts/get", json!({"name":"greet"})),
        scope("todo:read"),
    )
    .await;

    // (c) Every other method, known or not: only with an explicit rule.
    expect(
        &a,
        &none,
        "admin/reset, no scope",
        rpc("admin/reset", json!({})),
        scope("todo:write"),
    )
    .await;
    expect(
        &a,
        &writer,
        "admin/reset with its scope",
        rpc("admin/reset", json!({})),
        Want::Ran,
    )
    .await;
    expect(
        &a,
        &none,
        "tasks/get has a rule",
        rpc("tasks/get", json!({"taskId":"t"})),
        Want::Ran,
    )
    .await;
    for method in [
        "tasks/cancel",
        "tasks/update",
        "sampling/createMessage",
        "roots/list",
        "elicitation/create",
        "x/y",
        "Tools/call",
        "tools/call ",
    ] {
        expect(&a, &writer, method, rpc(method, json!({})), denied()).await;
    }
    // A notification method sent with an id is a request: no longer open.
    expect(
        &a,
        &writer,
        "notification with an id",
        rpc("notifications/initialized", json!({})),
        denied(),
    )
    .await;
    a.srv.stop().await;
}

#[tokio::test]
async fn without_default_deny_unruled_targets_and_methods_pass() {
    let a = app(false).await;
    let none = token("");
    expect(&a, &none, "admin/x", rpc("admin/x", json!({})), Want::Ran).await;
    expect(
        &a,
        &none,
        "unruled resource",
        rpc("resources/subscribe", json!({"uri":"file:///x"})),
        Want::Ran,
    )
    .await;
    // A rule still applies.
    expect(
        &a,
        &none,
        "admin/reset",
        rpc("admin/reset", json!({})),
        Want::Refused(forbidden(INSUFFICIENT_SCOPE_DESCRIPTION, "todo:write")),
    )
    .await;
    a.srv.stop().await;
}

#[test]
fn method_rules_only_for_the_third_class() {
    let p = provider();
    for m in [
        "tools/call",
        "prompts/get",
        "resources/read",
        "resources/subscribe",
        "subscriptions/listen",
        "completion/complete",
        "skills/get",
        "ping",
        "initialize",
        "tools/list",
        "notifications/initialized",
    ] {
        let err = McpPolicy::builder()
            .method(m, Rule::authenticated())
            .build(&p)
            .err()
            .unwrap_or_else(|| panic!("{m} took a method rule"));
        assert!(err.to_string().contains(m), "{err}");
    }
    assert!(
        McpPolicy::builder()
            .method("tasks/get", Rule::authenticated())
            .method("tasks/get", Rule::authenticated())
            .build(&p)
            .is_err()
    );
}

#[test]
fn the_start_up_report_names_what_has_no_rule() {
    let p = provider();
    let bare = McpPolicy::builder().default_deny(true).build(&p).unwrap();
    assert_eq!(
        bare.without_rule(),
        vec![
            "method tasks/get",
            "method tasks/update",
            "method tasks/cancel",
            "resources (every URI)",
            "prompts (every name)",
        ]
    );
    assert_eq!(
        policy(&p, true).without_rule(),
        vec!["method tasks/update", "method tasks/cancel"]
    );
}

async fn list(a: &App, bearer: &str, method: &str, answer: &str) -> (u16, String, String) {
    let resp = client()
        .post(a.srv.url("/mcp"))
        .bearer_auth(bearer)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream")
        .header("x-answer", answer)
        .body(rpc(method, json!({})))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, resp.text().await.unwrap())
}

/// The JSON-RPC messages of an answer (every SSE data payload, or the JSON body).
fn messages(ct: &str, body: &str) -> Vec<Value> {
    if !ct.starts_with("text/event-stream") {
        return vec![serde_json::from_str(body).unwrap()];
    }
    // The filter writes LF-framed events back, one data line per line of data.
    body.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data: ").or(l.strip_prefix("data:")))
                .collect();
            let data = data.join("\n");
            (!data.trim().is_empty()).then(|| serde_json::from_str(&data).unwrap())
        })
        .collect()
}

fn entries(msg: &Value, field: &str, key: &str) -> Vec<String> {
    msg["result"][field]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[key].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_list_is_filtered_in_json_and_sse() {
    let a = app(true).await;
    let none = token("");
    let reader = token("todo:read");
    // (method, result field, entry key, shown to no scope, shown to todo:read)
    type ListCase = (
        &'static str,
        &'static str,
        &'static str,
        Vec<&'static str>,
        Vec<&'static str>,
    );
    let cases: [ListCase; 5] = [
        (
            "tools/list",
            "tools",
            "name",
            vec!["add_todo", "whoami"],
            vec!["list_todos", "add_todo", "whoami"],
        ),
        (
            "resources/list",
            "resources",
            "uri",
            vec![],
            vec!["todo://acme/1"],
        ),
        (
            "resources/templates/list",
            "resourceTemplates",
            "uriTemplate",
            vec![],
            vec!["todo://acme/{id}"],
        ),
        ("prompts/list", "prompts", "name", vec![], vec!["greet"]),
        (
            "skills/list",
            "skills",
            "uri",
            vec![],
            vec!["todo://acme/skill/SKILL.md"],
        ),
    ];
    for (method, field, key, for_none, for_reader) in cases {
        for answer in ["json", "sse", "sse-crlf"] {
            for (bearer, want) in [(&none, &for_none), (&reader, &for_reader)] {
                let (status, ct, body) = list(&a, bearer, method, answer).await;
                assert_eq!(status, 200, "{method} {answer}");
                let msgs = messages(&ct, &body);
                assert_eq!(msgs.len(), 1, "{method} {answer}: {body}");
                assert_eq!(
                    &entries(&msgs[0], field, key),
                    want,
                    "{method} {answer}: {body}"
                );
                assert!(
                    msgs[0]["result"].get("cacheScope").is_none(),
                    "{method}: no field before 2026-07-28"
                );
            }
        }
        // 2026-07-28 results say who may cache them: a filtered one is private.
        let (status, ct, body) = list(&a, &reader, method, "v2026").await;
        assert_eq!(status, 200);
        let msg = &messages(&ct, &body)[0];
        assert_eq!(msg["result"]["cacheScope"], "private", "{method}");
        assert_eq!(msg["result"]["ttlMs"], 60000, "{method}");
        // An answer that cannot be parsed is refused, never passed on unfiltered.
        for answer in ["garbage-sse", "garbage-json"] {
            let (status, _, body) = list(&a, &reader, method, answer).await;
            assert_eq!(status, 500, "{method} {answer}");
            assert!(
                !body.contains("file:///") && !body.contains("secret"),
                "{body}"
            );
        }
    }
    a.srv.stop().await;
}

#[tokio::test]
async fn the_bearer_layer_answers_preflights_itself() {
    let provider = provider();
    let reached = Arc::new(AtomicUsize::new(0));
    let r = reached.clone();
    // An `any()` route (which also serves OPTIONS) behind the layer: a preflight must not reach it.
    let app = Router::new()
        .route(
            "/mcp",
            any(move || {
                r.fetch_add(1, Ordering::SeqCst);
                async { "ran without a token" }
            }),
        )
        .layer(provider.layer());
    let srv = Server::start(app).await;
    let resp = client()
        .request(http::Method::OPTIONS, srv.url("/mcp"))
        .header(header::ORIGIN, "https://app.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "the route ran without a token"
    );
    assert!(
        !resp
            .headers()
            .keys()
            .any(|k| k.as_str().starts_with("access-control-")),
        "no CORS headers of its own: {:?}",
        resp.headers()
    );
    assert!(resp.text().await.unwrap().is_empty());
    // A plain OPTIONS (no Access-Control-Request-Method) is an ordinary request: challenged.
    let plain = client()
        .request(http::Method::OPTIONS, srv.url("/mcp"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 401);
    assert_eq!(reached.load(Ordering::SeqCst), 0);
    srv.stop().await;
}

/// A stub issuing a new session id per `initialize` and answering everything else; with
/// `x-forget` it answers as rmcp does for a session it no longer knows (404). Counts calls.
fn session_stub(calls: Arc<AtomicUsize>) -> Router {
    let next = Arc::new(AtomicUsize::new(0));
    Router::new().route(
        "/mcp",
        post(move |headers: HeaderMap, body: Bytes| {
            let next = next.clone();
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                if headers.contains_key("x-forget") {
                    let mut resp = axum::response::Response::new(axum::body::Body::from(
                        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Session not found"}}"#,
                    ));
                    *resp.status_mut() = StatusCode::NOT_FOUND;
                    return resp;
                }
                let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let mut resp = axum::response::Response::new(axum::body::Body::from(
                    json!({"jsonrpc":"2.0","id":msg["id"],"result":{}}).to_string(),
                ));
                if msg["method"] == "initialize" {
                    let id = format!("session-{}", next.fetch_add(1, Ordering::SeqCst));
                    resp.headers_mut()
                        .insert("mcp-session-id", id.parse().unwrap());
                }
                resp
            }
        }),
    )
}

/// One principal opening and using many sessions cannot get another principal's new session
/// refused: at capacity the least recently used binding goes, a new one is always admitted.
#[tokio::test]
async fn a_new_session_is_always_bound_even_when_the_bindings_are_full() {
    let provider = provider();
    let policy = McpPolicy::builder()
        .tool("whoami", Rule::authenticated())
        .session_limits(4, std::time::Duration::from_secs(3600))
        .build(&provider)
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let srv = Server::start(
        session_stub(calls)
            .layer(policy.layer())
            .layer(provider.layer()),
    )
    .await;
    let url = srv.url("/mcp");
    let init = rpc(
        "initialize",
        json!({"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}),
    );
    let call = rpc("tools/call", json!({"name": "whoami"}));
    let alice = token_of("alice");
    let bob = token_of("bob");
    let open = |bearer: String| {
        let (url, init) = (url.clone(), init.clone());
        async move {
            let resp = post_body(&url, &bearer, None, init).await;
            assert_eq!(resp.status(), 200);
            resp.headers()["mcp-session-id"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    // Alice's sessions, each used often (what moka's default admission policy favours).
    let mut hers = Vec::new();
    for _ in 0..8 {
        let sid = open(alice.clone()).await;
        for _ in 0..10 {
            let resp = post_body(&url, &alice, Some(&sid), call.clone()).await;
            assert_eq!(resp.status(), 200);
        }
        hers.push(sid);
    }
    for round in 0..5 {
        let sid = open(bob.clone()).await;
        for i in 0..40 {
            let resp = post_body(&url, &bob, Some(&sid), call.clone()).await;
            assert_eq!(
                resp.status(),
                200,
                "bob's new session refused (round {round}, call {i})"
            );
        }
    }
    srv.stop().await;
}

fn token_of(subject: &str) -> String {
    mint_claims(json!({
        "sub": subject, "client_id": "client-1", "iss": "https://idp.example.com",
        "aud": R, "scope": "todo:read", "exp": now() + 3600,
    }))
}

/// When rmcp answers that it no longer knows a session (closed after its keep-alive), the
/// binding goes too: bindings live as long as rmcp keeps the session.
#[tokio::test]
async fn a_binding_goes_when_rmcp_forgets_the_session() {
    let provider = provider();
    let policy = McpPolicy::builder()
        .tool("whoami", Rule::authenticated())
        .build(&provider)
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let srv = Server::start(
        session_stub(calls.clone())
            .layer(policy.layer())
            .layer(provider.layer()),
    )
    .await;
    let url = srv.url("/mcp");
    let alice = token_of("alice");
    let init = rpc(
        "initialize",
        json!({"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}),
    );
    let resp = post_body(&url, &alice, None, init).await;
    let sid = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let call = rpc("tools/call", json!({"name": "whoami"}));
    assert_eq!(
        post_body(&url, &alice, Some(&sid), call.clone())
            .await
            .status(),
        200
    );
    let gone = common::post_as(
        "2025-06-18",
        &url,
        &alice,
        Some(&sid),
        &[("x-forget", "1".into())],
        call.clone(),
    )
    .await;
    assert_eq!(gone.status(), 404);
    let before = calls.load(Ordering::SeqCst);
    let again = post_body(&url, &alice, Some(&sid), call).await;
    assert_eq!(again.status(), 404);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        before,
        "the binding outlived rmcp's session"
    );
    srv.stop().await;
}
