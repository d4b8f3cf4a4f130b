//! axum extractors for the verified token.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;

use crate::AccessToken;

/// The token was not in the request extensions: the route is not behind the bearer layer. This
/// is a server misconfiguration, answered with 500 (fail closed), never with the handler running.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("no AccessToken in the request: is the route behind BearerAuthLayer?")]
pub struct MissingAccessToken;

impl IntoResponse for MissingAccessToken {
    fn into_response(self) -> Response {
        tracing::error!("{self}");
        crate::challenge::server_error()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AccessToken {
    type Rejection = MissingAccessToken;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<AccessToken>()
            .cloned()
            .ok_or(MissingAccessToken)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for AccessToken {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<AccessToken>().cloned())
    }
}
