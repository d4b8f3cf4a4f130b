//! DPoP (RFC 9449) end to end: the real test IdP (oidc-provider's DPoP feature) binds tokens to a
//! test client's own key, and the todo binary, configured by environment only, lets them in only
//! with a fresh proof of that key, on both protocol wires (session mode and stateless), for JWT
//! access tokens and for opaque tokens checked by introspection. Every proof rule is broken once,
//! and the exact status and challenge are asserted.

mod support;

use aws_lc_rs::hmac;
use mcp_auth_idp_harness::{ResourceSpec, TestIdp};
use mcp_auth_jwt::dev::{DevAlg, DevIssuer, TokenSpec};
use serde_json::{Value, json};
use support::dpop::{DpopKey, ath, b64, jti, now};
use support::{Issuer, Mcp, Todo, free_port, start_failure, www};

const SCOPES: [&str; 2] = ["todo:read", "todo:write"];
const OTHER: &str = "http://127.0.0.1:9/other-mcp";
const ALGS: &str = "ES256 ES384 EdDSA PS256 RS256";

/// `DPoP error="…", error_description="…", scope="todo:read", resource_metadata="…", algs="…"`.
fn dpop_challenge(resource: &str, error: &str, description: &str) -> String {
    format!(
        "DPoP error=\"{error}\", error_description=\"{description}\", scope=\"todo:read\", \
         resource_metadata=\"{}\", algs=\"{ALGS}\"",
        support::metadata_url(resource)
    )
}

fn initialize() -> Value {
    json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"dpop","version":"1"}}})
}

/// POST `initialize` with an `Authorization` value and any number of `DPoP` headers.
async fn post(
    resource: &str,
    authorization: Option<String>,
    proofs: &[String],
) -> reqwest::Response {
    let mut req = support::http()
        .post(resource)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    for p in proofs {
        req = req.header("dpop", p);
    }
    req.json(&initialize()).send().await.unwrap()
}

async fn dpop_token(idp: &TestIdp, resource: &str, scope: &str, key: &DpopKey) -> String {
    let proof = key.proof("POST", &idp.token_endpoint(), None);
    let t = idp
        .client_credentials_dpop(resource, scope, &proof)
        .await
        .expect("DPoP-bound token");
    assert_eq!(t.token_type.as_deref(), Some("DPoP"));
    t.access_token
}

async fn start_todo(port: u16, env: &[(&str, &str)]) -> Todo {
    Todo::start_on(port, env).await
}

