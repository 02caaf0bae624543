//! Imputer: replaces a marker value (a missing value) with a value per feature, as
//! onnxruntime's imputer.cc does.
//!
//! onnxruntime over the specification:
//! - only float and int64 inputs (the specification also lists double and int32):
//!   `imputed_value_floats` takes a float input, `imputed_value_int64s` an int64 one, and
//!   the node is refused when typed with another;
//! - `replaced_value_float` NaN (scikit-learn's `SimpleImputer` default, as skl2onnx writes
//!   it) matches NaN, which `==` never would;
//! - the imputed values are one per feature when their count equals the width (dimension 1,
//!   or 0 for a 1-D input); with any other count the first value is used for every feature,
//!   silently, as onnxruntime does.
//!
//! Output: the input's type and shape.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use crate::check::{self, feature_axis};
use crate::kernel::{Kernel, Parsed, parsed, tensor_of};

/// The parser registered for `Imputer`.
pub(crate) fn parse(_ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    parsed(Imputer::from_node(node)?)
}

#[derive(Debug)]
struct Imputer {
    node: String,
    values: Values,
}

/// The value to replace and its replacements, in the one type the node takes.
#[derive(Debug, PartialEq)]
enum Values {
    Float { replaced: f32, imputed: Vec<f32> },
    Int { replaced: i64, imputed: Vec<i64> },
}

impl Values {
    fn datum_type(&self) -> DatumType {
        match self {
            Values::Float { .. } => DatumType::F32,
            Values::Int { .. } => DatumType::I64,
        }
    }
}

impl Imputer {
    /// Reads exactly one non-empty list of imputed values, and its replaced value (0 when
    /// absent: the specification's default, which onnxruntime fills in).
    fn from_node(node: &NodeProto) -> TractResult<Imputer> {
        let floats = check::list::<f32>(node, "imputed_value_floats")?;
        let ints = check::list::<i64>(node, "imputed_value_int64s")?;
        let values = match (floats.is_empty(), ints.is_empty()) {
            (false, true) => Values::Float {
                replaced: node.get_attr_opt("replaced_value_float")?.unwrap_or(0.0),
                imputed: floats,
            },
            (true, false) => Values::Int {
                replaced: node.get_attr_opt("replaced_value_int64")?.unwrap_or(0),
                imputed: ints,
            },
            (false, false) => bail!(
                "Imputer node \"{}\": attributes imputed_value_floats and imputed_value_int64s: \
                 expected one of them, found both",
                node.name
            ),
            (true, true) => bail!(
                "Imputer node \"{}\": attributes imputed_value_floats and imputed_value_int64s: \
                 expected one of them with values, found neither",
                node.name
            ),
        };
        Ok(Imputer {
            node: node.name.clone(),
            values,
        })
    }

    fn check_type(&self, dt: DatumType) -> TractResult<()> {
        let expected = self.values.datum_type();
        ensure!(
            dt == expected,
            "Imputer node \"{}\" imputes {expected:?} values (from its attributes), so it takes \
             a {expected:?} input, not {dt:?}",
            self.node
        );
        Ok(())
    }
}

/// Replaces each `x` for which `is_replaced` holds with the imputed value of its feature,
/// `width` features a row.
fn impute<T: Copy>(
    x: &[T],
    width: usize,
    imputed: &[T],
    is_replaced: impl Fn(T) -> bool,
) -> Vec<T> {
    let mut y = Vec::with_capacity(x.len());
    if imputed.len() == width {
        for row in x.chunks(width.max(1)) {
            y.extend(
                row.iter()
                    .zip(imputed)
                    .map(|(&v, &i)| if is_replaced(v) { i } else { v }),
            );
        }
    } else {
        y.extend(
            x.iter()
                .map(|&v| if is_replaced(v) { imputed[0] } else { v }),
        );
    }
    y
}

