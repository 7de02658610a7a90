//! The docs-service reference workload: all 20,000 requests, with Cedar's decisions, through
//! `examples/policies/docs_service.toml`. Every decision must agree.

use std::{collections::HashMap, path::Path};

use aaa::{
    AuthInfo, AuthMethod, Context, CredentialRef, Decision, Principal, PrincipalKind, Resource,
    Timestamp, policy::PolicySet,
};
use serde_json::Value as Json;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

struct Workload {
    users: HashMap<String, Principal>,
    resources: HashMap<(String, String), Resource>,
}

fn load_workload() -> Workload {
    let dir = root().join("tests/fixtures/workloads/docs-service");
    let entities: Json =
        serde_json::from_str(&std::fs::read_to_string(dir.join("entities.json")).unwrap()).unwrap();
    let mut users = HashMap::new();
    for u in entities["users"].as_array().unwrap() {
        let id = u["id"].as_str().unwrap();
        let roles = u["roles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap());
        let p = Principal::new(id, PrincipalKind::User, "workload")
            .with_tenant(u["tenant"].as_str().unwrap())
            .with_roles(roles)
            .with_attribute("suspended", u["suspended"].as_bool().unwrap());
        users.insert(id.to_owned(), p);
    }
    let mut resources = HashMap::new();
    for d in entities["documents"].as_array().unwrap() {
        let id = d["id"].as_str().unwrap();
        let r = Resource::new("Document")
            .with_id(id)
            .with_attribute("tenant", d["tenant"].as_str().unwrap())
            .with_attribute("owner", d["owner"].as_str().unwrap())
            .with_attribute("classification", d["classification"].as_str().unwrap());
        resources.insert(("Document".to_owned(), id.to_owned()), r);
    }
    for l in entities["audit_logs"].as_array().unwrap() {
        let id = l["id"].as_str().unwrap();
        let r = Resource::new("AuditLog")
            .with_id(id)
            .with_attribute("tenant", l["tenant"].as_str().unwrap());
        resources.insert(("AuditLog".to_owned(), id.to_owned()), r);
    }
    Workload { users, resources }
}

#[test]
fn docs_service_workload_agrees_with_cedar_on_every_request() {
    let policy = PolicySet::from_file(root().join("examples/policies/docs_service.toml"))
        .unwrap_or_else(|e| panic!("{}", e.render()));
    let w = load_workload();
    let requests = std::fs::read_to_string(
        root().join("tests/fixtures/workloads/docs-service/requests.jsonl"),
    )
    .unwrap();
    let (mut total, mut allowed, mut mismatches) = (0, 0, Vec::new());
    for line in requests.lines() {
        let req: Json = serde_json::from_str(line).unwrap();
        let mut principal = w.users[req["principal"].as_str().unwrap()].clone();
        let mfa = req["context"]["mfa"].as_bool().unwrap();
        let mut auth = AuthInfo::new(AuthMethod::Jwt, Timestamp::UNIX_EPOCH, CredentialRef::None);
        auth.mfa = mfa;
        principal.auth = auth;
        let key = (
            req["resource"]["type"].as_str().unwrap().to_owned(),
            req["resource"]["id"].as_str().unwrap().to_owned(),
        );
        let resource = &w.resources[&key];
        let ip = req["context"]["ip"].as_str().unwrap().parse().unwrap();
        let context = Context::new(Timestamp::from_unix_seconds(1_700_000_000)).with_peer_ip(ip);
        let action = format!("docs:{}", req["action"].as_str().unwrap());
        let expected = match req["expected"].as_str().unwrap() {
            "allow" => Decision::Allow,
            _ => Decision::Deny,
        };
        let fast = policy.decide(&principal, &action, resource, &context);
        let full = policy.evaluate(&principal, &action, resource, &context);
        assert_eq!(
            fast, full.decision,
            "decide and evaluate disagree on {line}"
        );
        assert!(full.errors.is_empty(), "{line}: {:?}", full.errors);
        if fast != expected {
            mismatches.push(format!("{line} -> {full:?}"));
        }
        total += 1;
        allowed += usize::from(fast == Decision::Allow);
    }
    assert_eq!(total, 20_000);
    assert!(
        mismatches.is_empty(),
        "{} mismatches, first: {}",
        mismatches.len(),
        mismatches[0]
    );
    assert_eq!(allowed, 9_096);
}
