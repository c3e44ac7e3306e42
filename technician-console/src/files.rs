//! File transfer in a session: [`push`] files and folders to the user's machine, [`pull`] one
//! from it, [`list`] a folder there. Each needs the `files` scope; each file has its own stream
//! (see `tether_proto::files` for the flow), so a transfer never holds up the screen or input.
//!
//! # Progress
//! Every transfer takes `progress: &mut (dyn FnMut(&Progress) -> ControlFlow<()> + Send)`. It is
//! called once when a file starts (`done_bytes` is where it resumes: the part an earlier, cut
//! transfer left), after every chunk (256 KiB), and once when the file is complete. Return
//! `ControlFlow::Continue(())` to go on; `ControlFlow::Break(())` stops the transfer: the user's
//! side is told that the technician stopped it, and the call returns [`FilesError::Stopped`].
//! Dropping the future also stops it (the user's side then sees the stream break).
//!
//! # Resuming
//! A push that was cut (the connection broke) resumes by itself when the same file is pushed
//! again under the same name in a later session: the agent kept what arrived, and only the rest
//! is sent. A pull keeps a hidden `.tether-….part` file in the output folder for the same reason.
//! Nothing is ever written under a final name before its SHA-256 matched, and nothing existing is
//! replaced: a taken name gets a number (`report (1).txt`), on both sides.
//!
//! After each completed file, the session's record gets a `SessionFacts::File`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::ControlFlow;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tether_net::sealed::{SealedError, SealedSend};
use tether_proto::files::{
    self, CHUNK_LEN, DirEntry, FileFailure, FileMsg, FileRequest, FileResponse, Hasher,
    MAX_NUMBERED, Receiver, Sha256Digest, SourceId, StoppedBy,
};
use tether_proto::msg::{Request, Response};
use tether_proto::records::{FileDirection, FileMoved, SessionFacts};

use crate::error::ConsoleError;
use crate::session::{STEP_TIMEOUT, Session};

/// How far one file has got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The file: its name on the user's machine (push: relative to the landing folder; pull: the
    /// remote path).
    pub name: String,
    /// Bytes done (including what an earlier, cut transfer left).
    pub done_bytes: u64,
    /// The file's size.
    pub total_bytes: u64,
}

/// The progress callback every transfer takes (see the module doc).
pub type ProgressFn<'a> = &'a mut (dyn FnMut(&Progress) -> ControlFlow<()> + Send);

/// A folder on the user's machine, as [`list`] returns it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Listing {
    /// The folder (empty: the shared folders themselves).
    pub dir: String,
    /// Its entries, sorted by name (names are the user's: show them through `display_safe`).
    pub entries: Vec<Entry>,
    /// Entries the agent left out beyond its limit.
    pub left_out: u64,
}

/// One listed entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    /// Its name.
    pub name: String,
    /// `file`, `dir`, `symlink` (never followed) or `other`.
    pub kind: &'static str,
    /// Size in bytes (files).
    pub size: u64,
    /// Last modified, Unix seconds.
    pub modified_unix: i64,
}

impl From<DirEntry> for Entry {
    fn from(e: DirEntry) -> Self {
        Entry {
            name: e.name,
            kind: match e.kind {
                files::EntryKind::File => "file",
                files::EntryKind::Dir => "dir",
                files::EntryKind::Symlink => "symlink",
                files::EntryKind::Other => "other",
            },
            size: e.size,
            modified_unix: e.modified_unix,
        }
    }
}

/// A pulled file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pulled {
    /// What the session record keeps (the path on the user's machine).
    pub record: FileMoved,
    /// Where it was saved here.
    pub saved_as: PathBuf,
}

/// How a transfer failed. Whatever the failure, no file is left under its final name.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The session failed (not granted, ended, relay gone, …).
    #[error(transparent)]
    Session(#[from] ConsoleError),
    /// A local file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Local {
        /// Which.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A local path is a symbolic link: links are never followed, so it is not sent.
    #[error("{} is a symbolic link; links are not sent", .0.display())]
    Symlink(PathBuf),
    /// A local path is neither a file nor a folder.
    #[error("{} is not a regular file or folder", .0.display())]
    NotAFile(PathBuf),
    /// A local file changed while it was being sent.
    #[error("{} changed while it was being sent; try again", .0.display())]
    Changed(PathBuf),
    /// The user's side refused or stopped the transfer (their disk is full, the user stopped it,
    /// took back `files`, the name or path is refused, …).
    #[error("the user's computer: {0}")]
    Agent(FileFailure),
    /// The user's agent broke the transfer's rules (a chunk out of order or past the size, a
    /// wrong digest, a resume offset past the end); it was told, and the session goes on.
    #[error("the user's agent sent something wrong: {0}")]
    Peer(FileFailure),
    /// The progress callback asked to stop.
    #[error("stopped: you stopped the transfer")]
    Stopped,
    /// The stream broke (the connection went away, or the session ended).
    #[error("the transfer's stream broke: {0}")]
    Stream(String),
}

