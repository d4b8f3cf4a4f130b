//! An active readiness signal: whether the IdP (and the shared store, when one is configured)
//! can be reached now.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::TokenVerifier;
use crate::store::Store;

/// A public route at `path` answering `GET` with 200 when the verifier's IdP and the store (if
/// any) answer now, else 503 with `Retry-After: 1`. The JSON body says which part failed:
/// `{"status":"ready"|"unavailable","idp":"ok"|"unreachable","store":"ok"|"unreachable"|"none"}`.
///
/// Each probe is active ([`TokenVerifier::check_ready`], [`Store::ping`]) and bounded by their
/// timeouts; verifiers that call the IdP for it limit themselves to about one call a second, so
/// the public route cannot be used to flood the IdP.
///
/// ```
/// # use std::sync::Arc;
/// # use mcp_auth_core::{AccessToken, TokenVerifier, VerifyError, InvalidToken, async_trait};
/// # struct V;
/// # #[async_trait] impl TokenVerifier for V {
/// #   async fn verify(&self, _: &str) -> Result<AccessToken, VerifyError> { Err(InvalidToken::Malformed.into()) }
/// # }
/// let verifier: Arc<dyn TokenVerifier> = Arc::new(V);
/// let routes: axum::Router = mcp_auth_core::readiness::readiness_route("/ready", verifier, None);
/// ```
pub fn readiness_route(
    path: &str,
    verifier: Arc<dyn TokenVerifier>,
    store: Option<Arc<dyn Store>>,
) -> Router {
    Router::new().route(
        path,
        get(move || {
            let verifier = verifier.clone();
            let store = store.clone();
            async move { probe(&*verifier, store.as_deref()).await }
        }),
    )
}

async fn probe(verifier: &dyn TokenVerifier, store: Option<&dyn Store>) -> Response {
    let (idp, store_state) = tokio::join!(verifier.check_ready(), async {
        match store {
            None => None,
            Some(s) => Some(s.ping().await),
        }
    });
    let idp_ok = idp.is_ok();
    let store_ok = store_state.as_ref().is_none_or(Result::is_ok);
    let body = serde_json::json!({
        "status": if idp_ok && store_ok { "ready" } else { "unavailable" },
        "idp": if idp_ok { "ok" } else { "unreachable" },
        "store": match &store_state {
            None => "none",
            Some(Ok(())) => "ok",
            Some(Err(_)) => "unreachable",
        },
    });
    if idp_ok && store_ok {
        (StatusCode::OK, axum::Json(body)).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, "1")],
            axum::Json(body),
        )
            .into_response()
    }
}
