//! The `portal` example's `GET /metrics`, run as the metrics guide says
//! (`cargo run --features metrics --example portal`), over real sockets. The example runs as a
//! child process, so its global metrics recorder is its own.

mod common;

use common::example_process::ExampleProcess;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use tower_customer_session::token::{TokenFormat, TokenHasher, TokenKind};

/// Given to the example, so the test can compute the hashes that must not be scraped.
const SECRET: &str = "example metrics test secret, 32 bytes or more";
const ME: &str = "/v1/customer-portal/customers/me";

/// The value of the one sample named exactly `series` (name and labels) in a scrape.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        Some(
            value
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {line}")),
        )
    })
}

/// The sum of every sample of metric `name`, whatever its labels.
fn total(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

/// `GET /metrics` without credentials: a 200 in Prometheus text format.
async fn scrape(http: &reqwest::Client, base: &str) -> String {
    let response = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

/// A scrape without its sample values: names, labels and comments.
fn without_values(scrape: &str) -> String {
    scrape
        .lines()
        .map(|line| match line.rsplit_once(' ') {
            Some((series, _)) if !line.starts_with('#') => series,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn the_portal_serves_its_metrics_in_prometheus_text_format() {
    let example =
        ExampleProcess::start_with_features(&["metrics"], &[("SESSION_SECRET", SECRET)]).await;
    let base = format!("http://{}", example.value("LISTEN"));
    let demo_token = example.value("DEMO_TOKEN");
    let unknown_token = TokenFormat::polar()
        .generate(TokenKind::Customer)
        .unwrap()
        .expose_secret()
        .to_owned();
    let malformed_token = "polar_cst_notAToken";
    let http = reqwest::Client::new();
    let get_me = |token: &str| http.get(format!("{base}{ME}")).bearer_auth(token).send();

    // Twice with the demo token (a load or the cache, then the cache), once with a well-formed
    // token the store does not know, once with a malformed one.
    for _ in 0..2 {
        assert_eq!(get_me(&demo_token).await.unwrap().status(), StatusCode::OK);
    }
    assert_eq!(
        get_me(&unknown_token).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get_me(malformed_token).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // No credentials: the route is outside the customer-session layer.
    let text = scrape(&http, &base).await;

    // Prometheus text format: comments, blank lines and `name{labels} value` samples.
    for line in text.lines() {
        if line.is_empty() || line.starts_with("# ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        assert!(
            series.starts_with("customer_session_") && value.parse::<f64>().is_ok(),
            "not a sample of this crate: {line}\n{text}"
        );
    }

    let at_least = |series: &str, min: f64| {
        let value = sample(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
        assert!(value >= min, "{series} is {value}, want ≥ {min}\n{text}");
    };
    at_least(
        r#"customer_session_requests_total{outcome="authenticated",source="header"}"#,
        2.0,
    );
    at_least(
        r#"customer_session_requests_total{outcome="unknown_token",source="header"}"#,
        1.0,
    );
    at_least(
        r#"customer_session_requests_total{outcome="malformed_token",source="header"}"#,
        1.0,
    );
    at_least(r#"customer_session_cache_lookups_total{result="hit"}"#, 1.0);
    at_least(
        r#"customer_session_cache_lookups_total{result="miss"}"#,
        1.0,
    );
    at_least(
        r#"customer_session_store_calls_total{operation="load",result="ok"}"#,
        1.0,
    );
    // Buckets, not a summary: the example configures them for the latency histogram.
    assert!(
        text.contains("# TYPE customer_session_store_call_duration_seconds histogram"),
        "{text}"
    );
    at_least(
        r#"customer_session_store_call_duration_seconds_bucket{operation="load",le="+Inf"}"#,
        1.0,
    );
    at_least(
        r#"customer_session_store_call_duration_seconds_count{operation="load"}"#,
        1.0,
    );
    let buckets = text
        .lines()
        .filter(|line| line.starts_with("customer_session_store_call_duration_seconds_bucket{"))
        .count();
    assert!(buckets > 2, "{buckets} bucket lines\n{text}");

    // Exactly the four requests above went through the layer; scraping is not one of them.
    assert_eq!(
        total(&text, "customer_session_requests_total"),
        4.0,
        "{text}"
    );
    let again = scrape(&http, &base).await;
    assert_eq!(
        total(&again, "customer_session_requests_total"),
        4.0,
        "{again}"
    );

    // No token and no token hash, in full or in part.
    let hasher = TokenHasher::new(SECRET.as_bytes());
    let org_token = example.value("ORG_TOKEN");
    for token in [
        demo_token.as_str(),
        unknown_token.as_str(),
        malformed_token,
        &org_token,
    ] {
        let body = token.split_once('_').unwrap().1.split_once('_').unwrap().1;
        let hash = hasher.hash(token);
        for scrape in [&text, &again] {
            for secret in [token, body, &hash.to_hex()] {
                assert!(!scrape.contains(secret), "the scrape contains {secret:?}");
            }
            // Eight hex digits could occur inside a sample value by chance: names and labels.
            let short = hash.short().to_string();
            assert!(
                !without_values(scrape).contains(&short),
                "the scrape contains the short hash {short}"
            );
        }
    }

    let mut child = example.child;
    child.kill().await.unwrap();
}
