//! The summation order of onnxruntime's matrix products (MLAS's SGEMM), which the linear
//! models and the SVM kernels reproduce so that their answers match onnxruntime's to the
//! bit: features are summed in blocks whose length depends on the number of outputs, each
//! block from zero with fused multiply-adds.

/// `a·b + c` rounded once to float, as the FMA instruction computes it (see [`fused`]).
pub(crate) fn fused_multiply_add(a: f32, b: f32, c: f32) -> f32 {
    fused::multiply_add(fused::widen(a), fused::widen(b), c)
}

/// The fused multiply-add `x·v + acc` rounded once to float, `x` and `v` taken widened.
///
/// The baseline x86-64 target has no FMA instruction, and calling one chosen at run time
/// takes unsafe code; `f32::mul_add` there is a call to libm's `fmaf` per element, 7 times
/// slower than this. So unless the crate is compiled with the `fma` target feature, the
/// operation is emulated in double: the product of two floats is exact there, and the sum
/// rounds to double then to float, which differs from a single rounding only when the
/// double lands exactly halfway between two floats (then the float with its last bit even
/// is picked, where the FMA may round the other way). That takes terms of very different
/// magnitudes whose product has few significant bits: in the corpus, only a ±1e30 row of
/// the iris LINEAR SVC, where one pair score in 603 is an ulp off (hidden by its
/// probabilities). The emulation costs speed: against plain float sums, at batch 64, about
/// 2× on the dot products and 7× on SIGMOID's tanh (4× on a SIGMOID SVR as a whole).
/// Compiled with `fma` (`-C target-feature=+fma`, or a `target-cpu` that has it), it is the
/// instruction itself, exact, vectorized and as fast as plain float sums.
#[cfg(not(target_feature = "fma"))]
pub(crate) mod fused {
    /// The dot products' columns: double.
    pub(crate) type Wide = f64;

    pub(crate) fn widen(x: f32) -> Wide {
        f64::from(x)
    }

    #[inline(always)]
    pub(crate) fn multiply_add(x: Wide, v: Wide, acc: f32) -> f32 {
        (x * v + f64::from(acc)) as f32
    }
}

/// The hardware's fused multiply-add: see the other `fused`.
#[cfg(target_feature = "fma")]
pub(crate) mod fused {
    /// The dot products' columns: float.
    pub(crate) type Wide = f32;

    pub(crate) fn widen(x: f32) -> Wide {
        x
    }

    #[inline(always)]
    pub(crate) fn multiply_add(x: Wide, v: Wide, acc: f32) -> f32 {
        x.mul_add(v, acc)
    }
}

/// MLAS's SGEMM K stride (sgemm.cpp) for `n` outputs (vectors) over `k` features: 128
/// features, doubled each time its N stride (128 outputs) halves, down to 16, while half of
/// it still holds all the outputs. (With `n >= k`, MLAS halves it instead while it still
/// covers every feature, which changes no block: it stays 128 when `k` is larger.)
pub(crate) fn k_stride(n: usize, k: usize) -> usize {
    let (mut stride_n, mut stride_k) = (128, 128);
    if n < k {
        while stride_n > 16 && stride_n / 2 >= n {
            stride_n /= 2;
            stride_k *= 2;
        }
    }
    stride_k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlas_k_stride_grows_as_the_outputs_shrink() {
        assert_eq!(k_stride(1, 2000), 1024);
        assert_eq!(k_stride(16, 2000), 1024);
        assert_eq!(k_stride(17, 2000), 512);
        assert_eq!(k_stride(40, 2000), 256);
        assert_eq!(k_stride(100, 2000), 128);
        assert_eq!(k_stride(300, 200), 128);
        assert_eq!(k_stride(300, 30), 128);
    }
}
