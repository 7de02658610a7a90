//! Checking a [`Policy`] against its schema and compiling it to the indexed [`PolicySet`].

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt,
    ops::Range,
};

use ipnet::IpNet;
use toml::Spanned;

use super::{
    PolicySet,
    error::{PolicyDiagnostic, PolicyError, PolicyErrorKind, Source},
    expr::{self, CmpOp, Expr, ExprKind, Root},
    syntax::{Effect, Policy, inner_span},
};
use crate::{Decimal, PrincipalKind, Timestamp, value::parse_ip};

/// A fast, seeded hash map for names.
pub(crate) type NameMap<V> = HashMap<Box<str>, V, foldhash::fast::RandomState>;

fn name_map<V>() -> NameMap<V> {
    HashMap::with_hasher(foldhash::fast::RandomState::default())
}

/// The type of a single value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar {
    Bool,
    Long,
    Str,
    Ip,
    Time,
    Dec,
    /// The element type of `[]`: compatible with every element type.
    Any,
}

/// The static type of an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    One(Scalar),
    Set(Scalar),
}

impl Scalar {
    fn name(self) -> &'static str {
        match self {
            Scalar::Bool => "bool",
            Scalar::Long => "long",
            Scalar::Str => "string",
            Scalar::Ip => "ip",
            Scalar::Time => "timestamp",
            Scalar::Dec => "decimal",
            Scalar::Any => "any",
        }
    }

    fn parse(s: &str) -> Option<Scalar> {
        Some(match s {
            "bool" => Scalar::Bool,
            "long" => Scalar::Long,
            "string" => Scalar::Str,
            "ip" => Scalar::Ip,
            "timestamp" => Scalar::Time,
            "decimal" => Scalar::Dec,
            _ => return None,
        })
    }

    fn unify(self, other: Scalar) -> Option<Scalar> {
        match (self, other) {
            (Scalar::Any, x) | (x, Scalar::Any) => Some(x),
            (a, b) if a == b => Some(a),
            _ => None,
        }
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::One(s) => f.write_str(s.name()),
            Ty::Set(s) => write!(f, "set<{}>", s.name()),
        }
    }
}

impl Ty {
    fn parse(s: &str) -> Option<Ty> {
        let s = s.trim();
        if let Some(inner) = s.strip_prefix("set<").and_then(|r| r.strip_suffix('>')) {
            return Scalar::parse(inner.trim()).map(Ty::Set);
        }
        Scalar::parse(s).map(Ty::One)
    }
}

/// A literal value in a compiled condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Bool(bool),
    Long(i64),
    Str(Box<str>),
    Ip(IpNet),
    Time(i64),
    Dec(i64),
}

/// What a condition reads.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Attr {
    PrincipalId,
    PrincipalKind,
    PrincipalIssuer,
    PrincipalTenant,
    PrincipalRoles,
    PrincipalScopes,
    PrincipalMfa,
    PrincipalAmr,
    /// A declared attribute: name, type, and its slot in the per-request cache.
    Principal(Box<str>, Ty, u8),
    ResourceType,
    ResourceId,
    Resource(Box<str>, Ty, u8),
    ContextPeerIp,
    ContextTime,
    Context(Box<str>, Ty, u8),
}

impl Attr {
    /// Whether the attribute is a declared `set<T>`.
    pub(crate) fn is_set(&self) -> bool {
        matches!(
            self,
            Attr::Principal(_, Ty::Set(_), _)
                | Attr::Resource(_, Ty::Set(_), _)
                | Attr::Context(_, Ty::Set(_), _)
        )
    }

    /// The attribute as written, e.g. `resource.owner`.
    pub(crate) fn path(&self) -> String {
        match self {
            Attr::PrincipalId => "principal.id".into(),
            Attr::PrincipalKind => "principal.kind".into(),
            Attr::PrincipalIssuer => "principal.issuer".into(),
            Attr::PrincipalTenant => "principal.tenant".into(),
            Attr::PrincipalRoles => "principal.roles".into(),
            Attr::PrincipalScopes => "principal.scopes".into(),
            Attr::PrincipalMfa => "principal.mfa".into(),
            Attr::PrincipalAmr => "principal.amr".into(),
            Attr::Principal(n, ..) => format!("principal.{n}"),
            Attr::ResourceType => "resource.type".into(),
            Attr::ResourceId => "resource.id".into(),
            Attr::Resource(n, ..) => format!("resource.{n}"),
            Attr::ContextPeerIp => "context.peer_ip".into(),
            Attr::ContextTime => "context.time".into(),
            Attr::Context(n, ..) => format!("context.{n}"),
        }
    }
}

/// A type-checked, compiled condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CExpr {
    Const(Lit),
    LitSet(Vec<Lit>),
    Get(Attr),
    Has(Attr),
    HasRole(u32),
    Not(Box<CExpr>),
    And(Vec<CExpr>),
    Or(Vec<CExpr>),
    Cmp(CmpOp, Box<CExpr>, Box<CExpr>),
    In(Box<CExpr>, Box<CExpr>),
    ContainsAll(Box<CExpr>, Box<CExpr>),
    ContainsAny(Box<CExpr>, Box<CExpr>),
    Like(Box<CExpr>, Glob),
    InRange(Box<CExpr>, Box<CExpr>),
    Hour(Box<CExpr>),
    Weekday(Box<CExpr>),
}

/// A `like` pattern: `*` matches any run of characters. Matching is linear: the literal pieces
/// between stars are found left to right, with no backtracking.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Glob {
    pieces: Vec<Box<str>>,
}

impl Glob {
    pub(crate) fn new(pattern: &str) -> Glob {
        Glob {
            pieces: pattern.split('*').map(Box::from).collect(),
        }
    }

    pub(crate) fn matches(&self, text: &str) -> bool {
        let [first, middle @ .., last] = self.pieces.as_slice() else {
            // One piece: no star.
            return self.pieces.first().is_some_and(|p| **p == *text);
        };
        let Some(rest) = text.strip_prefix(&**first) else {
            return false;
        };
        let Some(mut rest) = rest.strip_suffix(&**last) else {
            return false;
        };
        for piece in middle {
            match rest.find(&**piece) {
                Some(at) => rest = rest.get(at + piece.len()..).unwrap_or_default(),
                None => return false,
            }
        }
        true
    }
}

/// An action pattern of the glob dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pattern {
    /// `*`: every action.
    Any,
    /// `docs:*`: every action starting with `docs:` (stored with the colon).
    Prefix(Box<str>),
    /// `docs:read`: exactly that action.
    Exact(Box<str>),
}

impl Pattern {
    pub(crate) fn parse(s: &str) -> Result<Pattern, &'static str> {
        if s == "*" {
            return Ok(Pattern::Any);
        }
        // Printable ASCII only: an invisible character (a zero-width space, a soft hyphen) or a
        // look-alike letter (Cyrillic `е`) would make another action that reads the same.
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "an action pattern is non-empty printable ASCII, without whitespace \
                        (an invisible or look-alike character would make another action that \
                        reads the same)",
            );
        }
        match s.find('*') {
            None => Ok(Pattern::Exact(s.into())),
            Some(i) if i + 1 == s.len() && s.ends_with(":*") && s.len() > 2 => {
                Ok(Pattern::Prefix(s.get(..i).unwrap_or_default().into()))
            }
            Some(_) => {
                Err("`*` may only stand alone (`*`) or end a pattern after a colon (`docs:*`)")
            }
        }
    }

    pub(crate) fn matches(&self, action: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Prefix(p) => action.len() > p.len() && action.starts_with(&**p),
            Pattern::Exact(a) => **a == *action,
        }
    }
}

/// One conjunct of a rule's condition, kept with its text for explanations.
#[derive(Debug, Clone)]
pub(crate) struct Cond {
    pub(crate) expr: CExpr,
    pub(crate) text: Box<str>,
}

/// A compiled rule (role permissions become rules `role:NAME`).
#[derive(Debug, Clone)]
pub(crate) struct CRule {
    /// Shared with every [`Evaluation`](crate::Evaluation) that names the rule.
    pub(crate) id: std::sync::Arc<str>,
    pub(crate) effect: Effect,
    pub(crate) kind: Option<PrincipalKind>,
    pub(crate) role: Option<u32>,
    pub(crate) principal_id: Option<Box<str>>,
    pub(crate) issuer: Option<Box<str>>,
    pub(crate) actions: Vec<Pattern>,
    pub(crate) resources: Vec<Box<str>>,
    pub(crate) conds: Vec<Cond>,
    pub(crate) scopes: Vec<Box<str>>,
}

