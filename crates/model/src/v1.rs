//! TF-Serving's V1 REST protocol: `POST /v1/models/{m}:predict` and `GET /v1/models/{m}`.
//!
//! The row format `{"instances": [...]}` is one row per instance: for a single-input model
//! the instance is that input's row (`[5.1, 3.5, 1.4, 0.2]`), otherwise an object keyed by
//! input name; it answers `{"predictions": [...]}`, per instance the output's row, or an
//! object keyed by output name when there are several outputs. The columnar format
//! `{"inputs": ...}` carries whole tensors (nested arrays, the batch first) and answers
//! `{"outputs": ...}` the same way.

use std::fmt;
use std::sync::Arc;

use http::StatusCode;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serve_app::{Response, json_response};
use serve_runtime::tensor::Tensor;

use crate::Few;

use crate::codec_json::{self, Attempt, Field, Label, Walk};
use crate::column::Column;
use crate::error::ApiError;
use crate::error::shape_mismatch;
use crate::inputs::Inputs;
use crate::metadata::ModelMeta;
use crate::outputs::{Outputs, write_str};
use crate::records::{RecordSpec, Rows};
use crate::registry::Model;

/// `GET /v1/models/{m}[/versions/{v}]`: TF-Serving's `model_version_status`, one entry per
/// version asked (every version served when the path names none, highest first).
pub async fn status(versions: &[Arc<Model>]) -> Response {
    let status = |model: &Arc<Model>| {
        let (state, code, message) = match model.health() {
            Ok(()) => ("AVAILABLE", "OK", String::new()),
            Err(e) => ("END", "UNAVAILABLE", e),
        };
        serde_json::json!({
            "version": model.version,
            "state": state,
            "status": { "error_code": code, "error_message": message },
        })
    };
    let body = serde_json::json!({
        "model_version_status": versions.iter().map(status).collect::<Vec<_>>(),
    });
    json_response(StatusCode::OK, body.to_string())
}

/// `POST /v1/models/{m}:predict`.
pub async fn predict(model: &Arc<Model>, body: &[u8]) -> Result<Response, ApiError> {
    crate::observe::infer(
        model,
        || decode(body, &model.meta, &model.by_name),
        |columnar, outputs| {
            let mut buf = Vec::with_capacity(64);
            if columnar {
                buf.extend_from_slice(b"{\"outputs\":");
                write_columnar(&mut buf, &model.meta, outputs)?;
            } else {
                buf.extend_from_slice(b"{\"predictions\":");
                write_predictions(&mut buf, &model.meta, outputs)?;
            }
            buf.push(b'}');
            Ok(json_response(StatusCode::OK, buf))
        },
    )
    .await
}

/// Decodes a V1 body; returns the inputs and whether it was the columnar format.
pub fn decode(
    body: &[u8],
    meta: &ModelMeta,
    spec: &RecordSpec,
) -> Result<(Inputs, bool), ApiError> {
    let mut rows = Rows::new(meta, spec)?;
    let decoded = codec_json::parse(body, |body, attempt| {
        if attempt == Attempt::Again {
            rows.reset();
        }
        let mut de = serde_json::Deserializer::from_slice(body);
        BodySeed {
            meta,
            rows: &mut rows,
        }
        .deserialize(&mut de)
        .and_then(|d| de.end().map(|()| d))
    })?;
    match decoded {
        Body::Instances => {
            if rows.is_empty() {
                return Err(ApiError::bad_request("\"instances\" is empty"));
            }
            Ok((rows.into_inputs()?, false))
        }
        Body::Columnar(tensors) => Ok((Inputs::new(tensors.into_iter().collect()), true)),
    }
}

enum Body {
    Instances,
    Columnar(Vec<Tensor>),
}

struct BodySeed<'r, 'm> {
    meta: &'m ModelMeta,
    rows: &'r mut Rows<'m>,
}

