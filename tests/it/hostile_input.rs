//! Generated hostile input, against the project's standard: bad input (tokens, headers, paths,
//! policy files, audit logs) gets a clear error and a 4xx, never a panic, never a bypass, and every
//! refusal is recorded.
//!
//! - Requests, through the docs demo's real axum app (in process, with the peer address the
//!   layer reads from `ConnectInfo`): mixed paths, methods and credentials; and fewer of them
//!   over real HTTP to the demo served by axum and by actix-web (their own parsers and routers,
//!   peers bound to loopback addresses).
//! - Policy files: mutations of `examples/policies/docs_service.toml`, loaded and, when they load,
//!   asked a few fixed questions.
//! - Audit logs: a good signed log, mutated, verified (and read back).
//!
//! Failures are not persisted (`failure_persistence: None`): a minimised failure becomes a plain
//! regression test instead.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use aaa::{
    Context, Decision, PolicySet, Principal, PrincipalKind, Resource, RouteBinding, Timestamp,
    audit::{
        self, AuditEvent, AuditSink as _, AuditWriter, AuditWriterConfig, AuthnOutcome, Durability,
        DurabilityPolicy, EventKind, FileWitness, RequestInfo, SigningKey, Verifier,
    },
    http::RequestFacts,
};
use axum::{body::Body, extract::ConnectInfo, http::Request};
use proptest::{
    prelude::*,
    sample::Index,
    test_runner::{Config, TestCaseError, TestRunner},
};
use tower_crate::ServiceExt as _;

use crate::docs_demo;

/// No regression files: a failure found here is minimised into a plain `#[test]`. `cases` is
/// what CI runs; `PROPTEST_CASES` sets another number for a deeper local run.
fn config(cases: u32) -> Config {
    Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(cases),
        failure_persistence: None,
        ..Config::default()
    }
}

// ---- requests through the demo ------------------------------------------------------------

/// The demo's users, in the order the generator names them.
const USERS: [&str; 6] = ["alice", "bob", "carol", "erin", "mallory", "dave"];

const SEGMENTS: &[&str] = &[
    "docs",
    "d1",
    "d2",
    "d3",
    "d4",
    "d99",
    "share",
    "admin",
    "policy",
    "health",
    "audit-logs",
    "acme",
    "globex",
    "idp",
    "token",
    ".well-known",
    "jwks.json",
    "openid-configuration",
    "..",
    ".",
    "%2e",
    "%2e%2e",
    "%2E%2E",
    "%2F",
    "%2f",
    "d1%2F..%2Fd2",
    "%00",
    "d1%00",
    "%ff",
    "%c0%ae%c0%ae",
    "%",
    "%zz",
    "%e2%80%ae",
    ";",
    ";x=y",
    "d1;",
    "",
    "é",
    "%C3%A9",
    "文書",
    "\u{202e}d1",
    "docs\\..\\admin",
    "{id}",
    "*",
    " ",
    "%20",
];

/// Real routes, `{id}` and `{tenant}` replaced by generated segments.
const TEMPLATES: &[&str] = &[
    "/docs/{id}",
    "/docs/{id}/share",
    "/audit-logs/{tenant}",
    "/docs",
    "/admin/policy",
    "/health",
    "/idp/token",
    "/.well-known/jwks.json",
];

const PREFIXES: &[&str] = &[
    "",
    "/",
    "//",
    "/.",
    "/./",
    "/docs/..",
    "/%2e%2e",
    "/health/..",
    "http://demo",
    "HTTP://demo:80",
];
const SUFFIXES: &[&str] = &[
    "", "/", "//", "/.", "/..", ";", ";a=b", "%00", "%2F", "?", "#", "/%2e",
];
const QUERIES: &[&str] = &[
    "",
    "?user=alice",
    "?user=carol&mfa=true",
    "?id=x1&classification=secret",
    "?id=&classification=",
    "?id=d1",
    "?%zz=%zz",
    "?id=%00",
    "?a=1&a=2",
];
const METHODS: &[&str] = &[
    "GET",
    "GET",
    "GET",
    "POST",
    "PUT",
    "DELETE",
    "PATCH",
    "HEAD",
    "OPTIONS",
    "get",
    "Get",
    "TRACE",
    "PURGE",
    "M-SEARCH",
    "X",
    "GETT",
    "DELETE2",
    "!#$%&'*+-.^_`|~",
];

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => prop::sample::select(SEGMENTS).prop_map(str::to_owned),
        2 => "[a-zA-Z0-9._~%-]{0,12}",
        1 => "\\PC{0,6}",
        1 => (1usize..3000).prop_map(|n| "a".repeat(n)),
        1 => (1usize..300).prop_map(|n| "%2e%2e/".repeat(n)),
    ]
}

fn path() -> impl Strategy<Value = String> {
    let param = || {
        prop_oneof![
            2 => prop::sample::select(&["d1", "d2", "d3", "d4", "acme", "globex"][..]).prop_map(str::to_owned),
            1 => segment(),
        ]
    };
    let from_template = (prop::sample::select(TEMPLATES), param(), param())
        .prop_map(|(t, id, tenant)| t.replace("{id}", &id).replace("{tenant}", &tenant));
    let from_segments =
        prop::collection::vec(segment(), 0..6).prop_map(|s| format!("/{}", s.join("/")));
    let decorated = (
        prop::sample::select(PREFIXES),
        prop::sample::select(TEMPLATES),
        prop::sample::select(SUFFIXES),
        prop::sample::select(&["d1", "d2", "d3", "d4", "acme", "globex"][..]),
    )
        .prop_map(|(p, t, s, id)| {
            format!("{p}{}{s}", t.replace("{id}", id).replace("{tenant}", id))
        });
    (
        prop_oneof![6 => from_template, 2 => from_segments, 2 => decorated],
        prop::sample::select(QUERIES),
    )
        .prop_map(|(path, query)| format!("{path}{query}"))
}

/// A change to a token that changes its text.
#[derive(Debug, Clone)]
enum Tamper {
    Truncate(Index),
    FlipBit(Index, u8),
    Replace(Index, char),
    Insert(Index, String),
    /// Drops one of the three dot-separated parts (with its dot).
    DropPart(u8),
    /// The header and signature of another demo token (by index) around this one's payload.
    SplicePayload(usize),
    Uppercase,
}

/// Which demo token: a user (index into [`USERS`]) and MFA.
#[derive(Debug, Clone)]
struct TokenOf {
    user: usize,
    mfa: bool,
    tamper: Option<Tamper>,
}

/// How an `Authorization` value is spelled around the credential.
const SCHEMES: &[(&str, &str)] = &[
    ("Bearer ", ""),
    ("Bearer ", ""),
    ("Bearer ", ""),
    ("bearer ", ""),
    ("BEARER ", ""),
    ("bEaReR ", ""),
    ("Bearer  ", ""),
    ("Bearer\t", ""),
    (" Bearer ", ""),
    ("Bearer", ""),
    ("Bearer: ", ""),
    ("Bearer ", " "),
    ("Bearer ", ","),
    ("Bearer ", " x"),
    ("Bearer \"", "\""),
    ("Token ", ""),
    ("ApiKey ", ""),
    ("Basic ", ""),
    ("", ""),
];

#[derive(Debug, Clone)]
enum Secret {
    Token(TokenOf),
    /// The indexer's API key, maybe tampered with.
    ApiKey(Option<Tamper>),
    /// Bytes that are no credential (any bytes a header value may hold).
    Junk(Vec<u8>),
}

