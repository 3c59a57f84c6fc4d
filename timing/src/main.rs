//! Timing tests of the token verification path, built so that a verdict means the same on
//! any machine.
//!
//! Each row compares two input classes with Welch's t, dudect-style (Reparaz, Balasch,
//! Verbauwhede, 2016): classes interleaved at random per sample, t on all samples and on
//! 100 crops below increasing percentiles, the largest |t| kept with its sign. With
//! millions of samples that statistic also sees differences that have nothing to do with a
//! secret (where a pool sits in memory, which bytes it happens to hold, the CPU's clock
//! wandering during the run), so a large |t| alone decides nothing. Each row is therefore
//! measured as a small experiment:
//!
//! * The two classes' inputs are built by the same code and stored interleaved in one
//!   array, slot `2k + class`, so they share memory regions and cache behaviour.
//! * One class is "related" to a secret (shares 40 characters with a live token, equals the
//!   stored digest, ...). Repetitions alternate which class that is, and rebuild every pool,
//!   store and allocation from fresh random data.
//! * Beside each repetition runs an A/A repetition built by the identical code except that
//!   neither class is related to anything. It shows how far t wanders on this machine when
//!   there is nothing to find.
//! * t is reported at n, 4n and 16n samples (prefixes of one repetition), signed so that
//!   positive means the related class is slower.
//!
//! A constant leak moves every repetition the same way whichever class holds it, and its t
//! grows with √n (4× from n to 16n). Layout follows the class or the pool, so it flips sign
//! when the roles swap, and the A/A control shows it too. The decision rule (`verdict`)
//! follows from that.
//!
//! Run: `cargo run --release --manifest-path timing/Cargo.toml [-- --reps R --scale S
//! --seed X --only TEXT]`.

use std::hint::black_box;
use std::process::ExitCode;
use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, Instant};

use chrono::Utc;
use subtle::ConstantTimeEq;
use tower_customer_session::model::CustomerData;
use tower_customer_session::token::{TokenFormat, TokenHash, TokenKind};
use tower_customer_session::{CreateSession, CredentialSource, MemoryStore, SessionManager};

/// dudect's bound: below it, one test is taken to see nothing.
const THRESHOLD: f64 = 4.5;
/// A leak's t grows 4× from n to 16n; demand at least half of that, so noise at n cannot
/// fake it and drift (which does not grow) cannot pass for it.
const MIN_GROWTH: f64 = 2.0;
/// A row passes if it stays within this factor of its A/A control's largest |t|.
const AA_MARGIN: f64 = 2.0;
/// 4.5 is dudect's bound for one test, but a row makes 12 looks (4 repetitions × 3), each
/// the largest of 101 crops: on null comparisons about one look in 300 passes 4.5 (the
/// largest of 867 on an AMD EPYC VM was 5.2). A lone excursion above 4.5 is expected now
/// and then; only one above this bound, or a consistent growing sign, holds back a pass.
const PASS_FLOOR: f64 = 6.0;
const SECRET: &[u8] = b"timing harness secret, 32 bytes!";
/// The older key the rotation rows accept besides [`SECRET`].
const OLD_SECRET: &[u8] = b"timing harness older key, 32 b!!";

/// splitmix64: fast, and good enough to pick classes and make inputs (not secrets).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        std::array::from_fn(|_| self.next() as u8)
    }

    fn alnum(&mut self, out: &mut [u8]) {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        for b in out {
            *b = ALPHABET[(self.next() % 62) as usize];
        }
    }
}

