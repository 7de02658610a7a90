//! The data-driven conformance suite: `tests/cases/*.toml`, run over real HTTP against every
//! adapter, which must all give the same statuses, challenges, problem bodies and audit records.

use std::{net::SocketAddr, sync::Arc};

use aaa::{
    Decision,
    audit::{EventKind, MemorySink},
};
use serde::Deserialize;

use crate::{adapters, docs_demo};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    /// `METHOD target`, sent byte for byte.
    request: String,
    /// Raw header lines. `{token:USER}` and `{token:USER+mfa}` become a demo token;
    /// `{api-key}` the demo's API key; `{big:N}` N bytes of `a`.
    #[serde(default)]
    headers: Vec<String>,
    /// Raw bytes sent after the blank line that ends the headers (a chunked body, say).
    #[serde(default)]
    body: Option<String>,
    /// The client's address (one of 127.0.0.0/8); 127.0.0.1 when not given. The demo trusts
    /// 127.0.0.2 as its mesh proxy.
    #[serde(default)]
    peer: Option<std::net::IpAddr>,
    /// Why the adapters answer differently, when `status_by_router` is used.
    #[serde(default)]
    note: Option<String>,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    status: Option<u16>,
    /// For the few inputs the routers treat differently (see the case's note): the status of
    /// each, by router (`axum`, `actix`).
    status_by_router: Option<std::collections::BTreeMap<String, Statuses>>,
    www_authenticate: Option<String>,
    /// The `error="..."` code of the challenge.
    challenge_error: Option<String>,
    problem_code: Option<String>,
    body: Option<String>,
    body_contains: Option<String>,
    body_not_contains: Option<String>,
    /// The kinds of audit records the request produced, in order: "authn", "authz-allow",
    /// "authz-deny", "done".
    audit: Option<Vec<String>>,
    /// Fields of those records, one table per record in the same order: dotted paths into the
    /// record's event as the log writes it (`target.route`, `actor.id`, `reason`, `status`) and
    /// the value each must have (`"<absent>"`: the field must not be there).
    audit_fields: Option<Vec<toml::Table>>,
}

/// One status, or any of a few (where a router itself answers differently from run to run).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Statuses {
    One(u16),
    AnyOf(Vec<u16>),
}

impl Statuses {
    fn allows(&self, status: u16) -> bool {
        match self {
            Statuses::One(s) => *s == status,
            Statuses::AnyOf(any) => any.contains(&status),
        }
    }
}

/// Mints a token for a demo user, with or without MFA.
type TokenFn = Box<dyn Fn(&str, bool) -> String + Send + Sync>;

/// A server under test.
struct Target {
    name: &'static str,
    addr: SocketAddr,
    events: Arc<MemorySink>,
    token: TokenFn,
    api_key: String,
}

fn load(name: &str) -> Vec<Case> {
    let path = format!("{}/tests/cases/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let cases = toml::from_str::<CaseFile>(&text).unwrap().case;
    for c in &cases {
        assert!(
            c.expect.status.is_some() != c.expect.status_by_router.is_some(),
            "{}: give status or status_by_router",
            c.name
        );
        assert!(
            c.expect.status_by_router.is_none() || c.note.is_some(),
            "{}: say why",
            c.name
        );
        assert!(
            c.expect.audit_fields.is_none() || c.expect.audit.is_some(),
            "{}: audit_fields go with audit",
            c.name
        );
    }
    cases
}

fn kind_label(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Authentication { .. } => "authn",
        EventKind::Authorization {
            decision: Decision::Allow,
            ..
        } => "authz-allow",
        EventKind::Authorization {
            decision: Decision::Deny,
            ..
        } => "authz-deny",
        EventKind::RequestCompleted { .. } => "done",
        _ => "other",
    }
}

