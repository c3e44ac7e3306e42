//! Two technicians viewing one display: how many real captures (and how much capture time) the agent
//! spends, with [`SharedScreen`] versus each viewer capturing on its own, against one viewer alone.
//!
//! Each viewer is a thread asking for a frame every 33 ms (the view stream's pace) for a few seconds,
//! on the real scrap/X11 backend on a private Xvfb. Run with
//! `cargo bench -p tether-tests --bench shared_capture`; results in BENCHMARKS.md ("Screen").

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use tether_agent::screen::{
    CaptureError, FRAME_INTERVAL, ScrapScreen, ScreenProvider, ScreenSource, SharedScreen,
};
use tether_proto::screen::DisplayInfo;
use tether_tests::Xvfb;

const RUN: Duration = Duration::from_secs(4);

/// Counts the real backend's captures and the time they take.
#[derive(Debug)]
struct Metered {
    inner: ScrapScreen,
    captures: Arc<AtomicU64>,
    nanos: Arc<AtomicU64>,
}

struct MeteredSource {
    inner: Box<dyn ScreenSource>,
    captures: Arc<AtomicU64>,
    nanos: Arc<AtomicU64>,
}

impl ScreenProvider for Metered {
    fn displays(&self) -> Result<Vec<DisplayInfo>, CaptureError> {
        self.inner.displays()
    }
    fn open(&self, index: u32) -> Result<Box<dyn ScreenSource>, CaptureError> {
        Ok(Box::new(MeteredSource {
            inner: self.inner.open(index)?,
            captures: self.captures.clone(),
            nanos: self.nanos.clone(),
        }))
    }
}

impl ScreenSource for MeteredSource {
    fn info(&self) -> DisplayInfo {
        self.inner.info()
    }
    fn capture(&mut self) -> Result<&[u8], CaptureError> {
        let t = Instant::now();
        let r = self.inner.capture();
        self.nanos
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.captures.fetch_add(1, Ordering::Relaxed);
        r
    }
    fn cursor(&mut self) -> Option<tether_agent::screen::Pointer> {
        self.inner.cursor()
    }
}

/// Runs `viewers` threads against `provider`; returns (real captures, capture ms, frames served).
fn run(provider: Arc<dyn ScreenProvider>, meter: &Metered, viewers: usize) -> (u64, f64, u64) {
    meter.captures.store(0, Ordering::Relaxed);
    meter.nanos.store(0, Ordering::Relaxed);
    let served = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(viewers));
    let threads: Vec<_> = (0..viewers)
        .map(|_| {
            let (provider, served, start) = (provider.clone(), served.clone(), start.clone());
            std::thread::spawn(move || {
                let mut source = provider.open(0).unwrap();
                start.wait();
                let end = Instant::now() + RUN;
                let mut next = Instant::now();
                while Instant::now() < end {
                    source.capture().unwrap();
                    served.fetch_add(1, Ordering::Relaxed);
                    next += FRAME_INTERVAL;
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    (
        meter.captures.load(Ordering::Relaxed),
        meter.nanos.load(Ordering::Relaxed) as f64 / 1e6,
        served.load(Ordering::Relaxed),
    )
}

fn main() {
    let x = Xvfb::start(171);
    let meter = Arc::new(Metered {
        inner: ScrapScreen::new(Some(x.display.clone())),
        captures: Arc::new(AtomicU64::new(0)),
        nanos: Arc::new(AtomicU64::new(0)),
    });
    let direct: Arc<dyn ScreenProvider> = meter.clone();
    let shared: Arc<dyn ScreenProvider> = Arc::new(SharedScreen::new(meter.clone()));
    println!("1920x1080 Xvfb, each viewer asks every {FRAME_INTERVAL:?} for {RUN:?}");
    println!(
        "{:<28} {:>9} {:>12} {:>8}",
        "case", "captures", "capture ms", "frames"
    );
    let mut one = (0, 0.0, 0);
    for (name, provider, viewers) in [
        ("1 viewer", direct.clone(), 1),
        ("2 viewers, each capturing", direct, 2),
        ("2 viewers, SharedScreen", shared, 2),
    ] {
        let (captures, ms, frames) = run(provider, &meter, viewers);
        if viewers == 1 {
            one = (captures, ms, frames);
        }
        println!(
            "{name:<28} {captures:>9} {ms:>12.0} {frames:>8}   captures x{:.2}, capture time x{:.2} vs 1 viewer",
            captures as f64 / one.0 as f64,
            ms / one.1
        );
    }
    drop(x);
}
