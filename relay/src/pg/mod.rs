//! The PostgreSQL backend: every store the relay keeps, in one database that any number of relay
//! nodes share (`tether-relay serve --database postgres://…`). SQLite in the data directory stays
//! the zero-configuration default; this is for a relay cluster.
//!
//! # Layout
//! - this file: the connection pool ([`Pg`]), the schema and its migrations, and the errors at start;
//! - [`store`]: the fleet [`crate::store::Store`] (row locks serialise a device's reports across
//!   nodes);
//! - [`records`]: the [`crate::records::RecordStore`], searched through a generated `tsvector`;
//! - [`directory`]: technicians (the [`crate::directory::Directory`] trait and the operator
//!   commands);
//! - [`audit`]: the cluster's one audit chain, appended under a transaction-scoped advisory lock;
//! - [`slots`]: the slots the nodes hold ([`crate::registry::SlotRegistry`]), so a code is unique
//!   across the cluster and a claim on any node finds the node that holds it.
//!
//! # Why a synchronous client and a pool
//! The store traits are synchronous, and the relay already calls them on blocking threads
//! ([`crate::blocking::blocking`]); the audit writer is a thread of its own. So the backend uses
//! the `postgres` crate (the synchronous face of `tokio-postgres`, the maintained driver) with an
//! `r2d2` pool of its connections: the SQL reads like the SQLite backend's, each call borrows a
//! connection for its transaction, and no second async runtime has to be threaded through the
//! relay. A synchronous `postgres` call cannot run on an async worker thread (it drives its own
//! small runtime), so the few calls made from async code (the directory's token check) go through
//! [`offload`].
//!
//! # Schema
//! `tether_schema` holds one row per applied migration. At start, under an advisory lock (two nodes
//! starting at once migrate once), the relay applies what is missing; a database whose version is
//! newer than [`SCHEMA_VERSION`] is refused with [`PgError::NewerSchema`] before anything is
//! written.

pub mod audit;
pub mod directory;
pub mod records;
pub mod slots;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use postgres::NoTls;
use r2d2_postgres::PostgresConnectionManager;

/// The schema version this relay writes: one per migration, so adding one raises it.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How long connecting (at start, and for a new pooled connection) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections one relay process keeps to the database at most.
pub const MAX_POOL: u32 = 16;

/// Advisory lock key under which migrations run ("tether" in ASCII).
const MIGRATION_LOCK: i64 = 0x7465_7468_6572;

/// Errors opening the database.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The `--database` value is not a PostgreSQL connection string.
    #[error(
        "the database URL is not valid ({0}); expected postgres://USER:PASSWORD@HOST:PORT/DATABASE"
    )]
    Url(String),
    /// The server could not be reached, or refused the login (wrong user, password or database).
    #[error("cannot connect to the database {target}: {reason}")]
    Connect {
        /// user@host:port/database, never the password.
        target: String,
        /// The server's or the network's words.
        reason: String,
    },
    /// The database was migrated by a newer relay.
    #[error(
        "the database {target} has schema version {found}, newer than this relay's {supported}: \
         upgrade tether-relay on this node (nothing was written)"
    )]
    NewerSchema {
        /// user@host:port/database.
        target: String,
        /// The version stored.
        found: i64,
        /// [`SCHEMA_VERSION`].
        supported: i64,
    },
    /// A statement of a migration, or the pool itself, failed.
    #[error("database {target}: {reason}")]
    Failed {
        /// user@host:port/database.
        target: String,
        /// What failed.
        reason: String,
    },
}

type Manager = PostgresConnectionManager<NoTls>;
/// A borrowed connection.
pub type Conn = r2d2::PooledConnection<Manager>;

/// A pool of connections to one database, migrated. Clones share the pool.
#[derive(Clone)]
pub struct Pg {
    pool: Arc<Pool>,
    target: String,
}

/// The pool, closed through [`offload`] when the last [`Pg`] goes: closing a `postgres`
/// connection blocks on its runtime, which may not happen on an async worker (a relay handle is
/// dropped there).
struct Pool(Option<r2d2::Pool<Manager>>);

impl Drop for Pool {
    fn drop(&mut self) {
        if let Some(pool) = self.0.take() {
            offload(move || drop(pool));
        }
    }
}

impl std::fmt::Debug for Pg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pg").field("target", &self.target).finish()
    }
}

/// user@host:port/database of a config: what errors and logs name (never the password).
fn describe(config: &postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        config.get_user().unwrap_or("?"),
        config.get_dbname().unwrap_or("?")
    )
}

/// The words of a driver error: the server's message for a database error (never the
/// connection string), else the error's own text.
pub(crate) fn words(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(cause) = src {
                s = format!("{s}: {cause}");
                src = cause.source();
            }
            s
        }
    }
}

