//! A relay node killed under a waiting agent (issue 20): node A is a real `tether-relay serve`
//! process on a shared PostgreSQL database, node B another node on it; the agent knows both (as
//! `cluster_nodes` in agent.toml gives it). `kill -9` on node A: the agent notices, moves to node
//! B and shows a new code within 5 s, and a technician who reaches node B pairs with it by that
//! code and reads the inventory. An enrolled device that reported through node A queues its next
//! report while A is gone and delivers it through node B, where it lands once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tether_agent::enroll::{DataDir, EnrollConfig, enroll};
use tether_agent::report::{RunConfig, RunEvent, run};
use tether_agent::ui::AgentEvent;
use tether_console::ConsoleConfig;
use tether_net::{RelayTarget, Trust};
use tether_proto::ScopeSet;
use tether_proto::msg::{TechnicianRole, Tier};
use tether_relay::backend::Backend;
use tether_relay::{Relay, RelayConfig, admin};
use tether_tests::TestAgent;
use tether_tests::WAIT;
use tether_tests::pg::PgServer;
use tether_tests::procs::{Kill, bin, lines, wait_for};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How soon a waiting agent must show a new code through another node after its node died.
const FAILOVER: Duration = Duration::from_secs(5);

/// The service's next event matching `pred`.
async fn next(events: &mut mpsc::Receiver<RunEvent>, what: &str, pred: impl Fn(&RunEvent) -> bool) {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(WAIT, async {
        while let Some(e) = events.recv().await {
            if pred(&e) {
                return true;
            }
            seen.push(e);
        }
        false
    })
    .await;
    assert!(matches!(found, Ok(true)), "no {what}: {seen:?}");
}

fn dpkg(version: &str) -> String {
    format!(
        "Package: alpha\nStatus: install ok installed\nArchitecture: amd64\nVersion: {version}\n\
         Description: test\n"
    )
}

fn target(addr: &str, fingerprint: &str) -> RelayTarget {
    RelayTarget {
        addr: addr.to_string(),
        trust: Trust::Fingerprint(fingerprint.to_string()),
        connect_timeout: Duration::from_secs(5),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_agent_moves_to_another_node_within_5_s_when_its_node_is_killed() {
    let server = PgServer::start();
    let db = server.database();
    let url = server.url(&db);
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

    // Node A: a real process, so that it can be killed.
    let dir_a = tempfile::tempdir().unwrap();
    let mut node_a = Kill(
        Command::new(bin("tether-relay"))
            .args(["--database", &url, "--data-dir"])
            .arg(dir_a.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let out = lines(node_a.0.stdout.take().unwrap());
    let addr_a = wait_for(&out, "listening on")
        .split_whitespace()
        .nth(3)
        .unwrap()
        .to_string();
    let fp_a = wait_for(&out, "certificate SHA-256")
        .split_whitespace()
        .last()
        .unwrap()
        .to_string();
    // Node B: in this process.
    let dir_b = tempfile::tempdir().unwrap();
    let mut config = RelayConfig::new("127.0.0.1:0".parse().unwrap(), dir_b.path().to_path_buf());
    config.database = Some(url.clone());
    let node_b = Relay::spawn(config).await.unwrap();
    let addr_b = node_b.local_addr().to_string();

    // An enrolled device, enrolled through node A and told of node B.
    let store = backend.store().unwrap();
    let enroll_token = tokio::task::spawn_blocking(move || {
        store.create_token("Acme IT", 3600, 1, tether_relay::clock::now_unix())
    })
    .await
    .unwrap()
    .unwrap()
    .token;
    let device = tempfile::tempdir().unwrap();
    let id = enroll(&EnrollConfig {
        relay: target(&addr_a, &fp_a),
        token: enroll_token,
        data_dir: DataDir::new(device.path()),
        hostname: "failover-host".into(),
    })
    .await
    .unwrap();
    let status = device.path().join("fake-dpkg-status");
    std::fs::write(&status, dpkg("1.0")).unwrap();
    let mut cfg = RunConfig::new(DataDir::new(device.path()));
    cfg.collector.software.dpkg_status = status.clone();
    cfg.collector.software.tool_path = Some(vec![]);
    cfg.interval = Duration::from_secs(3600);
    cfg.backoff_initial = Duration::from_millis(100);
    cfg.backoff_max = Duration::from_millis(400);
    cfg.fallback = vec![target(&addr_b, node_b.fingerprint())];
    let (trigger, trigger_rx) = mpsc::channel(1);
    let (events_tx, mut events) = mpsc::channel(256);
    let stop = CancellationToken::new();
    let service = tokio::spawn(run(cfg, trigger_rx, events_tx, stop.clone()));
    next(&mut events, "report 1 acked", |e| {
        matches!(e, RunEvent::Acked { seq: 1, .. })
    })
    .await;

    let scopes: ScopeSet = "inventory".parse().unwrap();
    let mut share = tether_agent::ShareConfig::new(target(&addr_a, &fp_a));
    share.fallback = vec![target(&addr_b, node_b.fingerprint())];
    let mut agent = TestAgent::spawn_with(share, Some(scopes));
    let first = agent.code().await;
    assert!(
        agent.saw(|e| matches!(e, AgentEvent::Connected { relay } if *relay == addr_a)),
        "the agent starts on node A"
    );

    // kill -9: node A sends nothing more, not even a close.
    node_a.0.kill().unwrap();
    node_a.0.wait().unwrap();
    let killed = Instant::now();
    let second = agent.code().await;
    let took = killed.elapsed();
    eprintln!("new code through node B {took:?} after node A was killed");
    assert_ne!(second, first, "a new code");
    assert!(
        agent.saw(|e| matches!(e, AgentEvent::Connected { relay } if *relay == addr_b)),
        "the new code comes through node B"
    );
    assert!(
        took <= FAILOVER,
        "the new code came {took:?} after node A died (at most {FAILOVER:?})"
    );

    // A technician on node B pairs by the new code; the old one is gone with node A.
    let console = ConsoleConfig {
        relay: target(&addr_b, node_b.fingerprint()),
        token,
    };
    let mut session = tether_console::open_session(&console, second, scopes)
        .await
        .expect("the new code pairs through node B");
    let inventory = session.inventory().await.unwrap();
    assert!(
        inventory.hardware.cpu.cores > 0,
        "a real inventory: {:?}",
        inventory.hardware.cpu
    );
    session.end().await;
    agent.task.await.unwrap().unwrap();

    // The device's next report goes through node B, once.
    std::fs::write(&status, dpkg("1.1")).unwrap();
    trigger.send(()).await.unwrap();
    next(&mut events, "report 2 acked through node B", |e| {
        matches!(
            e,
            RunEvent::Acked {
                seq: 2,
                duplicate: false
            }
        )
    })
    .await;
    assert!(DataDir::new(device.path()).queued().unwrap().is_empty());
    let store = backend.store().unwrap();
    let reports = tokio::task::spawn_blocking(move || store.report_count(&id.device_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reports, 2, "each report stored once");
    stop.cancel();
    service.await.unwrap().unwrap();
    node_b.shutdown().await;
    drop(server);
}
