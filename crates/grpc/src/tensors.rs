//! A ModelInferRequest's tensors into the runtime's, and the outputs back.
//!
//! The request is turned into the V2 REST decoder's header ([`v2_request::Header`]) and
//! checked by the same code ([`v2_request::assemble`]): names, datatypes, shapes, the batch
//! and the byte counts are refused with the same messages on both protocols. Inputs come in
//! `raw_input_contents` (what tritonclient sends: the binary format, BYTES elements each
//! after a 4-byte little-endian length) or in typed `contents`, which are written in that
//! format (FP16 and BF16 have no typed field and must come raw). Every output is answered
//! in `raw_output_contents`, the only place tritonclient reads numbers from.

use std::collections::HashMap;

use serve_model::datatype::DataType;
use serve_model::error::ApiError;
use serve_model::inputs::Inputs;
use serve_model::metadata::ModelMeta;
use serve_model::outputs::Outputs;
use serve_model::registry::Model;
use serve_model::v2_request::{self, Asked, Data, Header, OutputRequest, Parameters, RawInput};

use crate::pb::{self, InferParameter, infer_parameter::ParameterChoice};

/// A decoded request: its tensors, what to answer, and its id to echo.
pub struct Decoded {
    /// The inputs, in the model's order.
    pub inputs: Inputs,
    /// The outputs to answer, in answer order.
    pub outputs: Vec<Asked>,
    /// The request's id.
    pub id: String,
}

/// An int64 parameter (`classification`, `timeout`), or an error naming it.
pub fn int_parameter(
    parameters: &HashMap<String, InferParameter>,
    name: &str,
    owner: &str,
) -> Result<Option<i64>, ApiError> {
    match parameters
        .get(name)
        .and_then(|p| p.parameter_choice.as_ref())
    {
        None => Ok(None),
        Some(ParameterChoice::Int64Param(v)) => Ok(Some(*v)),
        Some(ParameterChoice::Uint64Param(v)) => Ok(Some(i64::try_from(*v).unwrap_or(i64::MAX))),
        Some(other) => Err(ApiError::bad_request(format!(
            "{owner}: parameter \"{name}\" must be an int64_param, received {other:?}"
        ))),
    }
}

/// Checks and decodes a request's inputs and asked outputs against the model.
pub fn decode(req: pb::ModelInferRequest, meta: &ModelMeta) -> Result<Decoded, ApiError> {
    let raw = req.raw_input_contents;
    if !raw.is_empty() && raw.len() != req.inputs.len() {
        return Err(ApiError::bad_request(format!(
            "raw_input_contents has {} entries but the request has {} inputs: one each, in the \
             inputs' order",
            raw.len(),
            req.inputs.len()
        )));
    }
    let mut raw = raw.into_iter();
    let mut inputs = Vec::with_capacity(req.inputs.len());
    for input in req.inputs {
        let index = meta
            .inputs
            .iter()
            .position(|m| m.name == input.name)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unknown input \"{}\" (the model's inputs are {})",
                    input.name,
                    meta.input_names()
                ))
            })?;
        let datatype = DataType::from_v2(&input.datatype).ok_or_else(|| {
            ApiError::bad_request(format!(
                "input \"{}\": unknown datatype \"{}\" (the model expects {})",
                input.name, input.datatype, meta.inputs[index].datatype
            ))
        })?;
        let data = match (raw.next(), input.contents) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(format!(
                    "input \"{}\" has both contents and raw_input_contents: give one",
                    input.name
                )));
            }
            (Some(bytes), None) => bytes,
            (None, Some(contents)) => typed(&input.name, datatype, contents)?,
            (None, None) => {
                return Err(ApiError::bad_request(format!(
                    "input \"{}\" has no data (neither contents nor raw_input_contents)",
                    input.name
                )));
            }
        };
        inputs.push(RawInput {
            index,
            datatype: Some(datatype),
            shape: Some(input.shape),
            data: Data::Raw(data),
        });
    }
    let mut outputs = Vec::with_capacity(req.outputs.len());
    for o in req.outputs {
        let classification = int_parameter(&o.parameters, "classification", &o.name)?;
        let classification = match classification {
            None => None,
            Some(k) => Some(u64::try_from(k).map_err(|_| {
                ApiError::bad_request(format!(
                    "output \"{}\": classification must be at least 1, received {k}",
                    o.name
                ))
            })?),
        };
        outputs.push(OutputRequest {
            name: o.name,
            parameters: Parameters {
                classification,
                ..Parameters::default()
            },
        });
    }
    let header = Header {
        id: None,
        inputs: inputs.into_iter().collect(),
        outputs,
        binary_output: true,
    };
    let request = v2_request::assemble(header, &[], meta)?;
    Ok(Decoded {
        inputs: request.inputs,
        outputs: request.outputs.into_iter().collect(),
        id: req.id,
    })
}