fn expand(header: &str, target: &Target) -> String {
    let mut out = header.replace("{api-key}", &target.api_key);
    while let Some(start) = out.find("{token:") {
        let end = start + out[start..].find('}').unwrap();
        let spec = &out[start + 7..end];
        let (user, mfa) = spec
            .strip_suffix("+mfa")
            .map_or((spec, false), |u| (u, true));
        out.replace_range(start..=end, &(target.token)(user, mfa));
    }
    if let Some(start) = out.find("{big:") {
        let end = start + out[start..].find('}').unwrap();
        let n: usize = out[start + 5..end].parse().unwrap();
        out.replace_range(start..=end, &"a".repeat(n));
    }
    out
}

/// The value at a dotted `path` (`target.route`) of a JSON value.
fn field<'v>(value: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
    path.split('.').try_fold(value, |v, key| v.get(key))
}

/// A record as the suite compares it across adapters: without its times, and without what
/// differs between two demos (their identity providers' addresses and keys, so their tokens).
pub(crate) fn normalized(event: &aaa::audit::AuditEvent, addr: SocketAddr) -> serde_json::Value {
    let mut value = serde_json::to_value(event).unwrap();
    if let Some(object) = value.as_object_mut() {
        object.remove("time");
        object.remove("latency_us");
    }
    if let Some(actor) = value
        .get_mut("actor")
        .and_then(serde_json::Value::as_object_mut)
    {
        if let Some(serde_json::Value::String(issuer)) = actor.get_mut("issuer") {
            *issuer = issuer.replace(&addr.to_string(), "DEMO");
        }
        if let Some(credential) = actor
            .get_mut("credential")
            .and_then(serde_json::Value::as_object_mut)
            && credential.get("type").and_then(serde_json::Value::as_str) == Some("sha256")
        {
            credential.remove("value");
        }
    }
    value
}

/// What one adapter answered to each case: its status and its normalized records.
type Answers = Vec<(u16, Vec<serde_json::Value>)>;

