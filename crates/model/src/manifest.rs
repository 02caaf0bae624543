//! `app.toml`: the small manifest that names models, tunes their batching and declares
//! extra routes. Every key is optional; a directory of `.onnx` files needs none.
//!
//! ```toml
//! [[model]]
//! name = "titanic"          # default: the file's stem; model.onnx takes its directory's name
//! path = "model.onnx"       # relative to this file; default: NAME.onnx, NAME/model.onnx, a Triton
//!                           #   model directory NAME/ (NAME/VERSION/model.onnx), or model.onnx
//! max_batch_size = 64       # default: --max-batch-size (1 = no batching)
//! batch_timeout_us = 0      # default: --batch-timeout-us
//! max_queue = 1024          # default: --max-queue
//! batch = true              # false: the inputs' first dimensions are not one batch (see below)
//! version = 1               # what it answers as model_version (a number or a string); of a
//!                           #   Triton model directory, the one version served
//! engine = "onnxruntime"    # default: --engine (tract); onnxruntime for CNNs, RNNs, transformers
//! [model.example]           # one row per input, by input name (see "Examples" below)
//! Age = 22
//! Sex = "male"
//!
//! [[route]]
//! path = "/model"           # any path outside /v1/ and /v2/ but /, /openapi.json,
//!                           #   /metrics and /status, which serve answers itself
//! method = "POST"           # default POST
//! model = "titanic"         # default: the app's only model
//! version = 2               # default: the model's highest version
//! unknown_keys = "reject"   # default; "ignore": records may carry keys no input reads
//! [route.inputs]            # model input = record key, or a list of keys concatenated in order;
//! Age = "age"               #   an input not listed reads the key of its own name
//! [route.outputs]           # response key = model output; default: every output by its name
//! predict = "predict"
//! [route.example]           # a record as the route takes it (see "Examples" below)
//! age = 22
//! Sex = "male"
//! ```
//!
//! A record key may hold an array, for an input of several features per row: with
//! `[route.inputs] input = "features"`, the iris model takes `{"features": [5.1, 3.5, 1.4, 0.2]}`.
//!
//! Every input's first variable dimension is taken as the batch, one dimension shared by all
//! inputs, whatever the file names it (converters name each input's batch differently:
//! tf2onnx's `unk__62`, `unk__64`): that is what lets serve plan the model once for any batch
//! size and merge requests. A model whose inputs' first dimensions are truly independent
//! (an input of N rows beside one of M rows) sets `batch = false`: it is planned as the file
//! declares and never batched.
//!
//! A route takes one JSON record (an object) and answers one object, or a list of records
//! and answers a list; an output row of one element is answered as a scalar
//! (`{"predict": 0.12}`). Both tables read "what is made = where it comes from".
//!
//! # Examples
//!
//! An `example` is the request the front page (`GET /`) puts in a model's or a route's form
//! and its `curl`, and what `/openapi.json` gives as the request's example (so a Postman
//! collection made from it has bodies ready to send). Both are written as a user thinks of
//! one request, not in a protocol's syntax:
//!
//! - `[model.example]` gives one row of each input, keyed by input name: a scalar for an
//!   input of one value per row (`Age = 22` for `[N, 1]`), an array for several
//!   (`input = [5.1, 3.5, 1.4, 0.2]` for iris's `[N, 4]`; nested arrays or a flat one in
//!   row-major order). serve turns it into a V2 infer body of batch 1 (the shape from the
//!   model, the datatype from the model) and a V1 `{"instances": [...]}` body. An input
//!   without a batch dimension takes its whole tensor.
//! - `[route.example]` is one record exactly as the route takes it (its keys are the
//!   record keys, after `[route.inputs]`'s renaming); an array of tables
//!   (`[[route.example]]`) is a list of records.
//!
//! Each is checked at start by the decoder that will read it (V2's for a model's, the
//! route's records decoder for a route's), so an example that names a key the model does
//! not have, or gives the wrong number of values, stops the start (exit 4) with the decoder's
//! message. Without one the page makes a placeholder from the metadata: zeros (`""` for
//! BYTES, `false` for BOOL) of the input's shape with batch 1, or each record key with 0.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serve_settings::kinds::{self, per_model};

/// A parsed `app.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// `[[model]]` entries; none means "every model of the directory".
    #[serde(default, rename = "model")]
    pub models: Vec<ModelEntry>,
    /// `[[route]]` entries.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteEntry>,
}

