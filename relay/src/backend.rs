//! Where the relay keeps what it stores: SQLite files and `audit.jsonl` in the data directory (the
//! zero-configuration default), or one PostgreSQL database that every node of a relay cluster
//! shares (`--database postgres://…`, [`crate::pg`]). This is the one place that chooses; the
//! server and the operator commands ask it for the stores and the audit chain by trait.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tether_proto::fleet::FleetError;
use tether_proto::msg::{NodeAddress, TechnicianRole, Tier};
use tether_proto::records::RecordError;

use crate::audit::{AuditError, AuditEvent, AuditFile, AuditLog};
use crate::directory::Directory;
use crate::metrics::Metrics;
use crate::pg::audit::PgAudit;
use crate::pg::directory::PgTechnicians;
use crate::pg::records::PgRecords;
use crate::pg::slots::PgSlots;
use crate::pg::store::PgStore;
use crate::pg::{Pg, PgError};
use crate::records::{RecordStore, Records};
use crate::registry::SlotRegistry;
use crate::store::{SqliteStore, Store};
use crate::technicians::{TechnicianError, TechnicianInfo, Technicians};

/// The storage of one relay process.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Files in the data directory.
    Sqlite {
        /// The data directory.
        data_dir: PathBuf,
    },
    /// A PostgreSQL database (migrated and pooled).
    Postgres(Pg),
}

impl Backend {
    /// SQLite in `data_dir`, or the database at `database` (connected and migrated now: a wrong URL,
    /// a refused login or a newer schema is an error before anything is written).
    pub fn open(database: Option<&str>, data_dir: &Path) -> Result<Backend, PgError> {
        match database {
            None => Ok(Backend::Sqlite {
                data_dir: data_dir.to_path_buf(),
            }),
            Some(url) => Ok(Backend::Postgres(Pg::open(url)?)),
        }
    }

    /// Whether other relay nodes may share this storage (a cluster: slots are then held in it).
    pub fn is_shared(&self) -> bool {
        matches!(self, Backend::Postgres(_))
    }

    /// The cluster's slot registry as node `me` sees it; `None` for SQLite (one relay).
    pub fn slot_registry(&self, me: NodeAddress) -> Option<Arc<dyn SlotRegistry>> {
        match self {
            Backend::Sqlite { .. } => None,
            Backend::Postgres(pg) => Some(Arc::new(PgSlots::new(pg.clone(), me))),
        }
    }

    /// Where things are stored, for people.
    pub fn describe(&self) -> String {
        match self {
            Backend::Sqlite { data_dir } => format!("SQLite in {}", data_dir.display()),
            Backend::Postgres(pg) => format!("PostgreSQL {}", pg.target()),
        }
    }

    /// The fleet store.
    pub fn store(&self) -> Result<Arc<dyn Store>, FleetError> {
        Ok(match self {
            Backend::Sqlite { data_dir } => Arc::new(SqliteStore::open(data_dir)?),
            Backend::Postgres(pg) => Arc::new(PgStore::new(pg.clone())),
        })
    }

    /// The session records.
    pub fn records(&self) -> Result<Arc<dyn RecordStore>, RecordError> {
        Ok(match self {
            Backend::Sqlite { data_dir } => Arc::new(Records::open(data_dir)?),
            Backend::Postgres(pg) => Arc::new(PgRecords::new(pg.clone())),
        })
    }

    /// The technician directory.
    pub fn directory(&self) -> Arc<dyn Directory> {
        match self {
            Backend::Sqlite { data_dir } => Arc::new(Technicians::new(data_dir)),
            Backend::Postgres(pg) => Arc::new(PgTechnicians::new(pg.clone())),
        }
    }

    /// Starts the relay's audit writer.
    pub fn audit_log(&self, metrics: Arc<Metrics>) -> Result<AuditLog, AuditError> {
        match self {
            Backend::Sqlite { data_dir } => AuditLog::spawn(data_dir, metrics),
            Backend::Postgres(pg) => PgAudit::spawn(pg.clone(), metrics),
        }
    }

    /// Appends one event now (the operator commands).
    pub fn append_audit(&self, event: &AuditEvent) -> Result<(), AuditError> {
        match self {
            Backend::Sqlite { data_dir } => AuditFile::open(data_dir)?.append(event),
            Backend::Postgres(pg) => PgAudit::new(pg.clone()).append(event),
        }
    }

    /// The whole audit chain as text, one record per line (empty when nothing was recorded).
    pub fn audit_text(&self) -> Result<String, AuditError> {
        match self {
            Backend::Sqlite { data_dir } => {
                let path = data_dir.join(crate::audit::FILE);
                match std::fs::read_to_string(&path) {
                    Ok(t) => Ok(t),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
                    Err(source) => Err(AuditError::Io { path, source }),
                }
            }
            Backend::Postgres(pg) => PgAudit::new(pg.clone()).text(),
        }
    }

    /// Registers a technician; returns the token (shown once, never stored).
    pub fn add_technician(
        &self,
        name: &str,
        org: &str,
        role: TechnicianRole,
        tier: Tier,
        valid_for: Option<std::time::Duration>,
    ) -> Result<String, TechnicianError> {
        match self {
            Backend::Sqlite { data_dir } => {
                Technicians::new(data_dir).add_full(name, org, role, tier, valid_for)
            }
            Backend::Postgres(pg) => {
                PgTechnicians::new(pg.clone()).add_full(name, org, role, tier, valid_for)
            }
        }
    }

    /// Sets an active technician's tier.
    pub fn set_technician_tier(
        &self,
        name: &str,
        org: &str,
        tier: Tier,
    ) -> Result<(), TechnicianError> {
        match self {
            Backend::Sqlite { data_dir } => Technicians::new(data_dir).set_tier(name, org, tier),
            Backend::Postgres(pg) => PgTechnicians::new(pg.clone()).set_tier(name, org, tier),
        }
    }

    /// Revokes a technician's token.
    pub fn revoke_technician(&self, name: &str, org: &str) -> Result<(), TechnicianError> {
        match self {
            Backend::Sqlite { data_dir } => Technicians::new(data_dir).revoke(name, org),
            Backend::Postgres(pg) => PgTechnicians::new(pg.clone()).revoke(name, org),
        }
    }

    /// Every technician with their status.
    pub fn technicians(&self) -> Result<Vec<TechnicianInfo>, TechnicianError> {
        match self {
            Backend::Sqlite { data_dir } => Technicians::new(data_dir).list(),
            Backend::Postgres(pg) => PgTechnicians::new(pg.clone()).list(),
        }
    }
}
