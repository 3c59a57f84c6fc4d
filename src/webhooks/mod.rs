//! Polar's webhooks: [`PolarWebhooks`], the endpoint Polar delivers customer and member
//! events to, which keeps each instance's cache fresh for sessions Polar issued
//! ([`PolarApiStore`](crate::store::polar::PolarApiStore)). Feature `polar-api`.

mod event;
mod replay;
mod signature;

pub use signature::{SignatureError, WebhookSecret, WebhookSecretError};

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
use tower_service::Service;

use crate::SessionManager;
use crate::store::SessionStore;
use event::Event;
use replay::Replays;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Receives Polar's webhooks (Standard Webhooks, signed with the endpoint's secret) and, for the
/// customer and member events below, drops this instance's cached sessions of the customer
/// concerned, so that customer's next request is resolved by the store again.
///
/// A `tower` service; mount it on `POST`, e.g. with axum's `route_service`:
///
/// ```
/// use axum::Router;
/// use tower_customer_session::webhooks::PolarWebhooks;
/// use tower_customer_session::{MemoryStore, SessionManager};
///
/// let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
/// let webhooks = PolarWebhooks::new("polar_whs_from_the_dashboard", sessions).unwrap();
/// let app: Router = Router::new().route_service("/webhooks/polar", webhooks);
/// ```
///
/// # Events
///
/// Subscribe the endpoint (format "raw") to these five. Of a payload the receiver reads `type`
/// and the ids in this table, nothing else, so every other field may be anything:
///
/// | `type` | `data` is Polar's | ids read | effect |
/// |---|---|---|---|
/// | `customer.updated` | `Customer` | `id`: the customer | drops the customer's cached sessions, its members' included |
/// | `customer.state_changed` | `CustomerState` | `id`: the customer | the same |
/// | `customer.deleted` | `Customer` | `id`: the customer | the same |
/// | `member.updated` | `Member` | `customer_id`: the member's customer; `id`: the member, not the customer (logged) | drops every cached session of the member's customer |
/// | `member.deleted` | `Member` | the same | the same |
///
/// The cache finds sessions by customer, not by member: a member event drops the sessions of
/// every member of that customer and the customer's own, each reloaded on its next request.
///
/// Every other type is acknowledged with `204` without looking at its `data`. None of them
/// changes what a cached session holds or whether Polar accepts it: `customer.created`,
/// `member.created` and `customer_seat.assigned` / `claimed` grant nothing to a session that
/// exists; `customer_seat.revoked` takes back the seat's benefits, not the member or its role
/// (Polar's session check does not look at seats); subscription, order and benefit events
/// that change a customer's state are followed by `customer.state_changed`.
///
/// The payloads as Polar sends them, the ids read marked, each delivered to a receiver here:
///
/// ```
/// # use http_body_util::Full;
/// # use tower::ServiceExt;
/// # use tower_customer_session::webhooks::{PolarWebhooks, WebhookSecret};
/// # use tower_customer_session::{MemoryStore, SessionManager};
/// use serde_json::json;
///
/// let member = json!({
///     "id": "0b8f3a52-6c1d-4e9a-8f27-5d3c9e1a7b40",          // the member
///     "customer_id": "5f0c6a8e-2b0e-4a77-9a39-3f1d2c4b5e61", // its team: the sessions dropped
///     "created_at": "2026-01-01T00:00:00Z",
///     "modified_at": "2026-03-02T10:15:00Z",
///     "email": "bill@acme.example",
///     "name": "Bill Manager",
///     "external_id": "usr_42",
///     "role": "member"                                       // demoted from "billing_manager"
/// });
/// let customer = json!({
///     "id": "5f0c6a8e-2b0e-4a77-9a39-3f1d2c4b5e61",          // the sessions dropped
///     "created_at": "2026-01-01T00:00:00Z",
///     "modified_at": "2026-03-02T10:15:00Z",
///     "metadata": {},
///     "external_id": null,
///     "email": null,
///     "email_verified": false,
///     "type": "team",
///     "name": "Acme Inc.",
///     "billing_name": "Acme Billing",
///     "billing_address": {"country": "FR", "line1": null, "line2": null,
///                         "postal_code": null, "city": null, "state": null},
///     "tax_id": ["FR61954506077", "eu_vat"],
///     "locale": null,
///     "organization_id": "1dbfc517-0bbf-4301-9ba8-555ca42b9737",
///     "default_payment_method_id": null,
///     "deleted_at": null,
///     "first_user_event_at": null,
///     "avatar_url": null
/// });
/// // A `CustomerState` is the customer and what it holds.
/// let mut state = customer.clone();
/// state["active_subscriptions"] = json!([]);
/// state["granted_benefits"] = json!([]);
/// state["active_meters"] = json!([]);
/// let mut deleted = customer.clone();
/// deleted["deleted_at"] = json!("2026-03-02T10:15:00Z");
///
/// let events = [
///     json!({"type": "member.updated", "timestamp": "2026-03-02T10:15:01Z", "data": member}),
///     json!({"type": "member.deleted", "timestamp": "2026-03-02T10:15:01Z", "data": member}),
///     json!({"type": "customer.updated", "timestamp": "2026-03-02T10:15:01Z", "data": customer}),
///     json!({"type": "customer.state_changed", "timestamp": "2026-03-02T10:15:01Z", "data": state}),
///     json!({"type": "customer.deleted", "timestamp": "2026-03-02T10:15:01Z", "data": deleted}),
///     // Not handled: acknowledged, whatever `data` holds.
///     json!({"type": "future.event", "timestamp": "2026-03-02T10:15:01Z", "data": {"id": "evt_1"}}),
/// ];
/// # let secret = WebhookSecret::polar("polar_whs_doc").unwrap();
/// # let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
/// # let webhooks = PolarWebhooks::with_secret(secret.clone(), sessions.clone());
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// for event in events {
/// #   let body = event.to_string();
/// #   let now = sessions.now().timestamp();
/// #   let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
/// #   let request = http::Request::post("/webhooks/polar")
/// #       .header("webhook-id", &id)
/// #       .header("webhook-timestamp", now)
/// #       .header("webhook-signature", secret.sign(&id, now, body.as_bytes()))
/// #       .body(Full::new(bytes::Bytes::from(body)))
/// #       .unwrap();
/// #   let response = webhooks.clone().oneshot(request).await.unwrap();
///     // Signed and posted as Polar does:
///     assert_eq!(response.status(), 204);
/// }
/// # });
/// ```
///
/// # What the next request sees
///
/// The receiver changes this instance's cache only; what the next request sees is the store's
/// answer:
///
/// * [`PolarApiStore`](super::PolarApiStore): no request that reaches this instance once the
///   event is applied (before the `204` is sent) is answered from an entry cached before it:
///   the first with each of the customer's tokens asks Polar again. A demoted member gets its
///   new role and name, so [`RequireRole`](crate::RequireRole) judges the new role; Polar
///   refuses the sessions of a removed member or a deleted customer, so the layer answers
///   `401`. A load already under way when the event arrived may still hand Polar's earlier
///   answer to the requests that were waiting on it; that answer is not cached.
/// * A store of your own (memory, Redis, PostgreSQL): it answers with what it holds. A member
///   session keeps the [`Member`](crate::model::Member) given to
///   [`create`](crate::SessionManager::create), role included, so `member.updated` and
///   `member.deleted` change nothing such a store says: revoke those sessions yourself
///   ([`revoke`](crate::SessionManager::revoke)). A customer event shows once your store has
///   the change ([`upsert_customer`](crate::SessionManager::upsert_customer) and
///   [`delete_customer`](crate::SessionManager::delete_customer) drop the cache themselves).
/// * Other instances: a delivery reaches one process. The others keep their entries up to
///   `cache_max_ttl`, unless each has its own endpoint registered at Polar.
///
/// # Answers
///
/// | request | answer |
/// |---|---|
/// | verified; one of the events above, applied, or a replay of one (see [Replays](#replays)); or any other type, whatever its `data` | `204` |
/// | not `POST` | `405` |
/// | body over the limit | `413` |
/// | a `webhook-*` header missing or malformed; a verified body that is not a JSON object with a string `type`; one of the events above without the ids it needs | `400` |
/// | timestamp outside the tolerance, or no matching signature | `403` |
///
/// An event of a handled type whose ids cannot be read is refused, not acknowledged: a `2xx`
/// would tell Polar the change was applied when nothing was dropped. Polar's payloads always
/// carry these ids, so this means a payload this version cannot read; the `400` (and a warning
/// logged here) keeps it visible in the endpoint's delivery log at Polar, which retries it.
/// Meanwhile Polar holds the endpoint's later deliveries behind it (and may disable the
/// endpoint after repeated failures), so until it is resolved cached sessions live up to
/// `cache_max_ttl`, as without webhooks.
///
/// Error bodies are `{"error": …, "detail": …}`, naming the problem and never the secret.
/// The timestamp is judged by the manager's [`Clock`](crate::Clock).
///
/// # Replays
///
/// Once a delivery of one of the events above is applied, its `webhook-id` is remembered
/// for as long as a copy of it can still pass the timestamp check: the
/// [`tolerance`](Self::tolerance) past the later of its `webhook-timestamp` and its arrival,
/// extended the same way by each copy that arrives meanwhile. The same id arriving again in
/// that time, whatever its timestamp (a captured delivery replayed, or Polar sending it
/// again after our answer was lost), is answered `204` and not applied.
/// Deliveries refused (`4xx`) and events of other types are not remembered: a refusal is
/// answered the same way again, and acknowledging another type costs nothing.
///
/// The memory holds at most [`replay_memory`](Self::replay_memory) ids (10,000 by
/// default). When it is full the id recorded first is forgotten to make room; no delivery is
/// ever refused or delayed for want of room, and a replay of a forgotten id is applied
/// again. That is harmless: applying an event drops cached sessions and nothing else, so a
/// second time costs each of the customer's sessions one more store load, as the first did.
/// The bound only limits what the memory can cost, since only a holder of the secret (Polar)
/// can sign new ids. Each instance remembers its own deliveries.
pub struct PolarWebhooks<S> {
    inner: Arc<Config<S>>,
}

