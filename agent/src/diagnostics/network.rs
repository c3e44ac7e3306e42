//! Network probes: interfaces, default route, DNS, TCP connect, HTTP(S), listening ports.
//!
//! Linux sources: /sys/class/net, /proc/net/route, /proc/net/arp, /proc/net/tcp{,6}. Reachability of the
//! gateway uses `ping` when installed (fixed argv; the address is one we parsed ourselves) and the kernel's
//! neighbour table otherwise.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sysinfo::Networks;
use tether_proto::diag::{
    ConnectFacts, DiagFacts, HostName, HttpFacts, HttpUrl, InterfaceInfo, ListeningSocket, Port,
    RouteFacts, Verdict,
};

use super::storage::cmd_error;
use super::{Found, ProbeError, command, ms, plural};

/// Most bytes of response head read from an HTTP server.
const MAX_HTTP_HEAD: usize = 16 * 1024;

pub(super) fn interfaces() -> Result<Found, ProbeError> {
    let networks = Networks::new_with_refreshed_list()
        .map_err(|e| ProbeError::NotAvailable(format!("cannot list interfaces: {e}")))?;
    let mut list: Vec<InterfaceInfo> = networks
        .iter()
        .map(|(name, data)| {
            let name = name.to_string_lossy().into_owned();
            let state = std::fs::read_to_string(format!("/sys/class/net/{name}/operstate"))
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into());
            let mac = data.mac_address();
            InterfaceInfo {
                state,
                mac: if mac.is_unspecified() {
                    String::new()
                } else {
                    mac.to_string()
                },
                addresses: data
                    .ip_networks()
                    .iter()
                    .map(|n| format!("{}/{}", n.addr, n.prefix))
                    .collect(),
                name,
            }
        })
        .collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    let (verdict, reason) = judge_interfaces(&list);
    Ok(Found::new(
        verdict,
        reason,
        DiagFacts::Interfaces { interfaces: list },
    ))
}

/// Problem when no interface other than loopback is up with a routable address.
fn judge_interfaces(list: &[InterfaceInfo]) -> (Verdict, String) {
    let usable: Vec<&InterfaceInfo> = list
        .iter()
        .filter(|i| i.name != "lo" && i.state != "down")
        .filter(|i| {
            i.addresses.iter().any(|a| {
                let ip = a.split('/').next().unwrap_or("");
                match ip.parse::<IpAddr>() {
                    Ok(IpAddr::V4(v4)) => !v4.is_loopback() && !v4.is_link_local(),
                    Ok(IpAddr::V6(v6)) => !v6.is_loopback() && !v6.is_unicast_link_local(),
                    Err(_) => false,
                }
            })
        })
        .collect();
    if usable.is_empty() {
        (
            Verdict::Problem,
            format!(
                "no network interface is up with an address ({} interfaces in total)",
                list.len()
            ),
        )
    } else {
        let names: Vec<&str> = usable.iter().map(|i| i.name.as_str()).collect();
        (
            Verdict::Ok,
            format!(
                "{} up with an address: {}",
                plural(usable.len() as u64, "interface", "interfaces"),
                names.join(", ")
            ),
        )
    }
}

/// The IPv4 default route from /proc/net/route: (interface, gateway).
fn parse_default_route(text: &str) -> Option<(String, Ipv4Addr)> {
    const RTF_UP: u32 = 0x1;
    const RTF_GATEWAY: u32 = 0x2;
    text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (iface, dest, gw, flags, mask) =
            (f.first()?, f.get(1)?, f.get(2)?, f.get(3)?, f.get(7)?);
        let flags = u32::from_str_radix(flags, 16).ok()?;
        if *dest != "00000000"
            || *mask != "00000000"
            || flags & (RTF_UP | RTF_GATEWAY) != RTF_UP | RTF_GATEWAY
        {
            return None;
        }
        // The kernel prints the address in host byte order (little-endian on the machines we run on).
        let gw = u32::from_str_radix(gw, 16).ok()?;
        Some((iface.to_string(), Ipv4Addr::from(gw.swap_bytes())))
    })
}

/// Whether the neighbour table has a completed entry for `ip`.
fn arp_complete(text: &str, ip: Ipv4Addr) -> Option<bool> {
    const ATF_COM: u32 = 0x2;
    let ip = ip.to_string();
    text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.first()? != &ip {
            return None;
        }
        let flags = u32::from_str_radix(f.get(2)?.trim_start_matches("0x"), 16).ok()?;
        Some(flags & ATF_COM != 0)
    })
}

