//! Counters of one verifier: JWKS fetches, cache hits, outcomes by reason.

use std::sync::atomic::{AtomicU64, Ordering};

use mcp_auth_core::InvalidToken;

#[derive(Default)]
pub(crate) struct Metrics {
    pub(crate) jwks_fetches: AtomicU64,
    pub(crate) jwks_fetch_failures: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
    pub(crate) cache_misses: AtomicU64,
    pub(crate) verified: AtomicU64,
    pub(crate) unavailable: AtomicU64,
    pub(crate) rejected: [AtomicU64; InvalidToken::ALL.len()],
}

impl Metrics {
    pub(crate) fn reject(&self, reason: InvalidToken) {
        if let Some(i) = InvalidToken::ALL.iter().position(|r| *r == reason) {
            self.rejected[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> JwtMetrics {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        JwtMetrics {
            jwks_fetches: get(&self.jwks_fetches),
            jwks_fetch_failures: get(&self.jwks_fetch_failures),
            token_cache_hits: get(&self.cache_hits),
            token_cache_misses: get(&self.cache_misses),
            verified: get(&self.verified),
            unavailable: get(&self.unavailable),
            rejected: InvalidToken::ALL
                .iter()
                .zip(self.rejected.iter())
                .map(|(r, n)| (*r, get(n)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        }
    }
}

/// A snapshot of a [`crate::JwtVerifier`]'s counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JwtMetrics {
    /// JWKS (and discovery) fetch attempts, successful or not.
    pub jwks_fetches: u64,
    /// Failed JWKS fetch attempts.
    pub jwks_fetch_failures: u64,
    /// Verifications answered from the verified-token cache.
    pub token_cache_hits: u64,
    /// Verifications that missed the cache (only counted while the cache is on).
    pub token_cache_misses: u64,
    /// Tokens accepted (including cache hits).
    pub verified: u64,
    /// Verifications refused with "unavailable" (no usable key set).
    pub unavailable: u64,
    /// Rejections by reason (reasons with a zero count are left out).
    pub rejected: Vec<(InvalidToken, u64)>,
}

impl JwtMetrics {
    /// Rejections for one reason.
    pub fn rejected_for(&self, reason: InvalidToken) -> u64 {
        self.rejected
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }
}
