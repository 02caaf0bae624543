//! The front page, the OpenAPI document and the examples, through the App: every example
//! the document carries answers 200 (so the page's forms and a Postman collection work as
//! shipped), and a wrong example in a manifest fails the start check naming the key.

mod common;
#[path = "../../runtime/src/fixtures.rs"]
mod fixtures;

use common::*;
use fixtures::TempDir;
use serde_json::{Value, json};
use serve_app::AppFactory;
use serve_model::ModelAppFactory;
use serve_settings::Values;

/// Sends every request body example of the document to its path; returns how many.
async fn every_example_answers(app: &std::sync::Arc<dyn serve_app::App>) -> usize {
    let doc = call(app, "GET", "/openapi.json", "").await.json();
    let mut sent = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let example = &op["requestBody"]["content"]["application/json"]["example"];
            if example.is_null() {
                continue;
            }
            let a = call(app, &method.to_uppercase(), path, example.to_string()).await;
            assert_eq!(a.status, 200, "{method} {path} {example}: {:?}", a.body);
            sent += 1;
        }
    }
    sent
}

#[tokio::test]
async fn the_examples_of_every_example_app_answer() {
    // The embedded iris: V2, V1, the repository index.
    assert_eq!(
        every_example_answers(&app(None, &Values::default())).await,
        3
    );
    // iris: + /predict; titanic: two models and two routes; both: all of it.
    assert_eq!(every_example_answers(&app_for(example("iris"))).await, 4);
    assert_eq!(every_example_answers(&app_for(example("titanic"))).await, 7);
    assert_eq!(every_example_answers(&app_for(example(""))).await, 10);
    // A model file alone has placeholders, which answer too.
    assert_eq!(
        every_example_answers(&app_for(example("titanic/sklearn.onnx"))).await,
        3
    );
}

#[tokio::test]
async fn the_embedded_iris_example_is_a_setosa() {
    let app = app(None, &Values::default());
    let doc = call(&app, "GET", "/openapi.json", "").await.json();
    let body = &doc["paths"]["/v2/models/iris/infer"]["post"]["requestBody"]["content"]["application/json"]
        ["example"];
    assert_eq!(body["inputs"][0]["data"], json!([5.1, 3.5, 1.4, 0.2]));
    let a = call(&app, "POST", "/v2/models/iris/infer", body.to_string()).await;
    let label = a.json()["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "label")
        .unwrap()["data"]
        .clone();
    assert_eq!(label, json!([0]));
}

#[tokio::test]
async fn the_front_page_is_html_for_get_and_head_only() {
    let app = app_for(example("titanic"));
    let a = call(&app, "GET", "/", "").await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.headers.get("content-type").unwrap(),
        "text/html; charset=utf-8"
    );
    let page = String::from_utf8(a.body.to_vec()).unwrap();
    for needle in [
        "data-model=\"titanic\"",
        "data-model=\"titanic_sklearn\"",
        "<form class=\"try\" data-path=\"/model/sklearn\"",
        "<tr data-key=\"Embarked\">",
        "&quot;Embarked&quot;: &quot;S&quot;",
        "<td>0, 1</td>",
    ] {
        assert!(page.contains(needle), "missing {needle}");
    }
    assert_eq!(call(&app, "HEAD", "/", "").await.status, 200);
    let a = call(&app, "POST", "/", "").await;
    assert_eq!(a.status, 405);
    assert_eq!(a.headers.get("allow").unwrap(), "GET, HEAD");
    assert_eq!(call(&app, "DELETE", "/openapi.json", "").await.status, 405);
    let doc = call(&app, "GET", "/openapi.json", "").await;
    assert_eq!(doc.headers.get("content-type").unwrap(), "application/json");
    assert_eq!(doc.json()["openapi"], "3.1.0");
}

#[test]
fn a_wrong_example_fails_the_start_check_naming_the_key() {
    let cases: [(&str, &str); 4] = [
        (
            "[[model]]\nname = \"m\"\npath = \"model.onnx\"\n[model.example]\nAge = 1\n",
            "app.toml: model m: example: unknown input \"Age\"",
        ),
        (
            "[[model]]\nname = \"m\"\npath = \"model.onnx\"\n[model.example]\ninput = [1, 2]\n",
            "app.toml: model m: example: input \"input\": a row of [-1, 4] has 4 values, \
             the example gives 2",
        ),
        (
            "[[route]]\npath = \"/p\"\n[route.example]\ninptu = [1, 2, 3, 4]\n",
            "app.toml: route POST /p: example: record 0: unknown key \"inptu\"",
        ),
        (
            "[[route]]\npath = \"/p\"\nexample = \"x\"\n",
            "app.toml: route POST /p: example: ",
        ),
    ];
    for (manifest, want) in cases {
        let d = TempDir::new("front-example");
        d.file("model.onnx", serve_model::resolve::EMBEDDED_IRIS);
        d.file("app.toml", manifest.as_bytes());
        let f = ModelAppFactory::new(Some(d.0.clone()), &Values::default());
        let e = f.check().unwrap_err().to_string();
        assert!(e.contains(want), "{e}\n  want: {want}");
        assert!(!e.contains('\n'), "{e}");
    }
}

#[test]
fn the_document_has_a_unique_operation_id_per_operation() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let doc: Value = rt.block_on(async {
        let app = app_for(example(""));
        call(&app, "GET", "/openapi.json", "").await.json()
    });
    let mut ids = std::collections::HashSet::new();
    let mut n = 0;
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            assert!(ids.insert(op["operationId"].as_str().unwrap().to_string()));
            n += 1;
        }
    }
    // 9 of the server's own, 7 per model (V2 metadata, config, statistics, ready, infer; V1
    // status, predict) for 3 models, 3 routes.
    assert_eq!(n, 9 + 7 * 3 + 3);
}
