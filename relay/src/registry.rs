//! Which node of a relay cluster holds a slot: the cluster-wide half of the rendezvous.
//!
//! # Flow
//! - **Open.** A node draws a random slot and asks the registry to reserve it under its own name
//!   and public address ([`SlotRegistry::reserve`]); a slot another node holds is a conflict and the
//!   node draws again. Only then does the slot go into the node's own table
//!   ([`crate::rendezvous::Rendezvous::insert`]), which keeps the agent's link.
//! - **Claim.** A slot this node's table knows is decided here as on a single relay. One it does not
//!   know is looked up ([`SlotRegistry::lookup`]) and [`route`] says what the console hears: a
//!   redirect to the node that holds it, "expired", or the usual "unknown".
//! - **Release.** A claimed slot, and every slot of an agent that leaves, is released. A row carries
//!   two times: `expires_unix` (claimable until then) and `forget_unix` (one more lifetime, as the
//!   node's own table remembers expired slots): until then the number is not handed out again, and
//!   afterwards the row may be taken over. So the rows of a node that died expire by themselves.
//!
//! The trait keeps the database out of this file ([`crate::pg::slots`] is the PostgreSQL side);
//! [`route`] is pure and unit-tested here, and [`MemoryRegistry`] is a registry for tests.

use std::sync::Mutex;

use tether_proto::Slot;
use tether_proto::msg::NodeAddress;

/// A slot's row: who holds it and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The node holding it, and where consoles reach that node.
    pub node: NodeAddress,
    /// Claimable until this Unix time.
    pub expires_unix: u64,
}

/// The registry could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cluster slot registry: {0}")]
pub struct RegistryError(pub String);

/// The cluster's table of held slots. Each instance speaks for one node.
pub trait SlotRegistry: Send + Sync + std::fmt::Debug {
    /// This node.
    fn node(&self) -> &NodeAddress;

    /// Reserves `slot` for this node: claimable until `expires_unix`, not handed out again before
    /// `forget_unix`. `Ok(false)`: another row holds it (until its own `forget_unix`).
    fn reserve(
        &self,
        slot: Slot,
        expires_unix: u64,
        forget_unix: u64,
        now_unix: u64,
    ) -> Result<bool, RegistryError>;

    /// Drops this node's rows for `slots` (claimed, or their agent left).
    fn release(&self, slots: &[Slot]) -> Result<(), RegistryError>;

    /// Drops every row of this node (at start: a restarted node holds nothing).
    fn release_all(&self) -> Result<(), RegistryError>;

    /// The row holding `slot`, unless it is past its `forget_unix`.
    fn lookup(&self, slot: Slot, now_unix: u64) -> Result<Option<Holder>, RegistryError>;

    /// How many rows are not yet forgotten, cluster-wide: what decides a new slot's length.
    fn held(&self, now_unix: u64) -> Result<usize, RegistryError>;
}

/// Where a claim of a slot this node's table does not know goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Decide it here (nobody else holds it: the usual "unknown").
    Here,
    /// Another node holds it and it is still claimable: send the console there.
    Redirect(NodeAddress),
    /// Another node held it, and its time is up.
    Expired,
}

/// The pure decision: `holder` is the registry's row for the slot (if any), `me` this node's name.
pub fn route(holder: Option<&Holder>, me: &str, now_unix: u64) -> Route {
    match holder {
        // Our own row without an entry in our table: a stale row, decided (unknown) here.
        None => Route::Here,
        Some(h) if h.node.node == me => Route::Here,
        Some(h) if now_unix >= h.expires_unix => Route::Expired,
        Some(h) => Route::Redirect(h.node.clone()),
    }
}

#[derive(Debug, Clone)]
struct Row {
    node: NodeAddress,
    expires_unix: u64,
    forget_unix: u64,
}

/// A registry in memory, shared by clones of the same table: for tests of the cluster logic
/// without a database.
#[derive(Debug)]
pub struct MemoryRegistry {
    me: NodeAddress,
    rows: std::sync::Arc<Mutex<std::collections::HashMap<Slot, Row>>>,
}

