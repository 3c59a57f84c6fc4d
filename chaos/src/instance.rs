//! An instance of the fleet: a process of its own serving `GET /me` behind
//! `CustomerSessionLayer`, and admin endpoints for the harness, on the crate's public API
//! with every store and manager setting at its default (through Sentinel, revocations
//! wait for one replica).
//!
//! It prints `ready` once it listens, and exits when its standard input closes (the
//! harness is gone). With `CHAOS_DEBUG` set, each admin call that fails prints the
//! store's error (never a token) to standard error.

use std::time::Duration;

use axum::Router;
use axum::extract::{Json, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tower_customer_session::chrono::Utc;
use tower_customer_session::model::CustomerData;
use tower_customer_session::store::postgres::PostgresStore;
use tower_customer_session::store::{
    CustomerStore, FeedPolicy, RedisDurability, SessionAdmin, StoreError,
};
use tower_customer_session::uuid::Uuid;
use tower_customer_session::{
    CreateError, CreateSession, Customer, CustomerSessionLayer, RedisStore, SessionManager,
};

use crate::topology::{Protocol, SENTINEL_MASTER};

/// The secret every instance hashes tokens with (the harness computes hash prefixes with it).
pub const SECRET: &[u8] = b"chaos harness secret, 32 bytes!!";

/// How an instance is started.
pub struct Options {
    pub protocol: Protocol,
    pub url: String,
    pub port: u16,
    /// The weakened fleet: `FeedPolicy::ServeCached`.
    pub serve_cached: bool,
}

pub async fn run(options: Options) -> Result<(), String> {
    tokio::spawn(async {
        let mut stdin = tokio::io::stdin();
        let mut buffer = [0u8; 64];
        while let Ok(1..) = stdin.read(&mut buffer).await {}
        std::process::exit(0);
    });
    let policy = if options.serve_cached {
        FeedPolicy::ServeCached
    } else {
        FeedPolicy::BypassCache
    };
    let app = match options.protocol {
        Protocol::Redis => {
            let store = retry(|| RedisStore::builder(options.url.clone()).connect()).await;
            app(manager(store, policy)?)
        }
        Protocol::Sentinel => {
            // A revocation returns `Ok` only once the replica holds it, so that a failover
            // cannot undo it (the README's setting for Sentinel, 500 ms).
            let sentinels: Vec<String> = options.url.split(',').map(str::to_owned).collect();
            let store = retry(|| {
                RedisStore::sentinel(sentinels.clone(), SENTINEL_MASTER)
                    .durability(RedisDurability::replicas(1, Duration::from_millis(500)))
                    .connect()
            })
            .await;
            app(manager(store, policy)?)
        }
        Protocol::Cluster => {
            let nodes: Vec<String> = options.url.split(',').map(str::to_owned).collect();
            let store = retry(|| RedisStore::cluster(nodes.clone()).connect()).await;
            app(manager(store, policy)?)
        }
        Protocol::Postgres => {
            let store = retry(|| PostgresStore::builder().connect(&options.url)).await;
            app(manager(store, policy)?)
        }
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port))
        .await
        .map_err(|e| format!("bind 127.0.0.1:{}: {e}", options.port))?;
    println!("ready");
    axum::serve(listener, app).await.map_err(|e| e.to_string())
}

/// The store, once it answers (a restarted instance may find it down).
async fn retry<S, E: std::fmt::Display, F: Future<Output = Result<S, E>>>(
    connect: impl Fn() -> F,
) -> S {
    loop {
        match connect().await {
            Ok(store) => return store,
            Err(error) => {
                eprintln!("connecting to the store: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

fn manager<S: SessionAdmin>(store: S, policy: FeedPolicy) -> Result<SessionManager<S>, String> {
    SessionManager::builder(store)
        .secret(SECRET)
        .feed_policy(policy)
        .build()
        .map_err(|e| e.to_string())
}

fn app<S>(sessions: SessionManager<S>) -> Router
where
    S: SessionAdmin + CustomerStore + Clone + Send + Sync + 'static,
{
    let protected = Router::new()
        .route("/me", get(me))
        .layer(CustomerSessionLayer::new(sessions.clone()));
    let admin = Router::new()
        .route("/admin/customers", post(add_customer::<S>))
        .route("/admin/sessions", post(create::<S>))
        .route("/admin/revoke", post(revoke::<S>))
        .route("/admin/revoke_all", post(revoke_all::<S>))
        .route("/admin/delete_customer", post(delete_customer::<S>))
        .with_state(sessions);
    protected.merge(admin)
}

async fn me(customer: Customer) -> String {
    customer.id.to_string()
}

#[derive(Serialize, Deserialize)]
pub struct CustomerId {
    pub customer: Uuid,
}

#[derive(Serialize, Deserialize)]
pub struct Token {
    pub token: String,
}

#[derive(Serialize, Deserialize)]
pub struct Count {
    pub count: u64,
}

fn unavailable(error: impl std::fmt::Display) -> Response {
    if std::env::var_os("CHAOS_DEBUG").is_some() {
        eprintln!("admin call failed: {error}");
    }
    (StatusCode::SERVICE_UNAVAILABLE, error.to_string()).into_response()
}

async fn add_customer<S: CustomerStore>(State(sessions): State<SessionManager<S>>) -> Response {
    match sessions
        .upsert_customer(CustomerData::new(Utc::now()))
        .await
    {
        Ok(customer) => Json(CustomerId {
            customer: customer.id,
        })
        .into_response(),
        Err(error) => unavailable(error),
    }
}

async fn create<S: SessionAdmin>(
    State(sessions): State<SessionManager<S>>,
    Json(body): Json<CustomerId>,
) -> Response {
    match sessions
        .create(body.customer, CreateSession::default())
        .await
    {
        Ok(session) => Json(Token {
            token: session.token.expose_secret().to_owned(),
        })
        .into_response(),
        Err(CreateError::Store(error)) => unavailable(error),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

fn count(result: Result<u64, StoreError>) -> Response {
    match result {
        Ok(count) => Json(Count { count }).into_response(),
        Err(error) => unavailable(error),
    }
}

async fn revoke<S: SessionAdmin>(
    State(sessions): State<SessionManager<S>>,
    Json(body): Json<Token>,
) -> Response {
    count(sessions.revoke(&body.token).await.map(u64::from))
}

async fn revoke_all<S: SessionAdmin>(
    State(sessions): State<SessionManager<S>>,
    Json(body): Json<CustomerId>,
) -> Response {
    count(sessions.revoke_all(body.customer).await)
}

async fn delete_customer<S: CustomerStore>(
    State(sessions): State<SessionManager<S>>,
    Json(body): Json<CustomerId>,
) -> Response {
    count(sessions.delete_customer(body.customer).await.map(u64::from))
}