/// The whole flow on one todo server: PRM, a DPoP client through initialize and tool calls,
/// the same token refused as Bearer, a plain bearer token still welcome (`allowed`), the 403 on
/// the DPoP scheme, and session binding to the key.
async fn flow(idp: &TestIdp, resource: &str, todo: &Todo, session_mode: bool, jwt: bool) {
    let prm: Value = support::get_json(&todo.printed("metadata")).await;
    assert_eq!(
        prm["dpop_signing_alg_values_supported"],
        json!(["ES256", "ES384", "EdDSA", "PS256", "RS256"])
    );
    assert!(prm.get("dpop_bound_access_tokens_required").is_none());

    let key = DpopKey::generate();
    let token = dpop_token(idp, resource, "todo:read todo:write", &key).await;
    if jwt {
        let claims: Value = serde_json::from_slice(
            &base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                token.split('.').nth(1).unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["cnf"]["jkt"], json!(key.thumbprint()));
    } else {
        let answer = idp.introspect(&token).await.unwrap();
        assert_eq!(answer["cnf"]["jkt"], json!(key.thumbprint()));
    }
    let jkt = key.thumbprint();
    let mut client = Mcp::with_dpop(resource, &token, key);
    client.initialize().await;
    assert_eq!(client.session().is_some(), session_mode);
    assert_eq!(
        client.call_ok("add_todo", json!({"text": "proven"})).await,
        "added todo 1"
    );
    let who: Value = serde_json::from_str(&client.call_ok("whoami", json!({})).await).unwrap();
    assert_eq!(who["client_id"], "m2m-client");
    // The tool sees the token as DPoP-bound, with its key (rmcp extractor).
    assert_eq!(who["dpop_jkt"], json!(jkt));

    // The same token as a bearer token: refused with the fixed description, on Bearer.
    let as_bearer = post(resource, Some(format!("Bearer {token}")), &[]).await;
    assert_eq!(as_bearer.status(), 401);
    assert_eq!(
        www(&as_bearer),
        format!(
            "Bearer error=\"invalid_token\", error_description=\"The access token is bound to a \
             key and must be sent with the DPoP scheme and a proof\", scope=\"todo:read\", \
             resource_metadata=\"{}\"",
            support::metadata_url(resource)
        )
    );

    // A plain bearer token of the same client still works in `allowed` mode...
    let bearer = idp
        .client_credentials(resource, "todo:read todo:write")
        .await
        .unwrap();
    assert_eq!(bearer.token_type.as_deref(), Some("Bearer"));
    let mut plain = Mcp::new(resource, &bearer.access_token);
    plain.initialize().await;
    plain.call_ok("list_todos", json!({})).await;

    // ...but cannot continue the session the DPoP client opened (same principal, no key).
    if session_mode {
        plain.set_session(client.session().map(str::to_owned));
        let hijack = plain.call("list_todos", json!({})).await;
        assert_eq!(
            hijack.status(),
            404,
            "a bearer token on a DPoP-bound session"
        );
        // The key holder keeps it.
        client.call_ok("list_todos", json!({})).await;
    }

    // Too weak a DPoP token: 403 on the DPoP scheme, naming the scope.
    let reader_key = DpopKey::generate();
    let reader = dpop_token(idp, resource, "todo:read", &reader_key).await;
    let mut weak = Mcp::with_dpop(resource, &reader, reader_key);
    weak.initialize().await;
    let denied = weak.call("add_todo", json!({"text": "no"})).await;
    assert_eq!(denied.status(), 403);
    assert_eq!(
        www(&denied),
        format!(
            "DPoP error=\"insufficient_scope\", error_description=\"The access token lacks a \
             required scope\", scope=\"todo:write\", resource_metadata=\"{}\", algs=\"{ALGS}\"",
            support::metadata_url(resource)
        )
    );
}

#[tokio::test]
async fn dpop_bound_jwt_tokens_from_the_real_idp_on_both_wires() {
    let (p1, p2) = (free_port(), free_port());
    let r1 = format!("http://127.0.0.1:{p1}/mcp");
    let r2 = format!("http://127.0.0.1:{p2}/mcp");
    let idp = TestIdp::start(vec![
        ResourceSpec::jwt(&r1, &SCOPES, "ES256"),
        ResourceSpec::jwt(&r2, &SCOPES, "ES256"),
    ])
    .await
    .expect("test IdP");
    for (port, resource, stateless) in [(p1, &r1, false), (p2, &r2, true)] {
        let mut env = vec![
            ("MCP_AUTH_PROVIDER", "jwt"),
            ("MCP_AUTH_JWT_ISSUER", idp.issuer()),
            ("MCP_AUTH_JWT_ALGORITHMS", "ES256"),
            ("MCP_AUTH_RESOURCE_URL", resource.as_str()),
        ];
        if stateless {
            env.push(("TODO_STATELESS", "1"));
        }
        let todo = start_todo(port, &env).await;
        flow(&idp, resource, &todo, !stateless, true).await;
        todo.stop().await;
    }
}

#[tokio::test]
async fn dpop_bound_opaque_tokens_through_introspection_on_both_wires() {
    let (p1, p2) = (free_port(), free_port());
    let r1 = format!("http://127.0.0.1:{p1}/mcp");
    let r2 = format!("http://127.0.0.1:{p2}/mcp");
    let idp = TestIdp::start(vec![
        ResourceSpec::opaque(&r1, &SCOPES),
        ResourceSpec::opaque(&r2, &SCOPES),
    ])
    .await
    .expect("test IdP");
    let (rs_id, rs_secret) = idp.introspection_client();
    let endpoint = idp.introspection_endpoint();
    for (port, resource, stateless) in [(p1, &r1, false), (p2, &r2, true)] {
        let mut env = vec![
            ("MCP_AUTH_PROVIDER", "introspect"),
            ("MCP_AUTH_INTROSPECT_URL", endpoint.as_str()),
            ("MCP_AUTH_INTROSPECT_CLIENT_ID", rs_id),
            ("MCP_AUTH_INTROSPECT_CLIENT_SECRET", rs_secret),
            ("MCP_AUTH_INTROSPECT_ISSUER", idp.issuer()),
            ("MCP_AUTH_RESOURCE_URL", resource.as_str()),
        ];
        if stateless {
            env.push(("TODO_STATELESS", "1"));
        }
        let todo = start_todo(port, &env).await;
        flow(&idp, resource, &todo, !stateless, false).await;
        todo.stop().await;
    }
}

