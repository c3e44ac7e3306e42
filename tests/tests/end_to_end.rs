//! Issue 21: every session's requests run on one end-to-end QUIC connection between the agent and
//! the console, pinned both ways through the sealed transport stream, whose packets the relay
//! forwards without decrypting them. A relay that tampers with those packets, or stands in for
//! either end with a certificate of its own, gets no session: it fails closed, with a reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tether_net::e2e::{AgentHalf, ConsoleHalf, E2eError};
use tether_net::framed;
use tether_proto::ScopeSet;
use tether_proto::forward::RouteToken;
use tether_proto::msg::{AgentToRelay, E2eOffer, EndReason, RelayToAgent};
use tether_proto::path::Path;
use tether_tests::{RawClaim, RawConsole, RawSlot, TestAgent, TestRelay, WAIT, paired};

fn inventory() -> ScopeSet {
    "inventory".parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_run_on_the_end_to_end_connection_through_the_forwarder() {
    let forwarded = Arc::new(AtomicU64::new(0));
    let count = forwarded.clone();
    let relay = TestRelay::start_tampering(Arc::new(move |d: &mut [u8]| {
        count.fetch_add(d.len() as u64, Ordering::Relaxed);
    }))
    .await;
    // Relayed only (either end's --relay-only keeps both on the relay): here the console's.
    let mut agent = TestAgent::spawn(&relay, inventory());
    let code = agent.code().await;
    let mut session = tether_console::open_session(&relay.console_relay_only(), code, inventory())
        .await
        .expect("session opens");
    let before = forwarded.load(Ordering::Relaxed);
    session
        .inventory()
        .await
        .expect("inventory over the end-to-end connection");
    let carried = forwarded.load(Ordering::Relaxed) - before;
    // The inventory crossed as forwarded packets (the relay's splice carries only stream 0 and
    // the transport stream's two offers).
    assert!(
        carried > 10_000,
        "the relay forwarded only {carried} bytes for a whole inventory"
    );
    assert_eq!(*session.path().borrow(), Path::Relayed);
    session.end().await;
}

/// On loopback both ends reach each other, so the connection moves to the direct path: the
/// relay forwards only the handshake, and an inventory crosses without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_moves_to_a_direct_path_when_the_ends_reach_each_other() {
    let forwarded = Arc::new(AtomicU64::new(0));
    let count = forwarded.clone();
    let relay = TestRelay::start_tampering(Arc::new(move |d: &mut [u8]| {
        count.fetch_add(d.len() as u64, Ordering::Relaxed);
    }))
    .await;
    let (_agent, mut session) = paired(&relay, inventory(), inventory()).await;
    let mut path = session.path();
    let direct = tokio::time::timeout(WAIT, path.wait_for(|p| matches!(p, Path::Direct(_))))
        .await
        .expect("a direct path within the wait")
        .map(|p| *p)
        .unwrap();
    let Path::Direct(agent_at) = direct else {
        unreachable!()
    };
    assert_ne!(
        agent_at,
        relay.handle.local_addr(),
        "the direct path is not the relay"
    );
    // The agent proves the path from the answer to its own probe, up to a probe interval after
    // the console; until then its packets still go through the relay.
    tokio::time::sleep(tether_proto::path::FAST_PROBE * 5).await;
    let before = forwarded.load(Ordering::Relaxed);
    session
        .inventory()
        .await
        .expect("inventory on the direct path");
    let carried = forwarded.load(Ordering::Relaxed) - before;
    assert!(
        carried < 2_000,
        "the relay still forwarded {carried} bytes after the switch"
    );
    session.end().await;
}

