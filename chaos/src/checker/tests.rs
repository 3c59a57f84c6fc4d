//! The checker's power: histories that break each rule, and one that breaks none.

use super::{Reach, Rule, check};
use crate::history::{Fault, FaultKind, History, Kind, Op, Outcome};

fn op(kind: Kind, instance: usize, token: &str, start: f64, outcome: Outcome) -> Op {
    Op {
        start,
        end: start + 5.0,
        instance: Some(instance),
        kind,
        tokens: vec![token.to_owned()],
        outcome,
        count: kind.revokes().then_some(1),
        probe: None,
    }
}

fn ok() -> Outcome {
    Outcome::Status(200)
}

fn status(code: u16) -> Outcome {
    Outcome::Status(code)
}

fn auth(instance: usize, token: &str, start: f64, code: u16) -> Op {
    op(Kind::Auth, instance, token, start, status(code))
}

fn fault(kind: FaultKind, instance: Option<usize>, start: f64, end: f64) -> Fault {
    Fault {
        kind,
        instance,
        start,
        end,
        healed: end + 10.0,
    }
}

/// A probe round starting at `at`: created through 0, served by both instances, revoked
/// through 1 and refused by both.
fn probe(round: u64, at: f64) -> Vec<Op> {
    let token = format!("probe{round}");
    let mut ops = vec![
        op(Kind::Create, 0, &token, at, ok()),
        auth(0, &token, at + 10.0, 200),
        auth(1, &token, at + 10.0, 200),
        op(Kind::Revoke, 1, &token, at + 20.0, ok()),
        auth(0, &token, at + 30.0, 401),
        auth(1, &token, at + 30.0, 401),
    ];
    for o in &mut ops {
        o.probe = Some(round);
    }
    ops
}

/// Two instances; `t1` created through 0 at 0 ms and revoked through 0 at 1000 ms (it
/// returns at 1005 ms), served before and refused after by both.
fn base() -> History {
    History {
        store: "test".into(),
        instances: 2,
        weakened: None,
        length: 60_000.0,
        ops: vec![
            op(Kind::Create, 0, "t1", 0.0, ok()),
            auth(0, "t1", 100.0, 200),
            auth(1, "t1", 100.0, 200),
            op(Kind::Revoke, 0, "t1", 1000.0, ok()),
            auth(0, "t1", 1010.0, 401),
            auth(1, "t1", 1010.0, 401),
            auth(1, "unknown", 500.0, 401),
        ],
        faults: Vec::new(),
    }
}

fn rules(history: &History) -> Vec<Rule> {
    check(history).violations.iter().map(|v| v.rule).collect()
}

#[test]
fn a_correct_history_breaks_no_rule() {
    let mut history = base();
    // Accepted within the live-feed bound on the other instance: allowed.
    history.ops.push(auth(1, "t1", 1005.0 + 90.0, 200));
    // A fault, its 503s and a probe round that passes 2 s after the heal.
    history
        .faults
        .push(fault(FaultKind::StoreKill, None, 5000.0, 7000.0));
    history.ops.push(auth(1, "t1", 6000.0, 503));
    history.ops.extend(probe(1, 8000.0));
    let report = check(&history);
    assert_eq!(report.violations, Vec::new());
    let recovered = &report.figures.recoveries[&FaultKind::StoreKill];
    assert_eq!(recovered.len(), 1);
    assert!(
        (recovered[0].unwrap() - 1035.0).abs() < 1e-6,
        "{recovered:?}"
    );
}

#[test]
fn a_late_accept_on_another_instance_is_flagged() {
    let mut history = base();
    history.ops.push(auth(1, "t1", 1005.0 + 101.0, 200));
    assert_eq!(rules(&history), [Rule::LateAccept]);
    let report = check(&history);
    let lags = &report.figures.lags[&("healthy".to_owned(), Reach::Feed)];
    assert!((lags.max_accept - 101.0).abs() < 1e-6);
}

