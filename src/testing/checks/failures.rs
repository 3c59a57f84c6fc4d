//! A backend that fails: every call is an error (the layer answers `503`), never an
//! answer made up without the backend (`Ok(None)` is a `401`, `Ok(false)` a revocation
//! that silently did not happen), and the store recovers by itself.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use crate::store::{CustomerRef, CustomerStore, SessionAdmin, StoreError};
use crate::token::TokenKind;
use crate::{CredentialSource, Rejection};

use super::super::backend::{Backend, Outage};
use super::super::expect::{Checked, Stop, called, fail, found, skip};
use super::super::fixtures;
use super::{FullBackend, Issue, load, manager, now, request};

/// How long one call may take during an outage before the kit calls it hung.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// How long the store may take to work again once the outage ends.
const RECOVER_WITHIN: Duration = Duration::from_secs(10);

async fn outage<B: Backend>(backend: &B) -> Result<Outage, Stop> {
    backend
        .outage()
        .await
        .ok_or_else(|| skip("`Backend::outage` gives no way to make this backend fail"))
}

/// During an outage a load is an error, for a live session and an unknown token alike,
/// and the manager answers `503` for both; afterwards the session loads again.
pub(super) async fn outage_is_an_error_never_not_found<I: Issue>(issuer: I) -> Checked {
    let backend = issuer.backend();
    let store = backend.store();
    let now = now(backend).await;
    let jane = issuer
        .add_customer(fixtures::individual("Jane", now))
        .await?;
    let issued = issuer
        .issue(request(jane.id, TokenKind::Customer, now))
        .await?;
    found("load before the outage", load(&store, &issued.token).await)?;
    let sessions = manager(backend, backend.store())?;
    let outage = outage(backend).await?;

    let unknown = fixtures::token(TokenKind::Customer);
    for (what, token) in [
        ("load of a live session during an outage", &issued.token),
        ("load of an unknown token during an outage", &unknown),
    ] {
        fails(what, load(&store, token)).await?;
    }
    for (what, token) in [
        (
            "authenticate a live session during an outage",
            &issued.token,
        ),
        ("authenticate an unknown token during an outage", &unknown),
    ] {
        let answer = tokio::time::timeout(
            ANSWER_WITHIN,
            sessions.authenticate(token.expose_secret(), CredentialSource::Header),
        )
        .await;
        match answer {
            Ok(Err(Rejection::StoreUnavailable(_))) => {}
            Ok(Err(other)) => {
                return Err(fail(
                    what,
                    "Rejection::StoreUnavailable (503)",
                    format!("Rejection::{other:?} (not a 503)"),
                ));
            }
            Ok(Ok(_)) => {
                return Err(fail(
                    what,
                    "Rejection::StoreUnavailable (503)",
                    "the customer",
                ));
            }
            Err(_) => return Err(fail(what, "an answer", "none within 10 s")),
        }
    }

    drop(outage);
    recovers("load once the outage ended", || async {
        Ok(load(&store, &issued.token).await?.is_some())
    })
    .await?;
    recovers("authenticate once the outage ended", || async {
        Ok(sessions
            .authenticate(issued.token.expose_secret(), CredentialSource::Header)
            .await
            .is_ok())
    })
    .await
}

/// During an outage every administrative call is an error too, never an answer made up
/// without the backend: not `UnknownCustomer` for a create, not `Ok(false)` or `Ok(0)`
/// for a revocation, not `Ok(None)` for a customer.
pub(super) async fn every_call_fails_during_an_outage<B: FullBackend>(backend: B) -> Checked {
    let store = backend.store();
    let now = now(&backend).await;
    let jane = fixtures::individual("Jane", now);
    called("upsert_customer", store.upsert_customer(jane.clone()).await)?;
    let (_, existing) = fixtures::new_session(jane.id, TokenKind::Customer, now);
    called("create", store.create(existing.clone()).await)?;
    let outage = outage(&backend).await?;

    let (_, another) = fixtures::new_session(jane.id, TokenKind::Customer, now);
    fails("create during an outage", store.create(another)).await?;
    fails(
        "revoke during an outage",
        store.revoke(&existing.token_hash),
    )
    .await?;
    fails("revoke_all during an outage", store.revoke_all(jane.id)).await?;
    fails(
        "upsert_customer during an outage",
        store.upsert_customer(fixtures::individual("John", now)),
    )
    .await?;
    fails(
        "customer by id during an outage",
        store.customer(&CustomerRef::Id(jane.id)),
    )
    .await?;
    let external = CustomerRef::ExternalId(jane.external_id.clone().unwrap_or_default());
    fails(
        "customer by external id during an outage",
        store.customer(&external),
    )
    .await?;
    fails(
        "delete_customer during an outage",
        store.delete_customer(jane.id, now),
    )
    .await?;

    drop(outage);
    recovers("customer by id once the outage ended", || async {
        Ok(store.customer(&CustomerRef::Id(jane.id)).await?.is_some())
    })
    .await
}

/// Fail unless `call` ends in an error a backend outage explains (`503`).
async fn fails<T: Debug>(what: &str, call: impl Future<Output = Result<T, StoreError>>) -> Checked {
    match tokio::time::timeout(ANSWER_WITHIN, call).await {
        Err(_) => Err(fail(what, "an error", "no answer within 10 s")),
        Ok(Err(StoreError::Backend(_) | StoreError::Timeout | StoreError::RateLimited { .. })) => {
            Ok(())
        }
        Ok(Err(other)) => Err(fail(
            what,
            "StoreError::Backend or Timeout (503)",
            format!("Err({other:?}), an answer the backend did not give"),
        )),
        Ok(Ok(value)) => Err(fail(
            what,
            "an error (503)",
            format!("Ok({value:?}), an answer the backend did not give"),
        )),
    }
}

/// Retry `attempt` until it says yes, failing after [`RECOVER_WITHIN`].
async fn recovers<F, Fut>(what: &str, attempt: F) -> Checked
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<bool, StoreError>>,
{
    let deadline = tokio::time::Instant::now() + RECOVER_WITHIN;
    loop {
        let last = tokio::time::timeout(Duration::from_secs(2), attempt()).await;
        if let Ok(Ok(true)) = last {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let got = match last {
                Ok(Ok(_)) => "the data was gone".to_owned(),
                Ok(Err(error)) => format!("still Err({error:?})"),
                Err(_) => "still no answer".to_owned(),
            };
            return Err(fail(what, "the store working again within 10 s", got));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
