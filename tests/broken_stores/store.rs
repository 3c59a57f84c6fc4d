//! The store traits on a [`Handle`]: the reference behaviour, and each [`Bug`] where it
//! departs from it. Locks are taken in blocks that end before any `.await`.

use std::time::Duration;

use tower_customer_session::chrono::{DateTime, SubsecRound, Utc};
use tower_customer_session::model::{Customer, CustomerType};
use tower_customer_session::store::{
    CustomerRef, FeedSink, Invalidation, NewSession, SessionRecord, StoreScope, Watch,
};
use tower_customer_session::token::{TokenHash, TokenKind};
use tower_customer_session::uuid::Uuid;
use tower_customer_session::{
    Clock, CustomerStore, SessionAdmin, SessionKey, SessionStore, StoreError,
};

use super::{Bug, Handle, Row, Server, State};

fn unreachable() -> StoreError {
    StoreError::backend("server unreachable")
}

impl Server {
    fn reachable(&self) -> Result<(), StoreError> {
        if self.is_up() {
            Ok(())
        } else {
            Err(unreachable())
        }
    }

    /// Where a session is filed.
    fn key(&self, hash: &TokenHash) -> Vec<u8> {
        let bytes = hash.as_bytes();
        if self.has(Bug::MatchesHashPrefix) {
            bytes[..16].to_vec()
        } else if self.has(Bug::ComparesHashCaseInsensitively) {
            base64(bytes).to_lowercase().into_bytes()
        } else {
            bytes.to_vec()
        }
    }

    /// The customer as this server keeps it.
    fn kept(&self, customer: Customer) -> Customer {
        let mut kept = customer;
        let data = kept.make_mut();
        match self.bug {
            Some(Bug::DropsMetadata) => data.metadata.clear(),
            Some(Bug::SortsMetadataKeys) => data.metadata.sort_keys(),
            Some(Bug::TruncatesCreatedAtToSeconds) => {
                data.created_at = data.created_at.trunc_subsecs(0)
            }
            Some(Bug::LosesBillingAddress) => data.billing_address = None,
            Some(Bug::LosesTaxId) => data.tax_id = None,
            Some(Bug::LosesLocale) => data.locale = None,
            Some(Bug::LosesOrganization) => data.organization_id = Uuid::nil(),
            Some(Bug::LosesTeamType) => data.customer_type = CustomerType::Individual,
            Some(Bug::DropsOptionalTimestamps) => {
                data.modified_at = None;
                data.first_user_event_at = None;
            }
            _ => {}
        }
        kept
    }

    /// The live customer `by` refers to.
    fn resolve(&self, state: &State, by: &CustomerRef) -> Option<Customer> {
        let (id, by_external_id) = match by {
            CustomerRef::Id(id) => (*id, false),
            CustomerRef::ExternalId(ext) => (*state.by_external_id.get(ext)?, true),
        };
        let customer = state.customers.get(&id)?;
        let ignore_deletion = by_external_id && self.has(Bug::CreateByExternalIdIgnoresDeletion);
        (customer.can_authenticate() || ignore_deletion).then(|| customer.clone())
    }

    fn live(&self, expires_at: DateTime<Utc>) -> bool {
        let now = self.clock.now();
        if self.has(Bug::IgnoresExpiry) {
            true
        } else if self.has(Bug::ExpiresAtItselfIsLive) {
            expires_at >= now
        } else {
            expires_at > now
        }
    }
}

/// Base64 of the hash, for the bug that files sessions under its lowercase form.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    bytes
        .chunks(3)
        .flat_map(|group| {
            let n =
                group.iter().fold(0u32, |n, b| n << 8 | u32::from(*b)) << (8 * (3 - group.len()));
            [18, 12, 6, 0].map(|shift| char::from(ALPHABET[(n >> shift & 0x3f) as usize]))
        })
        .collect()
}