#[test]
fn the_revoking_instance_must_refuse_at_once() {
    let mut history = base();
    history.ops.push(auth(0, "t1", 1006.0, 200));
    assert_eq!(rules(&history), [Rule::LateAccept]);
}

#[test]
fn a_silenced_feed_has_the_silence_bound_and_no_more() {
    let mut history = base();
    history
        .faults
        .push(fault(FaultKind::HangFeed, Some(1), 900.0, 3000.0));
    history.ops.extend(probe(1, 3500.0));
    history.ops.push(auth(1, "t1", 1005.0 + 350.0, 200));
    assert_eq!(rules(&history), Vec::new());
    history.ops.push(auth(1, "t1", 1005.0 + 401.0, 200));
    assert_eq!(rules(&history), [Rule::LateAccept]);
    // The fault on instance 1 does not widen instance 0's bound.
    let mut other = base();
    other
        .faults
        .push(fault(FaultKind::HangFeed, Some(1), 900.0, 3000.0));
    other.ops.extend(probe(1, 3500.0));
    other.ops.push(op(Kind::Revoke, 1, "t1", 990.0, ok()));
    other.ops.push(auth(0, "t1", 995.0 + 150.0, 200));
    assert_eq!(rules(&other), [Rule::LateAccept]);
}

#[test]
fn an_accepted_token_nobody_issued_is_flagged() {
    let mut history = base();
    history.ops.push(auth(0, "forged", 300.0, 200));
    assert_eq!(rules(&history), [Rule::NeverIssued]);
}

#[test]
fn a_401_for_a_live_session_is_flagged() {
    let mut history = base();
    history.ops.push(auth(1, "t1", 400.0, 401));
    assert_eq!(rules(&history), [Rule::LiveRefused]);
    // Once a revocation was attempted (even one that failed) the session may be gone.
    let mut history = base();
    history
        .ops
        .push(op(Kind::Revoke, 1, "t1", 390.0, Outcome::Status(503)));
    history
        .faults
        .push(fault(FaultKind::StorePause, None, 300.0, 500.0));
    history.ops.extend(probe(1, 600.0));
    history.ops.push(auth(1, "t1", 400.0, 401));
    assert_eq!(rules(&history), Vec::new());
}

#[test]
fn a_503_without_a_fault_or_after_its_recovery_time_is_flagged() {
    let mut history = base();
    history.ops.push(auth(0, "t1", 500.0, 503));
    assert_eq!(rules(&history), [Rule::Unavailable]);

    // A stuck 503: the fault was healed at 7 s, its recovery time ended at 17 s.
    let mut history = base();
    history
        .faults
        .push(fault(FaultKind::StorePause, None, 5000.0, 7000.0));
    history.ops.extend(probe(1, 8000.0));
    history.ops.push(auth(1, "t2", 16_000.0, 503));
    assert_eq!(rules(&history), Vec::new());
    history.ops.push(auth(1, "t2", 17_500.0, 503));
    assert_eq!(rules(&history), [Rule::Unavailable]);

    // A fault on one instance explains nothing on another.
    let mut history = base();
    history
        .faults
        .push(fault(FaultKind::HangAll, Some(0), 5000.0, 7000.0));
    history.ops.extend(probe(1, 8000.0));
    history.ops.push(auth(1, "t2", 6000.0, 503));
    assert_eq!(rules(&history), [Rule::Unavailable]);
}

#[test]
fn a_dropped_request_needs_a_kill_of_its_instance() {
    let mut history = base();
    history
        .faults
        .push(fault(FaultKind::InstanceKill, Some(0), 5000.0, 7000.0));
    history.ops.extend(probe(1, 8000.0));
    history.ops.push(op(
        Kind::Auth,
        0,
        "t2",
        6000.0,
        Outcome::Dropped("refused".into()),
    ));
    assert_eq!(rules(&history), Vec::new());
    history.ops.push(op(
        Kind::Auth,
        1,
        "t2",
        6000.0,
        Outcome::Dropped("reset".into()),
    ));
    // A store fault explains a 503, never a dropped connection.
    history
        .faults
        .push(fault(FaultKind::StoreKill, None, 20_000.0, 22_000.0));
    history.ops.extend(probe(2, 23_000.0));
    history.ops.push(op(
        Kind::Auth,
        1,
        "t2",
        21_000.0,
        Outcome::Dropped("closed".into()),
    ));
    assert_eq!(rules(&history), [Rule::Dropped, Rule::Dropped]);
}

