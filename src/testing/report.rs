//! What a run of the kit found: every check, passed, failed or skipped, by name.

use std::fmt;

/// One check that failed: which, what was looked at, what was expected and what came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The check's name, e.g. `sessions.create_is_insert_if_absent`.
    pub check: &'static str,
    /// What was looked at.
    pub what: String,
    /// What the contract asks for.
    pub expected: String,
    /// What the store did.
    pub got: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FAILED {}: {}\n    expected: {}\n         got: {}",
            self.check, self.what, self.expected, self.got
        )
    }
}

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The store did what the contract says.
    Passed,
    /// It did not.
    Failed(Failure),
    /// The check does not apply, or a hook it needs is missing; the reason says which.
    Skipped(String),
}

/// Every check the kit ran, in order, with its outcome. `Display` lists the failures and
/// the skipped checks with their reasons.
#[derive(Debug, Clone, Default)]
pub struct Report {
    outcomes: Vec<(&'static str, Outcome)>,
}

impl Report {
    pub(super) fn push(&mut self, check: &'static str, outcome: Outcome) {
        self.outcomes.push((check, outcome));
    }

    /// Every check that ran, with its outcome.
    pub fn outcomes(&self) -> &[(&'static str, Outcome)] {
        &self.outcomes
    }

    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &Failure> {
        self.outcomes
            .iter()
            .filter_map(|(_, outcome)| match outcome {
                Outcome::Failed(failure) => Some(failure),
                _ => None,
            })
    }

    /// The names of the skipped checks.
    pub fn skipped(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.outcomes
            .iter()
            .filter(|(_, outcome)| matches!(outcome, Outcome::Skipped(_)))
            .map(|(name, _)| *name)
    }

    /// The names of the passed checks.
    pub fn passed(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.outcomes
            .iter()
            .filter(|(_, outcome)| *outcome == Outcome::Passed)
            .map(|(name, _)| *name)
    }

    /// Whether no check failed.
    pub fn is_ok(&self) -> bool {
        self.failures().next().is_none()
    }

    /// Print the report to stderr (skipped checks are never silent), then panic with every
    /// failure if there is one.
    #[track_caller]
    pub fn assert_passed(&self) {
        eprintln!("{self}");
        assert!(self.is_ok(), "the store test kit found failures:\n{self}");
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failed = self.failures().count();
        let skipped = self.skipped().count();
        let passed = self.outcomes.len() - failed - skipped;
        write!(
            f,
            "store test kit: {passed} passed, {failed} failed, {skipped} skipped"
        )?;
        for failure in self.failures() {
            write!(f, "\n{failure}")?;
        }
        for (name, outcome) in &self.outcomes {
            if let Outcome::Skipped(reason) = outcome {
                write!(f, "\nSKIPPED {name}: {reason}")?;
            }
        }
        Ok(())
    }
}
