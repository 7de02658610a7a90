//! The docs-service reference workload (`tests/fixtures/workloads/docs-service/`), loaded as
//! `aaa` values, plus the plain data a hand-written implementation or a peer engine needs.
#![expect(
    clippy::indexing_slicing,
    reason = "indexing a serde_json::Value yields Null, it never panics"
)]

use std::{collections::HashMap, net::IpAddr, path::PathBuf, sync::Arc};

use aaa_core::{
    AuthInfo, AuthMethod, Context, CredentialRef, Decision, Principal, PrincipalKind, Resource,
    Timestamp,
};
use serde_json::Value as Json;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A user as the workload describes it.
#[derive(Debug, Clone)]
pub struct User {
    /// The id, e.g. `u0001`.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// Directly assigned roles.
    pub roles: Vec<String>,
    /// Whether the user is suspended.
    pub suspended: bool,
}

/// A document or an audit log.
#[derive(Debug, Clone)]
pub struct Res {
    /// `Document` or `AuditLog`.
    pub rtype: String,
    /// The id.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// The owner (documents only).
    pub owner: Option<String>,
    /// The classification (documents only).
    pub classification: Option<String>,
}

/// One request of `requests.jsonl`.
#[derive(Debug, Clone)]
pub struct Request {
    /// Index into [`Workload::users`].
    pub user: usize,
    /// `read`, `list`, `create`, `update`, `delete` or `share`.
    pub action: String,
    /// Index into [`Workload::resources`].
    pub resource: usize,
    /// The client address as written.
    pub ip: String,
    /// Whether the session passed MFA.
    pub mfa: bool,
    /// Cedar's decision.
    pub expected: Decision,
}

/// The whole workload.
#[derive(Debug, Clone)]
pub struct Workload {
    /// All users.
    pub users: Vec<User>,
    /// All documents and audit logs.
    pub resources: Vec<Res>,
    /// The requests, in file order.
    pub requests: Vec<Request>,
}

fn s(v: &Json) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

impl Workload {
    /// Loads the workload from the repository's fixtures.
    ///
    /// # Errors
    ///
    /// When a file cannot be read or parsed.
    pub fn load() -> Result<Workload, Box<dyn std::error::Error>> {
        let dir = repo_root().join("tests/fixtures/workloads/docs-service");
        let e: Json = serde_json::from_str(&std::fs::read_to_string(dir.join("entities.json"))?)?;
        let mut users = Vec::new();
        let mut user_ix = HashMap::new();
        for u in e["users"].as_array().ok_or("users")? {
            user_ix.insert(s(&u["id"]), users.len());
            users.push(User {
                id: s(&u["id"]),
                tenant: s(&u["tenant"]),
                roles: u["roles"]
                    .as_array()
                    .ok_or("roles")?
                    .iter()
                    .map(s)
                    .collect(),
                suspended: u["suspended"].as_bool().unwrap_or(false),
            });
        }
        let mut resources = Vec::new();
        let mut res_ix = HashMap::new();
        for d in e["documents"].as_array().ok_or("documents")? {
            res_ix.insert(("Document".to_owned(), s(&d["id"])), resources.len());
            resources.push(Res {
                rtype: "Document".into(),
                id: s(&d["id"]),
                tenant: s(&d["tenant"]),
                owner: Some(s(&d["owner"])),
                classification: Some(s(&d["classification"])),
            });
        }
        for l in e["audit_logs"].as_array().ok_or("audit_logs")? {
            res_ix.insert(("AuditLog".to_owned(), s(&l["id"])), resources.len());
            resources.push(Res {
                rtype: "AuditLog".into(),
                id: s(&l["id"]),
                tenant: s(&l["tenant"]),
                owner: None,
                classification: None,
            });
        }
        let mut requests = Vec::new();
        for line in std::fs::read_to_string(dir.join("requests.jsonl"))?.lines() {
            let r: Json = serde_json::from_str(line)?;
            requests.push(Request {
                user: *user_ix
                    .get(r["principal"].as_str().unwrap_or_default())
                    .ok_or("user")?,
                action: s(&r["action"]),
                resource: *res_ix
                    .get(&(s(&r["resource"]["type"]), s(&r["resource"]["id"])))
                    .ok_or("resource")?,
                ip: s(&r["context"]["ip"]),
                mfa: r["context"]["mfa"].as_bool().unwrap_or(false),
                expected: if r["expected"] == "allow" {
                    Decision::Allow
                } else {
                    Decision::Deny
                },
            });
        }
        Ok(Workload {
            users,
            resources,
            requests,
        })
    }

