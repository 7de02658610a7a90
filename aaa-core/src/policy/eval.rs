//! Evaluating compiled conditions and rules against one request, without allocating.

use std::{
    cell::{Cell, OnceCell},
    collections::BTreeSet,
};

use ipnet::IpNet;

use super::{
    PolicySet,
    compile::{Attr, CExpr, CRule, Lit, Scalar, Ty},
    expr::CmpOp,
};
use crate::{Context, Principal, Resource, Value, value::parse_ip};

/// The roles a principal has after inheritance, as a bitset over the policy's roles.
pub(crate) enum RoleMask {
    Inline([u64; 4]),
    Heap(Vec<u64>),
}

impl RoleMask {
    pub(crate) fn has(&self, role: u32) -> bool {
        let (w, b) = ((role / 64) as usize, role % 64);
        let word = match self {
            RoleMask::Inline(words) => words.get(w),
            RoleMask::Heap(words) => words.get(w),
        };
        word.is_some_and(|x| x & (1 << b) != 0)
    }
}

impl PolicySet {
    /// The principal's role mask. Allocates only for policies of more than 256 roles.
    pub(crate) fn role_mask(&self, principal: &Principal) -> RoleMask {
        let words = self.roles.first().map_or(1, |r| r.closure.len());
        let mut mask = if words <= 4 {
            RoleMask::Inline([0; 4])
        } else {
            RoleMask::Heap(vec![0; words])
        };
        let slots: &mut [u64] = match &mut mask {
            RoleMask::Inline(a) => a,
            RoleMask::Heap(v) => v,
        };
        for role in &principal.roles {
            // Few roles: a scan (length first) beats hashing the name.
            let info = if self.roles.len() <= 8 {
                self.roles.iter().find(|r| *r.name == **role)
            } else {
                self.role_ids
                    .get(role.as_str())
                    .and_then(|&id| self.roles.get(id as usize))
            };
            if let Some(info) = info {
                for (slot, bits) in slots.iter_mut().zip(&info.closure) {
                    *slot |= bits;
                }
            }
        }
        mask
    }
}

/// Sets of up to this many elements are scanned for a member; larger ones are searched.
const SCAN_UP_TO: usize = 8;

/// How many declared attributes are cached per request; more are looked up each time.
pub(crate) const SLOTS: usize = 16;

