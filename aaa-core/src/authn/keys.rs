//! Verification keys and immutable key sets, parsed once when a key set is loaded.

use std::{collections::HashMap, fmt, sync::Arc};

use aws_lc_rs::signature::{self as lc, ParsedPublicKey};
use ed25519_dalek::Verifier as _;
use jsonwebtoken::{
    Algorithm, DecodingKey, DecodingKeyKind,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse},
};

use super::error::KeyError;

/// Smallest RSA modulus accepted, in bits.
const MIN_RSA_MODULUS_BITS: usize = 2048;
/// Smallest HMAC secret accepted, in bytes.
const MIN_HMAC_SECRET_BYTES: usize = 32;
/// Longest key id kept; longer ones make the key unusable.
pub(crate) const MAX_KID_BYTES: usize = 256;

const RSA_ALGS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];
const HMAC_ALGS: &[Algorithm] = &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];

/// A public key (or, for local configuration only, an HMAC secret) ready to verify signatures,
/// with the algorithms its material allows.
///
/// The algorithms come from the key: its type and curve, narrowed by its JWK `alg` if present. A
/// token's `alg` header must be one of them (and one the issuer allows) for the key to be used, so
/// an RSA public key can never be used as an HMAC secret.
///
/// Its `Debug` shows the key id and algorithms, never key material.
#[derive(Clone)]
pub struct VerificationKey {
    kid: Option<String>,
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
    /// Public keys parsed once, one per allowed algorithm (empty for HMAC secrets, which go
    /// through `jsonwebtoken`).
    parsed: Arc<[(Algorithm, Parsed)]>,
}

/// A public key parsed once, in the form its algorithm's verification uses.
enum Parsed {
    /// RSA and ECDSA keys, verified by `aws-lc-rs`.
    Lc(ParsedPublicKey),
    /// Ed25519 keys, verified by `ed25519-dalek` (see [`ed25519_public`]).
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl Parsed {
    /// Whether `signature` is a valid signature over `message`.
    ///
    /// Ed25519 is verified as RFC 8032 §5.1.7 describes, without the cofactor: `S` must be
    /// below the group order, and `[S]B − [k]A` must encode to exactly the signature's `R`
    /// bytes, so neither half of a signature has a second accepted form. That is the check
    /// `aws-lc-rs` makes (and `jsonwebtoken`'s RustCrypto provider); `ed25519-dalek` makes it
    /// in about two thirds of the time here (BENCHMARKS.md).
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Parsed::Lc(key) => key.verify_sig(message, signature).is_ok(),
            Parsed::Ed25519(key) => {
                ed25519_dalek::Signature::from_slice(signature).is_ok_and(|signature| {
                    crate::ed25519::s_below_order(signature.s_bytes())
                        && key.verify(message, &signature).is_ok()
                })
            }
        }
    }
}

/// An Ed25519 public key, refused unless it is one a signer can have made: 32 bytes that
/// decode to a point, in canonical form, of the prime-order subgroup (so never of small
/// order). `ed25519-dalek` alone decodes by ZIP-215's rules, which accept non-canonical
/// encodings, and leaves weak keys to `verify_strict`, which would check them on every
/// token; a key is checked here once, when it is loaded.
fn ed25519_public(bytes: &[u8]) -> Result<ed25519_dalek::VerifyingKey, KeyError> {
    let bytes: &[u8; 32] = bytes
        .try_into()
        .map_err(|_| KeyError::new("an Ed25519 public key is 32 bytes"))?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(bytes)
        .map_err(|_| KeyError::new("invalid public key material"))?;
    let point = key.to_edwards();
    // Defence in depth: every non-canonical encoding that decodes (y = p + k, x = 0 with a
    // sign) is of a point the subgroup check below refuses anyway; this names the fault.
    if point.compress().as_bytes() != bytes {
        return Err(KeyError::new(
            "the Ed25519 public key is not canonically encoded",
        ));
    }
    if key.is_weak() || !point.is_torsion_free() {
        return Err(KeyError::new(
            "the Ed25519 public key is not in the prime-order subgroup",
        ));
    }
    Ok(key)
}

