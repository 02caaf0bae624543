//! What a model takes and gives, read from the ONNX protobuf without building a plan.
//!
//! The master checks every model at start (before any fork) and each worker builds its app
//! (on its first request, even a liveness probe) before it has loaded anything, so metadata
//! must be cheap in time and in memory: [`ModelMeta::from_reader`] walks the protobuf and
//! decodes only the graph's inputs, outputs and initializer names; every other field (the
//! nodes, the weights) is skipped with a seek, never read nor allocated, so a 21 MB model
//! costs a few kilobytes of reading. Typing and optimizing the graph is what costs (and what
//! an engine does lazily). The same facts drive request validation: names,
//! datatypes and shapes, with `None` for a variable dimension.

use std::collections::HashSet;
use std::io::{Read, Seek};

use crate::datatype::DataType;
use crate::onnx_pb as pb;

/// Why a model cannot be opened: its bytes read, its interface understood. Each variant
/// holds the one-line message a user sees (the cause and, where there is one, the fix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// The file cannot be read.
    Read(String),
    /// The bytes are not an ONNX model (not protobuf, no graph, no outputs).
    NotOnnx(String),
    /// An ONNX model whose interface serve cannot carry (an input that is a map, an output
    /// no ZipMap makes a tensor, an element type without a protocol name).
    Unsupported(String),
}

impl OpenError {
    /// The message.
    pub fn message(&self) -> &str {
        match self {
            OpenError::Read(m) | OpenError::NotOnnx(m) | OpenError::Unsupported(m) => m,
        }
    }

    /// The same error, its message prefixed (`model.onnx: ...`).
    pub fn context(self, prefix: impl std::fmt::Display) -> OpenError {
        let with = |m: String| format!("{prefix}: {m}");
        match self {
            OpenError::Read(m) => OpenError::Read(with(m)),
            OpenError::NotOnnx(m) => OpenError::NotOnnx(with(m)),
            OpenError::Unsupported(m) => OpenError::Unsupported(with(m)),
        }
    }
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for OpenError {}

/// The messages of the layers above, which speak in one-line strings.
impl From<OpenError> for String {
    fn from(e: OpenError) -> String {
        e.to_string()
    }
}

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

    /// Whether `shape` fits these dimensions: the same rank, and the size wherever one is
    /// fixed.
    pub fn all_fit(dims: &[Dim], shape: &[usize]) -> bool {
        dims.len() == shape.len()
            && dims
                .iter()
                .zip(shape)
                .all(|(d, &s)| d.fixed().is_none_or(|f| f == s))
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
    /// For the probabilities of a ZipMap output: the class label of each column, which the
    /// file's ZipMap keys each row's map with. serve answers the probabilities as the
    /// tensor `[N, C]` and renders a row as `{label: probability}` where the protocol
    /// answers rows as JSON objects (V1, manifest routes).
    pub classes: Option<Classes>,
}

/// The class labels of a ZipMap: integers or strings, one per probability column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Classes {
    /// `classlabels_int64s`.
    Ints(Vec<i64>),
    /// `classlabels_strings`.
    Strings(Vec<String>),
}

impl Classes {
    /// The number of classes.
    pub fn len(&self) -> usize {
        match self {
            Classes::Ints(v) => v.len(),
            Classes::Strings(v) => v.len(),
        }
    }

