//! Canonical JSON of an [`AuditEvent`], written by hand: the same bytes as
//! [`to_canonical`]`(event)`, without serde's detour for a flattened, internally tagged enum
//! (every key of the event object collected as an owned string, then the object sorted at run
//! time). The sequencer writes one or two events per request, so this is the hot path of the log.
//!
//! The keys are written in the order RFC 8785 asks (all keys are ASCII, so UTF-16 order is byte
//! order); the tests compare the output with [`to_canonical`] for every kind of event and every
//! combination of optional fields.

use crate::CredentialRef;

use super::{
    Actor, AuditEvent, EventKind, RequestInfo, Target,
    canonical::{CanonicalError, to_canonical},
    record::{write_array, write_json_string},
};

/// Writes the entries of one JSON object, in the order given, with commas between them.
struct Object<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Object<'a> {
    fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Object { out, first: true }
    }

    /// Starts the entry `key` (ASCII, nothing to escape) and returns the output for its value.
    fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    fn str(&mut self, key: &str, value: &str) {
        write_json_string(value, self.key(key));
    }

    fn opt_str(&mut self, key: &str, value: Option<&(impl AsRef<str> + ?Sized)>) {
        if let Some(value) = value {
            self.str(key, value.as_ref());
        }
    }

    fn uint(&mut self, key: &str, value: u64) {
        write_u64(value, self.key(key));
    }

    fn serde<T: serde::Serialize + ?Sized>(
        &mut self,
        key: &str,
        value: &T,
    ) -> Result<(), CanonicalError> {
        to_canonical(value, self.key(key))
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

/// Appends the canonical JSON of `event` to `out`.
///
/// # Errors
///
/// Never in practice: [`CanonicalError`] is kept for parity with [`to_canonical`].
pub fn encode_event(event: &AuditEvent, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    let mut o = Object::open(out);
    if let Some(actor) = &event.actor {
        encode_actor(actor, o.key("actor"))?;
    }
    // The kind's own keys interleave with the common ones (`event`, `request`, `target`,
    // `time`) in sorted order: actor, change, decision, detail, errors, event, latency_us,
    // outcome, policy_version, reason, request, rules, status, subject, target, time.
    match &event.kind {
        EventKind::Authentication { outcome, reason } => {
            o.str("event", "authentication");
            o.str("outcome", outcome.as_str());
            o.opt_str("reason", reason.as_ref());
            request_target_time(&mut o, event)?;
        }
        EventKind::Authorization {
            decision,
            reason,
            rules,
            errors,
            policy_version,
        } => {
            o.str("decision", decision.as_str());
            if !errors.is_empty() {
                o.serde("errors", errors)?;
            }
            o.str("event", "authorization");
            o.opt_str("policy_version", policy_version.as_ref());
            o.str("reason", reason.as_str());
            if let Some(request) = &event.request {
                encode_request(request, o.key("request"))?;
            }
            write_array(rules, o.key("rules"), |rule, out| {
                write_json_string(rule, out)
            });
            target_time(&mut o, event);
        }
        EventKind::RequestCompleted { status, latency_us } => {
            o.str("event", "request_completed");
            o.uint("latency_us", *latency_us);
            if let Some(request) = &event.request {
                encode_request(request, o.key("request"))?;
            }
            o.uint("status", u64::from(*status));
            target_time(&mut o, event);
        }
        EventKind::IdentityChange {
            change,
            subject,
            detail,
        } => {
            o.serde("change", change)?;
            o.opt_str("detail", detail.as_ref());
            o.str("event", "identity_change");
            if let Some(request) = &event.request {
                encode_request(request, o.key("request"))?;
            }
            o.str("subject", subject);
            target_time(&mut o, event);
        }
    }
    o.close();
    Ok(())
}

fn request_target_time(o: &mut Object<'_>, event: &AuditEvent) -> Result<(), CanonicalError> {
    if let Some(request) = &event.request {
        encode_request(request, o.key("request"))?;
    }
    target_time(o, event);
    Ok(())
}

fn target_time(o: &mut Object<'_>, event: &AuditEvent) {
    if let Some(target) = &event.target {
        encode_target(target, o.key("target"));
    }
    write_timestamp(event.time, o.key("time"));
}

/// Writes `ip` as a JSON string, as its `Display` text (which never needs escaping).
fn write_ip(ip: std::net::IpAddr, out: &mut Vec<u8>) {
    out.push(b'"');
    match ip {
        // Dotted decimal, without `fmt`'s detour: most peers are IPv4.
        std::net::IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                write_u64(u64::from(octet), out);
            }
        }
        std::net::IpAddr::V6(v6) => {
            use std::io::Write as _;
            // Writing into a `Vec` cannot fail.
            let _ = write!(out, "{v6}");
        }
    }
    out.push(b'"');
}

