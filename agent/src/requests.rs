//! Request streams: each further stream of a session is one request, checked here against the
//! grant (the console's word is never trusted), then served or refused. [`Streams`] runs them for a
//! session and hands back what they report; [`serve`] has one arm per request kind, and long-lived
//! kinds (a screen stream) own their stream until they finish.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tether_net::framed::{self, FrameError};
use tether_net::sealed::{SealedError, SealedRecv, SealedSend, SealedStream};
use tether_proto::ScopeSet;
use tether_proto::files::FileRequest;
use tether_proto::msg::{Request, Response, SessionReport, StreamOpen};
use tether_proto::pairing::Side;
use tether_proto::seal::SessionKeys;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{Instrument, warn};

use crate::clipboard::{ClipboardCtx, ClipboardProvider};
use crate::config::{STEP_TIMEOUT, ShareConfig};
use crate::files::{FilesCtx, Transfers};
use crate::screen::{InputProvider, InputSeen, ScreenProvider, StreamCtx};
use crate::ui::AgentEvent;
use crate::{diagnostics, files, inventory, screen};

/// Queued reports from request tasks, before the session forwards them to the relay.
const REPORT_QUEUE: usize = 16;

/// The session's request streams, in every phase: their tasks, the numbers used so far, and what
/// the tasks report.
pub(crate) struct Streams {
    pub tasks: JoinSet<Result<(), StreamFault>>,
    used: Arc<Mutex<HashSet<u32>>>,
    reports_tx: mpsc::Sender<SessionReport>,
    reports: mpsc::Receiver<SessionReport>,
    keys: SessionKeys,
    events: mpsc::Sender<AgentEvent>,
    screen: Arc<dyn ScreenProvider>,
    video: bool,
    input: Arc<dyn InputProvider>,
    input_seen: InputSeen,
    clipboard: Arc<dyn ClipboardProvider>,
    technician: String,
    files: FilesCtx,
}

/// What a request task had to say: a report for the relay, or that its stream broke protocol.
pub(crate) enum StreamEvent {
    Report(SessionReport),
    Fault(StreamFault),
}

impl Streams {
    pub(crate) fn new(
        keys: SessionKeys,
        events: mpsc::Sender<AgentEvent>,
        config: &ShareConfig,
        technician: String,
    ) -> Self {
        let (reports_tx, reports) = mpsc::channel(REPORT_QUEUE);
        Streams {
            tasks: JoinSet::new(),
            used: Arc::new(Mutex::new(HashSet::new())),
            reports_tx,
            reports,
            keys,
            events,
            screen: config.screen.clone(),
            video: config.video,
            input: config.input.clone(),
            input_seen: InputSeen::default(),
            clipboard: config.clipboard.clone(),
            technician,
            files: FilesCtx {
                config: Arc::new(config.files.clone()),
                transfers: Transfers::default(),
            },
        }
    }

    /// Stops the file transfer `id` if it runs in this session (the user pressed Stop).
    pub(crate) fn stop_transfer(&self, id: u64) {
        self.files.transfers.stop(id);
    }

    /// Serves a new stream under a fixed grant (empty before consent).
    pub(crate) fn spawn(
        &mut self,
        grant: ScopeSet,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
    ) {
        // The sender goes; the receiver keeps the last value, and nothing ever changes it.
        let (_, grant) = watch::channel(grant);
        self.spawn_watching(grant, send, recv);
    }

    /// Serves a new stream under the session's current grant.
    pub(crate) fn spawn_watching(
        &mut self,
        grant: watch::Receiver<ScopeSet>,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
    ) {
        let ctx = RequestCtx {
            keys: self.keys.clone(),
            used: self.used.clone(),
            clipboard: self.clipboard.clone(),
            stream: StreamCtx {
                grant,
                events: self.events.clone(),
                reports: self.reports_tx.clone(),
                screen: self.screen.clone(),
                video: self.video,
                input: self.input.clone(),
                input_seen: self.input_seen.clone(),
                technician: self.technician.clone(),
            },
            files: self.files.clone(),
        };
        // Called from the session's loop: the request's logs carry the session's span.
        let span = tracing::Span::current();
        self.tasks.spawn(ctx.serve(send, recv).instrument(span));
    }

