//! examples/custom-app: a Rust app written against the App trait runs under the same master.

mod common;

use common::http::Conn;
use common::{Bin, start};

#[test]
fn the_custom_app_answers_its_route_and_passes_the_rest_to_the_model_app() {
    let server = start(Bin::CustomApp, &["-w", "2", "-b", "127.0.0.1:0"]);
    server.wait_workers(2);
    let post = |body: &str| {
        Conn::open(server.addr())
            .unwrap()
            .request("POST", "/species", &[], body.as_bytes())
            .unwrap()
    };
    let res =
        post(r#"{"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2}"#);
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["species"], "setosa");
    let res =
        post(r#"{"sepal_length":6.7,"sepal_width":3.0,"petal_length":5.2,"petal_width":2.3}"#);
    assert_eq!(res.json()["species"], "virginica");
    let p = res.json()["probability"].as_f64().unwrap();
    assert!((0.5..=1.0).contains(&p), "{p}");

    let res = post(r#"{"sepal_length":"long"}"#);
    assert_eq!(res.status, 400);
    assert!(
        res.json()["error"]
            .as_str()
            .unwrap()
            .contains("sepal_length")
    );

    // Everything else is the model app's.
    let res = server.get("/v2/health/ready");
    assert_eq!(res.status, 200);
    let res = server.get("/v2/models/iris");
    assert_eq!(res.json()["name"], "iris");

    // Its route counts under its own labels, the model's calls under the model's.
    server.assert_metrics(&[
        "serve_requests_total{model=\"iris\",protocol=\"route\",code=\"200\"} 2",
        "serve_requests_total{model=\"iris\",protocol=\"route\",code=\"400\"} 1",
        "serve_model_calls_total{model=\"iris\"} 2",
    ]);
}
