//! The pairing state machine fed arbitrary peer messages: it never panics and never succeeds without
//! the right key confirmation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_proto::codec::decode;
use tether_proto::pairing::{Pairing, PairingMsg, Side};
use tether_proto::{SessionCode, Slot};

fuzz_target!(|data: &[u8]| {
    let code: SessionCode = "417 302 958".parse().expect("code");
    let mut p = Pairing::new(Side::Agent, Slot(417), &code.secret);
    let mut rest = data;
    while let Ok(Some((msg, used))) = decode::<PairingMsg>(rest) {
        let _ = p.handle(msg);
        rest = &rest[used..];
    }
    // Random bytes cannot produce a valid confirmation tag for an unknown SPAKE2 key.
    assert!(
        !matches!(p.outcome(), Some(Ok(_))),
        "pairing succeeded on fuzz input"
    );
});
