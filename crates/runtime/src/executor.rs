//! One model's executor in one worker: a bounded queue, a runner task, and dynamic batching.
//!
//! Every inference of a model goes through its executor. A request puts a job (its
//! decoded input tensors and a reply channel) on a bounded queue and waits for the reply;
//! when the queue is full the request is answered 503 with `Retry-After` at once, so a
//! slow model sheds load instead of piling up requests (`--max-queue`).
//!
//! A single runner task per model takes jobs off the queue. When the model is free it takes the
//! first job and, if the model is batchable and merging pays, every job *already waiting* whose
//! rows fit in `max_batch_size` (with `batch_timeout` above zero it also waits that long for more),
//! concatenates their inputs along the batch dimension, makes one engine call on the plan's form
//! for any batch size, and answers each job with its own rows of the shared outputs. On a worker's
//! single-threaded runtime that is exactly Triton's dynamic
//! batcher with no added delay: requests that arrived while the model was busy ride
//! together on the next call.
//!
//! Whether merging pays is measured, not assumed: see `batching.rs`, the policy the
//! runner asks before each call and tells after it.
//!
//! Small models run inline on the runner (a tract call of 4-20 µs costs less than a
//! thread hop); a call whose expected duration exceeds `inline_below` (1 ms) runs on
//! tokio's blocking pool, so the worker's I/O and heartbeat keep going. A call whose cost
//! is not known yet runs on the blocking pool. A panic inside the engine is caught and answered
//! 500; the runner survives it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::batching::{Estimate, Way};
use crate::engine::{On, OutputSet, Plan, TensorList};
pub use crate::events::Activity;
use crate::events::{Call, Cancelled, Observer};
pub use crate::inputs::Inputs;
use crate::outputs::Outputs;
use crate::run_error::RunError;
use crate::tensor::{Tensor, TensorView};

/// How an executor batches and queues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The most rows one engine call takes; 1 disables batching. A single request with more
    /// rows still runs, alone.
    pub max_batch_size: usize,
    /// How long the runner waits for more requests once it has one; zero merges only the
    /// requests already waiting.
    pub batch_timeout: Duration,
    /// The most requests waiting for the model; past it, 503 with `Retry-After`.
    pub max_queue: usize,
    /// Calls whose average duration is below this run inline on the runner; longer ones on
    /// the blocking pool. `Duration::ZERO` always uses the pool, `Duration::MAX` never.
    pub inline_below: Duration,
    /// Whether the runner measures if rows sharing one call pays (merging requests, or one
    /// request of several rows in one call rather than row by row); when false, rows share
    /// a call whenever the model allows it, as before serve measured (tests use it to be
    /// deterministic).
    pub measure: bool,
    /// The first dimension of every input is one batch, whatever the file names it (the
    /// default: converters give each input's batch its own name, tf2onnx `unk__62`,
    /// `unk__64`...). False (manifest `batch = false`) plans the inputs as the file declares
    /// them, for a model whose inputs' first dimensions are truly independent; such a model
    /// is not batched.
    pub batch_dim: bool,
}

impl Settings {
    /// What the settings give every model (`--max-batch-size`, `--batch-timeout-us`,
    /// `--max-queue`), with the executor's own defaults; a manifest entry overrides some.
    pub fn from_values(values: &serve_settings::Values) -> Settings {
        Settings {
            max_batch_size: values.max_batch_size,
            batch_timeout: Duration::from_micros(values.batch_timeout_us),
            max_queue: values.max_queue,
            inline_below: Duration::from_millis(1),
            measure: true,
            batch_dim: true,
        }
    }
}

/// The table's defaults ([`Settings::from_values`] of the default values).
impl Default for Settings {
    fn default() -> Self {
        Settings::from_values(&serve_settings::Values::default())
    }
}

struct Job {
    inputs: Inputs,
    reply: oneshot::Sender<Result<Outputs, RunError>>,
    /// When it joined the queue.
    queued: tokio::time::Instant,
    /// When its requester stops waiting (`--request-timeout`), if ever: tells a timeout
    /// from a client that left.
    deadline: Option<tokio::time::Instant>,
}

/// The executor's own counters, and the server's observer when it has one.
struct Observers {
    activity: Arc<Activity>,
    server: Option<Arc<dyn Observer>>,
}

