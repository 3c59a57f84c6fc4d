//! A failover under Redis Sentinel, on a topology the test starts itself on free ports (one
//! primary, one replica, three sentinels) with two `SessionManager`s connected through the
//! sentinels and revocations confirmed by a replica (`WAIT 1`). Under traffic the primary
//! is killed:
//!
//! - until the new primary is up, requests are refused with 503, never 401 for a valid
//!   session, and a session revoked before is never accepted;
//! - both instances then recover by themselves, the switch counted as a server change;
//! - the revocation made before the failover still holds on both, and a session whose
//!   creation a replica confirmed still authenticates;
//! - with no replica left, a creation is an error, not `Ok`;
//! - a revocation after it reaches the other instance within 100 ms.
//!
//! `redis_sentinel_rejoin.rs` has the old primary come back as a replica.

mod redis_support;

use std::time::{Duration, Instant};

use redis_support::sentinel::{Topology, instance};
use redis_support::traffic::{Traffic, recovered};
use redis_support::{PROPAGATION, authenticates, customer, refused_within, wait_for_feed};
use tower_customer_session::CreateSession;
use tower_customer_session::CredentialSource;
use tower_customer_session::store::FeedState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_is_followed_by_both_instances_and_keeps_confirmed_revocations() {
    let Some(mut topology) = Topology::start() else {
        return;
    };
    let (a, store_a) = instance(&topology).await;
    let (b, store_b) = instance(&topology).await;
    for side in [&a, &b] {
        wait_for_feed(side, FeedState::Live, Duration::from_secs(5)).await;
    }
    let jane = a.upsert_customer(customer("Jane")).await.unwrap();
    let kept = a.create(jane.id, CreateSession::default()).await.unwrap();
    let kept = kept.token.expose_secret().to_owned();
    let revoked = a.create(jane.id, CreateSession::default()).await.unwrap();
    let revoked = revoked.token.expose_secret().to_owned();
    let later = a.create(jane.id, CreateSession::default()).await.unwrap();
    let later = later.token.expose_secret().to_owned();
    authenticates(&b, &kept).await;
    authenticates(&b, &revoked).await;
    // Confirmed by the replica before `Ok`.
    assert!(a.revoke(&revoked).await.unwrap());
    refused_within(
        &b,
        &revoked,
        PROPAGATION,
        "the revocation before the failover",
    )
    .await;

    let traffic = Traffic::start(&[a.clone(), b.clone()], &kept, &revoked);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The primary the Sentinels name now (they may have failed over by themselves).
    tokio::task::block_in_place(|| topology.settle(Instant::now() + Duration::from_secs(20)));
    let killed = Instant::now();
    topology.primary.kill();
    // Each feed notices (within its silence bound): until then a cached session and a
    // feed still called live would pass for a recovery.
    for side in [&a, &b] {
        wait_for_feed(side, FeedState::Lost, Duration::from_secs(2)).await;
    }
    // Both instances serve the valid session again, with no restart.
    recovered(
        &[&a, &b],
        &kept,
        killed,
        Duration::from_secs(30),
        "the primary's death",
    )
    .await;
    eprintln!(
        "recovered {:?} after the primary was killed",
        killed.elapsed()
    );
    let seen = traffic.stop().await;
    // How many requests fell in the outage depends on scheduling (a fast failover may leave
    // none); what matters is that none of them was a 401 or a revoked session served.
    eprintln!(
        "{} requests answered 503 during the failover",
        seen.unavailable
    );
    assert_eq!(seen.wrong, 0, "no 401, no revoked session");

    // The replica that acknowledged the revocation is the primary now.
    for side in [&a, &b] {
        assert!(
            side.authenticate(&revoked, CredentialSource::Header)
                .await
                .is_err()
        );
    }
    assert!(
        store_a.identity_changes() >= 1 && store_b.identity_changes() >= 1,
        "server changes seen: {} and {}",
        store_a.identity_changes(),
        store_b.identity_changes()
    );

    // A creation confirmed before the failover is on the new primary; one after it has
    // no replica left to confirm it, and is not `Ok`.
    authenticates(&b, &later).await;
    let unconfirmed = a.create(jane.id, CreateSession::default()).await;
    assert!(unconfirmed.is_err(), "no replica to confirm a creation");

    // A revocation on the new primary reaches the other instance within 100 ms: made
    // and announced, though no replica is left to confirm it.
    let unconfirmed = a
        .revoke(&later)
        .await
        .expect_err("no replica to confirm it");
    assert!(
        unconfirmed.to_string().contains("not confirmed durable"),
        "{unconfirmed}"
    );
    refused_within(&b, &later, PROPAGATION, "the revocation after the failover").await;
}
