//! The store test kit: the contract of the [store traits](crate::store), checked in one
//! call. Feature `testing`.
//!
//! Every in-tree backend runs it, and so should yours. It issues, loads, revokes, races and
//! breaks your store, and reports every check by name: for a failure, what it looked at,
//! what the contract asks for and what the store did. It has been shown to fail a store
//! with any one of the bugs in the crate's own set of broken stores
//! (`tests/kit_catches_broken_stores.rs`).
//!
//! # Running it
//!
//! In `Cargo.toml`:
//!
//! ```toml
//! [dev-dependencies]
//! tower-customer-session = { version = "0.1", features = ["testing"] }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! ```
//!
//! Then a test gives the kit a fresh, empty [`Backend`] for each check:
//!
//! ```
//! use tower_customer_session::MemoryStore;
//! use tower_customer_session::testing;
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn the_store_passes_the_test_kit() {
//!     testing::run(|| async { MemoryStore::new() }).await;
//! }
//! # fn main() {
//! #     tokio::runtime::Runtime::new().unwrap().block_on(testing::Kit::new(|| async { MemoryStore::new() }).only("sessions").run()).assert_passed();
//! # }
//! ```
//!
//! [`run`] panics with every failure at once, and prints the skipped checks with the
//! reason for each. A [`Kit`] runs one check (`Kit::new(fresh).only("feed.goes_live")`) or
//! a group (`"feed"`) and hands back the [`Report`]. [`run_read_only`] runs the part for a
//! read-only store.
//!
//! A `Backend` is a type of your test that holds a store and the means to test it: a
//! [second handle on the same data](Backend::peer), the [clock](Backend::clock) the store
//! judges expiry by, a way to [make it fail](Backend::outage), a [dump](Backend::dump) of
//! everything it keeps, a count of its [feed subscriptions](Backend::feed_subscriptions).
//! Only [`store`](Backend::store) is required; a check that needs a hook you did not
//! give is skipped, and the report says which hook it missed.
//!
//! # Which checks apply to which store
//!
//! A read-only store (only [`SessionStore`], e.g. one that asks an upstream) gets the checks
//! marked "every store" below, through an [`Issuer`] that issues sessions at its
//! authority. A full store ([`SessionAdmin`] and [`CustomerStore`]) gets every check; the
//! kit issues through the store itself.
//!
//! | check | the contract | applies to | needs |
//! |---|---|---|---|
//! | `load.unknown_token_loads_nothing` | a token nobody issued loads `None` | every store | |
//! | `load.session_loads_with_its_customer` | every field of the session as issued, joined with its customer as it went in | every store | |
//! | `load.member_session_carries_its_member` | a member session loads with its member | every store | |
//! | `load.revoked_session_does_not_load` | a revoked session loads `None`, the customer's other one still loads | every store | `Issuer::revoke` |
//! | `load.deleted_customer_does_not_load` | a deleted customer's sessions load `None` | every store | `Issuer::delete_customer` |
//! | `time.expired_session_does_not_load` | live before `expires_at`, `None` after, on the store's own clock | every store | |
//! | `time.expires_at_itself_is_expired` | `expires_at == now` is expired | every store | `Backend::clock` |
//! | `failures.outage_is_an_error_never_not_found` | during an outage a load is an error (`503`), never `None` (`401`), and the store recovers | every store | `Backend::outage` |
//! | `scope.process_scope_only_for_one_process` | a store another process can open says `StoreScope::Shared`; its peer sees its data | every store | `Backend::peer` |
//! | `feed.watch_outside_a_runtime_does_not_panic` | `watch` called without a current Tokio runtime does not panic | every store with a feed | |
//! | `sessions.create_returns_what_went_in` | `create` returns the session and the customer as they went in | full stores | |
//! | `sessions.create_is_insert_if_absent` | an existing hash is a `Conflict`, through either instance, and the first session stays | full stores | |
//! | `sessions.create_by_external_id` | a create by external id belongs to that customer | full stores | |
//! | `sessions.unknown_customer_gets_no_session` | `UnknownCustomer`, and nothing left behind that comes to life when the customer appears | full stores | |
//! | `sessions.deleted_customer_gets_no_session` | `UnknownCustomer` for a deleted customer, by id or external id | full stores | |
//! | `sessions.revoke_removes_exactly_one` | `revoke` removes one session (member sessions too) and says whether it existed | full stores | |
//! | `sessions.revoke_all_removes_every_session_of_the_customer` | `revoke_all` removes and counts every session of the customer, member sessions included | full stores | |
//! | `tokens.hash_is_matched_exactly` | hashes differing in one byte or in letter case are different sessions | full stores | |
//! | `tokens.raw_token_never_stored` | no trace of the raw token shown in loads, in plain text, hex or base64 | full stores | `Backend::dump` |
//! | `customers.every_field_round_trips` | every field, metadata key order, team type and microseconds included, from upsert, reads and loads | full stores | |
//! | `customers.edits_show_in_loads` | loads join the customer as it is now | full stores | |
//! | `customers.external_id_follows_edits` | an external id an edit replaced or removed resolves no more; a freed one resolves to its new owner | full stores | |
//! | `customers.deletion_is_soft_at_the_time_given` | `delete_customer(id, at)` keeps the customer with `deleted_at == at` | full stores | |
//! | `customers.deleting_again_keeps_the_first_time` | a second, later deletion keeps the first `deleted_at` | full stores | |
//! | `failures.every_call_fails_during_an_outage` | during an outage every call is an error, never `UnknownCustomer`, `Ok(false)`, `Ok(0)` or `Ok(None)` | full stores | `Backend::outage` |
//! | `concurrency.one_create_wins_per_hash` | concurrent creates of one hash: one wins, the others are `Conflict` | full stores | |
//! | `concurrency.concurrent_writes_all_land` | concurrent upserts, creates and revocations are all kept | full stores | |
//! | `rotation.sessions_under_either_key_resolve_and_revoke` | during a session key rotation ([`accept_secrets`](crate::SessionManagerBuilder::accept_secrets)), sessions stored under either key resolve and revoke through managers in either phase | full stores | |
//! | `feed.goes_live` | both instances' feeds go live | full stores with a feed | `Backend::peer` |
//! | `feed.revocations_reach_the_peer` | a `revoke` and a `revoke_all` are refused by the other instance within [`PROPAGATION`] | full stores with a feed | `Backend::peer` |
//! | `feed.api_revocations_are_remembered_by_the_peer` | a `revoke`, a `revoke_all` and a customer deletion stay refused by the other instance when the store later serves those sessions again (announced as [`Invalidation::Revoked`](crate::store::Invalidation::Revoked) / [`CustomerRevoked`](crate::store::Invalidation::CustomerRevoked)) | full stores with a feed | `Backend::peer` |
//! | `feed.customer_changes_reach_the_peer` | an edit is seen and a deletion refused by the other instance within [`PROPAGATION`] | full stores with a feed | `Backend::peer` |
//! | `feed.announced_only_after_commit` | the other instance never caches the old session back after a revocation | full stores with a feed | `Backend::peer` |
//! | `feed.heartbeat_keeps_it_live` | an idle feed stays live past twice its `max_silence` | full stores with a feed | `Backend::peer` |
//! | `feed.burst_loses_nothing_silently` | after a burst of 1,000 changes every revocation in it is refused by the other instance | full stores with a feed | `Backend::peer` |
//! | `feed.outage_is_reported` | during an outage the feed goes lost, then live again, and delivers | full stores with a feed | `Backend::outage` |
//! | `feed.stops_with_its_manager` | once its manager is dropped, the feed's task ends | full stores with a feed | `Backend::feed_subscriptions` |
//!
//! # Time
//!
//! A store judges expiry by some clock: the application host's (as Redis does), the
//! database's `now()` (as PostgreSQL does), or one it is given (as
//! [`MemoryStore::with_clock`](crate::MemoryStore::with_clock) is). If the kit can set it
//! ([`Backend::clock`]), it checks the boundary to the microsecond: live one microsecond
//! before `expires_at`, expired at `expires_at`. If it can only read it ([`Backend::now`]),
//! it waits for a short session to expire and reads the store's clock just before and just
//! after each load: a load that began at or after `expires_at` must find nothing, one that
//! ended before it must find the session. That catches a store that ignores expiry or ends
//! sessions early, but not one that is wrong by a microsecond at the boundary, which only
//! a clock the kit sets can show. The timestamps the kit hands a store all carry
//! microseconds, so a store that keeps fewer shows it in every comparison.
//!
//! # Failures
//!
//! With [`Backend::outage`], the kit breaks the backend under a stored session and checks
//! that every call is an error the layer answers with `503`, never an answer made up
//! without the backend (a `401` for a session that is valid, a revocation reported as
//! done or as nothing to do), and that the store recovers by itself. A TCP proxy between
//! the store and its server, which the test cuts, makes an honest outage; the in-tree
//! Redis and PostgreSQL tests do that.
//!
//! # Feeds
//!
//! A store with a feed runs two managers on two instances ([`Backend::store`] and
//! [`Backend::peer`]), as two processes of one application would. The kit waits past
//! twice the feed's [`max_silence`](crate::store::Watch::max_silence), so give the test's
//! store a short heartbeat. A store without a feed has the `feed` checks skipped, and the
//! report says so.

mod backend;
mod checks;
mod expect;
mod fixtures;
mod future;
mod kit;
mod memory;
mod report;

use std::future::Future;
use std::time::Duration;

pub use backend::{Backend, IssueRequest, Issued, Issuer, Outage, Unsupported};
pub use kit::Kit;
pub use report::{Failure, Outcome, Report};

use crate::store::{CustomerStore, SessionAdmin, SessionStore};
use crate::{CredentialSource, SessionManager};

/// The HMAC secret of every [`SessionKey`](crate::SessionKey) the kit loads with and of
/// every [`SessionManager`] it builds. An [`Issuer`] whose authority keeps token hashes
/// hashes with it, so the store finds what was issued.
pub const SECRET: &[u8] = b"store test kit secret, 32 bytes!";

/// How soon a change on one instance must be refused or seen on another, with a feed.
pub const PROPAGATION: Duration = Duration::from_millis(100);

/// Run every check on a full store, each on a fresh backend from `fresh`; panic listing
/// every failure. Skipped checks are printed with their reasons.
pub async fn run<B, F, Fut>(fresh: F)
where
    B: Backend,
    B::Store: SessionAdmin + CustomerStore,
    F: Fn() -> Fut,
    Fut: Future<Output = B>,
{
    Kit::new(fresh).run().await.assert_passed();
}

/// Run the checks that apply to a read-only store, each on a fresh backend from `fresh`
/// whose [`Issuer`] issues the sessions; panic listing every failure.
pub async fn run_read_only<B, F, Fut>(fresh: F)
where
    B: Issuer,
    F: Fn() -> Fut,
    Fut: Future<Output = B>,
{
    Kit::read_only(fresh).run().await.assert_passed();
}

/// Wait until `manager` refuses `token`, panicking if it still accepts it after
/// [`PROPAGATION`]: how a fleet test checks that a change on another instance arrived.
/// `what` names the change in the panic message.
pub async fn refused_within<S: SessionStore>(manager: &SessionManager<S>, token: &str, what: &str) {
    let deadline = tokio::time::Instant::now() + PROPAGATION;
    loop {
        if manager
            .authenticate(token, CredentialSource::Header)
            .await
            .is_err()
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} on one instance not seen by the other within {PROPAGATION:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::Kit;
    use crate::MemoryStore;

    #[test]
    fn the_module_docs_name_every_check() {
        let docs = include_str!("mod.rs");
        let kit = Kit::new(|| async { MemoryStore::new() });
        for name in kit.names() {
            assert!(
                docs.contains(&format!("| `{name}` |")),
                "{name} is missing from the table in the module docs"
            );
        }
    }
}
