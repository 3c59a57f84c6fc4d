//! The axum extractors: a missing layer is a loud 500, anonymous requests behind an optional
//! layer are `None`, and a required `Customer` behind an optional layer is a 401.

mod common;

use axum::Router;
use axum::routing::get;
use common::{Harness, anonymous, bearer, send};
use http::StatusCode;
use tower_customer_session::{Customer, CustomerSessionLayer, SessionInfo};

async fn me(customer: Customer) -> String {
    customer.email.clone().unwrap_or_default()
}

async fn maybe(customer: Option<Customer>, info: Option<SessionInfo>) -> String {
    match (customer, info) {
        (Some(customer), Some(info)) => {
            format!("{} {}", customer.email.as_deref().unwrap(), info.id)
        }
        (None, None) => "anonymous".to_owned(),
        _ => "inconsistent".to_owned(),
    }
}

async fn info(info: SessionInfo) -> String {
    info.id.to_string()
}

#[tokio::test]
async fn a_forgotten_layer_is_a_500_that_names_it() {
    let h = Harness::new();
    let (token, _) = h.issue(&h.customer("Jane")).await;
    let app = Router::new()
        .route("/me", get(me))
        .route("/maybe", get(maybe))
        .route("/info", get(info));

    for path in ["/me", "/maybe", "/info"] {
        for with_token in [false, true] {
            let mut request = if with_token {
                bearer(&token)
            } else {
                anonymous()
            };
            *request.uri_mut() = path.parse().unwrap();
            let reply = send(app.clone(), request).await;
            assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
            assert!(
                reply.text().contains("CustomerSessionLayer"),
                "{}",
                reply.text()
            );
        }
    }
    assert_eq!(h.store.loads(), 0);
}

#[tokio::test]
async fn optional_customer_behind_an_optional_layer() {
    let h = Harness::new();
    let (token, session) = h.issue(&h.customer("Jane")).await;
    let app = Router::new()
        .route("/me", get(maybe))
        .route_layer(CustomerSessionLayer::new(h.sessions.clone()).optional());

    let reply = send(app.clone(), anonymous()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "anonymous");

    let reply = send(app, bearer(&token)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), format!("jane@example.com {}", session.id));
}

#[tokio::test]
async fn a_required_customer_behind_an_optional_layer_is_401_without_credentials() {
    let h = Harness::new();
    let (token, _) = h.issue(&h.customer("Jane")).await;
    let app = Router::new().route("/me", get(me)).route_layer(
        CustomerSessionLayer::new(h.sessions.clone())
            .optional()
            .realm("shop")
            .unwrap(),
    );

    let reply = send(app.clone(), anonymous()).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"shop\"")
    );
    assert_eq!(reply.json()["error"], "Unauthorized");

    let reply = send(app, bearer(&token)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "jane@example.com");
}

#[tokio::test]
async fn a_required_layer_feeds_the_plain_extractors() {
    let h = Harness::new();
    let (token, session) = h.issue(&h.customer("Jane")).await;
    let app = Router::new()
        .route("/me", get(info))
        .route_layer(CustomerSessionLayer::new(h.sessions.clone()));

    let reply = send(app.clone(), bearer(&token)).await;
    assert_eq!(reply.text(), session.id.to_string());
    let reply = send(app, anonymous()).await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "the layer answers before the handler"
    );
}
