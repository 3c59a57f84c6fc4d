//! Token hashes and raw tokens: a local store finds sessions by the whole hash, exactly,
//! and keeps no trace of the raw token it is shown in loads.

use crate::CredentialSource;
use crate::store::{CustomerStore, SessionAdmin, SessionKey, SessionStore, StoreError};
use crate::token::{SessionToken, TokenHash, TokenKind};

use super::super::expect::{Checked, called, equal, fail, found, nothing, skip};
use super::super::fixtures::{self, new_session};
use super::{FullBackend, load, manager, now, shown};

/// Hashes that differ only in the last byte, the first byte, the case of one byte or the
/// case of their base64 are different sessions: no prefix match, no truncated index, no
/// case folding.
pub(super) async fn hash_is_matched_exactly<B: FullBackend>(backend: B) -> Checked {
    let store = backend.store();
    let now = now(&backend).await;
    let jane = fixtures::individual("Jane", now);
    called("upsert_customer", store.upsert_customer(jane.clone()).await)?;
    for (alike, a, b) in fixtures::look_alike_hashes() {
        let (token_a, mut first) = new_session(jane.id, TokenKind::Customer, now);
        let (token_b, mut second) = new_session(jane.id, TokenKind::Customer, now);
        first.token_hash = a;
        second.token_hash = b;
        called(
            format!("create with the first of two {alike}"),
            store.create(first.clone()).await,
        )?;
        nothing(
            format!("load by one of two {alike}, when only the other exists"),
            load_by(&store, &b, &token_b).await,
        )?;
        let created = store.create(second.clone()).await;
        if created.is_err() {
            return Err(fail(
                format!("create with one of two {alike}, when only the other exists"),
                "Ok(…)",
                shown(&created),
            ));
        }
        for (which, hash, token, id) in [
            ("first", &a, &token_a, first.id),
            ("second", &b, &token_b, second.id),
        ] {
            let what = format!("load of the {which} of two {alike}");
            let record = found(&what, load_by(&store, hash, token).await)?;
            equal(format!("{what}: id"), &id, &record.id)?;
        }
        let revoked = called("revoke", store.revoke(&b).await)?;
        equal(
            format!("revoke of the second of two {alike}"),
            &true,
            &revoked,
        )?;
        found(
            format!("load of the first of two {alike}, after revoking the second"),
            load_by(&store, &a, &token_a).await,
        )?;
    }
    Ok(())
}

async fn load_by<S: SessionStore>(
    store: &S,
    hash: &TokenHash,
    token: &SessionToken,
) -> Result<Option<crate::store::SessionRecord>, StoreError> {
    store
        .load(SessionKey::new(hash, token.expose_secret()))
        .await
}

/// After loads that show the store the raw token (directly and through a manager), what
/// it keeps holds neither the token nor its random part, in plain text, hex or base64.
pub(super) async fn raw_token_never_stored<B: FullBackend>(backend: B) -> Checked {
    if backend.dump().await.is_none() {
        return Err(skip(
            "`Backend::dump` shows nothing of what the backend keeps",
        ));
    }
    let store = backend.store();
    let now = now(&backend).await;
    let jane = fixtures::individual("Jane", now);
    called("upsert_customer", store.upsert_customer(jane.clone()).await)?;
    let (token, new) = new_session(jane.id, TokenKind::Customer, now);
    called("create", store.create(new).await)?;
    for _ in 0..3 {
        found("load", load(&store, &token).await)?;
    }
    let sessions = manager(&backend, backend.store())?;
    if let Err(rejection) = sessions
        .authenticate(token.expose_secret(), CredentialSource::Header)
        .await
    {
        return Err(fail(
            "authenticate a live session",
            "the customer",
            format!("Rejection::{rejection:?}"),
        ));
    }
    let record = found("load", load(&store, &token).await)?;
    let kept = format!("{}\n{record:?}", backend.dump().await.unwrap_or_default());

    let raw = token.expose_secret();
    // Prefix, random part, 6-character checksum.
    let random = &raw[raw.len().saturating_sub(43)..raw.len().saturating_sub(6)];
    for (part, secret) in [("the raw token", raw), ("the token's random part", random)] {
        for (how, needle) in fixtures::encodings(secret) {
            if kept.contains(&needle) {
                return Err(fail(
                    "what the backend keeps (`Backend::dump`) and what load returns",
                    format!("no trace of {part}"),
                    format!("{part}, {how}"),
                ));
            }
        }
    }
    Ok(())
}
