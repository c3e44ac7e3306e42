//! The Tether agent: runs on the user's machine, shares it by one-time code, asks the user before
//! anything leaves, and enforces what the user granted.
//!
//! # Layout
//! - [`backoff`]: reconnect delays (exponential, with jitter).
//! - [`clipboard`]: the user's clipboard behind a trait (X11; Wayland says it is not supported yet)
//!   and the clipboard requests.
//! - [`cli`]: the command line: arguments, each command, its words and exit code (main only calls it).
//! - [`share`]: share mode — relay connection, code, claim; supervises every session of a share.
//! - `config`: share mode's settings ([`ShareConfig`]) and step limits.
//! - `link`: the relay control connection's helpers (connect, read, claim, admit and pair, flush).
//! - `session`: one paired session — a sans-I/O machine (`session/machine.rs`, consent in
//!   `session/consent.rs`) and the select loop that drives it.
//! - `guest`: an invited colleague's session (own relay connection, code, pairing, consent).
//! - `files`: file transfer — list, push (into the landing folder) and pull (inside the shared
//!   roots), links never followed, nothing replaced, cut pushes resumed.
//! - `requests`: request streams: checked against the grant, then each kind served on its own stream.
//! - [`ui`]: the events and commands between the session and a front end.
//! - [`terminal`]: the terminal front end (prompt, answers, `q` to end).
//! - [`window`]: the agent window (code, consent dialog, session banner, local log).
//! - [`inventory`]: the full hardware and software inventory, from the OS.
//! - [`diagnostics`]: the probe catalog: running each probe against a deadline, and its verdict.
//! - [`enroll`]: enrollment and the device's local state (identity, queue, base snapshot).
//! - [`report`]: service mode — scheduled inventory reports, queued on disk until acknowledged.
//! - [`policy`]: IT's allowed organisations and the organisations this machine already knows.
//! - [`local_log`]: the user's own session log (`tether-agent log`).
//! - [`screen`]: capture and input backends behind traits; the view and control streams.

pub mod backoff;
pub mod cli;
pub mod clipboard;
mod config;
pub mod desktop;
pub mod desktop_socket;
pub mod diagnostics;
pub mod enroll;
mod files;
mod guest;
pub mod inventory;
mod link;
pub mod local_log;
pub mod policy;
pub mod report;
mod requests;
pub mod screen;
mod session;
pub mod share;
pub mod terminal;
pub mod ui;
pub mod wake;
mod wake_link;
pub mod window;

pub use share::{FilesConfig, ShareConfig, ShareError, share};
