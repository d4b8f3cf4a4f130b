//! An active readiness signal: whether the IdP (and the shared store, when one is configured)
//! can be reached now.

use std::sync::Arc;
use std::time::{Duration, Instant};

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
/// timeouts. The route is public, so neither can be flooded through it: verifiers that call the
/// IdP for it limit themselves to about one call a second, and the store is pinged by one probe
/// at a time, its answer reused for [`STORE_PROBE_REUSE`] (requests arriving meanwhile wait
/// for the probe in flight and share its answer). An answer is never older than about a second.
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
    let store = store.map(|store| {
        Arc::new(StoreProbe {
            store,
            last: tokio::sync::Mutex::new(None),
        })
    });
    Router::new().route(
        path,
        get(move || {
            let verifier = verifier.clone();
            let store = store.clone();
            async move { probe(&*verifier, store.as_deref()).await }
        }),
    )
}

/// How long the readiness route reuses a store ping's answer.
pub const STORE_PROBE_REUSE: Duration = Duration::from_secs(1);

/// The store's side of readiness: one ping at a time, its answer reused for a second.
struct StoreProbe {
    store: Arc<dyn Store>,
    /// When the last ping ended and whether it succeeded. Held across the ping: the lock is what
    /// keeps a second ping from starting while one is in flight.
    last: tokio::sync::Mutex<Option<(Instant, bool)>>,
}

impl StoreProbe {
    async fn check(&self) -> bool {
        let mut last = self.last.lock().await;
        if let Some((at, ok)) = *last
            && at.elapsed() < STORE_PROBE_REUSE
        {
            return ok;
        }
        let ok = match self.store.ping().await {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(store = self.store.kind(), error = %e, "readiness: store ping failed");
                false
            }
        };
        *last = Some((Instant::now(), ok));
        ok
    }
}

async fn probe(verifier: &dyn TokenVerifier, store: Option<&StoreProbe>) -> Response {
    let (idp, store_state) = tokio::join!(verifier.check_ready(), async {
        match store {
            None => None,
            Some(s) => Some(s.check().await),
        }
    });
    let idp_ok = idp.is_ok();
    let store_ok = store_state.unwrap_or(true);
    let body = serde_json::json!({
        "status": if idp_ok && store_ok { "ready" } else { "unavailable" },
        "idp": if idp_ok { "ok" } else { "unreachable" },
        "store": match store_state {
            None => "none",
            Some(true) => "ok",
            Some(false) => "unreachable",
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
