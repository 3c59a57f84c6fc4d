//! [`RedisStore`] on a Redis Cluster: the same operations in the Cluster layout (see
//! [`super::keys`]), where a script may touch one slot only.
//!
//! What stays one atomic step: everything about one customer (its record, its session
//! index and its generation share a slot), and everything about one session. What takes
//! a second round trip, in this order:
//!
//! - `load`: the session, then its customer and generation.
//! - `create`: the customer's step (exists, not deleted, generation read, session indexed),
//!   then the session (`SET NX PXAT`, carrying that generation). Through an external id,
//!   a round trip before them to resolve it.
//! - `revoke`: the session deleted (`GETDEL`), the invalidation published, the hash
//!   dropped from its customer's index (cleanup).
//! - `revoke_all`: the customer's generation incremented (from then on every session
//!   created before is refused by `load`, wherever it lives), the invalidation published,
//!   then each indexed session deleted (cleanup, concurrently).
//! - `upsert_customer`: the customer, then its external id moved, then the invalidation.
//! - `delete_customer`: the customer, then the invalidation.
//!
//! A session created while `revoke_all` runs either read the old generation (then
//! `load` refuses it, whether or not the cleanup saw it) or the new one (then it was
//! created after the revocation). Invalidations go out after the change they announce
//! (never before, or an instance could reload the old state and keep it), on one of the
//! feed's shard channels; a failed publication is an error of the call, whose change is
//! made: retrying it is harmless.

pub(super) mod feed;
mod scripts;
pub(super) mod slot;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use redis::{Cmd, Value};
use uuid::Uuid;

use self::scripts::{ClusterScript, ClusterScripts};
use super::feed::message;
use super::record::{self, RecordError, VERSION};
use super::{
    RedisDurability, RedisStore, bytes, decode_customer, expiry_millis, int, record_error,
    unexpected_reply,
};
use crate::model::Customer;
use crate::store::{CustomerRef, Invalidation, NewSession, SessionRecord, StoreError};
use crate::token::TokenHash;

/// How many shard channels the feed uses: enough to spread publications over the
/// primaries of a usual cluster, few enough that every instance subscribes to all.
pub(super) const SHARD_CHANNELS: usize = 16;

/// The Cluster side of a store.
pub(super) struct Cluster {
    /// The shard channels, `{channel}:{k}` with `k` as hash tag.
    pub(super) channels: Vec<String>,
    scripts: ClusterScripts,
    /// A connection to the first node that answered at connect, for
    /// [`RedisStore::connection`].
    pub(super) seed: ConnectionManager,
    pub(super) feed: Arc<feed::ClusterFeed>,
}

impl Cluster {
    pub(super) fn new(seed: ConnectionManager, feed: feed::ClusterFeed) -> Self {
        Self {
            channels: feed.channels.clone(),
            scripts: ClusterScripts::new(),
            seed,
            feed: Arc::new(feed),
        }
    }

    /// The shard channel a message goes to: any fixed choice works (every instance
    /// listens to all); hashing the message spreads them.
    fn channel_for(&self, message: &str) -> &str {
        let k = crc32fast::hash(message.as_bytes()) as usize % self.channels.len();
        &self.channels[k]
    }
}

/// The shard channels of a base channel name.
pub(super) fn shard_channels(channel: &str) -> Vec<String> {
    (0..SHARD_CHANNELS)
        .map(|k| format!("{channel}:{{{k}}}"))
        .collect()
}

