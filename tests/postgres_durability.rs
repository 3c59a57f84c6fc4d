//! A revocation that returned `Ok` is never undone by a crash: on a PostgreSQL cluster the
//! test starts itself (`initdb`, a free port, `fsync` and `synchronous_commit` on), the
//! postmaster and all its processes are killed with `SIGKILL` right after the revocations
//! return, and a store opened afresh after the restart, whose process never saw them,
//! still refuses the revoked sessions. Needs PostgreSQL's server programs
//! (`/usr/lib/postgresql/*/bin`); skipped loudly without them, failed under `CI=true`.

mod postgres_common;

use std::time::Duration;

use postgres_common::cluster::OwnPostgres;
use postgres_common::{SECRET, customer};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tower_customer_session::store::FeedState;
use tower_customer_session::store::postgres::PostgresStore;
use tower_customer_session::{CreateSession, CredentialSource, SessionManager};
use uuid::Uuid;

/// A migrated store on `url` and a manager over it, as a freshly started instance has.
async fn instance(url: &str) -> SessionManager<PostgresStore> {
    let store = PostgresStore::builder()
        .schema("durability")
        .connect(url)
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    SessionManager::builder(store)
        .secret(SECRET)
        .build()
        .expect("a secret is configured")
}

/// A new session of `customer`, authenticated once.
async fn session(manager: &SessionManager<PostgresStore>, customer: Uuid) -> String {
    let session = manager
        .create(customer, CreateSession::default())
        .await
        .unwrap();
    let token = session.token.expose_secret().to_owned();
    manager
        .authenticate(&token, CredentialSource::Header)
        .await
        .expect("valid before the crash");
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_that_returned_ok_survives_a_crash_of_the_server() {
    let Some(mut server) = OwnPostgres::init() else {
        return;
    };
    server.start().await;
    let url = server.url();

    let before = instance(&url).await;
    let jane = before.upsert_customer(customer("Jane")).await.unwrap();
    let john = before.upsert_customer(customer("John")).await.unwrap();
    let revoked = session(&before, jane.id).await;
    let kept = session(&before, jane.id).await;
    let all_of_john = [
        session(&before, john.id).await,
        session(&before, john.id).await,
    ];

    // The sessions are made durable whatever the server's settings, so that only the
    // revocations are at stake in the crash.
    let mut admin = PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("CHECKPOINT")
        .execute(&mut admin)
        .await
        .unwrap();
    drop(admin);

    assert!(before.revoke(&revoked).await.unwrap(), "revoked");
    assert_eq!(before.revoke_all(john.id).await.unwrap(), 2);
    // Nothing is waited for: the server dies as soon as the revocations return.
    server.crash();
    drop(before);

    server.start().await;
    // Another process in effect: its own pool, feed and cache, and none of the first
    // instance's memory of what it revoked. Only the database can refuse these now.
    let after = instance(&url).await;
    for token in [&revoked, &all_of_john[0], &all_of_john[1]] {
        assert!(
            after
                .authenticate(token, CredentialSource::Header)
                .await
                .is_err(),
            "a revocation that returned Ok was undone by the crash"
        );
    }
    after
        .authenticate(&kept, CredentialSource::Header)
        .await
        .expect("the session not revoked survived the crash too");
    // The feed of the new instance is up on the restarted server.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while after.feed_state() != FeedState::Live {
        assert!(tokio::time::Instant::now() < deadline, "feed not live");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
