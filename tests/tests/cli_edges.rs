//! The rough edges of the command lines (issue 17), through the real binaries: what is checked
//! before a code is claimed, a closed standard output, a search with no words, and options that
//! work before or after the subcommand under one name each.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tether_net::Trust;
use tether_tests::TestRelay;
use tether_tests::procs::{Kill, bin, lines, wait_for, wait_for_code};

/// The relay's address and fingerprint.
fn addr_fp(relay: &TestRelay) -> (String, String) {
    let t = relay.target();
    let Trust::Fingerprint(fp) = t.trust else {
        unreachable!("the test relay is pinned by fingerprint")
    };
    (t.addr, fp)
}

/// Waits for `child` at most `limit`; kills it and panics if it is still running then.
fn finish(child: Child, limit: Duration, what: &str) -> Output {
    let mut child = Kill(child);
    let start = Instant::now();
    while child.0.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < limit, "{what} still runs after {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let Kill(inner) = &mut child;
    let mut out = Output {
        status: inner.wait().unwrap(),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    use std::io::Read;
    if let Some(mut s) = inner.stdout.take() {
        s.read_to_end(&mut out.stdout).unwrap();
    }
    if let Some(mut s) = inner.stderr.take() {
        s.read_to_end(&mut out.stderr).unwrap();
    }
    out
}

/// `tether-agent share` on the relay, with its code and its output lines.
fn share(relay: &TestRelay) -> (Kill, std::sync::mpsc::Receiver<String>, String) {
    let (addr, fp) = addr_fp(relay);
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Kill(
        Command::new(bin("tether-agent"))
            .args(["share", "--relay", &addr, "--relay-cert-sha256", &fp])
            .env("TETHER_AGENT_DATA", dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let out = lines(agent.0.stdout.take().unwrap());
    let code = wait_for_code(&out);
    (agent, out, code)
}

fn console(relay: &TestRelay, args: &[&str]) -> Command {
    let (addr, fp) = addr_fp(relay);
    let mut c = Command::new(bin("tether-console"));
    c.args(args)
        .env("TETHER_RELAY", addr)
        .env("TETHER_RELAY_CERT_SHA256", fp)
        .env("TETHER_TOKEN", &relay.token)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Issue 17 item 13: mistakes the console can see for itself (an unknown key name, a snapshot in a
/// directory that does not exist, probe parameters) are usage errors before the code is claimed:
/// the user is never asked, and their code keeps working.
#[tokio::test(flavor = "multi_thread")]
async fn mistakes_are_found_before_the_code_is_claimed() {
    let relay = TestRelay::start().await;
    let (_agent, agent_out, code) = share(&relay);
    for (args, says) in [
        (
            vec!["input", "--code", &code, "key", "ctrl+alt+tt"],
            "unknown key \"tt\"",
        ),
        (
            vec!["input", "--code", &code, "keydown", "ctrl+"],
            "empty key name",
        ),
        (
            vec![
                "connect",
                "--code",
                &code,
                "--headless",
                "--snapshot",
                "/no/such/dir/s.png",
            ],
            "does not exist",
        ),
        (
            vec!["diag", "--code", &code, "tcp-connect", "host=example.com"],
            "port",
        ),
    ] {
        let child = console(&relay, &args).spawn().unwrap();
        let out = finish(child, Duration::from_secs(20), "the console");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    std::thread::sleep(Duration::from_secs(1));
    while let Ok(line) = agent_out.try_recv() {
        assert!(
            !line.contains("is connecting") && !line.contains("asks to"),
            "the code was claimed: {line}"
        );
    }
}

/// Issue 17 item 16: a closed standard output (`| head`) is a normal end for every binary: exit 0
/// (or 141), no panic, no broken-pipe message.
#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stdout_is_a_normal_end() {
    let relay = TestRelay::start().await;
    let data = tempfile::tempdir().unwrap();
    let relay_dir = relay.dir.path().to_str().unwrap().to_string();
    let runs: Vec<(&str, Vec<&str>)> = vec![
        ("tether-console", vec!["diag", "--list"]),
        ("tether-console", vec!["diag", "--list", "--json"]),
        ("tether-console", vec!["sessions", "list"]),
        ("tether-agent", vec!["log"]),
        (
            "tether-relay",
            vec!["--data-dir", &relay_dir, "technician", "list"],
        ),
    ];
    for (program, args) in runs {
        // The reading end is closed before the program starts, so its first write fails.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut c = if program == "tether-console" {
            console(&relay, &args)
        } else {
            let mut c = Command::new(bin(program));
            c.args(&args);
            c
        };
        let out = c
            .env("TETHER_AGENT_DATA", data.path())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            matches!(out.status.code(), Some(0) | Some(141)) || out.status.code().is_none(),
            "{program} {args:?}: {:?} {err}",
            out.status
        );
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{program} {args:?}: {err}"
        );
    }
}

/// Issue 17 item 17: `sessions search` with no words (and no --device or --technician) is a usage
/// error (exit 2), as README says, rather than a list of every record.
#[tokio::test(flavor = "multi_thread")]
async fn a_search_with_no_words_is_a_usage_error() {
    let relay = TestRelay::start().await;
    for args in [vec!["sessions", "search"], vec!["sessions", "search", "  "]] {
        let out = console(&relay, &args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("search for what?"), "{err}");
        assert!(out.stdout.is_empty());
    }
    let out = console(&relay, &["sessions", "search", "--device", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 17 item 18: relay options work before or after the subcommand on both clients, the
/// agent's data directory has one name (`--data-dir`), and console options after a probe's
/// parameters (`--timeout 3`, `--json`) are the console's options, not the probe's.
#[tokio::test(flavor = "multi_thread")]
async fn options_work_in_either_place_under_one_name() {
    let relay = TestRelay::start().await;
    let (addr, fp) = addr_fp(&relay);
    let data = tempfile::tempdir().unwrap();

    // The agent: before the subcommand (the console's habit) as well as after it.
    for args in [
        vec!["--relay", &addr, "--relay-cert-sha256", &fp, "share"],
        vec!["share", "--relay", &addr, "--relay-cert-sha256", &fp],
    ] {
        let mut agent = Kill(
            Command::new(bin("tether-agent"))
                .args(&args)
                .env("TETHER_AGENT_DATA", data.path())
                .env_remove("TETHER_RELAY")
                .env_remove("TETHER_RELAY_CERT_SHA256")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let out = lines(agent.0.stdout.take().unwrap());
        wait_for(&out, "session code:");
    }

    // The console: after the subcommand (the agent's habit) as well as before it.
    for args in [
        vec![
            "--relay",
            &addr,
            "--relay-cert-sha256",
            &fp,
            "sessions",
            "list",
        ],
        vec![
            "sessions",
            "list",
            "--relay",
            &addr,
            "--relay-cert-sha256",
            &fp,
        ],
    ] {
        let out = Command::new(bin("tether-console"))
            .args(&args)
            .env_remove("TETHER_RELAY")
            .env_remove("TETHER_RELAY_CERT_SHA256")
            .env("TETHER_TOKEN", &relay.token)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // One name for the agent's data directory, in every subcommand and in either place.
    for sub in ["share", "window", "log", "enroll", "run", "status"] {
        let help = Command::new(bin("tether-agent"))
            .args([sub, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        assert!(help.contains("--data-dir"), "{sub}: {help}");
        assert!(!help.contains("--state-dir"), "{sub}: {help}");
    }
    for args in [
        vec!["--data-dir", data.path().to_str().unwrap(), "status"],
        vec!["status", "--data-dir", data.path().to_str().unwrap()],
    ] {
        let out = Command::new(bin("tether-agent"))
            .args(&args)
            .arg("--json")
            .env_remove("TETHER_AGENT_DATA")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["enrolled"], false);
    }

    // `--timeout` after the probe's parameters is the console's timeout (checked as such, before
    // anything connects), not an unknown probe parameter.
    for t in ["--timeout=300", "--timeout"] {
        let mut args = vec![
            "diag",
            "--code",
            "123 456 789",
            "tcp-connect",
            "host=example.com",
            "port=443",
            t,
        ];
        if t == "--timeout" {
            args.push("300");
        }
        let out = console(&relay, &args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("--timeout: "), "{args:?}: {err}");
    }
    // A valid one runs the probe with it, the result as JSON.
    let (agent, agent_out, code) = share(&relay);
    let child = console(
        &relay,
        &[
            "diag",
            "--code",
            &code,
            "tcp-connect",
            "host=127.0.0.1",
            "port=9",
            "--timeout",
            "3",
            "--json",
        ],
    )
    .stdin(Stdio::null())
    .spawn()
    .unwrap();
    wait_for(&agent_out, "Allow?");
    let mut stdin = agent.0.stdin.as_ref().unwrap();
    use std::io::Write;
    writeln!(stdin, "y").unwrap();
    let out = finish(child, Duration::from_secs(30), "diag");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["verdict"].is_string(), "{report}");
}

/// Issue 17 item 2: the console command line shows the verification code as soon as pairing
/// succeeds, while the user is still deciding, and tells the technician to read it out; it is the
/// code the user's screen shows.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_shows_the_verification_code_before_consent() {
    use std::io::{BufRead, BufReader, Write};
    let relay = TestRelay::start().await;
    let (agent, agent_out, code) = share(&relay);
    let mut child = Kill(
        console(&relay, &["diag", "--code", &code, "uptime"])
            .spawn()
            .unwrap(),
    );
    let (tx, err_lines) = std::sync::mpsc::channel();
    let stderr = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let agent_line = wait_for(&agent_out, "Verification code: ");
    wait_for(&agent_out, "Allow?");
    // The user has not answered yet.
    let line = wait_for(&err_lines, "verification code ");
    assert!(line.contains(": read it out to the user"), "{line}");
    let shown = line
        .split("verification code ")
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap();
    assert!(
        agent_line.contains(&format!("Verification code: {shown} ")),
        "{agent_line} vs {line}"
    );
    writeln!(agent.0.stdin.as_ref().unwrap(), "y").unwrap();
    wait_for(&err_lines, "granted: diagnostics");
    assert!(child.0.wait().unwrap().success());
}

/// Issue 17 item 12: `tether-agent log` prints sentences with local times (the `TZ` of the user),
/// newest first; no raw event names, slots or Unix seconds.
#[test]
fn the_agent_log_reads_as_sentences_in_local_time() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(
        data.path().join("sessions.jsonl"),
        concat!(
            r#"{"ts_unix":1795545267,"event":"code_issued","slot":953}"#,
            "\n",
            r#"{"ts_unix":1795545300,"event":"claimed","technician":"Ada Lovelace","org":"Acme IT"}"#,
            "\n",
        ),
    )
    .unwrap();
    let out = Command::new(bin("tether-agent"))
        .args(["--data-dir", data.path().to_str().unwrap(), "log"])
        .env("TZ", "Asia/Tokyo")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text,
        "2026-11-25 03:35:00 JST  Ada Lovelace of Acme IT entered your code.\n\
         2026-11-25 03:34:27 JST  You got a code to read to your helper.\n"
    );
}

/// Issue 17 item 25: `enroll-token create` says the expiry in words and warns about an
/// organisation without technicians (a typo); tokens can be listed and revoked, devices listed
/// and removed, with the real `tether-relay`.
#[test]
fn enrollment_tokens_and_devices_for_operators() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    tether_tests::procs::add_technician(data, "Ada Lovelace", "Acme IT");
    let relay = |args: &[&str]| {
        let out = Command::new(bin("tether-relay"))
            .args(["--data-dir", data])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (status, out, err) = relay(&["enroll-token", "create", "--org", "Acme IT", "--uses", "5"]);
    assert_eq!(status, Some(0), "{err}");
    assert!(out.contains("5 uses, expires in 7 days ("), "{out}");
    assert!(!out.contains(" s (unix"), "{out}");
    assert!(
        err.is_empty(),
        "an organisation with technicians: no warning: {err}"
    );
    let (status, out, err) = relay(&[
        "enroll-token",
        "create",
        "--org",
        "Acme ITT",
        "--expires",
        "12h",
    ]);
    assert_eq!(status, Some(0), "{err}");
    assert!(out.contains("1 use, expires in 12 hours"), "{out}");
    assert!(
        err.contains("warning: no technician belongs to \"Acme ITT\"") && err.contains("Acme IT"),
        "{err}"
    );
    let (_, list, _) = relay(&["enroll-token", "list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Acme ITT") && l.contains("1 use left, expires in 12 hours")),
        "{list}"
    );
    let typo_id = lines
        .iter()
        .find(|l| l.contains("Acme ITT"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let (status, out, err) = relay(&["enroll-token", "revoke", typo_id]);
    assert_eq!(status, Some(0), "{err}");
    assert!(out.contains("revoked"), "{out}");
    let (_, list, _) = relay(&["enroll-token", "list"]);
    assert!(!list.contains("Acme ITT"), "{list}");
    let (status, _, err) = relay(&["enroll-token", "revoke", typo_id]);
    assert_eq!(status, Some(1), "{err}");
    assert!(err.contains("no enrollment token"), "{err}");
    let (status, out, _) = relay(&["devices", "list"]);
    assert_eq!(status, Some(0));
    assert_eq!(out.trim(), "no enrolled devices");
    let (status, _, err) = relay(&["devices", "remove", "pc-1", "--org", "Acme IT"]);
    assert_eq!(status, Some(1));
    assert!(err.contains("no device \"pc-1\""), "{err}");
}

/// Issue 17 item 20: scope sets read as names in JSON (both ways), and stay one byte on the wire.
#[test]
fn scopes_are_names_in_json_and_bits_on_the_wire() {
    let set: tether_proto::ScopeSet = "view,inventory".parse().unwrap();
    let json = serde_json::to_value(set).unwrap();
    assert_eq!(json, serde_json::json!(["view", "inventory"]));
    let back: tether_proto::ScopeSet = serde_json::from_value(json).unwrap();
    assert_eq!(back, set);
    assert!(serde_json::from_str::<tether_proto::ScopeSet>("[\"root\"]").is_err());
    let wire = tether_proto::codec::to_body(&set).unwrap();
    assert_eq!(wire.len(), 1, "{wire:?}");
    assert_eq!(
        tether_proto::codec::from_body::<tether_proto::ScopeSet>(&wire).unwrap(),
        set
    );
}

/// Issue 17 item 11: `share` shows a new code after a session (as README says) until the user types
/// q, `--once` stops after one, and no developer log line reaches the user's terminal: with
/// `RUST_LOG=info` the log lines go to `agent.log` in the data directory, not to stdout or stderr.
#[tokio::test(flavor = "multi_thread")]
async fn share_gives_a_new_code_after_a_session_and_keeps_logs_off_the_terminal() {
    use std::io::Write;
    let relay = TestRelay::start().await;
    let (addr, fp) = addr_fp(&relay);
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Kill(
        Command::new(bin("tether-agent"))
            .args(["share", "--relay", &addr, "--relay-cert-sha256", &fp])
            .env("TETHER_AGENT_DATA", dir.path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let out = lines(agent.0.stdout.take().unwrap());
    let err = lines(agent.0.stderr.take().unwrap());
    let mut stdin = agent.0.stdin.take().unwrap();
    let first = wait_for_code(&out);
    let uptime = console(&relay, &["diag", "--code", &first, "uptime"])
        .spawn()
        .unwrap();
    wait_for(&out, "Allow?");
    writeln!(stdin, "y").unwrap();
    let done = finish(uptime, Duration::from_secs(60), "the probe");
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    wait_for(&out, "Session ended: the technician ended the session");
    let second = wait_for_code(&out);
    assert_ne!(first, second, "a new code follows the session");
    writeln!(stdin, "q").unwrap();
    let start = Instant::now();
    while agent.0.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(20), "q ends sharing");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(agent.0.wait().unwrap().success());
    // Nothing on the terminal looks like a log line; the log file has them.
    let terminal: Vec<String> = out.try_iter().chain(err.try_iter()).collect();
    for line in &terminal {
        assert!(
            !line.contains(" INFO ") && !line.contains(" WARN ") && !line.contains("\u{1b}["),
            "a log line reached the terminal: {line:?}"
        );
    }
    let log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap();
    assert!(log.contains("consent given"), "{log}");
    assert!(!log.contains("\u{1b}["), "no colours in the log file");

    // `--once`: the agent leaves after the session.
    let mut once = Kill(
        Command::new(bin("tether-agent"))
            .args([
                "share",
                "--once",
                "--relay",
                &addr,
                "--relay-cert-sha256",
                &fp,
            ])
            .env("TETHER_AGENT_DATA", dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let out = lines(once.0.stdout.take().unwrap());
    let c = wait_for_code(&out);
    let uptime = console(&relay, &["diag", "--code", &c, "uptime"])
        .spawn()
        .unwrap();
    wait_for(&out, "Allow?");
    writeln!(once.0.stdin.take().unwrap(), "y").unwrap();
    assert!(
        finish(uptime, Duration::from_secs(60), "the probe")
            .status
            .success()
    );
    let start = Instant::now();
    while once.0.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "--once leaves after the session"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
