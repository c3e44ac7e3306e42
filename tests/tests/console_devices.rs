//! The console window's Devices tab (issue 22): the real `tether-console window` on its own Xvfb
//! lists the organisation's enrolled devices from a real relay, and its Connect button reaches one
//! without a code, here unattended under IT's signed policy, with the device in service mode.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use tether_agent::report::RunEvent;
use tether_console::technician_key;
use tether_console::window::layout as console;
use tether_proto::Scope;
use tether_proto::org::{OrgSecret, Policy, SignedPolicy, SignedTechnician, TechnicianCert};
use tether_tests::TestRelay;
use tether_tests::device::TestDevice;
use tether_tests::gui::{Gui, relay_args};
use tether_tests::procs::bin;

const ORG: &str = "Acme IT";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_devices_tab_lists_the_fleet_and_connects_without_a_code() {
    let now = tether_net::clock::now_unix();
    let relay = TestRelay::start().await;
    let org = OrgSecret::generate(&mut rand::thread_rng());
    let store = relay.handle.store();
    let policy = Policy {
        org: ORG.into(),
        unattended: [Scope::Inventory].into_iter().collect(),
        version: 1,
        revoked: Vec::new(),
    };
    store
        .set_policy(ORG, &SignedPolicy::issue(&org, policy).unwrap())
        .unwrap();
    let token = store.create_token(ORG, 3600, 1, now).unwrap().token;
    let mut device = TestDevice::enroll(
        relay.target(),
        format!("{token}.{}", org.public()),
        "pc-3",
        vec![],
    )
    .await;
    device
        .next("the policy taken", |e| {
            matches!(e, RunEvent::PolicyAdopted { .. })
        })
        .await;
    // The technician's key and IT's certificate, where the window looks for them.
    let config_home = tempfile::tempdir().unwrap();
    let keys = config_home.path().join("tether");
    let key = technician_key::create(&keys).unwrap();
    let cert = SignedTechnician::issue(
        &org,
        TechnicianCert {
            org: ORG.into(),
            name: "Ada Lovelace".into(),
            key,
            not_before_unix: now - 60,
            not_after_unix: now + 3600,
        },
    )
    .unwrap();
    let file = keys.join("issued.json");
    std::fs::write(&file, serde_json::to_vec(&cert).unwrap()).unwrap();
    technician_key::install(&keys, &file, Some(&org.public()), now).unwrap();

    let mut cmd = Command::new(bin("tether-console"));
    cmd.args(relay_args(&relay))
        .arg("window")
        .env("TETHER_TOKEN", &relay.token)
        .env("XDG_CONFIG_HOME", config_home.path());
    let c = Gui::start(cmd, (1920, 1080), console::TITLE);
    c.click(console::centre(console::TAB_DEVICES));
    c.click(console::centre(console::DEVICES_REFRESH));
    c.expect("devices: 1 enrolled");
    let row = c.expect("device: ");
    assert!(
        row.contains(&device.id.device_id) && row.contains("can be reached without a code"),
        "{row}"
    );
    let inventory = Scope::ALL
        .iter()
        .position(|s| *s == Scope::Inventory)
        .unwrap();
    c.click(console::tick(console::scope_box(inventory)));
    c.click(console::tick(console::DEVICES_UNATTENDED));
    c.click(console::centre(console::device_connect(0)));
    let asking = c.expect("consent: asking");
    assert!(
        asking.contains("unattended: IT's policy on the device answers"),
        "{asking}"
    );
    let granted = c.expect("consent: granted inventory");
    assert!(granted.contains("as Ada Lovelace of Acme IT"), "{granted}");
    c.screenshot("console-devices", console::SIZE, (1400, 80));
    c.click(console::centre(console::END));
    device.stop().await;
}
