//! File transfer: list a folder, push a file to the user's machine, pull one from it. Pure: the
//! messages, the receiver's checker and the name rules; the agent and the console do the I/O.
//!
//! # Message flow
//! Every transfer has its own request stream (`StreamOpen{n}`, then sealed frames), so a large file
//! never waits behind input or the screen, nor they behind it. Each [`FileRequest`] needs
//! [`crate::Scope::Files`].
//!
//! - **List**: `Request::Files(List{dir})` → `Response::Files(Listing{..})`. An empty `dir` lists
//!   the folders the user shares (the roots).
//! - **Push** (console → agent): `Push{name, size, source}` → `PushReady{offset}`: the agent keeps
//!   a partial file keyed by (name, size, source), so a push cut in an earlier session resumes at
//!   `offset` (what the agent already has and has hashed). The console sends
//!   [`FileMsg::Chunk`]s from `offset` on, in order, then [`FileMsg::End`] with the whole file's
//!   SHA-256, which it computed while reading (no pass over the file before the first byte
//!   moves); the agent checks it, moves the file into place and answers [`FileMsg::Done`] with the
//!   path it landed at, or [`FileMsg::Failed`].
//! - **Pull** (agent → console): `Pull{path}` → `PullOffer{path, size, source}`; the console
//!   answers [`FileMsg::Start`] with the offset its own partial file holds; the agent sends the
//!   chunks and [`FileMsg::End`] with the digest; the console verifies and answers
//!   [`FileMsg::Done`] or [`FileMsg::Failed`], so the user's side learns how it ended.
//!
//! The `source` ([`source_id`]) names one version of the sender's file (its size, modification
//! time and identity on disk), so a resume only continues a partial file of the same version. It
//! is a key, not a proof: the digest at the end covers every byte, including those kept from an
//! earlier session, and a mismatch discards the partial file.
//!
//! Either side may send [`FileMsg::Failed`] at any time (cancelled, scope revoked, disk full) and
//! then stops; a peer that breaks the rules ([`Receiver`] finds chunks out of order, past the
//! announced size, a wrong digest, a resume offset past the end) gets a typed [`FileFailure`] and
//! the transfer ends, while the session goes on.
//!
//! Names from the other side go through [`sanitise`] before they touch a file system.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Bytes in one [`FileMsg::Chunk`]: far below [`crate::codec::MAX_FRAME_LEN`] with the framing
/// and seal around it, large enough that per-frame costs vanish next to hashing and sealing.
pub const CHUNK_LEN: usize = 256 * 1024;

/// The longest file or folder name (one path component), in bytes, as Linux allows.
pub const MAX_NAME_BYTES: usize = 255;

/// The longest relative path a push may name, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;

/// The deepest folder nesting a push may create.
pub const MAX_DEPTH: usize = 32;

/// The most entries one listing returns (the rest are counted in [`FileResponse::Listing`]).
pub const MAX_LIST_ENTRIES: usize = 10_000;

/// How many numbered names (`report (1).txt`, …) are tried before a push fails as
/// [`FileFailure::NoFreeName`].
pub const MAX_NUMBERED: u32 = 1000;

/// A SHA-256 digest.
pub type Sha256Digest = [u8; 32];

/// One version of a file on the sender's side ([`source_id`]).
pub type SourceId = [u8; 32];

/// What a sender knows of a file without reading it: where it is, how large, when it was last
/// written and which inode it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceStamp<'a> {
    /// Its path on the sender's machine (only hashed, never sent).
    pub path: &'a [u8],
    /// Size in bytes.
    pub size: u64,
    /// Modification time: seconds and nanoseconds.
    pub mtime: (i64, i64),
    /// Device and inode.
    pub inode: (u64, u64),
}

