//! Who a request comes from: [`Identity`], [`Principal`] and how it authenticated ([`AuthInfo`]).
//!
//! ```
//! use aaa_core::{AuthInfo, AuthMethod, CredentialRef, Identity, Principal, PrincipalKind, Timestamp};
//!
//! let at = Timestamp::from_unix_seconds(1_700_000_000);
//! let alice = Principal::new("alice", PrincipalKind::User, "https://idp.example")
//!     .with_tenant("acme")
//!     .with_roles(["editor"])
//!     .with_auth(AuthInfo::new(AuthMethod::Jwt, at, CredentialRef::token(b"eyJ...")));
//! let identity = Identity::from(alice);
//! assert_eq!(identity.principal().map(|p| p.id.as_str()), Some("alice"));
//! assert!(!Identity::Anonymous.is_authenticated());
//! ```

use std::{collections::BTreeSet, fmt, sync::Arc};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Attributes, Timestamp};

/// What kind of party a principal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A person.
    User,
    /// Software acting on its own behalf.
    Service,
    /// A thing: a sensor, a kiosk, a phone acting as itself.
    Device,
}

impl PrincipalKind {
    /// `user`, `service` or `device`.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Service => "service",
            PrincipalKind::Device => "device",
        }
    }
}

impl fmt::Display for PrincipalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated party: a user, a service or a device.
///
/// Built by an [`Authenticator`](crate::Authenticator) from verified credentials. A principal
/// never holds the credential itself, only a [`CredentialRef`] to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principal {
    /// Stable identifier, unique within the issuer (a JWT `sub`, an API key's owner, a SPIFFE id).
    pub id: String,
    /// A user, a service or a device.
    pub kind: PrincipalKind,
    /// Who vouched for this principal: a JWT issuer URL, `api-key`, or `spiffe://<trust domain>`
    /// for a service identity forwarded by a trusted proxy.
    pub issuer: String,
    /// The tenant the principal belongs to, if the deployment is multi-tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Roles as the local policy names them (after any group mapping).
    #[serde(default)]
    pub roles: BTreeSet<String>,
    /// Scopes granted by an authorization server (OAuth `scope` / `scp`).
    #[serde(default)]
    pub scopes: BTreeSet<String>,
    /// Other typed attributes (unknown token claims, directory data).
    #[serde(default)]
    pub attributes: Attributes,
    /// How and when the principal authenticated.
    pub auth: AuthInfo,
}

impl Principal {
    /// A principal with no tenant, roles, scopes or attributes, and a placeholder `auth` (method
    /// `Jwt`, authenticated at the Unix epoch, no credential reference). Use the `with_*` methods
    /// to fill it in.
    pub fn new(id: impl Into<String>, kind: PrincipalKind, issuer: impl Into<String>) -> Self {
        Principal {
            id: id.into(),
            kind,
            issuer: issuer.into(),
            tenant: None,
            roles: BTreeSet::new(),
            scopes: BTreeSet::new(),
            attributes: Attributes::new(),
            auth: AuthInfo::new(AuthMethod::Jwt, Timestamp::UNIX_EPOCH, CredentialRef::None),
        }
    }

    /// Sets the tenant.
    #[must_use]
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Adds roles.
    #[must_use]
    pub fn with_roles<I: IntoIterator<Item = S>, S: Into<String>>(mut self, roles: I) -> Self {
        self.roles.extend(roles.into_iter().map(Into::into));
        self
    }

    /// Adds scopes.
    #[must_use]
    pub fn with_scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// Sets one attribute.
    #[must_use]
    pub fn with_attribute(
        mut self,
        name: impl Into<String>,
        value: impl Into<crate::Value>,
    ) -> Self {
        self.attributes.insert(name.into(), value.into());
        self
    }

    /// Sets how the principal authenticated.
    #[must_use]
    pub fn with_auth(mut self, auth: AuthInfo) -> Self {
        self.auth = auth;
        self
    }

    /// Whether the principal holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }
}

/// The way a principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuthMethod {
    /// A signed JWT bearer token.
    Jwt,
    /// An API key.
    ApiKey,
    /// A service identity from a client certificate, forwarded by a trusted proxy.
    ForwardedMtls,
}

impl AuthMethod {
    /// `jwt`, `api_key` or `forwarded_mtls`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Jwt => "jwt",
            AuthMethod::ApiKey => "api_key",
            AuthMethod::ForwardedMtls => "forwarded_mtls",
        }
    }
}

/// How and when a principal authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthInfo {
    /// The kind of credential.
    pub method: AuthMethod,
    /// When the principal authenticated: when the credential was verified or, for a JWT, its
    /// `auth_time` (OpenID Connect: when the user signed in) if present, else its `iat`.
    pub authenticated_at: Timestamp,
    /// When the credential stops being valid, if it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// Authentication methods references (RFC 8176 `amr`), e.g. `pwd`, `otp`, `hwk`.
    #[serde(default)]
    pub amr: BTreeSet<String>,
    /// Whether more than one factor was used. The JWT authenticator derives it from `amr` (`mfa`,
    /// or methods of two RFC 8176 categories); `acr` is not read.
    #[serde(default)]
    pub mfa: bool,
    /// A reference to the credential, never the credential.
    pub credential: CredentialRef,
}

