//! dpkg: parses `/var/lib/dpkg/status` directly (no `dpkg-query` process), keeping packages whose
//! status is `install ok installed`.

use std::path::PathBuf;

use tether_proto::inventory::{Package, PackageSource};

use super::{SoftwareSource, SourceError};

/// The real status database.
pub const STATUS: &str = "/var/lib/dpkg/status";

/// The dpkg source.
#[derive(Debug, Clone)]
pub struct Dpkg {
    status: PathBuf,
}

impl Dpkg {
    /// Reads the status database at `status`.
    pub fn new(status: PathBuf) -> Self {
        Dpkg { status }
    }
}

impl SoftwareSource for Dpkg {
    fn kind(&self) -> PackageSource {
        PackageSource::Dpkg
    }

    fn packages(&self) -> Result<Vec<Package>, SourceError> {
        match std::fs::read_to_string(&self.status) {
            Ok(text) => Ok(parse_status(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SourceError::NotPresent),
            Err(e) => Err(SourceError::Failed(format!(
                "{}: {e}",
                self.status.display()
            ))),
        }
    }
}

/// Parses a dpkg status file: stanzas separated by blank lines, `Field: value` lines, continuation
/// lines starting with a space.
pub fn parse_status(text: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let (mut name, mut version, mut arch, mut status) = (None, None, None, None);
        for line in stanza.lines() {
            if line.starts_with(' ') || line.starts_with('\t') {
                continue;
            }
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k {
                "Package" => name = Some(v),
                "Version" => version = Some(v),
                "Architecture" => arch = Some(v),
                "Status" => status = Some(v),
                _ => {}
            }
        }
        if let (Some(name), Some(version), Some("install ok installed")) = (name, version, status) {
            out.push(Package {
                source: PackageSource::Dpkg,
                name: name.to_string(),
                arch: arch.unwrap_or("").to_string(),
                version: version.to_string(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_installed_stanzas_only() {
        let text = "Package: a\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0-1\nDescription: x\n more\n\nPackage: b\nStatus: deinstall ok config-files\nVersion: 2\n\nPackage: c\nStatus: install ok installed\nArchitecture: all\nVersion: 3:4.5\n";
        let p = parse_status(text);
        let got: Vec<(&str, &str, &str)> = p
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.arch.as_str()))
            .collect();
        assert_eq!(got, vec![("a", "1.0-1", "amd64"), ("c", "3:4.5", "all")]);
    }

    #[test]
    fn missing_database_is_not_present() {
        let d = Dpkg::new("/nonexistent/dpkg/status".into());
        assert!(matches!(d.packages(), Err(SourceError::NotPresent)));
    }
}