    /// The next report or fault; cancel-safe. Pending while neither comes.
    pub(crate) async fn next(&mut self) -> StreamEvent {
        loop {
            tokio::select! {
                Some(r) = self.reports.recv() => return StreamEvent::Report(r),
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    if let Ok(Err(fault)) = done {
                        return StreamEvent::Fault(fault);
                    }
                }
            }
        }
    }
}

/// What one request task needs: the session's keys and stream numbers, and what a screen stream
/// needs too ([`StreamCtx`]).
pub(crate) struct RequestCtx {
    pub keys: SessionKeys,
    pub used: Arc<Mutex<HashSet<u32>>>,
    /// The clipboard backend; used only by a granted clipboard request.
    pub clipboard: Arc<dyn ClipboardProvider>,
    /// The grant, the user's events, the relay's reports and the backends.
    pub stream: StreamCtx,
    /// File transfer's folders and running transfers.
    pub files: FilesCtx,
}

/// How a request stream broke the session's protocol. Each one ends the whole session as
/// [`EndReason::ProtocolError`]: a frame that fails to open, or a stream that does not follow the
/// `StreamOpen`, request, answer shape, means someone between the two ends (or the console itself)
/// is not playing by the rules, and nothing else it sends can be trusted either. A stream or
/// connection that merely goes away is not one of these; it ends only that stream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StreamFault {
    /// No `StreamOpen` arrived within [`STEP_TIMEOUT`], or the stream ended before one.
    #[error("a request stream carried no StreamOpen")]
    NoStreamOpen,
    /// The `StreamOpen` frame was malformed, too large or cut short.
    #[error("a request stream's StreamOpen is unreadable: {0}")]
    BadStreamOpen(FrameError),
    /// A request stream named itself stream 0, which is the session's control stream.
    #[error("a request stream claimed number 0, the control stream's")]
    StreamZero,
    /// A request stream reused a number (a replayed stream, or one that would reuse nonces).
    #[error("request stream {0} was opened twice")]
    Reused(u32),
    /// No request arrived within [`STEP_TIMEOUT`], or the stream ended before one.
    #[error("request stream {0} carried no request")]
    NoRequest(u32),
    /// A frame on the stream failed authentication (tampered, replayed, moved from another stream)
    /// or did not decode.
    #[error("request stream {stream}: {source}")]
    Frame {
        /// The stream's number.
        stream: u32,
        /// What failed.
        source: SealedError,
    },
    /// A second message followed the one request a stream may carry.
    #[error("request stream {0} carried more than one request")]
    Extra(u32),
}