/// The key of one version of a file: a rewritten, replaced or resized file gets another one, so a
/// resume never continues a partial file of an older version (and if one slipped through, the
/// digest at [`FileMsg::End`] would refuse the result).
pub fn source_id(stamp: &SourceStamp<'_>) -> SourceId {
    let mut h = Sha256::new();
    h.update(b"tether file source v1\0");
    h.update((stamp.path.len() as u64).to_be_bytes());
    h.update(stamp.path);
    h.update(stamp.size.to_be_bytes());
    h.update(stamp.mtime.0.to_be_bytes());
    h.update(stamp.mtime.1.to_be_bytes());
    h.update(stamp.inode.0.to_be_bytes());
    h.update(stamp.inode.1.to_be_bytes());
    h.finalize().into()
}

/// Chunk payload: serialised as one byte string (not byte by byte, as a `Vec<u8>` would be).
#[derive(Clone, PartialEq, Eq, Default)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Bytes(pub Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bytes({} bytes)", self.0.len())
    }
}

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

/// A file request (the console's), inside `Request::Files`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum FileRequest {
    /// List a folder on the user's machine (an absolute path inside a shared root; empty: the
    /// roots themselves).
    List {
        /// The folder.
        dir: String,
    },
    /// Send a file to the user's machine; it lands in the agent's landing folder, under `name`
    /// (a relative path, checked by [`sanitise`]).
    Push {
        /// Relative path inside the landing folder, e.g. `logs/report.txt`.
        name: String,
        /// Its size in bytes.
        size: u64,
        /// Which version of the file this is ([`source_id`]): the key of a resumable partial.
        source: SourceId,
    },
    /// Fetch a file from the user's machine (an absolute path inside a shared root).
    Pull {
        /// The file.
        path: String,
    },
}

/// What kind of thing a listed entry is. Symbolic links are listed but never followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A folder.
    Dir,
    /// A symbolic link (not followed: neither listed into nor pulled).
    Symlink,
    /// Anything else (device, socket, pipe).
    Other,
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DirEntry {
    /// The name (lossily made UTF-8; show it through [`crate::text::display_safe`]).
    pub name: String,
    /// What it is.
    pub kind: EntryKind,
    /// Size in bytes (files).
    pub size: u64,
    /// Last modification, Unix seconds.
    pub modified_unix: i64,
}

/// The agent's first answer on a file stream, inside `Response::Files`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum FileResponse {
    /// The folder's entries, sorted by name.
    Listing {
        /// The folder listed (for the roots: empty).
        dir: String,
        /// Its entries, at most [`MAX_LIST_ENTRIES`].
        entries: Vec<DirEntry>,
        /// Entries left out beyond [`MAX_LIST_ENTRIES`].
        left_out: u64,
    },
    /// Push accepted: send from `offset` (a partial file from an earlier session holds the rest).
    PushReady {
        /// Where to start.
        offset: u64,
    },
    /// Pull accepted: the file is this large; answer [`FileMsg::Start`].
    PullOffer {
        /// The file's path on the user's machine.
        path: String,
        /// Its size.
        size: u64,
        /// Which version of the file this is ([`source_id`]): the key of a resumable partial.
        source: SourceId,
    },
    /// The request failed before any data moved.
    Failed(FileFailure),
}

/// The messages on a file stream after the request and its answer, both ways.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum FileMsg {
    /// Receiver → sender (pull: console → agent): send from this offset.
    Start {
        /// Bytes the receiver already has.
        offset: u64,
    },
    /// Sender → receiver: the bytes at `offset`, at most [`CHUNK_LEN`].
    Chunk {
        /// Where they go.
        offset: u64,
        /// The bytes.
        data: Bytes,
    },
    /// Sender → receiver: every chunk was sent; the whole file (from byte 0, also the part sent
    /// in an earlier session) has this SHA-256.
    End {
        /// The file's SHA-256, as the sender read it.
        sha256: Sha256Digest,
    },
    /// Receiver → sender: the digest matched and the file is in place.
    Done {
        /// Where it landed (push: on the user's machine).
        path: String,
    },
    /// Either side: the transfer failed or was stopped; nothing more follows.
    Failed(FileFailure),
}

/// Who stopped a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum StoppedBy {
    /// The user at the shared computer.
    User,
    /// The technician.
    Technician,
}

