//! The service: extract → token → cache → (store) → verify → extensions, or a rejection.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{AUTHORIZATION, COOKIE};
use http::{Request, Response};
use tower_service::Service;
use tracing::Instrument;
use tracing::field::{Empty, display};

use super::future::{Pending, ResponseFuture};
use super::{LayerConfig, Mode, ResponseBody};
use crate::cache::CachedSession;
use crate::extension::{Anonymous, CredentialSource};
use crate::extract::extract;
use crate::reject::{OnRejection, Rejection};
use crate::sessions::CustomerSessions;
use crate::store::SessionStore;

/// Middleware that authenticates customers; built by
/// [`CustomerSessionLayer`](super::CustomerSessionLayer).
pub struct CustomerSessionService<S, St, R> {
    inner: S,
    sessions: CustomerSessions<St>,
    rejector: Rejector<R>,
}

impl<S, St, R> CustomerSessionService<S, St, R> {
    pub(super) fn new(
        inner: S,
        sessions: CustomerSessions<St>,
        config: Arc<LayerConfig>,
        on_rejection: R,
    ) -> Self {
        Self {
            inner,
            sessions,
            rejector: Rejector {
                on_rejection,
                config,
            },
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, St, R: Clone> Clone for CustomerSessionService<S, St, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            sessions: self.sessions.clone(),
            rejector: self.rejector.clone(),
        }
    }
}

impl<S, St, R> std::fmt::Debug for CustomerSessionService<S, St, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomerSessionService")
            .field("config", &self.rejector.config)
            .finish_non_exhaustive()
    }
}

impl<S, St, R, ReqBody, ResBody> Service<Request<ReqBody>> for CustomerSessionService<S, St, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    St: SessionStore,
    R: OnRejection,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let span = tracing::debug_span!(
            "customer_session",
            token = Empty,
            cache = Empty,
            outcome = Empty
        );
        let _entered = span.enter();

        let found = match extract(request.headers(), &self.rejector.config.sources) {
            Ok(Some(credential)) => {
                let (format, hasher) = self.sessions.format_and_hasher();
                // Shape and checksum first: a malformed token costs no hash, cache or store work.
                match format.parse_bytes(credential.raw) {
                    Ok(token) => Ok((hasher.hash(token.expose_secret()), credential.source)),
                    Err(_) => Err(credential.refusal()),
                }
            }
            Ok(None) => Err(Rejection::MissingCredentials),
            Err(rejection) => Err(rejection),
        };
        let (hash, source) = match found {
            Ok((_, CredentialSource::Cookie))
                if !self
                    .rejector
                    .config
                    .csrf
                    .allows(request.method(), request.headers()) =>
            {
                let rejection = Rejection::CrossSiteRequest;
                return ResponseFuture::rejected(
                    self.rejector.reject(rejection, request, None, &span),
                );
            }
            Ok(found) => found,
            Err(Rejection::MissingCredentials | Rejection::UnsupportedScheme)
                if self.rejector.config.mode == Mode::Optional =>
            {
                span.record("outcome", "anonymous");
                request.extensions_mut().insert(Anonymous {
                    challenge: self.rejector.config.responses.challenge(),
                });
                return ResponseFuture::inner(self.inner.call(request), None);
            }
            Err(rejection) => {
                let source = self.rejector.cookie_source(&request);
                return ResponseFuture::rejected(
                    self.rejector.reject(rejection, request, source, &span),
                );
            }
        };
        // Recording into a disabled span still costs a call per field; skip it when unused.
        let traced = !span.is_disabled();
        if traced {
            span.record("token", display(hash.short()));
        }

        match self.sessions.cached(&hash) {
            Some(Ok(entry)) => {
                if traced {
                    span.record("cache", "hit");
                }
                authorize(&mut request, &entry, source, &span);
                ResponseFuture::inner(self.inner.call(request), Some(source))
            }
            Some(Err(rejection)) => {
                span.record("cache", "hit");
                ResponseFuture::rejected(self.rejector.reject(
                    rejection,
                    request,
                    Some(source),
                    &span,
                ))
            }
            None => {
                span.record("cache", "miss");
                let sessions = self.sessions.clone();
                let load =
                    Box::pin(async move { sessions.load(hash).await }.instrument(span.clone()));
                // Call the instance that was polled ready; leave a fresh clone in its place.
                let ready = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, ready);
                ResponseFuture::loading(
                    load,
                    Pending {
                        request,
                        inner,
                        source,
                        rejector: self.rejector.clone(),
                        span: span.clone(),
                    },
                )
            }
        }
    }
}

/// Hand the handler its customer and session facts.
pub(super) fn authorize<B>(
    request: &mut Request<B>,
    entry: &CachedSession,
    source: CredentialSource,
    span: &tracing::Span,
) {
    if !span.is_disabled() {
        span.record("outcome", "authenticated");
    }
    // Keep every credential line out of any later `Debug` of the headers (and out of HPACK
    // tables), not just the one used: a cookie next to a Bearer header may hold a live token.
    // `iter_mut` only visits; `HeaderMap::entry` could grow the map on the hot path.
    for (name, value) in request.headers_mut().iter_mut() {
        if name == AUTHORIZATION || name == COOKIE {
            value.set_sensitive(true);
        }
    }
    let (customer, info) = entry.resolved(source);
    let extensions = request.extensions_mut();
    extensions.insert(customer);
    extensions.insert(info);
}

/// Builds rejection responses: Polar's default, then the user's [`OnRejection`].
#[derive(Clone)]
pub(super) struct Rejector<R> {
    on_rejection: R,
    pub(super) config: Arc<LayerConfig>,
}

impl<R: OnRejection> Rejector<R> {
    /// `Some(Cookie)` if a malformed credential came from the session cookie.
    pub(super) fn cookie_source<B>(&self, request: &Request<B>) -> Option<CredentialSource> {
        let header_used =
            self.config.sources.bearer && request.headers().contains_key(AUTHORIZATION);
        (!header_used && self.config.sources.cookie.is_some()).then_some(CredentialSource::Cookie)
    }

    /// `source` is where the refused credential came from, if known: a dead session cookie
    /// is cleared so the browser stops sending it (never on 503, where it may still be good).
    pub(super) fn reject<B>(
        &mut self,
        rejection: Rejection,
        request: Request<B>,
        source: Option<CredentialSource>,
        span: &tracing::Span,
    ) -> Response<Bytes> {
        span.record("outcome", rejection.label());
        tracing::debug!(parent: span, reason = rejection.label(), "customer session rejected");
        let (parts, _body) = request.into_parts();
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
                .append(http::header::SET_COOKIE, cookie.clear_cookie());
        }
        self.on_rejection
            .on_rejection(&rejection, &parts, &mut response);
        response.extensions_mut().insert(rejection);
        response
    }
}
