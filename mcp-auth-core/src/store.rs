//! A small key-value store with expiry, shared by several replicas of one server.
//!
//! Verification is stateless, but two things are not: the introspection result cache (without
//! sharing, every replica asks the IdP about the same token) and DPoP `jti` replay protection (a
//! proof replayed at another replica must fail). Both sit on [`Store`]:
//!
//! * [`MemoryStore`]: the default, in this process only, nothing to set up.
//! * `RedisStore` (feature `redis`): Redis or Valkey, shared by every replica that points at it.
//!   Selected for the servers of this workspace by `MCP_AUTH_STORE_URL`
//!   ([`StoreConfig::from_env`]).
//!
//! A store that is down or slow answers with a [`StoreError`] (after a bounded time); callers
//! decide how to degrade: the introspection cache falls back to the IdP, a replay check refuses
//! (fail closed). Whoever can write to the store can make a token look active or a replayed proof
//! look fresh: protect it like the IdP (TLS, ACL credentials, a private network).
//!
//! ```
//! # async fn demo() -> Result<(), mcp_auth_core::store::StoreError> {
//! use std::time::Duration;
//! use mcp_auth_core::store::{MemoryStore, Store};
//!
//! let store = MemoryStore::new();
//! store.set("k", b"v", Duration::from_secs(60)).await?;
//! let hit = store.get("k").await?.expect("just set");
//! assert_eq!(hit.value, b"v");
//! assert!(hit.ttl <= Duration::from_secs(60));
//! // set_if_absent: true for the first writer only (a DPoP `jti` seen for the first time).
//! assert!(store.set_if_absent("jti:1", b"", Duration::from_secs(300)).await?);
//! assert!(!store.set_if_absent("jti:1", b"", Duration::from_secs(300)).await?);
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;
#[cfg(feature = "cache")]
use std::time::Instant;

use async_trait::async_trait;
#[cfg(all(feature = "config", feature = "cache"))]
use figment::Figment;
#[cfg(all(feature = "config", feature = "cache"))]
use serde::Deserialize;

#[cfg(all(feature = "config", feature = "cache"))]
use crate::config::{ConfigError, EnvTable, extract, figment};

#[cfg(feature = "redis")]
mod redis_store;
#[cfg(feature = "redis")]
pub use redis_store::{DEFAULT_STORE_TIMEOUT, RedisStore, RedisStoreBuilder};

/// A value read from a [`Store`], with the time it has left.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreEntry {
    /// The stored bytes.
    pub value: Vec<u8>,
    /// How long the entry has left before the store drops it (never more than the TTL it was
    /// written with). A cache filled from this entry must not keep it longer.
    pub ttl: Duration,
}

impl fmt::Debug for StoreEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may hold claims (personal data): never printed.
        f.debug_struct("StoreEntry")
            .field("value_len", &self.value.len())
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// Why a store call failed. Opaque, with predicates, so the backends can change.
#[derive(Debug, Clone, thiserror::Error)]
#[error("store {op} failed: {kind}")]
pub struct StoreError {
    op: &'static str,
    kind: StoreErrorKind,
}

#[derive(Debug, Clone, thiserror::Error)]
enum StoreErrorKind {
    #[error("timed out")]
    Timeout,
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("full")]
    Full,
    #[error("refused: {0}")]
    Refused(String),
    #[error("credentials refused (check the ACL user and password in the store URL)")]
    Credentials,
}

impl StoreError {
    /// The call did not complete within the store's timeout.
    pub fn timeout(op: &'static str) -> Self {
        StoreError {
            op,
            kind: StoreErrorKind::Timeout,
        }
    }

    /// The store could not be reached (connection refused or lost, TLS failure, ...).
    pub fn unavailable(op: &'static str, detail: impl Into<String>) -> Self {
        StoreError {
            op,
            kind: StoreErrorKind::Unavailable(detail.into()),
        }
    }

    /// The store is full and refuses new entries rather than evicting live ones.
    pub fn full(op: &'static str) -> Self {
        StoreError {
            op,
            kind: StoreErrorKind::Full,
        }
    }

