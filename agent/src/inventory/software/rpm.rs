//! rpm: asks the `rpm` tool, when this system has it.

use std::path::PathBuf;

use tether_proto::inventory::{Package, PackageSource};

use super::{SoftwareSource, SourceError, run_tool};

/// The rpm source.
#[derive(Debug, Clone)]
pub struct Rpm {
    tool: Option<PathBuf>,
}

impl Rpm {
    /// Uses the `rpm` binary at `tool`; `None` means this system has none.
    pub fn new(tool: Option<PathBuf>) -> Self {
        Rpm { tool }
    }
}

impl SoftwareSource for Rpm {
    fn kind(&self) -> PackageSource {
        PackageSource::Rpm
    }

    fn packages(&self) -> Result<Vec<Package>, SourceError> {
        let tool = self.tool.as_ref().ok_or(SourceError::NotPresent)?;
        let out = run_tool(
            tool,
            &[
                "-qa",
                "--qf",
                "%{NAME}\\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\\t%{ARCH}\\n",
            ],
        )?;
        Ok(parse(&out))
    }
}

/// Parses `name\tepoch:version-release\tarch` lines; a zero epoch is dropped, as rpm prints it.
pub fn parse(out: &str) -> Vec<Package> {
    out.lines()
        .filter_map(|l| {
            let mut it = l.split('\t');
            let (name, version, arch) = (it.next()?, it.next()?, it.next()?);
            Some(Package {
                source: PackageSource::Rpm,
                name: name.to_string(),
                arch: if arch == "(none)" { "" } else { arch }.to_string(),
                version: version.strip_prefix("0:").unwrap_or(version).to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_query_format() {
        let p =
            parse("bash\t0:5.2-1.fc39\tx86_64\ngpg-pubkey\t0:1-2\t(none)\nfoo\t2:1.0-1\tnoarch\n");
        assert_eq!(p.len(), 3);
        assert_eq!(
            (p[0].version.as_str(), p[0].arch.as_str()),
            ("5.2-1.fc39", "x86_64")
        );
        assert_eq!(p[1].arch, "");
        assert_eq!(p[2].version, "2:1.0-1");
        assert!(matches!(
            Rpm::new(None).packages(),
            Err(SourceError::NotPresent)
        ));
    }
}