/// Why a transfer failed, as both sides see it. Each one leaves no file under the final name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum FileFailure {
    /// A chunk did not start where the previous one ended (the peer misbehaved).
    #[error("chunk out of order: expected offset {expected}, got {got}")]
    OutOfOrder {
        /// The next offset the receiver expected.
        expected: u64,
        /// The offset that came.
        got: u64,
    },
    /// A chunk went past the size announced for the file (the peer misbehaved).
    #[error("chunk past the announced size of {size} bytes (it ends at {end})")]
    PastEnd {
        /// The announced size.
        size: u64,
        /// Where the chunk ended.
        end: u64,
    },
    /// A chunk was larger than [`CHUNK_LEN`] (the peer misbehaved).
    #[error("chunk of {0} bytes is larger than the limit of {CHUNK_LEN}")]
    ChunkTooLarge(u64),
    /// The sender said it was done before the announced size arrived.
    #[error("the file ended after {got} of {size} bytes")]
    Short {
        /// Bytes received.
        got: u64,
        /// The announced size.
        size: u64,
    },
    /// The whole file's SHA-256 is not the one announced.
    #[error("SHA-256 mismatch: the file is not the one announced, and was discarded")]
    DigestMismatch,
    /// The receiver asked to resume past the end of the file.
    #[error("resume offset {offset} is past the end of the file ({size} bytes)")]
    ResumePastEnd {
        /// The offset asked for.
        offset: u64,
        /// The file's size.
        size: u64,
    },
    /// The peer sent a message that has no place at this point of the transfer.
    #[error("unexpected message on a file stream: {0}")]
    Unexpected(String),
    /// A name was refused (see [`sanitise`]).
    #[error("refused name: {0}")]
    BadName(#[from] NameError),
    /// The path is outside the folders the user shares.
    #[error("{0} is outside the folders the user shares")]
    Outside(String),
    /// A symbolic link was on the way (never followed).
    #[error("{0} is or goes through a symbolic link, which Tether never follows")]
    Symlink(String),
    /// No such file or folder.
    #[error("{0} does not exist")]
    NotFound(String),
    /// Not a regular file (a folder, a device, …).
    #[error("{0} is not a regular file")]
    NotAFile(String),
    /// The receiving disk is full.
    #[error("the disk is full on the receiving side")]
    DiskFull,
    /// The operating system refused access.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The file changed (size or modification time) while it was being read.
    #[error("{0} changed while it was being sent; try again")]
    Changed(String),
    /// Every numbered name was taken.
    #[error("no free name for {0} in the landing folder")]
    NoFreeName(String),
    /// Stopped on purpose.
    #[error("{}", match .0 { StoppedBy::User => "the user stopped the transfer", StoppedBy::Technician => "the technician stopped the transfer" })]
    Cancelled(StoppedBy),
    /// The user took back the `files` scope during the transfer.
    #[error("the user took back file transfer")]
    Revoked,
    /// Any other input/output failure, in words.
    #[error("{0}")]
    Io(String),
}

/// Checks a chunk offset a sender was asked to resume from (the receiver's word is not trusted).
pub fn check_resume(offset: u64, size: u64) -> Result<(), FileFailure> {
    if offset > size {
        return Err(FileFailure::ResumePastEnd { offset, size });
    }
    Ok(())
}

/// The receiving side's checker: every chunk in order, none past the announced size, and the
/// whole file's SHA-256 equal to the one the sender gives at the end. The bytes a partial file already holds are fed
/// through [`Receiver::resume`] first, so the digest covers the whole file.
#[derive(Clone)]
pub struct Receiver {
    size: u64,
    next: u64,
    hasher: Sha256,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("size", &self.size)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// A receiver for a file of `size` bytes.
    pub fn new(size: u64) -> Self {
        Receiver {
            size,
            next: 0,
            hasher: Sha256::new(),
        }
    }

    /// Bytes from a partial file of an earlier session, in order from its start. Fails when the
    /// partial is longer than the file (it then cannot be this file's start).
    pub fn resume(&mut self, data: &[u8]) -> Result<(), FileFailure> {
        let end = self.end_of(data.len())?;
        self.hasher.update(data);
        self.next = end;
        Ok(())
    }

