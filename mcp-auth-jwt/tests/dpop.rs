//! DPoP proofs through the bearer layer with `DpopKeys` on this crate's crypto backend (the test
//! script runs this file on aws-lc-rs and on RustCrypto): every development key type, and ES384
//! and PS256 keys, sign proofs that pass; an algorithm off the configured list is refused; and
//! the situations no real server produces on demand (a replay store full of live entries or
//! failing, DPoP switched off) get their exact answers. The real IdP and the todo binary are in
//! `examples/tests/dpop.rs`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Request, StatusCode};
use mcp_auth_core::dpop::{DpopMode, ReplayCache, ReplayUnavailable, jwk_thumbprint};
use mcp_auth_core::{AuthProvider, RemoteAuthProvider, RemoteAuthProviderBuilder};
use mcp_auth_jwt::DpopKeys;
use mcp_auth_jwt::dev::{DevAlg, DevIssuer, TokenSpec};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

const R: &str = "https://mcp.example.com/mcp";
const ISS: &str = "https://idp.example.com";
const META: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A client key: one of a fresh development issuer's keys, used as a DPoP key.
struct Client {
    keys: DevIssuer,
    alg: DevAlg,
    jwk: Value,
}

impl Client {
    fn new(alg: DevAlg) -> Client {
        let keys = DevIssuer::generate_fresh("client");
        let jwk = keys.public_jwk(alg);
        Client { keys, alg, jwk }
    }

    fn jkt(&self) -> String {
        URL_SAFE_NO_PAD.encode(jwk_thumbprint(self.jwk.as_object().unwrap()).unwrap())
    }

    fn proof(&self, token: &str, jti: &str) -> String {
        let header = json!({"typ": "dpop+jwt", "alg": self.alg.name(), "jwk": self.jwk});
        let claims = json!({"jti": jti, "htm": "POST", "htu": R, "iat": now(),
            "ath": URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))});
        self.keys
            .sign_raw(self.alg, &header.to_string(), claims.to_string().as_bytes())
    }
}

/// A client key of a type the development issuer has none of (ES384 on P-384, PS256 on a
/// 2048-bit RSA key), signing with aws-lc-rs whichever backend verifies.
struct ProofKey {
    alg: &'static str,
    signer: Signer,
    jwk: Value,
}

enum Signer {
    Ec(aws_lc::signature::EcdsaKeyPair),
    Pss(aws_lc::signature::RsaKeyPair),
}

impl ProofKey {
    fn es384() -> ProofKey {
        use aws_lc::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let pair = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
        let point = pair.public_key().as_ref().to_vec();
        assert_eq!(point.len(), 97);
        let jwk = json!({"kty": "EC", "crv": "P-384",
            "x": URL_SAFE_NO_PAD.encode(&point[1..49]), "y": URL_SAFE_NO_PAD.encode(&point[49..])});
        ProofKey {
            alg: "ES384",
            signer: Signer::Ec(pair),
            jwk,
        }
    }

    fn ps256() -> ProofKey {
        use aws_lc::rsa::KeySize;
        use aws_lc::signature::{KeyPair, RsaKeyPair, RsaPublicKeyComponents};
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let public = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let jwk = json!({"kty": "RSA",
            "n": URL_SAFE_NO_PAD.encode(&public.n), "e": URL_SAFE_NO_PAD.encode(&public.e)});
        ProofKey {
            alg: "PS256",
            signer: Signer::Pss(pair),
            jwk,
        }
    }

    fn jkt(&self) -> String {
        URL_SAFE_NO_PAD.encode(jwk_thumbprint(self.jwk.as_object().unwrap()).unwrap())
    }

    /// Signs `header` and `claims` with this key's own algorithm, whatever `header` says.
    fn sign(&self, header: &Value, claims: &Value) -> String {
        let rng = aws_lc::rand::SystemRandom::new();
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = match &self.signer {
            Signer::Ec(pair) => pair.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
            Signer::Pss(pair) => {
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &aws_lc::signature::RSA_PSS_SHA256,
                    &rng,
                    input.as_bytes(),
                    &mut sig,
                )
                .unwrap();
                sig
            }
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn claims(token: &str, jti: &str) -> Value {
        json!({"jti": jti, "htm": "POST", "htu": R, "iat": now(),
            "ath": URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))})
    }

    fn proof(&self, token: &str, jti: &str) -> String {
        let header = json!({"typ": "dpop+jwt", "alg": self.alg, "jwk": self.jwk});
        self.sign(&header, &ProofKey::claims(token, jti))
    }
}

