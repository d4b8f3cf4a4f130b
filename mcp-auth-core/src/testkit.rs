//! Conformance test kit (feature `testkit`): checks any [`AuthProvider`] against the wire contract.
//!
//! A provider crate calls [`check_provider`] from its tests with the provider and a `mint`
//! function that issues tokens the provider's verifier accepts (the `mcp-auth-jwt` development key
//! pair is the usual one). The kit serves the provider's routes and a protected endpoint at the
//! path of its resource URL on 127.0.0.1, sends the requests an MCP client (or an attacker) would,
//! and checks every answer: metadata at both URLs, CORS and cache headers, the exact challenges,
//! 401 without `error` when no credentials are sent, 401 `invalid_token`, 403
//! `insufficient_scope`, 400 for duplicate credentials, and audience binding to R.
//!
//! ```no_run
//! # async fn demo(provider: mcp_auth_core::RemoteAuthProvider) {
//! use mcp_auth_core::testkit::check_provider;
//! let report = check_provider(&provider, |scopes: &[&str], audience: &str| {
//!     // mint a token for `audience` carrying `scopes` with your IdP's conventions
//!     format!("{}.{}", scopes.join("+"), audience.len())
//! })
//! .await;
//! report.assert_ok();
//! # }
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::any;
use http::{HeaderMap, header};

use crate::challenge::is_quoted_value_char;
use crate::{AccessToken, AuthProvider};

/// The result of a conformance run.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Names of the checks that passed.
    pub passed: Vec<String>,
    /// Descriptions of the checks that failed.
    pub failures: Vec<String>,
}

impl Report {
    /// Whether every check passed.
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty() && !self.passed.is_empty()
    }

    /// Panics with every failure listed (for use in `#[test]`s).
    pub fn assert_ok(&self) {
        assert!(
            self.is_ok(),
            "wire-contract conformance failed ({} passed, {} failed):\n  - {}",
            self.passed.len(),
            self.failures.len(),
            self.failures.join("\n  - ")
        );
    }

    fn check(&mut self, name: &str, ok: bool, detail: impl FnOnce() -> String) {
        if ok {
            self.passed.push(name.to_owned());
        } else {
            self.failures.push(format!("{name}: {}", detail()));
        }
    }
}

/// One parsed challenge parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Parameter name.
    pub name: String,
    /// Unquoted value.
    pub value: String,
}

/// Parses a `Bearer` challenge as this crate writes it (`Bearer name="value", …`), strictly: every
/// value quoted, no escapes, characters within the RFC 6750 set. `None` when anything is off.
pub fn parse_challenge(header: &str) -> Option<Vec<Param>> {
    let rest = header.strip_prefix("Bearer ")?;
    let mut params = Vec::new();
    let mut s = rest;
    loop {
        let eq = s.find('=')?;
        let name = &s[..eq];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return None;
        }
        let after = s[eq + 1..].strip_prefix('"')?;
        let end = after.find('"')?;
        let value = &after[..end];
        if !value.bytes().all(is_quoted_value_char) {
            return None;
        }
        params.push(Param {
            name: name.to_owned(),
            value: value.to_owned(),
        });
        s = &after[end + 1..];
        if s.is_empty() {
            return Some(params);
        }
        s = s.strip_prefix(", ")?;
    }
}

const ORDER: [&str; 4] = ["error", "error_description", "scope", "resource_metadata"];

/// Whether the parameters follow `error, error_description, scope, resource_metadata`.
pub fn in_contract_order(params: &[Param]) -> bool {
    let idx: Option<Vec<usize>> = params
        .iter()
        .map(|p| ORDER.iter().position(|o| *o == p.name))
        .collect();
    idx.is_some_and(|v| v.windows(2).all(|w| w[0] < w[1]))
}

fn www_authenticate(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn param<'a>(params: &'a [Param], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.value.as_str())
}

