//! IT's view of enrolled devices: one fleet query per connection, answered by the relay from its
//! store and limited to the technician's org.

use std::fmt::Write;
use tracing::Instrument;

use tether_net::client;
use tether_net::framed;
use tether_proto::fleet::{
    ChangeRecord, DeviceRecord, DeviceSummary, FleetQuery, FleetReply, SearchHit,
};
use tether_proto::msg::{ConsoleToRelay, Role, close};

use crate::error::ConsoleError;
use crate::session::{ConsoleConfig, STEP_TIMEOUT};
use crate::units::bytes;

/// Most devices an export accepts (a guard against a relay that never says `End`).
pub const MAX_EXPORT_DEVICES: usize = 1_000_000;

/// Sends `query` and returns the relay's replies (several for `Export`, else one).
pub async fn query(
    config: &ConsoleConfig,
    query: FleetQuery,
) -> Result<Vec<FleetReply>, ConsoleError> {
    let export = matches!(query, FleetQuery::Export);
    let span = crate::session::connection_span(config, "fleet");
    let relay = client::connect(&config.relay)
        .instrument(span.clone())
        .await?;
    let result = async {
        let (mut send, mut recv) = client::open_control(&relay.conn, Role::Console).await?;
        framed::write_msg(
            &mut send,
            &ConsoleToRelay::Fleet {
                token: config.token.clone(),
                query,
            },
        )
        .await?;
        let mut out = Vec::new();
        loop {
            let r = tokio::time::timeout(STEP_TIMEOUT, framed::read_msg::<FleetReply>(&mut recv))
                .await
                .map_err(|_| ConsoleError::Protocol("the relay did not answer in time".into()))??;
            match r {
                FleetReply::Error(e) => return Err(ConsoleError::Fleet(e)),
                FleetReply::End => break,
                r if export && out.len() < MAX_EXPORT_DEVICES => out.push(r),
                r => {
                    out.push(r);
                    break;
                }
            }
        }
        Ok(out)
    }
    .instrument(span)
    .await;
    relay.close(close::NORMAL, "done").await;
    result
}

fn when(t: Option<u64>) -> String {
    t.map_or("-".into(), utc)
}

pub use crate::units::utc;

/// The device list as a table.
pub fn devices_table(d: &[DeviceSummary]) -> String {
    let mut s = format!(
        "{:<21} {:<20} {:<28} {:>8} {:>6} {:<16} {:<16}\n",
        "DEVICE", "HOST", "OS", "PACKAGES", "SEQ", "FIRST SEEN", "LAST SEEN"
    );
    for d in d {
        let _ = writeln!(
            s,
            "{:<21} {:<20} {:<28} {:>8} {:>6} {:<16} {:<16}",
            d.device_id,
            d.hostname,
            d.os,
            d.packages,
            d.last_seq.map_or("-".into(), |s| s.to_string()),
            when(d.first_seen_unix),
            when(d.last_seen_unix)
        );
    }
    s
}

/// One device: summary, then the full inventory.
pub fn device_text(d: &DeviceRecord) -> String {
    let mut s = devices_table(std::slice::from_ref(&d.summary));
    let _ = writeln!(
        s,
        "\ndevice key: {}",
        d.summary.device_key.map_or(
            "none (enrolled before device keys: no session without a code)".into(),
            |k| k.fingerprint()
        )
    );
    match &d.inventory {
        Some(inv) => {
            s.push('\n');
            s.push_str(&crate::render::inventory(inv));
        }
        None => s.push_str("\n(no inventory reported yet)\n"),
    }
    s
}

/// A history as a table.
pub fn history_table(h: &[ChangeRecord]) -> String {
    let mut s = format!(
        "{:>6} {:<16} {:<12} {:<40} {:<20} {:<20}\n",
        "SEQ", "AT", "CHANGE", "ITEM", "OLD", "NEW"
    );
    for c in h {
        let _ = writeln!(
            s,
            "{:>6} {:<16} {:<12} {:<40} {:<20} {:<20}",
            c.seq,
            utc(c.at_unix),
            c.kind.name(),
            c.item,
            c.old.as_deref().unwrap_or("-"),
            c.new.as_deref().unwrap_or("-")
        );
    }
    s
}

