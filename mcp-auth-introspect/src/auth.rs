//! Client authentication at the introspection endpoint (RFC 7662 §2.1 requires some).

use std::fmt;
use std::str::FromStr;

use crate::config::setting;
use base64::Engine as _;
use http::HeaderValue;
use mcp_auth_core::BuildError;

use crate::ClientSecret;

/// How the resource server authenticates to the introspection endpoint.
///
/// `Debug` never shows the secret.
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

impl AuthMethod {
    /// The configuration spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::Bearer => "bearer",
        }
    }
}

impl FromStr for AuthMethod {
    type Err = BuildError;

    /// Parses `client_secret_basic`, `client_secret_post` or `bearer` (ASCII case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
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
            setting::AUTH_METHOD,
            format!(
                "unknown method {:?}: use client_secret_basic, client_secret_post or bearer",
                s.escape_debug().to_string()
            ),
        ))
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

    /// Validates and precomputes what goes on the wire (once, at build time).
    pub(crate) fn prepare(&self) -> Result<PreparedAuth, BuildError> {
        match self {
            ClientAuth::ClientSecretBasic {
                client_id,
                client_secret,
            } => {
                require_id_and_secret(client_id, client_secret)?;
                let raw = format!(
                    "{}:{}",
                    form_encode(client_id),
                    form_encode(client_secret.expose())
                );
                let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
                Ok(PreparedAuth {
                    header: Some(sensitive(&format!("Basic {b64}"))?),
                    form: Vec::new(),
                })
            }
            ClientAuth::ClientSecretPost {
                client_id,
                client_secret,
            } => {
                require_id_and_secret(client_id, client_secret)?;
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
                    return Err(BuildError::Missing(setting::CLIENT_SECRET));
                }
                Ok(PreparedAuth {
                    header: Some(sensitive(&format!("Bearer {}", secret.expose())).map_err(
                        |_| {
                            BuildError::invalid(
                                setting::CLIENT_SECRET,
                                "a bearer credential must be printable ASCII",
                            )
                        },
                    )?),
                    form: Vec::new(),
                })
            }
        }
    }
}

fn require_id_and_secret(id: &str, secret: &ClientSecret) -> Result<(), BuildError> {
    if id.is_empty() {
        return Err(BuildError::Missing(setting::CLIENT_ID));
    }
    if secret.expose().is_empty() {
        return Err(BuildError::Missing(setting::CLIENT_SECRET));
    }
    Ok(())
}

/// `application/x-www-form-urlencoded` encoding of one value (RFC 6749 Appendix B).
pub(crate) fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn sensitive(value: &str) -> Result<HeaderValue, BuildError> {
    let mut v = HeaderValue::from_str(value)
        .map_err(|_| BuildError::invalid(setting::CLIENT_ID, "not a valid header value"))?;
    v.set_sensitive(true);
    Ok(v)
}

/// Credentials ready to attach to a request.
#[derive(Clone)]
pub(crate) struct PreparedAuth {
    pub(crate) header: Option<HeaderValue>,
    pub(crate) form: Vec<(&'static str, String)>,
}

impl fmt::Debug for PreparedAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PreparedAuth([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_encodes_per_rfc6749_2_3_1() {
        let auth = ClientAuth::new(
            AuthMethod::ClientSecretBasic,
            Some("my client:1".into()),
            ClientSecret::new("p@ss:w%rd é+"),
        );
        let prepared = auth.prepare().unwrap();
        let header = prepared.header.unwrap();
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
        let p = auth.prepare().unwrap();
        assert!(p.header.is_none());
        assert_eq!(
            p.form,
            vec![
                ("client_id", "rs".to_owned()),
                ("client_secret", "s3cret".to_owned())
            ]
        );
    }

    #[test]
    fn bearer_and_missing_values() {
        let p = ClientAuth::Bearer(ClientSecret::new("k-123"))
            .prepare()
            .unwrap();
        assert_eq!(p.header.unwrap().to_str().unwrap(), "Bearer k-123");
        assert_eq!(
            ClientAuth::new(AuthMethod::ClientSecretBasic, None, "x".into())
                .prepare()
                .unwrap_err(),
            BuildError::Missing(setting::CLIENT_ID)
        );
        assert_eq!(
            ClientAuth::new(AuthMethod::ClientSecretPost, Some("a".into()), "".into())
                .prepare()
                .unwrap_err(),
            BuildError::Missing(setting::CLIENT_SECRET)
        );
        assert!(
            ClientAuth::Bearer(ClientSecret::new("a\nb"))
                .prepare()
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
        let auth = ClientAuth::new(
            AuthMethod::ClientSecretBasic,
            Some("id".into()),
            ClientSecret::new("topsecret"),
        );
        let dbg = format!("{auth:?} {:?}", auth.prepare().unwrap());
        assert!(!dbg.contains("topsecret"), "{dbg}");
        assert!(dbg.contains("[redacted]"));
    }
}
