//! Finding the token in a request: `Authorization: Bearer` first, then the session cookie.
//!
//! Works on header bytes, never decodes or unquotes anything, and refuses ambiguity: two
//! `Authorization` lines or two different session cookies are malformed requests. When an
//! `Authorization` header is present it is the only credential considered, valid or not.

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};

use crate::extension::CredentialSource;
use crate::reject::{InvalidRequest, InvalidToken, Rejection};
use crate::token::is_b64token;

/// Longest credential examined; anything longer is refused before it is scanned or hashed.
pub(crate) const MAX_CREDENTIAL_LEN: usize = 1024;

/// Where to look for a token.
#[derive(Debug, Clone)]
pub(crate) struct Sources {
    pub(crate) bearer: bool,
    pub(crate) cookie: Option<Box<str>>,
}

/// A presented credential: raw header bytes, at most [`MAX_CREDENTIAL_LEN`] long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Credential<'h> {
    pub(crate) raw: &'h [u8],
    pub(crate) source: CredentialSource,
}

impl Credential<'_> {
    /// Why a credential whose token shape is wrong is refused. The `b64token` grammar is
    /// checked only here, off the hot path: a token that parses is inside it anyway.
    /// Outside the grammar the request is malformed (400); inside, the token is invalid (401).
    pub(crate) fn refusal(&self) -> Rejection {
        if is_b64token(self.raw) {
            Rejection::InvalidToken(InvalidToken::Malformed)
        } else {
            Rejection::InvalidRequest(match self.source {
                CredentialSource::Header => InvalidRequest::MalformedBearer,
                CredentialSource::Cookie => InvalidRequest::MalformedCookie,
            })
        }
    }
}

/// The credential of `headers`: `Ok(None)` if there is none, `Err(UnsupportedScheme)` for a
/// non-Bearer `Authorization`, other `Err`s for malformed requests.
pub(crate) fn extract<'h>(
    headers: &'h HeaderMap,
    sources: &Sources,
) -> Result<Option<Credential<'h>>, Rejection> {
    if sources.bearer {
        let mut lines = headers.get_all(AUTHORIZATION).iter();
        if let Some(value) = lines.next() {
            if lines.next().is_some() {
                return Err(Rejection::InvalidRequest(
                    InvalidRequest::DuplicateAuthorization,
                ));
            }
            return bearer(value.as_bytes()).map(|raw| {
                Some(Credential {
                    raw,
                    source: CredentialSource::Header,
                })
            });
        }
    }
    match &sources.cookie {
        Some(name) => Ok(cookie(headers, name.as_bytes())?.map(|raw| Credential {
            raw,
            source: CredentialSource::Cookie,
        })),
        None => Ok(None),
    }
}

/// `credentials = "Bearer" 1*SP b64token`, scheme matched case-insensitively.
fn bearer(value: &[u8]) -> Result<&[u8], Rejection> {
    let split = value
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(value.len());
    let (scheme, rest) = value.split_at(split);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(Rejection::UnsupportedScheme);
    }
    if rest.first() == Some(&b'\t') {
        // Only SP may separate scheme and token: a tab is a malformed Bearer credential.
        return Err(Rejection::InvalidRequest(InvalidRequest::MalformedBearer));
    }
    let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    bounded(&rest[start..])
}

/// The session cookie's value across every `Cookie` line (HTTP/2 may split them).
fn cookie<'h>(headers: &'h HeaderMap, name: &[u8]) -> Result<Option<&'h [u8]>, Rejection> {
    let mut found: Option<&'h [u8]> = None;
    for line in headers.get_all(COOKIE) {
        for pair in line.as_bytes().split(|&b| b == b';') {
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            // Names compare exactly and case-sensitively (RFC 6265bis §5.4).
            if trim(&pair[..eq]) != name {
                continue;
            }
            let value = trim(&pair[eq + 1..]);
            if value.is_empty() {
                // An emptied cookie is how sessions are cleared; it is no credential.
                continue;
            }
            match found {
                None => found = Some(value),
                Some(previous) if previous == value => {}
                Some(_) => {
                    return Err(Rejection::InvalidRequest(InvalidRequest::DuplicateCookie));
                }
            }
        }
    }
    found.map(bounded).transpose()
}

/// Refuse anything longer than a token could be before it is scanned or hashed.
fn bounded(token: &[u8]) -> Result<&[u8], Rejection> {
    if token.len() > MAX_CREDENTIAL_LEN {
        return Err(Rejection::InvalidRequest(InvalidRequest::TooLong));
    }
    Ok(token)
}

fn trim(bytes: &[u8]) -> &[u8] {
    let is_ws = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ws(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ws(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests;
