//! Sinks other than the file log: JSON lines on stdout, and `tracing` events.

use std::io::Write;

use super::{AuditError, AuditEvent, AuditReceipt, AuditSink};
use crate::BoxFuture;

/// Writes each event as one JSON line on standard output, for log shippers.
///
/// Not tamper-evident by itself (no chain, no signatures): use it next to an
/// [`AuditWriter`](super::AuditWriter), or where the shipper's store provides integrity.
/// Write errors fail the request (the event could not be recorded).
#[derive(Debug, Default, Clone, Copy)]
pub struct StdoutSink;

impl AuditSink for StdoutSink {
    fn record<'a>(
        &'a self,
        event: AuditEvent,
    ) -> BoxFuture<'a, Result<Option<AuditReceipt>, AuditError>> {
        let result = serde_json::to_vec(&event)
            .map_err(|_| AuditError::Unavailable("cannot encode the event"))
            .and_then(|mut line| {
                line.push(b'\n');
                let mut out = std::io::stdout().lock();
                out.write_all(&line)
                    .and_then(|()| out.flush())
                    .map_err(|e| AuditError::Io {
                        context: "cannot write to stdout",
                        kind: e.kind(),
                    })
            })
            .map(|()| None);
        Box::pin(std::future::ready(result))
    }
}

/// Emits each event as a `tracing` event at INFO under the target `aaa::audit`, with the JSON
/// event in the field `event`. Delivery is up to the subscriber: best effort.
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingSink;

impl AuditSink for TracingSink {
    fn record<'a>(
        &'a self,
        event: AuditEvent,
    ) -> BoxFuture<'a, Result<Option<AuditReceipt>, AuditError>> {
        let result = serde_json::to_string(&event)
            .map_err(|_| AuditError::Unavailable("cannot encode the event"))
            .map(|json| {
                tracing::info!(target: "aaa::audit", event = %json, "audit event");
                None
            });
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Timestamp, audit::EventKind};

    #[test]
    fn stdout_and_tracing_sinks_accept_events_without_receipts() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let event = AuditEvent::new(
            Timestamp::UNIX_EPOCH,
            EventKind::RequestCompleted {
                status: 204,
                latency_us: 1,
            },
        );
        rt.block_on(async {
            assert_eq!(StdoutSink.record(event.clone()).await, Ok(None));
            assert_eq!(TracingSink.record(event).await, Ok(None));
        });
    }
}
