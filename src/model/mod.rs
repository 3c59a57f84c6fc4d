//! Polar's JSON wire types: customers, customer sessions and customer-portal responses.
//!
//! Every type here reads and writes exactly what Polar's API does. Keys are snake_case and
//! declared keys are always written, with `null` for empty values. Date-times are RFC 3339 in
//! UTC with a `Z` suffix, carrying six fractional digits when the microseconds are non-zero
//! and no fraction otherwise (`2025-01-07T10:41:47.370925Z`, `2026-01-01T00:00:00Z`); finer
//! precision is truncated. Input is tolerant: any RFC 3339 offset is accepted and converted
//! to UTC, keys Polar added over time may be missing, and unknown keys are ignored, so older
//! and newer payloads both parse.
//!
//! ```
//! use tower_customer_session::model::{Customer, CustomerType};
//!
//! let customer: Customer = serde_json::from_str(r#"{
//!     "id": "992fae2a-2a17-4b7a-8d9e-e287cf90131b",
//!     "created_at": "2025-01-07T10:41:47.370925Z",
//!     "modified_at": null,
//!     "metadata": {"plan": "pro"},
//!     "email": "customer@example.com",
//!     "email_verified": true,
//!     "name": "John Doe",
//!     "billing_address": null,
//!     "tax_id": null,
//!     "organization_id": "1dbfc517-0bbf-4301-9ba8-555ca42b9737",
//!     "deleted_at": null,
//!     "avatar_url": null
//! }"#).unwrap();
//!
//! assert_eq!(customer.email.as_deref(), Some("customer@example.com"));
//! assert_eq!(customer.customer_type, CustomerType::Individual);
//! assert!(customer.can_authenticate());
//! ```

mod address;
mod customer;
mod member;
mod metadata;
mod portal;
mod portal_url;
mod session;
mod tax_id;
pub(crate) mod timestamp;

pub use address::Address;
pub use customer::{Customer, CustomerData, CustomerType};
pub use member::{Member, MemberRole};
pub use metadata::{Metadata, MetadataValue};
pub use portal::{
    CustomerCustomerSession, CustomerPortalCustomer, OAuthAccount, PortalAuthenticatedUser,
    PortalUserType,
};
pub use portal_url::PortalUrl;
pub(crate) use portal_url::TOKEN_PARAM;
pub use session::{CustomerSession, CustomerSessionCreate};
pub use tax_id::{KNOWN_TAX_ID_FORMATS, TaxId, TaxIdFormat};
pub use timestamp::truncate_to_micros;
