//! DPoP (RFC 9449): sender-constrained access tokens. A token bound to a key (`cnf.jkt`) is
//! only usable together with a fresh proof, a small JWT signed by that key, sent in the `DPoP`
//! request header. A stolen DPoP-bound token is useless without the key.
//!
//! The bearer layer checks every rule of RFC 9449 §4.3 and §7.1 on every request (token-cache
//! hit or not):
//!
//! | rule | refused with |
//! |---|---|
//! | exactly one `DPoP` header, at most 8 KiB | `invalid_dpop_proof` |
//! | a compact JWS whose header and payload are JSON objects with unique members | `invalid_dpop_proof` |
//! | `typ` = `dpop+jwt` | `invalid_dpop_proof` |
//! | `alg` on the proof allowlist (asymmetric only: never `none`, never HMAC) | `invalid_dpop_proof` |
//! | `jwk`: a public key (no private member) of a type that fits `alg` | `invalid_dpop_proof` |
//! | the signature verifies with `jwk` | `invalid_dpop_proof` |
//! | `jti`, `htm`, `htu`, `iat` present with the right types | `invalid_dpop_proof` |
//! | `htm` = the request method; `htu` = R's origin plus the request path, compared after RFC 3986 §6.2.2/§6.2.3 normalisation, query and fragment ignored | `invalid_dpop_proof` |
//! | `iat` no older than the window (default 5 min), no further ahead than the leeway (30 s) | `invalid_dpop_proof` |
//! | the token is DPoP-bound (`cnf.jkt`) | `invalid_token` |
//! | `ath` = base64url SHA-256 of the access token | `invalid_dpop_proof` |
//! | RFC 7638 thumbprint of `jwk` = the token's `cnf.jkt` | `invalid_dpop_proof` |
//! | `nonce` = a current server nonce (only when nonces are on) | `use_dpop_nonce` + `DPoP-Nonce` |
//! | `jti` not seen before for this key ([`ReplayCache`]) | `invalid_dpop_proof` |
//!
//! Signature verification needs a crypto backend, which core does not carry: it is the
//! [`DpopKeyVerifier`] trait, implemented by `mcp-auth-jwt` for both of its backends
//! (`mcp_auth_jwt::DpopKeys`). Configure DPoP on the provider builder
//! ([`RemoteAuthProviderBuilder::dpop`](crate::RemoteAuthProviderBuilder::dpop)).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::BuildError;
use crate::claims::parse_unique_object;
use crate::resource::ResourceUrl;

/// Largest `DPoP` header accepted (an RSA-8192 key plus its signature fit comfortably).
pub const MAX_PROOF_BYTES: usize = 8 * 1024;
/// Longest `jti` accepted.
pub const MAX_JTI_BYTES: usize = 256;
/// Default window: how old a proof's `iat` may be.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);
/// Default capacity of the in-process replay cache, in proofs.
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;
/// Default lifetime of a server nonce (when nonces are on).
pub const DEFAULT_NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// Whether and how the server accepts DPoP (`MCP_AUTH_DPOP`).
///
/// ```
/// use mcp_auth_core::dpop::DpopMode;
/// assert_eq!("Required".parse::<DpopMode>(), Ok(DpopMode::Required));
/// assert!("maybe".parse::<DpopMode>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DpopMode {
    /// No DPoP: the `DPoP` scheme is not a credential here and DPoP-bound tokens are refused.
    Off,
    /// Bearer tokens without `cnf` as before; DPoP-bound tokens only on the `DPoP` scheme with
    /// a valid proof. Requests without credentials and Bearer requests get Bearer challenges.
    #[default]
    Allowed,
    /// Only DPoP-bound tokens on the `DPoP` scheme; every challenge is on the `DPoP` scheme.
    Required,
}

impl DpopMode {
    /// The configuration value (`off`, `allowed`, `required`).
    pub fn as_str(&self) -> &'static str {
        match self {
            DpopMode::Off => "off",
            DpopMode::Allowed => "allowed",
            DpopMode::Required => "required",
        }
    }
}

impl FromStr for DpopMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(DpopMode::Off),
            "allowed" => Ok(DpopMode::Allowed),
            "required" => Ok(DpopMode::Required),
            _ => Err(format!("{s:?} is not off, allowed or required")),
        }
    }
}

/// A proof signature algorithm. Only asymmetric algorithms exist here: `none` and HMAC can
/// never be configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DpopAlg {
    /// ECDSA P-256 SHA-256.
    ES256,
    /// ECDSA P-384 SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
    /// RSASSA-PSS SHA-256.
    PS256,
    /// RSASSA-PSS SHA-384.
    PS384,
    /// RSASSA-PSS SHA-512.
    PS512,
    /// RSASSA-PKCS1-v1_5 SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 SHA-512.
    RS512,
}

impl DpopAlg {
    /// The default allowlist: `ES256 ES384 EdDSA PS256 RS256`.
    pub const DEFAULT: [DpopAlg; 5] = [
        DpopAlg::ES256,
        DpopAlg::ES384,
        DpopAlg::EdDSA,
        DpopAlg::PS256,
        DpopAlg::RS256,
    ];