impl MemoryRegistry {
    /// A new, empty cluster with this node in it.
    pub fn new(me: NodeAddress) -> Self {
        MemoryRegistry {
            me,
            rows: Default::default(),
        }
    }

    /// Another node on the same rows.
    pub fn peer(&self, node: NodeAddress) -> Self {
        MemoryRegistry {
            me: node,
            rows: self.rows.clone(),
        }
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<Slot, Row>> {
        // Every update is one map operation; a poisoned lock leaves the map consistent.
        self.rows.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SlotRegistry for MemoryRegistry {
    fn node(&self) -> &NodeAddress {
        &self.me
    }

    fn reserve(
        &self,
        slot: Slot,
        expires_unix: u64,
        forget_unix: u64,
        now_unix: u64,
    ) -> Result<bool, RegistryError> {
        let mut rows = self.rows();
        if rows.get(&slot).is_some_and(|r| r.forget_unix > now_unix) {
            return Ok(false);
        }
        rows.insert(
            slot,
            Row {
                node: self.me.clone(),
                expires_unix,
                forget_unix,
            },
        );
        Ok(true)
    }

    fn release(&self, slots: &[Slot]) -> Result<(), RegistryError> {
        let mut rows = self.rows();
        for slot in slots {
            if rows.get(slot).is_some_and(|r| r.node.node == self.me.node) {
                rows.remove(slot);
            }
        }
        Ok(())
    }

    fn release_all(&self) -> Result<(), RegistryError> {
        self.rows().retain(|_, r| r.node.node != self.me.node);
        Ok(())
    }

    fn lookup(&self, slot: Slot, now_unix: u64) -> Result<Option<Holder>, RegistryError> {
        Ok(self
            .rows()
            .get(&slot)
            .filter(|r| r.forget_unix > now_unix)
            .map(|r| Holder {
                node: r.node.clone(),
                expires_unix: r.expires_unix,
            }))
    }

    fn held(&self, now_unix: u64) -> Result<usize, RegistryError> {
        Ok(self
            .rows()
            .values()
            .filter(|r| r.forget_unix > now_unix)
            .count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> NodeAddress {
        NodeAddress {
            node: name.into(),
            addr: format!("{name}.example:4433"),
        }
    }

    #[test]
    fn a_claim_goes_where_the_slot_is_held() {
        let held_by = |n: &str| Holder {
            node: node(n),
            expires_unix: 100,
        };
        assert_eq!(route(None, "b", 50), Route::Here);
        assert_eq!(route(Some(&held_by("b")), "b", 50), Route::Here);
        assert_eq!(
            route(Some(&held_by("a")), "b", 50),
            Route::Redirect(node("a"))
        );
        assert_eq!(route(Some(&held_by("a")), "b", 100), Route::Expired);
    }

    #[test]
    fn a_slot_is_held_once_until_forgotten_and_released_only_by_its_node() {
        let a = MemoryRegistry::new(node("a"));
        let b = a.peer(node("b"));
        assert_eq!(a.reserve(Slot(417), 100, 200, 0), Ok(true));
        assert_eq!(b.reserve(Slot(417), 100, 200, 0), Ok(false));
        // Expired but remembered: still not handed out again.
        assert_eq!(b.reserve(Slot(417), 300, 400, 150), Ok(false));
        assert_eq!(b.held(150), Ok(1));
        // Only its own node releases a row.
        b.release(&[Slot(417)]).unwrap();
        assert_eq!(b.lookup(Slot(417), 0).unwrap().unwrap().node, node("a"));
        // A dead node's row is taken over once forgotten.
        assert_eq!(b.lookup(Slot(417), 200), Ok(None));
        assert_eq!(b.reserve(Slot(417), 300, 400, 200), Ok(true));
        assert_eq!(a.lookup(Slot(417), 200).unwrap().unwrap().node, node("b"));
        a.reserve(Slot(418), 300, 400, 200).unwrap();
        a.release_all().unwrap();
        assert_eq!(a.held(200), Ok(1), "b's row stays");
    }
}