impl<'de> DeserializeSeed<'de> for BodySeed<'_, '_> {
    type Value = Body;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Body, D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BodySeed<'_, '_> {
    type Value = Body;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with \"instances\" or \"inputs\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Body, A::Error> {
        let mut body = None;
        while let Some(key) = map.next_key_seed(Field(&["instances", "inputs"]))? {
            if key.is_some() && body.is_some() {
                return Err(de::Error::custom(
                    "give either \"instances\" or \"inputs\", not both",
                ));
            }
            match key {
                Some(0) => {
                    map.next_value_seed(InstancesSeed(&mut *self.rows))?;
                    body = Some(Body::Instances);
                }
                Some(1) => {
                    let tensors = map.next_value_seed(ColumnarSeed(self.meta))?.into_vec();
                    body = Some(Body::Columnar(tensors));
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        body.ok_or_else(|| de::Error::custom("the body has neither \"instances\" nor \"inputs\""))
    }
}

struct InstancesSeed<'r, 'm>(&'r mut Rows<'m>);

impl<'de> DeserializeSeed<'de> for InstancesSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for InstancesSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of instances")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(InstanceSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

/// One instance: an object (a record) or a bare row of the only input.
struct InstanceSeed<'r, 'm>(&'r mut Rows<'m>);

impl<'de> DeserializeSeed<'de> for InstanceSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

/// Forwards a scalar instance to a bare row.
macro_rules! bare {
    ($($m:ident($t:ty)),*) => {$(
        fn $m<E: de::Error>(self, v: $t) -> Result<(), E> {
            self.0.bare_row(|walk| walk.visitor().$m(v))
        }
    )*};
}

impl<'de> Visitor<'de> for InstanceSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an instance (a row, or an object keyed by input name)")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.0.record(map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        self.0.bare_row(|walk| walk.visitor().visit_seq(seq))
    }

    bare!(
        visit_f64(f64),
        visit_i64(i64),
        visit_u64(u64),
        visit_bool(bool),
        visit_str(&str)
    );
}

/// `"inputs"`: a whole tensor for a single-input model, or an object of them.
struct ColumnarSeed<'m>(&'m ModelMeta);

impl<'de> DeserializeSeed<'de> for ColumnarSeed<'_> {
    type Value = Few<Tensor>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Few<Tensor>, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ColumnarSeed<'_> {
    type Value = Few<Tensor>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a tensor (nested arrays) or an object of tensors keyed by input name")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Few<Tensor>, A::Error> {
        let meta = self.0;
        let mut found: Vec<Option<Tensor>> = meta.inputs.iter().map(|_| None).collect();
        while let Some(name) = map.next_key::<String>()? {
            let i = meta.input_index(&name).ok_or_else(|| {
                de::Error::custom(format_args!(
                    "unknown input \"{name}\" (the model's inputs are {})",
                    meta.input_names()
                ))
            })?;
            let t = map.next_value_seed(TensorSeed(meta, i))?;
            found[i] = Some(t);
        }
        let missing: Vec<&str> = meta
            .inputs
            .iter()
            .zip(&found)
            .filter(|(_, t)| t.is_none())
            .map(|(m, _)| m.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(de::Error::custom(format_args!(
                "missing input {}",
                crate::metadata::quoted_list(missing.into_iter())
            )));
        }
        Ok(found.into_iter().flatten().collect())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Few<Tensor>, A::Error> {
        let meta = self.0;
        if meta.inputs.len() != 1 {
            return Err(de::Error::custom(format_args!(
                "the model has several inputs, so \"inputs\" must be an object keyed by input \
                 name ({})",
                meta.input_names()
            )));
        }
        let input = &meta.inputs[0];
        let mut col = Column::with_capacity(input.datatype, 0);
        let mut walk = Walk::new(&mut col, usize::MAX, Label::Input(&input.name));
        walk.visitor().visit_seq(seq)?;
        let shape = walk.shape();
        Ok(
            std::iter::once(columnar_tensor(meta, 0, col, &shape).map_err(de::Error::custom)?)
                .collect(),
        )
    }
}

struct TensorSeed<'m>(&'m ModelMeta, usize);

impl<'de> DeserializeSeed<'de> for TensorSeed<'_> {
    type Value = Tensor;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Tensor, D::Error> {
        let input = &self.0.inputs[self.1];
        let mut col = Column::with_capacity(input.datatype, 0);
        let mut walk = Walk::new(&mut col, usize::MAX, Label::Input(&input.name));
        walk.value(de)?;
        let shape = walk.shape();
        columnar_tensor(self.0, self.1, col, &shape).map_err(de::Error::custom)
    }
}

/// A columnar input's tensor, its shape taken from the nesting and checked like V2's.
fn columnar_tensor(
    meta: &ModelMeta,
    i: usize,
    col: Column,
    shape: &[usize],
) -> Result<Tensor, String> {
    let input = &meta.inputs[i];
    if !input.fits(shape) {
        let got: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        return Err(shape_mismatch(input, &got));
    }
    col.into_tensor(shape)
}

