//! Choosing and building the provider from the environment (`MCP_AUTH_PROVIDER`), so one binary
//! runs against any IdP with no code change. This dispatch needs every provider crate, which is
//! why it lives here and not in core.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use mcp_auth_core::config::{ConfigError, CoreConfig};
use mcp_auth_core::resource::is_loopback_url;
use mcp_auth_core::{AuthProvider, RemoteAuthProvider, ResourceUrl};
use mcp_auth_jwt::JwtVerifier;
use mcp_auth_jwt::dev::{DevIssuer, TokenSpec};
use mcp_auth_jwt::presets::{Preset, auth0::Auth0, cognito::Cognito, entra::Entra, okta::Okta};

use crate::todo::{READ, WRITE};

/// The providers the examples can run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Any IdP issuing JWT access tokens (`MCP_AUTH_JWT_*`).
    Jwt,
    /// Opaque tokens checked by RFC 7662 introspection (`MCP_AUTH_INTROSPECT_*`).
    Introspect,
    /// Scalekit (`SCALEKIT_*`).
    Scalekit,
    /// WorkOS AuthKit (`AUTHKIT_*`).
    Workos,
    /// Auth0 (`AUTH0_*`).
    Auth0,
    /// Microsoft Entra ID (`ENTRA_*`).
    Entra,
    /// Okta (`OKTA_*`).
    Okta,
    /// Amazon Cognito (`COGNITO_*`).
    Cognito,
    /// The embedded development issuer (loopback only).
    Dev,
}

impl ProviderKind {
    /// The value of `MCP_AUTH_PROVIDER`.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Jwt => "jwt",
            ProviderKind::Introspect => "introspect",
            ProviderKind::Scalekit => "scalekit",
            ProviderKind::Workos => "workos",
            ProviderKind::Auth0 => "auth0",
            ProviderKind::Entra => "entra",
            ProviderKind::Okta => "okta",
            ProviderKind::Cognito => "cognito",
            ProviderKind::Dev => "dev",
        }
    }
}

/// Variable prefixes that mean "somebody configured a real IdP".
const CONFIG_PREFIXES: [&str; 7] = [
    "MCP_AUTH_",
    "SCALEKIT_",
    "AUTHKIT_",
    "AUTH0_",
    "ENTRA_",
    "OKTA_",
    "COGNITO_",
];

/// Reads `MCP_AUTH_PROVIDER`. Unset with no other `MCP_AUTH_*`, `SCALEKIT_*`, `AUTHKIT_*`,
/// `AUTH0_*`, `ENTRA_*`, `OKTA_*` or `COGNITO_*` variable set: `dev`. Unset while such variables are set: an error (a half-configured
/// production setup must fail loudly, not fall back to dev). An unknown value: an error.
pub fn select_kind() -> Result<ProviderKind, ConfigError> {
    let vars: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().unwrap_or_default())))
        .collect();
    select_kind_from(&vars)
}

/// [`select_kind`] over an explicit variable list (for tests).
pub fn select_kind_from(vars: &[(String, String)]) -> Result<ProviderKind, ConfigError> {
    let get = |name: &str| {
        vars.iter()
            .find(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
    };
    match get("MCP_AUTH_PROVIDER") {
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "jwt" => Ok(ProviderKind::Jwt),
            "introspect" => Ok(ProviderKind::Introspect),
            "scalekit" => Ok(ProviderKind::Scalekit),
            "workos" => Ok(ProviderKind::Workos),
            "auth0" => Ok(ProviderKind::Auth0),
            "entra" => Ok(ProviderKind::Entra),
            "okta" => Ok(ProviderKind::Okta),
            "cognito" => Ok(ProviderKind::Cognito),
            "dev" => Ok(ProviderKind::Dev),
            _ => Err(ConfigError::Invalid {
                variable: "MCP_AUTH_PROVIDER".into(),
                reason: format!(
                    "unknown provider {v:?}: use jwt, introspect, scalekit, workos, auth0, \
                     entra, okta, cognito or dev"
                ),
            }),
        },
        None => {
            let mut set: Vec<&str> = vars
                .iter()
                .filter(|(k, v)| {
                    !v.trim().is_empty() && CONFIG_PREFIXES.iter().any(|p| k.starts_with(p))
                })
                .map(|(k, _)| k.as_str())
                .collect();
            if set.is_empty() {
                Ok(ProviderKind::Dev)
            } else {
                set.sort();
                Err(ConfigError::Invalid {
                    variable: "MCP_AUTH_PROVIDER".into(),
                    reason: format!(
                        "not set, but {} {} set: name the provider (jwt, introspect, scalekit, \
                         workos, auth0, entra, okta, cognito) instead of falling back to the development issuer",
                        set.join(", "),
                        if set.len() == 1 { "is" } else { "are" }
                    ),
                })
            }
        }
    }
}

