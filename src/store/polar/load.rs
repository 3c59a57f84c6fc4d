//! Resolution: one token's session, customer and member, from Polar's answers.

use chrono::{TimeDelta, Utc};
use http::HeaderValue;
use serde::de::DeserializeOwned;
use uuid::{Uuid, uuid};

use super::builder::bearer;
use super::client::{Endpoint, Reply};
use super::{Inner, PolarApiError, PolarApiStore};
use crate::model::{
    Customer, CustomerCustomerSession, CustomerData, CustomerPortalCustomer, Member, MemberRole,
    PortalAuthenticatedUser, PortalUserType,
};
use crate::store::{SessionKey, SessionRecord, SessionStore, StoreError};
use crate::token::{TokenHash, TokenKind};

const INTROSPECT: &str = "/v1/customer-portal/customer-session/introspect";
const USER: &str = "/v1/customer-portal/customer-session/user";
const ME: &str = "/v1/customer-portal/customers/me";

/// Namespace of the UUID v5 session ids derived from token hashes.
const SESSION_ID_NAMESPACE: Uuid = uuid!("8d4f1c2a-6b3e-4f7a-9c05-2e81d7a4b3f6");

/// Polar's `CUSTOMER_SESSION_TTL`: fixed, never extended.
const POLAR_SESSION_HOURS: i64 = 1;

impl SessionStore for PolarApiStore {
    async fn load(&self, key: SessionKey<'_>) -> Result<Option<SessionRecord>, StoreError> {
        let inner = &*self.inner;
        let _permit = inner
            .loads
            .try_acquire()
            .map_err(|_| StoreError::RateLimited {
                retry_after: Some(1),
            })?;
        // The core has checked the shape, so this always succeeds; a value a header cannot
        // carry would be no token of Polar's anyway.
        let Some(token) = bearer(key.expose_token()) else {
            return Ok(None);
        };
        let Some(portal) = PortalView::fetch(inner, &token).await? else {
            return Ok(None);
        };
        let customer = match &inner.organization {
            Some(organization) => {
                match full_customer(inner, portal.customer_id, organization).await? {
                    Some(customer) => customer,
                    None => return Ok(None),
                }
            }
            None => match portal.me {
                Some(me) => from_portal(me, inner.organization_id),
                None => return Err(inconsistent("no customer-portal view of the customer")),
            },
        };
        let expires_at = portal.session.expires_at;
        if !customer.can_authenticate() || expires_at <= Utc::now() {
            return Ok(None);
        }
        let (kind, member) = member_of(portal.user)?;
        Ok(Some(SessionRecord {
            id: session_id(key.token_hash()),
            token_hash: *key.token_hash(),
            kind,
            customer,
            created_at: expires_at - TimeDelta::hours(POLAR_SESSION_HOURS),
            modified_at: None,
            expires_at,
            return_url: portal.session.return_url,
            member,
        }))
    }
}

/// What the customer-portal endpoints say about a token that Polar accepts.
struct PortalView {
    session: CustomerCustomerSession,
    /// `None` when Polar answers `422` (a team customer's customer session, no email).
    user: Option<PortalAuthenticatedUser>,
    /// Fetched without an organization token, or to learn the customer id when `user` is
    /// `None`.
    me: Option<CustomerPortalCustomer>,
    customer_id: Uuid,
}

impl PortalView {
    /// The first round, in parallel: introspect and user, plus `customers/me` when there is
    /// no organization token. `None` if Polar refuses the token on any of them.
    async fn fetch(inner: &Inner, token: &HeaderValue) -> Result<Option<Self>, StoreError> {
        let session =
            get::<CustomerCustomerSession>(inner, Endpoint::Introspect, INTROSPECT, token);
        let user = get::<PortalAuthenticatedUser>(inner, Endpoint::User, USER, token);
        let (session, user, me) = if inner.organization.is_some() {
            let (session, user) = tokio::join!(session, user);
            (session, user, None)
        } else {
            let me = get::<CustomerPortalCustomer>(inner, Endpoint::Me, ME, token);
            let (session, user, me) = tokio::join!(session, user, me);
            (session, user, Some(me))
        };
        // Polar's 401 settles it, whatever the other calls said.
        if refused(&session) || refused(&user) || me.as_ref().is_some_and(refused) {
            return Ok(None);
        }
        let session = expect(Endpoint::Introspect, session?)?;
        let user = match user? {
            Reply::Found(user) => Some(user),
            Reply::Unprocessable => None,
            other => return Err(unexpected(Endpoint::User, &other)),
        };
        let mut me = me
            .transpose()?
            .map(|me| expect(Endpoint::Me, me))
            .transpose()?;
        let customer_id = match (&user, &me) {
            (Some(user), _) => user.customer_id,
            (None, Some(me)) => me.id,
            (None, None) => {
                match get::<CustomerPortalCustomer>(inner, Endpoint::Me, ME, token).await? {
                    Reply::Found(found) => me.insert(found).id,
                    Reply::Unauthorized => return Ok(None),
                    other => return Err(unexpected(Endpoint::Me, &other)),
                }
            }
        };
        if me.as_ref().is_some_and(|me| me.id != customer_id) {
            return Err(inconsistent(
                "customer-session/user and customers/me name different customers",
            ));
        }
        Ok(Some(Self {
            session,
            user,
            me,
            customer_id,
        }))
    }
}

