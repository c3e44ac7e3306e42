//! Sessions without a code on enrolled devices (issue 22), over real QUIC on loopback with a real
//! relay and a device in service mode (`tether_agent::report::run`, as `tether-agent run` runs
//! it): the relay wakes the device, the device and the console run the signed handshake on the
//! spliced stream, and the device alone decides, from the org key and the policy it pinned.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use tether_agent::local_log::LocalLog;
use tether_agent::report::RunEvent;
use tether_console::enrolled::{DeviceTarget, pair_device};
use tether_console::error::ConsoleError;
use tether_console::session::ConsoleConfig;
use tether_console::technician_key;
use tether_net::client;
use tether_net::framed;
use tether_proto::handshake::HandshakeMsg;
use tether_proto::msg::{ConsoleToRelay, EndReason, RelayToConsole, Role};
use tether_proto::org::{OrgSecret, SignedTechnician, TechnicianCert};
use tether_proto::{Scope, ScopeSet};
use tether_relay::technicians::Technicians;
use tether_tests::TestRelay;
use tether_tests::device::TestDevice;
use tether_tests::enrolled::{ORG, certified, set_policy, token};

fn now() -> u64 {
    tether_net::clock::now_unix()
}

fn scopes(s: &[Scope]) -> ScopeSet {
    s.iter().copied().collect()
}

/// A relay, an org key, IT's signed policy allowing `unattended`, and a device enrolled with a
/// token carrying the org key, which has taken the policy.
struct Fleet {
    relay: TestRelay,
    /// The org key's secret, for signing a later policy.
    org_secret: [u8; 32],
    device: TestDevice,
    keys: tempfile::TempDir,
}

impl Fleet {
    async fn start(unattended: &[Scope]) -> Fleet {
        let relay = TestRelay::start().await;
        let org = OrgSecret::generate(&mut rand::thread_rng());
        set_policy(&relay, &org, 1, unattended, Vec::new());
        let mut device =
            TestDevice::enroll(relay.target(), token(&relay, &org), "pc-7", vec![]).await;
        device
            .next("the policy taken", |e| {
                matches!(e, RunEvent::PolicyAdopted { .. })
            })
            .await;
        let keys = tempfile::tempdir().unwrap();
        certified(keys.path(), &org, ORG, "Ada Lovelace");
        Fleet {
            relay,
            org_secret: org.to_bytes(),
            device,
            keys,
        }
    }

    fn target(&self, unattended: bool) -> DeviceTarget {
        DeviceTarget {
            // Its first report renames it after the real host; the id stays.
            device: self.device.id.device_id.clone(),
            unattended,
            key_dir: self.keys.path().to_path_buf(),
        }
    }

    /// The user's own log on the device, as `tether-agent log` shows it.
    fn user_log(&self) -> Vec<String> {
        LocalLog::new(&self.device.data().path).read().unwrap()
    }

    fn audited(&self, kind: &str) -> Vec<serde_json::Value> {
        self.relay
            .audit()
            .into_iter()
            .filter(|l| l["event"] == kind)
            .collect()
    }
}

#[tokio::test]
async fn unattended_inventory_by_policy_needs_nobody_and_is_in_the_users_log() {
    let fleet = Fleet::start(&[Scope::Inventory, Scope::Diagnostics]).await;
    let config = fleet.relay.console();
    let mut session = pair_device(&config, &fleet.target(true), scopes(&[Scope::Inventory]))
        .await
        .expect("the device takes the signed technician");
    let granted = session.ask_consent().await.expect("IT's policy answers");
    assert_eq!(granted, scopes(&[Scope::Inventory]));
    let inv = session.inventory().await.expect("the inventory arrives");
    let here = tether_agent::inventory::Collector::default().hardware();
    assert_eq!(inv.hardware.system.hostname, here.system.hostname);
    // Only what the policy names: view is refused on the device, whatever the console asks.
    assert!(matches!(
        session.view(0).await,
        Err(ConsoleError::ScopeDenied(Scope::View))
    ));
    session.end().await;

    let log = fleet.user_log().join("\n");
    assert!(
        log.contains(
            "Ada Lovelace of Acme IT started an unattended session, as your IT's policy allows"
        ),
        "{log}"
    );
    assert!(!log.contains("asked to"), "nobody was asked: {log}");
    assert!(!log.contains("You allowed"), "nobody was asked: {log}");
    let woken = fleet.audited("enrolled_device_session");
    assert_eq!(woken.len(), 1, "{woken:?}");
    assert_eq!(woken[0]["unattended"], true);
    assert_eq!(woken[0]["device_id"], fleet.device.id.device_id.as_str());
    assert_eq!(woken[0]["refused"], serde_json::Value::Null);
    assert_eq!(
        fleet.audited("session_attempt")[0]["slot"],
        woken[0]["slot"],
        "the wake and the session it led to name the same slot"
    );
    assert_eq!(fleet.audited("session_started").len(), 1);
    fleet.device.stop().await;
}

