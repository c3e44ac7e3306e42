//! The rendezvous table as a shared handle: [`crate::rendezvous::Rendezvous`] (pure, clock-free)
//! behind one lock, holding each open slot's [`AgentLink`].

use std::sync::Mutex;
use std::time::Instant;

use crate::link::{AgentEvent, AgentLink};
use crate::rendezvous::{Rendezvous, Stats};

/// The slot table every connection task shares.
#[derive(Debug)]
pub struct SlotTable {
    table: Mutex<Rendezvous<AgentLink>>,
}

impl SlotTable {
    /// Wraps a table.
    pub fn new(table: Rendezvous<AgentLink>) -> Self {
        SlotTable {
            table: Mutex::new(table),
        }
    }

    /// Runs `f` on the table. The lock is only ever held for table operations, never across an
    /// await; a poisoned lock means a panic mid-update, after which the table is still consistent
    /// (every update is a single map operation), so it is used as is.
    pub fn with<R>(&self, f: impl FnOnce(&mut Rendezvous<AgentLink>) -> R) -> R {
        let mut guard = self.table.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Rendezvous counters.
    pub fn stats(&self) -> Stats {
        self.with(|t| t.stats())
    }

    /// Forgets slots past their lifetime and tells their agents.
    pub fn expire(&self, now: Instant) {
        let expired = self.with(|t| t.expire(now));
        for (slot, link) in expired {
            // Best effort: if the agent's queue is full it learns at claim time instead.
            let _ = link.events.try_send(AgentEvent::SlotExpired { slot });
        }
    }
}
