//! The hand-off: `?customer_session_token=…` in, session cookie and a clean URL out.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::cookie::SessionCookie;
use crate::extension::CredentialSource;
use crate::layer::ResponseBody;
use crate::manager::SessionManager;
use crate::reject::Rejection;
use crate::store::SessionStore;
use crate::token::SessionToken;

/// The query parameter Polar's `customer_portal_url` carries the token in.
pub const TOKEN_PARAM: &str = "customer_session_token";

const INVALID_PAGE: &[u8] = b"<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Link expired or invalid</title><h1>Link expired or invalid</h1><p>This sign-in link has expired or is not valid. Ask for a new link to your customer portal.</p></html>";
const UNAVAILABLE_PAGE: &[u8] = b"<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Try again shortly</title><h1>Try again shortly</h1><p>We cannot check your sign-in link right now. Please reload this page in a moment.</p></html>";

/// Wraps a portal route with the token hand-off; see the [module docs](super).
#[derive(Clone)]
pub struct HandoffLayer<St> {
    sessions: SessionManager<St>,
    cookie: Arc<SessionCookie>,
    challenge: HeaderValue,
}

impl<St> HandoffLayer<St> {
    /// A hand-off that checks tokens with `sessions` and writes `cookie`. Usually built by
    /// [`CustomerSessionLayer::handoff`](crate::CustomerSessionLayer::handoff), which keeps
    /// the cookie the same as the one the layer reads.
    /// Its 401 page carries the challenge `Bearer realm="polar"`.
    pub fn new(sessions: SessionManager<St>, cookie: SessionCookie) -> Self {
        Self {
            sessions,
            cookie: Arc::new(cookie),
            challenge: HeaderValue::from_static("Bearer realm=\"polar\""),
        }
    }

    /// Use the challenge of the layer this hand-off belongs to.
    pub(crate) fn with_challenge(mut self, challenge: HeaderValue) -> Self {
        self.challenge = challenge;
        self
    }

    /// The cookie this hand-off writes.
    pub fn cookie(&self) -> &SessionCookie {
        &self.cookie
    }
}

impl<S, St> Layer<S> for HandoffLayer<St> {
    type Service = Handoff<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        Handoff {
            inner,
            sessions: self.sessions.clone(),
            cookie: self.cookie.clone(),
            challenge: self.challenge.clone(),
        }
    }
}

impl<St> std::fmt::Debug for HandoffLayer<St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandoffLayer")
            .field("cookie", &self.cookie)
            .finish_non_exhaustive()
    }
}

/// The hand-off service; built by [`HandoffLayer`].
pub struct Handoff<S, St> {
    inner: S,
    sessions: SessionManager<St>,
    cookie: Arc<SessionCookie>,
    challenge: HeaderValue,
}

impl<S: Clone, St> Clone for Handoff<S, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            sessions: self.sessions.clone(),
            cookie: self.cookie.clone(),
            challenge: self.challenge.clone(),
        }
    }
}

impl<S, St> std::fmt::Debug for Handoff<S, St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff")
            .field("cookie", &self.cookie)
            .finish_non_exhaustive()
    }
}

/// What the query holds.
enum Query {
    /// No token parameter: not a hand-off.
    Absent,
    /// Exactly one token parameter, and where to send the browser without it.
    Token {
        token: SessionToken,
        location: String,
    },
    /// An empty or repeated token parameter.
    Invalid,
}

fn split_query(path: &str, query: Option<&str>) -> Query {
    let Some(query) = query else {
        return Query::Absent;
    };
    let mut token = None;
    let mut kept = Vec::new();
    let mut seen = 0;
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name == TOKEN_PARAM {
            seen += 1;
            token = Some(value);
        } else if !pair.is_empty() {
            kept.push(pair);
        }
    }
    match (seen, token) {
        (0, _) => Query::Absent,
        (1, Some(token)) if !token.is_empty() => {
            // Always a path on this origin: `//host` or `/\host` would send the browser (and
            // its fresh session) to another site.
            let mut location = format!("/{}", path.trim_start_matches(['/', '\\']));
            if !kept.is_empty() {
                location.push('?');
                location.push_str(&kept.join("&"));
            }
            Query::Token {
                token: SessionToken::from_secret(token.to_owned()),
                location,
            }
        }
        _ => Query::Invalid,
    }
}

