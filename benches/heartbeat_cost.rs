//! What a store's feed heartbeat costs its server, per instance.
//!
//! For each store and heartbeat setting: a server of the bench's own, `INSTANCES`
//! `SessionManager`s on it (each on its own store, as separate processes would be), all
//! feeds live, then `SECS` seconds of nothing but heartbeats. Measured on the server: its
//! CPU time (`utime + stime` from `/proc/<pid>/stat`) and the bytes it read and wrote. The
//! `idle` row has the same instances and subscriptions with a heartbeat of an hour, so the
//! difference is what the pings cost. Per instance = (row − idle) ÷ instances.
//!
//! Run: `cargo bench -p tower-customer-session-benches --features redis --bench heartbeat_cost`. Settings (environment):
//! `HEARTBEAT_COST_INSTANCES` (default 100), `HEARTBEAT_COST_SECS` (default 20). Needs
//! `redis-server` on `PATH`; Linux (`/proc`).
//!
//! Each store is a section producing rows; a `postgres` section can sit next to `redis`.

use std::time::Duration;

/// The tests' private `redis-server`, which the bench starts and kills.
#[cfg(feature = "redis")]
#[path = "../tests/redis_support/server.rs"]
#[allow(dead_code)] // The bench only starts and drops it.
mod server;

/// Whether the environment demands every service (the server module asks).
fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

const SECRET: &[u8] = b"heartbeat bench secret, 32 bytes";

struct Settings {
    instances: usize,
    secs: u64,
}

impl Settings {
    fn from_env() -> Self {
        let read = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        Self {
            instances: read("HEARTBEAT_COST_INSTANCES", 100) as usize,
            secs: read("HEARTBEAT_COST_SECS", 20),
        }
    }
}

/// What the server did during one measured window.
#[derive(Clone, Copy)]
struct Usage {
    cpu: Duration,
    bytes: u64,
    pings: u64,
    wall: Duration,
}

struct Row {
    store: &'static str,
    heartbeat: String,
    instances: usize,
    usage: Usage,
    idle: Usage,
}

/// CPU time of process `pid` so far (`utime + stime`, in clock ticks of 10 ms on Linux).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("a stat line") + 2..]
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 1000 / clock_ticks())
}

fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100)
}

fn main() {
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!(
        "{} instances per row, {} s per row\n",
        settings.instances, settings.secs
    );
    let mut rows = Vec::new();
    #[cfg(feature = "redis")]
    rows.extend(runtime.block_on(redis_section::rows(&settings)));
    print(&rows);
}

fn print(rows: &[Row]) {
    println!(
        "| store | heartbeat | instances | server CPU, % of a core | per instance, above idle | \
         bytes/s per instance, above idle | pings/s per instance |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in rows {
        let secs = row.usage.wall.as_secs_f64();
        let idle_secs = row.idle.wall.as_secs_f64();
        let n = row.instances as f64;
        let cpu = row.usage.cpu.as_secs_f64() / secs * 100.0;
        let idle_cpu = row.idle.cpu.as_secs_f64() / idle_secs * 100.0;
        let bytes = row.usage.bytes as f64 / secs;
        let idle_bytes = row.idle.bytes as f64 / idle_secs;
        println!(
            "| {} | {} | {} | {:.2} | {:.4} | {:.0} | {:.1} |",
            row.store,
            row.heartbeat,
            row.instances,
            cpu,
            (cpu - idle_cpu) / n,
            (bytes - idle_bytes) / n,
            row.usage.pings as f64 / secs / n,
        );
    }
}

#[cfg(feature = "redis")]
mod redis_section {
    use std::time::{Duration, Instant};

    use tower_customer_session::redis;
    use tower_customer_session::store::FeedState;
    use tower_customer_session::{RedisStore, SessionManager};

    use super::server::OwnRedis;
    use super::{Row, SECRET, Settings, Usage, cpu_time};

    /// One row per heartbeat interval (the timeout at its default), each with an idle
    /// baseline measured on the same kind of fresh server.
    pub(super) async fn rows(settings: &Settings) -> Vec<Row> {
        let Some(idle) = measure(settings, Duration::from_secs(3600)).await else {
            return Vec::new();
        };
        let mut rows = vec![Row {
            store: "redis",
            heartbeat: "idle (1 h)".to_owned(),
            instances: settings.instances,
            usage: idle,
            idle,
        }];
        for millis in [100, 250, 1000] {
            let interval = Duration::from_millis(millis);
            let Some(usage) = measure(settings, interval).await else {
                break;
            };
            let default = if millis == 100 { " (default)" } else { "" };
            rows.push(Row {
                store: "redis",
                heartbeat: format!("{millis} ms{default}"),
                instances: settings.instances,
                usage,
                idle,
            });
        }
        rows
    }

    /// Start a server, connect the instances, wait for their feeds, measure.
    async fn measure(settings: &Settings, interval: Duration) -> Option<Usage> {
        let server = OwnRedis::start()?;
        let pid = server.pid().expect("running");
        let mut instances = Vec::with_capacity(settings.instances);
        for _ in 0..settings.instances {
            let store = RedisStore::builder(server.url())
                .heartbeat_interval(interval)
                .connect()
                .await
                .expect("connect");
            let manager = SessionManager::builder(store)
                .secret(SECRET)
                .build()
                .expect("build");
            instances.push(manager);
        }
        let started = Instant::now();
        while instances.iter().any(|m| m.feed_state() != FeedState::Live) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "feeds not live"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Let connection set-up settle before the window opens.
        tokio::time::sleep(Duration::from_secs(1)).await;

        let client = redis::Client::open(server.url()).expect("url");
        let mut probe = client
            .get_multiplexed_async_connection()
            .await
            .expect("probe");
        let before = (cpu_time(pid), counters(&mut probe).await, Instant::now());
        tokio::time::sleep(Duration::from_secs(settings.secs)).await;
        let after = (cpu_time(pid), counters(&mut probe).await, Instant::now());
        let lost = instances
            .iter()
            .filter(|m| m.feed_state() != FeedState::Live)
            .count();
        assert_eq!(
            lost, 0,
            "feeds lost during the window: the machine is too busy"
        );
        drop(instances);
        Some(Usage {
            cpu: after.0 - before.0,
            bytes: after.1.0 - before.1.0,
            // The probe's own INFO is one call per window, not counted: it is not a ping.
            pings: after.1.1 - before.1.1,
            wall: after.2 - before.2,
        })
    }

    /// Bytes in + out, and `PING` calls, so far.
    async fn counters(probe: &mut redis::aio::MultiplexedConnection) -> (u64, u64) {
        let info: String = redis::cmd("INFO")
            .arg("everything")
            .query_async(probe)
            .await
            .expect("INFO");
        let field = |name: &str| -> u64 {
            info.lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().parse().ok())
                .unwrap_or(0)
        };
        let pings = info
            .lines()
            .find_map(|line| line.strip_prefix("cmdstat_ping:calls="))
            .and_then(|rest| rest.split(',').next())
            .and_then(|calls| calls.parse().ok())
            .unwrap_or(0);
        (
            field("total_net_input_bytes:") + field("total_net_output_bytes:"),
            pings,
        )
    }
}
