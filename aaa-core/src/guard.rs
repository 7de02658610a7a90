//! The [`Guard`]: the one entry point adapters call.
//!
//! `Guard::check` runs authenticate → map the matched route to (action, resource) → authorize →
//! audit, and answers with an [`Outcome`]: go on (with the identity and the decision) or a
//! [`Rejection`].

use std::{fmt, marker::PhantomData, sync::Arc};

use tracing::trace;

use crate::{
    Action, Authenticator, Authorizer, Clock, Context, Evaluation, Identity, Principal, Reason,
    Resource, ResourceLoader, RouteBinding, SystemClock, Timestamp,
    audit::{
        Actor, AuditEvent, AuditReceipt, AuditSink, AuthnOutcome, EventKind, RequestInfo, Target,
        truncate_untrusted,
    },
    http::{Rejection, RequestFacts},
};

/// What [`Guard::authenticate`] found in a request.
struct Found {
    identity: Identity,
    /// The code of a credential an authenticator ignored
    /// ([`Authenticator::ignored`](crate::Authenticator::ignored)).
    ignored: Option<&'static str>,
    /// The forwarded service identity of the hop that relayed another principal's request.
    relayed_by: Option<String>,
}

/// The result of [`Guard::check`].
#[derive(Debug, Clone)]
#[must_use]
pub enum Outcome {
    /// The request may go on to its handler. Shared, so that an adapter keeps it for the
    /// handler's extractors without moving it again.
    Proceed(Arc<Admission>),
    /// The request is refused with this rejection.
    Reject(Rejection),
}

/// A request that passed the guard: who made it, what was decided, and where it was recorded.
#[derive(Debug, Clone)]
pub struct Admission {
    /// The caller (possibly anonymous, on a public route).
    pub identity: Identity,
    /// The decision that let the request through.
    pub evaluation: Evaluation,
    /// What the route asks for, unless it is public.
    pub action: Option<Action>,
    /// The resource the route acts upon, unless it is public.
    pub resource: Option<Resource>,
    /// Where the route-level decision was recorded, if the sink gives receipts. For the
    /// receipt of a response, see [`answer_receipt`](Self::answer_receipt).
    pub receipt: Option<AuditReceipt>,
    started: Timestamp,
    request: Arc<RequestInfo>,
    route: Option<String>,
    /// The actor and target of the decision event, shared with the completion event.
    actor: Option<Arc<Actor>>,
    target: Arc<Target>,
    /// Whether a handler refused the caller for being anonymous, and whether that is recorded.
    anonymous_refusal: AnonymousRefusal,
    /// The receipt of the last decision recorded after admission, if any was.
    later_decision: LaterDecision,
}

/// The receipt of the last decision recorded for an admitted request after its admission (a
/// handler-level check, or the denial of an anonymous caller an extractor refused): `None` while
/// there is none, `Some(None)` when it gave no receipt (or could not be recorded).
#[derive(Debug, Default)]
struct LaterDecision(std::sync::Mutex<Option<Option<AuditReceipt>>>);

impl LaterDecision {
    fn set(&self, receipt: Option<AuditReceipt>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(receipt);
    }

    fn get(&self) -> Option<Option<AuditReceipt>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Clone for LaterDecision {
    fn clone(&self) -> Self {
        LaterDecision(std::sync::Mutex::new(self.get()))
    }
}

/// A refusal of an anonymous caller after admission: none, pending (the answer is aaa's 401 from
/// an extractor, to be recorded with the completion), or recorded (a handler-level check recorded
/// its own, which the answer's 401 must not repeat).
#[derive(Debug, Default)]
struct AnonymousRefusal(std::sync::atomic::AtomicU8);

impl AnonymousRefusal {
    const PENDING: u8 = 1;
    const RECORDED: u8 = 2;

    /// Pending, unless one is recorded already.
    fn mark_pending(&self) {
        let _ = self.0.compare_exchange(
            0,
            Self::PENDING,
            std::sync::atomic::Ordering::AcqRel,
            std::sync::atomic::Ordering::Acquire,
        );
    }

    fn mark_recorded(&self) {
        self.0
            .store(Self::RECORDED, std::sync::atomic::Ordering::Release);
    }

    /// Marks a pending refusal recorded; whether it was pending.
    fn take_pending(&self) -> bool {
        self.0
            .compare_exchange(
                Self::PENDING,
                Self::RECORDED,
                std::sync::atomic::Ordering::AcqRel,
                std::sync::atomic::Ordering::Acquire,
            )
            .is_ok()
    }
}

impl Clone for AnonymousRefusal {
    fn clone(&self) -> Self {
        AnonymousRefusal(std::sync::atomic::AtomicU8::new(
            self.0.load(std::sync::atomic::Ordering::Acquire),
        ))
    }
}

/// An admitted request, as adapters leave it in the request for extractors: the guard and the
/// [`Admission`], for handler-level decisions and the completion record. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Admitted {
    guard: Guard,
    admission: Arc<Admission>,
}

