//! Policy as code: roles, allow/deny rules with typed conditions, and the route table, in a TOML
//! (or JSON) file checked when it loads and compiled to an indexed evaluator, the [`PolicySet`].
//!
//! The file format and the condition language are described in `docs/policy.md`.
//!
//! ```
//! use aaa_core::{Action, Context, Decision, Principal, PrincipalKind, Reason, Resource, Timestamp};
//! use aaa_core::policy::PolicySet;
//!
//! let policy = PolicySet::from_toml(r#"
//! [schema.resource]
//! owner = "string"
//!
//! [roles.viewer]
//! permissions = ["docs:read"]
//!
//! [[rules]]
//! id = "owner-all"
//! effect = "allow"
//! actions = ["docs:*"]
//! resources = ["Document"]
//! when = "resource.owner == principal.id"
//!
//! [[rules]]
//! id = "no-delete-without-mfa"
//! effect = "deny"
//! actions = ["docs:delete"]
//! unless = "principal.mfa"
//! "#, "inline.toml")?;
//!
//! let alice = Principal::new("alice", PrincipalKind::User, "idp");
//! let doc = Resource::new("Document").with_id("d1").with_attribute("owner", "alice");
//! let now = Context::new(Timestamp::from_unix_seconds(1_700_000_000));
//!
//! let update = policy.evaluate(&alice, "docs:update", &doc, &now);
//! assert_eq!(update.decision, Decision::Allow);
//! assert_eq!(update.rules, ["owner-all".into()]);
//!
//! let delete = policy.evaluate(&alice, "docs:delete", &doc, &now);
//! assert_eq!(delete.reason, Reason::Forbidden);
//! assert_eq!(delete.rules, ["no-delete-without-mfa".into()]);
//!
//! // Someone else's document: nothing allows it. `explain` says which allow came closest.
//! let bob = Principal::new("bob", PrincipalKind::User, "idp");
//! let why = policy.explain(&bob, "docs:update", &doc, &now);
//! assert_eq!(why.reason, Reason::NotPermitted);
//! let miss = why.nearest_miss.unwrap();
//! assert_eq!((miss.rule.as_str(), miss.failed.as_str()), ("owner-all", "resource.owner == principal.id"));
//!
//! // The cheap path for hot loops: a decision, no explanation, no allocation.
//! assert_eq!(policy.decide(&alice, "docs:read", &doc, &now), Decision::Allow);
//! # Ok::<(), aaa_core::policy::PolicyError>(())
//! ```
//!
//! # Semantics
//!
//! - A request is allowed when at least one allow rule (or role permission) applies and no deny
//!   rule applies. **Deny always wins; nothing allowed means deny.**
//! - A rule applies when its action patterns match the action, its resource types include the
//!   resource's type (or it names none), its principal selector matches, every condition holds
//!   (`when` true, `unless` false) and the principal carries all its `scopes`.
//! - An error while evaluating a condition (a missing attribute, a value of the wrong type, an
//!   unparsable IP address) never grants: an allow rule that errors does not apply; a deny rule
//!   that errors **denies**. Both are reported in [`Evaluation::errors`](crate::Evaluation).
//!
//! # Security considerations
//!
//! - Everything that reaches the engine from a request is data: no input can make it panic,
//!   loop or backtrack. Conditions are total (no loops, recursion or user functions), `like`
//!   matches in linear time, and IP addresses are parsed strictly (`010.1.2.3` is an error, not
//!   octal; an `ip("::ffff:10.1.2.3")` value is IPv6 and is *not* in `10.0.0.0/8`, as in Cedar; the guard
//!   gives a connection's own peer canonicalized, so a client of a dual-stack listener is its
//!   IPv4 address in `context.peer_ip`). Attributes are checked
//!   against the schema when read, a set element by element: a value of another type is an
//!   evaluation error, never silently unequal to everything.
//! - A deny rule that cannot be evaluated denies. Write deny conditions so that a missing
//!   attribute means "deny" is the safe reading, and use `has` where an attribute is optional.
//! - Routes are looked up by the template the router matched (never by the raw path), so the
//!   router and the policy cannot disagree about which route was hit. An unmapped route is denied.
//! - Role names come from tokens: a role the policy does not define grants nothing, and a
//!   condition naming one (`principal.roles.contains("x")`, `"x" in principal.roles`,
//!   `principal.roles.containsAny(["x"])`) is refused at load (`unknown_role`).
//! - A policy file is code: review changes, run `aaa policy check` and the fixtures in CI. A
//!   file that fails to load is refused as a whole, and [`PolicyHandle::reload_file`] keeps the
//!   old policy in force.