/// The `aws-lc-rs` verification algorithm of an RSA or ECDSA JWS algorithm, as
/// `jsonwebtoken`'s `aws_lc_rs` provider uses it (fixed-size ECDSA signatures).
fn lc_algorithm(alg: Algorithm) -> Option<&'static dyn lc::VerificationAlgorithm> {
    Some(match alg {
        Algorithm::RS256 => &lc::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &lc::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &lc::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &lc::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &lc::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &lc::RSA_PSS_2048_8192_SHA512,
        Algorithm::ES256 => &lc::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &lc::ECDSA_P384_SHA384_FIXED,
        _ => return None,
    })
}

/// DER length octets.
fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = bytes.get(skip..).unwrap_or(&[]);
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
}

/// A DER INTEGER holding the unsigned big-endian `bytes`.
fn der_uint(bytes: &[u8], out: &mut Vec<u8>) {
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    let digits = bytes.get(skip..).unwrap_or(&[]);
    let pad = digits.first().is_none_or(|b| b & 0x80 != 0);
    out.push(0x02);
    der_len(digits.len() + usize::from(pad), out);
    if pad {
        out.push(0);
    }
    out.extend_from_slice(digits);
}

/// The PKCS#1 `RSAPublicKey` DER of a modulus and exponent.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(n.len() + e.len() + 16);
    der_uint(n, &mut body);
    der_uint(e, &mut body);
    let mut out = vec![0x30];
    der_len(body.len(), &mut out);
    out.extend(body);
    out
}

/// The number of bits of the big-endian unsigned integer `n`.
fn bit_length(n: &[u8]) -> usize {
    let n = n
        .get(n.iter().take_while(|b| **b == 0).count()..)
        .unwrap_or_default();
    n.first()
        .map_or(0, |top| n.len() * 8 - top.leading_zeros() as usize)
}

/// The modulus of a PKCS#1 `RSAPublicKey` (DER: `SEQUENCE { INTEGER n, INTEGER e }`), as
/// `jsonwebtoken` keeps an RSA key read from PEM.
fn pkcs1_modulus(der: &[u8]) -> Option<&[u8]> {
    /// One DER element of type `tag`: its content, and what follows it.
    fn element(der: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (&t, rest) = der.split_first()?;
        let (&first, rest) = rest.split_first()?;
        if t != tag {
            return None;
        }
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return None;
            }
            let (bytes, rest) = rest.split_at_checked(count)?;
            let len = bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, rest)
        };
        rest.split_at_checked(len)
    }
    let (sequence, _) = element(der, 0x30)?;
    let (modulus, _) = element(sequence, 0x02)?;
    Some(modulus)
}

/// Parses the public key once for each algorithm it allows.
fn parse_public(
    key: &DecodingKey,
    algorithms: &[Algorithm],
) -> Result<Arc<[(Algorithm, Parsed)]>, KeyError> {
    let bytes = match key.kind() {
        DecodingKeyKind::SecretOrDer(bytes) => bytes.clone(),
        DecodingKeyKind::RsaModulusExponent { n, e } => rsa_public_key_der(n, e),
    };
    let mut parsed = Vec::with_capacity(algorithms.len());
    for alg in algorithms {
        if *alg == Algorithm::EdDSA {
            parsed.push((*alg, Parsed::Ed25519(ed25519_public(&bytes)?)));
            continue;
        }
        let Some(lc_alg) = lc_algorithm(*alg) else {
            // HMAC: verified through jsonwebtoken.
            return Ok(Arc::from(Vec::new()));
        };
        let key = ParsedPublicKey::new(lc_alg, &bytes)
            .map_err(|_| KeyError::new("invalid public key material"))?;
        parsed.push((*alg, Parsed::Lc(key)));
    }
    Ok(Arc::from(parsed))
}

