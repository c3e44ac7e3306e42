//! A session frame that fails to open ends the session on both sides, whichever side saw it, and
//! the relay's audit says so. The agent's side is in the bad-input table (`bad_input.rs`, request
//! stream rows); here the console is the one that sees a tampered frame, from an agent built from
//! the protocol pieces, and the real agent hears of it from the console.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tether_console::ConsoleError;
use tether_net::client::RelayConnection;
use tether_net::framed;
use tether_net::sealed::{SealedRecv, SealedSend, SealedStream};
use tether_proto::msg::{
    AgentToConsole, AgentToRelay, ConsoleToAgent, EndReason, RelayToAgent, Request, Response,
    StreamOpen,
};
use tether_proto::pairing::{Pairing, PairingMsg, Side};
use tether_proto::screen::video::VideoPart;
use tether_proto::screen::{CopyRect, DisplayInfo, FrameEncoder, FrameUpdate, Rect, ScreenMsg};
use tether_proto::seal::{Direction, SessionKeys};
use tether_proto::{ScopeSet, SessionCode};
use tether_tests::{RawClaim, RawConsole, RawSlot, TestAgent, TestRelay, WAIT};

fn inv() -> ScopeSet {
    "inventory".parse().unwrap()
}

/// An agent that pairs and grants honestly, then answers a request with a frame that does not open.
struct RawAgent {
    _relay: RelayConnection,
    keys: SessionKeys,
    /// The session's end-to-end connection: the console's requests come on it.
    e2e: tether_net::e2e::E2eLink,
    rx0: SealedRecv,
    _tx0: SealedSend,
    _ctl: (quinn::SendStream, quinn::RecvStream),
}

impl RawAgent {
    /// Opens a slot; returns the agent-to-be and the code to give the console.
    async fn open(
        relay: &TestRelay,
    ) -> (
        RelayConnection,
        (quinn::SendStream, quinn::RecvStream),
        SessionCode,
    ) {
        let s = RawSlot::open(relay).await;
        let code = SessionCode::new(s.slot, &mut rand::thread_rng());
        (s.relay, (s.send, s.recv), code)
    }

    /// Accepts the claim, pairs, and grants what is asked.
    async fn admit(
        relay: RelayConnection,
        mut ctl: (quinn::SendStream, quinn::RecvStream),
        code: &SessionCode,
    ) -> Self {
        let claimed: RelayToAgent = framed::read_msg(&mut ctl.1).await.unwrap();
        let RelayToAgent::Claimed { route, .. } = claimed else {
            panic!("{claimed:?}")
        };
        framed::write_msg(&mut ctl.0, &AgentToRelay::Accept)
            .await
            .unwrap();
        let (mut send, mut recv) = relay.conn.accept_bi().await.unwrap();
        let mut p = Pairing::new(Side::Agent, code.slot, &code.secret);
        loop {
            while let Some(m) = p.poll_transmit() {
                framed::write_msg(&mut send, &m).await.unwrap();
            }
            if p.outcome().is_some() {
                break;
            }
            let m = framed::read_msg::<PairingMsg>(&mut recv).await.unwrap();
            let _ = p.handle(m);
        }
        let keys = p.into_keys().unwrap();
        let (mut tx0, mut rx0) = SealedStream::new(send, recv, &keys, 0, Side::Agent).split();
        // The console makes the end-to-end connection before it asks for consent.
        let (t_send, mut t_recv) = relay.conn.accept_bi().await.unwrap();
        let StreamOpen { stream_id } = framed::read_msg(&mut t_recv).await.unwrap();
        assert_eq!(stream_id, tether_net::e2e::E2E_STREAM);
        let e2e = tether_net::e2e::answer(
            (t_send, t_recv),
            &keys,
            relay.conn.remote_address(),
            route,
            Default::default(),
        )
        .await
        .unwrap();
        let ConsoleToAgent::ConsentRequest { scopes } = rx0.recv().await.unwrap() else {
            panic!("no consent request")
        };
        tx0.send(&AgentToConsole::ConsentDecision { granted: scopes })
            .await
            .unwrap();
        RawAgent {
            _relay: relay,
            keys,
            e2e,
            rx0,
            _tx0: tx0,
            _ctl: ctl,
        }
    }

    /// Accepts the console's next request stream: its halves (the receiving one kept open, so the
    /// console may go on sending), its number and the request.
    async fn next_request(&mut self) -> (quinn::SendStream, quinn::RecvStream, u32, Request) {
        let (send, mut recv) = self.e2e.conn.accept_bi().await.unwrap();
        let StreamOpen { stream_id } = framed::read_msg(&mut recv).await.unwrap();
        let mut opener = self.keys.opener(stream_id, Direction::ConsoleToAgent);
        let req = opener
            .open_msg(framed::read_frame(&mut recv).await.unwrap())
            .unwrap();
        (send, recv, stream_id, req)
    }