impl SessionStore for Handle {
    async fn load(&self, key: SessionKey<'_>) -> Result<Option<SessionRecord>, StoreError> {
        let server = &self.server;
        if let Err(error) = server.reachable() {
            return if server.has(Bug::SwallowsLoadErrors) {
                Ok(None)
            } else {
                Err(error)
            };
        }
        let mut state = server.lock();
        if server.has(Bug::KeepsRawTokenHex) {
            let hex = key
                .expose_token()
                .bytes()
                .map(|b| format!("{b:02x}"))
                .collect();
            state.seen.push(hex);
        }
        if server.has(Bug::KeepsRawTokenBase64) {
            state.seen.push(base64(key.expose_token().as_bytes()));
        }
        let Some(row) = state.sessions.get(&server.key(key.token_hash())).cloned() else {
            return Ok(None);
        };
        let customer = if server.has(Bug::JoinsCustomerAsItWasAtCreate) {
            row.customer_at_create.clone()
        } else {
            match state.customers.get(&row.customer_id) {
                Some(customer) => customer.clone(),
                None => return Ok(None),
            }
        };
        let deleted = !customer.can_authenticate() && !server.has(Bug::LoadIgnoresDeletedCustomer);
        if deleted || !server.live(row.expires_at) {
            return Ok(None);
        }
        Ok(Some(SessionRecord {
            id: row.id,
            token_hash: *key.token_hash(),
            kind: row.kind,
            customer,
            created_at: row.created_at,
            modified_at: None,
            expires_at: row.expires_at,
            return_url: if server.has(Bug::DropsReturnUrl) {
                None
            } else {
                row.return_url
            },
            member: if server.has(Bug::LoadDropsMember) {
                None
            } else {
                row.member
            },
        }))
    }

    fn scope(&self) -> StoreScope {
        if self.server.has(Bug::ClaimsProcessScope) {
            StoreScope::Process
        } else {
            StoreScope::Shared
        }
    }

    fn watch(&self, sink: FeedSink) -> Option<Watch> {
        let server = self.server.clone();
        let heartbeat = server.heartbeat;
        if self.server.has(Bug::WatchNeedsTheCallersRuntime) {
            tokio::spawn(super::feed::run(server, sink));
        } else {
            self.server.runtime.spawn(super::feed::run(server, sink));
        }
        Some(Watch::new(heartbeat * 3))
    }
}

impl SessionAdmin for Handle {
    async fn create(&self, new: NewSession) -> Result<SessionRecord, StoreError> {
        let server = &self.server;
        if let Err(error) = server.reachable() {
            return Err(if server.has(Bug::CreateErrorIsUnknownCustomer) {
                StoreError::UnknownCustomer
            } else {
                error
            });
        }
        let key = server.key(&new.token_hash);
        let row = |customer: &Customer| Row {
            id: new.id,
            kind: new.kind,
            customer_id: customer.id,
            created_at: new.created_at,
            expires_at: new.expires_at,
            return_url: new.return_url.clone(),
            member: new.member.clone(),
            customer_at_create: customer.clone(),
        };
        let customer = {
            let mut state = server.lock();
            let Some(customer) = server.resolve(&state, &new.customer) else {
                if server.has(Bug::LeavesOrphanForUnknownCustomer) {
                    // The row goes in first, and the customer check after it.
                    if let CustomerRef::Id(id) = &new.customer {
                        let mut orphan = row(&Customer::new(
                            tower_customer_session::model::CustomerData::new(new.created_at),
                        ));
                        orphan.customer_id = *id;
                        state.sessions.insert(key, orphan);
                    }
                }
                return Err(StoreError::UnknownCustomer);
            };
            if server.has(Bug::CreateChecksThenInserts) {
                if state.sessions.contains_key(&key) {
                    return Err(StoreError::Conflict);
                }
                customer
            } else {
                if state.sessions.contains_key(&key) && !server.has(Bug::CreateOverwrites) {
                    return Err(StoreError::Conflict);
                }
                state.sessions.insert(key.clone(), row(&customer));
                return Ok(new.clone().into_record(customer));
            }
        };
        // The insert, one round trip after the check.
        tokio::task::yield_now().await;
        server.lock().sessions.insert(key, row(&customer));
        Ok(new.into_record(customer))
    }

