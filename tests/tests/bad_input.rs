//! The bad-input table: hostile inputs at every layer, each answered with a clear typed error, the
//! offending connection or session closed with a reason, and a concurrent well-behaved session on the
//! same relay unaffected (checked after every row).
//!
//! Each row is its own test (see [`table!`]), on its own relay with its own live session, so one
//! failing row cannot hide the others; `the_table_has_every_row_and_security_md_counts_them` keeps
//! the count exact and SECURITY.md in step.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use tether_console::Session;
use tether_net::client::{self, RelayConnection};
use tether_net::framed;
use tether_proto::codec;
use tether_proto::msg::{
    AgentToConsole, AgentToRelay, ConsoleToAgent, ConsoleToRelay, EndReason, Hello, HelloReply,
    RelayErrorKind, RelayToAgent, Request, Response, Role, StreamOpen, TechnicianRole, close,
};
use tether_proto::records::{RecordErrorKind, RecordNote, RecordQuery};
use tether_proto::seal::{Direction, Opener, SessionKeys};
use tether_proto::{PROTOCOL_VERSION, Scope, ScopeSet, Slot};
use tether_relay::Limits;
use tether_relay::technicians::Technicians;
use tether_tests::{RawClaim, RawConsole, TestAgent, TestRelay, WAIT, paired};
use tokio::task::JoinHandle;

/// Connects and opens one stream, sending `bytes` on it; returns how the relay closed the connection.
async fn send_raw(relay: &TestRelay, bytes: &[u8]) -> (u64, String) {
    let conn = client::connect(&relay.target()).await.unwrap();
    let (mut send, _recv) = conn.conn.open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    closed_reason(&conn).await
}

async fn closed_reason(conn: &RelayConnection) -> (u64, String) {
    match tokio::time::timeout(WAIT, conn.conn.closed())
        .await
        .expect("relay closes the connection")
    {
        quinn::ConnectionError::ApplicationClosed(c) => (
            c.error_code.into_inner(),
            String::from_utf8_lossy(&c.reason).into_owned(),
        ),
        other => panic!("expected an application close with a reason, got {other:?}"),
    }
}

fn hello(role: Role) -> Vec<u8> {
    codec::encode(&Hello {
        version: PROTOCOL_VERSION,
        role,
    })
    .unwrap()
}

fn garbage_frame() -> Vec<u8> {
    let mut f = 3u32.to_be_bytes().to_vec();
    f.extend_from_slice(&[0xff, 0xff, 0xff]);
    f
}

/// Expects a protocol-error close whose reason contains `want`.
fn protocol_close((code, reason): (u64, String), want: &str) -> String {
    assert_eq!(code, u64::from(close::PROTOCOL_ERROR), "{reason}");
    assert!(reason.contains(want), "reason {reason:?} lacks {want:?}");
    reason
}

async fn refused(
    relay: &TestRelay,
    slot: Slot,
    token: &str,
    scopes: ScopeSet,
    want: RelayErrorKind,
) -> String {
    match RawConsole::claim(&relay.target(), None, slot, token, scopes).await {
        RawClaim::Refused(e) => {
            assert_eq!(e.kind, want, "{}", e.message);
            format!("{:?}: {}", e.kind, e.message)
        }
        other => panic!("expected a {want:?} refusal, got {other:?}"),
    }
}

/// A raw console paired with a fresh agent that grants what it is asked.
async fn raw_session(relay: &TestRelay) -> (TestAgent, RawConsole, SessionKeys) {
    let mut agent = TestAgent::spawn(relay, ScopeSet::all());
    let code = agent.code().await;
    let all = ScopeSet::all();
    let RawClaim::Claimed(mut raw) =
        RawConsole::claim(&relay.target(), None, code.slot, &relay.token, all).await
    else {
        panic!("claim refused");
    };
    let keys = raw.pair(&code).await.unwrap();
    raw.end_to_end(&keys).await;
    (agent, raw, keys)
}