/// The exact `invalid_dpop_proof` challenge for `description`, with the `algs` offered.
fn invalid_proof(description: &str, algs: &str) -> String {
    format!(
        "DPoP error=\"invalid_dpop_proof\", error_description=\"{description}\", \
         scope=\"todo:read\", resource_metadata=\"{META}\", algs=\"{algs}\""
    )
}

const DEFAULT_ALGS: &str = "ES256 ES384 EdDSA PS256 RS256";

fn issuer() -> DevIssuer {
    DevIssuer::generate(ISS)
}

fn builder(idp: &DevIssuer) -> RemoteAuthProviderBuilder {
    let verifier = idp.verifier_builder().resource_url(R).build().unwrap();
    RemoteAuthProvider::builder(Arc::new(verifier))
        .resource_url(R)
        .authorization_server(ISS)
        .initial_scopes(["todo:read"])
}

fn app(provider: &RemoteAuthProvider) -> Router {
    Router::new()
        .route("/mcp", post(|| async { "ok" }))
        .layer(provider.layer())
}

fn bound_token(idp: &DevIssuer, jkt: &str) -> String {
    idp.mint(
        TokenSpec::new("alice")
            .audience(R)
            .issuer(ISS)
            .claim("cnf", json!({"jkt": jkt})),
    )
}

async fn send(app: &Router, auth: &str, proof: Option<&str>) -> http::Response<Body> {
    let mut req = Request::post("/mcp").header("authorization", auth);
    if let Some(p) = proof {
        req = req.header("dpop", p);
    }
    app.clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

fn www(resp: &http::Response<Body>) -> &str {
    resp.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

#[tokio::test]
async fn proofs_of_every_key_type_pass_on_this_backend() {
    let idp = issuer();
    let provider = builder(&idp)
        .dpop_key_verifier(DpopKeys::shared())
        .dpop_algorithms(["RS256", "ES256", "EdDSA"])
        .build()
        .unwrap();
    let app = app(&provider);
    for alg in DevAlg::ALL {
        let client = Client::new(alg);
        let token = bound_token(&idp, &client.jkt());
        let ok = send(
            &app,
            &format!("DPoP {token}"),
            Some(&client.proof(&token, "a")),
        )
        .await;
        assert_eq!(ok.status(), StatusCode::OK, "{alg:?}");
        // The proof signed by one key type but naming another alg never verifies.
        let other = if alg == DevAlg::ES256 {
            DevAlg::EdDSA
        } else {
            DevAlg::ES256
        };
        let header = json!({"typ": "dpop+jwt", "alg": other.name(), "jwk": client.jwk});
        let claims = json!({"jti": "b", "htm": "POST", "htu": R, "iat": now(),
            "ath": URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))});
        let confused =
            client
                .keys
                .sign_raw(alg, &header.to_string(), claims.to_string().as_bytes());
        let resp = send(&app, &format!("DPoP {token}"), Some(&confused)).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{alg:?}");
        assert!(
            www(&resp).starts_with("DPoP error=\"invalid_dpop_proof\""),
            "{}",
            www(&resp)
        );
    }
}

