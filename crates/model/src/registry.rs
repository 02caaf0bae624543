//! The models of an app, each loaded lazily, once, and checked for readiness.
//!
//! A [`Model`] is built when the app is (cheaply: its metadata only). Its plan is built on
//! the first inference of the worker, by one request while concurrent first requests wait
//! for it (an async lock taken only while nothing is loaded); afterwards reaching the plan
//! is one atomic load. The build runs on the blocking pool and holds the lock until it
//! ends, so a request that gives up (timeout) neither cancels it nor lets a second build
//! start.
//!
//! A failed build is remembered, logged once, and answered 503 naming the cause without
//! building again, as Triton answers a model that failed to load; the model then reports not
//! ready with that cause. Its bytes cannot change (they were read before the fork, see
//! [`Source`]), so neither can the verdict: a build fails only if the proof that let this
//! generation start was wrong, which the master's proof makes a bug, not a state. A model not
//! loaded yet is ready: it can serve, the first request just pays the load.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::executor::{Executor, Inputs, Settings};
use crate::loader::{self, BuildError, Plan, Source};
use crate::metadata::ModelMeta;
use crate::outputs::Outputs;
use crate::records::RecordSpec;
use crate::run_error::RunError;
use serve_runtime::events::Observer;

/// One model of the app, in one worker.
pub struct Model {
    /// The name requests use.
    pub name: String,
    /// Where its bytes are.
    pub source: Source,
    /// Its interface, read without building.
    pub meta: ModelMeta,
    /// Records keyed by input name (V1 instances).
    pub by_name: RecordSpec,
    /// How its executor batches and queues.
    pub settings: Settings,
    /// `--request-timeout`: past it the request is answered 504.
    pub request_timeout: Option<Duration>,
    /// The version it answers as (`model_version`, `/versions/V`).
    pub version: String,
    plan: OnceLock<Arc<Plan>>,
    load_lock: Arc<tokio::sync::Mutex<()>>,
    /// The last build's failure: what requests and readiness answer.
    failed: Mutex<Option<String>>,
    builds: std::sync::atomic::AtomicU64,
    executor: OnceLock<Executor>,
    /// Told what the executor does (metrics), besides its own counters.
    observer: Option<Arc<dyn Observer>>,
}

impl Model {
    /// Reads the model's metadata (the cheap check) and prepares its lazy plan.
    pub fn open(
        name: String,
        source: Source,
        settings: Settings,
        request_timeout: Option<Duration>,
    ) -> Result<Model, String> {
        let meta = source
            .read_meta()
            .map_err(|e| format!("{}: {e}", source.display()))?;
        Ok(Model {
            name,
            source,
            by_name: RecordSpec::by_name(&meta),
            meta,
            settings,
            request_timeout,
            version: crate::resolve::DEFAULT_VERSION.into(),
            plan: OnceLock::new(),
            load_lock: Arc::new(tokio::sync::Mutex::new(())),
            failed: Mutex::new(None),
            builds: Default::default(),
            executor: OnceLock::new(),
            observer: None,
        })
    }

    /// The model answering as this version (a manifest's `version`).
    pub fn with_version(mut self, version: String) -> Model {
        self.version = version;
        self
    }

    /// The model telling `observer` what its executor does (a server's metrics).
    pub fn observed_by(mut self, observer: Arc<dyn Observer>) -> Model {
        self.observer = Some(observer);
        self
    }

    /// True once this worker has built the plan.
    pub fn loaded(&self) -> bool {
        self.plan.get().is_some()
    }

