//! Device Bound Session Credentials in a real headless Chromium.
//!
//! The portal example runs as documented with `--features dbsc`, `PORTAL_DBSC=true`,
//! `PORTAL_DBSC_TTL_SECS=5` and serving plain HTTP; this test puts a TLS-terminating proxy in
//! front of it (tokio-rustls, a self-signed P-256 certificate for 127.0.0.1 made here) and
//! gives its `https://` origin to the example as `PORTAL_PUBLIC_URL`, the production setup.
//! Chromium trusts the certificate through `--ignore-certificate-errors-spki-list` (a
//! certificate error would make it ignore DBSC). Then `node tests/browser/dbsc.spec.mjs`:
//!
//! - with DBSC enabled: the hand-off, registration (the cookie becomes a bound credential),
//!   a navigation after the 5 s credential expired (held back, refreshed with a signed proof,
//!   served), sign-out, and no refresh after it;
//! - without: the same server, a browser that ignores the offer and keeps today's cookie.
//!
//! Needs Chromium and playwright-core as `tests/browser_e2e.rs` does: without them the test
//! fails under `CI=true` and is skipped, loudly, elsewhere.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types};

const SCRIPT: &str = "tests/browser/dbsc.spec.mjs";
const INSTALL: &str = "apt-get install chromium && npm ci --prefix tests/browser";
const PLAYWRIGHT_MISSING: i32 = 3;
const TTL_SECS: &str = "5";

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn missing(detail: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("browser test cannot run under CI=true: {detail}; install with: {INSTALL}");
    }
    eprintln!(
        "\n********************************************************************\n\
         SKIP: DBSC browser test not run: {detail}\n\
         install with: {INSTALL}\n\
         ********************************************************************\n"
    );
}

/// A self-signed P-256 certificate for 127.0.0.1, the acceptor serving it, and the
/// base64 SHA-256 of its public key (what `--ignore-certificate-errors-spki-list` takes).
fn tls() -> (TlsAcceptor, String) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("a certificate");
    assert_eq!(
        certified.key_pair.algorithm(),
        &rcgen::PKCS_ECDSA_P256_SHA256
    );
    let spki = base64::engine::general_purpose::STANDARD
        .encode(Sha256::digest(certified.key_pair.public_key_der()));
    let key = pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (TlsAcceptor::from(Arc::new(config)), spki)
}

/// Terminate TLS on `listener` and pass the bytes to `backend`, as a proxy in front of
/// the portal does.
fn proxy(listener: TcpListener, acceptor: TlsAcceptor, backend: SocketAddr) {
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut client) = acceptor.accept(client).await else {
                    return;
                };
                let Ok(mut upstream) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
}

async fn run(dbsc_in_browser: bool) {
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

    let (acceptor, spki) = tls();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = format!("https://{}", listener.local_addr().unwrap());
    let example = common::example_process::ExampleProcess::start_with_features(
        &["dbsc"],
        &[
            ("PORTAL_DBSC", "true"),
            ("PORTAL_DBSC_TTL_SECS", TTL_SECS),
            ("PORTAL_PUBLIC_URL", &public),
        ],
    )
    .await;
    let backend: SocketAddr = example.value("LISTEN").parse().unwrap();
    assert!(
        example
            .value("PORTAL_URL")
            .starts_with(&format!("{public}/portal?customer_session_token=")),
        "{}",
        example.value("PORTAL_URL")
    );
    proxy(listener, acceptor, backend);

    let output = tokio::process::Command::new("node")
        .arg(SCRIPT)
        .current_dir(manifest_dir())
        .env("SERVER_URL", &public)
        .env("API_URL", format!("http://{backend}"))
        .env("SPKI", &spki)
        .env("DBSC", if dbsc_in_browser { "1" } else { "0" })
        .env("TTL_SECS", TTL_SECS)
        .env("ORG_TOKEN", example.value("ORG_TOKEN"))
        .env("CUSTOMER_ID", example.value("DEMO_CUSTOMER_ID"))
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(Duration::from_secs(180), output).await {
        Err(_) => panic!("node {SCRIPT} did not finish within 180 s"),
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
    let mode = if dbsc_in_browser { "with" } else { "without" };
    assert!(
        stdout.contains(&format!("ok: dbsc browser flow ({mode} DBSC)")),
        "{stdout}"
    );
    let mut server = example.child;
    server.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_with_dbsc_registers_refreshes_and_signs_out() {
    run(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_without_dbsc_keeps_todays_cookie() {
    run(false).await;
}
