//! What the layer puts into request extensions for the handler.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::{Member, MemberRole};
use crate::token::{TokenHash, TokenKind};

/// Where the token of an authenticated request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialSource {
    /// `Authorization: Bearer …`.
    Header,
    /// The session cookie.
    Cookie,
}

/// The non-secret facts of the session that authenticated a request.
///
/// Inserted next to the [`Customer`](crate::Customer) on success. It holds the token's
/// *hash* (so the handler can revoke the current session) but never the token.
///
/// ```
/// # use tower_customer_session::SessionInfo;
/// fn describe(info: &SessionInfo) -> String {
///     format!("session {} for {} until {}", info.id, info.customer_id, info.expires_at)
/// }
/// ```
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The session's id.
    pub id: Uuid,
    /// The authenticated customer's id.
    pub customer_id: Uuid,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
    /// Customer or member session.
    pub kind: TokenKind,
    /// Header or cookie.
    pub source: CredentialSource,
    /// The session's return URL, if any.
    pub return_url: Option<Arc<str>>,
    /// The token's keyed hash, e.g. for
    /// [`SessionManager::revoke_hash`](crate::SessionManager::revoke_hash).
    pub token_hash: TokenHash,
    /// For a member session, the member it acts for; `None` for a customer session. Shared,
    /// so that handing it to each request costs no copy.
    pub member: Option<Arc<Member>>,
}

impl SessionInfo {
    /// The role this session acts with, as Polar's portal judges it: a member session has
    /// its member's role; a customer session has no member and counts as the owner. `None`
    /// for a member session whose member the store did not say.
    ///
    /// ```
    /// # use tower_customer_session::SessionInfo;
    /// use tower_customer_session::model::MemberRole;
    ///
    /// fn may_change_billing(info: &SessionInfo) -> bool {
    ///     info.role().is_some_and(|role| role.manages_billing())
    /// }
    /// # let _ = (may_change_billing, MemberRole::Owner);
    /// ```
    pub fn role(&self) -> Option<&MemberRole> {
        match (&self.member, self.kind) {
            (Some(member), _) => Some(&member.role),
            (None, TokenKind::Customer) => Some(&MemberRole::Owner),
            (None, TokenKind::Member) => None,
        }
    }
}

/// Marks a request that passed an optional layer without credentials, so extractors can tell
/// "anonymous" from "no layer at all".
#[derive(Debug, Clone)]
pub(crate) struct Anonymous {
    /// The layer's `WWW-Authenticate` challenge, for extractors and guards that must answer
    /// 401.
    pub(crate) challenge: http::HeaderValue,
}
