//! The figures and violations, printed as Markdown tables.

use std::collections::BTreeSet;

use crate::bounds::{self, ms};
use crate::checker::{Report, Rule, Violation, instance_name};
use crate::history::{FaultKind, History, Kind};

fn seconds(ms: f64) -> String {
    format!("{:.2} s", ms / 1e3)
}

pub fn print(history: &History, report: &Report) {
    let f = &report.figures;
    println!(
        "\n## {} — {} instances{}, {:.0} s\n",
        history.store,
        history.instances,
        history
            .weakened
            .as_ref()
            .map_or(String::new(), |w| format!(", weakened: {w}")),
        history.length / 1e3
    );

    let labels: BTreeSet<&String> = f.requests.values().flat_map(|m| m.keys()).collect();
    print!("| phase | requests |");
    for label in &labels {
        print!(" {label} |");
    }
    println!();
    println!("|---|---:|{}", "---:|".repeat(labels.len()));
    for (phase, by) in &f.requests {
        print!("| {phase} | {} |", by.values().sum::<u64>());
        for label in &labels {
            print!(" {} |", by.get(*label).copied().unwrap_or(0));
        }
        println!();
    }

    println!("\n| operation | ok | failed |\n|---|---:|---:|");
    for (kind, (ok, failed)) in &f.operations {
        let name = match kind {
            Kind::AddCustomer => "add customer",
            Kind::Create => "create session",
            Kind::Revoke => "revoke",
            Kind::RevokeAll => "revoke_all",
            Kind::DeleteCustomer => "delete customer",
            Kind::SqlRevoke => "revoke in plain SQL",
            Kind::Auth => "GET /me",
        };
        println!("| {name} | {ok} | {failed} |");
    }

    println!(
        "\n| fault | times | lasted (max) | back up after (max) | recovery: max | median | not seen | goal |\n|---|---:|---:|---:|---:|---:|---:|---|"
    );
    for kind in FaultKind::ALL {
        let Some(times) = f.recoveries.get(&kind) else {
            continue;
        };
        let mut seen: Vec<f64> = times.iter().flatten().copied().collect();
        seen.sort_by(f64::total_cmp);
        let (max, median) = match seen.len() {
            0 => ("—".to_owned(), "—".to_owned()),
            n => (seconds(seen[n - 1]), seconds(seen[n / 2])),
        };
        let back = f.heals.get(&kind).into_iter().flatten().copied();
        let lasted = f.lasted.get(&kind).into_iter().flatten().copied();
        let (origin, goal) = bounds::recovery(&history.store, kind);
        println!(
            "| {} | {} | {} | {} | {max} | {median} | {} | {:.0} s from the {} |",
            kind.name(),
            f.faults.get(&kind).copied().unwrap_or(0),
            seconds(lasted.fold(0.0, f64::max)),
            seconds(back.fold(0.0, f64::max)),
            times.len() - seen.len(),
            goal.as_secs_f64(),
            match origin {
                bounds::Origin::Injected => "kill",
                bounds::Origin::Healed => "heal",
            }
        );
    }
    println!(
        "\nProbe rounds passed: {} of {}.",
        f.probe_rounds.0, f.probe_rounds.1,
    );

    println!(
        "\n| revocation during | reaching | (revocation, token, instance) | refused | latest accept after it | latest first refusal | bound |\n|---|---|---:|---:|---:|---:|---:|"
    );
    for ((phase, reach), lags) in &f.lags {
        println!(
            "| {phase} | {} | {} | {} | {:.1} ms | {:.1} ms | {:.0} ms |",
            reach.name(),
            lags.pairs,
            lags.refused,
            lags.max_accept,
            lags.max_refusal,
            reach.bound()
        );
    }
    println!(
        "\nBounds: live feed {:.0} ms; silent feed {:.0} ms + {:.0} ms slack; store deadline {:.0} ms + {:.0} ms slack; recovery {:.0} s from the heal (failover: {:.0} s from the kill; store-pause on Sentinel: {:.0} s more).",
        ms(bounds::FEED),
        ms(bounds::SILENCE),
        ms(bounds::SCHEDULING_SLACK),
        ms(bounds::STORE_DEADLINE),
        ms(bounds::REQUEST_SLACK),
        bounds::RECOVERY.as_secs_f64(),
        bounds::FAILOVER.as_secs_f64(),
        bounds::SENTINEL_DEMOTION.as_secs_f64()
    );

    println!("\nViolations: {}", report.violations.len());
    let rules: BTreeSet<Rule> = report.violations.iter().map(|v| v.rule).collect();
    for rule in rules {
        // One line per instance and token for token rules (a followed-up revocation breaks
        // one on
        // every poll; statuses and recoveries, one per instance.
        let by_token = matches!(
            rule,
            Rule::LateAccept | Rule::NeverIssued | Rule::LiveRefused | Rule::LostSession
        );
        let mut groups: Vec<(&Violation, &Violation, usize)> = Vec::new();
        for v in report.violations.iter().filter(|v| v.rule == rule) {
            match groups.iter_mut().find(|(first, _, _)| {
                first.instance == v.instance && (!by_token || first.token == v.token)
            }) {
                Some(group) if rule != Rule::Recovery => {
                    group.1 = v;
                    group.2 += 1;
                }
                _ => groups.push((v, v, 1)),
            }
        }
        let total: usize = groups.iter().map(|g| g.2).sum();
        println!("- {}: {total}", rule.name());
        for (first, last, n) in groups.iter().take(20) {
            println!(
                "    {:>9.3} s  {}{}{}  {}",
                first.at / 1e3,
                first
                    .instance
                    .map_or("fleet".to_owned(), |i| instance_name(Some(i))),
                first
                    .token
                    .as_ref()
                    .filter(|_| by_token)
                    .map_or(String::new(), |t| format!("  token {t}")),
                if *n > 1 {
                    format!("  ×{n} until {:.3} s, the last", last.at / 1e3)
                } else {
                    String::new()
                },
                last.detail
            );
        }
        if groups.len() > 20 {
            println!("    … and {} more", groups.len() - 20);
        }
    }
}
