//! Example requests: what the front page's forms hold and its `curl` lines send, and what
//! `/openapi.json` gives as each operation's example.
//!
//! A manifest writes an example as a user thinks of one request (see [`crate::manifest`],
//! "Examples"): one row of each input for a model, a record for a route. This module turns
//! them into the protocols' bodies and checks each with the decoder that will read it, so a
//! wrong example stops the start naming the key instead of failing a user's first click.
//! Where there is none it makes a placeholder from the metadata (zeros of the input's shape
//! with batch 1), which the decoders accept too: the page always has a body that answers.
//!
//! Bodies are kept as JSON text written here, keys in the order the user (or the model)
//! gives them, since that is what a person reads in the form; `serde_json::Value`'s maps
//! would sort them.

use crate::datatype::DataType;
use crate::metadata::{Dim, ModelMeta, TensorMeta};
use crate::records::{self, RecordSpec};

/// A model's example bodies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelExamples {
    /// A V2 infer body.
    pub v2: String,
    /// A V1 `:predict` body (`{"instances": [...]}`); `None` when an input has no batch
    /// dimension, which V1's rows cannot feed.
    pub v1: Option<String>,
    /// Whether the manifest (or the embedded iris) gave it; false for a placeholder.
    pub given: bool,
}

impl ModelExamples {
    /// Placeholders made from the metadata.
    pub fn placeholders(meta: &ModelMeta) -> ModelExamples {
        let rows: Vec<Row> = meta.inputs.iter().map(placeholder_row).collect();
        ModelExamples {
            v2: v2_body(meta, &rows),
            v1: v1_body(meta, &rows),
            given: false,
        }
    }

    /// The bodies for `rows` (a `[model.example]`: input name → one row), or placeholders
    /// when there is none. A given example is checked by V2's and V1's decoders; the error
    /// is one line starting `example: `.
    pub fn new(meta: &ModelMeta, rows: Option<&toml::Table>) -> Result<ModelExamples, String> {
        let Some(given) = rows else {
            return Ok(ModelExamples::placeholders(meta));
        };
        if let Some(unknown) = given.keys().find(|k| meta.input_index(k).is_none()) {
            return Err(format!(
                "example: unknown input \"{unknown}\" (the model's inputs are {})",
                meta.input_names()
            ));
        }
        let rows = meta
            .inputs
            .iter()
            .map(|t| {
                let value = given.get(&t.name).ok_or_else(|| {
                    format!(
                        "example: input \"{}\" is missing (the model's inputs are {})",
                        t.name,
                        meta.input_names()
                    )
                })?;
                given_row(t, value).map_err(|e| format!("example: input \"{}\": {e}", t.name))
            })
            .collect::<Result<Vec<Row>, String>>()?;
        let v2 = v2_body(meta, &rows);
        crate::v2_request::decode(v2.as_bytes(), None, meta)
            .map_err(|e| format!("example: {}", e.message()))?;
        let v1 = v1_body(meta, &rows);
        if let Some(v1) = &v1 {
            crate::v1::decode(v1.as_bytes(), meta, &RecordSpec::by_name(meta))
                .map_err(|e| format!("example (as V1 instances): {}", e.message()))?;
        }
        Ok(ModelExamples {
            v2,
            v1,
            given: true,
        })
    }
}

/// A route's example record: `given` (a `[route.example]`) checked by the route's own
/// decoder, or a placeholder with every record key. The error is one line starting
/// `example: `.
pub fn route_record(
    meta: &ModelMeta,
    spec: &RecordSpec,
    given: Option<&toml::Value>,
) -> Result<String, String> {
    let Some(given) = given else {
        let fields: Vec<String> = spec
            .key_feeds()
            .map(|(key, input, shared)| {
                let t = &meta.inputs[input];
                let value = if shared {
                    zero(t.datatype).to_string()
                } else {
                    placeholder_row(t).json
                };
                format!("{}: {value}", json_str(key))
            })
            .collect();
        return Ok(format!("{{{}}}", fields.join(", ")));
    };
    let text = toml_json(given).map_err(|e| format!("example: {e}"))?;
    records::decode(text.as_bytes(), meta, spec)
        .map_err(|e| format!("example: {}", e.message()))?;
    Ok(text)
}

/// One row of one input: as written (for records and V1), and flattened (for V2).
#[derive(Debug)]
struct Row {
    /// The row as JSON (a scalar, or arrays).
    json: String,
    /// V2's shape for this row as a batch of one (or the whole tensor, without a batch).
    shape: Vec<usize>,
    /// Its elements in row-major order, as JSON.
    data: Vec<String>,
}

