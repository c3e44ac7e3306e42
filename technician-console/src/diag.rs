//! The console's side of diagnostics: reading a probe's parameters from the technician's words
//! (the command line's `key=value`, `--key value` and `--key=value`, and the window's parameter
//! field), and the help text and catalog `diag --list` prints. What both ends agree on (the probes,
//! their parameters and limits, validation) is `tether_proto::diag`.

use serde::Serialize;
use tether_proto::diag::{self, ParamError, Probe, ProbeKind, check_name, shown};

/// Builds a probe from the technician's words: `key=value`, `--key value` or `--key=value`. The
/// first mistake on the line is the one named.
pub fn parse_probe<S: AsRef<str>>(kind: ProbeKind, args: &[S]) -> Result<Probe, ParamError> {
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
        check_name(kind, &key, pairs.iter().map(|(k, _)| k.as_str()))?;
        pairs.push((key, value));
    }
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Probe::from_pairs(kind, &pairs)
}

/// Checks `--timeout` before anything connects: the range the agent accepts.
pub fn check_timeout(requested: Option<u16>) -> Result<(), ParamError> {
    requested.map_or(Ok(()), |t| diag::check_timeout_secs(t).map(|_| ()))
}

/// How long the agent lets `kind` run for a request with `requested` as its timeout: the
/// override, the probe's default, or 0 for an override the agent will refuse at once.
pub fn agent_timeout_secs(kind: ProbeKind, requested: Option<u16>) -> u16 {
    match requested {
        None => kind.default_timeout_secs(),
        Some(t) => diag::check_timeout_secs(t).unwrap_or(0),
    }
}

/// One parameter a probe takes, for `--list` and the window's hint.
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

/// One line saying what the probe checks.
pub fn describe(kind: ProbeKind) -> &'static str {
    match kind {
        ProbeKind::Uptime => "uptime and load average compared with the CPU count",
        ProbeKind::Pressure => "CPU busy %, memory and swap use, kernel pressure stall info",
        ProbeKind::TopProcesses => "the processes using the most CPU and memory",
        ProbeKind::DiskUsage => "space used per filesystem; warns above 90 %, problem above 97 %",
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
        ProbeKind::PendingUpdates => "package updates apt already knows about (no network used)",
    }
}

/// The parameters this probe takes.
pub fn params(kind: ProbeKind) -> &'static [ParamSpec] {
    match kind {
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
            description: describe(k),
            params: params(k),
            timeout_secs: k.default_timeout_secs(),
            health_check: k.in_health_check(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_proto::diag::{DEFAULT_LINES, DEFAULT_TOP};

    fn parse(kind: &str, args: &[&str]) -> Result<Probe, ParamError> {
        parse_probe(kind.parse()?, args)
    }

    #[test]
    fn every_probe_has_help_and_its_parameters_match_the_protocol() {
        for k in ProbeKind::ALL {
            assert!(!describe(k).is_empty());
            let names: Vec<_> = params(k).iter().map(|p| p.name).collect();
            assert_eq!(names, k.param_names(), "{k}");
            // The health check is every probe without required parameters.
            assert_eq!(
                params(k).iter().all(|p| !p.required),
                k.in_health_check(),
                "{k}"
            );
        }
    }

    #[test]
    fn the_agent_timeout_is_the_override_or_the_default() {
        assert_eq!(agent_timeout_secs(ProbeKind::Http, None), 10);
        assert_eq!(agent_timeout_secs(ProbeKind::Http, Some(3)), 3);
        assert_eq!(agent_timeout_secs(ProbeKind::Http, Some(500)), 0);
        assert!(check_timeout(None).is_ok());
        assert_eq!(
            check_timeout(Some(0)).unwrap_err().to_string(),
            "timeout must be a whole number from 1 to 120, got 0"
        );
    }

    #[test]
    fn display_reads_back_for_every_kind() {
        let with_params = [
            parse("dns", &["name=localhost"]).unwrap(),
            parse("tcp-connect", &["host=127.0.0.1", "port=9"]).unwrap(),
            parse("http", &["url=http://127.0.0.1:9/"]).unwrap(),
            parse("unit-status", &["unit=ssh.service"]).unwrap(),
        ];
        for p in Probe::health_check().into_iter().chain(with_params) {
            let text = p.to_string();
            let mut words = text.split(' ');
            let kind = words.next().unwrap();
            let rest: Vec<_> = words.collect();
            assert_eq!(parse(kind, &rest).unwrap(), p);
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
}
