//! The portal's HTTP API: the part of Polar's API that deals with customer sessions.
//!
//! | route | credential | answer |
//! |---|---|---|
//! | `POST /v1/customer-sessions/` | organization token | `201` `CustomerSession` (a member session with `member_id` / `external_member_id`) |
//! | `GET /v1/customers/{id}` | organization token | `Customer`, `404` if unknown or deleted |
//! | `DELETE /v1/customers/{id}` | organization token | `204`, `404` if unknown or deleted |
//! | `GET /v1/customer-portal/customers/me` | customer or member session | `CustomerPortalCustomer` |
//! | `PATCH /v1/customer-portal/customers/me` | session of an owner or billing manager | `CustomerPortalCustomer` |
//! | `GET /v1/customer-portal/customer-session/introspect` | customer or member session | `CustomerCustomerSession` |
//! | `GET /v1/customer-portal/customer-session/user` | customer or member session | `PortalAuthenticatedUser` |
//!
//! The customer-portal routes sit behind [`CustomerSessionLayer`]: the handlers only ever see
//! an authenticated [`Customer`]. Bodies, statuses and headers follow Polar's, so Polar's
//! official SDKs work against this server (see `tests/sdk/`), and so does the crate's own
//! `PolarApiStore` (the example's merchant mode, `merchant.rs`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::handler::Handler;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower_customer_session::model::{
    Address, CustomerCustomerSession, CustomerPortalCustomer, Member, PortalAuthenticatedUser,
    PortalUserType, truncate_to_micros,
};
use tower_customer_session::store::CustomerRef;
use tower_customer_session::token::TokenKind;
use tower_customer_session::{
    CreateError, CreateSession, CredentialSource, Customer, CustomerSessionLayer, DynStore,
    RequireRole, SessionCookie, SessionInfo, SessionManager, StoreError,
};
use uuid::Uuid;

// A child of this module (not of the binary) so that tests including `app.rs` get it too.
#[path = "browser.rs"]
pub mod browser;

/// `Polar-Version` values this server answers. The response shapes of these routes are the
/// same in all of them; `2026-04` is Polar's default.
pub const SUPPORTED_VERSIONS: &[&str] = &["2026-04", "2026-10", "2027-01"];
const DEFAULT_VERSION: &str = "2026-04";
const POLAR_VERSION: HeaderName = HeaderName::from_static("polar-version");

/// Longest `return_url` Polar accepts.
const MAX_URL_LEN: usize = 2083;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Issues, resolves and revokes customer sessions.
    pub sessions: SessionManager<DynStore>,
    org_token: Arc<OrgToken>,
    /// Members of team customers, by customer id, for member sessions.
    members: Arc<[(Uuid, Member)]>,
}

impl AppState {
    /// State for a server whose merchant backend authenticates with `org_token`.
    pub fn new(sessions: SessionManager<DynStore>, org_token: &str) -> Self {
        Self {
            sessions,
            org_token: Arc::new(OrgToken::new(org_token)),
            members: Arc::new([]),
        }
    }

    /// The same state, knowing `members` of the team customer `customer_id`, so that
    /// `POST /v1/customer-sessions/` can create member sessions for them.
    pub fn with_members(
        mut self,
        customer_id: Uuid,
        members: impl IntoIterator<Item = Member>,
    ) -> Self {
        let mut all = self.members.to_vec();
        all.extend(members.into_iter().map(|member| (customer_id, member)));
        self.members = all.into();
        self
    }

    /// The member `reference` names among the members of `customer_id`.
    fn member(&self, customer_id: Uuid, reference: &MemberRef) -> Option<Member> {
        self.members
            .iter()
            .filter(|(owner, _)| *owner == customer_id)
            .map(|(_, member)| member)
            .find(|member| match reference {
                MemberRef::Id(id) => member.id == *id,
                MemberRef::ExternalId(ext) => member.external_id.as_deref() == Some(ext),
            })
            .cloned()
    }
}

/// The organization access token (`polar_oat_…`), kept only as its SHA-256.
///
/// Comparing two fixed-size digests in constant time leaks neither the token's content nor
/// its length through timing.
struct OrgToken([u8; 32]);

impl OrgToken {
    fn new(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        presented.ct_eq(&self.0).into()
    }
}

/// The whole application: the API, the browser portal (`browser.rs`) and Polar's answers
/// for unknown paths and methods. The session cookie is `Secure`.
pub fn router(state: AppState) -> Router {
    router_with_cookie(state, browser::session_cookie(true))
}

