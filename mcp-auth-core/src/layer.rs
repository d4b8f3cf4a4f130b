//! The bearer-auth tower layer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::Body;
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri, header};
use tower_layer::Layer;
use tower_service::Service;

use crate::challenge::{self, BearerChallenge, ChallengeError, Scheme};
use crate::dpop::{Dpop, DpopMode, ProofError};
use crate::error::InvalidToken;
use crate::provider::ProtectedResource;
use crate::{AccessToken, TokenVerifier, VerifyError};

/// Retry hint when the IdP gave none.
const DEFAULT_RETRY_AFTER_SECS: u64 = 5;

/// Authenticates every request with a bearer token, answering exactly as the wire contract says:
/// 401 without `error` when no usable credentials were sent, 401 `invalid_token`, 403
/// `insufficient_scope` for missing required scopes, 400 `invalid_request` for credentials sent
/// twice, 503 with `Retry-After` when the IdP is unavailable. On success the [`AccessToken`]
/// (bound to the resource) is in the request extensions, and the `Authorization` header is gone:
/// nothing behind the layer can forward the MCP token (token passthrough is forbidden by the MCP
/// authorization spec). To call other APIs as the user, give the layer a token exchanger
/// (feature `exchange`, `with_token_exchange`).
///
/// Works on any axum `Router` or tower service. A CORS preflight (`OPTIONS` with
/// `Access-Control-Request-Method`, which browsers send without credentials) is answered by the
/// layer itself with an empty `204 No Content` and no CORS headers of its own: nothing behind
/// the layer runs without a token, not even an `.options()` or `any()` route. Put the CORS layer
/// (for instance [`crate::metadata::mcp_cors`]) *outermost*, where it answers preflights first
/// with the headers browsers need. Get one from
/// [`crate::AuthProvider::layer`], or build it from a verifier and a [`ProtectedResource`].
///
/// ```
/// # use std::sync::Arc;
/// # use async_trait::async_trait;
/// # use mcp_auth_core::{AccessToken, InvalidToken, VerifyError};
/// # struct MyVerifier;
/// # #[async_trait]
/// # impl mcp_auth_core::TokenVerifier for MyVerifier {
/// #     async fn verify(&self, _: &str) -> Result<AccessToken, VerifyError> {
/// #         Err(InvalidToken::Malformed.into())
/// #     }
/// # }
/// use axum::{routing::post, Router};
/// use mcp_auth_core::{AuthProvider, RemoteAuthProvider};
///
/// let provider = RemoteAuthProvider::builder(Arc::new(MyVerifier))
///     .resource_url("http://127.0.0.1:8000/mcp")
///     .authorization_server("https://idp.example.com")
///     .build()
///     .unwrap();
/// let layer = provider.layer();
/// let mcp = tower::ServiceBuilder::new()
///     .layer(layer)
///     .service(post(|token: AccessToken| async move {
///         format!("hello {}", token.subject().unwrap_or("anonymous"))
///     }));
/// let app: Router = Router::new()
///     .route_service("/mcp", mcp)
///     .merge(provider.routes());
/// ```
///
/// Each request is counted in `mcp_auth_requests_total{outcome,reason}` and timed in
/// `mcp_auth_verify_duration_seconds` through the `metrics` facade (see [`crate::telemetry`]).
#[derive(Clone)]
pub struct BearerAuthLayer {
    shared: Arc<Shared>,
    #[cfg(feature = "exchange")]
    exchange: Option<crate::exchange::TokenExchanger>,
}

struct Shared {
    verifier: Arc<dyn TokenVerifier>,
    resource: ProtectedResource,
    resource_arc: Arc<str>,
    metadata_url: String,
    challenge_scope: String,
    required_scope_header: String,
    no_credentials: HeaderValue,
    /// Whether a request was let through yet (to word the first audience rejection).
    accepted_any: AtomicBool,
    audience_warned: AtomicBool,
    dpop: Arc<Dpop>,
    /// Whether request spans carry the subject and scopes (personal data: off by default).
    identity_in_spans: AtomicBool,
}

/// The `DPoP-Nonce` response header (RFC 9449 §8).
const DPOP_NONCE: &str = "dpop-nonce";

