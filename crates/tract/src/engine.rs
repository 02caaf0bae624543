//! The engine: [`Tract`] builds a [`TractPlan`] (a plan for any batch size and one for a
//! single row), which runs calls on the runtime's tensors. The crate's doc says why.
//!
//! serve-runtime's own unit tests compile this file into their crate as their engine (see
//! its `lib.rs`), so it names the runtime only as `serve_runtime`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use prost::Message;
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::ShapeFactoid;

use serve_runtime::datatype::DataType;
use serve_runtime::engine::{self, Batching, BuildError, Engine, On, OutputSet, TensorList};
use serve_runtime::metadata::{Dim, ModelMeta};
use serve_runtime::run_error::RunError;
use serve_runtime::source::Source;
use serve_runtime::tensor::{self as neutral, Slice, TensorView};

/// tract, the default engine: pure Rust, inside the binary, safe to build before a fork.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tract;

impl Engine for Tract {
    fn name(&self) -> &'static str {
        "tract"
    }

    fn build(
        &self,
        source: &Source,
        meta: &ModelMeta,
        batch_dim: bool,
    ) -> Result<Box<dyn engine::Plan>, BuildError> {
        Ok(Box::new(build(source, meta, batch_dim)?))
    }
}

impl engine::Plan for TractPlan {
    fn batching(&self) -> Batching {
        Batching {
            any_batch: self.any_batch().is_some(),
            row_by_row: self.row_by_row().is_some(),
            mergeable: self.mergeable(),
        }
    }

    fn pinned(&self) -> Option<&str> {
        TractPlan::pinned(self)
    }

    fn run(&self, on: On, inputs: TensorList) -> Result<Arc<dyn OutputSet>, RunError> {
        let model = match on {
            On::AnyBatch => self.any_batch().ok_or_else(|| {
                RunError::Inference("the model has no plan for any batch size".into())
            })?,
            On::OneRow => self.one_row(),
        };
        let inputs = inputs
            .into_iter()
            .map(|t| to_tract(t).map(IntoTValue::into_tvalue))
            .collect::<Result<TVec<TValue>, RunError>>()?;
        let outputs = model
            .run(inputs)
            .map_err(|e| RunError::Inference(format!("inference failed: {}", chain(&e))))?;
        let outputs = outputs
            .into_iter()
            .map(|v| {
                let t = v.into_tensor();
                if t.datum_type() == DatumType::TDim {
                    t.cast_to::<i64>()
                        .map(|c| c.into_owned())
                        .map_err(|e| RunError::Inference(format!("converting an output: {e}")))
                } else {
                    Ok(t)
                }
            })
            .collect::<Result<TVec<Tensor>, RunError>>()?;
        Ok(Arc::new(TractOutputs(outputs)))
    }
}

/// A runtime tensor in tract's layout (tract copies into storage aligned its way).
pub fn to_tract(t: neutral::Tensor) -> Result<Tensor, RunError> {
    let (shape, elements) = t.into_parts();
    let copy = |e: TractError| RunError::Inference(format!("passing an input to tract: {e}"));
    macro_rules! plain {
        ($v:expr) => {
            Tensor::from_shape(&shape, &$v).map_err(copy)
        };
    }
    serve_runtime::match_elements!(elements, v => plain!(v), s => {
        tract_ndarray::ArrayD::from_shape_vec(&*shape, s)
            .map(Tensor::from)
            .map_err(|e| RunError::Inference(format!("passing an input to tract: {e}")))
    })
}

/// A tract tensor seen as the runtime's: its shape and its elements where they are.
pub fn view_of(t: &Tensor) -> Result<TensorView<'_>, RunError> {
    let unreadable = |e: TractError| RunError::Inference(format!("reading an output: {e}"));
    let plain = t.try_as_plain_ram().map_err(unreadable)?;
    let Some(datatype) = datatype_of(t.datum_type()) else {
        return Err(RunError::Inference(format!(
            "an output has type {:?}, which serve cannot answer",
            t.datum_type()
        )));
    };
    macro_rules! read {
        ($t:ty) => {
            plain.as_slice::<$t>().map_err(unreadable)?
        };
    }
    let elements = serve_runtime::slice_of_type!(datatype, read, Slice::Bytes(read!(String)));
    Ok(TensorView {
        shape: t.shape(),
        elements,
    })
}