impl FilesError {
    /// The process exit code (README.md): the session's own, else 10 (the request failed).
    pub fn exit_code(&self) -> i32 {
        match self {
            FilesError::Session(e) => e.exit_code(),
            FilesError::Local { .. }
            | FilesError::Symlink(_)
            | FilesError::NotAFile(_)
            | FilesError::Changed(_) => 2,
            _ => 10,
        }
    }
}

fn local(path: &Path) -> impl FnOnce(std::io::Error) -> FilesError + '_ {
    move |source| FilesError::Local {
        path: path.to_path_buf(),
        source,
    }
}

fn stream(e: SealedError) -> FilesError {
    FilesError::Stream(e.to_string())
}

/// Runs `f` off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FilesError> + Send + 'static,
) -> Result<T, FilesError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(FilesError::Stream(format!("file task failed: {e}"))))
}

/// Lists `dir` on the user's machine (an absolute path inside a shared folder; empty: the
/// shared folders).
pub async fn list(session: &mut Session, dir: &str) -> Result<Listing, FilesError> {
    let req = Request::Files(FileRequest::List { dir: dir.into() });
    match session.request(&req).await? {
        Response::Files(FileResponse::Listing {
            dir,
            entries,
            left_out,
        }) => Ok(Listing {
            dir,
            entries: entries.into_iter().map(Entry::from).collect(),
            left_out,
        }),
        Response::Files(FileResponse::Failed(f)) => Err(FilesError::Agent(f)),
        other => Err(unexpected_response(&other)),
    }
}

fn unexpected_response(r: &Response) -> FilesError {
    FilesError::Session(ConsoleError::Protocol(format!(
        "unexpected answer to a file request: {r:?}"
    )))
}

/// Pushes files and folders (each folder as the tree of files in it; symbolic links inside are
/// skipped and logged, never followed) into the agent's landing folder, under `to` (a relative
/// folder there) if given. Returns what the session record got, one per file, in order; stops at
/// the first failure.
pub async fn push(
    session: &mut Session,
    paths: &[PathBuf],
    to: Option<&str>,
    progress: ProgressFn<'_>,
) -> Result<Vec<FileMoved>, FilesError> {
    let mut plan = Vec::new();
    for p in paths {
        let base = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| FilesError::NotAFile(p.clone()))?;
        let prefix = match to {
            Some(t) if !t.trim_matches('/').is_empty() => format!("{}/{base}", t.trim_matches('/')),
            _ => base,
        };
        let p2 = p.clone();
        let found = blocking(move || walk(&p2, &prefix)).await?;
        plan.extend(found);
    }
    let mut moved = Vec::new();
    for (local, name) in plan {
        moved.push(push_file(session, &local, &name, progress).await?);
    }
    Ok(moved)
}

/// The files under `path` (itself, if it is a file) with their names on the other side.
fn walk(path: &Path, name: &str) -> Result<Vec<(PathBuf, String)>, FilesError> {
    let meta = std::fs::symlink_metadata(path).map_err(local(path))?;
    if meta.file_type().is_symlink() {
        return Err(FilesError::Symlink(path.to_path_buf()));
    }
    if meta.is_file() {
        return Ok(vec![(path.to_path_buf(), name.to_string())]);
    }
    if !meta.is_dir() {
        return Err(FilesError::NotAFile(path.to_path_buf()));
    }
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .map_err(local(path))?
        .collect::<Result<_, _>>()
        .map_err(local(path))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let child = e.path();
        let child_name = format!("{name}/{}", e.file_name().to_string_lossy());
        match walk(&child, &child_name) {
            Err(FilesError::Symlink(l)) => {
                tracing::warn!(path = %l.display(), "a symbolic link in a pushed folder is skipped");
            }
            Err(FilesError::NotAFile(l)) => {
                tracing::warn!(path = %l.display(), "a special file in a pushed folder is skipped");
            }
            r => out.extend(r?),
        }
    }
    Ok(out)
}

