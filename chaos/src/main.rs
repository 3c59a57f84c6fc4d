//! Fleet chaos: several instances of the layer, as separate processes, sharing one real
//! store (a `redis-server`, a Redis Sentinel topology of two nodes and three Sentinels, a
//! Redis Cluster of three primaries, or a PostgreSQL cluster, which the harness starts
//! with their own data directories), under bounded load on 127.0.0.1, with faults
//! injected on a schedule. Every operation is recorded with its start, end, instance,
//! token (a hash prefix) and result, and the whole history is checked against the
//! documented bounds afterwards (see `checker`). Exit status 0 when no rule was broken
//! (with `--weaken`, when the weakened fleet was caught).
//!
//! ```sh
//! # The CI form: each fault kind once, every topology, about a minute each.
//! cargo run --manifest-path chaos/Cargo.toml -- --store redis,sentinel,cluster,postgres
//! # The long form: rounds of every fault kind for 10 minutes per topology.
//! cargo run --release --manifest-path chaos/Cargo.toml -- --store sentinel --duration 600
//! # A fleet weakened to FeedPolicy::ServeCached under a hung feed: must be flagged.
//! cargo run --manifest-path chaos/Cargo.toml -- --store redis --weaken serve-cached --faults hang-feed
//! # Check a saved history again.
//! cargo run --manifest-path chaos/Cargo.toml -- check target/chaos/redis-1.jsonl
//! ```

#![forbid(unsafe_code)]

mod bounds;
mod checker;
mod fleet;
mod history;
mod instance;
mod proxy;
mod report;
mod rng;
mod run;
mod schedule;
mod sql;
mod topology;
mod traffic;
mod world;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use history::{FaultKind, History};
use schedule::Shape;
use topology::Protocol;

const USAGE: &str = "usage:
  chaos [--store redis,sentinel,cluster,postgres] [--duration SECONDS] [--fault-secs S] [--healthy-secs S]
        [--instances N] [--rate PER_S] [--clients N] [--revocations PER_S]
        [--faults KIND,...] [--weaken serve-cached] [--seed N] [--out DIR]
  chaos check HISTORY.jsonl
  chaos instance --store redis|sentinel|cluster|postgres --url URL --port PORT [--serve-cached]
fault kinds: store-kill, store-pause, hang-all, hang-feed, reset, instance-kill,
  failover (sentinel)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("instance") => instance(&args[1..]),
        Some("check") => check(&args[1..]),
        _ => harness(&args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("chaos: {error}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// `--flag value` pairs, and the flags given alone.
fn flags(args: &[String], alone: &[&str]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        if alone.contains(&flag.as_str()) {
            out.push((flag.clone(), String::new()));
        } else {
            let value = args.next().ok_or(format!("{flag} needs a value"))?;
            out.push((flag.clone(), value.clone()));
        }
    }
    Ok(out)
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: not a number: {value}"))
}

fn instance(args: &[String]) -> Result<ExitCode, String> {
    let mut options = instance::Options {
        protocol: Protocol::Redis,
        url: String::new(),
        port: 0,
        serve_cached: false,
    };
    for (flag, value) in flags(args, &["--serve-cached"])? {
        match flag.as_str() {
            "--store" => {
                options.protocol = Protocol::parse(&value)
                    .ok_or("--store: redis, sentinel, cluster or postgres")?
            }
            "--url" => options.url = value,
            "--port" => options.port = number(&flag, &value)?,
            "--serve-cached" => options.serve_cached = true,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    runtime()?.block_on(instance::run(options))?;
    Ok(ExitCode::SUCCESS)
}

fn check(args: &[String]) -> Result<ExitCode, String> {
    let [path] = args else {
        return Err("check takes one history file".into());
    };
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let history = History::read(std::io::BufReader::new(file))?;
    Ok(verdict(&history))
}

/// Print the report; success when nothing was broken, or, for a weakened fleet, when the
/// late accepts it allows were caught.
fn verdict(history: &History) -> ExitCode {
    let report = checker::check(history);
    report::print(history, &report);
    let late = report.count(checker::Rule::LateAccept);
    let pass = if history.weakened.is_some() {
        println!(
            "\n{}: the weakened fleet {}",
            if late > 0 { "PASS" } else { "FAIL" },
            if late > 0 {
                format!("was caught ({late} late accepts)")
            } else {
                "was not caught: no late accept".to_owned()
            }
        );
        late > 0
    } else {
        let clean = report.violations.is_empty();
        println!(
            "\n{}: {} violations",
            if clean { "PASS" } else { "FAIL" },
            report.violations.len()
        );
        clean
    };
    if pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn harness(args: &[String]) -> Result<ExitCode, String> {
    let mut stores: Vec<String> = topology::NAMES.iter().map(|&n| n.to_owned()).collect();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs());
    let mut options = run::Options {
        instances: 3,
        rate: 300,
        clients: 12,
        revocations_per_s: 2.0,
        creates_per_s: 5.0,
        probe_every: Duration::from_millis(300),
        shape: Shape::SHORT,
        kinds: None,
        serve_cached: false,
        seed,
        out: PathBuf::from("target/chaos"),
    };
    let (mut fault_secs, mut healthy_secs) = (None, None);
    for (flag, value) in flags(args, &[])? {
        match flag.as_str() {
            "--store" => stores = value.split(',').map(str::to_owned).collect(),
            "--duration" => options.shape = Shape::long(number(&flag, &value)?),
            "--fault-secs" => fault_secs = Some(number::<f64>(&flag, &value)?),
            "--healthy-secs" => healthy_secs = Some(number::<f64>(&flag, &value)?),
            "--revocations" => options.revocations_per_s = number::<f64>(&flag, &value)?.max(0.1),
            "--instances" => options.instances = number::<usize>(&flag, &value)?.max(2),
            "--rate" => options.rate = number::<u64>(&flag, &value)?.max(1),
            "--clients" => options.clients = number::<usize>(&flag, &value)?.max(1),
            "--seed" => options.seed = number(&flag, &value)?,
            "--out" => options.out = PathBuf::from(value),
            "--faults" => {
                let kinds = value
                    .split(',')
                    .map(|k| FaultKind::parse(k).ok_or(format!("unknown fault kind {k}")))
                    .collect::<Result<_, _>>()?;
                options.kinds = Some(kinds);
            }
            "--weaken" if value == "serve-cached" => options.serve_cached = true,
            _ => return Err(format!("unknown flag or value: {flag} {value}")),
        }
    }
    if let Some(seconds) = fault_secs {
        options.shape.fault = Duration::from_secs_f64(seconds.max(0.1));
    }
    if let Some(seconds) = healthy_secs {
        options.shape.healthy = Duration::from_secs_f64(seconds.max(1.0));
    }
    std::fs::create_dir_all(&options.out).map_err(|e| format!("{:?}: {e}", options.out))?;
    let runtime = runtime()?;
    let mut code = ExitCode::SUCCESS;
    for store in &stores {
        let history = runtime.block_on(run::run(store, &options))?;
        let path = options.out.join(format!("{store}-{}.jsonl", options.seed));
        let file = std::fs::File::create(&path).map_err(|e| format!("{path:?}: {e}"))?;
        history
            .write(std::io::BufWriter::new(file))
            .map_err(|e| format!("{path:?}: {e}"))?;
        eprintln!("history: {}", path.display());
        if verdict(&history) != ExitCode::SUCCESS {
            code = ExitCode::FAILURE;
        }
    }
    Ok(code)
}
