//! Prepared requests for the benches: whole templates, or one base request plus
//! `Authorization` values copied from a flat buffer.

use http::HeaderValue;
use http::header::AUTHORIZATION;

use super::{Req, SplitMix, plain_request};

/// The requests a row is driven with.
pub enum Requests {
    /// Whole requests, cloned in turn.
    Templates(Vec<Req>),
    /// One header-less request, cloned, plus an `Authorization` value copied from a flat
    /// buffer of fixed-size values. Large token sets use this: a server parses each request
    /// into fresh, CPU-cache-hot buffers, whereas cloning a million prepared requests would
    /// spend the time missing in a gigabyte of scattered heap, in the bench rather than the
    /// layer. Both this crate's rows and their bare baselines pay the same copy.
    Bearer {
        base: Box<Req>,
        values: Vec<u8>,
        stride: usize,
    },
}

impl Requests {
    /// A copy that shares no reference-counted buffer with `self`. Cloning a request bumps
    /// the count of the buffer its URI was parsed into: threads that clone one shared base
    /// request all write to that one cache line, which the throughput bench would measure.
    pub fn unshared(&self) -> Self {
        match self {
            Self::Templates(_) => panic!("unshared copies are made of Bearer requests only"),
            Self::Bearer { values, stride, .. } => Self::Bearer {
                base: Box::new(plain_request()),
                values: values.clone(),
                stride: *stride,
            },
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Self::Templates(all) => all.len(),
            Self::Bearer { values, stride, .. } => values.len() / stride,
        }
    }

    pub fn get(&self, i: usize) -> Req {
        match self {
            Self::Templates(all) => all[i].clone(),
            Self::Bearer {
                base,
                values,
                stride,
            } => {
                let mut request = Req::clone(base);
                let value =
                    HeaderValue::from_bytes(&values[i * stride..(i + 1) * stride]).expect("ASCII");
                request.headers_mut().insert(AUTHORIZATION, value);
                request
            }
        }
    }
}

/// Bearer requests for every token, in a fixed random order (random cache access).
pub fn shuffled_bearer(tokens: &[String]) -> Requests {
    let mut order: Vec<&String> = tokens.iter().collect();
    SplitMix(0x5EED).shuffle(&mut order);
    bearer_values(order)
}

/// Bearer requests for every token, in the order given (for filling a cache in creation
/// order, as a server does, before timing in [`shuffled_bearer`] order).
pub fn bearer_in_order(tokens: &[String]) -> Requests {
    bearer_values(tokens.iter().collect())
}

fn bearer_values(order: Vec<&String>) -> Requests {
    let stride = "Bearer ".len() + order[0].len();
    let mut values = Vec::with_capacity(stride * order.len());
    for token in order {
        values.extend_from_slice(b"Bearer ");
        values.extend_from_slice(token.as_bytes());
        assert_eq!(values.len() % stride, 0, "tokens of one length");
    }
    Requests::Bearer {
        base: Box::new(plain_request()),
        values,
        stride,
    }
}
