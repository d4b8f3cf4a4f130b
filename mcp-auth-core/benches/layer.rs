//! The bearer layer's overhead per request with a trivial verifier (target: under 2 µs), measured
//! by calling the tower service directly (no sockets), against the same route without the layer.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use mcp_auth_core::{
    AccessToken, AuthProvider, RemoteAuthProvider, TokenVerifier, VerifyError, async_trait,
};
use tower::ServiceExt;

/// Returns one prebuilt token (a clone of an `Arc`): the cost measured is the layer's own.
struct Trivial(AccessToken);

#[async_trait]
impl TokenVerifier for Trivial {
    async fn verify(&self, _token: &str) -> Result<AccessToken, VerifyError> {
        Ok(self.0.clone())
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let resource = "https://api.example.com/mcp";
    let token = AccessToken::builder()
        .subject("user")
        .client_id("client")
        .scopes(["todo:read", "todo:write"])
        .audience(resource)
        .expires_at_unix(4_102_444_800)
        .build();
    let provider = RemoteAuthProvider::builder(Arc::new(Trivial(token)))
        .resource_url(resource)
        .authorization_server("https://idp.example.com")
        .required_scopes(["todo:read"])
        .build()
        .unwrap();
    let handler = || async { "ok" };
    let bare: Router = Router::new().route("/mcp", post(handler));
    let protected: Router = Router::new()
        .route("/mcp", post(handler))
        .layer(provider.layer());
    let bearer = format!("Bearer {}", "x".repeat(1000));

    let mut group = c.benchmark_group("layer");
    group.bench_function("unprotected_route", |b| {
        b.to_async(&rt).iter(|| {
            let app = bare.clone();
            async move {
                let req = Request::post("/mcp").body(Body::empty()).unwrap();
                app.oneshot(req).await.unwrap()
            }
        })
    });
    group.bench_function("protected_route_1k_token", |b| {
        b.to_async(&rt).iter(|| {
            let app = protected.clone();
            let bearer = bearer.clone();
            async move {
                let req = Request::post("/mcp")
                    .header("authorization", bearer)
                    .body(Body::empty())
                    .unwrap();
                app.oneshot(req).await.unwrap()
            }
        })
    });
    group.bench_function("rejected_no_credentials", |b| {
        b.to_async(&rt).iter(|| {
            let app = protected.clone();
            async move {
                let req = Request::post("/mcp").body(Body::empty()).unwrap();
                app.oneshot(req).await.unwrap()
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
