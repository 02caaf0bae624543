//! Triton's model configuration: the schema Triton writes `config.pbtxt` in (vendored in
//! `proto/triton`, compiled by `build.rs`), read with protobuf's text format and answered
//! in protobuf's JSON mapping as Triton answers it, and what serve takes of it: the versions
//! a version policy selects, the data types, and the fields serve cannot honour.
//!
//! Nothing here knows serve's models: `serve-model` checks a configuration against a model's
//! metadata and turns it into settings.

use std::sync::OnceLock;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};

/// The types of `model_config.proto` (package `inference`), as prost-build writes them.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/inference.rs"));
}

pub use pb::ModelConfig;

/// The schema's descriptors, for the text format and the JSON mapping.
static DESCRIPTORS: &[u8] = DESCRIPTOR_SET;

/// The vendored protos' descriptor set (encoded): the gRPC server's reflection serves it.
pub static DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

fn model_config_descriptor() -> &'static MessageDescriptor {
    static DESCRIPTOR: OnceLock<MessageDescriptor> = OnceLock::new();
    DESCRIPTOR.get_or_init(|| {
        DescriptorPool::decode(DESCRIPTORS)
            .expect("the descriptors build.rs compiled decode")
            .get_message_by_name("inference.ModelConfig")
            .expect("model_config.proto defines inference.ModelConfig")
    })
}

/// Parses a `config.pbtxt`. The error says where (line and column) and what, as protobuf's
/// text format parser does (an unknown field names the field).
pub fn parse(text: &str) -> Result<ModelConfig, String> {
    let (colons, added) = colons_before_lists(text);
    let dynamic = DynamicMessage::parse_text_format(model_config_descriptor().clone(), &colons)
        .map_err(|e| {
            let at = miette::Diagnostic::labels(&e)
                .and_then(|mut labels| labels.next())
                .map(|label| label.offset());
            match at {
                Some(offset) => {
                    // Back to the offset in the text as written.
                    let offset = offset - added.iter().filter(|&&a| a < offset).count();
                    let (line, column) = line_column(text, offset);
                    format!("line {line}, column {column}: {e}")
                }
                None => e.to_string(),
            }
        })?;
    dynamic
        .transcode_to::<ModelConfig>()
        .map_err(|e| format!("cannot read the configuration: {e}"))
}

/// Parses a configuration given in a load request (its `config` parameter): Triton's JSON
/// form (what `tritonclient`'s `load_model(config=...)` sends: protobuf's JSON mapping, field
/// names as in the schema or in lowerCamelCase), or `config.pbtxt`'s text form.
pub fn parse_given(text: &str) -> Result<ModelConfig, String> {
    if !text.trim_start().starts_with('{') {
        return parse(text);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let dynamic = DynamicMessage::deserialize(model_config_descriptor().clone(), &mut de)
        .and_then(|m| de.end().map(|()| m))
        .map_err(|e| format!("not a model configuration in Triton's JSON form: {e}"))?;
    dynamic
        .transcode_to::<ModelConfig>()
        .map_err(|e| format!("cannot read the configuration: {e}"))
}

/// The text with a `:` between a field name and a `[` that follows it, and where each was
/// added (offsets in the returned text).
///
/// The text format lets a list of messages follow its field name without a colon
/// (`input [ { name: "x" } ]`: the spec's `MessageField = FieldName, [":"], (MessageValue |
/// MessageList)`), and every Triton configuration is written so; prost-reflect's parser
/// requires the colon before a list. This pass adds it and nothing else: it skips strings
/// and `#` comments, and a `[` after a name can only be such a list (the schema has no
/// extensions, whose names are bracketed). It is more lenient than protobuf's parser in one
/// place only: a list of numbers without its colon (`dims [ 4 ]`) is read too.
fn colons_before_lists(text: &str) -> (String, Vec<usize>) {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 16);
    let mut added = Vec::new();
    // Where the last identifier ended in `out`, while only blanks and comments follow it.
    let mut after_name: Option<usize> = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b'"' | b'\'' => {
                i += 1;
                while i < bytes.len() && bytes[i] != c && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(bytes.len());
                after_name = None;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            c if c.is_ascii_whitespace() => i += 1,
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                out.push_str(&text[start..i]);
                after_name = Some(out.len());
                continue;
            }
            b'[' => {
                if let Some(at) = after_name.take() {
                    out.insert(at, ':');
                    added.push(at);
                }
                i += 1;
            }
            _ => {
                i += 1;
                after_name = None;
            }
        }
        out.push_str(&text[start..i]);
    }
    (out, added)
}

