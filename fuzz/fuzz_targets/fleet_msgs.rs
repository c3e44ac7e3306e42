//! The fleet messages: what an enrolled device sends the relay (`DeviceToRelay`), the relay's answers
//! (`RelayToDevice`), IT's questions (`FleetQuery`) and their answers (`FleetReply`), through the same
//! `codec` the product uses, with a re-encode round trip and the decode allocation bound.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use tether_proto::codec::MAX_DECODED_LEN;
use tether_proto::fleet::{DeviceToRelay, FleetQuery, FleetReply, RelayToDevice};

#[global_allocator]
static ALLOC: common::PeakAlloc = common::PeakAlloc;

fuzz_target!(|data: &[u8]| {
    common::reset_peak();
    common::check::<DeviceToRelay>(data);
    common::check::<RelayToDevice>(data);
    common::check::<FleetQuery>(data);
    common::check::<FleetReply>(data);
    common::assert_peak_at_most(MAX_DECODED_LEN, "fleet messages");
});