/// A local file opened for sending, refused if it is (or was swapped for) a link.
struct Source {
    file: File,
    path: PathBuf,
    size: u64,
    mtime: (i64, i64),
    inode: (u64, u64),
    hasher: Hasher,
    /// Bytes from the start that went through `hasher`.
    hashed: u64,
}

impl Source {
    fn open(path: &Path) -> Result<Source, FilesError> {
        let before = std::fs::symlink_metadata(path).map_err(local(path))?;
        if before.file_type().is_symlink() {
            return Err(FilesError::Symlink(path.to_path_buf()));
        }
        if !before.is_file() {
            return Err(FilesError::NotAFile(path.to_path_buf()));
        }
        let file = File::open(path).map_err(local(path))?;
        let meta = file.metadata().map_err(local(path))?;
        // A link put in its place between the two looks: what was opened is not what was checked.
        if (meta.dev(), meta.ino()) != (before.dev(), before.ino()) {
            return Err(FilesError::Symlink(path.to_path_buf()));
        }
        Ok(Source {
            file,
            path: path.to_path_buf(),
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            inode: (meta.dev(), meta.ino()),
            hasher: Hasher::default(),
            hashed: 0,
        })
    }

    /// Which version of the file this is, for the agent's resumable partial file.
    fn source(&self) -> SourceId {
        files::source_id(&files::SourceStamp {
            path: self.path.as_os_str().as_encoded_bytes(),
            size: self.size,
            mtime: self.mtime,
            inode: self.inode,
        })
    }

    fn unchanged(&self) -> Result<(), FilesError> {
        let m = self.file.metadata().map_err(local(&self.path))?;
        if m.len() != self.size || (m.mtime(), m.mtime_nsec()) != self.mtime {
            return Err(FilesError::Changed(self.path.clone()));
        }
        Ok(())
    }

    /// Hashes the file up to `offset` (the part the agent already holds), so the digest at the
    /// end covers the whole file; a no-op when that much is hashed.
    fn hash_to(&mut self, offset: u64) -> Result<(), FilesError> {
        while self.hashed < offset.min(self.size) {
            self.read_at(self.hashed)?;
        }
        Ok(())
    }

    /// The whole file's SHA-256, once every byte was read (and hashed) in order, checking that
    /// the file did not change meanwhile.
    fn digest(&mut self) -> Result<Sha256Digest, FilesError> {
        self.hash_to(self.size)?;
        self.unchanged()?;
        Ok(self.hasher.clone().finish())
    }

    /// Reads the chunk at `offset`, hashing it when it is the next unhashed one.
    fn read_at(&mut self, offset: u64) -> Result<Vec<u8>, FilesError> {
        let left = self.size.saturating_sub(offset);
        let len = usize::try_from(left).unwrap_or(CHUNK_LEN).min(CHUNK_LEN);
        let mut buf = vec![0; len];
        self.file
            .seek(SeekFrom::Start(offset))
            .map_err(local(&self.path))?;
        self.file
            .read_exact(&mut buf)
            .map_err(|_| FilesError::Changed(self.path.clone()))?;
        if offset == self.hashed {
            self.hasher.update(&buf);
            self.hashed += len as u64;
        }
        Ok(buf)
    }
}

