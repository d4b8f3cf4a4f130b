//! The remote key set: discovery, JWKS fetching with single flight, TTL from `Cache-Control`,
//! refetch on unknown keys limited by a cooldown, replace-on-success and a stale bound.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use mcp_auth_core::VerifyError;
use mcp_auth_core::fetch::{FetchError, HttpClient, check_url};
use serde_json::Value;
use url::Url;

use crate::cache::TokenCache;
use crate::keys::{Key, parse_jwks};

/// Timing settings of the key set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JwksTiming {
    pub(crate) cooldown: Duration,
    pub(crate) min_ttl: Duration,
    pub(crate) max_ttl: Duration,
    pub(crate) default_ttl: Duration,
    pub(crate) max_stale: Duration,
}

/// Where the key set comes from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Jwks(Url),
    Discovery { issuer: String },
}

pub(crate) struct KeySet {
    pub(crate) keys: Vec<Arc<Key>>,
    fresh_until: Instant,
    usable_until: Instant,
}

/// Why the last fetch failed, in the words of the log and of `todo doctor`'s `jwks` line.
#[derive(Debug)]
enum FetchFailure {
    /// Discovery or the JWKS request failed (status, connection, size...).
    Fetch(FetchError),
    /// The body is not JSON.
    NotJson,
    /// JSON, but not a key set.
    NotJwks(&'static str),
    /// A key set without a key this verifier can use; `listed` keys were in it.
    NoUsableKey { listed: usize },
}

impl std::fmt::Display for FetchFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchFailure::Fetch(e) => write!(f, "{e}"),
            FetchFailure::NotJson => f.write_str("the body is not JSON"),
            FetchFailure::NotJwks(why) => f.write_str(why),
            FetchFailure::NoUsableKey { listed: 0 } => {
                f.write_str("no usable key (the set is empty)")
            }
            FetchFailure::NoUsableKey { listed } => write!(
                f,
                "no usable key (none of its {listed} key(s) is a signing key of a supported type)"
            ),
        }
    }
}

impl FetchFailure {
    /// The error the rest of the store works with (retry hints come from HTTP errors only).
    fn into_fetch_error(self) -> FetchError {
        match self {
            FetchFailure::Fetch(e) => e,
            _ => FetchError::InvalidJson,
        }
    }
}

#[derive(Default)]
struct Attempts {
    last_completed: Option<Instant>,
    last_retry_after: Option<Duration>,
    /// Consecutive failed fetches while no key set was ever held.
    failures_without_keys: u32,
}

/// The first retry delay while no key set was ever fetched; it doubles per failure up to the
/// cooldown. An IdP that starts after the MCP server is the normal case in containers: waiting a
/// whole cooldown before the second attempt would refuse every request for that long.
pub(crate) const FIRST_FETCH_BACKOFF: Duration = Duration::from_millis(250);

/// `now + d`, saturating far in the future instead of overflowing (durations come from
/// configuration and from the IdP's `Cache-Control`).
pub(crate) fn instant_after(now: Instant, d: Duration) -> Instant {
    let mut d = d;
    loop {
        if let Some(t) = now.checked_add(d) {
            return t;
        }
        d /= 2;
    }
}

pub(crate) struct KeyStore {
    source: Source,
    http: HttpClient,
    timing: JwksTiming,
    resolved: Mutex<Option<Url>>,
    state: RwLock<Option<Arc<KeySet>>>,
    fetch_lock: tokio::sync::Mutex<()>,
    completed: AtomicU64,
    attempts: Mutex<Attempts>,
    background: AtomicBool,
    cache: Option<TokenCache>,
    /// Why the last completed fetch failed (`None` after a success).
    last_failure: Mutex<Option<String>>,
}

impl KeyStore {
    pub(crate) fn new(
        source: Source,
        http: HttpClient,
        timing: JwksTiming,
        cache: Option<TokenCache>,
    ) -> Self {
        let resolved = match &source {
            Source::Jwks(u) => Some(u.clone()),
            Source::Discovery { .. } => None,
        };
        KeyStore {
            source,
            http,
            timing,
            resolved: Mutex::new(resolved),
            state: RwLock::new(None),
            fetch_lock: tokio::sync::Mutex::new(()),
            completed: AtomicU64::new(0),
            attempts: Mutex::new(Attempts::default()),
            background: AtomicBool::new(false),
            cache,
            last_failure: Mutex::new(None),
        }
    }

