//! The technician directory as the connection handlers see it: who holds a token, and who is
//! active. [`Technicians`] (the JSON registry in the data directory) is the implementation; a
//! relay cluster could put a shared directory behind the same trait.

use tether_proto::msg::TechnicianIdentity;

use crate::technicians::{TechnicianError, Technicians, TokenProblem};

/// Looks technicians up by token.
pub trait Directory: Send + Sync + std::fmt::Debug {
    /// The technician holding `token`, or why the token is not good; `Err` if the directory
    /// cannot be read.
    fn verify(
        &self,
        token: &str,
    ) -> Result<Result<TechnicianIdentity, TokenProblem>, TechnicianError>;

    /// Every technician whose token is currently good.
    fn active(&self) -> Result<Vec<TechnicianIdentity>, TechnicianError>;
}

impl Directory for Technicians {
    fn verify(
        &self,
        token: &str,
    ) -> Result<Result<TechnicianIdentity, TokenProblem>, TechnicianError> {
        Technicians::verify(self, token)
    }

    fn active(&self) -> Result<Vec<TechnicianIdentity>, TechnicianError> {
        Technicians::active(self)
    }
}
