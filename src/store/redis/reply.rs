//! Reading the server's replies: driver errors, reply shapes, records.

use chrono::{DateTime, Utc};
use redis::{RedisError, Value};

use super::record::{self, RecordError};
use crate::model::{Customer, truncate_to_micros};
use crate::store::{NewSession, SessionRecord, StoreError};

/// A driver error as a store error; the driver's own response timeout counts as a timeout.
pub(super) fn redis_error(error: RedisError) -> StoreError {
    if error.is_timeout() {
        StoreError::Timeout
    } else {
        StoreError::backend(error)
    }
}

/// An integer reply.
pub(super) fn int(value: Value, script: &'static str) -> Result<i64, StoreError> {
    match value {
        Value::Int(value) => Ok(value),
        _ => Err(unexpected_reply(script)),
    }
}

/// The record `create` returns, from the request and the customer's `{v, del, data}`.
pub(super) fn created(session: NewSession, customer: Value) -> Result<SessionRecord, StoreError> {
    // A customer in a format this build cannot read fails here, after the session was
    // stored: its token is never handed out, and the record expires unused.
    let customer =
        decode_customer(customer, "create")?.ok_or_else(|| unexpected_reply("create"))?;
    // As a later load will return it: the store keeps microseconds.
    let mut record = session.into_record(customer);
    record.created_at = truncate_to_micros(record.created_at);
    record.expires_at = truncate_to_micros(record.expires_at);
    Ok(record)
}

pub(super) fn record_error(error: RecordError) -> StoreError {
    StoreError::backend(error)
}

pub(super) fn unexpected_reply(script: &'static str) -> StoreError {
    StoreError::backend(format!("unexpected reply from the {script} script"))
}

/// A string reply, or `None` for nil.
pub(super) fn bytes(value: Value) -> Result<Option<Vec<u8>>, ()> {
    match value {
        Value::Nil => Ok(None),
        Value::BulkString(bytes) => Ok(Some(bytes)),
        Value::SimpleString(text) => Ok(Some(text.into_bytes())),
        _ => Err(()),
    }
}

/// The `{v, del, data}` reply of `HMGET`, or `None` for nil.
pub(super) fn customer_fields(value: Value) -> Result<Option<[Option<Vec<u8>>; 3]>, ()> {
    match value {
        Value::Nil => Ok(None),
        Value::Array(fields) => {
            let [v, del, data]: [Value; 3] = fields.try_into().map_err(|_| ())?;
            Ok(Some([bytes(v)?, bytes(del)?, bytes(data)?]))
        }
        _ => Err(()),
    }
}

pub(super) fn decode_customer(
    value: Value,
    script: &'static str,
) -> Result<Option<Customer>, StoreError> {
    match customer_fields(value).map_err(|()| unexpected_reply(script))? {
        Some(fields) => record::decode_customer(fields).map_err(record_error),
        None => Ok(None),
    }
}

/// Expiry in whole milliseconds, rounded up so the key outlives `expires_at` (the load
/// judges expiry to the microsecond); at least 1, which Redis accepts.
pub(super) fn expiry_millis(expires_at: DateTime<Utc>) -> i64 {
    let micros = expires_at.timestamp_micros();
    (micros.div_euclid(1000) + i64::from(micros.rem_euclid(1000) != 0)).max(1)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use chrono::Utc;

    use super::*;

    #[test]
    fn expiry_rounds_up_to_the_millisecond() {
        let at = |micros| Utc.timestamp_micros(micros).unwrap();
        assert_eq!(expiry_millis(at(1_700_000_000_000_000)), 1_700_000_000_000);
        assert_eq!(expiry_millis(at(1_700_000_000_000_001)), 1_700_000_000_001);
        assert_eq!(expiry_millis(at(1_700_000_000_000_999)), 1_700_000_000_001);
        assert_eq!(expiry_millis(at(0)), 1);
        assert_eq!(expiry_millis(at(-5_000)), 1);
    }

    #[test]
    fn replies_of_the_wrong_shape_are_errors() {
        assert!(customer_fields(Value::Int(1)).is_err());
        assert!(customer_fields(Value::Array(vec![Value::Nil])).is_err());
        assert!(bytes(Value::Array(vec![])).is_err());
        assert_eq!(customer_fields(Value::Nil), Ok(None));
    }
}