impl CRule {
    pub(crate) fn matches_action(&self, action: &str) -> bool {
        self.actions.iter().any(|p| p.matches(action))
    }
}

/// Rule indices by effect.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lists {
    pub(crate) deny: Vec<u32>,
    pub(crate) allow: Vec<u32>,
}

impl Lists {
    fn push(&mut self, effect: Effect, rule: u32) {
        match effect {
            Effect::Allow => self.allow.push(rule),
            Effect::Deny => self.deny.push(rule),
        }
    }
}

/// Scopes a route requires for its (action, resource type).
#[derive(Debug, Clone)]
pub(crate) struct ScopeReq {
    pub(crate) resource_type: u32,
    pub(crate) scopes: Vec<Box<str>>,
    /// `route:METHOD TEMPLATE`, reported as the determining rule.
    pub(crate) id: std::sync::Arc<str>,
}

/// The candidate rules of one action: those for any resource type, and those for each type.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bucket {
    pub(crate) any_type: Lists,
    pub(crate) by_type: Vec<(u32, Lists)>,
    pub(crate) scopes: Vec<ScopeReq>,
}

/// A role with its inheritance closure as a bitset (bit `i` set: this role has role `i`).
#[derive(Debug, Clone)]
pub(crate) struct RoleInfo {
    pub(crate) name: Box<str>,
    pub(crate) closure: Vec<u64>,
}

/// What a route maps to.
#[derive(Debug, Clone)]
pub(crate) enum RouteTarget {
    Public,
    Protected {
        action: crate::Action,
        resource_type: Box<str>,
        id_param: Option<Box<str>>,
    },
}

struct Ctx<'a> {
    source: &'a Source,
    text: &'a str,
    errors: Vec<PolicyDiagnostic>,
    schema: [BTreeMap<String, (Ty, u8)>; 3],
    role_ids: &'a NameMap<u32>,
    /// The string literals conditions compare `resource.type` with (`==`, `!=`, `in [..]`),
    /// with their spans in the file: checked once every resource type is known.
    type_literals: Vec<(Range<usize>, Box<str>)>,
}

impl Ctx<'_> {
    fn error(
        &mut self,
        kind: PolicyErrorKind,
        span: Option<Range<usize>>,
        message: impl Into<String>,
        help: Option<String>,
    ) {
        let mut d = PolicyDiagnostic::new(self.source, kind, span, message);
        if let Some(h) = help {
            d = d.with_help(h);
        }
        self.errors.push(d);
    }
}

