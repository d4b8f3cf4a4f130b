//! One binary, any IdP: the todo server configured for Scalekit and for WorkOS AuthKit through
//! environment variables only, against a local server that serves each vendor's URL layout
//! (JWKS and authorization-server metadata at the vendor's paths, tokens minted with the
//! vendor's issuer and audience conventions).

mod support;

use axum::Router;
use axum::routing::get;
use mcp_auth_jwt::dev::{DevIssuer, TokenSpec};
use support::{Mcp, Todo};

/// Serves `jwks_path` and `as_path` for a vendor whose base URL is the returned origin.
async fn vendor(
    jwks_path: &str,
    as_path: &'static str,
) -> (String, DevIssuer, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let dev = DevIssuer::generate(origin.clone());
    let doc = serde_json::json!({"issuer": origin, "token_endpoint": format!("{origin}/token")});
    let app: Router = dev.jwks_router(jwks_path).route(
        as_path,
        get(move || {
            let doc = doc.clone();
            async move { axum::Json(doc) }
        }),
    );
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (origin, dev, handle)
}

async fn exercise(todo: &Todo, token: &str, upstream_issuer: &str) {
    let mut mcp = Mcp::new(&todo.url(), token);
    mcp.initialize().await;
    let who: serde_json::Value =
        serde_json::from_str(&mcp.call_ok("whoami", serde_json::json!({})).await).unwrap();
    assert_eq!(who["subject"], "vendor-user");
    let base = todo.url().trim_end_matches("/mcp").to_owned();
    let forwarded: serde_json::Value =
        support::get_json(&format!("{base}/.well-known/oauth-authorization-server")).await;
    assert_eq!(forwarded["issuer"], upstream_issuer, "forwarded unchanged");
}

#[tokio::test]
async fn scalekit_by_environment_only() {
    let (env_url, dev, server) = vendor(
        "/keys",
        "/.well-known/oauth-authorization-server/resources/res_123",
    )
    .await;
    let todo = Todo::start(&[
        ("MCP_AUTH_PROVIDER", "scalekit"),
        ("SCALEKIT_ENVIRONMENT_URL", &env_url),
        ("SCALEKIT_RESOURCE_ID", "res_123"),
    ])
    .await;
    assert_eq!(todo.printed("provider"), "scalekit");
    assert!(
        todo.printed("issuers")
            .contains(&format!("{env_url}/resources/res_123"))
    );
    // Scalekit tokens may carry the resource id as audience and either issuer variant.
    let token = dev.mint(
        TokenSpec::new("vendor-user")
            .issuer(format!("{env_url}/resources/res_123"))
            .audience("res_123")
            .scopes(["todo:read"]),
    );
    exercise(&todo, &token, &env_url).await;
    todo.stop().await;
    server.abort();
}

#[tokio::test]
async fn authkit_by_environment_only() {
    let (domain, dev, server) =
        vendor("/oauth2/jwks", "/.well-known/oauth-authorization-server").await;
    let todo = Todo::start(&[("MCP_AUTH_PROVIDER", "workos"), ("AUTHKIT_DOMAIN", &domain)]).await;
    assert_eq!(todo.printed("provider"), "workos");
    let token = dev.mint(
        TokenSpec::new("vendor-user")
            .audience(todo.url())
            .scopes(["todo:read"]),
    );
    exercise(&todo, &token, &domain).await;
    let wrong = dev.mint(TokenSpec::new("vendor-user").audience("res_other"));
    let resp = support::http()
        .post(todo.url())
        .bearer_auth(wrong)
        .send()
        .await
        .unwrap();
    support::assert_refused(
        &resp,
        401,
        "invalid_token",
        "The access token was not issued for this resource",
        &todo.url(),
    );
    todo.stop().await;
    server.abort();
}
