//! Signals and process trees, through `kill` and `/proc` (the harness has no unsafe code).

use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::process::Command;
use std::time::{Duration, Instant};

/// Send `signal` (`KILL`, `STOP`, `CONT`) to each of `pids`.
pub fn signal(signal: &str, pids: &[u32]) -> io::Result<()> {
    if pids.is_empty() {
        return Ok(());
    }
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .args(pids.iter().map(u32::to_string))
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "kill -{signal} {pids:?}: {status}"
        )))
    }
}

/// The direct children of `parent`.
pub fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| parent_of(*pid) == Some(parent))
        .collect()
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: the fields follow its last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Whether `pid` still exists (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rfind(')')
            .and_then(|at| stat[at + 1..].split_whitespace().next());
        state != Some("Z")
    })
}

/// Wait until every one of `pids` is gone.
pub fn wait_gone(pids: &[u32], within: Duration) -> io::Result<()> {
    let deadline = Instant::now() + within;
    while pids.iter().any(|pid| alive(*pid)) {
        if Instant::now() > deadline {
            return Err(io::Error::other(format!("{pids:?} still alive")));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// A port of 127.0.0.1 free right now.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// A port of 127.0.0.1 free right now whose Redis Cluster bus port (10000 above it) is
/// free too.
pub fn free_cluster_port() -> io::Result<u16> {
    loop {
        let port = free_port()?;
        if port <= u16::MAX - 10_000
            && TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10_000)).is_ok()
        {
            return Ok(port);
        }
    }
}

/// Poll `ready` every 20 ms until it holds, for at most `within`.
pub fn wait_until(within: Duration, what: &str, mut ready: impl FnMut() -> bool) -> io::Result<()> {
    let deadline = Instant::now() + within;
    while !ready() {
        if Instant::now() > deadline {
            return Err(io::Error::other(format!("{what} within {within:?}")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// A fresh directory under the system's temporary one.
pub fn temp_dir(name: &str) -> io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "chaos-{name}-{}-{}",
        std::process::id(),
        free_port()?
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
