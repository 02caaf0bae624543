//! The kernel function of an SVM, and the vectors it compares each input row with.
//!
//! onnxruntime computes the kernel of a whole batch against all the vectors at once: a
//! plain scalar loop for RBF, a GEMM then an element-wise function for the others
//! (`batched_kernel_dot` in svmclassifier.h). Here the vectors are stored feature-major
//! (`[F, V]`, the transpose of the attribute's layout), so that the kernel row of one input
//! row is built by sweeping the features once, each step a contiguous loop over all the
//! vectors that the compiler vectorizes. Each vector's sum still adds its features in
//! order, one after the other, exactly as onnxruntime's RBF loop does, so RBF kernels match
//! onnxruntime's to the bit; dot products differ from its GEMM only in the order of
//! rounding.

use super::Attrs;
use tract_onnx::prelude::*;

/// The kernel `K(x, v)`, from `kernel_type` and `kernel_params` = [γ, coef0, degree].
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum KernelFunction {
    /// `x·v`.
    Linear,
    /// `(γ x·v + coef0)^degree`.
    Poly { gamma: f32, coef0: f32, degree: f32 },
    /// `exp(-γ |x - v|²)`.
    Rbf { gamma: f32 },
    /// `tanh(γ x·v + coef0)`, with onnxruntime's approximation of tanh.
    Sigmoid { gamma: f32, coef0: f32 },
}

impl KernelFunction {
    /// Parses `kernel_type` (LINEAR when absent) and `kernel_params`.
    ///
    /// onnxruntime requires `kernel_params` (its kernel fails without it); an empty list
    /// leaves γ, coef0 and degree at 0. It reads three values from any non-empty list, past
    /// the end of a shorter one: here a list that is neither empty nor of three is refused.
    /// It takes any unknown `kernel_type` for SIGMOID: here that is refused too.
    pub(super) fn parse(attrs: &Attrs) -> TractResult<KernelFunction> {
        let params = attrs.required_floats("kernel_params")?;
        let (gamma, coef0, degree) = match *params {
            [] => (0.0, 0.0, 0.0),
            [gamma, coef0, degree] => (gamma, coef0, degree),
            _ => {
                return attrs.refuse(
                    "kernel_params",
                    "3 values [gamma, coef0, degree]",
                    params.len(),
                );
            }
        };
        Ok(match attrs.string("kernel_type")?.unwrap_or("LINEAR") {
            "LINEAR" => KernelFunction::Linear,
            "POLY" => KernelFunction::Poly {
                gamma,
                coef0,
                degree,
            },
            "RBF" => KernelFunction::Rbf { gamma },
            "SIGMOID" => KernelFunction::Sigmoid { gamma, coef0 },
            other => {
                return attrs.refuse(
                    "kernel_type",
                    "LINEAR, POLY, RBF or SIGMOID",
                    format!("\"{other}\""),
                );
            }
        })
    }
}

/// A set of vectors of the same length, stored feature-major for [`Vectors::kernel_row`].
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Vectors {
    count: usize,
    features: usize,
    /// `by_feature[f * count + v]` is feature `f` of vector `v`.
    by_feature: Vec<f32>,
}

impl Vectors {
    /// The vectors of a row-major `[count, features]` list (`rows.len()` is a multiple of
    /// `count`, checked by the caller).
    pub(super) fn from_rows(rows: &[f32], count: usize) -> Vectors {
        let features = rows.len() / count;
        let mut by_feature = vec![0.0; rows.len()];
        for (v, row) in rows.chunks_exact(features).enumerate() {
            for (f, &value) in row.iter().enumerate() {
                by_feature[f * count + v] = value;
            }
        }
        Vectors {
            count,
            features,
            by_feature,
        }
    }

    /// How many vectors there are.
    pub(super) fn count(&self) -> usize {
        self.count
    }

    /// The length of each vector, which is the width of an input row.
    pub(super) fn features(&self) -> usize {
        self.features
    }

    /// `out[v] = K(x, vector v)` for every vector; `x` has [`Vectors::features`] values and
    /// `out` [`Vectors::count`].
    pub(super) fn kernel_row(&self, kernel: KernelFunction, x: &[f32], out: &mut [f32]) {
        match kernel {
            KernelFunction::Rbf { gamma } => {
                self.squared_distances(x, out);
                out.iter_mut().for_each(|d| *d = (-gamma * *d).exp());
            }
            KernelFunction::Linear => self.dots(x, out),
            KernelFunction::Poly {
                gamma,
                coef0,
                degree,
            } => {
                self.dots(x, out);
                out.iter_mut()
                    .for_each(|d| *d = power(gamma * *d + coef0, degree));
            }
            KernelFunction::Sigmoid { gamma, coef0 } => {
                self.dots(x, out);
                out.iter_mut().for_each(|d| *d = tanh(gamma * *d + coef0));
            }
        }
    }

    fn dots(&self, x: &[f32], out: &mut [f32]) {
        out.fill(0.0);
        for (&xf, column) in x.iter().zip(self.by_feature.chunks_exact(self.count)) {
            for (o, &v) in out.iter_mut().zip(column) {
                *o += xf * v;
            }
        }
    }

    fn squared_distances(&self, x: &[f32], out: &mut [f32]) {
        out.fill(0.0);
        for (&xf, column) in x.iter().zip(self.by_feature.chunks_exact(self.count)) {
            for (o, &v) in out.iter_mut().zip(column) {
                let d = xf - v;
                *o += d * d;
            }
        }
    }
}

