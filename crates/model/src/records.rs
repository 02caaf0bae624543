//! Records: JSON objects (or bare rows) that each give one row of every model input.
//!
//! The titanic tutorial posts `{"Age": 22, "Sex": "male", ...}` and expects
//! `{"predict": 0.12}`; TF-Serving's V1 posts `{"instances": [...]}`, one row per instance.
//! Both are rows: [`Rows`] decodes a sequence of them straight into one [`Column`] per
//! model input (a key's value may be a scalar or nested arrays, as long as it has the
//! row's element count), checks every record has every key once, and builds tensors of
//! shape `[rows, ...row]`. A [`RecordSpec`] says which keys feed which input: by default
//! each input reads the key of its own name; a manifest may rename keys or assemble one
//! input from several keys in order (iris's four features into `input`). Writing goes the
//! other way: one object (or row) per request row, keyed by response key.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use smallvec::smallvec;

use crate::Few;

use crate::codec_json::{self, Attempt, Label, Walk};
use crate::column::Column;
use crate::error::{ApiError, fmt_shape};
use crate::inputs::Inputs;
use crate::metadata::{Dim, ModelMeta};
use crate::outputs::{Outputs, write_str};

/// Which record keys feed which model inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordSpec {
    keys: Vec<String>,
    key_input: Vec<usize>,
    input_keys: Vec<Vec<usize>>,
    /// Keys no input reads are skipped instead of refused (a route's
    /// `unknown_keys = "ignore"`, as a Flask app's `payload.get("Age")` ignores the rest).
    ignore_unknown: bool,
    /// The records are a manifest route's, whose `unknown_keys` can let other keys through:
    /// the refusal of one says so.
    route: bool,
}

impl RecordSpec {
    /// Each input from the key of its own name (zero configuration).
    pub fn by_name(meta: &ModelMeta) -> RecordSpec {
        let n = meta.inputs.len();
        RecordSpec {
            keys: meta.inputs.iter().map(|i| i.name.clone()).collect(),
            key_input: (0..n).collect(),
            input_keys: (0..n).map(|i| vec![i]).collect(),
            ignore_unknown: false,
            route: false,
        }
    }

    /// The same spec, a manifest route's (its refusal of an unknown key names the route's
    /// `unknown_keys`).
    pub fn for_route(mut self) -> RecordSpec {
        self.route = true;
        self
    }

    /// The same spec, skipping keys no input reads instead of refusing them.
    pub fn ignoring_unknown_keys(mut self) -> RecordSpec {
        self.ignore_unknown = true;
        self
    }

    /// Inputs from the keys the manifest names (`input = "key"` or `input = ["k1", "k2"]`),
    /// the others from their own names. Checked when the app is built.
    pub fn new(meta: &ModelMeta, mapping: &[(String, Vec<String>)]) -> Result<RecordSpec, String> {
        let mut spec = RecordSpec {
            keys: vec![],
            key_input: vec![],
            input_keys: vec![vec![]; meta.inputs.len()],
            ignore_unknown: false,
            route: false,
        };
        for (input, keys) in mapping {
            let i = meta.input_index(input).ok_or_else(|| {
                format!(
                    "unknown input \"{input}\" (the model's inputs are {})",
                    meta.input_names()
                )
            })?;
            if keys.is_empty() {
                return Err(format!("input \"{input}\" is mapped to no key"));
            }
            if keys.len() > 1 && meta.inputs[i].fixed_row_size().is_none() {
                return Err(format!(
                    "input \"{input}\" is assembled from several keys, so its shape after the \
                     batch must be fixed (it is {})",
                    fmt_shape(&meta.inputs[i].shape_i64())
                ));
            }
            for k in keys {
                spec.push_key(k, i)?;
            }
        }
        for (i, input) in meta.inputs.iter().enumerate() {
            if spec.input_keys[i].is_empty() {
                spec.push_key(&input.name, i)?;
            }
        }
        Ok(spec)
    }

    fn push_key(&mut self, key: &str, input: usize) -> Result<(), String> {
        if self.keys.iter().any(|k| k == key) {
            return Err(format!("the key \"{key}\" feeds two inputs"));
        }
        self.input_keys[input].push(self.keys.len());
        self.keys.push(key.to_string());
        self.key_input.push(input);
        Ok(())
    }

    fn key_index(&self, key: &str) -> Option<usize> {
        self.keys.iter().position(|k| k == key)
    }

    /// The record keys, quoted and comma-separated.
    pub fn keys(&self) -> String {
        crate::metadata::quoted_list(self.keys.iter().map(String::as_str))
    }