/// Time `samples` samples of `op` (`calls` calls each), the class of each drawn at random.
///
/// `prepare(class, rng)` builds the input outside the timed region with the same code for
/// both classes (the class only picks a slot), and returns it by value so every timed call
/// reads it from the same stack address. Returns `time << 1 | class` per sample.
fn measure<I>(
    samples: usize,
    calls: u32,
    rng: &mut Rng,
    mut prepare: impl FnMut(usize, &mut Rng) -> I,
    mut op: impl FnMut(&I),
) -> Vec<u32> {
    // Warm caches and branch predictors on both classes first.
    for i in 0..20_000 {
        let input = prepare(i & 1, rng);
        op(&input);
    }
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        let class = (rng.next() & 1) as usize;
        let input = black_box(prepare(class, rng));
        // The loads that built the input must finish before the clock starts, or the
        // harness times its own preparation.
        fence(Ordering::SeqCst);
        let start = Instant::now();
        for _ in 0..calls {
            op(black_box(&input));
        }
        let ns = start.elapsed().as_nanos().min((u32::MAX >> 1) as u128) as u32;
        out.push(ns << 1 | class as u32);
    }
    out
}

/// Count, sum and sum of squares of one class's times (offset to keep the squares small).
#[derive(Clone, Copy, Default)]
struct Acc {
    n: f64,
    sum: f64,
    sq: f64,
}

impl Acc {
    fn mean(&self) -> f64 {
        self.sum / self.n
    }

    fn var(&self) -> f64 {
        (self.sq - self.sum * self.sum / self.n) / (self.n - 1.0)
    }
}

/// Welch's t of class `a` minus class `b`.
fn welch(acc: &[Acc; 2], a: usize) -> f64 {
    let (x, y) = (&acc[a], &acc[1 - a]);
    if x.n < 2.0 || y.n < 2.0 {
        return 0.0;
    }
    let se = (x.var() / x.n + y.var() / y.n).sqrt();
    if se > 0.0 {
        (x.mean() - y.mean()) / se
    } else {
        0.0
    }
}

/// What one prefix of one repetition shows, oriented so that positive means `related` is
/// slower.
#[derive(Clone, Copy)]
struct Look {
    /// Signed t of the test (all samples or a crop) with the largest |t|.
    t: f64,
    /// Signed t on all samples.
    t_all: f64,
    /// Difference of means over samples at or below the 99th percentile (ns per sample):
    /// the tail of interrupts and preemptions would swamp it otherwise.
    delta: f64,
    /// Mean ns per sample at or below the 99th percentile (both classes).
    mean: f64,
}

fn look(samples: &[u32], related: usize) -> Look {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    let time = |i: usize| (sorted[i.min(n - 1)] >> 1) as f64;
    // dudect's crops: percentile 1 - 0.5^(10 (k+1) / 100) for k in 0..100; and p99.
    let mut limits: Vec<f64> = (0..100)
        .map(|k| time((n as f64 * (1.0 - 0.5f64.powf(10.0 * (k as f64 + 1.0) / 100.0))) as usize))
        .collect();
    let p99 = time(n * 99 / 100);
    limits.push(p99);
    limits.push(f64::INFINITY);
    limits.sort_by(f64::total_cmp);
    // Sorted by time, each crop is a prefix: one pass gives the sums below every limit.
    let offset = time(0);
    let mut acc = [Acc::default(); 2];
    let mut below = Vec::with_capacity(limits.len());
    let mut i = 0;
    for &limit in &limits {
        while i < n && ((sorted[i] >> 1) as f64) <= limit {
            let x = (sorted[i] >> 1) as f64 - offset;
            let c = &mut acc[(sorted[i] & 1) as usize];
            c.n += 1.0;
            c.sum += x;
            c.sq += x * x;
            i += 1;
        }
        below.push((limit, acc));
    }
    let t = below
        .iter()
        // dudect waits for enough samples before it trusts a crop.
        .filter(|(_, a)| a[0].n >= 1_000.0 && a[1].n >= 1_000.0)
        .map(|(_, a)| welch(a, related))
        .fold(0.0f64, |m, t| if t.abs() > m.abs() { t } else { m });
    let all = below.last().expect("the infinite limit").1;
    let trimmed = below.iter().find(|(l, _)| *l == p99).expect("p99").1;
    let both = trimmed[0].sum + trimmed[1].sum;
    Look {
        t,
        t_all: welch(&all, related),
        delta: trimmed[related].mean() - trimmed[1 - related].mean(),
        mean: both / (trimmed[0].n + trimmed[1].n) + offset,
    }
}

