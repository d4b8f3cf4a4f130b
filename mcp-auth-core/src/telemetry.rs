//! Metrics (through the [`metrics`] crate facade) and their one naming scheme, for every crate of
//! the workspace.
//!
//! Nothing is recorded until the application installs a recorder (for example
//! `metrics-exporter-prometheus`, or an OpenTelemetry bridge); without one, each call costs a
//! few nanoseconds. The names and labels, identical for JWT and introspection verifiers:
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `mcp_auth_requests_total` | counter | `outcome` (`accepted`, `no_credentials`, `invalid_token`, `invalid_dpop_proof`, `invalid_request`, `insufficient_scope`, `unavailable`, `internal`), `reason` (the [`InvalidToken`](crate::InvalidToken) code for `invalid_token`, the [`ProofError`](crate::dpop::ProofError) code for `invalid_dpop_proof`, `dpop_replay` for a 503 of the DPoP replay store, else `none`) |
//! | `mcp_auth_verify_duration_seconds` | histogram | `outcome` (`ok`, `invalid`, `unavailable`, `internal`) |
//! | `mcp_auth_jwks_fetches_total` | counter | `result` (`ok`, `error`) |
//! | `mcp_auth_cache_lookups_total` | counter | `cache` (`jwt`: verified tokens, `introspection`: introspection answers, `exchange`: exchanged tokens), `layer` (`process`, `store`), `result` (`hit`, `miss`) |
//! | `mcp_auth_idp_requests_total` | counter | `kind` (`introspection`, `token_exchange`), `result` (`ok`: a 2xx answer, `error`: no answer or another status, `saturated`: not sent because every introspection slot was busy, the request got 503) |
//! | `mcp_auth_store_errors_total` | counter | `store` (`memory`, `redis`), `op` (`get`, `set`, `set_if_absent`, `delete`, `ping`), `error` (`timeout`, `unavailable`, `full`, `refused`, `credentials`) |
//!
//! Labels never carry a token, a subject or a client id (unbounded values; personal data).
//!
//! Outcomes are counted where they are decided: the bearer layer counts requests and times
//! verifications (a verifier called without the layer counts only its own JWKS fetches, cache
//! lookups and IdP calls). There are no per-instance counter types beside this scheme: tests read
//! these metrics with a recorder of their own (for example `metrics-util`'s debugging recorder).

use crate::store::StoreError;

/// Requests seen by the bearer layer, by outcome and reason.
pub const REQUESTS: &str = "mcp_auth_requests_total";
/// Time spent in the verifier per request (cache hits included).
pub const VERIFY_DURATION: &str = "mcp_auth_verify_duration_seconds";
/// JWKS (and discovery) fetches.
pub const JWKS_FETCHES: &str = "mcp_auth_jwks_fetches_total";
/// Cache lookups, per cache and layer.
pub const CACHE_LOOKUPS: &str = "mcp_auth_cache_lookups_total";
/// Calls to the IdP made while verifying (introspection).
pub const IDP_REQUESTS: &str = "mcp_auth_idp_requests_total";
/// Failed calls to the shared store.
pub const STORE_ERRORS: &str = "mcp_auth_store_errors_total";

/// Counts one request of the bearer layer.
pub fn request(outcome: &'static str, reason: &'static str) {
    metrics::counter!(REQUESTS, "outcome" => outcome, "reason" => reason).increment(1);
}

/// Records one verification's duration.
pub fn verify_duration(outcome: &'static str, seconds: f64) {
    metrics::histogram!(VERIFY_DURATION, "outcome" => outcome).record(seconds);
}

/// Counts one JWKS fetch.
pub fn jwks_fetch(ok: bool) {
    metrics::counter!(JWKS_FETCHES, "result" => if ok { "ok" } else { "error" }).increment(1);
}

/// Counts one cache lookup: `cache` is `jwt` or `introspection`, `layer` `process` or `store`.
pub fn cache_lookup(cache: &'static str, layer: &'static str, hit: bool) {
    metrics::counter!(
        CACHE_LOOKUPS,
        "cache" => cache,
        "layer" => layer,
        "result" => if hit { "hit" } else { "miss" }
    )
    .increment(1);
}

/// Counts one call to the IdP.
pub fn idp_request(kind: &'static str, ok: bool) {
    metrics::counter!(IDP_REQUESTS, "kind" => kind, "result" => if ok { "ok" } else { "error" })
        .increment(1);
}

/// Counts one call to the IdP that was not sent because every slot for such calls was busy
/// (the request was answered 503): `mcp_auth_idp_requests_total{kind, result="saturated"}`.
pub fn idp_saturated(kind: &'static str) {
    metrics::counter!(IDP_REQUESTS, "kind" => kind, "result" => "saturated").increment(1);
}

/// Counts one failed store call.
pub fn store_error(store: &'static str, error: &StoreError) {
    metrics::counter!(
        STORE_ERRORS,
        "store" => store,
        "op" => error.op(),
        "error" => error.code()
    )
    .increment(1);
}
