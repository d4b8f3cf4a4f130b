//! How the resource server authenticates itself to its IdP, shared by every outbound client
//! that needs it (RFC 7662 introspection, RFC 8693 token exchange): `client_secret_basic`,
//! `client_secret_post` (RFC 6749 §2.3.1) or a static bearer credential.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use http::HeaderValue;

use crate::{BuildError, Setting};

/// A client secret or static bearer credential.
///
/// `Debug` prints `[redacted]`, so a secret inside a config struct cannot leak through `{:?}`.
/// The value is read only where a request is built ([`ClientSecret::expose`]).
///
/// ```
/// use mcp_auth_core::client_auth::ClientSecret;
/// let s = ClientSecret::new("hunter2");
/// assert_eq!(format!("{s:?}"), "[redacted]");
/// assert_eq!(s.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a secret (taken exactly as given: no trimming, no parsing).
    pub fn new(secret: impl Into<String>) -> Self {
        ClientSecret(secret.into())
    }

    /// The secret itself. Use it only to build the outbound request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for ClientSecret {
    fn from(s: String) -> Self {
        ClientSecret(s)
    }
}

impl From<&str> for ClientSecret {
    fn from(s: &str) -> Self {
        ClientSecret(s.to_owned())
    }
}

/// How the resource server authenticates to an IdP endpoint.
///
/// `Debug` never shows the secret.
///
/// ```
/// use mcp_auth_core::client_auth::{AuthMethod, ClientAuth, CredentialSettings};
/// let auth = ClientAuth::new(AuthMethod::ClientSecretPost, Some("mcp-server".into()), "s3cret".into());
/// let prepared = auth.prepare(CredentialSettings::default()).unwrap();
/// assert!(prepared.header().is_none());
/// assert_eq!(prepared.form()[0], ("client_id", "mcp-server".to_owned()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic with the client id and secret, each
    /// `application/x-www-form-urlencoded` first, as RFC 6749 §2.3.1 requires (a secret with `:`,
    /// `%` or non-ASCII characters is therefore sent correctly). The default method.
    ClientSecretBasic {
        /// The resource server's client id.
        client_id: String,
        /// Its secret.
        client_secret: ClientSecret,
    },
    /// `client_secret_post`: `client_id` and `client_secret` as form parameters in the body.
    ClientSecretPost {
        /// The resource server's client id.
        client_id: String,
        /// Its secret.
        client_secret: ClientSecret,
    },
    /// A static credential sent as `Authorization: Bearer <credential>` (some IdPs issue an API
    /// key or a long-lived token for introspection).
    Bearer(ClientSecret),
}

/// The name of a client authentication method, as in `MCP_AUTH_INTROSPECT_AUTH_METHOD`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthMethod {
    /// `client_secret_basic` (default).
    #[default]
    ClientSecretBasic,
    /// `client_secret_post`.
    ClientSecretPost,
    /// `bearer`: the secret is sent as a bearer credential; the client id is not used.
    Bearer,
}

/// The setting an unknown method name is reported against by [`AuthMethod::from_str`].
const AUTH_METHOD: Setting = Setting::new("auth_method", "client authentication method");

impl AuthMethod {
    /// The configuration spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::Bearer => "bearer",
        }
    }

    /// Parses `client_secret_basic`, `client_secret_post` or `bearer` (ASCII case-insensitive);
    /// an error names `setting`.
    pub fn parse_for(s: &str, setting: Setting) -> Result<Self, BuildError> {
        let s = s.trim();
        for m in [
            AuthMethod::ClientSecretBasic,
            AuthMethod::ClientSecretPost,
            AuthMethod::Bearer,
        ] {
            if s.eq_ignore_ascii_case(m.as_str()) {
                return Ok(m);
            }
        }
        Err(BuildError::invalid(
            setting,
            format!(
                "unknown method {:?}: use client_secret_basic, client_secret_post or bearer",
                s.escape_debug().to_string()
            ),
        ))
    }
}

impl FromStr for AuthMethod {
    type Err = BuildError;

