//! The JWT verifier's part of a diagnosis (core's `diagnose` module): each issuer's metadata and
//! keys, and every check of a token, expected versus found.

use mcp_auth_core::async_trait;
use mcp_auth_core::diagnose::{
    Check, Diagnose, IssuerReport, check_authorization_server, check_claims, shown,
};
use mcp_auth_core::fetch::HttpClient;
use mcp_auth_core::{InvalidToken, TokenVerifier, VerifyError};

use crate::JwtVerifier;
use crate::claims::{parse_claims, parse_header, split};
use crate::verifier::KeyStores;

#[async_trait]
impl Diagnose for JwtVerifier {
    async fn check_issuers(&self, scopes: &[String]) -> Vec<IssuerReport> {
        let inner = &self.inner;
        let http = inner
            .stores
            .all()
            .first()
            .map_or_else(HttpClient::shared, |s| s.http().clone());
        let mut reports = Vec::new();
        for issuer in inner.rules.accepted_issuers() {
            let (mut checks, _) = check_authorization_server(&http, issuer, scopes).await;
            checks.push(self.check_keys(Some(issuer)).await);
            reports.push(IssuerReport {
                issuer: issuer.clone(),
                checks,
            });
        }
        if reports.is_empty() {
            reports.push(IssuerReport {
                issuer: "(any issuer: issuer check off)".into(),
                checks: vec![self.check_keys(None).await],
            });
        }
        reports
    }

    async fn check_token(&self, token: &str) -> Vec<Check> {
        let inner = &self.inner;
        let mut out = Vec::new();
        let parts = split(token);
        let header = parts.and_then(|(h, _, _)| parse_header(h));
        let claims = parts.and_then(|(_, p, _)| parse_claims(p));
        let (Some(header), Some(claims)) = (header, claims) else {
            out.push(
                Check::fail(
                    "format",
                    "a JWT (header.payload.signature, base64url JSON)",
                    "something else",
                )
                .because(
                    "not a JWT: an opaque token needs introspection (MCP_AUTH_PROVIDER=introspect)",
                ),
            );
            return out;
        };
        out.push(Check::pass("format", "a JWT", "a JWT"));
        let allowed: Vec<String> = inner.algorithms.iter().map(|a| format!("{a:?}")).collect();
        let alg_ok = allowed.contains(&header.alg);
        out.push(if alg_ok {
            Check::pass("alg", &format!("one of {allowed:?}"), &shown(&header.alg))
        } else {
            Check::fail("alg", &format!("one of {allowed:?}"), &shown(&header.alg))
                .because("the IdP signs with an algorithm this server does not allow")
        });
        let typ_found = header.typ.as_deref().map_or("no typ".to_owned(), shown);
        out.push(if inner.typ.accepts(header.typ.as_deref()) {
            Check::pass("typ", inner.typ.expected(), &typ_found)
        } else {
            Check::fail("typ", inner.typ.expected(), &typ_found)
                .because("not an access token type (an ID token or another JWT?)")
        });
        let result = self.verify(token).await;
        let key = |why: &str| Check::fail("key and signature", "a key of the issuer's JWKS", why);
        out.push(match &result {
            Ok(_) => Check::pass(
                "key and signature",
                "signed by a key of the issuer",
                "verified",
            ),
            Err(VerifyError::Invalid(InvalidToken::BadSignature)) => key("bad signature")
                .because("signed by another key: a token of another IdP or tenant, or altered"),
            Err(VerifyError::Invalid(InvalidToken::UnknownKey)) => key(&format!(
                "no key with kid {}",
                header.kid.as_deref().map_or("(none)".into(), shown)
            ))
            .because("the JWKS has no such key: another IdP's token, or keys rotated"),
            Err(VerifyError::Invalid(InvalidToken::Algorithm)) if alg_ok => {
                key("no key for this algorithm")
                    .because("the key named by kid does not fit the token's alg")
            }
            Err(VerifyError::Invalid(
                InvalidToken::Issuer
                | InvalidToken::Algorithm
                | InvalidToken::Type
                | InvalidToken::Malformed
                | InvalidToken::Critical
                | InvalidToken::TooLarge,
            )) => Check::skipped(
                "key and signature",
                "not checked: refused before the signature",
            ),
            Err(VerifyError::Invalid(_)) => Check::pass(
                "key and signature",
                "signed by a key of the issuer",
                "verified",
            ),
            Err(e) => key(&e.to_string()).because(
                "the keys could not be fetched: every token is refused until the JWKS is reachable",
            ),
        });
        out.extend(check_claims(
            &inner.rules,
            &claims,
            mcp_auth_core::claims::unix_now(),
        ));
        out
    }
}

impl JwtVerifier {
    /// The key check of `issuer` (or of the shared store): reachable, with a key for an allowed
    /// algorithm.
    async fn check_keys(&self, issuer: Option<&str>) -> Check {
        let inner = &self.inner;
        let expected = format!(
            "a key for one of {:?}",
            inner
                .algorithms
                .iter()
                .map(|a| format!("{a:?}"))
                .collect::<Vec<_>>()
        );
        let store = match &inner.stores {
            KeyStores::None => {
                let n = inner
                    .static_keys
                    .iter()
                    .filter(|k| inner.algorithms.iter().any(|a| k.fits(*a)))
                    .count();
                return if n > 0 {
                    Check::pass("keys", &expected, &format!("{n} configured key(s)"))
                } else {
                    Check::fail("keys", &expected, "no configured key fits")
                        .because("every token is refused")
                };
            }
            stores => stores
                .for_issuer(issuer)
                .or_else(|| stores.all().into_iter().next()),
        };
        let Some(store) = store else {
            return Check::fail("jwks", &expected, "no key set for this issuer");
        };
        match store.current().await {
            Ok(set) => {
                let usable = set
                    .keys
                    .iter()
                    .filter(|k| inner.algorithms.iter().any(|a| k.fits(*a)))
                    .count();
                let at = store
                    .known_url()
                    .map_or_else(String::new, |u| format!(" at {u}"));
                if usable > 0 {
                    Check::pass(
                        "jwks",
                        &expected,
                        &format!("{usable} usable of {} key(s){at}", set.keys.len()),
                    )
                } else {
                    let url = store
                        .known_url()
                        .map_or_else(|| "the key set".to_owned(), |u| u.to_string());
                    Check::fail(
                        "jwks",
                        &expected,
                        &format!("{url}: {} key(s), none for an allowed algorithm", set.keys.len()),
                    )
                    .because("every token is refused: the IdP signs with another algorithm than the allowlist (MCP_AUTH_JWT_ALGORITHMS)")
                }
            }
            Err(e) => {
                // The store's own account of its last fetch names the cause (a status, a refused
                // connection, a body that is no key set); the verifier's error only says
                // "unavailable".
                let cause = store.last_failure().unwrap_or_else(|| e.to_string());
                let found = store.known_url().map_or_else(
                    || format!("no jwks_uri (discovery: {cause})"),
                    |u| format!("{u}: {cause}"),
                );
                Check::fail("jwks", &expected, &found).because(
                    "no key to verify with: every token is refused with 503 until the JWKS serves a usable key",
                )
            }
        }
    }
}
