//! The audit handle the connection handlers hold: record an event, and the fail-closed gate that
//! refuses new sessions and enrollments while the log cannot be written.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::audit::{AuditEvent, AuditLog};
use crate::metrics::Metrics;

/// Why a claim or enrollment is refused while the audit log cannot be written.
pub const AUDIT_DOWN: &str = "the relay cannot write its audit log (is its disk full?), so it starts no new sessions or enrollments until it can; try again later";

/// A cheap handle on the relay's audit log.
#[derive(Debug, Clone)]
pub struct AuditWriter {
    log: Arc<AuditLog>,
    metrics: Arc<Metrics>,
}

impl AuditWriter {
    /// A handle on `log`, counting gate refusals in `metrics`.
    pub fn new(log: Arc<AuditLog>, metrics: Arc<Metrics>) -> Self {
        AuditWriter { log, metrics }
    }

    /// Queues one event; never blocks (see [`AuditLog::record`]).
    pub fn record(&self, event: AuditEvent) {
        self.log.record(event);
    }

    /// Whether the log is being written.
    pub fn writable(&self) -> bool {
        self.log.writable()
    }

    /// Whether a new session or enrollment may start: not while the audit log cannot be written
    /// (the relay fails closed rather than act unaudited). Counts the refusal.
    pub fn gate(&self) -> Result<(), &'static str> {
        if self.log.writable() {
            return Ok(());
        }
        self.metrics.audit_refusals.fetch_add(1, Ordering::Relaxed);
        Err(AUDIT_DOWN)
    }
}
