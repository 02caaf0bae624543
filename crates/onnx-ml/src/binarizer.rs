//! Binarizer: 1 where x > threshold, else 0, as onnxruntime's binarizer.cc computes it.
//!
//! onnxruntime over the specification:
//! - float input only (the specification also lists double, int64 and int32);
//! - a NaN in the input is an error, naming its index.
//!
//! The threshold defaults to 0, the specification's default: onnxruntime's kernel falls back
//! on 1.0, but onnxruntime fills a node's missing attributes with the specification's
//! defaults before the kernel reads them, so 0 is what it answers with (checked against
//! onnxruntime 1.31: a node without `threshold` maps 0.5 to 1).
//!
//! Output: float, the input's shape.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use crate::check::{self, InputTypes};
use crate::kernel::{Kernel, Parsed, parsed, tensor_of};

/// The input type onnxruntime's Binarizer takes.
const INPUTS: InputTypes = check::float_only("Binarizer");

/// The parser registered for `Binarizer`.
pub(crate) fn parse(_ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    parsed(Binarizer::from_node(node)?)
}

#[derive(Debug)]
struct Binarizer {
    node: String,
    threshold: f32,
}

impl Binarizer {
    fn from_node(node: &NodeProto) -> TractResult<Binarizer> {
        let threshold = node.get_attr_opt::<f32>("threshold")?.unwrap_or(0.0);
        Ok(Binarizer {
            node: node.name.clone(),
            threshold,
        })
    }
}

impl Kernel for Binarizer {
    fn name(&self) -> &'static str {
        "Binarizer"
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        let check_type = move |dt| INPUTS.check(&self.node, dt);
        check::same_shape(s, inputs, outputs, check_type, f32::datum_type())
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        INPUTS.check(&self.node, inputs[0].datum_type)?;
        Ok(tvec!(f32::fact(inputs[0].shape.iter())))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        INPUTS.check(&self.node, x.datum_type())?;
        let values = x.try_as_plain_ram()?.as_slice::<f32>()?;
        if let Some(ix) = values.iter().position(|v| v.is_nan()) {
            bail!(
                "Binarizer node \"{}\": input element {ix} is NaN",
                self.node
            );
        }
        let y = values
            .iter()
            .map(|&v| if v > self.threshold { 1f32 } else { 0.0 })
            .collect();
        Ok(tvec!(tensor_of(x.shape(), y)?.into_tvalue()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use tract_onnx::pb::AttributeProto;

    fn binarizer(attrs: Vec<AttributeProto>) -> Binarizer {
        Binarizer::from_node(&node("Binarizer", attrs)).unwrap()
    }

    #[test]
    fn above_the_threshold_is_1_and_the_rest_0() {
        let b = binarizer(vec![float("threshold", 1.5)]);
        assert_eq!(
            run(&b, tensor2(&[[1.5f32, 2.0], [-3.0, 1.6]])).unwrap(),
            tensor2(&[[0f32, 1.0], [0.0, 1.0]])
        );
    }

    #[test]
    fn the_threshold_defaults_to_0() {
        let b = binarizer(vec![]);
        assert_eq!(
            run(&b, tensor1(&[0.5f32, 0.0, -0.0, -1e-30])).unwrap(),
            tensor1(&[1f32, 0.0, 0.0, 0.0])
        );
    }

    #[test]
    fn nan_is_an_error_naming_its_index() {
        let e = run(&binarizer(vec![]), tensor1(&[1f32, f32::NAN]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("element 1 is NaN"), "{e}");
    }

    #[test]
    fn takes_float_only_and_types_with_the_batch_symbol() {
        let facts =
            typed_outputs(binarizer(vec![]), &[(DatumType::F32, &[None, Some(3)])]).unwrap();
        assert_eq!(facts, [(DatumType::F32, vec![None, Some(3)])]);
        assert!(typed_outputs(binarizer(vec![]), &[(DatumType::F64, &[None, Some(3)])]).is_err());
    }
}
