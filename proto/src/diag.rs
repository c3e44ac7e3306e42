//! Diagnostics: the probe catalog, typed and validated parameters, and structured results.
//!
//! # Message flow
//! ```text
//! console                                              agent
//!   Probe::parse(kind, ["host=..", "port=.."])  -- rejects bad input before anything is sent
//!   |-- Request::Diagnostic { probe, timeout_secs } --->|  scope check (`diagnostics`)
//!   |                                                   |  probe.validate()  (never trust the console)
//!   |                                                   |  AgentEvent::Running shown to the user
//!   |                                                   |  run with a deadline; hung work is cut off
//!   |<---------- Response::Diagnostic(DiagReport) ------|  facts + verdict + reason
//! ```
//! Probes are a closed set ([`ProbeKind`]). Technician-supplied values only ever enter the agent as the
//! newtypes below ([`HostName`], [`Port`], [`HttpUrl`], [`UnitName`]) or bounded numbers, each with a strict
//! character set and length limit. Validation is pure and lives here, so the console rejects early and the
//! agent re-checks with the same code. Deserialisation does not validate (a bad value must get a clear
//! answer, not a dropped stream): the agent calls [`Probe::validate`] before it runs anything.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

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

/// The catalog: every probe the agent knows, without parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ProbeKind {
    /// Uptime and load average.
    Uptime,
    /// CPU and memory pressure.
    Pressure,
    /// Top processes by CPU and memory.
    TopProcesses,
    /// Space used per filesystem.
    DiskUsage,
    /// Inodes used per filesystem.
    Inodes,
    /// SMART health through `smartctl`.
    Smart,
    /// Network interfaces and addresses.
    Interfaces,
    /// Default route and whether the gateway answers.
    DefaultRoute,
    /// Resolve a host name.
    Dns,
    /// TCP connect to host:port.
    TcpConnect,
    /// HTTP(S) request to a URL.
    Http,
    /// Listening TCP ports.
    ListeningPorts,
    /// systemd units in the failed state.
    FailedUnits,
    /// State of one systemd unit.
    UnitStatus,
    /// Recent errors from the journal.
    JournalErrors,
    /// Kernel messages about OOM kills and disk errors.
    KernelMessages,
    /// Package updates the package manager knows about without the network.
    PendingUpdates,
}

/// One parameter a probe takes, for `--list` and for parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ParamSpec {
    /// The key on the command line (`host=...` or `--host ...`).
    pub name: &'static str,
    /// What kind of value.
    pub kind: &'static str,
    /// Whether the probe needs it.
    pub required: bool,
    /// One line of help, including the default when optional.
    pub help: &'static str,
}

const HOST: ParamSpec = ParamSpec {
    name: "host",
    kind: "host",
    required: true,
    help: "host name or IP address",
};