    /// Builds the plan now, on this thread, if it is not built yet (preload, reload proof,
    /// and the lazy path's blocking task). A failure is logged, remembered for requests
    /// (see [`Model::plan`]) and returned; calling this again builds again.
    pub fn load_now(&self) -> Result<Arc<Plan>, String> {
        if let Some(plan) = self.plan.get() {
            return Ok(plan.clone());
        }
        let started = Instant::now();
        self.builds
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // tract may panic on a model it half understands; that is a build failure too, and
        // must not take down the master that preloads or proves a reload.
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            loader::build(&self.source, &self.meta, self.settings.batch_dim)
        }))
        .unwrap_or_else(|p| {
            Err(BuildError(format!(
                "tract panicked: {}",
                serve_app::panic_message(&*p)
            )))
        });
        match built {
            Ok(plan) => {
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                if let Some(why) = plan.pinned() {
                    tracing::warn!(
                        "model {}: tract cannot plan it for any batch size ({why}); it is \
                         planned with the batch pinned to 1: no batching, and requests of \
                         several rows run row by row",
                        self.name
                    );
                }
                let _ = self.plan.set(Arc::new(plan));
                *lock(&self.failed) = None;
                tracing::info!("model {} loaded in {ms:.1} ms", self.name);
                Ok(self.plan.get().expect("just set").clone())
            }
            Err(e) => {
                let message = format!(
                    "model {} ({}) cannot be loaded: {e}",
                    self.name,
                    self.source.display(),
                );
                tracing::error!("{message}");
                *lock(&self.failed) = Some(message.clone());
                Err(message)
            }
        }
    }

    /// How many times this worker has tried to build the model (tests and logs).
    pub fn builds(&self) -> u64 {
        self.builds.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The remembered failure, as requests get it (logged already).
    fn failure(&self) -> Option<RunError> {
        let failed = lock(&self.failed);
        failed.as_ref().map(|m| RunError::LoadFailed(m.clone()))
    }

    /// The plan, built by the first caller while the others wait. A failed build is
    /// answered from memory; the failure was logged once, when it happened.
    pub async fn plan(self: &Arc<Self>) -> Result<Arc<Plan>, RunError> {
        if let Some(plan) = self.plan.get() {
            return Ok(plan.clone());
        }
        if let Some(e) = self.failure() {
            return Err(e);
        }
        let guard = self.load_lock.clone().lock_owned().await;
        if let Some(plan) = self.plan.get() {
            return Ok(plan.clone());
        }
        // A build that failed while this request waited for the lock.
        if let Some(e) = self.failure() {
            return Err(e);
        }
        let me = self.clone();
        let built = tokio::task::spawn_blocking(move || {
            let _guard = guard;
            me.load_now()
        })
        .await;
        match built {
            Ok(Ok(plan)) => Ok(plan),
            Ok(Err(e)) => Err(self.failure().unwrap_or(RunError::LoadFailed(e))),
            Err(e) => Err(RunError::LoadInterrupted {
                model: self.name.as_str().into(),
                cause: e.to_string(),
            }),
        }
    }

    /// Runs one request's inputs through the model (loading it first if needed), within
    /// the request timeout.
    pub async fn infer(self: &Arc<Self>, inputs: Inputs) -> Result<Outputs, RunError> {
        let deadline = self
            .request_timeout
            .map(|limit| tokio::time::Instant::now() + limit);
        let work = async {
            let plan = self.plan().await?;
            let executor = self.executor.get_or_init(|| {
                let settings = self.settings.clone();
                match &self.observer {
                    Some(o) => Executor::start_observed(&self.name, plan, settings, o.clone()),
                    None => Executor::start(&self.name, plan, settings),
                }
            });
            executor.submit_by(inputs, deadline).await
        };
        match self.request_timeout {
            None => work.await,
            Some(limit) => tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
                Err(RunError::TimedOut {
                    model: self.name.as_str().into(),
                    limit,
                })
            }),
        }
    }

    /// The executor's call count, once it exists (tests and metrics).
    pub fn calls(&self) -> u64 {
        self.executor.get().map_or(0, Executor::calls)
    }

    /// What the model's runner has done, once it exists.
    pub fn activity(&self) -> Option<&crate::executor::Activity> {
        self.executor.get().map(Executor::activity)
    }

    /// Whether the model can serve: its last build did not fail. Nothing is read: the bytes
    /// it serves were read once, before the fork.
    pub fn health(&self) -> Result<(), String> {
        match lock(&self.failed).as_ref() {
            Some(message) => Err(message.clone()),
            None => Ok(()),
        }
    }
}

/// Locks a mutex that guards plain data: a panic elsewhere cannot leave it inconsistent.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The app's models by name. Built once, read-only afterwards: no lock on lookups.
#[derive(Default)]
pub struct Registry {
    models: Vec<Arc<Model>>,
    by_name: HashMap<String, usize>,
}

impl Registry {
    /// Adds a model; two models of one name are an error.
    pub fn add(&mut self, model: Model) -> Result<(), String> {
        if self.by_name.contains_key(&model.name) {
            return Err(format!("two models are named \"{}\"", model.name));
        }
        self.by_name.insert(model.name.clone(), self.models.len());
        self.models.push(Arc::new(model));
        Ok(())
    }

    /// The model of this name.
    pub fn get(&self, name: &str) -> Option<&Arc<Model>> {
        self.by_name.get(name).map(|&i| &self.models[i])
    }

    /// Every model, in the order they were added.
    pub fn models(&self) -> &[Arc<Model>] {
        &self.models
    }

