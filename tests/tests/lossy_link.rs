//! A slow, lossy link: the real binaries in two network namespaces joined by a veth pair with
//! `tc netem delay 50ms loss 1%` on both ends (≈100 ms round trip, 1 % loss each way). Pairing,
//! consent and an inventory request must still work. Needs root, `ip` and `tc` (iproute2) and the
//! netem qdisc, so it is `#[ignore]`d (and shown as ignored) in a plain `cargo test`; `.ci/run`, which
//! runs as root, runs it with `--ignored`. Once asked for, a missing capability is a failure that
//! says what is missing, never a silent pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;
use tether_tests::procs::{Kill, add_technician, bin, lines, wait_for, wait_for_code};

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Two namespaces joined by a veth pair with netem on both ends; deleted on drop.
struct Link {
    relay_ns: String,
    agent_ns: String,
    relay_ip: String,
}

impl Link {
    fn create() -> Result<Self, String> {
        let id = std::process::id() % 100_000;
        let net = id % 250;
        let link = Link {
            relay_ns: format!("tether-relay-{id}"),
            agent_ns: format!("tether-agent-{id}"),
            relay_ip: format!("10.231.{net}.1"),
        };
        let (vr, va) = (format!("tvr{id}"), format!("tva{id}"));
        run(&["ip", "netns", "add", &link.relay_ns])?;
        run(&["ip", "netns", "add", &link.agent_ns])?;
        let (r, a) = (&link.relay_ns, &link.agent_ns);
        let steps: Vec<Vec<String>> = vec![
            vec![
                "ip", "link", "add", &vr, "netns", r, "type", "veth", "peer", "name", &va, "netns",
                a,
            ],
            vec![
                "ip",
                "-n",
                r,
                "addr",
                "add",
                &format!("10.231.{net}.1/24"),
                "dev",
                &vr,
            ],
            vec![
                "ip",
                "-n",
                a,
                "addr",
                "add",
                &format!("10.231.{net}.2/24"),
                "dev",
                &va,
            ],
            vec!["ip", "-n", r, "link", "set", &vr, "up"],
            vec!["ip", "-n", a, "link", "set", &va, "up"],
            vec!["ip", "-n", r, "link", "set", "lo", "up"],
            vec!["ip", "-n", a, "link", "set", "lo", "up"],
            vec![
                "tc", "-n", r, "qdisc", "add", "dev", &vr, "root", "netem", "delay", "50ms",
                "loss", "1%",
            ],
            vec![
                "tc", "-n", a, "qdisc", "add", "dev", &va, "root", "netem", "delay", "50ms",
                "loss", "1%",
            ],
        ]
        .into_iter()
        .map(|v| v.into_iter().map(String::from).collect())
        .collect();
        for s in steps {
            let s: Vec<&str> = s.iter().map(String::as_str).collect();
            run(&s)?;
        }
        Ok(link)
    }

    fn exec(&self, ns: &str, program: PathBuf) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Deleting a namespace removes its end of the veth pair, and with it the pair.
        let _ = run(&["ip", "netns", "del", &self.relay_ns]);
        let _ = run(&["ip", "netns", "del", &self.agent_ns]);
    }
}

#[test]
#[ignore = "needs root, iproute2 (ip, tc) and netem: run with --ignored, as .ci/run does"]
fn pairing_and_inventory_work_over_a_slow_lossy_link() {
    let link = Link::create()
        .unwrap_or_else(|why| panic!("cannot build the lossy link (root, ip, tc, netem): {why}"));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let listen = format!("{}:4433", link.relay_ip);
    let mut relay = Kill(
        link.exec(&link.relay_ns, bin("tether-relay"))
            .args(["--data-dir", data, "serve", "--listen", &listen])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let relay_out = lines(relay.0.stdout.take().unwrap());
    let fp = wait_for(&relay_out, "certificate SHA-256")
        .split_whitespace()
        .last()
        .unwrap()
        .to_string();
    let token = add_technician(data, "Ada", "Acme");

    let t = Instant::now();
    let mut agent = Kill(
        link.exec(&link.agent_ns, bin("tether-agent"))
            .args(["share", "--relay", &listen, "--relay-cert-sha256", &fp])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let agent_out = lines(agent.0.stdout.take().unwrap());
    let code = wait_for_code(&agent_out);
    let to_code = t.elapsed();

    let t = Instant::now();
    let console = link
        .exec(&link.agent_ns, bin("tether-console"))
        .args(["inventory", "--json", "--code", &code])
        .env("TETHER_RELAY", &listen)
        .env("TETHER_RELAY_CERT_SHA256", &fp)
        .env("TETHER_TOKEN", &token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&agent_out, "Allow?");
    let to_prompt = t.elapsed();
    let mut stdin = agent.0.stdin.take().unwrap();
    writeln!(stdin, "y").unwrap();
    let t = Instant::now();
    let out = console.wait_with_output().unwrap();
    let to_inventory = t.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inv: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(inv["hardware"]["system"]["hostname"], hostname.trim());
    wait_for(&agent_out, "Session ended");
    println!(
        "over 50 ms + 1 % loss each way: agent start -> code {to_code:?}; code typed -> consent prompt \
         (connect, claim, SPAKE2) {to_prompt:?}; consent -> inventory shown {to_inventory:?}"
    );
    drop(relay);
}
