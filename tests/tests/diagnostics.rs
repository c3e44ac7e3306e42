//! Diagnostics end to end: real relay, agent and console over QUIC on loopback, probes against the real
//! state of this machine (a tmpfs filled up, local TCP listeners, unresolvable names, a server that hangs).

// Tests panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use tether_agent::ui::AgentEvent;
use tether_console::{ConsoleError, Session, open_session};
use tether_proto::diag::{DiagFacts, DiagReport, Probe, ProbeKind, Verdict};
use tether_proto::msg::{Request, Response};
use tether_proto::{Scope, ScopeSet};
use tether_tests::{TestAgent, TestRelay};

fn scopes(s: &str) -> ScopeSet {
    s.parse().unwrap()
}

fn probe(kind: &str, args: &[&str]) -> Probe {
    tether_console::diag::parse_probe(kind.parse().unwrap(), args).unwrap()
}

/// A relay, an agent granting `diagnostics`, and a console session with it.
async fn diag_session() -> (TestRelay, TestAgent, Session) {
    let relay = TestRelay::start().await;
    let mut agent = TestAgent::spawn(&relay, scopes("diagnostics"));
    let code = agent.code().await;
    let session = open_session(&relay.console(), code, scopes("diagnostics"))
        .await
        .unwrap();
    (relay, agent, session)
}

/// One probe of every kind, with parameters where it needs them.
fn one_of_each() -> Vec<Probe> {
    ProbeKind::ALL
        .into_iter()
        .map(|k| {
            Probe::with_defaults(k).unwrap_or_else(|| match k {
                ProbeKind::Dns => probe("dns", &["name=localhost"]),
                ProbeKind::TcpConnect => probe("tcp-connect", &["host=127.0.0.1", "port=9"]),
                ProbeKind::Http => probe("http", &["url=http://127.0.0.1:9/"]),
                ProbeKind::UnitStatus => probe("unit-status", &["unit=ssh.service"]),
                other => panic!("{other} needs parameters the test does not know"),
            })
        })
        .collect()
}

#[tokio::test]
async fn without_the_diagnostics_scope_every_probe_is_refused() {
    let relay = TestRelay::start().await;
    let mut agent = TestAgent::spawn(&relay, scopes("inventory"));
    let code = agent.code().await;
    let mut session = open_session(&relay.console(), code, scopes("inventory,diagnostics"))
        .await
        .unwrap();
    assert_eq!(session.granted, scopes("inventory"));
    let all = one_of_each();
    assert_eq!(all.len(), ProbeKind::ALL.len());
    for p in all {
        let err = session.diagnostic(p.clone()).await.unwrap_err();
        assert!(
            matches!(err, ConsoleError::ScopeDenied(Scope::Diagnostics)),
            "{p}: {err}"
        );
    }
    let err = session.health_check(None).await.unwrap_err();
    assert!(matches!(err, ConsoleError::ScopeDenied(Scope::Diagnostics)));
    // The session survives, the granted scope still works, and no probe ever started.
    session.inventory().await.unwrap();
    session.end().await;
    let _ = (&mut agent.task).await;
    assert!(!agent.saw(|e| matches!(e, AgentEvent::Running { .. })));
    let refusals = relay
        .audit()
        .iter()
        .filter(|r| r["report"] == "scope_refused scope=diagnostics")
        .count();
    assert!(
        refusals > ProbeKind::ALL.len(),
        "{refusals} refusals audited"
    );
}