    /// Each record key in order, with the input it feeds and whether it shares that input
    /// with other keys (then it is one feature of the row; alone, it is the whole row).
    /// For the front page and OpenAPI, which describe a route's record.
    pub fn key_feeds(&self) -> impl Iterator<Item = (&str, usize, bool)> {
        self.keys
            .iter()
            .zip(&self.key_input)
            .map(|(key, &input)| (key.as_str(), input, self.input_keys[input].len() > 1))
    }

    /// Whether keys no input reads are skipped (`unknown_keys = "ignore"`).
    pub fn ignores_unknown_keys(&self) -> bool {
        self.ignore_unknown
    }
}

/// Rows being decoded into one column per model input.
pub struct Rows<'m> {
    meta: &'m ModelMeta,
    spec: &'m RecordSpec,
    cols: Few<Column>,
    scratch: Few<Column>,
    scratch_shape: Few<Few<usize>>,
    seen: Few<bool>,
    /// The shape of a row of each input, once known.
    row_shapes: Few<Option<Few<usize>>>,
    rows: usize,
}

impl<'m> Rows<'m> {
    /// Empty rows for this model. Records need every input to have a batch dimension.
    pub fn new(meta: &'m ModelMeta, spec: &'m RecordSpec) -> Result<Rows<'m>, ApiError> {
        if let Some(i) = meta.inputs.iter().find(|i| !i.has_batch_dim()) {
            return Err(ApiError::bad_request(format!(
                "input \"{}\" has no batch dimension (its shape is {}), so it cannot be sent \
                 as rows; use the V2 protocol",
                i.name,
                fmt_shape(&i.shape_i64())
            )));
        }
        let col = |dt| Column::with_capacity(dt, 0);
        Ok(Rows {
            meta,
            spec,
            cols: meta.inputs.iter().map(|i| col(i.datatype)).collect(),
            scratch: spec
                .key_input
                .iter()
                .map(|&i| col(meta.inputs[i].datatype))
                .collect(),
            scratch_shape: (0..spec.keys.len()).map(|_| Few::new()).collect(),
            seen: (0..spec.keys.len()).map(|_| false).collect(),
            row_shapes: meta
                .inputs
                .iter()
                .map(|i| {
                    let dims = i.row_dims()?;
                    dims.iter().map(Dim::fixed).collect()
                })
                .collect(),
            rows: 0,
        })
    }

    /// Back to empty, for a second parse of the same body.
    pub fn reset(&mut self) {
        // It was made from the same model and spec: it is made again.
        if let Ok(fresh) = Rows::new(self.meta, self.spec) {
            *self = fresh;
        }
    }

    /// The number of rows decoded.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when no row was decoded.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Decodes one record (an object keyed like the spec).
    pub fn record<'de, A: MapAccess<'de>>(&mut self, mut map: A) -> Result<(), A::Error> {
        let r = self.rows;
        self.seen.iter_mut().for_each(|s| *s = false);
        while let Some(k) = map.next_key_seed(KeySeed(self.spec))? {
            let k = match k {
                Ok(k) => k,
                Err(_) if self.spec.ignore_unknown => {
                    map.next_value::<de::IgnoredAny>()?;
                    continue;
                }
                Err(key) => {
                    let hint = if self.spec.route {
                        "; a route whose records carry keys no input reads says \
                         unknown_keys = \"ignore\" in app.toml"
                    } else {
                        ""
                    };
                    return Err(de::Error::custom(format_args!(
                        "record {r}: unknown key \"{key}\" (expected {}){hint}",
                        self.spec.keys()
                    )));
                }
            };
            let key = &self.spec.keys[k];
            if std::mem::replace(&mut self.seen[k], true) {
                return Err(de::Error::custom(format_args!(
                    "record {r}: \"{key}\" is given twice"
                )));
            }
            let input = &self.meta.inputs[self.spec.key_input[k]];
            let limit = match self.spec.input_keys[self.spec.key_input[k]].len() {
                1 => input.fixed_row_size().unwrap_or(usize::MAX),
                _ => usize::MAX,
            };
            let col = &mut self.scratch[k];
            col.clear();
            let mut walk = Walk::new(col, limit, Label::Record(r, key));
            map.next_value_seed(&mut walk)?;
            self.scratch_shape[k] = walk.shape();
        }
        if let Some(k) = self.seen.iter().position(|s| !s) {
            return Err(de::Error::custom(format_args!(
                "record {r}: missing \"{}\"",
                self.spec.keys[k]
            )));
        }
        for i in 0..self.cols.len() {
            let keys = &self.spec.input_keys[i];
            let (shape, count) = if keys.len() == 1 {
                let k = keys[0];
                (
                    std::mem::take(&mut self.scratch_shape[k]),
                    self.scratch[k].len(),
                )
            } else {
                let n = keys.iter().map(|&k| self.scratch[k].len()).sum();
                (smallvec![n], n)
            };
            let label = Label::Record(r, &self.spec.keys[keys[0]]);
            self.check_row(i, &shape, count, label)
                .map_err(de::Error::custom)?;
            for &k in keys {
                self.cols[i].append(&mut self.scratch[k]);
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// Decodes one bare row of a single-input model (a V1 instance that is not an object),
    /// through `visit`, which feeds a walk.
    pub fn bare_row<E: de::Error>(
        &mut self,
        visit: impl FnOnce(&mut Walk<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let r = self.rows;
        if self.cols.len() != 1 {
            return Err(E::custom(format_args!(
                "instance {r}: the model has several inputs, so each instance must be an \
                 object keyed by input name ({})",
                self.meta.input_names()
            )));
        }
        let limit = self.meta.inputs[0].fixed_row_size().unwrap_or(usize::MAX);
        let mut walk = Walk::new(&mut self.cols[0], limit, Label::Instance(r));
        visit(&mut walk)?;
        let (shape, count) = (walk.shape(), walk.count());
        self.check_row(0, &shape, count, Label::Instance(r))
            .map_err(E::custom)?;
        self.rows += 1;
        Ok(())
    }

    /// Checks a row's element count (fixed row shapes) or its nested shape (variable ones).
    fn check_row(
        &mut self,
        i: usize,
        shape: &[usize],
        count: usize,
        label: Label<'_>,
    ) -> Result<(), String> {
        let input = &self.meta.inputs[i];
        let dims = input.row_dims().expect("checked in Rows::new");
        if let Some(size) = input.fixed_row_size() {
            if count != size {
                return Err(format!(
                    "{label}: input \"{}\" takes {size} value{} per row (shape {}; the first \
                     dimension is the batch), received {count}",
                    input.name,
                    if size == 1 { "" } else { "s" },
                    fmt_shape(&input.shape_i64())
                ));
            }
            return Ok(());
        }
        if !Dim::all_fit(dims, shape) {
            return Err(format!(
                "{label}: a row of input \"{}\" has shape {}, which does not fit {} (the first \
                 dimension is the batch)",
                input.name,
                fmt_shape(shape),
                fmt_shape(&input.shape_i64())
            ));
        }
        match &self.row_shapes[i] {
            None => self.row_shapes[i] = Some(shape.into()),
            Some(s) if s[..] != *shape => {
                return Err(format!(
                    "{label}: rows of input \"{}\" have different shapes ({} and {})",
                    input.name,
                    fmt_shape(s),
                    fmt_shape(shape)
                ));
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// The tensors: `[rows, ...row]` per input.
    pub fn into_inputs(self) -> Result<Inputs, ApiError> {
        let rows = self.rows;
        let tensors = self
            .cols
            .into_iter()
            .zip(self.row_shapes)
            .map(|(col, row)| {
                let mut shape: Few<usize> = smallvec![rows];
                // No rows: a variable row shape is unknown; 0 for each such dimension.
                shape.extend(row.unwrap_or_default());
                col.into_tensor(&shape).map_err(ApiError::internal)
            })
            .collect::<Result<_, _>>()?;
        Ok(Inputs { tensors, rows })
    }
}

/// A key of a record: its index in the spec, or the unknown key itself.
struct KeySeed<'s>(&'s RecordSpec);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Result<usize, String>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed<'_> {
    type Value = Result<usize, String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.key_index(v).ok_or_else(|| v.to_string()))
    }
}

/// Decodes a manifest route's body: one record (an object), or a list of them. Returns the
/// inputs and whether the body was a single record (answered with a single object).
pub fn decode(
    body: &[u8],
    meta: &ModelMeta,
    spec: &RecordSpec,
) -> Result<(Inputs, bool), ApiError> {
    let mut rows = Rows::new(meta, spec)?;
    let single = codec_json::parse(body, |body, attempt| {
        if attempt == Attempt::Again {
            rows.reset();
        }
        let mut de = serde_json::Deserializer::from_slice(body);
        BodySeed(&mut rows)
            .deserialize(&mut de)
            .and_then(|s| de.end().map(|()| s))
    })?;
    if rows.is_empty() {
        return Err(ApiError::bad_request(format!(
            "the list of records is empty (each record is an object with {})",
            spec.keys()
        )));
    }
    Ok((rows.into_inputs()?, single))
}

struct BodySeed<'r, 'm>(&'r mut Rows<'m>);

impl<'de> DeserializeSeed<'de> for BodySeed<'_, '_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<bool, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for BodySeed<'_, '_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "a record (an object with {}) or a list of records",
            self.0.spec.keys()
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        self.0.record(map)?;
        Ok(true)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element_seed(RecordSeed(&mut *self.0))?.is_some() {}
        Ok(false)
    }
}