impl Admission {
    /// The route template the decision was made for (`None` only for requests no route
    /// matched, which are never admitted).
    pub fn route(&self) -> Option<&str> {
        self.route.as_deref()
    }

    /// Where the decision behind the request's answer was recorded, for the answer's receipt:
    /// the last decision recorded after admission (a handler-level check, such as the denial a
    /// 403 answers, or the denial of an anonymous caller that an extractor refused with 401),
    /// else the route-level decision ([`receipt`](Self::receipt)). `None` when that record gave
    /// no receipt, or could not be made (the answer is then a 503): never the receipt of an
    /// allow for a request a later check refused.
    pub fn answer_receipt(&self) -> Option<AuditReceipt> {
        match self.later_decision.get() {
            Some(later) => later,
            None => self.receipt.clone(),
        }
    }
}

impl Admitted {
    /// The admission `guard` gave (as [`Outcome::Proceed`] holds it, or by value).
    pub fn new(guard: Guard, admission: impl Into<Arc<Admission>>) -> Self {
        Admitted {
            guard,
            admission: admission.into(),
        }
    }

    /// What the guard decided.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// The caller.
    pub fn identity(&self) -> &Identity {
        &self.admission.identity
    }

    /// The authenticated principal.
    ///
    /// # Errors
    ///
    /// A 401 [`Rejection`] (with the guard's realm) when the caller is anonymous.
    pub fn principal(&self) -> Result<Arc<Principal>, Rejection> {
        match &self.admission.identity {
            Identity::Authenticated(p) => Ok(Arc::clone(p)),
            Identity::Anonymous => Err(self.guard.rejection(Rejection::missing_credentials())),
        }
    }

    /// Decides, at handler level, `action` on a resource the handler has loaded; audited like
    /// the guard's own decisions. See [`Guard::authorize`].
    ///
    /// # Errors
    ///
    /// The [`Rejection`] to answer with (401 anonymous, 403 denied, 503 audit unavailable).
    pub async fn check(
        &self,
        action: impl Into<Action>,
        resource: &Resource,
    ) -> Result<Evaluation, Rejection> {
        self.guard
            .authorize(&self.admission, &action.into(), resource)
            .await
    }

    /// Records the request's completion. See [`Guard::complete`].
    ///
    /// # Errors
    ///
    /// The 503 [`Rejection`] when the record cannot be made in strict audit mode.
    pub async fn complete(&self, status: u16) -> Result<(), Rejection> {
        self.guard.complete(&self.admission, status).await
    }

    /// The request's completion record: see [`Completion`]. For adapters, which take one per
    /// request before running the handler, so that a request abandoned on the way is recorded
    /// too; each `Completion` makes one record, so a handler must not take another.
    pub fn completion(&self) -> Completion {
        Completion(Some(self.clone()))
    }
}

/// The completion record of an admitted request, made exactly once: by
/// [`finish`](Completion::finish) with the response's status or, when the request is abandoned
/// before its handler answers, when dropped: with status 499 (the client closed the request and
/// the server dropped it, as nginx records it) or 500 (the handler panicked).
///
/// A record made on drop cannot wait: it is handed to the sink at once and, if the sink needs
/// to wait (a strict durability mode), finished on the current Tokio runtime.
#[derive(Debug)]
#[must_use = "dropping it records the request as abandoned (499)"]
pub struct Completion(Option<Admitted>);

impl Completion {
    /// Records the completion with the response's `status`.
    ///
    /// # Errors
    ///
    /// The 503 [`Rejection`] when the record cannot be made in strict audit mode.
    pub async fn finish(mut self, status: u16) -> Result<(), Rejection> {
        match self.0.take() {
            Some(admitted) => admitted.complete(status).await,
            None => Ok(()),
        }
    }

    /// Tells the completion which of aaa's rejections, if any, the answer carries (adapters find
    /// it in the response's extensions, or in an error passed on). When it is aaa's 401 refusing
    /// the anonymous caller (an extractor's rejection), the refusal is recorded as a denial before
    /// the completion, like every refusal, unless a handler-level check recorded it already. A
    /// handler that serves the caller anyway (`Option<Authenticated>`) or answers a 401 of its
    /// own has nothing recorded.
    pub fn answered_with(&self, rejection: Option<&Rejection>) {
        if let Some(admitted) = &self.0
            && !admitted.identity().is_authenticated()
            && rejection.is_some_and(|r| r.kind() == crate::http::RejectionKind::MissingCredentials)
        {
            admitted.admission.anonymous_refusal.mark_pending();
        }
    }