struct Config<S> {
    /// The endpoint's secret first, then any other accepted during a change of secret.
    secrets: Vec<WebhookSecret>,
    sessions: SessionManager<S>,
    tolerance: Duration,
    max_body: usize,
    replays: Replays,
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
            .field("secrets", &self.inner.secrets.len())
            .field("tolerance", &self.inner.tolerance)
            .field("max_body", &self.inner.max_body)
            .field("replay_memory", &self.inner.replays.capacity())
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
    /// use tower_customer_session::webhooks::{PolarWebhooks, WebhookSecret};
    /// # use tower_customer_session::{MemoryStore, SessionManager};
    /// # let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
    /// let secret = WebhookSecret::standard("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    /// let webhooks = PolarWebhooks::with_secret(secret, sessions);
    /// # let _ = webhooks;
    /// ```
    pub fn with_secret(secret: WebhookSecret, sessions: SessionManager<S>) -> Self {
        Self {
            inner: Arc::new(Config {
                secrets: vec![secret],
                sessions,
                tolerance: Duration::from_secs(5 * 60),
                max_body: 1024 * 1024,
                replays: Replays::new(10_000),
            }),
        }
    }

    /// Other secrets a delivery may be signed with besides the endpoint's, for replacing
    /// that secret at Polar. Default: none.
    ///
    /// Polar signs with one secret at a time and switches to a new one at once. To change
    /// it without refusing a delivery: deploy with the new secret accepted here; replace the
    /// secret at Polar; once deliveries carry the new one, deploy with it alone. A delivery
    /// matching any of the secrets is accepted; one matching none is refused with `403`.
    ///
    /// ```
    /// use tower_customer_session::webhooks::{PolarWebhooks, WebhookSecret};
    /// # use tower_customer_session::{MemoryStore, SessionManager};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sessions = SessionManager::builder(MemoryStore::new()).build()?;
    /// let webhooks = PolarWebhooks::new("polar_whs_current", sessions)?;
    /// assert!(format!("{webhooks:?}").contains("secrets: 1"));
    /// let webhooks = webhooks.accept_secrets([WebhookSecret::polar("polar_whs_next")?]);
    /// assert!(format!("{webhooks:?}").contains("secrets: 2"));
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn accept_secrets(self, secrets: impl IntoIterator<Item = WebhookSecret>) -> Self {
        let secrets: Vec<WebhookSecret> = secrets.into_iter().collect();
        self.configure(|c| {
            c.secrets.truncate(1);
            c.secrets.extend(secrets);
        })
    }

