//! Scaler: `(x - offset) * scale`, feature by feature, as onnxruntime's scaler.cc computes
//! it.
//!
//! onnxruntime over the specification:
//! - `offset` is required as much as `scale`: both must have the same length (the
//!   specification calls `offset` optional; onnxruntime refuses a node without it);
//! - the lists have one value per feature or a single value for all, the features being
//!   dimension 1 (dimension 0 for a 1-D input), checked when the input's width is known;
//! - the arithmetic is the input type's: a double input is offset and scaled in double,
//!   then rounded to float; integers become float first.
//!
//! Input float, double, int64 or int32, any rank from 1; output float, the input's shape.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use crate::check::{self, InputTypes, feature_axis};
use crate::kernel::{Kernel, Parsed, parsed, tensor_of};

/// The input types onnxruntime's Scaler takes.
const INPUTS: InputTypes = check::numbers("Scaler");

/// The parser registered for `Scaler`.
pub(crate) fn parse(_ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    parsed(Scaler::from_node(node)?)
}

#[derive(Debug)]
struct Scaler {
    node: String,
    offset: Vec<f32>,
    scale: Vec<f32>,
}

impl Scaler {
    fn from_node(node: &NodeProto) -> TractResult<Scaler> {
        let scale = check::list::<f32>(node, "scale")?;
        let offset = check::list::<f32>(node, "offset")?;
        let refuse = |attr, expected: &str, found| {
            check::attribute_error("Scaler", &node.name, attr, expected, found)
        };
        if scale.is_empty() {
            return Err(refuse("scale", "at least one value", "none".into()));
        }
        if offset.len() != scale.len() {
            let expected = format!("as many values as scale ({})", scale.len());
            return Err(refuse("offset", &expected, offset.len().to_string()));
        }
        Ok(Scaler {
            node: node.name.clone(),
            offset,
            scale,
        })
    }

    /// Checks that the parameters fit `width` features: one per feature, or one for all.
    fn check_width(&self, width: usize) -> TractResult<()> {
        ensure!(
            self.scale.len() == 1 || self.scale.len() == width,
            "Scaler node \"{}\" has {} scale and offset values but its input has {width} features: \
             expected one per feature or a single one",
            self.node,
            self.scale.len()
        );
        Ok(())
    }

    /// Scales `x`, of `width` features per row, with `f(x, offset, scale)`.
    fn scale_with<T: Copy>(
        &self,
        x: &[T],
        width: usize,
        f: impl Fn(T, f32, f32) -> f32,
    ) -> Vec<f32> {
        let mut y = Vec::with_capacity(x.len());
        if self.scale.len() == 1 {
            y.extend(x.iter().map(|&v| f(v, self.offset[0], self.scale[0])));
        } else {
            for row in x.chunks(width.max(1)) {
                let params = self.offset.iter().zip(&self.scale);
                y.extend(row.iter().zip(params).map(|(&v, (&o, &s))| f(v, o, s)));
            }
        }
        y
    }
}

