//! Secret newtypes: their `Debug` output never shows the value.

use std::fmt;

/// A client secret or static bearer credential for the introspection endpoint.
///
/// `Debug` prints `[redacted]`, so a secret inside a config struct cannot leak through `{:?}`.
/// The value is read only where a request is built ([`ClientSecret::expose`]).
///
/// ```
/// use mcp_auth_introspect::ClientSecret;
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
