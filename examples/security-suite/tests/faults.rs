//! IdP fault drills through the todo app's HTTP stack: stubs on 127.0.0.1 that misbehave on
//! command (down, hanging, garbage, 429, rotating keys, flooded), sub-second timeouts, and the
//! cross-resource replay check with one verifier shared by two resources.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mcp_auth_core::TokenVerifier;
use mcp_auth_core::fetch::{HttpClient, HttpClientConfig};
use mcp_auth_introspect::IntrospectionVerifier;
use mcp_auth_jwt::JwtVerifier;
use mcp_auth_jwt::dev::{DevIssuer, TokenSpec};
use mcp_auth_security_suite::raw::{RawRequest, RawResponse};
use mcp_auth_security_suite::server::{self, TodoServer};
use mcp_auth_security_suite::stub::{Mode, Stub};
use mcp_auth_security_suite::{READ, WRITE, bounded, mcp};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const ISS: &str = "https://idp.drill.test";
const COOLDOWN: Duration = Duration::from_millis(200);
const TIMEOUT: Duration = Duration::from_millis(300);
/// Requests each worker of the key-rotation drill sends.
const REQUESTS_PER_WORKER: u32 = 10;
/// How long a caller may wait for a 503 while the IdP hangs (for an hour): far above the
/// 300 ms timeout, so only a caller left waiting on the IdP exceeds it, even on a loaded machine.
const ANSWERED_WITHIN: Duration = Duration::from_secs(10);

