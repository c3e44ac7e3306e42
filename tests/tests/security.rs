//! Security properties end to end: roles, revocation, brute force, IT-pinned organisations, the
//! new-organisation warning, the tamper-evident audit log and the user's local log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tether_agent::ShareConfig;
use tether_agent::policy::Policy;
use tether_agent::ui::AgentEvent;
use tether_console::{ConsoleError, open_session};
use tether_net::sealed::SealedStream;
use tether_proto::msg::{
    AgentToConsole, ConsoleToAgent, EndReason, RelayErrorKind, TechnicianRole,
};
use tether_proto::pairing::Side;
use tether_proto::{ScopeSet, SessionCode};
use tether_relay::admin;
use tether_relay::technicians::Technicians;
use tether_tests::{RawClaim, RawConsole, TestAgent, TestRelay, paired};

fn scopes(s: &str) -> ScopeSet {
    s.parse().unwrap()
}

fn add(relay: &TestRelay, name: &str, org: &str, role: TechnicianRole) -> String {
    Technicians::new(relay.dir.path())
        .add_with(name, org, role, None)
        .unwrap()
}

#[tokio::test]
async fn a_viewer_cannot_ask_for_control_at_the_relay_or_the_agent() {
    let relay = TestRelay::start().await;
    let vic = add(&relay, "Vic", "Acme IT", TechnicianRole::Viewer);
    let mut agent = TestAgent::spawn(&relay, ScopeSet::all());
    let code = agent.code().await;
    let mut cfg = relay.console();
    cfg.token = vic.clone();

    // The relay refuses the claim outright, without consuming the code.
    let err = open_session(&cfg, code, scopes("view,control"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConsoleError::Forbidden(m) if m.contains("viewer")),
        "{err}"
    );
    assert_eq!(err.exit_code(), 5);

    // A console that tells the relay "view" but asks the agent for control is refused by the agent.
    let RawClaim::Claimed(mut raw) =
        RawConsole::claim(&relay.target(), None, code.slot, &vic, scopes("view")).await
    else {
        panic!("claim for view should pass the relay");
    };
    let keys = raw.pair(&code).await.unwrap();
    let (mut tx, mut rx) = SealedStream::new(raw.send, raw.recv, &keys, 0, Side::Console).split();
    tx.send(&ConsoleToAgent::ConsentRequest {
        scopes: scopes("view,control"),
    })
    .await
    .unwrap();
    let answer: AgentToConsole = rx.recv().await.unwrap();
    assert_eq!(
        answer,
        AgentToConsole::Ended {
            reason: EndReason::Forbidden
        }
    );
    assert_eq!(
        (&mut agent.task).await.unwrap().unwrap(),
        EndReason::Forbidden
    );
    assert!(
        !agent.saw(|e| matches!(e, AgentEvent::ConsentRequested { .. })),
        "the user was never asked"
    );
    assert!(relay.audit().iter().any(|r| r["reason"] == "Forbidden"));
}

#[tokio::test]
async fn revoked_tokens_stop_working() {
    let relay = TestRelay::start().await;
    let (_agent, s) = paired(&relay, ScopeSet::all(), scopes("inventory")).await;
    s.end().await;
    admin::revoke_technician(relay.dir.path(), "Ada Lovelace", "Acme IT").unwrap();
    let mut agent = TestAgent::spawn(&relay, ScopeSet::all());
    let code = agent.code().await;
    let err = open_session(&relay.console(), code, scopes("inventory"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConsoleError::BadToken(m) if m.contains("revoked")),
        "{err}"
    );
    let events: Vec<_> = relay
        .audit()
        .into_iter()
        .map(|r| r["event"].as_str().unwrap().to_string())
        .collect();
    assert!(
        events.contains(&"technician_revoked".to_string()),
        "{events:?}"
    );
}

