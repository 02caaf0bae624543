//! The few ONNX protobuf messages metadata reads, declared here (field numbers as in
//! onnx.proto), so that what a model takes and gives is read the same for every engine,
//! without any engine's types: the master reads it before any fork and must load no engine.
//! Fields not declared are skipped by the decoder, as protobuf says; a `TypeProto` that is
//! not a tensor (a sequence, a map) decodes with no `tensor_type`.

/// `ModelProto`: only its graph (7).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    /// The graph.
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
}

/// `GraphProto`: its nodes (1), initializers (5), inputs (11) and outputs (12).
#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphProto {
    /// The nodes.
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// The initializers (weights); only their names are declared.
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorName>,
    /// The graph's inputs (initializers may be listed among them).
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    /// The graph's outputs.
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

/// A `TensorProto`'s name (8); its data is not declared, so never decoded.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorName {
    /// The name.
    #[prost(string, tag = "8")]
    pub name: String,
}

/// `ValueInfoProto`: a graph input's or output's name (1) and type (2).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfoProto {
    /// The name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The type.
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

/// `TypeProto`, of which only `tensor_type` (1) is declared.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProto {
    /// The tensor type; `None` for any other value (a sequence, a map).
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TensorTypeProto>,
}

/// `TypeProto.Tensor`: the element type (1) and the shape (2).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorTypeProto {
    /// `TensorProto.DataType`'s number.
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
    /// The shape; `None` when the file gives none (any rank).
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

/// `TensorShapeProto`: its dimensions (1).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// The dimensions.
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

/// `TensorShapeProto.Dimension`: a size (1) or a symbol (2).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dimension {
    /// The size or the symbol; `None` when unknown.
    #[prost(oneof = "DimensionValue", tags = "1, 2")]
    pub value: Option<DimensionValue>,
}

/// A dimension's size or symbol.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum DimensionValue {
    /// `dim_value`.
    #[prost(int64, tag = "1")]
    Value(i64),
    /// `dim_param`.
    #[prost(string, tag = "2")]
    Param(String),
}

/// `NodeProto`: its inputs (1), outputs (2), name (3), op type (4) and attributes (5).
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeProto {
    /// The inputs' names.
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// The outputs' names.
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// The node's name.
    #[prost(string, tag = "3")]
    pub name: String,
    /// The operator.
    #[prost(string, tag = "4")]
    pub op_type: String,
    /// The attributes.
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

/// `AttributeProto`: its name (1) and the list values ZipMap's labels use: `ints` (8) and
/// `strings` (9).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeProto {
    /// The name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// A list of integers.
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    /// A list of byte strings.
    #[prost(bytes = "vec", repeated, tag = "9")]
    pub strings: Vec<Vec<u8>>,
}

impl NodeProto {
    /// The attribute of this name.
    pub fn attribute(&self, name: &str) -> Option<&AttributeProto> {
        self.attribute.iter().find(|a| a.name == name)
    }
}
