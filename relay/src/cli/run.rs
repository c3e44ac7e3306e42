//! Running one `tether-relay` command: what each prints, and the error it ends with.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;

use super::CliError;
use super::args::{
    AuditCommand, Cli, ClusterCommand, Command, DevicesCommand, EnrollTokenCommand, OrgKeyCommand,
    PolicyCommand, TechnicianCommand,
};
use crate::backend::Backend;
use crate::config::{DEFAULT_PORT, default_data_dir};
use crate::deploy::{self, DEFAULT_RELAY_CONFIG, DeployError, RelayFile};
use crate::{Relay, RelayConfig, admin, fleet_admin};
use tether_proto::msg::Tier;

/// A Unix time as "2026-12-08 09:40".
fn utc(t: u64) -> String {
    let c = tether_proto::time::civil(i64::try_from(t).unwrap_or(i64::MAX));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute
    )
}

/// Runs one command.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    command(cli)
        .await
        .map_err(|e| match e.downcast::<AuditBroken>() {
            Ok(AuditBroken(text)) => CliError::AuditBroken(text),
            Err(e) => CliError::Failed(e),
        })
}

/// `audit verify` found the chain broken: said as is, not as an `error:`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct AuditBroken(String);

async fn command(cli: Cli) -> anyhow::Result<()> {
    let file = match &cli.config {
        Some(path) => RelayFile::load(path, true)?,
        None => RelayFile::load(DEFAULT_RELAY_CONFIG.as_ref(), false)?,
    };
    let data_dir = cli
        .data_dir
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(default_data_dir);
    let database = cli.database.or_else(|| file.database.clone());
    // Opened only by the commands that store something: SQLite needs nothing yet, and a database
    // is connected and migrated here (a wrong URL or password stops the command).
    let backend =
        || -> anyhow::Result<Backend> { Ok(Backend::open(database.as_deref(), &data_dir)?) };
    // The commands that create something make the data directory first (as they always did).
    let create_dir = || {
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))
    };
    let command = match cli.command {
        Some(c) => c,
        None => Cli::parse_from(["tether-relay", "serve"])
            .command
            .context("default command")?,
    };
    match command {
        Command::Serve {
            listen,
            max_connections,
            claims_per_minute,
            claims_per_address_per_minute,
            metrics,
            node_dir,
            cluster_ca,
            public_addr,
        } => {
            let listen = listen
                .or(file.listen)
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)));
            let mut config = RelayConfig::new(listen, data_dir.clone());
            if let Some(n) = max_connections.or(file.max_connections) {
                config.limits.max_connections = n;
            }
            if let Some(n) = claims_per_minute.or(file.claims_per_minute) {
                config.limits.claims_per_technician_per_minute = n;
            }
            if let Some(n) = claims_per_address_per_minute.or(file.claims_per_address_per_minute) {
                config.limits.claims_per_source_per_minute = n;
            }
            config.metrics = metrics.or(file.metrics);
            config.database = database.clone();
            config.node_dir = node_dir.or(file.node_dir);
            config.cluster_ca = cluster_ca.or(file.cluster_ca);
            config.public_addr = public_addr;
            serve(config).await
        }
        Command::Cluster { command } => cluster(command),
        Command::OrgKey { command } => org_key(command),
        Command::Policy { command } => {
            create_dir()?;
            policy(command, &backend()?)
        }
        Command::AgentConfig { target, out } => {
            let address = target
                .address
                .or(file.public_address)
                .ok_or(DeployError::NoAddress)?;
            let text = deploy::agent_config(&data_dir, &target.org, &address)?;
            match out {
                Some(path) => {
                    std::fs::write(&path, text)
                        .with_context(|| format!("writing {}", path.display()))?;
                    tether_net::outln!("wrote {} for agents of {:?}", path.display(), target.org);
                }
                None => tether_net::out!("{text}"),
            }
            Ok(())
        }
        Command::AgentPackage {
            target,
            agent_deb,
            out,
        } => {
            let address = target
                .address
                .or(file.public_address)
                .ok_or(DeployError::NoAddress)?;
            let text = deploy::agent_config(&data_dir, &target.org, &address)?;
            let deb = deploy::agent_package(&agent_deb, &text, &target.org, &out)?;
            tether_net::outln!("{}", deb.display());
            eprintln!(
                "agent package for {:?}: installs /etc/tether/agent.toml for relay {address}; \
                 hand it to your users (dpkg -i, or your software distribution)",
                target.org
            );
            Ok(())
        }
        Command::Status { metrics } => status(metrics, &data_dir, database.as_deref()).await,
        Command::Technician { command } => {
            if matches!(command, TechnicianCommand::Add { .. }) {
                create_dir()?;
            }
            technician(&backend()?, command)
        }
        Command::EnrollToken {
            command:
                EnrollTokenCommand::Create {
                    org,
                    expires,
                    uses,
                    org_key,
                },
        } => {
            create_dir()?;
            let backend = backend()?;
            let store = backend.store()?;
            let now = crate::clock::now_unix();
            let t = store.create_token(&org, expires.as_secs(), uses, now)?;
            // A mistyped organisation would enroll devices nobody can see: say so (it may be
            // on purpose, before the organisation's technicians are added).
            let technicians = backend.directory().active()?;
            if !technicians.iter().any(|t| t.org == org) {
                let mut orgs: Vec<&str> = technicians.iter().map(|t| t.org.as_str()).collect();
                orgs.sort_unstable();
                orgs.dedup();
                eprintln!(
                    "warning: no technician belongs to {org:?}, so nobody will see these devices yet; \
                     check the spelling{}",
                    if orgs.is_empty() {
                        String::new()
                    } else {
                        format!(" (organisations with technicians: {})", orgs.join(", "))
                    }
                );
            }
            tether_net::outln!(
                "enrollment token for {org:?}: {}, expires in {} ({} UTC).",
                if t.uses == 1 {
                    "1 use".to_string()
                } else {
                    format!("{} uses", t.uses)
                },
                fleet_admin::duration_words(expires.as_secs()),
                utc(t.expires_unix)
            );
            match &org_key {
                Some(k) => tether_net::outln!(
                    "devices will pin the organisation key {} and take sessions without a code only from technicians it signed.",
                    k.fingerprint()
                ),
                None => tether_net::outln!(
                    "no --org-key: devices enrolled with this token report inventory but refuse sessions without a code."
                ),
            }
            tether_net::outln!("token (shown only once):");
            let token = tether_proto::fleet::EnrollToken {
                token: t.token,
                org_key,
            };
            tether_net::outln!("{token}");
            Ok(())
        }
        Command::EnrollToken {
            command: EnrollTokenCommand::List,
        } => {
            let tokens = fleet_admin::list_tokens_in(&backend()?)?;
            if tokens.is_empty() {
                tether_net::outln!("no enrollment tokens");
            }
            let now = crate::clock::now_unix();
            for t in tokens {
                let state = if t.uses_left == 0 {
                    "used up".to_string()
                } else if t.expires_unix <= now {
                    format!("expired {} UTC", utc(t.expires_unix))
                } else {
                    format!(
                        "{} left, expires in {} ({} UTC)",
                        if t.uses_left == 1 {
                            "1 use".to_string()
                        } else {
                            format!("{} uses", t.uses_left)
                        },
                        fleet_admin::duration_words(t.expires_unix - now),
                        utc(t.expires_unix)
                    )
                };
                tether_net::outln!(
                    "{}  {:<20} created {} UTC; {state}",
                    t.id,
                    t.org,
                    utc(t.created_unix)
                );
            }
            Ok(())
        }
        Command::EnrollToken {
            command: EnrollTokenCommand::Revoke { id },
        } => {
            let t = fleet_admin::revoke_token_in(&backend()?, &id)?;
            tether_net::outln!(
                "enrollment token {} for {:?} revoked; no device can enroll with it any more.",
                t.id,
                t.org
            );
            Ok(())
        }
        Command::Devices {
            command: DevicesCommand::List { org },
        } => {
            let devices = fleet_admin::list_devices_in(&backend()?, org.as_deref())?;
            if devices.is_empty() {
                tether_net::outln!("no enrolled devices");
            }
            for d in devices {
                tether_net::outln!(
                    "{}  {:<20} {:<24} last seen {}",
                    d.id,
                    d.org,
                    d.hostname,
                    d.last_seen_unix
                        .map_or("never".to_string(), |t| format!("{} UTC", utc(t)))
                );
            }
            Ok(())
        }
        Command::Devices {
            command: DevicesCommand::Remove { device, org },
        } => {
            let d = fleet_admin::remove_device_in(&backend()?, &org, &device)?;
            tether_net::outln!(
                "device {} ({}) of {:?} removed with its history; it can no longer report.",
                d.id,
                d.hostname,
                d.org
            );
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => match admin::verify_audit_in(&backend()?) {
            Ok(v) => {
                tether_net::outln!("audit log intact: {} records", v.records);
                for r in &v.repairs {
                    tether_net::outln!(
                        "repaired: record {} notes {} bytes of a torn record (an interrupted write) cut",
                        r.seq,
                        r.cut_bytes
                    );
                }
                Ok(())
            }
            Err(e) => Err(AuditBroken(e.to_string()).into()),
        },
        Command::Audit {
            command:
                AuditCommand::Show {
                    since,
                    technician,
                    json,
                },
        } => {
            let since = since.map(|s| admin::parse_duration(&s)).transpose()?;
            let backend = backend()?;
            for r in admin::audit_records_in(&backend, &admin::AuditFilter { since, technician })? {
                tether_net::outln!(
                    "{}",
                    if json {
                        r.to_string()
                    } else {
                        admin::render_record(&r)
                    }
                );
            }
            Ok(())
        }
    }
}

