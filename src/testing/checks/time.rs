//! Expiry: a session is over at `expires_at` (`expires_at <= now`), judged by the store's
//! own clock. On a clock the kit can set, to the microsecond; on one it can only read,
//! each load is bracketed by two readings of it.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::token::TokenKind;

use super::super::backend::{Backend, Issued};
use super::super::expect::{Checked, called, fail, found, nothing, skip};
use super::super::fixtures;
use super::{Issue, load, request};

/// How long the kit waits for a session to expire on a clock it cannot set.
const LIFETIME: TimeDelta = TimeDelta::milliseconds(1_200);

/// A session stops loading once its `expires_at` has passed, and not before.
pub(super) async fn expired_session_does_not_load<I: Issue>(issuer: I) -> Checked {
    let backend = issuer.backend();
    let store = backend.store();
    if let Some(clock) = backend.clock() {
        let start = crate::Clock::now(&clock);
        let jane = issuer
            .add_customer(fixtures::individual("Jane", start))
            .await?;
        let issued = issuer
            .issue(request(jane.id, TokenKind::Customer, start))
            .await?;
        found("load before expires_at", load(&store, &issued.token).await)?;
        clock.set(issued.expires_at + TimeDelta::seconds(1));
        return nothing(
            "load one second after expires_at, on the store's clock",
            load(&store, &issued.token).await,
        );
    }

    let start = backend.now().await;
    let jane = issuer
        .add_customer(fixtures::individual("Jane", start))
        .await?;
    let mut asked = request(jane.id, TokenKind::Customer, start);
    asked.created_at = fixtures::with_micros(start, 1);
    asked.expires_at = asked.created_at + LIFETIME + TimeDelta::microseconds(123);
    let issued = issuer.issue(asked).await?;
    if issued.expires_at - start > TimeDelta::seconds(10) {
        return Err(skip(format!(
            "the authority issued a session that expires {} s later: too long to wait for",
            (issued.expires_at - start).num_seconds()
        )));
    }
    watch_it_expire(backend, &store, &issued).await
}

/// Load until the session is refused, reading the store's clock around every load.
async fn watch_it_expire<B: Backend>(backend: &B, store: &B::Store, issued: &Issued) -> Checked {
    let expires_at = issued.expires_at;
    loop {
        let before = backend.now().await;
        let loaded = called("load around expires_at", load(store, &issued.token).await)?;
        let after = backend.now().await;
        match loaded {
            Some(_) if before >= expires_at => {
                return Err(fail(
                    "load of a session whose expires_at had passed on the store's clock",
                    "Ok(None)",
                    format!(
                        "the session, from a load that began at {before}, expires_at {expires_at}"
                    ),
                ));
            }
            None if after < expires_at => {
                return Err(fail(
                    "load of a session before its expires_at",
                    "the session",
                    format!("Ok(None) from a load that ended at {after}, expires_at {expires_at}"),
                ));
            }
            None => return Ok(()),
            Some(_) => {}
        }
        if after > expires_at + TimeDelta::seconds(3) {
            return Err(fail(
                "load of a session 3 s after its expires_at",
                "Ok(None)",
                "the session",
            ));
        }
        tokio::time::sleep(pause(after, expires_at)).await;
    }
}

/// Sleep through most of the session's life, then look often.
fn pause(now: DateTime<Utc>, expires_at: DateTime<Utc>) -> Duration {
    let early = expires_at - TimeDelta::milliseconds(30) - now;
    early
        .to_std()
        .unwrap_or_default()
        .max(Duration::from_millis(3))
}

/// `expires_at` itself is expired: live a microsecond before, refused at that instant.
pub(super) async fn expires_at_itself_is_expired<I: Issue>(issuer: I) -> Checked {
    let backend = issuer.backend();
    let Some(clock) = backend.clock() else {
        return Err(skip(
            "the store judges expiry by a clock the kit cannot set (`Backend::clock` is None); \
             time.expired_session_does_not_load checks expiry to the precision of `Backend::now`",
        ));
    };
    let store = backend.store();
    let start = crate::Clock::now(&clock);
    let jane = issuer
        .add_customer(fixtures::individual("Jane", start))
        .await?;
    let issued = issuer
        .issue(request(jane.id, TokenKind::Customer, start))
        .await?;
    clock.set(issued.expires_at - TimeDelta::microseconds(1));
    found(
        "load one microsecond before expires_at",
        load(&store, &issued.token).await,
    )?;
    clock.set(issued.expires_at);
    nothing(
        "load at exactly expires_at (expires_at <= now is expired)",
        load(&store, &issued.token).await,
    )
}
