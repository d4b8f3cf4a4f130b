//! Verification keys: parsing JWKs and PEM files into keys that know which algorithms they fit.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};
use serde_json::Value;

use crate::crypto::{KeyMaterial, ec_key, ed25519_key, rsa_key, rsa_public_key_der};

/// The cryptographic kind of a key (type plus curve).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
    Hmac,
}

/// Whether a key of `kind` can verify `alg` (type and curve must fit).
pub(crate) fn kind_fits(kind: KeyKind, alg: Algorithm) -> bool {
    use Algorithm::*;
    match alg {
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => kind == KeyKind::Rsa,
        ES256 => kind == KeyKind::EcP256,
        ES384 => kind == KeyKind::EcP384,
        EdDSA => kind == KeyKind::Ed25519,
        HS256 | HS384 | HS512 => kind == KeyKind::Hmac,
        _ => false,
    }
}

/// Whether `alg` is an HMAC algorithm.
pub(crate) fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// Parses an algorithm name as it appears in a JOSE header or a configuration list. `none` and
/// unknown names give `None`.
pub(crate) fn parse_alg(name: &str) -> Option<Algorithm> {
    use Algorithm::*;
    Some(match name {
        "RS256" => RS256,
        "RS384" => RS384,
        "RS512" => RS512,
        "PS256" => PS256,
        "PS384" => PS384,
        "PS512" => PS512,
        "ES256" => ES256,
        "ES384" => ES384,
        "EdDSA" => EdDSA,
        "HS256" => HS256,
        "HS384" => HS384,
        "HS512" => HS512,
        _ => return None,
    })
}

/// One verification key.
pub(crate) struct Key {
    pub(crate) kid: Option<String>,
    pub(crate) kind: KeyKind,
    /// The JWK's own `alg`, when it names one: the token's `alg` must equal it.
    pub(crate) alg: Option<Algorithm>,
    /// The key as the crypto backend uses it, parsed once when the key was loaded.
    pub(crate) material: KeyMaterial,
    /// Identity of the key material (and kid, alg): verified-token cache entries refer to it.
    pub(crate) fingerprint: [u8; 32],
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// Whether this key may verify a token signed with `alg`.
    pub(crate) fn fits(&self, alg: Algorithm) -> bool {
        kind_fits(self.kind, alg) && self.alg.is_none_or(|a| a == alg)
    }

    pub(crate) fn hmac(secret: &[u8], kid: Option<String>) -> Key {
        let mut h = blake3::Hasher::new();
        h.update(b"oct\0");
        h.update(secret);
        Key {
            kid,
            kind: KeyKind::Hmac,
            alg: None,
            material: KeyMaterial::Hmac(DecodingKey::from_secret(secret)),
            fingerprint: *h.finalize().as_bytes(),
        }
    }
}

fn b64(value: Option<&Value>) -> Result<Vec<u8>, &'static str> {
    let s = value
        .and_then(Value::as_str)
        .ok_or("missing key parameter")?;
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| "key parameter is not base64url")
}

fn fingerprint(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    *h.finalize().as_bytes()
}

/// Parses one JWK from a (fetched or configured) JWKS. Unusable keys give the reason to skip them.
/// Symmetric (`oct`) keys are always refused: a published HMAC secret is no secret.
pub(crate) fn parse_jwk(jwk: &Value) -> Result<Key, &'static str> {
    let obj = jwk.as_object().ok_or("not a JSON object")?;
    let kty = obj
        .get("kty")
        .and_then(Value::as_str)
        .ok_or("missing kty")?;
    if let Some(u) = obj.get("use")
        && u.as_str() != Some("sig")
    {
        return Err("use is not sig");
    }
    if let Some(ops) = obj.get("key_ops") {
        let ops = ops.as_array().ok_or("key_ops is not an array")?;
        if !ops.iter().any(|o| o.as_str() == Some("verify")) {
            return Err("key_ops does not allow verify");
        }
    }
    let kid = match obj.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("kid is not a string"),
    };
    let alg = match obj.get("alg") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(parse_alg(s).ok_or("unsupported alg")?),
        Some(_) => return Err("alg is not a string"),
    };
    let alg_name = alg.map(|a| format!("{a:?}")).unwrap_or_default();
    let kid_bytes = kid.as_deref().unwrap_or("").as_bytes();
    let (kind, material, fp) = match kty {
        "RSA" => {
            let n = b64(obj.get("n"))?;
            let e = b64(obj.get("e"))?;
            let fp = fingerprint(&[b"RSA", &n, &e, kid_bytes, alg_name.as_bytes()]);
            (KeyKind::Rsa, rsa_key(&n, &e, alg)?, fp)
        }
        "EC" => {
            let (kind, len) = match obj.get("crv").and_then(Value::as_str) {
                Some("P-256") => (KeyKind::EcP256, 32),
                Some("P-384") => (KeyKind::EcP384, 48),
                _ => return Err("unsupported EC curve"),
            };
            let x = b64(obj.get("x"))?;
            let y = b64(obj.get("y"))?;
            if x.len() != len || y.len() != len {
                return Err("EC coordinates have the wrong length");
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let fp = fingerprint(&[b"EC", &point, kid_bytes, alg_name.as_bytes()]);
            (kind, ec_key(kind, &point)?, fp)
        }
        "OKP" => {
            if obj.get("crv").and_then(Value::as_str) != Some("Ed25519") {
                return Err("unsupported OKP curve");
            }
            let x = b64(obj.get("x"))?;
            if x.len() != 32 {
                return Err("Ed25519 key has the wrong length");
            }
            let fp = fingerprint(&[b"OKP", &x, kid_bytes, alg_name.as_bytes()]);
            (KeyKind::Ed25519, ed25519_key(&x)?, fp)
        }
        "oct" => return Err("symmetric keys from a key set are never used"),
        _ => return Err("unsupported kty"),
    };
    if let Some(a) = alg
        && !kind_fits(kind, a)
    {
        return Err("alg does not fit the key type");
    }
    Ok(Key {
        kid,
        kind,
        alg,
        material,
        fingerprint: fp,
    })
}

