//! aaa against cedar-policy, casbin and a hand-written function of the nine rules (the floor),
//! on the docs-service workload, in one run. Every engine must agree with every expected
//! decision. Prints median and p99 ns per decision, load time and resident memory.
//!
//! Run with `cargo bench -p aaa-bench --features peers --bench compare`.

#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    missing_docs,
    unreachable_pub,
    reason = "a benchmark over fixed, known inputs"
)]

use std::{
    hint::black_box,
    net::IpAddr,
    time::{Duration, Instant},
};

use aaa_bench::docs_service::{Workload, repo_root};
use aaa_core::{Decision, policy::PolicySet};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

struct Stats {
    name: &'static str,
    load: Duration,
    rss_kib: u64,
    mean_ns: f64,
    p50_ns: f64,
    p99_ns: f64,
    hot: (f64, f64, f64),
}

/// Like [`measure`], with each request's data in cache: blocks of 32 requests are decided once
/// untimed, then timed (mean); each call is made once untimed, then timed (p50/p99). This is a
/// service's situation: the principal and the resource were built just before the decision.
fn measure_hot(n: usize, mut decide: impl FnMut(usize) -> bool) -> (f64, f64, f64) {
    let overhead = timer_overhead();
    let mut total = Duration::ZERO;
    for start in (0..n).step_by(32) {
        let end = (start + 32).min(n);
        for i in start..end {
            black_box(decide(i));
        }
        let t = Instant::now();
        for i in start..end {
            black_box(decide(i));
        }
        total += t.elapsed();
    }
    let mut calls: Vec<f64> = (0..n)
        .map(|i| {
            black_box(decide(i));
            let t = Instant::now();
            black_box(decide(i));
            (t.elapsed().as_nanos() as f64 - overhead).max(0.0)
        })
        .collect();
    calls.sort_by(f64::total_cmp);
    (
        total.as_nanos() as f64 / n as f64,
        calls[calls.len() / 2],
        calls[calls.len() * 99 / 100],
    )
}

fn timer_overhead() -> f64 {
    let mut v: Vec<u128> = (0..10_000)
        .map(|_| {
            let t = Instant::now();
            t.elapsed().as_nanos()
        })
        .collect();
    v.sort_unstable();
    v[v.len() / 2] as f64
}

/// Times `decide(i)` for every request: a batch pass for the mean per decision (median of
/// `rounds` passes), then a pass timing each call for p50/p99 (timer overhead subtracted).
fn measure(n: usize, rounds: usize, mut decide: impl FnMut(usize) -> bool) -> (f64, f64, f64) {
    let mut means = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        for i in 0..n {
            black_box(decide(i));
        }
        means.push(t.elapsed().as_nanos() as f64 / n as f64);
    }
    means.sort_by(f64::total_cmp);
    let overhead = timer_overhead();
    let mut calls: Vec<f64> = (0..n)
        .map(|i| {
            let t = Instant::now();
            black_box(decide(i));
            (t.elapsed().as_nanos() as f64 - overhead).max(0.0)
        })
        .collect();
    calls.sort_by(f64::total_cmp);
    (
        means[means.len() / 2],
        calls[calls.len() / 2],
        calls[calls.len() * 99 / 100],
    )
}

/// The nine rules by hand over compact structs: the floor.
mod floor {
    use std::net::IpAddr;

    pub struct User {
        pub tenant: u8,
        pub viewer: bool,
        pub editor: bool,
        pub admin: bool,
        pub auditor: bool,
        pub suspended: bool,
    }
    pub struct Res {
        pub document: bool,
        pub tenant: u8,
        pub owner: u32,
        pub secret: bool,
    }
    #[derive(Clone, Copy, PartialEq)]
    pub enum Act {
        Read,
        List,
        Create,
        Update,
        Delete,
        Share,
    }

