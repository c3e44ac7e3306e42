//! What the rest of the relay holds to reach one agent connection ([`AgentLink`]), the events its
//! control task hears ([`AgentEvent`]), and the guard that keeps an agent to one session at a time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tether_proto::Slot;
use tether_proto::msg::TechnicianIdentity;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::ids::SessionId;
use crate::invite::Invitation;

/// Events queued for one agent's control task.
pub const EVENT_QUEUE: usize = 16;

/// What the rest of the relay holds to reach an agent.
#[derive(Debug, Clone)]
pub struct AgentLink {
    /// The agent's connection, for opening spliced streams.
    pub conn: quinn::Connection,
    /// Events for the agent's control task.
    pub events: mpsc::Sender<AgentEvent>,
    /// Set while the agent is in a session: one session per agent connection. Taken with
    /// [`AgentLink::reserve`], which hands back the guard that clears it.
    pub busy: Arc<AtomicBool>,
    /// For a guest connection's slot: only this invitation's invitee may claim it.
    pub invite: Option<Arc<Invitation>>,
    /// The reason the user gave with the slot request (`share --reason`), cleaned and cut to
    /// [`tether_proto::records::MAX_REASON_CHARS`]; each slot keeps the reason it was opened with.
    pub reason: Option<Arc<str>>,
}

impl AgentLink {
    /// Marks the agent busy for one session; `None` if it already is. The flag is cleared when the
    /// guard drops, on every way out of the session.
    pub fn reserve(&self) -> Option<BusyGuard> {
        BusyGuard::acquire(&self.busy)
    }
}

/// Holds an agent's busy flag for one session; dropping it frees the agent for the next claim.
#[derive(Debug)]
pub struct BusyGuard {
    busy: Arc<AtomicBool>,
}

impl BusyGuard {
    /// Sets `busy`; `None` if it was already set.
    pub fn acquire(busy: &Arc<AtomicBool>) -> Option<BusyGuard> {
        (!busy.swap(true, Ordering::AcqRel)).then(|| BusyGuard { busy: busy.clone() })
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.busy.store(false, Ordering::Release);
    }
}

/// Events for an agent's control task.
#[derive(Debug)]
pub enum AgentEvent {
    /// A technician claimed a slot; a session starts.
    Claimed {
        /// The slot.
        slot: Slot,
        /// The verified technician.
        technician: TechnicianIdentity,
        /// Session id for audit records.
        session: SessionId,
        /// Cancel to end the session.
        end: CancellationToken,
        /// The agent's answer: go ahead, or why not.
        answer: oneshot::Sender<Result<(), String>>,
        /// The agent's end of the session's packet forwarding.
        route: tether_proto::forward::RouteToken,
    },
    /// A slot expired unclaimed.
    SlotExpired {
        /// The slot.
        slot: Slot,
    },
    /// The console left the session.
    PeerGone,
}

/// A bounded queue for events to one agent's control task.
pub fn agent_queue() -> (mpsc::Sender<AgentEvent>, mpsc::Receiver<AgentEvent>) {
    mpsc::channel(EVENT_QUEUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busy_guard_frees_the_agent_when_dropped() {
        let busy = Arc::new(AtomicBool::new(false));
        let reserve = || BusyGuard::acquire(&busy);
        let first = reserve();
        assert!(first.is_some());
        assert!(reserve().is_none(), "one session at a time");
        drop(first);
        assert!(!busy.load(Ordering::Acquire));
        assert!(reserve().is_some(), "free again after the guard dropped");
    }
}