impl ProbeKind {
    /// Every probe, in catalog order.
    pub const ALL: [ProbeKind; 17] = [
        ProbeKind::Uptime,
        ProbeKind::Pressure,
        ProbeKind::TopProcesses,
        ProbeKind::DiskUsage,
        ProbeKind::Inodes,
        ProbeKind::Smart,
        ProbeKind::Interfaces,
        ProbeKind::DefaultRoute,
        ProbeKind::Dns,
        ProbeKind::TcpConnect,
        ProbeKind::Http,
        ProbeKind::ListeningPorts,
        ProbeKind::FailedUnits,
        ProbeKind::UnitStatus,
        ProbeKind::JournalErrors,
        ProbeKind::KernelMessages,
        ProbeKind::PendingUpdates,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Uptime => "uptime",
            ProbeKind::Pressure => "pressure",
            ProbeKind::TopProcesses => "top-processes",
            ProbeKind::DiskUsage => "disk-usage",
            ProbeKind::Inodes => "inodes",
            ProbeKind::Smart => "smart",
            ProbeKind::Interfaces => "interfaces",
            ProbeKind::DefaultRoute => "default-route",
            ProbeKind::Dns => "dns",
            ProbeKind::TcpConnect => "tcp-connect",
            ProbeKind::Http => "http",
            ProbeKind::ListeningPorts => "listening-ports",
            ProbeKind::FailedUnits => "failed-units",
            ProbeKind::UnitStatus => "unit-status",
            ProbeKind::JournalErrors => "journal-errors",
            ProbeKind::KernelMessages => "kernel-messages",
            ProbeKind::PendingUpdates => "pending-updates",
        }
    }

    /// One line saying what the probe checks.
    pub fn describe(self) -> &'static str {
        match self {
            ProbeKind::Uptime => "uptime and load average compared with the CPU count",
            ProbeKind::Pressure => "CPU busy %, memory and swap use, kernel pressure stall info",
            ProbeKind::TopProcesses => "the processes using the most CPU and memory",
            ProbeKind::DiskUsage => {
                "space used per filesystem; warns above 90 %, problem above 97 %"
            }
            ProbeKind::Inodes => "inodes used per filesystem; warns above 90 %, problem above 97 %",
            ProbeKind::Smart => "SMART overall health of each disk (needs smartctl)",
            ProbeKind::Interfaces => "network interfaces, link state, MAC and addresses",
            ProbeKind::DefaultRoute => "the default route and whether its gateway answers",
            ProbeKind::Dns => "resolve a host name with the system resolver, with timing",
            ProbeKind::TcpConnect => "open a TCP connection to host:port, with timing",
            ProbeKind::Http => "fetch a URL (http or https): status line and timing",
            ProbeKind::ListeningPorts => "TCP ports listening on this machine (/proc/net/tcp*)",
            ProbeKind::FailedUnits => "systemd units in the failed state",
            ProbeKind::UnitStatus => "load and active state of one systemd unit",
            ProbeKind::JournalErrors => "recent error-level entries from the systemd journal",
            ProbeKind::KernelMessages => "kernel messages about OOM kills and disk errors",
            ProbeKind::PendingUpdates => {
                "package updates apt already knows about (no network used)"
            }
        }
    }

    /// The parameters this probe takes.
    pub fn params(self) -> &'static [ParamSpec] {
        match self {
            ProbeKind::TopProcesses => &[ParamSpec {
                name: "count",
                kind: "1-50",
                required: false,
                help: "processes per list (default 5)",
            }],
            ProbeKind::Dns => &[ParamSpec {
                name: "name",
                kind: "host",
                required: true,
                help: "the name to resolve",
            }],
            ProbeKind::TcpConnect => &[
                HOST,
                ParamSpec {
                    name: "port",
                    kind: "1-65535",
                    required: true,
                    help: "TCP port",
                },
            ],
            ProbeKind::Http => &[ParamSpec {
                name: "url",
                kind: "url",
                required: true,
                help: "http:// or https:// URL",
            }],
            ProbeKind::UnitStatus => &[ParamSpec {
                name: "unit",
                kind: "unit",
                required: true,
                help: "unit name, e.g. ssh.service",
            }],
            ProbeKind::JournalErrors => &[
                ParamSpec {
                    name: "lines",
                    kind: "1-500",
                    required: false,
                    help: "most entries to return (default 20)",
                },
                ParamSpec {
                    name: "since",
                    kind: "minutes",
                    required: false,
                    help: "only entries from the last N minutes (default: any time)",
                },
            ],
            ProbeKind::KernelMessages => &[ParamSpec {
                name: "lines",
                kind: "1-500",
                required: false,
                help: "most matching messages to return (default 20)",
            }],
            _ => &[],
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

    /// The timeout to apply: `requested` (1–[`MAX_TIMEOUT_SECS`]) or the default.
    pub fn effective_timeout_secs(self, requested: Option<u16>) -> Result<u16, ParamError> {
        match requested {
            None => Ok(self.default_timeout_secs()),
            Some(t) => {
                in_range("timeout", t, 1, MAX_TIMEOUT_SECS)?;
                Ok(t)
            }
        }
    }

    /// Whether `diag --all` (the standard health check) runs it: every probe without required parameters.
    pub fn in_health_check(self) -> bool {
        self.params().iter().all(|p| !p.required)
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

/// A probe with its parameters: what the console asks the agent to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Probe {
    /// See [`ProbeKind::Uptime`].
    Uptime,
    /// See [`ProbeKind::Pressure`].
    Pressure,
    /// See [`ProbeKind::TopProcesses`].
    TopProcesses {
        /// Processes per list, 1–[`MAX_TOP`].
        #[cfg_attr(test, proptest(strategy = "1..=MAX_TOP"))]
        count: u8,
    },
    /// See [`ProbeKind::DiskUsage`].
    DiskUsage,
    /// See [`ProbeKind::Inodes`].
    Inodes,
    /// See [`ProbeKind::Smart`].
    Smart,
    /// See [`ProbeKind::Interfaces`].
    Interfaces,
    /// See [`ProbeKind::DefaultRoute`].
    DefaultRoute,
    /// See [`ProbeKind::Dns`].
    Dns {
        /// The name to resolve.
        name: HostName,
    },
    /// See [`ProbeKind::TcpConnect`].
    TcpConnect {
        /// Where to connect.
        host: HostName,
        /// Which port.
        port: Port,
    },
    /// See [`ProbeKind::Http`].
    Http {
        /// What to fetch.
        url: HttpUrl,
    },
    /// See [`ProbeKind::ListeningPorts`].
    ListeningPorts,
    /// See [`ProbeKind::FailedUnits`].
    FailedUnits,
    /// See [`ProbeKind::UnitStatus`].
    UnitStatus {
        /// The unit.
        unit: UnitName,
    },
    /// See [`ProbeKind::JournalErrors`].
    JournalErrors {
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
    /// See [`ProbeKind::KernelMessages`].
    KernelMessages {
        /// Most messages, 1–[`MAX_LINES`].
        #[cfg_attr(test, proptest(strategy = "1..=MAX_LINES"))]
        lines: u16,
    },
    /// See [`ProbeKind::PendingUpdates`].
    PendingUpdates,
}

/// Default `count` for `top-processes`.
pub const DEFAULT_TOP: u8 = 5;
/// Default `lines` for the log probes.
pub const DEFAULT_LINES: u16 = 20;

impl Probe {
    /// Which catalog entry this is.
    pub fn kind(&self) -> ProbeKind {
        match self {
            Probe::Uptime => ProbeKind::Uptime,
            Probe::Pressure => ProbeKind::Pressure,
            Probe::TopProcesses { .. } => ProbeKind::TopProcesses,
            Probe::DiskUsage => ProbeKind::DiskUsage,
            Probe::Inodes => ProbeKind::Inodes,
            Probe::Smart => ProbeKind::Smart,
            Probe::Interfaces => ProbeKind::Interfaces,
            Probe::DefaultRoute => ProbeKind::DefaultRoute,
            Probe::Dns { .. } => ProbeKind::Dns,
            Probe::TcpConnect { .. } => ProbeKind::TcpConnect,
            Probe::Http { .. } => ProbeKind::Http,
            Probe::ListeningPorts => ProbeKind::ListeningPorts,
            Probe::FailedUnits => ProbeKind::FailedUnits,
            Probe::UnitStatus { .. } => ProbeKind::UnitStatus,
            Probe::JournalErrors { .. } => ProbeKind::JournalErrors,
            Probe::KernelMessages { .. } => ProbeKind::KernelMessages,
            Probe::PendingUpdates => ProbeKind::PendingUpdates,
        }
    }

    /// The probe as the health check runs it, or `None` when it needs parameters.
    pub fn with_defaults(kind: ProbeKind) -> Option<Probe> {
        Probe::parse::<&str>(kind, &[]).ok()
    }

    /// The standard health check: every probe that needs no parameters, with defaults.
    pub fn health_check() -> Vec<Probe> {
        ProbeKind::ALL
            .into_iter()
            .filter_map(Probe::with_defaults)
            .collect()
    }

    /// Builds a probe from command-line arguments: `key=value`, `--key value` or `--key=value`.
    pub fn parse<S: AsRef<str>>(kind: ProbeKind, args: &[S]) -> Result<Probe, ParamError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut it = args.iter().map(AsRef::as_ref);
        while let Some(arg) = it.next() {
            let (key, value) = if let Some(flag) = arg.strip_prefix("--") {
                match flag.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => {
                        let v = it.next().ok_or_else(|| ParamError::MissingValue {
                            param: shown(&format!("--{flag}")),
                        })?;
                        (flag.to_string(), v.to_string())
                    }
                }
            } else {
                match arg.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => return Err(ParamError::NotKeyValue(shown(arg))),
                }
            };
            if !kind.params().iter().any(|p| p.name == key) {
                return Err(ParamError::UnknownParam {
                    probe: kind,
                    param: shown(&key),
                });
            }
            if pairs.iter().any(|(k, _)| *k == key) {
                return Err(ParamError::Repeated(shown(&key)));
            }
            pairs.push((key, value));
        }
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let need = |name: &'static str| {
            get(name).ok_or(ParamError::MissingParam {
                probe: kind,
                param: name,
            })
        };
        let probe = match kind {
            ProbeKind::Uptime => Probe::Uptime,
            ProbeKind::Pressure => Probe::Pressure,
            ProbeKind::TopProcesses => Probe::TopProcesses {
                count: get("count")
                    .map(|v| number("count", v, 1, MAX_TOP))
                    .transpose()?
                    .unwrap_or(DEFAULT_TOP),
            },
            ProbeKind::DiskUsage => Probe::DiskUsage,
            ProbeKind::Inodes => Probe::Inodes,
            ProbeKind::Smart => Probe::Smart,
            ProbeKind::Interfaces => Probe::Interfaces,
            ProbeKind::DefaultRoute => Probe::DefaultRoute,
            ProbeKind::Dns => Probe::Dns {
                name: need("name")?.parse()?,
            },
            ProbeKind::TcpConnect => Probe::TcpConnect {
                host: need("host")?.parse()?,
                port: need("port")?.parse()?,
            },
            ProbeKind::Http => Probe::Http {
                url: need("url")?.parse()?,
            },
            ProbeKind::ListeningPorts => Probe::ListeningPorts,
            ProbeKind::FailedUnits => Probe::FailedUnits,
            ProbeKind::UnitStatus => Probe::UnitStatus {
                unit: need("unit")?.parse()?,
            },
            ProbeKind::JournalErrors => Probe::JournalErrors {
                lines: get("lines")
                    .map(|v| number("lines", v, 1, MAX_LINES))
                    .transpose()?
                    .unwrap_or(DEFAULT_LINES),
                since_minutes: get("since")
                    .map(|v| number("since", v, 1, MAX_SINCE_MINUTES))
                    .transpose()?,
            },
            ProbeKind::KernelMessages => Probe::KernelMessages {
                lines: get("lines")
                    .map(|v| number("lines", v, 1, MAX_LINES))
                    .transpose()?
                    .unwrap_or(DEFAULT_LINES),
            },
            ProbeKind::PendingUpdates => Probe::PendingUpdates,
        };
        Ok(probe)
    }

    /// Re-checks every parameter. The agent calls this on what arrived before running anything, because a
    /// value that was deserialised did not go through the constructors.
    pub fn validate(&self) -> Result<(), ParamError> {
        match self {
            Probe::TopProcesses { count } => in_range("count", *count, 1, MAX_TOP),
            Probe::Dns { name } => HostName::check(&name.0),
            Probe::TcpConnect { host, port } => {
                HostName::check(&host.0)?;
                Port::check(port.0)
            }
            Probe::Http { url } => HttpUrl::split(&url.0).map(|_| ()),
            Probe::UnitStatus { unit } => UnitName::check(&unit.0),
            Probe::JournalErrors {
                lines,
                since_minutes,
            } => {
                in_range("lines", *lines, 1, MAX_LINES)?;
                match since_minutes {
                    Some(m) => in_range("since", *m, 1, MAX_SINCE_MINUTES),
                    None => Ok(()),
                }
            }
            Probe::KernelMessages { lines } => in_range("lines", *lines, 1, MAX_LINES),
            Probe::Uptime
            | Probe::Pressure
            | Probe::DiskUsage
            | Probe::Inodes
            | Probe::Smart
            | Probe::Interfaces
            | Probe::DefaultRoute
            | Probe::ListeningPorts
            | Probe::FailedUnits
            | Probe::PendingUpdates => Ok(()),
        }
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

/// A parameter that was refused. Values are quoted and cut to 64 characters in the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// The probe name is not in the catalog.
    #[error("unknown probe {0} (see --list)")]
    UnknownProbe(String),
    /// The probe takes no parameter of that name.
    #[error("probe {probe} takes no parameter {param}")]
    UnknownParam {
        /// The probe.
        probe: ProbeKind,
        /// The name given.
        param: String,
    },
    /// A required parameter is missing.
    #[error("probe {probe} needs {param}=...")]
    MissingParam {
        /// The probe.
        probe: ProbeKind,
        /// The parameter.
        param: &'static str,
    },
    /// `--key` was last, with no value after it.
    #[error("{param} needs a value")]
    MissingValue {
        /// The parameter.
        param: String,
    },
    /// An argument that is neither `key=value` nor `--key value`.
    #[error("expected key=value or --key value, got {0}")]
    NotKeyValue(String),
    /// The same parameter twice.
    #[error("parameter {0} given twice")]
    Repeated(String),
    /// A host name or address that is not valid.
    #[error("invalid host {value}: {why}")]
    BadHost {
        /// The value.
        value: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A port that is not 1–65535.
    #[error("invalid port {0}: must be a number from 1 to 65535")]
    BadPort(String),
    /// A URL that is not valid or uses a scheme we do not fetch.
    #[error("invalid URL {value}: {why}")]
    BadUrl {
        /// The value.
        value: String,
        /// What is wrong with it.
        why: String,
    },
    /// A unit name that is not valid.
    #[error("invalid unit name {value}: {why}")]
    BadUnit {
        /// The value.
        value: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A number outside its range.
    #[error("{param} must be a whole number from {min} to {max}, got {value}")]
    OutOfRange {
        /// The parameter.
        param: &'static str,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
        /// What was given.
        value: String,
    },
}

/// A value quoted for an error message, cut so an overlong input cannot flood the output.
fn shown(s: &str) -> String {
    const MAX: usize = 64;
    if s.chars().count() > MAX {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut:?}... ({} chars)", s.chars().count())
    } else {
        format!("{s:?}")
    }
}

fn number<T>(param: &'static str, v: &str, min: T, max: T) -> Result<T, ParamError>
where
    T: FromStr + PartialOrd + Into<u64> + Copy,
{
    let bad = || ParamError::OutOfRange {
        param,
        min: min.into(),
        max: max.into(),
        value: shown(v),
    };
    let n: T = v.parse().map_err(|_| bad())?;
    if n < min || n > max {
        return Err(bad());
    }
    Ok(n)
}

fn in_range<T>(param: &'static str, n: T, min: T, max: T) -> Result<(), ParamError>
where
    T: PartialOrd + Into<u64> + Copy + fmt::Display,
{
    if n < min || n > max {
        return Err(ParamError::OutOfRange {
            param,
            min: min.into(),
            max: max.into(),
            value: n.to_string(),
        });
    }
    Ok(())
}

/// A DNS host name (letters, digits, `-`, dot-separated labels of 1–63, at most [`MAX_HOST_LEN`]) or an
/// IPv4/IPv6 address literal. Nothing else: no spaces, quotes, shell characters or leading `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct HostName(
    #[cfg_attr(
        test,
        proptest(regex = "[a-z]([a-z0-9-]{0,8}[a-z0-9])?(\\.[a-z]{1,8}){0,3}")
    )]
    String,
);

