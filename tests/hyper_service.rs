//! The layer around a plain `tower::service_fn`, served by hyper 1 on a real socket: no axum
//! anywhere on the server side.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use common::{Harness, unknown_token};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceExt};
use tower_customer_session::{Customer, CustomerSessionLayer, SessionInfo};

/// Serve `service` over HTTP/1.1 on an ephemeral loopback port until the test ends.
async fn serve<S, B>(service: S) -> SocketAddr
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// What the handler answers: the authenticated customer's email, or `anonymous`.
fn describe<B>(request: &Request<B>) -> String {
    match (
        request.extensions().get::<Customer>(),
        request.extensions().get::<SessionInfo>(),
    ) {
        (Some(customer), Some(info)) => format!(
            "{} {:?}",
            customer.email.as_deref().unwrap_or_default(),
            info.source
        ),
        _ => "anonymous".to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hyper_server_authenticates_over_a_real_socket() {
    let h = Harness::new();
    let (token, _) = h.issue(&h.customer("Jane")).await;
    let handler = tower::service_fn(|request: Request<Incoming>| async move {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(describe(&request)))))
    });
    let addr = serve(CustomerSessionLayer::new(h.sessions.clone()).layer(handler)).await;
    let url = format!("http://{addr}/me");
    let client = reqwest::Client::new();

    for _ in 0..2 {
        let response = client.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text().await.unwrap(), "jane@example.com Header");
    }
    assert_eq!(h.store.loads(), 1, "the second request was a cache hit");

    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"polar\""
    );
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"error":"Unauthorized","detail":"Unauthorized"}"#
    );

    let response = client
        .get(&url)
        .bearer_auth(unknown_token().expose_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
}

/// An inner service that is not ready until `poll_ready` has been called (and has returned
/// `Pending` once); a call without readiness answers 500 and is counted.
struct NeedsPollReady {
    polled: bool,
    ready: bool,
    violations: Arc<AtomicUsize>,
}

impl NeedsPollReady {
    fn new(violations: Arc<AtomicUsize>) -> Self {
        Self {
            polled: false,
            ready: false,
            violations,
        }
    }
}

impl Clone for NeedsPollReady {
    // A clone starts unready, as a clone of a concurrency-limited service would.
    fn clone(&self) -> Self {
        Self::new(self.violations.clone())
    }
}

impl<B> Service<Request<B>> for NeedsPollReady {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if !self.polled {
            self.polled = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.ready = true;
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let was_ready = std::mem::replace(&mut self.ready, false);
        self.polled = false;
        let response = if was_ready {
            Response::new(Full::new(Bytes::from(describe(&request))))
        } else {
            self.violations.fetch_add(1, Ordering::SeqCst);
            let mut response = Response::new(Full::new(Bytes::from_static(b"called before ready")));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        };
        std::future::ready(Ok(response))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_ready_reaches_the_inner_service_over_hyper() {
    let h = Harness::new();
    let (token, _) = h.issue(&h.customer("Jane")).await;
    let violations = Arc::new(AtomicUsize::new(0));
    let inner = NeedsPollReady::new(violations.clone());
    let addr = serve(
        CustomerSessionLayer::new(h.sessions.clone())
            .optional()
            .layer(inner),
    )
    .await;
    let url = format!("http://{addr}/me");
    let client = reqwest::Client::new();

    // Miss, hit, then an anonymous pass-through: three ways the inner service is called.
    for expected in ["jane@example.com Header", "jane@example.com Header"] {
        let response = client.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text().await.unwrap(), expected);
    }
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "anonymous");
    assert_eq!(h.store.loads(), 1);
    assert_eq!(violations.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn one_service_instance_calls_only_the_inner_instance_it_polled() {
    // Drive a single service value the way a connection does: ready, call, ready, call…
    // with the miss futures still pending, so the layer must hand each one the polled
    // inner service and keep polling the one it left behind.
    let h = Harness::new();
    let (token, _) = h.issue(&h.customer("Jane")).await;
    let violations = Arc::new(AtomicUsize::new(0));
    let mut service = CustomerSessionLayer::new(h.sessions.clone())
        .layer(NeedsPollReady::new(violations.clone()));
    let request = || common::bearer(&token);

    let first = ServiceExt::<Request<Body>>::ready(&mut service)
        .await
        .unwrap()
        .call(request());
    let second = ServiceExt::<Request<Body>>::ready(&mut service)
        .await
        .unwrap()
        .call(request());
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.unwrap().status(), StatusCode::OK);
    assert_eq!(second.unwrap().status(), StatusCode::OK);

    let hit = ServiceExt::<Request<Body>>::ready(&mut service)
        .await
        .unwrap()
        .call(request())
        .await
        .unwrap();
    assert_eq!(hit.status(), StatusCode::OK);
    assert_eq!(h.store.loads(), 1);
    assert_eq!(violations.load(Ordering::SeqCst), 0);
}
