//! The enrolled-device commands behind `tether-agent enroll | run | status`.

use std::path::PathBuf;
use std::time::Duration;

use tether_net::cli::RelayArgs;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::enroll::{DataDir, EnrollConfig, enroll as do_enroll};
use crate::inventory::Collector;
use crate::report::{RunConfig, RunEvent, run as do_run};
use crate::screen::backend::Backend;

fn dir(d: Option<PathBuf>) -> DataDir {
    DataDir::new(d.unwrap_or_else(DataDir::default_path))
}

/// `tether-agent enroll`.
pub async fn enroll(
    relay: RelayArgs,
    token: String,
    data_dir: Option<PathBuf>,
) -> Result<(), String> {
    let target = relay.target().map_err(|e| e.to_string())?;
    let data_dir = dir(data_dir);
    let hostname = Collector::default().hardware().system.hostname;
    let id = do_enroll(&EnrollConfig {
        relay: target,
        token,
        data_dir: data_dir.clone(),
        hostname,
    })
    .await
    .map_err(|e| e.to_string())?;
    tether_net::outln!(
        "enrolled as {} in {:?}; identity stored in {}",
        id.device_id,
        id.org,
        data_dir.path.display()
    );
    tether_net::outln!("{}", trust_line(&id));
    tether_net::outln!("start reporting with: tether-agent run");
    Ok(())
}

/// `tether-agent run`.
pub async fn run(
    data_dir: Option<PathBuf>,
    interval_secs: u64,
    dpkg_status: Option<PathBuf>,
    desktop: Option<crate::desktop_socket::DesktopConfig>,
) -> Result<(), String> {
    let mut cfg = RunConfig::new(dir(data_dir));
    match &desktop {
        Some(d) => tether_net::outln!(
            "attended sessions without a code: the logged-in user's `tether-agent desktop` \
             connects at {} ({})",
            d.socket.display(),
            match d.user {
                crate::desktop_socket::DesktopUser::Logind =>
                    "the user of the active graphical session".to_string(),
                crate::desktop_socket::DesktopUser::Uid(u) => format!("uid {u} only"),
            }
        ),
        None => tether_net::outln!(
            "attended sessions without a code: off (no --desktop-socket): they are refused"
        ),
    }
    cfg.desktop = desktop;
    cfg.interval = Duration::from_secs(interval_secs.max(1));
    if let Some(p) = dpkg_status {
        cfg.collector.software.dpkg_status = p;
    }
    let id = cfg.data_dir.require_identity().map_err(|e| e.to_string())?;
    // IT's agent config may name the relay cluster's other nodes, verified as the identity's relay.
    let config = crate::policy::AgentConfig::load(crate::policy::DEFAULT_CONFIG.as_ref(), false)
        .map_err(|e| e.to_string())?;
    cfg.fallback = config
        .other_relays
        .iter()
        .flatten()
        .map(|addr| tether_net::RelayTarget {
            addr: addr.clone(),
            ..id.target()
        })
        .collect();
    tether_net::outln!(
        "reporting as {} to {} every {} s; Ctrl-C stops",
        id.device_id,
        id.relay,
        interval_secs
    );
    let (_trigger_tx, trigger) = mpsc::channel(1);
    let (events_tx, mut events) = mpsc::channel(16);
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let printer = async {
        while let Some(e) = events.recv().await {
            match e {
                RunEvent::Connected { last_seq } => tether_net::outln!(
                    "connected; relay has reports up to {}",
                    last_seq.map_or("none".into(), |s| s.to_string())
                ),
                RunEvent::Queued { seq, delta, bytes } => tether_net::outln!(
                    "report {seq} queued ({}, {bytes} bytes)",
                    if delta { "delta" } else { "full" }
                ),
                RunEvent::Acked { seq, duplicate } => tether_net::outln!(
                    "report {seq} acknowledged{}",
                    if duplicate { " (already stored)" } else { "" }
                ),
                RunEvent::Rejected { seq, reason } => {
                    tether_net::outln!("report {seq} refused: {reason}")
                }
                RunEvent::PolicyAdopted { policy } => tether_net::outln!(
                    "IT's policy {} now holds: {}",
                    policy.version,
                    unattended_words(&policy)
                ),
                RunEvent::PolicyRefused { reason } => {
                    tether_net::outln!("a policy from the relay was not taken: {reason}")
                }
                RunEvent::Disconnected { reason, retry_in } => {
                    tether_net::outln!(
                        "disconnected ({reason}); retrying in {:.1} s",
                        retry_in.as_secs_f64()
                    )
                }
            }
        }
    };
    let main = async {
        let r = do_run(cfg, trigger, events_tx, shutdown.clone()).await;
        // Let the Ctrl-C waiter finish too when service mode stops on its own (an error).
        shutdown.cancel();
        r.map_err(|e| e.to_string())
    };
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
        std::future::pending::<()>().await;
    };
    let (r, (), ()) = tokio::join!(main, printer, async {
        tokio::select! { _ = ctrl_c => {}, _ = stop.cancelled() => {} }
    });
    r
}

