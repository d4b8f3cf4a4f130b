//! The IdP presets against each vendor's URL layout served on 127.0.0.1, with tokens shaped as
//! the vendors' public documentation shows them, plus core's test kit through each preset and
//! configuration from the environment.

// figment::Jail's closures return figment's (large) error type.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use mcp_auth_core::testkit::check_provider;
use mcp_auth_core::{AuthProvider, InvalidToken, VerifyError};
use mcp_auth_jwt::HostedProvider;
use mcp_auth_jwt::dev::{DevIssuer, TokenSpec};
use mcp_auth_jwt::presets::Preset;
use mcp_auth_jwt::presets::auth0::Auth0;
use mcp_auth_jwt::presets::cognito::Cognito;
use mcp_auth_jwt::presets::entra::Entra;
use mcp_auth_jwt::presets::okta::Okta;
use serde_json::{Value, json};

const R: &str = "http://127.0.0.1:8000/mcp";

/// A vendor's layout on 127.0.0.1: JWKS at `jwks_path`, JSON documents at their paths. The
/// server stops when this is dropped.
struct Vendor {
    origin: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Vendor {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Binds first (the origin is in the issuer), then serves `dev`'s keys and `docs`.
async fn vendor(
    issuer_of: impl FnOnce(&str) -> String,
    jwks_path: &str,
    docs: impl FnOnce(&str) -> Vec<(String, Value)>,
) -> (Vendor, DevIssuer) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let dev = DevIssuer::generate(issuer_of(&origin));
    let mut app: Router = dev.jwks_router(jwks_path);
    for (path, doc) in docs(&origin) {
        app = app.route(&path, get(move || async move { axum::Json(doc) }));
    }
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (Vendor { origin, server }, dev)
}

async fn verify(
    p: &HostedProvider,
    token: &str,
) -> Result<mcp_auth_core::AccessToken, InvalidToken> {
    let v = p.verifier();
    match tokio::time::timeout(Duration::from_secs(10), v.verify(token)).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(VerifyError::Invalid(reason))) => Err(reason),
        other => panic!("unexpected verifier outcome: {other:?}"),
    }
}

async fn testkit(p: &HostedProvider, mint: impl Fn(&[&str], &str) -> String) {
    let report = tokio::time::timeout(Duration::from_secs(60), check_provider(p, mint))
        .await
        .expect("testkit finished in time");
    report.assert_ok();
}

fn scopes(t: &mcp_auth_core::AccessToken) -> Vec<&str> {
    t.scopes().iter().map(String::as_str).collect()
}

#[tokio::test]
async fn auth0_accepts_its_tokens_with_the_userinfo_audience_and_permissions() {
    let api = "https://todo-api.example.com";
    let (idp, dev) = vendor(
        |o| format!("{o}/"),
        "/.well-known/jwks.json",
        |o| {
            vec![(
                "/.well-known/openid-configuration".into(),
                json!({"issuer": format!("{o}/")}),
            )]
        },
    )
    .await;
    let p = Auth0::new(&idp.origin)
        .audience(api)
        .permissions_as_scopes(true)
        .builder()
        .resource_url(R)
        .scopes_supported(["todo:read", "todo:write"])
        .build()
        .unwrap();
    assert_eq!(
        p.metadata().authorization_servers,
        [format!("{}/", idp.origin)]
    );
    let userinfo = format!("{}/userinfo", idp.origin);
    let auth0_token = |aud: Vec<String>, perms: Value| {
        dev.mint(
            TokenSpec::new("auth0|42")
                .audiences(aud)
                .scopes(["openid", "profile"])
                .typ(Some("JWT"))
                .claim("azp", json!("spa-client"))
                .claim("permissions", perms),
        )
    };
    let t = verify(
        &p,
        &auth0_token(vec![api.into(), userinfo.clone()], json!(["todo:read"])),
    )
    .await
    .unwrap();
    assert_eq!(scopes(&t), ["openid", "profile", "todo:read"]);
    assert_eq!(t.client_id(), Some("spa-client"));
    // Only the /userinfo audience: a token for Auth0's own API, not ours.
    assert_eq!(
        verify(&p, &auth0_token(vec![userinfo.clone()], json!([])))
            .await
            .unwrap_err(),
        InvalidToken::Audience
    );
    // `iss` without the trailing slash is another issuer.
    let no_slash = dev.mint(TokenSpec::new("auth0|42").audience(api).issuer(&idp.origin));
    assert_eq!(
        verify(&p, &no_slash).await.unwrap_err(),
        InvalidToken::Issuer
    );
    // RBAC off: permissions are not scopes.
    let plain = Auth0::new(&idp.origin)
        .audience(api)
        .builder()
        .resource_url(R)
        .build()
        .unwrap();
    let t = verify(
        &plain,
        &auth0_token(vec![api.into()], json!(["todo:write"])),
    )
    .await
    .unwrap();
    assert_eq!(scopes(&t), ["openid", "profile"]);

    testkit(&p, |s, aud| {
        let aud = if aud == R {
            api.to_owned()
        } else {
            aud.to_owned()
        };
        auth0_token(vec![aud, userinfo.clone()], json!(s))
    })
    .await;
}

const TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
const API_CLIENT: &str = "6e74172b-be56-4843-9ff4-e66a39bb12e3";

#[tokio::test]
async fn entra_accepts_v1_and_v2_tokens_of_its_tenant_only_and_challenges_with_prefixed_scopes() {
    let (idp, dev) = vendor(
        |o| format!("{o}/{TENANT}/v2.0"),
        &format!("/{TENANT}/discovery/v2.0/keys"),
        |o| {
            let doc = json!({"issuer": format!("{o}/{TENANT}/v2.0")});
            vec![(
                format!("/{TENANT}/v2.0/.well-known/openid-configuration"),
                doc,
            )]
        },
    )
    .await;
    let p = Entra::new(TENANT, API_CLIENT)
        .authority_host(&idp.origin)
        .builder()
        .resource_url(R)
        .scopes_supported(["todo.read", "todo.write"])
        .required_scopes(["todo.read"])
        .build()
        .unwrap();
    assert_eq!(
        p.metadata().scopes_supported,
        [format!("{R}/todo.read"), format!("{R}/todo.write")]
    );
    assert_eq!(
        p.protected_resource().challenge_scope(),
        format!("{R}/todo.read")
    );
    let v2 = |aud: &str, scp: &str, tid: &str| {
        dev.mint(
            TokenSpec::new("AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ")
                .audience(aud)
                .typ(Some("JWT"))
                .claim("scp", json!(scp))
                .claim("azp", json!("client-app"))
                .claim("tid", json!(tid)),
        )
    };
    let t = verify(&p, &v2(API_CLIENT, "todo.read", TENANT))
        .await
        .unwrap();
    assert_eq!(scopes(&t), ["todo.read"]);
    assert_eq!(t.client_id(), Some("client-app"));
    // v1: issuer `<host>/<tenant>/` (sts.windows.net for the public cloud), aud the App ID URI
    // (R here), client in appid.
    let v1 = dev.mint(
        TokenSpec::new("user-oid")
            .issuer(format!("{}/{TENANT}/", idp.origin))
            .audience(R)
            .typ(Some("JWT"))
            .claim("scp", json!("todo.read todo.write"))
            .claim("appid", json!("legacy-client"))
            .claim("tid", json!(TENANT)),
    );
    let t = verify(&p, &v1).await.unwrap();
    assert_eq!(t.client_id(), Some("legacy-client"));
    assert_eq!(scopes(&t), ["todo.read", "todo.write"]);
    // Another tenant's token, even through our issuer's keys, is refused.
    let other = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    assert_eq!(
        verify(&p, &v2(API_CLIENT, "todo.read", other))
            .await
            .unwrap_err(),
        InvalidToken::MissingClaim
    );
    let other_iss = dev.mint(
        TokenSpec::new("x")
            .issuer(format!("{}/{other}/v2.0", idp.origin))
            .audience(API_CLIENT)
            .claim("tid", json!(other)),
    );
    assert_eq!(
        verify(&p, &other_iss).await.unwrap_err(),
        InvalidToken::Issuer
    );
    // App-only token: roles count as scopes when scp is absent.
    let app_only = dev.mint(
        TokenSpec::new("sp-oid")
            .audience(API_CLIENT)
            .claim("roles", json!(["todo.read"]))
            .claim("azp", json!("daemon"))
            .claim("tid", json!(TENANT)),
    );
    assert_eq!(scopes(&verify(&p, &app_only).await.unwrap()), ["todo.read"]);

    // Tokens carry the bare scopes the test kit's prefixed names stand for.
    let prefix = format!("{R}/");
    testkit(&p, |s, aud| {
        let bare: Vec<&str> = s
            .iter()
            .map(|x| x.strip_prefix(&prefix).unwrap_or(x))
            .collect();
        v2(
            if aud == R { API_CLIENT } else { aud },
            &bare.join(" "),
            TENANT,
        )
    })
    .await;
}

