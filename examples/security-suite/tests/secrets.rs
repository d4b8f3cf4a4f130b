//! Secrets hygiene: full runs of the todo app against the real test IdP, in JWT and in
//! introspection mode, with every log event of every crate captured at `trace` level; no token
//! (access, refresh, forged) and no client secret may appear in them.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mcp_auth_idp_harness::logs::LogBuffer;
use mcp_auth_idp_harness::{ResourceSpec, TestIdp};
use mcp_auth_introspect::IntrospectionVerifier;
use mcp_auth_jwt::JwtVerifier;
use mcp_auth_security_suite::raw::RawRequest;
use mcp_auth_security_suite::server::{self, TodoServer};
use mcp_auth_security_suite::{READ, WRITE, bounded, mcp};
use serde_json::json;

/// Everything a run sends that is secret, to look for in the logs.
#[derive(Default)]
struct Secrets(Vec<String>);

impl Secrets {
    fn add(&mut self, s: &str) {
        self.0.push(s.to_owned());
        // A JWT's signature alone identifies it; so does its payload.
        for part in s.split('.').skip(1) {
            if part.len() >= 16 {
                self.0.push(part.to_owned());
            }
        }
    }

    fn add_client(&mut self, id: &str, secret: &str) {
        self.0.push(secret.to_owned());
        self.0.push(STANDARD.encode(format!("{id}:{secret}")));
    }

    fn find_in(&self, logs: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|s| logs.contains(s.as_str()))
            .map(|s| format!("{}… ({} chars)", &s[..6.min(s.len())], s.len()))
            .collect()
    }
}

/// Drives a full run: valid session and tool calls, 403, rejected and forged tokens, smuggling.
async fn exercise(srv: &TodoServer, rw: &str, ro: &str, extra_bad: &[&str]) {
    let addr = srv.addr();
    let session = mcp::open_session(addr, rw).await.expect("session");
    let s = session.as_deref();
    let r = mcp::call_tool(addr, rw, s, "add_todo", json!({"text": "log me not"}))
        .await
        .unwrap();
    assert!(mcp::succeeded(&r), "add_todo {}", r.status);
    let r = mcp::post(
        rw,
        s,
        &json!({"jsonrpc":"2.0","id":3,"method":"tools/list"}),
    )
    .send(addr)
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    let r = mcp::call_tool(addr, rw, s, "list_todos", json!({}))
        .await
        .unwrap();
    assert!(mcp::succeeded(&r));
    let r = mcp::call_tool(addr, ro, None, "add_todo", json!({"text": "x"}))
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    let r = mcp::post(
        ro,
        Some(s.unwrap_or("none")),
        &mcp::call("list_todos", json!({})),
    )
    .send(addr)
    .await
    .unwrap();
    assert_eq!(r.status, 404, "session takeover");
    for bad in extra_bad {
        let r = mcp::post(bad, None, &mcp::initialize())
            .send(addr)
            .await
            .unwrap();
        assert_eq!(r.status, 401);
    }
    let r = mcp::post(rw, None, &mcp::initialize())
        .bearer(ro)
        .send(addr)
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    let r = RawRequest::mcp_post(&format!("/mcp?access_token={rw}"))
        .json(&mcp::initialize())
        .send(addr)
        .await
        .unwrap();
    assert_eq!(r.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_of_full_runs_hold_no_token_and_no_secret() {
    let logs = LogBuffer::new();
    tracing::subscriber::set_global_default(logs.subscriber()).expect("first subscriber");
    let mut secrets = Secrets::default();
    bounded("secrets hygiene runs", 120, async {
        let (jl, jaddr) = server::bind().await;
        let (il, iaddr) = server::bind().await;
        let (jres, ires) = (server::resource_url(jaddr), server::resource_url(iaddr));
        let idp = TestIdp::start(vec![
            ResourceSpec::jwt(&jres, &[READ, WRITE], "ES256"),
            ResourceSpec::opaque(&ires, &[READ, WRITE]),
        ])
        .await
        .expect("test IdP starts");
        let (rs_id, rs_secret) = idp.introspection_client();
        let (m2m_id, m2m_secret) = idp.m2m_client();
        secrets.add_client(rs_id, rs_secret);
        secrets.add_client(m2m_id, m2m_secret);

        // JWT mode.
        let verifier = JwtVerifier::builder()
            .jwks_uri(idp.jwks_uri())
            .issuer(idp.issuer())
            .resource_url(&jres)
            .algorithms([mcp_auth_jwt::Algorithm::ES256])
            .build()
            .unwrap();
        let srv = TodoServer::start(
            jl,
            server::provider(Arc::new(verifier), &jres, idp.issuer()),
        );
        let user = idp
            .authorization_code(&jres, "todo:read todo:write", "alice")
            .await
            .unwrap();
        let ro = idp
            .client_credentials(&jres, READ)
            .await
            .unwrap()
            .access_token;
        let refresh = user.refresh_token.clone().unwrap();
        let forged = format!("{}x", &user.access_token[..user.access_token.len() - 1]);
        for t in [&user.access_token, &ro, &refresh, &forged] {
            secrets.add(t);
        }
        exercise(&srv, &user.access_token, &ro, &[&refresh, &forged]).await;
        drop(srv);

        // Introspection mode, plus a verifier with a wrong secret (the 500 path logs an error).
        let verifier = IntrospectionVerifier::builder()
            .endpoint(idp.introspection_endpoint())
            .client_secret_basic(rs_id, rs_secret)
            .issuer(idp.issuer())
            .resource_url(&ires)
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let srv = TodoServer::start(
            il,
            server::provider(Arc::new(verifier), &ires, idp.issuer()),
        );
        let user = idp
            .authorization_code(&ires, "todo:read todo:write", "bob")
            .await
            .unwrap();
        let ro = idp
            .client_credentials(&ires, READ)
            .await
            .unwrap()
            .access_token;
        let refresh = user.refresh_token.clone().unwrap();
        for t in [&user.access_token, &ro, &refresh] {
            secrets.add(t);
        }
        exercise(
            &srv,
            &user.access_token,
            &ro,
            &[&refresh, "not-a-token-the-idp-knows"],
        )
        .await;
        drop(srv);

        let wrong_secret = "wrong-secret-that-must-not-be-logged-7f3a";
        secrets.add_client(rs_id, wrong_secret);
        let (wl, waddr) = server::bind().await;
        let wres = server::resource_url(waddr);
        let verifier = IntrospectionVerifier::builder()
            .endpoint(idp.introspection_endpoint())
            .client_secret_post(rs_id, wrong_secret)
            .issuer(idp.issuer())
            .resource_url(&wres)
            .build()
            .unwrap();
        let srv = TodoServer::start(
            wl,
            server::provider(Arc::new(verifier), &wres, idp.issuer()),
        );
        let r = mcp::post(&ro, None, &mcp::initialize())
            .send(srv.addr())
            .await
            .unwrap();
        assert_eq!(r.status, 500, "our credentials refused by the IdP");
    })
    .await;
    let text = logs.contents();
    assert!(text.contains("TRACE"), "trace events were captured");
    assert!(text.contains("DEBUG"), "debug events were captured");
    assert!(
        text.contains("MCP_AUTH_INTROSPECT_CLIENT"),
        "the credential error names the variable"
    );
    let leaks = secrets.find_in(&text);
    eprintln!(
        "secrets hygiene: {} log lines at trace level, {} secrets looked for, {} found",
        text.lines().count(),
        secrets.0.len(),
        leaks.len()
    );
    assert!(leaks.is_empty(), "secrets in the logs: {leaks:?}");
}
