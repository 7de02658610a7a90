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

/// An engine under test: how long it took to load, the memory it added, and its decision.
struct Engine<'a> {
    name: &'static str,
    load: Option<Duration>,
    rss_kib: Option<u64>,
    decide: Box<dyn Fn(usize) -> bool + 'a>,
}

fn timer_overhead() -> f64 {
    let mut v: Vec<f64> = (0..10_000)
        .map(|_| {
            let t = Instant::now();
            t.elapsed().as_nanos() as f64
        })
        .collect();
    median(&mut v)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn percentile(v: &mut [f64], p: usize) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() * p / 100).copied().unwrap_or(f64::NAN)
}

#[derive(Default)]
struct Samples {
    cold_means: Vec<f64>,
    hot_means: Vec<f64>,
    cold_calls: Vec<f64>,
    hot_calls: Vec<f64>,
}

/// One round for one engine: a cold pass over all requests (mean), a hot pass in blocks of 32
/// decided twice (the second timed), and per-call times on a sample of requests, cold and hot.
fn round(n: usize, r: usize, overhead: f64, decide: &dyn Fn(usize) -> bool, s: &mut Samples) {
    let t = Instant::now();
    for i in 0..n {
        black_box(decide(i));
    }
    s.cold_means.push(t.elapsed().as_nanos() as f64 / n as f64);
    let mut hot = Duration::ZERO;
    for start in (0..n).step_by(32) {
        let end = (start + 32).min(n);
        for i in start..end {
            black_box(decide(i));
        }
        let t = Instant::now();
        for i in start..end {
            black_box(decide(i));
        }
        hot += t.elapsed();
    }
    s.hot_means.push(hot.as_nanos() as f64 / n as f64);
    for i in (r % 7..n).step_by(7) {
        let t = Instant::now();
        black_box(decide(i));
        s.cold_calls
            .push((t.elapsed().as_nanos() as f64 - overhead).max(0.0));
        let t = Instant::now();
        black_box(decide(i));
        s.hot_calls
            .push((t.elapsed().as_nanos() as f64 - overhead).max(0.0));
    }
}

