//! IT's view of enrolled devices: one fleet query per connection, answered by the relay from its
//! store and limited to the technician's org.

use std::fmt::Write;

use tether_net::client;
use tether_net::framed;
use tether_proto::fleet::{
    ChangeRecord, DeviceRecord, DeviceSummary, FleetQuery, FleetReply, SearchHit,
};
use tether_proto::msg::{ConsoleToRelay, Role, close};

use crate::error::ConsoleError;
use crate::render::bytes;
use crate::session::{ConsoleConfig, STEP_TIMEOUT};

/// Most devices an export accepts (a guard against a relay that never says `End`).
pub const MAX_EXPORT_DEVICES: usize = 1_000_000;

/// Sends `query` and returns the relay's replies (several for `Export`, else one).
pub async fn query(
    config: &ConsoleConfig,
    query: FleetQuery,
) -> Result<Vec<FleetReply>, ConsoleError> {
    let export = matches!(query, FleetQuery::Export);
    let relay = client::connect(&config.relay).await?;
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
    .await;
    relay.close(close::NORMAL, "done").await;
    result
}

fn when(t: Option<u64>) -> String {
    t.map_or("-".into(), utc)
}

/// Unix seconds as `YYYY-MM-DD HH:MM` UTC.
pub fn utc(t: u64) -> String {
    let c = tether_proto::time::civil(t as i64);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute
    )
}

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

/// CSV header of [`export_csv`].
pub const CSV_HEADER: &str = "device_id,org,hostname,os,kernel,arch,cpu_model,cpu_threads,memory_bytes,disk_bytes,system_vendor,system_model,system_serial,last_seen_unix,package_source,package_name,package_arch,package_version";

/// One row per (device, package); a device without packages gets one row with empty package fields.
pub fn export_csv(devices: &[DeviceRecord]) -> String {
    let mut s = String::from(CSV_HEADER);
    s.push('\n');
    for d in devices {
        let (head, pkgs) = match &d.inventory {
            Some(inv) => {
                let h = &inv.hardware;
                let disk: u64 = h.disks.iter().map(|d| d.size).sum();
                (
                    vec![
                        d.summary.device_id.clone(),
                        d.summary.org.clone(),
                        h.system.hostname.clone(),
                        format!("{} {}", h.system.os_name, h.system.os_version),
                        h.system.kernel.clone(),
                        h.system.arch.clone(),
                        h.cpu.model.clone(),
                        h.cpu.threads.to_string(),
                        h.memory.total.to_string(),
                        disk.to_string(),
                        h.dmi.system_vendor.to_string(),
                        h.dmi.system_model.to_string(),
                        h.dmi.system_serial.to_string(),
                        d.summary
                            .last_seen_unix
                            .map_or(String::new(), |t| t.to_string()),
                    ],
                    inv.software.packages.as_slice(),
                )
            }
            None => (
                vec![
                    d.summary.device_id.clone(),
                    d.summary.org.clone(),
                    d.summary.hostname.clone(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ],
                &[][..],
            ),
        };
        let head: Vec<String> = head.iter().map(|f| csv_field(f)).collect();
        if pkgs.is_empty() {
            let _ = writeln!(s, "{},,,,", head.join(","));
        }
        for p in pkgs {
            let _ = writeln!(
                s,
                "{},{},{},{},{}",
                head.join(","),
                p.source.name(),
                csv_field(&p.name),
                csv_field(&p.arch),
                csv_field(&p.version)
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
}
