//! The crate's browser pieces over real sockets: the portal layer (hand-off + session
//! check), `Logout`, and `BrowserRejection`.
//!
//! The client is reqwest without redirects or a cookie store, so every `Location`,
//! `Set-Cookie` and `Cookie` is seen and carried by hand.

mod common;

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post_service};
use chrono::TimeDelta;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, COOKIE, LOCATION, RETRY_AFTER, SET_COOKIE};
use reqwest::redirect::Policy;
use tokio::net::TcpListener;
use tower_customer_session::reject::BrowserRejection;
use tower_customer_session::{Customer, CustomerSessionLayer, OnRejection, SessionCookie};

use common::{Harness, TestStore};

const NAVIGATION: &str = "text/html,application/xhtml+xml,*/*;q=0.8";
const COOKIE_NAME: &str = "__Host-customer_session";

async fn page(customer: Option<Customer>) -> String {
    customer.map_or("anonymous".to_owned(), |c| format!("customer {}", c.id))
}

fn auth(h: &Harness) -> CustomerSessionLayer<TestStore> {
    CustomerSessionLayer::new(h.sessions.clone()).cookie(SessionCookie::new("customer_session"))
}

/// Serve `app` on a free port; the base URL and a client that never follows redirects.
async fn serve(app: Router) -> (String, reqwest::Client) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    (format!("http://{addr}"), client)
}