    /// Records the completion with `status` without waiting, as a drop does, for callers that
    /// cannot wait (the record is finished on the current Tokio runtime if the sink must wait).
    pub fn finish_detached(mut self, status: u16) {
        self.detach(status);
    }

    fn detach(&mut self, status: u16) {
        if let Some(admitted) = self.0.take() {
            admitted
                .guard
                .complete_detached(&admitted.admission, status);
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        self.detach(if std::thread::panicking() { 500 } else { 499 });
    }
}

/// The guard could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No audit sink was configured, and auditing was not explicitly disabled.
    #[error(
        "no audit sink is configured: call `.audit(sink)`, or `.audit_disabled()` to run without one"
    )]
    MissingAudit,
}

/// Typestate marker: the builder has no policy yet, so it cannot build.
#[derive(Debug)]
pub struct NeedsPolicy(());

/// Typestate marker: the builder has a policy and can build.
#[derive(Debug)]
pub struct HasPolicy(());

/// Builds a [`Guard`]. Get one from [`Guard::builder`].
///
/// `build` exists only once `.policies(..)` has been called: a guard without an authorizer does not
/// compile. If the compiler says "no method named `build` found for struct
/// `GuardBuilder<NeedsPolicy>`", add `.policies(your_authorizer)`.
#[must_use]
pub struct GuardBuilder<State> {
    authenticators: Vec<Arc<dyn Authenticator>>,
    authorizer: Option<Arc<dyn Authorizer>>,
    audit: Option<Arc<dyn AuditSink>>,
    audit_disabled: bool,
    loader: Option<Arc<dyn ResourceLoader>>,
    clock: Arc<dyn Clock>,
    realm: String,
    _state: PhantomData<State>,
}

impl<S> fmt::Debug for GuardBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardBuilder")
            .field("authenticators", &self.authenticators)
            .field("authorizer", &self.authorizer)
            .field("audit", &self.audit)
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

impl<S> GuardBuilder<S> {
    /// Adds an authenticator. All are run; a request carrying credentials for two is refused.
    pub fn authenticator(mut self, authenticator: impl Authenticator + 'static) -> Self {
        self.authenticators.push(Arc::new(authenticator));
        self
    }

    /// Adds a shared authenticator.
    pub fn authenticator_arc(mut self, authenticator: Arc<dyn Authenticator>) -> Self {
        self.authenticators.push(authenticator);
        self
    }

    /// Sets the audit sink.
    pub fn audit(mut self, sink: impl AuditSink + 'static) -> Self {
        self.audit = Some(Arc::new(sink));
        self
    }

    /// Sets a shared audit sink.
    pub fn audit_arc(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(sink);
        self
    }

    /// Runs without an audit log. Nothing is recorded; use only where another layer audits.
    pub fn audit_disabled(mut self) -> Self {
        self.audit_disabled = true;
        self
    }

    /// Sets the loader that fills in resource attributes before route-level decisions. Defaults
    /// to none: the policy sees only the resource type and id.
    pub fn resources(mut self, loader: impl ResourceLoader + 'static) -> Self {
        self.loader = Some(Arc::new(loader));
        self
    }

    /// Sets the clock. Defaults to [`SystemClock`].
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Sets the realm named in `WWW-Authenticate` challenges. Defaults to `aaa`.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
        self
    }

    /// Sets the authorizer (the policy set).
    pub fn policies(self, authorizer: impl Authorizer + 'static) -> GuardBuilder<HasPolicy> {
        self.policies_arc(Arc::new(authorizer))
    }

    /// Sets a shared authorizer, for example one whose policy can be swapped at run time.
    pub fn policies_arc(self, authorizer: Arc<dyn Authorizer>) -> GuardBuilder<HasPolicy> {
        GuardBuilder {
            authenticators: self.authenticators,
            authorizer: Some(authorizer),
            audit: self.audit,
            audit_disabled: self.audit_disabled,
            loader: self.loader,
            clock: self.clock,
            realm: self.realm,
            _state: PhantomData,
        }
    }
}

