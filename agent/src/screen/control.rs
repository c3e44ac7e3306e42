//! The control stream: the console sends input events, the agent answers each one. The `control` grant is
//! checked on every event, so revoking it takes effect at the next event. Event contents are never logged.
//!
//! The input thread keeps a [`Held`] per stream: every key and button it pressed. It releases all of
//! them when the stream ends (the console closed it, or the session ended and dropped this task), at
//! `ReleaseAll` (the console's window lost focus), and as soon as `control` is revoked (a watcher on
//! the grant, not the next event). Presses are rate-bounded and the held set is bounded
//! ([`super::held`]); a refused or ignored event is answered and the session goes on.

use std::sync::mpsc as std_mpsc;

use tether_net::sealed::{SealedError, SealedRecv, SealedSend};
use tether_proto::Scope;
use tether_proto::msg::{Response, SessionReport};
use tether_proto::screen::{DisplayInfo, InputEvent, InputReply};
use tokio::sync::oneshot;
use tracing::warn;

use super::activity::Activity;
use super::held::{Held, Verdict};
use super::{InputError, InputProvider, InputSink, StreamCtx};
use crate::ui::AgentEvent;

/// An event for the input thread and where its answer goes (`None`: nobody waits, e.g. the
/// release-all when control is revoked).
type Job = (InputEvent, (i32, i32), Option<oneshot::Sender<InputReply>>);

/// Jobs queued for the input thread: the event loop's one (its replies are awaited one by one) plus
/// the revocation watcher's release-all.
const JOB_QUEUE: usize = 2;

fn release_all(held: &mut Held, sink: &mut dyn InputSink, origin: (i32, i32)) {
    for e in held.release_all() {
        // Best effort: a release the X server refuses leaves nothing we could do better.
        if let Err(err) = sink.inject(&e, origin) {
            warn!(error = %err, "releasing a held key or button failed");
        }
    }
}

fn one(
    held: &mut Held,
    sink: &mut dyn InputSink,
    event: &InputEvent,
    origin: (i32, i32),
) -> InputReply {
    if *event == InputEvent::ReleaseAll {
        release_all(held, sink, origin);
        return InputReply::Done;
    }
    match held.check(event, std::time::Instant::now()) {
        Verdict::Inject => match sink.inject(event, origin) {
            Ok(()) => {
                held.done(event);
                InputReply::Done
            }
            Err(e) => InputReply::Failed {
                message: e.to_string(),
            },
        },
        Verdict::Ignore(reason) => InputReply::Ignored { reason },
        Verdict::Refuse(message) => InputReply::Failed { message },
    }
}

fn input_thread(
    provider: std::sync::Arc<dyn InputProvider>,
    opened: oneshot::Sender<Result<(), InputError>>,
    jobs: std_mpsc::Receiver<Job>,
) {
    let mut sink = match provider.open() {
        Ok(s) => {
            let _ = opened.send(Ok(()));
            s
        }
        Err(e) => {
            let _ = opened.send(Err(e));
            return;
        }
    };
    let mut held = Held::default();
    let mut origin = (0, 0);
    while let Ok((event, at, reply)) = jobs.recv() {
        origin = at;
        let answer = one(&mut held, sink.as_mut(), &event, origin);
        if let Some(r) = reply {
            let _ = r.send(answer);
        }
    }
    // The stream ended, whatever the reason: nothing stays pressed.
    release_all(&mut held, sink.as_mut(), origin);
}

/// Releases everything held as soon as `control` is revoked, rather than at the next event (which
/// may never come). Never returns while the grant can change.
async fn release_on_revoke(
    mut grant: tokio::sync::watch::Receiver<tether_proto::ScopeSet>,
    jobs: std_mpsc::SyncSender<Job>,
    origin: (i32, i32),
) {
    loop {
        if grant.changed().await.is_err() {
            return std::future::pending().await;
        }
        if !grant.borrow_and_update().contains(Scope::Control) {
            // A full queue means an event is on its way to the thread; the event loop then sees the
            // revocation and the stream's end releases everything anyway.
            let _ = jobs.try_send((InputEvent::ReleaseAll, origin, None));
        }
    }
}

