//! Two relay nodes on one PostgreSQL database (`serve --database`, a private server from
//! `tether_tests::pg`): a technician registered once works on both, a session served by node A
//! leaves a record that node B finds by search, and `audit verify` passes over the one chain both
//! wrote. The real `tether-relay` binary: `--database` with a wrong password stops a command with
//! the reason and without the password, and `audit verify` reads the cluster's chain.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use tether_console::{ConsoleConfig, records};
use tether_net::{RelayTarget, Trust};
use tether_proto::ScopeSet;
use tether_proto::msg::{TechnicianRole, Tier};
use tether_proto::records::RecordQuery;
use tether_relay::backend::Backend;
use tether_relay::{Relay, RelayConfig, RelayHandle, admin};
use tether_tests::pg::{PASSWORD, PgServer};
use tether_tests::procs::bin;
use tether_tests::{TestAgent, WAIT};

async fn node(url: &str, dir: &Path) -> RelayHandle {
    let mut config = RelayConfig::new("127.0.0.1:0".parse().unwrap(), dir.to_path_buf());
    config.database = Some(url.to_string());
    Relay::spawn(config).await.expect("node starts")
}

fn console(node: &RelayHandle, token: &str) -> ConsoleConfig {
    ConsoleConfig {
        relay: RelayTarget {
            addr: node.local_addr().to_string(),
            trust: Trust::Fingerprint(node.fingerprint().to_string()),
            connect_timeout: std::time::Duration::from_secs(5),
        },
        token: token.to_string(),
    }
}

async fn search(config: &ConsoleConfig, text: &str) -> Vec<u64> {
    records::list(
        config,
        RecordQuery::Search {
            text: text.into(),
            device: None,
            technician: None,
            limit: 50,
        },
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.id)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_records_technicians_and_one_audit_chain() {
    let server = PgServer::start();
    let db = server.database();
    let url = server.url(&db);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = node(&url, dir_a.path()).await;
    let b = node(&url, dir_b.path()).await;
    // Registered once, in the database, while both nodes run.
    let backend = Backend::open(Some(&url), "/".as_ref()).unwrap();
    let token = admin::add_technician_in(
        &backend,
        "Ada Lovelace",
        "Acme IT",
        TechnicianRole::Technician,
        Tier::L1,
        None,
    )
    .unwrap();

    // A session on node A.
    let mut share = tether_agent::ShareConfig::new(RelayTarget {
        addr: a.local_addr().to_string(),
        trust: Trust::Fingerprint(a.fingerprint().to_string()),
        connect_timeout: std::time::Duration::from_secs(5),
    });
    share.reason = Some("printer offline on the third floor".into());
    let mut agent = TestAgent::spawn_with(share, Some("inventory".parse().unwrap()));
    let code = agent.code().await;
    let on_a = console(&a, &token);
    let mut session =
        tether_console::open_session(&on_a, code, "inventory".parse::<ScopeSet>().unwrap())
            .await
            .unwrap();
    let id = session.record.expect("node A made a record");
    session.inventory().await.unwrap();
    session.end().await;
    agent.task.await.unwrap().unwrap();

    // Node B finds it by the user's words, and sees its end once node A stored it.
    let on_b = console(&b, &token);
    assert_eq!(search(&on_b, "third floor printer").await, vec![id]);
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            let r = records::record(&on_b, RecordQuery::Show { id })
                .await
                .unwrap();
            if r.duration_secs.is_some() {
                return r;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("node A records the end, node B reads it");
    assert_eq!(ended.inventories.len(), 1);
    assert_eq!(ended.summary.technicians, ["Ada Lovelace"]);

    // A claim refused on node B goes into the same chain.
    let bogus = tether_console::open_session(
        &ConsoleConfig {
            token: "tt_nobody".into(),
            ..on_b.clone()
        },
        "123 456 789".parse().unwrap(),
        "view".parse::<ScopeSet>().unwrap(),
    )
    .await;
    assert!(bogus.is_err());
    a.shutdown().await;
    b.shutdown().await;

    let verified = admin::verify_audit_in(&backend).expect("one intact chain");
    let events: Vec<String> = admin::audit_records_in(&backend, &admin::AuditFilter::default())
        .unwrap()
        .iter()
        .map(|r| r["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(verified.records, events.len());
    for e in [
        "technician_added",
        "session_attempt",
        "session_ended",
        "claim_refused",
    ] {
        assert!(events.iter().any(|x| x == e), "{e} missing: {events:?}");
    }
    assert!(
        !dir_a.path().join("audit.jsonl").exists() && !dir_b.path().join("audit.jsonl").exists(),
        "nothing audited on the nodes' disks"
    );

    // The real binary reads the same chain.
    let out = Command::new(bin("tether-relay"))
        .args(["--database", &url, "--data-dir"])
        .arg(dir_a.path())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains(&format!("audit log intact: {} records", verified.records)),
        "{stdout}"
    );
}

/// A wrong password, given with `--database` or in the config file, stops any command that opens
/// the store, saying why and naming the database, never the password; nothing is written.
#[test]
fn a_wrong_database_password_stops_the_relay_with_the_reason() {
    let server = PgServer::start();
    let db = server.database();
    let url = server.url(&db).replace(PASSWORD, "not-the-password-42");
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["serve", "--listen", "127.0.0.1:0"],
        vec!["technician", "list"],
        vec!["enroll-token", "list"],
    ] {
        let out = Command::new(bin("tether-relay"))
            .args(["--database", &url, "--data-dir"])
            .arg(dir.path().join("data"))
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {out:?}");
        assert!(
            stderr.contains("password authentication failed"),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains(&format!("/{db}")), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("not-the-password-42"),
            "{args:?}: {stderr}"
        );
    }
    // The same from the relay's config file.
    let config = dir.path().join("relay.toml");
    std::fs::write(&config, format!("database = \"{url}\"\n")).unwrap();
    let out = Command::new(bin("tether-relay"))
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("TETHER_RELAY_DATABASE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr.contains("password authentication failed"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-password-42"), "{stderr}");
    assert!(
        !dir.path().join("data").exists(),
        "no data directory, no certificate: the start stopped first"
    );
}
