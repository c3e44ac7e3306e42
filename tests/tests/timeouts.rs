//! Every named timeout, end to end on paused time: the real relay, agent and console over QUIC on
//! loopback, with `tokio::time` paused so that virtual time jumps to the next timer whenever every
//! task is idle. Eight hours pass in seconds, and each deadline is measured to the millisecond, so
//! each test fails if its timeout were shorter or longer than the one named.
//!
//! The relay's slot table keeps its own clock (time passed in), so code expiry is tested on it
//! directly, with the relay's default limits. The report acknowledgement is tested against a silent
//! relay that holds the real one's address and certificate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tether_agent::ShareConfig;
use tether_agent::ui::AgentEvent;
use tether_console::ConsoleError;
use tether_net::framed;
use tether_proto::msg::{EndReason, RelayErrorKind, RelayToAgent};
use tether_proto::{ScopeSet, Slot};
use tether_relay::Limits;
use tether_relay::rendezvous::Rendezvous;
use tether_tests::{RawClaim, RawConsole, RawSlot, TestAgent, TestRelay, paired};
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

fn inv() -> ScopeSet {
    "inventory".parse().unwrap()
}

/// Asserts that `elapsed` is `want`, give or take the millisecond the messages themselves take.
fn about(what: &str, elapsed: Duration, want: Duration) {
    assert!(
        elapsed >= want && elapsed < want + Duration::from_secs(1),
        "{what}: took {elapsed:?}, expected {want:?}"
    );
}

/// Issue 17 item 7: silence is a no, and both sides say the user did not answer (not "denied").
#[tokio::test(start_paused = true)]
async fn the_user_saying_nothing_for_sixty_seconds_is_a_no() {
    let relay = TestRelay::start().await;
    // Default settings: the product's consent timeout. The user never answers.
    let mut agent = TestAgent::spawn_with(ShareConfig::new(relay.target()), None);
    let code = agent.code().await;
    let mut s = tether_console::pair_session(&relay.console(), code, inv())
        .await
        .unwrap();
    let t0 = Instant::now();
    let r = s.ask_consent().await;
    assert!(matches!(r, Err(ConsoleError::ConsentTimeout)), "{r:?}");
    assert_eq!(
        r.unwrap_err().to_string(),
        "the user did not answer in time"
    );
    about(
        "silence at the consent prompt",
        t0.elapsed(),
        Duration::from_secs(60),
    );
    assert_eq!(
        (&mut agent.task).await.unwrap().unwrap(),
        EndReason::ConsentTimeout
    );
    assert!(agent.saw(|e| matches!(
        e,
        AgentEvent::ConsentRequested {
            timeout_secs: 60,
            ..
        }
    )));
}

#[tokio::test(start_paused = true)]
async fn a_console_that_says_nothing_after_pairing_is_dropped_after_thirty_seconds() {
    let relay = TestRelay::start().await;
    let mut agent = TestAgent::spawn(&relay, ScopeSet::all());
    let code = agent.code().await;
    let _s = tether_console::pair_session(&relay.console(), code, inv())
        .await
        .unwrap();
    let t0 = Instant::now();
    let end = (&mut agent.task).await.unwrap().unwrap();
    about(
        "no consent request, no chat",
        t0.elapsed(),
        Duration::from_secs(30),
    );
    assert_eq!(end, EndReason::NoRequest { secs: 30 });
}

/// Issue 17 item 7: a chat-first session idle for 5 minutes ends as "no request within 5
/// minutes", not as a protocol error.
#[tokio::test(start_paused = true)]
async fn a_chatting_pair_may_go_quiet_for_five_minutes_before_consent() {
    let relay = TestRelay::start().await;
    let mut agent = TestAgent::spawn(&relay, ScopeSet::all());
    let code = agent.code().await;
    let mut s = tether_console::pair_session(&relay.console(), code, inv())
        .await
        .unwrap();
    // Chat, wait most of the idle time, chat again: the five minutes count from the last line.
    s.say("hello, I am looking at your ticket").await.unwrap();
    tokio::time::sleep(Duration::from_secs(290)).await;
    assert!(
        !agent.task.is_finished(),
        "the agent gave up less than five minutes after a chat line"
    );
    s.say("still here").await.unwrap();
    let t0 = Instant::now();
    let end = (&mut agent.task).await.unwrap().unwrap();
    about("quiet after chat", t0.elapsed(), Duration::from_secs(300));
    assert_eq!(end, EndReason::NoRequest { secs: 300 });
    assert_eq!(end.to_string(), "no request within 5 minutes");
}

