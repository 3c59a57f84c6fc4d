//! `GET /metrics` (feature `metrics`): the crate's series in Prometheus text format.
//!
//! ```text
//! cargo run --features metrics --example portal
//! curl -s http://127.0.0.1:3000/metrics
//! ```
//!
//! The recorder is `metrics-exporter-prometheus` without its HTTP listener: the route below
//! renders the scrape itself. It must be installed before any `SessionManager` is built,
//! since the crate registers its hot-path handles at `build()`. The route is not behind the
//! customer-session layer: like any scrape endpoint, keep it off the public internet. Labels
//! are bounded, so it never shows a token, a token hash or a customer id.

use std::time::Duration;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// Upper bounds of the store latency buckets, in seconds: from an in-memory call (well under
/// 100 µs) to a remote store near its timeout.
const STORE_CALL_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// How often recorded histogram samples are folded into their buckets between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Install the Prometheus recorder as the global one and return the router serving
/// `GET /metrics`. Call it inside the Tokio runtime (it spawns the upkeep task).
pub fn install() -> Result<Router, BuildError> {
    let handle = PrometheusBuilder::new()
        // Real `_bucket` series for the latency histogram (otherwise a summary).
        .set_buckets_for_metric(
            Matcher::Full("customer_session_store_call_duration_seconds".to_owned()),
            STORE_CALL_BUCKETS,
        )?
        .install_recorder()?;

    // `install_recorder` leaves upkeep to the caller: without it, histogram samples recorded
    // between scrapes pile up in memory.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });

    Ok(Router::new().route("/metrics", get(move || scrape(handle.clone()))))
}

async fn scrape(handle: PrometheusHandle) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        handle.render(),
    )
}
