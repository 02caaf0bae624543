//! Decoding a KServe V2 inference request into the model's input tensors.
//!
//! The JSON header is walked once with serde seeds that know the model: an input's `data`
//! goes straight into a buffer of the model's type as soon as the input's name is known
//! (clients put `name` first; if `data` comes before it, its raw text is kept and decoded
//! when the object ends). Inputs carried by the binary extension take their bytes, in
//! order, from the section after the header. Then every input is checked against the
//! model: present once, the model's datatype, the declared shape's rank and fixed sizes,
//! and as many elements as that shape holds.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serve_runtime::tensor::Tensor;

use crate::Few;

use crate::codec_binary;
use crate::codec_json::{self, Field, Label, Walk};
use crate::column::{Column, INITIAL_CAPACITY};
use crate::datatype::DataType;
use crate::error::{ApiError, fmt_shape, shape_mismatch};
use crate::inputs::Inputs;
use crate::metadata::{ModelMeta, TensorMeta};

/// The JSON part of a V2 request, with its inputs decoded but not yet checked.
#[derive(Debug, Default)]
pub struct Header {
    /// Echoed in the response.
    pub id: Option<String>,
    /// The inputs, in request order.
    pub inputs: Few<RawInput>,
    /// The outputs asked for; empty for all.
    pub outputs: Vec<OutputRequest>,
    /// `parameters.binary_data_output`: answer every output in binary by default.
    pub binary_output: bool,
}

/// One input of the request.
#[derive(Debug)]
pub struct RawInput {
    /// Its index among the model's inputs.
    pub index: usize,
    /// The declared datatype.
    pub datatype: Option<DataType>,
    /// The declared shape.
    pub shape: Option<Vec<i64>>,
    /// The values.
    pub data: Data,
}

/// Where an input's values are.
#[derive(Debug)]
pub enum Data {
    /// Neither `data` nor `binary_data_size` was given.
    Missing,
    /// Decoded from `data`.
    Json(Column),
    /// This many bytes of the binary section.
    Binary(usize),
    /// Its own bytes, in the binary format: gRPC's `raw_input_contents` (or its typed
    /// contents written so).
    Raw(Vec<u8>),
}

/// An entry of `outputs`.
#[derive(Debug, Deserialize)]
pub struct OutputRequest {
    /// The output's name.
    pub name: String,
    /// Its parameters (`binary_data`).
    #[serde(default)]
    pub parameters: Parameters,
}

/// The parameters this server reads; others are ignored.
#[derive(Debug, Default, Deserialize)]
pub struct Parameters {
    /// On an input: its bytes are in the binary section.
    pub binary_data_size: Option<u64>,
    /// On the request: answer outputs in binary.
    pub binary_data_output: Option<bool>,
    /// On an output: answer it in binary (or not).
    pub binary_data: Option<bool>,
    /// On an output: answer its K highest values per row, as Triton's classification
    /// extension does.
    pub classification: Option<u64>,
    /// Triton's shared-memory extension, which this server does not offer.
    pub shared_memory_region: Option<IgnoredAny>,
}

/// The request's decoded inputs and the outputs to answer, each with whether it goes in
/// binary.
#[derive(Debug)]
pub struct Request {
    /// Echoed in the response.
    pub id: Option<String>,
    /// The tensors, in the model's input order.
    pub inputs: Inputs,
    /// The outputs to answer, in answer order.
    pub outputs: Few<Asked>,
}

/// An output to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asked {
    /// Its index among the model's outputs.
    pub index: usize,
    /// Whether it goes in the binary section.
    pub binary: bool,
    /// Triton's classification: its K highest values per row, or 0 for the tensor.
    pub classification: usize,
}

