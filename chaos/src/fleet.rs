//! The instances, as child processes of the harness (it runs itself with `instance`), each
//! on a fixed port so that a restarted one is found where it was.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::topology::Protocol;

pub struct Fleet {
    exe: PathBuf,
    protocol: Protocol,
    serve_cached: bool,
    /// Per instance: what it connects to the store with (through its proxies), and its
    /// HTTP port.
    slots: Vec<(String, u16)>,
    children: Vec<Option<Child>>,
}

impl Fleet {
    /// Start one instance per URL (each through its own proxies); returns once all are
    /// ready.
    pub async fn start(
        protocol: Protocol,
        urls: Vec<String>,
        serve_cached: bool,
    ) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut slots = Vec::new();
        for url in urls {
            let port = crate::topology::free_port().map_err(|e| e.to_string())?;
            slots.push((url, port));
        }
        let mut fleet = Self {
            exe,
            protocol,
            serve_cached,
            children: slots.iter().map(|_| None).collect(),
            slots,
        };
        for i in 0..fleet.slots.len() {
            fleet.spawn(i).await?;
        }
        Ok(fleet)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The base URL of instance `i`.
    pub fn base(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.slots[i].1)
    }

    /// Start instance `i`; returns once it listens.
    pub async fn spawn(&mut self, i: usize) -> Result<(), String> {
        let (url, port) = &self.slots[i];
        let mut command = Command::new(&self.exe);
        command
            .args(["instance", "--store", self.protocol.name(), "--url", url])
            .args(["--port", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if self.serve_cached {
            command.arg("--serve-cached");
        }
        let mut child = command.spawn().map_err(|e| format!("instance {i}: {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await;
        match ready {
            Ok(Ok(Some(line))) if line == "ready" => {}
            other => return Err(format!("instance {i} did not start: {other:?}")),
        }
        self.children[i] = Some(child);
        Ok(())
    }

    /// SIGKILL instance `i`.
    pub async fn kill(&mut self, i: usize) -> Result<(), String> {
        let mut child = self.children[i]
            .take()
            .ok_or(format!("instance {i} is not running"))?;
        child.kill().await.map_err(|e| e.to_string())
    }

    pub async fn stop(&mut self) {
        for child in self.children.iter_mut().filter_map(Option::take) {
            let mut child = child;
            let _ = child.kill().await;
        }
    }
}
