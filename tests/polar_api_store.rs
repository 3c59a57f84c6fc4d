//! `PolarApiStore` end to end: the portal example's router plays Polar (it issues the
//! sessions and serves every endpoint the store calls), and the example's merchant router
//! accepts those sessions through `PolarApiStore`, each on its own port.

#![cfg(feature = "polar-api")]

#[allow(dead_code)]
#[path = "../examples/portal/app.rs"]
mod app;
#[allow(dead_code)]
#[path = "../examples/portal/merchant.rs"]
mod merchant;
#[allow(dead_code)]
#[path = "../examples/portal/seed.rs"]
mod seed;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower_customer_session::store::polar::PolarApiStore;
use tower_customer_session::token::{TokenFormat, TokenKind};
use tower_customer_session::webhooks::WebhookSecret;
use tower_customer_session::{DynStore, MemoryStore, SessionManager};
use uuid::Uuid;

const ORG_TOKEN: &str = "polar_oat_pairTestOrganizationToken0123456789abcdefgh";
const WEBHOOK_SECRET: &str = "polar_whs_pairTestWebhookSecret0123456789";
const SECRET: &[u8] = b"merchant secret, 32 bytes long!!";

/// The example in its default mode, standing in for Polar.
struct Polar {
    base: String,
    demo: seed::Demo,
    http: reqwest::Client,
}

async fn polar() -> Polar {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let store = MemoryStore::new();
    let demo = seed::seed(&store);
    let sessions = SessionManager::builder(DynStore::new(store))
        .secret(b"the upstream's own secret, 32 b!")
        .build()
        .unwrap();
    let state =
        app::AppState::new(sessions, ORG_TOKEN).with_members(demo.team.id, demo.members.clone());
    let router = app::router(state);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Polar {
        base: format!("http://{addr}"),
        demo,
        http: reqwest::Client::new(),
    }
}

