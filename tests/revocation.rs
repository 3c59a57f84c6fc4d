//! Revocation through the `SessionManager` handle: cached entries go at once, and a load
//! that races a revocation cannot bring the session back.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use common::{App, Harness, Recorder, bearer, send};
use http::StatusCode;
use tower::{Service, ServiceExt};
use tower_customer_session::{CustomerSessionLayer, InvalidToken, Rejection};

fn app_for(h: &Harness, recorder: &Recorder) -> App {
    common::app(CustomerSessionLayer::new(h.sessions.clone()), recorder)
}

/// Poll `future` exactly once.
async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx))).await
}

#[tokio::test]
async fn revoking_a_cached_session_refuses_the_next_request() {
    let h = Harness::new();
    let recorder = Recorder::default();
    let app = app_for(&h, &recorder);
    let customer = h.customer("Jane");
    let (by_token, _) = h.issue(&customer).await;
    let (by_hash, _) = h.issue(&customer).await;
    let (kept, _) = h.issue(&customer).await;
    for token in [&by_token, &by_hash, &kept] {
        assert_eq!(
            send(app.clone(), bearer(token)).await.status,
            StatusCode::OK
        );
    }

    assert!(h.sessions.revoke(&by_token).await.unwrap());
    // The handler's SessionInfo carries the hash, which is enough to revoke.
    send(app.clone(), bearer(&by_hash)).await;
    let hash = recorder.last().info.unwrap().token_hash;
    assert!(h.sessions.revoke_hash(&hash).await.unwrap());

    for token in [&by_token, &by_hash] {
        let reply = send(app.clone(), bearer(token)).await;
        assert_eq!(
            reply.rejection,
            Some(Rejection::InvalidToken(InvalidToken::Unknown))
        );
    }
    assert_eq!(
        send(app.clone(), bearer(&kept)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        h.store.loads_for(&h.hash(&kept)),
        1,
        "untouched sessions stay cached"
    );
    assert!(
        !h.sessions.revoke(&by_token).await.unwrap(),
        "already revoked"
    );
}

#[tokio::test]
async fn revoke_all_refuses_every_session_of_that_customer_only() {
    let h = Harness::new();
    let app = app_for(&h, &Recorder::default());
    let jane = h.customer("Jane");
    let mut janes = Vec::new();
    for _ in 0..3 {
        janes.push(h.issue(&jane).await.0);
    }
    let (johns, _) = h.issue(&h.customer("John")).await;
    for token in janes.iter().chain([&johns]) {
        assert_eq!(
            send(app.clone(), bearer(token)).await.status,
            StatusCode::OK
        );
    }

    assert_eq!(h.sessions.revoke_all(jane.id).await.unwrap(), 3);
    for token in &janes {
        assert_eq!(
            send(app.clone(), bearer(token)).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(send(app, bearer(&johns)).await.status, StatusCode::OK);
    assert_eq!(
        h.store.loads_for(&h.hash(&johns)),
        1,
        "John's entry was not dropped"
    );
}

#[tokio::test]
async fn a_failed_store_revoke_still_drops_the_cached_entry() {
    let h = Harness::new();
    let app = app_for(&h, &Recorder::default());
    let (token, _) = h.issue(&h.customer("Jane")).await;
    send(app.clone(), bearer(&token)).await;

    h.store.fail_always(true);
    assert!(h.sessions.revoke(&token).await.is_err());
    // Without the cached entry the request must ask the (failing) store: 503, not 200.
    assert_eq!(
        send(app.clone(), bearer(&token)).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    h.store.fail_always(false);
}

/// The race: a load reads the session, the session is revoked, then the load finishes.
async fn revocation_during_an_in_flight_load(revoke_all: bool) {
    let h = Harness::new();
    let app = app_for(&h, &Recorder::default());
    let jane = h.customer("Jane");
    let (token, _) = h.issue(&jane).await;

    let gate = h.store.pause_next_load();
    let in_flight = tokio::spawn(send(app.clone(), bearer(&token)));
    gate.reached().await;
    assert_eq!(h.store.loads(), 1);
    if revoke_all {
        assert_eq!(h.sessions.revoke_all(jane.id).await.unwrap(), 1);
    } else {
        assert!(h.sessions.revoke(&token).await.unwrap());
    }
    gate.release();

    // The request that started before the revocation may go either way...
    let first = in_flight.await.unwrap();
    assert!(matches!(
        first.status,
        StatusCode::OK | StatusCode::UNAUTHORIZED
    ));
    // ...but what it read must not stay cached.
    let next = send(app, bearer(&token)).await;
    assert_eq!(
        next.rejection,
        Some(Rejection::InvalidToken(InvalidToken::Unknown))
    );
    // Either the store was asked again, or the load that raced the revocation was itself
    // refused: this instance remembers what it revoked, whatever the store read before.
    assert!(
        h.store.loads() >= 2 || first.status == StatusCode::UNAUTHORIZED,
        "the refusal came from a read older than the revocation"
    );
}

#[tokio::test]
async fn a_revocation_during_an_in_flight_load_is_not_undone() {
    revocation_during_an_in_flight_load(false).await;
}

#[tokio::test]
async fn a_revoke_all_during_an_in_flight_load_is_not_undone() {
    revocation_during_an_in_flight_load(true).await;
}

#[tokio::test]
async fn a_revocation_after_a_load_is_not_undone_by_a_waiter_still_in_its_flight() {
    // Two requests share one load. The first finishes; the second has been woken but not
    // polled yet (a busy worker, a slow client). A revocation lands in that gap: a third
    // request must not be handed the finished flight's session.
    let h = Harness::new();
    let mut app = app_for(&h, &Recorder::default());
    let (token, _) = h.issue(&h.customer("Jane")).await;

    let gate = h.store.pause_next_load();
    let mut first = Box::pin(app.ready().await.unwrap().call(bearer(&token)));
    let mut second = Box::pin(app.ready().await.unwrap().call(bearer(&token)));
    assert!(poll_once(&mut first).await.is_pending());
    gate.reached().await;
    assert!(poll_once(&mut second).await.is_pending());
    gate.release();
    let first = first.await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);

    assert!(h.sessions.revoke(&token).await.unwrap());
    let third = send(app.clone(), bearer(&token)).await;
    assert_eq!(
        third.status,
        StatusCode::UNAUTHORIZED,
        "revoked session accepted"
    );
    assert_eq!(h.store.loads(), 2);
    drop(second);
}