/// Compiles `policy` (whose text is in `source`).
pub(crate) fn compile(policy: &Policy, source: &Source) -> Result<PolicySet, PolicyError> {
    let text = source.text.inner().as_str();
    let mut role_ids: NameMap<u32> = name_map();
    let mut role_names: Vec<&Spanned<String>> = Vec::new();
    for name in policy.roles.keys() {
        let id = u32::try_from(role_names.len()).unwrap_or(u32::MAX);
        role_ids.insert(name.get_ref().as_str().into(), id);
        role_names.push(name);
    }
    let mut cx = Ctx {
        source,
        text,
        errors: Vec::new(),
        schema: Default::default(),
        role_ids: &role_ids,
        type_literals: Vec::new(),
    };

    // Schema. Each declared attribute gets a slot in the per-request lookup cache.
    let mut next_slot = 0usize;
    for (root, decls) in [
        (Root::Principal, &policy.schema.principal),
        (Root::Resource, &policy.schema.resource),
        (Root::Context, &policy.schema.context),
    ] {
        for (name, ty) in decls {
            let n = name.get_ref();
            if builtin(root, n).is_some() {
                cx.error(
                    PolicyErrorKind::InvalidSchema,
                    Some(name.span()),
                    format!("`{}.{n}` is built in and cannot be declared", root.as_str()),
                    Some("remove this line; built-in attributes are always available".into()),
                );
                continue;
            }
            if !is_ident(n) {
                cx.error(
                    PolicyErrorKind::InvalidSchema,
                    Some(name.span()),
                    format!("`{n}` is not a valid attribute name"),
                    Some("use letters, digits and `_`, starting with a letter".into()),
                );
                continue;
            }
            match Ty::parse(ty.get_ref()) {
                // Set by the guard, always a string: another type could never be read.
                Some(t)
                    if root == Root::Context && n == "relayed_by" && t != Ty::One(Scalar::Str) =>
                {
                    cx.error(
                        PolicyErrorKind::InvalidSchema,
                        Some(ty.span()),
                        format!(
                            "`context.relayed_by` is set by the guard as a string, not `{}`",
                            ty.get_ref()
                        ),
                        Some("declare it as `relayed_by = \"string\"`".into()),
                    );
                }
                Some(t) => {
                    let slot = u8::try_from(next_slot).unwrap_or(u8::MAX);
                    next_slot += 1;
                    of_mut(&mut cx.schema, root).insert(n.clone(), (t, slot));
                }
                None => cx.error(
                    PolicyErrorKind::InvalidSchema,
                    Some(ty.span()),
                    format!("unknown type `{}`", ty.get_ref()),
                    Some(
                        "types are string, bool, long, decimal, ip, timestamp and set<T> of those"
                            .into(),
                    ),
                ),
            }
        }
    }

    // Roles: unknown parents, cycles, closures.
    let n_roles = role_names.len();
    let words = n_roles.div_ceil(64).max(1);
    let mut parents: Vec<Vec<u32>> = vec![Vec::new(); n_roles];
    for (i, (name, def)) in policy.roles.iter().enumerate() {
        for parent in &def.inherits {
            match role_ids.get(parent.get_ref().as_str()) {
                Some(&p) => {
                    if let Some(list) = parents.get_mut(i) {
                        list.push(p);
                    }
                }
                None => cx.error(
                    PolicyErrorKind::UnknownRole,
                    Some(parent.span()),
                    format!(
                        "role `{}` inherits from unknown role `{}`",
                        name.get_ref(),
                        parent.get_ref()
                    ),
                    Some(known_roles_help(&role_names)),
                ),
            }
        }
    }
    if let Some(cycle) = find_cycle(&parents) {
        let names: Vec<&str> = cycle
            .iter()
            .filter_map(|&i| role_names.get(i as usize).map(|n| n.get_ref().as_str()))
            .collect();
        let first = cycle.first().and_then(|&i| role_names.get(i as usize));
        cx.error(
            PolicyErrorKind::RoleCycle,
            first.map(|n| n.span()),
            format!("role inheritance forms a cycle: {}", names.join(" -> ")),
            Some("role inheritance must be acyclic: remove one of these `inherits` entries".into()),
        );
    }
    let mut roles: Vec<RoleInfo> = role_names
        .iter()
        .map(|n| RoleInfo {
            name: n.get_ref().as_str().into(),
            closure: vec![0; words],
        })
        .collect();
    for (i, role) in roles.iter_mut().enumerate() {
        // Depth-first over parents; visited set bounds the walk even with cycles.
        let mut stack = vec![u32::try_from(i).unwrap_or(u32::MAX)];
        while let Some(r) = stack.pop() {
            let (w, b) = ((r / 64) as usize, r % 64);
            let Some(word) = role.closure.get_mut(w) else {
                continue;
            };
            if *word & (1 << b) != 0 {
                continue;
            }
            *word |= 1 << b;
            if let Some(ps) = parents.get(r as usize) {
                stack.extend(ps.iter().copied());
            }
        }
    }

    // Rules.
    let mut rules: Vec<CRule> = Vec::new();
    let mut seen_ids: HashMap<&str, Range<usize>> = HashMap::new();
    let mut mentioned_actions: HashSet<String> = HashSet::new();
    let mut mentioned_types: HashSet<String> = HashSet::new();

    for (name, def) in &policy.roles {
        let mut actions = Vec::new();
        for perm in &def.permissions {
            match Pattern::parse(perm.get_ref()) {
                Ok(p) => {
                    note_pattern(&p, &mut mentioned_actions);
                    actions.push(p);
                }
                Err(help) => cx.error(
                    PolicyErrorKind::InvalidPattern,
                    Some(perm.span()),
                    format!("invalid action pattern `{}`", perm.get_ref()),
                    Some(help.into()),
                ),
            }
        }
        if !actions.is_empty() {
            rules.push(CRule {
                id: format!("role:{}", name.get_ref()).into(),
                effect: Effect::Allow,
                kind: None,
                role: role_ids.get(name.get_ref().as_str()).copied(),
                principal_id: None,
                issuer: None,
                actions,
                resources: Vec::new(),
                conds: Vec::new(),
                scopes: Vec::new(),
            });
        }
    }

    for rule in &policy.rules {
        let id = rule.id.get_ref();
        if id.is_empty() {
            cx.error(
                PolicyErrorKind::InvalidRule,
                Some(rule.id.span()),
                "a rule id cannot be empty",
                None,
            );
        } else if let Some(prefix) = RESERVED_ID_PREFIXES.iter().find(|p| id.starts_with(**p)) {
            cx.error(
                PolicyErrorKind::InvalidRule,
                Some(rule.id.span()),
                format!("rule id `{id}` starts with the reserved prefix `{prefix}`"),
                Some(
                    "decisions name a role's permissions `role:NAME` and a route's scopes \
                     `route:METHOD TEMPLATE`; choose an id without these prefixes"
                        .into(),
                ),
            );
        } else if let Some(first) = seen_ids.get(id.as_str()) {
            let (line, _) = super::error::line_column(text, first.start);
            cx.error(
                PolicyErrorKind::DuplicateRuleId,
                Some(rule.id.span()),
                format!("duplicate rule id `{id}`"),
                Some(if source.positions {
                    format!(
                        "the first rule with this id is on line {line}; rule ids must be unique"
                    )
                } else {
                    "rule ids must be unique".into()
                }),
            );
        } else {
            seen_ids.insert(id.as_str(), rule.id.span());
        }
        let role = match &rule.principal.role {
            None => None,
            Some(r) => match role_ids.get(r.get_ref().as_str()) {
                Some(&i) => Some(i),
                None => {
                    cx.error(
                        PolicyErrorKind::UnknownRole,
                        Some(r.span()),
                        format!("rule `{id}` names unknown role `{}`", r.get_ref()),
                        Some(known_roles_help(&role_names)),
                    );
                    None
                }
            },
        };
        if rule.actions.is_empty() {
            cx.error(
                PolicyErrorKind::InvalidRule,
                Some(rule.id.span()),
                format!("rule `{id}` names no actions"),
                Some("list the actions it covers, or `[\"*\"]` for all".into()),
            );
        }
        if rule.effect == Effect::Deny && !rule.scopes.is_empty() {
            // A rule applies only to tokens that carry its scopes: on a deny, that reads as
            // "writes need docs.write" and does the opposite (it denies the tokens that have it).
            cx.error(
                PolicyErrorKind::InvalidRule,
                Some(rule.id.span()),
                format!("deny rule `{id}` names `scopes`"),
                Some(
                    "a rule applies only to tokens that carry its scopes, so this deny would hit \
                     the tokens that have them and spare those that do not; to require a scope, \
                     put `scopes` on the route or on the allow rules; to deny tokens that carry \
                     one, write `when = '\"SCOPE\" in principal.scopes'`"
                        .into(),
                ),
            );
        }
        let mut actions = Vec::new();
        for a in &rule.actions {
            match Pattern::parse(a.get_ref()) {
                Ok(p) => {
                    note_pattern(&p, &mut mentioned_actions);
                    actions.push(p);
                }
                Err(help) => cx.error(
                    PolicyErrorKind::InvalidPattern,
                    Some(a.span()),
                    format!("invalid action pattern `{}`", a.get_ref()),
                    Some(help.into()),
                ),
            }
        }
        for r in &rule.resources {
            if !is_type_name(r.get_ref()) {
                // Matched exactly: `*` or `Doc*` would match no type, and a deny with it
                // would never fire.
                cx.error(
                    PolicyErrorKind::InvalidPattern,
                    Some(r.span()),
                    format!("invalid resource type `{}`", r.get_ref()),
                    Some(
                        "resource types are named exactly (non-empty printable ASCII, without \
                         whitespace or `*`); leave `resources` out for every type"
                            .into(),
                    ),
                );
            }
            mentioned_types.insert(r.get_ref().clone());
        }
        let mut conds = Vec::new();
        for (cond, negate) in [(&rule.when, false), (&rule.unless, true)] {
            let Some(cond) = cond else { continue };
            compile_condition(&mut cx, cond, negate, &mut conds);
        }
        rules.push(CRule {
            id: id.as_str().into(),
            effect: rule.effect,
            kind: rule.principal.kind,
            role,
            principal_id: rule.principal.id.as_deref().map(Box::from),
            issuer: rule.principal.issuer.as_deref().map(Box::from),
            actions,
            resources: dedup(rule.resources.iter().map(|r| r.get_ref().as_str())),
            conds,
            scopes: rule.scopes.iter().map(|s| s.as_str().into()).collect(),
        });
    }

    // Routes.
    let mut routes: NameMap<Vec<(http::Method, RouteTarget)>> = name_map();
    // (route action, denied action) pairs refused as typos of each other: reported once.
    let mut typo_pairs: Vec<(String, String)> = Vec::new();
    for route in &policy.routes {
        let method = match route_method(route.method.get_ref()) {
            Ok(m) => m,
            Err(help) => {
                cx.error(
                    PolicyErrorKind::InvalidRoute,
                    Some(route.method.span()),
                    format!("invalid HTTP method `{}`", route.method.get_ref()),
                    Some(help),
                );
                continue;
            }
        };
        let template = route.route.get_ref();
        let params = template_params(template);
        if let Some(name) = params
            .iter()
            .enumerate()
            .find_map(|(i, p)| params.get(..i)?.contains(p).then_some(p))
        {
            // The router gives both values under one name: the handler may read one while the
            // policy decides on the other.
            cx.error(
                PolicyErrorKind::InvalidRoute,
                Some(route.route.span()),
                format!("route `{template}` repeats the path parameter `{name}`"),
                Some(
                    "give each parameter its own name (in nested routers too), such as \
                     `/users/{user}/docs/{id}`"
                        .into(),
                ),
            );
            continue;
        }
        let target = if route.public {
            if route.action.is_some()
                || route.resource.is_some()
                || route.id.is_some()
                || !route.scopes.is_empty()
            {
                cx.error(
                    PolicyErrorKind::InvalidRoute,
                    Some(route.route.span()),
                    format!(
                        "public route `{template}` cannot name an action, resource, id or scopes"
                    ),
                    Some(
                        "a public route is not authorized; remove `public` or the other fields"
                            .into(),
                    ),
                );
                continue;
            }
            RouteTarget::Public
        } else {
            let (Some(action), Some(resource)) = (&route.action, &route.resource) else {
                cx.error(
                    PolicyErrorKind::InvalidRoute,
                    Some(route.route.span()),
                    format!("route `{template}` needs `action` and `resource`, or `public = true`"),
                    None,
                );
                continue;
            };
            let a = action.get_ref();
            if !matches!(Pattern::parse(a), Ok(Pattern::Exact(_))) {
                // The action is matched exactly against rules' patterns: one outside the
                // action grammar would slip past the exact denies meant for it.
                cx.error(
                    PolicyErrorKind::InvalidRoute,
                    Some(action.span()),
                    format!("route `{method} {template}` names invalid action `{a}`"),
                    Some(
                        "an action is non-empty printable ASCII, without whitespace and without `*` (a route \
                         asks for one action; patterns belong in rules and permissions)"
                            .into(),
                    ),
                );
                continue;
            }
            if !mentioned_actions.contains(a) && !rules.iter().any(|r| r.matches_action(a)) {
                cx.error(
                    PolicyErrorKind::UnknownAction,
                    Some(action.span()),
                    format!("route `{} {template}` names unknown action `{a}`", method),
                    Some(
                        "no rule or role permission covers this action: add one, or fix the name"
                            .into(),
                    ),
                );
            } else if !mentioned_actions.contains(a)
                && let Some((near, denies)) = denied_look_alike(a, &rules)
            {
                typo_pairs.push((a.clone(), near.clone()));
                // Only patterns cover it: a typo of a denied action (`docs:delte` beside a
                // `docs:*` grant) would escape every deny that names the real one.
                cx.error(
                    PolicyErrorKind::UnknownAction,
                    Some(action.span()),
                    format!(
                        "route `{method} {template}` names action `{a}`, which no rule names \
                         (only patterns cover it); did you mean {}?",
                        if near.ends_with('*') {
                            format!("an action of `{near}`")
                        } else {
                            format!("`{near}`")
                        }
                    ),
                    Some(format!(
                        "the deny rules naming `{near}` ({}) do not apply to `{a}`; fix the name, \
                         or name `{a}` in a rule or role permission if it is an action of its own",
                        denies.join(", ")
                    )),
                );
            }
            let t = resource.get_ref();
            // Known: named by a rule. A policy that names no type anywhere (its rules cover
            // every type) cannot tell a typo; one that names some can: a type no rule names would
            // escape the denies written for the type meant.
            if !is_type_name(t) {
                cx.error(
                    PolicyErrorKind::InvalidPattern,
                    Some(resource.span()),
                    format!("route `{method} {template}` names invalid resource type `{t}`"),
                    Some(
                        "resource types are named exactly (non-empty printable ASCII, without \
                         whitespace or `*`)"
                            .into(),
                    ),
                );
            } else if !mentioned_types.is_empty() && !mentioned_types.contains(t) {
                cx.error(
                    PolicyErrorKind::UnknownResourceType,
                    Some(resource.span()),
                    format!(
                        "route `{} {template}` names unknown resource type `{t}`",
                        method
                    ),
                    Some("no rule covers this resource type: add one, or fix the name".into()),
                );
            }
            if let Some(id) = &route.id
                && !params.iter().any(|p| p == id.get_ref())
            {
                cx.error(
                    PolicyErrorKind::InvalidRoute,
                    Some(id.span()),
                    format!(
                        "route `{template}` has no path parameter `{}`",
                        id.get_ref()
                    ),
                    Some(format!(
                        "the template's parameters are: {}",
                        if params.is_empty() {
                            "none".to_owned()
                        } else {
                            params.join(", ")
                        }
                    )),
                );
            }
            RouteTarget::Protected {
                action: crate::Action::new(a),
                resource_type: t.as_str().into(),
                id_param: route.id.as_ref().map(|i| i.get_ref().as_str().into()),
            }
        };
        let entry = routes.entry(template.as_str().into()).or_default();
        if entry.iter().any(|(m, _)| *m == method) {
            cx.error(
                PolicyErrorKind::DuplicateRoute,
                Some(route.route.span()),
                format!("route `{method} {template}` is listed twice"),
                None,
            );
            continue;
        }
        entry.push((method, target));
    }
    deny_look_alikes(&mut cx, policy, &typo_pairs);

    // A condition comparing `resource.type` with a look-alike of a type the rules and routes
    // name (`resource.type == "Documnet"`) never holds for that type: a deny written so never
    // fires. A name that looks like none may be a type only handlers check: left alone.
    let known: HashSet<&str> = mentioned_types
        .iter()
        .map(String::as_str)
        .chain(
            policy
                .routes
                .iter()
                .filter_map(|r| r.resource.as_ref())
                .map(|t| t.get_ref().as_str()),
        )
        .collect();
    for (span, name) in std::mem::take(&mut cx.type_literals) {
        if known.contains(&*name) {
            continue;
        }
        if let Some(near) = look_alike(&name, known.iter().copied()) {
            cx.error(
                PolicyErrorKind::UnknownResourceType,
                Some(span),
                format!(
                    "the condition compares `resource.type` with `{name}`, which no rule or route \
                     names; did you mean `{near}`?"
                ),
                Some(format!(
                    "as written it never holds for `{near}`: fix the name, or name `{name}` in a \
                     rule's `resources` if it is a type of its own"
                )),
            );
        }
    }
    if !cx.errors.is_empty() {
        let mut errors = cx.errors;
        errors.sort_by_key(|d| (d.line(), d.column()));
        return Err(PolicyError::new(errors));
    }

    // Index: exact actions and resource types get ids; every rule goes to the buckets of the
    // actions it matches.
    let mut actions: NameMap<u32> = name_map();
    for targets in routes.values() {
        for (_, t) in targets {
            if let RouteTarget::Protected { action, .. } = t {
                mentioned_actions.insert(action.as_str().to_owned());
            }
        }
    }
    let mut route_scopes: Vec<(String, String, ScopeReq)> = Vec::new();
    for route in &policy.routes {
        if let (Some(a), Some(t), false) = (&route.action, &route.resource, route.scopes.is_empty())
        {
            mentioned_types.insert(t.get_ref().clone());
            route_scopes.push((
                a.get_ref().clone(),
                t.get_ref().clone(),
                ScopeReq {
                    resource_type: 0,
                    scopes: route.scopes.iter().map(|s| s.as_str().into()).collect(),
                    id: format!("route:{} {}", route.method.get_ref(), route.route.get_ref())
                        .into(),
                },
            ));
        }
    }
    let mut action_names: Vec<String> = mentioned_actions.into_iter().collect();
    action_names.sort();
    for (i, a) in action_names.iter().enumerate() {
        actions.insert(a.as_str().into(), u32::try_from(i).unwrap_or(u32::MAX));
    }
    let mut types: NameMap<u32> = name_map();
    let mut type_names: Vec<String> = mentioned_types.into_iter().collect();
    type_names.sort();
    for (i, t) in type_names.iter().enumerate() {
        types.insert(t.as_str().into(), u32::try_from(i).unwrap_or(u32::MAX));
    }
    let mut buckets: Vec<Bucket> = vec![Bucket::default(); action_names.len() + 1];
    let unknown = action_names.len();
    for (ri, rule) in rules.iter().enumerate() {
        let ri = u32::try_from(ri).unwrap_or(u32::MAX);
        let mut targets: Vec<usize> = Vec::new();
        for p in &rule.actions {
            match p {
                Pattern::Exact(a) => {
                    if let Some(&i) = actions.get(a) {
                        targets.push(i as usize);
                    }
                }
                Pattern::Prefix(_) | Pattern::Any => {
                    targets.extend(
                        action_names
                            .iter()
                            .enumerate()
                            .filter(|(_, a)| p.matches(a))
                            .map(|(i, _)| i),
                    );
                    targets.push(unknown);
                }
            }
        }
        targets.sort_unstable();
        targets.dedup();
        for t in targets {
            let Some(bucket) = buckets.get_mut(t) else {
                continue;
            };
            if rule.resources.is_empty() {
                bucket.any_type.push(rule.effect, ri);
            } else {
                for r in &rule.resources {
                    let Some(&tid) = types.get(&**r) else {
                        continue;
                    };
                    match bucket.by_type.binary_search_by_key(&tid, |(k, _)| *k) {
                        Ok(pos) => {
                            if let Some((_, l)) = bucket.by_type.get_mut(pos) {
                                l.push(rule.effect, ri);
                            }
                        }
                        Err(pos) => {
                            let mut l = Lists::default();
                            l.push(rule.effect, ri);
                            bucket.by_type.insert(pos, (tid, l));
                        }
                    }
                }
            }
        }
    }
    for (action, rtype, mut req) in route_scopes {
        if let (Some(&a), Some(&t)) = (actions.get(action.as_str()), types.get(rtype.as_str()))
            && let Some(bucket) = buckets.get_mut(a as usize)
        {
            req.resource_type = t;
            bucket.scopes.push(req);
        }
    }

    Ok(PolicySet {
        version: policy
            .version
            .clone()
            .unwrap_or_else(|| {
                use sha2::{Digest, Sha256};
                // A policy built in code has no text: hash its printed form.
                let printed;
                let hashed = if text.is_empty() {
                    printed = policy.to_toml().unwrap_or_default();
                    printed.as_str()
                } else {
                    text
                };
                let digest = crate::identity::hex(&Sha256::digest(hashed.as_bytes()));
                format!("sha256:{}", digest.get(..16).unwrap_or_default())
            })
            .into(),
        roles,
        role_ids,
        rules,
        actions,
        buckets,
        types,
        routes,
    })
}

