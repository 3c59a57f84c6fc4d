//! Polar's JSON models: parsing arbitrary bytes never panics, and whatever parses survives
//! serialize → parse unchanged (and serializes to the same bytes again).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower_customer_session::CustomerSession;
use tower_customer_session::model::{
    Address, CustomerCustomerSession, CustomerData, CustomerPortalCustomer, MetadataValue,
    PortalAuthenticatedUser, TaxId,
};

/// Parse → write → parse → write: both parses equal, both writes identical.
fn stable<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(data: &[u8]) {
    let Ok(first) = serde_json::from_slice::<T>(data) else {
        return;
    };
    let written = serde_json::to_vec(&first).expect("a parsed value serializes");
    let second: T = serde_json::from_slice(&written).unwrap_or_else(|e| {
        panic!(
            "own output does not parse: {e}\n{}",
            String::from_utf8_lossy(&written)
        )
    });
    assert_eq!(first, second, "round trip changed the value");
    assert_eq!(written, serde_json::to_vec(&second).expect("serializes"));
}

fuzz_target!(|data: &[u8]| {
    stable::<CustomerData>(data);
    stable::<CustomerPortalCustomer>(data);
    stable::<CustomerCustomerSession>(data);
    stable::<PortalAuthenticatedUser>(data);
    stable::<Address>(data);
    stable::<TaxId>(data);
    stable::<MetadataValue>(data);

    // `CustomerSession` has no `PartialEq` (it holds the raw token); compare its bytes.
    if let Ok(session) = serde_json::from_slice::<CustomerSession>(data) {
        let written = serde_json::to_vec(&session).expect("serializes");
        let again: CustomerSession = serde_json::from_slice(&written).unwrap_or_else(|e| {
            panic!(
                "own output does not parse: {e}\n{}",
                String::from_utf8_lossy(&written)
            )
        });
        assert_eq!(written, serde_json::to_vec(&again).expect("serializes"));
    }
});
