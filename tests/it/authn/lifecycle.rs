//! The JWKS lifecycle against the test's own IdP on 127.0.0.1 (real HTTP, counted requests).
//! Time moves with a `FixedClock`; nothing sleeps.

use std::{sync::Arc, time::Duration};

use aaa::{
    AuthnError, FixedClock, JwksUrl, JwtAuthenticator, KeyStore, OidcDiscovery,
    authn::{Algorithm, CachePolicy},
};
use serde_json::json;

use super::{Answer, Idp, NOW, b64, claims, clock, fast_http, issuer, jwks_of, token};

fn policy() -> CachePolicy {
    CachePolicy::default()
        .with_refresh_cooldown(Duration::from_secs(30))
        .with_max_staleness(Duration::from_secs(3600))
        .with_ttl(
            Duration::from_secs(300),
            Duration::from_secs(60),
            Duration::from_secs(900),
        )
}

fn store(idp: &Idp, clock: &FixedClock, policy: CachePolicy) -> KeyStore {
    let source = JwksUrl::new(&format!("{}/jwks", idp.base), fast_http()).unwrap();
    KeyStore::new(source, policy, Arc::new(clock.clone()))
}

fn authenticator(store: KeyStore, clock: &FixedClock) -> JwtAuthenticator {
    JwtAuthenticator::builder()
        .issuer(issuer(), store)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap()
}

/// A token whose claims stay valid for a day, so the clock can move.
fn long_token(name: &str, kid: &str, alg: Algorithm) -> String {
    let mut cl = claims();
    cl["exp"] = json!(NOW + 86_400);
    token(name, kid, alg, &cl)
}

#[tokio::test]
async fn rotation_is_picked_up_on_kid_miss() {
    let idp = Idp::start(Answer::Jwks(jwks_of(&["rsa2048"]), None)).await;
    let c = clock();
    let a = authenticator(store(&idp, &c, policy()), &c);
    a.verify(&long_token("rsa2048", "rsa-1", Algorithm::RS256))
        .await
        .unwrap();
    assert_eq!(idp.fetches(), 1);
    // The IdP rotates in a new key; a token signed with it arrives after the cooldown.
    idp.set(Answer::Jwks(jwks_of(&["rsa2048", "p256"]), None));
    c.advance_seconds(31);
    a.verify(&long_token("p256", "ec-256", Algorithm::ES256))
        .await
        .unwrap();
    assert_eq!(idp.fetches(), 2);
    assert_eq!(a.key_stores().len(), 1);
    let health = a.key_store(super::ISSUER).unwrap().health();
    assert_eq!(health.key_ids, ["ec-256", "rsa-1"]);
    assert_eq!(health.failures, 0);
}

/// A token with a random kid and a junk signature: refused before any signature check.
fn random_kid_token(i: usize) -> String {
    let header =
        json!({"alg": "ES256", "kid": format!("random-{i}-{}", i.wrapping_mul(2_654_435_761))});
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims().to_string().as_bytes()),
        b64(&[7u8; 64])
    )
}

