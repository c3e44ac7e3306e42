//! The user's cursor on a view stream: its shape, and the pure drawing of it over a picture.
//!
//! # Flow
//! ```text
//! agent                                          console
//!   |-- ScreenMsg::CursorShape(shape) ------------>|  when the shape's serial changes (checked, kept)
//!   |-- ScreenMsg::Cursor { x, y } --------------->|  when the pointer moves (display pixels)
//!   |-- ScreenMsg::Frame (..) -------------------->|
//! ```
//! The agent sends a shape before the first position that uses it; the console draws the last shape
//! at the last position. The format is backend-neutral: X11 takes it from XFixes `GetCursorImage`, a
//! Wayland backend from the portal's cursor metadata. Pixels are premultiplied R G B A, row by row,
//! which is what both give (after a byte shuffle) and what compositing needs.

use serde::{Deserialize, Serialize};

use crate::screen::{BPP, Framebuffer};

/// Largest accepted cursor side, in pixels: HiDPI cursors are 96 or 128 at most; a larger shape is a
/// hostile agent (or one the agent does not send).
pub const MAX_CURSOR_SIDE: u16 = 256;

/// A cursor image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct CursorShape {
    /// Changes whenever the shape does (the XFixes cursor serial on X11).
    pub serial: u64,
    /// Width in pixels, 1..=[`MAX_CURSOR_SIDE`].
    pub width: u16,
    /// Height in pixels, 1..=[`MAX_CURSOR_SIDE`].
    pub height: u16,
    /// The hot spot (the pixel that is "the pointer position"), inside the image.
    pub hot_x: u16,
    /// See `hot_x`.
    pub hot_y: u16,
    /// Premultiplied R G B A, `width * 4` bytes per row.
    pub rgba: Vec<u8>,
}

/// Why a cursor shape was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// A side is zero or above [`MAX_CURSOR_SIDE`].
    #[error("cursor size {0}x{1} is out of range")]
    BadSize(u16, u16),
    /// The hot spot lies outside the image.
    #[error("cursor hot spot ({0}, {1}) lies outside the image")]
    HotSpot(u16, u16),
    /// The pixel buffer does not match the size.
    #[error("cursor has {got} pixel bytes, expected {expected}")]
    Pixels {
        /// Bytes given.
        got: usize,
        /// Bytes expected.
        expected: usize,
    },
}

impl CursorShape {
    /// From packed 32-bit premultiplied ARGB words (XFixes, most cursor APIs), row by row.
    pub fn from_argb(
        serial: u64,
        (width, height): (u16, u16),
        (hot_x, hot_y): (u16, u16),
        argb: &[u32],
    ) -> Result<Self, CursorError> {
        let rgba = argb
            .iter()
            .flat_map(|p| {
                let [a, r, g, b] = p.to_be_bytes();
                [r, g, b, a]
            })
            .collect();
        let shape = CursorShape {
            serial,
            width,
            height,
            hot_x,
            hot_y,
            rgba,
        };
        shape.check()?;
        Ok(shape)
    }

    /// Checks every bound; the console calls it on every shape it receives, before using it.
    pub fn check(&self) -> Result<(), CursorError> {
        let (w, h) = (self.width, self.height);
        if w == 0 || h == 0 || w > MAX_CURSOR_SIDE || h > MAX_CURSOR_SIDE {
            return Err(CursorError::BadSize(w, h));
        }
        if self.hot_x >= w || self.hot_y >= h {
            return Err(CursorError::HotSpot(self.hot_x, self.hot_y));
        }
        let expected = usize::from(w) * usize::from(h) * 4;
        if self.rgba.len() != expected {
            return Err(CursorError::Pixels {
                got: self.rgba.len(),
                expected,
            });
        }
        Ok(())
    }