/// Decodes a whole request body: `json_len` is `Inference-Header-Content-Length` when the
/// binary extension is used.
pub fn decode(body: &[u8], json_len: Option<usize>, meta: &ModelMeta) -> Result<Request, ApiError> {
    let (json, binary) = match json_len {
        None => (body, &[][..]),
        Some(n) if n <= body.len() => body.split_at(n),
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "Inference-Header-Content-Length is {n} but the body has {} bytes",
                body.len()
            )));
        }
    };
    let header = parse_header(json, meta)?;
    assemble(header, binary, meta)
}

/// Parses the JSON header.
pub fn parse_header(json: &[u8], meta: &ModelMeta) -> Result<Header, ApiError> {
    codec_json::parse(json, |json, _| {
        let mut de = serde_json::Deserializer::from_slice(json);
        RequestSeed {
            meta,
            body_len: json.len(),
        }
        .deserialize(&mut de)
        .and_then(|h| de.end().map(|()| h))
    })
}

struct RequestSeed<'m> {
    meta: &'m ModelMeta,
    body_len: usize,
}

impl<'de> DeserializeSeed<'de> for RequestSeed<'_> {
    type Value = Header;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Header, D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RequestSeed<'_> {
    type Value = Header;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a V2 inference request (a JSON object with \"inputs\")")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
        let mut header = Header::default();
        let mut seen_inputs = false;
        while let Some(key) =
            map.next_key_seed(Field(&["id", "parameters", "inputs", "outputs"]))?
        {
            match key {
                Some(0) => header.id = Some(map.next_value::<String>()?),
                Some(1) => {
                    let p: Parameters = map.next_value()?;
                    header.binary_output = p.binary_data_output.unwrap_or(false);
                }
                Some(2) => {
                    seen_inputs = true;
                    header.inputs = map.next_value_seed(InputsSeed {
                        meta: self.meta,
                        body_len: self.body_len,
                    })?;
                }
                Some(3) => header.outputs = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !seen_inputs {
            return Err(de::Error::custom("the request has no \"inputs\""));
        }
        Ok(header)
    }
}

struct InputsSeed<'m> {
    meta: &'m ModelMeta,
    body_len: usize,
}

impl<'de> DeserializeSeed<'de> for InputsSeed<'_> {
    type Value = Few<RawInput>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Few<RawInput>, D::Error> {
        de.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for InputsSeed<'_> {
    type Value = Few<RawInput>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of inputs")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Few<RawInput>, A::Error> {
        let mut inputs = Few::new();
        while let Some(input) = seq.next_element_seed(InputSeed {
            meta: self.meta,
            body_len: self.body_len,
        })? {
            inputs.push(input);
        }
        Ok(inputs)
    }
}

struct InputSeed<'m> {
    meta: &'m ModelMeta,
    body_len: usize,
}

