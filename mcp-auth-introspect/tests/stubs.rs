//! Fault drills and caching behaviour against local introspection stubs.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine as _;
use common::{AUD, Stub, active, bounded, now};
use mcp_auth_core::telemetry::{CACHE_LOOKUPS, IDP_REQUESTS};
use mcp_auth_core::{InvalidToken, TokenVerifier, VerifyError};
use mcp_auth_idp_harness::metrics::MetricsCapture;
use mcp_auth_introspect::{IntrospectionVerifier, IntrospectionVerifierBuilder};
use serde_json::json;

fn builder(stub: &Stub) -> IntrospectionVerifierBuilder {
    IntrospectionVerifier::builder()
        .endpoint(stub.url())
        .issuer("https://issuer.test")
        .client_secret_basic("rs-client", "rs secret:1")
        .audience(AUD)
        .timeout(Duration::from_secs(2))
}

fn status_stub(
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: &str,
) -> impl Fn(usize, &axum::http::HeaderMap, &str) -> common::Reply + Send + Sync + 'static {
    let body = body.to_owned();
    move |_, _, _| {
        (
            StatusCode::from_u16(status).unwrap(),
            headers.clone(),
            body.clone(),
        )
    }
}

/// The process cache's lookups counted so far with `result` (`hit` or `miss`).
fn process_lookups(m: &MetricsCapture, result: &str) -> u64 {
    m.counter(
        CACHE_LOOKUPS,
        &[
            ("cache", "introspection"),
            ("layer", "process"),
            ("result", result),
        ],
    )
}

async fn verify(
    v: &IntrospectionVerifier,
    token: &str,
) -> Result<mcp_auth_core::AccessToken, VerifyError> {
    bounded(v.verify(token)).await
}

#[tokio::test]
async fn active_token_maps_and_request_is_rfc7662_with_basic_auth() {
    let stub = Stub::json(active()).await;
    let v = builder(&stub).build().unwrap();
    assert!(!v.is_ready());
    let t = verify(&v, "opaque-token-1").await.unwrap();
    assert!(v.is_ready());
    assert_eq!(t.subject(), Some("alice"));
    assert_eq!(t.client_id(), Some("app"));
    assert_eq!(t.scopes(), ["todo:read", "todo:write"]);
    assert_eq!(t.audiences(), [AUD]);

    let seen = stub.seen();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    let form: Vec<(String, String)> = url::form_urlencoded::parse(req.body.as_bytes())
        .into_owned()
        .collect();
    assert!(form.contains(&("token".into(), "opaque-token-1".into())));
    assert!(form.contains(&("token_type_hint".into(), "access_token".into())));
    assert!(!form.iter().any(|(k, _)| k == "client_secret"));
    assert_eq!(
        req.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(req.headers["accept"], "application/json");
    let basic = req.headers["authorization"].to_str().unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic.strip_prefix("Basic ").unwrap())
        .unwrap();
    assert_eq!(
        String::from_utf8(decoded).unwrap(),
        "rs-client:rs+secret%3A1"
    );
}

#[tokio::test]
async fn client_secret_post_and_bearer_credentials() {
    let stub = Stub::json(active()).await;
    let post = builder(&stub)
        .client_secret_post("rs-client", "s&=1")
        .build()
        .unwrap();
    verify(&post, "tok-a").await.unwrap();
    let bearer = builder(&stub)
        .bearer_credential("api-key-9")
        .build()
        .unwrap();
    verify(&bearer, "tok-b").await.unwrap();
    let seen = stub.seen();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(seen[0].body.as_bytes())
        .into_owned()
        .collect();
    assert!(form.contains(&("client_id".into(), "rs-client".into())));
    assert!(form.contains(&("client_secret".into(), "s&=1".into())));
    assert!(seen[0].headers.get("authorization").is_none());
    assert_eq!(seen[1].headers["authorization"], "Bearer api-key-9");
    assert!(!seen[1].body.contains("client_id"));
}

