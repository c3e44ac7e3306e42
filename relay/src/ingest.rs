//! The fleet protocol's rules for one inventory report, pure: given what the store holds for the
//! device (its [`Head`]) and a report, what happens ([`plan`]). The store only loads the head and
//! commits the plan, in one transaction.
//!
//! # Rules, in order
//! 1. A connection reports only for its own device ([`FleetErrorKind::WrongDevice`]).
//! 2. Numbers are `1..=MAX_SEQ`; anything else is answered with a resync to `last + 1`.
//! 3. `(device, seq)` is stored once: the same number as the last stored report is a duplicate if
//!    the digest matches (a resend after a lost ack), a conflict otherwise; a lower one is behind.
//! 4. A full report's inventory must match its digest; a delta must apply to the last stored report
//!    and give the digest.
//! 5. Only `last + 1` is stored (a gap is answered with a resync), with the changes from the last
//!    inventory (or a first-report change) and the package index update.

use std::collections::BTreeMap;

use tether_proto::fleet::{ChangeKind, FleetError, FleetErrorKind, MAX_SEQ, Report, ReportBody};
use tether_proto::inventory::{DeltaError, Inventory, Package, PackageKey};

/// One derived change: kind, item, old value, new value.
pub type Change = (ChangeKind, String, Option<String>, Option<String>);

/// What the store holds for a device before a report.
#[derive(Debug, Clone, Default)]
pub struct Head {
    /// The device the connection authenticated as.
    pub device_id: String,
    /// The last stored report's number (a valid one; see `SqliteStore`'s `last_valid_seq`).
    pub last_seq: Option<u64>,
    /// The inventory after the last stored report.
    pub snapshot: Option<Inventory>,
}

/// How a stored report was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// A whole inventory.
    Full,
    /// Changes to the last stored one.
    Delta,
}

impl ReportKind {
    /// The stored name (`reports.kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Full => "full",
            ReportKind::Delta => "delta",
        }
    }
}

/// How the package index changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageUpdate {
    /// Replace the device's rows with the new inventory's packages.
    Replace,
    /// A delta touches only the packages it names: delete these keys, then insert these rows.
    Patch {
        /// Keys whose rows go (removed and upserted ones).
        delete: Vec<PackageKey>,
        /// Rows to insert.
        insert: Vec<Package>,
    },
}

/// A report to store.
#[derive(Debug, Clone)]
pub struct Commit {
    /// Its number (`last + 1`, within `1..=MAX_SEQ`).
    pub seq: u64,
    /// Full or delta.
    pub kind: ReportKind,
    /// The device's inventory after it.
    pub next: Inventory,
    /// What changed.
    pub changes: Vec<Change>,
    /// The package index update.
    pub packages: PackageUpdate,
}

/// What to do with a report.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Store it.
    Store(Box<Commit>),
    /// The same report was stored earlier; nothing changes.
    Duplicate,
    /// Not stored; the device must send a full report numbered `expected`.
    Resync {
        /// The last stored report's number + 1.
        expected: u64,
        /// Why (a `Seq*` kind).
        error: FleetError,
    },
}

fn reject(kind: FleetErrorKind, msg: impl Into<String>) -> FleetError {
    FleetError::new(kind, msg)
}

/// Rule 1, which needs nothing from the store.
pub fn check_device(device_id: &str, report: &Report) -> Result<(), FleetError> {
    if report.device_id != device_id {
        return Err(reject(
            FleetErrorKind::WrongDevice,
            format!(
                "this connection is device {device_id}; it cannot report for {}",
                report.device_id
            ),
        ));
    }
    Ok(())
}

