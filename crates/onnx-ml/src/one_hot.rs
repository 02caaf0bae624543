//! OneHotEncoder: each value of X becomes a row of zeros with a one at its category's
//! position, as onnxruntime's onehotencoder.cc computes it.
//!
//! onnxruntime over the specification:
//! - the output is `X.shape + [categories]`, float, for an X of rank 0 to 2;
//! - strings are looked up in `cats_strings`, numbers in `cats_int64s` after conversion to
//!   int64 by truncation toward zero (5.9 is category 5); a NaN or a float out of int64's
//!   range becomes int64's minimum, as the x86-64 conversion onnxruntime compiles to gives;
//! - with both lists given, onnxruntime refuses the node; the input type then decides which
//!   list is used, and a list of the other type matches nothing;
//! - a category listed twice is at its last position;
//! - an unknown value gives a row of zeros when `zeros` is 1 (the default), else an error.
//!
//! onnxruntime has no int32 kernel (the specification lists int32); int32 is taken here,
//! converted to int64 like the others.

use std::collections::HashMap;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use crate::check::{self, InputTypes};
use crate::kernel::{Kernel, Parsed, parsed, tensor_of};

/// The input types taken: onnxruntime's, and int32.
const INPUTS: InputTypes = InputTypes {
    op: "OneHotEncoder",
    types: &[
        DatumType::String,
        DatumType::I64,
        DatumType::I32,
        DatumType::F32,
        DatumType::F64,
    ],
    said: "string, int64, int32, float or double",
};

/// The parser registered for `OneHotEncoder`.
pub(crate) fn parse(_ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    parsed(OneHotEncoder::from_node(node)?)
}

#[derive(Debug)]
struct OneHotEncoder {
    node: String,
    /// Each integer category's position (empty with string categories).
    ints: HashMap<i64, usize>,
    /// Each string category's position (empty with integer categories).
    strings: HashMap<String, usize>,
    categories: usize,
    /// An unknown value gives zeros (else an error).
    zeros: bool,
}

impl OneHotEncoder {
    fn from_node(node: &NodeProto) -> TractResult<OneHotEncoder> {
        let ints = check::list::<i64>(node, "cats_int64s")?;
        let strings = check::list::<String>(node, "cats_strings")?;
        let categories = ints.len().max(strings.len());
        if !ints.is_empty() && !strings.is_empty() {
            bail!(
                "OneHotEncoder node \"{}\": attributes cats_int64s and cats_strings: expected one \
                 of them, found both",
                node.name
            );
        }
        if categories == 0 {
            bail!(
                "OneHotEncoder node \"{}\": attributes cats_int64s and cats_strings: expected \
                 categories in one of them, found none",
                node.name
            );
        }
        Ok(OneHotEncoder {
            node: node.name.clone(),
            // Collected in order, a category listed twice keeps its last position.
            ints: ints
                .into_iter()
                .enumerate()
                .map(|(ix, c)| (c, ix))
                .collect(),
            strings: strings
                .into_iter()
                .enumerate()
                .map(|(ix, c)| (c, ix))
                .collect(),
            categories,
            zeros: node.get_attr_opt::<i64>("zeros")?.unwrap_or(1) != 0,
        })
    }

    fn check_rank(&self, rank: usize) -> TractResult<()> {
        ensure!(
            rank <= 2,
            "OneHotEncoder node \"{}\" takes an input of rank 2 at most, not {rank}",
            self.node
        );
        Ok(())
    }

    /// The one-hot rows of values whose positions `lookup` finds.
    fn encode<T>(&self, x: &[T], lookup: impl Fn(&T) -> Option<usize>) -> TractResult<Vec<f32>> {
        let mut y = vec![0f32; x.len() * self.categories];
        for (v, row) in x.iter().zip(y.chunks_mut(self.categories)) {
            match lookup(v) {
                Some(position) => row[position] = 1.0,
                None if self.zeros => {}
                None => bail!(
                    "OneHotEncoder node \"{}\": unknown category and zeros = 0",
                    self.node
                ),
            }
        }
        Ok(y)
    }

    fn int_position(&self, v: i64) -> Option<usize> {
        self.ints.get(&v).copied()
    }
}

/// A float converted to int64 as x86-64's truncating conversion does: toward zero, and
/// int64's minimum for NaN and for what int64 cannot hold.
fn to_int64(v: f64) -> i64 {
    // 2^63 is exact in double; every double below it and from -2^63 truncates in range.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if v.is_nan() || !(-LIMIT..LIMIT).contains(&v) {
        i64::MIN
    } else {
        v as i64
    }
}

