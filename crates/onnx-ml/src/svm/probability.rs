//! Class probabilities from the one-vs-one pair scores, as libsvm computes them and
//! onnxruntime after it (svmclassifier.cc, `multiclass_probability` in ml_common.h):
//! Platt's sigmoid turns each pair's score into the probability that the first class of
//! the pair wins, and pairwise coupling (Wu, Lin and Weng's second method) finds the class
//! probabilities that agree best with all the pairs.
//!
//! Every step is in f32 and in onnxruntime's order, so that the probabilities match its to
//! the float.

use crate::post::logistic;

/// The Platt parameters of each pair (`prob_a`, `prob_b`), one per pair, in the pair order
/// of the scores.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Platt {
    pub(super) a: Vec<f32>,
    pub(super) b: Vec<f32>,
}

/// The bounds onnxruntime clips each pair probability to, so that coupling never sees a
/// certainty.
const CLIP_LOW: f32 = 1e-7;
const CLIP_HIGH: f32 = 1.0 - 1e-7;

/// At most this many sweeps of the coupling's fixed-point iteration.
const MAX_SWEEPS: usize = 100;

/// The scratch space of [`Coupling::probabilities`] for one class count, made once per
/// evaluation and reused for every row.
pub(super) struct Coupling {
    classes: usize,
    /// `r[i * classes + j]`: the probability that class i beats class j.
    r: Vec<f32>,
    /// The coupling's quadratic form `Q`, `classes × classes`.
    q: Vec<f32>,
    /// `Q · p`.
    qp: Vec<f32>,
}

impl Coupling {
    pub(super) fn new(classes: usize) -> Coupling {
        Coupling {
            classes,
            r: vec![0.0; classes * classes],
            q: vec![0.0; classes * classes],
            qp: vec![0.0; classes],
        }
    }

    /// Writes into `p` (one value per class) the probabilities of one row from its pair
    /// scores (one per pair i < j, in the order (0,1), (0,2), …, (1,2), …).
    pub(super) fn probabilities(&mut self, platt: &Platt, scores: &[f32], p: &mut [f32]) {
        self.pair_probabilities(platt, scores);
        self.build_q();
        self.solve(p);
    }

