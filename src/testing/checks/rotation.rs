//! A key rotation needs nothing of a store but exact hashes: sessions stored under either key
//! of a rotation resolve through managers in either phase, and revoke whatever key they are
//! under.

use crate::store::CustomerStore;
use crate::{CreateSession, CredentialSource, SessionManager, SessionStore};

use super::super::expect::{Checked, called, fail};
use super::super::fixtures::{self, SECRET};
use super::{FullBackend, manager_with_keys, now};

/// The other key of the rotation.
const NEXT: &[u8] = b"store test kit, the rotated key!!";

async fn accepts<S: SessionStore>(manager: &SessionManager<S>, token: &str, what: &str) -> Checked {
    match manager.authenticate(token, CredentialSource::Header).await {
        Ok(_) => Ok(()),
        Err(rejection) => Err(fail(
            what,
            "the customer",
            format!("Rejection::{rejection:?}"),
        )),
    }
}

async fn refuses<S: SessionStore>(manager: &SessionManager<S>, token: &str, what: &str) -> Checked {
    match manager.authenticate(token, CredentialSource::Header).await {
        Err(_) => Ok(()),
        Ok(_) => Err(fail(what, "refused", "the customer")),
    }
}

/// Phase 1 (the kit's key current, the next accepted) next to phase 2 (the next key current,
/// the kit's accepted): each accepts the other's sessions, and revokes them; a fresh manager
/// (nothing cached) then refuses them under either key.
pub(super) async fn sessions_under_either_key_resolve_and_revoke<B: FullBackend>(
    backend: B,
) -> Checked {
    let store = backend.store();
    let jane = fixtures::individual("Jane", now(&backend).await);
    called("upsert_customer", store.upsert_customer(jane.clone()).await)?;
    let first = manager_with_keys(&backend, backend.store(), SECRET, &[NEXT])?;
    let second = manager_with_keys(&backend, backend.store(), NEXT, &[SECRET])?;
    let jane = jane.id;
    let create = move |manager: &SessionManager<B::Store>| {
        let manager = manager.clone();
        async move {
            manager
                .create(jane, CreateSession::default())
                .await
                .map(|session| session.token.expose_secret().to_owned())
                .map_err(|error| {
                    fail(
                        "SessionManager::create",
                        "a session",
                        format!("Err({error:?})"),
                    )
                })
        }
    };
    let under_first = create(&first).await?;
    let under_next = create(&second).await?;
    accepts(
        &second,
        &under_first,
        "a session stored under the previous key, after the rotation",
    )
    .await?;
    accepts(
        &first,
        &under_next,
        "a session stored under the next key, before the rotation",
    )
    .await?;

    let revoked = called(
        "revoke through the other phase",
        second.revoke(&under_first).await,
    )?;
    if !revoked {
        return Err(fail(
            "revoke of a session stored under the previous key",
            "Ok(true)",
            "Ok(false)",
        ));
    }
    called(
        "revoke through the other phase",
        first.revoke(&under_next).await,
    )?;
    for (secret, accepted) in [(SECRET, NEXT), (NEXT, SECRET)] {
        let fresh = manager_with_keys(&backend, backend.store(), secret, &[accepted])?;
        refuses(
            &fresh,
            &under_first,
            "a revoked session stored under the previous key",
        )
        .await?;
        refuses(
            &fresh,
            &under_next,
            "a revoked session stored under the next key",
        )
        .await?;
    }
    Ok(())
}