/// The outputs of one tract call.
#[derive(Debug)]
struct TractOutputs(TVec<Tensor>);

impl OutputSet for TractOutputs {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn get(&self, i: usize) -> Result<TensorView<'_>, RunError> {
        view_of(&self.0[i])
    }
}

/// The tract type of an element type.
pub fn datum(dt: DataType) -> DatumType {
    match dt {
        DataType::Bool => DatumType::Bool,
        DataType::U8 => DatumType::U8,
        DataType::U16 => DatumType::U16,
        DataType::U32 => DatumType::U32,
        DataType::U64 => DatumType::U64,
        DataType::I8 => DatumType::I8,
        DataType::I16 => DatumType::I16,
        DataType::I32 => DatumType::I32,
        DataType::I64 => DatumType::I64,
        DataType::F16 => DatumType::F16,
        DataType::F32 => DatumType::F32,
        DataType::F64 => DatumType::F64,
        DataType::Bytes => DatumType::String,
    }
}

/// The protocol type of a tract type. `TDim` (what tract's `Cast` to int64 produces) is
/// answered as INT64 after conversion.
pub fn datatype_of(dt: DatumType) -> Option<DataType> {
    Some(match dt {
        DatumType::Bool => DataType::Bool,
        DatumType::U8 => DataType::U8,
        DatumType::U16 => DataType::U16,
        DatumType::U32 => DataType::U32,
        DatumType::U64 => DataType::U64,
        DatumType::I8 => DataType::I8,
        DatumType::I16 => DataType::I16,
        DatumType::I32 => DataType::I32,
        DatumType::I64 | DatumType::TDim => DataType::I64,
        DatumType::F16 => DataType::F16,
        DatumType::F32 => DataType::F32,
        DatumType::F64 => DataType::F64,
        DatumType::String => DataType::Bytes,
        _ => return None,
    })
}

/// A built model, shared by every request of a worker: up to two optimized plans of one
/// graph, each `Send + Sync` (every `run` makes its own state).
///
/// tract plans a graph whose batch is a symbol without knowing its size, and for
/// convolutional networks that plan is several times slower than one for a known size
/// (measured on the PP-OCR classifier: 12 ms against 1.9 ms per row, because tract's fast
/// convolution paths need concrete shapes). So next to the plan for any batch size
/// ([`TractPlan::any_batch`]) the loader builds one with the batch bound to 1 ([`TractPlan::one_row`]),
/// from the same typed graph. The executor runs one-row calls on the single plan and
/// decides, by measuring, whether merged calls on the general plan pay (they do for small
/// models, where a call's fixed cost dominates; they do not for CNNs, whose rows are then
/// run one by one on the single plan).
pub enum TractPlan {
    /// Planned for any batch size, the usual case.
    General {
        /// The plan for any batch size.
        any: Arc<TypedRunnableModel>,
        /// The plan with the batch bound to 1; `None` when the model has no batch dimension
        /// (or binding it failed, which is logged).
        one_row: Option<Arc<TypedRunnableModel>>,
        /// Every input's first dimension is the batch and every output's follows it:
        /// requests can be concatenated along it, or split into rows on `one_row`, and the
        /// outputs split back or stacked.
        batchable: bool,
    },
    /// tract can plan the model only with the batch pinned to 1 (a graph that computes
    /// shapes from its input's shape): one row a call, never merged.
    Pinned {
        /// The plan for one row.
        one_row: Arc<TypedRunnableModel>,
        /// Every output is one row per input row: a request of several rows runs row by
        /// row. Otherwise it is refused.
        splittable: bool,
        /// Why tract cannot plan it for any batch size (its error).
        why: String,
    },
}