    pub fn decide_strings(
        u: &aaa_bench::docs_service::User,
        action: &str,
        r: &aaa_bench::docs_service::Res,
        ip: &IpAddr,
        mfa: bool,
    ) -> bool {
        let has = |role: &str| u.roles.iter().any(|x| x == role);
        let admin = has("admin");
        let editor = admin || has("editor");
        let viewer = editor || has("viewer");
        let document = r.rtype == "Document";
        let owner = document && r.owner.as_deref() == Some(u.id.as_str());
        let secret = r.classification.as_deref() == Some("secret");
        if u.suspended || u.tenant != r.tenant {
            return false;
        }
        if action == "delete" && document && secret && !(owner && mfa) {
            return false;
        }
        if action == "share" && !matches!(ip, IpAddr::V4(v4) if v4.octets()[0] == 10) {
            return false;
        }
        let read = action == "read" || action == "list";
        let write = action == "create" || action == "update";
        if document {
            owner || admin || (read && !secret && viewer) || (write && !secret && editor)
        } else {
            has("auditor") && read
        }
    }

    pub fn decide(uid: u32, u: &User, a: Act, r: &Res, ip: &IpAddr, mfa: bool) -> bool {
        let owner = r.document && r.owner == uid;
        if u.suspended || u.tenant != r.tenant {
            return false;
        }
        if a == Act::Delete && r.document && r.secret && !(owner && mfa) {
            return false;
        }
        if a == Act::Share && !matches!(ip, IpAddr::V4(v4) if v4.octets()[0] == 10) {
            return false;
        }
        let read = matches!(a, Act::Read | Act::List);
        let write = matches!(a, Act::Create | Act::Update);
        if r.document {
            owner
                || u.admin
                || (read && !r.secret && (u.viewer || u.editor))
                || (write && !r.secret && u.editor)
        } else {
            u.auditor && read
        }
    }
}

