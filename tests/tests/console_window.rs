//! The technician console window driven as a technician would: the real `tether-console window` on
//! its own Xvfb, the real agent window on another, a real relay, xdotool clicks and typing at the
//! windows' fixed layout positions, and each window's standard output lines as the observation.
//!
//! Set `TETHER_SCREENSHOTS=DIR` to also save screenshots (docs/console-*.png come from
//! `TETHER_SCREENSHOTS=$PWD/docs cargo test -p tether-tests --test console_window`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use tether_console::window::layout as console;
use tether_proto::diag::Probe;
use tether_proto::{Scope, ScopeSet, SessionCode};
use tether_tests::TestRelay;
use tether_tests::gui::{Gui, relay_args};
use tether_tests::procs::bin;

use tether_agent::window::layout as agent;

/// What the console asks for in most of these tests: every scope but clipboard and files (their
/// tests are `clipboard` and `files`).
const SESSION_SCOPES: &str = "view,control,diagnostics,inventory";

/// Ticks every scope of `ask` in the console window's top bar (nothing is ticked when it opens).
fn tick_scopes(c: &Gui, ask: ScopeSet) {
    for (i, s) in Scope::ALL.iter().enumerate() {
        if ask.contains(*s) {
            c.click(console::tick(console::scope_box(i)));
        }
    }
}

/// A relay, the agent window with a code, the console window that entered it asking for
/// [`SESSION_SCOPES`], and the user's answer: `tick` are rows of the consent dialog the user ticks before
/// "Allow" (nothing is ticked when it opens). Also returns the verification code the agent window
/// showed. `deny`: the user presses Deny instead.
async fn answered(tick: &[usize], deny: bool) -> (TestRelay, Gui, Gui, String) {
    let relay = TestRelay::start().await;
    let a = Gui::agent(&relay, 60);
    a.click(agent::centre(agent::GET_HELP));
    let code: SessionCode = a.code().parse().unwrap();
    let c = Gui::console(&relay);
    tick_scopes(&c, SESSION_SCOPES.parse().unwrap());
    c.type_into(console::centre(console::CODE), &code.to_string());
    c.click(console::centre(console::CONNECT));
    c.expect(
        "consent: asking for view,control,diagnostics,inventory; waiting for the user's answer",
    );
    let paired = a.expect("Verification code: ");
    let verification = paired
        .split("Verification code: ")
        .nth(1)
        .unwrap()
        .split(" (")
        .next()
        .unwrap()
        .to_string();
    a.expect("asks to:");
    std::thread::sleep(Duration::from_secs(1));
    for row in tick {
        a.click(agent::scope_box(*row));
    }
    let button = if deny { agent::DENY } else { agent::ALLOW };
    a.click(agent::centre(button));
    (relay, a, c, verification)
}

async fn connected(tick: &[usize]) -> (TestRelay, Gui, Gui, String) {
    answered(tick, false).await
}

/// All four rows of the consent dialog.
const ALL_ROWS: &[usize] = &[0, 1, 2, 3];

/// Where the console window shoots from: its full size, the pointer parked on the consent strip.
fn shot(c: &Gui, name: &str) {
    c.screenshot(name, console::SIZE, (1400, 80));
}