    /// Reads the next request and answers it with a frame whose last byte is flipped.
    async fn answer_tampered(&mut self) {
        let (mut send, _recv, stream_id, req) = self.next_request().await;
        assert_eq!(req, Request::Inventory);
        let mut frame = self
            .keys
            .sealer(stream_id, Direction::AgentToConsole)
            .seal_msg(&Response::Failed {
                message: "never seen".into(),
            })
            .unwrap();
        let last = frame.len() - 1;
        frame[last] ^= 0x01;
        framed::write_frame(&mut send, &frame).await.unwrap();
        send.finish().unwrap();
        // Keep the stream open until the console has read the frame.
        let _ = tokio::time::timeout(WAIT, send.stopped()).await;
    }

    /// Answers the next request, a view, with `msgs` (sealed and honest, but hostile in content).
    async fn serve_view(&mut self, msgs: &[ScreenMsg]) {
        let (mut send, _recv, stream_id, req) = self.next_request().await;
        assert_eq!(req, Request::View { display: 0 });
        let mut sealer = self.keys.sealer(stream_id, Direction::AgentToConsole);
        let display = DisplayInfo {
            index: 0,
            name: "hostile".into(),
            x: 0,
            y: 0,
            width: W,
            height: H,
            primary: true,
        };
        let viewing = sealer.seal_msg(&Response::Viewing { display }).unwrap();
        framed::write_frame(&mut send, &viewing).await.unwrap();
        for m in msgs {
            let f = sealer.seal_msg(m).unwrap();
            framed::write_frame(&mut send, &f).await.unwrap();
        }
        // Keep the stream open until the console has read the frames and let go.
        let _ = tokio::time::timeout(WAIT, send.stopped()).await;
    }
}

const W: u32 = 64;
const H: u32 = 48;

fn noise(seed: u32) -> Vec<u8> {
    (0..W * H * 4)
        .map(|i| (i.wrapping_mul(2_654_435_761) ^ seed.wrapping_mul(97)) as u8)
        .collect()
}

/// A whole frame of noise, then `bad` as frame 2.
fn frames(bad: FrameUpdate) -> Vec<ScreenMsg> {
    let mut enc = FrameEncoder::new().unwrap();
    let all = [Rect {
        x: 0,
        y: 0,
        w: W,
        h: H,
    }];
    let mut first = enc.encode_standalone(1, &noise(1), W, H, &all).unwrap();
    first.push(bad);
    first.into_iter().map(ScreenMsg::Frame).collect()
}

fn part(copies: Vec<CopyRect>, video: Option<VideoPart>) -> FrameUpdate {
    FrameUpdate {
        seq: 2,
        width: W,
        height: H,
        rects: Vec::new(),
        data: Vec::new(),
        standalone: false,
        last: true,
        copies,
        video,
    }
}

