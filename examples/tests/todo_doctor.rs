//! `todo doctor`, the shipped binary driven by environment and standard input only: against the
//! real test IdP (ready), against an issuer whose metadata lacks S256 and registration (flagged
//! as warnings, still ready), and with tokens failing each check (the failing line says why, the
//! exit status is 1, and the token is never printed).

mod support;

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::routing::get;
use mcp_auth_idp_harness::{ResourceSpec, TestIdp};
use mcp_auth_jwt::dev::{DevIssuer, TokenSpec};
use serde_json::json;
use support::{Issuer, free_port};
use tokio::io::AsyncWriteExt;

/// What one doctor run printed.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The printed line whose text (after the status label) starts with `name:`.
    fn line(&self, name: &str) -> String {
        self.stdout
            .lines()
            .find(|l| {
                let l = l.trim_start();
                l.len() > 7 && l[7..].starts_with(&format!("{name}:"))
            })
            .unwrap_or_else(|| panic!("no {name} line in:\n{}", self.stdout))
            .trim()
            .to_owned()
    }
}

/// Runs `todo doctor ARGS` with exactly `env` (plus PATH), `stdin` piped in; bounded to 60 s.
async fn doctor(env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_todo"));
    cmd.arg("doctor")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("todo doctor starts");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.unwrap();
    }
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("todo doctor finished within 60 s")
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs doctor with `token` on stdin and checks the token is not printed.
async fn with_token(env: &[(&str, &str)], token: &str) -> Run {
    let run = doctor(env, &["--token", "-"], Some(token)).await;
    assert!(
        !run.stdout.contains(token) && !run.stderr.contains(token),
        "the token was printed:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    run
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn ready_against_the_real_idp() {
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let other = "http://127.0.0.1:9/other-mcp";
    let idp = TestIdp::start(vec![
        ResourceSpec::jwt(&resource, &["todo:read", "todo:write"], "RS256"),
        ResourceSpec::jwt(other, &["todo:read"], "RS256"),
    ])
    .await
    .expect("test IdP");
    let env = [
        ("MCP_AUTH_PROVIDER", "jwt"),
        ("MCP_AUTH_JWT_ISSUER", idp.issuer()),
        ("MCP_AUTH_RESOURCE_URL", resource.as_str()),
    ];

    let run = doctor(&env, &[], None).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains(&format!("resource (R):          {resource}"))
    );
    assert!(run.stdout.contains(&format!("\nissuer {}\n", idp.issuer())));
    for ok in ["metadata", "S256", "registration", "jwks"] {
        assert!(run.line(ok).starts_with("[ok]"), "{}", run.line(ok));
    }
    assert!(run.stdout.ends_with("result: ready\n"), "{}", run.stdout);

    // A read+write machine token: accepted, every tool callable.
    let rw = idp
        .client_credentials(&resource, "todo:read todo:write")
        .await
        .unwrap();
    let run = with_token(&env, &rw.access_token).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.stdout.contains("HTTP answer to initialize: 200 OK\n"));
    // Each tool's scope rule, expected versus the token's scopes found.
    for (tool, rule) in [
        ("list_todos", "scope \"todo:read\""),
        ("add_todo", "scope \"todo:write\""),
        ("complete_todo", "scope \"todo:write\""),
        ("whoami", "no scope"),
    ] {
        assert_eq!(
            run.line(tool),
            format!(
                "[ok]   {tool}: expected {rule}, found [\"todo:read\", \"todo:write\"]: callable"
            )
        );
    }
    for ok in ["key and signature", "iss", "aud", "exp", "sub"] {
        assert!(run.line(ok).starts_with("[ok]"), "{}", run.line(ok));
    }

    // Read-only: still accepted (exit 0); the write tools warn with the exact 403 challenge.
    let ro = idp
        .client_credentials(&resource, "todo:read")
        .await
        .unwrap();
    let run = with_token(&env, &ro.access_token).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    let add = run.line("add_todo");
    assert!(
        add.starts_with(
            "[warn] add_todo: expected scope \"todo:write\", found [\"todo:read\"]: 403 \
             Forbidden, WWW-Authenticate: Bearer error=\"insufficient_scope\""
        ) && add.contains("scope=\"todo:write\"")
            && add.ends_with(
                "\": this token may not call it: the client must ask for the challenge's scope"
            ),
        "{add}"
    );
    assert_eq!(
        run.line("list_todos"),
        "[ok]   list_todos: expected scope \"todo:read\", found [\"todo:read\"]: callable"
    );

    // Another resource's token: the aud line says why, the answer is the server's 401.
    let foreign = idp.client_credentials(other, "todo:read").await.unwrap();
    let run = with_token(&env, &foreign.access_token).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    let aud = run.line("aud");
    assert!(
        aud.starts_with(&format!(
            "[FAIL] aud: expected \"{resource}\", found [\"{other}\"]"
        )) && aud.contains(other)
            && aud.contains("issued for another resource"),
        "{aud}"
    );
    assert!(
        run.stdout.contains(
            "HTTP answer to initialize: 401 Unauthorized, WWW-Authenticate: Bearer error=\"invalid_token\""
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("result: NOT ready: aud failed"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn missing_s256_and_registration_are_warnings() {
    let issuer = Issuer::start().await;
    let resource = format!("http://127.0.0.1:{}/mcp", free_port());
    let env = [
        ("MCP_AUTH_PROVIDER", "jwt"),
        ("MCP_AUTH_JWT_ISSUER", issuer.origin.as_str()),
        ("MCP_AUTH_RESOURCE_URL", resource.as_str()),
    ];
    let run = doctor(&env, &[], None).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        run.line("S256"),
        "[warn] S256: expected code_challenge_methods_supported with S256, found not advertised: \
         MCP clients must refuse to log in when the metadata does not advertise PKCE S256 (MCP \
         authorization spec); some go on anyway"
    );
    let reg = run.line("registration");
    assert!(
        reg.starts_with("[warn] registration: expected registration_endpoint (DCR) or client_id_metadata_document_supported (CIMD), found neither: ")
            && reg.contains("cannot register itself"),
        "{reg}"
    );
    assert!(run.line("scopes_supported").starts_with("[warn]"));
    assert!(run.line("jwks").starts_with("[ok]"));
    assert!(run.stdout.ends_with("result: ready\n"));
}

#[tokio::test]
async fn each_failing_check_names_itself() {
    let issuer = Issuer::start().await;
    let resource = format!("http://127.0.0.1:{}/mcp", free_port());
    let env = [
        ("MCP_AUTH_PROVIDER", "jwt"),
        ("MCP_AUTH_JWT_ISSUER", issuer.origin.as_str()),
        ("MCP_AUTH_RESOURCE_URL", resource.as_str()),
    ];
    let good = || {
        TokenSpec::new("alice")
            .audience(resource.as_str())
            .scopes(["todo:read"])
    };
    let run = with_token(&env, &issuer.mint(good())).await;
    assert_eq!(run.code, 0, "{}", run.stdout);

    let other_issuer = DevIssuer::generate_fresh("http://127.0.0.1:9/other-idp");
    let impostor = DevIssuer::generate_fresh(issuer.origin.clone());
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "aud",
            issuer.mint(good().audience("http://127.0.0.1:9/other-mcp")),
            "issued for another resource",
        ),
        (
            "exp",
            issuer.mint(
                good()
                    .expires_at_unix(now() - 3600)
                    .issued_at_unix(now() - 7200),
            ),
            "the token has expired",
        ),
        (
            "nbf",
            issuer.mint(good().not_before_unix(now() + 3600)),
            "not valid yet",
        ),
        (
            "iss",
            other_issuer.mint(good()),
            "another authorization server",
        ),
        (
            "typ",
            issuer.mint(good().typ(Some("id+jwt"))),
            "not an access token type",
        ),
        (
            "sub",
            issuer.mint(
                TokenSpec::new("x")
                    .without_subject()
                    .audience(resource.as_str()),
            ),
            "nobody to attribute",
        ),
        ("key and signature", impostor.mint(good()), "key"),
        ("format", "not-a-jwt-at-all".to_owned(), "not a JWT"),
    ];
    for (check, token, why) in cases {
        let run = with_token(&env, &token).await;
        assert_eq!(run.code, 1, "{check}: {}", run.stdout);
        let line = run.line(check);
        assert!(
            line.starts_with(&format!("[FAIL] {check}:")) && line.contains(why),
            "{check}: {line}\n{}",
            run.stdout
        );
        assert!(
            run.stdout.contains(
                "HTTP answer to initialize: 401 Unauthorized, WWW-Authenticate: Bearer error=\"invalid_token\""
            ),
            "{check}: {}",
            run.stdout
        );
    }

    // --token-file reads the same way; a token in an argument is refused and not echoed.
    let dir = std::env::temp_dir().join(format!("todo-doctor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    let expired = issuer.mint(
        good()
            .expires_at_unix(now() - 3600)
            .issued_at_unix(now() - 7200),
    );
    std::fs::write(&file, format!("{expired}\n")).unwrap();
    let run = doctor(&env, &["--token-file", file.to_str().unwrap()], None).await;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(run.code, 1);
    assert!(run.line("exp").starts_with("[FAIL] exp"));
    assert!(!run.stdout.contains(&expired));
    let run = doctor(&env, &["--token", &expired], None).await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("--token takes only `-`"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(&expired) && !run.stdout.contains(&expired));
}

/// Cognito's layout on 127.0.0.1: discovery and `<issuer>/.well-known/jwks.json`.
async fn cognito_like() -> (DevIssuer, String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/eu-west-1_Pool", listener.local_addr().unwrap());
    let dev = DevIssuer::generate_fresh(issuer.clone());
    let doc = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "code_challenge_methods_supported": ["S256"]});
    let app = dev
        .jwks_router("/eu-west-1_Pool/.well-known/jwks.json")
        .route(
            "/eu-west-1_Pool/.well-known/openid-configuration",
            get(move || async move { axum::Json(doc) }),
        );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (dev, issuer, server)
}

