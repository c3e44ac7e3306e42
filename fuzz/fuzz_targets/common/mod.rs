//! Shared by the fuzz targets: the decode-and-re-encode check every message type gets, and an
//! allocator that remembers the largest single allocation, so a target can assert that hostile bytes
//! never make the product allocate beyond its named bounds.
//!
//! Without a sanitizer (`-s none`) libFuzzer's `-malloc_limit_mb` has no hooks to work with, and a
//! zeroed allocation does not even raise RSS until it is touched, so this is the oracle for "no huge
//! allocations".
#![allow(dead_code, unsafe_code)]

pub mod base;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use tether_proto::codec::{decode, from_body, to_body};

/// Counts the largest single allocation since the last [`reset_peak`].
pub struct PeakAlloc;

static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed straight to the system allocator; only a counter is added.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        PEAK.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        PEAK.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        PEAK.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Forgets the peak (call at the start of each input).
pub fn reset_peak() {
    PEAK.store(0, Ordering::Relaxed);
}

/// Panics if any single allocation since [`reset_peak`] was larger than `limit` bytes.
pub fn assert_peak_at_most(limit: usize, what: &str) {
    let peak = PEAK.load(Ordering::Relaxed);
    assert!(
        peak <= limit,
        "{what}: one allocation of {peak} bytes, above the bound of {limit}"
    );
}

/// Decodes `data` as one framed `T` (what stream readers do) and as a bare body; whatever decodes
/// re-encodes to a body that decodes again.
pub fn check<T: serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug>(data: &[u8]) {
    if let Ok(Some((msg, used))) = decode::<T>(data) {
        assert!(used <= data.len());
        let body = to_body(&msg).expect("re-encode");
        from_body::<T>(&body).expect("decode of re-encoded body");
    }
    let _ = from_body::<T>(data);
}
