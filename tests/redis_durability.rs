//! `RedisDurability`, on servers the tests start themselves: a primary and a replica
//! (`--replicaof`) for `WAIT`; the local server (Redis 7.0) for the refusal of `WAITAOF`.
//!
//! - with a live replica, `create`, `upsert_customer`, `revoke`, `revoke_all` and
//!   `delete_customer` return `Ok` and the replica already holds the change when they do;
//! - with the replica hung (SIGSTOP), each returns an error within the wait's timeout
//!   (plus the command timeout), never `Ok`; with no durability asked, the same calls
//!   return `Ok`;
//! - `RedisDurability::Fsync` is refused at connect by a server older than 7.2.

mod redis_support;

use std::time::{Duration, Instant};

use redis_support::server::OwnRedis;
use redis_support::{SECRET, customer};
use tower_customer_session::store::RedisDurability;
use tower_customer_session::{CreateSession, RedisStore, SessionManager, redis};

const WAIT: Duration = Duration::from_millis(200);

async fn manager(url: &str, durability: RedisDurability) -> SessionManager<RedisStore> {
    let store = RedisStore::builder(url)
        .durability(durability)
        .connect()
        .await
        .expect("connect");
    SessionManager::builder(store)
        .secret(SECRET)
        .store_timeout(Duration::from_secs(2))
        .build()
        .expect("a secret is configured")
}

fn keys(server: &OwnRedis, pattern: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(pattern)
        .query(&mut server.connection())
        .expect("KEYS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_return_ok_only_once_a_replica_holds_them() {
    let Some(primary) = OwnRedis::start() else {
        return;
    };
    let replica = primary.replica();
    let sessions = manager(&primary.url(), RedisDurability::replicas(1, WAIT)).await;
    let jane = sessions.upsert_customer(customer("Jane")).await.unwrap();
    let john = sessions.upsert_customer(customer("John")).await.unwrap();
    let mut tokens = Vec::new();
    for _ in 0..4 {
        let session = sessions
            .create(jane.id, CreateSession::default())
            .await
            .unwrap();
        tokens.push(session.token.expose_secret().to_owned());
    }
    sessions
        .create(john.id, CreateSession::default())
        .await
        .unwrap();
    // Confirmed: when `create` returns, the replica holds the session (the first call
    // may wait out a fresh replica's first sync, within the wait's timeout or not at all).
    assert_eq!(keys(&replica, "tcs:s:*").len(), 5);
    assert_eq!(keys(&replica, "tcs:c:*").len(), 2);

    // Confirmed: when `revoke` returns, the replica no longer has the session.
    assert!(sessions.revoke(&tokens[0]).await.unwrap());
    assert_eq!(keys(&replica, "tcs:s:*").len(), 4);

    // The replica hangs: nothing is confirmed, and nothing says `Ok`.
    replica.pause();
    let started = Instant::now();
    let revoked = sessions.revoke(&tokens[1]).await;
    assert!(revoked.is_err(), "unconfirmed revoke answered {revoked:?}");
    let all = sessions.revoke_all(jane.id).await;
    assert!(all.is_err(), "unconfirmed revoke_all answered {all:?}");
    let deleted = sessions.delete_customer(john.id).await;
    assert!(
        deleted.is_err(),
        "unconfirmed delete_customer answered {deleted:?}"
    );
    // Three waits of 200 ms, each within its deadline (command timeout 500 ms + the wait).
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let error = sessions.revoke(&tokens[2]).await.unwrap_err().to_string();
    assert!(!error.contains(&tokens[2]), "the error names no token");
    // A session or a customer that a failover could discard is not `Ok` either.
    let created = sessions.create(jane.id, CreateSession::default()).await;
    assert!(created.is_err(), "unconfirmed create answered Ok");
    let upserted = sessions.upsert_customer(customer("Ann")).await;
    assert!(
        upserted.is_err(),
        "unconfirmed upsert_customer answered {upserted:?}"
    );

    // The same calls without durability return `Ok` on the same hung replica: the error
    // above is the wait's.
    let plain = manager(&primary.url(), RedisDurability::Primary).await;
    let bob = plain.upsert_customer(customer("Bob")).await.unwrap();
    let session = plain
        .create(bob.id, CreateSession::default())
        .await
        .unwrap();
    assert!(plain.revoke(session.token.expose_secret()).await.unwrap());
    assert!(plain.delete_customer(bob.id).await.unwrap());

    // Back: confirmed again.
    replica.resume();
    let session = sessions
        .create(jane.id, CreateSession::default())
        .await
        .unwrap();
    assert!(
        sessions
            .revoke(session.token.expose_secret())
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_more_replicas_than_there_are_is_an_error() {
    let Some(primary) = OwnRedis::start() else {
        return;
    };
    let _replica = primary.replica();
    // A wait longer than the command timeout is the wait's to end, not the timeout's.
    let store = RedisStore::builder(primary.url())
        .command_timeout(Duration::from_millis(100))
        .durability(RedisDurability::replicas(2, Duration::from_millis(300)))
        .connect()
        .await
        .unwrap();
    let sessions = SessionManager::builder(store)
        .secret(SECRET)
        .build()
        .unwrap();
    let error = sessions
        .upsert_customer(customer("Jane"))
        .await
        .expect_err("one replica of the two asked")
        .to_string();
    assert!(error.contains("not confirmed durable"), "{error}");
    // Made on the primary all the same, like every unconfirmed change.
    let plain = manager(&primary.url(), RedisDurability::Primary).await;
    let jane = plain.upsert_customer(customer("Jane")).await.unwrap();
    let session = plain
        .create(jane.id, CreateSession::default())
        .await
        .unwrap();
    let created = sessions.create(jane.id, CreateSession::default()).await;
    assert!(created.is_err(), "one replica of the two asked: not Ok");
    let revoked = sessions.revoke(session.token.expose_secret()).await;
    let error = revoked
        .expect_err("one replica of the two asked")
        .to_string();
    assert!(error.contains("not confirmed durable"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waitaof_is_refused_at_connect_by_a_server_older_than_7_2() {
    let Some(server) = OwnRedis::start_with(&["--appendonly", "yes"]) else {
        return;
    };
    let version: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut server.connection())
        .expect("INFO");
    if !version.contains("redis_version:6.") && !version.contains("redis_version:7.0.") {
        eprintln!("SKIPPED: this redis-server has WAITAOF; the refusal needs one older than 7.2");
        return;
    }
    let connected = RedisStore::builder(server.url())
        .durability(RedisDurability::fsync(0, WAIT))
        .connect()
        .await;
    let error = connected.expect_err("WAITAOF needs 7.2").to_string();
    assert!(
        error.contains("7.2") && error.contains("WAITAOF"),
        "{error}"
    );
}
