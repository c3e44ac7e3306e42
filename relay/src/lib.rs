//! The Tether relay: a QUIC rendezvous where agents wait under one-time codes, technicians claim them,
//! and the relay splices their streams without being able to read them.
//!
//! What the relay knows: the slot half of each code, the technician behind each token, who connected
//! when, and how many bytes flowed. What it never has: the code's secret, the session keys, or any
//! session content — after pairing it copies ciphertext.
//!
//! # Layout
//! - [`config`]: listen address, data directory, named limits.
//! - [`server`]: [`Relay::spawn`], the accept loop, `Hello`, graceful shutdown.
//! - [`agent_link`]: an agent's control stream (slots, claims, audit facts).
//! - [`session`]: a console's claim and the spliced session.
//! - [`rendezvous`]: the slot table and claim rate limits, pure and clock-free.
//! - [`registry`]: in a cluster (`--database`), which node holds a slot ([`registry::SlotRegistry`],
//!   PostgreSQL behind it) and where a claim goes ([`registry::route`], pure).
//! - [`cluster`]: the cluster CA (`cluster init`), node certificates (`cluster join`) and loading
//!   one for `serve --node-dir`.
//! - [`splice`]: blind byte copying between the two sides.
//! - [`metrics`]: counters, the Prometheus endpoint (`serve --metrics`) and `status`.
//! - [`technicians`]: technician registry (roles, token hashes only, revocation, expiry).
//! - [`admin`]: the operator commands (technicians, audit verify/show).
//! - [`cli`]: the `tether-relay` command line (`main.rs` only parses and runs it).
//! - [`audit`]: append-only, hash-chained JSON-lines audit log.
//! - `device`: an enrolled device's control stream (enrollment, authentication, inventory reports).
//! - `fleet`: IT's fleet queries from a console, limited to the technician's org.
//! - [`wake`]: sessions on enrolled devices without a code: waking a connected device's service
//!   for a technician's `ConnectDevice`, and the single-use tickets its session connection brings.
//! - [`records`]: session records (reason, ticket, technicians, scopes, probes, notes, resolution)
//!   and a technician's record queries; SQLite FTS5 search.
//! - [`store`]: the fleet store ([`store::Store`] trait, SQLite by default); [`ingest`]: the
//!   fleet protocol's rules for one report, pure.
//! - [`fleet_admin`]: operator commands on the fleet store (enrollment tokens, removing devices).
//! - [`backend`]: SQLite in the data directory (the default) or PostgreSQL ([`pg`]) for a relay
//!   cluster: the one place that chooses.
//!
//! Pure decisions, unit-tested without a relay: [`rendezvous`], [`claim`] (is a claim admitted),
//! [`ingest`] (what a report does to the fleet store), [`record_policy`] (who may read or change a
//! record).
//!
//! # Shared state
//! There is no global state object. [`server`] builds the handles once and gives each kind of
//! connection a context naming only what it uses ([`agent_link::AgentCtx`],
//! [`session::ConsoleCtx`], `device::DeviceCtx`, and the query contexts inside the console's):
//! - [`slots::SlotTable`]: the rendezvous table behind one lock, holding each slot's
//!   [`link::AgentLink`];
//! - [`directory::Directory`]: who holds a token (trait; [`technicians::Technicians`] behind it);
//! - [`audit_writer::AuditWriter`]: record an event, and the fail-closed gate;
//! - [`store::Store`] and [`records::RecordStore`]: the fleet store and the session records
//!   (traits; SQLite behind them, called through [`blocking::blocking`]);
//! - [`metrics::Metrics`], [`ids::IdSource`], [`invite::Invites`], [`wake::Wakes`].
//!
//! Helpers every handler shares sit in leaf modules ([`conn`] for refusals and protocol closes,
//! [`end`] for stored names, [`ids`], [`clock`]), so no module imports one that imports it back.

pub mod admin;
pub mod agent_link;
pub mod audit;
pub mod audit_writer;
pub mod backend;
pub mod blocking;
pub mod claim;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod deploy;
mod device;
pub mod directory;
pub mod end;
mod fleet;
pub mod fleet_admin;
pub mod forward;
pub mod ids;
pub mod ingest;
pub mod invite;
mod invite_list;
pub mod link;
pub mod metrics;
pub mod org_key;
pub mod pg;
pub mod record_policy;
mod record_service;
pub mod records;
pub mod registry;
pub mod rendezvous;
pub mod server;
pub mod session;
pub mod slots;
pub mod splice;
pub mod store;
pub mod technicians;
pub mod wake;

pub use clock::now_unix;
pub use config::{Limits, RelayConfig};
pub use server::{Relay, RelayHandle, StartError};