/// One repetition: t at n, 4n and 16n.
struct Rep {
    looks: [Look; 3],
}

fn repetition(samples: &[u32], related: usize) -> Rep {
    let n = samples.len() / 16;
    Rep {
        looks: [n, 4 * n, 16 * n].map(|m| look(&samples[..m], related)),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Gate {
    /// Must not be judged a leak.
    Gated,
    /// The negative control: must be judged a leak.
    Control,
    /// Reported, never fails the run.
    Report,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Verdict {
    Leak,
    Pass,
    Inconclusive,
}

/// The decision rule.
///
/// Leak: at 16n every repetition's t has the same sign (so it follows the relation, not a
/// class or a pool), every |t| exceeds the A/A control's largest |t| and 4.5, and the mean
/// |t| grew at least 2× from n to 16n (√n growth; drift does not grow).
///
/// Pass: the row behaves like its A/A control. No repetition's |t|, at any look, exceeds
/// twice the A/A's largest |t| at that look or `PASS_FLOOR`, whichever is more; and the row
/// does not show a consistent sign that grows with n (a leak too weak to clear the floor).
///
/// Anything else is inconclusive: the harness could not separate the row from its noise.
fn verdict(row: &[Rep], aa: &[Rep]) -> Verdict {
    let aa_max = |j: usize| aa.iter().map(|r| r.looks[j].t.abs()).fold(0.0, f64::max);
    let last: Vec<f64> = row.iter().map(|r| r.looks[2].t).collect();
    let same_sign = last.iter().all(|&t| t > 0.0) || last.iter().all(|&t| t < 0.0);
    let floor = THRESHOLD.max(aa_max(2));
    let beyond = last.iter().all(|t| t.abs() > floor);
    let mean_abs =
        |j: usize| row.iter().map(|r| r.looks[j].t.abs()).sum::<f64>() / row.len() as f64;
    let grows = mean_abs(2) >= MIN_GROWTH * mean_abs(0);
    if same_sign && beyond && grows {
        return Verdict::Leak;
    }
    let within = (0..3).all(|j| {
        let bound = PASS_FLOOR.max(AA_MARGIN * aa_max(j));
        row.iter().all(|r| r.looks[j].t.abs() <= bound)
    });
    if within && !(same_sign && grows) {
        Verdict::Pass
    } else {
        Verdict::Inconclusive
    }
}

/// Two-sided 95% quantile of Student's t with `df` degrees of freedom.
fn student95(df: usize) -> f64 {
    const TABLE: [f64; 10] = [12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23];
    if df == 0 {
        f64::NAN
    } else if df <= 10 {
        TABLE[df - 1]
    } else {
        1.96 + 2.4 / df as f64
    }
}

/// Mean over repetitions of the oriented difference at 16n, and its 95% half-width. Roles
/// alternate, so what follows a class or a pool cancels in the mean and only widens the
/// interval.
fn residual(reps: &[Rep]) -> (f64, f64) {
    let d: Vec<f64> = reps.iter().map(|r| r.looks[2].delta).collect();
    let k = d.len() as f64;
    let mean = d.iter().sum::<f64>() / k;
    let sd = (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (k - 1.0)).sqrt();
    (mean, student95(d.len() - 1) * sd / k.sqrt())
}

/// One repetition of a row: build fresh inputs in which `related` (if any) holds the
/// relation, take `samples` samples, return them.
type RunRep<'a> = Box<dyn FnMut(Option<usize>, usize, &mut Rng) -> Vec<u32> + 'a>;

struct Row<'a> {
    name: &'static str,
    gate: Gate,
    /// Samples at the first look; a repetition takes 16n.
    n: usize,
    /// `calls` per sample, to report ns per call.
    calls: u32,
    run: RunRep<'a>,
}

/// Interleave two classes' entries: slot `2k + class`.
fn interleave<T>(per_class: usize, mut make: impl FnMut(usize) -> T) -> Vec<T> {
    (0..2 * per_class).map(|slot| make(slot & 1)).collect()
}

/// (a) Digest comparisons. `relate` turns a stored digest into the related input.
fn digest_row(
    name: &'static str,
    relate: fn(&[u8; 32]) -> [u8; 32],
    compare: fn(&[u8; 32], &[u8; 32]) -> bool,
    n: usize,
) -> Row<'static> {
    const POOL: usize = 4096;
    Row {
        name,
        gate: Gate::Gated,
        n,
        calls: 8,
        run: Box::new(move |related, samples, rng| {
            let pool = interleave(POOL, |class| {
                let stored: [u8; 32] = rng.bytes();
                let presented = if related == Some(class) {
                    relate(&stored)
                } else {
                    rng.bytes()
                };
                (stored, presented)
            });
            measure(
                samples,
                8,
                rng,
                |class, rng| pool[2 * rng.below(POOL) + class],
                |(a, b)| {
                    black_box(compare(a, b));
                },
            )
        }),
    }
}

fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    TokenHash::from_bytes(*a)
        .ct_eq(&TokenHash::from_bytes(*b))
        .into()
}

