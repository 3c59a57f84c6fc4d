#![allow(missing_docs)] // criterion_group! generates undocumented items

//! What the fleet machinery costs a cache hit: customer invalidations arriving while hits
//! are served (1,000,000 cached sessions), and a type-erased `DynStore` against the
//! concrete store, hit and miss.
//!
//! `cargo bench -p tower-customer-session-benches --bench fleet` (add `-- --quick` for a shorter run).

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{SplitMix, Spread, builder, populate};
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tower_customer_session::store::DynStore;
use tower_customer_session::{CredentialSource, MemoryStore, SessionManager, SessionStore};
use uuid::Uuid;

fn shuffled(tokens: &[String], seed: u64) -> Vec<String> {
    let mut out = tokens.to_vec();
    SplitMix(seed).shuffle(&mut out);
    out
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Time `iters` hits over `tokens`, in one `block_on` so the executor is not measured.
fn hits<S: SessionStore>(
    rt: &Runtime,
    sessions: &SessionManager<S>,
    tokens: &[String],
    iters: u64,
) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for i in 0..iters as usize {
            let token = &tokens[i % tokens.len()];
            let ok = sessions.authenticate(token, CredentialSource::Header).await;
            black_box(ok.is_ok());
        }
        start.elapsed()
    })
}

fn invalidations(c: &mut Criterion) {
    let rt = runtime();
    let n: usize = std::env::var("FLEET_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let memory = MemoryStore::new();
    let sessions = builder(memory.clone())
        .cache_capacity(n as u64 + 1_000)
        .build()
        .expect("configured");
    let tokens = rt.block_on(populate(&memory, &sessions, n, Spread::CustomerPerSession));
    // Warm in creation order, then time in an unrelated order (a real server's layout).
    for token in &tokens {
        let _ = rt.block_on(sessions.authenticate(token, CredentialSource::Header));
    }
    let timed = shuffled(&tokens[..10_000], 7);
    // Customers invalidated meanwhile: cached, but not among the timed ones.
    let others: Vec<Uuid> = tokens[10_000..]
        .iter()
        .map(|t| {
            rt.block_on(sessions.authenticate(t, CredentialSource::Header))
                .map(|(c, _)| c.id)
                .expect("cached")
        })
        .collect();

    let mut group = c.benchmark_group("fleet_invalidations");
    group.bench_function(format!("hit, quiet ({n} cached)"), |b| {
        b.iter_custom(|iters| hits(&rt, &sessions, &timed, iters))
    });

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let invalidator = {
        let (sessions, stop, sent) = (sessions.clone(), stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                sessions.invalidate_customer(others[i % others.len()]);
                i += 1;
                sent.store(i as u64, Ordering::Relaxed);
                // 1,000 per second, paced against the clock, not a sleep per call.
                let due = start + Duration::from_millis(i as u64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
        })
    };
    let started = Instant::now();
    group.bench_function(
        format!("hit, 1,000 customer invalidations/s ({n} cached)"),
        |b| b.iter_custom(|iters| hits(&rt, &sessions, &timed, iters)),
    );
    stop.store(true, Ordering::Relaxed);
    invalidator.join().expect("invalidator");
    let rate = sent.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    eprintln!("invalidations applied during the loaded row: {rate:.0}/s");
    group.finish();
}

fn dyn_store(c: &mut Criterion) {
    let rt = runtime();
    let memory = MemoryStore::new();
    let concrete = builder(memory.clone()).build().expect("configured");
    let erased = builder(DynStore::new(memory.clone()))
        .build()
        .expect("configured");
    let tokens = rt.block_on(populate(
        &memory,
        &concrete,
        1_000,
        Spread::CustomerPerSession,
    ));
    let tokens = shuffled(&tokens, 11);
    for token in &tokens {
        let _ = rt.block_on(concrete.authenticate(token, CredentialSource::Header));
        let _ = rt.block_on(erased.authenticate(token, CredentialSource::Header));
    }
    let mut group = c.benchmark_group("dyn_store");
    group.bench_function("hit, MemoryStore", |b| {
        b.iter_custom(|iters| hits(&rt, &concrete, &tokens, iters))
    });
    group.bench_function("hit, DynStore(MemoryStore)", |b| {
        b.iter_custom(|iters| hits(&rt, &erased, &tokens, iters))
    });
    // Misses: a cache that cannot keep anything, so every call loads from the store.
    let concrete = builder(memory.clone())
        .cache_capacity(0)
        .build()
        .expect("configured");
    let erased = builder(DynStore::new(memory))
        .cache_capacity(0)
        .build()
        .expect("configured");
    group.bench_function("miss + load, MemoryStore", |b| {
        b.iter_custom(|iters| hits(&rt, &concrete, &tokens, iters))
    });
    group.bench_function("miss + load, DynStore(MemoryStore)", |b| {
        b.iter_custom(|iters| hits(&rt, &erased, &tokens, iters))
    });
    group.finish();
}

criterion_group!(benches, dyn_store, invalidations);
criterion_main!(benches);
