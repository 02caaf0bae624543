//! The ONNX-ML corpus (corpus/ at the repository root): every model, loaded through serve's
//! loader, answers what onnxruntime answered for the stored inputs.
//!
//! The corpus is scikit-learn exports (corpus/sklearn) and operator-level graphs
//! (corpus/ops), each a `<case>.onnx` with a `<case>.json` of inputs and onnxruntime's
//! outputs, and models converted from Keras by tf2onnx (corpus/keras) and exported by
//! torch (corpus/torch), whose expected outputs are the framework's own answers;
//! corpus/README.md says how they are made. This test needs only those files, never
//! Python. Each model is built as serve builds it (the engine's `build` with the metadata
//! `Source::read_meta` gives) and run through the engine's `Plan::run` as the executor runs it: on
//! the form for any batch size with every stored row at once, then, when the model is batchable and
//! has a form for one row, row by row on that one (what serve runs for a one-row request). A model
//! tract can plan only for one row (serve pins its batch to 1 and runs a request's rows one by one)
//! is checked row by row only, and listed as pinned. Labels (integers, strings) must be equal;
//! floats within a relative 1e-5 and an absolute 1e-6, NaN equal to NaN. A ZipMap output's class
//! labels, which the
//! metadata reads from the file, must be the ones onnxruntime keyed its maps with.
//!
//! Every case runs on each engine: tract always; onnxruntime when its library is found
//! (`ORT_DYLIB_PATH`, or a virtual environment with the `onnxruntime` package). Without it the
//! test says how many cases it did not run there, and fails if `SERVE_REQUIRE_ONNXRUNTIME=1`
//! (CI sets it where it installs the library). onnxruntime's plans have no one-row form (its
//! answers for one row differ in the last digits from those for the same row in a batch, so
//! serve never splits a request's rows there): its cases are checked with every row at once.
//!
//! It prints "N of M corpus models match their reference" per engine and one line per failing case
//! naming its first mismatch, and fails below M. `CORPUS_CASE=prefix` checks only the cases whose
//! name (`sklearn/rf_...`, `ops/tree_...`) starts with the prefix.

use std::path::{Path, PathBuf};

use serde_json::Value;
use serve_model::datatype::DataType;
use serve_model::engine::{Engine, On, OutputSet, Plan, TensorList};
use serve_model::metadata::ModelMeta;
use serve_model::source::Source;
use serve_model::tensor::{Elements, Slice, Tensor, TensorView};
use serve_onnxruntime::OnnxRuntime;
use serve_tract::Tract;

const RTOL: f64 = 1e-5;
const ATOL: f64 = 1e-6;

/// The corpus folders, each holding `<case>.onnx` + `<case>.json` pairs.
const FOLDERS: [&str; 4] = ["sklearn", "ops", "keras", "torch"];

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../corpus")
}

/// Every case as (`folder/name`, path of the .onnx file), sorted, filtered by `CORPUS_CASE`.
fn cases() -> Vec<(String, PathBuf)> {
    let only = std::env::var("CORPUS_CASE").unwrap_or_default();
    let mut cases = Vec::new();
    for folder in FOLDERS {
        let dir = corpus_root().join(folder);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "onnx") {
                let stem = path.file_stem().unwrap().to_string_lossy();
                let name = format!("{folder}/{stem}");
                if name.starts_with(&only) {
                    cases.push((name, path));
                }
            }
        }
    }
    cases.sort();
    cases
}

/// The engines to run the corpus on: tract, and onnxruntime when its library is found.
fn engines() -> Vec<Box<dyn Engine>> {
    let mut engines: Vec<Box<dyn Engine>> = vec![Box::new(Tract)];
    match serve_onnxruntime::library::find(None) {
        Ok(library) => engines.push(Box::new(OnnxRuntime::new(library, 1))),
        Err(e) if std::env::var_os("SERVE_REQUIRE_ONNXRUNTIME").is_some_and(|v| v == "1") => {
            panic!("SERVE_REQUIRE_ONNXRUNTIME=1, but {e}")
        }
        // Straight to stderr: the test harness shows it even though the test passes.
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "[not run] the corpus on onnxruntime ({} cases): {e}",
                cases().len()
            );
        }
    }
    engines
}

#[test]
fn corpus_models_answer_as_their_reference() {
    let cases = cases();
    assert!(
        !cases.is_empty(),
        "no corpus case under {}",
        corpus_root().display()
    );
    let mut failed = 0;
    for engine in engines() {
        failed += run_on(&*engine, &cases);
    }
    assert_eq!(failed, 0, "some cases failed (they are listed above)");
}

