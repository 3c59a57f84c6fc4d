//! An old primary back as a replica, on a Sentinel topology the test starts itself on free
//! ports (its own test binary, so that it never shares the 2 cores with the failover under
//! traffic in `redis_sentinel.rs`).

mod redis_support;

use std::time::{Duration, Instant};

use redis_support::sentinel::{Topology, instance};
use redis_support::{authenticates, customer};
use tower_customer_session::{CreateSession, CredentialSource};

/// A store whose command connection went unanswered while the Sentinels still named the
/// hung primary makes a new connection to that same address, opened on first use. If the
/// old primary is back as a replica by then, that connection reaches it: reads work and
/// writes get `READONLY`. A change whose durability wait travels with it in one pipeline
/// must count that as a failed call and make the store ask the Sentinels again, so that
/// writes move to the new primary with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_leave_an_old_primary_that_came_back_as_a_replica() {
    let Some(mut topology) = Topology::start() else {
        return;
    };
    let (a, _) = instance(&topology).await;
    let jane = a.upsert_customer(customer("Jane")).await.unwrap();
    let before = a.create(jane.id, CreateSession::default()).await.unwrap();
    let token = before.token.expose_secret();

    tokio::task::block_in_place(|| topology.settle(Instant::now() + Duration::from_secs(20)));
    topology.primary.pause();
    // One read goes unanswered: the Sentinels, asked again, still name the hung primary
    // (or none), and the store makes a new connection there.
    let unanswered = a.authenticate(token, CredentialSource::Header).await;
    assert!(unanswered.is_err(), "the primary is hung");
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::block_in_place(|| topology.promote_and_rejoin());

    let started = Instant::now();
    let after = loop {
        match a.create(jane.id, CreateSession::default()).await {
            Ok(session) => break session,
            Err(error) => assert!(
                started.elapsed() < Duration::from_secs(10),
                "writes still fail 10 s after the old primary rejoined: {error}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("writes moved {:?} after the rejoin", started.elapsed());
    authenticates(&a, token).await;
    authenticates(&a, after.token.expose_secret()).await;
    assert!(a.revoke(after.token.expose_secret()).await.unwrap());
}
