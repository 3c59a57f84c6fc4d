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
//!
//! The rows, the portal hand-off's included, are written in
//! `tests/fixtures/bad_input_corpus.txt` (its format is at its top), so a row can be read and
//! added without Rust; rows too long or too repetitive to write out are generated here.

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

/// The written rows; the format is described at the top of the file.
const TABLE: &str = include_str!("fixtures/bad_input_corpus.txt");

/// What the data file holds: rows, and token variants that each make two rows.
#[derive(Default)]
struct Table {
    rows: Vec<Case>,
    /// Within `b64token`, not a token's shape: `bad-shape` as a header and as a cookie.
    shapes: Vec<(String, Vec<u8>)>,
    /// Outside `b64token`: `bad-request` as a header and as a cookie.
    grammar: Vec<(String, Vec<u8>)>,
    /// Portal hand-off rows.
    handoffs: Vec<HandoffCase>,
}

#[derive(Clone, Copy)]
enum Section {
    Rows,
    Shapes,
    Grammar,
    Handoff,
}

/// The data file's rows, or the first line that does not parse, with its number.
fn parse(text: &str) -> Result<Table, String> {
    let mut table = Table::default();
    let mut section = None;
    for (index, line) in text.split('\n').enumerate() {
        parse_line(&mut table, &mut section, line).map_err(|why| {
            format!(
                "tests/fixtures/bad_input_corpus.txt:{}: {why}\n  {line:?}",
                index + 1
            )
        })?;
    }
    Ok(table)
}

fn parse_line(table: &mut Table, section: &mut Option<Section>, line: &str) -> Result<(), String> {
    if line.chars().any(|c| c.is_control()) {
        return Err("a tab or control character (write it as an escape)".into());
    }
    if line.ends_with(' ') {
        return Err("trailing space (write a space that belongs to a value as \\s)".into());
    }
    if line.is_empty() || line.starts_with('#') {
        return Ok(());
    }
    if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
        *section = Some(match name {
            "rows" => Section::Rows,
            "shape variants" => Section::Shapes,
            "grammar variants" => Section::Grammar,
            "hand-off" => Section::Handoff,
            _ => return Err(format!("unknown section [{name}]")),
        });
        return Ok(());
    }
    match section.ok_or("an entry before the first [section]")? {
        Section::Rows if line.starts_with(' ') => {
            let header = line
                .strip_prefix("    ")
                .filter(|h| !h.starts_with(' '))
                .ok_or("header lines are indented by exactly four spaces")?;
            let row = table
                .rows
                .last_mut()
                .ok_or("a header line before any row")?;
            row.headers.push(header_line(header)?);
        }
        Section::Rows => table.rows.push(row_line(line)?),
        Section::Shapes => table.shapes.push(variant_line(line)?),
        Section::Grammar => table.grammar.push(variant_line(line)?),
        Section::Handoff => table.handoffs.push(handoff_line(line)?),
    }
    Ok(())
}

/// `name | expect [| socket: expect] [| socket only] [| path: target]`.
fn row_line(line: &str) -> Result<Case, String> {
    let fields = fields(line)?;
    let [name, expect, options @ ..] = fields.as_slice() else {
        return Err("a row needs at least `name | expect`".into());
    };
    let mut case = case(*name, vec![], parse_expect(expect)?);
    for option in options {
        if *option == "socket only" && !case.socket_only {
            case.socket_only = true;
        } else if let Some(expect) = option
            .strip_prefix("socket: ")
            .filter(|_| case.socket.is_none())
        {
            case.socket = Some(parse_expect(expect)?);
        } else if let Some(path) = option.strip_prefix("path: ").filter(|_| case.path == "/me") {
            case.path = text(path)?;
        } else {
            return Err(format!("unknown or repeated option {option:?}"));
        }
    }
    if matches!(case.expect, Expect::Stack(_)) && !case.socket_only {
        return Err("`stack` is an answer over the socket: add `socket only`".into());
    }
    Ok(case)
}

/// `    header-name: value` (the indent already taken off).
fn header_line(line: &str) -> Result<(Vec<u8>, Vec<u8>), String> {
    let (name, rest) = line.split_once(':').ok_or("a header line without `:`")?;
    if name.is_empty() {
        return Err("a header line without a name".into());
    }
    let text = match rest {
        "" => "",
        _ => rest
            .strip_prefix(' ')
            .ok_or("no space after the header name's `:`")?,
    };
    Ok((value(name)?, value(text)?))
}

/// `name | token`.
fn variant_line(line: &str) -> Result<(String, Vec<u8>), String> {
    match fields(line)?.as_slice() {
        [name, token] => Ok((name.to_string(), value(token)?)),
        _ => Err("a variant is `name | token`".into()),
    }
}

