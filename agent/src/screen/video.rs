//! The agent's side of the lossy path for video regions: the view's [`video::Detector`] decides
//! (pure, time passed in), this runs the VP8 encoder it asks for. See `tether_proto::screen::video`.

use std::time::{Duration, Instant};

use tether_proto::screen::video::{self, Detector, Step, VideoPart};
use tether_proto::screen::{CopyRect, Rect};
use tether_video::Encoder;

use super::CaptureError;

/// One view's video region and its encoder.
#[derive(Debug)]
pub(crate) struct VideoPath {
    /// `None` under `--lossless`: nothing is ever sent lossy.
    detector: Option<Detector>,
    encoder: Option<Encoder>,
    last: Option<Instant>,
}

impl VideoPath {
    /// For a `width` x `height` view; `enabled` false sends every pixel exactly.
    pub(crate) fn new(width: u32, height: u32, enabled: bool) -> Self {
        VideoPath {
            detector: enabled.then(|| Detector::new(width, height)),
            encoder: None,
            last: None,
        }
    }

    /// The region that plays now.
    pub(crate) fn region(&self) -> Option<Rect> {
        self.detector.as_ref().and_then(Detector::region)
    }

    /// Drops the copies that would read or write the region (its pixels on the console are
    /// approximate).
    pub(crate) fn keep_clear(&self, copies: &mut Vec<CopyRect>) {
        if let Some(r) = self.region() {
            copies.retain(|c| video::clear_of(c, &r));
        }
    }

    /// One frame in which `changed` differ: decides, then returns what goes losslessly (the
    /// changed rectangles outside the region, and a refresh) and the region's video frame.
    pub(crate) fn frame(
        &mut self,
        cur: &[u8],
        width: u32,
        changed: Vec<Rect>,
        now: Instant,
    ) -> Result<(Vec<Rect>, Option<VideoPart>), CaptureError> {
        let Some(detector) = &mut self.detector else {
            return Ok((changed, None));
        };
        let step = detector.frame(cur, &changed, now);
        log(&step);
        let touched = step
            .region
            .is_some_and(|r| changed.iter().any(|c| video::intersection(c, &r).is_some()));
        let lossless = lossless(changed, &step);
        let part = match step.region {
            Some(rect) if step.start || touched => {
                Some(self.encode(cur, width, rect, step.start, now)?)
            }
            _ => None,
        };
        if step.region.is_none() {
            self.encoder = None;
        }
        Ok((lossless, part))
    }

    /// A capture in which nothing changed: the region to send exactly once more, when one ends.
    pub(crate) fn still(&mut self, now: Instant) -> Option<Rect> {
        let step = self.detector.as_mut()?.still(now);
        log(&step);
        if step.region.is_none() {
            self.encoder = None;
        }
        step.refresh
    }

    fn encode(
        &mut self,
        cur: &[u8],
        width: u32,
        rect: Rect,
        start: bool,
        now: Instant,
    ) -> Result<VideoPart, CaptureError> {
        let err = |e: tether_video::VideoError| CaptureError::Capture(format!("video: {e}"));
        // A stream the console does not have yet always starts with a key frame.
        let start = start || self.encoder.as_ref().is_none_or(|e| e.rect() != rect);
        if start {
            self.encoder = Some(Encoder::new(rect).map_err(err)?);
            self.last = None;
        }
        let since = self.last.map_or(Duration::from_millis(33), |t| {
            now.saturating_duration_since(t)
        });
        self.last = Some(now);
        let data = match &mut self.encoder {
            Some(e) => e.encode(cur, width, since).map_err(err)?,
            None => return Err(CaptureError::Capture("video: no encoder".into())),
        };
        Ok(VideoPart { rect, start, data })
    }
}

fn log(step: &Step) {
    if let (true, Some(r)) = (step.start, step.region) {
        tracing::info!(
            x = r.x,
            y = r.y,
            w = r.w,
            h = r.h,
            "a region plays video: VP8 there"
        );
    } else if let (None, Some(r)) = (step.region, step.refresh) {
        tracing::info!(
            x = r.x,
            y = r.y,
            w = r.w,
            h = r.h,
            "the video region is still: exact again"
        );
    }
}

/// What goes losslessly in a frame of `step`: `changed` outside the region that plays, and the
/// refresh (outside the region too, since the video paints over it).
fn lossless(changed: Vec<Rect>, step: &Step) -> Vec<Rect> {
    let mut out = match step.region {
        Some(r) => video::outside(&changed, &r),
        None => changed,
    };
    if let Some(refresh) = step.refresh {
        out = video::outside(&out, &refresh);
        match step.region {
            Some(r) => out.extend(video::outside(&[refresh], &r)),
            None => out.push(refresh),
        }
    }
    out
}
