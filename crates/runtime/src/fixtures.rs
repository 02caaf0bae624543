//! Tiny ONNX models written as protobuf by hand, for tests that must not depend on Python
//! or on the example files. Each builder returns the bytes of a `.onnx` file. Also the
//! temporary directory tests put model files in ([`TempDir`]).
//!
//! Also compiled into the crate's integration tests (`#[path]`), so it uses only
//! `tract_onnx::pb` and `prost`.
#![allow(dead_code)]

use prost::Message;
use tract_onnx::pb;

/// ONNX element type codes.
pub const FLOAT: i32 = 1;
pub const UINT8: i32 = 2;
pub const INT8: i32 = 3;
pub const UINT16: i32 = 4;
pub const INT16: i32 = 5;
pub const INT32: i32 = 6;
pub const INT64: i32 = 7;
pub const STRING: i32 = 8;
pub const BOOL: i32 = 9;
pub const FLOAT16: i32 = 10;
pub const DOUBLE: i32 = 11;
pub const UINT32: i32 = 12;
pub const UINT64: i32 = 13;

/// A temporary directory for model files, removed when dropped (also when a test fails).
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// An empty directory, unique to this call: tests run concurrently in one process, and
    /// two that asked for the same tag once removed each other's files mid-test.
    pub fn new(tag: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("serve-model-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// Writes a file at this relative path (making its directories) and returns its path.
    pub fn file(&self, rel: &str, content: &[u8]) -> std::path::PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A dimension in a declared shape.
#[derive(Clone, Copy)]
pub enum D {
    /// `dim_param: "N"`: the batch.
    N,
    /// A fixed size.
    F(i64),
    /// A dimension with neither value nor name.
    Unknown,
    /// `dim_param` of this name (tf2onnx names each input's batch `unk__<n>`).
    Named(&'static str),
}

/// A value info (graph input or output) of this type and shape.
pub fn vi(name: &str, elem: i32, dims: &[D]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: match d {
                D::N => Some(Value::DimParam("N".into())),
                D::F(n) => Some(Value::DimValue(*n)),
                D::Unknown => None,
                D::Named(n) => Some(Value::DimParam((*n).into())),
            },
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: elem,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A node.
pub fn node(
    op: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: format!("{op}_{}", outputs.first().copied().unwrap_or("")),
        op_type: op.into(),
        attribute: attrs,
        ..Default::default()
    }
}

/// An integer attribute.
pub fn attr_i(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 2,
        i,
        ..Default::default()
    }
}

/// A list-of-integers attribute.
pub fn attr_ints(name: &str, ints: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 7,
        ints: ints.to_vec(),
        ..Default::default()
    }
}

/// A list-of-strings attribute.
pub fn attr_strings(name: &str, strings: &[&str]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 8,
        strings: strings.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..Default::default()
    }
}

/// An FP32 initializer.
pub fn init_f32(name: &str, dims: &[i64], data: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: FLOAT,
        float_data: data.to_vec(),
        ..Default::default()
    }
}

/// An INT64 initializer.
pub fn init_i64(name: &str, dims: &[i64], data: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: INT64,
        int64_data: data.to_vec(),
        ..Default::default()
    }
}

