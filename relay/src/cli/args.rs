//! The command line: every command and flag of `tether-relay` (clap derive).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tether_proto::msg::{TechnicianRole, Tier};

// `tether-relay`'s arguments (plain comments on the clap types: a doc comment would become help text).
#[derive(Debug, Parser)]
#[command(
    name = "tether-relay",
    version,
    about = "Tether relay: pairs agents and technicians by one-time code"
)]
pub struct Cli {
    /// State directory (certificate, technicians, audit log) [default: the config file's, else
    /// ~/.local/share/tether-relay].
    #[arg(long, global = true, env = "TETHER_RELAY_DATA")]
    pub data_dir: Option<PathBuf>,
    /// The relay's TOML config file (listen, data_dir, public_address, max_connections,
    /// claims_per_minute, metrics); flags win over it [default: /etc/tether-relay/relay.toml if
    /// it exists].
    #[arg(long, global = true, env = "TETHER_RELAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Keep the fleet store, session records, technicians and the audit log in this PostgreSQL
    /// database, shared by every relay node that names it: postgres://USER:PASSWORD@HOST:PORT/DB
    /// [default: the config file's `database`, else SQLite and audit.jsonl in the data directory].
    #[arg(
        long,
        global = true,
        env = "TETHER_RELAY_DATABASE",
        hide_env_values = true
    )]
    pub database: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