#[derive(Debug, Clone)]
struct AuthValue {
    scheme: usize,
    secret: Secret,
}

#[derive(Debug, Clone)]
struct Hostile {
    method: &'static str,
    path: String,
    authorization: Vec<AuthValue>,
    api_keys: Vec<Secret>,
    cookie: Option<Vec<u8>>,
    client_cert: Option<Vec<u8>>,
    traceparent: Option<Vec<u8>>,
    user_agent: Option<Vec<u8>>,
    peer: Option<IpAddr>,
    body: Vec<u8>,
}

/// Bytes a header value may hold on the wire: visible ASCII, space, tab, and obs-text.
fn header_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![8 => 0x20u8..0x7f, 1 => 0x80u8..=0xff, 1 => Just(b'\t')],
        0..max,
    )
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        any::<Index>().prop_map(Tamper::Truncate),
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Tamper::FlipBit(i, b)),
        (any::<Index>(), prop::char::any()).prop_map(|(i, c)| Tamper::Replace(i, c)),
        (any::<Index>(), "[A-Za-z0-9_.=+/-]{1,4}").prop_map(|(i, s)| Tamper::Insert(i, s)),
        (0u8..3).prop_map(Tamper::DropPart),
        (0usize..USERS.len() * 2).prop_map(Tamper::SplicePayload),
        Just(Tamper::Uppercase),
    ]
}

fn token_of() -> impl Strategy<Value = TokenOf> {
    (
        0usize..USERS.len(),
        any::<bool>(),
        prop::option::weighted(0.3, tamper()),
    )
        .prop_map(|(user, mfa, tamper)| TokenOf { user, mfa, tamper })
}

fn secret() -> impl Strategy<Value = Secret> {
    prop_oneof![
        6 => token_of().prop_map(Secret::Token),
        2 => prop::option::weighted(0.6, tamper()).prop_map(Secret::ApiKey),
        2 => header_bytes(80).prop_map(Secret::Junk),
    ]
}

fn hostile() -> impl Strategy<Value = Hostile> {
    let auth = || {
        (prop_oneof![3 => Just(0), 2 => 0..SCHEMES.len()], secret())
            .prop_map(|(scheme, secret)| AuthValue { scheme, secret })
    };
    let peers = prop::sample::select(
        &[
            "127.0.0.1",
            "127.0.0.1",
            "10.1.2.3",
            "::1",
            "::ffff:10.1.2.3",
            "127.0.0.2",
            "0.0.0.0",
        ][..],
    )
    .prop_map(|ip| ip.parse::<IpAddr>().unwrap());
    let client_cert = prop_oneof![
        header_bytes(60),
        "(By|URI|Hash)=spiffe://[a-z./]{0,20}(;URI=spiffe://[a-z/]{0,20})?"
            .prop_map(String::into_bytes),
    ];
    let traceparent = prop_oneof![
        header_bytes(60),
        "00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]".prop_map(String::into_bytes),
    ];
    (
        (
            prop_oneof![
                3 => prop::sample::select(&["GET", "GET", "GET", "POST", "PUT", "DELETE", "HEAD"][..]),
                1 => prop::sample::select(METHODS),
            ],
            path(),
            prop_oneof![
                4 => prop::collection::vec(auth(), 0..=0),
                8 => prop::collection::vec(auth(), 1..=1),
                2 => prop::collection::vec(auth(), 2..=3),
            ],
            prop_oneof![
                8 => Just(Vec::new()),
                2 => prop::collection::vec(
                    prop_oneof![
                        3 => prop::option::weighted(0.5, tamper()).prop_map(Secret::ApiKey),
                        1 => token_of().prop_map(Secret::Token),
                        1 => header_bytes(80).prop_map(Secret::Junk),
                    ],
                    1..=2,
                ),
            ],
        ),
        (
            prop::option::weighted(0.2, header_bytes(120)),
            prop::option::weighted(0.2, client_cert),
            prop::option::weighted(0.2, traceparent),
            prop::option::weighted(0.3, header_bytes(200)),
            prop::option::weighted(0.9, peers),
            prop::option::weighted(0.2, header_bytes(40)),
        ),
    )
        .prop_map(
            |(
                (method, path, authorization, api_keys),
                (cookie, client_cert, traceparent, user_agent, peer, body),
            )| Hostile {
                method,
                path,
                authorization,
                api_keys,
                cookie,
                client_cert,
                traceparent,
                user_agent,
                peer,
                body: body.unwrap_or_default(),
            },
        )
}

/// Replaces what no header value may hold (controls other than tab, DEL) so that the value is one
/// hyper could have parsed.
fn sanitize(mut bytes: Vec<u8>) -> Vec<u8> {
    for b in &mut bytes {
        if (*b < 0x20 && *b != b'\t') || *b == 0x7f {
            *b = b'?';
        }
    }
    bytes
}

fn apply(tamper: &Tamper, original: &[u8], tokens: &[Vec<u8>]) -> Vec<u8> {
    let mut t = original.to_vec();
    match tamper {
        Tamper::Truncate(i) => t.truncate(i.index(original.len())),
        Tamper::FlipBit(i, bit) => {
            let at = i.index(t.len());
            t[at] ^= 1 << bit;
        }
        Tamper::Replace(i, c) => {
            let at = i.index(t.len());
            let mut buf = [0u8; 4];
            t.splice(at..=at, c.encode_utf8(&mut buf).bytes());
        }
        Tamper::Insert(i, s) => {
            let at = i.index(t.len() + 1);
            t.splice(at..at, s.bytes());
        }
        Tamper::DropPart(part) => {
            let parts: Vec<&[u8]> = original.split(|&b| b == b'.').collect();
            let kept: Vec<&[u8]> = parts
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != usize::from(*part))
                .map(|(_, p)| *p)
                .collect();
            t = kept.join(&b'.');
        }
        Tamper::SplicePayload(other) => {
            let theirs: Vec<&[u8]> = tokens[*other].split(|&b| b == b'.').collect();
            let mine: Vec<&[u8]> = original.split(|&b| b == b'.').collect();
            if let ([h, _, s], [_, p, _]) = (theirs.as_slice(), mine.as_slice()) {
                t = [*h, *p, *s].join(&b'.');
            }
        }
        Tamper::Uppercase => t.make_ascii_uppercase(),
    }
    sanitize(t)
}

/// The demo, its tokens, and what the run saw.
struct Bench {
    running: docs_demo::Running,
    /// Whether requests go over HTTP to the running server (else through the axum app in
    /// process).
    over_http: bool,
    /// `tokens[user * 2 + mfa]`.
    tokens: Vec<Vec<u8>>,
    api_key: Vec<u8>,
    seen: Mutex<BTreeMap<u16, u32>>,
    unsendable: Mutex<u32>,
    /// Requests that reached the app with a tampered bearer token.
    tampered: Mutex<u32>,
    /// Documents served whose id was compared with the one decided on.
    compared: Mutex<u32>,
}

/// A request made concrete, and what it may be answered as.
struct Materialized {
    request: Request<Body>,
    /// Who a 2xx on a protected route may be served as: users whose intact token it carries,
    /// `indexer` for an intact API key.
    may_act_as: BTreeSet<String>,
    /// Whether a trusted proxy forwarded a client certificate (any service may be named by it).
    forwarded: bool,
    /// A tampered token in a plain `Bearer <token>` header: never a 2xx, on any route.
    presents_tampered_bearer: bool,
    /// Credential text that must never reach an audit record.
    secrets: Vec<Vec<u8>>,
}