impl HostName {
    /// The validated text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address, when the host is an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.0.parse().ok()
    }

    fn check(s: &str) -> Result<(), ParamError> {
        let bad = |why| ParamError::BadHost {
            value: shown(s),
            why,
        };
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.len() > MAX_HOST_LEN {
            return Err(bad("longer than 253 characters"));
        }
        if s.parse::<IpAddr>().is_ok() {
            return Ok(());
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(bad(
                "only letters, digits, '-' and '.' are allowed in a host name",
            ));
        }
        for label in s.split('.') {
            if label.is_empty() {
                return Err(bad("empty label (two dots, or a dot at either end)"));
            }
            if label.len() > 63 {
                return Err(bad("a label is longer than 63 characters"));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(bad("a label starts or ends with '-'"));
            }
        }
        Ok(())
    }
}

impl FromStr for HostName {
    type Err = ParamError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HostName::check(s)?;
        Ok(HostName(s.to_string()))
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A TCP port, 1–65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Port(#[cfg_attr(test, proptest(strategy = "1..=65535u16"))] u16);

impl Port {
    /// The number.
    pub fn get(self) -> u16 {
        self.0
    }

    fn check(n: u16) -> Result<(), ParamError> {
        if n == 0 {
            return Err(ParamError::BadPort(shown("0")));
        }
        Ok(())
    }
}

impl TryFrom<u16> for Port {
    type Error = ParamError;
    fn try_from(n: u16) -> Result<Self, Self::Error> {
        Port::check(n)?;
        Ok(Port(n))
    }
}

impl FromStr for Port {
    type Err = ParamError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let n: u16 = s.parse().map_err(|_| ParamError::BadPort(shown(s)))?;
        Port::check(n)?;
        Ok(Port(n))
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An `http://` or `https://` URL: a valid [`HostName`] (IPv6 in brackets), an optional port, and a path and
/// query made only of letters, digits and `-._~/?=&%+:@,`. No user info, fragment, spaces, quotes or other
/// shell characters; at most [`MAX_URL_LEN`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct HttpUrl(
    #[cfg_attr(
        test,
        proptest(regex = "https?://[a-z]{1,10}(:[1-9][0-9]{0,3})?(/[a-z0-9]{0,8}){0,3}")
    )]
    String,
);

