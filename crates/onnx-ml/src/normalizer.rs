//! Normalizer: each row divided by its MAX, L1 or L2 norm, as onnxruntime's normalizer.cc
//! computes it.
//!
//! onnxruntime over the specification (and over tract's own Normalizer):
//! - MAX divides by the row's largest value, signed (not the largest magnitude): a row of
//!   negative numbers is divided by a negative number;
//! - a row whose norm is 0 is left as it is (converted to float), not divided;
//! - the rows are dimension 0 of a `[N, C]` input; a `[C]` input is one row;
//! - the arithmetic mixes the input type and float as onnxruntime's does: absolute values and
//!   squares are taken in the input type (so a double's square is exact before it is rounded
//!   to float, and an integer's wraps on overflow), the sums are float.
//!
//! Input float, double, int64 or int32; output float, the input's shape.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use crate::check::{self, InputTypes};
use crate::kernel::{Kernel, Parsed, parsed, tensor_of};

/// The input types onnxruntime's Normalizer takes.
const INPUTS: InputTypes = check::numbers("Normalizer");

/// The parser registered for `Normalizer`.
pub(crate) fn parse(_ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    parsed(Normalizer::from_node(node)?)
}

/// The `norm` attribute.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Norm {
    Max,
    L1,
    L2,
}

#[derive(Debug)]
struct Normalizer {
    node: String,
    norm: Norm,
}

/// An input element as onnxruntime's templates treat it.
trait Element: Copy {
    fn to_f32(self) -> f32;
    /// `|x|` in the input type, then float.
    fn abs_f32(self) -> f32;
    /// `x·x` in the input type, then float.
    fn square_f32(self) -> f32;
    fn is_negative(self) -> bool;
}

impl Element for f32 {
    fn to_f32(self) -> f32 {
        self
    }
    fn abs_f32(self) -> f32 {
        self.abs()
    }
    fn square_f32(self) -> f32 {
        self * self
    }
    fn is_negative(self) -> bool {
        self < 0.0
    }
}

impl Element for f64 {
    fn to_f32(self) -> f32 {
        self as f32
    }
    fn abs_f32(self) -> f32 {
        self.abs() as f32
    }
    fn square_f32(self) -> f32 {
        (self * self) as f32
    }
    fn is_negative(self) -> bool {
        self < 0.0
    }
}

/// Integers overflow as the C++ does on the machines onnxruntime runs on: they wrap.
macro_rules! integer_element {
    ($($t:ty),*) => {$(
        impl Element for $t {
            fn to_f32(self) -> f32 {
                self as f32
            }
            fn abs_f32(self) -> f32 {
                self.wrapping_abs() as f32
            }
            fn square_f32(self) -> f32 {
                self.wrapping_mul(self) as f32
            }
            fn is_negative(self) -> bool {
                self < 0
            }
        }
    )*};
}

integer_element!(i64, i32);

impl Normalizer {
    fn from_node(node: &NodeProto) -> TractResult<Normalizer> {
        let norm = match node.get_attr_opt::<&str>("norm")?.unwrap_or("MAX") {
            "MAX" => Norm::Max,
            "L1" => Norm::L1,
            "L2" => Norm::L2,
            other => {
                let found = format!("\"{other}\"");
                let expected = "MAX, L1 or L2";
                return Err(check::attribute_error(
                    "Normalizer",
                    &node.name,
                    "norm",
                    expected,
                    found,
                ));
            }
        };
        Ok(Normalizer {
            node: node.name.clone(),
            norm,
        })
    }

    fn check_rank(&self, rank: usize) -> TractResult<()> {
        ensure!(
            rank == 1 || rank == 2,
            "Normalizer node \"{}\" takes a [N, C] or [C] input, not rank {rank}",
            self.node
        );
        Ok(())
    }

    /// Normalizes `x`, rows of `width`.
    fn normalize<T: Element>(&self, x: &[T], width: usize) -> Vec<f32> {
        let mut y = Vec::with_capacity(x.len());
        for row in x.chunks(width.max(1)) {
            match self.norm {
                Norm::Max => max_row(row, &mut y),
                Norm::L1 => l1_row(row, &mut y),
                Norm::L2 => l2_row(row, &mut y),
            }
        }
        y
    }
}

/// Appends `row` divided by `norm`, or as it is when `norm` is 0.
fn divide_row<T: Element>(row: &[T], norm: f32, y: &mut Vec<f32>) {
    if norm != 0.0 {
        y.extend(row.iter().map(|x| x.to_f32() / norm));
    } else {
        y.extend(row.iter().map(|x| x.to_f32()));
    }
}

/// The largest value, starting from the lowest float; a NaN never replaces it (as
/// `std::max(max, x)` keeps `max` when `max < x` is false).
fn max_row<T: Element>(row: &[T], y: &mut Vec<f32>) {
    let max = row
        .iter()
        .map(|x| x.to_f32())
        .fold(f32::MIN, |max, x| if max < x { x } else { max });
    divide_row(row, max, y);
}

fn l1_row<T: Element>(row: &[T], y: &mut Vec<f32>) {
    let sum = row.iter().fold(0f32, |sum, x| sum + x.abs_f32());
    divide_row(row, sum, y);
}

