//! What the kit needs from a backend beyond the store traits: [`Backend`] for every store,
//! [`Issuer`] for a read-only one.

use std::fmt;
use std::future::Future;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::clock::ManualClock;
use crate::model::{Customer, Member};
use crate::store::SessionStore;
use crate::token::{SessionToken, TokenKind};

/// A fresh, empty backend for the kit to test, and the hooks it needs to test it properly.
///
/// The kit asks for a new one (through the closure given to [`run`](super::run)) for every
/// check. Implement it on a type of your test, such as a struct holding your store and the
/// means to break it, or on your store itself if it is `Clone`. Only [`Store`](Self::Store)
/// and [`store`](Self::store) are required; each other hook enables checks that are skipped
/// without it, and the [`Report`](super::Report) lists them with the hook that was missing.
///
/// ```
/// use tower_customer_session::testing::{self, Backend};
/// use tower_customer_session::{ManualClock, MemoryStore};
///
/// /// One fresh backend: the store, and the clock it judges expiry by.
/// struct Fixture {
///     store: MemoryStore,
///     clock: ManualClock,
/// }
///
/// impl Backend for Fixture {
///     type Store = MemoryStore;
///
///     fn store(&self) -> MemoryStore {
///         self.store.clone()
///     }
///
///     // The kit moves this clock to `expires_at` itself instead of waiting.
///     fn clock(&self) -> Option<ManualClock> {
///         Some(self.clock.clone())
///     }
///
///     // Everything the store keeps, searched for raw tokens.
///     async fn dump(&self) -> Option<String> {
///         self.store.dump().await
///     }
/// }
///
/// #[tokio::test]
/// async fn the_store_passes_the_test_kit() {
///     testing::run(|| async {
///         let clock = ManualClock::new(tower_customer_session::chrono::Utc::now());
///         let store = MemoryStore::with_clock(clock.clone());
///         Fixture { store, clock }
///     })
///     .await;
/// }
/// # fn main() {
/// #     let fresh = || async {
/// #         let clock = ManualClock::new(tower_customer_session::chrono::Utc::now());
/// #         Fixture { store: MemoryStore::with_clock(clock.clone()), clock }
/// #     };
/// #     let runtime = tokio::runtime::Runtime::new().unwrap();
/// #     runtime.block_on(testing::Kit::new(fresh).only("time").run()).assert_passed();
/// # }
/// ```
pub trait Backend {
    /// The store under test.
    type Store: SessionStore;

    /// A handle on this backend's data: the store the kit tests. Called at least once per
    /// check; a clone of one handle will do.
    fn store(&self) -> Self::Store;

    /// A second handle on the same data, opened as another process would open it: its own
    /// connections and, for a store with a feed, its own subscription (e.g. `connect` again
    /// with the same settings). The kit runs two instances on the store and this peer to
    /// check the feed, and creates through both at once.
    ///
    /// Default: `None`, for a store no other process can see
    /// ([`StoreScope::Process`](crate::store::StoreScope::Process)): the checks that need
    /// two instances are skipped.
    fn peer(&self) -> impl Future<Output = Option<Self::Store>> {
        async { None }
    }

    /// The manual clock the store judges expiry by, if it takes one (as
    /// [`MemoryStore::with_clock`](crate::MemoryStore::with_clock) does). The kit then moves
    /// it (and gives it to the managers it builds), so expiry is checked to the microsecond
    /// without waiting.
    ///
    /// Default: `None`: the kit reads [`now`](Self::now) and waits for sessions to expire,
    /// and skips the check that `expires_at` itself counts as expired, which needs an exact
    /// instant.
    fn clock(&self) -> Option<ManualClock> {
        None
    }

    /// The time the store judges expiry by, read now: the database's `now()` for a store
    /// that compares in SQL, the application host's clock for one that compares in Rust.
    /// The kit reads it just before and just after each load of its expiry checks, so they
    /// hold whatever the skew between the two. Not called when [`clock`](Self::clock) is
    /// `Some`.
    ///
    /// Default: [`Utc::now()`].
    fn now(&self) -> impl Future<Output = DateTime<Utc>> {
        async { Utc::now() }
    }

    /// Make the backend fail as an outage would (server stopped, network cut), for every
    /// handle of this backend and their feeds, until the returned [`Outage`] is dropped;
    /// then it must come back by itself (connections and feeds reconnect).
    ///
    /// Every call must then fail with an error, never answer "not found": the layer turns
    /// an error into `503`, but `Ok(None)` into `401`, and a swallowed error into a
    /// customer signed out (or, for a revocation, one still signed in). A TCP proxy in
    /// front of the server that a test can cut is one honest way; see the in-tree
    /// backends' tests.
    ///
    /// Default: `None`: the failure checks are skipped.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tower_customer_session::MemoryStore;
    /// use tower_customer_session::testing::{Backend, Outage};
    /// # #[derive(Default)]
    /// # struct Proxy;
    /// # impl Proxy { fn cut(&self) {} fn restore(&self) {} }
    ///
    /// /// Your store, connected to its server through `proxy`.
    /// struct Fixture {
    ///     store: MemoryStore,
    ///     proxy: Arc<Proxy>,
    /// }
    ///
    /// impl Backend for Fixture {
    ///     type Store = MemoryStore;
    ///
    ///     fn store(&self) -> MemoryStore {
    ///         self.store.clone()
    ///     }
    ///
    ///     async fn outage(&self) -> Option<Outage> {
    ///         self.proxy.cut();
    ///         let proxy = self.proxy.clone();
    ///         Some(Outage::new(move || proxy.restore()))
    ///     }
    /// }
    /// # let _ = Fixture { store: MemoryStore::new(), proxy: Arc::default() };
    /// ```
    fn outage(&self) -> impl Future<Output = Option<Outage>> {
        async { None }
    }

