//! The identity model through the whole `todo` binary (environment -> binary -> wire): audience
//! aliases next to R, the leeway decided once, the issuer required, principals that are never a
//! missing value, several issuers each with its own discovery; and one table of claim shapes run
//! against both verifiers.
//!
//! The issuers here are local servers that publish a discovery document and a JWKS and mint
//! tokens of exactly the shape each case needs (no certified IdP issues an expired or
//! identity-less token on demand); the introspection endpoint is a stub for the same reason.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::post;
use mcp_auth_core::{InvalidToken, TokenVerifier, VerifyError};
use mcp_auth_jwt::dev::{DevIssuer, TokenSpec};
use serde_json::{Value, json};
use support::{Issuer, Mcp, Todo, start_failure, www};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn user(todo: &Todo) -> TokenSpec {
    TokenSpec::new("alice")
        .client_id("client-a")
        .audience(todo.url())
        .scopes(["todo:read", "todo:write"])
}

async fn status_and_challenge(todo: &Todo, token: &str) -> (u16, String) {
    let resp = Mcp::new(&todo.url(), token).call("whoami", json!({})).await;
    (resp.status().as_u16(), www(&resp))
}

async fn whoami(todo: &Todo, token: &str) -> Value {
    let mut mcp = Mcp::new(&todo.url(), token);
    mcp.initialize().await;
    serde_json::from_str(&mcp.call_ok("whoami", json!({})).await).unwrap()
}

#[tokio::test]
async fn an_audience_alias_is_accepted_next_to_r_by_the_layer_too() {
    let idp = Issuer::start().await;
    let todo = Todo::start(&[
        ("MCP_AUTH_PROVIDER", "jwt"),
        ("MCP_AUTH_JWT_ISSUER", &idp.origin),
        ("MCP_AUTH_JWT_AUDIENCE", "api://todo"),
    ])
    .await;
    let banner = todo.printed("audiences");
    assert!(
        banner.contains("api://todo") && banner.contains(&todo.url()),
        "{banner}"
    );
    // Auth0 style: the API identifier, with the userinfo audience beside it.
    let alias = idp
        .mint(user(&todo).audiences(["api://todo".to_owned(), format!("{}/userinfo", idp.origin)]));
    assert_eq!(whoami(&todo, &alias).await["subject"], "alice");
    let r = idp.mint(user(&todo));
    assert_eq!(
        whoami(&todo, &r).await["subject"],
        "alice",
        "R stays accepted"
    );
    let other = idp.mint(user(&todo).audience("api://other"));
    let (status, challenge) = status_and_challenge(&todo, &other).await;
    assert_eq!(status, 401);
    assert!(
        challenge.contains("not issued for this resource"),
        "{challenge}"
    );
    todo.stop().await;
}

#[tokio::test]
async fn the_leeway_is_decided_once_for_jwts() {
    let idp = Issuer::start().await;
    let todo = Todo::start(&[
        ("MCP_AUTH_PROVIDER", "jwt"),
        ("MCP_AUTH_JWT_ISSUER", &idp.origin),
    ])
    .await;
    let recent = idp.mint(user(&todo).expires_at_unix(now() - 10));
    assert_eq!(
        whoami(&todo, &recent).await["subject"],
        "alice",
        "expired 10 s ago, within the default 30 s leeway"
    );
    let old = idp.mint(user(&todo).expires_at_unix(now() - 60));
    let (status, challenge) = status_and_challenge(&todo, &old).await;
    assert_eq!(status, 401);
    assert!(
        challenge.contains("The access token expired"),
        "{challenge}"
    );
    todo.stop().await;

    let strict = Todo::start(&[
        ("MCP_AUTH_PROVIDER", "jwt"),
        ("MCP_AUTH_JWT_ISSUER", &idp.origin),
        ("MCP_AUTH_JWT_LEEWAY_SECS", "0"),
    ])
    .await;
    let recent = idp.mint(user(&strict).expires_at_unix(now() - 10));
    assert_eq!(status_and_challenge(&strict, &recent).await.0, 401);
    strict.stop().await;
}

#[tokio::test]
async fn a_jwks_url_without_an_issuer_does_not_start() {
    let idp = Issuer::start().await;
    let jwks = format!("{}/jwks", idp.origin);
    let err = start_failure(
        &[
            ("MCP_AUTH_PROVIDER", "jwt"),
            ("MCP_AUTH_JWT_JWKS_URI", &jwks),
        ],
        &[],
    )
    .await;
    assert!(err.contains("MCP_AUTH_JWT_ISSUER"), "{err}");

    // With the issuer given, another issuer's token signed by the same keys is refused.
    let todo = Todo::start(&[
        ("MCP_AUTH_PROVIDER", "jwt"),
        ("MCP_AUTH_JWT_JWKS_URI", &jwks),
        ("MCP_AUTH_JWT_ISSUER", &idp.origin),
    ])
    .await;
    let evil = idp.mint(user(&todo).issuer("https://evil.example"));
    let (status, challenge) = status_and_challenge(&todo, &evil).await;
    assert_eq!(status, 401);
    assert!(
        challenge.contains("The access token issuer is not accepted"),
        "{challenge}"
    );
    assert_eq!(
        whoami(&todo, &idp.mint(user(&todo))).await["subject"],
        "alice"
    );
    todo.stop().await;
}

