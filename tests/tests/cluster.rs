//! Two relay nodes on one PostgreSQL database (`serve --database`, a private server from
//! `tether_tests::pg`): a technician registered once works on both, a session served by node A
//! leaves a record that node B finds by search, and `audit verify` passes over the one chain both
//! wrote. The real `tether-relay` binary: `--database` with a wrong password stops a command with
//! the reason and without the password, and `audit verify` reads the cluster's chain.
//!
//! Codes across nodes, with a cluster CA (`cluster init`, `cluster join`): an agent waits on node A
//! and a console that knows only node B pairs by the code (B redirects it to A, which it trusts
//! through the CA) and gets the inventory and a screen frame; a console pinning B's fingerprint
//! cannot follow and says why. Many agents on both nodes never get the same slot, a slot held on A
//! is redirected at the protocol level, a departed agent's slots are released, and an unknown slot
//! gets today's error on either node; a redirect to a node the CA never certified, or a second
//! redirect, is refused by the console with the reason. A node certificate of another cluster stops
//! `serve` with the reason, writing nothing, and one of ours serves.
//!
//! Failover: node A, a real process, killed under a waiting agent and an enrolled device that know
//! node B: a new code through node B within 5 s that pairs there, and the device's next report
//! landing once through node B.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use tether_agent::report::RunEvent;
use tether_console::{ConsoleConfig, records};
use tether_net::{RelayTarget, Trust};
use tether_proto::ScopeSet;
use tether_proto::msg::{TechnicianRole, Tier};
use tether_proto::records::RecordQuery;
use tether_relay::backend::Backend;
use tether_relay::{Relay, RelayConfig, RelayHandle, admin};
use tether_tests::device::TestDevice;
use tether_tests::pg::{PASSWORD, PgServer, node};
use tether_tests::procs::bin;
use tether_tests::{TestAgent, WAIT};