impl BearerAuthLayer {
    /// A layer checking tokens with `verifier` for `resource`.
    pub fn new(verifier: Arc<dyn TokenVerifier>, resource: ProtectedResource) -> Self {
        let metadata_url = resource.resource().metadata_url();
        let challenge_scope = resource.challenge_scope();
        let dpop = resource.dpop.clone();
        // In `required` mode every challenge is on the DPoP scheme; otherwise requests without
        // credentials keep the Bearer challenge of the wire contract, byte for byte.
        let scheme = match dpop.mode() {
            DpopMode::Required => Scheme::Dpop {
                algs: dpop.algs_header(),
            },
            _ => Scheme::Bearer,
        };
        let no_credentials = BearerChallenge::new(&metadata_url)
            .scope(&challenge_scope)
            .scheme(scheme)
            .header_value();
        BearerAuthLayer {
            shared: Arc::new(Shared {
                verifier,
                resource_arc: Arc::from(resource.resource().as_str()),
                required_scope_header: resource.challenge_scopes(resource.required_scopes()),
                resource,
                metadata_url,
                challenge_scope,
                no_credentials,
                accepted_any: AtomicBool::new(false),
                audience_warned: AtomicBool::new(false),
                dpop,
                identity_in_spans: AtomicBool::new(false),
            }),
            #[cfg(feature = "exchange")]
            exchange: None,
        }
    }

    /// Lets tools behind this layer call other APIs as the user (feature `exchange`): each
    /// request the layer lets through carries a [`crate::exchange::SubjectToken`] holding the
    /// raw token for `exchanger` only.
    #[cfg(feature = "exchange")]
    pub fn with_token_exchange(mut self, exchanger: crate::exchange::TokenExchanger) -> Self {
        self.exchange = Some(exchanger);
        self
    }

    /// Records the caller's subject (`enduser.id`) and scopes (`enduser.scope`) on each request's
    /// span (OpenTelemetry attribute names). Off by default: they are personal data. The span
    /// (`mcp_auth.request`) always carries `outcome` and the token's `client_id`, never the token.
    pub fn identity_in_spans(self, on: bool) -> Self {
        self.shared.identity_in_spans.store(on, Ordering::Relaxed);
        self
    }

    /// Whether the verifier has reached its IdP (for readiness probes).
    pub fn is_ready(&self) -> bool {
        self.shared.verifier.is_ready()
    }

    /// The protected resource this layer guards.
    pub fn protected_resource(&self) -> &ProtectedResource {
        &self.shared.resource
    }
}

impl<S> Layer<S> for BearerAuthLayer {
    type Service = BearerAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth {
            inner,
            shared: self.shared.clone(),
            #[cfg(feature = "exchange")]
            exchange: self.exchange.clone(),
        }
    }
}

/// The service produced by [`BearerAuthLayer`].
#[derive(Clone)]
pub struct BearerAuth<S> {
    inner: S,
    shared: Arc<Shared>,
    #[cfg(feature = "exchange")]
    exchange: Option<crate::exchange::TokenExchanger>,
}

/// Counts the request's outcome (metrics facade) and records it on the request's span.
fn outcome(outcome: &'static str, reason: &'static str) {
    outcome_on(&tracing::Span::current(), outcome, reason);
}

/// [`outcome`] on a span the caller holds: no lookup of the current span (a thread-local walk
/// and a reference count on the subscriber's side), which the path of every accepted request
/// avoids.
fn outcome_on(span: &tracing::Span, outcome: &'static str, reason: &'static str) {
    crate::telemetry::request(outcome, reason);
    span.record("outcome", outcome);
    if reason != "none" {
        span.record("reason", reason);
    }
}

/// Records the caller on the request's span: the client id always, the subject and scopes only
/// when switched on.
fn record_caller(span: &tracing::Span, token: &AccessToken, identity: bool) {
    if let Some(c) = token.client_id() {
        span.record("client_id", c);
    }
    if identity {
        if let Some(s) = token.subject() {
            span.record("enduser.id", s);
        }
        span.record("enduser.scope", token.scopes().join(" ").as_str());
    }
}

/// What the request's headers say about credentials.
enum Credentials<'a> {
    /// A token within the size limit (its syntax not yet checked), and whether it came on the
    /// DPoP scheme.
    Token(&'a [u8], bool),
    Reject(Response<Body>),
}

/// What the verifier's cache said about a token: its result, or the token as text (syntax
/// checked) to verify.
enum Lookup<'a> {
    /// The result, and how long the lookup took.
    Hit(AccessToken, std::time::Duration),
    Miss(&'a str),
}

/// The token as text, when it is an RFC 6750 `b64token`.
fn b64token_text(token: &[u8]) -> Option<&str> {
    if !is_b64token(token) {
        return None;
    }
    std::str::from_utf8(token).ok()
}