/// ES384 and PS256 are on the default proof allowlist: proofs signed with them pass on this
/// backend, and their signatures are really checked (a signature over other content, or a PSS
/// signature presented as RS256, is refused).
#[tokio::test]
async fn es384_and_ps256_proofs_pass_with_the_default_algorithms() {
    let idp = issuer();
    let provider = builder(&idp)
        .dpop_key_verifier(DpopKeys::shared())
        .build()
        .unwrap();
    assert_eq!(
        provider.protected_resource().dpop().algs_header(),
        DEFAULT_ALGS
    );
    let app = app(&provider);
    for key in [ProofKey::es384(), ProofKey::ps256()] {
        let token = bound_token(&idp, &key.jkt());
        let auth = format!("DPoP {token}");
        let ok = send(&app, &auth, Some(&key.proof(&token, "first"))).await;
        assert_eq!(ok.status(), StatusCode::OK, "{}", key.alg);

        // The header and claims of one proof with the signature of another.
        let one = key.proof(&token, "one");
        let other = key.proof(&token, "other");
        let spliced = format!(
            "{}.{}",
            one.rsplit_once('.').unwrap().0,
            other.rsplit_once('.').unwrap().1
        );
        let resp = send(&app, &auth, Some(&spliced)).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{}", key.alg);
        assert_eq!(
            www(&resp),
            invalid_proof("The DPoP proof signature is invalid", DEFAULT_ALGS),
            "{}",
            key.alg
        );
        // The untouched proof still passes: the refusal took no replay entry.
        let ok = send(&app, &auth, Some(&one)).await;
        assert_eq!(ok.status(), StatusCode::OK, "{}", key.alg);
    }

    // A PSS signature presented as PKCS#1 v1.5 (RS256, same RSA key) does not verify.
    let key = ProofKey::ps256();
    let token = bound_token(&idp, &key.jkt());
    let header = json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": key.jwk});
    let confused = key.sign(&header, &ProofKey::claims(&token, "rs"));
    let resp = send(&app, &format!("DPoP {token}"), Some(&confused)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        www(&resp),
        invalid_proof("The DPoP proof signature is invalid", DEFAULT_ALGS)
    );
}

