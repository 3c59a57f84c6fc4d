//! Rows to records and records to parameters.

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::{Postgres, Row};

use super::schema::SESSION_COLUMNS;
use crate::model::{Address, Customer, CustomerData, CustomerType, Member, Metadata, TaxId};
use crate::store::SessionRecord;
use crate::token::{TokenHash, TokenKind};

fn decode_error(what: &'static str) -> sqlx::Error {
    sqlx::Error::Decode(what.into())
}

/// A customer whose columns start at index `at` of `row`.
pub(super) fn customer(row: &PgRow, at: usize) -> Result<Customer, sqlx::Error> {
    let customer_type = match row.try_get::<&str, _>(at + 7)? {
        "individual" => CustomerType::Individual,
        "team" => CustomerType::Team,
        _ => return Err(decode_error("unknown customer type")),
    };
    Ok(Customer::new(CustomerData {
        id: row.try_get(at)?,
        created_at: row.try_get(at + 1)?,
        modified_at: row.try_get(at + 2)?,
        metadata: in_order(
            row.try_get::<Json<Metadata>, _>(at + 3)?.0,
            row.try_get(at + 18)?,
        ),
        external_id: row.try_get(at + 4)?,
        email: row.try_get(at + 5)?,
        email_verified: row.try_get(at + 6)?,
        customer_type,
        name: row.try_get(at + 8)?,
        billing_name: row.try_get(at + 9)?,
        billing_address: row
            .try_get::<Option<Json<Address>>, _>(at + 10)?
            .map(|json| json.0),
        tax_id: row
            .try_get::<Option<Json<TaxId>>, _>(at + 11)?
            .map(|json| json.0),
        locale: row.try_get(at + 12)?,
        organization_id: row.try_get(at + 13)?,
        default_payment_method_id: row.try_get(at + 14)?,
        deleted_at: row.try_get(at + 15)?,
        first_user_event_at: row.try_get(at + 16)?,
        avatar_url: row.try_get(at + 17)?,
    }))
}

/// `metadata` in the key order kept beside it (`jsonb` has an order of its own); keys the
/// order does not name (another program wrote the row) follow in `jsonb`'s order.
fn in_order(mut metadata: Metadata, keys: Option<Vec<String>>) -> Metadata {
    let Some(keys) = keys else {
        return metadata;
    };
    let mut ordered = Metadata::with_capacity(metadata.len());
    for key in keys {
        if let Some((key, value)) = metadata.shift_remove_entry(&key) {
            ordered.insert(key, value);
        }
    }
    ordered.extend(metadata);
    ordered
}

/// A row of the load statement: the session's columns, then its customer's.
pub(super) fn session(row: &PgRow) -> Result<SessionRecord, sqlx::Error> {
    let token_hash = TokenHash::from_hex(row.try_get::<&str, _>(0)?)
        .ok_or_else(|| decode_error("token is not 64 hex digits"))?;
    Ok(SessionRecord {
        token_hash,
        id: row.try_get(1)?,
        kind: kind(row.try_get(2)?)?,
        created_at: row.try_get(3)?,
        modified_at: row.try_get(4)?,
        expires_at: row.try_get(5)?,
        return_url: row.try_get(6)?,
        member: row
            .try_get::<Option<Json<Member>>, _>(7)?
            .map(|json| json.0),
        customer: customer(row, SESSION_COLUMNS.len())?,
    })
}

pub(super) fn kind(stored: &str) -> Result<TokenKind, sqlx::Error> {
    match stored {
        "customer" => Ok(TokenKind::Customer),
        "member" => Ok(TokenKind::Member),
        _ => Err(decode_error("unknown session kind")),
    }
}

/// Bind every customer column, in [`CUSTOMER_COLUMNS`](super::schema::CUSTOMER_COLUMNS) order.
pub(super) fn bind_customer<'q>(
    query: Query<'q, Postgres, PgArguments>,
    c: &'q CustomerData,
) -> Query<'q, Postgres, PgArguments> {
    let customer_type = match c.customer_type {
        CustomerType::Individual => "individual",
        CustomerType::Team => "team",
    };
    query
        .bind(c.id)
        .bind(c.created_at)
        .bind(c.modified_at)
        .bind(Json(&c.metadata))
        .bind(c.external_id.as_deref())
        .bind(c.email.as_deref())
        .bind(c.email_verified)
        .bind(customer_type)
        .bind(c.name.as_deref())
        .bind(c.billing_name.as_deref())
        .bind(c.billing_address.as_ref().map(Json))
        .bind(c.tax_id.as_ref().map(Json))
        .bind(c.locale.as_deref())
        .bind(c.organization_id)
        .bind(c.default_payment_method_id)
        .bind(c.deleted_at)
        .bind(c.first_user_event_at)
        .bind(c.avatar_url.as_deref())
        .bind(c.metadata.keys().map(String::as_str).collect::<Vec<&str>>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MetadataValue;

    fn metadata(keys: &[&str]) -> Metadata {
        keys.iter()
            .map(|key| ((*key).to_owned(), MetadataValue::Bool(true)))
            .collect()
    }

    #[test]
    fn metadata_comes_back_in_the_order_kept_beside_it() {
        // jsonb's own order: shorter keys first.
        let stored = metadata(&["beta", "plan", "zone", "seats"]);
        let keys = ["zone", "plan", "seats", "beta"]
            .map(str::to_owned)
            .to_vec();
        let read: Vec<String> = in_order(stored.clone(), Some(keys)).into_keys().collect();
        assert_eq!(read, ["zone", "plan", "seats", "beta"]);
        // Written by another program: what the order does not name follows, gone keys go.
        let keys = ["gone", "seats"].map(str::to_owned).to_vec();
        let read: Vec<String> = in_order(stored.clone(), Some(keys)).into_keys().collect();
        assert_eq!(read, ["seats", "beta", "plan", "zone"]);
        assert_eq!(in_order(stored.clone(), None), stored);
    }
}