/// Whether `b` may appear before the `=` padding of an RFC 6750 `b64token`. Written as
/// comparisons, not a table, so the loop over a token compiles to vector compares: two range
/// checks and three equalities per byte.
#[inline(always)]
fn b64token_byte(b: u8) -> bool {
    // `+ , - . /` and the digits are the run 0x2B..=0x39, of which `,` is not in the set.
    let plus_to_nine = (b.wrapping_sub(b'+') <= b'9' - b'+') & (b != b',');
    // `b | 0x20` folds upper case onto lower case and maps no other byte into `a..=z`.
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    plus_to_nine | letter | (b == b'_') | (b == b'~')
}

/// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub fn is_b64token(token: &[u8]) -> bool {
    let body_end = token
        .iter()
        .rposition(|b| *b != b'=')
        .map(|i| i + 1)
        .unwrap_or(0);
    // No early exit: every byte is looked at (the bound on token size keeps this short), which
    // lets the compiler check 16 or 32 bytes per instruction.
    let bad = token[..body_end]
        .iter()
        .fold(0u8, |bad, &b| bad | u8::from(!b64token_byte(b)));
    body_end > 0 && bad == 0
}

fn query_has_token(uri: &Uri) -> bool {
    uri.query().is_some_and(|q| {
        url::form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "access_token")
    })
}

/// A short, non-reversible tag of a token for logs (first 8 hex digits of its BLAKE3 hash).
pub fn token_tag(token: &str) -> String {
    tag(token.as_bytes())
}

fn tag(token: &[u8]) -> String {
    blake3::hash(token).to_hex()[..8].to_owned()
}

impl Shared {
    fn no_credentials(&self) -> Response<Body> {
        outcome("no_credentials", "none");
        challenge::unauthorized(self.no_credentials.clone())
    }

