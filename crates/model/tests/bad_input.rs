//! The bad-input corpus of issue 3, through the App: every case answers the right status
//! with `{"error": "..."}` saying what is wrong, and the app serves normally afterwards.

mod common;

use common::*;
use serde_json::json;

struct Case {
    method: &'static str,
    path: &'static str,
    header_len: Option<String>,
    body: Vec<u8>,
    status: u16,
    error: &'static str,
}

fn case(
    method: &'static str,
    path: &'static str,
    body: &str,
    status: u16,
    error: &'static str,
) -> Case {
    Case {
        method,
        path,
        header_len: None,
        body: body.as_bytes().to_vec(),
        status,
        error,
    }
}

const INFER: &str = "/v2/models/titanic/infer";
const PREDICT: &str = "/v1/models/titanic:predict";
const ROUTE: &str = "/model";

fn titanic_inputs(age: serde_json::Value) -> String {
    titanic_age("FP32", json!([1, 1]), age)
}

/// A titanic V2 body with this datatype, shape and data for `Age`. (serde_json sorts the
/// keys, so `data` comes before `name`: the decoder's deferred path is exercised too.)
fn titanic_age(datatype: &str, shape: serde_json::Value, age: serde_json::Value) -> String {
    json!({"inputs": [
        {"name": "Age", "shape": shape, "datatype": datatype, "data": age},
        {"name": "Fare", "shape": [1, 1], "datatype": "FP32", "data": [7.25]},
        {"name": "Embarked", "shape": [1, 1], "datatype": "BYTES", "data": ["S"]},
        {"name": "Sex", "shape": [1, 1], "datatype": "BYTES", "data": ["male"]},
        {"name": "Pclass", "shape": [1, 1], "datatype": "INT64", "data": [3]},
    ]})
    .to_string()
}

const PASSENGER: &str = r#"{"Age":22,"Fare":7.25,"Embarked":"S","Sex":"male","Pclass":3}"#;

