//! The `webhook-id`s of deliveries [`PolarWebhooks`](super::PolarWebhooks) has applied, so
//! that the same delivery arriving again is acknowledged without being applied twice.
//!
//! Bounded: at capacity the id recorded first is forgotten to make room. Forgetting is the
//! safe side here: applying a delivery twice only drops cached sessions again, while
//! refusing one would hold back an invalidation.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

pub(super) struct Replays {
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Id → the last Unix second it is remembered for.
    until: HashMap<Arc<str>, i64>,
    /// Ids in the order recorded, each with the `until` it was recorded with. An id recorded
    /// again (after it lapsed) appears twice; only its latest entry counts in `until`.
    order: VecDeque<(i64, Arc<str>)>,
}

impl Replays {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            state: Mutex::default(),
        }
    }

    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Edited one call at a time, with nothing in between that can panic halfway.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `id` is new at Unix time `now`. Either way it is remembered until `until`
    /// (inclusive) at least. A `false` is a replay: acknowledge it, apply nothing.
    pub(super) fn first(&self, id: &str, until: i64, now: i64) -> bool {
        if self.capacity == 0 {
            return true;
        }
        let mut state = self.lock();
        while state.order.front().is_some_and(|(until, _)| *until < now) {
            state.pop_front();
        }
        let known = state.until.get(id).copied().filter(|&known| known >= now);
        if known.is_some_and(|known| known >= until) {
            return false;
        }
        // New, or a copy that stays valid longer: recorded (again) with the later `until`.
        while state.order.len() >= self.capacity {
            state.pop_front();
        }
        let id: Arc<str> = Arc::from(id);
        state.until.insert(id.clone(), until);
        state.order.push_back((until, id));
        known.is_none()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().until.len()
    }
}

impl State {
    fn pop_front(&mut self) {
        if let Some((until, id)) = self.order.pop_front() {
            // Only if this entry is the id's latest record.
            if self.until.get(&id) == Some(&until) {
                self.until.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_new_once_until_it_lapses() {
        let replays = Replays::new(8);
        assert!(replays.first("a", 100, 0));
        assert!(!replays.first("a", 100, 50));
        assert!(!replays.first("a", 100, 100), "remembered through `until`");
        assert!(replays.first("a", 300, 101), "lapsed: new again");
        assert!(!replays.first("a", 300, 200));
        assert_eq!(replays.len(), 1);
    }

    #[test]
    fn a_copy_valid_longer_extends_the_memory() {
        let replays = Replays::new(8);
        assert!(replays.first("a", 100, 0));
        assert!(!replays.first("a", 150, 50), "a replay, valid until 150");
        assert!(
            !replays.first("a", 120, 140),
            "still remembered past the first 100"
        );
        assert!(!replays.first("a", 150, 150));
        assert!(replays.first("a", 400, 151));
        assert_eq!(replays.len(), 1);
    }

    #[test]
    fn at_capacity_the_first_recorded_is_forgotten() {
        let replays = Replays::new(3);
        for id in ["a", "b", "c", "d"] {
            assert!(replays.first(id, 1_000, 0));
        }
        assert_eq!(replays.len(), 3);
        assert!(
            replays.first("a", 1_000, 1),
            "forgotten to make room: new again"
        );
        for id in ["c", "d", "a"] {
            assert!(!replays.first(id, 1_000, 1), "{id}");
        }
    }

    #[test]
    fn lapsed_ids_are_dropped() {
        let replays = Replays::new(4);
        assert!(replays.first("a", 10, 0));
        assert!(replays.first("b", 20, 0));
        assert!(replays.first("c", 60, 15), "a lapsed");
        assert_eq!(replays.len(), 2);
        assert!(replays.first("d", 60, 30), "b lapsed");
        assert_eq!(replays.len(), 2);
    }

    #[test]
    fn forgetting_an_ids_older_record_keeps_its_newer_one() {
        let replays = Replays::new(4);
        assert!(replays.first("long", 100, 0));
        assert!(replays.first("x", 5, 0));
        // "x" lapsed but sits behind "long": recorded again beside its old record.
        assert!(replays.first("x", 50, 10));
        assert!(replays.first("c", 100, 10));
        assert!(
            replays.first("d", 100, 10),
            "makes room by forgetting \"long\""
        );
        assert!(
            replays.first("e", 100, 10),
            "makes room by dropping x's older record"
        );
        assert!(!replays.first("x", 50, 11), "x's newer record still holds");
    }

    #[test]
    fn capacity_zero_remembers_nothing() {
        let replays = Replays::new(0);
        assert!(replays.first("a", 100, 0));
        assert!(replays.first("a", 100, 0));
        assert_eq!(replays.len(), 0);
    }
}
