//! File transfer (issue 19), end to end on the real relay, agent and console over QUIC on
//! loopback: a GiB each way with matching SHA-256; a push cut halfway and resumed in a new session
//! with little sent again; hostile names and symbolic links; a full disk on the receiving side; the
//! user stopping a transfer; nothing before the grant and nothing after `files` is taken back; and a
//! hostile console's bad chunks, digests and offsets, each a typed error with the session going on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tether_agent::ui::{AgentEvent, Transfer, TransferState, UserCommand};
use tether_agent::{FilesConfig, ShareConfig};
use tether_console::files::{self, FilesError, Progress};
use tether_console::{ConsoleError, Session, open_session};
use tether_net::framed;
use tether_net::sealed::{SealedRecv, SealedSend, SealedStream};
use tether_proto::files::{
    Bytes, FileFailure, FileMsg, FileRequest, FileResponse, Hasher, NameError, StoppedBy,
};
use tether_proto::msg::{AgentToConsole, Request, Response, StreamOpen};
use tether_proto::pairing::Side;
use tether_proto::seal::SessionKeys;
use tether_proto::{Scope, ScopeSet};
use tether_tests::proxy::UdpProxy;
use tether_tests::{RawClaim, RawConsole, TestAgent, TestRelay};

const MIB: u64 = 1024 * 1024;

/// How long a big transfer may take in a debug build on a loaded machine (not a speed check).
const BIG: Duration = Duration::from_secs(900);

fn files_only() -> ScopeSet {
    [Scope::Files].into_iter().collect()
}

/// A temporary tree: `home/` (the shared root, with `home/landing/` where pushes land) and
/// `src/` (the technician's files), under a parent that must stay untouched.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        Tree { dir }
    }
    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }
    fn landing(&self) -> PathBuf {
        self.home().join("landing")
    }
    fn src(&self) -> PathBuf {
        self.dir.path().join("src")
    }
    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }
    fn config(&self, relay: &TestRelay) -> ShareConfig {
        let mut c = ShareConfig::new(relay.target());
        c.files = FilesConfig {
            landing: self.landing(),
            roots: vec![self.home()],
        };
        c
    }
    /// Every file and link under the tree, relative to it.
    fn all(&self) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let t = e.file_type().unwrap();
                let rel = e.path().strip_prefix(base).unwrap().display().to_string();
                if t.is_dir() {
                    walk(base, &e.path(), out);
                } else {
                    out.push(rel);
                }
            }
        }
        let mut v = Vec::new();
        walk(self.dir.path(), self.dir.path(), &mut v);
        v.sort();
        v
    }
}

/// Writes `size` bytes of varied content (no two MiB alike) and returns the SHA-256 hex.
fn write_file(path: &Path, size: u64) -> String {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut block: Vec<u8> = (0..MIB).map(|i| (i * 31 % 251) as u8).collect();
    let mut h = Hasher::default();
    let mut left = size;
    let mut n = 0u64;
    while left > 0 {
        block[..8].copy_from_slice(&n.to_le_bytes());
        let len = left.min(MIB) as usize;
        f.write_all(&block[..len]).unwrap();
        h.update(&block[..len]);
        left -= len as u64;
        n += 1;
    }
    f.flush().unwrap();
    tether_proto::files::hex(&h.finish())
}

fn sha256_of(path: &Path) -> String {
    use std::io::Read;
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = Hasher::default();
    let mut buf = vec![0; MIB as usize];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    tether_proto::files::hex(&h.finish())
}

fn go_on(_: &Progress) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

async fn session(relay: &TestRelay, tree: &Tree, grant: ScopeSet) -> (TestAgent, Session) {
    let mut agent = TestAgent::spawn_with(tree.config(relay), Some(grant));
    let code = agent.code().await;
    let s = open_session(&relay.console(), code, files_only())
        .await
        .expect("session opens");
    (agent, s)
}

/// Waits for the agent's next transfer event matching `pred`.
async fn transfer(agent: &mut TestAgent, what: &str, pred: impl Fn(&Transfer) -> bool) -> Transfer {
    match agent
        .expect(what, |e| matches!(e, AgentEvent::Transfer(t) if pred(t)))
        .await
    {
        AgentEvent::Transfer(t) => t,
        _ => unreachable!(),
    }
}

