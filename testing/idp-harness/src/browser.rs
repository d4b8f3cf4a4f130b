//! Playing the user's browser for an authorization URL produced by some other OAuth client (an
//! MCP SDK doing discovery, registration and PKCE itself).

use reqwest::Url;

use crate::{HarnessError, REDIRECT_URI, follow_to_callback, http_client};

/// The redirect URI the headless login recognises: register it in the client under test.
pub const CALLBACK_URI: &str = REDIRECT_URI;

/// Opens `authorization_url` with a fresh cookie jar, logs in headlessly (the account named by
/// the URL's `login_hint`, default `alice`), and returns the callback URL the IdP redirected to
/// (with `code`, `state` and `iss`), after checking its `state` against the request's.
pub async fn login(authorization_url: &str) -> Result<String, HarnessError> {
    let url = Url::parse(authorization_url)
        .map_err(|e| HarnessError::Protocol(format!("bad authorization URL: {e}")))?;
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| HarnessError::Protocol("authorization URL without state".into()))?;
    let browser = http_client(true)?;
    Ok(follow_to_callback(&browser, url, &state).await?.into())
}