/// `base^degree` as onnxruntime computes it: squares and cubes by multiplication (Eigen's
/// `square`, `cube`), other degrees by `pow`.
fn power(base: f32, degree: f32) -> f32 {
    if degree == 2.0 {
        base * base
    } else if degree == 3.0 {
        base * base * base
    } else {
        base.powf(degree)
    }
}

/// onnxruntime's `MlasComputeTanh`, not the exact tanh: Eigen's rational approximation,
/// the input clamped to [-9, 9] (NaN stays NaN), a degree-13 odd polynomial over a degree-6
/// even one, computed without fused multiply-adds as MLAS's portable kernel does (its FMA
/// kernels differ from it by an ulp at most).
fn tanh(x: f32) -> f32 {
    const ALPHA: [f32; 7] = [
        -2.760_768_4e-16,
        2.000_188e-13,
        -8.604_672e-11,
        5.122_297_3e-8,
        1.485_722_35e-5,
        6.372_619_5e-4,
        4.893_524_6e-3,
    ];
    const BETA: [f32; 4] = [1.198_258_4e-6, 1.185_347_1e-4, 2.268_434_7e-3, 4.893_525e-3];
    let x = if x < -9.0 { -9.0 } else { x };
    let x = if x > 9.0 { 9.0 } else { x };
    let x2 = x * x;
    let p = ALPHA[1..].iter().fold(ALPHA[0], |p, &a| p * x2 + a) * x;
    let q = BETA[1..].iter().fold(BETA[0], |q, &b| q * x2 + b);
    p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two vectors of three features, row-major.
    fn two_vectors() -> Vectors {
        Vectors::from_rows(&[1.0, 2.0, 3.0, -1.0, 0.5, 0.0], 2)
    }

    fn kernel_row(kernel: KernelFunction, x: &[f32]) -> Vec<f32> {
        let vectors = two_vectors();
        let mut out = vec![f32::NAN; vectors.count()];
        vectors.kernel_row(kernel, x, &mut out);
        out
    }

    #[test]
    fn vectors_are_stored_feature_major() {
        let v = two_vectors();
        assert_eq!((v.count(), v.features()), (2, 3));
        assert_eq!(v.by_feature, [1.0, -1.0, 2.0, 0.5, 3.0, 0.0]);
    }

    #[test]
    fn linear_kernel_is_the_dot_product() {
        // [1,2,3]·[2,1,1] = 7; [-1,0.5,0]·[2,1,1] = -1.5
        assert_eq!(
            kernel_row(KernelFunction::Linear, &[2.0, 1.0, 1.0]),
            [7.0, -1.5]
        );
    }

    #[test]
    fn poly_kernel_raises_the_scaled_shifted_dot_product() {
        let cubic = KernelFunction::Poly {
            gamma: 0.5,
            coef0: 1.0,
            degree: 3.0,
        };
        // (0.5·7 + 1)³ = 91.125; (0.5·-1.5 + 1)³ = 0.015625
        assert_eq!(kernel_row(cubic, &[2.0, 1.0, 1.0]), [91.125, 0.015625]);
        let fractional = KernelFunction::Poly {
            gamma: 1.0,
            coef0: 2.0,
            degree: 0.5,
        };
        // √(7 + 2) = 3; √(-1.5 + 2) = √0.5
        assert_eq!(
            kernel_row(fractional, &[2.0, 1.0, 1.0]),
            [3.0, 0.5f32.sqrt()]
        );
    }

    #[test]
    fn rbf_kernel_decays_with_the_squared_distance() {
        let rbf = KernelFunction::Rbf { gamma: 0.25 };
        // |[1,2,3]-[1,2,1]|² = 4; |[-1,0.5,0]-[1,2,1]|² = 4 + 2.25 + 1 = 7.25
        let row = kernel_row(rbf, &[1.0, 2.0, 1.0]);
        assert_eq!(row, [(-1.0f32).exp(), (-0.25f32 * 7.25).exp()]);
    }

    #[test]
    fn sigmoid_kernel_uses_onnxruntimes_tanh_approximation() {
        let sigmoid = KernelFunction::Sigmoid {
            gamma: 0.1,
            coef0: -0.2,
        };
        let row = kernel_row(sigmoid, &[2.0, 1.0, 1.0]);
        assert_eq!(row, [tanh(0.1 * 7.0 - 0.2), tanh(0.1 * -1.5 - 0.2)]);
        assert!((row[0] - 0.5f32.tanh()).abs() < 1e-6, "{row:?}");
        assert!((row[1] - (-0.35f32).tanh()).abs() < 1e-6, "{row:?}");
    }

    #[test]
    fn tanh_approximation_saturates_and_keeps_nan() {
        assert!((tanh(20.0) - 1.0).abs() < 1e-6);
        assert_eq!(tanh(20.0), tanh(9.0));
        assert_eq!(tanh(-30.0), -tanh(9.0));
        assert_eq!(tanh(0.0), 0.0);
        assert!(tanh(f32::NAN).is_nan());
        for x in [-3.0f32, -0.7, 0.01, 0.4, 1.3, 5.0] {
            assert!((tanh(x) - x.tanh()).abs() < 2e-7, "tanh({x})");
        }
    }
}