/// Pushes one local file as `name` (a relative path inside the agent's landing folder, which the
/// agent checks: `..`, absolute paths and control characters are refused). Resumes a cut push of
/// the same file and name.
pub async fn push_file(
    session: &mut Session,
    path: &Path,
    name: &str,
    progress: ProgressFn<'_>,
) -> Result<FileMoved, FilesError> {
    let p = path.to_path_buf();
    let src = blocking(move || Source::open(&p)).await?;
    let size = src.size;
    let req = Request::Files(FileRequest::Push {
        name: name.into(),
        size,
        source: src.source(),
    });
    let (mut tx, mut rx, first) = session.open_stream(&req).await?;
    let offset = match first {
        Response::Files(FileResponse::PushReady { offset }) => offset,
        Response::Files(FileResponse::Failed(f)) => return Err(FilesError::Agent(f)),
        other => return Err(unexpected_response(&other)),
    };
    if let Err(f) = files::check_resume(offset, size) {
        let _ = tx.send(&FileMsg::Failed(f.clone())).await;
        return Err(FilesError::Peer(f));
    }
    let mut at = offset;
    let mut report = |done: u64| {
        progress(&Progress {
            name: name.to_string(),
            done_bytes: done,
            total_bytes: size,
        })
    };
    if report(at).is_break() {
        return Err(stopped(&mut tx).await);
    }
    // The agent's answer is read for the whole transfer, so a refusal mid-way stops the sending.
    let answer = rx.recv::<FileMsg>();
    tokio::pin!(answer);
    // The next chunk is read while this one is sealed and sent.
    let read_ahead = |mut src: Source, at: u64| {
        tokio::task::spawn_blocking(move || {
            let r = src.hash_to(at).and_then(|()| src.read_at(at));
            (src, r)
        })
    };
    let mut src = Some(src);
    let mut pending = match src.take() {
        Some(s) if at < size => Some(read_ahead(s, at)),
        other => {
            src = other;
            None
        }
    };
    while let Some(reading) = pending.take() {
        let (s, read) = reading
            .await
            .map_err(|e| FilesError::Stream(format!("file task failed: {e}")))?;
        let data = match read {
            Ok(d) => d,
            Err(e) => {
                let f = FileFailure::Changed(name.to_string());
                let _ = tx.send(&FileMsg::Failed(f)).await;
                return Err(e);
            }
        };
        let len = data.len() as u64;
        let chunk = FileMsg::Chunk {
            offset: at,
            data: files::Bytes(data),
        };
        if at + len < size {
            pending = Some(read_ahead(s, at + len));
        } else {
            src = Some(s);
        }
        tokio::select! {
            biased;
            m = &mut answer => return Err(agent_stopped(m)),
            r = tx.send(&chunk) => if let Err(e) = r {
                // The agent may have stopped reading after saying why: give it a moment.
                return Err(match tokio::time::timeout(std::time::Duration::from_secs(2), &mut answer).await {
                    Ok(m) => agent_stopped(m),
                    Err(_) => stream(e),
                });
            },
        }
        at += len;
        if report(at).is_break() {
            return Err(stopped(&mut tx).await);
        }
    }
    let Some(mut src) = src else {
        return Err(FilesError::Stream("file task failed".into()));
    };
    let digest = tokio::task::spawn_blocking(move || src.digest())
        .await
        .map_err(|e| FilesError::Stream(format!("file task failed: {e}")))?;
    let sha256 = match digest {
        Ok(d) => d,
        Err(e) => {
            let _ = tx
                .send(&FileMsg::Failed(FileFailure::Changed(name.to_string())))
                .await;
            return Err(e);
        }
    };
    tx.send(&FileMsg::End { sha256 }).await.map_err(stream)?;
    // The agent hashes and syncs a whole file before it answers.
    let landed = match tokio::time::timeout(STEP_TIMEOUT * 4, &mut answer).await {
        Ok(Ok(FileMsg::Done { path })) => path,
        Ok(m) => return Err(agent_stopped(m)),
        Err(_) => {
            return Err(FilesError::Stream(
                "the agent did not confirm the file".into(),
            ));
        }
    };
    tx.finish_and_flush(STEP_TIMEOUT).await;
    let moved = FileMoved {
        direction: FileDirection::Push,
        path: landed,
        size,
        sha256: files::hex(&sha256),
        at_unix: tether_net::clock::now_unix(),
    };
    session.post_facts(SessionFacts::File(moved.clone())).await;
    Ok(moved)
}

/// Tells the agent the technician stopped.
async fn stopped(tx: &mut SealedSend) -> FilesError {
    let _ = tx
        .send(&FileMsg::Failed(FileFailure::Cancelled(
            StoppedBy::Technician,
        )))
        .await;
    tx.finish_and_flush(STEP_TIMEOUT).await;
    FilesError::Stopped
}

/// What an agent's message in the middle of a push means.
fn agent_stopped(m: Result<FileMsg, SealedError>) -> FilesError {
    match m {
        Ok(FileMsg::Failed(f)) => FilesError::Agent(f),
        Ok(other) => FilesError::Peer(FileFailure::Unexpected(format!("{other:?}"))),
        Err(e) => stream(e),
    }
}