#[tokio::test]
async fn preset_claim_rules_have_their_own_lines() {
    let (dev, issuer, server) = cognito_like().await;
    let resource = format!("http://127.0.0.1:{}/mcp", free_port());
    let env = [
        ("MCP_AUTH_PROVIDER", "cognito"),
        ("COGNITO_ISSUER", issuer.as_str()),
        ("COGNITO_CLIENT_IDS", "app-1"),
        ("MCP_AUTH_RESOURCE_URL", resource.as_str()),
    ];
    let token = |client: &str, use_: &str| {
        dev.mint(
            TokenSpec::new("user-1")
                .client_id(client)
                .scopes(["todo:read"])
                .claim("token_use", json!(use_)),
        )
    };
    let run = with_token(&env, &token("app-1", "access")).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.line("aud").contains("the client allowlist stands in"));
    assert!(run.line("token_use").starts_with("[ok]"));

    let run = with_token(&env, &token("app-2", "access")).await;
    assert_eq!(run.code, 1);
    let client = run.line("client");
    assert!(
        client.starts_with(
            "[FAIL] client: expected client_id or azp in [\"app-1\"], found client_id \"app-2\""
        ) && client.contains("not allowed to call this resource"),
        "{client}"
    );

    let run = with_token(&env, &token("app-1", "id")).await;
    assert_eq!(run.code, 1);
    assert_eq!(
        run.line("token_use"),
        "[FAIL] token_use: expected \"access\", found \"id\": not an access token (send the \
         access token, not the ID token)"
    );
    server.abort();
}

