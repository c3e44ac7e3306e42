//! Creating files only the owner can read. The only file with the Unix `#[cfg]`.

use std::io::Write;
use std::path::Path;

/// Creates (truncating) `path` with mode 0600 on Unix, and writes `bytes`.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
