//! The `Customer` schema (`CustomerIndividual` / `CustomerTeam`) and the shared handle to it.

use std::ops::Deref;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use super::{Address, Metadata, TaxId, truncate_to_micros};

/// Polar's customer discriminator, the `type` key.
///
/// Payloads written before the key existed (about 2026-01) are individuals, hence the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CustomerType {
    /// A single person (`"individual"`).
    #[default]
    Individual,
    /// An organization whose members share the customer (`"team"`); its `email` may be null.
    Team,
}

/// A customer exactly as Polar serializes it, fields in wire order.
///
/// Every key is written, `null` when empty. On input, the keys Polar added after 2025
/// (`type`, `billing_name`, `locale`, `default_payment_method_id`, `first_user_event_at`,
/// `external_id`), `metadata` and any nullable key may be missing; unknown keys are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerData {
    /// The customer's id.
    pub id: Uuid,
    /// Creation time.
    #[serde(with = "crate::model::timestamp")]
    pub created_at: DateTime<Utc>,
    /// Last modification time; `None` if never modified.
    #[serde(with = "crate::model::timestamp::option", default)]
    pub modified_at: Option<DateTime<Utc>>,
    /// Merchant-defined key/value pairs.
    #[serde(default)]
    pub metadata: Metadata,
    /// The merchant's own id for this customer (e.g. `"usr_1337"`).
    pub external_id: Option<String>,
    /// Email address; may be `None` for team customers.
    pub email: Option<String>,
    /// Whether the email address has been verified.
    pub email_verified: bool,
    /// Individual or team (wire key `type`).
    #[serde(rename = "type", default)]
    pub customer_type: CustomerType,
    /// Display name.
    pub name: Option<String>,
    /// Name to print on invoices.
    pub billing_name: Option<String>,
    /// Billing address.
    pub billing_address: Option<Address>,
    /// Tax id, written as `[value, format]`.
    pub tax_id: Option<TaxId>,
    /// Preferred locale (BCP 47 subset, e.g. `"en"`).
    pub locale: Option<String>,
    /// The Polar organization (merchant) this customer belongs to.
    pub organization_id: Uuid,
    /// Default payment method.
    pub default_payment_method_id: Option<Uuid>,
    /// Soft-deletion time; a deleted customer cannot authenticate.
    #[serde(with = "crate::model::timestamp::option", default)]
    pub deleted_at: Option<DateTime<Utc>>,
    /// Time of the customer's first ingested usage event.
    #[serde(with = "crate::model::timestamp::option", default)]
    pub first_user_event_at: Option<DateTime<Utc>>,
    /// Avatar URL as given. Kept verbatim, including the empty string some payloads carry.
    pub avatar_url: Option<String>,
}

impl CustomerData {
    /// A new individual customer with a fresh v4 id, created at `created_at`, every optional
    /// field empty and the nil organization id (set one with [`organization`](Self::organization)
    /// if the customer comes from Polar).
    ///
    /// `created_at` is truncated to microseconds, the precision of the wire format.
    ///
    /// ```
    /// use tower_customer_session::model::CustomerData;
    ///
    /// let org = uuid::Uuid::new_v4();
    /// let data = CustomerData::new(chrono::Utc::now()).organization(org);
    /// assert_eq!(data.organization_id, org);
    /// assert!(CustomerData::new(chrono::Utc::now()).organization_id.is_nil());
    /// ```
    pub fn new(created_at: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::new_v4(),
            created_at: truncate_to_micros(created_at),
            modified_at: None,
            metadata: Metadata::new(),
            external_id: None,
            email: None,
            email_verified: false,
            customer_type: CustomerType::Individual,
            name: None,
            billing_name: None,
            billing_address: None,
            tax_id: None,
            locale: None,
            organization_id: Uuid::nil(),
            default_payment_method_id: None,
            deleted_at: None,
            first_user_event_at: None,
            avatar_url: None,
        }
    }

    /// The same customer, belonging to the Polar organization `organization_id`.
    #[must_use]
    pub fn organization(mut self, organization_id: Uuid) -> Self {
        self.organization_id = organization_id;
        self
    }
}

/// The authenticated customer handed to request handlers.
///
/// A shared, immutable view of [`CustomerData`]: cloning costs one atomic increment, and
/// field access goes through `Deref`. Serializes exactly like `CustomerData`.
///
/// ```
/// use chrono::Utc;
/// use tower_customer_session::model::{Customer, CustomerData};
/// use uuid::Uuid;
///
/// let mut data = CustomerData::new(Utc::now());
/// data.email = Some("customer@example.com".to_owned());
/// let customer = Customer::new(data);
/// let copy = customer.clone();
/// assert!(Customer::ptr_eq(&customer, &copy));
/// assert_eq!(copy.email.as_deref(), Some("customer@example.com"));
/// assert!(customer.can_authenticate());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Customer(Arc<CustomerData>);

impl Customer {
    /// Wrap customer data in a shareable handle.
    pub fn new(data: CustomerData) -> Self {
        Self(Arc::new(data))
    }

    /// Mutable access, cloning the data first if other handles share it (copy-on-write),
    /// so other holders never observe the change.
    pub fn make_mut(&mut self) -> &mut CustomerData {
        Arc::make_mut(&mut self.0)
    }

    /// Whether both handles point at the same allocation.
    pub fn ptr_eq(this: &Self, other: &Self) -> bool {
        Arc::ptr_eq(&this.0, &other.0)
    }

    /// Whether this customer may authenticate: Polar refuses sessions of soft-deleted customers.
    pub fn can_authenticate(&self) -> bool {
        self.0.deleted_at.is_none()
    }

    /// Whether this is a team customer.
    pub fn is_team(&self) -> bool {
        self.0.customer_type == CustomerType::Team
    }
}

impl Deref for Customer {
    type Target = CustomerData;

    fn deref(&self) -> &CustomerData {
        &self.0
    }
}

impl AsRef<CustomerData> for Customer {
    fn as_ref(&self) -> &CustomerData {
        &self.0
    }
}

impl From<CustomerData> for Customer {
    fn from(data: CustomerData) -> Self {
        Self::new(data)
    }
}

// Hand-written rather than `#[serde(transparent)]`: serde only implements its traits for
// `Arc` behind the `rc` feature, which this crate does not enable.
impl Serialize for Customer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Customer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        CustomerData::deserialize(deserializer).map(Self::new)
    }
}
