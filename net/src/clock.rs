//! The wall clock, read in one place for all three programs. Stored and reported times are Unix
//! seconds; the logic that uses them takes `now` as an argument, so only the edges call this.

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
