//! TreeEnsembleRegressor: `n_targets` scores per row, each the aggregate of the weights the
//! row's leaves give it, plus `base_values`, then `post_transform`.
//!
//! As onnxruntime computes it (tree_ensemble_aggregator.h), where it differs from the
//! specification:
//! - AVERAGE divides by the number of trees, not by the number of leaves that gave the
//!   target a weight;
//! - with one target, a leaf counts its first weight only, or its `nodes_values` entry when
//!   it has no weight, and only PROBIT of the transforms applies;
//! - with several, a target no leaf gave a weight is written 0 (before the transform),
//!   whatever its base value;
//! - `base_values` has 0 or `n_targets` values.
//!
//! Output: `[N, n_targets]` float.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::attrs::Attrs;
use super::forest::{Max, Min, Real, Sum};
use super::{Ensemble, Finish, matrix};
use crate::kernel::{Kernel, Parsed, parsed};
use crate::post::{PostTransform, probit};

const OP: &str = "TreeEnsembleRegressor";

/// More targets than any model has, which would only exhaust memory (onnxruntime has no
/// bound).
const MAX_TARGETS: i64 = 1 << 24;

/// The parser registered for `TreeEnsembleRegressor`.
pub(crate) fn parse(ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    parsed(TreeRegressor::parse(&Attrs::new(OP, node, ctx))?)
}

/// `aggregate_function`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

#[derive(Debug)]
struct TreeRegressor {
    ensemble: Ensemble,
    aggregate: Aggregate,
    post_transform: PostTransform,
}

impl TreeRegressor {
    fn parse(attrs: &Attrs) -> TractResult<TreeRegressor> {
        let targets = match attrs.int("n_targets")? {
            Some(n) if (1..=MAX_TARGETS).contains(&n) => n as usize,
            Some(n) => {
                return attrs.refuse(
                    "n_targets",
                    format!("a number of targets in 1..={MAX_TARGETS}"),
                    n,
                );
            }
            None => return attrs.refuse("n_targets", "a number of targets", "none"),
        };
        let aggregate = match attrs.string("aggregate_function")?.unwrap_or("SUM") {
            "SUM" => Aggregate::Sum,
            "AVERAGE" => Aggregate::Average,
            "MIN" => Aggregate::Min,
            "MAX" => Aggregate::Max,
            other => {
                return attrs.refuse(
                    "aggregate_function",
                    "SUM, AVERAGE, MIN or MAX",
                    format!("\"{other}\""),
                );
            }
        };
        let post_transform = attrs.post_transform()?;
        let (ensemble, _) = Ensemble::parse(attrs, "target", targets)?;
        let base = ensemble.base_values.len();
        if base != 0 && base != targets {
            attrs.refuse(
                "base_values",
                format!("0 or {targets} values (one per target)"),
                base,
            )?;
        }
        Ok(TreeRegressor {
            ensemble,
            aggregate,
            post_transform,
        })
    }
}

/// The rows' outputs, written as the rows are finished.
struct Outputs<'a> {
    regressor: &'a TreeRegressor,
    values: Vec<f32>,
}

impl Finish for Outputs<'_> {
    fn row<C: Real>(&mut self, scores: &mut [C], has_score: &mut [bool]) -> TractResult<()> {
        let TreeRegressor {
            ensemble,
            aggregate,
            post_transform,
        } = self.regressor;
        let trees = C::from_usize(ensemble.tree_count());
        let with_base = !ensemble.base_values.is_empty();
        if let [score] = scores {
            // onnxruntime's FinalizeScores1: the one base value is its `origin_`.
            let origin = if with_base { ensemble.base(0) } else { C::ZERO };
            let score = match aggregate {
                Aggregate::Sum => *score + origin,
                Aggregate::Average => *score / trees + origin,
                Aggregate::Min | Aggregate::Max if has_score[0] => *score + origin,
                Aggregate::Min | Aggregate::Max => origin,
            };
            let score = score.to_f32();
            self.values
                .push(if *post_transform == PostTransform::Probit {
                    probit(score)
                } else {
                    score
                });
            return Ok(());
        }
        let start = self.values.len();
        for (t, (score, &has)) in scores.iter().zip(has_score.iter()).enumerate() {
            let base = if with_base { ensemble.base(t) } else { C::ZERO };
            let score = match aggregate {
                Aggregate::Sum => *score + base,
                Aggregate::Average => *score / trees + base,
                Aggregate::Min | Aggregate::Max if has => *score + base,
                Aggregate::Min | Aggregate::Max => base,
            };
            // onnxruntime writes a score no leaf touched as 0 (`ScoreValue`'s conversion).
            self.values.push(if has { score.to_f32() } else { 0.0 });
        }
        post_transform.apply(&mut self.values[start..]);
        Ok(())
    }
}

