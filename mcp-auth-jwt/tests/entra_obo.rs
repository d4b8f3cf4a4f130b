//! Entra's on-behalf-of variant of core's token exchange (`Entra::on_behalf_of`, feature
//! `exchange`): where the request goes for tokens of either issuer, how the client
//! authenticates, where its id comes from, and the request itself, against Entra's URL layout
//! served on 127.0.0.1 (the end-to-end run through the todo binary is in
//! `examples/tests/todo_presets.rs`).
#![cfg(feature = "exchange")]
// figment::Jail's closures return figment's (large) error type.
#![allow(clippy::result_large_err)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, Method, Request, StatusCode, Uri};
use axum::routing::get;
use axum::{Extension, Json, Router};
use figment::Figment;
use figment::providers::Serialized;
use mcp_auth_core::AuthProvider;
use mcp_auth_core::config::ConfigError;
use mcp_auth_core::exchange::{ExchangeConfig, Grant, SubjectToken, var};
use mcp_auth_jwt::dev::{DevIssuer, TokenSpec};
use mcp_auth_jwt::presets::Preset;
use mcp_auth_jwt::presets::entra::Entra;
use serde_json::{Value, json};
use tower::ServiceExt;

const TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
/// The MCP server's (this API's) application id: the client of the on-behalf-of request.
const API_CLIENT: &str = "6e74172b-be56-4843-9ff4-e66a39bb12e3";
const R: &str = "http://127.0.0.1:8000/mcp";
/// The downstream API, named by its App ID URI and asked for by its `.default` scope.
const NOTES: &str = "api://notes-api";
const NOTES_DEFAULT: &str = "api://notes-api/.default";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

#[test]
fn the_token_endpoint_is_the_tenants_v2_endpoint_for_v1_and_v2_issuers() {
    // The public cloud: v1 tokens name sts.windows.net, whose metadata cannot vouch for an
    // endpoint on login.microsoftonline.com, so the preset names it for both issuers.
    let b = Entra::new(TENANT, API_CLIENT).on_behalf_of().unwrap();
    let endpoint = format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token");
    for issuer in [
        format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
        format!("https://sts.windows.net/{TENANT}/"),
    ] {
        assert_eq!(
            b.token_endpoint(&issuer),
            Some(endpoint.as_str()),
            "{issuer}"
        );
    }
    // Another tenant's issuers, or another IdP, get no endpoint.
    let other = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    assert_eq!(
        b.token_endpoint(&format!("https://sts.windows.net/{other}/")),
        None
    );
    assert_eq!(b.client_id(), Some(API_CLIENT));

    // A sovereign cloud: the same layout under its authority host.
    let b = Entra::new(TENANT, API_CLIENT)
        .authority_host("https://login.chinacloudapi.cn")
        .on_behalf_of()
        .unwrap();
    let endpoint = format!("https://login.chinacloudapi.cn/{TENANT}/oauth2/v2.0/token");
    for issuer in [
        format!("https://login.chinacloudapi.cn/{TENANT}/v2.0"),
        format!("https://sts.chinacloudapi.cn/{TENANT}/"),
    ] {
        assert_eq!(
            b.token_endpoint(&issuer),
            Some(endpoint.as_str()),
            "{issuer}"
        );
    }

    // The grant is on-behalf-of, and a target must be named by its scopes.
    let ex = Entra::new(TENANT, API_CLIENT)
        .on_behalf_of()
        .unwrap()
        .client_secret_post(API_CLIENT, "app-secret")
        .target(mcp_auth_core::exchange::Target::audience(NOTES).scopes([NOTES_DEFAULT]))
        .build()
        .unwrap();
    assert_eq!(ex.grant(), Grant::OnBehalfOf);
    assert!(
        Entra::new(TENANT, API_CLIENT)
            .on_behalf_of()
            .unwrap()
            .client_secret_post(API_CLIENT, "app-secret")
            .target(mcp_auth_core::exchange::Target::audience(NOTES))
            .build()
            .is_err()
    );
}

#[test]
fn the_client_id_comes_from_entra_client_id_and_the_secret_from_the_exchange_variable() {
    let targets = format!("{NOTES}={NOTES_DEFAULT}");
    let load = || -> Result<mcp_auth_core::exchange::TokenExchangerBuilder, ConfigError> {
        let entra = Entra::load(&mcp_auth_core::config::figment(&Entra::ENV))?;
        ExchangeConfig::from_env()?.apply(entra.on_behalf_of().unwrap(), &[])
    };
    figment::Jail::expect_with(|jail| {
        jail.set_env("ENTRA_TENANT_ID", TENANT);
        jail.set_env("ENTRA_CLIENT_ID", API_CLIENT);
        jail.set_env(var::TARGETS, &targets);
        // The preset gives the client id, not the secret.
        assert_eq!(
            load().unwrap_err(),
            ConfigError::Missing {
                variable: var::CLIENT_SECRET.into()
            }
        );
        jail.set_env(var::CLIENT_SECRET, "app-secret");
        let b = load().unwrap();
        assert_eq!(b.client_id(), Some(API_CLIENT));
        let ex = b.build().unwrap();
        assert_eq!(ex.grant(), Grant::OnBehalfOf);
        // The exchange variable, when set, names another client.
        jail.set_env(var::CLIENT_ID, "0c5f0e2d-aaaa-4bbb-8ccc-000000000002");
        assert_eq!(
            load().unwrap().client_id(),
            Some("0c5f0e2d-aaaa-4bbb-8ccc-000000000002")
        );
        Ok(())
    });
}