    /// Platt's sigmoid of each pair score, clipped, into `r` (`r[j][i] = 1 - r[i][j]`; the
    /// diagonal stays 0).
    fn pair_probabilities(&mut self, platt: &Platt, scores: &[f32]) {
        let n = self.classes;
        let pairs = (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j)));
        for (k, (i, j)) in pairs.enumerate() {
            let p = 1.0 - logistic(scores[k] * platt.a[k] + platt.b[k]);
            // Comparisons written as onnxruntime's std::max and std::min, so that NaN
            // passes through as it does there.
            let p = if p < CLIP_LOW { CLIP_LOW } else { p };
            let p = if CLIP_HIGH < p { CLIP_HIGH } else { p };
            self.r[i * n + j] = p;
            self.r[j * n + i] = 1.0 - p;
        }
    }

    /// `Q[i][i] = Σ_{j≠i} r[j][i]²`, `Q[i][j] = -r[j][i] r[i][j]`.
    fn build_q(&mut self) {
        let n = self.classes;
        let (r, q) = (&self.r, &mut self.q);
        for i in 0..n {
            q[i * n + i] = 0.0;
            for j in 0..i {
                q[i * n + i] += r[j * n + i] * r[j * n + i];
                q[i * n + j] = q[j * n + i];
            }
            for j in i + 1..n {
                q[i * n + i] += r[j * n + i] * r[j * n + i];
                q[i * n + j] = -r[j * n + i] * r[i * n + j];
            }
        }
    }

    /// The fixed-point iteration from uniform probabilities, until every `(Qp)_i` is within
    /// `0.005 / classes` of `pᵀQp`, or [`MAX_SWEEPS`] sweeps.
    fn solve(&mut self, p: &mut [f32]) {
        let n = self.classes;
        let (q, qp) = (&self.q, &mut self.qp);
        let eps = 0.005 / n as f32;
        p.fill(1.0 / n as f32);
        for _ in 0..MAX_SWEEPS {
            let mut pqp = 0.0f32;
            for i in 0..n {
                qp[i] = 0.0;
                for j in 0..n {
                    qp[i] += q[i * n + j] * p[j];
                }
                pqp += p[i] * qp[i];
            }
            let max_error = qp.iter().fold(0.0f32, |max, &v| {
                let error = (v - pqp).abs();
                if error > max { error } else { max }
            });
            if max_error < eps {
                break;
            }
            for i in 0..n {
                let diff = (-qp[i] + pqp) / q[i * n + i];
                p[i] += diff;
                pqp = (pqp + diff * (diff * q[i * n + i] + 2.0 * qp[i]))
                    / (1.0 + diff)
                    / (1.0 + diff);
                for j in 0..n {
                    qp[j] = (qp[j] + diff * q[i * n + j]) / (1.0 + diff);
                    p[j] /= 1.0 + diff;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probabilities(classes: usize, platt: &Platt, scores: &[f32]) -> Vec<f32> {
        let mut p = vec![f32::NAN; classes];
        Coupling::new(classes).probabilities(platt, scores, &mut p);
        p
    }

    #[test]
    fn two_classes_get_the_platt_probability_of_their_pair() {
        // Platt: 1 - σ(0.5·-2 + 0) = 1 - σ(-1) = σ(1) ≈ 0.7310586 for class 0.
        let platt = Platt {
            a: vec![-2.0],
            b: vec![0.0],
        };
        let p = probabilities(2, &platt, &[0.5]);
        let want = 1.0 - logistic(-1.0);
        // With two classes, coupling reaches r itself within its tolerance (0.0025).
        assert!((p[0] - want).abs() < 2.5e-3, "{p:?}");
        assert!((p[0] + p[1] - 1.0).abs() < 1e-6, "{p:?}");
        assert!(p[0] > p[1]);
    }

    #[test]
    fn pair_probabilities_are_clipped_away_from_certainty() {
        let platt = Platt {
            a: vec![-1.0],
            b: vec![0.0],
        };
        let mut coupling = Coupling::new(2);
        coupling.pair_probabilities(&platt, &[100.0]);
        assert_eq!(coupling.r, [0.0, CLIP_HIGH, 1.0 - CLIP_HIGH, 0.0]);
        coupling.pair_probabilities(&platt, &[-100.0]);
        assert_eq!(coupling.r, [0.0, CLIP_LOW, 1.0 - CLIP_LOW, 0.0]);
    }

    #[test]
    fn consistent_pairs_couple_to_the_probabilities_they_imply() {
        // Classes with probabilities (0.5, 0.3, 0.2): each pair's r_ij = p_i / (p_i + p_j).
        // Platt parameters that give exactly those: a = 0 and 1 - σ(b) = r, so b = ln((1-r)/r).
        let target = [0.5f32, 0.3, 0.2];
        let mut b = vec![];
        for i in 0..3 {
            for j in i + 1..3 {
                let r = target[i] / (target[i] + target[j]);
                b.push(((1.0 - r) / r).ln());
            }
        }
        let platt = Platt { a: vec![0.0; 3], b };
        let p = probabilities(3, &platt, &[0.0; 3]);
        for (got, want) in p.iter().zip(target) {
            assert!((got - want).abs() < 2e-3, "{p:?}");
        }
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{p:?}");
    }

    #[test]
    fn indifferent_pairs_leave_the_classes_uniform() {
        let platt = Platt {
            a: vec![1.0; 6],
            b: vec![0.0; 6],
        };
        // Every pair at ½: uniform p is already the fixed point, no sweep changes it.
        assert_eq!(probabilities(4, &platt, &[0.0; 6]), [0.25; 4]);
    }
}
