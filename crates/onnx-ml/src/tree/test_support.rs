//! Building tree ensembles for the tests, on [`crate::testing::Node`].

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::{ModelProto, TensorProto};
use tract_onnx::prelude::*;

use super::attrs::Attrs;
use crate::testing;
pub(super) use crate::testing::{Node, rows};

impl Node {
    /// A 1-D double tensor attribute (the `*_as_tensor` form).
    pub(super) fn doubles(self, name: &str, values: &[f64]) -> Node {
        let tensor = TensorProto {
            dims: vec![values.len() as i64],
            data_type: DataType::Double as i32,
            double_data: values.to_vec(),
            ..TensorProto::default()
        };
        self.with(testing::tensor(name, tensor))
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
}

/// One tree of one branch at `ids[0]` (`mode` on feature 0 against `threshold`) and two
/// leaves, `ids[1]` on the true side and `ids[2]` on the false side, in tree `tree`.
pub(super) fn stump(op: &str, tree: i64, ids: [i64; 3], mode: &str, threshold: f32) -> Node {
    Node::new(op, "trees")
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

/// Asserts two float matrices are equal within 1e-6 (NaN equal to NaN).
#[track_caller]
pub(super) fn assert_close(found: &[Vec<f32>], expected: &[&[f32]]) {
    testing::assert_close(found, expected, 1e-6)
}
