//! [`RequireRole`]: let a route through only for sessions acting with an allowed member role.
//!
//! Polar's portal lets every session read, but only an owner or a billing manager of a
//! team change billing details; a customer session has no member and counts as the owner
//! ([`SessionInfo::role`]). Put the guard *inside* the [`CustomerSessionLayer`](crate::CustomerSessionLayer), so it sees
//! the session the layer resolved; in axum that means adding it with `route_layer` first:
//!
//! ```
//! use axum::{Router, routing::{get, patch}};
//! use tower_customer_session::{CustomerSessionLayer, MemoryStore, RequireRole, SessionManager};
//!
//! let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
//! let billing: Router = Router::new()
//!     .route("/billing", patch(|| async { "updated" }))
//!     .route_layer(RequireRole::billing())
//!     .route_layer(CustomerSessionLayer::new(sessions));
//! # let _ = billing;
//! ```
//!
//! | request | answer |
//! |---|---|
//! | a session whose role is allowed | the inner service's |
//! | a session with another role, or a member session whose member is unknown | `403` `{"error":"NotPermitted","detail":…}`, as Polar |
//! | no session, behind an [optional](crate::CustomerSessionLayer::optional) layer | `401` `{"error":"Unauthorized",…}` with the layer's challenge |
//! | no `CustomerSessionLayer` ran at all | `500` naming the missing layer: a server bug, never a pass-through |

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::extension::{Anonymous, SessionInfo};
use crate::model::MemberRole;

/// A layer that refuses sessions acting without one of its roles; see the
/// [module docs](self).
///
/// ```
/// use tower_customer_session::RequireRole;
/// use tower_customer_session::model::MemberRole;
///
/// let owners_only = RequireRole::any_of([MemberRole::Owner]);
/// let billing = RequireRole::billing();
/// # let _ = (owners_only, billing);
/// ```
#[derive(Debug, Clone)]
pub struct RequireRole {
    rule: Arc<Rule>,
}

#[derive(Debug)]
struct Rule {
    allowed: Vec<MemberRole>,
    /// The 403 body, built once.
    refusal: Bytes,
}

impl RequireRole {
    /// Allow sessions acting with any of `roles`; others get Polar's `403` with the detail
    /// `Insufficient role for this operation`.
    pub fn any_of(roles: impl IntoIterator<Item = MemberRole>) -> Self {
        Self::with_detail(roles, "Insufficient role for this operation")
    }

    /// Owners and billing managers, and so every customer session: Polar's rule for billing
    /// features, with its refusal `Only owners and billing managers can access billing
    /// features.`
    pub fn billing() -> Self {
        Self::with_detail(
            [MemberRole::Owner, MemberRole::BillingManager],
            "Only owners and billing managers can access billing features.",
        )
    }

    fn with_detail(roles: impl IntoIterator<Item = MemberRole>, detail: &str) -> Self {
        let refusal = serde_json::json!({ "error": "NotPermitted", "detail": detail });
        Self {
            rule: Arc::new(Rule {
                allowed: roles.into_iter().collect(),
                refusal: Bytes::from(refusal.to_string()),
            }),
        }
    }
}

impl<S> Layer<S> for RequireRole {
    type Service = RequireRoleService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireRoleService {
            inner,
            rule: self.rule.clone(),
        }
    }
}

/// The service [`RequireRole`] builds.
#[derive(Debug, Clone)]
pub struct RequireRoleService<S> {
    inner: S,
    rule: Arc<Rule>,
}

impl<S> RequireRoleService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireRoleService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<Either<ResBody, Full<Bytes>>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let extensions = request.extensions();
        let refused = match extensions.get::<SessionInfo>() {
            Some(info) if info.role().is_some_and(|r| self.rule.allowed.contains(r)) => None,
            Some(_) => Some(refusal(
                StatusCode::FORBIDDEN,
                self.rule.refusal.clone(),
                None,
            )),
            None => match extensions.get::<Anonymous>() {
                Some(anonymous) => Some(refusal(
                    StatusCode::UNAUTHORIZED,
                    Bytes::from_static(br#"{"error":"Unauthorized","detail":"Unauthorized"}"#),
                    Some(anonymous.challenge.clone()),
                )),
                None => {
                    tracing::error!("RequireRole runs outside a CustomerSessionLayer");
                    Some(missing_layer())
                }
            },
        };
        let state = match refused {
            None => State::Inner {
                future: self.inner.call(request),
            },
            Some(response) => State::Refused {
                response: Some(response),
            },
        };
        ResponseFuture { state }
    }
}

fn refusal(
    status: StatusCode,
    body: Bytes,
    challenge: Option<HeaderValue>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(challenge) = challenge {
        headers.insert(WWW_AUTHENTICATE, challenge);
    }
    response
}

fn missing_layer() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(
        b"RequireRole needs a CustomerSessionLayer around it: add the role guard with route_layer before the session layer",
    )));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

pin_project! {
    /// The future of [`RequireRoleService`]: the inner service's, or a refusal.
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = Projection]
    enum State<F> {
        // The role is allowed; the inner service answers.
        Inner { #[pin] future: F },
        // Refused without calling the inner service.
        Refused { response: Option<Response<Full<Bytes>>> },
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<Either<B, Full<Bytes>>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            Projection::Inner { future } => future
                .poll(cx)
                .map(|result| result.map(|response| response.map(Either::Left))),
            Projection::Refused { response } => {
                let response = response
                    .take()
                    .expect("ResponseFuture polled after completion");
                Poll::Ready(Ok(response.map(Either::Right)))
            }
        }
    }
}
