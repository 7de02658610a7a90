//! Authentication: the JWT attack suite, the JWKS lifecycle against a real HTTP server on
//! 127.0.0.1, API keys and forwarded identities through the public API.

mod attacks;
mod differential;
mod hostile_keys;
mod lifecycle;
pub(crate) mod others;
mod review;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use aaa::{
    FixedClock, IssuerConfig, JwtAuthenticator, KeySet, KeyStore, Timestamp, VerificationKey,
    authn::Algorithm,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::EncodingKey;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

pub(crate) const ISSUER: &str = "https://idp.test";
pub(crate) const AUDIENCE: &str = "orders-api";
pub(crate) const NOW: i64 = 1_800_000_000;

pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/authn/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub(crate) fn clock() -> FixedClock {
    FixedClock::new(Timestamp::from_unix_seconds(NOW))
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The private key of a fixture and the algorithm to sign with.
pub(crate) fn signing_key(name: &str, alg: Algorithm) -> EncodingKey {
    let pem = fixture(&format!("{name}.key.pem"));
    match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem).unwrap(),
        _ => EncodingKey::from_rsa_pem(&pem).unwrap(),
    }
}

/// Signs `header` and `payload` (raw JSON text, so duplicates and oddities survive) with a fixture
/// key.
pub(crate) fn sign_raw(header: &str, payload: &str, key: &EncodingKey, alg: Algorithm) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
    format!("{input}.{sig}")
}

/// Typical access-token claims, valid at [`NOW`].
pub(crate) fn claims() -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "alice",
        "iat": NOW - 10, "exp": NOW + 600,
        "scope": "orders:read orders:write", "roles": ["clerk"], "department": "sales"
    })
}

/// A token signed by fixture `name` with `kid`, with `claims`.
pub(crate) fn token(name: &str, kid: &str, alg: Algorithm, claims: &Value) -> String {
    let header = json!({"alg": format!("{alg:?}"), "kid": kid, "typ": "at+jwt"});
    sign_raw(
        &header.to_string(),
        &claims.to_string(),
        &signing_key(name, alg),
        alg,
    )
}

pub(crate) fn jwk_key(name: &str) -> VerificationKey {
    let jwk = serde_json::from_slice(&fixture(&format!("{name}.pub.jwk.json"))).unwrap();
    VerificationKey::from_jwk(&jwk, false).unwrap()
}

/// An authenticator for [`ISSUER`] with fixed keys (all four fixture keys).
pub(crate) fn fixed_authenticator(config: IssuerConfig, clock: &FixedClock) -> JwtAuthenticator {
    let keys = KeySet::from_keys(["rsa2048", "p256", "p384", "ed25519"].map(jwk_key));
    authenticator_with(config, keys, clock)
}

/// An authenticator trusting `config`'s issuer with the fixed key set `keys`.
pub(crate) fn authenticator_with(
    config: IssuerConfig,
    keys: KeySet,
    clock: &FixedClock,
) -> JwtAuthenticator {
    JwtAuthenticator::builder()
        .issuer(config, KeyStore::fixed(keys, Arc::new(clock.clone())))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap()
}

pub(crate) fn issuer() -> IssuerConfig {
    IssuerConfig::new(ISSUER, [AUDIENCE])
}

/// What the test IdP answers on its JWKS path.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    Jwks(String, Option<&'static str>),
    Status(u16),
    Hang,
    Garbage,
}

/// Reads a request head from `socket`; its path (`None` if the client went away first).
pub(crate) async fn request_path(socket: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let request = String::from_utf8_lossy(&buf);
    Some(request.split(' ').nth(1).unwrap_or("").to_owned())
}

/// A tiny IdP on 127.0.0.1:0 serving discovery and a JWKS, counting requests.
#[derive(Debug, Clone)]
pub(crate) struct Idp {
    pub(crate) base: String,
    pub(crate) answer: Arc<Mutex<Answer>>,
    pub(crate) jwks_requests: Arc<AtomicUsize>,
    pub(crate) discovery_issuer: Arc<Mutex<String>>,
}

pub(crate) fn jwks_of(names: &[&str]) -> String {
    let keys: Vec<Value> = names
        .iter()
        .map(|n| serde_json::from_slice(&fixture(&format!("{n}.pub.jwk.json"))).unwrap())
        .collect();
    json!({ "keys": keys }).to_string()
}

impl Idp {
    pub(crate) async fn start(answer: Answer) -> Idp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let idp = Idp {
            discovery_issuer: Arc::new(Mutex::new(base.clone())),
            base,
            answer: Arc::new(Mutex::new(answer)),
            jwks_requests: Arc::new(AtomicUsize::new(0)),
        };
        let server = idp.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let server = server.clone();
                tokio::spawn(async move {
                    let Some(path) = request_path(&mut socket).await else {
                        return;
                    };
                    let (status, body, cache) = if path == "/.well-known/openid-configuration" {
                        let issuer = server.discovery_issuer.lock().unwrap().clone();
                        let doc =
                            json!({"issuer": issuer, "jwks_uri": format!("{}/jwks", server.base)});
                        (200, doc.to_string(), None)
                    } else {
                        server.jwks_requests.fetch_add(1, Ordering::SeqCst);
                        let answer = server.answer.lock().unwrap().clone();
                        match answer {
                            Answer::Jwks(body, cache) => (200, body, cache),
                            Answer::Status(s) => (s, "oops".to_owned(), None),
                            Answer::Garbage => (200, "<html>not json".to_owned(), None),
                            Answer::Hang => {
                                // Hold the connection open until the client gives up.
                                let _ = socket.read(&mut [0u8; 1]).await;
                                return;
                            }
                        }
                    };
                    let cache = cache
                        .map(|c| format!("cache-control: {c}\r\n"))
                        .unwrap_or_default();
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{cache}connection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        idp
    }

    pub(crate) fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    pub(crate) fn fetches(&self) -> usize {
        self.jwks_requests.load(Ordering::SeqCst)
    }
}

/// HTTP options with short timeouts for tests.
pub(crate) fn fast_http() -> aaa::authn::HttpOptions {
    aaa::authn::HttpOptions::default()
        .with_timeouts(Duration::from_millis(500), Duration::from_millis(500))
}
