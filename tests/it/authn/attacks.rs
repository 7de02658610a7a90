//! The attack suite: one test per attack; every one must be refused.

use std::sync::Arc;

use aaa::{
    AuthnError, FixedClock, IssuerConfig, JwtAuthenticator, KeySet, KeyStore, authn::Algorithm,
};
use jsonwebtoken::EncodingKey;
use serde_json::json;

use super::{
    AUDIENCE, ISSUER, NOW, b64, claims, clock, fixed_authenticator, fixture, issuer, jwk_key,
    sign_raw, signing_key, token,
};

fn authn() -> (JwtAuthenticator, FixedClock) {
    let c = clock();
    (fixed_authenticator(issuer(), &c), c)
}

async fn refused(authn: &JwtAuthenticator, token: &str) -> AuthnError {
    match authn.verify(token).await {
        Ok(p) => panic!("accepted a bad token for {}", p.id),
        Err(e) => e,
    }
}

fn es256(header: &serde_json::Value, claims: &serde_json::Value) -> String {
    sign_raw(
        &header.to_string(),
        &claims.to_string(),
        &signing_key("p256", Algorithm::ES256),
        Algorithm::ES256,
    )
}

#[tokio::test]
async fn valid_tokens_of_every_algorithm_pass() {
    let (a, _) = authn();
    for (name, kid, alg) in [
        ("rsa2048", "rsa-1", Algorithm::RS256),
        ("p256", "ec-256", Algorithm::ES256),
        ("p384", "ec-384", Algorithm::ES384),
        ("ed25519", "ed-1", Algorithm::EdDSA),
    ] {
        let p = a.verify(&token(name, kid, alg, &claims())).await.unwrap();
        assert_eq!(p.id, "alice", "{alg:?}");
        assert_eq!(p.issuer, ISSUER);
        assert!(p.has_scope("orders:write"));
        assert!(p.roles.contains("clerk"));
        assert_eq!(
            p.attributes.get("department"),
            Some(&aaa::Value::from("sales"))
        );
        assert_eq!(p.auth.expires_at.unwrap().unix_seconds(), NOW + 600);
        assert!(matches!(p.auth.credential, aaa::CredentialRef::Sha256(_)));
    }
}

#[tokio::test]
async fn rsa_jwk_without_alg_allows_pkcs1_and_pss() {
    let c = clock();
    let mut jwk: serde_json::Value =
        serde_json::from_slice(&fixture("rsa2048.pub.jwk.json")).unwrap();
    jwk.as_object_mut().unwrap().remove("alg");
    let key = aaa::VerificationKey::from_jwk(&serde_json::from_value(jwk).unwrap(), false).unwrap();
    let a = JwtAuthenticator::builder()
        .issuer(
            issuer(),
            KeyStore::fixed(KeySet::from_keys([key]), Arc::new(c.clone())),
        )
        .clock(Arc::new(c))
        .build()
        .unwrap();
    for alg in [
        Algorithm::RS256,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
    ] {
        a.verify(&token("rsa2048", "rsa-1", alg, &claims()))
            .await
            .unwrap();
    }
    // The fixture's JWK names RS256: PS256 is then refused.
    let (strict, _) = authn();
    refused(
        &strict,
        &token("rsa2048", "rsa-1", Algorithm::PS256, &claims()),
    )
    .await;
}

#[tokio::test]
async fn alg_none_in_any_spelling() {
    let (a, _) = authn();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "kid": "ec-256"});
        let unsigned = format!(
            "{}.{}.",
            b64(header.to_string().as_bytes()),
            b64(claims().to_string().as_bytes())
        );
        refused(&a, &unsigned).await;
        // Even with something in the signature slot.
        let with_sig = format!("{unsigned}c2lnbmF0dXJl");
        assert_eq!(
            refused(&a, &with_sig).await,
            AuthnError::Invalid("unsigned tokens are not accepted"),
            "{alg}"
        );
    }
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key() {
    // Algorithm confusion: the attacker uses the issuer's RSA public key as an HMAC secret.
    let secret = fixture("rsa2048.pub.pem");
    let forged = sign_raw(
        &json!({"alg": "HS256", "kid": "rsa-1"}).to_string(),
        &claims().to_string(),
        &EncodingKey::from_secret(&secret),
        Algorithm::HS256,
    );
    let (a, c) = authn();
    assert_eq!(
        refused(&a, &forged).await,
        AuthnError::Invalid("the token's algorithm is not accepted")
    );
    // Even an issuer that allows HS256 refuses it: the RSA key does not allow HMAC.
    let lax = fixed_authenticator(
        issuer().with_algorithms([Algorithm::HS256, Algorithm::RS256]),
        &c,
    );
    assert_eq!(
        refused(&lax, &forged).await,
        AuthnError::Invalid("the token's signature is not valid")
    );
}

