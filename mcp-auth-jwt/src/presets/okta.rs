//! Okta: a custom authorization server.
//!
//! Facts from Okta's documentation: a custom authorization server's issuer is
//! `https://<org>/oauth2/<server id>` (the built-in one is `.../oauth2/default`, audience
//! `api://default`); the org authorization server (issuer without `/oauth2/`) mints tokens for
//! Okta's own APIs, which a resource server cannot validate; access tokens carry scopes in `scp`
//! (an array) and the client in `cid`; metadata is at `<issuer>/.well-known/oauth-authorization-server`.
//!
//! ```
//! use mcp_auth_core::AuthProvider;
//! use mcp_auth_jwt::presets::{Preset, okta::Okta};
//!
//! let r = "https://mcp.example.com/mcp";
//! let provider = Okta::new("https://acme.okta.com/oauth2/default")
//!     .audience("api://default")
//!     .builder()
//!     .resource_url(r)
//!     .build()?;
//! assert_eq!(provider.metadata().authorization_servers, ["https://acme.okta.com/oauth2/default"]);
//! // The org authorization server is refused, with a message saying why.
//! assert!(Okta::new("https://acme.okta.com").builder().resource_url(r).build().is_err());
//! # Ok::<(), mcp_auth_core::BuildError>(())
//! ```

use mcp_auth_core::config::EnvTable;
use mcp_auth_core::{BuildError, ResourceUrl, Setting};
use serde::Deserialize;

use super::{Preset, at, base, env_table, non_blank};
use crate::hosted::HostedIdp;

const ISSUER: Setting = Setting::new("okta_issuer", "Okta issuer");

/// The Okta preset: a custom authorization server's issuer and audience. Reads `OKTA_ISSUER`
/// and `OKTA_AUDIENCE`.
#[derive(Debug, Clone, Deserialize)]
pub struct Okta {
    okta_issuer: String,
    okta_audience: Option<String>,
}

impl Okta {
    /// The issuer of a custom authorization server (`https://<org>/oauth2/<id>`).
    pub fn new(issuer: impl Into<String>) -> Self {
        let okta_issuer = issuer.into();
        Okta {
            okta_issuer,
            okta_audience: None,
        }
    }

    /// The authorization server's audience, when it is not R (`api://default`).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.okta_audience = Some(audience.into());
        self
    }
}

impl Preset for Okta {
    const ENV: EnvTable = env_table!(
        ("okta_issuer", "OKTA_ISSUER"),
        ("okta_audience", "OKTA_AUDIENCE")
    );

    fn idp(&self, _: &ResourceUrl) -> Result<HostedIdp, BuildError> {
        let i = base(&self.okta_issuer, ISSUER)?;
        if !i.contains("/oauth2/") {
            return Err(BuildError::invalid(
                ISSUER,
                "use a custom authorization server's issuer, https://<org>/oauth2/<id> (the org server's tokens are for Okta's own APIs)",
            ));
        }
        let mut idp = at(
            "Okta",
            &i,
            "/v1/keys",
            "/.well-known/oauth-authorization-server",
        )
        .discover_keys()
        .scope_claims(["scp"])
        .client_id_claims(["cid"])
        .setup_hint("the authorization server's audience must be R or OKTA_AUDIENCE");
        if let Some(a) = non_blank(self.okta_audience.as_deref()) {
            idp = idp.accepted_audience(a);
        }
        Ok(idp)
    }
}
