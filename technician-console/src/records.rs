//! Session records: list, show, search, note and close them, and post what ran in a session.
//!
//! Each call is one `ConsoleToRelay::Records` on its own relay connection, authenticated by the
//! technician token like a fleet query (see `tether_proto::records` for the flow). A [`Session`]
//! posts the probes it ran and the inventory it took to its record by itself, after each request
//! succeeds; a failed post is logged and never fails the request.

use std::fmt::Write;

use tether_net::client;
use tether_proto::diag::DiagReport;
use tether_proto::inventory::Inventory;
use tether_proto::msg::{ConsoleToRelay, close};
use tether_proto::records::{
    InventoryRef, MAX_LABEL_CHARS, ProbeRun, RecordNote, RecordQuery, RecordReply, RecordSummary,
    SessionFacts, SessionRecord, check_text, clean_text,
};
use tracing::{Instrument, warn};

use crate::error::ConsoleError;
use crate::fleet::utc;
use crate::session::{ConsoleConfig, Session, ask_relay};

/// Sends `query` and returns the relay's answer (an error reply becomes [`ConsoleError::Record`]).
pub async fn query(
    config: &ConsoleConfig,
    query: RecordQuery,
) -> Result<RecordReply, ConsoleError> {
    let relay = client::connect(&config.relay)
        .instrument(crate::session::connection_span(config, "records"))
        .await?;
    let result = exchange(&relay, config, query).await;
    relay.close(close::NORMAL, "done").await;
    result
}

/// [`query`] without waiting for the close to drain: for posts from a live session, where waiting
/// would add about three round trips (80 ms on loopback) to every request. The endpoint's driver
/// still sends the close while the process runs, and the answer has arrived by then.
async fn query_in_session(
    config: &ConsoleConfig,
    query: RecordQuery,
) -> Result<RecordReply, ConsoleError> {
    let relay = client::connect(&config.relay)
        .instrument(crate::session::connection_span(config, "records"))
        .await?;
    let result = exchange(&relay, config, query).await;
    relay.conn.close(close::NORMAL.into(), b"done");
    result
}

async fn exchange(
    relay: &client::RelayConnection,
    config: &ConsoleConfig,
    query: RecordQuery,
) -> Result<RecordReply, ConsoleError> {
    let question = ConsoleToRelay::Records {
        token: config.token.clone(),
        query,
    };
    match ask_relay::<RecordReply>(relay, &question).await? {
        RecordReply::Error(e) => Err(ConsoleError::Record(e)),
        r => Ok(r),
    }
}

/// [`query`] for a query answered with one record.
pub async fn record(config: &ConsoleConfig, q: RecordQuery) -> Result<SessionRecord, ConsoleError> {
    match query(config, q).await? {
        RecordReply::Record(r) => Ok(*r),
        other => Err(unexpected(&other)),
    }
}

/// [`query`] for a query answered with a list.
pub async fn list(
    config: &ConsoleConfig,
    q: RecordQuery,
) -> Result<Vec<RecordSummary>, ConsoleError> {
    match query(config, q).await? {
        RecordReply::List(l) => Ok(l),
        other => Err(unexpected(&other)),
    }
}

fn unexpected(r: &RecordReply) -> ConsoleError {
    ConsoleError::Protocol(format!("unexpected answer from the relay: {r:?}"))
}

/// What a record keeps of a probe result.
pub fn probe_run(r: &DiagReport) -> ProbeRun {
    ProbeRun {
        probe: r.probe.to_string(),
        verdict: r.verdict,
        reason: r.reason.clone(),
        at_unix: now_unix(),
    }
}

/// What a record keeps of an inventory: a reference, never the data.
pub fn inventory_ref(i: &Inventory) -> InventoryRef {
    InventoryRef {
        digest: i.digest(),
        collected_unix: i.collected_unix,
        hostname: i.hardware.system.hostname.clone(),
        packages: u32::try_from(i.software.packages.len()).unwrap_or(u32::MAX),
    }
}

use tether_net::clock::now_unix;

/// Checks a ticket reference before anything is sent.
pub fn check_ticket(ticket: &str) -> Result<String, ConsoleError> {
    check_text("--ticket", ticket, MAX_LABEL_CHARS, false).map_err(ConsoleError::Record)
}

impl Session {
    /// Sets this session's ticket reference in its record.
    pub async fn set_ticket(&self, ticket: &str) -> Result<SessionRecord, ConsoleError> {
        let id = self.record.ok_or_else(no_record)?;
        let note = RecordNote {
            ticket: Some(check_ticket(ticket)?),
            ..RecordNote::default()
        };
        record(&self.config, RecordQuery::Note { id, note }).await
    }

    /// Posts facts to this session's record; a failure is logged, not returned, because the
    /// request whose facts these are already succeeded.
    pub(crate) async fn post_facts(&self, facts: SessionFacts) {
        let Some(id) = self.record else { return };
        if let Err(e) = query_in_session(&self.config, RecordQuery::Facts { id, facts }).await {
            warn!(record = id, error = %e, "could not add to the session record");
        }
    }

