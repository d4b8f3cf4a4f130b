//! The Redis / Valkey [`Store`] (feature `redis`), on the `redis` crate's connection manager.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, Value};

use super::{Store, StoreEntry, StoreError};
use crate::BuildError;

/// Default bound on every store call, connecting included.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_millis(250);

/// After a call fails on an unreachable store, calls fail at once for this long (then one is
/// let through to try again), so a store that is down costs requests no waiting.
const DEFAULT_BACKOFF: Duration = Duration::from_millis(500);

/// A [`Store`] on Redis or Valkey, shared by every replica that points at it.
///
/// One multiplexed connection (the `redis` crate's `ConnectionManager`, which reconnects by
/// itself after the server went away), a timeout on every call ([`DEFAULT_STORE_TIMEOUT`]),
/// TLS with `rediss://` (rustls; the server certificate must chain to the Mozilla root set, or
/// to the private CA given with [`RedisStoreBuilder::ca_certificates_pem`]) and ACL credentials
/// from the URL (`rediss://user:password@host:6380/0`; a wrong password fails every call with
/// [`StoreError::is_credentials`]). Connecting is lazy: a server down at start-up
/// does not stop the process. While the server is unreachable, calls fail at once for a short
/// back-off (500 ms) after each failure, then one call tries again; recovery needs no restart.
///
/// `set_if_absent` is `SET key value NX PX ttl` (atomic across all clients); `get` reads the
/// value and its `PTTL` in one pipelined round trip (`GET`, `PTTL`).
///
/// ```no_run
/// # fn demo() -> Result<(), mcp_auth_core::BuildError> {
/// use std::time::Duration;
/// use mcp_auth_core::store::RedisStore;
/// let store = RedisStore::builder("rediss://mcp:s3cret@redis.internal:6380/0")
///     .timeout(Duration::from_millis(200))
///     .build()?;
/// # let _ = store; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    timeout: Duration,
    backoff: Duration,
    /// Milliseconds since `epoch` until which calls fail at once (0: not backing off).
    down_until: std::sync::Arc<AtomicU64>,
    /// Whether the failure that started the back-off was refused credentials (calls failing
    /// at once meanwhile say so, rather than "unavailable").
    credentials_refused: std::sync::Arc<std::sync::atomic::AtomicBool>,
    epoch: Instant,
    /// Host, port and database, for logs (never the credentials).
    display: String,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.display)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Builder for [`RedisStore`]; see [`RedisStore::builder`].
#[derive(Clone)]
pub struct RedisStoreBuilder {
    url: String,
    timeout: Duration,
    backoff: Duration,
    /// PEM CA certificates to trust instead of the Mozilla roots (`rediss://` only).
    ca_pem: Option<Vec<u8>>,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("url", &redact(&self.url))
            .field("timeout", &self.timeout)
            .field("private_ca", &self.ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

/// The URL without its credentials.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if !u.username().is_empty() {
                let _ = u.set_username("redacted");
            }
            if u.password().is_some() {
                let _ = u.set_password(Some("redacted"));
            }
            u.to_string()
        }
        Err(_) => "(unparseable URL)".into(),
    }
}

impl RedisStore {
    /// A builder for the server at `url`: `redis://[user:password@]host[:port][/db]`, or
    /// `rediss://…` for TLS.
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            timeout: DEFAULT_STORE_TIMEOUT,
            backoff: DEFAULT_BACKOFF,
            ca_pem: None,
        }
    }
}

