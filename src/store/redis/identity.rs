//! Which Redis the store is talking to: the server process (`run_id`, new at each start and
//! different on each replica) and the data set (a marker key holding a random id, written
//! once with `SET NX` and kept with the data). The feed reads both on each subscription:
//! a change means a restart or a failover (writes acknowledged before may be lost), a
//! missing marker means the data set itself was lost or replaced.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redis::aio::ConnectionLike;

use super::durability::info_field;

/// What the server said about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Identity {
    pub(super) run_id: String,
    pub(super) epoch: String,
}

impl Identity {
    /// Read the server's `run_id` and the marker, writing it first if it is missing.
    pub(super) async fn read(
        connection: &mut impl ConnectionLike,
        marker: &str,
    ) -> redis::RedisResult<Self> {
        let fresh = uuid::Uuid::new_v4().simple().to_string();
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("INFO")
            .arg("server")
            .cmd("SET")
            .arg(marker)
            .arg(&fresh)
            .arg("NX")
            .cmd("GET")
            .arg(marker)
            // A user may be refused INFO: the marker alone then tells data sets apart.
            .ignore_errors();
        let replies: Vec<redis::Value> = pipeline.query_async(connection).await?;
        let mut replies = replies.into_iter();
        let info = replies
            .next()
            .and_then(|info| redis::from_redis_value::<String>(info).ok());
        let _set = replies
            .next()
            .map(redis::Value::extract_error)
            .transpose()?;
        let epoch = replies.next().map(redis::from_redis_value::<String>);
        let epoch = match epoch {
            Some(Ok(epoch)) => epoch,
            Some(Err(_)) | None => {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::UnexpectedReturnType,
                    "the store's marker key cannot be read",
                )));
            }
        };
        Ok(Self {
            run_id: info
                .as_deref()
                .and_then(|info| info_field(info, "run_id"))
                .unwrap_or_default()
                .to_owned(),
            epoch,
        })
    }

    /// How `now` differs from `self`, if it does.
    pub(super) fn change(&self, now: &Self) -> Option<&'static str> {
        if self.epoch != now.epoch {
            Some("its data set was replaced or lost (the store's marker changed)")
        } else if self.run_id != now.run_id {
            Some("it restarted or failed over (a new run_id)")
        } else {
            None
        }
    }
}

/// Changes seen by every feed of one store (shared by its clones).
#[derive(Clone, Default)]
pub(super) struct Changes(Arc<AtomicU64>);

impl Changes {
    pub(super) fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub(super) fn record(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_marker_or_process_is_a_change() {
        let id = |run_id: &str, epoch: &str| Identity {
            run_id: run_id.to_owned(),
            epoch: epoch.to_owned(),
        };
        assert_eq!(id("a", "1").change(&id("a", "1")), None);
        assert!(
            id("a", "1")
                .change(&id("b", "1"))
                .unwrap()
                .contains("run_id")
        );
        assert!(
            id("a", "1")
                .change(&id("a", "2"))
                .unwrap()
                .contains("marker")
        );
        assert!(
            id("a", "1")
                .change(&id("b", "2"))
                .unwrap()
                .contains("marker")
        );
    }
}