pub(super) fn default_route(deadline: Instant) -> Result<Found, ProbeError> {
    let text = std::fs::read_to_string("/proc/net/route")
        .map_err(|e| ProbeError::NotAvailable(format!("cannot read /proc/net/route: {e}")))?;
    let Some((iface, gw)) = parse_default_route(&text) else {
        return Ok(Found::new(
            Verdict::Problem,
            "no default route: this machine cannot reach other networks",
            DiagFacts::DefaultRoute(RouteFacts {
                gateway: None,
                interface: None,
                reachable: None,
                method: "none".into(),
                rtt_ms: None,
            }),
        ));
    };
    let (reachable, method, rtt_ms) = if command::find("ping").is_some() {
        let gw_text = gw.to_string();
        let out = command::run("ping", &["-n", "-c", "1", "-W", "1", &gw_text], deadline)
            .map_err(cmd_error)?;
        let rtt = out
            .stdout
            .split("time=")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok());
        (Some(out.code == Some(0)), "ping".to_string(), rtt)
    } else {
        let arp = std::fs::read_to_string("/proc/net/arp").unwrap_or_default();
        (
            arp_complete(&arp, gw),
            "neighbour table (ping is not installed)".to_string(),
            None,
        )
    };
    let (verdict, reason) = match reachable {
        Some(true) => (
            Verdict::Ok,
            format!("default route via {gw} on {iface}; the gateway answers"),
        ),
        Some(false) => (
            Verdict::Problem,
            format!("default route via {gw} on {iface}, but the gateway does not answer"),
        ),
        None => (
            Verdict::Warning,
            format!("default route via {gw} on {iface}; the gateway has not been seen yet"),
        ),
    };
    Ok(Found::new(
        verdict,
        reason,
        DiagFacts::DefaultRoute(RouteFacts {
            gateway: Some(gw.to_string()),
            interface: Some(iface),
            reachable,
            method,
            rtt_ms,
        }),
    ))
}

fn nameservers() -> Vec<String> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .map(|s| s.trim().to_string())
        .collect()
}

/// Resolves with the system resolver (getaddrinfo). It has its own timeouts; [`super::run_probe`]'s
/// deadline cuts it off when those are longer.
pub(super) fn dns(name: &HostName) -> Found {
    let started = Instant::now();
    let result = (name.as_str(), 0u16).to_socket_addrs();
    let elapsed = ms(started.elapsed());
    let nameservers = nameservers();
    match result {
        Ok(addrs) => {
            let mut addresses: Vec<String> = addrs.map(|a| a.ip().to_string()).collect();
            addresses.dedup();
            Found::new(
                Verdict::Ok,
                format!(
                    "{name} resolves to {} in {elapsed:.0} ms",
                    addresses.join(", ")
                ),
                DiagFacts::Dns {
                    name: name.to_string(),
                    addresses,
                    nameservers,
                    error: None,
                },
            )
        }
        Err(e) => Found::new(
            Verdict::Problem,
            format!("could not resolve {name}: {e}"),
            DiagFacts::Dns {
                name: name.to_string(),
                addresses: Vec::new(),
                nameservers,
                error: Some(e.to_string()),
            },
        ),
    }
}

fn remaining(deadline: Instant) -> Result<Duration, ProbeError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(ProbeError::TimedOut)
    } else {
        Ok(left)
    }
}

/// The addresses for `host`: the literal itself, or what the resolver says.
fn addresses(host: &HostName, port: u16) -> Result<Vec<SocketAddr>, String> {
    match host.ip() {
        Some(ip) => Ok(vec![SocketAddr::new(ip, port)]),
        None => (host.as_str(), port)
            .to_socket_addrs()
            .map(|a| a.collect())
            .map_err(|e| format!("could not resolve {host}: {e}")),
    }
}

