//! `PolarWebhooks` over a real socket: the Standard Webhooks published test vector,
//! deliveries signed by independent implementations (Python's `hmac`, and the
//! `standardwebhooks` package Polar's Python SDK uses, keyed as that SDK keys it), and every
//! refusal: stale timestamps, bad signatures, missing or malformed headers. Then what each
//! event does: customer and member events drop the customer's cached sessions (a member
//! event's customer read from `data.customer_id`), any other type is acknowledged whatever
//! its `data`, and a handled event without its ids is refused. A change of secret (either
//! accepted, a third refused) and replayed deliveries (acknowledged, applied once).

#![cfg(feature = "polar-api")]

// Only its load counter is used here.
#[allow(dead_code)]
#[path = "common/instrumented.rs"]
mod instrumented;

use std::process::Command;

use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use http::HeaderMap;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower_customer_session::model::{CustomerData, Member, MemberRole};
use tower_customer_session::webhooks::{PolarWebhooks, SignatureError, WebhookSecret};
use tower_customer_session::{
    CreateSession, CredentialSource, Customer, ManualClock, MemoryStore, SessionManager,
};
use uuid::Uuid;

use instrumented::Instrumented;

/// A memory store that counts its loads.
type Store = Instrumented<MemoryStore>;

/// The Standard Webhooks specification's published vector (its libraries' shared test case).
const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const VECTOR_TIMESTAMP: i64 = 1614265330;
const VECTOR_BODY: &str = r#"{"test": 2432232314}"#;
const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

/// A secret as Polar's dashboard shows one.
const POLAR_SECRET: &str = "polar_whs_w3bh00kTestSecretFromTheDashboard0123";

/// A receiver on a free port, over a memory store with one customer whose session is cached,
/// on a manual clock.
struct Receiver {
    url: String,
    sessions: SessionManager<Store>,
    store: Store,
    clock: ManualClock,
    customer: Customer,
    token: String,
    http: reqwest::Client,
}

async fn receiver(secret: WebhookSecret, now: DateTime<Utc>) -> Receiver {
    receiver_with(secret, now, |webhooks| webhooks).await
}

