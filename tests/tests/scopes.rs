//! Issue 16 item 6, scopes during the session, end to end on the real relay, agent and console
//! over QUIC on loopback: a `view` session asks for `control`, the user allows (real input on a
//! private Xvfb through enigo), then presses Stop control and the console hears it at once. A user
//! who says no or stays silent, a viewer asking for control, and a second ask while one is pending
//! all leave the grant as it was and the session going on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use tether_agent::ShareConfig;
use tether_agent::screen::{ScrapScreen, X11Input};
use tether_agent::ui::{AgentEvent, UserCommand};
use tether_console::{ConsoleError, open_session};
use tether_proto::msg::{MoreOutcome, TechnicianRole};
use tether_proto::screen::InputEvent;
use tether_proto::{Scope, ScopeSet};
use tether_relay::technicians::Technicians;
use tether_tests::{TestAgent, TestRelay, WAIT, Xvfb};

fn scopes(s: &str) -> ScopeSet {
    s.parse().unwrap()
}

/// Waits for the user's mid-session prompt; returns what it asks for.
async fn user_is_asked_for_more(agent: &mut TestAgent) -> (ScopeSet, ScopeSet) {
    match agent
        .expect("the mid-session prompt", |e| {
            matches!(e, AgentEvent::MoreRequested { .. })
        })
        .await
    {
        AgentEvent::MoreRequested {
            scopes, granted, ..
        } => (scopes, granted),
        _ => unreachable!(),
    }
}