fn fast_client() -> HttpClient {
    HttpClient::new(HttpClientConfig {
        timeout: TIMEOUT,
        connect_timeout: TIMEOUT,
        ..HttpClientConfig::default()
    })
    .unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(dev: &DevIssuer, resource: &str, sub: &str) -> String {
    dev.mint(
        TokenSpec::new(sub)
            .client_id("drill")
            .scopes([READ, WRITE])
            .audience(resource),
    )
}

async fn jwt_server(jwks_uri: &str) -> TodoServer {
    let (listener, addr) = server::bind().await;
    let resource = server::resource_url(addr);
    let verifier = JwtVerifier::builder()
        .jwks_uri(jwks_uri)
        .issuer(ISS)
        .audience(&resource)
        .http_client(fast_client())
        .jwks_cooldown(COOLDOWN)
        .build()
        .unwrap();
    TodoServer::start(
        listener,
        server::provider(Arc::new(verifier), &resource, ISS),
    )
}

async fn introspect_server(stub: &Stub, max_concurrent: usize) -> TodoServer {
    let (listener, addr) = server::bind().await;
    let resource = server::resource_url(addr);
    let verifier = IntrospectionVerifier::builder()
        .endpoint(stub.introspection_uri())
        .client_secret_basic("rs", "drill-secret")
        .issuer(ISS)
        .resource_url(&resource)
        .http_client(fast_client())
        .timeout(TIMEOUT)
        .max_concurrent_introspections(max_concurrent)
        .build()
        .unwrap();
    TodoServer::start(
        listener,
        server::provider(Arc::new(verifier), &resource, ISS),
    )
}

fn active(resource: &str) -> Value {
    json!({"active": true, "iss": ISS, "aud": resource, "sub": "u", "client_id": "c",
        "scope": "todo:read todo:write", "exp": now() + 600})
}

/// `tools/call whoami` without a session (the policy and layer decide; a 2xx proves auth passed).
async fn whoami(addr: SocketAddr, token: &str) -> RawResponse {
    mcp::post(token, None, &mcp::initialize())
        .send(addr)
        .await
        .expect("an answer")
}

async fn metadata(addr: SocketAddr) -> RawResponse {
    RawRequest::new("GET", "/.well-known/oauth-protected-resource/mcp")
        .send(addr)
        .await
        .expect("an answer")
}

fn assert_unavailable(resp: &RawResponse, what: &str) {
    assert_eq!(resp.status, 503, "{what}: {}", resp.text());
    let retry: u64 = resp
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{what}: 503 without Retry-After seconds"));
    assert!(retry >= 1, "{what}");
    let body: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{what}");
}

/// Retries `f` until it gives 200 or `within` passes.
async fn recovers(addr: SocketAddr, token: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let r = whoami(addr, token).await;
        if r.status == 200 {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "no recovery within {within:?} (last {})",
            r.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn jwt_idp_down_at_start_then_recovers_without_restart() {
    bounded("drill", 30, async {
        let dev = DevIssuer::generate(ISS);
        // Reserve a port, then free it: connections are refused until the stub takes it.
        let (reserved, idp_addr) = server::bind().await;
        drop(reserved);
        let srv = jwt_server(&format!("http://{idp_addr}/jwks")).await;
        let t = token(&dev, &srv.resource, "alice");
        let m = metadata(srv.addr()).await;
        assert_eq!(m.status, 200, "metadata serves while the IdP is down");
        for _ in 0..3 {
            assert_unavailable(&whoami(srv.addr(), &t).await, "IdP down at start");
        }
        let listener = TcpListener::bind(idp_addr)
            .await
            .expect("rebind the IdP port");
        let _stub = Stub::start_on(listener, dev.jwks_json());
        let took = recovers(srv.addr(), &t, Duration::from_secs(5)).await;
        eprintln!("fault drill jwt down-at-start: survived, recovered in {took:?}");
    })
    .await;
}

#[tokio::test]
async fn jwt_idp_down_mid_run_cached_keys_keep_serving() {
    bounded("drill", 30, async {
        let dev = DevIssuer::generate(ISS);
        let stub = Stub::start(dev.jwks_json()).await;
        let srv = jwt_server(&stub.jwks_uri()).await;
        assert_eq!(
            whoami(srv.addr(), &token(&dev, &srv.resource, "a"))
                .await
                .status,
            200
        );
        for mode in [Mode::Status(500), Mode::Hang, Mode::Status(429)] {
            stub.set_mode(mode.clone());
            tokio::time::sleep(COOLDOWN).await;
            // Fresh tokens (not in the verified-token cache) verify with the cached keys, without
            // asking the failing IdP (so none of them waits on it).
            let fetches = stub.jwks_fetches();
            for i in 0..5 {
                let t = token(&dev, &srv.resource, &format!("user-{i}"));
                assert_eq!(whoami(srv.addr(), &t).await.status, 200, "{mode:?}");
            }
            assert_eq!(stub.jwks_fetches(), fetches, "{mode:?}: the IdP was asked");
        }
        drop(stub);
        let t = token(&dev, &srv.resource, "after-stop");
        assert_eq!(
            whoami(srv.addr(), &t).await.status,
            200,
            "IdP gone entirely"
        );
        eprintln!("fault drill jwt down-mid-run (500, hang, 429, gone): survived");
    })
    .await;
}

#[tokio::test]
async fn jwt_idp_hanging_garbage_html_and_429_answer_503_within_bounds() {
    bounded("drill", 30, async {
        let dev = DevIssuer::generate(ISS);
        let modes = [
            Mode::Hang,
            Mode::Garbage {
                content_type: "text/html",
                body: "<html><body>502 Bad Gateway</body></html>",
            },
            Mode::Garbage {
                content_type: "application/json",
                body: "{\"keys\": [{\"kty\": \"RSA\", \"n\": 5}",
            },
            Mode::Garbage {
                content_type: "application/json",
                body: "{\"keys\": \"none\"}",
            },
            Mode::Status(429),
            Mode::Status(500),
        ];
        for mode in modes {
            let stub = Stub::start(dev.jwks_json()).await;
            stub.set_mode(mode.clone());
            let srv = jwt_server(&stub.jwks_uri()).await;
            assert_eq!(metadata(srv.addr()).await.status, 200, "{mode:?}");
            let t = token(&dev, &srv.resource, "a");
            // Ten concurrent callers, all answered 503 once the 300 ms fetch timeout ends the
            // hang (an hour long): the bound separates "timed out" from "waited", with room
            // for a loaded machine.
            let start = Instant::now();
            let answers = tokio::time::timeout(ANSWERED_WITHIN, futures(srv.addr(), &t, 10))
                .await
                .unwrap_or_else(|_| panic!("{mode:?}: callers held beyond the fetch timeout"));
            let took = start.elapsed();
            for r in &answers {
                assert_unavailable(r, &format!("{mode:?}"));
            }
            stub.set_mode(Mode::Ok);
            let rec = recovers(srv.addr(), &t, Duration::from_secs(5)).await;
            eprintln!(
                "fault drill jwt {}: survived (10 x 503 in {took:?}, recovered in {rec:?})",
                mode_name(&mode)
            );
        }
    })
    .await;
}

fn mode_name(mode: &Mode) -> String {
    match mode {
        Mode::Garbage { content_type, .. } => format!("garbage {content_type}"),
        other => format!("{other:?}"),
    }
}

async fn futures(addr: SocketAddr, token: &str, n: usize) -> Vec<RawResponse> {
    let mut handles = Vec::new();
    for _ in 0..n {
        let t = token.to_owned();
        handles.push(tokio::spawn(async move { whoami(addr, &t).await }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("request task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_key_rotation_mid_run() {
    bounded("drill", 40, async {
        let old = DevIssuer::generate_fresh(ISS);
        let new = DevIssuer::generate_fresh(ISS);
        let union = json!({"keys": old.jwks_json()["keys"].as_array().unwrap().iter()
            .chain(new.jwks_json()["keys"].as_array().unwrap()).cloned().collect::<Vec<_>>()});
        let stub = Stub::start(old.jwks_json()).await;
        let srv = jwt_server(&stub.jwks_uri()).await;
        let addr = srv.addr();
        let resource = srv.resource.clone();
        assert_eq!(whoami(addr, &token(&old, &resource, "warm")).await.status, 200);

        // Publish the new key, wait one cooldown, then traffic mixes old and new tokens.
        stub.set_jwks(union);
        tokio::time::sleep(COOLDOWN + Duration::from_millis(50)).await;
        // A fixed amount of traffic (not "as much as fits in a time window", which a loaded
        // machine shrinks): 4 workers x 10 requests, alternating old and new tokens.
        let mut handles = Vec::new();
        for worker in 0..4 {
            let (old, new, resource) = (old.clone(), new.clone(), resource.clone());
            handles.push(tokio::spawn(async move {
                let (mut ok, mut failed) = (0u32, 0u32);
                for i in 0..REQUESTS_PER_WORKER {
                    let issuer = if (worker + i) % 2 == 0 { &old } else { &new };
                    let t = token(issuer, &resource, &format!("w{worker}-{i}"));
                    if whoami(addr, &t).await.status == 200 {
                        ok += 1;
                    } else {
                        failed += 1;
                    }
                }
                (ok, failed)
            }));
        }
        let (mut ok, mut failed) = (0, 0);
        for h in handles {
            let (o, f) = h.await.unwrap();
            ok += o;
            failed += f;
        }
        assert_eq!(failed, 0, "requests failed during rotation ({ok} ok)");
        assert_eq!(ok, 4 * REQUESTS_PER_WORKER, "every request answered 200");

        // Withdraw the old key: after the next fetch (here forced by an unknown kid once the
        // cooldown has passed) old tokens, even cached ones, are refused.
        let cached_old = token(&old, &resource, "cached");
        assert_eq!(whoami(addr, &cached_old).await.status, 200);
        stub.set_jwks(new.jwks_json());
        tokio::time::sleep(COOLDOWN + Duration::from_millis(50)).await;
        let stranger = DevIssuer::generate_fresh(ISS);
        let before = stub.jwks_fetches();
        assert_eq!(whoami(addr, &token(&stranger, &resource, "x")).await.status, 401);
        assert!(stub.jwks_fetches() > before, "the unknown kid caused a fetch");
        let r = whoami(addr, &cached_old).await;
        assert_eq!(r.status, 401, "withdrawn key still accepted (cached token)");
        assert!(r.header("www-authenticate").unwrap().contains("unknown key"));
        assert_eq!(whoami(addr, &token(&old, &resource, "late")).await.status, 401);
        assert_eq!(whoami(addr, &token(&new, &resource, "new")).await.status, 200);
        eprintln!(
            "fault drill jwt key rotation: survived ({ok} requests during rotation, 0 failed; withdrawn key refused after the next fetch)"
        );
    })
    .await;
}

#[tokio::test]
async fn introspection_down_hanging_429_and_cache() {
    bounded("drill", 30, async {
        let stub = Stub::start(json!({"keys": []})).await;
        let srv = introspect_server(&stub, 8).await;
        let addr = srv.addr();
        stub.can("live-token", active(&srv.resource));
        stub.can("other-token", active(&srv.resource));
        assert_eq!(whoami(addr, "live-token").await.status, 200);
        for mode in [
            Mode::Status(500),
            Mode::Hang,
            Mode::Status(429),
            Mode::Garbage {
                content_type: "text/html",
                body: "<html>maintenance</html>",
            },
        ] {
            stub.set_mode(mode.clone());
            // A live cache entry keeps serving; a token never seen gets 503 within the bound.
            assert_eq!(whoami(addr, "live-token").await.status, 200, "{mode:?}");
            let answer = tokio::time::timeout(ANSWERED_WITHIN, whoami(addr, "other-token"))
                .await
                .unwrap_or_else(|_| panic!("{mode:?}: held beyond the introspection timeout"));
            assert_unavailable(&answer, &format!("{mode:?}"));
            eprintln!("fault drill introspection {}: survived", mode_name(&mode));
        }
        stub.set_mode(Mode::Ok);
        assert_eq!(whoami(addr, "other-token").await.status, 200, "recovers");
    })
    .await;
}

#[tokio::test]
async fn introspection_down_at_start_recovers() {
    bounded("drill", 30, async {
        let (reserved, idp_addr) = server::bind().await;
        drop(reserved);
        let (listener, addr) = server::bind().await;
        let resource = server::resource_url(addr);
        let verifier = IntrospectionVerifier::builder()
            .endpoint(format!("http://{idp_addr}/introspect"))
            .client_secret_basic("rs", "drill-secret")
            .issuer(ISS)
            .resource_url(&resource)
            .http_client(fast_client())
            .timeout(TIMEOUT)
            .build()
            .unwrap();
        let srv = TodoServer::start(
            listener,
            server::provider(Arc::new(verifier), &resource, ISS),
        );
        assert_eq!(metadata(addr).await.status, 200);
        assert_unavailable(&whoami(addr, "tok").await, "introspection down at start");
        let stub = Stub::start_on(TcpListener::bind(idp_addr).await.unwrap(), json!({}));
        stub.can("tok", active(&srv.resource));
        recovers(addr, "tok", Duration::from_secs(5)).await;
        eprintln!("fault drill introspection down-at-start: survived");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_flood_of_random_bearer_strings_is_bounded() {
    bounded("drill", 30, async {
        const SLOTS: usize = 4;
        let stub = Stub::start(json!({})).await;
        stub.set_mode(Mode::Slow(Duration::from_millis(100)));
        let srv = introspect_server(&stub, SLOTS).await;
        let addr = srv.addr();
        let mut handles = Vec::new();
        for i in 0..200u32 {
            handles.push(tokio::spawn(async move {
                let t = format!("random-{i}-{:x}", now().wrapping_mul(u64::from(i) + 7));
                whoami(addr, &t).await.status
            }));
        }
        let (mut refused, mut saturated) = (0, 0);
        for h in handles {
            match h.await.unwrap() {
                401 => refused += 1,
                503 => saturated += 1,
                other => panic!("random bearer string got {other}"),
            }
        }
        let peak = stub.max_concurrent_introspections();
        assert!(peak <= SLOTS as u64, "IdP saw {peak} concurrent calls");
        assert!(saturated > 0, "the flood never hit the bound");
        eprintln!(
            "fault drill introspection flood: survived (200 random tokens: {refused} x 401, {saturated} x 503; IdP peak concurrency {peak} <= {SLOTS}; {} calls)",
            stub.introspections()
        );
    })
    .await;
}

#[tokio::test]
async fn cross_resource_replay_with_a_shared_verifier_is_refused() {
    bounded("drill", 30, async {
        let dev = DevIssuer::generate(ISS);
        let (l1, a1) = server::bind().await;
        let (l2, a2) = server::bind().await;
        let (r1, r2) = (server::resource_url(a1), server::resource_url(a2));

        // One JWT verifier (and its token cache) accepting both audiences, shared.
        let jwt: Arc<dyn TokenVerifier> = Arc::new(
            dev.verifier_builder()
                .audiences([r1.clone(), r2.clone()])
                .build()
                .unwrap(),
        );
        let s1 = TodoServer::start(l1, server::provider(jwt.clone(), &r1, ISS));
        let s2 = TodoServer::start(l2, server::provider(jwt, &r2, ISS));
        let t1 = token(&dev, &r1, "alice");
        assert_eq!(whoami(s1.addr(), &t1).await.status, 200);
        let r = whoami(s2.addr(), &t1).await;
        assert_eq!(r.status, 401, "token for resource 1 replayed at resource 2");
        assert!(
            r.header("www-authenticate")
                .unwrap()
                .contains("not issued for this resource")
        );
        drop((s1, s2));

        // The same with one introspection verifier (and its result cache) shared.
        let (l1, a1) = server::bind().await;
        let (l2, a2) = server::bind().await;
        let (r1, r2) = (server::resource_url(a1), server::resource_url(a2));
        let stub = Stub::start(json!({})).await;
        stub.can("opaque-for-1", active(&r1));
        let intro: Arc<dyn TokenVerifier> = Arc::new(
            IntrospectionVerifier::builder()
                .endpoint(stub.introspection_uri())
                .client_secret_basic("rs", "drill-secret")
                .issuer(ISS)
                .audiences([r1.clone(), r2.clone()])
                .http_client(fast_client())
                .build()
                .unwrap(),
        );
        let s1 = TodoServer::start(l1, server::provider(intro.clone(), &r1, ISS));
        let s2 = TodoServer::start(l2, server::provider(intro, &r2, ISS));
        assert_eq!(whoami(s1.addr(), "opaque-for-1").await.status, 200);
        assert_eq!(whoami(s2.addr(), "opaque-for-1").await.status, 401);
        assert_eq!(
            stub.introspections(),
            1,
            "the second call was a cache hit, still refused"
        );
        eprintln!(
            "fault drill cross-resource replay (shared jwt and introspection verifiers): refused"
        );
    })
    .await;
}
