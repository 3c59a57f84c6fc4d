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
