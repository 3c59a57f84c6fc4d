//! The layer's response matrix, in-process, through an axum `Router` and a plain
//! `tower::service_fn`.

mod common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use common::{
    Harness, INVALID_TOKEN_FIXTURE, Recorder, Reply, UNAUTHORIZED_FIXTURE, anonymous,
    assert_no_token_in, bearer, recording_service, request, send, unknown_token,
};
use http::{Request, Response, StatusCode};
use tower::Layer;
use tower_customer_session::token::TokenKind;
use tower_customer_session::{
    CreateSession, CredentialSource, CustomerSessionLayer, InvalidRequest, InvalidToken, Rejection,
    StoreUnavailable,
};

// `__Host-` is what the layer reads under its secure cookie defaults.
const COOKIE: &str = "__Host-customer_session";

/// The same layer in front of an axum router and in front of a bare `service_fn`.
struct Apps {
    router: Router,
    plain: common::App,
    recorder: Recorder,
}

impl Apps {
    fn new<R: tower_customer_session::OnRejection>(
        layer: CustomerSessionLayer<common::TestStore, R>,
    ) -> Self {
        let recorder = Recorder::default();
        let seen = recorder.clone();
        let router = Router::new()
            .route(
                "/me",
                get(move |request: axum::extract::Request| async move {
                    seen.record(&request);
                    "ok"
                }),
            )
            .route_layer(layer.clone());
        let plain = common::app(layer, &recorder);
        Self {
            router,
            plain,
            recorder,
        }
    }

    /// Send `make()` through both apps; both must answer alike. Returns the router's reply.
    async fn send(&self, make: impl Fn() -> Request<Body>) -> Reply {
        let from_router = send(self.router.clone(), make()).await;
        let from_plain = send(self.plain.clone(), make()).await;
        assert_eq!(from_router.status, from_plain.status);
        assert_eq!(from_router.body, from_plain.body);
        assert_eq!(from_router.rejection, from_plain.rejection);
        // The handlers differ (axum sets a content type for "ok"); rejections must not.
        if from_router.rejection.is_some() {
            for name in [
                "www-authenticate",
                "cache-control",
                "pragma",
                "retry-after",
                "content-type",
            ] {
                assert_eq!(from_router.header(name), from_plain.header(name), "{name}");
            }
        }
        from_router
    }
}

fn fixture(json: &str) -> serde_json::Value {
    serde_json::from_str(json).unwrap()
}

/// Status, headers and body exactly as Polar's recorded response.
fn assert_matches_fixture(reply: &Reply, json: &str) {
    let fixture = fixture(json);
    assert_eq!(
        reply.status.as_u16(),
        fixture["status"].as_u64().unwrap() as u16
    );
    for (name, value) in fixture["headers"].as_object().unwrap() {
        assert_eq!(reply.header(name), value.as_str(), "header {name}");
    }
    assert_eq!(reply.json(), fixture["body"]);
}

fn assert_unauthorized(reply: &Reply, realm: &str) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.body,
        Bytes::from_static(br#"{"error":"Unauthorized","detail":"Unauthorized"}"#)
    );
    assert_eq!(
        reply.header("www-authenticate"),
        Some(format!("Bearer realm=\"{realm}\"").as_str())
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
}

fn assert_invalid_request(reply: &Reply, why: InvalidRequest) {
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let challenge = reply.header("www-authenticate").unwrap();
    assert!(
        challenge.starts_with("Bearer realm=\"polar\", error=\"invalid_request\""),
        "{challenge}"
    );
    assert_eq!(reply.json()["error"], "invalid_request");
    assert_eq!(reply.rejection, Some(Rejection::InvalidRequest(why)));
}