/// Runs every case on `engine`, printing the summary and each failure; how many failed.
fn run_on(engine: &dyn Engine, cases: &[(String, PathBuf)]) -> usize {
    let mut failures = Vec::new();
    let mut pinned = Vec::new();
    for (name, path) in cases {
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(engine, path)));
        let verdict = match outcome {
            Ok(Ok(Planned::AnyBatch)) => continue,
            Ok(Ok(Planned::Pinned)) => {
                pinned.push(name.as_str());
                continue;
            }
            Ok(Err(e)) => e,
            Err(panic) => format!("panicked: {}", serve_app::panic_message(&*panic)),
        };
        failures.push(format!("{name}: {verdict}"));
    }
    let total = cases.len();
    let summary = format!(
        "{}: {} of {total} corpus models match their reference (onnxruntime; Keras and torch \
         for keras/ and torch/)",
        engine.name(),
        total - failures.len()
    );
    println!("{summary}");
    if !pinned.is_empty() {
        println!(
            "  planned for one row only, checked row by row: {}",
            pinned.join(", ")
        );
    }
    for f in &failures {
        println!("  FAIL {f}");
    }
    failures.len()
}

/// Builds the case's model as serve does and compares its answers to onnxruntime's.
/// How serve planned a case.
enum Planned {
    /// For any batch size.
    AnyBatch,
    /// With the batch pinned to 1: its rows run one by one.
    Pinned,
}

fn check(engine: &dyn Engine, onnx: &Path) -> Result<Planned, String> {
    let case = Case::load(engine, onnx)?;
    case.check_classes()?;
    if case.plan.pinned().is_some() {
        if !case.plan.batching().row_by_row {
            return Err("pinned to one row, but its rows cannot be run one by one".into());
        }
        case.check_each_row()?;
        return Ok(Planned::Pinned);
    }
    case.check_all_rows()?;
    case.check_each_row()?;
    Ok(Planned::AnyBatch)
}

/// A corpus case, built.
struct Case {
    meta: ModelMeta,
    plan: Box<dyn Plan>,
    /// The stored inputs, in the metadata's order (the plan's).
    inputs: Vec<Tensor>,
    /// onnxruntime's outputs, in the metadata's order.
    expected: Vec<Expected>,
    /// The stored outputs as read, for their `classes`.
    stored: Value,
}

