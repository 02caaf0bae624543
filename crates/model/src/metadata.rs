//! What a model takes and gives, read from the ONNX protobuf without building a plan.
//!
//! The master checks every model at start (before any fork) and each worker answers
//! `GET /v2/models/{m}` before it has loaded anything, so metadata must be cheap: parsing
//! the protobuf is a fraction of a millisecond for small models, while typing and optimizing
//! the graph is what costs (and what [`crate::loader`] does lazily). The same facts drive
//! request validation: names, datatypes and shapes, with `None` for a variable dimension.

use prost::Message;
use tract_onnx::pb;

use crate::datatype::DataType;

/// One dimension of a declared shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A variable size (`dim_param`, or unknown); the name, when the file gives one, lets
    /// inputs that share a symbol share it in tract too.
    Var(Option<String>),
}

impl Dim {
    /// The size as the protocol prints it: -1 when variable.
    pub fn as_i64(&self) -> i64 {
        match self {
            Dim::Fixed(n) => *n as i64,
            Dim::Var(_) => -1,
        }
    }

    /// The fixed size, if any.
    pub fn fixed(&self) -> Option<usize> {
        match self {
            Dim::Fixed(n) => Some(*n),
            Dim::Var(_) => None,
        }
    }
}

/// One input or output of a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorMeta {
    /// The name in the ONNX graph (what requests use).
    pub name: String,
    /// The element type.
    pub datatype: DataType,
    /// The declared shape; `None` when the file does not declare a rank.
    pub shape: Option<Vec<Dim>>,
}

impl TensorMeta {
    /// The shape as the protocol prints it: -1 for variable dimensions, `[-1]` when even
    /// the rank is unknown.
    pub fn shape_i64(&self) -> Vec<i64> {
        match &self.shape {
            Some(dims) => dims.iter().map(Dim::as_i64).collect(),
            None => vec![-1],
        }
    }

    /// True when the first dimension is variable: the batch dimension that requests may
    /// size freely and that the executor may merge along.
    pub fn has_batch_dim(&self) -> bool {
        matches!(self.shape.as_deref(), Some([Dim::Var(_), ..]))
    }

    /// The dimensions after the batch one, when the first is the batch.
    pub fn row_dims(&self) -> Option<&[Dim]> {
        match self.shape.as_deref() {
            Some([Dim::Var(_), rest @ ..]) => Some(rest),
            _ => None,
        }
    }

    /// The number of elements per row when every dimension after the batch is fixed.
    pub fn fixed_row_size(&self) -> Option<usize> {
        self.row_dims()?
            .iter()
            .try_fold(1usize, |acc, d| acc.checked_mul(d.fixed()?))
    }
}

/// A model's interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelMeta {
    /// The graph inputs that are not initializers, in graph order (the plan's order).
    pub inputs: Vec<TensorMeta>,
    /// The graph outputs, in graph order.
    pub outputs: Vec<TensorMeta>,
}

impl ModelMeta {
    /// Reads the interface from ONNX protobuf bytes. The error is one line naming the
    /// cause; the caller adds the file.
    pub fn from_onnx(bytes: &[u8]) -> Result<ModelMeta, String> {
        let proto = pb::ModelProto::decode(bytes)
            .map_err(|e| format!("not an ONNX model (protobuf: {e})"))?;
        Self::from_proto(&proto)
    }

    /// Reads the interface from a decoded ONNX model.
    pub fn from_proto(proto: &pb::ModelProto) -> Result<ModelMeta, String> {
        let graph = proto
            .graph
            .as_ref()
            .ok_or("not an ONNX model (it has no graph)")?;
        let initializers: std::collections::HashSet<&str> =
            graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs = graph
            .input
            .iter()
            .filter(|i| !initializers.contains(i.name.as_str()))
            .map(|i| tensor_meta(i, "input"))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = graph
            .output
            .iter()
            .map(|o| tensor_meta(o, "output"))
            .collect::<Result<Vec<_>, _>>()?;
        if outputs.is_empty() {
            return Err("the graph has no outputs".into());
        }
        Ok(ModelMeta { inputs, outputs })
    }