fn started(t: &Transfer) -> bool {
    matches!(t.state, TransferState::Started { .. })
}

fn finished(t: &Transfer) -> bool {
    matches!(
        t.state,
        TransferState::Done { .. } | TransferState::Failed { .. }
    )
}

/// Runs `fut` while reading the agent's events (its front-end queue is bounded), until the
/// transfer's end shows there; returns both.
async fn with_events<T>(
    agent: &mut TestAgent,
    fut: impl std::future::Future<Output = T>,
) -> (T, Transfer) {
    tokio::time::timeout(BIG, async {
        tokio::join!(fut, async {
            loop {
                if let AgentEvent::Transfer(t) = agent
                    .expect_within(
                        "a transfer's end",
                        BIG,
                        |e| matches!(e, AgentEvent::Transfer(t) if finished(t)),
                    )
                    .await
                {
                    return t;
                }
            }
        })
    })
    .await
    .expect("the transfer ends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gibibyte_goes_both_ways_with_matching_sha256() {
    let relay = TestRelay::start().await;
    let tree = Tree::new();
    let size = 1024 * MIB;
    let src = tree.src().join("big.bin");
    let sha = write_file(&src, size);
    let (mut agent, mut s) = session(&relay, &tree, files_only()).await;

    let t = Instant::now();
    let (pushed, seen) = with_events(
        &mut agent,
        files::push(&mut s, std::slice::from_ref(&src), None, &mut go_on),
    )
    .await;
    let pushed = pushed.expect("the push completes");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "1 GiB push in {secs:.1} s ({:.0} MiB/s, debug build)",
        1024.0 / secs
    );
    assert_eq!(pushed.len(), 1);
    let landed = tree.landing().join("big.bin");
    assert_eq!(pushed[0].path, landed.display().to_string());
    assert_eq!(pushed[0].size, size);
    assert_eq!(pushed[0].sha256, sha);
    assert_eq!(sha256_of(&landed), sha, "the landed file is the one sent");
    assert_eq!(
        seen.state,
        TransferState::Done {
            sha256: sha.clone()
        }
    );
    assert_eq!(seen.path, landed.display().to_string());

    let t = Instant::now();
    let remote = landed.display().to_string();
    let (pulled, seen) = with_events(
        &mut agent,
        files::pull(&mut s, &remote, &tree.out(), &mut go_on),
    )
    .await;
    let pulled = pulled.expect("the pull completes");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "1 GiB pull in {secs:.1} s ({:.0} MiB/s, debug build)",
        1024.0 / secs
    );
    assert_eq!(pulled.saved_as, tree.out().join("big.bin"));
    assert_eq!(pulled.record.sha256, sha);
    assert_eq!(sha256_of(&pulled.saved_as), sha);
    assert!(matches!(seen.state, TransferState::Done { .. }));
    // No partial file is left on either side.
    let left: Vec<_> = tree
        .all()
        .into_iter()
        .filter(|p| p.ends_with(".part"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // The session record has both files.
    let record = s.record.expect("the relay keeps a record");
    s.end().await;
    let r = tether_console::records::record(
        &relay.console(),
        tether_proto::records::RecordQuery::Show { id: record },
    )
    .await
    .unwrap();
    assert_eq!(r.files.len(), 2, "{:?}", r.files);
    assert_eq!(
        r.files[0].direction,
        tether_proto::records::FileDirection::Push
    );
    assert_eq!(
        r.files[1].direction,
        tether_proto::records::FileDirection::Pull
    );
    assert!(r.files.iter().all(|f| f.sha256 == sha && f.size == size));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_push_resumes_in_a_new_session_sending_little_again() {
    let relay = TestRelay::start().await;
    let tree = Tree::new();
    let size = 128 * MIB;
    let src = tree.src().join("resume.bin");
    let sha = write_file(&src, size);
    let mut config = tree.config(&relay);
    config.again = true;
    let mut agent = TestAgent::spawn_with(config, Some(files_only()));
    let code = agent.code().await;
    // The console reaches the relay through a proxy that the test cuts halfway.
    let proxy = UdpProxy::start(relay.handle.local_addr()).await.unwrap();
    let mut via = relay.console();
    // Relayed only: on loopback a direct path would go round the proxy.
    via.relay = tether_net::RelayTarget {
        direct: tether_net::path::Direct::Forbidden,
        ..relay.target_via(proxy.addr())
    };
    let mut s = open_session(&via, code, files_only()).await.unwrap();
    let mut cut_at = None;
    let mut cut = |p: &Progress| {
        if cut_at.is_none() && p.done_bytes >= size / 2 {
            proxy.cut();
            cut_at = Some(p.done_bytes);
        }
        ControlFlow::Continue(())
    };
    let first = files::push_file(&mut s, &src, "resume.bin", &mut cut).await;
    assert!(first.is_err(), "a cut push fails: {first:?}");
    let cut_at = cut_at.expect("the cut happened");
    println!("cut after the console had sent {} MiB", cut_at / MIB);
    // Nothing under the final name; the agent's session ended and a new code follows.
    assert!(!tree.landing().join("resume.bin").exists());
    let code = agent.code().await;
    let mut s = open_session(&relay.console(), code, files_only())
        .await
        .unwrap();
    let link = s.link();
    let before = link.bytes_sent();
    let mut resumed_at = None;
    let mut note = |p: &Progress| {
        resumed_at.get_or_insert(p.done_bytes);
        ControlFlow::Continue(())
    };
    let moved = files::push_file(&mut s, &src, "resume.bin", &mut note)
        .await
        .expect("the resumed push completes");
    let sent = link.bytes_sent() - before;
    let resumed_at = resumed_at.unwrap();
    println!(
        "resumed at {} MiB; the second session sent {} MiB for the {} MiB left",
        resumed_at / MIB,
        sent / MIB,
        (size - resumed_at) / MIB
    );
    assert!(
        resumed_at >= size / 3,
        "most of what was sent had arrived: {resumed_at}"
    );
    assert!(resumed_at <= cut_at, "nothing arrived that was not sent");
    let again = sent.saturating_sub(size - resumed_at);
    assert!(
        again < size / 10,
        "less than 10 % is sent again: {again} bytes beyond the {} left",
        size - resumed_at
    );
    assert_eq!(moved.sha256, sha);
    assert_eq!(sha256_of(&tree.landing().join("resume.bin")), sha);
    let parts: Vec<_> = tree
        .all()
        .into_iter()
        .filter(|p| p.ends_with(".part"))
        .collect();
    assert!(parts.is_empty(), "{parts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_names_and_links_stay_inside_or_are_refused() {
    let relay = TestRelay::start().await;
    let tree = Tree::new();
    let src = tree.src().join("small.txt");
    std::fs::write(&src, b"hello").unwrap();
    // A link inside the landing folder pointing out of it, and a folder outside to watch.
    let outside = tree.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(tree.landing()).unwrap();
    std::os::unix::fs::symlink(&outside, tree.landing().join("escape")).unwrap();
    let passwd = std::fs::read("/etc/passwd").unwrap();
    let (agent, mut s) = session(&relay, &tree, files_only()).await;

    let long = "x".repeat(4000);
    let hostile: [(&str, NameError); 6] = [
        ("../../etc/passwd", NameError::ParentDir),
        ("/etc/shadow", NameError::Absolute),
        ("a/../../b", NameError::ParentDir),
        ("nul\0byte", NameError::Control),
        ("new\nline", NameError::Control),
        (&long, NameError::PartTooLong(4000)),
    ];
    for (name, why) in hostile {
        match files::push_file(&mut s, &src, name, &mut go_on).await {
            Err(FilesError::Agent(FileFailure::BadName(e))) => assert_eq!(e, why, "{name:?}"),
            other => panic!("{name:?} was not refused: {other:?}"),
        }
    }
    // Through the link in the landing folder: refused, nothing written outside.
    match files::push_file(&mut s, &src, "escape/x.txt", &mut go_on).await {
        Err(FilesError::Agent(FileFailure::Symlink(_))) => {}
        other => panic!("a push through a link was not refused: {other:?}"),
    }
    // A plain folder path lands inside, folders made.
    let ok = files::push_file(&mut s, &src, "./a//b/ok.txt", &mut go_on)
        .await
        .unwrap();
    assert_eq!(
        ok.path,
        tree.landing().join("a/b/ok.txt").display().to_string()
    );
    // The same name again is numbered, never replaced.
    std::fs::write(&src, b"second").unwrap();
    let second = files::push_file(&mut s, &src, "a/b/ok.txt", &mut go_on)
        .await
        .unwrap();
    assert_eq!(
        second.path,
        tree.landing().join("a/b/ok (1).txt").display().to_string()
    );
    assert_eq!(
        std::fs::read(tree.landing().join("a/b/ok.txt")).unwrap(),
        b"hello"
    );

    // A pushed folder with a link in its tree: the file goes, the link does not.
    let folder = tree.src().join("folder");
    std::fs::create_dir_all(folder.join("sub")).unwrap();
    std::fs::write(folder.join("sub/real.txt"), b"real").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", folder.join("sub/link")).unwrap();
    let moved = files::push(&mut s, &[folder], Some("drop"), &mut go_on)
        .await
        .unwrap();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(
        moved[0].path,
        tree.landing()
            .join("drop/folder/sub/real.txt")
            .display()
            .to_string()
    );

    // Pull and list: outside the shared root, or through a link, refused.
    std::os::unix::fs::symlink("/etc/passwd", tree.home().join("passwd-link")).unwrap();
    for (path, want) in [
        ("/etc/passwd".to_string(), "outside"),
        (
            tree.home().join("passwd-link").display().to_string(),
            "symbolic link",
        ),
        (
            tree.home().join("landing/escape/x").display().to_string(),
            "symbolic link",
        ),
        (
            format!("{}/../src/small.txt", tree.home().display()),
            "\"..\"",
        ),
    ] {
        match files::pull(&mut s, &path, &tree.out(), &mut go_on).await {
            Err(e @ FilesError::Agent(_)) => assert!(e.to_string().contains(want), "{path}: {e}"),
            other => panic!("{path} was not refused: {other:?}"),
        }
    }
    match files::list(&mut s, &tree.landing().join("escape").display().to_string()).await {
        Err(FilesError::Agent(FileFailure::Symlink(_))) => {}
        other => panic!("a listing through a link was not refused: {other:?}"),
    }
    let l = files::list(&mut s, &tree.landing().display().to_string())
        .await
        .unwrap();
    let kinds: Vec<_> = l
        .entries
        .iter()
        .map(|e| (e.name.as_str(), e.kind))
        .collect();
    assert_eq!(
        kinds,
        [("a", "dir"), ("drop", "dir"), ("escape", "symlink")]
    );

    // Nothing was written outside the landing folder (and the pull folder stayed empty).
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd);
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    for p in tree.all() {
        assert!(
            p.starts_with("home/landing/") || p.starts_with("src/") || p == "home/passwd-link",
            "written outside: {p}"
        );
    }
    assert!(!tree.out().join("passwd").exists());
    assert!(agent.saw(
        |e| matches!(e, AgentEvent::Transfer(t) if matches!(t.state, TransferState::Done { .. }))
    ));
    s.end().await;
}

/// Whether this process may mount (root, as in CI).
fn is_root() -> bool {
    rustix_uid() == 0
}

fn rustix_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
        })
        .and_then(|u| u.parse().ok())
        .unwrap_or(u32::MAX)
}

