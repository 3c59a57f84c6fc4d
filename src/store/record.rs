//! What stores hold and return: session records and the requests that create them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::{Customer, Member};
use crate::token::{TokenHash, TokenKind};

/// A stored session joined with its customer: what [`SessionStore::load`](super::SessionStore::load) returns.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// The session's own id.
    pub id: Uuid,
    /// `HMAC-SHA256(secret, token)`; the only form of the token a local store holds.
    pub token_hash: TokenHash,
    /// Customer or member session.
    pub kind: TokenKind,
    /// The customer the session authenticates.
    pub customer: Customer,
    /// When the session was created.
    pub created_at: DateTime<Utc>,
    /// When the session was last modified, if ever.
    pub modified_at: Option<DateTime<Utc>>,
    /// Absolute end of the session (Polar: creation + 1 hour, no sliding).
    pub expires_at: DateTime<Utc>,
    /// Where the portal sends the customer back to, if set.
    pub return_url: Option<String>,
    /// For a member session, the member it acts for (`None` for customer sessions).
    pub member: Option<Member>,
}

/// Which customer a new session is for.
///
/// ```
/// use tower_customer_session::store::CustomerRef;
///
/// assert_eq!(CustomerRef::from("usr_1337"), CustomerRef::ExternalId("usr_1337".into()));
/// let id = uuid::Uuid::new_v4();
/// assert_eq!(CustomerRef::from(id), CustomerRef::Id(id));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CustomerRef {
    /// By customer id.
    Id(Uuid),
    /// By the merchant's own id (`external_id`).
    ExternalId(String),
}

impl From<Uuid> for CustomerRef {
    fn from(id: Uuid) -> Self {
        Self::Id(id)
    }
}

impl From<&str> for CustomerRef {
    fn from(external_id: &str) -> Self {
        Self::ExternalId(external_id.to_owned())
    }
}

impl From<String> for CustomerRef {
    fn from(external_id: String) -> Self {
        Self::ExternalId(external_id)
    }
}

/// A session to insert: everything but the customer, which the store resolves.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The new session's id.
    pub id: Uuid,
    /// Hash of the freshly generated token.
    pub token_hash: TokenHash,
    /// Customer or member session.
    pub kind: TokenKind,
    /// The customer, by id or external id.
    pub customer: CustomerRef,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Absolute expiry.
    pub expires_at: DateTime<Utc>,
    /// Optional return URL.
    pub return_url: Option<String>,
    /// For a member session, the member it acts for; the store keeps it with the session
    /// and returns it from `load`.
    pub member: Option<Member>,
}

impl NewSession {
    /// The stored form once the store has resolved `customer`.
    pub fn into_record(self, customer: Customer) -> SessionRecord {
        SessionRecord {
            id: self.id,
            token_hash: self.token_hash,
            kind: self.kind,
            customer,
            created_at: self.created_at,
            modified_at: None,
            expires_at: self.expires_at,
            return_url: self.return_url,
            member: self.member,
        }
    }
}
