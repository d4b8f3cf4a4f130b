//! Several issuers behind one protected resource: a verifier that routes each token to exactly
//! one verifier.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::claims::parse_unique_object;
use crate::diagnose::{Check, Diagnose, IssuerReport, check_authorization_server_shared, shown};
use crate::{AccessToken, BuildError, InvalidToken, Setting, TokenVerifier, VerifyError};

/// Composes verifiers by issuer: JWT verifiers for some IdPs, at most one verifier for opaque
/// tokens (RFC 7662 introspection, say).
///
/// A JWT-shaped token (three base64url segments whose header is a JSON object with `alg`) is
/// routed by its unverified `iss` to the one verifier registered for that issuer and never tried
/// against the others; an `iss` that is not registered is refused (401 `invalid_token`) before any
/// verifier runs, so nothing is ever fetched or discovered from a token. After verification the
/// token's issuer must equal the issuer it was routed to. Any other token goes to the opaque
/// verifier when there is one (an opaque token is never sent to several IdPs), else it is
/// refused as malformed.
///
/// The accepted audiences are the union of the verifiers' lists; each verifier may accept fewer
/// (a per-issuer list narrows the resource's list, never widens it). List every issuer in the
/// protected resource's `authorization_servers` ([`issuers`](Self::issuers) gives them).
///
/// ```
/// # use std::sync::Arc;
/// # use mcp_auth_core::{async_trait, AccessToken, InvalidToken, TokenVerifier, VerifyError};
/// # struct V;
/// # #[async_trait]
/// # impl TokenVerifier for V {
/// #     async fn verify(&self, _: &str) -> Result<AccessToken, VerifyError> {
/// #         Err(InvalidToken::Malformed.into())
/// #     }
/// # }
/// # let (jwt_a, jwt_b, introspection) = (Arc::new(V), Arc::new(V), Arc::new(V));
/// use mcp_auth_core::MultiIssuerVerifier;
///
/// let verifier = MultiIssuerVerifier::builder()
///     .jwt_issuer("https://a.example.com", jwt_a)
///     .jwt_issuer("https://b.example.com", jwt_b)
///     .opaque("https://c.example.com", introspection)
///     .build()?;
/// assert_eq!(verifier.issuers().len(), 3);
/// # Ok::<(), mcp_auth_core::BuildError>(())
/// ```
#[derive(Clone)]
pub struct MultiIssuerVerifier {
    by_issuer: Arc<[(String, Arc<dyn TokenVerifier>)]>,
    opaque: Option<(String, Arc<dyn TokenVerifier>)>,
}

impl std::fmt::Debug for MultiIssuerVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultiIssuerVerifier")
            .field("issuers", &self.issuers())
            .finish_non_exhaustive()
    }
}

/// Builder for [`MultiIssuerVerifier`].
#[derive(Default)]
#[must_use]
pub struct MultiIssuerVerifierBuilder {
    by_issuer: Vec<(String, Arc<dyn TokenVerifier>)>,
    opaque: Vec<(String, Arc<dyn TokenVerifier>)>,
}

impl MultiIssuerVerifierBuilder {
    /// Routes JWTs whose `iss` equals `issuer` (exactly) to `verifier`.
    pub fn jwt_issuer(
        mut self,
        issuer: impl Into<String>,
        verifier: Arc<dyn TokenVerifier>,
    ) -> Self {
        self.by_issuer.push((issuer.into(), verifier));
        self
    }

    /// Sends every token that is not a JWT to `verifier`, which checks tokens of `issuer` (at
    /// most one opaque verifier).
    pub fn opaque(mut self, issuer: impl Into<String>, verifier: Arc<dyn TokenVerifier>) -> Self {
        self.opaque.push((issuer.into(), verifier));
        self
    }

