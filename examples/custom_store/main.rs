//! A store of your own, shared by several instances and with an invalidation feed: the
//! store of the "Writing a store" guide (`store.rs`), run as two instances of one
//! application.
//!
//! ```text
//! cargo run --example custom_store
//! ```
//!
//! A session created on one instance authenticates on the other; revoked on the first,
//! the second refuses it as soon as the feed delivers the change; while the server is
//! down, both answer that the store is unavailable (a `503`), never that the session is
//! unknown.

// Some of the store serves only its test (`kit.rs`, run by `tests/custom_store_example.rs`).
#[allow(dead_code)]
mod store;

use std::error::Error;
use std::time::Duration;

use store::{MapStore, Server};
use tower_customer_session::model::CustomerData;
use tower_customer_session::store::FeedState;
use tower_customer_session::{CreateSession, CredentialSource, Rejection, SessionManager};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let server = Server::new();
    // The same secret on every instance: a shared store refuses to build without one.
    let secret = b"example secret, the same on every instance";
    let instance = || {
        SessionManager::builder(MapStore::connect(&server))
            .secret(secret)
            .build()
    };
    let (a, b) = (instance()?, instance()?);
    while a.feed_state() != FeedState::Live || b.feed_state() != FeedState::Live {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let mut jane = CustomerData::new(tower_customer_session::chrono::Utc::now());
    jane.name = Some("Jane".to_owned());
    let jane = a.upsert_customer(jane).await?;
    let session = a.create(jane.id, CreateSession::default()).await?;
    let token = session.token.expose_secret();
    let (customer, _) = b.authenticate(token, CredentialSource::Header).await?;
    println!("created on a, authenticated on b: {:?}", customer.name);

    a.revoke(token).await?;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let refused = b.authenticate(token, CredentialSource::Header).await;
    println!(
        "revoked on a, b answers: {:?}",
        refused.map(|_| "still valid")
    );

    let other = a.create(jane.id, CreateSession::default()).await?;
    server.set_up(false);
    let down = b
        .authenticate(other.token.expose_secret(), CredentialSource::Header)
        .await;
    let unavailable = matches!(down, Err(Rejection::StoreUnavailable(_)));
    println!("server down, b answers a store error (503): {unavailable}");
    server.set_up(true);
    Ok(())
}
