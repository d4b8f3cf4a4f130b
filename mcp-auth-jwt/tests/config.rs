//! Configuration from the environment: names, defaults and errors that name the variable.
#![allow(clippy::result_large_err)] // figment::Jail closures return figment::Error

use figment::Jail;
use mcp_auth_core::config::ConfigError;
use mcp_auth_jwt::dev::{DevAlg, DevIssuer, TokenSpec};
use mcp_auth_jwt::{AccessToken, InvalidToken, JwtVerifier, TokenVerifier, VerifyError};

/// Why a token was refused; panics when it was accepted or the IdP was the problem.
fn reason(result: Result<AccessToken, VerifyError>) -> InvalidToken {
    match result {
        Err(VerifyError::Invalid(r)) => r,
        other => panic!("expected a refused token, got {other:?}"),
    }
}

fn variable(err: ConfigError) -> String {
    match err {
        ConfigError::Missing { variable } | ConfigError::Invalid { variable, .. } => {
            variable.into_owned()
        }
        other => panic!("expected a variable-naming error, got {other:?}"),
    }
}

#[test]
fn audience_defaults_to_the_resource_url() {
    Jail::expect_with(|jail| {
        let dev = DevIssuer::generate("https://issuer.test");
        jail.set_env("MCP_AUTH_JWT_PUBLIC_KEY", dev.jwks_json().to_string());
        jail.set_env("MCP_AUTH_JWT_ISSUER", "https://issuer.test");
        jail.set_env("MCP_AUTH_JWT_ALGORITHMS", "RS256, ES256 EdDSA");
        jail.set_env("MCP_AUTH_RESOURCE_URL", "http://127.0.0.1:8000/mcp");
        jail.set_env("MCP_AUTH_JWT_TYP", "strict");
        jail.set_env("MCP_AUTH_JWT_LEEWAY_SECS", "010");
        let v = JwtVerifier::from_env().expect("config loads");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let ok = dev.mint(
                TokenSpec::new("a")
                    .audience("http://127.0.0.1:8000/mcp")
                    .alg(DevAlg::ES256),
            );
            assert!(v.verify(&ok).await.is_ok());
            let other = dev.mint(TokenSpec::new("a").audience("http://127.0.0.1:8000/other"));
            assert_eq!(reason(v.verify(&other).await), InvalidToken::Audience);
            // strict typ from the environment
            let jwt_typ = dev.mint(
                TokenSpec::new("a")
                    .audience("http://127.0.0.1:8000/mcp")
                    .typ(Some("JWT")),
            );
            assert_eq!(reason(v.verify(&jwt_typ).await), InvalidToken::Type);
        });
        Ok(())
    });
}

#[test]
fn an_audience_alias_keeps_the_resource_accepted() {
    Jail::expect_with(|jail| {
        let dev = DevIssuer::generate("https://issuer.test");
        jail.set_env("MCP_AUTH_JWT_PUBLIC_KEY", dev.jwks_json().to_string());
        jail.set_env("MCP_AUTH_JWT_ISSUER", "https://issuer.test");
        jail.set_env("MCP_AUTH_JWT_AUDIENCE", "api://todo");
        jail.set_env("MCP_AUTH_RESOURCE_URL", "http://127.0.0.1:8000/mcp");
        let v = JwtVerifier::from_env().unwrap();
        assert_eq!(
            v.accepted_audiences().unwrap(),
            ["http://127.0.0.1:8000/mcp", "api://todo"]
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let t = dev.mint(TokenSpec::new("a").audience("api://todo"));
            assert!(v.verify(&t).await.is_ok());
            let t = dev.mint(TokenSpec::new("a").audience("http://127.0.0.1:8000/mcp"));
            assert!(
                v.verify(&t).await.is_ok(),
                "R stays accepted next to an alias"
            );
            let t = dev.mint(TokenSpec::new("a").audience("api://other"));
            assert_eq!(reason(v.verify(&t).await), InvalidToken::Audience);
        });
        Ok(())
    });
}

#[test]
fn errors_name_the_variable() {
    Jail::expect_with(|jail| {
        jail.set_env("MCP_AUTH_JWT_JWKS_URI", "https://idp.example.com/jwks");
        assert_eq!(
            variable(JwtVerifier::from_env().unwrap_err()),
            "MCP_AUTH_JWT_ISSUER (or MCP_AUTH_AUTHORIZATION_SERVERS)",
            "a JWKS URL without an issuer would accept any iss"
        );
        jail.set_env("MCP_AUTH_JWT_ISSUER", "https://idp.example.com");
        assert_eq!(
            variable(JwtVerifier::from_env().unwrap_err()),
            "MCP_AUTH_JWT_AUDIENCE (or MCP_AUTH_RESOURCE_URL)"
        );
        jail.set_env("MCP_AUTH_RESOURCE_URL", "https://api.example.com/mcp");
        assert!(JwtVerifier::from_env().is_ok());

        for (var, value) in [
            ("MCP_AUTH_JWT_ALGORITHMS", "RS256 none"),
            ("MCP_AUTH_JWT_ALGORITHMS", "HS256"),
            ("MCP_AUTH_JWT_LEEWAY_SECS", "thirty"),
            ("MCP_AUTH_JWT_TYP", "loose"),
            (
                "MCP_AUTH_JWT_PUBLIC_KEY",
                "-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----",
            ),
            ("MCP_AUTH_JWT_JWKS_URI", "http://idp.example.com/jwks"),
            ("MCP_AUTH_RESOURCE_URL", "http://api.example.com/mcp"),
        ] {
            jail.set_env(var, value);
            assert_eq!(
                variable(JwtVerifier::from_env().unwrap_err()),
                var,
                "{var}={value}"
            );
            match var {
                "MCP_AUTH_JWT_JWKS_URI" => jail.set_env(var, "https://idp.example.com/jwks"),
                "MCP_AUTH_RESOURCE_URL" => jail.set_env(var, "https://api.example.com/mcp"),
                _ => jail.set_env(var, ""),
            }
        }
        Ok(())
    });
}

#[test]
fn an_issuer_is_required_and_defaults_to_the_authorization_servers() {
    Jail::expect_with(|jail| {
        jail.set_env("MCP_AUTH_RESOURCE_URL", "https://api.example.com/mcp");
        let var = variable(JwtVerifier::from_env().unwrap_err());
        assert_eq!(
            var,
            "MCP_AUTH_JWT_ISSUER (or MCP_AUTH_AUTHORIZATION_SERVERS)"
        );
        jail.set_env("MCP_AUTH_JWT_JWKS_URI", "https://idp.example.com/jwks");
        jail.set_env(
            "MCP_AUTH_AUTHORIZATION_SERVERS",
            "https://a.example.com https://b.example.com",
        );
        let v = JwtVerifier::from_env().unwrap();
        assert_eq!(
            v.issuers(),
            ["https://a.example.com", "https://b.example.com"]
        );
        Ok(())
    });
}
