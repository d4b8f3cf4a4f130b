//! `JwtVerifier`: the verification pipeline.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use jsonwebtoken::Algorithm;
use mcp_auth_core::claims::{ClaimRules, map_claims};
use mcp_auth_core::token::token_tag;
use mcp_auth_core::{AccessToken, InvalidToken, TokenVerifier, VerifyError, async_trait};
use serde_json::Value;

use crate::cache::{CacheUsage, TokenCache, now_unix};
use crate::claims::{parse_claims, parse_header, split};
use crate::jwks::{KeySet, KeyStore};
use crate::keys::{Key, is_hmac, kind_fits, parse_alg};
use crate::{JwtVerifierBuilder, TypPolicy};

/// Verifies JWT access tokens (RFC 9068) against a JWKS, static keys or an HMAC secret.
///
/// Cheap to clone: clones share the key set, the verified-token cache and the counters.
/// Build one with [`JwtVerifier::builder`] or from configuration with [`JwtVerifier::from_env`].
#[derive(Clone)]
pub struct JwtVerifier {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuers", &self.inner.rules.accepted_issuers())
            .field("audiences", &self.inner.rules.accepted_audiences())
            .field("algorithms", &self.inner.algorithms)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) algorithms: Vec<Algorithm>,
    /// Issuers, audiences, leeway and scope claims: core's identity model.
    pub(crate) rules: ClaimRules,
    /// The resource URL (R) the verifier was built for, if any.
    pub(crate) resource: Option<String>,
    pub(crate) typ: TypPolicy,
    pub(crate) max_token_bytes: usize,
    pub(crate) static_keys: Vec<Arc<Key>>,
    pub(crate) stores: KeyStores,
    pub(crate) cache: Option<TokenCache>,
    /// Whether a token was accepted yet (to word the first issuer/audience rejection).
    pub(crate) accepted_any: std::sync::atomic::AtomicBool,
    pub(crate) misconfig_warned: std::sync::atomic::AtomicBool,
}

/// Where JWKS keys come from.
pub(crate) enum KeyStores {
    /// Static keys or an HMAC secret only.
    None,
    /// One key set (a configured JWKS URL, or one issuer's discovery) for every issuer.
    Shared(Arc<KeyStore>),
    /// Several issuers, each with its own discovery, key set, cooldowns and retries.
    PerIssuer(Vec<(String, Arc<KeyStore>)>),
}

impl KeyStores {
    /// The key set for a token claiming `iss` (already checked to be a configured issuer).
    pub(crate) fn for_issuer(&self, iss: Option<&str>) -> Option<&Arc<KeyStore>> {
        match self {
            KeyStores::None => None,
            KeyStores::Shared(s) => Some(s),
            KeyStores::PerIssuer(list) => list
                .iter()
                .find(|(i, _)| Some(i.as_str()) == iss)
                .map(|(_, s)| s),
        }
    }

    /// Whether some store holds `fp` within its stale bound (no allocation: the cache-hit path).
    pub(crate) fn any_holds_usable(&self, fp: &[u8; 32]) -> bool {
        match self {
            KeyStores::None => false,
            KeyStores::Shared(s) => s.holds_usable(fp),
            KeyStores::PerIssuer(list) => list.iter().any(|(_, s)| s.holds_usable(fp)),
        }
    }

    pub(crate) fn all(&self) -> Vec<&Arc<KeyStore>> {
        match self {
            KeyStores::None => Vec::new(),
            KeyStores::Shared(s) => vec![s],
            KeyStores::PerIssuer(list) => list.iter().map(|(_, s)| s).collect(),
        }
    }
}

/// Outcome of looking for the key of a token.
enum Lookup {
    Found(Arc<Key>),
    /// The kid exists but no key under it fits the token's algorithm.
    WrongType,
    NotFound,
    Ambiguous,
}