/// The file bytes of a model with this graph (opset 13, plus ai.onnx.ml 2).
pub fn model(graph: pb::GraphProto) -> Vec<u8> {
    pb::ModelProto {
        ir_version: 8,
        producer_name: "serve-model fixtures".into(),
        opset_import: vec![
            pb::OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            },
            pb::OperatorSetIdProto {
                domain: "ai.onnx.ml".into(),
                version: 2,
            },
        ],
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

/// A graph from its parts.
pub fn graph(
    nodes: Vec<pb::NodeProto>,
    inputs: Vec<pb::ValueInfoProto>,
    outputs: Vec<pb::ValueInfoProto>,
    initializers: Vec<pb::TensorProto>,
) -> pb::GraphProto {
    pb::GraphProto {
        name: "g".into(),
        node: nodes,
        input: inputs,
        output: outputs,
        initializer: initializers,
        ..Default::default()
    }
}

/// [`iris_like`] with a `value_info` that contradicts the graph (it says the MatMul gives
/// [N, 7]), as some third-party exporters write: tract loads it only when told to ignore
/// value_info.
pub fn conflicting_value_info() -> Vec<u8> {
    let mut proto = pb::ModelProto::decode(&iris_like()[..]).unwrap();
    let graph = proto.graph.as_mut().unwrap();
    graph.value_info.push(vi("mm", FLOAT, &[D::N, D::F(7)]));
    proto.encode_to_vec()
}

/// The iris model's interface on a trivial linear map: `input` FP32 [N,4] → `y` FP32 [N,3].
pub fn iris_like() -> Vec<u8> {
    let w: Vec<f32> = (0..12).map(|i| i as f32 / 10.0).collect();
    model(graph(
        vec![
            node("MatMul", &["input", "W"], &["mm"], vec![]),
            node("Add", &["mm", "B"], &["y"], vec![]),
        ],
        vec![vi("input", FLOAT, &[D::N, D::F(4)])],
        vec![vi("y", FLOAT, &[D::N, D::F(3)])],
        vec![
            init_f32("W", &[4, 3], &w),
            init_f32("B", &[3], &[0.5, -0.5, 1.0]),
        ],
    ))
}

/// [`iris_like`] with its weight `W` in an external data file beside it (`iris.onnx.data`),
/// as `onnx.save_model(..., save_as_external_data=True)` writes large models: the model file
/// written into `dir` as `iris.onnx`, its path returned.
pub fn iris_like_external(dir: &TempDir) -> std::path::PathBuf {
    let mut proto = pb::ModelProto::decode(&iris_like()[..]).unwrap();
    let graph = proto.graph.as_mut().unwrap();
    let w = graph
        .initializer
        .iter_mut()
        .find(|t| t.name == "W")
        .unwrap();
    let raw: Vec<u8> = w.float_data.iter().flat_map(|v| v.to_le_bytes()).collect();
    w.float_data.clear();
    w.data_location = Some(1); // EXTERNAL
    let entry = |key: &str, value: String| pb::StringStringEntryProto {
        key: key.into(),
        value,
    };
    w.external_data = vec![
        entry("location", "iris.onnx.data".into()),
        entry("offset", "0".into()),
        entry("length", raw.len().to_string()),
    ];
    dir.file("iris.onnx.data", &raw);
    dir.file("iris.onnx", &proto.encode_to_vec())
}

/// A deliberately slow model: `x` FP32 [N, width] through `depth` MatMuls by the same
/// width × width weight (each entry 1/width, so values stay put): about
/// 2 · depth · width² floating-point operations a row, for tests that need a model call to
/// last while other requests wait in the queue.
pub fn slow(width: i64, depth: usize) -> Vec<u8> {
    let w = vec![1.0 / width as f32; (width * width) as usize];
    let names: Vec<String> = (0..=depth)
        .map(|i| match i {
            0 => "x".to_string(),
            i if i == depth => "y".to_string(),
            i => format!("h{i}"),
        })
        .collect();
    let nodes = names
        .windows(2)
        .map(|pair| node("MatMul", &[&pair[0], "W"], &[&pair[1]], vec![]))
        .collect();
    model(graph(
        nodes,
        vec![vi("x", FLOAT, &[D::N, D::F(width)])],
        vec![vi("y", FLOAT, &[D::N, D::F(width)])],
        vec![init_f32("W", &[width, width], &w)],
    ))
}

/// A classifier like the example iris: `input` FP32 [N,4] → `label` INT64 [N] (ArgMax) and
/// `probabilities` FP32 [N,3] (Softmax). Weights: class k scores feature k (k < 3).
pub fn classifier() -> Vec<u8> {
    let mut w = vec![0f32; 12];
    for k in 0..3 {
        w[k * 3 + k] = 1.0;
    }
    model(graph(
        vec![
            node("MatMul", &["input", "W"], &["scores"], vec![]),
            node(
                "Softmax",
                &["scores"],
                &["probabilities"],
                vec![attr_i("axis", 1)],
            ),
            node(
                "ArgMax",
                &["scores"],
                &["label"],
                vec![attr_i("axis", 1), attr_i("keepdims", 0)],
            ),
        ],
        vec![vi("input", FLOAT, &[D::N, D::F(4)])],
        vec![
            vi("label", INT64, &[D::N]),
            vi("probabilities", FLOAT, &[D::N, D::F(3)]),
        ],
        vec![init_f32("W", &[4, 3], &w)],
    ))
}

/// Titanic's interface on a tiny graph: `Age` FP32 [N,1], `Sex` STRING [N,1] (through
/// CategoryMapper, unknown → -1) and `Pclass` INT64 [N,1] → `predict` FP32 [N,1] =
/// sigmoid(Age/100 + sex_index + Pclass).
pub fn records() -> Vec<u8> {
    model(graph(
        vec![
            pb::NodeProto {
                domain: "ai.onnx.ml".into(),
                ..node(
                    "CategoryMapper",
                    &["Sex"],
                    &["sex_i"],
                    vec![
                        attr_strings("cats_strings", &["male", "female"]),
                        attr_ints("cats_int64s", &[0, 1]),
                        attr_i("default_int64", -1),
                    ],
                )
            },
            node(
                "Cast",
                &["sex_i"],
                &["sex_f"],
                vec![attr_i("to", FLOAT as i64)],
            ),
            node(
                "Cast",
                &["Pclass"],
                &["class_f"],
                vec![attr_i("to", FLOAT as i64)],
            ),
            node("Div", &["Age", "hundred"], &["age_s"], vec![]),
            node("Add", &["age_s", "sex_f"], &["s1"], vec![]),
            node("Add", &["s1", "class_f"], &["s2"], vec![]),
            node("Sigmoid", &["s2"], &["predict"], vec![]),
        ],
        vec![
            vi("Age", FLOAT, &[D::N, D::F(1)]),
            vi("Sex", STRING, &[D::N, D::F(1)]),
            vi("Pclass", INT64, &[D::N, D::F(1)]),
        ],
        vec![vi("predict", FLOAT, &[D::N, D::F(1)])],
        vec![init_f32("hundred", &[], &[100.0])],
    ))
}

/// One Identity per datatype: input `t_<TYPE>` [N,2] → output `o_<TYPE>`, so that every
/// datatype can be sent and answered.
pub fn identities() -> Vec<u8> {
    let types = [
        ("BOOL", BOOL),
        ("UINT8", UINT8),
        ("UINT16", UINT16),
        ("UINT32", UINT32),
        ("UINT64", UINT64),
        ("INT8", INT8),
        ("INT16", INT16),
        ("INT32", INT32),
        ("INT64", INT64),
        ("FP16", FLOAT16),
        ("FP32", FLOAT),
        ("FP64", DOUBLE),
        ("BYTES", STRING),
    ];
    let mut nodes = vec![];
    let mut inputs = vec![];
    let mut outputs = vec![];
    for (name, code) in types {
        let i = format!("t_{name}");
        let o = format!("o_{name}");
        nodes.push(node("Identity", &[&i], &[&o], vec![]));
        inputs.push(vi(&i, code, &[D::N, D::F(2)]));
        outputs.push(vi(&o, code, &[D::N, D::F(2)]));
    }
    model(graph(nodes, inputs, outputs, vec![]))
}

/// `Cast` to int64, whose output tract types as TDim: `x` FP32 [N,2] → `xi` INT64 [N,2].
pub fn cast_to_int64() -> Vec<u8> {
    model(graph(
        vec![node(
            "Cast",
            &["x"],
            &["xi"],
            vec![attr_i("to", INT64 as i64)],
        )],
        vec![vi("x", FLOAT, &[D::N, D::F(2)])],
        vec![vi("xi", INT64, &[D::N, D::F(2)])],
        vec![],
    ))
}

/// Parses as ONNX but uses an operator tract does not know: `x` → `FancyOp` → `y`.
pub fn unimplemented_op() -> Vec<u8> {
    model(graph(
        vec![node("FancyOp", &["x"], &["y"], vec![])],
        vec![vi("x", FLOAT, &[D::N, D::F(2)])],
        vec![vi("y", FLOAT, &[D::N, D::F(2)])],
        vec![],
    ))
}

/// An ONNX operator that tract lacks and onnxruntime runs: `x` [N, 2, 2] → `Det` → `y` [N].
pub fn determinant() -> Vec<u8> {
    model(graph(
        vec![node("Det", &["x"], &["y"], vec![])],
        vec![vi("x", FLOAT, &[D::N, D::F(2), D::F(2)])],
        vec![vi("y", FLOAT, &[D::N])],
        vec![],
    ))
}

/// Parses as ONNX but cannot be typed: a MatMul of [N,4] by [3,3].
pub fn mistyped() -> Vec<u8> {
    model(graph(
        vec![node("MatMul", &["x", "W"], &["y"], vec![])],
        vec![vi("x", FLOAT, &[D::N, D::F(4)])],
        vec![vi("y", FLOAT, &[D::N, D::F(3)])],
        vec![init_f32("W", &[3, 3], &[0.0; 9])],
    ))
}

/// [`mistyped`] repaired: the same interface, a [4,3] weight.
pub fn mistyped_fixed() -> Vec<u8> {
    model(graph(
        vec![node("MatMul", &["x", "W"], &["y"], vec![])],
        vec![vi("x", FLOAT, &[D::N, D::F(4)])],
        vec![vi("y", FLOAT, &[D::N, D::F(3)])],
        vec![init_f32("W", &[4, 3], &[1.0; 12])],
    ))
}

/// An output that is not a tensor (its type is a sequence, which tract's protobuf does not
/// even decode) and that no ZipMap makes.
pub fn sequence_output() -> Vec<u8> {
    let mut out = vi("probs", FLOAT, &[D::N]);
    out.r#type = Some(pb::TypeProto::default());
    model(graph(
        vec![node("Identity", &["x"], &["probs"], vec![])],
        vec![vi("x", FLOAT, &[D::N, D::F(2)])],
        vec![out],
        vec![],
    ))
}

/// A classifier as scikit-learn exports one by default: `x` FP32 [N, 3] → `output_label`
/// (the argmax, INT64 [N]) and `output_probability` (the softmax of `x` through a ZipMap, a
/// sequence of maps keyed by the labels 0, 1, 2, or "a", "b", "c" when `strings`).
pub fn zipmap(strings: bool) -> Vec<u8> {
    let mut out = vi("output_probability", FLOAT, &[D::N]);
    out.r#type = Some(pb::TypeProto::default());
    let labels = if strings {
        attr_strings("classlabels_strings", &["a", "b", "c"])
    } else {
        attr_ints("classlabels_int64s", &[0, 1, 2])
    };
    let mut zipmap = node(
        "ZipMap",
        &["probabilities"],
        &["output_probability"],
        vec![labels],
    );
    zipmap.domain = "ai.onnx.ml".into();
    model(graph(
        vec![
            node(
                "Softmax",
                &["x"],
                &["probabilities"],
                vec![attr_i("axis", 1)],
            ),
            node(
                "ArgMax",
                &["x"],
                &["output_label"],
                vec![attr_i("axis", 1), attr_i("keepdims", 0)],
            ),
            zipmap,
        ],
        vec![vi("x", FLOAT, &[D::N, D::F(3)])],
        vec![vi("output_label", INT64, &[D::N]), out],
        vec![],
    ))
}

/// Five inputs as tf2onnx declares a Keras model's: each `[unk__<n>, 1]` FP32 with its own
/// batch name, concatenated into `y` `[N, 5]` and summed into `sum` `[N, 1]`. The Concat
/// joins the five batch dimensions, which tract can type only when they are one symbol.
pub fn separate_batch_names() -> Vec<u8> {
    const NAMES: [&str; 5] = ["unk__62", "unk__64", "unk__66", "unk__68", "unk__70"];
    const INPUTS: [&str; 5] = ["age", "fare", "sibsp", "parch", "pclass"];
    let inputs = INPUTS
        .iter()
        .zip(NAMES)
        .map(|(input, batch)| vi(input, FLOAT, &[D::Named(batch), D::F(1)]))
        .collect();
    model(graph(
        vec![
            node("Concat", &INPUTS, &["y"], vec![attr_i("axis", 1)]),
            node(
                "ReduceSum",
                &["y", "axes"],
                &["sum"],
                vec![attr_i("keepdims", 1)],
            ),
        ],
        inputs,
        vec![
            vi("y", FLOAT, &[D::Named("unk__71"), D::F(5)]),
            vi("sum", FLOAT, &[D::Named("unk__72"), D::F(1)]),
        ],
        vec![init_i64("axes", &[1], &[1])],
    ))
}

/// A weight also listed among the graph inputs, as older exporters do: `x` + `w` → `y`.
pub fn with_initializer_input() -> Vec<u8> {
    model(graph(
        vec![node("Add", &["x", "w"], &["y"], vec![])],
        vec![vi("x", FLOAT, &[D::N, D::F(2)]), vi("w", FLOAT, &[D::F(2)])],
        vec![vi("y", FLOAT, &[D::N, D::F(2)])],
        vec![init_f32("w", &[2], &[1.0, 2.0])],
    ))
}

/// A model without a batch dimension: `x` FP32 [2] → `y` = x * 2.
pub fn fixed_shape() -> Vec<u8> {
    model(graph(
        vec![node("Mul", &["x", "two"], &["y"], vec![])],
        vec![vi("x", FLOAT, &[D::F(2)])],
        vec![vi("y", FLOAT, &[D::F(2)])],
        vec![init_f32("two", &[], &[2.0])],
    ))
}

/// A model whose output is not per row: `x` FP32 [N,2] → `total` FP32 [] (ReduceSum).
pub fn reduce_all() -> Vec<u8> {
    model(graph(
        vec![node(
            "ReduceSum",
            &["x"],
            &["total"],
            vec![attr_i("keepdims", 0)],
        )],
        vec![vi("x", FLOAT, &[D::N, D::F(2)])],
        vec![vi("total", FLOAT, &[])],
        vec![],
    ))
}

/// Fails at run time for some inputs: `idx` INT64 [N] gathers from a 3-element constant.
pub fn gather() -> Vec<u8> {
    model(graph(
        vec![node(
            "Gather",
            &["table", "idx"],
            &["y"],
            vec![attr_i("axis", 0)],
        )],
        vec![vi("idx", INT64, &[D::N])],
        vec![vi("y", FLOAT, &[D::N])],
        vec![init_f32("table", &[3], &[10.0, 20.0, 30.0])],
    ))
}

/// A variable non-batch dimension: `x` FP32 [N,?] → `y` = x + 1.
pub fn variable_row() -> Vec<u8> {
    model(graph(
        vec![node("Add", &["x", "one"], &["y"], vec![])],
        vec![vi("x", FLOAT, &[D::N, D::Unknown])],
        vec![vi("y", FLOAT, &[D::N, D::Unknown])],
        vec![init_f32("one", &[], &[1.0])],
    ))
}

/// A model with `bytes` of weights in `raw_data` (and the graph's inputs and outputs after
/// them in the file, as exporters write): `x` FP32 [N,2] → `y` = x + w[..2], where `w` is
/// an FP32 initializer of `bytes / 4` zeros.
pub fn with_weights(bytes: usize) -> Vec<u8> {
    let n = (bytes / 4).max(2);
    let w = pb::TensorProto {
        name: "w".into(),
        dims: vec![n as i64],
        data_type: FLOAT,
        raw_data: vec![0; n * 4],
        ..Default::default()
    };
    model(graph(
        vec![
            node("Slice", &["w", "starts", "ends"], &["w2"], vec![]),
            node("Add", &["x", "w2"], &["y"], vec![]),
        ],
        vec![vi("x", FLOAT, &[D::N, D::F(2)])],
        vec![vi("y", FLOAT, &[D::N, D::F(2)])],
        vec![
            w,
            init_i64("starts", &[1], &[0]),
            init_i64("ends", &[1], &[2]),
        ],
    ))
}

/// A graph tract types only for a known batch, like the PP-OCR direction classifier in the
/// rapidocr wheel: a `Reshape` whose target is computed from the input's shape through
/// casts (`Concat(Cast(Slice(Cast(Shape(x)))), [6])`). `x` FP32 [N,2,3] → `y` [N,6];
/// with `fixed_output`, `y` is declared [1,6] instead (not one row per input row).
pub fn shape_from_input(fixed_output: bool) -> Vec<u8> {
    let out = if fixed_output { D::F(1) } else { D::N };
    model(graph(
        vec![
            node("Shape", &["x"], &["shape"], vec![]),
            node(
                "Cast",
                &["shape"],
                &["shape32"],
                vec![attr_i("to", INT32 as i64)],
            ),
            node(
                "Slice",
                &["shape32", "zero", "one", "zero", "one"],
                &["batch32"],
                vec![],
            ),
            node(
                "Cast",
                &["batch32"],
                &["batch"],
                vec![attr_i("to", INT64 as i64)],
            ),
            node(
                "Concat",
                &["batch", "six"],
                &["target"],
                vec![attr_i("axis", -1)],
            ),
            node("Reshape", &["x", "target"], &["y"], vec![]),
        ],
        vec![vi("x", FLOAT, &[D::N, D::F(2), D::F(3)])],
        vec![vi("y", FLOAT, &[out, D::F(6)])],
        vec![
            init_i64("zero", &[1], &[0]),
            init_i64("one", &[1], &[1]),
            init_i64("six", &[1], &[6]),
        ],
    ))
}
