//! The `CustomerSession` schema: the `201` body of `POST /v1/customer-sessions/`.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Customer, PortalUrl};
use crate::token::SessionToken;

/// A newly created customer (or member) session, fields in wire order.
///
/// This is the only response that carries the raw token, both in `token` and inside
/// `customer_portal_url`; `Debug` therefore redacts both.
///
/// ```
/// use tower_customer_session::model::CustomerSession;
///
/// let json = r#"{
///   "created_at": "2026-01-01T00:00:00Z", "modified_at": null,
///   "id": "0b8f5c1e-7d2a-4c3b-9e4f-1a2b3c4d5e6f",
///   "token": "polar_cst_example", "expires_at": "2026-01-01T01:00:00Z", "return_url": null,
///   "customer_portal_url": "https://polar.sh/org/portal?customer_session_token=polar_cst_example",
///   "customer_id": "992fae2a-2a17-4b7a-8d9e-e287cf90131b",
///   "customer": {
///     "id": "992fae2a-2a17-4b7a-8d9e-e287cf90131b", "created_at": "2026-01-01T00:00:00Z",
///     "modified_at": null, "email": "c@example.com", "email_verified": true, "name": null,
///     "billing_address": null, "tax_id": null, "deleted_at": null, "avatar_url": null,
///     "organization_id": "1dbfc517-0bbf-4301-9ba8-555ca42b9737"
///   }
/// }"#;
/// let session: CustomerSession = serde_json::from_str(json).unwrap();
/// assert_eq!(session.token.expose_secret(), "polar_cst_example");
/// assert!(!format!("{session:?}").contains("polar_cst_example"));
/// assert!(session.customer_portal_url.expose_secret().contains("polar_cst_example"));
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct CustomerSession {
    /// Creation time.
    #[serde(with = "crate::model::timestamp")]
    pub created_at: DateTime<Utc>,
    /// Last modification time; `None` for a fresh session.
    #[serde(with = "crate::model::timestamp::option", default)]
    pub modified_at: Option<DateTime<Utc>>,
    /// The session's own id (not the customer's).
    pub id: Uuid,
    /// The raw token (`polar_cst_…`, or `polar_mst_…` for a member session).
    pub token: SessionToken,
    /// When the token stops being accepted (Polar: creation + 1 hour, no sliding refresh).
    #[serde(with = "crate::model::timestamp")]
    pub expires_at: DateTime<Utc>,
    /// Where the portal sends the customer back to, if the creator gave one.
    pub return_url: Option<String>,
    /// Link to the customer portal. Contains the raw token as a query parameter, so it is
    /// wiped on drop and redacted in `Debug` like the token.
    pub customer_portal_url: PortalUrl,
    /// Id of the session's customer (same as `customer.id`).
    pub customer_id: Uuid,
    /// The session's customer.
    pub customer: Customer,
}

impl fmt::Debug for CustomerSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The portal URL embeds the token, so neither may reach logs.
        f.debug_struct("CustomerSession")
            .field("created_at", &self.created_at)
            .field("modified_at", &self.modified_at)
            .field("id", &self.id)
            .field("token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("return_url", &self.return_url)
            .field("customer_portal_url", &"[redacted]")
            .field("customer_id", &self.customer_id)
            .field("customer", &self.customer)
            .finish()
    }
}

/// The body of `POST /v1/customer-sessions/`: Polar's `CustomerSessionCustomerIDCreate` or
/// `CustomerSessionCustomerExternalIDCreate`, for a merchant backend that asks Polar (or a
/// compatible server) for a session.
///
/// Exactly one of `customer_id` and `external_customer_id` should be set; the member keys
/// ask for a member session (`polar_mst_…`) for that member of a team customer. Unset keys
/// are left out of the JSON.
///
/// ```
/// use tower_customer_session::model::CustomerSessionCreate;
///
/// let body = CustomerSessionCreate {
///     external_member_id: Some("emp_42".into()),
///     ..CustomerSessionCreate::for_external_id("org_acme")
/// };
/// assert_eq!(
///     serde_json::to_string(&body).unwrap(),
///     r#"{"external_customer_id":"org_acme","external_member_id":"emp_42"}"#
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerSessionCreate {
    /// The customer, by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<Uuid>,
    /// The customer, by the merchant's own id (older name: `customer_external_id`).
    #[serde(
        default,
        alias = "customer_external_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub external_customer_id: Option<String>,
    /// The member to create a member session for, by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<Uuid>,
    /// The member to create a member session for, by the merchant's own id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_member_id: Option<String>,
    /// Where the portal's back button leads (an http(s) URL of at most 2083 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_url: Option<String>,
}

impl CustomerSessionCreate {
    /// A request for a session of the customer with this id.
    pub fn for_customer(customer_id: Uuid) -> Self {
        Self {
            customer_id: Some(customer_id),
            ..Self::default()
        }
    }

    /// A request for a session of the customer with this external id.
    pub fn for_external_id(external_customer_id: impl Into<String>) -> Self {
        Self {
            external_customer_id: Some(external_customer_id.into()),
            ..Self::default()
        }
    }
}
