//! Test helpers for every operator: nodes with attributes (free functions, or the [`Node`]
//! builder), a one-node model whose input's batch is the symbol `N`, a kernel typed in such a
//! graph and evaluated, and float comparisons.

use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, type_proto,
};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::{DimLike, bail};

use crate::kernel::{Kernel, inference_op};

/// A node named `n` of `op_type` with these attributes.
pub(crate) fn node(op_type: &str, attributes: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        name: "n".into(),
        op_type: op_type.into(),
        attribute: attributes,
        ..NodeProto::default()
    }
}

fn attr(name: &str, ty: AttributeType) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: ty as i32,
        ..AttributeProto::default()
    }
}

pub(crate) fn floats(name: &str, v: &[f32]) -> AttributeProto {
    AttributeProto {
        floats: v.to_vec(),
        ..attr(name, AttributeType::Floats)
    }
}

pub(crate) fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        ints: v.to_vec(),
        ..attr(name, AttributeType::Ints)
    }
}

pub(crate) fn strings(name: &str, v: &[&str]) -> AttributeProto {
    let strings = v.iter().map(|s| s.as_bytes().to_vec()).collect();
    AttributeProto {
        strings,
        ..attr(name, AttributeType::Strings)
    }
}

pub(crate) fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        f: v,
        ..attr(name, AttributeType::Float)
    }
}

pub(crate) fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        i: v,
        ..attr(name, AttributeType::Int)
    }
}

pub(crate) fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        s: v.as_bytes().to_vec(),
        ..attr(name, AttributeType::String)
    }
}

pub(crate) fn tensor(name: &str, t: TensorProto) -> AttributeProto {
    AttributeProto {
        t: Some(t),
        ..attr(name, AttributeType::Tensor)
    }
}

/// The type and dims of the kernel's outputs once a graph feeding it inputs of these
/// types and dims is typed; `None` stands for the batch symbol `N`, in the inputs and in
/// the outputs (where any other symbolic dim is an error).
pub(crate) fn typed_outputs<K: Kernel>(
    kernel: K,
    inputs: &[(DatumType, &[Option<usize>])],
) -> TractResult<Vec<(DatumType, Vec<Option<usize>>)>> {
    let mut model = InferenceModel::default();
    let n: TDim = model.sym("N").into();
    let mut wires = tvec!();
    for (ix, (dt, shape)) in inputs.iter().enumerate() {
        let dims: TVec<TDim> = shape
            .iter()
            .map(|d| d.map(TDim::from).unwrap_or(n.clone()))
            .collect();
        wires.push(model.add_source(format!("x{ix}"), dt.fact(dims).into())?);
    }
    let outputs = model.wire_node("op", inference_op(kernel), &wires)?;
    model.select_output_outlets(&outputs)?;
    let typed = model.into_typed()?;
    let mut facts = vec![];
    for outlet in typed.output_outlets()? {
        let fact = typed.outlet_fact(*outlet)?;
        let dims = fact.shape.iter().map(|d| match d.to_usize() {
            Ok(d) => Ok(Some(d)),
            Err(_) if *d == n => Ok(None),
            Err(_) => bail!("output dim {d} is neither concrete nor N"),
        });
        facts.push((fact.datum_type, dims.collect::<TractResult<_>>()?));
    }
    Ok(facts)
}

/// Evaluates a kernel on these tensors.
pub(crate) fn eval<K: Kernel>(kernel: &K, inputs: Vec<Tensor>) -> TractResult<TVec<Tensor>> {
    let outputs = kernel.eval(inputs.into_iter().map(|t| t.into_tvalue()).collect())?;
    Ok(outputs.into_iter().map(|t| t.into_tensor()).collect())
}

/// Evaluates a kernel on one tensor: its first output.
pub(crate) fn run<K: Kernel>(kernel: &K, x: Tensor) -> TractResult<Tensor> {
    Ok(eval(kernel, vec![x])?.remove(0))
}