/// 10,000 guessed codes from ten source addresses, half with a valid (malicious) technician's token and
/// half with made-up tokens, against a relay with a live session and a waiting code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_guesses_open_no_session() {
    const GUESSES: u64 = 10_000;
    let relay = TestRelay::start().await;
    let mallory = add(
        &relay,
        "Mallory",
        "Totally Legit Support",
        TechnicianRole::Technician,
    );
    let (mut live_agent, mut live) = paired(&relay, ScopeSet::all(), scopes("inventory")).await;
    let mut waiting = TestAgent::spawn(&relay, ScopeSet::all());
    let waiting_code = waiting.code().await;

    let opened = Arc::new(AtomicU64::new(0));
    let outcomes = Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        String,
        u64,
    >::new()));
    let gate = Arc::new(tokio::sync::Semaphore::new(32));
    // On a loaded machine a handshake can queue for seconds; every guess must still get its answer.
    let mut patient = relay.target();
    patient.connect_timeout = std::time::Duration::from_secs(120);
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..GUESSES {
        let (target, mallory, opened, outcomes, gate) = (
            patient.clone(),
            mallory.clone(),
            opened.clone(),
            outcomes.clone(),
            gate.clone(),
        );
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            let source: std::net::SocketAddr = format!("127.0.0.{}:0", 2 + i % 10).parse().unwrap();
            let token = if i % 2 == 0 {
                mallory
            } else {
                format!("tt_guess{i}")
            };
            let guess: SessionCode =
                format!("{}{:06}", 100 + (i * 7919) % 900, (i * 104_729) % 1_000_000)
                    .parse()
                    .unwrap();
            let outcome = match RawConsole::claim(
                &target,
                Some(source),
                guess.slot,
                &token,
                scopes("inventory"),
            )
            .await
            {
                RawClaim::Claimed(mut raw) => {
                    if raw.pair(&guess).await.is_ok() {
                        opened.fetch_add(1, Ordering::Relaxed);
                    }
                    "claimed, pairing failed".to_string()
                }
                RawClaim::Refused(e) => format!("{:?}", e.kind),
                RawClaim::Failed(e) => format!("failed: {e}"),
            };
            *outcomes.lock().unwrap().entry(outcome).or_default() += 1;
        });
    }
    while tasks.join_next().await.is_some() {}
    let outcomes = outcomes.lock().unwrap().clone();
    eprintln!("outcomes of {GUESSES} guesses: {outcomes:?}");

    assert_eq!(
        opened.load(Ordering::Relaxed),
        0,
        "a guessed code opened a session"
    );
    // The limits are per minute, so a slow machine gets one allowance per minute begun.
    let minutes = started.elapsed().as_secs() / 60 + 1;
    let count = |k: RelayErrorKind| outcomes.get(&format!("{k:?}")).copied().unwrap_or(0);
    let claimed = outcomes
        .get("claimed, pairing failed")
        .copied()
        .unwrap_or(0);
    let past_source_limit = GUESSES - count(RelayErrorKind::RateLimited);
    assert!(
        past_source_limit <= 10 * 60 * minutes,
        "source limit (60/min from each of 10 addresses): {outcomes:?}"
    );
    // Only Mallory's guesses carry a valid token; at most 20 a minute of them reach the slot table.
    let reached_table =
        count(RelayErrorKind::UnknownSlot) + count(RelayErrorKind::ExpiredSlot) + claimed;
    assert!(
        reached_table <= 20 * minutes,
        "technician limit (20/min): {outcomes:?}"
    );
    assert!(
        count(RelayErrorKind::BadToken) > 0 && reached_table > 0,
        "both kinds of guess were answered: {outcomes:?}"
    );
    assert!(
        outcomes.keys().all(|k| !k.starts_with("failed")),
        "every guess got a clear answer: {outcomes:?}"
    );
    let stats = relay.handle.stats();
    assert!(stats.rate_limited >= count(RelayErrorKind::RateLimited));

    // The live session is unaffected, and the waiting code still works for its technician, who is
    // connecting from another address.
    assert!(
        !live
            .inventory()
            .await
            .unwrap()
            .hardware
            .system
            .hostname
            .is_empty()
    );
    live.end().await;
    let _ = (&mut live_agent.task).await;
    let still = open_session(&relay.console(), waiting_code, scopes("inventory")).await;
    match still {
        Ok(s) => s.end().await,
        // A guess may have landed on the waiting slot; then the code is burned and the user is shown
        // a fresh one, which works.
        Err(ConsoleError::UnknownCode) => {
            let fresh = waiting.code().await;
            open_session(&relay.console(), fresh, scopes("inventory"))
                .await
                .unwrap()
                .end()
                .await;
        }
        Err(e) => panic!("the waiting code failed: {e}"),
    }
}

#[tokio::test]
async fn pinned_organisations_decline_before_any_prompt() {
    let relay = TestRelay::start().await;
    let mallory = add(
        &relay,
        "Mallory",
        "Totally Legit Support",
        TechnicianRole::Technician,
    );
    let mut cfg = ShareConfig::new(relay.target());
    cfg.policy = Policy {
        allowed_orgs: Some(vec!["Acme IT".into()]),
    };
    let mut agent = TestAgent::spawn_with(cfg, Some(ScopeSet::all()));
    let code = agent.code().await;
    let mut console = relay.console();
    console.token = mallory;
    let err = open_session(&console, code, scopes("inventory"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConsoleError::Declined(m) if m.contains("only accepts support from Acme IT")),
        "{err}"
    );
    assert_eq!(err.exit_code(), 8);
    agent
        .expect("decline", |e| matches!(e, AgentEvent::Declined { .. }))
        .await;
    assert!(!agent.saw(|e| matches!(
        e,
        AgentEvent::ConsentRequested { .. } | AgentEvent::Paired { .. }
    )));
    // Acme IT is still welcome, with the fresh code.
    let fresh = agent.code().await;
    open_session(&relay.console(), fresh, scopes("inventory"))
        .await
        .unwrap()
        .end()
        .await;
}

