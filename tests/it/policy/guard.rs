//! The docs-service policy as the `Guard`'s authorizer: route-level checks by matched template
//! (with the document's attributes from a resource loader), handler-level checks on a resource the
//! handler built, and a hot reload while serving.

use std::{path::Path, sync::Arc};

use aaa::{
    Action, Authenticator, AuthnError, BoxFuture, FixedClock, Guard, Identity, LoadError, Outcome,
    Principal, PrincipalKind, Resource, ResourceLoader, Timestamp,
    audit::MemorySink,
    http::RequestFacts,
    policy::{PolicyHandle, PolicySet},
};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `x-user: id,tenant,role[,suspended]` stands in for a token.
#[derive(Debug)]
struct Header;

impl Authenticator for Header {
    fn authenticate<'a>(
        &'a self,
        facts: &'a RequestFacts,
    ) -> BoxFuture<'a, Result<Identity, AuthnError>> {
        let v = facts
            .headers()
            .get("x-user")
            .map(|v| v.to_str().unwrap().to_owned());
        Box::pin(async move {
            Ok(match v {
                None => Identity::Anonymous,
                Some(v) => {
                    let parts: Vec<&str> = v.split(',').collect();
                    Principal::new(parts[0], PrincipalKind::User, "test")
                        .with_tenant(parts[1])
                        .with_roles([parts[2]])
                        .with_attribute("suspended", parts.get(3) == Some(&"suspended"))
                        .into()
                }
            })
        })
    }
}

/// Document `d1` belongs to bob of acme and is internal; audit logs are named after their tenant.
#[derive(Debug)]
struct Loader;

impl ResourceLoader for Loader {
    fn load<'a>(&'a self, r: &'a Resource) -> BoxFuture<'a, Result<Option<Resource>, LoadError>> {
        let id = r.id.clone().unwrap_or_default();
        let found = match (r.resource_type.as_str(), id.as_str()) {
            ("Document", "d1") => Some(
                r.clone()
                    .with_attribute("owner", "bob")
                    .with_attribute("tenant", "acme")
                    .with_attribute("classification", "internal"),
            ),
            ("AuditLog", tenant) => Some(r.clone().with_attribute("tenant", tenant)),
            _ => None,
        };
        Box::pin(std::future::ready(Ok(found)))
    }
}

fn get(path_template: &str, path: &str, id: Option<&str>, user: Option<&str>) -> RequestFacts {
    let mut headers = http::HeaderMap::new();
    if let Some(u) = user {
        headers.insert("x-user", u.parse().unwrap());
    }
    let mut f = RequestFacts::new(http::Method::GET, path)
        .with_matched_route(path_template)
        .with_headers(headers)
        .with_peer("10.1.2.3:5555".parse().unwrap());
    if let Some(id) = id {
        f = f.with_param("id", id);
    }
    f
}

#[tokio::test]
async fn docs_service_policy_drives_the_guard() {
    let path = root().join("examples/policies/docs_service.toml");
    let policies = PolicyHandle::from_file(&path).unwrap_or_else(|e| panic!("{}", e.render()));
    let audit = Arc::new(MemorySink::new());
    let guard = Guard::builder()
        .authenticator(Header)
        .policies(policies.clone())
        .resources(Loader)
        .audit_arc(audit.clone())
        .clock(FixedClock::new(Timestamp::from_unix_seconds(1_700_000_000)))
        .build()
        .unwrap();

    // Public route, anonymous.
    let health = get("/health", "/health", None, None);
    assert!(matches!(guard.check(&health).await, Outcome::Proceed(_)));

    // Protected route: anonymous → 401; a viewer of the tenant reads (decided at the route with
    // the loaded attributes); a viewer of another tenant does not.
    let read = |user| get("/docs/{id}", "/docs/d1", Some("d1"), user);
    let Outcome::Reject(r) = guard.check(&read(None)).await else {
        panic!("anonymous must log in")
    };
    assert_eq!(r.status(), 401);
    let Outcome::Proceed(admission) = guard.check(&read(Some("ann,acme,viewer"))).await else {
        panic!("a viewer of the tenant reads an internal document")
    };
    assert_eq!(admission.evaluation.rules, ["viewer-read".into()]);
    assert_eq!(admission.action.as_ref().unwrap().as_str(), "docs:read");
    let resource = admission.resource.as_ref().unwrap();
    assert_eq!(resource.id.as_deref(), Some("d1"));
    assert_eq!(resource.attributes["owner"], aaa::Value::from("bob"));
    let Outcome::Reject(r) = guard.check(&read(Some("gus,globex,viewer"))).await else {
        panic!("another tenant's viewer")
    };
    assert_eq!(r.status(), 403);

    // Suspended users are stopped at the route.
    let Outcome::Reject(r) = guard.check(&read(Some("sam,acme,viewer,suspended"))).await else {
        panic!("suspended")
    };
    assert_eq!(r.status(), 403);

    // Handler level: the handler loaded the document and passes its attributes.
    let doc = |tenant: &str, class: &str| {
        Resource::new("Document")
            .with_id("d1")
            .with_attribute("owner", "bob")
            .with_attribute("tenant", tenant)
            .with_attribute("classification", class)
    };
    let ok = guard
        .authorize(
            &admission,
            &Action::new("docs:read"),
            &doc("acme", "internal"),
        )
        .await
        .unwrap();
    assert_eq!(ok.rules, ["viewer-read".into()]);
    let secret = guard
        .authorize(
            &admission,
            &Action::new("docs:read"),
            &doc("acme", "secret"),
        )
        .await
        .unwrap_err();
    assert_eq!(secret.status(), 403);
    let foreign = guard
        .authorize(
            &admission,
            &Action::new("docs:read"),
            &doc("globex", "public"),
        )
        .await
        .unwrap_err();
    assert_eq!(foreign.status(), 403);

    // Audit-log routes: only auditors of the tenant pass the route.
    let logs = |user| {
        get("/audit-logs/{tenant}", "/audit-logs/acme", None, Some(user))
            .with_param("tenant", "acme")
    };
    assert!(matches!(
        guard.check(&logs("ann,acme,viewer")).await,
        Outcome::Reject(_)
    ));
    assert!(matches!(
        guard.check(&logs("aud,acme,auditor")).await,
        Outcome::Proceed(_)
    ));
    assert!(matches!(
        guard.check(&logs("aud,globex,auditor")).await,
        Outcome::Reject(_)
    ));

    // An unmapped route is denied, even for a valid user.
    let unmapped = get("/admin", "/admin", None, Some("ann,acme,admin"));
    assert!(matches!(guard.check(&unmapped).await, Outcome::Reject(_)));

    // Hot reload: a bad file is refused and the policy in force keeps deciding.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[roles.viewer]\ninherits = [\"viewer\"]\n").unwrap();
    assert!(policies.reload_file(&bad).is_err());
    assert!(matches!(
        guard.check(&read(Some("ann,acme,viewer"))).await,
        Outcome::Proceed(_)
    ));
    // A good new file (health no longer public) takes effect at once.
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "route = \"/health\"\npublic = true",
        "route = \"/status\"\npublic = true",
    );
    let good = dir.path().join("good.toml");
    std::fs::write(&good, text).unwrap();
    policies.reload_file(&good).unwrap();
    let Outcome::Reject(r) = guard.check(&health).await else {
        panic!("/health is no longer mapped")
    };
    assert_eq!(r.status(), 403);

    // Decisions in the audit log carry the policy version.
    assert!(!audit.events().is_empty());
    let direct = PolicySet::from_file(&path).unwrap();
    assert_eq!(direct.version(), "docs-service-1");
}
