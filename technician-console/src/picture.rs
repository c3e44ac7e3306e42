//! What changed on the remote screen since the window last drew it, and the RGBA copy the window
//! uploads from (pure: no egui, unit-tested).
//!
//! The view stream records the rectangles each frame part touched ([`Damage`]); the network task
//! converts only those rectangles of the B G R X framebuffer into the [`Picture`] (RGBA, what the
//! GPU texture wants) and adds them to the window's pending damage; the window uploads only those
//! rectangles of the texture. A static screen therefore costs no conversion, no upload and (with
//! no repaint requested) no drawing at all.

use tether_proto::screen::{Framebuffer, Rect};

/// Most rectangles kept before the damage counts as the whole picture: past this many, one full
/// upload is cheaper than a long list of small ones, and the list stays bounded however long the
/// window goes without drawing.
pub const MAX_DAMAGE_RECTS: usize = 256;

/// What changed since the last time somebody took it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Damage {
    /// Nothing.
    #[default]
    None,
    /// These rectangles (inside the picture).
    Rects(Vec<Rect>),
    /// Everything (the first frame, a new size, or too many rectangles).
    Full,
}

impl Damage {
    /// Adds rectangles.
    pub fn add(&mut self, rects: &[Rect]) {
        match self {
            Damage::Full => {}
            Damage::None => *self = Damage::Rects(rects.to_vec()),
            Damage::Rects(list) => list.extend_from_slice(rects),
        }
        if matches!(self, Damage::Rects(l) if l.len() > MAX_DAMAGE_RECTS) {
            *self = Damage::Full;
        }
    }

    /// Adds everything in `other`.
    pub fn merge(&mut self, other: Damage) {
        match other {
            Damage::None => {}
            Damage::Full => *self = Damage::Full,
            Damage::Rects(r) => self.add(&r),
        }
    }

    /// Takes the damage, leaving none.
    pub fn take(&mut self) -> Damage {
        std::mem::take(self)
    }
}

/// The remote screen as RGBA (alpha 255), kept up to date rectangle by rectangle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Picture {
    /// Width and height in pixels.
    pub size: [usize; 2],
    /// `size[0] * size[1] * 4` bytes.
    pub rgba: Vec<u8>,
}

impl Picture {
    /// Brings the picture up to date with `fb` where `damage` says it changed; a framebuffer of
    /// another size (or [`Damage::Full`]) is converted whole. Returns the damage the picture
    /// actually took (full when it was rebuilt), for the texture.
    pub fn update(&mut self, fb: &Framebuffer, damage: Damage) -> Damage {
        let size = [fb.width as usize, fb.height as usize];
        let damage = if size != self.size {
            Damage::Full
        } else {
            damage
        };
        match &damage {
            Damage::None => {}
            Damage::Full => {
                self.size = size;
                self.rgba = fb.to_rgba();
            }
            Damage::Rects(rects) => {
                for r in rects {
                    self.convert(fb, r);
                }
            }
        }
        damage
    }

