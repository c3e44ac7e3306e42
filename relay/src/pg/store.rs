//! The fleet [`Store`] on PostgreSQL. The rules are the SQLite store's (the pure [`ingest::plan`]
//! decides, the store loads the head and commits the plan); what differs is concurrency: a
//! device's row is locked (`FOR UPDATE`) for the whole ingest, and a token's for an enrollment, so
//! two nodes taking reports of one device, or spending one token, do it one after the other.

use postgres::{Client, GenericClient};
use tether_proto::codec;
use tether_proto::fleet::{
    ChangeKind, ChangeRecord, DeviceRecord, DeviceSummary, FleetError, FleetErrorKind, Report,
    SearchHit,
};
use tether_proto::inventory::Package;
use tether_proto::org::{PublicKey, SignedPolicy};

use super::{Pg, words};
use crate::ingest::{self, Commit, Head, PackageUpdate, Plan};
use crate::store::{
    DeviceInfo, Ingested, NewToken, SUMMARY_COLS, Store, TokenInfo, check_enrollment, check_len,
    check_new_policy, int, policy_body, policy_from, random_hex, reject, sha256_hex, source_from,
    uint,
};

/// The fleet store in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pg: Pg,
}

fn db_err(e: impl std::fmt::Display) -> FleetError {
    tracing::error!(error = %e, "fleet store failed");
    FleetError::new(
        FleetErrorKind::StoreFailed,
        format!("the relay's fleet store failed: {e}"),
    )
}

fn q(e: postgres::Error) -> FleetError {
    db_err(words(&e))
}

fn summary_row(r: &postgres::Row) -> DeviceSummary {
    DeviceSummary {
        device_id: r.get(0),
        org: r.get(1),
        hostname: r.get(2),
        os: r.get(3),
        enrolled_unix: uint(r.get(4)),
        first_seen_unix: r.get::<_, Option<i64>>(5).map(uint),
        last_seen_unix: r.get::<_, Option<i64>>(6).map(uint),
        last_seq: r.get::<_, Option<i64>>(7).map(uint),
        packages: u32::try_from(r.get::<_, i64>(8)).unwrap_or(u32::MAX),
        device_key: crate::store::device_key(r.get(9)),
    }
}

impl PgStore {
    /// The fleet store in `pg`'s database (already migrated).
    pub fn new(pg: Pg) -> Self {
        PgStore { pg }
    }

    fn with<R: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<R, FleetError> + Send,
    ) -> Result<R, FleetError> {
        self.pg.with(db_err, f)
    }
}

/// Finds the device id for `device` (id or unique host name) within `org`.
fn resolve(c: &mut impl GenericClient, org: &str, device: &str) -> Result<String, FleetError> {
    if let Some(r) = c
        .query_opt(
            "SELECT id FROM devices WHERE org = $1 AND id = $2",
            &[&org, &device],
        )
        .map_err(q)?
    {
        return Ok(r.get(0));
    }
    let ids: Vec<String> = c
        .query(
            "SELECT id FROM devices WHERE org = $1 AND hostname = $2 ORDER BY id",
            &[&org, &device],
        )
        .map_err(q)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    match ids.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(FleetError::new(
            FleetErrorKind::UnknownDevice,
            format!("no device {device:?} in your organisation"),
        )),
        _ => Err(FleetError::new(
            FleetErrorKind::UnknownDevice,
            format!(
                "{} devices are named {device:?}; use a device id: {}",
                ids.len(),
                ids.join(", ")
            ),
        )),
    }
}

