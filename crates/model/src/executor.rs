//! One model's executor in one worker: a bounded queue, a runner task, and dynamic batching.
//!
//! Every inference of a model goes through its executor. A request puts a job (its
//! decoded input tensors and a reply channel) on a bounded queue and waits for the reply;
//! when the queue is full the request is answered 503 with `Retry-After` at once, so a
//! slow model sheds load instead of piling up requests (`--max-queue`).
//!
//! A single runner task per model takes jobs off the queue. When the model is free it takes
//! the first job and, if the model is batchable, every job *already waiting* whose rows fit
//! in `max_batch_size` (with `batch_timeout` above zero it also waits that long for more),
//! concatenates their inputs along the batch dimension, makes one tract call, and answers
//! each job with its own rows of the shared outputs. On a worker's single-threaded runtime
//! that is exactly Triton's dynamic batcher with no added delay: requests that arrived
//! while the model was busy ride together on the next call.
//!
//! Small models run inline on the runner (a tract call of 4-20 µs costs less than a
//! thread hop); a model whose measured average call exceeds `inline_below` (1 ms) runs on
//! tokio's blocking pool, so the worker's I/O and heartbeat keep going. The first call of
//! a model runs on the blocking pool, since its cost is not known yet. A panic inside tract
//! is caught and answered 500; the runner survives it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tract_onnx::prelude::*;

use crate::error::ApiError;
use crate::loader::{Plan, chain};
use crate::outputs::Outputs;

/// How an executor batches and queues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The most rows one tract call takes; 1 disables batching. A single request with more
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
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_batch_size: 64,
            batch_timeout: Duration::ZERO,
            max_queue: 1024,
            inline_below: Duration::from_millis(1),
        }
    }
}

/// A request's inputs, in the model's input order.
#[derive(Debug)]
pub struct Inputs {
    /// One tensor per model input.
    pub tensors: TVec<Tensor>,
    /// The batch size: the inputs' shared first dimension.
    pub rows: usize,
}

impl Inputs {
    /// Inputs whose batch size is the first input's first dimension.
    pub fn new(tensors: TVec<Tensor>) -> Inputs {
        let rows = tensors
            .first()
            .and_then(|t| t.shape().first().copied())
            .unwrap_or(1);
        Inputs { tensors, rows }
    }

    /// True when both can be concatenated along the first dimension: same types and the
    /// same dimensions after the first.
    fn stacks_with(&self, other: &Inputs) -> bool {
        self.tensors.len() == other.tensors.len()
            && self.tensors.iter().zip(&other.tensors).all(|(a, b)| {
                a.datum_type() == b.datum_type()
                    && a.rank() >= 1
                    && a.rank() == b.rank()
                    && a.shape()[1..] == b.shape()[1..]
            })
    }
}

struct Job {
    inputs: Inputs,
    reply: oneshot::Sender<Result<Outputs, ApiError>>,
}

/// The handle requests use to reach a model's runner.
pub struct Executor {
    tx: mpsc::Sender<Job>,
    name: Arc<str>,
    max_queue: usize,
    calls: Arc<AtomicU64>,
}

impl Executor {
    /// Starts the runner task on the current tokio runtime.
    pub fn start(name: &str, plan: Arc<Plan>, settings: Settings) -> Executor {
        let (tx, rx) = mpsc::channel(settings.max_queue.max(1));
        let max_queue = settings.max_queue.max(1);
        let calls = Arc::new(AtomicU64::new(0));
        let runner = Runner {
            plan,
            settings,
            rx,
            carry: None,
            average: None,
            calls: calls.clone(),
        };
        tokio::spawn(runner.run());
        Executor {
            tx,
            name: name.into(),
            max_queue,
            calls,
        }
    }

    /// How many tract calls the runner has made (fewer than requests when batching works).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Queues the inputs and waits for their outputs.
    pub async fn submit(&self, inputs: Inputs) -> Result<Outputs, ApiError> {
        let (reply, answer) = oneshot::channel();
        match self.tx.try_send(Job { inputs, reply }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return Err(ApiError::overloaded(format!(
                    "model {}: {} requests are already waiting (--max-queue); retry later",
                    self.name, self.max_queue
                )));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Err(ApiError::unavailable(format!(
                    "model {}: its executor has stopped",
                    self.name
                )));
            }
        }
        answer.await.unwrap_or_else(|_| {
            Err(ApiError::internal(format!(
                "model {}: the executor dropped the request",
                self.name
            )))
        })
    }
}

struct Runner {
    plan: Arc<Plan>,
    settings: Settings,
    rx: mpsc::Receiver<Job>,
    /// A job taken off the queue that did not fit the previous batch.
    carry: Option<Job>,
    /// The moving averages of a call's duration and rows; `None` before the first call.
    average: Option<(Duration, f64)>,
    calls: Arc<AtomicU64>,
}