fn find_key<'a>(
    keys: impl Iterator<Item = &'a Arc<Key>> + Clone,
    kid: Option<&str>,
    alg: Algorithm,
) -> Lookup {
    if let Some(kid) = kid {
        let mut named = keys
            .clone()
            .filter(|k| k.kid.as_deref() == Some(kid))
            .peekable();
        if named.peek().is_some() {
            return named
                .find(|k| k.fits(alg))
                .map_or(Lookup::WrongType, |k| Lookup::Found(Arc::clone(k)));
        }
    }
    // No kid in the token, or a kid naming no key: a key published without a kid (a PEM key,
    // an HMAC secret) serves when it is the only one fitting the algorithm.
    let mut fitting = keys.filter(|k| k.fits(alg) && (kid.is_none() || k.kid.is_none()));
    match (fitting.next(), fitting.next()) {
        (Some(k), None) => Lookup::Found(Arc::clone(k)),
        (None, _) => Lookup::NotFound,
        (Some(_), Some(_)) => Lookup::Ambiguous,
    }
}

impl JwtVerifier {
    /// Starts a builder.
    pub fn builder() -> JwtVerifierBuilder {
        JwtVerifierBuilder::default()
    }

    /// Size of the verified-token cache, or `None` when it is off.
    pub fn token_cache_usage(&self) -> Option<CacheUsage> {
        self.inner.cache.as_ref().map(TokenCache::usage)
    }

    /// Number of usable keys currently held from the JWKS (static keys not counted).
    pub fn jwks_key_count(&self) -> usize {
        self.inner.stores.all().iter().map(|s| s.key_count()).sum()
    }

    /// Fetches the key set now (start-up prefetch). `build()` already starts one in the
    /// background when a tokio runtime is running; call this to wait for it or to surface the
    /// error. A no-op for static keys.
    pub async fn prefetch(&self) -> Result<(), VerifyError> {
        for store in self.inner.stores.all() {
            store.current().await?;
        }
        Ok(())
    }

    /// The accepted issuers.
    pub fn issuers(&self) -> &[String] {
        self.inner.rules.accepted_issuers()
    }

