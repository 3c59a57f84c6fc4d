//! No secret leaves the crate by a side door.
//!
//! Every outcome of the layer, the hand-off and the sessions API runs with a TRACE-level
//! subscriber (span events included) writing into a buffer. Afterwards no piece of 8 or more
//! characters of any token used (issued, unknown, malformed variants) may appear in a log
//! line, in the `Display` of an error, in the `Debug` of any public type, or in any
//! response header or body (except where the token is the product: the `Set-Cookie` of a
//! successful hand-off and the body of `create`). The full 64-hex token hash, the store's
//! lookup key, stays out of logs too; only its 8-hex short form may appear.
//!
//! `random_tokens` checks the same over randomly issued tokens and every failure mode of the
//! instrumented store.

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use chrono::TimeDelta;
use common::fixture::{COOKIE, Fixture, MEMBER, UNKNOWN, VALID};
use common::instrumented::Fault;
use common::log_capture::LogCapture;
use http::{HeaderMap, Request, Response};
use tower::{Layer, ServiceExt};
use tower_customer_session::reject::on_rejection_fn;
use tower_customer_session::store::{CustomerRef, NewSession, StoreError};
use tower_customer_session::token::{TokenFormat, TokenKind};
use tower_customer_session::{
    CreateSession, CredentialSource, Customer, InvalidRequest, InvalidToken, Rejection,
    SessionCookie, SessionInfo, SessionKey, SessionStore, StoreUnavailable,
};

/// The process-wide log buffer: tests run in parallel threads, so one global subscriber.
fn capture() -> &'static LogCapture {
    static CAPTURE: OnceLock<LogCapture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = LogCapture::default();
        tracing::subscriber::set_global_default(capture.subscriber()).expect("first subscriber");
        capture
    })
}

fn log_text() -> String {
    capture().text()
}

/// Everything that must not show a token, labelled for the failure message.
#[derive(Default)]
struct Evidence {
    items: Vec<(String, String)>,
    secrets: Vec<String>,
}

impl Evidence {
    fn secret(&mut self, token: impl Into<String>) {
        self.secrets.push(token.into());
    }

    fn add(&mut self, label: impl Into<String>, text: impl Into<String>) {
        self.items.push((label.into(), text.into()));
    }

    fn debug(&mut self, label: &str, value: &impl std::fmt::Debug) {
        self.add(format!("Debug of {label}"), format!("{value:?}"));
    }

    fn display(&mut self, label: &str, value: &impl std::fmt::Display) {
        self.add(format!("Display of {label}"), value.to_string());
    }

    /// Headers (all but `skip`) and body of a response.
    fn response(
        &mut self,
        label: &str,
        headers: &HeaderMap,
        body: &[u8],
        skip: Option<http::HeaderName>,
    ) {
        for (name, value) in headers {
            if Some(name) != skip.as_ref() {
                self.add(
                    format!("{label}: response header {name}"),
                    String::from_utf8_lossy(value.as_bytes()),
                );
            }
        }
        self.add(
            format!("{label}: response body"),
            String::from_utf8_lossy(body),
        );
    }

    /// Every 8-character window of each secret that reaches past the public prefix.
    fn needles(&self) -> Vec<String> {
        let mut needles = Vec::new();
        for secret in &self.secrets {
            let public = ["polar_cst_", "polar_mst_"]
                .iter()
                .find(|p| secret.starts_with(*p))
                .map_or(0, |p| p.len());
            let chars: Vec<char> = secret.chars().collect();
            for start in 0..chars.len().saturating_sub(7) {
                if start + 8 > public {
                    needles.push(chars[start..start + 8].iter().collect());
                }
            }
        }
        needles.sort();
        needles.dedup();
        needles
    }

    fn assert_clean(mut self, fixture: &Fixture) {
        self.add("log", log_text());
        let needles = self.needles();
        assert!(needles.len() > 40, "too few secrets to be meaningful");
        let hashes: Vec<String> = self.secrets.iter().map(|s| fixture.hash_hex(s)).collect();
        let mut leaks = Vec::new();
        for (label, text) in &self.items {
            for needle in &needles {
                if text.contains(needle.as_str()) {
                    leaks.push(format!("{label} contains {needle:?}"));
                }
            }
            if label == "log" {
                for hash in &hashes {
                    if text.contains(hash.as_str()) {
                        leaks.push(format!("log contains a full token hash {hash}"));
                    }
                }
            }
        }
        assert!(leaks.is_empty(), "secret leaks:\n{}", leaks.join("\n"));
    }
}

