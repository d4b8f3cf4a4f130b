//! A development issuer: per-process key pairs (RS256, ES256, EdDSA) that mint access tokens and
//! serve their JWKS. For examples, tests and local development only: it is a feature (`dev`)
//! that is off by default, and nothing here is meant to face real clients.
//!
//! Keys are generated once per process (every [`DevIssuer::generate`] shares them; use
//! [`DevIssuer::generate_fresh`] for a new set, e.g. to simulate rotation). Key generation and
//! signing use aws-lc-rs whichever verification backend is selected.
//!
//! ```
//! use std::time::Duration;
//! use mcp_auth_jwt::dev::{DevAlg, DevIssuer, TokenSpec};
//! use mcp_auth_jwt::TokenVerifier;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let issuer = DevIssuer::generate("http://127.0.0.1:8000");
//! let token = issuer.mint(
//!     TokenSpec::new("alice")
//!         .scopes(["todo:read"])
//!         .audience("http://127.0.0.1:8000/mcp")
//!         .ttl(Duration::from_secs(300))
//!         .alg(DevAlg::ES256),
//! );
//! let verifier = issuer
//!     .verifier_builder()
//!     .audience("http://127.0.0.1:8000/mcp")
//!     .build()
//!     .unwrap();
//! let access = verifier.verify(&token).await.unwrap();
//! assert_eq!(access.subject(), Some("alice"));
//! assert!(access.has_scope("todo:read"));
//! # });
//! ```

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_lc::rand::SystemRandom;
use aws_lc::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair, RsaPublicKeyComponents,
};
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value, json};

use crate::JwtVerifierBuilder;
use crate::cache::now_unix;

/// The algorithms the development issuer signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DevAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (2048-bit key).
    #[default]
    RS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

impl DevAlg {
    /// All three.
    pub const ALL: [DevAlg; 3] = [DevAlg::RS256, DevAlg::ES256, DevAlg::EdDSA];

    /// The matching jsonwebtoken algorithm.
    pub fn algorithm(self) -> Algorithm {
        match self {
            DevAlg::RS256 => Algorithm::RS256,
            DevAlg::ES256 => Algorithm::ES256,
            DevAlg::EdDSA => Algorithm::EdDSA,
        }
    }

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            DevAlg::RS256 => "RS256",
            DevAlg::ES256 => "ES256",
            DevAlg::EdDSA => "EdDSA",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

struct DevKeys {
    rsa: RsaKeyPair,
    ec: EcdsaKeyPair,
    ed: Ed25519KeyPair,
    kids: [String; 3],
    jwks: Value,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl DevKeys {
    fn generate() -> DevKeys {
        let rsa =
            RsaKeyPair::generate(aws_lc::rsa::KeySize::Rsa2048).expect("RSA key generation failed");
        let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .expect("P-256 key generation failed");
        let ed = Ed25519KeyPair::generate().expect("Ed25519 key generation failed");
        let rsa_pub = RsaPublicKeyComponents::<Vec<u8>>::from(rsa.public_key());
        let point = ec.public_key().as_ref();
        let ed_pub = ed.public_key().as_ref();
        let kid = |tag: &str, material: &[u8]| {
            let h = blake3::hash(material).to_hex();
            format!("dev-{tag}-{}", &h[..12])
        };
        let mut rsa_material = rsa_pub.n.clone();
        rsa_material.extend_from_slice(&rsa_pub.e);
        let kids = [
            kid("rs256", &rsa_material),
            kid("es256", point),
            kid("eddsa", ed_pub),
        ];
        let jwks = json!({"keys": [
            {"kty": "RSA", "kid": kids[0], "use": "sig", "alg": "RS256",
             "n": b64(&rsa_pub.n), "e": b64(&rsa_pub.e)},
            {"kty": "EC", "kid": kids[1], "use": "sig", "alg": "ES256", "crv": "P-256",
             "x": b64(&point[1..33]), "y": b64(&point[33..65])},
            {"kty": "OKP", "kid": kids[2], "use": "sig", "alg": "EdDSA", "crv": "Ed25519",
             "x": b64(ed_pub)},
        ]});
        DevKeys {
            rsa,
            ec,
            ed,
            kids,
            jwks,
        }
    }

    fn sign(&self, alg: DevAlg, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match alg {
            DevAlg::RS256 => {
                let mut sig = vec![0; self.rsa.public_modulus_len()];
                self.rsa
                    .sign(&RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .expect("RSA signing failed");
                sig
            }
            DevAlg::ES256 => self
                .ec
                .sign(&rng, message)
                .expect("ECDSA signing failed")
                .as_ref()
                .to_vec(),
            DevAlg::EdDSA => self.ed.sign(message).as_ref().to_vec(),
        }
    }
}

static PROCESS_KEYS: OnceLock<Arc<DevKeys>> = OnceLock::new();

/// A development token issuer: an issuer URL plus the process's development keys.
/// Clone it freely.
#[derive(Clone)]
pub struct DevIssuer {
    issuer: String,
    keys: Arc<DevKeys>,
}

impl std::fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIssuer")
            .field("issuer", &self.issuer)
            .field("kids", &self.keys.kids)
            .finish()
    }
}

/// What to put into a minted token. Defaults: RS256, one hour, `typ: at+jwt`, the issuer's URL
/// as `iss`, the key's `kid`, `iat` = now, a fresh `jti`.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    subject: Option<String>,
    scopes: Vec<String>,
    audiences: Vec<String>,
    issuer: Option<String>,
    client_id: Option<String>,
    ttl: Duration,
    expires_at: Option<u64>,
    not_before: Option<u64>,
    issued_at: Option<u64>,
    alg: DevAlg,
    typ: Option<String>,
    kid: Option<Option<String>>,
    claims: Map<String, Value>,
    header: Map<String, Value>,
}

