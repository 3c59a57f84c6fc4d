//! Unit tests of the cache: the customer index, epochs, tombstones, aliases and bypass.

use super::*;
use crate::clock::ManualClock;
use crate::extension::CredentialSource;
use crate::model::CustomerData;
use crate::token::TokenKind;

fn cache() -> (SessionCache, ManualClock) {
    cache_with(1_000, Duration::from_secs(60))
}

fn cache_with(capacity: u64, max_ttl: Duration) -> (SessionCache, ManualClock) {
    let clock = ManualClock::new(chrono::Utc::now());
    let config = CacheConfig {
        capacity,
        max_ttl,
        negative_capacity: 100,
        negative_ttl: Duration::from_secs(5),
        revocation_memory: Duration::from_secs(3600),
    };
    (SessionCache::new(&config, Arc::new(clock.clone())), clock)
}

fn entry(clock: &ManualClock, customer: &Customer, n: u8) -> (TokenHash, Arc<CachedSession>) {
    let hash = TokenHash::from_bytes([n; 32]);
    let expires_at = clock.now() + chrono::TimeDelta::hours(1);
    let entry = CachedSession {
        presented: hash,
        customer: customer.clone(),
        info: SessionInfo {
            id: Uuid::new_v4(),
            customer_id: customer.id,
            expires_at,
            kind: TokenKind::Customer,
            source: CredentialSource::Header,
            return_url: None,
            token_hash: hash,
            member: None,
        },
        expires_at_micros: expires_at.timestamp_micros(),
        customer_active: true,
    };
    (hash, Arc::new(entry))
}

fn insert(cache: &SessionCache, (hash, entry): (TokenHash, Arc<CachedSession>)) -> Insert {
    let epoch = cache.epoch(&hash);
    cache.insert_if_current(hash, entry, epoch, None)
}

fn customer() -> Customer {
    Customer::new(CustomerData::new(chrono::Utc::now()))
}

impl CachedSession {
    fn clone_for_test(&self) -> Self {
        Self {
            presented: self.presented,
            customer: self.customer.clone(),
            info: self.info.clone(),
            expires_at_micros: self.expires_at_micros,
            customer_active: self.customer_active,
        }
    }
}

fn is_hit(cache: &SessionCache, hash: &TokenHash) -> bool {
    matches!(cache.lookup(hash, |_| ()), Lookup::Hit(_))
}

#[test]
fn invalidate_customer_drops_exactly_that_customers_entries() {
    let (cache, clock) = cache();
    let (jane, john) = (customer(), customer());
    for n in 0..3 {
        assert_eq!(insert(&cache, entry(&clock, &jane, n)), Insert::Cached);
    }
    assert_eq!(insert(&cache, entry(&clock, &john, 9)), Insert::Cached);
    assert_eq!(cache.by_customer.len(), 4);

    cache.invalidate_customer(jane.id);
    for n in 0..3 {
        assert!(!is_hit(&cache, &TokenHash::from_bytes([n; 32])));
    }
    assert!(is_hit(&cache, &TokenHash::from_bytes([9; 32])));
    cache.positive.run_pending_tasks();
    assert_eq!(
        cache.by_customer.len(),
        1,
        "only John's entry stays indexed"
    );
}

#[test]
fn a_late_eviction_notice_does_not_unlist_the_entry_that_replaced_it() {
    let (cache, clock) = cache();
    let jane = customer();
    insert(&cache, entry(&clock, &jane, 1));
    // `invalidate_all` notifies lazily; the same key is cached again before it does.
    cache.invalidate_all();
    insert(&cache, entry(&clock, &jane, 1));
    cache.positive.run_pending_tasks();
    cache.invalidate_customer(jane.id);
    assert!(
        !is_hit(&cache, &TokenHash::from_bytes([1; 32])),
        "the re-inserted entry was still indexed, so the customer invalidation found it"
    );
}

#[test]
fn an_insert_that_raced_a_revocation_is_refused() {
    let (cache, clock) = cache();
    let (hash, value) = entry(&clock, &customer(), 1);
    let epoch = cache.epoch(&hash);
    cache.invalidate(&hash);
    assert_eq!(
        cache.insert_if_current(hash, value, epoch, None),
        Insert::Raced
    );
    assert!(!is_hit(&cache, &hash));
}