#[tokio::test]
async fn okta_reads_scp_and_cid_finds_keys_by_discovery_and_refuses_the_org_server() {
    // The keys are served only where the metadata's `jwks_uri` points, not at Okta's usual
    // `<issuer>/v1/keys`: the preset finds keys by discovery, and these tokens verify only if
    // it does (a fixed URL derived from the issuer meets a 404).
    const KEYS: &str = "/keys-named-only-by-the-metadata/okta";
    let (idp, dev) = vendor(
        |o| format!("{o}/oauth2/default"),
        KEYS,
        |o| {
            let iss = format!("{o}/oauth2/default");
            let doc = json!({"issuer": iss, "jwks_uri": format!("{o}{KEYS}")});
            vec![
                (
                    "/oauth2/default/.well-known/openid-configuration".into(),
                    doc.clone(),
                ),
                (
                    "/oauth2/default/.well-known/oauth-authorization-server".into(),
                    doc,
                ),
            ]
        },
    )
    .await;
    let issuer = format!("{}/oauth2/default", idp.origin);
    let p = Okta::new(&issuer)
        .audience("api://default")
        .builder()
        .resource_url(R)
        .scopes_supported(["todo:read"])
        .build()
        .unwrap();
    let okta_token = |aud: &str, scp: &[&str]| {
        dev.mint(
            TokenSpec::new("00uid4BxXw6I6TV4m0g3")
                .audience(aud)
                .typ(None)
                .claim("scp", json!(scp))
                .claim("cid", json!("0oa1client")),
        )
    };
    let t = verify(&p, &okta_token("api://default", &["todo:read"]))
        .await
        .unwrap();
    assert_eq!(scopes(&t), ["todo:read"]);
    assert_eq!(t.client_id(), Some("0oa1client"));
    assert_eq!(
        verify(&p, &okta_token("api://other", &["todo:read"]))
            .await
            .unwrap_err(),
        InvalidToken::Audience
    );
    let org = Okta::new(&idp.origin)
        .builder()
        .resource_url(R)
        .build()
        .unwrap_err();
    assert!(org.to_string().contains("/oauth2/"), "{org}");

    testkit(&p, |s, aud| okta_token(aud, s)).await;
}

#[tokio::test]
async fn cognito_takes_access_tokens_of_allowlisted_clients_only() {
    let pool = "eu-west-1_AbCdEf123";
    let (idp, dev) = vendor(
        |o| format!("{o}/{pool}"),
        &format!("/{pool}/.well-known/jwks.json"),
        |o| {
            vec![(
                format!("/{pool}/.well-known/openid-configuration"),
                json!({"issuer": format!("{o}/{pool}")}),
            )]
        },
    )
    .await;
    let rs = "https://todo.example.com";
    let p = Cognito::new("eu-west-1", pool, ["app-1", "app-2"])
        .issuer(format!("{}/{pool}", idp.origin))
        .resource_server(rs)
        .builder()
        .resource_url(R)
        .scopes_supported(["todo.read", "todo.write"])
        .build()
        .unwrap();
    assert_eq!(
        p.metadata().scopes_supported,
        [format!("{rs}/todo.read"), format!("{rs}/todo.write")]
    );
    let access = |client: &str, scopes: &[&str], aud: Option<&str>| {
        let mut spec = TokenSpec::new("b1c2d3e4-user")
            .typ(None)
            .client_id(client)
            .scopes(scopes.iter().copied())
            .claim("token_use", json!("access"));
        if let Some(a) = aud {
            spec = spec.audience(a);
        }
        dev.mint(spec)
    };
    let read = format!("{rs}/todo.read");
    let t = verify(&p, &access("app-1", &[&read, "openid"], None))
        .await
        .unwrap();
    assert_eq!(scopes(&t), ["todo.read", "openid"]);
    assert_eq!(
        verify(&p, &access("app-9", &[&read], None))
            .await
            .unwrap_err(),
        InvalidToken::Audience
    );
    // An ID token: aud is the client id, token_use is id.
    let id_token = dev.mint(
        TokenSpec::new("b1c2d3e4-user")
            .audience("app-1")
            .claim("token_use", json!("id"))
            .claim("email", json!("user@example.com")),
    );
    assert_eq!(
        verify(&p, &id_token).await.unwrap_err(),
        InvalidToken::Audience
    );
    // An allowlisted client's token whose token_use is not access.
    let as_id = dev.mint(
        TokenSpec::new("b1c2d3e4-user")
            .client_id("app-1")
            .claim("token_use", json!("id")),
    );
    assert_eq!(
        verify(&p, &as_id).await.unwrap_err(),
        InvalidToken::MissingClaim
    );
    // Resource binding: a present aud must name R.
    assert!(
        verify(&p, &access("app-1", &[&read], Some(R)))
            .await
            .is_ok()
    );
    assert_eq!(
        verify(
            &p,
            &access("app-1", &[&read], Some("https://other.example"))
        )
        .await
        .unwrap_err(),
        InvalidToken::Audience
    );

    // Without aud, the allowlisted client stands in for it through the bearer layer too.
    testkit(&p, |s, aud| access("app-2", s, (aud != R).then_some(aud))).await;
}

