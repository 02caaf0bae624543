//! The ONNX-ML operators (domain `ai.onnx.ml`) that scikit-learn's exports use, for tract,
//! answering as onnxruntime does.
//!
//! tract-onnx implements a few of these operators, some of them with answers that differ
//! from onnxruntime's; the others are missing. [`onnx`] is tract's ONNX framework with this
//! crate's operators registered in place of tract's: every model serve loads goes through
//! it. **onnxruntime is the reference**: where the ONNX-ML specification and onnxruntime
//! disagree, these operators match onnxruntime, and a comment says so where it happens.
//!
//! # Layout
//! - `kernel`: the one tract op wrapper every operator here is written against: inference
//!   rules, typed facts and an evaluation over whole tensors (all the rows of a batch at once).
//! - `post`: `post_transform` and the expansion of a lone score to two, shared by the
//!   classifiers and regressors.
//! - one module per operator family: [`zipmap`]; the preprocessing operators; the linear
//!   models; the tree ensembles; the support vector machines.
//!
//! Two standard operators (domain `ai.onnx`) are replaced too: `Cast` (module `cast`), so
//! that a cast of data to INT64 gives int64 as in onnxruntime, not tract's symbolic
//! dimension type, which no ONNX-ML operator takes; and `OneHot` (module `one_hot_std`),
//! because tract's panics on an index out of `[-depth, depth - 1]` (a category Keras'
//! CategoryEncoding never saw, exported by tf2onnx) where onnxruntime answers an all-`off`
//! row.
//!
//! Map-typed inputs (DictVectorizer, CastMap) are not tensors and are refused by name
//! ([`unsupported`]).

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod array_feature_extractor;
mod binarizer;
mod cast;
mod check;
mod feature_vectorizer;
mod imputer;
mod kernel;
mod label_encoder;
mod labels;
mod linear;
mod mlas;
mod normalizer;
mod one_hot;
mod one_hot_std;
mod post;
mod scaler;
mod svm;
#[cfg(test)]
mod testing;
mod tree;
pub mod zipmap;

pub use labels::Labels;
use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;

/// What the ONNX parser calls to turn a node into an operator.
type Parser = fn(&ParsingContext, &NodeProto) -> kernel::Parsed;

/// The ONNX-ML operators this crate provides, with their parsers.
const OPERATORS: &[(&str, Parser)] = &[
    ("ZipMap", zipmap::parse),
    ("Scaler", scaler::parse),
    ("Imputer", imputer::parse),
    ("LinearClassifier", linear::parse_classifier),
    ("LinearRegressor", linear::parse_regressor),
    ("Normalizer", normalizer::parse),
    ("ArrayFeatureExtractor", array_feature_extractor::parse),
    ("OneHotEncoder", one_hot::parse),
    ("LabelEncoder", label_encoder::parse),
    ("FeatureVectorizer", feature_vectorizer::parse),
    ("Binarizer", binarizer::parse),
    ("SVMClassifier", svm::parse_classifier),
    ("SVMRegressor", svm::parse_regressor),
    ("TreeEnsembleClassifier", tree::parse_classifier),
    ("TreeEnsembleRegressor", tree::parse_regressor),
];

/// The standard operators (domain `ai.onnx`) this crate replaces tract's with.
const STANDARD_OPERATORS: &[(&str, Parser)] =
    &[("Cast", cast::parse), ("OneHot", one_hot_std::parse)];

/// tract's ONNX framework with this crate's operators registered (replacing tract's own
/// where it has one).
pub fn onnx() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    register(&mut onnx.op_register);
    onnx
}

/// Registers this crate's operators, replacing tract's where it has one of the same name.
pub fn register(registry: &mut OnnxOpRegister) {
    for (name, parser) in OPERATORS.iter().chain(STANDARD_OPERATORS) {
        registry.insert(name, *parser);
    }
}

/// The names of the ONNX-ML operators this crate provides.
pub fn operators() -> impl Iterator<Item = &'static str> {
    OPERATORS.iter().map(|(name, _)| *name)
}

/// Why an operator that takes or gives maps cannot be served, for the load error; `None`
/// for every other operator.
pub fn unsupported(op_type: &str) -> Option<&'static str> {
    match op_type {
        "DictVectorizer" | "CastMap" => Some(
            "it takes a map, which is not a tensor and which serve cannot receive; give the \
             model a tensor input (in scikit-learn, put the features in a float array instead \
             of a DictVectorizer)",
        ),
        _ => None,
    }
}
