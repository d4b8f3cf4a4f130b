//! A DPoP client key (ES256, aws-lc-rs) that signs proofs (RFC 9449 §4) the way a client does,
//! and breaks them one rule at a time for the tests.

use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// An ES256 key pair with its public JWK and RFC 7638 thumbprint.
pub struct DpopKey {
    pair: EcdsaKeyPair,
    jwk: Value,
    d: String,
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// base64url SHA-256 of the access token (`ath`).
pub fn ath(token: &str) -> String {
    b64(&Sha256::digest(token.as_bytes()))
}

/// A fresh `jti`.
pub fn jti() -> String {
    format!("jti-{}-{}", now(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

impl DpopKey {
    pub fn generate() -> DpopKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let point = pair.public_key().as_ref().to_vec();
        let jwk =
            json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65])});
        let d = b64(pair.private_key().as_be_bytes().unwrap().as_ref());
        DpopKey { pair, jwk, d }
    }

    /// The public JWK.
    pub fn jwk(&self) -> Value {
        self.jwk.clone()
    }

    /// The JWK with its private member `d` (what a careless client might send).
    pub fn private_jwk(&self) -> Value {
        let mut j = self.jwk.clone();
        j["d"] = json!(self.d);
        j
    }

    /// RFC 7638 thumbprint (`cnf.jkt`).
    pub fn thumbprint(&self) -> String {
        let canon = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            self.jwk["x"].as_str().unwrap(),
            self.jwk["y"].as_str().unwrap()
        );
        b64(&Sha256::digest(canon.as_bytes()))
    }

    /// The standard header: `typ` dpop+jwt, ES256, the public JWK.
    pub fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk})
    }

    /// The standard claims for `method` `url` (and `ath` of `token` when given).
    pub fn claims(&self, method: &str, url: &str, token: Option<&str>) -> Value {
        let mut c = json!({"jti": jti(), "htm": method, "htu": url, "iat": now()});
        if let Some(t) = token {
            c["ath"] = json!(ath(t));
        }
        c
    }

    /// Signs any header and claims with this key (ES256).
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", b64(sig.as_ref()))
    }

    /// A valid proof.
    pub fn proof(&self, method: &str, url: &str, token: Option<&str>) -> String {
        self.sign(&self.header(), &self.claims(method, url, token))
    }
}