/// One case per rule of RFC 9449 §4.3 and §7: each request breaks exactly that rule.
#[tokio::test]
async fn every_proof_rule_is_enforced_on_the_wire() {
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let idp = TestIdp::start(vec![
        ResourceSpec::jwt(&resource, &SCOPES, "ES256"),
        ResourceSpec::jwt(OTHER, &SCOPES, "ES256"),
    ])
    .await
    .expect("test IdP");
    let todo = start_todo(
        port,
        &[
            ("MCP_AUTH_PROVIDER", "jwt"),
            ("MCP_AUTH_JWT_ISSUER", idp.issuer()),
            ("MCP_AUTH_JWT_ALGORITHMS", "ES256"),
            ("MCP_AUTH_RESOURCE_URL", &resource),
        ],
    )
    .await;
    let key = DpopKey::generate();
    let token = dpop_token(&idp, &resource, "todo:read todo:write", &key).await;
    let other_key = DpopKey::generate();
    let foreign = dpop_token(&idp, OTHER, "todo:read", &key).await;
    let bearer = idp
        .client_credentials(&resource, "todo:read")
        .await
        .unwrap()
        .access_token;
    let r = resource.as_str();
    let dpop_auth = Some(format!("DPoP {token}"));
    let claims = || key.claims("POST", r, Some(&token));
    let without = |name: &str| {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(name);
        key.sign(&key.header(), &c)
    };
    let with = |name: &str, v: Value| {
        let mut c = claims();
        c[name] = v;
        key.sign(&key.header(), &c)
    };
    let header_with = |name: &str, v: Value| {
        let mut h = key.header();
        h[name] = v;
        key.sign(&h, &claims())
    };
    let valid = || key.sign(&key.header(), &claims());
    let unsigned = |header: Value| {
        format!(
            "{}.{}.",
            b64(header.to_string().as_bytes()),
            b64(claims().to_string().as_bytes())
        )
    };
    let hs256 = {
        let mut h = key.header();
        h["alg"] = json!("HS256");
        let input = format!(
            "{}.{}",
            b64(h.to_string().as_bytes()),
            b64(claims().to_string().as_bytes())
        );
        let k = hmac::Key::new(hmac::HMAC_SHA256, key.thumbprint().as_bytes());
        format!("{input}.{}", b64(hmac::sign(&k, input.as_bytes()).as_ref()))
    };
    let tampered = {
        let p = valid();
        let (rest, sig) = p.rsplit_once('.').unwrap();
        let mut bytes =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig).unwrap();
        bytes[5] ^= 1;
        format!("{rest}.{}", b64(&bytes))
    };
    let mut no_jwk = key.header();
    no_jwk.as_object_mut().unwrap().remove("jwk");

    let bad_proof = |d: &str| (401, dpop_challenge(r, "invalid_dpop_proof", d));
    let bad_token = |d: &str| (401, dpop_challenge(r, "invalid_token", d));
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, Option<String>, Vec<String>, (u16, String))> = vec![
        (
            "tampered signature",
            dpop_auth.clone(),
            vec![tampered],
            bad_proof("The DPoP proof signature is invalid"),
        ),
        (
            "missing jti",
            dpop_auth.clone(),
            vec![without("jti")],
            bad_proof("The DPoP proof lacks a required claim"),
        ),
        (
            "missing htm",
            dpop_auth.clone(),
            vec![without("htm")],
            bad_proof("The DPoP proof lacks a required claim"),
        ),
        (
            "missing htu",
            dpop_auth.clone(),
            vec![without("htu")],
            bad_proof("The DPoP proof lacks a required claim"),
        ),
        (
            "missing iat",
            dpop_auth.clone(),
            vec![without("iat")],
            bad_proof("The DPoP proof lacks a required claim"),
        ),
        (
            "missing jwk",
            dpop_auth.clone(),
            vec![key.sign(&no_jwk, &claims())],
            bad_proof("The DPoP proof carries no usable public key"),
        ),
        (
            "wrong typ",
            dpop_auth.clone(),
            vec![header_with("typ", json!("JWT"))],
            bad_proof("The DPoP proof type is not dpop+jwt"),
        ),
        (
            "ath absent",
            dpop_auth.clone(),
            vec![without("ath")],
            bad_proof("The DPoP proof lacks a required claim"),
        ),
        (
            "ath of another token",
            dpop_auth.clone(),
            vec![with("ath", json!(ath(&bearer)))],
            bad_proof("The DPoP proof was made for another access token"),
        ),
        (
            "htu of another path",
            dpop_auth.clone(),
            vec![with("htu", json!(format!("http://127.0.0.1:{port}/other")))],
            bad_proof("The DPoP proof was made for another URL"),
        ),
        (
            "htu of another port",
            dpop_auth.clone(),
            vec![with(
                "htu",
                json!(format!("http://127.0.0.1:{}/mcp", port + 1)),
            )],
            bad_proof("The DPoP proof was made for another URL"),
        ),
        (
            "htm GET on a POST",
            dpop_auth.clone(),
            vec![with("htm", json!("GET"))],
            bad_proof("The DPoP proof was made for another HTTP method"),
        ),
        (
            "private key in jwk",
            dpop_auth.clone(),
            vec![header_with("jwk", key.private_jwk())],
            bad_proof("The DPoP proof key contains private key material"),
        ),
        (
            "DPoP token on the Bearer scheme",
            Some(format!("Bearer {token}")),
            vec![valid()],
            (
                401,
                format!(
                    "Bearer error=\"invalid_token\", error_description=\"The access token is bound to a key and must be sent with the DPoP scheme and a proof\", scope=\"todo:read\", resource_metadata=\"{}\"",
                    support::metadata_url(r)
                ),
            ),
        ),
        (
            "two DPoP headers",
            dpop_auth.clone(),
            vec![valid(), valid()],
            bad_proof("The request carries more than one DPoP proof"),
        ),
        (
            "no DPoP header",
            dpop_auth.clone(),
            vec![],
            bad_proof("The request carries no DPoP proof"),
        ),
        (
            "not a JWT",
            dpop_auth.clone(),
            vec!["not-a-jwt".into()],
            bad_proof("The DPoP proof is malformed"),
        ),
        (
            "cnf.jkt of another key",
            dpop_auth.clone(),
            vec![other_key.proof("POST", r, Some(&token))],
            bad_proof("The DPoP proof key is not the key the token is bound to"),
        ),
        (
            "stale iat",
            dpop_auth.clone(),
            vec![with("iat", json!(now() - 360))],
            bad_proof("The DPoP proof is too old"),
        ),
        (
            "future iat",
            dpop_auth.clone(),
            vec![with("iat", json!(now() + 120))],
            bad_proof("The DPoP proof is issued in the future"),
        ),
        (
            "alg none",
            dpop_auth.clone(),
            vec![unsigned(
                json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk()}),
            )],
            bad_proof("The DPoP proof algorithm is not accepted"),
        ),
        (
            "alg HS256",
            dpop_auth.clone(),
            vec![hs256],
            bad_proof("The DPoP proof algorithm is not accepted"),
        ),
        (
            "token for another audience",
            Some(format!("DPoP {foreign}")),
            vec![key.proof("POST", r, Some(&foreign))],
            bad_token("The access token was not issued for this resource"),
        ),
        (
            "bearer token on the DPoP scheme",
            Some(format!("DPoP {bearer}")),
            vec![key.proof("POST", r, Some(&bearer))],
            bad_token(
                "The access token is not bound to a key and cannot be used with the DPoP scheme",
            ),
        ),
    ];
    let mut failures = Vec::new();
    for (name, auth, proofs, (status, challenge)) in cases {
        let resp = post(r, auth, &proofs).await;
        let got = (resp.status().as_u16(), www(&resp));
        if got != (status, challenge.clone()) {
            failures.push(format!(
                "{name}: expected {status} {challenge}\n  got {got:?}"
            ));
        } else {
            let body: Value = resp.json().await.unwrap();
            assert!(body["error"].is_string(), "{name}: JSON error body");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Controls: a valid proof passes, also with an htu that only differs by normalisation
    // (scheme and host case, an escaped unreserved character, query and fragment)...
    let ok = post(r, dpop_auth.clone(), &[valid()]).await;
    assert_eq!(ok.status(), 200);
    let normalised = with(
        "htu",
        json!(format!("HTTP://127.0.0.1:{port}/%6Dcp?x=1#frag")),
    );
    assert_eq!(
        post(r, dpop_auth.clone(), &[normalised]).await.status(),
        200
    );

    // ...and once only: the same proof again is a replay.
    let once = valid();
    assert_eq!(
        post(r, dpop_auth.clone(), std::slice::from_ref(&once))
            .await
            .status(),
        200
    );
    let replay = post(r, dpop_auth.clone(), &[once]).await;
    assert_eq!(
        (replay.status().as_u16(), www(&replay)),
        bad_proof("The DPoP proof was already used")
    );
    // A new jti from the same key is fine.
    assert_eq!(
        post(r, dpop_auth.clone(), &[with("jti", json!(jti()))])
            .await
            .status(),
        200
    );
    todo.stop().await;
}

/// `MCP_AUTH_DPOP=required`: every challenge on the DPoP scheme, Bearer refused, the metadata
/// says so; `MCP_AUTH_DPOP_ALGORITHMS` narrows the proof algorithms.
#[tokio::test]
async fn required_mode_and_algorithms_from_the_environment() {
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let idp = TestIdp::start(vec![ResourceSpec::jwt(&resource, &SCOPES, "ES256")])
        .await
        .expect("test IdP");
    let todo = start_todo(
        port,
        &[
            ("MCP_AUTH_PROVIDER", "jwt"),
            ("MCP_AUTH_JWT_ISSUER", idp.issuer()),
            ("MCP_AUTH_JWT_ALGORITHMS", "ES256"),
            ("MCP_AUTH_RESOURCE_URL", &resource),
            ("MCP_AUTH_DPOP", "required"),
            ("MCP_AUTH_DPOP_ALGORITHMS", "ES256 EdDSA"),
        ],
    )
    .await;
    let prm: Value = support::get_json(&todo.printed("metadata")).await;
    assert_eq!(
        prm["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA"])
    );
    assert_eq!(prm["dpop_bound_access_tokens_required"], json!(true));

    let no_credentials = format!(
        "DPoP scope=\"todo:read\", resource_metadata=\"{}\", algs=\"ES256 EdDSA\"",
        support::metadata_url(&resource)
    );
    let none = post(&resource, None, &[]).await;
    assert_eq!(
        (none.status().as_u16(), www(&none)),
        (401, no_credentials.clone())
    );
    let bearer = idp
        .client_credentials(&resource, "todo:read")
        .await
        .unwrap()
        .access_token;
    let as_bearer = post(&resource, Some(format!("Bearer {bearer}")), &[]).await;
    assert_eq!(
        (as_bearer.status().as_u16(), www(&as_bearer)),
        (401, no_credentials)
    );

    let key = DpopKey::generate();
    let token = dpop_token(&idp, &resource, "todo:read todo:write", &key).await;
    let mut client = Mcp::with_dpop(&resource, &token, key);
    client.initialize().await;
    client
        .call_ok("add_todo", json!({"text": "required"}))
        .await;
    todo.stop().await;
}