    pub(crate) async fn post_probes(&self, reports: &[DiagReport]) {
        if !reports.is_empty() {
            let runs = reports.iter().map(probe_run).collect();
            self.post_facts(SessionFacts::Probes(runs)).await;
        }
    }

    pub(crate) async fn post_inventory(&self, inventory: &Inventory) {
        self.post_facts(SessionFacts::Inventory(inventory_ref(inventory)))
            .await;
    }
}

fn no_record() -> ConsoleError {
    ConsoleError::Protocol("the relay keeps no record of this session".into())
}

fn opt(v: &Option<String>) -> String {
    v.as_deref().map_or("-".into(), |s| clean_text(s, false))
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Records as a table, newest first.
pub fn list_table(records: &[RecordSummary]) -> String {
    if records.is_empty() {
        return "(no session records)\n".into();
    }
    let mut s = format!(
        "{:>6} {:<16} {:<6} {:<14} {:<18} {:<20} {}\n",
        "ID", "STARTED", "STATE", "TICKET", "DEVICE", "TECHNICIANS", "REASON / RESOLUTION"
    );
    for r in records {
        let text = match (&r.reason, &r.resolution) {
            (Some(reason), Some(res)) => format!(
                "{} → resolved: {}",
                cut(&clean_text(reason, false), 40),
                clean_text(res, false)
            ),
            (None, Some(res)) => format!("resolved: {}", clean_text(res, false)),
            (Some(reason), None) => clean_text(reason, false),
            (None, None) => "-".into(),
        };
        let _ = writeln!(
            s,
            "{:>6} {:<16} {:<6} {:<14} {:<18} {:<20} {}",
            r.id,
            utc(r.started_unix),
            r.state.name(),
            cut(&opt(&r.ticket), 14),
            cut(&opt(&r.device), 18),
            cut(&clean_text(&r.technicians.join(", "), false), 20),
            cut(&text, 100)
        );
    }
    s
}

/// One record in full.
pub fn record_text(r: &SessionRecord) -> String {
    let m = &r.summary;
    let mut s = String::new();
    let _ = writeln!(s, "session record {} ({})", m.id, m.state.name());
    let _ = writeln!(s, "  started      {}", utc(m.started_unix));
    if let Some(d) = r.duration_secs {
        let _ = writeln!(
            s,
            "  duration     {}m {:02}s, ended: {}",
            d / 60,
            d % 60,
            opt(&r.end_reason)
        );
    } else {
        s.push_str("  duration     (still running, or the relay stopped mid-session)\n");
    }
    let _ = writeln!(s, "  ticket       {}", opt(&m.ticket));
    let _ = writeln!(s, "  device       {}", opt(&m.device));
    let _ = writeln!(s, "  reason       {}", opt(&m.reason));
    let _ = writeln!(
        s,
        "  technicians  {}",
        clean_text(&m.technicians.join(", "), false)
    );
    let _ = writeln!(
        s,
        "  scopes       asked {}, granted {}",
        r.scopes_requested, r.scopes_granted
    );
    if r.probes.is_empty() {
        s.push_str("  probes       none\n");
    } else {
        s.push_str("  probes\n");
        for p in &r.probes {
            let _ = writeln!(
                s,
                "    {:<10} {:<28} {}",
                p.verdict.to_string(),
                clean_text(&p.probe, false),
                clean_text(&p.reason, false)
            );
        }
    }
    for i in &r.inventories {
        let _ = writeln!(
            s,
            "  inventory    {} packages from {} collected {} (sha256 {})",
            i.packages,
            clean_text(&i.hostname, false),
            utc(i.collected_unix),
            &i.digest[..i.digest.len().min(16)]
        );
    }
    for f in &r.files {
        let _ = writeln!(
            s,
            "  file         {} {} ({}, sha256 {}) at {}",
            f.direction.name(),
            clean_text(&f.path, false),
            crate::units::bytes(f.size),
            &f.sha256[..f.sha256.len().min(16)],
            utc(f.at_unix)
        );
    }
    let field = |s: &mut String, name: &str, v: &Option<String>| {
        if let Some(v) = v {
            let text = clean_text(v, true).replace('\n', "\n               ");
            let _ = writeln!(s, "  {name:<12} {text}");
        }
    };
    field(&mut s, "problem", &r.notes.problem);
    field(&mut s, "cause", &r.notes.cause);
    field(&mut s, "fix", &r.notes.fix);
    field(&mut s, "resolution", &m.resolution);
    if let (Some(by), Some(at)) = (&r.closed_by, r.closed_unix) {
        let _ = writeln!(
            s,
            "  closed       by {} at {}",
            clean_text(by, false),
            utc(at)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_proto::records::RecordState;

    #[test]
    fn tables_defuse_control_characters() {
        let r = RecordSummary {
            id: 3,
            started_unix: 0,
            ticket: Some("T-1".into()),
            device: None,
            reason: Some("printer\u{1b}[31m offline".into()),
            technicians: vec!["Ada".into()],
            state: RecordState::Open,
            resolution: None,
        };
        let t = list_table(&[r]);
        assert!(!t.contains('\u{1b}'), "{t:?}");
        assert!(t.contains("printer\u{241b}[31m offline"), "{t}");
    }
}
