//! RFC 9728 protected-resource metadata: the document and the routes that serve it.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Response, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};

use crate::resource::{PRM_WELL_KNOWN, ResourceUrl};

/// The protected-resource metadata document (RFC 9728 §2). Empty fields are omitted; fields this
/// type does not name go in `extra` and are served as they are.
///
/// ```
/// use mcp_auth_core::ProtectedResourceMetadata;
/// let mut m = ProtectedResourceMetadata::new("https://api.example.com/mcp");
/// m.authorization_servers = vec!["https://idp.example.com".into()];
/// m.scopes_supported = vec!["todo:read".into()];
/// let json = serde_json::to_value(&m).unwrap();
/// assert_eq!(json["bearer_methods_supported"], serde_json::json!(["header"]));
/// assert!(json.get("resource_name").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProtectedResourceMetadata {
    /// The resource identifier: R exactly.
    pub resource: String,
    /// Issuer identifiers of the authorization servers, exactly as configured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_servers: Vec<String>,
    /// URL of the resource's JWK set (for signed responses; rarely used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Scopes clients may request for this resource (never `offline_access`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// How the token may be sent: only `header` here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bearer_methods_supported: Vec<String>,
    /// JWS algorithms the resource uses for signing responses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_signing_alg_values_supported: Vec<String>,
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// Developer documentation URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
    /// Policy URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_policy_uri: Option<String>,
    /// Terms of service URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_tos_uri: Option<String>,
    /// Whether the resource supports mTLS sender-constrained tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_certificate_bound_access_tokens: Option<bool>,
    /// Authorization-details types supported (RFC 9396).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_details_types_supported: Vec<String>,
    /// DPoP algorithms supported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// Whether DPoP is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_bound_access_tokens_required: Option<bool>,
    /// Signed metadata (a JWT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_metadata: Option<String>,
    /// Any other member.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ProtectedResourceMetadata {
    /// A document for `resource` with `bearer_methods_supported: ["header"]`.
    pub fn new(resource: impl Into<String>) -> Self {
        ProtectedResourceMetadata {
            resource: resource.into(),
            authorization_servers: Vec::new(),
            jwks_uri: None,
            scopes_supported: Vec::new(),
            bearer_methods_supported: vec!["header".into()],
            resource_signing_alg_values_supported: Vec::new(),
            resource_name: None,
            resource_documentation: None,
            resource_policy_uri: None,
            resource_tos_uri: None,
            tls_client_certificate_bound_access_tokens: None,
            authorization_details_types_supported: Vec::new(),
            dpop_signing_alg_values_supported: Vec::new(),
            dpop_bound_access_tokens_required: None,
            signed_metadata: None,
            extra: Map::new(),
        }
    }
}

/// `Cache-Control` of the metadata responses.
pub const METADATA_CACHE_CONTROL: &str = "public, max-age=3600";

/// The CORS layer of public discovery documents: any origin, `GET`/`OPTIONS`, and the headers MCP
/// browser clients send in preflights.
pub fn discovery_cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods(AllowMethods::list([Method::GET, Method::OPTIONS]))
        .allow_headers(AllowHeaders::list([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("mcp-protocol-version"),
        ]))
        .max_age(std::time::Duration::from_secs(86_400))
}

/// A CORS layer for browser MCP clients, to put outermost on the whole app: any origin, the MCP
/// methods and request headers, and `WWW-Authenticate` / `Mcp-Session-Id` exposed so a browser
/// client can read the challenge of a 401/403 and its session id.
///
/// ```
/// use axum::{routing::post, Router};
/// let app: Router = Router::new()
///     .route("/mcp", post(|| async { "…" }))
///     .layer(mcp_auth_core::metadata::mcp_cors());
/// ```
pub fn mcp_cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods(AllowMethods::list([
            Method::GET,
            Method::POST,
            Method::DELETE,
            Method::OPTIONS,
        ]))
        .allow_headers(AllowHeaders::list([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("mcp-protocol-version"),
            HeaderName::from_static("mcp-session-id"),
            HeaderName::from_static("mcp-method"),
            HeaderName::from_static("mcp-name"),
            HeaderName::from_static("last-event-id"),
            HeaderName::from_static("dpop"),
        ]))
        .expose_headers([
            header::WWW_AUTHENTICATE,
            HeaderName::from_static("mcp-session-id"),
            HeaderName::from_static("dpop-nonce"),
        ])
        .max_age(std::time::Duration::from_secs(86_400))
}

/// Serves a fixed JSON document with the discovery headers.
pub(crate) fn json_document(body: Bytes, cache_control: &'static str) -> Response<Body> {
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    resp
}

/// The routes serving `metadata`: the path-inserted URL of `resource`, and, when `root_alias` is
/// on, the root `/.well-known/oauth-protected-resource` as well (a documented deviation from RFC
/// 9728 §3.3 that lenient clients rely on; switch it off when one host serves several resources).
///
/// The paths are absolute: merge the router at the host root even when the MCP endpoint sits under
/// a prefix. The document is serialized once, here.
pub fn metadata_router(
    resource: &ResourceUrl,
    metadata: &ProtectedResourceMetadata,
    root_alias: bool,
) -> Router {
    let body = Bytes::from(serde_json::to_vec(metadata).unwrap_or_else(|_| b"{}".to_vec()));
    let serve = move || {
        let body = body.clone();
        async move { json_document(body, METADATA_CACHE_CONTROL) }
    };
    let options = || async { StatusCode::NO_CONTENT };
    let method_router = get(serve).options(options);
    let mut router = Router::new().route(&resource.metadata_path(), method_router.clone());
    if root_alias && !resource.is_origin_only() {
        router = router.route(PRM_WELL_KNOWN, method_router);
    }
    router.layer(discovery_cors())
}
