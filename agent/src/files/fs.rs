//! The file system side of transfers, synchronous (callers run it off the async workers): every
//! path below a root or the landing folder is opened one component at a time with `O_NOFOLLOW`,
//! so a symbolic link anywhere on the way is refused, never followed; a pushed file is written to
//! a hidden partial file and renamed into place with `RENAME_NOREPLACE` only after its digest
//! matched, so nothing ever replaces an existing file and no partial file carries the final name.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;
use tether_proto::files::{
    self, CHUNK_LEN, DirEntry, EntryKind, FileFailure, MAX_LIST_ENTRIES, MAX_NUMBERED, Receiver,
    RelPath, Sha256Digest,
};

/// Maps an OS error on `what` to the failure both sides see.
pub(crate) fn failure(e: std::io::Error, what: &str) -> FileFailure {
    match Errno::from_io_error(&e) {
        Some(Errno::NOSPC | Errno::DQUOT) => FileFailure::DiskFull,
        Some(Errno::ACCESS | Errno::PERM | Errno::ROFS) => {
            FileFailure::PermissionDenied(what.to_string())
        }
        Some(Errno::LOOP) => FileFailure::Symlink(what.to_string()),
        Some(Errno::NOENT | Errno::NOTDIR) => FileFailure::NotFound(what.to_string()),
        _ => FileFailure::Io(format!("{what}: {e}")),
    }
}

fn errno(e: Errno, what: &str) -> FileFailure {
    failure(e.into(), what)
}

/// Opens a directory the user configured (a root or the landing folder); links in its own path
/// are the user's choice and followed.
fn open_configured(dir: &Path) -> Result<OwnedFd, FileFailure> {
    rustix::fs::open(
        dir,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| errno(e, &dir.display().to_string()))
}

/// Opens `name` inside `dir` as a directory, never through a symbolic link; with `create`, makes
/// it first if it is missing.
fn open_child_dir(
    dir: &OwnedFd,
    name: &OsStr,
    create: bool,
    shown: &str,
) -> Result<OwnedFd, FileFailure> {
    let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC;
    match rustix::fs::openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => Ok(fd),
        Err(Errno::NOENT) if create => {
            match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(errno(e, shown)),
            }
            rustix::fs::openat(dir, name, flags, Mode::empty())
                .map_err(|e| dir_failure(dir, name, e, shown))
        }
        Err(e) => Err(dir_failure(dir, name, e, shown)),
    }
}

/// `ENOTDIR` for a component opened with `O_DIRECTORY | O_NOFOLLOW` may be a link to a
/// directory as well as a file; both are refused, the link in words of its own.
fn dir_failure(dir: &OwnedFd, name: &OsStr, e: Errno, shown: &str) -> FileFailure {
    let link = e == Errno::LOOP
        || (e == Errno::NOTDIR
            && rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink));
    if link {
        return FileFailure::Symlink(shown.to_string());
    }
    errno(e, shown)
}

/// A file opened with `O_NOFOLLOW` fails with `ELOOP` on a link.
fn link_or(e: Errno, shown: &str) -> FileFailure {
    match e {
        Errno::LOOP => FileFailure::Symlink(shown.to_string()),
        e => errno(e, shown),
    }
}

/// The folders the user shares for pulling and listing.
#[derive(Debug, Clone)]
pub(crate) struct Roots<'a>(pub &'a [PathBuf]);