/// [`router`] with the browser portal's session cookie chosen by the caller (plain-http
/// development needs one without `Secure`).
pub fn router_with_cookie(state: AppState, cookie: SessionCookie) -> Router {
    let portal = browser::router(state.sessions.clone(), cookie);
    with_portal(state, portal)
}

/// [`router_with_cookie`] with Device Bound Session Credentials when `dbsc` is given (see
/// `browser.rs`).
///
/// # Errors
///
/// If the DBSC settings do not fit the cookie.
pub fn router_with_dbsc(
    state: AppState,
    cookie: SessionCookie,
    dbsc: Option<browser::DeviceBound>,
) -> Result<Router, tower_customer_session::ConfigError> {
    let portal = browser::router_with_dbsc(state.sessions.clone(), cookie, dbsc)?;
    Ok(with_portal(state, portal))
}

fn with_portal(state: AppState, portal: Router) -> Router {
    api_router(state)
        .merge(portal)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// The JSON API, without a fallback so it can be merged into a larger router.
pub fn api_router(state: AppState) -> Router {
    // The merchant's backend: authenticated by the organization token.
    let organization = Router::new()
        .route("/v1/customer-sessions/", post(create_customer_session))
        .route(
            "/v1/customers/{id}",
            get(get_customer_by_id).delete(delete_customer),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_org_token,
        ));

    // The customer's own view: authenticated by a customer session token.
    let customer_portal = Router::new()
        .route(
            "/v1/customer-portal/customers/me",
            // Reading is every session's; changing billing details is for owners and billing
            // managers (a customer session counts as the owner), as in Polar's portal.
            get(get_customer).patch(update_customer.layer(RequireRole::billing())),
        )
        .route(
            "/v1/customer-portal/customer-session/introspect",
            get(introspect_session),
        )
        .route(
            "/v1/customer-portal/customer-session/user",
            get(get_authenticated_user),
        )
        .route_layer(CustomerSessionLayer::new(state.sessions.clone()));

    organization
        .merge(customer_portal)
        .layer(middleware::from_fn(polar_version))
        .with_state(state)
}

// ---------------------------------------------------------------------------------------
// POST /v1/customer-sessions/
// ---------------------------------------------------------------------------------------

/// Create a session for a customer given by `customer_id` or `external_customer_id`.
async fn create_customer_session(State(state): State<AppState>, body: Bytes) -> Response {
    let request = match CreateRequest::parse(&body) {
        Ok(request) => request,
        Err(errors) => return errors.into_response(),
    };
    let mut options = CreateSession::default();
    if let Some(url) = request.return_url {
        options = options.return_url(url);
    }
    if let Some(reference) = &request.member {
        // An unknown customer is reported by `create` below, as Polar reports it first.
        if let Some(customer_id) = customer_id_of(&state, &request.customer).await {
            match state.member(customer_id, reference) {
                Some(member) => options = options.member(member),
                None => return member_does_not_exist(reference),
            }
        }
    }
    match state
        .sessions
        .create(request.customer.clone(), options)
        .await
    {
        Ok(session) => (StatusCode::CREATED, Json(session)).into_response(),
        // Unknown and deleted customers look the same, as in Polar.
        Err(CreateError::Store(StoreError::UnknownCustomer)) => {
            let (field, input) = match request.customer {
                CustomerRef::Id(id) => ("customer_id", Value::from(id.to_string())),
                CustomerRef::ExternalId(id) => ("external_customer_id", Value::from(id)),
            };
            ValidationErrors::polar(vec![FieldError {
                kind: "value_error",
                loc: json!(["body", field]),
                msg: "Customer does not exist.".into(),
                input,
            }])
            .into_response()
        }
        Err(error) => {
            tracing::error!(%error, "creating a customer session failed");
            service_unavailable()
        }
    }
}

/// The id of the customer `reference` names, if it exists.
async fn customer_id_of(state: &AppState, reference: &CustomerRef) -> Option<Uuid> {
    let customer = state.sessions.customer(reference.clone()).await.ok()??;
    customer.can_authenticate().then_some(customer.id)
}

/// Modelled on Polar's answer for an unknown customer.
fn member_does_not_exist(reference: &MemberRef) -> Response {
    let (field, input) = match reference {
        MemberRef::Id(id) => ("member_id", Value::from(id.to_string())),
        MemberRef::ExternalId(id) => ("external_member_id", Value::from(id.as_str())),
    };
    ValidationErrors::polar(vec![FieldError {
        kind: "value_error",
        loc: json!(["body", field]),
        msg: "Member does not exist.".into(),
        input,
    }])
    .into_response()
}