    /// Checks that every issuer is named once and at most one opaque verifier is set.
    pub fn build(self) -> Result<MultiIssuerVerifier, BuildError> {
        const SETTING: Setting = Setting::new("issuers", "issuers");
        if self.opaque.len() > 1 {
            return Err(BuildError::invalid(
                SETTING,
                "at most one verifier for opaque tokens: an opaque token is never sent to several IdPs",
            ));
        }
        if self.by_issuer.is_empty() && self.opaque.is_empty() {
            return Err(BuildError::Missing(SETTING));
        }
        let mut seen: Vec<&str> = Vec::new();
        for (iss, _) in self.by_issuer.iter().chain(&self.opaque) {
            if iss.is_empty() {
                return Err(BuildError::invalid(SETTING, "empty issuer"));
            }
            if seen.contains(&iss.as_str()) {
                return Err(BuildError::invalid(
                    SETTING,
                    format!("issuer {iss:?} is registered twice"),
                ));
            }
            seen.push(iss);
        }
        Ok(MultiIssuerVerifier {
            by_issuer: self.by_issuer.into(),
            opaque: self.opaque.into_iter().next(),
        })
    }
}

/// What the unverified token looks like.
enum Shape {
    /// A JWS with this `iss`.
    Jwt(String),
    /// A JWS without a usable `iss`.
    JwtWithoutIssuer,
    /// Anything else.
    Opaque,
}

fn shape(token: &str) -> Shape {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Shape::Opaque;
    };
    let header = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| parse_unique_object(&b));
    if !header.is_some_and(|h| h.get("alg").is_some_and(Value::is_string)) {
        return Shape::Opaque;
    }
    let iss = URL_SAFE_NO_PAD
        .decode(p)
        .ok()
        .and_then(|b| parse_unique_object(&b))
        .and_then(|mut c| match c.remove("iss") {
            Some(Value::String(s)) => Some(s),
            _ => None,
        });
    match iss {
        Some(iss) => Shape::Jwt(iss),
        None => Shape::JwtWithoutIssuer,
    }
}

impl MultiIssuerVerifier {
    /// Starts a builder.
    pub fn builder() -> MultiIssuerVerifierBuilder {
        MultiIssuerVerifierBuilder::default()
    }

    /// Every issuer, JWT issuers first (for the metadata's `authorization_servers`).
    pub fn issuers(&self) -> Vec<String> {
        self.by_issuer
            .iter()
            .chain(&self.opaque)
            .map(|(i, _)| i.clone())
            .collect()
    }
}

#[async_trait]
impl TokenVerifier for MultiIssuerVerifier {
    async fn verify(&self, token: &str) -> Result<AccessToken, VerifyError> {
        let (issuer, verifier) = match shape(token) {
            Shape::Jwt(iss) => match self.by_issuer.iter().find(|(i, _)| *i == iss) {
                Some((i, v)) => (i, v),
                None => {
                    tracing::debug!(reason = "issuer", found = %iss.escape_debug(),
                        expected = ?self.issuers(), "JWT from an issuer that is not configured");
                    return Err(InvalidToken::Issuer.into());
                }
            },
            Shape::JwtWithoutIssuer => return Err(InvalidToken::Issuer.into()),
            Shape::Opaque => match &self.opaque {
                Some((i, v)) => (i, v),
                None => return Err(InvalidToken::Malformed.into()),
            },
        };
        let verified = verifier.verify(token).await?;
        if verified.issuer().is_some_and(|i| i != issuer) {
            tracing::warn!(
                reason = "issuer",
                "a verifier accepted a token of another issuer than the one it was routed to"
            );
            return Err(InvalidToken::Issuer.into());
        }
        Ok(verified)
    }

    fn accepted_audiences(&self) -> Option<Vec<String>> {
        let mut all = Vec::new();
        for (_, v) in self.by_issuer.iter().chain(&self.opaque) {
            for a in v.accepted_audiences()? {
                if !all.contains(&a) {
                    all.push(a);
                }
            }
        }
        Some(all)
    }