/// `predictions`: per row, the output's row, or an object of every output's row.
fn write_predictions(
    buf: &mut Vec<u8>,
    meta: &ModelMeta,
    outputs: &Outputs,
) -> Result<(), ApiError> {
    if outputs.len() == 1 {
        return Ok(outputs.view_of(meta, 0)?.write_rows(buf)?);
    }
    let keys: Few<(&str, usize)> = meta
        .outputs
        .iter()
        .enumerate()
        .map(|(i, o)| (o.name.as_str(), i))
        .collect();
    crate::records::write_objects(buf, meta, outputs, &keys, false, false)
}

/// `outputs`: the whole tensor, or an object of them.
fn write_columnar(buf: &mut Vec<u8>, meta: &ModelMeta, outputs: &Outputs) -> Result<(), ApiError> {
    if outputs.len() == 1 {
        return Ok(outputs.view_of(meta, 0)?.write_nested(buf)?);
    }
    buf.push(b'{');
    for i in 0..outputs.len() {
        if i > 0 {
            buf.push(b',');
        }
        write_str(buf, &meta.outputs[i].name);
        buf.push(b':');
        outputs.view_of(meta, i)?.write_nested(buf)?;
    }
    buf.push(b'}');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn iris() -> ModelMeta {
        ModelMeta::from_onnx(&fixtures::classifier()).unwrap()
    }

    fn run(body: &str, meta: &ModelMeta) -> Result<(Inputs, bool), String> {
        let spec = RecordSpec::by_name(meta);
        decode(body.as_bytes(), meta, &spec).map_err(|e| {
            assert_eq!(e.status(), 400, "{e}");
            e.message().to_string()
        })
    }

    #[test]
    fn instances_are_rows_or_objects() {
        let m = iris();
        let (a, columnar) =
            run(r#"{"instances":[[5.1,3.5,1.4,0.2],[6.7,3.0,5.2,2.3]]}"#, &m).unwrap();
        assert!(!columnar);
        assert_eq!(a.tensors[0].shape(), &[2, 4]);
        let (b, _) = run(
            r#"{"signature_name":"x","instances":[{"input":[5.1,3.5,1.4,0.2]},{"input":[6.7,3.0,5.2,2.3]}]}"#,
            &m,
        )
        .unwrap();
        assert_eq!(a.tensors, b.tensors);
    }

    #[test]
    fn columnar_inputs_take_their_shape_from_the_nesting() {
        let m = iris();
        let (a, columnar) = run(r#"{"inputs":[[5.1,3.5,1.4,0.2]]}"#, &m).unwrap();
        assert!(columnar);
        assert_eq!(a.tensors[0].shape(), &[1, 4]);
        let (b, _) = run(r#"{"inputs":{"input":[[5.1,3.5,1.4,0.2]]}}"#, &m).unwrap();
        assert_eq!(a.tensors, b.tensors);
        let e = run(r#"{"inputs":[5.1,3.5,1.4,0.2]}"#, &m).unwrap_err();
        assert!(e.contains("add the batch dimension: [1, 4]"), "{e}");
    }

    #[test]
    fn bad_v1_bodies_are_400() {
        let m = iris();
        let cases = [
            (r#"{"instances":[]}"#, "\"instances\" is empty"),
            (r#"{}"#, "neither \"instances\" nor \"inputs\""),
            (
                r#"{"instances":[[1,2,3,4]],"inputs":[[1,2,3,4]]}"#,
                "not both",
            ),
            (
                r#"{"instances":[[1,2,3]]}"#,
                "instance 0: input \"input\" takes 4 values per row",
            ),
            (
                r#"{"instances":[[1,2,3,4],[1,2,"a",4]]}"#,
                "instance 1: expected a number (FP32), found a string",
            ),
            (
                r#"{"instances":[{"inputs":[1,2,3,4]}]}"#,
                "record 0: unknown key \"inputs\"",
            ),
            (
                r#"{"instances":[[1,2,3,inf]]}"#,
                "write a missing value as null or NaN",
            ),
            (r#"{"instances":{"a":1}}"#, "expected a list of instances"),
        ];
        for (body, want) in cases {
            let got = run(body, &m).unwrap_err();
            assert!(got.contains(want), "{body}\n  got:  {got}\n  want: {want}");
        }
        let t = ModelMeta::from_onnx(&fixtures::records()).unwrap();
        let e = run(r#"{"instances":[[1,2,3]]}"#, &t).unwrap_err();
        assert!(e.contains("must be an object keyed by input name"), "{e}");
    }
}