impl Roots<'_> {
    /// Splits an absolute `path` from the console into the root it lies in and the parts below.
    /// `..` and anything outside every root is refused.
    fn locate<'p>(&self, path: &'p str) -> Result<(&Path, Vec<&'p OsStr>), FileFailure> {
        let p = Path::new(path);
        if !p.is_absolute() {
            return Err(FileFailure::Outside(path.to_string()));
        }
        if p.components().any(|c| c == Component::ParentDir) || path.contains('\0') {
            return Err(files::NameError::ParentDir.into());
        }
        let root = self
            .0
            .iter()
            .filter(|r| p.starts_with(r))
            .max_by_key(|r| r.components().count())
            .ok_or_else(|| FileFailure::Outside(path.to_string()))?;
        let rest = p
            .strip_prefix(root)
            .map_err(|_| FileFailure::Outside(path.to_string()))?
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect();
        Ok((root, rest))
    }

    /// Opens the folder `path` (inside a root), every part below the root without following links.
    fn open_dir(&self, path: &str) -> Result<OwnedFd, FileFailure> {
        let (root, parts) = self.locate(path)?;
        let mut fd = open_configured(root)?;
        for part in parts {
            fd = open_child_dir(&fd, part, false, path)?;
        }
        Ok(fd)
    }

    /// Lists the folder `path`; an empty path lists the roots.
    pub(crate) fn list(&self, path: &str) -> Result<(Vec<DirEntry>, u64), FileFailure> {
        if path.is_empty() {
            let entries = self
                .0
                .iter()
                .map(|r| DirEntry {
                    name: r.display().to_string(),
                    kind: EntryKind::Dir,
                    size: 0,
                    modified_unix: 0,
                })
                .collect();
            return Ok((entries, 0));
        }
        let fd = self.open_dir(path)?;
        let dir = rustix::fs::Dir::read_from(&fd).map_err(|e| errno(e, path))?;
        let mut entries = Vec::new();
        let mut left_out = 0u64;
        for entry in dir {
            let entry = entry.map_err(|e| errno(e, path))?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            if entries.len() >= MAX_LIST_ENTRIES {
                left_out += 1;
                continue;
            }
            // Never follows the entry: a link is listed as a link.
            let Ok(st) = rustix::fs::statat(&fd, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW)
            else {
                continue;
            };
            let kind = match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => EntryKind::File,
                FileType::Directory => EntryKind::Dir,
                FileType::Symlink => EntryKind::Symlink,
                _ => EntryKind::Other,
            };
            entries.push(DirEntry {
                name: String::from_utf8_lossy(name).into_owned(),
                kind,
                size: u64::try_from(st.st_size).unwrap_or(0),
                modified_unix: st.st_mtime,
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((entries, left_out))
    }

    /// Opens the regular file `path` (inside a root) for reading, without following links.
    pub(crate) fn open_file(&self, path: &str) -> Result<Outgoing, FileFailure> {
        let (root, mut parts) = self.locate(path)?;
        let name = parts
            .pop()
            .ok_or_else(|| FileFailure::NotAFile(path.to_string()))?;
        let mut fd = open_configured(root)?;
        for part in parts {
            fd = open_child_dir(&fd, part, false, path)?;
        }
        let file = rustix::fs::openat(
            &fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )
        .map_err(|e| link_or(e, path))?;
        let stamp = Stamp::of(&file).map_err(|e| errno(e, path))?;
        if !stamp.regular {
            return Err(FileFailure::NotAFile(path.to_string()));
        }
        Ok(Outgoing {
            file: File::from(file),
            stamp,
            path: path.to_string(),
            hasher: files::Hasher::default(),
            hashed: 0,
        })
    }
}

/// What is checked before and after a file is read: a change means it was written meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub size: u64,
    mtime: (i64, i64),
    inode: (u64, u64),
    regular: bool,
}

impl Stamp {
    fn of(fd: impl AsFd) -> Result<Stamp, Errno> {
        let st = rustix::fs::fstat(fd)?;
        Ok(Stamp {
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime: (st.st_mtime, st.st_mtime_nsec as i64),
            inode: (st.st_dev, st.st_ino),
            regular: FileType::from_raw_mode(st.st_mode) == FileType::RegularFile,
        })
    }
}

/// A file being pulled.
#[derive(Debug)]
pub(crate) struct Outgoing {
    file: File,
    pub stamp: Stamp,
    path: String,
    hasher: files::Hasher,
    /// Bytes from the start that went through `hasher`.
    hashed: u64,
}

impl Outgoing {
    /// Which version of the file this is, for the console's resumable partial file.
    pub(crate) fn source(&self) -> files::SourceId {
        files::source_id(&files::SourceStamp {
            path: self.path.as_bytes(),
            size: self.stamp.size,
            mtime: self.stamp.mtime,
            inode: self.stamp.inode,
        })
    }

    /// Hashes the file up to `offset` (the part the console already holds), so the digest at the
    /// end covers the whole file; a no-op when that much is hashed.
    pub(crate) fn hash_to(&mut self, offset: u64) -> Result<(), FileFailure> {
        while self.hashed < offset.min(self.stamp.size) {
            self.read_at(self.hashed)?;
        }
        Ok(())
    }

    /// The whole file's SHA-256, once every byte was read (and hashed) in order.
    pub(crate) fn digest(&self) -> Option<Sha256Digest> {
        (self.hashed == self.stamp.size).then(|| self.hasher.clone().finish())
    }

    /// Reads the chunk at `offset` (at most [`CHUNK_LEN`] bytes; empty at the end), hashing it
    /// when it is the next unhashed one (a chunk read again is not hashed twice).
    pub(crate) fn read_at(&mut self, offset: u64) -> Result<Vec<u8>, FileFailure> {
        let left = self.stamp.size.saturating_sub(offset);
        let len = usize::try_from(left).unwrap_or(CHUNK_LEN).min(CHUNK_LEN);
        let mut buf = vec![0; len];
        self.file
            .seek(SeekFrom::Start(offset))
            .map_err(|e| failure(e, &self.path))?;
        self.file
            .read_exact(&mut buf)
            .map_err(|_| FileFailure::Changed(self.path.clone()))?;
        if offset == self.hashed {
            // proto's hasher: compiled optimised even in debug builds (the root Cargo.toml).
            self.hasher.update(&buf);
            self.hashed += buf.len() as u64;
        }
        Ok(buf)
    }

