//! SVMClassifier, as onnxruntime's svmclassifier.cc computes it.
//!
//! Two machines hide behind the operator, told apart by `vectors_per_class`:
//! - [`OneVsOne`] (libsvm's SVC, what skl2onnx exports for `SVC`/`NuSVC`): support vectors
//!   grouped by class, one classifier per pair of classes, a vote per pair. The label is the
//!   class with the most votes (the first of equals), even when probabilities are computed,
//!   as onnxruntime does; the scores are the pair scores, or the class probabilities when
//!   `prob_a`/`prob_b` are given.
//! - [`PerClass`] (liblinear's layout: no support vectors, `coefficients` one row per class):
//!   the scores are `x·wᵀ + rho[0]` and the label their argmax, but for onnxruntime's binary
//!   rule.
//!
//! Outputs: the label `[N]` (int64 from `classlabels_ints`, or string from
//! `classlabels_strings`) and the scores `[N, W]` float, W as onnxruntime allocates it:
//! the class count with probabilities or without support vectors; otherwise the pair count,
//! or 2 for two classes.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::kernel::{KernelFunction, Vectors};
use super::probability::{Coupling, Platt};
use super::{Attrs, Rows, batch_of, rules_for_rows};
use crate::kernel::{Kernel, Parsed, parsed};
use crate::labels::Labels;
use crate::post::{PostTransform, SecondClass, write_scores};

const OP: &str = "SVMClassifier";

/// The input types onnxruntime's SVMClassifier takes; all are converted to float.
const INPUT_TYPES: &[DatumType] = &[
    DatumType::F32,
    DatumType::F64,
    DatumType::I32,
    DatumType::I64,
];

/// The parser registered for `SVMClassifier`.
pub(crate) fn parse(_ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    parsed(SvmClassifier::parse(&Attrs::new(OP, node))?)
}

#[derive(Debug)]
struct SvmClassifier {
    node: String,
    labels: Labels,
    post_transform: PostTransform,
    model: Model,
}

#[derive(Debug)]
enum Model {
    OneVsOne(OneVsOne),
    PerClass(PerClass),
}

/// libsvm's one-vs-one machine.
#[derive(Debug)]
struct OneVsOne {
    /// The support vectors, with the kernel.
    vectors: Vectors,
    /// Class `c`'s support vectors are `bounds[c]..bounds[c + 1]`.
    bounds: Vec<usize>,
    /// `[classes - 1, vectors]`: the dual coefficients, libsvm's layout.
    coefficients: Vec<f32>,
    /// One intercept per pair.
    rho: Vec<f32>,
    platt: Option<Platt>,
}

/// One weight row per class, no support vectors.
#[derive(Debug)]
struct PerClass {
    weights: Vectors,
    rho: f32,
    /// Whether every coefficient is >= 0, which decides onnxruntime's binary label rule.
    all_positive: bool,
    /// Whether `prob_a` is given: it is not used, but turns the binary label rule off.
    has_probabilities: bool,
}

impl SvmClassifier {
    fn parse(attrs: &Attrs) -> TractResult<SvmClassifier> {
        let labels = Labels::parse(attrs)?;
        // onnxruntime requires `kernel_params` even without support vectors, where it
        // ignores the kernel.
        let kernel = KernelFunction::parse(attrs)?;
        let counts = vectors_per_class(attrs)?;
        let model = if counts.iter().sum::<usize>() > 0 {
            Model::OneVsOne(OneVsOne::parse(attrs, &labels, kernel, &counts)?)
        } else {
            Model::PerClass(PerClass::parse(attrs, labels.len())?)
        };
        Ok(SvmClassifier {
            node: attrs.node_name(),
            labels,
            post_transform: attrs.post_transform()?,
            model,
        })
    }

    fn features(&self) -> usize {
        match &self.model {
            Model::OneVsOne(m) => m.vectors.features(),
            Model::PerClass(m) => m.weights.features(),
        }
    }

    /// The width of the scores, as onnxruntime allocates them.
    fn width(&self) -> usize {
        match &self.model {
            Model::OneVsOne(m) => m.width(),
            Model::PerClass(m) => m.weights.count(),
        }
    }
}