impl Bench {
    fn secret_bytes(&self, secret: &Secret, acts: &mut BTreeSet<String>) -> (Vec<u8>, bool) {
        match secret {
            Secret::Token(t) => {
                let token = &self.tokens[t.user * 2 + usize::from(t.mfa)];
                let bytes = t
                    .tamper
                    .as_ref()
                    .map_or_else(|| token.clone(), |x| apply(x, token, &self.tokens));
                let intact = &bytes == token;
                if intact {
                    acts.insert(USERS[t.user].to_owned());
                }
                (bytes, !intact)
            }
            Secret::ApiKey(tamper) => {
                let bytes = tamper.as_ref().map_or_else(
                    || self.api_key.clone(),
                    |x| apply(x, &self.api_key, &self.tokens),
                );
                if bytes == self.api_key {
                    acts.insert("indexer".to_owned());
                }
                (bytes, false)
            }
            Secret::Junk(bytes) => (bytes.clone(), false),
        }
    }

    fn materialize(&self, h: &Hostile) -> Option<Materialized> {
        let mut builder = Request::builder()
            .method(axum::http::Method::from_bytes(h.method.as_bytes()).ok()?)
            .uri(axum::http::Uri::try_from(h.path.as_str()).ok()?);
        let mut may_act_as = BTreeSet::new();
        let mut presents_tampered_bearer = false;
        let mut secrets = Vec::new();
        for a in &h.authorization {
            let (prefix, suffix) = SCHEMES[a.scheme];
            let (bytes, tampered) = self.secret_bytes(&a.secret, &mut may_act_as);
            if tampered && prefix == "Bearer " && suffix.is_empty() {
                presents_tampered_bearer = true;
            }
            if !matches!(a.secret, Secret::Junk(_)) {
                secrets.push(bytes.clone());
            }
            let value = [prefix.as_bytes(), &bytes, suffix.as_bytes()].concat();
            builder = builder.header("authorization", value);
        }
        for k in &h.api_keys {
            let (bytes, _) = self.secret_bytes(k, &mut may_act_as);
            if !matches!(k, Secret::Junk(_)) {
                secrets.push(bytes.clone());
            }
            builder = builder.header("x-api-key", bytes);
        }
        let optional = [
            ("cookie", &h.cookie),
            ("x-forwarded-client-cert", &h.client_cert),
            ("traceparent", &h.traceparent),
            ("user-agent", &h.user_agent),
        ];
        for (name, value) in optional {
            if let Some(v) = value {
                builder = builder.header(name, v.clone());
            }
        }
        let forwarded = h.client_cert.is_some() && h.peer == "127.0.0.2".parse().ok();
        if let Some(ip) = h.peer {
            builder = builder.extension(ConnectInfo(SocketAddr::new(ip, 40_000)));
        }
        let request = builder.body(Body::from(h.body.clone())).ok()?;
        Some(Materialized {
            request,
            may_act_as,
            forwarded,
            presents_tampered_bearer,
            secrets: secrets.into_iter().filter(|s| s.len() >= 16).collect(),
        })
    }

    /// Sends `h` to the demo (in process, or over HTTP to the server this bench runs) and checks
    /// the answer and the records.
    async fn check(&self, h: &Hostile) -> Result<(), TestCaseError> {
        let Some(mut m) = self.materialize(h) else {
            // Neither hyper nor the http crate would let this request reach the app.
            *self.unsendable.lock().unwrap() += 1;
            return Ok(());
        };
        let events = &self.running.events;
        let before = events.events().len();
        let answer = async {
            if self.over_http {
                // Over a real socket, from the loopback address standing for the peer: the
                // trusted proxy's (127.0.0.2) or a plain client's.
                let proxy: IpAddr = "127.0.0.2".parse().unwrap();
                let peer = if h.peer == Some(proxy) {
                    proxy
                } else {
                    m.forwarded = false;
                    "127.0.0.1".parse().unwrap()
                };
                Ok::<_, TestCaseError>(over_http(self.running.addr, peer, m.request).await)
            } else {
                let app = docs_demo::router(self.running.demo.clone());
                let response = app
                    .oneshot(m.request)
                    .await
                    .unwrap_or_else(|never| match never {});
                let status = response.status().as_u16();
                let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("the body: {e}")))?;
                Ok((status, body.to_vec()))
            }
        };
        let (status, body) = tokio::time::timeout(Duration::from_secs(20), answer)
            .await
            .map_err(|_| TestCaseError::fail("no answer within 20 s"))??;
        *self.seen.lock().unwrap().entry(status).or_default() += 1;
        if m.presents_tampered_bearer {
            *self.tampered.lock().unwrap() += 1;
        }
        let new: Vec<AuditEvent> = events.events()[before..].to_vec();

        // Never a server error: the demo has no 5xx of its own for any of this (503 is for an
        // audit log or key source that fails, which nothing here makes happen).
        prop_assert!(status < 500, "status {status}, records {new:#?}");

        // Every refusal is recorded exactly once.
        let refusals = new
            .iter()
            .filter(|e| {
                matches!(
                    e.kind,
                    EventKind::Authentication {
                        outcome: AuthnOutcome::Failure,
                        ..
                    } | EventKind::Authorization {
                        decision: Decision::Deny,
                        ..
                    }
                )
            })
            .count();
        if status == 401 || status == 403 {
            prop_assert_eq!(refusals, 1, "{} refusal records for a {}", refusals, status);
        } else if !(200..300).contains(&status) {
            // A 400 of the guard is recorded once too; a router's 404 or 405 is not a refusal.
            prop_assert!(refusals <= 1, "{refusals} refusal records for a {status}");
        }
        for e in &new {
            if let EventKind::RequestCompleted { status: s, .. } = e.kind {
                prop_assert_eq!(s, status, "the completion records another status");
            }
        }

        if (200..300).contains(&status) {
            prop_assert!(
                !m.presents_tampered_bearer,
                "a tampered bearer token was answered {status}: {new:#?}"
            );
            // Allowed by its first decision; on a protected route (one with an action), only as
            // one of the callers whose intact credential the request carries.
            let first = new.first();
            let allowed = matches!(
                first.map(|e| &e.kind),
                Some(EventKind::Authorization {
                    decision: Decision::Allow,
                    ..
                })
            );
            prop_assert!(allowed, "a {status} not allowed first: {new:#?}");
            let first = first.unwrap();
            let protected = first.target.as_ref().is_some_and(|t| t.action.is_some());
            if protected {
                let actor = first.actor.as_ref();
                let ok = actor.is_some_and(|a| {
                    m.may_act_as.contains(&a.id)
                        || (m.forwarded && a.kind == PrincipalKind::Service)
                });
                prop_assert!(
                    ok,
                    "a {status} on a protected route served as {:?}, the request carries intact credentials of {:?}",
                    actor.map(|a| &a.id),
                    m.may_act_as
                );
                // The document served is the one decided on: a document read answered 200 must
                // carry it (a body that does not parse fails, it is not skipped).
                let target = first.target.as_ref();
                let decided = target.and_then(|t| t.resource_id.as_deref());
                let read = target.is_some_and(|t| {
                    t.action.as_deref() == Some("docs:read")
                        && t.resource_type.as_deref() == Some("Document")
                }) && status == 200
                    && h.method == "GET";
                if let (true, Some(decided)) = (read, decided) {
                    let served: serde_json::Value = serde_json::from_slice(&body)
                        .map_err(|e| TestCaseError::fail(format!("a document read's body: {e}")))?;
                    let id = served.get("id").and_then(|v| v.as_str());
                    prop_assert_eq!(id, Some(decided), "served another document than decided on");
                    *self.compared.lock().unwrap() += 1;
                }
            }
        }

        // Whatever the answer, nobody is recorded as acting but a caller whose intact credential
        // the request carries: a tampered token never authenticates, even to be refused.
        for e in &new {
            if let Some(a) = &e.actor {
                prop_assert!(
                    m.may_act_as.contains(&a.id)
                        || (m.forwarded && a.kind == PrincipalKind::Service),
                    "recorded as {} ({status}), the request carries intact credentials of {:?}",
                    a.id,
                    m.may_act_as
                );
            }
        }

        // No credential text reaches the records.
        let recorded = serde_json::to_vec(&new).unwrap();
        for s in &m.secrets {
            prop_assert!(
                !recorded.windows(s.len()).any(|w| w == s.as_slice()),
                "a credential reached the audit records"
            );
        }
        Ok(())
    }
}