/// The head of `device_id`, its row locked until the transaction ends.
fn load_head(c: &mut impl GenericClient, device_id: &str) -> Result<Head, FleetError> {
    let row = c
        .query_one(
            "SELECT last_seq, snapshot FROM devices WHERE id = $1 FOR UPDATE",
            &[&device_id],
        )
        .map_err(q)?;
    let stored: Option<i64> = row.get(0);
    let snapshot: Option<Vec<u8>> = row.get(1);
    let last_seq = match stored {
        None => None,
        Some(s) if s > 0 => Some(uint(s)),
        // Never written by this backend (it refuses numbers beyond i64); kept like SQLite's rule.
        Some(_) => c
            .query_one(
                "SELECT MAX(seq) FROM reports WHERE device_id = $1 AND seq > 0",
                &[&device_id],
            )
            .map_err(q)?
            .get::<_, Option<i64>>(0)
            .map(uint),
    };
    let snapshot = match snapshot {
        Some(b) => Some(codec::from_body(&b).map_err(db_err)?),
        None => None,
    };
    Ok(Head {
        device_id: device_id.to_string(),
        last_seq,
        snapshot,
    })
}

/// Writes a planned report; the caller commits. Rows go in as arrays (`unnest`), one statement
/// per table, so a full report of hundreds of packages is a handful of round trips.
fn store_commit(
    c: &mut impl GenericClient,
    device_id: &str,
    commit: &Commit,
    now: u64,
) -> Result<(), FleetError> {
    let next = &commit.next;
    let seq = int("report number", commit.seq)?;
    let now = int("time", now)?;
    let body = codec::to_body(next).map_err(db_err)?;
    let os = format!(
        "{} {}",
        next.hardware.system.os_name, next.hardware.system.os_version
    );
    let package_count = i64::try_from(next.software.packages.len()).map_err(db_err)?;
    c.execute(
        "UPDATE devices SET last_seq = $2, snapshot = $3, hostname = $4, os = $5, package_count = $6,
         first_seen_unix = COALESCE(first_seen_unix, $7), last_seen_unix = $7 WHERE id = $1",
        &[
            &device_id,
            &seq,
            &body,
            &next.hardware.system.hostname,
            &os.trim(),
            &package_count,
            &now,
        ],
    )
    .map_err(q)?;
    c.execute(
        "INSERT INTO reports (device_id, seq, at_unix, kind) VALUES ($1, $2, $3, $4)",
        &[&device_id, &seq, &now, &commit.kind.as_str()],
    )
    .map_err(q)?;
    if !commit.changes.is_empty() {
        let kinds: Vec<&str> = commit.changes.iter().map(|c| c.0.name()).collect();
        let items: Vec<&str> = commit.changes.iter().map(|c| c.1.as_str()).collect();
        let olds: Vec<Option<&str>> = commit.changes.iter().map(|c| c.2.as_deref()).collect();
        let news: Vec<Option<&str>> = commit.changes.iter().map(|c| c.3.as_deref()).collect();
        // WITH ORDINALITY keeps the changes in the plan's order (their ids follow it).
        c.execute(
            "INSERT INTO changes (device_id, seq, at_unix, kind, item, old, new)
             SELECT $1, $2, $3, k, i, o, n FROM unnest($4::text[], $5::text[], $6::text[], $7::text[])
                 WITH ORDINALITY AS t(k, i, o, n, ord) ORDER BY ord",
            &[&device_id, &seq, &now, &kinds, &items, &olds, &news],
        )
        .map_err(q)?;
    }
    let insert: &[Package] = match &commit.packages {
        PackageUpdate::Patch { delete, insert } => {
            if !delete.is_empty() {
                let sources: Vec<&str> = delete.iter().map(|k| k.source.name()).collect();
                let names: Vec<&str> = delete.iter().map(|k| k.name.as_str()).collect();
                let arches: Vec<&str> = delete.iter().map(|k| k.arch.as_str()).collect();
                c.execute(
                    "DELETE FROM packages p USING unnest($2::text[], $3::text[], $4::text[]) AS k(s, n, a)
                     WHERE p.device_id = $1 AND p.source = k.s AND p.name = k.n AND p.arch = k.a",
                    &[&device_id, &sources, &names, &arches],
                )
                .map_err(q)?;
            }
            insert
        }
        PackageUpdate::Replace => {
            c.execute("DELETE FROM packages WHERE device_id = $1", &[&device_id])
                .map_err(q)?;
            &next.software.packages
        }
    };
    if !insert.is_empty() {
        let sources: Vec<&str> = insert.iter().map(|p| p.source.name()).collect();
        let names: Vec<&str> = insert.iter().map(|p| p.name.as_str()).collect();
        let arches: Vec<&str> = insert.iter().map(|p| p.arch.as_str()).collect();
        let versions: Vec<&str> = insert.iter().map(|p| p.version.as_str()).collect();
        c.execute(
            "INSERT INTO packages (device_id, source, name, arch, version)
             SELECT $1, s, n, a, v FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS t(s, n, a, v)",
            &[&device_id, &sources, &names, &arches, &versions],
        )
        .map_err(q)?;
    }
    Ok(())
}

