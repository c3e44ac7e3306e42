//! In-session chat, end to end on a real relay: both directions, before and after consent, sealed
//! like every session stream; bad lines refused with clear errors while the session goes on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tether_agent::ui::{AgentEvent, UserCommand};
use tether_console::ConsoleError;
use tether_net::sealed::SealedStream;
use tether_proto::chat::{ChatError, ChatText, MAX_CHAT_CHARS};
use tether_proto::msg::{AgentToConsole, ConsoleToAgent};
use tether_proto::pairing::Side;
use tether_proto::{Scope, ScopeSet};
use tether_tests::{RawClaim, RawConsole, TestAgent, TestRelay, WAIT};

fn inventory() -> ScopeSet {
    [Scope::Inventory].into_iter().collect()
}

/// Waits for the user's screen to show a chat line from the technician.
async fn user_sees(agent: &mut TestAgent) -> (Option<String>, String) {
    match agent
        .expect("a chat line", |e| {
            matches!(e, AgentEvent::Chat { from: Some(_), .. })
        })
        .await
    {
        AgentEvent::Chat { from, text } => (from, text.as_str().to_string()),
        _ => unreachable!(),
    }
}

async fn user_says(agent: &TestAgent, text: &str) {
    agent
        .commands
        .send(UserCommand::Chat(ChatText::new(text).unwrap()))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_works_both_ways_from_pairing_on_before_any_scope_is_asked() {
    let relay = TestRelay::start().await;
    let mut agent = TestAgent::spawn(&relay, inventory());
    let code = agent.code().await;
    let mut session = tether_console::pair_session(&relay.console(), code, inventory())
        .await
        .unwrap();
    assert!(session.granted.is_empty(), "nothing granted before asking");

    session
        .say("Hello, this is Ada. I will ask to read your list of programs.")
        .await
        .unwrap();
    let (from, text) = user_sees(&mut agent).await;
    assert_eq!(from.as_deref(), Some("Ada Lovelace of Acme IT"));
    assert_eq!(
        text,
        "Hello, this is Ada. I will ask to read your list of programs."
    );
    assert!(
        !agent.saw(|e| matches!(e, AgentEvent::ConsentRequested { .. })),
        "the technician explained before asking for anything"
    );

    user_says(&agent, "OK, go ahead").await;
    let reply = tokio::time::timeout(WAIT, session.next_chat())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.as_str(), "OK, go ahead");

    assert_eq!(session.ask_consent().await.unwrap(), inventory());
    session
        .inventory()
        .await
        .expect("the session works as usual");

    // After consent the chat goes on, and what the user types is shown harmlessly.
    session.say("Thanks, all done.").await.unwrap();
    assert_eq!(user_sees(&mut agent).await.1, "Thanks, all done.");
    user_says(&agent, "bye\u{1b}[2J").await;
    let reply = tokio::time::timeout(WAIT, session.next_chat())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.as_str(), "bye\u{241b}[2J");
    assert!(
        agent.saw(|e| matches!(e, AgentEvent::Chat { from: None, text } if text.as_str() == "OK, go ahead")),
        "the user's own line is shown to them once sent"
    );
    session.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_and_oversized_lines_are_refused_and_the_session_goes_on() {
    let relay = TestRelay::start().await;
    let (mut agent, mut session) = tether_tests::paired(&relay, inventory(), inventory()).await;
    let long = "a".repeat(MAX_CHAT_CHARS + 1);
    match session.say(&long).await {
        Err(ConsoleError::Chat(ChatError::TooLong(n))) => assert_eq!(n, MAX_CHAT_CHARS + 1),
        other => panic!("expected a too-long error, got {other:?}"),
    }
    let e = session.say("  \n ").await.unwrap_err();
    assert!(matches!(e, ConsoleError::Chat(ChatError::Empty)), "{e}");
    assert_eq!(e.exit_code(), 2);
    // Nothing was sent, and nothing was lost: the next line and the next request arrive.
    session.say("still here").await.unwrap();
    assert_eq!(user_sees(&mut agent).await.1, "still here");
    session.inventory().await.unwrap();
    assert_eq!(
        agent
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, AgentEvent::Chat { .. }))
            .count(),
        1
    );
    session.end().await;
}

/// A console that skips the checks: the agent checks again, drops what fails, renders control
/// characters harmless, and the session goes on to consent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_checks_chat_again_from_a_console_that_skips_the_checks() {
    let relay = TestRelay::start().await;
    let mut agent = TestAgent::spawn(&relay, inventory());
    let code = agent.code().await;
    let RawClaim::Claimed(mut raw) =
        RawConsole::claim(&relay.target(), None, code.slot, &relay.token, inventory()).await
    else {
        panic!("claim refused");
    };
    let keys = raw.pair(&code).await.unwrap();
    let (mut tx, mut rx) = SealedStream::new(raw.send, raw.recv, &keys, 0, Side::Console).split();
    let raw_lines = [
        "x".repeat(MAX_CHAT_CHARS * 4),
        String::new(),
        "\u{1b}]0;pwned\u{7}call +1 555 0100\n[Acme] ignore the above".to_string(),
    ];
    for text in raw_lines {
        tx.send(&ConsoleToAgent::Chat { text }).await.unwrap();
    }
    let (_, shown) = user_sees(&mut agent).await;
    assert_eq!(
        shown,
        "\u{241b}]0;pwned\u{2407}call +1 555 0100\u{240a}[Acme] ignore the above"
    );
    tx.send(&ConsoleToAgent::ConsentRequest {
        scopes: inventory(),
    })
    .await
    .unwrap();
    let decision = tokio::time::timeout(WAIT, rx.recv::<AgentToConsole>())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        decision,
        AgentToConsole::ConsentDecision {
            granted: inventory()
        }
    );
    assert_eq!(
        agent
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, AgentEvent::Chat { .. }))
            .count(),
        1,
        "the oversized and the empty line were dropped"
    );
    raw.relay.close(0, "done").await;
}

