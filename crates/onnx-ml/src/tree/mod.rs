//! The tree ensembles: TreeEnsembleClassifier and TreeEnsembleRegressor (ai.onnx.ml opsets 1
//! and 3), as onnxruntime 1.31 computes them (tree_ensemble_common.h,
//! tree_ensemble_aggregator.h, tree_ensemble_attribute.h).
//!
//! # Layout
//! - [`attrs`]: reading the attributes, their list or `*_as_tensor` forms, and the errors
//!   that refuse them.
//! - [`forest`]: the trees, validated and flattened once at parse into arrays, and the walk
//!   from a root to a leaf for a whole block of rows.
//! - [`regressor`] and [`classifier`]: the two operators, which differ only in how they
//!   turn a row's accumulated scores into outputs.
//!
//! Here, [`Precision`] is the type thresholds are compared and scores summed in, and
//! [`Ensemble::evaluate`] runs the forest over an input of any accepted type.
//!
//! onnxruntime is the reference, including where it departs from the specification: each
//! such place says so. Where onnxruntime reads memory it does not own (a class index past
//! its labels) or misreads a malformed ensemble (trees whose nodes are interleaved, cycles),
//! these operators refuse instead: the node when the graph is parsed, the input when it is
//! evaluated.

mod attrs;
mod classifier;
mod forest;
mod regressor;

pub(crate) use classifier::parse as parse_classifier;
pub(crate) use regressor::parse as parse_regressor;

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use attrs::{Attrs, Values};
use forest::{Fold, Forest, Kind, Nodes, Real, Weights};

/// The input types onnxruntime's tree ensembles take (its TreeEnsembleRegressor has no
/// integer kernels; here both operators take all four, integers compared as float as its
/// classifier does).
const INPUT_TYPES: &[DatumType] = &[
    DatumType::F32,
    DatumType::F64,
    DatumType::I64,
    DatumType::I32,
];

/// The type thresholds are compared and scores summed in, fixed by the attributes.
///
/// onnxruntime compares and sums in `double` for a double input and in `float` otherwise:
/// an input is converted to float (integers included: `int64 <= float` compares in float
/// in C++), list attributes are floats widened to double for a double input. Its double
/// `*_as_tensor` attributes only unpack into its double kernel, so an ensemble that has one
/// needs a double input.
#[derive(Debug)]
enum Precision {
    /// Thresholds and weights given as floats: any input type.
    Single(Forest<f32>),
    /// Some of them given as doubles: a double input only.
    Double(Forest<f64>),
}

/// What both operators share: the trees, the number of outputs per row and `base_values`.
#[derive(Debug)]
struct Ensemble {
    op: &'static str,
    node: String,
    forest: Precision,
    /// Targets (regressor) or classes (classifier): the width of the scores.
    width: usize,
    base_values: Vec<f64>,
}

/// What an operator does with the accumulated scores of each row, in the precision of the
/// evaluation.
trait Finish {
    /// Called once per row, in order, with its scores and whether each was touched by a
    /// leaf (onnxruntime's `has_score`, which decides what is written).
    fn row<C: Real>(&mut self, scores: &mut [C], has_score: &mut [bool]) -> TractResult<()>;
}

/// What the classifier needs to know of the leaves' weights.
struct WeightStats {
    /// How many distinct targets (classes) the weights go to.
    targets_used: usize,
    /// No weight is negative.
    all_positive: bool,
}

impl Ensemble {
    /// Reads the nodes, the weights (`{prefix}_*`: `class` or `target`, `width` of them)
    /// and `base_values`, and builds the forest. The length of `base_values` is the
    /// caller's to check: the operators differ.
    fn parse(
        attrs: &Attrs,
        prefix: &'static str,
        width: usize,
    ) -> TractResult<(Ensemble, WeightStats)> {
        let values = attrs.values("nodes_values", "nodes_values_as_tensor")?;
        // hitrates are not used for inference, as in onnxruntime: only their form is checked.
        attrs.exclusive("nodes_hitrates", "nodes_hitrates_as_tensor")?;
        let weight_values = attrs.values(
            &format!("{prefix}_weights"),
            &format!("{prefix}_weights_as_tensor"),
        )?;
        let base = attrs.values("base_values", "base_values_as_tensor")?;
        let kinds = node_kinds(attrs)?;
        let nodes = Nodes {
            tree_ids: attrs.ints("nodes_treeids")?,
            node_ids: attrs.ints("nodes_nodeids")?,
            feature_ids: attrs.ints("nodes_featureids")?,
            kinds,
            values: &values.values,
            true_ids: attrs.ints("nodes_truenodeids")?,
            false_ids: attrs.ints("nodes_falsenodeids")?,
            tracks: attrs.ints("nodes_missing_value_tracks_true")?,
        };
        check_node_lengths(attrs, &nodes, &values)?;
        let weights = Weights {
            prefix,
            tree_ids: attrs.ints(&format!("{prefix}_treeids"))?,
            node_ids: attrs.ints(&format!("{prefix}_nodeids"))?,
            targets: attrs.ints(&format!("{prefix}_ids"))?,
            values: &weight_values.values,
        };
        let stats = check_weights(attrs, &weights, width)?;
        let double = values.double || weight_values.double || base.double;
        let forest = if double {
            Precision::Double(Forest::build(attrs, &nodes, &weights)?)
        } else {
            Precision::Single(Forest::build(attrs, &nodes, &weights)?)
        };
        let ensemble = Ensemble {
            op: attrs.op(),
            node: attrs.node_name(),
            forest,
            width,
            base_values: base.values,
        };
        Ok((ensemble, stats))
    }