/// Polar's checksum of the 37-character random part (CRC-32 in six base62 digits), written
/// independently of the crate's.
fn checksum(random: &[u8], out: &mut [u8]) {
    const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut value = crc32fast::hash(random);
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
}

const TOKEN_LEN: usize = 53;
/// Characters an attacker's token shares with the base: the prefix and 30 random ones.
const SHARED: usize = 40;
const PREFIX: usize = 10;

/// A well-formed token that shares its first 40 characters with `base` and has 7 fresh
/// random ones.
fn near(base: &[u8; SHARED], rng: &mut Rng) -> [u8; TOKEN_LEN] {
    let mut token = [0u8; TOKEN_LEN];
    token[..SHARED].copy_from_slice(base);
    rng.alnum(&mut token[SHARED..TOKEN_LEN - 6]);
    let (body, sum) = token.split_at_mut(TOKEN_LEN - 6);
    checksum(&body[PREFIX..], sum);
    token
}

/// A store holding one live session for each of `live` (issued by the crate itself), and a
/// manager on it that sends every unknown token to the store.
fn fixture(
    runtime: &tokio::runtime::Runtime,
    live: usize,
) -> (SessionManager<MemoryStore>, Vec<[u8; SHARED]>) {
    let store = MemoryStore::new();
    let customer = store.insert_customer(CustomerData::new(Utc::now()));
    let manager = SessionManager::builder(store)
        .secret(SECRET)
        .negative_cache_capacity(0)
        .session_ttl(Duration::from_secs(24 * 3600))
        .store_timeout(Duration::from_secs(5))
        .build()
        .expect("manager");
    let bases = runtime.block_on(async {
        let mut bases = Vec::with_capacity(live);
        for _ in 0..live {
            let session = manager
                .create(customer.id, CreateSession::default())
                .await
                .expect("create");
            let token = session.token.expose_secret();
            // The live sessions must be live, or the related class relates to nothing.
            if bases.is_empty() {
                let live = manager.authenticate(token, CredentialSource::Header).await;
                assert!(live.is_ok(), "a freshly issued session authenticates");
            }
            bases.push(prefix_of(token));
        }
        bases
    });
    (manager, bases)
}

fn prefix_of(token: &str) -> [u8; SHARED] {
    token.as_bytes()[..SHARED].try_into().expect("53 bytes")
}

fn authenticate(
    runtime: &tokio::runtime::Runtime,
    manager: &SessionManager<MemoryStore>,
    token: &[u8; TOKEN_LEN],
) -> bool {
    let token = std::str::from_utf8(token).expect("ASCII");
    runtime
        .block_on(manager.authenticate(token, CredentialSource::Header))
        .is_ok()
}