impl Observers {
    fn each(&self, f: impl Fn(&dyn Observer)) {
        f(&*self.activity);
        if let Some(o) = &self.server {
            f(&**o);
        }
    }
}

/// The handle requests use to reach a model's runner.
pub struct Executor {
    tx: mpsc::Sender<Job>,
    name: Arc<str>,
    max_queue: usize,
    observers: Arc<Observers>,
}

impl Executor {
    /// Starts the runner task on the current tokio runtime.
    pub fn start(name: &str, plan: Arc<dyn Plan>, settings: Settings) -> Executor {
        let estimate = Estimate::new(settings.measure);
        Self::start_with(name, plan, settings, estimate, None)
    }

    /// Starts the runner, telling `observer` what it does besides its own counters.
    pub fn start_observed(
        name: &str,
        plan: Arc<dyn Plan>,
        settings: Settings,
        observer: Arc<dyn Observer>,
    ) -> Executor {
        let estimate = Estimate::new(settings.measure);
        Self::start_with(name, plan, settings, estimate, Some(observer))
    }

    /// Starts the runner with what it knows of the model's costs.
    fn start_with(
        name: &str,
        plan: Arc<dyn Plan>,
        settings: Settings,
        estimate: Estimate,
        server: Option<Arc<dyn Observer>>,
    ) -> Executor {
        let (tx, rx) = mpsc::channel(settings.max_queue);
        let max_queue = settings.max_queue;
        let observers = Arc::new(Observers {
            activity: Arc::new(Activity::default()),
            server,
        });
        let runner = Runner {
            name: name.into(),
            plan,
            settings,
            rx,
            carry: None,
            estimate,
            observers: observers.clone(),
        };
        tokio::spawn(runner.run());
        Executor {
            tx,
            name: name.into(),
            max_queue,
            observers,
        }
    }

    /// How many engine calls the runner has made (fewer than requests when batching works).
    pub fn calls(&self) -> u64 {
        self.observers.activity.calls.load(Ordering::Relaxed)
    }

    /// What the runner has done.
    pub fn activity(&self) -> &Activity {
        &self.observers.activity
    }

    /// Queues the inputs and waits for their outputs.
    pub async fn submit(&self, inputs: Inputs) -> Result<Outputs, RunError> {
        self.submit_by(inputs, None).await
    }

    /// [`Executor::submit`] for a requester that stops waiting at `deadline`: dropped then,
    /// the request counts as timed out rather than gone.
    pub async fn submit_by(
        &self,
        inputs: Inputs,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Outputs, RunError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            inputs,
            reply,
            queued: tokio::time::Instant::now(),
            deadline,
        };
        match self.tx.try_send(job) {
            Ok(()) => self.observers.each(|o| o.queued()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.observers.each(|o| o.shed());
                return Err(RunError::QueueFull {
                    model: self.name.clone(),
                    max_queue: self.max_queue,
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Err(RunError::Stopped {
                    model: self.name.clone(),
                });
            }
        }
        // The runner answers every job it takes; only a runner that stopped drops one.
        answer.await.unwrap_or_else(|_| {
            Err(RunError::Stopped {
                model: self.name.clone(),
            })
        })
    }
}

struct Runner {
    name: Arc<str>,
    plan: Arc<dyn Plan>,
    settings: Settings,
    rx: mpsc::Receiver<Job>,
    /// A job taken off the queue that did not fit the previous batch.
    carry: Option<Job>,
    estimate: Estimate,
    observers: Arc<Observers>,
}

impl Runner {
    async fn run(mut self) {
        while let Some(first) = self.next_job().await {
            let mut batch = vec![first];
            self.gather(&mut batch).await;
            self.execute(batch).await;
        }
    }

    /// The next job whose requester still waits (one that left is skipped).
    async fn next_job(&mut self) -> Option<Job> {
        loop {
            let job = match self.carry.take() {
                Some(job) => job,
                None => self.rx.recv().await?,
            };
            if self.wanted(&job) {
                return Some(job);
            }
        }
    }

