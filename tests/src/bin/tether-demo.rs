//! `tether-demo`: Tether's main job on one machine with no setup — a relay, an agent and a technician's
//! console pair by one-time code, the user consents, and the console pulls the inventory and runs the
//! diagnostics. Each step is explained as it happens.

use std::time::Duration;

use tether_agent::ShareConfig;
use tether_agent::ui::{self, AgentEvent, UserCommand};
use tether_console::{open_session, render};
use tether_net::{RelayTarget, Trust};
use tether_proto::{Scope, ScopeSet};
use tether_relay::technicians::Technicians;
use tether_relay::{Relay, RelayConfig};

fn step(n: u32, text: &str) {
    println!("\n[{n}/6] {text}");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tether_net::cli::init_logging();
    println!("Tether demo: one machine plays all three parts, over real QUIC on 127.0.0.1.");

    step(
        1,
        "Starting a relay with a fresh certificate and data directory (nothing to configure).",
    );
    let dir = tempfile::tempdir()?;
    let relay = Relay::spawn(RelayConfig::new(
        "127.0.0.1:0".parse()?,
        dir.path().to_path_buf(),
    ))
    .await?;
    println!("      relay listening on {}", relay.local_addr());
    println!("      certificate SHA-256 {}", relay.fingerprint());
    println!("      (agent and console pin this fingerprint; there is no way to skip the check)");

    step(
        2,
        "Registering a technician on the relay (the relay keeps only a hash of the token).",
    );
    let token = Technicians::new(dir.path()).add("Ada Lovelace", "Acme IT")?;
    println!(
        "      technician \"Ada Lovelace\" of \"Acme IT\", token {}…",
        &token[..10]
    );

    step(
        3,
        "The user starts the agent; it asks the relay for a slot and shows a one-time code.",
    );
    let target = RelayTarget {
        addr: relay.local_addr().to_string(),
        trust: Trust::Fingerprint(relay.fingerprint().to_string()),
        connect_timeout: Duration::from_secs(5),
    };
    let (link, mut user) = ui::channels();
    let agent = tokio::spawn(tether_agent::share(ShareConfig::new(target.clone()), link));
    let code = loop {
        match user.events.recv().await {
            Some(AgentEvent::Code { code, .. }) => break code,
            Some(_) => {}
            None => anyhow::bail!("the agent stopped before showing a code"),
        }
    };
    println!("      agent shows:  session code {code}");
    println!(
        "      only the first group (the slot) ever reaches the relay; the rest is the pairing secret"
    );

    // The scripted user: prints what the agent shows and answers the consent prompt with "y".
    let user_task = tokio::spawn(async move {
        while let Some(ev) = user.events.recv().await {
            for line in tether_agent::terminal::render(&ev)
                .lines()
                .filter(|l| !l.trim().is_empty())
            {
                println!("      agent │ {line}");
            }
            if let AgentEvent::ConsentRequested { scopes, .. } = ev {
                println!("      user types: y");
                let _ = user.commands.send(UserCommand::Consent(scopes)).await;
            }
        }
    });

    step(
        4,
        "The technician types the code into the console: claim, SPAKE2 pairing, then a consent request.",
    );
    let config = tether_console::ConsoleConfig {
        relay: target,
        token,
    };
    let scopes: ScopeSet = [Scope::Inventory, Scope::Diagnostics].into_iter().collect();
    let mut session = open_session(&config, code, scopes).await?;
    println!(
        "      console: paired with verification code {}; the user granted: {}",
        session.verification, session.granted
    );

    step(
        5,
        "The console pulls the inventory (sealed end to end; the relay copies ciphertext).",
    );
    let inv = session.inventory().await?;
    for line in render::inventory(&inv).lines() {
        println!("      {line}");
    }

    step(
        6,
        "The console runs the standard health check (every probe that needs no parameters), problems first.",
    );
    let reports = session.health_check(None).await?;
    for line in render::diag_summary(&reports).lines() {
        println!("      {line}");
    }
    session.end().await;
    let reason = agent.await??;
    let _ = tokio::time::timeout(Duration::from_secs(1), user_task).await;
    println!("\nSession over ({reason}). The relay's audit log recorded:");
    for line in std::fs::read_to_string(relay.audit_path())?.lines() {
        println!("  {line}");
    }
    relay.shutdown().await;
    println!("\nNext: run the three parts yourself in three terminals — see README.md.");
    Ok(())
}