/// The elements of a float tensor.
pub(crate) fn f32s(t: &Tensor) -> Vec<f32> {
    t.try_as_plain_ram()
        .unwrap()
        .as_slice::<f32>()
        .unwrap()
        .to_vec()
}

/// A node under construction; each setter replaces an attribute of the same name.
#[derive(Clone)]
pub(crate) struct Node(pub(crate) NodeProto);

impl Node {
    /// A node of `op` named `name`, without attributes.
    pub(crate) fn new(op: &str, name: &str) -> Node {
        Node(NodeProto {
            name: name.into(),
            op_type: op.into(),
            ..NodeProto::default()
        })
    }

    /// The node with `attr` in place of any attribute of its name.
    pub(crate) fn with(mut self, attr: AttributeProto) -> Node {
        self.0.attribute.retain(|a| a.name != attr.name);
        self.0.attribute.push(attr);
        self
    }

    pub(crate) fn floats(self, name: &str, values: &[f32]) -> Node {
        self.with(floats(name, values))
    }

    pub(crate) fn ints(self, name: &str, values: &[i64]) -> Node {
        self.with(ints(name, values))
    }

    pub(crate) fn strings(self, name: &str, values: &[&str]) -> Node {
        self.with(strings(name, values))
    }

    pub(crate) fn string(self, name: &str, value: &str) -> Node {
        self.with(string(name, value))
    }

    pub(crate) fn int(self, name: &str, value: i64) -> Node {
        self.with(int(name, value))
    }

    pub(crate) fn without(mut self, name: &str) -> Node {
        self.0.attribute.retain(|a| a.name != name);
        self
    }

    /// A model of this node alone (domain ai.onnx.ml, opsets 17 and 3): input `X` of type
    /// `input` and shape `[N, width]` with a symbolic `N`, outputs named `outputs`.
    pub(crate) fn model(&self, input: DataType, width: i64, outputs: &[&str]) -> ModelProto {
        let mut node = self.0.clone();
        node.domain = "ai.onnx.ml".into();
        node.input = vec!["X".into()];
        node.output = outputs.iter().map(|o| o.to_string()).collect();
        let dim = |value| Dimension {
            value: Some(value),
            ..Default::default()
        };
        let shape = TensorShapeProto {
            dim: vec![
                dim(dimension::Value::DimParam("N".into())),
                dim(dimension::Value::DimValue(width)),
            ],
        };
        let x = ValueInfoProto {
            name: "X".into(),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: input as i32,
                    shape: Some(shape),
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        let output = |name: &&str| ValueInfoProto {
            name: name.to_string(),
            ..Default::default()
        };
        let opset = |domain: &str, version| OperatorSetIdProto {
            domain: domain.into(),
            version,
        };
        ModelProto {
            ir_version: 9,
            opset_import: vec![opset("", 17), opset("ai.onnx.ml", 3)],
            graph: Some(GraphProto {
                node: vec![node],
                input: vec![x],
                output: outputs.iter().map(output).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// The values of a float output, row by row.
pub(crate) fn rows(output: &Tensor) -> Vec<Vec<f32>> {
    let view = output.to_plain_array_view::<f32>().unwrap();
    view.outer_iter()
        .map(|row| row.iter().copied().collect())
        .collect()
}

/// Asserts two float matrices are equal within `tolerance` (NaN equal to NaN).
#[track_caller]
pub(crate) fn assert_close(found: &[Vec<f32>], expected: &[&[f32]], tolerance: f32) {
    let same = found.len() == expected.len()
        && found.iter().zip(expected).all(|(f, e)| {
            f.len() == e.len()
                && f.iter()
                    .zip(e.iter())
                    .all(|(a, b)| (a.is_nan() && b.is_nan()) || (a - b).abs() <= tolerance)
        });
    assert!(same, "found {found:?}, expected {expected:?}");
}