impl Polar {
    /// `POST /v1/customer-sessions/` as the merchant's backend does; the 201 body.
    async fn issue(&self, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/v1/customer-sessions/", self.base))
            .bearer_auth(ORG_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
    }

    async fn token(&self, body: Value) -> String {
        self.issue(body).await["token"].as_str().unwrap().to_owned()
    }

    /// `DELETE /v1/customers/{id}` with the organization token.
    async fn delete_customer(&self, id: Uuid) {
        let response = self
            .http
            .delete(format!("{}/v1/customers/{id}", self.base))
            .bearer_auth(ORG_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }

    /// `GET /v1/customers/{id}` with the organization token, as raw text.
    async fn customer_text(&self, id: Uuid) -> String {
        let response = self
            .http
            .get(format!("{}/v1/customers/{id}", self.base))
            .bearer_auth(ORG_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.unwrap()
    }
}

/// The example's merchant mode on `PolarApiStore`, pointed at `polar`.
struct Merchant {
    base: String,
    http: reqwest::Client,
}

async fn merchant(polar: &Polar, org_token: Option<&str>, cache_max_ttl: Duration) -> Merchant {
    merchant_with(polar, org_token, cache_max_ttl, &[WEBHOOK_SECRET]).await
}

/// [`merchant`] with these webhook secrets.
async fn merchant_with(
    polar: &Polar,
    org_token: Option<&str>,
    cache_max_ttl: Duration,
    webhook_secrets: &[&str],
) -> Merchant {
    let mut store = PolarApiStore::builder().base_url(&polar.base);
    if let Some(token) = org_token {
        store = store.organization_token(token);
    }
    let sessions = SessionManager::builder(store.build().unwrap())
        .secret(SECRET)
        .cache_max_ttl(cache_max_ttl)
        .store_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let router = merchant::router(sessions, webhook_secrets).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Merchant {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
    }
}

impl Merchant {
    async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    async fn me(&self, token: &str) -> (StatusCode, String) {
        let response = self.get("/api/me", token).await;
        (response.status(), response.text().await.unwrap())
    }

    /// A `customer.*` event for `customer_id`, signed as Polar signs deliveries.
    async fn webhook(&self, event: &str, customer_id: Uuid) -> StatusCode {
        self.webhook_signed(WEBHOOK_SECRET, event, customer_id)
            .await
    }

    /// [`webhook`](Self::webhook), signed with `secret`.
    async fn webhook_signed(&self, secret: &str, event: &str, customer_id: Uuid) -> StatusCode {
        let body = json!({
            "type": event,
            "timestamp": "2026-01-01T00:00:00Z",
            "data": {"id": customer_id, "external_id": null}
        })
        .to_string();
        let id = format!("msg_{}", Uuid::new_v4().simple());
        let now = chrono::Utc::now().timestamp();
        let signature = WebhookSecret::polar(secret)
            .unwrap()
            .sign(&id, now, body.as_bytes());
        self.http
            .post(format!("{}/webhooks/polar", self.base))
            .header("webhook-id", id)
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
    }
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

const LONG: Duration = Duration::from_secs(60);

#[tokio::test]
async fn an_individual_session_resolves_to_the_full_customer() {
    let polar = polar().await;
    let merchant = merchant(&polar, Some(ORG_TOKEN), LONG).await;
    let issued = polar
        .issue(json!({
            "external_customer_id": "usr_1337",
            "return_url": "https://shop.example/account"
        }))
        .await;
    let token = issued["token"].as_str().unwrap();

    let (status, text) = merchant.me(token).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let me = parse(&text);
    // Exactly what Polar's `GET /v1/customers/{id}` says, byte for byte: metadata keeps
    // Polar's order (plan, seats, ratio, beta), which is not sorted.
    let upstream = polar.customer_text(polar.demo.individual.id).await;
    assert!(
        text.contains(&upstream),
        "the merchant's customer differs from Polar's:\n{text}\n{upstream}"
    );
    assert!(text.contains(r#""metadata":{"plan":"pro","seats":5,"ratio":0.75,"beta":true}"#));
    assert_eq!(me["customer"]["external_id"], "usr_1337");
    assert_eq!(me["member"], Value::Null);
    assert_eq!(me["session"]["kind"], "customer");
    assert_eq!(me["session"]["expires_at"], issued["expires_at"]);
    assert_eq!(me["session"]["return_url"], "https://shop.example/account");

    // The session id is derived, so it is the same on every request (and every instance).
    let (_, again) = merchant.me(token).await;
    assert_eq!(parse(&again)["session"]["id"], me["session"]["id"]);
    // A customer session counts as the owner: billing is open to it.
    assert_eq!(
        merchant.get("/api/billing", token).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_team_customer_session_resolves_though_polar_has_no_user_for_it() {
    // Polar answers 422 on `/customer-session/user` for a team customer without email; the
    // store learns the customer from `/customers/me` instead.
    let polar = polar().await;
    for org_token in [Some(ORG_TOKEN), None] {
        let merchant = merchant(&polar, org_token, LONG).await;
        let token = polar
            .token(json!({"customer_id": polar.demo.team.id}))
            .await;
        assert!(token.starts_with("polar_cst_"));
        let (status, text) = merchant.me(&token).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let me = parse(&text);
        assert_eq!(me["customer"]["id"], polar.demo.team.id.to_string());
        assert_eq!(me["customer"]["type"], "team");
        assert_eq!(me["customer"]["email"], Value::Null);
        assert_eq!(me["member"], Value::Null);
    }
}

#[tokio::test]
async fn member_sessions_carry_their_member_and_role() {
    let polar = polar().await;
    let merchant = merchant(&polar, Some(ORG_TOKEN), LONG).await;
    let [owner, billing, plain] = [0, 1, 2].map(|i| polar.demo.members[i].clone());

    let token = polar
        .token(json!({"customer_id": polar.demo.team.id, "member_id": billing.id}))
        .await;
    assert!(token.starts_with("polar_mst_"), "a member session token");

    // The upstream answers `/user` for members as Polar does.
    let user: Value = polar
        .http
        .get(format!(
            "{}/v1/customer-portal/customer-session/user",
            polar.base
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        user,
        json!({
            "type": "member",
            "name": "Bill Manager",
            "email": "billing@acme.example",
            "customer_id": polar.demo.team.id,
            "member_id": billing.id,
            "role": "billing_manager"
        })
    );

    let (status, text) = merchant.me(&token).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let me = parse(&text);
    assert_eq!(me["session"]["kind"], "member");
    assert_eq!(me["customer"]["id"], polar.demo.team.id.to_string());
    assert_eq!(me["member"]["id"], billing.id.to_string());
    assert_eq!(me["member"]["role"], "billing_manager");
    assert_eq!(me["member"]["email"], "billing@acme.example");
    assert_eq!(
        me["member"]["external_id"],
        Value::Null,
        "Polar's portal does not expose it"
    );
    assert_eq!(
        merchant.get("/api/billing", &token).await.status(),
        StatusCode::OK
    );

    // The owner by external member id; a plain member is kept out of billing, as by Polar.
    let owner_token = polar
        .token(json!({"customer_id": polar.demo.team.id, "external_member_id": owner.external_id}))
        .await;
    assert_eq!(
        merchant.get("/api/billing", &owner_token).await.status(),
        StatusCode::OK
    );
    let plain_token = polar
        .token(json!({"customer_id": polar.demo.team.id, "member_id": plain.id}))
        .await;
    assert_eq!(merchant.me(&plain_token).await.0, StatusCode::OK);
    let refused = merchant.get("/api/billing", &plain_token).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        refused.json::<Value>().await.unwrap(),
        json!({
            "error": "NotPermitted",
            "detail": "Only owners and billing managers can access billing features."
        })
    );
}

#[tokio::test]
async fn forged_and_foreign_tokens_are_refused() {
    let polar = polar().await;
    let merchant = merchant(&polar, Some(ORG_TOKEN), LONG).await;
    // Well-formed (prefix, alphabet, checksum) but never issued by the upstream.
    for kind in [TokenKind::Customer, TokenKind::Member] {
        let forged = TokenFormat::polar().generate(kind).unwrap();
        let response = merchant.get("/api/me", forged.expose_secret()).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
    }
    // The organization token is no customer session.
    assert_eq!(merchant.me(ORG_TOKEN).await.0, StatusCode::UNAUTHORIZED);
    // A real token with one character changed fails its checksum before any upstream call.
    let token = polar
        .token(json!({"customer_id": polar.demo.individual.id}))
        .await;
    let mut tampered = token.clone().into_bytes();
    tampered[20] = if tampered[20] == b'a' { b'b' } else { b'a' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(merchant.me(&tampered).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(merchant.me(&token).await.0, StatusCode::OK);
}

#[tokio::test]
async fn without_an_organization_token_the_customer_comes_from_the_portal_view() {
    let polar = polar().await;
    let merchant = merchant(&polar, None, LONG).await;
    let token = polar
        .token(json!({"customer_id": polar.demo.individual.id}))
        .await;
    let (status, text) = merchant.me(&token).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let customer = &parse(&text)["customer"];
    let full = parse(&polar.customer_text(polar.demo.individual.id).await);
    for same in [
        "id",
        "created_at",
        "modified_at",
        "email",
        "email_verified",
        "type",
        "name",
        "billing_name",
        "billing_address",
        "tax_id",
        "locale",
        "default_payment_method_id",
    ] {
        assert_eq!(customer[same], full[same], "{same}");
    }
    // What `CustomerPortalCustomer` does not carry stays empty, as documented.
    assert_eq!(customer["metadata"], json!({}));
    assert_eq!(customer["external_id"], Value::Null);
    assert_eq!(customer["organization_id"], Uuid::nil().to_string());
    assert_eq!(customer["avatar_url"], Value::Null);
}

#[tokio::test]
async fn a_customer_deleted_upstream_is_refused_at_once_after_the_signed_webhook() {
    let polar = polar().await;
    let merchant = merchant(&polar, Some(ORG_TOKEN), LONG).await;
    let token = polar
        .token(json!({"customer_id": polar.demo.individual.id}))
        .await;
    assert_eq!(merchant.me(&token).await.0, StatusCode::OK);

    polar.delete_customer(polar.demo.individual.id).await;
    // Cached, and there is no revocation feed: still served until told.
    assert_eq!(merchant.me(&token).await.0, StatusCode::OK);

    assert_eq!(
        merchant
            .webhook("customer.deleted", polar.demo.individual.id)
            .await,
        StatusCode::NO_CONTENT
    );
    let (status, _) = merchant.me(&token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn while_the_webhook_secret_changes_either_signs_and_a_third_is_refused() {
    // As the example reads POLAR_WEBHOOK_SECRET=" polar_whs_old " and
    // POLAR_WEBHOOK_SECRETS=",polar_whs_new,, ".
    let secrets = merchant::webhook_secrets(Some(" polar_whs_old "), Some(",polar_whs_new,, "));
    assert_eq!(secrets, ["polar_whs_old", "polar_whs_new"]);
    assert_eq!(
        merchant::webhook_secrets(None, Some("polar_whs_new")),
        ["polar_whs_new"]
    );
    assert!(merchant::webhook_secrets(None, Some(" , ")).is_empty());

    let polar = polar().await;
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let merchant = merchant_with(&polar, Some(ORG_TOKEN), LONG, &secrets).await;
    let id = polar.demo.individual.id;
    for secret in ["polar_whs_old", "polar_whs_new"] {
        assert_eq!(
            merchant
                .webhook_signed(secret, "customer.updated", id)
                .await,
            StatusCode::NO_CONTENT,
            "{secret}"
        );
    }
    assert_eq!(
        merchant
            .webhook_signed("polar_whs_other", "customer.updated", id)
            .await,
        StatusCode::FORBIDDEN
    );

    // Applied under the second secret: a deletion shows at once.
    let token = polar.token(json!({"customer_id": id})).await;
    assert_eq!(merchant.me(&token).await.0, StatusCode::OK);
    polar.delete_customer(id).await;
    assert_eq!(merchant.me(&token).await.0, StatusCode::OK, "cached");
    assert_eq!(
        merchant
            .webhook_signed("polar_whs_new", "customer.deleted", id)
            .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(merchant.me(&token).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_customer_deleted_upstream_is_refused_within_the_cache_bound_without_webhooks() {
    let polar = polar().await;
    let bound = Duration::from_millis(800);
    let merchant = merchant(&polar, Some(ORG_TOKEN), bound).await;
    let token = polar
        .token(json!({"customer_id": polar.demo.individual.id}))
        .await;
    assert_eq!(merchant.me(&token).await.0, StatusCode::OK);

    polar.delete_customer(polar.demo.individual.id).await;
    let deleted = Instant::now();
    loop {
        let (status, _) = merchant.me(&token).await;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            deleted.elapsed() < bound + Duration::from_millis(700),
            "still served {:?} after the deletion; the bound is {bound:?}",
            deleted.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_customer_updated_upstream_shows_after_the_signed_webhook() {
    let polar = polar().await;
    let merchant = merchant(&polar, Some(ORG_TOKEN), LONG).await;
    let token = polar
        .token(json!({"customer_id": polar.demo.individual.id}))
        .await;
    assert_eq!(
        parse(&merchant.me(&token).await.1)["customer"]["billing_name"],
        "John Doe"
    );

    // The customer changes their billing name in Polar's portal.
    let response = polar
        .http
        .patch(format!("{}/v1/customer-portal/customers/me", polar.base))
        .bearer_auth(&token)
        .json(&json!({"billing_name": "Doe Holdings"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        parse(&merchant.me(&token).await.1)["customer"]["billing_name"],
        "John Doe",
        "cached until told"
    );

    assert_eq!(
        merchant
            .webhook("customer.updated", polar.demo.individual.id)
            .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        parse(&merchant.me(&token).await.1)["customer"]["billing_name"],
        "Doe Holdings"
    );
}

#[tokio::test]
async fn the_upstream_keeps_billing_changes_to_owners_and_billing_managers() {
    let polar = polar().await;
    let patch = |token: String| {
        let request = polar
            .http
            .patch(format!("{}/v1/customer-portal/customers/me", polar.base))
            .bearer_auth(token)
            .json(&json!({"billing_name": "Acme Billing"}));
        async move { request.send().await.unwrap() }
    };
    let [owner, billing, plain] = [0, 1, 2].map(|i| polar.demo.members[i].id);
    for (member, expected) in [
        (owner, StatusCode::OK),
        (billing, StatusCode::OK),
        (plain, StatusCode::FORBIDDEN),
    ] {
        let token = polar
            .token(json!({"customer_id": polar.demo.team.id, "member_id": member}))
            .await;
        assert_eq!(patch(token).await.status(), expected);
    }
    // A member of another customer is no member of this one.
    let response = polar
        .http
        .post(format!("{}/v1/customer-sessions/", polar.base))
        .bearer_auth(ORG_TOKEN)
        .json(&json!({"customer_id": polar.demo.individual.id, "member_id": owner}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["detail"][0]["loc"], json!(["body", "member_id"]));
}
