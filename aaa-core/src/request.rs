//! What is asked: an [`Action`] on a [`Resource`] in a [`Context`].
//!
//! ```
//! use aaa_core::{Action, Context, Resource, Timestamp};
//!
//! let read = Action::new("docs:read");
//! let doc = Resource::new("Document").with_id("d1").with_attribute("tenant", "acme");
//! let ctx = Context::new(Timestamp::from_unix_seconds(0)).with_peer_ip("10.1.2.3".parse().unwrap());
//! assert_eq!(read.as_str(), "docs:read");
//! assert_eq!(doc.id.as_deref(), Some("d1"));
//! assert!(ctx.peer_ip.is_some());
//! ```

use std::{fmt, net::IpAddr, sync::Arc};

use serde::{Deserialize, Serialize};

use crate::{Attributes, Timestamp, Value};

/// An operation a principal wants to perform, such as `docs:read`.
///
/// Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Action(Arc<str>);

impl Action {
    /// An action named `name`.
    pub fn new(name: impl AsRef<str>) -> Self {
        Action(Arc::from(name.as_ref()))
    }

    /// The action's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Action {
    fn from(s: &str) -> Self {
        Action::new(s)
    }
}

/// The thing acted upon: a type (`Document`), an optional id, and attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// The resource type, as the policy names it.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// The resource's id, when the request names one (a collection route has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Attributes known about the resource (owner, tenant, classification, ...).
    #[serde(default)]
    pub attributes: Attributes,
}

impl Resource {
    /// A resource of type `resource_type`, with no id and no attributes.
    pub fn new(resource_type: impl Into<String>) -> Self {
        Resource {
            resource_type: resource_type.into(),
            id: None,
            attributes: Attributes::new(),
        }
    }

    /// Sets the id.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets one attribute.
    #[must_use]
    pub fn with_attribute(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.attributes.insert(name.into(), value.into());
        self
    }
}

/// The circumstances of a request: where it came from, when, and anything else a policy may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    /// The address of the peer (the client, or the last trusted proxy's view of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_ip: Option<IpAddr>,
    /// When the request is being decided.
    pub time: Timestamp,
    /// The request's id, for correlation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Other typed attributes of the request.
    #[serde(default)]
    pub attributes: Attributes,
}

impl Context {
    /// A context at `time` with nothing else known.
    pub fn new(time: Timestamp) -> Self {
        Context {
            peer_ip: None,
            time,
            request_id: None,
            attributes: Attributes::new(),
        }
    }

    /// Sets the peer address, taken as given: an IPv4-mapped address (`::ffff:10.1.2.3`) is
    /// IPv6 to the policy, outside IPv4 ranges, as in Cedar. For a connection's peer from a
    /// dual-stack socket, pass `ip.to_canonical()` (the guard does).
    #[must_use]
    pub fn with_peer_ip(mut self, ip: IpAddr) -> Self {
        self.peer_ip = Some(ip);
        self
    }

    /// Sets the request id.
    #[must_use]
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// Sets one attribute.
    #[must_use]
    pub fn with_attribute(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.attributes.insert(name.into(), value.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_round_trips() {
        let r = Resource::new("Document")
            .with_id("d1")
            .with_attribute("owner", "alice")
            .with_attribute("tags", Value::string_set(["x"]));
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"type\":\"Document\""));
        assert_eq!(serde_json::from_str::<Resource>(&json).unwrap(), r);

        let c = Context::new(Timestamp::from_unix_seconds(5))
            .with_peer_ip("::1".parse().unwrap())
            .with_request_id("r-1")
            .with_attribute("mfa", true);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Context>(&json).unwrap(), c);

        let a = Action::new("docs:read");
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"docs:read\"");
        assert_eq!(serde_json::from_str::<Action>("\"docs:read\"").unwrap(), a);
    }
}
