//! [`DeviceBoundEndpoint`]: DBSC registration and refresh.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use p256::ecdsa::VerifyingKey;
use tower_service::Service;

use super::Bound;
use super::challenge::{ChallengeError, Purpose};
use super::jwt::Proof;
use crate::extension::CredentialSource;
use crate::extract::{Sources, extract};
use crate::layer::LayerConfig;
use crate::manager::SessionManager;
use crate::reject::Rejection;
use crate::store::SessionStore;
use crate::token::SessionToken;

const SESSION_ID: HeaderName = HeaderName::from_static("sec-secure-session-id");
const RESPONSE: HeaderName = HeaderName::from_static("secure-session-response");
const CHALLENGE: HeaderName = HeaderName::from_static("secure-session-challenge");
/// Longest `Sec-Secure-Session-Id` examined (ours are about 150 characters).
const MAX_SESSION_ID_LEN: usize = 512;

/// The DBSC endpoint, from [`CustomerSessionLayer::device_bound_endpoint`]: mount it on a
/// `POST` route at the configured path, by itself (it reads the cookie and proofs on its
/// own). A request with `Sec-Secure-Session-Id` is a refresh, any other a registration.
/// Its answers are listed in the [module docs](super#guarantees-exactly).
///
/// No CSRF check: a page of another site cannot send `Secure-Session-Response` without a
/// CORS preflight, and a registration only ever binds the cookie's own session.
///
/// [`CustomerSessionLayer::device_bound_endpoint`]: crate::CustomerSessionLayer::device_bound_endpoint
pub struct DeviceBoundEndpoint<St> {
    sessions: SessionManager<St>,
    bound: Arc<Bound>,
    config: Arc<LayerConfig>,
}

impl<St> DeviceBoundEndpoint<St> {
    pub(super) fn new(
        sessions: SessionManager<St>,
        bound: Arc<Bound>,
        config: Arc<LayerConfig>,
    ) -> Self {
        Self {
            sessions,
            bound,
            config,
        }
    }
}

impl<St> Clone for DeviceBoundEndpoint<St> {
    fn clone(&self) -> Self {
        Self {
            sessions: self.sessions.clone(),
            bound: self.bound.clone(),
            config: self.config.clone(),
        }
    }
}

impl<St> std::fmt::Debug for DeviceBoundEndpoint<St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceBoundEndpoint")
            .field("settings", &self.bound.settings)
            .finish_non_exhaustive()
    }
}

/// The one value of `name`: `Ok(None)` if absent, `Err` if repeated or too long.
fn single<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
    max: usize,
) -> Result<Option<&'h [u8]>, ()> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(value), None) if value.len() <= max => Ok(Some(value.as_bytes())),
        _ => Err(()),
    }
}