/// Issue 18's bad input from a hostile agent on a view stream: a copy-rect outside the
/// framebuffer, overlapping copies, a corrupt video packet and a video frame of a stream that was
/// never started. Each ends that view with a typed error naming what was wrong, the framebuffer
/// keeps the last good frame, and the session goes on: the next view on it works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_screen_frames_end_the_view_with_a_typed_error_and_the_session_goes_on() {
    let relay = TestRelay::start().await;
    let (conn, ctl, code) = RawAgent::open(&relay).await;
    let console = tokio::spawn({
        let cfg = relay.console();
        async move { tether_console::open_session(&cfg, code, "view".parse().unwrap()).await }
    });
    let mut agent = RawAgent::admit(conn, ctl, &code).await;
    let mut s = console.await.unwrap().expect("session opens");

    let r = |x, y, w, h| Rect { x, y, w, h };
    let copy = |src_x, src_y, dst| CopyRect { src_x, src_y, dst };
    let key = {
        let region = r(0, 0, 32, 32);
        let mut enc = tether_video::Encoder::new(region).unwrap();
        enc.encode(&noise(3), W, Duration::from_millis(33)).unwrap()
    };
    let cases = [
        (
            "outside",
            part(vec![copy(0, 0, r(40, 0, 32, 8))], None),
            "outside the display",
        ),
        (
            "overlapping",
            part(
                vec![copy(0, 0, r(0, 10, 16, 16)), copy(20, 20, r(8, 12, 16, 16))],
                None,
            ),
            "overlap",
        ),
        (
            "corrupt video",
            part(
                Vec::new(),
                Some(VideoPart {
                    rect: r(0, 0, 32, 32),
                    start: true,
                    data: vec![0x5a; 200],
                }),
            ),
            "video is corrupt",
        ),
        (
            "never started",
            part(
                Vec::new(),
                Some(VideoPart {
                    rect: r(0, 0, 32, 32),
                    start: false,
                    data: key.clone(),
                }),
            ),
            "not started",
        ),
    ];
    for (name, bad, want) in cases {
        let msgs = frames(bad);
        let viewing = async {
            let mut view = s.view(0).await.unwrap();
            let first = view.next_frame().await.unwrap();
            let good = view.framebuffer.clone();
            let err = view.next_frame().await.expect_err(name);
            (first, good, view.framebuffer.clone(), err)
        };
        let ((first, good, after, err), ()) = tokio::join!(viewing, agent.serve_view(&msgs));
        assert_eq!(first, 1, "{name}");
        assert_eq!(good.pixels, noise(1), "{name}: the good frame arrived");
        assert_eq!(after, good, "{name}: the bad part changed the framebuffer");
        assert!(matches!(err, ConsoleError::Protocol(_)), "{name}: {err:?}");
        assert!(err.to_string().contains(want), "{name}: {err}");
    }
    // The session goes on: a good video stream plays on the next view.
    let good = part(
        Vec::new(),
        Some(VideoPart {
            rect: r(0, 0, 32, 32),
            start: true,
            data: key,
        }),
    );
    let viewing = async {
        let mut view = s.view(0).await.unwrap();
        view.next_frame().await.unwrap();
        view.next_frame().await.unwrap();
        view.video_bytes
    };
    let msgs = frames(good);
    let (video_bytes, ()) = tokio::join!(viewing, agent.serve_view(&msgs));
    assert!(video_bytes > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_answer_ends_the_session_at_the_console_and_the_agent_is_told() {
    let relay = TestRelay::start().await;
    let (conn, ctl, code) = RawAgent::open(&relay).await;
    let console = tokio::spawn({
        let cfg = relay.console();
        async move { tether_console::open_session(&cfg, code, inv()).await }
    });
    let mut agent = RawAgent::admit(conn, ctl, &code).await;
    let mut s = console.await.unwrap().expect("session opens");

    let (asked, ()) = tokio::join!(s.inventory(), agent.answer_tampered());
    let err = asked.expect_err("a tampered answer is no answer");
    assert!(matches!(err, ConsoleError::Broken(_)), "{err:?}");
    assert!(err.to_string().starts_with("protocol error:"), "{err}");
    assert!(err.to_string().contains("authentication"), "{err}");

    // The console told the agent why the session ends.
    let told: ConsoleToAgent = tokio::time::timeout(WAIT, agent.rx0.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        told,
        ConsoleToAgent::ProtocolError {
            reason: "a session frame failed authentication".into()
        }
    );
    // And the session is over for the console: nothing more is asked.
    let again = tokio::time::timeout(Duration::from_secs(2), s.inventory())
        .await
        .expect("refused at once");
    match again {
        Err(ConsoleError::Ended(EndReason::ProtocolError(r))) => {
            assert!(r.contains("authentication"), "{r}")
        }
        other => panic!("expected the session to have ended, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_ends_a_session_the_console_saw_broken_and_the_audit_says_so() {
    let relay = TestRelay::start().await;
    let mut agent = TestAgent::spawn(&relay, ScopeSet::all());
    let code = agent.code().await;
    let RawClaim::Claimed(mut raw) =
        RawConsole::claim(&relay.target(), None, code.slot, &relay.token, inv()).await
    else {
        panic!("claim refused")
    };
    let keys = raw.pair(&code).await.unwrap();
    let mut sealer = keys.sealer(0, Direction::ConsoleToAgent);
    let mut opener = keys.opener(0, Direction::AgentToConsole);
    let ask = sealer
        .seal_msg(&ConsoleToAgent::ConsentRequest { scopes: inv() })
        .unwrap();
    framed::write_frame(&mut raw.send, &ask).await.unwrap();
    let decision: AgentToConsole = opener
        .open_msg(framed::read_frame(&mut raw.recv).await.unwrap())
        .unwrap();
    assert_eq!(decision, AgentToConsole::ConsentDecision { granted: inv() });
    let broken = sealer
        .seal_msg(&ConsoleToAgent::ProtocolError {
            reason: "a session frame failed authentication".into(),
        })
        .unwrap();
    framed::write_frame(&mut raw.send, &broken).await.unwrap();

    let end = tokio::time::timeout(WAIT, &mut agent.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let want = "the console saw: a session frame failed authentication";
    assert_eq!(end, EndReason::ProtocolError(want.into()));
    let audited = format!("ended reason=protocol error: {want}");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !relay
        .audit()
        .iter()
        .any(|e| e["event"] == "agent_report" && e["report"].as_str() == Some(audited.as_str()))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {audited:?} in the audit: {:?}",
            relay.audit()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