    /// Whether someone still waits for this job's answer. A request whose client
    /// disconnected, or which timed out, dropped its end: it never reaches the model, and
    /// is counted.
    fn wanted(&self, job: &Job) -> bool {
        if !job.reply.is_closed() {
            return true;
        }
        let now = tokio::time::Instant::now();
        let why = match job.deadline {
            Some(d) if now >= d => Cancelled::TimedOut,
            _ => Cancelled::ClientGone,
        };
        let waited = now.saturating_duration_since(job.queued);
        self.observers.each(|o| o.cancelled(why, waited));
        false
    }

    /// Adds to the batch the jobs that fit, as long as they are waiting (or arrive before
    /// the batch timeout), when merging is possible and pays.
    async fn gather(&mut self, batch: &mut Vec<Job>) {
        let max = self
            .estimate
            .decide(self.settings.max_batch_size)
            .merge_up_to;
        if !self.plan.batching().mergeable || max <= 1 {
            return;
        }
        let mut rows = batch[0].inputs.rows;
        let deadline = (!self.settings.batch_timeout.is_zero())
            .then(|| tokio::time::Instant::now() + self.settings.batch_timeout);
        while rows < max {
            let job = match self.rx.try_recv() {
                Ok(job) => job,
                Err(mpsc::error::TryRecvError::Empty) => match deadline {
                    Some(at) => match tokio::time::timeout_at(at, self.rx.recv()).await {
                        Ok(Some(job)) => job,
                        _ => break,
                    },
                    None => break,
                },
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            };
            if !self.wanted(&job) {
                continue;
            }
            if rows + job.inputs.rows > max || !batch[0].inputs.stacks_with(&job.inputs) {
                self.carry = Some(job);
                break;
            }
            rows += job.inputs.rows;
            batch.push(job);
        }
    }

    /// How a call of these rows runs, and on which of the plan's forms.
    fn way(&self, rows: usize) -> Result<(Way, On), RunError> {
        if rows == 1 {
            return Ok((Way::Single, On::OneRow));
        }
        let can = self.plan.batching();
        let split = can.row_by_row && rows > 0;
        match (can.any_batch, split) {
            (true, true) => Ok(
                match self
                    .estimate
                    .decide(self.settings.max_batch_size)
                    .several_rows
                {
                    Way::Rows => (Way::Rows, On::OneRow),
                    _ => (Way::Batched, On::AnyBatch),
                },
            ),
            (true, false) => Ok((Way::Batched, On::AnyBatch)),
            (false, true) => Ok((Way::Rows, On::OneRow)),
            (false, false) => Err(RunError::BadBatch(format!(
                "model {} runs one row per request ({}: it is planned with the batch pinned \
                 to 1); this request has {rows}",
                self.name,
                self.plan
                    .pinned()
                    .unwrap_or("its engine cannot plan it for any batch size")
            ))),
        }
    }