#[test]
fn presets_load_from_the_environment_and_errors_name_the_variable() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("MCP_AUTH_RESOURCE_URL", "https://mcp.example.com/mcp");
        assert_eq!(
            Auth0::from_env().unwrap_err().to_string(),
            "AUTH0_DOMAIN is missing"
        );
        jail.set_env("AUTH0_DOMAIN", "acme.us.auth0.com");
        jail.set_env("AUTH0_PERMISSIONS_AS_SCOPES", "perhaps");
        let e = Auth0::from_env().unwrap_err().to_string();
        assert!(e.contains("AUTH0_PERMISSIONS_AS_SCOPES"), "{e}");
        jail.set_env("AUTH0_PERMISSIONS_AS_SCOPES", "1");
        jail.set_env("AUTH0_AUDIENCE", "https://todo-api.example.com");
        let p = Auth0::from_env().unwrap();
        assert_eq!(p.idp().issuers(), ["https://acme.us.auth0.com/"]);
        assert!(
            p.audiences()
                .contains(&"https://todo-api.example.com".to_owned())
        );
        jail.set_env("AUTH0_DOMAIN", "http://acme.us.auth0.com");
        let e = Auth0::from_env().unwrap_err().to_string();
        assert!(e.starts_with("AUTH0_DOMAIN:"), "{e}");

        jail.set_env("ENTRA_TENANT_ID", "common");
        jail.set_env("ENTRA_CLIENT_ID", API_CLIENT);
        let e = Entra::from_env().unwrap_err().to_string();
        assert!(e.starts_with("ENTRA_TENANT_ID:"), "{e}");
        jail.set_env("ENTRA_TENANT_ID", TENANT);
        jail.set_env("ENTRA_AUTHORITY_HOST", "http://login.example.com");
        let e = Entra::from_env().unwrap_err().to_string();
        assert!(e.starts_with("ENTRA_AUTHORITY_HOST:"), "{e}");
        jail.set_env("ENTRA_AUTHORITY_HOST", "");
        jail.set_env("ENTRA_APP_ID_URI", "api://todo");
        let p = Entra::from_env().unwrap();
        assert_eq!(
            p.idp().issuers(),
            [
                format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
                format!("https://sts.windows.net/{TENANT}/")
            ]
        );
        assert_eq!(
            p.idp().jwks_uri(),
            format!("https://login.microsoftonline.com/{TENANT}/discovery/v2.0/keys")
        );
        assert!(p.audiences().contains(&"api://todo".to_owned()));

        jail.set_env("OKTA_ISSUER", "https://acme.okta.com");
        let e = Okta::from_env().unwrap_err().to_string();
        assert!(
            e.starts_with("OKTA_ISSUER:") && e.contains("/oauth2/"),
            "{e}"
        );
        jail.set_env("OKTA_ISSUER", "https://acme.okta.com/oauth2/default/");
        let p = Okta::from_env().unwrap();
        assert_eq!(
            p.metadata().authorization_servers,
            ["https://acme.okta.com/oauth2/default"]
        );

        jail.set_env("COGNITO_REGION", "eu-west-1");
        jail.set_env("COGNITO_USER_POOL_ID", "eu-west-1_Pool1");
        assert_eq!(
            Cognito::from_env().unwrap_err().to_string(),
            "COGNITO_CLIENT_IDS is missing"
        );
        jail.set_env("COGNITO_CLIENT_IDS", "app-1, app-2");
        let p = Cognito::from_env().unwrap();
        assert_eq!(
            p.idp().issuers(),
            ["https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Pool1"]
        );
        assert_eq!(
            p.protected_resource().audience_free_clients(),
            ["app-1", "app-2"]
        );
        jail.set_env("COGNITO_USER_POOL_ID", "../x");
        let e = Cognito::from_env().unwrap_err().to_string();
        assert!(e.starts_with("COGNITO_USER_POOL_ID:"), "{e}");
        jail.set_env("COGNITO_ISSUER", "http://cognito.example.com/pool");
        let e = Cognito::from_env().unwrap_err().to_string();
        assert!(e.starts_with("COGNITO_ISSUER:"), "{e}");
        Ok(())
    });
}