impl TokenSpec {
    /// A token for `subject` (`sub`).
    pub fn new(subject: impl Into<String>) -> Self {
        TokenSpec {
            subject: Some(subject.into()),
            scopes: Vec::new(),
            audiences: Vec::new(),
            issuer: None,
            client_id: None,
            ttl: Duration::from_secs(3600),
            expires_at: None,
            not_before: None,
            issued_at: None,
            alg: DevAlg::RS256,
            typ: Some("at+jwt".to_owned()),
            kid: None,
            claims: Map::new(),
            header: Map::new(),
        }
    }

    /// No `sub` claim (machine tokens of some IdPs).
    pub fn without_subject(mut self) -> Self {
        self.subject = None;
        self
    }

    /// The granted scopes (`scope`, space-separated).
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// One audience (`aud` as a string).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences = vec![audience.into()];
        self
    }

    /// Several audiences (`aud` as an array).
    pub fn audiences<I, S>(mut self, audiences: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.audiences = audiences.into_iter().map(Into::into).collect();
        self
    }

    /// Overrides `iss` (default: the issuer's URL).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Sets `client_id`.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Lifetime from now (`exp` = now + ttl).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Absolute `exp` (seconds since the epoch), e.g. in the past for expired tokens.
    pub fn expires_at_unix(mut self, exp: u64) -> Self {
        self.expires_at = Some(exp);
        self
    }

    /// Sets `nbf`.
    pub fn not_before_unix(mut self, nbf: u64) -> Self {
        self.not_before = Some(nbf);
        self
    }

    /// Overrides `iat`.
    pub fn issued_at_unix(mut self, iat: u64) -> Self {
        self.issued_at = Some(iat);
        self
    }

    /// The signing algorithm (default RS256).
    pub fn alg(mut self, alg: DevAlg) -> Self {
        self.alg = alg;
        self
    }

    /// The `typ` header (default `at+jwt`; `None` leaves it out).
    pub fn typ(mut self, typ: Option<&str>) -> Self {
        self.typ = typ.map(str::to_owned);
        self
    }

    /// Overrides the `kid` header (`None` leaves it out).
    pub fn kid(mut self, kid: Option<&str>) -> Self {
        self.kid = Some(kid.map(str::to_owned));
        self
    }

    /// Adds (or replaces) a claim; a `Null` value removes a default claim such as `exp`.
    pub fn claim(mut self, name: impl Into<String>, value: Value) -> Self {
        self.claims.insert(name.into(), value);
        self
    }

    /// Adds a header parameter (e.g. `crit`, `jku` for attack tests).
    pub fn header(mut self, name: impl Into<String>, value: Value) -> Self {
        self.header.insert(name.into(), value);
        self
    }
}

impl DevIssuer {
    /// A development issuer named `issuer` using this process's development keys (generated on
    /// first use).
    pub fn generate(issuer: impl Into<String>) -> DevIssuer {
        let keys = PROCESS_KEYS
            .get_or_init(|| Arc::new(DevKeys::generate()))
            .clone();
        DevIssuer {
            issuer: issuer.into(),
            keys,
        }
    }

    /// A development issuer with brand-new keys (new kids): simulates an IdP rotating its keys.
    pub fn generate_fresh(issuer: impl Into<String>) -> DevIssuer {
        DevIssuer {
            issuer: issuer.into(),
            keys: Arc::new(DevKeys::generate()),
        }
    }

    /// The issuer URL (`iss` of minted tokens).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `kid` of the key for `alg`.
    pub fn kid(&self, alg: DevAlg) -> &str {
        &self.keys.kids[alg.index()]
    }

    /// The public JWKS (`{"keys": [...]}`, one key per algorithm, each with `kid`, `use`, `alg`).
    pub fn jwks_json(&self) -> Value {
        self.keys.jwks.clone()
    }