/// The 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, column)
}

/// The configuration in protobuf's JSON mapping, as Triton's configuration extension
/// answers it: the schema's field names, every field (defaults too), enums by name, and
/// 64-bit integers as JSON numbers.
pub fn to_json(config: &ModelConfig) -> serde_json::Value {
    let mut dynamic = DynamicMessage::new(model_config_descriptor().clone());
    dynamic
        .merge(config.encode_to_vec().as_slice())
        .expect("a ModelConfig re-reads as its own message");
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false)
        .skip_default_fields(false);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .expect("a message serializes to JSON")
}

/// The KServe V2 datatype of a configuration's `data_type` (`TYPE_FP32` is `FP32`, `TYPE_STRING`
/// is `BYTES`); `None` for `TYPE_INVALID` and values the schema does not know.
pub fn v2_datatype(data_type: i32) -> Option<&'static str> {
    use pb::DataType as T;
    Some(match T::try_from(data_type).ok()? {
        T::TypeInvalid => return None,
        T::TypeBool => "BOOL",
        T::TypeUint8 => "UINT8",
        T::TypeUint16 => "UINT16",
        T::TypeUint32 => "UINT32",
        T::TypeUint64 => "UINT64",
        T::TypeInt8 => "INT8",
        T::TypeInt16 => "INT16",
        T::TypeInt32 => "INT32",
        T::TypeInt64 => "INT64",
        T::TypeFp16 => "FP16",
        T::TypeFp32 => "FP32",
        T::TypeFp64 => "FP64",
        T::TypeString => "BYTES",
        T::TypeBf16 => "BF16",
    })
}

/// The configuration's `data_type` of a KServe V2 datatype (`TYPE_INVALID` for one it has
/// no name for).
pub fn data_type(v2: &str) -> pb::DataType {
    use pb::DataType as T;
    match v2 {
        "BOOL" => T::TypeBool,
        "UINT8" => T::TypeUint8,
        "UINT16" => T::TypeUint16,
        "UINT32" => T::TypeUint32,
        "UINT64" => T::TypeUint64,
        "INT8" => T::TypeInt8,
        "INT16" => T::TypeInt16,
        "INT32" => T::TypeInt32,
        "INT64" => T::TypeInt64,
        "FP16" => T::TypeFp16,
        "FP32" => T::TypeFp32,
        "FP64" => T::TypeFp64,
        "BYTES" => T::TypeString,
        "BF16" => T::TypeBf16,
        _ => T::TypeInvalid,
    }
}

