//! One model in one worker: its metadata, its plan built lazily once, its executor.
//!
//! A [`Model`] is opened when the app is (cheaply: its metadata only). Its plan is built on
//! the first inference of the worker, by one request while concurrent first requests wait
//! for it (an async gate taken only while nothing is loaded). The build runs on the blocking
//! pool and holds the gate until it ends, so a request that gives up (timeout) neither
//! cancels it nor lets a second build start.
//!
//! The lifecycle is two parts: the hot path is one cell, the executor (which holds the
//! plan), read with one atomic load once set; everything else is the cold state behind a
//! plain mutex, touched only until the executor exists and by readiness: the plan once built
//! (in this worker, or in the master with `--preload`), the last build's failure, and how
//! many builds were tried.
//!
//! A failed build is remembered, logged once, and answered without building again, as Triton
//! answers a model that failed to load; the model then reports not ready with that cause. Its
//! bytes cannot change (they were read before the fork, see [`Source`]), so neither can the
//! verdict: a build fails only if the proof that let this generation start was wrong, which
//! the master's proof makes a bug, not a state. A model not loaded yet is ready: it can
//! serve, the first request just pays the load.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::engine::{BuildError, Engine, Plan};
use crate::events::Observer;
use crate::executor::{Activity, Executor, Inputs, Settings};
use crate::metadata::{ModelMeta, OpenError};
use crate::outputs::Outputs;
use crate::run_error::RunError;
pub use crate::source::Source;

/// The version a model answers as when nothing names one.
pub const DEFAULT_VERSION: &str = "1";

/// One model, in one worker.
pub struct Model {
    /// The name requests use.
    pub name: String,
    /// Where its bytes are.
    pub source: Source,
    /// Its interface, read without building.
    pub meta: ModelMeta,
    /// How its executor batches and queues.
    pub settings: Settings,
    /// `--request-timeout`: past it the request is answered [`RunError::TimedOut`].
    pub request_timeout: Option<Duration>,
    /// The version it answers as (`model_version`, `/versions/V`).
    pub version: String,
    /// What builds and runs it.
    engine: Arc<dyn Engine>,
    /// Told what the executor does (a server's metrics), besides its own counters.
    observer: Option<Arc<dyn Observer>>,
    /// The hot path: the executor, once this worker has started it.
    serving: OnceLock<Executor>,
    /// The rest of the lifecycle.
    cold: Mutex<Cold>,
    /// Held while a request builds the plan, so that the others wait for it.
    gate: Arc<tokio::sync::Mutex<()>>,
}

/// What only the first requests and readiness look at.
#[derive(Default)]
struct Cold {
    /// The plan, once built.
    plan: Option<Arc<dyn Plan>>,
    /// The last build's failure: what requests and readiness answer.
    failed: Option<String>,
    /// Builds tried (tests and logs).
    builds: u64,
}

