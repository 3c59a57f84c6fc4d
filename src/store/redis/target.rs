//! Where the primary is: a fixed URL, or whatever a set of Sentinels names it now.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use redis::{Client, ConnectionAddr, RedisResult};

/// How to reach the primary, asked again after each failure in Sentinel mode.
#[derive(Clone)]
pub(super) enum Target {
    Url(Client),
    Sentinel(Arc<Sentinels>),
}

pub(super) struct Sentinels {
    /// `async_master_for` keeps connections to the sentinels: one caller at a time.
    sentinel: tokio::sync::Mutex<Sentinel>,
    master: String,
    /// How long one resolution may take.
    timeout: Duration,
}

impl Target {
    pub(super) fn sentinels(
        addresses: &[String],
        master: &str,
        timeout: Duration,
    ) -> RedisResult<Self> {
        let urls = addresses
            .iter()
            .map(|address| {
                if address.contains("://") {
                    address.clone()
                } else {
                    format!("redis://{address}")
                }
            })
            .collect::<Vec<_>>();
        Ok(Self::Sentinel(Arc::new(Sentinels {
            sentinel: tokio::sync::Mutex::new(Sentinel::build(urls)?),
            master: master.to_owned(),
            timeout,
        })))
    }

    /// A client for the current primary. For Sentinels: the first that names a primary
    /// which confirms its role (`ROLE`), and is not marked down.
    pub(super) async fn client(&self) -> RedisResult<Client> {
        match self {
            Self::Url(client) => Ok(client.clone()),
            Self::Sentinel(sentinels) => {
                let resolve = async {
                    let mut sentinel = sentinels.sentinel.lock().await;
                    let node = SentinelNodeConnectionInfo::default();
                    sentinel
                        .async_master_for(&sentinels.master, Some(&node))
                        .await
                };
                match tokio::time::timeout(sentinels.timeout, resolve).await {
                    Ok(client) => client,
                    Err(_) => Err(redis::RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no sentinel named a primary within the connect timeout",
                    ))),
                }
            }
        }
    }

    /// Whether the primary can move (so a failing connection should ask again).
    pub(super) fn follows_failovers(&self) -> bool {
        matches!(self, Self::Sentinel(_))
    }
}

/// The address a client connects to.
pub(super) fn address(client: &Client) -> &ConnectionAddr {
    client.get_connection_info().addr()
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url(_) => f.write_str("Url"),
            Self::Sentinel(sentinels) => f
                .debug_struct("Sentinel")
                .field("master", &sentinels.master)
                .finish_non_exhaustive(),
        }
    }
}