/// Runs the whole wire contract against `provider`. `mint(scopes, audience)` must return a token
/// the provider's verifier accepts, carrying exactly `scopes` and the audience `audience`.
pub async fn check_provider<P, M>(provider: &P, mint: M) -> Report
where
    P: AuthProvider + ?Sized,
    M: Fn(&[&str], &str) -> String,
{
    let mut report = Report::default();
    let pr = provider.protected_resource().clone();
    let r = pr.resource().clone();
    let local_path = if r.path().is_empty() {
        "/".to_owned()
    } else {
        r.path().to_owned()
    };

    let protected = Router::new()
        .route(
            &local_path,
            any(|token: AccessToken| async move {
                axum::Json(serde_json::json!({
                    "sub": token.subject(),
                    "resource": token.resource(),
                }))
            }),
        )
        .layer(provider.layer());
    let app = provider.routes().merge(protected);

    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => {
            report.failures.push(format!("bind 127.0.0.1:0: {e}"));
            return report;
        }
    };
    let addr: SocketAddr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            report.failures.push(format!("local_addr: {e}"));
            return report;
        }
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await;
    });

    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            report.failures.push(format!("client: {e}"));
            return report;
        }
    };
    let base = format!("http://{addr}");
    run_checks(&mut report, &client, &base, &local_path, provider, &mint).await;

    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    report
}

