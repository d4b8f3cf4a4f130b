//! The README's "In your server" snippet, compiled: the code between the markers below is the
//! README's Rust block verbatim (indented one level), which `tests/readme.rs` checks, so the
//! README cannot drift from the API. Not called by anything; `cargo build` is its test.

use crate::todo::TodoServer;

/// Serves `server` the way the README shows: JWT verifier, provider, per-tool policy, both
/// layers stacked with `ServiceBuilder`, metadata routes and CORS, a `TCP_NODELAY` listener.
#[rustfmt::skip] // the README's layout, comments aligned by hand
pub async fn serve_like_the_readme(server: TodoServer) -> Result<(), Box<dyn std::error::Error>> {
    // README BEGIN
    use std::sync::Arc;
    use mcp_auth_core::{AuthProvider, RemoteAuthProvider, policy::{McpPolicy, Rule}};
    use mcp_auth_core::serve::{self, NoDelayListener, SharedMcpService};
    use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;

    let verifier = Arc::new(mcp_auth_jwt::JwtVerifier::builder()
        .jwks_uri("https://idp.example.com/.well-known/jwks.json")
        .issuer("https://idp.example.com")
        .audience("https://api.example.com/mcp")
        .build()?);
    let provider = RemoteAuthProvider::builder(verifier)
        .resource_url("https://api.example.com/mcp")
        .authorization_server("https://idp.example.com")
        .scopes_supported(["todo:read", "todo:write"])
        .initial_scopes(["todo:read"])
        .build()?;
    let policy = McpPolicy::builder()
        .tool("add_todo", Rule::scopes(["todo:write"]))
        .tool("list_todos", Rule::scopes(["todo:read"]))
        .default_deny(true)
        .build(&provider)?;
    let shutdown = serve::shutdown_on_signal();          // SIGINT / SIGTERM
    let resource = provider.protected_resource().resource();
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(serve::allowed_hosts(resource))   // R's host, plus loopback
        .with_cancellation_token(shutdown.child_token());     // sessions end on shutdown
    let rmcp_service: StreamableHttpService<TodoServer, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(server.clone()), Default::default(), config);
    let mcp = tower::ServiceBuilder::new()
        .layer(provider.layer())      // authenticates first
        .layer(policy.layer())        // sees the token, reads the JSON-RPC body
        .service(SharedMcpService::new(rmcp_service));
    let app = axum::Router::new()
        .route_service(resource.path(), mcp)   // exactly R's path
        .merge(provider.routes())     // public metadata routes
        .layer(mcp_auth_core::metadata::mcp_cors()); // browsers: outermost
    let listener = NoDelayListener::bind("0.0.0.0:8000").await?;   // TCP_NODELAY on every socket
    serve::serve(listener, app, shutdown).await?;
    // README END
    Ok(())
}
