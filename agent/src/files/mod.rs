//! File transfer on the agent: serves `Request::Files` (list, push, pull; see
//! [`tether_proto::files`] for the flow) once the user granted `files`.
//!
//! Pushed files land in one folder ([`FilesConfig::landing`]); list and pull stay inside the
//! shared roots ([`FilesConfig::roots`]); [`fs`] opens every path component without following
//! links and never replaces a file. Every transfer is shown to the user as it starts, moves and
//! ends ([`AgentEvent::Transfer`]), can be stopped by them ([`Transfers::stop`]), and stops at once
//! when `files` is taken back. A push cut by a lost connection keeps its partial file, so a later
//! session resumes it; any other failure removes it.
//!
//! # Layout
//! - [`fs`]: the synchronous file system side (links refused, partial files, the landing rename).
//! - this file: the stream side of list, push and pull, and the user's notices.

pub(crate) mod fs;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tether_net::sealed::{SealedError, SealedRecv, SealedSend};
use tether_proto::Scope;
use tether_proto::files::{self, FileFailure, FileMsg, FileRequest, FileResponse, StoppedBy};
use tether_proto::msg::Response;
use tether_proto::records::FileDirection;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{FilesConfig, STEP_TIMEOUT};
use crate::screen::StreamCtx;
use crate::ui::{AgentEvent, Transfer, TransferState};

/// How often at most the user is shown a transfer's progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Messages read ahead on a push, while the partial file is written.
const READ_AHEAD: usize = 4;

/// The reader never finishes (it parks once the stream ends); kept apart so the select reads plainly.
fn unreachable_reader() -> Ending {
    Ending::Fail(FileFailure::Io("the stream reader stopped".into()))
}

/// What file streams share in a session: the folders, and the running transfers (to stop them).
#[derive(Debug, Clone)]
pub(crate) struct FilesCtx {
    pub config: Arc<FilesConfig>,
    pub transfers: Transfers,
}

/// The running transfers of a session, by the id the user sees.
#[derive(Debug, Clone, Default)]
pub(crate) struct Transfers(Arc<Mutex<HashMap<u64, CancellationToken>>>);

impl Transfers {
    /// Stops transfer `id`, if it runs in this session.
    pub(crate) fn stop(&self, id: u64) {
        if let Ok(map) = self.0.lock()
            && let Some(t) = map.get(&id)
        {
            t.cancel();
        }
    }

    fn register(&self) -> Registered {
        // Random, so ids are unique across the sessions of a share (every session hears a stop).
        let id = rand::random::<u64>() >> 11;
        let token = CancellationToken::new();
        if let Ok(mut map) = self.0.lock() {
            map.insert(id, token.clone());
        }
        Registered {
            id,
            token,
            transfers: self.clone(),
        }
    }
}

/// A running transfer's entry; removed on drop.
struct Registered {
    id: u64,
    token: CancellationToken,
    transfers: Transfers,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut map) = self.transfers.0.lock() {
            map.remove(&self.id);
        }
    }
}

/// What the user is told about one transfer.
struct Notice<'a> {
    ctx: &'a StreamCtx,
    base: Transfer,
    shown: Instant,
}

impl<'a> Notice<'a> {
    async fn started(
        ctx: &'a StreamCtx,
        id: u64,
        direction: FileDirection,
        path: String,
        total: u64,
        offset: u64,
    ) -> Notice<'a> {
        info!(
            id,
            direction = direction.name(),
            total,
            offset,
            "file transfer started"
        );
        let base = Transfer {
            id,
            direction,
            technician: ctx.technician.clone(),
            path,
            total,
            state: TransferState::Started { offset },
        };
        let _ = ctx.events.send(AgentEvent::Transfer(base.clone())).await;
        Notice {
            ctx,
            base,
            shown: Instant::now(),
        }
    }

    /// A few updates a second at most; dropped rather than waited for when the front end lags.
    fn progress(&mut self, done: u64) {
        if self.shown.elapsed() < PROGRESS_EVERY {
            return;
        }
        self.shown = Instant::now();
        let mut t = self.base.clone();
        t.state = TransferState::Progress { done };
        let _ = self.ctx.events.try_send(AgentEvent::Transfer(t));
    }

    async fn done(mut self, path: String, sha256: &files::Sha256Digest) {
        info!(id = self.base.id, "file transfer done");
        self.base.path = path;
        self.base.state = TransferState::Done {
            sha256: files::hex(sha256),
        };
        let _ = self.ctx.events.send(AgentEvent::Transfer(self.base)).await;
    }

    async fn failed(mut self, reason: &FileFailure) {
        warn!(id = self.base.id, error = %reason, "file transfer failed");
        self.base.state = TransferState::Failed {
            reason: reason.to_string(),
        };
        let _ = self.ctx.events.send(AgentEvent::Transfer(self.base)).await;
    }
}