    /// The JOSE name.
    pub fn as_str(&self) -> &'static str {
        match self {
            DpopAlg::ES256 => "ES256",
            DpopAlg::ES384 => "ES384",
            DpopAlg::EdDSA => "EdDSA",
            DpopAlg::PS256 => "PS256",
            DpopAlg::PS384 => "PS384",
            DpopAlg::PS512 => "PS512",
            DpopAlg::RS256 => "RS256",
            DpopAlg::RS384 => "RS384",
            DpopAlg::RS512 => "RS512",
        }
    }

    /// The algorithm a JOSE name stands for (exact, case-sensitive as JOSE is); `none`, HMAC
    /// and unknown names give `None`. The proof check's allocation-free twin of `from_str`.
    fn from_jose(name: &str) -> Option<DpopAlg> {
        Some(match name {
            "ES256" => DpopAlg::ES256,
            "ES384" => DpopAlg::ES384,
            "EdDSA" => DpopAlg::EdDSA,
            "PS256" => DpopAlg::PS256,
            "PS384" => DpopAlg::PS384,
            "PS512" => DpopAlg::PS512,
            "RS256" => DpopAlg::RS256,
            "RS384" => DpopAlg::RS384,
            "RS512" => DpopAlg::RS512,
            _ => return None,
        })
    }

    /// The JWK `kty` (and `crv`) a key for this algorithm has.
    fn fits(&self, kty: &str, crv: Option<&str>) -> bool {
        match self {
            DpopAlg::ES256 => kty == "EC" && crv == Some("P-256"),
            DpopAlg::ES384 => kty == "EC" && crv == Some("P-384"),
            DpopAlg::EdDSA => kty == "OKP" && crv == Some("Ed25519"),
            _ => kty == "RSA",
        }
    }
}

impl FromStr for DpopAlg {
    type Err = BuildError;

    /// Parses a JOSE name (exact, case-sensitive as JOSE is). `none`, HMAC and unknown names are
    /// refused, naming `MCP_AUTH_DPOP_ALGORITHMS`' setting.
    fn from_str(name: &str) -> Result<Self, BuildError> {
        DpopAlg::from_jose(name).ok_or_else(|| {
            BuildError::invalid(
                DPOP_ALGORITHMS_SETTING,
                format!(
                    "{name:?} is not an asymmetric JWS algorithm (use ES256, ES384, EdDSA, PS256, \
                     PS384, PS512, RS256, RS384 or RS512)"
                ),
            )
        })
    }
}

/// Verifies a proof's signature with the public key it carries. Core has no crypto backend;
/// `mcp-auth-jwt` implements this with its own (`mcp_auth_jwt::DpopKeys`, aws-lc-rs or
/// RustCrypto), parsing the key with the same rules as its JWKS keys (RSA moduli of 2048 to
/// 8192 bits, points on their curve, ...).
///
/// ```
/// use mcp_auth_core::dpop::{DpopAlg, DpopKeyVerifier};
/// /// Refuses every proof (a real implementation checks the signature).
/// struct Nobody;
/// impl DpopKeyVerifier for Nobody {
///     fn verify(&self, _: DpopAlg, _: &serde_json::Value, _: &[u8], _: &str) -> bool {
///         false
///     }
/// }
/// ```
pub trait DpopKeyVerifier: Send + Sync + 'static {
    /// Whether `signature_b64` (the third segment of the compact JWS, base64url) is a valid
    /// `alg` signature of `signing_input` under the public key `jwk` (the proof header's `jwk`,
    /// already checked to hold no private member and to fit `alg`). Anything unusable is
    /// `false`; never panics.
    fn verify(&self, alg: DpopAlg, jwk: &Value, signing_input: &[u8], signature_b64: &str) -> bool;
}

/// The replay store could not take a new proof: it is full of unexpired entries, or (for a
/// shared store) unreachable. The request is refused (503, or `use_dpop_nonce` when nonces are
/// on), never let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("DPoP replay store unavailable")]
pub struct ReplayUnavailable;

/// Remembers which proofs were used, so a `jti` is accepted once per key.
///
/// The key is a 32-byte hash of (key thumbprint, `jti`); `expires_at_unix` is the proof's
/// `iat` + window + leeway. The layer accepts a proof up to and including the second
/// `iat` + window, so an entry is kept through the whole second `expires_at_unix` and dropped
/// only after it: even with no leeway a proof can never outlive its entry. An implementation
/// must:
/// * answer `Ok(true)` and remember the key when it is new or its entry expired (the current
///   second is past `expires_at_unix`);
/// * answer `Ok(false)` when an unexpired entry exists (a replay);
/// * never drop an unexpired entry to make room (an evicted `jti` could be replayed): when it
///   cannot remember a new key, answer `Err(ReplayUnavailable)`;
/// * be atomic: of two concurrent calls with the same key, at most one gets `Ok(true)`.
///
/// [`InMemoryReplayCache`] is the per-process default; a store shared by replicas implements the
/// same trait (a Redis `SET key 1 NX EXAT <expires_at + 1>` is exactly this contract).
#[async_trait::async_trait]
pub trait ReplayCache: Send + Sync + 'static {
    /// Records `key` through the second `expires_at_unix` (seconds since the Unix epoch):
    /// `Ok(true)` the first time, `Ok(false)` for a replay.
    async fn first_use(
        &self,
        key: [u8; 32],
        expires_at_unix: u64,
    ) -> Result<bool, ReplayUnavailable>;
}

/// The per-process replay cache: a bounded map from proof key to expiry plus a min-heap of
/// expiries, so expired entries go first and cheaply. When it holds `capacity` unexpired
/// entries it refuses new proofs ([`ReplayUnavailable`]) instead of evicting one.
///
/// ```
/// # tokio_test_block(async {
/// use mcp_auth_core::dpop::{InMemoryReplayCache, ReplayCache};
/// let cache = InMemoryReplayCache::new(1);
/// let far = 4_102_444_800;
/// assert_eq!(cache.first_use([1; 32], far).await, Ok(true));
/// assert_eq!(cache.first_use([1; 32], far).await, Ok(false)); // replayed
/// assert!(cache.first_use([2; 32], far).await.is_err()); // full: refused, nothing evicted
/// # });
/// # fn tokio_test_block<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug)]
pub struct InMemoryReplayCache {
    capacity: usize,
    state: Mutex<ReplayState>,
}

