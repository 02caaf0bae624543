//! Where a model's bytes come from, and how they become a runnable tract plan.
//!
//! Building the plan (typing and optimizing the graph) is the expensive step, done once per
//! worker on the first request, or once in the master with `--preload`. The plan declares
//! every variable dimension as a tract symbol, so one plan serves every batch size; the
//! first dimension of each input shares one symbol (`N`) when the file leaves it unnamed,
//! which is what lets the executor merge requests along it.
//!
//! tract's quirks are handled here, not leaked to clients: an operator tract does not
//! implement is named with its node (instead of "can not be made a TypedOp"), a file whose
//! `value_info` contradicts the graph is retried with `with_ignore_value_info(true)`, and
//! whether outputs are per row is decided from the typed facts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::ShapeFactoid;

use crate::metadata::{Dim, ModelMeta};

/// Where a model's bytes are.
#[derive(Clone, Debug)]
pub enum Source {
    /// A file, read again on every build (so a reload sees the new file).
    File(PathBuf),
    /// Bytes compiled into the binary (the default iris model) or made by a test.
    Bytes(&'static str, bytes::Bytes),
}

impl Source {
    /// The bytes of the model file.
    pub fn read(&self) -> Result<bytes::Bytes, String> {
        match self {
            Source::File(p) => std::fs::read(p)
                .map(bytes::Bytes::from)
                .map_err(|e| format!("cannot read: {}", io_cause(&e))),
            Source::Bytes(_, b) => Ok(b.clone()),
        }
    }

    /// The directory external tensor data is resolved against.
    fn dir(&self) -> Option<&Path> {
        match self {
            Source::File(p) => p.parent(),
            Source::Bytes(..) => None,
        }
    }

    /// How logs and errors name it: the path, or `<embedded iris>`.
    pub fn display(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::Bytes(what, _) => format!("<{what}>"),
        }
    }

    /// The file path, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Source::File(p) => Some(p),
            Source::Bytes(..) => None,
        }
    }

    /// Reads the metadata: the cheap check the master makes before forking.
    /// Only the metadata's bytes are read: the weights are skipped, never allocated.
    pub fn read_meta(&self) -> Result<ModelMeta, String> {
        match self {
            Source::File(p) => {
                let file =
                    std::fs::File::open(p).map_err(|e| format!("cannot read: {}", io_cause(&e)))?;
                ModelMeta::from_reader(file)
            }
            Source::Bytes(_, b) => ModelMeta::from_onnx(b),
        }
    }
}

/// The message of an I/O error without Rust's `(os error 2)` suffix.
pub(crate) fn io_cause(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    }
}

/// A built model, shared by every request of a worker.
pub struct Plan {
    /// The optimized plan: `Send + Sync`; each `run` makes its own state.
    pub runnable: Arc<TypedRunnableModel>,
    /// Every input's first dimension is one shared symbol and every output's first
    /// dimension is that symbol: requests can be concatenated along it and the outputs
    /// split back by rows.
    pub batchable: bool,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("batchable", &self.batchable)
            .finish_non_exhaustive()
    }
}

/// Builds the runnable plan of a model. The error is one line naming the cause.
pub fn build(source: &Source, meta: &ModelMeta) -> Result<Plan, String> {
    let bytes = source.read()?;
    let proto = pb::ModelProto::decode(bytes).map_err(|e| format!("not an ONNX model ({e})"))?;
    let dir = source.dir();
    match build_with(&tract_onnx::onnx(), &proto, dir, meta) {
        Ok(plan) => Ok(plan),
        Err(Failure::Final(e)) => Err(e),
        // Files from third-party exporters may carry value_info that contradicts the graph;
        // tract then fails to type them. Ignoring value_info is what makes them load.
        Err(Failure::Typing(first)) => {
            let relaxed = tract_onnx::onnx().with_ignore_value_info(true);
            build_with(&relaxed, &proto, dir, meta).map_err(|_| first)
        }
    }
}

enum Failure {
    /// Retrying cannot help (unknown operator, unresolved inputs).
    Final(String),
    /// Typing or optimizing failed: retry without value_info.
    Typing(String),
}

fn build_with(
    onnx: &tract_onnx::Onnx,
    proto: &pb::ModelProto,
    dir: Option<&Path>,
    meta: &ModelMeta,
) -> Result<Plan, Failure> {
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
    let batch = declare_inputs(&mut model, meta).map_err(Failure::Final)?;
    let typed = model
        .into_optimized()
        .map_err(|e| Failure::Typing(format!("tract cannot build the model: {}", chain(&e))))?;
    let batchable = batch.is_some_and(|s| outputs_follow(&typed, &s.to_dim()));
    let runnable = typed
        .into_runnable()
        .map_err(|e| Failure::Typing(format!("tract cannot plan the model: {}", chain(&e))))?;
    Ok(Plan {
        runnable,
        batchable,
    })
}

