//! [`ConfigError`]: a setting that cannot work, refused when it is made.

/// Why a configuration value was refused.
///
/// Builders that take free-form text (an origin, a realm, a path, a cookie domain) check it
/// when it is set, so a typo fails at start-up with a message instead of at the first request.
///
/// ```
/// use tower_customer_session::{ConfigError, CustomerSessionLayer, SessionManager, MemoryStore};
///
/// let sessions = SessionManager::builder(MemoryStore::new()).build().unwrap();
/// let refused = CustomerSessionLayer::new(sessions).realm("say \"hi\"").unwrap_err();
/// assert!(matches!(refused, ConfigError::Realm(_)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An `Origin` must be a valid header value, like `https://shop.example`.
    #[error("invalid origin {0:?}: not a valid header value")]
    Origin(String),
    /// A realm must be printable ASCII without `"` or `\` (RFC 6750 §3).
    #[error("invalid realm {0:?}: printable ASCII without '\"' or '\\' required")]
    Realm(String),
    /// A redirect target or base path must be a path on this site: it starts with one `/`
    /// (not `//` or `/\`) and is a valid header value.
    #[error("invalid path {0:?}: a path starting with a single '/' required")]
    Path(String),
    /// A cookie domain must be a host name: letters, digits, `-` and `.`.
    #[error("invalid cookie domain {0:?}")]
    Domain(String),
    /// The browser pieces write the session cookie, so the layer must read one.
    #[error("no session cookie configured: call .cookie(…) on the layer first")]
    NoCookie,
    /// Device Bound Session Credentials are misconfigured: the reason says how.
    #[cfg(feature = "dbsc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dbsc")))]
    #[error("device bound sessions: {0}")]
    DeviceBound(&'static str),
}

/// Whether `path` is a path on this site that is safe in a `Location` header.
pub(crate) fn is_local_path(path: &str) -> bool {
    let mut bytes = path.bytes();
    bytes.next() == Some(b'/')
        && !matches!(bytes.next(), Some(b'/' | b'\\'))
        && http::HeaderValue::from_str(path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::is_local_path;

    #[test]
    fn local_paths() {
        for ok in ["/", "/portal", "/a/b?x=1", "/shop/"] {
            assert!(is_local_path(ok), "{ok}");
        }
        for bad in [
            "",
            "portal",
            "//evil.example",
            "/\\evil.example",
            "/a\nb",
            "https://x",
        ] {
            assert!(!is_local_path(bad), "{bad}");
        }
    }
}
