// The store test kit on `MapStore`: the test a store's author writes, shown in the "Writing
// a store" guide and run by `tests/custom_store_example.rs`.

use std::sync::Arc;
use std::time::Duration;

use tower_customer_session::ManualClock;
use tower_customer_session::chrono::Utc;
use tower_customer_session::testing::{self, Backend, Outage};

use crate::store::{MapStore, Server};

/// A fresh, empty server, and what the kit needs to test the stores connected to it.
struct Fixture {
    server: Arc<Server>,
    clock: ManualClock,
}

impl Fixture {
    fn new() -> Self {
        let clock = ManualClock::new(Utc::now());
        let server = Server::with_clock(clock.clone());
        Self { server, clock }
    }

    fn connect(&self) -> MapStore {
        // A short heartbeat: the kit watches an idle feed past its silence limit.
        MapStore::connect(&self.server).heartbeat(Duration::from_millis(25))
    }
}

impl Backend for Fixture {
    type Store = MapStore;

    fn store(&self) -> MapStore {
        self.connect()
    }

    // A second instance of the application, on the same server.
    async fn peer(&self) -> Option<MapStore> {
        Some(self.connect())
    }

    // The store judges expiry by this clock, so the kit checks `expires_at` exactly.
    fn clock(&self) -> Option<ManualClock> {
        Some(self.clock.clone())
    }

    async fn outage(&self) -> Option<Outage> {
        self.server.set_up(false);
        let server = self.server.clone();
        Some(Outage::new(move || server.set_up(true)))
    }

    async fn dump(&self) -> Option<String> {
        Some(self.server.dump())
    }

    async fn feed_subscriptions(&self) -> Option<usize> {
        Some(self.server.subscribers())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_store_passes_the_store_test_kit() {
    testing::run(|| async { Fixture::new() }).await;
}