async fn send(app: &Router, request: Request<Body>) -> (Response<()>, Vec<u8>) {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("body")
        .to_vec();
    (Response::from_parts(parts, ()), body)
}

fn get_with(header: &str, value: impl AsRef<[u8]>) -> Request<Body> {
    Request::builder()
        .uri("/me")
        .header(header, value.as_ref())
        .body(Body::empty())
        .expect("request")
}

/// The handler records the `Debug` of what it was given: headers, customer, session facts.
fn recording_app(fixture: &Fixture, seen: Arc<Mutex<Vec<String>>>) -> Router {
    let handler = move |headers: HeaderMap, customer: Customer, info: SessionInfo| {
        let seen = seen.clone();
        async move {
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.push(format!("{headers:?}"));
            seen.push(format!("{customer:?} {info:?}"));
            "ok"
        }
    };
    Router::new()
        .route("/me", get(handler.clone()).post(handler))
        .layer(fixture.layer())
}

#[tokio::test]
async fn layer_outcomes_leak_nothing() {
    capture();
    let fixture = Fixture::new().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = recording_app(&fixture, seen.clone());
    let mut evidence = Evidence::default();
    let truncated = &VALID[..52];
    let not_b64 = VALID.replacen('_', "%", 1);
    let too_long = VALID.repeat(30);
    for secret in [VALID, MEMBER, UNKNOWN, truncated, &not_b64, &too_long] {
        evidence.secret(secret);
    }

    let cookie = |token: &str| format!("{COOKIE}={token}");
    let requests: Vec<(&str, Request<Body>)> = vec![
        (
            "header miss",
            get_with("authorization", format!("Bearer {VALID}")),
        ),
        (
            "header hit",
            get_with("authorization", format!("bearer  {VALID}")),
        ),
        ("cookie hit", get_with("cookie", cookie(VALID))),
        ("member cookie miss", get_with("cookie", cookie(MEMBER))),
        (
            "unknown miss",
            get_with("authorization", format!("Bearer {UNKNOWN}")),
        ),
        ("unknown negative hit", get_with("cookie", cookie(UNKNOWN))),
        (
            "bad shape",
            get_with("authorization", format!("Bearer {truncated}")),
        ),
        (
            "outside grammar",
            get_with("authorization", format!("Bearer {not_b64}")),
        ),
        ("too long", get_with("cookie", cookie(&too_long))),
        (
            "other scheme",
            get_with("authorization", format!("Basic {VALID}")),
        ),
        (
            "duplicate header",
            Request::builder()
                .uri("/me")
                .header("authorization", format!("Bearer {VALID}"))
                .header("authorization", format!("Bearer {MEMBER}"))
                .body(Body::empty())
                .expect("request"),
        ),
        (
            "duplicate cookie",
            get_with("cookie", format!("{}; {}", cookie(VALID), cookie(MEMBER))),
        ),
        (
            "cross-site POST with cookie",
            Request::builder()
                .method("POST")
                .uri("/me")
                .header("cookie", cookie(VALID))
                .header("sec-fetch-site", "cross-site")
                .body(Body::empty())
                .expect("request"),
        ),
    ];
    for (label, request) in requests {
        let (response, body) = send(&app, request).await;
        if let Some(rejection) = response.extensions().get::<Rejection>() {
            evidence.display(&format!("{label} rejection"), rejection);
            evidence.debug(&format!("{label} rejection"), rejection);
        }
        evidence.debug(&format!("{label} response"), &response);
        evidence.response(label, response.headers(), &body, None);
    }

    // Expiry: first from the cache, then (after a flush) from the store.
    fixture.clock.advance(TimeDelta::hours(2));
    for label in ["expired hit", "expired after flush"] {
        let (response, body) =
            send(&app, get_with("authorization", format!("Bearer {VALID}"))).await;
        assert_eq!(response.status(), 401, "{label}");
        evidence.response(label, response.headers(), &body, None);
        fixture.sessions.invalidate_all();
    }
    fixture.clock.advance(TimeDelta::hours(-2));

    // Revocation, then the revoked token.
    assert_eq!(fixture.sessions.revoke(MEMBER).await.ok(), Some(true));
    let (response, body) = send(&app, get_with("cookie", cookie(MEMBER))).await;
    assert_eq!(response.status(), 401);
    evidence.response("revoked", response.headers(), &body, None);

    // The store failing and hanging, for a token that is not cached.
    let fresh = fixture
        .sessions
        .create(fixture.alice.id, CreateSession::default())
        .await
        .expect("create");
    evidence.secret(fresh.token.expose_secret());
    evidence.debug("CustomerSession", &fresh);
    for fault in [Fault::Error, Fault::Hang] {
        fixture.store.set_fault(fault);
        let (response, body) = send(
            &app,
            get_with(
                "authorization",
                format!("Bearer {}", fresh.token.expose_secret()),
            ),
        )
        .await;
        assert_eq!(response.status(), 503, "{fault:?}");
        evidence.response(&format!("store {fault:?}"), response.headers(), &body, None);
        let revoke = fixture.sessions.revoke(fresh.token.expose_secret()).await;
        let error = revoke.expect_err("store is down");
        evidence.display(&format!("revoke under {fault:?}"), &error);
        evidence.debug(&format!("revoke under {fault:?}"), &error);
        let create = fixture
            .sessions
            .create(fixture.bob.id, CreateSession::default())
            .await;
        evidence.display(
            &format!("create under {fault:?}"),
            &create.expect_err("store is down"),
        );
        fixture.store.set_fault(Fault::None);
    }

    // What handlers saw: the credential header is marked sensitive before they run.
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        seen.len() >= 6,
        "the handler ran for every accepted request"
    );
    for (i, line) in seen.iter().enumerate() {
        evidence.add(format!("handler view {i}"), line.clone());
    }
    // The capture is live: rejections, store failures and the short hash are all there.
    let log = log_text();
    for expected in [
        "customer session rejected",
        "customer session store failed",
        "customer_session",
        &fixture.sessions.hasher().hash(VALID).short().to_string(),
    ] {
        assert!(log.contains(expected), "log has no {expected:?}");
    }
    evidence.assert_clean(&fixture);
}

