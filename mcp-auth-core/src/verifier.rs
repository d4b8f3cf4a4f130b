//! The token verifier trait.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;

use crate::{AccessToken, VerifyError};

/// The future [`TokenVerifier::verify`] returns (what `#[async_trait]` makes of it).
type VerifyFuture<'f> = Pin<Box<dyn Future<Output = Result<AccessToken, VerifyError>> + Send + 'f>>;

/// Turns a bearer string into a verified [`AccessToken`], or says why not.
///
/// Implementations: `mcp_auth_jwt::JwtVerifier` (signed JWTs against a JWKS) and
/// `mcp_auth_introspect::IntrospectionVerifier` (RFC 7662). Your own is a few lines:
///
/// ```
/// use async_trait::async_trait;
/// use mcp_auth_core::{AccessToken, InvalidToken, TokenVerifier, VerifyError};
///
/// /// Accepts exactly one static token (for a demo; compare in constant time in real code).
/// struct StaticVerifier;
///
/// #[async_trait]
/// impl TokenVerifier for StaticVerifier {
///     async fn verify(&self, token: &str) -> Result<AccessToken, VerifyError> {
///         if mcp_auth_core::token::constant_time_eq(token.as_bytes(), b"let-me-in") {
///             Ok(AccessToken::builder()
///                 .subject("demo")
///                 .audience("http://127.0.0.1:8000/mcp")
///                 .build())
///         } else {
///             Err(InvalidToken::BadSignature.into())
///         }
///     }
/// }
/// ```
///
/// Contract: return [`VerifyError::Unavailable`] (never `Invalid`) when the IdP could not be asked;
/// check expiry (with your leeway: the layer does not check time again), issuer and audience
/// ([`crate::claims::map_claims`] does all of it); never log the token.
#[async_trait]
pub trait TokenVerifier: Send + Sync + 'static {
    /// Verifies `token` (the bearer string, already checked for size and syntax by the layer).
    async fn verify(&self, token: &str) -> Result<AccessToken, VerifyError>;

    /// The result this verifier already holds for exactly these bytes, answered at once without
    /// I/O (its cache of verified tokens); `None` (the default) when it keeps no such cache or
    /// holds nothing for them. The bearer layer asks this first and, on `None`, checks the
    /// token's syntax and calls [`verify`](Self::verify).
    ///
    /// Because the layer asks before its syntax checks, answer only for bytes equal (compared in
    /// constant time) to a token [`verify`](Self::verify) accepted that is also an RFC 6750
    /// `b64token` ([`crate::token::is_b64token`]), and make again every check `verify` makes on
    /// a repeated token (expiry, a key still trusted).
    ///
    /// ```
    /// use std::sync::Mutex;
    ///
    /// use mcp_auth_core::token::{constant_time_eq, is_b64token};
    /// use mcp_auth_core::{AccessToken, TokenVerifier, VerifyError, async_trait};
    ///
    /// /// Remembers the last token it accepted, until that token expires.
    /// struct RememberLast {
    ///     last: Mutex<Option<(String, AccessToken)>>,
    /// }
    ///
    /// # fn check(_: &str) -> Result<AccessToken, VerifyError> {
    /// #     Ok(AccessToken::builder().subject("demo").expires_at_unix(u64::MAX).build())
    /// # }
    /// #[async_trait]
    /// impl TokenVerifier for RememberLast {
    ///     async fn verify(&self, token: &str) -> Result<AccessToken, VerifyError> {
    ///         let access = check(token)?; // signature, issuer, audience, expiry...
    ///         if is_b64token(token.as_bytes()) {
    ///             *self.last.lock().unwrap() = Some((token.to_owned(), access.clone()));
    ///         }
    ///         Ok(access)
    ///     }
    ///
    ///     fn verify_cached(&self, token: &[u8]) -> Option<AccessToken> {
    ///         let last = self.last.lock().unwrap();
    ///         let (seen, access) = last.as_ref()?;
    ///         let now = mcp_auth_core::claims::unix_now();
    ///         let live = access.expires_at_unix().is_some_and(|exp| exp > now);
    ///         (live && constant_time_eq(seen.as_bytes(), token)).then(|| access.clone())
    ///     }
    /// }
    /// ```
    fn verify_cached(&self, token: &[u8]) -> Option<AccessToken> {
        let _ = token;
        None
    }

    /// The audience values this verifier accepts, when it checks audiences itself; `None` (the
    /// default) when it does not say. A provider's `build()` fails when the protected resource
    /// accepts a value (R itself, or an alias) that this list lacks, so the verifier never refuses
    /// what the bearer layer accepts.
    fn accepted_audiences(&self) -> Option<Vec<String>> {
        None
    }

    /// The canonical resource URL (R) this verifier was built for, when it was built for one
    /// (`resource_url(R)` on the JWT and introspection builders). Its
    /// [`accepted_audiences`](Self::accepted_audiences) then all name that one resource (R and
    /// its aliases), and a provider for R takes them as its own list: an alias configured on the
    /// verifier (`MCP_AUTH_JWT_AUDIENCE`) is accepted by the bearer layer too. A verifier built
    /// from a bare audience list may be shared by several resources; each resource then accepts
    /// only R and the aliases given to its own provider, so a token for one is refused at the
    /// other.
    fn resource(&self) -> Option<String> {
        None
    }

    /// Whether the verifier has reached its IdP at least once (readiness probes).
    fn is_ready(&self) -> bool {
        true
    }

    /// Checks actively, now, that the IdP can be reached (a readiness probe: a load balancer
    /// waiting for it must not wait for the first user request). The default answers from
    /// [`is_ready`](Self::is_ready); verifiers that learn about their IdP only from requests
    /// (introspection) send a cheap request of their own, at most about once a second.
    async fn check_ready(&self) -> Result<(), VerifyError> {
        if self.is_ready() {
            Ok(())
        } else {
            Err(VerifyError::Unavailable { retry_after: None })
        }
    }

    /// Its part of a diagnosis ([`crate::diagnose`]): issuer and token checks. `None` (the
    /// default) when it offers none.
    fn diagnostics(&self) -> Option<&dyn crate::diagnose::Diagnose> {
        None
    }
}

