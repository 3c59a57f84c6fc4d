//! The load: clients authenticating random tokens on random instances, a creator adding
//! customers and sessions, a revoker revoking live sessions in every way, and a prober
//! whose rounds show when the fleet has recovered. Every call is recorded.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tower_customer_session::uuid::Uuid;

use crate::history::{Kind, Outcome};
use crate::instance::{Count, CustomerId, Token};
use crate::rng::Rng;
use crate::sql::SqlProgram;
use crate::world::{Customer, Tok, World};

/// Each instance serves `token` once (so it is cached there), concurrently.
async fn warm(world: &World, tokens: &[Arc<Tok>], probe: Option<u64>) {
    let calls = tokens
        .iter()
        .flat_map(|t| (0..world.instances()).map(move |i| (i, t)))
        .map(|(i, t)| world.auth(i, t, probe));
    join_all(calls).await;
}

/// After a revocation returned: ask every instance for each token every 10 ms until it is
/// refused (or answers anything but 200), for at most 1.5 s.
async fn follow(world: &World, tokens: &[Arc<Tok>], probe: Option<u64>) {
    let polls = tokens
        .iter()
        .flat_map(|t| (0..world.instances()).map(move |i| (i, t)))
        .map(|(i, t)| async move {
            for _ in 0..150 {
                if world.auth(i, t, probe).await != Outcome::Status(200) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
    join_all(polls).await;
}

/// One client: `GET /me` at `period`, with a live (70%), revoked (20%) or never-issued
/// (10%) token, on a random instance.
pub async fn client(world: Arc<World>, mut rng: Rng, period: Duration) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !world.stopped() {
        ticks.tick().await;
        let token = {
            let pool = world.pool();
            let roll = rng.percent();
            let from = match roll {
                0..70 => &pool.live,
                70..90 => &pool.dead,
                _ => &pool.unknown,
            };
            rng.pick(from).or_else(|| rng.pick(&pool.live)).cloned()
        };
        if let Some(token) = token {
            let instance = rng.below(world.instances());
            world.auth(instance, &token, None).await;
        }
    }
}

/// Add a customer through `instance`; its id if that worked.
pub async fn add_customer(world: &World, instance: usize) -> Option<Uuid> {
    let call = world
        .admin::<CustomerId>(instance, Kind::AddCustomer, &())
        .await;
    world.record(call.op(Vec::new(), None, None));
    call.value.map(|c| c.customer)
}

/// Create a session of `customer` through `instance`.
pub async fn create(
    world: &World,
    instance: usize,
    customer: Uuid,
    probe: Option<u64>,
) -> Option<Arc<Tok>> {
    let call = world
        .admin::<Token>(instance, Kind::Create, &CustomerId { customer })
        .await;
    let token = call.value.as_ref().map(|t| world.token(t.token.clone()));
    let tokens = token.iter().map(|t| t.id.clone()).collect();
    world.record(call.op(tokens, None, probe));
    token
}

/// Adds customers (10%) and sessions of customers not otherwise busy, at `period`.
pub async fn creator(world: Arc<World>, mut rng: Rng, period: Duration) {
    let mut ticks = tokio::time::interval(period);
    while !world.stopped() {
        ticks.tick().await;
        let instance = rng.below(world.instances());
        let customer = {
            let mut pool = world.pool();
            let free: Vec<usize> = (0..pool.customers.len())
                .filter(|&c| !pool.customers[c].busy)
                .collect();
            match rng.pick(&free) {
                Some(&c) if pool.customers.len() >= 5 && rng.percent() >= 10 => {
                    pool.customers[c].busy = true;
                    Some(pool.customers[c].id)
                }
                _ => None,
            }
        };
        match customer {
            None => {
                if let Some(id) = add_customer(&world, instance).await {
                    world.pool().customers.push(Customer {
                        id,
                        busy: false,
                        live: Vec::new(),
                    });
                }
            }
            Some(id) => {
                let token = create(&world, instance, id, None).await;
                let mut pool = world.pool();
                if let Some(customer) = pool.customers.iter_mut().find(|c| c.id == id) {
                    customer.busy = false;
                    customer.live.extend(token.clone());
                }
                pool.live.extend(token);
            }
        }
    }
}

/// Revokes at `period`, one at a time: single sessions (through an instance, or in SQL
/// when `sql` is given), `revoke_all`, and customer deletions. Each victim is first served
/// by every instance, then followed until every instance refuses it.
pub async fn revoker(
    world: Arc<World>,
    mut rng: Rng,
    period: Duration,
    sql: Option<Arc<SqlProgram>>,
) {
    let mut ticks = tokio::time::interval(period);
    while !world.stopped() {
        ticks.tick().await;
        if world.pool().live.len() < 10 {
            continue;
        }
        let roll = rng.percent();
        let instance = rng.below(world.instances());
        match roll {
            0..50 => {
                let Some(victim) = rng.pick(&world.pool().live).cloned() else {
                    continue;
                };
                world.pool().kill(&victim);
                warm(&world, std::slice::from_ref(&victim), None).await;
                let call = match (&sql, roll) {
                    (Some(sql), 0..25) => {
                        let hash = world.hasher.hash(&victim.raw).to_hex();
                        sql.revoke(&world, &hash).await
                    }
                    _ => {
                        let body = Token {
                            token: victim.raw.clone(),
                        };
                        let call = world.admin::<Count>(instance, Kind::Revoke, &body).await;
                        call.map(|c| c.count)
                    }
                };
                world.record(call.op(vec![victim.id.clone()], call.value, None));
                if call.outcome.ok() {
                    follow(&world, std::slice::from_ref(&victim), None).await;
                }
            }
            _ => {
                let kind = if roll < 80 {
                    Kind::RevokeAll
                } else {
                    Kind::DeleteCustomer
                };
                let (id, victims) = {
                    let mut pool = world.pool();
                    let candidates: Vec<usize> = (0..pool.customers.len())
                        .filter(|&c| !pool.customers[c].busy && !pool.customers[c].live.is_empty())
                        .collect();
                    let Some(&c) = rng.pick(&candidates) else {
                        continue;
                    };
                    pool.customers[c].busy = true;
                    let customer = &pool.customers[c];
                    let (id, victims) = (customer.id, customer.live.clone());
                    for victim in &victims {
                        pool.kill(victim);
                    }
                    (id, victims)
                };
                warm(&world, &victims, None).await;
                let call = world
                    .admin::<Count>(instance, kind, &CustomerId { customer: id })
                    .await;
                let ids = victims.iter().map(|v| v.id.clone()).collect();
                world.record(call.op(ids, call.value.as_ref().map(|c| c.count), None));
                if call.outcome.ok() {
                    follow(&world, &victims, None).await;
                }
                let mut pool = world.pool();
                if kind == Kind::DeleteCustomer {
                    // A deleted customer gets no more sessions: it stays busy for good.
                    pool.customers.retain(|c| c.id != id);
                } else if let Some(customer) = pool.customers.iter_mut().find(|c| c.id == id) {
                    customer.busy = false;
                }
            }
        }
    }
}

/// Probe rounds at `period` on a customer of their own: create through one instance,
/// served by all, revoke through another, refused by all. Its operations carry the round.
pub async fn prober(world: Arc<World>, mut rng: Rng, period: Duration, customer: Uuid) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut round = 0u64;
    while !world.stopped() {
        ticks.tick().await;
        round += 1;
        let probe = Some(round);
        let n = world.instances();
        let Some(token) = create(&world, rng.below(n), customer, probe).await else {
            continue;
        };
        warm(&world, std::slice::from_ref(&token), probe).await;
        let instance = rng.below(n);
        let body = Token {
            token: token.raw.clone(),
        };
        let call = world.admin::<Count>(instance, Kind::Revoke, &body).await;
        world.record(call.op(
            vec![token.id.clone()],
            call.value.as_ref().map(|c| c.count),
            probe,
        ));
        if call.outcome.ok() {
            follow(&world, std::slice::from_ref(&token), probe).await;
        }
    }
}
