//! JWT validation: `aaa`'s full pipeline against a bare `jsonwebtoken::decode` with the same key,
//! per algorithm, and the cost of a flood of unknown key ids.
//!
//! Run with: `cargo bench -p aaa-bench --bench jwt -- --warm-up-time 1 --measurement-time 3`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmark setup fails loudly"
)]

use std::{
    future::Future,
    hint::black_box,
    pin::pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll, Waker},
    time::Instant,
};

use aaa_core::{
    BoxFuture, FixedClock, IssuerConfig, JwtAuthenticator, KeySet, KeySource, KeyStore, Timestamp,
    VerificationKey,
    authn::{Algorithm, CachePolicy, KeyFetch, KeySourceError},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{EncodingKey, Header, Validation};
use serde_json::json;

const NOW: i64 = 1_800_000_000;
const ISSUER: &str = "https://idp.bench";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../tests/fixtures/authn/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn jwk_key(name: &str) -> VerificationKey {
    let jwk = serde_json::from_slice(&fixture(&format!("{name}.pub.jwk.json"))).unwrap();
    VerificationKey::from_jwk(&jwk, false).unwrap()
}

/// Runs a future that never waits (verification with fixed keys) to completion.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// A typical access token: 10 claims, about 600 bytes.
fn token(name: &str, kid: &str, alg: Algorithm) -> String {
    let pem = fixture(&format!("{name}.key.pem"));
    let key = match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
        _ => EncodingKey::from_rsa_pem(&pem),
    }
    .unwrap();
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    let claims = json!({
        "iss": ISSUER, "aud": "orders-api", "sub": "0f3a9c2e-5b7d-4c1e-9a8f-6d2b4e1c7a90",
        "iat": NOW, "exp": 4_000_000_000i64, "jti": "8c6b1f0e-2d4a-4e3b-9f7c-1a5e8d2c6b40",
        "azp": "web-frontend", "scope": "openid profile orders:read orders:write",
        "realm_access": {"roles": ["clerk", "viewer"]}, "tenant": "acme",
        "amr": ["pwd", "otp"]
    });
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn validate(c: &mut Criterion) {
    let clock = FixedClock::new(Timestamp::from_unix_seconds(NOW));
    let cases = [
        ("RS256", "rsa2048", "rsa-1", Algorithm::RS256),
        ("PS256", "rsa2048", "rsa-1", Algorithm::PS256),
        ("ES256", "p256", "ec-256", Algorithm::ES256),
        ("ES384", "p384", "ec-384", Algorithm::ES384),
        ("EdDSA", "ed25519", "ed-1", Algorithm::EdDSA),
    ];
    let mut group = c.benchmark_group("jwt_validate");
    for (label, name, kid, alg) in cases {
        // From PEM, so one RSA key serves RS256 and PS256 (its JWK names RS256 only).
        let pem = fixture(&format!("{name}.pub.pem"));
        let key = VerificationKey::from_pem(Some(kid), alg, &pem).unwrap();
        let decoding = key.decoding_key().clone();
        let authn = JwtAuthenticator::builder()
            .issuer(
                IssuerConfig::new(ISSUER, ["orders-api"]),
                KeyStore::fixed(KeySet::from_keys([key]), Arc::new(clock.clone())),
            )
            .clock(Arc::new(clock.clone()))
            .build()
            .unwrap();
        let token = token(name, kid, alg);
        assert!(ready(authn.verify(&token)).is_ok());
        let mut validation = Validation::new(alg);
        validation.set_audience(&["orders-api"]);
        validation.set_issuer(&[ISSUER]);
        assert!(jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation).is_ok());

        paired(label, &authn, &token, &decoding, &validation);

        group.bench_function(format!("aaa/{label}"), |b| {
            b.iter(|| ready(authn.verify(black_box(&token))).unwrap());
        });
        let cached = JwtAuthenticator::builder()
            .issuer(
                IssuerConfig::new(ISSUER, ["orders-api"]),
                KeyStore::fixed(
                    KeySet::from_keys([VerificationKey::from_pem(Some(kid), alg, &pem).unwrap()]),
                    Arc::new(clock.clone()),
                ),
            )
            .clock(Arc::new(clock.clone()))
            .verified_token_cache(10_000)
            .build()
            .unwrap();
        group.bench_function(format!("aaa_cached/{label}"), |b| {
            b.iter(|| ready(cached.verify(black_box(&token))).unwrap());
        });
        group.bench_function(format!("jsonwebtoken/{label}"), |b| {
            b.iter(|| {
                jsonwebtoken::decode::<serde_json::Value>(black_box(&token), &decoding, &validation)
                    .unwrap()
            });
        });
    }
    group.finish();
}

