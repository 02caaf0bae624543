//! The models of an app, each loaded lazily, once, and checked for readiness.
//!
//! A [`Model`] is built when the app is (cheaply: its metadata only). Its plan is built on
//! the first inference of the worker, by one request while concurrent first requests wait
//! for it (an async lock taken only while nothing is loaded); afterwards reaching the plan
//! is one atomic load. The build runs on the blocking pool and holds the lock until it
//! ends, so a request that gives up (timeout) neither cancels it nor lets a second build
//! start. A failed build is not cached: the next request tries again, and meanwhile the
//! model reports not ready with the cause.
//!
//! Readiness also watches the file: a model file that disappears or stops parsing after the
//! start makes the model (and the server) not ready. A model not loaded yet is ready: it
//! can serve, the first request just pays the load.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::error::ApiError;
use crate::executor::{Executor, Inputs, Settings};
use crate::loader::{self, Plan, Source, io_cause};
use crate::metadata::ModelMeta;
use crate::outputs::Outputs;
use crate::records::RecordSpec;

/// The file's size and modification time, to notice a change without reading it.
type Stamp = (u64, Option<SystemTime>);

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
    plan: OnceLock<Arc<Plan>>,
    load_lock: Arc<tokio::sync::Mutex<()>>,
    /// The last build's failure, and the file's stamp then (a changed file is worth a retry).
    last_error: Mutex<Option<(String, Option<Stamp>)>>,
    stamp: Mutex<Option<Stamp>>,
    executor: OnceLock<Executor>,
}

impl Model {
    /// Reads the model's metadata (the cheap check) and prepares its lazy plan.
    pub fn open(
        name: String,
        source: Source,
        settings: Settings,
        request_timeout: Option<Duration>,
    ) -> Result<Model, String> {
        let stamp = source.path().and_then(|p| file_stamp(p).ok());
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
            plan: OnceLock::new(),
            load_lock: Arc::new(tokio::sync::Mutex::new(())),
            last_error: Mutex::new(None),
            stamp: Mutex::new(stamp),
            executor: OnceLock::new(),
        })
    }

    /// True once this worker has built the plan.
    pub fn loaded(&self) -> bool {
        self.plan.get().is_some()
    }

    /// Builds the plan now, on this thread, if it is not built yet (preload, reload proof,
    /// and the lazy path's blocking task).
    pub fn load_now(&self) -> Result<Arc<Plan>, String> {
        if let Some(plan) = self.plan.get() {
            return Ok(plan.clone());
        }
        let started = Instant::now();
        // tract may panic on a model it half understands; that is a build failure too, and
        // must not take down the master that preloads or proves a reload.
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            loader::build(&self.source, &self.meta)
        }))
        .unwrap_or_else(|p| {
            Err(format!(
                "tract panicked: {}",
                crate::executor::panic_text(&p)
            ))
        });
        match built {
            Ok(plan) => {
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                let _ = self.plan.set(Arc::new(plan));
                *lock(&self.last_error) = None;
                tracing::info!("model {} loaded in {ms:.1} ms", self.name);
                Ok(self.plan.get().expect("just set").clone())
            }
            Err(e) => {
                let msg = format!(
                    "model {} ({}) cannot be loaded: {e}",
                    self.name,
                    self.source.display()
                );
                tracing::error!("{msg}");
                let stamp = self.source.path().and_then(|p| file_stamp(p).ok());
                *lock(&self.last_error) = Some((msg.clone(), stamp));
                Err(msg)
            }
        }
    }

    /// The plan, built by the first caller while the others wait.
    pub async fn plan(self: &Arc<Self>) -> Result<Arc<Plan>, ApiError> {
        if let Some(plan) = self.plan.get() {
            return Ok(plan.clone());
        }
        let guard = self.load_lock.clone().lock_owned().await;
        if let Some(plan) = self.plan.get() {
            return Ok(plan.clone());
        }
        let me = self.clone();
        let built = tokio::task::spawn_blocking(move || {
            let _guard = guard;
            me.load_now()
        })
        .await;
        match built {
            Ok(Ok(plan)) => Ok(plan),
            Ok(Err(e)) => Err(ApiError::unavailable(e)),
            Err(e) => Err(ApiError::unavailable(format!(
                "model {} cannot be loaded: {e}",
                self.name
            ))),
        }
    }

    /// Runs one request's inputs through the model (loading it first if needed), within
    /// the request timeout.
    pub async fn infer(self: &Arc<Self>, inputs: Inputs) -> Result<Outputs, ApiError> {
        let work = async {
            let plan = self.plan().await?;
            let executor = self
                .executor
                .get_or_init(|| Executor::start(&self.name, plan, self.settings.clone()));
            executor.submit(inputs).await
        };
        match self.request_timeout {
            None => work.await,
            Some(limit) => tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
                Err(ApiError::timeout(format!(
                    "model {}: no answer within the request timeout ({limit:?})",
                    self.name
                )))
            }),
        }
    }

    /// The executor's call count, once it exists (tests and metrics).
    pub fn calls(&self) -> u64 {
        self.executor.get().map_or(0, Executor::calls)
    }

    /// Whether the model can serve: its last build did not fail, and its file is still
    /// there and still parses (parsed again, off the I/O thread, only when it changed).
    /// A build failure counts until the file changes: then the next request builds again.
    pub async fn health(self: &Arc<Self>) -> Result<(), String> {
        let path = self.source.path();
        let stamp = path.map(file_stamp).transpose();
        {
            let mut failed = lock(&self.last_error);
            if let Some((e, at)) = failed.as_ref() {
                let changed = matches!(&stamp, Ok(Some(now)) if Some(now) != at.as_ref());
                if !changed {
                    return Err(e.clone());
                }
                *failed = None;
            }
        }
        let Some(path) = path else {
            return Ok(());
        };
        let stamp = stamp
            .map_err(|e| format!("model {}: {}: {}", self.name, path.display(), io_cause(&e)))?
            .expect("a file source has a stamp");
        if *lock(&self.stamp) == Some(stamp) {
            return Ok(());
        }
        let me = self.clone();
        let parsed = tokio::task::spawn_blocking(move || me.source.read_meta())
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        match parsed {
            Ok(_) => {
                *lock(&self.stamp) = Some(stamp);
                Ok(())
            }
            Err(e) => Err(format!("model {}: {}: {e}", self.name, path.display())),
        }
    }
}

