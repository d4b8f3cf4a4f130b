//! The canonical resource URL (R) and the URLs derived from it.

use std::net::IpAddr;

use url::Url;

use crate::{BuildError, Setting};

/// The well-known path of protected-resource metadata (RFC 9728 §3).
pub const PRM_WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The canonical URL of the protected MCP endpoint: the single source of truth for the metadata's
/// `resource`, the `resource_metadata` URL and the expected token audience.
///
/// It is configured, never derived from `Host` or `X-Forwarded-*`; it must be `https` except on
/// loopback; it has no query or fragment; a trailing slash is removed once.
///
/// ```
/// use mcp_auth_core::ResourceUrl;
/// let r = ResourceUrl::parse("https://api.example.com/mcp/").unwrap();
/// assert_eq!(r.as_str(), "https://api.example.com/mcp");
/// assert_eq!(
///     r.metadata_url(),
///     "https://api.example.com/.well-known/oauth-protected-resource/mcp"
/// );
/// assert!(ResourceUrl::parse("http://api.example.com/mcp").is_err());
/// assert!(ResourceUrl::parse("http://127.0.0.1:8000/mcp").is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceUrl {
    canonical: String,
    origin: String,
    path: String,
}

impl ResourceUrl {
    /// Parses and validates a resource URL.
    pub fn parse(raw: &str) -> Result<Self, BuildError> {
        let setting = Setting::RESOURCE_URL;
        let url = Url::parse(raw.trim())
            .map_err(|e| BuildError::invalid(setting, format!("{raw:?} is not a URL: {e}")))?;
        if url.fragment().is_some() {
            return Err(BuildError::invalid(setting, "must not have a fragment"));
        }
        if url.query().is_some() {
            return Err(BuildError::invalid(setting, "must not have a query"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(BuildError::invalid(setting, "must not carry credentials"));
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback_url(&url) => {}
            "http" => {
                return Err(BuildError::invalid(
                    setting,
                    "must use https (plain http is allowed only on loopback)",
                ));
            }
            other => {
                return Err(BuildError::invalid(
                    setting,
                    format!("unsupported scheme {other:?}"),
                ));
            }
        }
        let origin = url.origin().ascii_serialization();
        let path = url.path().trim_end_matches('/').to_owned();
        let canonical = format!("{origin}{path}");
        Ok(ResourceUrl {
            canonical,
            origin,
            path,
        })
    }

    /// The canonical form (`https://host[:port]/path`, no trailing slash).
    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// The origin (`scheme://host[:port]`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The path of the endpoint (empty for an origin-only resource, never ending in `/`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the resource is a whole origin (no path).
    pub fn is_origin_only(&self) -> bool {
        self.path.is_empty()
    }

    /// The local path of the path-inserted metadata document (RFC 9728 §3.1).
    pub fn metadata_path(&self) -> String {
        format!("{PRM_WELL_KNOWN}{}", self.path)
    }

    /// The absolute URL of the metadata document (the `resource_metadata` challenge parameter).
    pub fn metadata_url(&self) -> String {
        format!("{}{}", self.origin, self.metadata_path())
    }

    /// The audience values that name this resource: R, and for an origin-only R also R with a
    /// trailing slash (the TypeScript SDK sends it).
    pub fn audiences(&self) -> Vec<String> {
        let mut v = vec![self.canonical.clone()];
        if self.is_origin_only() {
            v.push(format!("{}/", self.canonical));
        }
        v
    }
}

impl std::fmt::Display for ResourceUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.canonical)
    }
}

/// Whether the URL's host is loopback (`localhost`, 127.0.0.0/8, `::1`).
pub fn is_loopback_url(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

impl std::str::FromStr for ResourceUrl {
    type Err = BuildError;

    /// The same as [`ResourceUrl::parse`].
    fn from_str(raw: &str) -> Result<Self, BuildError> {
        ResourceUrl::parse(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_only_resource() {
        let r = ResourceUrl::parse("https://api.example.com").unwrap();
        assert_eq!(r.as_str(), "https://api.example.com");
        assert_eq!(r.metadata_path(), "/.well-known/oauth-protected-resource");
        assert_eq!(
            r.audiences(),
            vec!["https://api.example.com", "https://api.example.com/"]
        );
    }

    #[test]
    fn nested_path_and_port() {
        let r = ResourceUrl::parse("http://localhost:9000/v1/mcp").unwrap();
        assert_eq!(
            r.metadata_url(),
            "http://localhost:9000/.well-known/oauth-protected-resource/v1/mcp"
        );
        assert_eq!(r.audiences(), vec!["http://localhost:9000/v1/mcp"]);
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in [
            "not a url",
            "https://a.example/mcp#frag",
            "https://a.example/mcp?x=1",
            "ftp://a.example/mcp",
            "http://10.0.0.1/mcp",
            "https://user:pw@a.example/mcp",
        ] {
            assert!(ResourceUrl::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