async fn user(agent: &TestAgent, c: UserCommand) {
    agent.commands.send(c).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_session_asks_for_control_uses_it_and_hears_stop_control_at_once() {
    let x = Xvfb::start_free();
    assert!(
        x.cmd("xdotool", &["mousemove", "700", "600"])
            .status
            .success()
    );
    let relay = TestRelay::start().await;
    let mut config = ShareConfig::new(relay.target());
    config.screen = Arc::new(ScrapScreen::new(Some(x.display.clone())));
    config.input = Arc::new(X11Input::new(Some(x.display.clone())));
    let mut agent = TestAgent::spawn_with(config, Some(scopes("view")));
    let code = agent.code().await;
    let mut session = open_session(&relay.console(), code, scopes("view"))
        .await
        .unwrap();
    assert_eq!(session.granted, scopes("view"));
    let err = session.control(0).await.unwrap_err();
    assert!(
        matches!(err, ConsoleError::ScopeDenied(Scope::Control)),
        "{err:?}"
    );

    // Ask for control (view is already granted: the user is asked only for control).
    let mut grant = session.grant();
    grant.borrow_and_update();
    session.request_more(scopes("view,control")).await.unwrap();
    let (asked, before) = user_is_asked_for_more(&mut agent).await;
    assert_eq!((asked, before), (scopes("control"), scopes("view")));
    user(&agent, UserCommand::Consent(scopes("control"))).await;
    let answer = match tokio::time::timeout(WAIT, session.next_said())
        .await
        .unwrap()
    {
        tether_console::session::AgentSaid::More(a) => a,
        other => panic!("{other:?}"),
    };
    assert_eq!(answer.outcome, MoreOutcome::Answered);
    assert_eq!(answer.granted, scopes("view,control"));
    assert_eq!(session.granted, scopes("view,control"));
    assert_eq!(*grant.borrow_and_update(), scopes("view,control"));

    // Input works at once: a real pointer move on the agent's X server.
    let mut control = session.control(0).await.unwrap();
    control
        .send(&InputEvent::MouseMove { x: 200, y: 150 })
        .await
        .unwrap();
    assert_eq!(x.pointer(), (200, 150));

    // Stop control: the console's grant watch says so without the console asking anything.
    user(&agent, UserCommand::RevokeControl).await;
    tokio::time::timeout(WAIT, grant.changed())
        .await
        .expect("the console hears Stop control at once")
        .unwrap();
    assert_eq!(*grant.borrow(), scopes("view"));
    let err = control
        .send(&InputEvent::MouseMove { x: 20, y: 20 })
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConsoleError::ScopeDenied(Scope::Control)),
        "{err:?}"
    );
    assert_eq!(x.pointer(), (200, 150), "a revoked move must not move");

    // Asked again after Stop control: the user is asked again, and may say yes again.
    session.request_more(scopes("control")).await.unwrap();
    assert_eq!(
        user_is_asked_for_more(&mut agent).await.0,
        scopes("control")
    );
    user(&agent, UserCommand::Consent(scopes("control"))).await;
    let answer = session.next_said().await;
    assert!(
        matches!(answer, tether_console::session::AgentSaid::More(a) if a.granted == scopes("view,control")),
        "{answer:?}"
    );
    let mut control = session.control(0).await.unwrap();
    control
        .send(&InputEvent::MouseMove { x: 300, y: 250 })
        .await
        .unwrap();
    assert_eq!(x.pointer(), (300, 250));
    session.end().await;
    let _ = tokio::time::timeout(WAIT, agent.task).await;

    // The relay's audit has the ask and its answer, as for the first consent.
    let audit = relay.audit();
    assert!(
        audit.iter().any(|l| l
            .to_string()
            .contains("requested=control granted=view,control")),
        "{audit:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_or_silence_leaves_the_grant_as_it_was_and_the_session_goes_on() {
    let relay = TestRelay::start().await;
    let mut config = ShareConfig::new(relay.target());
    config.consent_timeout = Duration::from_secs(2);
    let mut agent = TestAgent::spawn_with(config, Some(scopes("inventory")));
    let code = agent.code().await;
    let mut session = open_session(&relay.console(), code, scopes("inventory"))
        .await
        .unwrap();

    // The user says no.
    session.request_more(scopes("control")).await.unwrap();
    user_is_asked_for_more(&mut agent).await;
    user(&agent, UserCommand::Consent(ScopeSet::EMPTY)).await;
    let said = session.next_said().await;
    let tether_console::session::AgentSaid::More(no) = said else {
        panic!("{said:?}")
    };
    assert_eq!(
        (no.outcome, no.granted),
        (MoreOutcome::Answered, scopes("inventory"))
    );
    assert!(
        no.words(scopes("inventory"), scopes("control"))
            .contains("said no")
    );

    // The user says nothing: after the countdown, no.
    let silent = tokio::time::Instant::now();
    let answer = session.ask_more(scopes("control")).await.unwrap();
    assert_eq!(answer.outcome, MoreOutcome::TimedOut);
    assert_eq!(answer.granted, scopes("inventory"));
    assert!(
        silent.elapsed() >= Duration::from_millis(1900),
        "silence waits out the countdown"
    );
    agent
        .expect(
            "the prompt closes",
            |e| matches!(e, AgentEvent::MoreDecided { added, .. } if added.is_empty()),
        )
        .await;

    // What was granted still works; what was refused is still refused.
    session.inventory().await.expect("the session goes on");
    let err = session.control(0).await.unwrap_err();
    assert!(
        matches!(err, ConsoleError::ScopeDenied(Scope::Control)),
        "{err:?}"
    );
    // Asking for what is granted asks nobody.
    let same = session.ask_more(scopes("inventory")).await.unwrap();
    assert_eq!(same.outcome, MoreOutcome::NothingNew);
    session.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_asking_for_control_is_refused_and_the_session_goes_on() {
    let relay = TestRelay::start().await;
    let token = Technicians::new(relay.dir.path())
        .add_with("Vic", "Acme IT", TechnicianRole::Viewer, None)
        .unwrap();
    let mut agent = TestAgent::spawn(&relay, scopes("view"));
    let code = agent.code().await;
    let config = tether_console::ConsoleConfig {
        token,
        ..relay.console()
    };
    let mut session = open_session(&config, code, scopes("view")).await.unwrap();
    let answer = session.ask_more(scopes("control")).await.unwrap();
    assert_eq!(answer.outcome, MoreOutcome::Forbidden);
    assert_eq!(answer.granted, scopes("view"));
    assert!(
        !agent.saw(|e| matches!(e, AgentEvent::MoreRequested { .. })),
        "the user is never asked for what the role does not allow"
    );
    // The session goes on: a chat line still reaches the user.
    session.say("still here").await.unwrap();
    agent
        .expect("the chat line", |e| {
            matches!(e, AgentEvent::Chat { from: Some(_), .. })
        })
        .await;
    session.end().await;
    let _ = tokio::time::timeout(WAIT, agent.task).await;
    let audit = relay.audit();
    assert!(
        audit
            .iter()
            .any(|l| l.to_string().contains("scope_refused scope=control")),
        "{audit:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ask_while_one_is_pending_is_refused_and_the_session_goes_on() {
    let relay = TestRelay::start().await;
    let mut agent = TestAgent::spawn(&relay, scopes("inventory"));
    let code = agent.code().await;
    let mut session = open_session(&relay.console(), code, scopes("inventory"))
        .await
        .unwrap();
    session.request_more(scopes("control")).await.unwrap();
    user_is_asked_for_more(&mut agent).await;
    // The second is answered at once; the first still waits for the user.
    let second = session.ask_more(scopes("diagnostics")).await.unwrap();
    assert_eq!(second.outcome, MoreOutcome::Busy);
    assert_eq!(second.granted, scopes("inventory"));
    user(&agent, UserCommand::Consent(scopes("control"))).await;
    let said = session.next_said().await;
    let tether_console::session::AgentSaid::More(first) = said else {
        panic!("{said:?}")
    };
    assert_eq!(first.outcome, MoreOutcome::Answered);
    assert_eq!(first.granted, scopes("inventory,control"));
    session.inventory().await.expect("the session goes on");
    session.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_can_end_the_session_while_asked_for_more() {
    let relay = TestRelay::start().await;
    let mut agent = TestAgent::spawn(&relay, scopes("inventory"));
    let code = agent.code().await;
    let mut session = open_session(&relay.console(), code, scopes("inventory"))
        .await
        .unwrap();
    session.request_more(scopes("control")).await.unwrap();
    user_is_asked_for_more(&mut agent).await;
    user(&agent, UserCommand::EndSession).await;
    let said = tokio::time::timeout(WAIT, session.next_said())
        .await
        .unwrap();
    assert!(
        matches!(
            said,
            tether_console::session::AgentSaid::Ended(tether_proto::msg::EndReason::UserEnded)
        ),
        "{said:?}"
    );
}

/// `tether-console chat`: after the first consent, `/ask control` asks the user for more; the
/// answer prints as `[consent] …`, and the chat goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_command_asks_for_more_after_consent() {
    use std::io::Write;
    use tether_tests::procs::wait_for;

    let relay = TestRelay::start().await;
    let mut agent = TestAgent::spawn(&relay, scopes("inventory"));
    let code = agent.code().await.to_string();
    let (mut console, out, mut stdin) = relay.chat_command(&code, "inventory", false);
    // Before the first consent, `/ask SCOPES` is not the way in.
    writeln!(stdin, "/ask control").unwrap();
    let (early, out) =
        tokio::task::spawn_blocking(move || (wait_for(&out, "[error] /ask SCOPES"), out))
            .await
            .unwrap();
    assert!(
        early.contains("once the user has allowed something"),
        "{early}"
    );
    writeln!(stdin, "/ask").unwrap();
    let (_, out) =
        tokio::task::spawn_blocking(move || (wait_for(&out, "the user allowed: inventory"), out))
            .await
            .unwrap();
    writeln!(stdin, "/ask control").unwrap();
    assert_eq!(
        user_is_asked_for_more(&mut agent).await.0,
        scopes("control")
    );
    user(&agent, UserCommand::Consent(scopes("control"))).await;
    let (allowed, out) = tokio::task::spawn_blocking(move || {
        (wait_for(&out, "[consent] the user allowed control"), out)
    })
    .await
    .unwrap();
    assert!(
        allowed.ends_with("now allowed: control,inventory"),
        "{allowed}"
    );
    writeln!(stdin, "/ask control").unwrap();
    let (same, _out) =
        tokio::task::spawn_blocking(move || (wait_for(&out, "[consent] not asked"), out))
            .await
            .unwrap();
    assert!(same.contains("all of it is allowed already"), "{same}");
    drop(stdin);
    let status = tokio::task::spawn_blocking(move || console.0.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "end of input ends the session cleanly");
}

/// Asking for more is only for a session with a decision: before the first consent it breaks
/// protocol, and the agent ends the session saying so (the console library never sends it then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_for_more_before_the_first_consent_ends_the_session() {
    use tether_net::sealed::SealedStream;
    use tether_proto::msg::{AgentToConsole, ConsoleToAgent, EndReason};
    use tether_proto::pairing::Side;
    use tether_tests::{RawClaim, RawConsole};

    let relay = TestRelay::start().await;
    let mut agent = TestAgent::spawn(&relay, scopes("view"));
    let code = agent.code().await;
    let RawClaim::Claimed(mut raw) = RawConsole::claim(
        &relay.target(),
        None,
        code.slot,
        &relay.token,
        scopes("view"),
    )
    .await
    else {
        panic!("claim refused");
    };
    let keys = raw.pair(&code).await.unwrap();
    let (mut tx, mut rx) = SealedStream::new(raw.send, raw.recv, &keys, 0, Side::Console).split();
    tx.send(&ConsoleToAgent::AskMore {
        scopes: scopes("control"),
    })
    .await
    .unwrap();
    let answer = tokio::time::timeout(WAIT, rx.recv::<AgentToConsole>())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        answer,
        AgentToConsole::Ended {
            reason: EndReason::ProtocolError("asked for more before the first consent".into())
        }
    );
    assert!(!agent.saw(|e| matches!(e, AgentEvent::MoreRequested { .. })));
    raw.relay.close(0, "done").await;
}

