//! snap: asks the `snap` tool, when this system has it.

use std::path::PathBuf;

use tether_proto::inventory::{Package, PackageSource};

use super::{SoftwareSource, SourceError, run_tool};

/// The snap source.
#[derive(Debug, Clone)]
pub struct Snap {
    tool: Option<PathBuf>,
}

impl Snap {
    /// Uses the `snap` binary at `tool`; `None` means this system has none.
    pub fn new(tool: Option<PathBuf>) -> Self {
        Snap { tool }
    }
}

impl SoftwareSource for Snap {
    fn kind(&self) -> PackageSource {
        PackageSource::Snap
    }

    fn packages(&self) -> Result<Vec<Package>, SourceError> {
        let tool = self.tool.as_ref().ok_or(SourceError::NotPresent)?;
        let out = run_tool(tool, &["list", "--unicode=never", "--color=never"])?;
        Ok(parse(&out))
    }
}

/// Parses `snap list`: a header line, then `Name Version Rev Tracking Publisher Notes` columns.
pub fn parse(out: &str) -> Vec<Package> {
    out.lines()
        .skip(1)
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (name, version) = (it.next()?, it.next()?);
            Some(Package {
                source: PackageSource::Snap,
                name: name.to_string(),
                arch: String::new(),
                version: version.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_table() {
        let p = parse(
            "Name  Version   Rev    Tracking  Publisher  Notes\ncore22  20240111  1122  latest/stable  canonical**  base\n",
        );
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].name.as_str(), p[0].version.as_str()),
            ("core22", "20240111")
        );
        assert!(matches!(
            Snap::new(None).packages(),
            Err(SourceError::NotPresent)
        ));
    }
}