#[tokio::test]
async fn health_check_runs_every_parameterless_probe_and_sorts_problems_first() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (_relay, mut agent, mut session) = diag_session().await;

    let reports = session.health_check(None).await.unwrap();
    let mut kinds: Vec<ProbeKind> = reports.iter().map(|r| r.probe.kind()).collect();
    assert!(
        reports
            .windows(2)
            .all(|w| w[0].verdict.rank() <= w[1].verdict.rank()),
        "not sorted: {:?}",
        reports.iter().map(|r| r.verdict).collect::<Vec<_>>()
    );
    kinds.sort_by_key(|k| ProbeKind::ALL.iter().position(|a| a == k));
    let expected: Vec<ProbeKind> = ProbeKind::ALL
        .into_iter()
        .filter(|k| k.in_health_check())
        .collect();
    assert_eq!(kinds, expected);
    assert!(kinds.len() >= 12);

    let get = |k: ProbeKind| reports.iter().find(|r| r.probe.kind() == k).unwrap();
    for r in &reports {
        // Nothing in the standard check may hang or break on this machine.
        assert!(
            !matches!(r.verdict, Verdict::TimedOut | Verdict::Failed),
            "{}: {:?} {}",
            r.probe,
            r.verdict,
            r.reason
        );
        assert!(!r.reason.is_empty());
    }
    // Facts match what this machine really has.
    match &get(ProbeKind::ListeningPorts).facts {
        DiagFacts::ListeningPorts { sockets } => {
            assert!(sockets.iter().any(|s| s.port == port), "{port} missing")
        }
        other => panic!("{other:?}"),
    }
    match &get(ProbeKind::Interfaces).facts {
        DiagFacts::Interfaces { interfaces } => {
            assert!(interfaces.iter().any(|i| i.name == "lo"))
        }
        other => panic!("{other:?}"),
    }
    match &get(ProbeKind::DiskUsage).facts {
        DiagFacts::DiskUsage { filesystems } => {
            assert!(filesystems.iter().any(|f| f.mount_point == "/"))
        }
        other => panic!("{other:?}"),
    }
    if !Path::new("/run/systemd/system").is_dir() {
        let r = get(ProbeKind::FailedUnits);
        assert_eq!(r.verdict, Verdict::NotAvailable, "{}", r.reason);
        assert!(r.reason.contains("systemd is not running"), "{}", r.reason);
    }
    if !["/usr/sbin/smartctl", "/usr/bin/smartctl", "/sbin/smartctl"]
        .iter()
        .any(|p| Path::new(p).exists())
    {
        let r = get(ProbeKind::Smart);
        assert_eq!(r.verdict, Verdict::NotAvailable);
        assert_eq!(r.reason, "not available here: smartctl is not installed");
    }
    // The user saw each probe as it ran.
    session.end().await;
    let _ = (&mut agent.task).await;
    for k in expected {
        assert!(
            agent.saw(|e| matches!(e, AgentEvent::Running { what } if what.contains(k.name()))),
            "no Running event for {k}"
        );
    }
}

/// A small tmpfs mounted for one test, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a 1 MiB tmpfs, or `None` when this process may not mount (not root).
    fn mount() -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tether-test"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { dir })
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Writes `kib` KiB into a new file.
    fn fill(&self, name: &str, kib: usize) {
        let mut f = std::fs::File::create(self.dir.path().join(name)).unwrap();
        f.write_all(&vec![0x5a; kib * 1024]).unwrap();
        f.sync_all().unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn usage_of(report: &DiagReport, mount: &Path) -> f64 {
    let DiagFacts::DiskUsage { filesystems } = &report.facts else {
        panic!("{report:?}")
    };
    let mount = mount.to_string_lossy();
    filesystems
        .iter()
        .find(|f| f.mount_point == mount)
        .unwrap_or_else(|| panic!("{mount} not in {filesystems:?}"))
        .used_percent
}

#[tokio::test]
async fn a_nearly_full_filesystem_is_a_warning_then_a_problem() {
    let Some(fs) = Tmpfs::mount() else {
        // Without root there is no filesystem to fill; the same judgement is covered on a real statvfs in
        // the agent's unit tests. Say so loudly rather than pass silently.
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    };
    let (_relay, _agent, mut session) = diag_session().await;
    // 1 MiB tmpfs = 256 pages; 944 KiB is 92 % full.
    fs.fill("a", 944);
    let r = session.diagnostic(Probe::DiskUsage).await.unwrap();
    let used = usage_of(&r, &fs.path());
    assert!((90.0..=97.0).contains(&used), "{used}");
    assert!(r.verdict.rank() <= Verdict::Warning.rank(), "{r:?}");
    // 1012 KiB: 98.8 % full is a problem, and the reason names the fullest filesystem.
    fs.fill("b", 68);
    let r = session.diagnostic(Probe::DiskUsage).await.unwrap();
    assert!(usage_of(&r, &fs.path()) > 97.0);
    assert_eq!(r.verdict, Verdict::Problem, "{}", r.reason);
    assert!(
        r.reason.contains(&*fs.path().to_string_lossy()) || r.reason.contains("filesystems above"),
        "{}",
        r.reason
    );
    session.end().await;
}

#[tokio::test]
async fn tcp_connect_succeeds_on_a_listener_and_fails_on_a_closed_port() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap().port();
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (_relay, _agent, mut session) = diag_session().await;

    let r = session
        .diagnostic(probe(
            "tcp-connect",
            &["host=127.0.0.1", &format!("port={open}")],
        ))
        .await
        .unwrap();
    assert_eq!(r.verdict, Verdict::Ok, "{}", r.reason);
    let DiagFacts::TcpConnect(c) = &r.facts else {
        panic!("{r:?}")
    };
    assert_eq!(
        c.connected_to.as_deref(),
        Some(&*format!("127.0.0.1:{open}"))
    );
    assert!(c.connect_ms >= 0.0);
    // The agent really connected: the listener has a connection to accept.
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_ok());

    let r = session
        .diagnostic(probe(
            "tcp-connect",
            &["--host", "127.0.0.1", "--port", &closed.to_string()],
        ))
        .await
        .unwrap();
    assert_eq!(r.verdict, Verdict::Problem);
    assert!(r.reason.contains("refused"), "{}", r.reason);
    session.end().await;
}

