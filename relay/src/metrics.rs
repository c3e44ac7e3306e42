//! Counters for operators, served in the Prometheus text format on a local HTTP port.
//!
//! Off by default; `tether-relay serve --metrics 127.0.0.1:9464` turns it on, and
//! `tether-relay status` reads it. The endpoint is a deliberately tiny HTTP/1.1 responder (one
//! request per connection, `GET /metrics` only, bounded request size, time and concurrency): it is
//! meant for a local scraper, and carries only counts — never a code, a name or an address.
//!
//! # Families
//! | name | type | meaning |
//! |---|---|---|
//! | `tether_relay_connections_accepted_total` | counter | QUIC connections that completed a handshake |
//! | `tether_relay_connections_refused_total` | counter | connections closed with `BUSY` (over the limit) |
//! | `tether_relay_connections_open` | gauge | connections being served |
//! | `tether_relay_agents_connected` | gauge | agent control streams open |
//! | `tether_relay_session_attempts_total` | counter | claims the agent accepted and the relay spliced (pairing follows) |
//! | `tether_relay_sessions_started_total` | counter | sessions whose key confirmation succeeded (agent reported `paired`) |
//! | `tether_relay_sessions_active` | gauge | sessions spliced right now |
//! | `tether_relay_pairing_failures_total` | counter | agents reporting a failed key confirmation |
//! | `tether_relay_consents_total{granted}` | counter | users' consent answers, `some` scopes or `none` |
//! | `tether_relay_claims_refused_total{reason}` | counter | refused claims by reason |
//! | `tether_relay_rate_limit_hits_total` | counter | claims refused by the per-technician rate limit |
//! | `tether_relay_bytes_spliced_total{direction}` | counter | bytes copied, `to_agent` / `to_console` |
//! | `tether_relay_audit_writable` | gauge | 1 while the audit log is written; 0 while the relay fails closed |
//! | `tether_relay_audit_write_failures_total` | counter | times the audit log stopped being writable |
//! | `tether_relay_audit_records_lost_total` | counter | events that found the audit queue full |
//! | `tether_relay_audit_refusals_total` | counter | claims and enrollments refused because the audit log could not be written |

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tether_proto::msg::{RelayErrorKind, SessionReport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// Largest request head the endpoint reads.
pub const MAX_REQUEST: usize = 8 * 1024;

/// Time a client has to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Scrapes served at once; more wait in the listen backlog.
pub const MAX_SCRAPES: usize = 16;

/// File in the data directory holding the metrics address while the relay runs (for `status`).
pub const ADDR_FILE: &str = "metrics.addr";

/// Claim refusal reasons, in exposition order.
const REASONS: [(RelayErrorKind, &str); 6] = [
    (RelayErrorKind::BadToken, "bad_token"),
    (RelayErrorKind::UnknownSlot, "unknown_slot"),
    (RelayErrorKind::ExpiredSlot, "expired_slot"),
    (RelayErrorKind::RateLimited, "rate_limited"),
    (RelayErrorKind::Busy, "busy"),
    (RelayErrorKind::Malformed, "other"),
];

/// The relay's counters. All updates are relaxed atomics: they are statistics, not synchronisation.
#[derive(Debug, Default)]
pub struct Metrics {
    /// See the module table.
    pub connections_accepted: AtomicU64,
    /// See the module table.
    pub connections_refused: AtomicU64,
    /// See the module table.
    pub connections_open: AtomicI64,
    /// See the module table.
    pub agents_connected: AtomicI64,
    /// See the module table.
    pub session_attempts: AtomicU64,
    /// See the module table.
    pub sessions_started: AtomicU64,
    /// See the module table.
    pub sessions_active: AtomicI64,
    /// See the module table.
    pub pairing_failures: AtomicU64,
    /// Consents granting at least one scope.
    pub consents_given: AtomicU64,
    /// Consents granting nothing.
    pub consents_denied: AtomicU64,
    claims_refused: [AtomicU64; REASONS.len()],
    /// Bytes console → agent.
    pub bytes_to_agent: AtomicU64,
    /// Bytes agent → console.
    pub bytes_to_console: AtomicU64,
    /// See the module table (set by the audit writer).
    pub audit_writable: AtomicI64,
    /// See the module table.
    pub audit_write_failures: AtomicU64,
    /// See the module table.
    pub audit_records_lost: AtomicU64,
    /// See the module table.
    pub audit_refusals: AtomicU64,
}

/// Increments a gauge now and decrements it when dropped.
#[derive(Debug)]
pub struct GaugeGuard<'a>(&'a AtomicI64);

