//! The browser portal: the page Polar's `customer_portal_url` opens, and signing out.
//!
//! | route | credential | answer |
//! |---|---|---|
//! | `GET /portal?customer_session_token=…` | the token in the link | `303` to `/portal` (token removed) + session cookie |
//! | `GET /portal` | session cookie | the customer's page, or `401` "sign-in link required" |
//! | `POST /portal/logout` | session cookie, same-origin | session revoked, cookie cleared, `303` to `/portal` |
//!
//! The crate does the security work: the hand-off ([`CustomerSessionLayer::handoff`]) swaps
//! the token in the URL for an `HttpOnly` cookie, the layer marks cookie-authenticated responses
//! private and refuses cross-site unsafe requests. This module only renders pages, escaping
//! every customer-supplied value, and sends them with a strict Content-Security-Policy.

use std::convert::Infallible;
use std::fmt::Write as _;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_TYPE, LOCATION, REFERRER_POLICY, SET_COOKIE, WWW_AUTHENTICATE,
};
use axum::http::{HeaderName, HeaderValue, StatusCode, request::Parts};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use tower_customer_session::store::DynStore;
use tower_customer_session::{
    Customer, CustomerSessionLayer, Rejection, SessionCookie, SessionInfo, SessionManager,
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

#[derive(Clone)]
struct Portal {
    sessions: SessionManager<DynStore>,
    cookie: SessionCookie,
}

/// The portal's routes, to merge next to the API.
pub fn router(sessions: SessionManager<DynStore>, cookie: SessionCookie) -> Router {
    let auth = CustomerSessionLayer::new(sessions.clone()).cookie(cookie.clone());
    // Layers run outermost first: the hand-off answers token links itself; anything else
    // reaches the session check, which lets anonymous visitors through to the page.
    // (The error type between the two layers cannot be inferred; it is axum's `Infallible`.)
    let page = get(portal_page)
        .layer::<_, Infallible>(auth.clone().optional().on_rejection(html_rejection))
        .layer(auth.handoff());
    let logout = post(logout).layer(auth.on_rejection(html_rejection));
    Router::new()
        .route("/portal", page)
        .route("/portal/logout", logout)
        .layer(middleware::map_response(page_headers))
        .with_state(Portal { sessions, cookie })
}

/// `GET /portal` after the hand-off: who the session cookie belongs to.
async fn portal_page(customer: Option<Customer>, session: Option<SessionInfo>) -> Response {
    match (customer, session) {
        (Some(customer), Some(session)) => {
            Html(render_account(&customer, &session)).into_response()
        }
        _ => {
            let mut response = html_page(StatusCode::UNAUTHORIZED, SIGN_IN_PAGE);
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

/// `POST /portal/logout`: end the session everywhere, not only in this browser.
async fn logout(State(portal): State<Portal>, session: SessionInfo) -> Response {
    if let Err(error) = portal.sessions.revoke_hash(&session.token_hash).await {
        tracing::error!(%error, "revoking a customer session failed");
        // The session still works, so the browser keeps its cookie.
        return html_page(StatusCode::SERVICE_UNAVAILABLE, TRY_AGAIN_PAGE);
    }
    (
        StatusCode::SEE_OTHER,
        [
            (SET_COOKIE, portal.cookie.clear_cookie()),
            (LOCATION, HeaderValue::from_static("/portal")),
        ],
    )
        .into_response()
}

/// The layer's rejections as pages instead of Polar's JSON, keeping status and headers
/// (the challenge, `no-store`, the `Set-Cookie` that clears a dead cookie).
fn html_rejection(rejection: &Rejection, _request: &Parts, response: &mut Response<Bytes>) {
    let page = match rejection.status() {
        StatusCode::FORBIDDEN => REFUSED_PAGE,
        StatusCode::SERVICE_UNAVAILABLE => TRY_AGAIN_PAGE,
        _ => SIGN_IN_PAGE,
    };
    *response.body_mut() = Bytes::from_static(page.as_bytes());
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
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

fn html_page(status: StatusCode, page: &'static str) -> Response {
    (status, Html(page)).into_response()
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

fn render_account(customer: &Customer, session: &SessionInfo) -> String {
    let name = customer.name.as_deref().unwrap_or("Customer");
    let mut page = String::with_capacity(4096);
    page.push_str("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">");
    page.push_str("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">");
    let _ = write!(
        page,
        "<title>{} · Customer portal</title>",
        escape_html(name)
    );
    page.push_str(style!());
    page.push_str("</head><body><main>");
    let _ = write!(page, "<h1>{}</h1>", escape_html(name));
    if let Some(email) = &customer.email {
        let _ = write!(page, "<p class=\"muted\">{}</p>", escape_html(email));
    }

    page.push_str("<h2>Account</h2><dl>");
    row(&mut page, "Name", customer.name.as_deref());
    row(&mut page, "Email", customer.email.as_deref());
    row(&mut page, "Billing name", customer.billing_name.as_deref());
    if let Some(address) = &customer.billing_address {
        let town = [address.postal_code.as_deref(), address.city.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        let lines = [
            address.line1.as_deref(),
            address.line2.as_deref(),
            Some(town.as_str()).filter(|town| !town.is_empty()),
            address.state.as_deref(),
            Some(address.country.as_str()),
        ];
        let lines: Vec<String> = lines.into_iter().flatten().map(escape_html).collect();
        let _ = write!(
            page,
            "<dt>Billing address</dt><dd>{}</dd>",
            lines.join("<br>")
        );
    }
    page.push_str("</dl>");

    if !customer.metadata.is_empty() {
        page.push_str("<h2>Details</h2><table><tbody>");
        for (key, value) in &customer.metadata {
            let _ = write!(
                page,
                "<tr><th>{}</th><td>{}</td></tr>",
                escape_html(key),
                escape_html(&value.to_string())
            );
        }
        page.push_str("</tbody></table>");
    }

    let _ = write!(
        page,
        "<p class=\"muted\">This session ends {} UTC.</p>",
        session.expires_at.format("%Y-%m-%d %H:%M")
    );
    // Only web addresses become links: a `javascript:` URL would run on click.
    if let Some(url) = session.return_url.as_deref().filter(|url| is_web_url(url)) {
        let _ = write!(
            page,
            "<p><a href=\"{}\" rel=\"noreferrer\">Back to the shop</a></p>",
            escape_html(url)
        );
    }
    page.push_str(
        "<form method=\"post\" action=\"/portal/logout\"><button type=\"submit\">Sign out</button></form>",
    );
    page.push_str("</main></body></html>");
    page
}

fn row(page: &mut String, label: &str, value: Option<&str>) {
    if let Some(value) = value {
        let _ = write!(page, "<dt>{label}</dt><dd>{}</dd>", escape_html(value));
    }
}

fn is_web_url(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// Text for HTML element content and quoted attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
