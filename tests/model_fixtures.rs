//! Wire-format tests of `tower_customer_session::model` against Polar fixtures.

use std::fmt;

use chrono::{DateTime, TimeZone, Timelike, Utc};
use serde::de::{DeserializeOwned, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};
use tower_customer_session::model::{
    Address, Customer, CustomerCustomerSession, CustomerData, CustomerPortalCustomer,
    CustomerSession, CustomerType, KNOWN_TAX_ID_FORMATS, MemberRole, Metadata, MetadataValue,
    PortalAuthenticatedUser, PortalUserType, TaxId, TaxIdFormat, truncate_to_micros,
};
use uuid::Uuid;

const CUSTOMER: &str = include_str!("fixtures/polar/customer.json");
const CUSTOMER_TEAM: &str = include_str!("fixtures/polar/customer_team.json");
const CUSTOMER_LEGACY: &str = include_str!("fixtures/polar/customer_legacy_2025.json");
const SESSION: &str = include_str!("fixtures/polar/customer_session.json");
const SESSION_MEMBER: &str = include_str!("fixtures/polar/customer_session_member_variant.json");
const PORTAL_CUSTOMER: &str = include_str!("fixtures/polar/customer_portal_customer.json");
const INTROSPECT: &str = include_str!("fixtures/polar/customer_customer_session_introspect.json");
const PORTAL_USER: &str = include_str!("fixtures/polar/portal_authenticated_user.json");
const SERVER_INDIVIDUAL: &str =
    include_str!("fixtures/polar/server-tests/polar_server_tests_customer_individual.json");
const SERVER_TEAM: &str =
    include_str!("fixtures/polar/server-tests/polar_server_tests_customer_team.json");
const TAX_ID_FORMATS: &str = include_str!("fixtures/polar/tax_id_formats.json");