/// (b) The whole `SessionManager::authenticate` path (shape, HMAC, cache, store) for
/// unknown tokens that share 40 characters with a live token (related) or with a token the
/// crate generated but never issued (plain).
///
/// Every repetition builds a new store with `BASES` live sessions issued by the crate. The
/// related class takes its bases from them; a plain class takes tokens from the crate's own
/// generator that nobody issued; in the A/A control the live sessions belong to neither
/// class, so the store is the same size either way. Each sample presents a fresh token on a
/// random base of its class, so no presented token repeats and its digest lands at a fresh
/// place in the store's map.
fn auth_row(runtime: &tokio::runtime::Runtime, n: usize) -> Row<'_> {
    const BASES: usize = 1 << 16;
    Row {
        name: "(b) authenticate: 40 chars shared with a live token vs with a never-issued one",
        gate: Gate::Gated,
        n,
        calls: 1,
        run: Box::new(move |related, samples, rng| {
            let (manager, live) = fixture(runtime, BASES);
            let format = TokenFormat::polar();
            let fresh = || {
                prefix_of(
                    format
                        .generate(TokenKind::Customer)
                        .expect("getrandom")
                        .expose_secret(),
                )
            };
            let mut live = live.into_iter();
            let bases = interleave(BASES, |class| {
                if related == Some(class) {
                    live.next().expect("one live base per slot")
                } else {
                    fresh()
                }
            });
            check_auth(runtime, &manager, &bases, rng);
            measure(
                samples,
                1,
                rng,
                |class, rng| near(&bases[2 * rng.below(BASES) + class], rng),
                |token| {
                    black_box(authenticate(runtime, &manager, token));
                },
            )
        }),
    }
}

/// Spot checks: presented tokens are well-formed and refused.
fn check_auth(
    runtime: &tokio::runtime::Runtime,
    manager: &SessionManager<MemoryStore>,
    bases: &[[u8; SHARED]],
    rng: &mut Rng,
) {
    for slot in (0..bases.len()).step_by(509) {
        let token = near(&bases[slot], rng);
        let text = std::str::from_utf8(&token).expect("ASCII");
        assert!(
            TokenFormat::polar().parse(text).is_ok(),
            "well-formed: {text}"
        );
        assert!(
            !authenticate(runtime, manager, &token),
            "timed tokens are unknown"
        );
    }
}

/// (b') Report only: two fixed pools of 4,096 unknown tokens, each presented over and over.
/// Shows how much a token's own bytes move the time; the gated row avoids that by never
/// repeating a token.
fn fixed_pool_row(runtime: &tokio::runtime::Runtime, n: usize) -> Row<'_> {
    const POOL: usize = 4096;
    Row {
        name: "(b') authenticate, report only: two fixed pools of 4,096 tokens, near-live vs near-never-issued",
        gate: Gate::Report,
        n,
        calls: 1,
        run: Box::new(move |related, samples, rng| {
            let (manager, live) = fixture(runtime, POOL);
            let format = TokenFormat::polar();
            let mut live = live.into_iter();
            let pool = interleave(POOL, |class| {
                let base = if related == Some(class) {
                    live.next().expect("one live base per slot")
                } else {
                    prefix_of(
                        format
                            .generate(TokenKind::Customer)
                            .expect("getrandom")
                            .expose_secret(),
                    )
                };
                near(&base, rng)
            });
            measure(
                samples,
                1,
                rng,
                |class, rng| pool[2 * rng.below(POOL) + class],
                |token| {
                    black_box(authenticate(runtime, &manager, token));
                },
            )
        }),
    }
}

