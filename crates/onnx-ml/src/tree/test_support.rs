//! Building tree ensemble nodes and graphs for the tests.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TypeProto,
    ValueInfoProto, tensor_shape_proto, type_proto,
};
use tract_onnx::prelude::*;

use super::attrs::Attrs;

/// A node under construction.
#[derive(Clone)]
pub(super) struct Node(pub(super) NodeProto);

impl Node {
    pub(super) fn new(op: &str) -> Node {
        Node(NodeProto {
            name: "trees".into(),
            op_type: op.into(),
            ..NodeProto::default()
        })
    }

    fn with(
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

    pub(super) fn ints(self, name: &str, values: &[i64]) -> Node {
        self.with(name, AttributeType::Ints, |a| a.ints = values.to_vec())
    }

    pub(super) fn floats(self, name: &str, values: &[f32]) -> Node {
        self.with(name, AttributeType::Floats, |a| a.floats = values.to_vec())
    }

    pub(super) fn strings(self, name: &str, values: &[&str]) -> Node {
        self.with(name, AttributeType::Strings, |a| {
            a.strings = values.iter().map(|s| s.as_bytes().to_vec()).collect()
        })
    }

    pub(super) fn string(self, name: &str, value: &str) -> Node {
        self.with(name, AttributeType::String, |a| {
            a.s = value.as_bytes().to_vec()
        })
    }

    pub(super) fn int(self, name: &str, value: i64) -> Node {
        self.with(name, AttributeType::Int, |a| a.i = value)
    }

    /// A 1-D double tensor attribute (the `*_as_tensor` form).
    pub(super) fn doubles(self, name: &str, values: &[f64]) -> Node {
        let tensor = TensorProto {
            dims: vec![values.len() as i64],
            data_type: DataType::Double as i32,
            double_data: values.to_vec(),
            ..TensorProto::default()
        };
        self.with(name, AttributeType::Tensor, |a| a.t = Some(tensor))
    }

    pub(super) fn without(mut self, name: &str) -> Node {
        self.0.attribute.retain(|a| a.name != name);
        self
    }

    /// Calls `parse` with the node's attributes, as the ONNX parser would.
    pub(super) fn parse<T>(
        &self,
        op: &'static str,
        parse: impl FnOnce(&Attrs) -> TractResult<T>,
    ) -> TractResult<T> {
        let onnx = tract_onnx::onnx();
        let model = ModelProto::default();
        let ctx = ParsingContext {
            onnx_operator_set_version: 17,
            framework: &onnx,
            model: &model,
            parent_graphs: vec![],
            model_dir: None,
            template: InferenceModel::default(),
        };
        parse(&Attrs::new(op, &self.0, &ctx))
    }

    /// A model of this node alone, its input `X` of type `input` and shape `[N, width]`
    /// with a symbolic `N`, its outputs named `outputs`.
    pub(super) fn model(&self, input: DataType, width: i64, outputs: &[&str]) -> ModelProto {
        let mut node = self.0.clone();
        node.domain = "ai.onnx.ml".into();
        node.input = vec!["X".into()];
        node.output = outputs.iter().map(|o| o.to_string()).collect();
        let dim = |value: tensor_shape_proto::dimension::Value| tensor_shape_proto::Dimension {
            value: Some(value),
            ..Default::default()
        };
        let shape = tract_onnx::pb::TensorShapeProto {
            dim: vec![
                dim(tensor_shape_proto::dimension::Value::DimParam("N".into())),
                dim(tensor_shape_proto::dimension::Value::DimValue(width)),
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

/// One tree of one branch at `ids[0]` (`mode` on feature 0 against `threshold`) and two
/// leaves, `ids[1]` on the true side and `ids[2]` on the false side, in tree `tree`.
pub(super) fn stump(op: &str, tree: i64, ids: [i64; 3], mode: &str, threshold: f32) -> Node {
    Node::new(op)
        .ints("nodes_treeids", &[tree; 3])
        .ints("nodes_nodeids", &ids)
        .ints("nodes_featureids", &[0, 0, 0])
        .strings("nodes_modes", &[mode, "LEAF", "LEAF"])
        .floats("nodes_values", &[threshold, 0.0, 0.0])
        .ints("nodes_truenodeids", &[ids[1], 0, 0])
        .ints("nodes_falsenodeids", &[ids[2], 0, 0])
}

/// A `[N, 1]` float input.
pub(super) fn column(values: &[f32]) -> TValue {
    tract_ndarray::Array::from_shape_vec((values.len(), 1), values.to_vec())
        .unwrap()
        .into_tensor()
        .into_tvalue()
}

/// The values of a float output, row by row.
pub(super) fn rows(output: &TValue) -> Vec<Vec<f32>> {
    let view = output.to_plain_array_view::<f32>().unwrap();
    view.outer_iter()
        .map(|row| row.iter().copied().collect())
        .collect()
}

/// Asserts two float matrices are equal within `1e-6` (NaN equal to NaN).
#[track_caller]
pub(super) fn assert_close(found: &[Vec<f32>], expected: &[&[f32]]) {
    let same = found.len() == expected.len()
        && found.iter().zip(expected).all(|(f, e)| {
            f.len() == e.len()
                && f.iter()
                    .zip(e.iter())
                    .all(|(a, b)| (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-6)
        });
    assert!(same, "found {found:?}, expected {expected:?}");
}
