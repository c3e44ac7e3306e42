//! Test hosts in network namespaces the test makes itself (iproute2, nftables): a "public" network
//! with the relay, and two home networks, each behind its own NAT router.
//!
//! ```text
//!   agent host ── router A (NAT) ──┐              ┌── router B (NAT) ── console host
//!   192.168.1.2   wan 10.1.0.2     └── public ────┘   wan 10.2.0.2        192.168.2.2
//!                                  relay 10.0.0.1
//! ```
//!
//! Each router masquerades what leaves its `wan` and drops what arrives unasked, as a home router
//! does. [`Mapping::EndpointIndependent`] keeps a socket's public port for every destination (what
//! Linux does by default, and what hole punching needs); [`Mapping::Symmetric`] picks a new random
//! port for each destination (`masquerade fully-random`), so the port the relay saw is useless to
//! the peer. The public namespace routes between the two routers, so their direct path can be cut
//! there ([`Nat::block_direct`]) while the relay stays reachable; its counters tell what the relay
//! carried and what went direct. Nothing leaves the namespaces; all are deleted on drop.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The relay's address on the public network.
pub const RELAY_IP: &str = "10.0.0.1";

/// How a NAT router maps a host's UDP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    /// One public port per socket, whatever the destination.
    EndpointIndependent,
    /// A new random public port per destination.
    Symmetric,
}

/// Runs a command; its error output on failure.
pub fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The five namespaces of one test.
#[derive(Debug)]
pub struct Nat {
    /// The public network, where the relay runs.
    pub public: String,
    /// The agent's host, behind router A.
    pub agent: String,
    /// The console's host, behind router B.
    pub console: String,
    routers: [String; 2],
}

