//! A Polar-compatible customer portal API, on the embedded `MemoryStore` or a shared store.
//!
//! ```text
//! cargo run --example portal
//! ```
//!
//! It serves Polar's customer-session endpoints (see `app.rs`) and a browser customer portal
//! (see `browser.rs`) for two seeded demo customers (see `seed.rs`), and prints what you need
//! to try it: the address, the organization token a merchant backend would use, the demo
//! customer's ids, the team customer's id and its members' ids and external ids by role
//! (`DEMO_MEMBER_OWNER_ID`, `DEMO_MEMBER_BILLING_MANAGER_EXTERNAL_ID`, …), a fresh session
//! token for the demo customer, the portal link Polar would send that customer
//! (`PORTAL_URL`, open it in a browser), and ready-to-paste `curl` commands.
//!
//! Polar's official SDKs work against it when pointed at the printed address, e.g.
//! `Polar(org_token, base_url="http://127.0.0.1:3000")` with Python's `polar-sdk` or
//! `createPolar({ accessToken, baseUrl: "http://127.0.0.1:3000" })` with `@polar-sh/sdk`
//! (`tests/sdk/` has complete clients).
//!
//! Several instances can share their sessions through Redis:
//!
//! ```text
//! SESSION_STORE=redis SESSION_SECRET=$(openssl rand -hex 32) cargo run --example portal --features redis
//! SESSION_STORE=postgres SESSION_SECRET=… cargo run --example portal --features postgres
//! ```
//!
//! With feature `metrics` it also serves the crate's metrics in Prometheus text format at
//! `GET /metrics` (see `metrics.rs`):
//!
//! ```text
//! cargo run --features metrics --example portal
//! curl -s http://127.0.0.1:3000/metrics
//! ```
//!
//! Environment:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `PORT` | `3000` | port on 127.0.0.1; `0` picks a free one |
//! | `SESSION_SECRET` | random with `memory`, required otherwise | HMAC key for session token hashes (Polar's `SECRET`), the same on every instance; at least 32 bytes, or the example refuses to start |
//! | `SESSION_ACCEPTED_SECRETS` | none | older keys whose sessions still work while `SESSION_SECRET` is being changed (README, "Rotating the session key"), comma-separated, so a key cannot contain a comma; spaces around an entry and empty entries are ignored; never used for new sessions |
//! | `ORG_TOKEN` | random `polar_oat_…` | the organization token `POST /v1/customer-sessions/` wants |
//! | `COOKIE_SECURE` | `true` | `false` drops `Secure` (and the `__Host-` prefix) from the portal's session cookie, for browsers that refuse secure cookies over plain http |
//! | `SESSION_STORE` | `memory` | where sessions live: `memory` (this process); `redis` (shared by every instance, feature `redis`); `postgres` (shared, kept across restarts, feature `postgres`); `polar`: merchant mode, accepting sessions issued by Polar or a Polar-compatible server (feature `polar-api`; see `merchant.rs`) |
//! | `REDIS_URL` | `redis://127.0.0.1:6379` | the Redis server, with `SESSION_STORE=redis` |
//! | `REDIS_SENTINELS` | unset | instead of `REDIS_URL`: the Sentinels (comma-separated `host:port`) that name the primary, which the store follows through failovers |
//! | `REDIS_SENTINEL_MASTER` | unset | the name the Sentinels monitor the primary under; required with `REDIS_SENTINELS` |
//! | `REDIS_CLUSTER_NODES` | unset | instead of `REDIS_URL`: some nodes of a Redis Cluster (≥ 7.0), comma-separated `redis://host:port`; the store finds the others, uses the Cluster key layout and a sharded feed |
//! | `REDIS_DURABILITY` | `none` | what every change (a session created, a revocation) waits for before it succeeds: `none` (the primary), `replicas:N` (`WAIT N`), `fsync:N` (`WAITAOF 1 N`, Redis ≥ 7.2); 500 ms, then an error. On a Cluster the wait runs on the primary that took the write and counts that primary's replicas |
//! | `DATABASE_URL` | `postgres://postgres@127.0.0.1:5432/test` | the database, with `SESSION_STORE=postgres` (feature `postgres`); migrated and seeded idempotently at start |
//! | `DATABASE_LISTEN_URL` | unset | with `SESSION_STORE=postgres`: set it when `DATABASE_URL` leads to a transaction-pooling proxy (PgBouncer `pool_mode = transaction`), to a direct connection to the same database; the feed listens and the migration runs there, every other statement goes through the proxy (see `postgres.rs`) |
//! | `PORTAL_PUBLIC_URL` | `http://` + the listening address | the origin browsers reach the portal at (behind a TLS-terminating proxy, its `https://` origin): where `customer_portal_url` points, and the scope of DBSC sessions. Only this setting decides it: `Host` and `X-Forwarded-*` headers are never trusted for it |
//! | `PORTAL_DBSC` | `false` | `true`: Device Bound Session Credentials (feature `dbsc`): the portal page offers registration, browsers that register hold a short-lived cookie bound to their key, renewed at `POST /portal/dbsc`. Needs an `https://` `PORTAL_PUBLIC_URL` and `COOKIE_SECURE=true`; this process keeps serving plain HTTP behind the proxy |
//! | `PORTAL_DBSC_TTL_SECS` | `600` | lifetime of a bound credential in seconds (≥ 1): how long a stolen one works, and how often a browser signs a refresh |
//! | `RUST_LOG` | `info` | log filter (logs go to stderr) |
//!
//! Standard output carries only `KEY=value` lines and the commands, so scripts can read it.
//! Printing a token there is the point of a demo; the logs never contain one.