impl RedisStoreBuilder {
    /// The bound on every call, connecting included (default 250 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long calls fail at once after the server was found unreachable (default 500 ms).
    pub fn unreachable_backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// Trusts the CA certificate(s) in `pem` (PEM text, one or more `CERTIFICATE` blocks) for the
    /// server's TLS certificate, instead of the Mozilla root set: for a store behind a private
    /// CA. Needs a `rediss://` URL. The todo server reads the file named by
    /// `MCP_AUTH_STORE_CA_FILE`.
    pub fn ca_certificates_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Checks the URL and creates the (lazy) connection manager. Needs a Tokio runtime.
    pub fn build(self) -> Result<RedisStore, BuildError> {
        let invalid = |reason: String| BuildError::Invalid {
            setting: crate::Setting::new("store_url", "store URL"),
            reason: reason.into(),
        };
        let parsed = url::Url::parse(&self.url).map_err(|e| invalid(format!("not a URL ({e})")))?;
        if !matches!(parsed.scheme(), "redis" | "rediss") {
            return Err(invalid(format!(
                "scheme {:?}: use redis:// or rediss:// (TLS)",
                parsed.scheme()
            )));
        }
        if parsed.scheme() == "redis" && !crate::resource::is_loopback_url(&parsed) {
            tracing::warn!(
                server = %redact(&self.url),
                "the shared store is reached without TLS: whoever can write to it can make a \
                 token look active; prefer rediss:// with ACL credentials"
            );
        }
        if self.timeout.is_zero() {
            return Err(invalid("the timeout must be above zero".into()));
        }
        let client = match &self.ca_pem {
            None => redis::Client::open(self.url.as_str())
                .map_err(|e| invalid(format!("{} ({})", redact(&self.url), e.kind_name())))?,
            Some(pem) => {
                let invalid_ca = |reason: String| BuildError::Invalid {
                    setting: crate::Setting::new("store_ca_file", "store CA certificate file"),
                    reason: reason.into(),
                };
                if parsed.scheme() != "rediss" {
                    return Err(invalid_ca(
                        "a CA certificate is for TLS: use a rediss:// store URL".into(),
                    ));
                }
                if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                    return Err(invalid_ca("no PEM CERTIFICATE block found".into()));
                }
                redis::Client::build_with_tls(
                    self.url.as_str(),
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem.clone()),
                    },
                )
                .map_err(|e| invalid_ca(format!("unusable CA certificate ({})", e.kind_name())))?
            }
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(self.timeout);
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| invalid(format!("{} ({})", redact(&self.url), e.kind_name())))?;
        let display = format!(
            "{}://{}:{}{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or(""),
            parsed.port().unwrap_or(6379),
            parsed.path()
        );
        Ok(RedisStore {
            conn,
            timeout: self.timeout,
            backoff: self.backoff,
            down_until: Default::default(),
            credentials_refused: Default::default(),
            epoch: Instant::now(),
            display,
        })
    }
}

trait KindName {
    fn kind_name(&self) -> String;
}

impl KindName for RedisError {
    fn kind_name(&self) -> String {
        // The error's text may repeat the URL; its category never holds credentials.
        format!("{:?}", self.kind())
    }
}

impl RedisStore {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Fails at once while backing off after an unreachable server; else lets the call through.
    fn check_backoff(&self, op: &'static str) -> Result<(), StoreError> {
        let until = self.down_until.load(Ordering::Relaxed);
        if until == 0 {
            return Ok(());
        }
        let backing_off = || {
            if self.credentials_refused.load(Ordering::Relaxed) {
                StoreError::credentials(op)
            } else {
                StoreError::unavailable(op, "backing off after a failure")
            }
        };
        let now = self.now_ms();
        if now < until {
            return Err(backing_off());
        }
        // One caller wins the retry; the others keep failing fast until it reports.
        let next = now.saturating_add(u64::try_from(self.backoff.as_millis()).unwrap_or(0));
        match self
            .down_until
            .compare_exchange(until, next, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => Ok(()),
            Err(_) => Err(backing_off()),
        }
    }

    async fn run<T>(
        &self,
        op: &'static str,
        cmd: impl FnOnce(ConnectionManager) -> redis::RedisFuture<'static, T>,
    ) -> Result<T, StoreError>
    where
        T: redis::FromRedisValue + Send + 'static,
    {
        self.check_backoff(op)?;
        let fut = cmd(self.conn.clone());
        let result = match tokio::time::timeout(self.timeout, fut).await {
            Err(_) => Err(StoreError::timeout(op)),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(map_error(op, &e)),
        };
        match &result {
            Ok(_) => self.down_until.store(0, Ordering::Relaxed),
            // Refused credentials back off too: each retry is a new connection and handshake.
            Err(e) if e.is_unavailable() || e.is_credentials() => {
                self.credentials_refused
                    .store(e.is_credentials(), Ordering::Relaxed);
                let until = self
                    .now_ms()
                    .saturating_add(u64::try_from(self.backoff.as_millis()).unwrap_or(0));
                self.down_until.store(until.max(1), Ordering::Relaxed);
            }
            Err(_) => {}
        }
        result
    }
}

