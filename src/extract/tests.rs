use http::HeaderValue;

use super::*;

fn sources(cookie: Option<&str>) -> Sources {
    Sources {
        bearer: true,
        cookie: cookie.map(Into::into),
    }
}

fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    map
}

/// The extracted token if it is inside the `b64token` grammar, else its refusal.
fn run(pairs: &[(&str, &[u8])]) -> Result<Option<(String, CredentialSource)>, Rejection> {
    let map = headers(pairs);
    match extract(&map, &sources(Some("sid")))? {
        Some(c) if is_b64token(c.raw) => {
            Ok(Some((String::from_utf8(c.raw.to_vec()).unwrap(), c.source)))
        }
        Some(c) => Err(c.refusal()),
        None => Ok(None),
    }
}

const BAD: Rejection = Rejection::InvalidRequest(InvalidRequest::MalformedBearer);

#[test]
fn bearer_scheme_is_case_insensitive() {
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let value = format!("{scheme} abc");
        assert_eq!(
            run(&[("authorization", value.as_bytes())]).unwrap(),
            Some(("abc".to_owned(), CredentialSource::Header))
        );
    }
}

#[test]
fn bearer_edge_cases() {
    assert_eq!(run(&[("authorization", b"Bearer")]), Err(BAD));
    assert_eq!(run(&[("authorization", b"Bearer ")]), Err(BAD));
    assert_eq!(run(&[("authorization", b"Bearer a b")]), Err(BAD));
    assert_eq!(run(&[("authorization", b"Bearer a,b")]), Err(BAD));
    assert_eq!(run(&[("authorization", b"Bearer \"abc\"")]), Err(BAD));
    assert_eq!(run(&[("authorization", b"Bearer ab\xffcd")]), Err(BAD));
    assert_eq!(
        run(&[("authorization", b"Bearer   abc")])
            .unwrap()
            .unwrap()
            .0,
        "abc"
    );
    assert_eq!(run(&[("authorization", b"Bearer\tabc")]), Err(BAD));
    assert_eq!(run(&[("authorization", b"Bearer \tabc")]), Err(BAD));
    assert_eq!(
        run(&[("authorization", b"Basic dXNlcjpwYXNz")]),
        Err(Rejection::UnsupportedScheme)
    );
    assert_eq!(
        run(&[("authorization", b"Bearerabc")]),
        Err(Rejection::UnsupportedScheme)
    );
    let long = format!("Bearer {}", "a".repeat(MAX_CREDENTIAL_LEN + 1));
    assert_eq!(
        run(&[("authorization", long.as_bytes())]),
        Err(Rejection::InvalidRequest(InvalidRequest::TooLong))
    );
}

#[test]
fn two_authorization_lines_are_malformed() {
    assert_eq!(
        run(&[
            ("authorization", b"Bearer a"),
            ("authorization", b"Bearer a")
        ]),
        Err(Rejection::InvalidRequest(
            InvalidRequest::DuplicateAuthorization
        ))
    );
}

#[test]
fn header_wins_and_never_falls_back_to_the_cookie() {
    assert_eq!(
        run(&[("authorization", b"Bearer hdr"), ("cookie", b"sid=ck")])
            .unwrap()
            .unwrap(),
        ("hdr".to_owned(), CredentialSource::Header)
    );
    assert_eq!(
        run(&[("authorization", b"Basic x"), ("cookie", b"sid=ck")]),
        Err(Rejection::UnsupportedScheme)
    );
    assert_eq!(
        run(&[("authorization", b"Bearer"), ("cookie", b"sid=ck")]),
        Err(BAD)
    );
}

#[test]
fn cookie_parsing() {
    let ok = |v: &[u8]| run(&[("cookie", v)]).map(|o| o.map(|(t, _)| t));
    assert_eq!(ok(b"sid=abc").unwrap().as_deref(), Some("abc"));
    assert_eq!(ok(b"a=1; sid=abc; b=2").unwrap().as_deref(), Some("abc"));
    assert_eq!(ok(b"a=1;sid=abc").unwrap().as_deref(), Some("abc"));
    assert_eq!(ok(b"SID=abc").unwrap(), None);
    assert_eq!(ok(b"sidx=abc; xsid=abc").unwrap(), None);
    assert_eq!(ok(b"sid=").unwrap(), None);
    assert_eq!(ok(b"sid=abc; sid=abc").unwrap().as_deref(), Some("abc"));
    assert_eq!(
        ok(b"sid=abc; sid=abd"),
        Err(Rejection::InvalidRequest(InvalidRequest::DuplicateCookie))
    );
    assert_eq!(
        ok(b"sid=\"abc\""),
        Err(Rejection::InvalidRequest(InvalidRequest::MalformedCookie))
    );
    assert_eq!(
        ok(b"sid=ab%5Fc"),
        Err(Rejection::InvalidRequest(InvalidRequest::MalformedCookie))
    );
    let split = run(&[("cookie", b"a=1"), ("cookie", b"sid=abc")])
        .unwrap()
        .unwrap();
    assert_eq!(split, ("abc".to_owned(), CredentialSource::Cookie));
    assert_eq!(
        run(&[("cookie", b"sid=abc"), ("cookie", b"sid=xyz")]),
        Err(Rejection::InvalidRequest(InvalidRequest::DuplicateCookie))
    );
}

