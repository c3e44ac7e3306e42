//! Hostile inventory deltas into the relay: a device's report decoded from bytes as the relay does,
//! then `Inventory::apply_checked` against the base the relay holds (`relay/src/store.rs`). The base
//! is a fixed inventory, or (first byte odd) one decoded from the input too, since the base is itself
//! whatever the device reported before.
//!
//! Checks: no panic; a delta applies to an inventory whose packages are sorted and unique by key (what
//! `Software::packages` promises); `apply_checked` succeeds exactly when the digest matches; the delta
//! from base to result reproduces the result; no allocation above the decode bound.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use tether_proto::codec::{MAX_DECODED_LEN, decode};
use tether_proto::fleet::{DeviceToRelay, ReportBody};
use tether_proto::inventory::{Inventory, InventoryDelta};

#[global_allocator]
static ALLOC: common::PeakAlloc = common::PeakAlloc;

fn check(base: &Inventory, delta: &InventoryDelta, digest: &str) {
    let Ok(next) = base.apply(delta) else {
        assert!(base.apply_checked(delta, digest).is_err());
        return;
    };
    let p = &next.software.packages;
    assert!(
        p.windows(2)
            .all(|w| w[0] < w[1] && w[0].key() != w[1].key()),
        "packages not sorted and unique by key"
    );
    assert_eq!(
        base.apply_checked(delta, digest).is_ok(),
        next.digest() == digest,
        "apply_checked disagrees with the digest"
    );
    // What the relay stores reproduces itself as a delta from the base (an agent's next delta).
    assert_eq!(base.apply(&next.delta_from(base)).as_ref(), Ok(&next));
}

fuzz_target!(|data: &[u8]| {
    common::reset_peak();
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let base = if mode % 2 == 1 {
        match decode::<Inventory>(rest) {
            Ok(Some((inv, used))) => {
                rest = &rest[used..];
                // As stored: the relay keeps a full report as sent, normalised or not.
                inv
            }
            _ => return,
        }
    } else {
        common::base::fixed_base()
    };
    if let Ok(Some((DeviceToRelay::Report(r), _))) = decode::<DeviceToRelay>(rest)
        && let ReportBody::Delta { delta, .. } = &r.body
    {
        check(&base, delta, &r.digest);
        // A digest the fuzzer could not guess: the true one must be accepted.
        if let Ok(next) = base.apply(delta) {
            assert!(base.apply_checked(delta, &next.digest()).is_ok());
        }
    }
    common::assert_peak_at_most(MAX_DECODED_LEN, "inventory apply");
});
