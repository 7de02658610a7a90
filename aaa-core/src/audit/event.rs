use std::{net::IpAddr, sync::Arc};

use serde::{Deserialize, Serialize};

use crate::{
    AuthMethod, CredentialRef, Decision, EvaluationError, Principal, PrincipalKind, Reason,
    Timestamp,
};

/// Longest untrusted string (user agent, request id, resource id) kept in an event, in bytes.
pub const MAX_UNTRUSTED_LEN: usize = 256;

/// Cuts `text` to at most [`MAX_UNTRUSTED_LEN`] bytes at a character boundary and replaces
/// control characters (CR, LF, NUL, ...) with `\u{fffd}`, so an untrusted string can neither grow
/// a record without bound nor forge a line.
pub fn truncate_untrusted(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_UNTRUSTED_LEN));
    for c in text.chars() {
        let c = if c.is_control() { '\u{fffd}' } else { c };
        if out.len() + c.len_utf8() > MAX_UNTRUSTED_LEN {
            break;
        }
        out.push(c);
    }
    out
}

/// One thing that happened, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When it happened.
    pub time: Timestamp,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
    /// Who did it, if known. Shared (`Arc`): a request's decision and completion events name
    /// the same actor, target and request without copying them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Arc<Actor>>,
    /// What it was done to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Arc<Target>>,
    /// The request it happened in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Arc<RequestInfo>>,
}

impl AuditEvent {
    /// An event of `kind` at `time` with no actor, target or request.
    pub fn new(time: Timestamp, kind: EventKind) -> Self {
        AuditEvent {
            time,
            kind,
            actor: None,
            target: None,
            request: None,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// Credentials were checked.
    Authentication {
        /// Success or failure.
        outcome: AuthnOutcome,
        /// A stable reason code for a failure (see [`AuthnError::reason_code`](crate::AuthnError::reason_code)).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A request was authorized or refused.
    Authorization {
        /// Allow or deny.
        decision: Decision,
        /// Why.
        reason: Reason,
        /// The determining rules.
        #[serde(default)]
        rules: Vec<Arc<str>>,
        /// Rules that failed to evaluate.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        errors: Vec<EvaluationError>,
        /// The version of the policy that decided.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy_version: Option<Arc<str>>,
    },
    /// The handler answered.
    RequestCompleted {
        /// The response status code.
        status: u16,
        /// Time from the start of the check to the answer, in microseconds.
        latency_us: u64,
    },
    /// The service changed an identity (an API the service calls).
    IdentityChange {
        /// What changed.
        change: IdentityChange,
        /// The principal whose identity changed.
        subject: String,
        /// The role or key involved, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
}

/// Success or failure of authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthnOutcome {
    /// The credentials were valid.
    Success,
    /// They were not.
    Failure,
}

impl AuthnOutcome {
    /// `success` or `failure`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthnOutcome::Success => "success",
            AuthnOutcome::Failure => "failure",
        }
    }
}

/// A change to an identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum IdentityChange {
    /// A principal was created.
    PrincipalCreated,
    /// A principal's attributes changed.
    PrincipalChanged,
    /// A principal was disabled.
    PrincipalDisabled,
    /// A role was granted.
    RoleGranted,
    /// A role was revoked.
    RoleRevoked,
    /// An API key was issued.
    ApiKeyIssued,
    /// An API key was revoked.
    ApiKeyRevoked,
}

/// Who acted, as recorded: never the credential, only a reference to it.
///
/// Fields are declared in key order, so the canonical encoder writes them without sorting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// A reference to the credential.
    pub credential: CredentialRef,
    /// The principal's id.
    pub id: String,
    /// Who vouched for it.
    pub issuer: String,
    /// User, service or device.
    pub kind: PrincipalKind,
    /// How it authenticated.
    pub method: AuthMethod,
    /// Whether more than one factor was used.
    pub mfa: bool,
    /// Its tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

impl From<&Principal> for Actor {
    fn from(p: &Principal) -> Self {
        Actor {
            id: p.id.clone(),
            kind: p.kind,
            issuer: p.issuer.clone(),
            tenant: p.tenant.clone(),
            method: p.auth.method,
            mfa: p.auth.mfa,
            credential: p.auth.credential.clone(),
        }
    }
}

/// What an action was done to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The resource id (cut with [`truncate_untrusted`]: it can come from the path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// The resource type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// The route template the router matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The resource's tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// The request an event happened in. No headers, query, or body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestInfo {
    /// A credential the request carried that was ignored by design, as a stable code
    /// ([`Authenticator::ignored`](crate::Authenticator::ignored)):
    /// `forwarded_identity_from_untrusted_peer` for a forwarded client identity
    /// (`x-forwarded-client-cert`) from a peer that is not a trusted proxy, a forgery attempt or
    /// a misconfigured proxy list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored_credential: Option<String>,
    /// The HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The peer address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_ip: Option<IpAddr>,
    /// The service identity (a SPIFFE ID) that a trusted proxy forwarded for the hop that relayed
    /// the request on its principal's behalf: a mesh service passing a user's token on. The
    /// principal (the `actor`) is the token's; absent when the forwarded identity is the
    /// principal itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relayed_by: Option<String>,
    /// The request id (untrusted, cut).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The W3C trace id from `traceparent`, when well-formed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The `User-Agent` (untrusted, cut).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_strings_are_cut_and_cannot_break_lines() {
        assert_eq!(
            truncate_untrusted("curl/8\r\nseq: 1"),
            "curl/8\u{fffd}\u{fffd}seq: 1"
        );
        let long = "é".repeat(1000);
        let cut = truncate_untrusted(&long);
        assert!(cut.len() <= MAX_UNTRUSTED_LEN);
        assert!(cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn serde_round_trip() {
        let p = Principal::new("alice", PrincipalKind::User, "https://idp");
        let mut e = AuditEvent::new(
            Timestamp::from_unix_seconds(1),
            EventKind::Authorization {
                decision: Decision::Deny,
                reason: Reason::Forbidden,
                rules: vec!["deny-suspended".into()],
                errors: vec![],
                policy_version: Some("v1".into()),
            },
        );
        e.actor = Some(Arc::new(Actor::from(&p)));
        e.target = Some(Arc::new(Target {
            action: Some("read".into()),
            resource_type: Some("Document".into()),
            resource_id: Some("d1".into()),
            tenant: None,
            route: Some("/docs/{id}".into()),
        }));
        e.request = Some(Arc::new(RequestInfo {
            request_id: Some("r1".into()),
            peer_ip: Some("127.0.0.1".parse().unwrap()),
            ..RequestInfo::default()
        }));
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains("\"event\":\"authorization\""), "{json}");
        assert_eq!(serde_json::from_str::<AuditEvent>(&json).unwrap(), e);
        for kind in [
            EventKind::Authentication {
                outcome: AuthnOutcome::Failure,
                reason: Some("invalid".into()),
            },
            EventKind::RequestCompleted {
                status: 204,
                latency_us: 9,
            },
            EventKind::IdentityChange {
                change: IdentityChange::RoleGranted,
                subject: "bob".into(),
                detail: Some("editor".into()),
            },
        ] {
            let e = AuditEvent::new(Timestamp::UNIX_EPOCH, kind);
            let json = serde_json::to_string(&e).unwrap();
            assert_eq!(serde_json::from_str::<AuditEvent>(&json).unwrap(), e);
        }
    }
}
