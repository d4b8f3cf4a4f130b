//! DPoP proof signatures (RFC 9449) checked with this crate's crypto backend.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_auth_core::dpop::{DpopAlg, DpopKeyVerifier};
use serde_json::Value;

use crate::crypto::{KeyMaterial, ec_key, ed25519_key, rsa_key};
use crate::keys::{KeyKind, parse_alg};

/// Verifies DPoP proof signatures with the key each proof carries, on the selected crypto
/// backend (aws-lc-rs by default, RustCrypto with the `rust-crypto` feature). Keys are held to
/// the same rules as JWKS keys: RSA moduli of 2048 to 8192 bits with a sane exponent, EC points
/// on P-256 or P-384, Ed25519 keys of 32 octets.
///
/// Give it to the provider builder to turn DPoP on (`allowed` by default):
///
/// ```
/// use std::sync::Arc;
/// use mcp_auth_core::{RemoteAuthProvider, dpop::DpopMode};
/// # use mcp_auth_core::{async_trait, AccessToken, InvalidToken, VerifyError};
/// # struct V;
/// # #[async_trait]
/// # impl mcp_auth_core::TokenVerifier for V {
/// #     async fn verify(&self, _: &str) -> Result<AccessToken, VerifyError> {
/// #         Err(InvalidToken::Malformed.into())
/// #     }
/// # }
/// let provider = RemoteAuthProvider::builder(Arc::new(V))
///     .resource_url("https://api.example.com/mcp")
///     .authorization_server("https://idp.example.com")
///     .dpop_key_verifier(mcp_auth_jwt::DpopKeys::shared())
///     .dpop(DpopMode::Required)
///     .build()
///     .unwrap();
/// let meta = serde_json::to_value(provider.protected_resource().metadata()).unwrap();
/// assert_eq!(meta["dpop_bound_access_tokens_required"], true);
/// # use mcp_auth_core::AuthProvider;
/// ```
///
/// A client signs every proof with the same key, so parsed keys are kept (up to 10,000, keyed
/// by a hash of the algorithm and the key's members): a repeat proof costs the signature check
/// only, not the key parsing and curve-point validation.
#[derive(Clone)]
pub struct DpopKeys {
    parsed: moka::sync::Cache<[u8; 32], Arc<KeyMaterial>>,
}

impl std::fmt::Debug for DpopKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopKeys").finish_non_exhaustive()
    }
}

impl Default for DpopKeys {
    fn default() -> Self {
        DpopKeys::new()
    }
}

/// How many parsed proof keys are kept.
const PARSED_KEYS: u64 = 10_000;

impl DpopKeys {
    /// A verifier with an empty parsed-key cache.
    pub fn new() -> Self {
        DpopKeys {
            parsed: moka::sync::Cache::builder()
                .max_capacity(PARSED_KEYS)
                .build(),
        }
    }

    /// A shared instance, ready for
    /// [`dpop_key_verifier`](mcp_auth_core::RemoteAuthProviderBuilder::dpop_key_verifier).
    pub fn shared() -> Arc<dyn DpopKeyVerifier> {
        Arc::new(DpopKeys::new())
    }
}

/// The cache key of a proof key: the algorithm and every member parsing reads, length-prefixed.
fn cache_key(alg: DpopAlg, jwk: &Value) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(alg.as_str().as_bytes());
    for m in ["kty", "crv", "x", "y", "n", "e"] {
        let v = jwk.get(m).and_then(Value::as_str).unwrap_or("");
        h.update(&(v.len() as u64).to_le_bytes());
        h.update(v.as_bytes());
    }
    *h.finalize().as_bytes()
}

fn member(jwk: &Value, name: &str) -> Option<Vec<u8>> {
    let s = jwk.get(name)?.as_str()?;
    URL_SAFE_NO_PAD.decode(s).ok()
}

/// The proof key parsed for `alg` only.
fn parse(alg: DpopAlg, jwk: &Value) -> Option<KeyMaterial> {
    let jose = parse_alg(alg.as_str())?;
    match alg {
        DpopAlg::ES256 | DpopAlg::ES384 => {
            let (kind, len) = if alg == DpopAlg::ES256 {
                (KeyKind::EcP256, 32)
            } else {
                (KeyKind::EcP384, 48)
            };
            let x = member(jwk, "x")?;
            let y = member(jwk, "y")?;
            if x.len() != len || y.len() != len {
                return None;
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            ec_key(kind, &point).ok()
        }
        DpopAlg::EdDSA => ed25519_key(&member(jwk, "x")?).ok(),
        _ => rsa_key(&member(jwk, "n")?, &member(jwk, "e")?, Some(jose)).ok(),
    }
}

impl DpopKeyVerifier for DpopKeys {
    fn verify(&self, alg: DpopAlg, jwk: &Value, signing_input: &[u8], signature_b64: &str) -> bool {
        let Some(jose) = parse_alg(alg.as_str()) else {
            return false;
        };
        let id = cache_key(alg, jwk);
        let key = match self.parsed.get(&id) {
            Some(k) => k,
            None => match parse(alg, jwk) {
                Some(k) => {
                    let k = Arc::new(k);
                    self.parsed.insert(id, k.clone());
                    k
                }
                None => return false,
            },
        };
        key.verify(jose, signing_input, signature_b64)
    }
}
