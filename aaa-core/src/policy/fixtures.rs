//! Policy fixtures: cases of (principal, action, resource, context) with the expected decision,
//! run against a [`PolicySet`] from a service's own tests, with a coverage report.
//!
//! ```
//! use aaa_core::policy::{Fixtures, PolicySet};
//!
//! let policy = PolicySet::from_toml(r#"
//! [roles.reader]
//! permissions = ["docs:read"]
//! "#, "p.toml")?;
//! let fixtures = Fixtures::from_toml(r#"
//! [[case]]
//! name = "a reader reads"
//! principal = { id = "ann", roles = ["reader"] }
//! action = "docs:read"
//! resource = { type = "Document", id = "d1" }
//! expect = "allow"
//! rules = ["role:reader"]
//!
//! [[case]]
//! name = "a reader cannot write"
//! principal = { id = "ann", roles = ["reader"] }
//! action = "docs:write"
//! resource = { type = "Document" }
//! expect = "deny"
//! "#, "cases.toml")?;
//! let report = fixtures.run(&policy);
//! assert!(report.passed(), "{report}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::{collections::BTreeSet, fmt, net::IpAddr, path::Path};

use serde::{Deserialize, Serialize};

use super::{PolicySet, eval::Outcome};
use crate::{
    Attributes, AuthInfo, AuthMethod, Context, CredentialRef, Decision, Evaluation, Principal,
    PrincipalKind, Resource, Timestamp,
};

/// A fixture file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FixtureError {
    /// The file could not be read.
    #[error("cannot read fixtures `{file}`: {source}")]
    Io {
        /// The file.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a valid fixture file.
    #[error("invalid fixtures `{file}`: {message}")]
    Parse {
        /// The file.
        file: String,
        /// What is wrong, with the line and column.
        message: String,
    },
}

/// A principal as written in a fixture or request file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixturePrincipal {
    /// The id.
    pub id: String,
    /// The kind. Defaults to `user`.
    #[serde(default = "default_kind")]
    pub kind: PrincipalKind,
    /// The issuer. Defaults to `fixtures`.
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// The tenant.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Directly assigned roles.
    #[serde(default)]
    pub roles: BTreeSet<String>,
    /// Token scopes.
    #[serde(default)]
    pub scopes: BTreeSet<String>,
    /// Other attributes.
    #[serde(default)]
    pub attributes: Attributes,
    /// Whether the principal passed multi-factor authentication.
    #[serde(default)]
    pub mfa: bool,
    /// Authentication methods references.
    #[serde(default)]
    pub amr: BTreeSet<String>,
}

fn default_kind() -> PrincipalKind {
    PrincipalKind::User
}

fn default_issuer() -> String {
    "fixtures".to_owned()
}

impl FixturePrincipal {
    /// The [`Principal`] this describes.
    pub fn to_principal(&self) -> Principal {
        let mut auth = AuthInfo::new(AuthMethod::Jwt, Timestamp::UNIX_EPOCH, CredentialRef::None);
        auth.mfa = self.mfa;
        auth.amr.clone_from(&self.amr);
        let mut p = Principal::new(&self.id, self.kind, &self.issuer).with_auth(auth);
        p.tenant.clone_from(&self.tenant);
        p.roles.clone_from(&self.roles);
        p.scopes.clone_from(&self.scopes);
        p.attributes.clone_from(&self.attributes);
        p
    }
}

/// The request context as written in a fixture: all fields optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureContext {
    /// The peer address.
    #[serde(default)]
    pub peer_ip: Option<IpAddr>,
    /// The time of the request. Defaults to the Unix epoch.
    #[serde(default)]
    pub time: Option<Timestamp>,
    /// Other attributes.
    #[serde(default)]
    pub attributes: Attributes,
}

impl FixtureContext {
    /// The [`Context`] this describes.
    pub fn to_context(&self) -> Context {
        let mut c = Context::new(self.time.unwrap_or(Timestamp::UNIX_EPOCH));
        // As the guard sees a peer (`RequestFacts::with_peer`): an IPv4-mapped IPv6 address is
        // its IPv4 address, so a fixture decides that client as the service does.
        c.peer_ip = self.peer_ip.map(|ip| ip.to_canonical());
        c.attributes.clone_from(&self.attributes);
        c
    }
}