/// Runs a synchronous database call from wherever it is made: directly on a plain or blocking
/// thread, through `block_in_place` on a multi-threaded runtime's worker, on a scoped thread on a
/// current-thread runtime (the `postgres` client drives a runtime of its own, which may not be
/// started inside another's worker).
pub fn offload<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Err(_) => f(),
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        Ok(_) => std::thread::scope(|s| match s.spawn(f).join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }),
    }
}

impl Pg {
    /// Connects to `url`, applies missing migrations and opens the pool. A wrong URL, an
    /// unreachable server, a refused login or a newer schema is an error here, with nothing
    /// written.
    pub fn open(url: &str) -> Result<Pg, PgError> {
        offload(|| Self::open_blocking(url))
    }

    fn open_blocking(url: &str) -> Result<Pg, PgError> {
        let mut config: postgres::Config = url.parse().map_err(|e: postgres::Error| {
            // The parser's words never hold the password; the URL itself is not repeated.
            PgError::Url(e.to_string())
        })?;
        config.connect_timeout(CONNECT_TIMEOUT);
        if config.get_application_name().is_none() {
            config.application_name("tether-relay");
        }
        let target = describe(&config);
        let mut client = config.connect(NoTls).map_err(|e| PgError::Connect {
            target: target.clone(),
            reason: words(&e),
        })?;
        migrate(&mut client, &target)?;
        drop(client);
        let pool = r2d2::Pool::builder()
            .max_size(MAX_POOL)
            .min_idle(Some(1))
            .connection_timeout(CONNECT_TIMEOUT)
            .build(PostgresConnectionManager::new(config, NoTls))
            .map_err(|e| PgError::Failed {
                target: target.clone(),
                reason: e.to_string(),
            })?;
        tracing::info!(database = %target, "using PostgreSQL");
        Ok(Pg {
            pool: Arc::new(Pool(Some(pool))),
            target,
        })
    }

    /// user@host:port/database.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Borrows a connection and runs `f` with it (see [`offload`]).
    pub(crate) fn with<R: Send, E: Send>(
        &self,
        fail: impl Fn(String) -> E + Send,
        f: impl FnOnce(&mut postgres::Client) -> Result<R, E> + Send,
    ) -> Result<R, E> {
        offload(move || {
            // Some until the last handle drops it.
            let Some(pool) = self.pool.0.as_ref() else {
                return Err(fail("the connection pool is closed".into()));
            };
            let mut c = pool.get().map_err(|e| {
                fail(format!(
                    "the database {} is unavailable ({e}); the relay retries by itself",
                    self.target
                ))
            })?;
            f(&mut c)
        })
    }
}

