//! Mapping verified token claims to a [`Principal`]: [`ClaimMapping`].

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value as Json};

use super::AuthnError;
use crate::{Attributes, Decimal, PrincipalKind, Value};

/// Claims handled by the validator or the mapping; never copied into attributes.
const REGISTERED: &[&str] = &[
    "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "scope", "scp", "amr",
];

/// How the principal's kind is decided.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KindRule {
    /// Always this kind.
    Fixed(PrincipalKind),
    /// From a claim (dotted path) holding `user`, `service` or `device`; `default` when absent.
    /// Any other value is refused.
    Claim {
        /// The claim path.
        path: String,
        /// The kind when the claim is absent.
        default: PrincipalKind,
    },
    /// A service when the subject equals the `client_id` or `azp` claim (an OAuth client
    /// credentials grant), otherwise a user.
    ServiceIfSubjectIsClient,
}

/// Where a principal's parts come from in an issuer's tokens.
///
/// Paths are dotted: `realm_access.roles` reads `{"realm_access": {"roles": [...]}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClaimMapping {
    /// The claim holding the principal id. Defaults to `sub`.
    pub subject: String,
    /// How the kind is decided. Defaults to [`KindRule::ServiceIfSubjectIsClient`].
    pub kind: KindRule,
    /// Claims holding roles (a string or an array of strings), all taken. Defaults to `roles`.
    pub roles: Vec<String>,
    /// A claim holding IdP groups, mapped through [`group_roles`](Self::group_roles). Defaults to
    /// none.
    pub groups: Option<String>,
    /// Local roles granted by each IdP group. Groups absent from the map grant nothing. Defaults to
    /// empty.
    pub group_roles: BTreeMap<String, Vec<String>>,
    /// The claim holding the tenant (a string). Defaults to none.
    pub tenant: Option<String>,
    /// Keep claims not otherwise mapped as typed attributes. Defaults to `true`.
    pub keep_other_claims: bool,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        ClaimMapping {
            subject: "sub".to_owned(),
            kind: KindRule::ServiceIfSubjectIsClient,
            roles: vec!["roles".to_owned()],
            groups: None,
            group_roles: BTreeMap::new(),
            tenant: None,
            keep_other_claims: true,
        }
    }
}

impl ClaimMapping {
    /// Sets the role claims (Keycloak: `realm_access.roles`).
    #[must_use]
    pub fn with_roles<I: IntoIterator<Item = S>, S: Into<String>>(mut self, paths: I) -> Self {
        self.roles = paths.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the tenant claim.
    #[must_use]
    pub fn with_tenant(mut self, path: impl Into<String>) -> Self {
        self.tenant = Some(path.into());
        self
    }

    /// Sets the kind rule.
    #[must_use]
    pub fn with_kind(mut self, rule: KindRule) -> Self {
        self.kind = rule;
        self
    }

    /// Sets the group claim and maps each group to local roles.
    #[must_use]
    pub fn with_groups<I, G, R>(mut self, path: impl Into<String>, map: I) -> Self
    where
        I: IntoIterator<Item = (G, Vec<R>)>,
        G: Into<String>,
        R: Into<String>,
    {
        self.groups = Some(path.into());
        self.group_roles = map
            .into_iter()
            .map(|(g, rs)| (g.into(), rs.into_iter().map(Into::into).collect()))
            .collect();
        self
    }
}

/// What the mapping produced.
#[derive(Debug)]
pub(crate) struct Mapped {
    pub(crate) id: String,
    pub(crate) kind: PrincipalKind,
    pub(crate) roles: BTreeSet<String>,
    pub(crate) scopes: BTreeSet<String>,
    pub(crate) tenant: Option<String>,
    pub(crate) amr: BTreeSet<String>,
    pub(crate) attributes: Attributes,
}

/// The value at a dotted path.
pub(crate) fn lookup<'a>(claims: &'a Map<String, Json>, path: &str) -> Option<&'a Json> {
    let mut parts = path.split('.');
    let first = parts.next()?;
    let mut at = claims.get(first)?;
    for part in parts {
        at = at.as_object()?.get(part)?;
    }
    Some(at)
}

