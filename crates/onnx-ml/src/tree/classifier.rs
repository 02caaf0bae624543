//! TreeEnsembleClassifier: per row, the sum of the weights the row's leaves give each
//! class, plus `base_values`, then a label and the scores `post_transform` makes of them.
//!
//! onnxruntime's rules (TreeAggregatorClassifier in tree_ensemble_aggregator.h) are
//! followed to the letter, since skl2onnx's exports depend on them and the specification
//! says nothing of most:
//! - more than two classes: base values added (a class no leaf touched takes its base
//!   value), the label is the argmax over the classes that have a score, the first of
//!   equals; a class without score is written 0;
//! - two classes: the binary rules of [`TreeClassifier::two_classes`], which give the
//!   label from the second class's score (or the first's when only it has one, as in
//!   skl2onnx's binary exports, which keep only class 1's weight, as class id 0);
//! - one class: the label is the literal 1 if the score is positive, else 0.
//!
//! Outputs: the label `[N]` (int64 from `classlabels_int64s`, or string from
//! `classlabels_strings`) and the scores `[N, C]` float, C the number of labels.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::attrs::Attrs;
use super::forest::{Real, Sum};
use super::{Ensemble, Finish, matrix, vector};
use crate::kernel::{Kernel, Parsed, parsed};
use crate::labels::Labels;
use crate::post::{PostTransform, SecondClass, probit, write_scores};

const OP: &str = "TreeEnsembleClassifier";

/// The parser registered for `TreeEnsembleClassifier`.
pub(crate) fn parse(ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    parsed(TreeClassifier::parse(&Attrs::new(OP, node, ctx))?)
}

#[derive(Debug)]
struct TreeClassifier {
    ensemble: Ensemble,
    labels: Labels,
    post_transform: PostTransform,
    /// onnxruntime's `binary_case_`: two labels, and all the weights on one class id.
    binary: bool,
    /// onnxruntime's `weights_are_all_positive_`.
    all_positive: bool,
}

/// The label of a row, as onnxruntime picks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pick {
    /// The label of this class.
    Class(usize),
    /// 1 or 0 as such (onnxruntime's default `positive_label_`/`negative_label_`), an int64
    /// label whatever the labels are, or an index into the string labels.
    Literal(i64),
}

impl TreeClassifier {
    fn parse(attrs: &Attrs) -> TractResult<TreeClassifier> {
        let ints = attrs.ints("classlabels_int64s")?;
        let strings = attrs.strings("classlabels_strings")?.unwrap_or_default();
        let labels = match (ints.is_empty(), strings.is_empty()) {
            (false, true) => Labels::Ints(ints.to_vec()),
            (true, false) => Labels::Strings(strings),
            (true, true) => {
                return attrs.refuse(
                    "classlabels_int64s",
                    "labels (or classlabels_strings)",
                    "none",
                );
            }
            (false, false) => {
                return attrs.refuse(
                    "classlabels_strings",
                    "either these or classlabels_int64s",
                    "both",
                );
            }
        };
        let classes = labels.len();
        let post_transform = attrs.post_transform()?;
        let (ensemble, stats) = Ensemble::parse(attrs, "class", classes)?;
        check_base_values(attrs, ensemble.base_values.len(), classes)?;
        Ok(TreeClassifier {
            ensemble,
            labels,
            post_transform,
            binary: classes == 2 && stats.targets_used == 1,
            all_positive: stats.all_positive,
        })
    }

    /// One row's label and written scores (`out`, one per class); `None` when no class
    /// has a score to take the label from.
    fn finish<C: Real>(
        &self,
        scores: &mut [C],
        has_score: &mut [bool],
        out: &mut [f32],
        lone: &mut Vec<f32>,
    ) -> Option<Pick> {
        match scores.len() {
            1 => Some(self.one_class(scores[0], out)),
            2 => Some(self.two_classes(scores, has_score, out, lone)),
            _ => self.classes(scores, has_score, out),
        }
    }

    /// onnxruntime's FinalizeScores1 for a single label: the score (plus the base value),
    /// PROBIT its only transform, and the label 1 if it is positive, else 0.
    fn one_class<C: Real>(&self, score: C, out: &mut [f32]) -> Pick {
        let score = match self.ensemble.base_values.len() {
            1 => score + self.ensemble.base(0),
            _ => score,
        };
        let value = score.to_f32();
        out[0] = if self.post_transform == PostTransform::Probit {
            probit(value)
        } else {
            value
        };
        Pick::Literal(i64::from(score > C::ZERO))
    }