#[tokio::test]
async fn kid_path_traversal() {
    let (a, _) = authn();
    let t = es256(
        &json!({"alg": "ES256", "kid": "../../../../etc/passwd"}),
        &claims(),
    );
    assert_eq!(
        refused(&a, &t).await,
        AuthnError::Invalid("unknown signing key")
    );
}

#[tokio::test]
async fn kid_of_64_kib() {
    let c = clock();
    let keys = KeySet::from_keys([jwk_key("p256")]);
    let a = JwtAuthenticator::builder()
        .issuer(issuer(), KeyStore::fixed(keys, Arc::new(c.clone())))
        .clock(Arc::new(c))
        .max_token_bytes(1 << 20)
        .build()
        .unwrap();
    let t = es256(
        &json!({"alg": "ES256", "kid": "k".repeat(64 * 1024)}),
        &claims(),
    );
    assert_eq!(
        refused(&a, &t).await,
        AuthnError::Invalid("the key id is too long")
    );
    // With the default cap the token is refused before decoding.
    let (d, _) = authn();
    assert_eq!(
        refused(&d, &t).await,
        AuthnError::Invalid("the token is too long")
    );
}

#[tokio::test]
async fn jku_and_x5u_are_never_contacted() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/keys", listener.local_addr().unwrap());
    let (a, _) = authn();
    // Signed by the attacker, pointing at the attacker's "key server".
    let t = sign_raw(
        &json!({"alg": "ES256", "kid": "attacker", "jku": url, "x5u": url}).to_string(),
        &claims().to_string(),
        &signing_key("p256-attacker", Algorithm::ES256),
        Algorithm::ES256,
    );
    refused(&a, &t).await;
    // A legitimately signed token with jku/x5u is verified with the issuer's keys, ignoring them.
    let ok = es256(
        &json!({"alg": "ES256", "kid": "ec-256", "jku": url, "x5u": url}),
        &claims(),
    );
    assert!(a.verify(&ok).await.is_ok());
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the jku/x5u listener was contacted: {other:?}"),
    }
}

#[tokio::test]
async fn embedded_jwk_is_not_trusted() {
    let (a, _) = authn();
    let attacker: serde_json::Value =
        serde_json::from_slice(&fixture("p256-attacker.pub.jwk.json")).unwrap();
    for header in [
        json!({"alg": "ES256", "jwk": attacker}),
        json!({"alg": "ES256", "kid": "attacker", "jwk": attacker}),
        json!({"alg": "ES256", "kid": "ec-256", "jwk": attacker}),
    ] {
        let t = sign_raw(
            &header.to_string(),
            &claims().to_string(),
            &signing_key("p256-attacker", Algorithm::ES256),
            Algorithm::ES256,
        );
        refused(&a, &t).await;
    }
}

#[tokio::test]
async fn crit_header_not_understood() {
    let (a, _) = authn();
    let t = es256(
        &json!({"alg": "ES256", "kid": "ec-256", "crit": ["exp"], "exp": NOW + 600}),
        &claims(),
    );
    assert_eq!(
        refused(&a, &t).await,
        AuthnError::Invalid("the token has critical headers not understood")
    );
}

/// Registered header parameters aaa ignores must still have their types (found by the JWT
/// differential test: jsonwebtoken refused `"jku": 5`, aaa accepted it); well-typed ones are
/// ignored as before.
#[tokio::test]
async fn registered_header_parameters_of_the_wrong_type_are_refused() {
    let (a, _) = authn();
    for (name, value) in [
        ("jku", json!(5)),
        ("x5u", json!(["https://x"])),
        ("jwk", json!("x")),
        ("x5c", json!("AAAA")),
        ("x5c", json!([1])),
        ("x5t", json!(null)),
        ("x5t#S256", json!({})),
        ("cty", json!(false)),
        ("url", json!(5)),
        ("nonce", json!({})),
    ] {
        let mut header = json!({"alg": "ES256", "kid": "ec-256"});
        header[name] = value.clone();
        assert_eq!(
            refused(&a, &es256(&header, &claims())).await,
            AuthnError::Invalid("a registered header parameter has the wrong type"),
            "{name}: {value}"
        );
    }
    let header =
        json!({"alg": "ES256", "kid": "ec-256", "cty": "JWT", "x5c": ["AAAA"], "x5t": "abc"});
    assert!(a.verify(&es256(&header, &claims())).await.is_ok());
}

