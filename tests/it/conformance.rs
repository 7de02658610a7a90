//! The data-driven conformance suite: `tests/cases/*.toml`, run over real HTTP against every
//! adapter, which must all give the same statuses, challenges, problem bodies and audit records.

use aaa::{Decision, audit::EventKind};
use serde::Deserialize;

use crate::adapters::{Server, send, servers};

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
    #[serde(default)]
    headers: Vec<String>,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    status: u16,
    www_authenticate: Option<String>,
    problem_code: Option<String>,
    body: Option<String>,
    audit: Option<Vec<String>>,
}

fn load(name: &str) -> Vec<Case> {
    let path = format!("{}/tests/cases/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    toml::from_str::<CaseFile>(&text).unwrap().case
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

/// Runs every case against `server`; returns one line per mismatch.
async fn run(cases: &[Case], server: &Server) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        let (method, target) = case.request.split_once(' ').unwrap();
        let headers: Vec<&str> = case.headers.iter().map(String::as_str).collect();
        let before = server.audit.events().len();
        let reply = send(server.addr, method, target, &headers).await;
        let events = server.audit.events();
        let mut fail =
            |what: String| failures.push(format!("[{}] {}: {what}", server.name, case.name));
        if reply.status != case.expect.status {
            fail(format!("status {} != {}", reply.status, case.expect.status));
        }
        if let Some(want) = &case.expect.www_authenticate
            && reply.header("www-authenticate") != Some(want.as_str())
        {
            fail(format!(
                "www-authenticate {:?} != {want:?}",
                reply.header("www-authenticate")
            ));
        }
        if let Some(want) = &case.expect.problem_code {
            let problem: serde_json::Value = serde_json::from_str(&reply.body).unwrap_or_default();
            if reply.header("content-type") != Some("application/problem+json")
                || problem["code"] != want.as_str()
            {
                fail(format!("problem {} != code {want}", reply.body));
            }
        }
        if let Some(want) = &case.expect.body
            && &reply.body != want
        {
            fail(format!("body {:?} != {want:?}", reply.body));
        }
        if let Some(want) = &case.expect.audit {
            let got: Vec<&str> = events[before..]
                .iter()
                .map(|e| kind_label(&e.kind))
                .collect();
            if &got != want {
                fail(format!("audit {got:?} != {want:?}"));
            }
        }
        // Nothing from the request's credentials ever reaches the audit records.
        let recorded = serde_json::to_string(&events[before..]).unwrap();
        for header in &case.headers {
            if let Some(token) = header.strip_prefix("Authorization: Bearer ")
                && recorded.contains(token)
            {
                fail("a credential reached the audit log".to_owned());
            }
        }
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adapter_cases() {
    let cases = load("adapters.toml");
    assert!(cases.len() >= 10);
    let mut failures = Vec::new();
    for server in servers().await {
        failures.extend(run(&cases, &server).await);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
