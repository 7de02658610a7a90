//! The fixture runner, through the public API, the way a service's own `#[test]` calls it.

use std::path::Path;

use aaa::{
    Decision,
    policy::{FixtureError, Fixtures, PolicySet},
};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn docs_policy() -> PolicySet {
    PolicySet::from_file(root().join("examples/policies/docs_service.toml"))
        .unwrap_or_else(|e| panic!("{}", e.render()))
}

#[test]
fn docs_service_fixtures_pass() {
    let fixtures =
        Fixtures::from_file(root().join("tests/fixtures/policy/docs_service_cases.toml")).unwrap();
    let report = fixtures.run(&docs_policy());
    assert!(report.passed(), "{report}");
    assert_eq!(report.total, 9);
}

#[test]
fn failures_are_readable_and_coverage_lists_what_was_not_exercised() {
    let fixtures =
        Fixtures::from_file(root().join("tests/fixtures/policy/failing_cases.toml")).unwrap();
    let report = fixtures.run(&docs_policy());
    assert!(!report.passed());
    assert_eq!(report.failures.len(), 2);
    let text = report.to_string();
    assert!(
        text.contains(
            "FAIL case `wrongly expects a viewer to delete`: expected allow, got deny (NotPermitted); \
             nearest miss: rule `admin-all`, failed: principal role `admin`"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "FAIL case `right decision, wrong rule`: expected deny by [forbid-cross-tenant], \
             got deny (Forbidden by [forbid-suspended])"
        ),
        "{text}"
    );
    assert!(text.contains("0 of 2 cases passed"), "{text}");
    assert_eq!(report.failures[0].actual.decision, Decision::Deny);
    let c = &report.coverage;
    assert!(c.rules_never_applied.contains(&"auditor-logs".to_owned()));
    assert!(
        !c.rules_never_applied
            .contains(&"forbid-suspended".to_owned())
    );
    assert!(
        c.conditions_never_true.contains(&(
            "forbid-secret-delete".to_owned(),
            "resource.classification == \"secret\"".to_owned()
        )),
        "{c:?}"
    );
    assert!(
        text.contains("coverage: rule `auditor-logs` never applied"),
        "{text}"
    );
}

#[test]
fn fixture_files_refuse_unknown_fields_with_a_position() {
    let err = Fixtures::from_toml(
        "[[case]]\nname = \"x\"\nprincipal = { id = \"a\" }\naction = \"r\"\nresource = { type = \"D\" }\nexpect = \"allow\"\nexpected = \"deny\"\n",
        "cases.toml",
    )
    .unwrap_err();
    let FixtureError::Parse { message, .. } = &err else {
        panic!("{err}")
    };
    assert!(message.starts_with("7:1: "), "{message}");
    assert!(message.contains("expected"), "{message}");
    assert!(Fixtures::from_toml("[[case]]\nname = 1", "c.toml").is_err());
}