/// Runs `f` off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FileFailure> + Send + 'static,
) -> Result<T, FileFailure> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(FileFailure::Io(format!("file task failed: {e}"))))
}

/// Serves a granted file request on its stream.
pub(crate) async fn serve(
    req: FileRequest,
    tx: &mut SealedSend,
    rx: &mut SealedRecv,
    ctx: &StreamCtx,
    files: &FilesCtx,
) -> Result<(), SealedError> {
    match req {
        FileRequest::List { dir } => {
            let roots = files.config.roots.clone();
            let d = dir.clone();
            let answer = match blocking(move || fs::Roots(&roots).list(&d)).await {
                Ok((entries, left_out)) => FileResponse::Listing {
                    dir: dir.clone(),
                    entries,
                    left_out,
                },
                Err(f) => FileResponse::Failed(f),
            };
            let ok = !matches!(answer, FileResponse::Failed(_));
            tx.send(&Response::Files(answer)).await?;
            if ok {
                let what = format!("the list of files in {}", shown_dir(&dir));
                let _ = ctx.events.send(AgentEvent::Served { what }).await;
            }
            Ok(())
        }
        FileRequest::Push { name, size, source } => {
            push(name, size, source, tx, rx, ctx, files).await
        }
        FileRequest::Pull { path } => pull(path, tx, rx, ctx, files).await,
    }
}

fn shown_dir(dir: &str) -> String {
    if dir.is_empty() {
        "the shared folders".into()
    } else {
        tether_proto::text::display_safe(dir).into_owned()
    }
}

async fn refuse(tx: &mut SealedSend, f: FileFailure) -> Result<(), SealedError> {
    warn!(error = %f, "file request refused");
    tx.send(&Response::Files(FileResponse::Failed(f))).await
}

/// How a transfer loop ended when it did not complete.
enum Ending {
    /// A failure both sides hear of (this side tells the other).
    Fail(FileFailure),
    /// The other side said it failed or stopped.
    Peer(FileFailure),
    /// The stream or connection went: a push keeps its partial file for a later session.
    Lost(SealedError),
    /// The sender said every chunk was sent, and the file's digest (push only).
    Complete(files::Sha256Digest),
}

/// True when the grant no longer holds `files` (or the session is over).
fn revoked(
    c: Result<(), tokio::sync::watch::error::RecvError>,
    grant: &tokio::sync::watch::Receiver<tether_proto::ScopeSet>,
) -> bool {
    c.is_err() || !grant.borrow().contains(Scope::Files)
}

