//! Members of team customers: who a member session (`polar_mst_…`) acts for, and their role.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// A member's role within its team customer (Polar's `MemberRole`), written as a string.
///
/// Polar documents `owner`, `billing_manager` and `member`; any other value is kept as
/// [`Other`](Self::Other) and grants nothing.
///
/// ```
/// use tower_customer_session::model::MemberRole;
///
/// let role: MemberRole = serde_json::from_str(r#""billing_manager""#).unwrap();
/// assert_eq!(role, MemberRole::BillingManager);
/// assert!(role.manages_billing());
/// assert!(!MemberRole::Member.manages_billing());
/// assert_eq!(MemberRole::from("auditor"), MemberRole::Other("auditor".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MemberRole {
    /// Owns the team: every permission (`"owner"`).
    Owner,
    /// May manage billing: payment methods, billing details, subscriptions
    /// (`"billing_manager"`).
    BillingManager,
    /// Uses what the team bought; no billing access (`"member"`).
    Member,
    /// A role this crate does not know; it satisfies no role requirement.
    Other(String),
}

impl MemberRole {
    /// The wire value.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Owner => "owner",
            Self::BillingManager => "billing_manager",
            Self::Member => "member",
            Self::Other(other) => other,
        }
    }

    /// Whether this role may change billing details, as Polar's portal decides it: owners
    /// and billing managers.
    pub fn manages_billing(&self) -> bool {
        matches!(self, Self::Owner | Self::BillingManager)
    }
}

impl From<&str> for MemberRole {
    fn from(value: &str) -> Self {
        match value {
            "owner" => Self::Owner,
            "billing_manager" => Self::BillingManager,
            "member" => Self::Member,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for MemberRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for MemberRole {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MemberRole {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Self::from(value.as_ref()))
    }
}

/// The member a member session acts for: the part of Polar's `Member` a request handler
/// needs. A customer session has none.
///
/// ```
/// use tower_customer_session::model::{Member, MemberRole};
///
/// let member = Member::new(uuid::Uuid::new_v4(), MemberRole::Owner);
/// assert!(member.role.manages_billing());
/// assert_eq!(member.external_id, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's id.
    pub id: Uuid,
    /// The member's email address, if known.
    #[serde(default)]
    pub email: Option<String>,
    /// The member's display name, if known.
    #[serde(default)]
    pub name: Option<String>,
    /// The merchant's own id for this member (Polar's `external_member_id` on input).
    #[serde(default)]
    pub external_id: Option<String>,
    /// The member's role within the team.
    pub role: MemberRole,
}

impl Member {
    /// A member with `id` and `role`, and nothing else known.
    pub fn new(id: Uuid, role: MemberRole) -> Self {
        Self {
            id,
            email: None,
            name: None,
            external_id: None,
            role,
        }
    }
}