/// Top-level object keys in document order (`serde_json::Value` sorts them, so it cannot tell).
fn keys_in_order(json: &str) -> Vec<String> {
    struct Keys(Vec<String>);
    impl<'de> Deserialize<'de> for Keys {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Keys;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some((k, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                        keys.push(k);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_str::<Keys>(json).unwrap().0
}

/// Parse `fixture` as `T`, write it back and require the same JSON value and top-level key
/// order. Returns the parsed value.
fn assert_round_trip<T: Serialize + DeserializeOwned>(fixture: &str) -> T {
    let parsed: T = serde_json::from_str(fixture).unwrap();
    let written = serde_json::to_string(&parsed).unwrap();
    let original: Value = serde_json::from_str(fixture).unwrap();
    let rewritten: Value = serde_json::from_str(&written).unwrap();
    assert_eq!(rewritten, original, "round trip changed the JSON");
    assert_eq!(
        keys_in_order(&written),
        keys_in_order(fixture),
        "key order differs"
    );
    parsed
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

#[test]
fn customer_individual_round_trips() {
    let c: Customer = assert_round_trip(CUSTOMER);
    assert_eq!(c.customer_type, CustomerType::Individual);
    assert!(!c.is_team());
    assert!(c.can_authenticate());
    assert_eq!(c.email.as_deref(), Some("customer@example.com"));
    assert_eq!(c.external_id.as_deref(), Some("usr_1337"));
    assert_eq!(
        c.tax_id,
        Some(TaxId::new("911144442", TaxIdFormat::new("us_ein")))
    );
    let address = c.billing_address.as_ref().unwrap();
    assert_eq!(address.state.as_deref(), Some("US-CA"));
    assert_eq!(address.line2, None);
    assert_eq!(c.created_at.nanosecond(), 370_925_000);

    let written = serde_json::to_value(&c).unwrap();
    assert_eq!(written["created_at"], "2025-01-07T10:41:47.370925Z");
    assert_eq!(written["modified_at"], "2025-02-11T08:03:12.551208Z");
    assert_eq!(written["default_payment_method_id"], Value::Null);
}

#[test]
fn customer_team_round_trips() {
    let c: Customer = assert_round_trip(CUSTOMER_TEAM);
    assert!(c.is_team());
    assert_eq!(c.email, None);
    assert_eq!(c.avatar_url, None);
    assert!(c.metadata.is_empty());
    assert_eq!(c.billing_address, Some(Address::new("FR")));

    let written = serde_json::to_value(&c).unwrap();
    assert_eq!(written["created_at"], "2026-01-01T00:00:00Z");
    assert_eq!(
        written["first_user_event_at"],
        "2026-01-03T12:00:00.500000Z"
    );
    assert_eq!(written["email"], Value::Null);
    assert_eq!(written["billing_address"]["line1"], Value::Null);
}

#[test]
fn customer_sessions_round_trip() {
    for (fixture, prefix, customer_fixture) in [
        (SESSION, "polar_cst_", CUSTOMER),
        (SESSION_MEMBER, "polar_mst_", CUSTOMER_TEAM),
    ] {
        let s: CustomerSession = assert_round_trip(fixture);
        assert!(s.token.expose_secret().starts_with(prefix));
        assert!(
            s.customer_portal_url
                .expose_secret()
                .contains(s.token.expose_secret())
        );
        assert_eq!(s.customer_id, s.customer.id);
        assert_eq!(s.modified_at, None);
        assert_eq!(s.expires_at - s.created_at, chrono::Duration::hours(1));

        let customer_json = serde_json::to_string(&s.customer).unwrap();
        assert_eq!(
            keys_in_order(&customer_json),
            keys_in_order(customer_fixture)
        );
        assert_eq!(
            serde_json::from_str::<Value>(&customer_json).unwrap(),
            serde_json::from_str::<Value>(customer_fixture).unwrap()
        );
    }

    let member: CustomerSession = serde_json::from_str(SESSION_MEMBER).unwrap();
    assert_eq!(member.return_url, None);
    assert_eq!(
        serde_json::to_value(&member).unwrap()["created_at"],
        "2026-02-01T09:30:00.000001Z"
    );
}

#[test]
fn portal_responses_round_trip() {
    let me: CustomerPortalCustomer = assert_round_trip(PORTAL_CUSTOMER);
    assert_eq!(me.customer_type, Some(CustomerType::Individual));
    let github = &me.oauth_accounts["github:1234567"];
    assert_eq!(github.account_id, "1234567");
    assert_eq!(github.account_username.as_deref(), Some("johndoe"));

    let introspect: CustomerCustomerSession = assert_round_trip(INTROSPECT);
    assert_eq!(
        introspect.return_url.as_deref(),
        Some("https://example.com/account")
    );
    assert_eq!(
        serde_json::to_value(&introspect).unwrap()["expires_at"],
        "2025-03-01T13:00:00.123456Z"
    );

    let user: PortalAuthenticatedUser = assert_round_trip(PORTAL_USER);
    assert_eq!(user.user_type, PortalUserType::Customer);
    assert_eq!(user.member_id, None);
}

/// `json` without the whitespace between tokens, keys left in document order.
fn minified(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if !c.is_whitespace() {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

#[test]
fn customers_round_trip_byte_for_byte_metadata_in_polar_order() {
    // Polar writes metadata in insertion order (`plan, seats, ratio, beta` here, not sorted):
    // a customer read and written back must not reorder it.
    for fixture in [CUSTOMER, CUSTOMER_TEAM] {
        let customer: Customer = serde_json::from_str(fixture).unwrap();
        assert_eq!(serde_json::to_string(&customer).unwrap(), minified(fixture));
    }
    let customer: Customer = serde_json::from_str(CUSTOMER).unwrap();
    let keys: Vec<&str> = customer.metadata.keys().map(String::as_str).collect();
    assert_eq!(keys, ["plan", "seats", "ratio", "beta"]);
}

#[test]
fn member_portal_user_parses() {
    let user: PortalAuthenticatedUser = serde_json::from_value(json!({
        "type": "member",
        "name": null,
        "email": "owner@acme.example",
        "customer_id": "5f0c6a8e-2b0e-4a77-9a39-3f1d2c4b5e61",
        "member_id": "3c9d2e1f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
        "role": "owner"
    }))
    .unwrap();
    assert_eq!(user.user_type, PortalUserType::Member);
    assert_eq!(user.role, Some(MemberRole::Owner));
    assert!(user.member_id.is_some());
}

#[test]
fn legacy_2025_customer_parses_with_defaults() {
    let c: CustomerData = serde_json::from_str(CUSTOMER_LEGACY).unwrap();
    assert_eq!(c.customer_type, CustomerType::Individual);
    assert_eq!(c.billing_name, None);
    assert_eq!(c.locale, None);
    assert_eq!(c.default_payment_method_id, None);
    assert_eq!(c.first_user_event_at, None);
    assert!(c.avatar_url.as_deref().unwrap().ends_with("?d=blank"));

    // Re-serialized in today's shape: the new keys appear, with `type` filled in.
    let written = serde_json::to_value(&c).unwrap();
    assert_eq!(written["type"], "individual");
    for key in [
        "billing_name",
        "locale",
        "default_payment_method_id",
        "first_user_event_at",
    ] {
        assert_eq!(written[key], Value::Null, "{key}");
    }
}

#[test]
fn polar_server_test_payloads_parse() {
    let individual: Customer = serde_json::from_str(SERVER_INDIVIDUAL).unwrap();
    assert_eq!(individual.customer_type, CustomerType::Individual);
    assert_eq!(individual.avatar_url.as_deref(), Some(""));
    assert_eq!(individual.external_id, None);
    assert_eq!(individual.locale, None);
    assert_eq!(individual.first_user_event_at, None);
    assert_eq!(individual.default_payment_method_id, None);
    assert_eq!(serde_json::to_value(&individual).unwrap()["avatar_url"], "");

    let team: Customer = serde_json::from_str(SERVER_TEAM).unwrap();
    assert!(team.is_team());
    assert_eq!(team.avatar_url.as_deref(), Some(""));
    assert_eq!(
        team.external_id.as_deref(),
        Some("00000000-0000-0000-0000-00000000000a")
    );
}

#[test]
fn missing_type_defaults_to_individual_and_metadata_to_empty() {
    let mut v: Value = serde_json::from_str(CUSTOMER_TEAM).unwrap();
    let obj = v.as_object_mut().unwrap();
    obj.remove("type");
    obj.remove("metadata");
    obj.remove("modified_at");
    let c: CustomerData = serde_json::from_value(v).unwrap();
    assert_eq!(c.customer_type, CustomerType::Individual);
    assert!(c.metadata.is_empty());
    assert_eq!(c.modified_at, None);
}

#[test]
fn unknown_keys_are_ignored() {
    let mut v: Value = serde_json::from_str(CUSTOMER).unwrap();
    v["some_future_field"] = json!({"nested": [1, 2, 3]});
    v["billing_address"]["district"] = json!("Mission");
    let c: CustomerData = serde_json::from_value(v).unwrap();
    let written = serde_json::to_value(&c).unwrap();
    assert_eq!(written, serde_json::from_str::<Value>(CUSTOMER).unwrap());

    let mut s: Value = serde_json::from_str(SESSION).unwrap();
    s["member_id"] = json!(null);
    assert!(serde_json::from_value::<CustomerSession>(s).is_ok());
}

#[test]
fn missing_required_keys_are_rejected() {
    for key in ["id", "created_at", "organization_id", "email_verified"] {
        let mut v: Value = serde_json::from_str(CUSTOMER).unwrap();
        v.as_object_mut().unwrap().remove(key);
        assert!(serde_json::from_value::<CustomerData>(v).is_err(), "{key}");
    }
    let mut v: Value = serde_json::from_str(CUSTOMER).unwrap();
    v["type"] = json!("organization");
    assert!(serde_json::from_value::<CustomerData>(v).is_err());
}

#[test]
fn address_missing_optional_keys_default_to_none_and_are_written_back() {
    let a: Address = serde_json::from_str(r#"{"country":"DE","city":"Berlin"}"#).unwrap();
    assert_eq!(a.city.as_deref(), Some("Berlin"));
    assert_eq!(a.line1, None);
    assert_eq!(
        serde_json::to_value(&a).unwrap(),
        json!({"line1":null,"line2":null,"postal_code":null,"city":"Berlin","state":null,"country":"DE"})
    );
    assert!(serde_json::from_str::<Address>(r#"{"city":"Berlin"}"#).is_err());
}

#[test]
fn tax_id_requires_exactly_two_elements() {
    for bad in [
        r#"[]"#,
        r#"["911144442"]"#,
        r#"["911144442","us_ein","extra"]"#,
        r#""911144442""#,
    ] {
        assert!(serde_json::from_str::<TaxId>(bad).is_err(), "{bad}");
    }
    let err = serde_json::from_str::<TaxId>(r#"["a","b","c"]"#).unwrap_err();
    assert!(err.to_string().contains("invalid length 3"), "{err}");

    let id: TaxId = serde_json::from_str(r#"["911144442","us_ein"]"#).unwrap();
    assert_eq!(
        serde_json::to_string(&id).unwrap(),
        r#"["911144442","us_ein"]"#
    );
    assert!(id.format.is_known());
}

#[test]
fn unknown_tax_id_format_is_accepted() {
    let id: TaxId = serde_json::from_str(r#"["X-123","zz_future"]"#).unwrap();
    assert_eq!(id.format.as_str(), "zz_future");
    assert_eq!(id.format.to_string(), "zz_future");
    assert!(!id.format.is_known());
    assert!(!TaxIdFormat::new("EU_VAT").is_known());
    assert_eq!(
        serde_json::to_string(&id).unwrap(),
        r#"["X-123","zz_future"]"#
    );
}

#[test]
fn known_tax_id_formats_match_fixture() {
    let fixture: Vec<String> = serde_json::from_str(TAX_ID_FORMATS).unwrap();
    assert_eq!(KNOWN_TAX_ID_FORMATS, fixture.as_slice());
    assert!(
        fixture
            .iter()
            .all(|f| TaxIdFormat::new(f.as_str()).is_known())
    );
}

#[test]
fn metadata_values_keep_their_json_type() {
    let input = json!({"int": 1, "float": 1.5, "string": "1", "bool": true, "whole_float": 2.0});
    let m: Metadata = serde_json::from_value(input.clone()).unwrap();
    assert_eq!(m["int"], MetadataValue::Int(1));
    assert_eq!(m["float"], MetadataValue::Float(1.5));
    assert_eq!(m["string"], MetadataValue::String("1".to_owned()));
    assert_eq!(m["bool"], MetadataValue::Bool(true));
    assert_eq!(m["whole_float"], MetadataValue::Float(2.0));

    let written = serde_json::to_string(&m).unwrap();
    assert_eq!(
        written,
        r#"{"bool":true,"float":1.5,"int":1,"string":"1","whole_float":2.0}"#
    );
    assert_eq!(serde_json::from_str::<Value>(&written).unwrap(), input);

    assert_eq!(
        MetadataValue::from("x"),
        MetadataValue::String("x".to_owned())
    );
    assert_eq!(
        MetadataValue::from(String::from("x")),
        MetadataValue::String("x".to_owned())
    );
    assert_eq!(MetadataValue::from(7_i64), MetadataValue::Int(7));
    assert_eq!(MetadataValue::from(0.5), MetadataValue::Float(0.5));
    assert_eq!(MetadataValue::from(false), MetadataValue::Bool(false));
    assert_eq!(MetadataValue::Int(1).to_string(), "1");
    assert_eq!(MetadataValue::Float(1.0).to_string(), "1.0");
    assert_eq!(MetadataValue::String("1".into()).to_string(), "1");
    assert_eq!(MetadataValue::Bool(true).to_string(), "true");

    assert!(serde_json::from_str::<Metadata>(r#"{"k":null}"#).is_err());
}

#[test]
fn timestamps_use_polar_fraction_rule() {
    let write = |t: DateTime<Utc>| {
        let s = CustomerCustomerSession {
            expires_at: t,
            return_url: None,
        };
        serde_json::to_value(&s).unwrap()["expires_at"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let base = utc(2026, 1, 3, 12, 0, 0);
    assert_eq!(write(base), "2026-01-03T12:00:00Z");
    assert_eq!(
        write(base.with_nanosecond(500_000_000).unwrap()),
        "2026-01-03T12:00:00.500000Z"
    );
    assert_eq!(
        write(base.with_nanosecond(1_000).unwrap()),
        "2026-01-03T12:00:00.000001Z"
    );
    // Below a microsecond: truncated, never rounded, and a zero result drops the fraction.
    assert_eq!(
        write(base.with_nanosecond(999).unwrap()),
        "2026-01-03T12:00:00Z"
    );
    assert_eq!(
        write(base.with_nanosecond(123_456_999).unwrap()),
        "2026-01-03T12:00:00.123456Z"
    );
}

#[test]
fn timestamps_parse_any_offset_into_utc() {
    let read = |s: &str| {
        serde_json::from_value::<CustomerCustomerSession>(
            json!({"expires_at": s, "return_url": null}),
        )
        .map(|v| v.expires_at)
    };
    assert_eq!(
        read("2026-01-03T14:00:00+02:00").unwrap(),
        utc(2026, 1, 3, 12, 0, 0)
    );
    assert_eq!(
        read("2026-01-03T07:30:00-04:30").unwrap(),
        utc(2026, 1, 3, 12, 0, 0)
    );
    assert_eq!(
        read("2026-01-03T12:00:00+00:00").unwrap(),
        utc(2026, 1, 3, 12, 0, 0)
    );
    assert_eq!(
        read("2026-01-03T12:00:00.5Z").unwrap(),
        utc(2026, 1, 3, 12, 0, 0)
            .with_nanosecond(500_000_000)
            .unwrap()
    );
    // Input finer than a microsecond is truncated like Python's datetime would.
    assert_eq!(
        read("2026-01-03T12:00:00.123456789Z").unwrap().nanosecond(),
        123_456_000
    );
    let offset: CustomerCustomerSession = serde_json::from_value(
        json!({"expires_at": "2026-01-03T14:00:00.25+02:00", "return_url": null}),
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(&offset).unwrap()["expires_at"],
        "2026-01-03T12:00:00.250000Z"
    );

    for bad in [
        "2026-01-03",
        "2026-01-03T12:00:00",
        "not a date",
        "2026-13-01T00:00:00Z",
    ] {
        assert!(read(bad).is_err(), "{bad}");
    }
    assert!(
        serde_json::from_value::<CustomerCustomerSession>(json!({"expires_at": 1_700_000_000}))
            .is_err()
    );
}

#[test]
fn optional_timestamps_accept_null_and_strings() {
    let mut v: Value = serde_json::from_str(CUSTOMER_TEAM).unwrap();
    v["deleted_at"] = json!("2026-02-01T10:00:00+01:00");
    let c: Customer = serde_json::from_value(v).unwrap();
    assert_eq!(c.deleted_at, Some(utc(2026, 2, 1, 9, 0, 0)));
    assert!(!c.can_authenticate());
    assert_eq!(
        serde_json::to_value(&c).unwrap()["deleted_at"],
        "2026-02-01T09:00:00Z"
    );
}

#[test]
fn truncate_to_micros_drops_nanos_only() {
    let t = utc(2026, 1, 1, 0, 0, 0)
        .with_nanosecond(987_654_321)
        .unwrap();
    assert_eq!(truncate_to_micros(t).nanosecond(), 987_654_000);
    assert_eq!(truncate_to_micros(t).timestamp(), t.timestamp());
}

#[test]
fn session_debug_redacts_token_and_portal_url() {
    for fixture in [SESSION, SESSION_MEMBER] {
        let s: CustomerSession = serde_json::from_str(fixture).unwrap();
        let token = s.token.expose_secret().to_owned();
        for debug in [format!("{s:?}"), format!("{s:#?}")] {
            assert!(!debug.contains(&token), "{debug}");
            assert!(!debug.contains("customer_session_token"), "{debug}");
            assert!(!debug.contains(&token["polar_cst_".len()..]), "{debug}");
            assert!(debug.contains("[redacted]"));
            assert!(
                debug.contains(&s.id.to_string()),
                "non-secret fields still shown"
            );
        }
        // Serialization, by contrast, must carry the token: it is the 201 response body.
        assert_eq!(serde_json::to_value(&s).unwrap()["token"], token.as_str());
    }
}

#[test]
fn customer_clone_shares_the_allocation() {
    let a: Customer = serde_json::from_str(CUSTOMER).unwrap();
    let b = a.clone();
    assert!(Customer::ptr_eq(&a, &b));
    assert!(std::ptr::eq(
        &*a as *const CustomerData,
        &*b as *const CustomerData
    ));
    assert_eq!(a, b);

    // make_mut copies on write: the other handle keeps the old value.
    let mut c = a.clone();
    c.make_mut().name = Some("Jane Doe".to_owned());
    assert!(!Customer::ptr_eq(&a, &c));
    assert_eq!(a.name.as_deref(), Some("John Doe"));
    assert_eq!(c.name.as_deref(), Some("Jane Doe"));

    // A unique handle is mutated in place.
    let before = &*c as *const CustomerData;
    c.make_mut().locale = Some("fr".to_owned());
    assert!(std::ptr::eq(before, &*c));
}

#[test]
fn customer_data_new_is_empty_individual() {
    let org = Uuid::new_v4();
    let created = utc(2026, 5, 1, 8, 0, 0)
        .with_nanosecond(123_456_789)
        .unwrap();
    let data = CustomerData::new(created).organization(org);
    assert_eq!(data.id.get_version_num(), 4);
    assert_ne!(data.id, CustomerData::new(created).organization(org).id);
    assert_eq!(data.organization_id, org);
    assert_eq!(data.created_at.nanosecond(), 123_456_000);
    assert_eq!(data.customer_type, CustomerType::Individual);
    assert!(!data.email_verified);
    assert!(data.metadata.is_empty());

    let customer = Customer::from(data.clone());
    assert!(customer.can_authenticate());
    assert!(!customer.is_team());

    // Every key is written, and the value survives a round trip unchanged.
    let written = serde_json::to_string(&customer).unwrap();
    assert_eq!(keys_in_order(&written), keys_in_order(CUSTOMER));
    assert_eq!(
        serde_json::from_str::<CustomerData>(&written).unwrap(),
        data
    );
    let v: Value = serde_json::from_str(&written).unwrap();
    assert_eq!(v["created_at"], "2026-05-01T08:00:00.123456Z");
    assert_eq!(v["metadata"], json!({}));
    assert_eq!(v["type"], "individual");
}