impl Kernel for Scaler {
    fn name(&self) -> &'static str {
        "Scaler"
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
        let input = inputs[0];
        INPUTS.check(&self.node, input.datum_type)?;
        check::rank_1_or_more("Scaler", &self.node, input.rank())?;
        if let Ok(width) = input.shape[feature_axis(input.rank())].to_usize() {
            self.check_width(width)?;
        }
        Ok(tvec!(f32::fact(input.shape.iter())))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        check::rank_1_or_more("Scaler", &self.node, x.rank())?;
        let width = x.shape()[feature_axis(x.rank())];
        self.check_width(width)?;
        let view = x.try_as_plain_ram()?;
        // The C++ arithmetic of `(x - offset) * scale` with float parameters: double stays
        // double until the result is stored; integers are converted to float.
        let y = match x.datum_type() {
            DatumType::F32 => {
                self.scale_with(view.as_slice::<f32>()?, width, |v, o, s| (v - o) * s)
            }
            DatumType::F64 => self.scale_with(view.as_slice::<f64>()?, width, |v, o, s| {
                ((v - o as f64) * s as f64) as f32
            }),
            DatumType::I64 => {
                self.scale_with(view.as_slice::<i64>()?, width, |v, o, s| (v as f32 - o) * s)
            }
            DatumType::I32 => {
                self.scale_with(view.as_slice::<i32>()?, width, |v, o, s| (v as f32 - o) * s)
            }
            dt => return Err(INPUTS.error(&self.node, dt)),
        };
        Ok(tvec!(tensor_of(x.shape(), y)?.into_tvalue()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, *};

    fn scaler(offset: &[f32], scale: &[f32]) -> Scaler {
        Scaler::from_node(&node(
            "Scaler",
            vec![floats("offset", offset), floats("scale", scale)],
        ))
        .unwrap()
    }

    fn run(s: &Scaler, x: Tensor) -> TractResult<Vec<f32>> {
        Ok(f32s(&testing::run(s, x)?))
    }

    #[test]
    fn each_feature_is_offset_then_scaled() {
        let s = scaler(&[1.0, 2.0], &[2.0, 0.5]);
        let y = run(&s, tensor2(&[[3f32, 4.0], [0.0, -2.0]])).unwrap();
        assert_eq!(y, [4.0, 1.0, -2.0, -2.0]);
    }

    #[test]
    fn a_single_value_applies_to_every_feature() {
        let s = scaler(&[1.0], &[3.0]);
        assert_eq!(
            run(&s, tensor2(&[[1f32, 2.0, 3.0]])).unwrap(),
            [0.0, 3.0, 6.0]
        );
    }

    #[test]
    fn a_1d_input_is_one_row_of_features() {
        let s = scaler(&[1.0, 2.0], &[1.0, 1.0]);
        assert_eq!(run(&s, tensor1(&[1f32, 2.0])).unwrap(), [0.0, 0.0]);
    }

    #[test]
    fn doubles_are_scaled_in_double_and_integers_as_float() {
        let s = scaler(&[1.0], &[1.0]);
        // 2^24 + 1 is no float: converted first, it rounds to 2^24 before losing 1.
        assert_eq!(run(&s, tensor1(&[16_777_217f64])).unwrap(), [16_777_216.0]);
        assert_eq!(run(&s, tensor1(&[16_777_217i64])).unwrap(), [16_777_215.0]);
        assert_eq!(run(&s, tensor1(&[16_777_217i32])).unwrap(), [16_777_215.0]);
    }

    #[test]
    fn a_width_that_fits_neither_rule_is_an_error() {
        let s = scaler(&[0.0, 0.0], &[1.0, 1.0]);
        let e = run(&s, tensor2(&[[1f32, 2.0, 3.0]]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("3 features"), "{e}");
        let e = typed_outputs(
            scaler(&[0.0, 0.0], &[1.0, 1.0]),
            &[(DatumType::F32, &[None, Some(3)])],
        );
        assert!(e.is_err());
    }

    #[test]
    fn missing_or_mismatched_lists_are_refused_at_load() {
        let e = Scaler::from_node(&node("Scaler", vec![floats("scale", &[1.0])])).unwrap_err();
        assert!(e.to_string().contains("attribute offset"), "{e}");
        let e = Scaler::from_node(&node("Scaler", vec![floats("offset", &[1.0])])).unwrap_err();
        assert!(e.to_string().contains("attribute scale"), "{e}");
    }

    #[test]
    fn types_as_float_with_the_batch_symbol_kept() {
        let facts = typed_outputs(
            scaler(&[0.0; 3], &[1.0; 3]),
            &[(DatumType::I64, &[None, Some(3)])],
        )
        .unwrap();
        assert_eq!(facts, [(DatumType::F32, vec![None, Some(3)])]);
        let e = typed_outputs(
            scaler(&[0.0], &[1.0]),
            &[(DatumType::String, &[None, Some(3)])],
        );
        assert!(e.is_err());
    }
}