    /// A chunk from the sender: in order, within the size, at most [`CHUNK_LEN`].
    pub fn chunk(&mut self, offset: u64, data: &[u8]) -> Result<(), FileFailure> {
        if data.len() > CHUNK_LEN {
            return Err(FileFailure::ChunkTooLarge(data.len() as u64));
        }
        if offset != self.next {
            return Err(FileFailure::OutOfOrder {
                expected: self.next,
                got: offset,
            });
        }
        let end = self.end_of(data.len())?;
        self.hasher.update(data);
        self.next = end;
        Ok(())
    }

    fn end_of(&self, len: usize) -> Result<u64, FileFailure> {
        let end = self.next.saturating_add(len as u64);
        if end > self.size {
            return Err(FileFailure::PastEnd {
                size: self.size,
                end,
            });
        }
        Ok(end)
    }

    /// Bytes received (and hashed) so far: where the sender is asked to start.
    pub fn offset(&self) -> u64 {
        self.next
    }

    /// The announced size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The sender said it is done and that the file's digest is `expected`: the whole file must
    /// have come, with that digest.
    pub fn finish(self, expected: &Sha256Digest) -> Result<Sha256Digest, FileFailure> {
        if self.next != self.size {
            return Err(FileFailure::Short {
                got: self.next,
                size: self.size,
            });
        }
        let got: Sha256Digest = self.hasher.finalize().into();
        if got != *expected {
            return Err(FileFailure::DigestMismatch);
        }
        Ok(got)
    }
}

/// Why a name from the other side was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum NameError {
    /// Nothing left once `.` and empty parts are dropped.
    #[error("the name is empty")]
    Empty,
    /// An absolute path (`/etc/shadow`): names are relative to the landing folder.
    #[error("absolute paths are not allowed (names are relative to the landing folder)")]
    Absolute,
    /// A `..` part, which would climb out of the folder.
    #[error("\"..\" is not allowed in a name")]
    ParentDir,
    /// A NUL, newline or other control character.
    #[error("control characters (NUL, newline, …) are not allowed in a name")]
    Control,
    /// One part longer than [`MAX_NAME_BYTES`].
    #[error("a name part of {0} bytes is longer than {MAX_NAME_BYTES}")]
    PartTooLong(u64),
    /// The whole path longer than [`MAX_PATH_BYTES`].
    #[error("a path of {0} bytes is longer than {MAX_PATH_BYTES}")]
    TooLong(u64),
    /// Nested deeper than [`MAX_DEPTH`] folders.
    #[error("nested deeper than {MAX_DEPTH} folders")]
    TooDeep,
}

/// A relative path that passed [`sanitise`]: plain parts, none `.`, `..` or empty, no control
/// characters, each at most [`MAX_NAME_BYTES`]; the last is the file's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelPath(Vec<String>);

impl RelPath {
    /// The parts, folders first, the file's name last (never empty).
    pub fn parts(&self) -> &[String] {
        &self.0
    }

    /// The folders above the file.
    pub fn dirs(&self) -> &[String] {
        &self.0[..self.0.len() - 1]
    }

    /// The file's own name.
    pub fn file_name(&self) -> &str {
        // Invariant: `sanitise` never builds an empty RelPath.
        self.0.last().map_or("", String::as_str)
    }
}

impl std::fmt::Display for RelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("/"))
    }
}

/// Checks a relative path from the other side: `..`, absolute paths, NUL and other control
/// characters, over-long parts or paths and deep nesting are refused (with the reason); `.` and
/// empty parts (`a//b`, `./a`) are dropped. What passes can only name something inside the folder
/// it is joined to (symbolic links are the file system's matter: the agent never follows them).
pub fn sanitise(name: &str) -> Result<RelPath, NameError> {
    if name.len() > MAX_PATH_BYTES {
        return Err(NameError::TooLong(name.len() as u64));
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    if name.starts_with('/') {
        return Err(NameError::Absolute);
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(NameError::ParentDir),
            p if p.len() > MAX_NAME_BYTES => return Err(NameError::PartTooLong(p.len() as u64)),
            p => parts.push(p.to_string()),
        }
    }
    if parts.is_empty() {
        return Err(NameError::Empty);
    }
    if parts.len() > MAX_DEPTH + 1 {
        return Err(NameError::TooDeep);
    }
    Ok(RelPath(parts))
}

