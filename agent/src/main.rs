//! `tether-agent`: parse the command line, then run the library with the terminal front end.

use clap::{Parser, Subcommand};
use tether_agent::ui::UserCommand;
use tether_agent::{ShareConfig, terminal, ui};
use tether_net::cli::RelayArgs;

#[derive(Parser)]
#[command(
    name = "tether-agent",
    version,
    about = "Tether agent: let a technician help you, with your consent"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a one-time code and share this machine with the technician you read it to.
    Share {
        #[command(flatten)]
        relay: RelayArgs,
    },
}

#[tokio::main]
async fn main() {
    tether_net::cli::init_logging();
    let Command::Share { relay } = Cli::parse().command;
    let target = match relay.target() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let (link, handle) = ui::channels();
    let commands = handle.commands.clone();
    let front = tokio::spawn(terminal::run(
        handle,
        tokio::io::BufReader::new(tokio::io::stdin()),
        std::io::stdout(),
    ));
    let ctrl_c = tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if commands.send(UserCommand::EndSession).await.is_err() {
                // The session is already gone; a second Ctrl-C just leaves.
                std::process::exit(130);
            }
        }
    });
    let result = tether_agent::share(ShareConfig::new(target), link).await;
    // Let the front end print the last events; stdin cannot be cancelled, so exit explicitly.
    let _ = tokio::time::timeout(std::time::Duration::from_millis(200), front).await;
    ctrl_c.abort();
    match result {
        Ok(_) => std::process::exit(0),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
