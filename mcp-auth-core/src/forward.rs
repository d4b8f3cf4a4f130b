//! Forwarding an IdP's authorization-server metadata (RFC 8414) at
//! `/.well-known/oauth-authorization-server`, for older MCP clients that look for it on the MCP
//! server's origin.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use url::Url;

use crate::{BuildError, Setting};

const UPSTREAM: Setting = Setting::new("metadata_upstream", "metadata upstream");
use crate::fetch::{HttpClient, check_url};
use crate::metadata::{discovery_cors, json_document};

/// The local path the forwarded document is served at.
pub const AS_METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

/// How long a fetched document is kept by default.
pub const DEFAULT_FORWARD_TTL: Duration = Duration::from_secs(300);

/// Serves an upstream authorization-server metadata document: fetched fresh with no client
/// headers passed on, accepted only when it is a JSON object, never rewritten (its `issuer` stays
/// the IdP's), cached, with CORS. Upstream failures answer 502 with a generic body and are not
/// cached.
///
/// ```
/// use axum::Router;
/// use mcp_auth_core::forward::MetadataForwarder;
///
/// let forwarder = MetadataForwarder::new(
///     "https://acme.example.com/.well-known/oauth-authorization-server",
/// )
/// .unwrap();
/// let routes: Router = forwarder.router();
/// ```
#[derive(Debug, Clone)]
pub struct MetadataForwarder {
    upstream: Url,
    client: HttpClient,
    ttl: Duration,
}

impl MetadataForwarder {
    /// Forwards the document at `upstream` (https, or http on loopback).
    pub fn new(upstream: &str) -> Result<Self, BuildError> {
        let url = Url::parse(upstream)
            .map_err(|e| BuildError::invalid(UPSTREAM, format!("{upstream:?}: {e}")))?;
        check_url(&url)
            .map_err(|_| BuildError::invalid(UPSTREAM, "must be https (http only on loopback)"))?;
        Ok(MetadataForwarder {
            upstream: url,
            client: HttpClient::shared(),
            ttl: DEFAULT_FORWARD_TTL,
        })
    }

    /// Uses another HTTP client (shorter timeouts in tests, say).
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.client = client;
        self
    }

    /// How long a fetched document is served from cache.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The upstream URL.
    pub fn upstream(&self) -> &Url {
        &self.upstream
    }

    /// The route at [`AS_METADATA_PATH`].
    pub fn router(self) -> Router {
        let cache: moka::future::Cache<(), Bytes> = moka::future::Cache::builder()
            .max_capacity(1)
            .time_to_live(self.ttl)
            .build();
        let state = Arc::new((self, cache));
        let handler = move || {
            let state = state.clone();
            async move {
                let (fwd, cache) = &*state;
                let result = cache.try_get_with((), fwd.fetch()).await;
                match result {
                    Ok(body) => json_document(body, "public, max-age=300"),
                    Err(reason) => {
                        tracing::warn!(upstream = %fwd.upstream, reason = %reason,
                            "authorization-server metadata upstream failed: answering 502");
                        bad_gateway()
                    }
                }
            }
        };
        Router::new()
            .route(
                AS_METADATA_PATH,
                get(handler).options(|| async { StatusCode::NO_CONTENT }),
            )
            .layer(discovery_cors())
    }

    async fn fetch(&self) -> Result<Bytes, String> {
        let fetched = self
            .client
            .get_bytes(&self.upstream)
            .await
            .map_err(|e| e.to_string())?;
        match serde_json::from_slice::<serde_json::Value>(&fetched.body) {
            Ok(serde_json::Value::Object(_)) => Ok(fetched.body),
            _ => Err("upstream answered something other than a JSON object".into()),
        }
    }
}

fn bad_gateway() -> Response<Body> {
    let mut resp = Response::new(Body::from(r#"{"error":"upstream_unavailable"}"#));
    *resp.status_mut() = StatusCode::BAD_GATEWAY;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
