//! Signature verification with public keys parsed once, when the key is loaded.
//!
//! jsonwebtoken keeps a public key as bytes and rebuilds the backend's key object on every
//! verification (for RSA: two bignums, an `RSA` object and its Montgomery context, each time).
//! Here a JWK or PEM key is parsed into the backend's own key object when the key set is loaded
//! and kept with the key, so verifying a token only runs the signature check. The backend is the
//! one the crate's feature selects: aws-lc-rs (`aws-lc-rs`) or the RustCrypto crates
//! (`rust-crypto`), the same ones jsonwebtoken uses. HMAC stays on jsonwebtoken, which compares
//! tags in constant time with both backends.
//!
//! Rules applied whatever the backend:
//!
//! * RSA (RFC 7518 §3.3 and §3.5, RFC 8017): a modulus of at least 2048 bits (RFC 7518 §3.3)
//!   and at most 8192 (the RustCrypto backend stops at 4096, as jsonwebtoken's did); a public
//!   exponent that is odd, at least 3 (RFC 8017 §3.1) and at most 2^33 − 1; a signature exactly
//!   as long as the modulus (RFC 8017 §8.2.2 and §8.1.2, step 1). PSS uses MGF1 with the same
//!   hash and a salt as long as the hash (RFC 7518 §3.5).
//! * ECDSA (RFC 7518 §3.4): the point is on the curve the algorithm names (checked at load);
//!   the signature is the fixed-size `R || S`, 64 octets for ES256 and 96 for ES384.
//! * EdDSA (RFC 8037 §3.1): Ed25519 public keys of 32 octets, signatures of 64.
//! * The signature segment is base64url without padding and without stray bits (RFC 7515 §2);
//!   anything else does not verify.
//!
//! A key object is parsed for exactly the algorithms the key may serve (a JWK's own `alg`, or
//! every algorithm of its type), and verifying with any other algorithm answers `false`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::keys::{KeyKind, is_hmac, kind_fits};

/// Smallest accepted RSA modulus, in bits (RFC 7518 §3.3).
const MIN_RSA_BITS: usize = 2048;
/// Largest accepted RSA modulus, in bits.
const MAX_RSA_BITS: usize = 8192;
/// Largest accepted RSA public exponent.
const MAX_RSA_EXPONENT: u64 = (1 << 33) - 1;
/// Longest signature of any supported algorithm: RSA with the largest modulus.
const MAX_SIG_BYTES: usize = MAX_RSA_BITS / 8;
/// Longest base64url text of a signature of `MAX_SIG_BYTES` octets.
const MAX_SIG_B64: usize = (MAX_SIG_BYTES * 4).div_ceil(3);

/// The RSA algorithms (RFC 7518 §3.3, §3.5), in the order keys are parsed for them.
const RSA_ALGS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// What a key verifies signatures with.
pub(crate) enum KeyMaterial {
    /// An HMAC secret (explicitly configured, never from a key set), verified by jsonwebtoken.
    Hmac(DecodingKey),
    /// A public key parsed by the selected backend.
    Public(backend::PublicKey),
}

// Keys are shared by every task verifying tokens.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<KeyMaterial>();
};

impl KeyMaterial {
    /// Whether `signature_b64` (the third segment of a JWS compact serialization) is a valid
    /// signature of `message` under this key and `alg`. Never panics; anything malformed is
    /// `false`.
    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature_b64: &str) -> bool {
        match self {
            KeyMaterial::Hmac(key) => {
                is_hmac(alg)
                    && jsonwebtoken::crypto::verify(signature_b64, message, key, alg)
                        .unwrap_or(false)
            }
            KeyMaterial::Public(key) => {
                if signature_b64.len() > MAX_SIG_B64 {
                    return false;
                }
                // Room for the decoder's estimate (up to two octets over the exact length).
                let mut buf = [0u8; MAX_SIG_BYTES + 3];
                match URL_SAFE_NO_PAD.decode_slice(signature_b64, &mut buf) {
                    Ok(len) => buf
                        .get(..len)
                        .is_some_and(|signature| key.verify(alg, message, signature)),
                    Err(_) => false,
                }
            }
        }
    }
}

