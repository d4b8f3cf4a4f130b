//! The Redis store against a real `redis-server` (started on a free loopback port, persistence
//! off, stopped by the test): TTLs, the atomic set-if-absent a DPoP replay cache relies on, typed
//! errors when the server is gone, and recovery without a new store.

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