fn change_kind(s: &str) -> ChangeKind {
    match s {
        "first-report" => ChangeKind::FirstReport,
        "installed" => ChangeKind::Installed,
        "upgraded" => ChangeKind::Upgraded,
        "removed" => ChangeKind::Removed,
        _ => ChangeKind::Hardware,
    }
}

impl Store for PgStore {
    fn create_token(
        &self,
        org: &str,
        ttl_secs: u64,
        uses: u32,
        now: u64,
    ) -> Result<NewToken, FleetError> {
        if org.trim().is_empty() || org.len() > 64 || org.chars().any(tether_proto::text::is_hidden)
        {
            return Err(reject(
                FleetErrorKind::Invalid,
                "org must be 1–64 printable characters",
            ));
        }
        if uses == 0 {
            return Err(reject(FleetErrorKind::Invalid, "--uses must be at least 1"));
        }
        let token = format!("et_{}", random_hex(24));
        let expires_unix = now.saturating_add(ttl_secs);
        let hash = sha256_hex(&token);
        let created = int("time", now)?;
        let expires = i64::try_from(expires_unix).unwrap_or(i64::MAX);
        self.with(|c| {
            c.execute(
                "INSERT INTO enroll_tokens (token_sha256, org, created_unix, expires_unix, uses_left)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&hash, &org, &created, &expires, &i64::from(uses)],
            )
            .map_err(q)
        })?;
        Ok(NewToken {
            token,
            expires_unix,
            uses,
        })
    }

