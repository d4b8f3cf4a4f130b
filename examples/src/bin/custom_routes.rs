//! A provider extended with an extra route: the Rust counterpart of subclassing FastMCP's
//! `RemoteAuthProvider` and overriding `get_routes()` (calling `super()` first).
//!
//! Runs on the embedded development issuer, so it needs no IdP account:
//! `cargo run -p mcp-auth-examples --bin custom_routes -- --bind 127.0.0.1:8001`

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use mcp_auth_core::serve::{self, NoDelayListener};
use mcp_auth_core::{AuthProvider, ProtectedResource, RemoteAuthProvider, TokenVerifier};
use mcp_auth_examples::app::{AppOptions, todo_app};
use mcp_auth_jwt::dev::{DevIssuer, TokenSpec};

/// Wraps any provider and adds `GET /status` to its public routes.
struct WithStatus<P> {
    inner: P,
}

impl<P: AuthProvider> AuthProvider for WithStatus<P> {
    fn verifier(&self) -> Arc<dyn TokenVerifier> {
        self.inner.verifier()
    }

    fn protected_resource(&self) -> &ProtectedResource {
        self.inner.protected_resource()
    }

    fn routes(&self) -> Router {
        let resource = self.protected_resource().resource().to_string();
        self.inner.routes().route(
            "/status",
            get(move || {
                let resource = resource.clone();
                async move { axum::Json(serde_json::json!({"status": "ok", "resource": resource})) }
            }),
        )
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let bind = std::env::args()
        .skip_while(|a| a != "--bind")
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8001".into());
    let listener = NoDelayListener::bind(&bind).await?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        return Err("this example uses the development issuer: bind to loopback".into());
    }
    let resource = format!("http://{addr}/mcp");
    let dev = DevIssuer::generate(format!("http://{addr}"));
    let verifier = dev.verifier_builder().audience(&resource).build()?;
    let base = RemoteAuthProvider::builder(Arc::new(verifier))
        .resource_url(&resource)
        .authorization_server(dev.issuer())
        .scopes_supported(["todo:read", "todo:write"])
        .initial_scopes(["todo:read"])
        .build()?;
    let provider = Arc::new(WithStatus { inner: base });
    let shutdown = serve::shutdown_on_signal();
    let options = AppOptions {
        shutdown: shutdown.clone(),
        ..AppOptions::default()
    };
    let (app, _) = todo_app(provider, &options)?;
    let token = dev.mint(
        TokenSpec::new("dev-user")
            .audience(&resource)
            .scopes(["todo:read", "todo:write"]),
    );
    println!("MCP endpoint:  {resource}");
    println!("status:        http://{addr}/status");
    println!("token (read+write, 1 h): {token}");
    println!("listening on {addr}");
    serve::serve(listener, app, shutdown).await?;
    Ok(())
}
