//! What the service and its future share: handing a request its customer, and building
//! rejections.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use http::{HeaderMap, Request, Response};

use super::LayerConfig;
use crate::extension::{CredentialSource, SessionInfo};
use crate::metrics::Metrics;
use crate::model::Customer;
use crate::reject::{OnRejection, Rejection};

/// Recording into a disabled span still costs a call; skip it when nobody listens.
pub(crate) fn record(span: &tracing::Span, field: &str, value: &'static str) {
    if !span.is_disabled() {
        span.record(field, value);
    }
}

/// Keep every credential line out of any later `Debug` of the headers (and out of HPACK
/// tables), not just the one used: a cookie next to a Bearer header may hold a live token.
/// `iter_mut` only visits; `HeaderMap::entry` could grow the map on the hot path.
pub(crate) fn mark_sensitive(headers: &mut HeaderMap) {
    for (name, value) in headers.iter_mut() {
        if name == AUTHORIZATION || name == COOKIE {
            value.set_sensitive(true);
        }
    }
}

/// Hand the handler its customer and session facts.
pub(crate) fn authorize<B>(
    request: &mut Request<B>,
    customer: Customer,
    info: SessionInfo,
    span: &tracing::Span,
    metrics: &Metrics,
) {
    record(span, "outcome", "authenticated");
    metrics.authenticated(info.source);
    mark_sensitive(request.headers_mut());
    let extensions = request.extensions_mut();
    extensions.insert(customer);
    extensions.insert(info);
}

/// Builds rejection responses: Polar's default, then the user's [`OnRejection`].
#[derive(Clone)]
pub(crate) struct Rejector<R> {
    on_rejection: R,
    pub(crate) config: Arc<LayerConfig>,
    /// The request-outcome counters of the sessions this layer resolves with.
    pub(crate) metrics: Metrics,
}

impl<R> Rejector<R> {
    pub(crate) fn new(config: Arc<LayerConfig>, on_rejection: R, metrics: Metrics) -> Self {
        Self {
            on_rejection,
            config,
            metrics,
        }
    }
}

impl<R: OnRejection> Rejector<R> {
    /// `Some(Cookie)` if a malformed credential came from the session cookie.
    pub(crate) fn cookie_source<B>(&self, request: &Request<B>) -> Option<CredentialSource> {
        let header_used =
            self.config.sources.bearer && request.headers().contains_key(AUTHORIZATION);
        (!header_used && self.config.sources.cookie.is_some()).then_some(CredentialSource::Cookie)
    }

    /// `source` is where the refused credential came from, if known: a dead session cookie
    /// is cleared so the browser stops sending it (never on 503, where it may still be good).
    pub(crate) fn reject<B>(
        &mut self,
        rejection: Rejection,
        request: Request<B>,
        source: Option<CredentialSource>,
        span: &tracing::Span,
    ) -> Response<Bytes> {
        span.record("outcome", rejection.label());
        self.metrics.request(rejection.label(), source);
        tracing::debug!(parent: span, reason = rejection.label(), "customer session rejected");
        let (mut parts, _body) = request.into_parts();
        // The hook may log the request head; a refused request can still carry a live token.
        mark_sensitive(&mut parts.headers);
        let mut response = self.config.responses.build(&rejection);
        let dead = matches!(
            rejection,
            Rejection::InvalidToken(_) | Rejection::InvalidRequest(_)
        );
        if let (true, Some(CredentialSource::Cookie), Some(cookie)) =
            (dead, source, &self.config.cookie)
        {
            response
                .headers_mut()
                .append(SET_COOKIE, cookie.clear_cookie());
        }
        self.on_rejection
            .on_rejection(&rejection, &parts, &mut response);
        response.extensions_mut().insert(rejection);
        response
    }
}