#[tokio::test]
async fn sessions_api_and_public_types_leak_nothing() {
    capture();
    let fixture = Fixture::new().await;
    let sessions = &fixture.sessions;
    let mut evidence = Evidence::default();
    evidence.secret(VALID);
    evidence.secret(MEMBER);

    let created = sessions
        .create(
            fixture.alice.id,
            CreateSession::default().return_url("https://shop.example/back"),
        )
        .await
        .expect("create");
    let member = sessions
        .create(
            fixture.bob.id,
            CreateSession::default().kind(TokenKind::Member),
        )
        .await
        .expect("create member");
    for session in [&created, &member] {
        evidence.secret(session.token.expose_secret());
        evidence.debug("CustomerSession", session);
        evidence.debug("SessionToken", &session.token);
        evidence.display("SessionToken", &session.token);
        // The portal link holds the token too: its own `Debug` is redacted, not just the
        // session's.
        evidence.debug("PortalUrl", &session.customer_portal_url);
        evidence.debug("Customer", &session.customer);
    }
    let token = created.token.expose_secret();

    let (customer, info) = sessions
        .authenticate(token, CredentialSource::Header)
        .await
        .expect("ok");
    evidence.debug("Customer", &customer);
    evidence.debug("SessionInfo", &info);
    let parsed = TokenFormat::polar().parse(token).expect("shape");
    evidence.debug("Token", &parsed);
    evidence.display("Token", &parsed);
    let hash = sessions.hasher().hash(token);
    evidence.debug("TokenHash", &hash);
    evidence.display("TokenHash", &hash);
    evidence.display("ShortHash", &hash.short());
    evidence.debug("TokenHasher", sessions.hasher());
    evidence.debug("TokenFormat", sessions.format());
    evidence.debug("SessionManager", sessions);
    let record = fixture
        .store
        .memory()
        .load(SessionKey::new(&hash, token))
        .await
        .expect("load")
        .expect("stored");
    evidence.debug("SessionRecord", &record);
    evidence.debug("SessionKey", &SessionKey::new(&hash, token));
    let new = NewSession {
        id: uuid::Uuid::new_v4(),
        token_hash: hash,
        kind: TokenKind::Customer,
        customer: CustomerRef::Id(fixture.alice.id),
        created_at: sessions.now(),
        expires_at: sessions.now(),
        return_url: None,
        member: None,
    };
    evidence.debug("NewSession", &new);
    evidence.debug("CreateSession", &CreateSession::default().return_url("x"));
    evidence.debug("MemoryStore", fixture.store.memory());
    let layer = fixture.layer();
    evidence.debug("CustomerSessionLayer", &layer);
    let service = layer
        .clone()
        .layer(tower::service_fn(|_: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Body::empty()))
        }));
    evidence.debug("CustomerSessionService", &service);
    let portal = layer.portal().expect("cookie configured");
    evidence.debug("PortalLayer", &portal);
    let portal = portal.layer(tower::service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    }));
    evidence.debug("Portal", &portal);
    evidence.debug("Logout", &layer.logout("/portal").expect("local path"));
    evidence.debug("PortalUrl", &created.customer_portal_url);
    evidence.debug("CustomerData", &*customer);
    evidence.debug("CredentialSource", &info.source);
    evidence.debug("TokenKind", &parsed.kind());
    let bad_shape = TokenFormat::polar()
        .parse(&token[..52])
        .expect_err("truncated");
    evidence.debug("TokenError", &bad_shape);
    evidence.display("TokenError", &bad_shape);
    for error in [
        tower_customer_session::axum::ExtractError::MissingLayer,
        tower_customer_session::axum::ExtractError::Unauthenticated(
            http::HeaderValue::from_static("Bearer realm=\"polar\""),
        ),
    ] {
        evidence.debug("ExtractError", &error);
        evidence.display("ExtractError", &error);
    }
    evidence.debug("SessionCookie", &SessionCookie::new("sid"));
    evidence.debug("ManualClock", &fixture.clock);

    let rejections = [
        Rejection::MissingCredentials,
        Rejection::UnsupportedScheme,
        Rejection::CrossSiteRequest,
        Rejection::InvalidRequest(InvalidRequest::DuplicateAuthorization),
        Rejection::InvalidRequest(InvalidRequest::MalformedBearer),
        Rejection::InvalidRequest(InvalidRequest::DuplicateCookie),
        Rejection::InvalidRequest(InvalidRequest::MalformedCookie),
        Rejection::InvalidRequest(InvalidRequest::TooLong),
        Rejection::InvalidToken(InvalidToken::Malformed),
        Rejection::InvalidToken(InvalidToken::Unknown),
        Rejection::InvalidToken(InvalidToken::Expired),
        Rejection::InvalidToken(InvalidToken::CustomerDeleted),
        Rejection::StoreUnavailable(StoreUnavailable::Timeout),
        Rejection::StoreUnavailable(StoreUnavailable::Error),
    ];
    for rejection in rejections {
        evidence.display("Rejection", &rejection);
        evidence.debug("Rejection", &rejection);
    }
    for error in [
        StoreError::UnknownCustomer,
        StoreError::Conflict,
        StoreError::Timeout,
        StoreError::backend("connection refused"),
    ] {
        evidence.display("StoreError", &error);
        evidence.debug("StoreError", &error);
    }

    assert_eq!(sessions.revoke(token).await.ok(), Some(true));
    assert!(
        sessions
            .revoke_hash(&sessions.hasher().hash(MEMBER))
            .await
            .expect("revoke")
    );
    assert_eq!(sessions.revoke_all(fixture.bob.id).await.ok(), Some(1));
    sessions.invalidate_customer(fixture.alice.id);
    sessions.invalidate_all();
    let refused = sessions
        .authenticate(token, CredentialSource::Cookie)
        .await
        .expect_err("revoked");
    evidence.display("Rejection after revoke", &refused);

    evidence.assert_clean(&fixture);
}

