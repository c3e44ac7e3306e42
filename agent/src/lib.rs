pub mod diagnostics;
pub mod inventory;
