//! The systemd units are valid: `systemd-analyze verify` accepts them with the real binaries in place.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

#[test]
fn systemd_units_verify() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // systemd-analyze insists the ExecStart binary exists; point it at a stand-in executable.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for name in ["tether-relay", "tether-agent"] {
        let exe = bin.join(name);
        std::fs::copy("/bin/true", &exe).unwrap();
        let unit = std::fs::read_to_string(root.join(format!("packaging/systemd/{name}.service")))
            .unwrap();
        assert!(
            unit.contains(&format!("ExecStart=/usr/bin/{name}")),
            "{name}: unexpected ExecStart"
        );
        assert!(
            unit.contains("DynamicUser=yes") || unit.contains(&format!("User={name}\n")),
            "{name}: must not run as root"
        );
        let unit = unit.replace(&format!("/usr/bin/{name}"), exe.to_str().unwrap());
        let path = dir.path().join(format!("{name}.service"));
        std::fs::write(&path, unit).unwrap();
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&path)
            .output();
        let out = out.expect("systemd-analyze is installed (Debian package systemd)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        // systemd-analyze exits 0 for unknown keys and unparsable values ("..., ignoring"); any
        // complaint at all is a defect here.
        assert!(stderr.trim().is_empty(), "{name}: {stderr}");
    }
}