#[tokio::test]
async fn endpoint_down_is_unavailable() {
    let m = MetricsCapture::new();
    let _recording = m.install();
    // A port nobody serves: below the ephemeral range, so no `bind(:0)` of a parallel test takes it.
    let addr = format!("127.0.0.1:{}", mcp_auth_idp_harness::ports::free_port());
    let v = IntrospectionVerifier::builder()
        .endpoint(format!("http://{addr}/introspect"))
        .issuer("https://issuer.test")
        .client_secret_basic("a", "b")
        .audience(AUD)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let err = verify(&v, "tok").await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert_eq!(err.status(), 503);
    assert!(!v.is_ready());
    let introspections = |result| {
        m.counter(
            IDP_REQUESTS,
            &[("kind", "introspection"), ("result", result)],
        )
    };
    assert_eq!(
        (introspections("ok"), introspections("error")),
        (0, 1),
        "{m:?}"
    );
}

#[tokio::test]
async fn hanging_endpoint_times_out_as_unavailable() {
    let stub = Stub::start(Duration::from_secs(20), status_stub(200, vec![], "{}")).await;
    let v = builder(&stub)
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    // The stub answers after 20 s; the 300 ms timeout ends the one call well before that. The
    // bound only separates "timed out" from "waited for the answer", with room for a loaded
    // machine.
    let err = tokio::time::timeout(Duration::from_secs(15), verify(&v, "tok"))
        .await
        .expect("the call timed out instead of waiting for the stub")
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert_eq!(stub.calls(), 1);
}

#[tokio::test]
async fn server_errors_and_throttling_are_unavailable_with_retry_after() {
    let s500 = Stub::start(Duration::ZERO, status_stub(500, vec![], "boom")).await;
    let err = verify(&builder(&s500).build().unwrap(), "t")
        .await
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::Unavailable { retry_after: None }),
        "{err:?}"
    );

    let s429 = Stub::start(
        Duration::ZERO,
        status_stub(429, vec![("retry-after", "7".into())], ""),
    )
    .await;
    let err = verify(&builder(&s429).build().unwrap(), "t")
        .await
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::Unavailable { retry_after: Some(d) } if d == Duration::from_secs(7)),
        "{err:?}"
    );

    let s503 = Stub::start(
        Duration::ZERO,
        status_stub(503, vec![("retry-after", "99999".into())], ""),
    )
    .await;
    let err = verify(&builder(&s503).build().unwrap(), "t")
        .await
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::Unavailable { retry_after: Some(d) } if d == Duration::from_secs(300)),
        "an IdP cannot make us send an absurd Retry-After: {err:?}"
    );
}

#[tokio::test]
async fn our_credentials_refused_is_an_internal_configuration_error() {
    for status in [401u16, 403] {
        let stub = Stub::start(
            Duration::ZERO,
            status_stub(status, vec![], r#"{"error":"invalid_client"}"#),
        )
        .await;
        let err = verify(&builder(&stub).build().unwrap(), "t")
            .await
            .unwrap_err();
        match &err {
            VerifyError::Internal(msg) => {
                assert!(msg.contains("MCP_AUTH_INTROSPECT_CLIENT_ID"), "{msg}");
                assert!(msg.contains("MCP_AUTH_INTROSPECT_CLIENT_SECRET"), "{msg}");
            }
            other => panic!("{status}: {other:?}"),
        }
        assert_eq!(err.status(), 500);
    }
    // RFC 6749 §5.2 allows `invalid_client` with 400 as well.
    let stub = Stub::start(
        Duration::ZERO,
        status_stub(400, vec![], r#"{"error":"invalid_client"}"#),
    )
    .await;
    let err = verify(&builder(&stub).build().unwrap(), "t")
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::Internal(_)), "{err:?}");
}

#[tokio::test]
async fn idp_400_and_inactive_are_invalid_tokens() {
    let s400 = Stub::start(
        Duration::ZERO,
        status_stub(400, vec![], r#"{"error":"invalid_request"}"#),
    )
    .await;
    let err = verify(&builder(&s400).build().unwrap(), "t")
        .await
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::Invalid(InvalidToken::Inactive)),
        "{err:?}"
    );
    assert_eq!(err.status(), 401);

    let inactive = Stub::json(json!({"active": false})).await;
    let err = verify(&builder(&inactive).build().unwrap(), "t")
        .await
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::Invalid(InvalidToken::Inactive)),
        "{err:?}"
    );
}

