//! `TokenFormat::parse` against an independent reference, plus `TokenHash` hex round trips
//! and custom prefixes built from the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_customer_session::token::{TokenFormat, TokenHash, TokenKind};

/// Base62 digits in the order Polar's checksum uses.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn checksum(random: &[u8]) -> [u8; 6] {
    let mut value = crc32fast::hash(random);
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    out
}

/// What the token format says, written from the spec rather than from the crate.
fn reference(s: &str, customer: &str, member: &str) -> Option<TokenKind> {
    let (kind, body) = if let Some(body) = s.strip_prefix(customer) {
        (TokenKind::Customer, body)
    } else {
        (TokenKind::Member, s.strip_prefix(member)?)
    };
    let body = body.as_bytes();
    let ok = body.len() == 43
        && body.iter().all(u8::is_ascii_alphanumeric)
        && checksum(&body[..37]) == body[37..];
    ok.then_some(kind)
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };

    let polar = TokenFormat::polar();
    let parsed = polar.parse(s);
    assert_eq!(
        parsed.as_ref().ok().map(|t| t.kind()),
        reference(s, "polar_cst_", "polar_mst_"),
        "parse disagrees with the reference on {s:?}"
    );
    if let Ok(token) = parsed {
        assert_eq!(token.expose_secret(), s);
        let shown = format!("{token:?} {token}");
        assert!(!shown.contains(&s[10..]), "token shown in {shown:?}");
    }

    if let Some(hash) = TokenHash::from_hex(s) {
        assert_eq!(hash.to_hex(), s.to_ascii_lowercase());
        assert_eq!(
            TokenHash::from_hex(&hash.to_hex()).map(|h| h.to_hex()),
            Some(hash.to_hex())
        );
    }

    // Custom prefixes: the input up to the first '|' and the next piece, then the rest.
    let mut parts = s.splitn(3, '|');
    if let (Some(a), Some(b), Some(rest)) = (parts.next(), parts.next(), parts.next())
        && let Ok(format) = TokenFormat::new(a, b)
    {
        assert_eq!(
            format.parse(rest).ok().map(|t| t.kind()),
            reference(rest, a, b)
        );
        for kind in [TokenKind::Customer, TokenKind::Member] {
            let fresh = format.generate(kind).expect("OS randomness");
            assert_eq!(
                format.parse(fresh.expose_secret()).map(|t| t.kind()),
                Ok(kind)
            );
            assert!(fresh.expose_secret().len() <= format.max_len());
        }
    }
});
