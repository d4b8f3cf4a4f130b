//! Several replicas behind one load balancer: three `todo` processes on one shared Redis store,
//! against the real test IdP in introspection mode (opaque tokens), counting introspection calls
//! on the IdP's side.
//!
//! DPoP replay across replicas on the same store is tested with the other DPoP rules, in
//! `dpop.rs`.

mod support;

use std::time::Duration;

use mcp_auth_idp_harness::redis::RedisServer;
use mcp_auth_idp_harness::{ResourceSpec, TestIdp};
use support::{Todo, free_port, http, start_failure};

const SCOPES: [&str; 2] = ["todo:read", "todo:write"];
/// The introspection cache TTL of the replicas (the revocation lag), in seconds.
const TTL_SECS: u64 = 2;

/// `initialize` at one replica with `token`; the HTTP status.
async fn initialize(base: &str, token: &str) -> u16 {
    http()
        .post(format!("{base}/mcp"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .json(&serde_json::json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
            "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"lb","version":"1"}}}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// `GET /ready` at one replica: status and body.
async fn ready(base: &str) -> (u16, serde_json::Value) {
    let r = http().get(format!("{base}/ready")).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// Polls `f` until it is true, for at most `within` (fails the test otherwise).
async fn eventually<F, Fut>(what: &str, within: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Fleet {
    replicas: Vec<Todo>,
    bases: Vec<String>,
}

async fn fleet(idp: &TestIdp, resource: &str, port1: u16, store_url: &str) -> Fleet {
    let (client_id, client_secret) = idp.introspection_client();
    let endpoint = idp.introspection_endpoint();
    let ttl = TTL_SECS.to_string();
    let env = [
        ("MCP_AUTH_PROVIDER", "introspect"),
        ("MCP_AUTH_INTROSPECT_URL", endpoint.as_str()),
        ("MCP_AUTH_INTROSPECT_CLIENT_ID", client_id),
        ("MCP_AUTH_INTROSPECT_CLIENT_SECRET", client_secret),
        ("MCP_AUTH_INTROSPECT_CACHE_TTL_SECS", ttl.as_str()),
        ("MCP_AUTH_AUTHORIZATION_SERVERS", idp.issuer()),
        ("MCP_AUTH_RESOURCE_URL", resource),
        ("MCP_AUTH_STORE_URL", store_url),
    ];
    let mut replicas = Vec::new();
    let mut bases = Vec::new();
    for port in [port1, free_port(), free_port()] {
        replicas.push(Todo::start_on(port, &env).await);
        bases.push(format!("http://127.0.0.1:{port}"));
    }
    Fleet { replicas, bases }
}

#[tokio::test]
async fn three_replicas_share_introspection_results_through_redis() {
    let mut redis = RedisServer::start().await.expect("redis-server");
    let port1 = free_port();
    // One public resource URL for the fleet (the load balancer's), as in production.
    let resource = format!("http://127.0.0.1:{port1}/mcp");
    let idp = TestIdp::start(vec![ResourceSpec::opaque(&resource, &SCOPES)])
        .await
        .expect("test IdP");
    let fleet = fleet(&idp, &resource, port1, &redis.url()).await;

    // Readiness is active: ready before any request reached the IdP, with the store named.
    for b in &fleet.bases {
        let (status, body) = ready(b).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["idp"], "ok");
        assert_eq!(body["store"], "ok");
    }

    // One token, round robin, one request at a time: one introspection call in total.
    let token = idp
        .client_credentials(&resource, "todo:read todo:write")
        .await
        .unwrap()
        .access_token;
    let before = idp.introspection_count().await.unwrap();
    for round in 0..3 {
        for b in &fleet.bases {
            assert_eq!(initialize(b, &token).await, 200, "round {round} at {b}");
        }
    }
    assert_eq!(
        idp.introspection_count().await.unwrap() - before,
        1,
        "nine requests over three replicas: one introspection"
    );
    // The store holds a hash of the token, never the token.
    let keys = redis.command(&["KEYS", "*"]).await.unwrap();
    assert!(keys.contains("mcp-auth:introspect:v1:"), "{keys}");
    assert!(!keys.contains(&token));

    // Revoked: refused by every replica once the shared entry (and the process entries filled
    // from it, which never outlive it) expired.
    idp.revoke(&token).await.unwrap();
    for b in &fleet.bases {
        eventually(
            "revoked token refused",
            Duration::from_secs(4 * TTL_SECS + 10),
            || {
                let token = token.clone();
                async move { initialize(b, &token).await == 401 }
            },
        )
        .await;
    }

    // The store goes away mid-run: introspection falls back to the IdP at every replica (no
    // 401, no 500 for a valid token), readiness says which part is down.
    redis.stop().await.unwrap();
    let token2 = idp
        .client_credentials(&resource, "todo:read")
        .await
        .unwrap()
        .access_token;
    let before = idp.introspection_count().await.unwrap();
    for b in &fleet.bases {
        assert_eq!(initialize(b, &token2).await, 200, "IdP fallback at {b}");
        let (status, body) = ready(b).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["store"], "unreachable");
        assert_eq!(body["idp"], "ok");
    }
    let calls = idp.introspection_count().await.unwrap() - before;
    assert!(
        (1..=3).contains(&calls),
        "each replica asked the IdP itself: {calls}"
    );

    // The store comes back: service returns to sharing without restarting the replicas.
    redis.restart().await.unwrap();
    for b in &fleet.bases {
        eventually("ready again", Duration::from_secs(15), || async move {
            ready(b).await.0 == 200
        })
        .await;
    }
    let token3 = idp
        .client_credentials(&resource, "todo:read")
        .await
        .unwrap()
        .access_token;
    let before = idp.introspection_count().await.unwrap();
    for b in &fleet.bases {
        assert_eq!(initialize(b, &token3).await, 200);
    }
    assert_eq!(
        idp.introspection_count().await.unwrap() - before,
        1,
        "sharing restored after the store restarted"
    );

    for t in fleet.replicas {
        t.stop().await;
    }
}

/// The todo server on a store the way production should run it: TLS only, ACL credentials, a
/// certificate from a private CA trusted through `MCP_AUTH_STORE_CA_FILE`. Without that CA, or
/// with a wrong password, readiness names the store as the part that is down.
#[tokio::test]
async fn a_replica_reaches_a_tls_store_with_acl_credentials_and_a_private_ca() {
    let redis = RedisServer::start_tls("mcp", "tls-store-pw")
        .await
        .expect("redis-server with TLS");
    let ca_file = redis.ca_file().unwrap();
    let ca_file = ca_file.to_str().unwrap();
    let good = redis.url();
    let wrong = format!("rediss://mcp:not-the-pw@127.0.0.1:{}/0", redis.port());
    let start = |store_url: String, ca: Option<String>| async move {
        let port = free_port();
        let resource = format!("http://127.0.0.1:{port}/mcp");
        let mut env = vec![
            ("MCP_AUTH_PROVIDER", "dev".to_owned()),
            ("MCP_AUTH_RESOURCE_URL", resource),
            ("MCP_AUTH_STORE_URL", store_url),
            // A TLS handshake on a loaded CI machine: well above the 250 ms default.
            ("MCP_AUTH_STORE_TIMEOUT_MS", "3000".to_owned()),
        ];
        if let Some(ca) = ca {
            env.push(("MCP_AUTH_STORE_CA_FILE", ca));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let todo = Todo::start_on(port, &env).await;
        (todo, format!("http://127.0.0.1:{port}"))
    };

    let (todo, base) = start(good.clone(), Some(ca_file.to_owned())).await;
    let (status, body) = ready(&base).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["store"], "ok");
    todo.stop().await;

    for (what, url, ca) in [
        ("without the private CA", good.clone(), None),
        ("with a wrong password", wrong, Some(ca_file.to_owned())),
    ] {
        let (todo, base) = start(url, ca).await;
        let (status, body) = ready(&base).await;
        assert_eq!(status, 503, "{what}: {body}");
        assert_eq!(body["store"], "unreachable", "{what}");
        assert_eq!(body["idp"], "ok", "{what}");
        todo.stop().await;
    }

    // A CA file that cannot be read stops the server at start, naming the variable.
    let err = start_failure(
        &[
            ("MCP_AUTH_PROVIDER", "dev"),
            ("MCP_AUTH_RESOURCE_URL", "http://127.0.0.1:9/mcp"),
            ("MCP_AUTH_STORE_URL", good.as_str()),
            ("MCP_AUTH_STORE_CA_FILE", "/nonexistent/ca.pem"),
        ],
        &["--bind", "127.0.0.1:0"],
    )
    .await;
    assert!(err.contains("MCP_AUTH_STORE_CA_FILE"), "{err}");
}