/// The versions a configuration's `version_policy` serves, highest first, out of the
/// `available` ones (the numbered directories that hold the model file). Triton's default
/// is the latest one. A `specific` version that is not there, or a policy that selects
/// nothing, is an error naming what is there.
pub fn select_versions(
    config: Option<&ModelConfig>,
    available: &[u64],
) -> Result<Vec<u64>, String> {
    use pb::model_version_policy::PolicyChoice;
    let mut sorted = available.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    let there = || {
        if sorted.is_empty() {
            "none".to_owned()
        } else {
            sorted
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let choice = config
        .and_then(|c| c.version_policy.as_ref())
        .and_then(|p| p.policy_choice.as_ref());
    let selected: Vec<u64> = match choice {
        None => sorted.iter().copied().take(1).collect(),
        Some(PolicyChoice::Latest(latest)) => {
            if latest.num_versions == 0 {
                return Err(
                    "version_policy: latest { num_versions: 0 } serves nothing; set 1 or more"
                        .to_owned(),
                );
            }
            sorted
                .iter()
                .copied()
                .take(latest.num_versions as usize)
                .collect()
        }
        Some(PolicyChoice::All(_)) => sorted.clone(),
        Some(PolicyChoice::Specific(specific)) => {
            let mut wanted: Vec<u64> = Vec::with_capacity(specific.versions.len());
            for &v in &specific.versions {
                let present = u64::try_from(v).ok().filter(|v| sorted.contains(v));
                match present {
                    Some(v) => wanted.push(v),
                    None => {
                        return Err(format!(
                            "version_policy: specific version {v} has no directory {v}/ holding \
                             the model (versions there: {})",
                            there()
                        ));
                    }
                }
            }
            wanted.sort_unstable_by(|a, b| b.cmp(a));
            wanted.dedup();
            wanted
        }
    };
    if selected.is_empty() {
        return Err(format!(
            "no version to serve: expected a numbered directory (e.g. 1/) holding the model \
             (versions there: {})",
            there()
        ));
    }
    Ok(selected)
}

/// The configuration's `dynamic_batching`, if it chose that scheduler.
pub fn dynamic_batching(config: &ModelConfig) -> Option<&pb::ModelDynamicBatching> {
    match &config.scheduling_choice {
        Some(pb::model_config::SchedulingChoice::DynamicBatching(b)) => Some(b),
        _ => None,
    }
}

fn sequence_batching(config: &ModelConfig) -> bool {
    matches!(
        config.scheduling_choice,
        Some(pb::model_config::SchedulingChoice::SequenceBatching(_))
    )
}

fn ensemble_scheduling(config: &ModelConfig) -> bool {
    matches!(
        config.scheduling_choice,
        Some(pb::model_config::SchedulingChoice::EnsembleScheduling(_))
    )
}

/// The fields of a configuration that serve reads but cannot honour, by their name in the
/// schema, for the start's log: a Triton user who set them learns they have no effect.
pub fn unhonoured_fields(config: &ModelConfig) -> Vec<&'static str> {
    let mut fields = Vec::new();
    let mut note = |set: bool, name: &'static str| {
        if set {
            fields.push(name);
        }
    };
    note(!config.instance_group.is_empty(), "instance_group");
    note(config.optimization.is_some(), "optimization");
    note(!config.model_warmup.is_empty(), "model_warmup");
    note(!config.parameters.is_empty(), "parameters");
    note(!config.batch_input.is_empty(), "batch_input");
    note(!config.batch_output.is_empty(), "batch_output");
    note(config.model_operations.is_some(), "model_operations");
    note(
        config.model_transaction_policy.is_some(),
        "model_transaction_policy",
    );
    note(
        config.model_repository_agents.is_some(),
        "model_repository_agents",
    );
    note(config.response_cache.is_some(), "response_cache");
    note(config.model_metrics.is_some(), "model_metrics");
    note(!config.cc_model_filenames.is_empty(), "cc_model_filenames");
    note(!config.metric_tags.is_empty(), "metric_tags");
    note(!config.runtime.is_empty(), "runtime");
    note(sequence_batching(config), "sequence_batching");
    note(ensemble_scheduling(config), "ensemble_scheduling");
    if let Some(batching) = dynamic_batching(config) {
        note(
            !batching.preferred_batch_size.is_empty(),
            "dynamic_batching.preferred_batch_size",
        );
        note(
            batching.preserve_ordering,
            "dynamic_batching.preserve_ordering",
        );
        note(
            batching.priority_levels != 0,
            "dynamic_batching.priority_levels",
        );
        note(
            batching.default_queue_policy.is_some() || !batching.priority_queue_policy.is_empty(),
            "dynamic_batching.*_queue_policy",
        );
    }
    for input in &config.input {
        note(input.reshape.is_some(), "input.reshape");
        note(input.format != 0, "input.format");
        note(input.allow_ragged_batch, "input.allow_ragged_batch");
    }
    for output in &config.output {
        note(output.reshape.is_some(), "output.reshape");
    }
    fields.dedup();
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    const IRIS: &str = r#"
name: "iris"
platform: "onnxruntime_onnx"
max_batch_size: 8
version_policy: { latest { num_versions: 2 } }
input [
  { name: "input", data_type: TYPE_FP32, dims: [ 4 ] }
]
output [
  { name: "probabilities", data_type: TYPE_FP32, dims: [ 3 ], label_filename: "labels.txt" }
]
dynamic_batching { max_queue_delay_microseconds: 100 }
instance_group [ { count: 2, kind: KIND_CPU } ]
"#;

    #[test]
    fn a_load_request_gives_json_or_text() {
        let text = parse_given(IRIS).unwrap();
        // What tritonclient sends: the JSON mapping, as the configuration extension answers.
        let json = to_json(&text).to_string();
        assert_eq!(parse_given(&json).unwrap(), text);
        let camel = r#"{"name":"iris","maxBatchSize":4,"input":[{"name":"input",
            "dataType":"TYPE_FP32","dims":["4"]}]}"#;
        let c = parse_given(camel).unwrap();
        assert_eq!(
            (c.max_batch_size, c.input[0].dims.as_slice()),
            (4, &[4][..])
        );
        let e = parse_given(r#"{"name":"iris","max_batch":4}"#).unwrap_err();
        assert!(
            e.contains("Triton's JSON form") && e.contains("max_batch"),
            "{e}"
        );
        assert!(parse_given(r#"{"name":"iris"} x"#).is_err());
    }

    #[test]
    fn reads_a_config_pbtxt() {
        let c = parse(IRIS).unwrap();
        assert_eq!(c.name, "iris");
        assert_eq!(c.platform, "onnxruntime_onnx");
        assert_eq!(c.max_batch_size, 8);
        assert_eq!(c.input[0].dims, [4]);
        assert_eq!(v2_datatype(c.input[0].data_type), Some("FP32"));
        assert_eq!(c.output[0].label_filename, "labels.txt");
        assert_eq!(
            dynamic_batching(&c).unwrap().max_queue_delay_microseconds,
            100
        );
        assert_eq!(unhonoured_fields(&c), ["instance_group"]);
    }

    #[test]
    fn errors_say_where() {
        let e = parse("name: \"x\"\nmax_batch_size: 8\nbogus: 1\n").unwrap_err();
        assert!(e.starts_with("line 3, column 1:"), "{e}");
        assert!(e.contains("bogus"), "{e}");
        let e = parse("max_batch_size: \"eight\"").unwrap_err();
        assert!(e.starts_with("line 1, column 17:"), "{e}");
        // After an added colon, positions are still those of the text as written.
        let e = parse("input [ { name: \"x\" } ]\nmax_batch_size: x").unwrap_err();
        assert!(e.starts_with("line 2, column 17:"), "{e}");
    }

    #[test]
    fn lists_of_messages_need_no_colon() {
        let text = "# input [ in a comment\ninput[{ name: \"a [\" }, { name: 'b' }]\n\
                    output: [ { name: \"y\" dims [ 1 ] } ]";
        let c = parse(text).unwrap();
        assert_eq!(c.input[0].name, "a [");
        assert_eq!(c.input[1].name, "b");
        assert_eq!(c.output[0].dims, [1]);
        // A list where one value belongs is still an error.
        assert!(parse("max_batch_size [ 1 ]").is_err());
    }

    #[test]
    fn answers_json_as_triton() {
        let json = to_json(&parse(IRIS).unwrap());
        assert_eq!(json["max_batch_size"], 8);
        assert_eq!(json["input"][0]["data_type"], "TYPE_FP32");
        // int64 dims as numbers, not protobuf JSON's strings.
        assert_eq!(json["input"][0]["dims"], serde_json::json!([4]));
        assert_eq!(
            json["version_policy"]["latest"]["num_versions"],
            serde_json::json!(2)
        );
        // Defaults are written too, as Triton does.
        assert_eq!(json["backend"], "");
        assert_eq!(json["input"][0]["optional"], false);
    }

    #[test]
    fn version_policies_select_as_triton() {
        let with = |text: &str| parse(text).unwrap();
        let there = [1, 3, 2];
        assert_eq!(select_versions(None, &there).unwrap(), [3]);
        let latest = with("version_policy: { latest { num_versions: 2 } }");
        assert_eq!(select_versions(Some(&latest), &there).unwrap(), [3, 2]);
        let all = with("version_policy: { all { } }");
        assert_eq!(select_versions(Some(&all), &there).unwrap(), [3, 2, 1]);
        let specific = with("version_policy: { specific { versions: [1, 3] } }");
        assert_eq!(select_versions(Some(&specific), &there).unwrap(), [3, 1]);
        let missing = with("version_policy: { specific { versions: [4] } }");
        let e = select_versions(Some(&missing), &there).unwrap_err();
        assert!(
            e.contains("specific version 4") && e.contains("3, 2, 1"),
            "{e}"
        );
        let e = select_versions(None, &[]).unwrap_err();
        assert!(e.contains("no version to serve"), "{e}");
        let zero = with("version_policy: { latest { num_versions: 0 } }");
        assert!(select_versions(Some(&zero), &there).is_err());
    }

    #[test]
    fn datatypes_go_both_ways() {
        for name in [
            "BOOL", "UINT8", "INT64", "FP16", "FP32", "FP64", "BYTES", "BF16",
        ] {
            assert_eq!(v2_datatype(data_type(name) as i32), Some(name));
        }
        assert_eq!(v2_datatype(0), None);
    }
}
