//! The customisation point for rejection responses.

use bytes::Bytes;
use http::Response;
use http::request::Parts;

use super::Rejection;

/// Adjusts or replaces the response the layer sends for a [`Rejection`].
///
/// The layer first builds Polar's response for the rejection (see the [module
/// docs](crate::reject)), then hands it here with the request's head, whose `Authorization`
/// and `Cookie` values are marked sensitive (so `Debug` does not print them).
///
/// For browser pages, [`BrowserRejection`](super::BrowserRejection) is ready-made. For your
/// own, write a closure `FnMut(&Rejection, &Parts, &mut Response<Bytes>)` and pass it
/// through [`on_rejection_fn`], which spells out the argument types for the compiler:
///
/// ```
/// use http::{HeaderValue, StatusCode};
/// use tower_customer_session::reject::on_rejection_fn;
/// use tower_customer_session::{CustomerSessionLayer, SessionManager, MemoryStore};
///
/// let sessions = SessionManager::builder(MemoryStore::new())
///     .secret(b"0123456789abcdef0123456789abcdef")
///     .build()
///     .unwrap();
/// // Tell clients which support address to write to when the store is down.
/// let layer = CustomerSessionLayer::new(sessions).on_rejection(on_rejection_fn(
///     |rejection, _request, response| {
///         if rejection.status() == StatusCode::SERVICE_UNAVAILABLE {
///             let contact = HeaderValue::from_static("support@shop.example");
///             response.headers_mut().insert("x-support", contact);
///         }
///     },
/// ));
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

/// Returns `f` unchanged, typed as an [`OnRejection`] closure, so its arguments need no
/// annotations (a bare closure passed to a generic method cannot infer them).
///
/// See [`OnRejection`] for an example.
pub fn on_rejection_fn<F>(f: F) -> F
where
    F: FnMut(&Rejection, &Parts, &mut Response<Bytes>) + Clone + Send + Sync + 'static,
{
    f
}

/// Keeps Polar's responses unchanged; the layer's default.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultRejection;

impl OnRejection for DefaultRejection {
    fn on_rejection(&mut self, _: &Rejection, _: &Parts, _: &mut Response<Bytes>) {}
}