impl Kernel for OneHotEncoder {
    fn name(&self) -> &'static str {
        "OneHotEncoder"
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check::one_input(s, inputs, move |dt| INPUTS.check(&self.node, dt))?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.given(&inputs[0].shape, move |s, shape| {
            self.check_rank(shape.len())?;
            let mut output = shape;
            output.push(self.categories.to_dim());
            s.equals(&outputs[0].shape, output)
        })
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        INPUTS.check(&self.node, inputs[0].datum_type)?;
        self.check_rank(inputs[0].rank())?;
        let shape = inputs[0]
            .shape
            .iter()
            .cloned()
            .chain([self.categories.to_dim()]);
        Ok(tvec!(f32::fact(shape.collect::<TVec<_>>())))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        self.check_rank(x.rank())?;
        let view = x.try_as_plain_ram()?;
        let y = match x.datum_type() {
            DatumType::String => {
                self.encode(view.as_slice::<String>()?, |v| self.strings.get(v).copied())?
            }
            DatumType::I64 => self.encode(view.as_slice::<i64>()?, |&v| self.int_position(v))?,
            DatumType::I32 => {
                self.encode(view.as_slice::<i32>()?, |&v| self.int_position(v as i64))?
            }
            DatumType::F32 => self.encode(view.as_slice::<f32>()?, |&v| {
                self.int_position(to_int64(v as f64))
            })?,
            DatumType::F64 => {
                self.encode(view.as_slice::<f64>()?, |&v| self.int_position(to_int64(v)))?
            }
            dt => return Err(INPUTS.error(&self.node, dt)),
        };
        let shape: TVec<usize> = x.shape().iter().copied().chain([self.categories]).collect();
        Ok(tvec!(tensor_of(&shape, y)?.into_tvalue()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use tract_onnx::pb::AttributeProto;

    fn encoder(attrs: Vec<AttributeProto>) -> TractResult<OneHotEncoder> {
        OneHotEncoder::from_node(&node("OneHotEncoder", attrs))
    }

    fn ints_encoder(zeros: i64) -> OneHotEncoder {
        encoder(vec![ints("cats_int64s", &[1, 3, 5]), int("zeros", zeros)]).unwrap()
    }

    #[test]
    fn each_value_becomes_a_row_after_the_input_shape() {
        let y = run(&ints_encoder(1), tensor2(&[[3i64], [1]])).unwrap();
        assert_eq!(y, tensor3(&[[[0f32, 1.0, 0.0]], [[1.0, 0.0, 0.0]]]));
        let y = run(&ints_encoder(1), tensor1(&[5i64, 1])).unwrap();
        assert_eq!(y, tensor2(&[[0f32, 0.0, 1.0], [1.0, 0.0, 0.0]]));
        assert_eq!(
            run(&ints_encoder(1), tensor0(5i64)).unwrap(),
            tensor1(&[0f32, 0.0, 1.0])
        );
    }

    #[test]
    fn unknown_values_give_zeros_or_an_error() {
        let y = run(&ints_encoder(1), tensor1(&[2i64])).unwrap();
        assert_eq!(y, tensor2(&[[0f32, 0.0, 0.0]]));
        let e = run(&ints_encoder(0), tensor1(&[1i64, 2]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown category and zeros = 0"), "{e}");
        let e = encoder(vec![ints("cats_int64s", &[1])]).unwrap();
        assert!(e.zeros, "zeros defaults to 1");
    }

    #[test]
    fn numbers_are_truncated_to_int64() {
        let e = ints_encoder(1);
        let y = run(&e, tensor1(&[5.9f32, -0.5, 3.0])).unwrap();
        assert_eq!(
            y,
            tensor2(&[[0f32, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        );
        let y = run(&e, tensor1(&[1.99f64])).unwrap();
        assert_eq!(y, tensor2(&[[1f32, 0.0, 0.0]]));
        assert_eq!(
            run(&e, tensor1(&[3i32])).unwrap(),
            tensor2(&[[0f32, 1.0, 0.0]])
        );
        assert_eq!(to_int64(f64::NAN), i64::MIN);
        assert_eq!(to_int64(1e19), i64::MIN);
        assert_eq!(to_int64(9_223_372_036_854_775_808.0), i64::MIN);
        assert_eq!(to_int64(-7.9), -7);
    }

    #[test]
    fn strings_are_looked_up_exactly() {
        let e = encoder(vec![strings("cats_strings", &["red", "", "blue"])]).unwrap();
        let x = tensor1(&["blue", "", "Red", "red"].map(String::from));
        let y = run(&e, x).unwrap();
        assert_eq!(
            y,
            tensor2(&[
                [0f32, 0.0, 1.0],
                [0.0, 1.0, 0.0],
                [0.0, 0.0, 0.0],
                [1.0, 0.0, 0.0]
            ])
        );
    }

    #[test]
    fn a_category_listed_twice_is_at_its_last_position() {
        let e = encoder(vec![ints("cats_int64s", &[4, 8, 4])]).unwrap();
        assert_eq!(
            run(&e, tensor1(&[4i64])).unwrap(),
            tensor2(&[[0f32, 0.0, 1.0]])
        );
    }

    #[test]
    fn a_list_of_the_other_type_matches_nothing() {
        let e = encoder(vec![strings("cats_strings", &["1"])]).unwrap();
        assert_eq!(run(&e, tensor1(&[1i64])).unwrap(), tensor2(&[[0f32]]));
    }

    #[test]
    fn categories_are_required_in_exactly_one_list() {
        assert!(
            encoder(vec![])
                .unwrap_err()
                .to_string()
                .contains("found none")
        );
        let both = vec![ints("cats_int64s", &[1]), strings("cats_strings", &["a"])];
        assert!(
            encoder(both)
                .unwrap_err()
                .to_string()
                .contains("found both")
        );
    }

    #[test]
    fn types_with_the_batch_symbol() {
        let facts = typed_outputs(ints_encoder(1), &[(DatumType::I64, &[None, Some(2)])]).unwrap();
        assert_eq!(facts, [(DatumType::F32, vec![None, Some(2), Some(3)])]);
        let facts = typed_outputs(ints_encoder(1), &[(DatumType::String, &[None])]).unwrap();
        assert_eq!(facts, [(DatumType::F32, vec![None, Some(3)])]);
        assert!(
            typed_outputs(
                ints_encoder(1),
                &[(DatumType::F32, &[None, Some(1), Some(1)])]
            )
            .is_err()
        );
        assert!(typed_outputs(ints_encoder(1), &[(DatumType::Bool, &[None])]).is_err());
    }
}
