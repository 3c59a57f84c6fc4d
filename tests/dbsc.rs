//! Device Bound Session Credentials at the HTTP level, without a browser: registration,
//! the bound credential, refresh, and every refusal, with this test's own ES256 keys over a
//! real socket. `tests/dbsc_browser.rs` runs the protocol in headless Chromium.

mod dbsc_support;

use chrono::{TimeDelta, Utc};
use dbsc_support::*;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CACHE_CONTROL, COOKIE, SET_COOKIE};
use serde_json::json;
use tower_customer_session::model::CustomerData;
use tower_customer_session::{
    CreateSession, CustomerSession, ManualClock, MemoryStore, SessionManager,
};

const SECRET: &[u8] = b"dbsc integration secret, 32 byte";

struct App {
    base: String,
    sessions: SessionManager<MemoryStore>,
    store: MemoryStore,
    clock: ManualClock,
}

async fn app() -> App {
    let clock = ManualClock::new(Utc::now());
    let store = MemoryStore::with_clock(clock.clone());
    let sessions = SessionManager::builder(store.clone())
        .secret(SECRET)
        .clock(clock.clone())
        .build()
        .unwrap();
    let base = serve(router(sessions.clone())).await;
    App {
        base,
        sessions,
        store,
        clock,
    }
}

impl App {
    async fn session(&self) -> CustomerSession {
        let customer = self
            .store
            .insert_customer(CustomerData::new(self.clock.now_utc()));
        self.sessions
            .create(customer.id, CreateSession::default())
            .await
            .unwrap()
    }

    fn link(&self, session: &CustomerSession) -> String {
        format!(
            "{}/portal?customer_session_token={}",
            self.base,
            session.token.expose_secret()
        )
    }

    async fn registered(&self) -> (CustomerSession, Registered) {
        let session = self.session().await;
        let registered = register(&self.base, &self.link(&session), new_key()).await;
        (session, registered)
    }

    async fn me(&self, cookie: &str) -> StatusCode {
        get_with_cookie(&self.base, "/me", cookie).await.status()
    }

    async fn bearer_me(&self, token: &str) -> StatusCode {
        http()
            .get(format!("{}/me", self.base))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .send()
            .await
            .unwrap()
            .status()
    }
}

trait Now {
    fn now_utc(&self) -> chrono::DateTime<Utc>;
}

impl Now for ManualClock {
    fn now_utc(&self) -> chrono::DateTime<Utc> {
        tower_customer_session::Clock::now(self)
    }
}

fn max_age(headers: &reqwest::header::HeaderMap) -> i64 {
    header(headers, "set-cookie")
        .split("; ")
        .find_map(|attr| attr.strip_prefix("Max-Age="))
        .expect("Max-Age")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn registration_binds_the_cookie_and_never_returns_the_token() {
    let app = app().await;
    let session = app.session().await;
    let token = session.token.expose_secret().to_owned();
    let key = new_key();
    let registered = register(&app.base, &app.link(&session), key).await;

    // The cookie now holds a bound credential: not the token, nothing like it.
    let value = registered
        .cookie
        .strip_prefix(&format!("{COOKIE_NAME}="))
        .unwrap();
    assert!(value.starts_with("dbsc1."), "{value}");
    assert!(!value.contains(&token) && !value.contains("polar_cst_"));
    assert!(!registered.json.to_string().contains(&token));
    assert!(!registered.session_id.contains("polar_cst_"));
    assert_eq!(
        registered.json,
        json!({
            "session_identifier": registered.session_id,
            "refresh_url": ENDPOINT,
            "scope": {"origin": ORIGIN, "include_site": false, "scope_specification": []},
            "credentials": [{
                "type": "cookie",
                "name": COOKIE_NAME,
                "attributes": "Path=/; HttpOnly; Secure; SameSite=Lax",
            }],
        })
    );

    // It authenticates wherever the cookie is read, as the session it stands for.
    let response = get_with_cookie(&app.base, "/me", &registered.cookie).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(response.headers(), CACHE_CONTROL.as_str()),
        "private, no-store"
    );
    let body = response.text().await.unwrap();
    assert!(body.ends_with(&session.id.to_string()), "{body}");
    // The page no longer offers registration (the browser holds a bound credential).
    let page = get_with_cookie(&app.base, "/portal", &registered.cookie).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers().get("secure-session-registration").is_none());
    assert!(page.headers().get(SET_COOKIE).is_none());

    // A refresh with the registered key: a new credential, never the token.
    let response = refresh(&app.base, &registered).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(response.headers(), CACHE_CONTROL.as_str()),
        "no-store"
    );
    let cookie = cookie_pair(response.headers());
    assert_ne!(cookie, registered.cookie);
    assert!(!cookie.contains(&token));
    assert_eq!(max_age(response.headers()), 60);
    let body = response.text().await.unwrap();
    assert!(!body.contains(&token));
    // The same DBSC session: a new identifier would end it in the browser.
    let refreshed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(refreshed, registered.json);
    assert_eq!(app.me(&cookie).await, StatusCode::OK);
}