#[test]
fn any_other_status_is_flagged() {
    let mut history = base();
    history.ops.push(auth(0, "t1", 500.0, 500));
    history
        .ops
        .push(op(Kind::Revoke, 0, "t9", 600.0, Outcome::Status(404)));
    assert_eq!(rules(&history), [Rule::OtherStatus, Rule::OtherStatus]);
}

#[test]
fn a_request_past_the_store_deadline_is_flagged() {
    let mut history = base();
    history
        .faults
        .push(fault(FaultKind::StorePause, None, 5000.0, 7000.0));
    history.ops.extend(probe(1, 8000.0));
    let mut slow = auth(0, "t1", 5000.0, 503);
    slow.end = slow.start + 2100.0;
    history.ops.push(slow);
    assert_eq!(rules(&history), [Rule::Hung]);
}

#[test]
fn a_fault_without_recovery_is_flagged() {
    let mut history = base();
    history
        .faults
        .push(fault(FaultKind::HangAll, Some(1), 5000.0, 7000.0));
    assert_eq!(rules(&history), [Rule::Recovery]);
    // A round that fails (instance 1 never refuses) does not count.
    let mut failed = probe(1, 8000.0);
    failed.retain(|o| !(o.instance == Some(1) && o.outcome == Outcome::Status(401)));
    history.ops.extend(failed);
    assert_eq!(rules(&history), [Rule::Recovery]);
    // One that passes 11 s after the heal is too late.
    history.ops.extend(probe(2, 18_000.0));
    assert_eq!(rules(&history), [Rule::Recovery]);
    // Before the next fault, and within 10 s: recovered.
    history.ops.extend(probe(3, 9_000.0));
    assert_eq!(rules(&history), Vec::new());
    history
        .faults
        .push(fault(FaultKind::Reset, Some(0), 8_500.0, 8_600.0));
    // The round at 9 s now follows the reset, and the hang has none before the reset.
    assert_eq!(rules(&history), [Rule::Recovery]);
}

#[test]
fn revoking_a_live_session_that_is_gone_is_flagged() {
    let mut history = base();
    history.ops.push(op(Kind::Create, 1, "t2", 0.0, ok()));
    let mut revoke = op(Kind::Revoke, 1, "t2", 2000.0, ok());
    revoke.count = Some(0);
    history.ops.push(revoke);
    assert_eq!(rules(&history), [Rule::LostSession]);
}

#[test]
fn a_history_reads_back_as_written() {
    let mut history = base();
    history
        .faults
        .push(fault(FaultKind::HangFeed, Some(1), 900.0, 3000.0));
    history.ops.extend(probe(7, 3500.0));
    history.ops.push(op(
        Kind::Auth,
        1,
        "t1",
        5.0,
        Outcome::Dropped("reset".into()),
    ));
    let mut bytes = Vec::new();
    history.write(&mut bytes).unwrap();
    let read = History::read(&bytes[..]).unwrap();
    assert_eq!(read, history);
}

/// A failover from 5 s (the kill) to 7 s (the replica's promotion seen, the old primary
/// restarted as its replica).
fn failover() -> Fault {
    fault(FaultKind::Failover, None, 5000.0, 7000.0)
}

#[test]
fn a_failover_allows_503s_until_its_recovery_time_from_the_kill() {
    let mut history = base();
    history.faults.push(failover());
    history.ops.extend(probe(1, 8000.0));
    history.ops.push(auth(1, "t2", 6000.0, 503));
    history.ops.push(auth(0, "t2", 14_900.0, 503));
    assert_eq!(rules(&history), Vec::new());
    // Past 10 s from the kill, though within 10 s of the heal.
    history.ops.push(auth(0, "t2", 15_100.0, 503));
    assert_eq!(rules(&history), [Rule::Unavailable]);
    // The same 503 after a store-kill healed at 7 s is within its recovery time.
    let mut killed = history.clone();
    killed.faults[0].kind = FaultKind::StoreKill;
    assert_eq!(rules(&killed), Vec::new());
}