#[test]
fn tombstones_keep_unconfirmed_revocations_out_of_the_cache() {
    let (cache, clock) = cache();
    let (jane, john) = (customer(), customer());
    let janes = entry(&clock, &jane, 1);
    cache.tombstone(janes.0);
    assert_eq!(insert(&cache, janes.clone()), Insert::Skipped);
    assert!(!is_hit(&cache, &janes.0));

    cache.tombstone_customer(john.id);
    assert_eq!(insert(&cache, entry(&clock, &john, 2)), Insert::Skipped);
    assert_eq!(insert(&cache, entry(&clock, &jane, 3)), Insert::Cached);
}

#[test]
fn a_bypassed_cache_neither_answers_nor_fills() {
    let (cache, clock) = cache();
    let jane = customer();
    let cached = entry(&clock, &jane, 1);
    insert(&cache, cached.clone());
    cache.insert_negative(TokenHash::from_bytes([7; 32]), InvalidToken::Unknown);
    cache.set_bypass(true);
    assert!(matches!(cache.lookup(&cached.0, |_| ()), Lookup::Miss));
    assert!(matches!(
        cache.lookup(&TokenHash::from_bytes([7; 32]), |_| ()),
        Lookup::Miss
    ));
    assert_eq!(insert(&cache, entry(&clock, &jane, 2)), Insert::Skipped);
    cache.set_bypass(false);
    assert!(
        !is_hit(&cache, &TokenHash::from_bytes([2; 32])),
        "nothing was cached meanwhile"
    );
}

#[test]
fn feed_invalidations_apply_like_local_ones() {
    let (cache, clock) = cache();
    let jane = customer();
    let first = entry(&clock, &jane, 1);
    let second = entry(&clock, &jane, 2);
    insert(&cache, first.clone());
    insert(&cache, second.clone());
    let epoch = cache.epoch(&first.0);
    cache.apply(Invalidation::Session(first.0));
    assert!(!is_hit(&cache, &first.0));
    assert!(is_hit(&cache, &second.0));
    assert_eq!(
        cache.insert_if_current(first.0, first.1, epoch, None),
        Insert::Raced
    );
    cache.apply(Invalidation::Customer(jane.id));
    assert!(!is_hit(&cache, &second.0));
}

#[test]
fn a_customer_invalidation_disturbs_only_that_customers_loads() {
    let (cache, clock) = cache();
    let (jane, john) = (customer(), customer());
    let (janes, johns) = (entry(&clock, &jane, 1), entry(&clock, &john, 2));
    let (jane_epoch, john_epoch) = (cache.epoch(&janes.0), cache.epoch(&johns.0));
    // A stream of other customers' invalidations while both loads are in flight.
    for _ in 0..1_000 {
        cache.invalidate_customer(Uuid::new_v4());
    }
    cache.invalidate_customer(jane.id);
    assert_eq!(
        cache.insert_if_current(janes.0, janes.1, jane_epoch, None),
        Insert::Raced,
        "Jane's load raced her own invalidation"
    );
    assert_eq!(
        cache.insert_if_current(johns.0, johns.1, john_epoch, None),
        Insert::Cached,
        "John's load is not disturbed by anybody else's"
    );
}

#[test]
fn a_feed_message_for_a_session_also_clears_its_negative_entry() {
    let (cache, _) = cache();
    let hash = TokenHash::from_bytes([4; 32]);
    cache.insert_negative(hash, InvalidToken::Unknown);
    assert!(matches!(cache.lookup(&hash, |_| ()), Lookup::Negative(_)));
    cache.apply(Invalidation::Session(hash));
    assert!(
        matches!(cache.lookup(&hash, |_| ()), Lookup::Miss),
        "a revocation undone elsewhere is asked again, not refused for the negative TTL"
    );
}

#[test]
fn a_flood_of_failed_revocations_never_lets_a_real_one_be_cached() {
    let (cache, clock) = cache();
    let jane = customer();
    let real = entry(&clock, &jane, 1);
    cache.tombstone(real.0);
    for n in 0..(tombstones::CAPACITY as u32 + 100) {
        let mut bytes = [0xee; 32];
        bytes[..4].copy_from_slice(&n.to_le_bytes());
        cache.tombstone(TokenHash::from_bytes(bytes));
    }
    assert_eq!(insert(&cache, real.clone()), Insert::Skipped);
    assert!(!is_hit(&cache, &real.0));
    assert_eq!(
        insert(&cache, entry(&clock, &customer(), 9)),
        Insert::Skipped,
        "with the record full, nothing is cached"
    );
}

