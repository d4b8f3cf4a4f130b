//! The todo binary configured through environment variables only, against the real test IdP
//! (oidc-provider on 127.0.0.1): JWT mode (machine and user tokens, step-up, refresh, another
//! resource's token) and introspection mode (opaque tokens, one introspection per token while the
//! cache lives).

mod support;

use mcp_auth_idp_harness::{ResourceSpec, TestIdp};
use support::{Mcp, Todo, free_port, www};

const SCOPES: [&str; 2] = ["todo:read", "todo:write"];
const OTHER: &str = "http://127.0.0.1:9/other-mcp";

#[tokio::test]
async fn jwt_mode_against_the_real_idp() {
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let idp = TestIdp::start(vec![
        ResourceSpec::jwt(&resource, &SCOPES, "RS256"),
        ResourceSpec::jwt(OTHER, &SCOPES, "RS256"),
    ])
    .await
    .expect("test IdP");
    let todo = Todo::start_on(
        port,
        &[
            ("MCP_AUTH_PROVIDER", "jwt"),
            ("MCP_AUTH_JWT_ISSUER", idp.issuer()),
            ("MCP_AUTH_RESOURCE_URL", &resource),
        ],
    )
    .await;
    assert_eq!(todo.url(), resource);

    // The metadata points clients at the IdP.
    let meta: serde_json::Value = support::get_json(&todo.printed("metadata")).await;
    assert_eq!(
        meta["authorization_servers"],
        serde_json::json!([idp.issuer()])
    );

    // Machine-to-machine: a client_credentials token works.
    let m2m = idp
        .client_credentials(&resource, "todo:read todo:write")
        .await
        .unwrap();
    let mut machine = Mcp::new(&resource, &m2m.access_token);
    machine.initialize().await;
    assert_eq!(
        machine
            .call_ok("add_todo", serde_json::json!({"text": "from m2m"}))
            .await,
        "added todo 1"
    );

    // A token minted for another resource is refused (audience).
    let foreign = idp.client_credentials(OTHER, "todo:read").await.unwrap();
    let resp = support::http()
        .post(&resource)
        .bearer_auth(&foreign.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(
        www(&resp).starts_with("Bearer error=\"invalid_token\""),
        "{}",
        www(&resp)
    );

    // A user logged in for todo:read only: 403 on add_todo naming todo:write...
    let read_only = idp
        .authorization_code(&resource, "todo:read", "alice")
        .await
        .unwrap();
    let mut alice = Mcp::new(&resource, &read_only.access_token);
    alice.initialize().await;
    assert_eq!(
        alice.call_ok("list_todos", serde_json::json!({})).await,
        "[]"
    );
    let denied = alice
        .call("add_todo", serde_json::json!({"text": "x"}))
        .await;
    assert_eq!(denied.status(), 403);
    assert!(
        www(&denied).contains("scope=\"todo:write\""),
        "{}",
        www(&denied)
    );

    // ...steps up by re-authorizing for todo:write, and succeeds in the same session.
    let stepped = idp
        .authorization_code(&resource, "todo:read todo:write", "alice")
        .await
        .unwrap();
    alice.set_token(&stepped.access_token);
    assert_eq!(
        alice
            .call_ok("add_todo", serde_json::json!({"text": "milk"}))
            .await,
        "added todo 1"
    );
    let who: serde_json::Value =
        serde_json::from_str(&alice.call_ok("whoami", serde_json::json!({})).await).unwrap();
    assert_eq!(who["subject"], "alice");

    // A refreshed token of the same user keeps the session.
    let refresh = stepped.refresh_token.expect("refresh token");
    let refreshed = idp.refresh(&refresh, &resource).await.unwrap();
    alice.set_token(&refreshed.access_token);
    let list = alice.call_ok("list_todos", serde_json::json!({})).await;
    assert!(list.contains("milk"), "{list}");
    todo.stop().await;
}

#[tokio::test]
async fn introspection_mode_against_the_real_idp() {
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let idp = TestIdp::start(vec![
        ResourceSpec::opaque(&resource, &SCOPES),
        ResourceSpec::opaque(OTHER, &SCOPES),
    ])
    .await
    .expect("test IdP");
    let (client_id, client_secret) = idp.introspection_client();
    let endpoint = idp.introspection_endpoint();
    let todo = Todo::start_on(
        port,
        &[
            ("MCP_AUTH_PROVIDER", "introspect"),
            ("MCP_AUTH_INTROSPECT_URL", &endpoint),
            ("MCP_AUTH_INTROSPECT_CLIENT_ID", client_id),
            ("MCP_AUTH_INTROSPECT_CLIENT_SECRET", client_secret),
            ("MCP_AUTH_AUTHORIZATION_SERVERS", idp.issuer()),
            ("MCP_AUTH_RESOURCE_URL", &resource),
        ],
    )
    .await;

    let token = idp
        .client_credentials(&resource, "todo:read todo:write")
        .await
        .unwrap();
    assert_eq!(
        token.access_token.matches('.').count(),
        0,
        "opaque token expected"
    );
    let before = idp.introspection_count().await.unwrap();
    let mut mcp = Mcp::new(&resource, &token.access_token);
    mcp.initialize().await;
    assert_eq!(
        mcp.call_ok("add_todo", serde_json::json!({"text": "opaque"}))
            .await,
        "added todo 1"
    );
    let list = mcp.call_ok("list_todos", serde_json::json!({})).await;
    assert!(list.contains("opaque"), "{list}");
    let after = idp.introspection_count().await.unwrap();
    assert_eq!(
        after - before,
        1,
        "one introspection per token while the cache lives"
    );

    let foreign = idp.client_credentials(OTHER, "todo:read").await.unwrap();
    let resp = support::http()
        .post(&resource)
        .bearer_auth(&foreign.access_token)
        .send()
        .await
        .unwrap();
    support::assert_refused(
        &resp,
        401,
        "invalid_token",
        "The access token was not issued for this resource",
        &resource,
    );
    todo.stop().await;
}