impl<'a> GaugeGuard<'a> {
    /// Increments `g` until the guard drops.
    pub fn new(g: &'a AtomicI64) -> Self {
        g.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(g)
    }
}

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Counts what an agent reported about its session: pairings, failed pairings and consents are
    /// three different things, and only a pairing starts a session.
    pub fn agent_report(&self, report: &SessionReport) {
        let counter = match report {
            SessionReport::Paired => &self.sessions_started,
            SessionReport::PairingFailed => &self.pairing_failures,
            SessionReport::Consent { granted, .. } if granted.is_empty() => &self.consents_denied,
            SessionReport::Consent { .. } => &self.consents_given,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the audit gauge.
    pub fn set_audit_writable(&self, writable: bool) {
        self.audit_writable
            .store(i64::from(writable), Ordering::Relaxed);
    }

    /// Counts a refused claim.
    pub fn claim_refused(&self, kind: RelayErrorKind) {
        let i = REASONS
            .iter()
            .position(|(k, _)| *k == kind)
            .unwrap_or(REASONS.len() - 1);
        self.claims_refused[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, String)]| {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, v) in samples {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        let g = |a: &AtomicI64| a.load(Ordering::Relaxed).max(0).to_string();
        family(
            "tether_relay_connections_accepted_total",
            "counter",
            "QUIC connections that completed a handshake.",
            &[("", c(&self.connections_accepted))],
        );
        family(
            "tether_relay_connections_refused_total",
            "counter",
            "Connections closed with BUSY because the relay was at its connection limit.",
            &[("", c(&self.connections_refused))],
        );
        family(
            "tether_relay_connections_open",
            "gauge",
            "Connections being served.",
            &[("", g(&self.connections_open))],
        );
        family(
            "tether_relay_agents_connected",
            "gauge",
            "Agents with an open control stream.",
            &[("", g(&self.agents_connected))],
        );
        family(
            "tether_relay_session_attempts_total",
            "counter",
            "Claims the agent accepted and the relay spliced; key confirmation follows.",
            &[("", c(&self.session_attempts))],
        );
        family(
            "tether_relay_sessions_started_total",
            "counter",
            "Sessions whose key confirmation succeeded.",
            &[("", c(&self.sessions_started))],
        );
        family(
            "tether_relay_sessions_active",
            "gauge",
            "Sessions spliced right now.",
            &[("", g(&self.sessions_active))],
        );
        family(
            "tether_relay_pairing_failures_total",
            "counter",
            "Sessions whose key confirmation failed (wrong code; the code is burned).",
            &[("", c(&self.pairing_failures))],
        );
        family(
            "tether_relay_consents_total",
            "counter",
            "Users' answers to a consent prompt: some scopes granted, or none.",
            &[
                ("{granted=\"some\"}", c(&self.consents_given)),
                ("{granted=\"none\"}", c(&self.consents_denied)),
            ],
        );
        let refused: Vec<(String, String)> = REASONS
            .iter()
            .zip(&self.claims_refused)
            .map(|((_, r), a)| (format!("{{reason=\"{r}\"}}"), c(a)))
            .collect();
        let refused: Vec<(&str, String)> = refused
            .iter()
            .map(|(l, v)| (l.as_str(), v.clone()))
            .collect();
        family(
            "tether_relay_claims_refused_total",
            "counter",
            "Claims refused, by reason.",
            &refused,
        );
        let rate = REASONS
            .iter()
            .position(|(k, _)| *k == RelayErrorKind::RateLimited)
            .map(|i| c(&self.claims_refused[i]))
            .unwrap_or_default();
        family(
            "tether_relay_rate_limit_hits_total",
            "counter",
            "Claims refused by the per-technician rate limit.",
            &[("", rate)],
        );
        family(
            "tether_relay_bytes_spliced_total",
            "counter",
            "Bytes copied between consoles and agents (ciphertext).",
            &[
                ("{direction=\"to_agent\"}", c(&self.bytes_to_agent)),
                ("{direction=\"to_console\"}", c(&self.bytes_to_console)),
            ],
        );
        family(
            "tether_relay_audit_writable",
            "gauge",
            "1 while the audit log is written; 0 while it cannot be and the relay refuses new sessions and enrollments.",
            &[("", g(&self.audit_writable))],
        );
        family(
            "tether_relay_audit_write_failures_total",
            "counter",
            "Times the audit log stopped being writable.",
            &[("", c(&self.audit_write_failures))],
        );
        family(
            "tether_relay_audit_records_lost_total",
            "counter",
            "Audit events that found the writer's queue full.",
            &[("", c(&self.audit_records_lost))],
        );
        family(
            "tether_relay_audit_refusals_total",
            "counter",
            "Claims and enrollments refused because the audit log could not be written.",
            &[("", c(&self.audit_refusals))],
        );
        out
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept(), if tasks.len() < MAX_SCRAPES => match accepted {
                Ok((stream, peer)) => {
                    let metrics = metrics.clone();
                    tasks.spawn(async move {
                        if let Err(e) = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &metrics)).await {
                            debug!(%peer, error = %e, "metrics request timed out");
                        }
                    });
                }
                Err(e) => {
                    debug!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    tasks.abort_all();
}

async fn answer(mut stream: TcpStream, metrics: &Metrics) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head_done = loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break false,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    break true;
                }
                if buf.len() > MAX_REQUEST {
                    break false;
                }
            }
        }
    };
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (status, ctype, body) = match (head_done, parts.next(), parts.next()) {
        (true, Some("GET"), Some("/metrics")) => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        (true, Some("GET"), Some(_)) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "only /metrics is served here\n".to_string(),
        ),
        _ => (
            "400 Bad Request",
            "text/plain; charset=utf-8",
            "expected: GET /metrics HTTP/1.1\n".to_string(),
        ),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(resp.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Errors reading a relay's metrics.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// Nothing answered at the address.
    #[error("cannot reach the metrics endpoint at {addr}: {source}")]
    Connect {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The answer was not a `200` with a body.
    #[error("unexpected answer from {addr}: {status}")]
    Status {
        /// The address.
        addr: SocketAddr,
        /// The status line.
        status: String,
    },
}

/// Fetches `/metrics` from `addr` (bounded by [`REQUEST_TIMEOUT`]) and parses the samples.
pub async fn scrape(addr: SocketAddr) -> Result<Vec<(String, f64)>, ScrapeError> {
    let io = |source| ScrapeError::Connect { addr, source };
    let text = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n")
            .await?;
        let mut text = String::new();
        s.read_to_string(&mut text).await?;
        Ok::<_, std::io::Error>(text)
    })
    .await
    .map_err(|_| io(std::io::ErrorKind::TimedOut.into()))?
    .map_err(io)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        return Err(ScrapeError::Status {
            addr,
            status: status.to_string(),
        });
    }
    Ok(parse(body))
}