fn console(node: &RelayHandle, token: &str) -> ConsoleConfig {
    ConsoleConfig {
        relay: RelayTarget {
            addr: node.local_addr().to_string(),
            trust: Trust::Fingerprint(node.fingerprint().to_string()),
            connect_timeout: std::time::Duration::from_secs(5),
            direct: Default::default(),
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
        direct: Default::default(),
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

    // A session on node B too: both nodes append to the one chain.
    let mut on_b_agent = TestAgent::spawn_with(
        tether_agent::ShareConfig::new(RelayTarget {
            addr: b.local_addr().to_string(),
            trust: Trust::Fingerprint(b.fingerprint().to_string()),
            connect_timeout: std::time::Duration::from_secs(5),
            direct: Default::default(),
        }),
        Some("inventory".parse().unwrap()),
    );
    let code = on_b_agent.code().await;
    let mut session =
        tether_console::open_session(&on_b, code, "inventory".parse::<ScopeSet>().unwrap())
            .await
            .unwrap();
    session.inventory().await.unwrap();
    session.end().await;
    on_b_agent.task.await.unwrap().unwrap();

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
    assert_eq!(
        events.iter().filter(|e| *e == "session_ended").count(),
        2,
        "one session on each node: {events:?}"
    );
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

/// A UDP port free right now on loopback: a node's address goes into its certificate's node file
/// before the node binds it.
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A cluster: its CA, and a joined node directory per name.
struct Cluster {
    dir: tempfile::TempDir,
    ca: std::path::PathBuf,
}

impl Cluster {
    fn new() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ca = tether_relay::cluster::init(&dir.path().join("ca"))
            .unwrap()
            .cert;
        Cluster { dir, ca }
    }

    fn trust(&self) -> Trust {
        Trust::CaFile(self.ca.clone())
    }

    /// Joins node `name` and serves it on `url`'s database.
    async fn node(&self, name: &str, url: &str) -> RelayHandle {
        let addr = format!("127.0.0.1:{}", free_udp_port());
        let node_dir = self.dir.path().join(name);
        tether_relay::cluster::join(&self.dir.path().join("ca"), name, &addr, &node_dir).unwrap();
        let mut config = RelayConfig::new(
            addr.parse().unwrap(),
            self.dir.path().join(format!("{name}-data")),
        );
        config.database = Some(url.to_string());
        config.node_dir = Some(node_dir);
        config.cluster_ca = Some(self.ca.clone());
        Relay::spawn(config).await.expect("node starts")
    }

    fn target(&self, node: &RelayHandle) -> RelayTarget {
        RelayTarget {
            addr: node.local_addr().to_string(),
            trust: self.trust(),
            connect_timeout: std::time::Duration::from_secs(5),
            direct: Default::default(),
        }
    }
}

fn technician(url: &str) -> String {
    let backend = Backend::open(Some(url), "/".as_ref()).unwrap();
    admin::add_technician_in(
        &backend,
        "Ada Lovelace",
        "Acme IT",
        TechnicianRole::Technician,
        Tier::L1,
        None,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_that_knows_node_b_pairs_with_an_agent_on_node_a() {
    let server = PgServer::start();
    let db = server.database();
    let url = server.url(&db);
    let cluster = Cluster::new();
    let a = cluster.node("node-a", &url).await;
    let b = cluster.node("node-b", &url).await;
    let token = technician(&url);

    let x = tether_tests::Xvfb::start_free();
    assert!(x.cmd("xsetroot", &["-solid", "#3366cc"]).status.success());
    let mut share = tether_agent::ShareConfig::new(cluster.target(&a));
    share.screen = std::sync::Arc::new(tether_agent::screen::ScrapScreen::new(Some(
        x.display.clone(),
    )));
    let scopes: ScopeSet = "view,inventory".parse().unwrap();
    let mut agent = TestAgent::spawn_with(share, Some(scopes));
    let code = agent.code().await;
    assert!(
        code.slot.0 < 1000,
        "codes stay as short as on one relay: {}",
        code.slot
    );

    // Pinning node B's own certificate, the console cannot check node A: it says so, and the
    // redirect consumed nothing.
    let pinned = ConsoleConfig {
        relay: RelayTarget {
            trust: Trust::Fingerprint(b.fingerprint().to_string()),
            ..cluster.target(&b)
        },
        token: token.clone(),
    };
    let e = tether_console::open_session(&pinned, code, scopes)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, tether_console::ConsoleError::Redirect { node, .. } if node == "node-a"),
        "{e:?}"
    );
    assert!(e.to_string().contains("trust the cluster CA"), "{e}");

    // Trusting the cluster CA and knowing only node B, it is sent to node A and pairs there.
    let on_b = ConsoleConfig {
        relay: cluster.target(&b),
        token: token.clone(),
    };
    let mut session = tether_console::open_session(&on_b, code, scopes)
        .await
        .expect("the session opens through node B's redirect");
    assert_eq!(session.granted, scopes);
    assert!(session.record.is_some());
    let inventory = session.inventory().await.unwrap();
    assert!(inventory.collected_unix > 0, "{inventory:?}");
    let mut view = session.view(0).await.unwrap();
    view.next_frame().await.unwrap();
    tether_tests::until_frame_matches(&mut view, "the screenshot", || x.screenshot()).await;
    let p = &view.framebuffer.pixels[..4];
    assert_eq!([p[2], p[1], p[0]], [0x33, 0x66, 0xcc], "the root colour");
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(
        a.metrics().session_attempts.load(Relaxed),
        1,
        "spliced on A"
    );
    assert_eq!(
        b.metrics().session_attempts.load(Relaxed),
        0,
        "B only redirected"
    );
    view.close().await;
    session.end().await;
    agent.task.await.unwrap().unwrap();

    // The code was used on A: on B it is now unknown, as on one relay.
    let e = tether_console::open_session(&on_b, code, scopes)
        .await
        .unwrap_err();
    assert!(
        matches!(e, tether_console::ConsoleError::UnknownCode),
        "{e:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// An agent connection speaking the protocol by hand, holding open slots.
struct RawAgent {
    conn: tether_net::client::RelayConnection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
}

impl RawAgent {
    async fn connect(target: &RelayTarget) -> RawAgent {
        let conn = tether_net::client::connect(target).await.unwrap();
        let (send, recv) =
            tether_net::client::open_control(&conn.conn, tether_proto::msg::Role::Agent)
                .await
                .unwrap();
        RawAgent { conn, send, recv }
    }

    async fn open_slot(&mut self) -> tether_proto::Slot {
        use tether_proto::msg::{AgentToRelay, RelayToAgent};
        tether_net::framed::write_msg(&mut self.send, &AgentToRelay::OpenSlot { reason: None })
            .await
            .unwrap();
        match tether_net::framed::read_msg::<RelayToAgent>(&mut self.recv)
            .await
            .unwrap()
        {
            RelayToAgent::SlotOpened { slot, .. } => slot,
            other => panic!("no slot: {other:?}"),
        }
    }
}

/// The relay's answer to a claim of `slot` on `target`, read off the wire.
async fn raw_claim(
    target: &RelayTarget,
    token: &str,
    slot: tether_proto::Slot,
) -> tether_proto::msg::RelayToConsole {
    use tether_proto::msg::{ConsoleToRelay, RelayToConsole, Role};
    let conn = tether_net::client::connect(target).await.unwrap();
    let (mut send, mut recv) = tether_net::client::open_control(&conn.conn, Role::Console)
        .await
        .unwrap();
    let claim = ConsoleToRelay::Claim {
        slot,
        token: token.into(),
        scopes: "view".parse().unwrap(),
    };
    tether_net::framed::write_msg(&mut send, &claim)
        .await
        .unwrap();
    let answer = tether_net::framed::read_msg::<RelayToConsole>(&mut recv)
        .await
        .unwrap();
    conn.close(0, "done").await;
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_are_unique_across_nodes_and_unknown_ones_say_so_on_both() {
    use tether_proto::msg::{NodeAddress, RelayToConsole};
    let server = PgServer::start();
    let db = server.database();
    let url = server.url(&db);
    let cluster = Cluster::new();
    let a = cluster.node("node-a", &url).await;
    let b = cluster.node("node-b", &url).await;
    let token = technician(&url);

    // 15 agents on each node, 4 codes each: 120 three-digit slots. Drawn by each node alone, some
    // would collide (about 8 pairs expected out of 900 numbers).
    let mut agents = Vec::new();
    let mut slots = std::collections::BTreeMap::new();
    for i in 0..30 {
        let node = if i % 2 == 0 { &a } else { &b };
        let mut agent = RawAgent::connect(&cluster.target(node)).await;
        for _ in 0..4 {
            let slot = agent.open_slot().await;
            assert!((100..1000).contains(&slot.0), "{slot}");
            if let Some(other) = slots.insert(slot, i) {
                panic!("slot {slot} handed to agent {other} and agent {i}");
            }
        }
        agents.push(agent);
    }
    // The synchronous client may not run on an async worker: `offload`, as the relay does.
    let rows = || -> i64 {
        tether_relay::pg::offload(|| {
            let mut c = server.client(&db);
            c.query_one("SELECT count(*) FROM held_slots", &[])
                .unwrap()
                .get(0)
        })
    };
    assert_eq!(rows(), 120);

    // A slot held on A, claimed on B: a redirect naming A, at the protocol level.
    let (held_on_a, _) = slots.iter().find(|(_, i)| **i % 2 == 0).unwrap();
    assert_eq!(
        raw_claim(&cluster.target(&b), &token, *held_on_a).await,
        RelayToConsole::Redirect(NodeAddress {
            node: "node-a".into(),
            addr: a.local_addr().to_string(),
        })
    );

    // A slot nobody holds: the same refusal as on one relay, on either node.
    let unknown = (100..1000)
        .map(tether_proto::Slot)
        .find(|s| !slots.contains_key(s))
        .unwrap();
    let mut refusals = Vec::new();
    for node in [&a, &b] {
        match raw_claim(&cluster.target(node), &token, unknown).await {
            RelayToConsole::Error(e) => refusals.push(e),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(refusals[0], refusals[1]);
    assert_eq!(
        refusals[0].kind,
        tether_proto::msg::RelayErrorKind::UnknownSlot
    );
    assert_eq!(
        refusals[0].message,
        tether_relay::claim::message(tether_proto::msg::RelayErrorKind::UnknownSlot)
    );
    let console = ConsoleConfig {
        relay: cluster.target(&b),
        token: token.clone(),
    };
    let code = tether_proto::SessionCode::new(unknown, &mut rand::thread_rng());
    let e = tether_console::open_session(&console, code, "view".parse().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(e, tether_console::ConsoleError::UnknownCode),
        "{e:?}"
    );

    // A row naming a node this cluster's CA never issued (at node A's address, whose certificate
    // names node-a): the console refuses to claim there, and says why.
    let forged = (100..1000)
        .map(tether_proto::Slot)
        .find(|s| !slots.contains_key(s) && *s != unknown)
        .unwrap();
    let a_addr = a.local_addr().to_string();
    tether_relay::pg::offload(|| {
        let now = i64::try_from(tether_relay::now_unix()).unwrap();
        server
            .client(&db)
            .execute(
                "INSERT INTO held_slots VALUES ($1, 'node-z', $2, $3, $4)",
                &[&i64::from(forged.0), &a_addr, &(now + 600), &(now + 1200)],
            )
            .unwrap();
    });
    let code = tether_proto::SessionCode::new(forged, &mut rand::thread_rng());
    let e = tether_console::open_session(&console, code, "view".parse().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, tether_console::ConsoleError::Redirect { node, addr, .. }
            if node == "node-z" && *addr == a_addr),
        "{e:?}"
    );
    assert!(e.to_string().contains("cannot connect"), "{e}");

    // An agent that leaves gives its slots back to the cluster.
    let gone = agents.remove(0);
    gone.conn.close(0, "bye").await;
    tokio::time::timeout(WAIT, async {
        while rows() != 117 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the departed agent's 4 slots are released");
    drop(agents);
    a.shutdown().await;
    b.shutdown().await;
}

/// `cluster init` makes a CA once; `cluster join` refuses bad names; `serve` with a node certificate
/// of another cluster stops with the reason, writing nothing (through the real binary).
#[test]
fn a_node_certificate_of_another_cluster_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let relay = |args: &[&str]| {
        Command::new(bin("tether-relay"))
            .args(args)
            .env_remove("TETHER_RELAY_DATABASE")
            .env_remove("TETHER_RELAY_CONFIG")
            .output()
            .unwrap()
    };
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();

    let out = relay(&["cluster", "init", "--dir", &p("ours")]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let fingerprint =
        tether_net::tls::pem_fingerprint(&dir.path().join("ours/cluster-ca.pem")).unwrap();
    assert!(stdout.contains(&fingerprint), "{stdout}");
    let key = std::fs::read(dir.path().join("ours/cluster-ca-key.pem")).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("ours/cluster-ca-key.pem"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "the CA key is owner-only");
    let again = relay(&["cluster", "init", "--dir", &p("ours")]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already exists"),
        "{again:?}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("ours/cluster-ca-key.pem")).unwrap(),
        key,
        "never overwritten"
    );

    let bad = relay(&[
        "cluster",
        "join",
        "--ca-dir",
        &p("ours"),
        "--name",
        "Node A",
        "--addr",
        "127.0.0.1:4433",
        "--out",
        &p("bad"),
    ]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("node name \"Node A\" is not valid"),
        "{bad:?}"
    );
    assert!(!dir.path().join("bad").exists());

    // Our own node starts, as a cluster node on the database, and says how to trust it.
    let ours = relay(&[
        "cluster",
        "join",
        "--ca-dir",
        &p("ours"),
        "--name",
        "node-y",
        "--addr",
        "127.0.0.1:4433",
        "--out",
        &p("node-y"),
    ]);
    assert!(ours.status.success(), "{ours:?}");
    let server = PgServer::start();
    let db = server.database();
    let mut serving = tether_tests::procs::Kill(
        Command::new(bin("tether-relay"))
            .args(["--database", &server.url(&db), "--data-dir", &p("data-y")])
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--node-dir",
                &p("node-y"),
            ])
            .args(["--cluster-ca", &p("ours/cluster-ca.pem")])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let out = tether_tests::procs::lines(serving.0.stdout.take().unwrap());
    let line = tether_tests::procs::wait_for(&out, "cluster node:");
    assert!(
        line.contains("node-y") && line.contains("127.0.0.1:4433"),
        "{line}"
    );
    tether_tests::procs::wait_for(
        &out,
        &format!("TETHER_RELAY_CA_FILE={}", p("ours/cluster-ca.pem")),
    );
    drop(serving);

    // A node of another cluster, served with our CA named.
    assert!(
        relay(&["cluster", "init", "--dir", &p("theirs")])
            .status
            .success()
    );
    let joined = relay(&[
        "cluster",
        "join",
        "--ca-dir",
        &p("theirs"),
        "--name",
        "node-x",
        "--addr",
        "127.0.0.1:4433",
        "--out",
        &p("node-x"),
    ]);
    assert!(joined.status.success(), "{joined:?}");
    let out = relay(&[
        "--data-dir",
        &p("data"),
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--node-dir",
        &p("node-x"),
        "--cluster-ca",
        &p("ours/cluster-ca.pem"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr.contains("was not issued by the cluster CA") && stderr.contains("node-x"),
        "{stderr}"
    );
    assert!(!dir.path().join("data").exists(), "nothing written");

    // A CA without a node to check, and a public address without a cluster, are mistakes too.
    for (args, words) in [
        (
            vec!["--cluster-ca", "ours/cluster-ca.pem"],
            "--cluster-ca (cluster_ca) needs --node-dir",
        ),
        (
            vec!["--public-addr", "relay.example:4433"],
            "it needs --database",
        ),
    ] {
        let mut full = vec!["--data-dir".to_string(), p("data"), "serve".into()];
        full.extend(["--listen".into(), "127.0.0.1:0".into()]);
        full.extend(args.iter().map(|a| match *a {
            "ours/cluster-ca.pem" => p(a),
            other => other.to_string(),
        }));
        let out = relay(&full.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(!out.status.success(), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(words),
            "{out:?}"
        );
        assert!(!dir.path().join("data").exists(), "nothing written");
    }

    // The same named in the config file.
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "node_dir = {:?}\ncluster_ca = {:?}\n",
            p("node-x"),
            p("ours/cluster-ca.pem")
        ),
    )
    .unwrap();
    let out = relay(&[
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        &p("data"),
        "serve",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("was not issued by the cluster CA"),
        "{out:?}"
    );
    assert!(!dir.path().join("data").exists(), "nothing written");
}

/// How soon a waiting agent must show a new code through another node after its node died.
const FAILOVER: std::time::Duration = std::time::Duration::from_secs(5);

/// Node A is a real `tether-relay serve` process of the cluster, killed with SIGKILL (it sends
/// nothing more, not even a close) under an agent that waits with a code and an enrolled device,
/// both knowing node B. The agent shows a new code through node B within [`FAILOVER`], and a
/// console on node B pairs with it and reads the inventory; the device's next report lands once
/// through node B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_s_waiting_agent_and_device_move_to_another_node() {
    let server = PgServer::start();
    let db = server.database();
    let url = server.url(&db);
    let cluster = Cluster::new();
    let token = technician(&url);

    // Node A: joined like any node, served by the real binary so that it can be killed.
    let addr_a = format!("127.0.0.1:{}", free_udp_port());
    let dir_a = cluster.dir.path().join("node-a");
    tether_relay::cluster::join(&cluster.dir.path().join("ca"), "node-a", &addr_a, &dir_a).unwrap();
    let mut node_a = tether_tests::procs::Kill(
        Command::new(bin("tether-relay"))
            .args(["--database", &url, "--data-dir"])
            .arg(cluster.dir.path().join("node-a-data"))
            .args(["serve", "--listen", &addr_a, "--node-dir"])
            .arg(&dir_a)
            .arg("--cluster-ca")
            .arg(&cluster.ca)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let out = tether_tests::procs::lines(node_a.0.stdout.take().unwrap());
    tether_tests::procs::wait_for(&out, "listening on");
    let b = cluster.node("node-b", &url).await;
    let addr_b = b.local_addr().to_string();
    let on_a = RelayTarget {
        addr: addr_a.clone(),
        trust: cluster.trust(),
        connect_timeout: std::time::Duration::from_secs(5),
        direct: Default::default(),
    };

    // An enrolled device, enrolled through node A and told of node B.
    let store = Backend::open(Some(&url), "/".as_ref())
        .unwrap()
        .store()
        .unwrap();
    let (tokens, now) = (store.clone(), tether_relay::clock::now_unix());
    let enroll_token =
        tokio::task::spawn_blocking(move || tokens.create_token("Acme IT", 3600, 1, now))
            .await
            .unwrap()
            .unwrap()
            .token;
    let mut device = TestDevice::enroll(
        on_a.clone(),
        enroll_token,
        "failover-host",
        vec![cluster.target(&b)],
    )
    .await;
    device
        .next("report 1 acked", |e| {
            matches!(e, RunEvent::Acked { seq: 1, .. })
        })
        .await;

    // A waiting agent on node A that knows node B.
    let mut share = tether_agent::ShareConfig::new(on_a);
    share.other_relays = vec![addr_b.clone()];
    let scopes: ScopeSet = "inventory".parse().unwrap();
    let mut agent = TestAgent::spawn_with(share, Some(scopes));
    let first = agent.code().await;

    node_a.0.kill().unwrap();
    node_a.0.wait().unwrap();
    let killed = std::time::Instant::now();
    let second = agent.code().await;
    let took = killed.elapsed();
    eprintln!("new code through node B {took:?} after node A was killed");
    assert_ne!(second, first, "a new code");
    assert!(
        agent.saw(
            |e| matches!(e, tether_agent::ui::AgentEvent::Connected { relay } if *relay == addr_b)
        ),
        "the new code comes from node B"
    );
    assert!(
        took <= FAILOVER,
        "the new code came {took:?} after node A died (at most {FAILOVER:?})"
    );
    let on_b = ConsoleConfig {
        relay: cluster.target(&b),
        token,
    };
    let mut session = tether_console::open_session(&on_b, second, scopes)
        .await
        .expect("the new code works on node B");
    let inventory = session.inventory().await.unwrap();
    assert!(inventory.hardware.cpu.cores > 0, "a real inventory");
    session.end().await;
    agent.task.await.unwrap().unwrap();

    // The device's next report goes through node B, once.
    device.report("1.1").await;
    let reports = device
        .stored(2, "report 2 acked through node B", store)
        .await;
    assert_eq!(reports, 2, "each report stored once");
    device.stop().await;
    b.shutdown().await;
}

/// Nodes that disagree about who holds a code (here: two databases, each with a forged row naming
/// the other node) send the console round; it follows one redirect, not a second, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_redirect_is_an_error() {
    let server = PgServer::start();
    let (db_a, db_b) = (server.database(), server.database());
    let cluster = Cluster::new();
    let a = cluster.node("node-a", &server.url(&db_a)).await;
    let b = cluster.node("node-b", &server.url(&db_b)).await;
    let token = technician(&server.url(&db_b));
    let slot = tether_proto::Slot(417);
    let forge = |db: &str, node: &str, addr: String| {
        tether_relay::pg::offload(|| {
            let now = i64::try_from(tether_relay::now_unix()).unwrap();
            server
                .client(db)
                .execute(
                    "INSERT INTO held_slots VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &i64::from(slot.0),
                        &node,
                        &addr,
                        &(now + 600),
                        &(now + 1200),
                    ],
                )
                .unwrap();
        })
    };
    forge(&db_b, "node-a", a.local_addr().to_string());
    forge(&db_a, "node-b", b.local_addr().to_string());
    // Node A checks the token in its own database: the same technician row goes there too.
    tether_relay::pg::offload(|| {
        let mut c = server.client(&db_b);
        let rows = c
            .query(
                "SELECT name, org, role, tier, token_sha256, created_unix FROM technicians",
                &[],
            )
            .unwrap();
        let mut ca = server.client(&db_a);
        for r in rows {
            let (name, org, role, tier, sha, created): (
                String,
                String,
                String,
                String,
                String,
                i64,
            ) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
            ca.execute(
                "INSERT INTO technicians (name, org, role, tier, token_sha256, created_unix)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&name, &org, &role, &tier, &sha, &created],
            )
            .unwrap();
        }
    });
    let console = ConsoleConfig {
        relay: cluster.target(&b),
        token,
    };
    let code = tether_proto::SessionCode::new(slot, &mut rand::thread_rng());
    let e = tether_console::open_session(&console, code, "view".parse().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, tether_console::ConsoleError::Redirect { node, .. } if node == "node-a"),
        "{e:?}"
    );
    assert!(e.to_string().contains("sent it on again, to node-b"), "{e}");
    a.shutdown().await;
    b.shutdown().await;
}

/// `tether-relay --database URL status` shows the cluster: the database reachable, each node with
/// the codes it holds; with the database stopped it says so and exits with an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_nodes_and_the_database() {
    let mut server = PgServer::start();
    let db = server.database();
    let url = server.url(&db);
    let cluster = Cluster::new();
    let a = cluster.node("node-a", &url).await;
    let b = cluster.node("node-b", &url).await;
    let mut waiting = Vec::new();
    for node in [&a, &b, &b] {
        let mut agent =
            TestAgent::spawn_with(tether_agent::ShareConfig::new(cluster.target(node)), None);
        agent.code().await;
        waiting.push(agent);
    }
    let status = |url: String| {
        tokio::task::spawn_blocking(move || {
            Command::new(bin("tether-relay"))
                .args(["--database", &url, "--data-dir", "/nonexistent", "status"])
                .output()
                .unwrap()
        })
    };
    let out = status(url.clone()).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("reachable") && text.contains("2 node(s)"),
        "{text}"
    );
    let line = |name: &str| {
        text.lines()
            .find(|l| l.contains(&format!("node {name} at ")))
            .unwrap_or_else(|| panic!("no line for {name}: {text}"))
            .to_string()
    };
    assert!(line("node-a").ends_with(": 1 open code(s)"), "{text}");
    assert!(line("node-b").ends_with(": 2 open code(s)"), "{text}");
    assert!(!text.contains(PASSWORD), "never the password: {text}");

    tokio::task::block_in_place(|| server.stop());
    let out = status(url).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{out:?}");
    eprintln!("{text}");
    assert!(text.contains("database: UNAVAILABLE"), "{text}");
    assert!(!text.contains(PASSWORD), "never the password: {text}");
    drop(waiting);
    a.shutdown().await;
    b.shutdown().await;
}
