//! The store contract, run against the embedded [`MemoryStore`].

mod common;

use common::store_contract::{ContractStore, store_contract_tests};
use tower_customer_session::model::CustomerData;
use tower_customer_session::{Customer, ManualClock, MemoryStore};
use uuid::Uuid;

impl ContractStore for MemoryStore {
    async fn add_customer(&self, data: CustomerData) -> Customer {
        self.insert_customer(data)
    }

    async fn soft_delete_customer(&self, id: Uuid) {
        assert!(self.delete_customer(id));
    }

    async fn raw_contents(&self) -> String {
        // The memory store has no wire format; its `Debug` is all it shows of itself.
        format!("{self:?}")
    }
}

store_contract_tests!({
    let clock = ManualClock::new(common::start_time());
    (MemoryStore::with_clock(clock.clone()), clock)
});
