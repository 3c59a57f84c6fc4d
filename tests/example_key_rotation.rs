//! The `portal` example in the middle of a session key rotation, on the shared Redis as the
//! scaling-out guide runs it: `SESSION_SECRET=B` with `SESSION_ACCEPTED_SECRETS` naming A. A session
//! stored under A (made here, as an instance still on A would) authenticates; one under a key
//! the example was not given is refused; the example's own new session is stored under B.

mod common;
mod redis_support;

use common::example_process::ExampleProcess;
use reqwest::StatusCode;
use tower_customer_session::{CreateSession, CredentialSource, RedisStore, SessionManager};
use uuid::Uuid;

const KEY_A: &str = "example rotation key A: 32 bytes or more";
const KEY_B: &str = "example rotation key B: 32 bytes or more";
const KEY_C: &str = "example rotation key C: 32 bytes or more";
const ME: &str = "/v1/customer-portal/customers/me";

/// A manager on the example's Redis keys (the default prefix), hashing with `key` only.
async fn instance(url: &str, key: &str) -> SessionManager<RedisStore> {
    let store = RedisStore::connect(url).await.unwrap();
    SessionManager::builder(store).secret(key).build().unwrap()
}

#[tokio::test]
async fn the_portal_accepts_sessions_under_the_keys_session_accepted_secrets_lists() {
    let Some(url) = redis_support::shared_url() else {
        return;
    };
    // Empty entries and spaces around an entry are ignored.
    let accepted = format!(", {KEY_A} ,,");
    let example = ExampleProcess::start_with_features(
        &["redis"],
        &[
            ("SESSION_STORE", "redis"),
            ("REDIS_URL", &url),
            ("SESSION_SECRET", KEY_B),
            ("SESSION_ACCEPTED_SECRETS", &accepted),
        ],
    )
    .await;
    let base = format!("http://{}", example.value("LISTEN"));
    let customer: Uuid = example.value("DEMO_CUSTOMER_ID").parse().unwrap();
    let under_a = instance(&url, KEY_A).await;
    let under_b = instance(&url, KEY_B).await;
    let under_c = instance(&url, KEY_C).await;
    let mut tokens = Vec::new();
    for manager in [&under_a, &under_c] {
        let session = manager
            .create(customer, CreateSession::default())
            .await
            .unwrap();
        tokens.push(session.token.expose_secret().to_owned());
    }
    let http = reqwest::Client::new();
    let status = |token: String| {
        let request = http.get(format!("{base}{ME}")).bearer_auth(token).send();
        async move { request.await.unwrap().status() }
    };

    assert_eq!(status(tokens[0].clone()).await, StatusCode::OK, "under A");
    assert_eq!(
        status(tokens[1].clone()).await,
        StatusCode::UNAUTHORIZED,
        "under C"
    );
    let demo = example.value("DEMO_TOKEN");
    assert_eq!(status(demo.clone()).await, StatusCode::OK, "its own");
    // Its own session went under B, not under the accepted A.
    let found = |manager: &SessionManager<RedisStore>| {
        let manager = manager.clone();
        let demo = demo.clone();
        async move {
            manager
                .authenticate(&demo, CredentialSource::Header)
                .await
                .is_ok()
        }
    };
    assert!(found(&under_b).await, "stored under B");
    assert!(!found(&under_a).await, "not under A");

    under_a.revoke(&tokens[0]).await.unwrap();
    under_c.revoke(&tokens[1]).await.unwrap();
    under_b.revoke(&demo).await.unwrap();
}