/// The parts of an [`HttpUrl`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts<'a> {
    /// `https`?
    pub tls: bool,
    /// The host, without brackets.
    pub host: &'a str,
    /// The port, explicit or the scheme's default.
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: &'a str,
}

impl HttpUrl {
    /// The validated text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Scheme, host, port and path. Always `Ok` for a value built by `parse`; the agent re-checks.
    pub fn parts(&self) -> Result<UrlParts<'_>, ParamError> {
        HttpUrl::split(&self.0)
    }

    fn split(s: &str) -> Result<UrlParts<'_>, ParamError> {
        let bad = |why: &str| ParamError::BadUrl {
            value: shown(s),
            why: why.to_string(),
        };
        if s.len() > MAX_URL_LEN {
            return Err(bad("longer than 512 characters"));
        }
        let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
        let (tls, rest) = if lower.starts_with("https://") {
            (true, &s[8..])
        } else if lower.starts_with("http://") {
            (false, &s[7..])
        } else {
            return Err(bad("only http:// and https:// URLs are supported"));
        };
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.contains('@') {
            return Err(bad("user names and passwords in URLs are not accepted"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed '[' around an IPv6 address"))?;
            if h.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("not an IPv6 address inside [ ]"));
            }
            match after {
                "" => (h, None),
                p => (
                    h,
                    Some(
                        p.strip_prefix(':')
                            .ok_or_else(|| bad("unexpected text after ']'"))?,
                    ),
                ),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        HostName::check(host).map_err(|e| bad(&e.to_string()))?;
        let port = match port {
            Some(p) => p.parse::<Port>().map_err(|e| bad(&e.to_string()))?.get(),
            None if tls => 443,
            None => 80,
        };
        const PATH_CHARS: &[u8] = b"-._~/?=&%+:@,";
        if let Some(c) = path.chars().find(|c| {
            !(c.is_ascii_alphanumeric() || (c.is_ascii() && PATH_CHARS.contains(&(*c as u8))))
        }) {
            return Err(bad(&format!(
                "character {c:?} is not allowed (letters, digits and -._~/?=&%+:@, only)"
            )));
        }
        let path = if path.is_empty() { "/" } else { path };
        Ok(UrlParts {
            tls,
            host,
            port,
            path,
        })
    }
}

