//! Technicians in PostgreSQL: the same registry as `technicians.json` (tokens stored as SHA-256
//! only, roles, tiers, expiry, revocation), shared by every node. A token check is one indexed
//! query, so a revocation on any node holds on every node at once.

use rand::RngCore;
use tether_proto::msg::{TechnicianIdentity, TechnicianRole, Tier};

use super::{Pg, words};
use crate::directory::Directory;
use crate::technicians::{TechnicianError, TechnicianInfo, TokenProblem, check_label, hash};

/// The technician directory in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgTechnicians {
    pg: Pg,
}

fn q(e: postgres::Error) -> TechnicianError {
    TechnicianError::Database(words(&e))
}

/// A stored row: (identity, expires, revoked).
type Row = (TechnicianIdentity, Option<i64>, Option<i64>);

fn row(r: &postgres::Row) -> Result<Row, TechnicianError> {
    let role: &str = r.get(2);
    let tier: &str = r.get(3);
    let bad = |what: &str| TechnicianError::Database(format!("a stored {what} is unknown"));
    Ok((
        TechnicianIdentity {
            name: r.get(0),
            org: r.get(1),
            role: role.parse().map_err(|_| bad("role"))?,
            tier: tier.parse().map_err(|_| bad("tier"))?,
        },
        r.get(4),
        r.get(5),
    ))
}

const COLS: &str = "name, org, role, tier, expires_unix, revoked_unix";

fn status(expires: Option<i64>, revoked: Option<i64>, now: i64) -> Result<(), TokenProblem> {
    if revoked.is_some() {
        return Err(TokenProblem::Revoked);
    }
    if expires.is_some_and(|e| now >= e) {
        return Err(TokenProblem::Expired);
    }
    Ok(())
}

fn now() -> i64 {
    i64::try_from(crate::clock::now_unix()).unwrap_or(i64::MAX)
}

impl PgTechnicians {
    /// The directory in `pg`'s database.
    pub fn new(pg: Pg) -> Self {
        PgTechnicians { pg }
    }

    fn with<R: Send>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> Result<R, TechnicianError> + Send,
    ) -> Result<R, TechnicianError> {
        self.pg.with(TechnicianError::Database, f)
    }

    /// Registers a technician with a role and a tier and returns their token (not stored).
    pub fn add_full(
        &self,
        name: &str,
        org: &str,
        role: TechnicianRole,
        tier: Tier,
        valid_for: Option<std::time::Duration>,
    ) -> Result<String, TechnicianError> {
        check_label("name", name)?;
        check_label("org", org)?;
        let mut raw = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut raw);
        let token = format!("tt_{}", hex::encode(raw));
        let created = now();
        let expires = valid_for.map(|d| created.saturating_add_unsigned(d.as_secs()));
        let inserted = self.with(|c| {
            c.execute(
                "INSERT INTO technicians (name, org, role, tier, token_sha256, created_unix, expires_unix)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                &[&name, &org, &role.name(), &tier.to_string(), &hash(&token), &created, &expires],
            )
            .map_err(q)
        })?;
        if inserted == 0 {
            return Err(TechnicianError::Exists {
                name: name.into(),
                org: org.into(),
            });
        }
        Ok(token)
    }

    /// Sets an active technician's tier.
    pub fn set_tier(&self, name: &str, org: &str, tier: Tier) -> Result<(), TechnicianError> {
        let n = self.with(|c| {
            c.execute(
                "UPDATE technicians SET tier = $3 WHERE name = $1 AND org = $2 AND revoked_unix IS NULL",
                &[&name, &org, &tier.to_string()],
            )
            .map_err(q)
        })?;
        found(n, name, org)
    }

    /// Revokes a technician's token; claims with it fail from now on, on every node.
    pub fn revoke(&self, name: &str, org: &str) -> Result<(), TechnicianError> {
        let at = now();
        let n = self.with(|c| {
            c.execute(
                "UPDATE technicians SET revoked_unix = $3 WHERE name = $1 AND org = $2 AND revoked_unix IS NULL",
                &[&name, &org, &at],
            )
            .map_err(q)
        })?;
        found(n, name, org)
    }

    /// All technicians, with their status, in the order they were added.
    pub fn list(&self) -> Result<Vec<TechnicianInfo>, TechnicianError> {
        let now = now();
        let rows = self.with(|c| {
            c.query(&format!("SELECT {COLS} FROM technicians ORDER BY n"), &[])
                .map_err(q)
        })?;
        rows.iter()
            .map(|r| {
                let (who, expires, revoked) = row(r)?;
                Ok(TechnicianInfo {
                    name: who.name,
                    org: who.org,
                    role: who.role,
                    tier: who.tier,
                    status: match status(expires, revoked, now) {
                        Ok(()) => "active",
                        Err(TokenProblem::Revoked) => "revoked",
                        Err(_) => "expired",
                    },
                })
            })
            .collect()
    }
}

fn found(n: u64, name: &str, org: &str) -> Result<(), TechnicianError> {
    if n == 0 {
        return Err(TechnicianError::NotFound {
            name: name.into(),
            org: org.into(),
        });
    }
    Ok(())
}

impl Directory for PgTechnicians {
    fn verify(
        &self,
        token: &str,
    ) -> Result<Result<TechnicianIdentity, TokenProblem>, TechnicianError> {
        let h = hash(token);
        let r = self.with(|c| {
            c.query_opt(
                &format!("SELECT {COLS} FROM technicians WHERE token_sha256 = $1"),
                &[&h],
            )
            .map_err(q)
        })?;
        let Some(r) = r else {
            return Ok(Err(TokenProblem::Unknown));
        };
        let (who, expires, revoked) = row(&r)?;
        Ok(status(expires, revoked, now()).map(|()| who))
    }

    fn active(&self) -> Result<Vec<TechnicianIdentity>, TechnicianError> {
        let now = now();
        let rows = self.with(|c| {
            c.query(
                &format!(
                    "SELECT {COLS} FROM technicians WHERE revoked_unix IS NULL
                     AND (expires_unix IS NULL OR expires_unix > $1) ORDER BY n"
                ),
                &[&now],
            )
            .map_err(q)
        })?;
        rows.iter().map(|r| row(r).map(|(who, ..)| who)).collect()
    }
}
