//! The video codec of the screen's lossy path (issue 18; what plays video and what crosses is in
//! [`tether_proto::screen::video`]): VP8 through the system's libvpx.
//!
//! [`Encoder`] turns one region of a B G R X frame into one VP8 frame (realtime, constant bitrate
//! from [`video::kbps`], no look-ahead, no dropped frames: every frame the agent encodes reaches the
//! console in order on a reliable stream, so only the first is a key frame). [`Decoder`] turns it
//! back into B G R X rows of the region. The colour conversion is BT.601 with studio range, which
//! VP8 assumes, in integers.
//!
//! Why VP8: royalty-free under a BSD licence (H.264 needs a patent licence for what the project
//! ships; AV1 encoders cost several times VP8's CPU at realtime speeds), in Debian as `libvpx`, and
//! the same codec as the peer the screen bench measures against, so the comparison is like for like.

use std::num::NonZero;
use std::time::Duration;

use tether_proto::screen::video;
use tether_proto::screen::{BPP, Rect};
use vpx_rs::dec::{CodecId as DecCodec, DecodedImageData, DecoderConfig};
use vpx_rs::enc::{CodecId as EncCodec, EncoderConfig, KeyFrameMode};
use vpx_rs::image::UVImagePlanes;
use vpx_rs::{
    Decoder as VpxDecoder, Encoder as VpxEncoder, EncoderFrameFlags, EncodingDeadline, ImageFormat,
    Packet, RateControl, Timebase, YUVImageData,
};

/// libvpx's speed for VP8 in realtime mode (−16…16; higher is faster and coarser). 8 is what the
/// bench's ffmpeg peer uses.
pub const CPU_USED: i32 = 8;

/// Why a video frame could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// The region is empty or odd-sized (4:2:0 needs even sizes).
    #[error("video region {0:?} is not an even, non-empty size")]
    BadRegion(Rect),
    /// The frame given is smaller than the region needs.
    #[error("frame of {got} bytes does not hold the region (needs {needed})")]
    ShortFrame {
        /// Bytes given.
        got: usize,
        /// Bytes the region's last row ends at.
        needed: usize,
    },
    /// libvpx refused (a corrupt packet, or a failure inside the codec).
    #[error("{0}")]
    Codec(#[from] vpx_rs::Error),
    /// A packet decoded to no picture, or to one of another size than the region.
    #[error("the packet decodes to {0}")]
    WrongPicture(String),
}

/// Encodes one region, frame after frame.
#[derive(Debug)]
pub struct Encoder {
    vpx: VpxEncoder<u8>,
    rect: Rect,
    yuv: Vec<u8>,
    /// Presentation time of the next frame, in ms.
    pts: i64,
}

impl Encoder {
    /// A new stream for `rect` (even position and size, as [`video::Detector`] gives).
    pub fn new(rect: Rect) -> Result<Self, VideoError> {
        check_region(&rect)?;
        let ms = Timebase {
            num: NonZero::<u32>::MIN,
            den: NonZero::new(1000).unwrap_or(NonZero::<u32>::MIN),
        };
        let rate = RateControl::ConstantBitRate(video::kbps(&rect));
        let mut config = EncoderConfig::<u8>::new(EncCodec::VP8, rect.w, rect.h, ms, rate)?;
        config.threads = 1;
        config.lag_in_frames = 0;
        config.rc_dropframe_thresh = 0;
        config.kf_mode = KeyFrameMode::Disabled;
        let mut vpx = VpxEncoder::new(config)?;
        vpx.codec_control_set(vpx_rs::enc::ctrl::EncoderControlSet::CpuUsed(CPU_USED))?;
        Ok(Encoder {
            vpx,
            rect,
            yuv: vec![0; i420_len(&rect)],
            pts: 0,
        })
    }

    /// The region this stream encodes.
    pub fn rect(&self) -> Rect {
        self.rect
    }

    /// Encodes the region of `frame` (B G R X rows of `width` pixels), shown `since_last` after
    /// the previous frame: one VP8 frame.
    pub fn encode(
        &mut self,
        frame: &[u8],
        width: u32,
        since_last: Duration,
    ) -> Result<Vec<u8>, VideoError> {
        bgrx_to_i420(frame, width, &self.rect, &mut self.yuv)?;
        let (w, h) = (self.rect.w as usize, self.rect.h as usize);
        let image = YUVImageData::<u8>::from_raw_data(ImageFormat::I420, w, h, &self.yuv)?;
        let step = since_last.as_millis().clamp(1, 1000) as u64;
        let packets = self.vpx.encode(
            self.pts,
            step,
            image,
            EncodingDeadline::Realtime,
            EncoderFrameFlags::empty(),
        )?;
        let mut out = Vec::new();
        for p in packets {
            if let Packet::CompressedFrame(f) = p {
                out.extend_from_slice(&f.data);
            }
        }
        self.pts += step as i64;
        Ok(out)
    }
}

