//! Clipboard sharing end to end: the real relay on loopback, the library agent with its X11
//! clipboard on a private Xvfb, the console library and the real `tether-console` binary. The
//! user's side is copied into and pasted from with `xclip` on the agent's display, independently of
//! Tether's own X11 code; the viewer's focus sync runs the real viewer window on a second Xvfb (the
//! technician's), focused and unfocused there as a window manager would. The wlroots backend runs on a
//! headless sway, copied into and pasted from with `wl-copy` and `wl-paste`. The real agent window
//! shows each use (made safe) and takes the clipboard back with "Stop clipboard sharing". Needs Xvfb, xclip and
//! xdotool, and for the wlroots backend headless sway and wl-clipboard (`packaging/system-packages`);
//! without them these tests fail loudly rather than skip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_agent::ShareConfig;
use tether_agent::clipboard::{WlrootsClipboard, X11Clipboard};
use tether_agent::screen::{ScrapScreen, X11Input};
use tether_agent::ui::{AgentEvent, ClipboardUse};
use tether_console::{ConsoleError, clipboard, open_session};
use tether_proto::clipboard::{ClipboardError, MAX_CLIPBOARD_BYTES, Selection, preview};
use tether_proto::msg::Request;
use tether_proto::{Scope, ScopeSet};
use tether_tests::desktop::Desktop;
use tether_tests::gui::{Gui, relay_args};
use tether_tests::procs::bin;
use tether_tests::{TestAgent, TestRelay, Xvfb};

fn scopes(s: &str) -> ScopeSet {
    s.parse().unwrap()
}

fn xclip_name(selection: Selection) -> &'static str {
    match selection {
        Selection::Clipboard => "clipboard",
        Selection::Primary => "primary",
    }
}

/// What `xclip -o` reads from `selection` on `display`; `None` when nobody holds text there.
fn xclip_out(display: &str, selection: Selection) -> Option<String> {
    let out = Command::new("xclip")
        .args(["-selection", xclip_name(selection), "-o"])
        .env("DISPLAY", display)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("xclip (install xclip)");
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).expect("xclip gives UTF-8"))
}