/// Decides what happens to `report` given `head`. `Err` is a rejected report (nothing stored, the
/// device is told why); [`Plan::Resync`] is a report out of sequence.
pub fn plan(head: &Head, report: &Report) -> Result<Plan, FleetError> {
    check_device(&head.device_id, report)?;
    let last_seq = head.last_seq;
    let prev = head.snapshot.as_ref();
    let expected = last_seq.map_or(1, |l| l.saturating_add(1));
    let resync = |kind, message: String| {
        Ok(Plan::Resync {
            expected,
            error: reject(kind, message),
        })
    };
    let last_words = || last_seq.map_or("none".to_string(), |s| s.to_string());
    if report.seq == 0 || report.seq > MAX_SEQ {
        return resync(
            FleetErrorKind::SeqOutOfRange,
            format!(
                "report number {} is outside 1–{MAX_SEQ}; the relay expects {expected}",
                report.seq
            ),
        );
    }
    if Some(report.seq) == last_seq {
        // A resend after a lost ack is the same report; anything else under this number is
        // not stored, and acknowledging it would let the device delete it.
        if prev.map(Inventory::digest).as_deref() == Some(report.digest.as_str()) {
            return Ok(Plan::Duplicate);
        }
        return resync(
            FleetErrorKind::SeqConflict,
            format!(
                "the relay holds a different report {}; send the newest inventory as report {expected}",
                report.seq
            ),
        );
    }
    if let Some(l) = last_seq.filter(|l| report.seq < *l) {
        return resync(
            FleetErrorKind::SeqConflict,
            format!(
                "the relay already has reports up to {l}, so report {} is behind (a restored data directory?); send the newest inventory as report {expected}",
                report.seq
            ),
        );
    }
    let (next, kind) = match &report.body {
        ReportBody::Full(inv) => {
            if inv.digest() != report.digest {
                return Err(reject(
                    FleetErrorKind::DigestMismatch,
                    "the report's inventory does not match its digest (corrupted or tampered)",
                ));
            }
            ((**inv).clone(), ReportKind::Full)
        }
        ReportBody::Delta { base_seq, delta } => {
            let Some(base) = prev.filter(|_| last_seq == Some(*base_seq)) else {
                return Err(reject(
                    FleetErrorKind::BaseMismatch,
                    format!(
                        "this delta applies to report {base_seq}, but the relay's last report is {}; send a full report",
                        last_words()
                    ),
                ));
            };
            let next = base
                .apply_checked(delta, &report.digest)
                .map_err(|e| match e {
                    DeltaError::DigestMismatch => reject(
                        FleetErrorKind::DigestMismatch,
                        "the inventory after this delta does not match its digest (corrupted or tampered)",
                    ),
                    DeltaError::RemovesMissing(_) => {
                        reject(FleetErrorKind::BaseMismatch, e.to_string())
                    }
                })?;
            (next, ReportKind::Delta)
        }
    };
    if report.seq != expected {
        return resync(
            FleetErrorKind::SeqGap,
            format!(
                "report {} skips ahead: the relay's last report is {}; send it as report {expected}",
                report.seq,
                last_words()
            ),
        );
    }
    let changes = match prev {
        None => vec![(
            ChangeKind::FirstReport,
            "inventory".to_string(),
            None,
            Some(format!("{} packages", next.software.packages.len())),
        )],
        Some(p) => changes(p, &next),
    };
    let packages = match (&report.body, prev.is_some()) {
        (ReportBody::Delta { delta, .. }, true) => PackageUpdate::Patch {
            delete: delta
                .removed
                .iter()
                .cloned()
                .chain(delta.upserted.iter().map(Package::key))
                .collect(),
            insert: delta.upserted.clone(),
        },
        _ => PackageUpdate::Replace,
    };
    Ok(Plan::Store(Box::new(Commit {
        seq: report.seq,
        kind,
        next,
        changes,
        packages,
    })))
}

/// The name of a package in a change (`source:name[:arch]`).
pub fn key_name(k: &PackageKey) -> String {
    if k.arch.is_empty() {
        format!("{}:{}", k.source, k.name)
    } else {
        format!("{}:{}:{}", k.source, k.name, k.arch)
    }
}

/// Flattens a JSON value into `path = value` pairs; array items are named by their `name`,
/// `connector` or `locator` field when they have one, so reordering is not a change.
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, v, out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                let label = ["name", "connector", "locator"]
                    .iter()
                    .find_map(|k| v.get(k).and_then(|x| x.as_str()).map(str::to_string))
                    .unwrap_or_else(|| match v {
                        serde_json::Value::String(s) => s.clone(),
                        _ => i.to_string(),
                    });
                flatten(&format!("{prefix}[{label}]"), v, out);
            }
        }
        serde_json::Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The changes from `old` to `new`: packages installed, upgraded, removed; hardware facts changed.