#[test]
fn disabled_sources_are_ignored() {
    let map = headers(&[("authorization", b"Bearer abc"), ("cookie", b"sid=ck")]);
    let only_cookie = Sources {
        bearer: false,
        cookie: Some("sid".into()),
    };
    assert_eq!(extract(&map, &only_cookie).unwrap().unwrap().raw, b"ck");
    assert_eq!(
        extract(&headers(&[("cookie", b"sid=ck")]), &sources(None)).unwrap(),
        None
    );
}

#[test]
fn refusal_tells_grammar_from_shape() {
    let header = |raw: &'static [u8]| Credential {
        raw,
        source: CredentialSource::Header,
    };
    assert_eq!(
        header(b"polar_cst_short").refusal(),
        Rejection::InvalidToken(InvalidToken::Malformed)
    );
    assert_eq!(header(b"a b").refusal(), BAD);
    let cookie = Credential {
        raw: b"\"q\"",
        source: CredentialSource::Cookie,
    };
    assert_eq!(
        cookie.refusal(),
        Rejection::InvalidRequest(InvalidRequest::MalformedCookie)
    );
}

fn sign_out(pairs: &[(&str, &[u8])]) -> Result<Vec<String>, Rejection> {
    let map = headers(pairs);
    let raws = match sign_out_credentials(&map, &sources(Some("sid")))? {
        SignOut::Header(raw) => vec![raw],
        SignOut::Cookies(raws) => raws,
    };
    Ok(raws
        .into_iter()
        .map(|raw| String::from_utf8(raw.to_vec()).unwrap())
        .collect())
}

#[test]
fn sign_out_reads_the_cookie_behind_a_basic_header() {
    assert_eq!(
        sign_out(&[("authorization", b"Basic dTpw"), ("cookie", b"sid=abc")]),
        Ok(vec!["abc".to_owned()])
    );
    // A Bearer header is still the only credential, malformed or not.
    assert_eq!(
        sign_out(&[("authorization", b"Bearer xyz"), ("cookie", b"sid=abc")]),
        Ok(vec!["xyz".to_owned()])
    );
    assert_eq!(
        sign_out(&[("authorization", b"Bearer\tabc"), ("cookie", b"sid=abc")]),
        Ok(vec![String::new()])
    );
}

#[test]
fn sign_out_takes_every_distinct_cookie_up_to_the_bound() {
    assert_eq!(
        sign_out(&[("cookie", b"sid=a; sid=b"), ("cookie", b"sid=a; sid=")]),
        Ok(vec!["a".to_owned(), "b".to_owned()])
    );
    let line = |n: usize| {
        (0..n)
            .map(|i| format!("sid=t{i}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let most = line(MAX_SIGN_OUT_COOKIES);
    assert_eq!(
        sign_out(&[("cookie", most.as_bytes())]).unwrap().len(),
        MAX_SIGN_OUT_COOKIES
    );
    let more = line(MAX_SIGN_OUT_COOKIES + 1);
    assert_eq!(
        sign_out(&[("cookie", more.as_bytes())]),
        Err(Rejection::InvalidRequest(InvalidRequest::DuplicateCookie))
    );
    // Too long to be a token: never a session, so nothing to revoke.
    let long = format!("sid={}", "a".repeat(MAX_CREDENTIAL_LEN + 1));
    assert_eq!(sign_out(&[("cookie", long.as_bytes())]), Ok(vec![]));
    assert_eq!(
        sign_out(&[
            ("authorization", b"Bearer a"),
            ("authorization", b"Basic b")
        ]),
        Err(Rejection::InvalidRequest(
            InvalidRequest::DuplicateAuthorization
        ))
    );
}
