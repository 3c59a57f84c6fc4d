//! Guides: the long-form documentation, one page a topic.
//!
//! Each page is a Markdown file in the repository's `docs/` folder, included here so that it
//! is versioned with the code and its Rust examples are compiled and run as doctests. The
//! crate root has the overview; the API documentation has every setting and its default.
//!
//! | guide | what it covers |
//! |---|---|
//! | [`requests`] | the request's way through the layer, every response, the two builders |
//! | [`portal`] | Polar's `customer_portal_url` turned into a cookie session; team members and roles |
//! | [`scaling_out`] | several instances on one store: secrets, key rotation, feeds, what a revocation guarantees and when, failures |
//! | `redis` | `RedisStore`: key layout, feed, durability, Sentinel, Cluster (feature `redis`) |
//! | `postgres` | `PostgresStore`: schema, migrations, feed, poolers, durability (feature `postgres`) |
//! | `polar` | sessions Polar issues, through Polar's API, kept fresh by its webhooks (feature `polar-api`) |
//! | `metrics` | what is counted, and how to export it (feature `metrics`) |
//! | `writing_a_store` | the store traits, a backend of your own, and the test kit it runs (feature `testing`) |
//! | [`dependencies`] | what the crate depends on, and why each |

#[doc = include_str!("../docs/requests.md")]
pub mod requests {}

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
#[doc = include_str!("../docs/portal.md")]
pub mod portal {}

#[cfg(all(feature = "redis", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "redis", feature = "postgres"))))]
#[doc = include_str!("../docs/scaling-out.md")]
pub mod scaling_out {}

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[doc = include_str!("../docs/redis.md")]
pub mod redis {}

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
#[doc = include_str!("../docs/postgres.md")]
pub mod postgres {}

#[cfg(all(feature = "polar-api", feature = "axum"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "polar-api", feature = "axum"))))]
#[doc = include_str!("../docs/polar.md")]
pub mod polar {}

#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
#[doc = include_str!("../docs/metrics.md")]
pub mod metrics {}

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
#[doc = include_str!("../docs/writing-a-store.md")]
pub mod writing_a_store {}

#[doc = include_str!("../docs/dependencies.md")]
pub mod dependencies {}
