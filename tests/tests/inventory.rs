//! Enrolled devices end to end over real QUIC on loopback: enrollment, reports queued on disk,
//! deltas, the SQLite fleet store, the console's fleet queries, relay restarts and bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tether_agent::enroll::{DataDir, EnrollConfig, EnrollError, Identity, enroll};
use tether_agent::report::{RunConfig, RunEvent, run};
use tether_console::{ConsoleConfig, ConsoleError};
use tether_net::{RelayTarget, Trust, client, framed};
use tether_proto::codec;
use tether_proto::fleet::{
    ChangeKind, DeviceToRelay, FleetErrorKind, FleetQuery, FleetReply, RelayToDevice, Report,
    ReportBody,
};
use tether_proto::msg::Role;
use tether_relay::store::Store;
use tether_relay::technicians::Technicians;
use tether_relay::{Relay, RelayConfig, RelayHandle};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn target(relay: &RelayHandle, addr: SocketAddr) -> RelayTarget {
    RelayTarget {
        addr: addr.to_string(),
        trust: Trust::Fingerprint(relay.fingerprint().to_string()),
        connect_timeout: Duration::from_secs(5),
        direct: Default::default(),
    }
}

async fn start(dir: &Path, addr: SocketAddr) -> RelayHandle {
    Relay::spawn(RelayConfig::new(addr, dir.to_path_buf()))
        .await
        .unwrap()
}

