//! ZipMap: each row of class probabilities as a map from class label to probability.
//!
//! A sequence of maps is not a tensor, and serve answers tensors. So the operator passes
//! the probabilities `[N, C]` through unchanged, and the labels it would have keyed them
//! with are read from the node by serve's metadata (the output's `classes`), which renders
//! each row as `{label: probability}` where the protocol wants the maps (V1, routes).
//! onnxruntime's ZipMap (zipmap.cc) takes `[N, C]` or `[C]` float input and requires
//! exactly C labels; the check that the width matches the labels is made when the graph is
//! typed, or at evaluation when the width is only known then.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use crate::kernel::{Kernel, Parsed, parsed};
use crate::labels::Labels;

/// The parser registered for `ZipMap`.
pub(crate) fn parse(_ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    parsed(ZipMap {
        classes: labels(node)?.len(),
    })
}

/// The class labels of a ZipMap node: `classlabels_int64s` or `classlabels_strings`,
/// exactly one of them. serve's metadata reads them here too, to name the columns of the
/// probabilities this operator passes through.
pub fn labels(node: &NodeProto) -> TractResult<Labels> {
    let ints = node.get_attr_opt_vec::<i64>("classlabels_int64s")?;
    let strings = node.get_attr_opt_vec::<String>("classlabels_strings")?;
    match (ints, strings) {
        (Some(i), None) => Ok(Labels::Ints(i)),
        (None, Some(s)) => Ok(Labels::Strings(s)),
        _ => bail!(
            "ZipMap node \"{}\" needs exactly one of classlabels_int64s and classlabels_strings",
            node.name
        ),
    }
}

#[derive(Debug)]
struct ZipMap {
    classes: usize,
}

impl ZipMap {
    fn check_width(&self, width: usize) -> TractResult<()> {
        ensure!(
            width == self.classes,
            "ZipMap has {} class labels but its input has {width} columns",
            self.classes
        );
        Ok(())
    }
}

impl Kernel for ZipMap {
    fn name(&self) -> &'static str {
        "ZipMap"
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        s.equals(&inputs[0].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        Ok(())
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let shape = &inputs[0].shape;
        ensure!(
            shape.rank() == 1 || shape.rank() == 2,
            "ZipMap takes a [N, C] or [C] input, not rank {}",
            shape.rank()
        );
        if let Some(width) = shape.last().and_then(|d| d.to_usize().ok()) {
            self.check_width(width)?;
        }
        Ok(tvec!(f32::fact(shape.iter())))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        self.check_width(*input.shape().last().unwrap_or(&0))?;
        Ok(tvec!(input))
    }
}