#[tokio::test(flavor = "multi_thread")]
async fn entering_a_code_pairs_and_shows_the_granted_scopes() {
    // The consent rows follow the scope order: view (0), control (1), diagnostics, inventory.
    assert_eq!(ScopeSet::all().iter().nth(1), Some(Scope::Control));
    let (_relay, a, c, verification) = connected(&[0, 2, 3]).await;
    let line = c.expect("consent: granted");
    assert!(
        line.starts_with(
            "consent: granted view,diagnostics,inventory; not granted: control; as Ada Lovelace of Acme IT; verification "
        ),
        "{line}"
    );
    a.expect("You allowed: view,diagnostics,inventory.");
    // The verification code both sides show is the same.
    assert_eq!(line.rsplit("verification ").next().unwrap(), verification);
    let b = a.expect("banner:");
    assert!(b.contains("allowed: view,diagnostics,inventory"), "{b}");
    assert!(b.ends_with("stop control: hidden"), "{b}");
    // "End session" ends it on both sides.
    c.click(console::centre(console::END));
    c.expect("session ended: you ended the session");
    a.expect("Session ended: the technician ended the session");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_inventory_filter_narrows_rows() {
    let (_relay, a, c, _) = connected(ALL_ROWS).await;
    c.expect("consent: granted view,control,diagnostics,inventory;");
    // Granted inventory is fetched at once and shown as the software table.
    let line = c.expect("inventory table software:");
    let count = |line: &str| -> (usize, usize) {
        let rest = line.split("software: ").nth(1).unwrap();
        let mut words = rest.split_whitespace();
        let shown = words.next().unwrap().parse().unwrap();
        assert_eq!(words.next(), Some("of"));
        (shown, words.next().unwrap().parse().unwrap())
    };
    let (shown, total) = count(&line);
    assert_eq!(shown, total, "no filter yet: {line}");
    assert!(total > 10, "the agent's machine lists its packages: {line}");
    a.expect("sent the technician the hardware and software inventory");

    c.type_into(console::centre(console::FILTER), "libc6");
    let line = c.expect("match \"libc6\"");
    let (shown, all) = count(&line);
    assert_eq!(all, total);
    assert!(shown > 0 && shown < total, "the filter narrows: {line}");
    let names = line.rsplit("\"libc6\": ").next().unwrap();
    for name in names.trim_end_matches(", ...").split(", ") {
        assert!(name.contains("libc6"), "{name} in {line}");
    }
    shot(&c, "console-inventory");

    // Another table keeps the filter; a filter nothing matches leaves no rows.
    c.click(console::centre(console::table_tab(1)));
    c.expect("inventory table disks:");
    c.type_into(console::centre(console::FILTER), "-no-such-thing");
    let line = c.expect("match \"libc6-no-such-thing\"");
    assert!(line.contains(": 0 of "), "{line}");
}

/// Issue 17 item 15 (the health check's summary line) is checked here too.
#[tokio::test(flavor = "multi_thread")]
async fn running_a_probe_shows_its_verdict() {
    let (_relay, a, c, _) = connected(ALL_ROWS).await;
    c.expect("consent: granted view,control,diagnostics,inventory;");
    c.click(console::centre(console::TAB_DIAGNOSTICS));
    // disk-usage is the fourth probe in the catalog.
    assert_eq!(
        tether_proto::diag::ProbeKind::ALL[3],
        tether_proto::diag::ProbeKind::DiskUsage
    );
    c.click(console::centre(console::probe(3)));
    c.expect("probe selected: disk-usage");
    c.click(console::centre(console::RUN));
    c.expect("probe disk-usage: running");
    a.expect("-> running");
    let line = c.expect("probe disk-usage: ");
    let verdict = line
        .strip_prefix("probe disk-usage: ")
        .unwrap()
        .split(" in ")
        .next()
        .unwrap();
    assert!(
        ["OK", "WARNING", "PROBLEM", "N/A"].contains(&verdict),
        "a verdict, not a failure: {line}"
    );
    a.expect("-> sent the technician");

    // The health check shows one verdict per probe, after a summary line (issue 17 item 15).
    c.click(console::centre(console::HEALTH));
    c.expect("health check: running");
    let summary = c.expect("health check: ");
    assert!(
        summary.contains(" problems, ")
            && summary.contains(" warnings, ")
            && summary.ends_with(" ok"),
        "{summary}"
    );
    for _ in Probe::health_check() {
        let line = c.expect("probe ");
        assert!(line.contains(" ms: "), "{line}");
    }
    shot(&c, "console-diagnostics");
    // A probe whose parameters are wrong never leaves the console.
    let tcp = tether_proto::diag::ProbeKind::ALL
        .iter()
        .position(|k| *k == tether_proto::diag::ProbeKind::TcpConnect)
        .unwrap();
    c.click(console::centre(console::probe(tcp)));
    c.type_into(console::centre(console::PARAMS), "host=example.com");
    c.click(console::centre(console::RUN));
    let line = c.expect("probe tcp-connect: ");
    assert!(line.contains("bad parameters"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_shows_as_denied_and_a_new_code_can_follow() {
    let (_relay, a, c, _) = answered(&[], true).await;
    c.expect("consent: denied: the user denied consent");
    a.expect("You refused. Nothing was shared.");
    // The inventory panel stays empty: nothing was fetched.
    assert!(!c.saw("inventory:"));
    // The code field works again: a mistyped code is refused in the window itself.
    c.type_into(console::centre(console::CODE), "x");
    c.click(console::centre(console::CONNECT));
    c.expect("notice: That is not a session code");
}

/// "Chat first" in the real console window: Connect pairs without asking, the technician's line
/// reaches the real agent window and the user's line comes back, and only "Ask for access" shows the
/// consent dialog. Then an invitation the user allows shows the colleague's code in the chat tab.
#[tokio::test(flavor = "multi_thread")]
async fn chat_first_both_ways_then_an_invitation_gives_a_code() {
    let relay = TestRelay::start().await;
    // An L2 colleague exists for the tier invitation.
    tether_relay::technicians::Technicians::new(relay.dir.path())
        .add_full(
            "Grace Hopper",
            "Acme IT",
            tether_proto::msg::TechnicianRole::Technician,
            tether_proto::msg::Tier::L2,
            None,
        )
        .unwrap();
    let a = Gui::agent(&relay, 60);
    a.click(agent::centre(agent::GET_HELP));
    let code: SessionCode = a.code().parse().unwrap();
    let c = Gui::console(&relay);
    c.click(console::centre(console::TAB_CHAT));
    c.click(console::tick(console::CHAT_FIRST));
    c.expect("chat first: on");
    tick_scopes(&c, SESSION_SCOPES.parse().unwrap());
    c.type_into(console::centre(console::CODE), &code.to_string());
    c.click(console::centre(console::CONNECT));
    c.expect("paired: as Ada Lovelace of Acme IT");
    a.expect("Verification code: ");

    c.type_into(
        console::centre(console::CHAT_INPUT),
        "Hello, Ada from IT here. May I look at your screen?",
    );
    c.xdotool(&["key", "Return"]);
    c.expect("chat: you: Hello, Ada from IT here. May I look at your screen?");
    a.expect("[Ada Lovelace of Acme IT] Hello, Ada from IT here. May I look at your screen?");
    a.type_into(
        agent::centre(agent::CHAT_INPUT),
        "Yes, the printer is offline",
    );
    a.xdotool(&["key", "Return"]);
    c.expect("chat: user: Yes, the printer is offline");
    assert!(!a.saw("asks to:"), "nothing is asked before Ask for access");

    c.click(console::centre(console::ASK));
    c.expect("consent: asking for view,control,diagnostics,inventory");
    a.expect("asks to:");
    // Issue 17 item 5: chat goes on both ways while the user decides: the technician's line
    // reaches the dialog, and the user's question reaches the technician before any answer.
    c.type_into(
        console::centre(console::CHAT_INPUT),
        "It is only to see the printer dialog",
    );
    c.xdotool(&["key", "Return"]);
    c.expect("chat: you: It is only to see the printer dialog");
    a.expect("[Ada Lovelace of Acme IT] It is only to see the printer dialog");
    a.type_into(
        agent::centre(agent::CHAT_INPUT),
        "why do you need my mouse?",
    );
    a.xdotool(&["key", "Return"]);
    c.expect("chat: user: why do you need my mouse?");
    assert!(
        !c.saw("consent: granted"),
        "the question arrived before the answer"
    );
    std::thread::sleep(Duration::from_secs(1));
    for row in ALL_ROWS {
        a.click(agent::scope_box(*row));
    }
    a.click(agent::centre(agent::ALLOW));
    c.expect("consent: granted view,control,diagnostics,inventory;");

    c.type_into(console::centre(console::INVITEE), "L2");
    c.click(console::centre(console::INVITE));
    c.expect("invite: asking the user to let in any L2 technician");
    let line = a.expect("invite prompt: Ada");
    assert!(line.ends_with("hand-over: no"), "{line}");
    a.click(agent::centre(agent::INVITE_ALLOW));
    c.expect("invite: code ready");
    shot(&c, "console-chat");
    c.click(console::centre(console::END));
    c.expect("session ended: you ended the session");
    a.expect("Session ended: the technician ended the session");
}

/// Issue 17 items 1, 2, 4 and 14: the console window opens with nothing ticked (Connect asks to tick
/// something first); as soon as pairing succeeds, before the user has answered, it shows the
/// verification code with "read it out to the user" (the code the agent window shows) and the
/// user's reason; and a session that asked for diagnostics only never mentions the screen.
#[tokio::test(flavor = "multi_thread")]
async fn the_code_and_the_reason_show_before_consent() {
    let relay = TestRelay::start().await;
    let mut agent_cmd = Command::new(bin("tether-agent"));
    agent_cmd.arg("window").args(relay_args(&relay)).args([
        "--consent-timeout",
        "60",
        "--reason",
        "my printer does not print",
    ]);
    let a = Gui::start(agent_cmd, (1280, 800), agent::TITLE);
    a.click(agent::centre(agent::GET_HELP));
    let code: SessionCode = a.code().parse().unwrap();
    let c = Gui::console(&relay);
    c.type_into(console::centre(console::CODE), &code.to_string());
    c.click(console::centre(console::CONNECT));
    c.expect("notice: Tick at least one thing to ask for.");
    tick_scopes(&c, [Scope::Diagnostics].into_iter().collect());
    c.click(console::centre(console::CONNECT));
    c.expect("consent: asking for diagnostics; waiting for the user's answer");
    let line = c.expect("paired: as Ada Lovelace of Acme IT; verification ");
    let verification = line
        .split("verification ")
        .nth(1)
        .unwrap()
        .strip_suffix(": read it out to the user; chat open")
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    c.expect("reason: the user asks for help with: my printer does not print");
    let shown = a.expect("Verification code: ");
    assert!(
        shown.contains(&format!("Verification code: {verification} ")),
        "the agent shows the same code: {shown} vs {verification}"
    );
    a.expect("asks to:");
    std::thread::sleep(Duration::from_secs(1));
    assert!(!c.saw("consent: granted"), "shown before the user answered");
    shot(&c, "console-waiting");
    a.click(agent::scope_box(0));
    a.click(agent::centre(agent::ALLOW));
    c.expect("consent: granted diagnostics; not granted: (none);");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !c.saw("screen: view stopped"),
        "view was never asked for, so nothing is said about it"
    );
    c.click(console::centre(console::END));
    c.expect("session ended: you ended the session");
}

/// Issue 16 item 6: a session granted `view` only shows "Ask for control"; pressing it asks the
/// user (the agent window's dialog asks for just `control`), and once they allow it the window
/// starts the control stream: the technician's mouse over the live screen reaches the user's
/// computer. Stop control shows at once in the journal and the notice, and the button is back.
#[tokio::test(flavor = "multi_thread")]
async fn ask_for_control_then_stop_control_in_the_windows() {
    let (_relay, a, c, _) = connected(&[0]).await;
    c.expect("consent: granted view; not granted: control,diagnostics,inventory;");
    a.expect("stop control: hidden");
    std::thread::sleep(Duration::from_secs(1));
    // The pointer parked off the button, so it shows without a hover highlight.
    c.screenshot("console-ask-control", console::SIZE, (1000, 880));
    c.click(console::centre(console::ASK_MORE));
    c.expect("grant: asking the user for control; waiting for the answer");
    let line = a.expect("consent dialog:");
    assert!(
        line.ends_with("| asks: control | more; allowed already: view"),
        "{line}"
    );
    std::thread::sleep(Duration::from_secs(1));
    a.click(agent::scope_box(0));
    a.click(agent::centre(agent::ALLOW));
    c.expect("grant: the user allowed control; now allowed: view,control");
    c.expect("grant: asked for control: the user allowed control; now allowed: view,control");
    a.expect("stop control: shown");
    // The technician's mouse over the live screen now reaches the user's computer.
    for (x, y) in [(900, 400), (1000, 450), (1100, 500)] {
        c.xdotool(&["mousemove", &x.to_string(), &y.to_string()]);
        std::thread::sleep(Duration::from_millis(300));
    }
    a.expect("of Acme IT is using your mouse and keyboard.");

    a.click(agent::centre(agent::STOP_CONTROL));
    c.expect("grant: the user took back control; now allowed: view");
    a.expect("stop control: hidden");
    // Asked again: the button is back and the user is asked again; silence is not needed here.
    std::thread::sleep(Duration::from_secs(1));
    c.click(console::centre(console::ASK_MORE));
    c.expect("grant: asking the user for control; waiting for the answer");
    a.expect("consent dialog:");
    std::thread::sleep(Duration::from_secs(1));
    a.click(agent::centre(agent::DENY));
    c.expect("grant: asked for control: the user said no to control; still allowed: view");
    // The session goes on.
    c.click(console::centre(console::END));
    c.expect("session ended: you ended the session");
}

/// Issue 19: files dropped on the window before a session are not sent anywhere, and the window
/// says why (a real XDND drop, as a file manager makes it).
#[tokio::test(flavor = "multi_thread")]
async fn files_dropped_without_a_session_are_not_sent() {
    let relay = TestRelay::start().await;
    let c = Gui::console(&relay);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fix me.sh");
    std::fs::write(&file, b"echo fixed\n").unwrap();
    let at = (1000, 500);
    assert!(c.drop_files(at, &[&file]), "the window accepts a drop");
    c.expect("files: 1 dropped item(s) not sent: Connect first.");
}

/// Issue 19: with `files` granted, a file dropped on the console window lands in the user's
/// landing folder, byte for byte; the Files tab lists a shared folder, and a click on a file there
/// fetches it into the window's download folder, byte for byte.
#[tokio::test(flavor = "multi_thread")]
async fn dropped_files_are_pushed_and_a_listed_file_is_pulled() {
    let relay = TestRelay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (landing, shared, downloads) = (
        dir.path().join("landing"),
        dir.path().join("shared"),
        dir.path().join("downloads"),
    );
    std::fs::create_dir_all(&shared).unwrap();
    let log: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    std::fs::write(shared.join("crash.log"), &log).unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "files_dir = {:?}\nfiles_roots = [{:?}]\n",
            landing.display().to_string(),
            shared.display().to_string()
        ),
    )
    .unwrap();
    let mut a = Command::new(bin("tether-agent"));
    a.arg("window")
        .args(relay_args(&relay))
        .args(["--consent-timeout", "60", "--config"])
        .arg(&config);
    let a = Gui::start(a, (1280, 800), agent::TITLE);
    a.click(agent::centre(agent::GET_HELP));
    let code: SessionCode = a.code().parse().unwrap();
    let mut c = Command::new(bin("tether-console"));
    c.args(relay_args(&relay))
        .args(["window", "--downloads"])
        .arg(&downloads)
        .env("TETHER_TOKEN", &relay.token);
    let c = Gui::start(c, (1920, 1080), console::TITLE);
    tick_scopes(&c, "files".parse().unwrap());
    c.type_into(console::centre(console::CODE), &code.to_string());
    c.click(console::centre(console::CONNECT));
    a.expect("asks to:");
    std::thread::sleep(Duration::from_secs(1));
    a.click(agent::scope_box(0));
    a.click(agent::centre(agent::ALLOW));
    c.expect("consent: granted files;");

    let fix = dir.path().join("fix me.sh");
    std::fs::write(&fix, b"#!/bin/sh\necho fixed\n").unwrap();
    assert!(
        c.drop_files((1000, 500), &[&fix]),
        "the window accepts the drop"
    );
    c.expect("files: pushing 1 dropped item(s)");
    c.expect("files: push fix me.sh: done");
    assert_eq!(
        std::fs::read(landing.join("fix me.sh")).unwrap(),
        b"#!/bin/sh\necho fixed\n"
    );

    c.click(console::centre(console::TAB_FILES));
    c.type_into(
        console::centre(console::FILES_DIR),
        &shared.display().to_string(),
    );
    c.click(console::centre(console::FILES_LIST));
    c.expect("(1 entries)");
    c.click(console::centre(console::files_entry(0)));
    c.expect("files: pulling");
    c.expect("files: pull ");
    let line = c.expect("crash.log: done");
    assert!(line.contains(&downloads.display().to_string()), "{line}");
    assert_eq!(std::fs::read(downloads.join("crash.log")).unwrap(), log);
    c.screenshot("console-files", console::SIZE, (1400, 880));
}