fn technician(backend: &Backend, command: TechnicianCommand) -> anyhow::Result<()> {
    match command {
        TechnicianCommand::Add {
            name,
            org,
            role,
            expires,
            tier,
        } => {
            let valid_for = expires.map(|e| admin::parse_duration(&e)).transpose()?;
            let token = admin::add_technician_in(backend, &name, &org, role, Tier::L1, valid_for)?;
            if tier != Tier::L1 {
                admin::set_technician_tier_in(backend, &name, &org, tier)?;
            }
            tether_net::outln!(
                "technician {name:?} of {org:?} added with role {role}, tier {tier}."
            );
            tether_net::outln!(
                "token (shown only once; give it to the technician as TETHER_TOKEN):"
            );
            tether_net::outln!("{token}");
        }
        TechnicianCommand::SetTier { name, org, tier } => {
            admin::set_technician_tier_in(backend, &name, &org, tier)?;
            tether_net::outln!("technician {name:?} of {org:?} is now {tier}.");
        }
        TechnicianCommand::Revoke { name, org } => {
            admin::revoke_technician_in(backend, &name, &org)?;
            tether_net::outln!(
                "technician {name:?} of {org:?} revoked; their token no longer works."
            );
        }
        TechnicianCommand::List => {
            for t in backend.technicians()? {
                tether_net::outln!(
                    "{:<24} {:<24} {:<11} {:<3} {}",
                    t.name,
                    t.org,
                    t.role.name(),
                    t.tier,
                    t.status
                );
            }
        }
    }
    Ok(())
}
async fn serve(config: RelayConfig) -> anyhow::Result<()> {
    let cluster_ca = config.cluster_ca.clone();
    let relay = Relay::spawn(config).await.context("starting the relay")?;
    tether_net::outln!(
        "tether-relay listening on {} (UDP/QUIC)",
        relay.local_addr()
    );
    tether_net::outln!("certificate SHA-256: {}", relay.fingerprint());
    tether_net::outln!("data directory:      {}", relay.data_dir().display());
    tether_net::outln!("audit log:           {}", relay.audit_path().display());
    if let Some(m) = relay.metrics_addr() {
        tether_net::outln!("metrics:             http://{m}/metrics");
    }
    if let Some(node) = relay.node() {
        tether_net::outln!(
            "cluster node:        {} (consoles sent to {})",
            node.node,
            node.addr
        );
    }
    tether_net::outln!();
    match &cluster_ca {
        Some(ca) => {
            tether_net::outln!("Agents and consoles trust every node of the cluster with:");
            tether_net::outln!("  export TETHER_RELAY_CA_FILE={}", ca.display());
        }
        None => {
            tether_net::outln!("Agents and consoles pin the certificate with:");
            tether_net::outln!("  export TETHER_RELAY_CERT_SHA256={}", relay.fingerprint());
        }
    }
    tether_net::outln!("Register a technician with: tether-relay technician add NAME --org ORG");
    tether_net::outln!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    tether_net::outln!("stopping: telling connected peers and draining...");
    relay.shutdown().await;
    tether_net::outln!("stopped.");
    Ok(())
}