/// A key left out of a set: its kid (if any) and why.
pub(crate) type Skipped = (Option<String>, &'static str);

/// Parses a JWKS document (`{"keys": [...]}`), skipping unusable keys. Returns the usable keys
/// and the skipped ones with their reasons (for logs).
pub(crate) fn parse_jwks(doc: &Value) -> Result<(Vec<Key>, Vec<Skipped>), &'static str> {
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("not a JWKS (no keys array)")?;
    let mut ok = Vec::new();
    let mut skipped = Vec::new();
    for k in keys {
        match parse_jwk(k) {
            Ok(key) => ok.push(key),
            Err(reason) => skipped.push((
                k.get("kid").and_then(Value::as_str).map(str::to_owned),
                reason,
            )),
        }
    }
    Ok((ok, skipped))
}

/// Parses a configured public key: PEM (`-----BEGIN PUBLIC KEY-----`, RSA, EC or Ed25519), a
/// single JWK, or a JWKS. Literal `\n` sequences (common in environment variables) are accepted.
pub(crate) fn parse_static(text: &str) -> Result<Vec<Key>, String> {
    let text = text.trim();
    if text.contains("-----BEGIN") {
        let pem = text.replace("\\n", "\n");
        return parse_pem(pem.as_bytes()).map(|k| vec![k]);
    }
    let doc: Value =
        serde_json::from_str(text).map_err(|_| "neither a PEM public key nor JSON".to_owned())?;
    if doc.get("keys").is_some() {
        let (keys, skipped) = parse_jwks(&doc).map_err(str::to_owned)?;
        if let Some((kid, reason)) = skipped.first() {
            return Err(format!("key {kid:?} is unusable: {reason}"));
        }
        if keys.is_empty() {
            return Err("the key set is empty".to_owned());
        }
        Ok(keys)
    } else {
        parse_jwk(&doc).map(|k| vec![k]).map_err(str::to_owned)
    }
}

/// The contents jsonwebtoken read from a PEM key: an RSAPublicKey (RFC 8017 §A.1.1), an
/// uncompressed EC point or the raw Ed25519 key, the bit string of the SubjectPublicKeyInfo.
fn der(key: &DecodingKey) -> &[u8] {
    match key.kind() {
        DecodingKeyKind::SecretOrDer(bytes) => bytes,
        DecodingKeyKind::RsaModulusExponent { .. } => &[],
    }
}

fn parse_pem(pem: &[u8]) -> Result<Key, String> {
    if pem.windows(7).any(|w| w == b"PRIVATE") {
        return Err("a private key was given where a public key is expected".to_owned());
    }
    let fp = fingerprint(&[b"PEM", pem]);
    let key = |kind, material| Key {
        kid: None,
        kind,
        alg: None,
        material,
        fingerprint: fp,
    };
    if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
        let (n, e) = rsa_public_key_der(der(&k))
            .ok_or_else(|| "the RSA public key is not a DER RSAPublicKey".to_owned())?;
        let material = rsa_key(n, e, None).map_err(str::to_owned)?;
        return Ok(key(KeyKind::Rsa, material));
    }
    if let Ok(k) = DecodingKey::from_ec_pem(pem) {
        let point = der(&k);
        let kind = match point.len() {
            65 => KeyKind::EcP256,
            97 => KeyKind::EcP384,
            _ => return Err("unsupported EC curve".to_owned()),
        };
        let material = ec_key(kind, point).map_err(str::to_owned)?;
        return Ok(key(kind, material));
    }
    if let Ok(k) = DecodingKey::from_ed_pem(pem) {
        let material = ed25519_key(der(&k)).map_err(str::to_owned)?;
        return Ok(key(KeyKind::Ed25519, material));
    }
    Err("not an RSA, EC (P-256/P-384) or Ed25519 public key in PEM form".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn oct_and_enc_keys_are_skipped() {
        let doc = json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "h"},
            {"kty": "EC", "crv": "P-256", "use": "enc", "x": "", "y": ""},
            {"kty": "XYZ"},
        ]});
        let (keys, skipped) = parse_jwks(&doc).unwrap();
        assert!(keys.is_empty());
        assert_eq!(skipped.len(), 3);
    }

    #[test]
    fn fits_checks_type_curve_and_alg() {
        // The Ed25519 base point (RFC 8032 §5.1): a valid key, as every backend now checks.
        let mut point = [0x66u8; 32];
        point[0] = 0x58;
        let x = URL_SAFE_NO_PAD.encode(point);
        let k =
            parse_jwk(&json!({"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "EdDSA"})).unwrap();
        assert!(k.fits(Algorithm::EdDSA));
        assert!(!k.fits(Algorithm::ES256));
        assert!(!k.fits(Algorithm::HS256));
        assert!(
            parse_jwk(&json!({"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "RS256"})).is_err()
        );
    }
}