/// Sends `request` over a new connection from `peer` (a loopback address) to `addr`, byte for
/// byte as built (path, header values), and reads the whole answer: status and body.
async fn over_http(addr: SocketAddr, peer: IpAddr, request: Request<Body>) -> (u16, Vec<u8>) {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut wire = format!("{} {target} HTTP/1.1\r\nHost: test\r\n", parts.method).into_bytes();
    for (name, value) in &parts.headers {
        wire.extend_from_slice(name.as_str().as_bytes());
        wire.extend_from_slice(b": ");
        wire.extend_from_slice(value.as_bytes());
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    wire.extend_from_slice(&body);
    let reply = crate::adapters::exchange(Some(peer), addr, &wire).await;
    assert_ne!(reply.status, 0, "no answer: {}", reply.head);
    let body = if reply
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        dechunk(reply.body.as_bytes())
    } else {
        reply.body.into_bytes()
    };
    (reply.status, body)
}

/// The body of a chunked transfer coding (no trailers).
fn dechunk(mut chunked: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(eol) = chunked.windows(2).position(|w| w == b"\r\n") {
        let line = String::from_utf8_lossy(&chunked[..eol]);
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("a malformed chunk size line: {line:?}"));
        if size == 0 {
            break;
        }
        let start = eol + 2;
        body.extend_from_slice(&chunked[start..(start + size).min(chunked.len())]);
        chunked = &chunked[(start + size + 2).min(chunked.len())..];
    }
    body
}

/// A document read with one bearer token, tampered or not: the cases that must reach the checks
/// on tampered tokens and on the document served, whatever the random mix gives.
fn document_read(tampered: bool) -> impl Strategy<Value = Hostile> {
    let tamper = if tampered {
        tamper().prop_map(Some).boxed()
    } else {
        Just(None).boxed()
    };
    (0usize..USERS.len(), any::<bool>(), tamper, 1u8..=4).prop_map(|(user, mfa, tamper, doc)| {
        Hostile {
            method: "GET",
            path: format!("/docs/d{doc}"),
            authorization: vec![AuthValue {
                scheme: 0,
                secret: Secret::Token(TokenOf { user, mfa, tamper }),
            }],
            api_keys: Vec::new(),
            cookie: None,
            client_cert: None,
            traceparent: None,
            user_agent: None,
            peer: Some("127.0.0.1".parse().unwrap()),
            body: Vec::new(),
        }
    })
}

/// Runs `cases` generated hostile requests against `running`, then verifies its log.
fn hostile_requests_against(
    rt: &tokio::runtime::Runtime,
    running: docs_demo::Running,
    over_http: bool,
    cases: u32,
) {
    let demo = running.demo.clone();
    let tokens = USERS
        .iter()
        .flat_map(|u| [false, true].map(|mfa| demo.idp.token(u, mfa, demo.now()).unwrap()))
        .map(String::into_bytes)
        .collect();
    let bench = Bench {
        api_key: demo.indexer_key.clone().into_bytes(),
        running,
        over_http,
        tokens,
        seen: Mutex::default(),
        unsendable: Mutex::default(),
        tampered: Mutex::default(),
        compared: Mutex::default(),
    };
    let mut runner = TestRunner::new(config(cases));
    let result = runner.run(&hostile(), |h| rt.block_on(bench.check(&h)));
    if let Err(e) = result {
        panic!("{e}");
    }
    // Besides the mix, document reads with a tampered token and with an intact one, so that the
    // checks on tampered tokens and on the document served run on every adapter and transport.
    for tampered in [true, false] {
        let mut runner = TestRunner::new(config(32));
        let result = runner.run(&document_read(tampered), |h| rt.block_on(bench.check(&h)));
        if let Err(e) = result {
            panic!("{e}");
        }
    }
    let (tampered, compared) = (
        *bench.tampered.lock().unwrap(),
        *bench.compared.lock().unwrap(),
    );
    assert!(
        tampered >= 16,
        "only {tampered} requests carried a tampered bearer token"
    );
    assert!(
        compared >= 4,
        "only {compared} documents served were compared"
    );

    // Every record is in the signed log, which verifies.
    let report = rt.block_on(bench.running.verify_log());
    let recorded = bench.running.events.events().len() as u64;
    assert_eq!(report.events, recorded, "the log lacks records");
    assert!(recorded > 0);
    eprintln!(
        "hostile requests ({}{}): statuses {:?}, {} not sendable, {tampered} with a tampered \
         bearer token, {compared} documents compared, {recorded} records",
        bench.running.name,
        if over_http {
            ", over HTTP"
        } else {
            ", in process"
        },
        bench.seen.lock().unwrap(),
        bench.unsendable.lock().unwrap()
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn hostile_requests_never_panic_bypass_or_go_unrecorded() {
    let rt = runtime();
    let running = rt.block_on(docs_demo::axum());
    hostile_requests_against(&rt, running, false, 768);
}

/// The same properties over real HTTP, through hyper's and actix-web's own parsing and routing.
#[test]
fn hostile_requests_over_http_hold_on_both_adapters() {
    let rt = runtime();
    let axum = rt.block_on(docs_demo::axum());
    hostile_requests_against(&rt, axum, true, 128);
    let actix = rt.block_on(docs_demo::actix());
    hostile_requests_against(&rt, actix, true, 128);
}

// ---- policy files ---------------------------------------------------------------------------

const POLICY: &str = include_str!("../../examples/policies/docs_service.toml");

/// Text spliced into a line: TOML and condition-language tokens, and some that are neither.
const FRAGMENTS: &[&str] = &[
    "",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "=",
    ",",
    "#",
    "\\",
    "\\u",
    "\n",
    "\r\n",
    "\t",
    " ",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "&&",
    "||",
    "!",
    "(",
    ")",
    ".",
    "has",
    "in",
    "like",
    "true",
    "false",
    "principal",
    "resource",
    "context",
    "principal.id",
    "principal.tenant",
    "principal.roles",
    "principal.mfa",
    "resource.owner",
    "resource.tenant",
    "context.peer_ip",
    "context.time",
    ".hour()",
    ".weekday()",
    ".contains(",
    ".containsAny(",
    ".containsAll(",
    ".isInRange(",
    "ip(\"10.0.0.0/8\")",
    "ip(\"010.1.2.3\")",
    "ip(\"::ffff:10.1.2.3/104\")",
    "ip(\"10.0.0.0/33\")",
    "timestamp(\"2026-01-31T09:00:00Z\")",
    "timestamp(\"9999-99-99\")",
    "decimal(\"12.5\")",
    "decimal(\"99999999999999999999.99999\")",
    "9223372036854775807",
    "-9223372036854775808",
    "99999999999999999999",
    "-0",
    "\"*\"",
    "\"**\"",
    "\"a*b*c*d*e*f*\"",
    "docs:*",
    "*",
    "docs:",
    ":",
    "allow",
    "deny",
    "effect",
    "actions",
    "resources",
    "routes",
    "rules",
    "roles",
    "inherits",
    "permissions",
    "schema",
    "principal = { role = \"x\" }",
    "inherits = [\"admin\"]",
    "inherits = [\"viewer\", \"viewer\"]",
    "public = true",
    "id = \"id\"",
    "scopes = [\"\"]",
    "method = \"get\"",
    "route = \"\"",
    "\"set<set<string>>\"",
    "\"set<ip>\"",
    "\"long\"",
    "\"decimal\"",
    "\"record\"",
    "[[rules]]",
    "[[routes]]",
    "[roles.viewer]",
    "[schema.context]",
    "\u{202e}",
    "é",
    "\u{0}",
    "\u{feff}",
    "𝕏",
];

const ATOMS: &[&str] = &[
    "true",
    "false",
    "1",
    "-1",
    "0",
    "9223372036854775807",
    "\"\"",
    "\"acme\"",
    "\"secret\"",
    "principal.id",
    "principal.tenant",
    "principal.roles",
    "principal.scopes",
    "principal.mfa",
    "principal.amr",
    "principal.kind",
    "principal.issuer",
    "principal.suspended",
    "principal.nope",
    "resource.owner",
    "resource.tenant",
    "resource.classification",
    "resource.type",
    "resource.id",
    "context.peer_ip",
    "context.time",
    "context.time.hour()",
    "context.time.weekday()",
    "ip(\"10.0.0.0/8\")",
    "ip(\"::1\")",
    "ip(\"bad\")",
    "timestamp(\"2026-01-31T09:00:00Z\")",
    "decimal(\"1.5\")",
    "[]",
    "[\"editor\", \"admin\"]",
    "[1, \"a\"]",
    "principal",
    "resource",
    "context",
];
const BINOPS: &[&str] = &[
    "==", "!=", "<", "<=", ">", ">=", "&&", "||", "in", "like", "has", "&", "|", "===",
];
const CALLS: &[&str] = &[
    "contains",
    "containsAny",
    "containsAll",
    "isInRange",
    "hour",
    "weekday",
    "nope",
];

fn condition() -> impl Strategy<Value = String> {
    let leaf = prop::sample::select(ATOMS).prop_map(str::to_owned);
    let tree = leaf.prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            3 => (inner.clone(), prop::sample::select(BINOPS), inner.clone())
                .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            1 => inner.clone().prop_map(|a| format!("!{a}")),
            1 => inner.clone().prop_map(|a| format!("({a})")),
            1 => (inner.clone(), prop::sample::select(CALLS), prop::collection::vec(inner.clone(), 0..3))
                .prop_map(|(a, m, args)| format!("{a}.{m}({})", args.join(", "))),
            1 => prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            1 => (inner, "[a-z_]{1,8}").prop_map(|(a, n)| format!("{a} has {n}")),
        ]
    });
    prop_oneof![
        6 => tree,
        // Long flat chains, deep nesting, and text just over the limits.
        1 => (1usize..4000, prop::sample::select(&["true", "principal.mfa", "1 == 1"][..]), prop::sample::select(&[" || ", " && "][..]))
            .prop_map(|(n, a, op)| vec![a; n].join(op)),
        1 => (1usize..80).prop_map(|n| format!("{}true{}", "(".repeat(n), ")".repeat(n))),
        1 => (1usize..80).prop_map(|n| format!("{}true", "!".repeat(n))),
        1 => (1usize..80).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n))),
        1 => (1usize..80).prop_map(|n| format!("context.time{}", ".hour()".repeat(n))),
        1 => (1usize..3).prop_map(|n| format!("\"{}\" like \"{}\"", "a".repeat(8000 * n), "*a".repeat(500))),
    ]
}