/// Leading zero octets removed (RFC 7518 §6.3.1.1 notes that some libraries add one).
fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// Bit length of a big-endian unsigned integer without leading zero octets.
fn bit_len(minimal: &[u8]) -> usize {
    match minimal.first() {
        None => 0,
        Some(top) => (minimal.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

/// The algorithms a key of `kind` is parsed for: the JWK's own `alg` when it names one (it
/// must fit the key type), every algorithm of the type otherwise.
fn algorithms_for(kind: KeyKind, alg: Option<Algorithm>) -> Result<Vec<Algorithm>, &'static str> {
    match alg {
        Some(a) if kind_fits(kind, a) => Ok(vec![a]),
        Some(_) => Err("alg does not fit the key type"),
        None => Ok(match kind {
            KeyKind::Rsa => RSA_ALGS.to_vec(),
            KeyKind::EcP256 => vec![Algorithm::ES256],
            KeyKind::EcP384 => vec![Algorithm::ES384],
            KeyKind::Ed25519 => vec![Algorithm::EdDSA],
            KeyKind::Hmac => Vec::new(),
        }),
    }
}

/// An RSA public key from its modulus and exponent (big-endian octets, RFC 7518 §6.3.1),
/// checked against the rules of this module and parsed for `alg` (or every RSA algorithm).
pub(crate) fn rsa_key(
    n: &[u8],
    e: &[u8],
    alg: Option<Algorithm>,
) -> Result<KeyMaterial, &'static str> {
    let n = strip_zeros(n);
    let e = strip_zeros(e);
    let bits = bit_len(n);
    if bits < MIN_RSA_BITS {
        return Err("RSA modulus shorter than 2048 bits");
    }
    if bits > MAX_RSA_BITS {
        return Err("RSA modulus longer than 8192 bits");
    }
    if e.is_empty() || e.len() > 8 {
        return Err("bad RSA exponent");
    }
    let exponent = e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    if !(3..=MAX_RSA_EXPONENT).contains(&exponent) || exponent % 2 == 0 {
        return Err("bad RSA exponent");
    }
    let algs = algorithms_for(KeyKind::Rsa, alg)?;
    backend::PublicKey::rsa(n, e, &algs).map(KeyMaterial::Public)
}

/// An EC public key from its uncompressed SEC1 point (`0x04 || X || Y`, RFC 7518 §6.2.1), on the
/// curve of `kind` (P-256 or P-384).
pub(crate) fn ec_key(kind: KeyKind, point: &[u8]) -> Result<KeyMaterial, &'static str> {
    let coordinate = match kind {
        KeyKind::EcP256 => 32,
        KeyKind::EcP384 => 48,
        _ => return Err("unsupported EC curve"),
    };
    if point.len() != 1 + 2 * coordinate || point.first() != Some(&0x04) {
        return Err("EC point is not an uncompressed point of its curve");
    }
    backend::PublicKey::ec(kind, point).map(KeyMaterial::Public)
}

/// An Ed25519 public key (32 octets, RFC 8037 §2).
pub(crate) fn ed25519_key(x: &[u8]) -> Result<KeyMaterial, &'static str> {
    if x.len() != 32 {
        return Err("Ed25519 key has the wrong length");
    }
    backend::PublicKey::ed25519(x).map(KeyMaterial::Public)
}

/// Reads one DER element with tag `tag` (definite length, minimal length octets); returns its
/// contents and what follows it.
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        short @ 0..=0x7f => (usize::from(short), rest),
        0x81 => {
            let (&len, rest) = rest.split_first()?;
            if len < 0x80 {
                return None;
            }
            (usize::from(len), rest)
        }
        0x82 => {
            let (len, rest) = rest.split_at_checked(2)?;
            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            if len < 0x100 {
                return None;
            }
            (len, rest)
        }
        _ => return None,
    };
    rest.split_at_checked(len)
}

/// The magnitude of a DER INTEGER that must be positive, without its sign octet.
fn der_positive(contents: &[u8]) -> Option<&[u8]> {
    match contents {
        [0, next, ..] if next & 0x80 != 0 => Some(&contents[1..]),
        [first, ..] if *first != 0 && first & 0x80 == 0 => Some(contents),
        // Empty, zero, negative, or a non-minimal encoding.
        _ => None,
    }
}

/// The modulus and exponent of a DER `RSAPublicKey` (RFC 8017 §A.1.1:
/// `SEQUENCE { modulus INTEGER, publicExponent INTEGER }`), as PEM keys carry it.
pub(crate) fn rsa_public_key_der(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (body, trailing) = der_element(der, 0x30)?;
    if !trailing.is_empty() {
        return None;
    }
    let (n, rest) = der_element(body, 0x02)?;
    let (e, rest) = der_element(rest, 0x02)?;
    if !rest.is_empty() {
        return None;
    }
    Some((der_positive(n)?, der_positive(e)?))
}

/// aws-lc-rs: one `ParsedPublicKey` per algorithm the key serves (aws-lc-rs binds a parsed key
/// to one algorithm); its `EVP_PKEY` keeps the RSA Montgomery context after the first use.
#[cfg(feature = "aws-lc-rs")]
mod backend {
    use aws_lc::signature::{
        ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, ParsedPublicKey,
        RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_2048_8192_SHA384, RSA_PKCS1_2048_8192_SHA512,
        RSA_PSS_2048_8192_SHA256, RSA_PSS_2048_8192_SHA384, RSA_PSS_2048_8192_SHA512,
        RsaParameters, RsaPublicKeyComponents,
    };
    use jsonwebtoken::Algorithm;