/// Search hits as a table.
pub fn hits_table(h: &[SearchHit]) -> String {
    let mut s = format!(
        "{:<21} {:<20} {:<8} {:<30} {:<8} {}\n",
        "DEVICE", "HOST", "SOURCE", "PACKAGE", "ARCH", "VERSION"
    );
    for x in h {
        let _ = writeln!(
            s,
            "{:<21} {:<20} {:<8} {:<30} {:<8} {}",
            x.device_id,
            x.hostname,
            x.package.source.name(),
            x.package.name,
            x.package.arch,
            x.package.version
        );
    }
    s
}

fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

/// Header of [`devices_csv`]: one row per device, as IT would put it in a spreadsheet.
pub const DEVICES_CSV_HEADER: &str = "host,os,cpu,ram_gib,disk_total_gib,disk_free_gib,ip_addresses,logged_in_users,last_seen_utc,vendor,model,serial,device_id";

/// Header of [`software_csv`]: one row per installed package.
pub const SOFTWARE_CSV_HEADER: &str = "host,name,version,source,device_id";

/// Bytes as GiB with one decimal, e.g. "15.6".
fn gib(n: u64) -> String {
    format!("{:.1}", n as f64 / (1u64 << 30) as f64)
}

/// The devices sheet: one row per device. Sizes in GiB, times as dates, and an empty cell for
/// anything unknown (a device that never reported, a serial that needs root).
pub fn devices_csv(devices: &[DeviceRecord]) -> String {
    let mut s = String::from(DEVICES_CSV_HEADER);
    s.push('\n');
    for d in devices {
        let last_seen = d.summary.last_seen_unix.map_or(String::new(), utc);
        let row: Vec<String> = match &d.inventory {
            Some(inv) => {
                let h = &inv.hardware;
                // Real file systems only, each device once (bind mounts repeat a device).
                let mut seen = std::collections::BTreeSet::new();
                let (mut total, mut free) = (0u64, 0u64);
                for f in &inv.status.filesystems {
                    if f.device.starts_with("/dev/") && seen.insert(f.device.as_str()) {
                        total += f.total;
                        free += f.available;
                    }
                }
                let (total, free) = if seen.is_empty() {
                    (String::new(), String::new())
                } else {
                    (gib(total), gib(free))
                };
                let ips: Vec<&str> = h
                    .interfaces
                    .iter()
                    .filter(|i| i.name != "lo")
                    .flat_map(|i| i.ipv4.iter().chain(&i.ipv6))
                    .map(|a| a.split('/').next().unwrap_or(a))
                    .filter(|a| !a.starts_with("fe80:") && *a != "::1" && !a.starts_with("127."))
                    .collect();
                let os = format!("{} {}", h.system.os_name, h.system.os_version);
                let fact = |f: &tether_proto::inventory::Fact| f.value().unwrap_or("").to_string();
                vec![
                    h.system.hostname.clone(),
                    os.trim().to_string(),
                    h.cpu.model.clone(),
                    if h.memory.total == 0 {
                        String::new()
                    } else {
                        gib(h.memory.total)
                    },
                    total,
                    free,
                    ips.join(" "),
                    inv.status.users.join(" "),
                    last_seen,
                    fact(&h.dmi.system_vendor),
                    fact(&h.dmi.system_model),
                    fact(&h.dmi.system_serial),
                    d.summary.device_id.clone(),
                ]
            }
            None => {
                let mut row = vec![d.summary.hostname.clone(), d.summary.os.clone()];
                row.resize(8, String::new());
                row.push(last_seen);
                row.resize(12, String::new());
                row.push(d.summary.device_id.clone());
                row
            }
        };
        let row: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
        let _ = writeln!(s, "{}", row.join(","));
    }
    s
}

