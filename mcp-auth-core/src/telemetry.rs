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

use metrics::{Key, Label, Level, Metadata};

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

/// A metric key built at compile time: no allocation and no hashing per call. Handles are
/// registered with the recorder in place at each call (never cached), so a recorder installed
/// after the layers were built still gets every count.
macro_rules! key {
    ($name:expr, $($k:literal => $v:literal),+ $(,)?) => {{
        static LABELS: &[Label] = &[$(Label::from_static_parts($k, $v)),+];
        static KEY: Key = Key::from_static_parts($name, LABELS);
        &KEY
    }};
}

/// What the `metrics` macros would pass for a call made in this module.
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

fn increment(key: &'static Key) {
    metrics::with_recorder(|r| r.register_counter(key, &METADATA)).increment(1);
}

/// Counts one request of the bearer layer.
pub fn request(outcome: &'static str, reason: &'static str) {
    // The outcomes without a reason have their keys built once; the reasons of `invalid_token`
    // and `invalid_dpop_proof` (rejections, which cost far more than a label set) go the
    // general way.
    let key = match (outcome, reason) {
        ("accepted", "none") => key!(REQUESTS, "outcome" => "accepted", "reason" => "none"),
        ("no_credentials", "none") => {
            key!(REQUESTS, "outcome" => "no_credentials", "reason" => "none")
        }
        ("invalid_request", "none") => {
            key!(REQUESTS, "outcome" => "invalid_request", "reason" => "none")
        }
        ("insufficient_scope", "none") => {
            key!(REQUESTS, "outcome" => "insufficient_scope", "reason" => "none")
        }
        ("unavailable", "none") => key!(REQUESTS, "outcome" => "unavailable", "reason" => "none"),
        ("internal", "none") => key!(REQUESTS, "outcome" => "internal", "reason" => "none"),
        _ => {
            metrics::counter!(REQUESTS, "outcome" => outcome, "reason" => reason).increment(1);
            return;
        }
    };
    increment(key);
}

/// Records one verification's duration.
pub fn verify_duration(outcome: &'static str, seconds: f64) {
    let key = match outcome {
        "ok" => key!(VERIFY_DURATION, "outcome" => "ok"),
        "invalid" => key!(VERIFY_DURATION, "outcome" => "invalid"),
        "unavailable" => key!(VERIFY_DURATION, "outcome" => "unavailable"),
        "internal" => key!(VERIFY_DURATION, "outcome" => "internal"),
        _ => {
            metrics::histogram!(VERIFY_DURATION, "outcome" => outcome).record(seconds);
            return;
        }
    };
    metrics::with_recorder(|r| r.register_histogram(key, &METADATA)).record(seconds);
}

/// Counts one JWKS fetch.
pub fn jwks_fetch(ok: bool) {
    increment(if ok {
        key!(JWKS_FETCHES, "result" => "ok")
    } else {
        key!(JWKS_FETCHES, "result" => "error")
    });
}