/// Decodes one region's stream.
#[derive(Debug)]
pub struct Decoder {
    vpx: VpxDecoder,
    rect: Rect,
}

impl Decoder {
    /// A new stream for `rect`.
    pub fn new(rect: Rect) -> Result<Self, VideoError> {
        check_region(&rect)?;
        let vpx = VpxDecoder::new(DecoderConfig::new(DecCodec::VP8, rect.w, rect.h))?;
        Ok(Decoder { vpx, rect })
    }

    /// The region this stream paints.
    pub fn rect(&self) -> Rect {
        self.rect
    }

    /// Decodes one packet into B G R X rows of the region.
    pub fn decode(&mut self, packet: &[u8]) -> Result<Vec<u8>, VideoError> {
        let rect = self.rect;
        let mut out = None;
        for image in self.vpx.decode(packet)? {
            if (image.width(), image.height()) != (rect.w, rect.h) {
                return Err(VideoError::WrongPicture(format!(
                    "{}x{} for a {}x{} region",
                    image.width(),
                    image.height(),
                    rect.w,
                    rect.h
                )));
            }
            let DecodedImageData::Data8b(data) = image.data() else {
                return Err(VideoError::WrongPicture("16-bit samples".into()));
            };
            out = Some(i420_to_bgrx(&data, &rect)?);
        }
        out.ok_or_else(|| VideoError::WrongPicture("no picture".into()))
    }
}

fn check_region(r: &Rect) -> Result<(), VideoError> {
    if r.w == 0 || r.h == 0 || !r.w.is_multiple_of(2) || !r.h.is_multiple_of(2) {
        return Err(VideoError::BadRegion(*r));
    }
    Ok(())
}

fn i420_len(r: &Rect) -> usize {
    let (w, h) = (r.w as usize, r.h as usize);
    w * h + 2 * (w / 2) * (h / 2)
}

/// BT.601 studio range, 8-bit fixed point (the coefficients times 256).
fn bgrx_to_i420(frame: &[u8], width: u32, r: &Rect, out: &mut [u8]) -> Result<(), VideoError> {
    let stride = width as usize * BPP;
    let needed = (r.y + r.h - 1) as usize * stride + (r.x + r.w) as usize * BPP;
    if frame.len() < needed || r.x + r.w > width {
        return Err(VideoError::ShortFrame {
            got: frame.len(),
            needed,
        });
    }
    let (w, h) = (r.w as usize, r.h as usize);
    let (luma, chroma) = out.split_at_mut(w * h);
    let (us, vs) = chroma.split_at_mut((w / 2) * (h / 2));
    let px = |x: usize, y: usize| {
        let i = (r.y as usize + y) * stride + (r.x as usize + x) * BPP;
        (
            i32::from(frame[i + 2]),
            i32::from(frame[i + 1]),
            i32::from(frame[i]),
        )
    };
    for y in 0..h {
        for x in 0..w {
            let (red, green, blue) = px(x, y);
            luma[y * w + x] = (((66 * red + 129 * green + 25 * blue + 128) >> 8) + 16) as u8;
        }
    }
    for y in 0..h / 2 {
        for x in 0..w / 2 {
            let (mut red, mut green, mut blue) = (0, 0, 0);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let (pr, pg, pb) = px(2 * x + dx, 2 * y + dy);
                (red, green, blue) = (red + pr, green + pg, blue + pb);
            }
            let (red, green, blue) = (red / 4, green / 4, blue / 4);
            us[y * (w / 2) + x] = (((-38 * red - 74 * green + 112 * blue + 128) >> 8) + 128) as u8;
            vs[y * (w / 2) + x] = (((112 * red - 94 * green - 18 * blue + 128) >> 8) + 128) as u8;
        }
    }
    Ok(())
}

