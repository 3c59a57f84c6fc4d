//! The customisation point for rejection responses.

use bytes::Bytes;
use http::Response;
use http::request::Parts;

use super::Rejection;

/// Adjusts or replaces the response the layer sends for a [`Rejection`].
///
/// The layer first builds Polar's response for the rejection (see the [module
/// docs](crate::reject)), then hands it here with the request's head. Implemented for
/// closures `FnMut(&Rejection, &Parts, &mut Response<Bytes>)`:
///
/// ```
/// use bytes::Bytes;
/// use http::{header, HeaderValue, Response, StatusCode};
/// use tower_customer_session::{CustomerSessionLayer, SessionManager, MemoryStore, Rejection};
///
/// let sessions = SessionManager::builder(MemoryStore::new())
///     .secret(b"0123456789abcdef0123456789abcdef")
///     .build()
///     .unwrap();
/// // Browsers get a sign-in page instead of JSON when they have no session.
/// let layer = CustomerSessionLayer::new(sessions).on_rejection(
///     |rejection: &Rejection, request: &http::request::Parts, response: &mut Response<Bytes>| {
///         let wants_html = request
///             .headers
///             .get(header::ACCEPT)
///             .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
///         if wants_html && rejection.status() == StatusCode::UNAUTHORIZED {
///             *response.body_mut() = Bytes::from_static(b"<p>Please sign in.</p>");
///             response
///                 .headers_mut()
///                 .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
///         }
///     },
/// );
/// # let _ = layer;
/// ```
pub trait OnRejection: Clone + Send + Sync + 'static {
    /// Change `response` (Polar's default for `rejection`) as needed.
    fn on_rejection(
        &mut self,
        rejection: &Rejection,
        request: &Parts,
        response: &mut Response<Bytes>,
    );
}

impl<F> OnRejection for F
where
    F: FnMut(&Rejection, &Parts, &mut Response<Bytes>) + Clone + Send + Sync + 'static,
{
    fn on_rejection(
        &mut self,
        rejection: &Rejection,
        request: &Parts,
        response: &mut Response<Bytes>,
    ) {
        self(rejection, request, response)
    }
}

/// Keeps Polar's responses unchanged; the layer's default.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultRejection;

impl OnRejection for DefaultRejection {
    fn on_rejection(&mut self, _: &Rejection, _: &Parts, _: &mut Response<Bytes>) {}
}