impl<S, St, ReqBody, ResBody> Service<Request<ReqBody>> for Handoff<S, St>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    St: SessionStore,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = HandoffFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            return HandoffFuture::inner(self.inner.call(request));
        }
        let (token, location) = match split_query(request.uri().path(), request.uri().query()) {
            Query::Absent => return HandoffFuture::inner(self.inner.call(request)),
            Query::Invalid => {
                let page = page(StatusCode::UNAUTHORIZED, &self.challenge);
                return HandoffFuture::ready(page);
            }
            Query::Token { token, location } => (token, location),
        };
        let sessions = self.sessions.clone();
        let cookie = self.cookie.clone();
        let challenge = self.challenge.clone();
        HandoffFuture::handoff(Box::pin(async move {
            match sessions
                .authenticate(token.expose_secret(), CredentialSource::Cookie)
                .await
            {
                Ok((_, info)) => {
                    let max_age = (info.expires_at - sessions.now()).num_seconds();
                    tracing::debug!(token = %info.token_hash.short(), "portal hand-off");
                    redirect(&location, cookie.set_cookie(token.expose_secret(), max_age))
                }
                Err(rejection @ Rejection::StoreUnavailable(_)) => {
                    tracing::debug!(reason = rejection.label(), "portal hand-off failed");
                    page(StatusCode::SERVICE_UNAVAILABLE, &challenge)
                }
                Err(rejection) => {
                    tracing::debug!(reason = rejection.label(), "portal hand-off refused");
                    page(StatusCode::UNAUTHORIZED, &challenge)
                }
            }
        }))
    }
}

/// Common headers: nothing here may be cached or leak a `Referer`.
fn base(status: StatusCode, body: &'static [u8]) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from_static(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn redirect(location: &str, set_cookie: HeaderValue) -> Response<Bytes> {
    let mut response = base(StatusCode::SEE_OTHER, b"");
    let headers = response.headers_mut();
    // `location` is the request's own path and query pieces, so it is header-safe.
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(location).unwrap_or_else(|_| HeaderValue::from_static("/")),
    );
    headers.insert(header::SET_COOKIE, set_cookie);
    response
}

fn page(status: StatusCode, challenge: &HeaderValue) -> Response<Bytes> {
    let body = if status == StatusCode::SERVICE_UNAVAILABLE {
        UNAVAILABLE_PAGE
    } else {
        INVALID_PAGE
    };
    let mut response = base(status, body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    } else {
        // A 401 must name a scheme the client could use (RFC 9110 §15.5.2).
        headers.insert(header::WWW_AUTHENTICATE, challenge.clone());
    }
    response
}

type BoxResponse = Pin<Box<dyn Future<Output = Response<Bytes>> + Send>>;

pin_project! {
    /// Response future of [`Handoff`].
    pub struct HandoffFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Inner { #[pin] future: F },
        Handoff { future: BoxResponse },
        Ready { response: Option<Response<Bytes>> },
    }
}

impl<F> HandoffFuture<F> {
    fn inner(future: F) -> Self {
        Self {
            state: State::Inner { future },
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

impl<F, B, E> Future for HandoffFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future } => {
                Poll::Ready(Ok(ready!(future.poll(cx))?.map(ResponseBody::inner)))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn location(path: &str, query: &str) -> Option<String> {
        match split_query(path, Some(query)) {
            Query::Token { location, .. } => Some(location),
            _ => None,
        }
    }

    #[test]
    fn token_is_removed_and_other_parameters_kept() {
        assert_eq!(
            location("/portal", "customer_session_token=t").unwrap(),
            "/portal"
        );
        assert_eq!(
            location("/portal", "customer_session_token=t&email=a%40b.c").unwrap(),
            "/portal?email=a%40b.c"
        );
        assert_eq!(
            location("/p", "x=1&customer_session_token=t&y=2").unwrap(),
            "/p?x=1&y=2"
        );
    }

    #[test]
    fn location_never_leaves_the_origin() {
        assert_eq!(
            location("//evil.example/x", "customer_session_token=t").unwrap(),
            "/evil.example/x"
        );
        assert_eq!(
            location("/\\evil.example", "customer_session_token=t").unwrap(),
            "/evil.example"
        );
    }

    #[test]
    fn absent_empty_and_repeated_tokens() {
        assert!(matches!(split_query("/p", None), Query::Absent));
        assert!(matches!(split_query("/p", Some("email=x")), Query::Absent));
        assert!(matches!(
            split_query("/p", Some("customer_session_token=")),
            Query::Invalid
        ));
        assert!(matches!(
            split_query("/p", Some("customer_session_token")),
            Query::Invalid
        ));
        assert!(matches!(
            split_query(
                "/p",
                Some("customer_session_token=a&customer_session_token=a")
            ),
            Query::Invalid
        ));
    }
}
