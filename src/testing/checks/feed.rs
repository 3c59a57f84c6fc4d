//! The invalidation feed, with two managers on two instances (the store and its peer), as
//! two processes of one application: it goes live, changes on one are refused or seen on
//! the other within [`PROPAGATION`], never announced before they are visible, beats while
//! idle, reports what it loses, and ends with its manager.

use std::cell::Cell;
use std::time::Duration;

use tokio::time::Instant;

use crate::store::{CustomerStore, FeedSink, FeedState, SessionAdmin, SessionStore, Watch};
use crate::{CreateSession, CredentialSource, SessionManager};

use super::super::PROPAGATION;
use super::super::backend::Backend;
use super::super::expect::{Checked, Stop, called, ensure, fail, skip};
use super::super::fixtures;
use super::super::future::{join, join_all};
use super::{FullBackend, Issue, manager, now};

/// How long a manager's feed may take to go live.
const LIVE_WITHIN: Duration = Duration::from_secs(5);
/// The longest silence the kit will wait past; a test store should beat faster.
const LONGEST_SILENCE: Duration = Duration::from_secs(20);
/// Changes in the burst.
const BURST: usize = 1_000;

/// The store's feed, from a sink that belongs to no manager: a store's feed task sees it
/// closed and ends at once.
fn watch_of<S: SessionStore>(store: &S) -> Result<Watch, Stop> {
    store.watch(FeedSink::detached()).ok_or_else(|| {
        skip(
            "the store has no feed (`SessionStore::watch` is None): a change made elsewhere \
             is seen within cache_max_ttl",
        )
    })
}

/// Two managers, on the store and on its peer, both live.
struct Pair<S: SessionStore> {
    a: SessionManager<S>,
    b: SessionManager<S>,
    max_silence: Duration,
}

async fn two_instances<B: FullBackend>(backend: &B) -> Result<Pair<B::Store>, Stop> {
    let store = backend.store();
    let watch = watch_of(&store)?;
    let Some(peer) = backend.peer().await else {
        return Err(skip(
            "no second instance to watch the feed from (`Backend::peer` is None)",
        ));
    };
    let pair = Pair {
        a: manager(backend, store)?,
        b: manager(backend, peer)?,
        max_silence: watch.max_silence(),
    };
    live("the store's feed", &pair.a).await?;
    live("the peer's feed", &pair.b).await?;
    Ok(pair)
}