fn map_error(op: &'static str, e: &RedisError) -> StoreError {
    if e.is_timeout() {
        StoreError::timeout(op)
    } else if e.kind() == ErrorKind::AuthenticationFailed || refuses_credentials(e) {
        StoreError::credentials(op)
    } else if e.is_io_error() && format!("{e:?}").contains("certificate") {
        // rustls refused the server certificate (its text names no secret, but is not echoed).
        StoreError::unavailable(
            op,
            "TLS handshake failed: the server certificate is not trusted (a private CA needs \
             MCP_AUTH_STORE_CA_FILE)",
        )
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        StoreError::unavailable(op, e.kind_name())
    } else if matches!(e.kind(), ErrorKind::Server(_)) {
        // NOAUTH, WRONGPASS, NOPERM, READONLY, OOM: the server answered, the call failed.
        StoreError::refused(op, e.kind_name())
    } else {
        StoreError::unavailable(op, e.kind_name())
    }
}

/// Whether the server answered `NOAUTH` or `WRONGPASS` (also inside a pipeline's answers, where
/// the crate keeps no code). Only matched, never echoed.
fn refuses_credentials(e: &RedisError) -> bool {
    if let Some(code) = e.code() {
        return matches!(code, "NOAUTH" | "WRONGPASS");
    }
    matches!(e.kind(), ErrorKind::Extension) && {
        let text = e.to_string();
        text.contains("NOAUTH") || text.contains("WRONGPASS")
    }
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl Store for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<StoreEntry>, StoreError> {
        let key = key.to_owned();
        let (value, pttl): (Option<Vec<u8>>, i64) = self
            .run("get", move |mut c| {
                Box::pin(async move {
                    // Not a MULTI transaction: one round trip either way, and a server that
                    // refuses the connection's credentials answers each command with its own
                    // NOAUTH error. Between the two commands the entry may expire (PTTL -2:
                    // absent) or be replaced by another replica's answer for the same token
                    // (its TTL is no longer than that fresh answer allows): both safe.
                    redis::pipe()
                        .get(&key)
                        .cmd("PTTL")
                        .arg(&key)
                        .query_async(&mut c)
                        .await
                })
            })
            .await?;
        // PTTL: -2 absent, -1 no expiry (never written by us; treated as absent: fail closed
        // rather than cache forever).
        Ok(match (value, pttl) {
            (Some(value), ms) if ms > 0 => Some(StoreEntry {
                value,
                ttl: Duration::from_millis(ms.unsigned_abs()),
            }),
            _ => None,
        })
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        if ttl.is_zero() {
            return Ok(());
        }
        let key = key.to_owned();
        let value = value.to_vec();
        let ms = ttl_ms(ttl);
        self.run::<()>("set", move |mut c| {
            Box::pin(async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&value)
                    .arg("PX")
                    .arg(ms)
                    .query_async(&mut c)
                    .await
            })
        })
        .await
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let key = key.to_owned();
        let value = value.to_vec();
        let ms = ttl_ms(ttl);
        let reply: Value = self
            .run("set_if_absent", move |mut c| {
                Box::pin(async move {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(&value)
                        .arg("NX")
                        .arg("PX")
                        .arg(ms)
                        .query_async(&mut c)
                        .await
                })
            })
            .await?;
        // `OK` when written, nil when the key was there.
        Ok(matches!(reply, Value::Okay | Value::SimpleString(_)))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.run::<i64>("delete", move |mut c| {
            Box::pin(async move { redis::cmd("DEL").arg(&key).query_async(&mut c).await })
        })
        .await
        .map(drop)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.run::<String>("ping", move |mut c| {
            Box::pin(async move { redis::cmd("PING").query_async(&mut c).await })
        })
        .await
        .map(drop)
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn is_shared(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urls_are_checked_and_credentials_never_printed() {
        let e = RedisStore::builder("http://h").build().unwrap_err();
        assert!(e.to_string().contains("redis://"), "{e}");
        assert!(RedisStore::builder("not a url").build().is_err());
        let s = RedisStore::builder("rediss://app:hunter2@redis.internal:6380/2")
            .build()
            .unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("hunter2") && !dbg.contains("app"), "{dbg}");
        assert!(dbg.contains("rediss://redis.internal:6380/2"), "{dbg}");
        let b = RedisStore::builder("redis://u:hunter2@127.0.0.1/0");
        assert!(!format!("{b:?}").contains("hunter2"));
    }
}