fn response(status: StatusCode) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response<Bytes> {
    let mut response = response(status);
    *response.body_mut() = Bytes::from(body.to_string());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn refused(status: StatusCode, why: &'static str) -> Response<Bytes> {
    tracing::debug!(reason = why, "device bound session request refused");
    response(status)
}

impl<St: SessionStore> DeviceBoundEndpoint<St> {
    fn now(&self) -> i64 {
        self.sessions.now().timestamp()
    }

    /// The session's description, as registration and refresh return it.
    fn session_json(&self, session_id: &str) -> serde_json::Value {
        let settings = &self.bound.settings;
        serde_json::json!({
            "session_identifier": session_id,
            "refresh_url": &*settings.path,
            "scope": {
                "origin": &*settings.origin,
                "include_site": false,
                "scope_specification": [],
            },
            "credentials": [{
                "type": "cookie",
                "name": self.bound.cookie.name(),
                "attributes": self.bound.cookie.attributes(),
            }],
        })
    }

    /// `200` with a fresh bound credential for `token`'s live session. A refresh keeps the
    /// browser's `session_id` (a new one would end its session); a registration makes one.
    async fn issue(
        &self,
        token: &SessionToken,
        key: &VerifyingKey,
        session_id: Option<&str>,
    ) -> Response<Bytes> {
        let (_, info) = match self
            .sessions
            .authenticate(token.expose_secret(), CredentialSource::Cookie)
            .await
        {
            Ok(found) => found,
            Err(rejection) => return self.session_gone(rejection),
        };
        let now = self.now();
        let lifetime = i64::try_from(self.bound.settings.lifetime.as_secs()).unwrap_or(i64::MAX);
        let max_age = lifetime.min(info.expires_at.timestamp() - now);
        let sealed = (
            match session_id {
                Some(id) => Some(id.to_owned()),
                None => self
                    .bound
                    .sealer
                    .seal_session_id(key, token.expose_secret()),
            },
            self.bound
                .sealer
                .seal_credential(token.expose_secret(), now.saturating_add(max_age)),
        );
        let (Some(session_id), Some(credential)) = sealed else {
            tracing::warn!("the OS random number generator failed: no bound credential issued");
            return self.unavailable();
        };
        let mut response = json(StatusCode::OK, &self.session_json(&session_id));
        response.headers_mut().insert(
            header::SET_COOKIE,
            self.bound.cookie.set_cookie(&credential, max_age),
        );
        tracing::debug!(token = %info.token_hash.short(), "bound credential issued");
        response
    }

    fn unavailable(&self) -> Response<Bytes> {
        let mut response = response(StatusCode::SERVICE_UNAVAILABLE);
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(self.config.retry_after_secs),
        );
        response
    }

    /// The session behind a registration or refresh cannot be used.
    fn session_gone(&self, rejection: Rejection) -> Response<Bytes> {
        match rejection {
            Rejection::StoreUnavailable(_) => self.unavailable(),
            other => {
                tracing::debug!(reason = other.label(), "device bound session ended");
                let mut response = json(StatusCode::OK, &serde_json::json!({ "continue": false }));
                response
                    .headers_mut()
                    .insert(header::SET_COOKIE, self.bound.cookie.clear_cookie());
                response
            }
        }
    }

    async fn register(&self, headers: HeaderMap) -> Response<Bytes> {
        let proof = match single(&headers, &RESPONSE, super::jwt::MAX_PROOF_LEN) {
            Ok(Some(raw)) => raw,
            _ => return refused(StatusCode::BAD_REQUEST, "registration without one proof"),
        };
        let proof = match Proof::parse(proof) {
            Ok(proof) => proof,
            Err(error) => return refused(StatusCode::BAD_REQUEST, error.label()),
        };
        let Some(key) = proof.jwk else {
            return refused(StatusCode::BAD_REQUEST, "registration proof without a key");
        };
        if let Err(error) = proof.verify(&key) {
            return refused(StatusCode::FORBIDDEN, error.label());
        }
        // The session token itself must come with the registration: a bound credential
        // cannot bind another key, or a stolen one could be made renewable.
        let sources = Sources {
            bearer: false,
            cookie: self.config.sources.cookie.clone(),
        };
        let raw = match extract(&headers, &sources) {
            Ok(Some(credential)) => credential.raw,
            Ok(None) => return refused(StatusCode::UNAUTHORIZED, "registration without a cookie"),
            Err(_) => return refused(StatusCode::BAD_REQUEST, "malformed session cookie"),
        };
        let (format, hasher) = self.sessions.format_and_hasher();
        let Ok(token) = format.parse_bytes(raw) else {
            return refused(
                StatusCode::UNAUTHORIZED,
                "registration without the session token",
            );
        };
        let hash = hasher.hash(token.expose_secret());
        let token = SessionToken::from_secret(token.expose_secret().to_owned());
        match self.bound.challenges.accept(
            &proof.jti,
            Purpose::Registration,
            hash.as_bytes(),
            self.now(),
        ) {
            Ok(()) => {}
            Err(ChallengeError::Busy) => return self.unavailable(),
            Err(_) => return refused(StatusCode::FORBIDDEN, "registration challenge refused"),
        }
        self.issue(&token, &key, None).await
    }

    /// `403` with a fresh challenge for the DBSC session `session_id`.
    fn challenge(&self, session_id: &[u8]) -> Response<Bytes> {
        let mut response = response(StatusCode::FORBIDDEN);
        let issued = self
            .bound
            .challenges
            .issue(Purpose::Refresh, session_id, self.now());
        // The session id was opened, so it is base64url: header-safe.
        let value = issued.and_then(|challenge| {
            let id = std::str::from_utf8(session_id).ok()?;
            HeaderValue::from_str(&format!("\"{challenge}\";id=\"{id}\"")).ok()
        });
        if let Some(value) = value {
            response.headers_mut().insert(CHALLENGE, value);
        }
        response
    }

    async fn refresh(&self, headers: HeaderMap) -> Response<Bytes> {
        let raw_id = match single(&headers, &SESSION_ID, MAX_SESSION_ID_LEN) {
            Ok(Some(raw)) => raw,
            _ => return refused(StatusCode::BAD_REQUEST, "malformed session id"),
        };
        let Some(session) = self.bound.sealer.open_session_id(raw_id) else {
            return refused(StatusCode::BAD_REQUEST, "unknown session id");
        };
        // An ended session ends the browser's, proof or not.
        if let Err(rejection) = self
            .sessions
            .authenticate(session.token.expose_secret(), CredentialSource::Cookie)
            .await
        {
            return self.session_gone(rejection);
        }
        let proof = match single(&headers, &RESPONSE, super::jwt::MAX_PROOF_LEN) {
            Ok(None) => return self.challenge(raw_id),
            Ok(Some(raw)) => raw,
            Err(()) => return refused(StatusCode::BAD_REQUEST, "malformed proof"),
        };
        let proof = match Proof::parse(proof) {
            Ok(proof) => proof,
            Err(error) => return refused(StatusCode::BAD_REQUEST, error.label()),
        };
        // Only the registered key counts; a key in the proof is ignored.
        if let Err(error) = proof.verify(&session.key) {
            return refused(StatusCode::FORBIDDEN, error.label());
        }
        match self
            .bound
            .challenges
            .accept(&proof.jti, Purpose::Refresh, raw_id, self.now())
        {
            // It opened, so it is the base64url text we sealed.
            Ok(()) => {
                let id = std::str::from_utf8(raw_id).unwrap_or_default();
                self.issue(&session.token, &session.key, Some(id)).await
            }
            Err(ChallengeError::Busy) => self.unavailable(),
            Err(_) => {
                tracing::debug!("refresh challenge refused: a new one is sent");
                self.challenge(raw_id)
            }
        }
    }
}

impl<St, B> Service<Request<B>> for DeviceBoundEndpoint<St>
where
    St: SessionStore,
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
        let this = self.clone();
        Box::pin(async move {
            let response = if parts.method != Method::POST {
                let mut response = response(StatusCode::METHOD_NOT_ALLOWED);
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST"));
                response
            } else if parts.headers.contains_key(SESSION_ID) {
                this.refresh(parts.headers).await
            } else {
                this.register(parts.headers).await
            };
            Ok(response.map(Full::new))
        })
    }
}
