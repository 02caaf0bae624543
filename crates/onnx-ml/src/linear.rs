//! LinearClassifier and LinearRegressor: `x·Wᵀ + b` for each row, then the label and the
//! post-transform as onnxruntime's linearclassifier.cc and linearregressor.cc apply them.
//!
//! Both take `[N, F]` or a single row `[F]` (N = 1), and `coefficients` as `[E, F]` row
//! major, E being the number of classes (`intercepts`' length) or of `targets`. The sums are
//! onnxruntime's, to the bit in most cases: see [`Weights::apply`].
//!
//! onnxruntime over the specification:
//! - a classifier's E is the length of `intercepts`, which is therefore required;
//! - with E = 1 the label is the second label if the raw score is > 0, else the first (or
//!   1 and 0 when there are not exactly two labels); with two labels the scores are
//!   `[1-s, s]` (`[σ(-s), σ(s)]` under LOGISTIC, the only transform that applies), else the
//!   lone score, which only PROBIT transforms;
//! - with E > 1 the label is the first of the highest raw scores, then the scores are
//!   transformed;
//! - a regressor takes float only, and ignores `intercepts` unless there is one per target;
//!   with one target only PROBIT applies.
//!
//! Refused here where onnxruntime answers garbage or reads out of bounds: a classifier with
//! fewer labels than E > 1 scores, PROBIT on a classifier with E = 1 and two labels (it
//! leaves half the scores unwritten), inputs of rank > 2, and a width that does not match
//! the coefficients.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use crate::check::{self, InputTypes};
use crate::kernel::{Kernel, Parsed, parsed, tensor_of};
use crate::labels::Labels;
use crate::post::{PostTransform, SecondClass, write_scores};

/// The input types onnxruntime's LinearClassifier takes; all are converted to float.
const CLASSIFIER_INPUTS: InputTypes = check::numbers("LinearClassifier");

/// The input type onnxruntime's LinearRegressor takes.
const REGRESSOR_INPUTS: InputTypes = check::float_only("LinearRegressor");

/// The parser registered for `LinearClassifier`.
pub(crate) fn parse_classifier(_ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    parsed(LinearClassifier::from_node(node)?)
}

/// The parser registered for `LinearRegressor`.
pub(crate) fn parse_regressor(_ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    parsed(LinearRegressor::from_node(node)?)
}

/// The coefficients and intercepts, laid out for the sums of [`Weights::apply`].
#[derive(Debug)]
struct Weights {
    /// `coefficients` transposed to `[features, outputs]`, so that one feature's step of
    /// every output's sum reads a contiguous run.
    by_feature: Vec<f32>,
    /// One per output; without them the sums start from -0 (onnxruntime then writes the
    /// sums instead of adding them).
    intercepts: Option<Vec<f32>>,
    outputs: usize,
    features: usize,
    /// How many features onnxruntime's GEMM sums before adding the partial sum to the
    /// output (MLAS's K stride for this many outputs).
    block: usize,
}

impl Weights {
    /// Reads `coefficients`, `[outputs, features]` row major: a non-empty multiple of
    /// `outputs` long.
    fn from_node(
        node: &NodeProto,
        outputs: usize,
        intercepts: Option<Vec<f32>>,
    ) -> TractResult<Weights> {
        let coefficients = check::list::<f32>(node, "coefficients")?;
        if coefficients.is_empty() || !coefficients.len().is_multiple_of(outputs) {
            return Err(check::attribute_error(
                &node.op_type,
                &node.name,
                "coefficients",
                &format!("a non-empty multiple of {outputs} values (one row per output)"),
                coefficients.len(),
            ));
        }
        let features = coefficients.len() / outputs;
        let by_feature = (0..features)
            .flat_map(|f| coefficients.iter().skip(f).step_by(features).copied())
            .collect();
        Ok(Weights {
            by_feature,
            intercepts,
            outputs,
            features,
            block: crate::mlas::k_stride(outputs, features),
        })
    }

