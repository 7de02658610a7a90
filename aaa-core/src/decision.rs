//! The answer to an authorization question: a [`Decision`] and the [`Evaluation`] that explains it.
//!
//! ```
//! use aaa_core::{Decision, Evaluation, Reason};
//!
//! let denied = Evaluation::forbid(["deny-suspended"]);
//! assert_eq!(denied.decision, Decision::Deny);
//! assert_eq!(denied.reason, Reason::Forbidden);
//! assert_eq!(Evaluation::not_permitted().decision, Decision::Deny);
//! ```

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Allow or deny. Exhaustive on purpose: there is no third answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The request may proceed.
    Allow,
    /// The request is refused.
    Deny,
}

impl Decision {
    /// `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }
}

/// Why the decision came out the way it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// At least one allow rule applied and no deny rule did.
    Permitted,
    /// The route is public: no authorization was required.
    Public,
    /// A deny rule applied (or a deny rule failed to evaluate, which counts as applying).
    Forbidden,
    /// No allow rule applied: default deny.
    NotPermitted,
    /// A scope the route or rule requires was not in the token.
    MissingScope,
    /// The policy does not mention the route that was hit: unmapped routes are denied.
    UnmappedRoute,
    /// What the decision needs (the resource's attributes) could not be loaded: denied, since
    /// the guard fails closed.
    Unavailable,
    /// The request is malformed (a path parameter is not valid UTF-8 once decoded): refused
    /// before any policy decision.
    Malformed,
}

impl Reason {
    /// The reason's name as the audit log and serde write it: `permitted`, `public`,
    /// `forbidden`, `not_permitted`, `missing_scope`, `unmapped_route`, `unavailable` or `malformed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Permitted => "permitted",
            Reason::Public => "public",
            Reason::Forbidden => "forbidden",
            Reason::NotPermitted => "not_permitted",
            Reason::MissingScope => "missing_scope",
            Reason::UnmappedRoute => "unmapped_route",
            Reason::Unavailable => "unavailable",
            Reason::Malformed => "malformed",
        }
    }
}

/// A rule that failed to evaluate (missing attribute, wrong type). It never grants access.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationError {
    /// The id of the rule that failed.
    pub rule: String,
    /// What went wrong, lowercase, without request data.
    pub message: String,
}

/// The allow rule that came closest to applying, for explaining a deny.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NearestMiss {
    /// The id of the allow rule.
    pub rule: String,
    /// The part of the rule that did not hold, as written in the policy.
    pub failed: String,
}

/// A decision with its explanation.
///
/// Policy evaluation returns this, never a `Result`: a rule that errors never grants access, and
/// errors are reported alongside the decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evaluation {
    /// Allow or deny.
    pub decision: Decision,
    /// The kind of reason.
    pub reason: Reason,
    /// The ids of the rules that determined the decision (the applying deny rules for a
    /// forbid, the applying allow rules for a permit; empty for default deny).
    /// Shared strings: the compiled policy's own ids, so an evaluation is cloned (into the
    /// request's extensions, into its audit event) without copying them.
    #[serde(default)]
    pub rules: Vec<Arc<str>>,
    /// Rules that failed to evaluate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<EvaluationError>,
    /// For a deny, when asked for: the allow rule that came closest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nearest_miss: Option<NearestMiss>,
    /// The version of the policy that decided, when known (shared with the policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<Arc<str>>,
}

impl Evaluation {
    fn new(decision: Decision, reason: Reason, rules: Vec<Arc<str>>) -> Self {
        Evaluation {
            decision,
            reason,
            rules,
            errors: Vec::new(),
            nearest_miss: None,
            policy_version: None,
        }
    }

    /// Allowed by these rules.
    pub fn permit<I: IntoIterator<Item = S>, S: Into<Arc<str>>>(rules: I) -> Self {
        Self::new(
            Decision::Allow,
            Reason::Permitted,
            rules.into_iter().map(Into::into).collect(),
        )
    }

    /// Allowed because the route is public.
    pub fn public() -> Self {
        Self::new(Decision::Allow, Reason::Public, Vec::new())
    }

    /// Denied by these deny rules.
    pub fn forbid<I: IntoIterator<Item = S>, S: Into<Arc<str>>>(rules: I) -> Self {
        Self::new(
            Decision::Deny,
            Reason::Forbidden,
            rules.into_iter().map(Into::into).collect(),
        )
    }

    /// Denied because nothing allowed it.
    pub fn not_permitted() -> Self {
        Self::new(Decision::Deny, Reason::NotPermitted, Vec::new())
    }

    /// Denied because a required scope is missing.
    pub fn missing_scope() -> Self {
        Self::new(Decision::Deny, Reason::MissingScope, Vec::new())
    }

    /// Denied because the policy does not know the route.
    pub fn unmapped_route() -> Self {
        Self::new(Decision::Deny, Reason::UnmappedRoute, Vec::new())
    }

    /// Denied because what the decision needs could not be loaded (fail closed).
    pub fn unavailable() -> Self {
        Self::new(Decision::Deny, Reason::Unavailable, Vec::new())
    }

    /// Denied because the request is malformed.
    pub fn malformed() -> Self {
        Self::new(Decision::Deny, Reason::Malformed, Vec::new())
    }

    /// Whether the decision is [`Decision::Allow`].
    pub fn is_allowed(&self) -> bool {
        self.decision == Decision::Allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_round_trip() {
        let mut e = Evaluation::forbid(["deny-suspended"]);
        e.errors.push(EvaluationError {
            rule: "owner".into(),
            message: "missing attribute `owner`".into(),
        });
        e.nearest_miss = Some(NearestMiss {
            rule: "viewer".into(),
            failed: "resource.classification != \"secret\"".into(),
        });
        e.policy_version = Some("sha256:abc".into());
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Evaluation>(&json).unwrap(), e);
        assert!(json.contains("\"decision\":\"deny\""));
        assert!(json.contains("\"reason\":\"forbidden\""));
    }

    #[test]
    fn constructors_are_consistent() {
        assert!(Evaluation::permit(["r"]).is_allowed());
        assert!(Evaluation::public().is_allowed());
        for e in [
            Evaluation::forbid(["r"]),
            Evaluation::not_permitted(),
            Evaluation::missing_scope(),
            Evaluation::unmapped_route(),
        ] {
            assert!(!e.is_allowed());
        }
    }
}
