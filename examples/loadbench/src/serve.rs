//! `serve`: the todo MCP app in one of the bench modes, built by the code the `todo` binary
//! uses (`mcp_auth_examples::app`) and served by core's serving helper, as the binary serves it.

use std::sync::Arc;

use axum::Router;
use mcp_auth_core::serve::{self as helper, NoDelayListener};
use mcp_auth_core::{AccessToken, AuthProvider, RemoteAuthProvider, TokenVerifier};
use mcp_auth_examples::app::{AppOptions, todo_app, unprotected_todo_app};
use mcp_auth_examples::todo::{READ, WRITE};
use mcp_auth_introspect::IntrospectionVerifier;
use mcp_auth_jwt::JwtVerifier;

use crate::args::{Args, loopback_url};

/// `serve --mode unprotected|trivial|jwt|introspect --bind 127.0.0.1:PORT [--sessions] [--sse]
/// ...`: prints `READY <url>` on stdout once listening, serves until SIGINT or SIGTERM.
///
/// Without `--sessions` and `--sse` the app is stateless with JSON answers (the tuned
/// configuration); `--sessions` is rmcp's session mode, `--sse` answers as event streams (the
/// `todo` binary's defaults are both).
pub fn serve(args: &Args) -> Result<(), String> {
    let bind = args.loopback("bind")?;
    let mode = args.req("mode")?.to_owned();
    let resource = format!("http://{bind}/mcp");
    // The log set up as the `todo` binary sets it up (RUST_LOG, default info), so the
    // unprotected baseline differs from the binary only by its auth layers.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let shutdown = helper::shutdown_on_signal();
        let options = AppOptions {
            session_mode: args.flag("sessions"),
            json_response: !args.flag("sse"),
            shutdown: shutdown.clone(),
        };
        let app = match mode.as_str() {
            "unprotected" => {
                // The same app without its auth layers: the ratios measure what
                // authentication costs.
                let provider = provider(
                    &resource,
                    "http://127.0.0.1/",
                    Arc::new(Fixed(identity(&resource))),
                )?;
                unprotected_todo_app(provider, &options, identity(&resource)).0
            }
            "jwt" => {
                let jwks = args.req("jwks-uri")?;
                loopback_url(jwks)?;
                let issuer = args.req("issuer")?;
                let mut builder = JwtVerifier::builder()
                    .jwks_uri(jwks)
                    .issuer(issuer)
                    .audience(resource.clone())
                    .prefetch(true);
                if let Some(bytes) = args.opt("cache-bytes") {
                    let bytes: u64 = bytes
                        .parse()
                        .map_err(|_| format!("--cache-bytes {bytes:?}"))?;
                    builder = builder.token_cache(true, bytes);
                }
                let verifier = builder.build().map_err(|e| e.to_string())?;
                protected(provider(&resource, issuer, Arc::new(verifier))?, &options)?
            }
            "trivial" => {
                // The whole auth stack (CORS, bearer layer, policy layer, in-tool checks) around
                // a verifier that costs nothing: isolates the layers from the verification.
                let verifier = Arc::new(Fixed(identity(&resource)));
                protected(
                    provider(&resource, "http://127.0.0.1/", verifier)?,
                    &options,
                )?
            }
            "introspect" => {
                let endpoint = args.req("introspect-endpoint")?;
                loopback_url(endpoint)?;
                let issuer = args.req("issuer")?;
                let verifier = IntrospectionVerifier::builder()
                    .endpoint(endpoint)
                    .issuer(issuer)
                    .client_secret_basic(args.req("client-id")?, args.req("client-secret")?)
                    .resource_url(resource.clone())
                    .build()
                    .map_err(|e| e.to_string())?;
                protected(provider(&resource, issuer, Arc::new(verifier))?, &options)?
            }
            other => return Err(format!("unknown --mode {other:?}")),
        };
        let listener = NoDelayListener::bind(bind)
            .await
            .map_err(|e| format!("bind {bind}: {e}"))?;
        println!("READY {resource}");
        helper::serve(listener, app, shutdown)
            .await
            .map_err(|e| e.to_string())
    })
}

/// A [`RemoteAuthProvider`] for `resource` with `verifier`, as the `todo` binary configures it.
fn provider(
    resource: &str,
    issuer: &str,
    verifier: Arc<dyn TokenVerifier>,
) -> Result<Arc<dyn AuthProvider>, String> {
    Ok(Arc::new(
        RemoteAuthProvider::builder(verifier)
            .resource_url(resource)
            .authorization_server(issuer)
            .scopes_supported([READ, WRITE])
            .initial_scopes([READ])
            .build()
            .map_err(|e| e.to_string())?,
    ))
}

/// The todo app behind the bearer and policy layers of `provider`.
fn protected(provider: Arc<dyn AuthProvider>, options: &AppOptions) -> Result<Router, String> {
    let (app, _store) = todo_app(provider, options).map_err(|e| e.to_string())?;
    Ok(app)
}

/// The identity of the unprotected and trivial modes.
fn identity(resource: &str) -> AccessToken {
    AccessToken::builder()
        .audience(resource)
        .subject("bench-user")
        .client_id("bench-client")
        .scopes([READ, WRITE])
        .build()
}

/// A verifier that accepts any token as one prebuilt identity (an `Arc` clone). It answers the
/// layer's `verify_cached` too, for every `b64token` (the bytes its `verify` would be handed and
/// accept), so the trivial mode is the cheapest verifier the trait's contract allows: the floor
/// of the layers' own cost.
struct Fixed(AccessToken);

#[mcp_auth_core::async_trait]
impl TokenVerifier for Fixed {
    async fn verify(&self, _token: &str) -> Result<AccessToken, mcp_auth_core::VerifyError> {
        Ok(self.0.clone())
    }

    fn verify_cached(&self, token: &[u8]) -> Option<AccessToken> {
        mcp_auth_core::token::is_b64token(token).then(|| self.0.clone())
    }
}