#[allow(clippy::too_many_arguments)]
async fn push(
    name: String,
    size: u64,
    source: files::SourceId,
    tx: &mut SealedSend,
    rx: &mut SealedRecv,
    ctx: &StreamCtx,
    files: &FilesCtx,
) -> Result<(), SealedError> {
    let rel = match files::sanitise(&name) {
        Ok(r) => r,
        Err(e) => return refuse(tx, e.into()).await,
    };
    let landing = files.config.landing.clone();
    let shown = landing.join(rel.to_string()).display().to_string();
    let incoming = match blocking(move || fs::prepare_push(&landing, &rel, size, source)).await {
        Ok(i) => i,
        Err(f) => return refuse(tx, f).await,
    };
    let offset = incoming.offset();
    tx.send(&Response::Files(FileResponse::PushReady { offset }))
        .await?;
    let reg = files.transfers.register();
    let mut notice = Notice::started(ctx, reg.id, FileDirection::Push, shown, size, offset).await;
    let mut grant = ctx.grant.clone();
    let mut writer = Writer::Idle(Box::new(incoming));
    // `recv` is not cancel-safe, and the loop below also wakes for the writer, the user and the
    // grant: one reader hands whole messages over a channel.
    let (msg_tx, mut msgs) = tokio::sync::mpsc::channel(READ_AHEAD);
    let reader = async {
        loop {
            let m = rx.recv::<FileMsg>().await;
            let last = m.is_err();
            if msg_tx.send(m).await.is_err() || last {
                return std::future::pending::<()>().await;
            }
        }
    };
    let receive = async {
        loop {
            tokio::select! {
                biased;
                () = reg.token.cancelled() => break Ending::Fail(FileFailure::Cancelled(StoppedBy::User)),
                c = grant.changed() => {
                    if revoked(c, &grant) {
                        break Ending::Fail(FileFailure::Revoked);
                    }
                }
                // A chunk the checker refuses (or a full disk) fails as soon as it is written, even
                // if nothing else comes.
                w = writer.written() => match w {
                    Ok(done) => notice.progress(done),
                    Err(f) => break Ending::Fail(f),
                },
                m = msgs.recv() => match m.unwrap_or_else(|| Err(SealedError::Frame(tether_net::framed::FrameError::Closed))) {
                    Ok(FileMsg::Chunk { offset, data }) => {
                        match writer.settle().await {
                            Ok(done) => notice.progress(done),
                            Err(f) => break Ending::Fail(f),
                        }
                        writer.start(offset, data);
                    }
                    Ok(FileMsg::End { sha256 }) => break Ending::Complete(sha256),
                    Ok(FileMsg::Failed(f)) => break Ending::Peer(f),
                    Ok(other) => break Ending::Fail(unexpected(&other)),
                    Err(e) => break Ending::Lost(e),
                },
            }
        }
    };
    let ending = tokio::select! {
        e = receive => e,
        () = reader => unreachable_reader(),
    };
    if let Ending::Complete(sha256) = ending {
        let landed = match writer.settle().await {
            Ok(_) => match writer.take() {
                Some(incoming) => blocking(move || incoming.land(&sha256)).await,
                None => Err(FileFailure::Io("file task failed".into())),
            },
            Err(f) => {
                if let Some(i) = writer.take() {
                    let _ = blocking(move || {
                        i.discard();
                        Ok(())
                    })
                    .await;
                }
                Err(f)
            }
        };
        return match landed {
            Ok(path) => {
                let path = path.display().to_string();
                tx.send(&FileMsg::Done { path: path.clone() }).await?;
                notice.done(path, &sha256).await;
                Ok(())
            }
            Err(f) => {
                let _ = tx.send(&FileMsg::Failed(f.clone())).await;
                notice.failed(&f).await;
                Ok(())
            }
        };
    }
    // The chunk being written finishes first: discarded or kept, the partial file is whole.
    let _ = writer.settle().await;
    let incoming = writer.take();
    let discard = |incoming: Option<fs::Incoming>| {
        blocking(move || {
            if let Some(i) = incoming {
                i.discard();
            }
            Ok(())
        })
    };
    match ending {
        // Handled above (push), never made (pull).
        Ending::Complete(_) => Ok(()),
        Ending::Fail(f) => {
            let _ = tx.send(&FileMsg::Failed(f.clone())).await;
            let _ = discard(incoming).await;
            notice.failed(&f).await;
            Ok(())
        }
        Ending::Peer(f) => {
            let _ = discard(incoming).await;
            notice.failed(&f).await;
            Ok(())
        }
        Ending::Lost(e) => {
            let have = incoming.as_ref().map_or(0, fs::Incoming::offset);
            let f = FileFailure::Io(format!(
                "the connection broke after {have} of {size} bytes; the part that arrived is kept, \
                 and the same file sent again continues from there"
            ));
            notice.failed(&f).await;
            Err(e)
        }
    }
}

