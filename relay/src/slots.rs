//! The rendezvous table as a shared handle: [`crate::rendezvous::Rendezvous`] (pure, clock-free)
//! behind one lock, holding each open slot's [`AgentLink`]; in a relay cluster, with the
//! [`SlotRegistry`] that makes a slot unique across the nodes (see [`crate::registry`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tether_proto::Slot;
use tether_proto::msg::{NodeAddress, RelayErrorKind};
use tracing::warn;

use crate::link::{AgentEvent, AgentLink};
use crate::registry::{Route, SlotRegistry, route};
use crate::rendezvous::{AgentId, Rendezvous, Stats, digits_for};

/// Why no code is given while the cluster's database, which holds every node's codes, cannot be
/// reached.
pub const CODES_DOWN: &str = "the relay cannot reach the cluster's database, where session codes \
     are kept, so it gives no new code right now; try again shortly";

/// The slot table every connection task shares.
#[derive(Debug)]
pub struct SlotTable {
    table: Mutex<Rendezvous<AgentLink>>,
    /// The cluster's registry, and a code's lifetime (the rows' times), with `--database`.
    cluster: Option<(Arc<dyn SlotRegistry>, Duration)>,
}

/// Who takes a claimed slot.
#[derive(Debug)]
pub enum Taken {
    /// This node: the agent and its link (the slot is gone for good).
    Here(AgentId, AgentLink),
    /// Another node of the cluster holds it; nothing was consumed.
    Elsewhere(NodeAddress),
}

impl SlotTable {
    /// Wraps a table (one relay on its own).
    pub fn new(table: Rendezvous<AgentLink>) -> Self {
        SlotTable {
            table: Mutex::new(table),
            cluster: None,
        }
    }

    /// Wraps a table of one node of a cluster: slots are reserved in `registry` first, for a
    /// code's lifetime `ttl`.
    pub fn clustered(
        table: Rendezvous<AgentLink>,
        registry: Arc<dyn SlotRegistry>,
        ttl: Duration,
    ) -> Self {
        SlotTable {
            table: Mutex::new(table),
            cluster: Some((registry, ttl)),
        }
    }

    /// Runs `f` on the table. The lock is only ever held for table operations, never across an
    /// await or a database call; a poisoned lock means a panic mid-update, after which the table
    /// is still consistent (every update is a single map operation), so it is used as is.
    pub fn with<R>(&self, f: impl FnOnce(&mut Rendezvous<AgentLink>) -> R) -> R {
        let mut guard = self.table.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Reserves a fresh slot for `agent`: in a cluster, a slot no node holds. `Err` with the kind
    /// and the words for the agent.
    pub fn open(
        &self,
        agent: AgentId,
        link: AgentLink,
        rng: &mut impl rand::Rng,
    ) -> Result<Slot, (RelayErrorKind, &'static str)> {
        let now = Instant::now();
        let refused = |kind| {
            (
                kind,
                match kind {
                    RelayErrorKind::TooManySlots => {
                        "this agent already holds the maximum number of open codes"
                    }
                    _ => "the relay has no free slot right now",
                },
            )
        };
        let Some((registry, ttl)) = &self.cluster else {
            return self
                .with(|t| t.open(agent, link, now, rng))
                .map_err(refused);
        };
        self.with(|t| t.check_room(agent)).map_err(refused)?;
        let unavailable = |e: crate::registry::RegistryError| {
            warn!(error = %e, "cannot reserve a slot");
            (RelayErrorKind::Busy, CODES_DOWN)
        };
        let unix = crate::clock::now_unix();
        let ttl = ttl.as_secs();
        // The length follows the whole cluster's count, so codes stay as short as on one relay.
        let digits = digits_for(registry.held(unix).map_err(unavailable)?);
        for _ in 0..64 {
            let slot = Slot::random(rng, digits);
            if self.with(|t| t.knows(slot)) {
                continue;
            }
            if registry
                .reserve(slot, unix + ttl, unix + 2 * ttl, unix)
                .map_err(unavailable)?
            {
                if self.with(|t| t.insert(slot, agent, link.clone(), now)) {
                    return Ok(slot);
                }
                // Unreachable while the registry is exclusive; give the row back all the same.
                let _ = registry.release(&[slot]);
            }
        }
        Err(refused(RelayErrorKind::Busy))
    }

    /// Claims `slot` for the technician `who` (counted against their rate limit, here or not).
    pub fn claim(&self, slot: Slot, who: &str) -> Result<Taken, RelayErrorKind> {
        let now = Instant::now();
        if let Some((registry, _)) = &self.cluster
            && !self.with(|t| t.knows(slot))
        {
            let unix = crate::clock::now_unix();
            match registry.lookup(slot, unix) {
                // Decided here, as on one relay: the console hears "unknown", not a database error.
                Err(e) => warn!(error = %e, "cannot look a slot up in the cluster"),
                Ok(holder) => match route(holder.as_ref(), &registry.node().node, unix) {
                    Route::Here => {}
                    Route::Redirect(node) => {
                        self.with(|t| t.count_claim(who, now))?;
                        return Ok(Taken::Elsewhere(node));
                    }
                    Route::Expired => {
                        self.with(|t| t.count_claim(who, now))?;
                        return Err(RelayErrorKind::ExpiredSlot);
                    }
                },
            }
        }
        let (agent, link) = self.with(|t| t.claim(slot, who, now))?;
        self.release(&[slot]);
        Ok(Taken::Here(agent, link))
    }

    /// Drops every slot of a departed agent, here and in the cluster.
    pub fn remove_agent(&self, agent: AgentId) {
        let gone = self.with(|t| t.remove_agent(agent));
        self.release(&gone);
    }

    fn release(&self, slots: &[Slot]) {
        if let Some((registry, _)) = &self.cluster
            && !slots.is_empty()
            && let Err(e) = registry.release(slots)
        {
            // The rows expire on their own.
            warn!(error = %e, "cannot release slots in the cluster");
        }
    }

    /// Rendezvous counters.
    pub fn stats(&self) -> Stats {
        self.with(|t| t.stats())
    }

    /// Forgets slots past their lifetime and tells their agents. (The cluster's rows carry their
    /// own times.)
    pub fn expire(&self, now: Instant) {
        let expired = self.with(|t| t.expire(now));
        for (slot, link) in expired {
            // Best effort: if the agent's queue is full it learns at claim time instead.
            let _ = link.events.try_send(AgentEvent::SlotExpired { slot });
        }
    }
}
