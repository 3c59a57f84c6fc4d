//! Property tests of the layer's credential handling.
//!
//! Arbitrary `Authorization` and `Cookie` bytes (raw, and mutations of the issued tokens)
//! go through the real layer. An independent reference of the extraction rules predicts the
//! exact status; the properties are that the layer agrees, never panics, never accepts
//! anything but an exact issued token, and never asks the store about a credential whose
//! shape is wrong.

mod common;

use axum::Router;
use axum::body::Body;
use common::fixture::{COOKIE, Fixture, MEMBER, UNKNOWN, VALID, challenge_error, is_b64token};
use http::header::{AUTHORIZATION, COOKIE as COOKIE_HEADER, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, Request};
use proptest::prelude::*;
use tower::ServiceExt;
use tower_customer_session::CredentialSource;
use tower_customer_session::token::TokenFormat;

/// The longest credential the layer examines.
const MAX_LEN: usize = 1024;

/// What the rules say a request must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// 200 as the owner of this issued token.
    Accept(&'static str),
    /// 401, bare challenge.
    Challenge,
    /// 400 `invalid_request`.
    BadRequest,
    /// 401 `invalid_token`, decided from the shape alone.
    BadShape,
    /// 401 `invalid_token` after a lookup (or a negative-cache hit).
    Unknown,
}

/// Judge one credential string the way the crate guide describes it.
fn judge_token(token: &[u8]) -> Verdict {
    if token.len() > MAX_LEN || !is_b64token(token) {
        return Verdict::BadRequest;
    }
    let token = std::str::from_utf8(token).expect("b64token is ASCII");
    if TokenFormat::polar().parse(token).is_err() {
        return Verdict::BadShape;
    }
    match token {
        VALID => Verdict::Accept(VALID),
        MEMBER => Verdict::Accept(MEMBER),
        _ => Verdict::Unknown,
    }
}

/// `credentials = "Bearer" 1*SP b64token`, scheme case-insensitive, nothing else. The
/// scheme ends at the first SP or HTAB; `Bearer` followed by HTAB is a malformed Bearer
/// credential, not another scheme.
fn judge_authorization(value: &[u8]) -> Verdict {
    let split = value
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(value.len());
    if !value[..split].eq_ignore_ascii_case(b"bearer") {
        return Verdict::Challenge;
    }
    let rest = &value[split..];
    if rest.first() == Some(&b'\t') {
        return Verdict::BadRequest;
    }
    let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    judge_token(&rest[start..])
}

/// The session cookie across all `Cookie` lines: exact name, empty values ignored,
/// identical duplicates fine, different ones malformed.
fn judge_cookies(lines: &[Vec<u8>]) -> Verdict {
    let trim = |b: &[u8]| -> Vec<u8> {
        let ws = |c: &u8| *c == b' ' || *c == b'\t';
        let start = b.iter().position(|c| !ws(c)).unwrap_or(b.len());
        let end = b.iter().rposition(|c| !ws(c)).map_or(start, |i| i + 1);
        b[start..end].to_vec()
    };
    let mut found: Option<Vec<u8>> = None;
    for line in lines {
        for pair in line.split(|&b| b == b';') {
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            if trim(&pair[..eq]) != COOKIE.as_bytes() {
                continue;
            }
            let value = trim(&pair[eq + 1..]);
            if value.is_empty() {
                continue;
            }
            match &found {
                Some(previous) if *previous != value => return Verdict::BadRequest,
                _ => found = Some(value),
            }
        }
    }
    found.map_or(Verdict::Challenge, |token| judge_token(&token))
}

struct World {
    runtime: tokio::runtime::Runtime,
    fixture: Fixture,
    app: Router,
}

