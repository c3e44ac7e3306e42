//! flatpak: asks the `flatpak` tool, when this system has it.

use std::path::PathBuf;

use tether_proto::inventory::{Package, PackageSource};

use super::{SoftwareSource, SourceError, run_tool};

/// The flatpak source.
#[derive(Debug, Clone)]
pub struct Flatpak {
    tool: Option<PathBuf>,
}

impl Flatpak {
    /// Uses the `flatpak` binary at `tool`; `None` means this system has none.
    pub fn new(tool: Option<PathBuf>) -> Self {
        Flatpak { tool }
    }
}

impl SoftwareSource for Flatpak {
    fn kind(&self) -> PackageSource {
        PackageSource::Flatpak
    }

    fn packages(&self) -> Result<Vec<Package>, SourceError> {
        let tool = self.tool.as_ref().ok_or(SourceError::NotPresent)?;
        let out = run_tool(tool, &["list", "--columns=application,version,arch,branch"])?;
        Ok(parse(&out))
    }
}

/// Parses tab-separated `application version arch branch` lines. Apps without a version use their
/// branch, so a version is never empty.
pub fn parse(out: &str) -> Vec<Package> {
    out.lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').map(str::trim).collect();
            let name = *cols.first().filter(|n| !n.is_empty())?;
            let version = cols.get(1).copied().unwrap_or("");
            let branch = cols.get(3).copied().unwrap_or("");
            Some(Package {
                source: PackageSource::Flatpak,
                name: name.to_string(),
                arch: cols.get(2).copied().unwrap_or("").to_string(),
                version: if version.is_empty() { branch } else { version }.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_columns() {
        let p = parse("org.gimp.GIMP\t2.10.36\tx86_64\tstable\norg.gnome.Platform\t\tx86_64\t45\n");
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].version, "2.10.36");
        assert_eq!(p[1].version, "45");
        assert!(matches!(
            Flatpak::new(None).packages(),
            Err(SourceError::NotPresent)
        ));
    }
}
