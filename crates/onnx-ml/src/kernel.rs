//! One tract operator for every ONNX-ML kernel of this crate.
//!
//! Each operator is written once, as a [`Kernel`]: its inference rules (what the ONNX parser
//! needs to type the graph), its typed output facts (what optimization needs) and its
//! evaluation over whole tensors (every row of a batch in one call). [`MlOp`] turns a kernel
//! into what tract wants: an [`Expansion`] for the inference model, which wires itself as a
//! [`TypedOp`] into the typed one, with no other op around it.
//!
//! A kernel's parameters can be large (a forest of a thousand trees); the op holds them
//! behind an `Arc`, so the copies tract makes while optimizing share them. Two ops are equal
//! when they share their parameters: tract only uses equality to merge identical nodes, and
//! comparing a forest float by float would cost more than it could save.

use std::fmt;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

/// An ONNX-ML operator's behaviour, independent of tract's op traits.
pub(crate) trait Kernel: fmt::Debug + Send + Sync + 'static {
    /// The operator's ONNX name (`op_type`).
    fn name(&self) -> &'static str;

    /// How many outputs the node has.
    fn n_outputs(&self) -> usize {
        1
    }

    /// The inference rules: output types and shapes from the inputs', as far as known.
    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult;

    /// The typed output facts from the typed input facts.
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>>;

    /// Evaluates the node over whole tensors.
    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>>;
}

/// A [`Kernel`] as a tract operator, both before typing (an expansion) and after (a typed
/// op).
#[derive(Debug)]
pub(crate) struct MlOp<K>(pub(crate) Arc<K>);

impl<K> MlOp<K> {
    /// The op of a kernel.
    pub(crate) fn new(kernel: K) -> MlOp<K> {
        MlOp(Arc::new(kernel))
    }
}

impl<K> Clone for MlOp<K> {
    fn clone(&self) -> Self {
        MlOp(self.0.clone())
    }
}

impl<K> PartialEq for MlOp<K> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<K> Eq for MlOp<K> {}

/// The boxed inference op the ONNX parser registry wants.
pub(crate) fn inference_op<K: Kernel>(kernel: K) -> Box<dyn InferenceOp> {
    expand(MlOp::new(kernel))
}

/// What an ONNX parser answers: the op, and no extra outputs.
pub(crate) type Parsed = TractResult<(Box<dyn InferenceOp>, Vec<String>)>;

/// A parser's answer for a node read into `kernel`.
pub(crate) fn parsed<K: Kernel>(kernel: K) -> Parsed {
    Ok((inference_op(kernel), vec![]))
}

/// A tensor of `shape` from its elements in row-major order.
pub(crate) fn tensor_of<T: Datum>(shape: &[usize], elements: Vec<T>) -> TractResult<Tensor> {
    Ok(tract_ndarray::ArrayD::from_shape_vec(shape, elements)?.into_tensor())
}

impl<K: Kernel> Expansion for MlOp<K> {
    fn name(&self) -> StaticName {
        self.0.name().into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(self.0.n_outputs())
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_output_arity(outputs, self.0.n_outputs())?;
        self.0.rules(s, inputs, outputs)
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

impl<K: Kernel> Op for MlOp<K> {
    fn name(&self) -> StaticName {
        self.0.name().into()
    }

    op_as_typed_op!();
}

impl<K: Kernel> EvalOp for MlOp<K> {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        self.0.eval(inputs)
    }
}

impl<K: Kernel> TypedOp for MlOp<K> {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.0.output_facts(inputs)
    }

    as_op!();
}
