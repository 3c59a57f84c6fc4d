//! Demo data: the two customers the example portal starts with, and the team's members.
//!
//! The values are those of Polar's documented examples (the JSON fixtures under
//! `tests/fixtures/polar/`), so every response of the example can be compared with Polar's
//! own shapes field by field.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tower_customer_session::model::{
    Address, CustomerData, CustomerType, Member, MemberRole, Metadata, MetadataValue, TaxId,
    TaxIdFormat,
};
use tower_customer_session::{Customer, CustomerStore, MemoryStore, StoreError};
use uuid::{Uuid, uuid};

/// The merchant (Polar organization) both demo customers belong to.
pub const ORGANIZATION_ID: Uuid = uuid!("1dbfc517-0bbf-4301-9ba8-555ca42b9737");

/// The seeded customers, as stored.
#[derive(Debug, Clone)]
pub struct Demo {
    /// An individual with every field filled in: address, tax id, metadata of each value
    /// type, external id, verified email.
    pub individual: Customer,
    /// A team customer without an email address, as Polar allows for teams.
    pub team: Customer,
    /// The team's members: an owner, a billing manager and a plain member, in that order.
    pub members: Vec<Member>,
}

/// Insert the demo customers into `store`. Members are not the store's business: the
/// caller keeps [`Demo::members`] and names the member when it creates a member session.
pub fn seed(store: &MemoryStore) -> Demo {
    Demo {
        individual: store.insert_customer(individual()),
        team: store.insert_customer(team()),
        members: members(),
    }
}

fn members() -> Vec<Member> {
    let member = |id, email: &str, name: &str, external_id: &str, role| Member {
        id,
        email: Some(email.to_owned()),
        name: Some(name.to_owned()),
        external_id: Some(external_id.to_owned()),
        role,
    };
    vec![
        member(
            uuid!("3c9d2e1f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"),
            "owner@acme.example",
            "Ada Owner",
            "emp_owner",
            MemberRole::Owner,
        ),
        member(
            uuid!("7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"),
            "billing@acme.example",
            "Bill Manager",
            "emp_billing",
            MemberRole::BillingManager,
        ),
        member(
            uuid!("0f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f"),
            "dev@acme.example",
            "Dee Member",
            "emp_dev",
            MemberRole::Member,
        ),
    ]
}

/// Store the demo customers in a shared store that may have them already: upserts by
/// fixed ids, so every start of every instance leaves the same customers.
#[cfg_attr(not(any(feature = "redis", feature = "postgres")), allow(dead_code))]
pub async fn upsert(store: &impl CustomerStore) -> Result<Demo, StoreError> {
    Ok(Demo {
        individual: store.upsert_customer(individual().into()).await?,
        team: store.upsert_customer(team().into()).await?,
        members: members(),
    })
}

fn individual() -> CustomerData {
    let email = "customer@example.com";
    let mut c =
        CustomerData::new(time("2025-01-07T10:41:47.370925Z")).organization(ORGANIZATION_ID);
    c.id = uuid!("992fae2a-2a17-4b7a-8d9e-e287cf90131b");
    c.modified_at = Some(time("2025-02-11T08:03:12.551208Z"));
    c.metadata = Metadata::from([
        ("plan".to_owned(), MetadataValue::from("pro")),
        ("seats".to_owned(), MetadataValue::from(5_i64)),
        ("ratio".to_owned(), MetadataValue::from(0.75)),
        ("beta".to_owned(), MetadataValue::from(true)),
    ]);
    c.external_id = Some("usr_1337".to_owned());
    c.email = Some(email.to_owned());
    c.email_verified = true;
    c.name = Some("John Doe".to_owned());
    c.billing_name = Some("John Doe".to_owned());
    c.billing_address = Some(Address {
        line1: Some("123 Main St".to_owned()),
        postal_code: Some("94105".to_owned()),
        city: Some("San Francisco".to_owned()),
        // Polar normalizes US and Canadian states to ISO 3166-2.
        state: Some("US-CA".to_owned()),
        ..Address::new("US")
    });
    c.tax_id = Some(TaxId::new("911144442", TaxIdFormat::new("us_ein")));
    c.locale = Some("en".to_owned());
    c.avatar_url = Some(gravatar(email));
    c
}

fn team() -> CustomerData {
    let mut c = CustomerData::new(time("2026-01-01T00:00:00Z")).organization(ORGANIZATION_ID);
    c.id = uuid!("5f0c6a8e-2b0e-4a77-9a39-3f1d2c4b5e61");
    c.customer_type = CustomerType::Team;
    c.name = Some("Acme Inc.".to_owned());
    c.billing_address = Some(Address::new("FR"));
    c.tax_id = Some(TaxId::new("FR61954506077", TaxIdFormat::new("eu_vat")));
    c.first_user_event_at = Some(time("2026-01-03T12:00:00.500000Z"));
    // No email and so no avatar: Polar's avatar URL is derived from the email.
    c
}

/// Polar's avatar for an email: Gravatar keyed by SHA-256 of the lowercased address.
fn gravatar(email: &str) -> String {
    let digest = Sha256::digest(email.to_lowercase().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("https://www.gravatar.com/avatar/{hex}?d=404")
}

fn time(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("demo timestamps are valid RFC 3339")
        .to_utc()
}
