//! The view stream: a capture thread produces encoded frames on demand; this task seals and sends them,
//! keeping at most a window of unacknowledged frames ([`InFlight`]: two, or eight small ones), so a slow link lowers the frame rate instead of
//! building a queue (latest frame wins: the next capture always reads the screen as it is now).
//! When to capture is [`super::pace::Pacer`]'s call (pure); input injected on the session's control
//! streams reaches it through an [`InputSeen`], so the first change after a quiet spell is captured
//! at once.

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::Instant;

use tether_net::sealed::{SealedError, SealedRecv, SealedSend};
use tether_proto::Scope;
use tether_proto::msg::Response;
use tether_proto::screen::video::VideoPart;
use tether_proto::screen::{
    self, DisplayInfo, FrameUpdate, InFlight, Patch, ScreenMsg, ViewerMsg, motion,
};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::activity::Activity;
use super::pace::{Injected, Pacer};
use super::video::VideoPath;
use super::{CaptureError, Pointer, ScreenProvider, StreamCtx};

/// How many events a session's control streams have injected, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    presses: u64,
    moves: u64,
}

/// The input a session's control streams injected, for its view streams to wake on. One per
/// session, shared by all its streams: any display's input may change any display's picture (a
/// monitor and "all monitors" overlap), and a needless wake costs only one capture.
#[derive(Debug, Clone)]
pub(crate) struct InputSeen(Arc<watch::Sender<Counts>>);

impl Default for InputSeen {
    fn default() -> Self {
        InputSeen(Arc::new(watch::channel(Counts::default()).0))
    }
}

impl InputSeen {
    /// An event was injected (`motion`: a pointer move).
    pub(crate) fn injected(&self, motion: bool) {
        self.0.send_modify(|c| {
            let n = if motion { &mut c.moves } else { &mut c.presses };
            *n = n.wrapping_add(1);
        });
    }

    fn subscribe(&self) -> watch::Receiver<Counts> {
        self.0.subscribe()
    }
}

/// What the capture thread hands back.
enum Captured {
    Opened(Result<DisplayInfo, CaptureError>),
    Frame {
        seq: u64,
        parts: Vec<FrameUpdate>,
        cursor: Option<Pointer>,
    },
    Failed(CaptureError),
}

/// Captures display `index` each time it is asked, diffs against the last frame sent (inside the
/// backend's damage when it reports one), encodes.
fn capture_thread(
    provider: Arc<dyn ScreenProvider>,
    index: u32,
    video_allowed: bool,
    asks: std_mpsc::Receiver<()>,
    out: mpsc::Sender<Captured>,
) {
    let mut source = match provider.open(index) {
        Ok(s) => {
            if out.blocking_send(Captured::Opened(Ok(s.info()))).is_err() {
                return;
            }
            s
        }
        Err(e) => {
            let _ = out.blocking_send(Captured::Opened(Err(e)));
            return;
        }
    };
    let info = source.info();
    let mut encoder = match screen::FrameEncoder::new() {
        Ok(e) => e,
        Err(e) => {
            let _ = out.blocking_send(Captured::Failed(CaptureError::Capture(e.to_string())));
            return;
        }
    };
    let mut video = VideoPath::new(info.width, info.height, video_allowed);
    let mut prev: Option<Vec<u8>> = None;
    let mut seq = 0;
    let err = |e: screen::ScreenError| CaptureError::Capture(e.to_string());
    let (w, h) = (info.width, info.height);
    // Nothing changed: a video region that went still is sent exactly once more, from `p`, the
    // screen as it is.
    let still = |video: &mut VideoPath, encoder: &mut screen::FrameEncoder, seq: u64, p: &[u8]| {
        let Some(r) = video.still(Instant::now()) else {
            return Ok(Vec::new());
        };
        encoder.encode(seq + 1, p, w, h, &[r]).map_err(err)
    };
    while asks.recv().is_ok() {
        // A still screen costs neither a capture nor a diff.
        let unchanged = prev.as_deref().filter(|_| source.unchanged());
        let result = if let Some(p) = unchanged {
            still(&mut video, &mut encoder, seq, p)
        } else {
            source.capture_damage().and_then(|shot| {
                let cur = shot.pixels;
                // `prev` is the previous capture's picture, so the backend's damage (when it has one)
                // bounds what can differ: only those tiles are compared, and only they are kept.
                let damage = shot.damage.filter(|_| prev.is_some());
                let dirty = |p: Option<&[u8]>| match (p, &damage) {
                    (Some(p), Some(d)) => screen::dirty_rects_within(p, cur, w, h, d),
                    _ => screen::dirty_rects(p, cur, w, h),
                };
                let mut rects = dirty(prev.as_deref()).map_err(err)?;
                if rects.is_empty() {
                    return match &prev {
                        Some(p) => still(&mut video, &mut encoder, seq, p),
                        None => Ok(Vec::new()),
                    };
                }
                // The complete first frame goes outside the zstd stream: faster, and first-frame latency matters.
                let parts = match &mut prev {
                    None => encoder
                        .encode_standalone(seq + 1, cur, w, h, &rects)
                        .map_err(err)?,
                    Some(p) => {
                        // Scrolled or moved pixels go as copies; `p` becomes what the console will have
                        // after them, and only what still differs is sent as pixels. Copies land on
                        // dirty tiles, which lie in the damage, so the damage still bounds the compare.
                        // Copies stay clear of a video region, whose pixels the console has only
                        // approximately.
                        let mut copies = motion::find_copies(p, cur, w, h, &rects);
                        video.keep_clear(&mut copies);
                        if !copies.is_empty() {
                            motion::apply_copies(p, w, h, &copies).map_err(err)?;
                            rects = dirty(Some(p)).map_err(err)?;
                        }
                        // Only the pixels that changed, not whole tiles (a typed character); what
                        // plays video goes through the codec instead.
                        let tight = screen::tighten(p, cur, w, h, &rects);
                        let (tight, part) = video.frame(cur, w, tight, Instant::now())?;
                        let mut parts = encoder
                            .encode_moved(seq + 1, cur, w, h, &copies, &tight)
                            .map_err(err)?;
                        if let Some(part) = part {
                            attach(&mut parts, seq + 1, w, h, part);
                        }
                        parts
                    }
                };
                match &mut prev {
                    // Outside the dirty tiles `p` already equals `cur`.
                    Some(p) if damage.is_some() => screen::copy_rects(p, cur, w, h, &rects),
                    Some(p) => p.copy_from_slice(cur),
                    None => prev = Some(cur.to_vec()),
                }
                Ok(parts)
            })
        };
        let msg = match result {
            Ok(parts) => {
                if !parts.is_empty() {
                    seq += 1;
                }
                Captured::Frame {
                    seq,
                    parts,
                    cursor: source.cursor(),
                }
            }
            Err(e) => Captured::Failed(e),
        };
        let failed = matches!(msg, Captured::Failed(_));
        if out.blocking_send(msg).is_err() || failed {
            return;
        }
    }
}

