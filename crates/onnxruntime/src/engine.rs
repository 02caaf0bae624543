//! The engine: one onnxruntime environment per process, one session per model.
//!
//! The environment is created on the first build in the process (a worker, or the proving
//! child), with onnxruntime's global thread pool: `threads` intra-op threads shared by every
//! session of the worker, one inter-op thread, no spinning when idle (an idle worker must
//! not burn CPU). Sessions run sequentially; a session's `run` takes `&mut`, and the
//! executor makes one call at a time per model, so the lock around it is never contended.
//!
//! onnxruntime batches natively: a model whose inputs' first dimension is variable runs a
//! call of any number of rows, so merged requests need no second plan.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ort::environment::{Environment, GlobalThreadPoolOptions};
use ort::logging::LogLevel;
use ort::session::builder::SessionBuilder;
use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, Tensor as OrtTensor, TensorElementType, ValueType};
use serve_runtime::datatype::DataType;
use serve_runtime::engine::{Batching, BuildError, Engine, On, OutputSet, Plan, TensorList};
use serve_runtime::metadata::{Classes, ModelMeta};
use serve_runtime::run_error::RunError;
use serve_runtime::source::Source;
use serve_runtime::tensor::{Tensor, TensorView};

/// The lowest onnxruntime release serve can use: the C API level `ort` is built for.
pub const MIN_VERSION: &str = "1.17";

/// The onnxruntime engine.
#[derive(Debug, Clone)]
pub struct OnnxRuntime {
    library: PathBuf,
    threads: usize,
}

/// The process's environment, and what it was made with.
struct Made {
    library: PathBuf,
    threads: usize,
    environment: Environment,
}

static ENVIRONMENT: Mutex<Option<Arc<Made>>> = Mutex::new(None);

impl OnnxRuntime {
    /// The engine loading `library`, with `threads` intra-op threads per process (0:
    /// onnxruntime's default, one per core; `--model-threads` gives 1 or more).
    pub fn new(library: PathBuf, threads: usize) -> OnnxRuntime {
        OnnxRuntime { library, threads }
    }

    /// The library it loads.
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// Loads the library and makes the process's environment, once; later calls get it.
    /// This starts onnxruntime's threads: never in a process that forks afterwards.
    fn environment(&self) -> Result<Arc<Made>, String> {
        let mut made = ENVIRONMENT.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = made.as_ref() {
            if m.library != self.library || m.threads != self.threads {
                return Err(format!(
                    "onnxruntime is already loaded from {} with {} threads in this process; \
                     one process loads one library with one thread count",
                    m.library.display(),
                    m.threads
                ));
            }
            return Ok(m.clone());
        }
        let cannot = |e: &dyn std::fmt::Display| {
            format!(
                "cannot use the onnxruntime library {}: {e}; serve needs onnxruntime \
                 {MIN_VERSION} or later (`pip install -U onnxruntime`), or pass --onnxruntime \
                 PATH naming another libonnxruntime.so",
                self.library.display()
            )
        };
        // Loading comes first: any other call into `ort` would load a library of its own
        // choosing (and panic without one).
        let builder = ort::init_from(&self.library).map_err(|e| cannot(&e))?;
        let pool = GlobalThreadPoolOptions::default()
            .with_intra_threads(self.threads)
            .and_then(|o| o.with_inter_threads(1))
            .and_then(|o| o.with_spin_control(false))
            .map_err(|e| cannot(&e))?;
        let environment = builder
            .with_name("serve")
            .with_logger(Arc::new(log))
            .with_telemetry(false)
            .with_global_thread_pool(pool)
            .build()
            .map_err(|e| cannot(&e))?;
        let m = Arc::new(Made {
            library: self.library.clone(),
            threads: self.threads,
            environment,
        });
        *made = Some(m.clone());
        Ok(m)
    }
}

/// onnxruntime's messages in serve's log: its warnings and errors as such, its chatter
/// (the session's options, each graph transformer) at debug.
fn log(level: LogLevel, category: &str, _id: &str, location: &str, message: &str) {
    match level {
        LogLevel::Verbose | LogLevel::Info => {
            tracing::debug!("onnxruntime: {message} ({category}, {location})")
        }
        LogLevel::Warning => tracing::warn!("onnxruntime: {message}"),
        LogLevel::Error | LogLevel::Fatal => tracing::error!("onnxruntime: {message}"),
    }
}

