//! The key layout. Every key starts with the configured prefix:
//!
//! | key | type | holds | expires |
//! |---|---|---|---|
//! | `{prefix}s:{token hash, hex}` | string | a session: `{version}\|{customer id}\|{body}` | at the session's `expires_at` |
//! | `{prefix}c:{customer id}` | hash | a customer: `v`, `data`, optional `del`, `ext` | never |
//! | `{prefix}cs:{customer id}` | set | token hashes of the customer's sessions | with its longest-lived member |
//! | `{prefix}x:{external id}` | string | the customer id of an external id | never |
//! | `{prefix}epoch` | string | a random id, written once (`SET NX`): which data set this is | never |
//!
//! The Lua scripts get these sub-prefixes as arguments, so the layout is spelled out here
//! only.

use uuid::Uuid;

use crate::token::TokenHash;

/// The key names for one prefix.
#[derive(Clone)]
pub(super) struct Keys {
    prefix: String,
    session: String,
    customer: String,
    index: String,
    external: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            session: format!("{prefix}s:"),
            customer: format!("{prefix}c:"),
            index: format!("{prefix}cs:"),
            external: format!("{prefix}x:"),
        }
    }

    /// The marker of the data set.
    pub(super) fn epoch(&self) -> String {
        format!("{}epoch", self.prefix)
    }

    /// The prefix every key starts with.
    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(super) fn session(&self, hash: &TokenHash) -> String {
        self.session_hex(&hash.to_hex())
    }

    pub(super) fn session_hex(&self, hex: &str) -> String {
        let mut key = String::with_capacity(self.session.len() + hex.len());
        key.push_str(&self.session);
        key.push_str(hex);
        key
    }

    pub(super) fn customer(&self, id: Uuid) -> String {
        format!("{}{id}", self.customer)
    }

    pub(super) fn index(&self, id: Uuid) -> String {
        format!("{}{id}", self.index)
    }

    pub(super) fn external(&self, external_id: &str) -> String {
        format!("{}{external_id}", self.external)
    }

    /// `{prefix}s:`, for scripts that walk a customer's sessions.
    pub(super) fn session_prefix(&self) -> &str {
        &self.session
    }

    /// `{prefix}c:`, for scripts that find a customer from a session.
    pub(super) fn customer_prefix(&self) -> &str {
        &self.customer
    }

    /// `{prefix}cs:`, for scripts that keep the per-customer index.
    pub(super) fn index_prefix(&self) -> &str {
        &self.index
    }

    /// `{prefix}x:`, for scripts that resolve or move external ids.
    pub(super) fn external_prefix(&self) -> &str {
        &self.external
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_starts_with_the_prefix() {
        let keys = Keys::new("shop:");
        let id = Uuid::nil();
        let hash = TokenHash::from_bytes([0xab; 32]);
        assert_eq!(keys.session(&hash), format!("shop:s:{}", "ab".repeat(32)));
        assert_eq!(
            keys.customer(id),
            "shop:c:00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(
            keys.index(id),
            "shop:cs:00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(keys.external("usr_1"), "shop:x:usr_1");
        assert!(keys.session(&hash).starts_with(keys.session_prefix()));
        assert!(keys.customer(id).starts_with(keys.customer_prefix()));
        assert!(keys.index(id).starts_with(keys.index_prefix()));
        assert!(keys.external("e").starts_with(keys.external_prefix()));
    }
}