impl Model {
    /// Reads the model's metadata (the cheap check) and prepares its lazy plan, which
    /// `engine` builds when first asked.
    pub fn open(
        name: String,
        source: Source,
        settings: Settings,
        request_timeout: Option<Duration>,
        engine: Arc<dyn Engine>,
    ) -> Result<Model, OpenError> {
        let meta = source
            .read_meta()
            .map_err(|e| e.context(source.display()))?;
        Ok(Model {
            name,
            source,
            meta,
            settings,
            request_timeout,
            version: DEFAULT_VERSION.into(),
            engine,
            observer: None,
            serving: OnceLock::new(),
            cold: Mutex::new(Cold::default()),
            gate: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// The model answering as this version (a manifest's `version`).
    pub fn with_version(mut self, version: String) -> Model {
        self.version = version;
        self
    }

    /// The engine that builds and runs it.
    pub fn engine(&self) -> &dyn Engine {
        &*self.engine
    }

    /// The model telling `observer` what its executor does (a server's metrics).
    pub fn observed_by(mut self, observer: Arc<dyn Observer>) -> Model {
        self.observer = Some(observer);
        self
    }

    fn cold(&self) -> std::sync::MutexGuard<'_, Cold> {
        // Plain data: a panic elsewhere cannot leave it inconsistent.
        self.cold.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True once this worker (or the master before the fork) has built the plan.
    pub fn loaded(&self) -> bool {
        self.serving.get().is_some() || self.cold().plan.is_some()
    }

    /// Builds the plan now, on this thread, if it is not built yet (preload, reload proof,
    /// and the lazy path's blocking task). A failure is logged, remembered for requests
    /// (see [`Model::plan`]) and returned; calling this again builds again.
    pub fn load_now(&self) -> Result<Arc<dyn Plan>, BuildError> {
        if let Some(plan) = &self.cold().plan {
            return Ok(plan.clone());
        }
        let started = Instant::now();
        self.cold().builds += 1;
        // An engine may panic on a model it half understands; that is a build failure too,
        // and must not take down the master that preloads or proves a reload.
        let engine = self.engine.name();
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.engine
                .build(&self.source, &self.meta, self.settings.batch_dim)
        }))
        .unwrap_or_else(|p| {
            Err(BuildError::new(format!(
                "{engine} panicked: {}",
                serve_app::panic_message(&*p)
            )))
        });
        match built {
            Ok(plan) => {
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                if let Some(why) = plan.pinned() {
                    tracing::warn!(
                        "model {}: {engine} cannot plan it for any batch size ({why}); it is \
                         planned with the batch pinned to 1: no batching, and requests of \
                         several rows run row by row",
                        self.name
                    );
                }
                if let Some(o) = &self.observer {
                    o.loaded(started.elapsed());
                }
                let plan: Arc<dyn Plan> = Arc::from(plan);
                let mut cold = self.cold();
                cold.plan = Some(plan.clone());
                cold.failed = None;
                if self.version == DEFAULT_VERSION {
                    tracing::info!("model {} loaded in {ms:.1} ms", self.name);
                } else {
                    tracing::info!(
                        "model {} version {} loaded in {ms:.1} ms",
                        self.name,
                        self.version
                    );
                }
                Ok(plan)
            }
            Err(e) => {
                let message = format!(
                    "model {} ({}) cannot be loaded: {e}",
                    self.name,
                    self.source.display(),
                );
                tracing::error!("{message}");
                self.cold().failed = Some(message.clone());
                Err(e.with_message(message))
            }
        }
    }

    /// How many times this worker has tried to build the model (tests and logs).
    pub fn builds(&self) -> u64 {
        self.cold().builds
    }

    /// The remembered failure, as requests get it (logged already).
    fn failure(&self) -> Option<RunError> {
        self.cold().failed.clone().map(RunError::LoadFailed)
    }

    /// The plan, built by the first caller while the others wait. A failed build is
    /// answered from memory; the failure was logged once, when it happened.
    pub async fn plan(self: &Arc<Self>) -> Result<Arc<dyn Plan>, RunError> {
        let known = |m: &Model| -> Option<Result<Arc<dyn Plan>, RunError>> {
            let cold = m.cold();
            match (&cold.plan, &cold.failed) {
                (Some(plan), _) => Some(Ok(plan.clone())),
                (None, Some(e)) => Some(Err(RunError::LoadFailed(e.clone()))),
                (None, None) => None,
            }
        };
        if let Some(known) = known(self) {
            return known;
        }
        let guard = self.gate.clone().lock_owned().await;
        // Built, or failed, while this request waited for the gate.
        if let Some(known) = known(self) {
            return known;
        }
        let me = self.clone();
        let built = tokio::task::spawn_blocking(move || {
            let _guard = guard;
            me.load_now()
        })
        .await;
        match built {
            Ok(Ok(plan)) => Ok(plan),
            Ok(Err(e)) => Err(self
                .failure()
                .unwrap_or(RunError::LoadFailed(e.message().to_owned()))),
            Err(e) => Err(RunError::LoadInterrupted {
                model: self.name.as_str().into(),
                cause: e.to_string(),
            }),
        }
    }

    /// The executor, started on the first request of this worker (after the plan).
    async fn executor(self: &Arc<Self>) -> Result<&Executor, RunError> {
        if let Some(executor) = self.serving.get() {
            return Ok(executor);
        }
        let plan = self.plan().await?;
        Ok(self.serving.get_or_init(|| {
            let settings = self.settings.clone();
            match &self.observer {
                Some(o) => Executor::start_observed(&self.name, plan, settings, o.clone()),
                None => Executor::start(&self.name, plan, settings),
            }
        }))
    }

