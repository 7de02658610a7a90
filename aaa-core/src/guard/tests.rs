use std::sync::atomic::{AtomicBool, Ordering};

use ::http::{HeaderMap, Method, StatusCode, header};

use super::*;
use crate::{
    AuthnError, BoxFuture, Decision, FixedClock, Principal, PrincipalKind,
    audit::{AuditError, MemorySink},
    http::RejectionKind,
};

/// Accepts `Bearer good-<id>` and rejects any other bearer token.
#[derive(Debug)]
struct TestBearer;

impl Authenticator for TestBearer {
    fn authenticate<'a>(
        &'a self,
        facts: &'a RequestFacts,
    ) -> BoxFuture<'a, Result<Identity, AuthnError>> {
        let result = match facts.headers().get(header::AUTHORIZATION) {
            None => Ok(Identity::Anonymous),
            Some(v) => match v.to_str().ok().and_then(|v| v.strip_prefix("Bearer good-")) {
                Some(id) => Ok(Principal::new(id, PrincipalKind::User, "test")
                    .with_tenant("acme")
                    .into()),
                None => Err(AuthnError::Invalid("the access token is not valid")),
            },
        };
        Box::pin(std::future::ready(result))
    }
}

/// Accepts any `x-api-key`.
#[derive(Debug)]
struct TestKey;

impl Authenticator for TestKey {
    fn authenticate<'a>(
        &'a self,
        facts: &'a RequestFacts,
    ) -> BoxFuture<'a, Result<Identity, AuthnError>> {
        let id = if facts.headers().contains_key("x-api-key") {
            Ok(Principal::new("svc", PrincipalKind::Service, "api-key").into())
        } else {
            Ok(Identity::Anonymous)
        };
        Box::pin(std::future::ready(id))
    }
}

/// `/health` public, `/docs/{id}` read by alice only, everything else unmapped.
#[derive(Debug)]
struct TestPolicy;

impl Authorizer for TestPolicy {
    fn bind_route(&self, facts: &RequestFacts) -> RouteBinding {
        match facts.matched_route() {
            Some("/health") => RouteBinding::Public,
            Some("/docs/{id}") => RouteBinding::Protected {
                action: Action::new("read"),
                resource: Resource::new("Document")
                    .with_id(facts.param("id").unwrap_or_default())
                    .with_attribute("tenant", "acme"),
            },
            _ => RouteBinding::Unmapped,
        }
    }

    fn authorize(&self, who: &Identity, action: &Action, _: &Resource, _: &Context) -> Evaluation {
        match who.principal() {
            Some(p) if p.id == "alice" && action.as_str() == "read" => {
                Evaluation::permit(["alice-reads"])
            }
            Some(p) if p.id == "mallory" => Evaluation::forbid(["no-mallory"]),
            Some(p) if p.id == "noscope" => Evaluation::missing_scope(),
            _ => Evaluation::not_permitted(),
        }
    }
}

#[derive(Debug, Default)]
struct FailingSink(AtomicBool);

impl AuditSink for FailingSink {
    fn record<'a>(
        &'a self,
        _: AuditEvent,
    ) -> BoxFuture<'a, Result<Option<AuditReceipt>, AuditError>> {
        self.0.store(true, Ordering::SeqCst);
        Box::pin(std::future::ready(Err(AuditError::Unavailable(
            "disk full",
        ))))
    }
}

fn guard(sink: Arc<dyn AuditSink>) -> Guard {
    Guard::builder()
        .authenticator(TestBearer)
        .authenticator(TestKey)
        .policies(TestPolicy)
        .audit_arc(sink)
        .clock(FixedClock::new(Timestamp::from_unix_seconds(1_700_000_000)))
        .realm("docs")
        .build()
        .unwrap()
}

fn facts(route: Option<&str>, path: &str, auth: Option<&str>) -> RequestFacts {
    let mut headers = HeaderMap::new();
    if let Some(a) = auth {
        headers.insert(header::AUTHORIZATION, a.parse().unwrap());
    }
    headers.insert(header::USER_AGENT, "curl/8\tinjected".parse().unwrap());
    let mut f = RequestFacts::new(Method::GET, path)
        .with_headers(headers)
        .with_peer("127.0.0.1:4000".parse().unwrap());
    if let Some(r) = route {
        f = f.with_matched_route(r);
        if let Some(id) = path.strip_prefix("/docs/") {
            f = f.with_param("id", id);
        }
    }
    f
}