/// An asymmetric algorithm off the configured list (`MCP_AUTH_DPOP_ALGORITHMS="ES256 EdDSA"`) is
/// refused before its signature is looked at, with the configured `algs` in the challenge,
/// while a listed one passes.
#[tokio::test]
async fn asymmetric_proofs_off_the_configured_algorithms_are_refused() {
    let idp = issuer();
    let provider = builder(&idp)
        .dpop_key_verifier(DpopKeys::shared())
        .dpop_algorithms(["ES256", "EdDSA"])
        .build()
        .unwrap();
    let app = app(&provider);
    let refused = invalid_proof("The DPoP proof algorithm is not accepted", "ES256 EdDSA");

    let rs256 = Client::new(DevAlg::RS256);
    let token = bound_token(&idp, &rs256.jkt());
    let resp = send(
        &app,
        &format!("DPoP {token}"),
        Some(&rs256.proof(&token, "rs256")),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(www(&resp), refused);

    for key in [ProofKey::es384(), ProofKey::ps256()] {
        let token = bound_token(&idp, &key.jkt());
        let resp = send(
            &app,
            &format!("DPoP {token}"),
            Some(&key.proof(&token, "off-list")),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{}", key.alg);
        assert_eq!(www(&resp), refused, "{}", key.alg);
    }

    let es256 = Client::new(DevAlg::ES256);
    let token = bound_token(&idp, &es256.jkt());
    let ok = send(
        &app,
        &format!("DPoP {token}"),
        Some(&es256.proof(&token, "listed")),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_full_replay_cache_refuses_new_proofs_with_503_and_evicts_nothing() {
    let idp = issuer();
    let provider = builder(&idp)
        .dpop_key_verifier(DpopKeys::shared())
        .dpop_replay_capacity(1)
        .build()
        .unwrap();
    let app = app(&provider);
    let client = Client::new(DevAlg::ES256);
    let token = bound_token(&idp, &client.jkt());
    let auth = format!("DPoP {token}");
    let first = client.proof(&token, "one");
    assert_eq!(
        send(&app, &auth, Some(&first)).await.status(),
        StatusCode::OK
    );
    let full = send(&app, &auth, Some(&client.proof(&token, "two"))).await;
    assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(full.headers()["retry-after"], "5");
    // The live entry was kept: the first proof is still a replay.
    let replay = send(&app, &auth, Some(&first)).await;
    assert_eq!(
        www(&replay),
        format!(
            "DPoP error=\"invalid_dpop_proof\", error_description=\"The DPoP proof was already \
             used\", scope=\"todo:read\", resource_metadata=\"{META}\", algs=\"ES256 ES384 EdDSA \
             PS256 RS256\""
        )
    );
}

#[tokio::test]
async fn a_full_replay_cache_with_nonces_answers_use_dpop_nonce() {
    let idp = issuer();
    let provider = builder(&idp)
        .dpop_key_verifier(DpopKeys::shared())
        .dpop_replay_capacity(0)
        .dpop_nonces(Duration::from_secs(60))
        .build()
        .unwrap();
    let app = app(&provider);
    let client = Client::new(DevAlg::ES256);
    let token = bound_token(&idp, &client.jkt());
    let auth = format!("DPoP {token}");
    let first = send(&app, &auth, Some(&client.proof(&token, "n"))).await;
    let nonce = first.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": client.jwk});
    let claims = json!({"jti": "n2", "htm": "POST", "htu": R, "iat": now(), "nonce": nonce,
        "ath": URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))});
    let proof = client.keys.sign_raw(
        DevAlg::ES256,
        &header.to_string(),
        claims.to_string().as_bytes(),
    );
    let resp = send(&app, &auth, Some(&proof)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().contains_key("dpop-nonce"));
    assert!(
        www(&resp).starts_with("DPoP error=\"use_dpop_nonce\""),
        "{}",
        www(&resp)
    );
}

struct Down;

#[async_trait::async_trait]
impl ReplayCache for Down {
    async fn first_use(&self, _: [u8; 32], _: u64) -> Result<bool, ReplayUnavailable> {
        Err(ReplayUnavailable)
    }
}

#[tokio::test]
async fn an_unreachable_replay_store_fails_closed() {
    let idp = issuer();
    let provider = builder(&idp)
        .dpop_key_verifier(DpopKeys::shared())
        .dpop_replay_cache(Arc::new(Down))
        .build()
        .unwrap();
    let client = Client::new(DevAlg::EdDSA);
    let token = bound_token(&idp, &client.jkt());
    let resp = send(
        &app(&provider),
        &format!("DPoP {token}"),
        Some(&client.proof(&token, "x")),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn off_mode_keeps_refusing_bound_tokens_and_ignores_the_dpop_scheme() {
    let idp = issuer();
    let provider = builder(&idp)
        .dpop_key_verifier(DpopKeys::shared())
        .dpop(DpopMode::Off)
        .build()
        .unwrap();
    let meta = serde_json::to_value(provider.protected_resource().metadata()).unwrap();
    assert!(meta.get("dpop_signing_alg_values_supported").is_none());
    let app = app(&provider);
    let client = Client::new(DevAlg::ES256);
    let token = bound_token(&idp, &client.jkt());
    let dpop = send(
        &app,
        &format!("DPoP {token}"),
        Some(&client.proof(&token, "o")),
    )
    .await;
    assert_eq!(dpop.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        www(&dpop),
        format!("Bearer scope=\"todo:read\", resource_metadata=\"{META}\"")
    );
    let bearer = send(&app, &format!("Bearer {token}"), None).await;
    assert_eq!(
        www(&bearer),
        format!(
            "Bearer error=\"invalid_token\", error_description=\"Sender-constrained access \
             tokens are not supported\", scope=\"todo:read\", resource_metadata=\"{META}\""
        )
    );
}

#[test]
fn dpop_settings_fail_at_build_never_per_request() {
    let idp = issuer();
    // Core alone cannot check signatures: asking for DPoP without a verifier is an error...
    let err = builder(&idp).dpop(DpopMode::Required).build().unwrap_err();
    assert_eq!(err.setting().key(), "dpop");
    // ...and without one, nothing is advertised.
    let off = builder(&idp).build().unwrap();
    assert_eq!(off.protected_resource().dpop().mode(), DpopMode::Off);
    for bad in [&["none"][..], &["HS256"], &["ES256", "HS512"], &[]] {
        let err = builder(&idp)
            .dpop_key_verifier(DpopKeys::shared())
            .dpop_algorithms(bad.iter().copied())
            .build()
            .unwrap_err();
        assert_eq!(err.setting().key(), "dpop_algorithms", "{bad:?}");
    }
}
