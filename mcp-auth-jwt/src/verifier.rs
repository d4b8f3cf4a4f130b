//! `JwtVerifier`: the verification pipeline.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use jsonwebtoken::Algorithm;
use mcp_auth_core::{
    AccessToken, InvalidToken, TokenVerifier, VerifyError, async_trait, token_tag,
};
use serde_json::{Map, Value};

use crate::cache::{CacheUsage, TokenCache, now_unix};
use crate::claims::{numeric_date, parse_claims, parse_header, split, string_or_array};
use crate::jwks::{KeySet, KeyStore};
use crate::keys::{Key, is_hmac, kind_fits, parse_alg};
use crate::metrics::{JwtMetrics, Metrics};
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
            .field("issuers", &self.inner.issuers)
            .field("audiences", &self.inner.audiences)
            .field("algorithms", &self.inner.algorithms)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) issuers: Vec<String>,
    pub(crate) audiences: Vec<String>,
    pub(crate) skip_audience: bool,
    pub(crate) leeway: u64,
    pub(crate) typ: TypPolicy,
    pub(crate) scope_claims: Vec<String>,
    pub(crate) max_token_bytes: usize,
    pub(crate) static_keys: Vec<Arc<Key>>,
    pub(crate) store: Option<Arc<KeyStore>>,
    pub(crate) cache: Option<TokenCache>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) misconfig_warned: std::sync::atomic::AtomicBool,
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

    /// Counters: JWKS fetches, token-cache hits and misses, outcomes by reason.
    pub fn metrics(&self) -> JwtMetrics {
        self.inner.metrics.snapshot()
    }

    /// Size of the verified-token cache, or `None` when it is off.
    pub fn token_cache_usage(&self) -> Option<CacheUsage> {
        self.inner.cache.as_ref().map(TokenCache::usage)
    }

    /// Number of usable keys currently held from the JWKS (static keys not counted).
    pub fn jwks_key_count(&self) -> usize {
        self.inner.store.as_ref().map_or(0, |s| s.key_count())
    }

    /// Fetches the key set now (start-up prefetch). `build()` already starts one in the
    /// background when a tokio runtime is running; call this to wait for it or to surface the
    /// error. A no-op for static keys.
    pub async fn prefetch(&self) -> Result<(), VerifyError> {
        match &self.inner.store {
            Some(store) => store.current().await.map(|_| ()),
            None => Ok(()),
        }
    }

    fn reject(
        &self,
        reason: InvalidToken,
        token: &str,
        detail: std::fmt::Arguments<'_>,
    ) -> VerifyError {
        self.inner.metrics.reject(reason);
        let misconfig = matches!(reason, InvalidToken::Audience | InvalidToken::Issuer)
            && self.inner.metrics.verified.load(Ordering::Relaxed) == 0;
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
        let kid = header.kid.as_deref();
        let message = &token[..h64.len() + 1 + p64.len()];

        // Key selection: static keys first, then the JWKS.
        let static_lookup = find_key(inner.static_keys.iter(), kid, alg);
        let mut key = match &static_lookup {
            Lookup::Found(k) => Some(Arc::clone(k)),
            _ => None,
        };
        let mut set: Option<Arc<KeySet>> = None;
        if key.is_none()
            && !is_hmac(alg)
            && let Some(store) = &inner.store
        {
            let current = store.current().await.inspect_err(|_| {
                inner.metrics.unavailable.fetch_add(1, Ordering::Relaxed);
            })?;
            let mut lookup = find_key(current.keys.iter(), kid, alg);
            if matches!(lookup, Lookup::NotFound) {
                // An unknown kid: maybe the IdP rotated. Refetch, at most once per cooldown.
                let refreshed = store.refetch_for_unknown().await.inspect_err(|_| {
                    inner.metrics.unavailable.fetch_add(1, Ordering::Relaxed);
                })?;
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
            if let Some(store) = &inner.store
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

        let Some(claims) = parse_claims(p64) else {
            return Err(self.reject(
                InvalidToken::Malformed,
                token,
                format_args!("payload is not a JSON object with unique members"),
            ));
        };
        let (access, exp) = self.check_claims(token, claims)?;
        Ok((access, exp, key.fingerprint))
    }

    fn check_claims(
        &self,
        token: &str,
        claims: Map<String, Value>,
    ) -> Result<(AccessToken, u64), VerifyError> {
        let inner = &*self.inner;
        let now = now_unix();
        let exp = match numeric_date(&claims, "exp") {
            Ok(Some(e)) => e,
            _ => {
                return Err(self.reject(
                    InvalidToken::MissingClaim,
                    token,
                    format_args!("exp missing or not a number"),
                ));
            }
        };
        if exp.saturating_add(inner.leeway) <= now {
            return Err(self.reject(
                InvalidToken::Expired,
                token,
                format_args!("exp {exp} is before now {now} (leeway {}s)", inner.leeway),
            ));
        }
        for name in ["nbf", "iat"] {
            match numeric_date(&claims, name) {
                Ok(Some(t)) if t > now.saturating_add(inner.leeway) => {
                    return Err(self.reject(
                        InvalidToken::NotYetValid,
                        token,
                        format_args!("{name} {t} is after now {now} (leeway {}s)", inner.leeway),
                    ));
                }
                Ok(_) => {}
                Err(()) => {
                    return Err(self.reject(
                        InvalidToken::MissingClaim,
                        token,
                        format_args!("{name} is not a number"),
                    ));
                }
            }
        }
        if claims.contains_key("cnf") {
            return Err(self.reject(
                InvalidToken::SenderConstrained,
                token,
                format_args!("token carries cnf (sender-constrained)"),
            ));
        }
        let issuer = match claims.get("iss") {
            Some(Value::String(s)) => Some(s.clone()),
            None => None,
            Some(_) => {
                return Err(self.reject(
                    InvalidToken::MissingClaim,
                    token,
                    format_args!("iss is not a string"),
                ));
            }
        };
        if !inner.issuers.is_empty() {
            match &issuer {
                Some(iss) if inner.issuers.iter().any(|i| i == iss) => {}
                other => {
                    return Err(self.reject(
                        InvalidToken::Issuer,
                        token,
                        format_args!(
                            "iss expected one of {:?}, found {:?}",
                            inner.issuers,
                            other.as_deref().map(|s| s.escape_debug().to_string())
                        ),
                    ));
                }
            }
        }
        let audiences = match claims.get("aud").map(string_or_array) {
            Some(Ok(a)) => a,
            None if inner.skip_audience => Vec::new(),
            None => {
                return Err(self.reject(
                    InvalidToken::MissingClaim,
                    token,
                    format_args!("aud missing"),
                ));
            }
            Some(Err(())) => {
                return Err(self.reject(
                    InvalidToken::MissingClaim,
                    token,
                    format_args!("aud is not a string or array of strings"),
                ));
            }
        };
        if !inner.skip_audience && !audiences.iter().any(|a| inner.audiences.contains(a)) {
            return Err(self.reject(
                InvalidToken::Audience,
                token,
                format_args!(
                    "aud expected one of {:?}, found {:?}",
                    inner.audiences,
                    audiences
                        .iter()
                        .map(|a| a.escape_debug().to_string())
                        .collect::<Vec<_>>()
                ),
            ));
        }
        let subject = match claims.get("sub") {
            Some(Value::String(s)) => Some(s.clone()),
            None => None,
            Some(_) => {
                return Err(self.reject(
                    InvalidToken::Malformed,
                    token,
                    format_args!("sub is not a string"),
                ));
            }
        };
        let client_id = ["client_id", "azp"]
            .iter()
            .find_map(|n| claims.get(*n).and_then(Value::as_str))
            .map(str::to_owned);
        let mut scopes: Vec<String> = Vec::new();
        for name in &inner.scope_claims {
            match claims.get(name) {
                None => continue,
                Some(Value::String(s)) => {
                    scopes = s.split_ascii_whitespace().map(str::to_owned).collect()
                }
                Some(Value::Array(items)) => {
                    let mut out = Vec::with_capacity(items.len());
                    for i in items {
                        match i.as_str() {
                            Some(s) => out.push(s.to_owned()),
                            None => {
                                return Err(self.reject(
                                    InvalidToken::Malformed,
                                    token,
                                    format_args!("{name} holds a non-string"),
                                ));
                            }
                        }
                    }
                    scopes = out;
                }
                Some(_) => {
                    return Err(self.reject(
                        InvalidToken::Malformed,
                        token,
                        format_args!("{name} is not a string or array"),
                    ));
                }
            }
            break;
        }
        let mut b = AccessToken::builder()
            .scopes(scopes)
            .expires_at_unix(exp)
            .audiences(audiences);
        if let Some(s) = subject {
            b = b.subject(s);
        }
        if let Some(c) = client_id {
            b = b.client_id(c);
        }
        if let Some(i) = issuer {
            b = b.issuer(i);
        }
        Ok((b.claims(claims).build(), exp))
    }
}

/// Whether the signature verifies (a signature segment that is not base64url does not).
fn check_signature(sig: &str, message: &str, key: &Key, alg: Algorithm) -> bool {
    key.material.verify(alg, message.as_bytes(), sig)
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
                let key = cache.key(token);
                if let Some(hit) = cache.get(&key, token) {
                    inner.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
                    inner.metrics.verified.fetch_add(1, Ordering::Relaxed);
                    return Ok(hit);
                }
                inner.metrics.cache_misses.fetch_add(1, Ordering::Relaxed);
                Some(key)
            }
            None => None,
        };
        let (access, exp, fp) = self.verify_uncached(token).await?;
        inner.metrics.verified.fetch_add(1, Ordering::Relaxed);
        if let (Some(cache), Some(key)) = (&inner.cache, cache_key) {
            // A key rotated out while this verification ran must not leave a cache entry behind.
            let trusted = inner.static_keys.iter().any(|k| k.fingerprint == fp)
                || inner.store.as_ref().is_some_and(|s| s.holds(&fp));
            if trusted {
                cache.insert(key, token, access.clone(), exp, fp);
            }
        }
        Ok(access)
    }

    fn is_ready(&self) -> bool {
        match &self.inner.store {
            Some(store) => store.is_ready(),
            None => true,
        }
    }
}