/// `tether-console connect` (the viewer window, on its own X server): Stop control shows at once.
/// The CLI says so on stderr while the window keeps running (the session goes on), and the viewer's
/// status bar shows the new grant and a note (see the screenshot with `TETHER_SCREENSHOTS=DIR`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_shows_stop_control_at_once() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    use tether_tests::procs::{Kill, bin};

    let x_agent = Xvfb::start_free();
    let x_console = Xvfb::start_free();
    let relay = TestRelay::start().await;
    let mut config = ShareConfig::new(relay.target());
    config.screen = Arc::new(ScrapScreen::new(Some(x_agent.display.clone())));
    config.input = Arc::new(X11Input::new(Some(x_agent.display.clone())));
    let mut agent = TestAgent::spawn_with(config, Some(scopes("view,control")));
    let code = agent.code().await.to_string();
    let target = relay.target();
    let tether_net::Trust::Fingerprint(fp) = &target.trust else {
        unreachable!()
    };
    let mut viewer = Kill(
        Command::new(bin("tether-console"))
            .args(["--relay", &target.addr, "--relay-cert-sha256", fp])
            .args(["connect", "--code", &code])
            .env("TETHER_TOKEN", &relay.token)
            .env("DISPLAY", &x_console.display)
            .env_remove("WAYLAND_DISPLAY")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let shown = tether_tests::procs::lines(viewer.0.stdout.take().unwrap());
    let (tx, err) = std::sync::mpsc::channel();
    let stderr = viewer.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let (_, err) = stderr_line(err, "connected; granted: view,control").await;
    assert!(
        x_console
            .cmd(
                "xdotool",
                &[
                    "search",
                    "--sync",
                    "--onlyvisible",
                    "--name",
                    "Tether viewer"
                ]
            )
            .status
            .success()
    );
    agent
        .expect("the viewer watches", |e| {
            matches!(e, AgentEvent::Viewing { active: true, .. })
        })
        .await;
    user(&agent, UserCommand::RevokeControl).await;
    let (line, _err) = stderr_line(err, "the user changed what you may do").await;
    assert!(line.ends_with("granted now: view"), "{line}");
    // The window redraws at once (it has no repaint timer): its status bar shows the new grant and
    // the note without waiting for a frame.
    let status = tokio::task::spawn_blocking(move || {
        tether_tests::procs::wait_for(
            &shown,
            "viewer: granted: view | note: The user took back control",
        )
    })
    .await
    .unwrap();
    assert!(
        status.contains("no longer reach their computer"),
        "{status}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        viewer.0.try_wait().unwrap().is_none(),
        "the viewer keeps running"
    );
    if let Some(dir) = std::env::var_os("TETHER_SCREENSHOTS") {
        let path = std::path::PathBuf::from(dir).join("viewer-stop-control.png");
        let ok = Command::new("import")
            .args([
                "-display",
                &x_console.display,
                "-window",
                "root",
                "-crop",
                "1280x760+0+0",
            ])
            .arg(&path)
            .status()
            .expect("import (install imagemagick)");
        assert!(ok.success());
    }
}

/// The next line on `err` containing `pat` (30 s at most), and the receiver for the lines after it.
async fn stderr_line(
    err: std::sync::mpsc::Receiver<String>,
    pat: &'static str,
) -> (String, std::sync::mpsc::Receiver<String>) {
    tokio::task::spawn_blocking(move || {
        loop {
            let line = err
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("connect never said {pat:?}"));
            if line.contains(pat) {
                return (line, err);
            }
        }
    })
    .await
    .unwrap()
}