impl Runner {
    async fn run(mut self) {
        while let Some(first) = self.next_job().await {
            let mut batch = vec![first];
            self.gather(&mut batch).await;
            self.execute(batch).await;
        }
    }

    /// The next job whose requester still waits (a timed-out request is skipped).
    async fn next_job(&mut self) -> Option<Job> {
        loop {
            let job = match self.carry.take() {
                Some(job) => job,
                None => self.rx.recv().await?,
            };
            if !job.reply.is_closed() {
                return Some(job);
            }
        }
    }

    /// Adds to the batch the jobs that fit, as long as they are waiting (or arrive before
    /// the batch timeout).
    async fn gather(&mut self, batch: &mut Vec<Job>) {
        let max = self.settings.max_batch_size;
        if !self.plan.batchable || max <= 1 {
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
            if job.reply.is_closed() {
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

    async fn execute(&mut self, mut batch: Vec<Job>) {
        let counts: Vec<usize> = batch.iter().map(|j| j.inputs.rows).collect();
        let inputs = if batch.len() == 1 {
            Ok(std::mem::take(&mut batch[0].inputs.tensors))
        } else {
            stack(&batch)
        };
        let result = match inputs {
            Ok(inputs) => self.call(inputs, counts.iter().sum()).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(outputs) if batch.len() == 1 => {
                let job = batch.pop().expect("one job");
                let _ = job.reply.send(Ok(Outputs::whole(Arc::new(outputs))));
            }
            Ok(outputs) => answer_rows(batch, &counts, outputs),
            Err(e) => {
                for job in batch {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// One tract call, inline or on the blocking pool depending on its expected cost: the
    /// average call scaled by how many more rows than average this one has (so one huge
    /// request to a fast model still leaves the I/O thread alone).
    async fn call(&mut self, inputs: TVec<Tensor>, rows: usize) -> Result<Vec<Tensor>, ApiError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let inline = match self.average {
            _ if self.settings.inline_below == Duration::MAX => true,
            Some((time, avg_rows)) => {
                let scale = (rows as f64 / avg_rows.max(1.0)).max(1.0);
                time.mul_f64(scale) < self.settings.inline_below
            }
            None => false,
        };
        let result = if inline {
            run_plan(&self.plan, inputs)
        } else {
            let plan = self.plan.clone();
            tokio::task::spawn_blocking(move || run_plan(&plan, inputs))
                .await
                .unwrap_or_else(|e| Err(ApiError::internal(format!("inference failed: {e}"))))
        };
        let took = started.elapsed();
        // Exponential moving averages: a few slow calls move them, one does not.
        self.average = Some(match self.average {
            None => (took, rows as f64),
            Some((time, avg_rows)) => ((time * 7 + took) / 8, (avg_rows * 7.0 + rows as f64) / 8.0),
        });
        result
    }
}

/// Concatenates the jobs' inputs along the batch dimension.
fn stack(batch: &[Job]) -> Result<TVec<Tensor>, ApiError> {
    let n = batch[0].inputs.tensors.len();
    (0..n)
        .map(|i| {
            let parts: Vec<&Tensor> = batch.iter().map(|j| &j.inputs.tensors[i]).collect();
            Tensor::stack_tensors(0, &parts)
                .map_err(|e| ApiError::internal(format!("batching inputs: {}", chain(&e))))
        })
        .collect()
}

/// Gives each job its rows of a batched call's outputs.
fn answer_rows(batch: Vec<Job>, counts: &[usize], outputs: Vec<Tensor>) {
    let total: usize = counts.iter().sum();
    if let Some(bad) = outputs.iter().find(|t| t.shape().first() != Some(&total)) {
        let e = ApiError::internal(format!(
            "a batched call of {total} rows gave an output of shape {:?}",
            bad.shape()
        ));
        for job in batch {
            let _ = job.reply.send(Err(e.clone()));
        }
        return;
    }
    let outputs = Arc::new(outputs);
    let mut start = 0;
    for (job, rows) in batch.into_iter().zip(counts) {
        let _ = job
            .reply
            .send(Ok(Outputs::rows(outputs.clone(), start..start + rows)));
        start += rows;
    }
}

/// Runs the plan, catching panics, and converts tract's TDim outputs (what `Cast` to int64
/// gives) to INT64.
pub fn run_plan(plan: &Plan, inputs: TVec<Tensor>) -> Result<Vec<Tensor>, ApiError> {
    let inputs: TVec<TValue> = inputs.into_iter().map(|t| t.into_tvalue()).collect();
    let outputs = catch_unwind(AssertUnwindSafe(|| plan.runnable.run(inputs)))
        .map_err(|p| ApiError::internal(format!("inference panicked: {}", panic_text(&p))))?
        .map_err(|e| ApiError::internal(format!("inference failed: {}", chain(&e))))?;
    outputs
        .into_iter()
        .map(|v| {
            let t = v.into_tensor();
            if t.datum_type() == DatumType::TDim {
                t.cast_to::<i64>()
                    .map(|c| c.into_owned())
                    .map_err(|e| ApiError::internal(format!("converting an output: {e}")))
            } else {
                Ok(t)
            }
        })
        .collect()
}

/// The message of a caught panic.
pub(crate) fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::loader::{Source, build};
    use crate::metadata::ModelMeta;

    fn plan(bytes: Vec<u8>) -> Arc<Plan> {
        let meta = ModelMeta::from_onnx(&bytes).unwrap();
        Arc::new(build(&Source::Bytes("test", bytes.into()), &meta).unwrap())
    }

    fn rows(values: &[[f32; 4]]) -> Inputs {
        let t = tract_ndarray::Array2::from_shape_vec(
            (values.len(), 4),
            values.iter().flatten().copied().collect(),
        )
        .unwrap();
        Inputs::new(tvec!(t.into()))
    }

    fn first_row(out: &Outputs) -> Vec<f32> {
        let v = out.view(0).unwrap();
        let plain = v.tensor.try_as_plain_ram().unwrap();
        plain.as_slice::<f32>().unwrap()[v.start..v.start + v.len].to_vec()
    }

    #[tokio::test]
    async fn waiting_requests_ride_one_call_and_get_their_own_rows() {
        let exec = Executor::start("iris", plan(fixtures::iris_like()), Settings::default());
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
        assert_eq!(a.view(0).unwrap().shape, vec![1, 3]);
        assert_eq!(b.view(0).unwrap().shape, vec![2, 3]);
        assert_eq!((first_row(&a), first_row(&b)), expected);
    }

    #[tokio::test]
    async fn a_full_queue_answers_503_with_retry_after() {
        let settings = Settings {
            max_queue: 1,
            ..Settings::default()
        };
        let exec = Executor::start("iris", plan(fixtures::iris_like()), settings);
        // The runner has not run yet: the first job fills the queue.
        let first = exec.submit(rows(&[[0.0; 4]]));
        let second = exec.submit(rows(&[[0.0; 4]]));
        let (first, second) = tokio::join!(first, second);
        assert!(first.is_ok());
        let e = second.unwrap_err();
        assert_eq!(e.status(), 503);
        assert!(e.into_response().headers().contains_key("retry-after"));
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
        let x = |v: f32| Inputs::new(tvec!(tensor2(&[[v, v]])));
        let (a, b) = tokio::join!(exec.submit(x(1.0)), exec.submit(x(2.0)));
        let sum = |o: Outputs| {
            let v = o.view(0).unwrap();
            *v.tensor
                .try_as_plain_ram()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert_eq!((sum(a.unwrap()), sum(b.unwrap())), (2.0, 4.0));
        assert_eq!(exec.calls(), 2);
    }

    #[tokio::test]
    async fn different_row_shapes_are_not_merged() {
        let exec = Executor::start("var", plan(fixtures::variable_row()), Settings::default());
        let x = |n: usize| Inputs::new(tvec!(Tensor::zero::<f32>(&[1, n]).unwrap()));
        let (a, b) = tokio::join!(exec.submit(x(2)), exec.submit(x(3)));
        assert_eq!(a.unwrap().view(0).unwrap().shape, vec![1, 2]);
        assert_eq!(b.unwrap().view(0).unwrap().shape, vec![1, 3]);
    }

    #[tokio::test]
    async fn tdim_outputs_become_int64() {
        let exec = Executor::start("cast", plan(fixtures::cast_to_int64()), Settings::default());
        let out = exec
            .submit(Inputs::new(tvec!(tensor2(&[[1.0f32, 2.9]]))))
            .await
            .unwrap();
        let v = out.view(0).unwrap();
        assert_eq!(v.tensor.datum_type(), DatumType::I64);
    }

    #[tokio::test]
    async fn inference_errors_are_500_and_the_runner_survives() {
        let exec = Executor::start("gather", plan(fixtures::gather()), Settings::default());
        let bad = exec.submit(Inputs::new(tvec!(tensor1(&[7i64])))).await;
        let e = bad.unwrap_err();
        assert_eq!(e.status(), 500, "{e}");
        let good = exec
            .submit(Inputs::new(tvec!(tensor1(&[2i64]))))
            .await
            .unwrap();
        let v = good.view(0).unwrap();
        assert_eq!(
            v.tensor
                .try_as_plain_ram()
                .unwrap()
                .as_slice::<f32>()
                .unwrap(),
            &[30.0]
        );
    }
}