    fn reject(
        &self,
        reason: InvalidToken,
        token: &str,
        detail: std::fmt::Arguments<'_>,
    ) -> VerifyError {
        let misconfig = matches!(reason, InvalidToken::Audience | InvalidToken::Issuer)
            && !self.inner.accepted_any.load(Ordering::Relaxed);
        if misconfig && !self.inner.misconfig_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                reason = reason.code(),
                token = %token_tag(token),
                "JWT rejected ({detail}); no token has been accepted yet: check the configured issuer/audience"
            );
        } else {
            tracing::debug!(reason = reason.code(), token = %token_tag(token), "JWT rejected ({detail})");
        }
        VerifyError::Invalid(reason)
    }

    async fn verify_uncached(
        &self,
        token: &str,
    ) -> Result<(AccessToken, u64, [u8; 32]), VerifyError> {
        let inner = &*self.inner;
        let Some((h64, p64, s64)) = split(token) else {
            return Err(self.reject(
                InvalidToken::Malformed,
                token,
                format_args!("not three base64url segments"),
            ));
        };
        let Some(header) = parse_header(h64) else {
            return Err(self.reject(
                InvalidToken::Malformed,
                token,
                format_args!("header is not a unique-member JSON object with alg"),
            ));
        };
        let Some(alg) = parse_alg(&header.alg) else {
            return Err(self.reject(
                InvalidToken::Algorithm,
                token,
                format_args!(
                    "alg expected one of {:?}, found {:?}",
                    inner.algorithms,
                    header.alg.escape_debug().to_string()
                ),
            ));
        };
        if !inner.algorithms.contains(&alg) {
            return Err(self.reject(
                InvalidToken::Algorithm,
                token,
                format_args!("alg expected one of {:?}, found {alg:?}", inner.algorithms),
            ));
        }
        if header.crit.is_some() {
            return Err(self.reject(
                InvalidToken::Critical,
                token,
                format_args!("crit header present; no extension is understood"),
            ));
        }
        if !inner.typ.accepts(header.typ.as_deref()) {
            return Err(self.reject(
                InvalidToken::Type,
                token,
                format_args!(
                    "typ expected {}, found {:?}",
                    inner.typ.expected(),
                    header.typ.as_deref().map(|t| t.escape_debug().to_string())
                ),
            ));
        }
        if s64.is_empty() {
            return Err(self.reject(
                InvalidToken::Malformed,
                token,
                format_args!("empty signature"),
            ));
        }
        let Some(claims) = parse_claims(p64) else {
            return Err(self.reject(
                InvalidToken::Malformed,
                token,
                format_args!("payload is not a JSON object with unique members"),
            ));
        };
        // Route by the unverified `iss`: an issuer that is not configured is refused before any
        // key is looked up or fetched (nothing is ever discovered from a token), and a token is
        // only ever checked against its own issuer's keys.
        let iss = claims.get("iss").and_then(Value::as_str);
        let issuers = inner.rules.accepted_issuers();
        if !issuers.is_empty() && !iss.is_some_and(|i| issuers.iter().any(|c| c == i)) {
            return Err(self.reject(
                InvalidToken::Issuer,
                token,
                format_args!(
                    "iss expected one of {issuers:?}, found {:?}",
                    iss.map(|s| s.escape_debug().to_string())
                ),
            ));
        }
        let kid = header.kid.as_deref();
        let message = &token[..h64.len() + 1 + p64.len()];
        let store_of_issuer = inner.stores.for_issuer(iss);

        // Key selection: static keys first, then the JWKS.
        let static_lookup = find_key(inner.static_keys.iter(), kid, alg);
        let mut key = match &static_lookup {
            Lookup::Found(k) => Some(Arc::clone(k)),
            _ => None,
        };
        let mut set: Option<Arc<KeySet>> = None;
        if key.is_none()
            && !is_hmac(alg)
            && let Some(store) = store_of_issuer
        {
            let current = store.current().await?;
            let mut lookup = find_key(current.keys.iter(), kid, alg);
            if matches!(lookup, Lookup::NotFound) {
                // An unknown kid: maybe the IdP rotated. Refetch, at most once per cooldown.
                let refreshed = store.refetch_for_unknown().await?;
                lookup = find_key(refreshed.keys.iter(), kid, alg);
                set = Some(refreshed);
            } else {
                set = Some(current);
            }
            match lookup {
                Lookup::Found(k) => key = Some(k),
                Lookup::WrongType => {
                    return Err(self.reject(
                        InvalidToken::Algorithm,
                        token,
                        format_args!(
                            "kid {:?} names a key that does not fit alg {alg:?}",
                            kid.unwrap_or("").escape_debug().to_string()
                        ),
                    ));
                }
                Lookup::Ambiguous => {
                    return Err(self.reject(
                        InvalidToken::UnknownKey,
                        token,
                        format_args!("no kid, and several keys fit alg {alg:?}"),
                    ));
                }
                Lookup::NotFound => {}
            }
        }
        let Some(key) = key else {
            // Distinguish a kid naming a static key of another type.
            if let Lookup::WrongType = static_lookup {
                return Err(self.reject(
                    InvalidToken::Algorithm,
                    token,
                    format_args!("the named key does not fit alg {alg:?}"),
                ));
            }
            if let Lookup::Ambiguous = static_lookup {
                return Err(self.reject(
                    InvalidToken::UnknownKey,
                    token,
                    format_args!("no kid, and several keys fit alg {alg:?}"),
                ));
            }
            return Err(self.reject(
                InvalidToken::UnknownKey,
                token,
                format_args!(
                    "no key for kid {:?} and alg {alg:?}",
                    kid.map(|k| k.escape_debug().to_string())
                ),
            ));
        };
        debug_assert!(kind_fits(key.kind, alg));

        let mut key = key;
        let mut ok = check_signature(s64, message, &key, alg);
        if !ok && set.is_some() && kid.is_some() {
            // A known kid whose signature fails: the IdP may have replaced the key under the
            // same kid. Refetch (cooldown-limited) and retry once if the key changed.
            if let Some(store) = store_of_issuer
                && let Ok(refreshed) = store.refetch_for_unknown().await
                && let Lookup::Found(k) = find_key(refreshed.keys.iter(), kid, alg)
                && k.fingerprint != key.fingerprint
            {
                ok = check_signature(s64, message, &k, alg);
                key = k;
            }
        }
        if !ok {
            return Err(self.reject(
                InvalidToken::BadSignature,
                token,
                format_args!(
                    "signature does not verify with kid {:?} alg {alg:?}",
                    kid.map(|k| k.escape_debug().to_string())
                ),
            ));
        }

        match map_claims(claims, &inner.rules, now_unix()) {
            Ok(access) => {
                let exp = access.expires_at_unix().unwrap_or(0);
                Ok((access, exp, key.fingerprint))
            }
            Err(rejection) => Err(self.reject(
                rejection.reason,
                token,
                format_args!("{}", rejection.detail),
            )),
        }
    }
}