    /// Parses `client_secret_basic`, `client_secret_post` or `bearer` (ASCII case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuthMethod::parse_for(s, AUTH_METHOD)
    }
}

/// The settings a missing or bad client id or secret is reported against, so that the error
/// names the variable of the client that uses them (`MCP_AUTH_INTROSPECT_CLIENT_ID`,
/// `MCP_AUTH_EXCHANGE_CLIENT_ID`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CredentialSettings {
    /// The client id's setting.
    pub client_id: Setting,
    /// The secret's setting.
    pub client_secret: Setting,
}

impl Default for CredentialSettings {
    fn default() -> Self {
        CredentialSettings {
            client_id: Setting::new("client_id", "client id"),
            client_secret: Setting::new("client_secret", "client secret"),
        }
    }
}

impl ClientAuth {
    /// Builds the credentials for `method`. `client_id` is ignored for [`AuthMethod::Bearer`].
    pub fn new(method: AuthMethod, client_id: Option<String>, secret: ClientSecret) -> Self {
        let id = client_id.unwrap_or_default();
        match method {
            AuthMethod::ClientSecretBasic => ClientAuth::ClientSecretBasic {
                client_id: id,
                client_secret: secret,
            },
            AuthMethod::ClientSecretPost => ClientAuth::ClientSecretPost {
                client_id: id,
                client_secret: secret,
            },
            AuthMethod::Bearer => ClientAuth::Bearer(secret),
        }
    }

    /// The method's name.
    pub fn method(&self) -> AuthMethod {
        match self {
            ClientAuth::ClientSecretBasic { .. } => AuthMethod::ClientSecretBasic,
            ClientAuth::ClientSecretPost { .. } => AuthMethod::ClientSecretPost,
            ClientAuth::Bearer(_) => AuthMethod::Bearer,
        }
    }

    /// The client id, for the methods that send one.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            ClientAuth::ClientSecretBasic { client_id, .. }
            | ClientAuth::ClientSecretPost { client_id, .. } => Some(client_id),
            ClientAuth::Bearer(_) => None,
        }
    }

    /// Validates and precomputes what goes on the wire (once, at build time). Errors name the
    /// settings in `names`.
    pub fn prepare(&self, names: CredentialSettings) -> Result<PreparedAuth, BuildError> {
        let require = |id: &str, secret: &ClientSecret| {
            if id.is_empty() {
                return Err(BuildError::Missing(names.client_id));
            }
            if secret.expose().is_empty() {
                return Err(BuildError::Missing(names.client_secret));
            }
            Ok(())
        };
        match self {
            ClientAuth::ClientSecretBasic {
                client_id,
                client_secret,
            } => {
                require(client_id, client_secret)?;
                let raw = format!(
                    "{}:{}",
                    form_encode(client_id),
                    form_encode(client_secret.expose())
                );
                let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
                Ok(PreparedAuth {
                    header: Some(sensitive(&format!("Basic {b64}"), names.client_id)?),
                    form: Vec::new(),
                })
            }
            ClientAuth::ClientSecretPost {
                client_id,
                client_secret,
            } => {
                require(client_id, client_secret)?;
                Ok(PreparedAuth {
                    header: None,
                    form: vec![
                        ("client_id", client_id.clone()),
                        ("client_secret", client_secret.expose().to_owned()),
                    ],
                })
            }
            ClientAuth::Bearer(secret) => {
                if secret.expose().is_empty() {
                    return Err(BuildError::Missing(names.client_secret));
                }
                let header = sensitive(&format!("Bearer {}", secret.expose()), names.client_secret)
                    .map_err(|_| {
                        BuildError::invalid(
                            names.client_secret,
                            "a bearer credential must be printable ASCII",
                        )
                    })?;
                Ok(PreparedAuth {
                    header: Some(header),
                    form: Vec::new(),
                })
            }
        }
    }
}

