//! `tether-agent`: parse the command line, set up logging, run the library's command
//! ([`tether_agent::cli`]) and exit with its code.

use clap::Parser;
use tether_agent::cli::{Cli, Failure};

fn main() {
    let result = Cli::parse().resolve().and_then(|cli| {
        match cli.log_file() {
            None => tether_net::cli::init_logging(),
            Some(file) => tether_net::cli::init_logging_to(&file),
        }
        tether_agent::cli::run(cli)
    });
    match result {
        Ok(()) => std::process::exit(0),
        Err(Failure { message, code }) => {
            if let Some(message) = message {
                eprintln!("error: {message}");
            }
            // Explicitly: the terminal front end's stdin read cannot be cancelled.
            std::process::exit(code)
        }
    }
}
