//! What IT deploys (issue 12): the agent config that `tether-relay agent-config` writes pins the relay
//! and is enough for the agent window to show a code; the agent package carries it; an agent with no
//! relay configured still opens its window and says what is missing. The same flows from installed
//! packages in a clean Debian root are in `packaging/fresh-check` (CI).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use tether_tests::TestRelay;
use tether_tests::gui::Gui;
use tether_tests::procs::bin;

/// Relay settings a developer's shell may carry; the windows here must work without them.
const RELAY_ENV: [&str; 4] = [
    "TETHER_RELAY",
    "TETHER_RELAY_CERT_SHA256",
    "TETHER_RELAY_CA_FILE",
    "TETHER_AGENT_CONFIG",
];

fn agent_window(config: &std::path::Path) -> Gui {
    let mut c = Command::new(bin("tether-agent"));
    c.arg("window").arg("--config").arg(config);
    for v in RELAY_ENV {
        c.env_remove(v);
    }
    Gui::start(c, (1280, 800), tether_agent::window::layout::TITLE)
}

/// `tether-relay --data-dir DIR ARGS...` on the test relay's data directory.
fn relay_admin(relay: &TestRelay, args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(bin("tether-relay"))
        .arg("--data-dir")
        .arg(relay.dir.path())
        .args(args)
        .output()
        .unwrap()
}

/// Its standard output, after asserting it succeeded.
fn succeeded(out: std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    String::from_utf8(out.stdout).unwrap()
}

fn agent_config(relay: &TestRelay, org: &str) -> String {
    let addr = relay.target().addr;
    succeeded(relay_admin(
        relay,
        &[
            "agent-config".as_ref(),
            "--org".as_ref(),
            org.as_ref(),
            "--address".as_ref(),
            addr.as_ref(),
        ],
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_config_from_the_relay_is_all_the_window_needs() {
    let relay = TestRelay::start().await;
    let text = agent_config(&relay, "Acme IT");
    let parsed: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(parsed["relay"].as_str().unwrap(), relay.target().addr);
    assert_eq!(
        parsed["relay_cert_sha256"].as_str().unwrap(),
        relay.handle.fingerprint()
    );
    assert_eq!(parsed["allowed_orgs"][0].as_str(), Some("Acme IT"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, &text).unwrap();
    let gui = tokio::task::spawn_blocking(move || {
        let gui = agent_window(&path);
        // What the user does after the double-click: "Get help".
        gui.click(tether_agent::window::layout::centre(
            tether_agent::window::layout::GET_HELP,
        ));
        gui.expect("session code:");
        gui
    })
    .await
    .unwrap();
    drop(gui);
}

#[test]
fn with_no_relay_configured_the_window_opens_and_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, "# nothing set up yet\n").unwrap();
    let mut gui = agent_window(&path);
    gui.expect("This computer is not set up for remote help yet");
    assert!(
        gui.still_running(),
        "the window stays open until the user closes it"
    );
    gui.screenshot("agent-not-configured", [900.0, 600.0], (1200, 780));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_package_carries_the_config_as_a_conffile() {
    let relay = TestRelay::start().await;
    // A stand-in agent package with the real package's name and layout.
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::copy(bin("tether-agent"), root.join("usr/bin/tether-agent")).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        "Package: tether-agent\nVersion: 0.1.0-1\nArchitecture: amd64\nMaintainer: t <t@example.org>\n\
         Description: Tether agent\n",
    )
    .unwrap();
    let deb = work.path().join("tether-agent.deb");
    let built = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-b"])
        .arg(&root)
        .arg(&deb)
        .output()
        .expect("dpkg-deb (install dpkg-dev)");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );

    let out_dir = work.path().join("out");
    let out = succeeded(relay_admin(
        &relay,
        &[
            "agent-package".as_ref(),
            "--org".as_ref(),
            "Acme IT".as_ref(),
            "--address".as_ref(),
            "relay.acme.example:4433".as_ref(),
            "--agent-deb".as_ref(),
            deb.as_os_str(),
            "--out".as_ref(),
            out_dir.as_os_str(),
        ],
    ));
    let made = std::path::PathBuf::from(out.trim());
    assert_eq!(
        made.file_name().unwrap(),
        "tether-agent_0.1.0-1+acme.it_amd64.deb"
    );
    let unpacked = work.path().join("unpacked");
    let ok = Command::new("dpkg-deb")
        .arg("-R")
        .arg(&made)
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(ok.success());
    let config = std::fs::read_to_string(unpacked.join("etc/tether/agent.toml")).unwrap();
    let parsed: toml::Value = toml::from_str(&config).unwrap();
    assert_eq!(parsed["relay"].as_str(), Some("relay.acme.example:4433"));
    assert_eq!(
        parsed["relay_cert_sha256"].as_str().unwrap(),
        relay.handle.fingerprint()
    );
    let conffiles = std::fs::read_to_string(unpacked.join("DEBIAN/conffiles")).unwrap();
    assert!(
        conffiles.lines().any(|l| l == "/etc/tether/agent.toml"),
        "{conffiles}"
    );
    assert!(unpacked.join("usr/bin/tether-agent").is_file());

    // A bad input leaves nothing behind: no org, no package.
    let bad_out = work.path().join("bad");
    let bad = relay_admin(
        &relay,
        &[
            "agent-package".as_ref(),
            "--org".as_ref(),
            "".as_ref(),
            "--address".as_ref(),
            "r:1".as_ref(),
            "--agent-deb".as_ref(),
            deb.as_os_str(),
            "--out".as_ref(),
            bad_out.as_os_str(),
        ],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--org"));
    assert!(!work.path().join("bad").exists());
}

/// Issue 17 item 19: every binary answers `--help` and `--version` (exit 0, no work done), and the
/// demo's help explains what it does instead of running it.
#[test]
fn every_binary_answers_help_and_version() {
    let bins = [
        bin("tether-relay"),
        bin("tether-agent"),
        bin("tether-console"),
        env!("CARGO_BIN_EXE_tether-demo").into(),
        env!("CARGO_BIN_EXE_screen-bench").into(),
    ];
    for b in &bins {
        for flag in ["--help", "--version"] {
            let out = Command::new(b)
                .arg(flag)
                .env_remove("DISPLAY")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{} {flag}: {out:?}", b.display());
            assert!(
                !text.trim().is_empty(),
                "{} {flag} printed nothing",
                b.display()
            );
            if flag == "--version" {
                assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
            }
        }
    }
    let help = Command::new(env!("CARGO_BIN_EXE_tether-demo"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("Usage: tether-demo"), "{text}");
    assert!(
        !text.contains("relay listening"),
        "--help ran the demo: {text}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_tether-demo"))
        .arg("--frobnicate")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