impl GuardBuilder<HasPolicy> {
    /// Builds the guard.
    ///
    /// # Errors
    ///
    /// [`ConfigError::MissingAudit`] when neither `.audit(..)` nor `.audit_disabled()` was called.
    pub fn build(self) -> Result<Guard, ConfigError> {
        let audit = match (self.audit, self.audit_disabled) {
            (Some(sink), _) => Some(sink),
            (None, true) => None,
            (None, false) => return Err(ConfigError::MissingAudit),
        };
        let Some(authorizer) = self.authorizer else {
            // Unreachable by typestate; fail closed rather than panic.
            return Err(ConfigError::MissingAudit);
        };
        // The credential headers the facts do not mark by themselves, once each.
        let mut credential_headers: Vec<::http::HeaderName> = Vec::new();
        for name in self
            .authenticators
            .iter()
            .flat_map(|a| a.credential_headers())
        {
            if !crate::http::marked_sensitive_by_default(name) && !credential_headers.contains(name)
            {
                credential_headers.push(name.clone());
            }
        }
        // The scheme challenges name: `Bearer` if an authenticator reads it, else the first
        // scheme named, else `Bearer` (RFC 6750's default).
        let schemes = || {
            self.authenticators
                .iter()
                .filter_map(|a| a.challenge_scheme())
        };
        let scheme = if schemes().any(|s| s.eq_ignore_ascii_case("bearer")) {
            None
        } else {
            schemes().next().map(str::to_owned)
        };
        Ok(Guard {
            inner: Arc::new(Inner {
                credential_headers,
                scheme,
                authenticators: self.authenticators,
                authorizer,
                audit,
                loader: self.loader,
                clock: self.clock,
                realm: self.realm,
            }),
        })
    }
}

struct Inner {
    authenticators: Vec<Arc<dyn Authenticator>>,
    /// The scheme 401 challenges name, when not `Bearer`.
    scheme: Option<String>,
    credential_headers: Vec<::http::HeaderName>,
    authorizer: Arc<dyn Authorizer>,
    audit: Option<Arc<dyn AuditSink>>,
    loader: Option<Arc<dyn ResourceLoader>>,
    clock: Arc<dyn Clock>,
    realm: String,
}