/// A validated `CustomerSessionCustomerIDCreate | CustomerSessionCustomerExternalIDCreate`.
#[derive(Debug)]
struct CreateRequest {
    customer: CustomerRef,
    return_url: Option<String>,
    member: Option<MemberRef>,
}

/// Which member a member session is for.
#[derive(Debug, Clone)]
enum MemberRef {
    Id(Uuid),
    ExternalId(String),
}

impl CreateRequest {
    /// Validate the body the way Polar's schema does: the body is either of two models, so
    /// when neither fits, the errors of both are reported, each under its model's name.
    ///
    /// `member_id` (or, without it, `external_member_id`) asks for a member session.
    fn parse(body: &[u8]) -> Result<Self, ValidationErrors> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(ValidationErrors::request(vec![FieldError {
                kind: "missing",
                loc: json!(["body"]),
                msg: "Field required".into(),
                input: Value::Null,
            }]));
        }
        let value: Value = serde_json::from_slice(body).map_err(|e| json_invalid(body, &e))?;
        let Value::Object(fields) = &value else {
            return Err(ValidationErrors::request(vec![FieldError {
                kind: "model_attributes_type",
                loc: json!(["body"]),
                msg: "Input should be a valid dictionary or object to extract fields from".into(),
                input: value.clone(),
            }]));
        };

        let return_url = check_return_url(fields.get("return_url"));
        let member = member_ref(fields);
        let by_id = customer_id(fields, &value);
        let by_external_id = external_customer_id(fields, &value);

        let mut errors = Vec::new();
        for (model, customer) in [
            ("CustomerSessionCustomerIDCreate", by_id),
            ("CustomerSessionCustomerExternalIDCreate", by_external_id),
        ] {
            match (customer, &return_url, &member) {
                (Ok(customer), Ok(return_url), Ok(member)) => {
                    return Ok(Self {
                        customer,
                        return_url: return_url.clone(),
                        member: member.clone(),
                    });
                }
                (customer, return_url, member) => {
                    let failed = [
                        customer.err(),
                        return_url.clone().err(),
                        member.clone().err(),
                    ];
                    errors.extend(failed.into_iter().flatten().map(|e| e.under(model)));
                }
            }
        }
        Err(ValidationErrors::request(errors))
    }
}

fn customer_id(fields: &Map<String, Value>, body: &Value) -> Result<CustomerRef, FieldError> {
    match fields.get("customer_id") {
        None => Err(FieldError::missing("customer_id", body)),
        Some(Value::String(s)) => Uuid::parse_str(s)
            .map(CustomerRef::Id)
            .map_err(|e| FieldError {
                kind: "uuid_parsing",
                loc: json!(["customer_id"]),
                msg: format!("Input should be a valid UUID, {e}"),
                input: Value::from(s.as_str()),
            }),
        Some(other) => Err(FieldError {
            kind: "uuid_type",
            loc: json!(["customer_id"]),
            msg: "UUID input should be a string, bytes or UUID object".into(),
            input: other.clone(),
        }),
    }
}

fn external_customer_id(
    fields: &Map<String, Value>,
    body: &Value,
) -> Result<CustomerRef, FieldError> {
    // `customer_external_id` is the older name, still accepted.
    let field = fields
        .get("external_customer_id")
        .or_else(|| fields.get("customer_external_id"));
    match field {
        None => Err(FieldError::missing("external_customer_id", body)),
        Some(Value::String(s)) => Ok(CustomerRef::ExternalId(s.clone())),
        Some(other) => Err(FieldError::string_type("external_customer_id", other)),
    }
}

/// `member_id` (a UUID) or `external_member_id` (a string), both optional and nullable.
fn member_ref(fields: &Map<String, Value>) -> Result<Option<MemberRef>, FieldError> {
    match fields.get("member_id") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            return Uuid::parse_str(s)
                .map(|id| Some(MemberRef::Id(id)))
                .map_err(|e| FieldError {
                    kind: "uuid_parsing",
                    loc: json!(["member_id"]),
                    msg: format!("Input should be a valid UUID, {e}"),
                    input: Value::from(s.as_str()),
                });
        }
        Some(other) => {
            return Err(FieldError {
                kind: "uuid_type",
                loc: json!(["member_id"]),
                msg: "UUID input should be a string, bytes or UUID object".into(),
                input: other.clone(),
            });
        }
    }
    match fields.get("external_member_id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(MemberRef::ExternalId(s.clone()))),
        Some(other) => Err(FieldError::string_type("external_member_id", other)),
    }
}

