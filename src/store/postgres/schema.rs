//! The schema name, the channel derived from it, and every statement the store runs.

use super::PostgresError;

/// Longest accepted schema name: the feed's channel (`customer_session_feed:` + schema) must
/// fit PostgreSQL's 63-byte identifier limit.
const MAX_SCHEMA_LEN: usize = 40;

/// Prefix of the feed's `NOTIFY` channel; the triggers build the same name from
/// `TG_TABLE_SCHEMA` (migration 0002).
const CHANNEL_PREFIX: &str = "customer_session_feed:";

/// The customer columns, in the order [`rows::customer`](super::rows::customer) reads them.
pub(super) const CUSTOMER_COLUMNS: [&str; 19] = [
    "id",
    "created_at",
    "modified_at",
    "metadata",
    "external_id",
    "email",
    "email_verified",
    "type",
    "name",
    "billing_name",
    "billing_address",
    "tax_id",
    "locale",
    "organization_id",
    "default_payment_method_id",
    "deleted_at",
    "first_user_event_at",
    "avatar_url",
    "metadata_keys",
];

/// The session columns [`rows::session`](super::rows::session) reads, before the customer's.
/// `id` is `CustomerSession::id` and `SessionInfo::id`, what admin tools find a row by (the
/// README's PostgreSQL section says so).
pub(super) const SESSION_COLUMNS: [&str; 8] = [
    "token",
    "id",
    "kind",
    "created_at",
    "modified_at",
    "expires_at",
    "return_url",
    "member",
];

/// A validated schema name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Schema(String);

impl Schema {
    /// Accept `[a-z_][a-z0-9_]*` up to 40 bytes, not `pg_…` (reserved by PostgreSQL). Only
    /// such names are ever put into SQL text, always double-quoted as well.
    pub(super) fn new(name: &str) -> Result<Self, PostgresError> {
        let bytes = name.as_bytes();
        let valid = !bytes.is_empty()
            && bytes.len() <= MAX_SCHEMA_LEN
            && !bytes[0].is_ascii_digit()
            && !name.starts_with("pg_")
            && bytes
                .iter()
                .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(PostgresError::InvalidSchema(name.to_owned()))
        }
    }

    pub(super) fn name(&self) -> &str {
        &self.0
    }

    /// `"name"`: safe to splice into SQL, since the name holds no quote.
    pub(super) fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }

    /// The `LISTEN` channel the triggers notify for this schema.
    pub(super) fn channel(&self) -> String {
        format!("{CHANNEL_PREFIX}{}", self.0)
    }
}

/// Every statement, with the schema spliced in once at startup.
#[derive(Debug)]
pub(super) struct Statements {
    pub(super) load: String,
    pub(super) create: String,
    pub(super) revoke: String,
    pub(super) revoke_all: String,
    pub(super) upsert_customer: String,
    pub(super) customer_by_id: String,
    pub(super) customer_by_external_id: String,
    pub(super) delete_customer: String,
    pub(super) delete_expired: String,
}

