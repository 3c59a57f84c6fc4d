//! The kit's view of a [`MemoryStore`], as `testing::run(|| async { MemoryStore::new() })`
//! uses it: one process, the system clock, nothing that can fail.

use super::backend::Backend;
use crate::store::MemoryStore;

impl Backend for MemoryStore {
    type Store = MemoryStore;

    fn store(&self) -> MemoryStore {
        self.clone()
    }

    async fn dump(&self) -> Option<String> {
        Some(self.dump_all())
    }
}