    use crate::keys::KeyKind;

    /// A public key parsed by aws-lc-rs.
    pub(crate) struct PublicKey {
        parsed: Vec<(Algorithm, ParsedPublicKey)>,
        /// The only signature length that can verify.
        signature_len: usize,
    }

    fn rsa_parameters(alg: Algorithm) -> Option<&'static RsaParameters> {
        Some(match alg {
            Algorithm::RS256 => &RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RS384 => &RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &RSA_PKCS1_2048_8192_SHA512,
            Algorithm::PS256 => &RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &RSA_PSS_2048_8192_SHA512,
            _ => return None,
        })
    }

    impl PublicKey {
        /// `n` and `e` without leading zeros, already checked by the caller.
        pub(crate) fn rsa(n: &[u8], e: &[u8], algs: &[Algorithm]) -> Result<Self, &'static str> {
            let components = RsaPublicKeyComponents { n, e };
            let parsed = algs
                .iter()
                .map(|&alg| {
                    let params = rsa_parameters(alg).ok_or("alg does not fit the key type")?;
                    components
                        .to_parsed_public_key(params)
                        .map(|key| (alg, key))
                        .map_err(|_| "RSA key rejected by aws-lc-rs")
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(PublicKey {
                parsed,
                signature_len: n.len(),
            })
        }

        /// `point` is an uncompressed SEC1 point of the curve's length, checked by the caller.
        pub(crate) fn ec(kind: KeyKind, point: &[u8]) -> Result<Self, &'static str> {
            let (alg, verification, signature_len) = match kind {
                KeyKind::EcP256 => (Algorithm::ES256, &ECDSA_P256_SHA256_FIXED, 64),
                KeyKind::EcP384 => (Algorithm::ES384, &ECDSA_P384_SHA384_FIXED, 96),
                _ => return Err("unsupported EC curve"),
            };
            let key = ParsedPublicKey::new(verification, point)
                .map_err(|_| "EC point is not on its curve")?;
            Ok(PublicKey {
                parsed: vec![(alg, key)],
                signature_len,
            })
        }

        pub(crate) fn ed25519(x: &[u8]) -> Result<Self, &'static str> {
            let key = ParsedPublicKey::new(&ED25519, x).map_err(|_| "invalid Ed25519 key")?;
            Ok(PublicKey {
                parsed: vec![(Algorithm::EdDSA, key)],
                signature_len: 64,
            })
        }

        pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
            signature.len() == self.signature_len
                && self
                    .parsed
                    .iter()
                    .find(|(a, _)| *a == alg)
                    .is_some_and(|(_, key)| key.verify_sig(message, signature).is_ok())
        }
    }
}

/// RustCrypto: the `rsa`, `p256`, `p384` and `ed25519-dalek` key types jsonwebtoken's RustCrypto
/// backend builds per call, built once.
#[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
mod backend {
    use ed25519_dalek::Verifier as _;
    use jsonwebtoken::Algorithm;
    use rsa::{BigUint, Pkcs1v15Sign, Pss, RsaPublicKey};
    use sha2::{Digest, Sha256, Sha384, Sha512};

    use crate::keys::KeyKind;

    enum Kind {
        Rsa(RsaPublicKey),
        P256(p256::ecdsa::VerifyingKey),
        P384(p384::ecdsa::VerifyingKey),
        Ed25519(ed25519_dalek::VerifyingKey),
    }

    /// A public key parsed by the RustCrypto crates.
    pub(crate) struct PublicKey {
        kind: Kind,
        /// The algorithms this key may verify.
        algs: Vec<Algorithm>,
        /// The only signature length that can verify.
        signature_len: usize,
    }

