//! The technician console: claim a code, pair, ask for scopes, then pull inventory and diagnostics.
//!
//! # Layout
//! - [`session`]: [`open_session`] and [`Session`] — the library a script or a window builds on.
//! - [`chat`]: the line-based chat of `tether-console chat`.
//! - [`clipboard`]: the user's clipboard ([`clipboard::get`], [`clipboard::set`]) and the viewer's
//!   focus sync with the technician's own clipboard.
//! - [`cli`]: the `tether-console` command line (arguments, checks before connecting, commands,
//!   output); `main.rs` only calls it.
//! - [`cursor`]: the user's cursor drawn over the live screen.
//! - [`diag`]: reading probe parameters from the technician's words, and the probe help and
//!   catalog.
//! - [`displays`]: switching displays (monitors) within a session, and the display picker's places.
//! - [`error`]: [`ConsoleError`], one variant per thing a technician can act on, each with an exit code.
//! - [`files`]: file transfer in a session: [`files::push`], [`files::pull`], [`files::list`],
//!   with progress and resuming.
//! - [`fleet`]: IT's fleet queries (devices, export, history, search) and their tables and CSV.
//! - [`keys`]: physical keys from egui and from the CLI's names and chords, and the screen pane's
//!   keyboard capture.
//! - [`picture`]: what changed on the remote screen since the window drew it, and the RGBA copy the
//!   texture is updated from, rectangle by rectangle (pure).
//! - [`records`]: session records (list, show, search, note, close) and the facts a session posts.
//! - [`render`]: human tables for the command line (JSON output is serde's).
//! - [`rows`]: the one projection of an inventory into rows, for the window, the CSV export and the
//!   command line.
//! - [`technician_key`]: the technician's own key, made on this machine, and the certificate the
//!   organisation's key signed for it (sessions on enrolled devices without a code).
//! - [`screen`]: view and control streams ([`Session::view`], [`Session::control`]), PNG snapshots.
//! - [`viewer`]: the eframe window showing a remote screen, with status bar and input; its
//!   [`viewer::ScreenPane`] is the live screen in both windows.
//! - [`window`]: the console window (`tether-console window`): code entry, consent state, live
//!   screen, inventory and diagnostics panels; [`window::model`] is its display-free state.

pub mod chat;
pub mod cli;
pub mod clipboard;
pub mod cursor;
pub mod diag;
pub mod displays;
pub mod enrolled;
pub mod error;
pub mod files;
pub mod fleet;
pub mod keys;
pub mod picker;
pub mod picture;
pub mod records;
pub mod render;
pub mod rows;
pub mod screen;
pub mod session;
pub mod technician_key;
pub mod units;
pub mod viewer;
pub mod window;

pub use error::ConsoleError;
pub use session::{
    ClaimInfo, ConsoleConfig, Session, open_session, open_session_with, pair_session,
    pair_session_with,
};
