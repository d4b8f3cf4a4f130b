//! Presets for the IdPs most MCP servers sit behind: Auth0, Microsoft Entra ID, Okta and Amazon
//! Cognito, as [`DataSheet`]s on the shared [hosted builder](crate::hosted).
//!
//! Each preset derives every URL from the values copied from the vendor's dashboard, is
//! buildable in code (`Auth0::new(domain).builder()`) or from the environment
//! (`Auth0::from_env()`, through the [`Preset`] trait), and builds a [`HostedProvider`]. Every derived URL can be pointed at
//! another host (custom domains, sovereign clouds, a local emulator or a test server on
//! 127.0.0.1; `http` is accepted on loopback only).
//!
//! | preset | variables | tokens accepted |
//! |---|---|---|
//! | [`auth0`] | `AUTH0_DOMAIN`, `AUTH0_AUDIENCE`, `AUTH0_PERMISSIONS_AS_SCOPES` | `iss` `https://<domain>/`; `aud` R or the API identifier (an array naming `/userinfo` too is fine); scopes from `scope`, plus `permissions` when enabled |
//! | [`entra`] | `ENTRA_TENANT_ID`, `ENTRA_CLIENT_ID`, `ENTRA_APP_ID_URI`, `ENTRA_AUTHORITY_HOST` | v2 (`<host>/<tenant>/v2.0`) and v1 (`https://sts.windows.net/<tenant>/`) issuers; `aud` the client id or App ID URI; `tid` the tenant; scopes from `scp`, else `roles`; challenges name `<App ID URI>/<scope>` |
//! | [`okta`] | `OKTA_ISSUER`, `OKTA_AUDIENCE` | a custom authorization server's issuer (`/oauth2/` in the path); keys by discovery; scopes from `scp`, client from `cid` |
//! | [`cognito`] | `COGNITO_REGION`, `COGNITO_USER_POOL_ID`, `COGNITO_CLIENT_IDS`, `COGNITO_ISSUER`, `COGNITO_RESOURCE_SERVER` | `token_use` `access`; `client_id` in the allowlist, which stands in for the usually absent `aud`; resource-server scopes named `<identifier>/<scope>` |
//!
//! Each preset also reads core's `MCP_AUTH_RESOURCE_URL`, `MCP_AUTH_REQUIRED_SCOPES`,
//! `MCP_AUTH_INITIAL_SCOPES`, `MCP_AUTH_SCOPES_SUPPORTED`, `MCP_AUTH_RESOURCE_NAME` and
//! `MCP_AUTH_RESOURCE_DOCUMENTATION`, and the TOML file named by `MCP_AUTH_CONFIG_FILE` (keys:
//! the table's keys, such as `auth0_domain`). Errors name the variable to fix.

use figment::Figment;
use mcp_auth_core::config::{ConfigError, CoreConfig, EnvTable, extract, figment};
use mcp_auth_core::{BuildError, ResourceUrl};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::hosted::{DataSheet, HostedIdp, HostedProvider, HostedProviderBuilder};

pub mod auth0;
pub mod cognito;
pub mod entra;
pub mod okta;

/// A preset's env table: its own entries, then core's.
macro_rules! env_table {
    ($(($key:expr, $var:literal)),* $(,)?) => {
        mcp_auth_core::config::EnvTable::new(&[
            $(($key, $var),)*
            ("resource_url", "MCP_AUTH_RESOURCE_URL"),
            ("required_scopes", "MCP_AUTH_REQUIRED_SCOPES"),
            ("initial_scopes", "MCP_AUTH_INITIAL_SCOPES"),
            ("scopes_supported", "MCP_AUTH_SCOPES_SUPPORTED"),
            ("resource_name", "MCP_AUTH_RESOURCE_NAME"),
            ("resource_documentation", "MCP_AUTH_RESOURCE_DOCUMENTATION"),
            ("dpop", "MCP_AUTH_DPOP"),
            ("dpop_algorithms", "MCP_AUTH_DPOP_ALGORITHMS"),
            ("dpop_nonce_secs", "MCP_AUTH_DPOP_NONCE_SECS"),
        ])
    };
}
pub(crate) use env_table;