/// What a change sends: a command, or a script.
enum Change<'a> {
    Command(Cmd),
    Script(&'a ClusterScript, &'a [&'a str], &'a [&'a str]),
}

impl RedisStore {
    fn cluster_side(&self) -> &Cluster {
        self.inner
            .cluster
            .as_ref()
            .expect("only called in Cluster mode")
    }

    /// Run one command, bounded like every other.
    async fn run(&self, cmd: &Cmd) -> Result<Value, StoreError> {
        let (mut connection, call) = self.inner.commands.begin();
        self.bounded(call, cmd.query_async(&mut connection)).await
    }

    /// Run one script, bounded.
    async fn run_script(
        &self,
        script: &ClusterScript,
        keys: &[&str],
        args: &[&str],
    ) -> Result<Value, StoreError> {
        let (mut connection, call) = self.inner.commands.begin();
        self.bounded(call, script.invoke(&mut connection, keys, args))
            .await
    }

    /// A write (a session, a customer, a revocation), then the configured durability's wait:
    /// in one pipeline, which the driver sends to the node owning the change's slot, so
    /// `WAIT` counts the replicas of the node that took the write.
    async fn cluster_change(&self, change: Change<'_>) -> Result<Value, StoreError> {
        let durability = self.inner.durability;
        if durability == RedisDurability::Primary {
            return match change {
                Change::Command(cmd) => self.run(&cmd).await,
                Change::Script(script, keys, args) => self.run_script(script, keys, args).await,
            };
        }
        let cmd = match change {
            Change::Command(cmd) => cmd,
            Change::Script(script, keys, args) => script.eval(keys, args),
        };
        let mut pipeline = redis::pipe();
        pipeline.add_command(cmd);
        self.waited(pipeline).await
    }

    /// Announce `invalidation` on its shard channel.
    async fn publish(&self, invalidation: Invalidation) -> Result<(), StoreError> {
        let message = message(invalidation);
        let mut cmd = redis::cmd("SPUBLISH");
        cmd.arg(self.cluster_side().channel_for(&message))
            .arg(&message);
        self.run(&cmd).await.map(drop)
    }

    /// A change, then its announcement, whatever the change's outcome (an error may be a
    /// change made but unconfirmed; an announcement too many costs a reload). The
    /// change's error comes first.
    async fn change_and_publish(
        &self,
        change: Change<'_>,
        invalidation: impl FnOnce(Option<&Value>) -> Invalidation,
    ) -> Result<Value, StoreError> {
        let changed = self.cluster_change(change).await;
        // What is announced depends on what the change did (a revocation that happened is
        // announced as such); a failed change is announced as a plain one.
        let published = self.publish(invalidation(changed.as_ref().ok())).await;
        let reply = changed?;
        published?;
        Ok(reply)
    }

    pub(super) async fn cluster_load(
        &self,
        hash: TokenHash,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let keys = &self.inner.keys;
        let mut get = redis::cmd("GET");
        get.arg(keys.session(&hash));
        let session = bytes(self.run(&get).await?).map_err(|()| unexpected_reply("load"))?;
        let Some(session) = session else {
            return Ok(None);
        };
        // The version is checked before anything else is read from the record.
        let stored = record::decode_session(&session).map_err(record_error)?;
        let id = stored.customer_id;
        let reply = self
            .run_script(
                &self.cluster_side().scripts.load_customer,
                &[&keys.customer(id), &keys.generation(id)],
                &[],
            )
            .await?;
        let [customer, generation] = pair(reply).ok_or_else(|| unexpected_reply("load"))?;
        let Some(customer) = decode_customer(customer, "load")? else {
            return Ok(None);
        };
        if customer.id != id {
            return Err(record_error(RecordError::Malformed("customer")));
        }
        if stored.generation() < generation_of(generation)? {
            // Revoked by `revoke_all`, whose cleanup has not reached it (yet).
            return Ok(None);
        }
        if !customer.can_authenticate() || stored.expires_at() <= Utc::now() {
            return Ok(None);
        }
        Ok(Some(stored.join(hash, customer)))
    }

    pub(super) async fn cluster_create(
        &self,
        session: NewSession,
    ) -> Result<(NewSession, Value), StoreError> {
        let keys = &self.inner.keys;
        let id = match &session.customer {
            CustomerRef::Id(id) => *id,
            CustomerRef::ExternalId(external_id) => {
                let mut get = redis::cmd("GET");
                get.arg(keys.external(external_id));
                let id = bytes(self.run(&get).await?).map_err(|()| unexpected_reply("create"))?;
                match id.and_then(|id| Uuid::try_parse_ascii(&id).ok()) {
                    Some(id) => id,
                    None => return Err(StoreError::UnknownCustomer),
                }
            }
        };
        let hex = session.token_hash.to_hex();
        let expiry = expiry_millis(session.expires_at).to_string();
        let reply = self
            .run_script(
                &self.cluster_side().scripts.create_index,
                &[&keys.customer(id), &keys.index(id), &keys.generation(id)],
                &[&expiry, &hex],
            )
            .await?;
        let Value::Array(parts) = reply else {
            return Err(unexpected_reply("create"));
        };
        let mut parts = parts.into_iter();
        match parts.next().map(bytes) {
            Some(Ok(Some(status))) if status == b"ok" => {}
            Some(Ok(Some(status))) if status == b"unknown" => {
                return Err(StoreError::UnknownCustomer);
            }
            _ => return Err(unexpected_reply("create")),
        }
        let customer = parts.next().unwrap_or(Value::Nil);
        let generation = generation_of(parts.next().unwrap_or(Value::Nil))?;
        let value = format!(
            "{VERSION}|{id}|{}",
            record::session_body(&session, generation)
        );
        let mut set = redis::cmd("SET");
        set.arg(keys.session_hex(&hex))
            .arg(value)
            .arg("NX")
            .arg("PXAT")
            .arg(&expiry);
        match self.cluster_change(Change::Command(set)).await? {
            // Indexed for nothing: `revoke_all` skips what is not the customer's.
            Value::Nil => Err(StoreError::Conflict),
            _ => Ok((session, customer)),
        }
    }

    pub(super) async fn cluster_revoke(&self, token_hash: &TokenHash) -> Result<bool, StoreError> {
        let keys = &self.inner.keys;
        let hex = token_hash.to_hex();
        let mut getdel = redis::cmd("GETDEL");
        getdel.arg(keys.session_hex(&hex));
        let old = self
            .change_and_publish(Change::Command(getdel), |old| match old {
                Some(Value::Nil) | None => Invalidation::Session(*token_hash),
                Some(_) => Invalidation::Revoked(*token_hash),
            })
            .await?;
        let Some(old) = bytes(old).map_err(|()| unexpected_reply("revoke"))? else {
            return Ok(false);
        };
        // Cleanup: `revoke_all` would skip the hash anyway.
        if let Ok(stored) = record::decode_session(&old) {
            let mut srem = redis::cmd("SREM");
            srem.arg(keys.index(stored.customer_id)).arg(&hex);
            if let Err(error) = self.run(&srem).await {
                tracing::debug!(%error, "redis: a revoked session stays in its customer's index");
            }
        }
        Ok(true)
    }

    pub(super) async fn cluster_revoke_all(&self, customer_id: Uuid) -> Result<u64, StoreError> {
        let keys = &self.inner.keys;
        let scripts = &self.cluster_side().scripts;
        let id = customer_id.to_string();
        let hashes = self
            .change_and_publish(
                Change::Script(
                    &scripts.revoke_all,
                    &[&keys.index(customer_id), &keys.generation(customer_id)],
                    &[],
                ),
                |done| match done {
                    Some(_) => Invalidation::CustomerRevoked {
                        customer: customer_id,
                        before: Utc::now(),
                    },
                    None => Invalidation::Customer(customer_id),
                },
            )
            .await?;
        let hashes: Vec<String> =
            redis::from_redis_value(hashes).map_err(|_| unexpected_reply("revoke_all"))?;
        // Cleanup: the new generation already refuses every one of them.
        let deletions = hashes.iter().map(|hex| {
            let key = keys.session_hex(hex);
            let id = &id;
            async move {
                self.run_script(&scripts.delete_if_owned, &[&key], &[id])
                    .await
            }
        });
        let mut count = 0;
        for deleted in futures_util::future::join_all(deletions).await {
            match deleted.and_then(|deleted| int(deleted, "revoke_all")) {
                Ok(deleted) => count += deleted.max(0) as u64,
                Err(error) => tracing::warn!(
                    %error,
                    "redis: a session revoked by revoke_all is left to expire (it is refused)"
                ),
            }
        }
        Ok(count)
    }

    pub(super) async fn cluster_upsert_customer(
        &self,
        customer: &Customer,
        encoded: &record::EncodedCustomer,
    ) -> Result<(), StoreError> {
        let keys = &self.inner.keys;
        let scripts = &self.cluster_side().scripts;
        let id = customer.id.to_string();
        let external_id = customer.external_id.as_deref();
        let changed = self
            .cluster_change(Change::Script(
                &scripts.upsert_customer,
                &[&keys.customer(customer.id)],
                &encoded.script_args(external_id),
            ))
            .await?;
        let moved = async {
            let old = bytes(changed).map_err(|()| unexpected_reply("upsert_customer"))?;
            if let Some(external_id) = external_id {
                let mut set = redis::cmd("SET");
                set.arg(keys.external(external_id)).arg(&id);
                self.cluster_change(Change::Command(set)).await?;
            }
            if let Some(old) =
                old.filter(|old| Some(old.as_slice()) != external_id.map(str::as_bytes))
            {
                let old = String::from_utf8_lossy(&old);
                self.run_script(&scripts.drop_external_id, &[&keys.external(&old)], &[&id])
                    .await?;
            }
            Ok::<_, StoreError>(())
        }
        .await;
        let published = self.publish(Invalidation::Customer(customer.id)).await;
        moved?;
        published
    }

    pub(super) async fn cluster_customer(
        &self,
        by: &CustomerRef,
    ) -> Result<Option<Customer>, StoreError> {
        let keys = &self.inner.keys;
        let id = match by {
            CustomerRef::Id(id) => *id,
            CustomerRef::ExternalId(external_id) => {
                let mut get = redis::cmd("GET");
                get.arg(keys.external(external_id));
                let id = bytes(self.run(&get).await?).map_err(|()| unexpected_reply("customer"))?;
                match id.and_then(|id| Uuid::try_parse_ascii(&id).ok()) {
                    Some(id) => id,
                    None => return Ok(None),
                }
            }
        };
        let mut hmget = redis::cmd("HMGET");
        hmget.arg(keys.customer(id)).arg(&record::CUSTOMER_FIELDS);
        let customer = decode_customer(self.run(&hmget).await?, "customer")?;
        Ok(match by {
            CustomerRef::Id(_) => customer,
            // The index follows upserts; a customer that no longer carries the id is not
            // its owner.
            CustomerRef::ExternalId(external_id) => {
                customer.filter(|c| c.external_id.as_deref() == Some(external_id.as_str()))
            }
        })
    }

    pub(super) async fn cluster_delete_customer(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let keys = &self.inner.keys;
        let existed = self
            .change_and_publish(
                Change::Script(
                    &self.cluster_side().scripts.delete_customer,
                    &[&keys.customer(id)],
                    &[&record::encode_deleted_at(at)],
                ),
                |existed| match existed {
                    Some(Value::Int(1)) => Invalidation::CustomerRevoked {
                        customer: id,
                        before: at,
                    },
                    _ => Invalidation::Customer(id),
                },
            )
            .await?;
        Ok(int(existed, "delete_customer")? == 1)
    }
}

/// A two-element array reply.
fn pair(reply: Value) -> Option<[Value; 2]> {
    match reply {
        Value::Array(parts) => parts.try_into().ok(),
        _ => None,
    }
}

/// A generation as stored (absent: 0).
fn generation_of(value: Value) -> Result<u64, StoreError> {
    match bytes(value).map_err(|()| unexpected_reply("generation"))? {
        None => Ok(0),
        Some(raw) => std::str::from_utf8(&raw)
            .ok()
            .and_then(|raw| raw.parse().ok())
            .ok_or_else(|| record_error(RecordError::Malformed("generation"))),
    }
}