impl Engine for OnnxRuntime {
    fn name(&self) -> &'static str {
        "onnxruntime"
    }

    fn fork_safe(&self) -> bool {
        false
    }

    fn build(
        &self,
        source: &Source,
        meta: &ModelMeta,
        batch_dim: bool,
    ) -> Result<Box<dyn Plan>, BuildError> {
        let made = self.environment().map_err(BuildError::host)?;
        let failed = |e: &dyn std::fmt::Display| BuildError::new(format!("onnxruntime: {e}"));
        let mut builder = Session::builder(&made.environment)
            .map_err(|e| failed(&e))?
            .with_parallel_execution(false)
            .map_err(|e| failed(&e))?
            .with_config_entry("session.intra_op.allow_spinning", "0")
            .map_err(|e| failed(&e))?;
        builder = execution_providers(builder);
        // The session is made from the bytes read before the fork; a model whose weights sit
        // in external data files (`model.onnx.data`) finds them beside the model's file, as
        // tract does.
        if let Some(dir) = source.dir().and_then(Path::to_str) {
            let dir = if dir.is_empty() { "." } else { dir };
            builder = builder
                .with_config_entry("session.model_external_initializers_file_folder_path", dir)
                .map_err(|e| failed(&e))?;
        }
        let session = builder
            .commit_from_memory(source.bytes())
            .map_err(|e| failed(&e))?;
        let plan = OrtPlan::new(session, meta, batch_dim)?;
        Ok(Box::new(plan))
    }
}

/// The execution providers a session asks for: none, so onnxruntime's CPU provider runs every
/// node. This is where another one would be registered (`ort`'s `CUDA`, ahead of the CPU
/// one, which onnxruntime keeps as the fallback for nodes the other cannot run). It is not
/// built: it needs the `onnxruntime-gpu` wheel's library and its CUDA libraries at run time,
/// a setting to ask for it (per model, as `engine` is), a check in the proving child that the
/// provider was really registered (onnxruntime falls back to the CPU silently), and a GPU to
/// test it on, which CI does not have.
fn execution_providers(builder: SessionBuilder) -> SessionBuilder {
    builder
}

/// How an output is read from onnxruntime's values.
#[derive(Debug, Clone)]
enum Kind {
    /// A tensor of this type, read where onnxruntime left it.
    Tensor(DataType),
    /// A ZipMap's sequence of maps, laid out as the `[N, C]` FP32 tensor serve answers,
    /// columns in the order of these labels (the metadata's).
    ZipMap(Classes),
}

/// A model's session.
struct OrtPlan {
    session: Mutex<Session>,
    /// The inputs' names, in the metadata's order (the order of a call's tensors).
    inputs: Vec<String>,
    /// The outputs' names and kinds, in the metadata's order.
    outputs: Vec<(String, Kind)>,
    batching: Batching,
}

impl std::fmt::Debug for OrtPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtPlan")
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .field("batching", &self.batching)
            .finish()
    }
}

impl OrtPlan {
    fn new(session: Session, meta: &ModelMeta, batch_dim: bool) -> Result<OrtPlan, BuildError> {
        for input in &meta.inputs {
            if !session.inputs().iter().any(|o| o.name() == input.name) {
                return Err(BuildError::new(format!(
                    "onnxruntime has no input \"{}\"",
                    input.name
                )));
            }
        }
        let mut outputs = Vec::with_capacity(meta.outputs.len());
        for o in &meta.outputs {
            let outlet = session
                .outputs()
                .iter()
                .find(|x| x.name() == o.name)
                .ok_or_else(|| {
                    BuildError::new(format!("onnxruntime has no output \"{}\"", o.name))
                })?;
            let kind = match (outlet.dtype(), &o.classes) {
                (ValueType::Tensor { ty, .. }, _) => match datatype_of(*ty) {
                    Some(dt) => Kind::Tensor(dt),
                    None => {
                        return Err(BuildError::new(format!(
                            "output \"{}\" has type {ty:?}, which serve cannot answer",
                            o.name
                        )));
                    }
                },
                (ValueType::Sequence(inner), Some(classes))
                    if matches!(
                        **inner,
                        ValueType::Map {
                            value: TensorElementType::Float32,
                            ..
                        }
                    ) =>
                {
                    Kind::ZipMap(classes.clone())
                }
                (other, _) => {
                    return Err(BuildError::new(format!(
                        "output \"{}\" is {other:?}, which serve cannot answer",
                        o.name
                    )));
                }
            };
            outputs.push((o.name.clone(), kind));
        }
        // Rows are the first dimension of every input, as tract plans it: onnxruntime runs
        // any number of them in one call when every input's first dimension is variable, so
        // concurrent requests merge when every output has rows too. A request's rows are
        // never run one by one: onnxruntime has one form for every batch size (tract's
        // faster one-row plan is what makes that pay there), and its answers for one row
        // differ from its answers for the same row in a batch in the last digits.
        let batched =
            batch_dim && !meta.inputs.is_empty() && meta.inputs.iter().all(|i| i.has_batch_dim());
        let mergeable = batched && meta.outputs.iter().all(|o| o.has_batch_dim());
        Ok(OrtPlan {
            session: Mutex::new(session),
            inputs: meta.inputs.iter().map(|i| i.name.clone()).collect(),
            outputs,
            batching: Batching {
                any_batch: true,
                row_by_row: false,
                mergeable,
            },
        })
    }
}