#[tokio::test]
async fn portal_handoff_leaks_nothing_but_its_cookie() {
    capture();
    let fixture = Fixture::new().await;
    let auth = fixture.layer();
    let page = get(|customer: Option<Customer>| async move { format!("{}", customer.is_some()) })
        .layer(auth.clone().optional().portal().expect("cookie configured"));
    let app = Router::new().route("/portal", page).route(
        "/portal/logout",
        post(|| async { "bye" }).layer::<_, Infallible>(auth),
    );
    let mut evidence = Evidence::default();
    let truncated = &VALID[..50];
    for secret in [VALID, MEMBER, UNKNOWN, truncated] {
        evidence.secret(secret);
    }

    let hand = |query: String| {
        Request::builder()
            .uri(format!("/portal?{query}&email=a%40b.example"))
            .body(Body::empty())
            .expect("request")
    };
    let (response, body) = send(&app, hand(format!("customer_session_token={VALID}"))).await;
    assert_eq!(response.status(), 303);
    let set_cookie = response.headers()[http::header::SET_COOKIE]
        .to_str()
        .expect("ASCII");
    assert!(
        set_cookie.starts_with(&format!("{COOKIE}={VALID};")),
        "{set_cookie}"
    );
    evidence.response(
        "hand-off",
        response.headers(),
        &body,
        Some(http::header::SET_COOKIE),
    );

    for (label, query) in [
        (
            "hand-off unknown",
            format!("customer_session_token={UNKNOWN}"),
        ),
        (
            "hand-off bad shape",
            format!("customer_session_token={truncated}"),
        ),
        (
            "hand-off repeated",
            format!("customer_session_token={MEMBER}&customer_session_token={MEMBER}"),
        ),
    ] {
        let (response, body) = send(&app, hand(query)).await;
        assert_eq!(response.status(), 401, "{label}");
        evidence.response(label, response.headers(), &body, None);
    }
    fixture.store.set_fault(Fault::Error);
    let (response, body) = send(&app, hand(format!("customer_session_token={MEMBER}"))).await;
    assert_eq!(response.status(), 503);
    evidence.response("hand-off store down", response.headers(), &body, None);
    fixture.store.set_fault(Fault::None);

    // A rejected cookie is cleared with an empty value, never echoed.
    let logout = Request::builder()
        .method("POST")
        .uri("/portal/logout")
        .header("cookie", format!("{COOKIE}={truncated}"))
        .header("sec-fetch-site", "same-origin")
        .body(Body::empty())
        .expect("request");
    let (response, body) = send(&app, logout).await;
    assert_eq!(response.status(), 401);
    evidence.response("logout with dead cookie", response.headers(), &body, None);

    evidence.assert_clean(&fixture);
}

