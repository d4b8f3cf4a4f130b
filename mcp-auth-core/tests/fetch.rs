//! The shared outbound client's request API (`fetch::HttpClient::send` and `post_form`) against
//! a local server: what is sent (form, credentials), what comes back (any status, capped body),
//! and the URLs it refuses.

use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use bytes::Bytes;
use mcp_auth_core::client_auth::{AuthMethod, ClientAuth, ClientSecret, CredentialSettings};
use mcp_auth_core::fetch::{FetchError, HttpClient, HttpClientConfig};
use url::Url;

/// Serves `app` on a loopback port; the server stops when the returned sender is dropped.
async fn serve(app: Router) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    (base, stop)
}

fn client() -> HttpClient {
    HttpClient::new(HttpClientConfig {
        timeout: Duration::from_secs(5),
        ..HttpClientConfig::default()
    })
    .unwrap()
}

/// Echoes what a form POST carried: the content type, the `Authorization` header and the body.
async fn echo(headers: HeaderMap, body: Bytes) -> String {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    format!(
        "{}|{}|{}",
        h("content-type"),
        h("authorization"),
        String::from_utf8_lossy(&body)
    )
}

#[tokio::test]
async fn post_form_sends_the_form_and_the_client_credentials() {
    let app = Router::new().route("/token", post(echo));
    let (base, _stop) = serve(app).await;
    let url = Url::parse(&format!("{base}/token")).unwrap();
    let params = [("token", "a b&c"), ("token_type_hint", "access_token")];

    let prepare = |method, id: &str, secret: &str| {
        ClientAuth::new(method, Some(id.to_owned()), ClientSecret::new(secret))
            .prepare(CredentialSettings::default())
            .unwrap()
    };
    let basic = prepare(AuthMethod::ClientSecretBasic, "rs client", "s3cret:x");
    let answer = client()
        .post_form(&url, &params, Some(&basic), 4096)
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let text = String::from_utf8(answer.body().to_vec()).unwrap();
    let [ctype, authz, form]: [&str; 3] =
        text.splitn(3, '|').collect::<Vec<_>>().try_into().unwrap();
    assert_eq!(ctype, "application/x-www-form-urlencoded");
    // RFC 6749 §2.3.1: id and secret form-encoded, then base64 of "id:secret".
    use base64::Engine as _;
    let expected = base64::engine::general_purpose::STANDARD.encode("rs+client:s3cret%3Ax");
    assert_eq!(authz, format!("Basic {expected}"));
    assert_eq!(form, "token=a+b%26c&token_type_hint=access_token");

    let post = prepare(AuthMethod::ClientSecretPost, "rs", "s3cret");
    let answer = client()
        .post_form(&url, &params, Some(&post), 4096)
        .await
        .unwrap();
    let text = String::from_utf8(answer.body().to_vec()).unwrap();
    assert!(
        text.starts_with("application/x-www-form-urlencoded|-|"),
        "{text}"
    );
    assert!(
        text.ends_with("&client_id=rs&client_secret=s3cret"),
        "credentials after the parameters: {text}"
    );
}

#[tokio::test]
async fn send_returns_every_status_with_its_capped_body() {
    let app = Router::new()
        .route(
            "/teapot",
            get(|| async {
                (
                    axum::http::StatusCode::IM_A_TEAPOT,
                    [("retry-after", "7")],
                    "short",
                )
            }),
        )
        .route("/big", get(|| async { "x".repeat(10_000) }));
    let (base, _stop) = serve(app).await;

    let req = http::Request::get(format!("{base}/teapot"))
        .body(Bytes::new())
        .unwrap();
    let answer = client().send(req, 1024).await.unwrap();
    assert_eq!(answer.status(), 418);
    assert_eq!(answer.headers()["retry-after"], "7");
    assert_eq!(answer.body().as_ref(), b"short");

    let req = http::Request::get(format!("{base}/big"))
        .body(Bytes::new())
        .unwrap();
    assert_eq!(
        client().send(req, 1024).await.unwrap_err(),
        FetchError::TooLarge(1024)
    );
}

#[tokio::test]
async fn plain_http_off_loopback_is_refused_before_connecting() {
    let req = http::Request::get("http://idp.example.com/x")
        .body(Bytes::new())
        .unwrap();
    assert_eq!(
        client().send(req, 1024).await.unwrap_err(),
        FetchError::InsecureUrl
    );
    let url = Url::parse("http://idp.example.com/token").unwrap();
    assert_eq!(
        client()
            .post_form(&url, &[("a", "b")], None, 1024)
            .await
            .unwrap_err(),
        FetchError::InsecureUrl
    );
}
