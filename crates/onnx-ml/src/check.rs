//! The checks the preprocessing and linear operators share: their list attributes and the
//! errors that refuse them, the input types and ranks they take, with errors naming the
//! operator and the node, and the inference rules of an operator with one input.

use std::fmt::Display;

use tract_onnx::pb::NodeProto;
use tract_onnx::pb_helpers::AttrTVecType;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

/// A list attribute, empty when absent.
pub(crate) fn list<'a, T: AttrTVecType<'a>>(
    node: &'a NodeProto,
    name: &str,
) -> TractResult<Vec<T>> {
    Ok(node.get_attr_opt_vec(name)?.unwrap_or_default())
}

/// The error refusing attribute `attr` of node `node` of `op`: what was expected, and found.
pub(crate) fn attribute_error(
    op: &str,
    node: &str,
    attr: &str,
    expected: &str,
    found: impl Display,
) -> TractError {
    format_err!("{op} node \"{node}\": attribute {attr}: expected {expected}, found {found}")
}

/// The input types an operator takes, and how its errors say them.
pub(crate) struct InputTypes {
    /// The operator's ONNX name.
    pub(crate) op: &'static str,
    pub(crate) types: &'static [DatumType],
    /// The types as the errors say them, e.g. "float, double, int64 or int32".
    pub(crate) said: &'static str,
}

/// float, double, int64 or int32, the types most of onnxruntime's ML kernels take.
pub(crate) const NUMBERS: &[DatumType] = &[
    DatumType::F32,
    DatumType::F64,
    DatumType::I64,
    DatumType::I32,
];

/// The input types of an operator that takes float, double, int64 or int32.
pub(crate) const fn numbers(op: &'static str) -> InputTypes {
    InputTypes {
        op,
        types: NUMBERS,
        said: "float, double, int64 or int32",
    }
}

/// The input type of an operator that takes float only.
pub(crate) const fn float_only(op: &'static str) -> InputTypes {
    InputTypes {
        op,
        types: &[DatumType::F32],
        said: "float only (as onnxruntime)",
    }
}

impl InputTypes {
    /// Checks that node `node` takes `dt`.
    pub(crate) fn check(&self, node: &str, dt: DatumType) -> TractResult<()> {
        if self.types.contains(&dt) {
            Ok(())
        } else {
            Err(self.error(node, dt))
        }
    }

    /// The error for an input of type `dt`, which node `node` does not take.
    pub(crate) fn error(&self, node: &str, dt: DatumType) -> TractError {
        format_err!(
            "{} node \"{node}\" takes {}, not {dt:?}",
            self.op,
            self.said
        )
    }
}

/// Checks that node `node` of `op` has an input of rank 1 or more.
pub(crate) fn rank_1_or_more(op: &str, node: &str, rank: usize) -> TractResult<()> {
    ensure!(
        rank >= 1,
        "{op} node \"{node}\" takes a tensor of rank 1 or more, not a scalar"
    );
    Ok(())
}

/// The axis of the features as onnxruntime counts them: dimension 1, or 0 for a 1-D input.
pub(crate) fn feature_axis(rank: usize) -> usize {
    if rank == 1 { 0 } else { 1 }
}

/// The rules of an operator with one input, whose type `check_type` accepts.
pub(crate) fn one_input<'r, 'p: 'r>(
    s: &mut Solver<'r>,
    inputs: &'p [TensorProxy],
    check_type: impl Fn(DatumType) -> TractResult<()> + 'r,
) -> InferenceResult {
    check_input_arity(inputs, 1)?;
    s.given(&inputs[0].datum_type, move |_, dt| check_type(dt))
}

/// The rules of an operator with one input, whose type `check_type` accepts, and one output
/// of type `output` and the input's shape.
pub(crate) fn same_shape<'r, 'p: 'r>(
    s: &mut Solver<'r>,
    inputs: &'p [TensorProxy],
    outputs: &'p [TensorProxy],
    check_type: impl Fn(DatumType) -> TractResult<()> + 'r,
    output: DatumType,
) -> InferenceResult {
    one_input(s, inputs, check_type)?;
    s.equals(&outputs[0].datum_type, output)?;
    s.equals(&outputs[0].shape, &inputs[0].shape)
}
