//! Calling another API as the user from a todo tool: the `downstream_whoami` tool asks the IdP
//! for a token whose audience is the downstream API (RFC 8693 token exchange, or Entra's
//! on-behalf-of flow) and calls that API with it. The MCP token never leaves the server.
//!
//! | variable | meaning |
//! |---|---|
//! | `MCP_AUTH_EXCHANGE_TARGETS` | the downstream targets and their scopes (`<target>=<scope> <scope>; …`); turns the feature on |
//! | `MCP_AUTH_EXCHANGE_CLIENT_ID`, `MCP_AUTH_EXCHANGE_CLIENT_SECRET` | our client at the IdP (Entra: the client id defaults to `ENTRA_CLIENT_ID`) |
//! | `MCP_AUTH_EXCHANGE_AUTH_METHOD` | `client_secret_basic` (default; Entra: `client_secret_post`) or `client_secret_post` |
//! | `MCP_AUTH_EXCHANGE_TOKEN_ENDPOINT` | the token endpoint of the one issuer (else read from its metadata; with several issuers, each one's metadata) |
//! | `MCP_AUTH_EXCHANGE_GRANT` | `token_exchange` (default; Entra: `on_behalf_of`) |
//! | `MCP_AUTH_EXCHANGE_TARGET_PARAMETER` | `audience` (default), `resource` or `both` |
//! | `TODO_DOWNSTREAM_URL` | the URL `downstream_whoami` GETs |
//! | `TODO_DOWNSTREAM_TARGET` | the target it asks a token for (default: the only one) |

use mcp_auth_core::config::ConfigError;
use mcp_auth_core::exchange::{ExchangeConfig, TokenExchanger};
use mcp_auth_core::fetch::{HttpClient, check_url};
use mcp_auth_core::rmcp_ext::Auth;
use mcp_auth_jwt::presets::{Preset, entra::Entra};
use rmcp::ErrorData;
use url::Url;

use crate::providers::ProviderKind;

/// Largest downstream answer the tool passes on.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The downstream API the `downstream_whoami` tool calls, and the exchanger that gets its tokens.
#[derive(Debug, Clone)]
pub struct Downstream {
    url: Url,
    target: String,
    exchanger: TokenExchanger,
    http: HttpClient,
}

fn invalid(variable: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        variable: variable.into(),
        reason: reason.into(),
    }
}

impl Downstream {
    /// A downstream API at `url`, called with tokens for `target` from `exchanger`.
    pub fn new(url: Url, target: impl Into<String>, exchanger: TokenExchanger) -> Self {
        Downstream {
            url,
            target: target.into(),
            exchanger,
            http: HttpClient::shared(),
        }
    }

    /// From the environment (table in the module docs), for tokens of `issuers`: `None` when
    /// `MCP_AUTH_EXCHANGE_TARGETS` is unset. With the Entra provider the exchanger starts from
    /// the preset's on-behalf-of settings (token endpoint for the v1 and v2 issuers, client id).
    pub fn from_env(
        kind: ProviderKind,
        issuers: &[String],
    ) -> Result<Option<Downstream>, ConfigError> {
        let config = ExchangeConfig::from_env()?;
        let url = std::env::var("TODO_DOWNSTREAM_URL")
            .ok()
            .filter(|v| !v.trim().is_empty());
        if !config.is_enabled() {
            if url.is_some() {
                return Err(ConfigError::Missing {
                    variable: "MCP_AUTH_EXCHANGE_TARGETS (TODO_DOWNSTREAM_URL is set)".into(),
                });
            }
            return Ok(None);
        }
        let base = match kind {
            ProviderKind::Entra => {
                let figment = mcp_auth_core::config::figment(&<Entra as Preset>::ENV);
                <Entra as Preset>::load(&figment)?
                    .on_behalf_of()
                    .map_err(|e| ConfigError::from_build_in(&<Entra as Preset>::ENV, e))?
            }
            _ => TokenExchanger::builder(),
        };
        let exchanger = config
            .apply(base, issuers)?
            .build()
            .map_err(|e| ConfigError::from_build_in(&ExchangeConfig::ENV, e))?;
        let url = url.ok_or(ConfigError::Missing {
            variable: "TODO_DOWNSTREAM_URL".into(),
        })?;
        let url = Url::parse(url.trim())
            .map_err(|e| invalid("TODO_DOWNSTREAM_URL", format!("not a URL: {e}")))?;
        check_url(&url).map_err(|_| {
            invalid(
                "TODO_DOWNSTREAM_URL",
                "must use https (plain http only on loopback)",
            )
        })?;
        let target = match std::env::var("TODO_DOWNSTREAM_TARGET") {
            Ok(t) if !t.trim().is_empty() => t.trim().to_owned(),
            _ => {
                let mut all = exchanger.targets();
                match (all.next(), all.next()) {
                    (Some(t), None) => t.id().to_owned(),
                    _ => {
                        return Err(ConfigError::Missing {
                            variable: "TODO_DOWNSTREAM_TARGET (several targets are configured)"
                                .into(),
                        });
                    }
                }
            }
        };
        if !exchanger.targets().any(|t| t.id() == target) {
            return Err(invalid(
                "TODO_DOWNSTREAM_TARGET",
                "not one of MCP_AUTH_EXCHANGE_TARGETS",
            ));
        }
        Ok(Some(Downstream::new(url, target, exchanger)))
    }

    /// The exchanger (for the bearer layer).
    pub fn exchanger(&self) -> &TokenExchanger {
        &self.exchanger
    }

    /// The target the tool asks tokens for.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// GETs the downstream URL with a token exchanged for the caller; returns the answer.
    pub(crate) async fn call(&self, auth: &Auth) -> Result<String, ErrorData> {
        let token = auth.exchange_for(&self.target).await?;
        let unreachable = || ErrorData::internal_error("the downstream API is unreachable", None);
        let request = http::Request::get(self.url.as_str())
            .header(http::header::AUTHORIZATION, token.authorization())
            .header(http::header::ACCEPT, "application/json")
            .body(Default::default())
            .map_err(|_| unreachable())?;
        let resp = self
            .http
            .send(request, MAX_ANSWER_BYTES)
            .await
            .map_err(|_| unreachable())?;
        let status = resp.status();
        let body = resp.into_body();
        if !status.is_success() {
            return Err(ErrorData::internal_error(
                format!("the downstream API answered {}", status.as_u16()),
                None,
            ));
        }
        String::from_utf8(body.to_vec())
            .map_err(|_| ErrorData::internal_error("the downstream API answered non-UTF-8", None))
    }
}
