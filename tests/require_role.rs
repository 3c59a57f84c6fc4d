//! `RequireRole` and members on `SessionInfo`, over a real socket: Polar's rule that only
//! owners and billing managers reach billing (a customer session counting as the owner),
//! and the guard failing closed without a session.

use axum::Router;
use axum::routing::get;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower_customer_session::model::{CustomerData, Member, MemberRole};
use tower_customer_session::token::TokenKind;
use tower_customer_session::{
    CreateSession, CustomerSessionLayer, MemoryStore, RequireRole, SessionInfo, SessionManager,
};
use uuid::Uuid;

struct App {
    base: String,
    sessions: SessionManager<MemoryStore>,
    customer: Uuid,
}

/// What the handler saw: the role and member id, if any.
async fn whoami(info: SessionInfo) -> String {
    json!({
        "role": info.role(),
        "member": info.member.as_ref().map(|m| m.id),
    })
    .to_string()
}

async fn app() -> App {
    let store = MemoryStore::new();
    let customer = store.insert_customer(CustomerData::new(chrono::Utc::now()));
    let sessions = SessionManager::builder(store).build().unwrap();
    let layer = || CustomerSessionLayer::new(sessions.clone());
    let router = Router::new()
        .merge(
            Router::new()
                .route("/billing", get(whoami))
                .route_layer(RequireRole::billing())
                .route_layer(layer()),
        )
        .merge(
            Router::new()
                .route("/owners", get(whoami))
                .route_layer(RequireRole::any_of([MemberRole::Owner]))
                .route_layer(layer()),
        )
        .merge(
            Router::new()
                .route("/optional", get(whoami))
                .route_layer(RequireRole::billing())
                .route_layer(layer().optional()),
        )
        // The guard with no session layer at all: a server bug.
        .merge(
            Router::new()
                .route("/forgotten", get(|| async { "the handler ran" }))
                .route_layer(RequireRole::billing()),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    App {
        base: format!("http://{addr}"),
        sessions,
        customer: customer.id,
    }
}

impl App {
    async fn token(&self, options: CreateSession) -> String {
        let session = self.sessions.create(self.customer, options).await.unwrap();
        session.token.expose_secret().to_owned()
    }

    async fn member_token(&self, role: MemberRole) -> (String, Uuid) {
        let member = Member::new(Uuid::new_v4(), role);
        let id = member.id;
        (
            self.token(CreateSession::default().member(member)).await,
            id,
        )
    }

    async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = reqwest::Client::new().get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }
}

#[tokio::test]
async fn billing_is_for_owners_billing_managers_and_customer_sessions() {
    let app = app().await;
    let customer = app.token(CreateSession::default()).await;
    let response = app.get("/billing", Some(&customer)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"role": "owner", "member": null}),
        "a customer session has no member and counts as the owner"
    );

    for role in [MemberRole::Owner, MemberRole::BillingManager] {
        let (token, id) = app.member_token(role.clone()).await;
        assert!(token.starts_with("polar_mst_"));
        let response = app.get("/billing", Some(&token)).await;
        assert_eq!(response.status(), StatusCode::OK, "{role}");
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({"role": role.as_str(), "member": id})
        );
    }

    for role in [MemberRole::Member, MemberRole::Other("auditor".into())] {
        let (token, _) = app.member_token(role.clone()).await;
        let response = app.get("/billing", Some(&token)).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{role}");
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({
                "error": "NotPermitted",
                "detail": "Only owners and billing managers can access billing features."
            })
        );
    }

    // A member session whose member nobody recorded has no role: refused.
    let unknown = app
        .token(CreateSession::default().kind(TokenKind::Member))
        .await;
    assert_eq!(
        app.get("/billing", Some(&unknown)).await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_narrower_rule_refuses_billing_managers() {
    let app = app().await;
    let (owner, _) = app.member_token(MemberRole::Owner).await;
    let (billing, _) = app.member_token(MemberRole::BillingManager).await;
    assert_eq!(
        app.get("/owners", Some(&owner)).await.status(),
        StatusCode::OK
    );
    let refused = app.get("/owners", Some(&billing)).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["detail"],
        "Insufficient role for this operation"
    );
}

#[tokio::test]
async fn without_a_session_the_guard_fails_closed() {
    let app = app().await;
    // An optional layer lets anonymous requests through; the guard does not.
    let anonymous = app.get("/optional", None).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(
        anonymous.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer realm=")
    );
    assert_eq!(
        anonymous.json::<Value>().await.unwrap(),
        json!({"error": "Unauthorized", "detail": "Unauthorized"})
    );
    let customer = app.token(CreateSession::default()).await;
    assert_eq!(
        app.get("/optional", Some(&customer)).await.status(),
        StatusCode::OK
    );

    // No session layer ran: a 500 that names the mistake, never the handler.
    let forgotten = app.get("/forgotten", Some(&customer)).await;
    assert_eq!(forgotten.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        forgotten
            .text()
            .await
            .unwrap()
            .contains("CustomerSessionLayer")
    );
}
