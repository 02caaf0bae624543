//! SVMRegressor, as onnxruntime's svmregressor.cc computes it: skl2onnx exports `SVR`,
//! `NuSVR` and `LinearSVR`-like models, and `OneClassSVM` (with `one_class`), to it.
//!
//! With `n_supports` > 0, `y = Σ coefficients[v] K(x, v) + rho[0]` over the support vectors;
//! with `n_supports` = 0, `coefficients` are one weight row and `y = x·w + rho[0]`, whatever
//! the kernel. `one_class` turns y into +1 (y > 0) or -1. The output is `[N, 1]` float.
//!
//! Both sums are onnxruntime's GEMMs, reproduced to the bit (see the kernel module): `x·w`
//! with rho[0] as its `C`, and the sum over the support vectors as a second GEMM, `[N, V]`
//! kernel values by the `[1, V]` coefficients with `C` = rho[0]: the vectors in blocks of
//! MLAS's K stride for one output (1024), each block summed from 0 by fused multiply-adds
//! then added to y, which starts at rho[0].
//!
//! onnxruntime ignores `post_transform` here (the specification lists it): it is parsed, so
//! that an unknown value is refused, and not applied. onnxruntime's kernel is registered for
//! float input only, so other input types are refused.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::kernel::{KernelFunction, Vectors};
use super::{Attrs, Rows, batch_of, rules_for_rows};
use crate::kernel::{Kernel, Parsed, parsed};
use crate::mlas::{self, fused_multiply_add};

const OP: &str = "SVMRegressor";

/// onnxruntime's SVMRegressor takes float only.
const INPUT_TYPES: &[DatumType] = &[DatumType::F32];

/// The parser registered for `SVMRegressor`.
pub(crate) fn parse(_ctx: &ParsingContext, node: &NodeProto) -> Parsed {
    parsed(SvmRegressor::parse(&Attrs::new(OP, node))?)
}

#[derive(Debug)]
struct SvmRegressor {
    node: String,
    /// The support vectors with the kernel; in the linear case, the one weight row, with the
    /// LINEAR kernel.
    vectors: Vectors,
    /// One coefficient per support vector; `None` in the linear case.
    coefficients: Option<Vec<f32>>,
    rho: f32,
    one_class: bool,
}

/// How many rows' sums over the support vectors are carried at once: independent chains of
/// fused multiply-adds, so that each does not wait for the one before.
const LANES: usize = 8;

impl SvmRegressor {
    fn parse(attrs: &Attrs) -> TractResult<SvmRegressor> {
        let kernel = KernelFunction::parse(attrs)?;
        attrs.post_transform()?;
        let coefficients = attrs.required_floats("coefficients")?;
        if coefficients.is_empty() {
            attrs.refuse("coefficients", "at least one value", "none")?;
        }
        // onnxruntime reads rho[0] only.
        let rho = match *attrs.required_floats("rho")? {
            [] => attrs.refuse("rho", "at least one value", "none")?,
            [first, ..] => first,
        };
        let one_class = attrs.int("one_class")?.unwrap_or(0) != 0;
        let supports = match attrs.int("n_supports")? {
            Some(n) => {
                usize::try_from(n).or_else(|_| attrs.refuse("n_supports", "a count >= 0", n))?
            }
            None => attrs.refuse("n_supports", "a count (onnxruntime requires it)", "none")?,
        };
        let node = attrs.node_name();
        if supports == 0 {
            return Ok(SvmRegressor {
                node,
                vectors: Vectors::from_rows(&coefficients, 1, KernelFunction::Linear),
                coefficients: None,
                rho,
                one_class,
            });
        }
        let rows = attrs.floats("support_vectors")?.unwrap_or_default();
        if rows.is_empty() || !rows.len().is_multiple_of(supports) {
            attrs.refuse(
                "support_vectors",
                format!("a non-zero multiple of n_supports = {supports} values"),
                rows.len(),
            )?;
        }
        attrs.expect_len(
            "coefficients",
            &coefficients,
            supports,
            "one per support vector",
        )?;
        Ok(SvmRegressor {
            node,
            vectors: Vectors::from_rows(&rows, supports, kernel),
            coefficients: Some(coefficients),
            rho,
            one_class,
        })
    }