/// `return_url`: optional, an absolute http(s) URL of at most 2083 characters.
fn check_return_url(value: Option<&Value>) -> Result<Option<String>, FieldError> {
    let url = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(url)) => url,
        Some(other) => return Err(FieldError::string_type("return_url", other)),
    };
    let error = |kind, msg: &str| FieldError {
        kind,
        loc: json!(["return_url"]),
        msg: msg.into(),
        input: Value::from(url.as_str()),
    };
    if url.chars().count() > MAX_URL_LEN {
        return Err(error(
            "url_too_long",
            "URL should have at most 2083 characters",
        ));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(error(
            "url_parsing",
            "Input should be a valid URL, relative URL without a base",
        ));
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(error(
            "url_scheme",
            "URL scheme should be 'http' or 'https'",
        ));
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || url.chars().any(char::is_whitespace) {
        return Err(error(
            "url_parsing",
            "Input should be a valid URL, empty host",
        ));
    }
    Ok(Some(url.clone()))
}

/// FastAPI's answer to a body that is not JSON; `loc` holds the character offset.
fn json_invalid(body: &[u8], error: &serde_json::Error) -> ValidationErrors {
    let text = String::from_utf8_lossy(body);
    let offset: usize = text
        .split_inclusive('\n')
        .take(error.line().saturating_sub(1))
        .map(|line| line.chars().count())
        .sum::<usize>()
        + error.column().saturating_sub(1);
    ValidationErrors::request(vec![FieldError {
        kind: "json_invalid",
        loc: json!(["body", offset]),
        msg: "JSON decode error".into(),
        input: json!({}),
    }])
}

// ---------------------------------------------------------------------------------------
// The customer portal (behind CustomerSessionLayer)
// ---------------------------------------------------------------------------------------

/// `GET /v1/customer-portal/customers/me`: the customer as it sees itself.
async fn get_customer(customer: Customer) -> Json<CustomerPortalCustomer> {
    Json(portal_customer(&customer))
}

/// The portal view of a customer; `oauth_accounts` stays empty: this demo links none.
pub fn portal_customer(c: &Customer) -> CustomerPortalCustomer {
    CustomerPortalCustomer {
        created_at: c.created_at,
        modified_at: c.modified_at,
        id: c.id,
        email: c.email.clone(),
        email_verified: c.email_verified,
        name: c.name.clone(),
        billing_name: c.billing_name.clone(),
        billing_address: c.billing_address.clone(),
        tax_id: c.tax_id.clone(),
        oauth_accounts: Default::default(),
        default_payment_method_id: c.default_payment_method_id,
        customer_type: Some(c.customer_type),
        locale: c.locale.clone(),
    }
}

/// `GET /v1/customer-portal/customer-session/introspect`: when the session ends.
async fn introspect_session(session: SessionInfo) -> Json<CustomerCustomerSession> {
    Json(CustomerCustomerSession {
        expires_at: session.expires_at,
        return_url: session.return_url.as_deref().map(str::to_owned),
    })
}

/// `GET /v1/customer-portal/customer-session/user`: who the session authenticates.
async fn get_authenticated_user(customer: Customer, session: SessionInfo) -> Response {
    // A member session answers with the member's name, email and role, as Polar's does.
    if let Some(member) = &session.member {
        return Json(PortalAuthenticatedUser {
            user_type: PortalUserType::Member,
            name: member.name.clone(),
            email: member.email.clone().unwrap_or_default(),
            customer_id: customer.id,
            member_id: Some(member.id),
            role: Some(member.role.clone()),
        })
        .into_response();
    }
    // A team customer may have no email; Polar wants a member session then.
    let Some(email) = customer.email.clone() else {
        return ValidationErrors::polar(vec![FieldError {
            kind: "value_error",
            loc: json!(["body"]),
            msg: "Team customers must use member sessions. \
                  Create a customer session via the API with a member_id."
                .into(),
            input: Value::Null,
        }])
        .into_response();
    };
    let user_type = match session.kind {
        TokenKind::Customer => PortalUserType::Customer,
        TokenKind::Member => PortalUserType::Member,
    };
    Json(PortalAuthenticatedUser {
        user_type,
        name: customer.name.clone(),
        email,
        customer_id: customer.id,
        member_id: None,
        role: None,
    })
    .into_response()
}