/// Fetches the file `remote` (an absolute path inside a folder the user shares) into the folder
/// `out`, under its own name (numbered if the name is taken). Resumes a cut pull of the same file
/// from the partial file in `out`.
pub async fn pull(
    session: &mut Session,
    remote: &str,
    out: &Path,
    progress: ProgressFn<'_>,
) -> Result<Pulled, FilesError> {
    let base = remote.rsplit('/').next().unwrap_or_default();
    let rel = files::sanitise(base).map_err(|e| FilesError::Agent(FileFailure::BadName(e)))?;
    let name = rel.file_name().to_string();
    let req = Request::Files(FileRequest::Pull {
        path: remote.into(),
    });
    let (mut tx, mut rx, first) = session.open_stream(&req).await?;
    let (path, size, source) = match first {
        Response::Files(FileResponse::PullOffer { path, size, source }) => (path, size, source),
        Response::Files(FileResponse::Failed(f)) => return Err(FilesError::Agent(f)),
        other => return Err(unexpected_response(&other)),
    };
    let (o, n) = (out.to_path_buf(), name.clone());
    let mut part = blocking(move || Part::open(&o, &n, size, source)).await?;
    let mut report = |done: u64| {
        progress(&Progress {
            name: path.clone(),
            done_bytes: done,
            total_bytes: size,
        })
    };
    tx.send(&FileMsg::Start {
        offset: part.receiver.offset(),
    })
    .await
    .map_err(stream)?;
    if report(part.receiver.offset()).is_break() {
        part.discard();
        return Err(stopped(&mut tx).await);
    }
    let sha256 = loop {
        match rx.recv::<FileMsg>().await {
            Ok(FileMsg::Chunk { offset, data }) => {
                let (p, r) = tokio::task::spawn_blocking(move || {
                    let r = part.write(offset, &data.0);
                    (part, r)
                })
                .await
                .map_err(|e| FilesError::Stream(format!("file task failed: {e}")))?;
                part = p;
                if let Err(e) = r {
                    return Err(refuse(&mut tx, part, e).await);
                }
                if report(part.receiver.offset()).is_break() {
                    part.discard();
                    return Err(stopped(&mut tx).await);
                }
            }
            Ok(FileMsg::End { sha256 }) => break sha256,
            Ok(FileMsg::Failed(f)) => {
                part.discard();
                return Err(FilesError::Agent(f));
            }
            Ok(other) => {
                let f = FileFailure::Unexpected(format!("{other:?}"));
                return Err(refuse(&mut tx, part, PartError::Peer(f)).await);
            }
            // Cut: the partial file stays for a later pull.
            Err(e) => return Err(stream(e)),
        }
    };
    let saved = blocking(move || part.land(&sha256).map_err(PartError::into_files)).await;
    let saved_as = match saved {
        Ok(s) => s,
        Err(e) => {
            let f = match &e {
                FilesError::Peer(f) => f.clone(),
                other => FileFailure::Io(other.to_string()),
            };
            let _ = tx.send(&FileMsg::Failed(f)).await;
            return Err(e);
        }
    };
    let _ = tx
        .send(&FileMsg::Done {
            path: saved_as.display().to_string(),
        })
        .await;
    tx.finish_and_flush(STEP_TIMEOUT).await;
    let record = FileMoved {
        direction: FileDirection::Pull,
        path,
        size,
        sha256: files::hex(&sha256),
        at_unix: tether_net::clock::now_unix(),
    };
    session.post_facts(SessionFacts::File(record.clone())).await;
    Ok(Pulled { record, saved_as })
}

/// Tells the agent why this side refused the file, and drops the partial file.
async fn refuse(tx: &mut SealedSend, part: Part, e: PartError) -> FilesError {
    let f = match &e {
        PartError::Peer(f) => f.clone(),
        PartError::Local(_, io) if io.kind() == std::io::ErrorKind::StorageFull => {
            FileFailure::DiskFull
        }
        PartError::Local(p, io) => FileFailure::Io(format!("{}: {io}", p.display())),
    };
    let _ = tx.send(&FileMsg::Failed(f)).await;
    part.discard();
    e.into_files()
}

/// What went wrong with a partial file.
#[derive(Debug)]
enum PartError {
    /// The agent broke the rules.
    Peer(FileFailure),
    /// The local disk.
    Local(PathBuf, std::io::Error),
}

impl PartError {
    fn into_files(self) -> FilesError {
        match self {
            PartError::Peer(f) => FilesError::Peer(f),
            PartError::Local(path, source) => FilesError::Local { path, source },
        }
    }
}