    /// onnxruntime's FinalizeScores for two labels, step by step:
    /// - 2 base values: if class 1 has a score, it becomes `base[1] + score[0]` and class 0
    ///   its opposite (class 1's own score is dropped: onnxruntime assumes base[0] ==
    ///   base[1]); otherwise each class adds its base value;
    /// - 1 base value: class 0 adds it; if class 1 has no score, class 0's is the lone
    ///   score;
    /// - no base value: likewise, the lone score then expanded as for mixed weights.
    ///
    /// The label comes from class 1's score when it has one, else from class 0's (0 when it
    /// has none). In the binary case (all weights on one class id) it is the second label
    /// above 0.5 (all weights positive: probabilities) or above 0 (mixed: margins), else
    /// the first, and the lone score is expanded to two accordingly ([`write_scores`]).
    /// Otherwise it is the literal 1 above 0, else 0, whatever the labels: onnxruntime's
    /// `positive_label_`/`negative_label_`, never mapped to `classlabels_int64s`.
    fn two_classes<C: Real>(
        &self,
        s: &mut [C],
        has: &mut [bool],
        out: &mut [f32],
        lone: &mut Vec<f32>,
    ) -> Pick {
        let base = &self.ensemble;
        let mut second = None;
        let mut len = 2;
        match base.base_values.len() {
            2 if has[1] => {
                s[1] = base.base::<C>(1) + s[0];
                s[0] = s[1].neg();
            }
            2 => {
                s[1] = s[1] + base.base(1);
                s[0] = s[0] + base.base(0);
            }
            1 => {
                s[0] = s[0] + base.base(0);
                len = if has[1] { 2 } else { 1 };
            }
            _ => {
                second = Some(SecondClass::Negative);
                len = if has[1] { 2 } else { 1 };
            }
        }
        let positive = match (len, has[1], has[0]) {
            (2, true, _) => s[1],
            (_, _, true) => s[0],
            _ => C::ZERO,
        };
        let pick = if !self.binary {
            Pick::Literal(i64::from(positive > C::ZERO))
        } else if self.all_positive {
            let above = positive > C::from_f64(0.5);
            second = Some(SecondClass::Complement);
            Pick::Class(usize::from(above))
        } else {
            let above = positive > C::ZERO;
            second = Some(if above {
                SecondClass::Positive
            } else {
                SecondClass::Negative
            });
            Pick::Class(usize::from(above))
        };
        lone.clear();
        lone.extend((0..len).map(|k| if has[k] { s[k].to_f32() } else { 0.0 }));
        match second {
            // onnxruntime writes a lone score without a rule for the second as it is (and
            // leaves the second column unwritten: 0 here).
            None if len == 1 && self.post_transform != PostTransform::Probit => {}
            _ => write_scores(
                lone,
                self.post_transform,
                second.unwrap_or(SecondClass::Complement),
            ),
        }
        out.fill(0.0);
        out[..lone.len()].copy_from_slice(lone);
        pick
    }

    /// onnxruntime's FinalizeScores for more than two labels.
    fn classes<C: Real>(
        &self,
        scores: &mut [C],
        has: &mut [bool],
        out: &mut [f32],
    ) -> Option<Pick> {
        let bases = (0..self.ensemble.base_values.len()).map(|k| self.ensemble.base::<C>(k));
        for ((score, has), base) in scores.iter_mut().zip(has.iter_mut()).zip(bases) {
            *score = if *has { *score + base } else { base };
            *has = true;
        }
        let mut best: Option<(usize, C)> = None;
        for (k, (&score, &has)) in scores.iter().zip(has.iter()).enumerate() {
            if has && best.is_none_or(|(_, max)| score > max) {
                best = Some((k, score));
            }
            out[k] = if has { score.to_f32() } else { 0.0 };
        }
        self.post_transform.apply(out);
        best.map(|(k, _)| Pick::Class(k))
    }
}

/// Refuses `base_values` of a length onnxruntime refuses (or, for one label, would read
/// past).
fn check_base_values(attrs: &Attrs, len: usize, classes: usize) -> TractResult<()> {
    let ok = match classes {
        1 => len <= 1,
        2 => len <= 2,
        _ => len == 0 || len == classes,
    };
    if !ok {
        let expected = match classes {
            1 => "0 or 1 values".to_string(),
            2 => "0, 1 or 2 values".to_string(),
            _ => format!("0 or {classes} values (one per class)"),
        };
        attrs.refuse("base_values", expected, len)?;
    }
    Ok(())
}

