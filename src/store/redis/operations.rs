//! The store traits on Redis: `load`, `create`, revocations and customers, on a single
//! server (one script each) or a cluster (`cluster/`).

#[allow(clippy::wildcard_imports)]
use super::*;

impl SessionStore for RedisStore {
    async fn load(&self, key: SessionKey<'_>) -> Result<Option<SessionRecord>, StoreError> {
        let hash = *key.token_hash();
        if self.inner.cluster.is_some() {
            return self.cluster_load(hash).await;
        }
        let (mut connection, call) = self.inner.commands.begin();
        let reply: Value = self
            .bounded(
                call,
                self.inner
                    .scripts
                    .load
                    .key(self.inner.keys.session(&hash))
                    .arg(self.inner.keys.customer_prefix())
                    .invoke_async(&mut connection),
            )
            .await?;
        let (session, customer) = match reply {
            Value::Nil => return Ok(None),
            Value::Array(parts) => {
                let mut parts = parts.into_iter();
                let session = parts.next().map(bytes);
                let customer = parts.next().unwrap_or(Value::Nil);
                match session {
                    Some(Ok(Some(session))) => (session, customer),
                    _ => return Err(unexpected_reply("load")),
                }
            }
            _ => return Err(unexpected_reply("load")),
        };
        // The version is checked before anything else is read from the record.
        let stored = record::decode_session(&session).map_err(record_error)?;
        let Some(customer) = decode_customer(customer, "load")? else {
            return Ok(None);
        };
        if customer.id != stored.customer_id {
            return Err(record_error(RecordError::Malformed("customer")));
        }
        if !customer.can_authenticate() || stored.expires_at() <= Utc::now() {
            return Ok(None);
        }
        Ok(Some(stored.join(hash, customer)))
    }

    fn watch(&self, sink: FeedSink) -> Option<Watch> {
        match &self.inner.cluster {
            Some(cluster) => self
                .inner
                .runtime
                .spawn(cluster::feed::run(cluster.feed.clone(), sink)),
            None => self
                .inner
                .runtime
                .spawn(feed::run(self.inner.feed.clone(), sink)),
        };
        Some(Watch::new(self.inner.feed.silence_bound()))
    }
}

impl SessionAdmin for RedisStore {
    async fn create(&self, session: NewSession) -> Result<SessionRecord, StoreError> {
        if self.inner.cluster.is_some() {
            let (session, customer) = self.cluster_create(session).await?;
            return created(session, customer);
        }
        let (by, customer) = match &session.customer {
            CustomerRef::Id(id) => ("id", id.to_string()),
            CustomerRef::ExternalId(external_id) => ("ext", external_id.clone()),
        };
        let hex = session.token_hash.to_hex();
        let keys = &self.inner.keys;
        let expiry = expiry_millis(session.expires_at).to_string();
        let body = record::session_body(&session, 0);
        let reply = self
            .change(
                &self.inner.scripts.create,
                scripts::CREATE,
                keys.session_hex(&hex),
                &[
                    keys.customer_prefix(),
                    keys.external_prefix(),
                    keys.index_prefix(),
                    by,
                    &customer,
                    &expiry,
                    VERSION,
                    &body,
                    &hex,
                ],
            )
            .await?;
        let Value::Array(parts) = reply else {
            return Err(unexpected_reply("create"));
        };
        let mut parts = parts.into_iter();
        let status = parts.next().map(bytes);
        match status {
            Some(Ok(Some(status))) if status == b"ok" => {}
            Some(Ok(Some(status))) if status == b"conflict" => return Err(StoreError::Conflict),
            Some(Ok(Some(status))) if status == b"unknown" => {
                return Err(StoreError::UnknownCustomer);
            }
            _ => return Err(unexpected_reply("create")),
        }
        created(session, parts.next().unwrap_or(Value::Nil))
    }

    async fn revoke(&self, token_hash: &TokenHash) -> Result<bool, StoreError> {
        if self.inner.cluster.is_some() {
            return self.cluster_revoke(token_hash).await;
        }
        let hex = token_hash.to_hex();
        let revoked = feed::message(Invalidation::Revoked(*token_hash));
        let absent = feed::message(Invalidation::Session(*token_hash));
        let existed = self
            .change(
                &self.inner.scripts.revoke,
                scripts::REVOKE,
                self.inner.keys.session_hex(&hex),
                &[
                    self.inner.keys.index_prefix(),
                    self.channel(),
                    &revoked,
                    &hex,
                    &absent,
                ],
            )
            .await?;
        Ok(int(existed, "revoke")? == 1)
    }