/// `GET /v1/customers/{id}` with the organization token. `None` if Polar has no such
/// (undeleted) customer.
async fn full_customer(
    inner: &Inner,
    id: Uuid,
    organization: &HeaderValue,
) -> Result<Option<Customer>, StoreError> {
    let path = format!("/v1/customers/{id}");
    match get::<Customer>(inner, Endpoint::Customer, &path, organization).await? {
        Reply::Found(customer) if customer.id == id => Ok(Some(customer)),
        Reply::Found(_) => Err(inconsistent("/v1/customers/{id} answered another customer")),
        Reply::NotFound => Ok(None),
        Reply::Unauthorized => {
            tracing::error!("Polar refused the organization access token (401)");
            Err(StoreError::backend(PolarApiError::OrganizationToken {
                status: 401,
            }))
        }
        Reply::Unprocessable => Err(unexpected(Endpoint::Customer, &Reply::<()>::Unprocessable)),
    }
}

async fn get<T: DeserializeOwned>(
    inner: &Inner,
    endpoint: Endpoint,
    path: &str,
    bearer: &HeaderValue,
) -> Result<Reply<T>, StoreError> {
    inner.client.get(endpoint, path, bearer).await
}

fn refused<T>(reply: &Result<Reply<T>, StoreError>) -> bool {
    matches!(reply, Ok(Reply::Unauthorized))
}

fn expect<T>(endpoint: Endpoint, reply: Reply<T>) -> Result<T, StoreError> {
    match reply {
        Reply::Found(value) => Ok(value),
        other => Err(unexpected(endpoint, &other)),
    }
}

fn unexpected<T>(endpoint: Endpoint, reply: &Reply<T>) -> StoreError {
    let status = match reply {
        Reply::Found(_) => 200,
        Reply::Unauthorized => 401,
        Reply::NotFound => 404,
        Reply::Unprocessable => 422,
    };
    StoreError::backend(PolarApiError::Status {
        endpoint: endpoint.name(),
        status,
    })
}

fn inconsistent(what: &'static str) -> StoreError {
    StoreError::backend(PolarApiError::Inconsistent(what))
}

/// The session's kind and member, as `customer-session/user` tells them.
fn member_of(
    user: Option<PortalAuthenticatedUser>,
) -> Result<(TokenKind, Option<Member>), StoreError> {
    let Some(user) = user.filter(|u| u.user_type == PortalUserType::Member) else {
        return Ok((TokenKind::Customer, None));
    };
    let id = user
        .member_id
        .ok_or_else(|| inconsistent("a member session without a member_id"))?;
    let member = Member {
        id,
        email: Some(user.email),
        name: user.name,
        // Polar's portal does not expose the member's external id.
        external_id: None,
        // Least privilege if Polar ever leaves the role out.
        role: user.role.unwrap_or(MemberRole::Member),
    };
    Ok((TokenKind::Member, Some(member)))
}

/// A `Customer` from the customer portal's view: what it lacks stays empty.
fn from_portal(me: CustomerPortalCustomer, organization_id: Uuid) -> Customer {
    let mut data = CustomerData::new(me.created_at).organization(organization_id);
    data.id = me.id;
    data.modified_at = me.modified_at;
    data.email = me.email;
    data.email_verified = me.email_verified;
    data.customer_type = me.customer_type.unwrap_or_default();
    data.name = me.name;
    data.billing_name = me.billing_name;
    data.billing_address = me.billing_address;
    data.tax_id = me.tax_id;
    data.locale = me.locale;
    data.default_payment_method_id = me.default_payment_method_id;
    Customer::new(data)
}

/// A stable id for the session Polar does not name: UUID v5 of the token's keyed hash.
fn session_id(hash: &TokenHash) -> Uuid {
    Uuid::new_v5(&SESSION_ID_NAMESPACE, hash.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_stable_per_hash_and_distinct_across_hashes() {
        let a = TokenHash::from_bytes([1; 32]);
        let b = TokenHash::from_bytes([2; 32]);
        assert_eq!(session_id(&a), session_id(&a));
        assert_ne!(session_id(&a), session_id(&b));
        assert_eq!(session_id(&a).get_version_num(), 5);
    }

    #[test]
    fn members_get_their_role_and_customers_none() {
        let user = |json: serde_json::Value| serde_json::from_value(json).unwrap();
        let member = user(serde_json::json!({
            "type": "member", "name": "Ann", "email": "ann@acme.example",
            "customer_id": Uuid::nil(), "member_id": Uuid::nil(), "role": "billing_manager"
        }));
        let (kind, member) = member_of(Some(member)).unwrap();
        assert_eq!(kind, TokenKind::Member);
        let member = member.unwrap();
        assert_eq!(member.role, MemberRole::BillingManager);
        assert_eq!(member.email.as_deref(), Some("ann@acme.example"));

        let customer = user(serde_json::json!({
            "type": "customer", "name": null, "email": "c@example.com",
            "customer_id": Uuid::nil(), "member_id": null, "role": null
        }));
        assert_eq!(
            member_of(Some(customer)).unwrap(),
            (TokenKind::Customer, None)
        );
        assert_eq!(member_of(None).unwrap(), (TokenKind::Customer, None));

        let roleless = user(serde_json::json!({
            "type": "member", "name": null, "email": "m@acme.example",
            "customer_id": Uuid::nil(), "member_id": Uuid::nil()
        }));
        assert_eq!(
            member_of(Some(roleless)).unwrap().1.unwrap().role,
            MemberRole::Member,
            "a member without a role gets the least privilege"
        );
        let nameless = user(serde_json::json!({
            "type": "member", "name": null, "email": "m@acme.example",
            "customer_id": Uuid::nil(), "member_id": null, "role": "owner"
        }));
        assert!(member_of(Some(nameless)).is_err());
    }
}
