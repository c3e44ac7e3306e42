//! The console window's Devices tab (issue 22): the real `tether-console window` on its own Xvfb
//! lists the organisation's enrolled devices from a real relay, and its Connect button reaches one
//! without a code, here unattended under IT's signed policy, with the device in service mode.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use tether_agent::report::RunEvent;
use tether_console::window::layout as console;
use tether_proto::Scope;
use tether_proto::org::OrgSecret;
use tether_tests::TestRelay;
use tether_tests::device::TestDevice;
use tether_tests::enrolled::{ORG, certified, set_policy, token};
use tether_tests::gui::{Gui, relay_args};
use tether_tests::procs::bin;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_devices_tab_lists_the_fleet_and_connects_without_a_code() {
    let relay = TestRelay::start().await;
    let org = OrgSecret::generate(&mut rand::thread_rng());
    set_policy(&relay, &org, 1, &[Scope::Inventory], Vec::new());
    let mut device = TestDevice::enroll(relay.target(), token(&relay, &org), "pc-3", vec![]).await;
    device
        .next("the policy taken", |e| {
            matches!(e, RunEvent::PolicyAdopted { .. })
        })
        .await;
    // The technician's key and IT's certificate, where the window looks for them.
    let config_home = tempfile::tempdir().unwrap();
    certified(
        &config_home.path().join("tether"),
        &org,
        ORG,
        "Ada Lovelace",
    );

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
