//! Property tests: the request decoders never panic, whatever the bytes, and never allocate
//! from a declared size the body does not back (huge shapes decode instantly to errors).

#[path = "../../runtime/src/fixtures.rs"]
mod fixtures;

use proptest::prelude::*;
use serve_model::codec_binary;
use serve_model::datatype::DataType;
use serve_model::metadata::ModelMeta;
use serve_model::records::{self, RecordSpec};
use serve_model::{manifest, v1, v2_request};

fn metas() -> Vec<ModelMeta> {
    [
        fixtures::classifier(),
        fixtures::records(),
        fixtures::identities(),
        fixtures::variable_row(),
    ]
    .iter()
    .map(|b| ModelMeta::from_onnx(b).unwrap())
    .collect()
}

/// JSON-ish text: fragments that make the decoders walk deep before failing.
fn jsonish() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<u64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v:?}")),
        Just("NaN".to_string()),
        Just("1e400".to_string()),
        "\"[a-zA-Z_ é]{0,8}\"",
        Just("\"input\"".to_string()),
        Just("\"Age\"".to_string()),
        Just("\"FP32\"".to_string()),
        Just("\"BYTES\"".to_string()),
    ];
    atom.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("name"),
                        Just("shape"),
                        Just("datatype"),
                        Just("data"),
                        Just("inputs"),
                        Just("outputs"),
                        Just("parameters"),
                        Just("instances"),
                        Just("binary_data_size"),
                        Just("id"),
                        Just("Age"),
                        Just("input"),
                        Just("x"),
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| {
                let body: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", body.join(","))
            }),
        ]
    })
}

/// A V2 request whose shape, datatype and data are each plausible but random.
fn v2_body() -> impl Strategy<Value = String> {
    let dims = prop::collection::vec(
        prop_oneof![0i64..4, Just(-1i64), Just(i64::MAX), Just(1i64 << 40)],
        0..4,
    );
    let dt = prop::sample::select(DataType::ALL.map(DataType::as_str).to_vec());
    let name = prop::sample::select(vec![
        "input", "t_FP16", "t_BYTES", "t_BOOL", "x", "Age", "Sex", "nope",
    ]);
    (name, dims, dt, jsonish(), any::<bool>()).prop_map(|(name, dims, dt, data, binary)| {
        let shape: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
        let payload = if binary {
            format!("\"parameters\":{{\"binary_data_size\":{}}}", dims.iter().fold(0u64, |a, d| a.saturating_add(d.unsigned_abs())))
        } else {
            format!("\"data\":{data}")
        };
        format!(
            "{{\"inputs\":[{{\"name\":\"{name}\",\"shape\":[{}],\"datatype\":\"{dt}\",{payload}}}]}}",
            shape.join(",")
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn v2_decoding_never_panics_on_bytes(body in prop::collection::vec(any::<u8>(), 0..256), split in any::<Option<u16>>()) {
        for meta in metas() {
            let _ = v2_request::decode(&body, split.map(usize::from), &meta);
        }
    }

    #[test]
    fn v2_decoding_never_panics_on_plausible_requests(body in v2_body(), tail in prop::collection::vec(any::<u8>(), 0..64)) {
        for meta in metas() {
            if let Ok(r) = v2_request::decode(body.as_bytes(), None, &meta) {
                for t in &r.inputs.tensors {
                    prop_assert!(t.len() <= body.len());
                }
            }
            let mut with_tail = body.clone().into_bytes();
            with_tail.extend_from_slice(&tail);
            let _ = v2_request::decode(&with_tail, Some(body.len()), &meta);
        }
    }

    #[test]
    fn row_decoders_never_panic(text in jsonish()) {
        for meta in metas() {
            let spec = RecordSpec::by_name(&meta);
            let _ = records::decode(text.as_bytes(), &meta, &spec);
            let _ = v1::decode(text.as_bytes(), &meta, &spec);
            let wrapped = format!("{{\"instances\":{text}}}");
            let _ = v1::decode(wrapped.as_bytes(), &meta, &spec);
            let columnar = format!("{{\"inputs\":{text}}}");
            let _ = v1::decode(columnar.as_bytes(), &meta, &spec);
        }
    }

    #[test]
    fn row_decoders_never_panic_on_bytes(body in prop::collection::vec(any::<u8>(), 0..128)) {
        for meta in metas() {
            let spec = RecordSpec::by_name(&meta);
            let _ = records::decode(&body, &meta, &spec);
            let _ = v1::decode(&body, &meta, &spec);
        }
    }

    #[test]
    fn binary_decoding_checks_sizes_before_allocating(
        dt in prop::sample::select(DataType::ALL.to_vec()),
        bytes in prop::collection::vec(any::<u8>(), 0..128),
        count in prop_oneof![0usize..40, Just(usize::MAX), Just(usize::MAX / 2), Just(1 << 40)],
    ) {
        if let Ok(col) = codec_binary::decode(dt, &bytes, count, "x") {
            prop_assert_eq!(col.len(), count);
        }
    }

    #[test]
    fn manifests_never_panic(text in "[\\[\\]a-z_=\"\\n .0-9{}]{0,120}") {
        let _ = manifest::parse(&text, std::path::Path::new("app.toml"));
    }

    #[test]
    fn fp32_values_survive_json(values in prop::collection::vec(any::<f32>().prop_filter("finite", |v| v.is_finite()), 1..16)) {
        let meta = ModelMeta::from_onnx(&fixtures::variable_row()).unwrap();
        let data: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
        let body = format!(
            "{{\"inputs\":[{{\"name\":\"x\",\"shape\":[1,{}],\"datatype\":\"FP32\",\"data\":[{}]}}]}}",
            values.len(),
            data.join(",")
        );
        let r = v2_request::decode(body.as_bytes(), None, &meta).unwrap();
        prop_assert_eq!(r.inputs.tensors[0].as_slice::<f32>().unwrap(), &values[..]);
    }
}
