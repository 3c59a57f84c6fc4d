//! Three axum servers with the same `GET /me` handler, for `benches/wrk.sh`:
//!
//! * `bare`: no authentication;
//! * `layer`: this crate's layer, token in `Authorization: Bearer` (cache hits);
//! * `login`: tower-sessions (`MemoryStore`) + axum-login, session cookie.
//!
//! `http_server --serve MODE` creates one session, prints
//! `READY <addr> <header name>: <header value>` and serves until killed. Without `--serve`
//! (as under `cargo bench`) it starts all three, checks that each answers 200 to its
//! credential, and exits.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use axum_login::{AuthManagerLayerBuilder, AuthSession};
use http::StatusCode;
use http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use tower::ServiceExt;
use tower_customer_session::{CreateSession, Customer, CustomerSessionLayer, MemoryStore};
use tower_sessions::{MemoryStore as TsMemory, SessionManagerLayer};

use common::auth_backend::{Backend, User};

/// The one handler all three servers run.
async fn me() -> &'static str {
    "ok"
}

/// A router serving `/me`, and the header a client must send.
async fn app(mode: &str) -> (Router, (&'static str, String)) {
    match mode {
        "bare" => (
            Router::new().route("/me", get(me)),
            ("X-Unused", "none".to_owned()),
        ),
        "layer" => {
            let store = MemoryStore::new();
            let customer = store.insert_customer(common::demo_customer());
            let sessions = common::builder(store).build().unwrap();
            let session = sessions
                .create(customer.id, CreateSession::default())
                .await
                .expect("session");
            let router = Router::new()
                // The customer is extracted, as a portal handler would.
                .route("/me", get(|_: Customer| me()))
                .route_layer(CustomerSessionLayer::new(sessions));
            let header = format!("Bearer {}", session.token.expose_secret());
            (router, (AUTHORIZATION.as_str(), header))
        }
        "login" => {
            let user = User {
                customer: Customer::new(common::demo_customer()),
                auth_hash: [7; 32],
            };
            let backend = Backend {
                users: Arc::new(HashMap::from([(user.customer.id, user.clone())])),
            };
            let sessions = SessionManagerLayer::new(TsMemory::default()).with_secure(false);
            let auth = AuthManagerLayerBuilder::new(backend, sessions).build();
            let router = Router::new()
                .route(
                    "/me",
                    get(|auth: AuthSession<Backend>| async move {
                        match auth.user {
                            Some(_) => Ok(me().await),
                            None => Err(StatusCode::UNAUTHORIZED),
                        }
                    }),
                )
                .route(
                    "/login",
                    get(move |mut auth: AuthSession<Backend>| async move {
                        auth.login(&user)
                            .await
                            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
                    }),
                )
                .layer(auth);
            let response = router
                .clone()
                .oneshot(
                    http::Request::get("/login")
                        .body(axum::body::Body::empty())
                        .expect("request"),
                )
                .await
                .expect("infallible");
            let set_cookie = response.headers()[SET_COOKIE].to_str().expect("ASCII");
            let cookie = set_cookie.split(';').next().expect("pair").to_owned();
            (router, (COOKIE.as_str(), cookie))
        }
        other => panic!("unknown mode {other:?}: bare, layer or login"),
    }
}

async fn bind(mode: &str) -> (SocketAddr, (&'static str, String)) {
    let (router, header) = app(mode).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    (addr, header)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    if let Some(at) = args.iter().position(|a| a == "--serve") {
        let mode = args.get(at + 1).expect("--serve MODE");
        let (addr, (name, value)) = bind(mode).await;
        println!("READY {addr} {name}: {value}");
        std::future::pending::<()>().await;
    }

    // Smoke check: each server answers its credential with 200 and refuses none.
    let client = reqwest::Client::new();
    for mode in ["bare", "layer", "login"] {
        let (addr, (name, value)) = bind(mode).await;
        let url = format!("http://{addr}/me");
        let ok = client
            .get(&url)
            .header(name, &value)
            .send()
            .await
            .expect("request");
        assert_eq!(ok.status(), reqwest::StatusCode::OK, "{mode}");
        if mode != "bare" {
            let refused = client.get(&url).send().await.expect("request");
            assert_eq!(
                refused.status(),
                reqwest::StatusCode::UNAUTHORIZED,
                "{mode}"
            );
        }
        println!("{mode}: http://{addr}/me answers 200");
    }
    println!("throughput and latency: benches/wrk.sh");
}
