//! The store test kit's read-only part on `PolarApiStore`: the portal example's API plays
//! Polar (on a memory store of its own), behind a proxy the kit can cut, and the kit issues,
//! revokes and deletes there, then checks what the store loads.

#[allow(dead_code)]
#[path = "../examples/portal/app.rs"]
mod app;
#[allow(dead_code)]
#[path = "postgres_common/proxy.rs"]
mod proxy;

use std::sync::Arc;

use tokio::net::TcpListener;
use tower_customer_session::model::Customer;
use tower_customer_session::store::NewSession;
use tower_customer_session::store::polar::PolarApiStore;
use tower_customer_session::testing::{
    Backend, IssueRequest, Issued, Issuer, Kit, Outage, Unsupported,
};
use tower_customer_session::token::{SessionToken, TokenFormat};
use tower_customer_session::uuid::Uuid;
use tower_customer_session::{DynStore, MemoryStore, SessionAdmin, SessionManager};

const ORG_TOKEN: &str = "polar_oat_kitTestOrganizationToken0123456789abcdefghij";

/// Polar, with the store under test pointed at it through a proxy.
struct Polar {
    /// What Polar keeps.
    upstream: MemoryStore,
    /// Polar's own session handling, so a revocation or deletion there also leaves its cache.
    sessions: SessionManager<DynStore>,
    proxy: Arc<proxy::Proxy>,
    base: String,
    store: PolarApiStore,
}

impl Polar {
    async fn start() -> Self {
        let upstream = MemoryStore::new();
        let sessions = SessionManager::builder(DynStore::new(upstream.clone()))
            .secret(b"polar's own secret, 32 bytes lon")
            .build()
            .unwrap();
        let router = app::router(app::AppState::new(sessions.clone(), ORG_TOKEN));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let proxy = proxy::Proxy::start(address).await;
        let base = proxy.url(&format!("http://{address}"));
        let store = Self::client(&base);
        Self {
            upstream,
            sessions,
            proxy: Arc::new(proxy),
            base,
            store,
        }
    }

    fn client(base: &str) -> PolarApiStore {
        PolarApiStore::builder()
            .base_url(base)
            .organization_token(ORG_TOKEN)
            .build()
            .unwrap()
    }
}

impl Backend for Polar {
    type Store = PolarApiStore;

    fn store(&self) -> PolarApiStore {
        self.store.clone()
    }

    // Another instance of the application, asking the same Polar.
    async fn peer(&self) -> Option<PolarApiStore> {
        Some(Self::client(&self.base))
    }

    async fn outage(&self) -> Option<Outage> {
        self.proxy.set(proxy::Mode::Cut);
        let proxy = self.proxy.clone();
        Some(Outage::new(move || proxy.set(proxy::Mode::Open)))
    }
}

impl Issuer for Polar {
    async fn add_customer(&self, customer: Customer) -> Customer {
        // With an organization token the store sees every field, as it went in.
        self.upstream.insert_customer(customer)
    }

    async fn issue(&self, request: IssueRequest) -> Issued {
        let token = TokenFormat::polar().generate(request.kind).unwrap();
        let new = NewSession {
            id: Uuid::new_v4(),
            token_hash: self.sessions.hasher().hash(token.expose_secret()),
            kind: request.kind,
            customer: request.customer_id.into(),
            created_at: request.created_at,
            expires_at: request.expires_at,
            return_url: request.return_url.clone(),
            member: request.member.clone(),
        };
        self.upstream.create(new).await.unwrap();
        let mut issued = Issued::as_requested(
            SessionToken::from_secret(token.expose_secret().to_owned()),
            &request,
        );
        // Polar shows its holder neither the session's creation time nor the member's
        // external id.
        issued.created_at = None;
        if let Some(member) = &mut issued.member {
            member.external_id = None;
        }
        issued
    }

    async fn revoke(&self, token: &SessionToken) -> Result<(), Unsupported> {
        self.sessions.revoke(token.expose_secret()).await.unwrap();
        Ok(())
    }

    async fn delete_customer(&self, id: Uuid) -> Result<(), Unsupported> {
        self.sessions.delete_customer(id).await.unwrap();
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_only_part_of_the_kit_passes_on_the_polar_api_store() {
    let report = Kit::read_only(Polar::start).run().await;
    report.assert_passed();
    // Polar judges expiry by its clock and ours, neither of which the kit can set; and
    // the store has no feed (webhooks reach the manager, not the store).
    let skipped: Vec<&str> = report.skipped().collect();
    assert_eq!(
        skipped,
        [
            "time.expires_at_itself_is_expired",
            "feed.watch_outside_a_runtime_does_not_panic"
        ],
        "{report}"
    );
}