/// A preset's data sheet of dashboard values, declared once: the struct (read by serde under
/// the env table's keys, which are the field names), `new` taking the required values in order,
/// a setter per optional value, a [`Setting`](mcp_auth_core::Setting) per value (what errors
/// name), and the [`Preset`] implementation whose `ENV` lists the values' variables before
/// core's and whose `idp` is the given function.
macro_rules! preset {
    (
        $(#[$meta:meta])*
        $name:ident {
            $(#[$new_doc:meta])*
            new { $( $arg:ident => $field:ident: $ty:ty = $setting:ident($var:literal, $label:literal) $(with $de:tt)? ),* $(,)? }
            set { $( $(#[$set_doc:meta])* $setter:ident => $ofield:ident: $oty:ty = $osetting:ident($ovar:literal, $olabel:literal) $(with $ode:tt)? ),* $(,)? }
            idp: $idp:path $(,)?
        }
    ) => {
        $(#[allow(dead_code)] const $setting: mcp_auth_core::Setting = mcp_auth_core::Setting::new(stringify!($field), $label);)*
        $(#[allow(dead_code)] const $osetting: mcp_auth_core::Setting = mcp_auth_core::Setting::new(stringify!($ofield), $olabel);)*

        $(#[$meta])*
        #[derive(Debug, Clone, Default, serde::Deserialize)]
        #[serde(default)]
        pub struct $name {
            $( $(#[serde(deserialize_with = $de)])? $field: $ty, )*
            $( $(#[serde(deserialize_with = $ode)])? $ofield: $oty, )*
        }

        impl $name {
            $(#[$new_doc])*
            pub fn new($($arg: impl $crate::presets::PresetArg<$ty>),*) -> Self {
                $name {
                    $($field: $arg.into_value(),)*
                    ..Self::default()
                }
            }

            $(
                $(#[$set_doc])*
                pub fn $setter(mut self, $setter: impl $crate::presets::PresetArg<$oty>) -> Self {
                    self.$ofield = $setter.into_value();
                    self
                }
            )*
        }

        impl $crate::presets::Preset for $name {
            const ENV: mcp_auth_core::config::EnvTable = $crate::presets::env_table!(
                $((stringify!($field), $var),)*
                $((stringify!($ofield), $ovar),)*
            );

            fn idp(
                &self,
                resource: &mcp_auth_core::ResourceUrl,
            ) -> Result<$crate::hosted::HostedIdp, mcp_auth_core::BuildError> {
                $idp(self, resource)
            }
        }
    };
}
pub(crate) use preset;

/// What a preset's `new` and setters take for a value of type `T`: text for a text value
/// (`impl Into<String>`), a list of texts for a list, `bool` for a yes/no value.
pub trait PresetArg<T> {
    /// The value as the preset stores it.
    fn into_value(self) -> T;
}

impl<S: Into<String>> PresetArg<String> for S {
    fn into_value(self) -> String {
        self.into()
    }
}

impl<S: Into<String>> PresetArg<Option<String>> for S {
    fn into_value(self) -> Option<String> {
        Some(self.into())
    }
}

impl<I: IntoIterator<Item = S>, S: Into<String>> PresetArg<Vec<String>> for I {
    fn into_value(self) -> Vec<String> {
        self.into_iter().map(Into::into).collect()
    }
}

impl PresetArg<bool> for bool {
    fn into_value(self) -> bool {
        self
    }
}

/// A vendor's dashboard values. [`idp`](Self::idp) validates them (errors carry the typed
/// `Setting` of the value to fix) and derives the data sheet for the resource URL R.
///
/// The four presets of this module implement it; so can another IdP's:
///
/// ```
/// use mcp_auth_core::config::EnvTable;
/// use mcp_auth_core::{AuthProvider, BuildError, ResourceUrl, Setting};
/// use mcp_auth_jwt::HostedIdp;
/// use mcp_auth_jwt::hosted::origin;
/// use mcp_auth_jwt::presets::Preset;
///
/// /// Acme's tenant URL, read from `ACME_URL`.
/// #[derive(serde::Deserialize)]
/// struct Acme { acme_url: String }
///
/// impl Preset for Acme {
///     const ENV: EnvTable = EnvTable::new(&[
///         ("acme_url", "ACME_URL"),
///         ("resource_url", "MCP_AUTH_RESOURCE_URL"),
///     ]);
///     fn idp(&self, _: &ResourceUrl) -> Result<HostedIdp, BuildError> {
///         let o = origin(&self.acme_url, Setting::new("acme_url", "Acme URL"))?;
///         Ok(HostedIdp::new("Acme", format!("{o}/keys"), format!("{o}/.well-known/openid-configuration"))
///             .issuer(&o)
///             .authorization_server(&o))
///     }
/// }
///
/// let p = Acme { acme_url: "https://acme.example".into() }
///     .builder()
///     .resource_url("https://mcp.example.com/mcp")
///     .build()?;
/// assert_eq!(p.metadata().authorization_servers, ["https://acme.example"]);
/// # Ok::<(), BuildError>(())
/// ```
pub trait Preset: DeserializeOwned {
    /// The env table: the vendor's variables, then core's.
    const ENV: EnvTable;

    /// Validates the values and derives the data sheet for `resource`.
    fn idp(&self, resource: &ResourceUrl) -> Result<HostedIdp, BuildError>;

    /// The provider builder (core's settings: resource URL, scopes, metadata fields).
    fn builder(self) -> HostedProviderBuilder<PresetSheet<Self>> {
        HostedProviderBuilder::new(Ok(PresetSheet {
            preset: self,
            idp: None,
        }))
    }

    /// Reads the preset's own values (not core's) from a figment keyed as [`ENV`](Self::ENV).
    fn load(figment: &Figment) -> Result<Self, ConfigError> {
        extract(figment, &Self::ENV)
    }

    /// Builds the provider from a figment keyed as [`ENV`](Self::ENV): the preset's keys and
    /// core's. Errors name the variable to fix.
    fn from_figment(figment: &Figment) -> Result<HostedProvider, ConfigError> {
        // Extracted apart, not flattened, so that a badly typed value's error names its key.
        let core: CoreConfig = extract(figment, &Self::ENV)?;
        Self::load(figment)?
            .builder()
            .apply_config(&core)
            .build_for_config(&Self::ENV)
    }

    /// Builds the provider from the environment (and the TOML file named by
    /// `MCP_AUTH_CONFIG_FILE`).
    fn from_env() -> Result<HostedProvider, ConfigError> {
        Self::from_figment(&figment(&Self::ENV))
    }
}

/// The [`DataSheet`] of a [`Preset`]: derived once R is known.
#[derive(Debug, Clone)]
pub struct PresetSheet<P> {
    preset: P,
    idp: Option<HostedIdp>,
}

impl<P> PresetSheet<P> {
    /// The preset's values.
    pub fn preset(&self) -> &P {
        &self.preset
    }
}

impl<P: Preset> DataSheet for PresetSheet<P> {
    type Provider = HostedProvider;

    fn resolve(&mut self, resource: &ResourceUrl) -> Result<(), BuildError> {
        self.idp = Some(self.preset.idp(resource)?);
        Ok(())
    }

    fn hosted_idp(&self) -> HostedIdp {
        // Before `resolve` there is nothing: a sheet without an issuer, which `build` refuses.
        self.idp
            .clone()
            .unwrap_or_else(|| HostedIdp::new("unresolved preset", "", ""))
    }

    fn into_provider(self, hosted: HostedProvider) -> HostedProvider {
        hosted
    }
}

/// A yes/no setting: `1`, `true`, `yes`, `on` or `0`, `false`, `no`, `off` (any case); unset is
/// no. Anything else is an error rather than a silent no.
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bool(bool),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Bool(b) => Ok(b),
        Raw::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" | "" => Ok(false),
            other => Err(serde::de::Error::custom(format!(
                "{other:?} is not a yes/no value (use 1 or 0)"
            ))),
        },
    }
}

/// The OpenID Connect discovery path (OIDC Discovery §4).
const OIDC: &str = "/.well-known/openid-configuration";

/// A data sheet whose JWKS and metadata paths sit under `issuer`, which is also the advertised
/// authorization server.
fn at(name: &'static str, issuer: &str, jwks: &str, metadata: &str) -> HostedIdp {
    let b = issuer.trim_end_matches('/');
    HostedIdp::new(name, format!("{b}{jwks}"), format!("{b}{metadata}"))
        .issuer(issuer)
        .authorization_server(issuer)
}

/// [`base_url`](crate::hosted::base_url) as a string without the trailing slash.
fn base(raw: &str, setting: mcp_auth_core::Setting) -> Result<String, BuildError> {
    let url = crate::hosted::base_url(raw, setting)?;
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// An ASCII letter or digit.
fn id_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// A character allowed in a scope token (RFC 6749 §3.3), for a prefix put before scopes.
fn scope_char(c: char) -> bool {
    c.is_ascii_graphic() && c != '"' && c != '\\'
}

/// A value that defaults to R: `raw` trimmed and checked as a scope-token prefix (an
/// Application ID URI, say) when set, else R.
fn or_resource(
    raw: Option<&str>,
    resource: &ResourceUrl,
    setting: mcp_auth_core::Setting,
) -> Result<String, BuildError> {
    match non_blank(raw) {
        Some(v) => token(&v, setting, scope_char),
        None => Ok(resource.as_str().to_owned()),
    }
}

/// Trims `raw`; `None` when blank.
fn non_blank(raw: Option<&str>) -> Option<String> {
    raw.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Refuses a value that is blank or holds a character outside `allowed`.
use crate::hosted::identifier as token;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_table_reads_cores_settings_under_cores_variables() {
        for table in [
            <auth0::Auth0 as Preset>::ENV,
            <entra::Entra as Preset>::ENV,
            <okta::Okta as Preset>::ENV,
            <cognito::Cognito as Preset>::ENV,
        ] {
            for (key, var) in CoreConfig::ENV.entries() {
                if *key == "authorization_servers" {
                    // Derived from the IdP: never read.
                    assert_eq!(table.variable_for(key), None);
                } else {
                    assert_eq!(table.variable_for(key), Some(*var), "{key}");
                }
            }
        }
    }

    #[test]
    fn flags_parse_or_fail() {
        #[derive(Deserialize)]
        struct F {
            #[serde(deserialize_with = "flag")]
            f: bool,
        }
        let parse = |v: serde_json::Value| serde_json::from_value::<F>(serde_json::json!({"f": v}));
        for yes in ["1", "TRUE", " yes ", "on"] {
            assert!(parse(yes.into()).unwrap().f, "{yes}");
        }
        for no in ["0", "false", "No", "off", ""] {
            assert!(!parse(no.into()).unwrap().f, "{no}");
        }
        assert!(parse(true.into()).unwrap().f);
        assert!(parse("2".into()).is_err());
        assert!(parse(serde_json::json!([1])).is_err());
    }
}
