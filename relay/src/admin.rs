//! Operator commands behind `tether-relay technician ...` and `tether-relay audit ...`, kept in the
//! library so `main.rs` stays a thin parser and the commands are testable.

use std::path::Path;
use std::time::Duration;

use tether_proto::msg::{TechnicianRole, Tier};

use crate::audit::{self, AuditError, AuditEvent, ChainError, Verified};
use crate::backend::Backend;
use crate::technicians::{TechnicianError, TechnicianInfo};

/// Errors from operator commands.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The technician store failed or refused.
    #[error(transparent)]
    Technician(#[from] TechnicianError),
    /// The audit log failed.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The audit chain is broken.
    #[error("audit log is NOT intact: {0}")]
    Chain(#[from] ChainError),
    /// A file could not be read or the data directory created.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A duration like `7d` could not be parsed.
    #[error("invalid duration {0:?}: use a number followed by s, m, h or d (e.g. 30m, 12h, 7d)")]
    Duration(String),
}

/// Parses `90s`, `30m`, `12h`, `7d`.
pub fn parse_duration(s: &str) -> Result<Duration, AdminError> {
    let s = s.trim();
    let bad = || AdminError::Duration(s.to_string());
    let unit = s.chars().last().ok_or_else(bad)?;
    let n: u64 = s[..s.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    let secs = match unit {
        's' => n,
        'm' => n * 60,
        'h' => n * 3600,
        'd' => n * 86_400,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(secs))
}

/// Registers a technician, audits it, and returns the token.
pub fn add_technician(
    data_dir: &Path,
    name: &str,
    org: &str,
    role: TechnicianRole,
    valid_for: Option<Duration>,
) -> Result<String, AdminError> {
    std::fs::create_dir_all(data_dir)?;
    add_technician_in(&sqlite(data_dir), name, org, role, Tier::L1, valid_for)
}

/// [`add_technician`] in any backend, with a tier.
pub fn add_technician_in(
    backend: &Backend,
    name: &str,
    org: &str,
    role: TechnicianRole,
    tier: Tier,
    valid_for: Option<Duration>,
) -> Result<String, AdminError> {
    let token = backend.add_technician(name, org, role, tier, valid_for)?;
    backend.append_audit(&AuditEvent::TechnicianAdded {
        technician: name.into(),
        org: org.into(),
        role: role.to_string(),
    })?;
    Ok(token)
}

fn sqlite(data_dir: &Path) -> Backend {
    Backend::Sqlite {
        data_dir: data_dir.to_path_buf(),
    }
}

/// Sets a technician's support tier and audits it.
pub fn set_technician_tier(
    data_dir: &Path,
    name: &str,
    org: &str,
    tier: Tier,
) -> Result<(), AdminError> {
    set_technician_tier_in(&sqlite(data_dir), name, org, tier)
}

/// [`set_technician_tier`] in any backend.
pub fn set_technician_tier_in(
    backend: &Backend,
    name: &str,
    org: &str,
    tier: Tier,
) -> Result<(), AdminError> {
    backend.set_technician_tier(name, org, tier)?;
    backend.append_audit(&AuditEvent::TechnicianTierSet {
        technician: name.into(),
        org: org.into(),
        tier: tier.to_string(),
    })?;
    Ok(())
}

/// Revokes a technician and audits it.
pub fn revoke_technician(data_dir: &Path, name: &str, org: &str) -> Result<(), AdminError> {
    revoke_technician_in(&sqlite(data_dir), name, org)
}

/// [`revoke_technician`] in any backend.
pub fn revoke_technician_in(backend: &Backend, name: &str, org: &str) -> Result<(), AdminError> {
    backend.revoke_technician(name, org)?;
    backend.append_audit(&AuditEvent::TechnicianRevoked {
        technician: name.into(),
        org: org.into(),
    })?;
    Ok(())
}

/// All technicians.
pub fn list_technicians(data_dir: &Path) -> Result<Vec<TechnicianInfo>, AdminError> {
    Ok(sqlite(data_dir).technicians()?)
}

/// Verifies the audit chain; the number of records and the repairs of torn tails when intact.
pub fn verify_audit(data_dir: &Path) -> Result<Verified, AdminError> {
    verify_audit_in(&sqlite(data_dir))
}

/// [`verify_audit`] in any backend: the file, or the cluster's chain in the database.
pub fn verify_audit_in(backend: &Backend) -> Result<Verified, AdminError> {
    let text = backend.audit_text()?;
    Ok(audit::verify(&text)?)
}

/// Which records `audit show` prints.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only records newer than this many seconds before now.
    pub since: Option<Duration>,
    /// Only records naming this technician.
    pub technician: Option<String>,
}

/// The records matching `filter`, as parsed JSON objects.
pub fn audit_records(
    data_dir: &Path,
    filter: &AuditFilter,
) -> Result<Vec<serde_json::Value>, AdminError> {
    audit_records_in(&sqlite(data_dir), filter)
}

/// [`audit_records`] in any backend.
pub fn audit_records_in(
    backend: &Backend,
    filter: &AuditFilter,
) -> Result<Vec<serde_json::Value>, AdminError> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let cutoff = filter
        .since
        .map(|d| now_ms.saturating_sub(d.as_millis() as u64));
    Ok(backend
        .audit_text()?
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| cutoff.is_none_or(|c| v["ts_unix_ms"].as_u64().unwrap_or(0) >= c))
        .filter(|v| {
            filter
                .technician
                .as_ref()
                .is_none_or(|t| v["technician"].as_str() == Some(t.as_str()))
        })
        .collect())
}

