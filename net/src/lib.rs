//! QUIC glue shared by the relay, the agent and the console.
//!
//! `proto` is pure; this crate is where its frames meet quinn streams. Keeping it in one crate means
//! the relay, agent and console cannot drift apart on transport settings, certificate pinning or
//! stream framing, and the relay still depends on neither the agent nor the console.
//!
//! # Layout
//! - [`tls`]: the relay's self-made certificate, its SHA-256 fingerprint, and client trust (pinned
//!   fingerprint or CA file; there is no "skip verification").
//! - [`transport`]: quinn transport settings (keep-alive, idle timeout, stream limits) and endpoints.
//! - [`framed`]: reading and writing length-prefixed frames on quinn streams.
//! - [`private_file`]: the one writer of owner-only files (keys, device secrets), for every crate.
//! - [`sealed`]: a bidirectional stream whose frames are sealed end to end.
//! - [`e2e`]: a session's end-to-end QUIC connection (pinned both ways through the sealed stream 0),
//!   carried by the relay's packet forwarder.
//! - [`path`]: the end-to-end connection's socket, relayed or direct (probes, the switch, the way back).
//! - [`cli`]: the relay options agent and console share on the command line.
//! - [`closed`]: why a relay connection ended (the relay's close code and reason, or a timeout).
//! - [`client`]: connecting to a relay and the `Hello` exchange, with errors a person can act on.

pub mod cli;
pub mod client;
pub mod clock;
pub mod closed;
pub mod e2e;
pub mod framed;
pub mod path;
pub mod private_file;
pub mod sealed;
pub mod tls;
pub mod transport;

pub use client::{ConnectError, RelayTarget};
pub use framed::FrameError;
pub use tls::Trust;