fn file_stamp(path: &std::path::Path) -> std::io::Result<Stamp> {
    let md = std::fs::metadata(path)?;
    Ok((md.len(), md.modified().ok()))
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
    use crate::fixtures;
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
    async fn a_failed_build_is_503_and_retried() {
        let m = model(fixtures::unimplemented_op());
        assert!(m.health().await.is_ok(), "not loaded yet is ready");
        let inputs = Inputs::new(tvec!(Tensor::zero::<f32>(&[1, 2]).unwrap()));
        let e = m.infer(inputs).await.unwrap_err();
        assert_eq!(e.status(), 503);
        assert!(e.message().contains("FancyOp"), "{e}");
        assert!(m.health().await.unwrap_err().contains("FancyOp"));
        // Not cached: the next request builds again (and fails again).
        assert!(m.load_now().is_err());
        assert!(!m.loaded());
    }

    #[test]
    fn load_now_works_without_a_runtime() {
        let m = model(fixtures::iris_like());
        m.load_now().unwrap();
        assert!(m.loaded());
    }

    #[tokio::test]
    async fn a_file_that_disappears_or_breaks_is_not_ready() {
        let dir = std::env::temp_dir().join(format!("serve-model-health-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.onnx");
        std::fs::write(&path, fixtures::iris_like()).unwrap();
        let m = Arc::new(
            Model::open(
                "m".into(),
                Source::File(path.clone()),
                Settings::default(),
                None,
            )
            .unwrap(),
        );
        assert!(m.health().await.is_ok());
        std::fs::write(&path, b"garbage, and longer than before").unwrap();
        let e = m.health().await.unwrap_err();
        assert!(e.contains("not an ONNX model"), "{e}");
        std::fs::remove_file(&path).unwrap();
        let e = m.health().await.unwrap_err();
        assert!(e.contains("no such file"), "{e}");
        std::fs::write(&path, fixtures::iris_like()).unwrap();
        assert!(m.health().await.is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
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
        assert_eq!(e.status(), 504);
        assert!(e.message().contains("request timeout"), "{e}");
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
