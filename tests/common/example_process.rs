//! The `portal` example run exactly as the README documents it (`cargo run --example portal`,
//! or `cargo run --features metrics --example portal`).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// A running example and the `KEY=value` lines it printed up to `DEMO_TOKEN=`.
pub struct ExampleProcess {
    pub child: Child,
    printed: Vec<String>,
    // Held open: the example keeps printing, and a closed pipe would stop it.
    _stdout: Lines<BufReader<ChildStdout>>,
}

impl ExampleProcess {
    /// Start it on a free port with fresh secrets; `env` adds or overrides variables.
    pub async fn start(env: &[(&str, &str)]) -> Self {
        Self::start_with_features(&[], env).await
    }

    /// [`start`](Self::start) with these crate features enabled (`--features a,b`).
    pub async fn start_with_features(features: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO"));
        command.args(["run", "--quiet"]);
        if !features.is_empty() {
            command.args(["--features", &features.join(",")]);
        }
        command
            .args(["--example", "portal"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("PORT", "0")
            .env("RUST_LOG", "warn")
            .env_remove("ORG_TOKEN")
            .env_remove("SESSION_SECRET")
            .env_remove("SESSION_ACCEPTED_SECRETS")
            .env_remove("COOKIE_SECURE")
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("cargo runs");
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        // Generous: the example may still have to be compiled.
        let printed = tokio::time::timeout(Duration::from_secs(600), async {
            let lines = &mut lines;
            let mut printed = Vec::new();
            while let Some(line) = lines.next_line().await.expect("stdout readable") {
                let done = line.starts_with("DEMO_TOKEN=");
                printed.push(line);
                if done {
                    break;
                }
            }
            printed
        })
        .await
        .expect("the example prints its DEMO_TOKEN line");
        Self {
            child,
            printed,
            _stdout: lines,
        }
    }

    /// The value of a printed `KEY=value` line.
    pub fn value(&self, key: &str) -> String {
        self.printed
            .iter()
            .find_map(|line| line.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}= line in {:?}", self.printed))
            .to_owned()
    }
}
