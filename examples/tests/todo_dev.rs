//! The main job in dev mode: start-up output, the wire contract, per-tool scopes, and start-up
//! errors that name the variable to fix.

mod support;

use support::{Mcp, Todo, body_message, start_failure, www};

#[tokio::test]
async fn dev_mode_serves_the_todo_tools_with_per_tool_scopes() {
    let todo = Todo::start(&[]).await;
    let url = todo.url();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/mcp"),
        "{url}"
    );
    assert_eq!(todo.printed("provider"), "dev");
    let rw = todo.printed("token (read+write");
    let ro = todo.printed("token (read-only");

    // No token: the challenge names the metadata and the initial scope only.
    let http = support::http();
    let resp = http.post(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let meta_url = todo.printed("metadata");
    assert_eq!(
        www(&resp),
        format!("Bearer scope=\"todo:read\", resource_metadata=\"{meta_url}\"")
    );
    let meta: serde_json::Value = http
        .get(&meta_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["resource"], url.as_str());
    assert_eq!(
        meta["scopes_supported"],
        serde_json::json!(["todo:read", "todo:write"])
    );

    // Read-only token: listing works, writing is a 403 naming todo:write.
    let mut reader = Mcp::new(&url, &ro);
    reader.initialize().await;
    assert_eq!(
        reader.call_ok("list_todos", serde_json::json!({})).await,
        "[]"
    );
    let denied = reader
        .call("add_todo", serde_json::json!({"text": "milk"}))
        .await;
    assert_eq!(denied.status(), 403);
    assert!(
        www(&denied).starts_with("Bearer error=\"insufficient_scope\"")
            && www(&denied).contains("scope=\"todo:write\""),
        "{}",
        www(&denied)
    );

    // Read-write token: add, complete, list; whoami reports the token.
    let mut writer = Mcp::new(&url, &rw);
    writer.initialize().await;
    assert_eq!(
        writer
            .call_ok("add_todo", serde_json::json!({"text": "milk"}))
            .await,
        "added todo 1"
    );
    assert_eq!(
        writer
            .call_ok("complete_todo", serde_json::json!({"id": 1}))
            .await,
        "completed todo 1"
    );
    let list: serde_json::Value =
        serde_json::from_str(&writer.call_ok("list_todos", serde_json::json!({})).await).unwrap();
    assert_eq!(
        list,
        serde_json::json!([{"id": 1, "text": "milk", "done": true}])
    );
    let who: serde_json::Value =
        serde_json::from_str(&writer.call_ok("whoami", serde_json::json!({})).await).unwrap();
    assert_eq!(who["subject"], "dev-user");
    assert_eq!(who["client_id"], "dev-client");
    assert_eq!(
        who["scopes"],
        serde_json::json!(["todo:read", "todo:write"])
    );

    // tools/list shows the read-only caller what it may call plus the write tools (listed to
    // every caller, so a client that reads the list first can reach the step-up challenge).
    let listed = body_message(
        reader
            .send(serde_json::json!({"jsonrpc":"2.0","id":9,"method":"tools/list","params":{}}))
            .await,
    )
    .await;
    let mut names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["add_todo", "complete_todo", "list_todos", "whoami"]
    );
    todo.stop().await;
}

#[tokio::test]
async fn configuration_errors_name_the_variable() {
    let err = start_failure(
        &[("MCP_AUTH_PROVIDER", "keycloak")],
        &["--bind", "127.0.0.1:0"],
    )
    .await;
    assert!(
        err.contains("MCP_AUTH_PROVIDER") && err.contains("unknown provider"),
        "{err}"
    );

    let err = start_failure(
        &[("MCP_AUTH_JWT_JWKS_URI", "https://idp.example.com/jwks")],
        &["--bind", "127.0.0.1:0"],
    )
    .await;
    assert!(
        err.contains("MCP_AUTH_PROVIDER: not set") && err.contains("MCP_AUTH_JWT_JWKS_URI"),
        "{err}"
    );

    let err = start_failure(
        &[
            ("MCP_AUTH_PROVIDER", "jwt"),
            ("MCP_AUTH_JWT_ISSUER", "https://idp.example.com"),
        ],
        &["--bind", "0.0.0.0:0"],
    )
    .await;
    assert!(err.contains("MCP_AUTH_RESOURCE_URL is missing"), "{err}");

    let err = start_failure(&[], &["--bind", "0.0.0.0:0"]).await;
    assert!(err.contains("loopback"), "{err}");

    let err = start_failure(
        &[
            ("MCP_AUTH_PROVIDER", "dev"),
            ("MCP_AUTH_RESOURCE_URL", "https://api.example.com/mcp"),
        ],
        &["--bind", "127.0.0.1:0"],
    )
    .await;
    assert!(
        err.contains("MCP_AUTH_RESOURCE_URL") && err.contains("loopback"),
        "{err}"
    );
}

#[tokio::test]
async fn browsers_can_preflight_and_read_the_challenge() {
    let todo = Todo::start(&[]).await;
    let url = todo.url();
    let http = support::http();
    let pre = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, dpop, content-type, mcp-protocol-version, mcp-session-id",
        )
        .send()
        .await
        .unwrap();
    assert!(pre.status().is_success(), "preflight passes without auth");
    let allowed = header_list(&pre, "access-control-allow-headers");
    // `DPoP` carries the proof of a DPoP-bound token (RFC 9449 §4.1): a browser client cannot
    // send it unless the preflight allows it.
    for h in [
        "authorization",
        "dpop",
        "content-type",
        "mcp-protocol-version",
        "mcp-session-id",
    ] {
        assert!(
            allowed.iter().any(|a| a == h),
            "{h} not allowed: {allowed:?}"
        );
    }
    let denied = http
        .post(&url)
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    assert_eq!(denied.headers()["access-control-allow-origin"], "*");
    // The challenge and a server nonce (`DPoP-Nonce`, RFC 9449 §8) must be readable by script.
    let exposed = header_list(&denied, "access-control-expose-headers");
    for h in ["www-authenticate", "dpop-nonce", "mcp-session-id"] {
        assert!(
            exposed.iter().any(|e| e == h),
            "{h} not exposed: {exposed:?}"
        );
    }
    todo.stop().await;
}

/// A comma-separated header's items, trimmed and lower-cased.
fn header_list(resp: &reqwest::Response, name: &str) -> Vec<String> {
    resp.headers()
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|h| h.trim().to_ascii_lowercase())
        .collect()
}