#[derive(Debug, Default)]
struct ReplayState {
    entries: HashMap<[u8; 32], u64>,
    expiries: BinaryHeap<Reverse<(u64, [u8; 32])>>,
}

impl InMemoryReplayCache {
    /// A cache holding at most `capacity` unexpired proofs.
    pub fn new(capacity: usize) -> Self {
        InMemoryReplayCache {
            capacity,
            state: Mutex::new(ReplayState::default()),
        }
    }

    /// Unexpired and expired-but-not-yet-purged entries.
    pub fn len(&self) -> usize {
        self.state.lock().map(|s| s.entries.len()).unwrap_or(0)
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The synchronous core of [`ReplayCache::first_use`], at time `now` (Unix seconds): an
    /// entry expiring at `e` is a replay up to and including `now` = `e`, and gone at `e` + 1.
    pub fn first_use_at(
        &self,
        key: [u8; 32],
        expires_at_unix: u64,
        now: u64,
    ) -> Result<bool, ReplayUnavailable> {
        let mut guard = self.state.lock().map_err(|_| ReplayUnavailable)?;
        let state = &mut *guard;
        while let Some(Reverse((exp, k))) = state.expiries.peek().copied() {
            // Kept through its expiry second: the proof is fresh up to `iat` + window, which
            // is its expiry when the leeway is zero.
            if exp >= now {
                break;
            }
            state.expiries.pop();
            if state.entries.get(&k) == Some(&exp) {
                state.entries.remove(&k);
            }
        }
        if state.entries.contains_key(&key) {
            return Ok(false);
        }
        if state.entries.len() >= self.capacity {
            return Err(ReplayUnavailable);
        }
        state.entries.insert(key, expires_at_unix);
        state.expiries.push(Reverse((expires_at_unix, key)));
        Ok(true)
    }
}

#[async_trait::async_trait]
impl ReplayCache for InMemoryReplayCache {
    async fn first_use(
        &self,
        key: [u8; 32],
        expires_at_unix: u64,
    ) -> Result<bool, ReplayUnavailable> {
        self.first_use_at(key, expires_at_unix, crate::claims::unix_now())
    }
}

/// Why a proof was refused. Each has a stable code (logs) and a fixed description (the
/// challenge's `error_description`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProofError {
    /// No `DPoP` header on a request using the DPoP scheme.
    Missing,
    /// More than one `DPoP` header.
    Multiple,
    /// Not a compact JWS with JSON header and payload, or too large.
    Malformed,
    /// `typ` is not `dpop+jwt`.
    Type,
    /// `alg` is not on the proof allowlist.
    Algorithm,
    /// No usable public `jwk` in the header.
    Key,
    /// The `jwk` holds a private key member.
    PrivateKey,
    /// The signature does not verify.
    Signature,
    /// `jti`, `htm`, `htu`, `iat` or `ath` missing or of the wrong type.
    MissingClaim,
    /// `htm` is not the request method.
    Method,
    /// `htu` is not this resource's URL.
    Url,
    /// `iat` is older than the window.
    Stale,
    /// `iat` is further ahead than the leeway.
    Future,
    /// `ath` is not the hash of the access token.
    AccessTokenHash,
    /// The proof key is not the key the token is bound to.
    KeyMismatch,
    /// The proof was used before.
    Replayed,
    /// The proof lacks the current server nonce (answered with `use_dpop_nonce`).
    Nonce,
}

impl ProofError {
    /// A stable code for logs.
    pub fn code(&self) -> &'static str {
        match self {
            ProofError::Missing => "dpop_missing",
            ProofError::Multiple => "dpop_multiple",
            ProofError::Malformed => "dpop_malformed",
            ProofError::Type => "dpop_type",
            ProofError::Algorithm => "dpop_algorithm",
            ProofError::Key => "dpop_key",
            ProofError::PrivateKey => "dpop_private_key",
            ProofError::Signature => "dpop_signature",
            ProofError::MissingClaim => "dpop_missing_claim",
            ProofError::Method => "dpop_method",
            ProofError::Url => "dpop_url",
            ProofError::Stale => "dpop_stale",
            ProofError::Future => "dpop_future",
            ProofError::AccessTokenHash => "dpop_ath",
            ProofError::KeyMismatch => "dpop_key_mismatch",
            ProofError::Replayed => "dpop_replayed",
            ProofError::Nonce => "dpop_nonce",
        }
    }

    /// The fixed `error_description`.
    pub fn description(&self) -> &'static str {
        match self {
            ProofError::Missing => "The request carries no DPoP proof",
            ProofError::Multiple => "The request carries more than one DPoP proof",
            ProofError::Malformed => "The DPoP proof is malformed",
            ProofError::Type => "The DPoP proof type is not dpop+jwt",
            ProofError::Algorithm => "The DPoP proof algorithm is not accepted",
            ProofError::Key => "The DPoP proof carries no usable public key",
            ProofError::PrivateKey => "The DPoP proof key contains private key material",
            ProofError::Signature => "The DPoP proof signature is invalid",
            ProofError::MissingClaim => "The DPoP proof lacks a required claim",
            ProofError::Method => "The DPoP proof was made for another HTTP method",
            ProofError::Url => "The DPoP proof was made for another URL",
            ProofError::Stale => "The DPoP proof is too old",
            ProofError::Future => "The DPoP proof is issued in the future",
            ProofError::AccessTokenHash => "The DPoP proof was made for another access token",
            ProofError::KeyMismatch => "The DPoP proof key is not the key the token is bound to",
            ProofError::Replayed => "The DPoP proof was already used",
            ProofError::Nonce => "The DPoP proof lacks the current server nonce",
        }
    }

    /// Every reason, for tests and metrics tables.
    pub const ALL: [ProofError; 17] = [
        ProofError::Missing,
        ProofError::Multiple,
        ProofError::Malformed,
        ProofError::Type,
        ProofError::Algorithm,
        ProofError::Key,
        ProofError::PrivateKey,
        ProofError::Signature,
        ProofError::MissingClaim,
        ProofError::Method,
        ProofError::Url,
        ProofError::Stale,
        ProofError::Future,
        ProofError::AccessTokenHash,
        ProofError::KeyMismatch,
        ProofError::Replayed,
        ProofError::Nonce,
    ];
}