#[tokio::test]
async fn introspection_mode_asks_the_idp() {
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let idp = TestIdp::start(vec![ResourceSpec::opaque(
        &resource,
        &["todo:read", "todo:write"],
    )])
    .await
    .expect("test IdP");
    let (client_id, client_secret) = idp.introspection_client();
    let endpoint = idp.introspection_endpoint();
    let env = [
        ("MCP_AUTH_PROVIDER", "introspect"),
        ("MCP_AUTH_INTROSPECT_URL", endpoint.as_str()),
        ("MCP_AUTH_INTROSPECT_CLIENT_ID", client_id),
        ("MCP_AUTH_INTROSPECT_CLIENT_SECRET", client_secret),
        ("MCP_AUTH_AUTHORIZATION_SERVERS", idp.issuer()),
        ("MCP_AUTH_RESOURCE_URL", resource.as_str()),
    ];
    let token = idp
        .client_credentials(&resource, "todo:read todo:write")
        .await
        .unwrap()
        .access_token;
    let run = with_token(&env, &token).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.line("introspection endpoint").starts_with("[ok]"),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.line("introspection"),
        "[ok]   introspection: expected active: true, found active: true"
    );
    assert!(run.stdout.contains("HTTP answer to initialize: 200 OK\n"));

    // Revoked: the IdP answers active:false, and the line says so.
    idp.revoke(&token).await.unwrap();
    let run = with_token(&env, &token).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.line("introspection")
            .starts_with("[FAIL] introspection: expected active: true, found active: false"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "HTTP answer to initialize: 401 Unauthorized, WWW-Authenticate: Bearer error=\"invalid_token\""
        ),
        "{}",
        run.stdout
    );
}

