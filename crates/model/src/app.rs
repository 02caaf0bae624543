//! The [`App`] the worker calls, and the factory the `serve` binary hands to the master.
//!
//! Building the app resolves APP, reads every model's metadata and compiles the manifest
//! routes; it builds no plan. That is also the master's start-time check (so a missing or
//! broken file exits 4 before any fork), each worker's build, and, followed by
//! [`App::warm`] which builds every plan, what `--preload` and the reload proof run.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serve_app::{App, AppError, AppFactory, BoxFuture, Context, Request, Response};

use crate::ModelOptions;
use crate::executor::Settings;
use crate::registry::{Model, Registry};
use crate::resolve::{AppSpec, resolve};
use crate::router::{self, Inner};
use crate::routes::Route;

/// The model application: every model of APP over V2, V1 and the manifest routes.
pub struct ModelApp {
    inner: Arc<Inner>,
}

impl ModelApp {
    /// Builds the app (metadata only; plans are built lazily or by [`App::warm`]).
    pub fn new(opts: &ModelOptions) -> Result<ModelApp, String> {
        let mut spec = resolve(opts.app.as_deref(), &settings(opts))?;
        let mut registry = Registry::default();
        for m in std::mem::take(&mut spec.models) {
            let model = Model::open(m.name, m.source, m.settings, opts.request_timeout)?
                .with_version(m.version);
            registry.add(model).map_err(|e| in_manifest(&spec, e))?;
        }
        let mut routes: Vec<Route> = Vec::new();
        for entry in &spec.routes {
            let route = Route::compile(entry, &registry).map_err(|e| in_manifest(&spec, e))?;
            if routes
                .iter()
                .any(|r| r.path == route.path && r.method == route.method)
            {
                return Err(in_manifest(
                    &spec,
                    format!("route {} {} is declared twice", route.method, route.path),
                ));
            }
            routes.push(route);
        }
        Ok(ModelApp {
            inner: Arc::new(Inner { registry, routes }),
        })
    }

    /// The models, for tests and for the binary's logs.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }
}

fn in_manifest(spec: &AppSpec, e: String) -> String {
    match &spec.manifest {
        Some(file) => format!("{}: {e}", file.display()),
        None => e,
    }
}

/// The executor settings the command line gives every model (a manifest may override them).
fn settings(opts: &ModelOptions) -> Settings {
    Settings {
        max_batch_size: opts.max_batch_size.max(1),
        batch_timeout: opts.batch_timeout,
        max_queue: opts.max_queue.max(1),
        inline_below: Duration::from_millis(1),
        measure: true,
        batch_dim: true,
    }
}

impl App for ModelApp {
    fn call(&self, req: Request, cx: Context) -> BoxFuture<Response> {
        let inner = self.inner.clone();
        Box::pin(async move {
            match router::dispatch(&inner, req, &cx).await {
                Ok(res) => res,
                Err(e) => {
                    if e.status().is_server_error() && !e.is_logged() {
                        tracing::warn!(request_id = %cx.request_id, "{}", e.message());
                    }
                    e.into_response()
                }
            }
        })
    }

    fn warm(&self) -> Result<(), AppError> {
        for model in self.inner.registry.models() {
            model.load_now().map_err(AppError::new)?;
        }
        Ok(())
    }
}

/// The recipe the `serve` binary gives the master: [`AppFactory::check`] at start,
/// [`AppFactory::build`] in each worker (or once before forking with `--preload`).
pub struct ModelAppFactory {
    opts: ModelOptions,
}

impl ModelAppFactory {
    /// A factory for these options.
    pub fn new(opts: ModelOptions) -> Self {
        ModelAppFactory { opts }
    }

    /// The options it was made with.
    pub fn options(&self) -> &ModelOptions {
        &self.opts
    }
}

impl AppFactory for ModelAppFactory {
    fn describe(&self) -> String {
        let source = |p: &Path| p.display().to_string();
        match resolve(self.opts.app.as_deref(), &settings(&self.opts)) {
            Ok(spec) => {
                let names: Vec<&str> = spec.models.iter().map(|m| m.name.as_str()).collect();
                let from = match (&spec.manifest, self.opts.app.as_deref()) {
                    (Some(m), _) => source(m),
                    (None, Some(app)) => source(app),
                    (None, None) => "embedded".into(),
                };
                let s = if names.len() == 1 { "" } else { "s" };
                format!("model{s} {} ({from})", names.join(", "))
            }
            Err(_) => match self.opts.app.as_deref() {
                Some(app) => format!("model app {}", source(app)),
                None => "model iris (embedded)".into(),
            },
        }
    }

    fn summary(&self) -> Vec<String> {
        let Ok(app) = ModelApp::new(&self.opts) else {
            return Vec::new();
        };
        let tensors = |list: &[crate::metadata::TensorMeta]| {
            list.iter()
                .map(|t| {
                    let shape: Vec<String> = t.shape_i64().iter().map(i64::to_string).collect();
                    format!("{} {} [{}]", t.name, t.datatype.as_str(), shape.join(", "))
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut lines: Vec<String> = app
            .registry()
            .models()
            .iter()
            .map(|m| {
                format!(
                    "model {}: inputs {}; outputs {}",
                    m.name,
                    tensors(&m.meta.inputs),
                    tensors(&m.meta.outputs)
                )
            })
            .collect();
        lines.extend(app.inner.routes.iter().map(Route::describe));
        lines
    }

    fn check(&self) -> Result<(), AppError> {
        ModelApp::new(&self.opts).map(drop).map_err(AppError::from)
    }

    fn build(&self) -> Result<Arc<dyn App>, AppError> {
        Ok(Arc::new(ModelApp::new(&self.opts).map_err(AppError::from)?))
    }
}