/// `name=value` of the one `Set-Cookie`.
fn cookie_pair(response: &reqwest::Response) -> String {
    let set: Vec<_> = response.headers().get_all(SET_COOKIE).iter().collect();
    assert_eq!(set.len(), 1, "{set:?}");
    set[0]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

fn header(response: &reqwest::Response, name: impl reqwest::header::AsHeaderName) -> &str {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// The hand-off
// ---------------------------------------------------------------------------------------

/// Under `Router::nest` the request's own URI has lost the prefix; the redirect must still
/// bring the browser back to the path it asked for, not to the root of the site.
#[tokio::test]
async fn handoff_under_a_nested_router_returns_to_the_full_path() {
    let h = Harness::new();
    let (token, _) = h.issue(&h.customer("Jane")).await;
    let portal = auth(&h).optional().portal().unwrap();
    let shop = Router::new().route("/portal", get(page).layer(portal));
    let (base, http) = serve(Router::new().nest("/shop", shop)).await;

    let response = http
        .get(format!(
            "{base}/shop/portal?customer_session_token={token}&x=1"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(&response, LOCATION), "/shop/portal?x=1");

    // And the page at that path reads the cookie it set.
    let cookie = cookie_pair(&response);
    let response = http
        .get(format!("{base}/shop/portal"))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().starts_with("customer "));
}

/// A proxy that strips `/app` before the request arrives: the configured base path goes
/// back in front. The rules against off-site redirects still hold under it.
#[tokio::test]
async fn base_path_restores_a_prefix_stripped_by_a_proxy() {
    let h = Harness::new();
    let (token, _) = h.issue(&h.customer("Jane")).await;
    let portal = auth(&h)
        .optional()
        .portal()
        .unwrap()
        .base_path("/app/")
        .unwrap();
    let (base, http) = serve(Router::new().fallback(get(page)).layer(portal)).await;

    for (path, expected) in [
        ("/portal", "/app/portal"),
        ("//evil.example", "/app/evil.example"),
    ] {
        let response = http
            .get(format!("{base}{path}?customer_session_token={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(header(&response, LOCATION), expected, "{path}");
    }
    for bad in ["//evil.example", "/\\evil.example", "app", "/a?b"] {
        assert!(auth(&h).portal().unwrap().base_path(bad).is_err(), "{bad}");
    }
}

/// The store is down during a hand-off: the 503 page carries the layer's `Retry-After`.
#[tokio::test]
async fn handoff_unavailable_page_uses_the_layers_retry_after() {
    let h = Harness::new();
    let (token, _) = h.issue(&h.customer("Jane")).await;
    let portal = auth(&h).retry_after(7).optional().portal().unwrap();
    let (base, http) = serve(Router::new().route("/portal", get(page).layer(portal))).await;

    h.store.fail_always(true);
    let response = http
        .get(format!("{base}/portal?customer_session_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&response, RETRY_AFTER), "7");
    assert!(response.headers().get(SET_COOKIE).is_none());
}

/// A returning customer whose cookie has died opens a fresh link: signed in again, not
/// refused for the old cookie. (Mounted the other way round, the session check answered
/// `401 invalid_token` and cleared the cookie before the hand-off ever saw the link.)
#[tokio::test]
async fn fresh_link_signs_in_over_a_dead_cookie() {
    let h = Harness::new();
    let jane = h.customer("Jane");
    let (old, _) = h.issue(&jane).await;
    let portal = auth(&h).optional().portal().unwrap();
    let (base, http) = serve(Router::new().route("/portal", get(page).layer(portal))).await;

    let response = http
        .get(format!("{base}/portal?customer_session_token={old}"))
        .send()
        .await
        .unwrap();
    let stale = cookie_pair(&response);
    h.clock.advance(TimeDelta::hours(2));
    let (fresh, _) = h.issue(&jane).await;

    let response = http
        .get(format!("{base}/portal?customer_session_token={fresh}"))
        .header(COOKIE, &stale)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(cookie_pair(&response), format!("{COOKIE_NAME}={fresh}"));
}

#[tokio::test]
async fn email_is_dropped_from_the_clean_url_unless_kept() {
    let h = Harness::new();
    let (token, _) = h.issue(&h.customer("Jane")).await;
    let query = format!("customer_session_token={token}&email=jane%40example.com");
    for (keep, expected) in [
        (false, "/portal"),
        (true, "/portal?email=jane%40example.com"),
    ] {
        let portal = auth(&h).optional().portal().unwrap().keep_email(keep);
        let (base, http) = serve(Router::new().route("/portal", get(page).layer(portal))).await;
        let response = http
            .get(format!("{base}/portal?{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(header(&response, LOCATION), expected);
    }
}

#[test]
fn browser_pieces_need_a_cookie() {
    let h = Harness::new();
    let bearer_only = CustomerSessionLayer::new(h.sessions.clone());
    assert!(bearer_only.portal().is_err());
    assert!(bearer_only.logout("/").is_err());
    assert!(auth(&h).logout("//evil.example").is_err());
    assert!(auth(&h).logout("https://evil.example").is_err());
}

// ---------------------------------------------------------------------------------------
// Logout
// ---------------------------------------------------------------------------------------

/// The portal page and its sign-out, as the crate documents them.
fn portal_app<R: OnRejection>(layer: CustomerSessionLayer<TestStore, R>) -> Router {
    Router::new()
        .route(
            "/portal",
            get(page).layer(layer.clone().optional().portal().unwrap()),
        )
        .route(
            "/portal/logout",
            post_service(layer.logout("/portal").unwrap()),
        )
}

async fn sign_in(base: &str, http: &reqwest::Client, token: &str) -> String {
    let response = http
        .get(format!("{base}/portal?customer_session_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    cookie_pair(&response)
}

async fn logout(base: &str, http: &reqwest::Client, cookie: &str, site: &str) -> reqwest::Response {
    http.post(format!("{base}/portal/logout"))
        .header(ACCEPT, NAVIGATION)
        .header(COOKIE, cookie)
        .header("sec-fetch-site", site)
        .send()
        .await
        .unwrap()
}

fn is_clearing(response: &reqwest::Response) -> bool {
    let set = header(response, SET_COOKIE);
    set.starts_with(&format!("{COOKIE_NAME}=;")) && set.contains("Max-Age=0")
}

#[tokio::test]
async fn logout_revokes_clears_and_redirects() {
    let h = Harness::new();
    let (token, _) = h.issue(&h.customer("Jane")).await;
    let (base, http) = serve(portal_app(auth(&h))).await;
    let cookie = sign_in(&base, &http, &token).await;

    let response = logout(&base, &http, &cookie, "same-origin").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(&response, LOCATION), "/portal");
    assert!(is_clearing(&response), "{:?}", response.headers());
    assert_eq!(h.store.revokes(), 1);
    assert!(
        h.sessions
            .authenticate(&token, tower_customer_session::CredentialSource::Header)
            .await
            .is_err()
    );
}

/// A store that cannot revoke: the session may still work, so the browser is told and
/// keeps its cookie (the old example cleared it and redirected as if signed out).
#[tokio::test]
async fn failed_logout_answers_503_and_keeps_the_cookie() {
    let h = Harness::new();
    let (token, _) = h.issue(&h.customer("Jane")).await;
    let layer = auth(&h)
        .retry_after(4)
        .on_rejection(BrowserRejection::pages());
    let (base, http) = serve(portal_app(layer)).await;
    let cookie = sign_in(&base, &http, &token).await;

    h.store.fail_always(true);
    let response = logout(&base, &http, &cookie, "same-origin").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get(SET_COOKIE).is_none());
    assert!(response.headers().get(LOCATION).is_none());
    assert_eq!(header(&response, RETRY_AFTER), "4");
    assert!(response.text().await.unwrap().contains("Try again shortly"));

    // Once the store is back, the same request signs out.
    h.store.fail_always(false);
    let response = logout(&base, &http, &cookie, "same-origin").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(is_clearing(&response));
}

/// An expired, unknown or malformed session still signs out: cookie cleared, redirected.
#[tokio::test]
async fn logout_of_a_dead_session_still_signs_out() {
    let h = Harness::new();
    let (token, _) = h.issue(&h.customer("Jane")).await;
    let (base, http) = serve(portal_app(auth(&h))).await;
    let cookie = sign_in(&base, &http, &token).await;
    h.clock.advance(TimeDelta::hours(2));

    let unknown = common::unknown_token();
    for cookie in [
        cookie,
        format!("{COOKIE_NAME}={}", unknown.expose_secret()),
        format!("{COOKIE_NAME}=polar_cst_nope"),
        String::new(),
    ] {
        let response = logout(&base, &http, &cookie, "same-origin").await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{cookie}");
        assert_eq!(header(&response, LOCATION), "/portal");
        assert!(is_clearing(&response), "{cookie}");
    }
}

#[tokio::test]
async fn cross_site_logout_is_refused_and_revokes_nothing() {
    let h = Harness::new();
    let (token, _) = h.issue(&h.customer("Jane")).await;
    let (base, http) = serve(portal_app(auth(&h))).await;
    let cookie = sign_in(&base, &http, &token).await;

    for site in ["cross-site", "same-site"] {
        let response = logout(&base, &http, &cookie, site).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{site}");
        assert!(response.headers().get(SET_COOKIE).is_none());
    }
    assert_eq!(h.store.revokes(), 0);
}

async fn is_live(h: &Harness, token: &str) -> bool {
    h.sessions
        .authenticate(token, tower_customer_session::CredentialSource::Header)
        .await
        .is_ok()
}

/// A site behind HTTP Basic auth: the browser sends `Authorization: Basic` with every
/// request. That header is no session credential, so the cookie's session is the one
/// revoked (it used to be left live behind a 303), and the CSRF guard still applies:
/// browsers send Basic credentials cross-site too.
#[tokio::test]
async fn logout_behind_basic_auth_revokes_the_cookie_session() {
    let h = Harness::new();
    let (token, _) = h.issue(&h.customer("Jane")).await;
    let (base, http) = serve(portal_app(auth(&h))).await;
    let cookie = sign_in(&base, &http, &token).await;
    let post = |site: &'static str| {
        http.post(format!("{base}/portal/logout"))
            .header(ACCEPT, NAVIGATION)
            .header(AUTHORIZATION, "Basic dXNlcjpwYXNz")
            .header(COOKIE, &cookie)
            .header("sec-fetch-site", site)
            .send()
    };

    let response = post("cross-site").await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get(SET_COOKIE).is_none());
    assert!(is_live(&h, &token).await);

    let response = post("same-origin").await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(is_clearing(&response));
    assert_eq!(h.store.revokes(), 1);
    assert!(!is_live(&h, &token).await);
}

/// Two different session cookies (say one left for another path): both sessions are
/// revoked, not neither.
#[tokio::test]
async fn logout_with_two_session_cookies_revokes_both() {
    let h = Harness::new();
    let (first, _) = h.issue(&h.customer("Jane")).await;
    let (second, _) = h.issue(&h.customer("Joe")).await;
    let (base, http) = serve(portal_app(auth(&h))).await;
    let cookies = format!(
        "{}; other=1; {}",
        sign_in(&base, &http, &first).await,
        sign_in(&base, &http, &second).await
    );

    let response = logout(&base, &http, &cookies, "same-origin").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(is_clearing(&response));
    assert_eq!(h.store.revokes(), 2);
    assert!(!is_live(&h, &first).await);
    assert!(!is_live(&h, &second).await);
}

/// A sign-out that cannot tell what to revoke says so and keeps the cookie: more session
/// cookies than any browser holds, or two `Authorization` lines.
#[tokio::test]
async fn ambiguous_logout_is_refused_and_revokes_nothing() {
    let h = Harness::new();
    let (token, _) = h.issue(&h.customer("Jane")).await;
    let (base, http) = serve(portal_app(auth(&h))).await;
    let mut cookies = vec![sign_in(&base, &http, &token).await];
    for _ in 0..8 {
        let unknown = common::unknown_token();
        cookies.push(format!("{COOKIE_NAME}={}", unknown.expose_secret()));
    }
    let response = logout(&base, &http, &cookies.join("; "), "same-origin").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get(SET_COOKIE).is_none());

    let response = http
        .post(format!("{base}/portal/logout"))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(h.store.revokes(), 0);
    assert!(is_live(&h, &token).await);
}

// ---------------------------------------------------------------------------------------
// BrowserRejection
// ---------------------------------------------------------------------------------------

/// A dead cookie on a page: the browser goes to the sign-in page with the cookie cleared;
/// an API client on the same route still gets Polar's JSON.
#[tokio::test]
async fn browser_rejection_redirects_browsers_only() {
    let h = Harness::new();
    let (token, _) = h.issue(&h.customer("Jane")).await;
    let layer = auth(&h).on_rejection(BrowserRejection::redirect_to("/signin").unwrap());
    let app = Router::new()
        .route("/account", get(page))
        .route_layer(layer);
    let (base, http) = serve(app).await;
    h.clock.advance(TimeDelta::hours(2));
    let stale = format!("{COOKIE_NAME}={token}");

    let response = http
        .get(format!("{base}/account"))
        .header(ACCEPT, NAVIGATION)
        .header(COOKIE, &stale)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(&response, LOCATION), "/signin");
    assert!(is_clearing(&response));

    let response = http
        .get(format!("{base}/account"))
        .header(ACCEPT, "application/json")
        .header(COOKIE, &stale)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
}

/// During a key rotation, the cookie's session may be stored under the older key: the
/// sign-out finds and revokes it there.
#[tokio::test]
async fn logout_revokes_a_session_stored_under_an_accepted_older_key() {
    let old = Harness::new();
    let (token, _) = old.issue(&old.customer("Jane")).await;
    let rotated = Harness {
        sessions: tower_customer_session::SessionManager::builder(old.store.clone())
            .secret(b"the rotated key, thirty-two bytes")
            .accept_secrets([common::SECRET])
            .clock(old.clock.clone())
            .build()
            .unwrap(),
        store: old.store.clone(),
        clock: old.clock.clone(),
    };
    let (base, http) = serve(portal_app(auth(&rotated))).await;
    let cookie = sign_in(&base, &http, &token).await;

    let response = logout(&base, &http, &cookie, "same-origin").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(is_clearing(&response));
    for sessions in [&rotated.sessions, &old.sessions] {
        assert!(
            sessions
                .authenticate(&token, tower_customer_session::CredentialSource::Header)
                .await
                .is_err(),
            "revoked under the key it was stored under"
        );
    }
}
