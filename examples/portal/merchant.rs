//! Merchant mode (`SESSION_STORE=polar`, feature `polar-api`): the example becomes a
//! merchant's own API that accepts the customer sessions Polar issues, resolved through
//! `PolarApiStore`. Point it at Polar, or at this example in its default mode, which
//! serves every endpoint the store calls:
//!
//! ```text
//! PORT=3000 ORG_TOKEN=polar_oat_… cargo run --example portal
//! SESSION_STORE=polar PORT=4000 POLAR_API_URL=http://127.0.0.1:3000 POLAR_ORG_TOKEN=polar_oat_… \
//!     cargo run --features polar-api --example portal
//! curl -s http://127.0.0.1:4000/api/me -H "Authorization: Bearer $DEMO_TOKEN"
//! ```
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `POLAR_API_URL` | `https://api.polar.sh` | Polar's API, the sandbox's, or any Polar-compatible server |
//! | `POLAR_ORG_TOKEN` | none | organization access token (`customers:read`): full customers with metadata and external id |
//! | `POLAR_WEBHOOK_SECRET` | none | the webhook endpoint's secret; mounts `POST /webhooks/polar` |
//! | `POLAR_WEBHOOK_SECRETS` | none | more secrets accepted besides it while the secret is changed at Polar, comma-separated (spaces around an entry and empty entries ignored); a delivery signed with any of them is accepted, and this alone also mounts the receiver |
//! | `SESSION_SECRET` | random | HMAC key of cache entries and derived session ids, at least 32 bytes; set it so every instance agrees |
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/me` | `{customer, member, session}` of the presented Polar session |
//! | `GET /api/billing` | the billing details, for owners and billing managers only (`403` otherwise) |
//! | `POST /webhooks/polar` | Polar's customer and member events drop the customer's cached sessions |

use std::error::Error;
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Value, json};
use tower_customer_session::model::Member;
use tower_customer_session::store::polar::PolarApiStore;
use tower_customer_session::token::{MIN_SECRET_LEN, TokenKind};
use tower_customer_session::webhooks::{PolarWebhooks, WebhookSecret, WebhookSecretError};
use tower_customer_session::{
    Customer, CustomerSessionLayer, RequireRole, SessionInfo, SessionManager,
};

/// The merchant API on `sessions`, with the webhook receiver if any secret is given (a
/// delivery signed with any of them is accepted).
pub fn router(
    sessions: SessionManager<PolarApiStore>,
    webhook_secrets: &[&str],
) -> Result<Router, WebhookSecretError> {
    let billing = Router::new()
        .route("/api/billing", get(billing))
        .route_layer(RequireRole::billing());
    let api = Router::new()
        .route("/api/me", get(me))
        .merge(billing)
        .route_layer(CustomerSessionLayer::new(sessions.clone()));
    let Some((first, others)) = webhook_secrets.split_first() else {
        return Ok(api);
    };
    let others = others
        .iter()
        .map(|secret| WebhookSecret::polar(secret))
        .collect::<Result<Vec<_>, _>>()?;
    let webhooks = PolarWebhooks::new(first, sessions)?.accept_secrets(others);
    Ok(api.route_service("/webhooks/polar", webhooks))
}

/// The webhook secrets `POLAR_WEBHOOK_SECRET` (`single`) and `POLAR_WEBHOOK_SECRETS`
/// (`list`, comma-separated) give, in that order: entries trimmed, empty ones left out.
pub fn webhook_secrets(single: Option<&str>, list: Option<&str>) -> Vec<String> {
    single
        .into_iter()
        .chain(list.into_iter().flat_map(|list| list.split(',')))
        .map(str::trim)
        .filter(|secret| !secret.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The merchant API as the environment configures it (see the module docs).
pub fn from_env() -> Result<Router, Box<dyn Error>> {
    let mut store = PolarApiStore::builder();
    if let Some(url) = env("POLAR_API_URL") {
        store = store.base_url(url);
    }
    match env("POLAR_ORG_TOKEN") {
        Some(token) => store = store.organization_token(token),
        None => tracing::info!(
            "POLAR_ORG_TOKEN not set: customers come without metadata, external id and organization"
        ),
    }
    let store = store.build()?;
    let secret = match env("SESSION_SECRET") {
        Some(secret) if secret.len() < MIN_SECRET_LEN => {
            return Err(format!(
                "SESSION_SECRET is {} bytes long; it must be at least {MIN_SECRET_LEN}",
                secret.len()
            )
            .into());
        }
        Some(secret) => secret.into_bytes(),
        None => {
            tracing::info!(
                "SESSION_SECRET not set: session ids differ between instances and restarts"
            );
            let mut key = vec![0; MIN_SECRET_LEN];
            getrandom::fill(&mut key).expect("the OS random number generator is available");
            key
        }
    };
    tracing::info!(api = store.base_url(), "accepting sessions issued by Polar");
    let sessions = SessionManager::builder(store)
        .secret(secret)
        // A miss is two rounds of requests to Polar.
        .store_timeout(Duration::from_secs(3))
        .build()?;
    let webhook_secrets = webhook_secrets(
        env("POLAR_WEBHOOK_SECRET").as_deref(),
        env("POLAR_WEBHOOK_SECRETS").as_deref(),
    );
    if webhook_secrets.is_empty() {
        tracing::info!(
            "POLAR_WEBHOOK_SECRET not set: changes at Polar show within the cache's 60 s"
        );
    }
    let webhook_secrets: Vec<&str> = webhook_secrets.iter().map(String::as_str).collect();
    Ok(router(sessions, &webhook_secrets)?)
}

/// The body of `GET /api/me`. Typed rather than `json!`, so the customer is written as it
/// came (its metadata in Polar's order).
#[derive(Serialize)]
struct Me {
    customer: Customer,
    member: Option<Member>,
    session: Value,
}

/// Who is calling: the customer, the member for a member session, and the session.
async fn me(customer: Customer, session: SessionInfo) -> Json<Me> {
    let kind = match session.kind {
        TokenKind::Customer => "customer",
        TokenKind::Member => "member",
    };
    Json(Me {
        customer,
        member: session.member.as_deref().cloned(),
        session: json!({
            "id": session.id,
            "kind": kind,
            "expires_at": session.expires_at,
            "return_url": session.return_url.as_deref(),
        }),
    })
}

/// Billing details; [`RequireRole::billing`] keeps plain members out.
async fn billing(customer: Customer, session: SessionInfo) -> Json<Value> {
    Json(json!({
        "customer_id": customer.id,
        "role": session.role(),
        "billing_name": customer.billing_name,
        "billing_address": customer.billing_address,
        "tax_id": customer.tax_id,
    }))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}
