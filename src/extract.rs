//! Finding the token in a request: `Authorization: Bearer` first, then the session cookie.
//!
//! Works on header bytes, never decodes or unquotes anything, and refuses ambiguity: two
//! `Authorization` lines or two different session cookies are malformed requests. When an
//! `Authorization` header is present it is the only credential considered, valid or not.
//! A sign-out reads credentials its own way ([`sign_out_credentials`]).

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
    // What nearly every client sends, first: the general path below gives the same answer.
    if let Some(token) = value.strip_prefix(b"Bearer ") {
        if token.first() != Some(&b' ') {
            return bounded(token);
        }
    }
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
    for value in cookie_values(headers, name) {
        match found {
            None => found = Some(value),
            Some(previous) if previous == value => {}
            Some(_) => {
                return Err(Rejection::InvalidRequest(InvalidRequest::DuplicateCookie));
            }
        }
    }
    found.map(bounded).transpose()
}

/// Every non-empty value of the cookie `name`, in order, duplicates included.
fn cookie_values<'h>(headers: &'h HeaderMap, name: &[u8]) -> impl Iterator<Item = &'h [u8]> {
    headers
        .get_all(COOKIE)
        .into_iter()
        .flat_map(|line| line.as_bytes().split(|&b| b == b';'))
        .filter_map(move |pair| {
            let eq = pair.iter().position(|&b| b == b'=')?;
            // Names compare exactly and case-sensitively (RFC 6265bis §5.4).
            (trim(&pair[..eq]) == name).then(|| trim(&pair[eq + 1..]))
        })
        // An emptied cookie is how sessions are cleared; it is no credential.
        .filter(|value| !value.is_empty())
}

/// Most distinct session cookies one sign-out revokes. A browser holds one per domain and
/// path it was set for, so a few; more is no browser's doing, and each costs a store call.
pub(crate) const MAX_SIGN_OUT_COOKIES: usize = 8;

/// What a sign-out request asks to revoke.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SignOut<'h> {
    /// A Bearer header, the only credential considered (as for the layer). Empty if the
    /// header cannot hold a token (too long, or not space-separated): no session matches.
    Header(&'h [u8]),
    /// Every distinct session cookie no longer than a credential can be; maybe none.
    Cookies(Vec<&'h [u8]>),
}

/// The credentials a sign-out revokes. Unlike [`extract`], which refuses ambiguity, it
/// takes what the user means by "sign me out":
///
/// - a non-Bearer `Authorization` (a site behind HTTP Basic auth) is not ours: the session
///   cookie is the credential, and the caller must apply the CSRF guard to it;
/// - two different session cookies (set for different domains or paths) are both revoked,
///   up to [`MAX_SIGN_OUT_COOKIES`]; more is refused as `DuplicateCookie`;
/// - two `Authorization` lines are refused as for the layer: which one is meant is unknown.
pub(crate) fn sign_out_credentials<'h>(
    headers: &'h HeaderMap,
    sources: &Sources,
) -> Result<SignOut<'h>, Rejection> {
    if sources.bearer {
        let mut lines = headers.get_all(AUTHORIZATION).iter();
        if let Some(value) = lines.next() {
            if lines.next().is_some() {
                return Err(Rejection::InvalidRequest(
                    InvalidRequest::DuplicateAuthorization,
                ));
            }
            match bearer(value.as_bytes()) {
                Ok(raw) => return Ok(SignOut::Header(raw)),
                Err(Rejection::UnsupportedScheme) => {}
                Err(_) => return Ok(SignOut::Header(&[])),
            }
        }
    }
    let mut found = Vec::new();
    if let Some(name) = &sources.cookie {
        for value in cookie_values(headers, name.as_bytes()) {
            if value.len() > MAX_CREDENTIAL_LEN || found.contains(&value) {
                continue;
            }
            if found.len() == MAX_SIGN_OUT_COOKIES {
                return Err(Rejection::InvalidRequest(InvalidRequest::DuplicateCookie));
            }
            found.push(value);
        }
    }
    Ok(SignOut::Cookies(found))
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
