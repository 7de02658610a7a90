//! Strict parsing of JWS compact serialization, before anything is handed to `jsonwebtoken`.
//!
//! `jsonwebtoken` is lenient in places that matter to an authentication library: it keeps the
//! last of two `alg` members, accepts more than one encoding of the same bytes in some paths, and
//! gives a generic error for a JWE. This module refuses all of those first:
//!
//! - exactly three segments (a five-segment JWE is refused, so is the JSON serialization);
//! - each segment is canonical unpadded base64url (no `=`, no stray trailing bits, nothing outside
//!   the alphabet), so one token has exactly one spelling;
//! - the header and the payload are JSON objects without duplicate top-level members.

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{
    Deserialize, Deserializer,
    de::{self, MapAccess, Visitor},
};
use serde_json::{Map, Value as Json};

use super::AuthnError;

/// A JSON object whose top-level members are unique.
#[derive(Debug, Clone, Default)]
pub(crate) struct StrictObject(pub(crate) Map<String, Json>);

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = StrictObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictObject, A::Error> {
                let mut out = Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    if out.contains_key(&key) {
                        return Err(de::Error::custom("duplicate member"));
                    }
                    let value = map.next_value::<Json>()?;
                    out.insert(key, value);
                }
                Ok(StrictObject(out))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// A JWS in compact serialization, split and decoded, with its signature not yet checked.
#[derive(Debug)]
pub(crate) struct Compact<'a> {
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`: the bytes the signature covers.
    pub(crate) signing_input: &'a str,
    /// The signature segment, still encoded (canonical, checked).
    pub(crate) signature_b64: &'a str,
    /// The decoded signature.
    pub(crate) signature: Vec<u8>,
    /// The protected header.
    pub(crate) header: StrictObject,
    /// The payload, raw.
    pub(crate) payload: Vec<u8>,
}

/// Decodes canonical unpadded base64url, refusing padding, other alphabets and stray bits.
pub(crate) fn b64url_decode(segment: &str) -> Result<Vec<u8>, AuthnError> {
    // `URL_SAFE_NO_PAD` requires no padding and refuses non-zero trailing bits, so every byte
    // string has exactly one accepted encoding.
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| AuthnError::Invalid("the token is not canonical base64url"))
}

/// Parses a JSON object, refusing duplicate top-level members.
pub(crate) fn parse_object(bytes: &[u8], what: &'static str) -> Result<StrictObject, AuthnError> {
    serde_json::from_slice::<StrictObject>(bytes).map_err(|_| AuthnError::Invalid(what))
}

/// Splits and decodes a compact JWS. The payload is not parsed: for a JWT, see
/// [`parse_object`].
pub(crate) fn parse_compact(token: &str) -> Result<Compact<'_>, AuthnError> {
    if token.starts_with('{') {
        return Err(AuthnError::Invalid(
            "the JSON serialization of tokens is not accepted",
        ));
    }
    let dots = token.bytes().filter(|b| *b == b'.').count();
    match dots {
        2 => {}
        4 => return Err(AuthnError::Invalid("encrypted tokens are not accepted")),
        _ => return Err(AuthnError::Invalid("the token is not a compact JWS")),
    }
    let Some((signing_input, signature_b64)) = token.rsplit_once('.') else {
        return Err(AuthnError::Invalid("the token is not a compact JWS"));
    };
    let Some((header_b64, payload_b64)) = signing_input.split_once('.') else {
        return Err(AuthnError::Invalid("the token is not a compact JWS"));
    };
    if header_b64.is_empty() || payload_b64.is_empty() || signature_b64.is_empty() {
        return Err(AuthnError::Invalid("the token has an empty segment"));
    }
    let header_bytes = b64url_decode(header_b64)?;
    let header = parse_object(&header_bytes, "the token header is not a JSON object")?;
    let payload = b64url_decode(payload_b64)?;
    let signature = b64url_decode(signature_b64)?;
    Ok(Compact {
        signing_input,
        signature_b64,
        signature,
        header,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_duplicate_members() {
        assert!(parse_object(br#"{"alg":"ES256","alg":"none"}"#, "x").is_err());
        assert!(parse_object(br#"{"alg":"ES256","kid":"a"}"#, "x").is_ok());
        assert!(parse_object(b"[1]", "x").is_err());
    }

    #[test]
    fn base64url_is_canonical_only() {
        assert_eq!(b64url_decode("YQ").unwrap(), b"a");
        assert!(b64url_decode("YQ==").is_err(), "padding");
        assert!(b64url_decode("YR").is_err(), "non-zero trailing bits");
        assert!(b64url_decode("Y+").is_err(), "standard alphabet");
        assert!(b64url_decode("Y Q").is_err());
    }

    #[test]
    fn segment_counts() {
        assert!(matches!(
            parse_compact("a.b.c.d.e"),
            Err(AuthnError::Invalid("encrypted tokens are not accepted"))
        ));
        assert!(parse_compact("a.b").is_err());
        assert!(parse_compact("{\"payload\":\"x\"}").is_err());
        assert!(parse_compact("e30..c2ln").is_err());
    }
}