    fn snapshot(&self) -> Option<Arc<KeySet>> {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether a key set has been fetched and is still within its stale bound.
    pub(crate) fn is_ready(&self) -> bool {
        self.snapshot()
            .is_some_and(|s| Instant::now() < s.usable_until)
    }

    /// Whether the current set still holds the key with fingerprint `fp`.
    pub(crate) fn holds(&self, fp: &[u8; 32]) -> bool {
        self.snapshot()
            .is_some_and(|s| s.keys.iter().any(|k| &k.fingerprint == fp))
    }

    /// Whether the current set holds the key with fingerprint `fp` and is still within its stale
    /// bound (what a token-cache hit needs: past the bound nothing verifies).
    pub(crate) fn holds_usable(&self, fp: &[u8; 32]) -> bool {
        self.snapshot().is_some_and(|s| {
            Instant::now() < s.usable_until && s.keys.iter().any(|k| &k.fingerprint == fp)
        })
    }

    /// The JWKS URL, once known (configured, or resolved by discovery).
    pub(crate) fn known_url(&self) -> Option<Url> {
        self.resolved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The HTTP client of this store.
    pub(crate) fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Why the last completed fetch (discovery included) failed; `None` after a success or
    /// before any fetch.
    pub(crate) fn last_failure(&self) -> Option<String> {
        self.last_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn key_count(&self) -> usize {
        self.snapshot().map_or(0, |s| s.keys.len())
    }

    /// The key set to verify with: the fresh one, a stale one within its bound (refreshed in the
    /// background), or a freshly fetched one. `Unavailable` when nothing usable exists.
    pub(crate) async fn current(self: &Arc<Self>) -> Result<Arc<KeySet>, VerifyError> {
        if let Some(set) = self.snapshot() {
            let now = Instant::now();
            if now < set.fresh_until {
                return Ok(set);
            }
            if now < set.usable_until {
                self.spawn_background_refresh();
                return Ok(set);
            }
        }
        self.fetch_single_flight().await
    }

    /// Refetch because a token named an unknown kid (or its known key failed): at most one fetch
    /// per cooldown. Returns the set to retry with (possibly unchanged).
    pub(crate) async fn refetch_for_unknown(self: &Arc<Self>) -> Result<Arc<KeySet>, VerifyError> {
        self.fetch_single_flight().await
    }

    fn spawn_background_refresh(self: &Arc<Self>) {
        if self.in_cooldown().is_some() {
            return;
        }
        if self
            .background
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let _ = this.fetch_single_flight().await;
            this.background.store(false, Ordering::Release);
        });
    }

    /// The wait between fetches: the cooldown once a key set is held (one refetch per cooldown
    /// however many unknown `kid`s arrive, as the README's deployment notes promise), a backoff
    /// from [`FIRST_FETCH_BACKOFF`] up to the cooldown before that.
    fn wait_after(&self, a: &Attempts, has_keys: bool) -> Duration {
        if has_keys || a.failures_without_keys == 0 {
            return self.timing.cooldown;
        }
        let doublings = a.failures_without_keys.saturating_sub(1).min(20);
        FIRST_FETCH_BACKOFF
            .saturating_mul(1u32 << doublings)
            .min(self.timing.cooldown)
    }

    /// How long the cooldown (or the first-fetch backoff) still runs, if it does.
    fn in_cooldown(&self) -> Option<Duration> {
        let has_keys = self.snapshot().is_some();
        let a = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let last = a.last_completed?;
        let wait = self.wait_after(&a, has_keys);
        let elapsed = last.elapsed();
        (elapsed < wait).then(|| wait - elapsed)
    }

    fn usable_or_unavailable(&self) -> Result<Arc<KeySet>, VerifyError> {
        let snapshot = self.snapshot();
        let has_keys = snapshot.is_some();
        match snapshot {
            Some(set) if Instant::now() < set.usable_until => Ok(set),
            _ => {
                let a = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
                let wait = self.wait_after(&a, has_keys);
                let cooldown_left = a.last_completed.map(|t| wait.saturating_sub(t.elapsed()));
                let retry = a
                    .last_retry_after
                    .or(cooldown_left)
                    .unwrap_or(self.timing.cooldown)
                    .max(Duration::from_secs(1));
                Err(VerifyError::Unavailable {
                    retry_after: Some(Duration::from_secs(retry.as_secs_f64().ceil() as u64)),
                })
            }
        }
    }

    /// One fetch for any number of concurrent callers; none within the cooldown of the last
    /// completed attempt.
    pub(crate) async fn fetch_single_flight(&self) -> Result<Arc<KeySet>, VerifyError> {
        let seen = self.completed.load(Ordering::Acquire);
        let _guard = self.fetch_lock.lock().await;
        if self.completed.load(Ordering::Acquire) != seen {
            // Another caller fetched while we waited: share its outcome.
            return self.usable_or_unavailable();
        }
        if self.in_cooldown().is_some() {
            return self.usable_or_unavailable();
        }
        let outcome = self.fetch_once().await;
        {
            let mut a = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
            a.last_completed = Some(Instant::now());
            a.last_retry_after = outcome.as_ref().err().and_then(FetchError::retry_after);
            a.failures_without_keys = match &outcome {
                Ok(()) => 0,
                Err(_) => a.failures_without_keys.saturating_add(1),
            };
        }
        self.completed.fetch_add(1, Ordering::AcqRel);
        self.usable_or_unavailable()
    }

    async fn jwks_url(&self) -> Result<Url, FetchError> {
        if let Some(u) = self
            .resolved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(u);
        }
        let Source::Discovery { issuer } = &self.source else {
            return Err(FetchError::InvalidJson);
        };
        let url = discover(&self.http, issuer).await?;
        *self.resolved.lock().unwrap_or_else(|e| e.into_inner()) = Some(url.clone());
        Ok(url)
    }

