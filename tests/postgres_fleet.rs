//! Two instances on one PostgreSQL database, as a fleet runs: sessions made on one work on
//! the other; revocations, customer deletions and edits, whether made through the crate or
//! with plain SQL by another program, are refused or seen on the other within 100 ms; the
//! load's rules; the expiry sweep. Needs PostgreSQL at 127.0.0.1:5432 (or
//! `TEST_DATABASE_URL`); skipped loudly without one, failed under `CI=true`.

mod postgres_common;

use std::time::Duration;

use postgres_common::{PROPAGATION, Schemas, customer, manager, plain_connection, store, wait_for};
use sqlx::postgres::{PgConnection, PgListener};
use tower_customer_session::store::FeedState;
use tower_customer_session::store::postgres::PostgresStore;
use tower_customer_session::testing::refused_within;
use tower_customer_session::token::{TokenFormat, TokenHash, TokenHasher, TokenKind};
use tower_customer_session::{
    CreateSession, CredentialSource, Customer, SessionKey, SessionManager, SessionStore,
};
use uuid::Uuid;

type Manager = SessionManager<PostgresStore>;

/// Two instances (`a`, `b`) on one schema, both feeds live, and another program's
/// connection (`sql`).
struct Fleet {
    schemas: Schemas,
    schema: String,
    a: Manager,
    b: Manager,
    sql: PgConnection,
}

impl Fleet {
    async fn start() -> Option<Self> {
        if !postgres_common::available().await {
            return None;
        }
        let schemas = Schemas::default();
        let schema = schemas.fresh();
        let a = manager(store(&schema).await);
        let b = manager(store(&schema).await);
        for side in [&a, &b] {
            wait_for(
                || side.feed_state() == FeedState::Live,
                Duration::from_secs(5),
                "feeds live",
            )
            .await;
        }
        Some(Self {
            schemas,
            schema,
            a,
            b,
            sql: plain_connection().await,
        })
    }

    /// `table` qualified with the fleet's schema.
    fn table(&self, table: &str) -> String {
        format!("\"{}\".{table}", self.schema)
    }

    async fn customer(&self, name: &str) -> Customer {
        self.a.upsert_customer(customer(name)).await.unwrap()
    }

    /// A new session for `customer`, created on `a` and cached on `b`.
    async fn session(&self, customer: &Customer) -> String {
        let session = self
            .a
            .create(customer.id, CreateSession::default())
            .await
            .unwrap();
        let token = session.token.expose_secret().to_owned();
        cached_on(&self.b, &token).await;
        token
    }

    async fn sql(&mut self, statement: &str) {
        sqlx::raw_sql(statement)
            .execute(&mut self.sql)
            .await
            .unwrap();
    }

    async fn stop(self) {
        let Self { schemas, a, b, .. } = self;
        drop((a, b));
        schemas.drop_all().await;
    }
}

/// Authenticate twice, so the second answer comes from the cache.
async fn cached_on(manager: &Manager, token: &str) {
    for _ in 0..2 {
        manager
            .authenticate(token, CredentialSource::Header)
            .await
            .expect("the session authenticates");
    }
}

