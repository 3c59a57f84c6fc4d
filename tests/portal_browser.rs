//! The `portal` example's browser pages, over real TCP sockets, at the HTTP level.
//!
//! The client is reqwest without redirects and without a cookie store: every `Set-Cookie`,
//! `Location` and `Cookie` is checked and carried by hand, the way a browser would.
//! `tests/browser_e2e.rs` runs the same flow in headless Chromium.

#[allow(dead_code)]
#[path = "../examples/portal/app.rs"]
mod app;
#[allow(dead_code)]
#[path = "../examples/portal/seed.rs"]
mod seed;

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, COOKIE, HeaderMap, LOCATION, ORIGIN,
    REFERRER_POLICY, SET_COOKIE, VARY,
};
use reqwest::redirect::Policy;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower_customer_session::model::{Address, CustomerData, Metadata, MetadataValue};
use tower_customer_session::store::DynStore;
use tower_customer_session::token::{TokenFormat, TokenKind};
use tower_customer_session::{Clock, ManualClock, MemoryStore, SessionCookie, SessionManager};
use uuid::Uuid;

use app::browser::{escape_html, session_cookie};

const ORG_TOKEN: &str = "polar_oat_browserOrganizationToken0123456789abcdefgh";
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";
const ME: &str = "/v1/customer-portal/customers/me";
const SIGN_IN: &str = "Sign-in link required";
const LINK_INVALID: &str = "Link expired or invalid";
const XSS_NAME: &str = "<img src=x onerror=alert(1)>";

struct Server {
    base: String,
    state: app::AppState,
    demo: seed::Demo,
    clock: ManualClock,
    http: reqwest::Client,
}

/// The example's router on a free port, on a clock the test moves.
async fn serve(cookie: SessionCookie) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let clock = ManualClock::new(Utc::now());
    let store = MemoryStore::with_clock(clock.clone());
    let demo = seed::seed(&store);
    let sessions = SessionManager::builder(DynStore::new(store))
        .secret(b"portal browser secret, 32 bytes!")
        .portal_url(format!("http://{addr}/portal"))
        .clock(clock.clone())
        .build()
        .unwrap();
    let state = app::AppState::new(sessions, ORG_TOKEN);
    let router = app::router_with_cookie(state.clone(), cookie);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Server {
        base: format!("http://{addr}"),
        state,
        demo,
        clock,
        http: reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .unwrap(),
    }
}

/// The example as it ships: `app::router`, `Secure` cookie.
async fn serve_default() -> Server {
    serve(session_cookie(true)).await
}

/// A session created the way a merchant backend does: `POST /v1/customer-sessions/`.
struct Session {
    token: String,
    portal_url: String,
    expires_at: DateTime<Utc>,
}

impl Server {
    async fn create_session(&self, customer_id: Uuid) -> Session {
        let response = self
            .http
            .post(format!("{}/v1/customer-sessions/", self.base))
            .bearer_auth(ORG_TOKEN)
            .json(&json!({ "customer_id": customer_id }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        let expires_at = DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap())
            .unwrap()
            .to_utc();
        Session {
            token: body["token"].as_str().unwrap().to_owned(),
            portal_url: body["customer_portal_url"].as_str().unwrap().to_owned(),
            expires_at,
        }
    }

    async fn get_url(&self, url: &str, cookie: Option<&str>) -> Response {
        let mut request = self.http.get(url);
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        request.send().await.unwrap()
    }

    async fn page(&self, cookie: Option<&str>) -> Response {
        self.get_url(&format!("{}/portal", self.base), cookie).await
    }

    async fn logout(&self, cookie: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = self
            .http
            .post(format!("{}/portal/logout", self.base))
            .header(COOKIE, cookie);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    async fn api_me(&self, token: &str) -> StatusCode {
        let response = self
            .http
            .get(format!("{}{ME}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        response.status()
    }

    /// Follow the portal link and return the `Cookie` header value it sets.
    async fn sign_in(&self, session: &Session) -> String {
        let response = self.get_url(&session.portal_url, None).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        cookie_pair(response.headers())
    }
}

fn header(headers: &HeaderMap, name: impl reqwest::header::AsHeaderName) -> &str {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_default()
}

/// `name=value` of the one `Set-Cookie`, as a browser would send it back.
fn cookie_pair(headers: &HeaderMap) -> String {
    let set: Vec<_> = headers.get_all(SET_COOKIE).iter().collect();
    assert_eq!(set.len(), 1, "exactly one Set-Cookie: {set:?}");
    let value = set[0].to_str().unwrap();
    value.split(';').next().unwrap().to_owned()
}

/// The token is in no header except the cookie the hand-off sets, and nowhere in the body.
fn assert_token_absent(headers: &HeaderMap, body: &str, token: &str) {
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        if name == SET_COOKIE && value.starts_with(&format!("__Host-customer_session={token};")) {
            continue;
        }
        assert!(!value.contains(token), "token in {name}: {value}");
    }
    assert!(!body.contains(token), "token in the body");
}

/// Headers every portal page carries.
fn assert_page_headers(headers: &HeaderMap) {
    assert_eq!(header(headers, CONTENT_TYPE), "text/html; charset=utf-8");
    assert_eq!(header(headers, "content-security-policy"), CSP);
    assert_eq!(header(headers, REFERRER_POLICY), "no-referrer");
}

/// A 401 "sign-in link required" page.
async fn assert_sign_in_page(response: Response) -> HeaderMap {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let headers = response.headers().clone();
    assert_page_headers(&headers);
    assert_eq!(header(&headers, CACHE_CONTROL), "no-store");
    let body = response.text().await.unwrap();
    assert!(body.contains(SIGN_IN), "{body}");
    assert!(!body.contains("Sign out"), "{body}");
    headers
}

/// A 401 "link expired or invalid" page that sets no cookie.
async fn assert_link_invalid(response: Response) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get(SET_COOKIE).is_none());
    assert!(response.headers().get(LOCATION).is_none());
    assert_page_headers(response.headers());
    let body = response.text().await.unwrap();
    assert!(body.contains(LINK_INVALID), "{body}");
}

fn clearing_cookie(secure: bool) -> &'static str {
    if secure {
        "__Host-customer_session=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Lax"
    } else {
        "customer_session=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"
    }
}

