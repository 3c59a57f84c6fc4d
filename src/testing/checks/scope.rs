//! `scope()`: a store whose data another process can open is
//! [`Shared`](crate::store::StoreScope::Shared), so no instance runs on a random
//! per-process secret.

use crate::store::{SessionStore, StoreScope};
use crate::token::TokenKind;

use super::super::backend::Backend;
use super::super::expect::{Checked, ensure, found};
use super::super::fixtures;
use super::{Issue, load, now, request};

/// A store with a peer (`Backend::peer`: the same data, opened by another process) says
/// `Shared`; and the peer does see the data.
pub(super) async fn process_scope_only_for_one_process<I: Issue>(issuer: I) -> Checked {
    let backend = issuer.backend();
    let store = backend.store();
    let Some(peer) = backend.peer().await else {
        // Only this process sees the data: `Process` is right, `Shared` merely cautious.
        return Ok(());
    };
    let now = now(backend).await;
    let jane = issuer
        .add_customer(fixtures::individual("Jane", now))
        .await?;
    let issued = issuer
        .issue(request(jane.id, TokenKind::Customer, now))
        .await?;
    found(
        "load through the peer (`Backend::peer`) of a session issued for the store",
        load(&peer, &issued.token).await,
    )?;
    for (what, scope) in [
        ("scope() of a store other processes open", store.scope()),
        ("scope() of its peer", peer.scope()),
    ] {
        ensure(
            scope == StoreScope::Shared,
            what,
            "StoreScope::Shared: every instance must hash tokens with the same configured secret",
            format!("StoreScope::{scope:?}"),
        )?;
    }
    Ok(())
}
