//! The shared outbound HTTP client: pooled, with timeouts on everything, redirects off, response
//! bodies capped, and `https` required except on loopback.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use url::Url;

use crate::challenge::MAX_RETRY_AFTER;
use crate::client_auth::PreparedAuth;
use crate::resource::is_loopback_url;
use crate::{BuildError, Setting};

/// Default overall timeout of one outbound request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default cap on a response body (JWKS, metadata, introspection responses are small).
pub const DEFAULT_MAX_BODY: usize = 256 * 1024;

/// Settings of an [`HttpClient`].
#[derive(Debug, Clone)]
pub struct HttpClientConfig {
    /// Overall timeout per request.
    pub timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Default body cap for [`HttpClient::get_bytes`] and friends.
    pub max_body_bytes: usize,
}

impl Default for HttpClientConfig {
    fn default() -> Self {
        HttpClientConfig {
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY,
        }
    }
}

/// A pooled HTTP client for talking to IdPs. Clone it freely (clones share the pool).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use mcp_auth_core::fetch::HttpClient;
/// let client = HttpClient::shared();
/// let url = url::Url::parse("https://idp.example.com/.well-known/openid-configuration")?;
/// let doc: serde_json::Value = client.get_json(&url).await?.body;
/// # let _ = doc; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    max_body: usize,
}

/// A fetched response: body plus the caching hints verifiers use.
#[derive(Debug, Clone)]
pub struct Fetched<T> {
    /// The decoded body.
    pub body: T,
    /// `max-age` from `Cache-Control`, when present (`no-store`/`no-cache` give `Some(0)`).
    pub max_age: Option<Duration>,
}

/// Why an outbound request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The URL is not https and not loopback.
    #[error("refusing non-https URL outside loopback")]
    InsecureUrl,
    /// No answer within the timeout.
    #[error("request timed out")]
    Timeout,
    /// Could not connect or the connection broke.
    #[error("connection failed")]
    Connect,
    /// The server answered with a redirect (redirects are never followed).
    #[error("unexpected redirect (status {0})")]
    Redirect(u16),
    /// A non-success status.
    #[error("unexpected status {status}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// `Retry-After` in seconds, when the server sent one.
        retry_after: Option<Duration>,
    },
    /// The body is larger than the cap.
    #[error("response body over {0} bytes")]
    TooLarge(usize),
    /// The body is not the expected JSON.
    #[error("response is not valid JSON of the expected shape")]
    InvalidJson,
}

impl FetchError {
    /// Whether retrying later may help (timeouts, connection failures, 5xx, 429): what verifiers
    /// map to "IdP unavailable" (503) rather than "invalid token".
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Timeout | FetchError::Connect => true,
            FetchError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// The `Retry-After` hint, if the server gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            FetchError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

static SHARED: OnceLock<HttpClient> = OnceLock::new();

impl HttpClient {
    /// Builds a client with `config`.
    pub fn new(config: HttpClientConfig) -> Result<Self, BuildError> {
        let inner = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("mcp-auth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                BuildError::invalid(Setting::new("http_client", "http client"), e.to_string())
            })?;
        Ok(HttpClient {
            inner,
            max_body: config.max_body_bytes,
        })
    }

    /// The process-wide client with default settings (one connection pool for every verifier).
    pub fn shared() -> HttpClient {
        SHARED
            .get_or_init(|| {
                HttpClient::new(HttpClientConfig::default())
                    .expect("default HTTP client settings are valid")
            })
            .clone()
    }