    /// Runs one request's inputs through the model (loading it first if needed), within
    /// the request timeout.
    pub async fn infer(self: &Arc<Self>, inputs: Inputs) -> Result<Outputs, RunError> {
        self.infer_within(inputs, None).await
    }

    /// [`Model::infer`] within `limit` as well, the client's deadline (gRPC's
    /// `grpc-timeout`): the sooner of it and the request timeout ends the request, and a
    /// request still queued then never reaches the model.
    pub async fn infer_within(
        self: &Arc<Self>,
        inputs: Inputs,
        limit: Option<Duration>,
    ) -> Result<Outputs, RunError> {
        let client = limit.is_some_and(|c| self.request_timeout.is_none_or(|r| c < r));
        let limit = match (self.request_timeout, limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let deadline = limit.map(|limit| tokio::time::Instant::now() + limit);
        let work = async { self.executor().await?.submit_by(inputs, deadline).await };
        match limit {
            None => work.await,
            Some(limit) => tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
                Err(RunError::TimedOut {
                    model: self.name.as_str().into(),
                    limit,
                    client,
                })
            }),
        }
    }

    /// The executor's call count, once it exists (tests).
    pub fn calls(&self) -> u64 {
        self.serving.get().map_or(0, Executor::calls)
    }

    /// What the model's executor has done, once it exists.
    pub fn activity(&self) -> Option<&Activity> {
        self.serving.get().map(Executor::activity)
    }

    /// Whether the model can serve: its last build did not fail. Nothing is read: the bytes
    /// it serves were read once, before the fork.
    pub fn health(&self) -> Result<(), String> {
        match &self.cold().failed {
            Some(message) => Err(message.clone()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datatype::DataType;
    use crate::fixtures::{self, TempDir};
    use crate::tensor::Tensor;
    use smallvec::smallvec;

    fn model(bytes: Vec<u8>) -> Arc<Model> {
        opened(Source::Bytes("test", bytes.into()))
    }

    /// A model of these bytes on tract, default settings.
    fn opened(source: Source) -> Arc<Model> {
        let tract = Arc::new(crate::tract::Tract);
        Arc::new(Model::open("m".into(), source, Settings::default(), None, tract).unwrap())
    }

    fn x() -> Inputs {
        Inputs::new(smallvec![Tensor::zeros(DataType::F32, &[1, 4])])
    }

    #[tokio::test]
    async fn the_server_s_observer_hears_the_model_s_calls() {
        use crate::events::{Activity, Call};
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
                Arc::new(crate::tract::Tract),
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
        let inputs = || Inputs::new(smallvec![Tensor::zeros(DataType::F32, &[1, 2])]);
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
        let m = opened(source);
        // A broken file, then none: a respawned or lazily loading worker of this
        // generation still builds the bytes it was proven with.
        std::fs::write(&path, b"garbage, and longer than before").unwrap();
        assert!(m.health().is_ok());
        std::fs::remove_file(&path).unwrap();
        assert!(m.infer(x()).await.is_ok());
        assert!(m.health().is_ok());
        assert_eq!(m.builds(), 1);
    }

    #[tokio::test]
    async fn weights_in_an_external_data_file_are_found_beside_the_model() {
        let dir = TempDir::new("external");
        let path = fixtures::iris_like_external(&dir);
        let source = Source::read_file(path).unwrap();
        let external = opened(source);
        let inline = model(fixtures::iris_like());
        let row = || {
            Inputs::new(smallvec![
                Tensor::new(&[1, 4], vec![1f32, 2., 3., 4.]).unwrap()
            ])
        };
        let (a, b) = (
            external.infer(row()).await.unwrap(),
            inline.infer(row()).await.unwrap(),
        );
        assert_eq!(a.view(0).unwrap().elements, b.view(0).unwrap().elements);
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
                Arc::new(crate::tract::Tract),
            )
            .unwrap(),
        );
        let e = m.infer(x()).await.unwrap_err();
        assert!(matches!(e, RunError::TimedOut { .. }), "{e:?}");
        assert!(e.to_string().contains("request timeout"), "{e}");
    }
}