// ---------------------------------------------------------------------------------------
// The hand-off and the page
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn portal_link_becomes_a_secure_host_cookie_and_a_clean_url() {
    let server = serve_default().await;
    let session = server.create_session(server.demo.individual.id).await;
    assert!(
        session
            .portal_url
            .starts_with(&format!("{}/portal?customer_session_token=", server.base)),
        "{}",
        session.portal_url
    );

    let before = server.clock.now();
    let response = server.get_url(&session.portal_url, None).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let headers = response.headers().clone();
    assert_eq!(
        header(&headers, LOCATION),
        "/portal?email=customer%40example.com"
    );
    assert_eq!(header(&headers, REFERRER_POLICY), "no-referrer");
    let set_cookie = header(&headers, SET_COOKIE);
    let max_age: i64 = set_cookie
        .split("; ")
        .find_map(|attr| attr.strip_prefix("Max-Age="))
        .expect("Max-Age")
        .parse()
        .unwrap();
    assert_eq!(
        set_cookie,
        format!(
            "__Host-customer_session={}; Max-Age={max_age}; Path=/; HttpOnly; Secure; SameSite=Lax",
            session.token
        )
    );
    // Never past the session's end, and not much short of it (a one-hour session).
    let remaining = (session.expires_at - before).num_seconds();
    assert!(max_age <= remaining, "{max_age} > {remaining}");
    assert!(max_age >= remaining - 1 && max_age > 3500, "{max_age}");
    let body = response.text().await.unwrap();
    assert_token_absent(&headers, &body, &session.token);

    // The browser follows the redirect with its new cookie.
    let cookie = cookie_pair(&headers);
    let location = format!("{}{}", server.base, header(&headers, LOCATION));
    let response = server.get_url(&location, Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_page_headers(&headers);
    assert_eq!(header(&headers, CACHE_CONTROL), "private, no-store");
    assert_eq!(header(&headers, VARY), "Cookie, Authorization");
    assert!(headers.get(SET_COOKIE).is_none());
    let body = response.text().await.unwrap();
    assert_token_absent(&headers, &body, &session.token);
    for shown in [
        "<h1>John Doe</h1>",
        "customer@example.com",
        "123 Main St",
        "94105 San Francisco",
        "US-CA",
        "<th>plan</th><td>pro</td>",
        "<th>seats</th><td>5</td>",
        "<th>ratio</th><td>0.75</td>",
        "<th>beta</th><td>true</td>",
        r#"<form method="post" action="/portal/logout">"#,
    ] {
        assert!(body.contains(shown), "{shown} missing from {body}");
    }

    // Reloading (same cookie, no token anywhere) shows the page again.
    let response = server.page(Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("John Doe"));
}

#[tokio::test]
async fn without_secure_the_cookie_has_no_secure_and_no_prefix() {
    let server = serve(session_cookie(false)).await;
    let session = server.create_session(server.demo.individual.id).await;
    let response = server.get_url(&session.portal_url, None).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let set_cookie = header(response.headers(), SET_COOKIE);
    let max_age = set_cookie
        .split("; ")
        .find_map(|attr| attr.strip_prefix("Max-Age="))
        .unwrap();
    assert_eq!(
        set_cookie,
        format!(
            "customer_session={}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax",
            session.token
        )
    );

    let cookie = cookie_pair(response.headers());
    let response = server.page(Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("John Doe"));
    // This server reads only its own cookie name.
    let prefixed = format!("__Host-{cookie}");
    assert_sign_in_page(server.page(Some(&prefixed)).await).await;

    let response = server
        .logout(&cookie, &[("sec-fetch-site", "same-origin")])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        header(response.headers(), SET_COOKIE),
        clearing_cookie(false)
    );
}