/// The zero of a datatype, as JSON.
fn zero(dt: DataType) -> &'static str {
    match dt {
        DataType::Bytes => "\"\"",
        DataType::Bool => "false",
        _ => "0",
    }
}

/// Zeros of the input's shape, every variable dimension (the batch too) of size 1.
fn placeholder_row(t: &TensorMeta) -> Row {
    let ones =
        |dims: &[Dim]| -> Vec<usize> { dims.iter().map(|d| d.fixed().unwrap_or(1)).collect() };
    let (row, shape) = match (t.row_dims(), &t.shape) {
        (Some(row), _) => {
            let row = ones(row);
            let shape = std::iter::once(1).chain(row.iter().copied()).collect();
            (row, shape)
        }
        (None, Some(dims)) => (ones(dims), ones(dims)),
        (None, None) => (vec![1], vec![1]),
    };
    let count = row.iter().product::<usize>();
    let data = vec![zero(t.datatype).to_string(); count];
    let json = if count == 1 {
        data[0].clone()
    } else {
        format!("[{}]", data.join(", "))
    };
    Row { json, shape, data }
}

/// A row the manifest gives, shaped by the input's declared dimensions.
fn given_row(t: &TensorMeta, value: &toml::Value) -> Result<Row, String> {
    let json = toml_json(value)?;
    let mut nested = Vec::new();
    let mut data = Vec::new();
    flatten(value, &mut nested, &mut data)?;
    let shape = match (t.row_dims(), &t.shape) {
        (Some(row), _) => {
            let row: Vec<usize> = match t.fixed_row_size() {
                Some(n) if n == data.len() => row.iter().filter_map(Dim::fixed).collect(),
                Some(n) => {
                    return Err(format!(
                        "a row of {} has {n} value{}, the example gives {}",
                        shape_text(t),
                        if n == 1 { "" } else { "s" },
                        data.len()
                    ));
                }
                None if Dim::all_fit(row, &nested) => nested,
                None => {
                    return Err(format!(
                        "give the row as nested arrays that fit {} after its batch dimension \
                         (the example's are {nested:?})",
                        shape_text(t)
                    ));
                }
            };
            std::iter::once(1).chain(row).collect()
        }
        (None, Some(dims)) => {
            let fixed: Option<Vec<usize>> = dims.iter().map(Dim::fixed).collect();
            match fixed {
                Some(f) if f.iter().product::<usize>() == data.len() => f,
                _ if Dim::all_fit(dims, &nested) => nested,
                _ => {
                    return Err(format!(
                        "the input has no batch dimension, so the example is its whole tensor, \
                         which must fit {} (the example's shape is {nested:?})",
                        shape_text(t)
                    ));
                }
            }
        }
        (None, None) if nested.is_empty() => vec![1],
        (None, None) => nested,
    };
    Ok(Row { json, shape, data })
}

fn shape_text(t: &TensorMeta) -> String {
    crate::error::fmt_shape(&t.shape_i64())
}

/// Walks nested arrays: their sizes at each depth (`shape`, read down the first elements;
/// every array at one depth must have that size) and the elements as JSON (`data`).
fn flatten(v: &toml::Value, shape: &mut Vec<usize>, data: &mut Vec<String>) -> Result<(), String> {
    let mut first = v;
    while let toml::Value::Array(items) = first {
        shape.push(items.len());
        match items.first() {
            Some(item) => first = item,
            None => break,
        }
    }
    elements(v, shape, data)
}

fn elements(v: &toml::Value, shape: &[usize], data: &mut Vec<String>) -> Result<(), String> {
    match (v, shape) {
        (toml::Value::Array(items), [n, rest @ ..]) => {
            if items.len() != *n {
                return Err("the nested arrays have different lengths".into());
            }
            items.iter().try_for_each(|item| elements(item, rest, data))
        }
        (toml::Value::Table(_), _) => Err("a table is not a tensor element".into()),
        (toml::Value::Array(_), []) | (_, [_, ..]) => {
            Err("the nested arrays have different depths".into())
        }
        (scalar, []) => {
            data.push(toml_json(scalar)?);
            Ok(())
        }
    }
}

/// A TOML value as JSON text, tables' keys in the file's order.
pub fn toml_json(v: &toml::Value) -> Result<String, String> {
    let mut out = String::new();
    write_json(v, &mut out)?;
    Ok(out)
}

