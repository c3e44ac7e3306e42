//! Faults: relay restart, peers that vanish, overload, and graceful shutdown, over real QUIC on
//! loopback. Every wait is bounded (the harness's `WAIT`, the console's step timeout); how long
//! recovery takes is printed here and measured in `tether-bench faults` (BENCHMARKS.md), not asserted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use tether_agent::ShareConfig;
use tether_agent::ui::{AgentEvent, UserCommand};
use tether_console::{ConsoleConfig, ConsoleError};
use tether_net::ConnectError;
use tether_proto::msg::{EndReason, close};
use tether_proto::{Scope, ScopeSet};
use tether_relay::Limits;
use tether_tests::proxy::UdpProxy;
use tether_tests::{TestAgent, TestRelay, WAIT, paired};

fn inventory() -> ScopeSet {
    ScopeSet::from_iter([Scope::Inventory])
}

fn audit_has(relay: &TestRelay, event: &str, reason: &str) -> bool {
    relay
        .audit()
        .iter()
        .any(|r| r["event"] == event && r["reason"] == reason)
}

/// Polls the audit log until it has the record (the relay writes it as the session task finishes).
async fn wait_audit(relay: &TestRelay, event: &str, reason: &str) {
    tokio::time::timeout(WAIT, async {
        while !audit_has(relay, event, reason) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("audit log never recorded {event} with reason {reason:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_agent_reconnects_after_a_relay_restart_and_its_new_code_works() {
    let relay = TestRelay::start().await;
    let mut agent = TestAgent::spawn(&relay, inventory());
    let old = agent.code().await;

    let t = Instant::now();
    let relay = relay.restart().await;
    match agent
        .expect("the relay loss", |e| {
            matches!(e, AgentEvent::RelayLost { .. })
        })
        .await
    {
        AgentEvent::RelayLost { reason, retry_in } => {
            assert_eq!(reason, "relay shutting down");
            assert!(retry_in.is_some(), "a waiting agent retries");
        }
        _ => unreachable!(),
    }
    let new = agent.code().await;
    println!("reachable again {:?} after the restart began", t.elapsed());
    assert_ne!(new.to_string(), old.to_string(), "a new code is shown");

    // The old code died with the old relay; the new one pairs and serves.
    let err = tether_console::open_session(&relay.console(), old, inventory())
        .await
        .expect_err("the old code is gone");
    assert!(matches!(err, ConsoleError::UnknownCode), "{err:?}");
    let mut session = tether_console::open_session(&relay.console(), new, inventory())
        .await
        .expect("the new code works");
    session
        .inventory()
        .await
        .expect("inventory after reconnect");
    session.end().await;
    let end = tokio::time::timeout(WAIT, agent.task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(end.unwrap(), EndReason::TechnicianEnded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_retries_while_the_relay_is_down_and_the_user_can_stop_it() {
    let relay = TestRelay::start().await;
    let mut agent = TestAgent::spawn(&relay, inventory());
    agent.code().await;
    relay.handle.shutdown().await;
    // Down for good: the agent keeps trying with growing delays, and says so each time.
    let mut delays = Vec::new();
    while delays.len() < 3 {
        if let AgentEvent::RelayLost {
            retry_in: Some(d), ..
        } = agent
            .expect("a retry", |e| matches!(e, AgentEvent::RelayLost { .. }))
            .await
        {
            delays.push(d);
        }
    }
    println!("retry delays: {delays:?}");
    assert!(
        delays[2] > delays[0],
        "backoff grows (jitter keeps each within [step/2, step]): {delays:?}"
    );
    agent.commands.send(UserCommand::EndSession).await.unwrap();
    let end = tokio::time::timeout(WAIT, agent.task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(end.unwrap(), EndReason::UserEnded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_agent_and_console_why_and_audits_the_session() {
    let relay = TestRelay::start().await;
    let (mut agent, session) = paired(&relay, inventory(), inventory()).await;
    let mut waiting = TestAgent::spawn(&relay, inventory());
    waiting.code().await;
    let audit_path = relay.handle.audit_path();
    let TestRelay { handle, dir, .. } = relay;

    let t = Instant::now();
    handle.shutdown().await;
    println!("shutdown took {:?}", t.elapsed());

    // The console hears the relay's reason.
    let told = tokio::time::timeout(WAIT * 3, session.closed())
        .await
        .unwrap();
    match &told {
        ConsoleError::RelayClosed(reason) => assert_eq!(reason, "relay shutting down"),
        other => panic!("console was told {other:?}"),
    }
    assert!(told.to_string().contains("relay shutting down"), "{told}");

    // The agent in session ends cleanly and says why.
    let lost = agent
        .expect("the relay loss", |e| {
            matches!(e, AgentEvent::RelayLost { .. })
        })
        .await;
    assert!(
        matches!(&lost, AgentEvent::RelayLost { reason, retry_in: None } if reason == "relay shutting down"),
        "{lost:?}"
    );
    let end = tokio::time::timeout(WAIT, agent.task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(end.unwrap(), EndReason::ConnectionLost);

    // The waiting agent is told too, and starts reconnecting.
    let lost = waiting
        .expect("the relay loss", |e| {
            matches!(e, AgentEvent::RelayLost { .. })
        })
        .await;
    assert!(
        matches!(&lost, AgentEvent::RelayLost { reason, retry_in: Some(_) } if reason == "relay shutting down"),
        "{lost:?}"
    );
    waiting
        .commands
        .send(UserCommand::EndSession)
        .await
        .unwrap();
    tokio::time::timeout(WAIT, waiting.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    let audit = std::fs::read_to_string(audit_path).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"session_ended\"") && l.contains("relay shutting down")),
        "audit records the session ended by the shutdown:\n{audit}"
    );
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_agent_is_detected_and_the_console_is_told() {
    let relay = TestRelay::start().await;
    let proxy = UdpProxy::start(relay.handle.local_addr()).await.unwrap();
    let mut agent = TestAgent::spawn_with(
        ShareConfig::new(relay.target_via(proxy.addr())),
        Some(inventory()),
    );
    let code = agent.code().await;
    let mut session = tether_console::open_session(&relay.console(), code, inventory())
        .await
        .unwrap();
    session.inventory().await.expect("works before the cut");

    proxy.cut();
    let t = Instant::now();
    let told = tokio::time::timeout(WAIT * 3, session.closed())
        .await
        .unwrap();
    println!(
        "console told {:?} after the agent vanished: {told}",
        t.elapsed()
    );
    match &told {
        ConsoleError::RelayClosed(reason) => assert_eq!(reason, "session ended: agent left"),
        other => panic!("console was told {other:?}"),
    }
    let err = session.inventory().await.expect_err("the session is over");
    assert!(matches!(err, ConsoleError::RelayClosed(_)), "{err:?}");
    wait_audit(&relay, "session_ended", "agent left").await;

    // The agent itself loses the relay (its packets go nowhere) and ends the session.
    let end = tokio::time::timeout(WAIT, agent.task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(end.unwrap(), EndReason::ConnectionLost);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_console_is_detected_and_the_agent_is_told() {
    let relay = TestRelay::start().await;
    let proxy = UdpProxy::start(relay.handle.local_addr()).await.unwrap();
    let mut agent = TestAgent::spawn(&relay, inventory());
    let code = agent.code().await;
    let console = ConsoleConfig {
        relay: relay.target_via(proxy.addr()),
        token: relay.token.clone(),
    };
    let mut session = tether_console::open_session(&console, code, inventory())
        .await
        .unwrap();
    session.inventory().await.expect("works before the cut");

    proxy.cut();
    let t = Instant::now();
    agent
        .expect("the session to end", |e| {
            matches!(
                e,
                AgentEvent::Ended {
                    reason: EndReason::ConnectionLost
                }
            )
        })
        .await;
    println!("agent told {:?} after the console vanished", t.elapsed());
    assert!(
        !agent.saw(|e| matches!(e, AgentEvent::RelayLost { .. })),
        "the agent's own relay link is fine: it was told by the relay, not cut off"
    );
    wait_audit(&relay, "session_ended", "console left").await;
    drop(session);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_connection_limit_new_peers_are_refused_busy_and_sessions_continue() {
    let relay = TestRelay::start_with(
        Limits {
            max_connections: 2,
            ..Limits::default()
        },
        None,
    )
    .await;
    let (agent, mut session) = paired(&relay, inventory(), inventory()).await;

    // A third connection, agent or console, is refused with a reason.
    let extra = TestAgent::spawn(&relay, inventory());
    let err = tokio::time::timeout(WAIT, extra.task)
        .await
        .unwrap()
        .unwrap()
        .expect_err("refused");
    match &err {
        tether_agent::ShareError::Connect(ConnectError::RelayClosed(c)) => {
            assert!(c.is(close::BUSY), "{c:?}");
            assert!(c.reason.contains("capacity"), "{c}");
        }
        other => panic!("agent got {other:?}"),
    }
    assert!(err.to_string().contains("relay at capacity"), "{err}");
    let code = "123 456 789".parse().unwrap();
    let err = tether_console::open_session(&relay.console(), code, inventory())
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, ConsoleError::Connect(ConnectError::RelayClosed(c)) if c.is(close::BUSY)),
        "{err:?}"
    );

    // The session in progress is untouched.
    session
        .inventory()
        .await
        .expect("existing session continues");
    session.end().await;
    let end = tokio::time::timeout(WAIT, agent.task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(end.unwrap(), EndReason::TechnicianEnded);

    // Capacity frees up when the session's connections close.
    let mut next = TestAgent::spawn(&relay, inventory());
    next.code().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_works_over_a_slow_lossy_link() {
    // 50 ms and 1 % loss each way on both the agent's and the console's link to the relay.
    let (delay, loss) = (Duration::from_millis(50), 0.01);
    let relay = TestRelay::start().await;
    let agent_link = UdpProxy::start_impaired(relay.handle.local_addr(), delay, loss)
        .await
        .unwrap();
    let console_link = UdpProxy::start_impaired(relay.handle.local_addr(), delay, loss)
        .await
        .unwrap();
    // Relayed only: on loopback a direct path would go round the impaired links.
    let relayed = |addr| tether_net::RelayTarget {
        direct: tether_net::path::Direct::Forbidden,
        ..relay.target_via(addr)
    };
    let mut agent = TestAgent::spawn_with(
        ShareConfig::new(relayed(agent_link.addr())),
        Some(inventory()),
    );
    let code = agent.code().await;
    let console = ConsoleConfig {
        relay: relayed(console_link.addr()),
        token: relay.token.clone(),
    };
    let t = Instant::now();
    let mut session = tether_console::open_session(&console, code, inventory())
        .await
        .expect("pairs over a lossy link");
    let paired = t.elapsed();
    let t = Instant::now();
    let inv = session
        .inventory()
        .await
        .expect("inventory over a lossy link");
    let fetched = t.elapsed();
    assert!(!inv.hardware.system.hostname.is_empty());
    println!("lossy link: code -> paired + consent {paired:?}; inventory round trip {fetched:?}");
    session.end().await;
    let end = tokio::time::timeout(WAIT, agent.task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(end.unwrap(), EndReason::TechnicianEnded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_may_open_many_streams_though_fresh_connections_get_one() {
    // Fresh relay connections may open only their control stream (agents need no more, and quinn
    // keeps state per allowed stream); the relay raises a console's limit after its Hello.
    let relay = TestRelay::start().await;
    let mut agent = TestAgent::spawn(&relay, inventory());
    let code = agent.code().await;
    let conn = tether_net::client::connect(&relay.target()).await.unwrap();
    let (mut send, mut recv) =
        tether_net::client::open_control(&conn.conn, tether_proto::msg::Role::Console)
            .await
            .unwrap();
    tether_net::framed::write_msg(
        &mut send,
        &tether_proto::msg::ConsoleToRelay::Claim {
            slot: code.slot,
            token: relay.token.clone(),
            scopes: inventory(),
        },
    )
    .await
    .unwrap();
    let reply = tether_net::framed::read_msg::<tether_proto::msg::RelayToConsole>(&mut recv)
        .await
        .unwrap();
    assert!(matches!(
        reply,
        tether_proto::msg::RelayToConsole::Claimed { .. }
    ));
    // With the control stream still open, eight more streams open at once.
    let mut open = Vec::new();
    for _ in 0..8 {
        let s = tokio::time::timeout(WAIT, conn.conn.open_bi())
            .await
            .expect("the relay grants a console more than one stream")
            .unwrap();
        open.push(s);
    }
    assert_eq!(open.len(), 8);
}
