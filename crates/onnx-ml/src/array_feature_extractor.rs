//! ArrayFeatureExtractor: picks columns of the last axis of X by the indices Y, as
//! onnxruntime's array_feature_extractor.cc does.
//!
//! onnxruntime over the specification (and over tract's own, a Gather):
//! - the output keeps X's shape with the last dimension replaced by the number of indices,
//!   whatever Y's shape: a scalar index (skl2onnx's binary LinearSVC and Ridge) gives
//!   `[N, 1]`, not `[N]`;
//! - a 1-D X gives `[1, k]`;
//! - no index (an empty Y) is an error, and so is an index past the last column. A negative
//!   index, which onnxruntime would read before the row with, is refused too.
//!
//! The indices are checked when the graph is typed if they are a constant, as skl2onnx
//! writes them; else at each evaluation.
//!
//! X float, double, int64, int32 or string; Y int64; the output has X's type.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use crate::check::{self, InputTypes};
use crate::kernel::{Kernel, Parsed, parsed, tensor_of};

/// The types onnxruntime's ArrayFeatureExtractor takes for X.
const INPUTS: InputTypes = InputTypes {
    op: "ArrayFeatureExtractor",
    types: &[
        DatumType::F32,
        DatumType::F64,
        DatumType::I64,
        DatumType::I32,
        DatumType::String,
    ],
    said: "float, double, int64, int32 or string data",
};

/// The parser registered for `ArrayFeatureExtractor`.
pub(crate) fn parse(_ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    parsed(ArrayFeatureExtractor {
        node: node.name.clone(),
    })
}

#[derive(Debug)]
struct ArrayFeatureExtractor {
    node: String,
}

impl ArrayFeatureExtractor {
    fn check_rank(&self, rank: usize) -> TractResult<()> {
        check::rank_1_or_more("ArrayFeatureExtractor", &self.node, rank)
    }

    /// The output shape: X's with its last dimension replaced by the `count` indices, or
    /// `[1, count]` for a 1-D X.
    fn output_shape<D: Clone + From<usize>>(x: &[D], count: D) -> TVec<D> {
        match x {
            [_] => tvec![D::from(1), count],
            _ => x[..x.len() - 1].iter().cloned().chain([count]).collect(),
        }
    }

    /// The indices as positions in a row of `width`: all of them in range, and at least one.
    fn positions(&self, indices: &[i64], width: usize) -> TractResult<Vec<usize>> {
        ensure!(
            !indices.is_empty(),
            "ArrayFeatureExtractor node \"{}\" has no index to extract",
            self.node
        );
        indices
            .iter()
            .map(|&i| match usize::try_from(i) {
                Ok(i) if i < width => Ok(i),
                _ => bail!(
                    "ArrayFeatureExtractor node \"{}\": index {i} is out of range for {width} columns",
                    self.node
                ),
            })
            .collect()
    }
}

/// The picked columns of each row of `x`, rows of `width`.
fn gather<T: Datum + Clone>(
    x: &Tensor,
    width: usize,
    positions: &[usize],
    shape: &[usize],
) -> TractResult<Tensor> {
    let data = x.try_as_plain_ram()?.as_slice::<T>()?;
    let mut z = Vec::with_capacity(data.len() / width * positions.len());
    for row in data.chunks(width) {
        z.extend(positions.iter().map(|&p| row[p].clone()));
    }
    tensor_of(shape, z)
}

