//! The stored formats. Each record names its format version first, so a later format can
//! roll out while records in the old one are still read; a version this build does not
//! know is an error (the request gets `503`), never a guess.
//!
//! Version 1:
//!
//! - session (string): `1|{customer id}|{json}` with `id`, `kind`, `created_at` and
//!   `expires_at` (microseconds since the epoch), `return_url` and, for member sessions,
//!   `member` (absent in records written before members existed, read as none) and, on a
//!   Cluster only, `generation`: the customer's generation when the session was created
//!   (absent elsewhere, read as 0). Every future version keeps the
//!   `{version}|{customer id}|` header: the scripts read the customer id from it.
//! - customer (hash): `v` = `1`, `data` = the customer in Polar's JSON, `del` = deletion
//!   time in microseconds (authoritative over `data`'s `deleted_at`; scripts test its
//!   presence), `ext` = the external id (for the scripts that keep the `x:` index).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::super::{NewSession, SessionRecord};
use crate::model::{Customer, CustomerData, Member};
use crate::token::{TokenHash, TokenKind};

/// The format version this build writes (and the only one it reads so far).
pub(super) const VERSION: &str = "1";

/// Why a stored record could not be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum RecordError {
    /// Written by a build that knows a format this one does not.
    #[error("stored {what} record has format version {version:?}, which this build cannot read")]
    UnknownVersion { what: &'static str, version: String },
    /// Not in any format this crate writes.
    #[error("stored {0} record is malformed")]
    Malformed(&'static str),
    /// The JSON part does not parse.
    #[error("stored {what} record is malformed: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Customer,
    Member,
}

impl From<TokenKind> for Kind {
    fn from(kind: TokenKind) -> Self {
        match kind {
            TokenKind::Customer => Self::Customer,
            TokenKind::Member => Self::Member,
        }
    }
}

impl From<Kind> for TokenKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Customer => Self::Customer,
            Kind::Member => Self::Member,
        }
    }
}

/// The body of a version 1 session record.
#[derive(Serialize, Deserialize)]
struct SessionV1 {
    id: Uuid,
    kind: Kind,
    created_at: i64,
    expires_at: i64,
    return_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    member: Option<Member>,
    /// Written on a Cluster only, where `revoke_all` cannot reach every session atomically:
    /// a session whose generation is below its customer's is revoked.
    #[serde(default, skip_serializing_if = "is_zero")]
    generation: u64,
}

fn is_zero(generation: &u64) -> bool {
    *generation == 0
}

/// A session as stored, before it is joined with its customer.
pub(super) struct StoredSession {
    pub(super) customer_id: Uuid,
    id: Uuid,
    kind: TokenKind,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    return_url: Option<String>,
    member: Option<Member>,
    generation: u64,
}