#[tokio::test]
async fn no_credentials_is_a_bare_challenge() {
    let h = Harness::new();
    let apps = Apps::new(CustomerSessionLayer::new(h.sessions.clone()));
    let reply = apps.send(anonymous).await;
    assert_unauthorized(&reply, "polar");
    assert_matches_fixture(&reply, UNAUTHORIZED_FIXTURE);
    assert_eq!(reply.rejection, Some(Rejection::MissingCredentials));
    assert_eq!(apps.recorder.calls(), 0);

    let shop = Apps::new(
        CustomerSessionLayer::new(h.sessions.clone())
            .realm("shop")
            .unwrap(),
    );
    assert_unauthorized(&shop.send(anonymous).await, "shop");
}

#[tokio::test]
async fn another_scheme_is_treated_as_no_credentials() {
    let h = Harness::new();
    let apps = Apps::new(CustomerSessionLayer::new(h.sessions.clone()));
    let reply = apps
        .send(|| request(&[("authorization", "Basic dXNlcjpwYXNz")]))
        .await;
    assert_unauthorized(&reply, "polar");
    assert!(!reply.header("www-authenticate").unwrap().contains("error"));
    assert_eq!(reply.rejection, Some(Rejection::UnsupportedScheme));
    assert_eq!(apps.recorder.calls(), 0);
}

#[tokio::test]
async fn dead_tokens_get_polars_invalid_token_response() {
    let h = Harness::new();
    let apps = Apps::new(CustomerSessionLayer::new(h.sessions.clone()));
    let expect = |reply: &Reply, why: InvalidToken| {
        assert_matches_fixture(reply, INVALID_TOKEN_FIXTURE);
        assert_eq!(reply.rejection, Some(Rejection::InvalidToken(why)));
    };

    let unknown = unknown_token();
    expect(
        &apps.send(|| bearer(unknown.expose_secret())).await,
        InvalidToken::Unknown,
    );

    // Revoked after it was cached.
    let (revoked, _) = h.issue(&h.customer("Rita")).await;
    assert_eq!(apps.send(|| bearer(&revoked)).await.status, StatusCode::OK);
    assert!(h.sessions.revoke(&revoked).await.unwrap());
    expect(&apps.send(|| bearer(&revoked)).await, InvalidToken::Unknown);

    // Customer deleted: the store stops returning the session.
    let dora = h.customer("Dora");
    let (deleted, _) = h.issue(&dora).await;
    assert_eq!(apps.send(|| bearer(&deleted)).await.status, StatusCode::OK);
    // Deleted through the crate's API: the cached entry goes at once, with no
    // `invalidate_customer` call to remember.
    assert!(h.sessions.delete_customer(dora.id).await.unwrap());
    expect(&apps.send(|| bearer(&deleted)).await, InvalidToken::Unknown);

    // Expired: the cached entry is refused by the clock, before the store is asked.
    let (expiring, session) = h.issue(&h.customer("Eve")).await;
    assert_eq!(apps.send(|| bearer(&expiring)).await.status, StatusCode::OK);
    h.clock.set(session.expires_at);
    expect(
        &apps.send(|| bearer(&expiring)).await,
        InvalidToken::Expired,
    );
    assert_eq!(
        apps.recorder.calls(),
        6,
        "only the six successful requests reached the handler"
    );
}