    /// The public key for `alg` as a bare JWK (its JWKS entry without `kid`, `alg` and `use`):
    /// what a DPoP client puts in a proof's `jwk` header (RFC 9449 §4.2) when this issuer's keys
    /// stand in for a client's.
    ///
    /// ```
    /// use mcp_auth_jwt::dev::{DevAlg, DevIssuer};
    /// let jwk = DevIssuer::generate("https://idp.test").public_jwk(DevAlg::ES256);
    /// assert_eq!(jwk["kty"], "EC");
    /// assert!(jwk.get("kid").is_none() && jwk.get("d").is_none());
    /// ```
    pub fn public_jwk(&self, alg: DevAlg) -> Value {
        let kid = self.kid(alg);
        let mut jwk = self.keys.jwks["keys"]
            .as_array()
            .and_then(|keys| keys.iter().find(|k| k["kid"] == kid))
            .cloned()
            .unwrap_or_default();
        if let Some(members) = jwk.as_object_mut() {
            for m in ["kid", "alg", "use"] {
                members.remove(m);
            }
        }
        jwk
    }

    /// An axum router serving the JWKS at `path` (with `Cache-Control: public, max-age=300`).
    pub fn jwks_router(&self, path: &str) -> Router {
        let body = self.keys.jwks.to_string();
        Router::new().route(
            path,
            get(move || {
                let body = body.clone();
                async move {
                    (
                        [
                            (header::CONTENT_TYPE, "application/json"),
                            (header::CACHE_CONTROL, "public, max-age=300"),
                        ],
                        body,
                    )
                        .into_response()
                }
            }),
        )
    }

    /// A verifier builder that trusts these keys statically (no HTTP), with this issuer and the
    /// three algorithms allowed. Add an audience and build.
    pub fn verifier_builder(&self) -> JwtVerifierBuilder {
        crate::JwtVerifier::builder()
            .public_key(&self.keys.jwks.to_string())
            .issuer(self.issuer.clone())
            .algorithms(DevAlg::ALL.map(DevAlg::algorithm))
    }

    /// Mints a signed access token.
    pub fn mint(&self, spec: TokenSpec) -> String {
        let now = now_unix();
        let mut header = Map::new();
        header.insert("alg".into(), spec.alg.name().into());
        if let Some(t) = &spec.typ {
            header.insert("typ".into(), t.clone().into());
        }
        match &spec.kid {
            None => {
                header.insert("kid".into(), self.kid(spec.alg).into());
            }
            Some(Some(k)) => {
                header.insert("kid".into(), k.clone().into());
            }
            Some(None) => {}
        }
        for (k, v) in spec.header {
            header.insert(k, v);
        }
        let mut claims = Map::new();
        claims.insert(
            "iss".into(),
            spec.issuer.unwrap_or_else(|| self.issuer.clone()).into(),
        );
        if let Some(s) = spec.subject {
            claims.insert("sub".into(), s.into());
        }
        match spec.audiences.len() {
            0 => {}
            1 => {
                claims.insert("aud".into(), spec.audiences[0].clone().into());
            }
            _ => {
                claims.insert("aud".into(), spec.audiences.into());
            }
        }
        let exp = spec
            .expires_at
            .unwrap_or_else(|| now.saturating_add(spec.ttl.as_secs()));
        claims.insert("exp".into(), exp.into());
        claims.insert("iat".into(), spec.issued_at.unwrap_or(now).into());
        if let Some(nbf) = spec.not_before {
            claims.insert("nbf".into(), nbf.into());
        }
        if !spec.scopes.is_empty() {
            claims.insert("scope".into(), spec.scopes.join(" ").into());
        }
        if let Some(c) = spec.client_id {
            claims.insert("client_id".into(), c.into());
        }
        let mut jti = [0u8; 16];
        aws_lc::rand::fill(&mut jti).expect("random jti");
        claims.insert("jti".into(), b64(&jti).into());
        for (k, v) in spec.claims {
            if v.is_null() {
                claims.remove(&k);
            } else {
                claims.insert(k, v);
            }
        }
        let header = Value::Object(header).to_string();
        let payload = Value::Object(claims).to_string();
        self.sign_raw(spec.alg, &header, payload.as_bytes())
    }

    /// Signs an arbitrary header (JSON text, used as given) and payload (bytes, used as given):
    /// for tests that need malformed or unusual tokens with a valid signature.
    pub fn sign_raw(&self, alg: DevAlg, header_json: &str, payload: &[u8]) -> String {
        let mut message = b64(header_json.as_bytes());
        message.push('.');
        message.push_str(&b64(payload));
        let sig = self.keys.sign(alg, message.as_bytes());
        message.push('.');
        message.push_str(&b64(&sig));
        message
    }
}
