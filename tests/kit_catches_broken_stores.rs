//! The store test kit fails broken stores. A reference store passes every check; each copy
//! of it with one bug fails, and the check that names the bug is among the failures: a kit
//! that cannot fail would tell a user a broken backend is safe.

mod broken_stores;

use broken_stores::{Bug, Fixture, ReadOnlyFixture, server};
use tower_customer_session::testing::{Kit, Report};

async fn kit(bug: Option<Bug>) -> Report {
    Kit::new(|| async { Fixture(server(bug)) }).run().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_store_passes_every_check() {
    let report = kit(None).await;
    report.assert_passed();
    assert_eq!(
        report.skipped().count(),
        0,
        "every check applies to it:\n{report}"
    );
}

/// The kit, on the reference store with `bug`, fails `check` (and says so by name).
async fn caught(bug: Bug, check: &str) {
    let report = kit(Some(bug)).await;
    let failed: Vec<&str> = report.failures().map(|failure| failure.check).collect();
    assert!(
        failed.contains(&check),
        "{bug:?} should fail {check}, but the kit says:\n{report}"
    );
    let shown = report.to_string();
    assert!(shown.contains(&format!("FAILED {check}: ")), "{shown}");
}

macro_rules! caught {
    ($($test:ident: $bug:ident => $check:literal,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                caught(Bug::$bug, $check).await;
            }
        )*
    };
}