fn i420_to_bgrx(data: &YUVImageData<'_, u8>, r: &Rect) -> Result<Vec<u8>, VideoError> {
    let planes = data.planes();
    let UVImagePlanes::Separate(uv) = &planes.uv else {
        return Err(VideoError::WrongPicture("interleaved chroma".into()));
    };
    let (w, h) = (r.w as usize, r.h as usize);
    let (ys, us, vs) = (planes.y_stride(), uv.u_stride(), uv.v_stride());
    let fits = |plane: &[u8], stride: usize, rows: usize, cols: usize| {
        rows == 0 || plane.len() >= (rows - 1) * stride + cols
    };
    if !fits(planes.y, ys, h, w) || !fits(uv.u, us, h / 2, w / 2) || !fits(uv.v, vs, h / 2, w / 2) {
        return Err(VideoError::WrongPicture("short planes".into()));
    }
    let mut out = vec![0u8; w * h * BPP];
    let clamp = |v: i32| (v >> 8).clamp(0, 255) as u8;
    for y in 0..h {
        for x in 0..w {
            let c = 298 * (i32::from(planes.y[y * ys + x]) - 16);
            let d = i32::from(uv.u[(y / 2) * us + x / 2]) - 128;
            let e = i32::from(uv.v[(y / 2) * vs + x / 2]) - 128;
            let o = (y * w + x) * BPP;
            out[o] = clamp(c + 516 * d + 128);
            out[o + 1] = clamp(c - 100 * d - 208 * e + 128);
            out[o + 2] = clamp(c + 409 * e + 128);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A moving gradient with a bar, like the bench's test source.
    fn frame(width: u32, height: u32, t: u32) -> Vec<u8> {
        let mut px = vec![0u8; (width * height) as usize * BPP];
        for y in 0..height {
            for x in 0..width {
                let i = (y * width + x) as usize * BPP;
                let bar = (x + 4 * t) % width < 40;
                px[i] = if bar { 250 } else { ((x + t) % 256) as u8 };
                px[i + 1] = ((y * 2 + t) % 256) as u8;
                px[i + 2] = ((x + y) % 256) as u8;
            }
        }
        px
    }

    fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
        let (sum, n) = a
            .chunks_exact(BPP)
            .zip(b.chunks_exact(BPP))
            .flat_map(|(p, q)| (0..3).map(move |c| (i32::from(p[c]) - i32::from(q[c])).abs()))
            .fold((0i64, 0i64), |(s, n), d| (s + i64::from(d), n + 1));
        sum as f64 / n as f64
    }

    fn region_of(frame: &[u8], width: u32, r: &Rect) -> Vec<u8> {
        let stride = width as usize * BPP;
        (r.y..r.y + r.h)
            .flat_map(|y| {
                let s = y as usize * stride + r.x as usize * BPP;
                frame[s..s + r.w as usize * BPP].to_vec()
            })
            .collect()
    }

    #[test]
    fn a_region_round_trips_close_to_its_pixels_and_far_below_their_size() {
        let (width, height) = (320, 240);
        let rect = Rect {
            x: 64,
            y: 32,
            w: 192,
            h: 128,
        };
        let mut enc = Encoder::new(rect).unwrap();
        let mut dec = Decoder::new(rect).unwrap();
        let mut bytes = 0;
        for t in 0..30 {
            let f = frame(width, height, t);
            let packet = enc.encode(&f, width, Duration::from_millis(33)).unwrap();
            bytes += packet.len();
            let got = dec.decode(&packet).unwrap();
            assert_eq!(got.len(), (rect.w * rect.h) as usize * BPP);
            let err = mean_abs_diff(&got, &region_of(&f, width, &rect));
            assert!(err < 12.0, "frame {t}: mean error {err}");
        }
        let raw = 30 * (rect.w * rect.h) as usize * BPP;
        assert!(bytes * 20 < raw, "{bytes} bytes for {raw} raw");
    }

    #[test]
    fn corrupt_and_foreign_packets_are_typed_errors() {
        let rect = Rect {
            x: 0,
            y: 0,
            w: 64,
            h: 64,
        };
        let mut dec = Decoder::new(rect).unwrap();
        assert!(dec.decode(&[0xff; 100]).is_err(), "garbage");
        assert!(dec.decode(&[]).is_err(), "empty");
        // A real key frame of another size.
        let other = Rect {
            x: 0,
            y: 0,
            w: 32,
            h: 32,
        };
        let mut enc = Encoder::new(other).unwrap();
        let packet = enc
            .encode(&frame(64, 64, 0), 64, Duration::from_millis(33))
            .unwrap();
        assert!(matches!(
            Decoder::new(rect).unwrap().decode(&packet),
            Err(VideoError::WrongPicture(_))
        ));
        // A key frame cut short.
        let mut enc = Encoder::new(rect).unwrap();
        let packet = enc
            .encode(&frame(64, 64, 0), 64, Duration::from_millis(33))
            .unwrap();
        let cut = &packet[..packet.len() / 3];
        assert!(
            Decoder::new(rect).unwrap().decode(cut).is_err(),
            "truncated"
        );
    }

    #[test]
    fn odd_regions_and_short_frames_are_refused() {
        let odd = Rect {
            x: 0,
            y: 0,
            w: 63,
            h: 64,
        };
        assert!(matches!(Encoder::new(odd), Err(VideoError::BadRegion(_))));
        assert!(matches!(Decoder::new(odd), Err(VideoError::BadRegion(_))));
        let rect = Rect {
            x: 0,
            y: 0,
            w: 64,
            h: 64,
        };
        let mut enc = Encoder::new(rect).unwrap();
        let short = vec![0u8; 32 * 32 * BPP];
        assert!(matches!(
            enc.encode(&short, 32, Duration::from_millis(33)),
            Err(VideoError::ShortFrame { .. })
        ));
    }
}
