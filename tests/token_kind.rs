//! The token's prefix against the stored session's kind.
//!
//! The HMAC covers the whole token, so a session issued through the crate is only ever found
//! under a token of its own kind. A store that returns a record of the other kind (a bug, a
//! hand edit) is refused: the record's kind decides the session's rights, and a member token
//! resolving to a customer session would act as the team's owner.

mod common;

use chrono::TimeDelta;
use tower_customer_session::model::{Member, MemberRole};
use tower_customer_session::reject::InvalidToken;
use tower_customer_session::store::NewSession;
use tower_customer_session::token::{TokenFormat, TokenKind};
use tower_customer_session::{
    Clock, CreateSession, CredentialSource, CustomerSessionLayer, Rejection, SessionAdmin,
};
use uuid::Uuid;

use common::{Harness, Recorder, bearer, send};

/// Store a session for a fresh token of `presented` kind, recorded as `stored`.
async fn mismatched(h: &Harness, presented: TokenKind, stored: TokenKind) -> String {
    let customer = h.customer("Acme");
    let token = TokenFormat::polar().generate(presented).unwrap();
    let now = h.clock.now();
    let member = (stored == TokenKind::Member).then(|| Member {
        id: Uuid::new_v4(),
        email: Some("dev@acme.example".into()),
        name: None,
        external_id: None,
        role: MemberRole::Member,
    });
    h.store
        .memory()
        .create(NewSession {
            id: Uuid::new_v4(),
            token_hash: h.hash(token.expose_secret()),
            kind: stored,
            customer: customer.id.into(),
            created_at: now,
            expires_at: now + TimeDelta::hours(1),
            return_url: None,
            member,
        })
        .await
        .unwrap();
    token.expose_secret().to_owned()
}

#[tokio::test]
async fn a_stored_kind_that_contradicts_the_prefix_is_refused() {
    for (presented, stored) in [
        // The dangerous one: a member token acting as the customer, i.e. as the owner.
        (TokenKind::Member, TokenKind::Customer),
        (TokenKind::Customer, TokenKind::Member),
    ] {
        let h = Harness::new();
        let token = mismatched(&h, presented, stored).await;
        for _ in 0..2 {
            let refused = h
                .sessions
                .authenticate(&token, CredentialSource::Header)
                .await;
            assert!(
                matches!(refused, Err(Rejection::InvalidToken(InvalidToken::Unknown))),
                "{presented:?} token, {stored:?} record: {:?}",
                refused.map(|(_, info)| info.kind)
            );
        }
        // Refused once at load, then from the negative cache: the check costs no hit.
        assert_eq!(h.store.loads(), 1);

        // And through the layer, the handler never sees it.
        let recorder = Recorder::default();
        let layer = CustomerSessionLayer::new(h.sessions.clone());
        let reply = send(common::app(layer, &recorder), bearer(&token)).await;
        assert_eq!(reply.status, http::StatusCode::UNAUTHORIZED);
        assert_eq!(recorder.calls(), 0);
    }
}

/// Sessions issued through the crate, of either kind, pass the check.
#[tokio::test]
async fn sessions_of_either_kind_still_authenticate() {
    let h = Harness::new();
    let customer = h.customer("Acme");
    let member = Member {
        id: Uuid::new_v4(),
        email: Some("owner@acme.example".into()),
        name: None,
        external_id: None,
        role: MemberRole::Owner,
    };
    for options in [
        CreateSession::default(),
        CreateSession::default().member(member),
    ] {
        let (token, session) = h.issue_with(&customer, options).await;
        let (_, info) = h
            .sessions
            .authenticate(&token, CredentialSource::Header)
            .await
            .unwrap();
        assert_eq!(Some(info.kind), session.token.kind());
    }
}