impl World {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let fixture = runtime.block_on(Fixture::new());
        let app = fixture.app();
        Self {
            runtime,
            fixture,
            app,
        }
    }

    /// Send the headers (those the `http` crate accepts) and check the layer's answer
    /// against `verdict`.
    fn check(
        &self,
        headers: &[(HeaderName, HeaderValue)],
        verdict: Verdict,
    ) -> Result<(), TestCaseError> {
        let mut request = Request::builder().uri("/me");
        for (name, value) in headers {
            request = request.header(name, value.clone());
        }
        let request = request.body(Body::empty()).expect("request");
        let loads_before = self.fixture.store.loads();
        let (status, challenge, body) = self.runtime.block_on(async {
            let response = self.app.clone().oneshot(request).await.expect("infallible");
            let status = response.status().as_u16();
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .map(|v| v.as_bytes().to_vec());
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body");
            (
                status,
                challenge,
                String::from_utf8_lossy(&body).into_owned(),
            )
        });
        let loads = self.fixture.store.loads() - loads_before;
        let error = challenge.as_deref().and_then(challenge_error);
        prop_assert_eq!(
            self.fixture.store.writes(),
            0,
            "a request wrote to the store"
        );
        match verdict {
            Verdict::Accept(token) => {
                prop_assert_eq!(status, 200);
                let owner = self.fixture.owner(token).id.to_string();
                prop_assert!(body.starts_with(&owner), "authenticated as {}", body);
                prop_assert!(body.contains(&self.fixture.hash_hex(token)));
            }
            Verdict::Challenge => {
                prop_assert_eq!(status, 401);
                prop_assert_eq!(error, None);
                prop_assert_eq!(loads, 0);
            }
            Verdict::BadRequest => {
                prop_assert_eq!(status, 400);
                prop_assert_eq!(error.as_deref(), Some("invalid_request"));
                prop_assert_eq!(loads, 0);
            }
            Verdict::BadShape => {
                prop_assert_eq!(status, 401);
                prop_assert_eq!(error.as_deref(), Some("invalid_token"));
                prop_assert_eq!(loads, 0);
            }
            Verdict::Unknown => {
                prop_assert_eq!(status, 401);
                prop_assert_eq!(error.as_deref(), Some("invalid_token"));
                prop_assert!(loads <= 1);
            }
        }
        Ok(())
    }
}

thread_local! {
    static WORLD: World = World::new();
}

/// One of the issued or well-formed tokens, as bytes.
fn known_token() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just(VALID), Just(MEMBER), Just(UNKNOWN)].prop_map(|t| t.as_bytes().to_vec())
}

/// A token after 1 to 3 random edits (replace, insert, delete a byte).
fn mutated_token() -> impl Strategy<Value = Vec<u8>> {
    let edit = (any::<prop::sample::Index>(), any::<u8>(), 0..3u8);
    (known_token(), prop::collection::vec(edit, 1..=3)).prop_map(|(mut token, edits)| {
        for (at, byte, kind) in edits {
            let len = token.len();
            match kind {
                0 if len > 0 => token[at.index(len)] = byte,
                1 => token.insert(at.index(len + 1), byte),
                _ if len > 0 => {
                    token.remove(at.index(len));
                }
                _ => {}
            }
        }
        token
    })
}

/// Bytes that look like a credential often enough to reach every branch.
fn credential() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => known_token(),
        4 => mutated_token(),
        2 => prop::collection::vec(any::<u8>(), 0..80),
        1 => "[A-Za-z0-9_=+/.~-]{0,1100}".prop_map(String::into_bytes),
        1 => any::<String>().prop_map(String::into_bytes),
    ]
}

/// `Authorization` values: a scheme spelling, separators, a credential, maybe a tail.
fn authorization() -> impl Strategy<Value = Vec<u8>> {
    let scheme = prop_oneof![
        4 => "[bB][eE][aA][rR][eE][rR]",
        1 => "(Basic|Token|Bearer-|Bearerx|bear|)",
        1 => any::<String>(),
    ];
    let separator = prop_oneof![5 => " {1,4}", 1 => "[ \t]{0,3}"];
    let tail = prop_oneof![6 => Just(String::new()), 1 => "[ ,=\t]{1,3}[a-z=\"]{0,6}"];
    prop_oneof![
        5 => (scheme, separator, credential(), tail).prop_map(|(s, sep, c, t)| {
            [s.as_bytes(), sep.as_bytes(), &c, t.as_bytes()].concat()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..120),
    ]
}

/// One `Cookie` pair: the session cookie or a near miss, with a value.
fn cookie_pair() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        6 => Just(COOKIE.to_owned()),
        1 => Just("__host-sid".to_owned()),
        1 => Just("sid".to_owned()),
        1 => "[a-zA-Z_-]{1,12}",
    ];
    let pad = prop_oneof![4 => Just(""), 1 => Just(" "), 1 => Just("\t")];
    (name, pad.clone(), pad, credential()).prop_map(|(name, p1, p2, value)| {
        [name.as_bytes(), p1.as_bytes(), b"=", p2.as_bytes(), &value].concat()
    })
}