impl std::fmt::Display for ProofError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// Why [`Dpop::check_request`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpopRefusal {
    /// The proof breaks a rule (401 `invalid_dpop_proof`, or `use_dpop_nonce`).
    #[error("DPoP proof refused: {0}")]
    Proof(ProofError),
    /// The replay store cannot take it (503, or `use_dpop_nonce` with nonces on).
    #[error("DPoP replay store unavailable")]
    ReplayUnavailable,
}

/// Server nonces (RFC 9449 §8): a keyed hash of the current time slot, so every replica with the
/// same secret agrees and nothing is stored. The current and the previous slot are accepted.
#[derive(Clone)]
pub(crate) struct Nonces {
    secret: [u8; 32],
    lifetime: u64,
}

impl Nonces {
    fn for_slot(&self, slot: u64) -> String {
        let h = blake3::keyed_hash(&self.secret, &slot.to_le_bytes());
        URL_SAFE_NO_PAD.encode(&h.as_bytes()[..18])
    }

    pub(crate) fn current(&self, now: u64) -> String {
        self.for_slot(now / self.lifetime)
    }

    fn accepts(&self, nonce: &str, now: u64) -> bool {
        let slot = now / self.lifetime;
        let a = crate::token::constant_time_eq(nonce.as_bytes(), self.for_slot(slot).as_bytes());
        let b = crate::token::constant_time_eq(
            nonce.as_bytes(),
            self.for_slot(slot.saturating_sub(1)).as_bytes(),
        );
        a | b
    }
}

/// The DPoP settings of a protected resource: mode, proof algorithms, time window, replay
/// cache, nonces and the signature verifier. Built by
/// [`RemoteAuthProviderBuilder`](crate::RemoteAuthProviderBuilder) from its `dpop_*` settings.
#[derive(Clone)]
pub struct Dpop {
    pub(crate) mode: DpopMode,
    pub(crate) algs: Vec<DpopAlg>,
    pub(crate) algs_header: String,
    pub(crate) window: u64,
    pub(crate) leeway: u64,
    pub(crate) keys: Option<Arc<dyn DpopKeyVerifier>>,
    pub(crate) replay: Arc<dyn ReplayCache>,
    pub(crate) nonces: Option<Nonces>,
    /// R's origin, parsed and normalised once.
    pub(crate) origin: url::Url,
}

impl std::fmt::Debug for Dpop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dpop")
            .field("mode", &self.mode)
            .field("algs", &self.algs)
            .field("window", &self.window)
            .field("leeway", &self.leeway)
            .field("nonces", &self.nonces.is_some())
            .finish_non_exhaustive()
    }
}

/// A proof that passed every check that does not need the token.
pub(crate) struct CheckedProof {
    /// SHA-256 thumbprint of the proof key (RFC 7638).
    thumbprint: [u8; 32],
    jti_hash: [u8; 32],
    iat: u64,
    ath: Option<String>,
    nonce: Option<String>,
}

impl Dpop {
    /// Settings off: DPoP-bound tokens are refused, the DPoP scheme is not a credential.
    pub(crate) fn off(resource: &ResourceUrl) -> Self {
        Dpop {
            mode: DpopMode::Off,
            algs: Vec::new(),
            algs_header: String::new(),
            window: DEFAULT_WINDOW.as_secs(),
            leeway: crate::claims::DEFAULT_LEEWAY_SECS,
            keys: None,
            replay: Arc::new(InMemoryReplayCache::new(0)),
            nonces: None,
            origin: origin_of(resource),
        }
    }

    /// The mode.
    pub fn mode(&self) -> DpopMode {
        self.mode
    }

    /// The proof algorithms accepted.
    pub fn algorithms(&self) -> &[DpopAlg] {
        &self.algs
    }

    /// The `algs` challenge parameter (space-separated names).
    pub fn algs_header(&self) -> &str {
        &self.algs_header
    }

    /// Whether server nonces are on.
    pub fn nonces_enabled(&self) -> bool {
        self.nonces.is_some()
    }

    /// The current server nonce, when nonces are on.
    pub(crate) fn current_nonce(&self, now: u64) -> Option<String> {
        self.nonces.as_ref().map(|n| n.current(now))
    }

