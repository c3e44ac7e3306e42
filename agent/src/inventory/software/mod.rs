//! Installed software, behind one [`SoftwareSource`] trait so Windows (registry) and macOS
//! (application bundles) can follow as further backends.
//!
//! Each backend is one file. A source that this system does not have reports
//! [`SourceError::NotPresent`], which becomes [`SourceState::NotPresent`] in the inventory: its
//! absence is a fact, not an error.

use std::path::{Path, PathBuf};

use tether_proto::inventory::{Package, PackageSource, Software, SourceState, normalise_packages};

mod dpkg;
mod flatpak;
mod rpm;
mod snap;

pub use dpkg::Dpkg;
pub use flatpak::Flatpak;
pub use rpm::Rpm;
pub use snap::Snap;

/// Why a source gave no packages.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// This system does not have this package manager.
    #[error("not present on this system")]
    NotPresent,
    /// It is there but could not be read.
    #[error("{0}")]
    Failed(String),
}

/// One package manager.
pub trait SoftwareSource: std::fmt::Debug + Send + Sync {
    /// Which source this is.
    fn kind(&self) -> PackageSource;
    /// The installed packages.
    fn packages(&self) -> Result<Vec<Package>, SourceError>;
}

/// Which sources to read and where. The defaults are the real locations.
#[derive(Debug, Clone)]
pub struct SoftwareConfig {
    /// dpkg's status database, normally `/var/lib/dpkg/status`.
    pub dpkg_status: PathBuf,
    /// Directories searched for the `rpm`, `flatpak` and `snap` tools; `None` means `$PATH`.
    pub tool_path: Option<Vec<PathBuf>>,
}

impl Default for SoftwareConfig {
    fn default() -> Self {
        SoftwareConfig {
            dpkg_status: dpkg::STATUS.into(),
            tool_path: None,
        }
    }
}

impl SoftwareConfig {
    /// The sources this config describes, in a fixed order.
    pub fn sources(&self) -> Vec<Box<dyn SoftwareSource>> {
        let find = |tool: &str| find_tool(tool, self.tool_path.as_deref());
        vec![
            Box::new(Dpkg::new(self.dpkg_status.clone())),
            Box::new(Rpm::new(find("rpm"))),
            Box::new(Flatpak::new(find("flatpak"))),
            Box::new(Snap::new(find("snap"))),
        ]
    }
}

/// Reads every source; a failing source is recorded and does not stop the others.
pub fn collect(sources: &[Box<dyn SoftwareSource>]) -> Software {
    let mut states = Vec::new();
    let mut packages = Vec::new();
    for s in sources {
        match s.packages() {
            Ok(p) => {
                packages.extend(p);
                states.push((s.kind(), SourceState::Read));
            }
            Err(SourceError::NotPresent) => states.push((s.kind(), SourceState::NotPresent)),
            Err(SourceError::Failed(e)) => {
                tracing::debug!(source = %s.kind(), error = %e, "software source failed");
                states.push((s.kind(), SourceState::Failed(e)));
            }
        }
    }
    normalise_packages(&mut packages);
    Software {
        sources: states,
        packages,
    }
}

/// The first executable file named `tool` in `dirs` (or `$PATH`).
pub fn find_tool(tool: &str, dirs: Option<&[PathBuf]>) -> Option<PathBuf> {
    let from_env: Vec<PathBuf>;
    let dirs = match dirs {
        Some(d) => d,
        None => {
            from_env = std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).collect())
                .unwrap_or_default();
            &from_env
        }
    };
    dirs.iter().map(|d| d.join(tool)).find(|p| p.is_file())
}

/// Runs `tool args` and returns stdout, or a [`SourceError::Failed`] naming the tool.
pub(crate) fn run_tool(tool: &Path, args: &[&str]) -> Result<String, SourceError> {
    let out = std::process::Command::new(tool)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| SourceError::Failed(format!("{}: {e}", tool.display())))?;
    if !out.status.success() {
        return Err(SourceError::Failed(format!(
            "{} exited with {}: {}",
            tool.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
