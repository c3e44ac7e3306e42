//! The view and control stream messages (`ScreenMsg`, `ViewerMsg`, `InputEvent`, `InputReply`) through
//! the same `codec` the product's sealed streams use, with a re-encode round trip and the decode
//! allocation bound.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use tether_proto::codec::MAX_DECODED_LEN;
use tether_proto::screen::{InputEvent, InputReply, ScreenMsg, ViewerMsg};

#[global_allocator]
static ALLOC: common::PeakAlloc = common::PeakAlloc;

fuzz_target!(|data: &[u8]| {
    common::reset_peak();
    common::check::<ScreenMsg>(data);
    common::check::<ViewerMsg>(data);
    common::check::<InputEvent>(data);
    common::check::<InputReply>(data);
    common::assert_peak_at_most(MAX_DECODED_LEN, "screen messages");
});