#[tokio::test]
async fn active_missing_or_not_boolean_fails_closed() {
    for body in [
        json!({"sub": "alice", "aud": AUD}),
        json!({"active": "true", "sub": "alice", "aud": AUD}),
        json!({"active": 1, "sub": "alice", "aud": AUD}),
    ] {
        let stub = Stub::json(body.clone()).await;
        let err = verify(&builder(&stub).build().unwrap(), "t")
            .await
            .unwrap_err();
        assert!(
            matches!(err, VerifyError::Invalid(InvalidToken::Inactive)),
            "{body}: {err:?}"
        );
    }
}

#[tokio::test]
async fn garbage_and_oversized_bodies_are_unavailable_and_not_cached() {
    let stub = Stub::start(
        Duration::ZERO,
        status_stub(200, vec![], "<html>proxy error</html>"),
    )
    .await;
    let v = builder(&stub).build().unwrap();
    for _ in 0..2 {
        let err = verify(&v, "t").await.unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
    }
    assert_eq!(stub.calls(), 2, "errors are never cached");

    let mut big = active();
    big["padding"] = json!("x".repeat(10_000));
    let stub = Stub::json(big).await;
    let v = builder(&stub).max_response_bytes(4096).build().unwrap();
    assert!(verify(&v, "t").await.unwrap_err().is_unavailable());
}

#[tokio::test]
async fn redirect_is_not_followed() {
    let target = Stub::json(active()).await;
    let location = format!("http://localhost:{}/introspect", target.addr.port());
    let stub = Stub::start(
        Duration::ZERO,
        status_stub(307, vec![("location", location)], ""),
    )
    .await;
    let v = builder(&stub).build().unwrap();
    let err = verify(&v, "t").await.unwrap_err();
    match &err {
        VerifyError::Internal(msg) => assert!(msg.contains("MCP_AUTH_INTROSPECT_URL"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(stub.calls(), 1);
    assert_eq!(
        target.calls(),
        0,
        "the redirect target must never see our credentials"
    );
}

#[tokio::test]
async fn other_checks_apply_to_active_responses() {
    let mut other_aud = active();
    other_aud["aud"] = json!("http://127.0.0.1:9999/other");
    let stub = Stub::json(other_aud).await;
    let err = verify(&builder(&stub).build().unwrap(), "t")
        .await
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::Invalid(InvalidToken::Audience)),
        "{err:?}"
    );

    let mut refresh = active();
    refresh["token_type"] = json!("refresh_token");
    let stub = Stub::json(refresh).await;
    let err = verify(&builder(&stub).build().unwrap(), "t")
        .await
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::Invalid(InvalidToken::RefreshToken)),
        "{err:?}"
    );

    let stub = Stub::json(active()).await;
    let err = verify(
        &builder(&stub)
            .issuer("https://other-issuer.test")
            .build()
            .unwrap(),
        "t",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, VerifyError::Invalid(InvalidToken::Issuer)),
        "{err:?}"
    );
}

#[tokio::test]
async fn one_thousand_concurrent_verifications_of_one_token_make_one_call() {
    let m = MetricsCapture::new();
    let _recording = m.install();
    let text = active().to_string();
    let stub = Stub::start(Duration::from_millis(200), move |_, _, _| {
        (StatusCode::OK, vec![], text.clone())
    })
    .await;
    let v = Arc::new(builder(&stub).build().unwrap());
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let v = v.clone();
        set.spawn(async move { v.verify("shared-token").await });
    }
    let results = bounded(set.join_all()).await;
    assert!(results.iter().all(|r| r.is_ok()));
    assert_eq!(stub.calls(), 1);
    // Later requests are cache hits.
    verify(&v, "shared-token").await.unwrap();
    assert_eq!(stub.calls(), 1);
    let lookups = |result| process_lookups(&m, result);
    // Every concurrent first request missed (they shared one call); the later one hit.
    assert_eq!((lookups("miss"), lookups("hit")), (1000, 1), "{m:?}");
    assert_eq!(
        m.counter(IDP_REQUESTS, &[("kind", "introspection"), ("result", "ok")]),
        1
    );
}

