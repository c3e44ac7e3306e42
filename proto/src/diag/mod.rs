//! Diagnostics: the probe catalog, typed and validated parameters, and structured results.
//!
//! # Message flow
//! ```text
//! console                                              agent
//!   parse the technician's words into a Probe  -- rejects bad input before anything is sent
//!   |-- Request::Diagnostic { probe, timeout_secs } --->|  scope check (`diagnostics`)
//!   |                                                   |  probe.validate()  (never trust the console)
//!   |                                                   |  AgentEvent::Running shown to the user
//!   |                                                   |  run with a deadline; hung work is cut off
//!   |<---------- Response::Diagnostic(DiagReport) ------|  facts + verdict + reason
//! ```
//! Probes are a closed set ([`ProbeKind`]). Validation is pure and lives here ([`params`]), so the
//! console rejects early and the agent re-checks with the same code. Deserialisation does not
//! validate (a bad value must get a clear answer, not a dropped stream): the agent calls
//! [`Probe::validate`] before it runs anything.
//!
//! Only what both ends must agree on is here: the probes and their names, parameters and limits,
//! the default timeouts (a request without `timeout_secs` means the probe's default, and the
//! console waits that long), and the facts. How the console reads a command line, its help text
//! and the catalog it prints live in the console (`tether_console::diag`); how the agent applies a
//! timeout lives in the agent.
//!
//! # Layout
//! - `mod.rs`: [`ProbeKind`] and [`Probe`], generated from one table (the `probes!` macro), limits, names,
//!   default timeouts, the health check.
//! - [`params`]: the parameter newtypes, [`ParamError`], [`Probe::from_pairs`], [`Probe::validate`].
//! - [`facts`]: [`Verdict`], [`DiagReport`] and [`DiagFacts`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub mod facts;
pub mod params;

pub use facts::*;
pub use params::{
    HostName, HttpUrl, ParamError, Port, UnitName, UrlParts, check_name, check_timeout_secs, shown,
};

/// Longest host name accepted (the DNS limit).
pub const MAX_HOST_LEN: usize = 253;
/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 512;
/// Longest systemd unit name accepted.
pub const MAX_UNIT_LEN: usize = 128;
/// Largest per-request timeout override, in seconds.
pub const MAX_TIMEOUT_SECS: u16 = 120;
/// Most log lines a probe returns.
pub const MAX_LINES: u16 = 500;
/// Most processes per list in `top-processes`.
pub const MAX_TOP: u8 = 50;
/// Furthest back `journal-errors since=` reaches, in minutes (one week).
pub const MAX_SINCE_MINUTES: u32 = 7 * 24 * 60;

/// Default `count` for `top-processes`.
pub const DEFAULT_TOP: u8 = 5;
/// Default `lines` for the log probes.
pub const DEFAULT_LINES: u16 = 20;

