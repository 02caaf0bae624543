//! The example models answer what onnxruntime answered (examples/*/expected.json), within
//! 1e-5, over every protocol; and the acceptance checks of issue 3.

mod common;

use common::*;
use serde_json::{Value, json};

fn expected(model: &str) -> Value {
    expected_file(&format!("{model}/expected.json"))
}

/// An expected-output file of examples/ (written by examples/expected.py).
fn expected_file(rel: &str) -> Value {
    let text = std::fs::read_to_string(example(rel)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn v2_inputs(case: &Value) -> Vec<Value> {
    case["inputs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, t)| {
            json!({"name": name, "datatype": t["datatype"], "shape": t["shape"], "data": t["data"]})
        })
        .collect()
}

fn assert_close(got: &Value, want: &Value, what: &str) {
    let (g, w) = (floats(got), floats(want));
    assert_eq!(g.len(), w.len(), "{what}: {got} vs {want}");
    for (a, b) in g.iter().zip(&w) {
        assert!((a - b).abs() <= 1e-5, "{what}: {got} vs {want}");
    }
}

async fn check_v2(model: &str, app: &std::sync::Arc<dyn serve_app::App>) {
    check_v2_against(model, &expected(model), app).await;
}

/// Every case of `doc` over V2 JSON: FP32 data within 1e-5, other data (labels) equal.
async fn check_v2_against(model: &str, doc: &Value, app: &std::sync::Arc<dyn serve_app::App>) {
    for case in doc["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let body = json!({"id": name, "inputs": v2_inputs(case)});
        let a = call(
            app,
            "POST",
            &format!("/v2/models/{model}/infer"),
            body.to_string(),
        )
        .await;
        assert_eq!(a.status, 200, "{name}: {:?}", a.body);
        let v = a.json();
        assert_eq!(v["id"], name);
        assert_eq!(v["model_name"], model);
        for out in v["outputs"].as_array().unwrap() {
            let want = &case["outputs"][out["name"].as_str().unwrap()];
            assert_eq!(out["datatype"], want["datatype"], "{name}");
            assert_eq!(out["shape"], want["shape"], "{name}");
            if want["datatype"] == "FP32" {
                assert_close(&out["data"], &want["data"], name);
            } else {
                assert_eq!(out["data"], want["data"], "{name}");
            }
        }
        assert_eq!(
            v["outputs"].as_array().unwrap().len(),
            case["outputs"].as_object().unwrap().len()
        );
    }
}

#[tokio::test]
async fn iris_matches_onnxruntime() {
    check_v2("iris", &app_for(example("iris/model.onnx"))).await;
}

#[tokio::test]
async fn the_embedded_iris_matches_onnxruntime() {
    check_v2("iris", &app(None, &serve_settings::Values::default())).await;
}

#[tokio::test]
async fn titanic_matches_onnxruntime() {
    check_v2("titanic", &app_for(example("titanic"))).await;
}

#[tokio::test]
async fn iris_labels_setosa_and_virginica_over_v2_and_v1() {
    let app = app(None, &serve_settings::Values::default());
    for (row, label) in [([5.1, 3.5, 1.4, 0.2], 0), ([6.7, 3.0, 5.2, 2.3], 2)] {
        let body = json!({"inputs": [input("input", "FP32", &[1, 4], json!(row))]});
        let v = call(&app, "POST", "/v2/models/iris/infer", body.to_string())
            .await
            .json();
        let out = v["outputs"].as_array().unwrap();
        let label_out = out.iter().find(|o| o["name"] == "label").unwrap();
        assert_eq!(label_out["data"], json!([label]));
        let v1 = call(
            &app,
            "POST",
            "/v1/models/iris:predict",
            json!({"instances": [row]}).to_string(),
        )
        .await;
        assert_eq!(v1.status, 200);
        assert_eq!(v1.json()["predictions"][0]["label"], json!(label));
    }
}

#[tokio::test]
async fn one_app_answers_both_tutorials_calls() {
    for app_path in [example(""), example("app.toml")] {
        let app = app_for(app_path);
        let iris =
            json!({"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2});
        let a = call(&app, "POST", "/predict", iris.to_string()).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        assert_eq!(a.json()["species"], 0);
        let man = json!({"Age":22,"Fare":7.25,"Embarked":"S","Sex":"male","Pclass":3});
        let a = call(&app, "POST", "/model", man.to_string()).await;
        let p = a.json()["predict"].as_f64().expect("a float");
        assert!((p - 0.104744256).abs() < 1e-5, "{p}");
        let a = call(&app, "POST", "/model/sklearn", man.to_string()).await;
        assert_eq!(a.json()["survived"], 0, "{:?}", a.body);
        for model in ["iris", "titanic", "titanic_sklearn"] {
            let meta = call(&app, "GET", &format!("/v2/models/{model}"), "").await;
            assert_eq!(meta.json()["versions"], json!(["1"]), "{model}");
        }
    }
}

#[tokio::test]
async fn titanic_route_answers_the_tutorial_shape() {
    let app = app_for(example("titanic"));
    let man = json!({"Age":22,"Fare":7.25,"Embarked":"S","Sex":"male","Pclass":3});
    let woman = json!({"Age":38,"Fare":71.2833,"Embarked":"C","Sex":"female","Pclass":1});
    let a = call(&app, "POST", "/model", man.to_string()).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let p_man = a.json()["predict"].as_f64().expect("a float");
    let p_woman = call(&app, "POST", "/model", woman.to_string()).await.json()["predict"]
        .as_f64()
        .unwrap();
    assert!((0.0..=1.0).contains(&p_man) && (0.0..=1.0).contains(&p_woman));
    assert!(p_woman > p_man, "{p_woman} vs {p_man}");
    assert!((p_man - 0.104744256).abs() < 1e-5, "{p_man}");
    assert!((p_woman - 0.92461824).abs() < 1e-5, "{p_woman}");
    // A list of 100 records answers 100 objects, in order.
    let list: Vec<Value> = (0..100)
        .map(|i| {
            if i % 2 == 0 {
                man.clone()
            } else {
                woman.clone()
            }
        })
        .collect();
    let a = call(&app, "POST", "/model", Value::from(list).to_string()).await;
    let answers = a.json();
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), 100);
    assert!((answers[0]["predict"].as_f64().unwrap() - p_man).abs() < 1e-6);
    assert!((answers[99]["predict"].as_f64().unwrap() - p_woman).abs() < 1e-6);
    // Unknown categories go through the graph rather than failing.
    let odd = json!({"Age":30,"Fare":10,"Embarked":"X","Sex":"other","Pclass":2});
    let a = call(&app, "POST", "/model", odd.to_string()).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
}

#[tokio::test]
async fn titanic_v1_instances_are_records() {
    let app = app_for(example("titanic"));
    let man = json!({"Age":22,"Fare":7.25,"Embarked":"S","Sex":"male","Pclass":3});
    let a = call(
        &app,
        "POST",
        "/v1/models/titanic:predict",
        json!({"instances": [man]}).to_string(),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let p = &a.json()["predictions"][0];
    assert!((p[0].as_f64().unwrap() - 0.104744256).abs() < 1e-5, "{p}");
}

#[tokio::test]
async fn iris_app_route_assembles_features_by_name() {
    let app = app_for(example("iris"));
    let body = json!({"sepal_length":6.7,"sepal_width":3.0,"petal_length":5.2,"petal_width":2.3});
    let a = call(&app, "POST", "/predict", body.to_string()).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let v = a.json();
    assert_eq!(v["species"], json!(2));
    assert_close(
        &v["probabilities"],
        &json!([5.5262844e-05, 0.080083534, 0.9198612]),
        "iris",
    );
}

/// The scikit-learn pipeline of examples/titanic (train_sklearn.py, skl2onnx's defaults).
fn titanic_sklearn_expected() -> Value {
    expected_file("titanic/expected_sklearn.json")
}

/// The outputs onnxruntime gave for a case of expected_sklearn.json.
fn sklearn_case(name: &str) -> Value {
    let doc = titanic_sklearn_expected();
    doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case {name}"))["outputs"]
        .clone()
}

/// A route's or V1's `{label: probability}` object against row `row` of the expected
/// FP32 [N, C] matrix, keyed by its "classes" in order.
fn assert_probability_object(got: &Value, want: &Value, row: usize, what: &str) {
    let classes = want["classes"].as_array().unwrap();
    let data = floats(&want["data"]);
    let object = got
        .as_object()
        .unwrap_or_else(|| panic!("{what}: not an object: {got}"));
    let keys: Vec<String> = classes
        .iter()
        .map(|c| match c {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    // (serde_json's maps here are sorted by key: compare the sets)
    let mut sorted: Vec<&String> = keys.iter().collect();
    sorted.sort();
    assert_eq!(object.keys().collect::<Vec<_>>(), sorted, "{what}: {got}");
    for (k, key) in keys.iter().enumerate() {
        let p = object[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{what}: {got}"));
        let w = data[row * keys.len() + k];
        assert!((p - w).abs() <= 1e-5, "{what}: {key}: {p} vs {w}");
    }
}

#[tokio::test]
async fn titanic_sklearn_matches_onnxruntime() {
    let app = app_for(example("titanic"));
    let doc = titanic_sklearn_expected();
    assert_eq!(doc["model"], "titanic_sklearn");
    check_v2_against("titanic_sklearn", &doc, &app).await;
    // The probabilities' columns are the classes the metadata names.
    let meta = call(&app, "GET", "/v2/models/titanic_sklearn", "").await;
    assert_eq!(meta.status, 200, "{:?}", meta.body);
    let meta = meta.json();
    let probs = meta["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "output_probability")
        .unwrap()
        .clone();
    assert_eq!(probs["datatype"], "FP32");
    assert_eq!(
        probs["parameters"]["classes"],
        doc["cases"][0]["outputs"]["output_probability"]["classes"]
    );
    let names: Vec<&Value> = meta["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["name"])
        .collect();
    assert_eq!(names, ["Age", "Fare", "Embarked", "Sex", "Pclass"]);
}

#[tokio::test]
async fn titanic_sklearn_route_answers_the_tutorial_record() {
    let app = app_for(example("titanic"));
    let man = json!({"Age":22,"Fare":7.25,"Embarked":"S","Sex":"male","Pclass":3});
    let woman = json!({"Age":38,"Fare":71.2833,"Embarked":"C","Sex":"female","Pclass":1});
    let odd = json!({"Age":30,"Fare":20,"Embarked":"X","Sex":"other","Pclass":4});
    let cases = [
        (&man, "tutorial_male_3rd"),
        (&woman, "female_1st"),
        (&odd, "unknown_categories"),
    ];
    for (record, case) in cases {
        let want = sklearn_case(case);
        let a = call(&app, "POST", "/model/sklearn", record.to_string()).await;
        assert_eq!(a.status, 200, "{case}: {:?}", a.body);
        let v = a.json();
        assert_eq!(
            v.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["probability", "survived"],
            "{case}: {v}"
        );
        assert_eq!(
            v["survived"], want["output_label"]["data"][0],
            "{case}: {v}"
        );
        assert_probability_object(&v["probability"], &want["output_probability"], 0, case);
    }
    // The tutorial's passenger, in numbers: died, 0.8953 / 0.1047.
    let v = call(&app, "POST", "/model/sklearn", man.to_string())
        .await
        .json();
    assert_eq!(v["survived"], json!(0));
    assert!(
        (v["probability"]["1"].as_f64().unwrap() - 0.104744256).abs() < 1e-5,
        "{v}"
    );
    // A list of records answers a list of objects, in order.
    let a = call(
        &app,
        "POST",
        "/model/sklearn",
        json!([woman, man]).to_string(),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let answers = a.json();
    let want = sklearn_case("female_1st_vs_male_3rd");
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), 2);
    for (row, answer) in answers.iter().enumerate() {
        assert_eq!(answer["survived"], want["output_label"]["data"][row]);
        assert_probability_object(
            &answer["probability"],
            &want["output_probability"],
            row,
            "list",
        );
    }
}

#[tokio::test]
async fn titanic_sklearn_v1_instances_are_records() {
    let app = app_for(example("titanic"));
    let man = json!({"Age":22,"Fare":7.25,"Embarked":"S","Sex":"male","Pclass":3});
    let a = call(
        &app,
        "POST",
        "/v1/models/titanic_sklearn:predict",
        json!({"instances": [man]}).to_string(),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let p = &a.json()["predictions"][0];
    let want = sklearn_case("tutorial_male_3rd");
    assert_eq!(p["output_label"], want["output_label"]["data"][0], "{p}");
    assert_probability_object(
        &p["output_probability"],
        &want["output_probability"],
        0,
        "v1",
    );
}