/// The software sheet: one row per (device, package).
pub fn software_csv(devices: &[DeviceRecord]) -> String {
    let mut s = String::from(SOFTWARE_CSV_HEADER);
    s.push('\n');
    for d in devices {
        let Some(inv) = &d.inventory else { continue };
        let host = csv_field(&inv.hardware.system.hostname);
        let id = csv_field(&d.summary.device_id);
        for p in &inv.software.packages {
            let [name, version, _arch, source] = crate::rows::package(p);
            let _ = writeln!(
                s,
                "{host},{},{},{source},{id}",
                csv_field(name),
                csv_field(version),
            );
        }
    }
    s
}

/// A human size, re-exported for callers that print device summaries.
pub fn size(n: u64) -> String {
    bytes(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13");
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    fn device(inventory: bool) -> DeviceRecord {
        use tether_proto::inventory::*;
        let fs = |mount: &str, device: &str, total: u64, available: u64| FsUsage {
            mount_point: mount.into(),
            device: device.into(),
            filesystem: "ext4".into(),
            total,
            available,
        };
        const GIB: u64 = 1 << 30;
        let mut inv = fixture::inventory(vec![
            fixture::package("bash", "5.2-1"),
            fixture::package("libc6", "5.2-1"),
        ]);
        let (h, st) = (&mut inv.hardware, &mut inv.status);
        h.system = SystemFacts {
            hostname: "pc-7".into(),
            os_name: "Debian GNU/Linux".into(),
            os_version: "12 (bookworm)".into(),
            kernel: "6.1".into(),
            arch: "x86_64".into(),
        };
        h.cpu.model = "Intel Core i5, 4 cores".into();
        h.cpu.vendor = "GenuineIntel".into();
        (h.cpu.cores, h.cpu.threads) = (4, 8);
        h.memory.total = 16 * GIB;
        h.interfaces = vec![
            fixture::interface("lo", &["127.0.0.1/8"], &["::1/128"]),
            fixture::interface("eth0", &["10.0.0.7/24"], &["fe80::1/64"]),
        ];
        h.dmi.system_vendor = Fact::Value("Lenovo".into());
        st.users = vec!["ada".into()];
        st.filesystems = vec![
            fs("/", "/dev/vda1", 100 * GIB, 40 * GIB),
            // A bind mount of the same device counts once; tmpfs not at all.
            fs("/run/netns", "/dev/vda1", 100 * GIB, 40 * GIB),
            fs("/home", "/dev/vdb1", 50 * GIB, 10 * GIB),
            fs("/run", "tmpfs", GIB, GIB),
        ];
        DeviceRecord {
            summary: DeviceSummary {
                device_id: "dev_1".into(),
                org: "Acme IT".into(),
                hostname: "pc-7".into(),
                os: "Debian GNU/Linux 12 (bookworm)".into(),
                enrolled_unix: 0,
                first_seen_unix: None,
                last_seen_unix: inventory.then_some(1_700_000_000),
                last_seq: None,
                packages: 2,
                device_key: None,
            },
            inventory: inventory.then_some(inv),
        }
    }

    /// Issue 17 item 21: the export is two sheets IT can use: devices (one row each, GiB, dates,
    /// each file system device once, empty cells for unknown) and software (one row per package).
    #[test]
    fn the_export_is_a_devices_sheet_and_a_software_sheet() {
        let devices = [device(true), device(false)];
        let sheet = devices_csv(&devices);
        let rows: Vec<&str> = sheet.lines().collect();
        assert_eq!(rows.len(), 3, "a header and one row per device: {sheet}");
        assert_eq!(rows[0], DEVICES_CSV_HEADER);
        assert_eq!(
            rows[1],
            "pc-7,Debian GNU/Linux 12 (bookworm),\"Intel Core i5, 4 cores\",16.0,150.0,50.0,\
             10.0.0.7,ada,2023-11-14 22:13,Lenovo,,,dev_1"
        );
        // Never reported: what the enrollment knows, the rest empty (never "-").
        assert_eq!(
            rows[2],
            "pc-7,Debian GNU/Linux 12 (bookworm),,,,,,,,,,,dev_1"
        );
        let software = software_csv(&devices);
        assert_eq!(
            software,
            "host,name,version,source,device_id\n\
             pc-7,bash,5.2-1,dpkg,dev_1\n\
             pc-7,libc6,5.2-1,dpkg,dev_1\n"
        );
    }
}