#[tokio::test]
async fn a_new_organisation_is_flagged_once() {
    let relay = TestRelay::start().await;
    let state = tempfile::tempdir().unwrap();
    let first_contact = |agent: &TestAgent| {
        agent.seen.lock().unwrap().iter().find_map(|e| match e {
            AgentEvent::ConsentRequested {
                first_contact,
                relay,
                ..
            } => Some((*first_contact, relay.clone())),
            _ => None,
        })
    };
    for expect_new in [true, false] {
        let mut cfg = ShareConfig::new(relay.target());
        cfg.state_dir = Some(state.path().to_path_buf());
        let mut agent = TestAgent::spawn_with(cfg, Some(ScopeSet::all()));
        let code = agent.code().await;
        let mut s = open_session(&relay.console(), code, scopes("inventory"))
            .await
            .unwrap();
        s.inventory().await.unwrap();
        s.end().await;
        let _ = (&mut agent.task).await;
        let (new, relay_shown) = first_contact(&agent).unwrap();
        assert_eq!(new, expect_new);
        assert!(
            relay_shown.contains(&relay.handle.fingerprint()[..16]),
            "{relay_shown}"
        );
    }
    // The local log recorded both sessions without the secret.
    let lines = tether_agent::local_log::LocalLog::new(state.path())
        .read()
        .unwrap();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("Ada Lovelace of Acme IT asked to"))
            .count(),
        2,
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l.contains("Sent the technician")));
}

#[tokio::test]
async fn the_audit_log_is_a_verifiable_chain() {
    let relay = TestRelay::start().await;
    let (_agent, mut s) = paired(&relay, ScopeSet::all(), scopes("inventory")).await;
    s.inventory().await.unwrap();
    s.end().await;
    // (`audit_path` waits for the relay's writer, so the file holds what was recorded.)
    let path = relay.handle.audit_path();
    let n = admin::verify_audit(relay.dir.path()).unwrap().records;
    assert!(n >= 3, "{n} records");
    // Editing one record is detected and named.
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("Ada Lovelace", "Someone Else", 1)).unwrap();
    let err = admin::verify_audit(relay.dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("was altered"), "{err}");
}

/// Claims with a bogus token from one address (a NAT, a VPN exit) are limited there, but they do not
/// lock out a real technician behind the same address, and the audit log counts them instead of
/// writing a line each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seventy_bogus_claims_do_not_lock_out_a_real_technician_from_the_same_address() {
    let relay = TestRelay::start().await;
    let mut agent = TestAgent::spawn(&relay, ScopeSet::all());
    let code = agent.code().await;
    let mut kinds = Vec::new();
    for _ in 0..70 {
        match RawConsole::claim(&relay.target(), None, code.slot, "tt_bogus", scopes("view")).await
        {
            RawClaim::Refused(e) => kinds.push(e.kind),
            other => panic!("{other:?}"),
        }
    }
    // The per-address limit for failures still holds (60 a minute)...
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == RelayErrorKind::BadToken)
            .count(),
        60,
        "{kinds:?}"
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == RelayErrorKind::RateLimited)
            .count(),
        10
    );
    // ...and Ada, from the same address, gets her session at once.
    let mut s = open_session(&relay.console(), code, scopes("inventory"))
        .await
        .expect("a real technician is not limited by others' failures");
    s.inventory().await.unwrap();
    s.end().await;
    let _ = (&mut agent.task).await;

    // The refusals are one line per reason and a count, not 70 lines.
    let TestRelay { handle, dir, .. } = relay;
    handle.shutdown().await;
    let text = std::fs::read_to_string(dir.path().join(tether_relay::audit::FILE)).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lines = records
        .iter()
        .filter(|r| r["event"] == "claim_refused")
        .count();
    let repeated: u64 = records
        .iter()
        .filter(|r| r["event"] == "claims_refused_repeated")
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    assert_eq!(lines, 2, "{text}");
    assert_eq!(lines as u64 + repeated, 70, "{text}");
    assert!(admin::verify_audit(dir.path()).is_ok());
}
