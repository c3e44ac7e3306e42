//! Diagnostics: the probes the agent runs under the `diagnostics` scope and their structured results.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A diagnostic probe. Probes are a closed set with typed parameters: never a shell command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Probe {
    /// Uptime and load average against the CPU count.
    Uptime,
    /// Usage of every mounted filesystem, warning when one is nearly full.
    DiskUsage,
}

impl Probe {
    /// Every probe, in catalog order.
    pub const ALL: [Probe; 2] = [Probe::Uptime, Probe::DiskUsage];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Probe::Uptime => "uptime",
            Probe::DiskUsage => "disk-usage",
        }
    }

    /// One line saying what the probe checks.
    pub fn describe(self) -> &'static str {
        match self {
            Probe::Uptime => "system uptime and load average compared with the CPU count",
            Probe::DiskUsage => {
                "space used on each mounted filesystem; warns above 90 %, problem above 97 %"
            }
        }
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A probe name that is not in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown probe {0:?} (known: uptime, disk-usage)")]
pub struct UnknownProbe(pub String);

impl FromStr for Probe {
    type Err = UnknownProbe;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Probe::ALL
            .into_iter()
            .find(|p| p.name() == s.trim())
            .ok_or_else(|| UnknownProbe(s.to_string()))
    }
}

/// How a probe judged what it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Verdict {
    /// Nothing wrong found.
    Ok,
    /// Worth a look.
    Warning,
    /// Something is wrong.
    Problem,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Ok => "ok",
            Verdict::Warning => "warning",
            Verdict::Problem => "problem",
        })
    }
}

/// A probe's result: facts plus a verdict with its reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DiagReport {
    /// Which probe ran.
    pub probe: Probe,
    /// The judgement.
    pub verdict: Verdict,
    /// Why, in one line for the technician.
    pub reason: String,
    /// What was measured.
    pub facts: DiagFacts,
}

/// The measured facts, per probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum DiagFacts {
    /// Facts from [`Probe::Uptime`].
    Uptime {
        /// Seconds since boot.
        uptime_secs: u64,
        /// Load averages over 1, 5 and 15 minutes.
        #[cfg_attr(test, proptest(strategy = "proptest::array::uniform3(0.0..512.0f64)"))]
        load: [f64; 3],
        /// Logical CPUs, to read the load against.
        logical_cpus: u32,
    },
    /// Facts from [`Probe::DiskUsage`].
    DiskUsage {
        /// One entry per mounted filesystem.
        filesystems: Vec<FilesystemUsage>,
    },
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
    /// Free bytes.
    pub available: u64,
    /// Percent used (0–100).
    #[cfg_attr(test, proptest(strategy = "0.0..=100.0f64"))]
    pub used_percent: f64,
}