impl TractPlan {
    /// The plan a one-row call runs on: the one for one row when there is one.
    pub fn one_row(&self) -> &Arc<TypedRunnableModel> {
        match self {
            TractPlan::General {
                one_row: Some(m), ..
            }
            | TractPlan::Pinned { one_row: m, .. } => m,
            TractPlan::General { any, .. } => any,
        }
    }

    /// The plan for any batch size, which a call of several rows runs on as one call.
    pub fn any_batch(&self) -> Option<&Arc<TypedRunnableModel>> {
        match self {
            TractPlan::General { any, .. } => Some(any),
            TractPlan::Pinned { .. } => None,
        }
    }

    /// The plan for one row, when a request of several rows can run row by row on it.
    pub fn row_by_row(&self) -> Option<&Arc<TypedRunnableModel>> {
        match self {
            TractPlan::General {
                one_row: Some(m),
                batchable: true,
                ..
            }
            | TractPlan::Pinned {
                one_row: m,
                splittable: true,
                ..
            } => Some(m),
            _ => None,
        }
    }

    /// Whether concurrent requests can be merged into one call.
    pub fn mergeable(&self) -> bool {
        matches!(
            self,
            TractPlan::General {
                batchable: true,
                ..
            }
        )
    }

    /// Why the batch is pinned to 1, when it is.
    pub fn pinned(&self) -> Option<&str> {
        match self {
            TractPlan::Pinned { why, .. } => Some(why),
            TractPlan::General { .. } => None,
        }
    }
}

impl std::fmt::Debug for TractPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TractPlan::General {
                one_row, batchable, ..
            } => f
                .debug_struct("General")
                .field("one_row", &one_row.is_some())
                .field("batchable", batchable)
                .finish(),
            TractPlan::Pinned {
                splittable, why, ..
            } => f
                .debug_struct("Pinned")
                .field("splittable", splittable)
                .field("why", why)
                .finish(),
        }
    }
}

/// Builds the runnable plans of a model.
///
/// Attempts, until one works: the graph as declared with a symbolic batch; the same
/// ignoring the file's `value_info` (third-party exporters write some that contradicts the
/// graph); then, when the model has a batch dimension, both again with the batch pinned to
/// 1 (a graph that computes shapes from its input's shape, as a `Reshape` whose target
/// comes from `Shape`, may type only for a known batch). The error is the first attempt's.
pub fn build(source: &Source, meta: &ModelMeta, batch_dim: bool) -> Result<TractPlan, BuildError> {
    let proto = pb::ModelProto::decode(source.bytes().clone())
        .map_err(|e| BuildError::new(format!("not an ONNX model ({e})")))?;
    let dir = source.dir();
    let strict = serve_onnx_ml::onnx();
    let relaxed = serve_onnx_ml::onnx().with_ignore_value_info(true);
    let with = |onnx, pin| build_with(onnx, &proto, dir, meta, batch_dim, pin);
    let first = match with(&strict, false) {
        Ok(plan) => return Ok(plan),
        Err(Failure::Final(e)) => return Err(BuildError::new(e)),
        Err(Failure::Typing(e)) => e,
    };
    if let Ok(plan) = with(&relaxed, false) {
        return Ok(plan);
    }
    if !(batch_dim && has_batch(meta)) {
        return Err(BuildError::new(first));
    }
    for onnx in [&strict, &relaxed] {
        if let Ok(mut plan) = with(onnx, true) {
            if let TractPlan::Pinned { why, .. } = &mut plan {
                *why = first;
            }
            return Ok(plan);
        }
    }
    Err(BuildError::new(format!(
        "{first} (nor with the batch pinned to 1)"
    )))
}

/// True when every input's first dimension is variable: the batch the loader may pin.
fn has_batch(meta: &ModelMeta) -> bool {
    !meta.inputs.is_empty() && meta.inputs.iter().all(|i| i.has_batch_dim())
}