    /// The names, for messages.
    pub fn names(&self) -> String {
        crate::metadata::quoted_list(self.models.iter().map(|m| m.name.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, TempDir};
    use tract_onnx::prelude::*;

    fn model(bytes: Vec<u8>) -> Arc<Model> {
        Arc::new(
            Model::open(
                "m".into(),
                Source::Bytes("test", bytes.into()),
                Settings::default(),
                None,
            )
            .unwrap(),
        )
    }

    fn x() -> Inputs {
        Inputs::new(tvec!(Tensor::zero::<f32>(&[1, 4]).unwrap()))
    }

    #[tokio::test]
    async fn the_server_s_observer_hears_the_model_s_calls() {
        use serve_runtime::events::{Activity, Call};
        struct Counting(Activity);
        impl Observer for Counting {
            fn call(&self, c: &Call) {
                self.0.call(c);
            }
        }
        let counting = Arc::new(Counting(Activity::default()));
        let m = Arc::new(
            Model::open(
                "m".into(),
                Source::Bytes("test", fixtures::iris_like().into()),
                Settings::default(),
                None,
            )
            .unwrap()
            .observed_by(counting.clone()),
        );
        assert!(m.infer(x()).await.is_ok());
        assert!(m.infer(x()).await.is_ok());
        let calls = counting.0.calls.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(calls, 2);
        assert_eq!(calls, m.calls(), "the same as the executor's own count");
    }

    #[tokio::test]
    async fn concurrent_first_requests_load_once() {
        let m = model(fixtures::iris_like());
        assert!(!m.loaded());
        let (a, b, c) = tokio::join!(m.infer(x()), m.infer(x()), m.infer(x()));
        assert!(a.is_ok() && b.is_ok() && c.is_ok());
        assert!(m.loaded());
        let plan = m.plan().await.unwrap();
        assert!(Arc::ptr_eq(&plan, &m.plan().await.unwrap()));
    }

    #[tokio::test]
    async fn a_failed_build_is_remembered_and_not_built_again() {
        let m = model(fixtures::unimplemented_op());
        assert!(m.health().is_ok(), "not loaded yet is ready");
        let inputs = || Inputs::new(tvec!(Tensor::zero::<f32>(&[1, 2]).unwrap()));
        // LoadFailed: logged once, where the build failed (requests do not log it again).
        let e = m.infer(inputs()).await.unwrap_err();
        assert!(
            matches!(&e, RunError::LoadFailed(m) if m.contains("FancyOp")),
            "{e:?}"
        );
        assert!(m.health().unwrap_err().contains("FancyOp"));
        let (a, b) = tokio::join!(m.infer(inputs()), m.infer(inputs()));
        for e in [a.unwrap_err(), b.unwrap_err()] {
            assert!(
                matches!(&e, RunError::LoadFailed(m) if m.contains("FancyOp")),
                "{e:?}"
            );
        }
        assert_eq!(m.builds(), 1, "remembered: requests do not build again");
        // Building explicitly (a reload proof, a preload) still tries.
        assert!(m.load_now().is_err());
        assert_eq!(m.builds(), 2);
        assert!(!m.loaded());
    }

    #[tokio::test]
    async fn the_bytes_read_before_the_fork_are_served_whatever_the_file_becomes() {
        let dir = TempDir::new("sealed");
        let path = dir.file("m.onnx", &fixtures::iris_like());
        let source = Source::read_file(path.clone()).unwrap();
        let m = Arc::new(Model::open("m".into(), source, Settings::default(), None).unwrap());
        // A broken file, then none: a respawned or lazily loading worker of this
        // generation still builds the bytes it was proven with.
        std::fs::write(&path, b"garbage, and longer than before").unwrap();
        assert!(m.health().is_ok());
        std::fs::remove_file(&path).unwrap();
        assert!(m.infer(x()).await.is_ok());
        assert!(m.health().is_ok());
        assert_eq!(m.builds(), 1);
    }

    #[test]
    fn load_now_works_without_a_runtime() {
        let m = model(fixtures::iris_like());
        m.load_now().unwrap();
        assert!(m.loaded());
    }

    // The batcher waits 10 s for company, the request 10 ms; paused time jumps as soon as
    // the runtime idles, so the request always runs past its timeout.
    #[tokio::test(start_paused = true)]
    async fn past_the_request_timeout_is_504() {
        let settings = Settings {
            batch_timeout: Duration::from_secs(10),
            ..Settings::default()
        };
        let m = Arc::new(
            Model::open(
                "m".into(),
                Source::Bytes("test", fixtures::iris_like().into()),
                settings,
                Some(Duration::from_millis(10)),
            )
            .unwrap(),
        );
        let e = m.infer(x()).await.unwrap_err();
        assert!(matches!(e, RunError::TimedOut { .. }), "{e:?}");
        assert!(e.to_string().contains("request timeout"), "{e}");
    }

    #[test]
    fn duplicate_names_are_refused() {
        let mut r = Registry::default();
        let open = || {
            Model::open(
                "iris".into(),
                Source::Bytes("test", fixtures::iris_like().into()),
                Settings::default(),
                None,
            )
            .unwrap()
        };
        r.add(open()).unwrap();
        assert!(r.add(open()).unwrap_err().contains("two models"));
        assert!(r.get("iris").is_some());
        assert!(r.get("nope").is_none());
    }
}