/// One request, as given to `aaa policy explain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureRequest {
    /// Who asks.
    pub principal: FixturePrincipal,
    /// The action.
    pub action: String,
    /// The resource.
    pub resource: Resource,
    /// The context.
    #[serde(default)]
    pub context: FixtureContext,
}

/// One fixture case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureCase {
    /// A name for failure messages.
    pub name: String,
    /// Who asks.
    pub principal: FixturePrincipal,
    /// The action.
    pub action: String,
    /// The resource, with its attributes.
    pub resource: Resource,
    /// The context.
    #[serde(default)]
    pub context: FixtureContext,
    /// The expected decision.
    pub expect: Decision,
    /// The expected determining rules, in any order, if the case checks them.
    #[serde(default)]
    pub rules: Option<Vec<String>>,
}

/// A fixture file: `[[case]]` tables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixtures {
    /// The cases, in file order.
    #[serde(default, rename = "case")]
    pub cases: Vec<FixtureCase>,
}

/// A case whose outcome was not the expected one.
#[derive(Debug, Clone)]
pub struct FixtureFailure {
    /// The case's name.
    pub case: String,
    /// The expected decision.
    pub expected: Decision,
    /// The expected determining rules, if the case gave them.
    pub expected_rules: Option<Vec<String>>,
    /// What the policy said, explained.
    pub actual: Evaluation,
}

impl fmt::Display for FixtureFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.actual;
        write!(
            f,
            "case `{}`: expected {}",
            self.case,
            self.expected.as_str()
        )?;
        if let Some(r) = &self.expected_rules {
            write!(f, " by [{}]", r.join(", "))?;
        }
        write!(f, ", got {} ({:?}", a.decision.as_str(), a.reason)?;
        if !a.rules.is_empty() {
            write!(f, " by [{}]", a.rules.join(", "))?;
        }
        write!(f, ")")?;
        for e in &a.errors {
            write!(f, "; rule `{}` failed: {}", e.rule, e.message)?;
        }
        if let Some(m) = &a.nearest_miss {
            write!(f, "; nearest miss: rule `{}`, failed: {}", m.rule, m.failed)?;
        }
        Ok(())
    }
}

/// What a fixture run did not exercise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Rules that applied in no case.
    pub rules_never_applied: Vec<String>,
    /// Conditions (rule id, condition text) that were never true in any case.
    pub conditions_never_true: Vec<(String, String)>,
    /// Conditions (rule id, condition text) that were never false in any case.
    pub conditions_never_false: Vec<(String, String)>,
}

/// The result of [`Fixtures::run`]. `Display` prints failures and coverage readably.
#[derive(Debug, Clone)]
pub struct FixtureReport {
    /// How many cases ran.
    pub total: usize,
    /// The cases that failed.
    pub failures: Vec<FixtureFailure>,
    /// What was never exercised.
    pub coverage: Coverage,
}

impl FixtureReport {
    /// Whether every case passed, and there was one at least: a fixtures file without a case
    /// checks nothing, and does not pass.
    pub fn passed(&self) -> bool {
        self.total > 0 && self.failures.is_empty()
    }
}

impl fmt::Display for FixtureReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for failure in &self.failures {
            writeln!(f, "FAIL {failure}")?;
        }
        writeln!(
            f,
            "{} of {} cases passed",
            self.total - self.failures.len(),
            self.total
        )?;
        if self.total == 0 {
            writeln!(f, "FAIL no case: the fixtures check nothing")?;
        }
        let c = &self.coverage;
        if c.rules_never_applied.is_empty()
            && c.conditions_never_true.is_empty()
            && c.conditions_never_false.is_empty()
        {
            return writeln!(
                f,
                "coverage: every rule applied and every condition was both true and false"
            );
        }
        for r in &c.rules_never_applied {
            writeln!(f, "coverage: rule `{r}` never applied")?;
        }
        for (r, t) in &c.conditions_never_true {
            writeln!(f, "coverage: rule `{r}`: condition `{t}` was never true")?;
        }
        for (r, t) in &c.conditions_never_false {
            writeln!(f, "coverage: rule `{r}`: condition `{t}` was never false")?;
        }
        Ok(())
    }
}