    /// Replaces `out` with `row·Wᵀ + b` as onnxruntime's GEMM (MLAS) computes it for a batch:
    /// each output starts from its intercept; the features are taken `block` at a time,
    /// each block summed from zero by fused multiply-adds in float, one feature after the
    /// other, and added to the output. `acc` is scratch space, reused between rows.
    ///
    /// Matching the order matters: PROBIT turns a one-ulp difference in a score near 0.5
    /// into 4e-6. (For a batch of one row MLAS takes another kernel, whose sums may differ
    /// in the last bit: the batch's order is kept here for every batch size.)
    fn apply(&self, row: &[f32], out: &mut Vec<f32>, acc: &mut Vec<f32>) {
        out.clear();
        match &self.intercepts {
            Some(b) => out.extend_from_slice(b),
            None => out.resize(self.outputs, -0.0),
        }
        let weight_blocks = self.by_feature.chunks(self.block * self.outputs);
        for (xs, ws) in row.chunks(self.block).zip(weight_blocks) {
            acc.clear();
            acc.resize(self.outputs, 0.0);
            for (&x, w) in xs.iter().zip(ws.chunks(self.outputs)) {
                acc.iter_mut()
                    .zip(w)
                    .for_each(|(a, &w)| *a = crate::mlas::fused_multiply_add(x, w, *a));
            }
            out.iter_mut().zip(acc.iter()).for_each(|(o, a)| *o += a);
        }
    }
}

/// The rows of an input of `shape`: N, or 1 for a 1-D input; its width is checked against
/// the weights when known.
fn rows<D: DimLike>(op: &str, node: &str, weights: &Weights, shape: &[D]) -> TractResult<D> {
    let (n, f) = match shape {
        [f] => (D::one(), f),
        [n, f] => (n.clone(), f),
        _ => bail!(
            "{op} node \"{node}\" takes a [N, F] or [F] input, not rank {}",
            shape.len()
        ),
    };
    if let Ok(f) = f.to_usize() {
        ensure!(
            f == weights.features,
            "{op} node \"{node}\" has coefficients for {} features but its input has {f}",
            weights.features
        );
    }
    Ok(n)
}

/// Rules making `outputs[..]`'s first dimension the input's rows: N, or 1 for a 1-D input.
fn rows_rules<'r, 'p: 'r>(
    op: &'static str,
    s: &mut Solver<'r>,
    input: &'p TensorProxy,
    outputs: &'p [TensorProxy],
) -> InferenceResult {
    s.given(&input.rank, move |s, rank| {
        for output in outputs {
            match rank {
                1 => s.equals(&output.shape[0], 1.to_dim())?,
                2 => s.equals(&output.shape[0], &input.shape[0])?,
                _ => bail!("{op} takes a [N, F] or [F] input, not rank {rank}"),
            }
        }
        Ok(())
    })
}

/// Transforms the scores of one row as onnxruntime does: a lone score only under PROBIT
/// (`expand_lone` false), or expanded to `[1-s, s]` (`expand_lone` true).
fn transform_row(scores: &mut Vec<f32>, transform: PostTransform, expand_lone: bool) {
    if scores.len() != 1 || expand_lone || transform == PostTransform::Probit {
        write_scores(scores, transform, SecondClass::Complement);
    }
}

#[derive(Debug)]
struct LinearClassifier {
    node: String,
    weights: Weights,
    /// The labels the outcome indexes: with one score, `[negative, positive]`.
    labels: Labels,
    /// One score and two class labels: the scores are `[1-s, s]`.
    binary: bool,
    post_transform: PostTransform,
}