impl<'de> DeserializeSeed<'de> for InputSeed<'_> {
    type Value = RawInput;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<RawInput, D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for InputSeed<'_> {
    type Value = RawInput;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an input (an object with name, shape, datatype and data)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawInput, A::Error> {
        let fields = &["name", "shape", "datatype", "parameters", "data"];
        let mut index: Option<usize> = None;
        let mut datatype: Option<DataType> = None;
        let mut shape: Option<Vec<i64>> = None;
        let mut data = Data::Missing;
        let mut raw: Option<&'de RawValue> = None;
        let mut binary: Option<u64> = None;
        while let Some(key) = map.next_key_seed(Field(fields))? {
            match key {
                Some(0) => {
                    let name = map.next_value_seed(StrSeed)?;
                    index = Some(self.meta.input_index(&name).ok_or_else(|| {
                        de::Error::custom(format_args!(
                            "unknown input \"{name}\" (the model's inputs are {})",
                            self.meta.input_names()
                        ))
                    })?);
                }
                Some(1) => shape = Some(map.next_value()?),
                Some(2) => {
                    let name = map.next_value_seed(StrSeed)?;
                    datatype = Some(DataType::from_v2(&name).ok_or_else(|| {
                        de::Error::custom(format_args!(
                            "unknown datatype \"{name}\" (expected one of {})",
                            DataType::ALL.map(DataType::as_str).join(", ")
                        ))
                    })?);
                }
                Some(3) => {
                    let p: Parameters = map.next_value()?;
                    if p.shared_memory_region.is_some() {
                        return Err(de::Error::custom(
                            "shared memory is not supported; send the data in the body",
                        ));
                    }
                    binary = p.binary_data_size;
                }
                Some(4) => match index {
                    Some(i) => {
                        let input = &self.meta.inputs[i];
                        check_datatype(input, datatype).map_err(de::Error::custom)?;
                        let mut col = self.column(input, shape.as_deref());
                        let mut walk =
                            Walk::new(&mut col, limit(shape.as_deref()), Label::Input(&input.name));
                        map.next_value_seed(&mut walk)?;
                        data = Data::Json(col);
                    }
                    None => raw = Some(map.next_value()?),
                },
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let index = index.ok_or_else(|| de::Error::custom("an input has no \"name\""))?;
        let input = &self.meta.inputs[index];
        if let Some(raw) = raw {
            // `data` came before `name`: decode it now that the type is known.
            check_datatype(input, datatype).map_err(de::Error::custom)?;
            let mut col = self.column(input, shape.as_deref());
            let mut walk = Walk::new(&mut col, limit(shape.as_deref()), Label::Input(&input.name));
            let mut de = serde_json::Deserializer::from_str(raw.get());
            walk.value(&mut de).map_err(de::Error::custom)?;
            data = Data::Json(col);
        }
        if let Some(size) = binary {
            if matches!(data, Data::Json(_)) {
                return Err(de::Error::custom(format_args!(
                    "input \"{}\" has both \"data\" and a binary_data_size",
                    input.name
                )));
            }
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            data = Data::Binary(size);
        }
        Ok(RawInput {
            index,
            datatype,
            shape,
            data,
        })
    }
}

impl InputSeed<'_> {
    /// A buffer for the input's values, sized by the declared shape only as far as the body
    /// can hold it (every JSON value takes at least two bytes), and never more than
    /// [`INITIAL_CAPACITY`] elements up front: a buffer grows with what the body holds.
    fn column(&self, input: &TensorMeta, shape: Option<&[i64]>) -> Column {
        let declared = shape.map_or(0, |s| limit(Some(s)));
        let capacity = declared.min(self.body_len / 2).min(INITIAL_CAPACITY);
        Column::with_capacity(input.datatype, capacity)
    }
}

/// The most elements a declared shape holds (no limit without a shape, or when it is
/// negative or overflows: the shape check reports those).
fn limit(shape: Option<&[i64]>) -> usize {
    shape
        .and_then(|s| {
            s.iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(usize::try_from(d).ok()?))
        })
        .unwrap_or(usize::MAX)
}

fn check_datatype(input: &TensorMeta, declared: Option<DataType>) -> Result<(), String> {
    match declared {
        Some(dt) if dt != input.datatype => Err(format!(
            "input \"{}\": datatype {dt} does not match the model's {}",
            input.name, input.datatype
        )),
        _ => Ok(()),
    }
}