/// `PATCH /v1/customer-portal/customers/me`: change the billing name or address (a subset of
/// Polar's `CustomerPortalCustomerUpdate`; other keys are ignored). Behind
/// [`RequireRole::billing`].
async fn update_customer(
    State(state): State<AppState>,
    customer: Customer,
    body: Bytes,
) -> Response {
    let fields = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(fields)) => fields,
        Ok(other) => {
            return ValidationErrors::request(vec![FieldError {
                kind: "model_attributes_type",
                loc: json!(["body"]),
                msg: "Input should be a valid dictionary or object to extract fields from".into(),
                input: other,
            }])
            .into_response();
        }
        Err(error) => return json_invalid(&body, &error).into_response(),
    };
    let mut updated = customer.clone();
    let data = updated.make_mut();
    if let Some(name) = fields.get("billing_name") {
        match name {
            Value::Null => data.billing_name = None,
            Value::String(name) => data.billing_name = Some(name.clone()),
            other => {
                return ValidationErrors::request(vec![
                    FieldError::string_type("billing_name", other).under_body(),
                ])
                .into_response();
            }
        }
    }
    if let Some(address) = fields.get("billing_address") {
        match serde_json::from_value::<Option<Address>>(address.clone()) {
            Ok(address) => data.billing_address = address,
            Err(_) => {
                return ValidationErrors::request(vec![FieldError {
                    kind: "model_type",
                    loc: json!(["body", "billing_address"]),
                    msg: "Input should be a valid address with a country".into(),
                    input: address.clone(),
                }])
                .into_response();
            }
        }
    }
    data.modified_at = Some(truncate_to_micros(state.sessions.now()));
    match state.sessions.upsert_customer(updated).await {
        Ok(stored) => Json(portal_customer(&stored)).into_response(),
        Err(error) => {
            tracing::error!(%error, "updating a customer failed");
            service_unavailable()
        }
    }
}

// ---------------------------------------------------------------------------------------
// /v1/customers/{id} (organization token)
// ---------------------------------------------------------------------------------------

/// `GET /v1/customers/{id}`: the full customer, as the merchant's backend sees it.
async fn get_customer_by_id(State(state): State<AppState>, Path(raw): Path<String>) -> Response {
    let Ok(id) = Uuid::parse_str(&raw) else {
        return invalid_path_id(&raw);
    };
    match state.sessions.customer(id).await {
        // Deleted customers are gone for the API, as in Polar.
        Ok(Some(customer)) if customer.can_authenticate() => Json(customer).into_response(),
        Ok(_) => resource_not_found(),
        Err(error) => {
            tracing::error!(%error, "reading a customer failed");
            service_unavailable()
        }
    }
}

/// `DELETE /v1/customers/{id}`: soft-delete; the customer's sessions stop working at once.
async fn delete_customer(State(state): State<AppState>, Path(raw): Path<String>) -> Response {
    let Ok(id) = Uuid::parse_str(&raw) else {
        return invalid_path_id(&raw);
    };
    match state.sessions.customer(id).await {
        Ok(Some(customer)) if customer.can_authenticate() => {}
        Ok(_) => return resource_not_found(),
        Err(error) => {
            tracing::error!(%error, "reading a customer failed");
            return service_unavailable();
        }
    }
    match state.sessions.delete_customer(id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => resource_not_found(),
        Err(error) => {
            tracing::error!(%error, "deleting a customer failed");
            service_unavailable()
        }
    }
}

/// FastAPI's 422 for an `{id}` path parameter that is not a UUID.
fn invalid_path_id(raw: &str) -> Response {
    let reason = Uuid::parse_str(raw)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    ValidationErrors::request(vec![FieldError {
        kind: "uuid_parsing",
        loc: json!(["path", "id"]),
        msg: format!("Input should be a valid UUID, {reason}"),
        input: Value::from(raw),
    }])
    .into_response()
}

/// Polar's `ResourceNotFound`.
fn resource_not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "ResourceNotFound", "detail": "Not found"})),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------
// Middleware
// ---------------------------------------------------------------------------------------

