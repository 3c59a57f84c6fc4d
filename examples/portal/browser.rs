//! The browser portal: the page Polar's `customer_portal_url` opens, and signing out.
//!
//! | route | credential | answer |
//! |---|---|---|
//! | `GET /portal?customer_session_token=…` | the token in the link | `303` to `/portal` (token and email removed) + session cookie |
//! | `GET /portal` | session cookie | the customer's page, or `401` "sign-in link required" |
//! | `POST /portal/logout` | session cookie, same-origin | session revoked, cookie cleared, `303` to `/portal` |
//! | `POST /portal/dbsc` (`PORTAL_DBSC=true`, feature `dbsc`) | the session cookie and a signed proof | DBSC registration and refresh: a short-lived cookie bound to the browser's key |
//!
//! The crate does the security work: its portal layer ([`CustomerSessionLayer::portal`])
//! swaps the token in the URL for an `HttpOnly` cookie, the session layer marks
//! cookie-authenticated responses private and refuses cross-site unsafe requests, and its
//! logout ([`CustomerSessionLayer::logout`]) revokes the session and reports a failure.
//! This module only renders pages (maud escapes every customer-supplied value) and sends
//! them with a strict Content-Security-Policy.

use axum::Router;
use axum::http::header::{CACHE_CONTROL, REFERRER_POLICY, WWW_AUTHENTICATE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post_service};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use tower_customer_session::reject::BrowserRejection;
use tower_customer_session::{
    Customer, CustomerSessionLayer, DynStore, SessionCookie, SessionInfo, SessionManager,
};

/// The session cookie's name before the `__Host-` prefix.
pub const COOKIE_NAME: &str = "customer_session";

/// No scripts, images, frames or foreign form targets: only the inline stylesheet.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The portal's session cookie; `secure: false` only for plain-http development.
pub fn session_cookie(secure: bool) -> SessionCookie {
    SessionCookie::new(COOKIE_NAME).secure(secure)
}

/// Where the DBSC endpoint is mounted (registration and refresh).
#[cfg_attr(not(feature = "dbsc"), allow(dead_code))]
pub const DBSC_PATH: &str = "/portal/dbsc";

/// Device Bound Session Credentials settings (feature `dbsc`); without the feature there
/// are none to give.
#[cfg(feature = "dbsc")]
pub type DeviceBound = tower_customer_session::portal::dbsc::DeviceBound;
/// Device Bound Session Credentials need feature `dbsc`.
#[cfg(not(feature = "dbsc"))]
pub enum DeviceBound {}

/// The portal's routes, to merge next to the API.
pub fn router(sessions: SessionManager<DynStore>, cookie: SessionCookie) -> Router {
    router_with_dbsc(sessions, cookie, None).expect("no DBSC settings to refuse")
}

/// [`router`], with Device Bound Session Credentials when `dbsc` is given: the page offers
/// registration, [`DBSC_PATH`] registers and refreshes, every cookie route accepts the bound
/// credential.
///
/// # Errors
///
/// If the settings do not fit the cookie (DBSC needs a `Secure` one).
pub fn router_with_dbsc(
    sessions: SessionManager<DynStore>,
    cookie: SessionCookie,
    dbsc: Option<DeviceBound>,
) -> Result<Router, tower_customer_session::ConfigError> {
    // The browser gets this module's pages instead of Polar's JSON when the layer refuses it
    // (API clients on the same routes still get JSON).
    let pages = BrowserRejection::pages()
        .sign_in_page(SIGN_IN_PAGE)
        .refused_page(REFUSED_PAGE)
        .unavailable_page(TRY_AGAIN_PAGE);
    let auth = CustomerSessionLayer::new(sessions).cookie(cookie);
    #[cfg(feature = "dbsc")]
    let (auth, endpoint) = match dbsc {
        Some(settings) => {
            let auth = auth.device_bound(settings)?;
            let endpoint = auth.device_bound_endpoint()?;
            (auth, Some(endpoint))
        }
        None => (auth, None),
    };
    #[cfg(not(feature = "dbsc"))]
    let _ = dbsc;
    let auth = auth.on_rejection(pages);
    // Both are fixed settings (a cookie is configured, the location is a local path), so
    // neither can fail here.
    let portal = auth
        .clone()
        .optional()
        .portal()
        .expect("a cookie is configured");
    let logout = auth.logout("/portal").expect("a path on this site");
    let router = Router::new()
        .route("/portal", get(portal_page).layer(portal))
        .route("/portal/logout", post_service(logout));
    #[cfg(feature = "dbsc")]
    let router = match endpoint {
        Some(endpoint) => router.route(DBSC_PATH, post_service(endpoint)),
        None => router,
    };
    Ok(router.layer(middleware::map_response(page_headers)))
}

