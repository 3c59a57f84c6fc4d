//! Heap bytes per cached session, counted by a global allocator wrapper.
//!
//! For each population the sessions are first created in a `MemoryStore` (not counted),
//! then every token is authenticated once, which loads it and inserts it into the cache.
//! The bytes still allocated after that warm-up, minus those before it, divided by the
//! number of sessions, is the cost of one cached session: the cache entry, moka's
//! bookkeeping (hash table, access-order deque, frequency sketch), the `SessionInfo`, and
//! whatever the store's answer brought along.
//!
//! Three populations:
//! * all sessions of one customer, `MemoryStore`: the customer is one shared `Arc`;
//! * one customer per session, `MemoryStore`: the cache shares each customer's `Arc` with
//!   the store, so the customer's own bytes are not added by caching;
//! * one customer per session, a store that returns a fresh copy of the customer on every
//!   load, as a Redis or PostgreSQL backend does when it decodes a row. This is what a
//!   production deployment pays.
//!
//! Run: `cargo bench -p tower-customer-session-benches --bench memory` (writes `benches/results/memory.md`).

mod common;

use std::alloc::System;
use std::fmt::Write as _;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower_customer_session::store::SessionAdmin;
use tower_customer_session::{CredentialSource, Customer, MemoryStore, SessionManager};

use common::instrumented::Instrumented;
use common::{Spread, bench_store, builder, demo_customer, populate};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not yet freed since `region` started.
fn live_bytes(region: &Region<'_, System>) -> i64 {
    let change = region.change();
    change.bytes_allocated as i64 - change.bytes_deallocated as i64
        + change.bytes_reallocated as i64
}

/// A `MemoryStore` whose loads return a private copy of the customer, the way a backend
/// that decodes rows or JSON does.
fn decoding(memory: MemoryStore) -> Instrumented {
    let store = bench_store(memory);
    store.decode_copies(true);
    store
}

struct Row {
    population: &'static str,
    sessions: usize,
    store_bytes: f64,
    cache_bytes: f64,
}

async fn measure<S: SessionAdmin>(
    population: &'static str,
    memory: &MemoryStore,
    store: S,
    n: usize,
    spread: Spread,
) -> Row {
    let sessions: SessionManager<S> = builder(store).cache_capacity(n as u64).build().unwrap();

    let region = Region::new(GLOBAL);
    let tokens = populate(memory, &sessions, n, spread).await;
    // The token strings are the bench's own; only the store's share is reported.
    let token_bytes: i64 = tokens.iter().map(|t| t.capacity() as i64).sum::<i64>()
        + (tokens.capacity() * std::mem::size_of::<String>()) as i64;
    let store_bytes = live_bytes(&region) - token_bytes;

    let region = Region::new(GLOBAL);
    for token in &tokens {
        let resolved = sessions
            .authenticate(token, CredentialSource::Header)
            .await
            .expect("a live session");
        drop(resolved);
    }
    // Lets moka apply its buffered writes (deque nodes, sketch) before counting.
    assert_eq!(
        sessions.cached_sessions(),
        n as u64,
        "every session is cached"
    );
    let cache_bytes = live_bytes(&region);

    Row {
        population,
        sessions: n,
        store_bytes: store_bytes as f64 / n as f64,
        cache_bytes: cache_bytes as f64 / n as f64,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        // `cargo bench -p tower-customer-session-benches -- --list` asks every target for its benchmarks.
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    let region = Region::new(GLOBAL);
    let customer = Customer::new(demo_customer());
    let customer_bytes = live_bytes(&region);
    drop(customer);

    let mut rows = Vec::new();
    for n in [100_000, 1_000_000] {
        rt.block_on(async {
            let memory = MemoryStore::new();
            rows.push(
                measure(
                    "one customer, MemoryStore",
                    &memory,
                    memory.clone(),
                    n,
                    Spread::OneCustomer,
                )
                .await,
            );
        });
        rt.block_on(async {
            let memory = MemoryStore::new();
            rows.push(
                measure(
                    "customer per session, MemoryStore",
                    &memory,
                    memory.clone(),
                    n,
                    Spread::CustomerPerSession,
                )
                .await,
            );
        });
        rt.block_on(async {
            let memory = MemoryStore::new();
            rows.push(
                measure(
                    "customer per session, decoding store",
                    &memory,
                    decoding(memory.clone()),
                    n,
                    Spread::CustomerPerSession,
                )
                .await,
            );
        });
    }

    let mut out = String::new();
    writeln!(
        out,
        "Demo customer (full billing data), heap incl. `Arc`: {customer_bytes} B"
    )
    .ok();
    writeln!(out).ok();
    writeln!(
        out,
        "| population | sessions | cache bytes / session | KiB / session | store bytes / session (sessions + customers) |"
    )
    .ok();
    writeln!(out, "|---|---:|---:|---:|---:|").ok();
    for row in &rows {
        writeln!(
            out,
            "| {} | {} | {:.0} | {:.2} | {:.0} |",
            row.population,
            row.sessions,
            row.cache_bytes,
            row.cache_bytes / 1024.0,
            row.store_bytes
        )
        .ok();
    }
    print!("{out}");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/results/memory.md");
    std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/results")).ok();
    std::fs::write(path, out).expect("write results");
}
