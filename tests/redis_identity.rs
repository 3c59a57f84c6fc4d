//! A Redis that restarted, failed over or lost its data is noticed by every feed when it
//! subscribes again, logged and counted (`RedisStore::identity_changes`), and handled as a
//! lost feed; a plain resubscription to the same server is not counted. On a server of the
//! test's own that keeps its snapshot file across a restart.

mod redis_support;

use std::time::Duration;

use redis_support::server::OwnRedis;
use redis_support::{PROPAGATION, authenticates, customer, manager, refused_within, wait_for_feed};
use tower_customer_session::store::FeedState;
use tower_customer_session::{CreateSession, CredentialSource, RedisStore, redis};

const RECOVERY: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_from_a_snapshot_older_than_a_revocation_is_counted_on_every_instance() {
    let Some(mut server) = OwnRedis::start() else {
        return;
    };
    let store_a = RedisStore::connect(server.url()).await.unwrap();
    let store_b = RedisStore::connect(server.url()).await.unwrap();
    let (a, b) = (manager(store_a.clone()), manager(store_b.clone()));
    for side in [&a, &b] {
        wait_for_feed(side, FeedState::Live, Duration::from_secs(5)).await;
    }
    let jane = a.upsert_customer(customer("Jane")).await.unwrap();
    let session = a.create(jane.id, CreateSession::default()).await.unwrap();
    let token = session.token.expose_secret();
    authenticates(&b, token).await;

    // The snapshot still holds the session; the revocation comes after it.
    let _: String = redis::cmd("SAVE").query(&mut server.connection()).unwrap();
    assert!(a.revoke(token).await.unwrap());
    refused_within(&b, token, PROPAGATION, "the revocation on A").await;
    assert_eq!(
        (store_a.identity_changes(), store_b.identity_changes()),
        (0, 0)
    );

    server.restart();
    for side in [&a, &b] {
        wait_for_feed(side, FeedState::Live, RECOVERY).await;
    }
    assert_eq!(
        (store_a.identity_changes(), store_b.identity_changes()),
        (1, 1)
    );
    // The server serves the session again. A, which revoked it, refuses it; B has only
    // the server to go by (README: durability).
    assert!(
        a.authenticate(token, CredentialSource::Header)
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_that_lost_the_data_set_is_counted() {
    let Some(mut server) = OwnRedis::start() else {
        return;
    };
    let store = RedisStore::connect(server.url()).await.unwrap();
    let sessions = manager(store.clone());
    wait_for_feed(&sessions, FeedState::Live, Duration::from_secs(5)).await;
    server.restart();
    wait_for_feed(&sessions, FeedState::Live, RECOVERY).await;
    assert_eq!(store.identity_changes(), 1);
    // The marker is written again: the next reconnection to this server is not a change.
    kill_subscriptions(&server);
    wait_for_feed(&sessions, FeedState::Lost, RECOVERY).await;
    wait_for_feed(&sessions, FeedState::Live, RECOVERY).await;
    assert_eq!(store.identity_changes(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribing_to_the_same_server_is_not_a_change() {
    let Some(server) = OwnRedis::start() else {
        return;
    };
    let store = RedisStore::connect(server.url()).await.unwrap();
    let sessions = manager(store.clone());
    for _ in 0..3 {
        wait_for_feed(&sessions, FeedState::Live, RECOVERY).await;
        kill_subscriptions(&server);
        wait_for_feed(&sessions, FeedState::Lost, RECOVERY).await;
    }
    wait_for_feed(&sessions, FeedState::Live, RECOVERY).await;
    assert_eq!(store.identity_changes(), 0);
}

/// Close every subscription connection on `server` (as a network cut would).
fn kill_subscriptions(server: &OwnRedis) {
    let _: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "pubsub"])
        .query(&mut server.connection())
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_refused_info_still_connects_and_subscribes() {
    let Some(server) = OwnRedis::start() else {
        return;
    };
    let _: String = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "limited",
            "on",
            ">secret-pw",
            "~*",
            "&*",
            "+@all",
            "-info",
        ])
        .query(&mut server.connection())
        .unwrap();
    let url = format!("redis://limited:secret-pw@127.0.0.1:{}", server.port());
    let store = RedisStore::connect(url).await.expect("INFO is optional");
    let sessions = manager(store.clone());
    wait_for_feed(&sessions, FeedState::Live, Duration::from_secs(5)).await;
    let jane = sessions.upsert_customer(customer("Jane")).await.unwrap();
    let session = sessions
        .create(jane.id, CreateSession::default())
        .await
        .unwrap();
    authenticates(&sessions, session.token.expose_secret()).await;
    assert_eq!(store.identity_changes(), 0);
}
