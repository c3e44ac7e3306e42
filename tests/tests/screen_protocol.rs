//! Issue 13 item 1, on the screen streams: a tampered frame on a control (input) or view (ack) stream
//! ends the whole session as a protocol error, as on every other session stream. A private Xvfb gives
//! the agent real capture and input backends; the console is a raw one, so it can forge frames.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tether_agent::ShareConfig;
use tether_agent::screen::{ScrapScreen, X11Input};
use tether_net::framed;
use tether_proto::ScopeSet;
use tether_proto::msg::{AgentToConsole, EndReason, Request, StreamOpen};
use tether_proto::screen::{InputEvent, ViewerMsg};
use tether_proto::seal::Direction;
use tether_tests::{RawClaim, RawConsole, TestAgent, TestRelay, WAIT, Xvfb};

/// Pairs a raw console with an agent on `x`, asks for view and control (granted), then opens stream
/// 1 with `request` followed by a tampered copy of `next`; returns how the agent's session ended.
async fn tampered_after<T: serde::Serialize>(x: &Xvfb, request: Request, next: &T) -> EndReason {
    let relay = TestRelay::start().await;
    let mut config = ShareConfig::new(relay.target());
    config.screen = Arc::new(ScrapScreen::new(Some(x.display.clone())));
    config.input = Arc::new(X11Input::new(Some(x.display.clone())));
    let scopes: ScopeSet = "view,control".parse().unwrap();
    let mut agent = TestAgent::spawn_with(config, Some(scopes));
    let code = agent.code().await;
    let RawClaim::Claimed(mut raw) =
        RawConsole::claim(&relay.target(), None, code.slot, &relay.token, scopes).await
    else {
        panic!("claim refused")
    };
    let keys = raw.pair(&code).await.unwrap();
    raw.end_to_end(&keys).await;
    let (decision, _opener) = raw.ask_consent(&keys, scopes).await;
    assert_eq!(
        decision,
        AgentToConsole::ConsentDecision { granted: scopes }
    );

    let mut sealer = keys.sealer(1, Direction::ConsoleToAgent);
    let first = sealer.seal_msg(&request).unwrap();
    let mut forged = sealer.seal_msg(next).unwrap();
    let last = forged.len() - 1;
    forged[last] ^= 0x01;
    let (mut send, _recv) = raw.conn().open_bi().await.unwrap();
    framed::write_msg(&mut send, &StreamOpen { stream_id: 1 })
        .await
        .unwrap();
    framed::write_frame(&mut send, &first).await.unwrap();
    framed::write_frame(&mut send, &forged).await.unwrap();

    let reason = tokio::time::timeout(WAIT, &mut agent.task)
        .await
        .expect("the session ends")
        .unwrap()
        .unwrap();
    // The relay's audit hears it from the agent.
    let want = format!("ended reason={reason}");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !relay
        .audit()
        .iter()
        .any(|e| e["event"] == "agent_report" && e["report"].as_str() == Some(want.as_str()))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no audit line {want:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    reason
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_input_event_ends_the_session_as_a_protocol_error() {
    let x = Xvfb::start_free();
    let reason = tampered_after(
        &x,
        Request::Control { display: 0 },
        &InputEvent::MouseMove { x: 10, y: 10 },
    )
    .await;
    assert!(
        matches!(&reason, EndReason::ProtocolError(r) if r.contains("authentication")),
        "{reason:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_view_ack_ends_the_session_as_a_protocol_error() {
    let x = Xvfb::start_free();
    let reason = tampered_after(&x, Request::View { display: 0 }, &ViewerMsg::Ack { seq: 1 }).await;
    assert!(
        matches!(&reason, EndReason::ProtocolError(r) if r.contains("authentication")),
        "{reason:?}"
    );
}