#[tokio::test]
async fn principals_are_users_or_machines_and_never_missing() {
    let idp = Issuer::start().await;
    let todo = Todo::start(&[
        ("MCP_AUTH_PROVIDER", "jwt"),
        ("MCP_AUTH_JWT_ISSUER", &idp.origin),
    ])
    .await;
    let nobody = idp.mint(
        TokenSpec::new("x")
            .without_subject()
            .audience(todo.url())
            .scopes(["todo:read", "todo:write"]),
    );
    let (status, challenge) = status_and_challenge(&todo, &nobody).await;
    assert_eq!(status, 401, "a token naming no one");
    assert!(
        challenge.contains("error=\"invalid_token\"") && challenge.contains("lacks a required"),
        "{challenge}"
    );

    // A user whose subject equals a machine's client id is still another owner.
    let user_svc = idp.mint(
        TokenSpec::new("svc")
            .client_id("app")
            .audience(todo.url())
            .scopes(["todo:read", "todo:write"]),
    );
    let machine_svc = idp.mint(
        TokenSpec::new("x")
            .without_subject()
            .client_id("svc")
            .audience(todo.url())
            .scopes(["todo:read", "todo:write"]),
    );
    let mut u = Mcp::new(&todo.url(), &user_svc);
    u.initialize().await;
    u.call_ok("add_todo", json!({"text": "user's"})).await;
    let mut m = Mcp::new(&todo.url(), &machine_svc);
    m.initialize().await;
    assert_eq!(m.call_ok("list_todos", json!({})).await, "[]");
    m.call_ok("add_todo", json!({"text": "machine's"})).await;
    let mine: Value = serde_json::from_str(&u.call_ok("list_todos", json!({})).await).unwrap();
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["text"], "user's");
    let who: Value = serde_json::from_str(&m.call_ok("whoami", json!({})).await).unwrap();
    assert_eq!(who["subject"], Value::Null);
    assert_eq!(who["client_id"], "svc");
    todo.stop().await;
}

#[tokio::test]
async fn several_issuers_each_with_its_own_discovery() {
    let (a, b, c) = (
        Issuer::start().await,
        Issuer::start().await,
        Issuer::start().await,
    );
    let both = format!("{} {}", a.origin, b.origin);
    let todo = Todo::start(&[("MCP_AUTH_PROVIDER", "jwt"), ("MCP_AUTH_JWT_ISSUER", &both)]).await;
    assert_eq!(
        whoami(&todo, &a.mint(user(&todo))).await["subject"],
        "alice"
    );
    assert_eq!(
        whoami(&todo, &b.mint(user(&todo))).await["subject"],
        "alice",
        "the second issuer's tokens are accepted"
    );
    // B's key with A's name: routed to A's keys only, which do not verify it.
    let forged = b.mint(user(&todo).issuer(a.origin.clone()));
    assert_eq!(status_and_challenge(&todo, &forged).await.0, 401);
    // An issuer that is not configured is refused before anything is fetched from it.
    let stranger = c.mint(user(&todo));
    let (status, challenge) = status_and_challenge(&todo, &stranger).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("issuer is not accepted"), "{challenge}");
    assert_eq!(
        c.hits.load(Ordering::SeqCst),
        0,
        "nothing discovered from a token"
    );
    let meta: Value = support::get_json(&todo.info["metadata"]).await;
    assert_eq!(meta["authorization_servers"], json!([a.origin, b.origin]));
    todo.stop().await;
}

/// A stub introspection endpoint answering `{"active": true, ...claims}` for each token it
/// was given, `{"active": false}` for any other.
async fn introspection_stub(
    answers: HashMap<String, Value>,
) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let answers = Arc::new(answers);
    let app = Router::new().route(
        "/introspect",
        post(move |body: String| {
            let answers = answers.clone();
            async move {
                let token = url::form_urlencoded::parse(body.as_bytes())
                    .find(|(k, _)| k == "token")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                let mut out = json!({"active": false});
                if let Some(Value::Object(claims)) = answers.get(&token) {
                    out = json!({"active": true});
                    for (k, v) in claims {
                        out[k] = v.clone();
                    }
                }
                axum::Json(out)
            }
        }),
    );
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (origin, handle)
}