/// The check itself finds a leak: a log line carrying part of a token is caught.
#[tokio::test]
async fn the_leak_check_catches_a_planted_leak() {
    capture();
    let fixture = Fixture::new().await;
    let mut evidence = Evidence::default();
    evidence.secret(UNKNOWN);
    let planted = &UNKNOWN[20..30];
    evidence.add("planted", format!("request failed for {planted}"));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        evidence.assert_clean(&fixture)
    }));
    assert!(
        result.is_err(),
        "a planted 10-character piece went unnoticed"
    );
}

/// After authentication both credential headers are marked sensitive (README, "Security
/// notes"), so a handler that logs `Debug` of its headers shows neither: a browser that
/// also holds the session cookie sends it next to the `Authorization` header.
#[tokio::test]
async fn handlers_see_no_token_in_either_credential_header() {
    capture();
    let fixture = Fixture::new().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = recording_app(&fixture, seen.clone());
    let mut evidence = Evidence::default();
    evidence.secret(VALID);
    evidence.secret(MEMBER);
    for (authorization, cookie) in [(VALID, VALID), (VALID, MEMBER), (MEMBER, UNKNOWN)] {
        let request = Request::builder()
            .uri("/me")
            .header("authorization", format!("Bearer {authorization}"))
            .header("cookie", format!("theme=dark; {COOKIE}={cookie}"))
            .body(Body::empty())
            .expect("request");
        let (response, _) = send(&app, request).await;
        assert_eq!(response.status(), 200);
    }
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for (i, line) in seen.iter().enumerate() {
        evidence.add(format!("handler view {i}"), line.clone());
    }
    evidence.secret(UNKNOWN);
    evidence.assert_clean(&fixture);
}

