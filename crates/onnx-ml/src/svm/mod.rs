//! The support vector machines: SVMClassifier and SVMRegressor, as onnxruntime computes them
//! (svmclassifier.cc, svmregressor.cc and their shared `SVMCommon` in svmclassifier.h).
//!
//! # Layout
//! - [`kernel`]: the kernel function (LINEAR, POLY, RBF, SIGMOID) and the vectors it is
//!   applied against, stored for one tight loop per input row.
//! - [`classifier`]: SVMClassifier, with support vectors (libsvm's one-vs-one machine) or
//!   without (liblinear's one weight row per class).
//! - [`probability`]: Platt's scaling of the pair scores and libsvm's pairwise coupling
//!   into class probabilities.
//! - [`regressor`]: SVMRegressor (SVR, and OneClassSVM through `one_class`).
//!
//! Here, [`Attrs`] reads the attributes both share and words the errors that refuse them,
//! and [`Rows`] views an input as rows of float features, as onnxruntime does.
//!
//! onnxruntime is the reference. Where it reads past the end of an attribute or of the
//! input (lengths that disagree, a row of the wrong width), these operators refuse instead:
//! the node when the graph is parsed, the input when it is evaluated.

mod classifier;
mod kernel;
mod probability;
mod regressor;

use std::borrow::Cow;
use std::fmt::Display;

pub(crate) use classifier::parse as parse_classifier;
pub(crate) use regressor::parse as parse_regressor;

use crate::post::PostTransform;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

/// The attributes of one node, read with errors that name the operator, the node, the
/// attribute, what was expected and what was found.
#[derive(Clone, Copy)]
struct Attrs<'a> {
    op: &'static str,
    node: &'a NodeProto,
}

impl<'a> Attrs<'a> {
    fn new(op: &'static str, node: &'a NodeProto) -> Attrs<'a> {
        Attrs { op, node }
    }

    /// The node's name, kept by the operator for its evaluation errors.
    fn node_name(&self) -> String {
        self.node.name.clone()
    }

    /// Refuses the node because of one attribute.
    fn refuse<T>(&self, attr: &str, expected: impl Display, found: impl Display) -> TractResult<T> {
        bail!(
            "{} node \"{}\": attribute `{attr}`: expected {expected}, found {found}",
            self.op,
            self.node.name
        )
    }

    fn floats(&self, attr: &str) -> TractResult<Option<Vec<f32>>> {
        self.node.get_attr_opt_vec(attr)
    }

    /// A list onnxruntime requires (its kernel fails to build without it).
    fn required_floats(&self, attr: &str) -> TractResult<Vec<f32>> {
        match self.floats(attr)? {
            Some(values) => Ok(values),
            None => self.refuse(attr, "a list of floats (onnxruntime requires it)", "none"),
        }
    }

    fn ints(&self, attr: &str) -> TractResult<Option<Vec<i64>>> {
        self.node.get_attr_opt_vec(attr)
    }

    fn int(&self, attr: &str) -> TractResult<Option<i64>> {
        self.node.get_attr_opt(attr)
    }

    fn string(&self, attr: &str) -> TractResult<Option<&'a str>> {
        self.node.get_attr_opt(attr)
    }

    /// `post_transform` (NONE when absent), refused by name when unknown.
    fn post_transform(&self) -> TractResult<PostTransform> {
        PostTransform::parse(self.string("post_transform")?).map_err(|e| {
            format_err!(
                "{} node \"{}\": attribute `post_transform`: {e}",
                self.op,
                self.node.name
            )
        })
    }

    /// Refuses a list whose length is not the one the other attributes imply.
    fn expect_len(&self, attr: &str, values: &[f32], len: usize, why: &str) -> TractResult<()> {
        if values.len() != len {
            self.refuse(attr, format!("{len} values ({why})"), values.len())?;
        }
        Ok(())
    }
}

/// An input seen as rows of float features: `[N, F]` is N rows, and `[F]` one row, as
/// onnxruntime reads them. Other types are converted to float first, as onnxruntime's
/// SVMClassifier does before its GEMM.
struct Rows<'t> {
    data: Cow<'t, Tensor>,
    count: usize,
}

impl<'t> Rows<'t> {
    /// The rows of `input`, each of `features` values, or an error naming the operator.
    fn of(op: &str, node: &str, input: &'t Tensor, features: usize) -> TractResult<Rows<'t>> {
        let (count, width) = match *input.shape() {
            [width] => (1, width),
            [count, width] => (count, width),
            _ => bail!(
                "{op} node \"{node}\" takes [N, {features}] or [{features}], not a rank {} input",
                input.rank()
            ),
        };
        ensure!(
            width == features,
            "{op} node \"{node}\": the input has {width} features per row, the model {features}"
        );
        let data = if input.datum_type() == f32::datum_type() {
            Cow::Borrowed(input)
        } else {
            input.cast_to::<f32>()?
        };
        Ok(Rows { data, count })
    }

    fn features(&self) -> TractResult<&[f32]> {
        self.data.try_as_plain_ram()?.as_slice::<f32>()
    }
}

/// The batch dimension of the outputs from the input's fact: `N` for `[N, F]`, 1 for
/// `[F]`. The typed-fact counterpart of [`rules_for_rows`].
fn batch_of(
    op: &str,
    accepted: &[DatumType],
    input: &TypedFact,
    features: usize,
) -> TractResult<TDim> {
    check_input_type(op, accepted, input.datum_type)?;
    let shape = &input.shape;
    ensure!(
        shape.rank() == 1 || shape.rank() == 2,
        "{op} takes [N, {features}] or [{features}], not a rank {} input",
        shape.rank()
    );
    if let Ok(width) = shape[shape.rank() - 1].to_usize() {
        ensure!(
            width == features,
            "{op}: the input has {width} features per row, the model {features}"
        );
    }
    Ok(if shape.rank() == 2 {
        shape[0].clone()
    } else {
        1.to_dim()
    })
}

/// Inference rules shared by both operators: the input is `[N, F]` or `[F]` of an accepted
/// type, and each output's first dimension is N (or 1).
fn rules_for_rows<'r, 'p: 'r>(
    s: &mut Solver<'r>,
    op: &'static str,
    accepted: &'static [DatumType],
    features: usize,
    input: &'p TensorProxy,
    outputs: &'p [TensorProxy],
) -> InferenceResult {
    s.given(&input.datum_type, move |_, dt| {
        check_input_type(op, accepted, dt)
    })?;
    s.given(&input.rank, move |s, rank| {
        ensure!(
            rank == 1 || rank == 2,
            "{op} takes [N, {features}] or [{features}], not a rank {rank} input"
        );
        let last = rank as usize - 1;
        s.given(&input.shape[last], move |_, width| {
            if let Ok(width) = width.to_usize() {
                ensure!(
                    width == features,
                    "{op}: the input has {width} features per row, the model {features}"
                );
            }
            Ok(())
        })?;
        for output in outputs {
            if rank == 2 {
                s.equals(&output.shape[0], &input.shape[0])?;
            } else {
                s.equals(&output.shape[0], 1.to_dim())?;
            }
        }
        Ok(())
    })
}

/// Refuses an input type onnxruntime has no kernel for.
fn check_input_type(op: &str, accepted: &[DatumType], found: DatumType) -> TractResult<()> {
    ensure!(
        accepted.contains(&found),
        "{op} takes {} input (as onnxruntime), not {found:?}",
        accepted
            .iter()
            .map(|dt| format!("{dt:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

#[cfg(test)]
mod test_support;
