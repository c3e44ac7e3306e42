//! Session records end to end: a real relay with its real SQLite store, real agents, the console
//! library and the real `tether-agent` / `tether-console` binaries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use tether_agent::ShareConfig;
use tether_console::{ConsoleConfig, ConsoleError, records};
use tether_proto::ScopeSet;
use tether_proto::diag::Probe;
use tether_proto::msg::TechnicianRole;
use tether_proto::records::{
    MAX_NOTE_CHARS, MAX_REASON_CHARS, RecordErrorKind, RecordNote, RecordQuery, RecordState,
    SessionRecord,
};
use tether_relay::technicians::Technicians;
use tether_tests::procs::{Kill, bin, lines, wait_for, wait_for_code};
use tether_tests::{TestAgent, TestRelay, WAIT};

fn scopes(s: &str) -> ScopeSet {
    s.parse().unwrap()
}

/// An agent whose user asks for help with `reason` and grants `grant`.
fn agent_with_reason(relay: &TestRelay, reason: &str, grant: ScopeSet) -> TestAgent {
    let mut config = ShareConfig::new(relay.target());
    config.reason = Some(reason.to_string());
    TestAgent::spawn_with(config, Some(grant))
}

async fn show(config: &ConsoleConfig, id: u64) -> SessionRecord {
    records::record(config, RecordQuery::Show { id })
        .await
        .unwrap()
}

