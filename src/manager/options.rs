//! [`CreateSession`]: what a new session is made with.

use crate::model::Member;
use crate::token::TokenKind;

/// Options for [`SessionManager::create`](crate::SessionManager::create).
///
/// ```
/// use tower_customer_session::CreateSession;
/// use tower_customer_session::token::TokenKind;
///
/// let options = CreateSession::default()
///     .return_url("https://shop.example/account")
///     .kind(TokenKind::Member);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct CreateSession {
    pub(super) kind: TokenKind,
    pub(super) return_url: Option<String>,
    pub(super) member: Option<Member>,
}

impl CreateSession {
    /// Where the portal sends the customer back to. Default: none.
    pub fn return_url(mut self, url: impl Into<String>) -> Self {
        self.return_url = Some(url.into());
        self
    }

    /// Customer or member session. Default: [`TokenKind::Customer`]. A customer session
    /// has no member, so this drops one set by [`member`](Self::member).
    pub fn kind(mut self, kind: TokenKind) -> Self {
        self.kind = kind;
        if kind == TokenKind::Customer {
            self.member = None;
        }
        self
    }

    /// A member session (`polar_mst_…`) acting for `member` of the customer; the store keeps
    /// the member with the session and handlers see it in [`SessionInfo::member`](crate::SessionInfo::member). Sets the
    /// kind to [`TokenKind::Member`]. Default: none (a customer session).
    ///
    /// The caller vouches that `member` belongs to the customer: stores keep members with
    /// sessions, not in a directory of their own.
    ///
    /// ```
    /// use tower_customer_session::CreateSession;
    /// use tower_customer_session::model::{Member, MemberRole};
    ///
    /// let options = CreateSession::default()
    ///     .member(Member::new(uuid::Uuid::new_v4(), MemberRole::BillingManager));
    /// # let _ = options;
    /// ```
    pub fn member(mut self, member: Member) -> Self {
        self.kind = TokenKind::Member;
        self.member = Some(member);
        self
    }
}
