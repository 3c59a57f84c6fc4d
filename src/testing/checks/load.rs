//! Loads, which every store answers: the session with its current customer, or nothing.

use crate::token::TokenKind;

use super::super::backend::Backend;
use super::super::expect::{Checked, found, nothing, same_session};
use super::super::fixtures::{self, hash};
use super::{Issue, load, now, request};

/// A token nobody issued loads nothing, in a store that holds other sessions.
pub(super) async fn unknown_token_loads_nothing<I: Issue>(issuer: I) -> Checked {
    let store = issuer.backend().store();
    let now = now(issuer.backend()).await;
    let jane = issuer
        .add_customer(fixtures::individual("Jane", now))
        .await?;
    issuer
        .issue(request(jane.id, TokenKind::Customer, now))
        .await?;
    let never = fixtures::token(TokenKind::Customer);
    nothing("load of a token never issued", load(&store, &never).await)
}

/// An issued session loads, every field as issued, joined with its customer as it went
/// in, every field of it; and loads again the same.
pub(super) async fn session_loads_with_its_customer<I: Issue>(issuer: I) -> Checked {
    let store = issuer.backend().store();
    let now = now(issuer.backend()).await;
    let jane = issuer
        .add_customer(fixtures::individual("Jane", now))
        .await?;
    let issued = issuer
        .issue(request(jane.id, TokenKind::Customer, now))
        .await?;
    for attempt in ["load of an issued session", "a second load of it"] {
        let record = found(attempt, load(&store, &issued.token).await)?;
        same_session(attempt, &record, &issued, &hash(&issued.token), &jane)?;
    }
    Ok(())
}

/// A member session of a team customer loads with its member, every field of it.
pub(super) async fn member_session_carries_its_member<I: Issue>(issuer: I) -> Checked {
    let store = issuer.backend().store();
    let now = now(issuer.backend()).await;
    let team = issuer.add_customer(fixtures::team("Acme", now)).await?;
    let issued = issuer
        .issue(request(team.id, TokenKind::Member, now))
        .await?;
    let what = "load of a member session";
    let record = found(what, load(&store, &issued.token).await)?;
    same_session(what, &record, &issued, &hash(&issued.token), &team)
}

/// A revoked session stops loading; the customer's other session does not.
pub(super) async fn revoked_session_does_not_load<I: Issue>(issuer: I) -> Checked {
    let store = issuer.backend().store();
    let now = now(issuer.backend()).await;
    let jane = issuer
        .add_customer(fixtures::individual("Jane", now))
        .await?;
    let revoked = issuer
        .issue(request(jane.id, TokenKind::Customer, now))
        .await?;
    let kept = issuer
        .issue(request(jane.id, TokenKind::Customer, now))
        .await?;
    found(
        "load before the revocation",
        load(&store, &revoked.token).await,
    )?;
    issuer.revoke(&revoked.token).await?;
    nothing(
        "load of a revoked session",
        load(&store, &revoked.token).await,
    )?;
    found(
        "load of the customer's other session",
        load(&store, &kept.token).await,
    )?;
    Ok(())
}

/// A deleted customer's sessions stop loading; another customer's do not.
pub(super) async fn deleted_customer_does_not_load<I: Issue>(issuer: I) -> Checked {
    let store = issuer.backend().store();
    let now = now(issuer.backend()).await;
    let jane = issuer
        .add_customer(fixtures::individual("Jane", now))
        .await?;
    let john = issuer
        .add_customer(fixtures::individual("John", now))
        .await?;
    let janes = issuer
        .issue(request(jane.id, TokenKind::Customer, now))
        .await?;
    let johns = issuer
        .issue(request(john.id, TokenKind::Customer, now))
        .await?;
    found("load before the deletion", load(&store, &janes.token).await)?;
    issuer.delete_customer(jane.id).await?;
    nothing(
        "load of a session of a deleted customer",
        load(&store, &janes.token).await,
    )?;
    found(
        "load of another customer's session",
        load(&store, &johns.token).await,
    )?;
    Ok(())
}
