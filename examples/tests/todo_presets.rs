//! The todo server through each IdP preset (`MCP_AUTH_PROVIDER=auth0|entra|okta|cognito`),
//! configured by environment variables only, against a local server that serves the vendor's
//! URL layout, with tokens shaped as the vendor's documentation shows them; for Entra also its
//! on-behalf-of flow (`downstream_whoami`) against the tenant's token endpoint on that server.

mod support;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::routing::get;
use mcp_auth_jwt::dev::{DevIssuer, TokenSpec};
use serde_json::{Value, json};
use support::{Mcp, Todo};

/// A vendor on 127.0.0.1: `issuer_path` under the origin is the issuer, its keys are at
/// `jwks_path`, and the discovery documents at the issuer name both. Stopped on drop.
struct Vendor {
    origin: String,
    issuer: String,
    dev: DevIssuer,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Vendor {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn vendor(issuer_path: &str, jwks_path: &str) -> Vendor {
    vendor_with(issuer_path, jwks_path, Router::new()).await
}

/// [`vendor`] also serving `extra` (routes and a fallback of the test's own).
async fn vendor_with(issuer_path: &str, jwks_path: &str, extra: Router) -> Vendor {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let issuer = format!("{origin}{issuer_path}");
    let dev = DevIssuer::generate(issuer.clone());
    let doc = json!({"issuer": issuer, "jwks_uri": format!("{origin}{jwks_path}")});
    let base = issuer_path.trim_end_matches('/');
    let mut app: Router = dev.jwks_router(jwks_path);
    for well_known in ["openid-configuration", "oauth-authorization-server"] {
        let doc = doc.clone();
        app = app.route(
            &format!("{base}/.well-known/{well_known}"),
            get(move || async move { axum::Json(doc) }),
        );
    }
    let app = app.merge(extra);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Vendor {
        origin,
        issuer,
        dev,
        server,
    }
}

/// An Entra v2 access token of tenant `tid` for the API `client` (`aud` is its client id).
fn entra_v2_token(v: &Vendor, client: &str, tid: &str) -> String {
    v.dev.mint(
        TokenSpec::new("entra-oid")
            .audience(client)
            .typ(Some("JWT"))
            .claim("scp", json!("todo:read"))
            .claim("azp", json!("client-app"))
            .claim("tid", json!(tid)),
    )
}

/// An Entra v1 access token (`sts.windows.net`-style issuer under the local authority host) of
/// tenant `tid` whose `aud` is the App ID URI `app_id_uri`.
fn entra_v1_token(v: &Vendor, tid: &str, app_id_uri: &str) -> String {
    v.dev.mint(
        TokenSpec::new("entra-oid-v1")
            .issuer(format!("{}/{tid}/", v.origin))
            .audience(app_id_uri)
            .claim("scp", json!("todo:read"))
            .claim("appid", json!("legacy-client"))
            .claim("tid", json!(tid)),
    )
}

/// Initializes an MCP session with `token` and checks who the server sees.
async fn whoami(todo: &Todo, token: &str) -> Value {
    let mut mcp = Mcp::new(&todo.url(), token);
    mcp.initialize().await;
    serde_json::from_str(&mcp.call_ok("whoami", json!({})).await).unwrap()
}

async fn status(todo: &Todo, token: &str) -> u16 {
    support::http()
        .post(todo.url())
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn metadata(todo: &Todo) -> Value {
    support::get_json(&support::metadata_url(&todo.url())).await
}

#[tokio::test]
async fn auth0_by_environment_only() {
    let v = vendor("/", "/.well-known/jwks.json").await;
    let api = "https://todo-api.example.com";
    let todo = Todo::start(&[
        ("MCP_AUTH_PROVIDER", "auth0"),
        ("AUTH0_DOMAIN", &v.origin),
        ("AUTH0_AUDIENCE", api),
        ("AUTH0_PERMISSIONS_AS_SCOPES", "1"),
    ])
    .await;
    assert_eq!(todo.printed("provider"), "auth0");
    let userinfo = format!("{}/userinfo", v.origin);
    let token = |perms: Value| {
        v.dev.mint(
            TokenSpec::new("auth0|vendor-user")
                .audiences([api, userinfo.as_str()])
                .scopes(["openid"])
                .claim("azp", json!("spa"))
                .claim("permissions", perms),
        )
    };
    let who = whoami(&todo, &token(json!(["todo:read"]))).await;
    assert_eq!(who["subject"], "auth0|vendor-user");
    // RBAC permissions are the scopes the policy checks.
    let mut reader = Mcp::new(&todo.url(), &token(json!(["todo:read"])));
    reader.initialize().await;
    reader.call_ok("list_todos", json!({})).await;
    let mut none = Mcp::new(&todo.url(), &token(json!([])));
    none.initialize().await;
    let refused = none.call("list_todos", json!({})).await;
    assert_eq!(refused.status(), 403);
    assert!(support::www(&refused).contains("scope=\"todo:read\""));
    assert_eq!(
        metadata(&todo).await["authorization_servers"],
        json!([v.issuer])
    );
    todo.stop().await;
}

#[tokio::test]
async fn entra_by_environment_only() {
    let tenant = "9188040d-6c67-4c5b-b112-36a304b66dad";
    let client = "6e74172b-be56-4843-9ff4-e66a39bb12e3";
    let v = vendor(
        &format!("/{tenant}/v2.0"),
        &format!("/{tenant}/discovery/v2.0/keys"),
    )
    .await;
    let todo = Todo::start(&[
        ("MCP_AUTH_PROVIDER", "entra"),
        ("ENTRA_TENANT_ID", tenant),
        ("ENTRA_CLIENT_ID", client),
        ("ENTRA_AUTHORITY_HOST", &v.origin),
    ])
    .await;
    assert_eq!(todo.printed("provider"), "entra");
    let r = todo.url();
    // Clients are told to ask for `<App ID URI>/<scope>`, the App ID URI being R.
    assert_eq!(
        metadata(&todo).await["scopes_supported"],
        json!([format!("{r}/todo:read"), format!("{r}/todo:write")])
    );
    let none = support::http().post(&r).send().await.unwrap();
    assert!(
        support::www(&none).starts_with(&format!("Bearer scope=\"{r}/todo:read\"")),
        "{}",
        support::www(&none)
    );
    let v2 = |tid: &str| entra_v2_token(&v, client, tid);
    assert_eq!(whoami(&todo, &v2(tenant)).await["subject"], "entra-oid");
    // The policy checks the bare scope and its 403 names the prefixed one.
    let app_only = v.dev.mint(
        TokenSpec::new("daemon-oid")
            .audience(client)
            .claim("roles", json!(["Other.Role"]))
            .claim("tid", json!(tenant)),
    );
    let mut mcp = Mcp::new(&r, &app_only);
    mcp.initialize().await;
    let refused = mcp.call("list_todos", json!({})).await;
    assert_eq!(refused.status(), 403);
    assert!(
        support::www(&refused).contains(&format!("scope=\"{r}/todo:read\"")),
        "{}",
        support::www(&refused)
    );
    let v1 = entra_v1_token(&v, tenant, &r);
    assert_eq!(whoami(&todo, &v1).await["subject"], "entra-oid-v1");
    assert_eq!(
        status(&todo, &v2("72f988bf-86f1-41af-91ab-2d7cd011db47")).await,
        401
    );
    todo.stop().await;
}

/// What the local Entra saw: every request to its token endpoint (or anywhere else it does not
/// serve), and the `Authorization` of every call to the downstream API it also plays.
#[derive(Default)]
struct EntraLog {
    /// Every POST outside the keys and documents.
    token_requests: Vec<TokenRequest>,
    /// The `Authorization` header of every downstream call.
    downstream: Vec<String>,
}

/// Path, `Authorization` header and form of a request to the local Entra.
type TokenRequest = (String, Option<String>, Vec<(String, String)>);

type SharedLog = Arc<Mutex<EntraLog>>;

/// Entra's token endpoint, wherever the request went: recorded, answered with a downstream token.
async fn entra_token(
    State(log): State<SharedLog>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> axum::Json<Value> {
    let mut log = log.lock().unwrap();
    log.token_requests.push((
        uri.path().to_owned(),
        headers
            .get("authorization")
            .map(|v| v.to_str().unwrap_or("<binary>").to_owned()),
        url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect(),
    ));
    let n = log.token_requests.len();
    axum::Json(
        json!({"token_type": "Bearer", "access_token": format!("obo-token-{n}"),
        "expires_in": 3600, "scope": format!("{NOTES}/.default")}),
    )
}

/// The downstream API: records what it was sent and answers with it.
async fn notes_whoami(State(log): State<SharedLog>, headers: HeaderMap) -> axum::Json<Value> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    log.lock().unwrap().downstream.push(auth.clone());
    axum::Json(json!({"authorization": auth}))
}

/// The downstream API's App ID URI (Entra names an on-behalf-of target by its scopes).
const NOTES: &str = "api://notes-api";

#[tokio::test]
async fn entra_on_behalf_of_by_environment_only() {
    let tenant = "9188040d-6c67-4c5b-b112-36a304b66dad";
    let client = "6e74172b-be56-4843-9ff4-e66a39bb12e3";
    let log = SharedLog::default();
    let v = vendor_with(
        &format!("/{tenant}/v2.0"),
        &format!("/{tenant}/discovery/v2.0/keys"),
        Router::new()
            .route("/notes/whoami", get(notes_whoami))
            .fallback(entra_token)
            .with_state(log.clone()),
    )
    .await;
    let targets = format!("{NOTES}={NOTES}/.default");
    let notes_url = format!("{}/notes/whoami", v.origin);
    // No exchange client id, method, grant or endpoint: the preset's (ENTRA_CLIENT_ID,
    // client_secret_post, on_behalf_of, the tenant's v2 token endpoint under the host).
    let todo = Todo::start(&[
        ("MCP_AUTH_PROVIDER", "entra"),
        ("ENTRA_TENANT_ID", tenant),
        ("ENTRA_CLIENT_ID", client),
        ("ENTRA_AUTHORITY_HOST", &v.origin),
        ("MCP_AUTH_EXCHANGE_TARGETS", &targets),
        ("MCP_AUTH_EXCHANGE_CLIENT_SECRET", "app-secret"),
        ("TODO_DOWNSTREAM_URL", &notes_url),
    ])
    .await;
    assert_eq!(todo.printed("downstream"), format!("{NOTES} (OnBehalfOf)"));
    let r = todo.url();
    let v2 = entra_v2_token(&v, client, tenant);
    let v1 = entra_v1_token(&v, tenant, &r);
    for (i, token) in [&v2, &v1].into_iter().enumerate() {
        let mut mcp = Mcp::new(&r, token);
        mcp.initialize().await;
        let answer: Value =
            serde_json::from_str(&mcp.call_ok("downstream_whoami", json!({})).await).unwrap();
        // The downstream API got the exchanged token.
        assert_eq!(
            answer["authorization"],
            format!("Bearer obo-token-{}", i + 1)
        );
    }

    let (token_requests, downstream) = {
        let log = log.lock().unwrap();
        (log.token_requests.clone(), log.downstream.clone())
    };
    let paths: Vec<&str> = token_requests.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(paths.len(), 2, "one exchange per token: {paths:?}");
    let field = |form: &[(String, String)], key: &str| -> Vec<String> {
        form.iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    };
    for ((path, authorization, form), token) in token_requests.iter().zip([&v2, &v1]) {
        // v2 and v1 tokens alike: the tenant's v2 token endpoint.
        assert_eq!(path, &format!("/{tenant}/oauth2/v2.0/token"));
        // client_secret_post as the API's own application.
        assert!(authorization.is_none(), "an Authorization header was sent");
        assert_eq!(field(form, "client_id"), [client]);
        assert_eq!(field(form, "client_secret"), ["app-secret"]);
        // The jwt-bearer on-behalf-of request, the incoming token as the assertion.
        assert_eq!(
            field(form, "grant_type"),
            ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
        );
        assert_eq!(field(form, "requested_token_use"), ["on_behalf_of"]);
        assert!(field(form, "assertion") == [token.as_str()], "assertion");
        assert_eq!(field(form, "scope"), [format!("{NOTES}/.default")]);
        assert!(field(form, "subject_token").is_empty());
    }
    // The MCP tokens never reached the downstream API.
    assert_eq!(downstream.len(), 2);
    for auth in &downstream {
        assert!(
            !auth.contains(v2.as_str()) && !auth.contains(v1.as_str()),
            "an MCP token reached the downstream API"
        );
    }
    todo.stop().await;
}

#[tokio::test]
async fn okta_by_environment_only() {
    let v = vendor(
        "/oauth2/default",
        // Only the metadata names this path: the preset must find the keys by discovery.
        "/oauth2/default/keys-named-only-by-the-metadata",
    )
    .await;
    let todo = Todo::start(&[
        ("MCP_AUTH_PROVIDER", "okta"),
        ("OKTA_ISSUER", &v.issuer),
        ("OKTA_AUDIENCE", "api://default"),
    ])
    .await;
    assert_eq!(todo.printed("provider"), "okta");
    let token = |aud: &str| {
        v.dev.mint(
            TokenSpec::new("00u-okta-user")
                .audience(aud)
                .typ(None)
                .claim("scp", json!(["todo:read"]))
                .claim("cid", json!("0oa-client")),
        )
    };
    assert_eq!(
        whoami(&todo, &token("api://default")).await["subject"],
        "00u-okta-user"
    );
    assert_eq!(status(&todo, &token("api://other")).await, 401);
    todo.stop().await;

    // The org authorization server is refused at start-up, naming the variable.
    let err = support::start_failure(
        &[("MCP_AUTH_PROVIDER", "okta"), ("OKTA_ISSUER", &v.origin)],
        &[],
    )
    .await;
    assert!(
        err.contains("OKTA_ISSUER") && err.contains("/oauth2/"),
        "{err}"
    );
}

#[tokio::test]
async fn cognito_by_environment_only() {
    let pool = "eu-west-1_TodoPool";
    let v = vendor(
        &format!("/{pool}"),
        &format!("/{pool}/.well-known/jwks.json"),
    )
    .await;
    let rs = "https://todo.example.com";
    let todo = Todo::start(&[
        ("MCP_AUTH_PROVIDER", "cognito"),
        ("COGNITO_ISSUER", &v.issuer),
        ("COGNITO_CLIENT_IDS", "app-1 app-2"),
        ("COGNITO_RESOURCE_SERVER", rs),
    ])
    .await;
    assert_eq!(todo.printed("provider"), "cognito");
    assert_eq!(
        metadata(&todo).await["scopes_supported"],
        json!([format!("{rs}/todo:read"), format!("{rs}/todo:write")])
    );
    let token = |client: &str, token_use: &str| {
        v.dev.mint(
            TokenSpec::new("cognito-user")
                .typ(None)
                .client_id(client)
                .scopes([format!("{rs}/todo:read")])
                .claim("token_use", json!(token_use)),
        )
    };
    assert_eq!(
        whoami(&todo, &token("app-2", "access")).await["subject"],
        "cognito-user"
    );
    assert_eq!(status(&todo, &token("app-9", "access")).await, 401);
    assert_eq!(status(&todo, &token("app-1", "id")).await, 401);
    todo.stop().await;
}
