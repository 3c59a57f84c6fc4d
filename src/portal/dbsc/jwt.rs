//! The browser's proofs: `Secure-Session-Response` JWTs, ES256 only.
//!
//! Parsed by hand (three base64url parts, two small JSON objects): the format is fixed by
//! the protocol, and a general JOSE library would bring algorithms we must refuse anyway.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::{EncodedPoint, FieldBytes};
use serde::Deserialize;

/// Longest proof examined. Chromium's are under 600 bytes with a key, 300 without.
pub(crate) const MAX_PROOF_LEN: usize = 4096;
/// The only `typ` the protocol defines.
const TYPE: &str = "dbsc+jwt";

/// Why a proof was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProofError {
    /// Not a JWT of the expected shape (parts, base64url, JSON, fields, key encoding).
    Malformed,
    /// `alg` is not `ES256` (RS256 is not supported).
    Algorithm,
    /// `typ` is not `dbsc+jwt`.
    Type,
    /// The signature does not verify with the key it must be signed with.
    Signature,
}

impl ProofError {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed proof",
            Self::Algorithm => "unsupported algorithm",
            Self::Type => "wrong typ",
            Self::Signature => "bad signature",
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    typ: Option<String>,
    jwk: Option<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    crv: String,
    x: String,
    y: String,
}

#[derive(Deserialize)]
struct Claims {
    jti: String,
}

/// A proof whose header and claims are well-formed and whose `alg`/`typ` are right; its
/// signature is not checked yet.
pub(crate) struct Proof {
    signing_input: Vec<u8>,
    signature: Signature,
    /// The key in the header (`jwk`), sent only at registration.
    pub(crate) jwk: Option<VerifyingKey>,
    /// The challenge the browser answers.
    pub(crate) jti: String,
}

impl Proof {
    pub(crate) fn parse(raw: &[u8]) -> Result<Self, ProofError> {
        if raw.len() > MAX_PROOF_LEN {
            return Err(ProofError::Malformed);
        }
        let raw = std::str::from_utf8(raw)
            .map_err(|_| ProofError::Malformed)?
            .trim();
        let mut parts = raw.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ProofError::Malformed);
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| ProofError::Malformed)
        };
        let header: Header =
            serde_json::from_slice(&decode(header)?).map_err(|_| ProofError::Malformed)?;
        if header.alg != "ES256" {
            return Err(ProofError::Algorithm);
        }
        if header.typ.as_deref() != Some(TYPE) {
            return Err(ProofError::Type);
        }
        let claims_json: Claims =
            serde_json::from_slice(&decode(claims)?).map_err(|_| ProofError::Malformed)?;
        let signature =
            Signature::from_slice(&decode(signature)?).map_err(|_| ProofError::Malformed)?;
        let jwk = header.jwk.map(Jwk::key).transpose()?;
        // What was signed: `header.claims`, exactly as sent.
        let signed = raw.rfind('.').ok_or(ProofError::Malformed)?;
        Ok(Self {
            signing_input: raw.as_bytes()[..signed].to_vec(),
            signature,
            jwk,
            jti: claims_json.jti,
        })
    }

    /// Whether `key` signed this proof.
    pub(crate) fn verify(&self, key: &VerifyingKey) -> Result<(), ProofError> {
        key.verify(&self.signing_input, &self.signature)
            .map_err(|_| ProofError::Signature)
    }
}

impl Jwk {
    fn key(self) -> Result<VerifyingKey, ProofError> {
        if self.kty != "EC" || self.crv != "P-256" {
            return Err(ProofError::Algorithm);
        }
        let coordinate = |c: &str| -> Result<FieldBytes, ProofError> {
            let bytes = URL_SAFE_NO_PAD
                .decode(c)
                .map_err(|_| ProofError::Malformed)?;
            let bytes: [u8; 32] = bytes.try_into().map_err(|_| ProofError::Malformed)?;
            Ok(bytes.into())
        };
        let point = EncodedPoint::from_affine_coordinates(
            &coordinate(&self.x)?,
            &coordinate(&self.y)?,
            false,
        );
        VerifyingKey::from_encoded_point(&point).map_err(|_| ProofError::Malformed)
    }
}