impl RequestCtx {
    /// Serves one request stream. `Err` means the stream broke protocol and the session must end.
    async fn serve(
        self,
        send: quinn::SendStream,
        mut recv: quinn::RecvStream,
    ) -> Result<(), StreamFault> {
        let open =
            tokio::time::timeout(STEP_TIMEOUT, framed::read_msg::<StreamOpen>(&mut recv)).await;
        let stream_id = match open {
            Ok(Ok(StreamOpen { stream_id })) => stream_id,
            Err(_) | Ok(Err(FrameError::Closed)) => return Err(StreamFault::NoStreamOpen),
            Ok(Err(e @ (FrameError::Codec(_) | FrameError::Truncated))) => {
                return Err(StreamFault::BadStreamOpen(e));
            }
            // Reset, or the connection went: the session loop hears of that itself.
            Ok(Err(_)) => return Ok(()),
        };
        // Stream 0 is the control stream; a repeated number would reuse keys (and nonces).
        if stream_id == 0 {
            return Err(StreamFault::StreamZero);
        }
        // A poisoned set means a request task panicked while holding it; refusing every number
        // from then on fails closed.
        let fresh = self
            .used
            .lock()
            .map(|mut u| u.insert(stream_id))
            .unwrap_or(false);
        if !fresh {
            return Err(StreamFault::Reused(stream_id));
        }
        let (mut tx, mut rx) =
            SealedStream::new(send, recv, &self.keys, stream_id, Side::Agent).split();
        let req = match tokio::time::timeout(STEP_TIMEOUT, rx.recv::<Request>()).await {
            Ok(Ok(req)) => req,
            Err(_) | Ok(Err(SealedError::Frame(FrameError::Closed))) => {
                return Err(StreamFault::NoRequest(stream_id));
            }
            Ok(Err(e)) if e.is_protocol_violation() => {
                return Err(StreamFault::Frame {
                    stream: stream_id,
                    source: e,
                });
            }
            Ok(Err(_)) => return Ok(()),
        };
        let scope = req.scope();
        // A screen stream goes on carrying messages after its request; the others carry one.
        // So does a file transfer, with its chunks.
        let one_shot = !matches!(
            req,
            Request::View { .. }
                | Request::Control { .. }
                | Request::Files(FileRequest::Push { .. } | FileRequest::Pull { .. })
        );
        if !self.stream.grant.borrow().contains(scope) {
            warn!(%scope, "refused: scope not granted");
            let what = describe(&req);
            let _ = self
                .stream
                .events
                .send(AgentEvent::Refused { what, scope })
                .await;
            let _ = self
                .stream
                .reports
                .send(SessionReport::ScopeRefused { scope })
                .await;
            if tx.send(&Response::Refused { scope }).await.is_ok() {
                tx.finish_and_flush(STEP_TIMEOUT).await;
            }
        } else {
            match serve(req, &mut tx, &mut rx, &self).await {
                Err(e) if e.is_protocol_violation() => {
                    return Err(StreamFault::Frame {
                        stream: stream_id,
                        source: e,
                    });
                }
                // The console stopped listening (gave up, or the session is ending).
                Err(e) => {
                    warn!(error = %e, "request stream failed");
                    return Ok(());
                }
                Ok(()) => tx.finish_and_flush(STEP_TIMEOUT).await,
            }
        }
        if one_shot {
            return no_more(&mut rx, stream_id).await;
        }
        Ok(())
    }
}

/// After a one-shot answer the console's side must simply end: anything more on the stream (a
/// replayed request, a forged frame) breaks protocol. A console that keeps its side open, or
/// resets it, is not at fault.
async fn no_more(rx: &mut SealedRecv, stream: u32) -> Result<(), StreamFault> {
    match tokio::time::timeout(STEP_TIMEOUT, rx.recv::<Request>()).await {
        Ok(Ok(_)) => Err(StreamFault::Extra(stream)),
        Ok(Err(e)) if e.is_protocol_violation() => Err(StreamFault::Frame { stream, source: e }),
        Ok(Err(_)) | Err(_) => Ok(()),
    }
}

/// What a request hands over, in words for the user.
pub(crate) fn describe(req: &Request) -> String {
    match req {
        Request::Inventory => "the hardware and software inventory".into(),
        Request::Diagnostic { probe, .. } => format!("the diagnostic \"{probe}\""),
        Request::Displays => "the list of your displays".into(),
        Request::View { display } => format!("a live view of display {display}"),
        Request::Control { .. } => "your mouse and keyboard".into(),
        Request::Files(FileRequest::List { dir }) if dir.is_empty() => {
            "the list of your shared folders".into()
        }
        Request::Files(FileRequest::List { dir }) => format!(
            "the list of files in {}",
            tether_proto::text::display_safe(dir)
        ),
        Request::Files(FileRequest::Push { name, .. }) => format!(
            "a file sent to you: {}",
            tether_proto::text::display_safe(name)
        ),
        Request::Files(FileRequest::Pull { path }) => {
            format!("your file {}", tether_proto::text::display_safe(path))
        }
        Request::ClipboardGet { selection } => format!("the text on {}", selection.words()),
        Request::ClipboardSet { selection, .. } => format!("to put text on {}", selection.words()),
    }
}