/// Alternates batches of `aaa` and bare `jsonwebtoken` validations and prints the median of the
/// per-batch ratios: robust against load that drifts during a run (other builds on the machine).
fn paired(
    label: &str,
    authn: &JwtAuthenticator,
    token: &str,
    decoding: &jsonwebtoken::DecodingKey,
    validation: &Validation,
) {
    const BATCH: u32 = 100;
    let mut ratios = Vec::new();
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..31 {
        let t = Instant::now();
        for _ in 0..BATCH {
            black_box(ready(authn.verify(black_box(token))).unwrap());
        }
        let a = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for _ in 0..BATCH {
            black_box(
                jsonwebtoken::decode::<serde_json::Value>(black_box(token), decoding, validation)
                    .unwrap(),
            );
        }
        let b = t.elapsed().as_secs_f64();
        ratios.push(a / b);
        ours.push(a);
        bare.push(b);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let per = f64::from(BATCH) / 1e6;
    eprintln!(
        "paired {label}: aaa {:.1} µs, jsonwebtoken {:.1} µs, median ratio {:.3}",
        median(&mut ours) / per,
        median(&mut bare) / per,
        median(&mut ratios)
    );
}

/// A local key source counting its fetches.
#[derive(Debug)]
struct Counting {
    keys: KeySet,
    fetches: Arc<AtomicUsize>,
}

impl KeySource for Counting {
    fn fetch(&self) -> BoxFuture<'_, Result<KeyFetch, KeySourceError>> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let keys = self.keys.clone();
        Box::pin(async move {
            Ok(KeyFetch {
                keys,
                max_age: None,
            })
        })
    }
}

fn unknown_kid_flood(c: &mut Criterion) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let source = Counting {
        keys: KeySet::from_keys([jwk_key("p256")]),
        fetches: fetches.clone(),
    };
    // Real time: the cooldown (30 s by default) is what bounds the fetches.
    let store = KeyStore::new(
        source,
        CachePolicy::default(),
        Arc::new(aaa_core::SystemClock),
    );
    let authn = JwtAuthenticator::builder()
        .issuer(IssuerConfig::new(ISSUER, ["orders-api"]), store)
        .build()
        .unwrap();
    let good = token("p256", "ec-256", Algorithm::ES256);
    let (_, rest) = good.split_once('.').unwrap();
    let random: Vec<String> = (0..10_000u64)
        .map(|i| {
            let header = json!({"alg": "ES256", "kid": format!("k{}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15))});
            let h = URL_SAFE_NO_PAD.encode(header.to_string().as_bytes());
            format!("{h}.{rest}")
        })
        .collect();
    let started = Instant::now();
    let mut i = 0usize;
    c.bench_function("jwt_unknown_kid", |b| {
        b.iter(|| {
            i = (i + 1) % random.len();
            ready(authn.verify(black_box(&random[i]))).unwrap_err()
        });
    });
    let secs = started.elapsed().as_secs_f64();
    let n = fetches.load(Ordering::SeqCst);
    eprintln!(
        "unknown-kid flood: {n} fetches in {secs:.1} s ({:.3} fetches/s; cooldown 30 s)",
        n as f64 / secs
    );
}

criterion_group!(benches, validate, unknown_kid_flood);
criterion_main!(benches);
