//! dudect-style timing tests of the token verification path.
//!
//! Method (Reparaz, Balasch, Verbauwhede, "dude, is my code constant time?", 2016): two
//! input classes, randomly interleaved; each sample is timed; Welch's t-test compares the
//! classes on all samples and on 100 crops below increasing percentiles (which removes the
//! long tail of interrupts and catches differences that only show in the fast samples). The
//! largest |t| is reported. |t| < 4.5 passes; the negative control must exceed it, or the
//! harness could not have seen a leak.
//!
//! Run: `cargo run --release --manifest-path timing/Cargo.toml [-- --samples N]`.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use subtle::ConstantTimeEq;
use tower_customer_session::model::CustomerData;
use tower_customer_session::token::{TokenFormat, TokenHash};
use tower_customer_session::{CredentialSource, CustomerSessions, MemoryStore};

/// |t| below this passes (the bound orion-dudect gates on).
const THRESHOLD: f64 = 4.5;
/// Distinct inputs per class; samples pick from these at random.
const POOL: usize = 4096;
const SECRET: &[u8] = b"timing harness secret, 32 bytes!";

/// splitmix64: fast, and good enough to pick classes and make inputs (not secrets).
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self(nanos ^ 0x9e37_79b9_7f4a_7c15)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        std::array::from_fn(|_| self.next() as u8)
    }

    fn alnum(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..len)
            .map(|_| ALPHABET[(self.next() % 62) as usize] as char)
            .collect()
    }
}

/// Welch's t statistic, accumulated online.
#[derive(Default, Clone)]
struct Welch {
    n: [f64; 2],
    mean: [f64; 2],
    m2: [f64; 2],
}

impl Welch {
    fn push(&mut self, class: usize, x: f64) {
        self.n[class] += 1.0;
        let delta = x - self.mean[class];
        self.mean[class] += delta / self.n[class];
        self.m2[class] += delta * (x - self.mean[class]);
    }

    fn t(&self) -> f64 {
        if self.n[0] < 2.0 || self.n[1] < 2.0 {
            return 0.0;
        }
        let var = |c: usize| self.m2[c] / (self.n[c] - 1.0);
        let se = (var(0) / self.n[0] + var(1) / self.n[1]).sqrt();
        if se == 0.0 {
            0.0
        } else {
            (self.mean[0] - self.mean[1]) / se
        }
    }
}

/// What one bench measured.
struct Report {
    name: &'static str,
    samples: usize,
    mean: [f64; 2],
    t_all: f64,
    max_t: f64,
    /// `true`: the bench must pass (|t| < 4.5); `false`: it is a control that must fail.
    must_pass: bool,
    /// Informational only: reported, not gated.
    gated: bool,
}

impl Report {
    fn ok(&self) -> bool {
        !self.gated || ((self.max_t.abs() < THRESHOLD) == self.must_pass)
    }
}

/// Time `samples` calls of `op`, `reps` calls per sample, classes interleaved at random.
///
/// `prepare(class, index)` copies one input of the class onto the stack outside the timed
/// region, so every timed call reads the same addresses whatever its class: only the data
/// differs, never where it lives (which would time the cache, not the code).
fn measure<I: Copy>(
    name: &'static str,
    samples: usize,
    reps: u32,
    rng: &mut Rng,
    mut prepare: impl FnMut(usize, usize) -> I,
    mut op: impl FnMut(&I),
) -> (Vec<(u8, u32)>, &'static str) {
    // Warm caches and branch predictors on both classes first.
    for i in 0..10_000 {
        let input = prepare(i & 1, i % POOL);
        op(&input);
    }
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        let r = rng.next();
        let class = (r & 1) as usize;
        let index = ((r >> 1) as usize) % POOL;
        let input = black_box(prepare(class, index));
        // Let the loads that prepared the input finish before the clock starts: otherwise a
        // class whose input needed more cache lines is still waiting on them when timing
        // begins, and the harness measures its own preparation.
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        let start = Instant::now();
        for _ in 0..reps {
            op(black_box(&input));
        }
        let elapsed = start.elapsed().as_nanos().min(u32::MAX as u128) as u32;
        out.push((class as u8, elapsed));
    }
    (out, name)
}