/// Serves `req`, which the user has granted.
async fn serve(
    req: Request,
    tx: &mut SealedSend,
    rx: &mut SealedRecv,
    ctx: &RequestCtx,
) -> Result<(), SealedError> {
    let what = describe(&req);
    if let Request::Diagnostic {
        probe,
        timeout_secs,
    } = req
    {
        return serve_diagnostic(probe, timeout_secs, what, tx, ctx).await;
    }
    // Long-lived screen streams own the stream until they end.
    match req {
        Request::View { display } => return screen::serve_view(display, tx, rx, &ctx.stream).await,
        Request::Control { display } => {
            return screen::serve_control(display, tx, rx, &ctx.stream).await;
        }
        Request::Files(f) => return files::serve(f, tx, rx, &ctx.stream, &ctx.files).await,
        Request::ClipboardGet { selection } => {
            return crate::clipboard::serve(selection, None, tx, clipboard_ctx(ctx)).await;
        }
        Request::ClipboardSet { selection, text } => {
            return crate::clipboard::serve(selection, Some(text), tx, clipboard_ctx(ctx)).await;
        }
        _ => {}
    }
    let screen = ctx.stream.screen.clone();
    // Collection reads the OS synchronously; keep it off the async workers so the session stays live.
    let work = tokio::task::spawn_blocking(move || match req {
        Request::Inventory => Response::Inventory(Box::new(inventory::collect())),
        Request::Displays => match screen.displays() {
            Ok(d) => Response::Displays(d),
            Err(e) => Response::Failed {
                message: e.to_string(),
            },
        },
        Request::Diagnostic { .. }
        | Request::View { .. }
        | Request::Control { .. }
        | Request::Files(_)
        | Request::ClipboardGet { .. }
        | Request::ClipboardSet { .. } => Response::Failed {
            message: "unreachable: served above".into(),
        },
    });
    let response = work.await.unwrap_or_else(|e| Response::Failed {
        message: format!("collection failed: {e}"),
    });
    tx.send(&response).await?;
    let _ = ctx.stream.events.send(AgentEvent::Served { what }).await;
    Ok(())
}

fn clipboard_ctx(ctx: &RequestCtx) -> ClipboardCtx<'_> {
    ClipboardCtx {
        clipboard: &ctx.clipboard,
        events: &ctx.stream.events,
        technician: &ctx.stream.technician,
    }
}

/// Re-validates the probe (the console's checks are not trusted), shows the user it runs, runs it
/// within its timeout and answers. Invalid parameters are refused before anything runs.
async fn serve_diagnostic(
    probe: tether_proto::diag::Probe,
    timeout_secs: Option<u16>,
    what: String,
    tx: &mut SealedSend,
    ctx: &RequestCtx,
) -> Result<(), SealedError> {
    let timeout = probe
        .validate()
        .and_then(|()| diagnostics::timeout_for(&probe, timeout_secs));
    let timeout = match timeout {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "refusing a diagnostic with invalid parameters");
            return tx
                .send(&Response::Failed {
                    message: format!("invalid parameter: {e}"),
                })
                .await;
        }
    };
    let _ = ctx
        .stream
        .events
        .send(AgentEvent::Running { what: what.clone() })
        .await;
    let report = diagnostics::run_probe(probe, timeout).await;
    tx.send(&Response::Diagnostic(Box::new(report))).await?;
    let _ = ctx.stream.events.send(AgentEvent::Served { what }).await;
    Ok(())
}