#[tokio::test]
async fn introspection_follows_the_same_leeway_and_principal_rules_on_the_wire() {
    let port = support::free_port();
    let r = format!("http://127.0.0.1:{port}/mcp");
    let mut answers = HashMap::new();
    let base = |exp: u64| json!({"sub": "alice", "client_id": "app", "aud": r, "scope": "todo:read", "exp": exp});
    answers.insert("recent".to_owned(), base(now() - 10));
    answers.insert("old".to_owned(), base(now() - 60));
    answers.insert("nobody".to_owned(), json!({"aud": r, "exp": now() + 600}));
    answers.insert(
        "machine".to_owned(),
        json!({"client_id": "svc", "aud": r, "scope": "todo:read", "exp": now() + 600}),
    );
    let (stub, handle) = introspection_stub(answers).await;
    let url = format!("{stub}/introspect");
    let todo = Todo::start_on(
        port,
        &[
            ("MCP_AUTH_PROVIDER", "introspect"),
            ("MCP_AUTH_INTROSPECT_URL", &url),
            ("MCP_AUTH_INTROSPECT_ISSUER", &stub),
            ("MCP_AUTH_INTROSPECT_CLIENT_ID", "rs"),
            ("MCP_AUTH_INTROSPECT_CLIENT_SECRET", "rs-secret"),
        ],
    )
    .await;
    assert_eq!(whoami(&todo, "recent").await["subject"], "alice");
    assert_eq!(status_and_challenge(&todo, "old").await.0, 401);
    assert_eq!(status_and_challenge(&todo, "nobody").await.0, 401);
    let who = whoami(&todo, "machine").await;
    assert_eq!(
        (who["subject"].clone(), who["client_id"].clone()),
        (Value::Null, json!("svc"))
    );
    todo.stop().await;
    handle.abort();
}