/// Connects to the first address of `host` that accepts, trying each in turn until `deadline`.
fn connect(
    host: &HostName,
    port: u16,
    deadline: Instant,
    facts: &mut ConnectFacts,
) -> Result<Option<TcpStream>, ProbeError> {
    let started = Instant::now();
    let addrs = match addresses(host, port) {
        Ok(a) => a,
        Err(e) => {
            facts.error = Some(e);
            return Ok(None);
        }
    };
    let mut result = None;
    for addr in addrs {
        facts.tried.push(addr.to_string());
        match TcpStream::connect_timeout(&addr, remaining(deadline)?) {
            Ok(s) => {
                facts.connected_to = Some(addr.to_string());
                facts.error = None;
                result = Some(s);
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut && Instant::now() >= deadline => {
                return Err(ProbeError::TimedOut);
            }
            Err(e) => facts.error = Some(format!("{addr}: {e}")),
        }
    }
    facts.connect_ms = ms(started.elapsed());
    Ok(result)
}

pub(super) fn tcp_connect(
    host: &HostName,
    port: Port,
    deadline: Instant,
) -> Result<Found, ProbeError> {
    let mut facts = ConnectFacts {
        host: host.to_string(),
        port: port.get(),
        tried: Vec::new(),
        connected_to: None,
        connect_ms: 0.0,
        error: None,
    };
    let stream = connect(host, port.get(), deadline, &mut facts)?;
    let (verdict, reason) = match (&stream, &facts.error) {
        (Some(_), _) => (
            Verdict::Ok,
            format!(
                "connected to {} in {:.1} ms",
                facts.connected_to.as_deref().unwrap_or("?"),
                facts.connect_ms
            ),
        ),
        (None, Some(e)) => (
            Verdict::Problem,
            format!("cannot connect to {host}:{port}: {e}"),
        ),
        (None, None) => (Verdict::Problem, format!("{host} has no addresses")),
    };
    Ok(Found::new(verdict, reason, DiagFacts::TcpConnect(facts)))
}

fn io_error(e: std::io::Error, deadline: Instant) -> Result<String, ProbeError> {
    use std::io::ErrorKind::{TimedOut, WouldBlock};
    if matches!(e.kind(), TimedOut | WouldBlock) || Instant::now() >= deadline {
        return Err(ProbeError::TimedOut);
    }
    Ok(e.to_string())
}

/// Sends a GET and reads the response head, on any byte stream (TCP or TLS over TCP).
fn exchange(
    stream: &mut dyn ReadWrite,
    request: &[u8],
    deadline: Instant,
) -> Result<Result<Vec<u8>, String>, ProbeError> {
    if let Err(e) = stream.write_all(request).and_then(|_| stream.flush()) {
        return Ok(Err(io_error(e, deadline)?));
    }
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HTTP_HEAD {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Ok(Err(io_error(e, deadline)?)),
        }
    }
    Ok(Ok(head))
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_platform_verifier()
        .map_err(|e| format!("cannot load the system's trusted certificates: {e}"))?
        .with_no_client_auth();
    Ok(Arc::new(config))
}