/// `name | query | expect`, the query after `/portal?`.
fn handoff_line(line: &str) -> Result<HandoffCase, String> {
    let [name, query, expect] = fields(line)?[..] else {
        return Err("a hand-off row is `name | query | expect`".into());
    };
    let expect = match expect {
        "refused" => Handoff::Refused { loads: 0 },
        "refused after lookup" => Handoff::Refused { loads: 1 },
        "pass-through" => Handoff::PassThrough,
        _ => match expect.split_once(' ') {
            Some(("stack", status)) => Handoff::Stack(http_status(status)?),
            Some(("redirect", to)) => {
                let (token, location) = to
                    .split_once(" to ")
                    .ok_or("a redirect is `redirect {VALID} to /path`")?;
                Handoff::Redirect(issued(token)?, text(location)?)
            }
            _ => return Err(format!("unknown hand-off outcome {expect:?}")),
        },
    };
    Ok(handoff(name, text(query)?, expect))
}

/// The `|`-separated fields of a line, trimmed; none may be empty.
fn fields(line: &str) -> Result<Vec<&str>, String> {
    let fields: Vec<&str> = line.split('|').map(|f| f.trim_matches(' ')).collect();
    match fields.iter().any(|f| f.is_empty()) {
        true => Err("an empty field".into()),
        false => Ok(fields),
    }
}

fn parse_expect(text: &str) -> Result<Expect, String> {
    Ok(match text.split_once(' ') {
        None if text == "challenge" => Expect::Challenge,
        None if text == "bad-request" => Expect::BadRequest,
        None if text == "bad-shape" => Expect::BadShape,
        None if text == "unknown" => Expect::Unknown,
        Some(("header", token)) => Expect::Header(issued(token)?),
        Some(("cookie", token)) => Expect::Cookie(issued(token)?),
        Some(("stack", status)) => Expect::Stack(http_status(status)?),
        _ => return Err(format!("unknown outcome {text:?}")),
    })
}

fn http_status(text: &str) -> Result<u16, String> {
    match text.parse() {
        Ok(status @ 100..=599) => Ok(status),
        _ => Err(format!("not an HTTP status: {text:?}")),
    }
}

/// An issued token's placeholder: the token a 200 must be for.
fn issued(placeholder: &str) -> Result<&'static str, String> {
    match placeholder {
        "{VALID}" => Ok(VALID),
        "{MEMBER}" => Ok(MEMBER),
        _ => Err(format!("{placeholder:?} is not {{VALID}} or {{MEMBER}}")),
    }
}

/// A value that must be text (a target, a query, a location).
fn text(value: &str) -> Result<String, String> {
    String::from_utf8(self::value(value)?).map_err(|_| "a value that is not UTF-8".into())
}

/// A value's bytes: escapes and placeholders replaced; anything else must be plain ASCII.
fn value(text: &str) -> Result<Vec<u8>, String> {
    if text.starts_with(' ') || text.ends_with(' ') {
        return Err("a space at either end of a value (write it as \\s)".into());
    }
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        match c {
            '\\' => {
                let (bytes, after) = escape(rest)?;
                out.extend_from_slice(&bytes);
                rest = after;
            }
            '{' => {
                let (name, after) = rest.split_once('}').ok_or("`{` without `}`")?;
                out.extend_from_slice(
                    match name {
                        "VALID" => VALID,
                        "MEMBER" => MEMBER,
                        "UNKNOWN" => UNKNOWN,
                        "COOKIE" => COOKIE,
                        _ => return Err(format!("unknown placeholder {{{name}}}")),
                    }
                    .as_bytes(),
                );
                rest = after;
            }
            '}' | '|' => {
                return Err(format!(
                    "a bare `{c}` in a value (write it as \\x{:02x})",
                    c as u32
                ));
            }
            ' '..='~' => out.push(c as u8),
            _ => {
                return Err(format!(
                    "{c:?} in a value (write it as \\u{{{:x}}})",
                    c as u32
                ));
            }
        }
    }
    Ok(out)
}

/// The escape after a `\`: its bytes, and the text after it.
fn escape(text: &str) -> Result<(Vec<u8>, &str), String> {
    let simple = |byte: u8| Ok((vec![byte], &text[1..]));
    match text.chars().next() {
        Some('s') => simple(b' '),
        Some('t') => simple(b'\t'),
        Some('r') => simple(b'\r'),
        Some('n') => simple(b'\n'),
        Some('\\') => simple(b'\\'),
        Some('x') => {
            let hex = text
                .get(1..3)
                .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or("`\\x` takes two hex digits")?;
            let byte = u8::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
            Ok((vec![byte], &text[3..]))
        }
        Some('u') => {
            let (hex, after) = text[1..]
                .strip_prefix('{')
                .and_then(|t| t.split_once('}'))
                .ok_or("`\\u` takes `{hex}`")?;
            let c = u32::from_str_radix(hex, 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| format!("not a Unicode character: \\u{{{hex}}}"))?;
            Ok((c.to_string().into_bytes(), after))
        }
        other => Err(format!(
            "unknown escape \\{}",
            other.map(String::from).unwrap_or_default()
        )),
    }
}