impl LinearClassifier {
    fn from_node(node: &NodeProto) -> TractResult<LinearClassifier> {
        let refuse = |attr: &str, expected: &str, found: String| -> TractResult<LinearClassifier> {
            let op = CLASSIFIER_INPUTS.op;
            Err(check::attribute_error(
                op, &node.name, attr, expected, found,
            ))
        };
        let intercepts = check::list::<f32>(node, "intercepts")?;
        let classes = intercepts.len();
        if classes == 0 {
            return refuse(
                "intercepts",
                "one value per class (onnxruntime counts the classes by them)",
                "none".into(),
            );
        }
        let weights = Weights::from_node(node, classes, Some(intercepts))?;
        let post_transform = PostTransform::parse(node.get_attr_opt("post_transform")?)
            .with_context(|| {
                format!(
                    "LinearClassifier node \"{}\": attribute post_transform",
                    node.name
                )
            })?;
        let strings = check::list::<String>(node, "classlabels_strings")?;
        let ints = check::list::<i64>(node, "classlabels_ints")?;
        // onnxruntime takes the string labels whenever there are some.
        let labels = if strings.is_empty() {
            Labels::Ints(ints)
        } else {
            Labels::Strings(strings)
        };
        let binary = classes == 1 && labels.len() == 2;
        let labels = match labels {
            labels if classes > 1 || binary => labels,
            Labels::Ints(_) => Labels::Ints(vec![0, 1]),
            Labels::Strings(_) => Labels::Strings(vec!["0".into(), "1".into()]),
        };
        if labels.len() < classes {
            return refuse(
                "classlabels_ints or classlabels_strings",
                &format!("a label for each of the {classes} classes"),
                format!("{} labels", labels.len()),
            );
        }
        if binary && post_transform == PostTransform::Probit {
            return refuse(
                "post_transform",
                "no PROBIT with one score and two labels (onnxruntime leaves half its scores unwritten)",
                "PROBIT".into(),
            );
        }
        Ok(LinearClassifier {
            node: node.name.clone(),
            weights,
            labels,
            binary,
            post_transform,
        })
    }

    /// The width of the scores output.
    fn width(&self) -> usize {
        if self.binary { 2 } else { self.weights.outputs }
    }

    /// The index in `labels` of a row's outcome, from its raw scores.
    fn outcome(raw: &[f32]) -> usize {
        match raw {
            [s] => usize::from(*s > 0.0),
            _ => {
                let mut best = 0;
                for (ix, s) in raw.iter().enumerate().skip(1) {
                    if *s > raw[best] {
                        best = ix;
                    }
                }
                best
            }
        }
    }
}

impl Kernel for LinearClassifier {
    fn name(&self) -> &'static str {
        "LinearClassifier"
    }

    fn n_outputs(&self) -> usize {
        2
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check::one_input(s, inputs, move |dt| CLASSIFIER_INPUTS.check(&self.node, dt))?;
        s.equals(&outputs[0].datum_type, self.labels.datum_type())?;
        s.equals(&outputs[1].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].rank, 1)?;
        s.equals(&outputs[1].rank, 2)?;
        s.equals(&outputs[1].shape[1], self.width().to_dim())?;
        rows_rules("LinearClassifier", s, &inputs[0], outputs)
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        CLASSIFIER_INPUTS.check(&self.node, inputs[0].datum_type)?;
        let n = rows(
            CLASSIFIER_INPUTS.op,
            &self.node,
            &self.weights,
            inputs[0].shape.dims(),
        )?;
        Ok(tvec!(
            self.labels.datum_type().fact([n.clone()]),
            f32::fact([n, self.width().to_dim()])
        ))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        CLASSIFIER_INPUTS.check(&self.node, x.datum_type())?;
        let n = rows(CLASSIFIER_INPUTS.op, &self.node, &self.weights, x.shape())?;
        let f = self.weights.features;
        let x = x.cast_to::<f32>()?;
        let x = x.try_as_plain_ram()?.as_slice::<f32>()?;
        let mut outcomes = Vec::with_capacity(n);
        let mut scores = Vec::with_capacity(n * self.width());
        let mut row_scores = Vec::with_capacity(self.width());
        let mut acc = Vec::with_capacity(self.weights.outputs);
        for row in x.chunks(f).take(n) {
            self.weights.apply(row, &mut row_scores, &mut acc);
            outcomes.push(Self::outcome(&row_scores));
            transform_row(&mut row_scores, self.post_transform, self.binary);
            scores.extend_from_slice(&row_scores);
        }
        Ok(tvec!(
            self.labels.tensor(&outcomes).into_tvalue(),
            tensor_of(&[n, self.width()], scores)?.into_tvalue()
        ))
    }
}

