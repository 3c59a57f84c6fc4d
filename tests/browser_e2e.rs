//! The portal example in a real headless Chromium.
//!
//! Runs the example as documented (`cargo run --example portal`, `PORT=0`), then
//! `node tests/browser/portal.spec.mjs` against it: a session created with the printed
//! organization token, its `customer_portal_url` opened in the browser, the page, reload,
//! sign-out and the dead link (the script lists its steps).
//!
//! Needs Chromium (`/usr/bin/chromium`, or `CHROMIUM`) and playwright-core
//! (`npm ci --prefix tests/browser`). Without them the test fails under `CI=true` and is
//! skipped, loudly, elsewhere. The screenshot lands in `target/portal.png`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

const SCRIPT: &str = "tests/browser/portal.spec.mjs";
const INSTALL: &str = "apt-get install chromium && npm ci --prefix tests/browser";
/// What the script exits with when playwright-core is missing.
const PLAYWRIGHT_MISSING: i32 = 3;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Missing browser pieces fail the run in CI and are skipped, loudly, elsewhere.
fn missing(detail: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("browser test cannot run under CI=true: {detail}; install with: {INSTALL}");
    }
    eprintln!(
        "\n********************************************************************\n\
         SKIP: browser test not run: {detail}\n\
         install with: {INSTALL}\n\
         ********************************************************************\n"
    );
}

#[tokio::test]
async fn portal_flow_in_headless_chromium() {
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.is_file() {
        return missing(&format!("no Chromium at {}", chromium.display()));
    }
    let playwright = manifest_dir().join("tests/browser/node_modules/playwright-core");
    if !playwright.is_dir() {
        return missing(&format!("{} is missing", playwright.display()));
    }

    // The example exactly as documented, with its default (Secure, `__Host-`) cookie:
    // Chromium treats http://127.0.0.1 as a secure context and accepts it.
    let example = common::example_process::ExampleProcess::start(&[]).await;
    let value = |key: &str| example.value(key);
    let server_url = format!("http://{}", value("LISTEN"));
    assert!(
        value("PORTAL_URL").starts_with(&format!("{server_url}/portal?customer_session_token=")),
        "{}",
        value("PORTAL_URL")
    );

    let screenshot = manifest_dir().join("target/portal.png");
    // A leftover from an earlier run must not pass for this run's screenshot.
    let _ = std::fs::remove_file(&screenshot);
    let output = tokio::process::Command::new("node")
        .arg(SCRIPT)
        .current_dir(manifest_dir())
        .env("SERVER_URL", &server_url)
        .env("ORG_TOKEN", value("ORG_TOKEN"))
        .env("CUSTOMER_ID", value("DEMO_CUSTOMER_ID"))
        .env("COOKIE_NAME", "__Host-customer_session")
        .env("CHROMIUM", &chromium)
        .env("SCREENSHOT", &screenshot)
        .kill_on_drop(true)
        .output();
    // The script has its own 90 s watchdog that closes the browser.
    let output = match tokio::time::timeout(Duration::from_secs(150), output).await {
        Err(_) => panic!("node {SCRIPT} did not finish within 150 s"),
        Ok(Err(error)) => return missing(&format!("cannot run node: {error}")),
        Ok(Ok(output)) => output,
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    if output.status.code() == Some(PLAYWRIGHT_MISSING) {
        return missing(stderr.trim().trim_start_matches("SKIP: "));
    }
    assert!(
        output.status.success(),
        "node {SCRIPT} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("ok: portal browser flow (cookie __Host-customer_session"),
        "{stdout}"
    );
    assert!(
        screenshot.is_file(),
        "no screenshot at {}",
        screenshot.display()
    );

    let mut server = example.child;
    server.kill().await.unwrap();
}