// The commands.
pub enum Command {
    /// Run the relay (the default).
    Serve {
        /// UDP address to listen on [default: 0.0.0.0:4433].
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Connections served at once; beyond this new ones are refused with BUSY [default: 10000].
        #[arg(long)]
        max_connections: Option<usize>,
        /// Claims one technician may make per minute [default: 20].
        #[arg(long)]
        claims_per_minute: Option<usize>,
        /// Claims one source address may make per minute, whoever makes them (a bench, or a large
        /// office behind one NAT address, may need more) [default: 60].
        #[arg(long, value_name = "N")]
        claims_per_address_per_minute: Option<usize>,
        /// Serve Prometheus metrics over HTTP on this address (off by default), e.g. 127.0.0.1:9464.
        #[arg(long)]
        metrics: Option<SocketAddr>,
        /// Serve as the cluster node in DIR (from `cluster join --out DIR`): its certificate, key,
        /// name and address [default: the config file's `node_dir`, else a certificate of its own].
        #[arg(long, value_name = "DIR")]
        node_dir: Option<PathBuf>,
        /// The cluster CA certificate (cluster-ca.pem): the node's certificate must be issued by
        /// it, or the relay does not start [default: the config file's `cluster_ca`].
        #[arg(long, value_name = "FILE")]
        cluster_ca: Option<PathBuf>,
        /// With --database: the HOST:PORT consoles are sent to when this node holds their code
        /// [default: the node directory's address, else the listening address].
        #[arg(long, value_name = "HOST:PORT")]
        public_addr: Option<String>,
    },
    /// A relay cluster's trust: its CA, and certificates for its nodes.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Print a summary of a running relay (from its metrics endpoint).
    Status {
        /// The metrics address; by default the one the relay recorded in its data directory.
        #[arg(long)]
        metrics: Option<SocketAddr>,
    },
    /// Manage technicians.
    Technician {
        #[command(subcommand)]
        command: TechnicianCommand,
    },
    /// Check or read the tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Manage enrollment tokens for devices.
    EnrollToken {
        #[command(subcommand)]
        command: EnrollTokenCommand,
    },
    /// Enrolled devices (the fleet store); technicians see them with `tether-console devices`.
    Devices {
        #[command(subcommand)]
        command: DevicesCommand,
    },
    /// The organisation's signing key, kept by IT's admins on their own machine (never on the
    /// relay): create it, sign technician certificates and the unattended policy with it.
    OrgKey {
        #[command(subcommand)]
        command: OrgKeyCommand,
    },
    /// The unattended policy each organisation's devices are given, as IT signed it with
    /// `org-key policy`: the relay stores and forwards it, and devices check the signature.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Print (or write) the agent config file (/etc/tether/agent.toml) for agents of ORG that use
    /// this relay: its address, its certificate fingerprint, and allowed_orgs.
    AgentConfig {
        #[command(flatten)]
        target: AgentTarget,
        /// Write the file here instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Build an agent .deb for ORG with that config inside: users who install it get a window
    /// with a code and nothing to configure.
    AgentPackage {
        #[command(flatten)]
        target: AgentTarget,
        /// The tether-agent .deb to start from.
        #[arg(long, default_value = crate::deploy::DEFAULT_AGENT_DEB)]
        agent_deb: PathBuf,
        /// Directory to write the package into.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
// `cluster`.
pub enum ClusterCommand {
    /// Make the cluster's CA in DIR (its key readable only by you; never replaced) and print its
    /// fingerprint. Agents and consoles trust the cluster through DIR/cluster-ca.pem.
    Init {
        /// Where to write cluster-ca.pem and cluster-ca-key.pem.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Issue a node certificate signed by the cluster CA, into DIR, for `serve --node-dir DIR`.
    Join {
        /// The CA directory of `cluster init`.
        #[arg(long, value_name = "DIR")]
        ca_dir: PathBuf,
        /// The node's name (lowercase letters, digits, hyphens), written into its certificate.
        #[arg(long)]
        name: String,
        /// The HOST:PORT consoles reach this node at.
        #[arg(long, value_name = "HOST:PORT")]
        addr: String,
        /// Where to write the node's files.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
// `policy`.
pub enum PolicyCommand {
    /// Give ORG's devices the policy in FILE (from `org-key policy`); it must be newer than the one
    /// the relay holds.
    Set {
        /// The organisation.
        #[arg(long)]
        org: String,
        /// The signed policy file.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Print the policy the relay holds for ORG.
    Show {
        /// The organisation.
        #[arg(long)]
        org: String,
    },
}

#[derive(Debug, Subcommand)]
// `org-key`.
pub enum OrgKeyCommand {
    /// Make a new org key for ORG and write it to FILE (readable only by you; never replaced).
    /// Keep it off the relay: devices will trust what it signs, whatever the relay says.
    Create {
        /// The organisation, as its technicians and devices name it.
        #[arg(long)]
        org: String,
        /// Where to write the key.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the organisation and the public key of an org key file (what devices pin).
    Show {
        /// The org key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Sign a technician's public key: a certificate devices of the organisation accept.
    Certify {
        /// The org key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The technician's name, as users will see it.
        #[arg(long)]
        name: String,
        /// The technician's public key (64 hex digits).
        #[arg(long, value_name = "HEX")]
        technician_key: tether_proto::org::PublicKey,
        /// How many days it is valid.
        #[arg(long, default_value_t = 365)]
        days: u64,
        /// Where to write the certificate.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Sign the organisation's unattended policy: the scopes a signed technician may use on its
    /// enrolled devices when nobody answers (empty: attended only).
    Policy {
        /// The org key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Comma-separated scopes, e.g. inventory,diagnostics ("" for none).
        #[arg(long, default_value = "")]
        unattended: String,
        /// The policy's version; devices take only a newer one than they hold.
        #[arg(long)]
        version: u64,
        /// A technician key IT revokes (hex, as `tether-console key show` prints it): devices
        /// holding this policy refuse it whatever its certificate says. Repeat for several; a new
        /// policy must name every key still revoked.
        #[arg(long = "revoke", value_name = "KEY")]
        revoked: Vec<tether_proto::org::PublicKey>,
        /// Where to write the signed policy.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// Which agents an agent config is for, and how they reach this relay.
#[derive(Debug, clap::Args)]
pub struct AgentTarget {
    /// The organisation whose technicians these agents accept.
    #[arg(long)]
    pub org: String,
    /// The host:port agents connect to [default: public_address from the config file].
    #[arg(long)]
    pub address: Option<String>,
}

#[derive(Debug, Subcommand)]
// `devices`.
pub enum DevicesCommand {
    /// List enrolled devices.
    List {
        /// Only this organisation.
        #[arg(long)]
        org: Option<String>,
    },
    /// Remove a device with its inventory history: it no longer shows, and it can no longer report
    /// (enroll it again with a new token to bring it back).
    Remove {
        /// Device id or host name.
        device: String,
        /// The organisation it belongs to.
        #[arg(long)]
        org: String,
    },
}

#[derive(Debug, Subcommand)]
// `enroll-token`.
pub enum EnrollTokenCommand {
    /// Create a token and print it (shown only this once; the relay keeps a hash).
    Create {
        /// The organisation enrolled devices belong to.
        #[arg(long)]
        org: String,
        /// How long the token stays valid: 30m, 12h, 7d or seconds.
        #[arg(long, default_value = "7d", value_parser = crate::config::parse_duration)]
        expires: std::time::Duration,
        /// How many devices may enroll with it.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// The organisation's public key (`tether-relay org-key show`, 64 hex digits), carried in
        /// the token for devices to pin: only technicians it signed get a session without a code.
        /// The relay keeps none of it.
        #[arg(long, value_name = "HEX")]
        org_key: Option<tether_proto::org::PublicKey>,
    },
    /// List enrollment tokens (ids, not the tokens: the relay keeps only their hashes).
    List,
    /// Revoke a token by the id `list` prints; no device can enroll with it any more.
    Revoke {
        /// The token's id (or at least its first 6 characters).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
// `technician`.
pub enum TechnicianCommand {
    /// Register a technician and print their token (shown only this once).
    Add {
        /// Name shown to users.
        name: String,
        /// Organisation shown to users.
        #[arg(long)]
        org: String,
        /// viewer (view only), technician (all session scopes) or admin.
        #[arg(long, default_value = "technician")]
        role: TechnicianRole,
        /// Token lifetime, e.g. 30d; no expiry if omitted.
        #[arg(long)]
        expires: Option<String>,
        /// Support tier: L1, L2 or L3 (escalations go to a higher tier).
        #[arg(long, default_value = "L1")]
        tier: Tier,
    },
    /// Set a technician's support tier (L1, L2 or L3).
    SetTier {
        /// Name.
        name: String,
        /// Organisation.
        #[arg(long)]
        org: String,
        /// L1, L2 or L3.
        tier: Tier,
    },
    /// Revoke a technician's token.
    Revoke {
        /// Name.
        name: String,
        /// Organisation.
        #[arg(long)]
        org: String,
    },
    /// List registered technicians.
    List,
}

#[derive(Debug, Subcommand)]
// `audit`.
pub enum AuditCommand {
    /// Check the hash chain; names the first edited, deleted or reordered record.
    Verify,
    /// Print records.
    Show {
        /// Only the last period, e.g. 24h or 7d.
        #[arg(long)]
        since: Option<String>,
        /// Only records naming this technician.
        #[arg(long)]
        technician: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed_and_serve_is_the_default() {
        Cli::command().debug_assert();
        let cli = Cli::parse_from(["tether-relay"]);
        assert!(cli.command.is_none(), "no command runs `serve`");
        let cli = Cli::parse_from(["tether-relay", "serve", "--listen", "127.0.0.1:0"]);
        assert!(matches!(
            cli.command,
            Some(Command::Serve {
                listen: Some(_),
                ..
            })
        ));
    }
}