    /// The store answered with an error (wrong credentials, a read-only replica, ...).
    pub fn refused(op: &'static str, detail: impl Into<String>) -> Self {
        StoreError {
            op,
            kind: StoreErrorKind::Refused(detail.into()),
        }
    }

    /// The store refused the credentials (a wrong ACL user or password, or none where the server
    /// requires them).
    pub fn credentials(op: &'static str) -> Self {
        StoreError {
            op,
            kind: StoreErrorKind::Credentials,
        }
    }

    /// The operation that failed: `get`, `set`, `set_if_absent`, `delete` or `ping`.
    pub fn op(&self) -> &'static str {
        self.op
    }

    /// Whether the call timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, StoreErrorKind::Timeout)
    }

    /// Whether the store could not be reached (includes timeouts).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self.kind,
            StoreErrorKind::Timeout | StoreErrorKind::Unavailable(_)
        )
    }

    /// Whether the store refused the credentials (wrong ACL user or password).
    pub fn is_credentials(&self) -> bool {
        matches!(self.kind, StoreErrorKind::Credentials)
    }

    /// Whether the store refused a new entry because it is full.
    pub fn is_full(&self) -> bool {
        matches!(self.kind, StoreErrorKind::Full)
    }

    /// A stable code for logs and metrics: `timeout`, `unavailable`, `full`, `refused` or
    /// `credentials`.
    pub fn code(&self) -> &'static str {
        match self.kind {
            StoreErrorKind::Timeout => "timeout",
            StoreErrorKind::Unavailable(_) => "unavailable",
            StoreErrorKind::Full => "full",
            StoreErrorKind::Refused(_) => "refused",
            StoreErrorKind::Credentials => "credentials",
        }
    }
}

/// A key-value store with per-entry expiry: the state several replicas share.
///
/// Keys are short printable strings chosen by the caller (namespaced, and never a token: hash
/// it); values are bytes. Every call completes within a bounded time or fails with a
/// [`StoreError`]; no call panics on bad data. Implementations must make
/// [`set_if_absent`](Store::set_if_absent) atomic across every process that shares the store.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// The value under `key` and its remaining lifetime, or `None` when absent or expired.
    async fn get(&self, key: &str) -> Result<Option<StoreEntry>, StoreError>;

    /// Stores `value` under `key` for `ttl`, replacing any previous value. A zero `ttl` stores
    /// nothing.
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError>;

    /// Stores `value` under `key` for `ttl` only if no live entry holds `key`; `true` when this
    /// call wrote it (the first use of a DPoP `jti`), `false` when it was already there. Atomic:
    /// of concurrent callers across all replicas, exactly one gets `true`.
    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Removes `key` (no error when it is absent).
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Checks actively that the store answers (for readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// A short name for logs and metrics labels: `memory`, `redis`.
    fn kind(&self) -> &'static str;

    /// Whether the store is shared with other processes (a `MemoryStore` is not).
    fn is_shared(&self) -> bool;
}

/// Default bound on the entries a [`MemoryStore`] holds.
#[cfg(feature = "cache")]
pub const DEFAULT_MEMORY_STORE_CAPACITY: u64 = 1_000_000;

#[cfg(feature = "cache")]
/// The in-process [`Store`]: the default, nothing to set up, not shared with other replicas
/// (feature `cache`, on by default).
///
/// Bounded by entry count; when full, [`set_if_absent`](Store::set_if_absent) refuses with
/// [`StoreError::is_full`] instead of evicting a live entry (an evicted replay entry would let a
/// replay through), and [`set`](Store::set) may evict the least recently used entry (a cache).
#[derive(Clone)]
pub struct MemoryStore {
    cache: moka::sync::Cache<Box<str>, MemEntry>,
    capacity: u64,
    /// Live keys: incremented when a key is created, decremented when moka drops one (expiry,
    /// eviction, removal), so "full" is exact where moka's own count lags.
    count: Arc<std::sync::atomic::AtomicU64>,
}

#[cfg(feature = "cache")]
#[derive(Clone)]
struct MemEntry {
    value: Arc<[u8]>,
    expires: Instant,
}