impl Fixtures {
    /// Parses fixtures from TOML text.
    ///
    /// # Errors
    ///
    /// [`FixtureError::Parse`] with the position of the problem.
    pub fn from_toml(text: &str, file: &str) -> Result<Fixtures, FixtureError> {
        toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let (l, c) = super::error::line_column(text, s.start);
                    format!("{l}:{c}: ")
                })
                .unwrap_or_default();
            FixtureError::Parse {
                file: file.to_owned(),
                message: format!("{at}{}", e.message().trim_end()),
            }
        })
    }

    /// Reads fixtures from a TOML file.
    ///
    /// # Errors
    ///
    /// [`FixtureError`] if the file cannot be read or parsed.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Fixtures, FixtureError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| FixtureError::Io {
            file: file.clone(),
            source,
        })?;
        Self::from_toml(&text, &file)
    }

    /// Runs every case against `policy`.
    pub fn run(&self, policy: &PolicySet) -> FixtureReport {
        let mut failures = Vec::new();
        let mut applied = vec![false; policy.rules.len()];
        // Per rule, per condition: (seen true, seen false).
        let mut seen: Vec<Vec<(bool, bool)>> = policy
            .rules
            .iter()
            .map(|r| vec![(false, false); r.conds.len()])
            .collect();
        for case in &self.cases {
            let principal = case.principal.to_principal();
            let context = case.context.to_context();
            let actual = policy.explain(&principal, &case.action, &case.resource, &context);
            policy.trace(
                &principal,
                &case.action,
                &case.resource,
                &context,
                |i, outcome, conds| {
                    if let Some(a) = applied.get_mut(i) {
                        *a |= outcome == Outcome::Yes;
                    }
                    if let Some(s) = seen.get_mut(i) {
                        for (slot, r) in s.iter_mut().zip(conds) {
                            match r {
                                Some(true) => slot.0 = true,
                                Some(false) => slot.1 = true,
                                None => {}
                            }
                        }
                    }
                },
            );
            let rules_ok = case.rules.as_ref().is_none_or(|want| {
                let want: BTreeSet<&str> = want.iter().map(String::as_str).collect();
                let got: BTreeSet<&str> = actual.rules.iter().map(|r| &**r).collect();
                want == got
            });
            if actual.decision != case.expect || !rules_ok {
                failures.push(FixtureFailure {
                    case: case.name.clone(),
                    expected: case.expect,
                    expected_rules: case.rules.clone(),
                    actual,
                });
            }
        }
        let mut coverage = Coverage::default();
        for (i, rule) in policy.rules.iter().enumerate() {
            if !applied.get(i).copied().unwrap_or(false) {
                coverage.rules_never_applied.push(rule.id.to_string());
            }
            for (c, s) in rule
                .conds
                .iter()
                .zip(seen.get(i).map_or(&[][..], Vec::as_slice))
            {
                if !s.0 {
                    coverage
                        .conditions_never_true
                        .push((rule.id.to_string(), c.text.to_string()));
                }
                if !s.1 {
                    coverage
                        .conditions_never_false
                        .push((rule.id.to_string(), c.text.to_string()));
                }
            }
        }
        FixtureReport {
            total: self.cases.len(),
            failures,
            coverage,
        }
    }
}

impl PolicySet {
    /// Calls `f(rule index, outcome, condition results)` for every rule that covers the action
    /// and resource type; every condition is evaluated (`None`: it failed to evaluate).
    fn trace(
        &self,
        principal: &Principal,
        action: &str,
        resource: &Resource,
        context: &Context,
        mut f: impl FnMut(usize, Outcome<'_>, &[Option<bool>]),
    ) {
        let Ok(c) = self.candidates(action, &resource.resource_type) else {
            return;
        };
        let req = self.request(principal, resource, context);
        let mut results = Vec::new();
        for i in c.deny().chain(c.allow()) {
            let Some(rule) = self.rule(i) else { continue };
            if c.check_action && !rule.matches_action(action) {
                continue;
            }
            results.clear();
            if req.selects(rule) {
                results.extend(rule.conds.iter().map(|c| req.truth(&c.expr).ok()));
            }
            f(i as usize, req.applies(rule), &results);
        }
    }
}
