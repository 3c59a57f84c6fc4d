//! A DBSC client without a browser: its own P-256 keys, JWTs signed by hand, every header
//! and cookie carried explicitly over a real socket.

#![allow(dead_code)]

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post_service};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, HeaderMap, SET_COOKIE};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower_customer_session::portal::dbsc::DeviceBound;
use tower_customer_session::{
    Customer, CustomerSessionLayer, SessionAdmin, SessionInfo, SessionManager, SessionStore,
};

pub const ORIGIN: &str = "https://shop.example";
pub const ENDPOINT: &str = "/portal/dbsc";
pub const COOKIE_NAME: &str = "__Host-customer_session";
pub const LIFETIME: Duration = Duration::from_secs(60);

/// The portal page, an API route reading the cookie (or a Bearer header), the DBSC
/// endpoint and sign-out, as an application mounts them.
pub fn router<St: SessionStore + SessionAdmin + Clone>(sessions: SessionManager<St>) -> Router {
    let settings = DeviceBound::new(ORIGIN, ENDPOINT)
        .unwrap()
        .credential_lifetime(LIFETIME);
    router_with(sessions, settings)
}

/// [`router`] with these DBSC settings.
pub fn router_with<St: SessionStore + SessionAdmin + Clone>(
    sessions: SessionManager<St>,
    settings: DeviceBound,
) -> Router {
    let auth = CustomerSessionLayer::new(sessions)
        .cookie("customer_session")
        .device_bound(settings)
        .unwrap();
    let page = get(|customer: Option<Customer>| async move {
        customer.map_or("anonymous".to_owned(), |c| c.id.to_string())
    });
    let me = get(|customer: Customer, info: SessionInfo| async move {
        format!("{} {}", customer.id, info.id)
    });
    Router::new()
        .route(
            "/portal",
            page.layer(auth.clone().optional().portal().unwrap()),
        )
        .route("/me", me.layer(auth.clone()))
        .route(
            ENDPOINT,
            post_service(auth.device_bound_endpoint().unwrap()),
        )
        .route(
            "/portal/logout",
            post_service(auth.logout("/portal").unwrap()),
        )
}

/// `router` on a free port; its base URL.
pub async fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn new_key() -> SigningKey {
    SigningKey::random(&mut rand_core::OsRng)
}

pub fn jwk(key: &SigningKey) -> Value {
    let point = key.verifying_key().to_encoded_point(false);
    json!({
        "kty": "EC",
        "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
        "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
    })
}

/// A JWT with this header and these claims, signed by `key` (ES256, JWS `r‖s`).
pub fn sign(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature: Signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// What Chromium sends to register: the public key in the header.
pub fn registration_proof(key: &SigningKey, challenge: &str) -> String {
    sign(
        key,
        &json!({"alg": "ES256", "typ": "dbsc+jwt", "jwk": jwk(key)}),
        &json!({"jti": challenge}),
    )
}

/// What Chromium sends to refresh: no key in the header.
pub fn refresh_proof(key: &SigningKey, challenge: &str) -> String {
    sign(
        key,
        &json!({"alg": "ES256", "typ": "dbsc+jwt"}),
        &json!({"jti": challenge}),
    )
}

pub fn header<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_default()
}

/// `name=value` of the one `Set-Cookie`.
pub fn cookie_pair(headers: &HeaderMap) -> String {
    let set: Vec<_> = headers.get_all(SET_COOKIE).iter().collect();
    assert_eq!(set.len(), 1, "exactly one Set-Cookie: {set:?}");
    set[0]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// The challenge in `Secure-Session-Registration: (ES256);path="…";challenge="…"`.
pub fn registration_challenge(headers: &HeaderMap) -> String {
    let offer = header(headers, "secure-session-registration");
    assert!(
        offer.starts_with(&format!("(ES256);path=\"{ENDPOINT}\";")),
        "{offer}"
    );
    offer
        .split("challenge=\"")
        .nth(1)
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no challenge in {offer:?}"))
        .to_owned()
}

/// The challenge in `Secure-Session-Challenge: "…";id="…"`, checked to name `session_id`.
pub fn refresh_challenge(headers: &HeaderMap, session_id: &str) -> String {
    let value = header(headers, "secure-session-challenge");
    let (challenge, id) = value
        .split_once(";id=")
        .unwrap_or_else(|| panic!("no challenge in {value:?}"));
    assert_eq!(id, format!("\"{session_id}\""));
    challenge.trim_matches('"').to_owned()
}

/// A registered browser, as far as the server can tell.
pub struct Registered {
    pub key: SigningKey,
    pub session_id: String,
    /// `name=value` of the bound credential.
    pub cookie: String,
    pub json: Value,
}

/// A browser that opens `portal_url`, loads the page and registers with `key`.
pub async fn register(base: &str, portal_url: &str, key: SigningKey) -> Registered {
    let http = http();
    let handoff = http.get(portal_url).send().await.unwrap();
    assert_eq!(handoff.status(), StatusCode::SEE_OTHER);
    // Not on the redirect: Chromium would register while following it.
    assert!(
        handoff
            .headers()
            .get("secure-session-registration")
            .is_none()
    );
    let token_cookie = cookie_pair(handoff.headers());
    let page = http
        .get(format!("{base}/portal"))
        .header(COOKIE, &token_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let challenge = registration_challenge(page.headers());
    let response = http
        .post(format!("{base}{ENDPOINT}"))
        .header(COOKIE, &token_cookie)
        .header(
            "secure-session-response",
            registration_proof(&key, &challenge),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = cookie_pair(response.headers());
    let json: Value = response.json().await.unwrap();
    Registered {
        key,
        session_id: json["session_identifier"].as_str().unwrap().to_owned(),
        cookie,
        json,
    }
}

/// `POST` to the endpoint with these extra headers.
pub async fn post(base: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = http().post(format!("{base}{ENDPOINT}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// The refresh, as Chromium does it: without a proof, then with one over the challenge.
pub async fn refresh(base: &str, registered: &Registered) -> reqwest::Response {
    let id = registered.session_id.as_str();
    let first = post(base, &[("sec-secure-session-id", id)]).await;
    assert_eq!(first.status(), StatusCode::FORBIDDEN);
    assert!(first.headers().get(SET_COOKIE).is_none());
    let challenge = refresh_challenge(first.headers(), id);
    let proof = refresh_proof(&registered.key, &challenge);
    post(
        base,
        &[
            ("sec-secure-session-id", id),
            ("secure-session-response", &proof),
        ],
    )
    .await
}

/// `GET path` with only this cookie.
pub async fn get_with_cookie(base: &str, path: &str, cookie: &str) -> reqwest::Response {
    http()
        .get(format!("{base}{path}"))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap()
}