mod compile;
mod error;
mod eval;
mod expr;
mod fixtures;
mod handle;
mod syntax;

use std::{fmt, path::Path};

pub use error::{PolicyDiagnostic, PolicyError, PolicyErrorKind};
pub use fixtures::{
    Coverage, FixtureCase, FixtureError, FixtureFailure, FixturePrincipal, FixtureReport,
    FixtureRequest, Fixtures,
};
pub use handle::PolicyHandle;
pub use syntax::{Effect, Policy, PrincipalSelector, RoleDef, Route, Rule, Schema};

use compile::{Bucket, CRule, Lists, NameMap, RoleInfo, RouteTarget};
use error::Source;
use eval::{Outcome, Req};

use crate::{
    Action, Authorizer, Context, Decision, Evaluation, EvaluationError, Identity, NearestMiss,
    Principal, Reason, Resource, RouteBinding, http::RequestFacts,
};

/// A compiled policy: checked, indexed by action and resource type, ready to decide.
///
/// `Send + Sync`; share it in an `Arc`, or wrap it in a [`PolicyHandle`] to swap it at run time.
/// It implements [`Authorizer`], so it can be given to
/// [`GuardBuilder::policies`](crate::GuardBuilder::policies) directly.
pub struct PolicySet {
    version: std::sync::Arc<str>,
    roles: Vec<RoleInfo>,
    role_ids: NameMap<u32>,
    rules: Vec<CRule>,
    actions: NameMap<u32>,
    buckets: Vec<Bucket>,
    types: NameMap<u32>,
    routes: NameMap<Vec<(http::Method, RouteTarget)>>,
}

impl fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicySet")
            .field("version", &self.version)
            .field("roles", &self.roles.len())
            .field("rules", &self.rules.len())
            .field("routes", &self.routes.len())
            .finish()
    }
}

/// The rules that may apply to one (action, resource type).
struct Candidates<'p> {
    scopes: &'p [compile::ScopeReq],
    resource_type: Option<u32>,
    any: &'p Lists,
    typed: Option<&'p Lists>,
    /// The action is not one the policy names exactly: check each rule's patterns.
    check_action: bool,
}

impl<'p> Candidates<'p> {
    fn deny(&self) -> impl Iterator<Item = u32> + 'p {
        self.any
            .deny
            .iter()
            .chain(self.typed.map_or(&[][..], |l| &l.deny))
            .copied()
    }

    /// The first route scope requirement the principal does not meet.
    fn missing_scope(&self, principal: &Principal) -> Option<&'p compile::ScopeReq> {
        self.scopes.iter().find(|req| {
            Some(req.resource_type) == self.resource_type
                && !req.scopes.iter().all(|s| principal.scopes.contains(&**s))
        })
    }

    fn allow(&self) -> impl Iterator<Item = u32> + 'p {
        self.any
            .allow
            .iter()
            .chain(self.typed.map_or(&[][..], |l| &l.allow))
            .copied()
    }
}

