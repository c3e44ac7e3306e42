//! The cluster's held slots in PostgreSQL: the [`SlotRegistry`] of one node.
//!
//! One row per held slot in `held_slots` (slot as the primary key, the node's name and public
//! address, `expires_unix` and `forget_unix`, see [`crate::registry`]). A reservation is one
//! statement: insert, or take over a row past its `forget_unix` (`ON CONFLICT … DO UPDATE … WHERE`);
//! a row still held makes it insert nothing, so two nodes drawing the same slot at once cannot both
//! win. Forgotten rows are also swept on every reservation, so the table only holds live codes.

use tether_proto::Slot;
use tether_proto::msg::NodeAddress;

use super::{Pg, words};
use crate::registry::{Holder, RegistryError, SlotRegistry};

/// One node's view of `held_slots`.
#[derive(Debug)]
pub struct PgSlots {
    pg: Pg,
    me: NodeAddress,
}

impl PgSlots {
    /// The rows of `pg`'s database, reserved under `me`.
    pub fn new(pg: Pg, me: NodeAddress) -> Self {
        PgSlots { pg, me }
    }

    fn run<R: Send>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> Result<R, postgres::Error> + Send,
    ) -> Result<R, RegistryError> {
        let target = self.pg.target().to_string();
        self.pg.with(
            |reason| RegistryError(format!("{target}: {reason}")),
            |c| f(c).map_err(|e| RegistryError(format!("{}: {}", self.pg.target(), words(&e)))),
        )
    }
}

/// Unix seconds as the column type (saturating: times are seconds since 1970).
fn secs(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

fn slot(s: Slot) -> i64 {
    i64::from(s.0)
}

impl SlotRegistry for PgSlots {
    fn node(&self) -> &NodeAddress {
        &self.me
    }

    fn reserve(
        &self,
        s: Slot,
        expires_unix: u64,
        forget_unix: u64,
        now_unix: u64,
    ) -> Result<bool, RegistryError> {
        let (node, addr) = (self.me.node.clone(), self.me.addr.clone());
        self.run(move |c| {
            let now = secs(now_unix);
            c.execute("DELETE FROM held_slots WHERE forget_unix <= $1", &[&now])?;
            let n = c.execute(
                "INSERT INTO held_slots (slot, node, addr, expires_unix, forget_unix)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (slot) DO UPDATE SET node = EXCLUDED.node, addr = EXCLUDED.addr,
                     expires_unix = EXCLUDED.expires_unix, forget_unix = EXCLUDED.forget_unix
                 WHERE held_slots.forget_unix <= $6",
                &[
                    &slot(s),
                    &node,
                    &addr,
                    &secs(expires_unix),
                    &secs(forget_unix),
                    &now,
                ],
            )?;
            Ok(n == 1)
        })
    }

    fn release(&self, slots: &[Slot]) -> Result<(), RegistryError> {
        let slots: Vec<i64> = slots.iter().copied().map(slot).collect();
        let node = self.me.node.clone();
        self.run(move |c| {
            c.execute(
                "DELETE FROM held_slots WHERE node = $1 AND slot = ANY($2)",
                &[&node, &slots],
            )?;
            Ok(())
        })
    }

    fn release_all(&self) -> Result<(), RegistryError> {
        let node = self.me.node.clone();
        self.run(move |c| {
            c.execute("DELETE FROM held_slots WHERE node = $1", &[&node])?;
            Ok(())
        })
    }

    fn lookup(&self, s: Slot, now_unix: u64) -> Result<Option<Holder>, RegistryError> {
        self.run(move |c| {
            let row = c.query_opt(
                "SELECT node, addr, expires_unix FROM held_slots
                 WHERE slot = $1 AND forget_unix > $2",
                &[&slot(s), &secs(now_unix)],
            )?;
            Ok(row.map(|r| Holder {
                node: NodeAddress {
                    node: r.get(0),
                    addr: r.get(1),
                },
                expires_unix: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
            }))
        })
    }

    fn held(&self, now_unix: u64) -> Result<usize, RegistryError> {
        self.run(move |c| {
            let n: i64 = c
                .query_one(
                    "SELECT count(*) FROM held_slots WHERE forget_unix > $1",
                    &[&secs(now_unix)],
                )?
                .get(0);
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }
}

/// One node as the cluster's database sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCodes {
    /// The node's name.
    pub node: String,
    /// Where consoles are sent for its codes.
    pub addr: String,
    /// Its codes that can still be claimed (one or more per waiting agent).
    pub open_codes: u64,
}

/// The nodes holding codes now, by name (`tether-relay status` with a database).
pub fn nodes(pg: &Pg, now_unix: u64) -> Result<Vec<NodeCodes>, RegistryError> {
    let target = pg.target().to_string();
    pg.with(
        |reason| RegistryError(format!("{target}: {reason}")),
        |c| {
            c.query(
                "SELECT node, addr, count(*) FROM held_slots WHERE expires_unix > $1 \
                 GROUP BY node, addr ORDER BY node, addr",
                &[&secs(now_unix)],
            )
            .map_err(|e| RegistryError(format!("{}: {}", pg.target(), words(&e))))
        },
    )
    .map(|rows| {
        rows.iter()
            .map(|r| NodeCodes {
                node: r.get(0),
                addr: r.get(1),
                open_codes: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
            })
            .collect()
    })
}