    /// Everything the backend keeps, as text: every key and value, every row, every file.
    /// The kit searches it for the raw token in plain text, hex and base64, after showing
    /// the store the token in loads.
    ///
    /// Default: `None`: that check is skipped.
    fn dump(&self) -> impl Future<Output = Option<String>> {
        async { None }
    }

    /// How many feed subscriptions are open on the backend now (Redis: `PUBSUB NUMSUB`
    /// of the channel; a Tokio broadcast channel: `receiver_count()`), so the kit can see a
    /// feed end with the manager that started it.
    ///
    /// Default: `None`: that check is skipped.
    fn feed_subscriptions(&self) -> impl Future<Output = Option<usize>> {
        async { None }
    }
}

/// How a read-only store's authority issues sessions, so the kit can test the store's
/// loads: for a store that implements [`SessionStore`] alone, such as one that asks an
/// upstream API. A full store needs none: the kit issues through its
/// [`SessionAdmin`](crate::SessionAdmin) and [`CustomerStore`](crate::CustomerStore).
///
/// Run the read-only part with [`run_read_only`](super::run_read_only). A fake of the
/// upstream in the test is the usual authority: it keeps what the kit adds, and the store
/// under test asks it.
pub trait Issuer: Backend {
    /// Keep `customer` at the authority, so sessions can be issued for it. Returns the
    /// customer as the store's loads will show it: `customer` itself, unless the store
    /// cannot see some of it.
    fn add_customer(&self, customer: Customer) -> impl Future<Output = Customer>;

    /// Issue a session at the authority as `request` asks, and say what was issued.
    fn issue(&self, request: IssueRequest) -> impl Future<Output = Issued>;

    /// Revoke the session of `token` at the authority.
    ///
    /// Default: `Err(Unsupported)`: the check that a revoked session stops loading is
    /// skipped.
    fn revoke(&self, token: &SessionToken) -> impl Future<Output = Result<(), Unsupported>> {
        let _ = token;
        async { Err(Unsupported) }
    }

    /// Soft-delete the customer at the authority.
    ///
    /// Default: `Err(Unsupported)`: the check that a deleted customer's sessions stop
    /// loading is skipped.
    fn delete_customer(&self, id: Uuid) -> impl Future<Output = Result<(), Unsupported>> {
        let _ = id;
        async { Err(Unsupported) }
    }
}

/// The authority cannot do what an [`Issuer`] hook asks; the check that needed it is
/// skipped, and the report says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsupported;

/// A session the kit wants issued at a read-only store's authority.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IssueRequest {
    /// The customer, added before with [`Issuer::add_customer`].
    pub customer_id: Uuid,
    /// Customer or member session.
    pub kind: TokenKind,
    /// For a member session, the member it acts for.
    pub member: Option<Member>,
    /// Where the portal sends the customer back to.
    pub return_url: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Absolute expiry.
    pub expires_at: DateTime<Utc>,
}

/// What an [`Issuer`] issued: the token to present, and what the store's `load` must
/// return for it. Start from [`Issued::as_requested`] and change what the authority does
/// differently.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Issued {
    /// The token the store will be shown.
    pub token: SessionToken,
    /// The session id the store returns, if the kit can know it in advance.
    pub id: Option<Uuid>,
    /// Customer or member session.
    pub kind: TokenKind,
    /// The creation time the store returns, if the kit can know it in advance.
    pub created_at: Option<DateTime<Utc>>,
    /// The expiry the store returns.
    pub expires_at: DateTime<Utc>,
    /// The return URL the store returns.
    pub return_url: Option<String>,
    /// The member the store returns, as much of it as the store can see.
    pub member: Option<Member>,
}

impl Issued {
    /// `token`, issued exactly as `request` asked, with an id the kit cannot know.
    pub fn as_requested(token: SessionToken, request: &IssueRequest) -> Self {
        Self {
            token,
            id: None,
            kind: request.kind,
            created_at: Some(request.created_at),
            expires_at: request.expires_at,
            return_url: request.return_url.clone(),
            member: request.member.clone(),
        }
    }
}

/// A backend made to fail by [`Backend::outage`]; dropping it ends the outage.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use tower_customer_session::testing::Outage;
///
/// let up = Arc::new(AtomicBool::new(false));
/// let outage = Outage::new({
///     let up = up.clone();
///     move || up.store(true, Ordering::SeqCst)
/// });
/// drop(outage);
/// assert!(up.load(Ordering::SeqCst));
/// ```
pub struct Outage {
    heal: Option<Box<dyn FnOnce()>>,
}

impl Outage {
    /// An outage that `heal` ends.
    pub fn new(heal: impl FnOnce() + 'static) -> Self {
        Self {
            heal: Some(Box::new(heal)),
        }
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        if let Some(heal) = self.heal.take() {
            heal();
        }
    }
}

impl fmt::Debug for Outage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outage")
            .field("ended", &self.heal.is_none())
            .finish()
    }
}