/// One record as a line for people: UTC time, event, then the other fields.
pub fn render_record(v: &serde_json::Value) -> String {
    let ts = v["ts_unix_ms"].as_u64().unwrap_or(0) / 1000;
    let mut out = format!(
        "{} #{:<4} {:<18}",
        utc(ts),
        v["seq"],
        v["event"].as_str().unwrap_or("?")
    );
    if let Some(obj) = v.as_object() {
        for (k, val) in obj {
            if matches!(k.as_str(), "seq" | "ts_unix_ms" | "prev" | "event") || val.is_null() {
                continue;
            }
            match val.as_str() {
                Some(s) => out.push_str(&format!(" {k}={s:?}")),
                None => out.push_str(&format!(" {k}={val}")),
            }
        }
    }
    out
}

/// `YYYY-MM-DD HH:MM:SSZ` from Unix seconds.
pub fn utc(secs: u64) -> String {
    let c = tether_proto::time::civil(secs as i64);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_dates() {
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert!(
            parse_duration("7w").is_err()
                && parse_duration("d").is_err()
                && parse_duration("").is_err()
        );
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(1_795_541_809), "2026-11-24 17:36:49Z");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00Z");
    }

    #[test]
    fn admin_commands_are_audited_and_filterable() {
        let dir = tempfile::tempdir().unwrap();
        add_technician(dir.path(), "Ada", "Acme", TechnicianRole::Admin, None).unwrap();
        add_technician(
            dir.path(),
            "Bob",
            "Acme",
            TechnicianRole::Viewer,
            Some(Duration::from_secs(60)),
        )
        .unwrap();
        revoke_technician(dir.path(), "Bob", "Acme").unwrap();
        assert_eq!(verify_audit(dir.path()).unwrap().records, 3);
        let bob = AuditFilter {
            technician: Some("Bob".into()),
            ..Default::default()
        };
        let records = audit_records(dir.path(), &bob).unwrap();
        let events: Vec<_> = records
            .iter()
            .map(|r| r["event"].as_str().unwrap())
            .collect();
        assert_eq!(events, ["technician_added", "technician_revoked"]);
        assert!(render_record(&records[0]).contains("technician=\"Bob\""));
        let list = list_technicians(dir.path()).unwrap();
        assert_eq!(
            list.iter().map(|t| t.status).collect::<Vec<_>>(),
            ["active", "revoked"]
        );
    }
}