/// The `n`th name tried for `name` when it is taken: `report.txt`, `report (1).txt`,
/// `report (2).txt`, …; shortened (at a character boundary) to stay within [`MAX_NAME_BYTES`].
pub fn numbered(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_string();
    }
    // A leading dot is a hidden file's name, not an extension.
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => name.split_at(i),
        _ => (name, ""),
    };
    let tag = format!(" ({n})");
    let room = MAX_NAME_BYTES.saturating_sub(tag.len() + ext.len());
    let mut cut = stem.len().min(room);
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{tag}{ext}", &stem[..cut])
}

/// The name of the partial file kept for (`name`, `size`, `source`) while it arrives: hidden, and
/// the same in a later session for the same file, so a cut transfer resumes. Fixed length, so a
/// long name still fits.
pub fn partial_name(name: &str, size: u64, source: &SourceId) -> String {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0]);
    h.update(size.to_be_bytes());
    h.update(source);
    let key: Sha256Digest = h.finalize().into();
    let hex: String = key[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!(".tether-{hex}.part")
}

/// SHA-256 of a file fed in pieces (for the sender's announcement).
#[derive(Clone, Default)]
pub struct Hasher(Sha256);

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hasher")
    }
}

impl Hasher {
    /// Adds the next bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The digest of everything added.
    pub fn finish(self) -> Sha256Digest {
        self.0.finalize().into()
    }
}