/// 1 to 3 `Cookie` lines of pairs (or raw bytes), as sent.
fn cookie_lines() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let separator = prop_oneof![Just("; "), Just(";"), Just(";;")];
    let line = prop_oneof![
        6 => (prop::collection::vec(cookie_pair(), 0..5), separator)
            .prop_map(|(pairs, sep)| pairs.join(sep.as_bytes())),
        1 => prop::collection::vec(any::<u8>(), 0..100),
    ];
    prop::collection::vec(line, 1..=3)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary `Authorization` bytes: the exact status the rules give, and never an
    /// acceptance of anything but an issued token.
    #[test]
    fn authorization_bytes(value in authorization()) {
        // Values the `http` crate refuses cannot reach the layer (see the socket corpus).
        if let Ok(header) = HeaderValue::from_bytes(&value) {
            let verdict = judge_authorization(&value);
            WORLD.with(|w| w.check(&[(AUTHORIZATION, header)], verdict))?;
        }
    }

    /// Arbitrary `Cookie` lines, with the session cookie among them or not.
    #[test]
    fn cookie_bytes(lines in cookie_lines()) {
        let headers: Option<Vec<_>> = lines
            .iter()
            .map(|l| HeaderValue::from_bytes(l).ok().map(|v| (COOKIE_HEADER, v)))
            .collect();
        if let Some(headers) = headers {
            let verdict = judge_cookies(&lines);
            WORLD.with(|w| w.check(&headers, verdict))?;
        }
    }

    /// A present `Authorization` header decides alone, whatever the cookies say.
    #[test]
    fn header_wins_over_cookies(value in authorization(), lines in cookie_lines()) {
        let mut headers = Vec::new();
        if let Ok(header) = HeaderValue::from_bytes(&value) {
            headers.push((AUTHORIZATION, header));
        }
        for line in &lines {
            if let Ok(v) = HeaderValue::from_bytes(line) {
                headers.push((COOKIE_HEADER, v));
            }
        }
        let sent: Vec<Vec<u8>> = headers
            .iter()
            .filter(|(n, _)| *n == COOKIE_HEADER)
            .map(|(_, v)| v.as_bytes().to_vec())
            .collect();
        let verdict = if headers.iter().any(|(n, _)| *n == AUTHORIZATION) {
            judge_authorization(&value)
        } else {
            judge_cookies(&sent)
        };
        WORLD.with(|w| w.check(&headers, verdict))?;
    }

    /// Any string the token format refuses never reaches the store: not through the
    /// header, not through the cookie, not through `authenticate`.
    #[test]
    fn refused_shapes_never_reach_the_store(token in credential()) {
        let Ok(text) = String::from_utf8(token.clone()) else { return Ok(()) };
        prop_assume!(TokenFormat::polar().parse(&text).is_err());
        WORLD.with(|w| -> Result<(), TestCaseError> {
            // A cookie value is trimmed, so `\t<token>` is that well-formed token: have each
            // answer cached (negatively for the unknown one), so only a refused shape could
            // reach the store below.
            for known in [VALID, MEMBER, UNKNOWN] {
                let warm = w.runtime.block_on(w.fixture.sessions.authenticate(known, CredentialSource::Header));
                prop_assert_eq!(warm.is_ok(), known != UNKNOWN);
            }
            let before = w.fixture.store.loads();
            let verdict = judge_token(&token);
            prop_assert!(matches!(verdict, Verdict::BadRequest | Verdict::BadShape));
            if let Ok(value) = HeaderValue::from_bytes(&[b"Bearer ".as_slice(), &token].concat()) {
                w.check(&[(AUTHORIZATION, value)], verdict)?;
            }
            let cookie = [COOKIE.as_bytes(), b"=", &token].concat();
            if let Ok(value) = HeaderValue::from_bytes(&cookie) {
                w.check(&[(COOKIE_HEADER, value)], judge_cookies(&[cookie]))?;
            }
            let direct = w
                .runtime
                .block_on(w.fixture.sessions.authenticate(&text, CredentialSource::Header));
            prop_assert!(direct.is_err());
            prop_assert_eq!(w.fixture.store.loads(), before, "the store saw a refused shape");
            Ok(())
        })?;
    }

    /// Every spelling of the scheme and any run of spaces authenticate the same token.
    #[test]
    fn scheme_case_and_spacing(scheme in "[bB][eE][aA][rR][eE][rR]", spaces in 1usize..=8) {
        let value = format!("{scheme}{}{VALID}", " ".repeat(spaces));
        let header = HeaderValue::from_str(&value).expect("ASCII");
        WORLD.with(|w| w.check(&[(AUTHORIZATION, header)], Verdict::Accept(VALID)))?;
    }

    /// Order of the other cookies and how the pairs are split over `Cookie` lines never
    /// change the result.
    #[test]
    fn cookie_order_and_splitting(
        others in prop::collection::vec("[a-z]{1,6}=[A-Za-z0-9]{0,8}", 0..20),
        at in any::<prop::sample::Index>(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let mut pairs = others;
        pairs.insert(at.index(pairs.len() + 1), format!("{COOKIE}={VALID}"));
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(pairs.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut headers = Vec::new();
        let mut start = 0;
        for end in cuts.into_iter().chain([pairs.len()]) {
            if end > start {
                let line = pairs[start..end].join("; ");
                headers.push((COOKIE_HEADER, HeaderValue::from_str(&line).expect("ASCII")));
                start = end;
            }
        }
        WORLD.with(|w| w.check(&headers, Verdict::Accept(VALID)))?;
    }

    /// Two different non-empty values for the session cookie are always malformed, in
    /// whichever order and however split.
    #[test]
    fn different_duplicates_are_malformed(other in credential(), first in any::<bool>(), split in any::<bool>()) {
        let other = String::from_utf8_lossy(&other).replace([';', '\r', '\n', '\0'], "");
        let trimmed = other.trim_matches([' ', '\t']);
        prop_assume!(!trimmed.is_empty() && trimmed != VALID);
        let (a, b) = if first { (VALID, other.as_str()) } else { (other.as_str(), VALID) };
        let pairs = [format!("{COOKIE}={a}"), format!("{COOKIE}={b}")];
        let lines: Vec<Vec<u8>> = if split {
            pairs.iter().map(|p| p.clone().into_bytes()).collect()
        } else {
            vec![pairs.join("; ").into_bytes()]
        };
        let headers: Option<Vec<_>> = lines
            .iter()
            .map(|l| HeaderValue::from_bytes(l).ok().map(|v| (COOKIE_HEADER, v)))
            .collect();
        if let Some(headers) = headers {
            prop_assert_eq!(judge_cookies(&lines), Verdict::BadRequest);
            WORLD.with(|w| w.check(&headers, Verdict::BadRequest))?;
        }
    }

    /// A cookie name that differs from the configured one only in case is never read.
    #[test]
    fn cookie_names_are_case_sensitive(flips in prop::collection::vec(any::<bool>(), COOKIE.len())) {
        let name: String = COOKIE
            .chars()
            .zip(&flips)
            .map(|(c, &flip)| if flip { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
            .collect();
        prop_assume!(name != COOKIE);
        let header = HeaderValue::from_str(&format!("{name}={VALID}")).expect("ASCII");
        WORLD.with(|w| w.check(&[(COOKIE_HEADER, header)], Verdict::Challenge))?;
    }
}

/// The reference and the layer agree on the rows the RFC and the crate guide spell out, so
/// the properties above are checked against the right rules.
#[test]
fn reference_rules_match_the_documented_examples() {
    assert_eq!(
        judge_authorization(format!("bEaReR   {VALID}").as_bytes()),
        Verdict::Accept(VALID)
    );
    assert_eq!(judge_authorization(b"Basic eA=="), Verdict::Challenge);
    assert_eq!(
        judge_authorization(format!("Bearer\t{VALID}").as_bytes()),
        Verdict::BadRequest
    );
    assert_eq!(
        judge_authorization(format!("Basic\t{VALID}").as_bytes()),
        Verdict::Challenge
    );
    assert_eq!(judge_authorization(b"Bearer"), Verdict::BadRequest);
    assert_eq!(
        judge_authorization(b"Bearer mF_9.B5f-4.1JqM"),
        Verdict::BadShape
    );
    assert_eq!(
        judge_authorization(format!("Bearer {UNKNOWN}").as_bytes()),
        Verdict::Unknown
    );
    let twice = format!("{COOKIE}={VALID}; {COOKIE}={VALID}").into_bytes();
    assert_eq!(judge_cookies(&[twice]), Verdict::Accept(VALID));
    let differ = format!("{COOKIE}={VALID}; {COOKIE}={UNKNOWN}").into_bytes();
    assert_eq!(judge_cookies(&[differ]), Verdict::BadRequest);
    assert_eq!(
        judge_cookies(&[format!("{COOKIE}=").into_bytes()]),
        Verdict::Challenge
    );
}
