//! Device Bound Session Credentials on a fleet: two instances (two `SessionManager`s on
//! their own `RedisStore` connections and feeds, one fresh key prefix on the shared Redis,
//! two HTTP servers) sharing only the store and the secret.

mod dbsc_support;
mod redis_support;

use std::time::Duration;

use dbsc_support::*;
use redis_support::{Namespace, PROPAGATION, customer, manager, wait_for_feed};
use reqwest::StatusCode;
use reqwest::header::COOKIE;
use tower_customer_session::store::FeedState;
use tower_customer_session::{CreateSession, CustomerSession, RedisStore, SessionManager};

struct Instance {
    base: String,
    sessions: SessionManager<RedisStore>,
}

async fn fleet(redis: &Namespace) -> (Instance, Instance) {
    let (a, b) = redis.two_instances().await;
    let mut instances = Vec::new();
    for store in [a, b] {
        let sessions = manager(store);
        wait_for_feed(&sessions, FeedState::Live, Duration::from_secs(5)).await;
        let base = serve(router(sessions.clone())).await;
        instances.push(Instance { base, sessions });
    }
    let b = instances.pop().unwrap();
    let a = instances.pop().unwrap();
    (a, b)
}

async fn session(instance: &Instance) -> CustomerSession {
    let jane = instance
        .sessions
        .upsert_customer(customer("Jane"))
        .await
        .unwrap();
    instance
        .sessions
        .create(jane.id, CreateSession::default())
        .await
        .unwrap()
}

fn link(instance: &Instance, session: &CustomerSession) -> String {
    format!(
        "{}/portal?customer_session_token={}",
        instance.base,
        session.token.expose_secret()
    )
}

async fn me(instance: &Instance, cookie: &str) -> StatusCode {
    get_with_cookie(&instance.base, "/me", cookie)
        .await
        .status()
}

/// Poll `instance` until it refuses `cookie`; fail after `within`.
async fn refused_within(instance: &Instance, cookie: &str, within: Duration, what: &str) {
    let started = tokio::time::Instant::now();
    while me(instance, cookie).await == StatusCode::OK {
        assert!(
            started.elapsed() < within,
            "{what}: not refused within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_on_one_instance_refreshed_on_the_other() {
    let Some(redis) = Namespace::shared() else {
        return;
    };
    let (a, b) = fleet(&redis).await;
    let session = session(&a).await;
    let registered = register(&a.base, &link(&a, &session), new_key()).await;
    assert_eq!(me(&b, &registered.cookie).await, StatusCode::OK);

    // The challenge from B, answered on A, and the other way round.
    let id = registered.session_id.as_str();
    for (asked, answered) in [(&b, &a), (&a, &b)] {
        let first = post(&asked.base, &[("sec-secure-session-id", id)]).await;
        let challenge = refresh_challenge(first.headers(), id);
        let proof = refresh_proof(&registered.key, &challenge);
        let response = post(
            &answered.base,
            &[
                ("sec-secure-session-id", id),
                ("secure-session-response", &proof),
            ],
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        let cookie = cookie_pair(response.headers());
        assert_eq!(me(&a, &cookie).await, StatusCode::OK);
        assert_eq!(me(&b, &cookie).await, StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_or_logout_on_one_instance_refuses_the_bound_credential_on_the_other() {
    let Some(redis) = Namespace::shared() else {
        return;
    };
    let (a, b) = fleet(&redis).await;

    // Revoked on A, while B has the session cached.
    let revoked = session(&a).await;
    let registered = register(&a.base, &link(&a, &revoked), new_key()).await;
    for _ in 0..2 {
        assert_eq!(me(&b, &registered.cookie).await, StatusCode::OK);
    }
    assert!(
        a.sessions
            .revoke(revoked.token.expose_secret())
            .await
            .unwrap()
    );
    assert_eq!(me(&a, &registered.cookie).await, StatusCode::UNAUTHORIZED);
    refused_within(&b, &registered.cookie, PROPAGATION, "revoked on A").await;
    // And B ends the browser's DBSC session.
    let response = post(
        &b.base,
        &[("sec-secure-session-id", &registered.session_id)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"continue": false})
    );

    // Signed out on B with the bound credential, while A has it cached.
    let signed_out = session(&a).await;
    let registered = register(&a.base, &link(&a, &signed_out), new_key()).await;
    for _ in 0..2 {
        assert_eq!(me(&a, &registered.cookie).await, StatusCode::OK);
    }
    let response = http()
        .post(format!("{}/portal/logout", b.base))
        .header(COOKIE, &registered.cookie)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    refused_within(&a, &registered.cookie, PROPAGATION, "signed out on B").await;

    // Every session of the customer, revoked on B.
    let all = session(&a).await;
    let registered = register(&a.base, &link(&a, &all), new_key()).await;
    assert_eq!(me(&a, &registered.cookie).await, StatusCode::OK);
    b.sessions.revoke_all(all.customer_id).await.unwrap();
    refused_within(&a, &registered.cookie, PROPAGATION, "revoke_all on B").await;
}

/// The documented bound, exactly: a challenge is single use per instance. A proof
/// accepted on A is refused on A again, and accepted once on B within the challenge's
/// 60 seconds (no replay memory is shared), then refused there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_is_single_use_per_instance() {
    let Some(redis) = Namespace::shared() else {
        return;
    };
    let (a, b) = fleet(&redis).await;
    let session = session(&a).await;
    let registered = register(&a.base, &link(&a, &session), new_key()).await;
    let id = registered.session_id.as_str();
    let first = post(&a.base, &[("sec-secure-session-id", id)]).await;
    let challenge = refresh_challenge(first.headers(), id);
    let proof = refresh_proof(&registered.key, &challenge);
    let headers = [
        ("sec-secure-session-id", id),
        ("secure-session-response", proof.as_str()),
    ];
    assert_eq!(post(&a.base, &headers).await.status(), StatusCode::OK);
    assert_eq!(
        post(&a.base, &headers).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(post(&b.base, &headers).await.status(), StatusCode::OK);
    assert_eq!(
        post(&b.base, &headers).await.status(),
        StatusCode::FORBIDDEN
    );
}