#[tokio::test]
async fn an_unresolvable_name_is_reported_as_such() {
    let (_relay, _agent, mut session) = diag_session().await;
    // `.invalid` never resolves (RFC 2606), online or off. A generous timeout lets a slow resolver answer.
    let r = session
        .diagnostic_with(probe("dns", &["name=tether-test.invalid"]), Some(60))
        .await
        .unwrap();
    assert_eq!(r.verdict, Verdict::Problem, "{}", r.reason);
    assert!(
        r.reason
            .starts_with("could not resolve tether-test.invalid"),
        "{}",
        r.reason
    );
    let r = session
        .diagnostic(probe("dns", &["name=localhost"]))
        .await
        .unwrap();
    assert_eq!(r.verdict, Verdict::Ok, "{}", r.reason);
    let DiagFacts::Dns { addresses, .. } = &r.facts else {
        panic!("{r:?}")
    };
    assert!(
        addresses.iter().any(|a| a == "127.0.0.1" || a == "::1"),
        "{addresses:?}"
    );
    session.end().await;
}

/// Serves one canned HTTP answer per connection, on its own thread, until the listener is dropped.
fn http_server(answer: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let _ = s.write_all(answer.as_bytes());
        }
    });
    port
}

#[tokio::test]
async fn http_reports_status_and_timing() {
    let ok = http_server("HTTP/1.1 204 No Content\r\nServer: tether-test\r\n\r\n");
    let broken = http_server("HTTP/1.1 503 Service Unavailable\r\n\r\n");
    let (_relay, _agent, mut session) = diag_session().await;

    let r = session
        .diagnostic(probe(
            "http",
            &[&format!("url=http://127.0.0.1:{ok}/health?x=1")],
        ))
        .await
        .unwrap();
    assert_eq!(r.verdict, Verdict::Ok, "{}", r.reason);
    let DiagFacts::Http(h) = &r.facts else {
        panic!("{r:?}")
    };
    assert_eq!(h.status, Some(204));
    assert_eq!(h.server.as_deref(), Some("tether-test"));
    assert!(h.total_ms.is_some());

    let r = session
        .diagnostic(probe("http", &[&format!("url=http://127.0.0.1:{broken}/")]))
        .await
        .unwrap();
    assert_eq!(r.verdict, Verdict::Problem);
    assert!(r.reason.contains("503"), "{}", r.reason);
    session.end().await;
}