impl VerificationKey {
    /// Parses a JWK. Symmetric (`oct`) keys are accepted only when `allow_symmetric` is true,
    /// which [`KeySet::from_jwks_json`] never passes for a remote JWKS.
    ///
    /// # Errors
    ///
    /// [`KeyError`] for a key meant for encryption (`use: enc`, `key_ops` without `verify`), an
    /// unsupported type, curve or algorithm, a too-short RSA modulus or HMAC secret, a symmetric
    /// key where none are allowed, or bad encoding.
    pub fn from_jwk(jwk: &Jwk, allow_symmetric: bool) -> Result<Self, KeyError> {
        let common = &jwk.common;
        match &common.public_key_use {
            None | Some(PublicKeyUse::Signature) => {}
            Some(_) => return Err(KeyError::new("the key is not meant for signatures")),
        }
        if let Some(ops) = &common.key_operations
            && !ops.iter().any(|op| matches!(op, KeyOperations::Verify))
        {
            return Err(KeyError::new("the key's operations do not include verify"));
        }
        let declared = match common.key_algorithm {
            None => None,
            Some(alg) => Some(signing_algorithm(alg)?),
        };
        let kid = common.key_id.clone();
        if kid.as_ref().is_some_and(|k| k.len() > MAX_KID_BYTES) {
            return Err(KeyError::new("the key id is too long"));
        }
        let natural: Vec<Algorithm> = match &jwk.algorithm {
            AlgorithmParameters::RSA(p) => {
                let n = super::jws::b64url_decode(&p.n)
                    .map_err(|_| KeyError::new("the RSA modulus is not base64url"))?;
                if bit_length(&n) < MIN_RSA_MODULUS_BITS {
                    return Err(KeyError::new("the RSA modulus is shorter than 2048 bits"));
                }
                RSA_ALGS.to_vec()
            }
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => vec![Algorithm::ES256],
                EllipticCurve::P384 => vec![Algorithm::ES384],
                _ => return Err(KeyError::new("unsupported elliptic curve")),
            },
            AlgorithmParameters::OctetKeyPair(p) => match p.curve {
                EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
                _ => return Err(KeyError::new("unsupported octet key pair curve")),
            },
            AlgorithmParameters::OctetKey(p) => {
                if !allow_symmetric {
                    return Err(KeyError::new(
                        "symmetric keys are not accepted from this source",
                    ));
                }
                let secret = super::jws::b64url_decode(&p.value)
                    .map_err(|_| KeyError::new("the secret is not base64url"))?;
                if secret.len() < MIN_HMAC_SECRET_BYTES {
                    return Err(KeyError::new("the HMAC secret is shorter than 32 bytes"));
                }
                HMAC_ALGS.to_vec()
            }
            _ => return Err(KeyError::new("unsupported key type")),
        };
        let algorithms = match declared {
            None => natural,
            Some(alg) if natural.contains(&alg) => vec![alg],
            Some(_) => {
                return Err(KeyError::new(
                    "the key's alg does not match its type or curve",
                ));
            }
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|_| KeyError::new("invalid key material"))?;
        let parsed = parse_public(&key, &algorithms)?;
        if let AlgorithmParameters::EllipticCurve(_) = &jwk.algorithm {
            // from_ec_components accepts coordinates of any length: check the point's size.
            let point = key.try_get_as_bytes().map(<[u8]>::len).unwrap_or(0);
            let expected = if algorithms.contains(&Algorithm::ES256) {
                65
            } else {
                97
            };
            if point != expected {
                return Err(KeyError::new("the EC point does not match its curve"));
            }
        }
        Ok(VerificationKey {
            kid,
            key,
            algorithms,
            parsed,
        })
    }

    /// A public key from PEM (SPKI `PUBLIC KEY`, or `RSA PUBLIC KEY`), to be used with `alg`.
    ///
    /// # Errors
    ///
    /// [`KeyError`] when the PEM does not hold a key of `alg`'s type (an EC key of its curve), the
    /// RSA modulus is shorter than 2048 bits, or `alg` is an HMAC one.
    pub fn from_pem(kid: Option<&str>, alg: Algorithm, pem: &[u8]) -> Result<Self, KeyError> {
        let key = match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => DecodingKey::from_rsa_pem(pem),
            Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem),
            Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
            _ => return Err(KeyError::new("a PEM key must be an asymmetric public key")),
        }
        .map_err(|_| KeyError::new("the PEM does not hold a public key of this algorithm"))?;
        if RSA_ALGS.contains(&alg) {
            let bits = key
                .try_get_as_bytes()
                .ok()
                .and_then(pkcs1_modulus)
                .map_or(0, bit_length);
            if bits < MIN_RSA_MODULUS_BITS {
                return Err(KeyError::new("the RSA modulus is shorter than 2048 bits"));
            }
        }
        if matches!(alg, Algorithm::ES256 | Algorithm::ES384) {
            let point = key.try_get_as_bytes().map(<[u8]>::len).unwrap_or(0);
            let expected = if alg == Algorithm::ES256 { 65 } else { 97 };
            if point != expected {
                return Err(KeyError::new(
                    "the EC key's curve does not match the algorithm",
                ));
            }
        }
        Self::checked(kid, key, vec![alg])
    }

    /// An HMAC secret for `alg` (`HS256`, `HS384` or `HS512`), for local configuration only:
    /// symmetric keys are never taken from a remote JWKS.
    ///
    /// # Errors
    ///
    /// [`KeyError`] when `alg` is not an HMAC algorithm or the secret is shorter than 32 bytes.
    pub fn hmac(kid: Option<&str>, alg: Algorithm, secret: &[u8]) -> Result<Self, KeyError> {
        if !HMAC_ALGS.contains(&alg) {
            return Err(KeyError::new("not an HMAC algorithm"));
        }
        if secret.len() < MIN_HMAC_SECRET_BYTES {
            return Err(KeyError::new("the HMAC secret is shorter than 32 bytes"));
        }
        Self::checked(kid, DecodingKey::from_secret(secret), vec![alg])
    }

    fn checked(
        kid: Option<&str>,
        key: DecodingKey,
        algorithms: Vec<Algorithm>,
    ) -> Result<Self, KeyError> {
        if kid.is_some_and(|k| k.len() > MAX_KID_BYTES) {
            return Err(KeyError::new("the key id is too long"));
        }
        let parsed = parse_public(&key, &algorithms)?;
        Ok(VerificationKey {
            kid: kid.map(str::to_owned),
            key,
            algorithms,
            parsed,
        })
    }

    /// The key id, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The algorithms this key may verify.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// Whether this key may verify `alg`.
    pub fn allows(&self, alg: Algorithm) -> bool {
        self.algorithms.contains(&alg)
    }

    /// Verifies a signature over `message` with `alg`, which must be one this key allows.
    ///
    /// Public keys use the copy parsed when the key was loaded, without re-parsing the key on
    /// every call: RSA and ECDSA through `aws-lc-rs` (the same primitives as `jsonwebtoken`'s
    /// `aws_lc_rs` provider), Ed25519 through `ed25519-dalek` (the same check, see [`Parsed`]).
    /// HMAC secrets go through `jsonwebtoken`, which compares in constant time.
    pub(crate) fn verify(
        &self,
        alg: Algorithm,
        message: &[u8],
        signature: &[u8],
        signature_b64: &str,
    ) -> bool {
        if !self.allows(alg) {
            return false;
        }
        if let Some((_, parsed)) = self.parsed.iter().find(|(a, _)| *a == alg) {
            return parsed.verify(message, signature);
        }
        HMAC_ALGS.contains(&alg)
            && matches!(
                jsonwebtoken::crypto::verify(signature_b64, message, &self.key, alg),
                Ok(true)
            )
    }

    /// The `jsonwebtoken` key, for comparisons in benchmarks and tests.
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// The signing algorithm named by a JWK `alg`, refusing encryption algorithms.
fn signing_algorithm(alg: KeyAlgorithm) -> Result<Algorithm, KeyError> {
    Ok(match alg {
        KeyAlgorithm::HS256 => Algorithm::HS256,
        KeyAlgorithm::HS384 => Algorithm::HS384,
        KeyAlgorithm::HS512 => Algorithm::HS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => {
            return Err(KeyError::new(
                "the key's alg is not a supported signing algorithm",
            ));
        }
    })
}

