//! Assembling a protected MCP app: rmcp's streamable-HTTP service behind the policy and bearer
//! layers, the public metadata routes beside it, CORS outermost.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use http::{Request, Response};
use mcp_auth_core::metadata::mcp_cors;
use mcp_auth_core::{AuthProvider, BuildError};
use rmcp::ServerHandler;
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tower::ServiceBuilder;

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
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            session_mode: true,
            json_response: false,
        }
    }
}

/// `Host` values rmcp must accept: the resource URL's host (with and without port) plus loopback.
/// rmcp refuses other hosts (DNS-rebinding protection), so a deployment behind a proxy works as
/// long as `MCP_AUTH_RESOURCE_URL` names the public host.
pub fn allowed_hosts(provider: &dyn AuthProvider) -> Vec<String> {
    let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    let resource = provider.protected_resource().resource().as_str();
    let url = url::Url::parse(resource).ok();
    if let Some(h) = url.as_ref().and_then(|u| u.host_str()) {
        hosts.push(h.trim_matches(|c| c == '[' || c == ']').to_owned());
        if let Some(p) = url.as_ref().and_then(|u| u.port()) {
            hosts.push(format!("{h}:{p}"));
        }
    }
    hosts.sort();
    hosts.dedup();
    hosts
}

/// The todo app for `provider`: `/mcp` (rmcp, behind policy and bearer layers), the provider's
/// public routes, CORS outermost. Returns the router and the shared store.
pub fn todo_app(
    provider: Arc<dyn AuthProvider>,
    options: &AppOptions,
) -> Result<(Router, Arc<Store>), BuildError> {
    let policy = todo::policy(&*provider, MAX_BODY_BYTES)?;
    let store = Arc::new(Store::default());
    let server = TodoServer::new(store.clone());
    policy.report_router(server.router());
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed_hosts(&*provider))
        .with_legacy_session_mode(options.session_mode)
        .with_json_response(options.json_response)
        .with_max_request_body_bytes(MAX_BODY_BYTES);
    let service: StreamableHttpService<TodoServer, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(server.clone()), Default::default(), config);
    // One tower stack, routed once: `Router::layer` would box every layer in its own route, and
    // each route deep-clones everything under it on every request.
    let service = ServiceBuilder::new()
        .layer(provider.layer())
        .layer(policy.layer())
        .service(SharedMcpService::new(service));
    let path = provider.protected_resource().resource().path().to_owned();
    let mcp = if path.is_empty() {
        Router::new().fallback_service(service)
    } else {
        // The endpoint is exactly R: no prefix matching, nothing stripped.
        Router::new().route_service(&path, service)
    };
    let app = provider.routes().merge(mcp).layer(mcp_cors());
    Ok((app, store))
}

/// rmcp's streamable-HTTP service behind an `Arc`.
///
/// tower clones a service for every request it serves (once per layer and route above it);
/// cloning [`StreamableHttpService`] copies its whole configuration (the allowed-host list
/// among it), cloning this is one reference-count increment. The requests are handled exactly
/// as rmcp's own `Service` implementation handles them.
pub struct SharedMcpService<S, M>(Arc<StreamableHttpService<S, M>>);

impl<S, M> SharedMcpService<S, M> {
    /// Shares `service`.
    pub fn new(service: StreamableHttpService<S, M>) -> Self {
        SharedMcpService(Arc::new(service))
    }
}

impl<S, M> Clone for SharedMcpService<S, M> {
    fn clone(&self) -> Self {
        SharedMcpService(self.0.clone())
    }
}

impl<S, M> tower::Service<Request<Body>> for SharedMcpService<S, M>
where
    S: ServerHandler + Send + 'static,
    M: SessionManager,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move { Ok(service.handle(req).await.map(Body::new)) })
    }
}
