//! [`PortalLayer`]: the hand-off and the session check, mounted in the one order that works.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Method, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::handoff::{self, HandoffOptions, Query, original_path, split_query};
use crate::error::{ConfigError, is_local_path};
use crate::extension::CredentialSource;
use crate::layer::{CustomerSessionLayer, CustomerSessionService, ResponseBody, ResponseFuture};
use crate::reject::{OnRejection, Rejection, StoreUnavailable};
use crate::store::SessionStore;

/// The portal page's layer, from [`CustomerSessionLayer::portal`]: hand-off links are
/// answered first, everything else goes through the session check. See the
/// [module docs](super).
#[must_use]
pub struct PortalLayer<St, R> {
    auth: CustomerSessionLayer<St, R>,
    options: Arc<HandoffOptions>,
}

impl<St, R: Clone> Clone for PortalLayer<St, R> {
    fn clone(&self) -> Self {
        Self {
            auth: self.auth.clone(),
            options: self.options.clone(),
        }
    }
}

impl<St, R> PortalLayer<St, R> {
    pub(crate) fn new(auth: CustomerSessionLayer<St, R>, options: HandoffOptions) -> Self {
        Self {
            auth,
            options: Arc::new(options),
        }
    }

    /// A path prefix to put before the redirect's path, for a proxy that strips it before
    /// the request arrives (the public `/shop/portal` reaches this server as `/portal`).
    /// Default: none. A prefix removed by axum's `Router::nest` needs no setting: the
    /// redirect already goes to the path the browser asked for.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Path`] unless `prefix` is a path on this site (`/shop`, not `//host`).
    ///
    /// ```
    /// # use tower_customer_session::{CustomerSessionLayer, SessionManager, MemoryStore};
    /// # let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
    /// let auth = CustomerSessionLayer::new(sessions).cookie("customer_session").optional();
    /// let portal = auth.portal()?.base_path("/shop")?;
    /// # let _ = portal;
    /// # Ok::<(), tower_customer_session::ConfigError>(())
    /// ```
    pub fn base_path(mut self, prefix: &str) -> Result<Self, ConfigError> {
        if !is_local_path(prefix) || prefix.contains(['?', '#']) {
            return Err(ConfigError::Path(prefix.to_owned()));
        }
        Arc::make_mut(&mut self.options).base_path = prefix.trim_end_matches('/').into();
        Ok(self)
    }

    /// Keep Polar's `email` parameter in the URL the hand-off redirects to. Default: `false`:
    /// the address is dropped, so it stays out of browser history and access logs.
    ///
    /// ```
    /// # use tower_customer_session::{CustomerSessionLayer, SessionManager, MemoryStore};
    /// # let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
    /// # let auth = CustomerSessionLayer::new(sessions).cookie("customer_session").optional();
    /// // The page pre-fills a form from `?email=`.
    /// let portal = auth.portal()?.keep_email(true);
    /// # let _ = portal;
    /// # Ok::<(), tower_customer_session::ConfigError>(())
    /// ```
    pub fn keep_email(mut self, keep: bool) -> Self {
        Arc::make_mut(&mut self.options).keep_email = keep;
        self
    }
}

impl<S, St, R: Clone> Layer<S> for PortalLayer<St, R> {
    type Service = Portal<S, St, R>;

    fn layer(&self, inner: S) -> Self::Service {
        Portal {
            auth: self.auth.layer(inner),
            options: self.options.clone(),
        }
    }
}

impl<St, R> std::fmt::Debug for PortalLayer<St, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalLayer")
            .field("auth", &self.auth)
            .field("options", &self.options)
            .finish()
    }
}

/// The portal service; built by [`PortalLayer`].
pub struct Portal<S, St, R> {
    auth: CustomerSessionService<S, St, R>,
    options: Arc<HandoffOptions>,
}

impl<S, St, R> Portal<S, St, R> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        self.auth.get_ref()
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        self.auth.get_mut()
    }

    /// The wrapped service, unwrapped.
    pub fn into_inner(self) -> S {
        self.auth.into_inner()
    }
}

impl<S: Clone, St, R: Clone> Clone for Portal<S, St, R> {
    fn clone(&self) -> Self {
        Self {
            auth: self.auth.clone(),
            options: self.options.clone(),
        }
    }
}

impl<S, St, R> std::fmt::Debug for Portal<S, St, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Portal")
            .field("auth", &self.auth)
            .field("options", &self.options)
            .finish()
    }
}

