//! The [`App`] the worker calls, and the factory the `serve` binary hands to the master.
//!
//! The factory resolves APP once, reading every model file into memory, on its first use:
//! the master's start-time check (so a missing or broken file exits 4 before any fork), or
//! the check that opens a reload. Workers are forked afterwards and inherit those bytes, so
//! every worker of a generation, a respawned one too, serves the model the generation was
//! proven with, whatever happens to the files later; a reload reads them again (a new
//! factory) and proves them before any worker uses them.
//!
//! Building the app reads every model's metadata (from those bytes) and compiles the
//! manifest routes; it builds no plan. That is the check, each worker's build, and, followed
//! by [`App::warm`] which builds every plan, what `--preload` and the reload proof run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serve_app::{App, AppError, AppFactory, BoxFuture, Context, Request, Response};
use serve_runtime::engine::{BuildError, Engine};
use serve_settings::Values;
use serve_settings::kinds::{EngineName, ModelControlMode};

use crate::executor::Settings;
use crate::observe::Metrics;
use crate::registry::{Model, Registry};
use crate::resolve::{AppSpec, resolve, resolve_explicit};
use crate::router::{self, Inner};
use crate::routes::Route;

/// The model application: every model of APP over V2, V1 and the manifest routes.
pub struct ModelApp {
    inner: Arc<Inner>,
    /// Where the models were declared, to name the key that picks another engine.
    manifest: Option<PathBuf>,
    /// `--onnxruntime` and `--model-threads`, to try onnxruntime on what tract refuses.
    onnxruntime: Option<PathBuf>,
    model_threads: usize,
}

impl ModelApp {
    /// Builds the app (metadata only; plans are built lazily or by [`App::warm`]) from a
    /// resolved APP, whose model bytes are already in memory: [`ModelAppFactory`] is the way
    /// in.
    fn from_spec(spec: &AppSpec, values: &Values) -> Result<ModelApp, AppError> {
        // `--request-timeout`: a request still waiting or running past it is answered 504.
        let request_timeout = (!values.request_timeout.is_zero()).then_some(values.request_timeout);
        let mut engines = Engines::new(values);
        let mut registry = Registry::default();
        for m in &spec.models {
            let engine = engines
                .get(m.engine.unwrap_or(values.engine))
                .map_err(|e| {
                    let e = e.context(format_args!("model {}", m.name));
                    match &spec.manifest {
                        Some(file) => e.context(file.display()),
                        None => e,
                    }
                })?;
            let mut model = Model::new(
                serve_runtime::model::Model::open(
                    m.name.clone(),
                    m.source.clone(),
                    m.settings.clone(),
                    request_timeout,
                    engine,
                )
                .map_err(String::from)?
                .with_version(m.version.clone())
                .observed_by(Arc::new(Metrics::of(&m.name, &m.version))),
            )
            .with_example(m.example.as_ref())
            .map_err(|e| in_manifest(spec, e))?;
            if let Some(config) = &m.config {
                crate::triton::check(config, &model.meta)
                    .map_err(|e| format!("model {} version {}: {e}", m.name, m.version))?;
                model.config = Some(config.clone());
            }
            registry.add(model).map_err(|e| in_manifest(spec, e))?;
        }
        let mut routes: Vec<Route> = Vec::new();
        for entry in &spec.routes {
            let route = Route::compile(entry, &registry).map_err(|e| in_manifest(spec, e))?;
            if routes
                .iter()
                .any(|r| r.path == route.path && r.method == route.method)
            {
                return Err(in_manifest(
                    spec,
                    format!("route {} {} is declared twice", route.method, route.path),
                )
                .into());
            }
            routes.push(route);
        }
        Ok(ModelApp {
            inner: Arc::new(Inner {
                registry,
                routes,
                grpc: false,
                explicit: values.model_control == ModelControlMode::Explicit,
                unloaded: spec.unloaded.clone(),
                auth: values.auth_token_file.is_some(),
            }),
            manifest: spec.manifest.clone(),
            onnxruntime: values.onnxruntime.clone(),
            model_threads: values.model_threads,
        })
    }

