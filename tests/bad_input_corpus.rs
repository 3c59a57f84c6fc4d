//! Bad-input corpus: hostile `Authorization` and `Cookie` headers through the whole layer.
//!
//! Every row runs twice: in-process (`oneshot` on an axum `Router`) and over a real loopback
//! socket with the request written byte for byte, so values the `http` crate refuses to
//! build (NUL, obs-fold, CR) and stack limits (header count) are covered too. Each row
//! asserts the exact status, the `WWW-Authenticate` error code, how many times the store
//! was asked (a fresh fixture per row, so the count is exact), that requests never write to
//! the store, and that only the exact issued tokens authenticate, as their own customer.
//!
//! The rules under test (crate guide, "The request's way through the layer"):
//! a present `Authorization` header is the only credential considered; scheme matched
//! case-insensitively with `1*SP` before the token (a tab there is malformed); another
//! scheme → 401 without an error; outside `b64token`, empty, over 1024 bytes, two `Authorization` lines, two different
//! session cookies → 400 `invalid_request`; `b64token` but wrong prefix, length, alphabet or
//! checksum → 401 `invalid_token` with no store call; unknown → 401 `invalid_token`; cookie
//! names exact and case-sensitive; an empty cookie is no cookie; identical duplicates are fine.

mod common;

use axum::body::Body;
use common::fixture::{
    CHALLENGE, COOKIE, Fixture, MEMBER, UNKNOWN, VALID, challenge_error, raw_exchange, serve,
};
use http::{HeaderName, HeaderValue, Request};
use tower::ServiceExt;

/// What a row must produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// 200 for this issued token, read from the header.
    Header(&'static str),
    /// 200 for this issued token, read from the cookie.
    Cookie(&'static str),
    /// 401 with the bare challenge (no credentials or another scheme); store untouched.
    Challenge,
    /// 400 `invalid_request`; store untouched.
    BadRequest,
    /// 401 `invalid_token` decided from the token's shape; store untouched.
    BadShape,
    /// 401 `invalid_token` after one store lookup.
    Unknown,
    /// The HTTP stack answers this status before the layer runs (socket only).
    Stack(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    InProcess,
    Socket,
}

struct Case {
    name: String,
    path: String,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    expect: Expect,
    /// Where the socket outcome differs from the in-process one (the HTTP/1.1 parser trims
    /// or refuses bytes first), what it is instead.
    socket: Option<Expect>,
    /// The `http` crate cannot even build these header values; socket only.
    socket_only: bool,
}

impl Case {
    fn socket(mut self, expect: Expect) -> Self {
        self.socket = Some(expect);
        self
    }

    fn socket_only(mut self) -> Self {
        self.socket_only = true;
        self
    }

    fn at(mut self, path: String) -> Self {
        self.path = path;
        self
    }
}

fn case(name: impl Into<String>, headers: Vec<(&str, Vec<u8>)>, expect: Expect) -> Case {
    Case {
        name: name.into(),
        path: "/me".to_owned(),
        headers: headers
            .into_iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v))
            .collect(),
        expect,
        socket: None,
        socket_only: false,
    }
}

fn auth(value: impl AsRef<[u8]>) -> (&'static str, Vec<u8>) {
    ("authorization", value.as_ref().to_vec())
}

fn cookie(value: impl AsRef<[u8]>) -> (&'static str, Vec<u8>) {
    ("cookie", value.as_ref().to_vec())
}

fn bearer(token: impl AsRef<[u8]>) -> Vec<u8> {
    [b"Bearer ".as_slice(), token.as_ref()].concat()
}

fn sid(value: impl AsRef<[u8]>) -> Vec<u8> {
    [COOKIE.as_bytes(), b"=", value.as_ref()].concat()
}

/// `VALID` with the byte at `index` replaced by `with`.
fn valid_with(index: usize, with: &str) -> String {
    let mut token = VALID.to_owned();
    token.replace_range(index..index + 1, with);
    token
}

/// Token variants that keep to the `b64token` grammar but are not a valid token shape.
fn shape_variants() -> Vec<(&'static str, String)> {
    let body = &VALID["polar_cst_".len()..];
    vec![
        ("truncated by one", VALID[..52].to_owned()),
        ("truncated to the random part", VALID[..47].to_owned()),
        ("prefix only", "polar_cst_".to_owned()),
        ("extended by one", format!("{VALID}A")),
        ("doubled", format!("{VALID}{VALID}")),
        ("checksum last char changed", valid_with(52, "3")),
        ("checksum first char changed", valid_with(47, "1")),
        ("random part char changed", valid_with(20, "Q")),
        ("two chars swapped", {
            let mut t = VALID.as_bytes().to_vec();
            t.swap(30, 31);
            String::from_utf8(t).unwrap()
        }),
        ("wrong prefix polar_pat_", format!("polar_pat_{body}")),
        ("prefix upper case", format!("POLAR_CST_{body}")),
        ("whole token upper case", VALID.to_uppercase()),
        ("whole token lower case", VALID.to_lowercase()),
        ("no prefix", body.to_owned()),
        ("prefix without underscore", format!("polarcst_{body}")),
        ("prefix doubled underscore", format!("polar_cst__{body}")),
        ("leading x before prefix", format!("xpolar_cst_{body}")),
        ("dash in body", valid_with(25, "-")),
        ("dot in body", valid_with(25, ".")),
        ("underscore in body", valid_with(25, "_")),
        ("tilde in body", valid_with(25, "~")),
        ("plus in body", valid_with(25, "+")),
        ("slash in body", valid_with(25, "/")),
        ("one = padding", format!("{VALID}=")),
        ("two = padding", format!("{VALID}==")),
        ("1024 letters", "A".repeat(1024)),
        (
            "token padded to 1024",
            format!("{VALID}{}", "A".repeat(1024 - 53)),
        ),
    ]
}

