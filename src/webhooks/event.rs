//! What [`PolarWebhooks`](super::PolarWebhooks) reads from a verified payload: the event type,
//! then, for the events it handles, the ids it needs and nothing else, so fields Polar adds or
//! changes elsewhere in `data` never make a delivery fail.

use serde_json::{Map, Value};
use uuid::Uuid;

/// A verified delivery, read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Event {
    /// A type this receiver does not act on (its `data` was not looked at).
    Ignored(String),
    /// Drop every cached session of `customer_id`.
    Customer {
        kind: &'static str,
        customer_id: Uuid,
        /// The member the event is about, for member events.
        member_id: Option<Uuid>,
    },
}

/// Why a verified body was refused; the text is the `detail` of the `400`.
const NOT_AN_EVENT: &str = "the webhook body is not an event with a type";
const NO_CUSTOMER_ID: &str = "a customer event without a customer id (data.id)";
const NO_MEMBER_IDS: &str =
    "a member event without the member's id (data.id) and its customer's id (data.customer_id)";

/// Read `body`, or say why it cannot be acted on. The body is taken as a JSON object, not
/// through derived structs, which would also take an array for an object.
pub(super) fn read(body: &[u8]) -> Result<Event, &'static str> {
    let event: Map<String, Value> = serde_json::from_slice(body).map_err(|_| NOT_AN_EVENT)?;
    let kind = match event.get("type").and_then(Value::as_str) {
        Some("customer.updated") => "customer.updated",
        Some("customer.deleted") => "customer.deleted",
        Some("customer.state_changed") => "customer.state_changed",
        Some("member.updated") => "member.updated",
        Some("member.deleted") => "member.deleted",
        Some(other) => return Ok(Event::Ignored(other.to_owned())),
        None => return Err(NOT_AN_EVENT),
    };
    let data = event.get("data").and_then(Value::as_object);
    let id = |field: &str| Uuid::parse_str(data?.get(field)?.as_str()?).ok();
    if kind.starts_with("member.") {
        // A `Member`: its `id` is the member's, `customer_id` its customer's.
        match (id("id"), id("customer_id")) {
            (Some(member_id), Some(customer_id)) => Ok(Event::Customer {
                kind,
                customer_id,
                member_id: Some(member_id),
            }),
            _ => Err(NO_MEMBER_IDS),
        }
    } else {
        // A `Customer`, or a `CustomerState`: both with the customer's `id`.
        let customer_id = id("id").ok_or(NO_CUSTOMER_ID)?;
        Ok(Event::Customer {
            kind,
            customer_id,
            member_id: None,
        })
    }
}
