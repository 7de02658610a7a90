//! Published test vectors: RFC 7515 appendix A and RFC 8037 appendix A, kept as fixtures under
//! `tests/fixtures/authn/`.

use std::{str::FromStr, sync::Arc};

use jsonwebtoken::{Algorithm, jwk::Jwk};

use super::{AuthnError, IssuerConfig, JwtAuthenticator, KeySet, KeyStore, VerificationKey, jws};
use crate::{FixedClock, Timestamp};

fn fixture(name: &str) -> serde_json::Value {
    let path = format!(
        "{}/../tests/fixtures/authn/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Verifies the vector's signature with its key; returns the verdict.
fn verifies(v: &serde_json::Value, token: &str) -> bool {
    let jwk: Jwk = serde_json::from_value(v["jwk"].clone()).unwrap();
    let key = VerificationKey::from_jwk(&jwk, true).unwrap();
    let alg = Algorithm::from_str(v["alg"].as_str().unwrap()).unwrap();
    let compact = jws::parse_compact(token).unwrap();
    key.verify(
        alg,
        compact.signing_input.as_bytes(),
        &compact.signature,
        compact.signature_b64,
    )
}

fn tampered(token: &str) -> String {
    // Flip one signature character to another valid one; keep canonical base64url.
    let (head, sig) = token.rsplit_once('.').unwrap();
    let mut sig: Vec<char> = sig.chars().collect();
    sig[3] = if sig[3] == 'A' { 'B' } else { 'A' };
    format!("{head}.{}", sig.into_iter().collect::<String>())
}

#[test]
fn rfc7515_a1_hs256() {
    let v = fixture("rfc7515-a1-hs256.json");
    let token = v["token"].as_str().unwrap();
    assert!(verifies(&v, token));
    assert!(!verifies(&v, &tampered(token)));
}

#[test]
fn rfc7515_a2_rs256() {
    let v = fixture("rfc7515-a2-rs256.json");
    let token = v["token"].as_str().unwrap();
    assert!(verifies(&v, token));
    assert!(!verifies(&v, &tampered(token)));
}

#[test]
fn rfc7515_a3_es256() {
    let v = fixture("rfc7515-a3-es256.json");
    let token = v["token"].as_str().unwrap();
    assert!(verifies(&v, token));
    assert!(!verifies(&v, &tampered(token)));
}

#[test]
fn rfc8037_a4_ed25519() {
    let v = fixture("rfc8037-a4-ed25519.json");
    let token = v["token"].as_str().unwrap();
    assert!(verifies(&v, token));
    assert!(!verifies(&v, &tampered(token)));
    let compact = jws::parse_compact(token).unwrap();
    assert_eq!(
        compact.payload,
        v["payload_text"].as_str().unwrap().as_bytes()
    );
}

#[tokio::test]
async fn rfc7515_vectors_through_the_authenticator() {
    // The vectors are signed correctly but have no `aud` and expired in 2011: the full
    // validator gets past the signature and refuses them on the claims.
    let clock = FixedClock::new(Timestamp::from_unix_seconds(1_300_819_000));
    for (file, alg) in [
        ("rfc7515-a1-hs256.json", Algorithm::HS256),
        ("rfc7515-a2-rs256.json", Algorithm::RS256),
        ("rfc7515-a3-es256.json", Algorithm::ES256),
    ] {
        let v = fixture(file);
        let jwk: Jwk = serde_json::from_value(v["jwk"].clone()).unwrap();
        let key = VerificationKey::from_jwk(&jwk, true).unwrap();
        let store = KeyStore::fixed(KeySet::from_keys([key]), Arc::new(clock.clone()));
        let authn = JwtAuthenticator::builder()
            .issuer(
                IssuerConfig::new("joe", ["api"]).with_algorithms([alg]),
                store,
            )
            .clock(Arc::new(clock.clone()))
            .build()
            .unwrap();
        let token = v["token"].as_str().unwrap();
        let shown = format!("{authn:?}");
        assert!(
            !shown.contains(v["jwk"]["k"].as_str().unwrap_or("x-none")),
            "{shown}"
        );
        assert!(!shown.contains("[1, ") && !shown.contains("35,"), "{shown}");
        assert_eq!(
            authn.verify(token).await,
            Err(AuthnError::Invalid("the token has no audience")),
            "{file}"
        );
        assert_eq!(
            authn.verify(&tampered(token)).await,
            Err(AuthnError::Invalid("the token's signature is not valid")),
            "{file}"
        );
    }
}

#[tokio::test]
async fn rfc7515_a5_unsecured_is_refused() {
    let v = fixture("rfc7515-a5-none.json");
    let clock = FixedClock::new(Timestamp::from_unix_seconds(1_300_819_000));
    let store = KeyStore::fixed(KeySet::new(), Arc::new(clock.clone()));
    let authn = JwtAuthenticator::builder()
        .issuer(IssuerConfig::new("joe", ["api"]), store)
        .clock(Arc::new(clock))
        .build()
        .unwrap();
    assert!(authn.verify(v["token"].as_str().unwrap()).await.is_err());
    // With a dummy signature segment it reaches the header check, which names the reason.
    let with_sig = format!("{}c2ln", v["token"].as_str().unwrap());
    assert_eq!(
        authn.verify(&with_sig).await,
        Err(AuthnError::Invalid("unsigned tokens are not accepted"))
    );
}
