//! The front page and the OpenAPI document through the real binary, and the paths serve
//! keeps for itself: a manifest route on one of them stops the start with exit 4.

mod common;

use std::io::{Read, Write};

use common::http::Conn;
use common::{Bin, PATIENCE, Spawn, examples, start};

fn page(server: &common::Server) -> String {
    let res = server.get("/");
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
    res.text()
}

fn openapi(server: &common::Server) -> serde_json::Value {
    let res = server.get("/openapi.json");
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("content-type"), Some("application/json"));
    let doc = res.json();
    assert_eq!(doc["openapi"], "3.1.0");
    // The address the client used (this client sends `Host: test`).
    assert_eq!(doc["servers"][0]["url"], "http://test");
    doc
}

fn has_paths(doc: &serde_json::Value, paths: &[(&str, &str)]) {
    for (path, method) in paths {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is missing from {}",
            doc["paths"]
        );
    }
}

#[test]
fn the_embedded_iris_has_a_front_page_and_an_openapi_document() {
    let server = start(Bin::Serve, &["-w", "1", "-b", "127.0.0.1:0"]);
    let html = page(&server);
    for needle in [
        "<h1>serve <span class=\"version\"",
        "data-model=\"iris\"",
        "<tr data-name=\"input\"><td><code>input</code></td><td>FP32</td><td>[-1, 4]</td>",
        "<tr data-name=\"label\">",
        "<form class=\"try\" data-path=\"/v2/models/iris/infer\" data-method=\"POST\">",
        "<form class=\"try\" data-path=\"/v1/models/iris:predict\" data-method=\"POST\">",
        "&quot;data&quot;: [5.1, 3.5, 1.4, 0.2]",
        "<span class=\"origin\">http://test</span>/v2/models/iris/infer",
    ] {
        assert!(html.contains(needle), "missing {needle}");
    }
    // HEAD: the head of GET's answer and no body (read raw: the test client expects one).
    let common::Addr::Tcp(addr) = server.addr() else {
        unreachable!("bound on TCP")
    };
    let mut raw = std::net::TcpStream::connect(addr).unwrap();
    raw.write_all(b"HEAD / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut head = String::new();
    raw.read_to_string(&mut head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "no body: {head}");
    let res = Conn::open(server.addr())
        .unwrap()
        .request("POST", "/", &[], b"")
        .unwrap();
    assert_eq!(res.status, 405);

    let doc = openapi(&server);
    has_paths(
        &doc,
        &[
            ("/", "get"),
            ("/openapi.json", "get"),
            ("/metrics", "get"),
            ("/status", "get"),
            ("/v2", "get"),
            ("/v2/health/live", "get"),
            ("/v2/health/ready", "get"),
            ("/v2/repository/index", "post"),
            ("/v2/models/iris", "get"),
            ("/v2/models/iris/ready", "get"),
            ("/v2/models/iris/infer", "post"),
            ("/v1/models/iris", "get"),
            ("/v1/models/iris:predict", "post"),
        ],
    );
    // The document's example, sent as it is, is a setosa.
    let example = &doc["paths"]["/v2/models/iris/infer"]["post"]["requestBody"]["content"]["application/json"]
        ["example"];
    let res = Conn::post_json(
        server.addr(),
        "/v2/models/iris/infer",
        example.to_string().as_bytes(),
    );
    assert_eq!(res.status, 200, "{}", res.text());
    let outputs = res.json()["outputs"].clone();
    let label = outputs
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "label")
        .expect("a label output");
    assert_eq!(label["data"], serde_json::json!([0]));
}

#[test]
fn titanic_shows_both_models_their_inputs_and_routes() {
    let server = start(
        Bin::Serve,
        &["-w", "1", "-b", "127.0.0.1:0", &examples("titanic")],
    );
    let html = page(&server);
    for needle in [
        "data-model=\"titanic\"",
        "data-model=\"titanic_sklearn\"",
        "<tr data-name=\"Embarked\"><td><code>Embarked</code></td><td>BYTES</td><td>[-1, 1]</td>",
        "<tr data-name=\"output_probability\">",
        "<section class=\"route\" data-path=\"/model\" data-method=\"POST\">",
        "<section class=\"route\" data-path=\"/model/sklearn\" data-method=\"POST\">",
        "<form class=\"try\" data-path=\"/model\" data-method=\"POST\">",
        "<tr data-key=\"Pclass\">",
        "&quot;Sex&quot;: &quot;male&quot;",
    ] {
        assert!(html.contains(needle), "missing {needle}");
    }
    let doc = openapi(&server);
    has_paths(
        &doc,
        &[
            ("/v2/models/titanic/infer", "post"),
            ("/v2/models/titanic_sklearn/infer", "post"),
            ("/v1/models/titanic:predict", "post"),
            ("/model", "post"),
            ("/model/sklearn", "post"),
        ],
    );
    let record = &doc["paths"]["/model"]["post"]["requestBody"]["content"]["application/json"];
    assert_eq!(
        record["example"],
        serde_json::json!({"Age": 22, "Fare": 7.25, "Embarked": "S", "Sex": "male", "Pclass": 3})
    );
    assert_eq!(
        record["schema"]["oneOf"][0]["properties"]["Embarked"]["anyOf"][0]["type"],
        "string"
    );
}

#[test]
fn a_manifest_route_on_a_path_serve_keeps_exits_4_naming_it() {
    for path in ["/metrics", "/"] {
        let dir = common::tempdir();
        std::fs::copy(examples("iris/model.onnx"), dir.path().join("model.onnx")).unwrap();
        std::fs::write(
            dir.path().join("app.toml"),
            format!("[[model]]\nname = \"iris\"\n\n[[route]]\npath = \"{path}\"\n"),
        )
        .unwrap();
        let app = dir.path().display().to_string();
        let mut s = Spawn::new(Bin::Serve, &["-b", "127.0.0.1:0", &app]).spawn();
        assert_eq!(
            s.wait_exit(PATIENCE).and_then(|st| st.code()),
            Some(4),
            "{}",
            s.log()
        );
        let log = s.log();
        assert!(
            log.contains(&format!(
                "app.toml: route POST {path}: {path} is served by serve itself"
            )) && log.contains("choose another path"),
            "{log}"
        );
        assert!(!log.contains("Booting worker"), "{log}");
    }
}