/// Variants outside `b64token` (or its length bound): always `invalid_request`.
fn grammar_variants() -> Vec<(&'static str, Vec<u8>)> {
    let s = |v: String| v.into_bytes();
    vec![
        ("Cyrillic М for M", s(VALID.replacen('M', "\u{41c}", 1))),
        (
            "Cyrillic о in prefix",
            s(VALID.replacen("polar", "p\u{43e}lar", 1)),
        ),
        ("Greek Α appended", s(format!("{VALID}\u{391}"))),
        (
            "fullwidth digit ０ for 1",
            s(VALID.replacen('1', "\u{ff10}", 1)),
        ),
        ("fullwidth Ｍ for M", s(VALID.replacen('M', "\u{ff2d}", 1))),
        ("zero-width space appended", s(format!("{VALID}\u{200b}"))),
        ("soft hyphen inside", s(VALID.replacen('_', "_\u{ad}", 1))),
        (
            "Latin-1 é byte (not UTF-8)",
            [VALID.as_bytes(), &[0xe9]].concat(),
        ),
        ("0xFF byte inside", valid_bytes_with(30, &[0xff])),
        ("0x80 byte inside", valid_bytes_with(30, &[0x80])),
        ("broken UTF-8 sequence", valid_bytes_with(30, &[0xc3, 0x28])),
        (
            "percent-encoded underscore",
            s(VALID.replacen('_', "%5F", 1)),
        ),
        (
            "percent-encoded whole prefix",
            s(VALID.replacen("polar_cst_", "polar%5Fcst%5F", 1)),
        ),
        ("double quoted", s(format!("\"{VALID}\""))),
        ("single quoted", s(format!("'{VALID}'"))),
        ("padding before the end", s(format!("{VALID}=x"))),
        ("only padding", b"===".to_vec()),
        ("comma appended", s(format!("{VALID},"))),
        ("space inside", s(VALID.replacen('_', "_ ", 1))),
        ("tab inside", s(VALID.replacen('_', "_\t", 1))),
        ("backslash inside", s(VALID.replacen('_', "_\\", 1))),
        ("colon inside", s(VALID.replacen('_', "_:", 1))),
        ("1025 letters", s("A".repeat(1025))),
        ("8 KiB of letters", s("A".repeat(8 * 1024))),
        ("8 KiB of garbage", s("!*".repeat(4 * 1024))),
        ("64 KiB of letters", s("A".repeat(64 * 1024))),
        (
            "valid token then 64 KiB",
            s(format!("{VALID}{}", "A".repeat(64 * 1024))),
        ),
    ]
}

fn valid_bytes_with(index: usize, bytes: &[u8]) -> Vec<u8> {
    [
        &VALID.as_bytes()[..index],
        bytes,
        &VALID.as_bytes()[index..],
    ]
    .concat()
}