    fn resource(&self) -> Option<String> {
        // The resource all the verifiers were built for, when they agree on one.
        let mut all = self
            .by_issuer
            .iter()
            .chain(&self.opaque)
            .map(|(_, v)| v.resource());
        let first = all.next()??;
        all.all(|r| r.as_deref() == Some(first.as_str()))
            .then_some(first)
    }

    fn is_ready(&self) -> bool {
        self.by_issuer
            .iter()
            .chain(&self.opaque)
            .all(|(_, v)| v.is_ready())
    }

    async fn check_ready(&self) -> Result<(), VerifyError> {
        for (_, v) in self.by_issuer.iter().chain(&self.opaque) {
            v.check_ready().await?;
        }
        Ok(())
    }

    fn diagnostics(&self) -> Option<&dyn Diagnose> {
        Some(self)
    }
}

/// Each issuer's own verifier reports on it; a token is checked by the verifier it is routed to.
#[async_trait]
impl Diagnose for MultiIssuerVerifier {
    async fn check_issuers(&self, scopes: &[String]) -> Vec<IssuerReport> {
        let mut reports = Vec::new();
        for (issuer, v) in self.by_issuer.iter().chain(&self.opaque) {
            let checks = match v.diagnostics() {
                Some(d) => d
                    .check_issuers(scopes)
                    .await
                    .into_iter()
                    .filter(|r| r.issuer == *issuer)
                    .flat_map(|r| r.checks)
                    .collect(),
                None => Vec::new(),
            };
            let checks = if checks.is_empty() {
                check_authorization_server_shared(issuer, scopes).await
            } else {
                checks
            };
            reports.push(IssuerReport {
                issuer: issuer.clone(),
                checks,
            });
        }
        reports
    }

    async fn check_token(&self, token: &str) -> Vec<Check> {
        let issuers = self.issuers();
        let routed = match shape(token) {
            Shape::Jwt(iss) => match self.by_issuer.iter().find(|(i, _)| *i == iss) {
                Some((i, v)) => Check::pass("routing", "a configured issuer", &shown(i))
                    .because("checked by that issuer's verifier")
                    .with(v),
                None => {
                    return vec![
                        Check::fail("iss", &format!("one of {issuers:?}"), &shown(&iss))
                            .because("no verifier is configured for this issuer"),
                    ];
                }
            },
            Shape::JwtWithoutIssuer => {
                return vec![
                    Check::fail("iss", &format!("one of {issuers:?}"), "no iss")
                        .because("a JWT must name its issuer to be routed"),
                ];
            }
            Shape::Opaque => match &self.opaque {
                Some((i, v)) => Check::pass(
                    "routing",
                    "an opaque token",
                    &format!("opaque, sent to {}", shown(i)),
                )
                .with(v),
                None => {
                    return vec![
                        Check::fail("format", "a JWT", "an opaque token")
                            .because("no verifier for opaque tokens is configured"),
                    ];
                }
            },
        };
        let (line, verifier) = routed;
        let mut out = vec![line];
        if let Some(d) = verifier.diagnostics() {
            out.extend(d.check_token(token).await);
        }
        out
    }
}

trait WithVerifier {
    fn with(self, v: &Arc<dyn TokenVerifier>) -> (Check, Arc<dyn TokenVerifier>);
}