impl FromStr for HttpUrl {
    type Err = ParamError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HttpUrl::split(s)?;
        Ok(HttpUrl(s.to_string()))
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A systemd unit name: letters, digits and `:_.@-`, 1–[`MAX_UNIT_LEN`] characters, not starting with `-`
/// or `.` (so it can never be read as an option).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct UnitName(
    #[cfg_attr(
        test,
        proptest(regex = "[a-z][a-z0-9-]{0,12}\\.(service|timer|socket)")
    )]
    String,
);

impl UnitName {
    /// The validated text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name with `.service` added when it has no unit type suffix, as systemctl reads it.
    pub fn with_suffix(&self) -> String {
        const TYPES: [&str; 11] = [
            ".service",
            ".socket",
            ".target",
            ".timer",
            ".mount",
            ".automount",
            ".path",
            ".slice",
            ".scope",
            ".swap",
            ".device",
        ];
        if TYPES.iter().any(|t| self.0.ends_with(t)) {
            self.0.clone()
        } else {
            format!("{}.service", self.0)
        }
    }

    fn check(s: &str) -> Result<(), ParamError> {
        let bad = |why| ParamError::BadUnit {
            value: shown(s),
            why,
        };
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.len() > MAX_UNIT_LEN {
            return Err(bad("longer than 128 characters"));
        }
        if s.starts_with('-') || s.starts_with('.') {
            return Err(bad("must not start with '-' or '.'"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":_.@-".contains(&b))
        {
            return Err(bad("only letters, digits and ':_.@-' are allowed"));
        }
        Ok(())
    }
}

impl FromStr for UnitName {
    type Err = ParamError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UnitName::check(s)?;
        Ok(UnitName(s.to_string()))
    }
}

impl fmt::Display for UnitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a probe judged what it found, or why it could not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Verdict {
    /// Nothing wrong found.
    Ok,
    /// Worth a look.
    Warning,
    /// Something is wrong.
    Problem,
    /// The probe cannot run here (no systemd, no journal, no smartctl, ...). Not a fault of the machine.
    NotAvailable,
    /// The probe did not finish within its timeout and was cut off.
    TimedOut,
    /// The probe itself failed (the reason says why).
    Failed,
}

impl Verdict {
    /// Sort key for summaries: problems first, then failures, warnings, not available, ok.
    pub fn rank(self) -> u8 {
        match self {
            Verdict::Problem => 0,
            Verdict::TimedOut => 1,
            Verdict::Failed => 2,
            Verdict::Warning => 3,
            Verdict::NotAvailable => 4,
            Verdict::Ok => 5,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Ok => "ok",
            Verdict::Warning => "warning",
            Verdict::Problem => "problem",
            Verdict::NotAvailable => "n/a",
            Verdict::TimedOut => "timed out",
            Verdict::Failed => "failed",
        })
    }
}

/// A probe's result: facts plus a verdict with its reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DiagReport {
    /// Which probe ran, with its parameters.
    pub probe: Probe,
    /// The judgement.
    pub verdict: Verdict,
    /// Why, in one line for the technician.
    pub reason: String,
    /// What was measured ([`DiagFacts::None`] when the probe could not run).
    pub facts: DiagFacts,
    /// How long the probe ran, in milliseconds.
    pub elapsed_ms: u64,
}

/// The measured facts, per probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum DiagFacts {
    /// Nothing measured: the probe was not available, timed out or failed.
    None,
    /// Facts from `uptime`.
    Uptime {
        /// Seconds since boot.
        uptime_secs: u64,
        /// Load averages over 1, 5 and 15 minutes.
        #[cfg_attr(test, proptest(strategy = "proptest::array::uniform3(0.0..512.0f64)"))]
        load: [f64; 3],
        /// Logical CPUs, to read the load against.
        logical_cpus: u32,
    },
    /// Facts from `pressure`.
    Pressure(PressureFacts),
    /// Facts from `top-processes`.
    TopProcesses {
        /// Highest CPU first.
        by_cpu: Vec<ProcessInfo>,
        /// Largest resident memory first.
        by_memory: Vec<ProcessInfo>,
    },
    /// Facts from `disk-usage`.
    DiskUsage {
        /// One entry per mounted filesystem.
        filesystems: Vec<FilesystemUsage>,
    },
    /// Facts from `inodes`.
    Inodes {
        /// One entry per mounted filesystem that has inodes.
        filesystems: Vec<InodeUsage>,
    },
    /// Facts from `smart`.
    Smart {
        /// One entry per disk smartctl found.
        devices: Vec<SmartDevice>,
    },
    /// Facts from `interfaces`.
    Interfaces {
        /// Every interface.
        interfaces: Vec<InterfaceInfo>,
    },
    /// Facts from `default-route`.
    DefaultRoute(RouteFacts),
    /// Facts from `dns`.
    Dns {
        /// The name asked for.
        name: String,
        /// What it resolved to (empty: it did not).
        addresses: Vec<String>,
        /// Name servers from /etc/resolv.conf.
        nameservers: Vec<String>,
        /// The resolver's error, when it failed.
        error: Option<String>,
    },
    /// Facts from `tcp-connect`.
    TcpConnect(ConnectFacts),
    /// Facts from `http`.
    Http(HttpFacts),
    /// Facts from `listening-ports`.
    ListeningPorts {
        /// Every listening TCP socket.
        sockets: Vec<ListeningSocket>,
    },
    /// Facts from `failed-units`.
    FailedUnits {
        /// Units in the failed state.
        units: Vec<UnitState>,
    },
    /// Facts from `unit-status`.
    UnitStatus(UnitState),
    /// Facts from `journal-errors` and `kernel-messages`.
    Log {
        /// Matching lines, oldest first.
        lines: Vec<String>,
        /// OOM kills among them (kernel messages only).
        oom_kills: u32,
        /// Disk errors among them (kernel messages only).
        disk_errors: u32,
    },
    /// Facts from `pending-updates`.
    PendingUpdates {
        /// The package manager asked.
        manager: String,
        /// Upgradable packages.
        packages: Vec<PendingPackage>,
        /// Hours since the package lists were refreshed, when known.
        lists_age_hours: Option<u64>,
    },
}