/// A rejection hook that logs the request head shows no token: the credential lines are
/// marked sensitive before the hook runs, as they are before a handler runs. Both refused
/// requests below carry live tokens (403: a cross-site POST with a good cookie; 503: the
/// store is down).
#[tokio::test]
async fn rejection_hooks_see_no_token() {
    capture();
    let fixture = Fixture::new().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hook_seen = seen.clone();
    let layer =
        fixture
            .layer()
            .on_rejection(on_rejection_fn(move |rejection, request, _response| {
                let line = format!("{} {:?}", rejection.label(), request.headers);
                hook_seen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(line);
            }));
    let app = Router::new()
        .route("/me", get(|| async { "ok" }).post(|| async { "ok" }))
        .layer(layer);

    let cross_site = Request::post("/me")
        .header("cookie", format!("theme=dark; {COOKIE}={VALID}"))
        .header("sec-fetch-site", "cross-site")
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(&app, cross_site).await.0.status(), 403);

    fixture.store.set_fault(Fault::Error);
    let store_down = Request::get("/me")
        .header("authorization", format!("Bearer {MEMBER}"))
        .header("cookie", format!("{COOKIE}={VALID}"))
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(&app, store_down).await.0.status(), 503);

    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let mut evidence = Evidence::default();
    evidence.secret(VALID);
    evidence.secret(MEMBER);
    for (i, line) in seen.into_iter().enumerate() {
        evidence.add(format!("rejection hook view {i}"), line);
    }
    evidence.assert_clean(&fixture);
}

/// The same guarantee over randomly issued tokens and the instrumented store's failure modes
/// (errors, timeouts, revocation, expiry). Logs are captured per test here, by a subscriber
/// scoped to the test's thread, so they hold exactly what this test logged.
mod random_tokens {
    use crate::common;

    use std::time::Duration;

    use crate::common::log_capture::LogCapture;
    use crate::common::{
        Harness, Recorder, Reply, anonymous, assert_no_token_in, bearer, request, send,
    };
    use axum::body::Body;
    use http::{Request, StatusCode};
    use tower_customer_session::{CreateSession, CredentialSource, CustomerSessionLayer};

    const COOKIE: &str = "__Host-customer_session";

