//! A classifier's class labels, which its label output takes its type from: integers or
//! strings. Each operator reads them from its own attributes, by its own rule (onnxruntime's
//! differ: SVMClassifier prefers the strings when both are given, TreeEnsembleClassifier
//! wants exactly one list); what they do with them once read is the same.

use tract_onnx::prelude::*;

/// The class labels.
#[derive(Debug)]
pub enum Labels {
    /// `classlabels_ints` / `classlabels_int64s`.
    Ints(Vec<i64>),
    /// `classlabels_strings`.
    Strings(Vec<String>),
}

impl Labels {
    /// The number of labels.
    #[allow(clippy::len_without_is_empty)] // a classifier has classes
    pub fn len(&self) -> usize {
        match self {
            Labels::Ints(l) => l.len(),
            Labels::Strings(l) => l.len(),
        }
    }

    /// The label output's element type.
    pub fn datum_type(&self) -> DatumType {
        match self {
            Labels::Ints(_) => DatumType::I64,
            Labels::Strings(_) => DatumType::String,
        }
    }

    /// The `[N]` label tensor of the classes picked for each row (indices the caller checked).
    pub(crate) fn tensor(&self, picks: &[usize]) -> Tensor {
        match self {
            Labels::Ints(l) => tensor1(&picks.iter().map(|&c| l[c]).collect::<Vec<_>>()),
            Labels::Strings(l) => tensor1(&picks.iter().map(|&c| l[c].clone()).collect::<Vec<_>>()),
        }
    }
}