/// A cached attribute lookup.
#[derive(Clone, Copy)]
pub(crate) enum Slot<'a> {
    Unknown,
    Missing,
    Found(&'a Value),
    /// Found, a set, and every element already checked against the declared element type (a
    /// large set is checked once per request however many conditions read it).
    CheckedSet(&'a Value, Scalar),
}

/// Everything a condition can read.
pub(crate) struct Req<'a> {
    pub(crate) policy: &'a PolicySet,
    pub(crate) principal: &'a Principal,
    pub(crate) resource: &'a Resource,
    pub(crate) context: &'a Context,
    /// The principal's roles after inheritance, computed when a rule first needs them.
    pub(crate) roles: OnceCell<RoleMask>,
    /// Declared attributes already looked up in this request (several rules read the same).
    pub(crate) cache: [Cell<Slot<'a>>; SLOTS],
    /// The fault of the last condition that failed to evaluate.
    pub(crate) fault: Cell<Option<Fault<'a>>>,
}

/// Why a condition could not be evaluated. Never grants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Fault<'p> {
    Missing(&'p Attr),
    WrongType(&'p Attr),
    InvalidIp(&'p Attr),
    Overflow,
}

impl Fault<'_> {
    pub(crate) fn message(&self) -> String {
        match self {
            Fault::Missing(a) => format!("missing attribute `{}`", a.path()),
            Fault::WrongType(a) => format!("attribute `{}` has the wrong type", a.path()),
            Fault::InvalidIp(a) if a.is_set() => format!(
                "attribute `{}` holds an element that is not a valid ip address",
                a.path()
            ),
            Fault::InvalidIp(a) => format!("attribute `{}` is not a valid ip address", a.path()),
            Fault::Overflow => "arithmetic out of range".to_owned(),
        }
    }
}

/// A value during evaluation; borrows from the request or the policy.
#[derive(Clone, Copy)]
pub(crate) enum V<'a> {
    Bool(bool),
    Long(i64),
    Str(&'a str),
    Ip(IpNet),
    Time(i64),
    Dec(i64),
    Strs(&'a BTreeSet<String>),
    Roles,
    /// A declared `set<T>` attribute whose elements were all checked against `T` when read.
    Values(&'a BTreeSet<Value>, Scalar),
    Lits(&'a [Lit]),
}

fn lit_v(l: &Lit) -> V<'_> {
    match l {
        Lit::Bool(b) => V::Bool(*b),
        Lit::Long(n) => V::Long(*n),
        Lit::Str(s) => V::Str(s),
        Lit::Ip(ip) => V::Ip(*ip),
        Lit::Time(t) => V::Time(*t),
        Lit::Dec(d) => V::Dec(*d),
    }
}

fn scalar_eq(a: V<'_>, b: V<'_>) -> bool {
    match (a, b) {
        (V::Bool(x), V::Bool(y)) => x == y,
        (V::Long(x), V::Long(y)) | (V::Time(x), V::Time(y)) | (V::Dec(x), V::Dec(y)) => x == y,
        (V::Str(x), V::Str(y)) => x == y,
        (V::Ip(x), V::Ip(y)) => x == y,
        _ => false,
    }
}

/// Why a value does not have a scalar type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mistyped {
    WrongType,
    InvalidIp,
}

/// A value checked against the scalar type `ty`. An `ip` may be given as a string, parsed
/// strictly; nothing else is converted.
fn scalar_of(v: &Value, ty: Scalar) -> Result<V<'_>, Mistyped> {
    match (ty, v) {
        (Scalar::Ip, Value::String(s)) => parse_ip(s).map(V::Ip).map_err(|_| Mistyped::InvalidIp),
        (Scalar::Str, Value::String(s)) => Ok(V::Str(s)),
        (Scalar::Bool, Value::Bool(b)) => Ok(V::Bool(*b)),
        (Scalar::Long, Value::Long(n)) => Ok(V::Long(*n)),
        (Scalar::Dec, Value::Decimal(d)) => Ok(V::Dec(d.raw())),
        (Scalar::Ip, Value::Ip(ip)) => Ok(V::Ip(*ip)),
        (Scalar::Time, Value::Timestamp(t)) => Ok(V::Time(t.unix_micros())),
        // `Any` is the element type of `[]` only, never a declared type.
        _ => Err(Mistyped::WrongType),
    }
}

/// Whether some element of `set`, as a value of type `ty`, equals `x`.
fn holds_equal<'v>(mut set: impl Iterator<Item = &'v Value>, ty: Scalar, x: V<'_>) -> bool {
    set.any(|v| scalar_of(v, ty).is_ok_and(|v| scalar_eq(v, x)))
}

/// A request attribute checked against its declared type. A set is checked element by element,
/// as a scalar of its element type would be: one element of another type (or a nested set or
/// record) makes the whole attribute the wrong type.
fn typed<'a, 'p>(v: &'a Value, ty: Ty, attr: &'p Attr) -> Result<V<'a>, Fault<'p>> {
    let fault = |m: Mistyped| match m {
        Mistyped::WrongType => Fault::WrongType(attr),
        Mistyped::InvalidIp => Fault::InvalidIp(attr),
    };
    match (ty, v) {
        (Ty::One(s), v) => scalar_of(v, s).map_err(fault),
        (Ty::Set(s), Value::Set(set)) => {
            for element in set {
                scalar_of(element, s).map_err(fault)?;
            }
            Ok(V::Values(set, s))
        }
        (Ty::Set(_), _) => Err(Fault::WrongType(attr)),
    }
}

impl<'a> Req<'a> {
    fn has_role(&self, role: u32) -> bool {
        self.roles
            .get_or_init(|| self.policy.role_mask(self.principal))
            .has(role)
    }

    /// `map[name]`, through the cache slot `slot`.
    fn lookup(&self, map: &'a crate::Attributes, name: &str, slot: u8) -> Option<&'a Value> {
        let Some(cell) = self.cache.get(usize::from(slot)) else {
            return map.get(name);
        };
        match cell.get() {
            Slot::Found(v) | Slot::CheckedSet(v, _) => Some(v),
            Slot::Missing => None,
            Slot::Unknown => {
                let v = map.get(name);
                cell.set(v.map_or(Slot::Missing, Slot::Found));
                v
            }
        }
    }

    /// The declared attribute `name` of `map`, checked against its type `ty`, through the
    /// cache slot `slot` (a set is checked element by element once per request).
    fn read(
        &self,
        map: &'a crate::Attributes,
        name: &str,
        ty: Ty,
        slot: u8,
        a: &'a Attr,
    ) -> Result<V<'a>, Fault<'a>> {
        let cell = self.cache.get(usize::from(slot));
        if let Some(Slot::CheckedSet(Value::Set(set), s)) = cell.map(Cell::get) {
            return Ok(V::Values(set, s));
        }
        let v = self.lookup(map, name, slot).ok_or(Fault::Missing(a))?;
        let checked = typed(v, ty, a)?;
        if let (Some(cell), V::Values(_, s)) = (cell, checked) {
            cell.set(Slot::CheckedSet(v, s));
        }
        Ok(checked)
    }

    fn get(&self, a: &'a Attr) -> Result<V<'a>, Fault<'a>> {
        let p = self.principal;
        Ok(match a {
            Attr::PrincipalId => V::Str(&p.id),
            Attr::PrincipalKind => V::Str(p.kind.as_str()),
            Attr::PrincipalIssuer => V::Str(&p.issuer),
            Attr::PrincipalTenant => V::Str(p.tenant.as_deref().ok_or(Fault::Missing(a))?),
            Attr::PrincipalRoles => V::Roles,
            Attr::PrincipalScopes => V::Strs(&p.scopes),
            Attr::PrincipalMfa => V::Bool(p.auth.mfa),
            Attr::PrincipalAmr => V::Strs(&p.auth.amr),
            Attr::Principal(n, ty, slot) => self.read(&p.attributes, n, *ty, *slot, a)?,
            Attr::ResourceType => V::Str(&self.resource.resource_type),
            Attr::ResourceId => V::Str(self.resource.id.as_deref().ok_or(Fault::Missing(a))?),
            Attr::Resource(n, ty, slot) => {
                self.read(&self.resource.attributes, n, *ty, *slot, a)?
            }
            // As given: an IPv4-mapped address is IPv6 here, as in Cedar (the docs-service
            // workload's expected decisions say so). The guard hands over a connection's peer
            // canonicalized, a dual-stack socket reporting IPv4 clients so.
            Attr::ContextPeerIp => {
                V::Ip(IpNet::from(self.context.peer_ip.ok_or(Fault::Missing(a))?))
            }
            Attr::ContextTime => V::Time(self.context.time.unix_micros()),
            Attr::Context(n, ty, slot) => self.read(&self.context.attributes, n, *ty, *slot, a)?,
        })
    }

    fn has(&self, a: &Attr) -> bool {
        match a {
            Attr::PrincipalTenant => self.principal.tenant.is_some(),
            Attr::Principal(n, _, slot) => {
                self.lookup(&self.principal.attributes, n, *slot).is_some()
            }
            Attr::ResourceId => self.resource.id.is_some(),
            Attr::Resource(n, _, slot) => {
                self.lookup(&self.resource.attributes, n, *slot).is_some()
            }
            Attr::ContextPeerIp => self.context.peer_ip.is_some(),
            Attr::Context(n, _, slot) => self.lookup(&self.context.attributes, n, *slot).is_some(),
            _ => true,
        }
    }

    /// Whether `set` holds `x`.
    fn contains(&self, set: V<'_>, x: V<'_>) -> bool {
        match set {
            V::Strs(s) => matches!(x, V::Str(x) if s.contains(x)),
            // The roles the policy defines that the principal holds, inherited ones included:
            // a role the policy does not define grants nothing, also when a condition compares
            // `principal.roles` with a name taken from an attribute.
            V::Roles => match x {
                V::Str(name) => self
                    .policy
                    .role_ids
                    .get(name)
                    .is_some_and(|&id| self.has_role(id)),
                _ => false,
            },
            V::Values(s, ty) => {
                // The set's elements were checked against `ty` when it was read, so an element
                // equal to `x` is the value `x` would be: a large set is searched, not scanned.
                // An `ip` set may also hold strings (parsed on comparison); they sort first.
                match (ty, x) {
                    _ if s.len() <= SCAN_UP_TO => holds_equal(s.iter(), ty, x),
                    (Scalar::Str, V::Str(x)) => s.contains(&Value::String(x.to_owned())),
                    (Scalar::Long, V::Long(n)) => s.contains(&Value::Long(n)),
                    (Scalar::Bool, V::Bool(b)) => s.contains(&Value::Bool(b)),
                    (Scalar::Ip, V::Ip(ip)) => {
                        s.contains(&Value::Ip(ip))
                            || holds_equal(s.range(..Value::Bool(false)), ty, x)
                    }
                    _ => holds_equal(s.iter(), ty, x),
                }
            }
            V::Lits(s) => s.iter().any(|l| scalar_eq(lit_v(l), x)),
            _ => false,
        }
    }

    /// Whether `set` holds every element of `other` (true for an empty `other`).
    fn contains_all(&self, set: V<'_>, other: V<'_>) -> bool {
        // An element that cannot be compared is not contained: the answer is `false`.
        !self.any_element(other, |x| !self.contains(set, x), true)
    }

    /// Whether `set` holds some element of `other` (false for an empty `other`).
    fn contains_any(&self, set: V<'_>, other: V<'_>) -> bool {
        // An element that cannot be compared is in no set: it never makes the answer `true`.
        self.any_element(other, |x| self.contains(set, x), false)
    }

    /// Whether `f` holds for some element of `set`, stopping at the first. An element that is
    /// not a value of the set's element type (checked when the attribute was read, so only a
    /// defect could let one through), or a `set` that is not a set, counts as `uncomparable`
    /// without calling `f`: the caller says which answer fails closed.
    fn any_element(
        &self,
        set: V<'_>,
        mut f: impl FnMut(V<'_>) -> bool,
        uncomparable: bool,
    ) -> bool {
        match set {
            V::Strs(s) => s.iter().any(|x| f(V::Str(x))),
            // As in `contains`: the defined roles the principal holds, never a token's unknown ones.
            V::Roles => self
                .policy
                .roles
                .iter()
                .enumerate()
                .filter(|(i, _)| self.has_role(u32::try_from(*i).unwrap_or(u32::MAX)))
                .any(|(_, r)| f(V::Str(&r.name))),
            V::Values(s, ty) => s.iter().any(|v| match scalar_of(v, ty) {
                Ok(x) => f(x),
                Err(_) => uncomparable,
            }),
            V::Lits(s) => s.iter().any(|l| f(lit_v(l))),
            // Not a set: the type checker never lets one through.
            _ => uncomparable,
        }
    }

    pub(crate) fn eval(&self, e: &'a CExpr) -> Result<V<'a>, Fault<'a>> {
        Ok(match e {
            CExpr::Const(l) => lit_v(l),
            CExpr::LitSet(ls) => V::Lits(ls),
            CExpr::Get(a) => self.get(a)?,
            CExpr::Has(a) => V::Bool(self.has(a)),
            CExpr::HasRole(id) => V::Bool(self.has_role(*id)),
            CExpr::Not(_) | CExpr::And(_) | CExpr::Or(_) | CExpr::Cmp(..) => {
                V::Bool(self.truth(e)?)
            }
            CExpr::In(x, set) => {
                let (x, set) = (self.eval(x)?, self.eval(set)?);
                V::Bool(self.contains(set, x))
            }
            CExpr::ContainsAll(s, t) => {
                let (s, t) = (self.eval(s)?, self.eval(t)?);
                V::Bool(self.contains_all(s, t))
            }
            CExpr::ContainsAny(s, t) => {
                let (s, t) = (self.eval(s)?, self.eval(t)?);
                V::Bool(self.contains_any(s, t))
            }
            CExpr::Like(x, glob) => match self.eval(x)? {
                V::Str(s) => V::Bool(glob.matches(s)),
                _ => V::Bool(false),
            },
            CExpr::InRange(x, range) => match (self.eval(x)?, self.eval(range)?) {
                (V::Ip(a), V::Ip(r)) => V::Bool(r.contains(&a)),
                _ => V::Bool(false),
            },
            CExpr::Hour(t) => match self.eval(t)? {
                V::Time(us) => V::Long(us.div_euclid(3_600_000_000).rem_euclid(24)),
                _ => return Err(Fault::Overflow),
            },
            CExpr::Weekday(t) => match self.eval(t)? {
                V::Time(us) => {
                    // 1970-01-01 was a Thursday.
                    let day = us.div_euclid(86_400_000_000);
                    V::Str(
                        WEEKDAYS
                            .get(day.rem_euclid(7) as usize)
                            .copied()
                            .unwrap_or("thu"),
                    )
                }
                _ => return Err(Fault::Overflow),
            },
        })
    }

    /// Evaluates a boolean expression. A fault is returned through `self.fault`, so the result
    /// is one byte in a register: this is the hot path.
    fn tri(&self, e: &'a CExpr) -> Tri {
        match e {
            CExpr::Not(x) => match self.tri(x) {
                Tri::True => Tri::False,
                Tri::False => Tri::True,
                Tri::Fault => Tri::Fault,
            },
            CExpr::And(xs) => {
                for x in xs {
                    match self.tri(x) {
                        Tri::True => {}
                        other => return other,
                    }
                }
                Tri::True
            }
            CExpr::Or(xs) => {
                for x in xs {
                    match self.tri(x) {
                        Tri::False => {}
                        other => return other,
                    }
                }
                Tri::False
            }
            CExpr::HasRole(id) => Tri::from(self.has_role(*id)),
            CExpr::Has(a) => Tri::from(self.has(a)),
            CExpr::Const(Lit::Bool(b)) => Tri::from(*b),
            CExpr::Cmp(op, l, r) => {
                let (l, r) = match (self.eval(l), self.eval(r)) {
                    (Ok(l), Ok(r)) => (l, r),
                    (Err(f), _) | (_, Err(f)) => return self.fail(f),
                };
                Tri::from(match op {
                    CmpOp::Eq => scalar_eq(l, r),
                    CmpOp::Ne => !scalar_eq(l, r),
                    _ => {
                        let ord = match (l, r) {
                            (V::Long(x), V::Long(y))
                            | (V::Time(x), V::Time(y))
                            | (V::Dec(x), V::Dec(y)) => x.cmp(&y),
                            _ => return Tri::False,
                        };
                        match op {
                            CmpOp::Lt => ord.is_lt(),
                            CmpOp::Le => ord.is_le(),
                            CmpOp::Gt => ord.is_gt(),
                            _ => ord.is_ge(),
                        }
                    }
                })
            }
            _ => match self.eval(e) {
                Ok(V::Bool(b)) => Tri::from(b),
                Ok(_) => Tri::False,
                Err(f) => self.fail(f),
            },
        }
    }

    fn fail(&self, f: Fault<'a>) -> Tri {
        self.fault.set(Some(f));
        Tri::Fault
    }

    /// Evaluates a boolean expression.
    pub(crate) fn truth(&self, e: &'a CExpr) -> Result<bool, Fault<'a>> {
        match self.tri(e) {
            Tri::True => Ok(true),
            Tri::False => Ok(false),
            Tri::Fault => Err(self.fault.take().unwrap_or(Fault::Overflow)),
        }
    }

    /// Whether the rule's principal selector matches.
    pub(crate) fn selects(&self, rule: &CRule) -> bool {
        rule.kind.is_none_or(|k| k == self.principal.kind)
            && rule.role.is_none_or(|r| self.has_role(r))
            && rule
                .principal_id
                .as_deref()
                .is_none_or(|id| id == self.principal.id)
            && rule
                .issuer
                .as_deref()
                .is_none_or(|iss| iss == self.principal.issuer)
    }

    pub(crate) fn has_scopes(&self, rule: &CRule) -> bool {
        rule.scopes
            .iter()
            .all(|s| self.principal.scopes.contains(&**s))
    }

    /// Whether the rule applies.
    pub(crate) fn applies(&self, rule: &'a CRule) -> Outcome<'a> {
        if !self.selects(rule) {
            return Outcome::No;
        }
        for c in &rule.conds {
            match self.tri(&c.expr) {
                Tri::True => {}
                Tri::False => return Outcome::No,
                Tri::Fault => {
                    return Outcome::Fault(self.fault.take().unwrap_or(Fault::Overflow));
                }
            }
        }
        if self.has_scopes(rule) {
            Outcome::Yes
        } else {
            Outcome::MissingScope
        }
    }
}

const WEEKDAYS: [&str; 7] = ["thu", "fri", "sat", "sun", "mon", "tue", "wed"];

/// A boolean result, or a fault recorded in [`Req::fault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tri {
    False,
    True,
    Fault,
}

impl From<bool> for Tri {
    fn from(b: bool) -> Tri {
        if b { Tri::True } else { Tri::False }
    }
}

/// The result of one rule on one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Outcome<'p> {
    Yes,
    No,
    MissingScope,
    Fault(Fault<'p>),
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::{Attributes, PrincipalKind, Timestamp};

    /// Containment over sets holding elements that cannot be compared (a nested set or record:
    /// attributes are checked when read, so only a defect could let one through) fails closed:
    /// such an element is in no set, so it never makes `containsAny` true, and a set holding
    /// one is contained in no set.
    #[test]
    fn containment_never_counts_an_uncomparable_element_as_shared() {
        let policy = PolicySet::from_toml("", "empty.toml").unwrap();
        let principal = Principal::new("ann", PrincipalKind::User, "idp");
        let resource = Resource::new("Document");
        let context = Context::new(Timestamp::from_unix_seconds(0));
        let req = policy.request(&principal, &resource, &context);

        let finance: BTreeSet<Value> = [Value::from("finance")].into_iter().collect();
        let finance = V::Values(&finance, Scalar::Str);
        let lits = [Lit::Str("finance".into())];
        for nested in [
            Value::Record(Attributes::new()),
            Value::Set(BTreeSet::new()),
            Value::Set([Value::from("finance")].into_iter().collect()),
        ] {
            let alone: BTreeSet<Value> = [nested.clone()].into_iter().collect();
            let with: BTreeSet<Value> = [nested, Value::from("finance")].into_iter().collect();
            let (alone, with) = (
                V::Values(&alone, Scalar::Str),
                V::Values(&with, Scalar::Str),
            );
            for set in [finance, V::Lits(&lits)] {
                assert!(!req.contains_any(set, alone));
                assert!(req.contains_any(set, with));
                assert!(!req.contains_all(set, alone));
                assert!(!req.contains_all(set, with));
                // And the other way round: the nested element is never found.
                assert!(!req.contains_any(alone, set));
                assert!(req.contains_any(with, set));
                assert!(req.contains_all(with, set));
            }
        }
        // Not a set (the type checker never lets one through): no answer grants.
        assert!(!req.contains_any(finance, V::Str("finance")));
        assert!(!req.contains_all(finance, V::Str("finance")));
        // The empty set: shares nothing, is contained in everything.
        let empty = BTreeSet::new();
        let empty = V::Values(&empty, Scalar::Str);
        assert!(!req.contains_any(finance, empty));
        assert!(req.contains_all(finance, empty));
    }

    /// Large sets are searched rather than scanned: the answer is the scan's, for every element
    /// type, including `ip` sets holding both addresses and strings.
    #[test]
    fn a_searched_set_answers_as_a_scan_would() {
        let policy = PolicySet::from_toml("", "empty.toml").unwrap();
        let principal = Principal::new("ann", PrincipalKind::User, "idp");
        let resource = Resource::new("Document");
        let context = Context::new(Timestamp::from_unix_seconds(0));
        let req = policy.request(&principal, &resource, &context);
        for n in [1usize, SCAN_UP_TO, SCAN_UP_TO + 1, 100] {
            let strs: BTreeSet<Value> = (0..n).map(|i| Value::from(format!("u{i}"))).collect();
            let longs: BTreeSet<Value> = (0..n).map(|i| Value::Long(i as i64 * 2)).collect();
            let bools: BTreeSet<Value> = [Value::Bool(true)].into_iter().collect();
            // Even elements as addresses, odd ones as strings.
            let ips: BTreeSet<Value> = (0..n)
                .map(|i| {
                    let text = format!("10.0.{}.0/24", i % 256);
                    if i % 2 == 0 {
                        parse_ip(&text).map(Value::Ip).unwrap()
                    } else {
                        Value::String(text)
                    }
                })
                .collect();
            let net = |i: usize| V::Ip(parse_ip(&format!("10.0.{i}.0/24")).unwrap());
            let cases = [
                (V::Values(&strs, Scalar::Str), V::Str("u0"), true),
                (
                    V::Values(&strs, Scalar::Str),
                    V::Str(&format!("u{}", n - 1)),
                    true,
                ),
                (V::Values(&strs, Scalar::Str), V::Str("v"), false),
                (V::Values(&strs, Scalar::Str), V::Long(0), false),
                (V::Values(&longs, Scalar::Long), V::Long(0), true),
                (V::Values(&longs, Scalar::Long), V::Long(1), false),
                (V::Values(&longs, Scalar::Long), V::Str("0"), false),
                (V::Values(&bools, Scalar::Bool), V::Bool(true), true),
                (V::Values(&bools, Scalar::Bool), V::Bool(false), false),
                (V::Values(&ips, Scalar::Ip), net(0), true),
                (V::Values(&ips, Scalar::Ip), net(n - 1), true),
                (V::Values(&ips, Scalar::Ip), net(n), false),
                (V::Values(&ips, Scalar::Ip), V::Str("10.0.0.0/24"), false),
            ];
            for (set, x, expected) in cases {
                let V::Values(s, ty) = set else {
                    unreachable!()
                };
                assert_eq!(holds_equal(s.iter(), ty, x), expected, "scan, n = {n}");
                assert_eq!(req.contains(set, x), expected, "search, n = {n}");
            }
        }
    }

    #[test]
    fn set_attributes_are_checked_element_by_element() {
        let attr = Attr::Resource("s".into(), Ty::Set(Scalar::Ip), 0);
        let ok = Value::string_set(["10.1.2.3", "::1", "10.0.0.0/8"]);
        assert!(matches!(
            typed(&ok, Ty::Set(Scalar::Ip), &attr),
            Ok(V::Values(_, Scalar::Ip))
        ));
        let ips: BTreeSet<Value> = [Value::Ip(parse_ip("10.1.2.3").unwrap())]
            .into_iter()
            .collect();
        assert!(typed(&Value::Set(ips), Ty::Set(Scalar::Ip), &attr).is_ok());
        // Parsed as strictly as a scalar `ip` (no leading zeros).
        for bad in ["010.1.2.3", "10.1.2.3/08", "host", ""] {
            let v = Value::string_set(["10.1.2.3", bad]);
            assert_eq!(
                typed(&v, Ty::Set(Scalar::Ip), &attr).err(),
                Some(Fault::InvalidIp(&attr)),
                "{bad}"
            );
        }
        let attr = Attr::Resource("s".into(), Ty::Set(Scalar::Str), 0);
        for bad in [
            Value::Long(1),
            Value::Bool(true),
            Value::Set(BTreeSet::new()),
            Value::Record(Attributes::new()),
        ] {
            let v = Value::Set([Value::from("a"), bad.clone()].into_iter().collect());
            assert_eq!(
                typed(&v, Ty::Set(Scalar::Str), &attr).err(),
                Some(Fault::WrongType(&attr)),
                "{bad:?}"
            );
        }
        // A scalar where a set is declared, and a set where a scalar is.
        assert_eq!(
            typed(&Value::from("a"), Ty::Set(Scalar::Str), &attr).err(),
            Some(Fault::WrongType(&attr))
        );
        assert_eq!(
            typed(&Value::string_set(["a"]), Ty::One(Scalar::Str), &attr).err(),
            Some(Fault::WrongType(&attr))
        );
        // The empty set has every element type.
        assert!(typed(&Value::Set(BTreeSet::new()), Ty::Set(Scalar::Long), &attr).is_ok());
    }
}