/// Counts one cache lookup: `cache` is `jwt` or `introspection`, `layer` `process` or `store`.
pub fn cache_lookup(cache: &'static str, layer: &'static str, hit: bool) {
    let key = match (cache, layer, hit) {
        ("jwt", "process", true) => {
            key!(CACHE_LOOKUPS, "cache" => "jwt", "layer" => "process", "result" => "hit")
        }
        ("jwt", "process", false) => {
            key!(CACHE_LOOKUPS, "cache" => "jwt", "layer" => "process", "result" => "miss")
        }
        ("introspection", "process", true) => {
            key!(CACHE_LOOKUPS, "cache" => "introspection", "layer" => "process", "result" => "hit")
        }
        ("introspection", "process", false) => key!(
            CACHE_LOOKUPS, "cache" => "introspection", "layer" => "process", "result" => "miss"
        ),
        ("introspection", "store", true) => {
            key!(CACHE_LOOKUPS, "cache" => "introspection", "layer" => "store", "result" => "hit")
        }
        ("introspection", "store", false) => {
            key!(CACHE_LOOKUPS, "cache" => "introspection", "layer" => "store", "result" => "miss")
        }
        _ => {
            metrics::counter!(
                CACHE_LOOKUPS,
                "cache" => cache,
                "layer" => layer,
                "result" => if hit { "hit" } else { "miss" }
            )
            .increment(1);
            return;
        }
    };
    increment(key);
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

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    /// One recorded metric: name, sorted labels, count (or number of samples).
    type Recorded = (String, Vec<(String, String)>, u64);

    /// Every metric recorded while `f` runs.
    fn recorded(f: impl FnOnce()) -> Vec<Recorded> {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, f);
        let mut out: Vec<_> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let k = key.key();
                let mut labels: Vec<(String, String)> = k
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                labels.sort();
                let n = match value {
                    DebugValue::Counter(n) => n,
                    DebugValue::Histogram(v) => v.len() as u64,
                    DebugValue::Gauge(_) => 0,
                };
                (k.name().to_owned(), labels, n)
            })
            .collect();
        out.sort();
        out
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<_> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn prebuilt_and_general_keys_carry_the_same_names_and_labels() {
        let outcomes = [
            "accepted",
            "no_credentials",
            "invalid_request",
            "insufficient_scope",
            "unavailable",
            "internal",
        ];
        let got = recorded(|| {
            for o in outcomes {
                request(o, "none");
                request(o, "none");
            }
            request("invalid_token", "malformed");
            request("unavailable", "dpop_replay");
        });
        let mut want: Vec<_> = outcomes
            .iter()
            .map(|o| {
                let l = labels(&[("outcome", o), ("reason", "none")]);
                (REQUESTS.to_owned(), l, 2)
            })
            .collect();
        want.push((
            REQUESTS.to_owned(),
            labels(&[("outcome", "invalid_token"), ("reason", "malformed")]),
            1,
        ));
        want.push((
            REQUESTS.to_owned(),
            labels(&[("outcome", "unavailable"), ("reason", "dpop_replay")]),
            1,
        ));
        want.sort();
        assert_eq!(got, want);

        let got = recorded(|| {
            for o in ["ok", "invalid", "unavailable", "internal", "ok"] {
                verify_duration(o, 0.001);
            }
        });
        let want = vec![
            (
                VERIFY_DURATION.to_owned(),
                labels(&[("outcome", "internal")]),
                1,
            ),
            (
                VERIFY_DURATION.to_owned(),
                labels(&[("outcome", "invalid")]),
                1,
            ),
            (VERIFY_DURATION.to_owned(), labels(&[("outcome", "ok")]), 2),
            (
                VERIFY_DURATION.to_owned(),
                labels(&[("outcome", "unavailable")]),
                1,
            ),
        ];
        assert_eq!(got, want);

        let got = recorded(|| {
            for cache in ["jwt", "introspection"] {
                for layer in ["process", "store"] {
                    cache_lookup(cache, layer, true);
                    cache_lookup(cache, layer, false);
                    cache_lookup(cache, layer, false);
                }
            }
            jwks_fetch(true);
            jwks_fetch(false);
            jwks_fetch(false);
        });
        let mut want = Vec::new();
        for cache in ["jwt", "introspection"] {
            for layer in ["process", "store"] {
                for (result, n) in [("hit", 1), ("miss", 2)] {
                    let l = labels(&[("cache", cache), ("layer", layer), ("result", result)]);
                    want.push((CACHE_LOOKUPS.to_owned(), l, n));
                }
            }
        }
        want.push((JWKS_FETCHES.to_owned(), labels(&[("result", "error")]), 2));
        want.push((JWKS_FETCHES.to_owned(), labels(&[("result", "ok")]), 1));
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn a_recorder_installed_after_earlier_calls_gets_every_later_count() {
        // Calls made before any recorder is installed are lost, never the ones after: no handle
        // registered with the no-op recorder is kept.
        request("accepted", "none");
        cache_lookup("jwt", "process", true);
        let got = recorded(|| {
            request("accepted", "none");
            cache_lookup("jwt", "process", true);
        });
        assert_eq!(
            got,
            vec![
                (
                    CACHE_LOOKUPS.to_owned(),
                    labels(&[("cache", "jwt"), ("layer", "process"), ("result", "hit")]),
                    1
                ),
                (
                    REQUESTS.to_owned(),
                    labels(&[("outcome", "accepted"), ("reason", "none")]),
                    1
                ),
            ]
        );
    }
}