/// A provider ready to serve, with what start-up should print about it.
pub struct Selected {
    /// Which provider.
    pub kind: ProviderKind,
    /// The provider.
    pub provider: Arc<dyn AuthProvider>,
    /// Accepted issuers, for the start-up report.
    pub issuers: Vec<String>,
    /// Accepted audiences, for the start-up report.
    pub audiences: Vec<String>,
    /// Extra public routes (the dev issuer's JWKS).
    pub extra_routes: Router,
    /// The development issuer, in dev mode.
    pub dev: Option<DevIssuer>,
}

/// The resource URL: `MCP_AUTH_RESOURCE_URL`, else `http://<bind>/mcp` on a loopback bind only.
pub fn resource_url(config: &CoreConfig, bound: SocketAddr) -> Result<ResourceUrl, ConfigError> {
    let raw = match &config.resource_url {
        Some(r) => r.clone(),
        None if bound.ip().is_loopback() => format!("http://{bound}/mcp"),
        None => {
            return Err(ConfigError::Missing {
                variable: "MCP_AUTH_RESOURCE_URL".into(),
            });
        }
    };
    ResourceUrl::parse(&raw).map_err(|e| ConfigError::from_build_in(&CoreConfig::ENV, e))
}

/// Fills the todo defaults into core's configuration: `scopes_supported` = read + write, the
/// challenge's initial scope = read, and the resolved resource URL.
pub fn todo_core_config(resource: &ResourceUrl) -> Result<CoreConfig, ConfigError> {
    let mut config = CoreConfig::from_env()?;
    config.resource_url = Some(resource.as_str().to_owned());
    if config.scopes_supported.is_empty() {
        config.scopes_supported = vec![READ.into(), WRITE.into()];
    }
    if config.initial_scopes.is_empty() {
        config.initial_scopes = vec![READ.into()];
    }
    Ok(config)
}

/// Builds the provider of `kind` for `resource` from the environment.
pub async fn build(kind: ProviderKind, resource: &ResourceUrl) -> Result<Selected, ConfigError> {
    let mut config = todo_core_config(resource)?;
    match kind {
        ProviderKind::Dev => build_dev(&config, resource),
        ProviderKind::Jwt => {
            // R (resolved from the bind address when MCP_AUTH_RESOURCE_URL is unset) is always
            // accepted; MCP_AUTH_JWT_AUDIENCE adds aliases next to it.
            let figment = mcp_auth_core::config::figment(&mcp_auth_jwt::ENV)
                .merge(mcp_auth_core::config::figment(&CoreConfig::ENV))
                .join(figment::providers::Serialized::default(
                    "resource_url",
                    resource.as_str(),
                ));
            let verifier = JwtVerifier::builder_from_figment(&figment)?
                .build()
                .map_err(|e| ConfigError::from_build_in(&mcp_auth_jwt::ENV, e))?;
            let issuers = verifier.issuers().to_vec();
            if config.authorization_servers.is_empty() {
                config.authorization_servers = issuers.clone();
            }
            let provider = protected(&config, Arc::new(verifier))?;
            Ok(selected(kind, provider, issuers))
        }
        ProviderKind::Introspect => {
            let mut icfg = mcp_auth_introspect::IntrospectConfig::from_env()?;
            if icfg.resource_url.is_none() {
                icfg.resource_url = Some(resource.as_str().to_owned());
            }
            let mut issuers: Vec<String> = icfg.introspect_issuer.iter().cloned().collect();
            for a in &config.authorization_servers {
                if !issuers.contains(a) {
                    issuers.push(a.clone());
                }
            }
            let mut builder = icfg.into_builder()?;
            // MCP_AUTH_STORE_URL: introspection results shared by every replica.
            if let Some((store, prefix)) = crate::shared_store::shared_store()? {
                builder = builder.store(store).store_prefix(prefix);
            }
            let verifier = builder.build().map_err(|e| {
                ConfigError::from_build_in(&mcp_auth_introspect::IntrospectConfig::ENV, e)
            })?;
            if config.authorization_servers.is_empty() {
                config.authorization_servers = issuers.clone();
            }
            let provider = protected(&config, Arc::new(verifier))?;
            Ok(selected(kind, provider, issuers))
        }
        ProviderKind::Scalekit => {
            let figment = vendor_figment(&mcp_auth_scalekit::ENV, resource);
            let replay = shared_replay_cache()?;
            let provider = mcp_auth_scalekit::ScalekitConfig::from_figment(&figment)?
                .builder()
                .apply_config(&config)
                .configure_resource(move |rb| with_replay(rb, replay))
                .build()
                .map_err(|e| ConfigError::from_build_in(&mcp_auth_scalekit::ENV, e))?;
            Ok(Selected {
                kind,
                issuers: provider.issuers().to_vec(),
                audiences: provider.audiences().to_vec(),
                provider: Arc::new(provider),
                extra_routes: Router::new(),
                dev: None,
            })
        }
        ProviderKind::Workos => {
            let figment = vendor_figment(&mcp_auth_workos::ENV, resource);
            let replay = shared_replay_cache()?;
            let provider = mcp_auth_workos::AuthKitConfig::from_figment(&figment)?
                .builder()
                .apply_config(&config)
                .configure_resource(move |rb| with_replay(rb, replay))
                .build()
                .map_err(|e| ConfigError::from_build_in(&mcp_auth_workos::ENV, e))?;
            Ok(Selected {
                kind,
                issuers: vec![provider.issuer().to_owned()],
                audiences: provider.audiences().to_vec(),
                provider: Arc::new(provider),
                extra_routes: Router::new(),
                dev: None,
            })
        }
        ProviderKind::Auth0 => build_preset::<Auth0>(kind, resource, &config),
        ProviderKind::Entra => build_preset::<Entra>(kind, resource, &config),
        ProviderKind::Okta => build_preset::<Okta>(kind, resource, &config),
        ProviderKind::Cognito => build_preset::<Cognito>(kind, resource, &config),
    }
}