/// IT's `relay_only` on the agent keeps the session on the relay even though the console would
/// go direct: the agent offers no address and answers no probe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_may_not_go_direct_keeps_the_session_relayed() {
    let relay = TestRelay::start().await;
    let mut agent = TestAgent::spawn_with(
        tether_agent::ShareConfig::new(relay.target_relay_only()),
        Some(inventory()),
    );
    let code = agent.code().await;
    let mut session = tether_console::open_session(&relay.console(), code, inventory())
        .await
        .expect("session opens");
    session.inventory().await.expect("inventory, relayed");
    // Longer than the fast probing would take to find the loopback path.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(*session.path().borrow(), Path::Relayed);
    session.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_tampers_with_forwarded_packets_gets_no_session() {
    // One bit flipped in every forwarded datagram.
    let relay = TestRelay::start_tampering(Arc::new(|d: &mut [u8]| {
        if let Some(last) = d.last_mut() {
            *last ^= 0x01;
        }
    }))
    .await;
    let mut agent = TestAgent::spawn(&relay, inventory());
    let code = agent.code().await;
    let err = tether_console::pair_session(&relay.console(), code, inventory())
        .await
        .expect_err("no session over tampered packets");
    let shown = err.to_string();
    assert!(
        matches!(err, tether_console::ConsoleError::EndToEnd(_)),
        "{err:?}"
    );
    assert!(shown.contains("end-to-end connection"), "{shown}");
    let ended = tokio::time::timeout(WAIT, &mut agent.task)
        .await
        .expect("the agent's session ends")
        .unwrap()
        .unwrap();
    match ended {
        EndReason::ProtocolError(r) => assert!(r.contains("end-to-end"), "{r}"),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

/// A raw agent holding a slot, claimed by a raw console: the two route tokens of one session. The
/// agent is handed back: its control stream open is the session going on.
async fn routes(relay: &TestRelay) -> (RawConsole, RouteToken, RawSlot) {
    let mut agent = RawSlot::open(relay).await;
    let agent_side = async {
        let claimed: RelayToAgent = framed::read_msg(&mut agent.recv).await.unwrap();
        let RelayToAgent::Claimed { route, .. } = claimed else {
            panic!("{claimed:?}")
        };
        framed::write_msg(&mut agent.send, &AgentToRelay::Accept)
            .await
            .unwrap();
        route
    };
    let target = relay.target();
    let console_side = RawConsole::claim(&target, None, agent.slot, &relay.token, inventory());
    let (agent_route, claim) = tokio::join!(agent_side, console_side);
    let RawClaim::Claimed(console) = claim else {
        panic!("claim refused")
    };
    (console, agent_route, agent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_end_refuses_a_certificate_other_than_the_one_announced() {
    let relay = TestRelay::start().await;
    let addr = relay.handle.local_addr();

    // A relay standing in for the console: the agent was told one fingerprint (on the sealed
    // transport stream), and the console that connects presents another.
    let (console, agent_route, _agent) = routes(&relay).await;
    let (console_half, _real) = ConsoleHalf::bind(addr, console.route).await.unwrap();
    let announced = E2eOffer {
        fingerprint: [7; 32],
    };
    let (agent_half, agent_offer) = AgentHalf::bind(addr, agent_route, announced).await.unwrap();
    let (connected, accepted) =
        tokio::join!(console_half.connect(agent_offer), agent_half.accept());
    let accepted = accepted.expect_err("the agent refuses a console it was not told of");
    assert!(
        matches!(
            accepted,
            E2eError::WrongPeer {
                peer: "technician's console"
            }
        ),
        "{accepted:?}"
    );
    assert!(
        accepted.to_string().contains("other than the one"),
        "{accepted}"
    );
    // In TLS 1.3 the client finishes first: the console's connection, if it came up, is closed
    // by the agent's refusal at once (the product's console also waits for the agent's word on
    // the transport stream, which never comes).
    if let Ok(link) = connected {
        let closed = tokio::time::timeout(WAIT, link.conn.closed())
            .await
            .expect("the agent closes the console's connection");
        assert!(
            !matches!(closed, quinn::ConnectionError::LocallyClosed),
            "{closed:?}"
        );
    }

    // A relay standing in for the agent: the console was told one fingerprint and the agent that
    // answers presents another.
    let (console, agent_route, _agent) = routes(&relay).await;
    let (console_half, console_offer) = ConsoleHalf::bind(addr, console.route).await.unwrap();
    let (agent_half, _agent_offer) = AgentHalf::bind(addr, agent_route, console_offer)
        .await
        .unwrap();
    let other = E2eOffer {
        fingerprint: [9; 32],
    };
    let (connected, _accepted) = tokio::join!(console_half.connect(other), agent_half.accept());
    let connected = connected.expect_err("the console refuses an agent it was not told of");
    assert!(
        matches!(connected, E2eError::WrongPeer { peer: "agent" }),
        "{connected:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_token_the_relay_never_gave_binds_nothing() {
    let relay = TestRelay::start().await;
    let err = ConsoleHalf::bind(relay.handle.local_addr(), RouteToken([3; 16]))
        .await
        .expect_err("an unknown token binds nothing");
    assert!(matches!(err, E2eError::UnknownRoute), "{err:?}");
    // The relay still serves everyone else.
    let (_agent, session) = paired(&relay, inventory(), inventory()).await;
    session.end().await;
}