/// Runs every case against `target`; returns one line per mismatch, and the answers.
async fn run(cases: &[Case], target: &Target) -> (Vec<String>, Answers) {
    let mut failures = Vec::new();
    let mut answers: Answers = Vec::new();
    for case in cases {
        let (method, path) = case.request.split_once(' ').unwrap();
        let headers: Vec<String> = case.headers.iter().map(|h| expand(h, target)).collect();
        let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
        let before = target.events.events().len();
        let reply = match &case.body {
            None => adapters::send_from(case.peer, target.addr, method, path, &header_refs).await,
            Some(body) => {
                let mut raw =
                    format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
                for h in &header_refs {
                    raw.push_str(h);
                    raw.push_str("\r\n");
                }
                raw.push_str("\r\n");
                raw.push_str(body);
                adapters::exchange(case.peer, target.addr, raw.as_bytes()).await
            }
        };
        let events = target.events.events();
        answers.push((
            reply.status,
            events[before..]
                .iter()
                .map(|e| normalized(e, target.addr))
                .collect(),
        ));
        let mut fail =
            |what: String| failures.push(format!("[{}] {}: {what}", target.name, case.name));
        let e = &case.expect;
        if let Some(want) = e.status
            && reply.status != want
        {
            fail(format!(
                "status {} != {want} ({})",
                reply.status, reply.body
            ));
        }
        if let Some(by_router) = &e.status_by_router {
            let router = target.name.split(' ').next().unwrap_or_default();
            match by_router.get(router) {
                Some(want) if !want.allows(reply.status) => {
                    fail(format!(
                        "status {} is not {want:?} on {router}",
                        reply.status
                    ));
                }
                Some(_) => {}
                None => fail(format!("no status for {router}")),
            }
        }
        let challenge = reply.header("www-authenticate");
        if let Some(want) = &e.www_authenticate
            && challenge != Some(want.as_str())
        {
            fail(format!("www-authenticate {challenge:?} != {want:?}"));
        }
        if let Some(code) = &e.challenge_error
            && !challenge.is_some_and(|c| c.contains(&format!("error=\"{code}\"")))
        {
            fail(format!("www-authenticate {challenge:?} lacks error={code}"));
        }
        if let Some(want) = &e.problem_code {
            let problem: serde_json::Value = serde_json::from_str(&reply.body).unwrap_or_default();
            if reply.header("content-type") != Some("application/problem+json")
                || problem["code"] != want.as_str()
            {
                fail(format!("problem {} != code {want}", reply.body));
            }
        }
        if let Some(want) = &e.body
            && &reply.body != want
        {
            fail(format!("body {:?} != {want:?}", reply.body));
        }
        if let Some(want) = &e.body_contains
            && !reply.body.contains(want.as_str())
        {
            fail(format!("body {:?} lacks {want:?}", reply.body));
        }
        if let Some(never) = &e.body_not_contains
            && reply.body.contains(never.as_str())
        {
            fail(format!("body {:?} contains {never:?}", reply.body));
        }
        if let Some(want) = &e.audit {
            let got: Vec<&str> = events[before..]
                .iter()
                .map(|e| kind_label(&e.kind))
                .collect();
            if &got != want {
                fail(format!("audit {got:?} != {want:?}"));
            }
        }
        if let Some(tables) = &e.audit_fields {
            let records = &answers.last().unwrap().1;
            if tables.len() > records.len() {
                fail(format!(
                    "{} field tables for {} records",
                    tables.len(),
                    records.len()
                ));
            }
            for (i, (table, record)) in tables.iter().zip(records).enumerate() {
                for (path, want) in table {
                    let got = field(record, path);
                    if want.as_str() == Some("<absent>") {
                        if let Some(got) = got {
                            fail(format!("record {i}: {path} is {got}, not absent"));
                        }
                        continue;
                    }
                    let want = serde_json::to_value(want).unwrap();
                    if got != Some(&want) {
                        fail(format!("record {i}: {path} is {got:?}, not {want}"));
                    }
                }
            }
        }
        // Whatever the case says: every refusal (401, 403) is recorded exactly once, as an
        // authentication failure or a denial; an answered request was allowed by its first
        // decision (a handler may still refuse some of what it lists); and a completion record
        // carries the status the client got.
        let refusals = events[before..]
            .iter()
            .filter(|e| {
                matches!(
                    e.kind,
                    EventKind::Authentication {
                        outcome: aaa::audit::AuthnOutcome::Failure,
                        ..
                    } | EventKind::Authorization {
                        decision: Decision::Deny,
                        ..
                    }
                )
            })
            .count();
        match reply.status {
            401 | 403 if refusals != 1 => {
                fail(format!("{refusals} refusal records for a {}", reply.status))
            }
            200..=299
                if !matches!(
                    events[before..].first().map(|e| &e.kind),
                    Some(EventKind::Authorization {
                        decision: Decision::Allow,
                        ..
                    })
                ) =>
            {
                fail(format!("a {} not allowed first", reply.status));
            }
            _ => {}
        }
        for event in &events[before..] {
            if let EventKind::RequestCompleted { status, .. } = event.kind
                && status != reply.status
            {
                fail(format!(
                    "completion records {status}, the client got {}",
                    reply.status
                ));
            }
        }
        // Nothing of the request's credentials ever reaches the audit records.
        let recorded = serde_json::to_string(&events[before..]).unwrap();
        for header in &headers {
            let value = header.split_once(':').map_or("", |(_, v)| v.trim());
            let secret = value.rsplit(' ').next().unwrap_or_default();
            if secret.len() >= 16 && recorded.contains(secret) {
                fail("a credential reached the audit records".to_owned());
            }
        }
    }
    (failures, answers)
}

/// The records with the completions' statuses taken out.
pub(crate) fn decisions(records: &[serde_json::Value]) -> Vec<serde_json::Value> {
    records
        .iter()
        .cloned()
        .map(|mut r| {
            if let Some(object) = r.as_object_mut() {
                object.remove("status");
            }
            r
        })
        .collect()
}