    /// The challenge scheme of a request: DPoP for a DPoP request, and for every request in
    /// `required` mode; Bearer otherwise.
    fn scheme(&self, dpop: bool) -> Scheme<'_> {
        if dpop || self.dpop.mode() == DpopMode::Required {
            Scheme::Dpop {
                algs: self.dpop.algs_header(),
            }
        } else {
            Scheme::Bearer
        }
    }

    fn invalid(&self, reason: InvalidToken, dpop: bool) -> Response<Body> {
        outcome("invalid_token", reason.code());
        let resp = challenge::invalid_token_on(
            self.scheme(dpop),
            reason,
            &self.challenge_scope,
            &self.metadata_url,
        );
        self.with_nonce(resp, dpop)
    }

    fn invalid_request(&self, description: &str, dpop: bool) -> Response<Body> {
        outcome("invalid_request", "none");
        challenge::error_response_on(
            self.scheme(dpop),
            ChallengeError::InvalidRequest,
            description,
            "",
            &self.metadata_url,
        )
    }

    /// 401 for a refused DPoP proof: `use_dpop_nonce` for a missing or old nonce, else
    /// `invalid_dpop_proof`.
    fn bad_proof(&self, reason: ProofError) -> Response<Body> {
        outcome("invalid_dpop_proof", reason.code());
        let error = if reason == ProofError::Nonce {
            ChallengeError::UseDpopNonce
        } else {
            ChallengeError::InvalidDpopProof
        };
        let resp = challenge::error_response_on(
            self.scheme(true),
            error,
            reason.description(),
            &self.challenge_scope,
            &self.metadata_url,
        );
        self.with_nonce(resp, true)
    }

    /// The replay store cannot take the proof: `use_dpop_nonce` (a fresh proof with the new
    /// nonce may pass) when nonces are on, else 503. Never let through.
    fn replay_unavailable(&self) -> Response<Body> {
        tracing::warn!(
            reason = "dpop_replay_unavailable",
            "DPoP replay cache full or unreachable: proof refused"
        );
        if self.dpop.nonces_enabled() {
            return self.bad_proof(ProofError::Nonce);
        }
        outcome("unavailable", "dpop_replay");
        challenge::unavailable(DEFAULT_RETRY_AFTER_SECS)
    }

    /// Adds the current `DPoP-Nonce` to answers to DPoP requests when nonces are on.
    fn with_nonce(&self, mut resp: Response<Body>, dpop: bool) -> Response<Body> {
        if dpop && let Some(n) = self.nonce_header() {
            resp.headers_mut().insert(DPOP_NONCE, n);
        }
        resp
    }

    fn nonce_header(&self) -> Option<HeaderValue> {
        self.dpop
            .current_nonce(crate::claims::unix_now())
            .and_then(|n| HeaderValue::from_str(&n).ok())
    }

    fn credentials<'a>(&self, headers: &'a HeaderMap, uri: &Uri) -> Credentials<'a> {
        let mut all = headers.get_all(header::AUTHORIZATION).iter();
        let first = all.next();
        if all.next().is_some() {
            tracing::debug!(reason = "two_authorization_headers", "request rejected");
            return Credentials::Reject(self.invalid_request(
                "The request carries more than one Authorization header",
                false,
            ));
        }
        let Some(value) = first else {
            if query_has_token(uri) {
                tracing::debug!(
                    reason = "query_token",
                    "token in the query string ignored (only the header is accepted)"
                );
            }
            return Credentials::Reject(self.no_credentials());
        };
        let bytes = value.as_bytes();
        let (scheme, rest) = match bytes.iter().position(|b| *b == b' ') {
            Some(i) => (&bytes[..i], &bytes[i + 1..]),
            None => (bytes, &[][..]),
        };
        let mode = self.dpop.mode();
        let dpop = if scheme.eq_ignore_ascii_case(b"bearer") && mode != DpopMode::Required {
            false
        } else if scheme.eq_ignore_ascii_case(b"dpop") && mode != DpopMode::Off {
            true
        } else {
            tracing::debug!(reason = "other_scheme", "request rejected");
            return Credentials::Reject(self.no_credentials());
        };
        if query_has_token(uri) {
            tracing::debug!(reason = "token_sent_twice", "request rejected");
            return Credentials::Reject(
                self.invalid_request("The access token was sent in more than one way", dpop),
            );
        }
        let token = rest.trim_ascii();
        if token.len() > self.resource.max_token_bytes() {
            tracing::debug!(reason = "too_large", len = token.len(), "request rejected");
            return Credentials::Reject(self.invalid(InvalidToken::TooLarge, dpop));
        }
        Credentials::Token(token, dpop)
    }

    /// Authenticates `req`: the token (and whether it came with a DPoP proof) on success, the
    /// response to send otherwise. `path` is the request path as the client sent it (before any
    /// router nesting stripped a prefix), for the proof's `htu`.
    async fn authenticate(
        &self,
        span: &tracing::Span,
        headers: &HeaderMap,
        method: &Method,
        path: &str,
        uri: &Uri,
    ) -> Result<(AccessToken, bool), Response<Body>> {
        let (token, dpop) = match self.credentials(headers, uri) {
            Credentials::Token(t, dpop) => (t, dpop),
            Credentials::Reject(resp) => return Err(resp),
        };
        // A token the verifier already holds a result for is bytes-equal to one that passed
        // `b64token_text` and verification before (the `verify_cached` contract): a repeated token
        // skips both walks over its bytes and the verifier's future.
        let started = std::time::Instant::now();
        let lookup = match self.verifier.verify_cached(token) {
            Some(hit) => Lookup::Hit(hit, started.elapsed()),
            None => match b64token_text(token) {
                Some(text) => Lookup::Miss(text),
                None => {
                    tracing::debug!(reason = "malformed_header", "request rejected");
                    return Err(self.invalid(InvalidToken::Malformed, dpop));
                }
            },
        };
        // The proof's own rules first: a bad proof costs no IdP call and no token verification.
        // The clock is read for DPoP proofs only (a bearer request needs no time here: the
        // verifier decides expiry).
        let now = if dpop { crate::claims::unix_now() } else { 0 };
        let proof = if dpop {
            match self.dpop.check_proof(headers, method, path, now) {
                Ok(p) => Some(p),
                Err(reason) => {
                    tracing::debug!(reason = reason.code(), token = %tag(token), "DPoP proof rejected");
                    return Err(self.bad_proof(reason));
                }
            }
        } else {
            None
        };
        let (result, took) = match lookup {
            Lookup::Hit(hit, took) => (Ok(hit), took),
            Lookup::Miss(text) => {
                let started = std::time::Instant::now();
                let result = self.verifier.verify(text).await;
                (result, started.elapsed())
            }
        };
        crate::telemetry::verify_duration(
            match &result {
                Ok(_) => "ok",
                Err(VerifyError::Invalid(_)) => "invalid",
                Err(VerifyError::Unavailable { .. }) => "unavailable",
                Err(VerifyError::Internal(_)) => "internal",
            },
            took.as_secs_f64(),
        );
        let verified = match result {
            Ok(v) => v,
            Err(VerifyError::Invalid(reason)) => {
                if tracing::enabled!(tracing::Level::DEBUG) {
                    tracing::debug!(reason = reason.code(), token = %tag(token), "token rejected");
                }
                return Err(self.invalid(reason, dpop));
            }
            Err(VerifyError::Unavailable { retry_after }) => {
                outcome("unavailable", "none");
                tracing::warn!("identity provider unavailable: answering 503");
                // A custom verifier's hint is capped like an IdP's (`challenge::MAX_RETRY_AFTER`).
                let secs = retry_after
                    .map(|d| {
                        d.as_secs()
                            .clamp(1, crate::challenge::MAX_RETRY_AFTER.as_secs())
                    })
                    .unwrap_or(DEFAULT_RETRY_AFTER_SECS);
                return Err(challenge::unavailable(secs));
            }
            Err(VerifyError::Internal(message)) => {
                outcome("internal", "none");
                tracing::error!(error = %message, "token verification failed on our side");
                return Err(challenge::server_error());
            }
        };
        // A key-bound token is only good with a proof of that key (RFC 9449 §7.2), and a DPoP
        // request must carry a key-bound token (there is no key to compare the proof with).
        match (dpop, verified.is_dpop_bound()) {
            (false, true) => {
                let reason = if self.dpop.mode() == DpopMode::Off {
                    InvalidToken::SenderConstrained
                } else {
                    InvalidToken::DpopBound
                };
                tracing::debug!(reason = reason.code(), token = %tag(token), "token rejected");
                return Err(self.invalid(reason, false));
            }
            (true, false) => {
                tracing::debug!(reason = "not_dpop_bound", token = %tag(token), "token rejected");
                return Err(self.invalid(InvalidToken::NotDpopBound, true));
            }
            _ => {}
        }
        // Time was decided by the verifier, with its leeway: no second check here that could
        // disagree with it. Identity was too, but a custom verifier may hand over a token that
        // names no one, and nothing downstream may key sessions or data on a missing value.
        if verified.principal().is_none() {
            tracing::debug!(reason = "missing_claim", token = %tag(token),
                "token names neither a subject nor a client");
            return Err(self.invalid(InvalidToken::MissingClaim, dpop));
        }
        // A token without `aud` passes only when this resource lets its client stand in for the
        // audience (Cognito); the verifier's own allowlist may be shared by other resources.
        let client_stands_in = verified.audiences().is_empty()
            && verified
                .client_id()
                .is_some_and(|c| self.resource.audience_free_clients().iter().any(|a| a == c));
        if self.resource.checks_audience() && !client_stands_in {
            let accepted = self.resource.audiences();
            if !verified.audiences().iter().any(|a| accepted.contains(a)) {
                if !self.audience_warned.swap(true, Ordering::Relaxed)
                    && !self.accepted_any.load(Ordering::Relaxed)
                {
                    tracing::warn!(
                        expected = ?accepted,
                        found = ?verified.audiences(),
                        "token audience does not name this resource; if every token fails \
                         this way, check MCP_AUTH_RESOURCE_URL and the IdP's resource setting"
                    );
                } else {
                    tracing::debug!(reason = "audience", expected = ?accepted,
                        found = ?verified.audiences(), "token rejected");
                }
                return Err(self.invalid(InvalidToken::Audience, dpop));
            }
        }
        if let (Some(proof), Some(jkt)) = (&proof, verified.dpop_thumbprint()) {
            // Bytes-equal to a verified token, so text; refused if it ever were not.
            let Ok(text) = std::str::from_utf8(token) else {
                return Err(self.invalid(InvalidToken::Malformed, dpop));
            };
            match self.dpop.bind(proof, text, jkt, now).await {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => {
                    tracing::debug!(reason = reason.code(), token = %tag(token), "DPoP proof rejected");
                    return Err(self.bad_proof(reason));
                }
                Err(_) => return Err(self.replay_unavailable()),
            }
        }
        let required = self.resource.required_scopes();
        if !required.is_empty()
            && !self
                .resource
                .hierarchy()
                .satisfies_all(verified.scopes(), required)
        {
            outcome_on(span, "insufficient_scope", "none");
            record_caller(
                span,
                &verified,
                self.identity_in_spans.load(Ordering::Relaxed),
            );
            tracing::debug!(reason = "insufficient_scope", required = %self.required_scope_header,
                granted = ?verified.scopes(), "request refused");
            let resp = challenge::insufficient_scope_on(
                self.scheme(dpop),
                challenge::INSUFFICIENT_SCOPE_DESCRIPTION,
                &self.required_scope_header,
                &self.metadata_url,
            );
            return Err(self.with_nonce(resp, dpop));
        }
        if !self.accepted_any.load(Ordering::Relaxed) {
            self.accepted_any.store(true, Ordering::Relaxed);
        }
        outcome_on(span, "accepted", "none");
        record_caller(
            span,
            &verified,
            self.identity_in_spans.load(Ordering::Relaxed),
        );
        Ok((verified.with_resource(self.resource_arc.clone()), dpop))
    }
}

