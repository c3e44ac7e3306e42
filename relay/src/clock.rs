//! The wall clock, read in one place ([`tether_net::clock`]). Stored times are Unix seconds; the
//! logic that uses them takes `now` as an argument, so only the edges call this.

pub use tether_net::clock::now_unix;