/// `MCP_AUTH_DPOP_NONCE_SECS`: a proof without the server's nonce gets `use_dpop_nonce` and a
/// `DPoP-Nonce`; the retry with it passes, and answers carry the nonce.
#[tokio::test]
async fn server_nonces_from_the_environment() {
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let idp = TestIdp::start(vec![ResourceSpec::jwt(&resource, &SCOPES, "ES256")])
        .await
        .expect("test IdP");
    let todo = start_todo(
        port,
        &[
            ("MCP_AUTH_PROVIDER", "jwt"),
            ("MCP_AUTH_JWT_ISSUER", idp.issuer()),
            ("MCP_AUTH_JWT_ALGORITHMS", "ES256"),
            ("MCP_AUTH_RESOURCE_URL", &resource),
            ("MCP_AUTH_DPOP_NONCE_SECS", "300"),
        ],
    )
    .await;
    let key = DpopKey::generate();
    let token = dpop_token(&idp, &resource, "todo:read", &key).await;
    let auth = Some(format!("DPoP {token}"));
    let first = post(
        &resource,
        auth.clone(),
        &[key.proof("POST", &resource, Some(&token))],
    )
    .await;
    assert_eq!(
        (first.status().as_u16(), www(&first)),
        (
            401,
            dpop_challenge(
                &resource,
                "use_dpop_nonce",
                "The DPoP proof lacks the current server nonce"
            )
        )
    );
    let nonce = first
        .headers()
        .get("dpop-nonce")
        .expect("DPoP-Nonce")
        .to_str()
        .unwrap()
        .to_owned();
    let mut c = key.claims("POST", &resource, Some(&token));
    c["nonce"] = json!(nonce);
    let retry = post(&resource, auth.clone(), &[key.sign(&key.header(), &c)]).await;
    assert_eq!(retry.status(), 200);
    assert!(retry.headers().contains_key("dpop-nonce"));
    c["jti"] = json!(jti());
    c["nonce"] = json!("made-up");
    let wrong = post(&resource, auth, &[key.sign(&key.header(), &c)]).await;
    assert_eq!(wrong.status(), 401);
    assert!(www(&wrong).starts_with("DPoP error=\"use_dpop_nonce\""));
    todo.stop().await;
}