/// Parses exposition text into `(name{labels}, value)` samples.
pub fn parse(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// A short human summary of scraped samples, for `tether-relay status`.
pub fn summary(samples: &[(String, f64)]) -> String {
    let get = |k: &str| {
        samples
            .iter()
            .filter(|(n, _)| n == k || n.starts_with(&format!("{k}{{")))
            .map(|(_, v)| *v)
            .sum::<f64>()
    };
    let audit = if get("tether_relay_audit_writable") >= 1.0 {
        "writable".to_string()
    } else {
        format!(
            "NOT WRITABLE: refusing new sessions and enrollments ({} refused so far)",
            get("tether_relay_audit_refusals_total")
        )
    };
    format!(
        "audit log:          {audit}\n\
         connections open:   {} ({} agents); accepted {}, refused (busy) {}\n\
         sessions active:    {}; attempts {}, started (paired) {}\n\
         pairing failures:   {}; consents {} (granted nothing {})\n\
         claims refused:     {} (rate-limited {})\n\
         bytes spliced:      {} to agents, {} to consoles\n",
        get("tether_relay_connections_open"),
        get("tether_relay_agents_connected"),
        get("tether_relay_connections_accepted_total"),
        get("tether_relay_connections_refused_total"),
        get("tether_relay_sessions_active"),
        get("tether_relay_session_attempts_total"),
        get("tether_relay_sessions_started_total"),
        get("tether_relay_pairing_failures_total"),
        get("tether_relay_consents_total"),
        get("tether_relay_consents_total{granted=\"none\"}"),
        get("tether_relay_claims_refused_total"),
        get("tether_relay_rate_limit_hits_total"),
        get("tether_relay_bytes_spliced_total{direction=\"to_agent\"}"),
        get("tether_relay_bytes_spliced_total{direction=\"to_console\"}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_round_trips_through_the_parser() {
        let m = Metrics::default();
        m.connections_accepted.fetch_add(3, Ordering::Relaxed);
        m.claim_refused(RelayErrorKind::RateLimited);
        m.claim_refused(RelayErrorKind::RateLimited);
        m.claim_refused(RelayErrorKind::UnsupportedVersion);
        m.bytes_to_console.fetch_add(1234, Ordering::Relaxed);
        {
            let _g = GaugeGuard::new(&m.sessions_active);
            assert!(m.render().contains("tether_relay_sessions_active 1\n"));
        }
        let text = m.render();
        assert!(text.contains("tether_relay_sessions_active 0\n"));
        let s = parse(&text);
        let v = |k: &str| s.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
        assert_eq!(v("tether_relay_connections_accepted_total"), Some(3.0));
        assert_eq!(v("tether_relay_rate_limit_hits_total"), Some(2.0));
        assert_eq!(
            v("tether_relay_claims_refused_total{reason=\"other\"}"),
            Some(1.0)
        );
        assert_eq!(
            v("tether_relay_bytes_spliced_total{direction=\"to_console\"}"),
            Some(1234.0)
        );
        // Every sample line belongs to a family declared with HELP and TYPE.
        for (name, _) in &s {
            let family = name.split('{').next().unwrap();
            assert!(text.contains(&format!("# TYPE {family} ")), "{family}");
        }
        assert!(summary(&s).contains("rate-limited 2"));
    }
}
