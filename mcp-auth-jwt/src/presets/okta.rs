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

use mcp_auth_core::{BuildError, ResourceUrl};

use super::{at, base, non_blank, preset};
use crate::hosted::HostedIdp;

preset! {
    /// The Okta preset: a custom authorization server's issuer and audience. Reads
    /// `OKTA_ISSUER` and `OKTA_AUDIENCE`.
    Okta {
        /// The issuer of a custom authorization server (`https://<org>/oauth2/<id>`).
        new {
            issuer => okta_issuer: String = ISSUER("OKTA_ISSUER", "Okta issuer"),
        }
        set {
            /// The authorization server's audience, when it is not R (`api://default`).
            audience => okta_audience: Option<String> = AUDIENCE("OKTA_AUDIENCE", "Okta audience"),
        }
        idp: okta_idp,
    }
}

/// Okta's data sheet: a custom authorization server only, keys by discovery, `scp` and `cid`.
fn okta_idp(o: &Okta, _: &ResourceUrl) -> Result<HostedIdp, BuildError> {
    let i = base(&o.okta_issuer, ISSUER)?;
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
    if let Some(a) = non_blank(o.okta_audience.as_deref()) {
        idp = idp.accepted_audience(a);
    }
    Ok(idp)
}
