//! The worker's app: inherited from the master (`--preload`) or built on the first request.

use std::sync::Arc;

use serve_app::{App, AppError, AppFactory};
use tokio::sync::OnceCell;

/// The app of one worker, built at most once. Concurrent first requests wait for the one
/// build; a failed build is not remembered, so a later request tries again (the model file
/// may have been fixed meanwhile).
pub(crate) struct AppCell {
    factory: Arc<dyn AppFactory>,
    cell: OnceCell<Arc<dyn App>>,
}

impl AppCell {
    /// `preloaded` is the app the master built before forking (`--preload`), whose memory is
    /// shared copy-on-write; without it the factory builds the app on the first request.
    pub(crate) fn new(factory: Arc<dyn AppFactory>, preloaded: Option<Arc<dyn App>>) -> Self {
        AppCell {
            factory,
            cell: OnceCell::new_with(preloaded),
        }
    }

    pub(crate) async fn get(&self) -> Result<&Arc<dyn App>, AppError> {
        if let Some(app) = self.cell.get() {
            return Ok(app);
        }
        let factory = self.factory.clone();
        self.cell
            .get_or_try_init(|| async move {
                // Building reads files and parses them: keep it off the I/O thread.
                tokio::task::spawn_blocking(move || factory.build())
                    .await
                    .map_err(|e| AppError::new(format!("the app's build panicked: {e}")))?
            })
            .await
    }
}
