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
    assert_eq!(report.total, 10);
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
             nearest miss: rule `owner-all`, failed: resource.owner == principal.id"
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

#[test]
fn the_reference_page_examples_are_valid_and_say_what_they_do() {
    use aaa::{Context, Principal, PrincipalKind, Reason, Resource, Timestamp};
    let page = std::fs::read_to_string(root().join("docs/policy.md")).unwrap();
    let blocks: Vec<&str> = page
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    let policy = PolicySet::from_toml(blocks[0], "docs/policy.md")
        .unwrap_or_else(|e| panic!("{}", e.render()));
    let fixtures = blocks.iter().find(|b| b.contains("[[case]]")).unwrap();
    Fixtures::from_toml(fixtures, "docs/policy.md").unwrap();

    let alice = Principal::new("alice", PrincipalKind::User, "idp")
        .with_tenant("acme")
        .with_roles(["editor"])
        .with_attribute("suspended", false);
    let doc = |class: &str, owner: &str| {
        Resource::new("Document")
            .with_attribute("tenant", "acme")
            .with_attribute("owner", owner)
            .with_attribute("classification", class)
    };
    let now = Context::new(Timestamp::from_unix_seconds(1_700_000_000));
    let read = policy.evaluate(&alice, "docs:read", &doc("public", "bob"), &now);
    assert_eq!(read.rules, ["viewer-read".into()]);
    let delete = policy.evaluate(&alice, "docs:delete", &doc("secret", "alice"), &now);
    assert_eq!(delete.reason, Reason::Forbidden);
    assert_eq!(delete.rules, ["forbid-secret-delete".into()]);
}

/// A fixtures file without a case checked nothing and passed (`aaa policy test` exited 0): it no
/// longer passes (raised by the policy review).
#[test]
fn fixtures_without_a_case_do_not_pass() {
    for text in ["", "# nothing yet\n"] {
        let report = Fixtures::from_toml(text, "empty.toml")
            .unwrap()
            .run(&docs_policy());
        assert_eq!(report.total, 0);
        assert!(!report.passed());
        assert!(report.to_string().contains("FAIL no case"), "{report}");
    }
}