/// `GET /portal` after the hand-off: who the session cookie belongs to.
async fn portal_page(customer: Option<Customer>, session: Option<SessionInfo>) -> Response {
    match (customer, session) {
        (Some(customer), Some(session)) => {
            Html(render_account(&customer, &session).into_string()).into_response()
        }
        _ => {
            let mut response = (StatusCode::UNAUTHORIZED, Html(SIGN_IN_PAGE)).into_response();
            let headers = response.headers_mut();
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="polar""#),
            );
            response
        }
    }
}

/// Headers every portal response carries, the hand-off's included.
async fn page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    response
}

// ---------------------------------------------------------------------------------------
// Pages
// ---------------------------------------------------------------------------------------

/// The one stylesheet, inline (the CSP allows no other source).
macro_rules! style {
    () => {
        "<style>\
body{font:16px/1.5 system-ui,sans-serif;color:#1d2330;background:#f4f5f7;margin:0}\
main{max-width:40rem;margin:3rem auto;padding:2rem 2.5rem;background:#fff;border-radius:12px;\
box-shadow:0 1px 3px rgba(0,0,0,.12)}\
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.05rem;margin:1.75rem 0 .5rem}\
.muted{color:#5d6575}dl{display:grid;grid-template-columns:9rem 1fr;gap:.35rem 1rem;margin:0}\
dt{color:#5d6575}dd{margin:0;overflow-wrap:anywhere}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem 1rem .3rem 0;\
border-bottom:1px solid #e3e5ea;overflow-wrap:anywhere}th{width:9rem;color:#5d6575;font-weight:400}\
form{margin-top:2rem}button{font:inherit;padding:.5rem 1.1rem;border:0;border-radius:6px;\
background:#1d2330;color:#fff;cursor:pointer}a{color:#2454d6}\
</style>"
    };
}

/// A fixed page: title, heading and one paragraph.
macro_rules! static_page {
    ($title:literal, $text:literal) => {
        concat!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">",
            "<title>",
            $title,
            "</title>",
            style!(),
            "</head><body><main>",
            "<h1>",
            $title,
            "</h1><p>",
            $text,
            "</p></main></body></html>"
        )
    };
}

const SIGN_IN_PAGE: &str = static_page!(
    "Sign-in link required",
    "To see your account, open the customer portal from the link the shop gives you. \
     Sign-in links expire; if yours has, ask the shop for a new one."
);

const REFUSED_PAGE: &str = static_page!(
    "Request refused",
    "This request did not come from the portal page. Go back to the portal and try again."
);

const TRY_AGAIN_PAGE: &str = static_page!(
    "Try again shortly",
    "Your session cannot be checked right now. Please reload this page in a moment."
);

fn render_account(customer: &Customer, session: &SessionInfo) -> Markup {
    let name = customer.name.as_deref().unwrap_or("Customer");
    let address = customer.billing_address.as_ref().map(|address| {
        let town = [address.postal_code.as_deref(), address.city.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        [
            address.line1.clone(),
            address.line2.clone(),
            Some(town).filter(|town| !town.is_empty()),
            address.state.clone(),
            Some(address.country.clone()),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
    });
    // Only web addresses become links: a `javascript:` URL would run on click.
    let return_url = session.return_url.as_deref().filter(|url| is_web_url(url));
    let rows = [
        ("Name", customer.name.as_deref()),
        ("Email", customer.email.as_deref()),
        ("Billing name", customer.billing_name.as_deref()),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { (name) " · Customer portal" }
                (PreEscaped(style!()))
            }
            body { main {
                h1 { (name) }
                @if let Some(email) = &customer.email { p.muted { (email) } }
                h2 { "Account" }
                dl {
                    @for (label, value) in rows {
                        @if let Some(value) = value { dt { (label) } dd { (value) } }
                    }
                    @if let Some(lines) = &address {
                        dt { "Billing address" }
                        dd {
                            @for (i, line) in lines.iter().enumerate() {
                                @if i > 0 { br; }
                                (line)
                            }
                        }
                    }
                }
                @if !customer.metadata.is_empty() {
                    h2 { "Details" }
                    table { tbody {
                        @for (key, value) in &customer.metadata {
                            tr { th { (key) } td { (value.to_string()) } }
                        }
                    } }
                }
                p.muted { "This session ends " (session.expires_at.format("%Y-%m-%d %H:%M")) " UTC." }
                @if let Some(url) = return_url {
                    p { a href=(url) rel="noreferrer" { "Back to the shop" } }
                }
                form method="post" action="/portal/logout" {
                    button type="submit" { "Sign out" }
                }
            } }
        }
    }
}

fn is_web_url(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}
