//! The Redis store against a real `redis-server` (started on a free loopback port, persistence
//! off, stopped by the test): TTLs, the atomic set-if-absent a DPoP replay cache relies on, typed
//! errors when the server is gone, and recovery without a new store.

mod common;

use std::sync::Arc;
use std::time::Duration;

use mcp_auth_core::store::{RedisStore, Store};
use mcp_auth_idp_harness::redis::RedisServer;

fn store(redis: &RedisServer) -> RedisStore {
    RedisStore::builder(redis.url())
        .timeout(Duration::from_millis(500))
        .unreachable_backoff(Duration::from_millis(50))
        .build()
        .unwrap()
}

#[tokio::test]
async fn get_set_delete_with_ttl() {
    let redis = RedisServer::start().await.unwrap();
    let s = store(&redis);
    s.ping().await.unwrap();
    assert!(s.get("t:a").await.unwrap().is_none());
    s.set("t:a", b"\x00bytes\xff", Duration::from_secs(30))
        .await
        .unwrap();
    let e = s.get("t:a").await.unwrap().unwrap();
    assert_eq!(e.value, b"\x00bytes\xff");
    assert!(
        e.ttl <= Duration::from_secs(30) && e.ttl > Duration::from_secs(20),
        "{e:?}"
    );
    // The TTL is on the server: PX in milliseconds.
    let pttl = redis.command(&["PTTL", "t:a"]).await.unwrap();
    let ms: i64 = pttl.trim_start_matches(':').trim().parse().unwrap();
    assert!(ms > 20_000 && ms <= 30_000, "{pttl}");
    s.delete("t:a").await.unwrap();
    assert!(s.get("t:a").await.unwrap().is_none());
    s.delete("t:never").await.unwrap();
    // A key without expiry (not written by us) is treated as absent: never cached forever.
    redis.command(&["SET", "t:forever", "x"]).await.unwrap();
    assert!(s.get("t:forever").await.unwrap().is_none());
    // An entry past its TTL is gone.
    s.set("t:short", b"1", Duration::from_millis(30))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while s.get("t:short").await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "entry never expired"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn set_if_absent_is_atomic_across_clients() {
    let redis = RedisServer::start().await.unwrap();
    // Three stores = three replicas, each with its own connection.
    let replicas: Vec<Arc<RedisStore>> = (0..3).map(|_| Arc::new(store(&redis))).collect();
    let mut tasks = Vec::new();
    for i in 0..30 {
        let s = replicas[i % 3].clone();
        tasks.push(tokio::spawn(async move {
            s.set_if_absent("dpop:jti:1", b"", Duration::from_secs(60))
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1, "exactly one first use");
    let pttl = redis.command(&["PTTL", "dpop:jti:1"]).await.unwrap();
    assert!(
        pttl.starts_with(':') && !pttl.starts_with(":-"),
        "has a TTL: {pttl}"
    );
    // After expiry the key may be used again (the proof window is over).
    assert!(
        replicas[0]
            .set_if_absent("dpop:jti:2", b"", Duration::from_millis(20))
            .await
            .unwrap()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !replicas[1]
        .set_if_absent("dpop:jti:2", b"", Duration::from_secs(60))
        .await
        .unwrap()
    {
        assert!(tokio::time::Instant::now() < deadline, "never expired");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn store_down_gives_typed_errors_and_recovers_without_a_new_store() {
    let mut redis = RedisServer::start().await.unwrap();
    let s = store(&redis);
    assert!(
        s.set_if_absent("k", b"", Duration::from_secs(60))
            .await
            .unwrap()
    );
    redis.stop().await.unwrap();
    // Every operation fails with a typed "unavailable" error, within the store's bound.
    let e = s
        .set_if_absent("k2", b"", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(e.is_unavailable(), "{e}");
    assert_eq!(e.op(), "set_if_absent");
    let e = s.get("k").await.unwrap_err();
    assert!(e.is_unavailable(), "{e}");
    assert!(s.ping().await.is_err());
    assert!(s.set("k", b"v", Duration::from_secs(1)).await.is_err());
    redis.restart().await.unwrap();
    // The same store object reconnects by itself.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match s.set_if_absent("k", b"", Duration::from_secs(60)).await {
            // The restarted server is empty (persistence off): the key is new there.
            Ok(wrote) => {
                assert!(wrote);
                break;
            }
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "never recovered: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    s.ping().await.unwrap();
}

#[tokio::test]
async fn acl_credentials_come_from_the_url() {
    let redis = RedisServer::start().await.unwrap();
    let r = redis
        .command(&[
            "ACL",
            "SETUSER",
            "mcp",
            "on",
            ">pw-for-tests",
            "~*",
            "+@all",
        ])
        .await
        .unwrap();
    assert!(r.starts_with("+OK"), "{r}");
    redis
        .command(&["ACL", "SETUSER", "default", "off"])
        .await
        .unwrap();
    let port = redis.port();
    let good = RedisStore::builder(format!("redis://mcp:pw-for-tests@127.0.0.1:{port}/0"))
        .build()
        .unwrap();
    good.set("acl", b"1", Duration::from_secs(5)).await.unwrap();
    let bad = RedisStore::builder(format!("redis://mcp:wrong@127.0.0.1:{port}/0"))
        .build()
        .unwrap();
    let e = bad.get("acl").await.unwrap_err();
    assert!(!e.to_string().contains("wrong"), "no secret in errors: {e}");
    assert!(!format!("{bad:?}").contains("wrong"));
}

/// A TLS-only server requiring ACL credentials, the way a production store should run: the store
/// works over `rediss://` with the private CA trusted; a wrong password is a typed error that
/// makes a DPoP replay check fail closed; a certificate from a CA not trusted is refused.
#[tokio::test]
async fn tls_with_acl_credentials_and_a_private_ca() {
    use mcp_auth_core::dpop::ReplayCache;
    use mcp_auth_core::store::StoreReplayCache;
    use mcp_auth_idp_harness::redis::unrelated_ca_pem;

    let redis = RedisServer::start_tls("mcp", "pw-tls-tests").await.unwrap();
    let ca = redis.ca_pem().unwrap().to_owned();
    let port = redis.port();
    // TLS handshakes on a loaded CI machine: a bound well above the 250 ms default.
    let build = |url: String, ca: Option<&str>| {
        let mut b = RedisStore::builder(url)
            .timeout(Duration::from_secs(3))
            .unreachable_backoff(Duration::from_millis(20));
        if let Some(ca) = ca {
            b = b.ca_certificates_pem(ca.as_bytes().to_vec());
        }
        b.build().unwrap()
    };

    let s = build(redis.url(), Some(&ca));
    s.ping().await.unwrap();
    s.set("tls:a", b"value", Duration::from_secs(30))
        .await
        .unwrap();
    let e = s.get("tls:a").await.unwrap().unwrap();
    assert_eq!(e.value, b"value");
    assert!(e.ttl <= Duration::from_secs(30) && e.ttl > Duration::from_secs(20));
    assert!(
        s.set_if_absent("tls:jti", b"", Duration::from_secs(30))
            .await
            .unwrap()
    );
    assert!(
        !s.set_if_absent("tls:jti", b"", Duration::from_secs(30))
            .await
            .unwrap()
    );

    // A wrong password, and no credentials at all: typed, and never echoing the secret.
    let wrong = build(
        format!("rediss://mcp:wrong-pw@127.0.0.1:{port}/0"),
        Some(&ca),
    );
    let e = wrong.get("tls:a").await.unwrap_err();
    assert!(e.is_credentials(), "{e}");
    assert_eq!(e.code(), "credentials");
    assert!(!e.is_unavailable());
    assert!(!e.to_string().contains("wrong-pw"), "{e}");
    assert!(e.to_string().contains("credentials refused"), "{e}");
    let anonymous = build(format!("rediss://127.0.0.1:{port}/0"), Some(&ca));
    let e = anonymous.get("tls:a").await.unwrap_err();
    assert!(e.is_credentials(), "{e}");
    // DPoP replay protection on a store that refuses the credentials fails closed.
    let replay = StoreReplayCache::new(Arc::new(wrong), "mcp-auth");
    assert!(replay.first_use([9; 32], 4_102_444_800).await.is_err());

    // Without the private CA (the Mozilla roots only), or with another CA: refused.
    for (what, ca) in [
        ("default roots", None),
        ("an unrelated CA", Some(unrelated_ca_pem().unwrap())),
    ] {
        let untrusted = build(redis.url(), ca.as_deref());
        let e = untrusted.ping().await.unwrap_err();
        assert!(e.is_unavailable() && !e.is_timeout(), "{what}: {e}");
        assert!(e.to_string().contains("certificate"), "{what}: {e}");
        assert!(
            untrusted
                .set("tls:b", b"x", Duration::from_secs(5))
                .await
                .is_err()
        );
    }
    // Nothing was written by the refused clients.
    assert!(s.get("tls:b").await.unwrap().is_none());

    // A CA certificate is for rediss:// only, and must be PEM.
    let e = RedisStore::builder(format!("redis://127.0.0.1:{port}/0"))
        .ca_certificates_pem(ca.as_bytes().to_vec())
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("rediss://"), "{e}");
    let e = RedisStore::builder(redis.url())
        .ca_certificates_pem(b"not a certificate".to_vec())
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("PEM"), "{e}");
}

/// `/ready` is public: a flood of probes costs the store one `PING` at a time, at most about one
/// a second, and its answer is never older than that (a store gone shows within ~1 s).
#[tokio::test]
async fn readiness_pings_the_store_once_per_second_however_many_probes() {
    use axum::body::Body;
    use http::Request;
    use mcp_auth_core::readiness::{STORE_PROBE_REUSE, readiness_route};
    use tower::ServiceExt;

    let mut redis = RedisServer::start().await.unwrap();
    let pings = || async {
        let info = redis.command(&["INFO", "commandstats"]).await.unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("cmdstat_ping:calls="))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse::<u64>().unwrap())
    };
    let s: Arc<dyn Store> = Arc::new(store(&redis));
    let app = readiness_route("/ready", common::fake(), Some(s));
    let probe = |app: axum::Router| async move {
        let r = app
            .oneshot(Request::get("/ready").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = axum::body::to_bytes(r.into_body(), 4096).await.unwrap();
        (
            status,
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        )
    };

    let before = pings().await;
    let started = tokio::time::Instant::now();
    let flood: Vec<_> = (0..200).map(|_| tokio::spawn(probe(app.clone()))).collect();
    for p in flood {
        let (status, body) = p.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["store"], "ok");
    }
    let flood_took = started.elapsed();
    let used = pings().await - before;
    // One ping for the whole flood (two if it straddled the end of a reuse window).
    let windows = 1 + (flood_took.as_millis() / STORE_PROBE_REUSE.as_millis()) as u64;
    assert!(
        used >= 1 && used <= windows,
        "{used} pings for 200 probes in {flood_took:?}"
    );

    // Past the window, the next probe asks again.
    tokio::time::sleep(STORE_PROBE_REUSE + Duration::from_millis(100)).await;
    let before = pings().await;
    assert_eq!(probe(app.clone()).await.0, 200);
    assert_eq!(probe(app.clone()).await.0, 200);
    assert_eq!(pings().await - before, 1);

    // The store gone: within about a second the probes say so (and the flood of them costs the
    // dead store one attempt per window as well).
    redis.stop().await.unwrap();
    tokio::time::sleep(STORE_PROBE_REUSE + Duration::from_millis(100)).await;
    let (status, body) = probe(app.clone()).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["store"], "unreachable");
}