/// Variants of a stated length, generated rather than typed out: kilobytes of letters.
fn long_variants() -> Table {
    let letters = |n| "A".repeat(n).into_bytes();
    let valid_then = |n| [VALID.as_bytes(), &letters(n)].concat();
    let named = |rows: Vec<(&str, Vec<u8>)>| {
        rows.into_iter()
            .map(|(name, token)| (name.to_owned(), token))
            .collect()
    };
    Table {
        shapes: named(vec![
            ("1024 letters", letters(1024)),
            ("token padded to 1024", valid_then(1024 - VALID.len())),
        ]),
        grammar: named(vec![
            ("1025 letters", letters(1025)),
            ("8 KiB of letters", letters(8 * 1024)),
            ("8 KiB of garbage", "!*".repeat(4 * 1024).into_bytes()),
            ("64 KiB of letters", letters(64 * 1024)),
            ("valid token then 64 KiB", valid_then(64 * 1024)),
        ]),
        ..Table::default()
    }
}

/// Rows of many header lines or cookies, generated rather than typed out. hyper takes up
/// to 100 header lines and answers 431 past that.
fn many_line_rows() -> Vec<Case> {
    use Expect::*;
    let split_cookies = (0..120)
        .map(|i| match i {
            60 => cookie(sid(VALID)),
            _ => cookie(format!("c{i}=v")),
        })
        .collect();
    vec![
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
        case("120 split Cookie headers", split_cookies, Cookie(VALID)).socket(Stack(431)),
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
    ]
}

/// The data file's rows and variants, with the generated ones added.
fn table() -> Table {
    let mut table = parse(TABLE).unwrap_or_else(|why| panic!("{why}"));
    let long = long_variants();
    table.rows.extend(many_line_rows());
    table.shapes.extend(long.shapes);
    table.grammar.extend(long.grammar);
    table
}

/// Every row: the table's, and each variant once as a header and once as a cookie.
fn cases() -> Vec<Case> {
    let table = table();
    let mut cases = table.rows;
    let shapes = table.shapes.into_iter().map(|v| (v, Expect::BadShape));
    let grammar = table.grammar.into_iter().map(|v| (v, Expect::BadRequest));
    for ((name, token), expect) in shapes.chain(grammar) {
        cases.push(case(
            format!("header: {name}"),
            vec![auth(bearer(&token))],
            expect,
        ));
        cases.push(case(
            format!("cookie: {name}"),
            vec![cookie(sid(&token))],
            expect,
        ));
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
    println!("{transport:?}: {ran} rows");
    assert!(
        failures.is_empty(),
        "{} of {ran} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Rows are added, never lost: 236 when they moved to the data file.
#[test]
fn corpus_keeps_every_row() {
    let cases = cases();
    println!("{} rows", cases.len());
    assert!(cases.len() >= 236, "{} rows", cases.len());
    let mut names: Vec<_> = cases.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "row names must be unique");
}

/// A line the parser does not understand fails the test with its number, never skipped.
#[test]
fn a_malformed_line_is_refused_with_its_number() {
    for (text, line) in [
        ("[rows]\nok | challenge\n    authorization Bearer x", 3),
        ("[rows]\nok | maybe", 2),
        ("[rows]\n\nok | challenge | sockets only", 3),
        ("[rows]\nok | stack 400", 2),
        ("[rows]\nok | challenge\n   cookie: a=1", 3),
        ("[rows]\nok | challenge\n    cookie: a=1 ", 3),
        ("[rows]\nok | challenge\n    cookie: a=\\q", 3),
        ("[rows]\nok | challenge\n    cookie: {TOKEN}", 3),
        ("[rows]\nok | challenge\n    cookie: \u{434}", 3),
        ("[rows]\nok | challenge\n    cookie: a\tb", 3),
        ("[shape variants]\nok | {VALID} | more", 2),
        ("# no section yet\nok | challenge", 2),
        ("[hand-off]\nok | x=1 | redirect {UNKNOWN} to /portal", 2),
        ("[hand-off]\nok | x=1", 2),
    ] {
        match parse(text) {
            Ok(_) => panic!("parsed {text:?}"),
            Err(why) => assert!(why.contains(&format!(".txt:{line}: ")), "{text:?}: {why}"),
        }
    }
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

/// The data file's hand-off rows, then the generated ones: long values, and every shape
/// variant that a query can carry as it is.
fn handoff_cases() -> Vec<HandoffCase> {
    let table = table();
    let p = "customer_session_token";
    let mut cases = table.handoffs;
    let letters = "A".repeat(8 * 1024);
    cases.push(handoff(
        "8 KiB value",
        format!("{p}={letters}"),
        Handoff::Refused { loads: 0 },
    ));
    let letters = "A".repeat(64 * 1024);
    cases.push(handoff(
        "64 KiB value",
        format!("{p}={letters}"),
        Handoff::Stack(414),
    ));
    for (name, token) in table.shapes {
        let token = String::from_utf8(token).expect("shape variants keep to b64token");
        // Everything here is query-safe except the characters a URL gives meaning to.
        if token.contains(['+', '&', '=']) {
            continue;
        }
        cases.push(handoff(
            format!("shape: {name}"),
            format!("{p}={token}"),
            Handoff::Refused { loads: 0 },
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
    // Rows are added, never lost: 49 when they moved to the data file.
    assert!(cases.len() >= 49, "{} hand-off rows", cases.len());
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
