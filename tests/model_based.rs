//! Model-based test: random sequences of session operations against the real layer, cache
//! and store, checked step by step against a plain map of live sessions.
//!
//! The model knows nothing about caching. Whatever the cache holds, every request's status
//! must be the model's: 200 exactly while the session exists, is unrevoked, unexpired on the
//! shared manual clock, and its customer is not deleted; 401 otherwise.

mod common;

use axum::Router;
use axum::body::Body;
use chrono::{DateTime, TimeDelta, Utc};
use common::fixture::{COOKIE, Fixture, MEMBER, UNKNOWN, VALID, challenge_error, epoch};
use http::Request;
use proptest::prelude::*;
use tower::ServiceExt;
use tower_customer_session::{CreateError, CreateSession, CredentialSource, Customer, StoreError};

const SESSION_TTL_MINUTES: i64 = 30;

#[derive(Debug, Clone)]
enum Op {
    /// Issue a session for customer `0` (alice) or `1` (bob).
    Create(usize),
    /// Revoke the token at this index of all tokens seen so far.
    Revoke(prop::sample::Index),
    /// Revoke every session of a customer.
    RevokeAll(usize),
    /// Move the shared clock forward.
    Advance(i64),
    /// Soft-delete a customer in the store and drop their cached sessions.
    Delete(usize),
    /// Drop the whole cache (as after losing a cross-instance invalidation channel).
    InvalidateAll,
    /// A request through the layer with a token, by header or by cookie.
    Request(prop::sample::Index, bool),
    /// `SessionManager::authenticate` directly.
    Authenticate(prop::sample::Index),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..2usize).prop_map(Op::Create),
        2 => any::<prop::sample::Index>().prop_map(Op::Revoke),
        1 => (0..2usize).prop_map(Op::RevokeAll),
        // Up to 25 minutes: a session lives 30, so a few steps expire it.
        3 => (1..1_500i64).prop_map(Op::Advance),
        1 => (0..2usize).prop_map(Op::Delete),
        1 => Just(Op::InvalidateAll),
        10 => (any::<prop::sample::Index>(), any::<bool>()).prop_map(|(i, c)| Op::Request(i, c)),
        2 => any::<prop::sample::Index>().prop_map(Op::Authenticate),
    ]
}

/// One token the model knows about.
#[derive(Debug)]
struct Entry {
    token: String,
    customer: Option<usize>,
    expires_at: DateTime<Utc>,
    in_store: bool,
}

/// The reference: sessions in a list, customers as a deleted flag, time as a value.
struct Model {
    now: DateTime<Utc>,
    deleted: [bool; 2],
    tokens: Vec<Entry>,
}

impl Model {
    fn new() -> Self {
        let end = epoch() + TimeDelta::hours(1);
        let entry = |token: &str, customer, in_store| Entry {
            token: token.to_owned(),
            customer,
            expires_at: end,
            in_store,
        };
        Self {
            now: epoch(),
            deleted: [false; 2],
            // The fixture's two seeded sessions, and a well-formed token never issued.
            tokens: vec![
                entry(VALID, Some(0), true),
                entry(MEMBER, Some(1), true),
                entry(UNKNOWN, None, false),
            ],
        }
    }

    fn live(&self, entry: &Entry) -> bool {
        entry.in_store
            && entry.customer.is_some_and(|c| !self.deleted[c])
            && self.now < entry.expires_at
    }
}

struct Real {
    fixture: Fixture,
    app: Router,
}

impl Real {
    fn customer(&self, index: usize) -> &Customer {
        if index == 0 {
            &self.fixture.alice
        } else {
            &self.fixture.bob
        }
    }

