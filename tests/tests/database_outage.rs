//! A relay node whose PostgreSQL server goes away and comes back (a real server from
//! `tether_tests::pg`, stopped and started again on the same port and data): while the database is
//! down the node refuses new work with a reason that names the database (a technician's claim, an
//! enrolled device's report, which stays queued on the device), and it keeps serving as soon as the
//! database is back: the queued report lands once, a new session pairs and works, and the audit
//! chain is intact.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use tether_agent::report::RunEvent;
use tether_console::ConsoleConfig;
use tether_net::{RelayTarget, Trust};
use tether_proto::ScopeSet;
use tether_proto::msg::{TechnicianRole, Tier};
use tether_relay::backend::Backend;
use tether_relay::{RelayHandle, admin};
use tether_tests::device::TestDevice;
use tether_tests::pg::{PgServer, node};
use tether_tests::{TestAgent, WAIT};

fn target(node: &RelayHandle) -> RelayTarget {
    RelayTarget {
        addr: node.local_addr().to_string(),
        trust: Trust::Fingerprint(node.fingerprint().to_string()),
        connect_timeout: Duration::from_secs(5),
        direct: Default::default(),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A session on `node` by a fresh code, with `inventory` granted; returns the console's error if
/// the session could not start.
async fn inventory_session(node: &RelayHandle, token: &str) -> Result<(), String> {
    let scopes: ScopeSet = "inventory".parse().unwrap();
    let mut agent =
        TestAgent::spawn_with(tether_agent::ShareConfig::new(target(node)), Some(scopes));
    let code = agent.code().await;
    let console = ConsoleConfig {
        relay: target(node),
        token: token.to_string(),
    };
    let mut session = tether_console::open_session(&console, code, scopes)
        .await
        .map_err(|e| e.to_string())?;
    session.inventory().await.map_err(|e| e.to_string())?;
    session.end().await;
    agent.task.await.unwrap().unwrap();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_while_its_database_is_down_and_recovers_without_losing_a_report() {
    let mut server = PgServer::start();
    let db = server.database();
    let url = server.url(&db);
    let dir = tempfile::tempdir().unwrap();
    let a = node(&url, dir.path()).await;
    let backend = Backend::open(Some(&url), "/".as_ref()).unwrap();
    let tech = admin::add_technician_in(
        &backend,
        "Ada Lovelace",
        "Acme IT",
        TechnicianRole::Technician,
        Tier::L1,
        None,
    )
    .unwrap();
    inventory_session(&a, &tech).await.expect("a session works");

    // An enrolled device reporting through the node.
    let store = a.store();
    let enroll_token =
        tokio::task::spawn_blocking(move || store.create_token("Acme IT", 3600, 1, now()))
            .await
            .unwrap()
            .unwrap()
            .token;
    let mut device = TestDevice::enroll(target(&a), enroll_token, "outage-host", Vec::new()).await;
    device
        .next("report 1 acked", |e| {
            matches!(e, RunEvent::Acked { seq: 1, .. })
        })
        .await;

    // The database goes away.
    tokio::task::block_in_place(|| server.stop());

    // A report made now is not acknowledged: it stays queued on the device, which keeps trying.
    device.report("1.1").await;
    let seen = device
        .next("report 2 refused or its connection failed", |e| {
            matches!(
                e,
                RunEvent::Rejected { seq: 2, .. } | RunEvent::Disconnected { .. }
            )
        })
        .await;
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, RunEvent::Acked { seq: 2, .. })),
        "acknowledged without a database: {seen:?}"
    );
    let why = seen
        .iter()
        .find_map(|e| match e {
            RunEvent::Rejected { reason, .. } | RunEvent::Disconnected { reason, .. } => {
                Some(reason.clone())
            }
            _ => None,
        })
        .unwrap();
    assert!(why.contains("database"), "the device is told why: {why}");
    assert_eq!(device.queued(), 1);

    // A user asking for help is refused a code, saying why (the cluster's codes live in the
    // database), and so is a technician's claim of any code.
    let agent = TestAgent::spawn_with(
        tether_agent::ShareConfig::new(target(&a)),
        Some("inventory".parse().unwrap()),
    );
    let refused = tokio::time::timeout(WAIT, agent.task)
        .await
        .expect("the agent is answered")
        .unwrap()
        .expect_err("no code without the database")
        .to_string();
    assert!(
        refused.contains("database"),
        "the user is told why: {refused}"
    );
    let console = ConsoleConfig {
        relay: target(&a),
        token: tech.clone(),
    };
    let err =
        tether_console::open_session(&console, "123 456 789".parse().unwrap(), ScopeSet::all())
            .await
            .expect_err("no session without the database")
            .to_string();
    assert!(err.contains("database"), "the console is told why: {err}");

    // The database comes back on the same port: the node serves again by itself.
    tokio::task::block_in_place(|| server.restart());
    let reports = device
        .stored(2, "report 2 acked after the database came back", a.store())
        .await;
    assert_eq!(reports, 2, "each report stored once");
    tokio::time::timeout(WAIT * 2, async {
        loop {
            match inventory_session(&a, &tech).await {
                Ok(()) => return,
                Err(e) => {
                    eprintln!("(not yet: {e})");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    })
    .await
    .expect("sessions work again once the database is back");

    device.stop().await;
    a.shutdown().await;
    let verified = tokio::task::spawn_blocking(move || admin::verify_audit_in(&backend))
        .await
        .unwrap()
        .expect("the chain is intact after the outage");
    assert!(verified.records > 0);
    drop(server);
}
