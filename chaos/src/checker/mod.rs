//! The checker: the whole history against the documented guarantees.
//!
//! Rules (each broken one is a [`Violation`]):
//!
//! - **late accept**: a request that started after a revocation returned `Ok`, plus the
//!   bound for its instance ([`Reach`]), was answered `200`;
//! - **never issued**: a token no create returned was answered `200`;
//! - **live refused**: a session created before the request started, with no revocation
//!   attempted before it ended, was answered `401`;
//! - **lost session**: revoking a live session found nothing to revoke;
//! - **unavailable**: a `503` (or a failed call of the other program) outside every fault
//!   that touches its instance and the [recovery time](bounds::recovery) after it;
//! - **dropped**: no response, outside a kill of that instance and its recovery time;
//! - **other status**: anything but 200, 401 and 503 (admin calls: 200 and 503);
//! - **hung**: an answer later than the store deadline plus slack;
//! - **recovery**: after a fault, no probe round (a fresh session served by every
//!   instance, revoked, then refused by every instance within the live-feed bound) passed
//!   within the recovery time (counted from the heal; for a failover, from the kill), or
//!   before the next fault.

mod recovery;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::bounds::{self, ms};
use crate::history::{FaultKind, History, Kind, Op, Outcome};

/// A broken rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    LateAccept,
    NeverIssued,
    LiveRefused,
    LostSession,
    Unavailable,
    Dropped,
    OtherStatus,
    Hung,
    Recovery,
}

impl Rule {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Rule::LateAccept => "late accept",
            Rule::NeverIssued => "never-issued token accepted",
            Rule::LiveRefused => "live session refused (401)",
            Rule::LostSession => "lost session",
            Rule::Unavailable => "503 without a fault",
            Rule::Dropped => "dropped without a fault",
            Rule::OtherStatus => "other status",
            Rule::Hung => "hung request",
            Rule::Recovery => "recovery",
        }
    }
}

/// One broken rule, where and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub rule: Rule,
    /// Ms since the start of the run.
    pub at: f64,
    pub instance: Option<usize>,
    /// Hash prefix of the token concerned.
    pub token: Option<String>,
    pub detail: String,
}

/// How a revocation reaches an instance, and so how soon the instance must refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reach {
    /// The instance that made it: at once.
    Same,
    /// Over a live feed: within [`bounds::FEED`].
    Feed,
    /// A feed left silent by a fault: within [`bounds::SILENCE`] plus slack.
    Silent,
}

impl Reach {
    /// The bound, in ms.
    pub fn bound(self) -> f64 {
        match self {
            Reach::Same => 0.0,
            Reach::Feed => ms(bounds::FEED),
            Reach::Silent => ms(bounds::SILENCE + bounds::SCHEDULING_SLACK),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Reach::Same => "same instance",
            Reach::Feed => "live feed",
            Reach::Silent => "silent feed",
        }
    }
}

/// Lags of the revocations of one phase and reach.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lags {
    /// (revocation, token, instance) triples.
    pub pairs: u64,
    /// Of those, how many an answer other than 200 was seen for after the revocation.
    pub refused: u64,
    /// Latest start of an accepted request after the revocation returned, ms after it.
    pub max_accept: f64,
    /// Latest end of the first answer other than 200 after the revocation returned, ms
    /// after it (an upper bound of the lag, for pairs the harness followed up).
    pub max_refusal: f64,
}

/// What the run did, for the report.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// Requests (`GET /me`) by phase, then by outcome label.
    pub requests: BTreeMap<String, BTreeMap<String, u64>>,
    /// Other operations by kind: (ok, failed).
    pub operations: BTreeMap<Kind, (u64, u64)>,
    pub faults: BTreeMap<FaultKind, u64>,
    /// By fault kind: how long each heal took until the store or instance answered (ms).
    pub heals: BTreeMap<FaultKind, Vec<f64>>,
    /// By fault kind: how long each lasted, from its injection to its heal (ms).
    pub lasted: BTreeMap<FaultKind, Vec<f64>>,
    /// By (phase of the revocation, reach).
    pub lags: BTreeMap<(String, Reach), Lags>,
    /// By fault kind: the recovery time of each fault (ms), `None` if none was seen.
    pub recoveries: BTreeMap<FaultKind, Vec<Option<f64>>>,
    pub probe_rounds: (u64, u64),
}