fn main() -> Res<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let w = Workload::load()?;
    let n = w.requests.len();
    let rounds = 5;
    let mut results = Vec::new();

    // ---- aaa
    let before = rss_kib();
    let t = Instant::now();
    let policy = PolicySet::from_file(repo_root().join("examples/policies/docs_service.toml"))
        .map_err(|e| e.render())?;
    let load = t.elapsed();
    let inputs = w.aaa_inputs();
    let rss = rss_kib().saturating_sub(before);
    let aaa_decide = |i: usize| {
        let r = &w.requests[i];
        policy.decide(
            &inputs.principals[r.user][usize::from(r.mfa)],
            &inputs.actions[i],
            &inputs.resources[r.resource],
            &inputs.contexts[i],
        ) == Decision::Allow
    };
    check("aaa", &w, aaa_decide)?;
    let (mean, p50, p99) = measure(n, rounds, aaa_decide);
    let hot = measure_hot(n, aaa_decide);
    results.push(Stats {
        name: "aaa (decide)",
        load,
        rss_kib: rss,
        mean_ns: mean,
        p50_ns: p50,
        p99_ns: p99,
        hot,
    });
    // With the context built per request from the IP string, as an adapter would.
    let aaa_with_ctx = |i: usize| {
        let r = &w.requests[i];
        let mut ctx = aaa_core::Context::new(aaa_core::Timestamp::from_unix_seconds(1_700_000_000));
        ctx.peer_ip = r.ip.parse::<IpAddr>().ok();
        policy.decide(
            &inputs.principals[r.user][usize::from(r.mfa)],
            &inputs.actions[i],
            &inputs.resources[r.resource],
            &ctx,
        ) == Decision::Allow
    };
    check("aaa+ctx", &w, aaa_with_ctx)?;
    let (mean, p50, p99) = measure(n, rounds, aaa_with_ctx);
    let hot = measure_hot(n, aaa_with_ctx);
    results.push(Stats {
        name: "aaa (decide, context built per call)",
        load,
        rss_kib: rss,
        mean_ns: mean,
        p50_ns: p50,
        p99_ns: p99,
        hot,
    });
    let aaa_eval = |i: usize| {
        let r = &w.requests[i];
        policy
            .evaluate(
                &inputs.principals[r.user][usize::from(r.mfa)],
                &inputs.actions[i],
                &inputs.resources[r.resource],
                &inputs.contexts[i],
            )
            .is_allowed()
    };
    check("aaa evaluate", &w, aaa_eval)?;
    let (mean, p50, p99) = measure(n, rounds, aaa_eval);
    let hot = measure_hot(n, aaa_eval);
    results.push(Stats {
        name: "aaa (evaluate: Evaluation with rule ids)",
        load,
        rss_kib: rss,
        mean_ns: mean,
        p50_ns: p50,
        p99_ns: p99,
        hot,
    });

    // ---- floor
    let tenants = ["acme", "globex", "initech"];
    let tix = |t: &str| tenants.iter().position(|x| *x == t).unwrap_or(255) as u8;
    let users: Vec<floor::User> = w
        .users
        .iter()
        .map(|u| {
            let has = |r: &str| u.roles.iter().any(|x| x == r);
            floor::User {
                tenant: tix(&u.tenant),
                viewer: has("viewer"),
                editor: has("editor") || has("admin"),
                admin: has("admin"),
                auditor: has("auditor"),
                suspended: u.suspended,
            }
        })
        .collect();
    let uid = |id: &str| {
        id.trim_start_matches('u')
            .parse::<u32>()
            .unwrap_or(u32::MAX)
    };
    let res: Vec<floor::Res> = w
        .resources
        .iter()
        .map(|r| floor::Res {
            document: r.rtype == "Document",
            tenant: tix(&r.tenant),
            owner: r.owner.as_deref().map_or(u32::MAX - 1, uid),
            secret: r.classification.as_deref() == Some("secret"),
        })
        .collect();
    let acts: Vec<floor::Act> = w
        .requests
        .iter()
        .map(|r| match r.action.as_str() {
            "read" => floor::Act::Read,
            "list" => floor::Act::List,
            "create" => floor::Act::Create,
            "update" => floor::Act::Update,
            "delete" => floor::Act::Delete,
            _ => floor::Act::Share,
        })
        .collect();
    let ips: Vec<IpAddr> = w
        .requests
        .iter()
        .map(|r| r.ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])))
        .collect();
    let uids: Vec<u32> = w.users.iter().map(|u| uid(&u.id)).collect();
    let floor_decide = |i: usize| {
        let r = &w.requests[i];
        floor::decide(
            uids[r.user],
            &users[r.user],
            acts[i],
            &res[r.resource],
            &ips[i],
            r.mfa,
        )
    };
    check("floor", &w, floor_decide)?;
    let (mean, p50, p99) = measure(n, rounds, floor_decide);
    let hot = measure_hot(n, floor_decide);
    results.push(Stats {
        name: "hand-written floor (pre-digested: integer tenants, role flags)",
        load: Duration::ZERO,
        rss_kib: 0,
        mean_ns: mean,
        p50_ns: p50,
        p99_ns: p99,
        hot,
    });
    // The same nine rules over the workload's data as given (strings, role names), which is
    // what an engine is handed.
    let floor_strings = |i: usize| {
        let r = &w.requests[i];
        floor::decide_strings(
            &w.users[r.user],
            &r.action,
            &w.resources[r.resource],
            &ips[i],
            r.mfa,
        )
    };
    check("floor (strings)", &w, floor_strings)?;
    let (mean, p50, p99) = measure(n, rounds, floor_strings);
    let hot = measure_hot(n, floor_strings);
    results.push(Stats {
        name: "hand-written floor (over the workload's strings)",
        load: Duration::ZERO,
        rss_kib: 0,
        mean_ns: mean,
        p50_ns: p50,
        p99_ns: p99,
        hot,
    });

    // ---- cedar
    let before = rss_kib();
    let t = Instant::now();
    let cedar = cedar::Engine::load(&w)?;
    let load = t.elapsed();
    let rss = rss_kib().saturating_sub(before);
    let cedar_decide = |i: usize| cedar.decide(&w, i);
    check("cedar", &w, cedar_decide)?;
    let (mean, p50, p99) = measure(n, 3, cedar_decide);
    let hot = measure_hot(n, cedar_decide);
    results.push(Stats {
        name: "cedar-policy 4",
        load,
        rss_kib: rss,
        mean_ns: mean,
        p50_ns: p50,
        p99_ns: p99,
        hot,
    });
    drop(cedar);

    // ---- casbin
    let before = rss_kib();
    let t = Instant::now();
    let casbin = casbin_engine::Engine::load(&w)?;
    let load = t.elapsed();
    let rss = rss_kib().saturating_sub(before);
    let casbin_decide = |i: usize| casbin.decide(&w, i);
    check("casbin", &w, casbin_decide)?;
    let (mean, p50, p99) = measure(n, 3, casbin_decide);
    let hot = measure_hot(n, casbin_decide);
    results.push(Stats {
        name: "casbin 2",
        load,
        rss_kib: rss,
        mean_ns: mean,
        p50_ns: p50,
        p99_ns: p99,
        hot,
    });

    let find = |p: &str| results.iter().find(|s| s.name.starts_with(p));
    let (cedar_cold, cedar_hot) =
        find("cedar").map_or((f64::NAN, f64::NAN), |s| (s.mean_ns, s.hot.0));
    let (floor_cold, floor_hot) =
        find("hand-written floor (over").map_or((f64::NAN, f64::NAN), |s| (s.mean_ns, s.hot.0));
    println!("all {n} decisions agree with the expected ones, for every engine\n");
    println!("cold: cycling through all {n} requests (each request's data mostly out of cache)");
    println!("hot: each request's data touched just before (as in a service)\n");
    println!(
        "| engine | cold ns/decision | cold p50 / p99 | hot ns/decision | hot p50 / p99 | cedar/engine cold, hot | engine/floor cold, hot | load | RSS delta |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for s in &results {
        println!(
            "| {} | {:.0} | {:.0} / {:.0} | {:.0} | {:.0} / {:.0} | {:.1}x, {:.1}x | {:.1}x, {:.1}x | {:.2} ms | {} KiB |",
            s.name,
            s.mean_ns,
            s.p50_ns,
            s.p99_ns,
            s.hot.0,
            s.hot.1,
            s.hot.2,
            cedar_cold / s.mean_ns,
            cedar_hot / s.hot.0,
            s.mean_ns / floor_cold,
            s.hot.0 / floor_hot,
            s.load.as_secs_f64() * 1e3,
            s.rss_kib
        );
    }
    Ok(())
}

