//! The control stream: the console sends input events, the agent answers each one. The `control` grant is
//! checked on every event, so revoking it takes effect at the next event. Event contents are never logged.

use std::sync::mpsc as std_mpsc;

use tether_net::sealed::{SealedError, SealedRecv, SealedSend};
use tether_proto::Scope;
use tether_proto::msg::{Response, SessionReport};
use tether_proto::screen::{DisplayInfo, InputEvent, InputReply};
use tokio::sync::oneshot;
use tracing::warn;

use super::{InputError, InputProvider};
use crate::session::RequestCtx;
use crate::ui::AgentEvent;

type Job = (
    InputEvent,
    (i32, i32),
    oneshot::Sender<Result<(), InputError>>,
);

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
    while let Ok((event, origin, reply)) = jobs.recv() {
        let _ = reply.send(sink.inject(&event, origin));
    }
}

/// Serves `Request::Control { display }` until the console closes the stream or the session ends.
pub(crate) async fn serve_control(
    display: u32,
    tx: &mut SealedSend,
    rx: &mut SealedRecv,
    ctx: &RequestCtx,
) -> Result<(), SealedError> {
    let screen = ctx.screen.clone();
    let displays = tokio::task::spawn_blocking(move || screen.displays()).await;
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
    let (job_tx, job_rx) = std_mpsc::sync_channel::<Job>(1);
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
            events(tx, rx, ctx, &job_tx, &info).await
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
    ctx: &RequestCtx,
    jobs: &std_mpsc::SyncSender<Job>,
    display: &DisplayInfo,
) -> Result<(), SealedError> {
    let origin = (display.x, display.y);
    let mut in_use = false;
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
            if in_use {
                in_use = false;
                let _ = ctx
                    .events
                    .send(AgentEvent::Controlling {
                        technician: ctx.technician.clone(),
                        active: false,
                    })
                    .await;
            }
            tx.send(&InputReply::Refused).await?;
            continue;
        }
        if !in_use {
            in_use = true;
            let _ = ctx
                .events
                .send(AgentEvent::Controlling {
                    technician: ctx.technician.clone(),
                    active: true,
                })
                .await;
        }
        let (reply_tx, reply_rx) = oneshot::channel();
        // Replies are awaited one by one, so the one-slot queue is always empty here.
        let handed = jobs.try_send((event, origin, reply_tx)).is_ok();
        let reply = match (handed, reply_rx.await) {
            (true, Ok(Ok(()))) => InputReply::Done,
            (true, Ok(Err(e))) => InputReply::Failed {
                message: e.to_string(),
            },
            _ => break Ok(()),
        };
        if let Err(e) = tx.send(&reply).await {
            break Err(e);
        }
    };
    if in_use {
        let _ = ctx
            .events
            .send(AgentEvent::Controlling {
                technician: ctx.technician.clone(),
                active: false,
            })
            .await;
    }
    result
}