/// A manager on `SECRET` accepting `OLD_SECRET`, with `POOL` sessions per class in a fresh
/// store, interleaved: a slot of the `related` class holds a session stored under the
/// accepted key, any other slot one stored under the current key (in the A/A control, every
/// slot). Each token is authenticated once, in slot order, before the manager is returned.
fn rotation_fixture(
    runtime: &tokio::runtime::Runtime,
    related: Option<usize>,
    pool: usize,
    cache_capacity: u64,
) -> (SessionManager<MemoryStore>, Vec<[u8; TOKEN_LEN]>) {
    let store = MemoryStore::new();
    let customer = store.insert_customer(CustomerData::new(Utc::now()));
    let builder = |secret: &[u8]| {
        SessionManager::builder(store.clone())
            .secret(secret)
            .session_ttl(Duration::from_secs(24 * 3600))
            .cache_max_ttl(Duration::from_secs(24 * 3600))
            .cache_capacity(cache_capacity)
            .store_timeout(Duration::from_secs(5))
    };
    let manager = builder(SECRET)
        .accept_secrets([OLD_SECRET])
        .build()
        .expect("manager");
    let old = builder(OLD_SECRET).build().expect("manager");
    let tokens = runtime.block_on(async {
        let mut tokens = Vec::with_capacity(2 * pool);
        for slot in 0..2 * pool {
            let maker = if related == Some(slot & 1) {
                &old
            } else {
                &manager
            };
            let session = maker
                .create(customer.id, CreateSession::default())
                .await
                .expect("create");
            let token: [u8; TOKEN_LEN] = session
                .token
                .expose_secret()
                .as_bytes()
                .try_into()
                .expect("53 bytes");
            tokens.push(token);
        }
        tokens
    });
    for token in &tokens {
        assert!(
            authenticate(runtime, &manager, token),
            "every session is live"
        );
    }
    (manager, tokens)
}

/// (r) Key rotation, hits: with one accepted key, cached sessions stored under the
/// accepted key (found by the fallback, cached under the hash they are presented by) vs
/// cached sessions stored under the current key. Both classes are 4,096 sessions in one
/// store and one cache, each presented over and over.
fn rotation_hit_row(runtime: &tokio::runtime::Runtime, n: usize) -> Row<'_> {
    const POOL: usize = 4096;
    Row {
        name: "(r) rotation, hits: cached sessions stored under the accepted key vs under the current key",
        gate: Gate::Gated,
        n,
        calls: 1,
        run: Box::new(move |related, samples, rng| {
            let (manager, tokens) = rotation_fixture(runtime, related, POOL, 1 << 20);
            assert_eq!(
                manager.cached_sessions(),
                2 * POOL as u64,
                "every session is cached"
            );
            measure(
                samples,
                1,
                rng,
                |class, rng| tokens[2 * rng.below(POOL) + class],
                |token| {
                    black_box(authenticate(runtime, &manager, token));
                },
            )
        }),
    }
}

/// (r') Report only: the same classes with no cache, so every request is a miss: a session
/// stored under the accepted key costs one more HMAC and one more store lookup, by design.
/// Shows the harness sees that difference, and how large it is.
fn rotation_miss_row(runtime: &tokio::runtime::Runtime, n: usize) -> Row<'_> {
    const POOL: usize = 4096;
    Row {
        name: "(r') rotation, misses, report only: stored under the accepted key vs under the current key, no cache",
        gate: Gate::Report,
        n,
        calls: 1,
        run: Box::new(move |related, samples, rng| {
            let (manager, tokens) = rotation_fixture(runtime, related, POOL, 0);
            assert_eq!(manager.cached_sessions(), 0, "nothing is cached");
            measure(
                samples,
                1,
                rng,
                |class, rng| tokens[2 * rng.below(POOL) + class],
                |token| {
                    black_box(authenticate(runtime, &manager, token));
                },
            )
        }),
    }
}

/// (c) Negative control: `Vec<u8> ==` on 4 KiB, an early-exit compare. Related: the other
/// vector differs only in its last byte; plain: in its first.
fn vec_control(n: usize) -> Row<'static> {
    const LEN: usize = 4096;
    const POOL: usize = 8;
    Row {
        name: "(c) control: Vec<u8> == (4 KiB), last vs first byte differs",
        gate: Gate::Control,
        n,
        calls: 1,
        run: Box::new(move |related, samples, rng| {
            let pool = interleave(POOL, |class| {
                let a: Vec<u8> = (0..LEN).map(|_| rng.next() as u8).collect();
                let mut b = a.clone();
                b[if related == Some(class) { LEN - 1 } else { 0 }] ^= 1;
                (a, b)
            });
            measure(
                samples,
                1,
                rng,
                |class, rng| 2 * rng.below(POOL) + class,
                |&slot| {
                    let (a, b) = &pool[slot];
                    black_box(black_box(a) == black_box(b));
                },
            )
        }),
    }
}