    /// The default body cap.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body
    }

    /// GETs `url` and returns the capped body with its cache hint.
    pub async fn get_bytes(&self, url: &Url) -> Result<Fetched<Bytes>, FetchError> {
        check_url(url)?;
        let resp = self
            .inner
            .get(url.clone())
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(map_reqwest_error)?;
        let max_age = cache_max_age(resp.headers());
        let resp = check_status(resp)?;
        let body = read_capped(resp, self.max_body).await?;
        Ok(Fetched { body, max_age })
    }

    /// GETs `url` and decodes a JSON body.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &Url,
    ) -> Result<Fetched<T>, FetchError> {
        let fetched = self.get_bytes(url).await?;
        let body = serde_json::from_slice(&fetched.body).map_err(|_| FetchError::InvalidJson)?;
        Ok(Fetched {
            body,
            max_age: fetched.max_age,
        })
    }

    /// Sends `request` as it is (any method, headers and body) and returns the answer with its
    /// body read up to `max_body` bytes, whatever the status: the caller decides what a status
    /// means. The URL must pass [`check_url`]; redirects are not followed; the client's
    /// timeouts apply.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use bytes::Bytes;
    /// use mcp_auth_core::fetch::HttpClient;
    /// let request = http::Request::get("https://api.example.com/me")
    ///     .header(http::header::AUTHORIZATION, "Bearer a-downstream-token")
    ///     .body(Bytes::new())?;
    /// let answer = HttpClient::shared().send(request, 64 * 1024).await?;
    /// println!("{}: {} bytes", answer.status(), answer.body().len());
    /// # Ok(()) }
    /// ```
    pub async fn send(
        &self,
        request: http::Request<Bytes>,
        max_body: usize,
    ) -> Result<http::Response<Bytes>, FetchError> {
        let url = Url::parse(&request.uri().to_string()).map_err(|_| FetchError::InsecureUrl)?;
        check_url(&url)?;
        let request = reqwest::Request::try_from(request).map_err(|_| FetchError::Connect)?;
        let resp = self
            .inner
            .execute(request)
            .await
            .map_err(map_reqwest_error)?;
        let mut answer = http::Response::builder().status(resp.status());
        if let Some(headers) = answer.headers_mut() {
            *headers = resp.headers().clone();
        }
        let body = read_capped(resp, max_body).await?;
        answer.body(body).map_err(|_| FetchError::Connect)
    }

    /// POSTs `params` as `application/x-www-form-urlencoded` to `url`, asking for JSON, with the
    /// client credentials `auth` added (the `Authorization` header, or the form parameters after
    /// `params`), and returns the answer like [`send`](Self::send). For token, introspection and
    /// token-exchange endpoints.
    pub async fn post_form(
        &self,
        url: &Url,
        params: &[(&str, &str)],
        auth: Option<&PreparedAuth>,
        max_body: usize,
    ) -> Result<http::Response<Bytes>, FetchError> {
        // The serializer is not `Send`: finish it before anything is awaited.
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.extend_pairs(params.iter().copied());
            if let Some(auth) = auth {
                form.extend_pairs(auth.form().iter().map(|(k, v)| (*k, v.as_str())));
            }
            form.finish()
        };
        let mut request = http::Request::post(url.as_str())
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        if let Some(h) = auth.and_then(PreparedAuth::header) {
            request = request.header(http::header::AUTHORIZATION, h.clone());
        }
        let request = request
            .body(Bytes::from(body))
            .map_err(|_| FetchError::InsecureUrl)?;
        self.send(request, max_body).await
    }
}

/// Refuses URLs that are not `https`, except on loopback.
pub fn check_url(url: &Url) -> Result<(), FetchError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_url(url) => Ok(()),
        _ => Err(FetchError::InsecureUrl),
    }
}

/// Maps a reqwest error onto [`FetchError`].
pub(crate) fn map_reqwest_error(e: reqwest::Error) -> FetchError {
    if e.is_timeout() {
        FetchError::Timeout
    } else if e.is_decode() {
        FetchError::InvalidJson
    } else {
        FetchError::Connect
    }
}

/// Passes 2xx responses, turns redirects and other statuses into errors.
fn check_status(resp: reqwest::Response) -> Result<reqwest::Response, FetchError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    if status.is_redirection() {
        return Err(FetchError::Redirect(status.as_u16()));
    }
    Err(FetchError::Status {
        status: status.as_u16(),
        retry_after: retry_after(resp.headers()),
    })
}

/// Reads a response body, failing as soon as it grows past `max` bytes.
async fn read_capped(mut resp: reqwest::Response, max: usize) -> Result<Bytes, FetchError> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(FetchError::TooLarge(max));
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(map_reqwest_error)? {
        if buf.len() + chunk.len() > max {
            return Err(FetchError::TooLarge(max));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// `Retry-After` in delta-seconds form (HTTP dates are ignored), capped at
/// [`MAX_RETRY_AFTER`].
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let text = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Too many digits for u64 is still "very long": the cap, not a missing hint.
    let secs = text.parse::<u64>().unwrap_or(u64::MAX);
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// `max-age` from `Cache-Control`; `no-store` and `no-cache` count as zero.
pub fn cache_max_age(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::CACHE_CONTROL)?.to_str().ok()?;
    let mut max_age = None;
    for directive in value.split(',') {
        let directive = directive.trim();
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(v) = lower.strip_prefix("max-age=") {
            max_age = v
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    max_age
}

/// Whether `candidate` is on the same origin as `base` (credentials go only there).
pub fn same_origin(base: &Url, candidate: &Url) -> bool {
    base.origin() == candidate.origin()
}

/// Why an issuer's authorization server metadata could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// Fetching failed.
    #[error("fetching the metadata failed: {0}")]
    Fetch(FetchError),
    /// Neither well-known URL has a document (404).
    #[error("the issuer publishes no authorization server metadata")]
    NotFound,
    /// The issuer is not a usable URL.
    #[error("the issuer is not an https URL (plain http only on loopback)")]
    BadIssuer,
    /// The document's `issuer` differs from the configured one (RFC 8414 §3.3): ignored.
    #[error("the metadata's issuer {found:?} differs from the configured one (RFC 8414 §3.3)")]
    IssuerMismatch {
        /// What the document says (at most 200 characters).
        found: Option<String>,
    },
}

impl MetadataError {
    /// Whether retrying later may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, MetadataError::Fetch(e) if e.is_transient())
    }

    /// The `Retry-After` hint, if the server gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            MetadataError::Fetch(e) => e.retry_after(),
            _ => None,
        }
    }
}

