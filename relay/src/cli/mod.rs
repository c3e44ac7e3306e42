//! The `tether-relay` command line, in the library so that `main.rs` only parses, sets up logging,
//! runs and exits: [`args`] holds every command and flag, [`run`](mod@run) what each does and prints.
//!
//! This is the one place in the library that uses `anyhow`: it is the binary's front end, and its
//! errors are only ever printed (with their context chain) before the process exits.

pub mod args;
pub mod run;

pub use args::Cli;
pub use run::run;

/// How a command failed.
#[derive(Debug)]
pub enum CliError {
    /// `audit verify` found the chain broken; the words name the first bad record.
    AuditBroken(String),
    /// Anything else, with its context.
    Failed(anyhow::Error),
}

impl CliError {
    /// The process exit code.
    pub fn exit_code(&self) -> i32 {
        1
    }

    /// What goes to standard error.
    pub fn message(&self) -> String {
        match self {
            CliError::AuditBroken(text) => text.clone(),
            CliError::Failed(e) => format!("error: {e:#}"),
        }
    }
}