/// A `[[model]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// The name requests use (wins over the file's).
    pub name: Option<String>,
    /// The `.onnx` file, relative to the manifest.
    pub path: Option<PathBuf>,
    /// Rows per engine call (1 = no batching); read as `--max-batch-size` is.
    #[serde(default, deserialize_with = "max_batch_size")]
    pub max_batch_size: Option<usize>,
    /// How long a batch waits for more requests, in microseconds; read as
    /// `--batch-timeout-us` is.
    #[serde(default, deserialize_with = "batch_timeout_us")]
    pub batch_timeout_us: Option<u64>,
    /// Requests waiting for the model before 503; read as `--max-queue` is.
    #[serde(default, deserialize_with = "max_queue")]
    pub max_queue: Option<usize>,
    /// Whether the inputs' first dimensions are one batch (default true).
    pub batch: Option<bool>,
    /// The version the model answers as (`model_version`, `/versions/V`); default 1.
    pub version: Option<Version>,
    /// The engine that runs it; read as `--engine` is, which it overrides.
    #[serde(default, deserialize_with = "engine")]
    pub engine: Option<kinds::EngineName>,
    /// One row of each input, by input name: the front page's and OpenAPI's example.
    pub example: Option<toml::Table>,
}

// The per-model keys, read with the kinds of the flags they override.
fn max_batch_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    per_model::<kinds::Rows, D>("max_batch_size", d)
}

fn batch_timeout_us<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    per_model::<kinds::Micros, D>("batch_timeout_us", d)
}

fn engine<'de, D: Deserializer<'de>>(d: D) -> Result<Option<kinds::EngineName>, D::Error> {
    per_model::<kinds::Engine, D>("engine", d)
}

fn max_queue<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    per_model::<kinds::AtLeastOne, D>("max_queue", d)
}

/// A `version`: a number or a string, as written.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Version {
    /// `version = 2`.
    Number(u64),
    /// `version = "2024-06"`.
    Text(String),
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Number(n) => write!(f, "{n}"),
            Version::Text(t) => f.write_str(t),
        }
    }
}

/// A `[[route]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteEntry {
    /// The exact path.
    pub path: String,
    /// The HTTP method.
    #[serde(default = "post")]
    pub method: String,
    /// The model it calls.
    pub model: Option<String>,
    /// The version of the model it calls; default: the highest loaded.
    pub version: Option<Version>,
    /// Model input ← record key(s), in the file's order.
    #[serde(default, deserialize_with = "ordered_inputs")]
    pub inputs: Vec<(String, Vec<String>)>,
    /// Response key ← model output, in the file's order.
    #[serde(default, deserialize_with = "ordered_outputs")]
    pub outputs: Vec<(String, String)>,
    /// What a record key no input reads does: refused with 400 (the default), or ignored.
    #[serde(default)]
    pub unknown_keys: UnknownKeys,
    /// A record (or a list of records) as the route takes it: the front page's and
    /// OpenAPI's example.
    pub example: Option<toml::Value>,
}

/// A route's `unknown_keys`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownKeys {
    /// 400 naming the key and the expected ones: a typo is caught.
    #[default]
    Reject,
    /// Skipped, as a Flask app reading `payload.get("Age")` ignores the others.
    Ignore,
}

fn post() -> String {
    "POST".into()
}

/// Parses a manifest; the error is one line: `FILE: line L, column C: cause`.
pub fn parse(text: &str, file: &Path) -> Result<Manifest, String> {
    toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| {
                let before = &text[..s.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("line {line}, column {column}: ")
            })
            .unwrap_or_default();
        let cause = e.message().replace('\n', " ");
        format!("{}: {at}{}", file.display(), cause.trim_end())
    })
}

/// A key or a list of keys.
#[derive(Deserialize)]
#[serde(untagged)]
enum Keys {
    One(String),
    Many(Vec<String>),
}

fn ordered_inputs<'de, D: Deserializer<'de>>(
    de: D,
) -> Result<Vec<(String, Vec<String>)>, D::Error> {
    let pairs: Vec<(String, Keys)> = de.deserialize_map(Ordered(std::marker::PhantomData))?;
    Ok(pairs
        .into_iter()
        .map(|(k, v)| match v {
            Keys::One(s) => (k, vec![s]),
            Keys::Many(v) => (k, v),
        })
        .collect())
}

fn ordered_outputs<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<(String, String)>, D::Error> {
    de.deserialize_map(Ordered(std::marker::PhantomData))
}