/// One table of claim shapes, run against the JWT verifier and the introspection verifier: the
/// same claims give the same outcome.
#[tokio::test]
async fn one_table_of_claim_shapes_for_both_verifiers() {
    const R: &str = "https://api.example.com/mcp";
    let iss = "https://idp.example.com";
    let t = now();
    let good = json!({"iss": iss, "sub": "alice", "aud": R, "exp": t + 600, "scope": "a b"});
    let with = |k: &str, v: Value| {
        let mut g = good.clone();
        g[k] = v;
        g
    };
    let without = |k: &str| {
        let mut g = good.clone();
        g.as_object_mut().unwrap().remove(k);
        g
    };
    use InvalidToken::*;
    // (case, claims, expected: Ok(scopes) or Err(reason))
    type Case = (&'static str, Value, Result<Vec<&'static str>, InvalidToken>);
    let table: Vec<Case> = vec![
        ("good", good.clone(), Ok(vec!["a", "b"])),
        (
            "aud array with ours",
            with("aud", json!(["x", R])),
            Ok(vec!["a", "b"]),
        ),
        (
            "aud array without ours",
            with("aud", json!(["x", "y"])),
            Err(Audience),
        ),
        (
            "aud with a non-string item",
            with("aud", json!([R, 7])),
            Err(Malformed),
        ),
        ("aud null", with("aud", Value::Null), Err(Audience)),
        ("aud missing", without("aud"), Err(Audience)),
        (
            "scope array",
            with("scope", json!(["a", "c"])),
            Ok(vec!["a", "c"]),
        ),
        (
            "scope with a non-string item",
            with("scope", json!(["a", 1])),
            Err(Malformed),
        ),
        (
            "scope null, scp array",
            {
                let mut g = with("scope", Value::Null);
                g["scp"] = json!(["s1", "s2"]);
                g
            },
            Ok(vec!["s1", "s2"]),
        ),
        (
            "scope an object",
            with("scope", json!({"a": 1})),
            Err(Malformed),
        ),
        (
            "exp fractional",
            with("exp", json!((t + 600) as f64 + 0.5)),
            Ok(vec!["a", "b"]),
        ),
        (
            "exp a string",
            with("exp", json!("4102444800")),
            Err(MissingClaim),
        ),
        (
            "expired within leeway",
            with("exp", json!(t - 10)),
            Ok(vec!["a", "b"]),
        ),
        (
            "expired past leeway",
            with("exp", json!(t - 60)),
            Err(Expired),
        ),
        (
            "nbf ahead past leeway",
            with("nbf", json!(t + 120)),
            Err(NotYetValid),
        ),
        (
            "iat ahead past leeway",
            with("iat", json!(t + 120)),
            Err(NotYetValid),
        ),
        ("nbf null", with("nbf", Value::Null), Ok(vec!["a", "b"])),
        (
            "another issuer",
            with("iss", json!("https://evil.example")),
            Err(Issuer),
        ),
        ("iss not a string", with("iss", json!(1)), Err(Issuer)),
        ("sub not a string", with("sub", json!(5)), Err(Malformed)),
        (
            "sub null, client_id",
            {
                let mut g = with("sub", Value::Null);
                g["client_id"] = json!("svc");
                g
            },
            Ok(vec!["a", "b"]),
        ),
        (
            "azp as client",
            {
                let mut g = without("sub");
                g["azp"] = json!("svc");
                g
            },
            Ok(vec!["a", "b"]),
        ),
        ("no sub, no client", without("sub"), Err(MissingClaim)),
        (
            "cnf",
            with("cnf", json!({"jkt": "x"})),
            Err(SenderConstrained),
        ),
    ];

    let dev = DevIssuer::generate(iss);
    let jwt = dev.verifier_builder().resource_url(R).build().unwrap();
    let mut answers = HashMap::new();
    for (i, (_, claims, _)) in table.iter().enumerate() {
        answers.insert(format!("t{i}"), claims.clone());
    }
    let (stub, handle) = introspection_stub(answers).await;
    let introspect = mcp_auth_introspect::IntrospectionVerifier::builder()
        .endpoint(format!("{stub}/introspect"))
        .issuer(iss)
        .client_secret_basic("rs", "secret")
        .resource_url(R)
        .cache_ttl(Duration::ZERO)
        .build()
        .unwrap();

    let outcome = |r: Result<mcp_auth_core::AccessToken, VerifyError>| match r {
        Ok(t) => Ok(t.scopes().to_vec()),
        Err(VerifyError::Invalid(reason)) => Err(reason),
        Err(other) => panic!("not a decision: {other:?}"),
    };
    let mut failures = Vec::new();
    for (i, (case, claims, expected)) in table.iter().enumerate() {
        let mut spec = TokenSpec::new("placeholder").without_subject();
        // The JWT carries exactly the table's claims (the dev issuer adds nothing it is told to
        // null, and null is absent for both verifiers).
        for k in ["iss", "sub", "aud", "exp", "iat", "client_id"] {
            spec = spec.claim(k, claims.get(k).cloned().unwrap_or(Value::Null));
        }
        for (k, v) in claims.as_object().unwrap() {
            spec = spec.claim(k.clone(), v.clone());
        }
        let expected = expected
            .clone()
            .map(|s| s.into_iter().map(str::to_owned).collect::<Vec<_>>());
        let by_jwt = outcome(jwt.verify(&dev.mint(spec)).await);
        let by_introspection = outcome(introspect.verify(&format!("t{i}")).await);
        if by_jwt != expected || by_introspection != expected {
            failures.push(format!(
                "{case}: expected {expected:?}, jwt {by_jwt:?}, introspection {by_introspection:?}"
            ));
        }
    }
    handle.abort();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn a_missing_config_file_is_a_startup_error() {
    let err = start_failure(
        &[
            ("MCP_AUTH_PROVIDER", "dev"),
            ("MCP_AUTH_CONFIG_FILE", "/nonexistent/mcp-auth.toml"),
        ],
        &[],
    )
    .await;
    assert!(
        err.contains("MCP_AUTH_CONFIG_FILE") && err.contains("/nonexistent/mcp-auth.toml"),
        "{err}"
    );
}

#[tokio::test]
async fn builder_errors_name_their_variable_through_the_binary() {
    // A core setting refused by the provider's builder.
    let err = start_failure(
        &[
            ("MCP_AUTH_PROVIDER", "jwt"),
            ("MCP_AUTH_JWT_ISSUER", "https://idp.example.com"),
            ("MCP_AUTH_SCOPES_SUPPORTED", "todo:read offline_access"),
        ],
        &[],
    )
    .await;
    assert!(err.contains("MCP_AUTH_SCOPES_SUPPORTED"), "{err}");
    // A vendor setting refused by the vendor crate's builder: its key maps to the variable.
    let err = start_failure(
        &[
            ("MCP_AUTH_PROVIDER", "scalekit"),
            ("SCALEKIT_ENVIRONMENT_URL", "https://acme.scalekit.example"),
            ("SCALEKIT_RESOURCE_ID", "res/../x"),
            ("MCP_AUTH_RESOURCE_URL", "http://127.0.0.1:8000/mcp"),
        ],
        &[],
    )
    .await;
    assert!(err.contains("SCALEKIT_RESOURCE_ID"), "{err}");
    // A JWT verifier setting: the issuer must be a URL.
    let err = start_failure(
        &[
            ("MCP_AUTH_PROVIDER", "jwt"),
            ("MCP_AUTH_JWT_ISSUER", "http://idp.example.com"),
        ],
        &[],
    )
    .await;
    assert!(err.contains("MCP_AUTH_JWT_ISSUER"), "{err}");
}
