//! How a check stops early: a failure (what, expected, got) or a skip (why); and the
//! comparisons that name the field that differs.

use std::fmt::{Debug, Display};

use crate::model::{Customer, CustomerData};
use crate::store::{SessionRecord, StoreError};
use crate::token::TokenHash;

use super::backend::Issued;

/// Why a check ended before passing.
pub(super) enum Stop {
    Fail {
        what: String,
        expected: String,
        got: String,
    },
    Skip(String),
}

pub(super) type Checked = Result<(), Stop>;

pub(super) fn fail(what: impl Display, expected: impl Display, got: impl Display) -> Stop {
    Stop::Fail {
        what: what.to_string(),
        expected: expected.to_string(),
        got: got.to_string(),
    }
}

pub(super) fn skip(why: impl Into<String>) -> Stop {
    Stop::Skip(why.into())
}

/// Fail with `what` unless `holds`.
pub(super) fn ensure(
    holds: bool,
    what: impl Display,
    expected: impl Display,
    got: impl Display,
) -> Checked {
    if holds {
        Ok(())
    } else {
        Err(fail(what, expected, got))
    }
}

/// Fail unless `got == expected`, showing both.
pub(super) fn equal<T: PartialEq + Debug>(what: impl Display, expected: &T, got: &T) -> Checked {
    ensure(
        got == expected,
        what,
        format!("{expected:?}"),
        format!("{got:?}"),
    )
}

/// The value of a store call that must succeed.
pub(super) fn called<T>(what: impl Display, result: Result<T, StoreError>) -> Result<T, Stop> {
    result.map_err(|error| fail(what, "Ok(…)", format!("Err({error:?})")))
}

/// The record a load must return.
pub(super) fn found(
    what: impl Display,
    result: Result<Option<SessionRecord>, StoreError>,
) -> Result<SessionRecord, Stop> {
    let what = what.to_string();
    match called(&what, result)? {
        Some(record) => Ok(record),
        None => Err(fail(what, "Ok(Some(session))", "Ok(None)")),
    }
}

/// Fail unless a load found nothing.
pub(super) fn nothing(
    what: impl Display,
    result: Result<Option<SessionRecord>, StoreError>,
) -> Checked {
    let what = what.to_string();
    match called(&what, result)? {
        None => Ok(()),
        Some(record) => Err(fail(
            what,
            "Ok(None)",
            format!("Ok(Some(session {}))", record.id),
        )),
    }
}

/// Fail unless `got` is the session `issued` describes, for `hash`, joined with `customer`.
pub(super) fn same_session(
    what: &str,
    got: &SessionRecord,
    issued: &Issued,
    hash: &TokenHash,
    customer: &Customer,
) -> Checked {
    if let Some(id) = issued.id {
        equal(format!("{what}: id"), &id, &got.id)?;
    }
    ensure(
        got.token_hash == *hash,
        format!("{what}: token_hash"),
        format!("the hash of the token, {}", hash.to_hex()),
        got.token_hash.to_hex(),
    )?;
    equal(format!("{what}: kind"), &issued.kind, &got.kind)?;
    if let Some(created_at) = issued.created_at {
        equal(format!("{what}: created_at"), &created_at, &got.created_at)?;
    }
    equal(
        format!("{what}: expires_at"),
        &issued.expires_at,
        &got.expires_at,
    )?;
    equal(
        format!("{what}: return_url"),
        &issued.return_url,
        &got.return_url,
    )?;
    equal(format!("{what}: member"), &issued.member, &got.member)?;
    same_customer(&format!("{what}: its customer"), customer, &got.customer)
}

/// Fail unless `got` is `expected` in every field, metadata in the same key order, naming
/// each field that differs.
pub(super) fn same_customer(what: &str, expected: &Customer, got: &Customer) -> Checked {
    let (expected, got): (&CustomerData, &CustomerData) = (expected, got);
    let differences = customer_differences(expected, got);
    if differences.is_empty() {
        return Ok(());
    }
    let fields: Vec<&str> = differences.iter().map(|(field, _, _)| *field).collect();
    let (shown_expected, shown_got): (Vec<String>, Vec<String>) = differences
        .iter()
        .map(|(field, e, g)| (format!("{field} = {e}"), format!("{field} = {g}")))
        .unzip();
    Err(fail(
        format!("{what}: {} differ", fields.join(", ")),
        shown_expected.join("; "),
        shown_got.join("; "),
    ))
}

/// Every field in which `got` differs from `expected`, with both values.
fn customer_differences(
    expected: &CustomerData,
    got: &CustomerData,
) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    macro_rules! field {
        ($name:literal, $field:ident) => {
            if expected.$field != got.$field {
                out.push((
                    $name,
                    format!("{:?}", expected.$field),
                    format!("{:?}", got.$field),
                ));
            }
        };
    }
    field!("id", id);
    field!("created_at", created_at);
    field!("modified_at", modified_at);
    field!("metadata", metadata);
    field!("external_id", external_id);
    field!("email", email);
    field!("email_verified", email_verified);
    field!("type", customer_type);
    field!("name", name);
    field!("billing_name", billing_name);
    field!("billing_address", billing_address);
    field!("tax_id", tax_id);
    field!("locale", locale);
    field!("organization_id", organization_id);
    field!("default_payment_method_id", default_payment_method_id);
    field!("deleted_at", deleted_at);
    field!("first_user_event_at", first_user_event_at);
    field!("avatar_url", avatar_url);
    // Metadata equality ignores order; Polar's order is part of what a customer is.
    if expected.metadata == got.metadata && !expected.metadata.keys().eq(got.metadata.keys()) {
        out.push((
            "metadata key order",
            format!("{:?}", expected.metadata.keys().collect::<Vec<_>>()),
            format!("{:?}", got.metadata.keys().collect::<Vec<_>>()),
        ));
    }
    if out.is_empty() && expected != got {
        // A field this list does not name yet.
        out.push(("a field", format!("{expected:?}"), format!("{got:?}")));
    }
    out
}