#[cfg(feature = "cache")]
struct MemExpiry;

#[cfg(feature = "cache")]
impl moka::Expiry<Box<str>, MemEntry> for MemExpiry {
    fn expire_after_create(&self, _: &Box<str>, v: &MemEntry, now: Instant) -> Option<Duration> {
        Some(v.expires.saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        _: &Box<str>,
        v: &MemEntry,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.expires.saturating_duration_since(now))
    }
}

#[cfg(feature = "cache")]
impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "cache")]
impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_MEMORY_STORE_CAPACITY)
    }
}

#[cfg(feature = "cache")]
impl MemoryStore {
    /// A store holding up to [`DEFAULT_MEMORY_STORE_CAPACITY`] entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding up to `capacity` entries.
    pub fn with_capacity(capacity: u64) -> Self {
        let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let on_remove = count.clone();
        MemoryStore {
            cache: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .expire_after(MemExpiry)
                .eviction_listener(move |_, _, cause| {
                    if cause != moka::notification::RemovalCause::Replaced {
                        on_remove.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    }
                })
                .build(),
            capacity,
            count,
        }
    }

    /// Stores `fresh` under `key` unless a live entry is there (`only_if_absent`); returns
    /// whether it wrote. Counts keys it creates.
    fn put(&self, key: &str, fresh: MemEntry, only_if_absent: bool, now: Instant) -> bool {
        use moka::ops::compute::{CompResult, Op};
        let result = self
            .cache
            .entry(key.into())
            .and_compute_with(|current| match current {
                Some(e) if only_if_absent && e.value().expires > now => Op::Nop,
                _ => Op::Put(fresh),
            });
        match result {
            CompResult::Inserted(_) => {
                self.count
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                true
            }
            CompResult::ReplacedWith(_) => true,
            _ => false,
        }
    }

    fn live(&self, key: &str) -> Option<MemEntry> {
        self.cache.get(key).filter(|e| e.expires > Instant::now())
    }
}

#[cfg(feature = "cache")]
#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<StoreEntry>, StoreError> {
        Ok(self.live(key).map(|e| StoreEntry {
            value: e.value.to_vec(),
            ttl: e.expires.saturating_duration_since(Instant::now()),
        }))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        if ttl.is_zero() {
            return Ok(());
        }
        let now = Instant::now();
        let fresh = MemEntry {
            value: value.into(),
            expires: now + ttl,
        };
        self.put(key, fresh, false, now);
        Ok(())
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        if self.live(key).is_some() {
            return Ok(false);
        }
        if self.count.load(std::sync::atomic::Ordering::Relaxed) >= self.capacity {
            // Expired entries may still be counted until moka's housekeeping runs.
            self.cache.run_pending_tasks();
            if self.count.load(std::sync::atomic::Ordering::Relaxed) >= self.capacity {
                return Err(StoreError::full("set_if_absent"));
            }
        }
        let fresh = MemEntry {
            value: value.into(),
            expires: now + ttl,
        };
        // Atomic per key: of concurrent callers, one writes; an expired entry still held (not
        // yet evicted) is replaced.
        Ok(self.put(key, fresh, true, now))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.cache.invalidate(key);
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    fn is_shared(&self) -> bool {
        false
    }
}

#[cfg(all(feature = "config", feature = "cache"))]
/// The store settings (`MCP_AUTH_STORE_*`). Keys are the variable names without `MCP_AUTH_`,
/// lower-cased.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct StoreConfig {
    /// `MCP_AUTH_STORE_URL`: `redis://` or `rediss://` (TLS) URL with optional ACL credentials
    /// (`rediss://user:password@host:6379/0`); unset means the in-process [`MemoryStore`].
    #[serde(default)]
    pub store_url: Option<String>,
    /// `MCP_AUTH_STORE_TIMEOUT_MS`: the bound on every store call, connection included (default
    /// 250 ms). Past it, the call fails and the caller degrades (IdP fallback, or 503).
    #[serde(default, deserialize_with = "crate::config::deserialize_whole_number")]
    pub store_timeout_ms: Option<u64>,
    /// `MCP_AUTH_STORE_PREFIX`: prefix of every key (default `mcp-auth`), to share one Redis
    /// database between deployments.
    #[serde(default)]
    pub store_prefix: Option<String>,
    /// `MCP_AUTH_STORE_CA_FILE`: a PEM file of the CA certificate(s) that sign the store's TLS
    /// certificate (`rediss://` only), for a private CA. When set, only these are trusted;
    /// unset, the Mozilla root set is.
    #[serde(default)]
    pub store_ca_file: Option<String>,
}