    /// The principal of `user`, as an authenticator would build it, with or without MFA.
    pub fn principal(&self, user: usize, mfa: bool) -> Option<Principal> {
        let u = self.users.get(user)?;
        let mut auth = AuthInfo::new(AuthMethod::Jwt, Timestamp::UNIX_EPOCH, CredentialRef::None);
        auth.mfa = mfa;
        Some(
            Principal::new(&u.id, PrincipalKind::User, "workload")
                .with_tenant(&u.tenant)
                .with_roles(u.roles.iter())
                .with_attribute("suspended", u.suspended)
                .with_auth(auth),
        )
    }

    /// The resource at `index`, with its attributes.
    pub fn resource(&self, index: usize) -> Option<Resource> {
        let r = self.resources.get(index)?;
        let mut out = Resource::new(&r.rtype)
            .with_id(&r.id)
            .with_attribute("tenant", r.tenant.as_str());
        if let Some(o) = &r.owner {
            out = out.with_attribute("owner", o.as_str());
        }
        if let Some(c) = &r.classification {
            out = out.with_attribute("classification", c.as_str());
        }
        Some(out)
    }

    /// Prebuilt `aaa` inputs for every request: principals (by user and MFA), resources,
    /// contexts and actions.
    pub fn aaa_inputs(&self) -> AaaInputs {
        let principals = (0..self.users.len())
            .map(|u| {
                [false, true].map(|m| {
                    self.principal(u, m)
                        .unwrap_or_else(|| Principal::new("?", PrincipalKind::User, "?"))
                })
            })
            .collect();
        let resources = (0..self.resources.len())
            .filter_map(|r| self.resource(r))
            .collect();
        let contexts = self
            .requests
            .iter()
            .map(|r| {
                let mut c = Context::new(Timestamp::from_unix_seconds(1_700_000_000));
                c.peer_ip = r.ip.parse::<IpAddr>().ok();
                c
            })
            .collect();
        // Actions come from a small vocabulary (in a service, from the policy's route table):
        // one shared string per action.
        let mut vocabulary: HashMap<&str, Arc<str>> = HashMap::new();
        let actions = self
            .requests
            .iter()
            .map(|r| {
                vocabulary
                    .entry(r.action.as_str())
                    .or_insert_with(|| Arc::from(format!("docs:{}", r.action)))
                    .clone()
            })
            .collect();
        AaaInputs {
            principals,
            resources,
            contexts,
            actions,
        }
    }
}

/// Prebuilt inputs for `aaa`, indexed like the workload.
#[derive(Debug, Clone)]
pub struct AaaInputs {
    /// `principals[user][mfa as usize]`.
    pub principals: Vec<[Principal; 2]>,
    /// Resources by index.
    pub resources: Vec<Resource>,
    /// One context per request.
    pub contexts: Vec<Context>,
    /// One action per request (`docs:<verb>`).
    pub actions: Vec<Arc<str>>,
}

/// The docs-service policy text (`examples/policies/docs_service.toml`).
///
/// # Errors
///
/// When the file cannot be read.
pub fn policy_text() -> std::io::Result<String> {
    std::fs::read_to_string(repo_root().join("examples/policies/docs_service.toml"))
}

/// The docs-service policy grown to `total` rules with rules for other actions and resource
/// types (each with a condition), for measuring how decision time scales with policy size.
///
/// # Errors
///
/// When the policy file cannot be read.
pub fn policy_with_rules(total: usize) -> std::io::Result<String> {
    use std::fmt::Write;
    let mut text = policy_text()?;
    let base = text.matches("[[rules]]").count();
    for i in 0..total.saturating_sub(base) {
        let effect = if i % 5 == 0 { "deny" } else { "allow" };
        let _ = write!(
            text,
            "\n[[rules]]\nid = \"filler-{i}\"\neffect = \"{effect}\"\nprincipal = {{ role = \"viewer\" }}\n\
             actions = [\"svc{}:op{}\"]\nresources = [\"Thing{}\"]\n\
             when = 'principal.tenant == resource.tenant && resource.classification != \"secret\"'\n",
            i % 100,
            i,
            i % 20,
        );
    }
    Ok(text)
}