#[tokio::test]
async fn the_bound_credential_never_outlives_its_session() {
    let app = app().await;
    let (session, registered) = app.registered().await;
    // 30 s before the session's end, a refresh gives 30 s, not the configured 60.
    let end = session.expires_at - TimeDelta::seconds(30);
    app.clock.advance(end - app.clock.now_utc());
    let response = refresh(&app.base, &registered).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(max_age(response.headers()), 30);
    let cookie = cookie_pair(response.headers());
    app.clock.advance(TimeDelta::seconds(31));
    assert_eq!(app.me(&cookie).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_copied_credential_works_until_it_expires_and_cannot_be_renewed_without_the_key() {
    let app = app().await;
    let (_session, registered) = app.registered().await;
    let stolen = registered.cookie.clone();

    // Elsewhere (a plain client with the copied cookie): it works while it lives.
    assert_eq!(app.me(&stolen).await, StatusCode::OK);
    app.clock.advance(TimeDelta::seconds(59));
    assert_eq!(app.me(&stolen).await, StatusCode::OK);
    app.clock.advance(TimeDelta::seconds(1));
    let response = get_with_cookie(&app.base, "/me", &stolen).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // And the browser is told to drop it.
    assert!(header(response.headers(), "set-cookie").ends_with("Max-Age=0"));

    // The thief knows the session id too (say, from a HAR file), but not the key.
    let id = registered.session_id.as_str();
    let asked = post(&app.base, &[("sec-secure-session-id", id)]).await;
    assert_eq!(asked.status(), StatusCode::FORBIDDEN);
    assert!(asked.headers().get(SET_COOKIE).is_none());
    let challenge = refresh_challenge(asked.headers(), id);
    let thief = new_key();
    for proof in [
        refresh_proof(&thief, &challenge),
        // Offering the thief's own key in the header changes nothing.
        registration_proof(&thief, &challenge),
    ] {
        let response = post(
            &app.base,
            &[
                ("sec-secure-session-id", id),
                ("secure-session-response", &proof),
            ],
        )
        .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(response.headers().get(SET_COOKIE).is_none());
        assert!(response.text().await.unwrap().is_empty());
    }
    // The owner of the key still can (the failed attempts did not use the challenge up).
    let proof = refresh_proof(&registered.key, &challenge);
    let response = post(
        &app.base,
        &[
            ("sec-secure-session-id", id),
            ("secure-session-response", &proof),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        app.me(&cookie_pair(response.headers())).await,
        StatusCode::OK
    );
}

/// A refresh with `proof`; it must be refused without a credential.
async fn assert_refresh_refused(
    app: &App,
    id: &str,
    proof: &str,
    status: StatusCode,
    what: &str,
) -> reqwest::Response {
    let response = post(
        &app.base,
        &[
            ("sec-secure-session-id", id),
            ("secure-session-response", proof),
        ],
    )
    .await;
    assert_eq!(response.status(), status, "{what}");
    assert!(response.headers().get(SET_COOKIE).is_none(), "{what}");
    response
}

async fn challenge_for(app: &App, id: &str) -> String {
    let asked = post(&app.base, &[("sec-secure-session-id", id)]).await;
    refresh_challenge(asked.headers(), id)
}

#[tokio::test]
async fn replayed_stale_and_foreign_challenges_get_a_new_challenge_not_a_credential() {
    let app = app().await;
    let (_, registered) = app.registered().await;
    let (_, other) = app.registered().await;
    let id = registered.session_id.as_str();
    let key = &registered.key;

    // Replayed: a challenge answers once.
    let challenge = challenge_for(&app, id).await;
    let proof = refresh_proof(key, &challenge);
    let first = post(
        &app.base,
        &[
            ("sec-secure-session-id", id),
            ("secure-session-response", &proof),
        ],
    )
    .await;
    assert_eq!(first.status(), StatusCode::OK);
    let response =
        assert_refresh_refused(&app, id, &proof, StatusCode::FORBIDDEN, "replayed").await;
    let fresh = refresh_challenge(response.headers(), id);
    assert_ne!(fresh, challenge);

    // Stale: older than 60 s.
    let challenge = challenge_for(&app, id).await;
    app.clock.advance(TimeDelta::seconds(61));
    let proof = refresh_proof(key, &challenge);
    let response = assert_refresh_refused(&app, id, &proof, StatusCode::FORBIDDEN, "stale").await;
    refresh_challenge(response.headers(), id);

    // Issued for another DBSC session.
    let theirs = challenge_for(&app, &other.session_id).await;
    let proof = refresh_proof(key, &theirs);
    assert_refresh_refused(&app, id, &proof, StatusCode::FORBIDDEN, "other session").await;

    // A registration challenge is no refresh challenge.
    let session = app.session().await;
    let page = {
        let handoff = http().get(app.link(&session)).send().await.unwrap();
        get_with_cookie(&app.base, "/portal", &cookie_pair(handoff.headers())).await
    };
    let registration = registration_challenge(page.headers());
    let proof = refresh_proof(key, &registration);
    assert_refresh_refused(&app, id, &proof, StatusCode::FORBIDDEN, "registration").await;

    // Made up.
    let proof = refresh_proof(key, "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYn");
    assert_refresh_refused(&app, id, &proof, StatusCode::FORBIDDEN, "made up").await;
}

#[tokio::test]
async fn wrong_alg_typ_and_malformed_proofs_and_headers_are_refused() {
    let app = app().await;
    let (_, registered) = app.registered().await;
    let id = registered.session_id.as_str();
    let key = &registered.key;
    let challenge = challenge_for(&app, id).await;
    let claims = json!({"jti": challenge});

    let cases = [
        (
            "RS256",
            sign(key, &json!({"alg": "RS256", "typ": "dbsc+jwt"}), &claims),
        ),
        (
            "none",
            sign(key, &json!({"alg": "none", "typ": "dbsc+jwt"}), &claims),
        ),
        (
            "ES384",
            sign(key, &json!({"alg": "ES384", "typ": "dbsc+jwt"}), &claims),
        ),
        (
            "typ JWT",
            sign(key, &json!({"alg": "ES256", "typ": "JWT"}), &claims),
        ),
        ("no typ", sign(key, &json!({"alg": "ES256"}), &claims)),
        (
            "no jti",
            sign(key, &json!({"alg": "ES256", "typ": "dbsc+jwt"}), &json!({})),
        ),
        (
            "jti a number",
            sign(
                key,
                &json!({"alg": "ES256", "typ": "dbsc+jwt"}),
                &json!({"jti": 1}),
            ),
        ),
        ("two parts", "eyJhbGciOiJFUzI1NiJ9.e30".to_owned()),
        ("not base64", "@@@.@@@.@@@".to_owned()),
        ("empty", String::new()),
        ("huge", "a".repeat(5000)),
        ("short signature", {
            let good = refresh_proof(key, &challenge);
            let (input, _) = good.rsplit_once('.').unwrap();
            format!("{input}.AAAA")
        }),
    ];
    for (what, proof) in cases {
        let response = post(
            &app.base,
            &[
                ("sec-secure-session-id", id),
                ("secure-session-response", &proof),
            ],
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{what}");
        assert!(response.headers().get(SET_COOKIE).is_none(), "{what}");
    }

    // Headers: two session ids, two proofs, an id we never issued, a huge id.
    let proof = refresh_proof(key, &challenge);
    let mut two_ids = http().post(format!("{}{ENDPOINT}", app.base));
    two_ids = two_ids
        .header("sec-secure-session-id", id)
        .header("sec-secure-session-id", &other_id(&app).await);
    assert_eq!(
        two_ids.send().await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    let two_proofs = http()
        .post(format!("{}{ENDPOINT}", app.base))
        .header("sec-secure-session-id", id)
        .header("secure-session-response", &proof)
        .header("secure-session-response", &proof)
        .send()
        .await
        .unwrap();
    assert_eq!(two_proofs.status(), StatusCode::BAD_REQUEST);
    for bad_id in [
        "",
        "nope",
        &"A".repeat(100),
        &"A".repeat(600),
        &id[..id.len() - 1],
    ] {
        let response = post(&app.base, &[("sec-secure-session-id", bad_id)]).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad_id}");
        assert!(response.headers().get(SET_COOKIE).is_none());
    }
    // The endpoint takes only POST.
    let get = http()
        .get(format!("{}{ENDPOINT}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);

    // After all that, the right proof over the (unused) challenge still works.
    let response = post(
        &app.base,
        &[
            ("sec-secure-session-id", id),
            ("secure-session-response", &proof),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn other_id(app: &App) -> String {
    app.registered().await.1.session_id
}

#[tokio::test]
async fn registration_refusals() {
    let app = app().await;
    let session = app.session().await;
    let handoff = http().get(app.link(&session)).send().await.unwrap();
    let token_cookie = cookie_pair(handoff.headers());
    let page = get_with_cookie(&app.base, "/portal", &token_cookie).await;
    let challenge = registration_challenge(page.headers());
    let key = new_key();
    let register_with = |cookie: Option<String>, proof: String| {
        let base = app.base.clone();
        async move {
            let mut request = http()
                .post(format!("{base}{ENDPOINT}"))
                .header("secure-session-response", proof);
            if let Some(cookie) = cookie {
                request = request.header(COOKIE, cookie);
            }
            request.send().await.unwrap()
        }
    };

    // No key in the header, a key that did not sign, wrong alg or typ, no proof at all.
    let cases = [
        (
            StatusCode::BAD_REQUEST,
            "no jwk",
            refresh_proof(&key, &challenge),
        ),
        (
            StatusCode::FORBIDDEN,
            "jwk of another key",
            sign(
                &new_key(),
                &json!({"alg": "ES256", "typ": "dbsc+jwt", "jwk": jwk(&key)}),
                &json!({"jti": challenge}),
            ),
        ),
        (
            StatusCode::BAD_REQUEST,
            "RS256",
            sign(
                &key,
                &json!({"alg": "RS256", "typ": "dbsc+jwt", "jwk": jwk(&key)}),
                &json!({"jti": challenge}),
            ),
        ),
        (
            StatusCode::BAD_REQUEST,
            "typ",
            sign(
                &key,
                &json!({"alg": "ES256", "typ": "jwt", "jwk": jwk(&key)}),
                &json!({"jti": challenge}),
            ),
        ),
        (
            StatusCode::BAD_REQUEST,
            "P-384 jwk",
            sign(
                &key,
                &json!({"alg": "ES256", "typ": "dbsc+jwt", "jwk": {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}}),
                &json!({"jti": challenge}),
            ),
        ),
        (
            StatusCode::FORBIDDEN,
            "made-up challenge",
            registration_proof(&key, "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYn"),
        ),
    ];
    for (status, what, proof) in cases {
        let response = register_with(Some(token_cookie.clone()), proof).await;
        assert_eq!(response.status(), status, "{what}");
        assert!(response.headers().get(SET_COOKIE).is_none(), "{what}");
    }
    let no_proof = http()
        .post(format!("{}{ENDPOINT}", app.base))
        .header(COOKIE, &token_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(no_proof.status(), StatusCode::BAD_REQUEST);

    // Without the session cookie: nothing to bind.
    let response = register_with(None, registration_proof(&key, &challenge)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // A challenge given for another session's page does not register this one.
    let other = app.session().await;
    let other_cookie = {
        let handoff = http().get(app.link(&other)).send().await.unwrap();
        cookie_pair(handoff.headers())
    };
    let response = register_with(Some(other_cookie), registration_proof(&key, &challenge)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // The right one works once; the replay is refused.
    let proof = registration_proof(&key, &challenge);
    let response = register_with(Some(token_cookie.clone()), proof.clone()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let bound = cookie_pair(response.headers());
    let response = register_with(Some(token_cookie.clone()), proof).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get(SET_COOKIE).is_none());

    // A bound credential cannot register another key (a thief's copy would become
    // renewable): it is not the session token.
    let page = get_with_cookie(&app.base, "/portal", &token_cookie).await;
    let challenge = registration_challenge(page.headers());
    let response = register_with(Some(bound), registration_proof(&new_key(), &challenge)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get(SET_COOKIE).is_none());

    // A stale registration challenge.
    app.clock.advance(TimeDelta::seconds(61));
    let response = register_with(Some(token_cookie), registration_proof(&key, &challenge)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn revocation_logout_and_customer_deletion_refuse_the_bound_credential_at_once() {
    let app = app().await;

    // revoke
    let (session, registered) = app.registered().await;
    assert_eq!(app.me(&registered.cookie).await, StatusCode::OK);
    assert!(
        app.sessions
            .revoke(session.token.expose_secret())
            .await
            .unwrap()
    );
    let response = get_with_cookie(&app.base, "/me", &registered.cookie).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(header(response.headers(), "set-cookie").ends_with("Max-Age=0"));
    // The browser's refresh ends its DBSC session, proof or not.
    let response = post(
        &app.base,
        &[("sec-secure-session-id", &registered.session_id)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header(response.headers(), "set-cookie").ends_with("Max-Age=0"));
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap(),
        json!({"continue": false})
    );

    // revoke_all
    let (session, registered) = app.registered().await;
    assert_eq!(app.me(&registered.cookie).await, StatusCode::OK);
    app.sessions.revoke_all(session.customer_id).await.unwrap();
    assert_eq!(app.me(&registered.cookie).await, StatusCode::UNAUTHORIZED);

    // customer deletion
    let (session, registered) = app.registered().await;
    assert_eq!(app.me(&registered.cookie).await, StatusCode::OK);
    app.sessions
        .delete_customer(session.customer_id)
        .await
        .unwrap();
    assert_eq!(app.me(&registered.cookie).await, StatusCode::UNAUTHORIZED);
    let response = refresh_or_end(&app, &registered).await;
    assert_eq!(response, json!({"continue": false}));

    // sign-out with the bound credential: the session itself is revoked.
    let (session, registered) = app.registered().await;
    let response = http()
        .post(format!("{}/portal/logout", app.base))
        .header(COOKIE, &registered.cookie)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(header(response.headers(), "set-cookie").ends_with("Max-Age=0"));
    assert_eq!(app.me(&registered.cookie).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.bearer_me(session.token.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        refresh_or_end(&app, &registered).await,
        json!({"continue": false})
    );
}

/// The first refresh step's JSON (the session has ended, so no challenge comes).
async fn refresh_or_end(app: &App, registered: &Registered) -> serde_json::Value {
    let response = post(
        &app.base,
        &[("sec-secure-session-id", &registered.session_id)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_browser_that_does_not_register_keeps_the_token_cookie() {
    let app = app().await;
    let session = app.session().await;
    let handoff = http().get(app.link(&session)).send().await.unwrap();
    assert_eq!(handoff.status(), StatusCode::SEE_OTHER);
    let set_cookie = header(handoff.headers(), "set-cookie").to_owned();
    assert!(
        set_cookie.starts_with(&format!(
            "{COOKIE_NAME}={}; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=",
            session.token.expose_secret()
        )),
        "{set_cookie}"
    );
    let cookie = cookie_pair(handoff.headers());
    // It is offered registration on each page, ignores it, and its cookie keeps working
    // until the session ends.
    for _ in 0..2 {
        let page = get_with_cookie(&app.base, "/portal", &cookie).await;
        assert_eq!(page.status(), StatusCode::OK);
        registration_challenge(page.headers());
    }
    app.clock.advance(TimeDelta::minutes(59));
    assert_eq!(app.me(&cookie).await, StatusCode::OK);
    // No offer on a refused page or to a Bearer client.
    let page = get_with_cookie(
        &app.base,
        "/portal",
        &format!("{COOKIE_NAME}=polar_cst_nope"),
    )
    .await;
    assert_eq!(page.status(), StatusCode::UNAUTHORIZED);
    assert!(page.headers().get("secure-session-registration").is_none());
    let page = http()
        .get(format!("{}/portal", app.base))
        .header(
            AUTHORIZATION,
            format!("Bearer {}", session.token.expose_secret()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers().get("secure-session-registration").is_none());
}

#[tokio::test]
async fn a_forged_or_altered_credential_is_refused() {
    let app = app().await;
    let (_, registered) = app.registered().await;
    let value = registered
        .cookie
        .strip_prefix(&format!("{COOKIE_NAME}="))
        .unwrap();
    let mut altered = value.as_bytes().to_vec();
    let at = altered.len() / 2;
    altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    // Sealed under another secret: what a server of another application would issue.
    let other = {
        let store = MemoryStore::new();
        let sessions = SessionManager::builder(store.clone())
            .secret(b"another application's secret, 32")
            .build()
            .unwrap();
        let base = serve(router(sessions.clone())).await;
        let customer = store.insert_customer(CustomerData::new(Utc::now()));
        let session = sessions
            .create(customer.id, CreateSession::default())
            .await
            .unwrap();
        let link = format!(
            "{base}/portal?customer_session_token={}",
            session.token.expose_secret()
        );
        register(&base, &link, new_key()).await.cookie
    };
    let other = other
        .strip_prefix(&format!("{COOKIE_NAME}="))
        .unwrap()
        .to_owned();
    for value in [altered, other, "dbsc1.".to_owned(), "dbsc1.AAAA".to_owned()] {
        let response = get_with_cookie(&app.base, "/me", &format!("{COOKIE_NAME}={value}")).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{value}");
        assert!(header(response.headers(), "set-cookie").ends_with("Max-Age=0"));
    }
}

#[tokio::test]
async fn sign_out_clears_site_data_only_when_asked() {
    for clear in [false, true] {
        let clock = ManualClock::new(Utc::now());
        let store = MemoryStore::with_clock(clock.clone());
        let sessions = SessionManager::builder(store.clone())
            .secret(SECRET)
            .clock(clock.clone())
            .build()
            .unwrap();
        let settings = tower_customer_session::portal::dbsc::DeviceBound::new(ORIGIN, ENDPOINT)
            .unwrap()
            .clear_site_data(clear);
        let base = serve(router_with(sessions.clone(), settings)).await;
        let customer = store.insert_customer(CustomerData::new(Utc::now()));
        let session = sessions
            .create(customer.id, CreateSession::default())
            .await
            .unwrap();
        let link = format!(
            "{base}/portal?customer_session_token={}",
            session.token.expose_secret()
        );
        let registered = register(&base, &link, new_key()).await;
        let response = http()
            .post(format!("{base}/portal/logout"))
            .header(COOKIE, &registered.cookie)
            .header("sec-fetch-site", "same-origin")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let expected = if clear { "\"cookies\"" } else { "" };
        assert_eq!(header(response.headers(), "clear-site-data"), expected);
    }
}