    fn enroll(
        &self,
        token: &str,
        secret_sha256: &str,
        hostname: &str,
        device_key: &PublicKey,
        now: u64,
    ) -> Result<(String, String), FleetError> {
        let hostname = check_enrollment(token, secret_sha256, hostname)?;
        let now_i = int("time", now)?;
        let hash = sha256_hex(token);
        self.with(|c| {
            let mut tx = c.transaction().map_err(q)?;
            let row = tx
                .query_opt(
                    "SELECT org, expires_unix, uses_left FROM enroll_tokens WHERE token_sha256 = $1 FOR UPDATE",
                    &[&hash],
                )
                .map_err(q)?;
            let Some(row) = row else {
                return Err(reject(
                    FleetErrorKind::UnknownToken,
                    "this enrollment token is not known to the relay (mistyped, or from another relay)",
                ));
            };
            let (org, expires, uses_left): (String, i64, i64) = (row.get(0), row.get(1), row.get(2));
            if uint(expires) <= now {
                return Err(reject(
                    FleetErrorKind::TokenExpired,
                    "this enrollment token has expired; ask IT for a new one",
                ));
            }
            if uses_left <= 0 {
                return Err(reject(
                    FleetErrorKind::TokenUsed,
                    "this enrollment token has already been used; ask IT for a new one",
                ));
            }
            tx.execute(
                "UPDATE enroll_tokens SET uses_left = uses_left - 1 WHERE token_sha256 = $1",
                &[&hash],
            )
            .map_err(q)?;
            let id = format!("dev_{}", random_hex(8));
            tx.execute(
                "INSERT INTO devices (id, org, secret_sha256, hostname, enrolled_unix, device_key) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &id,
                    &org,
                    &secret_sha256.to_ascii_lowercase(),
                    &hostname,
                    &now_i,
                    &device_key.to_string(),
                ],
            )
            .map_err(q)?;
            tx.commit().map_err(q)?;
            Ok((id, org))
        })
    }

    fn authenticate(&self, device_id: &str, secret: &str) -> Result<Option<u64>, FleetError> {
        check_len("the device id", device_id)?;
        check_len("the device secret", secret)?;
        self.with(|c| {
            let row = c
                .query_opt(
                    "SELECT secret_sha256 FROM devices WHERE id = $1",
                    &[&device_id],
                )
                .map_err(q)?;
            match row {
                Some(r) if r.get::<_, String>(0) == sha256_hex(secret) => {
                    Ok(load_head(c, device_id)?.last_seq)
                }
                _ => Err(reject(
                    FleetErrorKind::BadDeviceCredentials,
                    "unknown device or wrong device secret; enroll this device again",
                )),
            }
        })
    }

    fn ingest(&self, device_id: &str, report: &Report, now: u64) -> Result<Ingested, FleetError> {
        ingest::check_device(device_id, report)?;
        self.with(|c| {
            let mut tx = c.transaction().map_err(q)?;
            let head = load_head(&mut tx, device_id)?;
            match ingest::plan(&head, report)? {
                Plan::Duplicate => Ok(Ingested::Duplicate),
                Plan::Resync { expected, error } => Ok(Ingested::Resync { expected, error }),
                Plan::Store(commit) => {
                    store_commit(&mut tx, device_id, &commit, now)?;
                    tx.commit().map_err(q)?;
                    Ok(Ingested::Stored)
                }
            }
        })
    }

    fn devices(&self, org: &str) -> Result<Vec<DeviceSummary>, FleetError> {
        self.with(|c| {
            Ok(c.query(
                &format!("SELECT {SUMMARY_COLS} FROM devices WHERE org = $1 ORDER BY hostname, id"),
                &[&org],
            )
            .map_err(q)?
            .iter()
            .map(summary_row)
            .collect())
        })
    }

    fn device(&self, org: &str, device: &str) -> Result<DeviceRecord, FleetError> {
        self.with(|c| {
            let id = resolve(c, org, device)?;
            let r = c
                .query_one(
                    &format!("SELECT {SUMMARY_COLS}, snapshot FROM devices WHERE id = $1"),
                    &[&id],
                )
                .map_err(q)?;
            let inventory = match r.get::<_, Option<Vec<u8>>>(10) {
                Some(b) => Some(codec::from_body(&b).map_err(db_err)?),
                None => None,
            };
            Ok(DeviceRecord {
                summary: summary_row(&r),
                inventory,
            })
        })
    }

    fn history(&self, org: &str, device: &str) -> Result<Vec<ChangeRecord>, FleetError> {
        self.with(|c| {
            let id = resolve(c, org, device)?;
            Ok(c.query(
                "SELECT seq, at_unix, kind, item, old, new FROM changes WHERE device_id = $1 ORDER BY id",
                &[&id],
            )
            .map_err(q)?
            .iter()
            .map(|r| ChangeRecord {
                device_id: id.clone(),
                seq: uint(r.get(0)),
                at_unix: uint(r.get(1)),
                kind: change_kind(r.get(2)),
                item: r.get(3),
                old: r.get(4),
                new: r.get(5),
            })
            .collect())
        })
    }

    fn search(
        &self,
        org: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<Vec<SearchHit>, FleetError> {
        self.with(|c| {
            Ok(c.query(
                "SELECT d.id, d.hostname, p.source, p.name, p.arch, p.version FROM packages p
                 JOIN devices d ON d.id = p.device_id
                 WHERE d.org = $1 AND p.name = $2 AND ($3::text IS NULL OR p.version = $3)
                 ORDER BY d.hostname, d.id, p.source, p.arch",
                &[&org, &name, &version],
            )
            .map_err(q)?
            .iter()
            .map(|r| SearchHit {
                device_id: r.get(0),
                hostname: r.get(1),
                package: Package {
                    source: source_from(r.get(2)),
                    name: r.get(3),
                    arch: r.get(4),
                    version: r.get(5),
                },
            })
            .collect())
        })
    }

    fn report_count(&self, device_id: &str) -> Result<u64, FleetError> {
        self.with(|c| {
            Ok(uint(
                c.query_one(
                    "SELECT COUNT(*) FROM reports WHERE device_id = $1",
                    &[&device_id],
                )
                .map_err(q)?
                .get(0),
            ))
        })
    }

    fn tokens(&self) -> Result<Vec<TokenInfo>, FleetError> {
        self.with(|c| {
            Ok(c.query(
                "SELECT token_sha256, org, created_unix, expires_unix, uses_left FROM enroll_tokens
                 ORDER BY created_unix DESC, token_sha256",
                &[],
            )
            .map_err(q)?
            .iter()
            .map(|r| TokenInfo {
                id: r.get(0),
                org: r.get(1),
                created_unix: uint(r.get(2)),
                expires_unix: uint(r.get(3)),
                uses_left: u32::try_from(r.get::<_, i64>(4)).unwrap_or(0),
            })
            .collect())
        })
    }

    fn delete_token(&self, id_prefix: &str) -> Result<(), FleetError> {
        if !id_prefix.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(reject(FleetErrorKind::Invalid, "a token id is hex digits"));
        }
        // Hex digits only (checked above), so the pattern holds no wildcard of its own.
        let pattern = format!("{id_prefix}%");
        self.with(|c| {
            c.execute(
                "DELETE FROM enroll_tokens WHERE token_sha256 LIKE $1",
                &[&pattern],
            )
            .map_err(q)?;
            Ok(())
        })
    }

    fn device_list(&self, org: Option<&str>) -> Result<Vec<DeviceInfo>, FleetError> {
        self.with(|c| {
            Ok(c.query(
                "SELECT id, org, hostname, last_seen_unix FROM devices
                 WHERE $1::text IS NULL OR org = $1 ORDER BY org, hostname, id",
                &[&org],
            )
            .map_err(q)?
            .iter()
            .map(|r| DeviceInfo {
                id: r.get(0),
                org: r.get(1),
                hostname: r.get(2),
                last_seen_unix: r.get::<_, Option<i64>>(3).map(uint),
            })
            .collect())
        })
    }

    fn remove_device(&self, device_id: &str) -> Result<(), FleetError> {
        self.with(|c| {
            let mut tx = c.transaction().map_err(q)?;
            for table in ["packages", "changes", "reports"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE device_id = $1"),
                    &[&device_id],
                )
                .map_err(q)?;
            }
            tx.execute("DELETE FROM devices WHERE id = $1", &[&device_id])
                .map_err(q)?;
            tx.commit().map_err(q)
        })
    }

    fn set_policy(&self, org: &str, policy: &SignedPolicy) -> Result<(), FleetError> {
        let body = policy_body(policy)?;
        let version = int("policy version", policy.policy.version)?;
        self.with(|c| {
            let mut tx = c.transaction().map_err(q)?;
            let held = policy_from(
                tx.query_opt(
                    "SELECT body FROM policies WHERE org = $1 FOR UPDATE",
                    &[&org],
                )
                .map_err(q)?
                .map(|r| r.get(0)),
            )?;
            check_new_policy(org, policy, held.as_ref())?;
            tx.execute(
                "INSERT INTO policies (org, version, body) VALUES ($1, $2, $3) \
                 ON CONFLICT (org) DO UPDATE SET version = excluded.version, body = excluded.body",
                &[&org, &version, &body],
            )
            .map_err(q)?;
            tx.commit().map_err(q)
        })
    }

    fn policy(&self, org: &str) -> Result<Option<SignedPolicy>, FleetError> {
        self.with(|c| {
            policy_from(
                c.query_opt("SELECT body FROM policies WHERE org = $1", &[&org])
                    .map_err(q)?
                    .map(|r| r.get(0)),
            )
        })
    }

    fn device_policy(&self, device_id: &str) -> Result<Option<SignedPolicy>, FleetError> {
        self.with(|c| {
            policy_from(
                c.query_opt(
                    "SELECT p.body FROM policies p JOIN devices d ON d.org = p.org WHERE d.id = $1",
                    &[&device_id],
                )
                .map_err(q)?
                .map(|r| r.get(0)),
            )
        })
    }
}
