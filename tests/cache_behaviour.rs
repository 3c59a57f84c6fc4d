//! The cache in front of the store: hits, negative hits, coalesced misses, expiry on hits,
//! isolation of negative entries, and cancellation.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use common::{App, Harness, Recorder, Reply, bearer, send, unknown_token};
use http::StatusCode;
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use tower_customer_session::{CustomerSessionLayer, InvalidToken, Rejection, StoreUnavailable};

fn app_for(h: &Harness) -> App {
    common::app(
        CustomerSessionLayer::new(h.sessions.clone()),
        &Recorder::default(),
    )
}

/// Send `n` requests for `token` at once (all released by one barrier).
async fn burst(app: &App, token: &str, n: usize) -> Vec<Reply> {
    let barrier = Arc::new(Barrier::new(n));
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let (app, barrier, token) = (app.clone(), barrier.clone(), token.to_owned());
        tasks.spawn(async move {
            barrier.wait().await;
            send(app, bearer(&token)).await
        });
    }
    tasks.join_all().await
}

#[tokio::test]
async fn the_second_request_is_a_hit() {
    let h = Harness::new();
    let app = app_for(&h);
    let (token, _) = h.issue(&h.customer("Jane")).await;
    assert_eq!(
        send(app.clone(), bearer(&token)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(app.clone(), bearer(&token)).await.status,
        StatusCode::OK
    );
    assert_eq!(send(app, bearer(&token)).await.status, StatusCode::OK);
    assert_eq!(h.store.loads(), 1);
    assert_eq!(h.sessions.cached_sessions(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_misses_share_one_store_load() {
    let h = Harness::new();
    let app = app_for(&h);
    let (token, _) = h.issue(&h.customer("Jane")).await;
    h.store.set_latency(Duration::from_millis(50));

    let replies = burst(&app, &token, 1_000).await;
    assert_eq!(replies.len(), 1_000);
    assert!(replies.iter().all(|r| r.status == StatusCode::OK));
    assert_eq!(h.store.loads(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_tokens_load_once_then_hit_the_negative_cache_until_it_expires() {
    let h = Harness::with(|b| b.negative_cache_ttl(Duration::from_millis(300)));
    let app = app_for(&h);
    let token = unknown_token();
    let token = token.expose_secret();
    h.store.set_latency(Duration::from_millis(50));

    let replies = burst(&app, token, 200).await;
    assert!(
        replies
            .iter()
            .all(|r| r.rejection == Some(Rejection::InvalidToken(InvalidToken::Unknown)))
    );
    assert_eq!(
        h.store.loads(),
        1,
        "concurrent misses for an unknown token coalesce"
    );
    for _ in 0..5 {
        assert_eq!(
            send(app.clone(), bearer(token)).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(h.store.loads(), 1, "negative hits");

    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        send(app, bearer(token)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(h.store.loads(), 2, "the negative entry expired");
}

#[tokio::test]
async fn without_a_negative_cache_every_unknown_token_request_loads() {
    for h in [
        Harness::with(|b| b.negative_cache_capacity(0)),
        Harness::with(|b| b.negative_cache_ttl(Duration::ZERO)),
    ] {
        let app = app_for(&h);
        let token = unknown_token();
        for expected in 1..=3 {
            let reply = send(app.clone(), bearer(token.expose_secret())).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
            assert_eq!(h.store.loads(), expected);
        }
    }
}

#[tokio::test]
async fn a_store_error_is_not_cached() {
    let h = Harness::new();
    let app = app_for(&h);
    let (token, _) = h.issue(&h.customer("Jane")).await;

    h.store.fail_next_loads(1);
    assert_eq!(
        send(app.clone(), bearer(&token)).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        send(app.clone(), bearer(&token)).await.status,
        StatusCode::OK
    );
    assert_eq!(h.store.loads(), 2);

    // An unknown token whose first load failed is looked up again, not remembered as unknown.
    let unknown = unknown_token();
    h.store.fail_next_loads(1);
    let reply = send(app.clone(), bearer(unknown.expose_secret())).await;
    assert_eq!(
        reply.rejection,
        Some(Rejection::StoreUnavailable(StoreUnavailable::Error))
    );
    let reply = send(app, bearer(unknown.expose_secret())).await;
    assert_eq!(
        reply.rejection,
        Some(Rejection::InvalidToken(InvalidToken::Unknown))
    );
    assert_eq!(h.store.loads(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_share_one_failed_load_and_the_next_one_retries() {
    let h = Harness::new();
    let app = app_for(&h);
    let (token, _) = h.issue(&h.customer("Jane")).await;
    h.store.set_latency(Duration::from_millis(200));
    h.store.fail_next_loads(1);

    let replies = burst(&app, &token, 100).await;
    assert!(
        replies
            .iter()
            .all(|r| r.status == StatusCode::SERVICE_UNAVAILABLE)
    );
    assert_eq!(h.store.loads(), 1);

    assert_eq!(send(app, bearer(&token)).await.status, StatusCode::OK);
    assert_eq!(h.store.loads(), 2);
}

#[tokio::test]
async fn expiry_is_judged_by_the_clock_on_every_hit() {
    let h = Harness::new();
    let app = app_for(&h);
    let (token, session) = h.issue(&h.customer("Jane")).await;
    assert_eq!(
        send(app.clone(), bearer(&token)).await.status,
        StatusCode::OK
    );

    h.clock.set(session.expires_at - TimeDelta::microseconds(1));
    assert_eq!(
        send(app.clone(), bearer(&token)).await.status,
        StatusCode::OK
    );
    h.clock.set(session.expires_at);
    let reply = send(app.clone(), bearer(&token)).await;
    assert_eq!(
        reply.rejection,
        Some(Rejection::InvalidToken(InvalidToken::Expired))
    );
    assert_eq!(h.store.loads(), 1, "refused from the cache, by the clock");
    assert_eq!(
        h.sessions.cached_sessions(),
        1,
        "the entry was still cached"
    );
}

#[tokio::test]
async fn cache_entries_never_outlive_max_ttl_or_the_session() {
    // Moka's timers run on real time; the manual clock stays put, so the store keeps
    // answering and every reload is visible in the load count.
    let h = Harness::with(|b| b.cache_max_ttl(Duration::from_millis(200)));
    let app = app_for(&h);
    let (token, _) = h.issue(&h.customer("Jane")).await;
    send(app.clone(), bearer(&token)).await;
    send(app.clone(), bearer(&token)).await;
    assert_eq!(h.store.loads(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(send(app, bearer(&token)).await.status, StatusCode::OK);
    assert_eq!(h.store.loads(), 2, "max TTL elapsed");

    let h = Harness::with(|b| b.session_ttl(Duration::from_millis(200)));
    let app = app_for(&h);
    let (token, _) = h.issue(&h.customer("John")).await;
    send(app.clone(), bearer(&token)).await;
    send(app.clone(), bearer(&token)).await;
    assert_eq!(h.store.loads(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    send(app, bearer(&token)).await;
    assert_eq!(
        h.store.loads(),
        2,
        "the entry lived no longer than the session had left"
    );
}

#[tokio::test]
async fn a_customer_deleted_through_the_api_is_refused_at_once() {
    let h = Harness::new();
    let app = app_for(&h);
    let jane = h.customer("Jane");
    let (janes, _) = h.issue(&jane).await;
    let (johns, _) = h.issue(&h.customer("John")).await;
    send(app.clone(), bearer(&janes)).await;
    send(app.clone(), bearer(&johns)).await;

    // No `invalidate_customer` to remember: deleting through the crate drops the cache entry.
    assert!(h.sessions.delete_customer(jane.id).await.unwrap());
    assert_eq!(
        send(app.clone(), bearer(&janes)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(h.store.loads_for(&h.hash(&janes)), 2);
    assert_eq!(send(app, bearer(&johns)).await.status, StatusCode::OK);
    assert_eq!(
        h.store.loads_for(&h.hash(&johns)),
        1,
        "other customers stay cached"
    );
}

#[tokio::test]
async fn invalidate_all_drops_every_entry() {
    let h = Harness::new();
    let app = app_for(&h);
    let (token, _) = h.issue(&h.customer("Jane")).await;
    let unknown = unknown_token();
    send(app.clone(), bearer(&token)).await;
    send(app.clone(), bearer(unknown.expose_secret())).await;
    assert_eq!(h.store.loads(), 2);

    h.sessions.invalidate_all();
    assert_eq!(
        send(app.clone(), bearer(&token)).await.status,
        StatusCode::OK
    );
    send(app, bearer(unknown.expose_secret())).await;
    assert_eq!(
        h.store.loads(),
        4,
        "positive and negative entries were both dropped"
    );
}

#[tokio::test]
async fn a_flood_of_random_tokens_does_not_evict_real_sessions() {
    let h = Harness::with(|b| b.cache_capacity(64).negative_cache_capacity(100));
    let app = app_for(&h);
    let customer = h.customer("Jane");
    let mut real = Vec::new();
    for _ in 0..50 {
        let (token, _) = h.issue(&customer).await;
        assert_eq!(
            send(app.clone(), bearer(&token)).await.status,
            StatusCode::OK
        );
        real.push(token);
    }
    assert_eq!(h.sessions.cached_sessions(), 50);

    // Each random token is sent twice, so it is as "popular" as the real sessions.
    for _ in 0..20_000 {
        let token = unknown_token();
        for _ in 0..2 {
            let reply = send(app.clone(), bearer(token.expose_secret())).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        }
    }

    for token in &real {
        assert_eq!(
            send(app.clone(), bearer(token)).await.status,
            StatusCode::OK
        );
        assert_eq!(h.store.loads_for(&h.hash(token)), 1, "still cached");
    }
    assert_eq!(h.sessions.cached_sessions(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_leader_does_not_strand_its_waiters() {
    let h = Harness::new();
    let app = app_for(&h);
    let (token, _) = h.issue(&h.customer("Jane")).await;
    h.store.set_latency(Duration::from_millis(300));

    let leader = tokio::spawn(send(app.clone(), bearer(&token)));
    h.store.wait_for_loads(1).await;
    let mut waiters = JoinSet::new();
    for _ in 0..10 {
        waiters.spawn(send(app.clone(), bearer(&token)));
    }
    // Let the waiters join the leader's flight before it goes away.
    tokio::time::sleep(Duration::from_millis(50)).await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());

    let replies = tokio::time::timeout(Duration::from_secs(5), waiters.join_all())
        .await
        .expect("waiters finish");
    assert!(replies.iter().all(|r| r.status == StatusCode::OK));
    // One waiter took over with its own load; the rest shared it.
    assert_eq!(h.store.loads(), 2);
}