/// A vendor's URL layout on 127.0.0.1: an issuer at each of `issuer_paths` (the first one
/// mints), keys at `jwks_path`, and under each issuer its discovery document
/// (`openid-configuration` and `oauth-authorization-server`): `doc` plus its `issuer` and the
/// `jwks_uri`. Returns the minting issuer, the origin and the server task.
async fn vendor(
    issuer_paths: &[&str],
    jwks_path: &str,
    doc: serde_json::Value,
) -> (DevIssuer, String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let dev = DevIssuer::generate_fresh(format!("{origin}{}", issuer_paths[0]));
    let mut app = dev.jwks_router(jwks_path);
    for path in issuer_paths {
        let mut doc = doc.clone();
        doc["issuer"] = json!(format!("{origin}{path}"));
        doc["jwks_uri"] = json!(format!("{origin}{jwks_path}"));
        for well_known in ["openid-configuration", "oauth-authorization-server"] {
            let doc = doc.clone();
            let base = path.trim_end_matches('/');
            app = app.route(
                &format!("{base}/.well-known/{well_known}"),
                get(move || async move { axum::Json(doc) }),
            );
        }
    }
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (dev, origin, server)
}

#[tokio::test]
async fn entra_v1_and_v2_tokens_and_another_tenant() {
    let tenant = "9188040d-6c67-4c5b-b112-36a304b66dad";
    let client = "6e74172b-be56-4843-9ff4-e66a39bb12e3";
    // Entra's metadata advertises neither S256 nor a registration endpoint; the v1 document
    // sits under the tenant, naming the v1 issuer.
    let (dev, origin, server) = vendor(
        &[&format!("/{tenant}/v2.0"), &format!("/{tenant}/")],
        &format!("/{tenant}/discovery/v2.0/keys"),
        json!({"scopes_supported": ["openid", "profile", "email", "offline_access"]}),
    )
    .await;
    let resource = format!("http://127.0.0.1:{}/mcp", free_port());
    let env = [
        ("MCP_AUTH_PROVIDER", "entra"),
        ("ENTRA_TENANT_ID", tenant),
        ("ENTRA_CLIENT_ID", client),
        ("ENTRA_AUTHORITY_HOST", origin.as_str()),
        ("MCP_AUTH_RESOURCE_URL", resource.as_str()),
    ];
    let v2_issuer = format!("{origin}/{tenant}/v2.0");
    let v1_issuer = format!("{origin}/{tenant}/");

    let run = doctor(&env, &[], None).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // Clients are told to ask for `<App ID URI>/<scope>`, the App ID URI being R.
    assert!(
        run.stdout
            .contains(&format!("\nchallenge scopes:      {resource}/todo:read\n")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!(
            "\naccepted issuers:      {v2_issuer} {v1_issuer}\n"
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!("\nissuer {v2_issuer}\n")),
        "{}",
        run.stdout
    );
    for warn in ["S256", "registration"] {
        assert!(run.line(warn).starts_with("[warn]"), "{}", run.line(warn));
    }
    assert!(run.line("jwks").starts_with("[ok]"), "{}", run.line("jwks"));
    assert!(run.stdout.ends_with("result: ready\n"), "{}", run.stdout);

    // v2: aud is the client id, the caller in azp.
    let v2 = |tid: &str| {
        dev.mint(
            TokenSpec::new("entra-oid")
                .audience(client)
                .claim("scp", json!("todo:read"))
                .claim("azp", json!("client-app"))
                .claim("tid", json!(tid)),
        )
    };
    let run = with_token(&env, &v2(tenant)).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    let issuers = format!("one of [\"{v2_issuer}\", \"{v1_issuer}\"]");
    assert_eq!(
        run.line("iss"),
        format!("[ok]   iss: expected {issuers}, found \"{v2_issuer}\"")
    );
    assert_eq!(
        run.line("tid"),
        format!("[ok]   tid: expected \"{tenant}\", found \"{tenant}\"")
    );
    assert_eq!(
        run.line("scopes"),
        "[ok]   scopes: expected from scp or roles, found scp \"todo:read\""
    );
    assert_eq!(
        run.line("list_todos"),
        "[ok]   list_todos: expected scope \"todo:read\", found [\"todo:read\"]: callable"
    );
    // The bare scope is checked (expected, found); the challenge names the prefixed one clients
    // must request.
    let add = run.line("add_todo");
    assert!(
        add.starts_with(
            "[warn] add_todo: expected scope \"todo:write\", found [\"todo:read\"]: 403 \
             Forbidden, WWW-Authenticate: Bearer error=\"insufficient_scope\""
        ) && add.contains(&format!("scope=\"{resource}/todo:write\"")),
        "{add}"
    );
    assert!(
        run.stdout.contains("HTTP answer to initialize: 200 OK\n"),
        "{}",
        run.stdout
    );

    // v1: the sts-style issuer, aud the App ID URI (R here), the caller in appid.
    let v1 = dev.mint(
        TokenSpec::new("entra-oid-v1")
            .issuer(v1_issuer.clone())
            .audience(resource.as_str())
            .claim("scp", json!("todo:read todo:write"))
            .claim("appid", json!("legacy-client"))
            .claim("tid", json!(tenant)),
    );
    let run = with_token(&env, &v1).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(
        run.line("iss"),
        format!("[ok]   iss: expected {issuers}, found \"{v1_issuer}\"")
    );
    assert!(
        run.line("aud").starts_with("[ok]   aud:")
            && run
                .line("aud")
                .ends_with(&format!("found [\"{resource}\"]")),
        "{}",
        run.line("aud")
    );
    assert_eq!(
        run.line("client"),
        "[ok]   client: expected azp or appid, found appid \"legacy-client\""
    );
    assert_eq!(
        run.line("add_todo"),
        "[ok]   add_todo: expected scope \"todo:write\", found [\"todo:read\", \"todo:write\"]: \
         callable"
    );

    // Another tenant's token, signed by the same keys (multi-tenant apps share them): the tid
    // line says why, and the answer is the server's 401.
    let other = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let run = with_token(&env, &v2(other)).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(
        run.line("tid"),
        format!("[FAIL] tid: expected \"{tenant}\", found \"{other}\": a token of another tenant")
    );
    assert!(
        run.stdout.contains(
            "HTTP answer to initialize: 401 Unauthorized, WWW-Authenticate: Bearer error=\"invalid_token\""
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("result: NOT ready: tid failed"),
        "{}",
        run.stdout
    );
    server.abort();
}

#[tokio::test]
async fn okta_scp_array_and_cid() {
    let (dev, _origin, server) = vendor(
        &["/oauth2/default"],
        // Only the metadata names this path: the preset must find the keys by discovery.
        "/oauth2/default/keys-named-only-by-the-metadata",
        json!({"code_challenge_methods_supported": ["S256"],
               "registration_endpoint": "http://127.0.0.1:9/oauth2/v1/clients",
               "scopes_supported": ["todo:read", "todo:write"]}),
    )
    .await;
    let issuer = dev.issuer().to_owned();
    let resource = format!("http://127.0.0.1:{}/mcp", free_port());
    let env = [
        ("MCP_AUTH_PROVIDER", "okta"),
        ("OKTA_ISSUER", issuer.as_str()),
        ("OKTA_AUDIENCE", "api://default"),
        ("MCP_AUTH_RESOURCE_URL", resource.as_str()),
    ];
    let run = doctor(&env, &[], None).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for ok in ["metadata", "S256", "registration", "jwks"] {
        assert!(run.line(ok).starts_with("[ok]"), "{}", run.line(ok));
    }

    let token = |aud: &str| {
        dev.mint(
            TokenSpec::new("00u-okta-user")
                .audience(aud)
                .typ(None)
                .claim("scp", json!(["todo:read"]))
                .claim("cid", json!("0oa-client")),
        )
    };
    let run = with_token(&env, &token("api://default")).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(
        run.line("scopes"),
        "[ok]   scopes: expected from scp, found scp [\"todo:read\"]"
    );
    assert_eq!(
        run.line("client"),
        "[ok]   client: expected cid, found cid \"0oa-client\""
    );
    assert_eq!(
        run.line("list_todos"),
        "[ok]   list_todos: expected scope \"todo:read\", found [\"todo:read\"]: callable"
    );
    assert!(
        run.line("add_todo").starts_with(
            "[warn] add_todo: expected scope \"todo:write\", found [\"todo:read\"]: 403 Forbidden"
        ),
        "{}",
        run.line("add_todo")
    );

    // A token for another authorization-server audience: the aud line says why.
    let run = with_token(&env, &token("api://other")).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    let aud = run.line("aud");
    assert!(
        aud.starts_with("[FAIL] aud: expected one of [")
            && aud.contains("\"api://default\"")
            && aud.contains("found [\"api://other\"]: the token was issued for another resource"),
        "{aud}"
    );
    assert!(
        run.stdout.contains("result: NOT ready: aud failed"),
        "{}",
        run.stdout
    );
    server.abort();
}

/// A stub authorization server on 127.0.0.1 serving only the routes it is given (every other
/// path is 404). Stopped when dropped.
struct Stub {
    origin: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Stub {
    /// Binds first (the origin goes into the documents), then serves what `app` builds for it.
    async fn start(app: impl FnOnce(&str) -> axum::Router) -> Stub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let app = app(&origin);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Stub { origin, server }
    }
}

/// Complete metadata for `issuer` with its keys at `jwks_uri`: every client-flow item present,
/// so only the server-side item a test breaks can fail.
fn full_metadata(issuer: &str, jwks_uri: &str) -> serde_json::Value {
    json!({"issuer": issuer, "jwks_uri": jwks_uri,
           "authorization_endpoint": format!("{issuer}/authorize"),
           "token_endpoint": format!("{issuer}/token"),
           "code_challenge_methods_supported": ["S256"],
           "registration_endpoint": format!("{issuer}/register"),
           "scopes_supported": ["todo:read", "todo:write"]})
}

/// An issuer serving its metadata at `/.well-known/openid-configuration`, naming `jwks_uri`
/// (`None`: its own `/jwks`, where `jwks_body` is served as JSON).
async fn issuer_with_jwks(jwks_uri: Option<String>, jwks_body: String) -> Stub {
    Stub::start(move |origin| {
        let keys = jwks_uri.unwrap_or_else(|| format!("{origin}/jwks"));
        let doc = full_metadata(origin, &keys);
        axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || async move { axum::Json(doc) }),
            )
            .route(
                "/jwks",
                get(move || async move { ([("content-type", "application/json")], jwks_body) }),
            )
    })
    .await
}