    /// How many delivery ids are remembered to recognise a replay (see
    /// [Replays](Self#replays)); `0` remembers none, so every replay within the tolerance is
    /// applied again. An id takes about 100 bytes plus its length (36 for Polar's, at most
    /// 256). Default: 10,000.
    ///
    /// ```
    /// # use tower_customer_session::webhooks::PolarWebhooks;
    /// # use tower_customer_session::{MemoryStore, SessionManager};
    /// # let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
    /// let webhooks = PolarWebhooks::new("polar_whs_x", sessions).unwrap();
    /// assert!(format!("{webhooks:?}").contains("replay_memory: 10000"));
    /// let webhooks = webhooks.replay_memory(50_000);
    /// # let _ = webhooks;
    /// ```
    #[must_use]
    pub fn replay_memory(self, ids: usize) -> Self {
        self.configure(|c| c.replays = Replays::new(ids))
    }

    /// How far a delivery's `webhook-timestamp` may be from now, either way. Default: 5
    /// minutes, as the Standard Webhooks libraries Polar's SDKs use.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_customer_session::webhooks::PolarWebhooks;
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
    /// # use tower_customer_session::webhooks::PolarWebhooks;
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
                secrets: shared.secrets.clone(),
                sessions: shared.sessions.clone(),
                tolerance: shared.tolerance,
                max_body: shared.max_body,
                replays: Replays::new(shared.replays.capacity()),
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
    let delivery =
        match signature::verify_any(&config.secrets, &parts.headers, &body, now, tolerance) {
            Ok(delivery) => delivery,
            Err(error) => {
                tracing::warn!(%error, "Polar webhook refused");
                let status = match error {
                    SignatureError::Stale | SignatureError::NoMatch => StatusCode::FORBIDDEN,
                    _ => StatusCode::BAD_REQUEST,
                };
                return problem(status, "WebhookVerificationError", &error.to_string());
            }
        };
    let (kind, customer_id, member_id) = match event::read(&body) {
        Ok(Event::Customer {
            kind,
            customer_id,
            member_id,
        }) => (kind, customer_id, member_id),
        Ok(Event::Ignored(kind)) => {
            tracing::debug!(event = %kind, "Polar webhook ignored");
            return no_content();
        }
        Err(detail) => {
            tracing::warn!(detail, "Polar webhook verified but unreadable");
            return problem(StatusCode::BAD_REQUEST, "InvalidPayload", detail);
        }
    };
    // Remembered while a copy of this delivery could still pass the timestamp check.
    let until = delivery.sent.max(now).saturating_add(tolerance);
    if !config.replays.first(delivery.id, until, now) {
        tracing::info!(
            event = kind,
            webhook_id = delivery.id,
            "Polar webhook replayed: acknowledged, not applied again"
        );
        return no_content();
    }
    config.sessions.invalidate_customer(customer_id);
    tracing::info!(
        event = kind,
        %customer_id,
        member_id = member_id.map(tracing::field::display),
        "customer sessions dropped from the cache"
    );
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