fn check(name: &str, w: &Workload, mut decide: impl FnMut(usize) -> bool) -> Res<()> {
    for (i, r) in w.requests.iter().enumerate() {
        if decide(i) != (r.expected == Decision::Allow) {
            return Err(format!("{name} disagrees on request {i}: {r:?}").into());
        }
    }
    Ok(())
}

mod cedar {
    use std::str::FromStr;

    use cedar_policy::{
        Authorizer, Context, Decision, Entities, EntityUid, PolicySet, Request,
        RestrictedExpression, Schema,
    };
    use serde_json::json;

    use super::Res;
    use aaa_bench::docs_service::{Workload, repo_root};

    pub struct Engine {
        policies: PolicySet,
        entities: Entities,
        schema: Schema,
        authorizer: Authorizer,
        users: Vec<EntityUid>,
        resources: Vec<EntityUid>,
        actions: Vec<EntityUid>,
    }

    fn uid(t: &str, id: &str) -> Res<EntityUid> {
        Ok(EntityUid::from_str(&format!("Docs::{t}::{}", json!(id)))?)
    }

    impl Engine {
        pub fn load(w: &Workload) -> Res<Engine> {
            let dir = repo_root().join("aaa-bench/peers");
            let policies: PolicySet = std::fs::read_to_string(dir.join("docs.cedar"))?.parse()?;
            let (schema, _) = Schema::from_cedarschema_str(&std::fs::read_to_string(
                dir.join("docs.cedarschema"),
            )?)?;
            let e =
                |t: &str, id: &str| json!({"__entity": {"type": format!("Docs::{t}"), "id": id}});
            let mut list = Vec::new();
            for t in ["acme", "globex", "initech"] {
                list.push(
                    json!({"uid": {"type": "Docs::Tenant", "id": t}, "attrs": {}, "parents": []}),
                );
            }
            for (role, parents) in [
                ("viewer", vec![]),
                ("editor", vec!["viewer"]),
                ("admin", vec!["editor"]),
                ("auditor", vec![]),
            ] {
                let parents: Vec<_> = parents
                    .iter()
                    .map(|p| json!({"type": "Docs::Role", "id": p}))
                    .collect();
                list.push(json!({"uid": {"type": "Docs::Role", "id": role}, "attrs": {}, "parents": parents}));
            }
            for u in &w.users {
                let parents: Vec<_> = u
                    .roles
                    .iter()
                    .map(|p| json!({"type": "Docs::Role", "id": p}))
                    .collect();
                list.push(json!({"uid": {"type": "Docs::User", "id": u.id},
                    "attrs": {"tenant": e("Tenant", &u.tenant), "suspended": u.suspended}, "parents": parents}));
            }
            for r in &w.resources {
                let attrs = match (&r.owner, &r.classification) {
                    (Some(o), Some(c)) => {
                        json!({"owner": e("User", o), "tenant": e("Tenant", &r.tenant), "classification": c})
                    }
                    _ => json!({"tenant": e("Tenant", &r.tenant)}),
                };
                list.push(json!({"uid": {"type": format!("Docs::{}", r.rtype), "id": r.id}, "attrs": attrs, "parents": []}));
            }
            let entities =
                Entities::from_json_value(serde_json::Value::Array(list), Some(&schema))?;
            let users = w
                .users
                .iter()
                .map(|u| uid("User", &u.id))
                .collect::<Res<Vec<_>>>()?;
            let resources = w
                .resources
                .iter()
                .map(|r| uid(&r.rtype, &r.id))
                .collect::<Res<Vec<_>>>()?;
            let actions = w
                .requests
                .iter()
                .map(|r| uid("Action", &r.action))
                .collect::<Res<Vec<_>>>()?;
            Ok(Engine {
                policies,
                entities,
                schema,
                authorizer: Authorizer::new(),
                users,
                resources,
                actions,
            })
        }

