//! End to end over real QUIC on loopback: relay, agent and console from the real libraries.

// Tests panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tether_agent::ShareConfig;
use tether_agent::ui::{AgentEvent, UserCommand};
use tether_console::{ConsoleError, open_session};
use tether_net::{ConnectError, Trust};
use tether_proto::diag::Probe;
use tether_proto::msg::EndReason;
use tether_proto::{Scope, ScopeSet, SessionCode};
use tether_relay::Limits;
use tether_tests::{TestAgent, TestRelay, paired};

fn scopes(s: &str) -> ScopeSet {
    s.parse().unwrap()
}

fn with_secret(code: SessionCode, other: &str) -> SessionCode {
    format!("{}{}", code.slot, other).parse().unwrap()
}

fn different_secret(code: SessionCode) -> SessionCode {
    let digits = code.to_string().replace(' ', "");
    let secret = &digits[digits.len() - 6..];
    let wrong = if secret == "000000" {
        "000001"
    } else {
        "000000"
    };
    with_secret(code, wrong)
}

#[tokio::test]
async fn consent_given_returns_this_machines_inventory() {
    let relay = TestRelay::start().await;
    let mut agent = TestAgent::spawn(&relay, ScopeSet::all());
    let code = agent.code().await;
    let mut session = open_session(&relay.console(), code, scopes("inventory"))
        .await
        .unwrap();
    assert_eq!(
        session.granted,
        scopes("inventory"),
        "the grant is capped at what was asked"
    );
    assert_eq!(session.technician.name, "Ada Lovelace");
    let inv = session.inventory().await.unwrap();

    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(inv.hardware.system.hostname, hostname.trim());
    assert_eq!(
        inv.hardware.cpu.threads as usize,
        std::thread::available_parallelism().unwrap().get()
    );
    assert!(inv.hardware.memory.total > 0);
    assert!(inv.hardware.interfaces.iter().any(|i| i.name == "lo"));

    // Both sides derived the same key: the verification strings agree.
    match agent
        .expect("paired", |e| matches!(e, AgentEvent::Paired { .. }))
        .await
    {
        AgentEvent::Paired { verification } => assert_eq!(verification, session.verification),
        _ => unreachable!(),
    }
    session.end().await;
    agent
        .expect("end", |e| {
            matches!(
                e,
                AgentEvent::Ended {
                    reason: EndReason::TechnicianEnded
                }
            )
        })
        .await;
    assert_eq!(
        (&mut agent.task).await.unwrap().unwrap(),
        EndReason::TechnicianEnded
    );

    let audit = relay.audit();
    let events: Vec<_> = audit
        .iter()
        .map(|r| r["event"].as_str().unwrap().to_string())
        .collect();
    assert!(
        events.contains(&"session_started".to_string()),
        "{events:?}"
    );
    assert!(events.contains(&"session_ended".to_string()), "{events:?}");
    let json = serde_json::to_string(&audit).unwrap();
    assert!(
        !json.contains(&code.to_string().replace(' ', "")[3..]),
        "audit holds the secret"
    );
}

#[tokio::test]
async fn consent_denied_sends_nothing() {
    let relay = TestRelay::start().await;
    let mut agent = TestAgent::spawn(&relay, ScopeSet::EMPTY);
    let code = agent.code().await;

    let err = open_session(&relay.console(), code, scopes("inventory,diagnostics"))
        .await
        .unwrap_err();
    assert!(matches!(err, ConsoleError::ConsentDenied), "{err}");
    assert_eq!(err.exit_code(), 8);
    assert_eq!(
        (&mut agent.task).await.unwrap().unwrap(),
        EndReason::ConsentDenied
    );
    assert!(!agent.saw(|e| matches!(e, AgentEvent::Served { .. })));

    // What crossed the relay towards the console is far smaller than any inventory: only pairing and
    // the (empty) decision.
    let inventory_len = tether_proto::codec::encode(&tether_agent::inventory::collect())
        .unwrap()
        .len();
    let ended = relay
        .audit()
        .into_iter()
        .find(|r| r["event"] == "session_ended")
        .unwrap();
    let to_console = ended["bytes_to_console"].as_u64().unwrap() as usize;
    assert!(
        to_console < inventory_len,
        "{to_console} bytes reached the console, inventory is {inventory_len}"
    );
    assert!(relay.audit().iter().any(|r| {
        r["report"]
            .as_str()
            .is_some_and(|s| s.starts_with("consent_denied"))
    }));
}

