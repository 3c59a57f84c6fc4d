use super::*;

const VECTORS: &str = include_str!("../../tests/fixtures/polar/token_test_vectors.json");

fn vectors() -> Vec<serde_json::Value> {
    let doc: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
    doc["vectors"].as_array().unwrap().clone()
}

#[test]
fn every_vector_parses_with_its_kind_and_checksum() {
    let format = TokenFormat::polar();
    for v in vectors() {
        let token = v["token"].as_str().unwrap();
        let parsed = format.parse(token).expect(token);
        let expected = match v["prefix"].as_str().unwrap() {
            "polar_cst_" => TokenKind::Customer,
            _ => TokenKind::Member,
        };
        assert_eq!(parsed.kind(), expected);
        let random = v["random_part"].as_str().unwrap();
        assert_eq!(
            &checksum::checksum(random.as_bytes()),
            v["checksum_base62"].as_str().unwrap().as_bytes()
        );
        assert_eq!(
            crc32fast::hash(random.as_bytes()),
            v["crc32_decimal"].as_u64().unwrap() as u32
        );
        assert_eq!(token.len(), v["token_len"].as_u64().unwrap() as usize);
    }
}

#[test]
fn every_vector_hashes_to_polars_stored_value() {
    for v in vectors() {
        let token = v["token"].as_str().unwrap();
        for (secret, hex) in v["hmac_sha256_hex"].as_object().unwrap() {
            let hash = TokenHasher::new(secret.as_bytes()).hash(token);
            assert_eq!(hash.to_hex(), hex.as_str().unwrap(), "{secret}");
            assert_eq!(TokenHash::from_hex(hex.as_str().unwrap()).unwrap(), hash);
        }
    }
}

#[test]
fn mutated_tokens_are_rejected_with_the_right_reason() {
    let format = TokenFormat::polar();
    let good = "polar_cst_mDzyMJMtMi1pdvsJXMR2wHGk5Q6bbyD5UowKl0L1tZ2";
    assert!(format.parse(good).is_ok());
    let cases: &[(&str, Option<TokenError>)] = &[
        (&good[..52], Some(TokenError::Length)),
        (&format!("{good}a"), Some(TokenError::Length)),
        (
            "polar_cst_mDzyMJMtMi1pdvsJXMR2wHGk5Q6bbyD5UowKl0L1tZ3",
            Some(TokenError::Checksum),
        ),
        (
            "polar_cst_nDzyMJMtMi1pdvsJXMR2wHGk5Q6bbyD5UowKl0L1tZ2",
            Some(TokenError::Checksum),
        ),
        (
            "polar_cst_mDzyMJMtMi1pdvsJXMR2wHGk5Q6bbyD5UowK-0L1tZ2",
            Some(TokenError::Alphabet),
        ),
        (
            "polar_oat_mDzyMJMtMi1pdvsJXMR2wHGk5Q6bbyD5UowKl0L1tZ2",
            Some(TokenError::Prefix),
        ),
        (
            "Polar_cst_mDzyMJMtMi1pdvsJXMR2wHGk5Q6bbyD5UowKl0L1tZ2",
            Some(TokenError::Prefix),
        ),
        (
            "polar_mst_mDzyMJMtMi1pdvsJXMR2wHGk5Q6bbyD5UowKl0L1tZ2",
            None,
        ),
        ("", Some(TokenError::Prefix)),
        ("polar_cst_", Some(TokenError::Length)),
    ];
    for (raw, want) in cases {
        match want {
            None => assert!(format.parse(raw).is_ok(), "{raw}"),
            Some(want) => assert_eq!(format.parse(raw).unwrap_err(), *want, "{raw}"),
        }
    }
}

#[test]
fn non_ascii_lookalikes_are_rejected() {
    let format = TokenFormat::polar();
    // Cyrillic 'а' in place of 'a' keeps the character count but not the byte length.
    assert!(
        format
            .parse("polar_cst_mDzyMJMtMi1pdvsJXMR2wHGk5Q6bbyD5UowKl0L1tZа")
            .is_err()
    );
    assert!(
        format
            .parse("polar_cst_mDzyMJMtMi1pdvsJXMR2wHGk5Q6bbyD5UowK\u{00e9}0L1tZ")
            .is_err()
    );
}

