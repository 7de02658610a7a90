//! The policy file as written: [`Policy`] and its parts, read from TOML (with positions) or JSON
//! (same shape), and printed back to TOML.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::error::{PolicyDiagnostic, PolicyError, PolicyErrorKind, Source};
use crate::PrincipalKind;

/// A policy file: schema, roles, rules and routes.
///
/// Strings that the checker may complain about are [`Spanned`], so diagnostics point at them;
/// spans are ignored by `==`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// A version label, copied into every decision. Defaults to a hash of the file's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The types of the attributes conditions may read.
    #[serde(default, skip_serializing_if = "Schema::is_empty")]
    pub schema: Schema,
    /// Roles by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<Spanned<String>, RoleDef>,
    /// Allow and deny rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// The route table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
}

/// Attribute types of principals, resources and the request context, by attribute name.
///
/// Types: `string`, `bool`, `long`, `decimal`, `ip`, `timestamp`, and `set<T>` of one of those.
/// Values are checked against them when a condition reads them (a set element by element).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// Attributes of principals (`principal.NAME`, read from `Principal::attributes`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub principal: BTreeMap<Spanned<String>, Spanned<String>>,
    /// Attributes of resources (`resource.NAME`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resource: BTreeMap<Spanned<String>, Spanned<String>>,
    /// Attributes of the request context (`context.NAME`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<Spanned<String>, Spanned<String>>,
}

impl Schema {
    fn is_empty(&self) -> bool {
        self.principal.is_empty() && self.resource.is_empty() && self.context.is_empty()
    }
}

/// A role: the roles it inherits from and the actions it grants.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDef {
    /// Roles whose grants this role also has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inherits: Vec<Spanned<String>>,
    /// Action patterns this role is allowed on any resource, unconditionally (deny rules still
    /// apply). Conditional grants are written as rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<Spanned<String>>,
}

/// Whether a rule allows or denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// The rule grants access when it applies.
    Allow,
    /// The rule refuses access when it applies; it wins over every allow.
    Deny,
}

/// Which principals a rule covers: every field given must match. Empty means everyone
/// authenticated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalSelector {
    /// The kind of principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<PrincipalKind>,
    /// A role the principal must hold, directly or by inheritance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Spanned<String>>,
    /// The principal's exact id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The principal's exact issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

impl PrincipalSelector {
    fn is_empty(&self) -> bool {
        self.kind.is_none() && self.role.is_none() && self.id.is_none() && self.issuer.is_none()
    }
}

/// An allow or deny rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A unique id, reported in decisions. Ids starting with `role:` or `route:` are reserved
    /// for the rules made of role permissions and route scopes.
    pub id: Spanned<String>,
    /// `allow` or `deny`.
    pub effect: Effect,
    /// Which principals the rule covers.
    #[serde(default, skip_serializing_if = "PrincipalSelector::is_empty")]
    pub principal: PrincipalSelector,
    /// Action patterns the rule covers (glob dialect: `docs:read`, `docs:*`, `*`).
    pub actions: Vec<Spanned<String>>,
    /// Resource types the rule covers; empty means all (a type listed twice counts once).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Spanned<String>>,
    /// The rule applies only when this condition holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Spanned<String>>,
    /// The rule does not apply when this condition holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unless: Option<Spanned<String>>,
    /// Scopes the token must carry for the rule to apply (allow rules only: a deny rule with
    /// scopes is refused).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Free text for readers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A route of the service: the template the router matches and what it asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The HTTP method, e.g. `GET`: compared case-sensitively, so written in uppercase (an
    /// extension method such as `PURGE` is accepted; `get` is refused).
    pub method: Spanned<String>,
    /// The route template exactly as the router names it, e.g. `/docs/{id}`.
    pub route: Spanned<String>,
    /// The action the route performs (omit for a public route): one exact action, non-empty,
    /// without whitespace and without `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Spanned<String>>,
    /// The resource type it acts upon (omit for a public route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Spanned<String>>,
    /// The path parameter holding the resource id, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Spanned<String>>,
    /// Scopes the token must carry for this action on this resource type (checked at route
    /// level and at handler level alike; a missing one denies with `missing_scope`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Anyone may call the route, authenticated or not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public: bool,
}

