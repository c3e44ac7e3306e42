//! The `tether-console` command line, as a library: `main` only parses, sets up logging, calls
//! [`run`] and turns its error into an exit code.
//!
//! # Layout
//! - [`args`]: the commands and options (clap derive) and [`parse`].
//! - [`checks`]: everything checked before a code is claimed (input chords, output paths).
//! - [`run`](mod@run): what each command does; [`files`]: `tether-console files` and its progress line.
//! - [`output`]: JSON and the plain lines that are not tables (tables are in [`crate::render`]).

pub mod args;
pub mod checks;
pub mod files;
pub mod output;
pub mod run;

pub use args::{Cli, parse};
pub use run::run;

use crate::ConsoleError;

/// Why a command failed: the command line itself, or the session it ran.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line was wrong, or asked for something impossible; nothing was claimed.
    #[error("{0}")]
    Usage(String),
    /// The command ran and failed.
    #[error(transparent)]
    Console(#[from] ConsoleError),
    /// A file transfer failed.
    #[error(transparent)]
    Files(#[from] crate::files::FilesError),
    /// The technician key or its certificate.
    #[error(transparent)]
    Key(#[from] crate::technician_key::KeyError),
}

impl CliError {
    /// The process exit code: 2 for a usage error, as clap's own, else the console error's.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Console(e) => e.exit_code(),
            CliError::Files(e) => e.exit_code(),
            CliError::Key(_) => 1,
        }
    }
}

/// A usage error with this message.
pub(crate) fn usage<T>(msg: impl Into<String>) -> Result<T, CliError> {
    Err(CliError::Usage(msg.into()))
}