/// A tmpfs mounted at `at`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_fails_cleanly_on_both_sides() {
    if !is_root() {
        println!("SKIPPED: mounting a small tmpfs needs root (run as root, as CI does)");
        return;
    }
    let relay = TestRelay::start().await;
    let tree = Tree::new();
    std::fs::create_dir_all(tree.landing()).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tether-test"])
        .arg(tree.landing())
        .status()
        .expect("mount runs");
    if !status.success() {
        panic!("mount -t tmpfs failed ({status}) although running as root");
    }
    let _mount = Tmpfs(tree.landing());
    let src = tree.src().join("big.bin");
    write_file(&src, 32 * MIB);
    let (mut agent, mut s) = session(&relay, &tree, files_only()).await;
    let (r, seen) = with_events(
        &mut agent,
        files::push_file(&mut s, &src, "big.bin", &mut go_on),
    )
    .await;
    match r {
        Err(e @ FilesError::Agent(FileFailure::DiskFull)) => {
            assert!(e.to_string().contains("disk is full"), "{e}")
        }
        other => panic!("expected a full disk: {other:?}"),
    }
    match seen.state {
        TransferState::Failed { reason } => assert!(reason.contains("disk is full"), "{reason}"),
        other => panic!("the user was not told: {other:?}"),
    }
    // Nothing under the final name, and the partial file is gone too.
    let left: Vec<_> = std::fs::read_dir(tree.landing())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // The session goes on.
    files::list(&mut s, &tree.home().display().to_string())
        .await
        .unwrap();
    s.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_user_stops_a_transfer_and_both_sides_hear() {
    let relay = TestRelay::start().await;
    let tree = Tree::new();
    let src = tree.src().join("big.bin");
    write_file(&src, 512 * MIB);
    let (mut agent, mut s) = session(&relay, &tree, files_only()).await;
    let commands = agent.commands.clone();
    let mut progress = go_on;
    let push = files::push_file(&mut s, &src, "big.bin", &mut progress);
    let stop = async {
        let t = transfer(&mut agent, "the push starts", started).await;
        commands
            .send(UserCommand::StopTransfer(t.id))
            .await
            .unwrap();
        transfer(&mut agent, "the push ends", finished).await
    };
    let (r, seen) = tokio::time::timeout(BIG, async { tokio::join!(push, stop) })
        .await
        .unwrap();
    match r {
        Err(e @ FilesError::Agent(FileFailure::Cancelled(StoppedBy::User))) => {
            assert_eq!(
                e.to_string(),
                "the user's computer: the user stopped the transfer"
            )
        }
        other => panic!("the technician was not told the user stopped: {other:?}"),
    }
    assert_eq!(
        seen.state,
        TransferState::Failed {
            reason: "the user stopped the transfer".into()
        }
    );
    assert!(!tree.landing().join("big.bin").exists());
    assert_eq!(
        std::fs::read_dir(tree.landing()).unwrap().count(),
        0,
        "the partial file is gone"
    );
    // The technician stopping a pull: the user hears it.
    std::fs::copy(&src, tree.home().join("pull.bin")).unwrap();
    let remote = tree.home().join("pull.bin").display().to_string();
    let mut n = 0;
    let mut stop_soon = |_: &Progress| {
        n += 1;
        if n > 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let (r, seen) = with_events(
        &mut agent,
        files::pull(&mut s, &remote, &tree.out(), &mut stop_soon),
    )
    .await;
    assert!(matches!(r, Err(FilesError::Stopped)), "{r:?}");
    assert_eq!(
        seen.state,
        TransferState::Failed {
            reason: "the technician stopped the transfer".into()
        }
    );
    assert!(!tree.out().join("pull.bin").exists());
    // The session goes on.
    files::list(&mut s, "").await.unwrap();
    s.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_before_the_grant_and_nothing_after_files_is_taken_back() {
    let relay = TestRelay::start().await;
    let tree = Tree::new();
    let src = tree.src().join("big.bin");
    write_file(&src, 512 * MIB);
    std::fs::write(tree.home().join("secret.txt"), b"secret").unwrap();

    // Before consent: a raw console's file requests are refused, nothing written or read.
    let mut agent = TestAgent::spawn_with(tree.config(&relay), None);
    let code = agent.code().await;
    let RawClaim::Claimed(mut raw) =
        RawConsole::claim(&relay.target(), None, code.slot, &relay.token, files_only()).await
    else {
        panic!("claim refused");
    };
    let keys = raw.pair(&code).await.unwrap();
    raw.end_to_end(&keys).await;
    let (mut tx, mut rx) = raw_stream(raw.conn(), &keys, 1).await;
    tx.send(&Request::Files(FileRequest::Push {
        name: "x".into(),
        size: 1,
        source: [0; 32],
    }))
    .await
    .unwrap();
    assert_eq!(
        rx.recv::<Response>().await.unwrap(),
        Response::Refused {
            scope: Scope::Files
        }
    );
    let (mut tx, mut rx) = raw_stream(raw.conn(), &keys, 2).await;
    let secret = tree.home().join("secret.txt").display().to_string();
    tx.send(&Request::Files(FileRequest::Pull {
        path: secret.clone(),
    }))
    .await
    .unwrap();
    assert_eq!(
        rx.recv::<Response>().await.unwrap(),
        Response::Refused {
            scope: Scope::Files
        }
    );
    assert!(
        !tree.landing().exists(),
        "nothing was made before the grant"
    );
    drop(raw);
    agent.task.abort();

    // Granted something else: still refused.
    let mut agent = TestAgent::spawn_with(
        tree.config(&relay),
        Some([Scope::Inventory].into_iter().collect()),
    );
    let code = agent.code().await;
    let ask = [Scope::Inventory, Scope::Files].into_iter().collect();
    let mut s = open_session(&relay.console(), code, ask).await.unwrap();
    match files::list(&mut s, "").await {
        Err(FilesError::Session(ConsoleError::ScopeDenied(Scope::Files))) => {}
        other => panic!("listing without files: {other:?}"),
    }
    match files::push_file(&mut s, &src, "big.bin", &mut go_on).await {
        Err(FilesError::Session(ConsoleError::ScopeDenied(Scope::Files))) => {}
        other => panic!("pushing without files: {other:?}"),
    }
    assert!(!tree.landing().exists());
    s.end().await;
    agent.task.abort();

    // Taken back mid-transfer: it stops at once, and later requests are refused.
    let (mut agent, mut s) = session(&relay, &tree, files_only()).await;
    let commands = agent.commands.clone();
    let mut progress = go_on;
    let push = files::push_file(&mut s, &src, "big.bin", &mut progress);
    let revoke = async {
        transfer(&mut agent, "the push starts", started).await;
        commands
            .send(UserCommand::Revoke(Scope::Files))
            .await
            .unwrap();
        transfer(&mut agent, "the push ends", finished).await
    };
    let (r, seen) = tokio::time::timeout(BIG, async { tokio::join!(push, revoke) })
        .await
        .unwrap();
    assert!(
        matches!(r, Err(FilesError::Agent(FileFailure::Revoked))),
        "{r:?}"
    );
    assert!(matches!(seen.state, TransferState::Failed { .. }));
    assert!(!tree.landing().join("big.bin").exists());
    match files::list(&mut s, "").await {
        Err(FilesError::Session(ConsoleError::ScopeDenied(Scope::Files))) => {}
        other => panic!("listing after files was taken back: {other:?}"),
    }
    s.end().await;
}

/// Opens request stream `id` on a raw session.
async fn raw_stream(
    conn: &quinn::Connection,
    keys: &SessionKeys,
    id: u32,
) -> (SealedSend, SealedRecv) {
    let (mut send, recv) = conn.open_bi().await.unwrap();
    framed::write_msg(&mut send, &StreamOpen { stream_id: id })
        .await
        .unwrap();
    SealedStream::new(send, recv, keys, id, Side::Console).split()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hostile_console_gets_typed_errors_and_the_session_goes_on() {
    let relay = TestRelay::start().await;
    let tree = Tree::new();
    let data = b"0123456789";
    std::fs::write(tree.home().join("ten.txt"), data).unwrap();
    let mut h = Hasher::default();
    h.update(data);
    let sha = h.finish();
    let mut agent = TestAgent::spawn_with(tree.config(&relay), Some(files_only()));
    let code = agent.code().await;
    let RawClaim::Claimed(mut raw) =
        RawConsole::claim(&relay.target(), None, code.slot, &relay.token, files_only()).await
    else {
        panic!("claim refused");
    };
    let keys = raw.pair(&code).await.unwrap();
    raw.end_to_end(&keys).await;
    let (decision, _) = raw.ask_consent(&keys, files_only()).await;
    assert_eq!(
        decision,
        AgentToConsole::ConsentDecision {
            granted: files_only()
        }
    );

    let push = Request::Files(FileRequest::Push {
        name: "a.txt".into(),
        size: 10,
        source: [7; 32],
    });
    let cases: [(&[FileMsg], FileFailure); 3] = [
        (
            &[FileMsg::Chunk {
                offset: 5,
                data: Bytes(data[5..].to_vec()),
            }],
            FileFailure::OutOfOrder {
                expected: 0,
                got: 5,
            },
        ),
        (
            &[FileMsg::Chunk {
                offset: 0,
                data: Bytes(b"0123456789X".to_vec()),
            }],
            FileFailure::PastEnd { size: 10, end: 11 },
        ),
        (
            &[
                FileMsg::Chunk {
                    offset: 0,
                    data: Bytes(b"9876543210".to_vec()),
                },
                FileMsg::End { sha256: sha },
            ],
            FileFailure::DigestMismatch,
        ),
    ];
    let mut id = 1;
    for (msgs, want) in cases {
        let (mut tx, mut rx) = raw_stream(raw.conn(), &keys, id).await;
        id += 1;
        tx.send(&push).await.unwrap();
        assert_eq!(
            rx.recv::<Response>().await.unwrap(),
            Response::Files(FileResponse::PushReady { offset: 0 })
        );
        for m in msgs {
            tx.send(m).await.unwrap();
        }
        assert_eq!(
            rx.recv::<FileMsg>().await.unwrap(),
            FileMsg::Failed(want.clone())
        );
        let t = transfer(&mut agent, "the push fails", finished).await;
        assert_eq!(
            t.state,
            TransferState::Failed {
                reason: want.to_string()
            }
        );
    }
    // A resume offset past the end of a pulled file.
    let (mut tx, mut rx) = raw_stream(raw.conn(), &keys, id).await;
    id += 1;
    let path = tree.home().join("ten.txt").display().to_string();
    tx.send(&Request::Files(FileRequest::Pull { path: path.clone() }))
        .await
        .unwrap();
    assert!(matches!(
        rx.recv::<Response>().await.unwrap(),
        Response::Files(FileResponse::PullOffer { path: p, size: 10, .. }) if p == path
    ));
    tx.send(&FileMsg::Start { offset: 11 }).await.unwrap();
    assert_eq!(
        rx.recv::<FileMsg>().await.unwrap(),
        FileMsg::Failed(FileFailure::ResumePastEnd {
            offset: 11,
            size: 10
        })
    );
    // Nothing landed, no partial file stayed.
    assert_eq!(std::fs::read_dir(tree.landing()).unwrap().count(), 0);
    // The session goes on: a proper pull of the same file succeeds.
    let (mut tx, mut rx) = raw_stream(raw.conn(), &keys, id).await;
    tx.send(&Request::Files(FileRequest::Pull { path: path.clone() }))
        .await
        .unwrap();
    assert!(matches!(
        rx.recv::<Response>().await.unwrap(),
        Response::Files(FileResponse::PullOffer { .. })
    ));
    tx.send(&FileMsg::Start { offset: 4 }).await.unwrap();
    assert_eq!(
        rx.recv::<FileMsg>().await.unwrap(),
        FileMsg::Chunk {
            offset: 4,
            data: Bytes(data[4..].to_vec())
        }
    );
    // The digest covers the whole file, also the 4 bytes this side said it had.
    assert_eq!(
        rx.recv::<FileMsg>().await.unwrap(),
        FileMsg::End { sha256: sha }
    );
    tx.send(&FileMsg::Done {
        path: "here".into(),
    })
    .await
    .unwrap();
    let t = transfer(&mut agent, "the pull is done", finished).await;
    assert!(matches!(t.state, TransferState::Done { .. }), "{t:?}");
    assert!(!agent.task.is_finished(), "the session goes on");
}
