//! Tether's protocol, with no I/O of its own.
//!
//! Everything that two Tether programs must agree on lives here: the messages each side sends, how they
//! are framed on a stream, the one-time session code, the scopes a user grants, the SPAKE2 pairing that
//! turns the code into a shared key, and the sealing of every session frame with that key. Nothing here
//! touches a socket, a runtime or a clock: callers feed bytes in and take bytes out.
//!
//! # Layout
//! - [`codec`]: the only place that frames and (de)serialises: a length prefix, checked against
//!   [`codec::MAX_FRAME_LEN`] before anything is allocated, then a bincode 2 body.
//! - [`code`]: [`SessionCode`] (slot + secret), how it is printed and parsed.
//! - [`scope`]: [`Scope`] and [`ScopeSet`]; scopes are never strings on the wire.
//! - [`msg`]: the messages, grouped by direction, and the [`msg::Hello`] version negotiation.
//! - [`pairing`]: the SPAKE2 + key-confirmation state machine run over the relay-spliced stream.
//! - [`org`]: trust without a code: the org signing key, technician certificates, signed IT
//!   policies, device keys; [`handshake`]: the authenticated key exchange they run instead of pairing.
//! - [`seal`]: ChaCha20-Poly1305 sealing with per-stream, per-direction keys and counter nonces.
//! - [`inventory`] and [`diag`]: the structured results the agent returns; [`inventory`] also has
//!   deltas between two inventories.
//! - [`forward`]: the relay's packet forwarding for a session's end-to-end connection (bind
//!   packets, route tokens).
//! - [`fleet`]: enrolled devices — enrollment, inventory reports, and IT's fleet queries.
//! - [`chat`]: in-session chat text and its limits.
//! - [`files`]: file transfer (list, push, pull), its receiver's checker and the name rules.
//! - [`clipboard`]: clipboard sharing — which selection, the size limit, what a notice shows.
//! - [`text`]: the one rule for showing text another party wrote ([`text::display_safe`]).
//! - [`records`]: session records (ticket, reason, notes, probes run, resolution) and their queries.
//! - [`screen`]: screen view and input messages, and the pure tile-diff + zstd frame encoding.
//! - [`cursor`]: the user's cursor shape on a view stream, its limits, and drawing it over a picture.
//! - [`keys`]: physical keys — the one table of W3C code names, USB HID usages and evdev codes.

pub mod chat;
pub mod clipboard;
pub mod code;
pub mod codec;
pub mod desktop;
pub mod diag;
pub mod files;
pub mod fleet;
pub mod forward;
pub mod handshake;
pub mod inventory;
pub mod keys;
pub mod msg;
pub mod org;
pub mod pairing;
pub mod path;
pub mod records;
pub mod scope;
pub mod screen;
pub mod seal;
pub mod text;
pub mod time;

/// Cursor shapes travel on the view stream; the module sits under `screen`.
pub use screen::cursor;

pub use code::{CodeParseError, SessionCode, Slot};
pub use scope::{Scope, ScopeSet};

/// The protocol version this build speaks. Sent in every [`msg::Hello`]; a relay refuses any other
/// version with a clear reason rather than meet messages it cannot decode. Version 2 added the fleet's
/// `Resync`, session-ending protocol errors on request streams, and the screen's pixel limits.
/// Version 3 added the cursor shape on view streams, display names (monitors), physical keys, the
/// end reasons for a consent timeout and an idle chat, and grant changes during a session.
/// Version 4 added the `clipboard` and `files` scopes with their requests (clipboard get and set;
/// file list, push and pull), the files in session records, and copy-rects in frame updates
/// (`FrameUpdate::copies`: scrolled and moved regions sent as copies).
/// Version 5 moved the session's requests onto an end-to-end QUIC connection whose packets the
/// relay forwards ([`forward`]): route tokens in the claim messages, `E2eOffer` on stream 0.
/// Version 6 added direct paths (`PathOffer` on the transport stream, [`path`]).
/// Version 7 added the lossy path for video regions (`FrameUpdate::video`, [`screen::video`]),
/// `ScreenMsg::Patch` for one-rectangle frames, and the window of eight small frames
/// ([`screen::InFlight`]).
pub const PROTOCOL_VERSION: u32 = 7;

/// The QUIC ALPN for protocol version 1. A peer offering anything else fails the TLS handshake.
pub const ALPN: &[u8] = b"tether/1";
