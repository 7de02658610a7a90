//! A hostile key server: generated answers to JWKS fetches and OIDC discovery, served for real
//! on 127.0.0.1:0, against the documented promises of `JwksUrl`, `OidcDiscovery`, `KeyStore`
//! and key loading. Time moves with a `FixedClock`; the server's own misbehaviour (dribbling,
//! stalling) is what the client's timeouts must bound, not a stand-in for synchronization.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use aaa::{
    AuthnError, Clock, FixedClock, JwksUrl, JwtAuthenticator, KeySource, KeyStore, OidcDiscovery,
    authn::{Algorithm, CachePolicy, HttpOptions, KeySourceError},
};
use base64::Engine;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use super::{NOW, b64, claims, clock, fixture, issuer, request_path, sign_raw, signing_key};
use crate::rng::Rng;

// ---------------------------------------------------------------------------------------------
// The hostile server
// ---------------------------------------------------------------------------------------------

/// What the server does with a request on a path.
#[derive(Debug, Clone)]
enum Reply {
    /// Writes these bytes and closes.
    Raw(Vec<u8>),
    /// Writes the head, then one byte every 20 ms, for as long as the client listens.
    Dribble(Vec<u8>),
    /// Writes the head, then holds the connection open until the client goes away.
    Stall(Vec<u8>),
    /// Reads the request and never answers.
    Silent,
}

/// A server on 127.0.0.1:0 answering each path with its current [`Reply`], and recording every
/// request (path, and the test clock's time when it arrived).
#[derive(Clone)]
struct Hostile {
    base: String,
    replies: Arc<Mutex<HashMap<String, Reply>>>,
    hits: Arc<Mutex<Vec<(String, i64)>>>,
}

