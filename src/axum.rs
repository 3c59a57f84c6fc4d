//! axum extractors for the values the layer inserts (feature `axum`, on by default).
//!
//! [`Customer`] and [`SessionInfo`] extract directly; `Option<Customer>` and
//! `Option<SessionInfo>` are `None` for anonymous requests behind an
//! [optional](crate::CustomerSessionLayer::optional) layer. If no [`CustomerSessionLayer`](crate::CustomerSessionLayer)
//! ran for the route at all, extraction fails with a 500 that says so: a forgotten layer is
//! a server bug, never an anonymous request.
//!
//! Put the layer on the routes with `route_layer`, so unmatched paths still answer 404:
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower_customer_session::{Customer, CustomerSessionLayer, SessionManager, MemoryStore};
//!
//! async fn me(customer: Customer) -> String {
//!     customer.name.clone().unwrap_or_default()
//! }
//!
//! async fn home(customer: Option<Customer>) -> &'static str {
//!     if customer.is_some() { "welcome back" } else { "hello" }
//! }
//!
//! let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     .route_layer(CustomerSessionLayer::new(sessions.clone()))
//!     .merge(
//!         Router::new()
//!             .route("/", get(home))
//!             .route_layer(CustomerSessionLayer::new(sessions).optional()),
//!     );
//! ```

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderValue, StatusCode};

use crate::extension::{Anonymous, SessionInfo};
use crate::model::Customer;

/// Why [`Customer`] or [`SessionInfo`] could not be extracted.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// No `CustomerSessionLayer` ran for this route (500).
    #[error(
        "no CustomerSessionLayer ran for this route: add `.route_layer(CustomerSessionLayer::new(sessions))` to the router that serves it"
    )]
    MissingLayer,
    /// The layer is optional and the request had no credentials (401); use
    /// `Option<Customer>` to accept anonymous requests.
    #[error("this route needs a customer session")]
    Unauthenticated(HeaderValue),
}

impl IntoResponse for ExtractError {
    fn into_response(self) -> Response {
        match self {
            Self::MissingLayer => {
                tracing::error!("{self}");
                (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
            }
            Self::Unauthenticated(challenge) => (
                StatusCode::UNAUTHORIZED,
                [
                    (WWW_AUTHENTICATE, challenge),
                    (CONTENT_TYPE, HeaderValue::from_static("application/json")),
                ],
                r#"{"error":"Unauthorized","detail":"Unauthorized"}"#,
            )
                .into_response(),
        }
    }
}

fn extension<T: Clone + Send + Sync + 'static>(parts: &Parts) -> Result<Option<T>, ExtractError> {
    match parts.extensions.get::<T>() {
        Some(value) => Ok(Some(value.clone())),
        None if parts.extensions.get::<Anonymous>().is_some() => Ok(None),
        None => Err(ExtractError::MissingLayer),
    }
}

fn required<T: Clone + Send + Sync + 'static>(parts: &Parts) -> Result<T, ExtractError> {
    extension(parts)?.ok_or_else(|| {
        let challenge = parts
            .extensions
            .get::<Anonymous>()
            .map(|a| a.challenge.clone())
            .unwrap_or_else(|| HeaderValue::from_static("Bearer"));
        ExtractError::Unauthenticated(challenge)
    })
}

macro_rules! extractors {
    ($($ty:ty),*) => {$(
        impl<S: Send + Sync> FromRequestParts<S> for $ty {
            type Rejection = ExtractError;

            async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
                required(parts)
            }
        }

        impl<S: Send + Sync> OptionalFromRequestParts<S> for $ty {
            type Rejection = ExtractError;

            async fn from_request_parts(
                parts: &mut Parts,
                _: &S,
            ) -> Result<Option<Self>, Self::Rejection> {
                extension(parts)
            }
        }
    )*};
}

extractors!(Customer, SessionInfo);