fn analyse(
    (measurements, name): (Vec<(u8, u32)>, &'static str),
    must_pass: bool,
    gated: bool,
) -> Report {
    let mut sorted: Vec<u32> = measurements.iter().map(|m| m.1).collect();
    sorted.sort_unstable();
    let n = sorted.len();
    // dudect's crops: percentile 1 - 0.5^(10 (k+1) / 100) for k in 0..100.
    let crops: Vec<u32> = (0..100)
        .map(|k| {
            let p = 1.0 - 0.5f64.powf(10.0 * (k as f64 + 1.0) / 100.0);
            sorted[((p * n as f64) as usize).min(n - 1)]
        })
        .collect();
    let mut all = Welch::default();
    let mut cropped = vec![Welch::default(); crops.len()];
    for &(class, x) in &measurements {
        let class = class as usize;
        all.push(class, x as f64);
        for (test, &limit) in cropped.iter_mut().zip(&crops) {
            if x <= limit {
                test.push(class, x as f64);
            }
        }
    }
    let max_t = cropped
        .iter()
        // dudect waits for enough samples before it trusts a crop.
        .filter(|w| w.n[0] >= 1_000.0 && w.n[1] >= 1_000.0)
        .map(Welch::t)
        .chain([all.t()])
        .fold(0.0f64, |acc, t| if t.abs() > acc.abs() { t } else { acc });
    Report {
        name,
        samples: n,
        mean: all.mean,
        t_all: all.t(),
        max_t,
        must_pass,
        gated,
    }
}

/// Polar's checksum of a 37-character random part (CRC-32, base62, six digits).
fn checksum(random: &str) -> String {
    const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut value = crc32fast::hash(random.as_bytes());
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    String::from_utf8(out.to_vec()).expect("ASCII")
}

fn token(random: &str) -> String {
    let token = format!("polar_cst_{random}{}", checksum(random));
    assert!(
        TokenFormat::polar().parse(&token).is_ok(),
        "well-formed: {token}"
    );
    token
}

/// (a) `subtle` comparison of 32-byte digests, as `verify` does it.
fn digests(samples: usize, rng: &mut Rng) -> Vec<Report> {
    type Pair = ([u8; 32], [u8; 32]);
    let stored: Vec<[u8; 32]> = (0..POOL).map(|_| rng.bytes()).collect();
    // The last byte differs: a 31-byte common prefix.
    let near: Vec<[u8; 32]> = stored
        .iter()
        .map(|h| {
            let mut b = *h;
            b[31] ^= 1;
            b
        })
        .collect();
    let random: Vec<[u8; 32]> = (0..POOL).map(|_| rng.bytes()).collect();
    // Equal values from a separate array: both classes then read two arrays of one size.
    let copy = stored.clone();
    let ct_eq = |(a, b): &Pair| {
        black_box(TokenHash::from_bytes(*a).ct_eq(&TokenHash::from_bytes(*b)));
    };
    let prefix = measure(
        "(a) ct_eq on digests: 31-byte common prefix vs random",
        samples,
        8,
        rng,
        |c, i| (stored[i], if c == 0 { near[i] } else { random[i] }),
        ct_eq,
    );
    let equal = measure(
        "(a) ct_eq on digests: equal vs random",
        samples,
        8,
        rng,
        |c, i| (stored[i], if c == 0 { copy[i] } else { random[i] }),
        ct_eq,
    );
    let eq_op = measure(
        "(a) TokenHash == (branch-free, map lookups): equal vs random",
        samples,
        8,
        rng,
        |c, i| (stored[i], if c == 0 { copy[i] } else { random[i] }),
        |(a, b): &Pair| {
            black_box(TokenHash::from_bytes(*a) == TokenHash::from_bytes(*b));
        },
    );
    vec![
        analyse(prefix, true, true),
        analyse(equal, true, true),
        analyse(eq_op, true, true),
    ]
}

/// (b) The whole `CustomerSessions::authenticate` path (shape, HMAC, cache, store) for
/// unknown tokens that share their first 40 characters with a live session's token,
/// against unknown tokens that share 40 characters with a never-issued token.
///
/// Every sample presents a token used nowhere else, built on its own random base, and each
/// left-class base is a live session in the store. So the presented bytes are uniformly
/// random in both classes; they differ only in whether the first 40 characters are a live
/// token's. (With a small pool of bases, the bases' own bytes move the timing — the
/// checksum's table lookups and branches, hash-map probe lengths — which tells an attacker
/// about their own input only; the "two fixed pools" row shows that size of effect, which
/// is why the gated row never reuses a token.)
fn authenticate(samples: usize, rng: &mut Rng) -> Vec<Report> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let store = MemoryStore::new();
    let customer = store.insert_customer(CustomerData::new(uuid::Uuid::new_v4(), Utc::now()));
    let sessions = CustomerSessions::builder(store.clone())
        .secret(SECRET)
        // Every sample takes the full path to the store; nothing is answered from memory.
        .negative_cache_capacity(0)
        .session_ttl(TimeDelta::hours(24))
        .store_timeout(Duration::from_secs(5))
        .build();
    // Each class sees about half the samples, plus the warm-up; a margin keeps every
    // presented token distinct.
    let per_class = samples * 6 / 10 + 20_000;
    let hasher = tower_customer_session::token::TokenHasher::new(SECRET);
    let mut near_live = Vec::with_capacity(per_class);
    let mut near_never = Vec::with_capacity(per_class);
    let mut random = Vec::with_capacity(POOL);
    let to_bytes = |t: String| -> [u8; 53] { t.as_bytes().try_into().expect("53 bytes") };
    runtime.block_on(async {
        for _ in 0..per_class {
            let live = token(&rng.alnum(37));
            let new = tower_customer_session::store::NewSession {
                id: uuid::Uuid::new_v4(),
                token_hash: hasher.hash(&live),
                kind: Default::default(),
                customer: customer.id.into(),
                created_at: Utc::now(),
                expires_at: Utc::now() + TimeDelta::hours(24),
                return_url: None,
                member: None,
            };
            tower_customer_session::SessionStore::create(&store, new)
                .await
                .expect("seed");
            near_live.push(to_bytes(token(&format!(
                "{}{}",
                &live[10..40],
                rng.alnum(7)
            ))));
            let never = token(&rng.alnum(37));
            near_never.push(to_bytes(token(&format!(
                "{}{}",
                &never[10..40],
                rng.alnum(7)
            ))));
        }
    });
    for _ in 0..POOL {
        random.push(to_bytes(token(&rng.alnum(37))));
    }
    // Spot checks: live bases authenticate, presented tokens do not.
    for t in near_live
        .iter()
        .chain(&near_never)
        .step_by(997)
        .chain(&random)
    {
        let t = std::str::from_utf8(t).expect("ASCII");
        let refused = runtime.block_on(sessions.authenticate(t, CredentialSource::Header));
        assert!(refused.is_err(), "every timed token is unknown");
    }
    let ask = |t: &[u8; 53]| {
        let t = std::str::from_utf8(t).expect("ASCII");
        let result = runtime.block_on(sessions.authenticate(t, CredentialSource::Header));
        black_box(result.is_err());
    };
    let mut next = [0usize; 2];
    let gated = measure(
        "(b) authenticate: 40 chars shared with a live token vs with a never-issued one",
        samples,
        1,
        rng,
        |c, _| {
            next[c] += 1;
            if c == 0 {
                near_live[next[c] % per_class]
            } else {
                near_never[next[c] % per_class]
            }
        },
        ask,
    );
    let content = measure(
        "(b) two fixed pools of 4,096 unknown tokens (near-live vs random)",
        samples,
        1,
        rng,
        |c, i| if c == 0 { near_live[i] } else { random[i] },
        ask,
    );
    vec![analyse(gated, true, true), analyse(content, true, false)]
}