/// (c') Report only: `[u8] ==` on 32 bytes, last vs first byte differs: an early exit too
/// small for this clock, one more reason the crate compares whole digests.
fn array_control(n: usize) -> Row<'static> {
    const POOL: usize = 4096;
    Row {
        name: "(c') control, report only: [u8] == on 32 bytes, last vs first byte differs",
        gate: Gate::Report,
        n,
        calls: 8,
        run: Box::new(move |related, samples, rng| {
            let pool = interleave(POOL, |class| {
                let a: [u8; 32] = rng.bytes();
                let mut b = a;
                b[if related == Some(class) { 31 } else { 0 }] ^= 1;
                (a, b)
            });
            measure(
                samples,
                8,
                rng,
                |class, rng| pool[2 * rng.below(POOL) + class],
                |(a, b)| {
                    black_box(black_box(&a[..]) == black_box(&b[..]));
                },
            )
        }),
    }
}

fn cpu() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
            .and_then(|l| l.split_once(':'))
            .map_or("?".to_owned(), |(_, v)| v.trim().to_owned())
    };
    format!(
        "{} (family {}, model {}, stepping {}), {} logical CPUs",
        field("model name"),
        field("cpu family"),
        field("model"),
        field("stepping"),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
}

/// What one row gave, for the summary.
struct Outcome {
    name: &'static str,
    gate: Gate,
    samples: usize,
    calls: f64,
    ns_per_call: f64,
    /// Row, then A/A.
    arms: [Vec<Rep>; 2],
    verdict: Verdict,
    fine: bool,
}

/// One arm's summary cells (t at 16n per repetition, mean |t| per look, max |t|) and its
/// residual difference per call.
fn arm_cells(reps: &[Rep], calls: f64) -> (String, String) {
    let at_16n: Vec<String> = reps.iter().map(|r| signed(r.looks[2].t)).collect();
    let growth: Vec<String> = (0..3)
        .map(|j| {
            let mean = reps.iter().map(|r| r.looks[j].t.abs()).sum::<f64>() / reps.len() as f64;
            format!("{mean:.1}")
        })
        .collect();
    let max = reps
        .iter()
        .flat_map(|r| r.looks.iter().map(|l| l.t.abs()))
        .fold(0.0, f64::max);
    let (d, w) = residual(reps);
    (
        format!("{} | {} | {max:.1}", at_16n.join(", "), growth.join(" / ")),
        format!("{:+.3} ± {:.3}", d / calls, w / calls),
    )
}

fn signed(t: f64) -> String {
    format!("{t:+.1}")
}