/// Prefixes of the rule ids decisions give to role permissions (`role:NAME`) and to route scopes
/// (`route:METHOD TEMPLATE`); a rule id may not start with them, so an id names one thing.
const RESERVED_ID_PREFIXES: [&str; 2] = ["role:", "route:"];

/// The names in order of first appearance, each once.
fn dedup<'s>(names: impl Iterator<Item = &'s str>) -> Vec<Box<str>> {
    let mut out: Vec<Box<str>> = Vec::new();
    for n in names {
        if !out.iter().any(|o| **o == *n) {
            out.push(n.into());
        }
    }
    out
}

/// A route's method, as the adapters compare it: case-sensitively, byte for byte (RFC 9110
/// section 9.1). A method with a lowercase letter would never match a request for the standard
/// method it spells (`get` is not `GET`), so it is refused; uppercase extension methods
/// (`PURGE`, `PROPFIND`) are accepted.
fn route_method(text: &str) -> Result<http::Method, String> {
    const STANDARD: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
    ];
    let upper = text.to_ascii_uppercase();
    match http::Method::from_bytes(text.as_bytes()) {
        Ok(m) if upper == text => Ok(m),
        Ok(_) if STANDARD.contains(&upper.as_str()) => {
            Err(format!("HTTP methods are case-sensitive: write `{upper}`"))
        }
        _ => Err(
            "a method is an uppercase token: GET, HEAD, POST, PUT, PATCH, DELETE, \
             OPTIONS, or an extension method such as PURGE"
                .to_owned(),
        ),
    }
}

