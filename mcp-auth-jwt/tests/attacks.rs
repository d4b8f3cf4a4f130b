//! Hostile tokens: each is rejected with the right reason, without panicking.

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{AUD, Stub, bounded, fast_client};
use mcp_auth_core::telemetry::CACHE_LOOKUPS;
use mcp_auth_idp_harness::metrics::MetricsCapture;
use mcp_auth_jwt::dev::{DevAlg, DevIssuer, TokenSpec};
use mcp_auth_jwt::{
    AccessToken, Algorithm, InvalidToken, JwtVerifier, TokenVerifier, TypPolicy, VerifyError,
};
use serde_json::{Value, json};

const ISS: &str = "https://issuer.test";

fn dev() -> DevIssuer {
    DevIssuer::generate(ISS)
}

fn verifier() -> JwtVerifier {
    dev().verifier_builder().audience(AUD).build().unwrap()
}

fn spec() -> TokenSpec {
    TokenSpec::new("alice").scopes(["todo:read"]).audience(AUD)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn reason(v: &JwtVerifier, token: &str) -> InvalidToken {
    match bounded(v.verify(token)).await {
        Err(VerifyError::Invalid(r)) => r,
        other => panic!("expected rejection, got {other:?}"),
    }
}

fn b64(s: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

fn claims_json() -> Value {
    json!({"iss": ISS, "sub": "mallory", "aud": AUD, "exp": now() + 600, "scope": "todo:write"})
}

fn hs256(secret: &[u8], kid: Option<&str>) -> String {
    let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        &claims_json(),
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

#[tokio::test]
async fn sanity_valid_token_maps_claims() {
    let v = verifier();
    for alg in DevAlg::ALL {
        let t = dev().mint(
            spec()
                .alg(alg)
                .client_id("client-1")
                .claim("tenant", json!("t1")),
        );
        let a: AccessToken = v.verify(&t).await.unwrap();
        assert_eq!(a.subject(), Some("alice"));
        assert_eq!(a.client_id(), Some("client-1"));
        assert_eq!(a.scopes(), ["todo:read"]);
        assert_eq!(a.issuer(), Some(ISS));
        assert_eq!(a.audiences(), [AUD]);
        assert_eq!(a.claim("tenant"), Some(&json!("t1")));
    }
}

#[tokio::test]
async fn scp_array_and_azp_are_mapped() {
    let v = verifier();
    let t = dev().mint(
        TokenSpec::new("s")
            .audience(AUD)
            .claim("scp", json!(["a", "b"]))
            .claim("azp", json!("client-azp")),
    );
    let a = v.verify(&t).await.unwrap();
    assert_eq!(a.scopes(), ["a", "b"]);
    assert_eq!(a.client_id(), Some("client-azp"));
    // No client claim at all: no placeholder is invented.
    let t = dev().mint(TokenSpec::new("s").audience(AUD));
    assert_eq!(v.verify(&t).await.unwrap().client_id(), None);
}

#[tokio::test]
async fn alg_none() {
    let header = b64(br#"{"alg":"none","typ":"at+jwt"}"#);
    let payload = b64(claims_json().to_string().as_bytes());
    let v = verifier();
    assert_eq!(
        reason(&v, &format!("{header}.{payload}.")).await,
        InvalidToken::Algorithm
    );
    let header = b64(br#"{"alg":"None"}"#);
    assert_eq!(
        reason(&v, &format!("{header}.{payload}.")).await,
        InvalidToken::Algorithm
    );
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_bytes() {
    let v = verifier();
    let d = dev();
    let jwks = d.jwks_json();
    let rsa_jwk = jwks["keys"][0].to_string();
    let n = URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["n"].as_str().unwrap())
        .unwrap();
    for secret in [rsa_jwk.as_bytes(), &n[..], jwks.to_string().as_bytes()] {
        let t = hs256(secret, Some(d.kid(DevAlg::RS256)));
        assert_eq!(reason(&v, &t).await, InvalidToken::Algorithm);
    }
    // Even with HMAC enabled (another secret), the public key is never an HMAC key.
    let v = JwtVerifier::builder()
        .public_key(&jwks.to_string())
        .hmac_secret([9u8; 32])
        .algorithms([Algorithm::RS256, Algorithm::HS256])
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap();
    let t = hs256(rsa_jwk.as_bytes(), Some(d.kid(DevAlg::RS256)));
    assert_eq!(reason(&v, &t).await, InvalidToken::Algorithm);
    let t = hs256(rsa_jwk.as_bytes(), None);
    assert_eq!(reason(&v, &t).await, InvalidToken::BadSignature);
    // The configured secret itself works (HMAC is an explicit opt-in, not broken).
    let t = hs256(&[9u8; 32], None);
    assert!(v.verify(&t).await.is_ok());
}

#[tokio::test]
async fn kid_pointing_at_another_key_type() {
    let d = dev();
    let t = d.mint(spec().alg(DevAlg::ES256).kid(Some(d.kid(DevAlg::RS256))));
    assert_eq!(reason(&verifier(), &t).await, InvalidToken::Algorithm);
    let t = d.mint(spec().alg(DevAlg::EdDSA).kid(Some(d.kid(DevAlg::ES256))));
    assert_eq!(reason(&verifier(), &t).await, InvalidToken::Algorithm);
}

#[tokio::test]
async fn jwk_alg_differs_from_token_alg() {
    let d = dev();
    let mut jwks = d.jwks_json();
    jwks["keys"][0]["alg"] = json!("PS256");
    let v = JwtVerifier::builder()
        .public_key(&jwks.to_string())
        .algorithms([Algorithm::RS256, Algorithm::PS256])
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap();
    let t = d.mint(spec().alg(DevAlg::RS256));
    assert_eq!(reason(&v, &t).await, InvalidToken::Algorithm);
}

#[tokio::test]
async fn oct_key_published_in_the_jwks_is_never_an_hmac_secret() {
    bounded(async {
        let d = dev();
        let secret = [7u8; 32];
        let mut doc = d.jwks_json();
        doc["keys"]
            .as_array_mut()
            .unwrap()
            .push(json!({"kty": "oct", "kid": "sym", "alg": "HS256", "k": b64(&secret)}));
        let stub = Stub::start(doc).await;
        let t = hs256(&secret, Some("sym"));
        // HMAC not allowed: algorithm refused.
        let v = JwtVerifier::builder()
            .jwks_uri(stub.jwks_uri())
            .issuer(ISS)
            .audience(AUD)
            .http_client(fast_client())
            .build()
            .unwrap();
        assert_eq!(reason(&v, &t).await, InvalidToken::Algorithm);
        // HMAC allowed with another configured secret: the published one is still not used.
        let v = JwtVerifier::builder()
            .jwks_uri(stub.jwks_uri())
            .hmac_secret([1u8; 32])
            .algorithms([Algorithm::RS256, Algorithm::HS256])
            .issuer(ISS)
            .audience(AUD)
            .http_client(fast_client())
            .build()
            .unwrap();
        assert_eq!(reason(&v, &t).await, InvalidToken::BadSignature);
    })
    .await;
}

#[tokio::test]
async fn cnf_bound_token() {
    let t = dev().mint(spec().claim("cnf", json!({"jkt": "abc"})));
    assert_eq!(
        reason(&verifier(), &t).await,
        InvalidToken::SenderConstrained
    );
}

#[tokio::test]
async fn jku_x5u_jwk_header_injection_is_ignored() {
    let attacker = DevIssuer::generate_fresh(ISS);
    let legit = dev();
    let attacker_jwk = attacker.jwks_json()["keys"][0].clone();
    let injected = |kid: &str| {
        attacker.mint(
            spec()
                .kid(Some(kid))
                .header("jku", json!("https://evil.example/jwks"))
                .header("x5u", json!("https://evil.example/cert"))
                .header("jwk", attacker_jwk.clone()),
        )
    };
    let v = verifier();
    assert_eq!(
        reason(&v, &injected(attacker.kid(DevAlg::RS256))).await,
        InvalidToken::UnknownKey
    );
    assert_eq!(
        reason(&v, &injected(legit.kid(DevAlg::RS256))).await,
        InvalidToken::BadSignature
    );
}

#[tokio::test]
async fn expired() {
    let t = dev().mint(spec().expires_at_unix(now() - 120));
    assert_eq!(reason(&verifier(), &t).await, InvalidToken::Expired);
    // Within the leeway: accepted.
    let t = dev().mint(spec().expires_at_unix(now() - 5));
    assert!(verifier().verify(&t).await.is_ok());
}

#[tokio::test]
async fn nbf_in_the_future() {
    let t = dev().mint(spec().not_before_unix(now() + 600));
    assert_eq!(reason(&verifier(), &t).await, InvalidToken::NotYetValid);
    let t = dev().mint(spec().issued_at_unix(now() + 600));
    assert_eq!(reason(&verifier(), &t).await, InvalidToken::NotYetValid);
}

#[tokio::test]
async fn wrong_issuer() {
    let t = dev().mint(spec().issuer("https://evil.example"));
    assert_eq!(reason(&verifier(), &t).await, InvalidToken::Issuer);
    let t = dev().mint(spec().claim("iss", Value::Null));
    assert_eq!(reason(&verifier(), &t).await, InvalidToken::Issuer);
}

#[tokio::test]
async fn wrong_audience() {
    let t = dev().mint(spec().audience("https://other.example/mcp"));
    assert_eq!(reason(&verifier(), &t).await, InvalidToken::Audience);
}

#[tokio::test]
async fn audience_array_without_ours() {
    let t = dev().mint(spec().audiences(["https://a.example", "https://b.example"]));
    assert_eq!(reason(&verifier(), &t).await, InvalidToken::Audience);
    let t = dev().mint(spec().audiences(["https://a.example", AUD]));
    assert!(verifier().verify(&t).await.is_ok());
    // `null` is absent, for JWTs and introspection alike: a token naming no audience was not
    // issued for this resource.
    let t = dev().mint(spec().claim("aud", Value::Null));
    assert_eq!(reason(&verifier(), &t).await, InvalidToken::Audience);
    let t = dev().mint(spec().claim("aud", json!(["https://a.example", 7])));
    assert_eq!(reason(&verifier(), &t).await, InvalidToken::Malformed);
}

#[tokio::test]
async fn missing_exp() {
    let t = dev().mint(spec().claim("exp", Value::Null));
    assert_eq!(reason(&verifier(), &t).await, InvalidToken::MissingClaim);
    let t = dev().mint(spec().claim("exp", json!("4102444800")));
    assert_eq!(reason(&verifier(), &t).await, InvalidToken::MissingClaim);
}

#[tokio::test]
async fn tampered_payload() {
    let t = dev().mint(spec());
    let parts: Vec<&str> = t.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["scope"] = json!("todo:read todo:admin");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(
        reason(&verifier(), &forged).await,
        InvalidToken::BadSignature
    );
}

#[tokio::test]
async fn truncated_signature() {
    for alg in DevAlg::ALL {
        let t = dev().mint(spec().alg(alg));
        assert_eq!(
            reason(&verifier(), &t[..t.len() - 4]).await,
            InvalidToken::BadSignature,
            "{alg:?}"
        );
        let (head, _) = t.rsplit_once('.').unwrap();
        assert_eq!(
            reason(&verifier(), &format!("{head}.")).await,
            InvalidToken::Malformed
        );
    }
}

#[tokio::test]
async fn bad_base64() {
    let t = dev().mint(spec());
    let v = verifier();
    let parts: Vec<&str> = t.split('.').collect();
    for bad in [
        format!("{}*.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", parts[0], parts[1], parts[2].replace('-', "+")),
        format!("{}==.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}", parts[0], parts[1]),
        format!("{t}.extra"),
        "....".to_owned(),
        "not-a-jwt".to_owned(),
    ] {
        let r = reason(&v, &bad).await;
        assert!(
            matches!(r, InvalidToken::Malformed | InvalidToken::BadSignature),
            "{bad}: {r:?}"
        );
    }
    assert_eq!(
        reason(&v, &format!("{}*.{}.{}", parts[0], parts[1], parts[2])).await,
        InvalidToken::Malformed
    );
}

#[tokio::test]
async fn token_of_100_kib() {
    let huge = dev().mint(spec().claim("pad", json!("x".repeat(100 * 1024))));
    assert!(huge.len() > 100 * 1024);
    assert_eq!(reason(&verifier(), &huge).await, InvalidToken::TooLarge);
}

#[tokio::test]
async fn payload_not_json() {
    let d = dev();
    let v = verifier();
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": d.kid(DevAlg::RS256)}).to_string();
    for payload in [&b"not json"[..], b"[1,2,3]", b"\"string\"", b"{\"a\":"] {
        let t = d.sign_raw(DevAlg::RS256, &header, payload);
        assert_eq!(reason(&v, &t).await, InvalidToken::Malformed);
    }
}

#[tokio::test]
async fn duplicate_claims() {
    let d = dev();
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": d.kid(DevAlg::RS256)}).to_string();
    let exp = now() + 600;
    let payload = format!(
        r#"{{"iss":"{ISS}","sub":"alice","aud":"https://evil.example","aud":"{AUD}","exp":{exp}}}"#
    );
    let t = d.sign_raw(DevAlg::RS256, &header, payload.as_bytes());
    assert_eq!(reason(&verifier(), &t).await, InvalidToken::Malformed);
    // Duplicate header members too.
    let header = format!(
        r#"{{"alg":"RS256","kid":"{}","kid":"other"}}"#,
        d.kid(DevAlg::RS256)
    );
    let payload = format!(r#"{{"iss":"{ISS}","sub":"alice","aud":"{AUD}","exp":{exp}}}"#);
    let t = d.sign_raw(DevAlg::RS256, &header, payload.as_bytes());
    assert_eq!(reason(&verifier(), &t).await, InvalidToken::Malformed);
}

#[tokio::test]
async fn unknown_crit_header() {
    let t = dev().mint(
        spec()
            .header("crit", json!(["exp"]))
            .header("exp", json!(1)),
    );
    assert_eq!(reason(&verifier(), &t).await, InvalidToken::Critical);
}

#[tokio::test]
async fn typ_policy() {
    let d = dev();
    let v = verifier();
    for ok in [
        Some("at+jwt"),
        Some("application/AT+JWT"),
        Some("JWT"),
        None,
    ] {
        assert!(v.verify(&d.mint(spec().typ(ok))).await.is_ok(), "{ok:?}");
    }
    for bad in ["JOSE", "id_token+jwt", "application/jwt+json", "dpop+jwt"] {
        assert_eq!(
            reason(&v, &d.mint(spec().typ(Some(bad)))).await,
            InvalidToken::Type
        );
    }
    let strict = d
        .verifier_builder()
        .audience(AUD)
        .typ_policy(TypPolicy::Strict)
        .build()
        .unwrap();
    assert!(strict.verify(&d.mint(spec())).await.is_ok());
    assert_eq!(
        reason(&strict, &d.mint(spec().typ(Some("JWT")))).await,
        InvalidToken::Type
    );
    assert_eq!(
        reason(&strict, &d.mint(spec().typ(None))).await,
        InvalidToken::Type
    );
}

#[tokio::test]
async fn algorithm_outside_the_allowlist() {
    let d = dev();
    let v = d
        .verifier_builder()
        .audience(AUD)
        .algorithms([Algorithm::RS256])
        .build()
        .unwrap();
    assert_eq!(
        reason(&v, &d.mint(spec().alg(DevAlg::ES256))).await,
        InvalidToken::Algorithm
    );
    assert!(v.verify(&d.mint(spec())).await.is_ok());
}

/// The JWT token cache's (misses, hits) counted so far.
fn lookups(m: &MetricsCapture) -> (u64, u64) {
    (
        m.counter(CACHE_LOOKUPS, &[("cache", "jwt"), ("result", "miss")]),
        m.counter(CACHE_LOOKUPS, &[("cache", "jwt"), ("result", "hit")]),
    )
}

/// A verifier without leeway: a token is expired the second after its `exp`.
fn no_leeway(d: &DevIssuer) -> JwtVerifier {
    d.verifier_builder()
        .audience(AUD)
        .leeway(Duration::ZERO)
        .build()
        .unwrap()
}

/// Returns once the clock (which the cache and the verifier read) is past `exp` (at most a few
/// seconds for the tokens here).
async fn past(exp: u64) {
    bounded(async {
        while now() <= exp {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

/// The bearer layer asks `verify_cached` before its own syntax checks: it answers only for the
/// exact bytes of a token that verified, and only while that token is still valid.
#[tokio::test]
async fn the_layers_cache_lookup_answers_only_for_verified_tokens() {
    let m = MetricsCapture::new();
    let _recording = m.install();
    let d = dev();
    let v = no_leeway(&d);
    let exp = now() + 2;
    let t = d.mint(spec().claim("exp", json!(exp)));
    assert!(
        v.verify_cached(t.as_bytes()).is_none(),
        "nothing before a verification"
    );
    let verified = v.verify(&t).await.unwrap();
    // The layer's lookup, then `verify`: one miss counted, by `verify`.
    assert_eq!(lookups(&m), (1, 0), "{m:?}");
    let hit = v
        .verify_cached(t.as_bytes())
        .expect("answered after a verification");
    assert_eq!(lookups(&m), (1, 1), "{m:?}");
    assert_eq!(hit.subject(), Some("alice"));
    assert_eq!(hit.scopes(), verified.scopes());
    // Same tail (the cache's index), another first byte: compared in full, not answered.
    let mut forged = t.clone().into_bytes();
    forged[0] = if forged[0] == b'e' { b'f' } else { b'e' };
    assert!(v.verify_cached(&forged).is_none());
    // Trailing bytes the layer would trim or refuse are not the token either.
    assert!(v.verify_cached(format!("{t} ").as_bytes()).is_none());
    // A refused token is never remembered.
    let elsewhere = d.mint(spec().audience("https://other.example.com/mcp"));
    assert_eq!(reason(&v, &elsewhere).await, InvalidToken::Audience);
    assert!(v.verify_cached(elsewhere.as_bytes()).is_none());
    // Past `exp`, the lookup answers nothing (the verifier then refuses it as expired).
    past(exp).await;
    assert!(
        v.verify_cached(t.as_bytes()).is_none(),
        "answered after exp"
    );
    assert_eq!(reason(&v, &t).await, InvalidToken::Expired);
    // Without a token cache there is nothing to answer from.
    let uncached = d
        .verifier_builder()
        .audience(AUD)
        .token_cache(false, 0)
        .build()
        .unwrap();
    let fresh = d.mint(spec());
    uncached.verify(&fresh).await.unwrap();
    assert!(uncached.verify_cached(fresh.as_bytes()).is_none());
}

#[tokio::test]
async fn cached_token_still_expires() {
    let m = MetricsCapture::new();
    let _recording = m.install();
    // One verifier throughout, without leeway: a cache entry that outlived `exp` would answer
    // with the token accepted after it expired.
    let d = dev();
    let v = no_leeway(&d);
    // At least a second of validity left for the two verifications below.
    let exp = now() + 2;
    let t = d.mint(spec().claim("exp", json!(exp)));
    assert!(v.verify(&t).await.is_ok());
    assert!(v.verify(&t).await.is_ok());
    assert_eq!(
        lookups(&m),
        (1, 1),
        "verified once, then answered from the cache: {m:?}"
    );
    // The cache (like the verifier) reads the system clock: wait until `exp` has passed (at
    // most 3 s; `exp` itself is still accepted by a zero leeway).
    past(exp).await;
    assert_eq!(reason(&v, &t).await, InvalidToken::Expired);
    assert_eq!(lookups(&m).1, 1, "no cache hit after exp: {m:?}");
}

#[test]
fn audience_is_required_to_build() {
    // Each refusal names the setting at fault and says what is wrong (an is_err() alone let the
    // http case pass on the missing issuer, never reaching the scheme check).
    let refused = |b: mcp_auth_jwt::JwtVerifierBuilder| {
        let err = b.build().expect_err("built");
        (err.setting().key(), err.to_string())
    };
    let (key, msg) = refused(dev().verifier_builder());
    assert_eq!(key, "jwt_audience", "{msg}");
    assert!(
        msg.contains("audience") && msg.contains("required"),
        "{msg}"
    );
    assert!(
        dev()
            .verifier_builder()
            .dangerous_skip_audience()
            .build()
            .is_ok()
    );
    let (key, msg) = refused(
        JwtVerifier::builder()
            .issuer(ISS)
            .audience(AUD)
            .algorithms([Algorithm::HS256]),
    );
    assert_eq!(key, "jwt_algorithms", "HMAC without a secret: {msg}");
    assert!(msg.contains("need an explicit hmac_secret"), "{msg}");
    let (key, msg) = refused(JwtVerifier::builder().hmac_secret(b"short").audience(AUD));
    assert_eq!(key, "hmac_secret", "{msg}");
    assert!(msg.contains("at least 32 bytes"), "{msg}");
    let (key, msg) = refused(
        JwtVerifier::builder()
            .jwks_uri("http://idp.example.com/jwks")
            .issuer(ISS)
            .audience(AUD),
    );
    assert_eq!(key, "jwt_jwks_uri", "plain http outside loopback: {msg}");
    assert!(msg.contains("must be https"), "{msg}");
}