/// The schema, one migration per version (index 0 is version 1). Append; never edit a shipped one.
const MIGRATIONS: &[&str] = &[
    // 1: the fleet store, session records, technicians and the audit chain.
    "
CREATE TABLE enroll_tokens (
    token_sha256 TEXT PRIMARY KEY, org TEXT NOT NULL, created_unix BIGINT NOT NULL,
    expires_unix BIGINT NOT NULL, uses_left BIGINT NOT NULL);
CREATE TABLE devices (
    id TEXT PRIMARY KEY, org TEXT NOT NULL, secret_sha256 TEXT NOT NULL, hostname TEXT NOT NULL,
    os TEXT NOT NULL DEFAULT '', enrolled_unix BIGINT NOT NULL, first_seen_unix BIGINT,
    last_seen_unix BIGINT, last_seq BIGINT, snapshot BYTEA, package_count BIGINT NOT NULL DEFAULT 0);
CREATE INDEX devices_org ON devices (org, hostname);
CREATE TABLE reports (
    device_id TEXT NOT NULL, seq BIGINT NOT NULL, at_unix BIGINT NOT NULL, kind TEXT NOT NULL,
    PRIMARY KEY (device_id, seq));
CREATE TABLE changes (
    id BIGSERIAL PRIMARY KEY, device_id TEXT NOT NULL, seq BIGINT NOT NULL,
    at_unix BIGINT NOT NULL, kind TEXT NOT NULL, item TEXT NOT NULL, old TEXT, new TEXT);
CREATE INDEX changes_device ON changes (device_id, id);
CREATE TABLE packages (
    device_id TEXT NOT NULL, source TEXT NOT NULL, name TEXT NOT NULL, arch TEXT NOT NULL,
    version TEXT NOT NULL);
CREATE INDEX packages_name ON packages (name);
CREATE INDEX packages_device ON packages (device_id, source, name, arch);

CREATE TABLE records (
    id BIGSERIAL PRIMARY KEY, org TEXT NOT NULL, started_unix BIGINT NOT NULL,
    ticket TEXT, device TEXT, reason TEXT, scopes_requested TEXT NOT NULL,
    scopes_granted TEXT NOT NULL DEFAULT '', ended_unix BIGINT, duration_secs BIGINT,
    end_reason TEXT, problem TEXT, cause TEXT, fix TEXT, resolution TEXT,
    state TEXT NOT NULL DEFAULT 'open', closed_by TEXT, closed_unix BIGINT,
    search tsvector GENERATED ALWAYS AS (to_tsvector('simple',
        coalesce(reason, '') || ' ' || coalesce(ticket, '') || ' ' || coalesce(problem, '') || ' ' ||
        coalesce(cause, '') || ' ' || coalesce(fix, '') || ' ' || coalesce(resolution, '') || ' ' ||
        coalesce(device, ''))) STORED);
CREATE INDEX records_org ON records (org, id);
CREATE INDEX records_search ON records USING GIN (search);
CREATE TABLE record_technicians (
    record_id BIGINT NOT NULL, name TEXT NOT NULL, joined_unix BIGINT NOT NULL,
    n BIGSERIAL, PRIMARY KEY (record_id, name));
CREATE TABLE record_probes (
    id BIGSERIAL PRIMARY KEY, record_id BIGINT NOT NULL, probe TEXT NOT NULL,
    verdict TEXT NOT NULL, reason TEXT NOT NULL, at_unix BIGINT NOT NULL);
CREATE INDEX record_probes_record ON record_probes (record_id, id);
CREATE TABLE record_inventories (
    id BIGSERIAL PRIMARY KEY, record_id BIGINT NOT NULL, digest TEXT NOT NULL,
    collected_unix BIGINT NOT NULL, hostname TEXT NOT NULL, packages BIGINT NOT NULL);
CREATE INDEX record_inventories_record ON record_inventories (record_id, id);
CREATE TABLE record_files (
    id BIGSERIAL PRIMARY KEY, record_id BIGINT NOT NULL, direction TEXT NOT NULL,
    path TEXT NOT NULL, size BIGINT NOT NULL, sha256 TEXT NOT NULL, at_unix BIGINT NOT NULL);
CREATE INDEX record_files_record ON record_files (record_id, id);

CREATE TABLE technicians (
    n BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, org TEXT NOT NULL, role TEXT NOT NULL,
    tier TEXT NOT NULL, token_sha256 TEXT NOT NULL UNIQUE, created_unix BIGINT NOT NULL,
    expires_unix BIGINT, revoked_unix BIGINT);
-- One active technician per name and organisation; revoked ones stay listed.
CREATE UNIQUE INDEX technicians_active ON technicians (name, org) WHERE revoked_unix IS NULL;

-- The audit chain: each line exactly as hashed (see crate::audit), seq without gaps.
CREATE TABLE audit (seq BIGINT PRIMARY KEY, ts_unix_ms BIGINT NOT NULL, line TEXT NOT NULL);
",
    // 2: the slots the nodes hold (crate::registry), with the node's name and public address.
    "
CREATE TABLE held_slots (
    slot BIGINT PRIMARY KEY, node TEXT NOT NULL, addr TEXT NOT NULL,
    expires_unix BIGINT NOT NULL, forget_unix BIGINT NOT NULL);
CREATE INDEX held_slots_node ON held_slots (node);
CREATE INDEX held_slots_forget ON held_slots (forget_unix);
",
    // 3: the public half of each device's key, for sessions without a code (NULL: enrolled before).
    "
ALTER TABLE devices ADD COLUMN device_key TEXT;
",
    // 4: each organisation's unattended policy as IT signed it (devices check the signature).
    "
CREATE TABLE policies (org TEXT PRIMARY KEY, version BIGINT NOT NULL, body BYTEA NOT NULL);
",
];

/// Applies the missing migrations in one transaction under [`MIGRATION_LOCK`]; refuses a newer
/// schema before writing anything.
fn migrate(client: &mut postgres::Client, target: &str) -> Result<(), PgError> {
    let failed = |e: postgres::Error| PgError::Failed {
        target: target.to_string(),
        reason: words(&e),
    };
    let mut tx = client.transaction().map_err(failed)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(failed)?;
    let exists: bool = tx
        .query_one("SELECT to_regclass('tether_schema') IS NOT NULL", &[])
        .map_err(failed)?
        .get(0);
    let found: i64 = if exists {
        tx.query_one("SELECT COALESCE(MAX(version), 0) FROM tether_schema", &[])
            .map_err(failed)?
            .get(0)
    } else {
        0
    };
    if found > SCHEMA_VERSION {
        return Err(PgError::NewerSchema {
            target: target.to_string(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if !exists {
        tx.batch_execute(
            "CREATE TABLE tether_schema (version BIGINT PRIMARY KEY, applied_unix BIGINT NOT NULL)",
        )
        .map_err(failed)?;
    }
    let now = i64::try_from(crate::clock::now_unix()).unwrap_or(i64::MAX);
    for (version, sql) in (1i64..).zip(MIGRATIONS) {
        if version <= found {
            continue;
        }
        tx.batch_execute(sql).map_err(failed)?;
        tx.execute(
            "INSERT INTO tether_schema (version, applied_unix) VALUES ($1, $2)",
            &[&version, &now],
        )
        .map_err(failed)?;
        tracing::info!(version, "database schema migrated");
    }
    tx.commit().map_err(failed)
}