    /// Every proof rule for one request, as the bearer layer runs them (for custom layers and
    /// benchmarks): the proof in `headers` must be valid for `method` and `path` (the request
    /// path; `htu` is compared with R's origin plus it), for `access_token` (`ath`) and for the
    /// key the token is bound to (`jkt`, the token's `cnf.jkt`), carry a current nonce when
    /// nonces are on, and be new to the replay cache. DPoP off: every proof is refused
    /// ([`ProofError::Signature`], there is no verifier).
    pub async fn check_request(
        &self,
        headers: &http::HeaderMap,
        method: &http::Method,
        path: &str,
        access_token: &str,
        jkt: &str,
    ) -> Result<(), DpopRefusal> {
        let now = crate::claims::unix_now();
        let proof = self
            .check_proof(headers, method, path, now)
            .map_err(DpopRefusal::Proof)?;
        match self.bind(&proof, access_token, jkt, now).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(DpopRefusal::Proof(e)),
            Err(ReplayUnavailable) => Err(DpopRefusal::ReplayUnavailable),
        }
    }

    /// Every check of the proof that needs neither the token nor the replay cache.
    pub(crate) fn check_proof(
        &self,
        headers: &http::HeaderMap,
        method: &http::Method,
        path: &str,
        now: u64,
    ) -> Result<CheckedProof, ProofError> {
        let mut all = headers.get_all("dpop").iter();
        let value = all.next().ok_or(ProofError::Missing)?;
        if all.next().is_some() {
            return Err(ProofError::Multiple);
        }
        let proof = value.as_bytes();
        if proof.len() > MAX_PROOF_BYTES {
            return Err(ProofError::Malformed);
        }
        let proof = std::str::from_utf8(proof).map_err(|_| ProofError::Malformed)?;
        let mut parts = proof.split('.');
        let (Some(h), Some(p), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ProofError::Malformed);
        };
        let header = decode_object(h)?;
        let typ = header.get("typ").and_then(Value::as_str);
        if !typ.is_some_and(|t| {
            t.eq_ignore_ascii_case("dpop+jwt") || t.eq_ignore_ascii_case("application/dpop+jwt")
        }) {
            return Err(ProofError::Type);
        }
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(DpopAlg::from_jose)
            .filter(|a| self.algs.contains(a))
            .ok_or(ProofError::Algorithm)?;
        if header.contains_key("crit") {
            // No extension is understood here (RFC 7515 §4.1.11).
            return Err(ProofError::Malformed);
        }
        let jwk = header.get("jwk").ok_or(ProofError::Key)?;
        let jwk_obj = jwk.as_object().ok_or(ProofError::Key)?;
        const PRIVATE: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
        if PRIVATE.iter().any(|m| jwk_obj.contains_key(*m)) {
            return Err(ProofError::PrivateKey);
        }
        let kty = jwk_obj
            .get("kty")
            .and_then(Value::as_str)
            .ok_or(ProofError::Key)?;
        let crv = jwk_obj.get("crv").and_then(Value::as_str);
        if !alg.fits(kty, crv) {
            return Err(ProofError::Key);
        }
        let thumbprint = jwk_thumbprint(jwk_obj).ok_or(ProofError::Key)?;
        if sig.is_empty() {
            return Err(ProofError::Signature);
        }
        let keys = self.keys.as_ref().ok_or(ProofError::Signature)?;
        let signing_input = &proof.as_bytes()[..h.len() + 1 + p.len()];
        if !keys.verify(alg, jwk, signing_input, sig) {
            return Err(ProofError::Signature);
        }

        let claims = decode_object(p)?;
        let jti = match claims.get("jti") {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_JTI_BYTES => s,
            _ => return Err(ProofError::MissingClaim),
        };
        let htm = claims
            .get("htm")
            .and_then(Value::as_str)
            .ok_or(ProofError::MissingClaim)?;
        let htu = claims
            .get("htu")
            .and_then(Value::as_str)
            .ok_or(ProofError::MissingClaim)?;
        let iat = match claims.get("iat") {
            Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
                (Some(u), _) => u,
                (None, Some(f)) if f.is_finite() && (0.0..1e15).contains(&f) => f as u64,
                _ => return Err(ProofError::MissingClaim),
            },
            _ => return Err(ProofError::MissingClaim),
        };
        let ath = match claims.get("ath") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(ProofError::MissingClaim),
        };
        let nonce = match claims.get("nonce") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(ProofError::Nonce),
        };
        if htm != method.as_str() {
            return Err(ProofError::Method);
        }
        if !self.htu_matches(htu, path) {
            return Err(ProofError::Url);
        }
        if iat.saturating_add(self.window) < now {
            return Err(ProofError::Stale);
        }
        if iat > now.saturating_add(self.leeway) {
            return Err(ProofError::Future);
        }
        let mut h = blake3::Hasher::new();
        h.update(b"mcp-auth dpop jti\0");
        h.update(&thumbprint);
        h.update(jti.as_bytes());
        Ok(CheckedProof {
            thumbprint,
            jti_hash: *h.finalize().as_bytes(),
            iat,
            ath,
            nonce,
        })
    }

    /// The checks that bind the proof to the token (`ath`, `cnf.jkt`), the nonce, then the
    /// replay cache (last, so a refused proof never takes a cache entry).
    pub(crate) async fn bind(
        &self,
        proof: &CheckedProof,
        access_token: &str,
        jkt: &str,
        now: u64,
    ) -> Result<Result<(), ProofError>, ReplayUnavailable> {
        let Some(ath) = proof.ath.as_deref() else {
            return Ok(Err(ProofError::MissingClaim));
        };
        let digest = Sha256::digest(access_token.as_bytes());
        let mut expected = [0u8; 43];
        // 32 octets always encode to 43 base64url characters.
        let _ = URL_SAFE_NO_PAD.encode_slice(digest, &mut expected);
        if !crate::token::constant_time_eq(ath.as_bytes(), &expected) {
            return Ok(Err(ProofError::AccessTokenHash));
        }
        let mut thumb = [0u8; 43];
        let _ = URL_SAFE_NO_PAD.encode_slice(proof.thumbprint, &mut thumb);
        if !crate::token::constant_time_eq(jkt.as_bytes(), &thumb) {
            return Ok(Err(ProofError::KeyMismatch));
        }
        if let Some(nonces) = &self.nonces
            && !proof
                .nonce
                .as_deref()
                .is_some_and(|n| nonces.accepts(n, now))
        {
            return Ok(Err(ProofError::Nonce));
        }
        let expires = proof
            .iat
            .saturating_add(self.window)
            .saturating_add(self.leeway);
        match self.replay.first_use(proof.jti_hash, expires).await? {
            true => Ok(Ok(())),
            false => Ok(Err(ProofError::Replayed)),
        }
    }

    /// `htu` against R's origin plus the request path (RFC 9449 §4.3 step 9): both normalised
    /// (scheme and host case, default port, dot segments, percent-encoding case and unreserved
    /// characters); query and fragment of `htu` are ignored.
    fn htu_matches(&self, htu: &str, path: &str) -> bool {
        let Ok(claimed) = url::Url::parse(htu) else {
            return false;
        };
        // The path is set, never resolved: a request path such as `//host/x` cannot name
        // another authority.
        let mut expected = self.origin.clone();
        expected.set_path(path);
        claimed.scheme() == expected.scheme()
            && claimed.host_str() == expected.host_str()
            && claimed.port_or_known_default() == expected.port_or_known_default()
            && claimed.username().is_empty()
            && claimed.password().is_none()
            && normalise_path(claimed.path()) == normalise_path(expected.path())
    }
}