/// The number of one-vs-one pairs of `classes` classes.
fn pairs(classes: usize) -> usize {
    classes * (classes - 1) / 2
}

impl Labels {
    /// `classlabels_strings` or `classlabels_ints`; when both are given, onnxruntime reads
    /// the strings only, and so does this.
    fn parse(attrs: &Attrs) -> TractResult<Labels> {
        let strings: Option<Vec<String>> = attrs.node.get_attr_opt_vec("classlabels_strings")?;
        match (strings, attrs.ints("classlabels_ints")?) {
            (Some(strings), _) if !strings.is_empty() => Ok(Labels::Strings(strings)),
            (_, Some(ints)) if !ints.is_empty() => Ok(Labels::Ints(ints)),
            _ => attrs.refuse(
                "classlabels_ints",
                "a non-empty classlabels_ints or classlabels_strings",
                "neither",
            ),
        }
    }

    /// The attribute the labels come from.
    fn attribute(&self) -> &'static str {
        match self {
            Labels::Ints(_) => "classlabels_ints",
            Labels::Strings(_) => "classlabels_strings",
        }
    }
}

/// `prob_a` and `prob_b`, which must be given together and of one length (onnxruntime
/// refuses them otherwise); `None` when neither is.
fn parse_platt(attrs: &Attrs) -> TractResult<Option<Platt>> {
    let a = attrs.floats("prob_a")?.unwrap_or_default();
    let b = attrs.floats("prob_b")?.unwrap_or_default();
    if a.len() != b.len() {
        attrs.refuse(
            "prob_b",
            format!("{} values, as many as prob_a", a.len()),
            b.len(),
        )?;
    }
    Ok((!a.is_empty()).then_some(Platt { a, b }))
}

/// `coefficients` and `rho`, which onnxruntime requires, the coefficients not empty.
fn coefficients_and_rho(attrs: &Attrs) -> TractResult<(Vec<f32>, Vec<f32>)> {
    let coefficients = attrs.required_floats("coefficients")?;
    if coefficients.is_empty() {
        attrs.refuse("coefficients", "at least one value", "none")?;
    }
    Ok((coefficients, attrs.required_floats("rho")?))
}

/// `vectors_per_class`, empty when absent.
fn vectors_per_class(attrs: &Attrs) -> TractResult<Vec<usize>> {
    let counts = attrs.ints("vectors_per_class")?.unwrap_or_default();
    counts
        .iter()
        .map(|&n| match usize::try_from(n) {
            Ok(n) => Ok(n),
            Err(_) => attrs.refuse("vectors_per_class", "counts >= 0", n),
        })
        .collect()
}

impl OneVsOne {
    fn parse(
        attrs: &Attrs,
        labels: &Labels,
        kernel: KernelFunction,
        counts: &[usize],
    ) -> TractResult<OneVsOne> {
        let classes = labels.len();
        if classes < 2 {
            let expected = "at least 2 class labels, with support vectors";
            attrs.refuse(labels.attribute(), expected, classes)?;
        }
        if counts.len() != classes {
            attrs.refuse(
                "vectors_per_class",
                format!("{classes} counts, one per class label"),
                counts.len(),
            )?;
        }
        let total: usize = counts.iter().sum();
        let rows = attrs.floats("support_vectors")?.unwrap_or_default();
        if rows.is_empty() || !rows.len().is_multiple_of(total) {
            attrs.refuse(
                "support_vectors",
                format!("a non-zero multiple of {total} values (one row per support vector)"),
                rows.len(),
            )?;
        }
        let (coefficients, rho) = coefficients_and_rho(attrs)?;
        let platt = parse_platt(attrs)?;
        let coefficients_len = (classes - 1) * total;
        let why = format!(
            "(classes - 1) × support vectors = {} × {total}",
            classes - 1
        );
        attrs.expect_len("coefficients", &coefficients, coefficients_len, &why)?;
        let why = format!("one per pair of {classes} classes");
        attrs.expect_len("rho", &rho, pairs(classes), &why)?;
        if let Some(platt) = &platt {
            attrs.expect_len("prob_a", &platt.a, pairs(classes), &why)?;
        }
        let bounds = std::iter::once(0)
            .chain(counts.iter().scan(0, |end, n| {
                *end += n;
                Some(*end)
            }))
            .collect();
        Ok(OneVsOne {
            vectors: Vectors::from_rows(&rows, total, kernel),
            bounds,
            coefficients,
            rho,
            platt,
        })
    }