#[tokio::test]
async fn random_kid_flood_costs_one_fetch_per_cooldown() {
    let idp = Idp::start(Answer::Jwks(jwks_of(&["p256"]), None)).await;
    let c = clock();
    let a = Arc::new(authenticator(store(&idp, &c, policy()), &c));
    let good = long_token("p256", "ec-256", Algorithm::ES256);
    a.verify(&good).await.unwrap();
    assert_eq!(idp.fetches(), 1);
    c.advance_seconds(31);
    // 10,000 random kids, in concurrent batches, with valid tokens mixed in.
    let mut tasks = tokio::task::JoinSet::new();
    for batch in 0..10 {
        let a = a.clone();
        let good = good.clone();
        tasks.spawn(async move {
            for i in 0..1000 {
                let n = batch * 1000 + i;
                assert_eq!(
                    a.verify(&random_kid_token(n)).await.unwrap_err(),
                    AuthnError::Invalid("unknown signing key")
                );
                if n.is_multiple_of(100) {
                    a.verify(&good).await.unwrap();
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(idp.fetches(), 2, "one fetch for the whole flood");
    // The next cooldown allows exactly one more.
    c.advance_seconds(31);
    for n in 10_000..10_100 {
        a.verify(&random_kid_token(n)).await.unwrap_err();
    }
    assert_eq!(idp.fetches(), 3);
    a.verify(&good).await.unwrap();
}

async fn outage(answer: Answer) {
    let idp = Idp::start(Answer::Jwks(jwks_of(&["p256"]), None)).await;
    let c = clock();
    let s = store(&idp, &c, policy());
    let a = authenticator(s.clone(), &c);
    let good = long_token("p256", "ec-256", Algorithm::ES256);
    a.verify(&good).await.unwrap();
    idp.set(answer.clone());
    // Past the TTL: a refresh is tried (and fails), the cached key keeps working.
    c.advance_seconds(301);
    a.verify(&good).await.unwrap();
    s.refresh().await.unwrap_err();
    assert_eq!(
        s.current_keys().unwrap().key_ids(),
        ["ec-256"],
        "{answer:?}"
    );
    c.advance_seconds(3000);
    a.verify(&good).await.unwrap();
    let health = s.health();
    assert!(health.consecutive_failures >= 1, "{answer:?}");
    assert!(health.last_error.is_some());
    assert!(!health.stale);
    // Past the maximum staleness: 503, not 401.
    c.advance_seconds(300);
    let err = a.verify(&good).await.unwrap_err();
    assert!(
        matches!(err, AuthnError::Unavailable(_)),
        "{answer:?}: {err:?}"
    );
    assert_eq!(
        err.rejection().status(),
        http::StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(s.health().stale);
    // The IdP recovers: the next allowed fetch restores service.
    idp.set(Answer::Jwks(jwks_of(&["p256"]), None));
    c.advance_seconds(31);
    a.verify(&good).await.unwrap();
}

#[tokio::test]
async fn idp_500_keeps_cached_keys_until_max_staleness() {
    outage(Answer::Status(500)).await;
}

#[tokio::test]
async fn idp_timeout_keeps_cached_keys_until_max_staleness() {
    outage(Answer::Hang).await;
}

#[tokio::test]
async fn idp_garbage_keeps_cached_keys_until_max_staleness() {
    outage(Answer::Garbage).await;
}

/// A well-formed key set without a usable key is the issuer's word, not an outage: the keys it
/// no longer lists (revoked after a compromise) stop verifying at once, not after the maximum
/// staleness.
#[tokio::test]
async fn idp_key_set_without_a_usable_key_revokes_the_cached_ones() {
    for empty in [
        r#"{"keys":[]}"#.to_owned(),
        json!({"keys": [{"kty": "EC", "kid": "new", "crv": "P-521", "x": "AA", "y": "AA"}]})
            .to_string(),
    ] {
        let idp = Idp::start(Answer::Jwks(jwks_of(&["p256"]), None)).await;
        let c = clock();
        let s = store(&idp, &c, policy());
        let a = authenticator(s.clone(), &c);
        let good = long_token("p256", "ec-256", Algorithm::ES256);
        a.verify(&good).await.unwrap();
        idp.set(Answer::Jwks(empty.clone(), None));
        assert!(matches!(
            s.refresh().await,
            Err(aaa::authn::KeySourceError::Empty)
        ));
        assert!(s.current_keys().unwrap().key_ids().is_empty(), "{empty}");
        assert_eq!(
            a.verify(&good).await.unwrap_err(),
            AuthnError::Invalid("unknown signing key"),
            "{empty}"
        );
    }
}

#[tokio::test]
async fn key_removed_upstream_stops_verifying_after_the_next_refresh() {
    let idp = Idp::start(Answer::Jwks(jwks_of(&["rsa2048", "p256"]), None)).await;
    let c = clock();
    let s = store(&idp, &c, policy());
    let a = authenticator(s.clone(), &c);
    let ec = long_token("p256", "ec-256", Algorithm::ES256);
    a.verify(&ec).await.unwrap();
    idp.set(Answer::Jwks(jwks_of(&["rsa2048"]), None));
    s.refresh().await.unwrap();
    assert_eq!(
        a.verify(&ec).await.unwrap_err(),
        AuthnError::Invalid("unknown signing key")
    );
    a.verify(&long_token("rsa2048", "rsa-1", Algorithm::RS256))
        .await
        .unwrap();
}

#[tokio::test]
async fn one_bad_key_does_not_discard_the_others() {
    let mut doc: serde_json::Value = serde_json::from_str(&jwks_of(&["rsa2048", "p256"])).unwrap();
    let keys = doc["keys"].as_array_mut().unwrap();
    keys.push(json!({"kty": "oct", "kid": "sym", "k": b64(&[1u8; 32])}));
    keys.push(json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}));
    keys.push(json!({"kty": "EC", "kid": "bad", "crv": "P-521", "x": "AA", "y": "AA"}));
    keys.push(json!({"kty": "whatever"}));
    let idp = Idp::start(Answer::Jwks(doc.to_string(), Some("max-age=5"))).await;
    let c = clock();
    let s = store(&idp, &c, policy());
    s.refresh().await.unwrap();
    let current = s.current_keys().unwrap();
    assert_eq!(current.key_ids(), ["ec-256", "rsa-1"]);
    assert_eq!(current.rejected().len(), 4);
    // max-age=5 is clamped up to the 60 s minimum.
    let h = s.health();
    assert_eq!(
        h.fresh_until.unwrap().unix_seconds() - h.last_success.unwrap().unix_seconds(),
        60
    );
}

#[tokio::test]
async fn oidc_discovery_checks_the_issuer() {
    let idp = Idp::start(Answer::Jwks(jwks_of(&["p256"]), Some("max-age=600"))).await;
    let c = clock();
    let source = OidcDiscovery::new(&idp.base, fast_http()).unwrap();
    let s = KeyStore::new(source, policy(), Arc::new(c.clone()));
    s.refresh().await.unwrap();
    assert_eq!(s.current_keys().unwrap().key_ids(), ["ec-256"]);
    let h = s.health();
    assert_eq!(
        h.fresh_until.unwrap().unix_seconds() - h.last_success.unwrap().unix_seconds(),
        600
    );
    // A document naming another issuer is refused.
    *idp.discovery_issuer.lock().unwrap() = format!("{}/evil", idp.base);
    let s2 = KeyStore::discover(&idp.base, Arc::new(c.clone())).unwrap();
    assert!(matches!(
        s2.refresh().await,
        Err(aaa::authn::KeySourceError::IssuerMismatch { .. })
    ));
    assert!(s2.current_keys().is_none());
}

#[tokio::test]
async fn unreachable_idp_at_start_is_503() {
    let idp = Idp::start(Answer::Status(503)).await;
    let c = clock();
    let a = authenticator(store(&idp, &c, policy()), &c);
    let err = a
        .verify(&long_token("p256", "ec-256", Algorithm::ES256))
        .await
        .unwrap_err();
    assert_eq!(err, AuthnError::Unavailable("signing keys are unavailable"));
    // Retries wait for the cooldown.
    a.verify(&long_token("p256", "ec-256", Algorithm::ES256))
        .await
        .unwrap_err();
    assert_eq!(idp.fetches(), 1);
}

#[tokio::test]
async fn response_size_is_capped() {
    let big = json!({"keys": [], "pad": "x".repeat(300 * 1024)}).to_string();
    let idp = Idp::start(Answer::Jwks(big, None)).await;
    let c = clock();
    let s = store(&idp, &c, policy());
    assert!(matches!(
        s.refresh().await,
        Err(aaa::authn::KeySourceError::TooLarge(_))
    ));
}

#[tokio::test]
async fn verified_token_cache_follows_the_key_set_and_the_clock() {
    let idp = Idp::start(Answer::Jwks(jwks_of(&["rsa2048", "p256"]), None)).await;
    let c = clock();
    let s = store(&idp, &c, policy());
    let a = JwtAuthenticator::builder()
        .issuer(issuer(), s.clone())
        .clock(Arc::new(c.clone()))
        .verified_token_cache(2)
        .build()
        .unwrap();
    let ec = token("p256", "ec-256", Algorithm::ES256, &claims());
    let first = a.verify(&ec).await.unwrap();
    assert_eq!(a.cached_tokens(), 1);
    assert_eq!(a.verify(&ec).await.unwrap(), first, "served from the cache");
    // A different spelling of the token is not a hit.
    let (input, _) = ec.rsplit_once('.').unwrap();
    assert!(
        a.verify(&format!("{input}.{}", b64(&[0u8; 64])))
            .await
            .is_err()
    );
    // Bounded: a third token evicts one entry.
    a.verify(&long_token("rsa2048", "rsa-1", Algorithm::RS256))
        .await
        .unwrap();
    a.verify(&long_token("p256", "ec-256", Algorithm::ES256))
        .await
        .unwrap();
    assert_eq!(a.cached_tokens(), 2);
    // The key leaves the JWKS: the cached verdict goes with it.
    a.verify(&ec).await.unwrap();
    idp.set(Answer::Jwks(jwks_of(&["rsa2048"]), None));
    s.refresh().await.unwrap();
    assert_eq!(
        a.verify(&ec).await.unwrap_err(),
        AuthnError::Invalid("unknown signing key")
    );
    // And a cached token expires with the token.
    let rsa = token("rsa2048", "rsa-1", Algorithm::RS256, &claims());
    a.verify(&rsa).await.unwrap();
    a.verify(&rsa).await.unwrap();
    c.advance_seconds(600 + 60);
    assert_eq!(
        a.verify(&rsa).await.unwrap_err(),
        AuthnError::Invalid("the token has expired")
    );
}

/// A kid looked up while the issuer fails (a 500) was remembered as absent for the negative
/// TTL, as if the issuer had answered without it: a key rotated in during the blip then waited
/// for the negative TTL rather than the cooldown (found by a review). Only an answer confirms a
/// kid absent.
#[tokio::test]
async fn a_miss_while_the_issuer_fails_does_not_delay_a_rotated_key() {
    let idp = Idp::start(Answer::Jwks(jwks_of(&["p256"]), None)).await;
    let c = clock();
    let mut p = policy();
    p.negative_ttl = Duration::from_secs(600);
    let a = authenticator(store(&idp, &c, p), &c);
    a.verify(&long_token("p256", "ec-256", Algorithm::ES256))
        .await
        .unwrap();
    // After the cooldown, the issuer fails while a token names a new kid: refused.
    c.advance_seconds(31);
    idp.set(Answer::Status(500));
    let rsa = long_token("rsa2048", "rsa-1", Algorithm::RS256);
    a.verify(&rsa).await.unwrap_err();
    assert_eq!(idp.fetches(), 2);
    // Back, with the new key: accepted once the cooldown is over, not after the negative TTL.
    idp.set(Answer::Jwks(jwks_of(&["p256", "rsa2048"]), None));
    c.advance_seconds(31);
    a.verify(&rsa).await.unwrap();
    assert_eq!(idp.fetches(), 3);
}

#[tokio::test]
async fn a_miss_during_the_cooldown_does_not_delay_a_rotated_key() {
    let idp = Idp::start(Answer::Jwks(jwks_of(&["p256"]), None)).await;
    let c = clock();
    let mut p = policy();
    p.negative_ttl = Duration::from_secs(120);
    let a = authenticator(store(&idp, &c, p), &c);
    a.verify(&long_token("p256", "ec-256", Algorithm::ES256))
        .await
        .unwrap();
    // A token with a not-yet-published kid, inside the cooldown: refused, no fetch.
    c.advance_seconds(5);
    let rsa = long_token("rsa2048", "rsa-1", Algorithm::RS256);
    a.verify(&rsa).await.unwrap_err();
    assert_eq!(idp.fetches(), 1);
    // Published now; once the cooldown is over the kid is looked up again and accepted.
    idp.set(Answer::Jwks(jwks_of(&["p256", "rsa2048"]), None));
    c.advance_seconds(26);
    a.verify(&rsa).await.unwrap();
    assert_eq!(idp.fetches(), 2);
    // A kid a fetch confirmed absent is remembered for the negative TTL, beyond the cooldown.
    c.advance_seconds(31);
    let ghost = long_token("p384", "ghost", Algorithm::ES384);
    a.verify(&ghost).await.unwrap_err();
    assert_eq!(idp.fetches(), 3);
    c.advance_seconds(31);
    a.verify(&ghost).await.unwrap_err();
    assert_eq!(idp.fetches(), 3, "negative cache");
    c.advance_seconds(120);
    a.verify(&ghost).await.unwrap_err();
    assert_eq!(idp.fetches(), 4);
}