/// Let only the merchant's backend through: `Authorization: Bearer <organization token>`.
async fn require_org_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = bearer(request.headers()) else {
        return unauthorized();
    };
    if state.org_token.matches(token) {
        return next.run(request).await;
    }
    // Polar tells a valid credential of the wrong kind (a customer session on a merchant
    // route) from one that is no credential at all.
    match state
        .sessions
        .authenticate(token, CredentialSource::Header)
        .await
    {
        Ok(_) => unauthorized(),
        Err(_) => invalid_token(),
    }
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive, value ASCII).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Polar's API versioning: answer in the requested `Polar-Version` (default `2026-04`) and
/// say so in the response; an unknown version is a 404.
async fn polar_version(request: Request, next: Next) -> Response {
    let version = match request.headers().get(&POLAR_VERSION) {
        None => DEFAULT_VERSION,
        Some(requested) => match SUPPORTED_VERSIONS.iter().find(|v| requested == **v) {
            Some(version) => version,
            None => return not_found().await,
        },
    };
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert(POLAR_VERSION, HeaderValue::from_static(version));
    response
}

// ---------------------------------------------------------------------------------------
// Polar's error responses
// ---------------------------------------------------------------------------------------

const INVALID_TOKEN_DESCRIPTION: &str =
    "The access token provided is expired, revoked, malformed, or invalid for other reasons.";

/// No credentials, or a credential of the wrong kind.
fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (CONTENT_TYPE, "application/json"),
            (WWW_AUTHENTICATE, r#"Bearer realm="polar""#),
        ],
        r#"{"error":"Unauthorized","detail":"Unauthorized"}"#,
    )
        .into_response()
}

/// A bearer value that authenticates nobody (RFC 6750 `invalid_token`).
fn invalid_token() -> Response {
    let challenge = format!(
        r#"Bearer realm="polar", error="invalid_token", error_description="{INVALID_TOKEN_DESCRIPTION}""#
    );
    let body =
        format!(r#"{{"error":"invalid_token","error_description":"{INVALID_TOKEN_DESCRIPTION}"}}"#);
    (
        StatusCode::UNAUTHORIZED,
        [
            (CONTENT_TYPE, "application/json".to_owned()),
            (CACHE_CONTROL, "no-store".to_owned()),
            (PRAGMA, "no-cache".to_owned()),
            (WWW_AUTHENTICATE, challenge),
        ],
        body,
    )
        .into_response()
}

fn service_unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(CONTENT_TYPE, "application/json")],
        r#"{"error":"ServiceUnavailable","detail":"Customer sessions cannot be created right now. Retry later."}"#,
    )
        .into_response()
}

/// Starlette's 404, which Polar also sends for an unknown `Polar-Version`.
async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"detail": "Not Found"}))).into_response()
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({"detail": "Method Not Allowed"})),
    )
        .into_response()
}

/// A 422 body: `{"error": "<exception>", "detail": [<pydantic error>…]}`.
#[derive(Debug, Serialize)]
struct ValidationErrors {
    error: &'static str,
    detail: Vec<FieldError>,
}

impl ValidationErrors {
    /// The request does not fit the schema (FastAPI's `RequestValidationError`).
    fn request(detail: Vec<FieldError>) -> Self {
        Self {
            error: "RequestValidationError",
            detail,
        }
    }

    /// The request fits the schema but Polar refuses it (`PolarRequestValidationError`).
    fn polar(detail: Vec<FieldError>) -> Self {
        Self {
            error: "PolarRequestValidationError",
            detail,
        }
    }
}

impl IntoResponse for ValidationErrors {
    fn into_response(self) -> Response {
        (StatusCode::UNPROCESSABLE_ENTITY, Json(self)).into_response()
    }
}

/// One pydantic error, keys in pydantic's order.
#[derive(Debug, Clone, Serialize)]
struct FieldError {
    #[serde(rename = "type")]
    kind: &'static str,
    loc: Value,
    msg: String,
    input: Value,
}

impl FieldError {
    fn missing(field: &str, body: &Value) -> Self {
        Self {
            kind: "missing",
            loc: json!([field]),
            msg: "Field required".into(),
            input: body.clone(),
        }
    }

    fn string_type(field: &str, input: &Value) -> Self {
        Self {
            kind: "string_type",
            loc: json!([field]),
            msg: "Input should be a valid string".into(),
            input: input.clone(),
        }
    }

    /// Prefix the field's location with `["body"]`.
    fn under_body(mut self) -> Self {
        let mut loc = vec![Value::from("body")];
        if let Value::Array(rest) = self.loc {
            loc.extend(rest);
        }
        self.loc = Value::Array(loc);
        self
    }

    /// Prefix the field's location with `["body", model]`, as pydantic reports union members.
    fn under(mut self, model: &str) -> Self {
        let mut loc = vec![Value::from("body"), Value::from(model)];
        if let Value::Array(rest) = self.loc {
            loc.extend(rest);
        }
        self.loc = Value::Array(loc);
        self
    }
}