#[derive(Debug, Clone)]
enum Edit {
    DeleteLine(Index),
    DuplicateLine(Index),
    SwapLines(Index, Index),
    /// Replaces up to `n` characters at a place in a line with a fragment.
    Splice(Index, Index, usize, &'static str),
    /// Inserts any characters at a place in the file.
    Insert(Index, String),
    /// Replaces the condition of a `when`/`unless` line.
    Condition(Index, String),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        2 => any::<Index>().prop_map(Edit::DeleteLine),
        2 => any::<Index>().prop_map(Edit::DuplicateLine),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        4 => (any::<Index>(), any::<Index>(), 0usize..8, prop::sample::select(FRAGMENTS))
            .prop_map(|(l, at, n, f)| Edit::Splice(l, at, n, f)),
        1 => (any::<Index>(), any::<String>()).prop_map(|(at, s)| Edit::Insert(at, s)),
        4 => (any::<Index>(), condition()).prop_map(|(at, c)| Edit::Condition(at, c)),
    ]
}

/// The byte offset of the `n`th character boundary of `s`, `n` taken modulo their number.
fn boundary(s: &str, at: &Index) -> usize {
    let mut bounds: Vec<usize> = s.char_indices().map(|(i, _)| i).collect();
    bounds.push(s.len());
    bounds[at.index(bounds.len())]
}

fn mutate(edits: &[Edit]) -> String {
    let mut lines: Vec<String> = POLICY.lines().map(str::to_owned).collect();
    for e in edits {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let n = lines.len();
        match e {
            Edit::DeleteLine(i) => {
                lines.remove(i.index(n));
            }
            Edit::DuplicateLine(i) => {
                let i = i.index(n);
                lines.insert(i, lines[i].clone());
            }
            Edit::SwapLines(a, b) => lines.swap(a.index(n), b.index(n)),
            Edit::Splice(l, at, len, fragment) => {
                let line = &mut lines[l.index(n)];
                let start = boundary(line, at);
                let end = line[start..]
                    .char_indices()
                    .nth(*len)
                    .map_or(line.len(), |(i, _)| start + i);
                line.replace_range(start..end, fragment);
            }
            Edit::Insert(at, text) => {
                let mut joined = lines.join("\n");
                let at = boundary(&joined, at);
                joined.insert_str(at, text);
                lines = joined.lines().map(str::to_owned).collect();
            }
            Edit::Condition(at, condition) => {
                let conditions: Vec<usize> = (0..n)
                    .filter(|&i| lines[i].starts_with("when") || lines[i].starts_with("unless"))
                    .collect();
                if conditions.is_empty() {
                    continue;
                }
                let i = conditions[at.index(conditions.len())];
                let key = if lines[i].starts_with("when") {
                    "when"
                } else {
                    "unless"
                };
                lines[i] = if condition.contains('\'') || condition.contains('\n') {
                    format!("{key} = {}", toml::Value::String(condition.clone()))
                } else {
                    format!("{key} = '{condition}'")
                };
            }
        }
    }
    lines.join("\n")
}