/// An error and its causes on one line: tract's errors are chains of contexts.
pub(crate) fn chain(e: &TractError) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

/// Names every operator tract does not implement, with its node, before typing fails with
/// tract's less helpful "can not be made a TypedOp".
fn unimplemented_ops(model: &InferenceModel) -> Result<(), String> {
    let missing: Vec<String> = model
        .nodes()
        .iter()
        .filter_map(|n| {
            let name = n.op.name();
            let op = name.strip_prefix("Unimplemented(")?.strip_suffix(')')?;
            Some(format!("{op} (node \"{}\")", n.name))
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "tract does not implement the operator{} {}",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", ")
        ))
    }
}

/// Declares each input's type and shape with symbols for variable dimensions; returns the
/// symbol shared by every input's first dimension, if there is one.
fn declare_inputs(model: &mut InferenceModel, meta: &ModelMeta) -> Result<Option<Symbol>, String> {
    let count = model.input_outlets().map(|o| o.len()).unwrap_or(0);
    if count != meta.inputs.len() {
        return Err(format!(
            "the graph has {count} inputs but declares {}",
            meta.inputs.len()
        ));
    }
    let mut named: HashMap<String, Symbol> = HashMap::new();
    let mut batch: Option<Symbol> = None;
    let mut shared = !meta.inputs.is_empty();
    for (i, input) in meta.inputs.iter().enumerate() {
        let Some(dims) = &input.shape else {
            let fact = InferenceFact::dt(input.datatype.datum());
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
                        (Some(n), _) => named
                            .entry(n.clone())
                            .or_insert_with(|| model.sym(n))
                            .clone(),
                        (None, 0) => batch.clone().unwrap_or_else(|| model.sym("N")),
                        (None, _) => model.sym(&format!("{}_{j}", sanitize(&input.name))),
                    };
                    if j == 0 {
                        match &batch {
                            None if i == 0 => batch = Some(sym.clone()),
                            Some(b) if *b == sym => {}
                            _ => shared = false,
                        }
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
            input.datatype.datum(),
            shape.into_iter().collect::<ShapeFactoid>(),
        );
        model
            .set_input_fact(i, fact)
            .map_err(|e| format!("input \"{}\": {}", input.name, chain(&e)))?;
    }
    Ok(if shared { batch } else { None })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn build_bytes(bytes: Vec<u8>) -> Result<Plan, String> {
        let meta = ModelMeta::from_onnx(&bytes).unwrap();
        build(&Source::Bytes("test", bytes.into()), &meta)
    }

    #[test]
    fn symbolic_batch_serves_any_batch_size() {
        let plan = build_bytes(fixtures::iris_like()).unwrap();
        assert!(plan.batchable);
        for n in [0usize, 1, 7] {
            let x = Tensor::zero::<f32>(&[n, 4]).unwrap();
            let out = plan.runnable.run(tvec!(x.into_tvalue())).unwrap();
            assert_eq!(out[0].shape(), &[n, 3]);
        }
    }

    #[test]
    fn string_inputs_load_in_tract_onnx() {
        let plan = build_bytes(fixtures::records()).unwrap();
        assert!(plan.batchable);
    }

    #[test]
    fn unimplemented_operators_are_named_with_their_node() {
        let e = build_bytes(fixtures::unimplemented_op()).unwrap_err();
        assert_eq!(
            e,
            "tract does not implement the operator FancyOp (node \"FancyOp_y\")"
        );
    }

    #[test]
    fn contradicting_value_info_is_ignored_on_retry() {
        let plan = build_bytes(fixtures::conflicting_value_info()).unwrap();
        let x = Tensor::zero::<f32>(&[2, 4]).unwrap();
        let out = plan.runnable.run(tvec!(x.into_tvalue())).unwrap();
        assert_eq!(out[0].shape(), &[2, 3]);
    }

    #[test]
    fn typing_failures_say_tract_cannot_build() {
        let e = build_bytes(fixtures::mistyped()).unwrap_err();
        assert!(e.starts_with("tract cannot build the model"), "{e}");
    }

    #[test]
    fn outputs_not_per_row_make_a_model_unbatchable() {
        assert!(!build_bytes(fixtures::reduce_all()).unwrap().batchable);
        assert!(!build_bytes(fixtures::fixed_shape()).unwrap().batchable);
        assert!(build_bytes(fixtures::variable_row()).unwrap().batchable);
    }

    #[test]
    fn missing_files_say_so() {
        let e = Source::File("/nonexistent/model.onnx".into())
            .read()
            .unwrap_err();
        assert_eq!(e, "cannot read: no such file");
    }
}
