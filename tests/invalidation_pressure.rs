//! Invalidations under pressure: a stream of other customers' invalidations must not stop
//! misses from being cached, and a flood of failed revocations must not make the cache
//! forget a real one.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::Harness;
use common::instrumented::Fault;
use tower_customer_session::{CredentialSource, SessionAdmin};
use uuid::Uuid;

const SESSIONS: usize = 40;

/// Authenticate each token once; returns the store loads it took.
async fn authenticate_all(h: &Harness, tokens: &[String]) -> usize {
    let before = h.store.loads();
    for token in tokens {
        h.sessions
            .authenticate(token, CredentialSource::Header)
            .await
            .expect("a live session");
    }
    h.store.loads() - before
}

async fn sessions(h: &Harness, n: usize) -> Vec<String> {
    let mut tokens = Vec::with_capacity(n);
    for i in 0..n {
        let customer = h.customer(&format!("Customer{i}"));
        tokens.push(h.issue(&customer).await.0);
    }
    tokens
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misses_stay_cached_under_a_stream_of_other_customers_invalidations() {
    let h = Harness::new();
    // Long enough for every load to overlap a couple of invalidations.
    h.store.set_latency(Duration::from_millis(2));
    let quiet = sessions(&h, SESSIONS).await;
    let busy = sessions(&h, SESSIONS).await;

    let quiet_loads = authenticate_all(&h, &quiet).await + authenticate_all(&h, &quiet).await;
    assert_eq!(
        quiet_loads, SESSIONS,
        "quiet: one load per session, then hits"
    );

    // 1,000 invalidations a second of customers that have nothing to do with these.
    let stop = Arc::new(AtomicBool::new(false));
    let stream = {
        let (sessions, stop) = (h.sessions.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(Ordering::SeqCst) {
                sessions.invalidate_customer(Uuid::new_v4());
                sent += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            sent
        })
    };
    let busy_loads = authenticate_all(&h, &busy).await + authenticate_all(&h, &busy).await;
    stop.store(true, Ordering::SeqCst);
    let sent = stream.join().unwrap();
    assert!(sent > 50, "the stream ran alongside ({sent} invalidations)");
    assert!(
        busy_loads as f64 <= quiet_loads as f64 * 1.05,
        "{busy_loads} loads under the stream, {quiet_loads} quiet"
    );
}

#[tokio::test]
async fn a_flood_of_failed_revocations_cannot_push_out_a_real_ones_tombstone() {
    let h = Harness::new();
    let (token, _) = h.issue(&h.customer("Jane")).await;
    let hash = h.hash(&token);

    // The store browns out: 10,100 junk sign-outs fail, then Jane's, then more junk.
    h.store.set_fault(Fault::Error);
    let junk = || async {
        for _ in 0..10_100 {
            let junk = common::unknown_token();
            assert!(h.sessions.revoke(junk.expose_secret()).await.is_err());
        }
    };
    junk().await;
    assert!(h.sessions.revoke(&token).await.is_err());
    junk().await;
    h.store.set_fault(Fault::None);

    // Jane's session is still valid in the store, so it is served (from the store)...
    for _ in 0..3 {
        h.sessions
            .authenticate(&token, CredentialSource::Header)
            .await
            .expect("valid until the backend commits the revocation");
    }
    // ...and when the backend commits the revocation late, nothing cached hides it.
    assert!(h.store.memory().revoke(&hash).await.unwrap());
    assert!(
        h.sessions
            .authenticate(&token, CredentialSource::Header)
            .await
            .is_err(),
        "a revocation that failed here but committed later is refused"
    );
}

/// A store that restarted from older data: the sessions are back. Nothing that was revoked
/// here is believed, while the sessions made since work.
#[tokio::test]
async fn a_store_that_serves_a_revoked_session_again_is_not_believed() {
    use tower_customer_session::store::{CustomerRef, NewSession};
    use tower_customer_session::token::TokenKind;

    let h = Harness::new();
    let jane = h.customer("Jane");
    let john = h.customer("John");
    let (revoked, revoked_session) = h.issue(&jane).await;
    let (swept, swept_session) = h.issue(&john).await;
    let snapshot = |session: &tower_customer_session::CustomerSession, hash| NewSession {
        id: session.id,
        token_hash: hash,
        kind: TokenKind::Customer,
        customer: CustomerRef::Id(session.customer_id),
        created_at: session.created_at,
        expires_at: session.expires_at,
        return_url: None,
        member: None,
    };
    let old = [
        snapshot(&revoked_session, h.hash(&revoked)),
        snapshot(&swept_session, h.hash(&swept)),
    ];
    h.clock.advance(chrono::TimeDelta::seconds(1));
    assert!(h.sessions.revoke(&revoked).await.unwrap());
    assert_eq!(h.sessions.revoke_all(john.id).await.unwrap(), 1);
    h.clock.advance(chrono::TimeDelta::seconds(1));
    let (fresh, _) = h.issue(&john).await;

    // The backend comes back from a snapshot taken before both revocations.
    for session in old {
        h.store.memory().create(session).await.unwrap();
    }
    for token in [&revoked, &swept] {
        assert!(
            h.sessions
                .authenticate(token, CredentialSource::Header)
                .await
                .is_err(),
            "a session revoked here stays refused whatever the store says"
        );
    }
    h.sessions
        .authenticate(&fresh, CredentialSource::Header)
        .await
        .expect("a session made after the revoke_all works");
}