    /// Fails as [`FileFailure::Changed`] when the size or modification time moved.
    pub(crate) fn unchanged(&self) -> Result<(), FileFailure> {
        match Stamp::of(&self.file) {
            Ok(now) if now == self.stamp => Ok(()),
            Ok(_) => Err(FileFailure::Changed(self.path.clone())),
            Err(e) => Err(errno(e, &self.path)),
        }
    }
}

/// A pushed file on its way in: the folder it lands in, its partial file and the checker.
#[derive(Debug)]
pub(crate) struct Incoming {
    dir: OwnedFd,
    /// The folder, for messages and the final path.
    dir_path: PathBuf,
    part: String,
    file: File,
    pub receiver: Receiver,
    name: String,
}

/// Prepares a push of `rel` into `landing`: makes the folders below it (never through a link),
/// opens or resumes the partial file for (name, size, source) and hashes what it already holds.
pub(crate) fn prepare_push(
    landing: &Path,
    rel: &RelPath,
    size: u64,
    source: files::SourceId,
) -> Result<Incoming, FileFailure> {
    std::fs::create_dir_all(landing).map_err(|e| failure(e, &landing.display().to_string()))?;
    let mut dir = open_configured(landing)?;
    let mut dir_path = landing.to_path_buf();
    for part in rel.dirs() {
        dir_path.push(part);
        dir = open_child_dir(
            &dir,
            OsStr::new(part),
            true,
            &dir_path.display().to_string(),
        )?;
    }
    let name = rel.file_name().to_string();
    let part = files::partial_name(&name, size, &source);
    let fd = rustix::fs::openat(
        &dir,
        part.as_str(),
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| link_or(e, &dir_path.join(&part).display().to_string()))?;
    let mut file = File::from(fd);
    let shown = dir_path.join(&name).display().to_string();
    let have = file.metadata().map_err(|e| failure(e, &shown))?.len();
    let mut receiver = Receiver::new(size);
    if have > size {
        file.set_len(0).map_err(|e| failure(e, &shown))?;
    } else if have > 0 {
        // What an earlier session left: hashed again, so the digest covers the whole file.
        let mut buf = vec![0; CHUNK_LEN];
        let mut left = have;
        while left > 0 {
            let n = usize::try_from(left).unwrap_or(CHUNK_LEN).min(CHUNK_LEN);
            file.read_exact(&mut buf[..n])
                .map_err(|e| failure(e, &shown))?;
            receiver.resume(&buf[..n])?;
            left -= n as u64;
        }
    }
    file.seek(SeekFrom::Start(receiver.offset()))
        .map_err(|e| failure(e, &shown))?;
    Ok(Incoming {
        dir,
        dir_path,
        part,
        file,
        receiver,
        name,
    })
}

impl Incoming {
    /// Checks and writes one chunk.
    pub(crate) fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), FileFailure> {
        self.receiver.chunk(offset, data)?;
        self.file
            .write_all(data)
            .map_err(|e| failure(e, &self.shown()))
    }

    fn shown(&self) -> String {
        self.dir_path.join(&self.name).display().to_string()
    }

    /// Bytes the partial file holds.
    pub(crate) fn offset(&self) -> u64 {
        self.receiver.offset()
    }

    /// The sender is done and says the file's digest is `sha256`: checks it, syncs, and renames
    /// the partial file to the first free name (`report.txt`, `report (1).txt`, …) without
    /// replacing anything. Returns the path.
    pub(crate) fn land(self, sha256: &Sha256Digest) -> Result<PathBuf, FileFailure> {
        let Incoming {
            dir,
            dir_path,
            part,
            file,
            receiver,
            name,
        } = self;
        let done = receiver.finish(sha256).and_then(|_| {
            file.sync_all()
                .map_err(|e| failure(e, &dir_path.join(&name).display().to_string()))
        });
        if let Err(e) = done {
            let _ = rustix::fs::unlinkat(&dir, part.as_str(), AtFlags::empty());
            return Err(e);
        }
        for n in 0..MAX_NUMBERED {
            let candidate = files::numbered(&name, n);
            match rustix::fs::renameat_with(
                &dir,
                part.as_str(),
                &dir,
                candidate.as_str(),
                RenameFlags::NOREPLACE,
            ) {
                Ok(()) => return Ok(dir_path.join(candidate)),
                Err(Errno::EXIST) => continue,
                Err(e) => {
                    let _ = rustix::fs::unlinkat(&dir, part.as_str(), AtFlags::empty());
                    return Err(errno(e, &dir_path.join(&candidate).display().to_string()));
                }
            }
        }
        let _ = rustix::fs::unlinkat(&dir, part.as_str(), AtFlags::empty());
        Err(FileFailure::NoFreeName(name))
    }

    /// The transfer failed for good (not merely cut): the partial file goes.
    pub(crate) fn discard(self) {
        let _ = rustix::fs::unlinkat(&self.dir, self.part.as_str(), AtFlags::empty());
    }
}