/// The rows' outputs, written as the rows are finished.
struct Outputs<'a> {
    classifier: &'a TreeClassifier,
    picks: Vec<Pick>,
    scores: Vec<f32>,
    /// The scratch row for [`write_scores`].
    lone: Vec<f32>,
}

impl Finish for Outputs<'_> {
    fn row<C: Real>(&mut self, scores: &mut [C], has_score: &mut [bool]) -> TractResult<()> {
        let classifier = self.classifier;
        let start = self.scores.len();
        self.scores.resize(start + scores.len(), 0.0);
        let Some(pick) =
            classifier.finish(scores, has_score, &mut self.scores[start..], &mut self.lone)
        else {
            // onnxruntime fails too ("narrowing_error").
            bail!(
                "{OP} node \"{}\": no class has a score for row {} (the leaves it reaches have \
                 no weights and there are no base values)",
                classifier.ensemble.node,
                self.picks.len()
            )
        };
        self.picks.push(pick);
        Ok(())
    }
}

impl TreeClassifier {
    /// The label output of the rows' picks.
    fn labels_of(&self, picks: &[Pick]) -> TractResult<TValue> {
        match &self.labels {
            Labels::Ints(labels) => vector(
                picks
                    .iter()
                    .map(|pick| match *pick {
                        Pick::Class(k) => labels[k],
                        Pick::Literal(v) => v,
                    })
                    .collect(),
            ),
            Labels::Strings(labels) => {
                let label = |pick: &Pick| {
                    let k = match *pick {
                        Pick::Class(k) => k,
                        Pick::Literal(v) => v as usize,
                    };
                    labels.get(k).cloned().ok_or_else(|| {
                        format_err!(
                            "{OP} node \"{}\": a row's label is index {k}, past the {} labels \
                             (onnxruntime reads past them)",
                            self.ensemble.node,
                            labels.len()
                        )
                    })
                };
                vector(picks.iter().map(label).collect::<TractResult<Vec<_>>>()?)
            }
        }
    }
}

