//! [`PolarWebhooks`]: the endpoint Polar delivers customer events to.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;
use tower_service::Service;
use uuid::Uuid;

use super::signature::{SignatureError, WebhookSecret, WebhookSecretError};
use crate::SessionManager;
use crate::store::SessionStore;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The customer events that can change what a cached session says.
const CUSTOMER_EVENTS: [&str; 3] = [
    "customer.updated",
    "customer.deleted",
    "customer.state_changed",
];

/// Receives Polar's webhooks (Standard Webhooks, signed with the endpoint's secret) and drops
/// the cached sessions of every customer a `customer.updated`, `customer.deleted` or
/// `customer.state_changed` event names, so their next request asks the store again.
///
/// A `tower` service; mount it on `POST`, e.g. with axum's `route_service`:
///
/// ```
/// use axum::Router;
/// use tower_customer_session::store::polar::PolarWebhooks;
/// use tower_customer_session::{MemoryStore, SessionManager};
///
/// let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
/// let webhooks = PolarWebhooks::new("polar_whs_from_the_dashboard", sessions).unwrap();
/// let app: Router = Router::new().route_service("/webhooks/polar", webhooks);
/// ```
///
/// | request | answer |
/// |---|---|
/// | verified; a customer event, applied; or any other event, ignored | `204` |
/// | not `POST` | `405` |
/// | body over the limit | `413` |
/// | a `webhook-*` header missing or malformed; a verified body that is not an event | `400` |
/// | timestamp outside the tolerance, or no matching signature | `403` |
///
/// Error bodies are `{"error": …, "detail": …}`, naming the problem and never the secret.
/// The timestamp is judged by the manager's [`Clock`](crate::Clock). A replayed delivery
/// within the tolerance does no harm: dropping cached sessions twice is the same as once.
pub struct PolarWebhooks<S> {
    inner: Arc<Config<S>>,
}

struct Config<S> {
    secret: WebhookSecret,
    sessions: SessionManager<S>,
    tolerance: Duration,
    max_body: usize,
}

impl<S> Clone for PolarWebhooks<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<S> fmt::Debug for PolarWebhooks<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolarWebhooks")
            .field("tolerance", &self.inner.tolerance)
            .field("max_body", &self.inner.max_body)
            .finish_non_exhaustive()
    }
}

impl<S: SessionStore> PolarWebhooks<S> {
    /// A receiver for the endpoint whose secret Polar's dashboard shows (see
    /// [`WebhookSecret::polar`] for how it becomes the key), invalidating in `sessions`.
    ///
    /// # Errors
    ///
    /// [`WebhookSecretError::Empty`] for an empty secret.
    pub fn new(
        secret: impl AsRef<str>,
        sessions: SessionManager<S>,
    ) -> Result<Self, WebhookSecretError> {
        Ok(Self::with_secret(
            WebhookSecret::polar(secret.as_ref())?,
            sessions,
        ))
    }

    /// A receiver checking signatures with `secret` (e.g. a Standard Webhooks `whsec_…`
    /// secret from [`WebhookSecret::standard`]).
    ///
    /// ```
    /// use tower_customer_session::store::polar::{PolarWebhooks, WebhookSecret};
    /// # use tower_customer_session::{MemoryStore, SessionManager};
    /// # let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
    /// let secret = WebhookSecret::standard("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    /// let webhooks = PolarWebhooks::with_secret(secret, sessions);
    /// # let _ = webhooks;
    /// ```
    pub fn with_secret(secret: WebhookSecret, sessions: SessionManager<S>) -> Self {
        Self {
            inner: Arc::new(Config {
                secret,
                sessions,
                tolerance: Duration::from_secs(5 * 60),
                max_body: 1024 * 1024,
            }),
        }
    }

    /// How far a delivery's `webhook-timestamp` may be from now, either way. Default: 5
    /// minutes, as the Standard Webhooks libraries Polar's SDKs use.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_customer_session::store::polar::PolarWebhooks;
    /// # use tower_customer_session::{MemoryStore, SessionManager};
    /// # let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
    /// let webhooks = PolarWebhooks::new("polar_whs_x", sessions)
    ///     .unwrap()
    ///     .tolerance(Duration::from_secs(60));
    /// # let _ = webhooks;
    /// ```
    #[must_use]
    pub fn tolerance(self, tolerance: Duration) -> Self {
        self.configure(|c| c.tolerance = tolerance)
    }

    /// Largest body read; a larger one answers `413`. Default: 1 MiB.
    ///
    /// ```
    /// # use tower_customer_session::store::polar::PolarWebhooks;
    /// # use tower_customer_session::{MemoryStore, SessionManager};
    /// # let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
    /// let webhooks = PolarWebhooks::new("polar_whs_x", sessions).unwrap().max_body(64 * 1024);
    /// # let _ = webhooks;
    /// ```
    #[must_use]
    pub fn max_body(self, bytes: usize) -> Self {
        self.configure(|c| c.max_body = bytes)
    }

    fn configure(self, change: impl FnOnce(&mut Config<S>)) -> Self {
        let mut config = match Arc::try_unwrap(self.inner) {
            Ok(config) => config,
            Err(shared) => Config {
                secret: shared.secret.clone(),
                sessions: shared.sessions.clone(),
                tolerance: shared.tolerance,
                max_body: shared.max_body,
            },
        };
        change(&mut config);
        Self {
            inner: Arc::new(config),
        }
    }
}

impl<S, B> Service<Request<B>> for PolarWebhooks<S>
where
    S: SessionStore,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let config = self.inner.clone();
        Box::pin(async move { Ok(receive(&config, request).await) })
    }
}

/// What a verified payload must hold for this receiver: the event type and, for customer
/// events, the customer's id (`data.id`; a `CustomerState`'s id is the customer's too).
#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Option<EventData>,
}

#[derive(Deserialize)]
struct EventData {
    id: Option<Uuid>,
}

async fn receive<S: SessionStore, B: Body<Error: Into<BoxError>>>(
    config: &Config<S>,
    request: Request<B>,
) -> Response<Full<Bytes>> {
    if request.method() != Method::POST {
        let mut response = problem(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "webhooks are delivered with POST",
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, config.max_body).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                "the webhook body exceeds the configured limit",
            );
        }
        Err(_) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "BodyError",
                "the webhook body could not be read",
            );
        }
    };
    let now = config.sessions.now().timestamp();
    let tolerance = i64::try_from(config.tolerance.as_secs()).unwrap_or(i64::MAX);
    if let Err(error) = config.secret.verify(&parts.headers, &body, now, tolerance) {
        tracing::warn!(%error, "Polar webhook refused");
        let status = match error {
            SignatureError::Stale | SignatureError::NoMatch => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        };
        return problem(status, "WebhookVerificationError", &error.to_string());
    }
    let Ok(event) = serde_json::from_slice::<Event>(&body) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "InvalidPayload",
            "the webhook body is not an event with a type",
        );
    };
    if !CUSTOMER_EVENTS.contains(&event.kind.as_str()) {
        tracing::debug!(event = %event.kind, "Polar webhook ignored");
        return no_content();
    }
    let Some(customer_id) = event.data.and_then(|data| data.id) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "InvalidPayload",
            "a customer event without a customer id (data.id)",
        );
    };
    config.sessions.invalidate_customer(customer_id);
    tracing::info!(event = %event.kind, %customer_id, "customer sessions dropped from the cache");
    no_content()
}

fn no_content() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

fn problem(status: StatusCode, error: &str, detail: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "error": error, "detail": detail }).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