fn origin_of(resource: &ResourceUrl) -> url::Url {
    // A ResourceUrl was parsed as an absolute http(s) URL when it was built.
    let mut u = url::Url::parse(resource.as_str()).expect("a ResourceUrl parses as a URL");
    u.set_path("/");
    u.set_query(None);
    u.set_fragment(None);
    u
}

/// Percent-encoded unreserved characters decoded, other escapes upper-cased (RFC 3986 §6.2.2).
fn normalise_path(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.contains('%') {
        return std::borrow::Cow::Borrowed(path);
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            let c = hi << 4 | lo;
            if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                out.push(char::from(c));
            } else {
                out.push('%');
                out.push(char::from(bytes[i + 1].to_ascii_uppercase()));
                out.push(char::from(bytes[i + 2].to_ascii_uppercase()));
            }
            i += 3;
        } else {
            out.push(char::from(bytes[i]));
            i += 1;
        }
    }
    std::borrow::Cow::Owned(out)
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Longest base64url segment decoded (header or payload).
const MAX_SEGMENT: usize = MAX_PROOF_BYTES;

fn decode_object(segment: &str) -> Result<Map<String, Value>, ProofError> {
    if segment.is_empty() || segment.len() > MAX_SEGMENT {
        return Err(ProofError::Malformed);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| ProofError::Malformed)?;
    parse_unique_object(&bytes).ok_or(ProofError::Malformed)
}