/// Checks the header's inputs against the model and builds the tensors.
pub fn assemble(header: Header, binary: &[u8], meta: &ModelMeta) -> Result<Request, ApiError> {
    if header.inputs.is_empty() {
        return Err(ApiError::bad_request(format!(
            "\"inputs\" is empty (the model's inputs are {})",
            meta.input_names()
        )));
    }
    let mut tensors: Few<Option<Tensor>> = meta.inputs.iter().map(|_| None).collect();
    let mut cursor = 0usize;
    for raw in header.inputs {
        let input = &meta.inputs[raw.index];
        if tensors[raw.index].is_some() {
            return Err(ApiError::bad_request(format!(
                "input \"{}\" is given twice",
                input.name
            )));
        }
        let index = raw.index;
        tensors[index] = Some(input_tensor(input, raw, binary, &mut cursor)?);
    }
    let missing: Vec<&str> = meta
        .inputs
        .iter()
        .zip(&tensors)
        .filter(|(_, t)| t.is_none())
        .map(|(i, _)| i.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::bad_request(format!(
            "missing input{} {} (the model's inputs are {})",
            if missing.len() > 1 { "s" } else { "" },
            crate::metadata::quoted_list(missing.into_iter()),
            meta.input_names()
        )));
    }
    if cursor != binary.len() {
        return Err(ApiError::bad_request(format!(
            "{} bytes of binary data follow the JSON header but the inputs' binary_data_size \
             add up to {cursor}",
            binary.len()
        )));
    }
    let tensors: Few<Tensor> = tensors.into_iter().flatten().collect();
    check_batch(meta, &tensors)?;
    Ok(Request {
        id: header.id,
        inputs: Inputs::new(tensors),
        outputs: outputs(meta, header.outputs, header.binary_output)?,
    })
}

fn input_tensor(
    input: &TensorMeta,
    raw: RawInput,
    binary: &[u8],
    cursor: &mut usize,
) -> Result<Tensor, ApiError> {
    let name = &input.name;
    let dt = raw.datatype.ok_or_else(|| {
        ApiError::bad_request(format!(
            "input \"{name}\" has no datatype (the model expects {})",
            input.datatype
        ))
    })?;
    check_datatype(input, Some(dt)).map_err(ApiError::bad_request)?;
    let declared = raw.shape.ok_or_else(|| {
        ApiError::bad_request(format!(
            "input \"{name}\" has no shape (the model expects {})",
            fmt_shape(&input.shape_i64())
        ))
    })?;
    let shape = check_shape(input, &declared)?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "input \"{name}\": shape {} is too large",
                fmt_shape(&declared)
            ))
        })?;
    let col = match raw.data {
        Data::Missing => {
            return Err(ApiError::bad_request(format!(
                "input \"{name}\" has no data (neither \"data\" nor a binary_data_size parameter)"
            )));
        }
        Data::Json(col) => {
            if col.len() != count {
                return Err(ApiError::bad_request(format!(
                    "input \"{name}\": shape {} holds {count} elements but data has {}",
                    fmt_shape(&declared),
                    col.len()
                )));
            }
            col
        }
        Data::Binary(size) => {
            let end = cursor
                .checked_add(size)
                .filter(|&e| e <= binary.len())
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "input \"{name}\": binary_data_size {size} goes past the end of the body \
                     ({} bytes of binary data remain)",
                        binary.len() - *cursor
                    ))
                })?;
            let col = codec_binary::decode(dt, &binary[*cursor..end], count, name)?;
            *cursor = end;
            col
        }
        Data::Raw(bytes) => codec_binary::decode(dt, &bytes, count, name)?,
    };
    col.into_tensor(&shape)
        .map_err(|e| ApiError::internal(format!("input \"{name}\": {e}")))
}

/// The received shape as sizes, if it fits the model's declared shape.
fn check_shape(input: &TensorMeta, declared: &[i64]) -> Result<Few<usize>, ApiError> {
    let shape: Few<usize> = declared
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| {
            ApiError::bad_request(format!(
                "input \"{}\": shape {} has a negative dimension",
                input.name,
                fmt_shape(declared)
            ))
        })?;
    if input.fits(&shape) {
        return Ok(shape);
    }
    Err(ApiError::bad_request(shape_mismatch(input, declared)))
}