#[async_trait]
impl<T: TokenVerifier + ?Sized> TokenVerifier for Arc<T> {
    async fn check_ready(&self) -> Result<(), VerifyError> {
        (**self).check_ready().await
    }

    // The inner verifier's future as it is: wrapping it in an `async` body of its own would box
    // a second future on every request.
    fn verify<'s, 't, 'f>(&'s self, token: &'t str) -> VerifyFuture<'f>
    where
        's: 'f,
        't: 'f,
        Self: 'f,
    {
        (**self).verify(token)
    }

    fn verify_cached(&self, token: &[u8]) -> Option<AccessToken> {
        (**self).verify_cached(token)
    }

    fn accepted_audiences(&self) -> Option<Vec<String>> {
        (**self).accepted_audiences()
    }

    fn resource(&self) -> Option<String> {
        (**self).resource()
    }

    fn is_ready(&self) -> bool {
        (**self).is_ready()
    }

    fn diagnostics(&self) -> Option<&dyn crate::diagnose::Diagnose> {
        (**self).diagnostics()
    }
}

#[async_trait]
impl<T: TokenVerifier + ?Sized> TokenVerifier for Box<T> {
    async fn check_ready(&self) -> Result<(), VerifyError> {
        (**self).check_ready().await
    }

    // The inner verifier's future as it is: wrapping it in an `async` body of its own would box
    // a second future on every request.
    fn verify<'s, 't, 'f>(&'s self, token: &'t str) -> VerifyFuture<'f>
    where
        's: 'f,
        't: 'f,
        Self: 'f,
    {
        (**self).verify(token)
    }

    fn verify_cached(&self, token: &[u8]) -> Option<AccessToken> {
        (**self).verify_cached(token)
    }

    fn accepted_audiences(&self) -> Option<Vec<String>> {
        (**self).accepted_audiences()
    }

    fn resource(&self) -> Option<String> {
        (**self).resource()
    }

    fn is_ready(&self) -> bool {
        (**self).is_ready()
    }

    fn diagnostics(&self) -> Option<&dyn crate::diagnose::Diagnose> {
        (**self).diagnostics()
    }
}

/// Compares two byte strings in time that depends only on their length, not their contents (for
/// secrets and stored tokens): the `constant_time_eq` crate's vectorised comparison.
///
/// ```
/// use mcp_auth_core::token::constant_time_eq;
/// assert!(constant_time_eq(b"same secret", b"same secret"));
/// assert!(!constant_time_eq(b"same secret", b"same secreT"));
/// assert!(!constant_time_eq(b"short", b"longer"));
/// ```
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    ::constant_time_eq::constant_time_eq(a, b)
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn compares_every_byte_including_the_tail() {
        let base: Vec<u8> = (0..=255u8).cycle().take(1037).collect();
        assert!(constant_time_eq(&base, &base.clone()));
        for i in [0, 7, 8, 500, 1031, 1032, 1036] {
            let mut other = base.clone();
            other[i] ^= 0x01;
            assert!(!constant_time_eq(&base, &other), "difference at {i} missed");
        }
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"a", b""));
    }
}