#[tokio::test]
async fn ecdsa_signature_of_zeros() {
    // CVE-2022-21449 ("psychic signatures"): r = s = 0 must never verify.
    let (a, _) = authn();
    let header = json!({"alg": "ES256", "kid": "ec-256"});
    let t = format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims().to_string().as_bytes()),
        b64(&[0u8; 64])
    );
    assert_eq!(
        refused(&a, &t).await,
        AuthnError::Invalid("the token's signature is not valid")
    );
}

/// DER-encodes a fixed-size `r || s` ECDSA signature.
fn der(fixed: &[u8]) -> Vec<u8> {
    fn int(x: &[u8]) -> Vec<u8> {
        let mut x: Vec<u8> = x.iter().copied().skip_while(|b| *b == 0).collect();
        if x.first().is_some_and(|b| b & 0x80 != 0) {
            x.insert(0, 0);
        }
        let mut out = vec![0x02, x.len() as u8];
        out.extend(x);
        out
    }
    let (r, s) = fixed.split_at(fixed.len() / 2);
    let body = [int(r), int(s)].concat();
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

#[tokio::test]
async fn der_encoded_es256_signature() {
    let (a, _) = authn();
    let good = es256(&json!({"alg": "ES256", "kid": "ec-256"}), &claims());
    assert!(a.verify(&good).await.is_ok());
    let (input, sig) = good.rsplit_once('.').unwrap();
    let fixed =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig).unwrap();
    let t = format!("{input}.{}", b64(&der(&fixed)));
    assert_eq!(
        refused(&a, &t).await,
        AuthnError::Invalid("the token's signature is not valid")
    );
}

#[tokio::test]
async fn expired_token() {
    let (a, c) = authn();
    let t = token("p256", "ec-256", Algorithm::ES256, &claims());
    c.advance_seconds(600 + 59);
    assert!(a.verify(&t).await.is_ok(), "within the 60 s leeway");
    c.advance_seconds(1);
    assert_eq!(
        refused(&a, &t).await,
        AuthnError::Invalid("the token has expired")
    );
}

#[tokio::test]
async fn future_nbf() {
    let (a, _) = authn();
    let mut cl = claims();
    cl["nbf"] = json!(NOW + 61);
    let t = token("p256", "ec-256", Algorithm::ES256, &cl);
    assert_eq!(
        refused(&a, &t).await,
        AuthnError::Invalid("the token is not valid yet")
    );
}

#[tokio::test]
async fn aud_absent() {
    let (a, _) = authn();
    let mut cl = claims();
    cl.as_object_mut().unwrap().remove("aud");
    let t = token("p256", "ec-256", Algorithm::ES256, &cl);
    assert_eq!(
        refused(&a, &t).await,
        AuthnError::Invalid("the token has no audience")
    );
}

#[tokio::test]
async fn aud_empty_array() {
    let (a, _) = authn();
    let mut cl = claims();
    cl["aud"] = json!([]);
    let t = token("p256", "ec-256", Algorithm::ES256, &cl);
    refused(&a, &t).await;
    // An array with the right audience among others is fine; a wrong one is not.
    cl["aud"] = json!(["other", AUDIENCE]);
    assert!(
        a.verify(&token("p256", "ec-256", Algorithm::ES256, &cl))
            .await
            .is_ok()
    );
    cl["aud"] = json!(["other"]);
    refused(&a, &token("p256", "ec-256", Algorithm::ES256, &cl)).await;
}

#[tokio::test]
async fn aud_number() {
    let (a, _) = authn();
    let mut cl = claims();
    cl["aud"] = json!(42);
    let t = token("p256", "ec-256", Algorithm::ES256, &cl);
    refused(&a, &t).await;
}

#[tokio::test]
async fn iss_with_evil_suffix() {
    let (a, _) = authn();
    let mut cl = claims();
    cl["iss"] = json!(format!("{ISSUER}.evil"));
    let t = token("p256", "ec-256", Algorithm::ES256, &cl);
    assert_eq!(
        refused(&a, &t).await,
        AuthnError::Invalid("the token's issuer is not trusted")
    );
}

