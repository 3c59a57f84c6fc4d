//! What the kit feeds a store: customers with every field set, members, tokens, hashes that
//! look alike, and the encodings a raw token could hide in.

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use uuid::Uuid;

use crate::model::{
    Address, Customer, CustomerData, CustomerType, Member, MemberRole, Metadata, MetadataValue,
    TaxId, TaxIdFormat, truncate_to_micros,
};
use crate::store::NewSession;
use crate::token::{SessionToken, TokenFormat, TokenHash, TokenHasher, TokenKind};

pub(super) use super::SECRET;

pub(super) fn hasher() -> TokenHasher {
    TokenHasher::new(SECRET)
}

/// A fresh token of `kind`.
pub(super) fn token(kind: TokenKind) -> SessionToken {
    TokenFormat::polar()
        .generate(kind)
        .expect("the OS random number generator works")
}

pub(super) fn hash(token: &SessionToken) -> TokenHash {
    hasher().hash(token.expose_secret())
}

/// `t` with its sub-second part set to `micros`: every timestamp the kit hands a store
/// has microseconds (the wire precision), so a store that keeps less shows it.
pub(super) fn with_micros(t: DateTime<Utc>, micros: u32) -> DateTime<Utc> {
    let micros = micros % 1_000_000;
    truncate_to_micros(t)
        .with_nanosecond(micros * 1_000)
        .unwrap_or(t)
}

/// An ASCII slug of `name`, for external ids and emails.
fn slug(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_lowercase()
}

/// A unique external id for a customer called `name`.
pub(super) fn external_id(name: &str) -> String {
    format!("usr_{}_{}", slug(name), Uuid::new_v4().simple())
}

/// An individual customer with every field set: metadata of every value type in an order
/// that is not sorted, an address and a tax id, non-ASCII text and a quote, a non-nil
/// organization, and timestamps with microseconds.
pub(super) fn individual(name: &str, now: DateTime<Utc>) -> Customer {
    let mut data = CustomerData::new(with_micros(now - TimeDelta::days(30), 370_925));
    data.modified_at = Some(with_micros(now - TimeDelta::days(2), 81_234));
    data.metadata = metadata(&[
        ("zone", "eu-west".into()),
        ("plan", "pro".into()),
        ("seats", 5.into()),
        ("ratio", 0.75.into()),
        ("beta", true.into()),
        // Beyond what an f64 holds exactly.
        ("ledger", 9_007_199_254_740_993_i64.into()),
        ("alpha", "last key, first letter".into()),
    ]);
    data.external_id = Some(external_id(name));
    data.email = Some(format!("{}+kit@example.com", slug(name)));
    data.email_verified = true;
    data.customer_type = CustomerType::Individual;
    data.name = Some(format!("{name} d'Artagnan-Zoë ✓"));
    data.billing_name = Some(format!("{name} SARL"));
    data.billing_address = Some(Address {
        line1: Some("1 rue de l'Église".to_owned()),
        line2: Some("Bâtiment B".to_owned()),
        postal_code: Some("75001".to_owned()),
        city: Some("Paris".to_owned()),
        state: Some("Île-de-France".to_owned()),
        country: "FR".to_owned(),
    });
    data.tax_id = Some(TaxId::new("FR40303265045", TaxIdFormat::new("eu_vat")));
    data.locale = Some("fr-FR".to_owned());
    data.organization_id = Uuid::new_v4();
    data.default_payment_method_id = Some(Uuid::new_v4());
    data.first_user_event_at = Some(with_micros(now - TimeDelta::days(10), 5));
    data.avatar_url = Some(format!("https://avatars.example/{}.png", slug(name)));
    Customer::new(data)
}

/// A team customer without an email, as Polar allows for teams, otherwise full.
pub(super) fn team(name: &str, now: DateTime<Utc>) -> Customer {
    let mut data = CustomerData::new(with_micros(now - TimeDelta::days(90), 999_999));
    data.metadata = metadata(&[("tier", "enterprise".into()), ("accounts", 40.into())]);
    data.external_id = Some(external_id(name));
    data.customer_type = CustomerType::Team;
    data.name = Some(format!("{name} Corp."));
    data.billing_address = Some(Address {
        line1: Some("500 Market St".to_owned()),
        line2: None,
        postal_code: Some("94105".to_owned()),
        city: Some("San Francisco".to_owned()),
        state: Some("US-CA".to_owned()),
        country: "US".to_owned(),
    });
    data.tax_id = Some(TaxId::new("911144442", TaxIdFormat::new("us_ein")));
    data.locale = Some("en".to_owned());
    data.organization_id = Uuid::new_v4();
    Customer::new(data)
}

fn metadata(pairs: &[(&str, MetadataValue)]) -> Metadata {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), value.clone()))
        .collect()
}

/// A team member with every field set.
pub(super) fn member() -> Member {
    Member {
        id: Uuid::new_v4(),
        email: Some("billing@acme.example".to_owned()),
        name: Some("Bill O'Manager".to_owned()),
        external_id: Some(format!("emp_{}", Uuid::new_v4().simple())),
        role: MemberRole::BillingManager,
    }
}