    fn tree_count(&self) -> usize {
        match &self.forest {
            Precision::Single(f) => f.tree_count(),
            Precision::Double(f) => f.tree_count(),
        }
    }

    /// The base value of target `t` in the precision of the evaluation.
    fn base<C: Real>(&self, t: usize) -> C {
        C::from_f64(self.base_values[t])
    }

    /// Runs the trees over every row of `input`, folding the leaves' weights with `F`,
    /// and hands each row's scores to `finish`. Returns the number of rows.
    fn evaluate<F: Fold, W: Finish>(&self, input: &Tensor, finish: &mut W) -> TractResult<usize> {
        let rows = Rows::of(self, input)?;
        match (&self.forest, input.datum_type()) {
            (Precision::Single(f), DatumType::F32) => {
                f.run::<F, f32, f32, W>(plain::<f32>(input)?, &rows, self.width, finish)?
            }
            (Precision::Single(f), DatumType::F64) => {
                f.run::<F, f64, f64, W>(plain::<f64>(input)?, &rows, self.width, finish)?
            }
            (Precision::Double(f), DatumType::F64) => {
                f.run::<F, f64, f64, W>(plain::<f64>(input)?, &rows, self.width, finish)?
            }
            (Precision::Single(f), DatumType::I64 | DatumType::I32) => {
                let floats = input.cast_to::<f32>()?;
                f.run::<F, f32, f32, W>(plain::<f32>(&floats)?, &rows, self.width, finish)?
            }
            (_, dt) => bail!("{}", self.type_error(dt)),
        }
        Ok(rows.count)
    }

    /// Refuses an input type the ensemble cannot be evaluated on.
    fn check_type(&self, dt: DatumType) -> TractResult<()> {
        let accepted = match self.forest {
            Precision::Single(_) => INPUT_TYPES.contains(&dt),
            Precision::Double(_) => dt == DatumType::F64,
        };
        if accepted {
            Ok(())
        } else {
            bail!("{}", self.type_error(dt))
        }
    }

    fn type_error(&self, dt: DatumType) -> String {
        let (op, node) = (self.op, &self.node);
        match self.forest {
            Precision::Single(_) => {
                format!(
                    "{op} node \"{node}\" takes a float, double, int64 or int32 input, not {dt:?}"
                )
            }
            Precision::Double(_) => format!(
                "{op} node \"{node}\" has double `*_as_tensor` attributes, which onnxruntime reads \
                 only for a double input; this input is {dt:?}"
            ),
        }
    }

    /// The smallest row width the trees can read: onnxruntime refuses an input narrower
    /// than its largest feature id, leaves' ids included.
    fn min_width(&self) -> usize {
        match &self.forest {
            Precision::Single(f) => f.min_width(),
            Precision::Double(f) => f.min_width(),
        }
    }

    /// Refuses a row width the trees cannot read, as onnxruntime does at evaluation. A
    /// 1-D input is one row whose width onnxruntime takes as 1, whatever its length.
    fn check_width(&self, rank: usize, width: usize) -> TractResult<()> {
        let width = if rank == 1 { width.min(1) } else { width };
        let needed = self.min_width();
        ensure!(
            width >= needed,
            "{} node \"{}\": the trees read feature {} but the input has {width} features \
             per row{}",
            self.op,
            self.node,
            needed - 1,
            if rank == 1 {
                " (onnxruntime reads a 1-D input as one row of one feature)"
            } else {
                ""
            }
        );
        Ok(())
    }

    /// The batch dimension of the outputs, from the input's typed fact: `N` for `[N, F]`,
    /// 1 for `[F]`.
    fn batch_of(&self, input: &TypedFact) -> TractResult<TDim> {
        self.check_type(input.datum_type)?;
        let shape = &input.shape;
        self.check_rank(shape.rank())?;
        if let Ok(width) = shape[shape.rank() - 1].to_usize() {
            self.check_width(shape.rank(), width)?;
        }
        Ok(if shape.rank() == 2 {
            shape[0].clone()
        } else {
            1.to_dim()
        })
    }