/// Fail unless `manager`'s feed goes live within [`LIVE_WITHIN`].
pub(super) async fn live<S: SessionStore>(what: &str, manager: &SessionManager<S>) -> Checked {
    let deadline = Instant::now() + LIVE_WITHIN;
    while manager.feed_state() != FeedState::Live {
        if Instant::now() >= deadline {
            return Err(fail(
                format!("{what}, once its manager was built"),
                "FeedState::Live within 5 s (FeedSink::connected)",
                format!("FeedState::{:?}", manager.feed_state()),
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Authenticate twice on `manager`, so the second answer comes from its cache.
pub(super) async fn cached<S: SessionStore>(manager: &SessionManager<S>, token: &str) -> Checked {
    for _ in 0..2 {
        if let Err(rejection) = manager.authenticate(token, CredentialSource::Header).await {
            return Err(fail(
                "authenticate a live session on the peer",
                "the customer",
                format!("Rejection::{rejection:?}"),
            ));
        }
    }
    Ok(())
}

/// Fail unless `manager` refuses `token` within `within`.
pub(super) async fn refused<S: SessionStore>(
    manager: &SessionManager<S>,
    token: &str,
    within: Duration,
    what: &str,
) -> Checked {
    let deadline = Instant::now() + within;
    loop {
        if manager
            .authenticate(token, CredentialSource::Header)
            .await
            .is_err()
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(fail(
                what,
                format!("refused within {within:?}"),
                "still accepted from the peer's cache: the feed did not announce it",
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A session created through `manager` for `customer`.
pub(super) async fn session<S: SessionAdmin>(
    manager: &SessionManager<S>,
    customer: uuid::Uuid,
    options: CreateSession,
) -> Result<crate::CustomerSession, Stop> {
    manager.create(customer, options).await.map_err(|error| {
        fail(
            "SessionManager::create",
            "a session",
            format!("Err({error:?})"),
        )
    })
}

/// `watch` called where no Tokio runtime is current (as `SessionManagerBuilder::build` may
/// be) does not panic: the store spawns its feed on a runtime it took when it connected,
/// and the builder reports a missing runtime as an error.
pub(super) async fn watch_outside_a_runtime_does_not_panic<I: Issue>(issuer: I) -> Checked {
    let store = issuer.backend().store();
    watch_of(&store)?;
    let outside = std::thread::spawn(move || store.watch(FeedSink::detached()).is_some()).join();
    match outside {
        Ok(_) => Ok(()),
        Err(_) => Err(fail(
            "watch called on a thread without a Tokio runtime",
            "no panic: the feed spawned on a runtime handle taken when the store connected",
            "a panic",
        )),
    }
}

/// Both managers' feeds go live.
pub(super) async fn goes_live<B: FullBackend>(backend: B) -> Checked {
    two_instances(&backend).await.map(drop)
}

/// A `revoke` and a `revoke_all` (of a customer and a member session) on one instance are
/// refused by the other, which had them cached, within [`PROPAGATION`].
pub(super) async fn revocations_reach_the_peer<B: FullBackend>(backend: B) -> Checked {
    let Pair { a, b, .. } = two_instances(&backend).await?;
    let acme = called(
        "upsert_customer",
        a.upsert_customer(fixtures::team("Acme", now(&backend).await))
            .await,
    )?;

    let one = session(&a, acme.id, CreateSession::default()).await?;
    cached(&b, one.token.expose_secret()).await?;
    called("revoke", a.revoke(one.token.expose_secret()).await)?;
    refused(
        &b,
        one.token.expose_secret(),
        PROPAGATION,
        "a revoke on one instance, on the other",
    )
    .await?;

    let customer = session(&a, acme.id, CreateSession::default()).await?;
    let member = session(
        &a,
        acme.id,
        CreateSession::default().member(fixtures::member()),
    )
    .await?;
    for session in [&customer, &member] {
        cached(&b, session.token.expose_secret()).await?;
    }
    called("revoke_all", a.revoke_all(acme.id).await)?;
    refused(
        &b,
        customer.token.expose_secret(),
        PROPAGATION,
        "a revoke_all on one instance, on the other",
    )
    .await?;
    refused(
        &b,
        member.token.expose_secret(),
        PROPAGATION,
        "a revoke_all on one instance, a member session on the other",
    )
    .await
}

/// A customer edit on one instance is seen by the other within [`PROPAGATION`], and a
/// deletion refused.
pub(super) async fn customer_changes_reach_the_peer<B: FullBackend>(backend: B) -> Checked {
    let Pair { a, b, .. } = two_instances(&backend).await?;
    let jane = called(
        "upsert_customer",
        a.upsert_customer(fixtures::individual("Jane", now(&backend).await))
            .await,
    )?;
    let one = session(&a, jane.id, CreateSession::default()).await?;
    let token = one.token.expose_secret();
    cached(&b, token).await?;

    let mut edited = jane.clone();
    edited.make_mut().name = Some("Jane Edited".to_owned());
    called("upsert_customer", a.upsert_customer(edited).await)?;
    let deadline = Instant::now() + PROPAGATION;
    loop {
        let seen = b.authenticate(token, CredentialSource::Header).await;
        let name = seen
            .as_ref()
            .ok()
            .and_then(|(customer, _)| customer.name.clone());
        if name.as_deref() == Some("Jane Edited") {
            break;
        }
        if Instant::now() >= deadline {
            return Err(fail(
                "a customer edit on one instance, on the other",
                format!("the new name within {PROPAGATION:?}"),
                format!("{name:?}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    called("delete_customer", a.delete_customer(jane.id).await)?;
    refused(
        &b,
        token,
        PROPAGATION,
        "a customer deletion on one instance, on the other",
    )
    .await
}

/// While one instance revokes, the other authenticates the session as fast as it can: once
/// the revocation is announced its cache reloads from the store, so a store that announces
/// before the change is visible has it cache the old session for good.
pub(super) async fn announced_only_after_commit<B: FullBackend>(backend: B) -> Checked {
    let Pair { a, b, .. } = two_instances(&backend).await?;
    let jane = called(
        "upsert_customer",
        a.upsert_customer(fixtures::individual("Jane", now(&backend).await))
            .await,
    )?;
    let one = session(&a, jane.id, CreateSession::default()).await?;
    let token = one.token.expose_secret();
    cached(&b, token).await?;

    let revoked_at = Cell::new(None::<Instant>);
    let accepted_late = Cell::new(None::<Duration>);
    let settle = PROPAGATION * 3;
    let hammer = async {
        loop {
            let accepted = b
                .authenticate(token, CredentialSource::Header)
                .await
                .is_ok();
            if let Some(at) = revoked_at.get() {
                let since = at.elapsed();
                if accepted && since > PROPAGATION {
                    accepted_late.set(Some(since));
                }
                if since > PROPAGATION + settle {
                    break;
                }
            }
            tokio::task::yield_now().await;
        }
    };
    let revoke = async {
        let result = a.revoke(token).await;
        revoked_at.set(Some(Instant::now()));
        result
    };
    let ((), revoked) = join(hammer, revoke).await;
    called("revoke", revoked)?;
    match accepted_late.get() {
        None => Ok(()),
        Some(since) => Err(fail(
            "a session revoked on one instance while the other authenticates it",
            format!("refused from {PROPAGATION:?} after revoke returned, and from then on"),
            format!(
                "accepted {} ms after: the revocation was announced before it was visible, \
                 so the peer reloaded the session and cached it again",
                since.as_millis()
            ),
        )),
    }
}

/// An idle feed stays live for twice its `max_silence`: the store proves it alive in time.
pub(super) async fn heartbeat_keeps_it_live<B: FullBackend>(backend: B) -> Checked {
    let Pair { a, b, max_silence } = two_instances(&backend).await?;
    if max_silence > LONGEST_SILENCE {
        return Err(skip(format!(
            "the feed's max_silence is {max_silence:?}: give the test's store a heartbeat \
             short enough for the kit to watch past it"
        )));
    }
    let watch_for = (max_silence * 2 + Duration::from_millis(100)).max(Duration::from_millis(300));
    let started = Instant::now();
    while started.elapsed() < watch_for {
        for (which, manager) in [("the store's", &a), ("the peer's", &b)] {
            let state = manager.feed_state();
            ensure(
                state == FeedState::Live,
                format!(
                    "{which} feed, idle, {} ms after going live",
                    started.elapsed().as_millis()
                ),
                format!(
                    "FeedState::Live throughout: a proof of life (FeedSink::alive_since) \
                     at least every {max_silence:?}, the max_silence its Watch states"
                ),
                format!("FeedState::{state:?}"),
            )?;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// A burst of changes, with revocations of sessions the peer has cached spread through
/// it: afterwards the peer refuses every one, whether its feed delivered them all or
/// reported that it lost some (which flushes the cache).
pub(super) async fn burst_loses_nothing_silently<B: FullBackend>(backend: B) -> Checked {
    let Pair { a, b, .. } = two_instances(&backend).await?;
    let now = now(&backend).await;
    let jane = called(
        "upsert_customer",
        a.upsert_customer(fixtures::individual("Jane", now)).await,
    )?;
    let decoy = called(
        "upsert_customer",
        a.upsert_customer(fixtures::individual("Decoy", now)).await,
    )?;
    let mut tokens = Vec::new();
    for _ in 0..20 {
        let one = session(&a, jane.id, CreateSession::default()).await?;
        cached(&b, one.token.expose_secret()).await?;
        tokens.push(one.token);
    }

    let store = a.store();
    let every = BURST / tokens.len();
    enum Change {
        Edit(usize),
        Revoke(usize),
    }
    let changes: Vec<Change> = (0..BURST)
        .map(|i| {
            if i % every == 0 && i / every < tokens.len() {
                Change::Revoke(i / every)
            } else {
                Change::Edit(i)
            }
        })
        .collect();
    for chunk in changes.chunks(100) {
        let results = join_all(chunk.iter().map(|change| async {
            match change {
                Change::Revoke(n) => store.revoke(&fixtures::hash(&tokens[*n])).await.map(drop),
                Change::Edit(i) => {
                    let mut edited = decoy.clone();
                    edited.make_mut().name = Some(format!("Decoy {i}"));
                    store.upsert_customer(edited).await.map(drop)
                }
            }
        }))
        .await;
        for result in results {
            called("a change in the burst", result)?;
        }
    }
    for token in &tokens {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            if b.authenticate(token.expose_secret(), CredentialSource::Header)
                .await
                .is_err()
            {
                break;
            }
            if Instant::now() >= deadline {
                return Err(fail(
                    format!("a session revoked during a burst of {BURST} changes, on the peer"),
                    "refused: the feed delivers every change, or reports a loss (FeedSink::lost) \
                     when it may have dropped some",
                    "still accepted 1 s after the burst: a revocation was dropped without a word",
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    Ok(())
}

/// During an outage the feed is reported lost (by the store, or by the silence); afterwards
/// it comes back, and delivers again.
pub(super) async fn outage_is_reported<B: FullBackend>(backend: B) -> Checked {
    let store = backend.store();
    let watch = watch_of(&store)?;
    let sessions = manager(&backend, store)?;
    live("the feed", &sessions).await?;
    let jane = called(
        "upsert_customer",
        sessions
            .upsert_customer(fixtures::individual("Jane", now(&backend).await))
            .await,
    )?;
    let one = session(&sessions, jane.id, CreateSession::default()).await?;
    let token = one.token.expose_secret();
    let Some(outage) = backend.outage().await else {
        return Err(skip(
            "`Backend::outage` gives no way to make this backend fail",
        ));
    };
    let within = watch.max_silence() + Duration::from_secs(1);
    let deadline = Instant::now() + within;
    while sessions.feed_state() != FeedState::Lost {
        if Instant::now() >= deadline {
            return Err(fail(
                "the feed during an outage",
                format!("FeedState::Lost within max_silence + 1 s ({within:?})"),
                format!(
                    "FeedState::{:?}: it kept proving itself alive without the backend",
                    sessions.feed_state()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(outage);
    let deadline = Instant::now() + RECOVER_WITHIN;
    while sessions.feed_state() != FeedState::Live {
        if Instant::now() >= deadline {
            return Err(fail(
                "the feed once the outage ended",
                "FeedState::Live again within 10 s",
                format!("FeedState::{:?}", sessions.feed_state()),
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // It delivers again: a revocation through another handle reaches this cache. The first
    // calls may meet connections the outage broke; a store may fail those once.
    retried("authenticate once the outage ended", || async {
        sessions
            .authenticate(token, CredentialSource::Header)
            .await
            .map(drop)
            .map_err(|rejection| format!("Rejection::{rejection:?}"))
    })
    .await?;
    cached(&sessions, token).await?;
    let other = backend.store();
    retried(
        "revoke through another handle once the outage ended",
        || async {
            other
                .revoke(&fixtures::hash(&one.token))
                .await
                .map(drop)
                .map_err(|error| format!("Err({error:?})"))
        },
    )
    .await?;
    refused(
        &sessions,
        token,
        PROPAGATION,
        "a revocation through another handle, after the outage",
    )
    .await
}

/// How long a store may take to work again once an outage ends.
const RECOVER_WITHIN: Duration = Duration::from_secs(10);

/// Retry `attempt` until it succeeds, failing after [`RECOVER_WITHIN`].
async fn retried<F, Fut>(what: &str, attempt: F) -> Checked
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + RECOVER_WITHIN;
    loop {
        match attempt().await {
            Ok(()) => return Ok(()),
            Err(last) if Instant::now() >= deadline => {
                return Err(fail(what, "success within 10 s", format!("still {last}")));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Once its manager is dropped, the feed's task ends: the backend counts one subscription
/// fewer within `max_silence` and a second.
pub(super) async fn stops_with_its_manager<B: FullBackend>(backend: B) -> Checked {
    let store = backend.store();
    let watch = watch_of(&store)?;
    // Let the task started for `watch_of` see its closed sink.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let Some(before) = backend.feed_subscriptions().await else {
        return Err(skip(
            "`Backend::feed_subscriptions` cannot count the backend's subscriptions",
        ));
    };
    let sessions = manager(&backend, store)?;
    live("the feed", &sessions).await?;
    let during = backend.feed_subscriptions().await.unwrap_or_default();
    ensure(
        during > before,
        "feed subscriptions while a manager runs (`Backend::feed_subscriptions`)",
        format!("more than the {before} before it started"),
        during,
    )?;
    drop(sessions);
    let within = watch.max_silence() + Duration::from_secs(1);
    let deadline = Instant::now() + within;
    loop {
        let now = backend.feed_subscriptions().await.unwrap_or_default();
        if now <= before {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(fail(
                "feed subscriptions after the manager was dropped",
                format!(
                    "{before} within {within:?}: the feed's task ends once FeedSink::is_closed"
                ),
                format!("{now}: the feed outlived its manager"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