/// The RFC 7638 SHA-256 thumbprint of a public JWK: the required members only, in
/// lexicographic order, no whitespace. `None` when a required member is missing, is not a
/// string, or holds a character that would need escaping in JSON (no real key does).
pub fn jwk_thumbprint(jwk: &Map<String, Value>) -> Option<[u8; 32]> {
    let kty = jwk.get("kty")?.as_str()?;
    let members: &[&str] = match kty {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    let mut h = Sha256::new();
    h.update(b"{");
    for (i, name) in members.iter().enumerate() {
        let v = jwk.get(*name)?.as_str()?;
        if v.is_empty()
            || !v
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        {
            return None;
        }
        if i > 0 {
            h.update(b",");
        }
        h.update(b"\"");
        h.update(name.as_bytes());
        h.update(b"\":\"");
        h.update(v.as_bytes());
        h.update(b"\"");
    }
    h.update(b"}");
    Some(h.finalize().into())
}

/// Whether `jkt` has the shape of a base64url SHA-256 thumbprint (43 characters).
pub fn is_thumbprint(jkt: &str) -> bool {
    jkt.len() == 43
        && jkt
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Builder-side DPoP settings (what [`RemoteAuthProviderBuilder`](crate::RemoteAuthProviderBuilder)
/// collects before `build`).
#[derive(Clone, Default)]
pub(crate) struct DpopSettings {
    pub(crate) mode: Option<DpopMode>,
    pub(crate) mode_text: Option<String>,
    pub(crate) algs: Option<Vec<String>>,
    pub(crate) window: Option<Duration>,
    pub(crate) leeway: Option<Duration>,
    pub(crate) keys: Option<Arc<dyn DpopKeyVerifier>>,
    pub(crate) replay: Option<Arc<dyn ReplayCache>>,
    pub(crate) replay_capacity: Option<usize>,
    pub(crate) nonces: Option<Duration>,
    pub(crate) nonce_text: Option<String>,
}

/// The setting named in DPoP build errors (`MCP_AUTH_DPOP`).
pub const DPOP_SETTING: crate::Setting = crate::Setting::new("dpop", "DPoP mode");
/// The nonce lifetime (`MCP_AUTH_DPOP_NONCE_SECS`).
pub const DPOP_NONCE_SETTING: crate::Setting =
    crate::Setting::new("dpop_nonce_secs", "DPoP nonce lifetime");
/// The setting of the proof algorithms (`MCP_AUTH_DPOP_ALGORITHMS`).
pub const DPOP_ALGORITHMS_SETTING: crate::Setting =
    crate::Setting::new("dpop_algorithms", "DPoP proof algorithms");

impl DpopSettings {
    pub(crate) fn build(self, resource: &ResourceUrl) -> Result<Dpop, crate::BuildError> {
        // Without a signature verifier core cannot check proofs: DPoP is off unless asked for,
        // and asking for it without one is a start-up error (never a silent downgrade).
        let configured = match &self.mode_text {
            Some(text) => Some(
                text.parse::<DpopMode>()
                    .map_err(|e| BuildError::invalid(DPOP_SETTING, e))?,
            ),
            None => self.mode,
        };
        let mode = match (configured, &self.keys) {
            (Some(m), _) => m,
            (None, Some(_)) => DpopMode::Allowed,
            (None, None) => DpopMode::Off,
        };
        if mode == DpopMode::Off {
            return Ok(Dpop::off(resource));
        }
        let Some(keys) = self.keys else {
            return Err(BuildError::invalid(
                DPOP_SETTING,
                format!(
                    "DPoP mode {} needs a proof signature verifier: give the builder \
                     mcp_auth_jwt::DpopKeys (dpop_key_verifier)",
                    mode.as_str()
                ),
            ));
        };
        let algs = match self.algs {
            None => DpopAlg::DEFAULT.to_vec(),
            Some(names) => {
                let mut algs = Vec::new();
                for n in &names {
                    let a: DpopAlg = n.parse()?;
                    if !algs.contains(&a) {
                        algs.push(a);
                    }
                }
                if algs.is_empty() {
                    return Err(BuildError::invalid(
                        DPOP_ALGORITHMS_SETTING,
                        "at least one algorithm is needed",
                    ));
                }
                algs
            }
        };
        let window = self.window.unwrap_or(DEFAULT_WINDOW).as_secs();
        if window == 0 {
            return Err(BuildError::invalid(
                crate::Setting::new("dpop_window", "DPoP proof window"),
                "must be at least one second",
            ));
        }
        let leeway = self
            .leeway
            .map(|d| d.as_secs())
            .unwrap_or(crate::claims::DEFAULT_LEEWAY_SECS);
        let nonce_lifetime = match &self.nonce_text {
            Some(text) => Some(Duration::from_secs(text.trim().parse::<u64>().map_err(
                |_| {
                    BuildError::invalid(
                        DPOP_NONCE_SETTING,
                        format!("{text:?} is not a number of seconds"),
                    )
                },
            )?)),
            None => self.nonces,
        };
        let nonces = match nonce_lifetime {
            None => None,
            Some(lifetime) if lifetime.as_secs() == 0 => {
                return Err(BuildError::invalid(
                    DPOP_NONCE_SETTING,
                    "must be at least one second",
                ));
            }
            Some(lifetime) => {
                let mut secret = [0u8; 32];
                getrandom::getrandom(&mut secret).map_err(|_| {
                    BuildError::invalid(
                        crate::Setting::new("dpop_nonces", "DPoP nonces"),
                        "no randomness available for the nonce secret",
                    )
                })?;
                Some(Nonces {
                    secret,
                    lifetime: lifetime.as_secs(),
                })
            }
        };
        let replay = self.replay.unwrap_or_else(|| {
            Arc::new(InMemoryReplayCache::new(
                self.replay_capacity.unwrap_or(DEFAULT_REPLAY_CAPACITY),
            ))
        });
        let algs_header = algs
            .iter()
            .map(DpopAlg::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Dpop {
            mode,
            algs,
            algs_header,
            window,
            leeway,
            keys: Some(keys),
            replay,
            nonces,
            origin: origin_of(resource),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_cache_refuses_when_full_and_never_evicts_live_entries() {
        let c = InMemoryReplayCache::new(2);
        assert_eq!(c.first_use_at([1; 32], 100, 10), Ok(true));
        assert_eq!(c.first_use_at([2; 32], 200, 10), Ok(true));
        assert_eq!(c.first_use_at([3; 32], 300, 10), Err(ReplayUnavailable));
        // Both live entries are still there.
        assert_eq!(c.first_use_at([1; 32], 100, 50), Ok(false));
        assert_eq!(c.first_use_at([2; 32], 200, 50), Ok(false));
        // Once the first expires, its room is reused.
        assert_eq!(c.first_use_at([3; 32], 300, 100), Err(ReplayUnavailable));
        assert_eq!(c.first_use_at([3; 32], 300, 101), Ok(true));
        assert_eq!(c.first_use_at([1; 32], 400, 150), Err(ReplayUnavailable));
        assert_eq!(c.first_use_at([2; 32], 200, 150), Ok(false));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn a_replay_entry_is_kept_through_its_expiry_second_and_no_longer() {
        let c = InMemoryReplayCache::new(1);
        assert_eq!(c.first_use_at([1; 32], 1_000, 990), Ok(true));
        // Kept until exactly its expiry: at that second it is still a replay...
        assert_eq!(c.first_use_at([1; 32], 1_000, 999), Ok(false));
        assert_eq!(c.first_use_at([1; 32], 1_000, 1_000), Ok(false));
        assert_eq!(
            c.first_use_at([2; 32], 2_000, 1_000),
            Err(ReplayUnavailable)
        );
        // ...and no longer: one second later its room is free and the key is new again.
        assert_eq!(c.first_use_at([2; 32], 2_000, 1_001), Ok(true));
        assert_eq!(c.len(), 1);
        let c = InMemoryReplayCache::new(1);
        assert_eq!(c.first_use_at([1; 32], 1_000, 990), Ok(true));
        assert_eq!(c.first_use_at([1; 32], 1_100, 1_001), Ok(true));
    }

    /// Accepts every signature: these tests are about time, not crypto.
    struct AnySignature;
    impl DpopKeyVerifier for AnySignature {
        fn verify(&self, _: DpopAlg, _: &Value, _: &[u8], _: &str) -> bool {
            true
        }
    }

    /// The in-memory cache on a clock the test sets, recording the expiry it is asked for.
    #[derive(Default)]
    struct ClockedCache {
        inner: Option<InMemoryReplayCache>,
        now: std::sync::atomic::AtomicU64,
        asked: Mutex<Vec<u64>>,
    }
    #[async_trait::async_trait]
    impl ReplayCache for ClockedCache {
        async fn first_use(&self, key: [u8; 32], exp: u64) -> Result<bool, ReplayUnavailable> {
            self.asked.lock().unwrap().push(exp);
            let now = self.now.load(std::sync::atomic::Ordering::SeqCst);
            self.inner.as_ref().unwrap().first_use_at(key, exp, now)
        }
    }

    /// RFC 9449 §11.1: a proof must not be accepted twice while it is fresh. For each leeway,
    /// one proof is used at the first second it is accepted and replayed at every later second:
    /// while the time checks still accept it, the replay cache must refuse it, so the entry
    /// (kept until `iat` + window + leeway) always outlives the proof.
    #[tokio::test]
    async fn a_fresh_proof_never_outlives_its_replay_entry() {
        const IAT: u64 = 1_000_000;
        const WINDOW: u64 = 60;
        const R: &str = "https://api.example.com/mcp";
        let token = "an-access-token";
        let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "x": "eA", "y": "eQ"});
        let jkt = URL_SAFE_NO_PAD.encode(jwk_thumbprint(jwk.as_object().unwrap()).unwrap());
        let header = serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
        let claims = serde_json::json!({"jti": "j", "htm": "POST", "htu": R, "iat": IAT,
            "ath": URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))});
        let proof = format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut headers = http::HeaderMap::new();
        headers.insert("dpop", proof.parse().unwrap());
        for leeway in [0, 1, 30] {
            let cache = Arc::new(ClockedCache {
                inner: Some(InMemoryReplayCache::new(10)),
                ..ClockedCache::default()
            });
            let d = DpopSettings {
                mode: Some(DpopMode::Allowed),
                keys: Some(Arc::new(AnySignature)),
                replay: Some(cache.clone()),
                window: Some(Duration::from_secs(WINDOW)),
                leeway: Some(Duration::from_secs(leeway)),
                ..DpopSettings::default()
            }
            .build(&ResourceUrl::parse(R).unwrap())
            .unwrap();
            let at = async |now: u64| {
                cache.now.store(now, std::sync::atomic::Ordering::SeqCst);
                let p = d.check_proof(&headers, &http::Method::POST, "/mcp", now)?;
                d.bind(&p, token, &jkt, now).await.unwrap()
            };
            let first = IAT - leeway;
            assert_eq!(
                at(first - 1).await,
                Err(ProofError::Future),
                "leeway {leeway}"
            );
            assert_eq!(at(first).await, Ok(()), "leeway {leeway}");
            let expiry = IAT + WINDOW + leeway;
            assert_eq!(*cache.asked.lock().unwrap(), [expiry], "leeway {leeway}");
            for now in first..=expiry + 2 {
                let again = at(now).await;
                let expected = if now <= IAT + WINDOW {
                    Err(ProofError::Replayed)
                } else {
                    Err(ProofError::Stale)
                };
                assert_eq!(again, expected, "leeway {leeway}, {now} s");
            }
            // The entry itself is kept through `expiry` and gone one second later.
            let inner = cache.inner.as_ref().unwrap();
            let key = {
                let mut h = blake3::Hasher::new();
                h.update(b"mcp-auth dpop jti\0");
                h.update(&jwk_thumbprint(jwk.as_object().unwrap()).unwrap());
                h.update(b"j");
                *h.finalize().as_bytes()
            };
            assert_eq!(inner.first_use_at(key, expiry, expiry), Ok(false));
            assert_eq!(inner.first_use_at(key, expiry, expiry + 1), Ok(true));
        }
    }

    #[test]
    fn thumbprint_matches_rfc_7638_example() {
        // RFC 7638 §3.1.
        let jwk: Value = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"
        });
        let t = jwk_thumbprint(jwk.as_object().unwrap()).unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.encode(t),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn htu_is_compared_after_normalisation_and_never_resolves_the_path() {
        let mut d = Dpop::off(&ResourceUrl::parse("https://api.example.com/mcp").unwrap());
        d.mode = DpopMode::Allowed;
        for ok in [
            "https://api.example.com/mcp",
            "HTTPS://API.EXAMPLE.COM:443/mcp",
            "https://api.example.com/%6dcp?q=1#f",
            "https://api.example.com/a/../mcp",
        ] {
            assert!(d.htu_matches(ok, "/mcp"), "{ok}");
        }
        for bad in [
            "https://api.example.com/mcp/",
            "http://api.example.com/mcp",
            "https://api.example.com:8443/mcp",
            "https://evil.example/mcp",
            "https://user@api.example.com/mcp",
            "/mcp",
        ] {
            assert!(!d.htu_matches(bad, "/mcp"), "{bad}");
        }
        assert!(!d.htu_matches("https://evil.example/x", "//evil.example/x"));
    }

    #[test]
    fn paths_normalise_escapes() {
        assert_eq!(normalise_path("/a%7eb%2f"), "/a~b%2F");
        assert_eq!(normalise_path("/mcp"), "/mcp");
        assert_eq!(normalise_path("/%"), "/%");
    }

    #[test]
    fn every_description_is_in_charset() {
        for e in ProofError::ALL {
            assert!(
                e.description()
                    .bytes()
                    .all(crate::challenge::is_quoted_value_char)
            );
        }
    }
}