impl Kernel for Imputer {
    fn name(&self) -> &'static str {
        "Imputer"
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        let check_type = move |dt| self.check_type(dt);
        check::same_shape(s, inputs, outputs, check_type, self.values.datum_type())
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.check_type(inputs[0].datum_type)?;
        check::rank_1_or_more("Imputer", &self.node, inputs[0].rank())?;
        Ok(tvec!(self.values.datum_type().fact(inputs[0].shape.iter())))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        self.check_type(x.datum_type())?;
        check::rank_1_or_more("Imputer", &self.node, x.rank())?;
        let width = x.shape()[feature_axis(x.rank())];
        let view = x.try_as_plain_ram()?;
        let y = match &self.values {
            Values::Float { replaced, imputed } => {
                let r = *replaced;
                let is_replaced = |v: f32| v == r || (v.is_nan() && r.is_nan());
                let y = impute(view.as_slice::<f32>()?, width, imputed, is_replaced);
                tensor_of(x.shape(), y)?
            }
            Values::Int { replaced, imputed } => {
                let y = impute(view.as_slice::<i64>()?, width, imputed, |v| v == *replaced);
                tensor_of(x.shape(), y)?
            }
        };
        Ok(tvec!(y.into_tvalue()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    fn imputer(attrs: Vec<tract_onnx::pb::AttributeProto>) -> TractResult<Imputer> {
        Imputer::from_node(&node("Imputer", attrs))
    }

    #[test]
    fn nan_replaces_nan_with_each_feature_s_value() {
        let i = imputer(vec![
            floats("imputed_value_floats", &[10.0, 20.0]),
            float("replaced_value_float", f32::NAN),
        ])
        .unwrap();
        let y = run(&i, tensor2(&[[f32::NAN, 1.0], [2.0, f32::NAN]])).unwrap();
        assert_eq!(y, tensor2(&[[10f32, 1.0], [2.0, 20.0]]));
    }

    #[test]
    fn a_number_replaces_equal_values_and_zero_is_the_default() {
        let i = imputer(vec![
            floats("imputed_value_floats", &[5.0, 6.0]),
            float("replaced_value_float", -1.0),
        ])
        .unwrap();
        let y = run(&i, tensor2(&[[-1f32, f32::NAN], [0.0, -1.0]])).unwrap();
        let y = f32s(&y);
        assert_eq!(y[0], 5.0);
        assert!(y[1].is_nan());
        let i = imputer(vec![floats("imputed_value_floats", &[5.0])]).unwrap();
        assert_eq!(
            run(&i, tensor1(&[0f32, 1.0])).unwrap(),
            tensor1(&[5f32, 1.0])
        );
    }

    #[test]
    fn a_count_other_than_the_width_uses_the_first_value_everywhere() {
        let i = imputer(vec![
            floats("imputed_value_floats", &[7.0, 8.0]),
            float("replaced_value_float", f32::NAN),
        ])
        .unwrap();
        let y = run(&i, tensor2(&[[f32::NAN, 1.0, f32::NAN]])).unwrap();
        assert_eq!(y, tensor2(&[[7f32, 1.0, 7.0]]));
    }

    #[test]
    fn a_1d_input_is_one_row_of_features() {
        let i = imputer(vec![floats("imputed_value_floats", &[7.0, 8.0])]).unwrap();
        assert_eq!(
            run(&i, tensor1(&[0f32, 0.0])).unwrap(),
            tensor1(&[7f32, 8.0])
        );
    }

    #[test]
    fn int64_values_impute_an_int64_input() {
        let i = imputer(vec![
            ints("imputed_value_int64s", &[100, 200]),
            int("replaced_value_int64", -1),
        ])
        .unwrap();
        let y = run(&i, tensor2(&[[-1i64, 3], [4, -1]])).unwrap();
        assert_eq!(y, tensor2(&[[100i64, 3], [4, 200]]));
    }

    #[test]
    fn exactly_one_list_of_values_is_required() {
        let e = imputer(vec![]).unwrap_err().to_string();
        assert!(e.contains("found neither"), "{e}");
        let both = vec![
            floats("imputed_value_floats", &[1.0]),
            ints("imputed_value_int64s", &[1]),
        ];
        assert!(
            imputer(both)
                .unwrap_err()
                .to_string()
                .contains("found both")
        );
    }

    #[test]
    fn types_as_its_input_and_refuses_another_type() {
        let i = imputer(vec![ints("imputed_value_int64s", &[1])]).unwrap();
        let facts = typed_outputs(i, &[(DatumType::I64, &[None, Some(2)])]).unwrap();
        assert_eq!(facts, [(DatumType::I64, vec![None, Some(2)])]);
        let i = imputer(vec![floats("imputed_value_floats", &[1.0])]).unwrap();
        let e = typed_outputs(i, &[(DatumType::F64, &[None, Some(2)])]).unwrap_err();
        assert!(format!("{e:?}").contains("takes a F32 input"), "{e:?}");
    }
}
