//! The physical floor of a cache hit, built from its necessary parts and nothing else:
//! HMAC-SHA256 of the token from a precomputed key state, one probe of a fast concurrent
//! map (`quick_cache`) keyed by the digest, a constant-time compare of the stored digest,
//! and one `Arc` extension insert. No expiry, no admission policy, no rejection paths,
//! no tracing, no metrics.

use std::convert::Infallible;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use http::Response;
use http::header::AUTHORIZATION;
use quick_cache::sync::Cache;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tower::Service;
use tower::service_fn;
use tower_customer_session::Customer;

use crate::common::{self, Req, SECRET};

type Digest = [u8; 32];

struct Floor {
    keyed: Hmac<Sha256>,
    map: Cache<Digest, (Digest, Customer)>,
}

impl Floor {
    fn digest(&self, token: &[u8]) -> Digest {
        let mut mac = self.keyed.clone();
        mac.update(token);
        mac.finalize().into_bytes().into()
    }
}

/// `n` well-formed tokens, each mapped to its own customer, inserted in creation order;
/// returns the service and the tokens in that order.
pub fn setup(
    n: usize,
) -> (
    impl Service<Req, Response = Response<impl Sized>, Error = Infallible>,
    Vec<String>,
) {
    let floor = Arc::new(Floor {
        keyed: Hmac::new_from_slice(SECRET).expect("any key length"),
        // Room for all of them: the floor measures hits, not quick_cache's admission.
        map: Cache::new(n + n / 4),
    });
    let tokens: Vec<String> = (0..n).map(|_| common::unknown_token()).collect();
    for (i, token) in tokens.iter().enumerate() {
        let digest = floor.digest(token.as_bytes());
        let customer = Customer::new(common::demo_customer_n(i));
        floor.map.insert(digest, (digest, customer));
    }
    let service = service_fn(move |mut request: Req| {
        let floor = floor.clone();
        async move {
            let token = request
                .headers()
                .get(AUTHORIZATION)
                .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
            if let Some(token) = token {
                let digest = floor.digest(token);
                if let Some((stored, customer)) = floor.map.get(&digest) {
                    if bool::from(stored.ct_eq(&digest)) {
                        request.extensions_mut().insert(customer);
                    }
                }
            }
            super::customer_handler(request).await
        }
    });
    (service, tokens)
}