async fn status(
    metrics: Option<SocketAddr>,
    data_dir: &std::path::Path,
    database: Option<&str>,
) -> anyhow::Result<()> {
    // A cluster's status is first its database's: which nodes hold codes, and whether it answers.
    if let Some(url) = database
        && !cluster_status(url)
    {
        anyhow::bail!("the cluster's database is unavailable (see above)");
    }
    let addr = match metrics {
        Some(a) => a,
        None => {
            let file = data_dir.join(crate::metrics::ADDR_FILE);
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                // The cluster's part was shown; this node's metrics are simply not recorded here.
                Err(_) if database.is_some() => {
                    tether_net::outln!(
                        "(no metrics address recorded in {}: pass --metrics ADDR for a node's \
                         own figures)",
                        data_dir.display()
                    );
                    return Ok(());
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "no running relay with metrics recorded in {}; start it with \
                             `tether-relay serve --metrics 127.0.0.1:9464`, or pass --metrics ADDR",
                            data_dir.display()
                        )
                    });
                }
            };
            text.trim()
                .parse()
                .with_context(|| format!("{} holds no address", file.display()))?
        }
    };
    let samples = crate::metrics::scrape(addr).await?;
    tether_net::outln!("tether-relay at http://{addr}/metrics");
    tether_net::out!("{}", crate::metrics::summary(&samples));
    Ok(())
}

