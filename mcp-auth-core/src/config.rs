//! Configuration through figment: environment variables (read as raw strings) plus an optional
//! TOML file, with errors that name the variable to fix.
//!
//! Every crate reads its own settings from the same [`figment::Figment`], using flat keys that are
//! the variable names without the `MCP_AUTH_` prefix, lower-cased (`resource_url`,
//! `jwt_jwks_uri`, ...). The TOML file, when `MCP_AUTH_CONFIG_FILE` names one, uses the same keys.
//!
//! figment's own environment provider parses values (`0123` becomes the number 123, `[a, b]` an
//! array), which corrupts ids and secrets; [`RawEnv`] hands every value over as the exact string.

use std::borrow::Cow;

use figment::providers::Format;
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::scope::split_list;

/// The variable naming an optional TOML configuration file.
pub const CONFIG_FILE_VAR: &str = "MCP_AUTH_CONFIG_FILE";

/// A table of configuration keys and the environment variables that set them.
///
/// Several variables may set one key (a vendor name and its `MCP_AUTH_…` alias); when two of them
/// are set to different values, loading fails.
///
/// ```
/// use mcp_auth_core::config::EnvTable;
/// const TABLE: EnvTable = EnvTable::new(&[
///     ("resource_url", "MCP_AUTH_RESOURCE_URL"),
///     ("environment_url", "SCALEKIT_ENVIRONMENT_URL"),
///     ("environment_url", "MCP_AUTH_SCALEKIT_ENVIRONMENT_URL"),
/// ]);
/// assert_eq!(TABLE.variable_for("environment_url"), Some("SCALEKIT_ENVIRONMENT_URL"));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct EnvTable {
    entries: &'static [(&'static str, &'static str)],
}

impl EnvTable {
    /// A table of `(key, VARIABLE)` pairs.
    pub const fn new(entries: &'static [(&'static str, &'static str)]) -> Self {
        EnvTable { entries }
    }

    /// The entries.
    pub fn entries(&self) -> &'static [(&'static str, &'static str)] {
        self.entries
    }

    /// The first (preferred) variable for `key`.
    pub fn variable_for(&self, key: &str) -> Option<&'static str> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }

    /// Whether any variable of the table is set (non-empty) in the process environment.
    pub fn any_set(&self) -> bool {
        self.entries
            .iter()
            .any(|(_, var)| std::env::var_os(var).is_some_and(|v| !v.is_empty()))
    }

    /// A figment provider that reads these variables as raw strings.
    pub fn provider(&self) -> RawEnv {
        RawEnv { table: *self }
    }
}

/// A figment [`Provider`] over an [`EnvTable`] that never parses values.
#[derive(Debug, Clone, Copy)]
pub struct RawEnv {
    table: EnvTable,
}

impl Provider for RawEnv {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        let mut source: Map<&str, &str> = Map::new();
        for (key, var) in self.table.entries {
            let value = match std::env::var(var) {
                Ok(v) => v,
                Err(std::env::VarError::NotPresent) => continue,
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(figment::Error::from(format!("{var} is not valid UTF-8")));
                }
            };
            let value = value.trim().to_owned();
            if value.is_empty() {
                continue;
            }
            if let Some(Value::String(_, existing)) = dict.get(*key) {
                if *existing != value {
                    let other = source.get(key).copied().unwrap_or("another variable");
                    return Err(figment::Error::from(format!(
                        "{other} and {var} are both set, to different values: set only one"
                    )));
                }
                continue;
            }
            source.insert(key, var);
            dict.insert((*key).to_owned(), Value::from(value));
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// The standard figment for `table`: the TOML file named by `MCP_AUTH_CONFIG_FILE` (if any), then
/// the environment, which wins.
///
/// A file named by `MCP_AUTH_CONFIG_FILE` that does not exist or cannot be read is an error at
/// extraction (naming the variable), never an empty configuration.
pub fn figment(table: &EnvTable) -> Figment {
    let mut f = Figment::new();
    if let Some(path) = std::env::var_os(CONFIG_FILE_VAR) {
        let path = std::path::PathBuf::from(path);
        f = match std::fs::File::open(&path).and_then(|file| file.metadata()) {
            Ok(m) if m.is_file() => f.merge(figment::providers::Toml::file_exact(path)),
            Ok(_) => f.merge(UnreadableFile {
                reason: format!("{CONFIG_FILE_VAR}: {} is not a file", path.display()),
            }),
            Err(e) => f.merge(UnreadableFile {
                reason: format!("{CONFIG_FILE_VAR}: cannot read {}: {e}", path.display()),
            }),
        };
    }
    f.merge(table.provider())
}

/// A provider standing for a configuration file that cannot be read: extraction fails with
/// `reason`.
struct UnreadableFile {
    reason: String,
}

impl Provider for UnreadableFile {
    fn metadata(&self) -> Metadata {
        Metadata::named(CONFIG_FILE_VAR)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Err(figment::Error::from(self.reason.clone()))
    }
}

/// Why configuration could not be loaded. Messages name the variable to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("{variable} is missing")]
    Missing {
        /// The variable to set.
        variable: Cow<'static, str>,
    },
    /// A variable has an unusable value.
    #[error("{variable}: {reason}")]
    Invalid {
        /// The variable to fix.
        variable: Cow<'static, str>,
        /// What is wrong.
        reason: String,
    },
    /// Anything else figment reported (an unreadable TOML file, conflicting aliases).
    #[error("configuration: {0}")]
    Other(String),
}