/// Two replicas behind one public URL on one real Redis (`MCP_AUTH_STORE_URL`): a proof used at
/// one replica is a replay at the other; with the store down every DPoP request is refused with
/// 503 (never let through), and when it comes back service resumes without restarting anyone.
#[tokio::test]
async fn dpop_replay_is_refused_across_replicas_sharing_a_store() {
    use mcp_auth_idp_harness::redis::RedisServer;
    let mut redis = RedisServer::start().await.expect("redis-server");
    let port1 = free_port();
    let port2 = free_port();
    let resource = format!("http://127.0.0.1:{port1}/mcp");
    let idp = TestIdp::start(vec![ResourceSpec::jwt(&resource, &SCOPES, "ES256")])
        .await
        .expect("test IdP");
    let store_url = redis.url();
    let env = [
        ("MCP_AUTH_PROVIDER", "jwt"),
        ("MCP_AUTH_JWT_ISSUER", idp.issuer()),
        ("MCP_AUTH_JWT_ALGORITHMS", "ES256"),
        ("MCP_AUTH_RESOURCE_URL", resource.as_str()),
        ("MCP_AUTH_STORE_URL", store_url.as_str()),
    ];
    let one = start_todo(port1, &env).await;
    let two = start_todo(port2, &env).await;
    let replica2 = format!("http://127.0.0.1:{port2}/mcp");
    let r = resource.as_str();

    let key = DpopKey::generate();
    let token = dpop_token(&idp, r, "todo:read", &key).await;
    let auth = Some(format!("DPoP {token}"));
    // The proof names the public URL (R), whichever replica the balancer picks.
    let proof = key.proof("POST", r, Some(&token));
    let first = post(r, auth.clone(), std::slice::from_ref(&proof)).await;
    assert_eq!(first.status(), 200, "{}", www(&first));
    let replayed = post(&replica2, auth.clone(), &[proof]).await;
    assert_eq!(
        (replayed.status().as_u16(), www(&replayed)),
        (
            401,
            dpop_challenge(r, "invalid_dpop_proof", "The DPoP proof was already used")
        ),
        "a proof used at replica 1 is a replay at replica 2"
    );
    let keys = redis.command(&["KEYS", "*"]).await.unwrap();
    assert!(keys.contains("mcp-auth:dpop:jti:v1:"), "{keys}");
    // A fresh proof is welcome at either replica.
    let fresh = key.proof("POST", r, Some(&token));
    assert_eq!(post(&replica2, auth.clone(), &[fresh]).await.status(), 200);

    // The store is down: replay cannot be checked, so every replica refuses (503, Retry-After).
    redis.stop().await.unwrap();
    for url in [r, replica2.as_str()] {
        let resp = post(url, auth.clone(), &[key.proof("POST", r, Some(&token))]).await;
        assert_eq!(resp.status(), 503, "{url}");
        assert!(resp.headers().contains_key("retry-after"), "{url}");
    }
    // Back: service resumes at both replicas without a restart.
    redis.restart().await.unwrap();
    for url in [r, replica2.as_str()] {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let resp = post(url, auth.clone(), &[key.proof("POST", r, Some(&token))]).await;
            if resp.status() == 200 {
                break;
            }
            assert_eq!(resp.status(), 503, "{url}: only 503 while reconnecting");
            assert!(
                tokio::time::Instant::now() < deadline,
                "{url}: never recovered"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    one.stop().await;
    two.stop().await;
}

/// A user token of the local issuer for the todo server at `resource`.
fn user(resource: &str) -> TokenSpec {
    TokenSpec::new("alice")
        .client_id("client-a")
        .audience(resource)
        .scopes(SCOPES)
}

async fn metadata(todo: &Todo) -> Value {
    support::get_json(&todo.printed("metadata")).await
}

/// `MCP_AUTH_DPOP=off` from the environment: nothing about DPoP is advertised, a DPoP-bound token
/// is refused on both schemes (the DPoP scheme is no credential here, and on Bearer the token's
/// `cnf` is not supported), while plain bearer tokens still work.
#[tokio::test]
async fn dpop_off_from_the_environment_refuses_bound_tokens_on_both_schemes() {
    let idp = Issuer::start().await;
    let todo = Todo::start(&[
        ("MCP_AUTH_PROVIDER", "jwt"),
        ("MCP_AUTH_JWT_ISSUER", &idp.origin),
        ("MCP_AUTH_DPOP", "off"),
    ])
    .await;
    let resource = todo.url();
    let prm = metadata(&todo).await;
    assert_eq!(prm["resource"], json!(resource), "{prm}");
    assert!(
        prm.get("dpop_signing_alg_values_supported").is_none(),
        "{prm}"
    );
    assert!(
        prm.get("dpop_bound_access_tokens_required").is_none(),
        "{prm}"
    );

    let key = DpopKey::generate();
    let bound = idp.mint(user(&resource).claim("cnf", json!({"jkt": key.thumbprint()})));
    let proof = key.proof("POST", &resource, Some(&bound));
    let as_dpop = post(&resource, Some(format!("DPoP {bound}")), &[proof]).await;
    assert_eq!(
        (as_dpop.status().as_u16(), www(&as_dpop)),
        (
            401,
            format!(
                "Bearer scope=\"todo:read\", resource_metadata=\"{}\"",
                support::metadata_url(&resource)
            )
        )
    );
    let as_bearer = post(&resource, Some(format!("Bearer {bound}")), &[]).await;
    assert_eq!(
        (as_bearer.status().as_u16(), www(&as_bearer)),
        (
            401,
            format!(
                "Bearer error=\"invalid_token\", error_description=\"Sender-constrained access \
                 tokens are not supported\", scope=\"todo:read\", resource_metadata=\"{}\"",
                support::metadata_url(&resource)
            )
        )
    );

    let mut plain = Mcp::new(&resource, &idp.mint(user(&resource)));
    plain.initialize().await;
    plain.call_ok("list_todos", json!({})).await;
    todo.stop().await;
}

/// `MCP_AUTH_DPOP_ALGORITHMS="ES256 EdDSA"`: an RS256 proof (asymmetric, on the default list,
/// but not on this one) is refused with the exact challenge naming the configured algorithms.
#[tokio::test]
async fn an_rs256_proof_is_refused_when_the_environment_lists_other_algorithms() {
    let idp = Issuer::start().await;
    let todo = Todo::start(&[
        ("MCP_AUTH_PROVIDER", "jwt"),
        ("MCP_AUTH_JWT_ISSUER", &idp.origin),
        ("MCP_AUTH_DPOP_ALGORITHMS", "ES256 EdDSA"),
    ])
    .await;
    let resource = todo.url();
    assert_eq!(
        metadata(&todo).await["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA"])
    );

    // The client's RSA key: one of a fresh development issuer's keys, without kid/alg/use.
    let client = DevIssuer::generate_fresh("client");
    let jwk = client.public_jwk(DevAlg::RS256);
    let jkt = b64(&mcp_auth_core::dpop::jwk_thumbprint(jwk.as_object().unwrap()).unwrap());
    let token = idp.mint(user(&resource).claim("cnf", json!({"jkt": jkt})));
    let header = json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": jwk});
    let claims = json!({"jti": jti(), "htm": "POST", "htu": resource, "iat": now(),
        "ath": ath(&token)});
    let proof = client.sign_raw(
        DevAlg::RS256,
        &header.to_string(),
        claims.to_string().as_bytes(),
    );
    let resp = post(&resource, Some(format!("DPoP {token}")), &[proof]).await;
    assert_eq!(
        (resp.status().as_u16(), www(&resp)),
        (
            401,
            format!(
                "DPoP error=\"invalid_dpop_proof\", error_description=\"The DPoP proof algorithm \
                 is not accepted\", scope=\"todo:read\", resource_metadata=\"{}\", \
                 algs=\"ES256 EdDSA\"",
                support::metadata_url(&resource)
            )
        )
    );

    // A listed algorithm passes on the same server.
    let key = DpopKey::generate();
    let token = idp.mint(user(&resource).claim("cnf", json!({"jkt": key.thumbprint()})));
    let mut client = Mcp::with_dpop(&resource, &token, key);
    client.initialize().await;
    client.call_ok("list_todos", json!({})).await;
    todo.stop().await;
}

/// Bad `MCP_AUTH_DPOP` / `MCP_AUTH_DPOP_ALGORITHMS` values stop the start, and the error names
/// the variable and the value: a typo never silently turns DPoP off or widens the algorithms.
#[tokio::test]
async fn bad_dpop_settings_in_the_environment_stop_the_start_naming_the_variable() {
    const ALGS_HINT: &str = "is not an asymmetric JWS algorithm (use ES256, ES384, EdDSA, PS256, \
                             PS384, PS512, RS256, RS384 or RS512)";
    let mode = |v: &str| format!("MCP_AUTH_DPOP: \"{v}\" is not off, allowed or required");
    let alg = |v: &str| format!("MCP_AUTH_DPOP_ALGORITHMS: \"{v}\" {ALGS_HINT}");
    for (var, value, expected) in [
        ("MCP_AUTH_DPOP", "maybe", mode("maybe")),
        ("MCP_AUTH_DPOP", "on", mode("on")),
        ("MCP_AUTH_DPOP_ALGORITHMS", "HS256", alg("HS256")),
        ("MCP_AUTH_DPOP_ALGORITHMS", "none", alg("none")),
        ("MCP_AUTH_DPOP_ALGORITHMS", "ES256 HS512", alg("HS512")),
        ("MCP_AUTH_DPOP_ALGORITHMS", "es256", alg("es256")),
    ] {
        let err = start_failure(&[("MCP_AUTH_PROVIDER", "dev"), (var, value)], &[]).await;
        assert!(
            err.lines().any(|l| l == format!("error: {expected}")),
            "{var}={value}: {err}"
        );
    }
}

/// An empty value is an unset one (as for every setting read from the environment): the
/// defaults, `allowed` with the default proof algorithms.
#[tokio::test]
async fn empty_dpop_settings_in_the_environment_are_the_defaults() {
    let todo = Todo::start(&[("MCP_AUTH_DPOP", ""), ("MCP_AUTH_DPOP_ALGORITHMS", " ")]).await;
    let prm = metadata(&todo).await;
    assert_eq!(
        prm["dpop_signing_alg_values_supported"],
        json!(["ES256", "ES384", "EdDSA", "PS256", "RS256"])
    );
    assert!(
        prm.get("dpop_bound_access_tokens_required").is_none(),
        "{prm}"
    );
    todo.stop().await;
}