    /// True when there is no class.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The labels as a JSON array (V2 metadata's `parameters.classes`).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Classes::Ints(v) => serde_json::json!(v),
            Classes::Strings(v) => serde_json::json!(v),
        }
    }
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

    /// Whether a tensor of this shape fits the declared one: the same rank, and the
    /// declared size wherever one is fixed (any shape fits when even the rank is unknown).
    pub fn fits(&self, shape: &[usize]) -> bool {
        self.shape
            .as_deref()
            .is_none_or(|dims| Dim::all_fit(dims, shape))
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
    pub fn from_onnx(bytes: &[u8]) -> Result<ModelMeta, OpenError> {
        Self::from_reader(std::io::Cursor::new(bytes))
    }

    /// Reads the interface from an ONNX file (or any seekable reader), reading only the
    /// bytes of the graph's inputs and outputs and of the initializers' names: the weights
    /// and the nodes are skipped with seeks. The error is one line naming the cause.
    pub fn from_reader<R: Read + Seek>(reader: R) -> Result<ModelMeta, OpenError> {
        let graph = scan::graph(reader).map_err(|e| match e {
            scan::Error::Io(e) => {
                OpenError::Read(format!("cannot read: {}", crate::io_error::io_cause(&e)))
            }
            scan::Error::Proto(e) => {
                OpenError::NotOnnx(format!("not an ONNX model (protobuf: {e})"))
            }
        })?;
        let graph = graph.ok_or_else(no_graph)?;
        let initializers: HashSet<&str> = graph.initializers.iter().map(String::as_str).collect();
        Self::from_parts(&initializers, &graph.inputs, &graph.outputs, &graph.zipmaps)
    }

    /// Reads the interface from a decoded ONNX model (what [`ModelMeta::from_reader`] reads
    /// without decoding it).
    pub fn from_proto(proto: &pb::ModelProto) -> Result<ModelMeta, OpenError> {
        let graph = proto.graph.as_ref().ok_or_else(no_graph)?;
        let initializers: HashSet<&str> =
            graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let zipmaps: Vec<pb::NodeProto> = graph
            .node
            .iter()
            .filter(|n| n.op_type == "ZipMap")
            .cloned()
            .collect();
        Self::from_parts(&initializers, &graph.input, &graph.output, &zipmaps)
    }

    fn from_parts(
        initializers: &HashSet<&str>,
        inputs: &[pb::ValueInfoProto],
        outputs: &[pb::ValueInfoProto],
        zipmaps: &[pb::NodeProto],
    ) -> Result<ModelMeta, OpenError> {
        let inputs = inputs
            .iter()
            .filter(|i| !initializers.contains(i.name.as_str()))
            .map(input_meta)
            .collect::<Result<Vec<_>, _>>()
            .map_err(OpenError::Unsupported)?;
        let outputs = outputs
            .iter()
            .map(|o| output_meta(o, zipmaps))
            .collect::<Result<Vec<_>, _>>()
            .map_err(OpenError::Unsupported)?;
        if outputs.is_empty() {
            return Err(OpenError::NotOnnx("the graph has no outputs".into()));
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

fn no_graph() -> OpenError {
    OpenError::NotOnnx("not an ONNX model (it has no graph)".into())
}

/// Names as `"a", "b", "c"`, for messages.
pub fn quoted_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn input_meta(info: &pb::ValueInfoProto) -> Result<TensorMeta, String> {
    tensor_meta(info, "input").ok_or_else(|| {
        format!(
            "input \"{}\" is not a tensor (a map or a sequence, as DictVectorizer and CastMap \
             take), and serve receives tensors only; export the model with a float array input \
             (in scikit-learn, put the features in an array instead of a DictVectorizer)",
            info.name
        )
    })?
}

/// An output's interface. An output that is not a tensor is served when a ZipMap makes it:
/// as the probabilities ZipMap was given, `[N, C]` FP32, with ZipMap's class labels.
fn output_meta(info: &pb::ValueInfoProto, zipmaps: &[pb::NodeProto]) -> Result<TensorMeta, String> {
    if let Some(meta) = tensor_meta(info, "output") {
        return meta;
    }
    let name = &info.name;
    let Some(node) = zipmaps.iter().find(|n| n.output.first() == Some(name)) else {
        return Err(format!(
            "output \"{name}\" is not a tensor (a sequence or a map) and no ZipMap makes it, so \
             serve cannot answer it; change the model to output a tensor"
        ));
    };
    let classes = zipmap_classes(node).map_err(|e| format!("output \"{name}\": {e}"))?;
    Ok(TensorMeta {
        name: name.clone(),
        datatype: DataType::F32,
        shape: Some(vec![Dim::Var(None), Dim::Fixed(classes.len())]),
        classes: Some(classes),
    })
}

/// A ZipMap node's labels: exactly one of `classlabels_int64s` and `classlabels_strings`
/// (the rule the engines' ZipMap applies when it runs, e.g. serve-onnx-ml's for tract).
fn zipmap_classes(node: &pb::NodeProto) -> Result<Classes, String> {
    match (
        node.attribute("classlabels_int64s"),
        node.attribute("classlabels_strings"),
    ) {
        (Some(ints), None) => Ok(Classes::Ints(ints.ints.clone())),
        (None, Some(strings)) => strings
            .strings
            .iter()
            .map(|s| {
                String::from_utf8(s.clone()).map_err(|_| {
                    format!("ZipMap node \"{}\": a class label is not UTF-8", node.name)
                })
            })
            .collect::<Result<_, _>>()
            .map(Classes::Strings),
        _ => Err(format!(
            "ZipMap node \"{}\" needs exactly one of classlabels_int64s and classlabels_strings",
            node.name
        )),
    }
}

/// A tensor's interface; `None` when the value is not a tensor.
fn tensor_meta(info: &pb::ValueInfoProto, kind: &str) -> Option<Result<TensorMeta, String>> {
    let name = &info.name;
    let t = info.r#type.as_ref().and_then(|t| t.tensor_type.as_ref())?;
    let Some(datatype) = DataType::from_onnx(t.elem_type) else {
        return Some(Err(format!(
            "{kind} \"{name}\" has type {}, which serve cannot carry",
            DataType::onnx_name(t.elem_type)
        )));
    };
    let shape = t.shape.as_ref().map(|s| s.dim.iter().map(dim).collect());
    Some(Ok(TensorMeta {
        name: name.clone(),
        datatype,
        shape,
        classes: None,
    }))
}

fn dim(d: &pb::Dimension) -> Dim {
    use pb::DimensionValue as Value;
    match &d.value {
        Some(Value::Value(v)) if *v > 0 => Dim::Fixed(*v as usize),
        // 0 or negative sizes are how some exporters spell "variable".
        Some(Value::Value(_)) => Dim::Var(None),
        Some(Value::Param(p)) if !p.is_empty() && p != "?" => Dim::Var(Some(p.clone())),
        _ => Dim::Var(None),
    }
}

/// A protobuf walker for the few fields metadata needs: `ModelProto.graph` (7), and in the
/// graph `initializer` (5, only their `name`, 8), `input` (11), `output` (12) and the nodes
/// (1) whose `op_type` (4) is ZipMap (decoded whole; of the others only the op type is
/// read). Every other field is skipped by seeking past it. Lengths are checked against the enclosing
/// message before anything is read or allocated from them.
mod scan {
    use std::io::{BufReader, Read, Seek, SeekFrom};

    use prost::Message;

    use crate::onnx_pb as pb;

    /// What the walk found in the graph.
    #[derive(Default)]
    pub(super) struct Graph {
        pub initializers: Vec<String>,
        pub inputs: Vec<pb::ValueInfoProto>,
        pub outputs: Vec<pb::ValueInfoProto>,
        /// The ZipMap nodes, whole (their labels name the columns of the outputs they make).
        pub zipmaps: Vec<pb::NodeProto>,
    }

    pub(super) enum Error {
        /// Reading failed.
        Io(std::io::Error),
        /// The bytes are not protobuf of the expected shape.
        Proto(String),
    }

    impl From<std::io::Error> for Error {
        fn from(e: std::io::Error) -> Self {
            Error::Io(e)
        }
    }

    fn bad(what: impl Into<String>) -> Error {
        Error::Proto(what.into())
    }

    const LEN: u8 = 2;

    struct Walker<R> {
        inner: BufReader<R>,
        pos: u64,
    }

    impl<R: Read + Seek> Walker<R> {
        fn byte(&mut self) -> Result<u8, Error> {
            let mut b = [0u8];
            self.inner.read_exact(&mut b)?;
            self.pos += 1;
            Ok(b[0])
        }

        fn varint(&mut self, end: u64) -> Result<u64, Error> {
            let mut value = 0u64;
            for shift in (0..64).step_by(7) {
                if self.pos >= end {
                    return Err(bad("a varint runs past the end of its message"));
                }
                let b = self.byte()?;
                value |= u64::from(b & 0x7f) << shift;
                if b < 0x80 {
                    return Ok(value);
                }
            }
            Err(bad("a varint is longer than 10 bytes"))
        }

        /// The next field's number and wire type.
        fn key(&mut self, end: u64) -> Result<(u64, u8), Error> {
            let key = self.varint(end)?;
            let (field, wire) = (key >> 3, (key & 7) as u8);
            if field == 0 {
                return Err(bad("field number 0"));
            }
            Ok((field, wire))
        }

        /// The end of a length-delimited field whose length comes next.
        fn length(&mut self, end: u64) -> Result<u64, Error> {
            let n = self.varint(end)?;
            self.pos
                .checked_add(n)
                .filter(|&to| to <= end)
                .ok_or_else(|| bad(format!("a field of {n} bytes runs past the end")))
        }

        fn seek_to(&mut self, to: u64, end: u64) -> Result<(), Error> {
            if to > end {
                return Err(bad("a field runs past the end"));
            }
            let by = i64::try_from(to)
                .ok()
                .zip(i64::try_from(self.pos).ok())
                .map(|(to, pos)| to - pos)
                .ok_or_else(|| bad("a field is too long"))?;
            self.inner.seek_relative(by)?;
            self.pos = to;
            Ok(())
        }

        fn skip(&mut self, wire: u8, end: u64) -> Result<(), Error> {
            match wire {
                0 => self.varint(end).map(drop),
                1 => self.seek_to(self.pos + 8, end),
                LEN => {
                    let to = self.length(end)?;
                    self.seek_to(to, end)
                }
                5 => self.seek_to(self.pos + 4, end),
                w => Err(bad(format!("invalid wire type {w}"))),
            }
        }

        fn bytes(&mut self, to: u64) -> Result<Vec<u8>, Error> {
            let mut buf = vec![0u8; (to - self.pos) as usize];
            self.inner.read_exact(&mut buf)?;
            self.pos = to;
            Ok(buf)
        }

        fn expect_len(wire: u8, what: &str) -> Result<(), Error> {
            if wire == LEN {
                Ok(())
            } else {
                Err(bad(format!("{what} has wire type {wire}")))
            }
        }

        fn graph(&mut self, end: u64, graph: &mut Graph) -> Result<(), Error> {
            while self.pos < end {
                let (field, wire) = self.key(end)?;
                match field {
                    5 => {
                        Self::expect_len(wire, "an initializer")?;
                        let to = self.length(end)?;
                        let name = self.tensor_name(to)?;
                        graph.initializers.push(name);
                    }
                    1 => {
                        Self::expect_len(wire, "a node")?;
                        let to = self.length(end)?;
                        let start = self.pos;
                        if self.op_type(to)? == "ZipMap" {
                            self.seek_to(start, to)?;
                            let node = pb::NodeProto::decode(&self.bytes(to)?[..])
                                .map_err(|e| bad(e.to_string()))?;
                            graph.zipmaps.push(node);
                        }
                        self.seek_to(to, end)?;
                    }
                    11 | 12 => {
                        Self::expect_len(wire, "a graph input or output")?;
                        let to = self.length(end)?;
                        let info = pb::ValueInfoProto::decode(&self.bytes(to)?[..])
                            .map_err(|e| bad(e.to_string()))?;
                        match field {
                            11 => graph.inputs.push(info),
                            _ => graph.outputs.push(info),
                        }
                    }
                    _ => self.skip(wire, end)?,
                }
            }
            Ok(())
        }

        /// A NodeProto's `op_type` (4); its attributes are skipped. Stops at the op type.
        fn op_type(&mut self, end: u64) -> Result<String, Error> {
            while self.pos < end {
                let (field, wire) = self.key(end)?;
                if field == 4 && wire == LEN {
                    let to = self.length(end)?;
                    return String::from_utf8(self.bytes(to)?)
                        .map_err(|_| bad("an op type is not UTF-8"));
                }
                self.skip(wire, end)?;
            }
            Ok(String::new())
        }

        /// A TensorProto's `name` (8); its data is skipped.
        fn tensor_name(&mut self, end: u64) -> Result<String, Error> {
            let mut name = String::new();
            while self.pos < end {
                let (field, wire) = self.key(end)?;
                if field == 8 && wire == LEN {
                    let to = self.length(end)?;
                    name = String::from_utf8(self.bytes(to)?)
                        .map_err(|_| bad("a tensor name is not UTF-8"))?;
                } else {
                    self.skip(wire, end)?;
                }
            }
            Ok(name)
        }
    }

    /// The graph of a ModelProto; `None` when it has none. Repeated graph fields merge, as
    /// protobuf says.
    pub(super) fn graph<R: Read + Seek>(mut reader: R) -> Result<Option<Graph>, Error> {
        let end = reader.seek(SeekFrom::End(0))?;
        reader.seek(SeekFrom::Start(0))?;
        let mut w = Walker {
            inner: BufReader::with_capacity(8 * 1024, reader),
            pos: 0,
        };
        let mut found: Option<Graph> = None;
        while w.pos < end {
            let (field, wire) = w.key(end)?;
            if field == 7 {
                Walker::<R>::expect_len(wire, "the graph")?;
                let to = w.length(end)?;
                w.graph(to, found.get_or_insert_with(Graph::default))?;
            } else {
                w.skip(wire, end)?;
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::fixtures;
    use prost::Message;

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
        assert!(matches!(&e, OpenError::NotOnnx(m) if m.starts_with("not an ONNX model")));
        let e = ModelMeta::from_onnx(b"").unwrap_err();
        assert!(
            matches!(&e, OpenError::NotOnnx(m) if m.contains("no graph")),
            "{e}"
        );
    }

    #[test]
    fn the_walker_reads_what_a_full_decode_reads() {
        for bytes in [
            fixtures::iris_like(),
            fixtures::classifier(),
            fixtures::records(),
            fixtures::identities(),
            fixtures::with_initializer_input(),
            fixtures::conflicting_value_info(),
            fixtures::fixed_shape(),
            fixtures::variable_row(),
            fixtures::with_weights(1 << 10),
        ] {
            let full = ModelMeta::from_proto(&pb::ModelProto::decode(&bytes[..]).unwrap());
            assert_eq!(ModelMeta::from_onnx(&bytes), full);
        }
    }

    /// A reader that counts the bytes it hands out.
    struct Counting<R> {
        inner: R,
        read: std::rc::Rc<std::cell::Cell<u64>>,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read.set(self.read.get() + n as u64);
            Ok(n)
        }
    }

    impl<R: Seek> Seek for Counting<R> {
        fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
            self.inner.seek(pos)
        }
    }

    #[test]
    fn weights_are_skipped_not_read() {
        let bytes = fixtures::with_weights(20 << 20);
        assert!(bytes.len() > 20 << 20);
        let read = std::rc::Rc::new(std::cell::Cell::new(0));
        let meta = ModelMeta::from_reader(Counting {
            inner: std::io::Cursor::new(&bytes[..]),
            read: read.clone(),
        })
        .unwrap();
        assert_eq!(meta.input_names(), "\"x\"");
        assert_eq!(meta.output_names(), "\"y\"");
        // The reader's buffer is 8 KiB: a few of them, against a 20 MiB file.
        assert!(read.get() < 64 << 10, "{} bytes read", read.get());
    }

    #[test]
    fn truncated_files_are_not_onnx_models() {
        let bytes = fixtures::with_weights(1 << 20);
        for cut in [bytes.len() - 1, bytes.len() / 2, 3] {
            let e = ModelMeta::from_onnx(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(&e, OpenError::NotOnnx(m) if m.starts_with("not an ONNX model (protobuf: ")),
                "{e}"
            );
        }
    }

    #[test]
    fn a_file_source_is_read_once() {
        let dir = fixtures::TempDir::new("meta");
        let path = dir.file("m.onnx", &fixtures::with_weights(1 << 20));
        let source = crate::source::Source::read_file(path).unwrap();
        drop(dir);
        // The file is gone: the bytes read from it are what counts.
        let meta = source.read_meta().unwrap();
        assert_eq!(meta.inputs[0].shape_i64(), vec![-1, 2]);
    }

    #[test]
    fn non_tensor_outputs_are_named() {
        let e = ModelMeta::from_onnx(&fixtures::sequence_output()).unwrap_err();
        assert!(matches!(e, OpenError::Unsupported(_)), "{e:?}");
        assert!(
            e.message()
                .contains("output \"probs\" is not a tensor (a sequence or a map) and no ZipMap"),
            "{e}"
        );
        // Opened as a model, the message names the file.
        let source = crate::source::Source::Bytes("seq", fixtures::sequence_output().into());
        let e = crate::model::Model::open(
            "m".into(),
            source,
            Default::default(),
            None,
            std::sync::Arc::new(crate::tract::Tract),
        )
        .err()
        .unwrap();
        assert!(e.message().starts_with("<seq>: output \"probs\""), "{e}");
    }

    #[test]
    fn a_zipmap_output_is_its_probabilities_with_their_labels() {
        for (strings, classes) in [
            (false, Classes::Ints(vec![0, 1, 2])),
            (
                true,
                Classes::Strings(vec!["a".into(), "b".into(), "c".into()]),
            ),
        ] {
            let bytes = fixtures::zipmap(strings);
            let meta = ModelMeta::from_onnx(&bytes).unwrap();
            let probs = &meta.outputs[1];
            assert_eq!(probs.name, "output_probability");
            assert_eq!(probs.datatype, DataType::F32);
            assert_eq!(probs.shape_i64(), vec![-1, 3]);
            assert_eq!(probs.classes.as_ref(), Some(&classes));
            assert!(meta.outputs[0].classes.is_none());
            let full = ModelMeta::from_proto(&pb::ModelProto::decode(&bytes[..]).unwrap());
            assert_eq!(Ok(meta), full);
        }
    }
}