#[tokio::test]
async fn customer_values_are_escaped() {
    let server = serve_default().await;
    let mut data = CustomerData::new(Utc::now()).organization(seed::ORGANIZATION_ID);
    data.id = Uuid::new_v4();
    data.name = Some(XSS_NAME.to_owned());
    data.email = Some("o'brien+\"quoted\"@example.com".to_owned());
    data.metadata = Metadata::from([("<b>".to_owned(), MetadataValue::from("</td><script>"))]);
    data.billing_address = Some(Address {
        line1: Some("1 Rue & <Co>".to_owned()),
        ..Address::new("FR")
    });
    let customer = server.state.sessions.upsert_customer(data).await.unwrap();

    let session = server.create_session(customer.id).await;
    let cookie = server.sign_in(&session).await;
    let response = server.page(Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.text().await.unwrap();

    assert!(
        body.contains("<h1>&lt;img src=x onerror=alert(1)&gt;</h1>"),
        "{body}"
    );
    assert!(!body.contains("<img"), "{body}");
    assert!(body.contains("o&#39;brien+&quot;quoted&quot;@example.com"));
    assert!(body.contains("<th>&lt;b&gt;</th><td>&lt;/td&gt;&lt;script&gt;</td>"));
    assert!(body.contains("1 Rue &amp; &lt;Co&gt;"));
    assert!(!body.contains("<script") && !body.contains("<b>"), "{body}");
}

#[test]
fn escape_html_covers_the_five_characters() {
    assert_eq!(
        escape_html(r#"a&b<c>d"e'f"#),
        "a&amp;b&lt;c&gt;d&quot;e&#39;f"
    );
    assert_eq!(escape_html("plain · text"), "plain · text");
}

#[tokio::test]
async fn page_without_a_cookie_asks_for_a_sign_in_link() {
    let server = serve_default().await;
    let headers = assert_sign_in_page(server.page(None).await).await;
    assert!(headers.get(SET_COOKIE).is_none());
    // Polar's `email` parameter alone is no credential.
    let url = format!("{}/portal?email=customer%40example.com", server.base);
    assert_sign_in_page(server.get_url(&url, None).await).await;
}

// ---------------------------------------------------------------------------------------
// Links that do not sign in
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn expired_link_is_refused_without_a_cookie() {
    let server = serve_default().await;
    let session = server.create_session(server.demo.individual.id).await;
    server
        .clock
        .advance(TimeDelta::hours(1) + TimeDelta::seconds(1));
    assert_link_invalid(server.get_url(&session.portal_url, None).await).await;
}

#[tokio::test]
async fn unknown_malformed_empty_and_repeated_tokens_are_refused() {
    let server = serve_default().await;
    let session = server.create_session(server.demo.individual.id).await;
    let unknown = TokenFormat::polar().generate(TokenKind::Customer).unwrap();
    let unknown = unknown.expose_secret();
    for query in [
        format!("customer_session_token={unknown}&email=customer%40example.com"),
        "customer_session_token=polar_cst_nope".to_owned(),
        "customer_session_token=".to_owned(),
        format!(
            "customer_session_token={0}&customer_session_token={0}",
            session.token
        ),
    ] {
        let url = format!("{}/portal?{query}", server.base);
        assert_link_invalid(server.get_url(&url, None).await).await;
    }
}

// ---------------------------------------------------------------------------------------
// Sign-out and the CSRF guard
// ---------------------------------------------------------------------------------------

/// The session still opens the page and the API: nothing was revoked.
async fn assert_still_signed_in(server: &Server, cookie: &str, token: &str) {
    let response = server.page(Some(cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.api_me(token).await, StatusCode::OK);
}

#[tokio::test]
async fn cross_site_logout_is_refused() {
    let server = serve_default().await;
    let session = server.create_session(server.demo.individual.id).await;
    let cookie = server.sign_in(&session).await;

    for headers in [
        &[("sec-fetch-site", "cross-site")][..],
        &[("sec-fetch-site", "same-site")][..],
        // A browser too old for Fetch Metadata, posting from another site.
        &[("origin", "http://evil.example")][..],
        &[
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://evil.example"),
        ][..],
    ] {
        let response = server.logout(&cookie, headers).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{headers:?}");
        assert!(response.headers().get(SET_COOKIE).is_none(), "{headers:?}");
        assert_page_headers(response.headers());
        assert!(response.text().await.unwrap().contains("Request refused"));
        assert_still_signed_in(&server, &cookie, &session.token).await;
    }
}

#[tokio::test]
async fn logout_without_fetch_metadata_or_origin_is_refused() {
    let server = serve_default().await;
    let session = server.create_session(server.demo.individual.id).await;
    let cookie = server.sign_in(&session).await;

    let response = server.logout(&cookie, &[]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get(SET_COOKIE).is_none());
    assert_still_signed_in(&server, &cookie, &session.token).await;
}

#[tokio::test]
async fn same_origin_logout_revokes_the_session_everywhere() {
    let server = serve_default().await;
    let session = server.create_session(server.demo.individual.id).await;
    let cookie = server.sign_in(&session).await;
    // A second browser signed in with the same link.
    let other_cookie = server.sign_in(&session).await;
    assert_still_signed_in(&server, &cookie, &session.token).await;

    let response = server
        .logout(&cookie, &[("sec-fetch-site", "same-origin")])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(response.headers(), LOCATION), "/portal");
    assert_eq!(
        header(response.headers(), SET_COOKIE),
        clearing_cookie(true)
    );

    // The old cookie: sign-in page, and the browser is told to drop it.
    let headers = assert_sign_in_page(server.page(Some(&cookie)).await).await;
    assert_eq!(header(&headers, SET_COOKIE), clearing_cookie(true));
    let headers = assert_sign_in_page(server.page(Some(&other_cookie)).await).await;
    assert_eq!(header(&headers, SET_COOKIE), clearing_cookie(true));
    // The token, as a Bearer credential on the API.
    assert_eq!(
        server.api_me(&session.token).await,
        StatusCode::UNAUTHORIZED
    );
    // The original portal link.
    assert_link_invalid(server.get_url(&session.portal_url, None).await).await;
    // Signing out again is harmless: there is nothing left to sign out of.
    let response = server
        .logout(&cookie, &[("sec-fetch-site", "same-origin")])
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(response.headers(), SET_COOKIE),
        clearing_cookie(true)
    );
}

#[tokio::test]
async fn fetch_metadata_none_is_a_same_origin_proof() {
    // `Sec-Fetch-Site: none` is what a browser sends for a user-initiated navigation.
    let server = serve_default().await;
    let session = server.create_session(server.demo.individual.id).await;
    let cookie = server.sign_in(&session).await;
    let response = server.logout(&cookie, &[("sec-fetch-site", "none")]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        server.api_me(&session.token).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn bearer_post_is_not_subject_to_the_csrf_guard() {
    // A browser never adds `Authorization` by itself, so a Bearer POST proves its origin.
    let server = serve_default().await;
    let session = server.create_session(server.demo.individual.id).await;
    let response = server
        .http
        .post(format!("{}/portal/logout", server.base))
        .header(AUTHORIZATION, format!("Bearer {}", session.token))
        .header("sec-fetch-site", "cross-site")
        .header(ORIGIN, "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        server.api_me(&session.token).await,
        StatusCode::UNAUTHORIZED
    );
}

// ---------------------------------------------------------------------------------------
// Dead cookies
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn expired_or_malformed_cookie_shows_the_sign_in_page_and_is_cleared() {
    let server = serve_default().await;
    let session = server.create_session(server.demo.individual.id).await;
    let cookie = server.sign_in(&session).await;

    for dead in [
        "__Host-customer_session=polar_cst_nope".to_owned(),
        format!(
            "__Host-customer_session={}",
            TokenFormat::polar()
                .generate(TokenKind::Customer)
                .unwrap()
                .expose_secret()
        ),
    ] {
        let headers = assert_sign_in_page(server.page(Some(&dead)).await).await;
        assert_eq!(
            header(&headers, SET_COOKIE),
            clearing_cookie(true),
            "{dead}"
        );
    }

    server.clock.advance(TimeDelta::hours(2));
    let headers = assert_sign_in_page(server.page(Some(&cookie)).await).await;
    assert_eq!(header(&headers, SET_COOKIE), clearing_cookie(true));
}
