//! No token, nor any 8-character piece of one, reaches logs (captured at TRACE with span
//! events), `Debug` output, or responses, whatever the outcome; the short hash does.

mod common;

use std::time::Duration;

use axum::body::Body;
use common::log_capture::LogCapture;
use common::{Harness, Recorder, Reply, anonymous, assert_no_token_in, bearer, request, send};
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