/// A pulled file on its way in: a hidden partial file in the output folder, keyed by (name, size,
/// source), so a later pull of the same version of the file resumes it.
struct Part {
    file: File,
    path: PathBuf,
    dir: PathBuf,
    name: String,
    receiver: Receiver,
}

impl Part {
    fn open(dir: &Path, name: &str, size: u64, source: SourceId) -> Result<Part, FilesError> {
        std::fs::create_dir_all(dir).map_err(local(dir))?;
        let path = dir.join(files::partial_name(name, size, &source));
        if std::fs::symlink_metadata(&path).is_ok_and(|m| !m.is_file()) {
            return Err(FilesError::Symlink(path));
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(local(&path))?;
        let have = file.metadata().map_err(local(&path))?.len();
        let mut receiver = Receiver::new(size);
        if have > size {
            file.set_len(0).map_err(local(&path))?;
        } else {
            let mut buf = vec![0; CHUNK_LEN];
            let mut left = have;
            while left > 0 {
                let n = usize::try_from(left).unwrap_or(CHUNK_LEN).min(CHUNK_LEN);
                file.read_exact(&mut buf[..n]).map_err(local(&path))?;
                receiver.resume(&buf[..n]).map_err(FilesError::Peer)?;
                left -= n as u64;
            }
        }
        file.seek(SeekFrom::Start(receiver.offset()))
            .map_err(local(&path))?;
        Ok(Part {
            file,
            path,
            dir: dir.to_path_buf(),
            name: name.to_string(),
            receiver,
        })
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), PartError> {
        self.receiver.chunk(offset, data).map_err(PartError::Peer)?;
        self.file
            .write_all(data)
            .map_err(|e| PartError::Local(self.path.clone(), e))
    }

    /// Verifies the digest the agent gave at the end, then links the partial file to the first
    /// free name (a hard link never replaces anything) and removes the partial name.
    fn land(self, sha256: &Sha256Digest) -> Result<PathBuf, PartError> {
        let Part {
            file,
            path,
            dir,
            name,
            receiver,
        } = self;
        if let Err(f) = receiver.finish(sha256) {
            let _ = std::fs::remove_file(&path);
            return Err(PartError::Peer(f));
        }
        file.sync_all()
            .map_err(|e| PartError::Local(path.clone(), e))?;
        for n in 0..MAX_NUMBERED {
            let target = dir.join(files::numbered(&name, n));
            match std::fs::hard_link(&path, &target) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&path);
                    return Ok(target);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(PartError::Local(target, e)),
            }
        }
        Err(PartError::Peer(FileFailure::NoFreeName(name)))
    }

    fn discard(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pulled_file_never_replaces_one_and_a_bad_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), b"old").unwrap();
        let data = b"new contents";
        let mut h = Hasher::default();
        h.update(data);
        let d = h.finish();
        let mut p = Part::open(dir.path(), "a.txt", data.len() as u64, [1; 32]).unwrap();
        p.write(0, data).unwrap();
        let saved = p.land(&d).unwrap();
        assert_eq!(saved, dir.path().join("a (1).txt"));
        assert_eq!(std::fs::read(dir.path().join("a.txt")).unwrap(), b"old");
        assert_eq!(std::fs::read(&saved).unwrap(), data);
        // A wrong digest: nothing under any final name, no partial left.
        let mut p = Part::open(dir.path(), "b.txt", 3, [2; 32]).unwrap();
        p.write(0, b"abc").unwrap();
        assert!(matches!(
            p.land(&[0; 32]),
            Err(PartError::Peer(FileFailure::DigestMismatch))
        ));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_partial_pull_resumes_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut h = Hasher::default();
        h.update(&data);
        let d = h.finish();
        let mut p = Part::open(dir.path(), "c.bin", 1000, [3; 32]).unwrap();
        p.write(0, &data[..400]).unwrap();
        drop(p);
        // Another version of the file (another source) does not continue this partial.
        let other = Part::open(dir.path(), "c.bin", 1000, [4; 32]).unwrap();
        assert_eq!(other.receiver.offset(), 0);
        other.discard();
        let mut p = Part::open(dir.path(), "c.bin", 1000, [3; 32]).unwrap();
        assert_eq!(p.receiver.offset(), 400);
        p.write(400, &data[400..]).unwrap();
        assert_eq!(std::fs::read(p.land(&d).unwrap()).unwrap(), data);
    }
}
