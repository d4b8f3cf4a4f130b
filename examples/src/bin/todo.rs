//! The todo MCP server, protected by whichever provider `MCP_AUTH_PROVIDER` names (the embedded
//! development issuer when nothing is configured).
//!
//! ```sh
//! cargo run -p mcp-auth-examples --bin todo                 # dev mode, 127.0.0.1:8000
//! cargo run -p mcp-auth-examples --bin todo -- --bind 127.0.0.1:9000
//! cargo run -p mcp-auth-examples --bin todo -- doctor --token - < token.txt
//! ```
//!
//! `todo doctor` diagnoses the configuration read from the same environment, and a token read
//! from standard input or `--token-file` (see `mcp_auth_examples::doctor`).

use std::net::SocketAddr;
use std::process::ExitCode;

use mcp_auth_core::config::{ConfigError, CoreConfig};
use mcp_auth_core::serve::{self, NoDelayListener};
use mcp_auth_examples::app::{AppOptions, todo_app_with};
use mcp_auth_examples::downstream::Downstream;
use mcp_auth_examples::providers::{self, ProviderKind};

/// The readiness path (200 when the IdP and the shared store answer, else 503).
const READY_PATH: &str = "/ready";

fn bind_address() -> Result<SocketAddr, ConfigError> {
    let mut args = std::env::args().skip(1);
    let mut bind = std::env::var("TODO_BIND").ok();
    while let Some(arg) = args.next() {
        if arg == "--bind" {
            bind = args.next();
        } else if let Some(v) = arg.strip_prefix("--bind=") {
            bind = Some(v.to_owned());
        } else {
            return Err(ConfigError::Other(format!(
                "unknown argument {arg:?} (usage: todo [--bind HOST:PORT] | todo doctor [--token - | --token-file PATH])"
            )));
        }
    }
    let raw = bind.unwrap_or_else(|| "127.0.0.1:8000".to_owned());
    raw.parse().map_err(|e| ConfigError::Invalid {
        variable: "TODO_BIND (--bind)".into(),
        reason: format!("{raw:?} is not HOST:PORT: {e}"),
    })
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let kind = providers::select_kind()?;
    let bind = bind_address()?;
    if kind == ProviderKind::Dev && !bind.ip().is_loopback() {
        return Err(Box::new(ConfigError::Invalid {
            variable: "TODO_BIND (--bind)".into(),
            reason: "the development issuer listens on loopback only".into(),
        }));
    }
    let listener = NoDelayListener::bind(bind).await?;
    let bound = listener.local_addr()?;
    let resource = providers::resource_url(&CoreConfig::from_env()?, bound)?;
    let selected = providers::build(kind, &resource).await?;
    let session_mode = std::env::var("TODO_STATELESS")
        .map(|v| v != "1")
        .unwrap_or(true);
    // Calling other APIs as the user (MCP_AUTH_EXCHANGE_*, TODO_DOWNSTREAM_*).
    let downstream = Downstream::from_env(kind, &selected.issuers)?;
    if let Some(d) = &downstream {
        println!(
            "downstream:    {} ({:?})",
            d.target(),
            d.exchanger().grant()
        );
    }
    let shutdown = serve::shutdown_on_signal();
    let (app, _store) = todo_app_with(
        selected.provider.clone(),
        &AppOptions {
            session_mode,
            json_response: false,
            shutdown: shutdown.clone(),
        },
        downstream,
    )?;
    // Readiness, checked actively: the IdP and, with MCP_AUTH_STORE_URL, the shared store.
    let store = mcp_auth_examples::shared_store::shared_store()?.map(|(s, _)| s);
    let ready =
        mcp_auth_core::readiness::readiness_route(READY_PATH, selected.provider.verifier(), store);
    let app = app.merge(selected.extra_routes.clone()).merge(ready);

    let pr = selected.provider.protected_resource();
    tracing::info!(
        provider = kind.name(),
        resource = %pr.resource(),
        metadata = %pr.resource().metadata_url(),
        issuers = ?selected.issuers,
        audiences = ?selected.audiences,
        "todo MCP server starting"
    );
    println!("provider:      {}", kind.name());
    println!("MCP endpoint:  {}", pr.resource());
    println!("metadata:      {}", pr.resource().metadata_url());
    println!("issuers:       {}", selected.issuers.join(", "));
    println!("audiences:     {}", selected.audiences.join(", "));
    if let Some(dev) = &selected.dev {
        let (rw, ro) = providers::dev_tokens(dev, pr.resource());
        println!();
        println!("DEVELOPMENT ISSUER: keys generated for this process; never use in production.");
        println!("token (read+write, 1 h): {rw}");
        println!("token (read-only, 1 h):  {ro}");
        println!();
        println!("try it:");
        println!(
            "  curl -s {r} -H 'Authorization: Bearer {rw}' -H 'Content-Type: application/json' \\\n    -H 'Accept: application/json, text/event-stream' \\\n    -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{{}},\"clientInfo\":{{\"name\":\"curl\",\"version\":\"1\"}}}}}}'",
            r = pr.resource()
        );
        println!(
            "  npx @modelcontextprotocol/inspector --cli {r} --transport http --method tools/list \\\n    --header 'Authorization: Bearer {rw}'",
            r = pr.resource()
        );
        tracing::warn!("development issuer in use: tokens are minted by this process");
    }
    println!("readiness:     http://{bound}{READY_PATH}");
    println!("listening on {bound}");
    // TCP_NODELAY on every connection (SSE answers would otherwise wait up to 40 ms for the
    // client's delayed ACK), graceful shutdown on SIGINT or SIGTERM.
    serve::serve(listener, app, shutdown).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let doctor = std::env::args().nth(1).as_deref() == Some("doctor");
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| if doctor { "warn" } else { "info" }.into()),
        )
        .init();
    if doctor {
        return mcp_auth_examples::doctor::run(std::env::args().skip(2)).await;
    }
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
