//! What classifiers and regressors do to their raw scores: `post_transform`, and how a lone
//! score becomes two, exactly as onnxruntime's `ml_common.h` (`write_scores`) does.
//!
//! onnxruntime is the reference where it and the ONNX-ML specification disagree:
//! - a transform applies to two scores or more; a lone score only gets PROBIT, otherwise it
//!   is expanded to two by [`SecondClass`] (the specification says nothing of this);
//! - PROBIT uses the approximate inverse error function (Winitzki's, a = 0.147), not an
//!   exact one, so that answers match onnxruntime's to the float;
//! - SOFTMAX_ZERO leaves scores within 1e-7 of zero at (almost) zero.

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::bail;

/// The `post_transform` attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum PostTransform {
    /// Scores as computed.
    None,
    /// Max-shifted softmax over the scores of a row.
    Softmax,
    /// `1 / (1 + e^-x)` for each score.
    Logistic,
    /// Softmax that keeps (near-)zero scores at zero.
    SoftmaxZero,
    /// `√2 · erfinv(2x - 1)` for each score.
    Probit,
}

impl PostTransform {
    /// Parses the attribute's text (`NONE` when absent).
    pub(crate) fn parse(s: Option<&str>) -> TractResult<PostTransform> {
        Ok(match s.unwrap_or("NONE") {
            "NONE" => PostTransform::None,
            "SOFTMAX" => PostTransform::Softmax,
            "LOGISTIC" => PostTransform::Logistic,
            "SOFTMAX_ZERO" => PostTransform::SoftmaxZero,
            "PROBIT" => PostTransform::Probit,
            other => bail!(
                "post_transform is \"{other}\"; expected NONE, SOFTMAX, LOGISTIC, SOFTMAX_ZERO or PROBIT"
            ),
        })
    }

    /// Transforms a row of two scores or more in place.
    pub(crate) fn apply(self, scores: &mut [f32]) {
        match self {
            PostTransform::None => {}
            PostTransform::Logistic => scores.iter_mut().for_each(|s| *s = logistic(*s)),
            PostTransform::Probit => scores.iter_mut().for_each(|s| *s = probit(*s)),
            PostTransform::Softmax => softmax(scores),
            PostTransform::SoftmaxZero => softmax_zero(scores),
        }
    }
}

/// How a classifier with one score per row makes the second one (onnxruntime's
/// `add_second_class`). Under LOGISTIC all give `[σ(-s), σ(s)]` (onnxruntime 1.31, checked
/// for its tree, linear and SVM classifiers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum SecondClass {
    /// Weights all positive (or not known): `[1 - s, s]` under the other transforms.
    Complement,
    /// Mixed weights, the winning class positive: `[-s, s]` under the other transforms.
    Positive,
    /// Mixed weights, the winning class negative: also `[-s, s]` (not `[s, -s]`:
    /// onnxruntime writes the same pair, the winner shows only in the label).
    Negative,
}

/// The scores of one row as onnxruntime writes them: two or more are transformed; a lone
/// score gets PROBIT, or is expanded to two by `second`. `scores` is reused between rows by
/// the caller, so that no row allocates.
pub(crate) fn write_scores(scores: &mut Vec<f32>, transform: PostTransform, second: SecondClass) {
    match scores.len() {
        0 => {}
        1 if transform == PostTransform::Probit => scores[0] = probit(scores[0]),
        1 => {
            let s = scores[0];
            let pair = match (second, transform) {
                (_, PostTransform::Logistic) => [logistic(-s), logistic(s)],
                (SecondClass::Complement, _) => [1.0 - s, s],
                (SecondClass::Positive | SecondClass::Negative, _) => [-s, s],
            };
            scores.clear();
            scores.extend_from_slice(&pair);
        }
        _ => transform.apply(scores),
    }
}

/// onnxruntime's `ComputeLogistic`: symmetric, so that large negative inputs do not lose
/// precision.
pub(crate) fn logistic(x: f32) -> f32 {
    let v = 1.0 / (1.0 + (-x.abs()).exp());
    if x < 0.0 { 1.0 - v } else { v }
}