#[tokio::test]
async fn what_the_policy_does_not_name_and_attended_sessions_with_nobody_there_are_refused() {
    let fleet = Fleet::start(&[Scope::Inventory]).await;
    let config = fleet.relay.console();
    // Unattended view without a policy that names it: nothing is served, and the console says why.
    let mut session = pair_device(&config, &fleet.target(true), scopes(&[Scope::View]))
        .await
        .expect("the handshake itself succeeds");
    match session.ask_consent().await {
        Err(ConsoleError::Ended(EndReason::NotInPolicy { scopes: s })) => {
            assert_eq!(s, scopes(&[Scope::View]))
        }
        other => panic!("{other:?}"),
    }
    // Attended, with no per-user agent in a desktop session: refused before any handshake.
    let err = pair_device(&config, &fleet.target(false), scopes(&[Scope::Inventory]))
        .await
        .expect_err("nobody can answer");
    assert!(
        matches!(&err, ConsoleError::Declined(m) if m.contains("nobody is logged in")),
        "{err:?}"
    );
    let refused = fleet.audited("enrolled_device_session");
    assert!(
        refused.iter().any(|l| l["refused"]
            .as_str()
            .unwrap_or("")
            .contains("nobody is logged in")),
        "{refused:?}"
    );
    fleet.device.stop().await;
}

/// Plays the relay's part of an attack: with a valid token it has the device woken, then it
/// writes on stream 0 a Hello with a certificate of its own making, as a compromised relay could.
async fn forged_hello(
    config: &ConsoleConfig,
    device_id: &str,
    cert: SignedTechnician,
    device: PublicKeyOf,
) -> String {
    let relay = client::connect(&config.relay).await.unwrap();
    let (mut send, mut recv) = client::open_control(&relay.conn, Role::Console)
        .await
        .unwrap();
    let ask = ConsoleToRelay::ConnectDevice {
        token: config.token.clone(),
        device: device_id.into(),
        scopes: scopes(&[Scope::Inventory]),
        unattended: true,
    };
    framed::write_msg(&mut send, &ask).await.unwrap();
    let claimed = framed::read_msg::<RelayToConsole>(&mut recv).await.unwrap();
    assert!(
        matches!(claimed, RelayToConsole::Claimed { .. }),
        "{claimed:?}"
    );
    let hello = HandshakeMsg::Hello {
        technician: cert,
        device,
        // The certificate is checked first; the key exchange value never matters here.
        eph: [9; 32],
        unattended: true,
    };
    framed::write_msg(&mut send, &hello).await.unwrap();
    match framed::read_msg::<HandshakeMsg>(&mut recv).await.unwrap() {
        HandshakeMsg::Refused { reason } => reason,
        other => panic!("the device answered a forged hello: {other:?}"),
    }
}

type PublicKeyOf = tether_proto::org::PublicKey;

#[tokio::test]
async fn technician_keys_the_org_did_not_sign_are_refused_by_the_device_before_any_prompt() {
    let fleet = Fleet::start(&[Scope::Inventory]).await;
    let config = fleet.relay.console();
    let device_key = fleet
        .device
        .id
        .device_secret()
        .expect("a device key")
        .public();
    // A key the relay made, with a certificate it signed itself for a name the org knows.
    let relay_made = OrgSecret::generate(&mut rand::thread_rng());
    let forged = SignedTechnician::issue(
        &relay_made,
        TechnicianCert {
            org: ORG.into(),
            name: "Ada Lovelace".into(),
            key: OrgSecret::generate(&mut rand::thread_rng()).public(),
            not_before_unix: now() - 60,
            not_after_unix: now() + 3600,
        },
    )
    .unwrap();
    let reason = forged_hello(&config, &fleet.device.id.device_id, forged, device_key).await;
    assert!(reason.contains("technician certificate"), "{reason}");

    // Another organisation's genuine technician, however the relay routes them.
    let globex = OrgSecret::generate(&mut rand::thread_rng());
    let other = SignedTechnician::issue(
        &globex,
        TechnicianCert {
            org: "Globex".into(),
            name: "Eve".into(),
            key: OrgSecret::generate(&mut rand::thread_rng()).public(),
            not_before_unix: now() - 60,
            not_after_unix: now() + 3600,
        },
    )
    .unwrap();
    let reason = forged_hello(&config, &fleet.device.id.device_id, other, device_key).await;
    assert!(reason.contains("technician certificate"), "{reason}");

    // Nobody was asked anything, nothing was served, and the user's log says who was turned away.
    let log = fleet.user_log().join("\n");
    assert!(!log.contains("asked to"), "{log}");
    assert!(!log.contains("unattended session"), "{log}");
    assert_eq!(log.matches("was turned away").count(), 2, "{log}");

    // Through the relay as it should be, Globex's own technician does not even find the device.
    let eve = Technicians::new(fleet.relay.dir.path())
        .add("Eve", "Globex")
        .unwrap();
    let keys = tempfile::tempdir().unwrap();
    certified(keys.path(), &globex, "Globex", "Eve");
    let eve_config = ConsoleConfig {
        token: eve,
        ..config.clone()
    };
    let target = DeviceTarget {
        key_dir: keys.path().to_path_buf(),
        ..fleet.target(true)
    };
    let err = pair_device(&eve_config, &target, scopes(&[Scope::Inventory]))
        .await
        .expect_err("another organisation's device");
    assert!(
        matches!(err, ConsoleError::Fleet(ref e) if e.kind == tether_proto::fleet::FleetErrorKind::UnknownDevice),
        "{err:?}"
    );
    fleet.device.stop().await;
}

