//! Opening sealed frames: arbitrary bytes never open under the session key, and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_proto::msg::ConsoleToAgent;
use tether_proto::pairing::{Pairing, Side};
use tether_proto::seal::Direction;
use tether_proto::{SessionCode, Slot};

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static KEYS: tether_proto::seal::SessionKeys = {
            let code: SessionCode = "417 302 958".parse().expect("code");
            let mut a = Pairing::new(Side::Console, Slot(417), &code.secret);
            let mut b = Pairing::new(Side::Agent, Slot(417), &code.secret);
            for _ in 0..3 {
                while let Some(m) = a.poll_transmit() { let _ = b.handle(m); }
                while let Some(m) = b.poll_transmit() { let _ = a.handle(m); }
            }
            a.into_keys().expect("paired")
        };
    }
    KEYS.with(|keys| {
        let mut opener = keys.opener(0, Direction::ConsoleToAgent);
        assert!(opener.open(data).is_err(), "forged frame opened");
        let _ = keys
            .opener(1, Direction::AgentToConsole)
            .open_msg::<ConsoleToAgent>(data);
    });
});