fn dpkg_status(pkgs: &[(&str, &str)]) -> String {
    pkgs.iter()
        .map(|(n, v)| {
            format!(
                "Package: {n}\nStatus: install ok installed\nArchitecture: amd64\nVersion: {v}\nDescription: test\n"
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn next(
    events: &mut mpsc::Receiver<RunEvent>,
    what: &str,
    pred: impl Fn(&RunEvent) -> bool,
) -> RunEvent {
    tokio::time::timeout(WAIT, async {
        loop {
            let e = events
                .recv()
                .await
                .unwrap_or_else(|| panic!("service mode stopped waiting for {what}"));
            if pred(&e) {
                return e;
            }
            eprintln!("(skipping {e:?})");
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

async fn fleet(cfg: &ConsoleConfig, q: FleetQuery) -> Result<Vec<FleetReply>, ConsoleError> {
    tether_console::fleet::query(cfg, q).await
}

async fn enroll_in(target: &RelayTarget, token: &str, dir: &Path) -> Result<Identity, EnrollError> {
    enroll(&EnrollConfig {
        relay: target.clone(),
        token: token.to_string(),
        data_dir: DataDir::new(dir),
        hostname: "test-host".into(),
    })
    .await
}

#[tokio::test]
async fn enroll_report_delta_history_and_restart() {
    let relay_dir = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let tech = Technicians::new(relay_dir.path())
        .add("Ada", "Acme IT")
        .unwrap();
    let relay = start(relay_dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let addr = relay.local_addr();
    let tgt = target(&relay, addr);
    let console = ConsoleConfig {
        relay: tgt.clone(),
        token: tech,
    };
    let token = relay
        .store()
        .create_token("Acme IT", 3600, 1, now())
        .unwrap()
        .token;

    // Enrollment stores an owner-only identity; the token cannot be used twice.
    let id = enroll_in(&tgt, &token, agent_dir.path()).await.unwrap();
    assert_eq!(id.org, "Acme IT");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(agent_dir.path().join("identity.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let other = tempfile::tempdir().unwrap();
    match enroll_in(&tgt, &token, other.path()).await {
        Err(EnrollError::Refused(e)) => assert_eq!(e.kind, FleetErrorKind::TokenUsed),
        r => panic!("replayed token: {r:?}"),
    }
    assert!(!other.path().join("identity.json").exists());

    // Service mode with a fake dpkg database.
    let status = agent_dir.path().join("fake-dpkg-status");
    std::fs::write(
        &status,
        dpkg_status(&[("alpha", "1.0"), ("beta", "2.0"), ("gamma", "3.0")]),
    )
    .unwrap();
    let mut cfg = RunConfig::new(DataDir::new(agent_dir.path()));
    cfg.collector.software.dpkg_status = status.clone();
    cfg.collector.software.tool_path = Some(vec![]);
    cfg.interval = Duration::from_secs(3600);
    cfg.backoff_initial = Duration::from_millis(100);
    cfg.backoff_max = Duration::from_millis(400);
    let (trigger, trigger_rx) = mpsc::channel(1);
    let (events_tx, mut events) = mpsc::channel(64);
    let stop = CancellationToken::new();
    let task = tokio::spawn(run(cfg, trigger_rx, events_tx, stop.clone()));

    next(&mut events, "full report queued", |e| {
        matches!(
            e,
            RunEvent::Queued {
                seq: 1,
                delta: false,
                ..
            }
        )
    })
    .await;
    next(&mut events, "report 1 acked", |e| {
        matches!(
            e,
            RunEvent::Acked {
                seq: 1,
                duplicate: false
            }
        )
    })
    .await;

    let devices = match fleet(&console, FleetQuery::ListDevices)
        .await
        .unwrap()
        .as_slice()
    {
        [FleetReply::Devices(d)] => d.clone(),
        r => panic!("{r:?}"),
    };
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].device_id, id.device_id);
    assert_eq!(devices[0].packages, 3);
    assert_eq!(devices[0].last_seq, Some(1));

    // One package upgraded, one installed: the next report is a small delta.
    std::fs::write(
        &status,
        dpkg_status(&[
            ("alpha", "1.1"),
            ("beta", "2.0"),
            ("gamma", "3.0"),
            ("delta", "0.1"),
        ]),
    )
    .unwrap();
    trigger.send(()).await.unwrap();
    match next(&mut events, "delta queued", |e| {
        matches!(e, RunEvent::Queued { seq: 2, .. })
    })
    .await
    {
        RunEvent::Queued { delta, bytes, .. } => {
            assert!(delta, "second report must be a delta");
            assert!(bytes <= 1024, "delta of {bytes} bytes");
        }
        _ => unreachable!(),
    }
    next(&mut events, "report 2 acked", |e| {
        matches!(e, RunEvent::Acked { seq: 2, .. })
    })
    .await;
    let history = match fleet(
        &console,
        FleetQuery::History {
            // By host name: the one the device reported, which replaced the enrollment one.
            device: tether_agent::inventory::Collector::default()
                .hardware()
                .system
                .hostname,
        },
    )
    .await
    .unwrap()
    .as_slice()
    {
        [FleetReply::History(h)] => h.clone(),
        r => panic!("{r:?}"),
    };
    assert_eq!(history[0].kind, ChangeKind::FirstReport);
    let of2: Vec<_> = history.iter().filter(|c| c.seq == 2).collect();
    assert!(
        of2.iter().any(|c| c.kind == ChangeKind::Upgraded
            && c.item == "dpkg:alpha:amd64"
            && c.old.as_deref() == Some("1.0")
            && c.new.as_deref() == Some("1.1")),
        "{of2:?}"
    );
    assert!(
        of2.iter()
            .any(|c| c.kind == ChangeKind::Installed && c.item == "dpkg:delta:amd64"),
        "{of2:?}"
    );
    assert!(!of2.iter().any(|c| c.item.contains("beta")));

    // Search by name and by name=version.
    match fleet(
        &console,
        FleetQuery::Search {
            name: "alpha".into(),
            version: Some("1.1".into()),
        },
    )
    .await
    .unwrap()
    .as_slice()
    {
        [FleetReply::Hits(h)] => assert_eq!(h.len(), 1),
        r => panic!("{r:?}"),
    }
    match fleet(
        &console,
        FleetQuery::Search {
            name: "alpha".into(),
            version: Some("1.0".into()),
        },
    )
    .await
    .unwrap()
    .as_slice()
    {
        [FleetReply::Hits(h)] => assert!(h.is_empty()),
        r => panic!("{r:?}"),
    }
    // Export: one device, with its inventory; the software sheet has a row per package.
    let export = fleet(&console, FleetQuery::Export).await.unwrap();
    let devices: Vec<_> = export
        .iter()
        .filter_map(|r| match r {
            FleetReply::Device(d) => Some((**d).clone()),
            _ => None,
        })
        .collect();
    assert_eq!(devices.len(), 1);
    let csv = tether_console::fleet::software_csv(&devices);
    assert_eq!(csv.lines().count(), 1 + 4, "{csv}");
    assert!(csv.lines().any(|l| l.contains(",alpha,1.1,dpkg,")), "{csv}");
    let sheet = tether_console::fleet::devices_csv(&devices);
    assert_eq!(sheet.lines().count(), 1 + 1, "one row per device: {sheet}");

    // The relay stops; a report made meanwhile waits on disk and arrives after the restart, once.
    relay.shutdown().await;
    next(&mut events, "disconnect", |e| {
        matches!(e, RunEvent::Disconnected { .. })
    })
    .await;
    std::fs::write(
        &status,
        dpkg_status(&[("alpha", "1.1"), ("gamma", "3.0"), ("delta", "0.1")]),
    )
    .unwrap();
    trigger.send(()).await.unwrap();
    next(&mut events, "report 3 queued offline", |e| {
        matches!(e, RunEvent::Queued { seq: 3, .. })
    })
    .await;
    assert_eq!(DataDir::new(agent_dir.path()).queued().unwrap().len(), 1);
    let relay = start(relay_dir.path(), addr).await;
    next(&mut events, "report 3 acked after restart", |e| {
        matches!(
            e,
            RunEvent::Acked {
                seq: 3,
                duplicate: false
            }
        )
    })
    .await;
    assert!(DataDir::new(agent_dir.path()).queued().unwrap().is_empty());
    let store = relay.store();
    assert_eq!(store.report_count(&id.device_id).unwrap(), 3);
    let history = store.history("Acme IT", &id.device_id).unwrap();
    let removed: Vec<_> = history
        .iter()
        .filter(|c| c.kind == ChangeKind::Removed)
        .collect();
    assert_eq!(removed.len(), 1, "{history:?}");
    assert_eq!(
        (removed[0].seq, removed[0].item.as_str()),
        (3, "dpkg:beta:amd64")
    );

    stop.cancel();
    task.await.unwrap().unwrap();

    // The agent's idea of the relay's last report diverged (a restored backup, say): on connect it
    // notices, sends one full report instead of a delta that would not apply, and the relay records
    // no spurious changes.
    let dd = DataDir::new(agent_dir.path());
    let mut state = dd.state().unwrap();
    assert_eq!((state.base_seq, state.next_seq), (Some(3), 4));
    state.base_seq = Some(2);
    dd.save_state(&state).unwrap();
    let changes_before = store.history("Acme IT", &id.device_id).unwrap().len();
    let mut cfg = RunConfig::new(DataDir::new(agent_dir.path()));
    cfg.collector.software.dpkg_status = status.clone();
    cfg.collector.software.tool_path = Some(vec![]);
    cfg.backoff_initial = Duration::from_millis(100);
    let (_trigger, trigger_rx) = mpsc::channel(1);
    let (events_tx, mut events) = mpsc::channel(64);
    let stop = CancellationToken::new();
    let task = tokio::spawn(run(cfg, trigger_rx, events_tx, stop.clone()));
    next(&mut events, "full report 4 acked", |e| {
        matches!(
            e,
            RunEvent::Acked {
                seq: 4,
                duplicate: false
            }
        )
    })
    .await;
    assert_eq!(store.report_count(&id.device_id).unwrap(), 4);
    assert_eq!(
        store.history("Acme IT", &id.device_id).unwrap().len(),
        changes_before
    );
    stop.cancel();
    task.await.unwrap().unwrap();
    relay.shutdown().await;
}

/// A raw device connection, authenticated as `id`.
async fn device_conn(
    tgt: &RelayTarget,
    id: &Identity,
) -> (
    client::RelayConnection,
    quinn::SendStream,
    quinn::RecvStream,
) {
    let relay = client::connect(tgt).await.unwrap();
    let (mut send, mut recv) = client::open_control(&relay.conn, Role::Device)
        .await
        .unwrap();
    framed::write_msg(
        &mut send,
        &DeviceToRelay::Auth {
            device_id: id.device_id.clone(),
            secret: id.secret.clone(),
        },
    )
    .await
    .unwrap();
    match framed::read_msg::<RelayToDevice>(&mut recv).await.unwrap() {
        RelayToDevice::Authenticated { .. } => {}
        r => panic!("{r:?}"),
    }
    (relay, send, recv)
}

async fn send_report(
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    r: &Report,
) -> RelayToDevice {
    framed::write_msg(send, &DeviceToRelay::Report(r.clone()))
        .await
        .unwrap();
    tokio::time::timeout(WAIT, framed::read_msg::<RelayToDevice>(recv))
        .await
        .unwrap()
        .unwrap()
}

fn rejected(r: RelayToDevice) -> FleetErrorKind {
    match r {
        RelayToDevice::Rejected { error, .. } => error.kind,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_reports_and_tokens_are_rejected_and_change_nothing() {
    let relay_dir = tempfile::tempdir().unwrap();
    let acme = Technicians::new(relay_dir.path())
        .add("Ada", "Acme IT")
        .unwrap();
    let globex = Technicians::new(relay_dir.path())
        .add("Hank", "Globex")
        .unwrap();
    let relay = start(relay_dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let tgt = target(&relay, relay.local_addr());
    let store = relay.store();

    // Unknown and expired tokens.
    let d0 = tempfile::tempdir().unwrap();
    match enroll_in(&tgt, "et_nonsense", d0.path()).await {
        Err(EnrollError::Refused(e)) => assert_eq!(e.kind, FleetErrorKind::UnknownToken),
        r => panic!("{r:?}"),
    }
    let expired = store
        .create_token("Acme IT", 10, 1, now() - 100)
        .unwrap()
        .token;
    match enroll_in(&tgt, &expired, d0.path()).await {
        Err(EnrollError::Refused(e)) => assert_eq!(e.kind, FleetErrorKind::TokenExpired),
        r => panic!("{r:?}"),
    }

    let token = store.create_token("Acme IT", 3600, 2, now()).unwrap().token;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = enroll_in(&tgt, &token, da.path()).await.unwrap();
    let b = enroll_in(&tgt, &token, db.path()).await.unwrap();
    let inv = tether_agent::inventory::collect();
    let full = |device: &Identity, seq| Report {
        device_id: device.device_id.clone(),
        seq,
        digest: inv.digest(),
        body: ReportBody::Full(Box::new(inv.clone())),
    };

    let (conn, mut send, mut recv) = device_conn(&tgt, &a).await;
    // A reports for B.
    assert_eq!(
        rejected(send_report(&mut send, &mut recv, &full(&b, 1)).await),
        FleetErrorKind::WrongDevice
    );
    // Tampered: content changed after the digest was taken.
    let mut tampered = full(&a, 1);
    if let ReportBody::Full(i) = &mut tampered.body {
        i.hardware.memory.total += 1;
    }
    assert_eq!(
        rejected(send_report(&mut send, &mut recv, &tampered).await),
        FleetErrorKind::DigestMismatch
    );
    // A delta before any full report has no base.
    let delta = Report {
        device_id: a.device_id.clone(),
        seq: 2,
        digest: inv.digest(),
        body: ReportBody::Delta {
            base_seq: 1,
            delta: Box::new(inv.delta_from(&inv)),
        },
    };
    assert_eq!(
        rejected(send_report(&mut send, &mut recv, &delta).await),
        FleetErrorKind::BaseMismatch
    );
    assert_eq!(store.report_count(&a.device_id).unwrap(), 0);
    assert_eq!(store.report_count(&b.device_id).unwrap(), 0);
    assert!(store.history("Acme IT", &a.device_id).unwrap().is_empty());

    // A good report, then the same one again (a lost ack): stored once.
    assert_eq!(
        send_report(&mut send, &mut recv, &full(&a, 1)).await,
        RelayToDevice::Ack {
            seq: 1,
            duplicate: false
        }
    );
    assert_eq!(
        send_report(&mut send, &mut recv, &full(&a, 1)).await,
        RelayToDevice::Ack {
            seq: 1,
            duplicate: true
        }
    );
    assert_eq!(store.report_count(&a.device_id).unwrap(), 1);
    // A tampered delta on a real base.
    let mut next_inv = inv.clone();
    next_inv.software.packages.pop();
    let mut bad_delta = Report {
        device_id: a.device_id.clone(),
        seq: 2,
        digest: next_inv.digest(),
        body: ReportBody::Delta {
            base_seq: 1,
            delta: Box::new(next_inv.delta_from(&inv)),
        },
    };
    if let ReportBody::Delta { delta, .. } = &mut bad_delta.body {
        delta.status.uptime_secs += 1;
    }
    assert_eq!(
        rejected(send_report(&mut send, &mut recv, &bad_delta).await),
        FleetErrorKind::DigestMismatch
    );
    let before = store.history("Acme IT", &a.device_id).unwrap();

    // Truncated: a frame whose body is half a report. The relay closes this connection.
    let body = codec::to_body(&DeviceToRelay::Report(full(&a, 2))).unwrap();
    framed::write_frame(&mut send, &body[..body.len() / 2])
        .await
        .unwrap();
    let closed = tokio::time::timeout(WAIT, conn.conn.closed())
        .await
        .unwrap();
    assert!(closed.to_string().contains("protocol error"), "{closed}");
    assert_eq!(store.report_count(&a.device_id).unwrap(), 1);
    assert_eq!(store.history("Acme IT", &a.device_id).unwrap(), before);

    // The relay still serves; a wrong secret is refused.
    let wrong = Identity {
        secret: "00".repeat(32),
        ..a.clone()
    };
    let c = client::connect(&tgt).await.unwrap();
    let (mut s, mut r) = client::open_control(&c.conn, Role::Device).await.unwrap();
    framed::write_msg(
        &mut s,
        &DeviceToRelay::Auth {
            device_id: wrong.device_id.clone(),
            secret: wrong.secret.clone(),
        },
    )
    .await
    .unwrap();
    match framed::read_msg::<RelayToDevice>(&mut r).await.unwrap() {
        RelayToDevice::Error(e) => assert_eq!(e.kind, FleetErrorKind::BadDeviceCredentials),
        other => panic!("{other:?}"),
    }

    // Another org sees none of it; a bad technician token is refused.
    let globex_cfg = ConsoleConfig {
        relay: tgt.clone(),
        token: globex,
    };
    match fleet(&globex_cfg, FleetQuery::ListDevices)
        .await
        .unwrap()
        .as_slice()
    {
        [FleetReply::Devices(d)] => assert!(d.is_empty()),
        r => panic!("{r:?}"),
    }
    match fleet(
        &globex_cfg,
        FleetQuery::ShowDevice {
            device: a.device_id.clone(),
        },
    )
    .await
    {
        Err(ConsoleError::Fleet(e)) => assert_eq!(e.kind, FleetErrorKind::UnknownDevice),
        r => panic!("{r:?}"),
    }
    let bad_cfg = ConsoleConfig {
        relay: tgt.clone(),
        token: "tt_bad".into(),
    };
    match fleet(&bad_cfg, FleetQuery::ListDevices).await {
        Err(ConsoleError::Fleet(e)) => assert_eq!(e.kind, FleetErrorKind::BadToken),
        r => panic!("{r:?}"),
    }
    let acme_cfg = ConsoleConfig {
        relay: tgt,
        token: acme,
    };
    match fleet(&acme_cfg, FleetQuery::ListDevices)
        .await
        .unwrap()
        .as_slice()
    {
        [FleetReply::Devices(d)] => assert_eq!(d.len(), 2),
        r => panic!("{r:?}"),
    }
    let _: Arc<dyn Store> = store;
    let _ = PathBuf::new();
    relay.shutdown().await;
}

fn resync(r: RelayToDevice) -> (u64, FleetErrorKind) {
    match r {
        RelayToDevice::Resync {
            expected, error, ..
        } => (expected, error.kind),
        other => panic!("expected a resync, got {other:?}"),
    }
}

fn with_package(
    inv: &tether_proto::inventory::Inventory,
    name: &str,
    version: &str,
) -> tether_proto::inventory::Inventory {
    let mut inv = inv.clone();
    inv.software
        .packages
        .push(tether_proto::inventory::Package {
            source: tether_proto::inventory::PackageSource::Dpkg,
            name: name.into(),
            arch: "amd64".into(),
            version: version.into(),
        });
    inv
}

/// What the fleet holds for `device` right now.
fn fleet_inventory(relay: &RelayHandle, device: &str) -> tether_proto::inventory::Inventory {
    relay
        .store()
        .device("Acme IT", device)
        .unwrap()
        .inventory
        .expect("the device has reported")
}

/// A fake device speaking the fleet protocol over real QUIC: crafted numbers (2^63, u64::MAX, 0, a
/// jump, a reused number with other content, an older number) are never acknowledged as stored, and
/// the relay says which number it expects; the next honest report is stored and is what the fleet
/// shows.
#[tokio::test]
async fn crafted_sequence_numbers_never_lose_a_report() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = start(relay_dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let tgt = target(&relay, relay.local_addr());
    let store = relay.store();
    let token = store.create_token("Acme IT", 3600, 1, now()).unwrap().token;
    let dir = tempfile::tempdir().unwrap();
    let a = enroll_in(&tgt, &token, dir.path()).await.unwrap();
    let base = tether_agent::inventory::collect();
    let report = |seq, inv: &tether_proto::inventory::Inventory| Report {
        device_id: a.device_id.clone(),
        seq,
        digest: inv.digest(),
        body: ReportBody::Full(Box::new(inv.clone())),
    };
    let (_conn, mut send, mut recv) = device_conn(&tgt, &a).await;
    let one = with_package(&base, "one", "1");
    assert_eq!(
        send_report(&mut send, &mut recv, &report(1, &one)).await,
        RelayToDevice::Ack {
            seq: 1,
            duplicate: false
        }
    );

    // 2^63 used to be stored (as a negative number), after which every later report was a
    // "duplicate" and vanished.
    let two = with_package(&base, "two", "2");
    for crafted in [1u64 << 63, u64::MAX, 0] {
        assert_eq!(
            resync(send_report(&mut send, &mut recv, &report(crafted, &two)).await),
            (2, FleetErrorKind::SeqOutOfRange),
            "seq {crafted}"
        );
    }
    // A jump (1 → 10) is not stored either.
    assert_eq!(
        resync(send_report(&mut send, &mut recv, &report(10, &two)).await),
        (2, FleetErrorKind::SeqGap)
    );
    // The number of a stored report with other content is no resend.
    assert_eq!(
        resync(send_report(&mut send, &mut recv, &report(1, &two)).await),
        (2, FleetErrorKind::SeqConflict)
    );
    // The very same report is.
    assert_eq!(
        send_report(&mut send, &mut recv, &report(1, &one)).await,
        RelayToDevice::Ack {
            seq: 1,
            duplicate: true
        }
    );
    assert_eq!(store.report_count(&a.device_id).unwrap(), 1);
    assert_eq!(fleet_inventory(&relay, &a.device_id).digest(), one.digest());

    // The honest next report is stored and shown.
    assert_eq!(
        send_report(&mut send, &mut recv, &report(2, &two)).await,
        RelayToDevice::Ack {
            seq: 2,
            duplicate: false
        }
    );
    let three = with_package(&base, "three", "3");
    assert_eq!(
        send_report(&mut send, &mut recv, &report(3, &three)).await,
        RelayToDevice::Ack {
            seq: 3,
            duplicate: false
        }
    );
    // Going back (a restored counter) is refused even with content the relay once held.
    assert_eq!(
        resync(send_report(&mut send, &mut recv, &report(2, &two)).await),
        (4, FleetErrorKind::SeqConflict)
    );
    assert_eq!(store.report_count(&a.device_id).unwrap(), 3);
    assert_eq!(
        fleet_inventory(&relay, &a.device_id).digest(),
        three.digest()
    );
    let summary = store.devices("Acme IT").unwrap();
    assert_eq!(summary[0].last_seq, Some(3));
    relay.shutdown().await;
}

/// A device whose data directory is restored from an older copy (a VM snapshot) has a report counter
/// behind the relay's. It resyncs instead of having its reports taken for resends and deleted: the
/// fleet shows its newest inventory.
#[tokio::test]
async fn a_restored_device_data_directory_never_loses_a_report() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = start(relay_dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let tgt = target(&relay, relay.local_addr());
    let token = relay
        .store()
        .create_token("Acme IT", 3600, 1, now())
        .unwrap()
        .token;
    let agent_dir = tempfile::tempdir().unwrap();
    let id = enroll_in(&tgt, &token, agent_dir.path()).await.unwrap();
    let status = tempfile::NamedTempFile::new().unwrap();
    let set = |pkgs: &[(&str, &str)]| std::fs::write(status.path(), dpkg_status(pkgs)).unwrap();
    let service = |dir: &Path| {
        let mut cfg = RunConfig::new(DataDir::new(dir));
        cfg.collector.software.dpkg_status = status.path().to_path_buf();
        cfg.collector.software.tool_path = Some(vec![]);
        cfg.interval = Duration::from_secs(3600);
        cfg.backoff_initial = Duration::from_millis(100);
        cfg.backoff_max = Duration::from_millis(400);
        let (trigger, trigger_rx) = mpsc::channel(1);
        let (events_tx, events) = mpsc::channel(64);
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(cfg, trigger_rx, events_tx, stop.clone()));
        (trigger, events, stop, task)
    };

    set(&[("alpha", "1.0")]);
    let (trigger, mut events, stop, task) = service(agent_dir.path());
    next(&mut events, "report 1 acked", |e| {
        matches!(e, RunEvent::Acked { seq: 1, .. })
    })
    .await;
    // The snapshot, taken while nothing is being written.
    let snapshot = tempfile::tempdir().unwrap();
    copy_dir(agent_dir.path(), snapshot.path());
    for (seq, version) in [(2, "2.0"), (3, "3.0")] {
        set(&[("alpha", version)]);
        trigger.send(()).await.unwrap();
        next(
            &mut events,
            "report acked",
            |e| matches!(e, RunEvent::Acked { seq: s, .. } if *s == seq),
        )
        .await;
    }
    stop.cancel();
    task.await.unwrap().unwrap();

    // The restored machine installs something and reports.
    set(&[("alpha", "3.1"), ("gamma", "1.0")]);
    let (trigger, mut events, stop, task) = service(snapshot.path());
    next(&mut events, "connected", |e| {
        matches!(e, RunEvent::Connected { .. })
    })
    .await;
    trigger.send(()).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let inv = fleet_inventory(&relay, &id.device_id);
        let versions: Vec<_> = inv
            .software
            .packages
            .iter()
            .map(|p| format!("{}={}", p.name, p.version))
            .collect();
        if versions == ["alpha=3.1", "gamma=1.0"] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fleet still shows {versions:?}, not the restored device's newest inventory"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The history shows the change, and nothing the device made is left unsent.
    let history = relay.store().history("Acme IT", &id.device_id).unwrap();
    assert!(
        history
            .iter()
            .any(|c| c.item == "dpkg:gamma:amd64" && c.kind == ChangeKind::Installed),
        "{history:?}"
    );
    let dd = DataDir::new(snapshot.path());
    let deadline = tokio::time::Instant::now() + WAIT;
    while !dd.queued().unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "reports still queued"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    task.await.unwrap().unwrap();
    relay.shutdown().await;
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// Issue 22: the enrollment token carries the org key out of band and the device pins it; the
/// device key made at enrollment reaches the technician's console through the fleet record, its
/// secret stays in the owner-only identity; a token whose key was damaged is refused before the
/// relay is contacted, so the token is not used up.
#[tokio::test]
async fn enrollment_pins_the_org_key_from_the_token_and_registers_the_device_key() {
    let relay_dir = tempfile::tempdir().unwrap();
    let tech = Technicians::new(relay_dir.path())
        .add("Ada", "Acme IT")
        .unwrap();
    let relay = start(relay_dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let tgt = target(&relay, relay.local_addr());
    let console = ConsoleConfig {
        relay: tgt.clone(),
        token: tech,
    };
    let org = tether_proto::org::SecretKey::generate(&mut rand::thread_rng()).public();
    let token = relay
        .store()
        .create_token("Acme IT", 3600, 2, now())
        .unwrap()
        .token;

    // Cut short in copying: refused with words, nothing written, the token still unused.
    let damaged = format!("{token}.{}", &org.to_string()[..40]);
    let cut = tempfile::tempdir().unwrap();
    match enroll_in(&tgt, &damaged, cut.path()).await {
        Err(e @ EnrollError::Token(_)) => {
            assert!(e.to_string().contains("organisation key"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert!(!cut.path().join("identity.json").exists());

    let dir = tempfile::tempdir().unwrap();
    let id = enroll_in(&tgt, &format!("{token}.{org}"), dir.path())
        .await
        .unwrap();
    assert_eq!(id.org_key, Some(org));
    let device_key = id.device_secret().expect("a device key").public();
    let stored: Identity =
        serde_json::from_slice(&std::fs::read(dir.path().join("identity.json")).unwrap()).unwrap();
    assert_eq!(stored, id, "the pin and the key survive on disk");
    let record = match fleet(
        &console,
        FleetQuery::ShowDevice {
            device: id.device_id.clone(),
        },
    )
    .await
    .unwrap()
    .as_slice()
    {
        [FleetReply::Device(d)] => (**d).clone(),
        r => panic!("{r:?}"),
    };
    assert_eq!(record.summary.device_key, Some(device_key));
    assert!(
        tether_console::fleet::device_text(&record).contains(&device_key.fingerprint()),
        "the console shows the key it will check"
    );

    // The second use of the token: a token without a key still enrolls, and pins nothing.
    let plain = tempfile::tempdir().unwrap();
    let id2 = enroll_in(&tgt, &token, plain.path()).await.unwrap();
    assert_eq!(id2.org_key, None);
    assert_ne!(
        id2.device_secret().unwrap().public(),
        device_key,
        "every device makes its own key"
    );
}