    #[tokio::test]
    async fn tokens_never_reach_logs_debug_output_or_responses() {
        let capture = LogCapture::default();
        let subscriber = capture.subscriber();
        // Current-thread runtime: every poll happens on this thread, under this subscriber.
        let _guard = tracing::subscriber::set_default(subscriber);

        let h = Harness::with(|b| b.store_timeout(Duration::from_millis(50)));
        let recorder = Recorder::default();
        let layer = CustomerSessionLayer::new(h.sessions.clone()).cookie(COOKIE);
        let app = common::app(layer.clone(), &recorder);
        let jane = h.customer("Jane");

        // create (customer and member sessions)
        let (token, session) = h.issue(&jane).await;
        let (member, member_session) = h
            .issue_with(
                &jane,
                CreateSession::default().kind(tower_customer_session::token::TokenKind::Member),
            )
            .await;
        let (expiring, expiring_session) = h.issue(&jane).await;
        let (revoked, _) = h.issue(&jane).await;
        let (failing, _) = h.issue(&jane).await;
        let (slow, _) = h.issue(&jane).await;
        let unknown = common::unknown_token();
        let unknown = unknown.expose_secret().to_owned();
        let mut bad_checksum = token.clone();
        bad_checksum.replace_range(
            token.len() - 1..,
            if token.ends_with('A') { "B" } else { "A" },
        );

        let mut replies: Vec<Reply> = Vec::new();
        let mut seen = Vec::new();
        let mut go = async |request: Request<Body>| {
            let reply = send(app.clone(), request).await;
            if reply.status == StatusCode::OK {
                seen.push(recorder.last());
            }
            replies.push(reply);
            replies.last().unwrap().status
        };

        // miss, then hit; header and cookie
        assert_eq!(go(bearer(&token)).await, StatusCode::OK);
        assert_eq!(go(bearer(&token)).await, StatusCode::OK);
        assert_eq!(
            go(request(&[("cookie", &format!("a=b; {COOKIE}={member}"))])).await,
            StatusCode::OK
        );
        // unknown, malformed, missing, unsupported, duplicate header, duplicate cookie, quoted
        assert_eq!(go(bearer(&unknown)).await, StatusCode::UNAUTHORIZED);
        assert_eq!(go(bearer(&bad_checksum)).await, StatusCode::UNAUTHORIZED);
        assert_eq!(go(anonymous()).await, StatusCode::UNAUTHORIZED);
        assert_eq!(
            go(request(&[("authorization", &format!("Basic {token}"))])).await,
            StatusCode::UNAUTHORIZED
        );
        let header = format!("Bearer {token}");
        assert_eq!(
            go(request(&[
                ("authorization", &header),
                ("authorization", &header)
            ]))
            .await,
            StatusCode::BAD_REQUEST
        );
        let cookies = format!("{COOKIE}={token}; {COOKIE}={member}");
        assert_eq!(
            go(request(&[("cookie", &cookies)])).await,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            go(request(&[("cookie", &format!("{COOKIE}=\"{token}\""))])).await,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            go(request(&[("authorization", &format!("Bearer {token}!"))])).await,
            StatusCode::BAD_REQUEST
        );
        // cross-site unsafe request with the cookie
        let mut post = request(&[("cookie", &format!("{COOKIE}={token}"))]);
        *post.method_mut() = http::Method::POST;
        assert_eq!(go(post).await, StatusCode::FORBIDDEN);
        // expired (after caching), revoked
        assert_eq!(go(bearer(&expiring)).await, StatusCode::OK);
        h.clock.set(expiring_session.expires_at);
        assert_eq!(go(bearer(&expiring)).await, StatusCode::UNAUTHORIZED);
        assert_eq!(
            go(request(&[("cookie", &format!("{COOKIE}={expiring}"))])).await,
            StatusCode::UNAUTHORIZED
        );
        h.clock.set(common::start_time());
        assert!(h.sessions.revoke(&revoked).await.unwrap());
        assert_eq!(go(bearer(&revoked)).await, StatusCode::UNAUTHORIZED);
        // store error and store timeout
        h.store.fail_next_loads(1);
        assert_eq!(go(bearer(&failing)).await, StatusCode::SERVICE_UNAVAILABLE);
        h.store.set_latency(Duration::from_secs(5));
        assert_eq!(go(bearer(&slow)).await, StatusCode::SERVICE_UNAVAILABLE);
        h.store.set_latency(Duration::ZERO);
        // the handle's own paths
        assert!(
            h.sessions
                .authenticate(&token, CredentialSource::Header)
                .await
                .is_ok()
        );
        assert!(
            h.sessions
                .authenticate(&unknown, CredentialSource::Header)
                .await
                .is_err()
        );
        assert_eq!(h.sessions.revoke_all(jane.id).await.unwrap(), 5);
        assert_eq!(go(bearer(&token)).await, StatusCode::UNAUTHORIZED);

        let tokens = [
            &token,
            &member,
            &expiring,
            &revoked,
            &failing,
            &slow,
            &unknown,
            &bad_checksum,
        ]
        .map(String::as_str);

        let logs = capture.text();
        assert_no_token_in(&logs, &tokens, "the logs");
        // The logs are not empty by accident: each token shows up by its short hash.
        for token in [&token, &member, &unknown, &revoked, &failing] {
            let short = h.hash(token).short().to_string();
            assert!(logs.contains(&short), "{short} missing from logs:\n{logs}");
        }
        for needle in [
            "customer session created",
            "customer session revoked",
            "customer session store failed",
            "cache=\"miss\"",
            "cache=\"hit\"",
        ] {
            assert!(logs.contains(needle), "{needle:?} missing from logs");
        }

        assert_eq!(seen.len(), 4);
        for seen in &seen {
            let debug = format!("{:?} {:?} {}", seen.customer, seen.info, seen.headers_debug);
            assert_no_token_in(&debug, &tokens, "what the handler saw");
            assert!(seen.credentials_sensitive);
        }
        let debug = format!(
            "{session:?} {member_session:?} {:?} {:?} {:?} {layer:?} {:?}",
            h.sessions,
            h.sessions.format(),
            h.sessions.hasher(),
            h.store
        );
        assert_no_token_in(&debug, &tokens, "Debug output");
        for reply in &replies {
            let shown = format!("{:?} {:?} {}", reply.headers, reply.rejection, reply.text());
            assert_no_token_in(&shown, &tokens, "a response");
            if let Some(rejection) = reply.rejection {
                assert_no_token_in(
                    &format!("{rejection:?} {rejection}"),
                    &tokens,
                    "a rejection",
                );
            }
        }
    }
}
