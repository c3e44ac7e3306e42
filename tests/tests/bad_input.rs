//! Hostile bytes at the relay: each offending connection is closed with a reason, and a well-behaved
//! session on the same relay carries on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tether_console::open_session;
use tether_net::client::{self, RelayConnection};
use tether_net::framed;
use tether_proto::codec;
use tether_proto::msg::{Hello, HelloReply, RelayErrorKind, Role, close};
use tether_proto::{PROTOCOL_VERSION, ScopeSet};
use tether_tests::{TestAgent, TestRelay, WAIT};

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

#[tokio::test]
async fn hostile_input_closes_only_the_offender() {
    let relay = TestRelay::start().await;
    // A real session is open throughout.
    let mut agent = TestAgent::spawn(&relay, ScopeSet::all());
    let code = agent.code().await;
    let mut session = open_session(&relay.console(), code, "inventory".parse().unwrap())
        .await
        .unwrap();

    // An oversized length prefix where the Hello should be: refused before any allocation.
    let (code_, reason) = send_raw(&relay, &u32::MAX.to_be_bytes()).await;
    assert_eq!(code_, u64::from(close::PROTOCOL_ERROR));
    assert!(reason.contains("exceeds the maximum"), "{reason}");

    // A frame whose body is not a Hello.
    let mut garbage = 3u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(&[0xff, 0xff, 0xff]);
    let (code_, reason) = send_raw(&relay, &garbage).await;
    assert_eq!(code_, u64::from(close::PROTOCOL_ERROR));
    assert!(reason.contains("malformed"), "{reason}");

    // A zero-length frame.
    let (code_, reason) = send_raw(&relay, &0u32.to_be_bytes()).await;
    assert_eq!(code_, u64::from(close::PROTOCOL_ERROR));
    assert!(reason.contains("empty frame"), "{reason}");

    // A valid Hello followed by a malformed claim (console) and an oversized frame (agent).
    let mut bytes = hello(Role::Console);
    bytes.extend_from_slice(&garbage);
    let (code_, reason) = send_raw(&relay, &bytes).await;
    assert_eq!(
        (code_, reason.contains("malformed")),
        (u64::from(close::PROTOCOL_ERROR), true),
        "{reason}"
    );
    let mut bytes = hello(Role::Agent);
    bytes.extend_from_slice(&(64 * 1024 * 1024u32).to_be_bytes());
    let (code_, reason) = send_raw(&relay, &bytes).await;
    assert_eq!(
        (code_, reason.contains("exceeds")),
        (u64::from(close::PROTOCOL_ERROR), true),
        "{reason}"
    );

    // An unknown protocol version gets a typed refusal.
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
    match framed::read_msg::<HelloReply>(&mut recv).await.unwrap() {
        HelloReply::Refused(e) => assert_eq!(e.kind, RelayErrorKind::UnsupportedVersion),
        other => panic!("expected a refusal, got {other:?}"),
    }
    conn.close(close::NORMAL, "bye").await;

    // A stream opened and left silent: closed once the Hello deadline passes (not waited for here),
    // and in the meantime it holds up nobody. The live session still works:
    let silent = client::connect(&relay.target()).await.unwrap();
    let _idle = silent.conn.open_bi().await.unwrap();
    let inv = session.inventory().await.unwrap();
    assert!(!inv.hostname.is_empty());
    session.end().await;

    // And a new session still starts.
    let mut agent2 = TestAgent::spawn(&relay, ScopeSet::all());
    let code2 = agent2.code().await;
    let mut s2 = open_session(&relay.console(), code2, "inventory".parse().unwrap())
        .await
        .unwrap();
    s2.inventory().await.unwrap();
    s2.end().await;
}

#[tokio::test]
async fn wrong_alpn_fails_the_handshake() {
    let relay = TestRelay::start().await;
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
        matches!(err, quinn::ConnectionError::ConnectionClosed(_)),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("no_application_protocol") || err.to_string().contains("120"),
        "{err}"
    );
}