        /// Builds the request (context with the IP extension value) and decides.
        pub fn decide(&self, w: &Workload, i: usize) -> bool {
            let r = &w.requests[i];
            let Ok(context) = Context::from_pairs([
                ("ip".to_owned(), RestrictedExpression::new_ip(&r.ip)),
                ("mfa".to_owned(), RestrictedExpression::new_bool(r.mfa)),
            ]) else {
                return false;
            };
            let Ok(request) = Request::new(
                self.users[r.user].clone(),
                self.actions[i].clone(),
                self.resources[r.resource].clone(),
                context,
                Some(&self.schema),
            ) else {
                return false;
            };
            self.authorizer
                .is_authorized(&request, &self.policies, &self.entities)
                .decision()
                == Decision::Allow
        }
    }
}

mod casbin_engine {
    use casbin::{CoreApi, DefaultModel, Enforcer, StringAdapter};
    use serde::Serialize;

    use super::Res;
    use aaa_bench::docs_service::{Workload, repo_root};

    #[derive(Serialize, Hash)]
    struct Sub<'a> {
        id: &'a str,
        tenant: &'a str,
        suspended: bool,
    }
    #[derive(Serialize, Hash)]
    struct Obj<'a> {
        id: &'a str,
        rtype: &'a str,
        tenant: &'a str,
        owner: &'a str,
        cls: &'a str,
    }
    #[derive(Serialize, Hash)]
    struct Ctx<'a> {
        ip: &'a str,
        mfa: bool,
    }

    pub struct Engine {
        enforcer: Enforcer,
    }

    impl Engine {
        pub fn load(w: &Workload) -> Res<Engine> {
            let dir = repo_root().join("aaa-bench/peers");
            let model_text = std::fs::read_to_string(dir.join("casbin_model.conf"))?;
            let policy_text = std::fs::read_to_string(dir.join("casbin_policy.csv"))?;
            let rt = tokio::runtime::Builder::new_current_thread().build()?;
            // One `g, <user>, role:<role>` row per assigned role, as the workload describes.
            let mut text = policy_text;
            for u in &w.users {
                for r in &u.roles {
                    text.push_str(&format!("\ng, {}, role:{r}", u.id));
                }
            }
            let enforcer = rt.block_on(async {
                let model = DefaultModel::from_str(&model_text).await?;
                Enforcer::new(model, StringAdapter::new(text)).await
            })?;
            Ok(Engine { enforcer })
        }

        pub fn decide(&self, w: &Workload, i: usize) -> bool {
            let r = &w.requests[i];
            let u = &w.users[r.user];
            let o = &w.resources[r.resource];
            let sub = Sub {
                id: &u.id,
                tenant: &u.tenant,
                suspended: u.suspended,
            };
            let obj = Obj {
                id: &o.id,
                rtype: &o.rtype,
                tenant: &o.tenant,
                owner: o.owner.as_deref().unwrap_or(""),
                cls: o.classification.as_deref().unwrap_or(""),
            };
            let ctx = Ctx {
                ip: &r.ip,
                mfa: r.mfa,
            };
            self.enforcer
                .enforce((sub, obj, r.action.as_str(), ctx))
                .unwrap_or(false)
        }
    }
}