    /// A model that tract cannot build: the error, with what onnxruntime says of it. It is
    /// tried only where `may_try` (a process that may start threads: the proof child,
    /// `--check`); elsewhere (the master) it is only suggested. Nothing is added when
    /// onnxruntime fails too, or when the fault is not the model's.
    fn other_engine(&self, model: &Model, e: BuildError, may_try: bool) -> AppError {
        if e.is_host() || model.engine().name() != "tract" {
            return e.into();
        }
        let key = match &self.manifest {
            Some(file) => format!(
                "set `engine = \"onnxruntime\"` on model {} in {}",
                model.name,
                file.display()
            ),
            None => "pass --engine onnxruntime".to_owned(),
        };
        let hint = match serve_onnxruntime::library::find(self.onnxruntime.as_deref()) {
            Err(_) => format!("onnxruntime may build it: `pip install onnxruntime`, then {key}"),
            Ok(_) if !may_try => format!("onnxruntime may build it: {key}"),
            Ok(library) => {
                let engine = serve_onnxruntime::OnnxRuntime::new(library, self.model_threads);
                let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    engine.build(&model.source, &model.meta, model.settings.batch_dim)
                }));
                match built {
                    Ok(Ok(_)) => format!("onnxruntime builds it: {key}"),
                    Ok(Err(other)) if other.is_host() => {
                        format!("onnxruntime may build it: {key}")
                    }
                    _ => return e.into(),
                }
            }
        };
        let message = format!("{}; {hint}", e.message());
        e.with_message(message).into()
    }

    /// Whether load and unload requests go to the master (`--model-control explicit`).
    pub fn explicit(&self) -> bool {
        self.inner.explicit
    }

    /// Under explicit model control: the repository's models that are not loaded.
    pub fn unloaded(&self) -> &[String] {
        &self.inner.unloaded
    }

    /// The models, for tests and for the binary's logs.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }
}

/// The engines of an app's models, each made once and shared by the models on it.
struct Engines<'v> {
    values: &'v Values,
    tract: Arc<dyn Engine>,
    onnxruntime: Option<Arc<dyn Engine>>,
}

impl<'v> Engines<'v> {
    fn new(values: &'v Values) -> Self {
        Engines {
            values,
            tract: Arc::new(serve_tract::Tract),
            onnxruntime: None,
        }
    }

    /// The engine named. onnxruntime's library is only looked for here (a file found, not
    /// loaded: this runs in the master too); it is loaded by the first build. Not found is
    /// the host's fault ([`AppError::host`]).
    fn get(&mut self, name: EngineName) -> Result<Arc<dyn Engine>, AppError> {
        match name {
            EngineName::Tract => Ok(self.tract.clone()),
            EngineName::OnnxRuntime => {
                if let Some(e) = &self.onnxruntime {
                    return Ok(e.clone());
                }
                let library = serve_onnxruntime::library::find(self.values.onnxruntime.as_deref())
                    .map_err(AppError::host)?;
                let engine: Arc<dyn Engine> = Arc::new(serve_onnxruntime::OnnxRuntime::new(
                    library,
                    self.values.model_threads,
                ));
                self.onnxruntime = Some(engine.clone());
                Ok(engine)
            }
        }
    }
}