/// Waits until the relay has stored the session's end (it does so once both sides have gone).
async fn ended(config: &ConsoleConfig, id: u64) -> SessionRecord {
    tokio::time::timeout(WAIT, async {
        loop {
            let r = show(config, id).await;
            if r.duration_secs.is_some() {
                return r;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the relay records the session's end")
}

async fn search(config: &ConsoleConfig, text: &str) -> Vec<u64> {
    search_by(config, text, None, None).await
}

async fn search_by(
    config: &ConsoleConfig,
    text: &str,
    device: Option<&str>,
    technician: Option<&str>,
) -> Vec<u64> {
    records::list(
        config,
        RecordQuery::Search {
            text: text.into(),
            device: device.map(str::to_string),
            technician: technician.map(str::to_string),
            limit: 50,
        },
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.id)
    .collect()
}

fn record_error(e: ConsoleError) -> RecordErrorKind {
    match e {
        ConsoleError::Record(e) => e.kind,
        other => panic!("expected a record error, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_holds_technician_scopes_probes_notes_and_is_found_by_search() {
    let relay = TestRelay::start().await;
    let console = relay.console();

    // The user asks for help with a reason; the technician sees it on claiming.
    let mut agent = agent_with_reason(&relay, "printer offline", scopes("diagnostics,inventory"));
    let code = agent.code().await;
    let mut session =
        tether_console::open_session(&console, code, scopes("view,diagnostics,inventory"))
            .await
            .unwrap();
    assert_eq!(session.reason.as_deref(), Some("printer offline"));
    let id = session.record.expect("the relay made a record");

    // Requests post their facts to the record by themselves.
    let uptime = session.diagnostic(Probe::Uptime).await.unwrap();
    let top = session
        .diagnostic(Probe::TopProcesses { count: 3 })
        .await
        .unwrap();
    let inventory = session.inventory().await.unwrap();
    let set = session.set_ticket("HD-1042").await.unwrap();
    assert_eq!(set.summary.ticket.as_deref(), Some("HD-1042"));
    session.end().await;
    agent.task.await.unwrap().unwrap();

    let r = ended(&console, id).await;
    assert_eq!(r.summary.technicians, vec!["Ada Lovelace"]);
    assert_eq!(r.summary.reason.as_deref(), Some("printer offline"));
    assert_eq!(r.scopes_requested, scopes("view,diagnostics,inventory"));
    assert_eq!(
        r.scopes_granted,
        scopes("diagnostics,inventory"),
        "what the user granted, not what was asked"
    );
    let probes: Vec<(String, _)> = r
        .probes
        .iter()
        .map(|p| (p.probe.clone(), p.verdict))
        .collect();
    assert_eq!(
        probes,
        vec![
            ("uptime".to_string(), uptime.verdict),
            ("top-processes count=3".to_string(), top.verdict)
        ]
    );
    assert_eq!(r.inventories.len(), 1);
    assert_eq!(r.inventories[0].digest, inventory.digest());
    assert_eq!(
        r.inventories[0].packages as usize,
        inventory.software.packages.len()
    );
    assert_eq!(
        r.summary.device.as_deref(),
        Some(inventory.hardware.system.hostname.as_str()),
        "the device comes from the inventory taken"
    );
    // The agent's own words when its closing report reaches the relay before its connection
    // closes (it closes right after writing it); otherwise the relay's view of who hung up first.
    assert!(
        matches!(
            r.end_reason.as_deref(),
            Some("the technician ended the session" | "console left" | "agent left")
        ),
        "{:?}",
        r.end_reason
    );
    assert_eq!(r.summary.state, RecordState::Open);

    // Notes, then close.
    let note = RecordNote {
        problem: Some("Printer shows offline on the laptop".into()),
        cause: Some("CUPS queue paused after a paper jam".into()),
        fix: Some("cupsenable the queue, restart the spooler".into()),
        ..RecordNote::default()
    };
    records::record(&console, RecordQuery::Note { id, note })
        .await
        .unwrap();
    let closed = records::record(
        &console,
        RecordQuery::Close {
            id,
            resolution: "Queue re-enabled; test page printed".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(closed.summary.state, RecordState::Closed);
    assert_eq!(closed.closed_by.as_deref(), Some("Ada Lovelace"));
    let r = show(&console, id).await;
    assert_eq!(
        r.notes.cause.as_deref(),
        Some("CUPS queue paused after a paper jam")
    );
    assert_eq!(
        r.summary.resolution.as_deref(),
        Some("Queue re-enabled; test page printed")
    );
    assert_eq!(r.probes.len(), 2, "closing keeps everything");

    // An unrelated session, also resolved.
    let mut other = agent_with_reason(&relay, "wifi keeps dropping", scopes("view"));
    let code = other.code().await;
    let s2 = tether_console::open_session(&console, code, scopes("view"))
        .await
        .unwrap();
    let id2 = s2.record.unwrap();
    s2.end().await;
    records::record(
        &console,
        RecordQuery::Close {
            id: id2,
            resolution: "Moved the router away from the microwave".into(),
        },
    )
    .await
    .unwrap();

    // The knowledge base: text over reason, ticket, notes and resolution; device; technician.
    assert_eq!(search(&console, "printer offline").await, vec![id]);
    assert_eq!(search(&console, "Offline PRINTER").await, vec![id]);
    assert_eq!(search(&console, "spooler").await, vec![id], "from the fix");
    assert_eq!(search(&console, "test page").await, vec![id], "resolution");
    assert_eq!(search(&console, "HD-1042").await, vec![id], "ticket");
    assert_eq!(search(&console, "microwave").await, vec![id2]);
    assert!(search(&console, "printer microwave").await.is_empty());
    assert!(search(&console, "scanner").await.is_empty());
    assert_eq!(
        search_by(&console, "", None, Some("ada lovelace")).await,
        vec![id2, id],
        "newest first"
    );
    let host = inventory.hardware.system.hostname.clone();
    assert_eq!(search_by(&console, "", Some(&host), None).await, vec![id]);
    assert_eq!(
        records::list(&console, RecordQuery::List { limit: 1 })
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        vec![id2]
    );

    // Another org sees none of it.
    let eve = Technicians::new(relay.dir.path())
        .add("Eve", "Other Org")
        .unwrap();
    let eve = ConsoleConfig {
        token: eve,
        ..console.clone()
    };
    assert!(search(&eve, "printer").await.is_empty());
    let e = records::record(&eve, RecordQuery::Show { id })
        .await
        .unwrap_err();
    assert_eq!(record_error(e), RecordErrorKind::UnknownRecord);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_record_input_gets_clear_errors_and_loses_nothing() {
    let relay = TestRelay::start().await;
    let console = relay.console();
    let (agent, mut session) =
        tether_tests::paired(&relay, scopes("inventory"), scopes("inventory")).await;
    let id = session.record.unwrap();
    assert_eq!(session.reason, None, "no reason given, none shown");
    let note = |problem: String| RecordQuery::Note {
        id,
        note: RecordNote {
            problem: Some(problem),
            ..RecordNote::default()
        },
    };
    records::record(&console, note("screen flickers".into()))
        .await
        .unwrap();

    // Unknown ids.
    for q in [
        RecordQuery::Show { id: 999_999 },
        RecordQuery::Close {
            id: u64::MAX,
            resolution: "x".into(),
        },
    ] {
        let e = records::record(&console, q).await.unwrap_err();
        assert!(e.to_string().contains("no session record"), "{e}");
        assert_eq!(e.exit_code(), 11);
        assert_eq!(record_error(e), RecordErrorKind::UnknownRecord);
    }

    // Oversized notes are refused whole; the old note stays.
    let e = records::record(&console, note("x".repeat(MAX_NOTE_CHARS + 1)))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("limit is 4000"), "{e}");
    assert_eq!(record_error(e), RecordErrorKind::Invalid);
    assert_eq!(
        show(&console, id).await.notes.problem.as_deref(),
        Some("screen flickers")
    );
    // An empty resolution and an empty note.
    let e = records::record(
        &console,
        RecordQuery::Close {
            id,
            resolution: " \n".into(),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(record_error(e), RecordErrorKind::Invalid);
    let e = records::record(
        &console,
        RecordQuery::Note {
            id,
            note: RecordNote::default(),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(record_error(e), RecordErrorKind::Invalid);

    // A viewer may read but not close or note.
    let viewer = Technicians::new(relay.dir.path())
        .add_with("Vic", "Acme IT", TechnicianRole::Viewer, None)
        .unwrap();
    let viewer = ConsoleConfig {
        token: viewer,
        ..console.clone()
    };
    assert_eq!(show(&viewer, id).await.summary.id, id);
    let e = records::record(
        &viewer,
        RecordQuery::Close {
            id,
            resolution: "closed by a viewer".into(),
        },
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("viewer role"), "{e}");
    assert_eq!(e.exit_code(), 5);
    let r = show(&console, id).await;
    assert_eq!(r.summary.state, RecordState::Open);
    assert_eq!(r.notes.problem.as_deref(), Some("screen flickers"));

    // A technician who was not in the session may not post what ran in it.
    let bob = Technicians::new(relay.dir.path())
        .add("Bob", "Acme IT")
        .unwrap();
    let bob = ConsoleConfig {
        token: bob,
        ..console.clone()
    };
    let e = records::query(
        &bob,
        RecordQuery::Facts {
            id,
            facts: tether_proto::records::SessionFacts::Probes(vec![]),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(record_error(e), RecordErrorKind::Invalid, "empty post");
    let e = records::query(
        &bob,
        RecordQuery::Facts {
            id,
            facts: tether_proto::records::SessionFacts::Probes(vec![
                tether_proto::records::ProbeRun {
                    probe: "uptime".into(),
                    verdict: tether_proto::diag::Verdict::Ok,
                    reason: "made up".into(),
                    at_unix: 0,
                },
            ]),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(record_error(e), RecordErrorKind::Forbidden);
    assert!(show(&console, id).await.probes.is_empty());

    // A bad token.
    let nobody = ConsoleConfig {
        token: "tt_nope".into(),
        ..console.clone()
    };
    let e = records::list(&nobody, RecordQuery::List { limit: 5 })
        .await
        .unwrap_err();
    assert_eq!(record_error(e), RecordErrorKind::BadToken);

    // A closed record no longer changes.
    records::record(
        &console,
        RecordQuery::Close {
            id,
            resolution: "Updated the display driver".into(),
        },
    )
    .await
    .unwrap();
    let e = records::record(&console, note("changed my mind".into()))
        .await
        .unwrap_err();
    assert_eq!(record_error(e), RecordErrorKind::Closed);
    let r = show(&console, id).await;
    assert_eq!(r.notes.problem.as_deref(), Some("screen flickers"));
    assert_eq!(
        r.summary.resolution.as_deref(),
        Some("Updated the display driver")
    );

    // Through all of it the session itself was unaffected.
    assert!(
        !session
            .inventory()
            .await
            .unwrap()
            .software
            .packages
            .is_empty()
    );
    session.end().await;
    agent.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_reason_is_cut_and_defused_by_the_relay() {
    let relay = TestRelay::start().await;
    // The library does not check (the CLI does): this agent sends what a hostile one could.
    let hostile = format!("\u{1b}]0;pwned\u{7}\u{1b}[2Jprinter{}", "é".repeat(5000));
    let mut agent = agent_with_reason(&relay, &hostile, scopes("view"));
    let code = agent.code().await;
    let session = tether_console::open_session(&relay.console(), code, scopes("view"))
        .await
        .unwrap();
    let reason = session.reason.clone().unwrap();
    assert!(!reason.chars().any(char::is_control), "{reason:?}");
    assert!(reason.chars().count() <= MAX_REASON_CHARS);
    assert!(reason.contains("printer"), "{reason:?}");
    let id = session.record.unwrap();
    assert_eq!(
        show(&relay.console(), id).await.summary.reason,
        Some(reason)
    );
    session.end().await;
    agent.task.await.unwrap().unwrap();
}

/// Also issue 17 item 20: `--json` gives scopes by name, not as a bitmask.
#[test]
fn the_reason_and_the_record_through_the_real_binaries() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let relay = rt.block_on(TestRelay::start());
    let addr = relay.handle.local_addr().to_string();
    let fp = relay.handle.fingerprint().to_string();
    let viewer = Technicians::new(relay.dir.path())
        .add_with("Vic", "Acme IT", TechnicianRole::Viewer, None)
        .unwrap();

    // An oversized reason is refused before anything connects.
    let long = "x".repeat(MAX_REASON_CHARS + 1);
    let out = Command::new(bin("tether-agent"))
        .args(["share", "--relay", &addr, "--relay-cert-sha256", &fp])
        .args(["--reason", &long])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("limit is 200"));

    let mut agent = Kill(
        Command::new(bin("tether-agent"))
            .args([
                "share",
                "--once",
                "--relay",
                &addr,
                "--relay-cert-sha256",
                &fp,
            ])
            .args(["--reason", "printer offline"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let agent_out = lines(agent.0.stdout.take().unwrap());
    let code = wait_for_code(&agent_out);
    wait_for(&agent_out, "your request: printer offline");

    let console = |args: &[&str], token: &str| {
        Command::new(bin("tether-console"))
            .args(args)
            .env("TETHER_RELAY", &addr)
            .env("TETHER_RELAY_CERT_SHA256", &fp)
            .env("TETHER_TOKEN", token)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let running = console(
        &["diag", "--code", &code, "--ticket", "HD-7", "uptime"],
        &relay.token,
    );
    wait_for(&agent_out, "Allow?");
    writeln!(agent.0.stdin.take().unwrap(), "y").unwrap();
    let out = running.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("the user asks for help with: printer offline"),
        "{stderr}"
    );
    let id: String = stderr
        .split("session record ")
        .nth(1)
        .expect("the record id is printed")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    wait_for(&agent_out, "Session ended");
    assert!(agent.0.wait().unwrap().success());

    let run = |args: &[&str], token: &str| {
        let out = console(args, token).wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (status, json, err) = run(&["sessions", "show", &id, "--json"], &relay.token);
    assert_eq!(status, Some(0), "{err}");
    let r: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        r["scopes_requested"],
        serde_json::json!(["diagnostics"]),
        "{json}"
    );
    assert_eq!(
        r["scopes_granted"],
        serde_json::json!(["diagnostics"]),
        "{json}"
    );
    assert_eq!(r["summary"]["ticket"], "HD-7");
    assert_eq!(r["summary"]["reason"], "printer offline");
    assert_eq!(r["summary"]["technicians"][0], "Ada Lovelace");
    assert_eq!(r["probes"][0]["probe"], "uptime");

    let (status, _, err) = run(
        &[
            "sessions",
            "note",
            &id,
            "--problem",
            "nothing prints",
            "--fix",
            "cleared the stuck job",
        ],
        &relay.token,
    );
    assert_eq!(status, Some(0), "{err}");
    // A viewer may not close: exit 5, and the record stays open.
    let (status, _, err) = run(&["sessions", "close", &id, "--resolution", "done"], &viewer);
    assert_eq!(status, Some(5), "{err}");
    assert!(err.contains("viewer role"), "{err}");
    let (status, out, err) = run(
        &[
            "sessions",
            "close",
            &id,
            "--resolution",
            "stuck job cleared",
        ],
        &relay.token,
    );
    assert_eq!(status, Some(0), "{err}");
    assert!(out.contains("(closed)"), "{out}");
    assert!(out.contains("cleared the stuck job"), "{out}");

    // The table a technician reads, and the JSON a script reads.
    let (status, table, err) = run(&["sessions", "search", "stuck job"], &viewer);
    assert_eq!(status, Some(0), "{err}");
    assert!(table.contains("resolved: stuck job cleared"), "{table}");
    assert!(table.contains("HD-7"), "{table}");
    let (_, json, _) = run(&["sessions", "search", "printer", "--json"], &viewer);
    let hits: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(hits[0]["id"].as_u64().unwrap().to_string(), id);
    let (_, json, _) = run(&["sessions", "search", "toner", "--json"], &viewer);
    assert_eq!(json.trim(), "[]");

    // Unknown id and bad input.
    let (status, _, err) = run(&["sessions", "show", "424242"], &relay.token);
    assert_eq!(status, Some(11), "{err}");
    assert!(err.contains("no session record 424242"), "{err}");
    let (status, _, err) = run(&["sessions", "show", "seven"], &relay.token);
    assert_eq!(status, Some(2), "{err}");
    let (status, _, err) = run(&["sessions", "note", &id], &relay.token);
    assert_eq!(status, Some(2), "{err}");
    assert!(err.contains("nothing to note"), "{err}");
    let (status, _, err) = run(
        &["sessions", "note", &id, "--cause", "after closing"],
        &relay.token,
    );
    assert_eq!(status, Some(12), "{err}");
    assert!(err.contains("closed"), "{err}");
    drop(relay);
}