impl AuthInfo {
    /// Authentication by `method` at `at`, single factor, no expiry.
    pub fn new(method: AuthMethod, at: Timestamp, credential: CredentialRef) -> Self {
        AuthInfo {
            method,
            authenticated_at: at,
            expires_at: None,
            amr: BTreeSet::new(),
            mfa: false,
            credential,
        }
    }
}

/// A reference to a credential that lets an auditor correlate requests made with the same
/// credential without being able to use it: a key id, or a SHA-256 of the credential (for a JWT,
/// of its signed part, so that two signatures of one token are one credential).
///
/// Its `Debug` shows only a prefix of a token hash.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "value")]
#[non_exhaustive]
pub enum CredentialRef {
    /// No reference is available.
    None,
    /// The public id of a credential (an API key's id, or the SPIFFE ID a trusted proxy
    /// forwarded).
    KeyId(String),
    /// Lowercase hex SHA-256 of the credential bytes (for a JWT, of its signed header and
    /// payload: `header.payload`).
    Sha256(String),
}

impl CredentialRef {
    /// The SHA-256 reference of a token or other secret. The secret itself is not kept.
    pub fn token(secret: &[u8]) -> Self {
        CredentialRef::Sha256(hex(&Sha256::digest(secret)))
    }
}

impl fmt::Debug for CredentialRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialRef::None => f.write_str("CredentialRef::None"),
            CredentialRef::KeyId(id) => write!(f, "CredentialRef::KeyId({id:?})"),
            CredentialRef::Sha256(h) => {
                let prefix = h.get(..8).unwrap_or("");
                write!(f, "CredentialRef::Sha256({prefix}…)")
            }
        }
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    hex_to(bytes, &mut out);
    out
}

/// Appends the lowercase hex of `bytes` to `out`.
pub(crate) fn hex_to(bytes: &[u8], out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            out.push(char::from(
                DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0'),
            ));
        }
    }
}

/// The outcome of authentication: an authenticated [`Principal`], or explicitly nobody.
///
/// Anonymous is a state of its own, never a principal with an empty id, so a policy cannot confuse
/// the two. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    /// No credentials were presented.
    Anonymous,
    /// Credentials were presented and verified.
    Authenticated(Arc<Principal>),
}

impl Identity {
    /// The principal, unless anonymous.
    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Identity::Anonymous => None,
            Identity::Authenticated(p) => Some(p),
        }
    }

    /// Whether a principal authenticated.
    pub fn is_authenticated(&self) -> bool {
        matches!(self, Identity::Authenticated(_))
    }
}

impl From<Principal> for Identity {
    fn from(p: Principal) -> Self {
        Identity::Authenticated(Arc::new(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;

    fn alice() -> Principal {
        let mut auth = AuthInfo::new(
            AuthMethod::Jwt,
            Timestamp::from_unix_seconds(1_700_000_000),
            CredentialRef::token(b"header.payload.signature"),
        );
        auth.expires_at = Some(Timestamp::from_unix_seconds(1_700_000_900));
        auth.amr = ["pwd".to_owned(), "otp".to_owned()].into();
        auth.mfa = true;
        Principal::new("alice", PrincipalKind::User, "https://idp.example")
            .with_tenant("acme")
            .with_roles(["editor", "viewer"])
            .with_scopes(["docs:read"])
            .with_attribute("department", "r&d")
            .with_attribute("clearance", Value::Long(3))
            .with_auth(auth)
    }

    #[test]
    fn principal_serde_round_trip() {
        let p = alice();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Principal>(&json).unwrap(), p);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["kind"], "user");
        assert_eq!(v["auth"]["method"], "jwt");
        assert_eq!(v["auth"]["credential"]["type"], "sha256");
    }

    #[test]
    fn identity_serde_round_trip() {
        for id in [Identity::Anonymous, Identity::from(alice())] {
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(serde_json::from_str::<Identity>(&json).unwrap(), id);
        }
        assert_eq!(
            serde_json::to_string(&Identity::Anonymous).unwrap(),
            "\"anonymous\""
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut v = serde_json::to_value(alice()).unwrap();
        v["admin"] = serde_json::Value::Bool(true);
        assert!(serde_json::from_value::<Principal>(v).is_err());
    }

    #[test]
    fn credential_ref_never_holds_the_token() {
        let token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
        let r = CredentialRef::token(token.as_bytes());
        let CredentialRef::Sha256(h) = &r else {
            panic!()
        };
        assert_eq!(h.len(), 64);
        assert!(!h.contains(token));
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains(token));
    }

    #[test]
    fn debug_redacts_credential_references() {
        let r = CredentialRef::token(b"secret-token");
        let CredentialRef::Sha256(full) = &r else {
            panic!()
        };
        let shown = format!("{r:?}");
        assert!(!shown.contains(full.as_str()), "{shown}");
        assert!(shown.contains(&full[..8]));
        let p = format!("{:?}", alice());
        assert!(!p.contains("header.payload.signature"));
        let CredentialRef::Sha256(alice_hash) = alice().auth.credential else {
            panic!()
        };
        assert!(!p.contains(&alice_hash), "{p}");
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
    }
}