impl Kernel for TreeRegressor {
    fn name(&self) -> &'static str {
        OP
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        self.ensemble.rules(s, &inputs[0], outputs)?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].rank, 2)?;
        s.equals(&outputs[0].shape[1], self.ensemble.width.to_dim())?;
        Ok(())
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let batch = self.ensemble.batch_of(inputs[0])?;
        Ok(tvec!(f32::fact([batch, self.ensemble.width.to_dim()])))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let mut outputs = Outputs {
            regressor: self,
            values: vec![],
        };
        let ensemble = &self.ensemble;
        let rows = match self.aggregate {
            Aggregate::Sum | Aggregate::Average => {
                ensemble.evaluate::<Sum, _>(&input, &mut outputs)?
            }
            Aggregate::Min => ensemble.evaluate::<Min, _>(&input, &mut outputs)?,
            Aggregate::Max => ensemble.evaluate::<Max, _>(&input, &mut outputs)?,
        };
        Ok(tvec!(matrix(rows, ensemble.width, outputs.values)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::post::logistic;
    use crate::tree::test_support::{Node, assert_close, column, rows, stump};

    /// A stump on feature 0 (`<= 0.5` by default) whose true leaf weighs 1 and false leaf 2.
    fn regressor_stump(mode: &str) -> Node {
        stump(OP, 0, [0, 1, 2], mode, 0.5)
            .int("n_targets", 1)
            .ints("target_treeids", &[0, 0])
            .ints("target_nodeids", &[1, 2])
            .ints("target_ids", &[0, 0])
            .floats("target_weights", &[1.0, 2.0])
    }

    fn parse(node: &Node) -> TractResult<TreeRegressor> {
        node.parse(OP, TreeRegressor::parse)
    }

    fn run(node: &Node, input: TValue) -> Vec<Vec<f32>> {
        let regressor = parse(node).unwrap();
        rows(&regressor.eval(tvec!(input)).unwrap()[0])
    }

    fn refusal(node: &Node) -> String {
        parse(node).unwrap_err().to_string()
    }

    #[test]
    fn each_mode_sends_nan_where_onnxruntime_does_with_and_without_tracking() {
        // Rows NaN, 0.5 (the threshold), 0.7; leaves: true 1, false 2 (onnxruntime 1.31).
        let cases: [(&str, [f32; 3], [f32; 3]); 6] = [
            ("BRANCH_LEQ", [2.0, 1.0, 2.0], [1.0, 1.0, 2.0]),
            ("BRANCH_LT", [2.0, 2.0, 2.0], [1.0, 2.0, 2.0]),
            ("BRANCH_GTE", [2.0, 1.0, 1.0], [1.0, 1.0, 1.0]),
            ("BRANCH_GT", [2.0, 2.0, 1.0], [1.0, 2.0, 1.0]),
            ("BRANCH_EQ", [2.0, 1.0, 2.0], [1.0, 1.0, 2.0]),
            ("BRANCH_NEQ", [1.0, 2.0, 1.0], [1.0, 2.0, 1.0]),
        ];
        let x = [f32::NAN, 0.5, 0.7];
        for (mode, untracked, tracked) in cases {
            let node = regressor_stump(mode);
            let found: Vec<f32> = run(&node, column(&x)).concat();
            assert_eq!(found, untracked, "{mode}");
            let node = node.ints("nodes_missing_value_tracks_true", &[1, 0, 0]);
            let found: Vec<f32> = run(&node, column(&x)).concat();
            assert_eq!(found, tracked, "{mode} tracking");
        }
    }

    #[test]
    fn mixed_modes_compare_node_by_node() {
        // Root x0 <= 0.5 ? (x1 > 1, NaN tracked true ? 20 : 30) : 10.
        let node = Node::new(OP, "trees")
            .ints("nodes_treeids", &[0; 5])
            .ints("nodes_nodeids", &[0, 1, 2, 3, 4])
            .ints("nodes_featureids", &[0, 1, 0, 0, 0])
            .strings(
                "nodes_modes",
                &["BRANCH_LEQ", "BRANCH_GT", "LEAF", "LEAF", "LEAF"],
            )
            .floats("nodes_values", &[0.5, 1.0, 0.0, 0.0, 0.0])
            .ints("nodes_truenodeids", &[1, 3, 0, 0, 0])
            .ints("nodes_falsenodeids", &[2, 4, 0, 0, 0])
            .ints("nodes_missing_value_tracks_true", &[0, 1, 0, 0, 0])
            .int("n_targets", 1)
            .ints("target_treeids", &[0, 0, 0])
            .ints("target_nodeids", &[2, 3, 4])
            .ints("target_ids", &[0, 0, 0])
            .floats("target_weights", &[10.0, 20.0, 30.0]);
        let x = tensor2(&[[0.0f32, 2.0], [0.0, 0.0], [1.0, 0.0], [0.0, f32::NAN]]).into_tvalue();
        assert_eq!(run(&node, x).concat(), [20.0, 30.0, 10.0, 20.0]);
    }

    #[test]
    fn a_missing_tracking_entry_counts_as_zero_and_only_one_means_true() {
        let nan = column(&[f32::NAN]);
        let short = regressor_stump("BRANCH_LEQ").ints("nodes_missing_value_tracks_true", &[1]);
        assert_eq!(run(&short, nan.clone()), [[1.0]]);
        let two = regressor_stump("BRANCH_LEQ").ints("nodes_missing_value_tracks_true", &[2, 0, 0]);
        assert_eq!(run(&two, nan), [[2.0]]);
    }

    #[test]
    fn tree_and_node_ids_need_not_start_at_zero_nor_follow_each_other() {
        let x = column(&[0.0, 1.0]);
        for (tree, ids) in [(0, [3, 1, 2]), (7, [0, 1, 2]), (-4, [100, 205, 101])] {
            let node = stump(OP, tree, ids, "BRANCH_LEQ", 0.5)
                .int("n_targets", 1)
                .ints("target_treeids", &[tree, tree])
                .ints("target_nodeids", &[ids[1], ids[2]])
                .ints("target_ids", &[0, 0])
                .floats("target_weights", &[1.0, 2.0]);
            assert_eq!(run(&node, x.clone()), [[1.0], [2.0]], "tree {tree} {ids:?}");
        }
    }

    #[test]
    fn the_first_node_listed_for_a_tree_is_its_root() {
        // Node 1, a leaf, is listed first: onnxruntime takes it for the root.
        let node = regressor_stump("BRANCH_LEQ")
            .ints("nodes_nodeids", &[1, 0, 2])
            .strings("nodes_modes", &["LEAF", "BRANCH_LEQ", "LEAF"])
            .floats("nodes_values", &[0.0, 0.5, 0.0])
            .ints("nodes_truenodeids", &[0, 1, 0])
            .ints("nodes_falsenodeids", &[0, 2, 0]);
        assert_eq!(run(&node, column(&[0.0, 1.0])), [[1.0], [1.0]]);
    }

    #[test]
    fn a_child_two_branches_share_is_reached_from_both() {
        let node = Node::new(OP, "trees")
            .ints("nodes_treeids", &[0; 4])
            .ints("nodes_nodeids", &[0, 1, 2, 3])
            .ints("nodes_featureids", &[0; 4])
            .strings("nodes_modes", &["BRANCH_LEQ", "BRANCH_LEQ", "LEAF", "LEAF"])
            .floats("nodes_values", &[0.5, 0.2, 0.0, 0.0])
            .ints("nodes_truenodeids", &[1, 3, 0, 0])
            .ints("nodes_falsenodeids", &[3, 2, 0, 0])
            .int("n_targets", 1)
            .ints("target_treeids", &[0, 0])
            .ints("target_nodeids", &[2, 3])
            .ints("target_ids", &[0, 0])
            .floats("target_weights", &[2.0, 3.0]);
        assert_eq!(run(&node, column(&[0.0, 0.3, 1.0])), [[3.0], [2.0], [3.0]]);
    }

    #[test]
    fn one_target_takes_a_leafs_first_weight_or_else_its_node_value() {
        let weights_on_branch_and_twice_on_a_leaf = regressor_stump("BRANCH_LEQ")
            .ints("target_treeids", &[0, 0, 0, 0])
            .ints("target_nodeids", &[0, 1, 1, 2])
            .ints("target_ids", &[0, 0, 0, 0])
            .floats("target_weights", &[9.0, 5.0, 1.0, 2.0]);
        assert_eq!(
            run(&weights_on_branch_and_twice_on_a_leaf, column(&[0.0, 1.0])),
            [[5.0], [2.0]]
        );
        let leaf_without_weight = regressor_stump("BRANCH_LEQ")
            .floats("nodes_values", &[0.5, 7.0, 9.0])
            .ints("target_treeids", &[0])
            .ints("target_nodeids", &[2])
            .ints("target_ids", &[0])
            .floats("target_weights", &[2.0]);
        assert_eq!(
            run(&leaf_without_weight, column(&[0.0, 1.0])),
            [[7.0], [2.0]]
        );
    }

    #[test]
    fn one_target_takes_probit_and_no_other_transform() {
        let node = regressor_stump("BRANCH_LEQ").floats("target_weights", &[0.2, 0.9]);
        let x = column(&[0.0, 1.0]);
        let probit = run(&node.clone().string("post_transform", "PROBIT"), x.clone());
        assert_close(&probit, &[&[-0.841_756_1], &[1.281_712_9]]);
        for transform in ["LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"] {
            let found = run(&node.clone().string("post_transform", transform), x.clone());
            assert_close(&found, &[&[0.2], &[0.9]]);
        }
    }

    #[test]
    fn several_targets_sum_every_weight_and_write_untouched_targets_as_zero() {
        let node = regressor_stump("BRANCH_LEQ")
            .int("n_targets", 2)
            .ints("target_treeids", &[0, 0, 0])
            .ints("target_nodeids", &[1, 1, 2])
            .ints("target_ids", &[0, 0, 1])
            .floats("target_weights", &[5.0, 1.0, 2.0]);
        assert_eq!(run(&node, column(&[0.0, 1.0])), [[6.0, 0.0], [0.0, 2.0]]);

        // Target 1 is never touched: 0 whatever its base value, then transformed.
        let base = regressor_stump("BRANCH_LEQ")
            .int("n_targets", 2)
            .floats("base_values", &[1.0, 2.0]);
        let x = column(&[0.0, 1.0]);
        assert_eq!(run(&base, x.clone()), [[2.0, 0.0], [3.0, 0.0]]);
        let logistic_rows = run(
            &base.clone().string("post_transform", "LOGISTIC"),
            x.clone(),
        );
        assert_close(
            &logistic_rows,
            &[&[logistic(2.0), 0.5], &[logistic(3.0), 0.5]],
        );
        for aggregate in ["AVERAGE", "MIN", "MAX"] {
            let found = run(
                &base.clone().string("aggregate_function", aggregate),
                x.clone(),
            );
            assert_eq!(found, [[2.0, 0.0], [3.0, 0.0]], "{aggregate}");
        }
    }

    /// Two stumps on feature 0: the first `<= 0.5` (1 or 2), the second `<= 1.5` (10 or 40).
    fn two_trees() -> Node {
        Node::new(OP, "trees")
            .ints("nodes_treeids", &[0, 0, 0, 1, 1, 1])
            .ints("nodes_nodeids", &[0, 1, 2, 0, 1, 2])
            .ints("nodes_featureids", &[0; 6])
            .strings(
                "nodes_modes",
                &["BRANCH_LEQ", "LEAF", "LEAF", "BRANCH_LEQ", "LEAF", "LEAF"],
            )
            .floats("nodes_values", &[0.5, 0.0, 0.0, 1.5, 0.0, 0.0])
            .ints("nodes_truenodeids", &[1, 0, 0, 1, 0, 0])
            .ints("nodes_falsenodeids", &[2, 0, 0, 2, 0, 0])
            .int("n_targets", 1)
            .ints("target_treeids", &[0, 0, 1, 1])
            .ints("target_nodeids", &[1, 2, 1, 2])
            .ints("target_ids", &[0; 4])
            .floats("target_weights", &[1.0, 2.0, 10.0, 40.0])
            .floats("base_values", &[0.5])
    }

    #[test]
    fn aggregate_functions_combine_the_trees_then_add_the_base_value() {
        // Rows 0, 1, 2 reach (1, 10), (2, 10), (2, 40).
        let x = column(&[0.0, 1.0, 2.0]);
        let cases: [(&str, [f32; 3]); 4] = [
            ("SUM", [11.5, 12.5, 42.5]),
            ("AVERAGE", [6.0, 6.5, 21.5]),
            ("MIN", [1.5, 2.5, 2.5]),
            ("MAX", [10.5, 10.5, 40.5]),
        ];
        for (aggregate, expected) in cases {
            let found = run(
                &two_trees().string("aggregate_function", aggregate),
                x.clone(),
            )
            .concat();
            assert_eq!(found, expected, "{aggregate}");
        }
    }

    #[test]
    fn several_targets_average_over_all_the_trees() {
        // Tree 1's leaves give target 1 only: target 0 is averaged over 2 trees all the same.
        let node = two_trees()
            .int("n_targets", 2)
            .ints("target_ids", &[0, 0, 1, 1])
            .floats("base_values", &[0.5, 1.0])
            .string("aggregate_function", "AVERAGE");
        assert_eq!(run(&node, column(&[0.0, 2.0])), [[1.0, 6.0], [1.5, 21.0]]);
    }

    #[test]
    fn an_ensemble_without_nodes_answers_its_base_values() {
        let node = Node::new(OP, "trees")
            .int("n_targets", 1)
            .floats("base_values", &[0.5]);
        assert_eq!(run(&node, column(&[0.0, 1.0])), [[0.5], [0.5]]);
    }

    #[test]
    fn rows_of_several_blocks_are_all_evaluated() {
        let x: Vec<f32> = (0..300).map(|i| (i % 2) as f32).collect();
        let found = run(&regressor_stump("BRANCH_LEQ"), column(&x)).concat();
        let expected: Vec<f32> = (0..300)
            .map(|i| if i % 2 == 0 { 1.0 } else { 2.0 })
            .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn integer_inputs_are_compared_as_float() {
        // 16777217 is 16777216 as a float: not above the threshold.
        let node = regressor_stump("BRANCH_LEQ").floats("nodes_values", &[16_777_216.0, 0.0, 0.0]);
        let ints = tensor2(&[[16_777_217i64], [16_777_218]]).into_tvalue();
        assert_eq!(run(&node, ints), [[1.0], [2.0]]);
        let ints = tensor2(&[[16_777_217i32], [16_777_218]]).into_tvalue();
        assert_eq!(run(&node, ints), [[1.0], [2.0]]);
    }

    #[test]
    fn double_inputs_compare_in_double_and_double_thresholds_keep_their_precision() {
        let float_list = regressor_stump("BRANCH_LEQ").floats("nodes_values", &[0.1, 0.0, 0.0]);
        let widened = f64::from(0.1f32);
        let x = tensor2(&[[0.1f64], [widened]]).into_tvalue();
        assert_eq!(run(&float_list, x), [[1.0], [1.0]]);

        let doubles = float_list
            .without("nodes_values")
            .doubles("nodes_values_as_tensor", &[0.1, 0.0, 0.0])
            .without("target_weights")
            .doubles("target_weights_as_tensor", &[1.0, 2.0]);
        let x = tensor2(&[[0.1f64], [0.100_000_000_1], [widened]]).into_tvalue();
        assert_eq!(run(&doubles, x), [[1.0], [2.0], [2.0]]);
        let float_input = parse(&doubles).unwrap().eval(tvec!(column(&[0.1])));
        let error = float_input.unwrap_err().to_string();
        assert!(error.contains("only for a double input"), "{error}");
    }

    #[test]
    fn an_input_narrower_than_the_features_read_is_refused() {
        let node = regressor_stump("BRANCH_LEQ").ints("nodes_featureids", &[3, 0, 0]);
        let narrow = tensor2(&[[0.0f32, 1.0]]).into_tvalue();
        let error = parse(&node)
            .unwrap()
            .eval(tvec!(narrow))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("read feature 3 but the input has 2 features"),
            "{error}"
        );
    }

    #[test]
    fn a_one_dimensional_input_is_one_row_of_one_feature() {
        let x = tensor1(&[1.0f32, 0.0]).into_tvalue();
        assert_eq!(run(&regressor_stump("BRANCH_LEQ"), x.clone()), [[2.0]]);
        let second_feature = regressor_stump("BRANCH_LEQ").ints("nodes_featureids", &[1, 0, 0]);
        let error = parse(&second_feature)
            .unwrap()
            .eval(tvec!(x))
            .unwrap_err()
            .to_string();
        assert!(error.contains("one row of one feature"), "{error}");
        let rank3 = Tensor::zero::<f32>(&[1, 1, 1]).unwrap().into_tvalue();
        assert!(parse(&second_feature).unwrap().eval(tvec!(rank3)).is_err());
    }

    #[test]
    fn malformed_ensembles_are_refused_at_parse_with_the_attribute_named() {
        let base = regressor_stump("BRANCH_LEQ");
        let cases = [
            (
                base.clone().ints("nodes_nodeids", &[0, 1, 1]),
                "`nodes_nodeids`",
                "node 1 of tree 0 twice",
            ),
            (
                base.clone().ints("nodes_truenodeids", &[5, 0, 0]),
                "`nodes_truenodeids`",
                "has no node 5",
            ),
            (
                base.clone().ints("nodes_falsenodeids", &[0, 0, 0]),
                "`nodes_falsenodeids`",
                "a cycle",
            ),
            (
                base.clone().ints("nodes_featureids", &[-1, 0, 0]),
                "`nodes_featureids`",
                "found -1",
            ),
            (
                base.clone()
                    .strings("nodes_modes", &["BRANCH_X", "LEAF", "LEAF"]),
                "`nodes_modes`",
                "\"BRANCH_X\"",
            ),
            (
                base.clone().ints("nodes_treeids", &[0, 0]),
                "`nodes_treeids`",
                "expected 3 values",
            ),
            (
                base.clone().floats("nodes_values", &[0.5]),
                "`nodes_values`",
                "expected 3 values",
            ),
            (
                base.clone().ints("target_ids", &[0, 1]),
                "`target_ids`",
                "indices in 0..1, found 1",
            ),
            (
                base.clone().ints("target_nodeids", &[1, 3]),
                "`target_nodeids`",
                "node 3 of tree 0",
            ),
            (
                base.clone().floats("target_weights", &[1.0]),
                "`target_weights`",
                "expected 2 values",
            ),
            (
                base.clone().floats("base_values", &[1.0, 2.0]),
                "`base_values`",
                "0 or 1 values",
            ),
            (
                base.clone().int("n_targets", 0),
                "`n_targets`",
                "in 1..=16777216, found 0",
            ),
            (
                base.clone().int("n_targets", 1 << 40),
                "`n_targets`",
                "in 1..=16777216",
            ),
            (
                base.clone().without("n_targets"),
                "`n_targets`",
                "found none",
            ),
            (
                base.clone().string("aggregate_function", "MEDIAN"),
                "`aggregate_function`",
                "\"MEDIAN\"",
            ),
            (
                base.clone().string("post_transform", "TANH"),
                "`post_transform`",
                "\"TANH\"",
            ),
            (
                base.clone()
                    .doubles("nodes_values_as_tensor", &[0.5, 0.0, 0.0]),
                "`nodes_values_as_tensor`",
                "both",
            ),
            (
                base.clone()
                    .doubles("nodes_hitrates_as_tensor", &[1.0; 3])
                    .floats("nodes_hitrates", &[1.0; 3]),
                "hitrates",
                "both",
            ),
        ];
        for (node, attr, detail) in cases {
            let error = refusal(&node);
            assert!(
                error.contains("TreeEnsembleRegressor node \"trees\""),
                "{error}"
            );
            assert!(
                error.contains(attr) && error.contains(detail),
                "{attr} {detail}: {error}"
            );
        }
    }

    #[test]
    fn cycles_through_other_nodes_and_interleaved_trees_are_refused() {
        // Node 1 is a branch whose true child is the root.
        let cycle = Node::new(OP, "trees")
            .ints("nodes_treeids", &[0; 3])
            .ints("nodes_nodeids", &[0, 1, 2])
            .ints("nodes_featureids", &[0; 3])
            .strings("nodes_modes", &["BRANCH_LEQ", "BRANCH_LEQ", "LEAF"])
            .floats("nodes_values", &[0.5, 0.7, 0.0])
            .ints("nodes_truenodeids", &[1, 0, 0])
            .ints("nodes_falsenodeids", &[2, 2, 0])
            .int("n_targets", 1);
        let error = refusal(&cycle);
        assert!(
            error.contains("node 1 of tree 0 leads back to node 0"),
            "{error}"
        );

        let interleaved = two_trees()
            .ints("nodes_treeids", &[0, 1, 0, 1, 0, 1])
            .ints("nodes_nodeids", &[0, 0, 1, 1, 2, 2])
            .strings(
                "nodes_modes",
                &["BRANCH_LEQ", "BRANCH_LEQ", "LEAF", "LEAF", "LEAF", "LEAF"],
            )
            .floats("nodes_values", &[0.5, 1.5, 0.0, 0.0, 0.0, 0.0])
            .ints("nodes_truenodeids", &[1, 1, 0, 0, 0, 0])
            .ints("nodes_falsenodeids", &[2, 2, 0, 0, 0, 0]);
        let error = refusal(&interleaved);
        assert!(error.contains("tree 0 at positions 0 and 2"), "{error}");
    }
}
