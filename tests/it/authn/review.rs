//! Authentication under attack, from an adversarial review (2026-12-02).
//!
//! The tests not named `probe_*` failed before their fixes (quoted XFCC values, concurrent and
//! reloaded API-key revocations, the API-key header in `Debug`, ECDSA's second signature
//! spelling, short RSA PEM keys, a key set without a usable key). `probe_*` tests pin down
//! attacks that were tried and found refused.

use std::sync::{Arc, Barrier};

use aaa::{
    ApiKeyAuthenticator, ApiKeyConfig, ApiKeyRecord, Authenticator, AuthnError,
    ForwardedIdentityAuthenticator, ForwardedIdentityConfig, Identity, JwtAuthenticator, KeySet,
    KeyStore, authn::Algorithm, http::RequestFacts,
};
use serde_json::json;

use super::{
    NOW, authenticator_with, b64, claims, clock, fixed_authenticator, fixture, issuer, jwk_key,
    sign_raw, signing_key, token,
};

// ---------------------------------------------------------------------------------------------
// Forwarded client certificates (XFCC)
// ---------------------------------------------------------------------------------------------

fn xfcc_authn() -> ForwardedIdentityAuthenticator {
    ForwardedIdentityAuthenticator::new(
        ForwardedIdentityConfig::new(["10.0.0.0/8".parse().unwrap()]).with_trust_domains(["prod"]),
        Arc::new(clock()),
    )
}

fn xfcc_request(value: &str) -> RequestFacts {
    let mut h = http::HeaderMap::new();
    h.insert(
        "x-forwarded-client-cert",
        http::HeaderValue::from_str(value).unwrap(),
    );
    RequestFacts::new(http::Method::GET, "/")
        .with_headers(h)
        .with_peer("10.1.2.3:4444".parse().unwrap())
}

/// Envoy quotes an XFCC value that contains `,`, `;` or `=`. A client certificate without a URI
/// SAN but with a DNS SAN (or any other forwarded field: Subject, DNS, ...) whose text is
/// `a;URI=spiffe://prod/ns/admin/sa/root;b=c` is forwarded by a correctly configured Envoy as
///
///   Hash=…;DNS="a;URI=spiffe://prod/ns/admin/sa/root;b=c"
///
/// That element has NO `URI` key: it must be refused ("exactly one uri"). The parser splits on
/// `;` without honouring the quotes and authenticates the caller as the injected SPIFFE ID.
#[tokio::test]
async fn xfcc_semicolon_inside_a_quoted_value_injects_no_spiffe_id() {
    let a = xfcc_authn();
    let header = r#"Hash=0123abcd;DNS="a;URI=spiffe://prod/ns/admin/sa/root;b=c""#;
    let got = a.authenticate(&xfcc_request(header)).await;
    if let Ok(Identity::Authenticated(p)) = &got {
        panic!(
            "a quoted DNS value was parsed as a URI: authenticated as {}",
            p.id
        );
    }
    assert!(got.is_err(), "no URI in the element: refused, got {got:?}");
}

/// The other half of the same parser bug: a legitimate single element whose quoted Subject
/// contains commas (Envoy `set_current_client_cert_details: {subject: true, uri: true}`; every
/// RFC 2253 subject with more than one RDN has commas) is refused as "more than one element".
#[tokio::test]
async fn xfcc_comma_inside_a_quoted_subject_is_not_a_second_element() {
    let a = xfcc_authn();
    let header =
        r#"Hash=0123abcd;Subject="CN=worker,OU=jobs,O=prod";URI=spiffe://prod/ns/b/sa/worker"#;
    let got = a.authenticate(&xfcc_request(header)).await;
    match got {
        Ok(Identity::Authenticated(p)) => assert_eq!(p.id, "spiffe://prod/ns/b/sa/worker"),
        other => panic!("one element with a quoted subject was refused: {other:?}"),
    }
}