impl Plan for OrtPlan {
    fn batching(&self) -> Batching {
        self.batching
    }

    fn pinned(&self) -> Option<&str> {
        None
    }

    fn run(&self, _on: On, inputs: TensorList) -> Result<Arc<dyn OutputSet>, RunError> {
        let values = inputs
            .into_iter()
            .zip(&self.inputs)
            .map(|(t, name)| Ok((name.as_str(), SessionInputValue::from(to_ort(t)?))))
            .collect::<Result<Vec<_>, RunError>>()?;
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let mut outputs = session
            .run(values)
            .map_err(|e| RunError::Inference(format!("inference failed: {e}")))?;
        let mut read = Vec::with_capacity(self.outputs.len());
        for (name, kind) in &self.outputs {
            let value = outputs.remove(name.as_str()).ok_or_else(|| {
                RunError::Inference(format!("onnxruntime gave no output \"{name}\""))
            })?;
            read.push(
                Out::read(value, kind)
                    .map_err(|e| RunError::Inference(format!("reading output \"{name}\": {e}")))?,
            );
        }
        Ok(Arc::new(OrtOutputs(read)))
    }
}

/// A runtime tensor as an onnxruntime value; the elements move, uncopied, except strings.
fn to_ort(t: Tensor) -> Result<DynValue, RunError> {
    let (shape, elements) = t.into_parts();
    let shape: Vec<usize> = shape.to_vec();
    let failed =
        |e: ort::Error| RunError::Inference(format!("passing an input to onnxruntime: {e}"));
    macro_rules! plain {
        ($v:expr) => {
            OrtTensor::from_array((shape, $v))
                .map(|t| t.into_dyn())
                .map_err(failed)
        };
    }
    serve_runtime::match_elements!(elements, v => plain!(v), s => {
        OrtTensor::from_string_array((shape, &s[..]))
            .map(|t| t.into_dyn())
            .map_err(failed)
    })
}

/// The protocol type of an onnxruntime element type.
fn datatype_of(ty: TensorElementType) -> Option<DataType> {
    Some(match ty {
        TensorElementType::Bool => DataType::Bool,
        TensorElementType::Uint8 => DataType::U8,
        TensorElementType::Uint16 => DataType::U16,
        TensorElementType::Uint32 => DataType::U32,
        TensorElementType::Uint64 => DataType::U64,
        TensorElementType::Int8 => DataType::I8,
        TensorElementType::Int16 => DataType::I16,
        TensorElementType::Int32 => DataType::I32,
        TensorElementType::Int64 => DataType::I64,
        TensorElementType::Float16 => DataType::F16,
        TensorElementType::Float32 => DataType::F32,
        TensorElementType::Float64 => DataType::F64,
        TensorElementType::String => DataType::Bytes,
        _ => return None,
    })
}

/// One output of a call.
#[derive(Debug)]
enum Out {
    /// A tensor where onnxruntime left it, its shape as sizes.
    Value {
        value: DynValue,
        datatype: DataType,
        shape: Vec<usize>,
    },
    /// Copied out: strings (onnxruntime keeps them in its own layout) and ZipMaps.
    Owned(Tensor),
}

