//! Fault soak: the layer on a `MemoryStore` behind a store that fails and hangs on a
//! schedule, under bounded load from a client on 127.0.0.1.
//!
//! Schedule, repeated `--cycles` times, then one last healthy phase:
//! `--healthy` s healthy, `--error` s every store call errors, `--hang` s every store call
//! hangs past the store timeout (200 ms).
//!
//! Load: `--workers` concurrent clients, paced to `--rate` requests per second in all, each
//! sending one request at a time with a token drawn from five classes: warm (valid, cached
//! before the run, 45%), fresh (valid, each used once, so never cached, 5%), expired (15%),
//! revoked (15%), invalid (garbage, wrong checksum, unknown; 20%). A revoker revokes one
//! warm session per second during healthy phases; once its revoke returns, that token counts
//! as revoked for every request started afterwards. The run stops at the end of the schedule
//! or after `--max-requests`, whichever is first.
//!
//! Pass (exit 0) when: no invalid, expired or revoked token ever got 200; every status is
//! one of 200/400/401/403/503; no panic and no transport error; warm sessions kept their 200s
//! through every fault; valid tokens never got 401; no 503 in a healthy phase after its first
//! second; and each healthy phase after a fault reaches at least half the 200/s of the first.
//!
//! Run: `cargo run --release --manifest-path soak/Cargo.toml` (about 2.5 minutes).

// The tests' instrumented store; its faults are set from the schedule, its pause gate and
// per-hash counts go unused here.
#[allow(dead_code)]
#[path = "../../tests/common/instrumented.rs"]
mod instrumented;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use chrono::{TimeDelta, Utc};
use tower_customer_session::model::CustomerData;
use tower_customer_session::store::{CustomerRef, NewSession, SessionAdmin};
use tower_customer_session::token::{TokenHasher, TokenKind};
use tower_customer_session::{
    CreateSession, Customer, CustomerSessionLayer, MemoryStore, SessionManager,
};

use instrumented::{Fault, Instrumented};

const SECRET: &[u8] = b"soak secret, thirty-two bytes!!!";
const STORE_TIMEOUT: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Phase {
    Healthy,
    Error,
    Hang,
}

/// The fault schedule, followed by the store and the client's bookkeeping.
#[derive(Clone)]
struct Schedule {
    start: Instant,
    healthy: Duration,
    error: Duration,
    hang: Duration,
    cycles: u32,
}

impl Schedule {
    fn cycle(&self) -> Duration {
        self.healthy + self.error + self.hang
    }

    fn total(&self) -> Duration {
        self.cycle() * self.cycles + self.healthy
    }

    /// Phase index (0, 1, 2, … in order) and kind at `at`.
    fn phase_at(&self, at: Instant) -> (usize, Phase, Duration) {
        let elapsed = at.saturating_duration_since(self.start);
        let cycle = self.cycle();
        let n = (elapsed.as_nanos() / cycle.as_nanos()) as u32;
        if n >= self.cycles {
            let into = elapsed - cycle * self.cycles;
            return (3 * self.cycles as usize, Phase::Healthy, into);
        }
        let into = elapsed - cycle * n;
        let base = 3 * n as usize;
        if into < self.healthy {
            (base, Phase::Healthy, into)
        } else if into < self.healthy + self.error {
            (base + 1, Phase::Error, into - self.healthy)
        } else {
            (base + 2, Phase::Hang, into - self.healthy - self.error)
        }
    }

    fn now(&self) -> (usize, Phase, Duration) {
        self.phase_at(Instant::now())
    }
}