#[tokio::test]
async fn without_cache_every_request_is_introspected() {
    let stub = Stub::json(active()).await;
    let v = Arc::new(
        builder(&stub)
            .cache_ttl(Duration::ZERO)
            .max_concurrent_introspections(100)
            .build()
            .unwrap(),
    );
    for _ in 0..10 {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..100 {
            let v = v.clone();
            set.spawn(async move { v.verify("same-token").await });
        }
        let results = bounded(set.join_all()).await;
        assert!(results.iter().all(|r| r.is_ok()));
    }
    assert_eq!(stub.calls(), 1000);
}

#[tokio::test]
async fn random_bearer_flood_is_bounded_by_the_semaphore() {
    let m = MetricsCapture::new();
    let _recording = m.install();
    let stub = Stub::start(
        Duration::from_millis(200),
        status_stub(200, vec![], r#"{"active":false}"#),
    )
    .await;
    let v = Arc::new(
        builder(&stub)
            .max_concurrent_introspections(8)
            .build()
            .unwrap(),
    );
    let mut set = tokio::task::JoinSet::new();
    for i in 0..500 {
        let v = v.clone();
        set.spawn(async move { v.verify(&format!("random-{i}-{}", now())).await });
    }
    let results = bounded(set.join_all()).await;
    let unavailable = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                Err(VerifyError::Unavailable {
                    retry_after: Some(_)
                })
            )
        })
        .count();
    let inactive = results
        .iter()
        .filter(|r| matches!(r, Err(VerifyError::Invalid(InvalidToken::Inactive))))
        .count();
    assert_eq!(unavailable + inactive, 500);
    assert!(stub.max_in_flight() <= 8, "{}", stub.max_in_flight());
    assert!(stub.calls() >= 8 && stub.calls() < 500, "{}", stub.calls());
    let idp = |result| {
        m.counter(
            IDP_REQUESTS,
            &[("kind", "introspection"), ("result", result)],
        )
    };
    // Each refusal is counted as saturated, each call that went out as answered.
    assert_eq!(idp("saturated") as usize, unavailable, "{m:?}");
    assert_eq!(idp("ok") as usize, stub.calls());
}

#[tokio::test]
async fn cache_lifetime_never_passes_exp() {
    let mut body = active();
    body["exp"] = json!(now() + 2);
    let stub = Stub::json(body).await;
    let v = builder(&stub).leeway(Duration::ZERO).build().unwrap();
    verify(&v, "short-lived").await.unwrap();
    verify(&v, "short-lived").await.unwrap();
    assert_eq!(stub.calls(), 1);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let err = verify(&v, "short-lived").await.unwrap_err();
    assert!(
        matches!(err, VerifyError::Invalid(InvalidToken::Expired)),
        "{err:?}"
    );
    assert_eq!(stub.calls(), 2, "the entry expired with the token");
}