fn hash_of(token: &str) -> TokenHash {
    TokenHasher::new(postgres_common::SECRET).hash(token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_created_on_one_instance_works_on_another_and_after_restarts() {
    let Some(fleet) = Fleet::start().await else {
        return;
    };
    let jane = fleet.customer("Jane").await;
    let session = fleet
        .a
        .create(
            jane.id,
            CreateSession::default().return_url("https://shop.example"),
        )
        .await
        .unwrap();
    let token = session.token.expose_secret();
    let (who, info) = fleet
        .b
        .authenticate(token, CredentialSource::Header)
        .await
        .expect("b finds a's session");
    assert_eq!(who.id, jane.id);
    assert_eq!(info.id, session.id);
    assert_eq!(info.return_url.as_deref(), Some("https://shop.example"));

    // Every instance restarts: the session is in the database, not in a process.
    let schema = fleet.schema.clone();
    let Fleet { schemas, a, b, .. } = fleet;
    drop((a, b));
    let restarted = manager(store(&schema).await);
    let (who, _) = restarted
        .authenticate(token, CredentialSource::Header)
        .await
        .expect("the session survives restarts");
    assert_eq!(who.id, jane.id);
    drop(restarted);
    schemas.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_through_one_instance_are_refused_on_the_other_within_100ms() {
    let Some(fleet) = Fleet::start().await else {
        return;
    };
    let jane = fleet.customer("Jane").await;

    let token = fleet.session(&jane).await;
    assert!(fleet.a.revoke(&token).await.unwrap());
    refused_within(&fleet.b, &token, "revoke").await;

    let first = fleet.session(&jane).await;
    let second = fleet.session(&jane).await;
    assert_eq!(fleet.a.revoke_all(jane.id).await.unwrap(), 2);
    refused_within(&fleet.b, &first, "revoke_all").await;
    refused_within(&fleet.b, &second, "revoke_all").await;

    let john = fleet.customer("John").await;
    let token = fleet.session(&john).await;
    assert!(fleet.a.delete_customer(john.id).await.unwrap());
    refused_within(&fleet.b, &token, "customer deletion").await;
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_sql_from_another_program_reaches_every_instance_within_100ms() {
    let Some(mut fleet) = Fleet::start().await else {
        return;
    };
    let jane = fleet.customer("Jane").await;
    let sessions = fleet.table("customer_sessions");
    let customers = fleet.table("customers");

    // A session deleted outright.
    let token = fleet.session(&jane).await;
    cached_on(&fleet.a, &token).await;
    let hex = hash_of(&token).to_hex();
    fleet
        .sql(&format!("DELETE FROM {sessions} WHERE token = '{hex}'"))
        .await;
    refused_within(&fleet.b, &token, "DELETE of the session").await;
    refused_within(&fleet.a, &token, "DELETE of the session").await;

    // A session soft-deleted, as Polar revokes.
    let token = fleet.session(&jane).await;
    let hex = hash_of(&token).to_hex();
    fleet
        .sql(&format!(
            "UPDATE {sessions} SET deleted_at = now() WHERE token = '{hex}'"
        ))
        .await;
    refused_within(&fleet.b, &token, "soft delete of the session").await;

    // A customer edited: both instances show the new name.
    let token = fleet.session(&jane).await;
    fleet
        .sql(&format!(
            "UPDATE {customers} SET name = 'Jane Renamed' WHERE id = '{}'",
            jane.id
        ))
        .await;
    let deadline = tokio::time::Instant::now() + PROPAGATION;
    loop {
        let (who, _) = fleet
            .b
            .authenticate(&token, CredentialSource::Header)
            .await
            .unwrap();
        if who.name.as_deref() == Some("Jane Renamed") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "edit not seen");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    // The customer soft-deleted, as Polar deletes customers.
    fleet
        .sql(&format!(
            "UPDATE {customers} SET deleted_at = now() WHERE id = '{}'",
            jane.id
        ))
        .await;
    refused_within(&fleet.b, &token, "soft delete of the customer").await;
    fleet.stop().await;
}

/// The PostgreSQL guide's promise to admin tools: `customer_sessions.id` is `CustomerSession::id` and
/// `SessionInfo::id`, and a row deleted by that id is refused everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_tools_find_and_revoke_a_session_by_its_id() {
    let Some(mut fleet) = Fleet::start().await else {
        return;
    };
    let jane = fleet.customer("Jane").await;
    let session = fleet
        .a
        .create(jane.id, CreateSession::default())
        .await
        .unwrap();
    let token = session.token.expose_secret().to_owned();
    let (_, info) = fleet
        .b
        .authenticate(&token, CredentialSource::Header)
        .await
        .unwrap();
    assert_eq!(info.id, session.id);
    let sessions = fleet.table("customer_sessions");
    let (id,): (Uuid,) = sqlx::query_as(&format!("SELECT id FROM {sessions} WHERE token = $1"))
        .bind(hash_of(&token).to_hex())
        .fetch_one(&mut fleet.sql)
        .await
        .unwrap();
    assert_eq!(id, session.id);

    cached_on(&fleet.b, &token).await;
    fleet
        .sql(&format!(
            "DELETE FROM {sessions} WHERE id = '{}'",
            session.id
        ))
        .await;
    refused_within(&fleet.b, &token, "DELETE by id").await;
    refused_within(&fleet.a, &token, "DELETE by id").await;
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrecognised_message_flushes_every_cache() {
    let Some(mut fleet) = Fleet::start().await else {
        return;
    };
    let jane = fleet.customer("Jane").await;
    let token = fleet.session(&jane).await;
    assert_eq!(fleet.b.cached_sessions(), 1);
    // A message from a newer version of the protocol, or a hand-written one.
    let channel = fleet.b.store().channel().to_owned();
    fleet
        .sql(&format!("NOTIFY \"{channel}\", 'v9:something new'"))
        .await;
    wait_for(
        || fleet.b.cached_sessions() == 0,
        PROPAGATION,
        "the cache flushed",
    )
    .await;
    cached_on(&fleet.b, &token).await;
    fleet.stop().await;
}

/// A session row written directly, as another program would.
async fn insert_session(
    sql: &mut PgConnection,
    schema: &str,
    customer: Uuid,
    expires_in: &str,
    deleted: bool,
) -> (String, TokenHash) {
    let token = TokenFormat::polar().generate(TokenKind::Customer).unwrap();
    let hash = hash_of(token.expose_secret());
    sqlx::query(&format!(
        "INSERT INTO \"{schema}\".customer_sessions \
         (id, token, customer_id, expires_at, deleted_at) \
         VALUES (gen_random_uuid(), $1, $2, now() + $3::interval, \
                 CASE WHEN $4 THEN now() END)"
    ))
    .bind(hash.to_hex())
    .bind(customer)
    .bind(expires_in)
    .bind(deleted)
    .execute(sql)
    .await
    .unwrap();
    (token.expose_secret().to_owned(), hash)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_query_refuses_expired_and_deleted_sessions_and_deleted_customers() {
    let Some(mut fleet) = Fleet::start().await else {
        return;
    };
    let store = fleet.a.store().clone();
    let load = |token: String, hash: TokenHash| {
        let store = store.clone();
        async move {
            store
                .load(SessionKey::new(&hash, &token))
                .await
                .expect("load")
        }
    };
    let jane = fleet.customer("Jane").await;
    let schema = fleet.schema.clone();

    let (token, hash) = insert_session(&mut fleet.sql, &schema, jane.id, "1 hour", false).await;
    let record = load(token, hash).await.expect("a live session loads");
    assert_eq!(record.customer.id, jane.id);
    assert!(record.token_hash == hash, "the stored hash is returned");
    assert_eq!(record.kind, TokenKind::Customer);

    // Expired by the database clock, by a millisecond.
    let (token, hash) =
        insert_session(&mut fleet.sql, &schema, jane.id, "-1 millisecond", false).await;
    assert!(load(token, hash).await.is_none(), "expired");
    // Expiring in 300 ms by the database clock: loads now, not after.
    let (token, hash) =
        insert_session(&mut fleet.sql, &schema, jane.id, "300 milliseconds", false).await;
    assert!(load(token.clone(), hash).await.is_some(), "not expired yet");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(load(token, hash).await.is_none(), "expired since");
    // Soft-deleted.
    let (token, hash) = insert_session(&mut fleet.sql, &schema, jane.id, "1 hour", true).await;
    assert!(load(token, hash).await.is_none(), "soft-deleted session");
    // A live session of a deleted customer.
    let john = fleet.customer("John").await;
    let (token, hash) = insert_session(&mut fleet.sql, &schema, john.id, "1 hour", false).await;
    assert!(load(token.clone(), hash).await.is_some());
    fleet.a.delete_customer(john.id).await.unwrap();
    assert!(load(token, hash).await.is_none(), "deleted customer");
    fleet.stop().await;
}

/// Every message on `listener` within `wait`.
async fn messages(listener: &mut PgListener, wait: Duration) -> Vec<String> {
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Ok(notification)) = tokio::time::timeout_at(deadline, listener.recv()).await {
        received.push(notification.payload().to_owned());
    }
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_deletes_only_expired_sessions_and_announces_nothing() {
    let Some(mut fleet) = Fleet::start().await else {
        return;
    };
    let store = fleet.a.store().clone();
    let jane = fleet.customer("Jane").await;
    let schema = fleet.schema.clone();
    for _ in 0..3 {
        insert_session(&mut fleet.sql, &schema, jane.id, "-1 minute", false).await;
    }
    let live = fleet.session(&jane).await;
    let mut listener = PgListener::connect(&postgres_common::database_url())
        .await
        .unwrap();
    listener.listen(store.channel()).await.unwrap();

    assert_eq!(store.delete_expired().await.unwrap(), 3);
    assert_eq!(store.delete_expired().await.unwrap(), 0, "nothing left");
    assert!(
        messages(&mut listener, Duration::from_millis(200))
            .await
            .is_empty(),
        "expired rows are in no cache: the sweep announces nothing"
    );
    cached_on(&fleet.b, &live).await;
    // The listener does hear real revocations: the row's change, and that it was revoked
    // through the API.
    fleet.a.revoke(&live).await.unwrap();
    let mut heard = messages(&mut listener, Duration::from_millis(200)).await;
    heard.sort();
    let hex = hash_of(&live).to_hex();
    assert_eq!(heard, [format!("r:{hex}"), format!("s:{hex}")]);

    // The periodic sweep.
    for _ in 0..2 {
        insert_session(&mut fleet.sql, &schema, jane.id, "-1 second", false).await;
    }
    let count =
        format!("SELECT count(*) FROM \"{schema}\".customer_sessions WHERE expires_at <= now()");
    let sweep = store.spawn_sweep(Duration::from_millis(50));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left: i64 = sqlx::query_scalar(&count)
            .fetch_one(&mut fleet.sql)
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the sweep ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sweep.abort();
    // The revoked session is a soft delete, kept (and refused) until it expires.
    let kept: Vec<bool> = sqlx::query_scalar(&format!(
        "SELECT deleted_at IS NOT NULL FROM \"{schema}\".customer_sessions"
    ))
    .fetch_all(&mut fleet.sql)
    .await
    .unwrap();
    assert_eq!(kept, [true]);
    fleet.stop().await;
}

/// A revocation undone in SQL (`deleted_at = NULL`) is announced like any change, and the
/// instances that had refused the session (and remembered the refusal in their negative
/// cache) accept it again within the propagation bound, not after `negative_cache_ttl`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_undone_in_sql_is_honoured_within_100ms() {
    let Some(mut fleet) = Fleet::start().await else {
        return;
    };
    let jane = fleet.customer("Jane").await;
    let sessions = fleet.table("customer_sessions");
    let token = fleet.session(&jane).await;
    let hex = hash_of(&token).to_hex();
    fleet
        .sql(&format!(
            "UPDATE {sessions} SET deleted_at = now() WHERE token = '{hex}'"
        ))
        .await;
    for side in [&fleet.a, &fleet.b] {
        refused_within(side, &token, "soft delete in SQL").await;
        // Refused twice: the second answer comes from the negative cache.
        assert!(
            side.authenticate(&token, CredentialSource::Header)
                .await
                .is_err()
        );
    }
    fleet
        .sql(&format!(
            "UPDATE {sessions} SET deleted_at = NULL WHERE token = '{hex}'"
        ))
        .await;
    for side in [&fleet.a, &fleet.b] {
        let deadline = tokio::time::Instant::now() + PROPAGATION;
        while side
            .authenticate(&token, CredentialSource::Header)
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the undone revocation is still refused after {PROPAGATION:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    fleet.stop().await;
}

/// A revocation made through the API is never undone, not even by the data: with the
/// session (and the customers) put back in SQL, as a restore from an older backup would,
/// the instance that revoked and the one that heard of it both keep refusing, while a
/// session created afterwards is accepted. (A revocation made in SQL is only an
/// invalidation, and may be undone in SQL: the test above.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_made_through_the_api_stays_refused_when_the_data_comes_back() {
    let Some(mut fleet) = Fleet::start().await else {
        return;
    };
    let (jane, john, mary) = (
        fleet.customer("Jane").await,
        fleet.customer("John").await,
        fleet.customer("Mary").await,
    );
    let tokens = [
        fleet.session(&jane).await,
        fleet.session(&john).await,
        fleet.session(&mary).await,
    ];
    assert!(fleet.a.revoke(&tokens[0]).await.unwrap());
    assert_eq!(fleet.a.revoke_all(john.id).await.unwrap(), 1);
    assert!(fleet.a.delete_customer(mary.id).await.unwrap());
    for token in &tokens {
        refused_within(&fleet.b, token, "a revocation on A").await;
    }

    let (sessions, customers) = (fleet.table("customer_sessions"), fleet.table("customers"));
    fleet
        .sql(&format!(
            "UPDATE {sessions} SET deleted_at = NULL; UPDATE {customers} SET deleted_at = NULL"
        ))
        .await;
    // Long enough for the triggers' messages to have flushed both caches.
    tokio::time::sleep(PROPAGATION).await;
    for (side, name) in [(&fleet.a, "A, which revoked"), (&fleet.b, "B, which heard")] {
        for token in &tokens {
            assert!(
                side.authenticate(token, CredentialSource::Header)
                    .await
                    .is_err(),
                "{name} accepted a revoked session whose row came back"
            );
        }
    }
    let fresh = fleet.session(&john).await;
    cached_on(&fleet.a, &fresh).await;
    fleet.stop().await;
}
