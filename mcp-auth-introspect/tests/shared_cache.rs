//! The shared (second-level) introspection cache on a real Redis, against the real test IdP:
//! two verifiers on one store stand for two replicas.

use std::sync::Arc;
use std::time::Duration;

use mcp_auth_core::TokenVerifier;
use mcp_auth_core::store::{RedisStore, Store};
use mcp_auth_core::telemetry::{CACHE_LOOKUPS, STORE_ERRORS};
use mcp_auth_idp_harness::metrics::MetricsCapture;
use mcp_auth_idp_harness::redis::RedisServer;
use mcp_auth_idp_harness::{ResourceSpec, TestIdp};
use mcp_auth_introspect::IntrospectionVerifier;

const RESOURCE: &str = "http://127.0.0.1:9/mcp";

fn store(redis: &RedisServer) -> Arc<dyn Store> {
    Arc::new(
        RedisStore::builder(redis.url())
            .unreachable_backoff(Duration::from_millis(20))
            .build()
            .unwrap(),
    )
}

fn replica(idp: &TestIdp, store: Arc<dyn Store>) -> IntrospectionVerifier {
    let (id, secret) = idp.introspection_client();
    IntrospectionVerifier::builder()
        .endpoint(idp.introspection_endpoint())
        .issuer(idp.issuer())
        .client_secret_basic(id, secret)
        .resource_url(RESOURCE)
        .cache_ttl(Duration::from_secs(60))
        .store(store)
        .build()
        .unwrap()
}

