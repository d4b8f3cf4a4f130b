//! JWKS handling against local stubs: outages, hangs, garbage, rotation, unusable keys,
//! single flight and the refetch cooldown.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{AUD, Mode, Stub, bounded, fast_client};
use mcp_auth_core::telemetry::{CACHE_LOOKUPS, JWKS_FETCHES};
use mcp_auth_idp_harness::metrics::MetricsCapture;
use mcp_auth_jwt::dev::{DevAlg, DevIssuer, TokenSpec};
use mcp_auth_jwt::{InvalidToken, JwtVerifier, JwtVerifierBuilder, TokenVerifier, VerifyError};
use serde_json::json;

const ISS: &str = "https://issuer.test";

fn dev() -> DevIssuer {
    DevIssuer::generate(ISS)
}

fn token(d: &DevIssuer, alg: DevAlg) -> String {
    d.mint(
        TokenSpec::new("alice")
            .scopes(["todo:read"])
            .audience(AUD)
            .alg(alg),
    )
}

fn builder(stub: &Stub) -> JwtVerifierBuilder {
    JwtVerifier::builder()
        .jwks_uri(stub.jwks_uri())
        .issuer(ISS)
        .audience(AUD)
        .algorithms(DevAlg::ALL.map(DevAlg::algorithm))
        .http_client(fast_client())
}

fn invalid(r: Result<mcp_auth_jwt::AccessToken, VerifyError>) -> InvalidToken {
    match r {
        Err(VerifyError::Invalid(reason)) => reason,
        other => panic!("expected an invalid-token error, got {other:?}"),
    }
}