pub(crate) enum Failure {
    /// Retrying cannot help (unknown operator, unresolved inputs).
    Final(String),
    /// Typing or optimizing failed: retry without value_info, or with the batch pinned.
    Typing(String),
}

pub(crate) fn build_with(
    onnx: &tract_onnx::Onnx,
    proto: &pb::ModelProto,
    dir: Option<&Path>,
    meta: &ModelMeta,
    batch_dim: bool,
    pin: bool,
) -> Result<TractPlan, Failure> {
    let dir = dir.and_then(|d| d.to_str());
    let parsed = onnx
        .parse(proto, dir)
        .map_err(|e| Failure::Final(format!("cannot parse the graph: {}", chain(&e))))?;
    if !parsed.unresolved_inputs.is_empty() {
        return Err(Failure::Final(format!(
            "the graph uses values nothing defines: {:?}",
            parsed.unresolved_inputs
        )));
    }
    let mut model = parsed.model;
    unimplemented_ops(&model).map_err(Failure::Final)?;
    let batch = declare_inputs(&mut model, meta, batch_dim).map_err(Failure::Final)?;
    let cannot_build =
        |e: TractError| Failure::Typing(format!("tract cannot build the model: {}", chain(&e)));
    let cannot_plan =
        |e: TractError| Failure::Typing(format!("tract cannot plan the model: {}", chain(&e)));
    if pin {
        let Some(batch) = batch else {
            return Err(Failure::Final(
                "the inputs share no batch dimension to pin".into(),
            ));
        };
        model.set_symbols(&one_row(batch)).map_err(cannot_build)?;
        let typed = model.into_optimized().map_err(cannot_build)?;
        // Rows can be run one at a time only if every output is one row per input row: its
        // first dimension is 1 here and variable in the file.
        let splittable =
            outputs_follow(&typed, &TDim::Val(1)) && meta.outputs.iter().all(|o| o.has_batch_dim());
        let one_row = typed.into_runnable().map_err(cannot_plan)?;
        return Ok(TractPlan::Pinned {
            one_row,
            splittable,
            why: String::new(),
        });
    }
    let typed = model
        .into_typed()
        .and_then(|t| t.into_decluttered())
        .map_err(cannot_build)?;
    let batchable = batch
        .as_ref()
        .is_some_and(|s| outputs_follow(&typed, &s.to_dim()));
    let single = batch.and_then(|s| match single_plan(&typed, s) {
        Ok(plan) => Some(plan),
        Err(e) => {
            tracing::warn!(
                "tract cannot plan the model for a batch of 1 ({}); every call uses the plan \
                 for any batch size",
                chain(&e)
            );
            None
        }
    });
    let general = typed
        .into_optimized()
        .and_then(|t| t.into_runnable())
        .map_err(cannot_plan)?;
    Ok(TractPlan::General {
        any: general,
        one_row: single,
        batchable,
    })
}

/// The typed graph with the batch bound to 1, optimized: its weights are the typed graph's
/// (shared), what optimizing adds (packed kernels) is its own.
fn single_plan(typed: &TypedModel, batch: Symbol) -> TractResult<Arc<TypedRunnableModel>> {
    typed
        .set_symbols(&one_row(batch))?
        .into_optimized()?
        .into_runnable()
}

/// The batch symbol bound to 1.
fn one_row(batch: Symbol) -> HashMap<Symbol, TDim> {
    [(batch, TDim::Val(1))].into()
}

/// An error and its causes on one line: tract's errors are chains of contexts.
pub(crate) fn chain(e: &TractError) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