#[test]
fn a_failover_is_recovered_from_within_its_bound_of_the_kill() {
    let mut history = base();
    history.faults.push(failover());
    // The first passing round ends 14.535 s after the start: 9.5 s after the kill.
    history.ops.extend(probe(1, 14_500.0));
    let report = check(&history);
    assert_eq!(report.violations, Vec::new());
    let took = report.figures.recoveries[&FaultKind::Failover][0].unwrap();
    assert!((took - 9535.0).abs() < 1e-6, "{took}");
    // One that ends 10.5 s after the kill is too late, though 8.5 s after the heal.
    let mut late = base();
    late.faults.push(failover());
    late.ops.extend(probe(1, 15_500.0));
    assert_eq!(rules(&late), [Rule::Recovery]);
}

#[test]
fn a_revocation_before_a_failover_holds_through_it() {
    // Revoked through 0, returned at 4905 ms; the primary is killed at 5 s.
    let mut history = base();
    history.faults.push(failover());
    history.ops.extend(probe(1, 8000.0));
    history.ops.push(op(Kind::Create, 0, "t2", 0.0, ok()));
    history.ops.push(op(Kind::Revoke, 0, "t2", 4900.0, ok()));
    history.ops.push(auth(1, "t2", 4905.0 + 90.0, 200));
    assert_eq!(rules(&history), Vec::new());
    // A kill closes every feed: the live-feed bound, not the silent one, applies.
    let mut near = history.clone();
    near.ops.push(auth(1, "t2", 4905.0 + 150.0, 200));
    assert_eq!(rules(&near), [Rule::LateAccept]);
    // Served again after the failover, by either instance.
    for instance in [0, 1] {
        let mut after = history.clone();
        after.ops.push(auth(instance, "t2", 9000.0, 200));
        assert_eq!(rules(&after), [Rule::LateAccept], "instance {instance}");
    }
    // Refused with 503 during the failover and 401 after it: as it should be.
    history.ops.push(auth(1, "t2", 6000.0, 503));
    history.ops.push(auth(1, "t2", 9000.0, 401));
    assert_eq!(rules(&history), Vec::new());
}

#[test]
fn a_live_session_is_never_refused_through_a_failover() {
    let mut history = base();
    history.faults.push(failover());
    history.ops.extend(probe(1, 8000.0));
    history.ops.push(op(Kind::Create, 1, "t2", 0.0, ok()));
    history.ops.push(auth(0, "t2", 6000.0, 503));
    assert_eq!(rules(&history), Vec::new());
    history.ops.push(auth(0, "t2", 6100.0, 401));
    assert_eq!(rules(&history), [Rule::LiveRefused]);
}

#[test]
fn a_stop_on_sentinel_has_sentinels_demotion_delay_on_top() {
    let mut history = base();
    history.store = "sentinel".into();
    history
        .faults
        .push(fault(FaultKind::StorePause, None, 5000.0, 7000.0));
    history.ops.extend(probe(1, 20_000.0));
    history.ops.push(auth(1, "t2", 24_500.0, 503));
    assert_eq!(rules(&history), Vec::new());
    history.ops.push(auth(1, "t2", 25_100.0, 503));
    assert_eq!(rules(&history), [Rule::Unavailable]);
    // On a standalone server neither the 503 at 24.5 s nor a recovery 13 s after the
    // heal is allowed.
    let mut standalone = base();
    standalone
        .faults
        .push(fault(FaultKind::StorePause, None, 5000.0, 7000.0));
    standalone.ops.extend(probe(1, 20_000.0));
    standalone.ops.push(auth(1, "t2", 24_500.0, 503));
    assert_eq!(rules(&standalone), [Rule::Recovery, Rule::Unavailable]);
}