fn main() -> ExitCode {
    let mut reps = 4usize;
    let mut scale = 1.0f64;
    let mut only = String::new();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        match (arg.as_str(), value) {
            ("--reps", Some(v)) => reps = v.parse().expect("--reps R"),
            ("--scale", Some(v)) => scale = v.parse().expect("--scale S"),
            ("--seed", Some(v)) => seed = v.parse().expect("--seed X"),
            ("--only", Some(v)) => only = v,
            _ => {
                eprintln!("usage: [--reps R (even, ≥ 2)] [--scale S] [--seed X] [--only TEXT]");
                return ExitCode::FAILURE;
            }
        }
    }
    if reps < 2 || !reps.is_multiple_of(2) {
        eprintln!("--reps must be even and at least 2: roles swap between repetitions");
        return ExitCode::FAILURE;
    }
    if cfg!(debug_assertions) {
        eprintln!("warning: debug build; timings mean little. Use --release.");
    }
    let n = |base: usize| ((base as f64 * scale) as usize).max(4_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let mut rows = vec![
        digest_row(
            "(a) ct_eq on digests: 31-byte common prefix vs random",
            |h| {
                let mut b = *h;
                b[31] ^= 1;
                b
            },
            ct_eq,
            250_000,
        ),
        digest_row(
            "(a) ct_eq on digests: equal vs random",
            |h| *h,
            ct_eq,
            250_000,
        ),
        digest_row(
            "(a) TokenHash == (branch-free, map lookups): equal vs random",
            |h| *h,
            |a, b| TokenHash::from_bytes(*a) == TokenHash::from_bytes(*b),
            250_000,
        ),
        auth_row(&runtime, 250_000),
        fixed_pool_row(&runtime, 62_500),
        rotation_hit_row(&runtime, 62_500),
        rotation_miss_row(&runtime, 62_500),
        vec_control(62_500),
        array_control(250_000),
    ];
    for row in &mut rows {
        row.n = n(row.n);
    }
    rows.retain(|r| r.name.contains(&only));

    println!("CPU: {}", cpu());
    println!("seed {seed}, {reps} repetitions per arm, looks at n, 4n, 16n samples\n");
    let mut rng = Rng(seed ^ 0x5851_f42d_4c95_7f2d);
    let started = Instant::now();
    let mut ok = true;
    let mut summary = Vec::new();
    for row in &mut rows {
        println!("{}", row.name);
        println!(
            "| arm | rep | related class | t at n | t at 4n | t at 16n | t all (16n) | Δ ns (16n) |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        let mut arms: [Vec<Rep>; 2] = [Vec::new(), Vec::new()];
        let mut ns_per_call = 0.0;
        for rep in 0..reps {
            // Roles swap every repetition; A/A runs beside its row, first on alternate
            // repetitions, so slow drift over the run hits both arms alike.
            let class = rep % 2;
            let order = if rep % 2 == 0 { [0, 1] } else { [1, 0] };
            for arm in order {
                let related = (arm == 0).then_some(class);
                let samples = (row.run)(related, 16 * row.n, &mut rng);
                let r = repetition(&samples, class);
                let l = r.looks;
                println!(
                    "| {} | {} | {} | {} | {} | {} | {} | {:+.3} |",
                    ["row", "A/A"][arm],
                    rep + 1,
                    if arm == 0 {
                        class.to_string()
                    } else {
                        format!("({class})")
                    },
                    signed(l[0].t),
                    signed(l[1].t),
                    signed(l[2].t),
                    signed(l[2].t_all),
                    l[2].delta / row.calls as f64,
                );
                ns_per_call += l[2].mean / row.calls as f64 / (2 * reps) as f64;
                arms[arm].push(r);
            }
        }
        let v = verdict(&arms[0], &arms[1]);
        let fine = match row.gate {
            Gate::Gated => v != Verdict::Leak,
            Gate::Control => v == Verdict::Leak,
            Gate::Report => true,
        };
        ok &= fine;
        println!("verdict: {v:?}\n");
        summary.push(Outcome {
            name: row.name,
            gate: row.gate,
            samples: 16 * row.n,
            calls: row.calls as f64,
            ns_per_call,
            arms,
            verdict: v,
            fine,
        });
    }

    println!("CPU: {}", cpu());
    println!(
        "\n| row | samples per rep | ns per call | row: t at 16n, per rep | row: mean abs t at n / 4n / 16n | row: max abs t | A/A: t at 16n, per rep | A/A: mean abs t at n / 4n / 16n | A/A: max abs t | Δ row (ns per call) | Δ A/A (ns per call) | gate | verdict |"
    );
    println!("|---|---:|---:|---|---|---:|---|---|---:|---:|---:|---|---|");
    for o in &summary {
        let [(row, d_row), (aa, d_aa)] = [&o.arms[0], &o.arms[1]].map(|r| arm_cells(r, o.calls));
        println!(
            "| {} | {} | {:.1} | {row} | {aa} | {d_row} | {d_aa} | {} | {:?}{} |",
            o.name,
            o.samples,
            o.ns_per_call,
            match o.gate {
                Gate::Gated => "no leak",
                Gate::Control => "leak",
                Gate::Report => "report only",
            },
            o.verdict,
            if o.fine { "" } else { " (FAIL)" },
        );
    }
    println!("\ntotal time {:.0} s", started.elapsed().as_secs_f64());
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
