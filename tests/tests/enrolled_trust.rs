//! Trust for sessions on enrolled devices (issue 22), over real QUIC on loopback with a real relay
//! and a device in service mode: the unattended policy IT signs reaches devices through the relay,
//! and a relay that forges, widens or rolls back a policy changes nothing on the device.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tether_agent::report::RunEvent;
use tether_proto::org::{OrgSecret, Policy, SignedPolicy};
use tether_proto::{Scope, ScopeSet};
use tether_tests::TestRelay;
use tether_tests::device::TestDevice;

fn signed(key: &OrgSecret, version: u64, scopes: &[Scope]) -> SignedPolicy {
    SignedPolicy::issue(
        key,
        Policy {
            org: "Acme IT".into(),
            unattended: scopes.iter().copied().collect::<ScopeSet>(),
            version,
            revoked: Vec::new(),
        },
    )
    .unwrap()
}

fn now() -> u64 {
    tether_net::clock::now_unix()
}

#[tokio::test]
async fn a_device_takes_only_the_policy_its_pinned_org_key_signed() {
    let relay = TestRelay::start().await;
    let org = OrgSecret::generate(&mut rand::thread_rng());
    let impostor = OrgSecret::generate(&mut rand::thread_rng());
    let store = relay.handle.store();
    let v1 = signed(&org, 1, &[Scope::Inventory, Scope::Diagnostics]);
    store.set_policy("Acme IT", &v1).unwrap();
    let token = store.create_token("Acme IT", 3600, 1, now()).unwrap().token;
    let mut device = TestDevice::enroll(
        relay.target(),
        format!("{token}.{}", org.public()),
        "pc-1",
        vec![],
    )
    .await;
    device
        .next(
            "the signed policy taken",
            |e| matches!(e, RunEvent::PolicyAdopted { policy } if policy.version == 1),
        )
        .await;
    assert_eq!(device.data().policy().unwrap(), Some(v1.clone()));

    // A relay (or whoever holds its database) that signs a wider policy itself: the device keeps
    // the one it holds and says why.
    let forged = signed(&impostor, 5, &[Scope::View, Scope::Control]);
    store.set_policy("Acme IT", &forged).unwrap();
    let relay = relay.restart().await;
    let seen = device
        .next("the forged policy refused", |e| {
            matches!(e, RunEvent::PolicyRefused { .. })
        })
        .await;
    match seen.last() {
        Some(RunEvent::PolicyRefused { reason }) => {
            assert!(reason.contains("not the organisation's"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(device.data().policy().unwrap(), Some(v1.clone()));

    // IT's next policy, signed by the org key and newer than the forged one's number: taken.
    let store = relay.handle.store();
    let v6 = signed(&org, 6, &[Scope::Inventory]);
    store.set_policy("Acme IT", &v6).unwrap();
    let relay = relay.restart().await;
    device
        .next(
            "the new signed policy taken",
            |e| matches!(e, RunEvent::PolicyAdopted { policy } if policy.version == 6),
        )
        .await;
    assert_eq!(device.data().policy().unwrap(), Some(v6));

    // The relay refuses to store an older version (devices would ignore it) or another
    // organisation's, with words.
    let store = relay.handle.store();
    let old = store
        .set_policy("Acme IT", &signed(&org, 2, &[]))
        .unwrap_err();
    assert!(old.to_string().contains("version 6"), "{old}");
    let other_org = SignedPolicy::issue(
        &org,
        Policy {
            org: "Other Co".into(),
            unattended: ScopeSet::default(),
            version: 9,
            revoked: Vec::new(),
        },
    )
    .unwrap();
    let e = store.set_policy("Acme IT", &other_org).unwrap_err();
    assert!(e.to_string().contains("Other Co"), "{e}");
    device.stop().await;
}