/// `tether-console chat` as a script uses it: lines in, the user's lines out as JSON, `/ask` and
/// `/invite` in between, and a refused line reported without ending the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_command_talks_asks_and_invites_over_stdin_and_stdout() {
    use std::io::Write;
    use tether_tests::procs::wait_for;

    let relay = TestRelay::start().await;
    tether_relay::technicians::Technicians::new(relay.dir.path())
        .add_full(
            "Grace Hopper",
            "Acme IT",
            tether_proto::msg::TechnicianRole::Technician,
            tether_proto::msg::Tier::L2,
            None,
        )
        .unwrap();
    let mut agent = TestAgent::spawn(&relay, inventory());
    let code = agent.code().await.to_string();
    let (mut console, out, mut stdin) = relay.chat_command(&code, "inventory", true);
    writeln!(stdin, "Hello from the script").unwrap();
    assert_eq!(user_sees(&mut agent).await.1, "Hello from the script");
    user_says(&agent, "hi script").await;
    let line = tokio::task::spawn_blocking(move || (wait_for(&out, "hi script"), out))
        .await
        .unwrap();
    let (line, out) = line;
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (v["from"].as_str(), v["text"].as_str()),
        (Some("user"), Some("hi script"))
    );

    writeln!(stdin, "{}", "x".repeat(MAX_CHAT_CHARS + 1)).unwrap();
    writeln!(stdin, "/ask").unwrap();
    let (refused, out) = tokio::task::spawn_blocking(move || (wait_for(&out, "at most"), out))
        .await
        .unwrap();
    assert!(refused.contains("\"from\":\"error\""), "{refused}");
    let (allowed, out) =
        tokio::task::spawn_blocking(move || (wait_for(&out, "the user allowed"), out))
            .await
            .unwrap();
    assert!(allowed.contains("inventory"), "{allowed}");

    writeln!(stdin, "/invite Grace Hopper").unwrap();
    agent
        .expect("the invitation prompt", |e| {
            matches!(e, AgentEvent::InviteRequested { .. })
        })
        .await;
    agent
        .commands
        .send(UserCommand::AnswerInvite(true))
        .await
        .unwrap();
    let (invited, _out) =
        tokio::task::spawn_blocking(move || (wait_for(&out, "give Grace Hopper this code"), out))
            .await
            .unwrap();
    let v: serde_json::Value = serde_json::from_str(&invited).unwrap();
    let text = v["text"].as_str().unwrap();
    let given: tether_proto::SessionCode = text
        .split("this code: ")
        .nth(1)
        .unwrap()
        .split(" (")
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(given.to_string(), code, "a fresh code for the colleague");
    drop(stdin);
    let status = tokio::task::spawn_blocking(move || console.0.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "end of input ends the session cleanly");
}

/// Issue 17 item 5: `tether-console chat` keeps talking after `/ask`: the technician's line reaches
/// the user while the consent prompt is open, the user's question reaches the technician before they
/// answer, and the answer is printed when it comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_command_goes_on_while_the_user_decides() {
    use std::io::Write;
    use tether_tests::procs::wait_for;

    let relay = TestRelay::start().await;
    // A user who answers only when the test says so.
    let mut agent = TestAgent::spawn_with(tether_agent::ShareConfig::new(relay.target()), None);
    let code = agent.code().await.to_string();
    let (mut console, out, mut stdin) = relay.chat_command(&code, "inventory", true);
    writeln!(stdin, "/ask").unwrap();
    let (asked, out) =
        tokio::task::spawn_blocking(move || (wait_for(&out, "asked the user for"), out))
            .await
            .unwrap();
    assert!(asked.contains("\"from\":\"consent\""), "{asked}");
    agent
        .expect("the consent prompt", |e| {
            matches!(e, AgentEvent::ConsentRequested { .. })
        })
        .await;
    writeln!(stdin, "It is only the printer list").unwrap();
    assert_eq!(user_sees(&mut agent).await.1, "It is only the printer list");
    user_says(&agent, "why do you need my inventory?").await;
    let (question, out) =
        tokio::task::spawn_blocking(move || (wait_for(&out, "why do you need my inventory?"), out))
            .await
            .unwrap();
    assert!(question.contains("\"from\":\"user\""), "{question}");
    agent
        .commands
        .send(UserCommand::Consent(inventory()))
        .await
        .unwrap();
    let (allowed, _out) =
        tokio::task::spawn_blocking(move || (wait_for(&out, "the user allowed"), out))
            .await
            .unwrap();
    assert!(allowed.contains("inventory"), "{allowed}");
    drop(stdin);
    let status = tokio::task::spawn_blocking(move || console.0.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "end of input ends the session cleanly");
}
