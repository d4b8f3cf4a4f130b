//! Twelve-factor style: the provider is built entirely from environment variables, with no
//! provider-specific code. Any IdP that issues JWT access tokens works:
//!
//! ```sh
//! MCP_AUTH_RESOURCE_URL=https://api.example.com/mcp \
//! MCP_AUTH_AUTHORIZATION_SERVERS=https://idp.example.com \
//! MCP_AUTH_JWT_ISSUER=https://idp.example.com \
//! MCP_AUTH_SCOPES_SUPPORTED="todo:read todo:write" \
//! ENV_ONLY_BIND=0.0.0.0:8080 \
//!   cargo run -p mcp-auth-examples --bin env_only
//! ```

use std::sync::Arc;

use mcp_auth_core::AuthProvider;
use mcp_auth_core::config::CoreConfig;
use mcp_auth_core::serve::{self, NoDelayListener};
use mcp_auth_examples::app::{AppOptions, todo_app};
use mcp_auth_jwt::JwtVerifier;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // Every setting, including the JWKS location and the audience, comes from MCP_AUTH_*.
    let verifier = JwtVerifier::from_env()?;
    let provider =
        mcp_auth_examples::providers::protected(&CoreConfig::from_env()?, Arc::new(verifier))?;
    let bind = std::env::var("ENV_ONLY_BIND").unwrap_or_else(|_| "127.0.0.1:8002".into());
    let listener = NoDelayListener::bind(&bind).await?;
    let pr = provider.protected_resource();
    println!("MCP endpoint:  {}", pr.resource());
    println!("metadata:      {}", pr.resource().metadata_url());
    println!("listening on {}", listener.local_addr()?);
    let shutdown = serve::shutdown_on_signal();
    let options = AppOptions {
        shutdown: shutdown.clone(),
        ..AppOptions::default()
    };
    let (app, _) = todo_app(Arc::new(provider), &options)?;
    serve::serve(listener, app, shutdown).await?;
    Ok(())
}
