//! The service: extract → token → cache → (store) → verify → extensions, or a rejection.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;
use tracing::Instrument;
use tracing::field::{Empty, display};

use super::authorize::{Rejector, authorize, record};
use super::future::{Pending, ResponseFuture};
use super::{LayerConfig, Mode, ResponseBody};
use crate::extension::{Anonymous, CredentialSource, SessionInfo};
use crate::extract::extract;
use crate::manager::SessionManager;
use crate::model::Customer;
use crate::reject::{OnRejection, Rejection};
use crate::store::SessionStore;
use crate::token::{SessionToken, TokenHash};

/// Middleware that authenticates customers; built by
/// [`CustomerSessionLayer`](super::CustomerSessionLayer).
pub struct CustomerSessionService<S, St, R> {
    inner: S,
    sessions: SessionManager<St>,
    rejector: Rejector<R>,
}

impl<S, St, R> CustomerSessionService<S, St, R> {
    pub(crate) fn new(
        inner: S,
        sessions: SessionManager<St>,
        config: Arc<LayerConfig>,
        on_rejection: R,
    ) -> Self {
        Self {
            inner,
            rejector: Rejector::new(config, on_rejection, sessions.metrics().clone()),
            sessions,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }

    pub(crate) fn sessions(&self) -> &SessionManager<St> {
        &self.sessions
    }

    pub(crate) fn config(&self) -> &LayerConfig {
        &self.rejector.config
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
        // Only a subscriber that wants it gets a span. Without this check, tracing's `log`
        // fallback (on in most axum builds) formats and discards the span's fields on every
        // request when no subscriber is set; the events inside still reach `log`.
        let span = if tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug_span!(
                "customer_session",
                token = Empty,
                cache = Empty,
                outcome = Empty
            )
        } else {
            tracing::Span::none()
        };
        let _entered = span.enter();

        match self.decide(&request, &span) {
            Decision::Authorized(customer, info) => {
                let source = info.source;
                authorize(&mut request, customer, info, &span, &self.rejector.metrics);
                ResponseFuture::inner(self.inner.call(request), Some(source))
            }
            Decision::Anonymous => {
                record(&span, "outcome", "anonymous");
                self.rejector.metrics.request("anonymous", None);
                request.extensions_mut().insert(Anonymous {
                    challenge: self.rejector.config.responses.challenge(),
                });
                ResponseFuture::inner(self.inner.call(request), None)
            }
            Decision::Rejected(rejection, source) => {
                ResponseFuture::rejected(self.rejector.reject(rejection, request, source, &span))
            }
            Decision::Load(hash, source, token) => {
                let sessions = self.sessions.clone();
                let load = Box::pin(
                    async move { sessions.load(hash, token).await }.instrument(span.clone()),
                );
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

/// What the synchronous part of authentication decided for a request.
enum Decision {
    /// A cached session passed verification; what the handler gets.
    Authorized(Customer, SessionInfo),
    /// No credentials, and the layer is optional.
    Anonymous,
    /// Refused; the source says whether a dead session cookie should be cleared.
    Rejected(Rejection, Option<CredentialSource>),
    /// A cache miss: the store must be asked (a remote authority needs the token itself).
    Load(TokenHash, CredentialSource, SessionToken),
}

impl<S, St: SessionStore, R: OnRejection> CustomerSessionService<S, St, R> {
    /// extract → token shape → CSRF → hash → cache, without waiting on anything.
    fn decide<B>(&self, request: &Request<B>, span: &tracing::Span) -> Decision {
        let config = &self.rejector.config;
        let credential = match extract(request.headers(), &config.sources) {
            Ok(Some(credential)) => credential,
            Ok(None) | Err(Rejection::UnsupportedScheme) if config.mode == Mode::Optional => {
                return Decision::Anonymous;
            }
            Ok(None) => return Decision::Rejected(Rejection::MissingCredentials, None),
            Err(rejection) => {
                return Decision::Rejected(rejection, self.rejector.cookie_source(request));
            }
        };
        let source = credential.source;
        let (format, hasher) = self.sessions.format_and_hasher();
        // A bound credential (DBSC) holds its session's token: once opened, it goes the
        // token's way, through the same cache and store.
        #[cfg(feature = "dbsc")]
        let opened;
        // Shape and checksum first: a malformed token costs no hash, cache or store work.
        let token = match format.parse_bytes(credential.raw) {
            Ok(token) => token.expose_secret(),
            #[cfg(feature = "dbsc")]
            Err(_) if source == CredentialSource::Cookie && config.bound.is_some() => {
                let bound = config.bound.as_deref().expect("checked");
                let now = self.sessions.now().timestamp();
                match bound.open(credential.raw, now) {
                    Some(crate::portal::dbsc::Opened::Live(token))
                        if format.parse(token.expose_secret()).is_ok() =>
                    {
                        opened = token;
                        opened.expose_secret()
                    }
                    Some(crate::portal::dbsc::Opened::Refused(reason)) => {
                        return Decision::Rejected(Rejection::InvalidToken(reason), Some(source));
                    }
                    _ => return Decision::Rejected(credential.refusal(), Some(source)),
                }
            }
            Err(_) => return Decision::Rejected(credential.refusal(), Some(source)),
        };
        if source == CredentialSource::Cookie
            && !config.csrf.allows(request.method(), request.headers())
        {
            return Decision::Rejected(Rejection::CrossSiteRequest, None);
        }
        let hash = hasher.hash(token);
        if !span.is_disabled() {
            span.record("token", display(hash.short()));
        }
        match self.sessions.cached(&hash, source) {
            Some(Ok((customer, info))) => {
                record(span, "cache", "hit");
                Decision::Authorized(customer, info)
            }
            Some(Err(rejection)) => {
                record(span, "cache", "hit");
                Decision::Rejected(rejection, Some(source))
            }
            None => {
                record(span, "cache", "miss");
                let token = SessionToken::from_secret(token.to_owned());
                Decision::Load(hash, source, token)
            }
        }
    }
}