/// Names every operator tract does not implement, with its node, before typing fails with
/// tract's less helpful "can not be made a TypedOp"; an operator that cannot be served at
/// all (it takes maps) says why.
fn unimplemented_ops(model: &InferenceModel) -> Result<(), String> {
    let mut missing: Vec<String> = Vec::new();
    for n in model.nodes() {
        let name = n.op.name();
        let Some(op) = name
            .strip_prefix("Unimplemented(")
            .and_then(|s| s.strip_suffix(')'))
        else {
            continue;
        };
        if let Some(why) = serve_onnx_ml::unsupported(op) {
            return Err(format!(
                "serve cannot run the operator {op} (node \"{}\"): {why}",
                n.name
            ));
        }
        missing.push(format!("{op} (node \"{}\")", n.name));
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "tract does not implement the operator{} {}; serve runs the standard ONNX \
             operators tract implements and the ONNX-ML operators of scikit-learn's exports \
             ({}): export the model without it (another converter option or opset)",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", "),
            serve_onnx_ml::operators().collect::<Vec<_>>().join(", ")
        ))
    }
}

/// Declares each input's type and shape with symbols for variable dimensions; returns the
/// batch symbol when every input's first dimension is it.
///
/// With `batch_dim`, the first dimension of every input that has a variable one is the one
/// batch symbol `N`, named or not, and a name the file gives it anywhere means `N` too;
/// without, each named dimension is its own symbol and each unnamed first dimension is its
/// input's own, and there is no batch (never merged, never split into rows), even when the
/// file names its first dimensions `N` too.
fn declare_inputs(
    model: &mut InferenceModel,
    meta: &ModelMeta,
    batch_dim: bool,
) -> Result<Option<Symbol>, String> {
    let count = model.input_outlets().map(|o| o.len()).unwrap_or(0);
    if count != meta.inputs.len() {
        return Err(format!(
            "the graph has {count} inputs but declares {}",
            meta.inputs.len()
        ));
    }
    let batch = model.sym("N");
    let mut named: HashMap<String, Symbol> = HashMap::new();
    if batch_dim {
        for input in &meta.inputs {
            if let Some(Dim::Var(Some(name))) = input.shape.as_ref().and_then(|s| s.first()) {
                named.insert(name.clone(), batch.clone());
            }
        }
    }
    let mut shared = !meta.inputs.is_empty();
    for (i, input) in meta.inputs.iter().enumerate() {
        let Some(dims) = &input.shape else {
            let fact = InferenceFact::dt(datum(input.datatype));
            model.set_input_fact(i, fact).map_err(|e| chain(&e))?;
            shared = false;
            continue;
        };
        let mut shape: Vec<TDim> = Vec::with_capacity(dims.len());
        for (j, d) in dims.iter().enumerate() {
            let dim = match d {
                Dim::Fixed(n) => n.to_dim(),
                Dim::Var(name) => {
                    let sym = match (name, j) {
                        (_, 0) if batch_dim => batch.clone(),
                        (Some(n), _) => named
                            .entry(n.clone())
                            .or_insert_with(|| model.sym(n))
                            .clone(),
                        (None, _) => model.sym(&format!("{}_{j}", sanitize(&input.name))),
                    };
                    if j == 0 && sym != batch {
                        shared = false;
                    }
                    sym.to_dim()
                }
            };
            shape.push(dim);
        }
        if !matches!(dims.first(), Some(Dim::Var(_))) {
            shared = false;
        }
        let fact = InferenceFact::dt_shape(
            datum(input.datatype),
            shape.into_iter().collect::<ShapeFactoid>(),
        );
        model
            .set_input_fact(i, fact)
            .map_err(|e| format!("input \"{}\": {}", input.name, chain(&e)))?;
    }
    Ok(if shared && batch_dim {
        Some(batch)
    } else {
        None
    })
}

/// A symbol name tract's parser accepts: letters, digits and underscores.
fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("d_{s}")
}

/// True when every output's first dimension is the batch symbol.
fn outputs_follow(model: &TypedModel, batch: &TDim) -> bool {
    (0..model.outputs.len()).all(|i| {
        model
            .output_fact(i)
            .is_ok_and(|f| f.shape.rank() >= 1 && &f.shape[0] == batch)
    })
}