#[tokio::test]
async fn issuer_b_key_claiming_issuer_a() {
    let c = clock();
    let a_keys = KeySet::from_keys([jwk_key("rsa2048")]);
    let b_keys = KeySet::from_keys([jwk_key("rsa2048-b")]);
    let authn = JwtAuthenticator::builder()
        .issuer(issuer(), KeyStore::fixed(a_keys, Arc::new(c.clone())))
        .issuer(
            IssuerConfig::new("https://partner.test", [AUDIENCE]),
            KeyStore::fixed(b_keys, Arc::new(c.clone())),
        )
        .clock(Arc::new(c))
        .build()
        .unwrap();
    let mut b_claims = claims();
    b_claims["iss"] = json!("https://partner.test");
    assert!(
        authn
            .verify(&token("rsa2048-b", "rsa-b", Algorithm::RS256, &b_claims))
            .await
            .is_ok()
    );
    // B's key, claiming to be A: A's keys are the only ones consulted.
    let t = token("rsa2048-b", "rsa-b", Algorithm::RS256, &claims());
    assert_eq!(
        refused(&authn, &t).await,
        AuthnError::Invalid("unknown signing key")
    );
    // Even naming A's kid, B's signature does not verify.
    let t = token("rsa2048-b", "rsa-1", Algorithm::RS256, &claims());
    assert_eq!(
        refused(&authn, &t).await,
        AuthnError::Invalid("the token's signature is not valid")
    );
}

