//! The fault schedule: a warm-up, then faults one at a time, each followed by a healthy
//! period.

use std::time::Duration;

use crate::history::FaultKind;
use crate::rng::Rng;

/// One fault to inject.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// From the start of the schedule.
    pub at: Duration,
    pub kind: FaultKind,
    /// The instance, for a fault that hits one.
    pub instance: Option<usize>,
    pub length: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub faults: Vec<Planned>,
    /// The whole schedule, the last healthy period included.
    pub total: Duration,
}

/// Shapes of schedule.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub warm_up: Duration,
    pub fault: Duration,
    pub healthy: Duration,
    /// Fill this much with rounds of every kind, each round shuffled; `None`: one of each.
    pub duration: Option<Duration>,
}

impl Shape {
    /// The CI form: each kind once, 1.5 s each, 7 s healthy after each (a PostgreSQL
    /// restart after SIGKILL alone takes up to 4 s on a loaded machine).
    pub const SHORT: Shape = Shape {
        warm_up: Duration::from_secs(2),
        fault: Duration::from_millis(1500),
        healthy: Duration::from_secs(7),
        duration: None,
    };

    /// The long form over `seconds`: 4 s faults, 12 s healthy after each (longer than the
    /// recovery goal, so that it is what recoveries are held to).
    pub fn long(seconds: u64) -> Shape {
        Shape {
            warm_up: Duration::from_secs(5),
            fault: Duration::from_secs(4),
            healthy: Duration::from_secs(12),
            duration: Some(Duration::from_secs(seconds)),
        }
    }
}

/// Plan `kinds` over `instances` in `shape`.
pub fn plan(kinds: &[FaultKind], instances: usize, shape: Shape, rng: &mut Rng) -> Schedule {
    let slot = shape.fault + shape.healthy;
    let mut faults = Vec::new();
    let mut at = shape.warm_up;
    let mut round = kinds.to_vec();
    'rounds: loop {
        if shape.duration.is_some() {
            rng.shuffle(&mut round);
        }
        for &kind in &round {
            if shape.duration.is_some_and(|d| at + slot > d) {
                break 'rounds;
            }
            let instance = (!kind.store_wide()).then(|| rng.below(instances));
            faults.push(Planned {
                at,
                kind,
                instance,
                length: shape.fault,
            });
            at += slot;
        }
        if shape.duration.is_none() || round.is_empty() {
            break;
        }
    }
    let total = shape.duration.unwrap_or(at).max(at);
    Schedule { faults, total }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_short_form_has_each_kind_once_and_fits_in_a_minute() {
        let kinds = [FaultKind::StoreKill, FaultKind::HangFeed, FaultKind::Reset];
        let schedule = plan(&kinds, 3, Shape::SHORT, &mut Rng::new(1));
        let planned: Vec<_> = schedule.faults.iter().map(|p| p.kind).collect();
        assert_eq!(planned, kinds);
        assert_eq!(schedule.total, Duration::from_millis(2000 + 3 * 8500));
        assert_eq!(schedule.faults[0].instance, None);
        assert!(schedule.faults[1].instance.is_some_and(|i| i < 3));
    }

    #[test]
    fn the_long_form_repeats_every_kind_within_its_duration() {
        let kinds = [
            FaultKind::StoreKill,
            FaultKind::StorePause,
            FaultKind::HangAll,
        ];
        let schedule = plan(&kinds, 3, Shape::long(600), &mut Rng::new(7));
        assert_eq!(schedule.total, Duration::from_secs(600));
        assert_eq!(schedule.faults.len(), 37);
        for kind in kinds {
            let n = schedule.faults.iter().filter(|p| p.kind == kind).count();
            assert!(n >= 12, "{kind:?} {n} times");
        }
        let last = schedule.faults.last().unwrap();
        assert!(last.at + last.length + Duration::from_secs(12) <= schedule.total);
    }
}