/// Authenticates, authorizes and audits requests. Cheap to clone, `Send + Sync`.
///
/// ```
/// use aaa_core::{Guard, Outcome};
/// # use aaa_core::{Action, Authorizer, Context, Evaluation, Identity, Resource, RouteBinding};
/// # use aaa_core::http::RequestFacts;
/// # #[derive(Debug)] struct DenyAll;
/// # impl Authorizer for DenyAll {
/// #     fn bind_route(&self, _: &RequestFacts) -> RouteBinding { RouteBinding::Public }
/// #     fn authorize(&self, _: &Identity, _: &Action, _: &Resource, _: &Context) -> Evaluation { Evaluation::not_permitted() }
/// # }
/// let guard = Guard::builder().policies(DenyAll).audit_disabled().build().unwrap();
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let facts = RequestFacts::new(http::Method::GET, "/health").with_matched_route("/health");
/// assert!(matches!(guard.check(&facts).await, Outcome::Proceed(_)));
/// # });
/// ```
#[derive(Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("authenticators", &self.inner.authenticators)
            .field("authorizer", &self.inner.authorizer)
            .field("audit", &self.inner.audit)
            .field("realm", &self.inner.realm)
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// Starts building a guard.
    pub fn builder() -> GuardBuilder<NeedsPolicy> {
        GuardBuilder {
            authenticators: Vec::new(),
            authorizer: None,
            audit: None,
            audit_disabled: false,
            loader: None,
            clock: Arc::new(SystemClock),
            realm: "aaa".to_owned(),
            _state: PhantomData,
        }
    }

    /// The clock the guard reads.
    pub fn clock(&self) -> &dyn Clock {
        &*self.inner.clock
    }

    /// The headers that carry a credential of one of the authenticators and that
    /// [`RequestFacts::with_headers`] does not mark sensitive by itself (an API-key header named
    /// without a credential word, say). Adapters pass them to
    /// [`RequestFacts::with_sensitive_headers`], so that the application's `Debug` of the
    /// request headers never shows the credential.
    pub fn credential_headers(&self) -> &[::http::HeaderName] {
        &self.inner.credential_headers
    }

    /// The authorizer the guard asks.
    pub fn authorizer(&self) -> &Arc<dyn Authorizer> {
        &self.inner.authorizer
    }

    /// The routes among `routes` (method, route template) that the policy does not map: requests
    /// to them will be denied. Call it at start-up with the service's routes to warn about them
    /// (neither axum nor actix-web lists a router's routes; the demo passes its own table).
    pub fn unmapped_routes<'r, I>(&self, routes: I) -> Vec<(::http::Method, &'r str)>
    where
        I: IntoIterator<Item = (::http::Method, &'r str)>,
    {
        routes
            .into_iter()
            .filter(|(method, template)| {
                let mut facts =
                    RequestFacts::new(method.clone(), *template).with_matched_route(*template);
                // The template's parameters (`{id}`, `{*rest}`, `{id:\\d+}`), with a sample value.
                for part in template.split('{').skip(1) {
                    let name = part.split('}').next().unwrap_or_default();
                    let name = name.split(':').next().unwrap_or_default();
                    facts = facts.with_param(name.trim_matches('*'), "x");
                }
                self.inner.authorizer.bind_route(&facts) == RouteBinding::Unmapped
            })
            .collect()
    }

    /// Checks one request: authenticate, map the route, authorize, audit.
    ///
    /// Fails closed: an authentication error, a route the policy does not know, an anonymous
    /// caller on a protected route, a deny, a resource that cannot be loaded, and an audit failure
    /// of an event whose durability waits (`Strict`, or `Block` when the queue stays full past
    /// its deadline) all reject.
    ///
    /// The route is mapped and decided by one [`Authorizer::snapshot`] of the authorizer, even if
    /// its policy is replaced meanwhile. Handler-level checks ([`Guard::authorize`]) read the
    /// policy in force when they run.
    pub async fn check(&self, facts: &RequestFacts) -> Outcome {
        let started = self.inner.clock.now();
        let Some(template) = facts.matched_route() else {
            return self.reject(Rejection::not_found());
        };
        let route = Some(template.to_owned());
        let mut request = Arc::new(request_info(facts));

        let identity = match self.authenticate(facts).await {
            Ok(found) => {
                // Named in every record of the request: a credential ignored by design (a
                // forwarded identity from an untrusted peer; the request goes on without it),
                // and the service that relayed another principal's request.
                if found.ignored.is_some() || found.relayed_by.is_some() {
                    let request = Arc::make_mut(&mut request);
                    request.ignored_credential = found.ignored.map(str::to_owned);
                    request.relayed_by = found.relayed_by;
                }
                found.identity
            }
            Err(error) => {
                let mut event = AuditEvent::new(
                    started,
                    EventKind::Authentication {
                        outcome: AuthnOutcome::Failure,
                        reason: Some(error.reason_code().to_owned()),
                    },
                );
                event.target = Some(Arc::new(Target {
                    route,
                    ..Target::default()
                }));
                event.request = Some(request);
                // Refusals are boxed where they happen, so that the future of an admitted
                // request does not carry room for them.
                return Box::pin(self.refuse(event, error.rejection())).await;
            }
        };

        if let Some(description) = facts.malformed() {
            // Refused before any decision, recorded like every refusal.
            let event = decision_event(
                started,
                &Evaluation::malformed(),
                identity.principal().map(|p| Arc::new(Actor::from(p))),
                Arc::new(target(None, None, route)),
                request,
            );
            return self
                .refuse(event, Rejection::bad_request(description))
                .await;
        }

        // One policy for the request: a reload while the resource is loaded must not make the
        // route mapping of one policy be decided by the rules of another.
        let snapshot = self.inner.authorizer.snapshot();
        let authorizer: &dyn Authorizer = snapshot.as_deref().unwrap_or(&*self.inner.authorizer);
        let (action, resource, evaluation) = match authorizer.bind_route(facts) {
            RouteBinding::Public => (None, None, Evaluation::public()),
            RouteBinding::Unmapped => (None, None, Evaluation::unmapped_route()),
            RouteBinding::Protected { action, resource } => {
                if !identity.is_authenticated() {
                    // Nobody to authorize: ask for credentials. Recorded as a denial.
                    let evaluation = Evaluation::not_permitted();
                    let event = decision_event(
                        started,
                        &evaluation,
                        None,
                        Arc::new(target(Some(&action), Some(&resource), route)),
                        request,
                    );
                    return Box::pin(self.refuse(event, Rejection::missing_credentials())).await;
                }
                let resource = match (&self.inner.loader, &resource.id) {
                    (Some(loader), Some(_)) => match loader.load(&resource).await {
                        // Attributes only: the type and id stay the route's, whatever the loader
                        // answers (a wrong one would escape the rules written for this type).
                        Ok(Some(loaded)) => Resource {
                            attributes: loaded.attributes,
                            ..resource
                        },
                        Ok(None) => resource,
                        Err(_) => {
                            // Fail closed, and record the refusal like any other denial.
                            let actor = identity.principal().map(|p| Arc::new(Actor::from(p)));
                            let event = decision_event(
                                started,
                                &Evaluation::unavailable(),
                                actor,
                                Arc::new(target(Some(&action), Some(&resource), route)),
                                request,
                            );
                            let rejection =
                                Rejection::unavailable("resource attributes are unavailable");
                            return Box::pin(self.refuse(event, rejection)).await;
                        }
                    },
                    _ => resource,
                };
                let context = context_of(facts, started, request.relayed_by.as_deref());
                let evaluation = authorizer.authorize(&identity, &action, &resource, &context);
                (Some(action), Some(resource), evaluation)
            }
        };

        let actor = identity.principal().map(|p| Arc::new(Actor::from(p)));
        let target = Arc::new(target(action.as_ref(), resource.as_ref(), route.clone()));
        let event = decision_event(
            started,
            &evaluation,
            actor.clone(),
            target.clone(),
            request.clone(),
        );
        // The sink takes the allow at once; should this future be dropped while the record is
        // made durable (the client went away), the request is recorded as abandoned.
        let abandoned = evaluation.is_allowed().then(|| Abandoned {
            guard: self,
            started,
            actor: &actor,
            target: &target,
            request: &request,
        });
        let recorded = self.record(event).await;
        std::mem::forget(abandoned);
        let receipt = match recorded {
            Ok(receipt) => receipt,
            Err(rejection) => return self.reject(rejection),
        };
        if !evaluation.is_allowed() {
            return self.reject(with_receipt(denial(&evaluation), receipt));
        }
        Outcome::Proceed(Arc::new(Admission {
            identity,
            evaluation,
            action,
            resource,
            receipt,
            started,
            request,
            route,
            actor,
            target,
            anonymous_refusal: AnonymousRefusal::default(),
            later_decision: LaterDecision::default(),
        }))
    }

    /// Decides, at handler level, whether the admitted caller may perform `action` on a resource
    /// the handler has loaded. Audited like the guard's own decisions.
    ///
    /// # Errors
    ///
    /// The [`Rejection`] to answer with: 401 for an anonymous caller, 403 for a deny, 503 when the
    /// decision cannot be recorded in strict audit mode.
    pub async fn authorize(
        &self,
        admission: &Admission,
        action: &Action,
        resource: &Resource,
    ) -> Result<Evaluation, Rejection> {
        let now = self.inner.clock.now();
        if !admission.identity.is_authenticated() {
            return Err(self.refuse_anonymous(admission, action, resource).await);
        }
        let mut context = Context::new(now);
        context.peer_ip = admission.request.peer_ip;
        context.request_id.clone_from(&admission.request.request_id);
        relayed_by_in(&mut context, admission.request.relayed_by.as_deref());
        let evaluation =
            self.inner
                .authorizer
                .authorize(&admission.identity, action, resource, &context);
        let event = decision_event(
            now,
            &evaluation,
            admission.actor.clone(),
            Arc::new(target(
                Some(action),
                Some(resource),
                admission.route.clone(),
            )),
            admission.request.clone(),
        );
        let receipt = self
            .record_later(admission, event)
            .await
            .map_err(|r| self.rejection(r))?;
        if evaluation.is_allowed() {
            Ok(evaluation)
        } else {
            Err(self.rejection(with_receipt(denial(&evaluation), receipt)))
        }
    }

    /// Records the completion of an admitted request: its status and latency.
    ///
    /// # Errors
    ///
    /// The 503 [`Rejection`] when the event cannot be recorded in strict audit mode. By then the
    /// handler has run; the adapter decides whether to replace its response.
    pub async fn complete(&self, admission: &Admission, status: u16) -> Result<(), Rejection> {
        if status == 401 && admission.anonymous_refusal.take_pending() {
            // An extractor refused the anonymous caller, and its 401 is the answer: recorded as a
            // denial before the completion. Dropped while it is made durable, the request is
            // recorded as abandoned; when it cannot be recorded, the client gets 503, and that
            // is the completion's status.
            let abandoned = Abandoned {
                guard: self,
                started: admission.started,
                actor: &admission.actor,
                target: &admission.target,
                request: &admission.request,
            };
            let denied = self
                .record_later(admission, self.anonymous_refusal_event(admission))
                .await;
            std::mem::forget(abandoned);
            if let Err(rejection) = denied {
                let status = rejection.status().as_u16();
                let _ = self.record(self.completion_event(admission, status)).await;
                return Err(rejection);
            }
        }
        self.record(self.completion_event(admission, status))
            .await
            .map(|_| ())
    }

    /// Records a completion without waiting: what [`Completion`] does when dropped.
    fn complete_detached(&self, admission: &Admission, status: u16) {
        self.record_detached(self.completion_event(admission, status));
    }

    /// Hands `event` to the sink without waiting for it.
    fn record_detached(&self, event: AuditEvent) {
        let Some(sink) = self.inner.audit.clone() else {
            return;
        };
        let mut record = Box::pin(async move {
            if sink.record(event).await.is_err() {
                tracing::warn!(target: "aaa::audit", "the completion of an abandoned request was not recorded");
            }
        });
        // Most sinks take the event at once; one that must wait finishes on the runtime.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        if record.as_mut().poll(&mut cx).is_pending() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(record)),
                Err(_) => tracing::warn!(
                    target: "aaa::audit",
                    "no runtime to finish recording the completion of an abandoned request"
                ),
            }
        }
    }

    fn completion_event(&self, admission: &Admission, status: u16) -> AuditEvent {
        self.completion_event_of(
            admission.started,
            &admission.actor,
            &admission.target,
            &admission.request,
            status,
        )
    }

    fn completion_event_of(
        &self,
        started: Timestamp,
        actor: &Option<Arc<Actor>>,
        target: &Arc<Target>,
        request: &Arc<RequestInfo>,
        status: u16,
    ) -> AuditEvent {
        let now = self.inner.clock.now();
        let latency = now.unix_micros().saturating_sub(started.unix_micros());
        let mut event = AuditEvent::new(
            now,
            EventKind::RequestCompleted {
                status,
                latency_us: u64::try_from(latency).unwrap_or(0),
            },
        );
        event.actor.clone_from(actor);
        event.target = Some(target.clone());
        event.request = Some(request.clone());
        event
    }

    /// Refuses an anonymous caller a handler-level check with 401, recorded as a denial like the
    /// guard's own refusals (or 503 when it cannot be recorded).
    async fn refuse_anonymous(
        &self,
        admission: &Admission,
        action: &Action,
        resource: &Resource,
    ) -> Rejection {
        // Recorded here: the 401 it answers is not recorded again with the completion.
        admission.anonymous_refusal.mark_recorded();
        let event = decision_event(
            self.inner.clock.now(),
            &Evaluation::not_permitted(),
            None,
            Arc::new(target(
                Some(action),
                Some(resource),
                admission.route.clone(),
            )),
            admission.request.clone(),
        );
        match self.record_later(admission, event).await {
            Ok(receipt) => self.rejection(with_receipt(Rejection::missing_credentials(), receipt)),
            Err(rejection) => self.rejection(rejection),
        }
    }

    /// The denial of an anonymous caller by a handler that requires a principal: the request's
    /// own action and resource.
    fn anonymous_refusal_event(&self, admission: &Admission) -> AuditEvent {
        decision_event(
            self.inner.clock.now(),
            &Evaluation::not_permitted(),
            None,
            admission.target.clone(),
            admission.request.clone(),
        )
    }

    /// Records a decision made after `admission` (a handler-level check, an anonymous caller's
    /// refusal): its receipt becomes the one of the request's answer
    /// ([`Admission::answer_receipt`]), none if it could not be recorded.
    async fn record_later(
        &self,
        admission: &Admission,
        event: AuditEvent,
    ) -> Result<Option<AuditReceipt>, Rejection> {
        let recorded = self.record(event).await;
        admission
            .later_decision
            .set(recorded.as_ref().ok().cloned().flatten());
        recorded
    }

    /// Records a refusal, then refuses with `rejection` (or 503 when it cannot be recorded).
    async fn refuse(&self, event: AuditEvent, rejection: Rejection) -> Outcome {
        match self.record(event).await {
            Ok(receipt) => self.reject(with_receipt(rejection, receipt)),
            Err(unrecorded) => self.reject(unrecorded),
        }
    }

    /// The request's identity: the one credential it carries. A service identity a trusted
    /// proxy forwarded beside another credential (a mesh service relaying a user's token) is
    /// the hop, not the caller: the other credential's principal is decided on, and the
    /// service is named as `relayed_by`. Two credentials otherwise, or two forwarded
    /// identities, are refused.
    async fn authenticate(&self, facts: &RequestFacts) -> Result<Found, crate::AuthnError> {
        let mut found = Identity::Anonymous;
        let mut forwarded = Identity::Anonymous;
        let mut ignored = None;
        for authenticator in &self.inner.authenticators {
            let identity = authenticator.authenticate(facts).await?;
            let slot = match identity.principal() {
                None => {
                    if ignored.is_none() {
                        ignored = authenticator.ignored(facts);
                    }
                    continue;
                }
                Some(p) if p.auth.method == crate::AuthMethod::ForwardedMtls => &mut forwarded,
                Some(_) => &mut found,
            };
            if slot.is_authenticated() {
                return Err(crate::AuthnError::MultipleCredentials);
            }
            *slot = identity;
        }
        Ok(match (found, forwarded) {
            (Identity::Anonymous, forwarded) => Found {
                identity: forwarded,
                ignored,
                relayed_by: None,
            },
            (found, forwarded) => Found {
                identity: found,
                ignored,
                relayed_by: forwarded.principal().map(|p| p.id.clone()),
            },
        })
    }

    async fn record(&self, event: AuditEvent) -> Result<Option<AuditReceipt>, Rejection> {
        let Some(sink) = &self.inner.audit else {
            return Ok(None);
        };
        sink.record(event)
            .await
            .map_err(|_| Rejection::unavailable("the audit log is unavailable"))
    }

    fn rejection(&self, rejection: Rejection) -> Rejection {
        let rejection = rejection.with_realm(&self.inner.realm);
        match &self.inner.scheme {
            Some(scheme) => rejection.with_scheme(scheme),
            None => rejection,
        }
    }

    fn reject(&self, rejection: Rejection) -> Outcome {
        let rejection = self.rejection(rejection);
        trace!(target: "aaa::rejection", status = rejection.status().as_u16(), kind = rejection.kind().code(), "request rejected");
        Outcome::Reject(rejection)
    }
}