/// Of `names`, the one `name` is a likely typo of: only the ASCII case differs, or a few edits
/// (a letter added, dropped, changed, or two swapped): one for names of 4 to 7 characters, two
/// from 8 (shorter names, `T1` and `T2`, are told apart by one letter on purpose). The nearest,
/// then the first in order.
fn look_alike<'n>(name: &str, names: impl IntoIterator<Item = &'n str>) -> Option<&'n str> {
    let mut best: Option<(usize, &str)> = None;
    for other in names {
        if name == other {
            continue;
        }
        let d = if name.eq_ignore_ascii_case(other) {
            0
        } else {
            let shorter = name.chars().count().min(other.chars().count());
            let most = match shorter {
                0..4 => 0,
                4..8 => 1,
                _ => 2,
            };
            let d = strsim::osa_distance(name, other);
            if d == 0 || d > most {
                continue;
            }
            d
        };
        if best.is_none_or(|(b, n)| (d, other) < (b, n)) {
            best = Some((d, other));
        }
    }
    best.map(|(_, n)| n)
}

/// What a deny rule names that `action` (which only patterns cover) is a typo of: an action it
/// names exactly, or a namespace it covers (`doc:delete` beside `docs:*`); with the ids of the
/// deny rules naming it.
pub(crate) fn denied_look_alike(action: &str, rules: &[CRule]) -> Option<(String, Vec<String>)> {
    let denies = || rules.iter().filter(|r| r.effect == Effect::Deny);
    // The pattern as written, and the part of `action` to compare with it.
    let shown = |p: &Pattern| -> Option<(String, String)> {
        match p {
            Pattern::Any => None,
            Pattern::Exact(x) => Some((x.to_string(), action.to_owned())),
            Pattern::Prefix(ns) if !p.matches(action) => {
                // As many `:`-separated parts of `action` as the namespace has.
                let parts = ns.matches(':').count();
                let end = action.match_indices(':').nth(parts.checked_sub(1)?)?.0 + 1;
                Some((format!("{ns}*"), action.get(..end)?.to_owned()))
            }
            Pattern::Prefix(_) => None,
        }
    };
    let mut best: Option<(usize, String)> = None;
    for p in denies().flat_map(|r| r.actions.iter()) {
        let Some((written, part)) = shown(p) else {
            continue;
        };
        let compared = match p {
            Pattern::Prefix(ns) => ns.to_string(),
            _ => written.clone(),
        };
        if look_alike(&part, [compared.as_str()]).is_some() {
            let d = if part.eq_ignore_ascii_case(&compared) {
                0
            } else {
                strsim::osa_distance(&part, &compared)
            };
            if best.as_ref().is_none_or(|(b, n)| (d, &written) < (*b, n)) {
                best = Some((d, written));
            }
        }
    }
    let (_, near) = best?;
    let ids = denies()
        .filter(|r| {
            r.actions
                .iter()
                .any(|p| shown(p).is_some_and(|(w, _)| w == near))
        })
        .map(|r| r.id.to_string())
        .collect();
    Some((near, ids))
}

/// A deny rule's own action or resource type that no allow rule, permission or route names, one
/// or two edits from one they name (`docs:delte` where routes and grants say `docs:delete`;
/// `Documnet`, `document`): the deny would never apply to what it was written for.
fn deny_look_alikes(cx: &mut Ctx<'_>, policy: &Policy, reported: &[(String, String)]) {
    let mut actions: Vec<&str> = Vec::new();
    let mut types: Vec<&str> = Vec::new();
    let exact = |a: &str| matches!(Pattern::parse(a), Ok(Pattern::Exact(_)));
    for def in policy.roles.values() {
        actions.extend(def.permissions.iter().map(|p| p.get_ref().as_str()));
    }
    for rule in policy.rules.iter().filter(|r| r.effect == Effect::Allow) {
        actions.extend(rule.actions.iter().map(|a| a.get_ref().as_str()));
        types.extend(rule.resources.iter().map(|t| t.get_ref().as_str()));
    }
    for route in &policy.routes {
        actions.extend(route.action.iter().map(|a| a.get_ref().as_str()));
        types.extend(route.resource.iter().map(|t| t.get_ref().as_str()));
    }
    actions.retain(|a| exact(a));
    actions.sort_unstable();
    actions.dedup();
    types.sort_unstable();
    types.dedup();
    for rule in policy.rules.iter().filter(|r| r.effect == Effect::Deny) {
        let id = rule.id.get_ref();
        for a in &rule.actions {
            let name = a.get_ref().as_str();
            if !exact(name) || actions.contains(&name) {
                continue;
            }
            if let Some(near) = look_alike(name, actions.iter().copied())
                && !reported.iter().any(|(r, d)| r == near && d == name)
            {
                cx.error(
                    PolicyErrorKind::UnknownAction,
                    Some(a.span()),
                    format!(
                        "deny rule `{id}` names action `{name}`, which no allow rule, permission \
                         or route names; did you mean `{near}`?"
                    ),
                    Some(format!(
                        "this deny never applies to `{near}`; fix the name, or name `{name}` in \
                         an allow rule, permission or route if it is an action of its own"
                    )),
                );
            }
        }
        for t in &rule.resources {
            let name = t.get_ref().as_str();
            if !is_type_name(name) || types.contains(&name) {
                continue;
            }
            if let Some(near) = look_alike(name, types.iter().copied()) {
                cx.error(
                    PolicyErrorKind::UnknownResourceType,
                    Some(t.span()),
                    format!(
                        "deny rule `{id}` names resource type `{name}`, which no allow rule or \
                         route names; did you mean `{near}`?"
                    ),
                    Some(format!(
                        "this deny never applies to `{near}`; fix the name, or name `{name}` in \
                         an allow rule or route if it is a type of its own"
                    )),
                );
            }
        }
    }
}

fn note_pattern(p: &Pattern, mentioned: &mut HashSet<String>) {
    if let Pattern::Exact(a) = p {
        mentioned.insert(a.to_string());
    }
}

fn known_roles_help(roles: &[&Spanned<String>]) -> String {
    if roles.is_empty() {
        "the policy defines no roles; add a `[roles.NAME]` table".into()
    } else {
        let names: Vec<&str> = roles.iter().map(|r| r.get_ref().as_str()).collect();
        format!("defined roles are: {}", names.join(", "))
    }
}

/// The values `weekday()` gives.
const WEEKDAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
/// The values `principal.kind` takes.
const PRINCIPAL_KINDS: [&str; 3] = ["user", "service", "device"];