impl Kernel for ArrayFeatureExtractor {
    fn name(&self) -> &'static str {
        "ArrayFeatureExtractor"
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 2)?;
        s.given(&inputs[0].datum_type, move |_, dt| {
            INPUTS.check(&self.node, dt)
        })?;
        s.equals(&inputs[1].datum_type, i64::datum_type())?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.given_2(&inputs[0].shape, &inputs[1].shape, move |s, x, y| {
            self.check_rank(x.len())?;
            let count = y.iter().product::<TDim>();
            s.equals(&outputs[0].shape, Self::output_shape(&x, count))
        })
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let (x, y) = (inputs[0], inputs[1]);
        INPUTS.check(&self.node, x.datum_type)?;
        ensure!(
            y.datum_type == DatumType::I64,
            "ArrayFeatureExtractor node \"{}\" takes int64 indices",
            self.node
        );
        self.check_rank(x.rank())?;
        if let (Some(indices), Some(Ok(width))) = (&y.konst, x.shape.last().map(|d| d.to_usize())) {
            self.positions(indices.try_as_plain_ram()?.as_slice::<i64>()?, width)?;
        }
        let count = y.shape.iter().product::<TDim>();
        Ok(tvec!(
            x.datum_type.fact(Self::output_shape(x.shape.dims(), count))
        ))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, y) = args_2!(inputs);
        self.check_rank(x.rank())?;
        let width = x.shape()[x.rank() - 1];
        let positions = self.positions(y.try_as_plain_ram()?.as_slice::<i64>()?, width)?;
        let shape = Self::output_shape(x.shape(), positions.len());
        let z = match x.datum_type() {
            DatumType::F32 => gather::<f32>(&x, width, &positions, &shape)?,
            DatumType::F64 => gather::<f64>(&x, width, &positions, &shape)?,
            DatumType::I64 => gather::<i64>(&x, width, &positions, &shape)?,
            DatumType::I32 => gather::<i32>(&x, width, &positions, &shape)?,
            DatumType::String => gather::<String>(&x, width, &positions, &shape)?,
            dt => return Err(INPUTS.error(&self.node, dt)),
        };
        Ok(tvec!(z.into_tvalue()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    fn afe() -> ArrayFeatureExtractor {
        ArrayFeatureExtractor { node: "n".into() }
    }

    fn run(x: Tensor, y: Tensor) -> TractResult<Tensor> {
        Ok(eval(&afe(), vec![x, y])?.remove(0))
    }

    #[test]
    fn picks_columns_in_the_indices_order_repeats_included() {
        let x = tensor2(&[[1f32, 2.0, 3.0], [4.0, 5.0, 6.0]]);
        assert_eq!(
            run(x, tensor1(&[2i64, 0, 2])).unwrap(),
            tensor2(&[[3f32, 1.0, 3.0], [6.0, 4.0, 6.0]])
        );
    }

    #[test]
    fn a_scalar_index_keeps_the_last_axis() {
        let x = tensor2(&[[1i64, 2], [3, 4]]);
        assert_eq!(run(x, tensor0(1i64)).unwrap(), tensor2(&[[2i64], [4]]));
    }

    #[test]
    fn a_1d_input_gives_one_row() {
        assert_eq!(
            run(tensor1(&[1f64, 2.0, 3.0]), tensor1(&[1i64, 2])).unwrap(),
            tensor2(&[[2f64, 3.0]])
        );
    }

    #[test]
    fn the_indices_shape_only_counts() {
        let x = tensor3(&[[[1i32, 2], [3, 4]]]);
        assert_eq!(
            run(x, tensor2(&[[1i64], [0]])).unwrap(),
            tensor3(&[[[2i32, 1], [4, 3]]])
        );
    }

    #[test]
    fn strings_are_picked_too() {
        let x = tensor2(&[["a", "b"], ["c", "d"]].map(|r| r.map(String::from)));
        let want = tensor2(&[["b"], ["d"]].map(|r| r.map(String::from)));
        assert_eq!(run(x, tensor1(&[1i64])).unwrap(), want);
    }

    #[test]
    fn out_of_range_negative_or_no_index_is_an_error() {
        let x = tensor2(&[[1f32, 2.0]]);
        assert!(
            run(x.clone(), tensor1(&[2i64]))
                .unwrap_err()
                .to_string()
                .contains("index 2 is out of range")
        );
        assert!(
            run(x.clone(), tensor1(&[-1i64]))
                .unwrap_err()
                .to_string()
                .contains("index -1")
        );
        assert!(
            run(x, tensor1::<i64>(&[]))
                .unwrap_err()
                .to_string()
                .contains("no index")
        );
    }

    #[test]
    fn types_with_the_batch_symbol() {
        let facts = typed_outputs(
            afe(),
            &[(DatumType::F32, &[None, Some(4)]), (DatumType::I64, &[])],
        )
        .unwrap();
        assert_eq!(facts, [(DatumType::F32, vec![None, Some(1)])]);
        let facts = typed_outputs(
            afe(),
            &[
                (DatumType::String, &[None, Some(4)]),
                (DatumType::I64, &[Some(3)]),
            ],
        )
        .unwrap();
        assert_eq!(facts, [(DatumType::String, vec![None, Some(3)])]);
        let facts = typed_outputs(
            afe(),
            &[(DatumType::I32, &[Some(4)]), (DatumType::I64, &[Some(2)])],
        )
        .unwrap();
        assert_eq!(facts, [(DatumType::I32, vec![Some(1), Some(2)])]);
    }

    #[test]
    fn constant_indices_out_of_range_are_refused_when_typed() {
        let x = f32::fact([TDim::from(2), TDim::from(3)]);
        let y = TypedFact::try_from(rctensor1(&[3i64])).unwrap();
        let e = afe().output_facts(&[&x, &y]).unwrap_err().to_string();
        assert!(e.contains("index 3 is out of range for 3 columns"), "{e}");
        let y = TypedFact::try_from(rctensor1(&[2i64])).unwrap();
        assert!(afe().output_facts(&[&x, &y]).is_ok());
    }
}
