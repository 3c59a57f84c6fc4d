//! Response shapes of the customer-portal endpoints, which accept a session token as Bearer.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Address, CustomerType, MemberRole, TaxId};

/// A linked OAuth account in [`CustomerPortalCustomer::oauth_accounts`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OAuthAccount {
    /// The account id at the provider.
    pub account_id: String,
    /// The username at the provider, if known.
    pub account_username: Option<String>,
}

/// The customer as seen by itself: `GET /v1/customer-portal/customers/me`, fields in wire order.
///
/// Unlike [`CustomerData`](super::CustomerData) it has no `organization_id`, `external_id`
/// or `metadata`, and adds `oauth_accounts`. A store that asks Polar who a token belongs to
/// reads this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerPortalCustomer {
    /// Creation time.
    #[serde(with = "crate::model::timestamp")]
    pub created_at: DateTime<Utc>,
    /// Last modification time.
    #[serde(with = "crate::model::timestamp::option", default)]
    pub modified_at: Option<DateTime<Utc>>,
    /// The customer's id.
    pub id: Uuid,
    /// Email address; may be `None` for team customers.
    pub email: Option<String>,
    /// Whether the email address has been verified.
    pub email_verified: bool,
    /// Display name.
    pub name: Option<String>,
    /// Name to print on invoices.
    pub billing_name: Option<String>,
    /// Billing address.
    pub billing_address: Option<Address>,
    /// Tax id, written as `[value, format]`.
    pub tax_id: Option<TaxId>,
    /// Linked accounts keyed `"<platform>:<account id>"`, e.g. `"github:1234567"`.
    #[serde(default)]
    pub oauth_accounts: BTreeMap<String, OAuthAccount>,
    /// Default payment method.
    pub default_payment_method_id: Option<Uuid>,
    /// Individual or team (wire key `type`, nullable here).
    #[serde(rename = "type", default)]
    pub customer_type: Option<CustomerType>,
    /// Preferred locale.
    pub locale: Option<String>,
}

/// The current session as introspected by its holder:
/// `GET /v1/customer-portal/customer-session/introspect`.
///
/// It carries no customer id; see [`PortalAuthenticatedUser`] for that.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerCustomerSession {
    /// When the session's token stops being accepted.
    #[serde(with = "crate::model::timestamp")]
    pub expires_at: DateTime<Utc>,
    /// Where the portal sends the customer back to, if set.
    pub return_url: Option<String>,
}

/// Who a portal session authenticates, the `type` of [`PortalAuthenticatedUser`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortalUserType {
    /// A customer session (`polar_cst_…`).
    Customer,
    /// A member session (`polar_mst_…`) of a team customer.
    Member,
}

/// The authenticated portal user: `GET /v1/customer-portal/customer-session/user`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalAuthenticatedUser {
    /// Customer or member (wire key `type`).
    #[serde(rename = "type")]
    pub user_type: PortalUserType,
    /// Display name.
    pub name: Option<String>,
    /// Email address (Polar answers 422 instead for a team customer without one).
    pub email: String,
    /// The customer the session belongs to.
    pub customer_id: Uuid,
    /// The member, for member sessions.
    pub member_id: Option<Uuid>,
    /// The member's role within the team, for member sessions.
    pub role: Option<MemberRole>,
}