/// Why `l op r` can never hold, when one side has a fixed domain (`weekday()`, `hour()`,
/// `principal.kind`, `context.peer_ip`: one address) and the other is a literal outside it: a typo (`"Sun"`, `"Service"`,
/// `hour() >= 24`) would compile into a condition no request meets, and a deny with it would
/// never fire.
fn never_true(op: CmpOp, l: &CExpr, r: &CExpr) -> Option<String> {
    // The domain side first; flip the comparison when the literal is on the left.
    let (op, domain, lit) = match (l, r) {
        (_, CExpr::Const(lit)) => (op, l, lit),
        (CExpr::Const(lit), _) => (
            match op {
                CmpOp::Lt => CmpOp::Gt,
                CmpOp::Le => CmpOp::Ge,
                CmpOp::Gt => CmpOp::Lt,
                CmpOp::Ge => CmpOp::Le,
                same => same,
            },
            r,
            lit,
        ),
        _ => return None,
    };
    if let (CExpr::Get(Attr::ContextPeerIp), Lit::Ip(net), CmpOp::Eq | CmpOp::Ne) =
        (domain, lit, op)
        && net.prefix_len() < net.max_prefix_len()
    {
        // The peer is one address (a /32 or /128), never equal to a network.
        return Some(format!(
            "`context.peer_ip` is one address, never the network `{net}`: the comparison {}; \
             test membership with `context.peer_ip.isInRange(ip(\"{net}\"))`",
            if op == CmpOp::Eq {
                "never holds"
            } else {
                "always holds"
            }
        ));
    }
    let names: &[&str] = match (domain, lit) {
        (CExpr::Weekday(_), Lit::Str(_)) => &WEEKDAY_NAMES,
        (CExpr::Get(Attr::PrincipalKind), Lit::Str(_)) => &PRINCIPAL_KINDS,
        (CExpr::Hour(_), Lit::Long(n)) => {
            let holds = |h: i64| match op {
                CmpOp::Eq => h == *n,
                CmpOp::Ne => h != *n,
                CmpOp::Lt => h < *n,
                CmpOp::Le => h <= *n,
                CmpOp::Gt => h > *n,
                CmpOp::Ge => h >= *n,
            };
            if (0..24).contains(n) {
                return (!(0..24).any(holds))
                    .then(|| format!("`hour()` is 0 to 23: this comparison with {n} never holds"));
            }
            // A literal out of range (`hour() != 24`, `hour() < 24`): the comparison never or
            // always holds, as with a weekday outside the week.
            return Some(format!(
                "`hour()` is 0 to 23: this comparison with {n} {}",
                if (0..24).any(holds) {
                    "always holds"
                } else {
                    "never holds"
                }
            ));
        }
        _ => return None,
    };
    match (op, lit) {
        (CmpOp::Eq | CmpOp::Ne, Lit::Str(v)) if !names.contains(&&**v) => Some(format!(
            "`{v}` is never the value compared (it is one of {}): the comparison {}",
            names.join(", "),
            if op == CmpOp::Eq {
                "never holds"
            } else {
                "always holds"
            }
        )),
        _ => None,
    }
}

/// Whether `s` can name a resource type: non-empty printable ASCII, without whitespace or `*`
/// (an invisible or look-alike character would make another type that reads the same).
fn is_type_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && b != b'*')
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The `{name}` parameters of a route template, also inside a segment (`/files/{id}.json`),
/// and `:name`, `*name` and `{*name}`.
fn template_params(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    for seg in template.split('/') {
        if let Some(name) = seg.strip_prefix(':').or_else(|| seg.strip_prefix('*')) {
            out.push(name.to_owned());
            continue;
        }
        let mut rest = seg;
        while let Some((_, after)) = rest.split_once('{') {
            let Some((inner, tail)) = after.split_once('}') else {
                break;
            };
            let inner = inner.trim_start_matches('*');
            out.push(inner.split(':').next().unwrap_or(inner).to_owned());
            rest = tail;
        }
    }
    out
}