    async fn fetch_once(&self) -> Result<(), FetchError> {
        let result = self.fetch_and_replace().await;
        mcp_auth_core::telemetry::jwks_fetch(result.is_ok());
        let failure = result.as_ref().err().map(ToString::to_string);
        if let Some(e) = &failure {
            let stale = self.snapshot().is_some();
            tracing::warn!(
                error = %e,
                keeping_previous_keys = stale,
                "JWKS fetch failed; previous keys (if any) stay in use within the stale bound"
            );
        }
        *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) = failure;
        result.map_err(FetchFailure::into_fetch_error)
    }

    async fn fetch_and_replace(&self) -> Result<(), FetchFailure> {
        let url = self.jwks_url().await.map_err(FetchFailure::Fetch)?;
        let fetched = self
            .http
            .get_bytes(&url)
            .await
            .map_err(FetchFailure::Fetch)?;
        let doc: Value =
            serde_json::from_slice(&fetched.body).map_err(|_| FetchFailure::NotJson)?;
        let (keys, skipped) = parse_jwks(&doc).map_err(FetchFailure::NotJwks)?;
        for (kid, reason) in &skipped {
            tracing::info!(jwks_uri = %url, kid = ?kid, reason, "skipping unusable JWKS key");
        }
        if keys.is_empty() {
            tracing::error!(jwks_uri = %url, "JWKS has no usable signing key; keeping previous keys");
            return Err(FetchFailure::NoUsableKey {
                listed: skipped.len(),
            });
        }
        let ttl = match fetched.max_age {
            Some(d) => d.clamp(self.timing.min_ttl, self.timing.max_ttl),
            None => self.timing.default_ttl,
        };
        let now = Instant::now();
        let new = Arc::new(KeySet {
            keys: keys.into_iter().map(Arc::new).collect(),
            fresh_until: instant_after(now, ttl),
            usable_until: instant_after(now, ttl.saturating_add(self.timing.max_stale)),
        });
        let new_fps: HashSet<[u8; 32]> = new.keys.iter().map(|k| k.fingerprint).collect();
        let old = {
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            state.replace(Arc::clone(&new))
        };
        if let Some(old) = old {
            let removed: HashSet<[u8; 32]> = old
                .keys
                .iter()
                .map(|k| k.fingerprint)
                .filter(|fp| !new_fps.contains(fp))
                .collect();
            if !removed.is_empty() {
                let kids: Vec<_> = old
                    .keys
                    .iter()
                    .filter(|k| removed.contains(&k.fingerprint))
                    .map(|k| k.kid.clone().unwrap_or_default())
                    .collect();
                tracing::info!(removed_kids = ?kids, "JWKS rotated; tokens signed by removed keys no longer verify");
                if let Some(cache) = &self.cache {
                    cache.purge_keys(removed);
                }
            }
        } else {
            tracing::debug!(jwks_uri = %url, keys = new.keys.len(), "JWKS fetched");
        }
        Ok(())
    }
}

/// Resolves `jwks_uri` from the issuer's metadata: OpenID Connect discovery first, then RFC 8414.
/// A document is used only if its `issuer` equals the configured issuer exactly.
pub(crate) async fn discover(http: &HttpClient, issuer: &str) -> Result<Url, FetchError> {
    let base = Url::parse(issuer).map_err(|_| FetchError::InsecureUrl)?;
    check_url(&base)?;
    let trimmed = issuer.trim_end_matches('/');
    let path = base.path().trim_end_matches('/');
    let origin = base.origin().ascii_serialization();
    let candidates = [
        format!("{trimmed}/.well-known/openid-configuration"),
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
    ];
    let mut last_err = FetchError::InvalidJson;
    for candidate in candidates {
        let Ok(url) = Url::parse(&candidate) else {
            continue;
        };
        match http.get_json::<Value>(&url).await {
            Ok(doc) => {
                let found = doc.body.get("issuer").and_then(Value::as_str);
                if found != Some(issuer) {
                    tracing::error!(
                        metadata_url = %url,
                        expected_issuer = issuer,
                        found_issuer = ?found,
                        "discovery document names another issuer; refusing it (check MCP_AUTH_JWT_ISSUER)"
                    );
                    last_err = FetchError::InvalidJson;
                    continue;
                }
                let jwks = doc
                    .body
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .and_then(|s| Url::parse(s).ok())
                    .ok_or(FetchError::InvalidJson)?;
                check_url(&jwks)?;
                return Ok(jwks);
            }
            Err(e) => last_err = e,
        }
    }
    Err(last_err)
}
