//! Every message decoder on the same bytes, through the same `codec::decode` the product uses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_proto::codec::{decode, from_body, to_body};
use tether_proto::msg::*;
use tether_proto::pairing::PairingMsg;

fn check<T: serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug>(data: &[u8]) {
    if let Ok(Some((msg, used))) = decode::<T>(data) {
        assert!(used <= data.len());
        // Whatever decodes re-encodes to a body that decodes again.
        let body = to_body(&msg).expect("re-encode");
        from_body::<T>(&body).expect("decode of re-encoded body");
    }
    let _ = from_body::<T>(data);
}

fuzz_target!(|data: &[u8]| {
    check::<Hello>(data);
    check::<HelloReply>(data);
    check::<AgentToRelay>(data);
    check::<RelayToAgent>(data);
    check::<ConsoleToRelay>(data);
    check::<RelayToConsole>(data);
    check::<StreamOpen>(data);
    check::<ConsoleToAgent>(data);
    check::<AgentToConsole>(data);
    check::<Request>(data);
    check::<Response>(data);
    check::<PairingMsg>(data);
    check::<tether_proto::records::RecordQuery>(data);
    check::<tether_proto::records::RecordReply>(data);
});
