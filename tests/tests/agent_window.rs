//! The agent window driven as a user would: a real Xvfb per test, the real `tether-agent window`
//! binary, a real relay and console, and xdotool clicks at the window's fixed button positions.
//!
//! Set `TETHER_SCREENSHOTS=DIR` to also save a screenshot of each state (docs/agent-*.png come from
//! `TETHER_SCREENSHOTS=$PWD/docs cargo test -p tether-tests --test agent_window`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;
use tether_tests::gui::Gui;
use tether_tests::procs::{Kill, add_technician, bin};

use tether_agent::window::layout;
use tether_console::{ConsoleConfig, ConsoleError, open_session, pair_session};
use tether_net::Trust;
use tether_proto::diag::Probe;
use tether_proto::msg::{Invitee, Request, TechnicianRole, Tier};
use tether_proto::screen::InputEvent;
use tether_proto::{Scope, ScopeSet, SessionCode};
use tether_relay::Limits;
use tether_tests::TestRelay;

/// The agent window's own steps on top of the shared [`Gui`] driver.
trait AgentWindow {
    /// "Get help", then the code it shows.
    fn get_help(&self) -> SessionCode;
    /// Saves a screenshot of the window when `TETHER_SCREENSHOTS` names a directory.
    fn shot(&self, name: &str);
}

impl AgentWindow for Gui {
    fn get_help(&self) -> SessionCode {
        self.click(layout::centre(layout::GET_HELP));
        let line = self.expect("session code:");
        line.split("code:").nth(1).unwrap().trim().parse().unwrap()
    }

    fn shot(&self, name: &str) {
        self.screenshot(name, layout::SIZE, (555, 595));
    }
}

/// Plain `tether-agent` with no arguments, as a desktop launcher starts it, the relay taken from
/// the environment.
fn start_default(relay: &TestRelay) -> Gui {
    let target = relay.target();
    let Trust::Fingerprint(fp) = &target.trust else {
        unreachable!("the test relay is pinned by fingerprint")
    };
    let mut c = Command::new(bin("tether-agent"));
    c.env("TETHER_RELAY", &target.addr)
        .env("TETHER_RELAY_CERT_SHA256", fp);
    Gui::start(c, (1280, 800), layout::TITLE)
}

/// `tether-agent window` on a relay given by address and fingerprint.
fn agent_at(addr: &str, fp: &str, consent_timeout_secs: u64) -> Gui {
    let mut c = Command::new(bin("tether-agent"));
    c.args(["window", "--relay", addr, "--relay-cert-sha256", fp])
        .args(["--consent-timeout", &consent_timeout_secs.to_string()]);
    Gui::start(c, (1280, 800), layout::TITLE)
}

fn scopes(list: &str) -> ScopeSet {
    list.parse().unwrap()
}

