//! Member events end to end over `PolarApiStore`: an upstream plays Polar for one member
//! session of a team customer, and the test changes that member there (demotes it, renames
//! it, deletes it) as Polar's API or dashboard would. The merchant is the example's merchant
//! mode: `GET /api/billing` behind `RequireRole::billing()`, `POST /webhooks/polar`.

#![cfg(feature = "polar-api")]

#[allow(dead_code)]
#[path = "../examples/portal/merchant.rs"]
mod merchant;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower_customer_session::SessionManager;
use tower_customer_session::store::polar::PolarApiStore;
use tower_customer_session::token::{TokenFormat, TokenKind};
use tower_customer_session::webhooks::WebhookSecret;
use uuid::{Uuid, uuid};

const TEAM_ID: Uuid = uuid!("5f0c6a8e-2b0e-4a77-9a39-3f1d2c4b5e61");
const TEAM: &str = include_str!("fixtures/polar/customer_team.json");
const MEMBER_ID: Uuid = uuid!("0b8f3a52-6c1d-4e9a-8f27-5d3c9e1a7b40");
const ORG_TOKEN: &str = "polar_oat_memberEventsOrganizationToken0123456789abc";
const WEBHOOK_SECRET: &str = "polar_whs_memberEventsWebhookSecret0123456789";

/// The member as Polar holds it; `None` once deleted.
#[derive(Clone)]
struct Upstream {
    member: Arc<Mutex<Option<(&'static str, &'static str)>>>,
    token: Arc<str>,
    /// Requests with the member's token, so a test can tell a cache hit from a reload.
    portal_calls: Arc<AtomicUsize>,
}

impl Upstream {
    fn set_member(&self, member: Option<(&'static str, &'static str)>) {
        *self.member.lock().unwrap() = member;
    }

    fn portal_calls(&self) -> usize {
        self.portal_calls.load(Ordering::SeqCst)
    }
}

/// Polar's answers for the member session, from the member as it is now: a deleted member's
/// session is refused as Polar's session lookup refuses it.
async fn answer(State(upstream): State<Upstream>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let bearer = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    if path == format!("/v1/customers/{TEAM_ID}") && bearer == ORG_TOKEN {
        return ([("content-type", "application/json")], TEAM).into_response();
    }
    if !path.starts_with("/v1/customer-portal/") {
        return StatusCode::NOT_FOUND.into_response();
    }
    upstream.portal_calls.fetch_add(1, Ordering::SeqCst);
    let member = *upstream.member.lock().unwrap();
    let Some((role, name)) = member.filter(|_| bearer == *upstream.token) else {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_token", "error_description": "invalid"})),
        )
            .into_response();
    };
    let expires_at = (chrono::Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339();
    let body = match path.as_str() {
        "/v1/customer-portal/customer-session/introspect" => {
            json!({"expires_at": expires_at, "return_url": null})
        }
        "/v1/customer-portal/customer-session/user" => json!({
            "type": "member", "name": name, "email": "bill@acme.example",
            "customer_id": TEAM_ID, "member_id": MEMBER_ID, "role": role
        }),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    axum::Json(body).into_response()
}

async fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// The upstream with a billing manager, the merchant in front of it, and the member's token.
struct Pair {
    upstream: Upstream,
    merchant: String,
    token: String,
    http: reqwest::Client,
}

async fn pair() -> Pair {
    let token = TokenFormat::polar().generate(TokenKind::Member).unwrap();
    let upstream = Upstream {
        member: Arc::new(Mutex::new(Some(("billing_manager", "Bill Manager")))),
        token: token.expose_secret().into(),
        portal_calls: Arc::default(),
    };
    let api = serve(Router::new().fallback(answer).with_state(upstream.clone())).await;
    let store = PolarApiStore::builder()
        .base_url(&api)
        .organization_token(ORG_TOKEN)
        .build()
        .unwrap();
    let sessions = SessionManager::builder(store)
        .secret(b"member events test secret, 32 b!")
        // Long enough that only the webhook can explain a reload.
        .cache_max_ttl(Duration::from_secs(600))
        .store_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let merchant = serve(merchant::router(sessions, &[WEBHOOK_SECRET]).unwrap()).await;
    Pair {
        upstream,
        merchant,
        token: token.expose_secret().to_owned(),
        http: reqwest::Client::new(),
    }
}

impl Pair {
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.merchant))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A `member.*` event as Polar sends it, signed and delivered.
    async fn webhook(&self, kind: &str, role: &str) -> StatusCode {
        let body = json!({
            "type": kind,
            "timestamp": "2026-03-02T10:15:01Z",
            "data": {
                "id": MEMBER_ID,
                "customer_id": TEAM_ID,
                "created_at": "2026-01-01T00:00:00Z",
                "modified_at": "2026-03-02T10:15:00Z",
                "email": "bill@acme.example",
                "name": "Bill",
                "external_id": null,
                "role": role
            }
        })
        .to_string();
        let id = format!("msg_{}", Uuid::new_v4().simple());
        let now = chrono::Utc::now().timestamp();
        let signature =
            WebhookSecret::polar(WEBHOOK_SECRET)
                .unwrap()
                .sign(&id, now, body.as_bytes());
        self.http
            .post(format!("{}/webhooks/polar", self.merchant))
            .header("webhook-id", id)
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
    }
}

#[tokio::test]
async fn a_member_demoted_at_polar_loses_billing_on_the_next_request_after_member_updated() {
    let pair = pair().await;
    assert_eq!(pair.get("/api/billing").await.0, StatusCode::OK);
    let (status, me) = pair.get("/api/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["member"]["role"], "billing_manager");
    assert_eq!(me["customer"]["id"], TEAM_ID.to_string());

    pair.upstream.set_member(Some(("member", "Bill")));
    let calls = pair.upstream.portal_calls();
    assert_eq!(
        pair.get("/api/billing").await.0,
        StatusCode::OK,
        "cached until told"
    );
    assert_eq!(pair.upstream.portal_calls(), calls, "served from the cache");

    assert_eq!(
        pair.webhook("member.updated", "member").await,
        StatusCode::NO_CONTENT
    );
    let (status, refused) = pair.get("/api/billing").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(refused["error"], "NotPermitted");
    let (status, me) = pair.get("/api/me").await;
    assert_eq!(status, StatusCode::OK, "still a member, with the new role");
    assert_eq!(me["member"]["role"], "member");
    assert_eq!(me["member"]["name"], "Bill");
}

#[tokio::test]
async fn a_member_removed_at_polar_is_refused_on_the_next_request_after_member_deleted() {
    let pair = pair().await;
    assert_eq!(pair.get("/api/me").await.0, StatusCode::OK);

    pair.upstream.set_member(None);
    assert_eq!(
        pair.get("/api/me").await.0,
        StatusCode::OK,
        "cached until told"
    );

    assert_eq!(
        pair.webhook("member.deleted", "member").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(pair.get("/api/me").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(pair.get("/api/billing").await.0, StatusCode::UNAUTHORIZED);
}