#[tokio::test]
async fn a_technician_key_it_revokes_is_refused_once_the_device_holds_the_policy() {
    let mut fleet = Fleet::start(&[Scope::Inventory]).await;
    let config = fleet.relay.console();
    let ada = technician_key::load(fleet.keys.path()).unwrap().public();
    // Ada's laptop is stolen: IT signs policy 2, which revokes her key.
    let org = OrgSecret::from_bytes(fleet.org_secret);
    set_policy(&fleet.relay, &org, 2, &[Scope::Inventory], vec![ada]);
    fleet.relay = fleet.relay.restart().await;
    fleet
        .device
        .next(
            "policy 2 taken",
            |e| matches!(e, RunEvent::PolicyAdopted { policy } if policy.version == 2),
        )
        .await;
    let config = ConsoleConfig {
        relay: fleet.relay.target(),
        ..config
    };
    let err = pair_device(&config, &fleet.target(true), scopes(&[Scope::Inventory]))
        .await
        .expect_err("a revoked key");
    assert!(
        matches!(&err, ConsoleError::Device(m) if m.contains("IT revoked this technician's key")),
        "{err:?}"
    );
    let log = fleet.user_log().join("\n");
    assert!(log.contains("revoked"), "{log}");
    assert!(!log.contains("unattended session"), "{log}");
    fleet.device.stop().await;
}

#[tokio::test]
async fn the_console_refuses_a_device_whose_key_is_not_the_enrolled_one() {
    let fleet = Fleet::start(&[Scope::Inventory]).await;
    // A relay that changes the device key in its fleet record (or a device that is not the
    // enrolled one): the console checks the device's signature against the record's key.
    let db: PathBuf = fleet.relay.dir.path().join(tether_relay::store::FILE);
    let impostor = OrgSecret::generate(&mut rand::thread_rng()).public();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let changed = conn
        .execute("UPDATE devices SET device_key = ?1", [impostor.to_string()])
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);
    let err = pair_device(
        &fleet.relay.console(),
        &fleet.target(true),
        scopes(&[Scope::Inventory]),
    )
    .await
    .expect_err("the device's signature does not verify under the swapped key");
    // The device refuses first (the Hello names another device), or the console finds the
    // signature false: either way nothing is sealed, and the words say which key.
    let text = err.to_string();
    assert!(
        text.contains("another device") || text.contains("device signature"),
        "{text}"
    );
    fleet.device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_binary_reaches_a_device_with_device_and_unattended() {
    let fleet = Fleet::start(&[Scope::Inventory]).await;
    let console = |args: &[&str]| {
        let mut c = std::process::Command::new(tether_tests::procs::bin("tether-console"));
        c.args(tether_tests::gui::relay_args(&fleet.relay))
            .env("TETHER_TOKEN", &fleet.relay.token)
            .args(args)
            .args(["--device", &fleet.device.id.device_id, "--unattended"])
            .args(["--key-dir", &fleet.keys.path().display().to_string()]);
        c
    };
    let out = tokio::task::spawn_blocking({
        let mut c = console(&["--json", "inventory"]);
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("unattended: IT's policy on the device answers"),
        "{err}"
    );
    let inv: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let here = tether_agent::inventory::Collector::default().hardware();
    assert_eq!(
        inv["hardware"]["system"]["hostname"],
        here.system.hostname.as_str()
    );

    // The screen is not in the policy: the device says so, and the console exits 10 with it.
    let snapshot = fleet.keys.path().join("screen.png");
    let out = tokio::task::spawn_blocking({
        let path = snapshot.display().to_string();
        let mut c = console(&["connect", "--headless", "--snapshot", &path]);
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(10), "{err}");
    assert!(
        err.contains("IT's policy does not allow view in an unattended session"),
        "{err}"
    );
    assert!(!snapshot.exists(), "nothing of the screen was written");
    fleet.device.stop().await;
}
