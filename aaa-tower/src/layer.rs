use aaa_core::Guard;
use tower::Layer;

use crate::AaaService;

/// Wraps a service so every request goes through a [`Guard`].
#[derive(Debug, Clone)]
#[must_use]
pub struct AaaLayer {
    pub(crate) guard: Guard,
    pub(crate) receipt_header: bool,
}

impl AaaLayer {
    /// A layer checking requests with `guard`.
    pub fn new(guard: Guard) -> Self {
        AaaLayer {
            guard,
            receipt_header: false,
        }
    }

    /// Adds an [`aaa-audit-receipt`](crate::RECEIPT_HEADER) response header naming the log,
    /// sequence number and leaf hash of the record the answer stands on, so a client can later
    /// ask for an inclusion proof: the guard's refusal (an authentication failure, a denial), or
    /// the route-level allow, or the last decision recorded after it (a handler-level check's,
    /// such as the denial a 403 answers). Sent when the sink gives receipts (the file writer
    /// does for events the request waits for: decisions, by default). Defaults to off.
    pub fn audit_receipt_header(mut self, on: bool) -> Self {
        self.receipt_header = on;
        self
    }
}

impl<S> Layer<S> for AaaLayer {
    type Service = AaaService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AaaService {
            inner,
            guard: self.guard.clone(),
            receipt_header: self.receipt_header,
        }
    }
}