/// Lower-case hex of a digest.
pub fn hex(d: &Sha256Digest) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::tests::round_trip;
    use proptest::prelude::*;

    fn digest(data: &[u8]) -> Sha256Digest {
        Sha256::digest(data).into()
    }

    #[test]
    fn a_whole_file_in_order_passes() {
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut r = Receiver::new(1000);
        for (i, c) in data.chunks(300).enumerate() {
            r.chunk(i as u64 * 300, c).unwrap();
        }
        assert_eq!(r.finish(&digest(&data)).unwrap(), digest(&data));
    }

    #[test]
    fn a_chunk_out_of_order_is_refused() {
        let mut r = Receiver::new(10);
        r.chunk(0, &[0; 4]).unwrap();
        assert_eq!(
            r.chunk(5, &[0; 4]),
            Err(FileFailure::OutOfOrder {
                expected: 4,
                got: 5
            })
        );
        // A repeated chunk is out of order too.
        assert!(matches!(
            r.chunk(0, &[0; 4]),
            Err(FileFailure::OutOfOrder { .. })
        ));
    }

    #[test]
    fn a_chunk_past_the_size_is_refused() {
        let mut r = Receiver::new(10);
        r.chunk(0, &[0; 8]).unwrap();
        assert_eq!(
            r.chunk(8, &[0; 3]),
            Err(FileFailure::PastEnd { size: 10, end: 11 })
        );
    }

    #[test]
    fn an_oversized_chunk_is_refused() {
        let mut r = Receiver::new(u64::MAX);
        assert_eq!(
            r.chunk(0, &vec![0; CHUNK_LEN + 1]),
            Err(FileFailure::ChunkTooLarge(CHUNK_LEN as u64 + 1))
        );
    }

    #[test]
    fn a_wrong_digest_or_a_short_file_fails_at_the_end() {
        let mut r = Receiver::new(4);
        r.chunk(0, b"abce").unwrap();
        assert_eq!(r.finish(&digest(b"abcd")), Err(FileFailure::DigestMismatch));
        let mut r = Receiver::new(4);
        r.chunk(0, b"abc").unwrap();
        assert_eq!(
            r.finish(&digest(b"abcd")),
            Err(FileFailure::Short { got: 3, size: 4 })
        );
    }

    #[test]
    fn a_resumed_file_is_hashed_whole() {
        let data = b"hello, partial world";
        let mut r = Receiver::new(data.len() as u64);
        r.resume(&data[..7]).unwrap();
        assert_eq!(r.offset(), 7);
        r.chunk(7, &data[7..]).unwrap();
        r.finish(&digest(data)).unwrap();
        // A partial whose bytes differ from the file's start fails the digest.
        let mut r = Receiver::new(data.len() as u64);
        r.resume(b"HELLO, ").unwrap();
        r.chunk(7, &data[7..]).unwrap();
        assert_eq!(r.finish(&digest(data)), Err(FileFailure::DigestMismatch));
        // A partial longer than the file is not its start.
        let mut r = Receiver::new(3);
        assert!(matches!(
            r.resume(b"abcd"),
            Err(FileFailure::PastEnd { .. })
        ));
    }

    #[test]
    fn a_resume_offset_past_the_end_is_refused() {
        assert_eq!(check_resume(10, 10), Ok(()));
        assert_eq!(
            check_resume(11, 10),
            Err(FileFailure::ResumePastEnd {
                offset: 11,
                size: 10
            })
        );
    }

    #[test]
    fn hostile_names_are_refused_with_a_reason() {
        assert_eq!(sanitise("../../etc/passwd"), Err(NameError::ParentDir));
        assert_eq!(sanitise("/etc/shadow"), Err(NameError::Absolute));
        assert_eq!(sanitise("a/../../b"), Err(NameError::ParentDir));
        assert_eq!(sanitise("a\0b"), Err(NameError::Control));
        assert_eq!(sanitise("a\nb"), Err(NameError::Control));
        assert_eq!(
            sanitise(&"x".repeat(4000)),
            Err(NameError::PartTooLong(4000))
        );
        assert_eq!(sanitise(&"x".repeat(5000)), Err(NameError::TooLong(5000)));
        assert_eq!(sanitise(""), Err(NameError::Empty));
        assert_eq!(sanitise("./"), Err(NameError::Empty));
        assert_eq!(sanitise(&"a/".repeat(40)), Err(NameError::TooDeep));
    }

    #[test]
    fn plain_names_and_folders_pass() {
        let p = sanitise("logs/./2024//report.txt").unwrap();
        assert_eq!(p.parts(), ["logs", "2024", "report.txt"]);
        assert_eq!(p.dirs(), ["logs", "2024"]);
        assert_eq!(p.file_name(), "report.txt");
        assert_eq!(p.to_string(), "logs/2024/report.txt");
        // Dots inside a name are fine; only a whole ".." part climbs.
        assert_eq!(sanitise("..hidden").unwrap().file_name(), "..hidden");
        assert_eq!(sanitise("a...b").unwrap().file_name(), "a...b");
    }

    #[test]
    fn numbered_names_keep_the_extension_and_the_limit() {
        assert_eq!(numbered("report.txt", 0), "report.txt");
        assert_eq!(numbered("report.txt", 1), "report (1).txt");
        assert_eq!(numbered("archive", 12), "archive (12)");
        assert_eq!(numbered(".bashrc", 2), ".bashrc (2)");
        let long = "é".repeat(127) + ".txt";
        let n = numbered(&long, 999);
        assert!(n.len() <= MAX_NAME_BYTES, "{}", n.len());
        assert!(n.ends_with(" (999).txt"));
    }

    #[test]
    fn a_source_is_one_version_of_one_file() {
        let stamp = SourceStamp {
            path: b"/home/t/fix.sh",
            size: 10,
            mtime: (1_700_000_000, 5),
            inode: (2049, 77),
        };
        let id = source_id(&stamp);
        assert_eq!(id, source_id(&stamp));
        for other in [
            SourceStamp {
                path: b"/home/t/fix.sh2",
                ..stamp
            },
            SourceStamp { size: 11, ..stamp },
            SourceStamp {
                mtime: (1_700_000_000, 6),
                ..stamp
            },
            SourceStamp {
                inode: (2049, 78),
                ..stamp
            },
        ] {
            assert_ne!(id, source_id(&other), "{other:?}");
        }
    }

    #[test]
    fn partial_names_are_keyed_by_name_size_and_source() {
        let d = digest(b"x");
        let a = partial_name("a.txt", 1, &d);
        assert_eq!(a, partial_name("a.txt", 1, &d));
        assert_ne!(a, partial_name("b.txt", 1, &d));
        assert_ne!(a, partial_name("a.txt", 2, &d));
        assert_ne!(a, partial_name("a.txt", 1, &digest(b"y")));
        assert!(a.starts_with('.') && a.len() < MAX_NAME_BYTES);
    }

    fn any_name() -> impl Strategy<Value = String> {
        // Hostile pieces mixed with plain ones.
        let piece = prop_oneof![
            Just("..".to_string()),
            Just(".".to_string()),
            Just(String::new()),
            Just("/".to_string()),
            Just("\0".to_string()),
            Just("\n".to_string()),
            "[a-zA-Z0-9 ._-]{1,20}",
            any::<String>(),
        ];
        prop::collection::vec(piece, 0..12).prop_map(|v| v.join("/"))
    }

    proptest! {
        #[test] fn file_request(m: FileRequest) { round_trip(m)?; }
        #[test] fn file_response(m: FileResponse) { round_trip(m)?; }
        #[test] fn file_msg(m: FileMsg) { round_trip(m)?; }

        /// Whatever passes can only name a place inside the folder it is joined to.
        #[test]
        fn what_passes_stays_inside(name in any_name()) {
            if let Ok(p) = sanitise(&name) {
                prop_assert!(!p.parts().is_empty());
                prop_assert!(p.parts().len() <= MAX_DEPTH + 1);
                for part in p.parts() {
                    prop_assert!(!part.is_empty() && part != "." && part != "..");
                    prop_assert!(!part.contains('/') && !part.chars().any(char::is_control));
                    prop_assert!(part.len() <= MAX_NAME_BYTES);
                }
                let joined = std::path::Path::new("/landing").join(p.to_string());
                prop_assert!(joined.starts_with("/landing"));
                prop_assert!(joined.components().all(|c| !matches!(c, std::path::Component::ParentDir)));
            }
        }

        /// Chunks of any sizes, in order, pass; moving any one chunk fails.
        #[test]
        fn in_order_passes_reordered_fails(
            data in prop::collection::vec(any::<u8>(), 1..2000),
            cuts in prop::collection::vec(1usize..500, 1..10),
            swap in any::<prop::sample::Index>(),
        ) {
            let mut chunks = Vec::new();
            let mut at = 0;
            for c in cuts.iter().cycle() {
                if at >= data.len() { break; }
                let end = (at + c).min(data.len());
                chunks.push((at as u64, &data[at..end]));
                at = end;
            }
            let mut r = Receiver::new(data.len() as u64);
            for (o, c) in &chunks {
                r.chunk(*o, c).unwrap();
            }
            prop_assert_eq!(r.finish(&digest(&data)).unwrap(), digest(&data));
            if chunks.len() > 1 {
                let i = swap.index(chunks.len() - 1) + 1;
                chunks.swap(0, i);
                let mut r = Receiver::new(data.len() as u64);
                let failed = chunks.iter().any(|(o, c)| r.chunk(*o, c).is_err());
                prop_assert!(failed);
            }
        }

        /// A flipped byte anywhere fails the digest.
        #[test]
        fn a_flipped_byte_fails(data in prop::collection::vec(any::<u8>(), 1..2000), at: prop::sample::Index) {
            let mut bad = data.clone();
            let i = at.index(bad.len());
            bad[i] ^= 1;
            let mut r = Receiver::new(data.len() as u64);
            r.chunk(0, &bad).unwrap();
            prop_assert_eq!(r.finish(&digest(&data)), Err(FileFailure::DigestMismatch));
        }
    }
}