    async fn request(&self, token: &str, by_cookie: bool) -> (u16, Option<String>) {
        let request = Request::builder().uri("/me");
        let request = if by_cookie {
            request.header("cookie", format!("{COOKIE}={token}"))
        } else {
            request.header("authorization", format!("Bearer {token}"))
        };
        let response = self
            .app
            .clone()
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let error = response
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .and_then(|v| challenge_error(v.as_bytes()));
        (response.status().as_u16(), error)
    }
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let fixture = Fixture::with(|b| {
        b.session_ttl(std::time::Duration::from_secs(
            SESSION_TTL_MINUTES as u64 * 60,
        ))
    })
    .await;
    let app = fixture.app();
    let real = Real { fixture, app };
    let sessions = &real.fixture.sessions;
    let mut model = Model::new();
    let mut creates = 0;

    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Create(c) => {
                creates += 1;
                let created = sessions
                    .create(real.customer(c).id, CreateSession::default())
                    .await;
                if model.deleted[c] {
                    prop_assert!(
                        matches!(
                            created,
                            Err(CreateError::Store(StoreError::UnknownCustomer))
                        ),
                        "step {}: session created for a deleted customer",
                        step
                    );
                } else {
                    let session = created.map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let expires_at = model.now + TimeDelta::minutes(SESSION_TTL_MINUTES);
                    prop_assert_eq!(session.expires_at, expires_at);
                    model.tokens.push(Entry {
                        token: session.token.expose_secret().to_owned(),
                        customer: Some(c),
                        expires_at,
                        in_store: true,
                    });
                }
            }
            Op::Revoke(i) => {
                let at = i.index(model.tokens.len());
                let entry = &mut model.tokens[at];
                let revoked = sessions.revoke(&entry.token).await;
                // An expired session may have been swept already: either answer is right.
                if entry.in_store && model.now < entry.expires_at {
                    prop_assert_eq!(revoked.ok(), Some(true), "step {}: revoke", step);
                } else if !entry.in_store {
                    prop_assert_eq!(revoked.ok(), Some(false), "step {}: revoke", step);
                } else {
                    prop_assert!(revoked.is_ok(), "step {}: revoke", step);
                }
                entry.in_store = false;
            }
            Op::RevokeAll(c) => {
                // Expired sessions may have been swept already: they may or may not count.
                let (mut live, mut expired) = (0, 0);
                for entry in &mut model.tokens {
                    if entry.customer == Some(c) && entry.in_store {
                        entry.in_store = false;
                        if model.now < entry.expires_at {
                            live += 1;
                        } else {
                            expired += 1;
                        }
                    }
                }
                let revoked = sessions.revoke_all(real.customer(c).id).await;
                let revoked = revoked.map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(
                    (live..=live + expired).contains(&revoked),
                    "step {}: revoke_all: {} of {} live and {} expired",
                    step,
                    revoked,
                    live,
                    expired
                );
            }
            Op::Advance(seconds) => {
                real.fixture.clock.advance(TimeDelta::seconds(seconds));
                model.now += TimeDelta::seconds(seconds);
            }
            Op::Delete(c) => {
                let id = real.customer(c).id;
                // Through the crate's API, which drops the cached sessions itself.
                prop_assert!(sessions.delete_customer(id).await.unwrap());
                model.deleted[c] = true;
            }
            Op::InvalidateAll => sessions.invalidate_all(),
            Op::Request(i, by_cookie) => {
                let entry = &model.tokens[i.index(model.tokens.len())];
                let (status, error) = real.request(&entry.token, by_cookie).await;
                if model.live(entry) {
                    prop_assert_eq!(
                        status,
                        200,
                        "step {}: live session refused: {:?}",
                        step,
                        entry
                    );
                } else {
                    prop_assert_eq!(
                        status,
                        401,
                        "step {}: dead session accepted: {:?}",
                        step,
                        entry
                    );
                    prop_assert_eq!(error.as_deref(), Some("invalid_token"));
                }
            }
            Op::Authenticate(i) => {
                let entry = &model.tokens[i.index(model.tokens.len())];
                let result = sessions
                    .authenticate(&entry.token, CredentialSource::Header)
                    .await;
                match result {
                    Ok((customer, info)) => {
                        prop_assert!(
                            model.live(entry),
                            "step {}: dead session authenticated",
                            step
                        );
                        prop_assert_eq!(
                            Some(customer.id),
                            entry.customer.map(|c| real.customer(c).id)
                        );
                        prop_assert_eq!(info.expires_at, entry.expires_at);
                    }
                    Err(rejection) => {
                        prop_assert!(
                            !model.live(entry),
                            "step {}: live session refused: {}",
                            step,
                            rejection
                        );
                    }
                }
            }
        }
    }
    // Requests and authentications never write: every store create is one of ours.
    prop_assert_eq!(real.fixture.store.creates(), creates);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn layer_cache_and_store_agree_with_the_model(ops in prop::collection::vec(op(), 1..=50)) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(run(ops))?;
    }
}
