//! One run: start the store, the proxies and the fleet, drive the load, inject the
//! schedule's faults, and hand back the history.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tower_customer_session::store::postgres::PostgresStore;
use tower_customer_session::token::{TokenFormat, TokenHasher, TokenKind};

use crate::fleet::Fleet;
use crate::history::{Fault, FaultKind, History};
use crate::instance::SECRET;
use crate::proxy::{Mode, Proxies};
use crate::rng::Rng;
use crate::schedule::{self, Schedule, Shape};
use crate::sql::SqlProgram;
use crate::topology::{self, Protocol, Topology};
use crate::traffic;
use crate::world::{Customer, World};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub instances: usize,
    /// `GET /me` per second, all clients together.
    pub rate: u64,
    pub clients: usize,
    pub revocations_per_s: f64,
    pub creates_per_s: f64,
    pub probe_every: Duration,
    pub shape: Shape,
    /// Only these kinds (default: every kind the topology supports).
    pub kinds: Option<Vec<FaultKind>>,
    pub serve_cached: bool,
    pub seed: u64,
    pub out: PathBuf,
}

type Shared = Arc<Mutex<Box<dyn Topology>>>;

/// Run `f` on the topology, off the runtime's threads (it blocks).
async fn on<T: Send + 'static>(
    topology: &Shared,
    f: impl FnOnce(&mut dyn Topology) -> std::io::Result<T> + Send + 'static,
) -> Result<T, String> {
    let topology = topology.clone();
    tokio::task::spawn_blocking(move || {
        let mut guard = topology.lock().unwrap_or_else(PoisonError::into_inner);
        f(guard.as_mut())
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

pub async fn run(store: &str, options: &Options) -> Result<History, String> {
    let t0 = Instant::now();
    let name = store.to_owned();
    let topology: Shared = Arc::new(Mutex::new(
        tokio::task::spawn_blocking(move || topology::start(&name))
            .await
            .map_err(|e| e.to_string())??,
    ));
    let (protocol, endpoints, direct, store_faults) = {
        let t = topology.lock().unwrap_or_else(PoisonError::into_inner);
        (
            t.protocol(),
            t.endpoints(),
            t.direct_url(),
            t.store_faults(),
        )
    };
    let sql = if protocol == Protocol::Postgres {
        let schema = PostgresStore::builder()
            .connect(&direct)
            .await
            .map_err(|e| e.to_string())?;
        schema.migrate().await.map_err(|e| e.to_string())?;
        Some(Arc::new(SqlProgram::new(&direct)?))
    } else {
        None
    };

    let mut proxies = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..options.instances {
        let group = Proxies::start(&endpoints, |ports| {
            // Where the store names an endpoint, the instance reads its proxy instead.
            let t = topology.lock().unwrap_or_else(PoisonError::into_inner);
            let ends = endpoints.iter().map(|e| e.port());
            ends.zip(ports)
                .flat_map(|(end, port)| t.port_forms(end).into_iter().zip(t.port_forms(*port)))
                .collect()
        })
        .await
        .map_err(|e| e.to_string())?;
        urls.push(
            topology
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .url_via(group.ports()),
        );
        proxies.push(group);
    }
    let mut fleet = Fleet::start(protocol, urls, options.serve_cached).await?;
    let bases = (0..fleet.len()).map(|i| fleet.base(i)).collect();
    let world = Arc::new(World::new(t0, bases, TokenHasher::new(SECRET)));
    let mut rng = Rng::new(options.seed);
    let probe_customer = populate(&world, &mut rng).await?;

    let mut kinds = store_faults;
    kinds.extend([
        FaultKind::HangAll,
        FaultKind::HangFeed,
        FaultKind::Reset,
        FaultKind::InstanceKill,
    ]);
    {
        let t = topology.lock().unwrap_or_else(PoisonError::into_inner);
        let asked = options.kinds.as_deref().unwrap_or(&FaultKind::ALL);
        for kind in asked {
            if let Some(why) = t.skips(*kind) {
                eprintln!("chaos: {store}: skipping {}: {why}", kind.name());
            }
        }
    }
    if let Some(only) = &options.kinds {
        kinds.retain(|k| only.contains(k));
    }
    let schedule = schedule::plan(&kinds, options.instances, options.shape, &mut rng);
    eprintln!(
        "chaos: {store}, {} instances, {} faults over {:.0} s, seed {}",
        options.instances,
        schedule.faults.len(),
        schedule.total.as_secs_f64(),
        options.seed
    );

    let mut tasks = Vec::new();
    let period = |per_s: f64| Duration::from_secs_f64(1.0 / per_s);
    for c in 0..options.clients {
        let per_client = options.rate as f64 / options.clients as f64;
        tasks.push(tokio::spawn(traffic::client(
            world.clone(),
            Rng::new(rng.next() ^ c as u64),
            period(per_client),
        )));
    }
    tasks.push(tokio::spawn(traffic::creator(
        world.clone(),
        Rng::new(rng.next()),
        period(options.creates_per_s),
    )));
    tasks.push(tokio::spawn(traffic::revoker(
        world.clone(),
        Rng::new(rng.next()),
        period(options.revocations_per_s),
        sql,
    )));
    tasks.push(tokio::spawn(traffic::prober(
        world.clone(),
        Rng::new(rng.next()),
        options.probe_every,
        probe_customer,
    )));

    let faults = inject(&world, &schedule, &topology, &proxies, &mut fleet).await;
    world.stop();
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    let length = world.now();
    fleet.stop().await;
    drop(proxies);
    let _ = on(&topology, |t| {
        t.stop();
        Ok(())
    })
    .await;
    Ok(History {
        store: store.to_owned(),
        instances: options.instances,
        weakened: options.serve_cached.then(|| "serve-cached".to_owned()),
        length,
        ops: world.take_ops(),
        faults: faults?,
    })
}

/// 20 customers with 5 sessions each, 50 well-formed tokens never issued, and the
/// probe's own customer, whose id it returns.
async fn populate(
    world: &World,
    rng: &mut Rng,
) -> Result<tower_customer_session::uuid::Uuid, String> {
    let n = world.instances();
    let format = TokenFormat::polar();
    {
        let mut pool = world.pool();
        for _ in 0..50 {
            let raw = format
                .generate(TokenKind::Customer)
                .map_err(|e| e.to_string())?;
            let token = world.token(raw.expose_secret().to_owned());
            pool.unknown.push(token);
        }
    }
    for c in 0..20 {
        let id = traffic::add_customer(world, c % n)
            .await
            .ok_or("could not add a customer before the run")?;
        let mut live = Vec::new();
        for _ in 0..5 {
            let token = traffic::create(world, rng.below(n), id, None)
                .await
                .ok_or("could not create a session before the run")?;
            live.push(token);
        }
        let mut pool = world.pool();
        pool.live.extend(live.iter().cloned());
        pool.customers.push(Customer {
            id,
            busy: false,
            live,
        });
    }
    traffic::add_customer(world, 0)
        .await
        .ok_or_else(|| "could not add the probe's customer".to_owned())
}

/// Inject each planned fault at its time, heal it after its length, and wait out the
/// last healthy period. Returns the faults as they happened.
async fn inject(
    world: &World,
    schedule: &Schedule,
    topology: &Shared,
    proxies: &[Proxies],
    fleet: &mut Fleet,
) -> Result<Vec<Fault>, String> {
    let start = Instant::now();
    // How much later than planned the schedule runs: a heal that takes longer than
    // planned (a failover, a slow restart) keeps the healthy period after it whole.
    let mut late = Duration::ZERO;
    let mut faults = Vec::new();
    for planned in &schedule.faults {
        tokio::time::sleep_until((start + late + planned.at).into()).await;
        let at = world.now();
        let target = planned.instance.unwrap_or(0);
        match planned.kind {
            FaultKind::StoreKill => on(topology, |t| t.kill()).await?,
            FaultKind::StorePause => on(topology, |t| t.pause()).await?,
            FaultKind::Failover => on(topology, |t| t.failover()).await?,
            FaultKind::HangAll => proxies[target].set(Mode::HangAll),
            FaultKind::HangFeed => proxies[target].set(Mode::HangFeed),
            FaultKind::Reset => proxies[target].set(Mode::Reset),
            FaultKind::InstanceKill => fleet.kill(target).await?,
        }
        eprintln!(
            "  {:>6.1} s  {}{}",
            at / 1e3,
            planned.kind.name(),
            planned
                .instance
                .map_or(String::new(), |i| format!(" on instance {i}"))
        );
        if planned.kind == FaultKind::Failover {
            // The fault lasts as long as Sentinel takes to promote the replica; the old
            // primary comes back as soon as there is a new one to replicate.
            on(topology, |t| t.promoted()).await?;
        } else {
            tokio::time::sleep(planned.length).await;
        }
        let end = world.now();
        match planned.kind {
            FaultKind::StoreKill => on(topology, |t| t.restart()).await?,
            FaultKind::StorePause => on(topology, |t| t.resume()).await?,
            FaultKind::Failover => on(topology, |t| t.rejoin()).await?,
            FaultKind::HangAll | FaultKind::HangFeed | FaultKind::Reset => {
                proxies[target].set(Mode::Forward)
            }
            FaultKind::InstanceKill => fleet.spawn(target).await?,
        }
        faults.push(Fault {
            kind: planned.kind,
            instance: planned.instance,
            start: at,
            end,
            healed: world.now(),
        });
        let planned_heal = start + late + planned.at + planned.length;
        late += Instant::now().saturating_duration_since(planned_heal);
    }
    tokio::time::sleep_until((start + late + schedule.total).into()).await;
    Ok(faults)
}