fn rejected(o: Outcome) -> Rejection {
    match o {
        Outcome::Reject(r) => r,
        Outcome::Proceed(a) => panic!("expected a rejection, got {a:?}"),
    }
}

fn admitted(o: Outcome) -> Arc<Admission> {
    match o {
        Outcome::Proceed(a) => a,
        Outcome::Reject(r) => panic!("expected admission, got {r:?}"),
    }
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn allowed_request_proceeds_and_is_audited() {
    let sink = Arc::new(MemorySink::new());
    let g = guard(sink.clone());
    run(async {
        let a = admitted(
            g.check(&facts(
                Some("/docs/{id}"),
                "/docs/7",
                Some("Bearer good-alice"),
            ))
            .await,
        );
        assert_eq!(a.identity.principal().unwrap().id, "alice");
        assert_eq!(a.evaluation.rules, ["alice-reads".into()]);
        assert_eq!(a.resource.as_ref().unwrap().id.as_deref(), Some("7"));
        assert_eq!(a.receipt.as_ref().unwrap().seq, 0);
        g.complete(&a, 200).await.unwrap();
    });
    let events = sink.events();
    assert_eq!(events.len(), 2);
    let EventKind::Authorization { decision, .. } = &events[0].kind else {
        panic!()
    };
    assert_eq!(*decision, Decision::Allow);
    assert_eq!(events[0].actor.as_ref().unwrap().id, "alice");
    let target = events[0].target.as_ref().unwrap();
    assert_eq!(target.route.as_deref(), Some("/docs/{id}"));
    assert_eq!(target.tenant.as_deref(), Some("acme"));
    assert!(matches!(
        events[1].kind,
        EventKind::RequestCompleted { status: 200, .. }
    ));
}

#[test]
fn invalid_token_is_401_and_audited_without_the_token() {
    let sink = Arc::new(MemorySink::new());
    let g = guard(sink.clone());
    let r = rejected(run(g.check(&facts(
        Some("/docs/{id}"),
        "/docs/7",
        Some("Bearer evil-s3cr3t"),
    ))));
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.kind(), RejectionKind::InvalidToken);
    assert!(
        r.www_authenticate()
            .unwrap()
            .to_str()
            .unwrap()
            .contains("realm=\"docs\"")
    );
    let events = sink.events();
    assert_eq!(
        events.len(),
        1,
        "exactly one record per authentication failure"
    );
    assert!(matches!(
        events[0].kind,
        EventKind::Authentication {
            outcome: AuthnOutcome::Failure,
            ..
        }
    ));
    let json = serde_json::to_string(&events).unwrap();
    assert!(!json.contains("s3cr3t"), "{json}");
    assert!(
        !json.contains("\\t"),
        "control characters are replaced: {json}"
    );
}

#[test]
fn anonymous_on_protected_route_is_401_with_bare_challenge() {
    let sink = Arc::new(MemorySink::new());
    let g = guard(sink.clone());
    let r = rejected(run(g.check(&facts(Some("/docs/{id}"), "/docs/7", None))));
    assert_eq!(r.kind(), RejectionKind::MissingCredentials);
    assert_eq!(r.www_authenticate().unwrap(), "Bearer realm=\"docs\"");
    assert_eq!(sink.events().len(), 1);
}

#[test]
fn public_route_admits_anonymous() {
    let g = guard(Arc::new(MemorySink::new()));
    let a = admitted(run(g.check(&facts(Some("/health"), "/health", None))));
    assert_eq!(a.identity, Identity::Anonymous);
    assert_eq!(a.evaluation.reason, Reason::Public);
}