    fn classes(&self) -> usize {
        self.bounds.len() - 1
    }

    /// The scores' width: a probability per class, or else a score per pair (at least 2).
    fn width(&self) -> usize {
        match self.platt {
            Some(_) => self.classes(),
            None => pairs(self.classes()).max(2),
        }
    }

    /// Picks and scores of all the rows; `scores` has [`OneVsOne::width`] values per row.
    fn eval(&self, x: &[f32], post: PostTransform, picks: &mut Vec<usize>, scores: &mut [f32]) {
        let classes = self.classes();
        let mut kernel_row = vec![0.0; self.vectors.count()];
        let mut scratch = Vec::new();
        let mut pair_scores = vec![0.0; pairs(classes)];
        let mut votes = vec![0u32; classes];
        let mut coupling = Coupling::new(classes);
        let mut lone = Vec::with_capacity(2);
        let rows = x.chunks_exact(self.vectors.features());
        for (x, out) in rows.zip(scores.chunks_exact_mut(self.width())) {
            self.vectors.kernel_row(x, &mut kernel_row, &mut scratch);
            self.pair_scores(&kernel_row, &mut pair_scores, &mut votes);
            picks.push(first_max(&votes));
            match &self.platt {
                Some(platt) => {
                    coupling.probabilities(platt, &pair_scores, out);
                    post.apply(out);
                }
                None => write_pair_scores(&pair_scores, post, out, &mut lone),
            }
        }
    }

    /// The score of each pair of classes i < j and the votes they cast: for the pair, class
    /// i's vectors weigh in with coefficient row j - 1 and class j's with row i, plus the
    /// pair's rho; a positive score is a vote for i, any other for j. As onnxruntime, the
    /// sum is kept in f64 (of f32 products) and rounded to f32 for the score.
    fn pair_scores(&self, kernel_row: &[f32], scores: &mut [f32], votes: &mut [u32]) {
        let classes = self.classes();
        let stride = self.vectors.count();
        votes.fill(0);
        let mut k = 0;
        for i in 0..classes {
            let vectors_i = self.bounds[i]..self.bounds[i + 1];
            for j in i + 1..classes {
                let vectors_j = self.bounds[j]..self.bounds[j + 1];
                let row_j = &self.coefficients[(j - 1) * stride..j * stride];
                let row_i = &self.coefficients[i * stride..(i + 1) * stride];
                let mut sum = weighted_sum(
                    0.0,
                    &row_j[vectors_i.clone()],
                    &kernel_row[vectors_i.clone()],
                );
                sum = weighted_sum(sum, &row_i[vectors_j.clone()], &kernel_row[vectors_j]);
                sum += f64::from(self.rho[k]);
                scores[k] = sum as f32;
                votes[if sum > 0.0 { i } else { j }] += 1;
                k += 1;
            }
        }
    }
}

fn weighted_sum(sum: f64, coefficients: &[f32], kernel_row: &[f32]) -> f64 {
    coefficients
        .iter()
        .zip(kernel_row)
        .fold(sum, |sum, (&c, &k)| sum + f64::from(c * k))
}

/// The scores of a row without probabilities: the pair scores, transformed when there are
/// several. Two classes have one pair score s, written as onnxruntime (1.31) does: `[-s, s]`
/// under NONE, `[σ(-s), σ(s)]` under LOGISTIC, `[1 - s, s]` (untransformed) under SOFTMAX
/// and SOFTMAX_ZERO, and `[probit(s), 0]` under PROBIT, where onnxruntime leaves the second
/// column unwritten (whatever its memory held: 0 or NaN).
fn write_pair_scores(
    pair_scores: &[f32],
    post: PostTransform,
    out: &mut [f32],
    lone: &mut Vec<f32>,
) {
    if pair_scores.len() > 1 {
        out.copy_from_slice(pair_scores);
        post.apply(out);
        return;
    }
    let second = if post == PostTransform::None {
        SecondClass::Positive
    } else {
        SecondClass::Complement
    };
    lone.clear();
    lone.push(pair_scores[0]);
    write_scores(lone, post, second);
    out.fill(0.0);
    out[..lone.len()].copy_from_slice(lone);
}