/// The fixed questions a loaded policy is asked.
fn questions() -> Vec<(Principal, &'static str, Resource, Context)> {
    let t = Timestamp::from_unix_seconds(1_700_000_000);
    let inside = Context::new(t).with_peer_ip("10.1.2.3".parse().unwrap());
    let mapped = Context::new(t).with_peer_ip("::ffff:10.1.2.3".parse().unwrap());
    let nowhere = Context::new(t);
    let alice = Principal::new("alice", PrincipalKind::User, "idp")
        .with_tenant("acme")
        .with_roles(["editor"]);
    let carol = Principal::new("carol", PrincipalKind::User, "idp")
        .with_tenant("acme")
        .with_roles(["admin", "no-such-role"]);
    let mallory = Principal::new("mallory", PrincipalKind::User, "idp")
        .with_tenant("acme")
        .with_roles(["editor"])
        .with_attribute("suspended", true);
    let odd = Principal::new("", PrincipalKind::Service, "")
        .with_attribute("suspended", "yes")
        .with_scopes(["docs.write"]);
    let doc = |id: &str, owner: &str, class: &str| {
        Resource::new("Document")
            .with_id(id)
            .with_attribute("tenant", "acme")
            .with_attribute("owner", owner)
            .with_attribute("classification", class)
    };
    vec![
        (
            alice.clone(),
            "docs:read",
            doc("d1", "alice", "internal"),
            nowhere.clone(),
        ),
        (
            alice.clone(),
            "docs:share",
            doc("d1", "alice", "internal"),
            inside.clone(),
        ),
        (
            alice.clone(),
            "docs:share",
            doc("d1", "alice", "internal"),
            mapped,
        ),
        (
            alice,
            "docs:delete",
            doc("d2", "carol", "secret"),
            inside.clone(),
        ),
        (
            carol.clone(),
            "docs:delete",
            doc("d2", "carol", "secret"),
            nowhere.clone(),
        ),
        (
            carol.clone(),
            "admin:console",
            Resource::new("Console"),
            nowhere.clone(),
        ),
        (
            carol,
            "api:docs:list",
            Resource::new("Document"),
            inside.clone(),
        ),
        (
            mallory.clone(),
            "docs:read",
            doc("d1", "mallory", "public"),
            nowhere.clone(),
        ),
        (
            mallory,
            "docs:read",
            Resource::new("AuditLog").with_id("acme"),
            nowhere.clone(),
        ),
        (
            odd.clone(),
            "docs:update",
            Resource::new("Document").with_attribute("tenant", 5_i64),
            nowhere.clone(),
        ),
        (odd.clone(), "", Resource::new(""), inside),
        (odd, "docs:*", doc("*", "*", "*"), nowhere),
    ]
}

fn route_questions() -> Vec<RequestFacts> {
    let facts = |method: axum::http::Method, template: &str, params: &[(&str, &str)]| {
        params.iter().fold(
            RequestFacts::new(method, "/x").with_matched_route(template),
            |f, (n, v)| f.with_param(*n, *v),
        )
    };
    use axum::http::Method;
    vec![
        facts(Method::GET, "/docs/{id}", &[("id", "d1")]),
        facts(Method::HEAD, "/docs/{id}", &[("id", "d1")]),
        facts(Method::DELETE, "/docs/{id}", &[]),
        facts(Method::GET, "/audit-logs/{tenant}", &[("tenant", "")]),
        facts(Method::GET, "/health", &[]),
        facts(Method::POST, "/docs", &[("id", "x")]),
        facts(Method::from_bytes(b"PURGE").unwrap(), "/docs", &[]),
        facts(Method::GET, "", &[]),
    ]
}

fn check_policy(text: &str) -> Result<(), TestCaseError> {
    match PolicySet::from_toml(text, "mutated.toml") {
        Ok(policy) => {
            for (who, action, resource, context) in questions() {
                let decided = policy.decide(&who, action, &resource, &context);
                let evaluated = policy.evaluate(&who, action, &resource, &context);
                let explained = policy.explain(&who, action, &resource, &context);
                prop_assert_eq!(decided, evaluated.decision, "decide and evaluate disagree");
                prop_assert_eq!(decided, explained.decision, "decide and explain disagree");
            }
            for facts in route_questions() {
                if let RouteBinding::Protected { action, .. } = policy.route(&facts) {
                    prop_assert!(!action.as_str().is_empty(), "a route bound to no action");
                }
            }
            let _ = (
                format!("{policy:?}"),
                policy.rule_ids().count(),
                policy.version(),
            );
        }
        Err(error) => {
            prop_assert!(
                !error.diagnostics().is_empty(),
                "an error without a diagnostic"
            );
            let _ = (error.to_string(), error.render());
            for d in error.diagnostics() {
                prop_assert!(!d.message().is_empty());
                prop_assert!(d.code().starts_with("aaa::policy::"), "code {}", d.code());
                if let Some(span) = d.span() {
                    prop_assert!(
                        text.get(span.clone()).is_some(),
                        "{}: span {span:?} is not in the text of {} bytes",
                        d.code(),
                        text.len()
                    );
                    prop_assert!(d.line() >= 1 && d.column() >= 1);
                }
            }
        }
    }
    Ok(())
}

#[test]
fn the_unmutated_policy_loads() {
    PolicySet::from_toml(POLICY, "docs_service.toml").unwrap();
    check_policy(POLICY).unwrap();
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn mutated_policy_files_never_panic(edits in prop::collection::vec(edit(), 1..5)) {
        check_policy(&mutate(&edits))?;
    }

    #[test]
    fn policy_files_with_changed_values_never_panic(edits in prop::collection::vec(toml_edit(), 1..4)) {
        if let Some(text) = mutate_toml(&edits) {
            check_policy(&text)?;
        }
    }
}

/// A change to the parsed policy file, so that it stays TOML and reaches the policy compiler.
#[derive(Debug, Clone)]
enum TomlEdit {
    /// Replaces a value (a string, number, bool or whole array or table) with another.
    Set(Index, toml::Value),
    /// Removes an entry of a table or an array.
    Remove(Index, Index),
    /// Repeats an entry of an array.
    Repeat(Index, Index),
    /// Sets the `when` (or `unless`) condition of a rule.
    Condition(Index, bool, String),
}

fn toml_value() -> impl Strategy<Value = toml::Value> {
    use toml::Value as V;
    let words = prop::sample::select(
        &[
            "",
            "*",
            "docs:*",
            "docs:read",
            "api:docs:*",
            "admin:*",
            "Document",
            "AuditLog",
            "Console",
            "GET",
            "get",
            "HEAD",
            "PURGE",
            "/docs/{id}",
            "/docs/{id}/share",
            "{id}",
            "id",
            "tenant",
            "string",
            "bool",
            "long",
            "ip",
            "decimal",
            "timestamp",
            "set<string>",
            "set<set<ip>>",
            "record",
            "admin",
            "editor",
            "viewer",
            "auditor",
            "nobody",
            "allow",
            "deny",
            "permit",
            "user",
            "service",
            "device",
            "owner",
            "principal",
            "docs.write",
        ][..],
    )
    .prop_map(|w| V::String(w.to_owned()));
    let leaf = prop_oneof![
        4 => condition().prop_map(V::String),
        4 => words,
        1 => any::<String>().prop_map(V::String),
        1 => any::<i64>().prop_map(V::Integer),
        1 => any::<bool>().prop_map(V::Boolean),
        1 => any::<f64>().prop_map(V::Float),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(V::Array),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..3)
                .prop_map(|m| V::Table(m.into_iter().collect())),
        ]
    })
}

fn toml_edit() -> impl Strategy<Value = TomlEdit> {
    prop_oneof![
        4 => (any::<Index>(), toml_value()).prop_map(|(i, v)| TomlEdit::Set(i, v)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| TomlEdit::Remove(a, b)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| TomlEdit::Repeat(a, b)),
        6 => (any::<Index>(), any::<bool>(), condition()).prop_map(|(a, w, c)| TomlEdit::Condition(a, w, c)),
    ]
}