caught! {
    // Customers: compared with what went in, every field set.
    drops_metadata: DropsMetadata => "customers.every_field_round_trips",
    sorts_metadata_keys: SortsMetadataKeys => "customers.every_field_round_trips",
    truncates_created_at_to_seconds: TruncatesCreatedAtToSeconds => "customers.every_field_round_trips",
    loses_billing_address: LosesBillingAddress => "customers.every_field_round_trips",
    loses_tax_id: LosesTaxId => "customers.every_field_round_trips",
    loses_locale: LosesLocale => "customers.every_field_round_trips",
    loses_organization: LosesOrganization => "customers.every_field_round_trips",
    loses_team_type: LosesTeamType => "customers.every_field_round_trips",
    drops_optional_timestamps: DropsOptionalTimestamps => "customers.every_field_round_trips",
    joins_customer_as_it_was_at_create: JoinsCustomerAsItWasAtCreate => "customers.edits_show_in_loads",

    // Failures: an error is an error.
    swallows_load_errors: SwallowsLoadErrors => "failures.outage_is_an_error_never_not_found",
    revoke_swallows_errors: RevokeSwallowsErrors => "failures.every_call_fails_during_an_outage",
    create_error_is_unknown_customer: CreateErrorIsUnknownCustomer => "failures.every_call_fails_during_an_outage",

    // Concurrency.
    create_checks_then_inserts: CreateChecksThenInserts => "concurrency.one_create_wins_per_hash",
    upsert_rewrites_every_customer: UpsertRewritesEveryCustomer => "concurrency.concurrent_writes_all_land",
    announces_revoke_before_commit: AnnouncesRevokeBeforeCommit => "feed.announced_only_after_commit",

    // Members.
    revoke_all_skips_member_sessions: RevokeAllSkipsMemberSessions => "sessions.revoke_all_removes_every_session_of_the_customer",
    load_drops_member: LoadDropsMember => "load.member_session_carries_its_member",

    // Hashes and tokens.
    matches_hash_prefix: MatchesHashPrefix => "tokens.hash_is_matched_exactly",
    compares_hash_case_insensitively: ComparesHashCaseInsensitively => "tokens.hash_is_matched_exactly",
    keeps_raw_token_hex: KeepsRawTokenHex => "tokens.raw_token_never_stored",
    keeps_raw_token_base64: KeepsRawTokenBase64 => "tokens.raw_token_never_stored",

    // Time and boundaries.
    expires_at_itself_is_live: ExpiresAtItselfIsLive => "time.expires_at_itself_is_expired",
    ignores_expiry: IgnoresExpiry => "time.expired_session_does_not_load",
    deleted_at_is_now: DeletedAtIsNow => "customers.deletion_is_soft_at_the_time_given",
    second_deletion_overwrites: SecondDeletionOverwrites => "customers.deleting_again_keeps_the_first_time",

    // Customers by external id, orphans, deletion.
    create_by_external_id_ignores_deletion: CreateByExternalIdIgnoresDeletion => "sessions.deleted_customer_gets_no_session",
    leaves_orphan_for_unknown_customer: LeavesOrphanForUnknownCustomer => "sessions.unknown_customer_gets_no_session",
    stale_external_id_index: StaleExternalIdIndex => "customers.external_id_follows_edits",
    hard_delete: HardDelete => "customers.deletion_is_soft_at_the_time_given",

    // Feeds over time.
    no_heartbeat: NoHeartbeat => "feed.heartbeat_keeps_it_live",
    overflow_loses_messages_silently: OverflowLosesMessagesSilently => "feed.burst_loses_nothing_silently",
    feed_outlives_manager: FeedOutlivesManager => "feed.stops_with_its_manager",
    revoke_all_not_announced: RevokeAllNotAnnounced => "feed.revocations_reach_the_peer",
    revocations_announced_as_plain_changes: RevocationsAnnouncedAsPlainChanges => "feed.api_revocations_are_remembered_by_the_peer",
    customer_edits_not_announced: CustomerEditsNotAnnounced => "feed.customer_changes_reach_the_peer",
    beats_during_outage: BeatsDuringOutage => "feed.outage_is_reported",
    watch_needs_the_callers_runtime: WatchNeedsTheCallersRuntime => "feed.watch_outside_a_runtime_does_not_panic",

    // Scope.
    claims_process_scope: ClaimsProcessScope => "scope.process_scope_only_for_one_process",

    // The rest of the contract.
    create_overwrites: CreateOverwrites => "sessions.create_is_insert_if_absent",
    load_ignores_deleted_customer: LoadIgnoresDeletedCustomer => "load.deleted_customer_does_not_load",
    drops_return_url: DropsReturnUrl => "load.session_loads_with_its_customer",
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_only_part_passes_the_reference_and_fails_its_bugs() {
    let read_only = |bug| Kit::read_only(move || async move { ReadOnlyFixture(server(bug)) });
    let report = read_only(None).run().await;
    report.assert_passed();
    // The read-only view has no feed of its own.
    let skipped: Vec<&str> = report.skipped().collect();
    assert_eq!(
        skipped,
        ["feed.watch_outside_a_runtime_does_not_panic"],
        "{report}"
    );
    for (bug, check) in [
        (
            Bug::SwallowsLoadErrors,
            "failures.outage_is_an_error_never_not_found",
        ),
        (
            Bug::LoadIgnoresDeletedCustomer,
            "load.deleted_customer_does_not_load",
        ),
        (
            Bug::ExpiresAtItselfIsLive,
            "time.expires_at_itself_is_expired",
        ),
        (
            Bug::LoadDropsMember,
            "load.member_session_carries_its_member",
        ),
        (
            Bug::ClaimsProcessScope,
            "scope.process_scope_only_for_one_process",
        ),
    ] {
        let report = read_only(Some(bug)).run().await;
        assert!(
            report.failures().any(|failure| failure.check == check),
            "{bug:?} should fail {check}:\n{report}"
        );
    }
}

#[tokio::test]
async fn one_check_runs_alone_and_reports_by_name() {
    let report = Kit::new(|| async { Fixture(server(Some(Bug::HardDelete))) })
        .only("customers.deletion_is_soft_at_the_time_given")
        .run()
        .await;
    assert_eq!(report.outcomes().len(), 1);
    let failure = report.failures().next().expect("the hard delete is caught");
    assert_eq!(
        failure.check,
        "customers.deletion_is_soft_at_the_time_given"
    );
    assert!(failure.got.contains("Ok(None)"), "{failure}");
}

#[test]
#[should_panic(expected = "no check or group named \"sessions.revoke_everything\"")]
fn a_misspelt_check_name_is_refused() {
    let _ = Kit::new(|| async { tower_customer_session::MemoryStore::new() })
        .only("sessions.revoke_everything");
}