/// The checker's verdict.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub figures: Figures,
    pub violations: Vec<Violation>,
}

impl Report {
    pub fn count(&self, rule: Rule) -> usize {
        self.violations.iter().filter(|v| v.rule == rule).count()
    }
}

/// Each token's creation and revocations.
#[derive(Default)]
struct TokenFacts<'h> {
    /// End of the create that returned it.
    created: Option<f64>,
    /// Start of the first revocation attempt of any outcome.
    first_attempt: Option<f64>,
    /// Revocations that returned `Ok`.
    revoked: Vec<&'h Op>,
}

fn overlaps(op: &Op, from: f64, to: f64) -> bool {
    op.start <= to && op.end >= from
}

/// Check a whole history.
pub fn check(history: &History) -> Report {
    let mut report = Report::default();
    let mut faults = history.faults.clone();
    faults.sort_by(|a, b| a.start.total_cmp(&b.start));
    for fault in &faults {
        *report.figures.faults.entry(fault.kind).or_default() += 1;
        let heals = report.figures.heals.entry(fault.kind).or_default();
        heals.push(fault.healed - fault.end);
        let lasted = report.figures.lasted.entry(fault.kind).or_default();
        lasted.push(fault.end - fault.start);
    }
    let phase = |at: f64| -> String {
        faults
            .iter()
            .find(|f| f.start <= at && at <= f.end)
            .map_or("healthy", |f| f.kind.name())
            .to_owned()
    };

    let mut facts: HashMap<&str, TokenFacts> = HashMap::new();
    for op in &history.ops {
        if op.kind == Kind::Create && op.outcome.ok() {
            for token in &op.tokens {
                let created = &mut facts.entry(token).or_default().created;
                *created = Some(created.map_or(op.end, |c| c.min(op.end)));
            }
        }
        if op.kind.revokes() {
            for token in &op.tokens {
                let fact = facts.entry(token).or_default();
                fact.first_attempt = Some(fact.first_attempt.map_or(op.start, |a| a.min(op.start)));
                if op.outcome.ok() {
                    fact.revoked.push(op);
                }
            }
        }
    }

    // How a revocation reaches `instance`.
    let reach = |instance: usize, revocation: &Op| -> Reach {
        let r = revocation.end;
        if revocation.kind != Kind::SqlRevoke && revocation.instance == Some(instance) {
            Reach::Same
        } else if faults.iter().any(|f| {
            f.silences(instance)
                && f.start <= r + Reach::Silent.bound()
                && f.end + ms(bounds::SILENCE) >= r
        }) {
            Reach::Silent
        } else {
            Reach::Feed
        }
    };

    let explained = |op: &Op, dropped: bool| {
        faults.iter().any(|f| {
            let fits = if dropped {
                f.kind == FaultKind::InstanceKill && f.instance == op.instance
            } else {
                f.affects(op.instance)
            };
            fits && overlaps(op, f.start, bounds::recovery_end(&history.store, f))
        })
    };
    let hung_after = ms(bounds::STORE_DEADLINE + bounds::REQUEST_SLACK);

    // (token, instance) → its requests, for the lag figures.
    let mut requests: HashMap<(&str, usize), Vec<&Op>> = HashMap::new();
    for op in &history.ops {
        let violation = |rule, detail: String| Violation {
            rule,
            at: op.start,
            instance: op.instance,
            token: op.tokens.first().cloned(),
            detail,
        };
        if op.kind == Kind::Auth {
            let label = match &op.outcome {
                Outcome::Status(status) => status.to_string(),
                Outcome::Dropped(_) => "dropped".to_owned(),
            };
            *report
                .figures
                .requests
                .entry(phase(op.start))
                .or_default()
                .entry(label)
                .or_default() += 1;
        } else {
            let entry = report.figures.operations.entry(op.kind).or_default();
            if op.outcome.ok() {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
        if op.end - op.start > hung_after && op.kind != Kind::SqlRevoke {
            report.violations.push(violation(
                Rule::Hung,
                format!("{:?} answered after {:.0} ms", op.kind, op.end - op.start),
            ));
        }
        match &op.outcome {
            Outcome::Status(200 | 401) if op.kind == Kind::Auth => {}
            Outcome::Status(200) => {}
            Outcome::Status(503) => {
                if !explained(op, false) {
                    report.violations.push(violation(
                        Rule::Unavailable,
                        format!("{:?} answered 503 with no fault in reach", op.kind),
                    ));
                }
            }
            Outcome::Dropped(why) => {
                if !explained(op, true) {
                    report.violations.push(violation(
                        Rule::Dropped,
                        format!("{:?} got no response: {why}", op.kind),
                    ));
                }
            }
            Outcome::Status(other) => report.violations.push(violation(
                Rule::OtherStatus,
                format!("{:?} answered {other}", op.kind),
            )),
        }
        if matches!(op.kind, Kind::Revoke | Kind::SqlRevoke)
            && op.outcome.ok()
            && op.count == Some(0)
        {
            let token = op.tokens.first().map(String::as_str).unwrap_or_default();
            if let Some(fact) = facts.get(token) {
                // The first attempt is this one unless an earlier one may have revoked it.
                let earlier = fact.first_attempt.is_some_and(|a| a < op.start);
                if fact.created.is_some_and(|c| c <= op.start) && !earlier {
                    report.violations.push(violation(
                        Rule::LostSession,
                        "revoking a live session found none".to_owned(),
                    ));
                }
            }
        }
        if op.kind != Kind::Auth {
            continue;
        }
        let (Some(instance), Some(token)) = (op.instance, op.tokens.first()) else {
            continue;
        };
        requests.entry((token, instance)).or_default().push(op);
        let fact = facts.get(token.as_str());
        match op.outcome {
            Outcome::Status(200) => {
                let Some(fact) = fact.filter(|f| f.created.is_some()) else {
                    report.violations.push(violation(
                        Rule::NeverIssued,
                        "a token no create returned was accepted".to_owned(),
                    ));
                    continue;
                };
                let worst = fact
                    .revoked
                    .iter()
                    .map(|r| (op.start - r.end, reach(instance, r), *r))
                    .filter(|(lag, reach, _)| *lag > reach.bound())
                    .max_by(|a, b| (a.0 - a.1.bound()).total_cmp(&(b.0 - b.1.bound())));
                if let Some((lag, reach, revocation)) = worst {
                    report.violations.push(violation(
                        Rule::LateAccept,
                        format!(
                            "accepted {lag:.1} ms after {:?} through {} returned (bound {:.0} ms, {}; phase {})",
                            revocation.kind,
                            instance_name(revocation.instance),
                            reach.bound(),
                            reach.name(),
                            phase(revocation.end),
                        ),
                    ));
                }
            }
            Outcome::Status(401) => {
                if let Some(fact) = fact {
                    let live = fact.created.is_some_and(|c| c <= op.start)
                        && fact.first_attempt.is_none_or(|a| a > op.end);
                    if live {
                        report.violations.push(violation(
                            Rule::LiveRefused,
                            "a live session was answered 401".to_owned(),
                        ));
                    }
                }
            }
            _ => {}
        }
    }

    // Lags, by the phase of the revocation and how it reaches each instance.
    let mut seen: HashSet<(*const Op, &str)> = HashSet::new();
    for (token, fact) in &facts {
        for revocation in &fact.revoked {
            if !seen.insert((*revocation as *const Op, token)) {
                continue;
            }
            for instance in 0..history.instances {
                let how = reach(instance, revocation);
                let lags = report
                    .figures
                    .lags
                    .entry((phase(revocation.end), how))
                    .or_default();
                lags.pairs += 1;
                let Some(ops) = requests.get(&(*token, instance)) else {
                    continue;
                };
                let r = revocation.end;
                for op in ops.iter().filter(|op| op.start >= r && op.outcome.ok()) {
                    lags.max_accept = lags.max_accept.max(op.start - r);
                }
                // Any answer but 200 (a 503, none from a killed instance) serves nothing:
                // the rules are about accepting.
                if let Some(first) = ops
                    .iter()
                    .filter(|op| op.start >= r && !op.outcome.ok())
                    .map(|op| op.end - r)
                    .min_by(f64::total_cmp)
                {
                    lags.refused += 1;
                    lags.max_refusal = lags.max_refusal.max(first);
                }
            }
        }
    }

    recovery::check(history, &faults, &mut report);
    report
        .violations
        .sort_by(|a, b| a.at.total_cmp(&b.at).then(a.rule.cmp(&b.rule)));
    report
}

pub fn instance_name(instance: Option<usize>) -> String {
    instance.map_or_else(|| "the SQL program".to_owned(), |i| format!("instance {i}"))
}
