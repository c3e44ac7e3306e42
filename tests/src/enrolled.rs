//! What the tests of sessions without a code set up (issue 22): a technician key certified by an
//! organisation key, IT's signed policy on the relay, and an enrollment token carrying the org key.

use std::path::Path;

use tether_console::technician_key;
use tether_proto::Scope;
use tether_proto::org::{
    OrgSecret, Policy, PublicKey, SignedPolicy, SignedTechnician, TechnicianCert,
};

use crate::TestRelay;

/// The organisation of the test relay's technician.
pub const ORG: &str = "Acme IT";

/// A technician key made in `dir` and certified by `org_key` for `name` of `org` for an hour, as
/// `tether-console key create`, `tether-relay org-key certify` and `key install` do.
pub fn certified(dir: &Path, org_key: &OrgSecret, org: &str, name: &str) {
    let now = tether_net::clock::now_unix();
    let key = technician_key::create(dir).expect("a technician key");
    let cert = SignedTechnician::issue(
        org_key,
        TechnicianCert {
            org: org.into(),
            name: name.into(),
            key,
            not_before_unix: now - 60,
            not_after_unix: now + 3600,
        },
    )
    .expect("a certificate");
    let file = dir.join("issued.json");
    std::fs::write(&file, serde_json::to_vec(&cert).expect("JSON")).expect("certificate file");
    technician_key::install(dir, &file, Some(&org_key.public()), now).expect("installed");
}

/// IT's policy for [`ORG`] (`version`, `unattended` scopes, `revoked` technician keys), signed by
/// `org_key` and stored on `relay` as `tether-relay policy set` does.
pub fn set_policy(
    relay: &TestRelay,
    org_key: &OrgSecret,
    version: u64,
    unattended: &[Scope],
    revoked: Vec<PublicKey>,
) {
    let policy = Policy {
        org: ORG.into(),
        unattended: unattended.iter().copied().collect(),
        version,
        revoked,
    };
    let signed = SignedPolicy::issue(org_key, policy).expect("a signed policy");
    relay
        .handle
        .store()
        .set_policy(ORG, &signed)
        .expect("the policy stored");
}

/// A one-use enrollment token for [`ORG`] carrying `org_key`'s public half.
pub fn token(relay: &TestRelay, org_key: &OrgSecret) -> String {
    let now = tether_net::clock::now_unix();
    let token = relay
        .handle
        .store()
        .create_token(ORG, 3600, 1, now)
        .expect("a token")
        .token;
    format!("{token}.{}", org_key.public())
}