/// Puts a video frame on the frame's last part (after its rectangles), or on a part of its own.
fn attach(parts: &mut Vec<FrameUpdate>, seq: u64, width: u32, height: u32, video: VideoPart) {
    match parts.last_mut() {
        Some(p) => p.video = Some(video),
        None => parts.push(FrameUpdate {
            video: Some(video),
            ..FrameUpdate::empty(seq, width, height)
        }),
    }
}

/// Serves `Request::View { display }` until the console closes the stream, `view` is revoked or the
/// session ends.
pub(crate) async fn serve_view(
    display: u32,
    tx: &mut SealedSend,
    rx: &mut SealedRecv,
    ctx: &StreamCtx,
) -> Result<(), SealedError> {
    let (ask_tx, ask_rx) = std_mpsc::sync_channel::<()>(1);
    let (out_tx, mut out_rx) = mpsc::channel::<Captured>(1);
    let (provider, video) = (ctx.screen.clone(), ctx.video);
    let thread = std::thread::Builder::new()
        .name("tether-capture".into())
        .spawn(move || capture_thread(provider, display, video, ask_rx, out_tx));
    let thread = match thread {
        Ok(t) => t,
        Err(e) => {
            let message = format!("cannot start capture: {e}");
            return tx.send(&Response::Failed { message }).await;
        }
    };
    let result = run(display, tx, rx, ctx, &ask_tx, &mut out_rx).await;
    // Closing both channels ends the thread wherever it waits; join it off the async workers.
    drop(ask_tx);
    drop(out_rx);
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    result
}

async fn run(
    display: u32,
    tx: &mut SealedSend,
    rx: &mut SealedRecv,
    ctx: &StreamCtx,
    ask: &std_mpsc::SyncSender<()>,
    out: &mut mpsc::Receiver<Captured>,
) -> Result<(), SealedError> {
    let idx = display;
    let info = match out.recv().await {
        Some(Captured::Opened(Ok(info))) => info,
        Some(Captured::Opened(Err(e))) => {
            warn!(error = %e, index = u64::from(idx), "cannot open the display");
            let message = e.to_string();
            return tx.send(&Response::Failed { message }).await;
        }
        _ => {
            let message = "capture stopped".to_string();
            return tx.send(&Response::Failed { message }).await;
        }
    };
    tx.send(&Response::Viewing {
        display: info.clone(),
    })
    .await?;
    info!(index = u64::from(idx), "screen view started");
    let viewing = Activity::viewing(ctx, info.index).await;
    let result = stream(tx, rx, ctx, (info.width, info.height), ask, out).await;
    info!(index = u64::from(idx), "screen view ended");
    viewing.stop().await;
    result
}

