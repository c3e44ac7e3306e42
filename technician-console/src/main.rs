//! `tether-console`: parse the command line, run one session, print, exit with a meaningful code.
//! Everything but that lives in the library ([`tether_console::cli`]).

#[tokio::main]
async fn main() {
    tether_net::cli::init_logging();
    let cli = tether_console::cli::parse(std::env::args());
    if let Err(e) = tether_console::cli::run(cli).await {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