pub(super) fn http(url: &HttpUrl, deadline: Instant) -> Result<Found, ProbeError> {
    let parts = url
        .parts()
        .map_err(|e| ProbeError::Failed(format!("invalid URL: {e}")))?;
    let started = Instant::now();
    let mut facts = HttpFacts {
        url: url.to_string(),
        status: None,
        status_line: None,
        server: None,
        location: None,
        connect_ms: None,
        total_ms: None,
        error: None,
    };
    let fail = |mut facts: HttpFacts, why: String| {
        let reason = format!("no response from {}: {why}", facts.url);
        facts.error = Some(why);
        Ok(Found::new(Verdict::Problem, reason, DiagFacts::Http(facts)))
    };
    // The host was validated as a HostName inside the URL; parse it again as one.
    let host: HostName = parts
        .host
        .parse()
        .map_err(|e| ProbeError::Failed(format!("invalid URL host: {e}")))?;
    let mut cf = ConnectFacts {
        host: host.to_string(),
        port: parts.port,
        tried: Vec::new(),
        connected_to: None,
        connect_ms: 0.0,
        error: None,
    };
    let Some(tcp) = connect(&host, parts.port, deadline, &mut cf)? else {
        return fail(facts, cf.error.unwrap_or_else(|| "no addresses".into()));
    };
    let left = remaining(deadline)?;
    let _ = tcp.set_read_timeout(Some(left));
    let _ = tcp.set_write_timeout(Some(left));
    let default_port = if parts.tls { 443 } else { 80 };
    let host_header = match (host.ip(), parts.port == default_port) {
        (Some(IpAddr::V6(v6)), true) => format!("[{v6}]"),
        (Some(IpAddr::V6(v6)), false) => format!("[{v6}]:{}", parts.port),
        (_, true) => host.to_string(),
        (_, false) => format!("{host}:{}", parts.port),
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: tether-diagnostics\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        parts.path
    );
    let head = if parts.tls {
        let config = match tls_config() {
            Ok(c) => c,
            Err(e) => return fail(facts, e),
        };
        let name = match rustls::pki_types::ServerName::try_from(host.as_str().to_string()) {
            Ok(n) => n,
            Err(e) => return fail(facts, format!("not a valid TLS server name: {e}")),
        };
        let conn = match rustls::ClientConnection::new(config, name) {
            Ok(c) => c,
            Err(e) => return fail(facts, format!("TLS setup failed: {e}")),
        };
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        // Drive the handshake first so its time and its errors (untrusted certificate) are reported apart.
        while tls.conn.is_handshaking() {
            if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
                let why = io_error(e, deadline)?;
                return fail(facts, format!("TLS handshake failed: {why}"));
            }
        }
        facts.connect_ms = Some(ms(started.elapsed()));
        exchange(&mut tls, request.as_bytes(), deadline)?
    } else {
        facts.connect_ms = Some(cf.connect_ms);
        let mut tcp = tcp;
        exchange(&mut tcp, request.as_bytes(), deadline)?
    };
    let head = match head {
        Ok(h) => h,
        Err(e) => return fail(facts, e),
    };
    facts.total_ms = Some(ms(started.elapsed()));
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("").trim().to_string();
    let status = parse_status(&status_line);
    if status.is_none() {
        let why = if head.is_empty() {
            "the server closed the connection without answering".to_string()
        } else {
            format!(
                "not an HTTP response: {:?}",
                status_line.chars().take(60).collect::<String>()
            )
        };
        return fail(facts, why);
    }
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let v = v.trim().chars().take(200).collect::<String>();
            if k.eq_ignore_ascii_case("server") {
                facts.server = Some(v);
            } else if k.eq_ignore_ascii_case("location") {
                facts.location = Some(v);
            }
        }
    }
    facts.status = status;
    facts.status_line = Some(status_line.chars().take(200).collect());
    let code = status.unwrap_or(0);
    let verdict = match code {
        200..=399 => Verdict::Ok,
        400..=499 => Verdict::Warning,
        _ => Verdict::Problem,
    };
    let reason = format!(
        "{} answered {} in {:.0} ms",
        url,
        facts.status_line.as_deref().unwrap_or(""),
        facts.total_ms.unwrap_or(0.0)
    );
    Ok(Found::new(verdict, reason, DiagFacts::Http(facts)))
}

/// The code of an `HTTP/1.x NNN reason` status line.
fn parse_status(line: &str) -> Option<u16> {
    let mut f = line.split_whitespace();
    if !f.next()?.starts_with("HTTP/") {
        return None;
    }
    let code: u16 = f.next()?.parse().ok()?;
    (100..=599).contains(&code).then_some(code)
}

/// Listening sockets (state 0A) of one /proc/net/tcp or tcp6 file.
fn parse_listening(text: &str, protocol: &str) -> Vec<ListeningSocket> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.get(3)? != &"0A" {
                return None;
            }
            let (addr, port) = f.get(1)?.split_once(':')?;
            Some(ListeningSocket {
                protocol: protocol.to_string(),
                address: parse_proc_addr(addr)?.to_string(),
                port: u16::from_str_radix(port, 16).ok()?,
                uid: f.get(7)?.parse().ok()?,
            })
        })
        .collect()
}