async fn run_checks<P, M>(
    report: &mut Report,
    client: &reqwest::Client,
    base: &str,
    local_path: &str,
    provider: &P,
    mint: &M,
) where
    P: AuthProvider + ?Sized,
    M: Fn(&[&str], &str) -> String,
{
    let pr = provider.protected_resource();
    let r = pr.resource();
    let meta_url = r.metadata_url();
    let endpoint = format!("{base}{local_path}");

    // --- metadata documents -------------------------------------------------------------
    let mut documents = vec![("metadata (path-inserted)", r.metadata_path())];
    if pr.serves_root_alias() && !r.is_origin_only() {
        documents.push((
            "metadata (root alias)",
            crate::resource::PRM_WELL_KNOWN.to_owned(),
        ));
    }
    let mut first_doc: Option<serde_json::Value> = None;
    for (name, path) in &documents {
        match client.get(format!("{base}{path}")).send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let h = resp.headers().clone();
                let body: serde_json::Value = resp.json().await.unwrap_or_default();
                report.check(&format!("{name}: 200"), status == 200, || {
                    format!("got {status}")
                });
                let ct = h
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                report.check(
                    &format!("{name}: content-type"),
                    ct.starts_with("application/json"),
                    || format!("got {ct:?}"),
                );
                let cc = h
                    .get(header::CACHE_CONTROL)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                report.check(
                    &format!("{name}: cache-control"),
                    cc == "public, max-age=3600",
                    || format!("got {cc:?}"),
                );
                let acao = h
                    .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                report.check(&format!("{name}: CORS *"), acao == "*", || {
                    format!("got {acao:?}")
                });
                report.check(
                    &format!("{name}: resource = R"),
                    body["resource"] == r.as_str(),
                    || format!("got {}", body["resource"]),
                );
                let servers_ok = body["authorization_servers"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty() && a.iter().all(|s| s.is_string()));
                report.check(
                    &format!("{name}: authorization_servers"),
                    servers_ok,
                    || format!("got {}", body["authorization_servers"]),
                );
                report.check(
                    &format!("{name}: authorization_servers as configured"),
                    body["authorization_servers"]
                        == serde_json::json!(provider.metadata().authorization_servers),
                    || format!("got {}", body["authorization_servers"]),
                );
                report.check(
                    &format!("{name}: bearer_methods_supported"),
                    body["bearer_methods_supported"] == serde_json::json!(["header"]),
                    || format!("got {}", body["bearer_methods_supported"]),
                );
                let scopes = &body["scopes_supported"];
                let scopes_ok = match scopes {
                    serde_json::Value::Null => provider.metadata().scopes_supported.is_empty(),
                    serde_json::Value::Array(a) => {
                        !a.is_empty() && !a.iter().any(|s| s == "offline_access")
                    }
                    _ => false,
                };
                report.check(&format!("{name}: scopes_supported"), scopes_ok, || {
                    format!("got {scopes}")
                });
                match &first_doc {
                    None => first_doc = Some(body),
                    Some(first) => {
                        report.check(&format!("{name}: same document"), *first == body, || {
                            "root alias differs from the path-inserted document".into()
                        })
                    }
                }
            }
            Err(e) => report.failures.push(format!("{name}: request failed: {e}")),
        }
        // CORS preflight on the metadata.
        let pre = client
            .request(http::Method::OPTIONS, format!("{base}{path}"))
            .header(header::ORIGIN, "https://client.example")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "mcp-protocol-version, authorization",
            )
            .send()
            .await;
        match pre {
            Ok(resp) => {
                let ok_status = resp.status().is_success();
                let h = resp.headers();
                let allow_h = h
                    .get(header::ACCESS_CONTROL_ALLOW_HEADERS)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_ascii_lowercase();
                let acao = h
                    .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                report.check(
                    &format!("{name}: preflight"),
                    ok_status
                        && acao == "*"
                        && allow_h.contains("mcp-protocol-version")
                        && allow_h.contains("authorization"),
                    || format!("status ok={ok_status}, allow-origin {acao:?}, allow-headers {allow_h:?}"),
                );
            }
            Err(e) => report
                .failures
                .push(format!("{name}: preflight failed: {e}")),
        }
    }

    // --- no usable credentials ------------------------------------------------------------
    let scope = pr.challenge_scope();
    let expected_plain = if scope.is_empty() {
        format!("Bearer resource_metadata=\"{meta_url}\"")
    } else {
        format!("Bearer scope=\"{scope}\", resource_metadata=\"{meta_url}\"")
    };
    let no_creds: [(&str, Option<&str>, &str); 3] = [
        ("no Authorization header", None, ""),
        ("another scheme", Some("Basic dXNlcjpwYXNz"), ""),
        ("token only in the query", None, "?access_token=abc"),
    ];
    for (name, auth, query) in no_creds {
        let mut req = client.post(format!("{endpoint}{query}")).body("{}");
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let www = www_authenticate(resp.headers());
                let body = resp.bytes().await.unwrap_or_default();
                report.check(&format!("{name}: 401"), status == 401, || {
                    format!("got {status}")
                });
                report.check(
                    &format!("{name}: challenge without error"),
                    www.as_deref() == Some(expected_plain.as_str()),
                    || format!("expected {expected_plain:?}, got {www:?}"),
                );
                report.check(&format!("{name}: empty body"), body.is_empty(), || {
                    format!("{} bytes", body.len())
                });
            }
            Err(e) => report.failures.push(format!("{name}: request failed: {e}")),
        }
    }

    // --- bad tokens -----------------------------------------------------------------------
    let all_scopes: Vec<&str> = {
        let mut v: Vec<&str> = pr.required_scopes().iter().collect();
        for s in &provider.metadata().scopes_supported {
            if !v.contains(&s.as_str()) {
                v.push(s);
            }
        }
        v
    };
    let good = mint(&all_scopes, r.as_str());
    let tampered = {
        let mut t = good.clone();
        // Flip one character in the middle of the token (stays within b64token).
        let mid = t.len() / 2;
        let c = t.as_bytes()[mid];
        let replacement = if c == b'A' { "B" } else { "A" };
        t.replace_range(mid..mid + 1, replacement);
        t
    };
    let other_aud = mint(&all_scopes, "https://other-resource.invalid/mcp");
    let bad_tokens: [(&str, String); 4] = [
        ("garbage token", "not-a-valid-token".to_owned()),
        ("tampered token", tampered),
        ("empty bearer", String::new()),
        ("token for another resource", other_aud),
    ];
    for (name, token) in bad_tokens {
        let auth = if token.is_empty() {
            "Bearer".to_owned()
        } else {
            format!("Bearer {token}")
        };
        match client
            .post(&endpoint)
            .header(header::AUTHORIZATION, auth)
            .body("{}")
            .send()
            .await
        {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let www = www_authenticate(resp.headers()).unwrap_or_default();
                let body: serde_json::Value = resp.json().await.unwrap_or_default();
                report.check(&format!("{name}: 401"), status == 401, || {
                    format!("got {status}")
                });
                let params = parse_challenge(&www);
                report.check(
                    &format!("{name}: challenge grammar"),
                    params.is_some(),
                    || format!("unparseable {www:?}"),
                );
                let params = params.unwrap_or_default();
                report.check(
                    &format!("{name}: parameter order"),
                    in_contract_order(&params),
                    || format!("{www:?}"),
                );
                report.check(
                    &format!("{name}: error=invalid_token"),
                    param(&params, "error") == Some("invalid_token")
                        && param(&params, "error_description").is_some_and(|d| !d.is_empty())
                        && param(&params, "resource_metadata") == Some(meta_url.as_str())
                        && param(&params, "scope").unwrap_or("") == scope,
                    || format!("{www:?}"),
                );
                report.check(
                    &format!("{name}: JSON body"),
                    body["error"] == "invalid_token" && body["error_description"].is_string(),
                    || format!("{body}"),
                );
            }
            Err(e) => report.failures.push(format!("{name}: request failed: {e}")),
        }
    }

    // --- duplicate credentials --------------------------------------------------------------
    let dup = client
        .post(&endpoint)
        .header(header::AUTHORIZATION, format!("Bearer {good}"))
        .header(header::AUTHORIZATION, format!("Bearer {good}"))
        .body("{}")
        .send()
        .await;
    let both = client
        .post(format!("{endpoint}?access_token={good}"))
        .header(header::AUTHORIZATION, format!("Bearer {good}"))
        .body("{}")
        .send()
        .await;
    for (name, resp) in [
        ("two Authorization headers", dup),
        ("header and query", both),
    ] {
        match resp {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let www = www_authenticate(resp.headers()).unwrap_or_default();
                report.check(
                    &format!("{name}: 400 invalid_request"),
                    status == 400 && www.starts_with("Bearer error=\"invalid_request\""),
                    || format!("got {status} {www:?}"),
                );
            }
            Err(e) => report.failures.push(format!("{name}: request failed: {e}")),
        }
    }

    // --- valid tokens -----------------------------------------------------------------------
    for (name, scheme) in [("valid token", "Bearer"), ("lower-case scheme", "bearer")] {
        match client
            .post(&endpoint)
            .header(header::AUTHORIZATION, format!("{scheme} {good}"))
            .body("{}")
            .send()
            .await
        {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body: serde_json::Value = resp.json().await.unwrap_or_default();
                report.check(&format!("{name}: 200"), status == 200, || {
                    format!("got {status}")
                });
                report.check(
                    &format!("{name}: AccessToken bound to R"),
                    body["resource"] == r.as_str(),
                    || format!("{body}"),
                );
            }
            Err(e) => report.failures.push(format!("{name}: request failed: {e}")),
        }
    }

    // --- insufficient scope -----------------------------------------------------------------
    let required = pr.required_scopes();
    if !required.is_empty() {
        let weak = mint(&[], r.as_str());
        match client
            .post(&endpoint)
            .header(header::AUTHORIZATION, format!("Bearer {weak}"))
            .body("{}")
            .send()
            .await
        {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let www = www_authenticate(resp.headers()).unwrap_or_default();
                let params = parse_challenge(&www).unwrap_or_default();
                report.check("missing scope: 403", status == 403, || {
                    format!("got {status}")
                });
                report.check(
                    "missing scope: insufficient_scope challenge",
                    param(&params, "error") == Some("insufficient_scope")
                        && param(&params, "scope") == Some(pr.challenge_scopes(required).as_str())
                        && param(&params, "resource_metadata") == Some(meta_url.as_str())
                        && in_contract_order(&params),
                    || format!("{www:?}"),
                );
            }
            Err(e) => report
                .failures
                .push(format!("missing scope: request failed: {e}")),
        }
    }

    // --- CORS preflight on the protected endpoint passes without auth ------------------------
    match client
        .request(http::Method::OPTIONS, &endpoint)
        .header(header::ORIGIN, "https://client.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .send()
        .await
    {
        Ok(resp) => {
            let status = resp.status().as_u16();
            report.check(
                "preflight on the endpoint is not challenged",
                status != 401,
                || format!("got {status}"),
            );
        }
        Err(e) => report
            .failures
            .push(format!("endpoint preflight failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        let p = parse_challenge(
            "Bearer error=\"invalid_token\", error_description=\"x y\", scope=\"a b\", resource_metadata=\"https://r/m\"",
        )
        .unwrap();
        assert_eq!(p.len(), 4);
        assert!(in_contract_order(&p));
        let q = parse_challenge("Bearer resource_metadata=\"m\", scope=\"a\"").unwrap();
        assert!(!in_contract_order(&q));
        for bad in [
            "Basic realm=\"x\"",
            "Bearer scope=a",
            "Bearer scope=\"a\\\"b\"",
            "Bearer scope=\"a\",scope=\"b\"",
            "Bearer scope=\"\u{1}\"",
        ] {
            assert!(parse_challenge(bad).is_none(), "{bad}");
        }
    }
}