pub fn changes(old: &Inventory, new: &Inventory) -> Vec<Change> {
    let mut out = Vec::new();
    let o: BTreeMap<PackageKey, &Package> =
        old.software.packages.iter().map(|p| (p.key(), p)).collect();
    let n: BTreeMap<PackageKey, &Package> =
        new.software.packages.iter().map(|p| (p.key(), p)).collect();
    for (k, p) in &n {
        match o.get(k) {
            None => out.push((
                ChangeKind::Installed,
                key_name(k),
                None,
                Some(p.version.clone()),
            )),
            Some(q) if q.version != p.version => out.push((
                ChangeKind::Upgraded,
                key_name(k),
                Some(q.version.clone()),
                Some(p.version.clone()),
            )),
            Some(_) => {}
        }
    }
    for (k, q) in &o {
        if !n.contains_key(k) {
            out.push((
                ChangeKind::Removed,
                key_name(k),
                Some(q.version.clone()),
                None,
            ));
        }
    }
    if old.hardware != new.hardware {
        let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
        if let (Ok(x), Ok(y)) = (
            serde_json::to_value(&old.hardware),
            serde_json::to_value(&new.hardware),
        ) {
            flatten("", &x, &mut a);
            flatten("", &y, &mut b);
        }
        let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for k in keys {
            let (x, y) = (a.get(k), b.get(k));
            if x != y {
                out.push((ChangeKind::Hardware, k.clone(), x.cloned(), y.cloned()));
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tether_proto::inventory::{Disk, DiskKind, Fact, fixture};

    pub(crate) fn inventory(host: &str, packages: usize) -> Inventory {
        let mut inv = fixture::inventory(
            (0..packages)
                .map(|i| fixture::package(&format!("package-{i:04}"), &format!("1.{i}-1")))
                .collect(),
        );
        inv.hardware.system.hostname = host.into();
        inv.hardware.memory.total = 32 << 30;
        inv
    }

    #[test]
    fn hardware_and_package_changes_are_named() {
        let old = inventory("h", 5);
        let mut new = old.clone();
        new.hardware.memory.total *= 2;
        new.hardware.disks.push(Disk {
            name: "sdb".into(),
            model: Fact::Value("Disk 2".into()),
            serial: Fact::NeedsRoot,
            size: 1 << 40,
            kind: DiskKind::Ssd,
            removable: false,
            partitions: vec![],
        });
        new.software.packages.remove(0);
        new.software.packages[0].version = "9".into();
        let c = changes(&old, &new);
        let find = |k: ChangeKind, item: &str| c.iter().find(|x| x.0 == k && x.1 == item).cloned();
        let mem = find(ChangeKind::Hardware, "memory.total").unwrap();
        assert_eq!(mem.2, Some((32u64 << 30).to_string()));
        assert_eq!(mem.3, Some((64u64 << 30).to_string()));
        assert!(
            find(ChangeKind::Hardware, "disks[sdb].size").is_some(),
            "{c:?}"
        );
        assert!(find(ChangeKind::Removed, "dpkg:package-0000:amd64").is_some());
        let up = find(ChangeKind::Upgraded, "dpkg:package-0001:amd64").unwrap();
        assert_eq!(
            (up.2.as_deref(), up.3.as_deref()),
            (Some("1.1-1"), Some("9"))
        );
        // Status-only differences are not changes.
        let mut same = old.clone();
        same.status.uptime_secs += 5;
        assert!(changes(&old, &same).is_empty());
    }

    fn head(last_seq: Option<u64>, snapshot: Option<&Inventory>) -> Head {
        Head {
            device_id: "dev_a".into(),
            last_seq,
            snapshot: snapshot.cloned(),
        }
    }

    fn full(seq: u64, inv: &Inventory) -> Report {
        Report {
            device_id: "dev_a".into(),
            seq,
            digest: inv.digest(),
            body: ReportBody::Full(Box::new(inv.clone())),
        }
    }

    fn resync(p: Result<Plan, FleetError>) -> (u64, FleetErrorKind) {
        match p {
            Ok(Plan::Resync { expected, error }) => (expected, error.kind),
            other => panic!("expected a resync, got {other:?}"),
        }
    }

    fn stored(p: Result<Plan, FleetError>) -> Commit {
        match p {
            Ok(Plan::Store(c)) => *c,
            other => panic!("expected a commit, got {other:?}"),
        }
    }

    #[test]
    fn the_first_report_is_full_and_numbered_one() {
        let a = inventory("h", 3);
        let c = stored(plan(&head(None, None), &full(1, &a)));
        assert_eq!(
            (c.seq, c.kind, c.packages),
            (1, ReportKind::Full, PackageUpdate::Replace)
        );
        assert_eq!(c.changes.len(), 1);
        assert_eq!(c.changes[0].0, ChangeKind::FirstReport);
        assert_eq!(c.changes[0].3.as_deref(), Some("3 packages"));
        assert_eq!(
            resync(plan(&head(None, None), &full(2, &a))),
            (1, FleetErrorKind::SeqGap)
        );
        let mut other = full(1, &a);
        other.device_id = "dev_b".into();
        let e = plan(&head(None, None), &other).unwrap_err();
        assert_eq!(e.kind, FleetErrorKind::WrongDevice);
        assert_eq!(
            check_device("dev_a", &other).unwrap_err().kind,
            FleetErrorKind::WrongDevice
        );
    }

    #[test]
    fn numbers_dedup_and_conflict_against_the_last_stored_report() {
        let (a, b) = (inventory("h", 1), inventory("h", 2));
        let h = head(Some(4), Some(&a));
        assert!(matches!(plan(&h, &full(4, &a)), Ok(Plan::Duplicate)));
        assert_eq!(
            resync(plan(&h, &full(4, &b))),
            (5, FleetErrorKind::SeqConflict)
        );
        assert_eq!(
            resync(plan(&h, &full(3, &b))),
            (5, FleetErrorKind::SeqConflict)
        );
        assert_eq!(resync(plan(&h, &full(7, &b))), (5, FleetErrorKind::SeqGap));
        for bad in [0, MAX_SEQ + 1, u64::MAX] {
            assert_eq!(
                resync(plan(&h, &full(bad, &b))),
                (5, FleetErrorKind::SeqOutOfRange)
            );
        }
        let c = stored(plan(&h, &full(5, &b)));
        assert_eq!(c.seq, 5);
        assert!(
            c.changes.iter().any(|x| x.0 == ChangeKind::Installed),
            "{:?}",
            c.changes
        );
    }

    #[test]
    fn digests_and_delta_bases_are_checked() {
        let (a, b) = (inventory("h", 1), inventory("h", 2));
        let mut tampered = full(1, &a);
        tampered.digest = b.digest();
        assert_eq!(
            plan(&head(None, None), &tampered).unwrap_err().kind,
            FleetErrorKind::DigestMismatch
        );
        let delta = b.delta_from(&a);
        let report = |base_seq, digest: String| Report {
            device_id: "dev_a".into(),
            seq: 2,
            digest,
            body: ReportBody::Delta {
                base_seq,
                delta: Box::new(delta.clone()),
            },
        };
        let h = head(Some(1), Some(&a));
        let c = stored(plan(&h, &report(1, b.digest())));
        assert_eq!(c.kind, ReportKind::Delta);
        assert_eq!(c.next.digest(), b.digest());
        match c.packages {
            PackageUpdate::Patch { delete, insert } => {
                assert_eq!(insert.len(), delta.upserted.len());
                assert_eq!(delete.len(), delta.removed.len() + delta.upserted.len());
            }
            other => panic!("a delta patches the index, not {other:?}"),
        }
        assert_eq!(
            plan(&h, &report(0, b.digest())).unwrap_err().kind,
            FleetErrorKind::BaseMismatch
        );
        assert_eq!(
            plan(&head(None, None), &report(1, b.digest()))
                .unwrap_err()
                .kind,
            FleetErrorKind::BaseMismatch
        );
        assert_eq!(
            plan(&h, &report(1, a.digest())).unwrap_err().kind,
            FleetErrorKind::DigestMismatch
        );
    }
}