/// [`receiver`] with more settings of its `PolarWebhooks`.
async fn receiver_with(
    secret: WebhookSecret,
    now: DateTime<Utc>,
    configure: impl FnOnce(PolarWebhooks<Store>) -> PolarWebhooks<Store>,
) -> Receiver {
    let clock = ManualClock::new(now);
    let store = Instrumented::new(MemoryStore::with_clock(clock.clone()));
    let mut data = CustomerData::new(now);
    data.name = Some("Before".to_owned());
    let customer = store.memory().insert_customer(data);
    let sessions = SessionManager::builder(store.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    let session = sessions
        .create(customer.id, CreateSession::default())
        .await
        .unwrap();
    let token = session.token.expose_secret().to_owned();
    let router = Router::new().route_service(
        "/webhooks/polar",
        configure(PolarWebhooks::with_secret(secret, sessions.clone()).max_body(64 * 1024)),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let receiver = Receiver {
        url: format!("http://{addr}/webhooks/polar"),
        sessions,
        store,
        clock,
        customer,
        token,
        http: reqwest::Client::new(),
    };
    assert_eq!(receiver.name_seen().await, "Before");
    receiver
}

impl Receiver {
    /// The customer's name as the layer would hand it to a handler (cache first).
    async fn name_seen(&self) -> String {
        let (customer, _) = self
            .sessions
            .authenticate(&self.token, CredentialSource::Header)
            .await
            .unwrap();
        customer.name.clone().unwrap_or_default()
    }

    /// Rename the customer in the store behind the cache's back, as an edit at Polar is.
    fn rename_upstream(&self, name: &str) {
        let mut customer = self.customer.clone();
        customer.make_mut().name = Some(name.to_owned());
        self.store.memory().insert_customer(customer);
    }

    fn now(&self) -> i64 {
        self.sessions.now().timestamp()
    }

    async fn post(&self, headers: &[(&str, &str)], body: &str) -> (StatusCode, Value) {
        let mut request = self.http.post(&self.url).body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Post `body` with the three headers.
    async fn deliver(&self, id: &str, timestamp: i64, signature: &str, body: &str) -> StatusCode {
        let timestamp = timestamp.to_string();
        self.post(
            &[
                ("webhook-id", id),
                ("webhook-timestamp", &timestamp),
                ("webhook-signature", signature),
            ],
            body,
        )
        .await
        .0
    }

    /// Sign `body` with the Polar secret and post it now under a new `webhook-id`; the
    /// status and JSON body.
    async fn signed(&self, body: &Value) -> (StatusCode, Value) {
        let body = body.to_string();
        let now = self.now();
        let id = format!("msg_{}", Uuid::new_v4().simple());
        let signature = polar_secret().sign(&id, now, body.as_bytes());
        self.post(
            &[
                ("webhook-id", &id),
                ("webhook-timestamp", &now.to_string()),
                ("webhook-signature", &signature),
            ],
            &body,
        )
        .await
    }

    fn event(&self, kind: &str) -> String {
        json!({
            "type": kind,
            "timestamp": "2026-01-01T00:00:00Z",
            "data": {"id": self.customer.id, "email": null}
        })
        .to_string()
    }
}

fn polar_secret() -> WebhookSecret {
    WebhookSecret::polar(POLAR_SECRET).unwrap()
}

fn at(unix: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(unix, 0).unwrap()
}

/// `python3 -c script args…`'s trimmed output, or `None` (loudly; a failure under `CI=true`)
/// when Python or the module the script imports is missing.
fn python(script: &str, args: &[&str]) -> Option<String> {
    let output = match Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
    {
        Ok(output) => output,
        Err(error) => return missing(&format!("python3 cannot run: {error}")),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("ModuleNotFoundError") {
            return missing(&stderr);
        }
        panic!("the Python signer failed: {stderr}");
    }
    Some(String::from_utf8(output.stdout).unwrap().trim().to_owned())
}

fn missing(why: &str) -> Option<String> {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("an independent signer is required under CI=true: {why}");
    }
    eprintln!("SKIPPED (independent signer unavailable; `pip install standardwebhooks`): {why}");
    None
}

#[test]
fn the_published_vector_signs_and_verifies() {
    let secret = WebhookSecret::standard(VECTOR_SECRET).unwrap();
    assert_eq!(
        secret.sign(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY.as_bytes()),
        VECTOR_SIGNATURE
    );
    // The prefix is optional for a Standard Webhooks secret.
    let bare = WebhookSecret::standard(&VECTOR_SECRET["whsec_".len()..]).unwrap();
    assert_eq!(
        bare.sign(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY.as_bytes()),
        VECTOR_SIGNATURE
    );
    let mut headers = HeaderMap::new();
    headers.insert("webhook-id", VECTOR_ID.parse().unwrap());
    headers.insert(
        "webhook-timestamp",
        VECTOR_TIMESTAMP.to_string().parse().unwrap(),
    );
    headers.insert("webhook-signature", VECTOR_SIGNATURE.parse().unwrap());
    assert_eq!(
        secret.verify(&headers, VECTOR_BODY.as_bytes(), VECTOR_TIMESTAMP, 300),
        Ok(())
    );
    // One byte of the body changed, or the same key used as Polar's SDKs use a dashboard
    // secret (its text, not its base64 content): no match.
    assert_eq!(
        secret.verify(&headers, br#"{"test": 2432232315}"#, VECTOR_TIMESTAMP, 300),
        Err(SignatureError::NoMatch)
    );
    assert_eq!(
        WebhookSecret::polar(VECTOR_SECRET).unwrap().verify(
            &headers,
            VECTOR_BODY.as_bytes(),
            VECTOR_TIMESTAMP,
            300
        ),
        Err(SignatureError::NoMatch)
    );
}

#[tokio::test]
async fn the_published_vector_is_accepted_over_http() {
    let secret = WebhookSecret::standard(VECTOR_SECRET).unwrap();
    let receiver = receiver(secret, at(VECTOR_TIMESTAMP + 10)).await;
    // The vector's body is no Polar event: verified, then refused as a payload (400), where
    // a bad signature would be a 403.
    let (status, body) = receiver
        .post(
            &[
                ("webhook-id", VECTOR_ID),
                ("webhook-timestamp", &VECTOR_TIMESTAMP.to_string()),
                ("webhook-signature", VECTOR_SIGNATURE),
            ],
            VECTOR_BODY,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "InvalidPayload");
    let (status, body) = receiver
        .post(
            &[
                ("webhook-id", VECTOR_ID),
                ("webhook-timestamp", &VECTOR_TIMESTAMP.to_string()),
                (
                    "webhook-signature",
                    "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
                ),
            ],
            VECTOR_BODY,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "WebhookVerificationError");
}

#[tokio::test]
async fn a_delivery_signed_with_pythons_hmac_invalidates_the_customer() {
    let receiver = receiver(polar_secret(), Utc::now()).await;
    let body = receiver.event("customer.updated");
    let id = "5b3c1f0e-0d7a-4a51-9d64-0c1f7e2b8a11";
    let timestamp = receiver.now().to_string();
    // Written from the scheme, with nothing from this crate: Polar's SDKs base64-encode
    // the dashboard secret and their verifier decodes it, so the key is its UTF-8 bytes.
    let script = r#"
import base64, hashlib, hmac, sys
secret, msg_id, timestamp, body = sys.argv[1:5]
mac = hmac.new(secret.encode("utf-8"), f"{msg_id}.{timestamp}.{body}".encode("utf-8"), hashlib.sha256)
print("v1," + base64.b64encode(mac.digest()).decode("ascii"))
"#;
    let Some(signature) = python(script, &[POLAR_SECRET, id, &timestamp, &body]) else {
        return;
    };

    receiver.rename_upstream("After");
    assert_eq!(receiver.name_seen().await, "Before", "cached until told");
    let status = receiver
        .deliver(id, receiver.now(), &signature, &body)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(receiver.name_seen().await, "After");
}

#[tokio::test]
async fn deliveries_signed_by_the_standardwebhooks_package_verify_both_ways() {
    // The package Polar's Python SDK builds on, keyed exactly as that SDK keys it:
    // `Webhook(base64(secret))`. A `whsec_`-prefixed dashboard secret is keyed verbatim too.
    let script = r#"
import base64, sys
from datetime import datetime, timezone
from standardwebhooks import Webhook
secret, msg_id, timestamp, body, ours = sys.argv[1:6]
webhook = Webhook(base64.b64encode(secret.encode("utf-8")).decode("ascii"))
headers = {"webhook-id": msg_id, "webhook-timestamp": timestamp, "webhook-signature": ours}
webhook.verify(body.encode("utf-8"), headers)
print(webhook.sign(msg_id, datetime.fromtimestamp(int(timestamp), tz=timezone.utc), body))
"#;
    for dashboard_secret in [POLAR_SECRET, "whsec_c2VjcmV0LXRoYXQtbG9va3Mtc3RhbmRhcmQ="] {
        let secret = WebhookSecret::polar(dashboard_secret).unwrap();
        let receiver = receiver(secret.clone(), Utc::now()).await;
        let body = receiver.event("customer.state_changed");
        let id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
        let now = receiver.now();
        let ours = secret.sign(id, now, body.as_bytes());
        // The package checks our signature (it raises otherwise) and signs its own.
        let Some(theirs) = python(
            script,
            &[dashboard_secret, id, &now.to_string(), &body, &ours],
        ) else {
            return;
        };
        assert_eq!(theirs, ours, "both sides compute the same signature");
        receiver.rename_upstream("After");
        assert_eq!(
            receiver.deliver(id, now, &theirs, &body).await,
            StatusCode::NO_CONTENT
        );
        assert_eq!(receiver.name_seen().await, "After");
    }
}

#[tokio::test]
async fn stale_and_future_timestamps_are_refused() {
    let receiver = receiver(polar_secret(), Utc::now()).await;
    let body = receiver.event("customer.deleted");
    let secret = polar_secret();
    let now = receiver.now();
    for (offset, expected) in [
        (-301, StatusCode::FORBIDDEN),
        (301, StatusCode::FORBIDDEN),
        (-86_400, StatusCode::FORBIDDEN),
        (-299, StatusCode::NO_CONTENT),
        (299, StatusCode::NO_CONTENT),
    ] {
        let timestamp = now + offset;
        let signature = secret.sign("msg_1", timestamp, body.as_bytes());
        let (status, response) = receiver
            .post(
                &[
                    ("webhook-id", "msg_1"),
                    ("webhook-timestamp", &timestamp.to_string()),
                    ("webhook-signature", &signature),
                ],
                &body,
            )
            .await;
        assert_eq!(status, expected, "offset {offset}");
        if expected == StatusCode::FORBIDDEN {
            assert_eq!(
                response["detail"],
                "the webhook-timestamp is outside the accepted window"
            );
        }
    }
    // The window follows the manager's clock.
    receiver.clock.advance(chrono::TimeDelta::seconds(600));
    let signature = secret.sign("msg_2", now, body.as_bytes());
    assert_eq!(
        receiver.deliver("msg_2", now, &signature, &body).await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn bad_signatures_are_refused_and_change_nothing() {
    let receiver = receiver(polar_secret(), Utc::now()).await;
    let body = receiver.event("customer.updated");
    let now = receiver.now();
    let good = polar_secret().sign("msg_1", now, body.as_bytes());
    let other_secret = WebhookSecret::polar("polar_whs_someoneElse").unwrap();
    receiver.rename_upstream("After");
    for (case, id, signature, payload) in [
        (
            "another secret",
            "msg_1",
            other_secret.sign("msg_1", now, body.as_bytes()),
            body.clone(),
        ),
        (
            "another body",
            "msg_1",
            good.clone(),
            body.replace("customer.updated", "customer.deleted"),
        ),
        ("another id", "msg_2", good.clone(), body.clone()),
        ("not base64", "msg_1", "v1,@@@@".to_owned(), body.clone()),
        ("no version", "msg_1", good[3..].to_owned(), body.clone()),
        ("empty", "msg_1", " ".to_owned(), body.clone()),
        (
            "v1a only",
            "msg_1",
            good.replace("v1,", "v1a,"),
            body.clone(),
        ),
    ] {
        let (status, response) = receiver
            .post(
                &[
                    ("webhook-id", id),
                    ("webhook-timestamp", &now.to_string()),
                    ("webhook-signature", &signature),
                ],
                &payload,
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{case}");
        assert_eq!(response["detail"], "no webhook signature matches", "{case}");
    }
    assert_eq!(
        receiver.name_seen().await,
        "Before",
        "no refused delivery invalidated anything"
    );
}

#[tokio::test]
async fn any_of_several_signatures_may_match() {
    let receiver = receiver(polar_secret(), Utc::now()).await;
    let body = receiver.event("customer.updated");
    let now = receiver.now();
    let good = polar_secret().sign("msg_1", now, body.as_bytes());
    let stale_key =
        WebhookSecret::polar("polar_whs_rotatedAway")
            .unwrap()
            .sign("msg_1", now, body.as_bytes());
    // Key rotation: old key first, junk and other versions around the good one.
    let header = format!(
        "{stale_key} v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg== v2,abc v1 v1,%%% {good}  v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
    );
    receiver.rename_upstream("After");
    assert_eq!(
        receiver.deliver("msg_1", now, &header, &body).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(receiver.name_seen().await, "After");
}

#[tokio::test]
async fn missing_or_malformed_headers_are_a_400_naming_the_header() {
    let receiver = receiver(polar_secret(), Utc::now()).await;
    let body = receiver.event("customer.deleted");
    let now = receiver.now().to_string();
    let signature = polar_secret().sign("msg_1", receiver.now(), body.as_bytes());
    let all = [
        ("webhook-id", "msg_1"),
        ("webhook-timestamp", now.as_str()),
        ("webhook-signature", signature.as_str()),
    ];
    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let headers: Vec<_> = all.iter().copied().filter(|(n, _)| *n != missing).collect();
        let (status, response) = receiver.post(&headers, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{missing}");
        assert_eq!(response["error"], "WebhookVerificationError");
        assert_eq!(
            response["detail"],
            format!("the {missing} header is missing")
        );
    }
    for (name, value) in [
        ("webhook-timestamp", "soon"),
        ("webhook-timestamp", "1.5e9"),
        ("webhook-timestamp", "-1700000000"),
        ("webhook-id", "msg.1"),
        ("webhook-id", ""),
    ] {
        let headers: Vec<_> = all
            .iter()
            .map(|&(n, v)| if n == name { (n, value) } else { (n, v) })
            .collect();
        let (status, response) = receiver.post(&headers, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {value}");
        assert_eq!(
            response["detail"],
            format!("the {name} header is malformed")
        );
    }
    // A repeated header is ambiguous.
    let mut headers = all.to_vec();
    headers.push(("webhook-timestamp", now.as_str()));
    assert_eq!(
        receiver.post(&headers, &body).await.0,
        StatusCode::BAD_REQUEST
    );
    // Still intact.
    assert_eq!(receiver.name_seen().await, "Before");
}

#[tokio::test]
async fn method_size_and_payload_rules() {
    let receiver = receiver(polar_secret(), Utc::now()).await;
    let secret = polar_secret();
    let now = receiver.now();
    let get = receiver.http.get(&receiver.url).send().await.unwrap();
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get.headers()["allow"], "POST");

    let huge = "x".repeat(65 * 1024);
    let signature = secret.sign("msg_1", now, huge.as_bytes());
    assert_eq!(
        receiver.deliver("msg_1", now, &signature, &huge).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );

    // Verified events this receiver has no use for are acknowledged, so Polar stops retrying.
    receiver.rename_upstream("After");
    let order = json!({"type": "order.paid", "data": {"id": receiver.customer.id}}).to_string();
    let signature = secret.sign("msg_2", now, order.as_bytes());
    assert_eq!(
        receiver.deliver("msg_2", now, &signature, &order).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        receiver.name_seen().await,
        "Before",
        "an order event invalidates nothing"
    );
}

/// A `member.*` payload as Polar sends it: `data.id` is the member's, `data.customer_id` its
/// customer's.
fn member_event(kind: &str, member_id: Uuid, customer_id: Uuid, role: &str) -> Value {
    json!({
        "type": kind,
        "timestamp": "2026-01-01T00:00:00Z",
        "data": {
            "id": member_id,
            "customer_id": customer_id,
            "created_at": "2026-01-01T00:00:00Z",
            "modified_at": "2026-01-02T00:00:00Z",
            "email": "bill@acme.example",
            "name": "Bill Manager",
            "external_id": null,
            "role": role
        }
    })
}

#[tokio::test]
async fn member_events_drop_the_sessions_of_the_customer_named_by_customer_id() {
    let receiver = receiver(polar_secret(), Utc::now()).await;
    let customer_id = receiver.customer.id;
    for kind in ["member.updated", "member.deleted"] {
        receiver.rename_upstream(kind);
        // `data.id` is a member's id: the customer's id there names no customer.
        let elsewhere = member_event(kind, customer_id, Uuid::new_v4(), "member");
        assert_eq!(receiver.signed(&elsewhere).await.0, StatusCode::NO_CONTENT);
        assert_ne!(
            receiver.name_seen().await,
            kind,
            "{kind}: another customer's"
        );

        let event = member_event(kind, Uuid::new_v4(), customer_id, "member");
        assert_eq!(receiver.signed(&event).await.0, StatusCode::NO_CONTENT);
        assert_eq!(receiver.name_seen().await, kind, "{kind}: reloaded");
    }
}

#[tokio::test]
async fn events_of_other_types_are_acknowledged_whatever_their_data() {
    let receiver = receiver(polar_secret(), Utc::now()).await;
    let id = receiver.customer.id;
    receiver.rename_upstream("After");
    for body in [
        json!({"type": "future.event", "data": {"id": "evt_not_a_uuid"}}),
        json!({"type": "future.event", "data": [1, 2, 3]}),
        json!({"type": "future.event", "data": "a string"}),
        json!({"type": "future.event", "data": null}),
        json!({"type": "future.event", "data": 7}),
        json!({"type": "future.event"}),
        json!({"type": "order.paid", "data": {"id": id}}),
        json!({"type": "customer.created", "data": {"id": id}}),
        json!({"type": "member.created", "data": {"id": id, "customer_id": id}}),
        json!({"type": "customer_seat.revoked", "data": {"id": "seat", "customer_id": null}}),
        json!({"type": "Customer.Updated", "data": {"id": id}}),
    ] {
        let (status, response) = receiver.signed(&body).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}: {response}");
    }
    assert_eq!(receiver.name_seen().await, "Before", "none drops anything");
}

#[tokio::test]
async fn handled_events_without_their_ids_are_a_400_that_drops_nothing() {
    let receiver = receiver(polar_secret(), Utc::now()).await;
    let id = receiver.customer.id;
    receiver.rename_upstream("After");
    let customer = "a customer event without a customer id (data.id)";
    let member = "a member event without the member's id (data.id) and its customer's id \
                  (data.customer_id)";
    for (body, detail) in [
        (json!({"type": "customer.deleted", "data": {}}), customer),
        (json!({"type": "customer.deleted"}), customer),
        (
            json!({"type": "customer.updated", "data": {"id": "cus_1"}}),
            customer,
        ),
        (
            json!({"type": "customer.state_changed", "data": [id]}),
            customer,
        ),
        (
            json!({"type": "member.updated", "data": {"customer_id": id}}),
            member,
        ),
        (
            json!({"type": "member.deleted", "data": {"id": id}}),
            member,
        ),
        (
            json!({"type": "member.deleted", "data": {"id": Uuid::new_v4(), "customer_id": "cus"}}),
            member,
        ),
        (json!({"type": "member.updated", "data": "x"}), member),
    ] {
        let (status, response) = receiver.signed(&body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(response["error"], "InvalidPayload", "{body}");
        assert_eq!(response["detail"], detail, "{body}");
    }
    // Verified bodies that are no event at all.
    for body in [
        json!([]),
        json!(["customer.deleted"]),
        json!("customer.deleted"),
        json!({"type": 5}),
        json!({}),
    ] {
        let (status, response) = receiver.signed(&body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            response["detail"], "the webhook body is not an event with a type",
            "{body}"
        );
    }
    assert_eq!(receiver.name_seen().await, "Before");
}

#[tokio::test]
async fn a_store_of_your_own_keeps_answering_with_the_member_it_holds() {
    // As documented: the receiver only drops cached entries, and a local store's member
    // session carries the member it was created with.
    let receiver = receiver(polar_secret(), Utc::now()).await;
    let member_id = Uuid::new_v4();
    let session = receiver
        .sessions
        .create(
            receiver.customer.id,
            CreateSession::default().member(Member::new(member_id, MemberRole::BillingManager)),
        )
        .await
        .unwrap();
    for kind in ["member.updated", "member.deleted"] {
        let event = member_event(kind, member_id, receiver.customer.id, "member");
        assert_eq!(receiver.signed(&event).await.0, StatusCode::NO_CONTENT);
        let (_, info) = receiver
            .sessions
            .authenticate(session.token.expose_secret(), CredentialSource::Header)
            .await
            .unwrap();
        assert_eq!(info.role(), Some(&MemberRole::BillingManager), "{kind}");
    }
}

#[tokio::test]
async fn during_a_change_of_secret_either_is_accepted_and_a_third_refused() {
    let current = polar_secret();
    let next = WebhookSecret::polar("polar_whs_theNextSecretFromTheDashboard4567").unwrap();
    let third = WebhookSecret::polar("polar_whs_neitherOfTheTwo").unwrap();
    let receiver = receiver_with(current.clone(), Utc::now(), |webhooks| {
        webhooks.accept_secrets([next.clone()])
    })
    .await;
    let body = receiver.event("customer.updated");
    let now = receiver.now();
    for (id, secret, name) in [("msg_1", &current, "Current"), ("msg_2", &next, "Next")] {
        receiver.rename_upstream(name);
        let signature = secret.sign(id, now, body.as_bytes());
        assert_eq!(
            receiver.deliver(id, now, &signature, &body).await,
            StatusCode::NO_CONTENT,
            "{name}"
        );
        assert_eq!(receiver.name_seen().await, name, "{name}: applied");
    }
    receiver.rename_upstream("Third");
    let signature = third.sign("msg_3", now, body.as_bytes());
    let timestamp = now.to_string();
    let (status, response) = receiver
        .post(
            &[
                ("webhook-id", "msg_3"),
                ("webhook-timestamp", &timestamp),
                ("webhook-signature", &signature),
            ],
            &body,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(response["detail"], "no webhook signature matches");
    assert_eq!(
        receiver.name_seen().await,
        "Next",
        "refused: nothing dropped"
    );

    // Without it, or once it is replaced by an empty list, the other secret is refused.
    for configure in [
        (|webhooks| webhooks) as fn(PolarWebhooks<Store>) -> PolarWebhooks<Store>,
        |webhooks| {
            let next = WebhookSecret::polar("polar_whs_theNextSecretFromTheDashboard4567");
            webhooks.accept_secrets([next.unwrap()]).accept_secrets([])
        },
    ] {
        let receiver = receiver_with(current.clone(), Utc::now(), configure).await;
        let now = receiver.now();
        let signature = next.sign("msg_1", now, body.as_bytes());
        assert_eq!(
            receiver.deliver("msg_1", now, &signature, &body).await,
            StatusCode::FORBIDDEN
        );
    }
}

#[tokio::test]
async fn a_replayed_delivery_is_acknowledged_and_applied_once() {
    let receiver = receiver(polar_secret(), Utc::now()).await;
    let secret = polar_secret();
    let body = receiver.event("customer.updated");
    let deliver = |timestamp: i64| {
        let signature = secret.sign("msg_once", timestamp, body.as_bytes());
        let receiver = &receiver;
        let body = &body;
        async move {
            receiver
                .deliver("msg_once", timestamp, &signature, body)
                .await
        }
    };
    // The session is cached: asking again loads nothing.
    let loads = receiver.store.loads();
    receiver.name_seen().await;
    assert_eq!(receiver.store.loads(), loads, "cached");

    let sent = receiver.now();
    assert_eq!(deliver(sent).await, StatusCode::NO_CONTENT);
    receiver.name_seen().await;
    assert_eq!(
        receiver.store.loads(),
        loads + 1,
        "dropped, so reloaded once"
    );
    receiver.name_seen().await;
    assert_eq!(receiver.store.loads(), loads + 1, "cached again");

    // The same delivery again (the same bytes), then sent anew with a fresh timestamp and
    // signature, then that copy again later, when the first could no longer pass: each
    // acknowledged, none applied.
    receiver.clock.advance(chrono::TimeDelta::seconds(120));
    assert_eq!(deliver(sent).await, StatusCode::NO_CONTENT);
    let resent = receiver.now();
    assert_eq!(deliver(resent).await, StatusCode::NO_CONTENT);
    receiver.clock.advance(chrono::TimeDelta::seconds(250));
    assert_eq!(deliver(sent).await, StatusCode::FORBIDDEN, "stale");
    assert_eq!(deliver(resent).await, StatusCode::NO_CONTENT);
    receiver.name_seen().await;
    assert_eq!(receiver.store.loads(), loads + 1, "no replay was applied");

    // Later (Polar redelivering an old event by hand), the id is forgotten: applied.
    receiver.clock.advance(chrono::TimeDelta::minutes(10));
    assert_eq!(deliver(receiver.now()).await, StatusCode::NO_CONTENT);
    receiver.name_seen().await;
    assert_eq!(receiver.store.loads(), loads + 2, "applied again");
}

#[tokio::test]
async fn a_full_replay_memory_forgets_rather_than_refuses() {
    let receiver = receiver_with(polar_secret(), Utc::now(), |webhooks| {
        webhooks.replay_memory(1)
    })
    .await;
    let body = receiver.event("customer.deleted");
    let now = receiver.now();
    let deliver = |id: &'static str| {
        let signature = polar_secret().sign(id, now, body.as_bytes());
        let receiver = &receiver;
        let body = &body;
        async move { receiver.deliver(id, now, &signature, body).await }
    };
    let loads = receiver.store.loads();
    for (id, applied) in [
        ("msg_a", true),
        ("msg_a", false),
        ("msg_b", true),
        ("msg_a", true),
    ] {
        assert_eq!(deliver(id).await, StatusCode::NO_CONTENT, "{id}");
        let before = receiver.store.loads();
        receiver.name_seen().await;
        assert_eq!(
            receiver.store.loads() - before,
            usize::from(applied),
            "{id}"
        );
    }
    assert!(receiver.store.loads() > loads);
}

#[test]
fn secrets_are_refused_when_empty_or_not_base64_and_never_printed() {
    assert!(WebhookSecret::polar("").is_err());
    assert!(WebhookSecret::standard("whsec_").is_err());
    assert!(WebhookSecret::standard("whsec_***").is_err());
    let secret = WebhookSecret::polar(POLAR_SECRET).unwrap();
    assert!(!format!("{secret:?}").contains("w3bh00k"));
    let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
    let webhooks = PolarWebhooks::new(POLAR_SECRET, sessions.clone()).unwrap();
    assert!(!format!("{webhooks:?}").contains("w3bh00k"));
    assert!(PolarWebhooks::new("", sessions).is_err());
}