/// The one table of probes: each row gives the catalog entry's doc, its variant, its name on the
/// wire's text form and the command line, and the parameters the [`Probe`] variant carries. It
/// generates [`ProbeKind`] (with `ALL` and `name`) and [`Probe`] (with `kind`), so the two enums
/// cannot drift apart: a probe added to one is added to both, in the same place (bincode encodes
/// the variant index, so the order is part of the protocol).
macro_rules! probes {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident = $name:literal $({
            $( $(#[$field_meta:meta])* $field:ident : $ty:ty ),* $(,)?
        })?
    ),* $(,)?) => {
        /// The catalog: every probe the agent knows, without parameters.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(test, derive(proptest_derive::Arbitrary))]
        pub enum ProbeKind {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl ProbeKind {
            /// Every probe, in catalog order.
            pub const ALL: [ProbeKind; [$(stringify!($variant)),*].len()] =
                [$(ProbeKind::$variant),*];

            /// The name used on the command line.
            pub fn name(self) -> &'static str {
                match self {
                    $( ProbeKind::$variant => $name, )*
                }
            }
        }

        /// A probe with its parameters: what the console asks the agent to run.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[cfg_attr(test, derive(proptest_derive::Arbitrary))]
        pub enum Probe {
            $(
                #[doc = concat!("See [`ProbeKind::", stringify!($variant), "`].")]
                $variant $({ $( $(#[$field_meta])* $field: $ty ),* })?,
            )*
        }

        impl Probe {
            /// Which catalog entry this is.
            pub fn kind(&self) -> ProbeKind {
                match self {
                    $( Probe::$variant { .. } => ProbeKind::$variant, )*
                }
            }
        }
    };
}

probes! {
    /// Uptime and load average.
    Uptime = "uptime",
    /// CPU and memory pressure.
    Pressure = "pressure",
    /// Top processes by CPU and memory.
    TopProcesses = "top-processes" {
        /// Processes per list, 1–[`MAX_TOP`].
        #[cfg_attr(test, proptest(strategy = "1..=MAX_TOP"))]
        count: u8,
    },
    /// Space used per filesystem.
    DiskUsage = "disk-usage",
    /// Inodes used per filesystem.
    Inodes = "inodes",
    /// SMART health through `smartctl`.
    Smart = "smart",
    /// Network interfaces and addresses.
    Interfaces = "interfaces",
    /// Default route and whether the gateway answers.
    DefaultRoute = "default-route",
    /// Resolve a host name.
    Dns = "dns" {
        /// The name to resolve.
        name: HostName,
    },
    /// TCP connect to host:port.
    TcpConnect = "tcp-connect" {
        /// Where to connect.
        host: HostName,
        /// Which port.
        port: Port,
    },
    /// HTTP(S) request to a URL.
    Http = "http" {
        /// What to fetch.
        url: HttpUrl,
    },
    /// Listening TCP ports.
    ListeningPorts = "listening-ports",
    /// systemd units in the failed state.
    FailedUnits = "failed-units",
    /// State of one systemd unit.
    UnitStatus = "unit-status" {
        /// The unit.
        unit: UnitName,
    },
    /// Recent errors from the journal.
    JournalErrors = "journal-errors" {
        /// Most entries, 1–[`MAX_LINES`].
        #[cfg_attr(test, proptest(strategy = "1..=MAX_LINES"))]
        lines: u16,
        /// Only the last this many minutes, 1–[`MAX_SINCE_MINUTES`].
        #[cfg_attr(
            test,
            proptest(strategy = "proptest::option::of(1..=MAX_SINCE_MINUTES)")
        )]
        since_minutes: Option<u32>,
    },
    /// Kernel messages about OOM kills and disk errors.
    KernelMessages = "kernel-messages" {
        /// Most messages, 1–[`MAX_LINES`].
        #[cfg_attr(test, proptest(strategy = "1..=MAX_LINES"))]
        lines: u16,
    },
    /// Package updates the package manager knows about without the network.
    PendingUpdates = "pending-updates",
}

impl ProbeKind {
    /// The names of the parameters this probe takes, as [`Probe`]'s text form writes them.
    pub fn param_names(self) -> &'static [&'static str] {
        match self {
            ProbeKind::TopProcesses => &["count"],
            ProbeKind::Dns => &["name"],
            ProbeKind::TcpConnect => &["host", "port"],
            ProbeKind::Http => &["url"],
            ProbeKind::UnitStatus => &["unit"],
            ProbeKind::JournalErrors => &["lines", "since"],
            ProbeKind::KernelMessages => &["lines"],
            ProbeKind::Uptime
            | ProbeKind::Pressure
            | ProbeKind::DiskUsage
            | ProbeKind::Inodes
            | ProbeKind::Smart
            | ProbeKind::Interfaces
            | ProbeKind::DefaultRoute
            | ProbeKind::ListeningPorts
            | ProbeKind::FailedUnits
            | ProbeKind::PendingUpdates => &[],
        }
    }

    /// How long the agent lets this probe run unless the request says otherwise.
    pub fn default_timeout_secs(self) -> u16 {
        match self {
            ProbeKind::Pressure | ProbeKind::TopProcesses => 5,
            ProbeKind::DefaultRoute | ProbeKind::Dns | ProbeKind::TcpConnect => 5,
            ProbeKind::Http => 10,
            ProbeKind::Smart | ProbeKind::JournalErrors | ProbeKind::PendingUpdates => 15,
            _ => 5,
        }
    }

    /// Whether `diag --all` (the standard health check) runs it: every probe without required parameters.
    pub fn in_health_check(self) -> bool {
        Probe::with_defaults(self).is_some()
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ProbeKind {
    type Err = ParamError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProbeKind::ALL
            .into_iter()
            .find(|p| p.name() == s.trim())
            .ok_or_else(|| ParamError::UnknownProbe(shown(s)))
    }
}

impl Probe {
    /// The probe as the health check runs it, or `None` when it needs parameters.
    pub fn with_defaults(kind: ProbeKind) -> Option<Probe> {
        Probe::from_pairs(kind, &[]).ok()
    }

    /// The standard health check: every probe that needs no parameters, with defaults.
    pub fn health_check() -> Vec<Probe> {
        ProbeKind::ALL
            .into_iter()
            .filter_map(Probe::with_defaults)
            .collect()
    }
}

/// `disk-usage`, `tcp-connect host=example.com port=443`, ...: the name, then parameters as `key=value`.
impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind().name())?;
        match self {
            Probe::TopProcesses { count } => write!(f, " count={count}"),
            Probe::Dns { name } => write!(f, " name={name}"),
            Probe::TcpConnect { host, port } => write!(f, " host={host} port={port}"),
            Probe::Http { url } => write!(f, " url={url}"),
            Probe::UnitStatus { unit } => write!(f, " unit={unit}"),
            Probe::JournalErrors {
                lines,
                since_minutes,
            } => {
                write!(f, " lines={lines}")?;
                match since_minutes {
                    Some(m) => write!(f, " since={m}"),
                    None => Ok(()),
                }
            }
            Probe::KernelMessages { lines } => write!(f, " lines={lines}"),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for k in ProbeKind::ALL {
            assert_eq!(k.name().parse::<ProbeKind>().unwrap(), k);
        }
        let mut names: Vec<_> = ProbeKind::ALL.iter().map(|k| k.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ProbeKind::ALL.len());
        assert!(ProbeKind::ALL.len() >= 12);
        assert!(matches!(
            "rm -rf".parse::<ProbeKind>(),
            Err(ParamError::UnknownProbe(_))
        ));
    }

    #[test]
    fn health_check_is_every_probe_without_required_params() {
        let hc = Probe::health_check();
        let kinds: Vec<_> = hc.iter().map(Probe::kind).collect();
        assert!(kinds.contains(&ProbeKind::DiskUsage));
        assert!(kinds.contains(&ProbeKind::JournalErrors));
        assert!(!kinds.contains(&ProbeKind::TcpConnect));
        assert!(!kinds.contains(&ProbeKind::Dns));
        assert_eq!(hc.len(), 13);
        for p in &hc {
            p.validate().unwrap();
        }
    }

    #[test]
    fn the_text_form_reads_back() {
        let p = Probe::JournalErrors {
            lines: 7,
            since_minutes: Some(30),
        };
        assert_eq!(p.to_string(), "journal-errors lines=7 since=30");
        let e = Probe::from_pairs(ProbeKind::Dns, &[("name", "a.b"), ("name", "c.d")]);
        assert!(matches!(e, Err(ParamError::Repeated(_))), "{e:?}");
        let e = Probe::from_pairs(ProbeKind::Uptime, &[("verbose", "1")]).unwrap_err();
        assert_eq!(e.to_string(), "probe uptime takes no parameter \"verbose\"");
    }

    proptest! {
        #[test]
        fn generated_probes_validate_and_display_parses_back(p: Probe) {
            prop_assert!(p.validate().is_ok(), "{:?}", p);
            let text = p.to_string();
            let mut words = text.split(' ');
            let kind: ProbeKind = words.next().unwrap().parse().unwrap();
            let pairs: Vec<(&str, &str)> =
                words.map(|w| w.split_once('=').unwrap()).collect();
            prop_assert_eq!(Probe::from_pairs(kind, &pairs).unwrap(), p);
        }
    }
}