/// A table read as a list of pairs, keeping the file's order.
struct Ordered<V>(std::marker::PhantomData<V>);

impl<'de, V: Deserialize<'de>> Visitor<'de> for Ordered<V> {
    type Value = Vec<(String, V)>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a table")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out: Vec<(String, V)> = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, V>()? {
            if out.iter().any(|(seen, _)| *seen == k) {
                return Err(de::Error::custom(format_args!("\"{k}\" is given twice")));
            }
            out.push((k, v));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_model_keys_are_read_as_their_flags_are() {
        let bad = |toml: &str| parse(&format!("[[model]]\n{toml}\n"), Path::new("app.toml"));
        let e = bad("max_batch_size = 0").unwrap_err();
        assert!(
            e.contains("max_batch_size") && e.contains("expected 1 (no batching) or more"),
            "{e}"
        );
        let e = bad("max_queue = 0").unwrap_err();
        assert!(
            e.contains("max_queue") && e.contains("expected 1 or more"),
            "{e}"
        );
        let e = bad("batch_timeout_us = -5").unwrap_err();
        assert!(e.contains("batch_timeout_us") && e.contains("-5"), "{e}");
        let m = bad("max_batch_size = \"8\"\nbatch_timeout_us = 250").unwrap();
        assert_eq!(m.models[0].max_batch_size, Some(8));
        assert_eq!(m.models[0].batch_timeout_us, Some(250));
    }

    #[test]
    fn the_documented_example_parses() {
        let text = r#"
[[model]]
name = "titanic"
path = "model.onnx"
max_batch_size = 64
batch_timeout_us = 0
max_queue = 256
batch = true

[[route]]
path = "/model"
model = "titanic"
unknown_keys = "ignore"
[route.inputs]
Age = "age"
input = ["b", "a"]
[route.outputs]
predict = "predict"
z = "first"
"#;
        let m = parse(text, Path::new("app.toml")).unwrap();
        assert_eq!(m.models[0].name.as_deref(), Some("titanic"));
        assert_eq!(m.models[0].max_batch_size, Some(64));
        assert_eq!(m.models[0].batch, Some(true));
        let r = &m.routes[0];
        assert_eq!(r.method, "POST");
        assert_eq!(r.unknown_keys, UnknownKeys::Ignore);
        assert_eq!(
            r.inputs,
            vec![
                ("Age".into(), vec!["age".into()]),
                ("input".into(), vec!["b".into(), "a".into()])
            ]
        );
        assert_eq!(
            r.outputs,
            vec![
                ("predict".into(), "predict".into()),
                ("z".into(), "first".into())
            ]
        );
    }

    #[test]
    fn record_keys_and_response_keys_keep_the_files_order() {
        let text = "[[route]]\npath = \"/p\"\n[route.inputs]\nz = \"k\"\na = \"j\"\n\
                    [route.outputs]\nspecies = \"label\"\nprobabilities = \"p\"\n";
        let r = &parse(text, Path::new("app.toml")).unwrap().routes[0];
        let inputs: Vec<&str> = r.inputs.iter().map(|(i, _)| i.as_str()).collect();
        assert_eq!(inputs, ["z", "a"]);
        let keys: Vec<&str> = r.outputs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["species", "probabilities"], "as written, not sorted");
    }

    #[test]
    fn an_empty_manifest_is_valid() {
        let m = parse("", Path::new("app.toml")).unwrap();
        assert!(m.models.is_empty() && m.routes.is_empty());
    }

    #[test]
    fn errors_are_one_line_with_the_place() {
        let e = parse("[[model]]\nnmae = \"x\"\n", Path::new("dir/app.toml")).unwrap_err();
        assert!(!e.contains('\n'), "{e}");
        assert!(
            e.starts_with("dir/app.toml: line 2, column 1: unknown field `nmae`"),
            "{e}"
        );
        let e = parse(
            "[[route]]\npath = \"/a\"\nunknown_keys = \"maybe\"\n",
            Path::new("app.toml"),
        )
        .unwrap_err();
        assert!(
            e.contains("unknown variant `maybe`, expected `reject` or `ignore`"),
            "{e}"
        );
        let e = parse("[[route]]\npath = 3\n", Path::new("app.toml")).unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        let e = parse("[[route]]\nmethod = \"GET\"\n", Path::new("app.toml")).unwrap_err();
        assert!(e.contains("missing field `path`"), "{e}");
    }
}
