use crate::http::Rejection;

/// Why authentication failed.
///
/// Messages are fixed, lowercase and never contain credential material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthnError {
    /// The request's credentials are malformed (RFC 6750 `invalid_request`, 400).
    #[error("malformed credentials: {0}")]
    Malformed(&'static str),
    /// More than one credential was presented (400 `invalid_request`).
    #[error("more than one credential was presented")]
    MultipleCredentials,
    /// The credential is not valid: bad signature, expired, wrong audience, unknown key, revoked
    /// (RFC 6750 `invalid_token`, 401). The text says which, without credential material.
    #[error("invalid credentials: {0}")]
    Invalid(&'static str),
    /// The credential cannot be checked now: keys unavailable or too stale (503).
    #[error("credentials cannot be verified now: {0}")]
    Unavailable(&'static str),
}

/// A key could not be used: why, without key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct KeyError {
    reason: &'static str,
}

impl KeyError {
    pub(crate) fn new(reason: &'static str) -> Self {
        KeyError { reason }
    }

    /// Why the key was refused.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

/// Fetching a key set failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeySourceError {
    /// The URL is not acceptable: not `https` (plain `http` is allowed for `localhost` and
    /// loopback addresses only), or not a URL.
    #[error("unacceptable url `{0}`: use https (http only for loopback)")]
    InsecureUrl(String),
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Client(String),
    /// Connecting, sending or reading failed, or a timeout expired.
    #[error("fetch failed: {0}")]
    Transport(String),
    /// The server answered with a status other than 200.
    #[error("unexpected http status {0}")]
    Status(u16),
    /// The response was larger than the configured cap.
    #[error("the response exceeds {0} bytes")]
    TooLarge(usize),
    /// The document could not be parsed.
    #[error("unparsable document: {0}")]
    Parse(String),
    /// The key set holds no usable key. It replaced the cached set all the same: the keys the
    /// issuer no longer lists stop verifying.
    #[error("the key set holds no usable key")]
    Empty,
    /// The discovery document names a different issuer than the configured one.
    #[error("the discovery document's issuer `{found}` is not the configured `{expected}`")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The issuer the document names, control and invisible characters escaped
        /// ([`printable`](crate::audit::printable)): it is the server's text, shown in logs.
        found: String,
    },
}

/// A JWT authenticator's configuration is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtConfigError {
    /// No issuer was configured.
    #[error("no issuer is configured")]
    NoIssuer,
    /// An issuer was configured twice.
    #[error("issuer `{0}` is configured twice")]
    DuplicateIssuer(String),
    /// An issuer's configuration is incomplete or unsafe.
    #[error("issuer `{issuer}`: {reason}")]
    Issuer {
        /// The issuer.
        issuer: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// An issuer's rules were paired with a key store that finds another issuer's keys (OIDC
    /// discovery of another issuer): its tokens would be checked with the other's keys.
    #[error("issuer `{issuer}` is given the key store of issuer `{keys_of}`")]
    KeysOfAnotherIssuer {
        /// The issuer of the rules.
        issuer: String,
        /// The issuer whose keys the store finds.
        keys_of: String,
    },
}

impl AuthnError {
    /// A stable reason code for audit records and metrics.
    pub fn reason_code(&self) -> &'static str {
        match self {
            AuthnError::Malformed(_) => "malformed",
            AuthnError::MultipleCredentials => "multiple_credentials",
            AuthnError::Invalid(_) => "invalid",
            AuthnError::Unavailable(_) => "unavailable",
        }
    }

    /// The RFC 6750 rejection for this error: 400 `invalid_request`, 401 `invalid_token`, or 503.
    pub fn rejection(&self) -> Rejection {
        match self {
            AuthnError::Malformed(why) => Rejection::invalid_request(why),
            AuthnError::MultipleCredentials => {
                Rejection::invalid_request("more than one credential was presented")
            }
            AuthnError::Invalid(why) => Rejection::invalid_token(why),
            AuthnError::Unavailable(why) => Rejection::unavailable(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::RejectionKind;

    #[test]
    fn maps_to_rfc6750() {
        assert_eq!(
            AuthnError::Malformed("bad header").rejection().kind(),
            RejectionKind::InvalidRequest
        );
        assert_eq!(
            AuthnError::MultipleCredentials.rejection().status(),
            http::StatusCode::BAD_REQUEST
        );
        assert_eq!(
            AuthnError::Invalid("the token expired").rejection().kind(),
            RejectionKind::InvalidToken
        );
        assert_eq!(
            AuthnError::Unavailable("signing keys are unavailable")
                .rejection()
                .status(),
            http::StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