    /// The index of the input of this name.
    pub fn input_index(&self, name: &str) -> Option<usize> {
        self.inputs.iter().position(|i| i.name == name)
    }

    /// The index of the output of this name.
    pub fn output_index(&self, name: &str) -> Option<usize> {
        self.outputs.iter().position(|o| o.name == name)
    }

    /// The input names, quoted and comma-separated, for error messages.
    pub fn input_names(&self) -> String {
        quoted_list(self.inputs.iter().map(|i| i.name.as_str()))
    }

    /// The output names, quoted and comma-separated, for error messages.
    pub fn output_names(&self) -> String {
        quoted_list(self.outputs.iter().map(|o| o.name.as_str()))
    }
}

pub(crate) fn quoted_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn tensor_meta(info: &pb::ValueInfoProto, kind: &str) -> Result<TensorMeta, String> {
    let name = &info.name;
    let Some(pb::type_proto::Value::TensorType(t)) =
        info.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(format!(
            "{kind} \"{name}\" is not a tensor (a sequence or a map, as scikit-learn's ZipMap \
             makes; export with zipmap=False)"
        ));
    };
    let datatype = DataType::from_onnx(t.elem_type).ok_or_else(|| {
        format!(
            "{kind} \"{name}\" has type {}, which serve cannot carry",
            DataType::onnx_name(t.elem_type)
        )
    })?;
    let shape = t.shape.as_ref().map(|s| s.dim.iter().map(dim).collect());
    Ok(TensorMeta {
        name: name.clone(),
        datatype,
        shape,
    })
}

fn dim(d: &pb::tensor_shape_proto::Dimension) -> Dim {
    use pb::tensor_shape_proto::dimension::Value;
    match &d.value {
        Some(Value::DimValue(v)) if *v > 0 => Dim::Fixed(*v as usize),
        // 0 or negative sizes are how some exporters spell "variable".
        Some(Value::DimValue(_)) => Dim::Var(None),
        Some(Value::DimParam(p)) if !p.is_empty() && p != "?" => Dim::Var(Some(p.clone())),
        _ => Dim::Var(None),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn reads_inputs_and_outputs_without_building() {
        let meta = ModelMeta::from_onnx(&fixtures::iris_like()).unwrap();
        assert_eq!(meta.inputs.len(), 1);
        assert_eq!(meta.inputs[0].name, "input");
        assert_eq!(meta.inputs[0].datatype, DataType::F32);
        assert_eq!(meta.inputs[0].shape_i64(), vec![-1, 4]);
        assert!(meta.inputs[0].has_batch_dim());
        assert_eq!(meta.inputs[0].fixed_row_size(), Some(4));
        assert_eq!(meta.outputs[0].name, "y");
        assert_eq!(meta.output_index("y"), Some(0));
    }

    #[test]
    fn initializers_listed_as_inputs_are_not_inputs() {
        let meta = ModelMeta::from_onnx(&fixtures::with_initializer_input()).unwrap();
        assert_eq!(meta.input_names(), "\"x\"");
    }

    #[test]
    fn garbage_is_not_an_onnx_model() {
        let e = ModelMeta::from_onnx(b"hello world, certainly not protobuf").unwrap_err();
        assert!(e.starts_with("not an ONNX model"), "{e}");
        let e = ModelMeta::from_onnx(b"").unwrap_err();
        assert!(e.contains("no graph"), "{e}");
    }

    #[test]
    fn non_tensor_outputs_are_named() {
        let e = ModelMeta::from_onnx(&fixtures::zipmap_output()).unwrap_err();
        assert!(e.contains("output \"probs\" is not a tensor"), "{e}");
    }
}