fn corpus() -> Vec<Case> {
    let only_age = r#"{"inputs":[{"name":"Age","shape":[1,1],"datatype":"FP32","data":[22]}]}"#;
    let mut cases = vec![
        // Malformed JSON, with line and column, on every protocol.
        case(
            "POST",
            INFER,
            "{\"inputs\": [",
            400,
            "malformed JSON: EOF while parsing a list at line 1 column 12",
        ),
        case(
            "POST",
            INFER,
            "{\"inputs\":\n  [}",
            400,
            "malformed JSON: expected value at line 2 column 4",
        ),
        case(
            "POST",
            "/v1/models/iris:predict",
            "{\"instances\": [[1,2,3,4],]}",
            400,
            "malformed JSON: trailing comma at line 1 column 26",
        ),
        case("POST", ROUTE, "{\"Age\": 22,", 400, "malformed JSON"),
        case(
            "POST",
            ROUTE,
            "",
            400,
            "malformed JSON: EOF while parsing a value at line 1 column 0",
        ),
        Case {
            body: vec![0xff, 0xfe, b'{'],
            ..case("POST", INFER, "", 400, "malformed JSON")
        },
        // Missing and unknown inputs.
        case(
            "POST",
            INFER,
            only_age,
            400,
            "missing inputs \"Fare\", \"Embarked\", \"Sex\", \"Pclass\"",
        ),
        case(
            "POST",
            INFER,
            r#"{"inputs":[{"name":"age","shape":[1,1],"datatype":"FP32","data":[22]}]}"#,
            400,
            "unknown input \"age\" (the model's inputs are \"Age\", \"Fare\", \"Embarked\", \"Sex\", \"Pclass\")",
        ),
        case(
            "POST",
            ROUTE,
            r#"{"Age":22,"Fare":7.25,"Embarked":"S","Sex":"male"}"#,
            400,
            "record 0: missing \"Pclass\"",
        ),
        case(
            "POST",
            ROUTE,
            r#"{"Age":22,"Fare":7.25,"Embarked":"S","Sex":"male","Pclass":3,"Name":"Bob"}"#,
            400,
            "record 0: unknown key \"Name\" (expected \"Age\", \"Fare\", \"Embarked\", \
             \"Sex\", \"Pclass\"); a route whose records carry keys no input reads says \
             unknown_keys = \"ignore\" in app.toml",
        ),
        case(
            "POST",
            PREDICT,
            r#"{"instances":[{"Age":22}]}"#,
            400,
            "record 0: missing \"Fare\"",
        ),
        // Wrong datatype.
        case(
            "POST",
            INFER,
            &titanic_age("FP64", json!([1, 1]), json!([22])),
            400,
            "input \"Age\": datatype FP64 does not match the model's FP32",
        ),
        // Wrong shape or element count: the input, expected and received, the batch.
        case(
            "POST",
            INFER,
            &titanic_age("FP32", json!([1, 2]), json!([22, 23])),
            400,
            "input \"Age\": expected shape [-1, 1] (the first dimension is the batch), received [1, 2]",
        ),
        case(
            "POST",
            INFER,
            &titanic_inputs(json!([22, 23])),
            400,
            "input \"Age\": more elements than its shape holds (1)",
        ),
        case(
            "POST",
            INFER,
            &titanic_inputs(json!([])),
            400,
            "input \"Age\": shape [1, 1] holds 1 elements but data has 0",
        ),
        case(
            "POST",
            ROUTE,
            r#"{"Age":[22,23],"Fare":7.25,"Embarked":"S","Sex":"male","Pclass":3}"#,
            400,
            "record 0: \"Age\": more elements than its shape holds (1)",
        ),
        case(
            "POST",
            "/v1/models/iris:predict",
            r#"{"instances":[[1,2,3]]}"#,
            400,
            "instance 0: input \"input\" takes 4 values per row (shape [-1, 4]; the first dimension is the batch), received 3",
        ),
        case(
            "POST",
            "/v2/models/iris/infer",
            r#"{"inputs":[{"name":"input","shape":[4],"datatype":"FP32","data":[1,2,3,4]}]}"#,
            400,
            "expected shape [-1, 4] (the first dimension is the batch), received [4]; add the batch dimension: [1, 4]",
        ),
        // A string where a number belongs, and the reverse.
        case(
            "POST",
            INFER,
            &titanic_inputs(json!(["22"])),
            400,
            "input \"Age\": expected a number (FP32), found a string at line 1",
        ),
        case(
            "POST",
            ROUTE,
            r#"{"Age":"22","Fare":7.25,"Embarked":"S","Sex":"male","Pclass":3}"#,
            400,
            "record 0: \"Age\": expected a number (FP32), found a string",
        ),
        case(
            "POST",
            ROUTE,
            r#"{"Age":22,"Fare":7.25,"Embarked":1,"Sex":"male","Pclass":3}"#,
            400,
            "record 0: \"Embarked\": expected a string (BYTES), found a number",
        ),
        // A missing value (null, NaN) or an infinity is a float input's value only.
        case(
            "POST",
            ROUTE,
            r#"{"Age":22,"Fare":7.25,"Embarked":"S","Sex":"male","Pclass":null}"#,
            400,
            "record 0: \"Pclass\": null is a missing value (NaN), which only a floating-point \
             input (FP16, FP32, FP64) takes; this one is INT64",
        ),
        case(
            "POST",
            INFER,
            &titanic_inputs(json!([22])).replace("[\"S\"]", "[NaN]"),
            400,
            "input \"Embarked\": NaN is a missing value (NaN), which only a floating-point \
             input (FP16, FP32, FP64) takes; this one is BYTES",
        ),
        case(
            "POST",
            ROUTE,
            r#"{"Age":22,"Fare":7.25,"Embarked":"S","Sex":"male","Pclass":Infinity}"#,
            400,
            "\"Pclass\": Infinity is an infinity",
        ),
        // What no JSON writer writes is still malformed, and said so.
        case(
            "POST",
            PREDICT,
            r#"{"instances":[{"Age":-inf}]}"#,
            400,
            "write a missing value as null or NaN and an infinity as Infinity or -Infinity",
        ),
        // Values out of the type's range.
        case(
            "POST",
            INFER,
            &titanic_inputs(json!([1e39])),
            400,
            "1e39 is out of range for FP32",
        ),
        case(
            "POST",
            ROUTE,
            r#"{"Age":22,"Fare":7.25,"Embarked":"S","Sex":"male","Pclass":1.5}"#,
            400,
            "expected an integer (INT64), found 1.5",
        ),
        // Empty lists.
        case(
            "POST",
            INFER,
            r#"{"inputs":[]}"#,
            400,
            "\"inputs\" is empty",
        ),
        case(
            "POST",
            PREDICT,
            r#"{"instances":[]}"#,
            400,
            "\"instances\" is empty",
        ),
        case("POST", ROUTE, "[]", 400, "the list of records is empty"),
        // A huge declared shape with a tiny body.
        case(
            "POST",
            "/v2/models/iris/infer",
            r#"{"inputs":[{"name":"input","shape":[1000000000000000,4],"datatype":"FP32","data":[1,2,3,4]}]}"#,
            400,
            "holds 4000000000000000 elements but data has 4",
        ),
        case(
            "POST",
            "/v2/models/iris/infer",
            r#"{"inputs":[{"name":"input","shape":[9223372036854775807,9223372036854775807],"datatype":"FP32","data":[1]}]}"#,
            400,
            "expected shape [-1, 4]",
        ),
        case(
            "POST",
            "/v2/models/iris/infer",
            r#"{"inputs":[{"name":"input","shape":[4611686018427387904,4],"datatype":"FP32","data":[1]}]}"#,
            400,
            "is too large",
        ),
        // Unknown models, routes and versions; wrong methods.
        case(
            "POST",
            "/v2/models/nope/infer",
            "{}",
            404,
            "unknown model \"nope\"",
        ),
        case("GET", "/v1/models/nope", "", 404, "unknown model \"nope\""),
        case(
            "GET",
            "/v2/models/titanic/versions/7",
            "",
            404,
            "no version \"7\"",
        ),
        case(
            "POST",
            "/v1/models/titanic:classify",
            "{}",
            404,
            "\":classify\" is not supported",
        ),
        case("GET", "/nowhere", "", 404, "no route for GET /nowhere"),
        case("GET", INFER, "", 405, "this path accepts POST"),
        case("GET", ROUTE, "", 405, "this path accepts POST"),
        case("PUT", "/v2/models/titanic", "", 405, "GET, HEAD"),
        case("GET", PREDICT, "", 405, "POST"),
    ];
    // The binary extension: a header length that lies, sizes that do not add up.
    let header = r#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}]}"#;
    let mut short = header.as_bytes().to_vec();
    short.extend_from_slice(&[0; 8]);
    cases.push(Case {
        header_len: Some("abc".into()),
        ..case("POST", "/v2/models/iris/infer", header, 400, "not a number")
    });
    cases.push(Case {
        header_len: Some("100000".into()),
        ..case(
            "POST",
            "/v2/models/iris/infer",
            header,
            400,
            "Inference-Header-Content-Length is 100000",
        )
    });
    cases.push(Case {
        header_len: Some(header.len().to_string()),
        body: short,
        ..case(
            "POST",
            "/v2/models/iris/infer",
            "",
            400,
            "goes past the end of the body",
        )
    });
    let huge = r#"{"inputs":[{"name":"input","shape":[1000000000,4],"datatype":"FP32","parameters":{"binary_data_size":16}}]}"#;
    let mut huge_body = huge.as_bytes().to_vec();
    huge_body.extend_from_slice(&[0; 16]);
    cases.push(Case {
        header_len: Some(huge.len().to_string()),
        body: huge_body,
        ..case(
            "POST",
            "/v2/models/iris/infer",
            "",
            400,
            "binary_data_size is 16 bytes but its shape holds 4000000000 FP32 elements",
        )
    });
    cases
}

