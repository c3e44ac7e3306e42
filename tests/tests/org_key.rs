//! `tether-relay org-key` through the real binary (issue 22): the org key is made on the admin's
//! machine, owner-only and never replaced, outside the relay's data directory; the certificates and
//! policies it signs verify under the public key it printed, and nothing else does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use tether_proto::Scope;
use tether_proto::org::{PublicKey, SecretKey, SignedPolicy, SignedTechnician};
use tether_tests::procs::bin;

fn relay(data: &Path, args: &[&str]) -> Output {
    Command::new(bin("tether-relay"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("TETHER_RELAY_DATABASE")
        .env_remove("TETHER_RELAY_CONFIG")
        .output()
        .expect("tether-relay runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `org-key create` for "Acme IT" into `out`, which must succeed; the public key it printed.
fn create_org_key(data: &Path, out: &Path) -> PublicKey {
    let made = relay(
        data,
        &[
            "org-key",
            "create",
            "--org",
            "Acme IT",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(made.status.success(), "{}", text(&made));
    public_key(&made)
}

fn public_key(out: &Output) -> PublicKey {
    let t = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = t.lines().find(|l| l.starts_with("public key: ")).unwrap();
    line["public key: ".len()..].parse().unwrap()
}

#[test]
fn an_org_key_signs_certificates_and_policies_that_verify_only_under_it() {
    let admin = tempfile::tempdir().unwrap();
    let data = admin.path().join("relay-data");
    let key = admin.path().join("acme.orgkey");
    let k = key.to_str().unwrap();

    let made = relay(
        &data,
        &["org-key", "create", "--org", "Acme IT", "--out", k],
    );
    assert!(made.status.success(), "{}", text(&made));
    let org = public_key(&made);
    assert!(
        text(&made).contains("never on the relay"),
        "{}",
        text(&made)
    );
    assert!(!data.exists(), "the relay's data directory is not touched");
    let again = relay(
        &data,
        &["org-key", "create", "--org", "Acme IT", "--out", k],
    );
    assert!(!again.status.success());
    assert!(text(&again).contains("already exists"), "{}", text(&again));
    let shown = relay(&data, &["org-key", "show", "--key", k]);
    assert_eq!(public_key(&shown), org, "the file holds the key it printed");

    let tech = SecretKey::generate(&mut rand::rngs::OsRng).public();
    let cert = admin.path().join("ada.cert");
    let signed = relay(
        &data,
        &[
            "org-key",
            "certify",
            "--key",
            k,
            "--name",
            "Ada Lovelace",
            "--technician-key",
            &tech.to_string(),
            "--days",
            "30",
            "--out",
            cert.to_str().unwrap(),
        ],
    );
    assert!(signed.status.success(), "{}", text(&signed));
    let c: SignedTechnician = serde_json::from_slice(&std::fs::read(&cert).unwrap()).unwrap();
    let now = tether_net::clock::now_unix();
    let vouched = c.verify(&org, "Acme IT", now).unwrap();
    assert_eq!((vouched.name.as_str(), vouched.key), ("Ada Lovelace", tech));
    let other = SecretKey::generate(&mut rand::rngs::OsRng).public();
    assert!(c.verify(&other, "Acme IT", now).is_err());
    assert!(c.verify(&org, "Acme IT", now + 31 * 86_400).is_err());

    let policy = admin.path().join("policy.json");
    let p = relay(
        &data,
        &[
            "org-key",
            "policy",
            "--key",
            k,
            "--unattended",
            "inventory,diagnostics",
            "--version",
            "1",
            "--out",
            policy.to_str().unwrap(),
        ],
    );
    assert!(p.status.success(), "{}", text(&p));
    let sp: SignedPolicy = serde_json::from_slice(&std::fs::read(&policy).unwrap()).unwrap();
    let checked = sp.verify(&org, "Acme IT").unwrap();
    assert!(checked.unattended.contains(Scope::Inventory));
    assert!(!checked.unattended.contains(Scope::View));
}

#[test]
fn bad_keys_names_and_scopes_are_clear_errors_and_write_nothing() {
    let admin = tempfile::tempdir().unwrap();
    let data = admin.path().join("relay-data");
    let key = admin.path().join("k");
    let k = key.to_str().unwrap();
    let bad_name = relay(&data, &["org-key", "create", "--org", "", "--out", k]);
    assert!(
        !bad_name.status.success() && !key.exists(),
        "{}",
        text(&bad_name)
    );
    assert!(
        relay(
            &data,
            &["org-key", "create", "--org", "Acme IT", "--out", k]
        )
        .status
        .success()
    );
    let out = admin.path().join("c");
    let o = out.to_str().unwrap();
    let bad_key = relay(
        &data,
        &[
            "org-key",
            "certify",
            "--key",
            k,
            "--name",
            "Ada",
            "--technician-key",
            "zz",
            "--out",
            o,
        ],
    );
    assert_eq!(bad_key.status.code(), Some(2), "{}", text(&bad_key));
    assert!(
        text(&bad_key).contains("64 hex digits"),
        "{}",
        text(&bad_key)
    );
    let bad_scope = relay(
        &data,
        &[
            "org-key",
            "policy",
            "--key",
            k,
            "--unattended",
            "everything",
            "--version",
            "1",
            "--out",
            o,
        ],
    );
    assert!(!bad_scope.status.success(), "{}", text(&bad_scope));
    assert!(
        text(&bad_scope).contains("--unattended"),
        "{}",
        text(&bad_scope)
    );
    std::fs::write(&key, b"not json").unwrap();
    let corrupt = relay(&data, &["org-key", "show", "--key", k]);
    assert!(
        text(&corrupt).contains("is not an org key file"),
        "{}",
        text(&corrupt)
    );
    assert!(!out.exists());
}

/// The enrollment token carries the org's public key for devices to pin (issue 22): the token
/// printed ends in `.` and the key; without `--org-key` it says what devices will refuse; a
/// malformed key is refused before a token is made.
#[test]
fn an_enrollment_token_carries_the_org_key_devices_pin() {
    let admin = tempfile::tempdir().unwrap();
    let data = admin.path().join("relay-data");
    let key = admin.path().join("acme.orgkey");
    let org = create_org_key(&data, &key);
    let hex = org.to_string();
    let out = relay(
        &data,
        &[
            "enroll-token",
            "create",
            "--org",
            "Acme IT",
            "--org-key",
            &hex,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(printed.contains(&org.fingerprint()), "{printed}");
    let token: tether_proto::fleet::EnrollToken = printed.lines().last().unwrap().parse().unwrap();
    assert_eq!(token.org_key, Some(org));
    assert!(token.token.starts_with("et_"), "{printed}");

    let plain = relay(&data, &["enroll-token", "create", "--org", "Acme IT"]);
    assert!(
        text(&plain).contains("refuse sessions without a code"),
        "{}",
        text(&plain)
    );

    let bad = relay(
        &data,
        &[
            "enroll-token",
            "create",
            "--org",
            "Acme IT",
            "--org-key",
            &hex[..50],
        ],
    );
    assert!(!bad.status.success());
    assert!(text(&bad).contains("64 hex digits"), "{}", text(&bad));
    let list = relay(&data, &["enroll-token", "list"]);
    assert_eq!(
        String::from_utf8_lossy(&list.stdout).lines().count(),
        2,
        "the bad one made no token: {}",
        text(&list)
    );
}

fn console(args: &[&str]) -> Output {
    Command::new(bin("tether-console"))
        .args(args)
        .env_remove("TETHER_TOKEN")
        .output()
        .expect("tether-console runs")
}

/// The whole round of a technician key through the real binaries (issue 22): made on the
/// technician's machine, certified by the org key on the admin's, installed back; a certificate
/// for another key, or one that does not verify under the org key, is refused and not installed.
#[test]
fn a_technician_key_is_made_certified_by_the_org_and_installed() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("tech");
    let k = keys.to_str().unwrap();
    let made = console(&["key", "--dir", k, "create"]);
    assert!(made.status.success(), "{}", text(&made));
    let tech = public_key(&made);
    assert!(text(&made).contains("org-key certify"), "{}", text(&made));
    let again = console(&["key", "--dir", k, "create"]);
    assert!(!again.status.success());
    assert!(text(&again).contains("never replaced"), "{}", text(&again));

    let data = tmp.path().join("relay-data");
    let org_file = tmp.path().join("acme.orgkey");
    let org = create_org_key(&data, &org_file);
    let other_file = tmp.path().join("other.orgkey");
    let other = create_org_key(&data, &other_file);
    let certify = |tech_key: &str, out: &str| {
        let o = relay(
            &data,
            &[
                "org-key",
                "certify",
                "--key",
                org_file.to_str().unwrap(),
                "--name",
                "Ada Lovelace",
                "--technician-key",
                tech_key,
                "--out",
                out,
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
    };
    let mine = tmp.path().join("ada.cert");
    certify(&tech.to_string(), mine.to_str().unwrap());
    let theirs = tmp.path().join("bob.cert");
    certify(&other.to_string(), theirs.to_str().unwrap());

    let wrong = console(&[
        "key",
        "--dir",
        k,
        "install",
        "--cert",
        theirs.to_str().unwrap(),
    ]);
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
    assert!(text(&wrong).contains("not for yours"), "{}", text(&wrong));
    let unsigned = console(&[
        "key",
        "--dir",
        k,
        "install",
        "--cert",
        mine.to_str().unwrap(),
        "--org-key",
        &other.to_string(),
    ]);
    assert_eq!(unsigned.status.code(), Some(1), "{}", text(&unsigned));
    assert!(text(&unsigned).contains("not valid"), "{}", text(&unsigned));
    let shown = console(&["key", "--dir", k, "show"]);
    assert!(text(&shown).contains("none installed"), "{}", text(&shown));

    let ok = console(&[
        "key",
        "--dir",
        k,
        "install",
        "--cert",
        mine.to_str().unwrap(),
        "--org-key",
        &org.to_string(),
    ]);
    assert!(ok.status.success(), "{}", text(&ok));
    let shown = console(&["--json", "key", "--dir", k, "show"]);
    let v: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(v["public_key"], tech.to_string());
    assert_eq!(v["certificate"]["name"], "Ada Lovelace");
    assert_eq!(v["certificate"]["org"], "Acme IT");
}

/// `tether-relay policy set | show` through the real binary: the signed policy is stored and
/// audited; the same version again, or a file that is not a policy, is a clear error that changes
/// nothing.
#[test]
fn the_relay_keeps_the_signed_policy_and_audits_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("relay-data");
    let key = tmp.path().join("acme.orgkey");
    let policy = tmp.path().join("policy.json");
    create_org_key(&data, &key);
    let signed = relay(
        &data,
        &[
            "org-key",
            "policy",
            "--key",
            key.to_str().unwrap(),
            "--unattended",
            "inventory,diagnostics",
            "--version",
            "1",
            "--out",
            policy.to_str().unwrap(),
        ],
    );
    assert!(signed.status.success(), "{}", text(&signed));
    let set_policy = |file: &Path| {
        relay(
            &data,
            &[
                "policy",
                "set",
                "--org",
                "Acme IT",
                "--file",
                file.to_str().unwrap(),
            ],
        )
    };
    let none = relay(&data, &["policy", "show", "--org", "Acme IT"]);
    assert!(text(&none).contains("attended only"), "{}", text(&none));
    let set = set_policy(&policy);
    assert!(set.status.success(), "{}", text(&set));
    let shown = relay(&data, &["policy", "show", "--org", "Acme IT"]);
    assert!(
        text(&shown).contains("policy 1 for \"Acme IT\": unattended diagnostics,inventory"),
        "{}",
        text(&shown)
    );
    let again = set_policy(&policy);
    assert!(!again.status.success());
    assert!(
        text(&again).contains("higher --version"),
        "{}",
        text(&again)
    );
    let not_policy = set_policy(&key);
    assert!(!not_policy.status.success());
    assert!(
        text(&not_policy).contains("is not a policy"),
        "{}",
        text(&not_policy)
    );
    let audit = std::fs::read_to_string(data.join("audit.jsonl")).unwrap();
    assert_eq!(audit.matches("\"policy_set\"").count(), 1, "{audit}");
}
