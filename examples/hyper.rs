//! The layer around a plain hyper service, without axum.
//!
//! ```text
//! cargo run --example hyper
//! ```
//!
//! It seeds one customer in a `MemoryStore`, issues a session, prints its token and a `curl`
//! command, and serves `GET /` on 127.0.0.1 (`PORT`, default 3001). The handler reads the
//! `Customer` the layer put into the request extensions.

use std::convert::Infallible;
use std::error::Error;
use std::net::Ipv4Addr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::Layer;
use tower_customer_session::model::CustomerData;
use tower_customer_session::{
    CreateSession, Customer, CustomerSessionLayer, MemoryStore, SessionInfo, SessionManager,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let store = MemoryStore::new();
    let mut jane = CustomerData::new(chrono::Utc::now());
    jane.name = Some("Jane Doe".to_owned());
    jane.email = Some("jane@example.com".to_owned());
    let jane = store.insert_customer(jane);

    // The memory store lives only as long as this process, so a random secret is fine.
    let sessions = SessionManager::builder(store).build()?;
    let session = sessions.create(jane.id, CreateSession::default()).await?;

    // Only requests with a valid customer session reach this function.
    let handler = tower::service_fn(|request: Request<Incoming>| async move {
        let customer = request
            .extensions()
            .get::<Customer>()
            .expect("set by the layer");
        let info = request
            .extensions()
            .get::<SessionInfo>()
            .expect("set by the layer");
        let body = format!(
            "hello {} ({}), your session ends at {}\n",
            customer.name.as_deref().unwrap_or("customer"),
            customer.id,
            info.expires_at
        );
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
    });
    let service = CustomerSessionLayer::new(sessions).layer(handler);

    let port = std::env::var("PORT").map_or(Ok(3001), |p| p.parse::<u16>())?;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    let addr = listener.local_addr()?;
    println!("LISTEN={addr}");
    println!("TOKEN={}", session.token.expose_secret());
    println!(
        "curl -i http://{addr}/ -H 'Authorization: Bearer {}'",
        session.token.expose_secret()
    );

    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            // A failed connection only ends that connection.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
