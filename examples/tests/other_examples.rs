//! The smaller examples, built and run: `custom_routes` (a provider extended by composition) and
//! `env_only` (a provider built from environment variables alone).

mod support;

use std::sync::Arc;

use mcp_auth_jwt::dev::{DevIssuer, TokenSpec};
use support::{Mcp, Todo, free_port};

#[tokio::test]
async fn custom_routes_adds_a_route_and_keeps_the_metadata_and_auth() {
    let app = Todo::start_exe(
        env!("CARGO_BIN_EXE_custom_routes"),
        &["--bind", "127.0.0.1:0"],
        &[],
    )
    .await;
    let url = app.url();
    let status: serde_json::Value = support::get_json(&app.printed("status")).await;
    assert_eq!(status, serde_json::json!({"status": "ok", "resource": url}));
    let base = url.trim_end_matches("/mcp");
    let meta = support::http()
        .get(format!("{base}/.well-known/oauth-protected-resource/mcp"))
        .send()
        .await
        .unwrap();
    assert_eq!(meta.status(), 200);
    let unauth = support::http().post(&url).send().await.unwrap();
    assert_eq!(unauth.status(), 401);
    // No token at all: the challenge carries no error code (RFC 6750 §3.1), only where to look.
    assert_eq!(
        support::www(&unauth),
        format!(
            "Bearer scope=\"todo:read\", resource_metadata=\"{}\"",
            support::metadata_url(&url)
        )
    );
    let mut mcp = Mcp::new(&url, &app.printed("token (read+write"));
    mcp.initialize().await;
    assert_eq!(
        mcp.call_ok("add_todo", serde_json::json!({"text": "x"}))
            .await,
        "added todo 1"
    );
    app.stop().await;
}

#[tokio::test]
async fn env_only_builds_everything_from_the_environment() {
    // A JWKS endpoint on loopback, served by a development issuer.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_addr = listener.local_addr().unwrap();
    let issuer = format!("http://{jwks_addr}");
    let dev = Arc::new(DevIssuer::generate(issuer.clone()));
    let router = dev.jwks_router("/jwks");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });

    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let bind = format!("127.0.0.1:{port}");
    let jwks = format!("{issuer}/jwks");
    let app = Todo::start_exe(
        env!("CARGO_BIN_EXE_env_only"),
        &[],
        &[
            ("MCP_AUTH_RESOURCE_URL", &resource),
            ("MCP_AUTH_AUTHORIZATION_SERVERS", &issuer),
            ("MCP_AUTH_SCOPES_SUPPORTED", "todo:read todo:write"),
            ("MCP_AUTH_JWT_JWKS_URI", &jwks),
            ("MCP_AUTH_JWT_ISSUER", &issuer),
            ("ENV_ONLY_BIND", &bind),
        ],
    )
    .await;
    assert_eq!(app.url(), resource);
    let token = dev.mint(
        TokenSpec::new("env-user")
            .audience(&resource)
            .scopes(["todo:read"]),
    );
    let mut mcp = Mcp::new(&resource, &token);
    mcp.initialize().await;
    let who: serde_json::Value =
        serde_json::from_str(&mcp.call_ok("whoami", serde_json::json!({})).await).unwrap();
    assert_eq!(who["subject"], "env-user");
    let foreign = dev.mint(
        TokenSpec::new("env-user")
            .audience("http://127.0.0.1:1/elsewhere")
            .scopes(["todo:read"]),
    );
    let resp = support::http()
        .post(&resource)
        .bearer_auth(foreign)
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
    app.stop().await;
    server.abort();
}
