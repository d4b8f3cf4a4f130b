//! Entra's on-behalf-of flow: the preset's variant of core's token exchange.

use mcp_auth_core::BuildError;
use mcp_auth_core::client_auth::{ClientAuth, ClientSecret};
use mcp_auth_core::exchange::{Grant, TokenExchanger, TokenExchangerBuilder};

use super::super::{id_char, non_blank, token};
use super::{CLIENT, DEFAULT_AUTHORITY_HOST, Entra, HOST, TENANT, v1_issuer};
use crate::hosted::origin;

impl Entra {
    /// Entra's on-behalf-of flow as the preset's variant of core's token exchange (feature
    /// `exchange`): the jwt-bearer grant with `requested_token_use=on_behalf_of`, at the
    /// tenant's v2 token endpoint (`<host>/<tenant>/oauth2/v2.0/token`) for tokens of both the
    /// v1 issuer (`https://sts.windows.net/<tenant>/` in the public cloud, whose metadata cannot
    /// vouch for an endpoint on another origin) and the v2 issuer, authenticated as this API's
    /// application with `client_secret_post`. Add the secret (`client_secret_post(client_id,
    /// secret)`) and the targets, named by their scopes (`api://<downstream>/.default` or
    /// `https://graph.microsoft.com/User.Read`).
    ///
    /// ```
    /// use mcp_auth_core::exchange::{Grant, Target};
    /// use mcp_auth_jwt::presets::entra::Entra;
    ///
    /// let tenant = "7b0e3c1a-0000-4000-8000-000000000001";
    /// let entra = Entra::new(tenant, "0c5f0e2d-aaaa-4bbb-8ccc-000000000002");
    /// let exchanger = entra
    ///     .on_behalf_of()?
    ///     .client_secret_post("0c5f0e2d-aaaa-4bbb-8ccc-000000000002", "app-secret")
    ///     .target(Target::audience("https://graph.microsoft.com")
    ///         .scopes(["https://graph.microsoft.com/User.Read"]))
    ///     .build()?;
    /// assert_eq!(exchanger.grant(), Grant::OnBehalfOf);
    /// # Ok::<(), mcp_auth_core::BuildError>(())
    /// ```
    pub fn on_behalf_of(&self) -> Result<TokenExchangerBuilder, BuildError> {
        let id = |c: char| id_char(c) || c == '-' || c == '.';
        let t = token(&self.entra_tenant_id, TENANT, id)?;
        let client = token(&self.entra_client_id, CLIENT, id)?;
        let host = non_blank(self.entra_authority_host.as_deref());
        let h = origin(host.as_deref().unwrap_or(DEFAULT_AUTHORITY_HOST), HOST)?;
        let endpoint = format!("{h}/{t}/oauth2/v2.0/token");
        Ok(TokenExchanger::builder()
            .grant(Grant::OnBehalfOf)
            .issuer_token_endpoint(format!("{h}/{t}/v2.0"), &endpoint)
            .issuer_token_endpoint(v1_issuer(&h, &t), endpoint)
            // The secret comes next (MCP_AUTH_EXCHANGE_CLIENT_SECRET); building without it fails.
            .client_auth(ClientAuth::ClientSecretPost {
                client_id: client,
                client_secret: ClientSecret::new(""),
            }))
    }
}
