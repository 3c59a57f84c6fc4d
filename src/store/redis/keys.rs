//! The key layout. Every key starts with the configured prefix. On a single server (or
//! through Sentinel):
//!
//! | key | type | holds | expires |
//! |---|---|---|---|
//! | `{prefix}s:{token hash, hex}` | string | a session: `{version}\|{customer id}\|{body}` | at the session's `expires_at` |
//! | `{prefix}c:{customer id}` | hash | a customer: `v`, `data`, optional `del`, `ext` | never |
//! | `{prefix}cs:{customer id}` | set | token hashes of the customer's sessions | with its longest-lived member |
//! | `{prefix}x:{external id}` | string | the customer id of an external id | never |
//! | `{prefix}epoch` | string | a random id, written once (`SET NX`): which data set this is | never |
//!
//! On a Cluster, chosen at connect, the customer's keys carry the customer id as a hash
//! tag (the braces below are literal), so a customer, its session index and its
//! generation share one slot; sessions and external ids hash on their whole key:
//!
//! | key | type | holds | expires |
//! |---|---|---|---|
//! | `{prefix}s:{token hash, hex}` | string | a session: as above, its body also holding the customer's `generation` when it was created | at the session's `expires_at` |
//! | `{prefix}c:{{customer id}}` | hash | a customer, as above | never |
//! | `{prefix}cs:{{customer id}}` | set | token hashes of the customer's sessions | with its longest-lived member |
//! | `{prefix}cg:{{customer id}}` | string | the customer's generation: a counter `revoke_all` increments; a session created under an older one is revoked | never |
//! | `{prefix}x:{external id}` | string | the customer id of an external id | never |
//! | `{prefix}epoch:{{k}}` | string | the data set's marker, one per shard channel `k` (same slot as the channel) | never |
//!
//! The single-server Lua scripts get these sub-prefixes as arguments, so the layout is
//! spelled out here only; the Cluster scripts get every key whole (`KEYS`), as Cluster
//! requires.

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
    generation: String,
    /// Customer keys carry the customer id as a hash tag (Cluster).
    tagged: bool,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            session: format!("{prefix}s:"),
            customer: format!("{prefix}c:"),
            index: format!("{prefix}cs:"),
            external: format!("{prefix}x:"),
            generation: format!("{prefix}cg:"),
            tagged: false,
        }
    }

    /// The Cluster layout: customer-scoped keys tagged by customer id.
    pub(super) fn cluster(prefix: &str) -> Self {
        Self {
            tagged: true,
            ..Self::new(prefix)
        }
    }

    /// The marker of the data set for shard channel `k` (Cluster).
    pub(super) fn shard_epoch(&self, k: usize) -> String {
        format!("{}epoch:{{{k}}}", self.prefix)
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
        self.customer_scoped(&self.customer, id)
    }

    pub(super) fn index(&self, id: Uuid) -> String {
        self.customer_scoped(&self.index, id)
    }

    /// The customer's generation (Cluster layout only).
    pub(super) fn generation(&self, id: Uuid) -> String {
        self.customer_scoped(&self.generation, id)
    }

    fn customer_scoped(&self, sub_prefix: &str, id: Uuid) -> String {
        if self.tagged {
            format!("{sub_prefix}{{{id}}}")
        } else {
            format!("{sub_prefix}{id}")
        }
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

    #[test]
    fn on_a_cluster_a_customers_keys_share_a_slot() {
        use super::super::cluster::slot;
        let keys = Keys::cluster("shop:");
        let id = Uuid::nil();
        assert_eq!(
            keys.customer(id),
            "shop:c:{00000000-0000-0000-0000-000000000000}"
        );
        for _ in 0..100 {
            let id = Uuid::new_v4();
            let customer = slot::of(keys.customer(id).as_bytes());
            assert_eq!(slot::of(keys.index(id).as_bytes()), customer);
            assert_eq!(slot::of(keys.generation(id).as_bytes()), customer);
        }
        // The session keys are not tagged: they spread over the slots.
        let hash = TokenHash::from_bytes([0xab; 32]);
        assert_eq!(keys.session(&hash), Keys::new("shop:").session(&hash));
    }
}
