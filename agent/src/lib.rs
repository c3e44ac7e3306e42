//! The Tether agent: runs on the user's machine, shares it by one-time code, asks the user before
//! anything leaves, and enforces what the user granted.
//!
//! # Layout
//! - [`share`]: share mode — relay connection, code, claim, pairing.
//! - `session`: one paired session — consent, then requests checked against the grant.
//! - `requests`: serving each granted request kind on its own stream.
//! - [`ui`]: the events and commands between the session and a front end.
//! - [`terminal`]: the terminal front end (prompt, answers, `q` to end).
//! - [`window`]: the agent window (code, consent dialog, session banner, local log).
//! - [`inventory`]: the inventory summary, from sysinfo.
//! - [`diagnostics`]: the probes and their verdicts.
//! - [`policy`]: IT's allowed organisations and the organisations this machine already knows.
//! - [`local_log`]: the user's own session log (`tether-agent log`).

pub mod diagnostics;
pub mod inventory;
pub mod local_log;
pub mod policy;
mod requests;
mod session;
pub mod share;
pub mod terminal;
pub mod ui;
pub mod window;

pub use share::{ShareConfig, ShareError, share};