#[tokio::test]
async fn id_token_where_at_jwt_required() {
    let c = clock();
    let mut config = issuer();
    config.require_access_token_type = true;
    let a = fixed_authenticator(config, &c);
    let id_token = sign_raw(
        &json!({"alg": "ES256", "kid": "ec-256", "typ": "JWT"}).to_string(),
        &claims().to_string(),
        &signing_key("p256", Algorithm::ES256),
        Algorithm::ES256,
    );
    assert_eq!(
        refused(&a, &id_token).await,
        AuthnError::Invalid("the token is not an access token (typ at+jwt)")
    );
    assert!(
        a.verify(&token("p256", "ec-256", Algorithm::ES256, &claims()))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn five_segment_jwe() {
    let (a, _) = authn();
    let t = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a2V5.aXY.Y2lwaGVy.dGFn";
    assert_eq!(
        refused(&a, t).await,
        AuthnError::Invalid("encrypted tokens are not accepted")
    );
}

#[tokio::test]
async fn json_serialization() {
    let (a, _) = authn();
    let good = token("p256", "ec-256", Algorithm::ES256, &claims());
    let parts: Vec<&str> = good.split('.').collect();
    let t = json!({"payload": parts[1], "protected": parts[0], "signature": parts[2]}).to_string();
    assert_eq!(
        refused(&a, &t).await,
        AuthnError::Invalid("the JSON serialization of tokens is not accepted")
    );
}

#[tokio::test]
async fn one_mib_token() {
    let (a, _) = authn();
    let mut cl = claims();
    cl["pad"] = json!("x".repeat(1 << 20));
    let t = token("p256", "ec-256", Algorithm::ES256, &cl);
    assert_eq!(
        refused(&a, &t).await,
        AuthnError::Invalid("the token is too long")
    );
}

#[tokio::test]
async fn padded_base64url() {
    let (a, _) = authn();
    // A payload whose encoding needs padding, then padded.
    let mut cl = claims();
    cl["x"] = json!("ab");
    let mut t = token("p256", "ec-256", Algorithm::ES256, &cl);
    while t.split('.').nth(1).unwrap().len().is_multiple_of(4) {
        cl["x"] = json!(format!("{}a", cl["x"].as_str().unwrap()));
        t = token("p256", "ec-256", Algorithm::ES256, &cl);
    }
    assert!(a.verify(&t).await.is_ok());
    let parts: Vec<&str> = t.split('.').collect();
    let pad = "=".repeat((4 - parts[1].len() % 4) % 4);
    let padded = format!("{}.{}{pad}.{}", parts[0], parts[1], parts[2]);
    assert_eq!(
        refused(&a, &padded).await,
        AuthnError::Invalid("the token is not canonical base64url")
    );
}

#[tokio::test]
async fn non_canonical_base64url() {
    let (a, _) = authn();
    let t = token("p256", "ec-256", Algorithm::ES256, &claims());
    // The signature (64 bytes) ends in a character carrying 4 unused bits: setting one of them
    // keeps the decoded bytes but changes the spelling.
    let (input, sig) = t.rsplit_once('.').unwrap();
    let last = sig.chars().last().unwrap();
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = ALPHABET.find(last).unwrap();
    let other = ALPHABET.chars().nth(idx ^ 1).unwrap();
    let twisted = format!("{input}.{}{other}", &sig[..sig.len() - 1]);
    assert_eq!(
        refused(&a, &twisted).await,
        AuthnError::Invalid("the token is not canonical base64url")
    );
}

#[tokio::test]
async fn duplicate_alg_member() {
    let (a, _) = authn();
    // A parser keeping the last member would read "none"; one keeping the first, ES256.
    let header = r#"{"alg":"ES256","kid":"ec-256","alg":"none"}"#;
    let t = sign_raw(
        header,
        &claims().to_string(),
        &signing_key("p256", Algorithm::ES256),
        Algorithm::ES256,
    );
    assert_eq!(
        refused(&a, &t).await,
        AuthnError::Invalid("the token header is not a JSON object")
    );
}

#[tokio::test]
async fn wrongly_typed_registered_claims() {
    let (a, _) = authn();
    for (name, value) in [
        ("exp", json!("1900000000")),
        ("nbf", json!(true)),
        ("iat", json!([1])),
        ("sub", json!(7)),
        ("iss", json!([ISSUER])),
        ("jti", json!({})),
    ] {
        let mut cl = claims();
        cl[name] = value;
        refused(&a, &token("p256", "ec-256", Algorithm::ES256, &cl)).await;
    }
}

#[tokio::test]
async fn lifetime_cap() {
    let c = clock();
    let mut config = issuer();
    config.max_lifetime = Some(std::time::Duration::from_secs(300));
    let a = fixed_authenticator(config, &c);
    assert_eq!(
        refused(&a, &token("p256", "ec-256", Algorithm::ES256, &claims())).await,
        AuthnError::Invalid("the token's lifetime is too long")
    );
}

#[tokio::test]
async fn every_single_character_change_is_refused() {
    // One token, one spelling: changing any one character of a valid token (to another
    // base64url character, or to a character outside the alphabet) never yields an accepted
    // token, and never panics.
    let (a, _) = authn();
    let good = token("ed25519", "ed-1", Algorithm::EdDSA, &claims());
    assert!(a.verify(&good).await.is_ok());
    let bytes = good.as_bytes();
    for i in 0..bytes.len() {
        for replacement in [b'A', b'_', b'=', b'.', b'*'] {
            if bytes[i] == replacement {
                continue;
            }
            let mut mutated = bytes.to_vec();
            mutated[i] = replacement;
            let mutated = String::from_utf8(mutated).unwrap();
            assert!(
                a.verify(&mutated).await.is_err(),
                "position {i} -> {}",
                replacement as char
            );
        }
    }
}

/// `authenticated_at` is when the user signed in: the OIDC `auth_time` when the token has one (a
/// refreshed token gets a new `iat`, not a new sign-in), else `iat`. An `auth_time` that is not
/// a number, or lies in the future, refuses the token like a bad `iat` (raised by the
/// authentication review).
#[tokio::test]
async fn authenticated_at_is_the_sign_in_time() {
    let (a, _) = authn();
    let with = |extra: serde_json::Value| {
        let mut c = claims();
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        token("p256", "ec-256", Algorithm::ES256, &c)
    };
    let at = |p: &aaa::Principal| p.auth.authenticated_at.unix_seconds();
    let signed_in = a
        .verify(&with(json!({"auth_time": NOW - 3600})))
        .await
        .unwrap();
    assert_eq!(at(&signed_in), NOW - 3600);
    let plain = a.verify(&with(json!({}))).await.unwrap();
    assert_eq!(at(&plain), NOW - 10, "iat");
    assert_eq!(
        a.verify(&with(json!({"auth_time": "yesterday"})))
            .await
            .unwrap_err(),
        AuthnError::Invalid("the auth_time claim is not a number")
    );
    assert_eq!(
        a.verify(&with(json!({"auth_time": NOW + 3600})))
            .await
            .unwrap_err(),
        AuthnError::Invalid("the token's user authenticated in the future")
    );
}