/// The partial file of a push, written off the async workers one chunk behind the stream, so
/// opening the next frame overlaps with hashing and writing this one.
enum Writer {
    /// Nothing being written.
    Idle(Box<fs::Incoming>),
    /// A chunk being written.
    Busy(tokio::task::JoinHandle<(Box<fs::Incoming>, Result<(), FileFailure>)>),
    /// The writing task panicked (the partial file closed with it; a later push resumes it).
    Lost,
}

impl Writer {
    /// Resolves when the chunk being written is done (never while idle), with the bytes the
    /// partial file now holds. Cancel-safe: the task is polled by reference, and its result kept.
    async fn written(&mut self) -> Result<u64, FileFailure> {
        let out = match self {
            Writer::Busy(h) => h.await,
            Writer::Idle(_) | Writer::Lost => return std::future::pending().await,
        };
        match out {
            Ok((incoming, r)) => {
                let at = incoming.offset();
                *self = Writer::Idle(incoming);
                r.map(|()| at)
            }
            Err(e) => {
                *self = Writer::Lost;
                Err(FileFailure::Io(format!("file task failed: {e}")))
            }
        }
    }

    /// Waits for the chunk being written; returns the bytes the partial file now holds.
    async fn settle(&mut self) -> Result<u64, FileFailure> {
        if let Writer::Busy(_) = self {
            self.written().await?;
        }
        match self {
            Writer::Idle(i) => Ok(i.offset()),
            Writer::Busy(_) | Writer::Lost => Err(FileFailure::Io("file task failed".into())),
        }
    }

    /// Starts writing a chunk (after [`Writer::settle`]).
    fn start(&mut self, offset: u64, data: files::Bytes) {
        if let Writer::Idle(_) = self
            && let Writer::Idle(mut incoming) = std::mem::replace(self, Writer::Lost)
        {
            *self = Writer::Busy(tokio::task::spawn_blocking(move || {
                let r = incoming.write(offset, &data.0);
                (incoming, r)
            }));
        }
    }

    /// The partial file, when nothing is being written.
    fn take(&mut self) -> Option<fs::Incoming> {
        match std::mem::replace(self, Writer::Lost) {
            Writer::Idle(i) => Some(*i),
            busy @ Writer::Busy(_) => {
                *self = busy;
                None
            }
            Writer::Lost => None,
        }
    }
}

fn unexpected(m: &FileMsg) -> FileFailure {
    let what = match m {
        FileMsg::Start { .. } => "Start",
        FileMsg::Chunk { .. } => "Chunk",
        FileMsg::End { .. } => "End",
        FileMsg::Done { .. } => "Done",
        FileMsg::Failed(_) => "Failed",
    };
    FileFailure::Unexpected(what.into())
}

async fn pull(
    path: String,
    tx: &mut SealedSend,
    rx: &mut SealedRecv,
    ctx: &StreamCtx,
    files: &FilesCtx,
) -> Result<(), SealedError> {
    let roots = files.config.roots.clone();
    let p = path.clone();
    let out = match blocking(move || fs::Roots(&roots).open_file(&p)).await {
        Ok(o) => o,
        Err(f) => return refuse(tx, f).await,
    };
    let size = out.stamp.size;
    tx.send(&Response::Files(FileResponse::PullOffer {
        path: path.clone(),
        size,
        source: out.source(),
    }))
    .await?;
    let offset = match tokio::time::timeout(STEP_TIMEOUT, rx.recv::<FileMsg>()).await {
        Ok(Ok(FileMsg::Start { offset })) => offset,
        Ok(Ok(FileMsg::Failed(_))) | Err(_) => return Ok(()),
        Ok(Ok(other)) => return refuse_msg(tx, unexpected(&other)).await,
        Ok(Err(e)) => return Err(e),
    };
    if let Err(f) = files::check_resume(offset, size) {
        return refuse_msg(tx, f).await;
    }
    let reg = files.transfers.register();
    let notice = Notice::started(ctx, reg.id, FileDirection::Pull, path, size, offset).await;
    let mut grant = ctx.grant.clone();
    send_file(out, offset, tx, rx, &reg.token, &mut grant, notice).await
}

