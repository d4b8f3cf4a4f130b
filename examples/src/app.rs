//! Assembling a protected MCP app: rmcp's streamable-HTTP service behind the policy and bearer
//! layers, the public metadata routes beside it, CORS outermost.

use std::sync::Arc;

use axum::Router;
use mcp_auth_core::metadata::mcp_cors;
use mcp_auth_core::{AuthProvider, BuildError};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

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
    let path = provider.protected_resource().resource().path().to_owned();
    let mcp = if path.is_empty() {
        Router::new().fallback_service(service)
    } else {
        Router::new().nest_service(&path, service)
    };
    let mcp = mcp.layer(policy.layer()).layer(provider.layer());
    let app = provider.routes().merge(mcp).layer(mcp_cors());
    Ok((app, store))
}
