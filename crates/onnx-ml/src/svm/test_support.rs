//! Building SVM nodes and one-node graphs for the tests.

use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};
use tract_onnx::pb::type_proto;
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};
use tract_onnx::prelude::*;

/// A node under construction; each setter replaces an attribute of the same name.
#[derive(Clone)]
pub(super) struct Node(pub(super) NodeProto);

impl Node {
    pub(super) fn new(op: &str) -> Node {
        Node(NodeProto {
            name: "svm".into(),
            op_type: op.into(),
            ..NodeProto::default()
        })
    }

    fn set(
        mut self,
        name: &str,
        ty: AttributeType,
        fill: impl FnOnce(&mut AttributeProto),
    ) -> Node {
        self.0.attribute.retain(|a| a.name != name);
        let mut attr = AttributeProto {
            name: name.into(),
            r#type: ty as i32,
            ..AttributeProto::default()
        };
        fill(&mut attr);
        self.0.attribute.push(attr);
        self
    }

    pub(super) fn floats(self, name: &str, values: &[f32]) -> Node {
        self.set(name, AttributeType::Floats, |a| a.floats = values.to_vec())
    }

    pub(super) fn ints(self, name: &str, values: &[i64]) -> Node {
        self.set(name, AttributeType::Ints, |a| a.ints = values.to_vec())
    }

    pub(super) fn strings(self, name: &str, values: &[&str]) -> Node {
        self.set(name, AttributeType::Strings, |a| {
            a.strings = values.iter().map(|s| s.as_bytes().to_vec()).collect()
        })
    }

    pub(super) fn string(self, name: &str, value: &str) -> Node {
        self.set(name, AttributeType::String, |a| {
            a.s = value.as_bytes().to_vec()
        })
    }

    pub(super) fn int(self, name: &str, value: i64) -> Node {
        self.set(name, AttributeType::Int, |a| a.i = value)
    }

    pub(super) fn without(mut self, name: &str) -> Node {
        self.0.attribute.retain(|a| a.name != name);
        self
    }

    /// A model of this node alone: input `X` of type `input` and shape `[N, width]` with a
    /// symbolic `N`, outputs named `outputs`.
    pub(super) fn model(&self, input: DataType, width: i64, outputs: &[&str]) -> ModelProto {
        let mut node = self.0.clone();
        node.domain = "ai.onnx.ml".into();
        node.input = vec!["X".into()];
        node.output = outputs.iter().map(|o| o.to_string()).collect();
        let dims = [
            dimension::Value::DimParam("N".into()),
            dimension::Value::DimValue(width),
        ];
        let shape = TensorShapeProto {
            dim: dims
                .into_iter()
                .map(|d| Dimension {
                    value: Some(d),
                    ..Default::default()
                })
                .collect(),
        };
        let tensor = type_proto::Tensor {
            elem_type: input as i32,
            shape: Some(shape),
        };
        let x = ValueInfoProto {
            name: "X".into(),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(tensor)),
                ..Default::default()
            }),
            ..Default::default()
        };
        let output = |name: &&str| ValueInfoProto {
            name: name.to_string(),
            ..Default::default()
        };
        ModelProto {
            ir_version: 9,
            opset_import: vec![
                OperatorSetIdProto {
                    domain: String::new(),
                    version: 17,
                },
                OperatorSetIdProto {
                    domain: "ai.onnx.ml".into(),
                    version: 3,
                },
            ],
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

/// The typed model of a one-node graph, as serve plans it: batch `N` symbolic.
pub(super) fn typed(model: &ModelProto) -> TractResult<TypedModel> {
    crate::onnx().model_for_proto_model(model)?.into_typed()
}

/// Runs a typed model on one input.
pub(super) fn run(model: TypedModel, input: Tensor) -> TractResult<TVec<TValue>> {
    model
        .into_optimized()?
        .into_runnable()?
        .run(tvec!(input.into_tvalue()))
}

/// A `[rows, width]` float tensor.
pub(super) fn matrix<const W: usize>(rows: &[[f32; W]]) -> Tensor {
    let values: Vec<f32> = rows.iter().flatten().copied().collect();
    tract_ndarray::Array2::from_shape_vec((rows.len(), W), values)
        .unwrap()
        .into_tensor()
}

/// The values of a float output, row by row.
pub(super) fn rows(output: &Tensor) -> Vec<Vec<f32>> {
    let view = output.to_plain_array_view::<f32>().unwrap();
    view.outer_iter()
        .map(|row| row.iter().copied().collect())
        .collect()
}

/// Asserts two float matrices are equal within `tolerance`.
#[track_caller]
pub(super) fn assert_close(found: &[Vec<f32>], expected: &[&[f32]], tolerance: f32) {
    let same = found.len() == expected.len()
        && found.iter().zip(expected).all(|(f, e)| {
            f.len() == e.len()
                && f.iter()
                    .zip(e.iter())
                    .all(|(a, b)| (a - b).abs() <= tolerance)
        });
    assert!(same, "found {found:?}, expected {expected:?}");
}