async fn refuse_msg(tx: &mut SealedSend, f: FileFailure) -> Result<(), SealedError> {
    warn!(error = %f, "file transfer refused");
    tx.send(&FileMsg::Failed(f)).await
}

/// Sends `out` from `offset` (hashing what the console already holds first, so the digest at the
/// end covers the whole file), then waits for the console's verdict.
async fn send_file(
    mut out: fs::Outgoing,
    mut at: u64,
    tx: &mut SealedSend,
    rx: &mut SealedRecv,
    stop: &CancellationToken,
    grant: &mut tokio::sync::watch::Receiver<tether_proto::ScopeSet>,
    mut notice: Notice<'_>,
) -> Result<(), SealedError> {
    let size = out.stamp.size;
    // Read for the whole transfer and kept across iterations, so no message is lost to a select.
    let peer = rx.recv::<FileMsg>();
    tokio::pin!(peer);
    let ending = loop {
        if at >= size {
            break None;
        }
        let read = tokio::task::spawn_blocking(move || {
            let r = out.hash_to(at).and_then(|()| out.read_at(at));
            (out, r)
        })
        .await;
        let data = match read {
            Ok((o, r)) => {
                out = o;
                match r {
                    Ok(d) => d,
                    Err(f) => break Some(Ending::Fail(f)),
                }
            }
            Err(e) => {
                let f = FileFailure::Io(format!("file task failed: {e}"));
                let _ = tx.send(&FileMsg::Failed(f.clone())).await;
                notice.failed(&f).await;
                return Ok(());
            }
        };
        let len = data.len() as u64;
        let chunk = FileMsg::Chunk {
            offset: at,
            data: files::Bytes(data),
        };
        tokio::select! {
            biased;
            () = stop.cancelled() => break Some(Ending::Fail(FileFailure::Cancelled(StoppedBy::User))),
            c = grant.changed() => {
                if revoked(c, grant) {
                    break Some(Ending::Fail(FileFailure::Revoked));
                }
                continue;
            }
            m = &mut peer => break Some(match m {
                Ok(FileMsg::Failed(f)) => Ending::Peer(f),
                Ok(other) => Ending::Fail(unexpected(&other)),
                Err(e) => Ending::Lost(e),
            }),
            r = tx.send(&chunk) => if let Err(e) = r {
                break Some(Ending::Lost(e));
            },
        }
        at += len;
        notice.progress(at);
    };
    let ending = match ending {
        Some(e) => e,
        None => {
            let check = tokio::task::spawn_blocking(move || {
                out.hash_to(size)?;
                out.unchanged()?;
                out.digest()
                    .ok_or_else(|| FileFailure::Io("the file was not read whole".into()))
            })
            .await;
            match check {
                Ok(Ok(sha256)) => {
                    tx.send(&FileMsg::End { sha256 }).await?;
                    match tokio::time::timeout(STEP_TIMEOUT, &mut peer).await {
                        Ok(Ok(FileMsg::Done { .. })) => {
                            let path = notice.base.path.clone();
                            notice.done(path, &sha256).await;
                            return Ok(());
                        }
                        Ok(Ok(FileMsg::Failed(f))) => Ending::Peer(f),
                        Ok(Ok(other)) => Ending::Fail(unexpected(&other)),
                        Ok(Err(e)) => Ending::Lost(e),
                        Err(_) => Ending::Peer(FileFailure::Io(
                            "the technician's console did not confirm the file".into(),
                        )),
                    }
                }
                Ok(Err(f)) => Ending::Fail(f),
                Err(e) => Ending::Fail(FileFailure::Io(format!("file task failed: {e}"))),
            }
        }
    };
    match ending {
        // Handled above (push), never made (pull).
        Ending::Complete(_) => Ok(()),
        Ending::Fail(f) => {
            let _ = tx.send(&FileMsg::Failed(f.clone())).await;
            notice.failed(&f).await;
            Ok(())
        }
        Ending::Peer(f) => {
            notice.failed(&f).await;
            Ok(())
        }
        Ending::Lost(e) => {
            notice
                .failed(&FileFailure::Io("the connection broke".into()))
                .await;
            Err(e)
        }
    }
}