/// CPU and memory pressure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct PressureFacts {
    /// CPU busy over the sample window, 0–100, without the agent's own work (the probes of a
    /// health check run at the same time and would otherwise count as load).
    #[cfg_attr(test, proptest(strategy = "0.0..=100.0f64"))]
    pub cpu_percent: f64,
    /// How long the CPU was sampled, in milliseconds.
    pub cpu_window_ms: u32,
    /// Whether the agent's own work could be left out (Linux `/proc`); else it is included.
    pub cpu_excludes_agent: bool,
    /// Total memory in bytes.
    pub memory_total: u64,
    /// Available memory in bytes.
    pub memory_available: u64,
    /// Swap size in bytes.
    pub swap_total: u64,
    /// Swap used in bytes.
    pub swap_used: u64,
    /// /proc/pressure/cpu "some avg10", when the kernel has PSI.
    #[cfg_attr(test, proptest(strategy = "proptest::option::of(0.0..=100.0f64)"))]
    pub psi_cpu_some10: Option<f64>,
    /// /proc/pressure/memory "full avg10", when the kernel has PSI.
    #[cfg_attr(test, proptest(strategy = "proptest::option::of(0.0..=100.0f64)"))]
    pub psi_memory_full10: Option<f64>,
}

/// One process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// Executable name.
    pub name: String,
    /// CPU use over the sample, in percent of one CPU.
    #[cfg_attr(test, proptest(strategy = "0.0..=800.0f64"))]
    pub cpu_percent: f64,
    /// Resident memory in bytes.
    pub memory: u64,
}

/// Space used on one filesystem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct FilesystemUsage {
    /// Mount point.
    pub mount_point: String,
    /// Filesystem type.
    pub filesystem: String,
    /// Size in bytes.
    pub total: u64,
    /// Bytes available to unprivileged users.
    pub available: u64,
    /// Percent used (0–100), as `df` counts it.
    #[cfg_attr(test, proptest(strategy = "0.0..=100.0f64"))]
    pub used_percent: f64,
}

/// Inodes used on one filesystem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct InodeUsage {
    /// Mount point.
    pub mount_point: String,
    /// Filesystem type.
    pub filesystem: String,
    /// Inodes in total.
    pub total: u64,
    /// Free inodes.
    pub free: u64,
    /// Percent used (0–100).
    #[cfg_attr(test, proptest(strategy = "0.0..=100.0f64"))]
    pub used_percent: f64,
}

/// One disk's SMART health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SmartDevice {
    /// Device path, e.g. /dev/sda.
    pub device: String,
    /// The overall-health result: `Some(true)` passed, `Some(false)` failed, `None` not reported.
    pub passed: Option<bool>,
    /// The line smartctl printed about it.
    pub detail: String,
}

/// One network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct InterfaceInfo {
    /// Interface name.
    pub name: String,
    /// Kernel operational state (up, down, unknown, ...).
    pub state: String,
    /// MAC address, empty when none.
    pub mac: String,
    /// Addresses with prefix length, e.g. 192.0.2.2/24.
    pub addresses: Vec<String>,
}

/// The default route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct RouteFacts {
    /// IPv4 gateway of the default route, if there is one.
    pub gateway: Option<String>,
    /// Interface of the default route.
    pub interface: Option<String>,
    /// Whether the gateway answered, when it was checked.
    pub reachable: Option<bool>,
    /// How reachability was checked (ping, neighbour table).
    pub method: String,
    /// Round-trip time when ping answered.
    #[cfg_attr(test, proptest(strategy = "proptest::option::of(0.0..1000.0f64)"))]
    pub rtt_ms: Option<f64>,
}

/// A TCP connection attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ConnectFacts {
    /// Host asked for.
    pub host: String,
    /// Port asked for.
    pub port: u16,
    /// Addresses tried, in order.
    pub tried: Vec<String>,
    /// The address that accepted, if any.
    pub connected_to: Option<String>,
    /// Time to connect (or to fail), in milliseconds.
    #[cfg_attr(test, proptest(strategy = "0.0..100000.0f64"))]
    pub connect_ms: f64,
    /// The last error, when it failed.
    pub error: Option<String>,
}

