//! The one adapter from async code to the synchronous stores (SQLite): run the call on a blocking
//! thread and wait for it. A call that panicked becomes the store's own "store failed" error.

use std::sync::Arc;

use tether_proto::fleet::{FleetError, FleetErrorKind};
use tether_proto::records::{RecordError, RecordErrorKind};

/// An error type a store call can return when its blocking task itself failed.
pub trait TaskFailure {
    /// The error for a store task that panicked or was cancelled.
    fn task_failed(detail: String) -> Self;
}

impl TaskFailure for FleetError {
    fn task_failed(detail: String) -> Self {
        FleetError::new(
            FleetErrorKind::StoreFailed,
            format!("store task failed: {detail}"),
        )
    }
}

impl TaskFailure for RecordError {
    fn task_failed(detail: String) -> Self {
        RecordError::new(
            RecordErrorKind::StoreFailed,
            format!("record task failed: {detail}"),
        )
    }
}

/// Runs `f` on `store` on a blocking thread (SQLite is synchronous) and waits for it.
pub async fn blocking<S, R, E>(
    store: &Arc<S>,
    f: impl FnOnce(&S) -> Result<R, E> + Send + 'static,
) -> Result<R, E>
where
    S: ?Sized + Send + Sync + 'static,
    R: Send + 'static,
    E: TaskFailure + Send + 'static,
{
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .unwrap_or_else(|e| Err(E::task_failed(e.to_string())))
}
