//! The bad-input table: hostile inputs at every layer, each answered with a clear typed error, the
//! offending connection or session closed with a reason, and a concurrent well-behaved session on the
//! same relay unaffected (checked after every row).

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
use tether_proto::seal::{Direction, SessionKeys};
use tether_proto::{PROTOCOL_VERSION, Scope, ScopeSet, Slot};
use tether_relay::Limits;
use tether_relay::technicians::Technicians;
use tether_tests::{RawClaim, RawConsole, TestAgent, TestRelay, WAIT, paired};

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

struct Table {
    rows: Vec<(&'static str, String)>,
}

impl Table {
    async fn row(&mut self, name: &'static str, outcome: String, live: &mut Session) {
        // After every hostile input, the well-behaved session still works.
        assert!(
            !live
                .inventory()
                .await
                .unwrap()
                .hardware
                .system
                .hostname
                .is_empty(),
            "live session broken after {name}"
        );
        self.rows.push((name, outcome));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_get_typed_errors_and_leave_others_alone() {
    let limits = Limits {
        hello_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let relay = TestRelay::start_with(limits, None).await;
    let (_live_agent, mut live) =
        paired(&relay, ScopeSet::all(), "inventory".parse().unwrap()).await;
    let mut t = Table { rows: Vec::new() };

    // --- framing and Hello ---
    let r = protocol_close(
        send_raw(&relay, &u32::MAX.to_be_bytes()).await,
        "exceeds the maximum",
    );
    t.row("oversized length prefix", r, &mut live).await;
    let r = protocol_close(send_raw(&relay, &garbage_frame()).await, "malformed");
    t.row("undecodable Hello", r, &mut live).await;
    let r = protocol_close(send_raw(&relay, &0u32.to_be_bytes()).await, "empty frame");
    t.row("zero-length frame", r, &mut live).await;

    let conn = client::connect(&relay.target()).await.unwrap();
    let (mut send, _recv) = conn.conn.open_bi().await.unwrap();
    send.write_all(&100u32.to_be_bytes()).await.unwrap();
    send.write_all(&[1; 10]).await.unwrap();
    send.finish().unwrap();
    let r = protocol_close(closed_reason(&conn).await, "stream ended mid-frame");
    t.row("truncated frame", r, &mut live).await;

    let mut bad_role = hello(Role::Agent);
    *bad_role.last_mut().unwrap() = 9;
    let r = protocol_close(send_raw(&relay, &bad_role).await, "malformed");
    t.row("Hello with an unknown role", r, &mut live).await;

    let claim = ConsoleToRelay::Claim {
        slot: Slot(417),
        token: "tt_x".into(),
        scopes: ScopeSet::all(),
    };
    let r = protocol_close(
        send_raw(&relay, &codec::encode(&claim).unwrap()).await,
        "malformed",
    );
    t.row("frame before Hello", r, &mut live).await;

    let conn = client::connect(&relay.target()).await.unwrap();
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
    let HelloReply::Refused(e) = framed::read_msg::<HelloReply>(&mut recv).await.unwrap() else {
        panic!()
    };
    assert_eq!(e.kind, RelayErrorKind::UnsupportedVersion);
    conn.close(close::NORMAL, "bye").await;
    t.row(
        "unknown protocol version",
        format!("{:?}: {}", e.kind, e.message),
        &mut live,
    )
    .await;

    let conn = client::connect(&relay.target()).await.unwrap();
    let (mut send, _recv) = conn.conn.open_bi().await.unwrap();
    send.write_all(&50u32.to_be_bytes()).await.unwrap();
    let (code, reason) = closed_reason(&conn).await;
    assert_eq!(
        (code, reason.as_str()),
        (u64::from(close::PROTOCOL_ERROR), "no hello in time")
    );
    t.row("slow loris: a frame never finished", reason, &mut live)
        .await;

    let mut bytes = hello(Role::Console);
    bytes.extend_from_slice(&garbage_frame());
    let r = protocol_close(send_raw(&relay, &bytes).await, "malformed");
    t.row("malformed claim", r, &mut live).await;

    let mut bytes = hello(Role::Agent);
    bytes.extend_from_slice(&(64 * 1024 * 1024u32).to_be_bytes());
    let r = protocol_close(send_raw(&relay, &bytes).await, "exceeds");
    t.row("oversized agent control frame", r, &mut live).await;

    let mut bytes = hello(Role::Agent);
    bytes.extend_from_slice(&garbage_frame());
    let r = protocol_close(send_raw(&relay, &bytes).await, "malformed");
    t.row("undecodable agent control frame", r, &mut live).await;

    let (mut crypto, _) = tether_net::tls::client_crypto(&tether_net::Trust::Fingerprint(
        relay.handle.fingerprint().into(),
    ))
    .unwrap();
    crypto.alpn_protocols = vec![b"tether/0".to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(crypto).unwrap();
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let err = ep
        .connect(relay.handle.local_addr(), "tether-relay")
        .unwrap()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no_application_protocol") || err.to_string().contains("120"),
        "{err}"
    );
    t.row("wrong ALPN", err.to_string(), &mut live).await;

    // --- claims ---
    let inv: ScopeSet = "inventory".parse().unwrap();
    let r = refused(
        &relay,
        Slot(999),
        "tt_not_a_token",
        inv,
        RelayErrorKind::BadToken,
    )
    .await;
    t.row("unknown token", r, &mut live).await;
    let huge = format!("tt_{}", "a".repeat(1 << 20));
    let r = refused(&relay, Slot(999), &huge, inv, RelayErrorKind::BadToken).await;
    t.row("1 MiB token", r, &mut live).await;
    let r = refused(
        &relay,
        Slot(999),
        &relay.token,
        inv,
        RelayErrorKind::UnknownSlot,
    )
    .await;
    t.row("claim of a slot nobody holds", r, &mut live).await;

    let (agent, s) = paired(&relay, ScopeSet::all(), inv).await;
    let used = agent.seen.lock().unwrap().iter().find_map(|e| match e {
        tether_agent::ui::AgentEvent::Code { code, .. } => Some(code.slot),
        _ => None,
    });
    s.end().await;
    let r = refused(
        &relay,
        used.unwrap(),
        &relay.token,
        inv,
        RelayErrorKind::UnknownSlot,
    )
    .await;
    t.row("second claim of a used slot", r, &mut live).await;

    let viewer = Technicians::new(relay.dir.path())
        .add_with("Vic", "Acme IT", TechnicianRole::Viewer, None)
        .unwrap();
    let mut a = TestAgent::spawn(&relay, ScopeSet::all());
    let code = a.code().await;
    let r = refused(
        &relay,
        code.slot,
        &viewer,
        "control".parse().unwrap(),
        RelayErrorKind::Forbidden,
    )
    .await;
    t.row("viewer claims control", r, &mut live).await;

    let revoked = Technicians::new(relay.dir.path())
        .add_with("Rex", "Acme IT", TechnicianRole::Technician, None)
        .unwrap();
    tether_relay::admin::revoke_technician(relay.dir.path(), "Rex", "Acme IT").unwrap();
    let r = refused(&relay, code.slot, &revoked, inv, RelayErrorKind::BadToken).await;
    assert!(r.contains("revoked"));
    t.row("claim with a revoked token", r, &mut live).await;

    // --- session records ---
    let record = live.record.expect("the live session has a record");
    let record_refusal =
        |r: Result<tether_proto::records::RecordReply, tether_console::ConsoleError>,
         want: RecordErrorKind| match r {
            Err(tether_console::ConsoleError::Record(e)) => {
                assert_eq!(e.kind, want, "{}", e.message);
                format!("{:?}: {}", e.kind, e.message)
            }
            other => panic!("expected a {want:?} refusal, got {other:?}"),
        };
    let r =
        tether_console::records::query(&relay.console(), RecordQuery::Show { id: 987_654 }).await;
    t.row(
        "session record: unknown id",
        record_refusal(r, RecordErrorKind::UnknownRecord),
        &mut live,
    )
    .await;
    let huge_note = RecordQuery::Note {
        id: record,
        note: RecordNote {
            fix: Some("y".repeat(100_000)),
            ..RecordNote::default()
        },
    };
    let r = tether_console::records::query(&relay.console(), huge_note).await;
    t.row(
        "session record: 100 000-character note",
        record_refusal(r, RecordErrorKind::Invalid),
        &mut live,
    )
    .await;
    let r = tether_console::records::query(
        &relay.console(),
        RecordQuery::Search {
            text: "\"-*:()".into(),
            device: None,
            technician: None,
            limit: 10,
        },
    )
    .await;
    t.row(
        "session record: search of FTS syntax only",
        record_refusal(r, RecordErrorKind::Invalid),
        &mut live,
    )
    .await;
    let viewer_console = tether_console::ConsoleConfig {
        token: Technicians::new(relay.dir.path())
            .add_with("Val", "Acme IT", TechnicianRole::Viewer, None)
            .unwrap(),
        ..relay.console()
    };
    let close = RecordQuery::Close {
        id: record,
        resolution: "closed by a viewer".into(),
    };
    let r = tether_console::records::query(&viewer_console, close).await;
    t.row(
        "session record: viewer closes it",
        record_refusal(r, RecordErrorKind::Forbidden),
        &mut live,
    )
    .await;

    // --- agents ---
    let conn = client::connect(&relay.target()).await.unwrap();
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
    t.row(
        "agent hoards slots",
        format!("{:?}: {}", e.kind, e.message),
        &mut live,
    )
    .await;

    let conn = client::connect(&relay.target()).await.unwrap();
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
    let outcome = "open_bi blocks after the first stream until Hello".to_string();
    t.row("stream flood beyond the limit", outcome, &mut live)
        .await;

    // --- sealed session traffic, forged by a console (the relay is blind to it; the agent is not) ---
    let (mut agent, mut raw, keys) = raw_session(&relay).await;
    let mut sealer = keys.sealer(0, Direction::ConsoleToAgent);
    let mut opener = keys.opener(0, Direction::AgentToConsole);
    let consent = sealer
        .seal_msg(&ConsoleToAgent::ConsentRequest { scopes: inv })
        .unwrap();
    framed::write_frame(&mut raw.send, &consent).await.unwrap();
    let decision: AgentToConsole = opener
        .open_msg(&framed::read_frame(&mut raw.recv).await.unwrap())
        .unwrap();
    assert_eq!(decision, AgentToConsole::ConsentDecision { granted: inv });
    framed::write_frame(&mut raw.send, &consent).await.unwrap();
    let r = agent_ends_with_protocol_error(&mut agent).await;
    assert!(r.contains("authentication"), "{r}");
    t.row("replayed sealed frame", r, &mut live).await;

    let (mut agent, mut raw, keys) = raw_session(&relay).await;
    let mut sealer = keys.sealer(0, Direction::ConsoleToAgent);
    let first = sealer
        .seal_msg(&ConsoleToAgent::ConsentRequest { scopes: inv })
        .unwrap();
    let second = sealer.seal_msg(&ConsoleToAgent::End).unwrap();
    framed::write_frame(&mut raw.send, &second).await.unwrap();
    framed::write_frame(&mut raw.send, &first).await.unwrap();
    let r = agent_ends_with_protocol_error(&mut agent).await;
    assert!(!agent.saw(|e| matches!(e, tether_agent::ui::AgentEvent::ConsentRequested { .. })));
    t.row("reordered sealed frames", r, &mut live).await;

    let (mut agent, mut raw, keys) = raw_session(&relay).await;
    let mut flipped = keys
        .sealer(0, Direction::ConsoleToAgent)
        .seal_msg(&ConsoleToAgent::ConsentRequest { scopes: inv })
        .unwrap();
    flipped[3] ^= 0x01;
    framed::write_frame(&mut raw.send, &flipped).await.unwrap();
    let r = agent_ends_with_protocol_error(&mut agent).await;
    t.row("flipped ciphertext bit", r, &mut live).await;

    let mut agent = TestAgent::spawn(&relay, ScopeSet::all());
    let code = agent.code().await;
    let RawClaim::Claimed(mut raw) =
        RawConsole::claim(&relay.target(), None, code.slot, &relay.token, inv).await
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
    t.row(
        "garbage instead of pairing",
        "agent: pairing failed, code burned, new code".into(),
        &mut live,
    )
    .await;

    // Request streams: one opened before consent for an ungranted scope, then a reused stream number.
    let (_agent, mut raw, keys) = raw_session(&relay).await;
    let early = tokio::spawn({
        let conn = raw.relay.conn.clone();
        let keys = keys.clone();
        async move {
            let probe = Request::Diagnostic {
                probe: tether_proto::diag::Probe::Uptime,
                timeout_secs: None,
            };
            raw_request(&conn, &keys, 7, &probe).await
        }
    });
    let mut sealer = keys.sealer(0, Direction::ConsoleToAgent);
    let mut opener = keys.opener(0, Direction::AgentToConsole);
    // Give the early request a head start; either way it meets the agent's grant check.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let consent = sealer
        .seal_msg(&ConsoleToAgent::ConsentRequest { scopes: inv })
        .unwrap();
    framed::write_frame(&mut raw.send, &consent).await.unwrap();
    let _: AgentToConsole = opener
        .open_msg(&framed::read_frame(&mut raw.recv).await.unwrap())
        .unwrap();
    assert_eq!(
        early.await.unwrap(),
        Some(Response::Refused {
            scope: Scope::Diagnostics
        })
    );
    t.row(
        "request sent before consent, for an ungranted scope",
        "Refused(diagnostics)".into(),
        &mut live,
    )
    .await;

    assert!(matches!(
        raw_request(&raw.relay.conn, &keys, 1, &Request::Inventory).await,
        Some(Response::Inventory(_))
    ));
    assert_eq!(
        raw_request(&raw.relay.conn, &keys, 1, &Request::Inventory).await,
        None,
        "a reused stream number is refused"
    );
    assert_eq!(
        raw_request(&raw.relay.conn, &keys, 0, &Request::Inventory).await,
        None,
        "stream 0 is never a request"
    );
    assert!(matches!(
        raw_request(&raw.relay.conn, &keys, 2, &Request::Inventory).await,
        Some(Response::Inventory(_))
    ));
    t.row(
        "reused request stream number",
        "stream dropped; session continues".into(),
        &mut live,
    )
    .await;

    eprintln!("{:<52} outcome", "hostile input");
    for (name, outcome) in &t.rows {
        eprintln!("{name:<52} {outcome}");
    }
    assert!(t.rows.len() >= 20, "{} rows", t.rows.len());
}
