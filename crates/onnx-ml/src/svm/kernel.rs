//! The kernel function of an SVM, and the vectors it compares each input row with.
//!
//! onnxruntime computes the kernel of a whole batch against all the vectors at once
//! (`batched_kernel_dot` in svmclassifier.h): a plain scalar loop for RBF; for the others
//! its GEMM (MLAS's SGEMM), `C = α·X·Vᵀ + C` with α = γ and `C` filled with coef0 (α = 1
//! and no `C` for LINEAR), then an element-wise function: Eigen's square, cube or `pow` for
//! POLY, `MlasComputeTanh` for SIGMOID. This reproduces them to the bit (checked against
//! onnxruntime 1.31.1 on every SVM of the corpus), but for the rare ties of the emulated
//! fused multiply-add ([`fused`]) and for POLY degrees other than 2 and 3, where Eigen's
//! vectorized `pow` and `powf` differ by an ulp in a quarter to a half of the values:
//! - RBF: each vector's squared distance adds its features in order, in float, without
//!   fused multiply-adds, then `exp(-γ d)`;
//! - the dot products, in MLAS's order: the features are taken in blocks of MLAS's K stride
//!   ([`crate::mlas::k_stride`]); each block's sum starts from 0 and adds one feature after the
//!   other by fused multiply-adds (the x86 SGEMM kernels' `vfmadd`), and is then folded into
//!   the output as `fma(sum, α, C)`, except the first block when there is no `C` (LINEAR,
//!   or coef0 = 0), which writes `sum·α`. For one row, MLAS may take another kernel (when
//!   α = 1): the batch's order is kept here for every batch size;
//! - SIGMOID's tanh with fused multiply-adds too ([`tanh`]).
//!
//! Skipping the fused multiply-adds moves kernel values by an ulp or so, which cancellation
//! in the decision sums turns into relative errors of 1e-5 to 7e-5 on scikit-learn's models
//! (the SIGMOID SVR, the LINEAR SVC's probabilities, the POLY SVC's scores of the corpus).
//!
//! The vectors are stored feature-major (`[F, V]`, the transpose of the attribute's layout),
//! so that the kernel row of one input row is built by sweeping the features once, each
//! step a contiguous loop over all the vectors that the compiler vectorizes.

use super::Attrs;
use crate::mlas;
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
    /// The GEMM's α and C for the dot-product kernels: `x·v` is computed as `α·x·v + C`.
    fn scale_and_shift(self) -> (f32, f32) {
        match self {
            KernelFunction::Poly { gamma, coef0, .. }
            | KernelFunction::Sigmoid { gamma, coef0 } => (gamma, coef0),
            KernelFunction::Linear | KernelFunction::Rbf { .. } => (1.0, 0.0),
        }
    }
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

/// A set of vectors of the same length, with the kernel they are compared through, stored
/// feature-major for [`Vectors::kernel_row`].
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Vectors {
    kernel: KernelFunction,
    count: usize,
    features: usize,
    /// How many features each block of a dot product sums (MLAS's K stride for this shape).
    block: usize,
    columns: Columns,
}

/// `[f * count + v]` is feature `f` of vector `v`.
#[derive(Clone, Debug, PartialEq)]
enum Columns {
    /// For RBF, whose sums are in float.
    Narrow(Vec<f32>),
    /// For the dot products, as [`fused`] takes them: widened once to double where the
    /// fused multiply-adds are emulated.
    Wide(Vec<mlas::fused::Wide>),
}