#[test]
fn bad_credentials_are_refused_even_on_public_routes() {
    let g = guard(Arc::new(MemorySink::new()));
    let r = rejected(run(g.check(&facts(
        Some("/health"),
        "/health",
        Some("Bearer nope"),
    ))));
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn deny_is_403_and_audited() {
    let sink = Arc::new(MemorySink::new());
    let g = guard(sink.clone());
    let r = rejected(run(g.check(&facts(
        Some("/docs/{id}"),
        "/docs/7",
        Some("Bearer good-mallory"),
    ))));
    assert_eq!(r.kind(), RejectionKind::Forbidden);
    let events = sink.events();
    assert_eq!(events.len(), 1);
    let EventKind::Authorization {
        decision,
        reason,
        rules,
        ..
    } = &events[0].kind
    else {
        panic!()
    };
    assert_eq!((*decision, *reason), (Decision::Deny, Reason::Forbidden));
    assert_eq!(rules, &["no-mallory".into()]);
}

#[test]
fn missing_scope_is_403_insufficient_scope() {
    let g = guard(Arc::new(MemorySink::new()));
    let r = rejected(run(g.check(&facts(
        Some("/docs/{id}"),
        "/docs/7",
        Some("Bearer good-noscope"),
    ))));
    assert_eq!(r.kind(), RejectionKind::InsufficientScope);
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[test]
fn unmapped_route_is_denied() {
    let g = guard(Arc::new(MemorySink::new()));
    let r = rejected(run(g.check(&facts(
        Some("/admin"),
        "/admin",
        Some("Bearer good-alice"),
    ))));
    assert_eq!(r.kind(), RejectionKind::Forbidden);
}

#[test]
fn no_matched_route_is_404_never_allow() {
    let g = guard(Arc::new(MemorySink::new()));
    let r = rejected(run(g.check(&facts(
        None,
        "/docs/7",
        Some("Bearer good-alice"),
    ))));
    assert_eq!(r.kind(), RejectionKind::NotFound);
}

#[test]
fn two_credentials_are_400_invalid_request() {
    let g = guard(Arc::new(MemorySink::new()));
    let mut f = facts(Some("/docs/{id}"), "/docs/7", Some("Bearer good-alice"));
    let mut h = f.headers().clone();
    h.insert("x-api-key", "k".parse().unwrap());
    f = f.with_headers(h);
    let r = rejected(run(g.check(&f)));
    assert_eq!(r.kind(), RejectionKind::InvalidRequest);
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[test]
fn audit_failure_fails_closed_with_503() {
    let sink = Arc::new(FailingSink::default());
    let g = guard(sink.clone());
    let r = rejected(run(g.check(&facts(
        Some("/docs/{id}"),
        "/docs/7",
        Some("Bearer good-alice"),
    ))));
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(sink.0.load(Ordering::SeqCst));
}

#[test]
fn handler_level_authorize_is_audited() {
    let sink = Arc::new(MemorySink::new());
    let g = guard(sink.clone());
    run(async {
        let a = admitted(
            g.check(&facts(
                Some("/docs/{id}"),
                "/docs/7",
                Some("Bearer good-alice"),
            ))
            .await,
        );
        let doc = Resource::new("Document").with_id("7");
        assert!(g.authorize(&a, &Action::new("read"), &doc).await.is_ok());
        let r = g
            .authorize(&a, &Action::new("delete"), &doc)
            .await
            .unwrap_err();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    });
    assert_eq!(sink.events().len(), 3);
}

#[test]
fn guard_requires_an_explicit_audit_choice() {
    let err = Guard::builder().policies(TestPolicy).build().unwrap_err();
    assert_eq!(err, ConfigError::MissingAudit);
}

#[test]
fn trace_id_parsing() {
    assert_eq!(
        trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_eq!(
        trace_id("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        None
    );
    assert_eq!(
        trace_id("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
        None
    );
    assert_eq!(trace_id("garbage"), None);
}

#[test]
fn guard_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Guard>();
}

#[test]
fn unmapped_routes_are_listed() {
    let g = guard(Arc::new(MemorySink::new()));
    let unmapped = g.unmapped_routes([
        (Method::GET, "/health"),
        (Method::GET, "/docs/{id}"),
        (Method::POST, "/admin"),
    ]);
    // The template's parameters are given sample values, so routes binding them are known.
    assert_eq!(unmapped, [(Method::POST, "/admin")]);
}

/// Documents owned by `alice` only when their id is even.
#[derive(Debug)]
struct Owners;

impl ResourceLoader for Owners {
    fn load<'a>(
        &'a self,
        resource: &'a Resource,
    ) -> BoxFuture<'a, Result<Option<Resource>, crate::LoadError>> {
        let id: u32 = resource.id.as_deref().unwrap_or("x").parse().unwrap_or(1);
        let result = match id {
            999 => Err(crate::LoadError("store down")),
            404 => Ok(None),
            _ => Ok(Some(resource.clone().with_attribute(
                "owner",
                if id.is_multiple_of(2) { "alice" } else { "bob" },
            ))),
        };
        Box::pin(std::future::ready(result))
    }
}

/// Allows reading one's own documents.
#[derive(Debug)]
struct OwnerPolicy;

impl Authorizer for OwnerPolicy {
    fn bind_route(&self, facts: &RequestFacts) -> RouteBinding {
        TestPolicy.bind_route(facts)
    }

    fn authorize(&self, who: &Identity, _: &Action, r: &Resource, _: &Context) -> Evaluation {
        let owner = r.attributes.get("owner").and_then(crate::Value::as_str);
        match who.principal() {
            Some(p) if Some(p.id.as_str()) == owner => Evaluation::permit(["owner"]),
            _ => Evaluation::not_permitted(),
        }
    }
}

#[test]
fn resource_loader_feeds_route_level_decisions() {
    let g = Guard::builder()
        .authenticator(TestBearer)
        .policies(OwnerPolicy)
        .resources(Owners)
        .audit_disabled()
        .build()
        .unwrap();
    let check = |id: &str| {
        let f = facts(
            Some("/docs/{id}"),
            &format!("/docs/{id}"),
            Some("Bearer good-alice"),
        );
        run(g.check(&f))
    };
    let a = admitted(check("2"));
    assert_eq!(
        a.resource.as_ref().unwrap().attributes["owner"],
        crate::Value::from("alice")
    );
    assert_eq!(rejected(check("3")).status(), StatusCode::FORBIDDEN);
    assert_eq!(rejected(check("404")).status(), StatusCode::FORBIDDEN);
    assert_eq!(
        rejected(check("999")).status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

/// A loader that answers with another resource (a wrong type or id: a bug in the service's
/// loader) gives attributes only: the policy decides, and the log records, the resource the route
/// names. Otherwise a loaded type of `Doc` would escape every rule written for `Document`.
#[derive(Debug)]
struct Impostor;

impl ResourceLoader for Impostor {
    fn load<'a>(
        &'a self,
        _: &'a Resource,
    ) -> BoxFuture<'a, Result<Option<Resource>, crate::LoadError>> {
        let other = Resource::new("Other")
            .with_id("1")
            .with_attribute("owner", "alice");
        Box::pin(std::future::ready(Ok(Some(other))))
    }
}

/// Allows the owner of the document the route names, and nothing else.
#[derive(Debug)]
struct ExactPolicy;

impl Authorizer for ExactPolicy {
    fn bind_route(&self, facts: &RequestFacts) -> RouteBinding {
        TestPolicy.bind_route(facts)
    }

    fn authorize(&self, who: &Identity, _: &Action, r: &Resource, _: &Context) -> Evaluation {
        let owner = r.attributes.get("owner").and_then(crate::Value::as_str);
        let exact = r.resource_type == "Document" && r.id.as_deref() == Some("3");
        match who.principal() {
            Some(p) if exact && Some(p.id.as_str()) == owner => Evaluation::permit(["owner"]),
            _ => Evaluation::not_permitted(),
        }
    }
}

#[test]
fn a_loader_gives_attributes_not_another_resource() {
    let sink = Arc::new(MemorySink::new());
    let g = Guard::builder()
        .authenticator(TestBearer)
        .policies(ExactPolicy)
        .resources(Impostor)
        .audit_arc(sink.clone())
        .build()
        .unwrap();
    let f = facts(Some("/docs/{id}"), "/docs/3", Some("Bearer good-alice"));
    let a = admitted(run(g.check(&f)));
    let resource = a.resource.as_ref().unwrap();
    assert_eq!(
        (resource.resource_type.as_str(), resource.id.as_deref()),
        ("Document", Some("3"))
    );
    assert_eq!(resource.attributes["owner"], crate::Value::from("alice"));
    let events = sink.events();
    let target = events[0].target.as_ref().unwrap();
    assert_eq!(
        (
            target.resource_type.as_deref(),
            target.resource_id.as_deref()
        ),
        (Some("Document"), Some("3"))
    );
}

/// A resource that cannot be loaded is refused with 503 and recorded as a denial (`unavailable`),
/// like every other refusal.
#[test]
fn an_unloadable_resource_is_refused_and_recorded() {
    let sink = Arc::new(MemorySink::new());
    let g = Guard::builder()
        .authenticator(TestBearer)
        .policies(OwnerPolicy)
        .resources(Owners)
        .audit_arc(sink.clone())
        .build()
        .unwrap();
    let f = facts(Some("/docs/{id}"), "/docs/999", Some("Bearer good-alice"));
    assert_eq!(
        rejected(run(g.check(&f))).status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let events = sink.events();
    assert_eq!(events.len(), 1, "{events:?}");
    let EventKind::Authorization {
        decision, reason, ..
    } = &events[0].kind
    else {
        panic!("{events:?}");
    };
    assert_eq!((*decision, *reason), (Decision::Deny, Reason::Unavailable));
    assert_eq!(events[0].actor.as_ref().unwrap().id, "alice");
    let target = events[0].target.as_ref().unwrap();
    assert_eq!(target.resource_id.as_deref(), Some("999"));
    assert_eq!(target.action.as_deref(), Some("read"));
}

/// A handler-level check for an anonymous caller (on a public route) is refused with 401 and
/// recorded as a denial, like the guard's own refusal of anonymous callers.
#[test]
fn handler_level_check_of_an_anonymous_caller_is_recorded() {
    let sink = Arc::new(MemorySink::new());
    let g = guard(sink.clone());
    run(async {
        let a = admitted(g.check(&facts(Some("/health"), "/health", None)).await);
        let doc = Resource::new("Document").with_id("7");
        let r = g
            .authorize(&a, &Action::new("read"), &doc)
            .await
            .unwrap_err();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    });
    let events = sink.events();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(matches!(
        events[1].kind,
        EventKind::Authorization {
            decision: Decision::Deny,
            reason: Reason::NotPermitted,
            ..
        }
    ));
    assert!(events[1].actor.is_none());
    let target = events[1].target.as_ref().unwrap();
    assert_eq!(target.route.as_deref(), Some("/health"));
    assert_eq!(target.resource_id.as_deref(), Some("7"));
}

fn completions(sink: &MemorySink) -> Vec<u16> {
    sink.events()
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::RequestCompleted { status, .. } => Some(status),
            _ => None,
        })
        .collect()
}

/// A request's completion is recorded exactly once: with the handler's status when finished,
/// with 499 when abandoned (dropped), with 500 when its handler panicked.
#[test]
fn a_completion_is_recorded_exactly_once_even_when_abandoned() {
    let sink = Arc::new(MemorySink::new());
    let g = guard(sink.clone());
    let f = facts(Some("/docs/{id}"), "/docs/7", Some("Bearer good-alice"));
    let admitted = Admitted::new(g.clone(), admitted(run(g.check(&f))));

    run(admitted.completion().finish(204)).unwrap();
    assert_eq!(
        completions(&sink),
        [204],
        "finished: recorded once, not again on drop"
    );

    drop(admitted.completion());
    assert_eq!(completions(&sink), [204, 499], "abandoned");

    let completion = admitted.completion();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _completion = completion;
        panic!("the handler panicked");
    }));
    assert!(panicked.is_err());
    assert_eq!(completions(&sink), [204, 499, 500], "panicked");

    admitted.completion().finish_detached(502);
    assert_eq!(completions(&sink), [204, 499, 500, 502]);
}