/// Streams frames of a display of `size` (every frame the capture thread makes has it).
async fn stream(
    tx: &mut SealedSend,
    rx: &mut SealedRecv,
    ctx: &StreamCtx,
    size: (u32, u32),
    ask: &std_mpsc::SyncSender<()>,
    out: &mut mpsc::Receiver<Captured>,
) -> Result<(), SealedError> {
    let (ack_tx, mut acks) = mpsc::channel::<u64>(8);
    // The reader owns `rx` for the stream's life; `recv` is not cancel-safe, so it is never raced.
    // A frame that fails to open or decode ends the session (the caller sees the error); a closed
    // or reset stream only ends the view.
    let reader = async move {
        loop {
            match rx.recv::<ViewerMsg>().await {
                Ok(ViewerMsg::Ack { seq }) => {
                    if ack_tx.send(seq).await.is_err() {
                        return Ok(());
                    }
                }
                Err(e) if e.is_protocol_violation() => return Err(e),
                Err(_) => return Ok(()),
            }
        }
    };
    let mut grant = ctx.grant.clone();
    let mut inputs = ctx.input_seen.subscribe();
    let sender = async {
        let now = || tokio::time::Instant::now().into_std();
        let mut pacer = Pacer::new(now());
        let (mut window, mut sent, mut asked) = (InFlight::default(), 0u64, false);
        let mut seen = *inputs.borrow_and_update();
        let mut inputs_open = true;
        let (mut cursor, mut shape) = (None, None);
        loop {
            let can_ask = !asked && window.can_send();
            let due = tokio::time::Instant::from_std(pacer.due(now()));
            tokio::select! {
                () = tokio::time::sleep_until(due), if can_ask => {
                    // Full cannot happen (one ask at a time); closed means the thread is gone and
                    // `out` ends next. Either way, wait for the thread rather than spin.
                    let _ = ask.try_send(());
                    asked = true;
                    pacer.asked(now());
                }
                c = inputs.changed(), if inputs_open => {
                    if c.is_err() {
                        inputs_open = false;
                        continue;
                    }
                    let counts = *inputs.borrow_and_update();
                    let what = if counts.presses != seen.presses { Injected::Press } else { Injected::Motion };
                    seen = counts;
                    pacer.input(what, now());
                }
                c = out.recv() => match c {
                    Some(Captured::Frame { seq, parts, cursor: pointer }) => {
                        asked = false;
                        // A moving pointer counts as activity (it is not in the pixels), so the
                        // user's cursor keeps the full rate on a still screen.
                        let moved = pointer.as_ref().is_some_and(|p| cursor != Some((p.x, p.y)));
                        pacer.captured(!parts.is_empty() || moved, now());
                        if let Some(p) = pointer {
                            // The shape goes first, so the console never draws a new position with
                            // an old shape; it is sent again only when its serial changes.
                            if let Some(s) = &p.shape
                                && shape != Some(s.serial)
                            {
                                shape = Some(s.serial);
                                tx.send(&ScreenMsg::CursorShape((**s).clone())).await?;
                            }
                            if cursor != Some((p.x, p.y)) {
                                cursor = Some((p.x, p.y));
                                tx.send(&ScreenMsg::Cursor { x: p.x, y: p.y }).await?;
                            }
                        }
                        if !parts.is_empty() {
                            window.sent(seq, parts.iter().map(FrameUpdate::pixel_bytes).sum());
                        }
                        // A typed glyph goes as a patch: what the console knows is left out (the
                        // first frame, standalone, never is one).
                        let patch = Patch::of(&parts, sent, size);
                        if let Some(patch) = patch {
                            tx.send(&ScreenMsg::Patch(patch)).await?;
                            sent = seq;
                        } else {
                            for p in parts {
                                tx.send(&ScreenMsg::Frame(p)).await?;
                                sent = seq;
                            }
                        }
                    }
                    Some(Captured::Failed(e)) => {
                        warn!(error = %e, "capture failed; stopping the view");
                        return tx.send(&ScreenMsg::Stopped { reason: e.to_string() }).await;
                    }
                    Some(Captured::Opened(_)) | None => return Ok(()),
                },
                a = acks.recv() => match a {
                    Some(seq) => window.acked(seq.min(sent)),
                    // The console closed its side: the viewer is gone.
                    None => return Ok(()),
                },
                changed = grant.changed() => {
                    if changed.is_err() || !grant.borrow().contains(Scope::View) {
                        let reason = "the user stopped screen sharing".to_string();
                        return tx.send(&ScreenMsg::Stopped { reason }).await;
                    }
                }
            }
        }
    };
    tokio::select! {
        r = sender => r,
        r = reader => r,
    }
}