#[derive(Debug)]
struct LinearRegressor {
    node: String,
    weights: Weights,
    post_transform: PostTransform,
}

impl LinearRegressor {
    fn from_node(node: &NodeProto) -> TractResult<LinearRegressor> {
        // `targets` defaults to 1 in the specification, which onnxruntime fills in.
        let targets: i64 = node.get_attr_opt("targets")?.unwrap_or(1);
        if targets < 1 {
            let op = REGRESSOR_INPUTS.op;
            return Err(check::attribute_error(
                op,
                &node.name,
                "targets",
                "1 or more",
                targets,
            ));
        }
        let targets = targets as usize;
        // onnxruntime ignores intercepts unless there is exactly one per target.
        let intercepts = node
            .get_attr_opt_vec::<f32>("intercepts")?
            .filter(|b| b.len() == targets);
        let weights = Weights::from_node(node, targets, intercepts)?;
        let post_transform = PostTransform::parse(node.get_attr_opt("post_transform")?)
            .with_context(|| {
                format!(
                    "LinearRegressor node \"{}\": attribute post_transform",
                    node.name
                )
            })?;
        Ok(LinearRegressor {
            node: node.name.clone(),
            weights,
            post_transform,
        })
    }
}

impl Kernel for LinearRegressor {
    fn name(&self) -> &'static str {
        "LinearRegressor"
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check::one_input(s, inputs, move |dt| REGRESSOR_INPUTS.check(&self.node, dt))?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].rank, 2)?;
        s.equals(&outputs[0].shape[1], self.weights.outputs.to_dim())?;
        rows_rules("LinearRegressor", s, &inputs[0], outputs)
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        REGRESSOR_INPUTS.check(&self.node, inputs[0].datum_type)?;
        let n = rows(
            REGRESSOR_INPUTS.op,
            &self.node,
            &self.weights,
            inputs[0].shape.dims(),
        )?;
        Ok(tvec!(f32::fact([n, self.weights.outputs.to_dim()])))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        REGRESSOR_INPUTS.check(&self.node, x.datum_type())?;
        let n = rows(REGRESSOR_INPUTS.op, &self.node, &self.weights, x.shape())?;
        let f = self.weights.features;
        let x = x.try_as_plain_ram()?.as_slice::<f32>()?;
        let targets = self.weights.outputs;
        let mut y = Vec::with_capacity(n * targets);
        let mut row_y = Vec::with_capacity(targets);
        let mut acc = Vec::with_capacity(targets);
        for row in x.chunks(f).take(n) {
            self.weights.apply(row, &mut row_y, &mut acc);
            transform_row(&mut row_y, self.post_transform, false);
            y.extend_from_slice(&row_y);
        }
        Ok(tvec!(tensor_of(&[n, targets], y)?.into_tvalue()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::post::{logistic, probit};
    use crate::testing::*;
    use tract_onnx::pb::AttributeProto;

    fn classifier(attrs: Vec<AttributeProto>) -> TractResult<LinearClassifier> {
        LinearClassifier::from_node(&node("LinearClassifier", attrs))
    }

    fn regressor(attrs: Vec<AttributeProto>) -> TractResult<LinearRegressor> {
        LinearRegressor::from_node(&node("LinearRegressor", attrs))
    }

    /// Three classes over two features: scores `[x0, x1, x0 + x1 - 1]`.
    fn three_classes(post: &str) -> Vec<AttributeProto> {
        vec![
            floats("coefficients", &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]),
            floats("intercepts", &[0.0, 0.0, -1.0]),
            ints("classlabels_ints", &[10, 20, 30]),
            string("post_transform", post),
        ]
    }

    #[test]
    fn the_label_is_the_first_highest_raw_score() {
        let c = classifier(three_classes("NONE")).unwrap();
        let out = eval(&c, vec![tensor2(&[[2f32, 2.0], [1.0, 1.0], [0.5, 2.0]])]).unwrap();
        // Row 2: scores [1, 1, 1], a tie: the first wins.
        assert_eq!(out[0], tensor1(&[30i64, 10, 20]));
        assert_eq!(f32s(&out[1]), [2.0, 2.0, 3.0, 1.0, 1.0, 1.0, 0.5, 2.0, 1.5]);
    }

    #[test]
    fn several_scores_are_transformed_but_the_label_comes_from_the_raw_ones() {
        let c = classifier(three_classes("SOFTMAX")).unwrap();
        let out = eval(&c, vec![tensor1(&[2f32, 1.0])]).unwrap();
        assert_eq!(out[0], tensor1(&[10i64]));
        let (e2, e1) = (1f32, (-1f32).exp());
        let sum = e2 + e1 + e2;
        assert_eq!(f32s(&out[1]), [e2 / sum, e1 / sum, e2 / sum]);

        let c = classifier(three_classes("LOGISTIC")).unwrap();
        let out = eval(&c, vec![tensor1(&[-2f32, 1.0])]).unwrap();
        assert_eq!(out[0], tensor1(&[20i64]));
        assert_eq!(
            f32s(&out[1]),
            [logistic(-2.0), logistic(1.0), logistic(-2.0)]
        );

        let c = classifier(three_classes("PROBIT")).unwrap();
        let out = eval(&c, vec![tensor1(&[0.6f32, 0.7])]).unwrap();
        assert_eq!(
            f32s(&out[1]),
            [probit(0.6), probit(0.7), probit(0.6 + 0.7 - 1.0)]
        );
    }

    #[test]
    fn softmax_zero_keeps_zero_scores_at_zero() {
        let c = classifier(three_classes("SOFTMAX_ZERO")).unwrap();
        let out = eval(&c, vec![tensor1(&[0f32, 1.0])]).unwrap();
        // Scores [0, 1, 0]: the zeros stay zero, the one takes everything.
        assert_eq!(f32s(&out[1]), [0.0, 1.0, 0.0]);
    }

    /// One score `x0 - x1` and two string labels.
    fn binary(post: &str) -> Vec<AttributeProto> {
        vec![
            floats("coefficients", &[1.0, -1.0]),
            floats("intercepts", &[0.0]),
            strings("classlabels_strings", &["no", "yes"]),
            string("post_transform", post),
        ]
    }

    #[test]
    fn one_score_and_two_labels_gives_the_complement_or_both_logistics() {
        let x = tensor2(&[[3f32, 1.0], [1.0, 1.0], [0.0, 0.5]]);
        let labels = tensor1(&["yes", "no", "no"].map(String::from));
        for post in ["NONE", "SOFTMAX", "SOFTMAX_ZERO"] {
            let out = eval(&classifier(binary(post)).unwrap(), vec![x.clone()]).unwrap();
            assert_eq!(out[0], labels, "{post}");
            assert_eq!(f32s(&out[1]), [-1.0, 2.0, 1.0, 0.0, 1.5, -0.5], "{post}");
        }
        let out = eval(&classifier(binary("LOGISTIC")).unwrap(), vec![x]).unwrap();
        assert_eq!(out[0], labels);
        let want = [2.0, 0.0, -0.5]
            .map(|s: f32| [logistic(-s), logistic(s)])
            .concat();
        assert_eq!(f32s(&out[1]), want);
    }

    #[test]
    fn probit_with_one_score_and_two_labels_is_refused() {
        let e = classifier(binary("PROBIT")).unwrap_err().to_string();
        assert!(e.contains("post_transform") && e.contains("\"n\""), "{e}");
    }

    #[test]
    fn one_score_without_two_labels_answers_0_or_1_and_the_lone_score() {
        let mut attrs = binary("LOGISTIC");
        attrs[2] = ints("classlabels_ints", &[7, 8, 9]);
        let c = classifier(attrs).unwrap();
        let out = eval(&c, vec![tensor2(&[[3f32, 1.0], [0.0, 1.0]])]).unwrap();
        assert_eq!(out[0], tensor1(&[1i64, 0]));
        assert_eq!(out[1].shape(), [2, 1]);
        assert_eq!(f32s(&out[1]), [2.0, -1.0]);

        let mut attrs = binary("PROBIT");
        attrs[2] = strings("classlabels_strings", &["only"]);
        let c = classifier(attrs).unwrap();
        let out = eval(&c, vec![tensor1(&[0.75f32, 0.0])]).unwrap();
        assert_eq!(out[0], tensor1(&["1".to_string()]));
        assert_eq!(f32s(&out[1]), [probit(0.75)]);
    }

    #[test]
    fn integer_and_double_inputs_are_converted_to_float() {
        let c = classifier(three_classes("NONE")).unwrap();
        let out = eval(&c, vec![tensor2(&[[2i64, 1]])]).unwrap();
        assert_eq!(f32s(&out[1]), [2.0, 1.0, 2.0]);
        let out = eval(&c, vec![tensor2(&[[2i32, 1]])]).unwrap();
        assert_eq!(f32s(&out[1]), [2.0, 1.0, 2.0]);
        let out = eval(&c, vec![tensor2(&[[2f64, 1.0]])]).unwrap();
        assert_eq!(f32s(&out[1]), [2.0, 1.0, 2.0]);
    }

    #[test]
    fn inconsistent_attributes_are_refused_at_load() {
        // `three_classes` with attribute `ix` replaced by `attr` is refused, naming `what`.
        let refused = |ix: usize, attr: AttributeProto, what: &str| {
            let mut attrs = three_classes("NONE");
            attrs[ix] = attr;
            let e = classifier(attrs).unwrap_err().to_string();
            assert!(e.contains(what), "{what}: {e}");
        };
        refused(1, floats("intercepts", &[]), "intercepts");
        refused(0, floats("coefficients", &[1.0, 2.0]), "coefficients");
        refused(2, ints("classlabels_ints", &[1, 2]), "classlabels");
        let e = classifier(three_classes("TANH")).unwrap_err();
        assert!(format!("{e:?}").contains("TANH"), "{e:?}");
    }

    #[test]
    fn a_wrong_width_or_rank_is_an_error() {
        let c = classifier(three_classes("NONE")).unwrap();
        let e = eval(&c, vec![tensor2(&[[1f32, 2.0, 3.0]])])
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 features") && e.contains("has 3"), "{e}");
        assert!(eval(&c, vec![tensor3(&[[[1f32, 2.0]]])]).is_err());
        let c = classifier(three_classes("NONE")).unwrap();
        assert!(typed_outputs(c, &[(DatumType::F32, &[None, Some(3)])]).is_err());
    }

    #[test]
    fn classifier_types_with_the_batch_symbol() {
        let c = classifier(three_classes("NONE")).unwrap();
        let facts = typed_outputs(c, &[(DatumType::F64, &[None, Some(2)])]).unwrap();
        assert_eq!(
            facts,
            [
                (DatumType::I64, vec![None]),
                (DatumType::F32, vec![None, Some(3)])
            ]
        );
        let c = classifier(binary("NONE")).unwrap();
        let facts = typed_outputs(c, &[(DatumType::F32, &[Some(2)])]).unwrap();
        assert_eq!(
            facts,
            [
                (DatumType::String, vec![Some(1)]),
                (DatumType::F32, vec![Some(1), Some(2)])
            ]
        );
        let c = classifier(binary("NONE")).unwrap();
        assert!(typed_outputs(c, &[(DatumType::String, &[None, Some(2)])]).is_err());
    }

    #[test]
    fn sums_as_onnxruntime_s_gemm_does_for_a_batch() {
        // A row of onnxruntime's corpus whose terms cancel: onnxruntime answers 0.5428915 for
        // it in a batch; a plain float sum gives 0.5428914, the exact sum 0.54289174.
        let attrs = vec![
            floats(
                "coefficients",
                &[0.82740545, -1.016439, 0.3579176, -1.1760886, -0.23124985],
            ),
            floats("intercepts", &[-1.04068]),
        ];
        let x = tensor2(&[[-3.0953724f32, 0.40360975, 2.3972814, -2.9111505, -1.181166]]);
        assert_eq!(
            eval(&regressor(attrs).unwrap(), vec![x]).unwrap()[0],
            tensor2(&[[0.5428915f32]])
        );
    }

    #[test]
    fn long_rows_are_summed_in_blocks_of_mlas_k_stride() {
        // 1024 features (one block for one output) summing to 2^24, then two of 1: summed
        // on, each 1 is lost to rounding; as a second block, their 2 is kept.
        let mut w = vec![16384f32; 1024];
        w.extend([1.0, 1.0]);
        let attrs = vec![floats("coefficients", &w), floats("intercepts", &[0.0])];
        let x = tract_ndarray::Array2::from_elem((1, 1026), 1f32).into_tensor();
        assert_eq!(
            eval(&regressor(attrs).unwrap(), vec![x]).unwrap()[0],
            tensor2(&[[16_777_218f32]])
        );
    }

    /// Two targets over two features: `[x0 + x1 + 1, x0 - x1 - 1]`.
    fn two_targets(post: &str) -> Vec<AttributeProto> {
        vec![
            floats("coefficients", &[1.0, 1.0, 1.0, -1.0]),
            floats("intercepts", &[1.0, -1.0]),
            int("targets", 2),
            string("post_transform", post),
        ]
    }

    #[test]
    fn a_regressor_computes_each_target_then_transforms() {
        let r = regressor(two_targets("NONE")).unwrap();
        let out = eval(&r, vec![tensor2(&[[1f32, 2.0], [0.0, 0.0]])]).unwrap();
        assert_eq!(out[0], tensor2(&[[4f32, -2.0], [1.0, -1.0]]));
        let r = regressor(two_targets("LOGISTIC")).unwrap();
        let out = eval(&r, vec![tensor1(&[1f32, 2.0])]).unwrap();
        assert_eq!(out[0], tensor2(&[[logistic(4.0), logistic(-2.0)]]));
    }

    #[test]
    fn one_target_is_only_transformed_by_probit() {
        let one = |post: &str| {
            vec![
                floats("coefficients", &[0.5, 0.0]),
                floats("intercepts", &[0.0]),
                string("post_transform", post),
            ]
        };
        for post in ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"] {
            let r = regressor(one(post)).unwrap();
            assert_eq!(
                eval(&r, vec![tensor2(&[[3f32, 9.0]])]).unwrap()[0],
                tensor2(&[[1.5f32]]),
                "{post}"
            );
        }
        let r = regressor(one("PROBIT")).unwrap();
        assert_eq!(
            eval(&r, vec![tensor2(&[[0.5f32, 9.0]])]).unwrap()[0],
            tensor2(&[[probit(0.25)]])
        );
    }

    #[test]
    fn intercepts_not_one_per_target_are_ignored() {
        let mut attrs = two_targets("NONE");
        attrs[1] = floats("intercepts", &[5.0]);
        let r = regressor(attrs).unwrap();
        assert_eq!(
            eval(&r, vec![tensor1(&[1f32, 2.0])]).unwrap()[0],
            tensor2(&[[3f32, -1.0]])
        );
    }

    #[test]
    fn a_regressor_takes_float_only_and_types_with_the_batch_symbol() {
        let facts = typed_outputs(
            regressor(two_targets("NONE")).unwrap(),
            &[(DatumType::F32, &[None, Some(2)])],
        );
        assert_eq!(facts.unwrap(), [(DatumType::F32, vec![None, Some(2)])]);
        let r = regressor(two_targets("NONE")).unwrap();
        assert!(typed_outputs(r, &[(DatumType::F64, &[None, Some(2)])]).is_err());
        let r = regressor(two_targets("NONE")).unwrap();
        assert!(eval(&r, vec![tensor2(&[[1f64, 2.0]])]).is_err());
        let mut attrs = two_targets("NONE");
        attrs[2] = int("targets", 0);
        assert!(
            regressor(attrs)
                .unwrap_err()
                .to_string()
                .contains("targets")
        );
    }
}
