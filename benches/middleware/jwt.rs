//! The stateless alternative: a signed JWT (HS256, `jsonwebtoken` 9) carrying what the
//! handler needs, decoded and validated on every request (signature, `exp`), and the claims
//! inserted for the handler. No store and no cache: nothing to look up, and nothing that
//! can refuse the token before its `exp` either.

use std::convert::Infallible;
use std::sync::Arc;

use http::header::AUTHORIZATION;
use http::{Response, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tower::{Service, service_fn};

use crate::common::{self, Req, SECRET};

/// What a portal session token would carry: the customer, its organization, the two
/// fields a page shows, and the token's lifetime.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    sub: uuid::Uuid,
    org: uuid::Uuid,
    email: String,
    name: String,
    iat: i64,
    exp: i64,
}

struct Keys {
    decoding: DecodingKey,
    validation: Validation,
}

/// A service that authenticates by JWT, and one token for the demo customer valid for an
/// hour (Polar's customer session lifetime).
pub fn setup() -> (
    impl Service<Req, Response = Response<impl Sized>, Error = Infallible>,
    String,
) {
    let customer = common::demo_customer();
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: customer.id,
        org: customer.organization_id,
        email: customer.email.clone().unwrap_or_default(),
        name: customer.name.clone().unwrap_or_default(),
        iat: now,
        exp: now + 3600,
    };
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .expect("HS256 signs");
    let keys = Arc::new(Keys {
        decoding: DecodingKey::from_secret(SECRET),
        validation: Validation::new(Algorithm::HS256),
    });
    let service = service_fn(move |mut request: Req| {
        let keys = keys.clone();
        async move {
            let claims = request
                .headers()
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .and_then(|t| {
                    jsonwebtoken::decode::<Claims>(t, &keys.decoding, &keys.validation).ok()
                });
            if let Some(data) = claims {
                request.extensions_mut().insert(data.claims);
            }
            let status = match request.extensions().get::<Claims>() {
                Some(claims) => {
                    std::hint::black_box(claims.sub);
                    StatusCode::OK
                }
                None => StatusCode::INTERNAL_SERVER_ERROR,
            };
            Ok::<_, Infallible>(crate::fixed(status))
        }
    });
    (service, token)
}