/// Every adapter gave the same status and the same records (times aside) to every case. Where
/// the routers may answer differently (`status_by_router`): the same records when they gave the
/// same status; else the same decisions (the completions' statuses aside), unless one router
/// refused the request before the middleware saw it (no records at all: a 431, say), or found
/// no handler for it after the route's decision (404, 405: the same route-level decision, while
/// the other router's handler may have made decisions of its own).
fn compare(cases: &[Case], runs: &[(&str, Answers)]) -> Vec<String> {
    let mut failures = Vec::new();
    let Some((first, reference)) = runs.first() else {
        return failures;
    };
    for (name, answers) in &runs[1..] {
        for (case, (want, got)) in cases.iter().zip(reference.iter().zip(answers)) {
            let differ = if case.expect.status_by_router.is_none() || want.0 == got.0 {
                want != got
            } else if want.1.is_empty() || got.1.is_empty() {
                false
            } else if matches!(want.0, 404 | 405) || matches!(got.0, 404 | 405) {
                decisions(&want.1).first() != decisions(&got.1).first()
            } else {
                decisions(&want.1) != decisions(&got.1)
            };
            if differ {
                failures.push(format!(
                    "{}: [{first}] answered {} with {:#?}\n[{name}] answered {} with {:#?}",
                    case.name, want.0, want.1, got.0, got.1
                ));
            }
        }
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adapter_cases() {
    let cases = load("adapters.toml");
    let mut failures = Vec::new();
    let mut runs = Vec::new();
    for server in adapters::servers().await {
        let target = Target {
            name: server.name,
            addr: server.addr,
            events: server.audit.clone(),
            token: Box::new(|user, _| format!("good-{user}")),
            api_key: String::new(),
        };
        let (failed, answers) = run(&cases, &target).await;
        failures.extend(failed);
        runs.push((server.name, answers));
    }
    failures.extend(compare(&cases, &runs));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every route of the demo's table (the one the start-up warning checks against the policy) is
/// served by both apps for its method: asked by a caller the policy lets through (an admin; the
/// auditor for audit logs), the router neither misses it (404) nor refuses the method (405).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_demos_serve_every_route_of_the_table() {
    for running in [docs_demo::axum().await, docs_demo::actix().await] {
        for (method, template) in docs_demo::demo::ROUTES {
            let user = if template.starts_with("/audit-logs") {
                "erin"
            } else {
                "carol"
            };
            let auth = running.bearer(user, true);
            let path = match *template {
                "/idp/token" => "/idp/token?user=alice".to_owned(),
                "/docs" if *method == "POST" => "/docs?id=d99".to_owned(),
                other => other.replace("{id}", "d3").replace("{tenant}", "acme"),
            };
            let headers = [auth.as_str(), "Content-Length: 0"];
            let r = adapters::send(running.addr, method, &path, &headers).await;
            assert!(
                r.status != 404 && r.status != 405,
                "[{}] {method} {path}: {} {}",
                running.name,
                r.status,
                r.body
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_maps_every_route_of_the_demo() {
    let running = docs_demo::axum().await;
    assert_eq!(docs_demo::unmapped(&running.demo), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_service_cases() {
    let cases = load("docs_service.toml");
    let mut failures = Vec::new();
    let mut runs = Vec::new();
    for running in [docs_demo::axum().await, docs_demo::actix().await] {
        let d = running.demo.clone();
        let target = Target {
            name: running.name,
            addr: running.addr,
            events: running.events.clone(),
            token: Box::new(move |user, mfa| d.idp.token(user, mfa, d.now()).unwrap()),
            api_key: running.demo.indexer_key.clone(),
        };
        let (failed, answers) = run(&cases, &target).await;
        failures.extend(failed);
        runs.push((running.name, answers));
        // Every record the run produced is in the signed log, and the log verifies.
        let report = running.verify_log().await;
        let recorded = running.events.events().len() as u64;
        if report.events != recorded {
            failures.push(format!(
                "[{}] log has {} events, {recorded} were recorded",
                running.name, report.events
            ));
        }
        let text = running.log_text();
        if text.contains(&running.demo.indexer_key) || text.contains("eyJ") {
            failures.push(format!(
                "[{}] a credential reached the audit log file",
                running.name
            ));
        }
    }
    failures.extend(compare(&cases, &runs));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `--issuer URL --audience AUD`: the demo trusts a real OIDC issuer (here another demo's identity
/// provider, found by discovery over HTTP) beside its own. Its valid tokens are decided by the
/// policy; its tokens that fail validation get 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_trusts_an_external_issuer_by_discovery() {
    let idp = docs_demo::axum().await;
    let issuer = format!("http://{}", idp.addr);
    let service = docs_demo::axum_trusting(Some(&issuer)).await;

    let auth = idp.bearer("alice", false);
    let r = adapters::send(service.addr, "GET", "/docs/d1", &[auth.as_str()]).await;
    assert_eq!(
        r.status, 200,
        "alice of the external issuer owns d1: {}",
        r.body
    );
    let r = adapters::send(service.addr, "GET", "/docs/d2", &[auth.as_str()]).await;
    assert_eq!(r.status, 403, "and the policy still decides");

    // A token of the external issuer with a broken signature.
    let mut auth = auth;
    auth.truncate(auth.len() - 4);
    auth.push_str("AAAA");
    let r = adapters::send(service.addr, "GET", "/docs/d1", &[auth.as_str()]).await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );

    // The failed authentication was recorded.
    let events = service.events.events();
    assert!(
        events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Authentication { .. }))
    );
}

/// The audit receipt a response carries names the record of the request's decision: its leaf
/// hash is the record's, and an inclusion proof for it verifies against the signed tree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receipt_header_leads_to_an_inclusion_proof() {
    use aaa::audit::{leaf_hashes, merkle};
    for running in [docs_demo::axum().await, docs_demo::actix().await] {
        let auth = running.bearer("alice", false);
        let _ = adapters::send(running.addr, "GET", "/health", &[]).await;
        let r = adapters::send(running.addr, "GET", "/docs/d1", &[auth.as_str()]).await;
        assert_eq!(r.status, 200, "[{}] {}", running.name, r.body);
        let receipt = r.header(aaa::http::RECEIPT_HEADER).unwrap().to_owned();
        let part = |key: &str| {
            receipt
                .split("; ")
                .find_map(|p| p.strip_prefix(&format!("{key}=")))
                .unwrap()
                .trim_matches('"')
                .to_owned()
        };
        assert_eq!(part("log"), "docs-service/local", "[{}]", running.name);
        let seq: u64 = part("seq").parse().unwrap();
        let leaf = part("leaf");

        let report = running.verify_log().await;
        let leaves = leaf_hashes(&running.log_dir()).unwrap();
        let index = usize::try_from(seq).unwrap();
        let hex: String = leaves[index].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex, leaf,
            "[{}] the receipt's leaf is the record's",
            running.name
        );
        let line = running.log_text().lines().nth(index).unwrap().to_owned();
        assert!(
            line.contains(r#""event":"authorization""#) && line.contains(r#""resource_id":"d1""#),
            "[{}] the receipt names the decision: {line}",
            running.name
        );
        let proof = merkle::inclusion_proof(&leaves, seq).unwrap();
        merkle::verify_inclusion(
            seq,
            leaves.len() as u64,
            &leaves[index],
            &proof,
            &report.root,
        )
        .unwrap();
    }
}

/// `--issuer URL --audience AUD --no-demo-idp`: the demo trusts the real issuer instead of its
/// own identity provider, which then neither serves tokens nor has its tokens accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_can_trust_an_external_issuer_instead_of_its_own() {
    let idp = docs_demo::axum().await;
    let issuer = format!("http://{}", idp.addr);
    let service = docs_demo::axum_with(Some(&issuer), false).await;

    let auth = idp.bearer("alice", false);
    let r = adapters::send(service.addr, "GET", "/docs/d1", &[auth.as_str()]).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A well-formed token of the demo's own (now untrusted) identity provider.
    let auth = service.bearer("carol", false);
    let r = adapters::send(service.addr, "GET", "/docs/d1", &[auth.as_str()]).await;
    assert_eq!(r.status, 401, "{}", r.body);
    for (method, path) in [
        ("POST", "/idp/token?user=carol"),
        ("GET", "/.well-known/jwks.json"),
        ("GET", "/.well-known/openid-configuration"),
    ] {
        let r = adapters::send(service.addr, method, path, &[]).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
    }
}

/// With the layer installed outside the router, no route is known: every request is refused,
/// never passed on unchecked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_installed_outside_the_router_fails_closed() {
    use tower_crate::Layer as _;
    let running = docs_demo::axum().await;
    let router = docs_demo::router(running.demo.clone());
    let outside = aaa::tower::AaaLayer::new(running.demo.guard.clone()).layer(router);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, tower_crate::make::Shared::new(outside))
            .await
            .unwrap();
    });
    let auth = running.bearer("alice", false);
    for path in ["/health", "/docs/d1"] {
        let r = adapters::send(addr, "GET", path, &[auth.as_str()]).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
    }
}