    async fn revoke_all(&self, customer_id: Uuid) -> Result<u64, StoreError> {
        if self.inner.cluster.is_some() {
            return self.cluster_revoke_all(customer_id).await;
        }
        // The script appends the server's time: `Invalidation::CustomerRevoked`.
        let message = format!("a:{customer_id}:");
        let count = self
            .change(
                &self.inner.scripts.revoke_all,
                scripts::REVOKE_ALL,
                self.inner.keys.index(customer_id),
                &[
                    self.inner.keys.session_prefix(),
                    self.channel(),
                    &message,
                    &customer_id.to_string(),
                ],
            )
            .await?;
        Ok(int(count, "revoke_all")?.max(0) as u64)
    }
}

impl CustomerStore for RedisStore {
    async fn upsert_customer(&self, customer: Customer) -> Result<Customer, StoreError> {
        let id = customer.id;
        let encoded = record::encode_customer(&customer);
        let external_id = customer.external_id.as_deref();
        if self.inner.cluster.is_some() {
            self.cluster_upsert_customer(&customer, &encoded).await?;
        } else {
            self.upsert_customer_script(id, &encoded, external_id)
                .await?;
        }
        // As loads will return it (the wire format keeps microseconds).
        let stored = [
            Some(VERSION.as_bytes().to_vec()),
            encoded.deleted.map(String::into_bytes),
            Some(encoded.data.into_bytes()),
        ];
        record::decode_customer(stored)
            .map_err(record_error)?
            .ok_or_else(|| unexpected_reply("upsert_customer"))
    }

    async fn customer(&self, by: &CustomerRef) -> Result<Option<Customer>, StoreError> {
        if self.inner.cluster.is_some() {
            return self.cluster_customer(by).await;
        }
        let (mut connection, call) = self.inner.commands.begin();
        match by {
            CustomerRef::Id(id) => {
                let reply: Value = self
                    .bounded(
                        call,
                        redis::cmd("HMGET")
                            .arg(self.inner.keys.customer(*id))
                            .arg(&record::CUSTOMER_FIELDS)
                            .query_async(&mut connection),
                    )
                    .await?;
                decode_customer(reply, "customer")
            }
            CustomerRef::ExternalId(external_id) => {
                let reply: Value = self
                    .bounded(
                        call,
                        self.inner
                            .scripts
                            .customer_by_external_id
                            .key(self.inner.keys.external(external_id))
                            .arg(self.inner.keys.customer_prefix())
                            .invoke_async(&mut connection),
                    )
                    .await?;
                // The index follows upserts; a customer that no longer carries the id is
                // not its owner.
                Ok(decode_customer(reply, "customer")?
                    .filter(|c| c.external_id.as_deref() == Some(external_id.as_str())))
            }
        }
    }

    async fn delete_customer(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
        if self.inner.cluster.is_some() {
            return self.cluster_delete_customer(id, at).await;
        }
        let revoked = feed::message(Invalidation::CustomerRevoked {
            customer: id,
            before: at,
        });
        let absent = feed::message(Invalidation::Customer(id));
        let existed = self
            .change(
                &self.inner.scripts.delete_customer,
                scripts::DELETE_CUSTOMER,
                self.inner.keys.customer(id),
                &[
                    self.channel(),
                    &revoked,
                    &record::encode_deleted_at(at),
                    &absent,
                ],
            )
            .await?;
        Ok(int(existed, "delete_customer")? == 1)
    }
}

impl RedisStore {
    /// `upsert_customer` on a single server: one script, then the durability wait.
    async fn upsert_customer_script(
        &self,
        id: Uuid,
        encoded: &record::EncodedCustomer,
        external_id: Option<&str>,
    ) -> Result<(), StoreError> {
        let message = feed::message(Invalidation::Customer(id));
        let id_text = id.to_string();
        self.change(
            &self.inner.scripts.upsert_customer,
            scripts::UPSERT_CUSTOMER,
            self.inner.keys.customer(id),
            &[
                &[
                    self.inner.keys.external_prefix(),
                    self.channel(),
                    &message,
                    &id_text,
                ][..],
                &encoded.script_args(external_id),
            ]
            .concat(),
        )
        .await?;
        Ok(())
    }
}