fn in_manifest(spec: &AppSpec, e: String) -> String {
    match &spec.manifest {
        Some(file) => format!("{}: {e}", file.display()),
        None => e,
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

    fn observe_head(&self, parts: &http::request::Parts) {
        serve_app::observe(router::label(&self.inner, &parts.method, parts.uri.path()));
    }

    fn warm(&self) -> Result<(), AppError> {
        for model in self.inner.registry.models() {
            model
                .load_now()
                .map_err(|e| self.other_engine(model, e, true))?;
        }
        Ok(())
    }

    fn warm_before_fork(&self) -> Result<Vec<String>, AppError> {
        let mut left = Vec::new();
        for model in self.inner.registry.models() {
            if model.engine().fork_safe() {
                model
                    .load_now()
                    .map_err(|e| self.other_engine(model, e, false))?;
            } else {
                left.push(format!("{} ({})", model.name, model.engine().name()));
            }
        }
        Ok(left)
    }

    fn warm_after_fork(&self) -> Result<(), AppError> {
        for model in self.inner.registry.models() {
            if !model.engine().fork_safe() {
                model.load_now()?;
            }
        }
        Ok(())
    }
}

/// The recipe the `serve` binary gives the master: [`AppFactory::check`] at start,
/// [`AppFactory::build`] in each worker (or once before forking with `--preload`).
pub struct ModelAppFactory {
    /// APP: an `.onnx` file, a model repository or app directory, an `app.toml`; `None`
    /// serves the iris model embedded in the binary.
    app: Option<PathBuf>,
    /// The settings: the model ones are every model's unless its manifest entry says
    /// otherwise.
    values: Values,
    /// Under `--model-control explicit`: the models of the repository to serve (`*`: all).
    load: Vec<String>,
    /// Under `--model-control explicit`: the configurations load requests gave, by model.
    configs: BTreeMap<String, String>,
    /// APP resolved and its model files read, by the first call (see the module's doc).
    sealed: OnceLock<Result<AppSpec, String>>,
}

impl ModelAppFactory {
    /// A factory for APP under these settings. Nothing is read until it is first used.
    pub fn new(app: Option<PathBuf>, values: &Values) -> Self {
        ModelAppFactory {
            app,
            values: values.clone(),
            load: Vec::new(),
            configs: BTreeMap::new(),
            sealed: OnceLock::new(),
        }
    }

    /// Under `--model-control explicit`: the models of the repository to serve (`*`: all;
    /// none: a server with no model) and the configurations load requests gave them.
    pub fn loading(mut self, load: &[String], configs: &BTreeMap<String, String>) -> Self {
        self.load = load.to_vec();
        self.configs = configs.clone();
        self
    }

    fn explicit(&self) -> bool {
        self.values.model_control == ModelControlMode::Explicit
    }

    /// APP as resolved on first use, its model bytes in memory.
    fn spec(&self) -> Result<&AppSpec, String> {
        self.sealed
            .get_or_init(|| {
                let defaults = Settings::from_values(&self.values);
                if !self.explicit() {
                    return resolve(self.app.as_deref(), &defaults)
                        .and_then(|spec| named(spec, self.values.model_name.as_deref()));
                }
                if let Some(name) = &self.values.model_name {
                    return Err(format!(
                        "--model-name {name}: under --model-control explicit each model keeps \
                         its name in the repository (the name a load request gives); drop \
                         --model-name, or rename the model's file or directory"
                    ));
                }
                resolve_explicit(self.app.as_deref(), &defaults, &self.load, &self.configs)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Builds the model app itself, for an app that wraps it: `grpc` when that app serves
    /// gRPC beside it, which the front page then shows.
    pub fn app(&self, grpc: bool) -> Result<ModelApp, AppError> {
        let mut app = ModelApp::from_spec(self.spec()?, &self.values)?;
        if grpc {
            Arc::get_mut(&mut app.inner)
                .expect("a new app's routes are not shared yet")
                .grpc = true;
        }
        Ok(app)
    }
}

/// `--model-name`: the one model of `spec` (every version of it) served under `name`.
fn named(mut spec: AppSpec, name: Option<&str>) -> Result<AppSpec, String> {
    let Some(name) = name else {
        return Ok(spec);
    };
    let name = crate::resolve::check_name(name).map_err(|e| format!("--model-name: {e}"))?;
    if let Some(manifest) = &spec.manifest {
        return Err(format!(
            "--model-name {name}: {} is an app.toml, which names its models itself: set the \
             name of its [[model]] there, or drop --model-name",
            manifest.display()
        ));
    }
    let names = by_name(&spec);
    if names.len() != 1 {
        let list: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "--model-name {name}: APP holds {} models ({}); --model-name names the model of a \
             single-model start: serve one model's file or directory, or drop --model-name",
            names.len(),
            list.join(", ")
        ));
    }
    for m in &mut spec.models {
        m.name = name.clone();
    }
    Ok(spec)
}

/// The models of a spec by name, in the order their names first come, each with its
/// versions.
fn by_name(spec: &AppSpec) -> Vec<(&str, Vec<&str>)> {
    let mut names: Vec<(&str, Vec<&str>)> = Vec::new();
    for m in &spec.models {
        match names.iter_mut().find(|(n, _)| *n == m.name) {
            Some((_, versions)) => versions.push(&m.version),
            None => names.push((&m.name, vec![&m.version])),
        }
    }
    names
}

/// The models of a spec for the start's log: `iris`, or `iris (versions 3, 2)` for a model
/// of several versions, each name once.
fn names_and_versions(spec: &AppSpec) -> Vec<String> {
    by_name(spec)
        .into_iter()
        .map(|(name, versions)| match versions.as_slice() {
            [only] if *only == crate::registry::DEFAULT_VERSION => name.to_owned(),
            [only] => format!("{name} (version {only})"),
            _ => format!("{name} (versions {})", versions.join(", ")),
        })
        .collect()
}

impl AppFactory for ModelAppFactory {
    fn describe(&self) -> String {
        let source = |p: &Path| p.display().to_string();
        match self.spec() {
            Ok(spec) => {
                let names = names_and_versions(spec);
                let from = match (&spec.manifest, self.app.as_deref()) {
                    (Some(m), _) => source(m),
                    (None, Some(app)) => source(app),
                    (None, None) => "embedded".into(),
                };
                let s = if names.len() == 1 { "" } else { "s" };
                if self.explicit() {
                    let loaded = match names.len() {
                        0 => "no model loaded".to_owned(),
                        _ => format!("model{s} {} loaded", names.join(", ")),
                    };
                    return format!("repository {from} under explicit model control, {loaded}");
                }
                format!("model{s} {} ({from})", names.join(", "))
            }
            Err(_) => match self.app.as_deref() {
                Some(app) => format!("model app {}", source(app)),
                None => "model iris (embedded)".into(),
            },
        }
    }

    fn summary(&self) -> Vec<String> {
        let Ok(app) = self.app(false) else {
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
                let versions = app.registry().versions(&m.name).count();
                let version = if versions > 1 || m.version != crate::registry::DEFAULT_VERSION {
                    format!(" version {}", m.version)
                } else {
                    String::new()
                };
                format!(
                    "model {}{version} (on {}): inputs {}; outputs {}",
                    m.name,
                    m.engine().name(),
                    tensors(&m.meta.inputs),
                    tensors(&m.meta.outputs)
                )
            })
            .collect();
        lines.extend(app.inner.routes.iter().map(Route::describe));
        lines
    }

    fn models(&self) -> Vec<String> {
        // Names, not versions: every version of a model counts under its name.
        let Ok(spec) = self.spec() else {
            return Vec::new();
        };
        by_name(spec)
            .into_iter()
            .map(|(n, _)| n.to_owned())
            .collect()
    }

    fn versions_of(&self, model: &str) -> Vec<String> {
        let Ok(spec) = self.spec() else {
            return Vec::new();
        };
        by_name(spec)
            .into_iter()
            .find(|(n, _)| *n == model)
            .map(|(_, versions)| versions.into_iter().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    fn engine_of(&self, model: &str) -> Option<String> {
        let spec = self.spec().ok()?;
        let m = spec.models.iter().find(|m| m.name == model)?;
        Some(m.engine.unwrap_or(self.values.engine).as_str().to_owned())
    }

    fn check(&self) -> Result<(), AppError> {
        self.app(false).map(drop)
    }

    fn build(&self) -> Result<Arc<dyn App>, AppError> {
        Ok(Arc::new(self.app(false)?))
    }
}
