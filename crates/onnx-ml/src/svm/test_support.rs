//! Running SVM one-node graphs for the tests (the nodes are built with
//! [`crate::testing::Node`]).

use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

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