/// The bearer layer's synchronous lookup (`verify_cached`) answers only what `verify` accepted
/// and still would: never a refusal (even one cached negatively), a token that is not an RFC
/// 6750 `b64token` (the stub calls every token active, which no real IdP does), other bytes,
/// an expired token, or a verifier without a cache. A hit counts as one cache hit.
#[tokio::test]
async fn the_layers_cache_lookup_answers_only_for_verified_tokens() {
    let m = MetricsCapture::new();
    let _recording = m.install();
    let mut short = active();
    short["exp"] = json!(now() + 2);
    let (active_text, short_text) = (active().to_string(), short.to_string());
    let stub = Stub::start(Duration::ZERO, move |_, _, form| {
        let body = if form.contains("token=refused") {
            r#"{"active":false}"#.to_owned()
        } else if form.contains("token=short") {
            short_text.clone()
        } else {
            active_text.clone()
        };
        (StatusCode::OK, vec![], body)
    })
    .await;
    let v = builder(&stub)
        .leeway(Duration::ZERO)
        .negative_cache_ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    let hits = || process_lookups(&m, "hit");

    assert!(v.verify_cached(b"tok-1").is_none(), "nothing before verify");
    verify(&v, "tok-1").await.unwrap();
    let hit = v.verify_cached(b"tok-1").expect("answered after verify");
    assert_eq!(hit.subject(), Some("alice"));
    assert_eq!(hit.scopes(), ["todo:read", "todo:write"]);
    assert_eq!(hits(), 1);
    assert!(v.verify_cached(b"tok-2").is_none());
    assert!(v.verify_cached(b"tok-1=x").is_none());
    assert!(v.verify_cached(b"tok-").is_none());

    // `verify` takes any string its caller hands it; the lookup answers b64tokens only.
    verify(&v, "tok,1").await.unwrap();
    assert!(v.verify_cached(b"tok,1").is_none());

    // Refused, and that refusal cached: `verify` answers it, the lookup does not.
    assert!(verify(&v, "refused").await.unwrap_err().is_invalid());
    assert!(v.verify_cached(b"refused").is_none());
    assert_eq!(hits(), 1, "a lookup that answers nothing is no hit");
    assert!(verify(&v, "refused").await.unwrap_err().is_invalid());
    assert_eq!(hits(), 2, "verify's own hit");

    // Not past `exp`.
    verify(&v, "short").await.unwrap();
    assert!(v.verify_cached(b"short").is_some());
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert!(v.verify_cached(b"short").is_none(), "answered past exp");

    assert_eq!(hits(), 3, "{m:?}");
    assert_eq!(
        stub.calls(),
        4,
        "one call per token: the rest came from the cache"
    );

    let uncached = builder(&stub).cache_ttl(Duration::ZERO).build().unwrap();
    verify(&uncached, "tok-1").await.unwrap();
    assert!(uncached.verify_cached(b"tok-1").is_none());
}

#[tokio::test]
async fn revocation_shows_after_the_cache_ttl() {
    let active_text = active().to_string();
    let stub = Stub::start(Duration::ZERO, move |n, _, _| {
        let body = if n == 1 {
            active_text.clone()
        } else {
            r#"{"active":false}"#.to_owned()
        };
        (StatusCode::OK, vec![], body)
    })
    .await;
    let v = builder(&stub)
        .cache_ttl(Duration::from_secs(1))
        .build()
        .unwrap();
    verify(&v, "t").await.unwrap();
    verify(&v, "t").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let err = verify(&v, "t").await.unwrap_err();
    assert!(
        matches!(err, VerifyError::Invalid(InvalidToken::Inactive)),
        "{err:?}"
    );
    assert_eq!(stub.calls(), 2);
}

#[tokio::test]
async fn negative_cache_is_off_by_default_and_short_when_on() {
    let stub = Stub::json(json!({"active": false})).await;
    let v = builder(&stub).build().unwrap();
    for _ in 0..3 {
        assert!(verify(&v, "bad").await.unwrap_err().is_invalid());
    }
    assert_eq!(stub.calls(), 3);

    let stub = Stub::json(json!({"active": false})).await;
    // A TTL that leaves the three calls below more than a second on a loaded machine.
    let v = builder(&stub)
        .negative_cache_ttl(Duration::from_millis(1500))
        .build()
        .unwrap();
    let first = tokio::time::Instant::now();
    for _ in 0..3 {
        assert!(verify(&v, "bad").await.unwrap_err().is_invalid());
    }
    assert_eq!(stub.calls(), 1);
    tokio::time::sleep_until(first + Duration::from_millis(1800)).await;
    assert!(verify(&v, "bad").await.unwrap_err().is_invalid());
    assert_eq!(stub.calls(), 2);
}

/// Negative entries hold the IdP's `active: false` only: a refusal decided locally on an active
/// answer (here the audience) is not cached, so the next answer decides again.
#[tokio::test]
async fn only_inactive_answers_are_cached_negatively() {
    let mut other_audience = active();
    other_audience["aud"] = json!("https://other.example/mcp");
    let stub = Stub::json(other_audience).await;
    let v = builder(&stub)
        .negative_cache_ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    for _ in 0..3 {
        let err = verify(&v, "t").await.unwrap_err();
        assert!(
            matches!(err, VerifyError::Invalid(InvalidToken::Audience)),
            "{err:?}"
        );
    }
    assert_eq!(stub.calls(), 3);
}