#[cfg(all(feature = "config", feature = "cache"))]
impl StoreConfig {
    /// The keys and their variables.
    pub const ENV: EnvTable = EnvTable::new(&[
        ("store_url", "MCP_AUTH_STORE_URL"),
        ("store_timeout_ms", "MCP_AUTH_STORE_TIMEOUT_MS"),
        ("store_prefix", "MCP_AUTH_STORE_PREFIX"),
        ("store_ca_file", "MCP_AUTH_STORE_CA_FILE"),
    ]);

    /// Loads from the environment (and `MCP_AUTH_CONFIG_FILE`).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_figment(&figment(&Self::ENV))
    }

    /// Loads from a figment the caller assembled.
    pub fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        let mut c: StoreConfig = extract(figment, &Self::ENV)?;
        if c.store_url.as_deref().is_some_and(|u| u.trim().is_empty()) {
            c.store_url = None;
        }
        if c.store_ca_file
            .as_deref()
            .is_some_and(|u| u.trim().is_empty())
        {
            c.store_ca_file = None;
        }
        Ok(c)
    }

    /// Whether a shared store is configured (`MCP_AUTH_STORE_URL` set).
    pub fn is_shared(&self) -> bool {
        self.store_url.is_some()
    }

    /// The key prefix (`MCP_AUTH_STORE_PREFIX`, default `mcp-auth`).
    pub fn prefix(&self) -> &str {
        self.store_prefix.as_deref().unwrap_or("mcp-auth")
    }

    /// The store: Redis when `MCP_AUTH_STORE_URL` is set (feature `redis`), else a
    /// [`MemoryStore`]. Connecting is lazy: a store that is down at start-up does not stop the
    /// server (calls fail until it is up, and readiness says so).
    pub fn build(&self) -> Result<Arc<dyn Store>, ConfigError> {
        let Some(url) = &self.store_url else {
            return Ok(Arc::new(MemoryStore::new()));
        };
        #[cfg(feature = "redis")]
        {
            let mut b = RedisStore::builder(url);
            if let Some(ms) = self.store_timeout_ms {
                if ms == 0 {
                    return Err(ConfigError::Invalid {
                        variable: "MCP_AUTH_STORE_TIMEOUT_MS".into(),
                        reason: "must be at least 1 ms".into(),
                    });
                }
                b = b.timeout(Duration::from_millis(ms));
            }
            if let Some(path) = &self.store_ca_file {
                let pem = std::fs::read(path).map_err(|e| ConfigError::Invalid {
                    variable: "MCP_AUTH_STORE_CA_FILE".into(),
                    reason: format!("cannot read {path}: {e}"),
                })?;
                b = b.ca_certificates_pem(pem);
            }
            let store = b.build().map_err(|e| ConfigError::Invalid {
                variable: if e.setting().key() == "store_ca_file" {
                    "MCP_AUTH_STORE_CA_FILE".into()
                } else {
                    "MCP_AUTH_STORE_URL".into()
                },
                reason: e.to_string(),
            })?;
            Ok(Arc::new(store))
        }
        #[cfg(not(feature = "redis"))]
        {
            let _ = (url, &self.store_ca_file);
            Err(ConfigError::Invalid {
                variable: "MCP_AUTH_STORE_URL".into(),
                reason: "this build has no Redis support (mcp-auth-core feature `redis`)".into(),
            })
        }
    }
}