/// Writes `n` in decimal.
pub(crate) fn write_u64(mut n: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        if let Some(d) = digits.get_mut(at) {
            // `n % 10` is a single digit.
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(at..).unwrap_or_default());
}

/// Writes `time` as a JSON string (its text never needs escaping).
pub(crate) fn write_timestamp(time: crate::Timestamp, out: &mut Vec<u8>) {
    out.push(b'"');
    time.write_to(out);
    out.push(b'"');
}

fn encode_actor(actor: &Actor, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    let mut o = Object::open(out);
    {
        let mut c = Object::open(o.key("credential"));
        match &actor.credential {
            CredentialRef::None => c.str("type", "none"),
            CredentialRef::KeyId(id) => {
                c.str("type", "key_id");
                c.str("value", id);
            }
            CredentialRef::Sha256(hash) => {
                c.str("type", "sha256");
                c.str("value", hash);
            }
        }
        c.close();
    }
    o.str("id", &actor.id);
    o.str("issuer", &actor.issuer);
    o.str("kind", actor.kind.as_str());
    o.str("method", actor.method.as_str());
    o.key("mfa")
        .extend_from_slice(if actor.mfa { b"true" } else { b"false" });
    o.opt_str("tenant", actor.tenant.as_ref());
    o.close();
    Ok(())
}

fn encode_target(target: &Target, out: &mut Vec<u8>) {
    let mut o = Object::open(out);
    o.opt_str("action", target.action.as_ref());
    o.opt_str("resource_id", target.resource_id.as_ref());
    o.opt_str("resource_type", target.resource_type.as_ref());
    o.opt_str("route", target.route.as_ref());
    o.opt_str("tenant", target.tenant.as_ref());
    o.close();
}