#[tokio::test]
async fn errors_are_not_cached() {
    let active_text = active().to_string();
    let stub = Stub::start(Duration::ZERO, move |n, _, _| {
        if n == 1 {
            (StatusCode::BAD_GATEWAY, vec![], String::new())
        } else {
            (StatusCode::OK, vec![], active_text.clone())
        }
    })
    .await;
    let v = builder(&stub).build().unwrap();
    assert!(verify(&v, "t").await.unwrap_err().is_unavailable());
    verify(&v, "t").await.unwrap();
    assert_eq!(stub.calls(), 2);
}

#[tokio::test]
async fn endpoint_discovered_from_matching_issuer_metadata() {
    // The response names the stub's own origin as `iss`, known only once it listens.
    let body = Arc::new(std::sync::OnceLock::<String>::new());
    let reply = body.clone();
    let stub = Stub::start(Duration::ZERO, move |_, _, _| {
        (
            StatusCode::OK,
            vec![],
            reply.get().cloned().unwrap_or_default(),
        )
    })
    .await;
    let mut active = active();
    active["iss"] = json!(stub.origin());
    body.set(active.to_string()).unwrap();
    stub.set_metadata(json!({
        "issuer": stub.origin(),
        "introspection_endpoint": stub.url(),
    }));
    let v = IntrospectionVerifier::builder()
        .issuer(stub.origin())
        .client_secret_basic("rs", "s")
        .audience(AUD)
        .build()
        .unwrap();
    assert_eq!(bounded(v.discover()).await.unwrap().as_str(), stub.url());
    verify(&v, "t").await.unwrap();
    assert_eq!(stub.calls(), 1);
}

#[tokio::test]
async fn discovery_refuses_foreign_issuer_and_foreign_endpoint() {
    let elsewhere = Stub::json(active()).await;
    let stub = Stub::json(active()).await;
    stub.set_metadata(json!({
        "issuer": "http://evil.test",
        "introspection_endpoint": stub.url(),
    }));
    let v = IntrospectionVerifier::builder()
        .issuer(stub.origin())
        .client_secret_basic("rs", "s")
        .audience(AUD)
        .build()
        .unwrap();
    let err = verify(&v, "t").await.unwrap_err();
    assert!(
        matches!(&err, VerifyError::Internal(m) if m.contains("issuer")),
        "{err:?}"
    );
    assert_eq!(stub.calls(), 0);

    stub.set_metadata(json!({
        "issuer": stub.origin(),
        "introspection_endpoint": elsewhere.url(),
    }));
    let v = IntrospectionVerifier::builder()
        .issuer(stub.origin())
        .client_secret_basic("rs", "s")
        .audience(AUD)
        .build()
        .unwrap();
    let err = verify(&v, "t").await.unwrap_err();
    assert!(
        matches!(&err, VerifyError::Internal(m) if m.contains("MCP_AUTH_INTROSPECT_URL")),
        "{err:?}"
    );
    assert_eq!(
        elsewhere.calls(),
        0,
        "credentials go only to the issuer's origin"
    );
}