/// What a policy lets a signed technician do with nobody answering, in words.
fn unattended_words(p: &tether_proto::org::Policy) -> String {
    if p.unattended.is_empty() {
        "every session needs the logged-in user's yes (attended only)".into()
    } else {
        format!(
            "without anyone answering, a technician IT signed may use: {}",
            p.unattended
        )
    }
}

/// What this device trusts for sessions without a code, in one line.
fn trust_line(id: &crate::enroll::Identity) -> String {
    let device = match id.device_secret() {
        Some(k) => format!("device key {}", k.public().fingerprint()),
        None => "no device key (enrolled before device keys: enroll again)".into(),
    };
    match &id.org_key {
        Some(org) => format!(
            "{device}; sessions without a code will be taken only from technicians signed by {:?}'s key {}",
            id.org,
            org.fingerprint()
        ),
        None => format!(
            "{device}; no organisation key pinned (the token carried none): sessions without a code are refused"
        ),
    }
}

/// `tether-agent status`.
pub fn status(data_dir: Option<PathBuf>, json: bool, backend: Backend) -> Result<(), String> {
    let dir = dir(data_dir);
    let id = dir.identity().map_err(|e| e.to_string())?;
    let state = dir.state().map_err(|e| e.to_string())?;
    let queued = dir.queued().map_err(|e| e.to_string())?.len();
    let policy = dir.policy().map_err(|e| e.to_string())?;
    let inv = Collector::default().collect();
    if json {
        let v = serde_json::json!({
            "enrolled": id.is_some(),
            "device_id": id.as_ref().map(|i| i.device_id.clone()),
            "org": id.as_ref().map(|i| i.org.clone()),
            "relay": id.as_ref().map(|i| i.relay.clone()),
            "device_key": id.as_ref().and_then(|i| i.device_secret()).map(|k| k.public().to_string()),
            "org_key": id.as_ref().and_then(|i| i.org_key).map(|k| k.to_string()),
            "policy": policy.as_ref().map(|p| &p.policy),
            "last_acknowledged_report": state.acked_seq,
            "queued_reports": queued,
            "screen_backend": backend.as_str(),
            "reports": inv,
        });
        tether_net::outln!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    match &id {
        Some(id) => {
            tether_net::outln!("enrolled     yes: device {} of {:?}", id.device_id, id.org);
            tether_net::outln!("relay        {}", id.relay);
            tether_net::outln!("trust        {}", trust_line(id));
            tether_net::outln!(
                "policy       {}",
                match &policy {
                    Some(p) => format!(
                        "version {}: {}",
                        p.policy.version,
                        unattended_words(&p.policy)
                    ),
                    None => "none from IT: every session needs the logged-in user's yes".into(),
                }
            );
            tether_net::outln!(
                "reports      last acknowledged: {}; queued: {queued}",
                state.acked_seq.map_or("none".into(), |s| s.to_string())
            );
        }
        None => tether_net::outln!("enrolled     no (run `tether-agent enroll --token ...`)"),
    }
    tether_net::outln!("screen       {} ({})", backend, backend.describe());
    let h = &inv.hardware;
    tether_net::outln!(
        "\nwhat this machine reports (sent only once enrolled, to your organisation's relay):"
    );
    tether_net::outln!(
        "  host {} — {} {} (kernel {})",
        h.system.hostname,
        h.system.os_name,
        h.system.os_version,
        h.system.kernel
    );
    tether_net::outln!(
        "  cpu {} ({} threads), memory {} MiB, {} disk(s), {} network interface(s)",
        h.cpu.model,
        h.cpu.threads,
        h.memory.total >> 20,
        h.disks.len(),
        h.interfaces.len()
    );
    for (src, st) in &inv.software.sources {
        let n = inv
            .software
            .packages
            .iter()
            .filter(|p| p.source == *src)
            .count();
        tether_net::outln!(
            "  {:<8} {}",
            src.name(),
            match st {
                tether_proto::inventory::SourceState::Read => format!("{n} packages"),
                tether_proto::inventory::SourceState::NotPresent =>
                    "not present on this system".into(),
                tether_proto::inventory::SourceState::Failed(e) => format!("failed: {e}"),
            }
        );
    }
    tether_net::outln!(
        "  plus uptime, logged-in users, free memory and disk space, battery charge"
    );
    Ok(())
}
