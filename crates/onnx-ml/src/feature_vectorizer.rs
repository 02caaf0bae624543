//! FeatureVectorizer: concatenates its inputs' features, row by row, into one float
//! matrix, as onnxruntime's feature_vectorizer.cc does.
//!
//! Input k gives `inputdimensions[k]` columns: its features (all the dimensions after the
//! first, flattened; a 1-D input is one row) cut to that many, or followed by zeros. The
//! output is `[N, Σ inputdimensions]`, N the first input's rows.
//!
//! onnxruntime over the specification: the inputs share one type (onnxruntime's T1 is one
//! type for all), int32, int64, float or double, converted to float. Refused here where
//! onnxruntime reads or writes out of bounds: inputs whose numbers of rows differ.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use crate::check::{self, NUMBERS};
use crate::kernel::{Kernel, Parsed, parsed, tensor_of};

/// The parser registered for `FeatureVectorizer`.
pub(crate) fn parse(_ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    parsed(FeatureVectorizer::from_node(node)?)
}

#[derive(Debug)]
struct FeatureVectorizer {
    node: String,
    /// The columns each input gives.
    dims: Vec<usize>,
    /// Their sum: the output's width.
    width: usize,
}

impl FeatureVectorizer {
    fn from_node(node: &NodeProto) -> TractResult<FeatureVectorizer> {
        let dims = check::list::<i64>(node, "inputdimensions")?;
        if dims.is_empty() || dims.iter().any(|&d| d < 0) {
            return Err(check::attribute_error(
                "FeatureVectorizer",
                &node.name,
                "inputdimensions",
                "one non-negative count of columns per input",
                format!("{dims:?}"),
            ));
        }
        let dims: Vec<usize> = dims.into_iter().map(|d| d as usize).collect();
        Ok(FeatureVectorizer {
            node: node.name.clone(),
            width: dims.iter().sum(),
            dims,
        })
    }

    /// Checks that the inputs share one of the types onnxruntime's FeatureVectorizer takes.
    fn check_types(&self, types: &[DatumType]) -> TractResult<()> {
        ensure!(
            NUMBERS.contains(&types[0]) && types.iter().all(|t| *t == types[0]),
            "FeatureVectorizer node \"{}\" takes inputs of one type, int32, int64, float or \
             double, not {types:?}",
            self.node
        );
        Ok(())
    }

    fn check_arity(&self, inputs: usize) -> TractResult<()> {
        ensure!(
            inputs == self.dims.len(),
            "FeatureVectorizer node \"{}\" has {} inputdimensions for {inputs} inputs",
            self.node,
            self.dims.len()
        );
        Ok(())
    }

    /// The rows and features of an input of `shape`: a 1-D input is one row.
    fn rows_and_features<D: DimLike>(&self, shape: &[D]) -> TractResult<(D, D)> {
        match shape {
            [] => bail!(
                "FeatureVectorizer node \"{}\" takes inputs of rank 1 or more, not scalars",
                self.node
            ),
            [f] => Ok((D::one(), f.clone())),
            [n, rest @ ..] => Ok((n.clone(), rest.iter().cloned().product())),
        }
    }

    /// Copies each row of `x`, `features` long, into `y`'s rows at `offset`, cut to `dim`.
    fn place(
        &self,
        x: &Tensor,
        features: usize,
        dim: usize,
        offset: usize,
        y: &mut [f32],
    ) -> TractResult<()> {
        let take = features.min(dim);
        if take == 0 {
            return Ok(());
        }
        let x = x.cast_to::<f32>()?;
        let x = x.try_as_plain_ram()?.as_slice::<f32>()?;
        for (out, row) in y.chunks_mut(self.width).zip(x.chunks(features)) {
            out[offset..offset + take].copy_from_slice(&row[..take]);
        }
        Ok(())
    }
}

