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

use mcp_auth_core::{BuildError, ResourceUrl};

use super::{OIDC, at, base, id_char, non_blank, preset, scope_char, token};
use crate::hosted::HostedIdp;

preset! {
    /// The Cognito preset: region, user pool, allowed app clients, optional resource server.
    /// Reads `COGNITO_REGION`, `COGNITO_USER_POOL_ID`, `COGNITO_CLIENT_IDS` (comma- or
    /// space-separated), `COGNITO_ISSUER` (instead of region and pool) and
    /// `COGNITO_RESOURCE_SERVER`.
    Cognito {
        /// The pool's region and id, and the app client ids allowed to call this server.
        new {
            region => cognito_region: String = REGION("COGNITO_REGION", "Cognito region"),
            pool => cognito_user_pool_id: String =
                POOL("COGNITO_USER_POOL_ID", "Cognito user pool id"),
            ids => cognito_client_ids: Vec<String> =
                CLIENTS("COGNITO_CLIENT_IDS", "Cognito app client ids")
                with "mcp_auth_core::config::deserialize_list",
        }
        set {
            /// Overrides the derived issuer (a local emulator, tests on 127.0.0.1).
            issuer => cognito_issuer: Option<String> = ISSUER("COGNITO_ISSUER", "Cognito issuer"),
            /// The resource server identifier whose scopes (`<identifier>/<scope>`) this server
            /// checks.
            resource_server => cognito_resource_server: Option<String> =
                SERVER("COGNITO_RESOURCE_SERVER", "Cognito resource server"),
        }
        idp: cognito_idp,
    }
}

/// Cognito's data sheet: `token_use` is `access`, the client allowlist stands in for `aud`,
/// resource-server scopes arrive prefixed.
fn cognito_idp(c: &Cognito, _: &ResourceUrl) -> Result<HostedIdp, BuildError> {
    let i = match non_blank(c.cognito_issuer.as_deref()) {
        Some(i) => base(&i, ISSUER)?,
        None => {
            let ok = |c: char| id_char(c) || c == '-' || c == '_';
            let region = token(&c.cognito_region, REGION, ok)?;
            let pool = token(&c.cognito_user_pool_id, POOL, ok)?;
            format!("https://cognito-idp.{region}.amazonaws.com/{pool}")
        }
    };
    let clients = &c.cognito_client_ids;
    if clients.is_empty() || clients.iter().any(|c| c.trim().is_empty()) {
        return Err(BuildError::Missing(CLIENTS));
    }
    let mut idp = at("Cognito", &i, "/.well-known/jwks.json", OIDC)
        .require_claim("token_use", "access")
        .clients_in_place_of_audience(clients.iter().map(|c| c.trim()))
        .setup_hint("send access tokens (not ID tokens) of a client in COGNITO_CLIENT_IDS");
    if let Some(rs) = non_blank(c.cognito_resource_server.as_deref()) {
        let rs = token(&rs, SERVER, scope_char)?;
        idp = idp.challenge_scope_prefix(rs, true);
    }
    Ok(idp)
}