/// DPoP `jti` replay protection in a [`Store`]: with a store shared by every replica, a proof
/// used at one replica is refused at all the others (RFC 9449 §11.1).
///
/// Each first use is one atomic `set_if_absent` of `<prefix>:dpop:jti:v1:<hex key>` (the key is
/// already a hash of the key thumbprint and the `jti`) living through the second of the proof's
/// `iat` + window + leeway. Any store error fails closed: the proof is refused (503 with `Retry-After`, or
/// `use_dpop_nonce` when nonces are on), logged without the proof and counted as a store error.
///
/// ```
/// use std::sync::Arc;
/// use mcp_auth_core::dpop::ReplayCache;
/// use mcp_auth_core::store::{MemoryStore, StoreReplayCache};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let replay = StoreReplayCache::new(Arc::new(MemoryStore::with_capacity(1_000)), "mcp-auth");
/// let far = 4_102_444_800;
/// assert_eq!(replay.first_use([7; 32], far).await, Ok(true));
/// assert_eq!(replay.first_use([7; 32], far).await, Ok(false)); // replayed
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct StoreReplayCache {
    store: Arc<dyn Store>,
    prefix: String,
}

impl StoreReplayCache {
    /// Replay protection in `store`, under keys starting with `prefix`.
    pub fn new(store: Arc<dyn Store>, prefix: impl Into<String>) -> Self {
        StoreReplayCache {
            store,
            prefix: prefix.into(),
        }
    }
}