/// `application/x-www-form-urlencoded` encoding of one value (RFC 6749 Appendix B).
fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn sensitive(value: &str, setting: Setting) -> Result<HeaderValue, BuildError> {
    let mut v = HeaderValue::from_str(value)
        .map_err(|_| BuildError::invalid(setting, "not a valid header value"))?;
    v.set_sensitive(true);
    Ok(v)
}

/// Credentials ready to attach to a request: an `Authorization` header (marked sensitive) or
/// form parameters. `Debug` is redacted.
#[derive(Clone)]
pub struct PreparedAuth {
    header: Option<HeaderValue>,
    form: Vec<(&'static str, String)>,
}

impl PreparedAuth {
    /// The `Authorization` header value, for `client_secret_basic` and bearer credentials.
    pub fn header(&self) -> Option<&HeaderValue> {
        self.header.as_ref()
    }

    /// The form parameters, for `client_secret_post`.
    pub fn form(&self) -> &[(&'static str, String)] {
        &self.form
    }
}

impl fmt::Debug for PreparedAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PreparedAuth([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: CredentialSettings = CredentialSettings {
        client_id: Setting::new("x_client_id", "x client id"),
        client_secret: Setting::new("x_client_secret", "x client secret"),
    };

    #[test]
    fn basic_encodes_per_rfc6749_2_3_1() {
        let auth = ClientAuth::new(
            AuthMethod::ClientSecretBasic,
            Some("my client:1".into()),
            ClientSecret::new("p@ss:w%rd é+"),
        );
        let prepared = auth.prepare(NAMES).unwrap();
        let header = prepared.header().unwrap();
        assert!(header.is_sensitive());
        let b64 = header.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            "my+client%3A1:p%40ss%3Aw%25rd+%C3%A9%2B"
        );
    }

    #[test]
    fn post_puts_credentials_in_the_form() {
        let auth = ClientAuth::new(
            AuthMethod::ClientSecretPost,
            Some("rs".into()),
            ClientSecret::new("s3cret"),
        );
        let p = auth.prepare(NAMES).unwrap();
        assert!(p.header().is_none());
        assert_eq!(
            p.form(),
            [
                ("client_id", "rs".to_owned()),
                ("client_secret", "s3cret".to_owned())
            ]
        );
    }

    #[test]
    fn bearer_and_missing_values_name_the_callers_settings() {
        let p = ClientAuth::Bearer(ClientSecret::new("k-123"))
            .prepare(NAMES)
            .unwrap();
        assert_eq!(p.header().unwrap().to_str().unwrap(), "Bearer k-123");
        assert_eq!(
            ClientAuth::new(AuthMethod::ClientSecretBasic, None, "x".into())
                .prepare(NAMES)
                .unwrap_err(),
            BuildError::Missing(NAMES.client_id)
        );
        assert_eq!(
            ClientAuth::new(AuthMethod::ClientSecretPost, Some("a".into()), "".into())
                .prepare(NAMES)
                .unwrap_err(),
            BuildError::Missing(NAMES.client_secret)
        );
        assert!(
            ClientAuth::Bearer(ClientSecret::new("a\nb"))
                .prepare(NAMES)
                .is_err()
        );
    }

    #[test]
    fn method_names_parse_and_debug_hides_secrets() {
        assert_eq!(
            "CLIENT_SECRET_POST".parse::<AuthMethod>().unwrap(),
            AuthMethod::ClientSecretPost
        );
        assert_eq!("bearer".parse::<AuthMethod>().unwrap(), AuthMethod::Bearer);
        assert!("private_key_jwt".parse::<AuthMethod>().is_err());
        assert_eq!(
            AuthMethod::parse_for("x", NAMES.client_id)
                .unwrap_err()
                .setting(),
            NAMES.client_id
        );
        let auth = ClientAuth::new(
            AuthMethod::ClientSecretBasic,
            Some("id".into()),
            ClientSecret::new("topsecret"),
        );
        let dbg = format!("{auth:?} {:?}", auth.prepare(NAMES).unwrap());
        assert!(!dbg.contains("topsecret"), "{dbg}");
        assert!(dbg.contains("[redacted]"));
    }
}
