//! Relay benchmarks. Each figure in `BENCHMARKS.md` ("Relay") comes from one subcommand of the
//! `tether-bench` binary; comparisons (relay vs direct) are measured in the same run.
//!
//! # Layout
//! - [`proc`]: CPU time and resident memory of a process, from `/proc`.
//! - [`child`]: the real `tether-relay` binary as a child process, so its memory and CPU are its own.
//! - [`raw`]: the relay protocol driven directly (Hello → OpenSlot / Claim → spliced streams), without
//!   pairing, for load that measures the relay rather than SPAKE2.
//! - [`throughput`]: bytes/s through the relay vs a direct QUIC connection; relay CPU per GB.
//! - [`idle`]: relay memory per idle agent and keep-alive bytes per agent per second.
//! - [`pairing`]: sessions per second and claim → paired latency with the real agent and console.
//! - [`sessions`]: many simultaneous sessions, each moving data.
//! - [`faults`]: recovery after a relay restart, and detection of a vanished peer.
//! - [`files`]: file push throughput vs raw splice through the same relay; the agent's CPU per GB.
//! - [`cluster`]: two nodes on one PostgreSQL: claims per second on one node vs two, idle agents
//!   spread over both.
//!
//! This is a measuring tool, not library code: its helper tasks are detached and end with the
//! process, and failures panic or bubble up as `anyhow` errors.

pub mod child;
pub mod cluster;
pub mod faults;
pub mod files;
pub mod idle;
pub mod pairing;
pub mod proc;
pub mod raw;
pub mod sessions;
pub mod throughput;

/// Formats a byte count with a binary unit.
pub fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = b;
    let mut i = 0;
    while v.abs() >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", UNITS[i])
}

/// The value at quantile `q` (0..=1) of sorted `v`.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i.min(v.len() - 1)]
}
