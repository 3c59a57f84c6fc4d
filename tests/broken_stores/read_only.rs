//! The reference server seen through a read-only store, for the kit's read-only part: the
//! store only loads, and the [`Issuer`] issues, revokes and deletes at the server.

use std::sync::Arc;

use tower_customer_session::ManualClock;
use tower_customer_session::model::Customer;
use tower_customer_session::store::{NewSession, SessionRecord, StoreScope};
use tower_customer_session::testing::{
    self, Backend, IssueRequest, Issued, Issuer, Outage, Unsupported,
};
use tower_customer_session::token::{SessionToken, TokenFormat, TokenHasher};
use tower_customer_session::uuid::Uuid;
use tower_customer_session::{CustomerStore, SessionAdmin, SessionKey, SessionStore, StoreError};

use super::{Fixture, Handle, Server};

/// A store that implements resolution alone.
pub struct Reader(Handle);

impl SessionStore for Reader {
    async fn load(&self, key: SessionKey<'_>) -> Result<Option<SessionRecord>, StoreError> {
        self.0.load(key).await
    }

    fn scope(&self) -> StoreScope {
        self.0.scope()
    }
}

/// The kit's view of [`Reader`]: the same hooks as [`Fixture`], and the server as issuer.
pub struct ReadOnlyFixture(pub Arc<Server>);

impl ReadOnlyFixture {
    fn full(&self) -> Fixture {
        Fixture(self.0.clone())
    }
}

impl Backend for ReadOnlyFixture {
    type Store = Reader;

    fn store(&self) -> Reader {
        Reader(self.full().store())
    }

    async fn peer(&self) -> Option<Reader> {
        self.full().peer().await.map(Reader)
    }

    fn clock(&self) -> Option<ManualClock> {
        self.full().clock()
    }

    async fn outage(&self) -> Option<Outage> {
        self.full().outage().await
    }
}

impl Issuer for ReadOnlyFixture {
    async fn add_customer(&self, customer: Customer) -> Customer {
        self.full()
            .store()
            .upsert_customer(customer.clone())
            .await
            .unwrap();
        customer
    }

    async fn issue(&self, request: IssueRequest) -> Issued {
        let token = TokenFormat::polar().generate(request.kind).unwrap();
        // The kit hashes with its own secret; the authority keeps what it is given.
        let hash = kit_hasher().hash(token.expose_secret());
        let new = NewSession {
            id: Uuid::new_v4(),
            token_hash: hash,
            kind: request.kind,
            customer: request.customer_id.into(),
            created_at: request.created_at,
            expires_at: request.expires_at,
            return_url: request.return_url.clone(),
            member: request.member.clone(),
        };
        let id = new.id;
        self.full().store().create(new).await.unwrap();
        let mut issued = Issued::as_requested(
            SessionToken::from_secret(token.expose_secret().to_owned()),
            &request,
        );
        issued.id = Some(id);
        issued
    }

    async fn revoke(&self, token: &SessionToken) -> Result<(), Unsupported> {
        let hash = kit_hasher().hash(token.expose_secret());
        self.full().store().revoke(&hash).await.unwrap();
        Ok(())
    }

    async fn delete_customer(&self, id: Uuid) -> Result<(), Unsupported> {
        let at = tower_customer_session::chrono::Utc::now();
        self.full().store().delete_customer(id, at).await.unwrap();
        Ok(())
    }
}

/// The kit loads with keys hashed with its secret: file sessions under the same hash.
fn kit_hasher() -> TokenHasher {
    TokenHasher::new(testing::SECRET)
}