/// An HTTP(S) request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct HttpFacts {
    /// The URL.
    pub url: String,
    /// The status code, if a response arrived.
    pub status: Option<u16>,
    /// The status line as received.
    pub status_line: Option<String>,
    /// The Server header, if any.
    pub server: Option<String>,
    /// The Location header of a redirect, if any.
    pub location: Option<String>,
    /// Time to connect (TCP, plus TLS for https), in milliseconds.
    #[cfg_attr(test, proptest(strategy = "proptest::option::of(0.0..100000.0f64)"))]
    pub connect_ms: Option<f64>,
    /// Time until the response headers were read, in milliseconds.
    #[cfg_attr(test, proptest(strategy = "proptest::option::of(0.0..100000.0f64)"))]
    pub total_ms: Option<f64>,
    /// What went wrong, when no response arrived.
    pub error: Option<String>,
}

/// A listening socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ListeningSocket {
    /// `tcp` or `tcp6`.
    pub protocol: String,
    /// Local address.
    pub address: String,
    /// Local port.
    pub port: u16,
    /// Owning user id.
    pub uid: u32,
}

/// A systemd unit's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct UnitState {
    /// Unit name.
    pub name: String,
    /// LoadState (loaded, not-found, masked, ...), when known.
    pub load_state: Option<String>,
    /// ActiveState (active, failed, inactive, ...), when known.
    pub active_state: Option<String>,
    /// SubState (running, dead, ...), when known.
    pub sub_state: Option<String>,
    /// Description, when known.
    pub description: Option<String>,
    /// The unit file found on disk, when systemd itself could not be asked.
    pub unit_file: Option<String>,
}

/// One upgradable package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct PendingPackage {
    /// Package name.
    pub name: String,
    /// Installed version.
    pub current: String,
    /// Version available.
    pub available: String,
    /// Whether it comes from a security archive.
    pub security: bool,
}

/// One catalog entry as `diag --list --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogEntry {
    /// Probe name.
    pub name: &'static str,
    /// What it checks.
    pub description: &'static str,
    /// Its parameters.
    pub params: &'static [ParamSpec],
    /// Default timeout in seconds.
    pub timeout_secs: u16,
    /// Whether `diag --all` runs it.
    pub health_check: bool,
}