fn write_json(v: &toml::Value, out: &mut String) -> Result<(), String> {
    match v {
        toml::Value::String(s) => out.push_str(&json_str(s)),
        toml::Value::Integer(i) => out.push_str(&i.to_string()),
        toml::Value::Float(f) if f.is_finite() => {
            // serde_json writes the shortest text that reads back as the same number.
            out.push_str(
                &serde_json::Number::from_f64(*f).map_or_else(|| "0".into(), |n| n.to_string()),
            )
        }
        // As answers write them, and as the float inputs read them back: a missing value
        // (TOML's nan) is null, an infinity a string.
        toml::Value::Float(f) if f.is_nan() => out.push_str("null"),
        toml::Value::Float(f) if *f > 0.0 => out.push_str("\"Infinity\""),
        toml::Value::Float(_) => out.push_str("\"-Infinity\""),
        toml::Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        toml::Value::Datetime(d) => {
            return Err(format!(
                "{d} is a date, which JSON has not (write it as a string)"
            ));
        }
        toml::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_json(item, out)?;
            }
            out.push(']');
        }
        toml::Value::Table(table) => {
            out.push('{');
            for (i, (k, item)) in table.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&json_str(k));
                out.push_str(": ");
                write_json(item, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// A string as a JSON string literal.
pub fn json_str(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// `{"inputs": [...]}`, one input a line.
fn v2_body(meta: &ModelMeta, rows: &[Row]) -> String {
    let inputs: Vec<String> = meta
        .inputs
        .iter()
        .zip(rows)
        .map(|(t, row)| {
            let shape: Vec<String> = row.shape.iter().map(usize::to_string).collect();
            format!(
                "  {{\"name\": {}, \"datatype\": \"{}\", \"shape\": [{}], \"data\": [{}]}}",
                json_str(&t.name),
                t.datatype.as_str(),
                shape.join(", "),
                row.data.join(", ")
            )
        })
        .collect();
    format!("{{\"inputs\": [\n{}\n]}}", inputs.join(",\n"))
}

/// `{"instances": [...]}`: the row itself for a model of one input, else an object keyed
/// by input name; `None` when an input has no batch dimension.
fn v1_body(meta: &ModelMeta, rows: &[Row]) -> Option<String> {
    if meta.inputs.iter().any(|t| !t.has_batch_dim()) {
        return None;
    }
    let instance = match rows {
        [only] => only.json.clone(),
        _ => {
            let fields: Vec<String> = meta
                .inputs
                .iter()
                .zip(rows)
                .map(|(t, row)| format!("{}: {}", json_str(&t.name), row.json))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
    };
    Some(format!("{{\"instances\": [{instance}]}}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn meta(bytes: &[u8]) -> ModelMeta {
        ModelMeta::from_onnx(bytes).unwrap()
    }

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    fn iris_meta() -> ModelMeta {
        meta(crate::resolve::EMBEDDED_IRIS)
    }

    #[test]
    fn placeholders_are_zeros_of_the_shape_with_batch_one() {
        let m = iris_meta();
        let e = ModelExamples::new(&m, None).unwrap();
        assert!(!e.given);
        assert_eq!(
            e.v2,
            "{\"inputs\": [\n  {\"name\": \"input\", \"datatype\": \"FP32\", \"shape\": [1, 4], \
             \"data\": [0, 0, 0, 0]}\n]}"
        );
        assert_eq!(e.v1.as_deref(), Some("{\"instances\": [[0, 0, 0, 0]]}"));
        // The decoders take them.
        crate::v2_request::decode(e.v2.as_bytes(), None, &m).unwrap();
        crate::v1::decode(e.v1.unwrap().as_bytes(), &m, &RecordSpec::by_name(&m)).unwrap();
    }

    #[test]
    fn placeholders_of_strings_and_many_inputs() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/titanic/model.onnx");
        let titanic = meta(&std::fs::read(file).unwrap());
        let e = ModelExamples::new(&titanic, None).unwrap();
        assert!(e.v2.contains(
            "{\"name\": \"Sex\", \"datatype\": \"BYTES\", \"shape\": [1, 1], \"data\": [\"\"]}"
        ));
        assert_eq!(
            e.v1.as_deref(),
            Some(
                "{\"instances\": [{\"Age\": 0, \"Fare\": 0, \"Embarked\": \"\", \"Sex\": \"\", \
                 \"Pclass\": 0}]}"
            )
        );
        crate::v2_request::decode(e.v2.as_bytes(), None, &titanic).unwrap();
        let spec = RecordSpec::by_name(&titanic);
        assert_eq!(
            route_record(&titanic, &spec, None).unwrap(),
            "{\"Age\": 0, \"Fare\": 0, \"Embarked\": \"\", \"Sex\": \"\", \"Pclass\": 0}"
        );
    }

    #[test]
    fn an_input_without_batch_has_no_v1_and_a_whole_tensor() {
        let m = meta(&fixtures::fixed_shape());
        let e = ModelExamples::new(&m, None).unwrap();
        assert_eq!(e.v1, None);
        crate::v2_request::decode(e.v2.as_bytes(), None, &m).unwrap();
    }

    #[test]
    fn a_given_model_example_becomes_v2_and_v1() {
        let m = iris_meta();
        let rows = table("input = [5.1, 3.5, 1.4, 0.2]");
        let e = ModelExamples::new(&m, Some(&rows)).unwrap();
        assert!(e.given);
        assert!(
            e.v2.contains("\"shape\": [1, 4], \"data\": [5.1, 3.5, 1.4, 0.2]"),
            "{}",
            e.v2
        );
        assert_eq!(
            e.v1.as_deref(),
            Some("{\"instances\": [[5.1, 3.5, 1.4, 0.2]]}")
        );
        // Nested as [1, 4] is the same row.
        let nested = ModelExamples::new(&m, Some(&table("input = [[5.1, 3.5, 1.4, 0.2]]")));
        assert!(nested.unwrap().v2.contains("\"shape\": [1, 4]"));
    }

    #[test]
    fn a_wrong_model_example_names_the_input() {
        let m = iris_meta();
        let cases = [
            ("inptu = [1, 2, 3, 4]", "example: unknown input \"inptu\""),
            ("", "example: input \"input\" is missing"),
            (
                "input = [1, 2, 3]",
                "example: input \"input\": a row of [-1, 4] has 4 values, the example gives 3",
            ),
            ("input = [1, 2, 3, \"x\"]", "example: "),
            ("input = [[1, 2], [3]]", "different lengths"),
            ("input = [1, [2, 3], 4]", "different depths"),
            ("input = [1979-05-27, 1, 2, 3]", "is a date"),
        ];
        for (text, want) in cases {
            let e = ModelExamples::new(&m, Some(&table(text))).unwrap_err();
            assert!(e.contains(want), "{text}: {e}\n  want: {want}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn route_examples_are_checked_by_the_routes_decoder() {
        let m = iris_meta();
        let keys = vec![(
            "input".to_string(),
            ["a", "b", "c", "d"].map(String::from).to_vec(),
        )];
        let spec = RecordSpec::new(&m, &keys).unwrap();
        assert_eq!(
            route_record(&m, &spec, None).unwrap(),
            "{\"a\": 0, \"b\": 0, \"c\": 0, \"d\": 0}"
        );
        let given: toml::Value = toml::Value::Table(table("a = 5.1\nb = 3.5\nc = 1.4\nd = 0.2"));
        assert_eq!(
            route_record(&m, &spec, Some(&given)).unwrap(),
            "{\"a\": 5.1, \"b\": 3.5, \"c\": 1.4, \"d\": 0.2}",
            "keys in the file's order"
        );
        let wrong = toml::Value::Table(table("a = 5.1\nb = 3.5\nc = 1.4\ne = 0.2"));
        let e = route_record(&m, &spec, Some(&wrong)).unwrap_err();
        assert!(
            e.starts_with("example: ") && e.contains("unknown key \"e\""),
            "{e}"
        );
        // A list of records is a list.
        let list = toml::Value::Array(vec![given.clone(), given]);
        assert!(
            route_record(&m, &spec, Some(&list))
                .unwrap()
                .starts_with("[{")
        );
    }

    #[test]
    fn strings_are_escaped_as_json() {
        let v = toml::Value::Table(table("\"k\\\"ey\" = \"a\\\"b\\n</script>\""));
        assert_eq!(
            toml_json(&v).unwrap(),
            "{\"k\\\"ey\": \"a\\\"b\\n</script>\"}"
        );
        let v = toml::Value::Table(table("a = [nan, inf, -inf, 1.5]"));
        assert_eq!(
            toml_json(&v).unwrap(),
            "{\"a\": [null, \"Infinity\", \"-Infinity\", 1.5]}"
        );
    }
}