impl PerClass {
    fn parse(attrs: &Attrs, classes: usize) -> TractResult<PerClass> {
        let (coefficients, rho) = coefficients_and_rho(attrs)?;
        if !coefficients.len().is_multiple_of(classes) {
            attrs.refuse(
                "coefficients",
                format!("a multiple of {classes} values (one weight row per class)"),
                coefficients.len(),
            )?;
        }
        // onnxruntime adds rho[0] to every class's score and reads no other.
        let Some(&rho) = rho.first() else {
            return attrs.refuse("rho", "at least one value", "none");
        };
        Ok(PerClass {
            all_positive: coefficients.iter().all(|&c| c >= 0.0),
            // The kernel is always LINEAR here, whatever `kernel_type` says, as onnxruntime.
            weights: Vectors::from_rows(&coefficients, classes, KernelFunction::Linear),
            rho,
            has_probabilities: parse_platt(attrs)?.is_some(),
        })
    }

    fn eval(&self, x: &[f32], post: PostTransform, picks: &mut Vec<usize>, scores: &mut [f32]) {
        let rows = x.chunks_exact(self.weights.features());
        let mut scratch = Vec::new();
        for (x, out) in rows.zip(scores.chunks_exact_mut(self.weights.count())) {
            // onnxruntime's GEMM with rho[0] as its C (none when it is 0).
            self.weights.biased_dots(x, self.rho, out, &mut scratch);
            picks.push(self.pick(out));
            // A lone score only gets PROBIT (onnxruntime's batched_update_scores_inplace).
            if out.len() > 1 || post == PostTransform::Probit {
                post.apply(out);
            }
        }
    }

    /// The argmax of the raw scores (the first of equals); with two classes and no
    /// probabilities, onnxruntime picks the second class when the top score is >= 0.5 (all
    /// weights >= 0) or > 0 (mixed weights), whichever class it is.
    fn pick(&self, scores: &[f32]) -> usize {
        let best = first_max(scores);
        if scores.len() == 2 && !self.has_probabilities {
            let top = scores[best];
            if (self.all_positive && top >= 0.5) || (!self.all_positive && top > 0.0) {
                return 1;
            }
        }
        best
    }
}

/// The index of the first maximum, as `std::max_element` finds it.
fn first_max<T: PartialOrd>(values: &[T]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate().skip(1) {
        if values[best] < *v {
            best = i;
        }
    }
    best
}

