//! Amazon Cognito user pools.
//!
//! Facts from the Cognito documentation: a user pool's issuer is
//! `https://cognito-idp.<region>.amazonaws.com/<pool id>`, its keys at
//! `<issuer>/.well-known/jwks.json`; access tokens carry `token_use` = `access`, the app client
//! in `client_id`, scopes in `scope`, and usually no `aud` (ID tokens carry `token_use` = `id`
//! and `aud` = the client id); a resource server's custom scopes are `<identifier>/<scope>`.
//!
//! Why this preset differs: without `aud`, what binds a token to this MCP server is the app
//! client that asked for it. `COGNITO_CLIENT_IDS` is that allowlist, checked by the verifier and,
//! per resource, by the bearer layer in place of the audience, so a verifier shared by two
//! resources still keeps one resource's clients out of the other. A token that does carry `aud`
//! (Cognito's resource binding) must name R.
//!
//! ```
//! use mcp_auth_core::AuthProvider;
//! use mcp_auth_jwt::presets::{Preset, cognito::Cognito};
//!
//! let provider = Cognito::new("eu-west-1", "eu-west-1_AbC123", ["app-client-1"])
//!     .resource_server("https://todo.example.com")
//!     .builder()
//!     .resource_url("https://mcp.example.com/mcp")
//!     .scopes_supported(["todo.read"])
//!     .build()?;
//! assert_eq!(provider.metadata().scopes_supported, ["https://todo.example.com/todo.read"]);
//! assert_eq!(provider.protected_resource().audience_free_clients(), ["app-client-1"]);
//! # Ok::<(), mcp_auth_core::BuildError>(())
//! ```

use mcp_auth_core::config::{EnvTable, deserialize_list};
use mcp_auth_core::{BuildError, ResourceUrl, Setting};
use serde::Deserialize;

use super::{OIDC, Preset, at, base, env_table, id_char, non_blank, scope_char, token};
use crate::hosted::HostedIdp;

const REGION: Setting = Setting::new("cognito_region", "Cognito region");
const POOL: Setting = Setting::new("cognito_user_pool_id", "Cognito user pool id");
const CLIENTS: Setting = Setting::new("cognito_client_ids", "Cognito app client ids");
const ISSUER: Setting = Setting::new("cognito_issuer", "Cognito issuer");
const SERVER: Setting = Setting::new("cognito_resource_server", "Cognito resource server");

/// The Cognito preset: region, user pool, allowed app clients, optional resource server. Reads
/// `COGNITO_REGION`, `COGNITO_USER_POOL_ID`, `COGNITO_CLIENT_IDS` (comma- or space-separated),
/// `COGNITO_ISSUER` (instead of region and pool) and `COGNITO_RESOURCE_SERVER`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Cognito {
    cognito_region: String,
    cognito_user_pool_id: String,
    #[serde(deserialize_with = "deserialize_list")]
    cognito_client_ids: Vec<String>,
    cognito_issuer: Option<String>,
    cognito_resource_server: Option<String>,
}

impl Cognito {
    /// The pool's region and id, and the app client ids allowed to call this server.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(
        region: &str,
        pool: &str,
        ids: I,
    ) -> Self {
        Cognito {
            cognito_region: region.into(),
            cognito_user_pool_id: pool.into(),
            cognito_client_ids: ids.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Overrides the derived issuer (a local emulator, tests on 127.0.0.1).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.cognito_issuer = Some(issuer.into());
        self
    }

    /// The resource server identifier whose scopes (`<identifier>/<scope>`) this server checks.
    pub fn resource_server(mut self, identifier: impl Into<String>) -> Self {
        self.cognito_resource_server = Some(identifier.into());
        self
    }
}

impl Preset for Cognito {
    const ENV: EnvTable = env_table!(
        ("cognito_region", "COGNITO_REGION"),
        ("cognito_user_pool_id", "COGNITO_USER_POOL_ID"),
        ("cognito_client_ids", "COGNITO_CLIENT_IDS"),
        ("cognito_issuer", "COGNITO_ISSUER"),
        ("cognito_resource_server", "COGNITO_RESOURCE_SERVER"),
    );

    fn idp(&self, _: &ResourceUrl) -> Result<HostedIdp, BuildError> {
        let i = match non_blank(self.cognito_issuer.as_deref()) {
            Some(i) => base(&i, ISSUER)?,
            None => {
                let ok = |c: char| id_char(c) || c == '-' || c == '_';
                let region = token(&self.cognito_region, REGION, ok)?;
                let pool = token(&self.cognito_user_pool_id, POOL, ok)?;
                format!("https://cognito-idp.{region}.amazonaws.com/{pool}")
            }
        };
        let clients = &self.cognito_client_ids;
        if clients.is_empty() || clients.iter().any(|c| c.trim().is_empty()) {
            return Err(BuildError::Missing(CLIENTS));
        }
        let mut idp = at("Cognito", &i, "/.well-known/jwks.json", OIDC)
            .require_claim("token_use", "access")
            .clients_in_place_of_audience(clients.iter().map(|c| c.trim()))
            .setup_hint("send access tokens (not ID tokens) of a client in COGNITO_CLIENT_IDS");
        if let Some(rs) = non_blank(self.cognito_resource_server.as_deref()) {
            let rs = token(&rs, SERVER, scope_char)?;
            idp = idp.challenge_scope_prefix(rs, true);
        }
        Ok(idp)
    }
}