impl Case {
    fn load(engine: &dyn Engine, onnx: &Path) -> Result<Case, String> {
        let source = Source::read_file(onnx.to_path_buf())?;
        let text = std::fs::read_to_string(onnx.with_extension("json"))
            .map_err(|e| format!("cannot read the labels: {e}"))?;
        let labels: Value = serde_json::from_str(&text).map_err(|e| format!("bad labels: {e}"))?;
        let meta = source.read_meta().map_err(|e| format!("metadata: {e}"))?;
        // The batch dimension is on, as serve's default settings have it.
        let plan = engine
            .build(&source, &meta, true)
            .map_err(|e| format!("load: {e}"))?;
        let inputs = meta
            .inputs
            .iter()
            .map(|i| {
                tensor(&labels["inputs"][&i.name]).map_err(|e| format!("input \"{}\": {e}", i.name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let expected = meta
            .outputs
            .iter()
            .map(|o| {
                Expected::parse(&labels["outputs"][&o.name])
                    .map_err(|e| format!("output \"{}\": {e}", o.name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Case {
            meta,
            plan,
            inputs,
            expected,
            stored: labels["outputs"].clone(),
        })
    }

    /// A ZipMap output's labels, as the metadata reads them, are the ones onnxruntime
    /// keyed its maps with; other outputs have none.
    fn check_classes(&self) -> Result<(), String> {
        for o in &self.meta.outputs {
            let stored = &self.stored[&o.name]["classes"];
            let read = o.classes.as_ref().map_or(Value::Null, |c| c.to_json());
            if *stored != read {
                return Err(format!(
                    "output \"{}\": the metadata's classes are {read}, the ZipMap's {stored}",
                    o.name
                ));
            }
        }
        Ok(())
    }

    /// Every row at once, on the form for any batch size.
    fn check_all_rows(&self) -> Result<(), String> {
        if !self.plan.batching().any_batch {
            return Err(format!(
                "no plan for any batch size ({})",
                self.plan.pinned().unwrap_or("?")
            ));
        }
        let inputs: TensorList = self.inputs.iter().cloned().collect();
        let outputs = self
            .plan
            .run(On::AnyBatch, inputs)
            .map_err(|e| format!("run: {e}"))?;
        self.compare(&*outputs, None).map_err(|e| self.explain(e))
    }

    /// Each row alone, on the form for one row, when the model has one and is batchable.
    fn check_each_row(&self) -> Result<(), String> {
        if !self.plan.batching().row_by_row {
            return Ok(());
        }
        let rows = self.inputs.first().map_or(0, |t| t.shape()[0]);
        for row in 0..rows {
            let one = self.inputs.iter().map(|t| t.view().rows(row, row + 1));
            let outputs = self
                .plan
                .run(On::OneRow, one.collect())
                .map_err(|e| format!("run on the one-row plan, row {row}: {e}"))?;
            self.compare(&*outputs, Some(row))
                .map_err(|e| format!("one-row plan: {}", self.explain(e)))?;
        }
        Ok(())
    }

    /// Compares every output to onnxruntime's: all rows, or only `row` (a one-row run).
    fn compare(&self, got: &dyn OutputSet, row: Option<usize>) -> Result<(), Mismatch> {
        if got.len() != self.expected.len() {
            let n = self.expected.len();
            return Err(format!("{} outputs, onnxruntime has {n}", got.len()).into());
        }
        for (i, (o, want)) in self.meta.outputs.iter().zip(&self.expected).enumerate() {
            let got = got
                .get(i)
                .map_err(|e| format!("output \"{}\": {e}", o.name))?;
            compare_output(got, want, row).map_err(|mut m| {
                m.message = format!("output \"{}\": {}", o.name, m.message);
                m
            })?;
        }
        Ok(())
    }

    /// The mismatch's message followed by the inputs of its row.
    fn explain(&self, m: Mismatch) -> String {
        let Some(row) = m.row else {
            return m.message;
        };
        let shown: Vec<String> = self
            .inputs
            .iter()
            .zip(&self.meta.inputs)
            .map(|(t, i)| {
                let values = t.view().rows(row, row + 1);
                format!("{} = {}", i.name, row_text(&values))
            })
            .collect();
        format!("{} (inputs of row {row}: {})", m.message, shown.join(", "))
    }
}

/// A mismatch, with the batch row it is in (to show that row's inputs).
struct Mismatch {
    message: String,
    row: Option<usize>,
}

impl From<String> for Mismatch {
    fn from(message: String) -> Self {
        Mismatch { message, row: None }
    }
}

/// A row's values, shortened for a failure message.
fn row_text(t: &Tensor) -> String {
    let text = format!("{:?}", t.elements());
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// A tensor of the corpus format: `{"datatype", "shape", "data"}`.
fn tensor(stored: &Value) -> Result<Tensor, String> {
    let datatype = stored["datatype"].as_str().ok_or("no datatype")?;
    let shape = shape(stored)?;
    let data = stored["data"].as_array().ok_or("no data")?;
    match datatype {
        "FP32" => build_tensor(&shape, floats(data)?.into_iter().map(|v| v as f32)),
        "FP64" => build_tensor(&shape, floats(data)?),
        "INT64" => build_tensor(&shape, ints(data)?),
        "INT32" => build_tensor(&shape, ints(data)?.into_iter().map(|v| v as i32)),
        "BOOL" => build_tensor(&shape, bools(data)?),
        "BYTES" => build_tensor(&shape, strings(data)?),
        other => Err(format!("datatype {other} is not in the corpus format")),
    }
}

fn build_tensor<T>(shape: &[usize], data: impl IntoIterator<Item = T>) -> Result<Tensor, String>
where
    Vec<T>: Into<Elements>,
{
    Tensor::new(shape, data.into_iter().collect::<Vec<T>>())
}

fn shape(stored: &Value) -> Result<Vec<usize>, String> {
    stored["shape"]
        .as_array()
        .ok_or("no shape")?
        .iter()
        .map(|d| {
            d.as_u64()
                .map(|d| d as usize)
                .ok_or("a dimension is not a size")
        })
        .collect::<Result<_, _>>()
        .map_err(String::from)
}

/// Numbers, and the strings "NaN", "Infinity", "-Infinity".
fn floats(data: &[Value]) -> Result<Vec<f64>, String> {
    data.iter()
        .map(|v| match v {
            Value::Number(n) => n.as_f64().ok_or_else(|| format!("{n} is not a float")),
            Value::String(s) if s == "NaN" => Ok(f64::NAN),
            Value::String(s) if s == "Infinity" => Ok(f64::INFINITY),
            Value::String(s) if s == "-Infinity" => Ok(f64::NEG_INFINITY),
            other => Err(format!("{other} is not a float")),
        })
        .collect()
}

fn ints(data: &[Value]) -> Result<Vec<i64>, String> {
    data.iter()
        .map(|v| v.as_i64().ok_or_else(|| format!("{v} is not an integer")))
        .collect()
}

fn bools(data: &[Value]) -> Result<Vec<bool>, String> {
    data.iter()
        .map(|v| v.as_bool().ok_or_else(|| format!("{v} is not a boolean")))
        .collect()
}

fn strings(data: &[Value]) -> Result<Vec<String>, String> {
    data.iter()
        .map(|v| {
            v.as_str()
                .map(String::from)
                .ok_or_else(|| format!("{v} is not a string"))
        })
        .collect()
}

/// onnxruntime's answer for one output.
struct Expected {
    datatype: DataType,
    shape: Vec<usize>,
    values: Values,
}

enum Values {
    Floats(Vec<f64>),
    Ints(Vec<i64>),
    Bools(Vec<bool>),
    Strings(Vec<String>),
}

impl Expected {
    fn parse(stored: &Value) -> Result<Expected, String> {
        let name = stored["datatype"].as_str().ok_or("no datatype")?;
        let datatype = DataType::from_v2(name).ok_or_else(|| format!("datatype {name}?"))?;
        let data = stored["data"].as_array().ok_or("no data")?;
        let values = match datatype {
            DataType::F32 | DataType::F64 => Values::Floats(floats(data)?),
            DataType::I64 | DataType::I32 => Values::Ints(ints(data)?),
            DataType::Bool => Values::Bools(bools(data)?),
            DataType::Bytes => Values::Strings(strings(data)?),
            other => return Err(format!("datatype {other} is not in the corpus format")),
        };
        Ok(Expected {
            datatype,
            shape: shape(stored)?,
            values,
        })
    }

    /// Elements per batch row.
    fn stride(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    fn len(&self) -> usize {
        match &self.values {
            Values::Floats(v) => v.len(),
            Values::Ints(v) => v.len(),
            Values::Bools(v) => v.len(),
            Values::Strings(v) => v.len(),
        }
    }
}

fn compare_output(got: TensorView, want: &Expected, row: Option<usize>) -> Result<(), Mismatch> {
    if got.datatype() != want.datatype {
        return Err(format!(
            "datatype {}, onnxruntime's is {}",
            got.datatype(),
            want.datatype
        )
        .into());
    }
    let stride = want.stride();
    let (shape, range) = match row {
        None => (want.shape.clone(), 0..want.len()),
        Some(r) => {
            let mut shape = want.shape.clone();
            shape[0] = 1;
            (shape, r * stride..(r + 1) * stride)
        }
    };
    if got.shape != shape.as_slice() {
        return Err(format!("shape {:?}, onnxruntime's is {shape:?}", got.shape).into());
    }
    let base = range.start;
    // The flat index of the first mismatch, and the two values as text.
    let unlike = || {
        Mismatch::from(format!(
            "{} elements, onnxruntime's are not",
            got.datatype()
        ))
    };
    let first = match (&want.values, got.elements) {
        (Values::Floats(w), Slice::F32(g)) => {
            let g: Vec<f64> = g.iter().map(|v| f64::from(*v)).collect();
            first_difference(&g, &w[range], |a, b| close(*a, *b))
        }
        (Values::Floats(w), Slice::F64(g)) => first_difference(g, &w[range], |a, b| close(*a, *b)),
        (Values::Ints(w), Slice::I64(g)) => first_difference(g, &w[range], |a, b| a == b),
        (Values::Ints(w), Slice::I32(g)) => {
            let g: Vec<i64> = g.iter().map(|v| i64::from(*v)).collect();
            first_difference(&g, &w[range], |a, b| a == b)
        }
        (Values::Bools(w), Slice::Bool(g)) => first_difference(g, &w[range], |a, b| a == b),
        (Values::Strings(w), Slice::Bytes(g)) => first_difference(g, &w[range], |a, b| a == b),
        _ => return Err(unlike()),
    };
    match first {
        None => Ok(()),
        Some((i, got, want)) => {
            let flat = base + i;
            let at = (flat / stride.max(1), flat % stride.max(1));
            Err(Mismatch {
                message: format!(
                    "row {} element {}: got {got}, onnxruntime {want}",
                    at.0, at.1
                ),
                row: Some(at.0),
            })
        }
    }
}

fn first_difference<T: std::fmt::Debug>(
    got: &[T],
    want: &[T],
    same: impl Fn(&T, &T) -> bool,
) -> Option<(usize, String, String)> {
    got.iter()
        .zip(want)
        .position(|(g, w)| !same(g, w))
        .map(|i| (i, format!("{:?}", got[i]), format!("{:?}", want[i])))
}

/// Within the tolerance; NaN equals NaN, an infinity only the same infinity.
fn close(got: f64, want: f64) -> bool {
    if got.is_nan() || want.is_nan() {
        return got.is_nan() && want.is_nan();
    }
    if got.is_infinite() || want.is_infinite() {
        return got == want;
    }
    (got - want).abs() <= ATOL + RTOL * want.abs()
}