/// A session for `customer` created at about `now`, an hour long, with a return URL; a
/// member session carries a member.
pub(super) fn new_session(
    customer: impl Into<crate::store::CustomerRef>,
    kind: TokenKind,
    now: DateTime<Utc>,
) -> (SessionToken, NewSession) {
    let token = token(kind);
    let created_at = with_micros(now, 123_457);
    let session = NewSession {
        id: Uuid::new_v4(),
        token_hash: hash(&token),
        kind,
        customer: customer.into(),
        created_at,
        expires_at: created_at + TimeDelta::hours(1) + TimeDelta::microseconds(271),
        return_url: Some("https://shop.example/account?tab=billing".to_owned()),
        member: (kind == TokenKind::Member).then(member),
    };
    (token, session)
}

/// Pairs of hashes a sloppy lookup confuses, each with what makes them alike.
pub(super) fn look_alike_hashes() -> Vec<(&'static str, TokenHash, TokenHash)> {
    let pair = |what, change: fn(&mut [u8; 32], &mut [u8; 32])| {
        let base = *hash(&token(TokenKind::Customer)).as_bytes();
        let (mut a, mut b) = (base, base);
        change(&mut a, &mut b);
        (what, TokenHash::from_bytes(a), TokenHash::from_bytes(b))
    };
    vec![
        pair("hashes that differ only in their last byte", |_, b| {
            b[31] ^= 0x01;
        }),
        pair("hashes that differ only in their first byte", |_, b| {
            b[0] ^= 0x80;
        }),
        pair("hashes whose bytes differ only in ASCII case", |a, b| {
            a[7] = b'Q';
            b[7] = b'q';
        }),
        pair("hashes whose base64 differs only in letter case", |a, b| {
            // The first six bits are 0 ('A') in one and 26 ('a') in the other.
            a[0] = 0x00;
            b[0] = 0x68;
        }),
    ]
}

/// The encodings in which `secret` could sit in a store's dump, each with its name: as
/// is, in hex, in base64 (either alphabet, at any alignment in a larger blob), and as a
/// list of byte values.
pub(super) fn encodings(secret: &str) -> Vec<(&'static str, String)> {
    let bytes = secret.as_bytes();
    let mut out = vec![
        ("as plain text", secret.to_owned()),
        ("hex-encoded", hex(bytes, b"0123456789abcdef")),
        ("hex-encoded (upper case)", hex(bytes, b"0123456789ABCDEF")),
    ];
    for (name, alphabet) in [
        ("base64-encoded", STANDARD),
        ("base64url-encoded", URL_SAFE),
    ] {
        // Whatever the blob's offset, one of these starts on a 3-byte boundary of it; only
        // whole 3-byte groups encode the same inside the blob as alone.
        for skip in 0..3 {
            let tail = &bytes[skip.min(bytes.len())..];
            let whole = tail.len() / 3 * 3;
            out.push((name, base64(&tail[..whole], alphabet)));
        }
    }
    if bytes.len() > 2 {
        let inner: Vec<String> = bytes[1..bytes.len() - 1]
            .iter()
            .map(u8::to_string)
            .collect();
        out.push(("as a list of byte values", inner.join(", ")));
    }
    out
}

fn hex(bytes: &[u8], digits: &[u8; 16]) -> String {
    bytes
        .iter()
        .flat_map(|b| [digits[(b >> 4) as usize], digits[(b & 0x0f) as usize]])
        .map(char::from)
        .collect()
}

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64 of whole 3-byte groups (the caller passes a multiple of three bytes).
fn base64(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    bytes
        .chunks_exact(3)
        .flat_map(|group| {
            let n = u32::from(group[0]) << 16 | u32::from(group[1]) << 8 | u32::from(group[2]);
            [18, 12, 6, 0].map(|shift| char::from(alphabet[(n >> shift & 0x3f) as usize]))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64(b"Man", STANDARD), "TWFu");
        assert_eq!(base64(b"\xfb\xff\xbf", URL_SAFE), "-_-_");
        assert_eq!(hex(b"\x01\xab", b"0123456789abcdef"), "01ab");
    }

    #[test]
    fn a_token_base64_encoded_inside_a_blob_is_found_at_any_offset() {
        let secret = "polar_cst_abcdefghijklmnopqrstuvwxyz0123456789ABCDE";
        for lead in ["", "x", "xy", "xyz"] {
            let blob = format!("{lead}{secret}!!");
            let blob = blob.as_bytes();
            let whole = blob.len() / 3 * 3;
            let encoded = base64(&blob[..whole], STANDARD);
            assert!(
                encodings(secret)
                    .iter()
                    .any(|(name, needle)| *name == "base64-encoded" && encoded.contains(needle)),
                "lead {lead:?}"
            );
        }
    }

    #[test]
    fn look_alike_hashes_differ() {
        for (what, a, b) in look_alike_hashes() {
            assert!(a != b, "{what}");
        }
    }
}
