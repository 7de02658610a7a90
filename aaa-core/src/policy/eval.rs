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

/// How many declared attributes are cached per request; more are looked up each time.
pub(crate) const SLOTS: usize = 16;

/// A cached attribute lookup.
#[derive(Clone, Copy)]
pub(crate) enum Slot<'a> {
    Unknown,
    Missing,
    Found(&'a Value),
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
    Values(&'a BTreeSet<Value>),
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

fn value_v(v: &Value) -> Option<V<'_>> {
    Some(match v {
        Value::String(s) => V::Str(s),
        Value::Bool(b) => V::Bool(*b),
        Value::Long(n) => V::Long(*n),
        Value::Decimal(d) => V::Dec(d.raw()),
        Value::Ip(ip) => V::Ip(*ip),
        Value::Timestamp(t) => V::Time(t.unix_micros()),
        Value::Set(_) | Value::Record(_) => return None,
    })
}

/// A request attribute checked against its declared type.
fn typed<'a, 'p>(v: &'a Value, ty: Ty, attr: &'p Attr) -> Result<V<'a>, Fault<'p>> {
    match (ty, v) {
        (Ty::Set(_), Value::Set(s)) => Ok(V::Values(s)),
        (Ty::One(Scalar::Ip), Value::String(s)) => {
            parse_ip(s).map(V::Ip).map_err(|_| Fault::InvalidIp(attr))
        }
        (Ty::One(Scalar::Str), Value::String(s)) => Ok(V::Str(s)),
        (Ty::One(Scalar::Bool), Value::Bool(b)) => Ok(V::Bool(*b)),
        (Ty::One(Scalar::Long), Value::Long(n)) => Ok(V::Long(*n)),
        (Ty::One(Scalar::Dec), Value::Decimal(d)) => Ok(V::Dec(d.raw())),
        (Ty::One(Scalar::Ip), Value::Ip(ip)) => Ok(V::Ip(*ip)),
        (Ty::One(Scalar::Time), Value::Timestamp(t)) => Ok(V::Time(t.unix_micros())),
        _ => Err(Fault::WrongType(attr)),
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
            Slot::Found(v) => Some(v),
            Slot::Missing => None,
            Slot::Unknown => {
                let v = map.get(name);
                cell.set(v.map_or(Slot::Missing, Slot::Found));
                v
            }
        }
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
            Attr::Principal(n, ty, slot) => typed(
                self.lookup(&p.attributes, n, *slot)
                    .ok_or(Fault::Missing(a))?,
                *ty,
                a,
            )?,
            Attr::ResourceType => V::Str(&self.resource.resource_type),
            Attr::ResourceId => V::Str(self.resource.id.as_deref().ok_or(Fault::Missing(a))?),
            Attr::Resource(n, ty, slot) => typed(
                self.lookup(&self.resource.attributes, n, *slot)
                    .ok_or(Fault::Missing(a))?,
                *ty,
                a,
            )?,
            Attr::ContextPeerIp => {
                V::Ip(IpNet::from(self.context.peer_ip.ok_or(Fault::Missing(a))?))
            }
            Attr::ContextTime => V::Time(self.context.time.unix_micros()),
            Attr::Context(n, ty, slot) => typed(
                self.lookup(&self.context.attributes, n, *slot)
                    .ok_or(Fault::Missing(a))?,
                *ty,
                a,
            )?,
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
            V::Roles => match x {
                V::Str(name) => {
                    self.principal.roles.contains(name)
                        || self
                            .policy
                            .role_ids
                            .get(name)
                            .is_some_and(|&id| self.has_role(id))
                }
                _ => false,
            },
            V::Values(s) => s
                .iter()
                .any(|v| value_v(v).is_some_and(|v| scalar_eq(v, x))),
            V::Lits(s) => s.iter().any(|l| scalar_eq(lit_v(l), x)),
            _ => false,
        }
    }

    /// Calls `f` on each element of `set` until it returns `false`; returns whether all did.
    fn all_elements(&self, set: V<'_>, mut f: impl FnMut(V<'_>) -> bool) -> bool {
        match set {
            V::Strs(s) => s.iter().all(|x| f(V::Str(x))),
            V::Roles => {
                self.principal.roles.iter().all(|x| f(V::Str(x)))
                    && self
                        .policy
                        .roles
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| self.has_role(u32::try_from(*i).unwrap_or(u32::MAX)))
                        .all(|(_, r)| f(V::Str(&r.name)))
            }
            V::Values(s) => s.iter().all(|v| value_v(v).is_some_and(&mut f)),
            V::Lits(s) => s.iter().all(|l| f(lit_v(l))),
            _ => false,
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
                V::Bool(self.all_elements(t, |x| self.contains(s, x)))
            }
            CExpr::ContainsAny(s, t) => {
                let (s, t) = (self.eval(s)?, self.eval(t)?);
                V::Bool(!self.all_elements(t, |x| !self.contains(s, x)))
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