impl ConfigError {
    /// Converts a builder error raised while applying configuration, naming `variable`.
    pub fn from_build(variable: &'static str, err: crate::BuildError) -> Self {
        match err {
            crate::BuildError::Missing(_) => ConfigError::Missing {
                variable: variable.into(),
            },
            crate::BuildError::Invalid { reason, .. } => ConfigError::Invalid {
                variable: variable.into(),
                reason: reason.into_owned(),
            },
        }
    }
}

impl ConfigError {
    /// Converts a builder error raised while applying configuration, naming the variable that
    /// feeds the failing setting: the variable `table` maps the setting's key to, else the one
    /// core's [`CoreConfig::ENV`] maps it to. A setting no table knows (one that only code sets)
    /// gives [`ConfigError::Other`] with the builder's message.
    pub fn from_build_in(table: &EnvTable, err: crate::BuildError) -> Self {
        let key = err.setting().key();
        match table
            .variable_for(key)
            .or_else(|| CoreConfig::ENV.variable_for(key))
        {
            Some(var) => ConfigError::from_build(var, err),
            None => ConfigError::Other(err.to_string()),
        }
    }
}

/// Extracts `T` from `figment`, naming the variable of `table` in errors.
pub fn extract<T: DeserializeOwned>(figment: &Figment, table: &EnvTable) -> Result<T, ConfigError> {
    figment
        .extract::<T>()
        .map_err(|e| map_figment_error(e, table))
}

/// [`extract`] for a provider's settings struct that holds [`CoreConfig`] under
/// `#[serde(flatten)]`. Inside a flattened struct figment cannot tell which key a badly typed
/// value (`resource_url = 5` in the TOML file) belongs to, so core's keys are extracted on their
/// own first and their errors name the variable.
pub fn extract_with_core<T: DeserializeOwned>(
    figment: &Figment,
    table: &EnvTable,
) -> Result<T, ConfigError> {
    extract::<CoreConfig>(figment, table)?;
    extract(figment, table)
}

fn map_figment_error(e: figment::Error, table: &EnvTable) -> ConfigError {
    use figment::error::Kind;
    let var_of = |key: &str| -> Cow<'static, str> {
        table
            .variable_for(key)
            .map(Cow::Borrowed)
            .unwrap_or_else(|| Cow::Owned(key.to_owned()))
    };
    match &e.kind {
        Kind::MissingField(field) => ConfigError::Missing {
            variable: var_of(field),
        },
        Kind::Message(m) if e.path.is_empty() => ConfigError::Other(m.clone()),
        _ => match e.path.last() {
            Some(key) => ConfigError::Invalid {
                variable: var_of(key),
                reason: e.kind.to_string(),
            },
            None => ConfigError::Other(e.to_string()),
        },
    }
}