/// The credential of an `Authorization` value the layer accepted (after the scheme).
#[cfg(feature = "exchange")]
fn credential_of(value: &HeaderValue) -> Option<&str> {
    let text = value.to_str().ok()?;
    let (_, rest) = text.split_once(' ')?;
    Some(rest.trim_ascii()).filter(|t| !t.is_empty())
}

/// The layer's own answer to a CORS preflight: `204 No Content`, empty, no CORS headers.
pub(crate) fn preflight_response() -> Response<Body> {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = http::StatusCode::NO_CONTENT;
    resp
}

pub(crate) fn is_preflight<B>(req: &Request<B>) -> bool {
    req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

impl<S, B, ResBody> Service<Request<B>> for BearerAuth<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        #[cfg(feature = "exchange")]
        let exchange = self.exchange.clone();
        let span = tracing::info_span!(
            "mcp_auth.request",
            outcome = tracing::field::Empty,
            reason = tracing::field::Empty,
            client_id = tracing::field::Empty,
            enduser.id = tracing::field::Empty,
            enduser.scope = tracing::field::Empty,
        );
        // The request's own span, for the outcome and the caller (a disabled span costs nothing
        // to clone or record on).
        let record = span.clone();
        Box::pin(tracing::Instrument::instrument(
            async move {
                if is_preflight(&req) {
                    // Never call the inner service without a token (fail closed): a CORS layer
                    // outside this one has already answered a real preflight.
                    return Ok(preflight_response());
                }
                let path = req
                    .extensions()
                    .get::<axum::extract::OriginalUri>()
                    .map_or_else(|| req.uri().path(), |o| o.0.path());
                let dpop = match shared
                    .authenticate(&record, req.headers(), req.method(), path, req.uri())
                    .await
                {
                    Ok((token, dpop)) => {
                        // The verified token goes on; the raw one does not: handlers behind the
                        // layer cannot forward it (MCP forbids token passthrough). With an
                        // exchanger, it is kept where only the exchanger can read it.
                        let _raw = req.headers_mut().remove(header::AUTHORIZATION);
                        #[cfg(feature = "exchange")]
                        if let (Some(exchanger), Some(raw)) = (exchange, _raw)
                            && let Some(t) = credential_of(&raw)
                        {
                            let subject =
                                crate::exchange::SubjectToken::new(t, token.clone(), exchanger);
                            req.extensions_mut().insert(subject);
                        }
                        req.extensions_mut().insert(token);
                        dpop
                    }
                    Err(resp) => return Ok(resp),
                };
                let resp = inner.call(req).await?.map(Body::new);
                Ok(shared.with_nonce(resp, dpop))
            },
            span,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b64token_grammar() {
        for ok in ["abc", "a.b.c", "A-_~+/9", "abc==", "x="] {
            assert!(is_b64token(ok.as_bytes()), "{ok}");
        }
        for bad in ["", "=", "==abc", "a b", "a,b", "a\"b", "é", "a=b", "a\tb"] {
            assert!(!is_b64token(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn b64token_bytes_are_exactly_the_rfc_6750_set() {
        for b in 0..=255u8 {
            let rfc = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            assert_eq!(b64token_byte(b), rfc, "byte {b:#04x}");
            // Every byte also decides a whole token, wherever it sits in a long one.
            let mut token = vec![b'a'; 100];
            token[37] = b;
            assert_eq!(is_b64token(&token), rfc, "byte {b:#04x} inside a token");
        }
    }

    #[test]
    fn token_tag_is_short_and_stable() {
        assert_eq!(token_tag("abc").len(), 8);
        assert_eq!(token_tag("abc"), token_tag("abc"));
        assert_ne!(token_tag("abc"), token_tag("abd"));
    }
}
