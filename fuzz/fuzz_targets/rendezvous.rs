//! The relay's request handling below the sockets: the slot table driven by arbitrary sequences of
//! open / claim / expire / leave / admit operations, checking its invariants after each.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use tether_proto::Slot;
use tether_relay::rendezvous::Rendezvous;

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut t: Rendezvous<u8> = Rendezvous::new(Duration::from_secs(600), 4, 20, 60);
    let mut now = start;
    for op in data.chunks(3) {
        let [kind, a, b] = [op[0], *op.get(1).unwrap_or(&0), *op.get(2).unwrap_or(&0)];
        match kind % 5 {
            0 => {
                let _ = t.open(u64::from(a % 8), a, now, &mut rng);
            }
            1 => {
                let slot = Slot(100 + u32::from(a) * 3 + u32::from(b % 3));
                if t.claim(slot, &format!("tech{}", b % 4), now).is_ok() {
                    // A slot is single use: it can never be claimed twice.
                    assert!(t.claim(slot, "other", now).is_err());
                }
            }
            2 => now += Duration::from_secs(u64::from(a) * 10),
            3 => t.remove_agent(u64::from(a % 8)),
            _ => {
                let _ = t.admit_source(std::net::IpAddr::from([127, 0, 0, a]), now);
            }
        }
        let _ = t.expire(now);
        assert!(t.stats().open <= 8 * 4, "per-agent limit broken");
    }
});