fn encode_request(request: &RequestInfo, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    let mut o = Object::open(out);
    o.opt_str("ignored_credential", request.ignored_credential.as_ref());
    o.opt_str("method", request.method.as_ref());
    if let Some(ip) = &request.peer_ip {
        write_ip(*ip, o.key("peer_ip"));
    }
    o.opt_str("relayed_by", request.relayed_by.as_ref());
    o.opt_str("request_id", request.request_id.as_ref());
    o.opt_str("trace_id", request.trace_id.as_ref());
    o.opt_str("user_agent", request.user_agent.as_ref());
    o.close();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CredentialRef;
    use crate::{
        AuthMethod, Decision, EvaluationError, Principal, PrincipalKind, Reason, Timestamp,
        audit::{AuthnOutcome, IdentityChange},
    };

    fn kinds(s: &str) -> Vec<EventKind> {
        let mut out = Vec::new();
        for reason in [None, Some(s.to_owned())] {
            out.push(EventKind::Authentication {
                outcome: AuthnOutcome::Failure,
                reason,
            });
        }
        for (errors, policy_version, rules) in [
            (vec![], None, vec![]),
            (
                vec![EvaluationError {
                    rule: s.into(),
                    message: "m\n".into(),
                }],
                Some(s.into()),
                vec!["a".into(), s.into()],
            ),
        ] {
            out.push(EventKind::Authorization {
                decision: Decision::Deny,
                reason: Reason::Forbidden,
                rules,
                errors,
                policy_version,
            });
        }
        out.push(EventKind::RequestCompleted {
            status: 503,
            latency_us: u64::MAX,
        });
        for detail in [None, Some(s.to_owned())] {
            out.push(EventKind::IdentityChange {
                change: IdentityChange::ApiKeyRevoked,
                subject: s.into(),
                detail,
            });
        }
        out
    }

    #[test]
    fn writes_integers_as_format_does() {
        for n in [
            0,
            1,
            9,
            10,
            99,
            100,
            12_345,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            write_u64(n, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }

    /// The names written by hand are serde's.
    #[test]
    fn enum_names_are_serdes() {
        let json = |v: &dyn erased::Ser| v.json();
        for kind in [
            PrincipalKind::User,
            PrincipalKind::Service,
            PrincipalKind::Device,
        ] {
            assert_eq!(json(&kind), format!("\"{}\"", kind.as_str()));
        }
        for method in [
            AuthMethod::Jwt,
            AuthMethod::ApiKey,
            AuthMethod::ForwardedMtls,
        ] {
            assert_eq!(json(&method), format!("\"{}\"", method.as_str()));
        }
        for decision in [Decision::Allow, Decision::Deny] {
            assert_eq!(json(&decision), format!("\"{}\"", decision.as_str()));
        }
        for reason in [
            Reason::Permitted,
            Reason::Public,
            Reason::Forbidden,
            Reason::NotPermitted,
            Reason::MissingScope,
            Reason::UnmappedRoute,
            Reason::Unavailable,
            Reason::Malformed,
        ] {
            assert_eq!(json(&reason), format!("\"{}\"", reason.as_str()));
        }
        for outcome in [AuthnOutcome::Success, AuthnOutcome::Failure] {
            assert_eq!(json(&outcome), format!("\"{}\"", outcome.as_str()));
        }
        for (cred, text) in [
            (CredentialRef::None, r#"{"type":"none"}"#),
            (
                CredentialRef::KeyId("k".into()),
                r#"{"type":"key_id","value":"k"}"#,
            ),
            (
                CredentialRef::Sha256("h".into()),
                r#"{"type":"sha256","value":"h"}"#,
            ),
        ] {
            assert_eq!(json(&cred), text);
        }
    }

    mod erased {
        pub(super) trait Ser {
            fn json(&self) -> String;
        }
        impl<T: serde::Serialize> Ser for T {
            fn json(&self) -> String {
                serde_json::to_string(self).unwrap()
            }
        }
    }

    /// The same bytes as the generic canonical encoder, for every kind and every combination of
    /// optional parts, with strings that need escaping.
    #[test]
    fn matches_the_generic_canonical_encoder() {
        let s = "x\"\\\n\u{1}é😀";
        let mut principal = Principal::new(s, PrincipalKind::Service, s);
        principal.tenant = Some(s.into());
        principal.auth.method = AuthMethod::ApiKey;
        principal.auth.mfa = true;
        principal.auth.credential = CredentialRef::KeyId(s.into());
        let actors = [None, Some(Actor::from(&principal)), {
            let mut plain = Actor::from(&Principal::new("u", PrincipalKind::User, "i"));
            plain.credential = CredentialRef::Sha256("ab".into());
            Some(plain)
        }];
        let targets = [None, Some(Target::default()), {
            Some(Target {
                action: Some(s.into()),
                resource_id: Some(s.into()),
                resource_type: Some(s.into()),
                route: Some(s.into()),
                tenant: Some(s.into()),
            })
        }];
        let requests = [
            None,
            Some(RequestInfo::default()),
            Some(RequestInfo {
                ignored_credential: Some(s.into()),
                relayed_by: Some(s.into()),
                method: Some(s.into()),
                peer_ip: Some("::1".parse().unwrap()),
                request_id: Some(s.into()),
                trace_id: Some(s.into()),
                user_agent: Some(s.into()),
            }),
            Some(RequestInfo {
                peer_ip: Some("203.0.113.255".parse().unwrap()),
                ..RequestInfo::default()
            }),
            Some(RequestInfo {
                peer_ip: Some("0.10.100.9".parse().unwrap()),
                ..RequestInfo::default()
            }),
            Some(RequestInfo {
                peer_ip: Some("2001:db8::ffff:1.2.3.4".parse().unwrap()),
                ..RequestInfo::default()
            }),
        ];
        let mut n = 0;
        for kind in kinds(s) {
            for actor in &actors {
                for target in &targets {
                    for request in &requests {
                        let mut e = AuditEvent::new(
                            Timestamp::from_unix_micros(1_700_000_000_123_456),
                            kind.clone(),
                        );
                        e.actor = actor.clone().map(std::sync::Arc::new);
                        e.target = target.clone().map(std::sync::Arc::new);
                        e.request = request.clone().map(std::sync::Arc::new);
                        let (mut fast, mut generic) = (Vec::new(), Vec::new());
                        encode_event(&e, &mut fast).unwrap();
                        to_canonical(&e, &mut generic).unwrap();
                        assert_eq!(
                            String::from_utf8(fast).unwrap(),
                            String::from_utf8(generic).unwrap()
                        );
                        n += 1;
                    }
                }
            }
        }
        assert_eq!(n, 7 * 3 * 3 * 6);
    }
}