#[tokio::test]
async fn ungranted_scope_is_refused_by_the_agent() {
    let relay = TestRelay::start().await;
    let (mut agent, mut session) =
        paired(&relay, scopes("inventory"), scopes("inventory,diagnostics")).await;
    assert_eq!(session.granted, scopes("inventory"));
    let err = session.diagnostic(Probe::Uptime).await.unwrap_err();
    assert!(
        matches!(err, ConsoleError::ScopeDenied(Scope::Diagnostics)),
        "{err}"
    );
    assert_eq!(err.exit_code(), 9);
    agent
        .expect("refusal", |e| {
            matches!(
                e,
                AgentEvent::Refused {
                    scope: Scope::Diagnostics,
                    ..
                }
            )
        })
        .await;
    // The granted scope still works afterwards.
    assert!(
        !session
            .inventory()
            .await
            .unwrap()
            .hardware
            .system
            .hostname
            .is_empty()
    );
    session.end().await;
    let _ = (&mut agent.task).await;
    assert!(
        relay
            .audit()
            .iter()
            .any(|r| r["report"] == "scope_refused scope=diagnostics")
    );
}

#[tokio::test]
async fn granted_diagnostics_run() {
    let relay = TestRelay::start().await;
    let (_agent, mut session) = paired(&relay, scopes("diagnostics"), scopes("diagnostics")).await;
    let report = session.diagnostic(Probe::DiskUsage).await.unwrap();
    match report.facts {
        tether_proto::diag::DiagFacts::DiskUsage { filesystems } => {
            assert!(filesystems.iter().any(|f| f.mount_point == "/"))
        }
        other => panic!("wrong facts {other:?}"),
    }
    let report = session.diagnostic(Probe::Uptime).await.unwrap();
    assert_eq!(report.probe, Probe::Uptime);
    session.end().await;
}

#[tokio::test]
async fn wrong_secret_fails_both_sides_and_burns_the_code() {
    let relay = TestRelay::start().await;
    let mut agent = TestAgent::spawn(&relay, ScopeSet::all());
    let code = agent.code().await;

    let err = open_session(
        &relay.console(),
        different_secret(code),
        scopes("inventory"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ConsoleError::WrongCode), "{err}");
    assert_eq!(err.exit_code(), 7);
    agent
        .expect("pairing failure", |e| {
            matches!(e, AgentEvent::PairingFailed)
        })
        .await;
    let fresh = agent.code().await;
    assert_ne!(fresh.slot, code.slot);

    // The right secret no longer helps: the slot is gone.
    let err = open_session(&relay.console(), code, scopes("inventory"))
        .await
        .unwrap_err();
    assert!(matches!(err, ConsoleError::UnknownCode), "{err}");
    assert!(
        relay
            .audit()
            .iter()
            .any(|r| r["report"] == "pairing_failed")
    );
    // The new code works.
    let mut s = open_session(&relay.console(), fresh, scopes("inventory"))
        .await
        .unwrap();
    s.inventory().await.unwrap();
    s.end().await;
}

#[tokio::test]
async fn expired_code_is_refused_and_replaced() {
    let limits = Limits {
        code_ttl: Duration::from_secs(1),
        ..Limits::default()
    };
    let relay = TestRelay::start_with(limits, None).await;
    let mut agent = TestAgent::spawn(&relay, ScopeSet::all());
    let code = agent.code().await;
    agent
        .expect("expiry", |e| matches!(e, AgentEvent::CodeExpired))
        .await;
    let err = open_session(&relay.console(), code, scopes("inventory"))
        .await
        .unwrap_err();
    assert!(matches!(err, ConsoleError::ExpiredCode), "{err}");
    assert_eq!(err.exit_code(), 6);
    let fresh = agent.code().await;
    assert_ne!(fresh.slot, code.slot);
}

#[tokio::test]
async fn unknown_slot_and_bad_token_are_refused() {
    let relay = TestRelay::start().await;
    let nobody: SessionCode = "999 123 456".parse().unwrap();
    let err = open_session(&relay.console(), nobody, scopes("inventory"))
        .await
        .unwrap_err();
    assert!(matches!(err, ConsoleError::UnknownCode), "{err}");

    let mut agent = TestAgent::spawn(&relay, ScopeSet::all());
    let code = agent.code().await;
    let mut bad = relay.console();
    bad.token = "tt_not_a_token".into();
    let err = open_session(&bad, code, scopes("inventory"))
        .await
        .unwrap_err();
    assert!(matches!(err, ConsoleError::BadToken(_)), "{err}");
    assert_eq!(err.exit_code(), 5);
    // A bad token does not consume the code.
    let mut s = open_session(&relay.console(), code, scopes("inventory"))
        .await
        .unwrap();
    s.inventory().await.unwrap();
    s.end().await;
    assert!(relay.handle.stats().unknown_claims >= 1);
}