impl Kernel for TreeClassifier {
    fn name(&self) -> &'static str {
        OP
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
        check_input_arity(inputs, 1)?;
        self.ensemble.rules(s, &inputs[0], outputs)?;
        s.equals(&outputs[0].datum_type, self.labels.datum_type())?;
        s.equals(&outputs[0].rank, 1)?;
        s.equals(&outputs[1].datum_type, f32::datum_type())?;
        s.equals(&outputs[1].rank, 2)?;
        s.equals(&outputs[1].shape[1], self.labels.len().to_dim())?;
        Ok(())
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let batch = self.ensemble.batch_of(inputs[0])?;
        Ok(tvec!(
            TypedFact::dt_shape(self.labels.datum_type(), [batch.clone()]),
            f32::fact([batch, self.labels.len().to_dim()])
        ))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let mut outputs = Outputs {
            classifier: self,
            picks: vec![],
            scores: vec![],
            lone: Vec::with_capacity(2),
        };
        let rows = self.ensemble.evaluate::<Sum, _>(&input, &mut outputs)?;
        Ok(tvec!(
            self.labels_of(&outputs.picks)?,
            matrix(rows, self.labels.len(), outputs.scores)?
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::post::logistic;
    use crate::tree::test_support::{Node, assert_close, column, rows, stump};

    /// A stump on feature 0 (`<= 0.5`) with labels `labels` and, on leaves 1 (true) and
    /// 2 (false), the weights `(leaf, class id, weight)`.
    fn classifier(labels: &[i64], weights: &[(i64, i64, f32)]) -> Node {
        let column = |f: fn(&(i64, i64, f32)) -> i64| weights.iter().map(f).collect::<Vec<_>>();
        stump(OP, 0, [0, 1, 2], "BRANCH_LEQ", 0.5)
            .ints("classlabels_int64s", labels)
            .ints("class_treeids", &vec![0; weights.len()])
            .ints("class_nodeids", &column(|w| w.0))
            .ints("class_ids", &column(|w| w.1))
            .floats(
                "class_weights",
                &weights.iter().map(|w| w.2).collect::<Vec<_>>(),
            )
    }

    fn parse(node: &Node) -> TractResult<TreeClassifier> {
        node.parse(OP, TreeClassifier::parse)
    }

    /// The labels and the scores of rows 0.0 (true leaf) and 1.0 (false leaf).
    fn run(node: &Node) -> (Vec<i64>, Vec<Vec<f32>>) {
        let outputs = parse(node)
            .unwrap()
            .eval(tvec!(column(&[0.0, 1.0])))
            .unwrap();
        (
            outputs[0]
                .try_as_plain_ram()
                .unwrap()
                .as_slice::<i64>()
                .unwrap()
                .to_vec(),
            rows(&outputs[1]),
        )
    }

    fn with_post(node: &Node, transform: &str) -> Node {
        node.clone().string("post_transform", transform)
    }

    #[test]
    fn binary_probabilities_take_the_second_label_above_one_half() {
        // skl2onnx's binary random forest: class 1's probability, as class id 0.
        let node = classifier(&[0, 1], &[(1, 0, 0.3), (2, 0, 0.8)]);
        let (labels, scores) = run(&node);
        assert_eq!(labels, [0, 1]);
        assert_close(&scores, &[&[0.7, 0.3], &[0.2, 0.8]]);
        for transform in ["SOFTMAX", "SOFTMAX_ZERO"] {
            assert_close(
                &run(&with_post(&node, transform)).1,
                &[&[0.7, 0.3], &[0.2, 0.8]],
            );
        }
        let logistic_scores = run(&with_post(&node, "LOGISTIC")).1;
        assert_close(
            &logistic_scores,
            &[
                &[logistic(-0.3), logistic(0.3)],
                &[logistic(-0.8), logistic(0.8)],
            ],
        );
        // PROBIT transforms the lone score; onnxruntime leaves the second column unwritten.
        let probit_scores = run(&with_post(&node, "PROBIT")).1;
        assert_close(&probit_scores, &[&[-0.524_445_9, 0.0], &[0.841_756_1, 0.0]]);
        let based = node.floats("base_values", &[0.1]);
        assert_close(&run(&based).1, &[&[0.6, 0.4], &[0.1, 0.9]]);
    }

    #[test]
    fn binary_margins_take_the_second_label_above_zero_and_write_minus_s_s() {
        // skl2onnx's binary gradient boosting: margins, as class id 0, mixed signs.
        let node = classifier(&[0, 1], &[(1, 0, -0.3), (2, 0, 0.8)]);
        let (labels, scores) = run(&node);
        assert_eq!(labels, [0, 1]);
        assert_close(&scores, &[&[0.3, -0.3], &[-0.8, 0.8]]);
        assert_close(
            &run(&with_post(&node, "SOFTMAX")).1,
            &[&[0.3, -0.3], &[-0.8, 0.8]],
        );
        let based = with_post(&node, "LOGISTIC").floats("base_values", &[0.1]);
        let (labels, scores) = run(&based);
        assert_eq!(labels, [0, 1]);
        assert_close(
            &scores,
            &[&[0.549_834, 0.450_166], &[0.289_050_5, 0.710_949_5]],
        );
    }

    #[test]
    fn two_labels_both_scored_give_the_literal_label_one_or_zero() {
        // onnxruntime answers 1 or 0, not the labels 5 and 7.
        let node = classifier(
            &[5, 7],
            &[(1, 0, 0.7), (1, 1, 0.3), (2, 0, 0.2), (2, 1, 0.8)],
        );
        let (labels, scores) = run(&node);
        assert_eq!(labels, [1, 1]);
        assert_close(&scores, &[&[0.7, 0.3], &[0.2, 0.8]]);
        // Two base values: class 1 becomes base[1] + class 0's score, class 0 its opposite.
        assert_close(
            &run(&node.clone().floats("base_values", &[0.1, 0.2])).1,
            &[&[-0.9, 0.9], &[-0.4, 0.4]],
        );
        assert_close(
            &run(&node.floats("base_values", &[0.1])).1,
            &[&[0.8, 0.3], &[0.3, 0.8]],
        );
    }

    #[test]
    fn two_labels_with_weights_on_class_one_only() {
        let node = classifier(&[5, 7], &[(1, 1, 0.3), (2, 1, 0.8)]);
        let (labels, scores) = run(&node);
        assert_eq!(labels, [5, 7]);
        assert_close(&scores, &[&[0.0, 0.3], &[0.0, 0.8]]);
        let mixed =
            classifier(&[5, 7], &[(1, 1, -0.3), (2, 1, 0.8)]).floats("base_values", &[0.1, 0.2]);
        let (labels, scores) = run(&mixed);
        assert_eq!(labels, [7, 7]);
        assert_close(&scores, &[&[0.0, 0.2], &[0.0, 0.2]]);
    }

    #[test]
    fn several_labels_take_the_argmax_of_the_classes_that_have_a_score() {
        let node = classifier(&[10, 20, 30], &[(1, 1, -1.0), (2, 2, -2.0)]);
        let (labels, scores) = run(&node);
        assert_eq!(labels, [20, 30]);
        assert_close(&scores, &[&[0.0, -1.0, 0.0], &[0.0, 0.0, -2.0]]);
        assert_close(
            &run(&with_post(&node, "SOFTMAX_ZERO")).1,
            &[&[0.0, 1.0, 0.0], &[0.0, 0.0, 1.0]],
        );

        let based = node.floats("base_values", &[0.5, 0.1, 0.2]);
        let (labels, scores) = run(&based);
        assert_eq!(labels, [10, 10]);
        assert_close(&scores, &[&[0.5, -0.9, 0.2], &[0.5, 0.1, -1.8]]);
        let softmax = run(&with_post(&based, "SOFTMAX")).1;
        assert_close(
            &softmax,
            &[
                &[0.503_166_1, 0.124_079_25, 0.372_754_63],
                &[0.564_787, 0.378_588_08, 0.056_624_9],
            ],
        );
    }

    #[test]
    fn string_labels_are_answered_as_strings() {
        let node = classifier(&[], &[(1, 1, 1.0), (2, 2, 2.0)])
            .without("classlabels_int64s")
            .strings("classlabels_strings", &["a", "b", "c"]);
        let outputs = parse(&node)
            .unwrap()
            .eval(tvec!(column(&[0.0, 1.0])))
            .unwrap();
        let labels = outputs[0]
            .try_as_plain_ram()
            .unwrap()
            .as_slice::<String>()
            .unwrap()
            .to_vec();
        assert_eq!(labels, ["b", "c"]);
        assert_close(&rows(&outputs[1]), &[&[0.0, 1.0, 0.0], &[0.0, 0.0, 2.0]]);
    }

    #[test]
    fn a_row_no_class_scores_is_an_error_as_in_onnxruntime() {
        let node = classifier(&[0, 1, 2], &[(2, 1, 2.0)]);
        let error = parse(&node)
            .unwrap()
            .eval(tvec!(column(&[0.0])))
            .unwrap_err()
            .to_string();
        assert!(error.contains("no class has a score for row 0"), "{error}");
    }

    #[test]
    fn a_single_label_is_answered_by_the_sign_of_the_score() {
        let node = classifier(&[4], &[(1, 0, 0.3), (2, 0, -0.8)]);
        let (labels, scores) = run(&node);
        assert_eq!(labels, [1, 0]);
        assert_close(&scores, &[&[0.3], &[-0.8]]);
        assert_close(
            &run(&node.floats("base_values", &[0.1])).1,
            &[&[0.4], &[-0.7]],
        );
    }

    #[test]
    fn integer_and_double_inputs_are_accepted() {
        let node = classifier(&[0, 1, 2], &[(1, 1, 1.0), (2, 2, 1.0)]);
        let classifier = parse(&node).unwrap();
        for input in [
            tensor2(&[[0i64], [1]]),
            tensor2(&[[0i32], [1]]),
            tensor2(&[[0.0f64], [1.0]]),
        ] {
            let outputs = classifier.eval(tvec!(input.into_tvalue())).unwrap();
            assert_eq!(
                outputs[0]
                    .try_as_plain_ram()
                    .unwrap()
                    .as_slice::<i64>()
                    .unwrap(),
                [1, 2]
            );
        }
    }

    #[test]
    fn malformed_classifiers_are_refused_at_parse() {
        let node = classifier(&[10, 20, 30], &[(1, 1, 1.0), (2, 2, 1.0)]);
        let cases = [
            (
                node.clone().ints("class_ids", &[1, 3]),
                "`class_ids`",
                "indices in 0..3, found 3",
            ),
            (
                node.clone().floats("base_values", &[0.5]),
                "`base_values`",
                "0 or 3 values",
            ),
            (
                node.clone().without("classlabels_int64s"),
                "`classlabels_int64s`",
                "none",
            ),
            (
                node.clone()
                    .strings("classlabels_strings", &["a", "b", "c"]),
                "`classlabels_strings`",
                "both",
            ),
            (
                classifier(&[0, 1], &[(1, 0, 1.0)]).floats("base_values", &[1.0; 3]),
                "`base_values`",
                "0, 1 or 2",
            ),
            (
                classifier(&[0], &[(1, 0, 1.0)]).floats("base_values", &[1.0; 2]),
                "`base_values`",
                "0 or 1 values",
            ),
        ];
        for (node, attr, detail) in cases {
            let error = parse(&node).unwrap_err().to_string();
            assert!(
                error.contains("TreeEnsembleClassifier node \"trees\""),
                "{error}"
            );
            assert!(
                error.contains(attr) && error.contains(detail),
                "{attr} {detail}: {error}"
            );
        }
    }
}