/// One request to the local Entra: method, path, `Authorization` header, form (no `Debug`: the
/// form holds the assertion).
#[derive(Clone)]
struct Seen {
    method: Method,
    path: String,
    authorization: Option<String>,
    form: Vec<(String, String)>,
}

impl Seen {
    fn get(&self, key: &str) -> Vec<&str> {
        self.form
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// Every request outside the keys and the discovery document: recorded, and answered with a
/// downstream token (as Entra's token endpoint would, wherever it is).
async fn record(
    State(log): State<Log>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, Json<Value>) {
    let mut log = log.lock().unwrap();
    log.push(Seen {
        method,
        path: uri.path().to_owned(),
        authorization: headers
            .get("authorization")
            .map(|v| v.to_str().unwrap_or("<binary>").to_owned()),
        form: url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect(),
    });
    let n = log.len();
    (
        StatusCode::OK,
        Json(
            json!({"token_type": "Bearer", "access_token": format!("notes-token-{n}"),
            "expires_in": 3600, "scope": NOTES_DEFAULT}),
        ),
    )
}

/// Entra's layout for the tenant on 127.0.0.1 (v2 issuer `<origin>/<tenant>/v2.0`, v1 issuer
/// `<origin>/<tenant>/`), recording every other request. Stopped on drop.
struct LocalEntra {
    origin: String,
    dev: DevIssuer,
    log: Log,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for LocalEntra {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl LocalEntra {
    async fn start() -> LocalEntra {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let v2 = format!("{origin}/{TENANT}/v2.0");
        let dev = DevIssuer::generate(v2.clone());
        let log = Log::default();
        let doc = json!({"issuer": v2});
        let app = dev
            .jwks_router(&format!("/{TENANT}/discovery/v2.0/keys"))
            .route(
                &format!("/{TENANT}/v2.0/.well-known/openid-configuration"),
                get(move || async move { Json(doc) }),
            )
            .merge(Router::new().fallback(record).with_state(log.clone()));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        LocalEntra {
            origin,
            dev,
            log,
            server,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }
}

/// The protected handler: the exchange for [`NOTES`], or its error code.
async fn notes_token(subject: Option<Extension<SubjectToken>>) -> Json<Value> {
    let Some(Extension(subject)) = subject else {
        return Json(json!({"error": "no subject token"}));
    };
    Json(match subject.exchange_for(NOTES).await {
        Ok(t) => json!({"token": t.access_token()}),
        Err(e) => json!({"error": e.code()}),
    })
}

#[tokio::test]
async fn on_behalf_of_sends_the_jwt_bearer_request_for_v1_and_v2_tokens_to_the_tenants_endpoint() {
    let entra = LocalEntra::start().await;
    let preset = || Entra::new(TENANT, API_CLIENT).authority_host(&entra.origin);
    let provider = preset().builder().resource_url(R).build().unwrap();
    // Configured as the todo example is: the secret and the targets only; the method and the
    // client id are the preset's.
    let settings = Figment::from(Serialized::defaults(json!({
        "exchange_client_secret": "app-secret",
        "exchange_targets": format!("{NOTES}={NOTES_DEFAULT}"),
    })));
    let exchanger = ExchangeConfig::from_figment(&settings)
        .unwrap()
        .apply(preset().on_behalf_of().unwrap(), provider.idp().issuers())
        .unwrap()
        .build()
        .unwrap();
    let app = Router::new()
        .route("/notes-token", get(notes_token))
        .layer(provider.layer().with_token_exchange(exchanger));

    let v2 = entra.dev.mint(
        TokenSpec::new("user-oid")
            .audience(API_CLIENT)
            .claim("scp", json!("todo.read"))
            .claim("azp", json!("client-app"))
            .claim("tid", json!(TENANT)),
    );
    let v1 = entra.dev.mint(
        TokenSpec::new("user-oid")
            .issuer(format!("{}/{TENANT}/", entra.origin))
            .audience(R)
            .claim("scp", json!("todo.read"))
            .claim("appid", json!("legacy-client"))
            .claim("tid", json!(TENANT)),
    );
    for (i, token) in [&v2, &v1].into_iter().enumerate() {
        let req = Request::get("/notes-token")
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(20), app.clone().oneshot(req))
            .await
            .expect("bounded")
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = axum::body::to_bytes(resp.into_body(), 64 * 1024)
            .await
            .unwrap();
        let got: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(got["token"], format!("notes-token-{}", i + 1), "{got}");
    }

    let seen = entra.seen();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(seen.len(), 2, "one request per token: {paths:?}");
    for (s, token) in seen.iter().zip([&v2, &v1]) {
        // Both issuers' tokens go to the tenant's v2 token endpoint.
        assert_eq!(s.method, Method::POST);
        assert_eq!(s.path, format!("/{TENANT}/oauth2/v2.0/token"));
        // client_secret_post: the credentials in the body, no Authorization header.
        assert!(
            s.authorization.is_none(),
            "an Authorization header was sent"
        );
        assert_eq!(s.get("client_id"), [API_CLIENT]);
        assert_eq!(s.get("client_secret"), ["app-secret"]);
        // The jwt-bearer grant with the incoming token as the assertion.
        assert_eq!(s.get("grant_type"), [JWT_BEARER]);
        assert_eq!(s.get("requested_token_use"), ["on_behalf_of"]);
        assert_eq!(s.get("assertion"), [token.as_str()]);
        assert_eq!(s.get("scope"), [NOTES_DEFAULT]);
        for absent in [
            "subject_token",
            "subject_token_type",
            "audience",
            "resource",
        ] {
            assert!(s.get(absent).is_empty(), "{absent} sent: {:?}", s.path);
        }
    }
}