/// Whether the signature verifies (a signature segment that is not base64url does not).
fn check_signature(sig: &str, message: &str, key: &Key, alg: Algorithm) -> bool {
    key.material.verify(alg, message.as_bytes(), sig)
}

impl JwtVerifier {
    /// The cached result for `token` (index `key`), counted as a hit (and, with `count_miss`, as
    /// a miss). A hit counts only while its key is still usable: once the key set has passed its
    /// stale bound (the IdP unreachable for that long), nothing verifies.
    fn cache_hit(
        &self,
        cache: &TokenCache,
        key: &u64,
        token: &[u8],
        count_miss: bool,
    ) -> Option<AccessToken> {
        let inner = &*self.inner;
        if let Some((hit, fp)) = cache.get(key, token)
            && (inner.static_keys.iter().any(|k| k.fingerprint == fp)
                || inner.stores.any_holds_usable(&fp))
        {
            mcp_auth_core::telemetry::cache_lookup("jwt", "process", true);
            return Some(hit);
        }
        if count_miss {
            mcp_auth_core::telemetry::cache_lookup("jwt", "process", false);
        }
        None
    }
}

#[async_trait]
impl TokenVerifier for JwtVerifier {
    async fn verify(&self, token: &str) -> Result<AccessToken, VerifyError> {
        let inner = &*self.inner;
        if token.len() > inner.max_token_bytes {
            return Err(self.reject(
                InvalidToken::TooLarge,
                "",
                format_args!("{} bytes, limit {}", token.len(), inner.max_token_bytes),
            ));
        }
        let cache_key = match &inner.cache {
            Some(cache) => {
                let key = cache.key(token.as_bytes());
                if let Some(hit) = self.cache_hit(cache, &key, token.as_bytes(), true) {
                    return Ok(hit);
                }
                Some(key)
            }
            None => None,
        };
        let (access, exp, fp) = self.verify_uncached(token).await?;
        if !inner.accepted_any.load(Ordering::Relaxed) {
            inner.accepted_any.store(true, Ordering::Relaxed);
        }
        if let (Some(cache), Some(key)) = (&inner.cache, cache_key) {
            // A key rotated out while this verification ran must not leave a cache entry behind.
            // Only a `b64token` is kept: the bearer layer asks the cache before its own syntax
            // check (`verify_cached`), so a hit must stand for a token that passes it.
            let trusted = inner.static_keys.iter().any(|k| k.fingerprint == fp)
                || inner.stores.all().iter().any(|s| s.holds(&fp));
            if trusted && mcp_auth_core::token::is_b64token(token.as_bytes()) {
                cache.insert(key, token, access.clone(), exp, fp);
            }
        }
        Ok(access)
    }

    fn verify_cached(&self, token: &[u8]) -> Option<AccessToken> {
        let cache = self.inner.cache.as_ref()?;
        // A miss is counted once, by `verify`, which the layer calls next for a token that
        // passes its syntax check.
        self.cache_hit(cache, &cache.key(token), token, false)
    }

    fn is_ready(&self) -> bool {
        self.inner.stores.all().iter().all(|s| s.is_ready())
    }

    fn accepted_audiences(&self) -> Option<Vec<String>> {
        self.inner
            .rules
            .accepted_audiences()
            .map(<[String]>::to_vec)
    }

    fn resource(&self) -> Option<String> {
        self.inner.resource.clone()
    }

    fn diagnostics(&self) -> Option<&dyn mcp_auth_core::diagnose::Diagnose> {
        Some(self)
    }
}