/// The whole catalog.
pub fn catalog() -> Vec<CatalogEntry> {
    ProbeKind::ALL
        .into_iter()
        .map(|k| CatalogEntry {
            name: k.name(),
            description: k.describe(),
            params: k.params(),
            timeout_secs: k.default_timeout_secs(),
            health_check: k.in_health_check(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(kind: &str, args: &[&str]) -> Result<Probe, ParamError> {
        Probe::parse(kind.parse()?, args)
    }

    #[test]
    fn names_round_trip_and_are_unique() {
        for k in ProbeKind::ALL {
            assert_eq!(k.name().parse::<ProbeKind>().unwrap(), k);
            assert!(!k.describe().is_empty());
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
    fn both_argument_styles_parse() {
        let want = Probe::TcpConnect {
            host: "127.0.0.1".parse().unwrap(),
            port: "8080".parse().unwrap(),
        };
        assert_eq!(
            parse("tcp-connect", &["host=127.0.0.1", "port=8080"]).unwrap(),
            want
        );
        assert_eq!(
            parse("tcp-connect", &["--host", "127.0.0.1", "--port=8080"]).unwrap(),
            want
        );
        assert_eq!(want.to_string(), "tcp-connect host=127.0.0.1 port=8080");
        assert_eq!(
            parse("journal-errors", &["since=30"]).unwrap(),
            Probe::JournalErrors {
                lines: DEFAULT_LINES,
                since_minutes: Some(30)
            }
        );
        assert_eq!(
            parse("top-processes", &[]).unwrap(),
            Probe::TopProcesses { count: DEFAULT_TOP }
        );
        // Display output parses back to the same probe.
        let p = parse("http", &["url=https://example.com:8443/a?b=c"]).unwrap();
        let text = p.to_string();
        let mut words = text.split(' ');
        let kind = words.next().unwrap();
        let rest: Vec<_> = words.collect();
        assert_eq!(parse(kind, &rest).unwrap(), p);
    }

    #[test]
    fn argument_mistakes_are_named() {
        let e = parse("tcp-connect", &["host=example.com"]).unwrap_err();
        assert_eq!(e.to_string(), "probe tcp-connect needs port=...");
        let e = parse("uptime", &["verbose=1"]).unwrap_err();
        assert_eq!(e.to_string(), "probe uptime takes no parameter \"verbose\"");
        let e = parse("dns", &["example.com"]).unwrap_err();
        assert!(e.to_string().starts_with("expected key=value"), "{e}");
        let e = parse("dns", &["name=a.b", "name=c.d"]).unwrap_err();
        assert!(matches!(e, ParamError::Repeated(_)), "{e}");
        let e = parse("dns", &["--name"]).unwrap_err();
        assert_eq!(e.to_string(), "\"--name\" needs a value");
        let e = parse("top-processes", &["count=0"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "count must be a whole number from 1 to 50, got \"0\""
        );
        let e = parse("journal-errors", &["lines=-3"]).unwrap_err();
        assert!(matches!(e, ParamError::OutOfRange { param: "lines", .. }));
    }

    #[test]
    fn shell_metacharacters_are_rejected_everywhere() {
        let evil = [
            "a;reboot", "a|b", "a&&b", "$(id)", "`id`", "a b", "a'b", "a\"b", "a>b", "a\nb",
            "a\\b", "*", "~root",
        ];
        for e in evil {
            assert!(e.parse::<HostName>().is_err(), "host {e:?}");
            assert!(e.parse::<UnitName>().is_err(), "unit {e:?}");
            assert!(e.parse::<Port>().is_err(), "port {e:?}");
            let url = format!("http://example.com/{e}");
            // '&' and '~' are ordinary URL characters (no shell ever sees them).
            if e != "~root" && e != "a&&b" {
                assert!(url.parse::<HttpUrl>().is_err(), "url {url:?}");
            }
        }
        // Option injection: nothing may start with '-'.
        assert!("-rf".parse::<HostName>().is_err());
        assert!("--user".parse::<UnitName>().is_err());
        assert!("--help".parse::<Port>().is_err());
    }

    #[test]
    fn hosts() {
        for ok in [
            "example.com",
            "a",
            "xn--bcher-kva.example",
            "10.0.0.1",
            "::1",
            "fe80::1",
        ] {
            ok.parse::<HostName>().unwrap();
        }
        let long_label = "a".repeat(64);
        let too_long = format!("{}.com", ["abc"; 70].join("."));
        for bad in [
            "",
            "a..b",
            ".a",
            "a.",
            "-a.com",
            "a-.com",
            &long_label,
            &too_long,
            "ex_ample.com",
        ] {
            assert!(bad.parse::<HostName>().is_err(), "{bad:?}");
        }
        let e = too_long.parse::<HostName>().unwrap_err().to_string();
        assert!(e.contains("longer than 253"), "{e}");
        assert!(e.len() < 160, "the message quotes a cut value: {e}");
        assert_eq!(
            "10.0.0.1".parse::<HostName>().unwrap().ip(),
            Some("10.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn ports() {
        assert_eq!("1".parse::<Port>().unwrap().get(), 1);
        assert_eq!("65535".parse::<Port>().unwrap().get(), 65535);
        for bad in ["0", "65536", "-1", "80a", "", " 80", "99999999999"] {
            let e = bad.parse::<Port>().unwrap_err();
            assert!(e.to_string().contains("1 to 65535"), "{e}");
        }
        assert!(Port::try_from(0).is_err());
    }

    #[test]
    fn urls() {
        let u: HttpUrl = "https://example.com".parse().unwrap();
        let p = u.parts().unwrap();
        assert_eq!(
            (p.tls, p.host, p.port, p.path),
            (true, "example.com", 443, "/")
        );
        let u: HttpUrl = "HTTP://[::1]:8080/x/y?z=1&w=%20".parse().unwrap();
        let p = u.parts().unwrap();
        assert_eq!(
            (p.tls, p.host, p.port, p.path),
            (false, "::1", 8080, "/x/y?z=1&w=%20")
        );
        let u: HttpUrl = "http://127.0.0.1:81?q".parse().unwrap();
        assert_eq!(u.parts().unwrap().path, "?q");
        for (bad, why) in [
            ("ftp://example.com/", "only http"),
            ("file:///etc/passwd", "only http"),
            ("http://user:pw@example.com/", "user names"),
            ("http://example.com:0/", "1 to 65535"),
            ("http://example.com:http/", "1 to 65535"),
            ("http://[::1/", "unclosed"),
            ("http:///x", "empty"),
            ("http://example.com/#frag", "not allowed"),
            ("http://example.com/é", "not allowed"),
        ] {
            let e = bad.parse::<HttpUrl>().unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let long = format!("http://example.com/{}", "a".repeat(600));
        assert!(
            long.parse::<HttpUrl>()
                .unwrap_err()
                .to_string()
                .contains("512")
        );
    }

    #[test]
    fn units() {
        for ok in [
            "ssh.service",
            "ssh",
            "getty@tty1.service",
            "dev-sda1.device",
            "a:b_c",
        ] {
            ok.parse::<UnitName>().unwrap();
        }
        assert_eq!(
            "ssh".parse::<UnitName>().unwrap().with_suffix(),
            "ssh.service"
        );
        assert_eq!(
            "x.timer".parse::<UnitName>().unwrap().with_suffix(),
            "x.timer"
        );
        for bad in [
            "",
            ".hidden",
            "-x",
            "a/b",
            "../etc",
            "a b",
            &"a".repeat(129),
        ] {
            assert!(bad.parse::<UnitName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn validate_catches_what_deserialisation_let_through() {
        // A hostile console can put anything on the wire; the agent re-validates.
        let raw = Probe::TcpConnect {
            host: HostName("$(reboot)".into()),
            port: Port(0),
        };
        assert!(matches!(raw.validate(), Err(ParamError::BadHost { .. })));
        let raw = Probe::TcpConnect {
            host: HostName("ok.example".into()),
            port: Port(0),
        };
        assert!(matches!(raw.validate(), Err(ParamError::BadPort(_))));
        let raw = Probe::UnitStatus {
            unit: UnitName("--kill".into()),
        };
        assert!(raw.validate().is_err());
        let raw = Probe::Http {
            url: HttpUrl("http://a/`x`".into()),
        };
        assert!(raw.validate().is_err());
        let raw = Probe::JournalErrors {
            lines: 0,
            since_minutes: None,
        };
        assert!(raw.validate().is_err());
        let raw = Probe::KernelMessages { lines: 10_000 };
        assert!(raw.validate().is_err());
    }

    #[test]
    fn verdict_rank_puts_problems_first() {
        let mut v = [
            Verdict::Ok,
            Verdict::NotAvailable,
            Verdict::Warning,
            Verdict::Failed,
            Verdict::Problem,
            Verdict::TimedOut,
        ];
        v.sort_by_key(|v| v.rank());
        assert_eq!(v[0], Verdict::Problem);
        assert_eq!(v[5], Verdict::Ok);
    }

    proptest! {
        #[test]
        fn generated_probes_validate_and_display_parses_back(p: Probe) {
            prop_assert!(p.validate().is_ok(), "{:?}", p);
            let text = p.to_string();
            let mut words = text.split(' ');
            let kind: ProbeKind = words.next().unwrap().parse().unwrap();
            let rest: Vec<_> = words.collect();
            prop_assert_eq!(Probe::parse(kind, &rest).unwrap(), p);
        }

        #[test]
        fn arbitrary_text_never_panics(s in ".{0,300}") {
            let _ = s.parse::<HostName>();
            let _ = s.parse::<HttpUrl>();
            let _ = s.parse::<UnitName>();
            let _ = s.parse::<Port>();
        }
    }
}