#[tokio::test]
async fn a_probe_that_hangs_is_cut_at_its_timeout_and_the_session_lives_on() {
    // Accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let (_relay, mut agent, mut session) = diag_session().await;

    let r = session
        .diagnostic_with(
            probe("http", &[&format!("url=http://127.0.0.1:{port}/")]),
            Some(1),
        )
        .await
        .unwrap();
    assert_eq!(r.verdict, Verdict::TimedOut, "{}", r.reason);
    assert_eq!(r.reason, "timed out after 1.0 s and was stopped");
    assert_eq!(r.facts, DiagFacts::None);

    // The session is still there and serves the next probe.
    let r = session.diagnostic(Probe::Uptime).await.unwrap();
    assert_eq!(r.probe, Probe::Uptime);
    assert!(!agent.task.is_finished());
    session.end().await;
    let _ = (&mut agent.task).await;
    drop(silent);
}

#[tokio::test]
async fn a_unit_that_does_not_exist_is_a_problem() {
    let (_relay, _agent, mut session) = diag_session().await;
    let r = session
        .diagnostic(probe("unit-status", &["unit=tether-no-such-unit-4711"]))
        .await
        .unwrap();
    assert_eq!(r.verdict, Verdict::Problem, "{}", r.reason);
    assert!(
        r.reason
            .contains("unit tether-no-such-unit-4711.service does not exist"),
        "{}",
        r.reason
    );
    session.end().await;
}

/// What a hostile or buggy console could put on the wire: values the console-side parser would refuse.
fn raw(json: &str) -> Probe {
    serde_json::from_str(json).unwrap()
}

#[tokio::test]
async fn bad_parameters_are_refused_by_the_agent_and_nothing_runs() {
    let marker = tempfile::tempdir().unwrap();
    let m = marker.path().join("pwned");
    let m = m.to_string_lossy();
    let (_relay, mut agent, mut session) = diag_session().await;

    let hostile = [
        (
            raw(&format!(r#"{{"UnitStatus":{{"unit":"x;touch {m}"}}}}"#)),
            None,
            "invalid unit name",
        ),
        (
            raw(&format!(r#"{{"UnitStatus":{{"unit":"--root={m}"}}}}"#)),
            None,
            "must not start with '-'",
        ),
        (
            raw(&format!(r#"{{"Dns":{{"name":"$(touch {m})"}}}}"#)),
            None,
            "invalid host",
        ),
        (
            raw(r#"{"TcpConnect":{"host":"127.0.0.1","port":0}}"#),
            None,
            "invalid port",
        ),
        (
            raw(&format!(
                r#"{{"Http":{{"url":"http://127.0.0.1/`touch {m}`"}}}}"#
            )),
            None,
            "not allowed",
        ),
        (
            raw(&format!(r#"{{"Dns":{{"name":"{}"}}}}"#, "a".repeat(300))),
            None,
            "longer than 253",
        ),
        (
            raw(r#"{"JournalErrors":{"lines":0,"since_minutes":null}}"#),
            None,
            "lines must be",
        ),
        (Probe::Uptime, Some(0), "timeout must be"),
        (Probe::Uptime, Some(3600), "timeout must be"),
    ];
    for (probe, timeout_secs, why) in hostile {
        let answer = session
            .request(&Request::Diagnostic {
                probe: probe.clone(),
                timeout_secs,
            })
            .await;
        match answer {
            Err(ConsoleError::Failed(msg)) => {
                assert!(msg.starts_with("invalid parameter: "), "{msg}");
                assert!(msg.contains(why), "{probe:?}: {msg}");
            }
            other => panic!("{probe:?} was not refused: {other:?}"),
        }
    }
    // Nothing ran: no probe started, no command left a trace.
    assert!(!agent.saw(|e| matches!(e, AgentEvent::Running { .. })));
    assert!(!marker.path().join("pwned").exists());
    // The session is intact.
    assert!(matches!(
        session
            .request(&Request::Diagnostic {
                probe: Probe::Uptime,
                timeout_secs: None
            })
            .await,
        Ok(Response::Diagnostic(_))
    ));
    session.end().await;
    let _ = (&mut agent.task).await;
}