fn count_values(v: &toml::Value, n: &mut usize) {
    *n += 1;
    match v {
        toml::Value::Array(items) => items.iter().for_each(|i| count_values(i, n)),
        toml::Value::Table(t) => t.values().for_each(|i| count_values(i, n)),
        _ => {}
    }
}

/// The `k`th value under `v` in depth-first order.
fn nth_value<'v>(v: &'v mut toml::Value, k: &mut usize) -> Option<&'v mut toml::Value> {
    if *k == 0 {
        return Some(v);
    }
    *k -= 1;
    match v {
        toml::Value::Array(items) => items.iter_mut().find_map(|i| nth_value(i, k)),
        toml::Value::Table(t) => t.iter_mut().find_map(|(_, i)| nth_value(i, k)),
        _ => None,
    }
}

fn mutate_toml(edits: &[TomlEdit]) -> Option<String> {
    let mut root = toml::Value::Table(toml::from_str(POLICY).unwrap());
    for e in edits {
        if let TomlEdit::Condition(at, when, condition) = e {
            if let Some(toml::Value::Array(rules)) = root.get_mut("rules")
                && !rules.is_empty()
                && let n = rules.len()
                && let Some(rule) = rules[at.index(n)].as_table_mut()
            {
                let key = if *when { "when" } else { "unless" };
                rule.insert(key.to_owned(), toml::Value::String(condition.clone()));
            }
            continue;
        }
        let mut total = 0;
        count_values(&root, &mut total);
        let (TomlEdit::Set(at, _)
        | TomlEdit::Remove(at, _)
        | TomlEdit::Repeat(at, _)
        | TomlEdit::Condition(at, ..)) = e;
        let mut k = at.index(total);
        // The root stays a table.
        let is_root = k == 0;
        let target = nth_value(&mut root, &mut k)?;
        match (e, target) {
            (TomlEdit::Set(_, v), target) if !is_root => *target = v.clone(),
            (TomlEdit::Remove(_, i), toml::Value::Array(items)) if !items.is_empty() => {
                items.remove(i.index(items.len()));
            }
            (TomlEdit::Remove(_, i), toml::Value::Table(t)) if !t.is_empty() => {
                let key = t.keys().nth(i.index(t.len()))?.clone();
                t.remove(&key);
            }
            (TomlEdit::Repeat(_, i), toml::Value::Array(items)) if !items.is_empty() => {
                let item = items[i.index(items.len())].clone();
                items.push(item);
            }
            _ => {}
        }
    }
    toml::to_string(&root).ok()
}

// ---- audit logs -----------------------------------------------------------------------------

/// A good log of several segments, and the anchor (the witness's last checkpoint).
struct GoodLog {
    segments: Vec<(String, Vec<u8>)>,
    anchor: String,
}

fn log_key() -> SigningKey {
    SigningKey::from_seed("docs/audit", &[7; 32]).unwrap()
}

fn good_log() -> &'static GoodLog {
    static LOG: std::sync::OnceLock<GoodLog> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let witness = dir.path().join("witness.note");
        let log_dir = dir.path().join("log");
        let mut c = AuditWriterConfig::new(&log_dir, "docs", "pod-1");
        c.clock = Arc::new(aaa::FixedClock::new(Timestamp::from_unix_seconds(
            1_700_000_000,
        )));
        c.checkpoint_every = 7;
        c.segment_max_bytes = 2048;
        c.max_batch = 2;
        c.durability = DurabilityPolicy::all(Durability::BestEffort);
        c.witness = Some(Arc::new(FileWitness::new(&witness)));
        let log = AuditWriter::open(c, log_key()).unwrap();
        crate::audit::rt().block_on(async {
            for i in 0..30_i64 {
                let kind = if i % 3 == 2 {
                    EventKind::RequestCompleted {
                        status: 200,
                        latency_us: 7,
                    }
                } else {
                    EventKind::Authorization {
                        decision: if i % 2 == 0 {
                            Decision::Allow
                        } else {
                            Decision::Deny
                        },
                        reason: if i % 2 == 0 {
                            aaa::Reason::Permitted
                        } else {
                            aaa::Reason::NotPermitted
                        },
                        rules: vec![format!("rule-{}", i % 4).into()],
                        errors: vec![],
                        policy_version: Some("v1".into()),
                    }
                };
                let mut e = AuditEvent::new(Timestamp::from_unix_seconds(1_700_000_000 + i), kind);
                e.actor = Some(Arc::new(audit::Actor::from(&Principal::new(
                    format!("user{}\"é\u{202e}", i % 3),
                    PrincipalKind::User,
                    "idp",
                ))));
                e.request = Some(Arc::new(RequestInfo {
                    method: Some("GET".into()),
                    user_agent: Some(format!("curl/8.5\r\n{{\"seq\":{i}}}\\u0000")),
                    ..RequestInfo::default()
                }));
                log.record(e).await.unwrap();
            }
            log.flush().await.unwrap();
        });
        log.close().unwrap();
        // The segments (beside them, the writer's resume point).
        let mut files: Vec<_> = std::fs::read_dir(&log_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        files.sort();
        let segments: Vec<(String, Vec<u8>)> = files
            .iter()
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(p).unwrap(),
                )
            })
            .collect();
        assert!(segments.len() >= 3, "{} segments", segments.len());
        let log = GoodLog {
            segments,
            anchor: std::fs::read_to_string(&witness).unwrap(),
        };
        let report = trusted().verify_segments(&log.segments).unwrap();
        assert_eq!((report.events, report.uncovered), (30, 0));
        log
    })
}

fn trusted() -> Verifier {
    Verifier::new([log_key().verifier_key()])
}

#[derive(Debug, Clone)]
enum LogEdit {
    DeleteLine(Index),
    DuplicateLine(Index),
    SwapLines(Index, Index),
    /// Moves a line elsewhere (into the segment of the line it lands before).
    MoveLine(Index, Index),
    /// Replaces a line with a copy of another.
    ReplaceLine(Index, Index),
    /// Cuts the log inside a line: it keeps its first bytes, everything after it is gone.
    Cut(Index, Index),
    InsertBytes(Index, Index, Vec<u8>),
    ChangeByte(Index, Index, u8),
    DeleteByte(Index, Index),
    /// The same JSON with other bytes: a space after each `:`.
    Respace(Index),
    /// The same JSON with other bytes: one ASCII letter written `\u00XX`.
    Escape(Index, Index),
    DeleteSegment(Index),
    /// Moves every line of the next segment into this one.
    JoinSegments(Index),
}

