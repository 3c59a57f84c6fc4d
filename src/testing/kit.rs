//! [`Kit`]: which checks to run, each on a fresh backend, into one [`Report`].

use std::future::Future;
use std::time::Duration;

use super::backend::{Backend, Issuer};
use super::checks::{self, Check};
use super::expect::Stop;
use super::future::CatchUnwind;
use super::report::{Failure, Outcome, Report};
use crate::store::{CustomerStore, SessionAdmin};

/// The store test kit, configured: which checks to run on which backends.
///
/// [`run`](super::run) is `Kit::new(fresh).run().await.assert_passed()`. Build a `Kit`
/// to run some checks only (by name, or by group: `"feed"` is every `feed.*` check), to
/// leave some out, or to look at the [`Report`] yourself:
///
/// ```
/// use tower_customer_session::MemoryStore;
/// use tower_customer_session::testing::Kit;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let report = Kit::new(|| async { MemoryStore::new() })
///     .only("sessions.revoke_all_removes_every_session_of_the_customer")
///     .only("tokens")
///     .run()
///     .await;
/// assert!(report.is_ok(), "{report}");
/// # }
/// ```
#[must_use]
pub struct Kit<'b, B, F> {
    fresh: F,
    checks: Vec<Check<'b, B>>,
    only: Vec<String>,
    skip: Vec<String>,
    timeout: Duration,
}

impl<'b, B, F, Fut> Kit<'b, B, F>
where
    B: Backend + 'b,
    F: Fn() -> Fut,
    Fut: Future<Output = B>,
{
    /// Every check, for a store that issues, revokes and keeps customers; `fresh` makes a
    /// new, empty backend for each check.
    pub fn new(fresh: F) -> Self
    where
        B::Store: SessionAdmin + CustomerStore,
    {
        Self::with(fresh, checks::full())
    }

    /// The checks of loads, for a read-only store whose sessions an [`Issuer`] issues.
    pub fn read_only(fresh: F) -> Self
    where
        B: Issuer,
    {
        Self::with(fresh, checks::read_only())
    }

    fn with(fresh: F, checks: Vec<Check<'b, B>>) -> Self {
        Self {
            fresh,
            checks,
            only: Vec::new(),
            skip: Vec::new(),
            timeout: Duration::from_secs(60),
        }
    }

    /// Run only this check, or this group of checks; call again to add more. Panics if
    /// no check has that name, so a typo cannot pass for a passing check.
    #[track_caller]
    pub fn only(mut self, name: &str) -> Self {
        self.known(name);
        self.only.push(name.to_owned());
        self
    }

    /// Leave out this check, or this group of checks (the report does not list them).
    #[track_caller]
    pub fn skip(mut self, name: &str) -> Self {
        self.known(name);
        self.skip.push(name.to_owned());
        self
    }

    /// How long one check may take before it fails as hung. Default: 60 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_customer_session::MemoryStore;
    /// # use tower_customer_session::testing::Kit;
    /// let kit = Kit::new(|| async { MemoryStore::new() }).timeout(Duration::from_secs(20));
    /// # drop(kit);
    /// ```
    pub fn timeout(mut self, per_check: Duration) -> Self {
        self.timeout = per_check;
        self
    }

    /// The names of the checks this kit would run.
    pub fn names(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|check| self.selected(check.name))
            .map(|check| check.name)
            .collect()
    }

    /// Run the selected checks, one after another, each on a fresh backend, and report
    /// every outcome. A check that panics or outlasts the timeout fails; the others still
    /// run.
    pub async fn run(self) -> Report {
        let mut report = Report::default();
        for check in &self.checks {
            if !self.selected(check.name) {
                continue;
            }
            let backend = (self.fresh)().await;
            let running = CatchUnwind(Box::pin((check.run)(backend)));
            let outcome = match tokio::time::timeout(self.timeout, running).await {
                Ok(Ok(Ok(()))) => Outcome::Passed,
                Ok(Ok(Err(Stop::Skip(why)))) => Outcome::Skipped(why),
                Ok(Ok(Err(Stop::Fail {
                    what,
                    expected,
                    got,
                }))) => Outcome::Failed(Failure {
                    check: check.name,
                    what,
                    expected,
                    got,
                }),
                Ok(Err(panic)) => Outcome::Failed(Failure {
                    check: check.name,
                    what: "the check".to_owned(),
                    expected: "no panic".to_owned(),
                    got: format!("a panic: {panic}"),
                }),
                Err(_) => Outcome::Failed(Failure {
                    check: check.name,
                    what: "the check".to_owned(),
                    expected: format!("done within {:?}", self.timeout),
                    got: "still running: a store call hangs".to_owned(),
                }),
            };
            report.push(check.name, outcome);
        }
        report
    }

    fn selected(&self, name: &str) -> bool {
        (self.only.is_empty() || self.only.iter().any(|pattern| matches(pattern, name)))
            && !self.skip.iter().any(|pattern| matches(pattern, name))
    }

    #[track_caller]
    fn known(&self, pattern: &str) {
        if !self.checks.iter().any(|check| matches(pattern, check.name)) {
            let names: Vec<&str> = self.checks.iter().map(|check| check.name).collect();
            panic!(
                "the store test kit has no check or group named {pattern:?}; its checks are: {}",
                names.join(", ")
            );
        }
    }
}

/// `name` is `pattern`, or in the group `pattern` (`"feed"` matches `"feed.goes_live"`).
fn matches(pattern: &str, name: &str) -> bool {
    name == pattern
        || name
            .strip_prefix(pattern)
            .is_some_and(|rest| rest.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn a_pattern_is_a_name_or_a_group() {
        assert!(matches("feed.goes_live", "feed.goes_live"));
        assert!(matches("feed", "feed.goes_live"));
        assert!(!matches("fee", "feed.goes_live"));
        assert!(!matches("feed.goes", "feed.goes_live"));
    }
}