#[tokio::test(start_paused = true)]
async fn a_session_ends_at_eight_hours_and_not_before() {
    let relay = TestRelay::start().await;
    let eight_hours = Duration::from_secs(8 * 3600);
    assert_eq!(relay.limits.max_session, eight_hours);
    // The limit counts from the claim, which `paired` makes.
    let t0 = Instant::now();
    let (_agent, mut s) = paired(&relay, ScopeSet::all(), inv()).await;
    tokio::time::sleep_until(t0 + eight_hours - Duration::from_secs(60)).await;
    let inv = s.inventory().await;
    assert!(
        inv.is_ok(),
        "a minute before the limit the session works: {inv:?}"
    );
    let closed = s.closed().await;
    // The relay lets a last frame through for a second (its final-frame grace) before closing.
    about(
        "the session limit",
        t0.elapsed(),
        eight_hours + Duration::from_secs(1),
    );
    match closed {
        ConsoleError::RelayClosed(reason) => assert_eq!(reason, "session ended: time limit"),
        other => panic!("expected the relay to close the session, got {other:?}"),
    }
    let ended = relay
        .audit()
        .into_iter()
        .find(|r| r["event"] == "session_ended")
        .expect("the end is audited");
    assert_eq!(ended["reason"], "time limit");
    let secs = ended["duration_secs"].as_f64().unwrap();
    // Counted to the close, after the final-frame grace.
    assert!((8.0 * 3600.0..8.0 * 3600.0 + 2.0).contains(&secs), "{secs}");
}

