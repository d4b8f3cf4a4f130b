//! `serve`: the todo MCP app (stateless, JSON responses) in one of the bench modes.

use std::sync::Arc;

use axum::Router;
use mcp_auth_core::metadata::mcp_cors;
use mcp_auth_core::{AccessToken, AuthProvider, RemoteAuthProvider};
use mcp_auth_examples::app::{AppOptions, MAX_BODY_BYTES, SharedMcpService, todo_app};
use mcp_auth_examples::todo::{READ, Store, TodoServer, WRITE};
use mcp_auth_introspect::IntrospectionVerifier;
use mcp_auth_jwt::JwtVerifier;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::args::{Args, loopback_url};

/// `serve --mode unprotected|trivial|jwt|introspect --bind 127.0.0.1:PORT ...`: prints `READY <url>` on
/// stdout once listening, serves until killed.
pub fn serve(args: &Args) -> Result<(), String> {
    let bind = args.loopback("bind")?;
    let mode = args.req("mode")?.to_owned();
    let resource = format!("http://{bind}/mcp");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let app = match mode.as_str() {
            "unprotected" => unprotected(bind, &resource)?,
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
                protected(&resource, issuer, Arc::new(verifier))?
            }
            "trivial" => {
                // The whole auth stack (CORS, bearer layer, policy layer, in-tool checks) around
                // a verifier that costs nothing: isolates the layers from the verification.
                protected(
                    &resource,
                    "http://127.0.0.1/",
                    Arc::new(Fixed(identity(&resource))),
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
                protected(&resource, issuer, Arc::new(verifier))?
            }
            other => return Err(format!("unknown --mode {other:?}")),
        };
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|e| format!("bind {bind}: {e}"))?;
        println!("READY {resource}");
        axum::serve(listener, app).await.map_err(|e| e.to_string())
    })
}

/// The todo app behind the bearer and policy layers of a [`RemoteAuthProvider`].
fn protected(
    resource: &str,
    issuer: &str,
    verifier: Arc<dyn mcp_auth_core::TokenVerifier>,
) -> Result<Router, String> {
    let provider: Arc<dyn AuthProvider> = Arc::new(
        RemoteAuthProvider::builder(verifier)
            .resource_url(resource)
            .authorization_server(issuer)
            .scopes_supported([READ, WRITE])
            .initial_scopes([READ])
            .build()
            .map_err(|e| e.to_string())?,
    );
    let (app, _store) = todo_app(
        provider,
        &AppOptions {
            session_mode: false,
            json_response: true,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(app)
}

/// The same rmcp service with no auth layers. The todo tools read the caller from the request,
/// so a fixed identity is put where the bearer layer would put the verified token (one `Arc`
/// clone per request: the tools then do exactly the same work as in the protected modes).
fn unprotected(bind: std::net::SocketAddr, resource: &str) -> Result<Router, String> {
    let store = Arc::new(Store::default());
    let server = TodoServer::new(store);
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts([
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            bind.to_string(),
        ])
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_max_request_body_bytes(MAX_BODY_BYTES);
    let service: StreamableHttpService<TodoServer, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(server.clone()), Default::default(), config);
    let identity = identity(resource);
    let inject = axum::middleware::map_request(move |mut req: axum::extract::Request| {
        let identity = identity.clone();
        async move {
            req.extensions_mut().insert(identity);
            req
        }
    });
    // Routed, shared and wrapped in CORS the way `todo_app` does it: this mode is the same app
    // without authentication, so the ratios measure what authentication costs.
    let service = SharedMcpService::new(service);
    Ok(Router::new()
        .route_service("/mcp", service)
        .layer(inject)
        .layer(mcp_cors()))
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

/// A verifier that accepts any token as one prebuilt identity (an `Arc` clone).
struct Fixed(AccessToken);

#[mcp_auth_core::async_trait]
impl mcp_auth_core::TokenVerifier for Fixed {
    async fn verify(&self, _token: &str) -> Result<AccessToken, mcp_auth_core::VerifyError> {
        Ok(self.0.clone())
    }
}