/// Probe: two elements, two headers, untrusted peer, non-SPIFFE URIs are all refused/ignored.
#[tokio::test]
async fn probe_xfcc_spoofing_is_refused() {
    let a = xfcc_authn();
    for bad in [
        "URI=spiffe://prod/a,URI=spiffe://prod/b",
        r#"URI="spiffe://prod/a;URI=spiffe://prod/b""#,
        "URI=spiffe://PROD/a",
        "URI=spiffe://prod/a%2f..",
        "URI=spiffe://prod/a?x",
        "URI=spiffe://prod/a#x",
        "URI=spiffe://evil.prod/a",
    ] {
        assert!(a.authenticate(&xfcc_request(bad)).await.is_err(), "{bad}");
    }
    // Two headers from a trusted proxy.
    let mut h = http::HeaderMap::new();
    h.append(
        "x-forwarded-client-cert",
        "URI=spiffe://prod/a".parse().unwrap(),
    );
    h.append(
        "x-forwarded-client-cert",
        "URI=spiffe://prod/b".parse().unwrap(),
    );
    let two = RequestFacts::new(http::Method::GET, "/")
        .with_headers(h)
        .with_peer("10.0.0.1:1".parse().unwrap());
    assert_eq!(
        a.authenticate(&two).await,
        Err(AuthnError::MultipleCredentials)
    );
    // An IPv4-mapped peer outside the range stays untrusted; one inside is trusted.
    let mut h = http::HeaderMap::new();
    h.insert(
        "x-forwarded-client-cert",
        "URI=spiffe://prod/a".parse().unwrap(),
    );
    let outside = RequestFacts::new(http::Method::GET, "/")
        .with_headers(h.clone())
        .with_peer("[::ffff:192.0.2.1]:1".parse().unwrap());
    assert_eq!(a.authenticate(&outside).await, Ok(Identity::Anonymous));
    let inside = RequestFacts::new(http::Method::GET, "/")
        .with_headers(h)
        .with_peer("[::ffff:10.0.0.1]:1".parse().unwrap());
    assert!(a.authenticate(&inside).await.unwrap().is_authenticated());
}

/// Probe: what Envoy (SANITIZE_SET, `set_current_client_cert_details` with subject, uri, dns,
/// cert, chain) actually writes is accepted; Envoy never quotes URI or DNS values and writes the
/// subject quoted with RFC 2253 escapes.
#[tokio::test]
async fn probe_xfcc_as_envoy_writes_it() {
    let a = xfcc_authn();
    let envoy = concat!(
        "By=spiffe://prod/ns/a/sa/api;",
        "Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;",
        "Cert=\"-----BEGIN%20CERTIFICATE-----%0AMIIB%2Bw%3D%3D%0A-----END%20CERTIFICATE-----%0A\";",
        "Chain=\"-----BEGIN%20CERTIFICATE-----%0AMIIB%0A-----END%20CERTIFICATE-----%0A\";",
        r#"Subject="CN=worker\, inc.,OU=a\+b,O=\"q\",L=x\\y";"#,
        "URI=spiffe://prod/ns/b/sa/worker;",
        "DNS=worker.prod.svc;DNS=*.prod.svc"
    );
    match a.authenticate(&xfcc_request(envoy)).await {
        Ok(Identity::Authenticated(p)) => assert_eq!(p.id, "spiffe://prod/ns/b/sa/worker"),
        other => panic!("Envoy's header was refused: {other:?}"),
    }
    // A certificate without a URI SAN: Envoy writes `URI=`; a DNS SAN holding `;URI=` (Envoy
    // writes DNS values raw) then makes two URIs: refused.
    for bad in [
        "Hash=ab;URI=;DNS=a;URI=spiffe://prod/ns/admin/sa/root",
        "Hash=ab;URI=",
    ] {
        assert!(a.authenticate(&xfcc_request(bad)).await.is_err(), "{bad}");
    }
}

