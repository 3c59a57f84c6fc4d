//! What the layer puts into request extensions for the handler.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

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
}

/// Marks a request that passed an optional layer without credentials, so extractors can tell
/// "anonymous" from "no layer at all".
#[derive(Debug, Clone)]
pub(crate) struct Anonymous {
    /// The layer's `WWW-Authenticate` challenge, for extractors that must answer 401.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) challenge: http::HeaderValue,
}