impl StoredSession {
    pub(super) fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }

    /// The customer's generation when the session was created (0 outside a Cluster).
    pub(super) fn generation(&self) -> u64 {
        self.generation
    }

    pub(super) fn join(self, token_hash: TokenHash, customer: Customer) -> SessionRecord {
        SessionRecord {
            id: self.id,
            token_hash,
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

/// The part of a session record after the header; the create script adds the header once
/// it has resolved the customer.
///
/// `generation` is 0 except on a Cluster (see [`SessionV1`]); 0 is not written, so the
/// single-server format is unchanged.
pub(super) fn session_body(session: &NewSession, generation: u64) -> String {
    let body = SessionV1 {
        generation,
        id: session.id,
        kind: session.kind.into(),
        created_at: session.created_at.timestamp_micros(),
        expires_at: session.expires_at.timestamp_micros(),
        return_url: session.return_url.clone(),
        member: session.member.clone(),
    };
    serde_json::to_string(&body).expect("a session body always serializes")
}

pub(super) fn decode_session(raw: &[u8]) -> Result<StoredSession, RecordError> {
    const WHAT: &str = "session";
    let (version, rest) = split_field(raw).ok_or(RecordError::Malformed(WHAT))?;
    if version != VERSION.as_bytes() {
        return Err(unknown_version(WHAT, version));
    }
    let (customer_id, body) = split_field(rest).ok_or(RecordError::Malformed(WHAT))?;
    let customer_id = std::str::from_utf8(customer_id)
        .ok()
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or(RecordError::Malformed(WHAT))?;
    let body: SessionV1 =
        serde_json::from_slice(body).map_err(|source| RecordError::Json { what: WHAT, source })?;
    Ok(StoredSession {
        customer_id,
        id: body.id,
        kind: body.kind.into(),
        created_at: from_micros(body.created_at).ok_or(RecordError::Malformed(WHAT))?,
        expires_at: from_micros(body.expires_at).ok_or(RecordError::Malformed(WHAT))?,
        return_url: body.return_url,
        member: body.member,
        generation: body.generation,
    })
}

/// A customer's hash fields, ready to write.
pub(super) struct EncodedCustomer {
    pub(super) data: String,
    /// Deletion time in microseconds, if deleted.
    pub(super) deleted: Option<String>,
}

impl EncodedCustomer {
    /// The upsert scripts' trailing arguments (both layouts): format version, data, `1`
    /// if there is an external id, the external id (or empty), the deletion time (or
    /// empty).
    pub(super) fn script_args<'a>(&'a self, external_id: Option<&'a str>) -> [&'a str; 5] {
        [
            VERSION,
            &self.data,
            if external_id.is_some() { "1" } else { "0" },
            external_id.unwrap_or_default(),
            self.deleted.as_deref().unwrap_or_default(),
        ]
    }
}

pub(super) fn encode_customer(customer: &Customer) -> EncodedCustomer {
    EncodedCustomer {
        data: serde_json::to_string(customer).expect("a customer always serializes"),
        deleted: customer
            .deleted_at
            .map(|at| at.timestamp_micros().to_string()),
    }
}

/// A deletion time as the `del` field holds it.
pub(super) fn encode_deleted_at(at: DateTime<Utc>) -> String {
    at.timestamp_micros().to_string()
}

/// The fields a customer is read by, in the order the scripts return them.
pub(super) const CUSTOMER_FIELDS: [&str; 3] = ["v", "del", "data"];

/// A customer from its `v`, `del` and `data` fields; `None` if there is no such customer.
pub(super) fn decode_customer(
    [version, deleted, data]: [Option<Vec<u8>>; 3],
) -> Result<Option<Customer>, RecordError> {
    const WHAT: &str = "customer";
    let (version, data) = match (version, data) {
        (None, None) if deleted.is_none() => return Ok(None),
        (Some(version), Some(data)) => (version, data),
        (Some(version), None) if version != VERSION.as_bytes() => {
            return Err(unknown_version(WHAT, &version));
        }
        _ => return Err(RecordError::Malformed(WHAT)),
    };
    if version != VERSION.as_bytes() {
        return Err(unknown_version(WHAT, &version));
    }
    let mut customer: CustomerData =
        serde_json::from_slice(&data).map_err(|source| RecordError::Json { what: WHAT, source })?;
    customer.deleted_at = match deleted {
        None => None,
        Some(micros) => Some(
            std::str::from_utf8(&micros)
                .ok()
                .and_then(|m| m.parse().ok())
                .and_then(from_micros)
                .ok_or(RecordError::Malformed(WHAT))?,
        ),
    };
    Ok(Some(Customer::new(customer)))
}

/// `field|rest` → (`field`, `rest`).
fn split_field(raw: &[u8]) -> Option<(&[u8], &[u8])> {
    let bar = raw.iter().position(|&b| b == b'|')?;
    Some((&raw[..bar], &raw[bar + 1..]))
}

fn from_micros(micros: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
}

fn unknown_version(what: &'static str, version: &[u8]) -> RecordError {
    // Shown in errors: keep it short whatever was stored.
    let shown = &version[..version.len().min(16)];
    RecordError::UnknownVersion {
        what,
        version: String::from_utf8_lossy(shown).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::model::truncate_to_micros;
    use crate::store::CustomerRef;

    fn new_session(customer_id: Uuid) -> NewSession {
        let created_at = truncate_to_micros(Utc::now());
        NewSession {
            id: Uuid::new_v4(),
            token_hash: TokenHash::from_bytes([7; 32]),
            kind: TokenKind::Member,
            customer: CustomerRef::Id(customer_id),
            created_at,
            expires_at: created_at + TimeDelta::hours(1),
            return_url: Some("https://shop.example/a|b".to_owned()),
            member: None,
        }
    }

    /// What the create script stores.
    fn stored(customer_id: Uuid, session: &NewSession) -> Vec<u8> {
        format!("{VERSION}|{customer_id}|{}", session_body(session, 0)).into_bytes()
    }

    #[test]
    fn sessions_round_trip() {
        let customer_id = Uuid::new_v4();
        let new = new_session(customer_id);
        let decoded = decode_session(&stored(customer_id, &new)).unwrap();
        assert_eq!(decoded.customer_id, customer_id);
        let customer = Customer::new(CustomerData::new(Utc::now()));
        let record = decoded.join(new.token_hash, customer.clone());
        assert_eq!(record.id, new.id);
        assert_eq!(record.kind, TokenKind::Member);
        assert_eq!(record.created_at, new.created_at);
        assert_eq!(record.expires_at, new.expires_at);
        assert_eq!(record.return_url, new.return_url);
        assert_eq!(record.customer, customer);
    }

    #[test]
    fn other_session_versions_are_refused() {
        let customer_id = Uuid::new_v4();
        let body = session_body(&new_session(customer_id), 0);
        for version in ["2", "0", "", "10", "1 "] {
            let raw = format!("{version}|{customer_id}|{body}");
            assert!(
                matches!(
                    decode_session(raw.as_bytes()),
                    Err(RecordError::UnknownVersion { .. })
                ),
                "version {version:?}"
            );
        }
    }

    #[test]
    fn malformed_sessions_are_errors() {
        let customer_id = Uuid::new_v4();
        let body = session_body(&new_session(customer_id), 0);
        for raw in [
            String::new(),
            "1".to_owned(),
            "1|".to_owned(),
            format!("1|{customer_id}"),
            format!("1|not-a-uuid|{body}"),
            format!("1|{customer_id}|{{}}"),
            format!("1|{customer_id}|{}", &body[..body.len() - 1]),
            format!("1|{customer_id}|{}", body.replace("member", "admin")),
        ] {
            assert!(decode_session(raw.as_bytes()).is_err(), "{raw:?}");
        }
    }

    fn fields(customer: &Customer) -> [Option<Vec<u8>>; 3] {
        let encoded = encode_customer(customer);
        [
            Some(VERSION.into()),
            encoded.deleted.map(String::into_bytes),
            Some(encoded.data.into_bytes()),
        ]
    }

    #[test]
    fn customers_round_trip_with_deletion_from_del() {
        let mut data = CustomerData::new(Utc::now());
        data.name = Some("Jane".to_owned());
        let customer = Customer::new(data);
        assert_eq!(
            decode_customer(fields(&customer)).unwrap(),
            Some(customer.clone())
        );

        // `del` decides, whatever `data` says.
        let mut deleted = fields(&customer);
        let at = truncate_to_micros(Utc::now());
        deleted[1] = Some(encode_deleted_at(at).into_bytes());
        let decoded = decode_customer(deleted).unwrap().unwrap();
        assert_eq!(decoded.deleted_at, Some(at));
        assert!(!decoded.can_authenticate());

        let mut gone = customer.clone();
        gone.make_mut().deleted_at = Some(at);
        let mut undeleted = fields(&gone);
        undeleted[1] = None;
        assert!(
            decode_customer(undeleted)
                .unwrap()
                .unwrap()
                .can_authenticate()
        );
    }

    #[test]
    fn missing_customers_are_none_and_odd_ones_errors() {
        assert!(decode_customer([None, None, None]).unwrap().is_none());
        let customer = Customer::new(CustomerData::new(Utc::now()));
        let mut other = fields(&customer);
        other[0] = Some(b"2".to_vec());
        assert!(matches!(
            decode_customer(other),
            Err(RecordError::UnknownVersion { .. })
        ));
        let [v, del, data] = fields(&customer);
        for broken in [
            [None, del.clone(), data.clone()],
            [v.clone(), del.clone(), None],
            [None, Some(b"1".to_vec()), None],
            [v.clone(), Some(b"soon".to_vec()), data.clone()],
            [v.clone(), None, Some(b"{\"id\":1}".to_vec())],
        ] {
            assert!(decode_customer(broken).is_err());
        }
    }

    #[test]
    fn unknown_versions_are_shown_short() {
        let long = "9".repeat(1000);
        let error = unknown_version("session", long.as_bytes()).to_string();
        assert!(error.len() < 120, "{error}");
    }
}