/// An immutable set of verification keys, looked up by key id.
///
/// Built once per fetched JWKS; requests share it through an atomic pointer and never lock.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    by_kid: HashMap<String, Arc<VerificationKey>>,
    unnamed: Vec<Arc<VerificationKey>>,
    rejected: Vec<String>,
}

impl KeySet {
    /// An empty set.
    pub fn new() -> Self {
        KeySet::default()
    }

    /// Builds a set from keys. A second key with the same id is dropped (and counted as rejected).
    pub fn from_keys(keys: impl IntoIterator<Item = VerificationKey>) -> Self {
        let mut set = KeySet::new();
        for key in keys {
            set.insert(key);
        }
        set
    }

    fn insert(&mut self, key: VerificationKey) {
        match key.kid.clone() {
            None => self.unnamed.push(Arc::new(key)),
            Some(kid) => match self.by_kid.entry(kid) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    // The id is the key server's text: escaped, it cannot forge log lines.
                    let dup = format!("duplicate key id `{}`", crate::audit::printable(e.key()));
                    self.rejected.push(dup);
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(Arc::new(key));
                }
            },
        }
    }

    /// Parses a JWKS document (`{"keys": [...]}`). Each key is parsed on its own: one bad key is
    /// skipped (see [`rejected`](Self::rejected)) and does not discard the others. A key with
    /// private members (`d`; RSA's `p`, `q`, `dp`, `dq`, `qi`, `oth`) is skipped: a key set is
    /// published, and such a key is one anyone who reads it can sign with.
    ///
    /// # Errors
    ///
    /// [`KeyError`] when the document is not a JSON object with a `keys` array.
    pub fn from_jwks_json(bytes: &[u8], allow_symmetric: bool) -> Result<Self, KeyError> {
        #[derive(serde::Deserialize)]
        struct Doc {
            keys: Vec<serde_json::Value>,
        }
        let doc: Doc = serde_json::from_slice(bytes)
            .map_err(|_| KeyError::new("the JWKS is not a JSON object with a keys array"))?;
        let mut set = KeySet::new();
        const PRIVATE: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];
        for (i, raw) in doc.keys.into_iter().enumerate() {
            if let Some(member) = PRIVATE.iter().find(|m| raw.get(**m).is_some()) {
                set.rejected.push(format!(
                    "key #{i}: carries the private member `{member}` (a published key set holds \
                     public keys only)"
                ));
                continue;
            }
            let parsed = serde_json::from_value::<Jwk>(raw)
                .map_err(|_| KeyError::new("not a JWK"))
                .and_then(|jwk| VerificationKey::from_jwk(&jwk, allow_symmetric));
            match parsed {
                Ok(key) => set.insert(key),
                Err(e) => set.rejected.push(format!("key #{i}: {e}")),
            }
        }
        Ok(set)
    }

    /// The key with id `kid`.
    pub fn get(&self, kid: &str) -> Option<&Arc<VerificationKey>> {
        self.by_kid.get(kid)
    }

    /// Keys without a key id.
    pub fn unnamed(&self) -> &[Arc<VerificationKey>] {
        &self.unnamed
    }

    /// The ids of the keys, sorted.
    pub fn key_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.by_kid.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// How many usable keys the set holds.
    pub fn len(&self) -> usize {
        self.by_kid.len() + self.unnamed.len()
    }

    /// Whether the set holds no usable key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Why keys of the source document were skipped (without key material).
    pub fn rejected(&self) -> &[String] {
        &self.rejected
    }

    /// The key to verify a token with `kid` and `alg`: by id when the token names one, otherwise
    /// the only key without an id that allows `alg` (several candidates: none is chosen).
    pub(crate) fn select(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Option<&Arc<VerificationKey>> {
        match kid {
            Some(kid) => self.get(kid),
            None => {
                let mut candidates = self
                    .unnamed
                    .iter()
                    .chain(self.by_kid.values())
                    .filter(|k| k.allows(alg));
                let first = candidates.next();
                if candidates.next().is_some() {
                    None
                } else {
                    first
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_encoding() {
        let mut out = Vec::new();
        der_uint(&[0x00, 0x80], &mut out);
        assert_eq!(out, [0x02, 0x02, 0x00, 0x80]);
        let mut out = Vec::new();
        der_uint(&[0x01, 0x00, 0x01], &mut out);
        assert_eq!(out, [0x02, 0x03, 0x01, 0x00, 0x01]);
        let mut out = Vec::new();
        der_len(300, &mut out);
        assert_eq!(out, [0x82, 0x01, 0x2c]);
        let der = rsa_public_key_der(&[0xff; 256], &[1, 0, 1]);
        assert_eq!(&der[..4], &[0x30, 0x82, 0x01, 0x0a]);
    }

    /// The JWK of the Ed25519 public key `x`.
    fn ed25519_jwk(x: &[u8]) -> Jwk {
        use base64::Engine;
        serde_json::from_value(serde_json::json!({
            "kty": "OKP", "crv": "Ed25519",
            "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(x)
        }))
        .unwrap()
    }

    /// A signing key from a fixed seed.
    fn ed25519_signer(seed: u8) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn ed25519_keys_a_signer_cannot_have_made_are_refused_at_load() {
        let honest = ed25519_signer(1).verifying_key();
        assert!(VerificationKey::from_jwk(&ed25519_jwk(honest.as_bytes()), false).is_ok());
        // A point of order 8: a "weak" key, for which one signature verifies almost any message.
        let mut order_8 = [0u8; 32];
        hex_into(&mut order_8, ORDER_8_POINT);
        let torsion = ed25519_dalek::VerifyingKey::from_bytes(&order_8).unwrap();
        assert!(torsion.is_weak(), "the fixture is a small-order point");
        let identity = {
            let mut y = [0u8; 32];
            y[0] = 1;
            y
        };
        // The honest key plus that point: not small order, but outside the prime-order subgroup.
        let mixed = (honest.to_edwards() + torsion.to_edwards()).compress();
        assert!(
            !ed25519_dalek::VerifyingKey::from_bytes(mixed.as_bytes())
                .unwrap()
                .is_weak()
        );
        // The identity's encoding with its sign bit set (x = 0 has no negative): non-canonical.
        let mut signed_identity = identity;
        signed_identity[31] |= 0x80;
        for (name, x) in [
            ("order 8", &order_8[..]),
            ("identity", &identity[..]),
            ("mixed order", mixed.as_bytes()),
            ("non-canonical", &signed_identity[..]),
            ("31 bytes", &honest.as_bytes()[..31]),
        ] {
            let refused = VerificationKey::from_jwk(&ed25519_jwk(x), false);
            assert!(refused.is_err(), "{name} accepted");
        }
        // Each check refuses on its own: the identity (which is in the prime-order subgroup) only
        // as weak, the mixed-order key only by the subgroup check, and the non-canonical
        // encodings (of small-order points: y = 0 written as p, x = 0 with a sign) by name.
        assert_eq!(
            ed25519_public(&identity).unwrap_err().to_string(),
            "the Ed25519 public key is not in the prime-order subgroup"
        );
        assert_eq!(
            ed25519_public(mixed.as_bytes()).unwrap_err().to_string(),
            "the Ed25519 public key is not in the prime-order subgroup"
        );
        let mut y_is_p = [0xffu8; 32];
        y_is_p[0] = 0xed;
        y_is_p[31] = 0x7f;
        assert!(
            ed25519_dalek::VerifyingKey::from_bytes(&y_is_p).is_ok(),
            "decodes (ZIP-215)"
        );
        for x in [y_is_p, signed_identity] {
            assert_eq!(
                ed25519_public(&x).unwrap_err().to_string(),
                "the Ed25519 public key is not canonically encoded"
            );
        }
    }

    /// The Ed25519 check accepts exactly the signatures `aws-lc-rs` accepts (the library that
    /// verified them before, and `jsonwebtoken`'s provider): valid ones, and none of their
    /// bit flips, `S + L`, or `R` with its sign bit flipped (the encoding of `−R`).
    #[test]
    fn ed25519_verification_agrees_with_aws_lc() {
        use ed25519_dalek::Signer as _;
        let mut accepted = 0;
        for seed in 1..=8u8 {
            let signer = ed25519_signer(seed);
            let public = signer.verifying_key();
            let key = VerificationKey::from_jwk(&ed25519_jwk(public.as_bytes()), false).unwrap();
            let lc = ParsedPublicKey::new(&lc::ED25519, public.as_bytes()).unwrap();
            for len in [0usize, 1, 64, 700] {
                let message = vec![seed ^ 0x5a; len];
                let good = signer.sign(&message).to_bytes().to_vec();
                let mut candidates = vec![good.clone(), good[..63].to_vec(), Vec::new()];
                for bit in (0..512).step_by(7) {
                    let mut flipped = good.clone();
                    flipped[bit / 8] ^= 1 << (bit % 8);
                    candidates.push(flipped);
                }
                let mut s_plus_l = good.clone();
                crate::ed25519::add_order(&mut s_plus_l[32..]);
                candidates.push(s_plus_l);
                let mut r_sign = good.clone();
                r_sign[31] ^= 0x80;
                candidates.push(r_sign);
                for signature in &candidates {
                    let ours = key.verify(Algorithm::EdDSA, &message, signature, "");
                    let theirs = lc.verify_sig(&message, signature).is_ok();
                    assert_eq!(ours, theirs, "seed {seed}, message of {len} bytes");
                    accepted += usize::from(ours);
                    assert!(
                        !ours || *signature == good,
                        "only the signature made verifies"
                    );
                }
                assert!(!key.verify(Algorithm::EdDSA, &[&message[..], b"x"].concat(), &good, ""));
            }
        }
        assert_eq!(accepted, 8 * 4, "every valid signature verifies");
    }

    /// Signatures with a chosen `R` (the signer's scalar makes `S` = r + k·a): the identity as
    /// `R` verifies in both libraries (cofactorless, no small-order-`R` rule), its two
    /// non-canonical encodings in neither, and a small-order `R` or one with a torsion part
    /// (valid only for a cofactored check) in neither.
    #[test]
    fn ed25519_edge_nonces_agree_with_aws_lc() {
        use curve25519_dalek::{
            constants::ED25519_BASEPOINT_POINT as B, edwards::CompressedEdwardsY, scalar::Scalar,
        };
        let signer = ed25519_signer(7);
        let (a, public) = (signer.to_scalar(), signer.verifying_key().to_bytes());
        let key = VerificationKey::from_jwk(&ed25519_jwk(&public), false).unwrap();
        let lc = ParsedPublicKey::new(&lc::ED25519, public).unwrap();
        let sign = |r: Scalar, r_bytes: [u8; 32], m: &[u8]| {
            let h = aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA512,
                &[&r_bytes[..], &public[..], m].concat(),
            );
            let k = Scalar::from_bytes_mod_order_wide(h.as_ref().try_into().unwrap());
            [&r_bytes[..], (r + k * a).as_bytes()].concat()
        };
        let mut order_8 = [0u8; 32];
        hex_into(&mut order_8, ORDER_8_POINT);
        let t = CompressedEdwardsY(order_8).decompress().unwrap();
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut identity_signed = identity;
        identity_signed[31] |= 0x80;
        let mut identity_y_p_plus_1 = [0xffu8; 32];
        identity_y_p_plus_1[0] = 0xee;
        identity_y_p_plus_1[31] = 0x7f;
        let r = Scalar::from(0x1234_5678_u64);
        for (name, sig, expected) in [
            ("R = identity", sign(Scalar::ZERO, identity, b"m"), true),
            (
                "R = identity, sign bit",
                sign(Scalar::ZERO, identity_signed, b"m"),
                false,
            ),
            (
                "R = identity, y = p + 1",
                sign(Scalar::ZERO, identity_y_p_plus_1, b"m"),
                false,
            ),
            ("R of order 8", sign(Scalar::ZERO, order_8, b"m"), false),
            (
                "R = rB + T",
                sign(r, (r * B + t).compress().to_bytes(), b"m"),
                false,
            ),
        ] {
            let theirs = lc.verify_sig(b"m", &sig).is_ok();
            assert_eq!(theirs, expected, "aws-lc on {name}");
            assert_eq!(
                key.verify(Algorithm::EdDSA, b"m", &sig, ""),
                theirs,
                "{name}"
            );
            let mut longer = sig.clone();
            longer.push(0);
            assert!(
                !key.verify(Algorithm::EdDSA, b"m", &longer, ""),
                "{name} + 1 byte"
            );
        }
    }

    /// The encoding of a point of order 8.
    const ORDER_8_POINT: &str = "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a";

    fn hex_into(out: &mut [u8], hex: &str) {
        for (o, pair) in out.iter_mut().zip(hex.as_bytes().chunks(2)) {
            *o = u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap();
        }
    }

    #[test]
    fn bad_public_keys_are_refused_at_load() {
        let jwk: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "x": "AAAA"
        }))
        .unwrap();
        assert!(VerificationKey::from_jwk(&jwk, false).is_err());
        let oct: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "oct", "k": "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"
        }))
        .unwrap();
        assert!(
            VerificationKey::from_jwk(&oct, false).is_err(),
            "no symmetric keys from remote sets"
        );
        assert!(VerificationKey::from_jwk(&oct, true).is_ok());
    }

    /// A key set is published: a key listed with a private member is one anyone can sign with.
    /// Skipped (with its reason), whatever the member, in remote and local sets alike; the
    /// same key without it loads.
    #[test]
    fn keys_with_private_members_are_skipped() {
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let signer = ed25519_signer(3);
        let public = serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "kid": "k1",
            "x": b64(signer.verifying_key().as_bytes())
        });
        for member in ["d", "p", "q", "dp", "dq", "qi", "oth"] {
            let mut leaked = public.clone();
            leaked[member] = serde_json::json!(b64(signer.as_bytes()));
            let doc = serde_json::json!({ "keys": [leaked, public] }).to_string();
            for allow_symmetric in [false, true] {
                let set = KeySet::from_jwks_json(doc.as_bytes(), allow_symmetric).unwrap();
                assert_eq!(set.len(), 1, "{member}");
                assert_eq!(set.rejected().len(), 1, "{member}");
                assert!(
                    set.rejected()[0].contains(&format!("`{member}`")),
                    "{member}"
                );
            }
            let alone = serde_json::json!({ "keys": [leaked] }).to_string();
            assert!(
                KeySet::from_jwks_json(alone.as_bytes(), false)
                    .unwrap()
                    .is_empty()
            );
        }
    }
}
