//! A request's inputs as the runtime takes them: one tensor per model input, in the model's
//! order, sharing the batch as their first dimension. The protocols' decoders produce them.

pub use crate::engine::TensorList;

/// A request's inputs, in the model's input order.
#[derive(Debug)]
pub struct Inputs {
    /// One tensor per model input.
    pub tensors: TensorList,
    /// The batch size: the inputs' shared first dimension.
    pub rows: usize,
}

impl Inputs {
    /// Inputs whose batch size is the first input's first dimension.
    pub fn new(tensors: TensorList) -> Inputs {
        let rows = tensors
            .first()
            .and_then(|t| t.shape().first().copied())
            .unwrap_or(1);
        Inputs { tensors, rows }
    }

    /// True when both can be concatenated along the first dimension: same types and the
    /// same dimensions after the first.
    pub(crate) fn stacks_with(&self, other: &Inputs) -> bool {
        self.tensors.len() == other.tensors.len()
            && self.tensors.iter().zip(&other.tensors).all(|(a, b)| {
                a.datatype() == b.datatype()
                    && !a.shape().is_empty()
                    && a.shape().len() == b.shape().len()
                    && a.shape()[1..] == b.shape()[1..]
            })
    }
}
