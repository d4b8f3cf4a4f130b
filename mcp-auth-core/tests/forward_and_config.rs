//! The authorization-server metadata forwarder and figment configuration.
#![allow(clippy::result_large_err)] // figment::Jail closures return figment::Error

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::{Server, client, fake};
use http::header;
use mcp_auth_core::config::{ConfigError, CoreConfig, EnvTable};
use mcp_auth_core::fetch::{HttpClient, HttpClientConfig};
use mcp_auth_core::forward::MetadataForwarder;
use mcp_auth_core::{AuthProvider, RemoteAuthProvider};

/// Upstream stub whose answer is chosen by `mode`: 0 JSON object, 1 HTTP 500, 2 JSON array,
/// 3 redirect, 4 hang.
async fn upstream(mode: Arc<AtomicUsize>, hits: Arc<AtomicUsize>) -> Server {
    let app = Router::new().route(
        "/.well-known/oauth-authorization-server",
        get(move |headers: http::HeaderMap| {
            let mode = mode.clone();
            let hits = hits.clone();
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                assert!(headers.get(header::AUTHORIZATION).is_none(), "client headers leaked");
                match mode.load(Ordering::SeqCst) {
                    0 => (
                        http::StatusCode::OK,
                        [(header::LOCATION, "")],
                        r#"{"issuer":"https://idp.example.com","token_endpoint":"https://idp.example.com/token"}"#,
                    ),
                    1 => (http::StatusCode::INTERNAL_SERVER_ERROR, [(header::LOCATION, "")], "secret stack trace"),
                    2 => (http::StatusCode::OK, [(header::LOCATION, "")], "[1,2]"),
                    3 => (http::StatusCode::FOUND, [(header::LOCATION, "https://evil.example/")], ""),
                    _ => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        (http::StatusCode::OK, [(header::LOCATION, "")], "{}")
                    }
                }
            }
        }),
    );
    Server::start(app).await
}

fn quick_client() -> HttpClient {
    HttpClient::new(HttpClientConfig {
        timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
        max_body_bytes: 64 * 1024,
    })
    .unwrap()
}