/// A preset of `mcp_auth_jwt::presets` from its variables, with the todo defaults of `config`.
fn build_preset<P: Preset>(
    kind: ProviderKind,
    resource: &ResourceUrl,
    config: &CoreConfig,
) -> Result<Selected, ConfigError> {
    let preset = P::load(&vendor_figment(&P::ENV, resource))?;
    let replay = shared_replay_cache()?;
    let provider = preset
        .builder()
        .apply_config(config)
        .configure_resource(move |rb| with_replay(rb, replay))
        .build_for_config(&P::ENV)?;
    Ok(Selected {
        kind,
        issuers: provider.idp().issuers().to_vec(),
        audiences: provider.audiences().to_vec(),
        provider: Arc::new(provider),
        extra_routes: Router::new(),
        dev: None,
    })
}

/// `rb` with the shared DPoP replay cache, if any.
fn with_replay(
    rb: mcp_auth_core::RemoteAuthProviderBuilder,
    replay: Option<Arc<dyn mcp_auth_core::dpop::ReplayCache>>,
) -> mcp_auth_core::RemoteAuthProviderBuilder {
    match replay {
        Some(r) => rb.dpop_replay_cache(r),
        None => rb,
    }
}

/// A vendor crate's figment, with the resolved resource URL underneath the environment.
fn vendor_figment(
    table: &mcp_auth_core::config::EnvTable,
    resource: &ResourceUrl,
) -> figment::Figment {
    mcp_auth_core::config::figment(table).join(figment::providers::Serialized::default(
        "resource_url",
        resource.as_str(),
    ))
}

/// A provider built on [`RemoteAuthProvider`], with what start-up reports: the audiences are the
/// protected resource's one list (what the layer and the verifier both accept).
fn selected(kind: ProviderKind, provider: RemoteAuthProvider, issuers: Vec<String>) -> Selected {
    Selected {
        kind,
        audiences: provider.protected_resource().audiences().to_vec(),
        provider: Arc::new(provider),
        issuers,
        extra_routes: Router::new(),
        dev: None,
    }
}

/// The protected resource of core's configuration around `verifier`, with DPoP proofs checked
/// by `mcp-auth-jwt`'s crypto (`MCP_AUTH_DPOP`, default `allowed`).
pub fn protected(
    config: &CoreConfig,
    verifier: Arc<dyn mcp_auth_core::TokenVerifier>,
) -> Result<RemoteAuthProvider, ConfigError> {
    let mut builder = RemoteAuthProvider::builder(verifier)
        .dpop_key_verifier(mcp_auth_jwt::DpopKeys::shared())
        .apply_config(config);
    if let Some(replay) = shared_replay_cache()? {
        builder = builder.dpop_replay_cache(replay);
    }
    builder
        .build()
        .map_err(|e| ConfigError::from_build_in(&CoreConfig::ENV, e))
}

/// DPoP replay protection every replica shares, when `MCP_AUTH_STORE_URL` names a store: a
/// proof used at one replica is refused at the others. `None`: each process keeps its own.
fn shared_replay_cache() -> Result<Option<Arc<dyn mcp_auth_core::dpop::ReplayCache>>, ConfigError> {
    Ok(crate::shared_store::shared_store()?.map(|(store, prefix)| {
        Arc::new(mcp_auth_core::store::StoreReplayCache::new(store, prefix))
            as Arc<dyn mcp_auth_core::dpop::ReplayCache>
    }))
}