/// An address as /proc/net/tcp* prints it: 32-bit words in host (little-endian) byte order.
fn parse_proc_addr(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(w.swap_bytes().to_be_bytes())
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

pub(super) fn listening_ports() -> Result<Found, ProbeError> {
    let mut sockets = Vec::new();
    let mut read_any = false;
    for (path, proto) in [("/proc/net/tcp", "tcp"), ("/proc/net/tcp6", "tcp6")] {
        if let Ok(text) = std::fs::read_to_string(path) {
            read_any = true;
            sockets.extend(parse_listening(&text, proto));
        }
    }
    if !read_any {
        return Err(ProbeError::NotAvailable("cannot read /proc/net/tcp".into()));
    }
    sockets.sort_by(|a, b| (a.port, &a.protocol).cmp(&(b.port, &b.protocol)));
    let mut ports: Vec<u16> = sockets.iter().map(|s| s.port).collect();
    ports.dedup();
    let shown: Vec<String> = ports.iter().take(12).map(u16::to_string).collect();
    let more = if ports.len() > 12 { ", ..." } else { "" };
    let reason = format!(
        "{} listening: {}{more}",
        plural(ports.len() as u64, "TCP port", "TCP ports"),
        shown.join(", ")
    );
    Ok(Found::new(
        Verdict::Ok,
        reason,
        DiagFacts::ListeningPorts { sockets },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_and_arp_parsing() {
        let route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(
            parse_default_route(route),
            Some(("eth0".to_string(), Ipv4Addr::new(192, 0, 2, 1)))
        );
        assert_eq!(parse_default_route("Iface\tDestination\n"), None);
        let arp = "IP address       HW type     Flags       HW address            Mask     Device\n\
192.0.2.1        0x1         0x2         02:00:00:00:00:01     *        eth0\n\
192.0.2.9        0x1         0x0         00:00:00:00:00:00     *        eth0\n";
        assert_eq!(arp_complete(arp, Ipv4Addr::new(192, 0, 2, 1)), Some(true));
        assert_eq!(arp_complete(arp, Ipv4Addr::new(192, 0, 2, 9)), Some(false));
        assert_eq!(arp_complete(arp, Ipv4Addr::new(192, 0, 2, 7)), None);
    }

    #[test]
    fn proc_net_tcp_parsing() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0\n\
   1: 0100007F:D2F0 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0\n";
        let l = parse_listening(v4, "tcp");
        assert_eq!(l.len(), 1);
        assert_eq!(
            (l[0].address.as_str(), l[0].port, l[0].uid),
            ("127.0.0.1", 8080, 1000)
        );
        assert_eq!(
            parse_proc_addr("00000000000000000000000001000000"),
            Some(IpAddr::V6(Ipv6Addr::LOCALHOST))
        );
        assert_eq!(parse_proc_addr("xyz"), None);
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status("HTTP/1.1 200 OK"), Some(200));
        assert_eq!(parse_status("HTTP/1.0 503 Service Unavailable"), Some(503));
        assert_eq!(parse_status("SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status("HTTP/1.1 999 what"), None);
    }

    #[test]
    fn a_machine_with_only_loopback_is_a_problem() {
        let lo = InterfaceInfo {
            name: "lo".into(),
            state: "unknown".into(),
            mac: String::new(),
            addresses: vec!["127.0.0.1/8".into()],
        };
        let mut eth = InterfaceInfo {
            name: "eth0".into(),
            state: "up".into(),
            mac: "02:00:00:00:00:01".into(),
            addresses: vec!["fe80::1/64".into()],
        };
        assert_eq!(
            judge_interfaces(&[lo.clone(), eth.clone()]).0,
            Verdict::Problem
        );
        eth.addresses.push("192.0.2.2/24".into());
        assert_eq!(judge_interfaces(&[lo, eth]).0, Verdict::Ok);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn listening_ports_see_a_real_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let found = listening_ports().unwrap();
        let DiagFacts::ListeningPorts { sockets } = &found.facts else {
            panic!("{found:?}")
        };
        assert!(
            sockets
                .iter()
                .any(|s| s.port == port && s.address == "127.0.0.1" && s.protocol == "tcp"),
            "port {port} not in {sockets:?}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn interfaces_include_loopback() {
        let found = interfaces().unwrap();
        let DiagFacts::Interfaces { interfaces } = &found.facts else {
            panic!("{found:?}")
        };
        let lo = interfaces.iter().find(|i| i.name == "lo").unwrap();
        assert!(lo.addresses.iter().any(|a| a == "127.0.0.1/8"), "{lo:?}");
    }

    /// A real TLS server with a self-signed certificate: the probe speaks TLS, verifies the certificate
    /// against the system's trust store, and reports the untrusted certificate as the reason.
    #[test]
    fn https_with_an_untrusted_certificate_is_reported() {
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![made.cert.der().clone()], key)
        .unwrap();
        let config = Arc::new(config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            let conn = rustls::ServerConnection::new(config).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut buf = [0u8; 512];
            // The client aborts the handshake; the server sees an error, not a request.
            tls.read(&mut buf).is_err()
        });
        let url: HttpUrl = format!("https://localhost:{port}/").parse().unwrap();
        let found = http(&url, Instant::now() + Duration::from_secs(10)).unwrap();
        assert_eq!(found.verdict, Verdict::Problem, "{}", found.reason);
        assert!(
            found.reason.contains("TLS handshake failed"),
            "{}",
            found.reason
        );
        assert!(
            found.reason.to_lowercase().contains("certificate"),
            "{}",
            found.reason
        );
        assert!(
            server.join().unwrap(),
            "the server got a request over an untrusted channel"
        );
    }
}
