//! The verified access token handed to handlers, and the helpers for raw tokens: their syntax,
//! their size bound, a log tag that is not the token, and constant-time comparison.

pub use crate::layer::{is_b64token, token_tag};
pub use crate::provider::DEFAULT_MAX_TOKEN_BYTES;
pub use crate::verifier::constant_time_eq;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// A verified access token: who the caller is and what it may do.
///
/// Verifiers build it with [`AccessToken::builder`]; the bearer layer checks its audience against
/// the protected resource, records that resource and puts the token into the request extensions,
/// where handlers read it with the axum extractor (`AccessToken` implements `FromRequestParts`).
///
/// The raw bearer string is deliberately *not* kept: a token minted for this resource must not be
/// forwarded to another service (token passthrough is forbidden by the MCP authorization spec).
/// Cloning is cheap (the claims live behind an `Arc`).
///
/// ```
/// use mcp_auth_core::AccessToken;
///
/// let token = AccessToken::builder()
///     .subject("user-1")
///     .client_id("client-a")
///     .scopes(["todo:read", "todo:write"])
///     .issuer("https://idp.example.com")
///     .audience("https://api.example.com/mcp")
///     .expires_at_unix(4_102_444_800)
///     .build();
/// assert!(token.has_scope("todo:read"));
/// assert_eq!(token.subject(), Some("user-1"));
/// ```
#[derive(Clone, Debug)]
pub struct AccessToken {
    data: Arc<TokenData>,
    resource: Option<Arc<str>>,
}

#[derive(Debug, Default)]
struct TokenData {
    subject: Option<String>,
    client_id: Option<String>,
    scopes: Vec<String>,
    expires_at: Option<u64>,
    issuer: Option<String>,
    audiences: Vec<String>,
    claims: Map<String, Value>,
    principal: Option<Principal>,
    dpop_jkt: Option<String>,
}

impl AccessToken {
    /// Starts building a token (for verifier implementations and tests).
    pub fn builder() -> AccessTokenBuilder {
        AccessTokenBuilder::default()
    }

    /// The `sub` claim: the resource owner (user) or, for machine tokens, often the client.
    pub fn subject(&self) -> Option<&str> {
        self.data.subject.as_deref()
    }

    /// The OAuth client the token was issued to (`client_id`, else `azp`). Never a placeholder.
    pub fn client_id(&self) -> Option<&str> {
        self.data.client_id.as_deref()
    }

    /// The granted scopes, as the IdP wrote them.
    pub fn scopes(&self) -> &[String] {
        &self.data.scopes
    }

    /// Whether `scope` was granted literally (see [`crate::ScopeHierarchy`] for implied scopes).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.data.scopes.iter().any(|s| s == scope)
    }

    /// Expiry (`exp`) as seconds since the Unix epoch.
    pub fn expires_at_unix(&self) -> Option<u64> {
        self.data.expires_at
    }

    /// Expiry (`exp`) as a `SystemTime`. An `exp` beyond what the platform's `SystemTime` can
    /// hold saturates to a time that far in the future instead of panicking (the value comes
    /// from the token issuer).
    ///
    /// ```
    /// use mcp_auth_core::AccessToken;
    /// let token = AccessToken::builder().subject("u").expires_at_unix(u64::MAX).build();
    /// assert!(token.expires_at().unwrap() > std::time::SystemTime::now());
    /// ```
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.data.expires_at.map(|secs| {
            let mut secs = secs;
            loop {
                if let Some(t) = UNIX_EPOCH.checked_add(Duration::from_secs(secs)) {
                    return t;
                }
                secs /= 2;
            }
        })
    }

    /// Whether the token has expired at `now` (no leeway; tokens without `exp` never expire here).
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        match self.data.expires_at {
            Some(exp) => {
                let now = now
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                now >= exp
            }
            None => false,
        }
    }

    /// The issuer (`iss`).
    pub fn issuer(&self) -> Option<&str> {
        self.data.issuer.as_deref()
    }

    /// The audiences (`aud`), one or many.
    pub fn audiences(&self) -> &[String] {
        &self.data.audiences
    }

    /// The canonical resource URL this token was accepted for (set by the bearer layer).
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }

    /// All claims of the token (JWT claims or the introspection response members).
    pub fn claims(&self) -> &Map<String, Value> {
        &self.data.claims
    }

    /// One claim by name.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.data.claims.get(name)
    }

    /// Who holds the token: a user (issuer, `sub`) when `sub` is present, else a machine (issuer,
    /// client id) for client-credentials tokens; `None` when the token names neither, and the
    /// bearer layer refuses such a token (401 `invalid_token`). Sessions, task handles and per-user
    /// data are keyed on it, never on a missing value.
    pub fn principal(&self) -> Option<&Principal> {
        self.data.principal.as_ref()
    }

    /// The base64url SHA-256 thumbprint of the key this token is bound to (`cnf.jkt`, RFC 9449
    /// §6), or `None` for a bearer token. The bearer layer lets a DPoP-bound token through only on
    /// the `DPoP` scheme with a valid proof signed by that key; policies, session binding and
    /// the rmcp extractor see the same value.
    ///
    /// ```
    /// use mcp_auth_core::AccessToken;
    /// let t = AccessToken::builder().subject("u")
    ///     .dpop_thumbprint("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I").build();
    /// assert!(t.is_dpop_bound());
    /// assert!(!AccessToken::builder().subject("u").build().is_dpop_bound());
    /// ```
    pub fn dpop_thumbprint(&self) -> Option<&str> {
        self.data.dpop_jkt.as_deref()
    }

    /// Whether the token is DPoP-bound (see [`dpop_thumbprint`](Self::dpop_thumbprint)).
    pub fn is_dpop_bound(&self) -> bool {
        self.data.dpop_jkt.is_some()
    }

    /// Returns a copy bound to `resource` (what the bearer layer does after its audience check).
    pub fn with_resource(mut self, resource: Arc<str>) -> Self {
        self.resource = Some(resource);
        self
    }
}