mod app;
#[cfg(feature = "polar-api")]
mod merchant;
#[cfg(feature = "metrics")]
mod metrics;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
mod seed;

use std::error::Error;
use std::io::{IsTerminal, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use tokio::net::TcpListener;
use tower_customer_session::model::MemberRole;
use tower_customer_session::token::MIN_SECRET_LEN;
use tower_customer_session::{
    CreateSession, CustomerSession, DynStore, MemoryStore, SessionManager,
};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let port = match std::env::var("PORT") {
        Ok(port) => port
            .parse::<u16>()
            .map_err(|_| format!("PORT must be a port number, not {port:?}"))?,
        Err(_) => 3000,
    };
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    let addr = listener.local_addr()?;

    // `GET /metrics` with feature `metrics`. The recorder goes in before any `SessionManager`
    // is built: the crate registers its hot-path handles at `build()`.
    #[cfg(feature = "metrics")]
    let metrics_route = metrics::install()?;
    #[cfg(not(feature = "metrics"))]
    let metrics_route = Router::new();

    if non_empty_env("SESSION_STORE").as_deref() == Some("polar") {
        return merchant_mode(listener, metrics_route).await;
    }

    let (store, demo) = open_store().await?;
    let secret = match non_empty_env("SESSION_SECRET") {
        // `build()` would refuse it too; this says which variable to fix.
        Some(secret) if secret.len() < MIN_SECRET_LEN => {
            return Err(format!(
                "SESSION_SECRET is {} bytes long; it must be at least {MIN_SECRET_LEN} \
                 (`openssl rand -hex 32` makes one)",
                secret.len()
            )
            .into());
        }
        Some(secret) => secret.into_bytes(),
        None if store_kind() != "memory" => {
            return Err(format!(
                "SESSION_STORE={} shares sessions between processes: set SESSION_SECRET \
                 (32 bytes or more, the same on every instance)",
                store_kind()
            )
            .into());
        }
        None => {
            tracing::info!("SESSION_SECRET not set: sessions end with this process");
            random_secret()
        }
    };
    let sessions = SessionManager::builder(store)
        .secret(secret)
        .accept_secrets(comma_separated(non_empty_env("SESSION_ACCEPTED_SECRETS")))
        // Where `customer_portal_url` in created sessions points.
        .portal_url(format!("{}/portal", public_url(addr)))
        .build()?;
    let org_token = non_empty_env("ORG_TOKEN").unwrap_or_else(random_org_token);
    let cookie_secure = match non_empty_env("COOKIE_SECURE").as_deref() {
        None | Some("true" | "1") => true,
        Some("false" | "0") => false,
        Some(other) => {
            return Err(format!("COOKIE_SECURE must be true or false, not {other:?}").into());
        }
    };

    // What a merchant backend does when a signed-in customer opens the billing page.
    let demo_session = sessions
        .create(
            demo.individual.id,
            CreateSession::default().return_url("https://example.com/account"),
        )
        .await?;

    print_instructions(addr, &org_token, &demo, &demo_session)?;

    let state =
        app::AppState::new(sessions, &org_token).with_members(demo.team.id, demo.members.clone());
    let dbsc = device_bound(addr)?;
    let app = match dbsc {
        None if cookie_secure => app::router(state),
        None => app::router_with_cookie(state, app::browser::session_cookie(false)),
        dbsc => app::router_with_dbsc(state, app::browser::session_cookie(cookie_secure), dbsc)?,
    };
    let app = app
        .merge(metrics_route)
        .layer(middleware::from_fn(log_request));
    tracing::info!(%addr, "customer portal API listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// Merchant mode: this process accepts sessions issued by another (see `merchant.rs`).
#[cfg(feature = "polar-api")]
async fn merchant_mode(listener: TcpListener, metrics_route: Router) -> Result<(), Box<dyn Error>> {
    let addr = listener.local_addr()?;
    let app = merchant::from_env()?
        .merge(metrics_route)
        .layer(middleware::from_fn(log_request));
    let mut out = std::io::stdout().lock();
    writeln!(out, "LISTEN={addr}")?;
    out.flush()?;
    drop(out);
    tracing::info!(%addr, "merchant API listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

#[cfg(not(feature = "polar-api"))]
async fn merchant_mode(_: TcpListener, _: Router) -> Result<(), Box<dyn Error>> {
    Err("SESSION_STORE=polar needs the polar-api feature: cargo run --features polar-api --example portal".into())
}

fn print_instructions(
    addr: SocketAddr,
    org_token: &str,
    demo: &seed::Demo,
    demo_session: &CustomerSession,
) -> std::io::Result<()> {
    let base = format!("http://{addr}");
    let demo_token = demo_session.token.expose_secret();
    let external_id = demo.individual.external_id.as_deref().unwrap_or_default();
    let mut out = std::io::stdout().lock();
    writeln!(out, "LISTEN={addr}")?;
    writeln!(out, "ORG_TOKEN={org_token}")?;
    writeln!(out, "DEMO_CUSTOMER_ID={}", demo.individual.id)?;
    writeln!(out, "DEMO_EXTERNAL_ID={external_id}")?;
    writeln!(out, "DEMO_TEAM_CUSTOMER_ID={}", demo.team.id)?;
    // The team's members, one pair of lines per role: DEMO_MEMBER_OWNER_ID=…,
    // DEMO_MEMBER_OWNER_EXTERNAL_ID=emp_owner, then BILLING_MANAGER and MEMBER.
    for member in &demo.members {
        let role = member.role.as_str().to_uppercase();
        writeln!(out, "DEMO_MEMBER_{role}_ID={}", member.id)?;
        let external_id = member.external_id.as_deref().unwrap_or_default();
        writeln!(out, "DEMO_MEMBER_{role}_EXTERNAL_ID={external_id}")?;
    }
    writeln!(
        out,
        "PORTAL_URL={}",
        demo_session.customer_portal_url.expose_secret()
    )?;
    writeln!(out, "DEMO_TOKEN={demo_token}")?;
    writeln!(out)?;
    writeln!(out, "# The demo customer, as the customer portal sees it:")?;
    writeln!(
        out,
        "curl -s {base}/v1/customer-portal/customers/me -H 'Authorization: Bearer {demo_token}'"
    )?;
    writeln!(out, "# The session itself (expiry, return URL):")?;
    writeln!(
        out,
        "curl -s {base}/v1/customer-portal/customer-session/introspect -H 'Authorization: Bearer {demo_token}'"
    )?;
    writeln!(
        out,
        "# A new session, as the merchant backend creates it with its organization token:"
    )?;
    writeln!(
        out,
        "curl -s -X POST {base}/v1/customer-sessions/ -H 'Authorization: Bearer {org_token}' \
         -H 'Content-Type: application/json' -d '{{\"external_customer_id\":\"{external_id}\"}}'"
    )?;
    if let Some(billing) = demo
        .members
        .iter()
        .find(|m| m.role == MemberRole::BillingManager)
    {
        writeln!(
            out,
            "# A member session for the team's billing manager (or \"member_id\":\"{}\"):",
            billing.id
        )?;
        writeln!(
            out,
            "curl -s -X POST {base}/v1/customer-sessions/ -H 'Authorization: Bearer {org_token}' \
             -H 'Content-Type: application/json' \
             -d '{{\"customer_id\":\"{}\",\"external_member_id\":\"{}\"}}'",
            demo.team.id,
            billing.external_id.as_deref().unwrap_or_default()
        )?;
    }
    // Scripts read these lines from a pipe, where stdout is block-buffered.
    out.flush()
}

/// One line per request. The path only: a query string can carry a session token (Polar's
/// portal links do), and tokens never go to the logs.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::info!(
        %method,
        %path,
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

/// `PORTAL_PUBLIC_URL` (the origin browsers see, e.g. a TLS-terminating proxy's), without
/// a trailing `/`; `http://` + the listening address by default.
fn public_url(addr: SocketAddr) -> String {
    non_empty_env("PORTAL_PUBLIC_URL")
        .map(|url| url.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| format!("http://{addr}"))
}

/// Device Bound Session Credentials, as `PORTAL_DBSC` and `PORTAL_DBSC_TTL_SECS` say.
#[cfg(feature = "dbsc")]
fn device_bound(addr: SocketAddr) -> Result<Option<app::browser::DeviceBound>, Box<dyn Error>> {
    if !dbsc_enabled()? {
        return Ok(None);
    }
    let ttl = match non_empty_env("PORTAL_DBSC_TTL_SECS") {
        None => 600,
        Some(secs) => secs
            .parse::<u64>()
            .ok()
            .filter(|secs| *secs >= 1)
            .ok_or_else(|| {
                format!("PORTAL_DBSC_TTL_SECS must be a number of seconds ≥ 1, not {secs:?}")
            })?,
    };
    let public = public_url(addr);
    let settings =
        app::browser::DeviceBound::new(&public, app::browser::DBSC_PATH).map_err(|error| {
            format!(
                "PORTAL_DBSC=true needs PORTAL_PUBLIC_URL=https://host[:port], the origin browsers \
             see (not {public:?}): {error}"
            )
        })?;
    Ok(Some(
        settings.credential_lifetime(std::time::Duration::from_secs(ttl)),
    ))
}

#[cfg(not(feature = "dbsc"))]
fn device_bound(_: SocketAddr) -> Result<Option<app::browser::DeviceBound>, Box<dyn Error>> {
    if dbsc_enabled()? {
        return Err("PORTAL_DBSC=true needs the dbsc feature: \
             cargo run --example portal --features dbsc"
            .into());
    }
    Ok(None)
}

fn dbsc_enabled() -> Result<bool, Box<dyn Error>> {
    match non_empty_env("PORTAL_DBSC").as_deref() {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(other) => Err(format!("PORTAL_DBSC must be true or false, not {other:?}").into()),
    }
}

/// `SESSION_STORE`, `memory` by default.
fn store_kind() -> String {
    non_empty_env("SESSION_STORE").unwrap_or_else(|| "memory".to_owned())
}

/// The store `SESSION_STORE` names, with the demo customers in it.
async fn open_store() -> Result<(DynStore, seed::Demo), Box<dyn Error>> {
    match store_kind().as_str() {
        "memory" => {
            let store = MemoryStore::new();
            let demo = seed::seed(&store);
            Ok((DynStore::new(store), demo))
        }
        #[cfg(feature = "redis")]
        "redis" => {
            let store = redis::open().await?;
            let demo = seed::upsert(&store).await?;
            Ok((DynStore::new(store), demo))
        }
        #[cfg(not(feature = "redis"))]
        "redis" => Err("SESSION_STORE=redis needs the redis feature: \
             cargo run --example portal --features redis"
            .into()),
        #[cfg(feature = "postgres")]
        "postgres" => {
            let store = postgres::open().await?;
            let demo = seed::upsert(&store).await?;
            Ok((DynStore::new(store), demo))
        }
        #[cfg(not(feature = "postgres"))]
        "postgres" => Err("SESSION_STORE=postgres needs the postgres feature: \
             cargo run --example portal --features postgres"
            .into()),
        other => Err(format!(
            "SESSION_STORE must be memory, redis, postgres or polar, not {other:?}"
        )
        .into()),
    }
}

/// 32 bytes from the OS: the key of a store that lives and dies with this process.
fn random_secret() -> Vec<u8> {
    let mut secret = vec![0u8; 32];
    getrandom::fill(&mut secret).expect("the OS random number generator is available");
    secret
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// The entries of a comma-separated list, trimmed, the empty ones left out.
fn comma_separated(list: Option<String>) -> Vec<String> {
    list.iter()
        .flat_map(|list| list.split(','))
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `polar_oat_` + 43 random characters of `[A-Za-z0-9]`, the shape of Polar's organization
/// tokens.
fn random_org_token() -> String {
    const ALPHABET: &[u8; 62] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut token = String::from("polar_oat_");
    let mut pool = [0u8; 64];
    while token.len() < "polar_oat_".len() + 43 {
        getrandom::fill(&mut pool).expect("the OS random number generator is available");
        // Bytes below 248 (4 × 62) keep every character equally likely.
        for &byte in pool.iter().filter(|&&b| b < 248) {
            if token.len() < "polar_oat_".len() + 43 {
                token.push(ALPHABET[usize::from(byte % 62)] as char);
            }
        }
    }
    token
}
