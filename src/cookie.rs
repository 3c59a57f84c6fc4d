//! The session cookie: its name and attributes, for reading and for `Set-Cookie`.

use std::borrow::Cow;
use std::fmt::Write as _;

use cookie::Cookie;
use http::HeaderValue;

use crate::error::ConfigError;

/// How the session cookie is named and written.
///
/// Defaults: `HttpOnly` (always), `Secure`, `SameSite=Lax`, `Path=/`, no `Domain`, and
/// therefore the `__Host-` name prefix, which browsers only accept from a secure origin for
/// a host-only cookie on `/`. `Max-Age` is set per session, never past its `expires_at`.
///
/// ```
/// use tower_customer_session::SessionCookie;
///
/// let cookie = SessionCookie::new("customer_session");
/// assert_eq!(cookie.name(), "__Host-customer_session");
///
/// // Plain-http development on localhost: no Secure, so no __Host- prefix.
/// let dev = SessionCookie::new("customer_session").secure(false);
/// assert_eq!(dev.name(), "customer_session");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct SessionCookie {
    base_name: String,
    secure: bool,
    domain: Option<String>,
    same_site: SameSite,
}

/// The cookie's `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SameSite {
    /// Sent on same-site requests and top-level cross-site navigations (the default: the
    /// hand-off link arrives from another site).
    #[default]
    Lax,
    /// Sent on same-site requests only.
    Strict,
}

impl From<&str> for SessionCookie {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

impl From<String> for SessionCookie {
    fn from(name: String) -> Self {
        Self::new(name)
    }
}

impl SessionCookie {
    /// A cookie named `name` (prefixed with `__Host-` while the defaults hold).
    ///
    /// # Panics
    ///
    /// If `name` is empty or not an RFC 6265 token (letters, digits and ``!#$%&'*+-.^_`|~``).
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        let base_name = name.strip_prefix("__Host-").unwrap_or(&name).to_owned();
        assert!(
            !base_name.is_empty()
                && base_name
                    .bytes()
                    .all(|b| { b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b) }),
            "cookie name must be a non-empty RFC 6265 token"
        );
        Self {
            base_name,
            secure: true,
            domain: None,
            same_site: SameSite::Lax,
        }
    }

    /// Send the cookie only over HTTPS. Default: `true`. Turn it off only for plain-http
    /// development on localhost; without it the `__Host-` prefix is dropped too.
    ///
    /// ```
    /// # use tower_customer_session::SessionCookie;
    /// let cookie = SessionCookie::new("sid").secure(false);
    /// assert!(!cookie.set_cookie("v", 60).to_str().unwrap().contains("Secure"));
    /// ```
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// Share the cookie with subdomains of `domain`. Default: none (host-only), which keeps
    /// the `__Host-` prefix and stops sibling subdomains from overwriting the cookie.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Domain`] unless `domain` is a host name (letters, digits, `-`, `.`):
    /// anything else could smuggle attributes into `Set-Cookie`.
    ///
    /// ```
    /// # use tower_customer_session::SessionCookie;
    /// let cookie = SessionCookie::new("sid").domain("shop.example")?;
    /// assert_eq!(cookie.name(), "sid");
    /// assert!(SessionCookie::new("sid").domain("shop.example; SameSite=None").is_err());
    /// # Ok::<(), tower_customer_session::ConfigError>(())
    /// ```
    pub fn domain(mut self, domain: impl Into<String>) -> Result<Self, ConfigError> {
        let domain = domain.into();
        let host_name = !domain.is_empty()
            && domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !host_name {
            return Err(ConfigError::Domain(domain));
        }
        self.domain = Some(domain);
        Ok(self)
    }

    /// The `SameSite` attribute. Default: [`SameSite::Lax`].
    ///
    /// ```
    /// # use tower_customer_session::{SameSite, SessionCookie};
    /// let cookie = SessionCookie::new("sid").same_site(SameSite::Strict);
    /// assert!(cookie.set_cookie("v", 60).to_str().unwrap().contains("SameSite=Strict"));
    /// ```
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// The name on the wire: `__Host-<name>` when `Secure` and host-only.
    pub fn name(&self) -> Cow<'_, str> {
        if self.secure && self.domain.is_none() {
            Cow::Owned(format!("__Host-{}", self.base_name))
        } else {
            Cow::Borrowed(&self.base_name)
        }
    }

    /// `Set-Cookie` carrying `value` for `max_age_secs` seconds.
    ///
    /// ```
    /// # use tower_customer_session::SessionCookie;
    /// let header = SessionCookie::new("sid").set_cookie("value", 3600);
    /// assert_eq!(
    ///     header,
    ///     "__Host-sid=value; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=3600"
    /// );
    /// ```
    ///
    /// If `value` holds characters not allowed in a header (tokens never do), the header
    /// clears the cookie instead.
    pub fn set_cookie(&self, value: &str, max_age_secs: i64) -> HeaderValue {
        self.header(value, max_age_secs.max(0))
            .unwrap_or_else(|| self.clear_cookie())
    }

    /// `Set-Cookie` that deletes the cookie (empty value, `Max-Age=0`, same attributes).
    ///
    /// ```
    /// # use tower_customer_session::SessionCookie;
    /// let header = SessionCookie::new("sid").clear_cookie();
    /// assert!(header.to_str().unwrap().starts_with("__Host-sid=; HttpOnly;"));
    /// assert!(header.to_str().unwrap().ends_with("; Max-Age=0"));
    /// ```
    pub fn clear_cookie(&self) -> HeaderValue {
        // The name and domain were checked when configured.
        self.header("", 0)
            .unwrap_or_else(|| HeaderValue::from_static("; Max-Age=0"))
    }

    /// The attributes as a browser sees them (no `Max-Age`), e.g. for a DBSC session's
    /// description of the cookie it manages.
    #[cfg(feature = "dbsc")]
    pub(crate) fn attributes(&self) -> String {
        let mut out = String::from("Path=/; HttpOnly");
        if self.secure {
            out.push_str("; Secure");
        }
        out.push_str(match self.same_site {
            SameSite::Lax => "; SameSite=Lax",
            SameSite::Strict => "; SameSite=Strict",
        });
        if let Some(domain) = &self.domain {
            let _ = write!(out, "; Domain={domain}");
        }
        out
    }

    /// Whether the cookie is `Secure`.
    #[cfg(feature = "dbsc")]
    pub(crate) fn is_secure(&self) -> bool {
        self.secure
    }

    fn header(&self, value: &str, max_age: i64) -> Option<HeaderValue> {
        let name = self.name();
        let mut cookie = Cookie::build((name.as_ref(), value))
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(match self.same_site {
                SameSite::Lax => cookie::SameSite::Lax,
                SameSite::Strict => cookie::SameSite::Strict,
            })
            .max_age(cookie::time::Duration::seconds(max_age));
        if let Some(domain) = &self.domain {
            cookie = cookie.domain(domain.as_str());
        }
        // Sized up front: the value is a token, and a grown buffer would leave a copy behind.
        let mut out = String::with_capacity(name.len() + value.len() + 128);
        let _ = write!(out, "{cookie}");
        let mut header = HeaderValue::try_from(out).ok()?;
        header.set_sensitive(true);
        Some(header)
    }
}