    fn check_rank(&self, rank: usize) -> TractResult<()> {
        if rank == 1 || rank == 2 {
            Ok(())
        } else {
            Err(self.rank_error(rank))
        }
    }

    fn rank_error(&self, rank: usize) -> TractError {
        format_err!(
            "{} node \"{}\" takes a [N, F] or [F] input, not rank {rank}",
            self.op,
            self.node
        )
    }

    /// The inference rules both operators share: the input type and shape, and each
    /// output's first dimension (`N`, or 1 for a 1-D input).
    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        input: &'p TensorProxy,
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        s.given(&input.datum_type, move |_, dt| self.check_type(dt))?;
        s.given(&input.rank, move |s, rank| {
            let rank = rank as usize;
            self.check_rank(rank)?;
            s.given(&input.shape[rank - 1], move |_, width| {
                if let Ok(width) = width.to_usize() {
                    self.check_width(rank, width)?;
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
}

/// `nodes_modes`, refusing unknown modes (as onnxruntime does).
fn node_kinds(attrs: &Attrs) -> TractResult<Vec<Kind>> {
    let modes = attrs.strings("nodes_modes")?.unwrap_or_default();
    let kind = |mode: &String| match Kind::parse(mode) {
        Some(kind) => Ok(kind),
        None => attrs.refuse(
            "nodes_modes",
            "BRANCH_LEQ, BRANCH_LT, BRANCH_GTE, BRANCH_GT, BRANCH_EQ, BRANCH_NEQ or LEAF",
            format!("\"{mode}\""),
        ),
    };
    modes.iter().map(kind).collect()
}

/// Refuses node lists of different lengths (onnxruntime's checks, against
/// `nodes_falsenodeids`). `nodes_missing_value_tracks_true` may be shorter: onnxruntime
/// reads a missing entry as 0.
fn check_node_lengths(attrs: &Attrs, nodes: &Nodes, values: &Values) -> TractResult<()> {
    let count = nodes.false_ids.len();
    let why = "one per node, as nodes_falsenodeids";
    attrs.expect_len("nodes_treeids", nodes.tree_ids.len(), count, why)?;
    attrs.expect_len("nodes_nodeids", nodes.node_ids.len(), count, why)?;
    attrs.expect_len("nodes_featureids", nodes.feature_ids.len(), count, why)?;
    attrs.expect_len("nodes_modes", nodes.kinds.len(), count, why)?;
    attrs.expect_len("nodes_truenodeids", nodes.true_ids.len(), count, why)?;
    let values_attr = if values.double {
        "nodes_values_as_tensor"
    } else {
        "nodes_values"
    };
    attrs.expect_len(values_attr, values.values.len(), count, why)
}

/// Refuses weight lists of different lengths and target ids out of `0..width`.
fn check_weights(attrs: &Attrs, weights: &Weights, width: usize) -> TractResult<WeightStats> {
    let prefix = weights.prefix;
    let count = weights.targets.len();
    let why = format!("one per weight, as {prefix}_ids");
    attrs.expect_len(
        &format!("{prefix}_treeids"),
        weights.tree_ids.len(),
        count,
        &why,
    )?;
    attrs.expect_len(
        &format!("{prefix}_nodeids"),
        weights.node_ids.len(),
        count,
        &why,
    )?;
    attrs.expect_len(
        &format!("{prefix}_weights"),
        weights.values.len(),
        count,
        &why,
    )?;
    if let Some(&bad) = weights
        .targets
        .iter()
        .find(|&&t| t < 0 || t as u64 >= width as u64)
    {
        attrs.refuse(
            &format!("{prefix}_ids"),
            format!("indices in 0..{width}"),
            bad,
        )?;
    }
    let mut used: Vec<i64> = weights.targets.to_vec();
    used.sort_unstable();
    used.dedup();
    // No weight below 0, as onnxruntime tests it: NaN counts as positive.
    let all_positive = !weights.values.iter().any(|&w| w < 0.0);
    Ok(WeightStats {
        targets_used: used.len(),
        all_positive,
    })
}

/// How an input is cut into rows, as onnxruntime reads it: `[N, F]` is N rows of F
/// values, `[F]` one row of F values.
struct Rows {
    count: usize,
    stride: usize,
}

impl Rows {
    fn of(ensemble: &Ensemble, input: &Tensor) -> TractResult<Rows> {
        let (count, stride) = match *input.shape() {
            [len] => (1, len),
            [count, width] => (count, width),
            _ => return Err(ensemble.rank_error(input.rank())),
        };
        ensemble.check_width(input.rank(), stride)?;
        Ok(Rows { count, stride })
    }
}

/// A tensor's values (all tensors here are in memory).
fn plain<D: Datum>(tensor: &Tensor) -> TractResult<&[D]> {
    tensor.try_as_plain_ram()?.as_slice::<D>()
}

/// A `[N, C]` float output from its values.
fn matrix(rows: usize, columns: usize, values: Vec<f32>) -> TractResult<TValue> {
    Ok(
        tract_ndarray::Array::from_shape_vec((rows, columns), values)?
            .into_tensor()
            .into_tvalue(),
    )
}

/// A 1-D output (`[N]` labels) from its values.
fn vector<T: Datum>(values: Vec<T>) -> TractResult<TValue> {
    Ok(tract_ndarray::Array::from_vec(values)
        .into_tensor()
        .into_tvalue())
}

#[cfg(test)]
mod test_support;

#[cfg(test)]
mod tests {
    use tract_onnx::pb::tensor_proto::DataType;
    use tract_onnx::prelude::*;

    use super::test_support::{Node, stump};

    /// Parses `node` as a model of its own with input `[N, width]`, types it and checks the
    /// output facts, then runs it on `input`.
    fn typed_and_run(
        node: &Node,
        dt: DataType,
        width: i64,
        outputs: &[&str],
        input: Tensor,
    ) -> TVec<TValue> {
        let proto = node.model(dt, width, outputs);
        let model = crate::onnx()
            .model_for_proto_model(&proto)
            .unwrap()
            .into_typed()
            .unwrap();
        let batch = TDim::Sym(model.symbols.sym("N"));
        for (outlet, name) in model.output_outlets().unwrap().iter().zip(outputs) {
            let fact = model.outlet_fact(*outlet).unwrap();
            assert_eq!(fact.shape[0], batch, "{name}: {fact:?}");
        }
        model
            .into_runnable()
            .unwrap()
            .run(tvec!(input.into_tvalue()))
            .unwrap()
    }

    #[test]
    fn a_classifier_graph_types_with_a_symbolic_batch() {
        let node = stump("TreeEnsembleClassifier", 0, [0, 1, 2], "BRANCH_LEQ", 0.5)
            .strings("classlabels_strings", &["no", "yes"])
            .ints("class_treeids", &[0, 0])
            .ints("class_nodeids", &[1, 2])
            .ints("class_ids", &[0, 0])
            .floats("class_weights", &[0.25, 0.75]);
        let input = tensor2(&[[0.0f32, 9.0], [1.0, 9.0], [0.0, 9.0]]);
        let outputs = typed_and_run(
            &node,
            DataType::Float,
            2,
            &["label", "probabilities"],
            input,
        );
        let labels = outputs[0]
            .try_as_plain_ram()
            .unwrap()
            .as_slice::<String>()
            .unwrap()
            .to_vec();
        assert_eq!(labels, ["no", "yes", "no"]);
        assert_eq!(outputs[1].shape(), [3, 2]);
        assert_eq!(outputs[1].datum_type(), f32::datum_type());
    }

    #[test]
    fn a_regressor_graph_types_with_a_symbolic_batch() {
        let node = stump("TreeEnsembleRegressor", 0, [0, 1, 2], "BRANCH_GT", 0.5)
            .int("n_targets", 2)
            .ints("target_treeids", &[0, 0])
            .ints("target_nodeids", &[1, 2])
            .ints("target_ids", &[0, 1])
            .floats("target_weights", &[1.0, 2.0]);
        let input = tensor2(&[[0.0f64], [1.0]]);
        let outputs = typed_and_run(&node, DataType::Double, 1, &["variable"], input);
        let values = outputs[0]
            .try_as_plain_ram()
            .unwrap()
            .as_slice::<f32>()
            .unwrap()
            .to_vec();
        assert_eq!(outputs[0].shape(), [2, 2]);
        assert_eq!(values, [0.0, 2.0, 1.0, 0.0]);
    }

    #[test]
    fn a_graph_whose_input_is_narrower_than_the_trees_read_is_refused_when_typed() {
        let node = stump("TreeEnsembleRegressor", 0, [0, 1, 2], "BRANCH_LEQ", 0.5)
            .ints("nodes_featureids", &[4, 0, 0])
            .int("n_targets", 1);
        let proto = node.model(DataType::Float, 3, &["variable"]);
        let error = crate::onnx()
            .model_for_proto_model(&proto)
            .and_then(|m| m.into_typed())
            .unwrap_err();
        assert!(
            format!("{error:?}").contains("read feature 4 but the input has 3 features"),
            "{error:?}"
        );
    }
}
