//! Typed and validated probe parameters. Technician-supplied values only ever enter the agent as
//! the newtypes here ([`HostName`], [`Port`], [`HttpUrl`], [`UnitName`]) or bounded numbers, each
//! with a strict character set and length limit. [`Probe::from_pairs`] builds a probe from named
//! values (the text form [`Probe`]'s `Display` writes); [`Probe::validate`] re-checks what arrived
//! from the network, since deserialisation does not go through the constructors.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{
    DEFAULT_LINES, DEFAULT_TOP, MAX_HOST_LEN, MAX_LINES, MAX_SINCE_MINUTES, MAX_TIMEOUT_SECS,
    MAX_TOP, MAX_UNIT_LEN, MAX_URL_LEN, Probe, ProbeKind,
};

impl Probe {
    /// Builds a probe from named values, `("host", "example.com")`, in the order given: each name
    /// must be one of the probe's ([`ProbeKind::param_names`]) and appear once; missing optional
    /// ones take their defaults.
    pub fn from_pairs(kind: ProbeKind, pairs: &[(&str, &str)]) -> Result<Probe, ParamError> {
        for (n, (key, _)) in pairs.iter().enumerate() {
            check_name(kind, key, pairs[..n].iter().map(|(k, _)| *k))?;
        }
        let get = |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
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

/// Whether `key` may follow the parameters `before` in a probe of `kind`: one of its names, and
/// not given already. The console checks each word with this as it reads them, so the first
/// mistake on the line is the one named.
pub fn check_name<'a>(
    kind: ProbeKind,
    key: &str,
    mut before: impl Iterator<Item = &'a str>,
) -> Result<(), ParamError> {
    if !kind.param_names().contains(&key) {
        return Err(ParamError::UnknownParam {
            probe: kind,
            param: shown(key),
        });
    }
    if before.any(|k| k == key) {
        return Err(ParamError::Repeated(shown(key)));
    }
    Ok(())
}

/// Checks a per-request timeout override: 1–[`MAX_TIMEOUT_SECS`] seconds, on both ends.
pub fn check_timeout_secs(secs: u16) -> Result<u16, ParamError> {
    in_range("timeout", secs, 1, MAX_TIMEOUT_SECS)?;
    Ok(secs)
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
pub fn shown(s: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in ".{0,300}") {
            let _ = s.parse::<HostName>();
            let _ = s.parse::<HttpUrl>();
            let _ = s.parse::<UnitName>();
            let _ = s.parse::<Port>();
        }
    }
}