    async fn execute(&mut self, mut batch: Vec<Job>) {
        // Requests that left while the batch waited for company.
        batch.retain(|job| self.wanted(job));
        if batch.is_empty() {
            return;
        }
        let now = tokio::time::Instant::now();
        for job in &batch {
            let waited = now.saturating_duration_since(job.queued);
            self.observers.each(|o| o.started(waited));
        }
        let requests = batch.len();
        let counts: Vec<usize> = batch.iter().map(|j| j.inputs.rows).collect();
        let rows: usize = counts.iter().sum();
        let started = Instant::now();
        let mut called = false;
        let result = match self.way(rows) {
            Ok((way, on)) => {
                let inputs = if batch.len() == 1 {
                    Ok(std::mem::take(&mut batch[0].inputs.tensors))
                } else {
                    stack(&batch)
                };
                let stacking = started.elapsed();
                match inputs {
                    Ok(inputs) => {
                        called = true;
                        self.call(way, on, inputs, (requests, rows), stacking).await
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        if !called {
            // Started, yet refused before the model: observers hear that they ended too.
            let none = Call {
                requests,
                rows: 0,
                calls: 0,
                took: Duration::ZERO,
                ok: false,
            };
            self.observers.each(|o| o.call(&none));
        }
        let took = started.elapsed();
        match result {
            Ok(outputs) if batch.len() == 1 => {
                let job = batch.pop().expect("one job");
                let outputs = Outputs::whole(outputs).made_by(rows, took);
                let _ = job.reply.send(Ok(outputs));
            }
            Ok(outputs) => answer_rows(batch, &counts, outputs, took),
            Err(e) => {
                for job in batch {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// The engine's call(s), inline or on the blocking pool depending on their expected
    /// cost (unknown: the pool, so one huge request to a fast model still leaves the I/O
    /// thread alone); then the call is reported to the estimate.
    async fn call(
        &mut self,
        way: Way,
        on: On,
        inputs: TensorList,
        (requests, rows): (usize, usize),
        stacking: Duration,
    ) -> Result<Arc<dyn OutputSet>, RunError> {
        let inline = self.settings.inline_below == Duration::MAX
            || self
                .estimate
                .expected(way, rows)
                .is_some_and(|d| d < self.settings.inline_below);
        let (result, took) = if inline {
            run_way(&*self.plan, way, on, inputs, rows)
        } else {
            let plan = self.plan.clone();
            tokio::task::spawn_blocking(move || run_way(&*plan, way, on, inputs, rows))
                .await
                .unwrap_or_else(|e| {
                    let e = RunError::Inference(format!("inference failed: {e}"));
                    (Err(e), Duration::ZERO)
                })
        };
        let took = took + stacking;
        let call = Call {
            requests,
            rows,
            calls: if way == Way::Rows { rows } else { 1 },
            took,
            ok: result.is_ok(),
        };
        self.observers.each(|o| o.call(&call));
        if result.is_ok() {
            self.estimate.observe(way, rows, took);
        }
        result
    }
}

/// Runs a call the way chosen, on the plan's form chosen with it, timing it.
fn run_way(
    plan: &dyn Plan,
    way: Way,
    on: On,
    inputs: TensorList,
    rows: usize,
) -> (Result<Arc<dyn OutputSet>, RunError>, Duration) {
    let started = Instant::now();
    let result = match way {
        Way::Single | Way::Batched => run_once(plan, on, inputs),
        Way::Rows => run_rows(plan, inputs, rows),
    };
    (result, started.elapsed())
}

/// Runs each row alone and stacks the outputs.
fn run_rows(
    plan: &dyn Plan,
    inputs: TensorList,
    rows: usize,
) -> Result<Arc<dyn OutputSet>, RunError> {
    if let Some(t) = inputs.iter().find(|t| t.shape().first() != Some(&rows)) {
        return Err(RunError::Inference(format!(
            "splitting rows: an input of shape {:?} has not {rows} rows",
            t.shape()
        )));
    }
    let mut columns: Vec<Vec<Tensor>> = Vec::new();
    for r in 0..rows {
        let row = inputs.iter().map(|t| t.view().rows(r, r + 1)).collect();
        let outputs = run_once(plan, On::OneRow, row)?;
        if columns.is_empty() {
            columns = (0..outputs.len())
                .map(|_| Vec::with_capacity(rows))
                .collect();
        }
        for (i, column) in columns.iter_mut().enumerate() {
            column.push(outputs.get(i)?.to_tensor());
        }
    }
    let stacked = columns
        .iter()
        .map(|parts| {
            let views: Vec<TensorView<'_>> = parts.iter().map(Tensor::view).collect();
            Tensor::concat(&views).map_err(|e| RunError::Inference(format!("stacking rows: {e}")))
        })
        .collect::<Result<Vec<Tensor>, RunError>>()?;
    Ok(Arc::new(stacked))
}

/// Concatenates the jobs' inputs along the batch dimension.
fn stack(batch: &[Job]) -> Result<TensorList, RunError> {
    let n = batch[0].inputs.tensors.len();
    (0..n)
        .map(|i| {
            let parts: Vec<TensorView<'_>> =
                batch.iter().map(|j| j.inputs.tensors[i].view()).collect();
            Tensor::concat(&parts).map_err(|e| RunError::Inference(format!("batching inputs: {e}")))
        })
        .collect()
}

/// Gives each job its rows of a batched call's outputs.
fn answer_rows(batch: Vec<Job>, counts: &[usize], outputs: Arc<dyn OutputSet>, took: Duration) {
    let total: usize = counts.iter().sum();
    let bad = (0..outputs.len()).find_map(|i| match outputs.get(i) {
        Ok(t) if t.shape.first() == Some(&total) => None,
        Ok(t) => Some(RunError::Inference(format!(
            "a batched call of {total} rows gave an output of shape {:?}",
            t.shape
        ))),
        Err(e) => Some(e),
    });
    if let Some(e) = bad {
        for job in batch {
            let _ = job.reply.send(Err(e.clone()));
        }
        return;
    }
    let mut start = 0;
    for (job, rows) in batch.into_iter().zip(counts) {
        let mine = Outputs::rows(outputs.clone(), start..start + rows).made_by(total, took);
        let _ = job.reply.send(Ok(mine));
        start += rows;
    }
}

/// Runs one call of a plan, catching a panic inside the engine: it is answered as an
/// inference error, and the runner survives it.
pub fn run_once(
    plan: &dyn Plan,
    on: On,
    inputs: TensorList,
) -> Result<Arc<dyn OutputSet>, RunError> {
    catch_unwind(AssertUnwindSafe(|| plan.run(on, inputs))).unwrap_or_else(|p| {
        Err(RunError::Inference(format!(
            "inference panicked: {}",
            serve_app::panic_message(&*p)
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datatype::DataType;
    use crate::fixtures;
    use crate::metadata::ModelMeta;
    use crate::source::Source;
    use crate::tensor::Slice;
    use crate::tract::build;
    use smallvec::smallvec;

    fn plan(bytes: Vec<u8>) -> Arc<dyn Plan> {
        let meta = ModelMeta::from_onnx(&bytes).unwrap();
        Arc::new(build(&Source::Bytes("test", bytes.into()), &meta, true).unwrap())
    }

    fn rows(values: &[[f32; 4]]) -> Inputs {
        let data: Vec<f32> = values.iter().flatten().copied().collect();
        Inputs::new(smallvec![Tensor::new(&[values.len(), 4], data).unwrap()])
    }

    /// Output `i`'s elements, as floats.
    fn floats(out: &Outputs, i: usize) -> Vec<f32> {
        match out.view(i).unwrap().elements {
            Slice::F32(v) => v.to_vec(),
            other => panic!("not FP32: {other:?}"),
        }
    }

    fn first_row(out: &Outputs) -> Vec<f32> {
        floats(out, 0)
    }

    fn one(shape: &[usize], data: Vec<f32>) -> Inputs {
        Inputs::new(smallvec![Tensor::new(shape, data).unwrap()])
    }

    fn always_merge() -> Settings {
        Settings {
            measure: false,
            ..Settings::default()
        }
    }

    #[tokio::test]
    async fn waiting_requests_ride_one_call_and_get_their_own_rows() {
        let exec = Executor::start("iris", plan(fixtures::iris_like()), always_merge());
        let expected = {
            let a = exec.submit(rows(&[[1.0, 0.0, 0.0, 0.0]])).await.unwrap();
            let b = exec.submit(rows(&[[0.0, 0.0, 0.0, 1.0]; 2])).await.unwrap();
            (first_row(&a), first_row(&b))
        };
        // Submitted together: the runner finds both waiting and merges them.
        let (a, b) = tokio::join!(
            exec.submit(rows(&[[1.0, 0.0, 0.0, 0.0]])),
            exec.submit(rows(&[[0.0, 0.0, 0.0, 1.0]; 2]))
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(exec.calls(), 3, "the two concurrent requests made one call");
        assert_eq!(&*a.view(0).unwrap().shape, &[1, 3]);
        assert_eq!(&*b.view(0).unwrap().shape, &[2, 3]);
        assert_eq!((first_row(&a), first_row(&b)), expected);
    }

    // The batch waits 10 s for company; paused time runs it once every task idles.
    #[tokio::test(start_paused = true)]
    async fn requests_whose_clients_left_never_reach_the_model_and_are_counted() {
        let settings = Settings {
            batch_timeout: Duration::from_secs(10),
            ..always_merge()
        };
        let exec = Arc::new(Executor::start(
            "iris",
            plan(fixtures::iris_like()),
            settings,
        ));
        let submit = |row: [f32; 4]| {
            let exec = exec.clone();
            tokio::spawn(async move { exec.submit(rows(&[row])).await })
        };
        let first = submit([1.0, 0.0, 0.0, 0.0]);
        tokio::task::yield_now().await;
        let left: Vec<_> = (0..3).map(|_| submit([0.0, 1.0, 0.0, 0.0])).collect();
        let last = submit([0.0, 0.0, 0.0, 1.0]);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        // Three clients disconnect (hyper drops their request futures) while queued.
        for task in &left {
            task.abort();
        }
        assert!(first.await.unwrap().is_ok());
        assert!(last.await.unwrap().is_ok());
        let a = exec.activity();
        assert_eq!(a.cancelled.load(Ordering::Relaxed), 3);
        assert_eq!(
            a.rows.load(Ordering::Relaxed),
            2,
            "only the two still wanted ran"
        );
        assert_eq!(a.calls.load(Ordering::Relaxed), 1);
    }

    /// An observer that writes down what it is told.
    #[derive(Default)]
    struct Recorder(std::sync::Mutex<Vec<String>>);

    impl Observer for Recorder {
        fn queued(&self) {
            self.0.lock().unwrap().push("queued".into());
        }
        fn shed(&self) {
            self.0.lock().unwrap().push("shed".into());
        }
        fn started(&self, waited: Duration) {
            self.0
                .lock()
                .unwrap()
                .push(format!("started after {waited:?}"));
        }
        fn cancelled(&self, why: Cancelled, waited: Duration) {
            self.0
                .lock()
                .unwrap()
                .push(format!("{why:?} after {waited:?}"));
        }
        fn call(&self, c: &Call) {
            self.0.lock().unwrap().push(format!(
                "call: {} requests, {} rows, {} calls, ok {}",
                c.requests, c.rows, c.calls, c.ok
            ));
        }
    }

    // Paused time: the batch waits 10 s for company; one request times out after 1 s of it,
    // one client leaves.
    #[tokio::test(start_paused = true)]
    async fn the_observer_hears_every_step_of_every_request() {
        let settings = Settings {
            batch_timeout: Duration::from_secs(10),
            ..always_merge()
        };
        let recorder = Arc::new(Recorder::default());
        let exec = Arc::new(Executor::start_observed(
            "iris",
            plan(fixtures::iris_like()),
            settings,
            recorder.clone(),
        ));
        let submit = |row: [f32; 4], timeout: Option<Duration>| {
            let exec = exec.clone();
            tokio::spawn(async move {
                let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
                let work = exec.submit_by(rows(&[row]), deadline);
                match timeout {
                    Some(t) => tokio::time::timeout(t, work).await.ok(),
                    None => Some(work.await),
                }
            })
        };
        let first = submit([1.0, 0.0, 0.0, 0.0], None);
        tokio::task::yield_now().await;
        let gone = submit([0.0, 1.0, 0.0, 0.0], None);
        let timed_out = submit([0.0, 0.0, 1.0, 0.0], Some(Duration::from_secs(1)));
        let last = submit([0.0, 0.0, 0.0, 1.0], None);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        gone.abort();
        assert!(first.await.unwrap().unwrap().is_ok());
        assert!(last.await.unwrap().unwrap().is_ok());
        assert!(timed_out.await.unwrap().is_none());
        let events = recorder.0.lock().unwrap().clone();
        let count = |e: &str| events.iter().filter(|x| x.as_str() == e).count();
        assert_eq!(events.len(), 9, "{events:#?}");
        assert_eq!(count("queued"), 4, "{events:#?}");
        assert_eq!(count("ClientGone after 10s"), 1, "{events:#?}");
        assert_eq!(count("TimedOut after 10s"), 1, "{events:#?}");
        assert_eq!(count("started after 10s"), 2, "{events:#?}");
        assert_eq!(
            count("call: 2 requests, 2 rows, 1 calls, ok true"),
            1,
            "{events:#?}"
        );
        // The executor's own counters heard the same.
        let a = exec.activity();
        assert_eq!(a.cancelled.load(Ordering::Relaxed), 2);
        assert_eq!(
            (
                a.calls.load(Ordering::Relaxed),
                a.rows.load(Ordering::Relaxed)
            ),
            (1, 2)
        );
    }

    #[tokio::test]
    async fn inputs_with_differently_named_batches_merge_as_one_batch() {
        // tf2onnx's habit: every input's batch has its own name; tract's engine makes them one.
        let exec = Executor::start(
            "tf2onnx",
            plan(fixtures::separate_batch_names()),
            always_merge(),
        );
        let request = |v: f32, n: usize| {
            Inputs::new(
                (0..5)
                    .map(|_| Tensor::new(&[n, 1], vec![v; n]).unwrap())
                    .collect(),
            )
        };
        let (a, b, c) = tokio::join!(
            exec.submit(request(1.0, 1)),
            exec.submit(request(2.0, 8)),
            exec.submit(request(3.0, 1))
        );
        assert_eq!(exec.calls(), 1, "the three requests made one call");
        for (out, n, v) in [(a, 1, 1.0), (b, 8, 2.0), (c, 1, 3.0)] {
            let sum = out.unwrap();
            let view = sum.view(1).unwrap();
            assert_eq!(&*view.shape, &[n, 1]);
            assert_eq!(first_row(&sum).len(), 5 * n);
            let sums = floats(&sum, 1);
            assert!(sums.iter().all(|s| *s == 5.0 * v), "{sums:?}");
        }
    }

    /// An estimate that says merged calls do not pay and will not be tried again soon.
    fn merging_does_not_pay() -> Estimate {
        Estimate::not_paying_for_an_hour()
    }

    #[tokio::test]
    async fn requests_are_not_merged_when_merging_does_not_pay() {
        let exec = Executor::start_with(
            "iris",
            plan(fixtures::iris_like()),
            Settings::default(),
            merging_does_not_pay(),
            None,
        );
        let (a, b, c) = tokio::join!(
            exec.submit(rows(&[[1.0, 0.0, 0.0, 0.0]])),
            exec.submit(rows(&[[0.0, 1.0, 0.0, 0.0]])),
            exec.submit(rows(&[[0.0, 0.0, 1.0, 0.0]]))
        );
        assert!(a.is_ok() && b.is_ok() && c.is_ok());
        assert_eq!(exec.calls(), 3, "one call per request");
    }

    #[tokio::test]
    async fn a_request_of_several_rows_runs_row_by_row_when_merging_does_not_pay() {
        let x = [[1.0, 2.0, 3.0, 4.0], [0.5, 0.0, -1.0, 2.0], [0.0; 4]];
        let merged = Executor::start("iris", plan(fixtures::iris_like()), always_merge());
        let want = merged.submit(rows(&x)).await.unwrap();
        assert_eq!(merged.calls(), 1);
        let split = Executor::start_with(
            "iris",
            plan(fixtures::iris_like()),
            Settings::default(),
            merging_does_not_pay(),
            None,
        );
        let got = split.submit(rows(&x)).await.unwrap();
        assert_eq!(split.calls(), 3, "one call per row");
        let (w, g) = (want.view(0).unwrap(), got.view(0).unwrap());
        assert_eq!(&*g.shape, &[3, 3]);
        assert_eq!(w.elements, g.elements);
    }

    #[tokio::test]
    async fn a_model_pinned_to_one_row_answers_any_batch_row_by_row() {
        let exec = Executor::start(
            "pinned",
            plan(fixtures::shape_from_input(false)),
            Settings::default(),
        );
        let data: Vec<f32> = (0..18).map(|i| i as f32).collect();
        let out = exec.submit(one(&[3, 2, 3], data.clone())).await.unwrap();
        assert_eq!(exec.calls(), 3);
        let v = out.view(0).unwrap();
        assert_eq!(&*v.shape, &[3, 6]);
        assert_eq!(floats(&out, 0), data);
        // Concurrent requests are not merged: there is no plan for two rows.
        let row = |v: f32| one(&[1, 2, 3], vec![v; 6]);
        let (a, b) = tokio::join!(exec.submit(row(1.0)), exec.submit(row(2.0)));
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(exec.calls(), 5);
    }

    #[tokio::test]
    async fn a_pinned_model_whose_outputs_are_not_rows_refuses_other_batch_sizes() {
        let exec = Executor::start(
            "pinned",
            plan(fixtures::shape_from_input(true)),
            Settings::default(),
        );
        let e = exec
            .submit(one(&[2, 2, 3], vec![0.; 12]))
            .await
            .unwrap_err();
        let RunError::BadBatch(m) = &e else {
            panic!("{e:?}")
        };
        assert!(m.contains("one row per request"), "{e}");
        assert!(m.contains("Reshape"), "{e}");
        assert!(exec.submit(one(&[1, 2, 3], vec![0.; 6])).await.is_ok());
    }

    #[tokio::test]
    async fn a_full_queue_sheds_the_request() {
        let settings = Settings {
            max_queue: 1,
            ..Settings::default()
        };
        let recorder = Arc::new(Recorder::default());
        let exec = Executor::start_observed(
            "iris",
            plan(fixtures::iris_like()),
            settings,
            recorder.clone(),
        );
        // The runner has not run yet: the first job fills the queue.
        let first = exec.submit(rows(&[[0.0; 4]]));
        let second = exec.submit(rows(&[[0.0; 4]]));
        let (first, second) = tokio::join!(first, second);
        assert!(first.is_ok());
        let e = second.unwrap_err();
        assert!(
            matches!(e, RunError::QueueFull { max_queue: 1, .. }),
            "{e:?}"
        );
        let events = recorder.0.lock().unwrap().clone();
        assert_eq!(events[..2], ["queued", "shed"], "{events:#?}");
        assert_eq!(exec.activity().shed.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn inline_and_blocking_calls_agree() {
        for inline_below in [Duration::ZERO, Duration::MAX] {
            let settings = Settings {
                inline_below,
                ..Settings::default()
            };
            let exec = Executor::start("iris", plan(fixtures::iris_like()), settings);
            let out = exec.submit(rows(&[[1.0, 2.0, 3.0, 4.0]])).await.unwrap();
            // y = x·W + B with W[i][j] = (3i + j) / 10
            let want: Vec<f32> = (0..3)
                .map(|j| {
                    (0..4)
                        .map(|i| (i + 1) as f32 * (3 * i + j) as f32 / 10.0)
                        .sum::<f32>()
                        + [0.5, -0.5, 1.0][j]
                })
                .collect();
            let got = first_row(&out);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
            }
        }
    }

    #[tokio::test]
    async fn unbatchable_models_run_one_request_per_call() {
        let exec = Executor::start("sum", plan(fixtures::reduce_all()), Settings::default());
        let x = |v: f32| one(&[1, 2], vec![v, v]);
        let (a, b) = tokio::join!(exec.submit(x(1.0)), exec.submit(x(2.0)));
        let sum = |o: Outputs| floats(&o, 0);
        assert_eq!((sum(a.unwrap()), sum(b.unwrap())), (vec![2.0], vec![4.0]));
        assert_eq!(exec.calls(), 2);
    }

    #[tokio::test]
    async fn different_row_shapes_are_not_merged() {
        let exec = Executor::start("var", plan(fixtures::variable_row()), Settings::default());
        let x = |n: usize| Inputs::new(smallvec![Tensor::zeros(DataType::F32, &[1, n])]);
        let (a, b) = tokio::join!(exec.submit(x(2)), exec.submit(x(3)));
        assert_eq!(&*a.unwrap().view(0).unwrap().shape, &[1, 2]);
        assert_eq!(&*b.unwrap().view(0).unwrap().shape, &[1, 3]);
    }

    #[tokio::test]
    async fn tdim_outputs_become_int64() {
        let exec = Executor::start("cast", plan(fixtures::cast_to_int64()), Settings::default());
        let out = exec.submit(one(&[1, 2], vec![1.0, 2.9])).await.unwrap();
        let v = out.view(0).unwrap();
        assert_eq!(v.datatype, DataType::I64);
        assert_eq!(v.elements, Slice::I64(&[1, 2]));
    }

    #[tokio::test]
    async fn inference_errors_are_reported_and_the_runner_survives() {
        let exec = Executor::start("gather", plan(fixtures::gather()), Settings::default());
        let index = |i: i64| Inputs::new(smallvec![Tensor::new(&[1], vec![i]).unwrap()]);
        let bad = exec.submit(index(7)).await;
        let e = bad.unwrap_err();
        assert!(matches!(e, RunError::Inference(_)), "{e:?}");
        let good = exec.submit(index(2)).await.unwrap();
        assert_eq!(floats(&good, 0), [30.0]);
    }
}