impl Policy {
    /// Parses a policy from TOML text. `file` names it in diagnostics.
    ///
    /// This checks only the shape; [`PolicySet::compile`](super::PolicySet::compile) checks the
    /// meaning.
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] of kind [`Syntax`](PolicyErrorKind::Syntax) with the position.
    pub fn from_toml(text: &str, file: &str) -> Result<Policy, PolicyError> {
        let source = Source::new(file, text, true);
        parse_toml(text, &source)
    }

    /// Parses a policy from JSON text with the same shape as the TOML form. Diagnostics about a
    /// JSON file carry no line and column (they name the item instead).
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] of kind [`Syntax`](PolicyErrorKind::Syntax).
    pub fn from_json(text: &str, file: &str) -> Result<Policy, PolicyError> {
        Self::from_json_with_source(text, &Source::new(file, text, false))
    }

    pub(crate) fn from_json_with_source(
        text: &str,
        source: &Source,
    ) -> Result<Policy, PolicyError> {
        let syntax = |message: String| {
            PolicyError::single(PolicyDiagnostic::new(
                source,
                PolicyErrorKind::Syntax,
                None,
                message,
            ))
        };
        let table: toml::Table = serde_json::from_str(text).map_err(|e| {
            syntax(format!(
                "invalid JSON at line {} column {}: {}",
                e.line(),
                e.column(),
                e
            ))
        })?;
        let as_toml = toml::to_string(&table).map_err(|e| syntax(e.to_string()))?;
        parse_toml(&as_toml, source)
    }

    /// Prints the policy as TOML; parsing the output gives an equal policy.
    ///
    /// # Errors
    ///
    /// Only if a value cannot be represented in TOML (not expected for a parsed policy).
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }
}

pub(crate) fn parse_toml(text: &str, source: &Source) -> Result<Policy, PolicyError> {
    toml::from_str::<Policy>(text).map_err(|e| {
        let message = e.message().trim_end_matches('\n').to_owned();
        PolicyError::single(
            PolicyDiagnostic::new(source, PolicyErrorKind::Syntax, e.span(), message)
                .with_help("see docs/policy.md for the format of a policy file"),
        )
    })
}

/// The file span of byte `range` inside the string value `spanned`, whose span covers the quoted
/// literal in `text`. Falls back to the whole literal when escapes make offsets ambiguous.
pub(crate) fn inner_span(
    text: &str,
    outer: std::ops::Range<usize>,
    range: std::ops::Range<usize>,
) -> std::ops::Range<usize> {
    let Some(raw) = text.get(outer.clone()) else {
        return outer;
    };
    let (quote, literal) = if raw.starts_with("'''") {
        (3, true)
    } else if raw.starts_with("\"\"\"") {
        (3, false)
    } else if raw.starts_with('\'') {
        (1, true)
    } else if raw.starts_with('"') {
        (1, false)
    } else {
        return outer;
    };
    if !literal && raw.contains('\\') {
        return outer;
    }
    let mut start = outer.start + quote;
    if quote == 3 {
        // A newline right after the opening delimiter is trimmed from the value.
        if raw.get(3..5) == Some("\r\n") {
            start += 2;
        } else if raw.get(3..4) == Some("\n") {
            start += 1;
        }
    }
    let s = (start + range.start).min(outer.end);
    let e = (start + range.end).clamp(s, outer.end);
    s..e
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
version = "1"
[schema.resource]
owner = "string"

[roles.viewer]
permissions = ["docs:read"]
[roles.editor]
inherits = ["viewer"]

[[rules]]
id = "owner"
effect = "allow"
actions = ["docs:*"]
resources = ["Document"]
when = 'resource.owner == principal.id'

[[routes]]
method = "GET"
route = "/docs/{id}"
action = "docs:read"
resource = "Document"
id = "id"

[[routes]]
method = "GET"
route = "/health"
public = true
"#;

    #[test]
    fn toml_round_trip() {
        let p = Policy::from_toml(SMALL, "small.toml").unwrap();
        assert_eq!(p.rules.len(), 1);
        assert_eq!(p.rules[0].effect, Effect::Allow);
        let printed = p.to_toml().unwrap();
        let again = Policy::from_toml(&printed, "printed.toml").unwrap();
        assert_eq!(p, again);
    }

    #[test]
    fn json_has_the_same_shape() {
        let p = Policy::from_toml(SMALL, "small.toml").unwrap();
        let json = serde_json::to_string(&p).unwrap();
        let q = Policy::from_json(&json, "small.json").unwrap();
        assert_eq!(p, q);
    }

    #[test]
    fn unknown_fields_are_refused_with_a_position() {
        let err = Policy::from_toml(
            "[[rules]]\nid = \"x\"\neffect = \"allow\"\nactions = []\nwhen_ = 'true'\n",
            "f.toml",
        )
        .unwrap_err();
        let d = &err.diagnostics()[0];
        assert_eq!(d.kind(), PolicyErrorKind::Syntax);
        assert_eq!((d.line(), d.column()), (5, 1));
        assert!(d.message().contains("when_"), "{}", d.message());
    }

    #[test]
    fn inner_span_maps_into_literals() {
        let text = "when = 'abc def'";
        let outer = 7..16;
        assert_eq!(&text[inner_span(text, outer.clone(), 4..7)], "def");
        let text = "when = \"a\\\"b\"";
        assert_eq!(inner_span(text, 7..13, 0..1), 7..13);
        let text = "when = '''\nabc'''";
        assert_eq!(&text[inner_span(text, 7..17, 1..3)], "bc");
    }
}