#[test]
fn thousand_concurrent_cold_requests_cause_one_fetch() {
    let m = MetricsCapture::new();
    m.block_on(
        2,
        bounded(async {
            let d = dev();
            let stub = Stub::start(d.jwks_json()).await;
            stub.set_mode(Mode::Slow(Duration::from_millis(200)));
            let v = builder(&stub).prefetch(false).build().unwrap();
            let t = Arc::new(token(&d, DevAlg::EdDSA));
            let mut tasks = Vec::new();
            for _ in 0..1000 {
                let v = v.clone();
                let t = Arc::clone(&t);
                tasks.push(tokio::spawn(async move { v.verify(&t).await }));
            }
            for task in tasks {
                assert!(task.await.unwrap().is_ok());
            }
            assert_eq!(stub.fetches(), 1);
            assert_eq!(m.counter(JWKS_FETCHES, &[("result", "ok")]), 1, "{m:?}");
            assert_eq!(m.counter(JWKS_FETCHES, &[]), 1);
        }),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_unknown_kids_fetch_at_most_once_per_cooldown() {
    bounded(async {
        let d = dev();
        let stub = Stub::start(d.jwks_json()).await;
        let cooldown = Duration::from_millis(300);
        let v = builder(&stub).jwks_cooldown(cooldown).build().unwrap();
        v.prefetch().await.unwrap();
        assert_eq!(stub.fetches(), 1);
        let payload =
            URL_SAFE_NO_PAD.encode(br#"{"iss":"https://issuer.test","sub":"x","exp":4102444800}"#);
        let start = Instant::now();
        // 10,000 tokens with random kids, in waves over roughly a second.
        for wave in 0..10u64 {
            let mut tasks = Vec::new();
            for i in 0..1000u64 {
                let kid = blake3::hash(&(wave * 1000 + i).to_le_bytes()).to_hex();
                let header = URL_SAFE_NO_PAD.encode(
                    json!({"alg": "ES256", "typ": "at+jwt", "kid": kid.as_str()}).to_string(),
                );
                let t = format!("{header}.{payload}.c2lnbmF0dXJl");
                let v = v.clone();
                tasks.push(tokio::spawn(async move { v.verify(&t).await }));
            }
            for task in tasks {
                assert_eq!(invalid(task.await.unwrap()), InvalidToken::UnknownKey);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let elapsed = start.elapsed();
        let allowed = 1 + (elapsed.as_millis() / cooldown.as_millis()) as u64 + 1;
        let fetches = stub.fetches();
        assert!(
            fetches <= allowed,
            "{fetches} fetches in {elapsed:?} with cooldown {cooldown:?}"
        );
        assert!(fetches >= 2, "unknown kids should trigger some refetch");
    })
    .await;
}

#[tokio::test]
async fn endpoint_down_at_start_gives_unavailable_then_recovers() {
    bounded(async {
        let d = dev();
        let stub = Stub::start(d.jwks_json()).await;
        stub.set_mode(Mode::Down);
        let v = builder(&stub)
            .jwks_cooldown(Duration::from_millis(200))
            .build()
            .unwrap();
        let t = token(&d, DevAlg::RS256);
        let err = v.verify(&t).await.unwrap_err();
        assert!(
            matches!(
                err,
                VerifyError::Unavailable {
                    retry_after: Some(_)
                }
            ),
            "{err:?}"
        );
        assert!(!v.is_ready());
        stub.set_mode(Mode::Ok);
        tokio::time::sleep(Duration::from_millis(250)).await;
        let access = v.verify(&t).await.unwrap();
        assert_eq!(access.subject(), Some("alice"));
        assert!(v.is_ready());
    })
    .await;
}

/// An IdP that starts after the MCP server (the normal case in containers): while no key set was
/// ever fetched, failed fetches are retried after 250 ms, 500 ms, … up to the cooldown, not
/// after a whole cooldown each.
#[tokio::test]
async fn first_fetch_backs_off_from_250_ms_while_no_key_set_was_ever_fetched() {
    bounded(async {
        let d = dev();
        let stub = Stub::start(d.jwks_json()).await;
        stub.set_mode(Mode::Down);
        // The default cooldown (5 s): far longer than this test waits.
        let v = builder(&stub).prefetch(false).build().unwrap();
        let t = token(&d, DevAlg::RS256);
        let first = Instant::now();
        let err = v.verify(&t).await.unwrap_err();
        assert!(
            matches!(err, VerifyError::Unavailable { retry_after: Some(r) } if r == Duration::from_secs(1)),
            "the client is told to come back in a second, not a whole cooldown: {err:?}"
        );
        assert_eq!(stub.fetches(), 1);
        // Within the first backoff (250 ms): no new fetch. On a starved machine the second call
        // may come later than that, when a fetch is allowed: the count is then checked below.
        assert!(v.verify(&t).await.unwrap_err().is_unavailable());
        if first.elapsed() < Duration::from_millis(250) {
            assert_eq!(stub.fetches(), 1, "a fetch within the first backoff");
        }
        let before = stub.fetches();
        stub.set_mode(Mode::Ok);
        // Retried after the backoff, far sooner than the 5 s cooldown: poll until verified and
        // check that exactly one more fetch did it.
        let access = tokio::time::timeout(Duration::from_secs(4), async {
            loop {
                match v.verify(&t).await {
                    Ok(access) => return access,
                    Err(e) => assert!(e.is_unavailable(), "{e:?}"),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("the IdP is up: verified well within the 5 s cooldown");
        assert_eq!(access.subject(), Some("alice"));
        assert_eq!(stub.fetches(), before + 1);
    })
    .await;
}

/// Once a key set is held, the cooldown rule applies again (one refetch per cooldown).
#[tokio::test]
async fn after_a_key_set_is_held_refetches_wait_the_cooldown() {
    bounded(async {
        let d = dev();
        let stub = Stub::start(d.jwks_json()).await;
        let v = builder(&stub).prefetch(false).build().unwrap();
        let t = token(&d, DevAlg::RS256);
        v.verify(&t).await.unwrap();
        assert_eq!(stub.fetches(), 1);
        stub.set_mode(Mode::Down);
        // Unknown kids: the first refetch was the initial fetch moments ago, so none now.
        let other = DevIssuer::generate_fresh(ISS);
        for _ in 0..3 {
            let _ = v.verify(&token(&other, DevAlg::RS256)).await;
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        let _ = v.verify(&token(&other, DevAlg::RS256)).await;
        assert_eq!(
            stub.fetches(),
            1,
            "no backoff-paced refetch once keys are held"
        );
        // The held key still verifies.
        v.verify(&t).await.unwrap();
    })
    .await;
}

/// A cached token stops verifying when its key set passes the stale bound, like an uncached one.
#[tokio::test]
async fn token_cache_hits_stop_past_the_stale_bound() {
    let m = MetricsCapture::new();
    let _recording = m.install();
    bounded(async {
        let d = dev();
        let stub = Stub::start(d.jwks_json()).await;
        let v = builder(&stub)
            .prefetch(false)
            .jwks_default_ttl(Duration::ZERO)
            .jwks_ttl_bounds(Duration::ZERO, Duration::ZERO)
            .jwks_max_stale(Duration::from_millis(1500))
            .build()
            .unwrap();
        let t = token(&d, DevAlg::RS256);
        let fetched = Instant::now();
        v.verify(&t).await.unwrap();
        // Well within the stale bound (1.5 s): answered from the cache.
        v.verify(&t).await.unwrap();
        assert_eq!(
            m.counter(CACHE_LOOKUPS, &[("cache", "jwt"), ("result", "hit")]),
            1,
            "the second call is a cache hit: {m:?}"
        );
        stub.set_mode(Mode::Down);
        // Sleeping only ever overshoots: past the stale bound for sure.
        tokio::time::sleep_until((fetched + Duration::from_millis(1600)).into()).await;
        let err = v.verify(&t).await.unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
        // The bearer layer's lookup answers nothing either.
        assert!(v.verify_cached(t.as_bytes()).is_none());
    })
    .await;
}

/// Huge timing settings saturate instead of overflowing `Instant` arithmetic.
#[tokio::test]
async fn huge_jwks_timings_do_not_panic() {
    bounded(async {
        let d = dev();
        let stub = Stub::start(d.jwks_json()).await;
        let v = builder(&stub)
            .prefetch(false)
            .jwks_cooldown(Duration::MAX)
            .jwks_default_ttl(Duration::MAX)
            .jwks_ttl_bounds(Duration::MAX, Duration::MAX)
            .jwks_max_stale(Duration::MAX)
            .build()
            .unwrap();
        let access = v.verify(&token(&d, DevAlg::RS256)).await.unwrap();
        assert_eq!(access.subject(), Some("alice"));
        assert!(v.is_ready());
    })
    .await;
}

#[tokio::test]
async fn connection_refused_gives_unavailable() {
    bounded(async {
        // A port nobody serves: below the ephemeral range, so no parallel `bind(:0)` takes it.
        let addr = format!("127.0.0.1:{}", mcp_auth_idp_harness::ports::free_port());
        let v = JwtVerifier::builder()
            .jwks_uri(format!("http://{addr}/jwks"))
            .issuer(ISS)
            .audience(AUD)
            .http_client(fast_client())
            .build()
            .unwrap();
        let t = token(&dev(), DevAlg::RS256);
        assert!(v.verify(&t).await.unwrap_err().is_unavailable());
    })
    .await;
}

#[tokio::test]
async fn endpoint_down_mid_run_serves_stale_keys_within_the_bound_then_503() {
    let m = MetricsCapture::new();
    let _recording = m.install();
    bounded(async {
        let d = dev();
        let stub = Stub::start(d.jwks_json()).await;
        let v = builder(&stub)
            .jwks_ttl_bounds(Duration::from_millis(100), Duration::from_millis(100))
            .jwks_max_stale(Duration::from_millis(2000))
            .jwks_cooldown(Duration::from_millis(50))
            .token_cache(false, 0)
            .build()
            .unwrap();
        let t = token(&d, DevAlg::ES256);
        let fetched = Instant::now();
        v.verify(&t).await.unwrap();
        stub.set_mode(Mode::Down);
        tokio::time::sleep(Duration::from_millis(300)).await;
        // TTL over, endpoint failing: the old keys keep serving (the stale bound leaves more
        // than a second of margin).
        v.verify(&t).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        v.verify(&t).await.unwrap();
        assert!(
            m.counter(JWKS_FETCHES, &[("result", "error")]) >= 1,
            "{m:?}"
        );
        assert!(v.is_ready());
        // Past TTL + stale bound: unavailable, never accepted, never invalid.
        tokio::time::sleep_until((fetched + Duration::from_millis(2200)).into()).await;
        let err = v.verify(&t).await.unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
        assert!(!v.is_ready());
    })
    .await;
}

#[tokio::test]
async fn hanging_endpoint_times_out_into_unavailable() {
    bounded(async {
        let d = dev();
        let stub = Stub::start(d.jwks_json()).await;
        stub.set_mode(Mode::Hang);
        let v = builder(&stub).prefetch(false).build().unwrap();
        // The stub hangs for an hour; the client's 300 ms timeout ends the one fetch. The bound
        // only separates "timed out" from "hung" and leaves a loaded machine ample room.
        let err =
            tokio::time::timeout(Duration::from_secs(15), v.verify(&token(&d, DevAlg::RS256)))
                .await
                .expect("the fetch timed out instead of hanging")
                .unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
        assert_eq!(stub.fetches(), 1);
    })
    .await;
}

#[tokio::test]
async fn garbage_is_unavailable_and_never_evicts_good_keys() {
    let m = MetricsCapture::new();
    let _recording = m.install();
    bounded(async {
        let d = dev();
        let stub = Stub::start(d.jwks_json()).await;
        for garbage in [
            "not json",
            r#"{"keys": "nope"}"#,
            r#"{"keys": []}"#,
            "[1,2]",
        ] {
            stub.set_mode(Mode::Garbage(garbage));
            let v = builder(&stub).prefetch(false).build().unwrap();
            let err = v.verify(&token(&d, DevAlg::RS256)).await.unwrap_err();
            assert!(err.is_unavailable(), "{garbage}: {err:?}");
        }
        // Good keys first, then garbage after the TTL: keys stay.
        stub.set_mode(Mode::Ok);
        let v = builder(&stub)
            .jwks_ttl_bounds(Duration::from_millis(50), Duration::from_millis(50))
            .jwks_cooldown(Duration::from_millis(10))
            .token_cache(false, 0)
            .build()
            .unwrap();
        let t = token(&d, DevAlg::RS256);
        v.verify(&t).await.unwrap();
        let failed_before = m.counter(JWKS_FETCHES, &[("result", "error")]);
        stub.set_mode(Mode::Garbage(r#"{"keys":[{"kty":"oct","k":"AAAA"}]}"#));
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Verify until a refresh attempt has failed on the garbage (bounded by `bounded`): the
        // good keys keep verifying throughout.
        while m.counter(JWKS_FETCHES, &[("result", "error")]) == failed_before {
            v.verify(&t).await.unwrap();
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        assert!(
            m.counter(JWKS_FETCHES, &[("result", "error")]) > failed_before,
            "the refetches after the TTL failed: {m:?}"
        );
        v.verify(&t).await.unwrap();
        assert_eq!(v.jwks_key_count(), 3);
    })
    .await;
}

#[tokio::test]
async fn rotation_new_key_works_and_removed_key_and_its_cached_tokens_stop() {
    let m = MetricsCapture::new();
    let _recording = m.install();
    bounded(async {
        let old = dev();
        let new = DevIssuer::generate_fresh(ISS);
        let stub = Stub::start(old.jwks_json()).await;
        let v = builder(&stub)
            .jwks_cooldown(Duration::from_millis(100))
            .build()
            .unwrap();
        let old_token = token(&old, DevAlg::RS256);
        let new_token = token(&new, DevAlg::RS256);
        v.verify(&old_token).await.unwrap();
        v.verify(&old_token).await.unwrap();
        assert_eq!(
            m.counter(CACHE_LOOKUPS, &[("cache", "jwt"), ("result", "hit")]),
            1,
            "second verify is a cache hit: {m:?}"
        );

        // Rotate at a chosen moment.
        stub.set_jwks(new.jwks_json());
        tokio::time::sleep(Duration::from_millis(150)).await;
        let access = v.verify(&new_token).await.unwrap();
        assert_eq!(access.subject(), Some("alice"));
        // The old key is gone: its token (cached a moment ago) no longer verifies.
        assert_eq!(
            invalid(v.verify(&old_token).await),
            InvalidToken::UnknownKey
        );
        assert!(v.verify_cached(old_token.as_bytes()).is_none());
        assert_eq!(v.jwks_key_count(), 3);
    })
    .await;
}

#[tokio::test]
async fn key_replaced_under_the_same_kid_is_picked_up_after_a_bad_signature() {
    bounded(async {
        let old = dev();
        let new = DevIssuer::generate_fresh(ISS);
        let stub = Stub::start(old.jwks_json()).await;
        let v = builder(&stub)
            .jwks_cooldown(Duration::from_millis(100))
            .build()
            .unwrap();
        v.prefetch().await.unwrap();
        // The new key is published under the old kid (bad practice, but it happens).
        let mut doc = new.jwks_json();
        doc["keys"][1]["kid"] = json!(old.kid(DevAlg::ES256));
        stub.set_jwks(doc);
        tokio::time::sleep(Duration::from_millis(150)).await;
        let t = new.mint(
            TokenSpec::new("bob")
                .audience(AUD)
                .alg(DevAlg::ES256)
                .kid(Some(old.kid(DevAlg::ES256))),
        );
        assert_eq!(v.verify(&t).await.unwrap().subject(), Some("bob"));
    })
    .await;
}

#[tokio::test]
async fn unusable_keys_are_skipped_not_fatal() {
    bounded(async {
        let d = dev();
        let mut doc = d.jwks_json();
        let keys = doc["keys"].as_array_mut().unwrap();
        keys.push(json!({"kty": "oct", "kid": "sym", "k": URL_SAFE_NO_PAD.encode([1u8; 32])}));
        keys.push(json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}));
        keys.push(json!({"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"}));
        keys.push(json!({"kty": "RSA", "kid": "short", "n": "AQAB", "e": "AQAB"}));
        keys.push(json!("not even an object"));
        let stub = Stub::start(doc).await;
        let v = builder(&stub).build().unwrap();
        for alg in DevAlg::ALL {
            v.verify(&token(&d, alg)).await.unwrap();
        }
        assert_eq!(v.jwks_key_count(), 3);
    })
    .await;
}

#[tokio::test]
async fn cache_control_ttl_drives_refresh_within_bounds() {
    bounded(async {
        let d = dev();
        let stub = Stub::start(d.jwks_json()).await;
        *stub.state.cache_control.lock().unwrap() = Some("public, max-age=100000".into());
        let v = builder(&stub)
            .jwks_ttl_bounds(Duration::from_millis(50), Duration::from_millis(200))
            .jwks_cooldown(Duration::from_millis(10))
            .token_cache(false, 0)
            .build()
            .unwrap();
        let t = token(&d, DevAlg::EdDSA);
        v.verify(&t).await.unwrap();
        assert_eq!(stub.fetches(), 1);
        // max-age far beyond the upper bound: clamped, so a refresh happens after ~200 ms.
        tokio::time::sleep(Duration::from_millis(300)).await;
        v.verify(&t).await.unwrap();
        // The refresh may run in the background: wait for it (bounded), then check there was
        // exactly one.
        tokio::time::timeout(Duration::from_secs(10), async {
            while stub.fetches() < 2 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("a refresh after the clamped TTL");
        assert_eq!(stub.fetches(), 2);
    })
    .await;
}

#[tokio::test]
async fn discovery_requires_the_exact_issuer() {
    bounded(async {
        let stub = Stub::start(json!({})).await;
        let d = DevIssuer::generate(stub.base.clone());
        stub.set_jwks(d.jwks_json());
        *stub.state.discovery_issuer.lock().unwrap() = Some(stub.base.clone());
        let v = JwtVerifier::builder()
            .issuer(stub.base.clone())
            .audience(AUD)
            .http_client(fast_client())
            .build()
            .unwrap();
        let t = token(&d, DevAlg::RS256);
        assert_eq!(
            v.verify(&t).await.unwrap().issuer(),
            Some(stub.base.as_str())
        );

        // A document naming another issuer is refused (RFC 8414 §3.3).
        *stub.state.discovery_issuer.lock().unwrap() = Some("https://evil.example".into());
        let v = JwtVerifier::builder()
            .issuer(stub.base.clone())
            .audience(AUD)
            .http_client(fast_client())
            .build()
            .unwrap();
        assert!(v.verify(&t).await.unwrap_err().is_unavailable());
    })
    .await;
}

#[tokio::test]
async fn kidless_token_needs_exactly_one_fitting_key() {
    bounded(async {
        let d = dev();
        let other = DevIssuer::generate_fresh(ISS);
        let stub = Stub::start(d.jwks_json()).await;
        let v = builder(&stub).build().unwrap();
        let t = d.mint(
            TokenSpec::new("a")
                .audience(AUD)
                .alg(DevAlg::ES256)
                .kid(None),
        );
        assert!(v.verify(&t).await.is_ok());
        // Two ES256 keys and no kid: ambiguous.
        let mut doc = d.jwks_json();
        doc["keys"]
            .as_array_mut()
            .unwrap()
            .push(other.jwks_json()["keys"][1].clone());
        let stub2 = Stub::start(doc).await;
        let v2 = builder(&stub2).build().unwrap();
        assert_eq!(invalid(v2.verify(&t).await), InvalidToken::UnknownKey);
    })
    .await;
}
