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

/// The restart is counted everywhere, and the revocations made through the API before it
/// stay refused on every instance (the one that made them and the one that heard of them on
/// the feed), although the restarted server serves those sessions again.
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
    // One session revoked alone, one customer's by `revoke_all`, one customer deleted.
    let mut tokens = Vec::new();
    for name in ["Jane", "John", "Mary"] {
        let customer = a.upsert_customer(customer(name)).await.unwrap();
        let session = a
            .create(customer.id, CreateSession::default())
            .await
            .unwrap();
        let token = session.token.expose_secret().to_owned();
        authenticates(&b, &token).await;
        tokens.push((customer.id, token));
    }

    // The snapshot still holds the sessions; the revocations come after it.
    let _: String = redis::cmd("SAVE").query(&mut server.connection()).unwrap();
    assert!(a.revoke(&tokens[0].1).await.unwrap());
    assert_eq!(a.revoke_all(tokens[1].0).await.unwrap(), 1);
    assert!(a.delete_customer(tokens[2].0).await.unwrap());
    for (_, token) in &tokens {
        refused_within(&b, token, PROPAGATION, "a revocation on A").await;
    }
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
    // The server serves all three again (the revocations are not in its snapshot), yet
    // neither instance believes it.
    let sessions = redis::cmd("KEYS")
        .arg("*s:*")
        .query::<Vec<String>>(&mut server.connection())
        .unwrap()
        .into_iter()
        .filter(|key| {
            key.rsplit_once(':')
                .is_some_and(|(kind, hash)| kind.ends_with(":s") && hash.len() == 64)
        })
        .count();
    assert_eq!(sessions, 3, "the snapshot brought the sessions back");
    for (side, name) in [(&a, "A, which revoked them"), (&b, "B, which heard of it")] {
        for (_, token) in &tokens {
            assert!(
                side.authenticate(token, CredentialSource::Header)
                    .await
                    .is_err(),
                "{name} accepted a revoked session served again after the restart"
            );
        }
    }
    // Sessions made after the revocations are not caught by what was remembered.
    let fresh = a
        .create(tokens[1].0, CreateSession::default())
        .await
        .unwrap();
    authenticates(&b, fresh.token.expose_secret()).await;
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