#[tokio::test]
async fn malformed_tokens_are_refused_before_the_store() {
    let h = Harness::new();
    let apps = Apps::new(CustomerSessionLayer::new(h.sessions.clone()).cookie(COOKIE));
    let (good, _) = h.issue(&h.customer("Jane")).await;
    let mut bad_checksum = good.clone();
    let last = bad_checksum.pop().unwrap();
    bad_checksum.push(if last == 'A' { 'B' } else { 'A' });
    let swapped_prefix = good.replacen("polar_cst_", "polar_xst_", 1);
    let short = good[..good.len() - 1].to_owned();
    let long = format!("{good}A");
    let no_prefix = good["polar_cst_".len()..].to_owned();
    let odd_but_legal_chars = format!("polar_cst_{}", "a.b-c~d+e/f".repeat(4));

    for token in [
        bad_checksum,
        swapped_prefix,
        short,
        long,
        no_prefix,
        odd_but_legal_chars,
        "x".into(),
    ] {
        let reply = apps.send(|| bearer(&token)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{token}");
        assert_eq!(
            reply.rejection,
            Some(Rejection::InvalidToken(InvalidToken::Malformed))
        );
        assert_matches_fixture(&reply, INVALID_TOKEN_FIXTURE);
        let reply = apps
            .send(|| request(&[("cookie", &format!("{COOKIE}={token}"))]))
            .await;
        assert_eq!(
            reply.rejection,
            Some(Rejection::InvalidToken(InvalidToken::Malformed))
        );
    }
    assert_eq!(h.store.loads(), 0, "no malformed token reached the store");
    assert_eq!(apps.recorder.calls(), 0);
}

#[tokio::test]
async fn malformed_requests_are_400_invalid_request() {
    let h = Harness::new();
    let apps = Apps::new(CustomerSessionLayer::new(h.sessions.clone()).cookie(COOKIE));
    let (token, _) = h.issue(&h.customer("Jane")).await;
    let (other, _) = h.issue(&h.customer("John")).await;
    let header = format!("Bearer {token}");
    let cookie = format!("{COOKIE}={token}");

    let cases: Vec<(Vec<(&str, String)>, InvalidRequest)> = vec![
        (
            vec![
                ("authorization", header.clone()),
                ("authorization", header.clone()),
            ],
            InvalidRequest::DuplicateAuthorization,
        ),
        (
            vec![("authorization", "Bearer".into())],
            InvalidRequest::MalformedBearer,
        ),
        (
            vec![("authorization", "Bearer ".into())],
            InvalidRequest::MalformedBearer,
        ),
        (
            vec![("authorization", format!("Bearer {token}$"))],
            InvalidRequest::MalformedBearer,
        ),
        (
            vec![("authorization", format!("Bearer {token} x"))],
            InvalidRequest::MalformedBearer,
        ),
        (
            vec![("cookie", format!("{COOKIE}=\"{token}\""))],
            InvalidRequest::MalformedCookie,
        ),
        (
            vec![("cookie", format!("{COOKIE}={token}%3D"))],
            InvalidRequest::MalformedCookie,
        ),
        (
            vec![("cookie", format!("{cookie}; {COOKIE}={other}"))],
            InvalidRequest::DuplicateCookie,
        ),
        (
            vec![
                ("cookie", cookie.clone()),
                ("cookie", format!("{COOKIE}={other}")),
            ],
            InvalidRequest::DuplicateCookie,
        ),
    ];
    for (headers, why) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let reply = apps.send(|| request(&headers)).await;
        assert_invalid_request(&reply, why);
    }
    assert_eq!(h.store.loads(), 0);
    assert_eq!(apps.recorder.calls(), 0);

    // The same cookie twice with the same value is not ambiguous.
    let reply = apps
        .send(|| request(&[("cookie", &format!("{cookie}; {cookie}"))]))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn store_failure_is_503_and_never_reaches_the_handler() {
    let h = Harness::new();
    let apps = Apps::new(CustomerSessionLayer::new(h.sessions.clone()).retry_after(7));
    let (token, _) = h.issue(&h.customer("Jane")).await;

    h.store.fail_always(true);
    let reply = apps.send(|| bearer(&token)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.header("retry-after"), Some("7"));
    assert_eq!(reply.header("www-authenticate"), None);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(
        reply.rejection,
        Some(Rejection::StoreUnavailable(StoreUnavailable::Error))
    );
    // Nothing of the backend's error text reaches the client.
    let body = reply.text();
    assert!(common::instrumented::BACKEND_DETAIL.contains("10.9.8.7"));
    for detail in ["10.9.8.7", "5432", "refused", "db-primary"] {
        assert!(!body.contains(detail), "{detail} leaked into {body}");
    }
    assert_eq!(apps.recorder.calls(), 0);
    assert_eq!(
        h.store.loads(),
        2,
        "one load per app: errors are not cached"
    );

    h.store.fail_always(false);
    assert_eq!(apps.send(|| bearer(&token)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn store_timeout_is_503() {
    let h = Harness::with(|b| b.store_timeout(Duration::from_millis(50)));
    let apps = Apps::new(CustomerSessionLayer::new(h.sessions.clone()));
    let (token, _) = h.issue(&h.customer("Jane")).await;
    h.store.set_latency(Duration::from_secs(30));

    let started = std::time::Instant::now();
    let reply = apps.send(|| bearer(&token)).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(reply.header("www-authenticate"), None);
    assert_eq!(
        reply.rejection,
        Some(Rejection::StoreUnavailable(StoreUnavailable::Timeout))
    );
    assert_eq!(apps.recorder.calls(), 0);
}

#[tokio::test]
async fn success_hands_the_handler_customer_and_session_facts() {
    let h = Harness::new();
    let apps = Apps::new(CustomerSessionLayer::new(h.sessions.clone()).cookie(COOKIE));
    let jane = h.customer("Jane");
    let (token, session) = h
        .issue_with(
            &jane,
            CreateSession::default()
                .kind(TokenKind::Member)
                .return_url("https://shop.example/"),
        )
        .await;
    assert!(token.starts_with("polar_mst_"));

    for (make, source) in [
        (
            Box::new(|| bearer(&token)) as Box<dyn Fn() -> Request<Body>>,
            CredentialSource::Header,
        ),
        (
            Box::new(|| request(&[("cookie", &format!("theme=dark; {COOKIE}={token}"))])),
            CredentialSource::Cookie,
        ),
    ] {
        // The plain service: exactly the two values the layer inserts, nothing else.
        let reply = send(apps.plain.clone(), make()).await;
        assert_eq!(reply.status, StatusCode::OK);
        let plain = apps.recorder.last();
        assert_eq!(plain.extension_count, 2);

        let reply = send(apps.router.clone(), make()).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.rejection, None);
        let seen = apps.recorder.last();

        for seen in [plain, seen] {
            let customer = seen.customer.expect("Customer in extensions");
            assert_eq!(customer, jane);
            let info = seen.info.expect("SessionInfo in extensions");
            assert_eq!(info.id, session.id);
            assert_eq!(info.customer_id, jane.id);
            assert_eq!(info.expires_at, session.expires_at);
            assert_eq!(info.kind, TokenKind::Member);
            assert_eq!(info.source, source);
            assert_eq!(info.return_url.as_deref(), Some("https://shop.example/"));
            assert!(info.token_hash == h.hash(&token));
            assert!(!seen.has_string_extension);
            assert!(seen.credentials_sensitive);
            let debug = format!("{customer:?} {info:?} {}", seen.headers_debug);
            assert_no_token_in(&debug, &[&token], "what the handler can see");
        }
    }
}

#[tokio::test]
async fn the_header_wins_over_the_cookie_without_fallback() {
    let h = Harness::new();
    let apps = Apps::new(CustomerSessionLayer::new(h.sessions.clone()).cookie(COOKIE));
    let (token, _) = h.issue(&h.customer("Jane")).await;
    let header = format!("Bearer {token}");
    let good_cookie = format!("{COOKIE}={token}");

    let reply = apps
        .send(|| {
            request(&[
                ("authorization", &header),
                ("cookie", &format!("{COOKIE}=\"garbage\"")),
            ])
        })
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        apps.recorder.last().info.unwrap().source,
        CredentialSource::Header
    );

    let unknown = format!("Bearer {}", unknown_token().expose_secret());
    let reply = apps
        .send(|| request(&[("authorization", &unknown), ("cookie", &good_cookie)]))
        .await;
    assert_eq!(
        reply.rejection,
        Some(Rejection::InvalidToken(InvalidToken::Unknown))
    );

    let reply = apps
        .send(|| request(&[("authorization", "Bearer !"), ("cookie", &good_cookie)]))
        .await;
    assert_invalid_request(&reply, InvalidRequest::MalformedBearer);

    let reply = apps
        .send(|| request(&[("authorization", "Basic eDp5"), ("cookie", &good_cookie)]))
        .await;
    assert_eq!(reply.rejection, Some(Rejection::UnsupportedScheme));
    assert_eq!(apps.recorder.calls(), 2);
}

#[tokio::test]
async fn optional_mode_lets_anonymous_requests_through_but_not_bad_tokens() {
    let h = Harness::new();
    let apps = Apps::new(CustomerSessionLayer::new(h.sessions.clone()).optional());
    let (token, _) = h.issue(&h.customer("Jane")).await;

    for make in [anonymous as fn() -> Request<Body>, || {
        request(&[("authorization", "Basic eDp5")])
    }] {
        let reply = apps.send(make).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.rejection, None);
        let seen = apps.recorder.last();
        assert!(seen.customer.is_none() && seen.info.is_none());
    }

    let unknown = unknown_token();
    let reply = apps.send(|| bearer(unknown.expose_secret())).await;
    assert_eq!(
        reply.rejection,
        Some(Rejection::InvalidToken(InvalidToken::Unknown))
    );
    assert_matches_fixture(&reply, INVALID_TOKEN_FIXTURE);
    let reply = apps.send(|| bearer("polar_cst_short")).await;
    assert_eq!(
        reply.rejection,
        Some(Rejection::InvalidToken(InvalidToken::Malformed))
    );
    let reply = apps.send(|| request(&[("authorization", "Bearer")])).await;
    assert_invalid_request(&reply, InvalidRequest::MalformedBearer);
    assert_eq!(apps.recorder.calls(), 4);

    assert_eq!(apps.send(|| bearer(&token)).await.status, StatusCode::OK);
    assert!(apps.recorder.last().customer.is_some());
}

#[tokio::test]
async fn on_rejection_can_rewrite_the_response() {
    let h = Harness::new();
    let layer = CustomerSessionLayer::new(h.sessions.clone()).on_rejection(
        |rejection: &Rejection, request: &http::request::Parts, response: &mut Response<Bytes>| {
            if *rejection == Rejection::MissingCredentials && request.uri.path() == "/me" {
                *response.status_mut() = StatusCode::SEE_OTHER;
                response
                    .headers_mut()
                    .insert("location", "/login".parse().unwrap());
                *response.body_mut() = Bytes::from_static(b"sign in first");
            }
        },
    );
    let apps = Apps::new(layer);

    let reply = apps.send(anonymous).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.header("location"), Some("/login"));
    assert_eq!(reply.text(), "sign in first");
    assert_eq!(
        reply.rejection,
        Some(Rejection::MissingCredentials),
        "the typed rejection stays"
    );

    // Other rejections keep Polar's response.
    let unknown = unknown_token();
    assert_matches_fixture(
        &apps.send(|| bearer(unknown.expose_secret())).await,
        INVALID_TOKEN_FIXTURE,
    );
}

#[tokio::test]
async fn the_plain_layer_also_stacks_with_tower_layer_trait() {
    // `Layer::layer` on a bare service, no ServiceBuilder, no axum.
    let h = Harness::new();
    let (token, _) = h.issue(&h.customer("Jane")).await;
    let recorder = Recorder::default();
    let service =
        CustomerSessionLayer::new(h.sessions.clone()).layer(recording_service(recorder.clone()));
    assert_eq!(
        send(service.clone(), bearer(&token)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(service, anonymous()).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(recorder.calls(), 1);
    assert_eq!(
        recorder.last().customer.unwrap().email.as_deref(),
        Some("jane@example.com")
    );
}