    /// Draws the cursor over `fb` with its hot spot at (`x`, `y`) (display pixels; may be partly or
    /// wholly outside). Returns how many framebuffer pixels it touched. A shape that fails
    /// [`Self::check`] draws nothing.
    pub fn draw(&self, fb: &mut Framebuffer, x: i32, y: i32) -> usize {
        if self.check().is_err() {
            return 0;
        }
        // i64: a hostile position near i32::MIN cannot overflow.
        let left = i64::from(x) - i64::from(self.hot_x);
        let top = i64::from(y) - i64::from(self.hot_y);
        let mut touched = 0;
        for cy in 0..usize::from(self.height) {
            let fy = top + cy as i64;
            if fy < 0 || fy >= i64::from(fb.height) {
                continue;
            }
            for cx in 0..usize::from(self.width) {
                let fx = left + cx as i64;
                if fx < 0 || fx >= i64::from(fb.width) {
                    continue;
                }
                let s = (cy * usize::from(self.width) + cx) * 4;
                let [r, g, b, a] = [
                    self.rgba[s],
                    self.rgba[s + 1],
                    self.rgba[s + 2],
                    self.rgba[s + 3],
                ];
                if a == 0 && r == 0 && g == 0 && b == 0 {
                    continue;
                }
                let d = (fy as usize * fb.width as usize + fx as usize) * BPP;
                // Premultiplied "over": out = src + dst * (1 - alpha). The framebuffer is B G R X.
                let keep = u16::from(255 - a);
                for (i, src) in [(0, b), (1, g), (2, r)] {
                    let dst = u16::from(fb.pixels[d + i]);
                    fb.pixels[d + i] = src.saturating_add((dst * keep / 255) as u8);
                }
                touched += 1;
            }
        }
        touched
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arrow() -> CursorShape {
        // 4x3: an opaque red column on the left, a half-transparent white pixel, the rest clear.
        let mut argb = vec![0u32; 12];
        for row in 0..3 {
            argb[row * 4] = 0xffff_0000;
        }
        argb[1] = 0x8080_8080;
        CursorShape::from_argb(9, (4, 3), (0, 0), &argb).unwrap()
    }

    #[test]
    fn argb_words_become_premultiplied_rgba() {
        let s = arrow();
        assert_eq!(&s.rgba[..8], &[255, 0, 0, 255, 0x80, 0x80, 0x80, 0x80]);
        assert_eq!(s.rgba.len(), 48);
    }

    #[test]
    fn hostile_shapes_are_refused() {
        let ok = arrow();
        assert_eq!(ok.check(), Ok(()));
        let big = CursorShape {
            width: MAX_CURSOR_SIDE + 1,
            ..ok.clone()
        };
        assert_eq!(big.check(), Err(CursorError::BadSize(257, 3)));
        let empty = CursorShape {
            height: 0,
            ..ok.clone()
        };
        assert_eq!(empty.check(), Err(CursorError::BadSize(4, 0)));
        let hot = CursorShape {
            hot_x: 4,
            ..ok.clone()
        };
        assert_eq!(hot.check(), Err(CursorError::HotSpot(4, 0)));
        let short = CursorShape {
            rgba: vec![0; 47],
            ..ok.clone()
        };
        assert_eq!(
            short.check(),
            Err(CursorError::Pixels {
                got: 47,
                expected: 48
            })
        );
        let mut fb = Framebuffer::new(8, 8).unwrap();
        assert_eq!(short.draw(&mut fb, 2, 2), 0, "a bad shape draws nothing");
        assert!(CursorShape::from_argb(1, (0, 1), (0, 0), &[]).is_err());
    }

    #[test]
    fn drawing_puts_the_hot_spot_at_the_position_and_clips() {
        let mut shape = arrow();
        shape.hot_y = 1;
        let mut fb = Framebuffer::new(8, 8).unwrap();
        // Hot spot (0, 1) at (5, 5): the red column covers (5, 4..=6).
        assert_eq!(shape.draw(&mut fb, 5, 5), 4);
        let px = |fb: &Framebuffer, x: usize, y: usize| {
            let i = (y * 8 + x) * BPP;
            [fb.pixels[i + 2], fb.pixels[i + 1], fb.pixels[i]]
        };
        for y in 4..=6 {
            assert_eq!(px(&fb, 5, y), [255, 0, 0]);
        }
        // The half-transparent pixel over black keeps its premultiplied value.
        assert_eq!(px(&fb, 6, 4), [0x80, 0x80, 0x80]);
        assert_eq!(px(&fb, 7, 5), [0, 0, 0], "clear pixels leave the picture");
        let red = fb.pixels.chunks(4).filter(|p| p[2] == 255).count();
        assert_eq!(red, 3, "nowhere else");
        // Over white, half-transparent grey gives about 0x80 + 0x7f.
        let mut white = Framebuffer::new(8, 8).unwrap();
        white.pixels.fill(255);
        shape.draw(&mut white, 5, 5);
        assert_eq!(px(&white, 6, 4), [0xff, 0xff, 0xff]);
        // At the corner, only what lies inside is drawn; wholly outside draws nothing.
        let mut fb = Framebuffer::new(8, 8).unwrap();
        assert_eq!(shape.draw(&mut fb, 7, 0), 2, "two rows of the red column");
        assert_eq!(shape.draw(&mut fb, -20, 3), 0);
        assert_eq!(shape.draw(&mut fb, i32::MAX - 1, i32::MIN + 1), 0);
    }

    proptest! {
        #[test]
        fn any_shape_draws_without_panic(s: CursorShape, x: i32, y: i32) {
            let mut fb = Framebuffer::new(16, 16).unwrap();
            let n = s.draw(&mut fb, x, y);
            prop_assert!(n <= 256);
        }
    }
}
