//! Writing files only their owner may read — the relay's private key, a device's secret, its report
//! queue. Every crate writes them through [`write`], and this is the only file with the platform
//! `#[cfg]` for it.
//!
//! The bytes go to a fresh temporary sibling, created owner-only, flushed with `sync_all`, then
//! renamed over the target (and, on Unix, the directory is synced), so a crash leaves the old file or
//! the new one, never half of one, and an existing file with wider permissions is replaced, not
//! reused. Off Unix there are no mode bits to set: the file inherits its directory's ACL, which for
//! the default per-user data directories admits only that user (setting an explicit ACL would need a
//! Windows API dependency; see SECURITY.md).

use std::io::Write;
use std::path::{Path, PathBuf};

/// The temporary sibling of `path` that [`write`] renames into place.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Replaces `path` with `bytes`, owner-only (0600 on Unix), durably and atomically.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(path);
    // A leftover from a crash may have other permissions; `create_new` below only makes new files.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let written = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)?;
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename itself is durable only once the directory is.
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_is_owner_only_even_over_wider_files() {
        let dir = std::env::temp_dir().join(format!("tether-private-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret.json");
        std::fs::write(&path, b"old").unwrap();
        std::fs::write(temp_path(&path), b"stale").unwrap();
        #[cfg(unix)]
        for p in [&path, &temp_path(&path)] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        write(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert!(!temp_path(&path).exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