impl Hostile {
    async fn start(clock: Option<FixedClock>) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Hostile {
            base: format!("http://{}", listener.local_addr().unwrap()),
            replies: Arc::default(),
            hits: Arc::default(),
        };
        let shared = server.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let server = shared.clone();
                let clock = clock.clone();
                tokio::spawn(async move {
                    let Some(path) = request_path(&mut socket).await else {
                        return;
                    };
                    let at = clock.map_or(0, |c| c.now().unix_seconds());
                    server.hits.lock().unwrap().push((path.clone(), at));
                    let reply = server.replies.lock().unwrap().get(&path).cloned();
                    match reply {
                        None => {
                            let _ = socket.write_all(&http(404, &[], b"")).await;
                        }
                        Some(Reply::Raw(bytes)) => {
                            let _ = socket.write_all(&bytes).await;
                        }
                        Some(Reply::Dribble(head)) => {
                            if socket.write_all(&head).await.is_ok() {
                                // Bounded, so a client that never gives up cannot hang the suite.
                                for _ in 0..500 {
                                    tokio::time::sleep(Duration::from_millis(20)).await;
                                    if socket.write_all(b" ").await.is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        Some(Reply::Stall(head)) => {
                            if socket.write_all(&head).await.is_ok() {
                                let _ = socket.read(&mut [0u8; 1]).await;
                            }
                        }
                        Some(Reply::Silent) => {
                            let _ = socket.read(&mut [0u8; 1]).await;
                        }
                    }
                    let _ = socket.shutdown().await;
                });
            }
        });
        server
    }

    fn set(&self, path: &str, reply: Reply) {
        self.replies.lock().unwrap().insert(path.to_owned(), reply);
    }

    fn hits(&self) -> Vec<(String, i64)> {
        self.hits.lock().unwrap().clone()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// A response with a content-length, closing the connection.
fn http(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("connection: close\r\n\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A 200 JSON response.
fn ok(body: &[u8]) -> Vec<u8> {
    http(200, &[("content-type", "application/json")], body)
}

/// A 200 chunked response of `body` cut at `cuts`.
fn chunked(body: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    let mut start = 0;
    for end in cuts.iter().copied().chain([body.len()]) {
        let end = end.clamp(start, body.len());
        if end > start {
            out.extend_from_slice(format!("{:x}\r\n", end - start).as_bytes());
            out.extend_from_slice(&body[start..end]);
            out.extend_from_slice(b"\r\n");
        }
        start = end;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Short timeouts, and a cap of `cap` bytes.
fn options(cap: usize) -> HttpOptions {
    HttpOptions::default()
        .with_timeouts(Duration::from_millis(300), Duration::from_millis(300))
        .with_max_response_bytes(cap)
}

// ---------------------------------------------------------------------------------------------
// Keys and tokens
// ---------------------------------------------------------------------------------------------

fn jwk(name: &str) -> Value {
    serde_json::from_slice(&fixture(&format!("{name}.pub.jwk.json"))).unwrap()
}

fn jwks(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

/// The attacker's P-256 key, listed under `kid`.
fn attacker_jwk(kid: &str) -> Value {
    let mut key = jwk("p256-attacker");
    key["kid"] = json!(kid);
    key
}

/// Claims valid for thirty days from [`NOW`], so the clock can move.
fn long_claims() -> Value {
    let mut cl = claims();
    cl["exp"] = json!(NOW + 30 * 86_400);
    cl
}

/// A token signed by fixture `name` with `alg`, naming `kid` (or none).
fn signed(name: &str, kid: Option<&str>, alg: Algorithm) -> String {
    signed_by(super::ISSUER, name, kid, alg)
}

/// As [`signed`], for the issuer `iss`.
fn signed_by(iss: &str, name: &str, kid: Option<&str>, alg: Algorithm) -> String {
    let mut cl = long_claims();
    cl["iss"] = json!(iss);
    let mut header = json!({"alg": format!("{alg:?}")});
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    sign_raw(
        &header.to_string(),
        &cl.to_string(),
        &signing_key(name, alg),
        alg,
    )
}

fn authenticator(store: KeyStore, clock: &FixedClock) -> JwtAuthenticator {
    JwtAuthenticator::builder()
        .issuer(issuer(), store)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Hostile responses: typed failures that keep the good keys
// ---------------------------------------------------------------------------------------------

/// The error a hostile response must produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Status(u16),
    TooLarge,
    Transport,
    Parse,
}

fn matches_expectation(error: &KeySourceError, expect: Expect) -> bool {
    match (error, expect) {
        (KeySourceError::Status(s), Expect::Status(e)) => *s == e,
        (KeySourceError::TooLarge(_), Expect::TooLarge)
        | (KeySourceError::Transport(_), Expect::Transport)
        | (KeySourceError::Parse(_), Expect::Parse) => true,
        _ => false,
    }
}

/// The cap the hostile-response cases run with.
const CAP: usize = 4096;

/// One generated hostile response, its description and the error it must cause. Every body
/// that parses as JSON lists the attacker's key, under its own kid and under the good one's.
fn hostile_response(rng: &mut Rng) -> (String, Vec<u8>, Expect) {
    let evil = jwks(&[attacker_jwk("attacker"), attacker_jwk("ec-256")]);
    let evil_bytes = evil.as_bytes();
    match rng.below(12) {
        0 => {
            let status = rng.pick(&[
                201u16, 202, 203, 204, 206, 301, 302, 303, 307, 308, 400, 401, 403, 404, 410, 429,
                500, 502, 503,
            ]);
            let mut headers = vec![("content-type", "application/json")];
            if (300..400).contains(&status) {
                headers.push(("location", "http://127.0.0.1:1/jwks"));
            }
            let body: &[u8] = if status == 204 { b"" } else { evil_bytes };
            (
                format!("status {status}"),
                http(status, &headers, body),
                Expect::Status(status),
            )
        }
        1 => {
            // Declares more than the cap; sends only a little of it.
            let declared = CAP + 1 + rng.below(1 << 30);
            let mut raw = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\nconnection: close\r\n\r\n"
            )
            .into_bytes();
            raw.extend_from_slice(evil_bytes);
            (format!("content-length {declared}"), raw, Expect::TooLarge)
        }
        2 => {
            // A valid JSON document over the cap, in generated chunks.
            let pad = CAP + 1 - evil.len() + rng.below(3 * CAP);
            let body = format!("{}{}", " ".repeat(pad), evil).into_bytes();
            let mut cuts: Vec<usize> = (0..rng.below(6)).map(|_| rng.below(body.len())).collect();
            cuts.sort_unstable();
            (
                format!("chunked {} bytes at {cuts:?}", body.len()),
                chunked(&body, &cuts),
                Expect::TooLarge,
            )
        }
        3 => {
            // Chunked framing broken after a first good chunk.
            let bad = rng.pick(&[
                "zz\r\nxx\r\n0\r\n\r\n",
                "ffffffffffffffffff\r\nx",
                "5\r\nabcdefgh\r\n0\r\n\r\n",
                "-1\r\n\r\n",
                "3;x\r\n",
                "100\r\nshort",
            ]);
            let mut raw = chunked(evil_bytes, &[]);
            // Drop the terminator and append the broken part.
            raw.truncate(raw.len() - 5);
            raw.extend_from_slice(bad.as_bytes());
            (format!("chunked then {bad:?}"), raw, Expect::Transport)
        }
        4 => {
            // Content-length longer than what is sent before the close.
            let missing = 1 + rng.below(100);
            let mut raw = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                evil.len() + missing
            )
            .into_bytes();
            raw.extend_from_slice(evil_bytes);
            (format!("{missing} bytes short"), raw, Expect::Transport)
        }
        5 => {
            // Content-length shorter than the body: the document is cut.
            let cut = 1 + rng.below(evil.len() - 1);
            let mut raw = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                evil.len() - cut
            )
            .into_bytes();
            raw.extend_from_slice(evil_bytes);
            (format!("cut by {cut}"), raw, Expect::Parse)
        }
        6 => {
            // Not HTTP.
            let junk = rng.pick(&[
                &b""[..],
                b"SSH-2.0-OpenSSH_9.6\r\n",
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                b"HTTP/1.1 2000 OK\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nbad header line\r\n\r\n{}",
                b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!",
            ]);
            (
                format!("not http: {junk:?}"),
                junk.to_vec(),
                Expect::Transport,
            )
        }
        7 => {
            // A header larger than any client should buffer.
            let size = 600_000 + rng.below(400_000);
            let raw = format!(
                "HTTP/1.1 200 OK\r\nx-pad: {}\r\ncontent-length: {}\r\n\r\n{evil}",
                "a".repeat(size),
                evil.len()
            );
            (
                format!("{size}-byte header"),
                raw.into_bytes(),
                Expect::Transport,
            )
        }
        8 => {
            // Deep nesting, within the cap.
            let depth = 200 + rng.below(CAP / 2 - 300);
            let body = if rng.chance(50) {
                format!(r#"{{"keys":{}{}}}"#, "[".repeat(depth), "]".repeat(depth))
            } else {
                format!(
                    r#"{{"keys":[{{"kty":"EC","x":{}1{}}}]}}"#,
                    r#"{"a":"#.repeat(depth / 5),
                    "}".repeat(depth / 5)
                )
            };
            (
                format!("nested {depth}"),
                ok(body.as_bytes()),
                Expect::Parse,
            )
        }
        9 => {
            // Not UTF-8: a byte of the document replaced by an invalid one, or a BOM.
            let mut body = evil_bytes.to_vec();
            if rng.chance(30) {
                body.splice(0..0, [0xef, 0xbb, 0xbf]);
            } else {
                let at = 1 + rng.below(body.len() - 2);
                body[at] = rng.pick(&[0xff, 0xc0, 0x80, 0xfe]);
            }
            ("not utf-8".to_owned(), ok(&body), Expect::Parse)
        }
        10 => {
            // JSON, but not a JWKS.
            let doc = rng.pick(&[
                "[]",
                "null",
                "\"keys\"",
                "{}",
                r#"{"keys":null}"#,
                r#"{"keys":{}}"#,
                r#"{"Keys":[]}"#,
                r#"{"keys":"[]"}"#,
                r#"{"keys":[],"keys":[]}"#,
                r#"{"keys":[]} trailing"#,
                r#"{"keys":[] "#,
                "",
            ]);
            let doc = doc.replace("[]", &format!("[{}]", attacker_jwk("ec-256")));
            (
                format!("document {doc:.40}"),
                ok(doc.as_bytes()),
                Expect::Parse,
            )
        }
        _ => {
            // The JWKS as the body of a non-200, with a cache header that would keep it.
            let status = rng.pick(&[203u16, 226, 299, 418, 500]);
            (
                format!("{status} with max-age"),
                http(status, &[("cache-control", "max-age=86400")], evil_bytes),
                Expect::Status(status),
            )
        }
    }
}

/// Every generated hostile answer is a typed failure; the cached keys stay exactly the good
/// ones; the attacker's keys never verify; the good key still does.
#[tokio::test]
async fn hostile_responses_are_typed_failures_that_keep_the_good_keys() {
    let server = Hostile::start(None).await;
    let c = clock();
    let store = KeyStore::new(
        JwksUrl::new(&server.url("/jwks"), options(CAP)).unwrap(),
        CachePolicy::default(),
        Arc::new(c.clone()),
    );
    let a = authenticator(store.clone(), &c);
    server.set("/jwks", Reply::Raw(ok(jwks(&[jwk("p256")]).as_bytes())));
    store.refresh().await.unwrap();
    let good = signed("p256", Some("ec-256"), Algorithm::ES256);
    let forged = [
        signed("p256-attacker", Some("attacker"), Algorithm::ES256),
        signed("p256-attacker", Some("ec-256"), Algorithm::ES256),
    ];
    let mut rng = Rng(0x6a77_6b73_2d68_6f73);
    let mut seen = std::collections::BTreeSet::new();
    for case in 0..150u64 {
        let (what, raw, expect) = hostile_response(&mut rng);
        seen.insert(match expect {
            Expect::Status(_) => "status",
            Expect::TooLarge => "too large",
            Expect::Transport => "transport",
            Expect::Parse => "parse",
        });
        server.set("/jwks", Reply::Raw(raw));
        let result = store.refresh().await;
        match &result {
            Err(e) => assert!(
                matches_expectation(e, expect),
                "case {case} ({what}): expected {expect:?}, got {e:?}"
            ),
            Ok(()) => panic!("case {case} ({what}): accepted, expected {expect:?}"),
        }
        assert_eq!(
            store.current_keys().unwrap().key_ids(),
            ["ec-256"],
            "case {case} ({what})"
        );
        let health = store.health();
        assert_eq!(health.consecutive_failures, case + 1, "case {case}");
        assert!(!health.stale);
        a.verify(&good).await.unwrap();
        for token in &forged {
            assert!(
                matches!(a.verify(token).await, Err(AuthnError::Invalid(_))),
                "case {case} ({what}): a forged token verified"
            );
        }
    }
    assert_eq!(
        seen.len(),
        4,
        "every expected error was generated: {seen:?}"
    );
}

/// Documents nested as deep as the default cap allows (256 KiB of brackets), in the key list
/// or in a member the parser skips, end in a typed answer (a parse error, or a set without a
/// usable key), not in a crash.
#[tokio::test]
async fn documents_nested_to_the_full_cap_end_in_a_typed_answer() {
    let server = Hostile::start(None).await;
    let cap = HttpOptions::default().max_response_bytes;
    let depth = (cap - 64) / 2;
    for body in [
        format!(r#"{{"keys":{}{}}}"#, "[".repeat(depth), "]".repeat(depth)),
        format!(
            r#"{{"keys":[],"x":{}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        ),
        format!(r#"{{"keys":[{{"kty":"EC","x":{}}}]}}"#, "[".repeat(depth)),
        format!(r#"{{"x":{}"#, r#"{"a":"#.repeat(depth / 3)),
    ] {
        assert!(body.len() <= cap);
        server.set("/jwks", Reply::Raw(ok(body.as_bytes())));
        let store = KeyStore::new(
            JwksUrl::new(&server.url("/jwks"), HttpOptions::default()).unwrap(),
            CachePolicy::default(),
            Arc::new(clock()),
        );
        let result = store.refresh().await;
        assert!(
            matches!(
                result,
                Err(KeySourceError::Parse(_) | KeySourceError::Empty)
            ),
            "{:.40}: {result:?}",
            body
        );
    }
}

/// The size cap is exact, whatever the framing: a valid document of `cap` bytes loads, one of
/// `cap + 1` is [`KeySourceError::TooLarge`] (generated caps, lengths and chunk cuts).
#[tokio::test]
async fn response_cap_is_exact_whatever_the_framing() {
    let server = Hostile::start(None).await;
    let doc = jwks(&[jwk("p256")]);
    let mut rng = Rng(0x6361_7073);
    for case in 0..40 {
        let cap = doc.len() + rng.below(4000);
        let len = match rng.below(4) {
            0 => cap,
            1 => cap + 1,
            2 => cap - rng.below(cap - doc.len() + 1),
            _ => cap + 1 + rng.below(2 * cap),
        };
        let body = format!("{}{doc}", " ".repeat(len - doc.len()));
        let framing = rng.below(3);
        let raw = match framing {
            0 => ok(body.as_bytes()),
            1 => {
                let mut cuts: Vec<usize> =
                    (0..rng.below(8)).map(|_| rng.below(body.len())).collect();
                cuts.sort_unstable();
                chunked(body.as_bytes(), &cuts)
            }
            _ => {
                // No length at all: the body ends when the connection closes.
                let mut raw = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_vec();
                raw.extend_from_slice(body.as_bytes());
                raw
            }
        };
        server.set("/jwks", Reply::Raw(raw));
        let source = JwksUrl::new(&server.url("/jwks"), options(cap)).unwrap();
        let result = source.fetch().await;
        if len <= cap {
            let fetched = result.unwrap_or_else(|e| {
                panic!("case {case}: {len} bytes under a cap of {cap} (framing {framing}): {e:?}")
            });
            assert_eq!(fetched.keys.key_ids(), ["ec-256"]);
        } else {
            assert!(
                matches!(result, Err(KeySourceError::TooLarge(c)) if c == cap),
                "case {case}: {len} bytes over a cap of {cap} (framing {framing}): {result:?}"
            );
        }
    }
}

/// A server that dribbles its body, stalls after its head, or never answers, costs at most the
/// configured total timeout (100 ms here), for a JWKS URL and for each step of discovery; the
/// failure is a typed transport error.
#[tokio::test]
async fn dribbling_and_stalled_servers_cost_at_most_the_timeout() {
    let server = Hostile::start(None).await;
    let quick = options(CAP).with_timeouts(Duration::from_millis(100), Duration::from_millis(100));
    let head_cl =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 3000\r\n\r\n{\"keys\":[".to_vec();
    let head_chunked =
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1000\r\n{\"keys\":[".to_vec();
    let head_eof = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{\"keys\":[".to_vec();
    let half_head = b"HTTP/1.1 200 OK\r\ncontent-le".to_vec();
    let replies = [
        Reply::Dribble(head_cl.clone()),
        Reply::Dribble(head_chunked),
        Reply::Dribble(head_eof.clone()),
        Reply::Stall(head_cl),
        Reply::Stall(head_eof),
        Reply::Stall(half_head),
        Reply::Silent,
    ];
    let issuer = server.base.clone();
    let discovery = json!({"issuer": issuer, "jwks_uri": server.url("/jwks")}).to_string();
    for (i, reply) in replies.iter().enumerate() {
        for via_discovery in [false, true] {
            if via_discovery {
                // Discovery dribbles; then discovery answers and the JWKS dribbles.
                server.set("/.well-known/openid-configuration", reply.clone());
            } else {
                server.set("/jwks", reply.clone());
                server.set(
                    "/.well-known/openid-configuration",
                    Reply::Raw(ok(discovery.as_bytes())),
                );
            }
            let source: Box<dyn KeySource> = if via_discovery || i % 2 == 0 {
                Box::new(OidcDiscovery::new(&issuer, quick).unwrap())
            } else {
                Box::new(JwksUrl::new(&server.url("/jwks"), quick).unwrap())
            };
            let started = Instant::now();
            let result = source.fetch().await;
            let took = started.elapsed();
            assert!(
                matches!(result, Err(KeySourceError::Transport(_))),
                "{reply:?} (discovery {via_discovery}): {result:?}"
            );
            // One timeout per request; discovery makes at most two requests.
            assert!(
                took < Duration::from_millis(2 * 100 + 400),
                "{reply:?} (discovery {via_discovery}): took {took:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Cache-Control
// ---------------------------------------------------------------------------------------------

/// The TTL bounds the cache-control cases run with: default 300 s, within [60 s, 900 s].
fn ttl_policy() -> CachePolicy {
    CachePolicy::default().with_ttl(
        Duration::from_secs(300),
        Duration::from_secs(60),
        Duration::from_secs(900),
    )
}

/// The freshness (seconds) a store may give a response whose `Cache-Control` field lines are
/// `lines`: `no-cache`/`no-store` count as zero (the docs), a `max-age` is delta-seconds (RFC 9111
/// §1.2.2, §5.2.2.1), an invalid one may count as stale or be ignored, several `max-age`
/// values take the first or count as stale (§4.2.1), and field lines combine into one list (RFC
/// 9110 §5.3). Each candidate is clamped to [60, 900].
fn allowed_ttls(lines: &[String]) -> Vec<u64> {
    let directives: Vec<String> = lines
        .iter()
        .flat_map(|l| l.split(','))
        .map(|d| d.trim().to_ascii_lowercase())
        .collect();
    let mut allowed: Vec<u64> = if directives
        .iter()
        .any(|d| d == "no-cache" || d == "no-store")
    {
        vec![0]
    } else {
        let ages: Vec<&str> = directives
            .iter()
            .filter_map(|d| d.strip_prefix("max-age="))
            .collect();
        let parse = |v: &str| -> Option<Option<u64>> {
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Too large to represent: the greatest value (RFC 9111 §1.2.2), or ignored.
            Some(v.parse::<u64>().ok())
        };
        match ages.as_slice() {
            [] => vec![300],
            [one] => match parse(one) {
                Some(Some(n)) => vec![n],
                Some(None) => vec![u64::MAX, 300],
                None => vec![0, 300],
            },
            [first, rest @ ..] if rest.iter().all(|r| r == first) => match parse(first) {
                Some(Some(n)) => vec![n],
                Some(None) => vec![u64::MAX, 300],
                None => vec![0, 300],
            },
            [first, ..] => match parse(first) {
                Some(Some(n)) => vec![n, 0],
                _ => vec![0, 300],
            },
        }
    };
    for t in &mut allowed {
        *t = (*t).clamp(60, 900);
    }
    allowed
}

fn cache_directive(rng: &mut Rng) -> String {
    let n = rng.pick(&[
        "0",
        "1",
        "59",
        "60",
        "61",
        "300",
        "899",
        "900",
        "901",
        "86400",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999999",
    ]);
    match rng.below(8) {
        0 | 1 => format!("max-age={n}"),
        2 => format!("MAX-AGE=\"{n}\""),
        3 => rng
            .pick(&[
                "max-age=-1",
                "max-age=abc",
                "max-age=",
                "max-age=1e3",
                "max-age=+5",
            ])
            .to_owned(),
        4 => rng
            .pick(&["no-store", "no-cache", "NO-CACHE", "No-Store"])
            .to_owned(),
        _ => rng
            .pick(&[
                "public",
                "private",
                "must-revalidate",
                "s-maxage=5",
                "immutable",
                "stale-while-revalidate=100",
                "no-cache=\"set-cookie\"",
                "max-stale=10",
                "",
            ])
            .to_owned(),
    }
}

async fn ttl_of(server: &Hostile, store: &KeyStore, lines: &[String]) -> u64 {
    let headers: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| ("cache-control", l.as_str()))
        .collect();
    let body = jwks(&[jwk("p256")]);
    server.set("/jwks", Reply::Raw(http(200, &headers, body.as_bytes())));
    store.refresh().await.unwrap();
    let h = store.health();
    u64::try_from(h.fresh_until.unwrap().unix_seconds() - h.last_attempt.unwrap().unix_seconds())
        .unwrap()
}

/// Generated `Cache-Control` values on one field line, with at most one `max-age`: the freshness
/// is the documented clamp of what the value says (garbage, negative, overflowing and quoted
/// values included), never outside [min_ttl, max_ttl].
#[tokio::test]
async fn cache_control_on_one_line_is_clamped_as_documented() {
    let server = Hostile::start(None).await;
    let c = clock();
    let store = KeyStore::new(
        JwksUrl::new(&server.url("/jwks"), options(CAP)).unwrap(),
        ttl_policy(),
        Arc::new(c.clone()),
    );
    let mut rng = Rng(0x0063_6163_6865);
    for case in 0..120 {
        let mut directives: Vec<String> = Vec::new();
        for _ in 0..=rng.below(3) {
            let d = cache_directive(&mut rng);
            let is_age = d.to_ascii_lowercase().starts_with("max-age");
            if !(is_age
                && directives
                    .iter()
                    .any(|d| d.to_ascii_lowercase().starts_with("max-age")))
            {
                directives.push(d);
            }
        }
        let lines = vec![directives.join(rng.pick(&[",", ", ", " , "]))];
        let ttl = ttl_of(&server, &store, &lines).await;
        let allowed = allowed_ttls(&lines);
        assert!(
            allowed.contains(&ttl),
            "case {case}: cache-control {lines:?} gave {ttl} s, allowed {allowed:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// OIDC discovery
// ---------------------------------------------------------------------------------------------

/// Spellings of `base` (`http://127.0.0.1:PORT`) that are another string, hence another issuer
/// (OpenID Connect Discovery §4.3: exact equality).
fn issuer_variants(base: &str, port: u16) -> Vec<String> {
    vec![
        format!("{base}/"),
        format!("{base}//"),
        format!("{base}/."),
        format!("{base}?"),
        format!("{base}#"),
        format!("{base} "),
        format!(" {base}"),
        format!("{base}\u{0}"),
        format!("{base}\u{200b}"),
        format!("{base}%2F"),
        base.replace("http://", "HTTP://"),
        base.replace("http://", "https://"),
        base.replace("127.0.0.1", "localhost"),
        base.replace("127.0.0.1", "LOCALHOST"),
        base.replace("127.0.0.1", "127.000.000.001"),
        base.replace("127.0.0.1", "[::1]"),
        base.replace("127.0.0.1", "user@127.0.0.1"),
        format!("http://127.0.0.1:{}", port.wrapping_add(1)),
        format!("http://127.0.0.1:0{port}"),
        "http://127.0.0.1".to_owned(),
        String::new(),
    ]
}

/// Discovery documents naming another issuer (any other spelling of it), naming it with the
/// wrong JSON type, or lacking a member, are refused with a typed error, and the `jwks_uri`
/// they name (serving the attacker's keys) is never fetched. A configured issuer with a
/// trailing slash is not the same issuer as one without.
#[tokio::test]
async fn discovery_refuses_every_other_spelling_of_the_issuer() {
    let server = Hostile::start(None).await;
    let base = server.base.clone();
    let port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    server.set(
        "/jwks",
        Reply::Raw(ok(jwks(&[attacker_jwk("ec-256")]).as_bytes())),
    );
    let jwks_uri = server.url("/jwks");
    let discover = |doc: String| {
        server.set(
            "/.well-known/openid-configuration",
            Reply::Raw(ok(doc.as_bytes())),
        );
    };
    let source = OidcDiscovery::new(&base, options(CAP)).unwrap();
    for variant in issuer_variants(&base, port) {
        discover(json!({"issuer": variant, "jwks_uri": jwks_uri}).to_string());
        let result = source.fetch().await;
        assert!(
            // `found` is the document's issuer as shown (control characters escaped).
            matches!(&result, Err(KeySourceError::IssuerMismatch { found, .. }) if *found == aaa::audit::printable(&variant)),
            "{variant:?}: {result:?}"
        );
    }
    for doc in [
        json!({"issuer": 5, "jwks_uri": jwks_uri}).to_string(),
        json!({"issuer": null, "jwks_uri": jwks_uri}).to_string(),
        json!({"issuer": [base], "jwks_uri": jwks_uri}).to_string(),
        json!({"jwks_uri": jwks_uri}).to_string(),
        json!({"issuer": base}).to_string(),
        json!({"issuer": base, "jwks_uri": null}).to_string(),
        json!({"issuer": base, "jwks_uri": [jwks_uri]}).to_string(),
        json!({"Issuer": base, "jwks_uri": jwks_uri}).to_string(),
        format!(r#"{{"issuer":"http://evil.example","issuer":"{base}","jwks_uri":"{jwks_uri}"}}"#),
        format!(r#"{{"issuer":"{base}","issuer":"http://evil.example","jwks_uri":"{jwks_uri}"}}"#),
        format!(r#"[{{"issuer":"{base}","jwks_uri":"{jwks_uri}"}}]"#),
    ] {
        discover(doc.clone());
        let result = source.fetch().await;
        assert!(
            matches!(result, Err(KeySourceError::Parse(_))),
            "{doc}: {result:?}"
        );
    }
    // The configured issuer's trailing slash is part of it: the document must repeat it.
    let slashed = OidcDiscovery::new(&format!("{base}/"), options(CAP)).unwrap();
    discover(json!({"issuer": base, "jwks_uri": jwks_uri}).to_string());
    assert!(matches!(
        slashed.fetch().await,
        Err(KeySourceError::IssuerMismatch { .. })
    ));
    assert!(
        server.hits().iter().all(|(path, _)| path != "/jwks"),
        "a refused discovery document's jwks_uri was fetched"
    );
    // Sanity: the exact issuer passes and fetches the keys it names.
    let fetched = source.fetch().await.unwrap();
    assert_eq!(fetched.keys.key_ids(), ["ec-256"]);
}

/// A discovery document with the right issuer but a `jwks_uri` that is not `https` (or loopback
/// `http`): relative, scheme-relative, `file:`, `data:` carrying keys, other schemes, a
/// non-loopback or look-alike host. Refused before any request.
#[tokio::test]
async fn discovery_refuses_jwks_uris_that_are_not_https_or_loopback() {
    let server = Hostile::start(None).await;
    let base = server.base.clone();
    let port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    let inline = format!("data:application/json,{}", jwks(&[attacker_jwk("ec-256")]));
    let source = OidcDiscovery::new(&base, options(CAP)).unwrap();
    for uri in [
        String::new(),
        "/jwks".to_owned(),
        "jwks".to_owned(),
        format!("//127.0.0.1:{port}/jwks"),
        "file:///etc/passwd".to_owned(),
        format!("file://127.0.0.1:{port}/jwks"),
        inline,
        format!("ftp://127.0.0.1:{port}/jwks"),
        format!("ws://127.0.0.1:{port}/jwks"),
        format!("gopher://127.0.0.1:{port}/jwks"),
        "javascript:alert(1)".to_owned(),
        "http://idp.example/jwks".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        format!("http://127.0.0.1.nip.io:{port}/jwks"),
        format!("http://localhost.:{port}/jwks"),
        format!("http://localhost.evil.example:{port}/jwks"),
        format!("http://[::ffff:127.0.0.1]:{port}/jwks"),
        format!("http://0.0.0.0:{port}/jwks"),
        "HTTP://IDP.EXAMPLE/jwks".to_owned(),
    ] {
        server.set(
            "/.well-known/openid-configuration",
            Reply::Raw(ok(json!({"issuer": base, "jwks_uri": uri})
                .to_string()
                .as_bytes())),
        );
        let result = source.fetch().await;
        assert!(
            matches!(result, Err(KeySourceError::InsecureUrl(_))),
            "{uri:?}: {result:?}"
        );
    }
    assert!(
        server
            .hits()
            .iter()
            .all(|(path, _)| path == "/.well-known/openid-configuration")
    );
    // A redirecting discovery document is not followed either.
    server.set(
        "/.well-known/openid-configuration",
        Reply::Raw(http(302, &[("location", &server.url("/elsewhere"))], b"")),
    );
    assert!(matches!(
        source.fetch().await,
        Err(KeySourceError::Status(302))
    ));
}

// ---------------------------------------------------------------------------------------------
// Key material
// ---------------------------------------------------------------------------------------------

fn b64d(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}

/// A generated change to a JWK of fixture `name`: the key, and whether it is still the same key
/// (the fixture's private key must then verify through it) or not (nothing it signs may verify).
fn mutate_key(rng: &mut Rng, name: &str) -> (Value, bool, String) {
    let mut key = jwk(name);
    let kty = key["kty"].as_str().unwrap().to_owned();
    let same = rng.chance(35);
    if same {
        let what = match rng.below(6) {
            0 => {
                key["x5c"] = json!(["AAAA", "not base64 !"]);
                key["x5t"] = json!("junk");
                "x5c and x5t that do not match"
            }
            1 => {
                key["ext"] = json!(true);
                key["nested"] = json!({"a": [1, {"b": null}]});
                "unknown members"
            }
            2 => {
                key["key_ops"] = json!(rng.pick(&[
                    json!(["verify"]),
                    json!(["sign", "verify"]),
                    json!(["verify", "verify"])
                ]));
                "key_ops with verify"
            }
            3 => {
                key.as_object_mut().unwrap().remove("use");
                "no use"
            }
            4 => {
                key.as_object_mut().unwrap().remove("alg");
                "no alg"
            }
            _ if kty == "RSA" => {
                let n = b64d(key["n"].as_str().unwrap());
                let zeros = 1 + rng.below(4);
                key["n"] = json!(b64(&[vec![0u8; zeros], n].concat()));
                "modulus with leading zero bytes"
            }
            _ => {
                key["kid"] = json!(key["kid"]);
                "unchanged"
            }
        };
        return (key, true, what.to_owned());
    }
    let field = match kty.as_str() {
        "RSA" => "n",
        _ => "x",
    };
    let what: String = match rng.below(9) {
        0 => {
            let mut bytes = b64d(key[field].as_str().unwrap());
            let bit = rng.below(bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            key[field] = json!(b64(&bytes));
            format!("bit {bit} of {field} flipped")
        }
        1 if kty == "RSA" => {
            let e = rng.pick(&[
                vec![],
                vec![0u8],
                vec![1],
                vec![2],
                vec![1, 0, 0],
                vec![1, 0, 0, 0, 0, 0, 0, 0, 1],
            ]);
            key["e"] = json!(b64(&e));
            format!("e = {e:?}")
        }
        1 if kty == "EC" => {
            let (x, y) = (key["x"].clone(), key["y"].clone());
            key["x"] = y;
            key["y"] = x;
            "x and y swapped".to_owned()
        }
        1 => {
            key["x"] = json!(b64(&[0u8; 32]));
            "x = 0".to_owned()
        }
        2 => {
            key["use"] = json!(rng.pick(&["enc", "SIG", "sig ", ""]));
            format!("use {}", key["use"])
        }
        3 => {
            key["key_ops"] = json!(rng.pick(&[
                json!([]),
                json!(["sign"]),
                json!(["encrypt", "wrapKey"]),
                json!(["Verify"])
            ]));
            format!("key_ops {}", key["key_ops"])
        }
        4 => {
            let other = match kty.as_str() {
                "RSA" => rng.pick(&["PS256", "RS384", "ES256", "HS256", "none", "RSA-OAEP"]),
                "EC" => rng.pick(&["ES512", "RS256", "EdDSA", "HS256", "ECDH-ES"]),
                _ => rng.pick(&["ES256", "Ed25519", "HS256", "none"]),
            };
            // Keep ES384 from passing for the P-384 key.
            let other = if key["alg"] == json!(other) {
                "HS512"
            } else {
                other
            };
            key["alg"] = json!(other);
            format!("alg {other}")
        }
        5 => {
            let to = rng.pick(&["oct", "EC", "RSA", "OKP", "rsa", ""]);
            if key["kty"] == json!(to) {
                key["kty"] = json!("oct");
                key["k"] = json!(b64(&[7u8; 64]));
            } else {
                key["kty"] = json!(to);
            }
            format!("kty {}", key["kty"])
        }
        6 if kty == "EC" => {
            let crv = rng.pick(&["P-384", "P-256", "P-521", "secp256k1"]);
            let crv = if key["crv"] == json!(crv) {
                "P-521"
            } else {
                crv
            };
            key["crv"] = json!(crv);
            key.as_object_mut().unwrap().remove("alg");
            format!("crv {crv}")
        }
        6 if kty == "EC" || kty == "OKP" => {
            let x = b64d(key["x"].as_str().unwrap());
            key["x"] = json!(b64(&[&[0u8][..], &x].concat()));
            "x with a leading zero byte".to_owned()
        }
        7 => {
            // Another fixture's material under this key's id.
            let other = rng.pick(&["rsa2048-b", "p256-attacker", "p384", "ed25519"]);
            let other = if other == name {
                "p256-attacker"
            } else {
                other
            };
            let kid = key["kid"].clone();
            key = jwk(other);
            key["kid"] = kid;
            format!("material of {other}")
        }
        _ => {
            let member = match kty.as_str() {
                "RSA" => rng.pick(&["n", "e", "kty"]),
                "EC" => rng.pick(&["x", "y", "crv", "kty"]),
                _ => rng.pick(&["x", "crv", "kty"]),
            };
            key.as_object_mut().unwrap().remove(member);
            key[member] = rng.pick(&[json!(5), json!(null), json!(["AQAB"]), json!({})]);
            format!("{member} = {}", key[member])
        }
    };
    (key, false, what)
}

/// A JWKS of generated variants of the fixture keys, each under its own kid: a variant that is
/// still the same key verifies the fixture's tokens; any other (bit flips, weak exponents,
/// swapped or off-curve points, `use`/`key_ops`/`alg`/`kty`/`crv` that disagree with the key or
/// with the token, another key's material) verifies nothing, and its refusal never costs the
/// other keys of the set.
#[tokio::test]
async fn generated_key_variants_verify_only_as_the_same_key() {
    let server = Hostile::start(None).await;
    let c = clock();
    let store = KeyStore::new(
        JwksUrl::new(&server.url("/jwks"), HttpOptions::default()).unwrap(),
        CachePolicy::default(),
        Arc::new(c.clone()),
    );
    let a = authenticator(store.clone(), &c);
    let bases = [
        ("rsa2048", Algorithm::RS256),
        ("p256", Algorithm::ES256),
        ("p384", Algorithm::ES384),
        ("ed25519", Algorithm::EdDSA),
    ];
    let mut rng = Rng(0x6b65_7973);
    let mut cases = Vec::new();
    for i in 0..160 {
        let (name, alg) = rng.pick(&bases);
        let (mut key, same, what) = mutate_key(&mut rng, name);
        let kid = format!("m{i}");
        key["kid"] = json!(kid);
        cases.push((name, alg, kid, key, same, what));
    }
    let keys: Vec<Value> = cases.iter().map(|c| c.3.clone()).collect();
    server.set("/jwks", Reply::Raw(ok(jwks(&keys).as_bytes())));
    store.refresh().await.unwrap();
    let loaded = store.current_keys().unwrap();
    let mut verified = 0;
    for (name, alg, kid, key, same, what) in &cases {
        let verdict = a.verify(&signed(name, Some(kid), *alg)).await;
        assert_eq!(
            verdict.is_ok(),
            *same,
            "{kid} ({name}, {what}): {verdict:?}; key {key}; loaded {}",
            loaded.get(kid).is_some()
        );
        if let Err(e) = verdict {
            assert!(matches!(e, AuthnError::Invalid(_)), "{kid}: {e:?}");
        }
        verified += usize::from(*same);
        // The attacker's signature under the variant's id never verifies.
        assert!(
            a.verify(&signed("p256-attacker", Some(kid), Algorithm::ES256))
                .await
                .is_err()
                || what.contains("p256-attacker"),
            "{kid} ({what})"
        );
    }
    assert!(verified > 30 && loaded.rejected().len() > 50, "{verified}");
}

// ---------------------------------------------------------------------------------------------
// Rotation, failures and the clock: a model of what may verify
// ---------------------------------------------------------------------------------------------

/// The keys the walk's issuer may list: fixture, kid, algorithm.
const UNIVERSE: [(&str, &str, Algorithm); 6] = [
    ("rsa2048", "rsa-1", Algorithm::RS256),
    ("rsa2048-b", "rsa-b", Algorithm::RS256),
    ("p256", "ec-256", Algorithm::ES256),
    ("p384", "ec-384", Algorithm::ES384),
    ("ed25519", "ed-1", Algorithm::EdDSA),
    ("p256-attacker", "attacker", Algorithm::ES256),
];

/// What the walk's issuer answers.
#[derive(Debug, Clone)]
enum Answer {
    /// A JWKS of these keys of [`UNIVERSE`] (possibly none).
    Keys(Vec<usize>),
    /// A failure: a status, garbage, an oversized body, or a stall.
    Fails(&'static str),
}

fn answer_reply(answer: &Answer) -> Reply {
    match answer {
        Answer::Keys(keys) => {
            let listed: Vec<Value> = keys
                .iter()
                .map(|&i| {
                    let (name, kid, _) = UNIVERSE[i];
                    let mut key = jwk(name);
                    key["kid"] = json!(kid);
                    key
                })
                .collect();
            Reply::Raw(ok(jwks(&listed).as_bytes()))
        }
        Answer::Fails("500") => Reply::Raw(http(500, &[], b"oops")),
        Answer::Fails("garbage") => Reply::Raw(ok(b"<html>")),
        Answer::Fails("huge") => Reply::Raw(ok(" ".repeat(CAP + 1).as_bytes())),
        Answer::Fails(_) => {
            Reply::Stall(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{".to_vec())
        }
    }
}

/// A token of the walk, and what it is.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Signed by `UNIVERSE[i]`, naming its kid.
    Named(usize),
    /// Signed by `UNIVERSE[i]`, naming no kid.
    Unnamed(usize),
    /// Never verifies: a kid never listed, an algorithm the key does not allow, or the
    /// attacker's signature under a listed kid.
    Bad,
}

fn walk_tokens(iss: &str) -> Vec<(Kind, String)> {
    let signed = |name: &str, kid: Option<&str>, alg| signed_by(iss, name, kid, alg);
    let mut tokens = Vec::new();
    for (i, (name, kid, alg)) in UNIVERSE.iter().enumerate() {
        tokens.push((Kind::Named(i), signed(name, Some(kid), *alg)));
        tokens.push((Kind::Unnamed(i), signed(name, None, *alg)));
    }
    for i in 0..40 {
        tokens.push((
            Kind::Bad,
            signed("p256", Some(&format!("rnd-{i}")), Algorithm::ES256),
        ));
    }
    tokens.push((
        Kind::Bad,
        signed("rsa2048", Some("rsa-1"), Algorithm::PS256),
    ));
    tokens.push((
        Kind::Bad,
        signed("p256-attacker", Some("ec-256"), Algorithm::ES256),
    ));
    tokens.push((
        Kind::Bad,
        signed("p256-attacker", Some("ed-1"), Algorithm::ES256),
    ));
    tokens.push((Kind::Bad, signed("p384", Some("ec-256"), Algorithm::ES384)));
    tokens
}

const COOLDOWN: i64 = 30;
const STALENESS: i64 = 3600;

/// A generated walk: the issuer rotates keys, fails in every way, and recovers; the clock
/// jumps; tokens of listed, unlisted, removed and forged keys arrive. After every token:
///
/// - it verified if and only if its key is in the last key set the issuer answered (the only
///   key able to verify a kid-less token), and that answer is no older than the maximum
///   staleness;
/// - every refusal is typed: 503 (`Unavailable`) exactly when no set was ever answered or the
///   last one is too stale, 401 (`Invalid`) otherwise;
/// - no two fetches started less than the cooldown apart (by the injected clock), unless the
///   clock was stepped back before the last one (which ends the cooldown: see
///   `a_clock_stepping_back_does_not_freeze_the_key_set`).
///
/// Run with and without the verified-token cache, which must change none of it.
#[tokio::test]
async fn a_token_verifies_only_with_the_last_answered_keys() {
    for cache in [0usize, 64] {
        walk(0x726f_7461_7465 ^ cache as u64, cache, false).await;
    }
}

/// The same walk with OIDC discovery as the source: the discovery document also fails, names
/// another issuer, or a `jwks_uri` that is not acceptable; only a JWKS answered after an
/// acceptable document counts. The clock also moves back (never before the tokens' `iat`):
/// keys older than the staleness never verify, and fetches come no sooner than the cooldown
/// except right after a step back.
#[tokio::test]
async fn through_discovery_a_token_verifies_only_with_the_last_answered_keys() {
    walk(0x6469_7363_6f76, 64, true).await;
}

async fn walk(seed: u64, cache: usize, discovery: bool) {
    let c = clock();
    let server = Hostile::start(Some(c.clone())).await;
    let mut policy = CachePolicy::default()
        .with_refresh_cooldown(Duration::from_secs(COOLDOWN as u64))
        .with_max_staleness(Duration::from_secs(STALENESS as u64))
        .with_refresh_on_expiry(false)
        .with_ttl(
            Duration::from_secs(300),
            Duration::from_secs(60),
            Duration::from_secs(900),
        );
    policy.negative_ttl = Duration::from_secs(45);
    const DISCOVERY: &str = "/.well-known/openid-configuration";
    let base = server.base.clone();
    let discovery_doc = |what: &str| -> Reply {
        let doc = match what {
            "ok" => json!({"issuer": base, "jwks_uri": format!("{base}/jwks")}),
            "mismatch" => json!({"issuer": format!("{base}/"), "jwks_uri": format!("{base}/jwks")}),
            "insecure" => json!({"issuer": base, "jwks_uri": "http://idp.example/jwks"}),
            _ => return Reply::Raw(http(500, &[], b"")),
        };
        Reply::Raw(ok(doc.to_string().as_bytes()))
    };
    server.set(DISCOVERY, discovery_doc("ok"));
    let (store, iss, first_path) = if discovery {
        let source = OidcDiscovery::new(&base, options(CAP)).unwrap();
        let store = KeyStore::new(source, policy, Arc::new(c.clone()));
        (store, base.clone(), DISCOVERY)
    } else {
        let source = JwksUrl::new(&server.url("/jwks"), options(CAP)).unwrap();
        let store = KeyStore::new(source, policy, Arc::new(c.clone()));
        (store, super::ISSUER.to_owned(), "/jwks")
    };
    let mut config = issuer();
    config.issuer = iss.clone();
    let a = JwtAuthenticator::builder()
        .issuer(config, store.clone())
        .clock(Arc::new(c.clone()))
        .verified_token_cache(cache)
        .build()
        .unwrap();
    let tokens = walk_tokens(&iss);
    let mut rng = Rng(seed);
    let mut answer = Answer::Keys(vec![2]);
    server.set("/jwks", answer_reply(&answer));
    // The last answered set and when; fetch times.
    let mut installed: Option<(Vec<usize>, i64)> = None;
    let mut fetches: Vec<i64> = Vec::new();
    let mut log: Vec<String> = Vec::new();
    let mut outcomes = [0usize; 3];
    for step in 0..400 {
        if rng.chance(15) {
            answer = if rng.chance(70) {
                Answer::Keys((0..UNIVERSE.len()).filter(|_| rng.chance(45)).collect())
            } else {
                // Stalls cost real time (the 300 ms timeout): keep them rare.
                let kind = if rng.chance(4) {
                    "stall"
                } else {
                    rng.pick(&["500", "garbage", "huge"])
                };
                Answer::Fails(kind)
            };
            server.set("/jwks", answer_reply(&answer));
            log.push(format!("step {step}: issuer answers {answer:?}"));
        }
        if discovery && rng.chance(10) {
            let what = rng.pick(&["ok", "ok", "500", "mismatch", "insecure"]);
            server.set(DISCOVERY, discovery_doc(what));
            log.push(format!("step {step}: discovery answers {what}"));
        }
        let mut jump = rng.pick(&[
            0i64, 0, 1, 5, 15, 29, 30, 31, 44, 46, 100, 301, 901, 3000, 3601,
        ]);
        if discovery && rng.chance(10) {
            // Back, but never before the tokens were issued.
            jump = -rng
                .pick(&[1i64, 31, 600, 5000])
                .min(c.now().unix_seconds() - NOW);
        }
        c.advance_seconds(jump);
        let now = c.now().unix_seconds();
        let (kind, token) = rng.pick(&tokens);
        let before = server.hits().len();
        let verdict = a.verify(&token).await;
        for (path, at) in &server.hits()[before..] {
            if path == first_path {
                fetches.push(*at);
            }
            if let (Answer::Keys(keys), "/jwks") = (&answer, path.as_str()) {
                installed = Some((keys.clone(), *at));
            }
        }
        log.push(format!(
            "step {step}: +{jump} s, {kind:?}: {:?} (fetches {})",
            verdict.as_ref().map(|p| &p.id),
            fetches.len()
        ));
        let context = || log[log.len().saturating_sub(12)..].join("\n");
        let expected: Result<(), &str> = match &installed {
            None => Err("unavailable"),
            Some((_, at)) if now > at + STALENESS => Err("unavailable"),
            Some((keys, _)) => {
                let ok = match kind {
                    Kind::Named(i) => keys.contains(&i),
                    Kind::Unnamed(i) => {
                        let alg = UNIVERSE[i].2;
                        let candidates: Vec<usize> = keys
                            .iter()
                            .copied()
                            .filter(|&k| UNIVERSE[k].2 == alg)
                            .collect();
                        candidates == [i]
                    }
                    Kind::Bad => false,
                };
                if ok { Ok(()) } else { Err("invalid") }
            }
        };
        match (&verdict, expected) {
            (Ok(_), Ok(())) => outcomes[0] += 1,
            (Err(AuthnError::Invalid(_)), Err("invalid")) => outcomes[1] += 1,
            (Err(AuthnError::Unavailable(_)), Err("unavailable")) => outcomes[2] += 1,
            _ => panic!(
                "step {step} (cache {cache}): expected {expected:?}, got {verdict:?}\n{}",
                context()
            ),
        }
        if let Err(e) = &verdict {
            // Over HTTP: 401 with a challenge, or 503.
            let rejection = e.rejection();
            let status = rejection.status().as_u16();
            match e {
                AuthnError::Invalid(_) => assert!(
                    status == 401 && rejection.www_authenticate().is_some(),
                    "step {step}: {e:?} is {status}"
                ),
                _ => assert_eq!(status, 503, "step {step}: {e:?}"),
            }
        }
        if let [.., previous, last] = fetches.as_slice() {
            assert!(
                last < previous || last - previous >= COOLDOWN,
                "step {step}: fetches at {previous} and {last}\n{}",
                context()
            );
        }
    }
    assert!(
        fetches.len() > 10,
        "the walk exercised fetching: {fetches:?}"
    );
    assert_eq!(
        store.health().fetches,
        fetches.len() as u64,
        "health counts every fetch started"
    );
    assert!(
        outcomes.iter().all(|n| *n > 10),
        "accepted, 401 and 503 all occurred: {outcomes:?}"
    );
}

/// Waits (yielding, never sleeping) until `done` holds; the work it waits for runs on this
/// runtime, or on the test's own server.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(5), "never: {what}");
        tokio::task::yield_now().await;
    }
}

/// A fetch stalled by the issuer (holding the single-flight lock until its timeout) never
/// delays a token whose key is cached, fresh or expired ("tokens with known ids never wait");
/// a flood of expired-set requests starts one background fetch, which then replaces the set.
#[tokio::test]
async fn a_stalled_fetch_never_delays_tokens_with_known_keys() {
    let c = clock();
    let server = Hostile::start(Some(c.clone())).await;
    server.set("/jwks", Reply::Raw(ok(jwks(&[jwk("p256")]).as_bytes())));
    let slow = options(CAP).with_timeouts(Duration::from_secs(1), Duration::from_secs(1));
    let store = KeyStore::new(
        JwksUrl::new(&server.url("/jwks"), slow).unwrap(),
        CachePolicy::default(),
        Arc::new(c.clone()),
    );
    let a = Arc::new(authenticator(store.clone(), &c));
    let good = signed("p256", Some("ec-256"), Algorithm::ES256);
    a.verify(&good).await.unwrap();
    // The issuer stalls; an unknown kid starts a fetch that holds the lock for 1 s.
    server.set(
        "/jwks",
        Reply::Stall(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{".to_vec()),
    );
    c.advance_seconds(31);
    let miss = tokio::spawn({
        let a = a.clone();
        let token = signed("p384", Some("new"), Algorithm::ES384);
        async move { a.verify(&token).await }
    });
    until("the miss's fetch reached the issuer", || {
        server.hits().len() == 2
    })
    .await;
    for expired in [false, true] {
        if expired {
            // Past the 5-minute TTL: the request finds the set expired, and goes on.
            c.advance_seconds(300);
        }
        let started = Instant::now();
        for _ in 0..50 {
            a.verify(&good).await.unwrap();
        }
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(500),
            "known-key tokens waited {took:?} behind a stalled fetch (expired set: {expired})"
        );
    }
    assert!(
        matches!(miss.await.unwrap(), Err(AuthnError::Invalid(_))),
        "the miss is refused once the stalled fetch times out"
    );
    assert_eq!(
        server.hits().len(),
        2,
        "the expired requests fetched nothing within the cooldown"
    );
    // The issuer is back without the old key: the next expired request, after the cooldown,
    // starts one background fetch for the whole flood, and the set is then replaced.
    server.set("/jwks", Reply::Raw(ok(jwks(&[jwk("p384")]).as_bytes())));
    c.advance_seconds(31);
    for _ in 0..200 {
        a.verify(&good).await.unwrap();
    }
    until("the background fetch replaced the set", || {
        store.current_keys().unwrap().key_ids() == ["ec-384"]
    })
    .await;
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(server.hits().len(), 3, "one background fetch for the flood");
    assert!(matches!(a.verify(&good).await, Err(AuthnError::Invalid(_))));
}

// ---------------------------------------------------------------------------------------------
// Findings: tests that fail until the library is fixed
// ---------------------------------------------------------------------------------------------

/// The 32-byte seed of the Ed25519 fixture key (the end of its PKCS#8 DER).
fn ed25519_seed() -> Vec<u8> {
    let pem = String::from_utf8(fixture("ed25519.key.pem")).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    der[der.len() - 32..].to_vec()
}

/// A JWKS is published to anyone: a key listed with its private half (`d`, or RSA's `p`, `q`,
/// ...) is a key everyone can sign with. node-oidc-provider refuses such a set ("jwks must not
/// contain private keys", also for the provider's own `jwks_uri`). Here the issuer's Ed25519
/// key is published with `d`; a reader of the JWKS signs a token as any user, and it verifies.
///
/// Expected: a key carrying private members is refused (skipped and listed in `rejected`, or
/// the whole set refused). Actual: loaded and used.
#[tokio::test]
async fn jwks_key_with_its_private_half_is_refused() {
    let server = Hostile::start(None).await;
    let mut leaked = jwk("ed25519");
    leaked["d"] = json!(b64(&ed25519_seed()));
    let published = jwks(&[leaked]);
    server.set("/jwks", Reply::Raw(ok(published.as_bytes())));
    let c = clock();
    let store = KeyStore::new(
        JwksUrl::new(&server.url("/jwks"), options(CAP)).unwrap(),
        CachePolicy::default(),
        Arc::new(c.clone()),
    );
    let a = authenticator(store.clone(), &c);
    // Anyone: read `d` from the published set, sign as the administrator.
    let doc: Value = serde_json::from_str(&published).unwrap();
    let d = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(doc["keys"][0]["d"].as_str().unwrap())
        .unwrap();
    let pkcs8 = [
        &[
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ][..],
        &d,
    ]
    .concat();
    let mut cl = long_claims();
    cl["sub"] = json!("mallory");
    cl["roles"] = json!(["admin"]);
    let forged = sign_raw(
        &json!({"alg": "EdDSA", "kid": "ed-1"}).to_string(),
        &cl.to_string(),
        &jsonwebtoken::EncodingKey::from_ed_der(&pkcs8),
        Algorithm::EdDSA,
    );
    let verdict = a.verify(&forged).await;
    let rejected = store
        .current_keys()
        .map(|k| k.rejected().to_vec())
        .unwrap_or_default();
    assert!(
        verdict.is_err(),
        "a token signed with the private key the JWKS published verified as {:?} (rejected: {rejected:?})",
        verdict.map(|p| p.id)
    );
}

/// `Cache-Control` sent as two field lines is one list (RFC 9110 §5.3: a recipient may combine
/// them; the meaning is the same). An issuer answering `max-age=86400` and `no-store` asked not
/// to be cached; the store reads the first line only and keeps the set for `max_ttl` (900 s
/// here, 24 h by default), so a key it removes keeps verifying that long.
///
/// Expected: the `min_ttl` (60 s), as for `max-age=86400, no-store` on one line. Actual: 900 s.
/// Fix: `Fetcher::get` in key_source.rs, which reads `headers().get(CACHE_CONTROL)` (the first
/// line) rather than every line (`get_all`).
#[tokio::test]
async fn cache_control_over_two_field_lines_is_one_list() {
    let server = Hostile::start(None).await;
    let store = KeyStore::new(
        JwksUrl::new(&server.url("/jwks"), options(CAP)).unwrap(),
        ttl_policy(),
        Arc::new(clock()),
    );
    let one_line = ttl_of(&server, &store, &["max-age=86400, no-store".to_owned()]).await;
    assert_eq!(one_line, 60);
    for lines in [
        ["max-age=86400", "no-store"],
        ["public, max-age=86400", "no-cache"],
        ["public", "no-store"],
    ] {
        let lines = lines.map(str::to_owned);
        let ttl = ttl_of(&server, &store, &lines).await;
        assert!(
            allowed_ttls(&lines).contains(&ttl),
            "cache-control lines {lines:?} gave {ttl} s, allowed {:?}",
            allowed_ttls(&lines)
        );
    }
}

/// Several `max-age` directives: "either the first occurrence should be used or the response
/// should be considered stale" (RFC 9111 §4.2.1). The store takes the last one, so
/// `max-age=60, max-age=86400` keeps the set for `max_ttl`, not one minute; and a valid first
/// value followed by garbage (`max-age=900, max-age=x`) falls back to the default (300 s).
///
/// Expected: 60 s (first, or stale clamped to `min_ttl`) for the first. Actual: 900 s. Fix:
/// `cache_max_age` in key_source.rs (keep the first `max-age`, or treat duplicates as zero).
#[tokio::test]
async fn repeated_max_age_takes_the_first_or_counts_as_stale() {
    let server = Hostile::start(None).await;
    let store = KeyStore::new(
        JwksUrl::new(&server.url("/jwks"), options(CAP)).unwrap(),
        ttl_policy(),
        Arc::new(clock()),
    );
    for line in [
        "max-age=60, max-age=86400",
        "max-age=120,max-age=600",
        "max-age=900, max-age=x",
    ] {
        let lines = [line.to_owned()];
        let ttl = ttl_of(&server, &store, &lines).await;
        assert!(
            allowed_ttls(&lines).contains(&ttl),
            "cache-control {line:?} gave {ttl} s, allowed {:?}",
            allowed_ttls(&lines)
        );
    }
}

/// The clock steps back (an NTP correction after a boot with a clock a day ahead; `SystemClock`
/// is the wall clock) after a fetch: `last_attempt` and the set's `fetched_at`/`fresh_until` lie
/// a day in the future. The cooldown is judged as `now < last_attempt + cooldown`, so for that
/// whole day no fetch is allowed: the issuer's rotation is refused (every token of the new key
/// is 401 "unknown signing key") and the key it removed keeps verifying; the set never expires
/// nor goes stale meanwhile.
///
/// Expected: once the clock has run for one cooldown after the step, a token naming an unknown
/// kid fetches (a time before the last attempt does not prove the cooldown is still running).
/// Actual: no fetch for a day. Fix: `KeyStore::in_cooldown` (and the freshness/staleness checks
/// in `key_for`/`is_stale`) in jwks.rs should treat a `now` before `last_attempt`/`fetched_at` as
/// a clock that moved back, e.g. re-anchor them to `now`.
#[tokio::test]
async fn a_clock_stepping_back_does_not_freeze_the_key_set() {
    let c = clock();
    let server = Hostile::start(Some(c.clone())).await;
    server.set("/jwks", Reply::Raw(ok(jwks(&[jwk("p256")]).as_bytes())));
    let store = KeyStore::new(
        JwksUrl::new(&server.url("/jwks"), options(CAP)).unwrap(),
        CachePolicy::default(),
        Arc::new(c.clone()),
    );
    let a = authenticator(store.clone(), &c);
    // Start-up with the clock a day ahead: the store is filled at once.
    c.advance_seconds(86_400);
    store.refresh().await.unwrap();
    // NTP steps the clock back to the true time.
    c.set(aaa::Timestamp::from_unix_seconds(NOW));
    let old = signed("p256", Some("ec-256"), Algorithm::ES256);
    a.verify(&old).await.unwrap();
    // The issuer rotates: the P-256 key is withdrawn, a P-384 key published.
    server.set("/jwks", Reply::Raw(ok(jwks(&[jwk("p384")]).as_bytes())));
    let new = signed("p384", Some("ec-384"), Algorithm::ES384);
    // Five minutes later (ten cooldowns, the TTL) by the corrected clock.
    c.advance_seconds(301);
    let verdict = a.verify(&new).await;
    assert!(
        verdict.is_ok(),
        "the rotated-in key is refused ({verdict:?}) {} s of clock time after the step back; \
         fetches so far: {}",
        301,
        server.hits().len()
    );
    assert!(
        a.verify(&old).await.is_err(),
        "the withdrawn key still verifies"
    );
}

/// Records every tracing event's fields as text (`%` fields as their `Display`, as a `fmt`
/// subscriber writes them).
#[derive(Default)]
struct Capture(Mutex<Vec<String>>);

struct Text<'a>(&'a mut String);

impl tracing::field::Visit for Text<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = event.metadata().target().to_owned();
        event.record(&mut Text(&mut line));
        self.0.lock().unwrap().push(line);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Strings the key server chooses reach the store's `tracing` events verbatim: a duplicated
/// kid holding a newline and a forged log line (the "skipped a key" warning prints the reason
/// `duplicate key id `…`` with `%`), and a discovery document's `issuer` (the
/// `IssuerMismatch` error, logged with `%` as "signing key fetch failed"). With a line-based
/// log (the `fmt` subscriber) the issuer's server writes lines of its choosing into the
/// service's log (CWE-117), ANSI escapes included.
///
/// Expected: no event field carries a raw line break or control character from the server
/// (escape them, e.g. with `{:?}`, or leave the kid out). Actual: both arrive raw. Fix:
/// `KeySet::insert` (keys.rs, the duplicate message) and `IssuerMismatch`'s message
/// (error.rs), or the `tracing::warn!` calls in `KeyStore::fetch_locked` (jwks.rs).
#[test]
fn key_server_strings_reach_the_log_escaped() {
    let capture = Arc::new(Capture::default());
    let dispatch = tracing::Dispatch::from(capture.clone());
    tracing::dispatcher::with_default(&dispatch, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let server = Hostile::start(None).await;
            let forged = "x\n2026-12-03T18:00:00Z  INFO aaa::audit: admin granted\r\x1b[2J";
            let mut first = jwk("p256");
            first["kid"] = json!(forged);
            let mut second = jwk("p384");
            second["kid"] = json!(forged);
            server.set("/jwks", Reply::Raw(ok(jwks(&[first, second]).as_bytes())));
            let store = KeyStore::new(
                JwksUrl::new(&server.url("/jwks"), options(CAP)).unwrap(),
                CachePolicy::default(),
                Arc::new(clock()),
            );
            store.refresh().await.unwrap();
            let base = server.base.clone();
            server.set(
                "/.well-known/openid-configuration",
                Reply::Raw(ok(
                    json!({"issuer": forged, "jwks_uri": format!("{base}/jwks")})
                        .to_string()
                        .as_bytes(),
                )),
            );
            let discovered = KeyStore::new(
                OidcDiscovery::new(&base, options(CAP)).unwrap(),
                CachePolicy::default(),
                Arc::new(clock()),
            );
            assert!(matches!(
                discovered.refresh().await,
                Err(KeySourceError::IssuerMismatch { .. })
            ));
        });
    });
    let events = capture.0.lock().unwrap().clone();
    assert!(events.iter().any(|e| e.starts_with("aaa::authn::jwks")));
    let raw: Vec<&String> = events
        .iter()
        .filter(|e| e.contains(['\n', '\r', '\u{1b}']))
        .collect();
    assert!(
        raw.is_empty(),
        "events with the server's raw control characters: {raw:#?}"
    );
}