#[tokio::test(start_paused = true)]
async fn an_agent_that_does_not_answer_a_claim_is_given_ten_seconds() {
    let relay = TestRelay::start().await;
    // An agent that opens a slot and then never accepts or declines.
    // Every part is held: a dropped control stream would say the agent left.
    let RawSlot {
        relay: _conn,
        send: _send,
        mut recv,
        slot,
    } = RawSlot::open(&relay).await;
    let t0 = Instant::now();
    let claim = RawConsole::claim(&relay.target(), None, slot, &relay.token, inv()).await;
    about(
        "the agent's answer to a claim",
        t0.elapsed(),
        Duration::from_secs(10),
    );
    match claim {
        RawClaim::Refused(e) => {
            assert_eq!(e.kind, RelayErrorKind::Declined);
            assert!(e.message.contains("did not answer"), "{}", e.message);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The agent was told of the claim it ignored.
    let told: RelayToAgent = framed::read_msg(&mut recv).await.unwrap();
    assert!(matches!(told, RelayToAgent::Claimed { slot: s, .. } if s == slot));
}

#[test]
fn a_code_is_claimable_for_ten_minutes_exactly() {
    let limits = Limits::default();
    assert_eq!(limits.code_ttl, Duration::from_secs(600));
    // The table as the relay builds it from its limits.
    let table = || {
        Rendezvous::new(
            limits.code_ttl,
            limits.max_open_slots_per_agent,
            limits.claims_per_technician_per_minute,
            limits.claims_per_source_per_minute,
        )
    };
    let mut rng = rand::thread_rng();
    let now = std::time::Instant::now();
    let ten = Duration::from_secs(600);

    let mut t = table();
    let slot: Slot = t.open(1, "agent", now, &mut rng).unwrap();
    assert!(t.expire(now + ten - MS).is_empty(), "expired early");
    assert_eq!(t.claim(slot, "ada", now + ten - MS), Ok((1, "agent")));

    let mut t = table();
    let slot = t.open(1, "agent", now, &mut rng).unwrap();
    assert_eq!(t.expire(now + ten), vec![(slot, "agent")]);
    assert_eq!(
        t.claim(slot, "ada", now + ten),
        Err(RelayErrorKind::ExpiredSlot)
    );
}

#[tokio::test]
async fn the_agent_is_told_its_code_lasts_ten_minutes() {
    let relay = TestRelay::start().await;
    let mut agent = TestAgent::spawn(&relay, ScopeSet::all());
    let ev = agent
        .expect("a code", |e| matches!(e, AgentEvent::Code { .. }))
        .await;
    let AgentEvent::Code {
        expires_in_secs, ..
    } = ev
    else {
        unreachable!()
    };
    assert_eq!(expires_in_secs, 600);
}

/// A relay (with the real one's identity, on its address) that takes a device's report and never
/// acknowledges it.
async fn silent_fleet_relay(endpoint: quinn::Endpoint) {
    use tether_proto::fleet::{DeviceToRelay, RelayToDevice};
    use tether_proto::msg::{Hello, HelloReply};
    let conn = endpoint.accept().await.unwrap().await.unwrap();
    let (mut send, mut recv) = conn.accept_bi().await.unwrap();
    let hello: Hello = framed::read_msg(&mut recv).await.unwrap();
    framed::write_msg(
        &mut send,
        &HelloReply::Accepted {
            version: hello.version,
        },
    )
    .await
    .unwrap();
    let auth: DeviceToRelay = framed::read_msg(&mut recv).await.unwrap();
    assert!(matches!(auth, DeviceToRelay::Auth { .. }));
    framed::write_msg(
        &mut send,
        &RelayToDevice::Authenticated {
            last_seq: None,
            policy: None,
        },
    )
    .await
    .unwrap();
    let _report = framed::read_frame(&mut recv).await.unwrap();
    // Hold the connection open (QUIC keep-alives flow), and say nothing.
    std::future::pending::<()>().await;
}

#[tokio::test(start_paused = true)]
async fn a_report_not_acknowledged_in_thirty_seconds_stays_queued() {
    use tether_agent::enroll::{DataDir, EnrollConfig, enroll};
    use tether_agent::report::{RunConfig, RunEvent, run};
    let relay = TestRelay::start().await;
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = relay
        .handle
        .store()
        .create_token("Acme IT", 3600, 1, unix_now)
        .unwrap()
        .token;
    let agent_dir = tempfile::tempdir().unwrap();
    enroll(&EnrollConfig {
        relay: relay.target(),
        token,
        data_dir: DataDir::new(agent_dir.path()),
        hostname: "test-host".into(),
    })
    .await
    .unwrap();
    // The real relay goes; a silent one takes its address and certificate.
    let TestRelay { handle, dir, .. } = relay;
    let addr = handle.local_addr();
    handle.shutdown().await;
    let identity = tether_net::tls::RelayIdentity::load_or_create(dir.path()).unwrap();
    let mut tries = 0;
    let endpoint = loop {
        match tether_net::transport::server_endpoint(addr, &identity) {
            Ok(e) => break e,
            Err(_) if tries < 100 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the silent relay binds: {e}"),
        }
    };
    let fake = tokio::spawn(silent_fleet_relay(endpoint));

    let mut cfg = RunConfig::new(DataDir::new(agent_dir.path()));
    cfg.collector.software.dpkg_status = agent_dir.path().join("no-dpkg-status");
    cfg.collector.software.tool_path = Some(vec![]);
    let (_trigger, trigger_rx) = tokio::sync::mpsc::channel(1);
    let (events_tx, mut events) = tokio::sync::mpsc::channel(64);
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(run(cfg, trigger_rx, events_tx, stop.clone()));
    let t0 = loop {
        match events.recv().await.expect("service mode runs") {
            RunEvent::Connected { .. } => break Instant::now(),
            RunEvent::Disconnected { reason, .. } => panic!("not connected: {reason}"),
            _ => {}
        }
    };
    let reason = loop {
        match events.recv().await.expect("service mode runs") {
            RunEvent::Disconnected { reason, .. } => break reason,
            RunEvent::Acked { .. } => panic!("the silent relay acknowledged"),
            _ => {}
        }
    };
    about(
        "the report's acknowledgement",
        t0.elapsed(),
        Duration::from_secs(30),
    );
    assert!(reason.contains("no acknowledgement in time"), "{reason}");
    // Nothing acknowledged, nothing lost: the report waits in the queue for the next connection.
    let queued = DataDir::new(agent_dir.path()).queued().unwrap();
    assert_eq!(queued.len(), 1, "{queued:?}");
    stop.cancel();
    let _ = task.await;
    fake.abort();
}
