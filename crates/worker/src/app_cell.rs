//! The worker's app: inherited from the master (`--preload`) or built on the first request.

use std::sync::Arc;

use serve_app::{App, AppError, AppFactory};
use tokio::sync::OnceCell;

/// Where a worker's app comes from.
#[derive(Clone)]
pub enum AppSource {
    /// Built by the master before forking; its memory is shared copy-on-write.
    Preloaded(Arc<dyn App>),
    /// Built by this worker on its first request.
    Lazy(Arc<dyn AppFactory>),
}

/// The app of one worker, built at most once. Concurrent first requests wait for the one
/// build; a failed build is not remembered, so a later request tries again (the model file
/// may have been fixed meanwhile).
pub(crate) struct AppCell {
    factory: Option<Arc<dyn AppFactory>>,
    cell: OnceCell<Arc<dyn App>>,
}

impl AppCell {
    pub(crate) fn new(source: AppSource) -> Self {
        match source {
            AppSource::Preloaded(app) => AppCell {
                factory: None,
                cell: OnceCell::new_with(Some(app)),
            },
            AppSource::Lazy(factory) => AppCell {
                factory: Some(factory),
                cell: OnceCell::new(),
            },
        }
    }

    pub(crate) async fn get(&self) -> Result<&Arc<dyn App>, AppError> {
        if let Some(app) = self.cell.get() {
            return Ok(app);
        }
        let factory = self
            .factory
            .clone()
            .expect("a preloaded cell is always set");
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