#[tokio::test]
async fn forwards_caches_and_hides_upstream_failures() {
    let mode = Arc::new(AtomicUsize::new(0));
    let hits = Arc::new(AtomicUsize::new(0));
    let up = upstream(mode.clone(), hits.clone()).await;
    let fwd = MetadataForwarder::new(&up.url("/.well-known/oauth-authorization-server"))
        .unwrap()
        .http_client(quick_client());
    let srv = Server::start(fwd.router()).await;
    let c = client();
    for _ in 0..3 {
        let resp = c
            .get(srv.url("/.well-known/oauth-authorization-server"))
            .header(header::AUTHORIZATION, "Bearer must-not-be-forwarded")
            .header(header::ORIGIN, "https://app.example")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        let doc: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(
            doc["issuer"], "https://idp.example.com",
            "issuer never rewritten"
        );
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "cached after the first fetch"
    );
    srv.stop().await;

    for m in [1, 2, 3, 4] {
        mode.store(m, Ordering::SeqCst);
        let fwd = MetadataForwarder::new(&up.url("/.well-known/oauth-authorization-server"))
            .unwrap()
            .http_client(quick_client());
        let srv = Server::start(fwd.router()).await;
        let before = hits.load(Ordering::SeqCst);
        for _ in 0..2 {
            let resp = c
                .get(srv.url("/.well-known/oauth-authorization-server"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 502, "mode {m}");
            assert_eq!(
                resp.text().await.unwrap(),
                r#"{"error":"upstream_unavailable"}"#
            );
        }
        assert_eq!(
            hits.load(Ordering::SeqCst) - before,
            2,
            "failures are not cached (mode {m})"
        );
        srv.stop().await;
    }
    up.stop().await;
}

#[test]
fn forwarder_refuses_plain_http_off_loopback() {
    assert!(MetadataForwarder::new("http://idp.example.com/.well-known/x").is_err());
    assert!(MetadataForwarder::new("https://idp.example.com/.well-known/x").is_ok());
}

#[test]
fn env_configuration_and_errors_name_the_variable() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("MCP_AUTH_RESOURCE_URL", "https://api.example.com/mcp/");
        jail.set_env("MCP_AUTH_AUTHORIZATION_SERVERS", "https://idp.example.com");
        jail.set_env("MCP_AUTH_SCOPES_SUPPORTED", "todo:read, todo:write");
        jail.set_env("MCP_AUTH_INITIAL_SCOPES", "todo:read");
        jail.set_env("MCP_AUTH_RESOURCE_NAME", "0123");
        let cfg = CoreConfig::from_env().unwrap();
        assert_eq!(
            cfg.resource_name.as_deref(),
            Some("0123"),
            "raw strings, not numbers"
        );
        let p = RemoteAuthProvider::from_config(&cfg, fake()).unwrap();
        assert_eq!(p.metadata().resource, "https://api.example.com/mcp");
        assert_eq!(
            p.metadata().scopes_supported,
            vec!["todo:read", "todo:write"]
        );

        jail.set_env("MCP_AUTH_REQUIRED_SCOPES", "bad\"scope");
        let cfg = CoreConfig::from_env().unwrap();
        let err = RemoteAuthProvider::from_config(&cfg, fake()).unwrap_err();
        assert!(
            err.to_string().starts_with("MCP_AUTH_REQUIRED_SCOPES"),
            "{err}"
        );

        jail.set_env("MCP_AUTH_REQUIRED_SCOPES", "");
        jail.set_env("MCP_AUTH_RESOURCE_URL", "http://api.example.com/mcp");
        let cfg = CoreConfig::from_env().unwrap();
        let err = RemoteAuthProvider::from_config(&cfg, fake()).unwrap_err();
        assert!(
            err.to_string().starts_with("MCP_AUTH_RESOURCE_URL"),
            "{err}"
        );

        jail.set_env("MCP_AUTH_RESOURCE_URL", "https://api.example.com/mcp");
        jail.set_env("MCP_AUTH_AUTHORIZATION_SERVERS", "");
        let cfg = CoreConfig::from_env().unwrap();
        let err = RemoteAuthProvider::from_config(&cfg, fake()).unwrap_err();
        assert!(
            err.to_string().contains("MCP_AUTH_AUTHORIZATION_SERVERS"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn toml_file_is_read_and_env_wins() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "auth.toml",
            r#"
            resource_url = "https://file.example.com/mcp"
            scopes_supported = ["a", "b"]
            "#,
        )?;
        jail.set_env("MCP_AUTH_CONFIG_FILE", "auth.toml");
        let cfg = CoreConfig::from_env().unwrap();
        assert_eq!(
            cfg.resource_url.as_deref(),
            Some("https://file.example.com/mcp")
        );
        assert_eq!(cfg.scopes_supported, vec!["a", "b"]);
        jail.set_env("MCP_AUTH_RESOURCE_URL", "https://env.example.com/mcp");
        let cfg = CoreConfig::from_env().unwrap();
        assert_eq!(
            cfg.resource_url.as_deref(),
            Some("https://env.example.com/mcp")
        );
        Ok(())
    });
}

#[test]
fn conflicting_aliases_fail() {
    const TABLE: EnvTable = EnvTable::new(&[
        ("domain", "AUTHKIT_DOMAIN"),
        ("domain", "MCP_AUTH_WORKOS_AUTHKIT_DOMAIN"),
    ]);
    #[derive(serde::Deserialize, Debug)]
    struct Cfg {
        domain: String,
    }
    figment::Jail::expect_with(|jail| {
        jail.set_env("AUTHKIT_DOMAIN", "a.authkit.app");
        jail.set_env("MCP_AUTH_WORKOS_AUTHKIT_DOMAIN", "a.authkit.app");
        let cfg: Cfg =
            mcp_auth_core::config::extract(&mcp_auth_core::config::figment(&TABLE), &TABLE)
                .unwrap();
        assert_eq!(cfg.domain, "a.authkit.app");
        jail.set_env("MCP_AUTH_WORKOS_AUTHKIT_DOMAIN", "b.authkit.app");
        let err =
            mcp_auth_core::config::extract::<Cfg>(&mcp_auth_core::config::figment(&TABLE), &TABLE)
                .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("AUTHKIT_DOMAIN") && text.contains("MCP_AUTH_WORKOS_AUTHKIT_DOMAIN"),
            "{text}"
        );
        jail.set_env("AUTHKIT_DOMAIN", "");
        jail.set_env("MCP_AUTH_WORKOS_AUTHKIT_DOMAIN", "");
        let err =
            mcp_auth_core::config::extract::<Cfg>(&mcp_auth_core::config::figment(&TABLE), &TABLE)
                .unwrap_err();
        assert_eq!(
            err,
            ConfigError::Missing {
                variable: "AUTHKIT_DOMAIN".into()
            }
        );
        Ok(())
    });
}