/// Envoy never quotes a URI (it writes the SAN raw), so a quoted URI value can only come from a
/// URI SAN that itself starts with `"`, whose escapes are the certificate's text:
/// `"spiffe://prod/ns/adm\in/sa/ro\ot"` (not a SPIFFE ID) authenticated as
/// `spiffe://prod/ns/admin/sa/root` once quoted values were unescaped.
#[tokio::test]
async fn xfcc_escaped_quoted_uri_is_not_another_spiffe_id() {
    let a = xfcc_authn();
    let got = a
        .authenticate(&xfcc_request(
            r#"Hash=ab;URI="spiffe://prod/ns/adm\in/sa/ro\ot""#,
        ))
        .await;
    assert!(
        got.is_err(),
        "a URI SAN spelled with backslashes authenticated as another SPIFFE ID: {got:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// API keys
// ---------------------------------------------------------------------------------------------

const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQ";

fn many_keys(n: usize) -> Vec<ApiKeyRecord> {
    (0..n)
        .map(|i| ApiKeyRecord::new(format!("k{i}"), format!("owner-{i}"), SECRET))
        .collect()
}

/// Two revocations at the same time (an incident response revoking several leaked keys from
/// several admin requests) both hold: `revoke` was a load / clone / store, and the later store
/// undid the earlier revocation while both calls returned `true`.
///
/// Stress test: two threads revoke disjoint halves of 2 000 keys at the same time; afterwards
/// every key must be revoked (it failed in every run before the fix).
#[test]
fn concurrent_api_key_revocations_all_hold() {
    const KEYS: usize = 2_000;
    let authn = Arc::new(
        ApiKeyAuthenticator::new(ApiKeyConfig::new("aaa", many_keys(KEYS)), Arc::new(clock()))
            .unwrap(),
    );
    let start = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let authn = authn.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                for i in (t..KEYS).step_by(2) {
                    assert!(authn.revoke(&format!("k{i}")));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let still_valid: Vec<usize> = (0..KEYS)
        .filter(|i| authn.verify(&format!("aaa_k{i}_{SECRET}")).is_ok())
        .collect();
    assert!(
        still_valid.is_empty(),
        "{} of {KEYS} keys were revoked (revoke returned true) but are still accepted, e.g. k{}",
        still_valid.len(),
        still_valid[0]
    );
}

/// `revoke` is "for every request from now on": a configuration reload from the same file, which
/// still lists the key, does not bring the compromised secret back; a new secret for the id does
/// work.
#[test]
fn api_key_revocation_survives_a_config_reload() {
    let c = clock();
    let other = "b3RoZXItb3RoZXItb3RoZXItb3RoZXI";
    let keys = || {
        vec![
            ApiKeyRecord::new("k0", "owner-0", SECRET),
            ApiKeyRecord::new("k1", "owner-1", other),
        ]
    };
    let authn = ApiKeyAuthenticator::new(ApiKeyConfig::new("aaa", keys()), Arc::new(c)).unwrap();
    assert!(authn.revoke("k0"));
    assert!(authn.verify(&format!("aaa_k0_{SECRET}")).is_err());
    // A routine reload of the unchanged configuration.
    authn.replace_keys(keys()).unwrap();
    assert!(
        authn.verify(&format!("aaa_k0_{SECRET}")).is_err(),
        "the revoked key k0 is accepted again after replace_keys"
    );
    assert!(authn.verify(&format!("aaa_k1_{other}")).is_ok());
    // The same id with a new secret is a new key; the revoked secret stays refused under any id.
    let fresh = "ZnJlc2gtZnJlc2gtZnJlc2gtZnJlc2g";
    authn
        .replace_keys(vec![
            ApiKeyRecord::new("k0", "owner-0", fresh),
            ApiKeyRecord::new("k2", "owner-2", SECRET),
        ])
        .unwrap();
    assert!(authn.verify(&format!("aaa_k0_{fresh}")).is_ok());
    assert!(authn.verify(&format!("aaa_k0_{SECRET}")).is_err());
    assert!(authn.verify(&format!("aaa_k2_{SECRET}")).is_err());
}

/// Probe: API key parsing and presentation.
#[tokio::test]
async fn probe_api_key_parsing() {
    let authn = ApiKeyAuthenticator::new(ApiKeyConfig::new("aaa", many_keys(1)), Arc::new(clock()))
        .unwrap();
    for bad in [
        format!("AAA_k0_{SECRET}"),
        format!("aaa_K0_{SECRET}"),
        format!("aaa_k0_{SECRET}x"),
        format!(" aaa_k0_{SECRET}"),
        format!("aaa_k0__{SECRET}"),
        format!("aaa__k0_{SECRET}"),
        format!("aaa_k0_{}", &SECRET[..SECRET.len() - 1]),
    ] {
        assert!(authn.verify(&bad).is_err(), "{bad}");
    }
    let mut h = http::HeaderMap::new();
    h.insert(
        "x-api-key",
        http::HeaderValue::from_bytes(b"aaa_k0_\xff\xfe").unwrap(),
    );
    let f = RequestFacts::new(http::Method::GET, "/").with_headers(h);
    assert!(matches!(
        authn.authenticate(&f).await,
        Err(AuthnError::Malformed(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// JWT probes (all refused on the reviewed code)
// ---------------------------------------------------------------------------------------------

fn es256_raw(header: &str, payload: &str) -> String {
    sign_raw(
        header,
        payload,
        &signing_key("p256", Algorithm::ES256),
        Algorithm::ES256,
    )
}

#[tokio::test]
async fn probe_claims_of_wrong_type_or_range() {
    let c = clock();
    let a = fixed_authenticator(issuer(), &c);
    let header = json!({"alg": "ES256", "kid": "ec-256"}).to_string();
    for (name, value) in [
        ("exp", json!("1800000600")),
        ("exp", json!(1e300)),
        ("exp", json!(-1)),
        ("exp", json!(18_446_744_073_709_551_615u64)),
        ("exp", json!(9_223_372_036_854_775_807i64)),
        ("exp", json!(null)),
        ("exp", json!([NOW + 600])),
        ("nbf", json!(NOW + 3600)),
        ("nbf", json!("0")),
        ("iat", json!(NOW + 3600)),
        ("iat", json!(true)),
        ("aud", json!(["other", 1])),
        ("aud", json!({"orders-api": true})),
        ("aud", json!("ORDERS-API")),
        ("iss", json!(["https://idp.test"])),
        ("iss", json!("https://idp.test/")),
        ("sub", json!(42)),
        ("sub", json!("")),
    ] {
        let mut cl = claims();
        cl[name] = value.clone();
        let t = es256_raw(&header, &cl.to_string());
        assert!(a.verify(&t).await.is_err(), "{name}={value}");
    }
    // A very large exp is accepted (a long-lived token) and must not panic anywhere.
    let mut cl = claims();
    cl["exp"] = json!(9_000_000_000_000i64);
    assert!(a.verify(&es256_raw(&header, &cl.to_string())).await.is_ok());
    cl["exp"] = json!(9.2e12);
    assert!(
        a.verify(&es256_raw(&header, &cl.to_string()))
            .await
            .is_err()
    );
    // Duplicate claims, also spelled with escapes.
    let dup = format!(
        r#"{{"iss":"https://idp.test","aud":"orders-api","sub":"alice","exp":{},"s\u0075b":"admin"}}"#,
        NOW + 600
    );
    assert!(a.verify(&es256_raw(&header, &dup)).await.is_err());
}

#[tokio::test]
async fn probe_header_oddities() {
    let c = clock();
    let a = fixed_authenticator(issuer(), &c);
    let cl = claims().to_string();
    for header in [
        r#"{"alg":"ES256","kid":"ec-256","crit":[]}"#,
        r#"{"alg":"ES256","kid":"ec-256","crit":"b64","b64":true}"#,
        r#"{"alg":"ES256","kid":"ec-256","b64":false}"#,
        r#"{"alg":"ES256","kid":"ec-256","zip":"DEF"}"#,
        r#"{"alg":"ES256","kid":1}"#,
        r#"{"alg":"es256","kid":"ec-256"}"#,
        r#"{"alg":"ES256 ","kid":"ec-256"}"#,
        r#"{"alg":["ES256"],"kid":"ec-256"}"#,
        r#"{"alg":"ES256","kid":"ec-256","k\u0069d":"rsa-1"}"#,
        r#"{"alg":"ES256","kid":"rsa-1"}"#,
        r#"{"alg":"RS256","kid":"ec-256"}"#,
    ] {
        let t = es256_raw(header, &cl);
        assert!(a.verify(&t).await.is_err(), "{header}");
    }
    // The same token with one and with two leading BOM/whitespace bytes in the JSON is one of
    // several spellings: the signature covers the bytes, so it is fine either way.
    let t = es256_raw(&format!(" {}", r#"{"alg":"ES256","kid":"ec-256"}"#), &cl);
    assert!(a.verify(&t).await.is_ok());
}

/// Missing kid with several candidate keys; duplicate kids; `use: enc`; JWK `alg` disagreeing.
#[tokio::test]
async fn probe_key_selection() {
    let c = clock();
    // Two RSA keys, a token without kid: no key is chosen.
    let keys = KeySet::from_keys([jwk_key("rsa2048"), jwk_key("rsa2048-b")]);
    let a = authenticator_with(issuer(), keys, &c);
    let no_kid = sign_raw(
        &json!({"alg": "RS256"}).to_string(),
        &claims().to_string(),
        &signing_key("rsa2048", Algorithm::RS256),
        Algorithm::RS256,
    );
    assert!(a.verify(&no_kid).await.is_err());

    // Duplicate kid in a JWKS: the first wins, the second never verifies.
    let mut first: serde_json::Value =
        serde_json::from_slice(&fixture("rsa2048.pub.jwk.json")).unwrap();
    let mut second: serde_json::Value =
        serde_json::from_slice(&fixture("rsa2048-b.pub.jwk.json")).unwrap();
    first["kid"] = json!("dup");
    second["kid"] = json!("dup");
    let doc = json!({"keys": [first, second]}).to_string();
    let set = KeySet::from_jwks_json(doc.as_bytes(), false).unwrap();
    assert_eq!(set.len(), 1);
    let a = authenticator_with(issuer(), set, &c);
    assert!(
        a.verify(&token("rsa2048", "dup", Algorithm::RS256, &claims()))
            .await
            .is_ok()
    );
    assert!(
        a.verify(&token("rsa2048-b", "dup", Algorithm::RS256, &claims()))
            .await
            .is_err()
    );

    // `use: enc`, and a JWK alg of RS256 used for PS256.
    let mut enc: serde_json::Value =
        serde_json::from_slice(&fixture("rsa2048.pub.jwk.json")).unwrap();
    enc["use"] = json!("enc");
    let mut rs: serde_json::Value =
        serde_json::from_slice(&fixture("rsa2048-b.pub.jwk.json")).unwrap();
    rs["alg"] = json!("RS256");
    let doc = json!({"keys": [enc, rs]}).to_string();
    let set = KeySet::from_jwks_json(doc.as_bytes(), false).unwrap();
    let a = authenticator_with(issuer(), set, &c);
    assert!(
        a.verify(&token("rsa2048", "rsa-1", Algorithm::RS256, &claims()))
            .await
            .is_err()
    );
    assert!(
        a.verify(&token("rsa2048-b", "rsa-b", Algorithm::PS256, &claims()))
            .await
            .is_err()
    );
    assert!(
        a.verify(&token("rsa2048-b", "rsa-b", Algorithm::RS256, &claims()))
            .await
            .is_ok()
    );
}

/// The verified-token cache with a fixed clock: expiry at exp + leeway exactly, like a fresh check.
#[tokio::test]
async fn probe_token_cache_expiry_boundary() {
    let c = clock();
    let keys = KeySet::from_keys([jwk_key("p256")]);
    let a = JwtAuthenticator::builder()
        .issuer(issuer(), KeyStore::fixed(keys, Arc::new(c.clone())))
        .clock(Arc::new(c.clone()))
        .verified_token_cache(8)
        .build()
        .unwrap();
    let t = token("p256", "ec-256", Algorithm::ES256, &claims());
    a.verify(&t).await.unwrap();
    assert_eq!(a.cached_tokens(), 1);
    c.advance_seconds(600 + 60 - 1);
    a.verify(&t).await.unwrap();
    c.advance_micros(1_000_000);
    assert!(a.verify(&t).await.is_err());
    // The padded spelling of the same token is not served from the cache.
    let padded = format!("{t}==");
    assert!(a.verify(&padded).await.is_err());
    let _ = b64(b"");
}

// ---------------------------------------------------------------------------------------------
// JWKS: an authoritative answer that removes every usable key
// ---------------------------------------------------------------------------------------------

/// Design concern (documented behaviour, see the report): after a key compromise the IdP answers
/// `200 OK` with a well-formed JWKS that no longer holds the compromised key, only a key this
/// library cannot use (here P-521, or none at all): the removed key stops verifying at once. The
/// store treated "no usable key" like an outage, and kept verifying with the removed key until
/// `max_staleness` (24 h by default).
#[tokio::test]
async fn removed_key_stops_verifying_when_the_new_jwks_has_no_usable_key() {
    use super::{Answer, Idp, fast_http, jwks_of};
    use aaa::{JwksUrl, authn::CachePolicy};
    let idp = Idp::start(Answer::Jwks(jwks_of(&["p256"]), None)).await;
    let c = clock();
    let source = JwksUrl::new(&format!("{}/jwks", idp.base), fast_http()).unwrap();
    let store = KeyStore::new(source, CachePolicy::default(), Arc::new(c.clone()));
    let a = JwtAuthenticator::builder()
        .issuer(issuer(), store.clone())
        .clock(Arc::new(c.clone()))
        .build()
        .unwrap();
    let mut cl = claims();
    cl["exp"] = json!(NOW + 86_400);
    let compromised = token("p256", "ec-256", Algorithm::ES256, &cl);
    a.verify(&compromised).await.unwrap();
    // The IdP removes the compromised key and publishes a P-521 key instead.
    let p521 = json!({"keys": [{"kty": "EC", "kid": "ec-521", "use": "sig", "crv": "P-521",
        "x": "AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqvjyekWF-7ytDyRXYgCF5cj0Kt",
        "y": "AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgDPrwQrJmbnX9cwlGfP-HqHZR1"}]});
    idp.set(Answer::Jwks(p521.to_string(), None));
    let refreshed = store.refresh().await;
    assert!(refreshed.is_err(), "the refresh reports {refreshed:?}");
    // Installed, but a failure to anyone watching the store's health.
    let health = store.health();
    assert!(
        health.key_ids.is_empty()
            && health.failures == 1
            && health.consecutive_failures == 1
            && health.last_error.is_some()
            && health.last_success.is_some_and(|t| t.unix_seconds() == NOW),
        "refresh answered {refreshed:?} and no token verifies; health says {health:?}"
    );
    assert!(
        a.verify(&compromised).await.is_err(),
        "a key the issuer removed (200 OK, well-formed JWKS) still verifies tokens"
    );
}

// ---------------------------------------------------------------------------------------------
// Credential headers and token identity
// ---------------------------------------------------------------------------------------------

/// The headers handed on to the handler (`RequestFacts::into_headers`) hide API keys in `Debug`
/// like bearer tokens: `x-api-key`, the default header of `ApiKeyAuthenticator`, was not marked
/// sensitive.
#[test]
fn api_key_header_is_marked_sensitive() {
    let key = format!("aaa_k0_{SECRET}");
    let mut h = http::HeaderMap::new();
    h.insert("x-api-key", key.parse().unwrap());
    h.insert(
        http::header::AUTHORIZATION,
        "Bearer tok.en.sig".parse().unwrap(),
    );
    let headers = RequestFacts::new(http::Method::GET, "/")
        .with_headers(h)
        .into_headers();
    let shown = format!("{headers:?}");
    assert!(!shown.contains("tok.en.sig"), "bearer hidden: {shown}");
    assert!(
        !shown.contains(SECRET),
        "the api key is printed by Debug of the headers handed to the handler: {shown}"
    );
}

/// P-256 group order, big-endian.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// `n - s` for 32-byte big-endian numbers with `s < n`.
fn negate_mod_n(s: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(P256_N[i]) - i16::from(s[i]) - borrow;
        borrow = 0;
        if d < 0 {
            d += 256;
            borrow = 1;
        }
        out[i] = d as u8;
    }
    out
}

/// Anyone holding an ES256 token can replace `s` by `n - s`: a second valid signature, which
/// is accepted (issuers do not all pick the low `s`). It must be the same credential in the audit
/// log (replays of a stolen token correlate): the reference is the SHA-256 of the signed header
/// and payload, not of the whole token as before.
#[tokio::test]
async fn ecdsa_second_signature_spelling_is_the_same_credential() {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let c = clock();
    let a = fixed_authenticator(issuer(), &c);
    let good = token("p256", "ec-256", Algorithm::ES256, &claims());
    let (input, sig) = good.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let mut twin = sig[..32].to_vec();
    twin.extend(negate_mod_n(&sig[32..]));
    let twin = format!("{input}.{}", b64(&twin));
    assert_ne!(twin, good);
    let first = a.verify(&good).await.unwrap();
    let second = a.verify(&twin).await.unwrap();
    assert_eq!(first.auth.credential, second.auth.credential);
    assert_eq!(
        first.auth.credential,
        aaa::CredentialRef::token(input.as_bytes())
    );
}

/// RSA keys shorter than 2048 bits are refused (authn docs), from PEM as from a JWK: a 1024-bit
/// PEM key loaded before (and only failed later, on every token).
const RSA_1024_PUB: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDlD9JK7OmqVICvhQgfKIFIKnUI
WjOGfE+jh7dojYby7HBvNKVKqAH7W9MTArzqf43IIqJgt33UiYn5wFOtugg9mmbx
ANB3wAnQ1dxdtBCfTo4HqzgM/VAjd4aYEuvZBDbSSavj0tjP6HbqD8DZ1SE1BGzY
vfZTjh1V5NxvfPzCFwIDAQAB
-----END PUBLIC KEY-----";

#[test]
fn short_rsa_pem_key_is_refused() {
    let got =
        aaa::VerificationKey::from_pem(Some("short"), Algorithm::RS256, RSA_1024_PUB.as_bytes());
    assert!(got.is_err(), "a 1024-bit RSA PEM key was loaded");
}

/// Probe: the modulus check refuses no legitimate key (SPKI, PKCS#1, certificate; 2048 and
/// 4096 bits).
#[test]
fn probe_rsa_pem_keys_of_2048_and_4096_bits_load() {
    let spki_2048 = fixture("rsa2048.pub.pem");
    for (what, pem) in [
        ("2048 SPKI", &spki_2048[..]),
        ("2048 PKCS#1", RSA_2048_PKCS1.as_bytes()),
        ("2048 certificate", RSA_2048_CERT.as_bytes()),
        ("4096 SPKI", RSA_4096_SPKI.as_bytes()),
    ] {
        for alg in [Algorithm::RS256, Algorithm::PS512] {
            assert!(
                aaa::VerificationKey::from_pem(Some("k"), alg, pem).is_ok(),
                "{what} {alg:?} refused"
            );
        }
    }
    // A private key PEM is not a public key.
    let private = fixture("rsa2048.key.pem");
    assert!(aaa::VerificationKey::from_pem(Some("k"), Algorithm::RS256, &private).is_err());
}

const RSA_4096_SPKI: &str = "\
-----BEGIN PUBLIC KEY-----
MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEAmnjLQBMGAQ1XgSD9HIKT
LdwWn4RMiVx2F3B7WEIwrOkIwVyTJ5ZhSHI+BKX2CX5cN1khr5iF3q9lotZfqdF7
S6WYDpCruQyYEZM9WGQQNzuvB6A8ZZXE9R4e7WAKWekn9WnHvHuGgJ6ZOP+pLUSa
65p4/P62Vpax8tqWEobPSvAoIn6ceC1SxS60t2DVBMd9p6YMhlczFMiOr2FcHJql
nR0XUP8m19YFjRgPAnZXSZPTsZlROSbyQ07qYnzgtMz+1HkYxu8+VB5mL/Lm/jff
2vFeFiwphQye9K7dVX65cHJU62ejr1R+2QIl/k17KzbCyASU0iGj8fcuGDIKMV79
CdROO099qtkQh2Ge+rAsKyFczuP2DZbHHUCq7C+r3d5/jkXIFeMTDPBhmYMdCNM8
vqwn2o99rSJ5Ta4oX/MVGYKoxowpZIuUx/rGDvMw32zJ47PEpjTTu427uDjcOihs
cxiD39/xlliSGHK/+2zGQp74oV5ch7RxFUXFgdb4Bx7fJ0rUtPFozRf0Y+FWK78a
8bHnH6cQrU9MaGLL2OZdnvlx/b150LyknWL5PPC8Sf6+HXSjtVUZNBVXanIYudAc
NgBzWjQUho+A2cRdXKKi3eOFnHvQopIzg8gwwEeaJNOHrixMksEhtAY8F0umxvqM
2EkMuHrU6hYg3yY5HI6O9C8CAwEAAQ==
-----END PUBLIC KEY-----
";

const RSA_2048_PKCS1: &str = "\
-----BEGIN RSA PUBLIC KEY-----
MIIBCgKCAQEAo7n9I9+xdHSHFzSc4J2FUq02pMbT3eT8IvO1nefc/zANaDSskuw9
RrnY7SA2GcTHFVpx/xFET8Tr9Z6NLzzbUtFTgT8gROw9u5nsqIKpSpIW2Khr5nO6
Ugq5lj05SmjT6sfKigRRO1UFsIeW8INvnkA2PrtftUu3uZHFjFGic+PSnTZE8ohw
MmGHw8NwapFh/16BKyfdGgjwBn+Ry6VTE3zh3pV5cn5LIENNLO5M0oEkAVEG99Nf
LSfoj6w4Q0xJlmK1UM1nOxgY1sewK3hztAcH8H5/Pbs7kr/MS74gJ32TnRqaqSzh
kqKgTL9ccTLdQEiVqE4NVQVyLTP9tYeKLQIDAQAB
-----END RSA PUBLIC KEY-----
";

const RSA_2048_CERT: &str = "\
-----BEGIN CERTIFICATE-----
MIIC+TCCAeGgAwIBAgIUCY+BMeEi2IdgZEa3aHbUNmByoowwDQYJKoZIhvcNAQEL
BQAwDDEKMAgGA1UEAwwBdDAeFw0yNjEyMDIyMzE4NTVaFw0yNjEyMDMyMzE4NTVa
MAwxCjAIBgNVBAMMAXQwggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQCj
uf0j37F0dIcXNJzgnYVSrTakxtPd5Pwi87Wd59z/MA1oNKyS7D1GudjtIDYZxMcV
WnH/EURPxOv1no0vPNtS0VOBPyBE7D27meyogqlKkhbYqGvmc7pSCrmWPTlKaNPq
x8qKBFE7VQWwh5bwg2+eQDY+u1+1S7e5kcWMUaJz49KdNkTyiHAyYYfDw3BqkWH/
XoErJ90aCPAGf5HLpVMTfOHelXlyfksgQ00s7kzSgSQBUQb3018tJ+iPrDhDTEmW
YrVQzWc7GBjWx7AreHO0Bwfwfn89uzuSv8xLviAnfZOdGpqpLOGSoqBMv1xxMt1A
SJWoTg1VBXItM/21h4otAgMBAAGjUzBRMB0GA1UdDgQWBBQoxSwwX1xvkUhJanS3
rEN5Ds1t3TAfBgNVHSMEGDAWgBQoxSwwX1xvkUhJanS3rEN5Ds1t3TAPBgNVHRMB
Af8EBTADAQH/MA0GCSqGSIb3DQEBCwUAA4IBAQA165CqfRgodUze6gG9B/XQBGL+
jJA5XzWJezDxUmguJdKIWZW7XF6vCtWTYC/5n7ez9NWXznc+JgnxntZxgE/Wqvbg
JxpeUwezfj10HWVHaQK7nKwNBvGtMXZje3+GyA+YPn1yDRp4/ck2ZSIR/EZKpDyG
pVrHhIircs9Hhl8hMC6rGnmLIridSsG8Gvj9ybcdiTuOUVRxuJwphwwVcbK8ov6D
1zvcWd2TFW4Zvqg82JZBqcLSVX0vcIpvBjJodEpDJXzMdPu66Cl16pbQpMEty7Y6
rP2ZChs/FjliEIe9ptm5vjGQEk4Tavu+GyBlag0DETQ8juRTFA+Sp2hYbI1L
-----END CERTIFICATE-----
";

/// Probe: Ed25519 is not malleable (S + L is refused), unlike ECDSA above.
#[tokio::test]
async fn probe_eddsa_signature_is_not_malleable() {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    // L = 2^252 + 27742317777372353535851937790883648493, little-endian.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x10,
    ];
    let c = clock();
    let a = fixed_authenticator(issuer(), &c);
    let good = token("ed25519", "ed-1", Algorithm::EdDSA, &claims());
    let (input, sig) = good.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let mut carry = 0u16;
    for i in 0..32 {
        let v = u16::from(sig[32 + i]) + u16::from(L[i]) + carry;
        sig[32 + i] = v as u8;
        carry = v >> 8;
    }
    assert!(a.verify(&good).await.is_ok());
    assert!(a.verify(&format!("{input}.{}", b64(&sig))).await.is_err());
}

/// A one-route-per-path HTTP server on 127.0.0.1:0 answering fixed raw responses.
async fn raw_server(routes: Vec<(&'static str, String)>) -> String {
    raw_server_with(move |_| routes).await
}

/// As [`raw_server`], with routes that may name the server's own base URL.
async fn raw_server_with(routes: impl FnOnce(&str) -> Vec<(&'static str, String)>) -> String {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let routes = Arc::new(routes(&base));
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let routes = routes.clone();
            tokio::spawn(async move {
                let Some(path) = super::request_path(&mut socket).await else {
                    return;
                };
                let response = routes
                    .iter()
                    .find(|(p, _)| *p == path)
                    .map(|(_, r)| r.clone())
                    .unwrap_or_else(|| {
                        "HTTP/1.1 404 X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into()
                    });
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    base
}

fn ok_json(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Probe: discovery refuses a plain-http non-loopback `jwks_uri`; JWKS redirects are not
/// followed; a body longer than its Content-Length cap is refused while streaming.
#[tokio::test]
async fn probe_discovery_and_fetch_limits() {
    use super::{fast_http, jwks_of};
    use aaa::{JwksUrl, KeySource, OidcDiscovery, authn::KeySourceError};
    // A discovery document naming another issuer is refused.
    let other = raw_server_with(|_| {
        let doc = json!({"issuer": "https://idp.example", "jwks_uri": "http://idp.example/jwks"});
        vec![(
            "/.well-known/openid-configuration",
            ok_json(&doc.to_string()),
        )]
    })
    .await;
    let d = OidcDiscovery::new(&other, fast_http()).unwrap();
    assert!(matches!(
        d.fetch().await,
        Err(KeySourceError::IssuerMismatch { .. })
    ));
    // The right issuer, but a plain-http jwks_uri on a non-loopback host: refused.
    let insecure = raw_server_with(|base| {
        let doc = json!({"issuer": base, "jwks_uri": "http://idp.example/jwks"});
        vec![(
            "/.well-known/openid-configuration",
            ok_json(&doc.to_string()),
        )]
    })
    .await;
    let d = OidcDiscovery::new(&insecure, fast_http()).unwrap();
    assert!(matches!(
        d.fetch().await,
        Err(KeySourceError::InsecureUrl(_))
    ));
    // (A jwks_uri on another origin, https or loopback http, is accepted: see the report.)
    // Redirect on the JWKS path: not followed.
    let redirect = "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:1/jwks\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned();
    let b = raw_server(vec![("/jwks", redirect)]).await;
    let s = JwksUrl::new(&format!("{b}/jwks"), fast_http()).unwrap();
    assert!(matches!(s.fetch().await, Err(KeySourceError::Status(302))));
    // Chunked body over the cap (no content-length).
    let big = json!({"keys": [], "pad": "x".repeat(300 * 1024)}).to_string();
    let chunked = format!(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
        big.len()
    );
    let b = raw_server(vec![("/jwks", chunked)]).await;
    let s = JwksUrl::new(&format!("{b}/jwks"), fast_http()).unwrap();
    assert!(matches!(s.fetch().await, Err(KeySourceError::TooLarge(_))));
    // Sanity: a good JWKS parses.
    let b = raw_server(vec![("/jwks", ok_json(&jwks_of(&["p256"])))]).await;
    let s = JwksUrl::new(&format!("{b}/jwks"), fast_http()).unwrap();
    assert_eq!(s.fetch().await.unwrap().keys.key_ids(), ["ec-256"]);
    // Insecure URLs are refused up front.
    for bad in [
        "http://idp.example/jwks",
        "http://[::ffff:127.0.0.1]/jwks",
        "http://0.0.0.0/jwks",
        "ftp://127.0.0.1/jwks",
        "http://localhost.evil.example/jwks",
    ] {
        assert!(JwksUrl::new(bad, fast_http()).is_err(), "{bad}");
    }
}
