//! The shared (second-level) result cache: introspection answers kept in a [`Store`] that every
//! replica reads, behind each replica's own process cache.
//!
//! * Key: `{prefix}:introspect:v1:{namespace}:{hash}`, where `namespace` is the first 16 hex
//!   digits of a BLAKE3 hash of (issuer, introspection endpoint, client id, resource) and `hash`
//!   is the BLAKE3 hash of the token keyed by the full namespace hash. The token itself is never
//!   stored, and two deployments (another IdP, another client, another resource) never read each
//!   other's entries.
//! * Value: the IdP's own response body, only for active answers. A replica that reads it runs
//!   the same local checks as on a fresh answer (`exp`, `nbf`, audience, issuer).
//! * TTL: never past the token's `exp` nor the configured cache TTL; a process-cache entry filled
//!   from the store lives no longer than the store entry's remaining TTL, so revocation lags do
//!   not add up (at most one cache TTL in total).
//! * Failure: a store that is down, slow or holds something unusable counts as a miss and the
//!   IdP is asked (never a 401 or a 200 because of the store); errors are logged (without
//!   tokens, at most one warning per 10 s) and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mcp_auth_core::store::{Store, StoreEntry};

use mcp_auth_core::telemetry;

/// The shared cache of one verifier.
pub(crate) struct Shared {
    store: Arc<dyn Store>,
    /// `{prefix}:introspect:v1:{namespace16}:`.
    key_prefix: String,
    /// The BLAKE3 key the token hashes are keyed with.
    namespace: [u8; 32],
    /// Values larger than this (the response cap) are refused on read.
    max_value: usize,
    last_error_log: AtomicU64,
    started: Instant,
}

/// What identifies the cache namespace.
pub(crate) struct Namespace<'a> {
    pub(crate) issuer: &'a str,
    pub(crate) endpoint: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) resource: &'a str,
}

impl Shared {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        prefix: &str,
        ns: Namespace<'_>,
        max_value: usize,
    ) -> Shared {
        let mut h = blake3::Hasher::new_derive_key("mcp-auth introspection shared cache v1");
        for part in [ns.issuer, ns.endpoint, ns.client_id, ns.resource] {
            // Length-prefixed, so no two tuples hash alike.
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        let namespace: [u8; 32] = h.finalize().into();
        let hex = blake3::Hash::from(namespace).to_hex();
        Shared {
            store,
            key_prefix: format!("{prefix}:introspect:v1:{}:", &hex[..16]),
            namespace,
            max_value,
            last_error_log: AtomicU64::new(u64::MAX),
            started: Instant::now(),
        }
    }

    /// The store key for `token`.
    pub(crate) fn key(&self, token: &str) -> String {
        let h = blake3::keyed_hash(&self.namespace, token.as_bytes());
        format!("{}{}", self.key_prefix, h.to_hex())
    }

    /// The stored answer for `key`, if any and usable; errors count as a miss.
    pub(crate) async fn get(&self, key: &str) -> Option<StoreEntry> {
        match self.store.get(key).await {
            Ok(Some(e)) if e.value.len() <= self.max_value && !e.ttl.is_zero() => {
                telemetry::cache_lookup("introspection", "store", true);
                Some(e)
            }
            Ok(_) => {
                telemetry::cache_lookup("introspection", "store", false);
                None
            }
            Err(e) => {
                self.failed(&e);
                None
            }
        }
    }

    /// Stores an active answer for `ttl` (errors are logged and counted, never returned).
    pub(crate) async fn set(&self, key: &str, body: &[u8], ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        if let Err(e) = self.store.set(key, body, ttl).await {
            self.failed(&e);
        }
    }

    fn failed(&self, e: &mcp_auth_core::store::StoreError) {
        telemetry::store_error(self.store.kind(), e);
        let now = self.started.elapsed().as_secs();
        let last = self.last_error_log.load(Ordering::Relaxed);
        let due = (last == u64::MAX || now >= last.saturating_add(10))
            && self
                .last_error_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if due {
            tracing::warn!(store = self.store.kind(), error = %e,
                "shared introspection cache unavailable: asking the IdP instead");
        } else {
            tracing::debug!(store = self.store.kind(), error = %e,
                "shared introspection cache unavailable: asking the IdP instead");
        }
    }
}