/// `±√(x²/Σx²)`, the sign of `x`; the squares are float, summed in float.
fn l2_row<T: Element>(row: &[T], y: &mut Vec<f32>) {
    let sum = row.iter().fold(0f32, |sum, x| sum + x.square_f32());
    if sum != 0.0 {
        y.extend(row.iter().map(|x| {
            let v = (x.square_f32() / sum).sqrt();
            if x.is_negative() { -v } else { v }
        }));
    } else {
        y.extend(row.iter().map(|x| x.to_f32()));
    }
}

impl Kernel for Normalizer {
    fn name(&self) -> &'static str {
        "Normalizer"
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        let check_type = move |dt| INPUTS.check(&self.node, dt);
        check::same_shape(s, inputs, outputs, check_type, f32::datum_type())?;
        s.given(&inputs[0].rank, move |_, rank| {
            self.check_rank(rank as usize)
        })
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        INPUTS.check(&self.node, inputs[0].datum_type)?;
        self.check_rank(inputs[0].rank())?;
        Ok(tvec!(f32::fact(inputs[0].shape.iter())))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        self.check_rank(x.rank())?;
        let width = *x.shape().last().unwrap_or(&1);
        let view = x.try_as_plain_ram()?;
        let y = match x.datum_type() {
            DatumType::F32 => self.normalize(view.as_slice::<f32>()?, width),
            DatumType::F64 => self.normalize(view.as_slice::<f64>()?, width),
            DatumType::I64 => self.normalize(view.as_slice::<i64>()?, width),
            DatumType::I32 => self.normalize(view.as_slice::<i32>()?, width),
            dt => return Err(INPUTS.error(&self.node, dt)),
        };
        Ok(tvec!(tensor_of(x.shape(), y)?.into_tvalue()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, *};

    fn normalizer(norm: &str) -> Normalizer {
        Normalizer::from_node(&node("Normalizer", vec![string("norm", norm)])).unwrap()
    }

    fn run(norm: &str, x: Tensor) -> Vec<f32> {
        f32s(&testing::run(&normalizer(norm), x).unwrap())
    }

    #[test]
    fn max_divides_by_the_signed_largest_value() {
        assert_eq!(run("MAX", tensor2(&[[1f32, -4.0, 2.0]])), [0.5, -2.0, 1.0]);
        // All negative: the largest is -1, and the signs flip.
        assert_eq!(run("MAX", tensor2(&[[-1f32, -4.0]])), [1.0, 4.0]);
        // A NaN is never the largest.
        let y = run("MAX", tensor2(&[[f32::NAN, 2.0]]));
        assert!(y[0].is_nan() && y[1] == 1.0);
    }

    #[test]
    fn l1_divides_by_the_sum_of_magnitudes() {
        assert_eq!(
            run("L1", tensor2(&[[1f32, -3.0], [2.0, 2.0]])),
            [0.25, -0.75, 0.5, 0.5]
        );
    }

    #[test]
    fn l2_keeps_the_signs() {
        assert_eq!(run("L2", tensor2(&[[3f32, -4.0]])), [0.6, -0.8]);
    }

    #[test]
    fn zero_norm_rows_are_left_as_they_are() {
        assert_eq!(
            run("MAX", tensor2(&[[0f32, -2.0], [1.0, 1.0]])),
            [0.0, -2.0, 1.0, 1.0]
        );
        assert_eq!(run("L1", tensor2(&[[0f32, 0.0]])), [0.0, 0.0]);
        assert_eq!(run("L2", tensor2(&[[0i64, 0]])), [0.0, 0.0]);
    }

    #[test]
    fn a_1d_input_is_one_row() {
        assert_eq!(run("L1", tensor1(&[1f32, 3.0])), [0.25, 0.75]);
    }

    #[test]
    fn squares_and_magnitudes_are_taken_in_the_input_type() {
        // 2^62's square wraps to 0 in int64, so the row's L2 sum is 9 and 2^62 becomes 0.
        let big = 1i64 << 62;
        assert_eq!(run("L2", tensor2(&[[big, 3]])), [0.0, 1.0]);
        assert_eq!(run("L1", tensor2(&[[-1i32, 3]])), [-0.25, 0.75]);
        // A double's square is rounded once, from the double: 1.00000005 would round to 1
        // as a float, but its square rounds to 1 + 2^-23.
        let x = 1.000_000_05f64;
        let sq = (x * x) as f32;
        assert_ne!(sq, (x as f32) * (x as f32));
        let sum = sq + 1.0;
        assert_eq!(
            run("L2", tensor2(&[[x, 1.0]])),
            [(sq / sum).sqrt(), (1.0 / sum).sqrt()]
        );
    }

    #[test]
    fn unknown_norms_are_refused_and_types_and_ranks_checked() {
        let e = Normalizer::from_node(&node("Normalizer", vec![string("norm", "L3")])).unwrap_err();
        assert!(e.to_string().contains("\"L3\""), "{e}");
        assert_eq!(normalizer_default().norm, Norm::Max);
        let facts = typed_outputs(normalizer("L2"), &[(DatumType::I32, &[None, Some(3)])]).unwrap();
        assert_eq!(facts, [(DatumType::F32, vec![None, Some(3)])]);
        assert!(
            typed_outputs(
                normalizer("L2"),
                &[(DatumType::F32, &[None, Some(3), Some(2)])]
            )
            .is_err()
        );
        assert!(typed_outputs(normalizer("L2"), &[(DatumType::String, &[None, Some(3)])]).is_err());
    }

    fn normalizer_default() -> Normalizer {
        Normalizer::from_node(&node("Normalizer", vec![])).unwrap()
    }
}