/// Ticks the first `n` scope rows of the consent dialog (nothing is ticked when it opens).
fn tick_rows(w: &Gui, n: usize) {
    for i in 0..n {
        w.click(layout::scope_box(i));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deny_really_denies() {
    let relay = TestRelay::start_with(Limits::default(), None).await;
    // No arguments on a desktop: the window opens.
    let w = start_default(&relay);
    let code = w.get_help();
    let config = relay.console();
    let console =
        tokio::spawn(async move { open_session(&config, code, scopes("inventory")).await });
    w.expect("asks to:");
    std::thread::sleep(Duration::from_secs(1));
    w.click(layout::centre(layout::DENY));
    let result = console.await.unwrap();
    assert!(
        matches!(result, Err(ConsoleError::ConsentDenied)),
        "{:?}",
        result.err()
    );
    w.expect("You refused. Nothing was shared.");
    w.expect("Session ended: you did not allow anything");
}

/// Issue 17 item 1: the consent dialog opens with nothing ticked and "Allow" does nothing until
/// something is ticked; then exactly the ticked scope is granted.
#[tokio::test(flavor = "multi_thread")]
async fn unticked_scope_is_not_granted() {
    let relay = TestRelay::start_with(Limits::default(), None).await;
    let w = Gui::agent(&relay, 60);
    let code = w.get_help();
    let config = relay.console();
    let asked = scopes("diagnostics,inventory");
    let console = tokio::spawn(async move { open_session(&config, code, asked).await });
    w.expect("asks to:");
    std::thread::sleep(Duration::from_secs(1));
    // Rows follow the display order of scopes: diagnostics (0), inventory (1).
    assert_eq!(
        asked.iter().collect::<Vec<_>>(),
        [Scope::Diagnostics, Scope::Inventory]
    );
    // Nothing is ticked: "Allow" is not offered, so a click on it answers nothing.
    w.click(layout::centre(layout::ALLOW));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !console.is_finished(),
        "Allow with nothing ticked must not answer"
    );
    assert!(!w.saw("You allowed"), "nothing was allowed");
    // Tick diagnostics only.
    w.click(layout::scope_box(0));
    w.click(layout::centre(layout::ALLOW));
    let mut session = console.await.unwrap().expect("session opens");
    assert_eq!(session.granted, scopes("diagnostics"));
    let refused = session.request(&Request::Inventory).await;
    assert!(
        matches!(refused, Err(ConsoleError::ScopeDenied(Scope::Inventory))),
        "{refused:?}"
    );
    w.expect("refused: the technician asked for");
    let served = session
        .request(&Request::Diagnostic {
            probe: Probe::Uptime,
            timeout_secs: None,
        })
        .await;
    assert!(served.is_ok(), "{served:?}");
    w.expect("sent the technician");
    session.end().await;
    w.expect("Session ended: the technician ended the session");
}

#[tokio::test(flavor = "multi_thread")]
async fn countdown_denies() {
    let relay = TestRelay::start_with(Limits::default(), None).await;
    let w = Gui::agent(&relay, 4);
    let code = w.get_help();
    let config = relay.console();
    let console = tokio::spawn(async move { open_session(&config, code, ScopeSet::all()).await });
    w.expect("asks to:");
    w.shot("agent-consent-countdown");
    // Nobody clicks.
    let result = console.await.unwrap();
    assert!(
        matches!(result, Err(ConsoleError::ConsentTimeout)),
        "{:?}",
        result.err()
    );
    // Issue 17 item 7: the user is told they did not answer, not that they refused.
    w.expect("Session ended: you did not answer in time, so nothing was shared");
    assert!(!w.saw("You refused"), "silence is not a refusal");
}

#[tokio::test(flavor = "multi_thread")]
async fn end_really_ends_the_session_on_both_sides() {
    let relay = TestRelay::start_with(Limits::default(), None).await;
    let mut w = Gui::agent(&relay, 60);
    w.shot("agent-start");
    let old = w.get_help();
    // "New code" ends the first share and shows a fresh code.
    w.click(layout::centre(layout::NEW_CODE));
    let code: SessionCode = w
        .expect("session code:")
        .split("code:")
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ne!(code.to_string(), old.to_string());
    w.shot("agent-code");
    let config = relay.console();
    let console = tokio::spawn(async move { open_session(&config, code, ScopeSet::all()).await });
    w.expect("asks to:");
    // As the user first sees it: nothing ticked, "Allow" greyed out.
    w.shot("agent-consent");
    tick_rows(&w, tether_proto::Scope::ALL.len());
    w.click(layout::centre(layout::ALLOW));
    let mut session = console.await.unwrap().expect("session opens");
    assert_eq!(session.granted, ScopeSet::all());
    session.request(&Request::Inventory).await.unwrap();
    w.expect("sent the technician the hardware and software inventory");
    w.shot("agent-banner");

    w.click(layout::centre(layout::END_SESSION));
    w.expect("Session ended: you ended the session");
    let after = session.request(&Request::Inventory).await;
    assert!(
        matches!(after, Err(ConsoleError::Ended(_))),
        "the console's next request must fail as ended: {after:?}"
    );
    // The window stays open on the ended screen and shows the local log.
    assert!(w.still_running());
    w.click(layout::centre(layout::SHOW_LOG));
    w.shot("agent-ended");

    // The code replaced by "New code" opens nothing.
    let replaced = open_session(&relay.console(), old, ScopeSet::all()).await;
    assert!(replaced.is_err(), "a replaced code must not open a session");
}

/// Ending works with the network gone: the relay process is frozen (SIGSTOP), so nothing reaches the
/// technician any more, and "End session" still ends the session on the user's side at once.
#[tokio::test(flavor = "multi_thread")]
async fn end_works_without_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let mut relay = Kill(
        Command::new(bin("tether-relay"))
            .args(["--data-dir", data, "serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut relay_out = BufReader::new(relay.0.stdout.take().unwrap()).lines();
    let mut next = |pat: &str| loop {
        let line = relay_out.next().unwrap().unwrap();
        if line.contains(pat) {
            return line
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>();
        }
    };
    let addr = next("listening on")[3].clone();
    let fp = next("certificate SHA-256").last().unwrap().clone();
    let token = add_technician(data, "Ada", "Acme IT");
    let config = tether_console::ConsoleConfig {
        relay: tether_net::client::RelayTarget {
            addr: addr.clone(),
            trust: Trust::Fingerprint(fp.clone()),
            connect_timeout: Duration::from_secs(5),
            direct: Default::default(),
        },
        token,
    };

    let w = agent_at(&addr, &fp, 60);
    let code = w.get_help();
    let console =
        tokio::spawn(async move { open_session(&config, code, scopes("inventory")).await });
    w.expect("asks to:");
    std::thread::sleep(Duration::from_secs(1));
    tick_rows(&w, 1);
    w.click(layout::centre(layout::ALLOW));
    let mut session = console.await.unwrap().expect("session opens");
    session.request(&Request::Inventory).await.unwrap();
    w.expect("sent the technician the hardware and software inventory");

    let pid = relay.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    w.click(layout::centre(layout::END_SESSION));
    w.expect("Session ended: you ended the session");
    w.shot("agent-ended-offline");
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
}

/// "Stop control" on the banner takes back the mouse and keyboard: the banner shows it only while
/// `control` is granted, says the technician is using them, and the console's next input is refused
/// while the session (and viewing) goes on.
#[tokio::test(flavor = "multi_thread")]
async fn stop_control_really_revokes_control() {
    let relay = TestRelay::start_with(Limits::default(), None).await;
    let w = Gui::agent(&relay, 60);
    let code = w.get_help();
    let config = relay.console();
    let console =
        tokio::spawn(async move { open_session(&config, code, scopes("view,control")).await });
    w.expect("asks to:");
    std::thread::sleep(Duration::from_secs(1));
    tick_rows(&w, 2);
    w.click(layout::centre(layout::ALLOW));
    let mut session = console.await.unwrap().expect("session opens");
    assert_eq!(session.granted, scopes("view,control"));
    w.expect("stop control: shown");
    let mut control = session.control(0).await.unwrap();
    // Outside the agent window (560 wide), so the pointer disturbs nothing.
    control
        .send(&InputEvent::MouseMove { x: 900, y: 700 })
        .await
        .expect("input is accepted while control is granted");
    let line = w.expect("now: Using your mouse and keyboard.");
    assert!(line.contains("allowed: view,control"), "{line}");
    // Issue 17 item 10: the window's banner speaks of its button, never of terminal keys.
    let last = w.expect("last: ");
    assert!(
        last.contains("\"Stop control\" takes it back") && !last.contains("Type r"),
        "{last}"
    );
    w.shot("agent-stop-control");

    w.click(layout::centre(layout::STOP_CONTROL));
    w.expect("You took back \"control\"");
    let line = w.expect("stop control: hidden");
    assert!(line.contains("allowed: view |"), "{line}");
    // Issue 17 item 6: the console hears of it at once, before it sends anything.
    let mut grant = session.grant();
    tokio::time::timeout(
        Duration::from_secs(10),
        grant.wait_for(|g| !g.contains(Scope::Control)),
    )
    .await
    .expect("the console hears of Stop control at once")
    .unwrap();
    let refused = control
        .send(&InputEvent::MouseMove { x: 910, y: 710 })
        .await;
    assert!(
        matches!(refused, Err(ConsoleError::ScopeDenied(Scope::Control))),
        "the console's next input must be refused: {refused:?}"
    );
    w.expect("refused: the technician asked for your mouse and keyboard");
    // The session goes on without control.
    assert!(!session.displays().await.unwrap().is_empty());
    // Clicking where the button was does nothing now: the session still runs.
    w.click(layout::centre(layout::STOP_CONTROL));
    assert!(!session.displays().await.unwrap().is_empty());
    session.end().await;
    w.expect("Session ended: the technician ended the session");
}

/// Grace Hopper, an L2 colleague in the test technician's organisation.
fn grace(relay: &TestRelay) -> ConsoleConfig {
    let token = tether_relay::technicians::Technicians::new(relay.dir.path())
        .add_full(
            "Grace Hopper",
            "Acme IT",
            TechnicianRole::Technician,
            Tier::L2,
            None,
        )
        .unwrap();
    ConsoleConfig {
        relay: relay.target(),
        token,
    }
}

/// Chat both ways from pairing on (before consent), an empty line refused in the window itself, then
/// the invitation prompt: Deny really refuses (the console's `invite` fails), Allow gives the
/// console a code with which the colleague joins after their own consent dialog; the banner names
/// both, and when the colleague leaves it says the session goes on with the first technician.
#[tokio::test(flavor = "multi_thread")]
async fn chat_both_ways_and_the_invitation_prompt() {
    let relay = TestRelay::start().await;
    let grace = grace(&relay);
    let w = Gui::agent(&relay, 60);
    let code = w.get_help();
    let mut session = pair_session(&relay.console(), code, scopes("view"))
        .await
        .expect("pairs");
    w.expect("Verification code: ");

    // Before any consent: the technician says hello, the user answers.
    session.say("Hello, this is Ada from IT").await.unwrap();
    w.expect("[Ada Lovelace of Acme IT] Hello, this is Ada from IT");
    w.click(layout::centre(layout::CHAT_SEND));
    w.expect("chat: Not sent: a chat message cannot be empty.");
    w.type_into(
        layout::centre(layout::CHAT_INPUT),
        "Hi Ada, my printer is offline",
    );
    w.xdotool(&["key", "Return"]);
    let heard = session.next_chat().await.expect("the user's line arrives");
    assert_eq!(heard.as_str(), "Hi Ada, my printer is offline");
    w.expect("[you] Hi Ada, my printer is offline");
    // Enter put the keyboard back in the field: a second line goes the same way.
    w.xdotool(&["type", "--delay", "60", "--", "It says paper jam"]);
    w.xdotool(&["key", "Return"]);
    let heard = session.next_chat().await.expect("the second line arrives");
    assert_eq!(heard.as_str(), "It says paper jam");

    let consent = tokio::spawn(async move {
        let r = session.ask_consent().await;
        (session, r)
    });
    w.expect("asks to:");
    std::thread::sleep(Duration::from_secs(1));
    tick_rows(&w, 1);
    w.click(layout::centre(layout::ALLOW));
    let (mut session, granted) = consent.await.unwrap();
    assert_eq!(granted.unwrap(), scopes("view"));
    w.expect("banner: Ada Lovelace of Acme IT | allowed: view |");
    session.say("Thanks, I can see it now").await.unwrap();
    w.expect("[Ada Lovelace of Acme IT] Thanks, I can see it now");
    w.shot("agent-chat");

    // Deny: the console's invitation fails and no code exists.
    let asked = tokio::spawn(async move {
        let r = session.invite(Invitee::Tier(Tier::L2), false).await;
        (session, r)
    });
    let line = w.expect("invite prompt: Ada");
    assert!(
        line.contains("Ada Lovelace of Acme IT asks to bring in")
            && line.ends_with("hand-over: no"),
        "{line}"
    );
    w.click(layout::centre(layout::INVITE_DENY));
    let (mut session, refused) = asked.await.unwrap();
    assert!(
        matches!(refused, Err(ConsoleError::Invite(_))),
        "{refused:?}"
    );
    w.expect("No colleague will be invited.");

    // Allow: the console gets a code; Grace claims it and the user is asked about her.
    let asked = tokio::spawn(async move {
        let r = session
            .invite(Invitee::Technician("Grace Hopper".into()), false)
            .await;
        (session, r)
    });
    let line = w.expect("invite prompt: Ada");
    assert!(
        line.contains("bring in Grace Hopper (L2) of Acme IT"),
        "{line}"
    );
    w.shot("agent-invite");
    w.click(layout::centre(layout::INVITE_ALLOW));
    let (session, code) = asked.await.unwrap();
    let code = code.expect("Allow gives the console a code");
    let joining = tokio::spawn(async move { open_session(&grace, code, scopes("view")).await });
    let line = w.expect("asks to:");
    assert!(line.contains("Grace Hopper of Acme IT"), "{line}");
    let dialog = w.expect("consent dialog: Grace Hopper of Acme IT");
    std::thread::sleep(Duration::from_secs(1));
    tick_rows(&w, 1);
    w.click(layout::centre(layout::ALLOW));
    let mut grace_session = joining.await.unwrap().expect("Grace's session opens");
    let mut session = session;
    // Issue 17 item 3: the colleague's dialog showed the code of the colleague's own session.
    assert!(
        dialog.contains(&format!("verification: {}", grace_session.verification)),
        "{dialog}"
    );
    assert_ne!(grace_session.verification, session.verification);
    assert_eq!(grace_session.granted, scopes("view"));
    let b = w.expect("banner: Grace Hopper of Acme IT");
    assert!(
        b.contains("| also: Ada Lovelace of Acme IT (allowed: view) | allowed: view |"),
        "{b}"
    );
    // The user's line reaches both technicians.
    w.type_into(layout::centre(layout::CHAT_INPUT), "Hello both");
    w.xdotool(&["key", "Return"]);
    assert_eq!(session.next_chat().await.unwrap().as_str(), "Hello both");
    assert_eq!(
        grace_session.next_chat().await.unwrap().as_str(),
        "Hello both"
    );
    w.expect("[you] Hello both");
    grace_session.end().await;
    w.expect("Grace Hopper of Acme IT left the session");
    w.expect("banner: Ada Lovelace of Acme IT | allowed: view |");
    session.end().await;
    w.expect("Session ended: the technician ended the session");
}

/// Issue 17 item 9: while the relay is down the window does not offer the dead code, counts down
/// truthfully to the next attempt (the line changes; it never freezes), and the banner clears when
/// the new code shows.
#[tokio::test(flavor = "multi_thread")]
async fn an_outage_hides_the_code_counts_down_and_clears_with_the_new_code() {
    let relay = TestRelay::start_with(Limits::default(), None).await;
    let w = Gui::agent(&relay, 60);
    let first = w.get_help();
    let back = tokio::spawn(relay.restart_after(Duration::from_secs(10)));
    let line = w.expect("notice: No connection to the relay");
    assert!(
        line.contains("Your code does not work until a new one shows"),
        "{line}"
    );
    // The countdown moves on by itself (a repaint each second, not a frozen line).
    let next = w.expect("notice: No connection to the relay");
    assert_ne!(line, next, "the outage line changes as time passes");
    w.shot("agent-outage");
    let _relay = back.await.unwrap();
    let second: SessionCode = w
        .expect("session code:")
        .split("code:")
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ne!(first.to_string(), second.to_string());
    let start = std::time::Instant::now();
    while !w.saw("notice: cleared") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the banner clears with the new code"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Issue 16 item 6: during a `view` session the technician asks for `control`. The same dialog
/// shows over the banner for just that scope, nothing ticked ("Allow" does nothing until it is
/// ticked); Allow grants exactly what is ticked, the banner comes back with it and input works;
/// Stop control then takes it back and the console hears it at once.
#[tokio::test(flavor = "multi_thread")]
async fn asking_for_control_mid_session_shows_a_prompt_for_just_that() {
    let relay = TestRelay::start_with(Limits::default(), None).await;
    let w = Gui::agent(&relay, 60);
    let code = w.get_help();
    let config = relay.console();
    let console = tokio::spawn(async move { open_session(&config, code, scopes("view")).await });
    w.expect("asks to:");
    std::thread::sleep(Duration::from_secs(1));
    tick_rows(&w, 1);
    w.click(layout::centre(layout::ALLOW));
    let mut session = console.await.unwrap().expect("session opens");
    assert_eq!(session.granted, scopes("view"));
    let line = w.expect("banner:");
    assert!(line.ends_with("stop control: hidden"), "{line}");

    let mut grant = session.grant();
    grant.borrow_and_update();
    let ask = tokio::spawn(async move {
        let answer = session.ask_more(scopes("view,control")).await;
        (session, answer)
    });
    let line = w.expect("consent dialog:");
    assert!(
        line.ends_with("| asks: control | more; allowed already: view"),
        "only what is not granted yet is asked: {line}"
    );
    assert!(w.saw("asks for more than you allowed so far (view)"));
    std::thread::sleep(Duration::from_secs(1));
    w.shot("agent-ask-more");
    // Nothing is ticked: "Allow" answers nothing.
    w.click(layout::centre(layout::ALLOW));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !ask.is_finished(),
        "Allow with nothing ticked must not answer"
    );
    tick_rows(&w, 1);
    w.click(layout::centre(layout::ALLOW));
    let (mut session, answer) = ask.await.unwrap();
    let answer = answer.expect("answered");
    assert_eq!(answer.granted, scopes("view,control"));
    assert_eq!(*grant.borrow_and_update(), scopes("view,control"));
    let line = w.expect("stop control: shown");
    assert!(line.contains("allowed: view,control"), "{line}");
    w.expect("last: You also allowed: use your mouse and keyboard.");

    let mut control = session.control(0).await.unwrap();
    control
        .send(&InputEvent::MouseMove { x: 900, y: 700 })
        .await
        .expect("input works once allowed");
    w.expect("now: Using your mouse and keyboard.");
    w.click(layout::centre(layout::STOP_CONTROL));
    tokio::time::timeout(Duration::from_secs(10), grant.changed())
        .await
        .expect("the console hears Stop control at once")
        .unwrap();
    assert_eq!(*grant.borrow(), scopes("view"));
    let refused = control
        .send(&InputEvent::MouseMove { x: 910, y: 710 })
        .await;
    assert!(
        matches!(refused, Err(ConsoleError::ScopeDenied(Scope::Control))),
        "{refused:?}"
    );
    // The session goes on.
    assert!(!session.displays().await.unwrap().is_empty());
    session.end().await;
    w.expect("Session ended: the technician ended the session");
}

/// Issue 19: a file the technician sends shows in the banner while it arrives (its path, progress
/// and a Stop button, the banner's scopes on one line so nothing overlaps), and Stop in the window
/// really stops it: the console hears that the user stopped it and nothing lands under its name.
#[tokio::test(flavor = "multi_thread")]
async fn a_file_arriving_shows_in_the_window_and_stop_really_stops_it() {
    use std::ops::ControlFlow;
    use tether_console::files::{FilesError, Progress, push_file};
    use tether_proto::files::{FileFailure, StoppedBy};

    let relay = TestRelay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let landing = dir.path().join("landing");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "files_dir = {:?}\nfiles_roots = [{:?}]\n",
            landing,
            dir.path()
        ),
    )
    .unwrap();
    let source = dir.path().join("driver.bin");
    std::fs::write(&source, vec![7u8; 64 << 20]).unwrap();

    let mut c = Command::new(bin("tether-agent"));
    c.arg("window")
        .args(tether_tests::gui::relay_args(&relay))
        .args(["--consent-timeout", "60"])
        .arg("--config")
        .arg(&config);
    let w = Gui::start(c, (1280, 800), layout::TITLE);
    let code = w.get_help();
    let console_config = relay.console();
    let all = "view,control,diagnostics,inventory,clipboard,files";
    let console =
        tokio::spawn(async move { open_session(&console_config, code, scopes(all)).await });
    w.expect("asks to:");
    std::thread::sleep(Duration::from_secs(1));
    tick_rows(&w, Scope::ALL.len());
    w.click(layout::centre(layout::ALLOW));
    let mut session = console.await.unwrap().expect("session opens");
    assert!(session.granted.contains(Scope::Files));

    // The console sends slowly (a pause per chunk), so a person has time to press Stop.
    let push = tokio::spawn(async move {
        let mut slow = |_: &Progress| {
            std::thread::sleep(Duration::from_millis(40));
            ControlFlow::Continue(())
        };
        let r = push_file(&mut session, &source, "driver.bin", &mut slow).await;
        (r, session)
    });
    let line = w.expect("-> file arriving from Ada Lovelace");
    assert!(
        line.contains("driver.bin") && line.contains("Type s"),
        "{line}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    w.shot("agent-file-arriving");
    w.click(layout::centre(layout::file_stop(0)));
    let failed = w.expect("-> file failed: ");
    assert!(failed.contains("driver.bin"), "{failed}");

    let (r, session) = tokio::time::timeout(Duration::from_secs(30), push)
        .await
        .expect("the push ends once the user stops it")
        .unwrap();
    assert!(
        matches!(
            r,
            Err(FilesError::Agent(FileFailure::Cancelled(StoppedBy::User)))
        ),
        "the console hears that the user stopped it: {r:?}"
    );
    assert!(
        !landing.join("driver.bin").exists(),
        "nothing lands under the final name"
    );
    // The row stays with how it ended, without a Stop button; the session goes on.
    std::thread::sleep(Duration::from_millis(500));
    w.shot("agent-file-stopped");
    let mut session = session;
    assert!(!session.displays().await.unwrap().is_empty());
    session.end().await;
    w.expect("Session ended: the technician ended the session");
}