/// `rejection`, with the receipt of the record of the refusal, if the sink gave one.
fn with_receipt(rejection: Rejection, receipt: Option<AuditReceipt>) -> Rejection {
    match receipt {
        Some(receipt) => rejection.with_receipt(receipt),
        None => rejection,
    }
}

/// Armed while an allowed decision is being recorded: dropped there (the check's future was
/// dropped, because the client went away), it records the request as abandoned (499), as
/// [`Completion`] does once the request is admitted. Forgotten once the record is made.
struct Abandoned<'a> {
    guard: &'a Guard,
    started: Timestamp,
    actor: &'a Option<Arc<Actor>>,
    target: &'a Arc<Target>,
    request: &'a Arc<RequestInfo>,
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        let status = if std::thread::panicking() { 500 } else { 499 };
        let event = self.guard.completion_event_of(
            self.started,
            self.actor,
            self.target,
            self.request,
            status,
        );
        self.guard.record_detached(event);
    }
}

fn denial(evaluation: &Evaluation) -> Rejection {
    match evaluation.reason {
        Reason::MissingScope => Rejection::insufficient_scope(None),
        _ => Rejection::forbidden(),
    }
}

fn context_of(facts: &RequestFacts, now: Timestamp, relayed_by: Option<&str>) -> Context {
    let mut context = Context::new(now);
    context.peer_ip = facts.peer().map(|p| p.ip());
    context.request_id = facts.request_id().map(str::to_owned);
    relayed_by_in(&mut context, relayed_by);
    context
}