#[tokio::test]
async fn every_bad_input_is_answered_with_its_status_and_cause() {
    let titanic = app_for(example("titanic"));
    let iris = app(None, &serve_settings::Values::default());
    for c in corpus() {
        let app = if c.path.contains("iris") {
            &iris
        } else {
            &titanic
        };
        let headers: Vec<(&str, String)> = c
            .header_len
            .as_ref()
            .map(|n| vec![("inference-header-content-length", n.clone())])
            .unwrap_or_default();
        let a = call_with(app, c.method, c.path, &headers, c.body.clone(), false).await;
        let shown = String::from_utf8_lossy(&c.body);
        assert_eq!(
            a.status, c.status,
            "{} {} {shown}: {:?}",
            c.method, c.path, a.body
        );
        assert_eq!(a.headers["content-type"], "application/json");
        let e = a.error();
        assert!(
            e.contains(c.error),
            "{} {} {shown}\n  got:  {e}\n  want: {}",
            c.method,
            c.path,
            c.error
        );
    }
    // Still serving, on every protocol.
    let a = call(&titanic, "POST", ROUTE, PASSENGER).await;
    assert_eq!(a.status, 200);
    let a = call(&titanic, "POST", INFER, titanic_inputs(json!([22]))).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let a = call(
        &iris,
        "POST",
        "/v1/models/iris:predict",
        r#"{"instances":[[1,2,3,4]]}"#,
    )
    .await;
    assert_eq!(a.status, 200);
}