/// Sets the store's fault to the schedule's phase at each phase change, until its end.
async fn follow(schedule: Schedule, store: Instrumented) {
    let end = schedule.start + schedule.total();
    while Instant::now() < end {
        let (_, phase, into) = schedule.now();
        let (fault, length) = match phase {
            Phase::Healthy => (Fault::None, schedule.healthy),
            Phase::Error => (Fault::Error, schedule.error),
            Phase::Hang => (Fault::Hang, schedule.hang),
        };
        store.set_fault(fault);
        tokio::time::sleep(length.saturating_sub(into).max(Duration::from_millis(1))).await;
    }
    store.set_fault(Fault::None);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Class {
    Warm,
    Fresh,
    Expired,
    Revoked,
    Invalid,
}

/// Tokens by class; valid ones move to "revoked" when the revoker succeeds.
struct Tokens {
    warm: Vec<String>,
    /// Valid sessions never requested before; each is used once, in order.
    fresh: Vec<String>,
    next_fresh: AtomicUsize,
    expired: Vec<String>,
    revoked: Vec<String>,
    invalid: Vec<String>,
    /// Token → when its revocation returned.
    revoked_at: Mutex<HashMap<String, Instant>>,
}

struct Sample {
    token: String,
    started: Instant,
    class: Class,
    revoked_before: bool,
    status: u16,
    latency: Duration,
}

struct Options {
    cycles: u32,
    healthy: u64,
    error: u64,
    hang: u64,
    workers: usize,
    rate: u64,
    max_requests: usize,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        cycles: 3,
        healthy: 20,
        error: 10,
        hang: 10,
        workers: 16,
        rate: 20_000,
        max_requests: 5_000_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number: u64 = value.parse().map_err(|_| format!("{flag}: not a number"))?;
        match flag.as_str() {
            "--cycles" => o.cycles = number as u32,
            "--healthy" => o.healthy = number,
            "--error" => o.error = number,
            "--hang" => o.hang = number,
            "--workers" => o.workers = number as usize,
            "--rate" => o.rate = number,
            "--max-requests" => o.max_requests = number as usize,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if o.healthy < 3 || o.workers == 0 || o.rate < o.workers as u64 {
        return Err("--healthy ≥ 3 s, --workers ≥ 1, --rate ≥ --workers".into());
    }
    Ok(o)
}

async fn me(customer: Customer) -> String {
    customer.id.to_string()
}

/// Deterministic garbage of several kinds, none of which is an issued token.
fn invalid_tokens(sessions: &SessionManager<Instrumented>, valid: &str) -> Vec<String> {
    let mut out = vec![
        String::new(),
        "x".into(),
        "polar_cst_".into(),
        valid[..52].to_owned(),
        format!("{valid}A"),
        valid.to_uppercase(),
        format!("{}%{}", &valid[..20], &valid[21..]),
    ];
    for _ in 0..200 {
        // Fresh well-formed tokens from a second format instance: right shape, never issued.
        let unknown = sessions
            .format()
            .generate(TokenKind::Customer)
            .expect("random");
        out.push(unknown.expose_secret().to_owned());
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let options = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let panics = Arc::new(AtomicUsize::new(0));
    {
        let panics = panics.clone();
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            panics.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
    }

    // The server: layer on the fault store, on a loopback port.
    let memory = MemoryStore::new();
    let customer = memory.insert_customer(CustomerData::new(Utc::now()));
    let store = Instrumented::new(memory.clone());
    // Per-hash counts would grow with every fresh and invalid token of the run.
    store.count_per_hash(false);
    let sessions = SessionManager::builder(store.clone())
        .secret(SECRET)
        .store_timeout(STORE_TIMEOUT)
        // Longer than the whole run: cached sessions must ride out every fault.
        .cache_max_ttl(Duration::from_secs(3_600))
        .build()
        .expect("a secret is configured");
    let app = Router::new()
        .route("/me", get(me))
        .layer(CustomerSessionLayer::new(sessions.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    let url = format!("http://{addr}/me");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.workers)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");

    // Sessions of every class, made while the store is healthy.
    // Enough fresh sessions for their 5% share of the whole run at the target rate.
    let fresh_needed = (options.rate as f64
        * 0.06
        * ((options.healthy + options.error + options.hang) * u64::from(options.cycles)
            + options.healthy) as f64) as usize;
    let mut issue = Vec::new();
    for _ in 0..600 + fresh_needed {
        let session = sessions
            .create(customer.id, CreateSession::default())
            .await
            .expect("create");
        issue.push(session.token.expose_secret().to_owned());
    }
    let warm: Vec<String> = issue.drain(..300).collect();
    let revoked: Vec<String> = issue.drain(..300).collect();
    let fresh = issue;
    for token in &revoked {
        assert!(
            sessions.revoke(token).await.expect("revoke"),
            "revoked before the run"
        );
    }
    let hasher = TokenHasher::new(SECRET);
    let mut expired = Vec::new();
    for _ in 0..300 {
        let token = sessions
            .format()
            .generate(TokenKind::Customer)
            .expect("random");
        let past = Utc::now() - TimeDelta::hours(2);
        memory
            .create(NewSession {
                id: uuid::Uuid::new_v4(),
                token_hash: hasher.hash(token.expose_secret()),
                kind: TokenKind::Customer,
                customer: CustomerRef::Id(customer.id),
                created_at: past,
                expires_at: past + TimeDelta::hours(1),
                return_url: None,
                member: None,
            })
            .await
            .expect("seed expired");
        expired.push(token.expose_secret().to_owned());
    }
    let invalid = invalid_tokens(&sessions, &warm[0]);
    for token in &warm {
        let status = client
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .expect("warm-up")
            .status();
        assert_eq!(status, 200, "warm-up");
    }
    let tokens = Arc::new(Tokens {
        warm,
        fresh,
        next_fresh: AtomicUsize::new(0),
        expired,
        revoked,
        invalid,
        revoked_at: Mutex::default(),
    });

    let schedule = Schedule {
        start: Instant::now(),
        healthy: Duration::from_secs(options.healthy),
        error: Duration::from_secs(options.error),
        hang: Duration::from_secs(options.hang),
        cycles: options.cycles,
    };
    tokio::spawn(follow(schedule.clone(), store.clone()));
    let deadline = schedule.start + schedule.total();
    eprintln!(
        "soak: {} s, {} workers, {} cycles of {}s healthy / {}s error / {}s hang, then {}s healthy",
        schedule.total().as_secs(),
        options.workers,
        options.cycles,
        options.healthy,
        options.error,
        options.hang,
        options.healthy
    );

    // Revoke one valid session a second while the store is healthy.
    let revoker = {
        let tokens = tokens.clone();
        let sessions = sessions.clone();
        let schedule = schedule.clone();
        tokio::spawn(async move {
            let mut i = 0usize;
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if schedule.now().1 != Phase::Healthy {
                    continue;
                }
                // Warm (cached) victims: the revocation must beat the cache at once.
                let victim = tokens.warm[tokens.warm.len() - 1 - i % tokens.warm.len()].clone();
                i += 1;
                if let Ok(true) = sessions.revoke(&victim).await {
                    tokens
                        .revoked_at
                        .lock()
                        .expect("lock")
                        .insert(victim, Instant::now());
                }
            }
        })
    };

    let sent = Arc::new(AtomicUsize::new(0));
    let transport_errors = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..options.workers {
        let (client, url, tokens) = (client.clone(), url.clone(), tokens.clone());
        let (sent, errors) = (sent.clone(), transport_errors.clone());
        let max = options.max_requests;
        let period = Duration::from_secs_f64(options.workers as f64 / options.rate as f64);
        workers.push(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut seed = 0x2545_f491_4f6c_dd1d_u64 ^ (w as u64).wrapping_mul(0x9e37_79b9);
            let mut next = move || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            let mut samples = Vec::new();
            while Instant::now() < deadline && sent.fetch_add(1, Ordering::Relaxed) < max {
                ticks.tick().await;
                let roll = next() % 100;
                let pick =
                    |pool: &Vec<String>, r: u64| pool[(r % pool.len() as u64) as usize].clone();
                let (class, token) = match roll {
                    0..5 => match tokens
                        .fresh
                        .get(tokens.next_fresh.fetch_add(1, Ordering::Relaxed))
                    {
                        Some(token) => (Class::Fresh, token.clone()),
                        None => (Class::Warm, pick(&tokens.warm, next())),
                    },
                    5..50 => (Class::Warm, pick(&tokens.warm, next())),
                    50..65 => (Class::Expired, pick(&tokens.expired, next())),
                    65..80 => (Class::Revoked, pick(&tokens.revoked, next())),
                    _ => (Class::Invalid, pick(&tokens.invalid, next())),
                };
                let token = &token;
                let started = Instant::now();
                let revoked_before = tokens
                    .revoked_at
                    .lock()
                    .expect("lock")
                    .get(token)
                    .is_some_and(|at| *at <= started);
                let mut request = client.get(&url);
                if !token.is_empty() {
                    request = request.header("authorization", format!("Bearer {token}"));
                }
                match request.send().await {
                    Ok(response) => samples.push(Sample {
                        token: token.clone(),
                        started,
                        class,
                        revoked_before,
                        status: response.status().as_u16(),
                        latency: started.elapsed(),
                    }),
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            samples
        }));
    }
    let mut samples = Vec::new();
    for worker in workers {
        samples.extend(worker.await.expect("worker"));
    }
    revoker.abort();

    // Per-phase table.
    #[derive(Default)]
    struct Row {
        kind: Option<Phase>,
        requests: usize,
        by_status: HashMap<u16, usize>,
        latencies: Vec<Duration>,
        ok_after_first_second: usize,
        unavailable_after_first_second: usize,
    }
    let mut rows: Vec<Row> = (0..=3 * options.cycles as usize)
        .map(|_| Row::default())
        .collect();
    let mut failures = Vec::new();
    let mut false_accepts = 0;
    let mut warm_refused_in_fault = 0;
    let mut valid_401 = 0;
    let mut odd_status = 0;
    let mut by_class: HashMap<Class, HashMap<u16, usize>> = HashMap::new();
    let revoked_at = tokens.revoked_at.lock().expect("lock").clone();
    for s in &samples {
        let (index, kind, into) = schedule.phase_at(s.started);
        let row = &mut rows[index];
        row.kind = Some(kind);
        row.requests += 1;
        *row.by_status.entry(s.status).or_default() += 1;
        row.latencies.push(s.latency);
        if into >= Duration::from_secs(1) {
            row.ok_after_first_second += usize::from(s.status == 200);
            row.unavailable_after_first_second += usize::from(s.status == 503);
        }
        let dead =
            matches!(s.class, Class::Expired | Class::Revoked | Class::Invalid) || s.revoked_before;
        let class = if s.revoked_before {
            Class::Revoked
        } else {
            s.class
        };
        *by_class
            .entry(class)
            .or_default()
            .entry(s.status)
            .or_default() += 1;
        if dead && s.status == 200 {
            false_accepts += 1;
        }
        if !matches!(s.status, 200 | 400 | 401 | 403 | 503) {
            odd_status += 1;
        }
        // A token revoked while its request was in flight may go either way.
        let revoked_by_end = revoked_at
            .get(&s.token)
            .is_some_and(|at| *at <= s.started + s.latency);
        let valid = matches!(s.class, Class::Warm | Class::Fresh) && !revoked_by_end;
        if valid && s.status == 401 {
            valid_401 += 1;
        }
        if valid && s.class == Class::Warm && kind != Phase::Healthy && s.status != 200 {
            warm_refused_in_fault += 1;
        }
    }

    println!(
        "| phase | kind | requests | req/s | 200 | 400 | 401 | 503 | other | p50 ms | p99 ms | max ms |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut first_healthy_rate = None;
    for (i, row) in rows.iter_mut().enumerate() {
        let Some(kind) = row.kind else { continue };
        row.latencies.sort_unstable();
        let seconds = match kind {
            Phase::Healthy => options.healthy,
            Phase::Error => options.error,
            Phase::Hang => options.hang,
        } as f64;
        let count = |s: u16| row.by_status.get(&s).copied().unwrap_or(0);
        let other = row.requests - count(200) - count(400) - count(401) - count(503);
        println!(
            "| {i} | {kind:?} | {} | {:.0} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} |",
            row.requests,
            row.requests as f64 / seconds,
            count(200),
            count(400),
            count(401),
            count(503),
            other,
            percentile(&row.latencies, 0.50).as_secs_f64() * 1e3,
            percentile(&row.latencies, 0.99).as_secs_f64() * 1e3,
            row.latencies
                .last()
                .copied()
                .unwrap_or_default()
                .as_secs_f64()
                * 1e3,
        );
        if kind == Phase::Healthy {
            if row.unavailable_after_first_second > 0 {
                failures.push(format!(
                    "phase {i}: {} × 503 while healthy (after its first second)",
                    row.unavailable_after_first_second
                ));
            }
            let rate = row.ok_after_first_second as f64 / (seconds - 1.0);
            match first_healthy_rate {
                None => first_healthy_rate = Some(rate),
                Some(first) if rate < first * 0.5 => failures.push(format!(
                    "phase {i}: {rate:.0} × 200/s, under half of the first healthy phase ({first:.0})"
                )),
                Some(_) => {}
            }
        }
    }
    println!();
    println!("| token class | 200 | 400 | 401 | 503 | other |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut classes: Vec<_> = by_class.into_iter().collect();
    classes.sort_by_key(|(c, _)| *c);
    for (class, statuses) in classes {
        let count = |s: u16| statuses.get(&s).copied().unwrap_or(0);
        let other: usize = statuses
            .iter()
            .filter(|(s, _)| !matches!(s, 200 | 400 | 401 | 503))
            .map(|(_, n)| n)
            .sum();
        println!(
            "| {class:?} | {} | {} | {} | {} | {} |",
            count(200),
            count(400),
            count(401),
            count(503),
            other
        );
    }
    let transport_errors = transport_errors.load(Ordering::Relaxed);
    let panics = panics.load(Ordering::SeqCst);
    let revocations = tokens.revoked_at.lock().expect("lock").len();
    println!();
    println!(
        "requests {} | store calls {} | revocations during the run {} | false accepts {} | \
         valid tokens answered 401 {} | warm sessions refused during faults {} | \
         unexpected statuses {} | transport errors {} | panics {}",
        samples.len(),
        store.loads() + store.writes(),
        revocations,
        false_accepts,
        valid_401,
        warm_refused_in_fault,
        odd_status,
        transport_errors,
        panics
    );
    for (what, n) in [
        ("false accepts", false_accepts),
        ("valid tokens answered 401", valid_401),
        (
            "warm sessions refused during a fault",
            warm_refused_in_fault,
        ),
        ("unexpected statuses", odd_status),
        ("transport errors", transport_errors),
        ("panics", panics),
    ] {
        if n > 0 {
            failures.push(format!("{n} {what}"));
        }
    }
    if revocations == 0 {
        failures.push("no revocation happened during the run".into());
    }
    if failures.is_empty() {
        println!("PASS");
        ExitCode::SUCCESS
    } else {
        println!("FAIL:\n{}", failures.join("\n"));
        ExitCode::FAILURE
    }
}