/// onnxruntime's `ComputeProbit`: `√2 · erfinv(2x - 1)` with the approximate `ErfInv`.
pub(crate) fn probit(x: f32) -> f32 {
    std::f32::consts::SQRT_2 * erf_inv(2.0 * x - 1.0)
}

/// Winitzki's approximation of the inverse error function (a = 0.147), as onnxruntime
/// computes it, in f32. π is `M_PI` rounded to f32, as in onnxruntime 1.31 (older releases
/// wrote 3.14159, which moves probits by up to 1e-4: checked against 1.31.1).
fn erf_inv(x: f32) -> f32 {
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    let ln = ((1.0 - x) * (1.0 + x)).ln();
    let v = 2.0 / (std::f32::consts::PI * 0.147) + 0.5 * ln;
    let v2 = 1.0 / 0.147 * ln;
    sign * (-v + (v * v - v2).sqrt()).sqrt()
}

fn softmax(scores: &mut [f32]) {
    let max = scores.iter().copied().fold(-f32::MAX, f32::max);
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    scores.iter_mut().for_each(|s| *s /= sum);
}

fn softmax_zero(scores: &mut [f32]) {
    let max = scores.iter().copied().fold(-f32::MAX, f32::max);
    let exp_neg_max = (-max).exp();
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        if s.abs() > 1e-7 {
            *s = (*s - max).exp();
            sum += *s;
        } else {
            *s *= exp_neg_max;
        }
    }
    scores.iter_mut().for_each(|s| *s /= sum);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_score_becomes_two_as_onnxruntime_writes_them() {
        // As onnxruntime 1.31 writes them (its tree classifier, for each rule).
        let cases = [
            (SecondClass::Complement, PostTransform::None, [0.75, 0.25]),
            (
                SecondClass::Complement,
                PostTransform::Softmax,
                [0.75, 0.25],
            ),
            (
                SecondClass::Complement,
                PostTransform::Logistic,
                [logistic(-0.25), logistic(0.25)],
            ),
            (SecondClass::Positive, PostTransform::None, [-0.25, 0.25]),
            (SecondClass::Negative, PostTransform::None, [-0.25, 0.25]),
            (
                SecondClass::Negative,
                PostTransform::SoftmaxZero,
                [-0.25, 0.25],
            ),
            (
                SecondClass::Positive,
                PostTransform::Logistic,
                [logistic(-0.25), logistic(0.25)],
            ),
            (
                SecondClass::Negative,
                PostTransform::Logistic,
                [logistic(-0.25), logistic(0.25)],
            ),
        ];
        for (second, transform, want) in cases {
            let mut scores = vec![0.25];
            write_scores(&mut scores, transform, second);
            assert_eq!(scores, want, "{second:?} {transform:?}");
        }
        let mut scores = vec![0.5];
        write_scores(&mut scores, PostTransform::Probit, SecondClass::Complement);
        assert_eq!(scores.len(), 1);
        assert!(scores[0].abs() < 1e-6);
    }

    #[test]
    fn transforms_of_several_scores() {
        let mut s = [1.0f32, 2.0, 3.0];
        PostTransform::Softmax.apply(&mut s);
        assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((s[2] - 0.665_240_94).abs() < 1e-6);

        let mut s = [0.0f32, 2.0];
        PostTransform::SoftmaxZero.apply(&mut s);
        assert_eq!(s[0], 0.0);
        assert!((s[1] - 1.0).abs() < 1e-6);

        assert!((logistic(-2.0) - 0.119_202_92).abs() < 1e-7);
        assert_eq!(logistic(-2.0) + logistic(2.0), 1.0);
        // erfinv(0.5) ≈ 0.476936: the approximation is within 2e-3 of it.
        assert!((probit(0.75) / std::f32::consts::SQRT_2 - 0.476_936).abs() < 2e-3);
    }

    #[test]
    fn unknown_transforms_are_named() {
        let e = PostTransform::parse(Some("TANH")).unwrap_err().to_string();
        assert!(e.contains("\"TANH\""), "{e}");
        assert_eq!(PostTransform::parse(None).unwrap(), PostTransform::None);
    }
}