/// Copies `text` to `selection` on `display` with `xclip -i` (which stays behind to serve it),
/// and waits until xclip itself reads it back, so the copy is done when this returns.
fn xclip_in(display: &str, selection: Selection, text: &str) {
    let mut child = Command::new("xclip")
        .args(["-selection", xclip_name(selection), "-i"])
        .env("DISPLAY", display)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("xclip (install xclip)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "xclip -i failed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while xclip_out(display, selection).as_deref() != Some(text) {
        assert!(Instant::now() < deadline, "xclip never held the text");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An Xvfb for the user, and the library agent whose user answers with `answer` and whose
/// clipboard (and screen, for the viewer) is that display's.
fn agent_on(relay: &TestRelay, answer: &str, again: bool) -> (Xvfb, TestAgent) {
    let x = Xvfb::start_free();
    let mut config = ShareConfig::new(relay.target());
    config.clipboard = Arc::new(X11Clipboard::new(Some(x.display.clone())));
    config.screen = Arc::new(ScrapScreen::new(Some(x.display.clone())));
    config.input = Arc::new(X11Input::new(Some(x.display.clone())));
    config.again = again;
    let agent = TestAgent::spawn_with(config, Some(scopes(answer)));
    (x, agent)
}

/// The agent's next clipboard notice for `used`: `chars` characters and `shown` as its preview.
async fn expect_notice(agent: &mut TestAgent, used: ClipboardUse, chars: usize, shown: &str) {
    let ev = agent
        .expect(
            "a clipboard notice",
            |e| matches!(e, AgentEvent::Clipboard { used: u, .. } if *u == used),
        )
        .await;
    let AgentEvent::Clipboard {
        technician,
        used: u,
        chars: c,
        preview: p,
        ..
    } = ev
    else {
        unreachable!()
    };
    assert_eq!((u, c, p.as_str()), (used, chars, shown));
    assert_eq!(technician, "Ada Lovelace of Acme IT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_crosses_both_ways_on_a_real_x_server_and_the_user_is_told_each_time() {
    let relay = TestRelay::start().await;
    let (x, mut agent) = agent_on(&relay, "clipboard", false);
    let d = x.display.clone();
    tokio::task::block_in_place(|| {
        xclip_in(&d, Selection::Clipboard, "copied by the user");
    });
    let code = agent.code().await;
    let mut session = open_session(&relay.console(), code, scopes("clipboard"))
        .await
        .unwrap();

    // The user's copy reaches the console, and the user hears that it was read.
    let got = clipboard::get(&mut session, Selection::Clipboard)
        .await
        .unwrap();
    assert_eq!(got, "copied by the user");
    expect_notice(&mut agent, ClipboardUse::Read, 18, "copied by the user").await;

    // The technician's text is what the user's programs paste now.
    let bytes = clipboard::set(
        &mut session,
        Selection::Clipboard,
        "pasted by the technician",
    )
    .await
    .unwrap();
    assert_eq!(bytes, 24);
    expect_notice(
        &mut agent,
        ClipboardUse::Put,
        24,
        "pasted by the technician",
    )
    .await;
    let pasted = tokio::task::block_in_place(|| xclip_out(&d, Selection::Clipboard));
    assert_eq!(pasted.as_deref(), Some("pasted by the technician"));
    // And reading it back goes through the agent's own serving of it.
    assert_eq!(
        clipboard::get(&mut session, Selection::Clipboard)
            .await
            .unwrap(),
        "pasted by the technician"
    );
    expect_notice(
        &mut agent,
        ClipboardUse::Read,
        24,
        "pasted by the technician",
    )
    .await;

    // PRIMARY, once each way; the clipboard keeps its own text.
    clipboard::set(
        &mut session,
        Selection::Primary,
        "highlighted by the technician",
    )
    .await
    .unwrap();
    let (primary, clip) = tokio::task::block_in_place(|| {
        (
            xclip_out(&d, Selection::Primary),
            xclip_out(&d, Selection::Clipboard),
        )
    });
    assert_eq!(primary.as_deref(), Some("highlighted by the technician"));
    assert_eq!(clip.as_deref(), Some("pasted by the technician"));
    tokio::task::block_in_place(|| xclip_in(&d, Selection::Primary, "highlighted by the user"));
    assert_eq!(
        clipboard::get(&mut session, Selection::Primary)
            .await
            .unwrap(),
        "highlighted by the user"
    );
    // The user copying something else takes the clipboard back from the agent.
    tokio::task::block_in_place(|| xclip_in(&d, Selection::Clipboard, "the user's own again"));
    assert_eq!(
        clipboard::get(&mut session, Selection::Clipboard)
            .await
            .unwrap(),
        "the user's own again"
    );
    session.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_and_non_ascii_survive_exactly_and_the_limit_holds_on_both_ends() {
    let relay = TestRelay::start().await;
    let (x, mut agent) = agent_on(&relay, "clipboard", false);
    let d = x.display.clone();
    let code = agent.code().await;
    let mut session = open_session(&relay.console(), code, scopes("clipboard"))
        .await
        .unwrap();

    // Technician to user: tabs, line breaks, an escape sequence and a carriage return, unchanged;
    // the user's notice shows them only as symbols.
    let text = "naïve\tcafé\n日本\u{1b}[31m red\r\n\u{202e}end";
    clipboard::set(&mut session, Selection::Clipboard, text)
        .await
        .unwrap();
    let pasted = tokio::task::block_in_place(|| xclip_out(&d, Selection::Clipboard));
    assert_eq!(pasted.as_deref(), Some(text));
    let shown = preview(text);
    assert_eq!(shown, "naïve café␊日本␛[31m red␍␊\u{fffd}end");
    expect_notice(&mut agent, ClipboardUse::Put, text.chars().count(), &shown).await;

    // User to technician.
    let theirs = "ünïcödé\t\u{7}bell\n  indented\n";
    tokio::task::block_in_place(|| xclip_in(&d, Selection::Clipboard, theirs));
    assert_eq!(
        clipboard::get(&mut session, Selection::Clipboard)
            .await
            .unwrap(),
        theirs
    );

    // Exactly the limit crosses both ways (a two-byte character last, so bytes are what count).
    let at_limit = "a".repeat(MAX_CLIPBOARD_BYTES - 2) + "é";
    assert_eq!(at_limit.len(), MAX_CLIPBOARD_BYTES);
    clipboard::set(&mut session, Selection::Clipboard, &at_limit)
        .await
        .unwrap();
    let pasted = tokio::task::block_in_place(|| xclip_out(&d, Selection::Clipboard));
    assert!(pasted.as_deref() == Some(at_limit.as_str()), "1 MiB pasted");
    let back = clipboard::get(&mut session, Selection::Clipboard)
        .await
        .unwrap();
    assert!(back == at_limit, "1 MiB read back ({} bytes)", back.len());

    // One byte over: the console refuses before sending, with the clear error; nothing changed.
    let over = "a".repeat(MAX_CLIPBOARD_BYTES + 1);
    let err = clipboard::set(&mut session, Selection::Clipboard, &over)
        .await
        .expect_err("over the limit");
    assert!(
        matches!(err, ConsoleError::Clipboard(ClipboardError::TooLarge(n)) if n == MAX_CLIPBOARD_BYTES + 1),
        "{err:?}"
    );
    assert!(err.to_string().contains("1 MiB"), "{err}");
    // A console that skips its check meets the agent's: refused there, nothing changed.
    let err = session
        .request(&Request::ClipboardSet {
            selection: Selection::Clipboard,
            text: over.clone(),
        })
        .await
        .expect_err("the agent checks too");
    assert!(
        matches!(&err, ConsoleError::Failed(m) if m.contains("1 MiB")),
        "{err:?}"
    );
    let pasted = tokio::task::block_in_place(|| xclip_out(&d, Selection::Clipboard));
    assert!(pasted.as_deref() == Some(at_limit.as_str()), "unchanged");

    // The same from xclip, which hands over this much by INCR (its chunks are just under 1 MiB).
    let from_user = "é".repeat(MAX_CLIPBOARD_BYTES / 2);
    tokio::task::block_in_place(|| xclip_in(&d, Selection::Clipboard, &from_user));
    let back = clipboard::get(&mut session, Selection::Clipboard)
        .await
        .unwrap();
    assert!(back == from_user, "1 MiB by INCR ({} bytes)", back.len());

    // The user's clipboard over the limit: the agent says so instead of sending it.
    tokio::task::block_in_place(|| xclip_in(&d, Selection::Clipboard, &over));
    let err = clipboard::get(&mut session, Selection::Clipboard)
        .await
        .expect_err("too large to send");
    assert!(
        matches!(&err, ConsoleError::Failed(m) if m.contains("1 MiB")),
        "{err:?}"
    );

    // The session goes on.
    tokio::task::block_in_place(|| xclip_in(&d, Selection::Clipboard, "small again"));
    assert_eq!(
        clipboard::get(&mut session, Selection::Clipboard)
            .await
            .unwrap(),
        "small again"
    );
    session.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_before_the_grant_and_nothing_once_the_user_takes_it_back() {
    let x = Xvfb::start_free();
    let d = x.display.clone();
    tokio::task::block_in_place(|| xclip_in(&d, Selection::Clipboard, "the user's secret"));
    let read_back =
        || tokio::task::block_in_place(|| xclip_out(&d, Selection::Clipboard)).unwrap_or_default();
    tether_tests::grant::clipboard_nothing_before_the_grant(
        Arc::new(X11Clipboard::new(Some(x.display.clone()))),
        "the user's secret",
        read_back,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_granted_without_clipboard_is_no_clipboard() {
    let relay = TestRelay::start().await;
    let (x, mut agent) = agent_on(&relay, "view,control", false);
    let d = x.display.clone();
    tokio::task::block_in_place(|| xclip_in(&d, Selection::Clipboard, "not for you"));
    let code = agent.code().await;
    let mut session = open_session(&relay.console(), code, scopes("view,control,clipboard"))
        .await
        .unwrap();
    assert_eq!(session.granted, scopes("view,control"));
    let err = clipboard::get(&mut session, Selection::Clipboard)
        .await
        .expect_err("clipboard not granted");
    assert!(
        matches!(err, ConsoleError::ScopeDenied(Scope::Clipboard)),
        "{err:?}"
    );
    let err = clipboard::set(&mut session, Selection::Primary, "planted")
        .await
        .expect_err("clipboard not granted");
    assert!(
        matches!(err, ConsoleError::ScopeDenied(Scope::Clipboard)),
        "{err:?}"
    );
    // The user saw both refusals, and neither selection changed.
    agent
        .expect("the refusal", |e| {
            matches!(e, AgentEvent::Refused { scope: Scope::Clipboard, what } if what.contains("clipboard"))
        })
        .await;
    let (clip, primary) = tokio::task::block_in_place(|| {
        (
            xclip_out(&d, Selection::Clipboard),
            xclip_out(&d, Selection::Primary),
        )
    });
    assert_eq!(clip.as_deref(), Some("not for you"));
    assert_ne!(primary.as_deref(), Some("planted"));
    assert!(!agent.saw(|e| matches!(e, AgentEvent::Clipboard { .. })));
    session.end().await;
}

/// `tether-console clipboard …` on this relay, with `stdin` as standard input; returns its exit
/// status and standard output.
fn console_cli(relay: &TestRelay, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(bin("tether-console"))
        .args(relay_args(relay))
        .args(args)
        .env("TETHER_TOKEN", &relay.token)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tether-console starts");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sets_and_gets_with_json() {
    let relay = TestRelay::start().await;
    let (x, mut agent) = agent_on(&relay, "clipboard", true);
    let d = x.display.clone();
    let text = "naïve\tcafé\n日本";

    // set, TEXT from the argument, --json.
    let code = agent.code().await.to_string();
    let (ok, out, err) = tokio::task::block_in_place(|| {
        console_cli(
            &relay,
            &["--json", "clipboard", "set", "--code", &code, text],
            None,
        )
    });
    assert!(ok, "clipboard set failed: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        v,
        serde_json::json!({"selection": "clipboard", "set": true, "chars": 13, "bytes": 19})
    );
    let pasted = tokio::task::block_in_place(|| xclip_out(&d, Selection::Clipboard));
    assert_eq!(pasted.as_deref(), Some(text));

    // set --primary, TEXT from standard input.
    let code = agent.code().await.to_string();
    let (ok, _, err) = tokio::task::block_in_place(|| {
        console_cli(
            &relay,
            &["clipboard", "set", "--primary", "--code", &code],
            Some("from stdin\n"),
        )
    });
    assert!(ok, "clipboard set from stdin failed: {err}");
    assert!(
        err.contains("put 11 characters on the user's primary"),
        "{err}"
    );
    let primary = tokio::task::block_in_place(|| xclip_out(&d, Selection::Primary));
    assert_eq!(primary.as_deref(), Some("from stdin\n"));

    // get --json: the text exact, escaped by JSON.
    let code = agent.code().await.to_string();
    let (ok, out, err) = tokio::task::block_in_place(|| {
        console_cli(
            &relay,
            &["clipboard", "get", "--code", &code, "--json"],
            None,
        )
    });
    assert!(ok, "clipboard get failed: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        v,
        serde_json::json!({"selection": "clipboard", "text": text})
    );

    // get to a pipe: exactly the text, nothing added.
    let code = agent.code().await.to_string();
    let (ok, out, err) = tokio::task::block_in_place(|| {
        console_cli(
            &relay,
            &["clipboard", "get", "--primary", "--code", &code],
            None,
        )
    });
    assert!(ok, "clipboard get --primary failed: {err}");
    assert_eq!(out, "from stdin\n");

    // Over the limit on standard input: a usage error before the code is claimed.
    let code = agent.code().await.to_string();
    let big = "a".repeat(MAX_CLIPBOARD_BYTES + 1);
    let (ok, _, err) = tokio::task::block_in_place(|| {
        console_cli(&relay, &["clipboard", "set", "--code", &code], Some(&big))
    });
    assert!(!ok);
    assert!(err.contains("1 MiB"), "{err}");
    // The code is still unused: the library claims it.
    let code: tether_proto::SessionCode = code.parse().unwrap();
    let mut session = open_session(&relay.console(), code, scopes("clipboard"))
        .await
        .expect("the code was not used by the refused command");
    assert_eq!(
        clipboard::get(&mut session, Selection::Clipboard)
            .await
            .unwrap(),
        text
    );
    session.end().await;
}

/// Takes the keyboard focus away from every window on `display` (as clicking another program would).
fn unfocus(display: &str) {
    use x11rb::connection::Connection;
    use x11rb::protocol::xproto::{ConnectionExt, InputFocus};
    let (conn, _) = x11rb::connect(Some(display)).unwrap();
    conn.set_input_focus(InputFocus::NONE, x11rb::NONE, x11rb::CURRENT_TIME)
        .unwrap()
        .check()
        .unwrap();
    conn.flush().unwrap();
}

/// The focus sync as a technician meets it, in the window titled `title` on `g`'s display: the
/// technician's clipboard goes to the user's (`user`, a display) when the window gains the focus, and
/// what the user then copies comes back when it loses the focus. Each step is seen in the window's
/// standard output and in both X clipboards, read with `xclip`.
async fn focus_sync_both_ways(g: &Gui, title: &str, user: &str, agent: &mut TestAgent) {
    let tech = g.x.display.clone();
    tokio::task::block_in_place(|| {
        unfocus(&tech);
        std::thread::sleep(Duration::from_millis(500));
        xclip_in(&tech, Selection::Clipboard, "copied by the technician");
        g.xdotool(&[
            "search",
            "--onlyvisible",
            "--name",
            title,
            "windowfocus",
            "--sync",
        ]);
        g.expect("note: clipboard: sent 24 characters to the user");
        assert_eq!(
            xclip_out(user, Selection::Clipboard).as_deref(),
            Some("copied by the technician")
        );
    });
    expect_notice(agent, ClipboardUse::Put, 24, "copied by the technician").await;
    tokio::task::block_in_place(|| {
        xclip_in(user, Selection::Clipboard, "copied by the user");
        unfocus(&tech);
        g.expect("note: clipboard: copied 18 characters from the user");
        assert_eq!(
            xclip_out(&tech, Selection::Clipboard).as_deref(),
            Some("copied by the user")
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_sends_the_technicians_clipboard_on_entering_and_brings_the_users_back_on_leaving()
 {
    let relay = TestRelay::start().await;
    let (x, mut agent) = agent_on(&relay, "view,control,clipboard", false);
    let user = x.display.clone();
    let code = agent.code().await.to_string();
    let mut c = Command::new(bin("tether-console"));
    c.args(relay_args(&relay))
        .args(["connect", "--clipboard", "--code", &code])
        .env("TETHER_TOKEN", &relay.token);
    let g = tokio::task::block_in_place(|| Gui::start(c, (1400, 900), "Tether viewer"));
    g.expect("viewer: showing");
    focus_sync_both_ways(&g, "Tether viewer", &user, &mut agent).await;
    tokio::task::block_in_place(|| {
        // Entering again with that same text: nothing is sent back (the user's clipboard stays
        // xclip's, not the agent's).
        g.xdotool(&[
            "search",
            "--onlyvisible",
            "--name",
            "Tether viewer",
            "windowfocus",
            "--sync",
        ]);
        std::thread::sleep(Duration::from_secs(2));
        assert!(!g.saw("note: clipboard: sent 18"), "sent back unchanged");
    });
    let puts = agent
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|e| {
            matches!(
                e,
                AgentEvent::Clipboard {
                    used: ClipboardUse::Put,
                    ..
                }
            )
        })
        .count();
    assert_eq!(puts, 1, "only the one change crossed to the user");
    drop(g);
}

/// What `wl-paste` reads from the clipboard (or the primary selection) of the headless sway.
fn wl_paste(sway: &Desktop, primary: bool) -> Option<String> {
    let mut args = vec!["--no-newline"];
    if primary {
        args.push("--primary");
    }
    let out = sway.cmd("wl-paste", &args);
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).expect("wl-paste gives UTF-8"))
}

/// Copies `text` with `wl-copy` (which stays behind to serve it) and waits until `wl-paste` reads
/// it back.
fn wl_copy(sway: &Desktop, primary: bool, text: &str) {
    let mut c = sway.command("wl-copy");
    if primary {
        c.arg("--primary");
    }
    let status = c
        .arg("--")
        .arg(text)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("wl-copy (install wl-clipboard)");
    assert!(status.success(), "wl-copy failed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while wl_paste(sway, primary).as_deref() != Some(text) {
        assert!(Instant::now() < deadline, "wl-copy never held the text");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wlroots_clipboard_both_ways_on_headless_sway() {
    let sway = tokio::task::block_in_place(|| Desktop::sway(""));
    let socket = Some(sway.socket.display().to_string());
    let relay = TestRelay::start().await;
    let mut config = ShareConfig::new(relay.target());
    config.clipboard = Arc::new(WlrootsClipboard::new(socket.clone()));
    let mut agent = TestAgent::spawn_with(config, Some(scopes("clipboard")));
    let theirs = "from wl-copy\tnaïve\n日本";
    tokio::task::block_in_place(|| wl_copy(&sway, false, theirs));
    let code = agent.code().await;
    let mut session = open_session(&relay.console(), code, scopes("clipboard"))
        .await
        .unwrap();
    assert_eq!(
        clipboard::get(&mut session, Selection::Clipboard)
            .await
            .unwrap(),
        theirs
    );
    expect_notice(
        &mut agent,
        ClipboardUse::Read,
        theirs.chars().count(),
        &preview(theirs),
    )
    .await;
    let ours = "set by the technician\u{1b}[0m\r\n";
    clipboard::set(&mut session, Selection::Clipboard, ours)
        .await
        .unwrap();
    expect_notice(
        &mut agent,
        ClipboardUse::Put,
        ours.chars().count(),
        &preview(ours),
    )
    .await;
    let pasted = tokio::task::block_in_place(|| wl_paste(&sway, false));
    assert_eq!(pasted.as_deref(), Some(ours));
    // The agent reads back what it serves, and the primary selection is its own.
    assert_eq!(
        clipboard::get(&mut session, Selection::Clipboard)
            .await
            .unwrap(),
        ours
    );
    clipboard::set(
        &mut session,
        Selection::Primary,
        "primary from the technician",
    )
    .await
    .unwrap();
    let (primary, clip) =
        tokio::task::block_in_place(|| (wl_paste(&sway, true), wl_paste(&sway, false)));
    assert_eq!(primary.as_deref(), Some("primary from the technician"));
    assert_eq!(clip.as_deref(), Some(ours));
    tokio::task::block_in_place(|| wl_copy(&sway, true, "highlighted on sway"));
    assert_eq!(
        clipboard::get(&mut session, Selection::Primary)
            .await
            .unwrap(),
        "highlighted on sway"
    );
    session.end().await;

    // Nothing before the grant and nothing after revoking, on this backend too.
    tokio::task::block_in_place(|| wl_copy(&sway, false, "the sway user's secret"));
    tether_tests::grant::clipboard_nothing_before_the_grant(
        Arc::new(WlrootsClipboard::new(socket)),
        "the sway user's secret",
        || tokio::task::block_in_place(|| wl_paste(&sway, false)).unwrap_or_default(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_window_shows_each_use_and_stop_clipboard_sharing_takes_it_back() {
    use tether_agent::window::layout;
    let relay = TestRelay::start().await;
    let w = tokio::task::block_in_place(|| Gui::agent(&relay, 60));
    let user = w.x.display.clone();
    let code: tether_proto::SessionCode = tokio::task::block_in_place(|| {
        w.click(layout::centre(layout::GET_HELP));
        let line = w.expect("session code:");
        line.split("code:").nth(1).unwrap().trim().parse().unwrap()
    });
    let config = relay.console();
    let console =
        tokio::spawn(async move { open_session(&config, code, scopes("clipboard")).await });
    tokio::task::block_in_place(|| {
        w.expect("asks to:");
        std::thread::sleep(Duration::from_secs(1));
        w.click(layout::scope_box(0));
        w.click(layout::centre(layout::ALLOW));
    });
    let mut session = console.await.unwrap().expect("session opens");
    assert_eq!(session.granted, scopes("clipboard"));
    let text = "naïve\tcafé\n日本\u{1b}[2J";
    clipboard::set(&mut session, Selection::Clipboard, text)
        .await
        .unwrap();
    tokio::task::block_in_place(|| {
        // The banner says it, the text made safe; the user's programs paste it exactly.
        let last = w.expect("last: ");
        assert_eq!(
            last,
            "last: Ada Lovelace of Acme IT put 17 characters on your clipboard: \"naïve café␊日本␛[2J\"."
        );
        assert_eq!(
            xclip_out(&user, Selection::Clipboard).as_deref(),
            Some(text)
        );
        w.click(layout::centre(layout::STOP_CLIPBOARD));
        w.expect("You took back \"clipboard\"");
    });
    let mut grant = session.grant();
    tokio::time::timeout(
        Duration::from_secs(10),
        grant.wait_for(|g| !g.contains(Scope::Clipboard)),
    )
    .await
    .expect("the console hears of it")
    .unwrap();
    let err = clipboard::get(&mut session, Selection::Clipboard)
        .await
        .expect_err("taken back");
    assert!(
        matches!(err, ConsoleError::ScopeDenied(Scope::Clipboard)),
        "{err:?}"
    );
    session.end().await;
}

/// The console window follows the focus as the viewer does: the technician's clipboard goes to the
/// user's when the window gains the focus, and the user's comes back when it loses it (issue 19).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_window_syncs_the_clipboard_as_it_gains_and_loses_the_focus() {
    use tether_console::window::layout as console;
    let relay = TestRelay::start().await;
    let (x, mut agent) = agent_on(&relay, "view,control,clipboard", false);
    let user = x.display.clone();
    let code = agent.code().await.to_string();
    let c = tokio::task::block_in_place(|| Gui::console(&relay));
    tokio::task::block_in_place(|| {
        for (i, s) in Scope::ALL.iter().enumerate() {
            if [Scope::View, Scope::Control, Scope::Clipboard].contains(s) {
                c.click(console::tick(console::scope_box(i)));
            }
        }
        c.type_into(console::centre(console::CODE), &code);
        c.click(console::centre(console::CONNECT));
        c.expect("consent: granted view,control,clipboard");
    });
    focus_sync_both_ways(&c, console::TITLE, &user, &mut agent).await;
    drop(c);
}