impl WithVerifier for Check {
    fn with(self, v: &Arc<dyn TokenVerifier>) -> (Check, Arc<dyn TokenVerifier>) {
        (self, Arc::clone(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting {
        iss: &'static str,
        calls: AtomicUsize,
        audiences: Vec<String>,
    }

    #[async_trait]
    impl TokenVerifier for Counting {
        async fn verify(&self, _: &str) -> Result<AccessToken, VerifyError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(AccessToken::builder().issuer(self.iss).subject("u").build())
        }
        fn accepted_audiences(&self) -> Option<Vec<String>> {
            Some(self.audiences.clone())
        }
    }

    fn counting(iss: &'static str, aud: &str) -> Arc<Counting> {
        Arc::new(Counting {
            iss,
            calls: AtomicUsize::new(0),
            audiences: vec![aud.to_owned()],
        })
    }

    fn jwt(claims: serde_json::Value) -> String {
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#);
        let p = URL_SAFE_NO_PAD.encode(claims.to_string());
        format!("{h}.{p}.c2ln")
    }

    /// The doctor's routing lines: the verifier a token goes to, or why none.
    #[tokio::test]
    async fn diagnosis_routes_like_verification() {
        let v = MultiIssuerVerifier::builder()
            .jwt_issuer("https://a", counting("https://a", "R"))
            .build()
            .unwrap();
        let d = v.diagnostics().unwrap();
        let lines = d
            .check_token(&jwt(serde_json::json!({"iss": "https://a"})))
            .await;
        assert_eq!(
            lines[0].to_string(),
            "[ok]   routing: expected a configured issuer, found \"https://a\": checked by that issuer's verifier"
        );
        let lines = d
            .check_token(&jwt(serde_json::json!({"iss": "https://evil"})))
            .await;
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].name, "iss");
        assert_eq!(lines[0].status, crate::diagnose::Status::Fail);
        assert!(lines[0].to_string().contains("\"https://evil\""));
        let lines = d.check_token("opaque").await;
        assert_eq!(
            lines[0].to_string(),
            "[FAIL] format: expected a JWT, found an opaque token: no verifier for opaque tokens is configured"
        );
    }

    #[tokio::test]
    async fn routes_by_issuer_to_exactly_one_verifier() {
        let (a, b, o) = (
            counting("https://a", "R"),
            counting("https://b", "R2"),
            counting("https://o", "R"),
        );
        let v = MultiIssuerVerifier::builder()
            .jwt_issuer("https://a", a.clone())
            .jwt_issuer("https://b", b.clone())
            .opaque("https://o", o.clone())
            .build()
            .unwrap();
        v.verify(&jwt(serde_json::json!({"iss": "https://b"})))
            .await
            .unwrap();
        assert_eq!(
            (
                a.calls.load(Ordering::SeqCst),
                b.calls.load(Ordering::SeqCst)
            ),
            (0, 1)
        );
        let err = v
            .verify(&jwt(serde_json::json!({"iss": "https://evil"})))
            .await
            .unwrap_err();
        assert!(matches!(err, VerifyError::Invalid(InvalidToken::Issuer)));
        let err = v
            .verify(&jwt(serde_json::json!({"sub": "x"})))
            .await
            .unwrap_err();
        assert!(matches!(err, VerifyError::Invalid(InvalidToken::Issuer)));
        v.verify("opaque-token-value").await.unwrap();
        assert_eq!(o.calls.load(Ordering::SeqCst), 1);
        assert_eq!(a.calls.load(Ordering::SeqCst), 0);
        assert_eq!(
            v.accepted_audiences().unwrap(),
            vec!["R".to_owned(), "R2".to_owned()]
        );
    }

    #[tokio::test]
    async fn a_verifier_answering_for_another_issuer_is_refused() {
        let wrong = counting("https://b", "R");
        let v = MultiIssuerVerifier::builder()
            .jwt_issuer("https://a", wrong)
            .build()
            .unwrap();
        let err = v
            .verify(&jwt(serde_json::json!({"iss": "https://a"})))
            .await
            .unwrap_err();
        assert!(matches!(err, VerifyError::Invalid(InvalidToken::Issuer)));
        let err = v.verify("opaque").await.unwrap_err();
        assert!(matches!(err, VerifyError::Invalid(InvalidToken::Malformed)));
    }

    #[test]
    fn build_rules() {
        let a = counting("https://a", "R");
        assert!(
            MultiIssuerVerifier::builder()
                .opaque("https://a", a.clone())
                .opaque("https://b", a.clone())
                .build()
                .is_err()
        );
        assert!(
            MultiIssuerVerifier::builder()
                .jwt_issuer("https://a", a.clone())
                .jwt_issuer("https://a", a)
                .build()
                .is_err()
        );
        assert!(MultiIssuerVerifier::builder().build().is_err());
    }
}
