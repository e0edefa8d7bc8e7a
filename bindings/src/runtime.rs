//! The one tokio runtime of the process. Created on first use, never shut down (the
//! process ends with the app); two worker threads are plenty for one socket and its acks.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};

use crate::error::SafeStreamError;

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// The process's runtime, created on first call.
pub(crate) fn get() -> Result<&'static Runtime, SafeStreamError> {
    RUNTIME
        .get_or_init(|| {
            Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("safestream-agent")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|reason| SafeStreamError::Internal {
            reason: format!("cannot start the tokio runtime: {reason}"),
        })
}

/// Runs `fut` on the runtime and awaits it from the foreign executor (Kotlin coroutines,
/// Swift tasks): the work itself always happens on tokio, where reqwest and timers need
/// it to be.
pub(crate) async fn run<T, F>(fut: F) -> Result<T, SafeStreamError>
where
    F: Future<Output = Result<T, SafeStreamError>> + Send + 'static,
    T: Send + 'static,
{
    match get()?.spawn(fut).await {
        Ok(r) => r,
        Err(e) => Err(SafeStreamError::Internal {
            reason: if e.is_panic() {
                "the agent panicked (see the logs)".to_owned()
            } else {
                "the operation was cancelled".to_owned()
            },
        }),
    }
}
