//! The real binaries, driven as a user would: relay, technician registration, agent with an answer on
//! standard input, console with --json, exit codes, and Ctrl-C on the relay.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};
use tether_tests::procs::{Kill, add_technician, bin, lines, wait_for, wait_for_code};

#[test]
fn relay_agent_and_console_binaries_work_together() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let mut relay = Kill(
        Command::new(bin("tether-relay"))
            .args(["--data-dir", data, "serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let relay_out = lines(relay.0.stdout.take().unwrap());
    let addr = wait_for(&relay_out, "listening on")
        .split_whitespace()
        .nth(3)
        .unwrap()
        .to_string();
    let fp = wait_for(&relay_out, "certificate SHA-256")
        .split_whitespace()
        .last()
        .unwrap()
        .to_string();

    let token = add_technician(data, "Ada Lovelace", "Acme IT");
    assert!(token.starts_with("tt_"));
    assert!(
        !std::fs::read_to_string(dir.path().join("technicians.json"))
            .unwrap()
            .contains(&token)
    );

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
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let agent_out = lines(agent.0.stdout.take().unwrap());
    let code = wait_for_code(&agent_out);
    assert_eq!(code.len(), 11, "three groups of three digits: {code:?}");

    let console = |args: &[&str], token: &str, fp: &str| {
        Command::new(bin("tether-console"))
            .args(args)
            .env("TETHER_RELAY", &addr)
            .env("TETHER_RELAY_CERT_SHA256", fp)
            .env("TETHER_TOKEN", token)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let running = console(&["inventory", "--json", "--code", &code], &token, &fp);
    // The user reads the prompt, then answers.
    wait_for(&agent_out, "asks to:");
    wait_for(&agent_out, "Allow?");
    let mut stdin = agent.0.stdin.take().unwrap();
    writeln!(stdin, "y").unwrap();
    let out = running.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inv: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(inv["hardware"]["system"]["hostname"], hostname.trim());
    wait_for(
        &agent_out,
        "sent the technician the hardware and software inventory",
    );
    wait_for(&agent_out, "Session ended");
    assert!(agent.0.wait().unwrap().success());

    // Exit codes for a bad token and a wrong fingerprint.
    let bad = console(&["inventory", "--code", &code], "tt_nope", &fp)
        .wait_with_output()
        .unwrap();
    assert_eq!(
        bad.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("token"));
    let wrong_fp = "00".repeat(32);
    let bad = console(&["inventory", "--code", &code], &token, &wrong_fp)
        .wait_with_output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("fingerprint mismatch"));
    let bad = console(&["inventory", "--code", "12x"], &token, &fp)
        .wait_with_output()
        .unwrap();
    assert_eq!(
        bad.status.code(),
        Some(2),
        "a mistyped code is a usage error"
    );

    // Ctrl-C: the relay stops by itself, promptly and cleanly.
    Command::new("kill")
        .args(["-INT", &relay.0.id().to_string()])
        .status()
        .unwrap();
    wait_for(&relay_out, "stopped.");
    let status = relay.0.wait().unwrap();
    assert!(status.success());
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(audit.contains("session_started") && audit.contains("session_ended"));
}
