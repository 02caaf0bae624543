//! The example models answer what onnxruntime answered (examples/*/expected.json), within
//! 1e-5, over every protocol; and the acceptance checks of issue 3.

mod common;

use common::*;
use serde_json::{Value, json};

fn expected(model: &str) -> Value {
    let text = std::fs::read_to_string(example(&format!("{model}/expected.json"))).unwrap();
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
    for case in expected(model)["cases"].as_array().unwrap() {
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
            assert_close(&out["data"], &want["data"], name);
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
    check_v2("iris", &app(serve_model::ModelOptions::default())).await;
}

#[tokio::test]
async fn titanic_matches_onnxruntime() {
    check_v2("titanic", &app_for(example("titanic"))).await;
}

#[tokio::test]
async fn iris_labels_setosa_and_virginica_over_v2_and_v1() {
    let app = app(serve_model::ModelOptions::default());
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