impl Nat {
    /// Builds the networks, with router A mapping as `agent` and router B as `console`.
    pub fn create(agent: Mapping, console: Mapping) -> Result<Nat, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{}x{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let nat = Nat {
            public: format!("tnat{id}p"),
            agent: format!("tnat{id}a"),
            console: format!("tnat{id}c"),
            routers: [format!("tnat{id}ra"), format!("tnat{id}rb")],
        };
        for ns in nat.all() {
            run(&["ip", "netns", "add", ns])?;
            nat.ip(ns, "link set lo up")?;
        }
        nat.ip(&nat.public, &format!("addr add {RELAY_IP}/32 dev lo"))?;
        nat.sysctl(&nat.public)?;
        for (i, (host, mapping)) in [(&nat.agent, agent), (&nat.console, console)]
            .into_iter()
            .enumerate()
        {
            let n = i + 1;
            let router = &nat.routers[i];
            nat.veth(&nat.public, &format!("pub{n}"), router, "wan")?;
            nat.ip(&nat.public, &format!("addr add 10.{n}.0.1/24 dev pub{n}"))?;
            nat.ip(router, &format!("addr add 10.{n}.0.2/24 dev wan"))?;
            nat.ip(router, &format!("route add default via 10.{n}.0.1"))?;
            nat.veth(router, "lan", host, "eth0")?;
            nat.ip(router, &format!("addr add 192.168.{n}.1/24 dev lan"))?;
            nat.ip(host, &format!("addr add 192.168.{n}.2/24 dev eth0"))?;
            nat.ip(host, &format!("route add default via 192.168.{n}.1"))?;
            nat.sysctl(router)?;
            let random = match mapping {
                Mapping::EndpointIndependent => "",
                Mapping::Symmetric => " fully-random",
            };
            nat.nft(
                router,
                &format!(
                    "table ip nat {{
                       chain post {{
                         type nat hook postrouting priority 100;
                         oifname \"wan\" masquerade{random}
                       }}
                     }}
                     table inet fw {{
                       chain input {{
                         type filter hook input priority 0;
                         iifname \"wan\" ct state new drop
                       }}
                       chain forward {{
                         type filter hook forward priority 0;
                         iifname \"wan\" ct state new drop
                       }}
                     }}"
                ),
            )?;
        }
        nat.nft(
            &nat.public,
            "table inet count {
               chain input {
                 type filter hook input priority 0;
                 ip saddr 10.1.0.2 udp dport 4433 counter
               }
               chain output {
                 type filter hook output priority 0;
                 ip daddr 10.1.0.2 udp sport 4433 counter
               }
               chain forward {
                 type filter hook forward priority 0;
                 counter
               }
             }",
        )?;
        Ok(nat)
    }

    fn all(&self) -> [&String; 5] {
        [
            &self.public,
            &self.routers[0],
            &self.routers[1],
            &self.agent,
            &self.console,
        ]
    }

    fn ip(&self, ns: &str, args: &str) -> Result<String, String> {
        let mut a = vec!["ip", "-n", ns];
        a.extend(args.split_whitespace());
        run(&a)
    }

    fn veth(&self, a_ns: &str, a: &str, b_ns: &str, b: &str) -> Result<(), String> {
        run(&[
            "ip", "link", "add", a, "netns", a_ns, "type", "veth", "peer", "name", b, "netns", b_ns,
        ])?;
        self.ip(a_ns, &format!("link set {a} up"))?;
        self.ip(b_ns, &format!("link set {b} up"))?;
        Ok(())
    }

    fn sysctl(&self, ns: &str) -> Result<String, String> {
        run(&[
            "ip",
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ])
    }

    fn nft(&self, ns: &str, ruleset: &str) -> Result<String, String> {
        let file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
        std::fs::write(file.path(), ruleset).map_err(|e| e.to_string())?;
        let path = file.path().to_string_lossy().into_owned();
        run(&["ip", "netns", "exec", ns, "nft", "-f", &path])
    }

    /// A command that runs `program` in namespace `ns`.
    pub fn exec(&self, ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }

    /// Cuts the direct path: the public network stops routing between the two routers (the relay
    /// stays reachable from both).
    pub fn block_direct(&self) -> Result<(), String> {
        self.nft(
            &self.public,
            "table inet block {
               chain forward {
                 type filter hook forward priority -10;
                 drop
               }
             }",
        )
        .map(drop)
    }

    /// Undoes [`Nat::block_direct`].
    pub fn unblock_direct(&self) -> Result<(), String> {
        run(&[
            "ip",
            "netns",
            "exec",
            &self.public,
            "nft",
            "delete",
            "table",
            "inet",
            "block",
        ])
        .map(drop)
    }

    /// Bytes so far: (between the relay and the agent's side, routed directly between the
    /// routers). The agent's side, because the console also posts what it fetched to the relay
    /// (the fleet's inventory), which is its own business with the relay, not the session's.
    pub fn counters(&self) -> Result<(u64, u64), String> {
        let out = run(&[
            "ip",
            "netns",
            "exec",
            &self.public,
            "nft",
            "list",
            "table",
            "inet",
            "count",
        ])?;
        let (mut relay, mut direct) = (0, 0);
        let mut chain = "";
        for line in out.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix("chain ") {
                chain = if name.starts_with("forward") {
                    "forward"
                } else {
                    "relay"
                };
            }
            if let Some(rest) = line.split("bytes ").nth(1) {
                let n: u64 = rest
                    .split_whitespace()
                    .next()
                    .and_then(|b| b.parse().ok())
                    .ok_or_else(|| format!("no byte count in {line:?}"))?;
                match chain {
                    "forward" => direct += n,
                    _ => relay += n,
                }
            }
        }
        Ok((relay, direct))
    }

    /// Runs `f` on a thread that joined namespace `ns`: every socket it makes lives there.
    pub fn within<T: Send + 'static>(
        ns: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        let path = format!("/var/run/netns/{ns}");
        let file = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        std::thread::spawn(move || {
            use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};
            use std::os::fd::AsFd;
            move_into_link_name_space(file.as_fd(), Some(LinkNameSpaceType::Network))
                .map_err(|e| format!("setns {ns}: {e}", ns = path))?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl Drop for Nat {
    fn drop(&mut self) {
        // Deleting a namespace removes its ends of the veth pairs, and with them the pairs.
        for ns in self.all() {
            let _ = run(&["ip", "netns", "del", ns]);
        }
    }
}