/// Prints the cluster as its database sees it: reachable or why not, and each node holding codes.
/// `false` when the database did not answer.
fn cluster_status(url: &str) -> bool {
    let pg = match crate::pg::Pg::open(url) {
        Ok(pg) => pg,
        Err(e) => {
            tether_net::outln!("database: UNAVAILABLE: {e}");
            return false;
        }
    };
    match crate::pg::slots::nodes(&pg, crate::clock::now_unix()) {
        Ok(nodes) => {
            tether_net::outln!(
                "database: {} reachable (schema {}); {} node(s) holding codes",
                pg.target(),
                crate::pg::SCHEMA_VERSION,
                nodes.len()
            );
            for n in nodes {
                tether_net::outln!(
                    "  node {} at {}: {} open code(s)",
                    n.node,
                    n.addr,
                    n.open_codes
                );
            }
            true
        }
        Err(e) => {
            tether_net::outln!("database: UNAVAILABLE: {e}");
            false
        }
    }
}

/// `cluster`: nothing here touches the data directory or the database.
fn cluster(command: ClusterCommand) -> anyhow::Result<()> {
    use crate::cluster;
    match command {
        ClusterCommand::Init { dir } => {
            let ca = cluster::init(&dir)?;
            tether_net::outln!("cluster CA written to {}", dir.display());
            tether_net::outln!("CA certificate SHA-256: {}", ca.fingerprint);
            tether_net::outln!(
                "Agents and consoles trust every node with: TETHER_RELAY_CA_FILE={}",
                ca.cert.display()
            );
            tether_net::outln!(
                "Keep {} on your own machine; add nodes with `tether-relay cluster join`.",
                dir.join(cluster::CA_KEY).display()
            );
        }
        ClusterCommand::Join {
            ca_dir,
            name,
            addr,
            out,
        } => {
            let node = cluster::join(&ca_dir, &name, &addr, &out)?;
            tether_net::outln!(
                "node {:?} at {} written to {}",
                node.file.name,
                node.file.addr,
                out.display()
            );
            tether_net::outln!("certificate SHA-256: {}", node.identity.fingerprint());
            tether_net::outln!(
                "Serve it with: tether-relay serve --node-dir {} --cluster-ca {} --database …",
                out.display(),
                out.join(cluster::CA_CERT).display()
            );
        }
    }
    Ok(())
}