/// A request the adapter found malformed is refused with 400 after authentication, and recorded;
/// bad credentials on it are an authentication failure first.
#[test]
fn a_malformed_request_is_refused_after_authentication_and_recorded() {
    let sink = Arc::new(MemorySink::new());
    let g = guard(sink.clone());
    let f = facts(Some("/docs/{id}"), "/docs/%ff", Some("Bearer good-alice"))
        .with_malformed("a path parameter is not valid UTF-8 once decoded");
    let r = rejected(run(g.check(&f)));
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let f = facts(Some("/docs/{id}"), "/docs/%ff", Some("Bearer forged"))
        .with_malformed("a path parameter is not valid UTF-8 once decoded");
    assert_eq!(
        rejected(run(g.check(&f))).status(),
        StatusCode::UNAUTHORIZED
    );
    let events = sink.events();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(matches!(
        events[0].kind,
        EventKind::Authorization {
            decision: Decision::Deny,
            reason: Reason::Malformed,
            ..
        }
    ));
    assert_eq!(events[0].actor.as_ref().unwrap().id, "alice");
    assert!(matches!(
        events[1].kind,
        EventKind::Authentication {
            outcome: AuthnOutcome::Failure,
            ..
        }
    ));
}

/// Replaces the policy of a handle while it loads the resource: a hot reload in the middle of a
/// request.
#[derive(Debug)]
struct ReloadingLoader {
    handle: crate::policy::PolicyHandle,
    next: &'static str,
}