/// (c) Negative controls: an early-exit `==` the harness must flag.
fn controls(samples: usize, rng: &mut Rng) -> Vec<Report> {
    const LONG: usize = 4096;
    let base: Vec<u8> = (0..LONG).map(|_| rng.next() as u8).collect();
    let mut early = base.clone();
    early[0] ^= 1;
    let mut late = base.clone();
    late[LONG - 1] ^= 1;
    // One pair of vectors: the classes differ only in where the first difference is.
    let vec_eq = measure(
        "(c) control: Vec<u8> == (4 KiB), first vs last byte differs",
        samples,
        1,
        rng,
        |c, _| c,
        |c: &usize| {
            let other = if *c == 0 { &early } else { &late };
            black_box(black_box(&base) == black_box(other));
        },
    );
    let arrays: Vec<[u8; 32]> = (0..POOL).map(|_| rng.bytes()).collect();
    let flip = |a: &[u8; 32], at: usize| {
        let mut b = *a;
        b[at] ^= 1;
        b
    };
    let array_eq = measure(
        "(c) control: [u8] == on 32 bytes, first vs last byte differs",
        samples,
        8,
        rng,
        |c, i| (arrays[i], flip(&arrays[i], if c == 0 { 0 } else { 31 })),
        |(a, b): &([u8; 32], [u8; 32])| {
            black_box(black_box(&a[..]) == black_box(&b[..]));
        },
    );
    vec![
        analyse(vec_eq, false, true),
        analyse(array_eq, false, false),
    ]
}

fn main() -> ExitCode {
    let mut samples = 1_000_000;
    let mut auth_samples = 4_000_000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--samples" => {
                samples = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--samples N")
            }
            "--auth-samples" => {
                auth_samples = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--auth-samples N")
            }
            other => {
                eprintln!("unknown argument {other}; use --samples N, --auth-samples N");
                return ExitCode::FAILURE;
            }
        }
    }
    if cfg!(debug_assertions) {
        eprintln!("warning: debug build; timings mean little. Use --release.");
    }
    let mut rng = Rng::seeded();
    let started = Instant::now();
    let mut reports = digests(samples, &mut rng);
    reports.extend(authenticate(auth_samples, &mut rng));
    reports.extend(controls(samples, &mut rng));

    println!(
        "| bench | samples | mean left (ns) | mean right (ns) | t (all) | max abs t | expected | result |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|---|");
    for r in &reports {
        let expected = match (r.gated, r.must_pass) {
            (false, _) => "report only",
            (true, true) => "< 4.5",
            (true, false) => "> 4.5 (leak seen)",
        };
        println!(
            "| {} | {} | {:.1} | {:.1} | {:+.2} | {:.2} | {} | {} |",
            r.name,
            r.samples,
            r.mean[0],
            r.mean[1],
            r.t_all,
            r.max_t.abs(),
            expected,
            if r.ok() { "ok" } else { "FAIL" }
        );
    }
    println!("\ntotal time {:.0} s", started.elapsed().as_secs_f64());
    if reports.iter().all(Report::ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