#[test]
fn generated_tokens_have_polar_shape_and_differ() {
    let format = TokenFormat::polar();
    let a = format.generate(TokenKind::Customer).unwrap();
    let b = format.generate(TokenKind::Customer).unwrap();
    let m = format.generate(TokenKind::Member).unwrap();
    assert_eq!(a.expose_secret().len(), 53);
    assert!(a.expose_secret().starts_with("polar_cst_"));
    assert!(m.expose_secret().starts_with("polar_mst_"));
    assert_eq!(
        format.parse(a.expose_secret()).unwrap().kind(),
        TokenKind::Customer
    );
    assert_eq!(
        format.parse(m.expose_secret()).unwrap().kind(),
        TokenKind::Member
    );
    assert_ne!(a.expose_secret(), b.expose_secret());
}

#[test]
fn generated_characters_cover_the_whole_alphabet() {
    // 300 tokens draw 11,100 characters; missing any of 62 symbols would mean a biased sampler.
    let format = TokenFormat::polar();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..300 {
        let token = format.generate(TokenKind::Customer).unwrap();
        seen.extend(token.expose_secret()[10..47].bytes());
    }
    assert_eq!(seen.len(), 62);
}

#[test]
fn custom_prefixes_replace_polars() {
    let format = TokenFormat::new("acme_cst_", "acme_mst_").unwrap();
    let token = format.generate(TokenKind::Customer).unwrap();
    assert_eq!(token.expose_secret().len(), 52);
    assert!(format.parse(token.expose_secret()).is_ok());
    assert_eq!(
        TokenFormat::polar()
            .parse(token.expose_secret())
            .unwrap_err(),
        TokenError::Prefix
    );
    assert!(TokenFormat::new("", "x_").is_err());
    assert!(TokenFormat::new("a\"b", "x_").is_err());
    assert!(TokenFormat::new("x_", "x_y").is_err());
}

#[test]
fn debug_and_display_never_show_the_token() {
    let format = TokenFormat::polar();
    let token = format.generate(TokenKind::Customer).unwrap();
    let parsed = format.parse(token.expose_secret()).unwrap();
    let secret_part = &token.expose_secret()[10..30];
    for shown in [
        format!("{token:?}"),
        format!("{token}"),
        format!("{parsed:?}"),
        format!("{parsed}"),
        format!("{:?}", TokenHasher::new(b"k")),
    ] {
        assert!(!shown.contains(secret_part), "{shown}");
    }
    let hash = TokenHasher::new(b"k").hash(token.expose_secret());
    assert_eq!(format!("{hash}").len(), 8 + '…'.len_utf8());
    assert!(!format!("{hash:?}").contains(&hash.to_hex()[8..]));
}

#[test]
fn b64token_grammar() {
    for ok in ["a", "mF_9.B5f-4.1JqM", "abc==", "A+/~", "x="] {
        assert!(is_b64token(ok.as_bytes()), "{ok}");
    }
    for bad in [
        "", "=", "a=b", "a b", "a\"", "a,b", "a;b", "\u{e9}", "%41", "a\t",
    ] {
        assert!(!is_b64token(bad.as_bytes()), "{bad}");
    }
}

#[test]
fn hash_equality_sees_every_byte() {
    use subtle::ConstantTimeEq;
    let base = TokenHasher::new(b"k").hash("polar_cst_x");
    for i in 0..32 {
        let mut bytes = *base.as_bytes();
        bytes[i] ^= 0x80;
        let other = TokenHash::from_bytes(bytes);
        assert!(base != other, "byte {i}");
        assert!(!bool::from(base.ct_eq(&other)), "byte {i}");
    }
    assert!(base == TokenHash::from_bytes(*base.as_bytes()));
    assert!(bool::from(
        base.ct_eq(&TokenHash::from_bytes(*base.as_bytes()))
    ));
}

#[test]
fn the_branch_free_alphabet_check_agrees_with_std_for_every_byte_and_position() {
    for position in 0..BODY_LEN {
        for byte in 0..=u8::MAX {
            let mut body = [b'a'; BODY_LEN];
            body[position] = byte;
            assert_eq!(
                alphanumeric(&body),
                byte.is_ascii_alphanumeric(),
                "byte {byte:#04x} at {position}"
            );
        }
    }
}