/// Serves `Request::Control { display }` until the console closes the stream or the session ends.
pub(crate) async fn serve_control(
    display: u32,
    tx: &mut SealedSend,
    rx: &mut SealedRecv,
    ctx: &StreamCtx,
) -> Result<(), SealedError> {
    let screen = ctx.screen.clone();
    let displays = tokio::task::spawn_blocking(move || screen.control_displays()).await;
    let info: DisplayInfo = match displays {
        Ok(Ok(list)) => match list.into_iter().find(|d| d.index == display) {
            Some(d) => d,
            None => {
                let message = format!("no display number {display}");
                return tx.send(&Response::Failed { message }).await;
            }
        },
        Ok(Err(e)) => {
            let message = e.to_string();
            return tx.send(&Response::Failed { message }).await;
        }
        Err(e) => {
            let message = e.to_string();
            return tx.send(&Response::Failed { message }).await;
        }
    };
    let (job_tx, job_rx) = std_mpsc::sync_channel::<Job>(JOB_QUEUE);
    let (open_tx, open_rx) = oneshot::channel();
    let provider = ctx.input.clone();
    let thread = std::thread::Builder::new()
        .name("tether-input".into())
        .spawn(move || input_thread(provider, open_tx, job_rx));
    let thread = match thread {
        Ok(t) => t,
        Err(e) => {
            let message = format!("cannot start input: {e}");
            return tx.send(&Response::Failed { message }).await;
        }
    };
    let result = match open_rx.await {
        Ok(Ok(())) => {
            tx.send(&Response::Controlling {
                display: info.clone(),
            })
            .await?;
            let origin = (info.x, info.y);
            tokio::select! {
                r = events(tx, rx, ctx, &job_tx, &info) => r,
                () = release_on_revoke(ctx.grant.clone(), job_tx.clone(), origin) => Ok(()),
            }
        }
        Ok(Err(e)) => {
            let message = e.to_string();
            tx.send(&Response::Failed { message }).await
        }
        Err(_) => {
            let message = "input stopped".to_string();
            tx.send(&Response::Failed { message }).await
        }
    };
    drop(job_tx);
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    result
}

async fn events(
    tx: &mut SealedSend,
    rx: &mut SealedRecv,
    ctx: &StreamCtx,
    jobs: &std_mpsc::SyncSender<Job>,
    display: &DisplayInfo,
) -> Result<(), SealedError> {
    let origin = (display.x, display.y);
    // Shown to the user while input is being injected, not merely while the stream is open.
    let mut in_use: Option<Activity> = None;
    // Tell the user and the relay once per refusal run, not once per mouse move.
    let mut refusing = false;
    let result = loop {
        let event = match rx.recv::<InputEvent>().await {
            // A move stays on the display (monitor) it names, so a click never lands on the next one.
            Ok(InputEvent::MouseMove { x, y }) => {
                let (x, y) = super::monitors::clamp_point(display, x, y);
                InputEvent::MouseMove { x, y }
            }
            Ok(e) => e,
            // Tampered or undecodable input ends the session, not just this stream.
            Err(e) if e.is_protocol_violation() => break Err(e),
            Err(_) => break Ok(()),
        };
        let allowed = ctx.grant.borrow().contains(Scope::Control);
        if !allowed && refusing {
            tx.send(&InputReply::Refused).await?;
            continue;
        }
        if !allowed {
            refusing = true;
            // Normally done by the watcher already; an empty set makes this a no-op.
            let _ = jobs.try_send((InputEvent::ReleaseAll, origin, None));
            warn!("input refused: control is not granted");
            let _ = ctx
                .events
                .send(AgentEvent::Refused {
                    what: "your mouse and keyboard".into(),
                    scope: Scope::Control,
                })
                .await;
            let _ = ctx
                .reports
                .send(SessionReport::ScopeRefused {
                    scope: Scope::Control,
                })
                .await;
            if let Some(active) = in_use.take() {
                active.stop().await;
            }
            tx.send(&InputReply::Refused).await?;
            continue;
        }
        refusing = false;
        if in_use.is_none() {
            in_use = Some(Activity::controlling(ctx).await);
        }
        let motion = matches!(event, InputEvent::MouseMove { .. });
        let (reply_tx, reply_rx) = oneshot::channel();
        // Replies are awaited one by one, so the queue has room (the watcher adds at most one).
        let handed = jobs.try_send((event, origin, Some(reply_tx))).is_ok();
        let reply = match (handed, reply_rx.await) {
            (true, Ok(reply)) => reply,
            _ => break Ok(()),
        };
        if reply == InputReply::Done {
            // The session's views capture at once instead of at their idle pace.
            ctx.input_seen.injected(motion);
        }
        if let Err(e) = tx.send(&reply).await {
            break Err(e);
        }
    };
    if let Some(active) = in_use {
        active.stop().await;
    }
    result
}
