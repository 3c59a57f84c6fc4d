//! The response future: ready rejection, inner call, or a cache miss being resolved.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::ResponseBody;
use super::authorize::{Rejector, authorize};
use crate::cache::LoadOutcome;
use crate::extension::CredentialSource;
use crate::reject::OnRejection;

/// Only cache misses are boxed: the hit path and rejections never allocate a future.
type BoxLoad = Pin<Box<dyn Future<Output = LoadOutcome> + Send>>;

/// What a cache miss needs once the store has answered.
pub(super) struct Pending<S, ReqBody, R> {
    pub(super) request: Request<ReqBody>,
    pub(super) inner: S,
    pub(super) source: CredentialSource,
    pub(super) rejector: Rejector<R>,
    pub(super) span: tracing::Span,
}

pin_project! {
    /// Response future of [`CustomerSessionService`](super::CustomerSessionService).
    pub struct ResponseFuture<S, ReqBody, R>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody, R>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody, R>
    where
        S: Service<Request<ReqBody>>,
    {
        Inner { #[pin] future: S::Future, source: Option<CredentialSource> },
        Rejected { response: Option<Response<Bytes>> },
        // Boxed so the miss path's request and service do not widen every response future.
        Loading { load: BoxLoad, pending: Option<Box<Pending<S, ReqBody, R>>> },
    }
}

impl<S, ReqBody, R> ResponseFuture<S, ReqBody, R>
where
    S: Service<Request<ReqBody>>,
{
    pub(super) fn inner(future: S::Future, source: Option<CredentialSource>) -> Self {
        Self {
            state: State::Inner { future, source },
        }
    }

    pub(super) fn rejected(response: Response<Bytes>) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    pub(super) fn loading(load: BoxLoad, pending: Pending<S, ReqBody, R>) -> Self {
        Self {
            state: State::Loading {
                load,
                pending: Some(Box::new(pending)),
            },
        }
    }
}

impl<S, ReqBody, ResBody, R> Future for ResponseFuture<S, ReqBody, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: OnRejection,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let next = match state.as_mut().project() {
                StateProj::Inner { future, source } => {
                    let mut response = ready!(future.poll(cx))?;
                    if *source == Some(CredentialSource::Cookie) {
                        mark_private(response.headers_mut());
                    }
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
                StateProj::Rejected { response } => {
                    let response = response.take().expect("polled after completion");
                    return Poll::Ready(Ok(response.map(ResponseBody::rejection)));
                }
                StateProj::Loading { load, pending } => {
                    let outcome = ready!(load.as_mut().poll(cx));
                    let Pending {
                        mut request,
                        mut inner,
                        source,
                        mut rejector,
                        span,
                    } = *pending.take().expect("polled after completion");
                    match outcome {
                        Ok(entry) => {
                            let (customer, info) = entry.resolved(source);
                            authorize(&mut request, customer, info, &span, &rejector.metrics);
                            State::Inner {
                                future: inner.call(request),
                                source: Some(source),
                            }
                        }
                        Err(rejection) => State::Rejected {
                            response: Some(rejector.reject(
                                rejection,
                                request,
                                Some(source),
                                &span,
                            )),
                        },
                    }
                }
            };
            state.set(next);
        }
    }
}

/// A response to a cookie-authenticated request is personal: no shared cache may keep it,
/// and caches that key on headers must key on both credentials.
fn mark_private(headers: &mut http::HeaderMap) {
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("private, no-store"),
    );
    headers.append(
        http::header::VARY,
        http::HeaderValue::from_static("Cookie, Authorization"),
    );
}