async fn keys(redis: &RedisServer) -> Vec<String> {
    let raw = redis.command(&["KEYS", "*"]).await.unwrap();
    raw.lines()
        .filter(|l| l.starts_with("mcp-auth"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_process_entry_filled_from_the_store_never_outlives_the_store_entry() {
    let m = MetricsCapture::new();
    let _recording = m.install();
    let redis = RedisServer::start().await.unwrap();
    let idp = TestIdp::start(vec![ResourceSpec::opaque(RESOURCE, &["todo:read"])])
        .await
        .unwrap();
    let a = replica(&idp, store(&redis));
    let b = replica(&idp, store(&redis));
    let token = idp
        .client_credentials(RESOURCE, "todo:read")
        .await
        .unwrap()
        .access_token;
    let n0 = idp.introspection_count().await.unwrap();
    a.verify(&token).await.unwrap();
    assert_eq!(idp.introspection_count().await.unwrap() - n0, 1);
    let k = keys(&redis).await;
    assert_eq!(k.len(), 1, "{k:?}");
    assert!(!k[0].contains(&token));
    // TTL never past the configured cache TTL (nor exp).
    let pttl: i64 = redis.command(&["PTTL", &k[0]]).await.unwrap()[1..]
        .trim()
        .parse()
        .unwrap();
    assert!(pttl > 0 && pttl <= 60_000, "{pttl}");

    // The store entry has little time left: replica B takes it, and keeps it no longer.
    redis.command(&["PEXPIRE", &k[0], "400"]).await.unwrap();
    b.verify(&token).await.unwrap();
    assert_eq!(
        idp.introspection_count().await.unwrap() - n0,
        1,
        "B answered from the store"
    );
    let store_lookups = |result| {
        m.counter(
            CACHE_LOOKUPS,
            &[
                ("cache", "introspection"),
                ("layer", "store"),
                ("result", result),
            ],
        )
    };
    // A missed the store (and filled it), B found the entry there.
    assert_eq!(
        (store_lookups("miss"), store_lookups("hit")),
        (1, 1),
        "{m:?}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while idp.introspection_count().await.unwrap() - n0 < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "B kept the entry past the store's TTL (its own cache TTL is 60 s)"
        );
        b.verify(&token).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn unusable_store_entries_and_a_store_down_fall_back_to_the_idp() {
    let m = MetricsCapture::new();
    let _recording = m.install();
    let mut redis = RedisServer::start().await.unwrap();
    let idp = TestIdp::start(vec![ResourceSpec::opaque(RESOURCE, &["todo:read"])])
        .await
        .unwrap();
    let a = replica(&idp, store(&redis));
    let token = idp
        .client_credentials(RESOURCE, "todo:read")
        .await
        .unwrap()
        .access_token;
    a.verify(&token).await.unwrap();
    let k = keys(&redis).await.remove(0);

    // A value that does not pass the local checks (another audience) is never trusted: B asks
    // the IdP and accepts the token on its answer.
    let forged =
        r#"{"active":true,"sub":"mallory","aud":"https://elsewhere.example","exp":9999999999}"#;
    redis
        .command(&["SET", &k, forged, "PX", "60000"])
        .await
        .unwrap();
    let b = replica(&idp, store(&redis));
    let n0 = idp.introspection_count().await.unwrap();
    let t = b.verify(&token).await.unwrap();
    assert_ne!(t.subject(), Some("mallory"));
    assert_eq!(idp.introspection_count().await.unwrap() - n0, 1);

    // Store down: a valid token is still accepted (IdP fallback), an unknown one still refused.
    redis.stop().await.unwrap();
    let c = replica(&idp, store(&redis));
    let t2 = idp
        .client_credentials(RESOURCE, "todo:read")
        .await
        .unwrap()
        .access_token;
    let errors_before = m.counter(STORE_ERRORS, &[("store", "redis")]);
    c.verify(&t2).await.unwrap();
    assert!(
        m.counter(STORE_ERRORS, &[("store", "redis")]) > errors_before,
        "the failed store calls are counted: {m:?}"
    );
    assert!(c.verify("not-a-token-the-idp-issued").await.is_err());
}

#[tokio::test]
async fn entries_are_namespaced_by_client_resource_and_prefix() {
    let redis = RedisServer::start().await.unwrap();
    let other = "http://127.0.0.1:10/mcp";
    let idp = TestIdp::start(vec![
        ResourceSpec::opaque(RESOURCE, &["todo:read"]),
        ResourceSpec::opaque(other, &["todo:read"]),
    ])
    .await
    .unwrap();
    let (id, secret) = idp.introspection_client();
    let s = store(&redis);
    let for_resource = |r: &str, prefix: &str| {
        IntrospectionVerifier::builder()
            .endpoint(idp.introspection_endpoint())
            .issuer(idp.issuer())
            .client_secret_basic(id, secret)
            .resource_url(r)
            .store(s.clone())
            .store_prefix(prefix)
            .build()
            .unwrap()
    };
    let token = idp
        .client_credentials(RESOURCE, "todo:read")
        .await
        .unwrap()
        .access_token;
    for_resource(RESOURCE, "mcp-auth")
        .verify(&token)
        .await
        .unwrap();
    // The other resource's verifier refuses the token and never reads RESOURCE's entry.
    assert!(
        for_resource(other, "mcp-auth")
            .verify(&token)
            .await
            .is_err()
    );
    for_resource(RESOURCE, "mcp-auth-staging")
        .verify(&token)
        .await
        .unwrap();
    let k = keys(&redis).await;
    assert_eq!(k.len(), 2, "{k:?}");
    assert!(
        k.iter()
            .any(|k| k.starts_with("mcp-auth-staging:introspect:v1:"))
    );
}

/// A TLS store that refuses the replica's credentials (a wrong ACL password): every token is
/// still checked with the IdP, never refused because of the store, and the refusals are counted
/// as `credentials` store errors.
#[tokio::test]
async fn a_store_refusing_the_credentials_falls_back_to_the_idp() {
    let m = MetricsCapture::new();
    let _recording = m.install();
    let redis = RedisServer::start_tls("mcp", "right-pw").await.unwrap();
    let idp = TestIdp::start(vec![ResourceSpec::opaque(RESOURCE, &["todo:read"])])
        .await
        .unwrap();
    let wrong = Arc::new(
        RedisStore::builder(format!(
            "rediss://mcp:wrong-pw@127.0.0.1:{}/0",
            redis.port()
        ))
        .ca_certificates_pem(redis.ca_pem().unwrap().as_bytes().to_vec())
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap(),
    );
    let a = replica(&idp, wrong);
    let token = idp
        .client_credentials(RESOURCE, "todo:read")
        .await
        .unwrap()
        .access_token;
    let n0 = idp.introspection_count().await.unwrap();
    let t = a.verify(&token).await.unwrap();
    assert_eq!(t.scopes(), ["todo:read"]);
    assert_eq!(idp.introspection_count().await.unwrap() - n0, 1);
    assert!(a.verify("not-a-token-the-idp-issued").await.is_err());
    let refused = m.counter(
        STORE_ERRORS,
        &[("store", "redis"), ("error", "credentials")],
    );
    assert!(refused >= 1, "{m:?}");
    assert_eq!(
        m.counter(STORE_ERRORS, &[("error", "unavailable")]),
        0,
        "{m:?}"
    );
}