/// Typed contents in the binary format, after checking that the field given is the one for
/// the datatype.
fn typed(name: &str, dt: DataType, c: pb::InferTensorContents) -> Result<Vec<u8>, ApiError> {
    let field = match dt {
        DataType::Bool => "bool_contents",
        DataType::I8 | DataType::I16 | DataType::I32 => "int_contents",
        DataType::I64 => "int64_contents",
        DataType::U8 | DataType::U16 | DataType::U32 => "uint_contents",
        DataType::U64 => "uint64_contents",
        DataType::F32 => "fp32_contents",
        DataType::F64 => "fp64_contents",
        DataType::Bytes => "bytes_contents",
        _ => {
            return Err(ApiError::bad_request(format!(
                "input \"{name}\": {dt} has no typed contents field in the protocol; send it in \
                 raw_input_contents"
            )));
        }
    };
    let given: Vec<&str> = [
        ("bool_contents", !c.bool_contents.is_empty()),
        ("int_contents", !c.int_contents.is_empty()),
        ("int64_contents", !c.int64_contents.is_empty()),
        ("uint_contents", !c.uint_contents.is_empty()),
        ("uint64_contents", !c.uint64_contents.is_empty()),
        ("fp32_contents", !c.fp32_contents.is_empty()),
        ("fp64_contents", !c.fp64_contents.is_empty()),
        ("bytes_contents", !c.bytes_contents.is_empty()),
    ]
    .into_iter()
    .filter_map(|(f, set)| set.then_some(f))
    .collect();
    if given.iter().any(|g| *g != field) {
        return Err(ApiError::bad_request(format!(
            "input \"{name}\": a {dt} tensor's values go in contents.{field}, received {}",
            given.join(", ")
        )));
    }
    let narrow = |v: i64, min: i64, max: i64| {
        if (min..=max).contains(&v) {
            Ok(v)
        } else {
            Err(ApiError::bad_request(format!(
                "input \"{name}\": {v} does not fit in {dt}"
            )))
        }
    };
    let mut out = Vec::new();
    match dt {
        DataType::Bool => out.extend(c.bool_contents.iter().map(|b| u8::from(*b))),
        DataType::I8 => {
            for v in c.int_contents {
                out.extend((narrow(v.into(), i8::MIN.into(), i8::MAX.into())? as i8).to_le_bytes());
            }
        }
        DataType::I16 => {
            for v in c.int_contents {
                out.extend(
                    (narrow(v.into(), i16::MIN.into(), i16::MAX.into())? as i16).to_le_bytes(),
                );
            }
        }
        DataType::I32 => out.extend(c.int_contents.iter().flat_map(|v| v.to_le_bytes())),
        DataType::I64 => out.extend(c.int64_contents.iter().flat_map(|v| v.to_le_bytes())),
        DataType::U8 => {
            for v in c.uint_contents {
                out.push(narrow(v.into(), 0, u8::MAX.into())? as u8);
            }
        }
        DataType::U16 => {
            for v in c.uint_contents {
                out.extend((narrow(v.into(), 0, u16::MAX.into())? as u16).to_le_bytes());
            }
        }
        DataType::U32 => out.extend(c.uint_contents.iter().flat_map(|v| v.to_le_bytes())),
        DataType::U64 => out.extend(c.uint64_contents.iter().flat_map(|v| v.to_le_bytes())),
        DataType::F32 => out.extend(c.fp32_contents.iter().flat_map(|v| v.to_le_bytes())),
        DataType::F64 => out.extend(c.fp64_contents.iter().flat_map(|v| v.to_le_bytes())),
        DataType::Bytes => {
            for v in c.bytes_contents {
                let len = u32::try_from(v.len()).map_err(|_| {
                    ApiError::bad_request(format!("input \"{name}\": an element of 4 GiB or more"))
                })?;
                out.extend(len.to_le_bytes());
                out.extend(v);
            }
        }
        _ => unreachable!("refused above"),
    }
    Ok(out)
}

/// The answer: every output asked (all of them when none was) in `raw_output_contents`.
pub fn encode(
    model: &Model,
    id: String,
    asked: &[Asked],
    outputs: &Outputs,
) -> Result<pb::ModelInferResponse, ApiError> {
    let mut tensors = Vec::with_capacity(asked.len());
    let mut raw = Vec::with_capacity(asked.len());
    for a in asked {
        let classified = match a.classification {
            0 => None,
            _ => Some(serve_model::v2::classification(
                model,
                a,
                &outputs.view(a.index)?,
            )?),
        };
        let view = match &classified {
            Some(classes) => classes.view(0)?,
            None => outputs.view(a.index)?,
        };
        let mut bytes = Vec::new();
        serve_model::codec_binary::encode(&mut bytes, &view)?;
        tensors.push(pb::model_infer_response::InferOutputTensor {
            name: model.meta.outputs[a.index].name.clone(),
            datatype: view.datatype.as_str().to_owned(),
            shape: view.shape.iter().map(|d| *d as i64).collect(),
            parameters: HashMap::new(),
            contents: None,
        });
        raw.push(bytes);
    }
    Ok(pb::ModelInferResponse {
        model_name: model.name.clone(),
        model_version: model.version.clone(),
        id,
        parameters: HashMap::new(),
        outputs: tensors,
        raw_output_contents: raw,
    })
}