/// What the receipt header promises, end to end on both demos: a client keeps the receipt of its
/// request (log, seq, leaf hash); once a checkpoint covers the record, the operator's proof
/// (what `aaa audit prove` prints) shows the client, with the verifier key alone, that this leaf
/// is record `seq` of the tree the checkpoint signs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_is_answered_by_an_inclusion_proof_the_client_checks() {
    use aaa::audit::{
        VerifierKey, log_leaves,
        merkle::verify_inclusion,
        note::{Checkpoint, SignedNote},
    };
    for running in [docs_demo::axum().await, docs_demo::actix().await] {
        let bearer = running.bearer("alice", false);
        let reply = adapters::send(running.addr, "GET", "/docs/d1", &[&bearer]).await;
        assert_eq!(reply.status, 200, "[{}] {}", running.name, reply.head);
        let receipt = reply
            .header(aaa::http::RECEIPT_HEADER)
            .unwrap_or_else(|| panic!("[{}] no receipt: {}", running.name, reply.head))
            .to_owned();
        let field = |name: &str| {
            receipt
                .split("; ")
                .find_map(|p| p.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("[{}] {receipt}", running.name))
                .trim_matches('"')
                .to_owned()
        };
        let seq: u64 = field("seq").parse().unwrap();
        let leaf: [u8; 32] = (0..32)
            .map(|i| u8::from_str_radix(&field("leaf")[2 * i..2 * i + 2], 16).unwrap())
            .collect::<Vec<_>>()
            .try_into()
            .unwrap();

        // The operator's side: a checkpoint, the log verified, the proof in its tree.
        let report = running.verify_log().await;
        let note_text = report.checkpoint_note.clone().unwrap();
        let proof = log_leaves(&running.log_dir())
            .unwrap()
            .first(report.covered)
            .unwrap()
            .inclusion_proof(seq)
            .unwrap();

        // The client's side: the service's key, the note, the proof.
        let key = VerifierKey::parse(&running.demo.verifier_key).unwrap();
        let note = SignedNote::parse(&note_text).unwrap();
        assert!(key.verify(note.body.as_bytes(), &note.signature_by(&key).unwrap()));
        let checkpoint = Checkpoint::parse_body(&note.body).unwrap();
        assert_eq!(field("log"), checkpoint.origin, "[{}]", running.name);
        verify_inclusion(seq, checkpoint.size, &leaf, &proof, &checkpoint.root)
            .unwrap_or_else(|e| panic!("[{}] {e}", running.name));
        let mut other = leaf;
        other[0] ^= 1;
        assert!(verify_inclusion(seq, checkpoint.size, &other, &proof, &checkpoint.root).is_err());
    }
}