/// An issuer's authorization server metadata: RFC 8414 (path-inserted well-known URL), then
/// OpenID Connect discovery when the first answers 404. A document is used only if its `issuer`
/// equals `issuer` exactly (RFC 8414 §3.3). Endpoints read from it should receive credentials
/// only when they are on the issuer's origin ([`same_origin`]).
pub async fn authorization_server_metadata(
    client: &HttpClient,
    issuer: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, MetadataError> {
    let url = Url::parse(issuer).map_err(|_| MetadataError::BadIssuer)?;
    check_url(&url).map_err(|_| MetadataError::BadIssuer)?;
    let path = url.path().trim_end_matches('/');
    let origin = url.origin().ascii_serialization();
    let candidates = [
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ),
    ];
    for candidate in candidates {
        let Ok(u) = Url::parse(&candidate) else {
            continue;
        };
        match client
            .get_json::<serde_json::Map<String, serde_json::Value>>(&u)
            .await
        {
            Ok(f) => {
                let found = f.body.get("issuer").and_then(|v| v.as_str());
                if found != Some(issuer) {
                    return Err(MetadataError::IssuerMismatch {
                        found: found.map(|s| s.chars().take(200).collect()),
                    });
                }
                return Ok(f.body);
            }
            Err(FetchError::Status { status: 404, .. }) => continue,
            Err(e) => return Err(MetadataError::Fetch(e)),
        }
    }
    Err(MetadataError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_parsing() {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::CACHE_CONTROL,
            "public, max-age=600".parse().unwrap(),
        );
        assert_eq!(cache_max_age(&h), Some(Duration::from_secs(600)));
        h.insert(http::header::CACHE_CONTROL, "no-store".parse().unwrap());
        assert_eq!(cache_max_age(&h), Some(Duration::ZERO));
        h.insert(http::header::CACHE_CONTROL, "public".parse().unwrap());
        assert_eq!(cache_max_age(&h), None);
    }

    #[test]
    fn retry_after_is_capped_and_never_overflows() {
        let hint = |v: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(http::header::RETRY_AFTER, v.parse().unwrap());
            retry_after(&h)
        };
        assert_eq!(hint("7"), Some(Duration::from_secs(7)));
        assert_eq!(hint(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(hint("86400"), Some(MAX_RETRY_AFTER));
        assert_eq!(hint("18446744073709551615"), Some(MAX_RETRY_AFTER));
        assert_eq!(hint("99999999999999999999999999"), Some(MAX_RETRY_AFTER));
        for bad in ["", "-1", "1.5", "Wed, 21 Oct 2015 07:28:00 GMT", "+3"] {
            assert_eq!(hint(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn https_required_except_loopback() {
        for ok in [
            "https://idp.example.com/x",
            "http://127.0.0.1:9/x",
            "http://localhost/x",
        ] {
            assert!(check_url(&Url::parse(ok).unwrap()).is_ok(), "{ok}");
        }
        for bad in [
            "http://idp.example.com/x",
            "file:///etc/passwd",
            "http://10.1.1.1/",
        ] {
            assert_eq!(
                check_url(&Url::parse(bad).unwrap()),
                Err(FetchError::InsecureUrl)
            );
        }
    }

    #[test]
    fn transient_classification() {
        assert!(FetchError::Timeout.is_transient());
        assert!(
            FetchError::Status {
                status: 503,
                retry_after: None
            }
            .is_transient()
        );
        assert!(
            FetchError::Status {
                status: 429,
                retry_after: None
            }
            .is_transient()
        );
        assert!(
            !FetchError::Status {
                status: 404,
                retry_after: None
            }
            .is_transient()
        );
        assert!(!FetchError::InvalidJson.is_transient());
    }
}