/// Path of the development issuer's JWKS on the todo server.
pub const DEV_JWKS_PATH: &str = "/.well-known/jwks.json";
/// Lifetime of the tokens the development issuer prints.
pub const DEV_TOKEN_TTL: Duration = Duration::from_secs(3600);

fn build_dev(config: &CoreConfig, resource: &ResourceUrl) -> Result<Selected, ConfigError> {
    let url = url::Url::parse(resource.as_str()).map_err(|e| ConfigError::Invalid {
        variable: "MCP_AUTH_RESOURCE_URL".into(),
        reason: e.to_string(),
    })?;
    if !is_loopback_url(&url) {
        return Err(ConfigError::Invalid {
            variable: "MCP_AUTH_RESOURCE_URL".into(),
            reason: "the development issuer runs on loopback only: set MCP_AUTH_PROVIDER to a \
                     real provider for a public deployment"
                .into(),
        });
    }
    let issuer = resource.origin().to_owned();
    let dev = DevIssuer::generate(issuer.clone());
    let verifier = dev
        .verifier_builder()
        .audience(resource.as_str())
        .build()
        .map_err(|e| ConfigError::Other(e.to_string()))?;
    let mut config = config.clone();
    config.authorization_servers = vec![issuer.clone()];
    let provider = protected(&config, Arc::new(verifier))?;
    Ok(Selected {
        kind: ProviderKind::Dev,
        provider: Arc::new(provider),
        issuers: vec![issuer],
        audiences: resource.audiences(),
        extra_routes: dev.jwks_router(DEV_JWKS_PATH),
        dev: Some(dev),
    })
}

/// Mints the development tokens the todo server prints: (read-write, read-only).
pub fn dev_tokens(dev: &DevIssuer, resource: &ResourceUrl) -> (String, String) {
    let spec = |scopes: &[&str]| {
        TokenSpec::new("dev-user")
            .client_id("dev-client")
            .audience(resource.as_str())
            .scopes(scopes.iter().copied())
            .ttl(DEV_TOKEN_TTL)
    };
    (dev.mint(spec(&[READ, WRITE])), dev.mint(spec(&[READ])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn dev_only_when_nothing_is_configured() {
        assert_eq!(
            select_kind_from(&vars(&[("PATH", "/bin")])).unwrap(),
            ProviderKind::Dev
        );
        assert_eq!(
            select_kind_from(&vars(&[("MCP_AUTH_PROVIDER", "JWT")])).unwrap(),
            ProviderKind::Jwt
        );
        let half = select_kind_from(&vars(&[("MCP_AUTH_JWT_JWKS_URI", "https://x/jwks")]))
            .unwrap_err()
            .to_string();
        assert!(
            half.contains("MCP_AUTH_PROVIDER") && half.contains("MCP_AUTH_JWT_JWKS_URI"),
            "{half}"
        );
        assert!(select_kind_from(&vars(&[("SCALEKIT_ENVIRONMENT_URL", "https://a")])).is_err());
        assert!(select_kind_from(&vars(&[("AUTHKIT_DOMAIN", "a.authkit.app")])).is_err());
        for (var, kind) in [
            ("AUTH0_DOMAIN", "auth0"),
            ("ENTRA_TENANT_ID", "entra"),
            ("OKTA_ISSUER", "okta"),
            ("COGNITO_CLIENT_IDS", "cognito"),
        ] {
            let half = select_kind_from(&vars(&[(var, "x")]))
                .unwrap_err()
                .to_string();
            assert!(half.contains(var) && half.contains(kind), "{half}");
            let picked = select_kind_from(&vars(&[("MCP_AUTH_PROVIDER", kind), (var, "x")]));
            assert_eq!(picked.unwrap().name(), kind);
        }
        let unknown = select_kind_from(&vars(&[("MCP_AUTH_PROVIDER", "keycloak")]))
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("unknown provider"), "{unknown}");
    }

    #[test]
    fn resource_defaults_only_on_loopback() {
        let cfg = CoreConfig::default();
        let r = resource_url(&cfg, "127.0.0.1:8000".parse().unwrap()).unwrap();
        assert_eq!(r.as_str(), "http://127.0.0.1:8000/mcp");
        let err = resource_url(&cfg, "0.0.0.0:8000".parse().unwrap()).unwrap_err();
        assert_eq!(err.to_string(), "MCP_AUTH_RESOURCE_URL is missing");
    }
}