impl PolicySet {
    /// Parses, checks and compiles a policy from TOML text; `file` names it in diagnostics.
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] listing every problem found, with positions.
    pub fn from_toml(text: &str, file: &str) -> Result<PolicySet, PolicyError> {
        let source = Source::new(file, text, true);
        let policy = syntax::parse_toml(text, &source)?;
        compile::compile(&policy, &source)
    }

    /// Parses, checks and compiles a policy from JSON text (same shape as the TOML form).
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] listing every problem found (without line and column).
    pub fn from_json(text: &str, file: &str) -> Result<PolicySet, PolicyError> {
        let source = Source::new(file, text, false);
        let policy = Policy::from_json_with_source(text, &source)?;
        compile::compile(&policy, &source)
    }

    /// Reads a policy file: JSON if its name ends in `.json`, TOML otherwise.
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] if the file cannot be read or is not a valid policy.
    pub fn from_file(path: impl AsRef<Path>) -> Result<PolicySet, PolicyError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::io(&name, &e))?;
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            Self::from_json(&text, &name)
        } else {
            Self::from_toml(&text, &name)
        }
    }

    /// Checks and compiles an already parsed [`Policy`] (for example one built in code).
    /// Diagnostics carry no positions.
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] listing every problem found.
    pub fn compile(policy: &Policy) -> Result<PolicySet, PolicyError> {
        let source = Source::new("<policy>", "", false);
        compile::compile(policy, &source)
    }

    /// The policy's version: the file's `version`, or `sha256:` and a prefix of the hash of its
    /// text.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The ids of all rules, including `role:NAME` for roles with permissions.
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| &*r.id)
    }

    /// The rules that may apply to `action` on `resource_type`; an error (deny) for an action
    /// the policy names nowhere that looks like one a deny rule names, with what it looks like
    /// and those rules (see [`denied_look_alike`](Self::denied_look_alike)).
    fn candidates(
        &self,
        action: &str,
        resource_type: &str,
    ) -> Result<Candidates<'_>, Option<(String, Vec<String>)>> {
        let (bucket, check_action) = match self.actions.get(action) {
            Some(&i) => (self.buckets.get(i as usize).ok_or(None)?, false),
            None => {
                if let Some(refusal) = self.denied_look_alike(action) {
                    return Err(Some(refusal));
                }
                (self.buckets.last().ok_or(None)?, true)
            }
        };
        let type_id = self.types.get(resource_type).copied();
        let typed = type_id.and_then(|t| {
            bucket
                .by_type
                .binary_search_by_key(&t, |(k, _)| *k)
                .ok()
                .and_then(|i| bucket.by_type.get(i))
                .map(|(_, l)| l)
        });
        Ok(Candidates {
            scopes: &bucket.scopes,
            resource_type: type_id,
            any: &bucket.any_type,
            typed,
            check_action,
        })
    }

    /// For an action no rule, permission or route names (one a handler asks about, covered only
    /// by patterns such as `docs:*`): the action a deny rule names, or the namespace it covers,
    /// that it looks like, and those deny rules' ids. `docs:delte` under a `docs:*` grant would
    /// miss every deny written for `docs:delete`; the load-time check refuses such routes, and
    /// this refuses such checks from code.
    fn denied_look_alike(&self, action: &str) -> Option<(String, Vec<String>)> {
        compile::denied_look_alike(action, &self.rules)
    }

    fn rule(&self, i: u32) -> Option<&CRule> {
        self.rules.get(i as usize)
    }

    fn request<'a>(
        &'a self,
        principal: &'a Principal,
        resource: &'a Resource,
        context: &'a Context,
    ) -> Req<'a> {
        Req {
            policy: self,
            principal,
            resource,
            context,
            roles: std::cell::OnceCell::new(),
            cache: std::array::from_fn(|_| std::cell::Cell::new(eval::Slot::Unknown)),
            fault: std::cell::Cell::new(None),
        }
    }

    /// Decides, without explanation and without allocating (for policies of up to 256 roles,
    /// and actions the policy names: one it names nowhere is first compared with the names deny
    /// rules use, which allocates).
    pub fn decide(
        &self,
        principal: &Principal,
        action: &str,
        resource: &Resource,
        context: &Context,
    ) -> Decision {
        let Ok(c) = self.candidates(action, &resource.resource_type) else {
            return Decision::Deny;
        };
        if c.missing_scope(principal).is_some() {
            return Decision::Deny;
        }
        let req = self.request(principal, resource, context);
        for i in c.deny() {
            let Some(rule) = self.rule(i) else { continue };
            if c.check_action && !rule.matches_action(action) {
                continue;
            }
            if matches!(req.applies(rule), Outcome::Yes | Outcome::Fault(_)) {
                return Decision::Deny;
            }
        }
        for i in c.allow() {
            let Some(rule) = self.rule(i) else { continue };
            if c.check_action && !rule.matches_action(action) {
                continue;
            }
            if req.applies(rule) == Outcome::Yes {
                return Decision::Allow;
            }
        }
        Decision::Deny
    }

    /// Decides and explains: the determining rules (all applying deny rules for a forbid, all
    /// applying allow rules for a permit), whether it is a forbid or nothing permitted (or a
    /// missing scope), and any rule that failed to evaluate.
    pub fn evaluate(
        &self,
        principal: &Principal,
        action: &str,
        resource: &Resource,
        context: &Context,
    ) -> Evaluation {
        self.evaluate_with(principal, action, resource, context, false)
    }

    /// Like [`evaluate`](Self::evaluate), and for a deny also the nearest miss: the allow rule
    /// that came closest, and the first part of it that did not hold.
    pub fn explain(
        &self,
        principal: &Principal,
        action: &str,
        resource: &Resource,
        context: &Context,
    ) -> Evaluation {
        self.evaluate_with(principal, action, resource, context, true)
    }

    fn evaluate_with(
        &self,
        principal: &Principal,
        action: &str,
        resource: &Resource,
        context: &Context,
        explain: bool,
    ) -> Evaluation {
        let mut out = Evaluation::not_permitted();
        out.policy_version = Some(self.version.clone());
        let c = match self.candidates(action, &resource.resource_type) {
            Ok(c) => c,
            Err(refusal) => {
                if let Some((near, denies)) = refusal {
                    out.errors = denies
                        .into_iter()
                        .map(|rule| EvaluationError {
                            rule,
                            message: format!(
                                "refused: the action is named by no rule, permission or route and \
                             looks like `{near}`, which this deny rule names"
                            ),
                        })
                        .collect();
                }
                return out;
            }
        };
        if let Some(missing) = c.missing_scope(principal) {
            out.reason = Reason::MissingScope;
            out.rules = vec![missing.id.clone()];
            return out;
        }
        let req = self.request(principal, resource, context);
        let relevant = |i: u32| {
            self.rule(i)
                .filter(|r| !c.check_action || r.matches_action(action))
        };
        let mut denied = Vec::new();
        for rule in c.deny().filter_map(relevant) {
            match req.applies(rule) {
                Outcome::Yes => denied.push(rule.id.clone()),
                Outcome::Fault(f) => {
                    denied.push(rule.id.clone());
                    out.errors.push(EvaluationError {
                        rule: rule.id.to_string(),
                        message: f.message(),
                    });
                }
                Outcome::No | Outcome::MissingScope => {}
            }
        }
        if !denied.is_empty() {
            out.decision = Decision::Deny;
            out.reason = Reason::Forbidden;
            out.rules = denied;
            return out;
        }
        let mut allowed = Vec::new();
        let mut missing_scope = false;
        for rule in c.allow().filter_map(relevant) {
            match req.applies(rule) {
                Outcome::Yes => allowed.push(rule.id.clone()),
                Outcome::MissingScope => missing_scope = true,
                Outcome::Fault(f) => out.errors.push(EvaluationError {
                    rule: rule.id.to_string(),
                    message: f.message(),
                }),
                Outcome::No => {}
            }
        }
        if !allowed.is_empty() {
            out.decision = Decision::Allow;
            out.reason = Reason::Permitted;
            out.rules = allowed;
            return out;
        }
        if missing_scope {
            out.reason = Reason::MissingScope;
        }
        if explain {
            out.nearest_miss = self.nearest_miss(&req, c.allow().filter_map(relevant));
        }
        out
    }

    fn nearest_miss<'p>(
        &'p self,
        req: &Req<'p>,
        allows: impl Iterator<Item = &'p CRule>,
    ) -> Option<NearestMiss> {
        // Closest: the fewest parts (principal selector, conditions, scopes) that fail, then the
        // most that hold; the first such rule in policy order.
        let mut best: Option<((usize, usize), &CRule, String)> = None;
        for rule in allows {
            let (mut failing, mut holding) = (0usize, 0usize);
            let mut failed: Option<String> = None;
            let has_selector = rule.kind.is_some()
                || rule.role.is_some()
                || rule.principal_id.is_some()
                || rule.issuer.is_some();
            if req.selects(rule) {
                holding += usize::from(has_selector);
            } else {
                failing += 1;
                failed = Some(selector_text(rule, &self.roles));
            }
            for c in &rule.conds {
                match req.truth(&c.expr) {
                    Ok(true) => holding += 1,
                    Ok(false) => {
                        failing += 1;
                        failed.get_or_insert_with(|| c.text.to_string());
                    }
                    Err(f) => {
                        failing += 1;
                        failed.get_or_insert_with(|| format!("{} ({})", c.text, f.message()));
                    }
                }
            }
            if !req.has_scopes(rule) {
                failing += 1;
                failed.get_or_insert_with(|| {
                    let scopes: Vec<&str> = rule.scopes.iter().map(|s| &**s).collect();
                    format!("scopes {}", scopes.join(", "))
                });
            }
            let Some(failed) = failed else { continue };
            let better = best
                .as_ref()
                .is_none_or(|((f, h), _, _)| failing < *f || (failing == *f && holding > *h));
            if better {
                best = Some(((failing, holding), rule, failed));
            }
        }
        best.map(|(_, rule, failed)| NearestMiss {
            rule: rule.id.to_string(),
            failed,
        })
    }

    /// Maps the route the router matched to what it asks for. Never looks at the raw path. A
    /// `HEAD` request the policy does not map is mapped as the route's `GET` (routers answer it
    /// with the GET handler).
    pub fn route(&self, facts: &RequestFacts) -> RouteBinding {
        let Some(template) = facts.matched_route() else {
            return RouteBinding::Unmapped;
        };
        let Some(entries) = self.routes.get(template) else {
            return RouteBinding::Unmapped;
        };
        let method = facts.method();
        let find = |method: &http::Method| entries.iter().find(|(m, _)| m == method);
        // Routers answer HEAD with the GET handler (without its body): unless the policy maps
        // HEAD itself, it is decided as the route's GET.
        let found = find(method).or_else(|| {
            (method == http::Method::HEAD)
                .then(|| find(&http::Method::GET))
                .flatten()
        });
        let Some((_, target)) = found else {
            return RouteBinding::Unmapped;
        };
        match target {
            RouteTarget::Public => RouteBinding::Public,
            RouteTarget::Protected {
                action,
                resource_type,
                id_param,
            } => {
                let mut resource = Resource::new(&**resource_type);
                if let Some(p) = id_param {
                    match facts.param(p) {
                        Some(id) => resource.id = Some(id.to_owned()),
                        // The router matched a template with this parameter; a missing value
                        // means the adapter and the policy disagree: refuse.
                        None => return RouteBinding::Unmapped,
                    }
                }
                RouteBinding::Protected {
                    action: action.clone(),
                    resource,
                }
            }
        }
    }
}

fn selector_text(rule: &CRule, roles: &[RoleInfo]) -> String {
    let mut parts = Vec::new();
    if let Some(k) = rule.kind {
        parts.push(format!("principal kind `{k}`"));
    }
    if let Some(r) = rule.role.and_then(|r| roles.get(r as usize)) {
        parts.push(format!("principal role `{}`", r.name));
    }
    if let Some(id) = &rule.principal_id {
        parts.push(format!("principal id `{id}`"));
    }
    if let Some(iss) = &rule.issuer {
        parts.push(format!("principal issuer `{iss}`"));
    }
    parts.join(" and ")
}

impl Authorizer for PolicySet {
    fn bind_route(&self, facts: &RequestFacts) -> RouteBinding {
        self.route(facts)
    }

    fn authorize(
        &self,
        identity: &Identity,
        action: &Action,
        resource: &Resource,
        context: &Context,
    ) -> Evaluation {
        match identity.principal() {
            Some(p) => self.evaluate(p, action.as_str(), resource, context),
            None => {
                let mut e = Evaluation::not_permitted();
                e.policy_version = Some(self.version.clone());
                e
            }
        }
    }
}

#[cfg(test)]
mod tests;