fn main() -> Res<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let w = Workload::load()?;
    let n = w.requests.len();
    let mut engines: Vec<Engine<'_>> = Vec::new();

    // ---- aaa
    let before = rss_kib();
    let t = Instant::now();
    let policy = PolicySet::from_file(repo_root().join("examples/policies/docs_service.toml"))
        .map_err(|e| e.render())?;
    let load = t.elapsed();
    let inputs = w.aaa_inputs();
    let rss = rss_kib().saturating_sub(before);
    // Leaked: the engines below borrow them for the rest of the run.
    let (policy, inputs, wr): (&PolicySet, &_, &Workload) = (
        Box::leak(Box::new(policy)),
        Box::leak(Box::new(inputs)),
        Box::leak(Box::new(w.clone())),
    );
    engines.push(Engine {
        name: "aaa `decide`",
        load: Some(load),
        rss_kib: Some(rss),
        decide: Box::new(move |i| {
            let r = &wr.requests[i];
            policy.decide(
                &inputs.principals[r.user][usize::from(r.mfa)],
                &inputs.actions[i],
                &inputs.resources[r.resource],
                &inputs.contexts[i],
            ) == Decision::Allow
        }),
    });
    engines.push(Engine {
        name: "aaa `decide`, context built per call from the IP string",
        load: None,
        rss_kib: None,
        decide: Box::new(move |i| {
            let r = &wr.requests[i];
            let mut ctx =
                aaa_core::Context::new(aaa_core::Timestamp::from_unix_seconds(1_700_000_000));
            ctx.peer_ip = r.ip.parse::<IpAddr>().ok();
            policy.decide(
                &inputs.principals[r.user][usize::from(r.mfa)],
                &inputs.actions[i],
                &inputs.resources[r.resource],
                &ctx,
            ) == Decision::Allow
        }),
    });
    engines.push(Engine {
        name: "aaa `evaluate` (Evaluation with rule ids)",
        load: None,
        rss_kib: None,
        decide: Box::new(move |i| {
            let r = &wr.requests[i];
            policy
                .evaluate(
                    &inputs.principals[r.user][usize::from(r.mfa)],
                    &inputs.actions[i],
                    &inputs.resources[r.resource],
                    &inputs.contexts[i],
                )
                .is_allowed()
        }),
    });

    // ---- floors
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
    let (users, res, acts, ips, uids): (&[_], &[_], &[_], &[IpAddr], &[u32]) = (
        Box::leak(users.into_boxed_slice()),
        Box::leak(res.into_boxed_slice()),
        Box::leak(acts.into_boxed_slice()),
        Box::leak(ips.into_boxed_slice()),
        Box::leak(uids.into_boxed_slice()),
    );
    engines.push(Engine {
        name: "hand-written floor over the workload's strings",
        load: None,
        rss_kib: None,
        decide: Box::new(move |i| {
            let r = &wr.requests[i];
            floor::decide_strings(
                &wr.users[r.user],
                &r.action,
                &wr.resources[r.resource],
                &ips[i],
                r.mfa,
            )
        }),
    });
    engines.push(Engine {
        name: "hand-written floor, pre-digested (integer tenants, role flags)",
        load: None,
        rss_kib: None,
        decide: Box::new(move |i| {
            let r = &wr.requests[i];
            floor::decide(
                uids[r.user],
                &users[r.user],
                acts[i],
                &res[r.resource],
                &ips[i],
                r.mfa,
            )
        }),
    });

    // ---- cedar
    let before = rss_kib();
    let t = Instant::now();
    let cedar = cedar::Engine::load(&w)?;
    let load = t.elapsed();
    let rss = rss_kib().saturating_sub(before);
    let cedar: &cedar::Engine = Box::leak(Box::new(cedar));
    engines.push(Engine {
        name: "cedar-policy 4.14",
        load: Some(load),
        rss_kib: Some(rss),
        decide: Box::new(move |i| cedar.decide(wr, i)),
    });

    // ---- casbin
    let before = rss_kib();
    let t = Instant::now();
    let casbin = casbin_engine::Engine::load(&w)?;
    let load = t.elapsed();
    let rss = rss_kib().saturating_sub(before);
    let casbin: &casbin_engine::Engine = Box::leak(Box::new(casbin));
    engines.push(Engine {
        name: "casbin 2.20",
        load: Some(load),
        rss_kib: Some(rss),
        decide: Box::new(move |i| casbin.decide(wr, i)),
    });

    for e in &engines {
        check(e.name, &w, &*e.decide)?;
    }
    println!("all {n} decisions agree with the expected ones, for every engine");

    // Interleaved rounds, so that load on the machine affects every engine alike.
    let rounds = 5;
    let overhead = timer_overhead();
    let mut samples: Vec<Samples> = engines.iter().map(|_| Samples::default()).collect();
    for r in 0..rounds {
        for (e, s) in engines.iter().zip(samples.iter_mut()) {
            round(n, r, overhead, &*e.decide, s);
        }
    }
    let mut rows = Vec::new();
    for (e, s) in engines.iter().zip(samples.iter_mut()) {
        rows.push((
            e,
            median(&mut s.cold_means),
            percentile(&mut s.cold_calls, 50),
            percentile(&mut s.cold_calls, 99),
            median(&mut s.hot_means),
            percentile(&mut s.hot_calls, 50),
            percentile(&mut s.hot_calls, 99),
        ));
    }
    let by = |p: &str| {
        rows.iter()
            .find(|r| r.0.name.starts_with(p))
            .map(|r| (r.1, r.4))
    };
    let (cedar_cold, cedar_hot) = by("cedar").unwrap_or((f64::NAN, f64::NAN));
    let (floor_cold, floor_hot) = by("hand-written floor over").unwrap_or((f64::NAN, f64::NAN));
    println!(
        "\ncold: one pass over all {n} requests in file order (their data mostly out of cache)"
    );
    println!(
        "hot: each request's data touched just before, as in a service; median of {rounds} interleaved rounds\n"
    );
    println!(
        "| engine | cold ns/decision | cold p50 / p99 | hot ns/decision | hot p50 / p99 | cedar ÷ engine (cold, hot) | engine ÷ floor (cold, hot) | load | RSS added |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (e, cm, c50, c99, hm, h50, h99) in &rows {
        println!(
            "| {} | {cm:.0} | {c50:.0} / {c99:.0} | {hm:.0} | {h50:.0} / {h99:.0} | {:.0}x, {:.0}x | {:.1}x, {:.1}x | {} | {} |",
            e.name,
            cedar_cold / cm,
            cedar_hot / hm,
            cm / floor_cold,
            hm / floor_hot,
            e.load.map_or("-".to_owned(), |d| format!(
                "{:.2} ms",
                d.as_secs_f64() * 1e3
            )),
            e.rss_kib.map_or("-".to_owned(), |k| format!("{k} KiB")),
        );
    }

    // ---- scaling with policy size, interleaved
    let mut sized = Vec::new();
    for rules in [10, 1_000, 10_000] {
        let text = aaa_bench::docs_service::policy_with_rules(rules)?;
        let before = rss_kib();
        let t = Instant::now();
        let p = PolicySet::from_toml(&text, "grown.toml").map_err(|e| e.render())?;
        let load = t.elapsed();
        let rss = rss_kib().saturating_sub(before);
        sized.push((rules, (load, rss), p, Vec::new()));
    }
    for _ in 0..15 {
        for (_, _, p, times) in &mut sized {
            let t = Instant::now();
            for rep in 0..40 {
                for i in 0..256 {
                    let i = (i + rep) % n;
                    let r = &w.requests[i];
                    black_box(p.decide(
                        &inputs.principals[r.user][usize::from(r.mfa)],
                        &inputs.actions[i],
                        &inputs.resources[r.resource],
                        &inputs.contexts[i],
                    ));
                }
            }
            times.push(t.elapsed().as_nanos() as f64 / (40.0 * 256.0));
        }
    }
    println!(
        "\n| rules | decide ns (median of 15 interleaved rounds, 256 hot requests) | vs 10 rules | load+compile | RSS added |"
    );
    println!("|---:|---:|---:|---:|---:|");
    let base = median(&mut sized[0].3.clone());
    for (rules, (load, rss), _, times) in &mut sized {
        let m = median(times);
        println!(
            "| {rules} | {m:.0} | {:.2}x | {:.1} ms | {rss} KiB |",
            m / base,
            load.as_secs_f64() * 1e3
        );
    }
    Ok(())
}

fn check(name: &str, w: &Workload, decide: &dyn Fn(usize) -> bool) -> Res<()> {
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
