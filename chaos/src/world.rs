//! What the harness's tasks share: the clock, the instances, the tokens, the history.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tower_customer_session::token::TokenHasher;
use tower_customer_session::uuid::Uuid;

use crate::history::{Kind, Op, Outcome};

/// A token the harness holds. Only `id` is ever printed or written.
pub struct Tok {
    pub raw: String,
    /// The first 12 hex digits of its HMAC hash.
    pub id: String,
}

pub struct Customer {
    pub id: Uuid,
    /// A create, `revoke_all` or deletion of this customer is under way.
    pub busy: bool,
    /// Its sessions no revocation was attempted for.
    pub live: Vec<Arc<Tok>>,
}

#[derive(Default)]
pub struct Pool {
    pub live: Vec<Arc<Tok>>,
    /// Revocation attempted (whatever its outcome).
    pub dead: Vec<Arc<Tok>>,
    /// Well-formed tokens never issued.
    pub unknown: Vec<Arc<Tok>>,
    pub customers: Vec<Customer>,
}

impl Pool {
    /// Move `token` from live to dead.
    pub fn kill(&mut self, token: &Arc<Tok>) {
        self.live.retain(|t| !Arc::ptr_eq(t, token));
        for customer in &mut self.customers {
            customer.live.retain(|t| !Arc::ptr_eq(t, token));
        }
        self.dead.push(token.clone());
    }
}

pub struct World {
    pub t0: Instant,
    pub bases: Vec<String>,
    pub client: reqwest::Client,
    pub hasher: TokenHasher,
    pub pool: Mutex<Pool>,
    ops: Mutex<Vec<Op>>,
    stopped: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A short reason for a missing response (never the URL or a header).
fn dropped(error: &reqwest::Error) -> Outcome {
    let why = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else if error.is_decode() || error.is_body() {
        "body"
    } else {
        "closed"
    };
    Outcome::Dropped(why.to_owned())
}

impl World {
    pub fn new(t0: Instant, bases: Vec<String>, hasher: TokenHasher) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("an HTTP client");
        Self {
            t0,
            bases,
            client,
            hasher,
            pool: Mutex::default(),
            ops: Mutex::default(),
            stopped: AtomicBool::new(false),
        }
    }

    pub fn now(&self) -> f64 {
        self.t0.elapsed().as_secs_f64() * 1e3
    }

    pub fn pool(&self) -> MutexGuard<'_, Pool> {
        lock(&self.pool)
    }

    pub fn record(&self, op: Op) {
        lock(&self.ops).push(op);
    }

    pub fn take_ops(&self) -> Vec<Op> {
        std::mem::take(&mut lock(&self.ops))
    }

    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    pub fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    pub fn instances(&self) -> usize {
        self.bases.len()
    }

    pub fn token(&self, raw: String) -> Arc<Tok> {
        let id = self.hasher.hash(&raw).to_hex()[..12].to_owned();
        Arc::new(Tok { raw, id })
    }

    /// `GET /me` with `token` on `instance`, recorded.
    pub async fn auth(&self, instance: usize, token: &Tok, probe: Option<u64>) -> Outcome {
        let start = self.now();
        let sent = self
            .client
            .get(format!("{}/me", self.bases[instance]))
            .bearer_auth(&token.raw)
            .send()
            .await;
        let outcome = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                // Read the body, so a response cut short counts as dropped.
                match response.bytes().await {
                    Ok(_) => Outcome::Status(status),
                    Err(error) => dropped(&error),
                }
            }
            Err(error) => dropped(&error),
        };
        self.record(Op {
            start,
            end: self.now(),
            instance: Some(instance),
            kind: Kind::Auth,
            tokens: vec![token.id.clone()],
            outcome: outcome.clone(),
            count: None,
            probe,
        });
        outcome
    }

    /// An admin call on `instance`, not yet recorded: the caller knows its tokens.
    pub async fn admin<T: DeserializeOwned>(
        &self,
        instance: usize,
        kind: Kind,
        body: &impl Serialize,
    ) -> Call<T> {
        let path = match kind {
            Kind::AddCustomer => "customers",
            Kind::Create => "sessions",
            Kind::RevokeAll => "revoke_all",
            Kind::DeleteCustomer => "delete_customer",
            Kind::Revoke | Kind::Auth | Kind::SqlRevoke => "revoke",
        };
        let start = self.now();
        let sent = self
            .client
            .post(format!("{}/admin/{path}", self.bases[instance]))
            .json(body)
            .send()
            .await;
        let (outcome, value) = match sent {
            Ok(response) if response.status().is_success() => match response.json::<T>().await {
                Ok(value) => (Outcome::Status(200), Some(value)),
                Err(error) => (dropped(&error), None),
            },
            Ok(response) => (Outcome::Status(response.status().as_u16()), None),
            Err(error) => (dropped(&error), None),
        };
        Call {
            start,
            end: self.now(),
            instance: Some(instance),
            kind,
            outcome,
            value,
        }
    }
}

/// A call made, to record once its tokens are known.
pub struct Call<T> {
    pub start: f64,
    pub end: f64,
    pub instance: Option<usize>,
    pub kind: Kind,
    pub outcome: Outcome,
    pub value: Option<T>,
}

impl<T> Call<T> {
    /// The same call with its value mapped.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Call<U> {
        Call {
            start: self.start,
            end: self.end,
            instance: self.instance,
            kind: self.kind,
            outcome: self.outcome,
            value: self.value.map(f),
        }
    }

    /// The call as an operation of the history.
    pub fn op(&self, tokens: Vec<String>, count: Option<u64>, probe: Option<u64>) -> Op {
        Op {
            start: self.start,
            end: self.end,
            instance: self.instance,
            kind: self.kind,
            tokens,
            outcome: self.outcome.clone(),
            count,
            probe,
        }
    }
}
