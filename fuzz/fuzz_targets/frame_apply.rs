//! Hostile pixels into the console: `Framebuffer::apply` with one `FrameDecoder` per view stream, as
//! `technician-console/src/screen.rs` does. Two shapes of input, chosen by the first byte:
//! - even: the bytes of a view stream, framed `ScreenMsg`s in order (the product's exact path);
//! - odd: parts built from a small header and raw bytes, so the fuzzer reaches the zstd decoder
//!   directly instead of having to find valid zstd inside a bincode length field.
//!
//! Checks: no panic; a part that applies leaves a framebuffer of its announced size; a part that
//! fails leaves the framebuffer unchanged (what `apply` promises); no single allocation above the
//! framebuffer bound, whatever sizes and rectangles are announced.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use tether_proto::codec::decode;
use tether_proto::screen::{
    BPP, FrameDecoder, CopyRect, FrameUpdate, Framebuffer, MAX_PIXELS, MAX_SIDE, Rect, ScreenMsg,
};

#[global_allocator]
static ALLOC: common::PeakAlloc = common::PeakAlloc;

/// The largest framebuffer, plus room for bincode's own bounded buffers.
const ALLOC_BOUND: usize = MAX_PIXELS as usize * BPP + (1 << 20);

fn apply(fb: &mut Framebuffer, dec: &mut FrameDecoder, u: &FrameUpdate) -> bool {
    // Comparing the whole framebuffer is only affordable while it is small.
    let before = (fb.pixels.len() <= 1 << 18).then(|| fb.clone());
    match fb.apply(dec, u) {
        Ok(()) => {
            assert_eq!((fb.width, fb.height), (u.width, u.height));
            assert_eq!(
                fb.pixels.len(),
                fb.width as usize * fb.height as usize * BPP
            );
            true
        }
        Err(_) => {
            if let Some(b) = before {
                assert!(b == *fb, "a failed part changed the framebuffer");
            }
            false
        }
    }
}

fn u16_at(b: &[u8], i: usize) -> u32 {
    u32::from(u16::from_le_bytes([b[i], b[i + 1]]))
}

fuzz_target!(|data: &[u8]| {
    common::reset_peak();
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let mut dec = FrameDecoder::new().expect("a zstd decoder");
    // What `Response::Viewing` announced; a frame of another size resizes it.
    let mut fb = Framebuffer::new(64, 48).expect("a small framebuffer");
    if mode % 2 == 0 {
        while let Ok(Some((msg, used))) = decode::<ScreenMsg>(rest) {
            rest = &rest[used..];
            // The console ends the view stream at the first part (or cursor shape) that fails.
            match msg {
                ScreenMsg::Frame(u) if !apply(&mut fb, &mut dec, &u) => break,
                ScreenMsg::CursorShape(s) => {
                    if s.check().is_err() {
                        break;
                    }
                    // A checked shape draws anywhere without panicking, and only within its box.
                    let touched = s.draw(&mut fb, i32::from(s.hot_x) - 3, 7);
                    assert!(touched <= usize::from(s.width) * usize::from(s.height));
                }
                _ => {}
            }
        }
    } else {
        // Each part: width, height (u16, so sizes past MAX_SIDE occur), a rect (4 × u8, scaled),
        // flags, the data length (u16), then the data.
        let mut seq = 1;
        while rest.len() >= 11 {
            let (head, tail) = rest.split_at(11);
            let len = (u16_at(head, 9) as usize).min(tail.len());
            let (bytes, tail) = tail.split_at(len);
            rest = tail;
            let scale = if head[8] & 4 != 0 { 64 } else { 1 };
            let rect = Rect {
                x: u32::from(head[4]) * scale,
                y: u32::from(head[5]) * scale,
                w: u32::from(head[6]) * scale,
                h: u32::from(head[7]) * scale,
            };
            // Flag 8: the rectangle is also copied from its transpose (copy-rect checks and apply).
            let copies = if head[8] & 8 != 0 {
                vec![CopyRect {
                    src_x: rect.y,
                    src_y: rect.x,
                    dst: rect,
                }]
            } else {
                Vec::new()
            };
            let u = FrameUpdate {
                seq,
                width: u16_at(head, 0) % (MAX_SIDE + 2),
                height: u16_at(head, 2) % (MAX_SIDE + 2),
                rects: vec![rect],
                data: bytes.to_vec(),
                standalone: head[8] & 1 != 0,
                last: head[8] & 2 != 0,
                copies,
                video: None,
            };
            seq += 1;
            if !apply(&mut fb, &mut dec, &u) {
                break;
            }
        }
    }
    common::assert_peak_at_most(ALLOC_BOUND, "frame apply");
});
