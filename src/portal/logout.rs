//! [`Logout`]: revoke the session, clear the cookie, and say so only when it worked.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use tower_service::Service;

use crate::extension::CredentialSource;
use crate::extract::{SignOut, sign_out_credentials};
use crate::layer::Rejector;
use crate::manager::SessionManager;
use crate::reject::{DefaultRejection, OnRejection, Rejection, StoreUnavailable};
use crate::store::SessionAdmin;
use crate::token::SessionToken;

/// The sign-out endpoint, from [`CustomerSessionLayer::logout`]; mount it on a `POST` route
/// by itself (it does its own credential check, so it needs no session layer).
///
/// It revokes the session of the request's credential in the store and the cache, then
/// answers `303 See Other` to the configured location with a `Set-Cookie` that clears the
/// session cookie; it answers so only once every session it was shown is revoked. The
/// credential is read as its layer reads it (a Bearer header, else the session cookie),
/// except where the layer would refuse, because a sign-out means "end the sessions this
/// browser holds":
///
/// - A non-Bearer `Authorization` (a site behind HTTP Basic auth) is not a session
///   credential: the session cookie is revoked, under the CSRF guard as any cookie request.
/// - Two different session cookies (set for different domains or paths) are both revoked.
///   More than eight is no browser's doing: refused with the layer's `400`, as are two
///   `Authorization` lines, revoking nothing and keeping the cookie.
/// - A session that is already gone (expired, revoked, unknown, or a malformed cookie) is
///   signed out all the same: the cookie is cleared and the browser redirected.
/// - If the store fails or times out, the session may still work: the answer is the layer's
///   `503` (through its [`OnRejection`], so a [`BrowserRejection`] shows its page) and the
///   cookie is kept, so the customer can see that signing out did not go through and retry.
/// - A cookie-authenticated request must pass the CSRF guard whatever its method (signing
///   someone out is a change of state), or it gets the layer's `403`.
///
/// [`CustomerSessionLayer::logout`]: crate::CustomerSessionLayer::logout
/// [`BrowserRejection`]: crate::reject::BrowserRejection
pub struct Logout<St, R = DefaultRejection> {
    sessions: SessionManager<St>,
    rejector: Rejector<R>,
    location: HeaderValue,
}

impl<St, R> Logout<St, R> {
    pub(crate) fn new(
        sessions: SessionManager<St>,
        rejector: Rejector<R>,
        location: HeaderValue,
    ) -> Self {
        Self {
            sessions,
            rejector,
            location,
        }
    }
}

impl<St, R: Clone> Clone for Logout<St, R> {
    fn clone(&self) -> Self {
        Self {
            sessions: self.sessions.clone(),
            rejector: self.rejector.clone(),
            location: self.location.clone(),
        }
    }
}

impl<St, R> std::fmt::Debug for Logout<St, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logout")
            .field("location", &self.location)
            .field("config", &self.rejector.config)
            .finish_non_exhaustive()
    }
}

/// What the request asks to sign out of.
enum Step {
    /// Nothing live to revoke: clear the cookie and leave.
    Done,
    /// Refused before any store work.
    Reject(Rejection, Option<CredentialSource>),
    /// Revoke these sessions first (one, or every distinct session cookie), by their
    /// tokens: a session may be stored under any accepted key.
    Revoke(Vec<SessionToken>, CredentialSource),
}

impl<St: SessionAdmin, R: OnRejection> Logout<St, R> {
    fn decide(&self, request: &Request<()>) -> Step {
        let config = &self.rejector.config;
        let headers = request.headers();
        // Refusals here change nothing, so they need no CSRF check; and the cookie is kept.
        let (raws, source) = match sign_out_credentials(headers, &config.sources) {
            Err(rejection) => return Step::Reject(rejection, None),
            Ok(SignOut::Header(raw)) => (vec![raw], CredentialSource::Header),
            Ok(SignOut::Cookies(raws)) => {
                // Checked as for a POST whatever the method: a cross-site link must not sign
                // anyone out. A Basic `Authorization` is no proof of intent: browsers send it
                // cross-site too.
                if !config.csrf.allows(&Method::POST, headers) {
                    return Step::Reject(Rejection::CrossSiteRequest, None);
                }
                (raws, CredentialSource::Cookie)
            }
        };
        let (format, _) = self.sessions.format_and_hasher();
        let tokens: Vec<_> = raws
            .into_iter()
            // A token of the wrong shape was never a session.
            .filter_map(|raw| match format.parse_bytes(raw) {
                Ok(token) => Some(SessionToken::from_secret(token.expose_secret().to_owned())),
                // A bound credential signs out its session, even once expired.
                #[cfg(feature = "dbsc")]
                Err(_) if source == CredentialSource::Cookie => config
                    .bound
                    .as_deref()
                    .and_then(|bound| bound.open_any(raw))
                    .filter(|token| format.parse(token.expose_secret()).is_ok()),
                Err(_) => None,
            })
            .collect();
        if tokens.is_empty() {
            Step::Done
        } else {
            Step::Revoke(tokens, source)
        }
    }

    /// Revoke the session of every token, whichever key it is stored under; the first
    /// failure stops and says why.
    async fn revoke(&self, tokens: &[SessionToken], span: &tracing::Span) -> Result<(), Rejection> {
        for token in tokens {
            if let Err(error) = self.sessions.revoke(token.expose_secret()).await {
                let hash = self.sessions.hasher().hash(token.expose_secret());
                tracing::warn!(parent: span, token = %hash.short(), %error, "sign-out failed");
                return Err(Rejection::StoreUnavailable(StoreUnavailable::from(&error)));
            }
        }
        Ok(())
    }

    fn signed_out(&self) -> Response<Bytes> {
        let mut response = Response::new(Bytes::new());
        *response.status_mut() = StatusCode::SEE_OTHER;
        let headers = response.headers_mut();
        headers.insert(header::LOCATION, self.location.clone());
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(cookie) = &self.rejector.config.cookie {
            headers.insert(header::SET_COOKIE, cookie.clear_cookie());
        }
        #[cfg(feature = "dbsc")]
        if let Some(bound) = &self.rejector.config.bound {
            if bound.clears_site_data() {
                headers.insert(
                    http::HeaderName::from_static("clear-site-data"),
                    HeaderValue::from_static("\"cookies\""),
                );
            }
        }
        response
    }
}

impl<St, R, B> Service<Request<B>> for Logout<St, R>
where
    St: SessionAdmin,
    R: OnRejection,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // Only the head matters; dropping the body here keeps `B` out of the future.
        let (parts, _body) = request.into_parts();
        let request = Request::from_parts(parts, ());
        let span = tracing::debug_span!("customer_session_logout", outcome = tracing::field::Empty);
        let step = self.decide(&request);
        let mut this = self.clone();
        Box::pin(async move {
            let response = match step {
                Step::Done => this.signed_out(),
                Step::Reject(rejection, source) => {
                    this.rejector.reject(rejection, request, source, &span)
                }
                Step::Revoke(tokens, source) => match this.revoke(&tokens, &span).await {
                    Ok(()) => this.signed_out(),
                    Err(rejection) => this
                        .rejector
                        .reject(rejection, request, Some(source), &span),
                },
            };
            Ok(response.map(Full::new))
        })
    }
}
