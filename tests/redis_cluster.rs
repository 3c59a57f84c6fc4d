//! `RedisStore` on a Redis Cluster of the test's own (three primaries on free ports, see
//! `redis_support::cluster`):
//!
//! - the store test kit passes;
//! - two instances share sessions, and a revocation on one (one session, all of a
//!   customer's, the customer deleted) is refused on the other within 100 ms;
//! - `revoke_all` holds for a session whose cleanup cannot reach it;
//! - killing (SIGKILL) the primary that serves a session's slot answers 503 for it, never
//!   401, and never accepts a revoked session; restarted on its port and directory, both
//!   instances serve it again, with no restart of theirs.

mod redis_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redis_support::cluster::Cluster;
use redis_support::{PROPAGATION, SECRET, authenticates, customer, refused_within, wait_for_feed};
use reqwest::StatusCode;
use tower_customer_session::store::FeedState;
use tower_customer_session::store::testing::Kit;
use tower_customer_session::token::TokenHasher;
use tower_customer_session::{
    CreateSession, CredentialSource, RedisStore, RedisStoreBuilder, SessionManager,
};

type Manager = SessionManager<RedisStore>;

fn builder(cluster: &Cluster, prefix: &str) -> RedisStoreBuilder {
    RedisStore::cluster(cluster.urls())
        .key_prefix(prefix)
        .command_timeout(Duration::from_millis(250))
}

fn new_prefix() -> String {
    format!("tcs-test:{}:", uuid::Uuid::new_v4().simple())
}

async fn instance(cluster: &Cluster, prefix: &str) -> (Manager, RedisStore) {
    let store = builder(cluster, prefix)
        .connect()
        .await
        .expect("connect to the cluster");
    let sessions = SessionManager::builder(store.clone())
        .secret(SECRET)
        .store_timeout(Duration::from_secs(1))
        .build()
        .expect("a secret is configured");
    (sessions, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_runs_on_a_cluster() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let report = Kit::new(|| async {
        builder(&cluster, &new_prefix())
            .connect()
            .await
            .expect("connect to the cluster")
    })
    .run()
    .await;
    eprintln!("{report}");
    report.assert_passed();
}
