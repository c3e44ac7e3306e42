//! The relay on a disk that fills up: a real tmpfs, filled to the last byte, under a real relay over
//! real QUIC. The audit log must never be silently skipped: the relay refuses new sessions and
//! enrollments while it cannot write it, says so in its metrics and `status`, resumes by itself when
//! space returns, and repairs a record the full disk cut short when it next starts; `audit verify`
//! (`admin::verify_audit`, which the command prints) accepts the repair.
//!
//! Mounting a tmpfs needs root; without it this test fails and says so (it does not skip).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tether_agent::ShareConfig;
use tether_agent::enroll::{DataDir, EnrollConfig, EnrollError, enroll};
use tether_console::{ConsoleConfig, open_session};
use tether_net::{RelayTarget, Trust};
use tether_proto::fleet::FleetErrorKind;
use tether_proto::msg::RelayErrorKind;
use tether_proto::{ScopeSet, Slot};
use tether_relay::technicians::Technicians;
use tether_relay::{Relay, RelayConfig, RelayHandle, admin, metrics};
use tether_tests::{RawClaim, RawConsole, TestAgent, WAIT};

/// A tmpfs mounted on a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("`mount` runs");
        assert!(
            out.status.success(),
            "this test mounts a {size} tmpfs to fill it and needs root for that: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes a file until the file system has no byte left; returns its path.
fn fill(fs: &Tmpfs) -> PathBuf {
    let path = fs.path().join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    for size in [chunk.len(), 1] {
        loop {
            match f.write(&chunk[..size]) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
    }
    let probe = std::fs::write(fs.path().join("probe"), b"x");
    assert!(probe.is_err(), "the disk still takes bytes");
    path
}

fn target(relay: &RelayHandle) -> RelayTarget {
    RelayTarget {
        addr: relay.local_addr().to_string(),
        trust: Trust::Fingerprint(relay.fingerprint().to_string()),
        connect_timeout: Duration::from_secs(5),
        direct: Default::default(),
    }
}

async fn start(data: &Path) -> RelayHandle {
    let mut config = RelayConfig::new("127.0.0.1:0".parse().unwrap(), data.to_path_buf());
    config.metrics = Some("127.0.0.1:0".parse().unwrap());
    Relay::spawn(config).await.unwrap()
}

/// Makes the relay write audit records (refused claims from ever new source addresses, each one
/// its own record; repeats from one address would only be counted) until it reports that it cannot.
/// Returns the length of the torn record the failed write left behind (0 if it failed cleanly).
async fn write_until_the_audit_fails(relay: &RelayHandle, next_addr: &mut u32) -> usize {
    let tgt = target(relay);
    while relay.audit_writable() {
        assert!(
            *next_addr < 250,
            "the audit log never failed on a full disk"
        );
        let bind = format!("127.0.0.{}:0", *next_addr).parse().unwrap();
        *next_addr += 1;
        match RawConsole::claim(&tgt, Some(bind), Slot(999), "tt_bogus", ScopeSet::EMPTY).await {
            RawClaim::Refused(e) => assert!(
                matches!(e.kind, RelayErrorKind::BadToken | RelayErrorKind::Busy),
                "{e:?}"
            ),
            other => panic!("{other:?}"),
        }
        // Waits for the writer to handle the record (returns at once once it failed).
        let _ = relay.audit_path();
    }
    let text = std::fs::read(relay.data_dir().join(tether_relay::audit::FILE)).unwrap();
    text.len() - text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)
}

async fn sample(relay: &RelayHandle, name: &str) -> f64 {
    let samples = metrics::scrape(relay.metrics_addr().unwrap())
        .await
        .unwrap();
    samples
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no sample {name}"))
        .1
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_closed_resumes_and_the_torn_record_is_repaired_on_restart() {
    let fs = Tmpfs::mount("8m");
    let data = fs.path().join("relay");
    std::fs::create_dir_all(&data).unwrap();
    let token = Technicians::new(&data)
        .add("Ada Lovelace", "Acme IT")
        .unwrap();
    let relay = start(&data).await;
    let console = ConsoleConfig {
        relay: target(&relay),
        token,
    };
    let enroll_token = relay
        .store()
        .create_token("Acme IT", 3600, 1, now())
        .unwrap()
        .token;
    assert_eq!(sample(&relay, "tether_relay_audit_writable").await, 1.0);

    // The disk fills up; the user offers a session meanwhile.
    let filler = fill(&fs);
    let mut next_addr = 2;
    let torn = write_until_the_audit_fails(&relay, &mut next_addr).await;
    eprintln!("the failed write left a torn record of {torn} bytes");
    let mut agent = TestAgent::spawn_with(ShareConfig::new(target(&relay)), Some(ScopeSet::all()));
    let code = agent.code().await;

    // No session and no enrollment while the audit log cannot be written, and each says why.
    let err = open_session(&console, code, "inventory".parse().unwrap())
        .await
        .expect_err("no session while the audit log cannot be written");
    assert!(err.to_string().contains("audit log"), "{err}");
    let device_dir = tempfile::tempdir().unwrap();
    let enrolling = EnrollConfig {
        relay: target(&relay),
        token: enroll_token,
        data_dir: DataDir::new(device_dir.path()),
        hostname: "full-disk-host".into(),
    };
    match enroll(&enrolling).await {
        Err(EnrollError::Refused(e)) => {
            assert_eq!(e.kind, FleetErrorKind::AuditUnavailable);
            assert!(e.message.contains("audit log"), "{}", e.message);
        }
        other => panic!("enrollment while the audit log cannot be written: {other:?}"),
    }
    // Metrics and `status` say so.
    assert_eq!(sample(&relay, "tether_relay_audit_writable").await, 0.0);
    assert!(sample(&relay, "tether_relay_audit_refusals_total").await >= 2.0);
    assert!(sample(&relay, "tether_relay_audit_write_failures_total").await >= 1.0);
    let status = metrics::summary(
        &metrics::scrape(relay.metrics_addr().unwrap())
            .await
            .unwrap(),
    );
    assert!(
        status.contains("audit log:          NOT WRITABLE"),
        "{status}"
    );

    // Space returns: the relay resumes by itself, and the same code now opens a session.
    std::fs::remove_file(&filler).unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !relay.audit_writable() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the audit log did not resume"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sample(&relay, "tether_relay_audit_writable").await, 1.0);
    let mut session = open_session(&console, code, "inventory".parse().unwrap())
        .await
        .expect("a session once the audit log is writable again");
    session.inventory().await.unwrap();
    session.end().await;
    let _ = tokio::time::timeout(WAIT, &mut agent.task).await;
    let _ = relay.audit_path();
    let verified = admin::verify_audit(&data).expect("the chain is intact after resuming");
    if torn > 0 {
        assert!(
            verified.repairs.iter().any(|r| r.cut_bytes == torn as u64),
            "{verified:?}"
        );
    }
    let text = std::fs::read_to_string(relay.audit_path()).unwrap();
    assert!(text.contains("\"event\":\"audit_resumed\""), "{text}");
    assert!(text.contains("\"event\":\"session_started\""), "{text}");

    // Full again; this time the relay stops before space returns, and the next start repairs.
    let filler = fill(&fs);
    let torn = write_until_the_audit_fails(&relay, &mut next_addr).await;
    eprintln!("the second failed write left a torn record of {torn} bytes");
    relay.shutdown().await;
    std::fs::remove_file(&filler).unwrap();
    if torn > 0 {
        let err = admin::verify_audit(&data).unwrap_err().to_string();
        assert!(err.contains("torn record"), "{err}");
    }
    let relay = start(&data).await;
    assert!(relay.audit_writable());
    let _ = relay.audit_path();
    let verified = admin::verify_audit(&data).expect("the chain is intact after the restart");
    if torn > 0 {
        let last = verified.repairs.last().expect("the repair is in the chain");
        assert_eq!(last.cut_bytes, torn as u64, "{verified:?}");
        assert_eq!(last.seq as usize, verified.records, "{verified:?}");
    }
    relay.shutdown().await;
}

/// `tether-relay audit verify` calls an unrepaired torn tail what it is (an interrupted write, not an
/// edit) and, once the relay has repaired it, accepts the chain and names the repair.
#[test]
fn audit_verify_names_a_torn_tail_and_its_repair() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = tether_relay::audit::AuditFile::open(dir.path()).unwrap();
    for name in ["Ada", "Bob"] {
        log.append(&tether_relay::audit::AuditEvent::TechnicianRevoked {
            technician: name.into(),
            org: "Acme IT".into(),
        })
        .unwrap();
    }
    let path = dir.path().join(tether_relay::audit::FILE);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    let torn: &[u8] = br#"{"seq":3,"ts_unix_ms":17"#;
    f.write_all(torn).unwrap();
    let verify = || {
        let out = Command::new(tether_tests::procs::bin("tether-relay"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(["audit", "verify"])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, _, stderr) = verify();
    assert!(!ok);
    assert!(
        stderr.contains(&format!("a torn record of {} bytes", torn.len()))
            && stderr.contains("not an edit"),
        "{stderr}"
    );
    // What the relay does when it starts.
    tether_relay::audit::AuditFile::open(dir.path())
        .unwrap()
        .repair()
        .unwrap();
    let (ok, stdout, stderr) = verify();
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("audit log intact: 3 records"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "repaired: record 3 notes {} bytes of a torn record",
            torn.len()
        )),
        "{stdout}"
    );
}