/// Who holds a token. A user principal is the issuer and subject (`sub`) plus the client the
/// user signed in with; a machine principal (a client-credentials token without `sub`) is the
/// issuer and client id. Two tokens of the same principal (a refreshed token, say) compare equal;
/// tokens of different users or clients do not, and a user never equals a machine, even when a
/// subject happens to equal a client id.
///
/// ```
/// use mcp_auth_core::{AccessToken, Principal};
/// let user = AccessToken::builder().issuer("https://idp").subject("svc").client_id("svc").build();
/// let machine = AccessToken::builder().issuer("https://idp").client_id("svc").build();
/// assert!(user.principal().unwrap().is_user());
/// assert!(!machine.principal().unwrap().is_user());
/// assert_ne!(user.principal(), machine.principal());
/// assert!(AccessToken::builder().issuer("https://idp").build().principal().is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Principal {
    /// A user: `sub` is present.
    User {
        /// Issuer (`iss`).
        issuer: Option<String>,
        /// Subject (`sub`).
        subject: String,
        /// The client the user signed in with (`client_id` / `azp`).
        client_id: Option<String>,
    },
    /// A machine: no `sub`, identified by its client id (client-credentials grant).
    Machine {
        /// Issuer (`iss`).
        issuer: Option<String>,
        /// Client id (`client_id` / `azp`).
        client_id: String,
    },
}

impl Principal {
    /// Whether this is a user (as opposed to a machine) principal.
    pub fn is_user(&self) -> bool {
        matches!(self, Principal::User { .. })
    }

    /// The issuer.
    pub fn issuer(&self) -> Option<&str> {
        match self {
            Principal::User { issuer, .. } | Principal::Machine { issuer, .. } => issuer.as_deref(),
        }
    }

    /// The owner of per-user data: the user (issuer, subject) whichever client they use, or the
    /// machine (issuer, client id). Users and machines never share an owner.
    pub fn owner(&self) -> Owner {
        match self {
            Principal::User {
                issuer, subject, ..
            } => Owner {
                user: true,
                issuer: issuer.clone(),
                id: subject.clone(),
            },
            Principal::Machine { issuer, client_id } => Owner {
                user: false,
                issuer: issuer.clone(),
                id: client_id.clone(),
            },
        }
    }
}

/// The key of per-user data (see [`Principal::owner`]): kind, issuer and subject or client id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner {
    user: bool,
    issuer: Option<String>,
    id: String,
}

/// Builder for [`AccessToken`].
#[derive(Debug, Default)]
pub struct AccessTokenBuilder {
    data: TokenData,
}

impl AccessTokenBuilder {
    /// Sets the subject.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.data.subject = Some(subject.into());
        self
    }

    /// Sets the client id.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.data.client_id = Some(client_id.into());
        self
    }

    /// Sets the granted scopes.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.data.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the expiry in seconds since the Unix epoch.
    pub fn expires_at_unix(mut self, exp: u64) -> Self {
        self.data.expires_at = Some(exp);
        self
    }

    /// Sets the issuer.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.data.issuer = Some(issuer.into());
        self
    }

    /// Adds one audience.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.data.audiences.push(audience.into());
        self
    }

    /// Sets all audiences.
    pub fn audiences<I, S>(mut self, audiences: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.data.audiences = audiences.into_iter().map(Into::into).collect();
        self
    }

    /// Sets all claims.
    pub fn claims(mut self, claims: Map<String, Value>) -> Self {
        self.data.claims = claims;
        self
    }

    /// Marks the token as DPoP-bound to the key with this base64url SHA-256 thumbprint
    /// (`cnf.jkt`).
    pub fn dpop_thumbprint(mut self, jkt: impl Into<String>) -> Self {
        self.data.dpop_jkt = Some(jkt.into());
        self
    }

    /// Finishes the token; its [`Principal`] follows from the subject, client id and issuer.
    pub fn build(mut self) -> AccessToken {
        let d = &self.data;
        self.data.principal = match (&d.subject, &d.client_id) {
            (Some(subject), client_id) => Some(Principal::User {
                issuer: d.issuer.clone(),
                subject: subject.clone(),
                client_id: client_id.clone(),
            }),
            (None, Some(client_id)) => Some(Principal::Machine {
                issuer: d.issuer.clone(),
                client_id: client_id.clone(),
            }),
            (None, None) => None,
        };
        AccessToken {
            data: Arc::new(self.data),
            resource: None,
        }
    }
}