#[tokio::test]
async fn fingerprint_mismatch_is_refused_before_anything_is_sent() {
    let relay = TestRelay::start().await;
    let mut agent = TestAgent::spawn(&relay, ScopeSet::all());
    let code = agent.code().await;
    let mut wrong = relay.console();
    wrong.relay.trust = Trust::Fingerprint("ab".repeat(32));
    let err = open_session(&wrong, code, scopes("inventory"))
        .await
        .unwrap_err();
    match &err {
        ConsoleError::Connect(ConnectError::FingerprintMismatch { actual, .. }) => {
            assert_eq!(actual, relay.handle.fingerprint())
        }
        other => panic!("expected a fingerprint mismatch, got {other}"),
    }
    assert_eq!(err.exit_code(), 4);
    // The agent refuses a wrong pin too.
    let cfg = ShareConfig::new(wrong.relay.clone());
    let wrong_agent = TestAgent::spawn_with(cfg, Some(ScopeSet::all()));
    let res = tokio::time::timeout(tether_tests::WAIT, wrong_agent.task)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        res,
        Err(tether_agent::ShareError::Connect(
            ConnectError::FingerprintMismatch { .. }
        ))
    ));
    // And the code was never claimed.
    let s = open_session(&relay.console(), code, scopes("inventory"))
        .await
        .unwrap();
    s.end().await;
}

#[tokio::test]
async fn unreachable_relay_is_reported() {
    // Bind and drop a UDP socket to get a port with nobody behind it.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let relay = TestRelay::start().await;
    let mut cfg = relay.console();
    cfg.relay.addr = format!("127.0.0.1:{port}");
    cfg.relay.connect_timeout = Duration::from_secs(1);
    let err = open_session(&cfg, "123 456 789".parse().unwrap(), scopes("inventory"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConsoleError::Connect(ConnectError::Unreachable { .. })),
        "{err}"
    );
    assert_eq!(err.exit_code(), 3);
}

#[tokio::test]
async fn user_can_end_the_session() {
    let relay = TestRelay::start().await;
    let (mut agent, mut session) = paired(&relay, ScopeSet::all(), scopes("inventory")).await;
    agent
        .expect("consent", |e| {
            matches!(e, AgentEvent::ConsentDecided { .. })
        })
        .await;
    agent.commands.send(UserCommand::EndSession).await.unwrap();
    assert_eq!(
        (&mut agent.task).await.unwrap().unwrap(),
        EndReason::UserEnded
    );
    let err = session.inventory().await.unwrap_err();
    assert!(matches!(err, ConsoleError::Ended(_)), "{err}");
}

#[tokio::test]
async fn silence_means_no() {
    let relay = TestRelay::start().await;
    let mut cfg = ShareConfig::new(relay.target());
    cfg.consent_timeout = Duration::from_millis(500);
    let mut agent = TestAgent::spawn_with(cfg, None);
    let code = agent.code().await;
    let err = open_session(&relay.console(), code, scopes("inventory"))
        .await
        .unwrap_err();
    // Issue 17 item 7: a timeout is told as one, with the same exit code as a refusal.
    assert!(matches!(err, ConsoleError::ConsentTimeout), "{err}");
    assert_eq!(err.exit_code(), 8);
    assert_eq!(
        (&mut agent.task).await.unwrap().unwrap(),
        EndReason::ConsentTimeout
    );
}

#[tokio::test]
async fn the_relay_only_sees_ciphertext() {
    let captured = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = captured.clone();
    let tap: tether_relay::config::SpliceTap =
        Arc::new(move |b: &[u8]| sink.lock().unwrap().extend_from_slice(b));
    let relay = TestRelay::start_with(Limits::default(), Some(tap)).await;
    // Relayed only, so the inventory crosses the relay (on loopback it would go direct).
    let mut agent = TestAgent::spawn(&relay, ScopeSet::all());
    let code = agent.code().await;
    let mut session = open_session(&relay.console_relay_only(), code, scopes("inventory"))
        .await
        .unwrap();
    let inv = session.inventory().await.unwrap();
    session.end().await;

    let bytes = captured.lock().unwrap().clone();
    let plaintext_len = tether_proto::codec::encode(&inv).unwrap().len();
    assert!(
        bytes.len() > plaintext_len,
        "the inventory did cross the relay ({} bytes)",
        bytes.len()
    );
    let secrets = [
        inv.hardware.system.kernel.clone(),
        inv.hardware.system.os_name.clone(),
        inv.hardware.cpu.model.clone(),
        inv.hardware.system.hostname.clone(),
    ];
    for s in secrets.iter().filter(|s| s.len() >= 2) {
        let needle = s.as_bytes();
        // Short strings could appear in random bytes by chance; demand the string with its bincode
        // length prefix, which is exactly how it would appear in plaintext.
        let mut framed = vec![needle.len() as u8];
        framed.extend_from_slice(needle);
        assert!(
            !bytes.windows(framed.len()).any(|w| w == framed),
            "relay saw {s:?} in the clear"
        );
    }
    let _ = (&mut agent.task).await;
}
