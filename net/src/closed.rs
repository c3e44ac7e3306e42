//! Why a relay connection ended, in words a person can act on.
//!
//! The relay closes connections with an application code from [`tether_proto::msg::close`] and a
//! reason text (`BUSY` "relay at capacity, try again later", `SHUTTING_DOWN` "relay shutting down",
//! `PEER_GONE` "session ended: agent left", ...). A peer that simply vanishes shows up as a timeout
//! after [`crate::transport::IDLE_TIMEOUT`].

use tether_proto::msg::close;

/// How a connection to the relay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The relay's application close code, when it closed the connection itself.
    pub code: Option<u32>,
    /// What happened, for people.
    pub reason: String,
}

impl Closed {
    /// Whether the relay closed the connection with `code`.
    pub fn is(&self, code: u32) -> bool {
        self.code == Some(code)
    }
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Describes a quinn connection error.
pub fn describe(e: &quinn::ConnectionError) -> Closed {
    match e {
        quinn::ConnectionError::ApplicationClosed(a) => {
            let code = u32::try_from(a.error_code.into_inner()).ok();
            let text = String::from_utf8_lossy(&a.reason).into_owned();
            let reason = match (code, text.is_empty()) {
                (_, false) => text,
                (Some(close::SHUTTING_DOWN), true) => "relay shutting down".into(),
                (Some(close::BUSY), true) => "relay at capacity".into(),
                _ => format!("closed by the relay (code {})", a.error_code),
            };
            Closed { code, reason }
        }
        quinn::ConnectionError::TimedOut => Closed {
            code: None,
            reason: format!(
                "no answer for {} s: the network or the other side is gone",
                crate::transport::IDLE_TIMEOUT.as_secs()
            ),
        },
        other => Closed {
            code: None,
            reason: other.to_string(),
        },
    }
}

/// How `conn` ended, or `None` while it is still open.
pub fn reason(conn: &quinn::Connection) -> Option<Closed> {
    conn.close_reason().map(|e| describe(&e))
}