fn jwt_env<'a>(issuer: &'a str, resource: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("MCP_AUTH_PROVIDER", "jwt"),
        ("MCP_AUTH_JWT_ISSUER", issuer),
        ("MCP_AUTH_RESOURCE_URL", resource),
    ]
}

#[tokio::test]
async fn metadata_not_found_is_not_ready() {
    // Keys are reachable at a configured URL; the issuer serves no metadata at all (404).
    let keys = DevIssuer::generate_fresh("unused").jwks_json().to_string();
    let stub =
        Stub::start(|_| axum::Router::new().route("/jwks", get(move || async move { keys }))).await;
    let o = stub.origin.as_str();
    let resource = format!("http://127.0.0.1:{}/mcp", free_port());
    let jwks = format!("{o}/jwks");
    let mut env = jwt_env(o, &resource);
    env.push(("MCP_AUTH_JWT_JWKS_URI", &jwks));

    let run = doctor(&env, &[], None).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        run.line("metadata"),
        format!(
            "[FAIL] metadata: expected a document naming issuer \"{o}\", found \
             {o}/.well-known/oauth-authorization-server: unexpected status 404; \
             {o}/.well-known/openid-configuration: unexpected status 404: MCP clients find the \
             authorization and token endpoints there: without it they cannot log in"
        )
    );
    assert!(run.line("jwks").starts_with("[ok]"), "{}", run.stdout);
    assert!(
        run.stdout
            .ends_with("\nresult: NOT ready: metadata failed\n"),
        "{}",
        run.stdout
    );

    // Keys by discovery: without metadata there is no jwks_uri either, and the jwks line says so.
    let run = doctor(&jwt_env(o, &resource), &[], None).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(
        run.line("jwks"),
        "[FAIL] jwks: expected a key for one of [\"RS256\"], found no jwks_uri (discovery: \
         unexpected status 404): no key to verify with: every token is refused with 503 until \
         the JWKS serves a usable key"
    );
    assert!(
        run.stdout
            .ends_with("\nresult: NOT ready: metadata, jwks failed\n"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn jwks_unreachable_is_not_ready() {
    // The metadata names keys on a port nobody serves.
    let dead = format!("http://127.0.0.1:{}/jwks", free_port());
    let stub = issuer_with_jwks(Some(dead.clone()), String::new()).await;
    let resource = format!("http://127.0.0.1:{}/mcp", free_port());
    let env = jwt_env(&stub.origin, &resource);

    let run = doctor(&env, &[], None).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    for ok in ["metadata", "S256", "registration", "scopes_supported"] {
        assert!(run.line(ok).starts_with("[ok]"), "{}", run.line(ok));
    }
    assert_eq!(
        run.line("jwks"),
        format!(
            "[FAIL] jwks: expected a key for one of [\"RS256\"], found {dead}: connection \
             failed: no key to verify with: every token is refused with 503 until the JWKS \
             serves a usable key"
        )
    );
    assert!(
        run.stdout.ends_with("\nresult: NOT ready: jwks failed\n"),
        "{}",
        run.stdout
    );

    // A well-formed token of this issuer: the server would answer 503, and the doctor says so.
    let dev = DevIssuer::generate_fresh(stub.origin.clone());
    let token = dev.mint(
        TokenSpec::new("alice")
            .audience(resource.as_str())
            .scopes(["todo:read"]),
    );
    let run = with_token(&env, &token).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("\nHTTP answer to initialize: 503 Service Unavailable"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn jwks_without_a_usable_key_is_not_ready() {
    let resource = format!("http://127.0.0.1:{}/mcp", free_port());
    let only_ec = {
        let all = DevIssuer::generate_fresh("unused").jwks_json();
        let ec: Vec<_> = all["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["kty"] == "EC")
            .cloned()
            .collect();
        json!({ "keys": ec }).to_string()
    };
    let cases = [
        (
            r#"{"keys": []}"#.to_owned(),
            "no usable key (the set is empty)",
        ),
        (
            r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#.to_owned(),
            "no usable key (none of its 1 key(s) is a signing key of a supported type)",
        ),
        (
            "<html>not a key set</html>".to_owned(),
            "the body is not JSON",
        ),
        (
            r#"{"jwks": "elsewhere"}"#.to_owned(),
            "not a JWKS (no keys array)",
        ),
    ];
    for (body, cause) in cases {
        let stub = issuer_with_jwks(None, body.clone()).await;
        let run = doctor(&jwt_env(&stub.origin, &resource), &[], None).await;
        assert_eq!(run.code, 1, "{body}: {}\n{}", run.stdout, run.stderr);
        assert_eq!(
            run.line("jwks"),
            format!(
                "[FAIL] jwks: expected a key for one of [\"RS256\"], found {}/jwks: {cause}: no \
                 key to verify with: every token is refused with 503 until the JWKS serves a \
                 usable key",
                stub.origin
            ),
            "{body}"
        );
        assert!(
            run.stdout.ends_with("\nresult: NOT ready: jwks failed\n"),
            "{body}: {}",
            run.stdout
        );
    }

    // Keys the verifier can read, none for the allowed algorithms (RS256 by default).
    let stub = issuer_with_jwks(None, only_ec).await;
    let run = doctor(&jwt_env(&stub.origin, &resource), &[], None).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(
        run.line("jwks"),
        format!(
            "[FAIL] jwks: expected a key for one of [\"RS256\"], found {}/jwks: 1 key(s), none \
             for an allowed algorithm: every token is refused: the IdP signs with another \
             algorithm than the allowlist (MCP_AUTH_JWT_ALGORITHMS)",
            stub.origin
        )
    );
    assert!(run.stdout.ends_with("\nresult: NOT ready: jwks failed\n"));
}

#[tokio::test]
async fn a_configuration_that_does_not_load_is_not_ready() {
    let resource = format!("http://127.0.0.1:{}/mcp", free_port());
    let cases: [(Vec<(&str, &str)>, &str); 3] = [
        (
            vec![
                ("MCP_AUTH_PROVIDER", "jwt"),
                ("MCP_AUTH_RESOURCE_URL", resource.as_str()),
            ],
            "MCP_AUTH_JWT_ISSUER (or MCP_AUTH_AUTHORIZATION_SERVERS) is missing",
        ),
        (
            vec![
                ("MCP_AUTH_PROVIDER", "okta"),
                ("OKTA_ISSUER", "http://127.0.0.1:9"),
                ("MCP_AUTH_RESOURCE_URL", resource.as_str()),
            ],
            "OKTA_ISSUER: use a custom authorization server's issuer, \
             https://<org>/oauth2/<id> (the org server's tokens are for Okta's own APIs)",
        ),
        (
            vec![("MCP_AUTH_PROVIDER", "nonsense")],
            "MCP_AUTH_PROVIDER: unknown provider \"nonsense\": use jwt, introspect, scalekit, \
             workos, auth0, entra, okta, cognito or dev",
        ),
    ];
    for (env, why) in cases {
        let run = doctor(&env, &[], None).await;
        assert_eq!(run.code, 1, "{why}: {}\n{}", run.stdout, run.stderr);
        assert_eq!(
            run.stdout,
            format!(
                "[FAIL] configuration: {why}\n\nresult: NOT ready: the configuration does not \
                 load\n"
            )
        );
        // With a token: still 1, and the token is not printed back (with_token checks).
        let run = with_token(&env, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln").await;
        assert_eq!(run.code, 1, "{}", run.stdout);
        assert_eq!(
            run.line("configuration"),
            format!("[FAIL] configuration: {why}")
        );
    }
}