/// What a policy allows, in words.
fn policy_words(p: &tether_proto::org::Policy) -> String {
    let revoked = match p.revoked.len() {
        0 => String::new(),
        1 => "; 1 technician key revoked".to_string(),
        n => format!("; {n} technician keys revoked"),
    };
    format!(
        "policy {} for {:?}: unattended {}{revoked}",
        p.version,
        p.org,
        if p.unattended.is_empty() {
            "nothing (attended only)".to_string()
        } else {
            p.unattended.to_string()
        }
    )
}

/// `policy set | show`.
fn policy(command: PolicyCommand, backend: &crate::backend::Backend) -> anyhow::Result<()> {
    let store = backend.store()?;
    match command {
        PolicyCommand::Set { org, file } => {
            let text =
                std::fs::read(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let signed: tether_proto::org::SignedPolicy =
                serde_json::from_slice(&text).map_err(|e| {
                    anyhow::anyhow!(
                        "{} is not a policy from `org-key policy`: {e}",
                        file.display()
                    )
                })?;
            store.set_policy(&org, &signed)?;
            backend.append_audit(&crate::audit::AuditEvent::PolicySet {
                org: org.clone(),
                version: signed.policy.version,
                unattended: signed.policy.unattended.to_string(),
            })?;
            tether_net::outln!(
                "{}; devices take it at their next connection, if its signature is their org key's",
                policy_words(&signed.policy)
            );
        }
        PolicyCommand::Show { org } => match store.policy(&org)? {
            Some(p) => tether_net::outln!("{}", policy_words(&p.policy)),
            None => tether_net::outln!("no policy for {org:?}: its devices are attended only"),
        },
    }
    Ok(())
}

/// `org-key`: nothing here touches the data directory or the database.
fn org_key(command: OrgKeyCommand) -> anyhow::Result<()> {
    use crate::org_key;
    match command {
        OrgKeyCommand::Create { org, out } => {
            let key = org_key::create(&org, &out)?;
            tether_net::outln!(
                "org key for {:?} written to {} (readable only by you).",
                key.org,
                out.display()
            );
            tether_net::outln!("public key: {}", key.public());
            tether_net::outln!("fingerprint: {}", key.public().fingerprint());
            tether_net::outln!(
                "Keep the file on your own machine, never on the relay: devices will trust what it signs."
            );
        }
        OrgKeyCommand::Show { key } => {
            let key = org_key::load(&key)?;
            tether_net::outln!("organisation: {}", key.org);
            tether_net::outln!("public key: {}", key.public());
            tether_net::outln!("fingerprint: {}", key.public().fingerprint());
        }
        OrgKeyCommand::Certify {
            key,
            name,
            technician_key,
            days,
            out,
        } => {
            let key = org_key::load(&key)?;
            let now = tether_net::clock::now_unix();
            let cert = org_key::certify(&key, &name, technician_key, days, now, &out)?;
            tether_net::outln!(
                "certified {:?} of {:?} until {} UTC: {}",
                cert.cert.name,
                cert.cert.org,
                utc(cert.cert.not_after_unix),
                out.display()
            );
        }
        OrgKeyCommand::Policy {
            key,
            unattended,
            version,
            revoked,
            out,
        } => {
            let scopes: tether_proto::ScopeSet = if unattended.trim().is_empty() {
                tether_proto::ScopeSet::default()
            } else {
                unattended
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--unattended: {e}"))?
            };
            let key = org_key::load(&key)?;
            let signed = org_key::sign_policy(&key, scopes, version, revoked, &out)?;
            tether_net::outln!("{}: {}", policy_words(&signed.policy), out.display());
        }
    }
    Ok(())
}