    async fn revoke(&self, hash: &TokenHash) -> Result<bool, StoreError> {
        let server = &self.server;
        if let Err(error) = server.reachable() {
            return if server.has(Bug::RevokeSwallowsErrors) {
                Ok(false)
            } else {
                Err(error)
            };
        }
        if server.has(Bug::AnnouncesRevokeBeforeCommit) {
            server.announce(Invalidation::Session(*hash));
            // The commit, a round trip after the announcement.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let existed = server.lock().sessions.remove(&server.key(hash)).is_some();
        if !server.has(Bug::AnnouncesRevokeBeforeCommit) {
            server.announce(
                if existed && !server.has(Bug::RevocationsAnnouncedAsPlainChanges) {
                    Invalidation::Revoked(*hash)
                } else {
                    Invalidation::Session(*hash)
                },
            );
        }
        Ok(existed)
    }

    async fn revoke_all(&self, customer_id: Uuid) -> Result<u64, StoreError> {
        let server = &self.server;
        server.reachable()?;
        let removed = {
            let mut state = server.lock();
            let before = state.sessions.len();
            let skip_members = server.has(Bug::RevokeAllSkipsMemberSessions);
            state.sessions.retain(|_, row| {
                row.customer_id != customer_id || (skip_members && row.kind == TokenKind::Member)
            });
            before - state.sessions.len()
        };
        if server.has(Bug::RevocationsAnnouncedAsPlainChanges) {
            server.announce(Invalidation::Customer(customer_id));
        } else if !server.has(Bug::RevokeAllNotAnnounced) {
            server.announce(Invalidation::CustomerRevoked {
                customer: customer_id,
                before: server.clock.now(),
            });
        }
        Ok(removed as u64)
    }
}

impl CustomerStore for Handle {
    async fn upsert_customer(&self, customer: Customer) -> Result<Customer, StoreError> {
        let server = &self.server;
        server.reachable()?;
        let kept = server.kept(customer.clone());
        if server.has(Bug::UpsertRewritesEveryCustomer) {
            // Read everything, change one, write everything back.
            let mut all = server.lock().customers.clone();
            tokio::task::yield_now().await;
            all.insert(kept.id, kept.clone());
            server.lock().customers = all;
        } else {
            server.lock().customers.insert(kept.id, kept.clone());
        }
        {
            let mut state = server.lock();
            if !server.has(Bug::StaleExternalIdIndex) {
                state.by_external_id.retain(|_, id| *id != kept.id);
            }
            if let Some(ext) = &kept.external_id {
                state.by_external_id.insert(ext.clone(), kept.id);
            }
        }
        if !server.has(Bug::CustomerEditsNotAnnounced) {
            server.announce(Invalidation::Customer(kept.id));
        }
        // What went in, whatever was kept: what a careless store returns.
        Ok(customer)
    }

    async fn customer(&self, by: &CustomerRef) -> Result<Option<Customer>, StoreError> {
        self.server.reachable()?;
        let state = self.server.lock();
        let id = match by {
            CustomerRef::Id(id) => Some(*id),
            CustomerRef::ExternalId(ext) => state.by_external_id.get(ext).copied(),
        };
        Ok(id.and_then(|id| state.customers.get(&id).cloned()))
    }

    async fn delete_customer(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let server = &self.server;
        server.reachable()?;
        let existed = {
            let mut state = server.lock();
            if server.has(Bug::HardDelete) {
                state.customers.remove(&id).is_some()
            } else if let Some(customer) = state.customers.get_mut(&id) {
                let data = customer.make_mut();
                let at = if server.has(Bug::DeletedAtIsNow) {
                    server.clock.now()
                } else {
                    at
                };
                if server.has(Bug::SecondDeletionOverwrites) {
                    data.deleted_at = Some(at);
                } else {
                    data.deleted_at.get_or_insert(at);
                }
                true
            } else {
                false
            }
        };
        if existed {
            server.announce(if server.has(Bug::RevocationsAnnouncedAsPlainChanges) {
                Invalidation::Customer(id)
            } else {
                Invalidation::CustomerRevoked {
                    customer: id,
                    before: at,
                }
            });
        }
        Ok(existed)
    }
}
