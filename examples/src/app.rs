//! Assembling a protected MCP app: rmcp's streamable-HTTP service behind the policy and bearer
//! layers, the public metadata routes beside it, CORS outermost.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use http::Request;
use mcp_auth_core::metadata::mcp_cors;
use mcp_auth_core::serve::{CancellationToken, SharedMcpService, allowed_hosts};
use mcp_auth_core::{AccessToken, AuthProvider, BuildError};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tower::ServiceBuilder;

use crate::downstream::Downstream;
use crate::todo::{self, Store, TodoServer};

/// rmcp's request body limit, shared with the policy so both read the same bytes.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Options of [`todo_app`].
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// rmcp legacy session mode (sessions for protocol versions before 2026-07-28).
    pub session_mode: bool,
    /// JSON responses instead of SSE for simple calls.
    pub json_response: bool,
    /// Cancelled when the server shuts down (the token given to
    /// [`mcp_auth_core::serve::serve`]): rmcp then ends its sessions and open streams.
    pub shutdown: CancellationToken,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            session_mode: true,
            json_response: false,
            shutdown: CancellationToken::new(),
        }
    }
}

/// `MCP_AUTH_TRACE_IDENTITY=1` (or `true`): request spans carry the caller's subject and scopes
/// (personal data; off by default).
fn identity_in_spans() -> bool {
    std::env::var("MCP_AUTH_TRACE_IDENTITY")
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// The todo app for `provider`: `/mcp` (rmcp, behind policy and bearer layers), the provider's
/// public routes, CORS outermost. Returns the router and the shared store.
pub fn todo_app(
    provider: Arc<dyn AuthProvider>,
    options: &AppOptions,
) -> Result<(Router, Arc<Store>), BuildError> {
    todo_app_with(provider, options, None)
}

/// [`todo_app`] whose `downstream_whoami` tool calls `downstream` with exchanged tokens: the
/// bearer layer gets the downstream's exchanger, so each request keeps its raw token for it.
pub fn todo_app_with(
    provider: Arc<dyn AuthProvider>,
    options: &AppOptions,
    downstream: Option<Downstream>,
) -> Result<(Router, Arc<Store>), BuildError> {
    let policy = todo::policy(&*provider, MAX_BODY_BYTES)?;
    let mut layer = provider.layer();
    if let Some(d) = &downstream {
        layer = layer.with_token_exchange(d.exchanger().clone());
    }
    let (server, service, store) = mcp_service(&*provider, options, downstream.map(Arc::new));
    policy.report_router(server.router());
    // One tower stack, routed once: `Router::layer` would box every layer in its own route, and
    // each route deep-clones everything under it on every request.
    let service = ServiceBuilder::new()
        .layer(layer.identity_in_spans(identity_in_spans()))
        .layer(policy.layer())
        .service(service);
    Ok((assemble(&*provider, service), store))
}

/// The same app with its bearer and policy layers replaced by one that hands every request
/// `identity` (where the bearer layer would put the verified token: the todo tools read the
/// caller from there). Everything else (rmcp's service and configuration, routing at R, the
/// public routes, CORS) is built by the same code as [`todo_app`].
///
/// This is the baseline of `scripts/load-bench.sh`, which measures what authentication costs;
/// it authenticates nobody, so never serve it anywhere but on a benchmark's loopback.
pub fn unprotected_todo_app(
    provider: Arc<dyn AuthProvider>,
    options: &AppOptions,
    identity: AccessToken,
) -> (Router, Arc<Store>) {
    let (_server, service, store) = mcp_service(&*provider, options, None);
    let service = ServiceBuilder::new()
        .map_request(move |mut req: Request<Body>| {
            req.extensions_mut().insert(identity.clone());
            req
        })
        .service(service);
    (assemble(&*provider, service), store)
}

type TodoService = SharedMcpService<TodoServer, LocalSessionManager>;

/// rmcp's streamable-HTTP service for the todo server, configured from `options`, shared.
fn mcp_service(
    provider: &dyn AuthProvider,
    options: &AppOptions,
    downstream: Option<Arc<Downstream>>,
) -> (TodoServer, TodoService, Arc<Store>) {
    let store = Arc::new(Store::default());
    let server = TodoServer::with_downstream(store.clone(), downstream);
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed_hosts(provider.protected_resource().resource()))
        .with_cancellation_token(options.shutdown.child_token())
        .with_legacy_session_mode(options.session_mode)
        .with_json_response(options.json_response)
        .with_max_request_body_bytes(MAX_BODY_BYTES);
    let factory = server.clone();
    let service: StreamableHttpService<TodoServer, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(factory.clone()), Default::default(), config);
    (server, SharedMcpService::new(service), store)
}

/// `service` routed at exactly R's path, beside the provider's public routes, CORS outermost.
fn assemble<S>(provider: &dyn AuthProvider, service: S) -> Router
where
    S: tower::Service<Request<Body>, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Response: axum::response::IntoResponse + 'static,
    S::Future: Send + 'static,
{
    let path = provider.protected_resource().resource().path().to_owned();
    let mcp = if path.is_empty() {
        Router::new().fallback_service(service)
    } else {
        // The endpoint is exactly R: no prefix matching, nothing stripped.
        Router::new().route_service(&path, service)
    };
    provider.routes().merge(mcp).layer(mcp_cors())
}