/// Inputs that share the batch dimension must agree on its size, or the engine fails obscurely.
fn check_batch(meta: &ModelMeta, tensors: &[Tensor]) -> Result<(), ApiError> {
    let mut first: Option<(&str, usize)> = None;
    for (input, t) in meta.inputs.iter().zip(tensors) {
        if !input.has_batch_dim() {
            continue;
        }
        let n = t.shape()[0];
        match first {
            None => first = Some((&input.name, n)),
            Some((name, m)) if m != n => {
                return Err(ApiError::bad_request(format!(
                    "inputs disagree on the batch size (the first dimension): \"{name}\" has \
                     {m}, \"{}\" has {n}",
                    input.name
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn outputs(
    meta: &ModelMeta,
    asked: Vec<OutputRequest>,
    binary: bool,
) -> Result<Few<Asked>, ApiError> {
    if asked.is_empty() {
        return Ok((0..meta.outputs.len())
            .map(|index| Asked {
                index,
                binary,
                classification: 0,
            })
            .collect());
    }
    asked
        .into_iter()
        .map(|o| {
            let i = meta.output_index(&o.name).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unknown output \"{}\" (the model's outputs are {})",
                    o.name,
                    meta.output_names()
                ))
            })?;
            let classification = match o.parameters.classification {
                None => 0,
                Some(0) => {
                    return Err(ApiError::bad_request(format!(
                        "output \"{}\": parameters.classification is 0; expected the number \
                         of classes to answer, 1 or more",
                        o.name
                    )));
                }
                Some(k) => {
                    let datatype = meta.outputs[i].datatype;
                    if matches!(datatype, DataType::Bytes | DataType::Bool) {
                        return Err(ApiError::bad_request(format!(
                            "output \"{}\": classification ranks numbers, and it is {}; ask \
                             it of a numeric output (e.g. the probabilities)",
                            o.name,
                            datatype.as_str()
                        )));
                    }
                    usize::try_from(k).unwrap_or(usize::MAX)
                }
            };
            Ok(Asked {
                index: i,
                binary: o.parameters.binary_data.unwrap_or(binary),
                classification,
            })
        })
        .collect()
}

/// A JSON string, borrowed from the body when it has no escapes (no allocation per field).
struct StrSeed;

impl<'de> DeserializeSeed<'de> for StrSeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for StrSeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn pairs(outputs: &[Asked]) -> Vec<(usize, bool)> {
        outputs.iter().map(|o| (o.index, o.binary)).collect()
    }

    fn meta(bytes: Vec<u8>) -> ModelMeta {
        ModelMeta::from_onnx(&bytes).unwrap()
    }

    fn iris() -> ModelMeta {
        meta(fixtures::classifier())
    }

    fn err(body: &str) -> String {
        let e = decode(body.as_bytes(), None, &iris()).unwrap_err();
        assert_eq!(e.status(), 400, "{e}");
        e.message().to_string()
    }

    #[test]
    fn flat_and_nested_data_decode_alike() {
        let flat = r#"{"id":"a","inputs":[{"name":"input","shape":[2,4],"datatype":"FP32","data":[1,2,3,4,5,6,7,8]}]}"#;
        let nested = r#"{"inputs":[{"name":"input","shape":[2,4],"datatype":"FP32","data":[[1,2,3,4],[5,6,7,8]]}]}"#;
        let a = decode(flat.as_bytes(), None, &iris()).unwrap();
        let b = decode(nested.as_bytes(), None, &iris()).unwrap();
        assert_eq!(a.id.as_deref(), Some("a"));
        assert_eq!(a.inputs.tensors, b.inputs.tensors);
        assert_eq!(a.inputs.rows, 2);
        assert_eq!(pairs(&a.outputs), [(0, false), (1, false)]);
    }

    #[test]
    fn data_before_name_is_decoded_too() {
        let body =
            r#"{"inputs":[{"data":[1,2,3,4],"datatype":"FP32","shape":[1,4],"name":"input"}]}"#;
        let r = decode(body.as_bytes(), None, &iris()).unwrap();
        assert_eq!(r.inputs.tensors[0].shape(), &[1, 4]);
    }

    #[test]
    fn a_zero_batch_is_valid() {
        let body = r#"{"inputs":[{"name":"input","shape":[0,4],"datatype":"FP32","data":[]}]}"#;
        let r = decode(body.as_bytes(), None, &iris()).unwrap();
        assert_eq!(r.inputs.rows, 0);
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let cases = [
            ("{", "malformed JSON"),
            ("[]", "expected a V2 inference request"),
            ("{}", "has no \"inputs\""),
            (r#"{"inputs":[]}"#, "\"inputs\" is empty"),
            (
                r#"{"inputs":[{"name":"nope","shape":[1],"datatype":"FP32","data":[1]}]}"#,
                "unknown input \"nope\" (the model's inputs are \"input\")",
            ),
            (
                r#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP64","data":[1,2,3,4]}]}"#,
                "datatype FP64 does not match the model's FP32",
            ),
            (
                r#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FLOAT","data":[1,2,3,4]}]}"#,
                "unknown datatype \"FLOAT\"",
            ),
            (
                r#"{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}"#,
                "expected shape [-1, 4] (the first dimension is the batch), received [1, 3]",
            ),
            (
                r#"{"inputs":[{"name":"input","shape":[4],"datatype":"FP32","data":[1,2,3,4]}]}"#,
                "add the batch dimension: [1, 4]",
            ),
            (
                r#"{"inputs":[{"name":"input","shape":[2,4],"datatype":"FP32","data":[1,2,3,4]}]}"#,
                "shape [2, 4] holds 8 elements but data has 4",
            ),
            (
                r#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4,5]}]}"#,
                "more elements than its shape holds (4)",
            ),
            (
                r#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,"x",4]}]}"#,
                "input \"input\": expected a number (FP32), found a string at line 1",
            ),
            (
                r#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,NaN,4]]}"#,
                "malformed JSON: expected `,` or `}`",
            ),
            (
                r#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","parameters":{"shared_memory_region":"r"}}]}"#,
                "shared memory is not supported",
            ),
            (
                r#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32"}]}"#,
                "has no data",
            ),
            (
                r#"{"inputs":[{"name":"input","shape":[1,4],"data":[1,2,3,4]}]}"#,
                "has no datatype (the model expects FP32)",
            ),
            (
                r#"{"inputs":[{"name":"input","datatype":"FP32","data":[1,2,3,4]}]}"#,
                "has no shape (the model expects [-1, 4])",
            ),
            (
                r#"{"inputs":[{"name":"input","shape":[-1,4],"datatype":"FP32","data":[1,2,3,4]}]}"#,
                "negative dimension",
            ),
            (
                r#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]},{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}"#,
                "given twice",
            ),
            (
                r#"{"inputs":[{"shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}"#,
                "an input has no \"name\"",
            ),
            (
                r#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}],"outputs":[{"name":"nope"}]}"#,
                "unknown output \"nope\" (the model's outputs are \"label\", \"probabilities\")",
            ),
            (
                r#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]} x"#,
                "trailing characters",
            ),
            // A huge declared shape with a tiny body.
            (
                r#"{"inputs":[{"name":"input","shape":[4611686018427387904,4],"datatype":"FP32","data":[1]}]}"#,
                "too large",
            ),
            (
                r#"{"inputs":[{"name":"input","shape":[1000000000000,4],"datatype":"FP32","data":[1]}]}"#,
                "holds 4000000000000 elements but data has 1",
            ),
        ];
        for (body, want) in cases {
            let got = err(body);
            assert!(got.contains(want), "{body}\n  got:  {got}\n  want: {want}");
        }
    }

    #[test]
    fn classification_is_asked_of_numeric_outputs() {
        let m = meta(fixtures::identities());
        let asked = |json: &str| {
            let list: Vec<OutputRequest> = serde_json::from_str(json).unwrap();
            outputs(&m, list, false)
        };
        let ok = asked(r#"[{"name":"o_FP32","parameters":{"classification":2}}]"#).unwrap();
        assert_eq!(ok[0].classification, 2);
        for (json, want) in [
            (
                r#"[{"name":"o_BYTES","parameters":{"classification":2}}]"#,
                "output \"o_BYTES\": classification ranks numbers, and it is BYTES",
            ),
            (
                r#"[{"name":"o_BOOL","parameters":{"classification":1}}]"#,
                "it is BOOL",
            ),
            (
                r#"[{"name":"o_FP32","parameters":{"classification":0}}]"#,
                "parameters.classification is 0",
            ),
        ] {
            let e = asked(json).unwrap_err();
            assert_eq!(e.status(), 400);
            assert!(e.message().contains(want), "{e}");
        }
    }

    #[test]
    fn missing_inputs_are_named() {
        let m = meta(fixtures::records());
        let body = r#"{"inputs":[{"name":"Age","shape":[1,1],"datatype":"FP32","data":[22]}]}"#;
        let e = decode(body.as_bytes(), None, &m).unwrap_err();
        assert!(
            e.message()
                .starts_with("missing inputs \"Sex\", \"Pclass\""),
            "{e}"
        );
    }

    #[test]
    fn inputs_must_agree_on_the_batch() {
        let m = meta(fixtures::records());
        let body = r#"{"inputs":[
            {"name":"Age","shape":[2,1],"datatype":"FP32","data":[22,30]},
            {"name":"Sex","shape":[1,1],"datatype":"BYTES","data":["male"]},
            {"name":"Pclass","shape":[1,1],"datatype":"INT64","data":[3]}]}"#;
        let e = decode(body.as_bytes(), None, &m).unwrap_err();
        assert!(e.message().contains("disagree on the batch size"), "{e}");
    }

    fn binary_body(json: &str, tail: &[u8]) -> (Vec<u8>, usize) {
        let mut body = json.as_bytes().to_vec();
        body.extend_from_slice(tail);
        (body, json.len())
    }

    #[test]
    fn binary_inputs_take_their_bytes_in_order() {
        let m = meta(fixtures::records());
        let json = r#"{"inputs":[
            {"name":"Age","shape":[2,1],"datatype":"FP32","parameters":{"binary_data_size":8}},
            {"name":"Sex","shape":[2,1],"datatype":"BYTES","data":["male","female"]},
            {"name":"Pclass","shape":[2,1],"datatype":"INT64","parameters":{"binary_data_size":16}}],
            "parameters":{"binary_data_output":true},"outputs":[{"name":"predict"}]}"#;
        let mut tail = vec![];
        tail.extend(22f32.to_le_bytes());
        tail.extend(30f32.to_le_bytes());
        tail.extend(3i64.to_le_bytes());
        tail.extend(1i64.to_le_bytes());
        let (body, n) = binary_body(json, &tail);
        let r = decode(&body, Some(n), &m).unwrap();
        assert_eq!(r.inputs.rows, 2);
        assert_eq!(pairs(&r.outputs), [(0, true)]);
        let age = r.inputs.tensors[0].as_slice::<f32>().unwrap();
        assert_eq!(age, &[22.0, 30.0]);
        // Too few bytes, too many bytes, a header length past the body.
        assert!(decode(&body[..body.len() - 1], Some(n), &m).is_err());
        let (long, n2) = binary_body(json, &[tail.clone(), vec![0]].concat());
        let e = decode(&long, Some(n2), &m).unwrap_err();
        assert!(e.message().contains("add up to 24"), "{e}");
        assert!(decode(&body, Some(body.len() + 1), &m).is_err());
    }

    #[test]
    fn output_parameters_override_the_request_default() {
        let body = r#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}],
            "parameters":{"binary_data_output":true},
            "outputs":[{"name":"probabilities","parameters":{"binary_data":false}},{"name":"label"}]}"#;
        let r = decode(body.as_bytes(), None, &iris()).unwrap();
        assert_eq!(pairs(&r.outputs), [(1, false), (0, true)]);
    }
}