/// Deserializes a list given as a comma- or space-separated string or as an array of strings.
pub fn deserialize_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<Raw>::deserialize(d)? {
        None => Vec::new(),
        Some(Raw::One(s)) => split_list(&s),
        Some(Raw::Many(v)) => v.iter().flat_map(|s| split_list(s)).collect(),
    })
}

/// Deserializes a whole number given as a number (a TOML file) or as text (the environment, whose
/// values are read as raw strings): durations in seconds or milliseconds, counts.
pub fn deserialize_whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Num(u64),
        Text(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Num(n)) => Ok(Some(n)),
        Some(Raw::Text(s)) => s.trim().parse::<u64>().map(Some).map_err(|_| {
            serde::de::Error::custom(format!(
                "{:?} is not a whole number",
                s.escape_debug().to_string()
            ))
        }),
    }
}

/// The core settings shared by every provider (the variables of the README's configuration table).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct CoreConfig {
    /// `MCP_AUTH_RESOURCE_URL`: the canonical resource URL (R).
    #[serde(default)]
    pub resource_url: Option<String>,
    /// `MCP_AUTH_REQUIRED_SCOPES`: scopes every request needs.
    #[serde(default, deserialize_with = "deserialize_list")]
    pub required_scopes: Vec<String>,
    /// `MCP_AUTH_INITIAL_SCOPES`: scopes named in the 401 challenge when none are required.
    #[serde(default, deserialize_with = "deserialize_list")]
    pub initial_scopes: Vec<String>,
    /// `MCP_AUTH_SCOPES_SUPPORTED`: the metadata's `scopes_supported`.
    #[serde(default, deserialize_with = "deserialize_list")]
    pub scopes_supported: Vec<String>,
    /// `MCP_AUTH_AUTHORIZATION_SERVERS`: issuer URLs advertised in the metadata.
    #[serde(default, deserialize_with = "deserialize_list")]
    pub authorization_servers: Vec<String>,
    /// `MCP_AUTH_RESOURCE_NAME`: human-readable name in the metadata.
    #[serde(default)]
    pub resource_name: Option<String>,
    /// `MCP_AUTH_RESOURCE_DOCUMENTATION`: documentation URL in the metadata.
    #[serde(default)]
    pub resource_documentation: Option<String>,
    /// `MCP_AUTH_DPOP`: `off`, `allowed` (the default when a proof verifier is given) or
    /// `required`.
    #[serde(default)]
    pub dpop: Option<String>,
    /// `MCP_AUTH_DPOP_ALGORITHMS`: the DPoP proof algorithms (default `ES256 ES384 EdDSA PS256
    /// RS256`; asymmetric only).
    #[serde(default, deserialize_with = "deserialize_list")]
    pub dpop_algorithms: Vec<String>,
    /// `MCP_AUTH_DPOP_NONCE_SECS`: server nonces on, each valid for this many seconds (to two
    /// such periods); unset: off.
    #[serde(default)]
    pub dpop_nonce_secs: Option<String>,
}

impl CoreConfig {
    /// The keys of core's settings and their variables.
    pub const ENV: EnvTable = EnvTable::new(&[
        ("resource_url", "MCP_AUTH_RESOURCE_URL"),
        ("required_scopes", "MCP_AUTH_REQUIRED_SCOPES"),
        ("initial_scopes", "MCP_AUTH_INITIAL_SCOPES"),
        ("scopes_supported", "MCP_AUTH_SCOPES_SUPPORTED"),
        ("authorization_servers", "MCP_AUTH_AUTHORIZATION_SERVERS"),
        ("resource_name", "MCP_AUTH_RESOURCE_NAME"),
        ("resource_documentation", "MCP_AUTH_RESOURCE_DOCUMENTATION"),
        ("dpop", "MCP_AUTH_DPOP"),
        ("dpop_algorithms", "MCP_AUTH_DPOP_ALGORITHMS"),
        ("dpop_nonce_secs", "MCP_AUTH_DPOP_NONCE_SECS"),
    ]);