fn cases() -> Vec<Case> {
    use Expect::*;
    let mut cases = vec![
        // The exact tokens, in every accepted spelling.
        case("Bearer VALID", vec![auth(bearer(VALID))], Header(VALID)),
        case("Bearer MEMBER", vec![auth(bearer(MEMBER))], Header(MEMBER)),
        case(
            "bearer lower case",
            vec![auth(format!("bearer {VALID}"))],
            Header(VALID),
        ),
        case(
            "BEARER upper case",
            vec![auth(format!("BEARER {VALID}"))],
            Header(VALID),
        ),
        case(
            "BeArEr mixed case",
            vec![auth(format!("BeArEr {VALID}"))],
            Header(VALID),
        ),
        case(
            "two spaces",
            vec![auth(format!("Bearer  {VALID}"))],
            Header(VALID),
        ),
        case(
            "eight spaces",
            vec![auth(format!("Bearer        {VALID}"))],
            Header(VALID),
        ),
        case(
            "header name upper case on the wire",
            vec![("AUTHORIZATION", bearer(VALID))],
            Header(VALID),
        ),
        // Whitespace the HTTP/1.1 parser trims before the layer sees it.
        case(
            "leading space",
            vec![auth(format!(" Bearer {VALID}"))],
            Challenge,
        )
        .socket(Header(VALID)),
        case(
            "leading tab",
            vec![auth(format!("\tBearer {VALID}"))],
            Challenge,
        )
        .socket(Header(VALID)),
        case(
            "trailing space",
            vec![auth(format!("Bearer {VALID} "))],
            BadRequest,
        )
        .socket(Header(VALID)),
        case(
            "trailing tab",
            vec![auth(format!("Bearer {VALID}\t"))],
            BadRequest,
        )
        .socket(Header(VALID)),
        // Empty and whitespace-only credentials.
        case("empty Authorization", vec![auth("")], Challenge),
        case("single space Authorization", vec![auth(" ")], Challenge),
        case("spaces only Authorization", vec![auth("     ")], Challenge),
        case("tab only Authorization", vec![auth("\t")], Challenge),
        case("Bearer with nothing", vec![auth("Bearer")], BadRequest),
        case("Bearer and a space", vec![auth("Bearer ")], BadRequest),
        case("Bearer and spaces", vec![auth("Bearer     ")], BadRequest),
        case(
            "bearer lower case with nothing",
            vec![auth("bearer")],
            BadRequest,
        ),
        // Scheme spelling: anything but `bearer` + SP is another scheme.
        case("Basic", vec![auth("Basic dXNlcjpwYXNz")], Challenge),
        case(
            "Basic with the token",
            vec![auth(format!("Basic {VALID}"))],
            Challenge,
        ),
        case(
            "Digest",
            vec![auth("Digest username=\"x\", realm=\"polar\"")],
            Challenge,
        ),
        case(
            "Token scheme",
            vec![auth(format!("Token {VALID}"))],
            Challenge,
        ),
        case("no scheme, bare token", vec![auth(VALID)], Challenge),
        case(
            "Bearer glued to token",
            vec![auth(format!("Bearer{VALID}"))],
            Challenge,
        ),
        case(
            "Bearer-dash",
            vec![auth(format!("Bearer-{VALID}"))],
            Challenge,
        ),
        case(
            "Bearer colon",
            vec![auth(format!("Bearer: {VALID}"))],
            Challenge,
        ),
        case(
            "tab separator",
            vec![auth(format!("Bearer\t{VALID}"))],
            BadRequest,
        ),
        case(
            "space then tab separator",
            vec![auth(format!("Bearer \t{VALID}"))],
            BadRequest,
        ),
        case(
            "Basic with a tab",
            vec![auth(format!("Basic\t{VALID}"))],
            Challenge,
        ),
        case(
            "Bearerx scheme",
            vec![auth(format!("Bearerx {VALID}"))],
            Challenge,
        ),
        case(
            "Bear scheme",
            vec![auth(format!("Bear {VALID}"))],
            Challenge,
        ),
        case(
            "fullwidth Ｂearer",
            vec![auth(format!("\u{ff22}earer {VALID}"))],
            Challenge,
        ),
        case(
            "Cyrillic В in Bearer",
            vec![auth(format!("\u{412}earer {VALID}"))],
            Challenge,
        ),
        case(
            "no-break space separator",
            vec![auth(format!("Bearer\u{a0}{VALID}"))],
            Challenge,
        ),
        case(
            "Latin-1 no-break space byte",
            vec![auth([b"Bearer\xa0".as_slice(), VALID.as_bytes()].concat())],
            Challenge,
        ),
        // Extra parameters and second tokens.
        case(
            "auth-param after token",
            vec![auth(format!("Bearer {VALID}, realm=\"x\""))],
            BadRequest,
        ),
        case(
            "param without comma",
            vec![auth(format!("Bearer {VALID} realm=\"x\""))],
            BadRequest,
        ),
        case(
            "two tokens",
            vec![auth(format!("Bearer {VALID} {VALID}"))],
            BadRequest,
        ),
        case(
            "token then garbage",
            vec![auth(format!("Bearer {VALID} x"))],
            BadRequest,
        ),
        case(
            "realm before token",
            vec![auth(format!("Bearer realm=\"x\" {VALID}"))],
            BadRequest,
        ),
        case(
            "comma-joined duplicate",
            vec![auth(format!("Bearer {VALID}, Bearer {VALID}"))],
            BadRequest,
        ),
        case(
            "comma-joined without space",
            vec![auth(format!("Bearer {VALID},Bearer {VALID}"))],
            BadRequest,
        ),
        case(
            "comma-joined Basic then Bearer",
            vec![auth(format!("Basic eA==, Bearer {VALID}"))],
            Challenge,
        ),
        case(
            "leading padding only",
            vec![auth(format!("Bearer ={VALID}"))],
            BadRequest,
        ),
        case("padding only", vec![auth("Bearer =")], BadRequest),
        // Two Authorization lines are malformed whatever they hold.
        case(
            "two identical lines",
            vec![auth(bearer(VALID)), auth(bearer(VALID))],
            BadRequest,
        ),
        case(
            "valid and unknown lines",
            vec![auth(bearer(VALID)), auth(bearer(UNKNOWN))],
            BadRequest,
        ),
        case(
            "Basic then Bearer lines",
            vec![auth("Basic eA=="), auth(bearer(VALID))],
            BadRequest,
        ),
        case(
            "empty then Bearer lines",
            vec![auth(""), auth(bearer(VALID))],
            BadRequest,
        ),
        // Well-formed but never issued.
        case("unknown token", vec![auth(bearer(UNKNOWN))], Unknown),
        case(
            "valid body under the member prefix",
            vec![auth(bearer(VALID.replacen("polar_cst_", "polar_mst_", 1)))],
            Unknown,
        ),
        case(
            "member body under the customer prefix",
            vec![auth(bearer(MEMBER.replacen("polar_mst_", "polar_cst_", 1)))],
            Unknown,
        ),
        // Header precedence: a present header is the only credential, never a fallback.
        case(
            "valid header wins over garbage cookie",
            vec![auth(bearer(VALID)), cookie(sid("garbage!"))],
            Header(VALID),
        ),
        case(
            "valid header wins over other valid cookie",
            vec![auth(bearer(VALID)), cookie(sid(MEMBER))],
            Header(VALID),
        ),
        case(
            "malformed header does not fall back to valid cookie",
            vec![auth("Bearer"), cookie(sid(VALID))],
            BadRequest,
        ),
        case(
            "bad-shape header does not fall back",
            vec![auth(bearer(&VALID[..52])), cookie(sid(VALID))],
            BadShape,
        ),
        case(
            "unknown header does not fall back",
            vec![auth(bearer(UNKNOWN)), cookie(sid(VALID))],
            Unknown,
        ),
        case(
            "Basic header does not fall back",
            vec![auth("Basic dXNlcjpwYXNz"), cookie(sid(VALID))],
            Challenge,
        ),
        case(
            "empty header does not fall back",
            vec![auth(""), cookie(sid(VALID))],
            Challenge,
        ),
        // Other places a token might be smuggled in: never read.
        case("token in query access_token", vec![], Challenge)
            .at(format!("/me?access_token={VALID}")),
        case("customer_session_token in query", vec![], Challenge)
            .at(format!("/me?customer_session_token={VALID}")),
        case(
            "Proxy-Authorization",
            vec![("proxy-authorization", bearer(VALID))],
            Challenge,
        ),
        case(
            "X-Authorization",
            vec![("x-authorization", bearer(VALID))],
            Challenge,
        ),
        case(
            "X-Customer-Session-Token",
            vec![("x-customer-session-token", VALID.into())],
            Challenge,
        ),
        case(
            "X-Customer-Id",
            vec![("x-customer-id", b"anyone".to_vec())],
            Challenge,
        ),
        case(
            "x-middleware-subrequest",
            vec![("x-middleware-subrequest", b"middleware".to_vec())],
            Challenge,
        ),
        case("Cookie2 header", vec![("cookie2", sid(VALID))], Challenge),
        case(
            "Set-Cookie on a request",
            vec![("set-cookie", sid(VALID))],
            Challenge,
        ),
        case("nothing at all", vec![], Challenge),
        // Many headers: within hyper's default of 100 lines, and past it (431 on the wire).
        case(
            "90 other headers and the token",
            many_headers(90, auth(bearer(VALID))),
            Header(VALID),
        ),
        case(
            "200 other headers and the token",
            many_headers(200, auth(bearer(VALID))),
            Header(VALID),
        )
        .socket(Stack(431)),
        case(
            "120 Authorization lines",
            (0..120).map(|_| auth(bearer(VALID))).collect(),
            BadRequest,
        )
        .socket(Stack(431)),
        // Bytes the `http` crate refuses to build, sent raw.
        case(
            "NUL inside token",
            vec![auth(valid_bytes_with(30, b"\0"))],
            Stack(400),
        )
        .socket_only(),
        case(
            "DEL inside token",
            vec![auth(valid_bytes_with(30, b"\x7f"))],
            Stack(400),
        )
        .socket_only(),
        case(
            "bare CR inside token",
            vec![auth(valid_bytes_with(30, b"\r"))],
            Stack(400),
        )
        .socket_only(),
        case(
            "obs-fold before token",
            vec![auth([b"Bearer\r\n ".as_slice(), VALID.as_bytes()].concat())],
            Stack(400),
        )
        .socket_only(),
        case(
            "space before colon",
            vec![("authorization ", bearer(VALID))],
            Stack(400),
        )
        .socket_only(),
        case(
            "NUL in cookie value",
            vec![cookie(sid(valid_bytes_with(30, b"\0")))],
            Stack(400),
        )
        .socket_only(),
        // Cookies: the exact name, exactly once (or identical duplicates).
        case("cookie alone", vec![cookie(sid(VALID))], Cookie(VALID)),
        case(
            "member token cookie",
            vec![cookie(sid(MEMBER))],
            Cookie(MEMBER),
        ),
        case(
            "cookie among others",
            vec![cookie(format!("a=1; {COOKIE}={VALID}; b=2"))],
            Cookie(VALID),
        ),
        case(
            "cookie last",
            vec![cookie(format!("a=1; b=2; {COOKIE}={VALID}"))],
            Cookie(VALID),
        ),
        case(
            "cookie without spaces",
            vec![cookie(format!("a=1;{COOKIE}={VALID};b=2"))],
            Cookie(VALID),
        ),
        case(
            "trailing semicolon",
            vec![cookie(format!("{COOKIE}={VALID};"))],
            Cookie(VALID),
        ),
        case(
            "empty pairs around",
            vec![cookie(format!(";;{COOKIE}={VALID};;"))],
            Cookie(VALID),
        ),
        case(
            "spaces around =",
            vec![cookie(format!("{COOKIE} = {VALID}"))],
            Cookie(VALID),
        ),
        case(
            "tab before value",
            vec![cookie(format!("{COOKIE}=\t{VALID}"))],
            Cookie(VALID),
        ),
        case(
            "identical duplicate",
            vec![cookie(format!("{COOKIE}={VALID}; {COOKIE}={VALID}"))],
            Cookie(VALID),
        ),
        case(
            "empty duplicate after",
            vec![cookie(format!("{COOKIE}={VALID}; {COOKIE}="))],
            Cookie(VALID),
        ),
        case(
            "empty duplicate before",
            vec![cookie(format!("{COOKIE}=; {COOKIE}={VALID}"))],
            Cookie(VALID),
        ),
        case(
            "split Cookie headers",
            vec![cookie("a=1"), cookie(sid(VALID)), cookie("b=2")],
            Cookie(VALID),
        ),
        case(
            "split identical duplicates",
            vec![cookie(sid(VALID)), cookie(sid(VALID))],
            Cookie(VALID),
        ),
        case(
            "case-variant name next to the real one",
            vec![cookie(format!("__host-sid={UNKNOWN}; {COOKIE}={VALID}"))],
            Cookie(VALID),
        ),
        case(
            "__Secure- variant next to the real one",
            vec![cookie(format!("__Secure-sid={UNKNOWN}; {COOKIE}={VALID}"))],
            Cookie(VALID),
        ),
        case(
            "non-UTF-8 bytes in another cookie",
            vec![cookie([b"a=\xff\xfe; ".as_slice(), &sid(VALID)].concat())],
            Cookie(VALID),
        ),
        case(
            "token-named cookie elsewhere",
            vec![cookie(format!("{VALID}=1; {COOKIE}={VALID}"))],
            Cookie(VALID),
        ),
        case(
            "300 cookies, session in the middle",
            vec![cookie(many_cookies(300, Some(150), VALID))],
            Cookie(VALID),
        ),
        case(
            "300 cookies, session last",
            vec![cookie(many_cookies(300, Some(299), VALID))],
            Cookie(VALID),
        ),
        case(
            "300 cookies, no session",
            vec![cookie(many_cookies(300, None, VALID))],
            Challenge,
        ),
        case(
            "300 cookies then a different session value",
            vec![cookie(format!(
                "{}; {COOKIE}={UNKNOWN}",
                many_cookies(300, Some(0), VALID)
            ))],
            BadRequest,
        ),
        case(
            "120 split Cookie headers",
            (0..120)
                .map(|i| {
                    cookie(if i == 60 {
                        sid(VALID)
                    } else {
                        format!("c{i}=v").into_bytes()
                    })
                })
                .collect(),
            Cookie(VALID),
        )
        .socket(Stack(431)),
        // Names are exact and case-sensitive.
        case(
            "name lower case",
            vec![cookie(format!("__host-sid={VALID}"))],
            Challenge,
        ),
        case(
            "name upper case",
            vec![cookie(format!("__HOST-SID={VALID}"))],
            Challenge,
        ),
        case(
            "name without prefix",
            vec![cookie(format!("sid={VALID}"))],
            Challenge,
        ),
        case(
            "name with __Secure- prefix",
            vec![cookie(format!("__Secure-sid={VALID}"))],
            Challenge,
        ),
        case(
            "name with suffix",
            vec![cookie(format!("{COOKIE}2={VALID}"))],
            Challenge,
        ),
        case(
            "name with prefix char",
            vec![cookie(format!("x{COOKIE}={VALID}"))],
            Challenge,
        ),
        case(
            "percent-encoded name",
            vec![cookie(format!("__Host%2Dsid={VALID}"))],
            Challenge,
        ),
        case(
            "quoted name",
            vec![cookie(format!("\"{COOKIE}\"={VALID}"))],
            Challenge,
        ),
        case("name without value", vec![cookie(COOKIE)], Challenge),
        case("empty value", vec![cookie(sid(""))], Challenge),
        case(
            "whitespace value",
            vec![cookie(format!("{COOKIE}=   ; a=1"))],
            Challenge,
        ),
        case("empty Cookie header", vec![cookie("")], Challenge),
        case("only separators", vec![cookie(";;; ;")], Challenge),
        // Different session values: ambiguous, refused before any lookup.
        case(
            "valid then unknown",
            vec![cookie(format!("{COOKIE}={VALID}; {COOKIE}={UNKNOWN}"))],
            BadRequest,
        ),
        case(
            "unknown then valid",
            vec![cookie(format!("{COOKIE}={UNKNOWN}; {COOKIE}={VALID}"))],
            BadRequest,
        ),
        case(
            "valid then garbage",
            vec![cookie(format!("{COOKIE}={VALID}; {COOKIE}=x"))],
            BadRequest,
        ),
        case(
            "split headers with different values",
            vec![cookie(sid(VALID)), cookie(sid(UNKNOWN))],
            BadRequest,
        ),
        case(
            "split headers with customer and member tokens",
            vec![cookie(sid(VALID)), cookie(sid(MEMBER))],
            BadRequest,
        ),
        // Values the cookie grammar allows but the token grammar does not.
        case(
            "comma-joined pairs",
            vec![cookie(format!("{COOKIE}={VALID},a=1"))],
            BadRequest,
        ),
        case(
            "cookie comma-joined duplicate",
            vec![cookie(format!("{COOKIE}={VALID}, {COOKIE}={UNKNOWN}"))],
            BadRequest,
        ),
        case(
            "value with space",
            vec![cookie(format!("{COOKIE}={VALID} x"))],
            BadRequest,
        ),
        case(
            "Bearer inside the cookie",
            vec![cookie(sid(bearer(VALID)))],
            BadRequest,
        ),
        case(
            "value starting with =",
            vec![cookie(format!("{COOKIE}=={VALID}"))],
            BadRequest,
        ),
        case("quoted empty value", vec![cookie(sid("\"\""))], BadRequest),
        case("unknown cookie", vec![cookie(sid(UNKNOWN))], Unknown),
    ];
    for (name, token) in shape_variants() {
        cases.push(case(
            format!("header: {name}"),
            vec![auth(bearer(&token))],
            Expect::BadShape,
        ));
        cases.push(case(
            format!("cookie: {name}"),
            vec![cookie(sid(&token))],
            Expect::BadShape,
        ));
    }
    for (name, value) in grammar_variants() {
        let header = case(
            format!("header: {name}"),
            vec![auth(bearer(&value))],
            Expect::BadRequest,
        );
        let in_cookie = case(
            format!("cookie: {name}"),
            vec![cookie(sid(&value))],
            Expect::BadRequest,
        );
        cases.push(header);
        cases.push(in_cookie);
    }
    cases
}

