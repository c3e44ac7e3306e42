//! The relay's Prometheus endpoint, scraped over real HTTP while real sessions run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use tether_console::ConsoleError;
use tether_proto::{Scope, ScopeSet, SessionCode};
use tether_relay::technicians::Technicians;
use tether_relay::{Limits, Relay, RelayConfig, metrics};
use tether_tests::{TestAgent, TestRelay, WAIT, paired};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn inventory() -> ScopeSet {
    ScopeSet::from_iter([Scope::Inventory])
}

async fn relay_with_metrics(limits: Limits) -> TestRelay {
    let dir = tempfile::tempdir().unwrap();
    let token = Technicians::new(dir.path())
        .add("Ada Lovelace", "Acme IT")
        .unwrap();
    let mut config = RelayConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf());
    config.limits = limits.clone();
    config.metrics = Some("127.0.0.1:0".parse().unwrap());
    let handle = Relay::spawn(config).await.unwrap();
    TestRelay {
        handle,
        dir,
        token,
        limits,
    }
}

async fn get(addr: SocketAddr, name: &str) -> f64 {
    metrics::scrape(addr)
        .await
        .unwrap()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no sample {name}"))
        .1
}

/// The gauge `name` once it shows `want`, or its value after [`WAIT`]: a gauge that counts
/// connections drops only when the relay has seen a closed connection go, a moment after the peer
/// closed it (the console's record post uses a connection of its own).
async fn settled(addr: SocketAddr, name: &str, want: f64) -> f64 {
    let start = tokio::time::Instant::now();
    loop {
        let v = get(addr, name).await;
        if v == want || start.elapsed() > WAIT {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn raw_http(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

fn wrong_secret(code: &SessionCode) -> SessionCode {
    let digits = code.to_string().replace(' ', "");
    let wrong = if digits.ends_with("000000") {
        "000001"
    } else {
        "000000"
    };
    format!("{}{wrong}", code.slot).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_connections_sessions_bytes_failures_and_rate_limits() {
    let relay = relay_with_metrics(Limits {
        claims_per_technician_per_minute: 3,
        ..Limits::default()
    })
    .await;
    let m = relay.handle.metrics_addr().expect("metrics on");
    assert_eq!(
        std::fs::read_to_string(relay.dir.path().join(metrics::ADDR_FILE)).unwrap(),
        m.to_string(),
        "status finds the endpoint through the data directory"
    );
    assert_eq!(get(m, "tether_relay_sessions_started_total").await, 0.0);

    // Claim 1: a session that moves data.
    let (_agent, mut session) = paired(&relay, inventory(), inventory()).await;
    session.inventory().await.unwrap();
    assert_eq!(get(m, "tether_relay_sessions_started_total").await, 1.0);
    assert_eq!(get(m, "tether_relay_sessions_active").await, 1.0);
    assert_eq!(get(m, "tether_relay_agents_connected").await, 1.0);
    assert_eq!(settled(m, "tether_relay_connections_open", 2.0).await, 2.0);
    assert!(
        get(
            m,
            "tether_relay_bytes_spliced_total{direction=\"to_console\"}"
        )
        .await
            > 100.0
    );
    assert!(
        get(
            m,
            "tether_relay_bytes_spliced_total{direction=\"to_agent\"}"
        )
        .await
            > 0.0
    );

    // Claim 2: a wrong code burns it; the agent's report is counted.
    let mut other = TestAgent::spawn(&relay, inventory());
    let code = other.code().await;
    let err = tether_console::open_session(&relay.console(), wrong_secret(&code), inventory())
        .await
        .expect_err("wrong code");
    assert!(matches!(err, ConsoleError::WrongCode), "{err:?}");
    other.code().await; // the agent shows a new code once it has reported the failure
    assert_eq!(get(m, "tether_relay_pairing_failures_total").await, 1.0);

    // Claim 3 is for an unknown slot; claim 4 is over the per-minute limit.
    for _ in 0..2 {
        let _ = tether_console::open_session(&relay.console(), code, inventory()).await;
    }
    assert_eq!(
        get(
            m,
            "tether_relay_claims_refused_total{reason=\"unknown_slot\"}"
        )
        .await,
        1.0
    );
    assert_eq!(get(m, "tether_relay_rate_limit_hits_total").await, 1.0);

    // Anything but GET /metrics gets a clear HTTP error, and the endpoint keeps serving.
    assert!(
        raw_http(m, b"GET / HTTP/1.1\r\n\r\n")
            .await
            .starts_with("HTTP/1.1 404")
    );
    assert!(
        raw_http(m, b"\x00\xffgarbage\r\n\r\n")
            .await
            .starts_with("HTTP/1.1 400")
    );
    assert!(
        raw_http(m, &[b'a'; 20_000])
            .await
            .starts_with("HTTP/1.1 400")
    );
    let text = raw_http(m, b"GET /metrics HTTP/1.1\r\n\r\n").await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("# TYPE tether_relay_sessions_active gauge"));

    session.end().await;
}

#[tokio::test]
async fn metrics_are_off_by_default() {
    let relay = TestRelay::start().await;
    assert!(relay.handle.metrics_addr().is_none());
    assert!(!relay.dir.path().join(metrics::ADDR_FILE).exists());
}

/// A claim whose pairing fails is an attempt, not a started session, in the metrics and in the audit
/// log; pairings and consents are counted on their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_pairings_are_attempts_not_started_sessions() {
    let relay = relay_with_metrics(Limits::default()).await;
    let m = relay.handle.metrics_addr().expect("metrics on");

    // A wrong code: the agent accepts the claim, the key confirmation fails.
    let mut agent = TestAgent::spawn(&relay, inventory());
    let code = agent.code().await;
    let err = tether_console::open_session(&relay.console(), wrong_secret(&code), inventory())
        .await
        .expect_err("wrong code");
    assert!(matches!(err, ConsoleError::WrongCode), "{err:?}");
    agent.code().await; // the agent shows a new code once it has reported the failure
    assert_eq!(get(m, "tether_relay_session_attempts_total").await, 1.0);
    assert_eq!(get(m, "tether_relay_pairing_failures_total").await, 1.0);
    assert_eq!(get(m, "tether_relay_sessions_started_total").await, 0.0);
    assert_eq!(
        get(m, "tether_relay_consents_total{granted=\"some\"}").await,
        0.0
    );

    // A real session: one more attempt, one pairing, one consent.
    let (_agent, mut session) = paired(&relay, inventory(), inventory()).await;
    session.inventory().await.unwrap();
    assert_eq!(get(m, "tether_relay_session_attempts_total").await, 2.0);
    assert_eq!(get(m, "tether_relay_sessions_started_total").await, 1.0);
    assert_eq!(
        get(m, "tether_relay_consents_total{granted=\"some\"}").await,
        1.0
    );
    session.end().await;

    let events: Vec<String> = relay
        .audit()
        .iter()
        .map(|r| r["event"].as_str().unwrap().to_string())
        .collect();
    let count = |e: &str| events.iter().filter(|x| *x == e).count();
    assert_eq!(count("session_attempt"), 2, "{events:?}");
    assert_eq!(count("session_started"), 1, "{events:?}");
}
