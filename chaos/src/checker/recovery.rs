//! Recovery: after each fault, how soon a probe round passed.
//!
//! A probe round creates a session through one instance, has every instance serve it,
//! revokes it through another, and has every instance refuse it; it passes when each step
//! succeeded and no instance accepted the session later than the live-feed bound after the
//! revocation (the revoking instance: at once). A fault is recovered from when the first
//! round that started after its heal has passed; its recovery time is counted from the
//! heal, or for a failover (which heals by itself) from the kill.

use std::collections::BTreeMap;

use super::{Reach, Report, Rule, Violation};
use crate::bounds::{self, Origin, ms};
use crate::history::{Fault, History, Kind, Op, Outcome};

/// A probe round's span, and whether it passed.
#[derive(Debug, Clone, Copy)]
pub struct Round {
    pub start: f64,
    pub end: f64,
    pub passed: bool,
}

fn judge(ops: &[&Op], instances: usize) -> Round {
    let start = ops.iter().map(|o| o.start).fold(f64::INFINITY, f64::min);
    let end = ops.iter().map(|o| o.end).fold(f64::NEG_INFINITY, f64::max);
    let created = ops.iter().any(|o| o.kind == Kind::Create && o.outcome.ok());
    let revocation = ops.iter().find(|o| o.kind.revokes() && o.outcome.ok());
    let passed = created
        && revocation.is_some_and(|revocation| {
            let r = revocation.end;
            (0..instances).all(|i| {
                let on = |o: &&&Op| o.kind == Kind::Auth && o.instance == Some(i);
                let served = ops
                    .iter()
                    .filter(on)
                    .any(|o| o.end <= revocation.start && o.outcome.ok());
                let bound = if revocation.instance == Some(i) {
                    Reach::Same.bound()
                } else {
                    Reach::Feed.bound()
                };
                let after: Vec<_> = ops.iter().filter(on).filter(|o| o.start >= r).collect();
                let refused = after.iter().any(|o| o.outcome == Outcome::Status(401));
                let late = after.iter().any(|o| o.outcome.ok() && o.start - r > bound);
                served && refused && !late
            })
        });
    Round { start, end, passed }
}

/// Every probe round of the history, in order of start.
pub fn rounds(history: &History) -> Vec<Round> {
    let mut by_round: BTreeMap<u64, Vec<&Op>> = BTreeMap::new();
    for op in &history.ops {
        if let Some(round) = op.probe {
            by_round.entry(round).or_default().push(op);
        }
    }
    let mut rounds: Vec<Round> = by_round
        .values()
        .map(|ops| judge(ops, history.instances))
        .collect();
    rounds.sort_by(|a, b| a.start.total_cmp(&b.start));
    rounds
}

/// Recovery times into the figures; a fault not recovered from in time is a violation.
pub fn check(history: &History, faults: &[Fault], report: &mut Report) {
    let rounds = rounds(history);
    report.figures.probe_rounds = (
        rounds.iter().filter(|r| r.passed).count() as u64,
        rounds.len() as u64,
    );
    for (n, fault) in faults.iter().enumerate() {
        let (origin, bound) = bounds::recovery(&history.store, fault.kind);
        let (goal, from) = match origin {
            Origin::Injected => (ms(bound), fault.start),
            Origin::Healed => (ms(bound), fault.end),
        };
        let window_end = faults.get(n + 1).map_or(history.length, |next| next.start);
        let recovered = rounds
            .iter()
            .filter(|r| r.passed && r.start >= fault.end && r.end <= window_end)
            .map(|r| r.end - from)
            .min_by(f64::total_cmp);
        report
            .figures
            .recoveries
            .entry(fault.kind)
            .or_default()
            .push(recovered);
        let detail = match recovered {
            Some(took) if took <= goal => continue,
            Some(took) => format!(
                "{} {} at {:.1} s: recovered only after {:.1} s (goal {:.0} s)",
                fault.kind.name(),
                if origin == Origin::Injected {
                    "injected"
                } else {
                    "healed"
                },
                from / 1e3,
                took / 1e3,
                goal / 1e3
            ),
            None => format!(
                "{} healed at {:.1} s: no probe round passed in the {:.1} s before {}",
                fault.kind.name(),
                fault.end / 1e3,
                (window_end - fault.end) / 1e3,
                if n + 1 < faults.len() {
                    "the next fault"
                } else {
                    "the end of the run"
                }
            ),
        };
        report.violations.push(Violation {
            rule: Rule::Recovery,
            at: fault.end,
            instance: fault.instance,
            token: None,
            detail,
        });
    }
}
