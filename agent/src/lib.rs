//! The Tether agent: runs on the user's machine, shares it by one-time code, asks the user before
//! anything leaves, and enforces what the user granted.
//!
//! # Layout
//! - [`share`]: share mode — relay connection, code, claim, pairing.
//! - `session`: one paired session — consent, then requests checked against the grant.
//! - `requests`: serving each granted request kind on its own stream.
//! - [`ui`]: the events and commands between the session and a front end.
//! - [`terminal`]: the terminal front end (prompt, answers, `q` to end).
//! - [`inventory`]: the inventory summary, from sysinfo.
//! - [`diagnostics`]: the probes and their verdicts.
//! - [`screen`]: capture and input backends behind traits; the view and control streams.

pub mod diagnostics;
pub mod inventory;
mod requests;
pub mod screen;
mod session;
pub mod share;
pub mod terminal;
pub mod ui;

pub use share::{ShareConfig, ShareError, share};