fn strings(v: &Json) -> Vec<String> {
    match v {
        Json::String(s) => vec![s.clone()],
        Json::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

impl ClaimMapping {
    pub(crate) fn map(&self, claims: &Map<String, Json>) -> Result<Mapped, AuthnError> {
        let id = match lookup(claims, &self.subject) {
            Some(Json::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => return Err(AuthnError::Invalid("the subject claim is not a string")),
            None => return Err(AuthnError::Invalid("the token has no subject")),
        };
        let kind = match &self.kind {
            KindRule::Fixed(k) => *k,
            KindRule::Claim { path, default } => match lookup(claims, path) {
                None => *default,
                Some(Json::String(s)) => match s.as_str() {
                    "user" => PrincipalKind::User,
                    "service" => PrincipalKind::Service,
                    "device" => PrincipalKind::Device,
                    _ => return Err(AuthnError::Invalid("the kind claim has an unknown value")),
                },
                Some(_) => return Err(AuthnError::Invalid("the kind claim is not a string")),
            },
            KindRule::ServiceIfSubjectIsClient => {
                let client = ["client_id", "azp"]
                    .iter()
                    .filter_map(|c| claims.get(*c).and_then(Json::as_str))
                    .any(|c| c == id);
                if client {
                    PrincipalKind::Service
                } else {
                    PrincipalKind::User
                }
            }
        };
        let mut roles = BTreeSet::new();
        for path in &self.roles {
            if let Some(v) = lookup(claims, path) {
                roles.extend(strings(v));
            }
        }
        if let Some(path) = &self.groups
            && let Some(v) = lookup(claims, path)
        {
            for group in strings(v) {
                if let Some(local) = self.group_roles.get(&group) {
                    roles.extend(local.iter().cloned());
                }
            }
        }
        let mut scopes = BTreeSet::new();
        match claims.get("scope") {
            None => {}
            Some(Json::String(s)) => {
                scopes.extend(s.split(' ').filter(|s| !s.is_empty()).map(str::to_owned))
            }
            Some(_) => return Err(AuthnError::Invalid("the scope claim is not a string")),
        }
        match claims.get("scp") {
            None => {}
            Some(Json::Array(items)) => {
                for item in items {
                    let Some(s) = item.as_str() else {
                        return Err(AuthnError::Invalid(
                            "the scp claim is not an array of strings",
                        ));
                    };
                    scopes.insert(s.to_owned());
                }
            }
            Some(Json::String(s)) => {
                scopes.extend(s.split(' ').filter(|s| !s.is_empty()).map(str::to_owned))
            }
            Some(_) => {
                return Err(AuthnError::Invalid(
                    "the scp claim is not an array of strings",
                ));
            }
        }
        let tenant = match &self.tenant {
            None => None,
            Some(path) => match lookup(claims, path) {
                None => None,
                Some(Json::String(s)) => Some(s.clone()),
                Some(_) => return Err(AuthnError::Invalid("the tenant claim is not a string")),
            },
        };
        let amr = match claims.get("amr") {
            None => BTreeSet::new(),
            Some(Json::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect::<Option<BTreeSet<_>>>()
                .ok_or(AuthnError::Invalid(
                    "the amr claim is not an array of strings",
                ))?,
            Some(_) => {
                return Err(AuthnError::Invalid(
                    "the amr claim is not an array of strings",
                ));
            }
        };
        let mut attributes = Attributes::new();
        if self.keep_other_claims {
            // Claims a mapping reads are not attributes too: the raw IdP groups, say, would be
            // readable by a policy beside the roles `group_roles` grants for them.
            let consumed: Vec<&str> = [self.subject.as_str()]
                .into_iter()
                .chain(self.tenant.as_deref())
                .chain(self.roles.iter().map(String::as_str))
                .chain(self.groups.as_deref())
                .collect();
            for (name, value) in claims {
                if REGISTERED.contains(&name.as_str()) || consumed.contains(&name.as_str()) {
                    continue;
                }
                if let Some(v) = to_value(value, 0) {
                    attributes.insert(name.clone(), v);
                }
            }
        }
        Ok(Mapped {
            id,
            kind,
            roles,
            scopes,
            tenant,
            amr,
            attributes,
        })
    }
}

/// Whether `amr` shows more than one factor (RFC 8176): `mfa` itself, or methods from two of the
/// categories something known, something had, something one is.
pub(crate) fn is_mfa(amr: &BTreeSet<String>) -> bool {
    const KNOW: &[&str] = &["pwd", "pin", "kba"];
    const HAVE: &[&str] = &["otp", "hwk", "swk", "sms", "tel", "sc", "pop"];
    // Not `geo` (RFC 8176: "use of geolocation information for authentication"): where the
    // request comes from is a risk signal, not a factor the user has, knows or is.
    const ARE: &[&str] = &["fpt", "face", "iris", "retina", "vbm"];
    if amr.contains("mfa") {
        return true;
    }
    let has = |cat: &[&str]| amr.iter().any(|m| cat.contains(&m.as_str()));
    [has(KNOW), has(HAVE), has(ARE)]
        .iter()
        .filter(|b| **b)
        .count()
        >= 2
}

/// Converts JSON to a typed value: strings, booleans, integers, decimals (up to four fractional
/// digits), arrays (as sets) and objects (as records). `null` and values that do not fit are
/// dropped. Nesting deeper than 8 levels is dropped.
fn to_value(v: &Json, depth: usize) -> Option<Value> {
    if depth > 8 {
        return None;
    }
    Some(match v {
        Json::Null => return None,
        Json::Bool(b) => Value::Bool(*b),
        Json::String(s) => Value::String(s.clone()),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Long(i),
            None => Value::Decimal(n.to_string().parse::<Decimal>().ok()?),
        },
        Json::Array(items) => Value::Set(
            items
                .iter()
                .filter_map(|i| to_value(i, depth + 1))
                .collect(),
        ),
        Json::Object(map) => Value::Record(
            map.iter()
                .filter_map(|(k, v)| to_value(v, depth + 1).map(|v| (k.clone(), v)))
                .collect(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(v: Json) -> Map<String, Json> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn keycloak_style_mapping() {
        let c = claims(serde_json::json!({
            "sub": "u-1", "azp": "web",
            "realm_access": {"roles": ["editor", "viewer"]},
            "groups": ["/eng", "/other"],
            "scope": "openid docs:read",
            "org": "acme",
            "amr": ["pwd", "otp"],
            "level": 3, "ratio": 1.5, "flags": [true], "meta": {"a": "b"}, "gone": null
        }));
        let m = ClaimMapping::default()
            .with_roles(["realm_access.roles"])
            .with_tenant("org")
            .with_groups("groups", [("/eng", vec!["engineer"])])
            .map(&c)
            .unwrap();
        assert_eq!(m.id, "u-1");
        assert_eq!(m.kind, PrincipalKind::User);
        assert_eq!(
            m.roles,
            ["editor", "engineer", "viewer"].map(String::from).into()
        );
        assert_eq!(m.scopes, ["docs:read", "openid"].map(String::from).into());
        assert_eq!(m.tenant.as_deref(), Some("acme"));
        assert!(is_mfa(&m.amr));
        assert_eq!(m.attributes.get("level"), Some(&Value::Long(3)));
        assert_eq!(
            m.attributes.get("ratio"),
            Some(&Value::Decimal("1.5".parse().unwrap()))
        );
        assert!(m.attributes.contains_key("meta"));
        assert!(m.attributes.contains_key("realm_access"));
        assert!(!m.attributes.contains_key("gone"));
        assert!(!m.attributes.contains_key("sub"));
        assert!(!m.attributes.contains_key("org"));
    }

    #[test]
    fn scp_array_and_client_credentials() {
        let c = claims(serde_json::json!({"sub": "svc", "client_id": "svc", "scp": ["a", "b"]}));
        let m = ClaimMapping::default().map(&c).unwrap();
        assert_eq!(m.kind, PrincipalKind::Service);
        assert_eq!(m.scopes.len(), 2);
    }

    #[test]
    fn wrongly_typed_claims_are_refused() {
        for bad in [
            serde_json::json!({"sub": 5}),
            serde_json::json!({"sub": "a", "scope": ["x"]}),
            serde_json::json!({"sub": "a", "scp": [1]}),
            serde_json::json!({"sub": "a", "amr": "pwd"}),
            serde_json::json!({}),
        ] {
            assert!(
                ClaimMapping::default().map(&claims(bad.clone())).is_err(),
                "{bad}"
            );
        }
        let kind = ClaimMapping::default().with_kind(KindRule::Claim {
            path: "typ".into(),
            default: PrincipalKind::User,
        });
        assert!(
            kind.map(&claims(serde_json::json!({"sub": "a", "typ": "robot"})))
                .is_err()
        );
        assert_eq!(
            kind.map(&claims(serde_json::json!({"sub": "a", "typ": "device"})))
                .unwrap()
                .kind,
            PrincipalKind::Device
        );
    }

    #[test]
    fn mfa_needs_two_categories() {
        let s = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
        assert!(!is_mfa(&s(&["pwd"])));
        assert!(!is_mfa(&s(&["pwd", "kba"])));
        assert!(is_mfa(&s(&["pwd", "hwk"])));
        assert!(is_mfa(&s(&["mfa"])));
        // A location check is no factor (found by a review): password and geolocation are one.
        assert!(!is_mfa(&s(&["pwd", "geo"])));
        assert!(!is_mfa(&s(&["pwd", "geo", "rba"])));
        assert!(is_mfa(&s(&["otp", "fpt"])));
    }
}