    /// Loads from the environment (and `MCP_AUTH_CONFIG_FILE`).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_figment(&figment(&Self::ENV))
    }

    /// Loads from a figment the caller assembled.
    pub fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        extract(figment, &Self::ENV)
    }

    /// The resource URL, or the error naming `MCP_AUTH_RESOURCE_URL`.
    pub fn require_resource_url(&self) -> Result<&str, ConfigError> {
        self.resource_url.as_deref().ok_or(ConfigError::Missing {
            variable: "MCP_AUTH_RESOURCE_URL".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::Serialized;

    #[test]
    fn lists_from_string_or_array() {
        let f = Figment::new().merge(Serialized::defaults(serde_json::json!({
            "required_scopes": "a, b c",
            "scopes_supported": ["x", "y z"],
        })));
        let c = CoreConfig::from_figment(&f).unwrap();
        assert_eq!(c.required_scopes, vec!["a", "b", "c"]);
        assert_eq!(c.scopes_supported, vec!["x", "y", "z"]);
    }

    #[test]
    fn missing_resource_names_the_variable() {
        let c = CoreConfig::default();
        assert_eq!(
            c.require_resource_url().unwrap_err().to_string(),
            "MCP_AUTH_RESOURCE_URL is missing"
        );
    }

    #[test]
    fn build_errors_name_the_variable_of_their_setting() {
        use crate::{BuildError, Setting};
        const RESOURCE_ID: Setting = Setting::new("resource_id", "resource id");
        const TABLE: EnvTable = EnvTable::new(&[
            ("resource_id", "VENDOR_RESOURCE_ID"),
            ("resource_id", "MCP_AUTH_VENDOR_RESOURCE_ID"),
        ]);
        let missing =
            ConfigError::from_build_in(&TABLE, BuildError::Missing(Setting::RESOURCE_URL));
        assert!(
            matches!(&missing, ConfigError::Missing { variable } if variable == "MCP_AUTH_RESOURCE_URL"),
            "core's settings are found without the vendor table naming them: {missing:?}"
        );
        let vendor = ConfigError::from_build_in(&TABLE, BuildError::invalid(RESOURCE_ID, "bad"));
        assert!(
            matches!(&vendor, ConfigError::Invalid { variable, reason } if variable == "VENDOR_RESOURCE_ID" && reason == "bad"),
            "the preferred variable of the key: {vendor:?}"
        );
        let scopes = ConfigError::from_build_in(
            &TABLE,
            BuildError::invalid(Setting::REQUIRED_SCOPES, "empty scope"),
        );
        assert!(
            matches!(&scopes, ConfigError::Invalid { variable, .. } if variable == "MCP_AUTH_REQUIRED_SCOPES"),
            "{scopes:?}"
        );
        let other = ConfigError::from_build_in(
            &TABLE,
            BuildError::invalid(Setting::new("http_client", "http client"), "tls"),
        );
        assert!(
            matches!(&other, ConfigError::Other(m) if m == "http client: tls"),
            "{other:?}"
        );
    }

    #[test]
    fn flattened_core_errors_name_the_variable() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Vendor {
            tenant: String,
            #[serde(flatten)]
            core: CoreConfig,
        }
        const TABLE: EnvTable = EnvTable::new(&[
            ("tenant", "VENDOR_TENANT"),
            ("required_scopes", "MCP_AUTH_REQUIRED_SCOPES"),
        ]);
        let f = Figment::new().merge(Serialized::defaults(serde_json::json!({
            "tenant": "t",
            "required_scopes": 7,
        })));
        let err = extract_with_core::<Vendor>(&f, &TABLE).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { variable, .. } if variable == "MCP_AUTH_REQUIRED_SCOPES"),
            "{err:?}"
        );
        let f = Figment::new().merge(Serialized::defaults(serde_json::json!({ "tenant": 1 })));
        let err = extract_with_core::<Vendor>(&f, &TABLE).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { variable, .. } if variable == "VENDOR_TENANT"),
            "{err:?}"
        );
    }

    #[test]
    fn invalid_value_names_the_variable() {
        let f = Figment::new().merge(Serialized::defaults(serde_json::json!({
            "resource_url": {"nested": true},
        })));
        let err = CoreConfig::from_figment(&f).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { variable, .. } if variable == "MCP_AUTH_RESOURCE_URL"),
            "{err:?}"
        );
    }
}