impl ResourceLoader for ReloadingLoader {
    fn load<'a>(
        &'a self,
        resource: &'a Resource,
    ) -> BoxFuture<'a, Result<Option<Resource>, crate::LoadError>> {
        let result = self
            .handle
            .replace_toml(self.next, "next.toml")
            .map(|()| Some(resource.clone()))
            .map_err(|_| crate::LoadError("the next policy does not load"));
        Box::pin(std::future::ready(result))
    }
}

/// A policy reloaded between mapping the route and deciding does not split the request: the
/// route of the old policy (`api:docs:read`) is not decided by the rules of the new one, which
/// do not mention it (each policy alone allows the request).
#[test]
fn a_reload_during_a_request_does_not_split_it_across_two_policies() {
    let policy = |version: &str, action: &str| {
        format!(
            "version = \"{version}\"\n\
             [[rules]]\nid = \"read\"\neffect = \"allow\"\nactions = [\"{action}\"]\n\
             [[routes]]\nmethod = \"GET\"\nroute = \"/docs/{{id}}\"\naction = \"{action}\"\n\
             resource = \"Document\"\nid = \"id\"\n"
        )
    };
    let (v1, v2) = (policy("v1", "api:docs:read"), policy("v2", "docs:read"));
    let handle = crate::policy::PolicyHandle::from_toml(&v1, "v1.toml").unwrap();
    let g = Guard::builder()
        .authenticator(TestBearer)
        .policies(handle.clone())
        .resources(ReloadingLoader {
            handle: handle.clone(),
            next: v2.leak(),
        })
        .audit_disabled()
        .build()
        .unwrap();
    let f = facts(Some("/docs/{id}"), "/docs/1", Some("Bearer good-ann"));
    let a = admitted(run(g.check(&f)));
    assert_eq!(a.evaluation.policy_version.as_deref(), Some("v1"));
    assert_eq!(a.action.as_ref().map(Action::as_str), Some("api:docs:read"));
    // The reload took effect: the next request is mapped and decided by v2.
    assert_eq!(handle.current().version(), "v2");
    let a = admitted(run(g.check(&f)));
    assert_eq!(a.evaluation.policy_version.as_deref(), Some("v2"));
    assert_eq!(a.action.as_ref().map(Action::as_str), Some("docs:read"));
}

/// Names the headers it reads its credential from.
#[derive(Debug)]
struct Carries(Vec<::http::HeaderName>);

impl Authenticator for Carries {
    fn authenticate<'a>(
        &'a self,
        _: &'a RequestFacts,
    ) -> BoxFuture<'a, Result<Identity, AuthnError>> {
        Box::pin(std::future::ready(Ok(Identity::Anonymous)))
    }
    fn credential_headers(&self) -> &[::http::HeaderName] {
        &self.0
    }
}

#[test]
fn credential_headers_lists_each_unmarked_header_once() {
    let name = ::http::HeaderName::from_static;
    let guard = Guard::builder()
        .authenticator(Carries(vec![name("x-client"), header::AUTHORIZATION]))
        .authenticator(Carries(vec![
            name("x-api-key"),
            name("x-client"),
            name("x-peer"),
        ]))
        .authenticator(TestBearer)
        .policies(TestPolicy)
        .audit_disabled()
        .build()
        .unwrap();
    // `authorization` and `x-api-key` are marked by the facts themselves.
    assert_eq!(
        guard.credential_headers(),
        [name("x-client"), name("x-peer")]
    );
}