    /// Converts one rectangle; one outside the picture is clipped (the framebuffer checked every
    /// rectangle already, so this is only a guard).
    fn convert(&mut self, fb: &Framebuffer, r: &Rect) {
        let (w, h) = (self.size[0], self.size[1]);
        let (x0, y0) = ((r.x as usize).min(w), (r.y as usize).min(h));
        let (x1, y1) = (
            (r.x as usize + r.w as usize).min(w),
            (r.y as usize + r.h as usize).min(h),
        );
        for y in y0..y1 {
            let row = y * w * 4;
            let src = &fb.pixels[row + x0 * 4..row + x1 * 4];
            let dst = &mut self.rgba[row + x0 * 4..row + x1 * 4];
            for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(4)) {
                d.copy_from_slice(&[s[2], s[1], s[0], 255]);
            }
        }
    }

    /// The RGBA bytes of rectangle `r` (clipped to the picture), with its clipped size.
    pub fn crop(&self, r: &Rect) -> ([usize; 2], Vec<u8>) {
        let (w, h) = (self.size[0], self.size[1]);
        let (x0, y0) = ((r.x as usize).min(w), (r.y as usize).min(h));
        let (x1, y1) = (
            (r.x as usize + r.w as usize).min(w),
            (r.y as usize + r.h as usize).min(h),
        );
        let mut out = Vec::with_capacity((x1 - x0) * (y1 - y0) * 4);
        for y in y0..y1 {
            let row = y * w * 4;
            out.extend_from_slice(&self.rgba[row + x0 * 4..row + x1 * 4]);
        }
        ([x1 - x0, y1 - y0], out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: u32, y: u32, w: u32, h: u32) -> Rect {
        Rect { x, y, w, h }
    }

    /// A framebuffer whose pixel (x, y) is B=x, G=y, R=seed.
    fn fb(w: u32, h: u32, seed: u8) -> Framebuffer {
        let mut f = Framebuffer::new(w, h).unwrap();
        for y in 0..h {
            for x in 0..w {
                let i = ((y * w + x) * 4) as usize;
                f.pixels[i..i + 4].copy_from_slice(&[x as u8, y as u8, seed, 0]);
            }
        }
        f
    }

    #[test]
    fn updating_by_rectangle_equals_converting_the_whole_frame() {
        let mut pic = Picture::default();
        let first = fb(70, 40, 1);
        assert_eq!(pic.update(&first, Damage::None), Damage::Full, "new size");
        assert_eq!(pic.rgba, first.to_rgba());
        // Two overlapping rectangles change; only they are converted, and the result is exact.
        let mut next = first.clone();
        let changed = [rect(3, 4, 10, 5), rect(8, 6, 62, 34)];
        let truth = fb(70, 40, 9);
        for r in &changed {
            for y in r.y..r.y + r.h {
                let i = ((y * 70 + r.x) * 4) as usize;
                let n = (r.w * 4) as usize;
                next.pixels[i..i + n].copy_from_slice(&truth.pixels[i..i + n]);
            }
        }
        let d = pic.update(&next, Damage::Rects(changed.to_vec()));
        assert_eq!(d, Damage::Rects(changed.to_vec()));
        assert_eq!(pic.rgba, next.to_rgba());
        // Only the damage is converted: a pixel changed outside it is not even read.
        next.pixels[..4].copy_from_slice(&[7, 7, 7, 0]);
        pic.update(&next, Damage::Rects(vec![rect(1, 0, 1, 1)]));
        assert_eq!(&pic.rgba[..4], &[1, 0, 0, 255]);
        pic.update(&next, Damage::Rects(vec![rect(0, 0, 1, 1)]));
        assert_eq!(pic.rgba, next.to_rgba());
        // Cropping gives the rectangle's rows.
        let (size, bytes) = pic.crop(&rect(8, 6, 2, 2));
        assert_eq!(size, [2, 2]);
        assert_eq!(&bytes[..4], &[9, 6, 8, 255]);
        // Out of bounds is clipped, never a panic.
        assert_eq!(pic.crop(&rect(69, 39, 5, 5)).0, [1, 1]);
        pic.update(&next, Damage::Rects(vec![rect(60, 30, 100, 100)]));
        // Another size is a full rebuild, whatever the damage says.
        let small = fb(5, 5, 2);
        assert_eq!(pic.update(&small, Damage::None), Damage::Full);
        assert_eq!(pic.rgba, small.to_rgba());
    }

    #[test]
    fn damage_accumulates_and_stays_bounded() {
        let mut d = Damage::None;
        d.add(&[rect(0, 0, 1, 1)]);
        d.merge(Damage::Rects(vec![rect(1, 1, 1, 1)]));
        assert_eq!(d, Damage::Rects(vec![rect(0, 0, 1, 1), rect(1, 1, 1, 1)]));
        assert_eq!(
            d.take(),
            Damage::Rects(vec![rect(0, 0, 1, 1), rect(1, 1, 1, 1)])
        );
        assert_eq!(d, Damage::None);
        for i in 0..=MAX_DAMAGE_RECTS as u32 {
            d.add(&[rect(i, 0, 1, 1)]);
        }
        assert_eq!(d, Damage::Full, "too many rectangles: one full upload");
        d.add(&[rect(0, 0, 1, 1)]);
        assert_eq!(d, Damage::Full);
        let mut e = Damage::Rects(vec![rect(0, 0, 1, 1)]);
        e.merge(Damage::Full);
        assert_eq!(e, Damage::Full);
    }
}