#[test]
fn a_session_found_under_an_older_key_goes_with_its_stored_hash() {
    let (cache, clock) = cache();
    let jane = customer();
    let (presented, entry) = entry(&clock, &jane, 1);
    let stored = TokenHash::from_bytes([2; 32]);
    let aliased = || {
        let mut copy = CachedSession::clone_for_test(&entry);
        copy.info.token_hash = stored;
        Arc::new(copy)
    };

    // A revocation of the stored hash while the load was in flight: not cached.
    let epoch = cache.epoch(&presented);
    let stored_epoch = cache.session_epoch(&stored);
    cache.invalidate(&stored);
    assert_eq!(
        cache.insert_if_current(presented, aliased(), epoch, Some((stored, stored_epoch))),
        Insert::Raced
    );

    // Cached under the presented hash; a revocation naming the stored one drops it.
    let epoch = cache.epoch(&presented);
    let stored_epoch = cache.session_epoch(&stored);
    assert_eq!(
        cache.insert_if_current(presented, aliased(), epoch, Some((stored, stored_epoch))),
        Insert::Cached
    );
    assert!(is_hit(&cache, &presented));
    cache.apply(Invalidation::Session(stored));
    assert!(!is_hit(&cache, &presented));
}

#[test]
fn the_front_holds_what_moka_holds() {
    let (cache, clock) = cache_with(8, Duration::from_secs(60));
    for n in 0..200u8 {
        insert(&cache, entry(&clock, &customer(), n));
    }
    cache.positive.run_pending_tasks();
    let held = cache.positive.entry_count() as usize;
    assert!(held <= 8);
    assert_eq!(
        cache.front.len(),
        held,
        "every entry moka evicted or refused left the front too"
    );
    assert_eq!(cache.by_customer.len(), held);
}

#[test]
fn a_front_slot_is_not_served_past_max_ttl_before_moka_sweeps_it() {
    let (cache, clock) = cache_with(1_000, Duration::from_millis(30));
    let (hash, value) = entry(&clock, &customer(), 1);
    insert(&cache, (hash, value));
    assert!(is_hit(&cache, &hash));
    std::thread::sleep(Duration::from_millis(40));
    // No moka call in between: only the slot's own deadline can refuse it.
    assert!(!is_hit(&cache, &hash));
}

#[test]
fn a_front_slot_is_not_served_past_the_sessions_end() {
    let (cache, clock) = cache();
    let (hash, value) = entry(&clock, &customer(), 1);
    let mut short = CachedSession::clone_for_test(&value);
    short.info.expires_at = clock.now() + chrono::TimeDelta::milliseconds(30);
    insert(&cache, (hash, Arc::new(short)));
    assert!(is_hit(&cache, &hash));
    std::thread::sleep(Duration::from_millis(40));
    assert!(
        !is_hit(&cache, &hash),
        "the session had 30 ms left when it was cached, whatever the cache's clock says now"
    );
}

#[test]
fn a_late_refusal_does_not_hide_a_cached_session() {
    let (cache, clock) = cache();
    let cached = entry(&clock, &customer(), 1);
    insert(&cache, cached.clone());
    cache.insert_negative(cached.0, InvalidToken::Unknown);
    assert!(is_hit(&cache, &cached.0), "the session still answers");
    cache.invalidate(&cached.0);
    cache.insert_negative(cached.0, InvalidToken::Expired);
    assert!(matches!(
        cache.lookup(&cached.0, |_| ()),
        Lookup::Negative(InvalidToken::Expired)
    ));
}

#[test]
fn a_refusal_cached_again_stays_in_front() {
    let (cache, _) = cache();
    let hash = TokenHash::from_bytes([5; 32]);
    cache.insert_negative(hash, InvalidToken::Unknown);
    cache.insert_negative(hash, InvalidToken::Unknown);
    cache.negative.as_ref().unwrap().run_pending_tasks();
    assert!(
        matches!(cache.lookup(&hash, |_| ()), Lookup::Negative(_)),
        "moka's notice for the refusal it replaced did not drop the new one"
    );
}