impl Vectors {
    /// The vectors of a row-major `[count, features]` list (`rows.len()` is a multiple of
    /// `count`, checked by the caller), compared through `kernel`.
    pub(super) fn from_rows(rows: &[f32], count: usize, kernel: KernelFunction) -> Vectors {
        let features = rows.len() / count;
        let by_feature = (0..features).flat_map(|f| rows.iter().skip(f).step_by(features).copied());
        let columns = match kernel {
            KernelFunction::Rbf { .. } => Columns::Narrow(by_feature.collect()),
            _ => Columns::Wide(by_feature.map(mlas::fused::widen).collect()),
        };
        Vectors {
            kernel,
            count,
            features,
            block: mlas::k_stride(count, features),
            columns,
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
    /// `out` [`Vectors::count`]. `scratch` is reused between calls.
    pub(super) fn kernel_row(&self, x: &[f32], out: &mut [f32], scratch: &mut Vec<f32>) {
        match (self.kernel, &self.columns) {
            (KernelFunction::Rbf { gamma }, Columns::Narrow(columns)) => {
                self.squared_distances(columns, x, out);
                out.iter_mut().for_each(|d| *d = (-gamma * *d).exp());
            }
            (kernel, Columns::Wide(columns)) => {
                let (alpha, c) = kernel.scale_and_shift();
                self.dots(columns, x, alpha, c, out, scratch);
                match kernel {
                    KernelFunction::Poly { degree, .. } => {
                        out.iter_mut().for_each(|d| *d = power(*d, degree));
                    }
                    KernelFunction::Sigmoid { .. } => out.iter_mut().for_each(|d| *d = tanh(*d)),
                    KernelFunction::Linear | KernelFunction::Rbf { .. } => {}
                }
            }
            (_, Columns::Narrow(_)) => unreachable!("only RBF vectors are kept in float"),
        }
    }

    /// `out[v] = x·v + bias` as onnxruntime's GEMM computes it with the bias as its `C`:
    /// for LINEAR weight rows (SVMs without support vectors).
    pub(super) fn biased_dots(
        &self,
        x: &[f32],
        bias: f32,
        out: &mut [f32],
        scratch: &mut Vec<f32>,
    ) {
        match &self.columns {
            Columns::Wide(columns) => self.dots(columns, x, 1.0, bias, out, scratch),
            Columns::Narrow(_) => unreachable!("weight rows are compared through LINEAR"),
        }
    }

    /// `out = α·x·Vᵀ + C`, C being `c` broadcast, or nothing when `c` is 0 (onnxruntime
    /// passes no `C` then), in MLAS's order: see the module's documentation.
    fn dots(
        &self,
        columns: &[mlas::fused::Wide],
        x: &[f32],
        alpha: f32,
        c: f32,
        out: &mut [f32],
        acc: &mut Vec<f32>,
    ) {
        let has_c = c != 0.0;
        if self.features <= self.block {
            // One block (the usual case): summed in place.
            sum_block(columns, x, out);
            if has_c {
                out.iter_mut().for_each(|o| *o = scale_add(*o, alpha, c));
            } else if alpha != 1.0 {
                out.iter_mut().for_each(|o| *o *= alpha);
            }
            return;
        }
        out.fill(c);
        acc.resize(self.count, 0.0);
        let blocks = x
            .chunks(self.block)
            .zip(columns.chunks(self.block * self.count));
        for (b, (xs, columns)) in blocks.enumerate() {
            sum_block(columns, xs, acc);
            if b == 0 && !has_c {
                out.iter_mut()
                    .zip(acc.iter())
                    .for_each(|(o, a)| *o = a * alpha);
            } else {
                out.iter_mut()
                    .zip(acc.iter())
                    .for_each(|(o, &a)| *o = scale_add(a, alpha, *o));
            }
        }
    }

    fn squared_distances(&self, columns: &[f32], x: &[f32], out: &mut [f32]) {
        out.fill(0.0);
        for (&xf, column) in x.iter().zip(columns.chunks_exact(self.count)) {
            for (o, &v) in out.iter_mut().zip(column) {
                let d = xf - v;
                *o += d * d;
            }
        }
    }
}

/// `acc[v] = Σ_f x[f]·columns[f][v]`, from 0, one feature after the other, each step a
/// fused multiply-add, in a loop over the vectors that the compiler vectorizes.
fn sum_block(columns: &[mlas::fused::Wide], x: &[f32], acc: &mut [f32]) {
    acc.fill(0.0);
    for (&xf, column) in x.iter().zip(columns.chunks_exact(acc.len())) {
        let xf = mlas::fused::widen(xf);
        for (a, &v) in acc.iter_mut().zip(column) {
            *a = mlas::fused::multiply_add(xf, v, *a);
        }
    }
}

/// `fma(sum, α, c)`: a plain float addition when α is 1, as exact.
fn scale_add(sum: f32, alpha: f32, c: f32) -> f32 {
    if alpha == 1.0 {
        sum + c
    } else {
        mlas::fused_multiply_add(sum, alpha, c)
    }
}

/// `base^degree` as onnxruntime computes it: squares and cubes by multiplication (Eigen's
/// `square`, `cube`: checked to the bit), other degrees by `pow`, where Eigen's vectorized
/// `pow` and this one differ by an ulp in a quarter to a half of the values (degrees 0.5,
/// 1.5 and 4 against onnxruntime 1.31.1).
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
/// even one, each Horner step a fused multiply-add as in MLAS's x86 kernels (checked
/// against onnxruntime 1.31.1's Tanh on 500 000 inputs: all equal; without fused steps
/// one in five differs by an ulp).
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
    let p = ALPHA[1..]
        .iter()
        .fold(ALPHA[0], |p, &a| mlas::fused_multiply_add(p, x2, a))
        * x;
    let q = BETA[1..]
        .iter()
        .fold(BETA[0], |q, &b| mlas::fused_multiply_add(q, x2, b));
    p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two vectors of three features, row-major.
    const TWO_VECTORS: [f32; 6] = [1.0, 2.0, 3.0, -1.0, 0.5, 0.0];

    fn kernel_row_of(rows: &[f32], count: usize, kernel: KernelFunction, x: &[f32]) -> Vec<f32> {
        let vectors = Vectors::from_rows(rows, count, kernel);
        let mut out = vec![f32::NAN; vectors.count()];
        vectors.kernel_row(x, &mut out, &mut Vec::new());
        out
    }

    fn kernel_row(kernel: KernelFunction, x: &[f32]) -> Vec<f32> {
        kernel_row_of(&TWO_VECTORS, 2, kernel, x)
    }

    #[test]
    fn vectors_are_stored_feature_major_in_float_for_rbf_only() {
        let v = Vectors::from_rows(&TWO_VECTORS, 2, KernelFunction::Rbf { gamma: 1.0 });
        assert_eq!((v.count(), v.features()), (2, 3));
        assert_eq!(
            v.columns,
            Columns::Narrow(vec![1.0, -1.0, 2.0, 0.5, 3.0, 0.0])
        );
        let v = Vectors::from_rows(&TWO_VECTORS, 2, KernelFunction::Linear);
        assert_eq!(
            v.columns,
            Columns::Wide(vec![1.0, -1.0, 2.0, 0.5, 3.0, 0.0])
        );
    }

    /// 1 + 2⁻¹², whose square 1 + 2⁻¹¹ + 2⁻²⁴ is no float: rounded, its 2⁻²⁴ is lost.
    const A: f32 = 1.0 + 1.0 / 4096.0;
    /// -(1 + 2⁻¹¹): added to A² by a fused multiply-add, leaves 2⁻²⁴; to A² rounded, 0.
    const B: f32 = -(1.0 + 1.0 / 2048.0);
    const TINY: f32 = 1.0 / 16_777_216.0;

    #[test]
    fn dot_products_add_each_feature_by_a_fused_multiply_add() {
        // [1, A]·[B, A] = B + A²: 2⁻²⁴ fused, 0 with the product rounded first.
        assert_eq!(
            kernel_row_of(&[B, A], 1, KernelFunction::Linear, &[1.0, A]),
            [TINY]
        );
        assert_eq!(mlas::fused_multiply_add(A, A, B), TINY);
        assert_eq!(A * A + B, 0.0);
    }

    #[test]
    fn gamma_and_coef0_are_applied_by_a_fused_multiply_add() {
        // γ·(x·v) + coef0 = A·A + B: 2⁻²⁴, raised to the power 1.
        let poly = KernelFunction::Poly {
            gamma: A,
            coef0: B,
            degree: 1.0,
        };
        assert_eq!(kernel_row_of(&[1.0], 1, poly, &[A]), [TINY]);
        // Without coef0 there is no C in onnxruntime's GEMM: the sum is multiplied by γ.
        let poly = KernelFunction::Poly {
            gamma: A,
            coef0: 0.0,
            degree: 1.0,
        };
        assert_eq!(kernel_row_of(&[1.0], 1, poly, &[A]), [A * A]);
    }

    #[test]
    fn long_vectors_are_summed_in_blocks_of_mlas_k_stride() {
        // One vector of 1026 features: its block is 1024 features, summing to 2²⁴; then two
        // of 1. Summed on, each 1 would be lost to rounding; as a second block, their 2 is
        // kept.
        let mut v = vec![16384f32; 1024];
        v.extend([1.0, 1.0]);
        let x = vec![1f32; 1026];
        let want = [16_777_218f32];
        assert_eq!(kernel_row_of(&v, 1, KernelFunction::Linear, &x), want);
        let vectors = Vectors::from_rows(&v, 1, KernelFunction::Linear);
        let mut out = [f32::NAN];
        vectors.biased_dots(&x, 0.0, &mut out, &mut Vec::new());
        assert_eq!(out, want);
        // With a bias, it is the GEMM's C: every block is added to it, 2²⁴ + 4 then + 2.
        vectors.biased_dots(&x, 4.0, &mut out, &mut Vec::new());
        assert_eq!(out, [16_777_222f32]);
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
        let (gamma, coef0) = (0.1f32, -0.2f32);
        assert_eq!(
            row,
            [
                tanh(mlas::fused_multiply_add(7.0, gamma, coef0)),
                tanh(mlas::fused_multiply_add(-1.5, gamma, coef0))
            ]
        );
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

    /// (x, onnxruntime's tanh(x)).
    const TANH_REFERENCE: [(f32, f32); 6] = [
        (-8.611511, -0.9999999),
        (-6.407109, -0.9999946),
        (-5.821859, -0.9999824),
        (-1.2438102, -0.8465388),
        (7.8281465, 0.9999996),
        (7.921175, 0.9999999),
    ];

    #[test]
    fn tanh_approximation_is_onnxruntimes_to_the_bit() {
        // onnxruntime 1.31.1's Tanh (MlasComputeTanh) for these inputs, where Horner steps
        // without fused multiply-adds answer an ulp away.
        for (x, want) in TANH_REFERENCE {
            assert_eq!(tanh(x), want, "tanh({x})");
        }
    }
}