    /// `ys[r]` for each row of `x`, before `one_class`.
    fn predict(&self, x: &[f32], ys: &mut [f32]) {
        let features = self.vectors.features();
        let mut scratch = Vec::new();
        let Some(coefficients) = &self.coefficients else {
            for (x, y) in x.chunks_exact(features).zip(ys.iter_mut()) {
                let y = std::slice::from_mut(y);
                self.vectors.biased_dots(x, self.rho, y, &mut scratch);
            }
            return;
        };
        let supports = self.vectors.count();
        let block = mlas::k_stride(1, supports);
        let mut kernels = vec![0.0; LANES * supports];
        for (x, ys) in x.chunks(LANES * features).zip(ys.chunks_mut(LANES)) {
            let rows = x
                .chunks_exact(features)
                .zip(kernels.chunks_exact_mut(supports));
            for (x, kernel_row) in rows {
                self.vectors.kernel_row(x, kernel_row, &mut scratch);
            }
            ys.fill(self.rho);
            add_weighted_sums(&kernels, coefficients, block, ys);
        }
    }
}

/// `ys[r] += Σ_v coefficients[v]·kernels[r][v]` for each of the (up to [`LANES`]) rows, as
/// onnxruntime's GEMM with `ys` as its `C`: the vectors in blocks of `block`, each block
/// summed from 0 by fused multiply-adds then added to `ys[r]`. The rows' sums are carried
/// side by side.
fn add_weighted_sums(kernels: &[f32], coefficients: &[f32], block: usize, ys: &mut [f32]) {
    let supports = coefficients.len();
    for (b, coefficients) in coefficients.chunks(block).enumerate() {
        let mut sums = [0.0f32; LANES];
        for (v, &c) in (b * block..).zip(coefficients) {
            let kernel_values = kernels[v..].iter().step_by(supports);
            for (sum, &k) in sums.iter_mut().zip(kernel_values).take(ys.len()) {
                *sum = fused_multiply_add(k, c, *sum);
            }
        }
        ys.iter_mut().zip(sums).for_each(|(y, sum)| *y += sum);
    }
}

