//! `tether-relay`: parse the command line, set up logging, run the command, exit with its code.
//! Everything else is the library's [`tether_relay::cli`].

use clap::Parser;
use tether_relay::cli::{self, Cli};

#[tokio::main]
async fn main() {
    tether_net::cli::init_logging();
    if let Err(e) = cli::run(Cli::parse()).await {
        eprintln!("{}", e.message());
        std::process::exit(e.exit_code());
    }
}