async fn agent_ends_with_protocol_error(agent: &mut TestAgent) -> String {
    match tokio::time::timeout(WAIT, &mut agent.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        EndReason::ProtocolError(e) => e,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

/// Opens request stream `id` on the raw session and sends `req`; returns the answer, if any.
async fn raw_request(
    conn: &quinn::Connection,
    keys: &SessionKeys,
    id: u32,
    req: &Request,
) -> Option<Response> {
    let (mut send, recv) = conn.open_bi().await.unwrap();
    framed::write_msg(&mut send, &StreamOpen { stream_id: id })
        .await
        .unwrap();
    let (mut tx, mut rx) = tether_net::sealed::SealedStream::new(
        send,
        recv,
        keys,
        id,
        tether_proto::pairing::Side::Console,
    )
    .split();
    tx.send(req).await.unwrap();
    tokio::time::timeout(WAIT, rx.recv::<Response>())
        .await
        .unwrap()
        .ok()
}

/// Opens request stream `id` and sends `frames` (already sealed) after its `StreamOpen`, then
/// finishes; returns the stream's receiving half.
async fn raw_frames(conn: &quinn::Connection, id: u32, frames: &[Vec<u8>]) -> quinn::RecvStream {
    let (mut send, recv) = conn.open_bi().await.unwrap();
    framed::write_msg(&mut send, &StreamOpen { stream_id: id })
        .await
        .unwrap();
    for f in frames {
        framed::write_frame(&mut send, f).await.unwrap();
    }
    send.finish().unwrap();
    recv
}

/// A raw session past consent, on the console side.
struct Granted {
    agent: TestAgent,
    raw: RawConsole,
    keys: SessionKeys,
    /// Stream 0 towards the console, past the consent decision.
    opener: Opener,
}

/// A raw session past consent: the agent granted `scopes` (asked for on stream 0).
async fn granted_session(relay: &TestRelay, scopes: ScopeSet) -> Granted {
    let (agent, mut raw, keys) = raw_session(relay).await;
    let (decision, opener) = raw.ask_consent(&keys, scopes).await;
    assert_eq!(
        decision,
        AgentToConsole::ConsentDecision { granted: scopes }
    );
    Granted {
        agent,
        raw,
        keys,
        opener,
    }
}

/// The sealed request as the console would send it as the `n`th frame of stream `stream`.
fn sealed_request(keys: &SessionKeys, stream: u32, n: usize, req: &Request) -> Vec<u8> {
    let mut sealer = keys.sealer(stream, Direction::ConsoleToAgent);
    for _ in 0..n {
        sealer.seal_msg(req).unwrap();
    }
    sealer.seal_msg(req).unwrap()
}

/// Checks that the session ended as a protocol error everywhere it is told: the agent's result,
/// the console's stream 0 (`Ended`, the reason a console shows) and the relay's audit log.
/// Returns the reason.
async fn session_ends_as_protocol_error(relay: &TestRelay, g: &mut Granted, want: &str) -> String {
    let r = agent_ends_with_protocol_error(&mut g.agent).await;
    assert!(r.contains(want), "reason {r:?} lacks {want:?}");
    let mut told = None;
    while let Ok(Ok(f)) = tokio::time::timeout(WAIT, framed::read_frame(&mut g.raw.recv)).await {
        if let Ok(AgentToConsole::Ended { reason }) = g.opener.open_msg::<AgentToConsole>(f) {
            told = Some(reason);
            break;
        }
    }
    let told = told.expect("the agent tells the console why the session ended");
    assert_eq!(told, EndReason::ProtocolError(r.clone()));
    let shown = tether_console::ConsoleError::Ended(told).to_string();
    assert!(shown.contains("protocol error"), "{shown}");
    let want_audit = format!("ended reason=protocol error: {r}");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let audited = relay.audit().iter().any(|e| {
            e["event"] == "agent_report" && e["report"].as_str() == Some(want_audit.as_str())
        });
        if audited {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {want_audit:?} in the audit: {:?}",
            relay.audit()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    r
}

/// One row's world: a relay with a short Hello timeout and a well-behaved live session on it.
struct Harness {
    relay: TestRelay,
    live: Session,
    _live_agent: TestAgent,
}

impl Harness {
    async fn start() -> Self {
        let limits = Limits {
            hello_timeout: Duration::from_secs(2),
            ..Limits::default()
        };
        let relay = TestRelay::start_with(limits, None).await;
        let (live_agent, live) =
            paired(&relay, ScopeSet::all(), "inventory".parse().unwrap()).await;
        Harness {
            relay,
            live,
            _live_agent: live_agent,
        }
    }

    /// After the hostile input, the well-behaved session still works.
    async fn check(mut self, name: &str, outcome: String) {
        eprintln!("{name:<52} {outcome}");
        let inv = self.live.inventory().await;
        assert!(
            !inv.unwrap().hardware.system.hostname.is_empty(),
            "live session broken after {name}"
        );
    }
}

/// One `#[tokio::test]` per row: `test_name => "row as SECURITY.md names it"`, run by the
/// function of the same name in [`rows`]. `ROWS` lists them all.
macro_rules! table {
    ($($test:ident => $row:literal,)*) => {
        /// Every row, in table order.
        const ROWS: &[&str] = &[$($row),*];
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let mut h = Harness::start().await;
                let outcome = rows::$test(&mut h).await;
                h.check($row, outcome).await;
            }
        )*
    };
}

table! {
    oversized_length_prefix => "oversized length prefix",
    undecodable_hello => "undecodable Hello",
    zero_length_frame => "zero-length frame",
    truncated_frame => "truncated frame",
    hello_with_an_unknown_role => "Hello with an unknown role",
    frame_before_hello => "frame before Hello",
    unknown_protocol_version => "unknown protocol version",
    slow_loris => "slow loris: a frame never finished",
    malformed_claim => "malformed claim",
    oversized_agent_control_frame => "oversized agent control frame",
    undecodable_agent_control_frame => "undecodable agent control frame",
    wrong_alpn => "wrong ALPN",
    unknown_token => "unknown token",
    one_mib_token => "1 MiB token",
    claim_of_a_slot_nobody_holds => "claim of a slot nobody holds",
    second_claim_of_a_used_slot => "second claim of a used slot",
    viewer_claims_control => "viewer claims control",
    claim_with_a_revoked_token => "claim with a revoked token",
    record_unknown_id => "session record: unknown id",
    record_huge_note => "session record: 100 000-character note",
    record_search_of_fts_syntax_only => "session record: search of FTS syntax only",
    record_viewer_closes_it => "session record: viewer closes it",
    agent_hoards_slots => "agent hoards slots",
    stream_flood => "stream flood beyond the limit",
    replayed_sealed_frame => "replayed sealed frame",
    reordered_sealed_frames => "reordered sealed frames",
    flipped_ciphertext_bit => "flipped ciphertext bit",
    garbage_instead_of_pairing => "garbage instead of pairing",
    request_before_consent => "request sent before consent, for a scope the user then grants",
    reused_request_stream_number => "reused request stream number",
    request_on_stream_zero => "request stream numbered 0",
    tampered_request_frame => "tampered request frame (stream 1)",
    replayed_request_frame => "replayed request frame (stream 1)",
    moved_request_frame => "request frame moved from stream 2 to stream 1",
    undecodable_stream_open => "undecodable StreamOpen",
    request_stream_without_request => "request stream that ends after its StreamOpen",
}

#[test]
fn the_table_has_every_row_and_security_md_counts_them() {
    assert_eq!(ROWS.len(), 36);
    let security =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../SECURITY.md")).unwrap();
    let says = format!("sends {} hostile inputs", ROWS.len());
    assert!(
        security.contains(&says),
        "SECURITY.md does not say {says:?}"
    );
}

mod rows {
    use super::*;

    // --- framing and Hello ---

    pub async fn oversized_length_prefix(h: &mut Harness) -> String {
        protocol_close(
            send_raw(&h.relay, &u32::MAX.to_be_bytes()).await,
            "exceeds the maximum",
        )
    }

    pub async fn undecodable_hello(h: &mut Harness) -> String {
        protocol_close(send_raw(&h.relay, &garbage_frame()).await, "malformed")
    }

    pub async fn zero_length_frame(h: &mut Harness) -> String {
        protocol_close(send_raw(&h.relay, &0u32.to_be_bytes()).await, "empty frame")
    }

    pub async fn truncated_frame(h: &mut Harness) -> String {
        let conn = client::connect(&h.relay.target()).await.unwrap();
        let (mut send, _recv) = conn.conn.open_bi().await.unwrap();
        send.write_all(&100u32.to_be_bytes()).await.unwrap();
        send.write_all(&[1; 10]).await.unwrap();
        send.finish().unwrap();
        protocol_close(closed_reason(&conn).await, "stream ended mid-frame")
    }

    pub async fn hello_with_an_unknown_role(h: &mut Harness) -> String {
        let mut bad_role = hello(Role::Agent);
        *bad_role.last_mut().unwrap() = 9;
        protocol_close(send_raw(&h.relay, &bad_role).await, "malformed")
    }

    pub async fn frame_before_hello(h: &mut Harness) -> String {
        let claim = ConsoleToRelay::Claim {
            slot: Slot(417),
            token: "tt_x".into(),
            scopes: ScopeSet::all(),
        };
        protocol_close(
            send_raw(&h.relay, &codec::encode(&claim).unwrap()).await,
            "malformed",
        )
    }

    pub async fn unknown_protocol_version(h: &mut Harness) -> String {
        let conn = client::connect(&h.relay.target()).await.unwrap();
        let (mut send, mut recv) = conn.conn.open_bi().await.unwrap();
        framed::write_msg(
            &mut send,
            &Hello {
                version: 99,
                role: Role::Agent,
            },
        )
        .await
        .unwrap();
        let HelloReply::Refused(e) = framed::read_msg::<HelloReply>(&mut recv).await.unwrap()
        else {
            panic!()
        };
        assert_eq!(e.kind, RelayErrorKind::UnsupportedVersion);
        conn.close(close::NORMAL, "bye").await;
        format!("{:?}: {}", e.kind, e.message)
    }

    pub async fn slow_loris(h: &mut Harness) -> String {
        let conn = client::connect(&h.relay.target()).await.unwrap();
        let (mut send, _recv) = conn.conn.open_bi().await.unwrap();
        send.write_all(&50u32.to_be_bytes()).await.unwrap();
        let (code, reason) = closed_reason(&conn).await;
        assert_eq!(
            (code, reason.as_str()),
            (u64::from(close::PROTOCOL_ERROR), "no hello in time")
        );
        reason
    }

    pub async fn malformed_claim(h: &mut Harness) -> String {
        let mut bytes = hello(Role::Console);
        bytes.extend_from_slice(&garbage_frame());
        protocol_close(send_raw(&h.relay, &bytes).await, "malformed")
    }

    pub async fn oversized_agent_control_frame(h: &mut Harness) -> String {
        let mut bytes = hello(Role::Agent);
        bytes.extend_from_slice(&(64 * 1024 * 1024u32).to_be_bytes());
        protocol_close(send_raw(&h.relay, &bytes).await, "exceeds")
    }

    pub async fn undecodable_agent_control_frame(h: &mut Harness) -> String {
        let mut bytes = hello(Role::Agent);
        bytes.extend_from_slice(&garbage_frame());
        protocol_close(send_raw(&h.relay, &bytes).await, "malformed")
    }

    pub async fn wrong_alpn(h: &mut Harness) -> String {
        let (mut crypto, _) = tether_net::tls::client_crypto(&tether_net::Trust::Fingerprint(
            h.relay.handle.fingerprint().into(),
        ))
        .unwrap();
        crypto.alpn_protocols = vec![b"tether/0".to_vec()];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(crypto).unwrap();
        let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
        let err = ep
            .connect(h.relay.handle.local_addr(), "tether-relay")
            .unwrap()
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("no_application_protocol") || err.to_string().contains("120"),
            "{err}"
        );
        err.to_string()
    }

    // --- claims ---

    fn inv() -> ScopeSet {
        "inventory".parse().unwrap()
    }

    pub async fn unknown_token(h: &mut Harness) -> String {
        refused(
            &h.relay,
            Slot(999),
            "tt_not_a_token",
            inv(),
            RelayErrorKind::BadToken,
        )
        .await
    }

    pub async fn one_mib_token(h: &mut Harness) -> String {
        let huge = format!("tt_{}", "a".repeat(1 << 20));
        refused(&h.relay, Slot(999), &huge, inv(), RelayErrorKind::BadToken).await
    }

    pub async fn claim_of_a_slot_nobody_holds(h: &mut Harness) -> String {
        let token = h.relay.token.clone();
        refused(
            &h.relay,
            Slot(999),
            &token,
            inv(),
            RelayErrorKind::UnknownSlot,
        )
        .await
    }

    pub async fn second_claim_of_a_used_slot(h: &mut Harness) -> String {
        let (agent, s) = paired(&h.relay, ScopeSet::all(), inv()).await;
        let used = agent.seen.lock().unwrap().iter().find_map(|e| match e {
            tether_agent::ui::AgentEvent::Code { code, .. } => Some(code.slot),
            _ => None,
        });
        s.end().await;
        let token = h.relay.token.clone();
        refused(
            &h.relay,
            used.unwrap(),
            &token,
            inv(),
            RelayErrorKind::UnknownSlot,
        )
        .await
    }

    pub async fn viewer_claims_control(h: &mut Harness) -> String {
        let viewer = Technicians::new(h.relay.dir.path())
            .add_with("Vic", "Acme IT", TechnicianRole::Viewer, None)
            .unwrap();
        let mut a = TestAgent::spawn(&h.relay, ScopeSet::all());
        let code = a.code().await;
        let control = "control".parse().unwrap();
        refused(
            &h.relay,
            code.slot,
            &viewer,
            control,
            RelayErrorKind::Forbidden,
        )
        .await
    }

    pub async fn claim_with_a_revoked_token(h: &mut Harness) -> String {
        let revoked = Technicians::new(h.relay.dir.path())
            .add_with("Rex", "Acme IT", TechnicianRole::Technician, None)
            .unwrap();
        tether_relay::admin::revoke_technician(h.relay.dir.path(), "Rex", "Acme IT").unwrap();
        let mut a = TestAgent::spawn(&h.relay, ScopeSet::all());
        let code = a.code().await;
        let r = refused(
            &h.relay,
            code.slot,
            &revoked,
            inv(),
            RelayErrorKind::BadToken,
        )
        .await;
        assert!(r.contains("revoked"));
        r
    }

    // --- session records ---

    fn record_refusal(
        r: Result<tether_proto::records::RecordReply, tether_console::ConsoleError>,
        want: RecordErrorKind,
    ) -> String {
        match r {
            Err(tether_console::ConsoleError::Record(e)) => {
                assert_eq!(e.kind, want, "{}", e.message);
                format!("{:?}: {}", e.kind, e.message)
            }
            other => panic!("expected a {want:?} refusal, got {other:?}"),
        }
    }

    pub async fn record_unknown_id(h: &mut Harness) -> String {
        let q = RecordQuery::Show { id: 987_654 };
        let r = tether_console::records::query(&h.relay.console(), q).await;
        record_refusal(r, RecordErrorKind::UnknownRecord)
    }

    pub async fn record_huge_note(h: &mut Harness) -> String {
        let huge_note = RecordQuery::Note {
            id: h.live.record.expect("the live session has a record"),
            note: RecordNote {
                fix: Some("y".repeat(100_000)),
                ..RecordNote::default()
            },
        };
        let r = tether_console::records::query(&h.relay.console(), huge_note).await;
        record_refusal(r, RecordErrorKind::Invalid)
    }

    pub async fn record_search_of_fts_syntax_only(h: &mut Harness) -> String {
        let q = RecordQuery::Search {
            text: "\"-*:()".into(),
            device: None,
            technician: None,
            limit: 10,
        };
        let r = tether_console::records::query(&h.relay.console(), q).await;
        record_refusal(r, RecordErrorKind::Invalid)
    }

    pub async fn record_viewer_closes_it(h: &mut Harness) -> String {
        let viewer_console = tether_console::ConsoleConfig {
            token: Technicians::new(h.relay.dir.path())
                .add_with("Val", "Acme IT", TechnicianRole::Viewer, None)
                .unwrap(),
            ..h.relay.console()
        };
        let close = RecordQuery::Close {
            id: h.live.record.expect("the live session has a record"),
            resolution: "closed by a viewer".into(),
        };
        let r = tether_console::records::query(&viewer_console, close).await;
        record_refusal(r, RecordErrorKind::Forbidden)
    }

    // --- agents ---

    pub async fn agent_hoards_slots(h: &mut Harness) -> String {
        let conn = client::connect(&h.relay.target()).await.unwrap();
        let (mut send, mut recv) = client::open_control(&conn.conn, Role::Agent).await.unwrap();
        let mut last = None;
        for _ in 0..=tether_relay::config::MAX_OPEN_SLOTS_PER_AGENT {
            framed::write_msg(&mut send, &AgentToRelay::OpenSlot { reason: None })
                .await
                .unwrap();
            last = Some(framed::read_msg::<RelayToAgent>(&mut recv).await.unwrap());
        }
        let Some(RelayToAgent::Error(e)) = last else {
            panic!("expected a refusal, got {last:?}")
        };
        assert_eq!(e.kind, RelayErrorKind::TooManySlots);
        // A stray Accept with no claim pending is ignored, not a crash.
        framed::write_msg(&mut send, &AgentToRelay::Accept)
            .await
            .unwrap();
        conn.close(close::NORMAL, "bye").await;
        format!("{:?}: {}", e.kind, e.message)
    }

    pub async fn stream_flood(h: &mut Harness) -> String {
        let conn = client::connect(&h.relay.target()).await.unwrap();
        let mut opened = Vec::new();
        let mut blocked = false;
        for _ in 0..40 {
            match tokio::time::timeout(Duration::from_millis(300), conn.conn.open_bi()).await {
                Ok(Ok(s)) => opened.push(s),
                _ => {
                    blocked = true;
                    break;
                }
            }
        }
        assert!(blocked, "the stream limit held at {} streams", opened.len());
        // Before its Hello a connection may hold only its control stream.
        assert_eq!(opened.len(), 1);
        drop(opened);
        conn.close(close::NORMAL, "bye").await;
        "open_bi blocks after the first stream until Hello".to_string()
    }

    // --- sealed session traffic, forged by a console (the relay is blind to it; the agent is not) ---

    pub async fn replayed_sealed_frame(h: &mut Harness) -> String {
        let (mut agent, mut raw, keys) = raw_session(&h.relay).await;
        let mut sealer = keys.sealer(0, Direction::ConsoleToAgent);
        let mut opener = keys.opener(0, Direction::AgentToConsole);
        let consent = sealer
            .seal_msg(&ConsoleToAgent::ConsentRequest { scopes: inv() })
            .unwrap();
        framed::write_frame(&mut raw.send, &consent).await.unwrap();
        let decision: AgentToConsole = opener
            .open_msg(framed::read_frame(&mut raw.recv).await.unwrap())
            .unwrap();
        assert_eq!(decision, AgentToConsole::ConsentDecision { granted: inv() });
        framed::write_frame(&mut raw.send, &consent).await.unwrap();
        let r = agent_ends_with_protocol_error(&mut agent).await;
        assert!(r.contains("authentication"), "{r}");
        r
    }

    pub async fn reordered_sealed_frames(h: &mut Harness) -> String {
        let (mut agent, mut raw, keys) = raw_session(&h.relay).await;
        let mut sealer = keys.sealer(0, Direction::ConsoleToAgent);
        let first = sealer
            .seal_msg(&ConsoleToAgent::ConsentRequest { scopes: inv() })
            .unwrap();
        let second = sealer.seal_msg(&ConsoleToAgent::End).unwrap();
        framed::write_frame(&mut raw.send, &second).await.unwrap();
        framed::write_frame(&mut raw.send, &first).await.unwrap();
        let r = agent_ends_with_protocol_error(&mut agent).await;
        assert!(!agent.saw(|e| matches!(e, tether_agent::ui::AgentEvent::ConsentRequested { .. })));
        r
    }

    pub async fn flipped_ciphertext_bit(h: &mut Harness) -> String {
        let (mut agent, mut raw, keys) = raw_session(&h.relay).await;
        let mut flipped = keys
            .sealer(0, Direction::ConsoleToAgent)
            .seal_msg(&ConsoleToAgent::ConsentRequest { scopes: inv() })
            .unwrap();
        flipped[3] ^= 0x01;
        framed::write_frame(&mut raw.send, &flipped).await.unwrap();
        agent_ends_with_protocol_error(&mut agent).await
    }

    pub async fn garbage_instead_of_pairing(h: &mut Harness) -> String {
        let mut agent = TestAgent::spawn(&h.relay, ScopeSet::all());
        let code = agent.code().await;
        let token = h.relay.token.clone();
        let RawClaim::Claimed(mut raw) =
            RawConsole::claim(&h.relay.target(), None, code.slot, &token, inv()).await
        else {
            panic!("claim refused")
        };
        raw.send.write_all(&garbage_frame()).await.unwrap();
        agent
            .expect("pairing failure", |e| {
                matches!(e, tether_agent::ui::AgentEvent::PairingFailed)
            })
            .await;
        let fresh = agent.code().await;
        assert_ne!(fresh.slot, code.slot);
        "agent: pairing failed, code burned, new code".into()
    }

    // --- request streams (numbers 1 and up) ---

    /// A request opened before the consent request, for a scope the user then grants, is still
    /// refused: nothing is served before consent, not even what consent later allows.
    pub async fn request_before_consent(h: &mut Harness) -> String {
        let (_agent, mut raw, keys) = raw_session(&h.relay).await;
        let early: JoinHandle<Option<Response>> = tokio::spawn({
            let conn = raw.conn().clone();
            let keys = keys.clone();
            async move { raw_request(&conn, &keys, 7, &Request::Inventory).await }
        });
        // Give the early request a head start, so it reaches the agent before the consent request.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let consent = keys
            .sealer(0, Direction::ConsoleToAgent)
            .seal_msg(&ConsoleToAgent::ConsentRequest { scopes: inv() })
            .unwrap();
        framed::write_frame(&mut raw.send, &consent).await.unwrap();
        let decision: AgentToConsole = keys
            .opener(0, Direction::AgentToConsole)
            .open_msg(framed::read_frame(&mut raw.recv).await.unwrap())
            .unwrap();
        assert_eq!(decision, AgentToConsole::ConsentDecision { granted: inv() });
        let early = early.await.unwrap();
        // Named, not printed: an inventory served by mistake would fill the screen.
        let got = match &early {
            Some(Response::Inventory(_)) => "the inventory".to_string(),
            other => format!("{other:?}"),
        };
        assert!(
            matches!(
                early,
                Some(Response::Refused {
                    scope: Scope::Inventory
                })
            ),
            "a request sent before consent must be refused even though inventory is then granted; \
             the agent answered with {got}"
        );
        // After the decision the same request is served.
        assert!(matches!(
            raw_request(raw.conn(), &keys, 8, &Request::Inventory).await,
            Some(Response::Inventory(_))
        ));
        "Refused(inventory) before the decision; served after it".into()
    }

    pub async fn reused_request_stream_number(h: &mut Harness) -> String {
        let mut g = granted_session(&h.relay, inv()).await;
        assert!(matches!(
            raw_request(g.raw.conn(), &g.keys, 1, &Request::Inventory).await,
            Some(Response::Inventory(_))
        ));
        assert_eq!(
            raw_request(g.raw.conn(), &g.keys, 1, &Request::Inventory).await,
            None,
            "a reused stream number is not served"
        );
        session_ends_as_protocol_error(&h.relay, &mut g, "opened twice").await
    }

    pub async fn request_on_stream_zero(h: &mut Harness) -> String {
        let mut g = granted_session(&h.relay, inv()).await;
        assert_eq!(
            raw_request(g.raw.conn(), &g.keys, 0, &Request::Inventory).await,
            None,
            "stream 0 is never a request"
        );
        session_ends_as_protocol_error(&h.relay, &mut g, "number 0").await
    }

    pub async fn tampered_request_frame(h: &mut Harness) -> String {
        let mut g = granted_session(&h.relay, inv()).await;
        let mut frame = sealed_request(&g.keys, 1, 0, &Request::Inventory);
        let last = frame.len() - 1;
        frame[last] ^= 0x01;
        let _recv = raw_frames(g.raw.conn(), 1, &[frame]).await;
        session_ends_as_protocol_error(&h.relay, &mut g, "authentication").await
    }

    pub async fn replayed_request_frame(h: &mut Harness) -> String {
        let mut g = granted_session(&h.relay, inv()).await;
        let frame = sealed_request(&g.keys, 1, 0, &Request::Inventory);
        let mut recv = raw_frames(g.raw.conn(), 1, &[frame.clone(), frame]).await;
        // The first copy is answered; the replayed second one ends the session.
        let answer = framed::read_frame(&mut recv).await.unwrap();
        let answer: Response = g
            .keys
            .opener(1, Direction::AgentToConsole)
            .open_msg(answer)
            .unwrap();
        assert!(matches!(answer, Response::Inventory(_)));
        session_ends_as_protocol_error(&h.relay, &mut g, "authentication").await
    }

    pub async fn moved_request_frame(h: &mut Harness) -> String {
        let mut g = granted_session(&h.relay, inv()).await;
        let from_two = sealed_request(&g.keys, 2, 0, &Request::Inventory);
        let _recv = raw_frames(g.raw.conn(), 1, &[from_two]).await;
        session_ends_as_protocol_error(&h.relay, &mut g, "authentication").await
    }

    pub async fn undecodable_stream_open(h: &mut Harness) -> String {
        let mut g = granted_session(&h.relay, inv()).await;
        let (mut send, _recv) = g.raw.conn().open_bi().await.unwrap();
        send.write_all(&garbage_frame()).await.unwrap();
        send.finish().unwrap();
        session_ends_as_protocol_error(&h.relay, &mut g, "StreamOpen").await
    }

    pub async fn request_stream_without_request(h: &mut Harness) -> String {
        let mut g = granted_session(&h.relay, inv()).await;
        let _recv = raw_frames(g.raw.conn(), 1, &[]).await;
        session_ends_as_protocol_error(&h.relay, &mut g, "carried no request").await
    }
}