fn columns(prefix: &str, names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("{prefix}{name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Statements {
    pub(super) fn new(schema: &Schema) -> Self {
        let q = schema.quoted();
        // A literal: the name holds no quote (see `Schema::new`).
        let channel = format!("'{}'", schema.channel());
        // `a:<customer>:<$2 in microseconds>` (`Invalidation::CustomerRevoked`).
        let customer_revoked =
            "'a:' || $1::text || ':' || (extract(epoch FROM $2::timestamptz) * 1000000)::bigint";
        let customer = columns("", &CUSTOMER_COLUMNS);
        let c_customer = columns("c.", &CUSTOMER_COLUMNS);
        let s_session = columns("s.", &SESSION_COLUMNS);
        let placeholders = (1..=CUSTOMER_COLUMNS.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let updates = CUSTOMER_COLUMNS[1..]
            .iter()
            .map(|name| format!("{name} = EXCLUDED.{name}"))
            .collect::<Vec<_>>()
            .join(", ");
        Self {
            // The whole rule in one statement: hash matches, session not deleted nor expired
            // (by the database clock), customer not deleted. `$1::bpchar` keeps the unique
            // index on the char(64) column usable.
            load: format!(
                "SELECT {s_session}, {c_customer} \
                 FROM {q}.customer_sessions s JOIN {q}.customers c ON c.id = s.customer_id \
                 WHERE s.token = $1::bpchar AND s.deleted_at IS NULL AND s.expires_at > now() \
                 AND c.deleted_at IS NULL"
            ),
            // Resolve the live customer (locked against a concurrent soft delete), insert if
            // the hash is new, and say which happened: no row = unknown customer, `false` =
            // conflict.
            create: format!(
                "WITH customer AS ( \
                     SELECT {customer} FROM {q}.customers \
                     WHERE deleted_at IS NULL AND (id = $1 OR external_id = $2) \
                     LIMIT 1 FOR SHARE \
                 ), inserted AS ( \
                     INSERT INTO {q}.customer_sessions \
                         (id, token, kind, customer_id, created_at, expires_at, return_url, member) \
                     SELECT $3, $4::bpchar, $5, customer.id, $6, $7, $8, $9 FROM customer \
                     ON CONFLICT DO NOTHING \
                     RETURNING 1 \
                 ) \
                 SELECT EXISTS (SELECT 1 FROM inserted), {customer} FROM customer"
            ),
            // Soft deletes stamped with the call's own time `$2`: run again after a commit
            // whose answer was lost, a statement recognises what its first attempt did
            // (the outer query sees the rows as they were before this attempt).
            // Each also announces, in the same transaction, that the revocation went through
            // the API (`r:` / `a:`, remembered by every instance that hears it), beside the
            // triggers' plain `s:` for each row. The announcing CTE is read by the outer
            // query so that it runs.
            revoke: format!(
                "WITH revoked AS ( \
                     UPDATE {q}.customer_sessions SET deleted_at = $2 \
                     WHERE token = $1::bpchar AND deleted_at IS NULL RETURNING 1 \
                 ), announced AS ( \
                     SELECT pg_catalog.pg_notify({channel}, 'r:' || $1) FROM revoked \
                 ) \
                 SELECT EXISTS (SELECT 1 FROM revoked) OR EXISTS ( \
                     SELECT 1 FROM {q}.customer_sessions \
                     WHERE token = $1::bpchar AND deleted_at = $2 \
                 ), (SELECT count(*) FROM announced)"
            ),
            revoke_all: format!(
                "WITH revoked AS ( \
                     UPDATE {q}.customer_sessions SET deleted_at = $2 \
                     WHERE customer_id = $1 AND deleted_at IS NULL RETURNING 1 \
                 ), announced AS ( \
                     SELECT pg_catalog.pg_notify({channel}, {customer_revoked}) \
                 ) \
                 SELECT (SELECT count(*) FROM revoked) + ( \
                     SELECT count(*) FROM {q}.customer_sessions \
                     WHERE customer_id = $1 AND deleted_at = $2 \
                 ), (SELECT count(*) FROM announced)"
            ),
            upsert_customer: format!(
                "INSERT INTO {q}.customers ({customer}) VALUES ({placeholders}) \
                 ON CONFLICT (id) DO UPDATE SET {updates} \
                 RETURNING {customer}"
            ),
            customer_by_id: format!("SELECT {customer} FROM {q}.customers WHERE id = $1"),
            // A live customer first, then the most recently created deleted one.
            customer_by_external_id: format!(
                "SELECT {customer} FROM {q}.customers WHERE external_id = $1 \
                 ORDER BY deleted_at IS NULL DESC, created_at DESC LIMIT 1"
            ),
            // The first deletion time stands; deleting again changes nothing (and so
            // announces nothing).
            delete_customer: format!(
                "WITH deleted AS ( \
                     UPDATE {q}.customers SET deleted_at = COALESCE(deleted_at, $2) \
                     WHERE id = $1 RETURNING 1 \
                 ), announced AS ( \
                     SELECT pg_catalog.pg_notify({channel}, {customer_revoked}) FROM deleted \
                 ) \
                 SELECT 1, (SELECT count(*) FROM announced) FROM deleted"
            ),
            // In batches, oldest first, skipping rows another sweep holds: short statements
            // however large the backlog.
            delete_expired: format!(
                "WITH doomed AS ( \
                     SELECT id FROM {q}.customer_sessions WHERE expires_at <= now() \
                     ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED \
                 ), deleted AS ( \
                     DELETE FROM {q}.customer_sessions s USING doomed WHERE s.id = doomed.id \
                     RETURNING 1 \
                 ) \
                 SELECT count(*) FROM deleted"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Schema;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["public", "customer_session", "_x", "s1", &"a".repeat(40)] {
            let schema = Schema::new(good).expect(good);
            assert_eq!(schema.quoted(), format!("\"{good}\""));
            assert!(schema.channel().len() <= 63, "channel fits an identifier");
        }
        for bad in [
            "",
            "Public",
            "1abc",
            "pg_catalog",
            "a-b",
            "a b",
            "a\"; DROP TABLE x; --",
            "caf\u{e9}",
            &"a".repeat(41),
        ] {
            assert!(Schema::new(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