/// One record of a list.
pub struct RecordSeed<'r, 'm>(pub &'r mut Rows<'m>);

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "record {}: an object with {}",
            self.0.rows,
            self.0.spec.keys()
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.0.record(map)
    }
}

/// Writes the answer of a records request: an object per row keyed by response key (or one
/// object for a single record). With `unwrap`, one-element rows are scalars; the rows of a
/// ZipMap output are `{label: probability}` objects.
pub fn write_objects<K: AsRef<str>>(
    buf: &mut Vec<u8>,
    meta: &ModelMeta,
    outputs: &Outputs,
    keys: &[(K, usize)],
    single: bool,
    unwrap: bool,
) -> Result<(), ApiError> {
    let views = keys
        .iter()
        .map(|(_, i)| outputs.view_of(meta, *i))
        .collect::<Result<Few<_>, _>>()?;
    let rows = views.first().map_or(0, |v| v.row_count());
    if !single {
        buf.push(b'[');
    }
    for r in 0..rows {
        if r > 0 {
            buf.push(b',');
        }
        buf.push(b'{');
        for (j, ((key, _), view)) in keys.iter().zip(&views).enumerate() {
            if j > 0 {
                buf.push(b',');
            }
            write_str(buf, key.as_ref());
            buf.push(b':');
            view.write_row(buf, r, unwrap)?;
        }
        buf.push(b'}');
        if single {
            break;
        }
    }
    if !single {
        buf.push(b']');
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn titanic() -> ModelMeta {
        ModelMeta::from_onnx(&fixtures::records()).unwrap()
    }

    fn decode_str(
        body: &str,
        meta: &ModelMeta,
        spec: &RecordSpec,
    ) -> Result<(Inputs, bool), String> {
        decode(body.as_bytes(), meta, spec).map_err(|e| {
            assert_eq!(e.status(), 400);
            e.message().to_string()
        })
    }

    #[test]
    fn one_record_or_a_list() {
        let m = titanic();
        let spec = RecordSpec::by_name(&m);
        let (inputs, single) =
            decode_str(r#"{"Age":22,"Sex":"male","Pclass":3}"#, &m, &spec).unwrap();
        assert!(single);
        assert_eq!(inputs.rows, 1);
        assert_eq!(inputs.tensors[1].shape(), &[1, 1]);
        let (inputs, single) = decode_str(
            r#"[{"Pclass":1,"Sex":"female","Age":38},{"Age":[22],"Sex":["male"],"Pclass":[3]}]"#,
            &m,
            &spec,
        )
        .unwrap();
        assert!(!single);
        assert_eq!(inputs.rows, 2);
        assert_eq!(inputs.tensors[2].as_slice::<i64>().unwrap(), &[1, 3]);
    }

    #[test]
    fn bad_records_say_which_and_why() {
        let m = titanic();
        let spec = RecordSpec::by_name(&m);
        let cases = [
            ("[]", "the list of records is empty"),
            (
                "3",
                "a record (an object with \"Age\", \"Sex\", \"Pclass\") or a list",
            ),
            (r#"{"Age":22,"Sex":"male"}"#, "record 0: missing \"Pclass\""),
            (
                r#"{"Age":22,"Sex":"male","Pclass":3,"Name":"x"}"#,
                "record 0: unknown key \"Name\"",
            ),
            (
                r#"{"Age":22,"Age":23,"Sex":"male","Pclass":3}"#,
                "\"Age\" is given twice",
            ),
            (
                r#"{"Age":"old","Sex":"male","Pclass":3}"#,
                "record 0: \"Age\": expected a number (FP32), found a string at line 1",
            ),
            (
                r#"{"Age":22,"Sex":1,"Pclass":3}"#,
                "expected a string (BYTES), found a number",
            ),
            (
                r#"{"Age":22,"Sex":"male","Pclass":3.5}"#,
                "expected an integer (INT64), found 3.5",
            ),
            (
                r#"[{"Age":22,"Sex":"male","Pclass":3},{"Age":[1,2],"Sex":"male","Pclass":3}]"#,
                "record 1: \"Age\": more elements than its shape holds (1)",
            ),
            (
                r#"{"Age":[],"Sex":"male","Pclass":3}"#,
                "input \"Age\" takes 1 value per row (shape [-1, 1]; the first dimension is the batch), received 0",
            ),
            (
                r#"[{"Age":22,"Sex":"male","Pclass":3}, 4]"#,
                "invalid type: integer `4`, expected record 1",
            ),
            (
                r#"{"Age":22,"Sex":"male","Pclass":NaN}"#,
                "record 0: \"Pclass\": NaN is a missing value (NaN), which only a floating-point \
                 input (FP16, FP32, FP64) takes; this one is INT64",
            ),
            (
                r#"{"Age":22,"Sex":null,"Pclass":3}"#,
                "record 0: \"Sex\": null is a missing value (NaN), which only a floating-point \
                 input (FP16, FP32, FP64) takes; this one is BYTES",
            ),
        ];
        for (body, want) in cases {
            let got = decode_str(body, &m, &spec).unwrap_err();
            assert!(got.contains(want), "{body}\n  got:  {got}\n  want: {want}");
        }
    }

    #[test]
    fn unknown_keys_are_skipped_when_the_route_says_ignore() {
        let m = titanic();
        let spec = RecordSpec::by_name(&m).ignoring_unknown_keys();
        let body = r#"{"Name":"x","Age":22,"Cabin":{"deck":["C",85]},"Sex":"male","Pclass":3}"#;
        let (inputs, single) = decode_str(body, &m, &spec).unwrap();
        assert!(single);
        assert_eq!(inputs.tensors.len(), 3);
        // Ignoring unknown keys does not forgive a missing one, nor a repeated one.
        let got = decode_str(r#"{"Name":"x","Age":22,"Sex":"male"}"#, &m, &spec).unwrap_err();
        assert!(got.contains("record 0: missing \"Pclass\""), "{got}");
        let got = decode_str(r#"{"Age":22,"Age":2,"Sex":"male","Pclass":3}"#, &m, &spec);
        assert!(got.unwrap_err().contains("given twice"));
    }

    #[test]
    fn several_keys_can_assemble_one_input() {
        let m = ModelMeta::from_onnx(&fixtures::classifier()).unwrap();
        let keys = ["sepal_length", "sepal_width", "petal_length", "petal_width"];
        let spec = RecordSpec::new(
            &m,
            &[("input".into(), keys.iter().map(|k| k.to_string()).collect())],
        )
        .unwrap();
        let body = r#"{"petal_width":0.2,"sepal_length":5.1,"petal_length":1.4,"sepal_width":3.5}"#;
        let (inputs, _) = decode_str(body, &m, &spec).unwrap();
        let x = inputs.tensors[0].as_slice::<f32>().unwrap();
        assert_eq!(x, &[5.1, 3.5, 1.4, 0.2]);
        assert_eq!(inputs.tensors[0].shape(), &[1, 4]);
    }

    #[test]
    fn specs_are_checked_against_the_model() {
        let m = titanic();
        let e = RecordSpec::new(&m, &[("age".into(), vec!["a".into()])]).unwrap_err();
        assert!(e.contains("unknown input \"age\""), "{e}");
        let e = RecordSpec::new(&m, &[("Age".into(), vec!["Sex".into()])]).unwrap_err();
        assert!(e.contains("feeds two inputs"), "{e}");
        let v = ModelMeta::from_onnx(&fixtures::variable_row()).unwrap();
        let e = RecordSpec::new(&v, &[("x".into(), vec!["a".into(), "b".into()])]).unwrap_err();
        assert!(e.contains("must be fixed"), "{e}");
        let f = ModelMeta::from_onnx(&fixtures::fixed_shape()).unwrap();
        let e = Rows::new(&f, &RecordSpec::by_name(&f)).err().unwrap();
        assert!(e.message().contains("has no batch dimension"), "{e}");
    }

    #[test]
    fn variable_rows_must_agree() {
        let m = ModelMeta::from_onnx(&fixtures::variable_row()).unwrap();
        let spec = RecordSpec::by_name(&m);
        let (inputs, _) = decode_str(r#"[{"x":[1,2,3]},{"x":[4,5,6]}]"#, &m, &spec).unwrap();
        assert_eq!(inputs.tensors[0].shape(), &[2, 3]);
        let e = decode_str(r#"[{"x":[1,2,3]},{"x":[4,5]}]"#, &m, &spec).unwrap_err();
        assert!(e.contains("different shapes ([3] and [2])"), "{e}");
        let e = decode_str(r#"[{"x":[[1],[2]]}]"#, &m, &spec).unwrap_err();
        assert!(e.contains("does not fit [-1, -1]"), "{e}");
    }
}