impl Out {
    fn read(value: DynValue, kind: &Kind) -> Result<Out, String> {
        match kind {
            Kind::Tensor(DataType::Bytes) => {
                let (shape, strings) = value.try_extract_strings().map_err(|e| e.to_string())?;
                let shape = sizes(shape)?;
                Tensor::new(&shape, strings).map(Out::Owned)
            }
            Kind::Tensor(datatype) => {
                let shape = match value.dtype() {
                    ValueType::Tensor { shape, .. } => sizes(shape)?,
                    other => return Err(format!("expected a tensor, got {other:?}")),
                };
                Ok(Out::Value {
                    value,
                    datatype: *datatype,
                    shape,
                })
            }
            Kind::ZipMap(classes) => zipmap(&value, classes).map(Out::Owned),
        }
    }
}

/// A shape's dimensions as sizes.
fn sizes(shape: &[i64]) -> Result<Vec<usize>, String> {
    shape
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("dimension {d} in shape {shape:?}")))
        .collect()
}

/// A ZipMap's rows (one map per row) as the `[N, C]` FP32 tensor, columns in `classes`'
/// order.
fn zipmap(value: &DynValue, classes: &Classes) -> Result<Tensor, String> {
    let maps = value
        .try_extract_sequence::<ort::value::DynMapValueType>()
        .map_err(|e| e.to_string())?;
    let width = classes.len();
    let mut probabilities = Vec::with_capacity(maps.len() * width);
    for (row, map) in maps.iter().enumerate() {
        let mut cells = vec![f32::NAN; width];
        let mut place = |column: Option<usize>, p: f32, label: &dyn std::fmt::Debug| {
            let column = column.ok_or_else(|| {
                format!("row {row}: label {label:?} is not one of the ZipMap's {classes:?}")
            })?;
            cells[column] = p;
            Ok::<(), String>(())
        };
        match classes {
            Classes::Ints(labels) => {
                for (k, p) in map
                    .try_extract_key_values::<i64, f32>()
                    .map_err(|e| e.to_string())?
                {
                    place(labels.iter().position(|l| *l == k), p, &k)?;
                }
            }
            Classes::Strings(labels) => {
                for (k, p) in map
                    .try_extract_key_values::<String, f32>()
                    .map_err(|e| e.to_string())?
                {
                    place(labels.iter().position(|l| *l == k), p, &k)?;
                }
            }
        }
        probabilities.extend(cells);
    }
    Tensor::new(&[maps.len(), width], probabilities)
}

/// The outputs of one call.
#[derive(Debug)]
struct OrtOutputs(Vec<Out>);

impl OutputSet for OrtOutputs {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn get(&self, i: usize) -> Result<TensorView<'_>, RunError> {
        let (value, datatype, shape) = match &self.0[i] {
            Out::Owned(t) => return Ok(t.view()),
            Out::Value {
                value,
                datatype,
                shape,
            } => (value, *datatype, shape),
        };
        let unreadable = |e: ort::Error| RunError::Inference(format!("reading an output: {e}"));
        macro_rules! read {
            ($t:ty) => {
                value.try_extract_tensor::<$t>().map_err(unreadable)?.1
            };
        }
        let elements = serve_runtime::slice_of_type!(
            datatype,
            read,
            return Err(RunError::Inference(
                "a string output was not copied out".into()
            ))
        );
        Ok(TensorView { shape, elements })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_the_library_is_refused_naming_it_and_the_fix() {
        let bytes = include_bytes!("../../../examples/iris/model.onnx");
        let meta = ModelMeta::from_onnx(bytes).unwrap();
        let source = Source::Bytes("iris", bytes::Bytes::from_static(bytes));
        let not_a_library = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let engine = OnnxRuntime::new(not_a_library.clone(), 1);
        let e = engine.build(&source, &meta, true).unwrap_err();
        assert!(e.is_host(), "the host's fault, not the model's: {e}");
        let e = e.message();
        let start = format!(
            "cannot use the onnxruntime library {}: failed to load",
            not_a_library.display()
        );
        assert!(e.starts_with(&start), "{e}");
        assert!(
            e.ends_with(
                "serve needs onnxruntime 1.17 or later (`pip install -U onnxruntime`), or pass \
                 --onnxruntime PATH naming another libonnxruntime.so"
            ),
            "{e}"
        );
    }
}
