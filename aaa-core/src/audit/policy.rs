//! What to record, and how durably: the recording policy and the durability modes.

use std::time::Duration;

use super::{AuditEvent, EventKind};
use crate::Decision;

/// How much of an event is recorded (in the spirit of Kubernetes audit levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Level {
    /// Not recorded at all.
    None,
    /// Who, what, which resource, the decision and its reasons; no request attributes.
    Metadata,
    /// Metadata plus the request attributes (request id, trace id, method, peer IP, user agent).
    Request,
}

/// One rule of a [`RecordingPolicy`]: every condition given must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingRule {
    /// The route template (exact, or a prefix ending in `*`).
    pub route: Option<String>,
    /// The action.
    pub action: Option<String>,
    /// The decision (authorization events only).
    pub decision: Option<Decision>,
    /// What to record when the rule matches.
    pub level: Level,
}

impl RecordingRule {
    /// A rule matching everything, at `level`. Narrow it with the `with_*` methods.
    pub fn new(level: Level) -> Self {
        RecordingRule {
            route: None,
            action: None,
            decision: None,
            level,
        }
    }

    /// Only events on this route template (`/health`, or a prefix such as `/internal/*`).
    #[must_use]
    pub fn with_route(mut self, route: impl Into<String>) -> Self {
        self.route = Some(route.into());
        self
    }

    /// Only events for this action.
    #[must_use]
    pub fn with_action(mut self, action: impl Into<String>) -> Self {
        self.action = Some(action.into());
        self
    }

    /// Only authorization events with this decision.
    #[must_use]
    pub fn with_decision(mut self, decision: Decision) -> Self {
        self.decision = Some(decision);
        self
    }

    fn matches(&self, event: &AuditEvent) -> bool {
        let target = event.target.as_ref();
        let route_ok = self.route.as_deref().is_none_or(|want| {
            let Some(route) = target.and_then(|t| t.route.as_deref()) else {
                return false;
            };
            match want.strip_suffix('*') {
                Some(prefix) => route.starts_with(prefix),
                None => route == want,
            }
        });
        let action_ok = self
            .action
            .as_deref()
            .is_none_or(|want| target.and_then(|t| t.action.as_deref()) == Some(want));
        let decision_ok = self.decision.is_none_or(|want| match &event.kind {
            EventKind::Authorization { decision, .. } => *decision == want,
            _ => false,
        });
        route_ok && action_ok && decision_ok
    }
}

/// Decides how much of each event is recorded: the first matching rule wins; without a match,
/// [`Level::Request`]. Identity changes and the log's own records are always recorded.
///
/// ```
/// use aaa_core::audit::{AuditEvent, EventKind, Level, RecordingPolicy, RecordingRule, Target};
/// use aaa_core::Timestamp;
///
/// let policy = RecordingPolicy::new([RecordingRule::new(Level::None).with_route("/health")]);
/// let mut event = AuditEvent::new(Timestamp::UNIX_EPOCH, EventKind::RequestCompleted { status: 200, latency_us: 3 });
/// event.target = Some(std::sync::Arc::new(Target { route: Some("/health".into()), ..Target::default() }));
/// assert_eq!(policy.level(&event), Level::None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordingPolicy {
    rules: Vec<RecordingRule>,
}

impl RecordingPolicy {
    /// A policy from rules, tried in order.
    pub fn new(rules: impl IntoIterator<Item = RecordingRule>) -> Self {
        RecordingPolicy {
            rules: rules.into_iter().collect(),
        }
    }

    /// The level for `event`.
    pub fn level(&self, event: &AuditEvent) -> Level {
        if matches!(event.kind, EventKind::IdentityChange { .. }) {
            return Level::Request;
        }
        self.rules
            .iter()
            .find(|r| r.matches(event))
            .map_or(Level::Request, |r| r.level)
    }

    /// Applies the policy: `None` when the event is not recorded, else the event cut to its level.
    pub fn apply(&self, mut event: AuditEvent) -> Option<AuditEvent> {
        match self.level(&event) {
            Level::None => None,
            Level::Metadata => {
                event.request = None;
                Some(event)
            }
            Level::Request => Some(event),
        }
    }
}

/// How long a request waits for its event to be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// The request waits until its event is on disk (`fdatasync` done); if that fails, the
    /// request fails (503). The receipt names the event's place in the log. The wait for the disk
    /// is asynchronous; only a full queue blocks the calling thread, for at most
    /// [`strict_enqueue_timeout`](super::AuditWriterConfig::strict_enqueue_timeout).
    Strict,
    /// The request waits up to this long for room in the queue, then fails (503). It does not
    /// wait for the disk: the event is written within
    /// [`write_delay`](super::AuditWriterConfig::write_delay) and made durable with the next
    /// checkpoint or strict event. The wait happens only when the queue is full, and it blocks the
    /// calling thread (keep the deadline short: milliseconds).
    Block(Duration),
    /// The event is queued if there is room, else dropped and counted; the count is written later
    /// as a gap record. The request never waits. Written and synced as for `Block`.
    BestEffort,
}

/// The durability mode of each event kind.
///
/// Defaults: authorization decisions and identity changes are [`Durability::Strict`] (the
/// evidence of who was let in must exist before they are let in; group commit makes this one
/// `fdatasync` per batch, not per request); authentication events (mostly failures, which an
/// attacker can produce in bulk) block for at most 10 ms; request completions (recorded after
/// the handler ran) are best effort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurabilityPolicy {
    /// Authentication events. Defaults to `Block(10 ms)`.
    pub authentication: Durability,
    /// Authorization decisions. Defaults to `Strict`.
    pub authorization: Durability,
    /// Request completions. Defaults to `BestEffort`.
    pub request_completed: Durability,
    /// Identity lifecycle events. Defaults to `Strict`.
    pub identity_change: Durability,
}

impl Default for DurabilityPolicy {
    fn default() -> Self {
        DurabilityPolicy {
            authentication: Durability::Block(Duration::from_millis(10)),
            authorization: Durability::Strict,
            request_completed: Durability::BestEffort,
            identity_change: Durability::Strict,
        }
    }
}

impl DurabilityPolicy {
    /// The same mode for every kind.
    pub fn all(mode: Durability) -> Self {
        DurabilityPolicy {
            authentication: mode,
            authorization: mode,
            request_completed: mode,
            identity_change: mode,
        }
    }

    /// The mode for `kind`.
    pub fn for_kind(&self, kind: &EventKind) -> Durability {
        match kind {
            EventKind::Authentication { .. } => self.authentication,
            EventKind::Authorization { .. } => self.authorization,
            EventKind::RequestCompleted { .. } => self.request_completed,
            EventKind::IdentityChange { .. } => self.identity_change,
        }
    }
}
