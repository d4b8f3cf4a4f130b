//! Microsoft Entra ID: v1 and v2 access tokens for an API registered in a tenant.
//!
//! Facts from Microsoft's identity-platform documentation: v2 tokens carry `iss` =
//! `https://login.microsoftonline.com/<tenant>/v2.0` and `aud` = the API's application (client)
//! id; v1 tokens carry `iss` = `https://sts.windows.net/<tenant>/`, `aud` = the Application ID
//! URI or the client id, and the calling client in `appid` (v2: `azp`); `tid` is the tenant;
//! delegated scopes are in `scp` (space-separated), application permissions in `roles`; keys
//! are at `<host>/<tenant>/discovery/v2.0/keys`. Clients must request `<App ID URI>/<scope>`
//! while tokens carry `<scope>`, and Entra v2 refuses a `resource` parameter that does not match
//! the requested scopes' App ID URI (AADSTS9010010); MCP clients send `resource=R` (MCP
//! authorization spec, RFC 8707), so the working setup is App ID URI = R.
//!
//! Every URL derives from the authority host, the v1 issuer included: with the public cloud's
//! host it is `https://sts.windows.net/<tenant>/`, with Azure China's
//! (`https://login.chinacloudapi.cn`) `https://sts.chinacloudapi.cn/<tenant>/`, and with any
//! other host (a local emulator, a test server on 127.0.0.1) `<host>/<tenant>/`, so tests serve
//! Entra's whole URL layout on one origin. A cloud whose v1 issuer is none of these needs v2
//! tokens (set `accessTokenAcceptedVersion` to 2 in the app manifest).
//!
//! ```
//! use mcp_auth_core::AuthProvider;
//! use mcp_auth_jwt::presets::{Preset, entra::Entra};
//!
//! let tenant = "7b0e3c1a-0000-4000-8000-000000000001";
//! let provider = Entra::new(tenant, "0c5f0e2d-aaaa-4bbb-8ccc-000000000002")
//!     .builder()
//!     .resource_url("https://mcp.example.com/mcp")
//!     .scopes_supported(["todo.read"])
//!     .build()?;
//! // Clients are told to ask for the prefixed scope; tokens carry the bare one.
//! assert_eq!(provider.metadata().scopes_supported, ["https://mcp.example.com/mcp/todo.read"]);
//! # Ok::<(), mcp_auth_core::BuildError>(())
//! ```

use mcp_auth_core::{BuildError, ResourceUrl};

use super::{OIDC, id_char, non_blank, or_resource, preset, token};
use crate::hosted::{HostedIdp, origin};

/// The public cloud's authority host, the default.
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";

/// The v1 issuer for `tenant` under the authority host `host` (an origin): the security token
/// service of the public cloud or Azure China, else the authority host itself.
fn v1_issuer(host: &str, tenant: &str) -> String {
    let sts = match host {
        DEFAULT_AUTHORITY_HOST => "https://sts.windows.net",
        "https://login.chinacloudapi.cn" => "https://sts.chinacloudapi.cn",
        other => other,
    };
    format!("{sts}/{tenant}/")
}

preset! {
    /// The Entra preset: the tenant, the MCP server's application id, its App ID URI, the
    /// authority host. Reads `ENTRA_TENANT_ID`, `ENTRA_CLIENT_ID`, `ENTRA_APP_ID_URI`,
    /// `ENTRA_AUTHORITY_HOST`.
    Entra {
        /// The directory (tenant) id and the MCP server's application (client) id.
        new {
            tenant_id => entra_tenant_id: String = TENANT("ENTRA_TENANT_ID", "Entra tenant id"),
            client_id => entra_client_id: String = CLIENT("ENTRA_CLIENT_ID", "Entra client id"),
        }
        set {
            /// The Application ID URI (default R; anything else gets a start-up warning).
            app_id_uri => entra_app_id_uri: Option<String> =
                APP_ID_URI("ENTRA_APP_ID_URI", "Entra Application ID URI"),
            /// The authority host (default [`DEFAULT_AUTHORITY_HOST`]; sovereign clouds, tests).
            authority_host => entra_authority_host: Option<String> =
                HOST("ENTRA_AUTHORITY_HOST", "Entra authority host"),
        }
        idp: entra_idp,
    }
}

/// Entra's data sheet: v1 and v2 issuers, the tenant check, `scp` then `roles`, challenge
/// scopes under the App ID URI.
fn entra_idp(e: &Entra, resource: &ResourceUrl) -> Result<HostedIdp, BuildError> {
    let id = |c: char| id_char(c) || c == '-' || c == '.';
    let t = token(&e.entra_tenant_id, TENANT, id)?;
    if ["common", "organizations", "consumers"].contains(&t.to_ascii_lowercase().as_str()) {
        return Err(BuildError::invalid(TENANT, "one tenant id: tid is checked"));
    }
    let client = token(&e.entra_client_id, CLIENT, id)?;
    let host = non_blank(e.entra_authority_host.as_deref());
    let h = origin(host.as_deref().unwrap_or(DEFAULT_AUTHORITY_HOST), HOST)?;
    let uri = or_resource(e.entra_app_id_uri.as_deref(), resource, APP_ID_URI)?;
    if uri != resource.as_str() {
        tracing::warn!(app_id_uri = %uri, resource = %resource, "Entra App ID URI differs from R: MCP clients send resource=R, which Entra v2 refuses unless it is the scopes' App ID URI (AADSTS9010010)");
    }
    let v2 = format!("{h}/{t}/v2.0");
    Ok(HostedIdp::new(
        "Entra ID",
        format!("{h}/{t}/discovery/v2.0/keys"),
        format!("{v2}{OIDC}"),
    )
    .issuer(&v2)
    .issuer(v1_issuer(&h, &t))
    .authorization_server(v2)
    .accepted_audience(client)
    .accepted_audience(&uri)
    .require_claim("tid", t)
    .scope_claims(["scp", "roles"])
    .client_id_claims(["azp", "appid"])
    .challenge_scope_prefix(uri, false)
    .setup_hint("set the App ID URI to R and expose the scopes under it"))
}

/// Entra's on-behalf-of flow (feature `exchange`).
#[cfg(feature = "exchange")]
mod obo;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_issuer_follows_the_authority_host() {
        let t = "tenant-1";
        assert_eq!(
            v1_issuer(DEFAULT_AUTHORITY_HOST, t),
            "https://sts.windows.net/tenant-1/"
        );
        assert_eq!(
            v1_issuer("https://login.chinacloudapi.cn", t),
            "https://sts.chinacloudapi.cn/tenant-1/"
        );
        assert_eq!(
            v1_issuer("http://127.0.0.1:4000", t),
            "http://127.0.0.1:4000/tenant-1/"
        );
    }
}