/// A cycle in the parent graph, as role indices (first repeated at the end), if any.
fn find_cycle(parents: &[Vec<u32>]) -> Option<Vec<u32>> {
    // 0 = unvisited, 1 = on the stack, 2 = done. Iterative to bound stack use.
    let mut state = vec![0u8; parents.len()];
    for start in 0..parents.len() {
        if state.get(start) != Some(&0) {
            continue;
        }
        let mut path: Vec<(u32, usize)> = vec![(u32::try_from(start).unwrap_or(u32::MAX), 0)];
        if let Some(s) = state.get_mut(start) {
            *s = 1;
        }
        while let Some(&mut (node, ref mut next)) = path.last_mut() {
            let children = parents.get(node as usize).map_or(&[][..], Vec::as_slice);
            if let Some(&child) = children.get(*next) {
                *next += 1;
                match state.get(child as usize) {
                    Some(0) => {
                        if let Some(s) = state.get_mut(child as usize) {
                            *s = 1;
                        }
                        path.push((child, 0));
                    }
                    Some(1) => {
                        let from = path.iter().position(|(n, _)| *n == child).unwrap_or(0);
                        let mut cycle: Vec<u32> = path
                            .get(from..)
                            .unwrap_or_default()
                            .iter()
                            .map(|(n, _)| *n)
                            .collect();
                        cycle.push(child);
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                if let Some(s) = state.get_mut(node as usize) {
                    *s = 2;
                }
                path.pop();
            }
        }
    }
    None
}

fn of(schema: &[BTreeMap<String, (Ty, u8)>; 3], root: Root) -> &BTreeMap<String, (Ty, u8)> {
    let [p, r, c] = schema;
    match root {
        Root::Principal => p,
        Root::Resource => r,
        Root::Context => c,
    }
}

fn of_mut(
    schema: &mut [BTreeMap<String, (Ty, u8)>; 3],
    root: Root,
) -> &mut BTreeMap<String, (Ty, u8)> {
    let [p, r, c] = schema;
    match root {
        Root::Principal => p,
        Root::Resource => r,
        Root::Context => c,
    }
}

/// Built-in attributes: what `root.name` reads, its type, and whether it may be absent.
fn builtin(root: Root, name: &str) -> Option<(Attr, Ty, bool)> {
    use Scalar::*;
    Some(match (root, name) {
        (Root::Principal, "id") => (Attr::PrincipalId, Ty::One(Str), false),
        (Root::Principal, "kind") => (Attr::PrincipalKind, Ty::One(Str), false),
        (Root::Principal, "issuer") => (Attr::PrincipalIssuer, Ty::One(Str), false),
        (Root::Principal, "tenant") => (Attr::PrincipalTenant, Ty::One(Str), true),
        (Root::Principal, "roles") => (Attr::PrincipalRoles, Ty::Set(Str), false),
        (Root::Principal, "scopes") => (Attr::PrincipalScopes, Ty::Set(Str), false),
        (Root::Principal, "mfa") => (Attr::PrincipalMfa, Ty::One(Bool), false),
        (Root::Principal, "amr") => (Attr::PrincipalAmr, Ty::Set(Str), false),
        (Root::Resource, "type") => (Attr::ResourceType, Ty::One(Str), false),
        (Root::Resource, "id") => (Attr::ResourceId, Ty::One(Str), true),
        (Root::Context, "peer_ip") => (Attr::ContextPeerIp, Ty::One(Ip), true),
        (Root::Context, "time") => (Attr::ContextTime, Ty::One(Time), false),
        _ => return None,
    })
}

fn compile_condition(cx: &mut Ctx<'_>, cond: &Spanned<String>, negate: bool, out: &mut Vec<Cond>) {
    let text = cond.get_ref();
    let outer = cond.span();
    let file_span = |r: Range<usize>| inner_span(cx.text, outer.clone(), r);
    let parsed = match expr::parse(text) {
        Ok(e) => e,
        Err(e) => {
            let span = file_span(e.span.clone());
            cx.error(
                PolicyErrorKind::InvalidCondition,
                Some(span),
                format!("cannot parse condition: {}", e.message),
                Some("see the condition language in docs/policy.md".into()),
            );
            return;
        }
    };
    let mut errs: Vec<(PolicyErrorKind, Range<usize>, String, Option<String>)> = Vec::new();
    let mut type_literals = Vec::new();
    let parts = if negate {
        vec![parsed]
    } else {
        expr::conjuncts(parsed)
    };
    for part in parts {
        let part_text = text.get(part.span.clone()).unwrap_or(text).trim();
        let mut checker = Checker {
            schema: &cx.schema,
            role_ids: cx.role_ids,
            errs: &mut errs,
            type_literals: &mut type_literals,
        };
        let Some((ce, ty)) = checker.check(&part) else {
            continue;
        };
        if ty != Ty::One(Scalar::Bool) {
            errs.push((
                PolicyErrorKind::TypeMismatch,
                part.span.clone(),
                format!("a condition must be a bool, this is a {ty}"),
                None,
            ));
            continue;
        }
        let (expr, text) = if negate {
            (CExpr::Not(Box::new(ce)), format!("unless {part_text}"))
        } else {
            (ce, part_text.to_owned())
        };
        out.push(Cond {
            expr,
            text: text.into(),
        });
    }
    for (kind, span, message, help) in errs {
        let span = file_span(span);
        cx.error(kind, Some(span), message, help);
    }
    for (span, name) in type_literals {
        cx.type_literals.push((file_span(span), name));
    }
}

type CheckErr = (PolicyErrorKind, Range<usize>, String, Option<String>);

struct Checker<'a, 'b> {
    schema: &'a [BTreeMap<String, (Ty, u8)>; 3],
    role_ids: &'a NameMap<u32>,
    errs: &'b mut Vec<CheckErr>,
    /// See [`Ctx::type_literals`] (spans in the condition's text).
    type_literals: &'b mut Vec<(Range<usize>, Box<str>)>,
}

impl Checker<'_, '_> {
    fn mismatch(&mut self, span: &Range<usize>, message: String) -> Option<(CExpr, Ty)> {
        self.errs
            .push((PolicyErrorKind::TypeMismatch, span.clone(), message, None));
        None
    }

    fn attr(&mut self, root: Root, name: &str, span: &Range<usize>) -> Option<(Attr, Ty)> {
        if let Some((a, t, _)) = builtin(root, name) {
            return Some((a, t));
        }
        let Some(&(ty, slot)) = of(self.schema, root).get(name) else {
            let declared: Vec<&str> = of(self.schema, root).keys().map(String::as_str).collect();
            self.errs.push((
                PolicyErrorKind::UnknownAttribute,
                span.clone(),
                format!("unknown attribute `{}.{name}`", root.as_str()),
                Some(format!(
                    "declare it under `[schema.{}]`{}",
                    root.as_str(),
                    if declared.is_empty() {
                        String::new()
                    } else {
                        format!("; declared: {}", declared.join(", "))
                    }
                )),
            ));
            return None;
        };
        let n: Box<str> = name.into();
        Some(match root {
            Root::Principal => (Attr::Principal(n, ty, slot), ty),
            Root::Resource => (Attr::Resource(n, ty, slot), ty),
            Root::Context => (Attr::Context(n, ty, slot), ty),
        })
    }

    fn bool_operand(&mut self, e: &Expr) -> Option<CExpr> {
        let (c, t) = self.check(e)?;
        if t != Ty::One(Scalar::Bool) {
            return self
                .mismatch(&e.span, format!("expected a bool, found a {t}"))
                .map(|(c, _)| c);
        }
        Some(c)
    }

    fn check(&mut self, e: &Expr) -> Option<(CExpr, Ty)> {
        use Scalar::*;
        match &e.kind {
            ExprKind::Bool(b) => Some((CExpr::Const(Lit::Bool(*b)), Ty::One(Bool))),
            ExprKind::Long(n) => Some((CExpr::Const(Lit::Long(*n)), Ty::One(Long))),
            ExprKind::Str(s) => Some((CExpr::Const(Lit::Str(s.as_str().into())), Ty::One(Str))),
            ExprKind::Var(root) => self.mismatch(
                &e.span,
                format!(
                    "`{}` cannot be used as a value; read one of its attributes, e.g. `{}`",
                    root.as_str(),
                    match root {
                        Root::Principal => "principal.id",
                        Root::Resource => "resource.id",
                        Root::Context => "context.time",
                    }
                ),
            ),
            ExprKind::Attr(base, name) => {
                let ExprKind::Var(root) = base.kind else {
                    self.errs.push((
                        PolicyErrorKind::UnknownAttribute,
                        e.span.clone(),
                        format!("`.{name}` cannot be read here: only attributes of `principal`, `resource` and `context` can be read"),
                        None,
                    ));
                    return None;
                };
                let (a, t) = self.attr(root, name, &e.span)?;
                Some((CExpr::Get(a), t))
            }
            ExprKind::Has(base, name) => {
                let ExprKind::Var(root) = base.kind else {
                    return self.mismatch(
                        &base.span,
                        "`has` tests an attribute of `principal`, `resource` or `context`".into(),
                    );
                };
                let (a, _) = self.attr(root, name, &e.span)?;
                let required = builtin(root, name).is_some_and(|(_, _, optional)| !optional);
                Some((
                    if required {
                        CExpr::Const(Lit::Bool(true))
                    } else {
                        CExpr::Has(a)
                    },
                    Ty::One(Bool),
                ))
            }
            ExprKind::Call(f, arg) => {
                let lit = match f.as_str() {
                    "ip" => parse_ip(arg).ok().map(Lit::Ip),
                    "timestamp" => Timestamp::parse_rfc3339(arg)
                        .ok()
                        .map(|t| Lit::Time(t.unix_micros())),
                    "decimal" => arg.parse::<Decimal>().ok().map(|d| Lit::Dec(d.raw())),
                    _ => {
                        self.errs.push((
                            PolicyErrorKind::InvalidCondition,
                            e.span.clone(),
                            format!("unknown function `{f}`"),
                            Some(
                                "functions are ip(\"..\"), timestamp(\"..\") and decimal(\"..\")"
                                    .into(),
                            ),
                        ));
                        return None;
                    }
                };
                let Some(lit) = lit else {
                    self.errs.push((
                        PolicyErrorKind::InvalidCondition,
                        e.span.clone(),
                        format!("`{arg}` is not a valid {f}"),
                        Some(match f.as_str() {
                            "ip" => "write an IPv4 address without leading zeros, an IPv6 address, or a CIDR range".into(),
                            "timestamp" => "write an RFC 3339 date-time such as 2026-01-31T09:00:00Z".into(),
                            _ => "write digits with at most four after the point, such as 12.5".into(),
                        }),
                    ));
                    return None;
                };
                let ty = match lit {
                    Lit::Ip(_) => Ip,
                    Lit::Time(_) => Time,
                    _ => Dec,
                };
                Some((CExpr::Const(lit), Ty::One(ty)))
            }
            ExprKind::Set(items) => {
                let mut lits = Vec::new();
                let mut elem = Any;
                for item in items {
                    let (c, t) = self.check(item)?;
                    let (CExpr::Const(lit), Ty::One(s)) = (c, t) else {
                        return self
                            .mismatch(&item.span, "set literals hold literal values only".into());
                    };
                    let Some(u) = elem.unify(s) else {
                        return self.mismatch(
                            &item.span,
                            format!(
                                "set elements must have one type: {} and {}",
                                elem.name(),
                                s.name()
                            ),
                        );
                    };
                    elem = u;
                    lits.push(lit);
                }
                Some((CExpr::LitSet(lits), Ty::Set(elem)))
            }
            ExprKind::Not(inner) => {
                let c = self.bool_operand(inner)?;
                Some((CExpr::Not(Box::new(c)), Ty::One(Bool)))
            }
            ExprKind::And(items) | ExprKind::Or(items) => {
                let mut cs = Vec::new();
                let mut ok = true;
                for item in items {
                    match self.bool_operand(item) {
                        Some(c) => cs.push(c),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                Some((
                    if matches!(e.kind, ExprKind::And(_)) {
                        CExpr::And(cs)
                    } else {
                        CExpr::Or(cs)
                    },
                    Ty::One(Bool),
                ))
            }
            ExprKind::Cmp(op, l, r) => {
                let (lc, lt) = self.check(l)?;
                let (rc, rt) = self.check(r)?;
                let (Ty::One(ls), Ty::One(rs)) = (lt, rt) else {
                    return self.mismatch(
                        &e.span,
                        format!("cannot compare a {lt} with a {rt}: sets are compared with `containsAll`"),
                    );
                };
                let Some(s) = ls.unify(rs) else {
                    return self.mismatch(&e.span, format!("cannot compare a {lt} with a {rt}"));
                };
                if !matches!(op, CmpOp::Eq | CmpOp::Ne) && !matches!(s, Long | Time | Dec) {
                    return self.mismatch(
                        &e.span,
                        format!("`<`, `<=`, `>` and `>=` compare longs, decimals or timestamps, not a {lt}"),
                    );
                }
                if let Some(why) = never_true(*op, &lc, &rc) {
                    return self.mismatch(&e.span, why);
                }
                if let (CExpr::Get(Attr::ResourceType), CExpr::Const(Lit::Str(t)))
                | (CExpr::Const(Lit::Str(t)), CExpr::Get(Attr::ResourceType)) = (&lc, &rc)
                {
                    self.type_literals.push((e.span.clone(), t.clone()));
                }
                Some((CExpr::Cmp(*op, Box::new(lc), Box::new(rc)), Ty::One(Bool)))
            }
            ExprKind::In(l, r) => {
                let (lc, lt) = self.check(l)?;
                let (rc, rt) = self.check(r)?;
                self.membership(e, lc, lt, rc, rt)
            }
            ExprKind::Like(l, pattern) => {
                let (lc, lt) = self.check(l)?;
                if lt != Ty::One(Str) {
                    return self.mismatch(&l.span, format!("`like` matches strings, not a {lt}"));
                }
                let glob = Glob::new(pattern);
                let names: &[&str] = match lc {
                    CExpr::Weekday(_) => &WEEKDAY_NAMES,
                    CExpr::Get(Attr::PrincipalKind) => &PRINCIPAL_KINDS,
                    _ => &[],
                };
                if !names.is_empty() && !names.iter().any(|n| glob.matches(n)) {
                    // `weekday() like "S*"` (the values are lowercase) never holds.
                    return self.mismatch(
                        &e.span,
                        format!(
                            "`{pattern}` matches none of the values compared ({}): the \
                             comparison never holds",
                            names.join(", ")
                        ),
                    );
                }
                Some((CExpr::Like(Box::new(lc), glob), Ty::One(Bool)))
            }
            ExprKind::Method(base, name, args) => {
                let (bc, bt) = self.check(base)?;
                let mut checked = Vec::new();
                for a in args {
                    checked.push(self.check(a)?);
                }
                let arity = |n: usize, errs: &mut Vec<CheckErr>| {
                    if args.len() == n {
                        true
                    } else {
                        errs.push((
                            PolicyErrorKind::TypeMismatch,
                            e.span.clone(),
                            format!(
                                "`{name}` takes {n} argument{}",
                                if n == 1 { "" } else { "s" }
                            ),
                            None,
                        ));
                        false
                    }
                };
                match name.as_str() {
                    "contains" => {
                        if !arity(1, self.errs) {
                            return None;
                        }
                        let (ac, at) = checked.pop()?;
                        self.membership(e, ac, at, bc, bt)
                    }
                    "containsAll" | "containsAny" => {
                        if !arity(1, self.errs) {
                            return None;
                        }
                        let (ac, at) = checked.pop()?;
                        let (Ty::Set(x), Ty::Set(y)) = (bt, at) else {
                            return self.mismatch(
                                &e.span,
                                format!("`{name}` relates two sets, not a {bt} and a {at}"),
                            );
                        };
                        if x.unify(y).is_none() {
                            return self
                                .mismatch(&e.span, format!("cannot relate a {bt} and a {at}"));
                        }
                        // Role names written in the policy are checked against `[roles]` here
                        // as in `contains`: a typo must not compile into a test no token fails.
                        if !self.known_roles_in(e, &bc, &ac) || !self.known_roles_in(e, &ac, &bc) {
                            return None;
                        }
                        let (b, a) = (Box::new(bc), Box::new(ac));
                        Some((
                            if name == "containsAll" {
                                CExpr::ContainsAll(b, a)
                            } else {
                                CExpr::ContainsAny(b, a)
                            },
                            Ty::One(Bool),
                        ))
                    }
                    "isInRange" => {
                        if !arity(1, self.errs) {
                            return None;
                        }
                        let (ac, at) = checked.pop()?;
                        if bt != Ty::One(Ip) || at != Ty::One(Ip) {
                            return self.mismatch(
                                &e.span,
                                format!("`isInRange` takes ip addresses, not a {bt} and a {at}"),
                            );
                        }
                        Some((CExpr::InRange(Box::new(bc), Box::new(ac)), Ty::One(Bool)))
                    }
                    "hour" | "weekday" => {
                        if !arity(0, self.errs) {
                            return None;
                        }
                        if bt != Ty::One(Time) {
                            return self.mismatch(
                                &e.span,
                                format!("`{name}` is a method of timestamps, not of a {bt}"),
                            );
                        }
                        Some(if name == "hour" {
                            (CExpr::Hour(Box::new(bc)), Ty::One(Long))
                        } else {
                            (CExpr::Weekday(Box::new(bc)), Ty::One(Str))
                        })
                    }
                    _ => {
                        self.errs.push((
                            PolicyErrorKind::InvalidCondition,
                            e.span.clone(),
                            format!("unknown method `{name}`"),
                            Some("methods are contains, containsAll, containsAny, isInRange, hour and weekday".into()),
                        ));
                        None
                    }
                }
            }
        }
    }

    /// When `roles` is `principal.roles` and `names` a literal set: whether every name is a role
    /// of `[roles]` (each unknown one is reported).
    fn known_roles_in(&mut self, e: &Expr, roles: &CExpr, names: &CExpr) -> bool {
        let (CExpr::Get(Attr::PrincipalRoles), CExpr::LitSet(names)) = (roles, names) else {
            return true;
        };
        let mut known = true;
        for name in names {
            if let Lit::Str(role) = name
                && !self.role_ids.contains_key(&**role)
            {
                self.errs.push((
                    PolicyErrorKind::UnknownRole,
                    e.span.clone(),
                    format!("unknown role `{role}`"),
                    Some("the role must be defined under `[roles]`".into()),
                ));
                known = false;
            }
        }
        known
    }

    /// `elem in set` / `set.contains(elem)`.
    fn membership(
        &mut self,
        e: &Expr,
        ec: CExpr,
        et: Ty,
        sc: CExpr,
        st: Ty,
    ) -> Option<(CExpr, Ty)> {
        let (Ty::One(x), Ty::Set(y)) = (et, st) else {
            return self.mismatch(
                &e.span,
                format!("membership tests a value in a set, not a {et} in a {st}"),
            );
        };
        if x.unify(y).is_none() {
            return self.mismatch(&e.span, format!("a {et} is never in a {st}"));
        }
        if let CExpr::LitSet(items) = &sc
            && let Some(why) = items
                .iter()
                .find_map(|l| never_true(CmpOp::Eq, &ec, &CExpr::Const(l.clone())))
        {
            return self.mismatch(&e.span, why);
        }
        if let (CExpr::Get(Attr::ResourceType), CExpr::LitSet(items)) = (&ec, &sc) {
            for item in items {
                if let Lit::Str(t) = item {
                    self.type_literals.push((e.span.clone(), t.clone()));
                }
            }
        }
        // `principal.roles.contains("admin")` with a known role: a bit test.
        if let (CExpr::Get(Attr::PrincipalRoles), CExpr::Const(Lit::Str(role))) = (&sc, &ec)
            && let Some(&id) = self.role_ids.get(&**role)
        {
            return Some((CExpr::HasRole(id), Ty::One(Scalar::Bool)));
        }
        if let (CExpr::Get(Attr::PrincipalRoles), CExpr::Const(Lit::Str(role))) = (&sc, &ec) {
            self.errs.push((
                PolicyErrorKind::UnknownRole,
                e.span.clone(),
                format!("unknown role `{role}`"),
                Some("the role must be defined under `[roles]`".into()),
            ));
            return None;
        }
        Some((CExpr::In(Box::new(ec), Box::new(sc)), Ty::One(Scalar::Bool)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matching_is_exact_and_linear() {
        let g = Glob::new("docs/*/v*");
        assert!(g.matches("docs/a/v1"));
        assert!(g.matches("docs//v"));
        assert!(!g.matches("docs/a/x1"));
        assert!(Glob::new("abc").matches("abc"));
        assert!(!Glob::new("abc").matches("abcd"));
        assert!(Glob::new("*").matches(""));
        assert!(Glob::new("a*a").matches("aa"));
        assert!(!Glob::new("a*a").matches("a"));
        // The classic backtracking killer finishes at once.
        let text = "a".repeat(100_000);
        let pat = format!("{}b", "a*".repeat(1000));
        assert!(!Glob::new(&pat).matches(&text));
    }

    #[test]
    fn action_patterns() {
        assert_eq!(Pattern::parse("*"), Ok(Pattern::Any));
        let p = Pattern::parse("docs:*").unwrap();
        assert!(p.matches("docs:read"));
        assert!(p.matches("docs:admin:purge"));
        assert!(!p.matches("docs:"));
        assert!(!p.matches("docs"));
        assert!(!p.matches("docsx:read"));
        for bad in ["docs*", "*:read", "do*cs:read", "", "a b", ":*"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn template_parameters() {
        assert_eq!(template_params("/docs/{id}/v/{ver}"), ["id", "ver"]);
        assert_eq!(template_params("/files/{*path}"), ["path"]);
        assert_eq!(template_params("/u/:name"), ["name"]);
        // Inside a segment too, so a repeated name there is caught and `id = "id"` is known.
        assert_eq!(template_params("/files/{id}.json"), ["id"]);
        assert_eq!(template_params("/u/{id}/d/v{id}"), ["id", "id"]);
        assert_eq!(template_params("/f/{id}.{ext}"), ["id", "ext"]);
        assert_eq!(template_params(r"/n/{id:\d{3}}"), ["id"]);
    }

    #[test]
    fn cycles_are_found() {
        assert_eq!(find_cycle(&[vec![1], vec![2], vec![]]), None);
        let c = find_cycle(&[vec![1], vec![2], vec![0]]).unwrap();
        assert_eq!(c.first(), c.last());
        assert_eq!(c.len(), 4);
        assert!(find_cycle(&[vec![0]]).is_some());
    }
}