fn many_headers(n: usize, credential: (&'static str, Vec<u8>)) -> Vec<(&'static str, Vec<u8>)> {
    let mut headers: Vec<_> = (0..n)
        .map(|i| ("x-filler", format!("value-{i}").into_bytes()))
        .collect();
    headers.insert(n / 2, credential);
    headers
}

fn many_cookies(n: usize, session_at: Option<usize>, token: &str) -> String {
    (0..n)
        .map(|i| {
            if Some(i) == session_at {
                format!("{COOKIE}={token}")
            } else {
                format!("c{i}=v{i}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What one exchange produced.
struct Outcome {
    status: u16,
    www_authenticate: Option<Vec<u8>>,
    body: Vec<u8>,
}

async fn in_process(fixture: &Fixture, case: &Case) -> Outcome {
    let mut request = Request::builder().uri(case.path.as_str());
    for (name, value) in &case.headers {
        let name = HeaderName::from_bytes(name).expect("table header name");
        let value = HeaderValue::from_bytes(value)
            .unwrap_or_else(|_| panic!("{}: value not buildable; mark it socket_only", case.name));
        request = request.header(name, value);
    }
    let request = request.body(Body::empty()).expect("request");
    let response = fixture.app().oneshot(request).await.expect("infallible");
    let status = response.status().as_u16();
    let www_authenticate = response
        .headers()
        .get(http::header::WWW_AUTHENTICATE)
        .map(|v| v.as_bytes().to_vec());
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body")
        .to_vec();
    Outcome {
        status,
        www_authenticate,
        body,
    }
}

async fn over_socket(fixture: &Fixture, case: &Case) -> Outcome {
    let (addr, server) = serve(fixture.app()).await;
    let mut head = format!("GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\n", case.path).into_bytes();
    for (name, value) in &case.headers {
        head.extend_from_slice(name);
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    let response = raw_exchange(addr, &head).await;
    server.abort();
    Outcome {
        status: response.status,
        www_authenticate: response.header("www-authenticate").map(<[u8]>::to_vec),
        body: response.body,
    }
}

/// Every assertion of one row; `Err` describes the first mismatch.
fn check(fixture: &Fixture, expect: Expect, outcome: &Outcome) -> Result<(), String> {
    let loads = fixture.store.loads();
    let writes = fixture.store.writes();
    let (status, error, want_loads) = match expect {
        Expect::Header(_) | Expect::Cookie(_) => (200, None, 1),
        Expect::Challenge => (401, None, 0),
        Expect::BadRequest => (400, Some("invalid_request"), 0),
        Expect::BadShape => (401, Some("invalid_token"), 0),
        Expect::Unknown => (401, Some("invalid_token"), 1),
        Expect::Stack(status) => (status, None, 0),
    };
    if outcome.status != status {
        return Err(format!("status {} != {status}", outcome.status));
    }
    if writes != 0 {
        return Err(format!("{writes} store writes for a request"));
    }
    if loads != want_loads {
        return Err(format!("{loads} store loads, expected {want_loads}"));
    }
    let challenge = outcome.www_authenticate.as_deref();
    match expect {
        Expect::Header(_) | Expect::Cookie(_) | Expect::Stack(_) => {
            if challenge.is_some() {
                return Err("unexpected WWW-Authenticate".into());
            }
        }
        Expect::Challenge => {
            if challenge != Some(CHALLENGE.as_bytes()) {
                return Err(format!(
                    "challenge {:?}",
                    challenge.map(String::from_utf8_lossy)
                ));
            }
        }
        _ => {
            let found = challenge.and_then(challenge_error);
            if found.as_deref() != error {
                return Err(format!("error code {found:?}, expected {error:?}"));
            }
        }
    }
    if let Expect::Header(token) | Expect::Cookie(token) = expect {
        let source = if matches!(expect, Expect::Header(_)) {
            "Header"
        } else {
            "Cookie"
        };
        let want = format!(
            "{} {} {source}",
            fixture.owner(token).id,
            fixture.hash_hex(token)
        );
        let body = String::from_utf8_lossy(&outcome.body);
        if !body.contains(&want) {
            return Err(format!("authenticated as {body:?}, expected {want:?}"));
        }
    }
    Ok(())
}

async fn run(transport: Transport) {
    let cases = cases();
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in &cases {
        let expect = match transport {
            Transport::InProcess if case.socket_only => continue,
            Transport::InProcess => case.expect,
            Transport::Socket => case.socket.unwrap_or(case.expect),
        };
        let fixture = Fixture::new().await;
        let outcome = match transport {
            Transport::InProcess => in_process(&fixture, case).await,
            Transport::Socket => over_socket(&fixture, case).await,
        };
        ran += 1;
        // Independent of the table: only an exact issued token may ever be accepted.
        if outcome.status == 200 && !matches!(expect, Expect::Header(_) | Expect::Cookie(_)) {
            failures.push(format!("{transport:?} {:?}: FALSE ACCEPT", case.name));
        }
        if let Err(why) = check(&fixture, expect, &outcome) {
            failures.push(format!("{transport:?} {:?}: {why}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn corpus_has_at_least_150_rows() {
    let cases = cases();
    assert!(cases.len() >= 150, "{} rows", cases.len());
    let mut names: Vec<_> = cases.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "row names must be unique");
}

#[tokio::test]
async fn corpus_in_process() {
    run(Transport::InProcess).await;
}

#[tokio::test]
async fn corpus_over_socket() {
    run(Transport::Socket).await;
}

// ---------------------------------------------------------------------------------------
// Portal hand-off: `GET /portal?customer_session_token=…` (Polar's `customer_portal_url`).
// ---------------------------------------------------------------------------------------

/// What a hand-off row must produce.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Handoff {
    /// 303 to this location, setting the session cookie to this issued token.
    Redirect(&'static str, String),
    /// The hand-off's 401 page; `loads` store lookups (0 when the shape is wrong).
    Refused { loads: usize },
    /// Not a hand-off: the page itself answers, anonymously.
    PassThrough,
    /// The HTTP stack refuses the request line first (socket only: the `http` crate
    /// cannot even build such a URI).
    Stack(u16),
}

struct HandoffCase {
    name: String,
    target: String,
    expect: Handoff,
}

fn handoff(name: impl Into<String>, query: impl AsRef<str>, expect: Handoff) -> HandoffCase {
    HandoffCase {
        name: name.into(),
        target: format!("/portal?{}", query.as_ref()),
        expect,
    }
}

fn handoff_cases() -> Vec<HandoffCase> {
    use Handoff::*;
    let refused = Refused { loads: 0 };
    let p = "customer_session_token";
    let mut cases = vec![
        handoff(
            "valid token",
            format!("{p}={VALID}"),
            Redirect(VALID, "/portal".into()),
        ),
        handoff(
            "member token",
            format!("{p}={MEMBER}"),
            Redirect(MEMBER, "/portal".into()),
        ),
        handoff(
            "valid token and email (the address is dropped)",
            format!("{p}={VALID}&email=a%40b.example"),
            Redirect(VALID, "/portal".into()),
        ),
        handoff(
            "valid token, email and another parameter",
            format!("x=1&{p}={VALID}&email=a%40b.example"),
            Redirect(VALID, "/portal?x=1".into()),
        ),
        handoff(
            "valid token between other parameters",
            format!("x=1&{p}={VALID}&y=2"),
            Redirect(VALID, "/portal?x=1&y=2".into()),
        ),
        handoff(
            "unknown token",
            format!("{p}={UNKNOWN}"),
            Refused { loads: 1 },
        ),
        handoff(
            "valid body under the member prefix",
            format!("{p}={}", VALID.replacen("polar_cst_", "polar_mst_", 1)),
            Refused { loads: 1 },
        ),
        handoff("empty value", format!("{p}="), refused.clone()),
        handoff("no value", p, refused.clone()),
        handoff(
            "repeated identical",
            format!("{p}={VALID}&{p}={VALID}"),
            refused.clone(),
        ),
        handoff(
            "repeated different",
            format!("{p}={VALID}&{p}={UNKNOWN}"),
            refused.clone(),
        ),
        handoff(
            "repeated with empty",
            format!("{p}=&{p}={VALID}"),
            refused.clone(),
        ),
        handoff(
            "percent-encoded underscores",
            format!("{p}={}", VALID.replace('_', "%5F")),
            refused.clone(),
        ),
        handoff(
            "percent-encoded space first",
            format!("{p}=%20{VALID}"),
            refused.clone(),
        ),
        handoff("plus first", format!("{p}=+{VALID}"), refused.clone()),
        handoff("quoted", format!("{p}=%22{VALID}%22"), refused.clone()),
        handoff(
            "Bearer prefix",
            format!("{p}=Bearer%20{VALID}"),
            refused.clone(),
        ),
        handoff(
            "semicolon after",
            format!("{p}={VALID};x=1"),
            refused.clone(),
        ),
        handoff(
            "8 KiB value",
            format!("{p}={}", "A".repeat(8 * 1024)),
            refused.clone(),
        ),
        handoff(
            "64 KiB value",
            format!("{p}={}", "A".repeat(64 * 1024)),
            Stack(414),
        ),
        handoff(
            "upper-case parameter name",
            format!("CUSTOMER_SESSION_TOKEN={VALID}"),
            PassThrough,
        ),
        handoff(
            "percent-encoded parameter name",
            format!("customer%5Fsession%5Ftoken={VALID}"),
            PassThrough,
        ),
        handoff(
            "parameter name with suffix",
            format!("{p}2={VALID}"),
            PassThrough,
        ),
        handoff(
            "access_token parameter",
            format!("access_token={VALID}"),
            PassThrough,
        ),
        handoff("token as parameter name", format!("{VALID}=1"), PassThrough),
    ];
    for (name, token) in shape_variants() {
        // Everything here is query-safe except the characters a URL gives meaning to.
        if token.contains(['+', '&', '=']) {
            continue;
        }
        cases.push(handoff(
            format!("shape: {name}"),
            format!("{p}={token}"),
            refused.clone(),
        ));
    }
    cases
}

async fn portal_page(customer: Option<tower_customer_session::Customer>) -> String {
    match customer {
        Some(customer) => format!("customer {}", customer.id),
        None => "anonymous".to_owned(),
    }
}

/// The portal route as the crate documents it: the portal layer on an optional check.
fn portal_app(fixture: &Fixture) -> axum::Router {
    let portal = fixture
        .layer()
        .optional()
        .portal()
        .expect("cookie configured");
    axum::Router::new().route("/portal", axum::routing::get(portal_page).layer(portal))
}

fn check_handoff(
    fixture: &Fixture,
    case: &HandoffCase,
    response: &common::fixture::RawResponse,
) -> Result<(), String> {
    let loads = fixture.store.loads();
    if fixture.store.writes() != 0 {
        return Err("the hand-off wrote to the store".into());
    }
    let set_cookie = response.header("set-cookie").map(String::from_utf8_lossy);
    let location = response.header("location").map(String::from_utf8_lossy);
    let body = String::from_utf8_lossy(&response.body);
    match &case.expect {
        Handoff::Redirect(token, to) => {
            let want_cookie = format!("{COOKIE}={token}; ");
            if response.status != 303 || loads != 1 {
                return Err(format!("status {} after {loads} loads", response.status));
            }
            if location.as_deref() != Some(to.as_str()) {
                return Err(format!("Location {location:?}, expected {to:?}"));
            }
            if !set_cookie
                .as_deref()
                .is_some_and(|c| c.starts_with(&want_cookie))
            {
                return Err(format!("Set-Cookie {set_cookie:?}"));
            }
            if response.header("referrer-policy") != Some(b"no-referrer".as_slice()) {
                return Err("no Referrer-Policy: no-referrer".into());
            }
        }
        Handoff::Refused { loads: want } => {
            if response.status != 401 || loads != *want {
                return Err(format!("status {} after {loads} loads", response.status));
            }
            if set_cookie.is_some() || location.is_some() {
                return Err("a refused hand-off set a cookie or redirected".into());
            }
        }
        Handoff::Stack(status) => {
            if response.status != *status || loads != 0 {
                return Err(format!("status {} after {loads} loads", response.status));
            }
        }
        Handoff::PassThrough => {
            if response.status != 200 || !body.ends_with("anonymous") || loads != 0 {
                return Err(format!(
                    "status {} body {body:?} loads {loads}",
                    response.status
                ));
            }
            if set_cookie.is_some() {
                return Err("a pass-through set a cookie".into());
            }
        }
    }
    if let Some(location) = &location {
        if location.contains(VALID) || location.contains(MEMBER) {
            return Err("token left in Location".into());
        }
    }
    Ok(())
}

#[tokio::test]
async fn handoff_corpus_over_socket() {
    let cases = handoff_cases();
    assert!(cases.len() >= 40, "{} hand-off rows", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let fixture = Fixture::new().await;
        let (addr, server) = serve(portal_app(&fixture)).await;
        let head = format!("GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\n", case.target);
        let response = raw_exchange(addr, head.as_bytes()).await;
        server.abort();
        if let Err(why) = check_handoff(&fixture, case, &response) {
            failures.push(format!("{:?}: {why}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "hand-off rows failed:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn handoff_corpus_in_process() {
    let mut failures = Vec::new();
    for case in &handoff_cases() {
        if matches!(case.expect, Handoff::Stack(_)) {
            continue;
        }
        let fixture = Fixture::new().await;
        let request = Request::builder()
            .uri(case.target.as_str())
            .body(Body::empty())
            .expect("request");
        let response = portal_app(&fixture)
            .oneshot(request)
            .await
            .expect("infallible");
        let raw = common::fixture::RawResponse {
            status: response.status().as_u16(),
            headers: response
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect(),
            body: axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body")
                .to_vec(),
        };
        if let Err(why) = check_handoff(&fixture, case, &raw) {
            failures.push(format!("{:?}: {why}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "hand-off rows failed:\n{}",
        failures.join("\n")
    );
}

/// A hand-off that wraps a whole router (its fallback included) must still redirect to
/// this site only: a path starting with `//` or `/\` is a protocol-relative URL to a
/// browser, so echoing it in `Location` sends the customer, fresh cookie set, off-site.
#[tokio::test]
async fn handoff_never_redirects_off_site() {
    let fixture = Fixture::new().await;
    let app = axum::Router::new()
        .route("/portal", axum::routing::get(portal_page))
        .layer(
            fixture
                .layer()
                .optional()
                .portal()
                .expect("cookie configured"),
        );
    let (addr, server) = serve(app).await;
    let mut failures = Vec::new();
    for path in [
        "//evil.example",
        "//evil.example/",
        "/\\evil.example",
        "//evil.example/portal",
        "///evil.example",
        "/\\/evil.example",
        "//\\evil.example",
    ] {
        let head =
            format!("GET {path}?customer_session_token={VALID} HTTP/1.1\r\nHost: shop.example\r\n");
        let response = raw_exchange(addr, head.as_bytes()).await;
        // The token is valid, so the hand-off does redirect; the question is where to.
        let location = response.header("location").map(String::from_utf8_lossy);
        let on_site = location.as_deref().is_some_and(|l| {
            l.starts_with('/') && !l[1..].starts_with(['/', '\\']) && !l.contains("://")
        });
        if response.status != 303 || !on_site {
            failures.push(format!(
                "{path:?} → {} Location {location:?}",
                response.status
            ));
        }
    }
    server.abort();
    assert!(
        failures.is_empty(),
        "open redirect:\n{}",
        failures.join("\n")
    );
}