impl Kernel for SvmRegressor {
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
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].rank, 2)?;
        s.equals(&outputs[0].shape[1], 1.to_dim())?;
        rules_for_rows(
            s,
            OP,
            INPUT_TYPES,
            self.vectors.features(),
            &inputs[0],
            outputs,
        )
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n = batch_of(OP, INPUT_TYPES, inputs[0], self.vectors.features())?;
        Ok(tvec!(f32::fact([n, 1.to_dim()])))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let rows = Rows::of(OP, &self.node, &input, self.vectors.features())?;
        let mut ys = vec![0.0; rows.count];
        self.predict(rows.features()?, &mut ys);
        if self.one_class {
            ys.iter_mut()
                .for_each(|y| *y = if *y > 0.0 { 1.0 } else { -1.0 });
        }
        let ys = tract_ndarray::Array2::from_shape_vec((rows.count, 1), ys)?;
        Ok(tvec!(ys.into_tvalue()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::svm::test_support::{matrix, run, typed};
    use crate::testing::{Node, assert_close, rows};
    use tract_onnx::pb::tensor_proto::DataType;

    /// Support vectors [0, 0] and [1, 1], coefficients [1, -2], rho 0.5, RBF with γ = 0.5.
    fn svr() -> Node {
        Node::new(OP, "svm")
            .int("n_supports", 2)
            .floats("support_vectors", &[0.0, 0.0, 1.0, 1.0])
            .floats("coefficients", &[1.0, -2.0])
            .floats("rho", &[0.5])
            .string("kernel_type", "RBF")
            .floats("kernel_params", &[0.5, 0.0, 0.0])
    }

    fn regressor(node: &Node) -> TractResult<SvmRegressor> {
        SvmRegressor::parse(&Attrs::new(OP, &node.0))
    }

    fn eval(node: &Node, x: Tensor) -> Vec<Vec<f32>> {
        rows(
            &regressor(node)
                .unwrap()
                .eval(tvec!(x.into_tvalue()))
                .unwrap()[0],
        )
    }

    #[test]
    fn support_vectors_weigh_their_kernel_values() {
        // x = [1, 0]: both vectors at squared distance 1, y = (1 - 2) e^{-0.5} + 0.5.
        // x = [0, 0]: y = 1 - 2 e^{-1} + 0.5.
        let y = eval(&svr(), matrix(&[[1.0, 0.0], [0.0, 0.0]]));
        let e = |d: f32| (-0.5 * d).exp();
        assert_close(&y, &[&[0.5 - e(1.0)], &[1.5 - 2.0 * e(2.0)]], 1e-6);
    }

    #[test]
    fn poly_kernel_regression() {
        // (0.5 x·v + 1)²: x = [1, 2] gives K = [1, 2.5²] and y = 1 - 2 × 6.25 + 0.5.
        let poly = svr()
            .string("kernel_type", "POLY")
            .floats("kernel_params", &[0.5, 1.0, 2.0]);
        assert_close(&eval(&poly, matrix(&[[1.0, 2.0]])), &[&[-11.0]], 1e-5);
    }

    /// 1 + 2⁻¹² and -(1 + 2⁻¹¹): A² + B is 2⁻²⁴ by a fused multiply-add, 0 otherwise.
    const A: f32 = 1.0 + 1.0 / 4096.0;
    const B: f32 = -(1.0 + 1.0 / 2048.0);

    #[test]
    fn support_vector_sums_are_fused_multiply_adds_as_onnxruntimes_gemm() {
        // LINEAR, vectors [1, 0] and [0, 1], x = [1, A]: K = [1, A]; coefficients [B, A]:
        // y = fma(A, A, B·1) + rho = 2⁻²⁴ + 0.
        let node = Node::new(OP, "svm")
            .int("n_supports", 2)
            .floats("support_vectors", &[1.0, 0.0, 0.0, 1.0])
            .floats("coefficients", &[B, A])
            .floats("rho", &[0.0])
            .floats("kernel_params", &[]);
        assert_eq!(
            eval(&node, matrix(&[[1.0, A], [1.0, A]])),
            [[1.0 / 16_777_216.0], [1.0 / 16_777_216.0]]
        );
    }

    #[test]
    fn support_vector_sums_are_blocked_as_onnxruntimes_gemm() {
        // 1026 vectors [1], x = [1]: every K is 1. Coefficients 1024 × 16384 (one block of
        // MLAS's K stride, 2²⁴), then 1 and 1: summed on, each 1 would be lost; as a second
        // block their 2 is kept. rho 4 is the GEMM's C, added to first.
        let mut coefficients = vec![16384f32; 1024];
        coefficients.extend([1.0, 1.0]);
        let node = Node::new(OP, "svm")
            .int("n_supports", 1026)
            .floats("support_vectors", &[1.0; 1026])
            .floats("coefficients", &coefficients)
            .floats("rho", &[4.0])
            .floats("kernel_params", &[]);
        let rows = [[1.0]; 11];
        assert_eq!(eval(&node, matrix(&rows)), vec![vec![16_777_222f32]; 11]);
    }

    #[test]
    fn without_support_vectors_coefficients_are_one_weight_row() {
        // The kernel is LINEAR whatever kernel_type says; only rho[0] is read.
        let linear = svr()
            .int("n_supports", 0)
            .floats("coefficients", &[1.0, 2.0])
            .floats("rho", &[3.0, 100.0]);
        assert_close(
            &eval(&linear, matrix(&[[1.0, 1.0], [-2.0, 0.5]])),
            &[&[6.0], &[2.0]],
            0.0,
        );
    }

    #[test]
    fn one_class_answers_plus_or_minus_one() {
        // y = 0.5 - x·[1] with one vector [1] and coefficient -1, LINEAR: 0 is not > 0.
        let one_class = Node::new(OP, "svm")
            .int("n_supports", 1)
            .floats("support_vectors", &[1.0])
            .floats("coefficients", &[-1.0])
            .floats("rho", &[0.5])
            .floats("kernel_params", &[])
            .int("one_class", 1);
        let y = eval(&one_class, matrix(&[[0.0], [0.5], [2.0]]));
        assert_close(&y, &[&[1.0], &[-1.0], &[-1.0]], 0.0);
        let raw = eval(&one_class.int("one_class", 0), matrix(&[[0.0], [2.0]]));
        assert_close(&raw, &[&[0.5], &[-1.5]], 0.0);
    }

    #[test]
    fn post_transform_is_ignored_as_onnxruntime_does() {
        let logistic = svr().string("post_transform", "LOGISTIC");
        let x = matrix(&[[1.0, 0.0]]);
        assert_eq!(eval(&logistic, x.clone()), eval(&svr(), x));
    }

    #[test]
    fn a_lone_row_gives_one_output_row() {
        let y = eval(&svr(), tensor1(&[1f32, 0.0]));
        assert_close(&y, &[&[0.5 - (-0.5f32).exp()]], 1e-6);
    }

    #[test]
    fn a_row_of_the_wrong_width_is_an_error() {
        let op = regressor(&svr()).unwrap();
        let e = op
            .eval(tvec!(matrix(&[[1.0]]).into_tvalue()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("1 features") && e.contains("the model 2"), "{e}");
    }

    #[test]
    fn malformed_attributes_are_refused_at_parse() {
        let cases = [
            (svr().without("n_supports"), "n_supports", "requires"),
            (svr().int("n_supports", -1), "n_supports", "found -1"),
            (svr().int("n_supports", 3), "support_vectors", "found 4"),
            (
                svr().floats("coefficients", &[1.0; 3]),
                "coefficients",
                "2 values",
            ),
            (
                svr().floats("coefficients", &[]),
                "coefficients",
                "at least one",
            ),
            (svr().floats("rho", &[]), "rho", "at least one"),
            (svr().without("kernel_params"), "kernel_params", "requires"),
            (
                svr().string("post_transform", "NOPE"),
                "post_transform",
                "\"NOPE\"",
            ),
        ];
        for (node, attr, detail) in cases {
            let e = regressor(&node).unwrap_err().to_string();
            assert!(
                e.contains("SVMRegressor node \"svm\"") && e.contains(attr) && e.contains(detail),
                "{attr}: {e}"
            );
        }
    }

    #[test]
    fn graph_types_with_a_symbolic_batch_and_runs() {
        let model = typed(&svr().model(DataType::Float, 2, &["variable"])).unwrap();
        let fact = model
            .outlet_fact(model.output_outlets().unwrap()[0])
            .unwrap();
        assert_eq!(format!("{fact:?}"), "N,1,F32");
        let y = run(model, matrix(&[[1.0, 0.0], [0.0, 0.0]])).unwrap();
        assert_eq!(rows(&y[0]).len(), 2);
    }

    #[test]
    fn graph_refuses_double_input_as_onnxruntime_has_no_kernel_for_it() {
        let e = format!(
            "{:?}",
            typed(&svr().model(DataType::Double, 2, &["variable"])).unwrap_err()
        );
        assert!(e.contains("SVMRegressor takes F32 input"), "{e}");
    }
}