    impl PublicKey {
        /// `n` and `e` without leading zeros, already checked by the caller.
        pub(crate) fn rsa(n: &[u8], e: &[u8], algs: &[Algorithm]) -> Result<Self, &'static str> {
            let key = RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e))
                .map_err(|_| "RSA key rejected by the RustCrypto backend")?;
            Ok(PublicKey {
                kind: Kind::Rsa(key),
                algs: algs.to_vec(),
                signature_len: n.len(),
            })
        }

        /// `point` is an uncompressed SEC1 point of the curve's length, checked by the caller.
        pub(crate) fn ec(kind: KeyKind, point: &[u8]) -> Result<Self, &'static str> {
            let not_on_curve = |_| "EC point is not on its curve";
            let (kind, alg, signature_len) = match kind {
                KeyKind::EcP256 => (
                    Kind::P256(
                        p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(not_on_curve)?,
                    ),
                    Algorithm::ES256,
                    64,
                ),
                KeyKind::EcP384 => (
                    Kind::P384(
                        p384::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(not_on_curve)?,
                    ),
                    Algorithm::ES384,
                    96,
                ),
                _ => return Err("unsupported EC curve"),
            };
            Ok(PublicKey {
                kind,
                algs: vec![alg],
                signature_len,
            })
        }

        pub(crate) fn ed25519(x: &[u8]) -> Result<Self, &'static str> {
            let bytes: &[u8; 32] = x.try_into().map_err(|_| "invalid Ed25519 key")?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(bytes)
                .map_err(|_| "invalid Ed25519 key")?;
            Ok(PublicKey {
                kind: Kind::Ed25519(key),
                algs: vec![Algorithm::EdDSA],
                signature_len: 64,
            })
        }

        pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
            if signature.len() != self.signature_len || !self.algs.contains(&alg) {
                return false;
            }
            match (&self.kind, alg) {
                (Kind::Rsa(key), Algorithm::RS256) => key
                    .verify(
                        Pkcs1v15Sign::new::<Sha256>(),
                        &Sha256::digest(message),
                        signature,
                    )
                    .is_ok(),
                (Kind::Rsa(key), Algorithm::RS384) => key
                    .verify(
                        Pkcs1v15Sign::new::<Sha384>(),
                        &Sha384::digest(message),
                        signature,
                    )
                    .is_ok(),
                (Kind::Rsa(key), Algorithm::RS512) => key
                    .verify(
                        Pkcs1v15Sign::new::<Sha512>(),
                        &Sha512::digest(message),
                        signature,
                    )
                    .is_ok(),
                (Kind::Rsa(key), Algorithm::PS256) => key
                    .verify(Pss::new::<Sha256>(), &Sha256::digest(message), signature)
                    .is_ok(),
                (Kind::Rsa(key), Algorithm::PS384) => key
                    .verify(Pss::new::<Sha384>(), &Sha384::digest(message), signature)
                    .is_ok(),
                (Kind::Rsa(key), Algorithm::PS512) => key
                    .verify(Pss::new::<Sha512>(), &Sha512::digest(message), signature)
                    .is_ok(),
                (Kind::P256(key), Algorithm::ES256) => {
                    p256::ecdsa::Signature::from_slice(signature)
                        .is_ok_and(|s| key.verify(message, &s).is_ok())
                }
                (Kind::P384(key), Algorithm::ES384) => {
                    p384::ecdsa::Signature::from_slice(signature)
                        .is_ok_and(|s| key.verify(message, &s).is_ok())
                }
                (Kind::Ed25519(key), Algorithm::EdDSA) => {
                    ed25519_dalek::Signature::from_slice(signature)
                        .is_ok_and(|s| key.verify(message, &s).is_ok())
                }
                _ => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Keys and signatures come from aws-lc-rs (the `dev` feature, on for every test build),
    //! whichever backend verifies.

    use std::sync::OnceLock;

    use aws_lc::encoding::AsDer;
    use aws_lc::rand::SystemRandom;
    use aws_lc::rsa::KeySize;
    use aws_lc::signature::{
        ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING,
        ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair,
        KeyPair, RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PKCS1_SHA512, RSA_PSS_SHA256,
        RSA_PSS_SHA384, RSA_PSS_SHA512, RsaEncoding, RsaKeyPair,
    };
    use base64::engine::general_purpose::STANDARD;
    use serde_json::{Value, json};

    use super::*;
    use crate::keys::{Key, parse_jwk, parse_static};

    const MESSAGE: &[u8] = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ";

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn rsa_pair() -> &'static RsaKeyPair {
        static PAIR: OnceLock<RsaKeyPair> = OnceLock::new();
        PAIR.get_or_init(|| RsaKeyPair::generate(KeySize::Rsa2048).unwrap())
    }

    fn rsa_n_e() -> (Vec<u8>, Vec<u8>) {
        let c = RsaPublicKeyComponentsOwned::from(rsa_pair().public_key());
        (c.n, c.e)
    }

    type RsaPublicKeyComponentsOwned = aws_lc::signature::RsaPublicKeyComponents<Vec<u8>>;

    fn rsa_jwk(n: &[u8], e: &[u8], alg: Option<&str>) -> Value {
        let mut jwk = json!({"kty": "RSA", "n": b64(n), "e": b64(e)});
        if let Some(alg) = alg {
            jwk["alg"] = json!(alg);
        }
        jwk
    }

    fn rsa_encoding(alg: Algorithm) -> &'static dyn RsaEncoding {
        match alg {
            Algorithm::RS256 => &RSA_PKCS1_SHA256,
            Algorithm::RS384 => &RSA_PKCS1_SHA384,
            Algorithm::RS512 => &RSA_PKCS1_SHA512,
            Algorithm::PS256 => &RSA_PSS_SHA256,
            Algorithm::PS384 => &RSA_PSS_SHA384,
            Algorithm::PS512 => &RSA_PSS_SHA512,
            other => panic!("not an RSA algorithm: {other:?}"),
        }
    }

    fn rsa_sign(alg: Algorithm, message: &[u8]) -> Vec<u8> {
        let pair = rsa_pair();
        let mut sig = vec![0; pair.public_modulus_len()];
        pair.sign(rsa_encoding(alg), &SystemRandom::new(), message, &mut sig)
            .unwrap();
        sig
    }

    fn ec_pair(alg: &'static EcdsaSigningAlgorithm) -> EcdsaKeyPair {
        EcdsaKeyPair::generate(alg).unwrap()
    }

    fn ec_jwk(pair: &EcdsaKeyPair, crv: &str) -> Value {
        let point = pair.public_key().as_ref();
        let len = (point.len() - 1) / 2;
        json!({"kty": "EC", "crv": crv, "x": b64(&point[1..1 + len]), "y": b64(&point[1 + len..])})
    }

    /// What the verifier does: the key must fit the algorithm, then the signature must verify.
    /// HMAC goes through jsonwebtoken's process-wide provider, which a built verifier installs
    /// (jsonwebtoken cannot pick one by itself when both of its backends are compiled in).
    fn verifies(key: &Key, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        crate::install_crypto_provider();
        key.fits(alg) && key.material.verify(alg, message, &b64(signature))
    }

    fn tampered(signature: &[u8]) -> Vec<u8> {
        let mut s = signature.to_vec();
        let last = s.len() - 1;
        s[last] ^= 0x01;
        s
    }

    fn pem(label: &str, der: &[u8]) -> String {
        let body = STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    #[test]
    fn rsa_pkcs1_and_pss_verify_with_each_hash() {
        let (n, e) = rsa_n_e();
        let key = parse_jwk(&rsa_jwk(&n, &e, None)).unwrap();
        for alg in RSA_ALGS {
            let sig = rsa_sign(alg, MESSAGE);
            assert!(verifies(&key, alg, MESSAGE, &sig), "{alg:?} valid");
            assert!(!verifies(
                &key,
                alg,
                b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTIifQ",
                &sig
            ));
            assert!(
                !verifies(&key, alg, MESSAGE, &tampered(&sig)),
                "{alg:?} tampered"
            );
            for other in RSA_ALGS.into_iter().filter(|a| *a != alg) {
                assert!(
                    !verifies(&key, other, MESSAGE, &sig),
                    "{alg:?} as {other:?}"
                );
            }
            for other in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::HS256] {
                assert!(
                    !key.material.verify(other, MESSAGE, &b64(&sig)),
                    "{alg:?} as {other:?}"
                );
            }
        }
    }

    #[test]
    fn rsa_jwk_alg_limits_the_parsed_key_to_it() {
        let (n, e) = rsa_n_e();
        let key = parse_jwk(&rsa_jwk(&n, &e, Some("PS256"))).unwrap();
        let pss = rsa_sign(Algorithm::PS256, MESSAGE);
        let pkcs1 = rsa_sign(Algorithm::RS256, MESSAGE);
        assert!(verifies(&key, Algorithm::PS256, MESSAGE, &pss));
        assert!(!key.fits(Algorithm::RS256));
        // Even past `fits`, the key was parsed for PS256 only.
        assert!(!key.material.verify(Algorithm::RS256, MESSAGE, &b64(&pkcs1)));
        assert!(parse_jwk(&rsa_jwk(&n, &e, Some("ES256"))).is_err());
        assert!(parse_jwk(&rsa_jwk(&n, &e, Some("HS256"))).is_err());
    }

    #[test]
    fn rsa_short_moduli_refused_and_leading_zeros_ignored() {
        let (n, e) = rsa_n_e();
        // 2047 bits: 256 octets whose top bit is clear.
        let mut short = n.clone();
        short[0] &= 0x7f;
        assert_eq!(
            parse_jwk(&rsa_jwk(&short, &e, None)).unwrap_err(),
            "RSA modulus shorter than 2048 bits"
        );
        // 2040 bits, and 2040 bits padded with a zero octet to 256.
        assert!(parse_jwk(&rsa_jwk(&n[1..], &e, None)).is_err());
        let mut padded = vec![0];
        padded.extend_from_slice(&n[1..]);
        assert!(parse_jwk(&rsa_jwk(&padded, &e, None)).is_err());
        // A real 2048-bit modulus with a leading zero octet (RFC 7518 §6.3.1.1) still works.
        let mut zero_n = vec![0];
        zero_n.extend_from_slice(&n);
        let key = parse_jwk(&rsa_jwk(&zero_n, &e, None)).unwrap();
        let sig = rsa_sign(Algorithm::RS256, MESSAGE);
        assert!(verifies(&key, Algorithm::RS256, MESSAGE, &sig));
        // Longer than 8192 bits.
        let mut huge = vec![0xff; 1025];
        huge[1024] = 0x01;
        assert!(parse_jwk(&rsa_jwk(&huge, &e, None)).is_err());
    }

    #[test]
    fn rsa_exponent_bounds() {
        let (n, e) = rsa_n_e();
        assert_eq!(e, [1, 0, 1]);
        for bad in [
            &[][..],
            &[0],
            &[1],
            &[2],
            &[1, 0, 0],
            &[2, 0, 0, 0, 1],
            &[1, 0, 0, 0, 0, 0, 0, 0, 1],
        ] {
            assert_eq!(
                parse_jwk(&rsa_jwk(&n, bad, None)).unwrap_err(),
                "bad RSA exponent",
                "{bad:?}"
            );
        }
        assert!(parse_jwk(&rsa_jwk(&n, &[3], None)).is_ok());
        assert!(parse_jwk(&rsa_jwk(&n, &[0, 1, 0, 1], None)).is_ok());
    }

    #[test]
    fn rsa_signature_length_must_equal_the_modulus() {
        let (n, e) = rsa_n_e();
        let key = parse_jwk(&rsa_jwk(&n, &e, None)).unwrap();
        let sig = rsa_sign(Algorithm::RS256, MESSAGE);
        let mut longer = vec![0];
        longer.extend_from_slice(&sig);
        assert!(!verifies(&key, Algorithm::RS256, MESSAGE, &longer));
        assert!(!verifies(&key, Algorithm::RS256, MESSAGE, &sig[1..]));
        assert!(!verifies(&key, Algorithm::RS256, MESSAGE, &[]));
    }

    #[test]
    fn ecdsa_verifies_and_curve_is_bound_to_alg() {
        let p256 = ec_pair(&ECDSA_P256_SHA256_FIXED_SIGNING);
        let p384 = ec_pair(&ECDSA_P384_SHA384_FIXED_SIGNING);
        let k256 = parse_jwk(&ec_jwk(&p256, "P-256")).unwrap();
        let k384 = parse_jwk(&ec_jwk(&p384, "P-384")).unwrap();
        let rng = SystemRandom::new();
        let s256 = p256.sign(&rng, MESSAGE).unwrap().as_ref().to_vec();
        let s384 = p384.sign(&rng, MESSAGE).unwrap().as_ref().to_vec();
        assert_eq!((s256.len(), s384.len()), (64, 96));
        assert!(verifies(&k256, Algorithm::ES256, MESSAGE, &s256));
        assert!(verifies(&k384, Algorithm::ES384, MESSAGE, &s384));
        assert!(!verifies(&k256, Algorithm::ES256, b"other", &s256));
        assert!(!verifies(&k384, Algorithm::ES384, b"other", &s384));
        assert!(!verifies(
            &k256,
            Algorithm::ES256,
            MESSAGE,
            &tampered(&s256)
        ));
        assert!(!verifies(
            &k384,
            Algorithm::ES384,
            MESSAGE,
            &tampered(&s384)
        ));
        // Wrong curve for the algorithm, even past `fits`.
        assert!(!k256.fits(Algorithm::ES384) && !k384.fits(Algorithm::ES256));
        assert!(!k256.material.verify(Algorithm::ES384, MESSAGE, &b64(&s384)));
        assert!(!k384.material.verify(Algorithm::ES256, MESSAGE, &b64(&s256)));
        // RFC 7518 §3.4: R || S, not the ASN.1 DER form.
        let asn1 = ec_pair(&ECDSA_P256_SHA256_ASN1_SIGNING);
        let k_asn1 = parse_jwk(&ec_jwk(&asn1, "P-256")).unwrap();
        let der_sig = asn1.sign(&rng, MESSAGE).unwrap().as_ref().to_vec();
        assert!(!verifies(&k_asn1, Algorithm::ES256, MESSAGE, &der_sig));
        // A JWK whose alg names the other curve, or a P-384 point labelled P-256.
        let mut wrong_alg = ec_jwk(&p256, "P-256");
        wrong_alg["alg"] = json!("ES384");
        assert!(parse_jwk(&wrong_alg).is_err());
        let mut relabelled = ec_jwk(&p384, "P-384");
        relabelled["crv"] = json!("P-256");
        assert!(parse_jwk(&relabelled).is_err());
    }

    #[test]
    fn ec_points_off_the_curve_are_refused_at_load() {
        let p256 = ec_pair(&ECDSA_P256_SHA256_FIXED_SIGNING);
        let mut jwk = ec_jwk(&p256, "P-256");
        let mut y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
        y[31] ^= 0x01;
        jwk["y"] = json!(b64(&y));
        assert_eq!(parse_jwk(&jwk).unwrap_err(), "EC point is not on its curve");
        let zero = json!({"kty": "EC", "crv": "P-384", "x": b64(&[0; 48]), "y": b64(&[0; 48])});
        assert!(parse_jwk(&zero).is_err());
        assert!(ec_key(KeyKind::EcP256, &[0x02; 65]).is_err());
    }

    #[test]
    fn eddsa_verifies_and_refuses_tampering() {
        let pair = Ed25519KeyPair::generate().unwrap();
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())});
        let key = parse_jwk(&jwk).unwrap();
        let sig = pair.sign(MESSAGE).as_ref().to_vec();
        assert!(verifies(&key, Algorithm::EdDSA, MESSAGE, &sig));
        assert!(!verifies(&key, Algorithm::EdDSA, b"other", &sig));
        assert!(!verifies(&key, Algorithm::EdDSA, MESSAGE, &tampered(&sig)));
        assert!(!verifies(&key, Algorithm::EdDSA, MESSAGE, &sig[..63]));
        assert!(!key.material.verify(Algorithm::ES256, MESSAGE, &b64(&sig)));
        let short = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&[9; 31])});
        assert!(parse_jwk(&short).is_err());
    }

    #[test]
    fn hmac_verifies_only_its_own_algorithm() {
        let secret = b"a-configured-secret-of-32-bytes!";
        let key = Key::hmac(secret, None);
        for (alg, tag_alg, other) in [
            (
                Algorithm::HS256,
                aws_lc::hmac::HMAC_SHA256,
                Algorithm::HS384,
            ),
            (
                Algorithm::HS384,
                aws_lc::hmac::HMAC_SHA384,
                Algorithm::HS512,
            ),
            (
                Algorithm::HS512,
                aws_lc::hmac::HMAC_SHA512,
                Algorithm::HS256,
            ),
        ] {
            let tag = aws_lc::hmac::sign(&aws_lc::hmac::Key::new(tag_alg, secret), MESSAGE);
            assert!(verifies(&key, alg, MESSAGE, tag.as_ref()), "{alg:?}");
            assert!(!verifies(&key, alg, b"other", tag.as_ref()));
            assert!(!verifies(&key, alg, MESSAGE, &tampered(tag.as_ref())));
            assert!(!verifies(&key, other, MESSAGE, tag.as_ref()));
            assert!(
                !key.material
                    .verify(Algorithm::RS256, MESSAGE, &b64(tag.as_ref()))
            );
        }
        // A public key never verifies an HMAC algorithm.
        let (n, e) = rsa_n_e();
        let rsa = parse_jwk(&rsa_jwk(&n, &e, None)).unwrap();
        let tag = aws_lc::hmac::sign(
            &aws_lc::hmac::Key::new(aws_lc::hmac::HMAC_SHA256, &n),
            MESSAGE,
        );
        assert!(
            !rsa.material
                .verify(Algorithm::HS256, MESSAGE, &b64(tag.as_ref()))
        );
    }

    #[test]
    fn signature_base64url_is_strict() {
        let pair = Ed25519KeyPair::generate().unwrap();
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())});
        let key = parse_jwk(&jwk).unwrap();
        let sig = pair.sign(MESSAGE).as_ref().to_vec();
        let text = b64(&sig);
        assert!(key.material.verify(Algorithm::EdDSA, MESSAGE, &text));
        // Padding (RFC 7515 §2 omits it).
        assert!(
            !key.material
                .verify(Algorithm::EdDSA, MESSAGE, &format!("{text}=="))
        );
        // The same octets in the standard alphabet: sign messages until the base64url text holds
        // a `-` or `_` (each of the 86 symbols does with probability 1/32).
        let (message, signature) = (0u32..)
            .map(|i| {
                let m = format!("{}.{i}", std::str::from_utf8(MESSAGE).unwrap());
                let s = pair.sign(m.as_bytes()).as_ref().to_vec();
                (m, s)
            })
            .find(|(_, s)| b64(s).contains(['-', '_']))
            .unwrap();
        let standard = STANDARD.encode(&signature);
        let standard = standard.trim_end_matches('=');
        assert!(
            key.material
                .verify(Algorithm::EdDSA, message.as_bytes(), &b64(&signature))
        );
        assert!(
            !key.material
                .verify(Algorithm::EdDSA, message.as_bytes(), standard)
        );
        // Stray low bits in the last symbol.
        let last = text.chars().last().unwrap();
        let position = base64_alphabet().find(last).unwrap();
        // 64 octets leave the last symbol 2 data bits and 4 unused ones (RFC 4648 §3.5: zero).
        let stray = base64_alphabet().chars().nth(position ^ 0x01).unwrap();
        let stray_text = format!("{}{stray}", &text[..text.len() - 1]);
        assert!(!key.material.verify(Algorithm::EdDSA, MESSAGE, &stray_text));
        // Whitespace, an empty segment, and an oversized one.
        let spaced = format!("{} {}", &text[..40], &text[40..]);
        assert!(!key.material.verify(Algorithm::EdDSA, MESSAGE, &spaced));
        assert!(!key.material.verify(Algorithm::EdDSA, MESSAGE, ""));
        assert!(
            !key.material
                .verify(Algorithm::EdDSA, MESSAGE, &"A".repeat(MAX_SIG_B64 + 4))
        );
    }

    fn base64_alphabet() -> &'static str {
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    }

    #[test]
    fn pem_keys_of_each_type_parse_once_and_verify() {
        let rng = SystemRandom::new();
        let rsa = rsa_pair();
        let rsa_sig = rsa_sign(Algorithm::PS384, MESSAGE);
        let spki = rsa.public_key().as_der().unwrap();
        let pkcs1 = rsa.public_key().as_ref().to_vec();
        for text in [
            pem("PUBLIC KEY", spki.as_ref()),
            pem("RSA PUBLIC KEY", &pkcs1),
        ] {
            let keys = parse_static(&text).unwrap();
            assert_eq!(keys[0].kind, KeyKind::Rsa);
            assert!(verifies(&keys[0], Algorithm::PS384, MESSAGE, &rsa_sig));
            assert!(!verifies(
                &keys[0],
                Algorithm::PS384,
                MESSAGE,
                &tampered(&rsa_sig)
            ));
        }
        for (signing, kind, alg) in [
            (
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                KeyKind::EcP256,
                Algorithm::ES256,
            ),
            (
                &ECDSA_P384_SHA384_FIXED_SIGNING,
                KeyKind::EcP384,
                Algorithm::ES384,
            ),
        ] {
            let pair = ec_pair(signing);
            let der = pair.public_key().as_der().unwrap();
            let keys = parse_static(&pem("PUBLIC KEY", der.as_ref())).unwrap();
            assert_eq!(keys[0].kind, kind);
            let sig = pair.sign(&rng, MESSAGE).unwrap().as_ref().to_vec();
            assert!(verifies(&keys[0], alg, MESSAGE, &sig));
            assert!(!verifies(&keys[0], alg, MESSAGE, &tampered(&sig)));
        }
        let ed = Ed25519KeyPair::generate().unwrap();
        let der = ed.public_key().as_der().unwrap();
        // As an environment variable carries it: literal `\n`.
        let text = pem("PUBLIC KEY", der.as_ref()).replace('\n', "\\n");
        let keys = parse_static(&text).unwrap();
        assert_eq!(keys[0].kind, KeyKind::Ed25519);
        let sig = ed.sign(MESSAGE).as_ref().to_vec();
        assert!(verifies(&keys[0], Algorithm::EdDSA, MESSAGE, &sig));
        assert!(!verifies(&keys[0], Algorithm::RS256, MESSAGE, &sig));
    }

    /// DER encoding of `RSAPublicKey` from raw INTEGER contents.
    fn rsa_der(n: &[u8], e: &[u8]) -> Vec<u8> {
        fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            match contents.len() {
                len @ 0..=0x7f => out.push(len as u8),
                len @ 0x80..=0xff => out.extend([0x81, len as u8]),
                len => out.extend([0x82, (len >> 8) as u8, len as u8]),
            }
            out.extend_from_slice(contents);
            out
        }
        let mut body = tlv(0x02, n);
        body.extend(tlv(0x02, e));
        tlv(0x30, &body)
    }

    #[test]
    fn rsa_pem_short_modulus_and_bad_der_are_refused() {
        let (n, e) = rsa_n_e();
        let mut signed_n = vec![0];
        signed_n.extend_from_slice(&n);
        let good = rsa_der(&signed_n, &e);
        assert_eq!(rsa_public_key_der(&good), Some((&n[..], &e[..])));
        assert!(parse_static(&pem("RSA PUBLIC KEY", &good)).is_ok());
        // A 1024-bit key from a PEM file is refused like one from a JWKS.
        let mut short = vec![0];
        short.extend_from_slice(&n[..128]);
        let err = parse_static(&pem("RSA PUBLIC KEY", &rsa_der(&short, &e))).unwrap_err();
        assert_eq!(err, "RSA modulus shorter than 2048 bits");
        // Trailing data, a missing sign octet (negative), a non-minimal integer, truncation.
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(rsa_public_key_der(&trailing), None);
        assert_eq!(rsa_public_key_der(&rsa_der(&n, &e)), None);
        assert_eq!(rsa_public_key_der(&rsa_der(&signed_n, &[0, 1, 0, 1])), None);
        assert_eq!(rsa_public_key_der(&good[..good.len() - 1]), None);
        assert_eq!(rsa_public_key_der(&rsa_der(&signed_n, &[])), None);
        // Length octets in long form for a short length.
        let mut long_form = vec![0x30, 0x81, 0x06];
        long_form.extend([0x02, 0x01, 0x03, 0x02, 0x01, 0x03]);
        assert_eq!(rsa_public_key_der(&long_form), None);
        assert_eq!(rsa_public_key_der(&long_form[3..]), None);
    }
}