impl<S, St, R, ReqBody, ResBody> Service<Request<ReqBody>> for Portal<S, St, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    St: SessionStore,
    R: OnRejection,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = PortalFuture<ResponseFuture<S, ReqBody, R>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.auth.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            return PortalFuture::auth(self.auth.call(request));
        }
        let query = split_query(
            original_path(&request),
            request.uri().query(),
            &self.options,
        );
        let (token, location) = match query {
            Query::Absent => {
                let offer = self.registration_offer(&request);
                return PortalFuture::offering(self.auth.call(request), offer);
            }
            Query::Invalid => {
                let challenge = self.auth.config().responses.challenge();
                return PortalFuture::ready(handoff::refused(challenge));
            }
            Query::Token { token, location } => (token, location),
        };
        let config = self.auth.config();
        let sessions = self.auth.sessions().clone();
        let options = self.options.clone();
        let challenge = config.responses.challenge();
        let retry_after = config.retry_after_secs;
        PortalFuture::handoff(Box::pin(async move {
            match sessions
                .authenticate(token.expose_secret(), CredentialSource::Cookie)
                .await
            {
                Ok((_, info)) => {
                    let max_age = (info.expires_at - sessions.now()).num_seconds();
                    tracing::debug!(token = %info.token_hash.short(), "portal hand-off");
                    let cookie = options.cookie.set_cookie(token.expose_secret(), max_age);
                    handoff::redirect(&location, cookie)
                }
                Err(rejection @ Rejection::StoreUnavailable(reason)) => {
                    tracing::debug!(reason = rejection.label(), "portal hand-off failed");
                    let seconds = match reason {
                        StoreUnavailable::RateLimited {
                            retry_after: Some(seconds),
                        } => seconds,
                        _ => retry_after,
                    };
                    handoff::unavailable(seconds)
                }
                Err(rejection) => {
                    tracing::debug!(reason = rejection.label(), "portal hand-off refused");
                    handoff::refused(challenge)
                }
            }
        }))
    }
}

impl<S, St: SessionStore, R> Portal<S, St, R> {
    /// DBSC registration, offered on a page whose request carries the session token in
    /// the cookie (a browser that registered holds a bound credential instead, and one
    /// without DBSC ignores the header). Sent only if the page is a success.
    #[cfg(feature = "dbsc")]
    fn registration_offer<B>(&self, request: &Request<B>) -> Option<http::HeaderValue> {
        let config = self.auth.config();
        let bound = config.bound.as_deref()?;
        let credential = crate::extract::extract(request.headers(), &config.sources).ok()??;
        if credential.source != CredentialSource::Cookie {
            return None;
        }
        let (format, hasher) = self.auth.sessions().format_and_hasher();
        let token = format.parse_bytes(credential.raw).ok()?;
        let hash = hasher.hash(token.expose_secret());
        bound.registration_offer(&hash, self.auth.sessions().now().timestamp())
    }

    #[cfg(not(feature = "dbsc"))]
    fn registration_offer<B>(&self, _: &Request<B>) -> Option<http::HeaderValue> {
        None
    }
}

type BoxResponse = Pin<Box<dyn Future<Output = Response<Bytes>> + Send>>;

pin_project! {
    /// Response future of [`Portal`].
    pub struct PortalFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Auth { #[pin] future: F, offer: Option<http::HeaderValue> },
        Handoff { future: BoxResponse },
        Ready { response: Option<Response<Bytes>> },
    }
}

impl<F> PortalFuture<F> {
    fn auth(future: F) -> Self {
        Self::offering(future, None)
    }

    fn offering(future: F, offer: Option<http::HeaderValue>) -> Self {
        Self {
            state: State::Auth { future, offer },
        }
    }

    fn handoff(future: BoxResponse) -> Self {
        Self {
            state: State::Handoff { future },
        }
    }

    fn ready(response: Response<Bytes>) -> Self {
        Self {
            state: State::Ready {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for PortalFuture<F>
where
    F: Future<Output = Result<Response<ResponseBody<B>>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Auth { future, offer } => {
                let mut response = ready!(future.poll(cx))?;
                if let Some(offer) = offer.take() {
                    if response.status().is_success()
                        && response.extensions().get::<Rejection>().is_none()
                    {
                        response.headers_mut().insert(
                            http::HeaderName::from_static("secure-session-registration"),
                            offer,
                        );
                    }
                }
                Poll::Ready(Ok(response))
            }
            StateProj::Handoff { future } => Poll::Ready(Ok(
                ready!(future.as_mut().poll(cx)).map(ResponseBody::rejection)
            )),
            StateProj::Ready { response } => Poll::Ready(Ok(response
                .take()
                .expect("polled after completion")
                .map(ResponseBody::rejection))),
        }
    }
}