fn log_edit() -> impl Strategy<Value = LogEdit> {
    let i = any::<Index>;
    prop_oneof![
        2 => i().prop_map(LogEdit::DeleteLine),
        2 => i().prop_map(LogEdit::DuplicateLine),
        1 => (i(), i()).prop_map(|(a, b)| LogEdit::SwapLines(a, b)),
        1 => (i(), i()).prop_map(|(a, b)| LogEdit::MoveLine(a, b)),
        1 => (i(), i()).prop_map(|(a, b)| LogEdit::ReplaceLine(a, b)),
        3 => (i(), i()).prop_map(|(a, b)| LogEdit::Cut(a, b)),
        2 => (i(), i(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(a, b, v)| LogEdit::InsertBytes(a, b, v)),
        2 => (i(), i(), 1u8..=255).prop_map(|(a, b, d)| LogEdit::ChangeByte(a, b, d)),
        1 => (i(), i()).prop_map(|(a, b)| LogEdit::DeleteByte(a, b)),
        1 => i().prop_map(LogEdit::Respace),
        1 => (i(), i()).prop_map(|(a, b)| LogEdit::Escape(a, b)),
        1 => i().prop_map(LogEdit::DeleteSegment),
        1 => i().prop_map(LogEdit::JoinSegments),
    ]
}

/// Segments as lines (each with its newline, but a cut last one).
type Lines = Vec<(String, Vec<Vec<u8>>)>;

fn split_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

/// (segment, line) of the `i`th line over all segments, if there is any line.
fn locate(segs: &Lines, i: &Index) -> Option<(usize, usize)> {
    let total: usize = segs.iter().map(|(_, l)| l.len()).sum();
    if total == 0 {
        return None;
    }
    let mut k = i.index(total);
    for (s, (_, lines)) in segs.iter().enumerate() {
        if k < lines.len() {
            return Some((s, k));
        }
        k -= lines.len();
    }
    None
}

fn apply_log_edit(segs: &mut Lines, e: &LogEdit) {
    let n_segs = segs.len();
    match e {
        LogEdit::DeleteLine(i) => {
            if let Some((s, l)) = locate(segs, i) {
                segs[s].1.remove(l);
            }
        }
        LogEdit::DuplicateLine(i) => {
            if let Some((s, l)) = locate(segs, i) {
                let line = segs[s].1[l].clone();
                segs[s].1.insert(l, line);
            }
        }
        LogEdit::SwapLines(a, b) => {
            if let (Some((sa, la)), Some((sb, lb))) = (locate(segs, a), locate(segs, b)) {
                let x = segs[sa].1[la].clone();
                let y = std::mem::replace(&mut segs[sb].1[lb], x);
                segs[sa].1[la] = y;
            }
        }
        LogEdit::MoveLine(a, b) => {
            if let Some((sa, la)) = locate(segs, a) {
                let line = segs[sa].1.remove(la);
                match locate(segs, b) {
                    Some((sb, lb)) => segs[sb].1.insert(lb, line),
                    None => segs[sa].1.push(line),
                }
            }
        }
        LogEdit::ReplaceLine(a, b) => {
            if let (Some((sa, la)), Some((sb, lb))) = (locate(segs, a), locate(segs, b)) {
                segs[sa].1[la] = segs[sb].1[lb].clone();
            }
        }
        LogEdit::Cut(a, at) => {
            if let Some((s, l)) = locate(segs, a) {
                segs.truncate(s + 1);
                let lines = &mut segs[s].1;
                lines.truncate(l + 1);
                let line = &mut lines[l];
                line.truncate(at.index(line.len() + 1));
            }
        }
        LogEdit::InsertBytes(a, at, bytes) => {
            if let Some((s, l)) = locate(segs, a) {
                let line = &mut segs[s].1[l];
                let at = at.index(line.len() + 1);
                line.splice(at..at, bytes.iter().copied());
            }
        }
        LogEdit::ChangeByte(a, at, delta) => {
            if let Some((s, l)) = locate(segs, a) {
                let line = &mut segs[s].1[l];
                if !line.is_empty() {
                    let at = at.index(line.len());
                    line[at] = line[at].wrapping_add(*delta);
                }
            }
        }
        LogEdit::DeleteByte(a, at) => {
            if let Some((s, l)) = locate(segs, a) {
                let line = &mut segs[s].1[l];
                if !line.is_empty() {
                    line.remove(at.index(line.len()));
                }
            }
        }
        LogEdit::Respace(a) => {
            if let Some((s, l)) = locate(segs, a) {
                let line = &mut segs[s].1[l];
                *line = String::from_utf8_lossy(line)
                    .replace("\":", "\": ")
                    .into_bytes();
            }
        }
        LogEdit::Escape(a, at) => {
            if let Some((s, l)) = locate(segs, a) {
                let line = &mut segs[s].1[l];
                let letters: Vec<usize> = (0..line.len())
                    .filter(|&k| line[k].is_ascii_alphabetic())
                    .collect();
                if !letters.is_empty() {
                    let k = letters[at.index(letters.len())];
                    let escaped = format!("\\u{:04x}", line[k]);
                    line.splice(k..=k, escaped.bytes());
                }
            }
        }
        LogEdit::DeleteSegment(i) => {
            if n_segs > 0 {
                segs.remove(i.index(n_segs));
            }
        }
        LogEdit::JoinSegments(i) => {
            if n_segs > 1 {
                let k = i.index(n_segs - 1);
                let next = segs.remove(k + 1).1;
                segs[k].1.extend(next);
            }
        }
    }
}

fn check_log(edits: &[LogEdit]) -> Result<(), TestCaseError> {
    let good = good_log();
    let original: Vec<u8> = good.segments.iter().flat_map(|(_, b)| b.clone()).collect();
    let original_lines = split_lines(&original);
    let mut segs: Lines = good
        .segments
        .iter()
        .map(|(n, b)| (n.clone(), split_lines(b)))
        .collect();
    for e in edits {
        apply_log_edit(&mut segs, e);
    }
    let segments: Vec<(String, Vec<u8>)> = segs
        .into_iter()
        .map(|(n, lines)| (n, lines.concat()))
        .collect();
    let mutated: Vec<u8> = segments.iter().flat_map(|(_, b)| b.clone()).collect();
    let lines = split_lines(&mutated);

    // What a log may verify as: its records are the written ones, in order, from the first (a
    // cut at a record boundary is undetectable without an anchor: the report shows how many are
    // covered), except that the last record, when no checkpoint covers it, is only as good as its
    // chain (nothing follows it to link its hash).
    let acceptable = |report: &audit::VerifyReport, anchored: bool| -> Result<(), TestCaseError> {
        let n = lines.len();
        prop_assert_eq!(report.records, n as u64, "records counted");
        prop_assert!(
            mutated.last().is_none_or(|&b| b == b'\n'),
            "a torn tail verified"
        );
        prop_assert!(
            n <= original_lines.len(),
            "more records than written verified"
        );
        for (k, (got, want)) in lines.iter().zip(&original_lines).enumerate() {
            if got != want {
                prop_assert!(
                    k + 1 == n && report.covered < n as u64,
                    "record {k} differs from the written one, and the log verified: {report:?}"
                );
            }
        }
        if anchored {
            prop_assert!(
                report.anchor_size.is_some_and(|a| n as u64 >= a),
                "shorter than the anchor"
            );
        }
        Ok(())
    };

    let plain = trusted().verify_segments(&segments);
    if let Ok(report) = &plain {
        acceptable(report, false)?;
    }
    let anchored = trusted()
        .with_anchor(good.anchor.clone())
        .verify_segments(&segments);
    if let Ok(report) = &anchored {
        acceptable(report, true)?;
    }
    if segments == good.segments {
        prop_assert!(
            plain.is_ok() && anchored.is_ok(),
            "the good log no longer verifies"
        );
    }

    // The same from files, and the readers that do not verify never panic.
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in &segments {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let from_files = trusted().verify_dir(dir.path());
    prop_assert_eq!(
        from_files.as_ref().map_err(|e| &e.problem),
        plain.as_ref().map_err(|e| &e.problem),
        "the files verify differently"
    );
    let _ = audit::leaf_hashes(dir.path());
    let _ = audit::summarize(dir.path());
    Ok(())
}

#[test]
fn the_unmutated_log_verifies() {
    check_log(&[]).unwrap();
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn mutated_audit_logs_never_panic_nor_verify_as_written(
        edits in prop::collection::vec(log_edit(), 1..4)
    ) {
        check_log(&edits)?;
    }
}