/// Random bearer strings (each new, so no cache helps) hold every shared introspection slot; a
/// token seen active before, whose cached result has expired, still gets through on the
/// reserve that never-seen tokens cannot use.
#[tokio::test]
async fn tokens_seen_active_keep_a_reserve_that_junk_cannot_take() {
    let m = MetricsCapture::new();
    let _recording = m.install();
    let arrived = Arc::new(tokio::sync::Notify::new());
    let notify = arrived.clone();
    let app = axum::Router::new().route(
        "/introspect",
        axum::routing::post(move |body: String| {
            let notify = notify.clone();
            async move {
                if body.contains("token=good") {
                    let mut a = active();
                    a["exp"] = json!(now() + 3600);
                    return a.to_string();
                }
                // Junk: hold the slot (the test ends long before).
                notify.notify_one();
                tokio::time::sleep(Duration::from_secs(20)).await;
                r#"{"active":false}"#.to_owned()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let v = Arc::new(
        IntrospectionVerifier::builder()
            .endpoint(format!("http://{addr}/introspect"))
            .issuer("https://issuer.test")
            .client_secret_basic("rs-client", "secret")
            .audience(AUD)
            .timeout(Duration::from_secs(30))
            .max_concurrent_introspections(1)
            .reserved_introspections_for_known_tokens(1)
            .build()
            .unwrap(),
    );
    verify(&v, "good").await.expect("active");
    // Its cached result expires (as after the cache TTL).
    v.invalidate_cache();
    let junk = {
        let v = v.clone();
        tokio::spawn(async move { v.verify("junk-1").await })
    };
    bounded(arrived.notified()).await;
    // The only shared slot is taken: a never-seen token is refused at once...
    let refused = verify(&v, "junk-2").await.unwrap_err();
    assert!(refused.is_unavailable(), "{refused:?}");
    // ...and a token seen active before is not.
    let again = verify(&v, "good")
        .await
        .expect("the reserve serves a known token");
    assert_eq!(again.subject(), Some("alice"));
    let saturated = m.counter(
        IDP_REQUESTS,
        &[("kind", "introspection"), ("result", "saturated")],
    );
    assert_eq!(saturated, 1, "{m:?}");
    junk.abort();
    server.abort();
}

/// A preset's claim rules hold for opaque tokens: an Entra-shaped response (scopes in `scp`,
/// app roles in `roles`, client in `appid`, tenant in `tid`) and a Cognito-shaped one (no `aud`,
/// client allowlist, `token_use`, resource-server scope prefix).
#[tokio::test]
async fn vendor_claim_rules_apply_to_introspection_responses() {
    let tid = "7b0e3c1a-0000-4000-8000-000000000001";
    let entra = |extra: serde_json::Value| {
        let mut v = json!({
            "active": true, "sub": "alice", "appid": "client-app", "scp": "todo.read",
            "roles": ["Todo.Admin"], "tid": tid, "aud": AUD, "exp": now() + 600,
            "iss": "https://issuer.test"
        });
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    let entra_rules = |stub: &Stub| {
        builder(stub)
            .scope_claims(["scp", "roles"])
            .client_id_claims(["azp", "appid"])
            .require_claim("tid", tid)
    };
    let stub = Stub::json(entra(json!({}))).await;
    let t = verify(&entra_rules(&stub).build().unwrap(), "opaque-entra")
        .await
        .unwrap();
    assert_eq!(t.scopes(), ["todo.read"]);
    assert_eq!(t.client_id(), Some("client-app"));
    // Without the rules, `appid` is no client and `scp` is read: the setters are what changed.
    let plain = verify(&builder(&stub).build().unwrap(), "opaque-entra")
        .await
        .unwrap();
    assert_eq!(plain.client_id(), None);

    let other_tenant = Stub::json(entra(json!({"tid": "another-tenant"}))).await;
    let err = verify(
        &entra_rules(&other_tenant).build().unwrap(),
        "opaque-entra-2",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, VerifyError::Invalid(InvalidToken::MissingClaim)),
        "{err:?}"
    );

    let cognito = |client: &str| {
        json!({
            "active": true, "sub": "bob", "client_id": client, "token_use": "access",
            "scope": "https://todo.example.com/todo.read openid", "exp": now() + 600,
            "iss": "https://issuer.test"
        })
    };
    let cognito_rules = |stub: &Stub| {
        builder(stub)
            .require_claim("token_use", "access")
            .strip_scope_prefix("https://todo.example.com/")
            .allowed_clients(["app-1"])
            .audience_optional_for_allowed_clients(true)
    };
    let ok = Stub::json(cognito("app-1")).await;
    let t = verify(&cognito_rules(&ok).build().unwrap(), "opaque-cognito")
        .await
        .unwrap();
    assert_eq!(t.scopes(), ["todo.read", "openid"]);
    let outsider = Stub::json(cognito("app-2")).await;
    let err = verify(
        &cognito_rules(&outsider).build().unwrap(),
        "opaque-cognito-2",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, VerifyError::Invalid(InvalidToken::Audience)),
        "{err:?}"
    );
    assert!(
        builder(&ok)
            .allowed_clients(Vec::<String>::new())
            .build()
            .is_err()
    );
}