/// The service that relayed the request (see [`RequestInfo::relayed_by`]), as the context
/// attribute `relayed_by`, for policies that declare it (`[schema.context] relayed_by =
/// "string"`).
fn relayed_by_in(context: &mut Context, relayed_by: Option<&str>) {
    if let Some(service) = relayed_by {
        context
            .attributes
            .insert("relayed_by".to_owned(), crate::Value::from(service));
    }
}

fn target(action: Option<&Action>, resource: Option<&Resource>, route: Option<String>) -> Target {
    Target {
        action: action.map(|a| a.as_str().to_owned()),
        resource_type: resource.map(|r| r.resource_type.clone()),
        resource_id: resource
            .and_then(|r| r.id.as_deref())
            .map(truncate_untrusted),
        tenant: resource
            .and_then(|r| r.attributes.get("tenant"))
            .and_then(crate::Value::as_str)
            .map(str::to_owned),
        route,
    }
}

fn decision_event(
    time: Timestamp,
    evaluation: &Evaluation,
    actor: Option<Arc<Actor>>,
    target: Arc<Target>,
    request: Arc<RequestInfo>,
) -> AuditEvent {
    let mut event = AuditEvent::new(
        time,
        EventKind::Authorization {
            decision: evaluation.decision,
            reason: evaluation.reason,
            rules: evaluation.rules.clone(),
            errors: evaluation.errors.clone(),
            policy_version: evaluation.policy_version.clone(),
        },
    );
    event.actor = actor;
    event.target = Some(target);
    event.request = Some(request);
    event
}

fn request_info(facts: &RequestFacts) -> RequestInfo {
    let headers = facts.headers();
    RequestInfo {
        ignored_credential: None,
        relayed_by: None,
        request_id: facts.request_id().map(truncate_untrusted),
        trace_id: headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(trace_id),
        method: Some(truncate_untrusted(facts.method().as_str())),
        peer_ip: facts.peer().map(|p| p.ip()),
        user_agent: headers
            .get(::http::header::USER_AGENT)
            .map(|v| truncate_untrusted(&String::from_utf8_lossy(v.as_bytes()))),
    }
}

/// The trace id of a W3C `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`), if well-formed
/// and not all zeros.
fn trace_id(traceparent: &str) -> Option<String> {
    let mut parts = traceparent.trim().split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let parent = parts.next()?;
    let flags = parts.next()?;
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let valid = hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0');
    valid.then(|| trace.to_owned())
}

#[cfg(test)]
mod tests;