impl Kernel for SvmClassifier {
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
        s.equals(&outputs[0].datum_type, self.labels.datum_type())?;
        s.equals(&outputs[1].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].rank, 1)?;
        s.equals(&outputs[1].rank, 2)?;
        s.equals(&outputs[1].shape[1], self.width().to_dim())?;
        rules_for_rows(s, OP, INPUT_TYPES, self.features(), &inputs[0], outputs)
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n = batch_of(OP, INPUT_TYPES, inputs[0], self.features())?;
        Ok(tvec!(
            self.labels.datum_type().fact([n.clone()]),
            f32::fact([n, self.width().to_dim()])
        ))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let rows = Rows::of(OP, &self.node, &input, self.features())?;
        let x = rows.features()?;
        let mut picks = Vec::with_capacity(rows.count);
        let mut scores = vec![0.0f32; rows.count * self.width()];
        match &self.model {
            Model::OneVsOne(m) => m.eval(x, self.post_transform, &mut picks, &mut scores),
            Model::PerClass(m) => m.eval(x, self.post_transform, &mut picks, &mut scores),
        }
        let scores = tract_ndarray::Array2::from_shape_vec((rows.count, self.width()), scores)?;
        Ok(tvec!(
            self.labels.tensor(&picks).into_tvalue(),
            scores.into_tvalue()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::post::{logistic, probit};
    use crate::svm::test_support::{matrix, run, typed};
    use crate::testing::{Node, assert_close, rows};
    use tract_onnx::pb::tensor_proto::DataType;

    /// Three classes, two features, LINEAR kernel: class 0 has vector [1, 0], class 1 [0, 1],
    /// class 2 [1, 1] and [-1, 0]. For x, the kernel row is K = [x0, x1, x0 + x1, -x0] and the
    /// pair scores (coefficient rows [1, -1, .5, -.5] and [2, 1, -1, .25]) are
    /// (0,1): K0 - K1 + .1; (0,2): 2 K0 + .5 K2 - .5 K3 - .2; (1,2): K1 - K2 + .25 K3 + .3.
    fn three_classes() -> Node {
        Node::new(OP, "svm")
            .ints("classlabels_ints", &[10, 20, 30])
            .ints("vectors_per_class", &[1, 1, 2])
            .floats(
                "support_vectors",
                &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0, -1.0, 0.0],
            )
            .floats(
                "coefficients",
                &[1.0, -1.0, 0.5, -0.5, 2.0, 1.0, -1.0, 0.25],
            )
            .floats("rho", &[0.1, -0.2, 0.3])
            .string("kernel_type", "LINEAR")
            .floats("kernel_params", &[0.0, 0.0, 0.0])
    }

    /// Rows and their pair scores by hand; votes (1,1,1) tie to class 0, then (2,0,1) is
    /// class 0, (1,2,0) class 1 and (1,0,2) class 2.
    const X: [[f32; 2]; 4] = [[2.0, 3.0], [3.0, 0.0], [0.0, 2.0], [1.0, -10.0]];
    const PAIR_SCORES: [[f32; 3]; 4] = [
        [-0.9, 7.3, -2.2],
        [3.1, 8.8, -3.45],
        [-1.9, 0.8, 0.3],
        [11.1, -2.2, -0.95],
    ];

    /// Two classes, one feature: vectors [1] and [2], coefficients [1, -1], rho 0.5: the pair
    /// score is s = x - 2x + 0.5 = 0.5 - x, positive for class 0.
    fn two_classes() -> Node {
        Node::new(OP, "svm")
            .strings("classlabels_strings", &["no", "yes"])
            .ints("vectors_per_class", &[1, 1])
            .floats("support_vectors", &[1.0, 2.0])
            .floats("coefficients", &[1.0, -1.0])
            .floats("rho", &[0.5])
            .floats("kernel_params", &[])
    }

    /// Three classes without support vectors: weight rows [1, 0], [0, 1], [1, 1].
    fn per_class() -> Node {
        Node::new(OP, "svm")
            .ints("classlabels_ints", &[0, 1, 2])
            .floats("coefficients", &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
            .floats("rho", &[0.5, 9.0, 9.0])
            .floats("kernel_params", &[])
    }

    fn classifier(node: &Node) -> TractResult<SvmClassifier> {
        SvmClassifier::parse(&Attrs::new(OP, &node.0))
    }

    fn eval(node: &Node, x: Tensor) -> (Tensor, Vec<Vec<f32>>) {
        let outputs = classifier(node)
            .unwrap()
            .eval(tvec!(x.into_tvalue()))
            .unwrap();
        (outputs[0].clone().into_tensor(), rows(&outputs[1]))
    }

    fn parse_error(node: &Node) -> String {
        classifier(node).unwrap_err().to_string()
    }

    fn pair_scores() -> Vec<&'static [f32]> {
        PAIR_SCORES.iter().map(|r| r.as_slice()).collect()
    }

    #[test]
    fn one_vs_one_scores_each_pair_and_labels_by_votes_first_wins() {
        let (labels, scores) = eval(&three_classes(), matrix(&X));
        assert_eq!(labels, tensor1(&[10i64, 10, 20, 30]));
        assert_close(&scores, &pair_scores(), 1e-6);
    }

    #[test]
    fn one_vs_one_pair_scores_take_the_post_transform() {
        let (labels, scores) = eval(
            &three_classes().string("post_transform", "LOGISTIC"),
            matrix(&X),
        );
        assert_eq!(labels, tensor1(&[10i64, 10, 20, 30]));
        let want: Vec<Vec<f32>> = PAIR_SCORES
            .iter()
            .map(|r| r.iter().map(|&s| logistic(s)).collect())
            .collect();
        assert_close(
            &scores,
            &want.iter().map(Vec::as_slice).collect::<Vec<_>>(),
            1e-6,
        );
    }

    #[test]
    fn binary_scores_without_probabilities_are_laid_out_as_onnxruntime() {
        let x = matrix(&[[0.0], [2.0], [0.25]]);
        let (labels, none) = eval(&two_classes(), x.clone());
        assert_eq!(
            labels,
            tensor1(&["no".to_string(), "yes".into(), "no".into()])
        );
        // NONE: [-s, s] with s = 0.5 - x.
        assert_close(&none, &[&[-0.5, 0.5], &[1.5, -1.5], &[-0.25, 0.25]], 1e-6);
        // LOGISTIC: [σ(-s), σ(s)].
        let (_, logistic) = eval(
            &two_classes().string("post_transform", "LOGISTIC"),
            x.clone(),
        );
        let sigmoids = |s: f32| [crate::post::logistic(-s), crate::post::logistic(s)];
        let want = [sigmoids(0.5), sigmoids(-1.5), sigmoids(0.25)];
        assert_close(
            &logistic,
            &want.iter().map(|r| r.as_slice()).collect::<Vec<_>>(),
            1e-6,
        );
        // SOFTMAX and SOFTMAX_ZERO: [1 - s, s], untransformed.
        for softmax in ["SOFTMAX", "SOFTMAX_ZERO"] {
            let (_, scores) = eval(&two_classes().string("post_transform", softmax), x.clone());
            assert_close(&scores, &[&[0.5, 0.5], &[2.5, -1.5], &[0.75, 0.25]], 1e-6);
        }
        // PROBIT: [probit(s), 0] (onnxruntime leaves the second column unwritten).
        let (_, probits) = eval(&two_classes().string("post_transform", "PROBIT"), x);
        assert_eq!(probits[2], [probit(0.25), 0.0]);
        assert!(probits[2][0] < -0.6, "{probits:?}");
    }

    #[test]
    fn binary_probabilities_come_from_platt_and_the_label_still_from_the_vote() {
        // prob_a = 2: P(class 0) = 1 - σ(2 s); at x = 0, s = 0.5 and P(class 0) = σ(-1), yet
        // the pair votes class 0.
        let node = two_classes()
            .floats("prob_a", &[2.0])
            .floats("prob_b", &[0.0]);
        let (labels, scores) = eval(&node, matrix(&[[0.0]]));
        assert_eq!(labels, tensor1(&["no".to_string()]));
        let p0 = logistic(-1.0);
        assert_close(&scores, &[&[p0, 1.0 - p0]], 2.5e-3);
        assert!(scores[0][0] < scores[0][1]);
    }

    #[test]
    fn multiclass_probabilities_have_one_column_per_class() {
        let node = three_classes()
            .floats("prob_a", &[-1.0, -1.0, -1.0])
            .floats("prob_b", &[0.0, 0.0, 0.0]);
        let (labels, scores) = eval(&node, matrix(&X));
        assert_eq!(labels, tensor1(&[10i64, 10, 20, 30]));
        for (row, pairs) in scores.iter().zip(PAIR_SCORES) {
            assert_eq!(row.len(), 3);
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
            // P(i beats j) = σ(s_ij): the class that wins both its pairs is the likeliest.
            if pairs[0] > 0.0 && pairs[1] > 0.0 {
                assert!(row[0] > row[1] && row[0] > row[2], "{row:?}");
            }
        }
        let (_, softmax) = eval(&node.string("post_transform", "SOFTMAX"), matrix(&X));
        let mut want = scores[0].clone();
        PostTransform::Softmax.apply(&mut want);
        assert_close(&softmax[..1], &[&want], 1e-6);
    }

    #[test]
    fn without_support_vectors_scores_add_the_first_rho_to_every_class() {
        let (labels, scores) = eval(&per_class(), matrix(&[[1.0, 2.0], [3.0, -4.0]]));
        assert_eq!(labels, tensor1(&[2i64, 0]));
        assert_close(&scores, &[&[1.5, 2.5, 3.5], &[3.5, -3.5, -0.5]], 1e-6);
        let (_, softmax) = eval(
            &per_class().string("post_transform", "SOFTMAX"),
            matrix(&[[1.0, 2.0]]),
        );
        let mut want = [1.5, 2.5, 3.5];
        PostTransform::Softmax.apply(&mut want);
        assert_close(&softmax, &[&want], 1e-6);
    }

    #[test]
    fn without_support_vectors_the_kernel_type_is_ignored() {
        let rbf = per_class()
            .string("kernel_type", "RBF")
            .floats("kernel_params", &[0.5, 0.0, 0.0]);
        let (_, scores) = eval(&rbf, matrix(&[[1.0, 2.0]]));
        assert_close(&scores, &[&[1.5, 2.5, 3.5]], 1e-6);
    }

    #[test]
    fn without_support_vectors_two_classes_follow_onnxruntimes_label_rule() {
        // Mixed weights [1], [-1]: the second class as soon as the top score is > 0.
        let mixed = Node::new(OP, "svm")
            .ints("classlabels_ints", &[5, 6])
            .floats("coefficients", &[1.0, -1.0])
            .floats("rho", &[0.0])
            .floats("kernel_params", &[]);
        let (labels, scores) = eval(&mixed, matrix(&[[0.25], [-0.5], [0.0]]));
        assert_eq!(labels, tensor1(&[6i64, 6, 5]));
        assert_close(&scores, &[&[0.25, -0.25], &[-0.5, 0.5], &[0.0, 0.0]], 0.0);
        // Weights all >= 0, [2], [1]: the second class when the top score is >= 0.5.
        let positive = mixed.clone().floats("coefficients", &[2.0, 1.0]);
        let (labels, _) = eval(&positive, matrix(&[[0.3], [0.2]]));
        assert_eq!(labels, tensor1(&[6i64, 5]));
        // With prob_a/prob_b given (and not used), the plain argmax.
        let with_probabilities = positive.floats("prob_a", &[1.0]).floats("prob_b", &[0.0]);
        let (labels, scores) = eval(&with_probabilities, matrix(&[[0.3]]));
        assert_eq!(labels, tensor1(&[5i64]));
        assert_close(&scores, &[&[0.6, 0.3]], 1e-6);
    }

    #[test]
    fn without_support_vectors_a_lone_class_score_only_takes_probit() {
        let lone = Node::new(OP, "svm")
            .ints("classlabels_ints", &[7])
            .floats("coefficients", &[0.25, 0.0])
            .floats("rho", &[0.25])
            .floats("kernel_params", &[]);
        let x = matrix(&[[1.0, 5.0]]);
        let (labels, scores) = eval(
            &lone.clone().string("post_transform", "LOGISTIC"),
            x.clone(),
        );
        assert_eq!(labels, tensor1(&[7i64]));
        assert_eq!(scores, [[0.5]]);
        let (_, scores) = eval(&lone.string("post_transform", "PROBIT"), x);
        assert!(scores[0][0].abs() < 1e-6, "{scores:?}");
    }

    #[test]
    fn rbf_kernel_pair_scores() {
        // Vectors [0] and [1], coefficients [1, -1], rho 0, γ = 1: s = e^{-x²} - e^{-(x-1)²}.
        let node = two_classes()
            .floats("support_vectors", &[0.0, 1.0])
            .floats("rho", &[0.0])
            .string("kernel_type", "RBF")
            .floats("kernel_params", &[1.0, 0.0, 0.0]);
        let (labels, scores) = eval(&node, matrix(&[[0.25], [2.0]]));
        assert_eq!(labels, tensor1(&["no".to_string(), "yes".into()]));
        let s = |x: f32| (-x * x).exp() - (-(x - 1.0) * (x - 1.0)).exp();
        assert_close(&scores, &[&[-s(0.25), s(0.25)], &[-s(2.0), s(2.0)]], 1e-6);
    }

    #[test]
    fn other_input_types_are_converted_to_float() {
        let x = tensor2(&[[2i64, 3], [3, 0], [0, 2], [1, -10]]);
        let (labels, scores) = eval(&three_classes(), x);
        assert_eq!(labels, tensor1(&[10i64, 10, 20, 30]));
        assert_close(&scores, &pair_scores(), 1e-6);
        let (labels, _) = eval(&three_classes(), tensor2(&[[2i32, 3]]));
        assert_eq!(labels, tensor1(&[10i64]));
        let (_, scores) = eval(&three_classes(), tensor2(&[[2f64, 3.0]]));
        assert_close(&scores, &pair_scores()[..1], 1e-6);
    }

    #[test]
    fn a_lone_row_gives_a_batch_of_one() {
        let (labels, scores) = eval(&three_classes(), tensor1(&[0f32, 2.0]));
        assert_eq!(labels, tensor1(&[20i64]));
        assert_close(&scores, &[&PAIR_SCORES[2]], 1e-6);
    }

    #[test]
    fn a_row_of_the_wrong_width_is_an_error() {
        let op = classifier(&three_classes()).unwrap();
        let e = op
            .eval(tvec!(matrix(&[[1.0, 2.0, 3.0]]).into_tvalue()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("3 features") && e.contains("the model 2"), "{e}");
    }

    #[test]
    fn malformed_attributes_are_refused_at_parse() {
        let cases = [
            (
                three_classes().ints("vectors_per_class", &[1, 3]),
                "vectors_per_class",
                "3 counts",
            ),
            (
                three_classes().ints("vectors_per_class", &[1, -1, 2]),
                "vectors_per_class",
                "found -1",
            ),
            (
                three_classes().floats("support_vectors", &[1.0; 7]),
                "support_vectors",
                "found 7",
            ),
            (
                three_classes().floats("coefficients", &[1.0; 6]),
                "coefficients",
                "8 values",
            ),
            (three_classes().floats("rho", &[0.0; 2]), "rho", "3 values"),
            (
                three_classes().floats("prob_a", &[1.0; 3]),
                "prob_b",
                "found 0",
            ),
            (
                three_classes()
                    .floats("prob_a", &[1.0; 2])
                    .floats("prob_b", &[1.0; 2]),
                "prob_a",
                "3 values",
            ),
            (
                three_classes().floats("kernel_params", &[1.0, 0.0]),
                "kernel_params",
                "found 2",
            ),
            (
                three_classes().without("kernel_params"),
                "kernel_params",
                "requires",
            ),
            (
                three_classes().string("kernel_type", "CUBIC"),
                "kernel_type",
                "\"CUBIC\"",
            ),
            (
                three_classes().string("post_transform", "TANH"),
                "post_transform",
                "\"TANH\"",
            ),
            (
                three_classes().without("classlabels_ints"),
                "classlabels_ints",
                "neither",
            ),
            (three_classes().without("rho"), "rho", "requires"),
            (
                per_class().floats("coefficients", &[1.0; 5]),
                "coefficients",
                "multiple of 3",
            ),
            (per_class().floats("rho", &[]), "rho", "at least one"),
            (
                three_classes()
                    .ints("classlabels_ints", &[1])
                    .ints("vectors_per_class", &[4]),
                "classlabels_ints",
                "at least 2 class labels",
            ),
        ];
        for (node, attr, detail) in cases {
            let e = parse_error(&node);
            assert!(
                e.contains("SVMClassifier node \"svm\"") && e.contains(attr) && e.contains(detail),
                "{attr}: {e}"
            );
        }
    }

    #[test]
    fn graph_types_with_a_symbolic_batch_and_runs() {
        let node = three_classes()
            .without("classlabels_ints")
            .strings("classlabels_strings", &["a", "b", "c"]);
        let model = typed(&node.model(DataType::Int32, 2, &["label", "scores"])).unwrap();
        let facts: Vec<String> = model
            .output_outlets()
            .unwrap()
            .iter()
            .map(|o| format!("{:?}", model.outlet_fact(*o).unwrap()))
            .collect();
        assert_eq!(facts, ["N,String", "N,3,F32"]);
        let outputs = run(model, tensor2(&[[2i32, 3], [0, 2]])).unwrap();
        assert_eq!(*outputs[0], tensor1(&["a".to_string(), "b".into()]));
        assert_close(
            &rows(&outputs[1]),
            &[&PAIR_SCORES[0], &PAIR_SCORES[2]],
            1e-6,
        );
    }

    #[test]
    fn graph_refuses_a_width_the_model_does_not_take() {
        let model = three_classes().model(DataType::Float, 3, &["label", "scores"]);
        let e = format!("{:?}", typed(&model).unwrap_err());
        assert!(e.contains("3 features per row"), "{e}");
    }
}