#[async_trait]
impl crate::dpop::ReplayCache for StoreReplayCache {
    async fn first_use(
        &self,
        key: [u8; 32],
        expires_at_unix: u64,
    ) -> Result<bool, crate::dpop::ReplayUnavailable> {
        use std::fmt::Write;
        let mut name = format!("{}:dpop:jti:v1:", self.prefix);
        for b in key {
            let _ = write!(name, "{b:02x}");
        }
        let now = crate::claims::unix_now();
        // Kept through the whole second `expires_at_unix` (the layer accepts a proof up to and
        // including the second `iat` + window, the expiry when the leeway is zero): the TTL
        // runs from somewhere inside the current second `now` to the end of that second.
        let ttl = Duration::from_secs(expires_at_unix.saturating_add(1).saturating_sub(now).max(1));
        match self.store.set_if_absent(&name, b"1", ttl).await {
            Ok(first) => Ok(first),
            Err(e) => {
                crate::telemetry::store_error(self.store.kind(), &e);
                tracing::warn!(error = %e, "DPoP replay check failed: the store did not answer");
                Err(crate::dpop::ReplayUnavailable)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_expires_and_reports_remaining_ttl() {
        let s = MemoryStore::new();
        s.set("a", b"1", Duration::from_secs(30)).await.unwrap();
        let e = s.get("a").await.unwrap().unwrap();
        assert_eq!(e.value, b"1");
        assert!(e.ttl <= Duration::from_secs(30) && e.ttl > Duration::from_secs(25));
        s.set("z", b"1", Duration::ZERO).await.unwrap();
        assert!(
            s.get("z").await.unwrap().is_none(),
            "zero TTL stores nothing"
        );
        s.set("short", b"1", Duration::from_millis(1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(s.get("short").await.unwrap().is_none());
        // An expired entry no longer blocks set_if_absent.
        assert!(
            s.set_if_absent("short", b"2", Duration::from_secs(5))
                .await
                .unwrap()
        );
        s.delete("a").await.unwrap();
        assert!(s.get("a").await.unwrap().is_none());
        assert!(!format!("{e:?}").contains('1') || format!("{e:?}").contains("value_len"));
    }

    #[tokio::test]
    async fn memory_set_if_absent_has_one_winner() {
        let s = Arc::new(MemoryStore::new());
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.set_if_absent("jti", b"", Duration::from_secs(60))
                    .await
                    .unwrap()
            }));
        }
        let mut winners = 0;
        for t in tasks {
            winners += usize::from(t.await.unwrap());
        }
        assert_eq!(winners, 1);
    }

    #[tokio::test]
    async fn replay_entries_live_through_their_expiry_second() {
        use crate::dpop::ReplayCache;
        let store = Arc::new(MemoryStore::new());
        let replay = StoreReplayCache::new(store.clone(), "t");
        let expiry = crate::claims::unix_now() + 5;
        assert_eq!(replay.first_use([0xab; 32], expiry).await, Ok(true));
        let name = format!("t:dpop:jti:v1:{}", "ab".repeat(32));
        let ttl = store.get(&name).await.unwrap().unwrap().ttl;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        // The entry ends no earlier than the end of the second `expiry` (a proof is accepted up
        // to and including it) and less than two seconds after its start.
        let end = now + ttl;
        assert!(end >= Duration::from_secs(expiry + 1), "{end:?} {expiry}");
        assert!(end < Duration::from_secs(expiry + 2), "{end:?} {expiry}");
    }

    #[tokio::test]
    async fn memory_store_refuses_new_replay_entries_when_full() {
        let s = MemoryStore::with_capacity(2);
        assert!(
            s.set_if_absent("a", b"", Duration::from_secs(60))
                .await
                .unwrap()
        );
        assert!(
            s.set_if_absent("b", b"", Duration::from_secs(60))
                .await
                .unwrap()
        );
        let e = s
            .set_if_absent("c", b"", Duration::from_secs(60))
            .await
            .unwrap_err();
        assert!(e.is_full(), "{e}");
        assert_eq!(e.code(), "full");
        // The live entries are still there: a replay of "a" is still caught.
        assert!(
            !s.set_if_absent("a", b"", Duration::from_secs(60))
                .await
                .unwrap()
        );
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature
    fn config_defaults_to_memory() {
        figment::Jail::expect_with(|jail| {
            let c = StoreConfig::from_env().unwrap();
            assert!(!c.is_shared());
            assert_eq!(c.build().unwrap().kind(), "memory");
            assert_eq!(c.prefix(), "mcp-auth");
            jail.set_env("MCP_AUTH_STORE_URL", "");
            assert!(!StoreConfig::from_env().unwrap().is_shared());
            jail.set_env("MCP_AUTH_STORE_URL", "http://example.com");
            let e = StoreConfig::from_env().unwrap().build().unwrap_err();
            assert!(e.to_string().contains("MCP_AUTH_STORE_URL"), "{e}");
            // Numbers come from the environment as text.
            jail.set_env("MCP_AUTH_STORE_TIMEOUT_MS", " 1500 ");
            assert_eq!(
                StoreConfig::from_env().unwrap().store_timeout_ms,
                Some(1500)
            );
            jail.set_env("MCP_AUTH_STORE_TIMEOUT_MS", "1.5s");
            let e = StoreConfig::from_env().unwrap_err();
            assert!(e.to_string().contains("MCP_AUTH_STORE_TIMEOUT_MS"), "{e}");
            Ok(())
        });
    }

    #[cfg(feature = "redis")]
    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature
    fn a_private_ca_file_is_read_and_checked() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("MCP_AUTH_STORE_URL", "rediss://u:p@127.0.0.1:6380/0");
            jail.set_env("MCP_AUTH_STORE_CA_FILE", "/nonexistent/ca.pem");
            let c = StoreConfig::from_env().unwrap();
            assert_eq!(c.store_ca_file.as_deref(), Some("/nonexistent/ca.pem"));
            let e = c.build().unwrap_err();
            assert!(e.to_string().contains("MCP_AUTH_STORE_CA_FILE"), "{e}");
            jail.create_file("not-a-ca.pem", "hello")?;
            jail.set_env("MCP_AUTH_STORE_CA_FILE", "not-a-ca.pem");
            let e = StoreConfig::from_env().unwrap().build().unwrap_err();
            assert!(e.to_string().contains("MCP_AUTH_STORE_CA_FILE"), "{e}");
            assert!(e.to_string().contains("PEM"), "{e}");
            // Empty means unset.
            jail.set_env("MCP_AUTH_STORE_CA_FILE", "");
            assert!(StoreConfig::from_env().unwrap().store_ca_file.is_none());
            Ok(())
        });
    }
}