impl Kernel for FeatureVectorizer {
    fn name(&self) -> &'static str {
        "FeatureVectorizer"
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        self.check_arity(inputs.len())?;
        s.given_all(inputs.iter().map(|i| &i.datum_type), move |_, types| {
            self.check_types(&types)
        })?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].rank, 2)?;
        s.equals(&outputs[0].shape[1], self.width.to_dim())?;
        s.given(&inputs[0].shape, move |s, shape| {
            let (n, _) = self.rows_and_features(&shape)?;
            s.equals(&outputs[0].shape[0], n)
        })
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.check_arity(inputs.len())?;
        self.check_types(&inputs.iter().map(|i| i.datum_type).collect::<Vec<_>>())?;
        let (n, _) = self.rows_and_features(inputs[0].shape.dims())?;
        for input in &inputs[1..] {
            let (rows, _) = self.rows_and_features(input.shape.dims())?;
            if let (Ok(a), Ok(b)) = (n.to_usize(), rows.to_usize()) {
                ensure!(
                    a == b,
                    "FeatureVectorizer node \"{}\" has inputs of {a} and {b} rows",
                    self.node
                );
            }
        }
        Ok(tvec!(f32::fact([n, self.width.to_dim()])))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        self.check_arity(inputs.len())?;
        self.check_types(&inputs.iter().map(|i| i.datum_type()).collect::<Vec<_>>())?;
        let (n, _) = self.rows_and_features(inputs[0].shape())?;
        let mut y = vec![0f32; n * self.width];
        let mut offset = 0;
        for (x, &dim) in inputs.iter().zip(&self.dims) {
            let (rows, features) = self.rows_and_features(x.shape())?;
            ensure!(
                rows == n,
                "FeatureVectorizer node \"{}\" has inputs of {n} and {rows} rows",
                self.node
            );
            self.place(x, features, dim, offset, &mut y)?;
            offset += dim;
        }
        Ok(tvec!(tensor_of(&[n, self.width], y)?.into_tvalue()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    fn vectorizer(dims: &[i64]) -> FeatureVectorizer {
        FeatureVectorizer::from_node(&node(
            "FeatureVectorizer",
            vec![ints("inputdimensions", dims)],
        ))
        .unwrap()
    }

    fn run(dims: &[i64], inputs: Vec<Tensor>) -> TractResult<Tensor> {
        Ok(eval(&vectorizer(dims), inputs)?.remove(0))
    }

    #[test]
    fn concatenates_the_inputs_row_by_row() {
        let y = run(
            &[2, 1],
            vec![
                tensor2(&[[1f32, 2.0], [3.0, 4.0]]),
                tensor2(&[[5f32], [6.0]]),
            ],
        )
        .unwrap();
        assert_eq!(y, tensor2(&[[1f32, 2.0, 5.0], [3.0, 4.0, 6.0]]));
    }

    #[test]
    fn inputs_are_cut_or_padded_to_their_dimension() {
        let a = tensor2(&[[1f32, 2.0], [3.0, 4.0]]);
        let b = tensor2(&[[5f32, 6.0, 7.0], [8.0, 9.0, 10.0]]);
        let y = run(&[3, 2], vec![a, b]).unwrap();
        assert_eq!(
            y,
            tensor2(&[[1f32, 2.0, 0.0, 5.0, 6.0], [3.0, 4.0, 0.0, 8.0, 9.0]])
        );
        let y = run(&[0, 1], vec![tensor2(&[[1f32]]), tensor2(&[[2f32]])]).unwrap();
        assert_eq!(y, tensor2(&[[2f32]]));
    }

    #[test]
    fn features_are_flattened_and_a_1d_input_is_one_row() {
        let y = run(&[4], vec![tensor3(&[[[1i64, 2], [3, 4]]])]).unwrap();
        assert_eq!(y, tensor2(&[[1f32, 2.0, 3.0, 4.0]]));
        let y = run(&[2, 1], vec![tensor1(&[1.5f64, 2.5]), tensor1(&[3f64])]).unwrap();
        assert_eq!(y, tensor2(&[[1.5f32, 2.5, 3.0]]));
        assert_eq!(
            run(&[1], vec![tensor1(&[7i32])]).unwrap(),
            tensor2(&[[7f32]])
        );
    }

    #[test]
    fn mismatched_inputs_are_errors() {
        let e = run(&[1, 1], vec![tensor2(&[[1f32], [2.0]]), tensor2(&[[3f32]])]).unwrap_err();
        assert!(e.to_string().contains("2 and 1 rows"), "{e}");
        assert!(run(&[1, 1], vec![tensor2(&[[1f32]]), tensor2(&[[1i64]])]).is_err());
        assert!(
            run(&[1, 1], vec![tensor2(&[[1f32]])])
                .unwrap_err()
                .to_string()
                .contains("2 inputdimensions for 1 inputs")
        );
    }

    #[test]
    fn inputdimensions_are_required() {
        assert!(FeatureVectorizer::from_node(&node("FeatureVectorizer", vec![])).is_err());
        let negative = vec![ints("inputdimensions", &[2, -1])];
        assert!(FeatureVectorizer::from_node(&node("FeatureVectorizer", negative)).is_err());
    }

    #[test]
    fn types_with_the_batch_symbol() {
        let inputs: [(DatumType, &[Option<usize>]); 2] = [
            (DatumType::I64, &[None, Some(2)]),
            (DatumType::I64, &[None, Some(3)]),
        ];
        let facts = typed_outputs(vectorizer(&[2, 1]), &inputs).unwrap();
        assert_eq!(facts, [(DatumType::F32, vec![None, Some(3)])]);
        let mixed: [(DatumType, &[Option<usize>]); 2] = [
            (DatumType::F32, &[None, Some(2)]),
            (DatumType::F64, &[None, Some(1)]),
        ];
        assert!(typed_outputs(vectorizer(&[2, 1]), &mixed).is_err());
    }
}
