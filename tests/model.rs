//! The model app through the real binary: the embedded iris model, the titanic tutorial's
//! route, lazy loading and --preload made visible, readiness, reload of a model, and a corpus
//! of bad requests that never costs a worker.

mod common;
#[path = "../crates/runtime/src/fixtures.rs"]
mod fixtures;

use std::collections::BTreeSet;

use common::http::Conn;
use common::{Bin, PATIENCE, Spawn, examples, load, serial, start};
use nix::sys::signal::Signal;

fn post(server: &common::Server, path: &str, body: &str) -> common::http::Response {
    Conn::open(server.addr())
        .unwrap()
        .request(
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .unwrap()
}

const SETOSA: &str = "[5.1, 3.5, 1.4, 0.2]";
const VIRGINICA: &str = "[6.7, 3.0, 5.2, 2.3]";

fn v2_label(server: &common::Server, row: &str) -> i64 {
    let body = format!(
        r#"{{"id": "r1", "inputs": [{{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": {row}}}]}}"#
    );
    let res = post(server, "/v2/models/iris/infer", &body);
    assert_eq!(res.status, 200, "{}", res.text());
    let v = res.json();
    assert_eq!(v["id"], "r1");
    let label = v["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "label")
        .unwrap();
    label["data"][0].as_i64().unwrap()
}

#[test]
fn serve_without_an_app_serves_the_embedded_iris_model() {
    let server = start(Bin::Serve, &["-w", "2", "-b", "127.0.0.1:0"]);
    assert_eq!(v2_label(&server, SETOSA), 0);
    assert_eq!(v2_label(&server, VIRGINICA), 2);
    let res = post(
        &server,
        "/v1/models/iris:predict",
        &format!(r#"{{"instances": [{SETOSA}, {VIRGINICA}]}}"#),
    );
    assert_eq!(res.status, 200, "{}", res.text());
    let labels: Vec<i64> = res.json()["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["label"].as_i64().unwrap())
        .collect();
    assert_eq!(labels, vec![0, 2]);
    assert!(server.log().contains("App: model iris (embedded)"));
}

#[test]
fn titanic_answers_the_tutorials_route() {
    let server = start(
        Bin::Serve,
        &["-w", "2", "-b", "127.0.0.1:0", &examples("titanic")],
    );
    let one = |record: &str| {
        let res = post(&server, "/model", record);
        assert_eq!(res.status, 200, "{}", res.text());
        res.json()["predict"].as_f64().expect("predict is a float")
    };
    let man_3rd = one(r#"{"Age":22,"Fare":7.25,"Embarked":"S","Sex":"male","Pclass":3}"#);
    let woman_1st = one(r#"{"Age":38,"Fare":71.2833,"Embarked":"C","Sex":"female","Pclass":1}"#);
    assert!((0.0..=1.0).contains(&man_3rd) && (0.0..=1.0).contains(&woman_1st));
    assert!(woman_1st > man_3rd, "{woman_1st} vs {man_3rd}");

    let records: Vec<String> = (0..100)
        .map(|i| {
            format!(
                r#"{{"Age":{},"Fare":{}.5,"Embarked":"{}","Sex":"{}","Pclass":{}}}"#,
                20 + i % 40,
                5 + i,
                ["S", "C", "Q"][i % 3],
                ["male", "female"][i % 2],
                1 + i % 3
            )
        })
        .collect();
    let res = post(&server, "/model", &format!("[{}]", records.join(",")));
    assert_eq!(res.status, 200, "{}", res.text());
    let answers = res.json();
    let answers = answers.as_array().expect("a list answers a list");
    assert_eq!(answers.len(), 100);
    assert!(answers.iter().all(|a| {
        a["predict"]
            .as_f64()
            .is_some_and(|p| (0.0..=1.0).contains(&p))
    }));
}

#[test]
fn models_load_lazily_and_say_so() {
    let server = start(Bin::Serve, &["-w", "1", "-b", "127.0.0.1:0"]);
    let worker = server.wait_workers(1)[0];
    // The boot proof built it once, in a child that is gone; the worker has not.
    assert_eq!(server.count_log("loaded in"), 1, "{}", server.log());
    assert!(server.log().contains("Proved the app in a child"));
    assert!(
        !server
            .log()
            .contains(&format!("[{worker}] [INFO] model iris loaded in")),
        "nothing is loaded in the worker before a request"
    );
    // A lazily loaded model is servable: ready, and its metadata says it is not loaded yet.
    assert_eq!(server.get("/v2/health/ready").status, 200);
    assert_eq!(server.get("/v2/models/iris/ready").status, 200);
    assert_eq!(
        server.get("/v2/models/iris").json()["parameters"]["loaded"],
        false
    );
    assert_eq!(v2_label(&server, SETOSA), 0);
    assert!(server.wait_log(
        &format!("[{worker}] [INFO] model iris loaded in "),
        PATIENCE
    ));
    assert_eq!(
        server.get("/v2/models/iris").json()["parameters"]["loaded"],
        true
    );
    assert_eq!(
        server.count_log("loaded in"),
        2,
        "the proof's and the worker's"
    );
}

#[test]
fn preload_loads_once_in_the_master_before_forking() {
    let server = start(Bin::Serve, &["-w", "2", "-b", "127.0.0.1:0", "--preload"]);
    let master = server.master;
    assert!(
        server
            .log()
            .contains(&format!("[{master}] [INFO] model iris loaded in "))
    );
    let log = server.log();
    let loaded = log.find("model iris loaded in").unwrap();
    let forked = log.find("Booting worker").unwrap();
    assert!(loaded < forked, "loaded before the first fork:\n{log}");
    for _ in 0..10 {
        assert_eq!(
            server.get("/v2/models/iris").json()["parameters"]["loaded"],
            true
        );
    }
    assert_eq!(v2_label(&server, VIRGINICA), 2);
    assert_eq!(server.count_log("loaded in"), 1, "no worker loads it again");
}

/// A generation is immutable: the bytes proven at start are what every worker of it loads,
/// a respawned one too, whatever the file becomes; a refused reload costs no readiness.
#[test]
fn a_generation_serves_the_model_it_was_proven_with_whatever_the_file_becomes() {
    let dir = common::tempdir();
    let model = dir.path().join("iris.onnx");
    std::fs::copy(examples("iris/model.onnx"), &model).unwrap();
    let server = start(
        Bin::Serve,
        &["-w", "2", "-b", "127.0.0.1:0", model.to_str().unwrap()],
    );
    let workers = server.wait_workers(2);
    assert_eq!(v2_label(&server, SETOSA), 0);
    // The file breaks; a reload is refused; a worker dies and is replaced.
    std::fs::write(&model, b"not an onnx file").unwrap();
    server.signal(Signal::SIGHUP);
    assert!(
        server.wait_log("Reload failed", PATIENCE),
        "{}",
        server.log()
    );
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(workers[0]), Signal::SIGKILL).unwrap();
    assert!(common::wait_until(PATIENCE, || {
        let now = server.workers();
        now.len() == 2 && !now.contains(&workers[0])
    }));
    std::fs::remove_file(&model).unwrap();
    // Every request is answered by the proven model, by both workers (the new one loads
    // it lazily, from the bytes it inherited), and the server stays ready.
    for _ in 0..60 {
        assert_eq!(v2_label(&server, VIRGINICA), 2);
        let ready = server.get("/v2/health/ready");
        assert_eq!(ready.status, 200, "{}", ready.text());
        assert_eq!(server.get("/v2/models/iris/ready").status, 200);
    }
    assert!(
        server.count_log("model iris loaded in") >= 2,
        "the respawned worker loaded the model: {}",
        server.log()
    );
    assert_eq!(server.count_log("cannot be loaded"), 0, "{}", server.log());
}

/// Readiness is about the server, not one worker: it stays 200 while workers retire under
/// load (max-requests recycles and a reload), as long as the server serves.
#[test]
fn readiness_stays_200_through_recycles_and_reloads_under_load() {
    let _serial = serial();
    let server = start(
        Bin::Serve,
        &["-w", "2", "-b", "127.0.0.1:0", "--max-requests", "40"],
    );
    server.wait_workers(2);
    let body = format!(
        r#"{{"inputs": [{{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": {SETOSA}}}]}}"#
    );
    let work = load::start_post(server.addr(), "/v2/models/iris/infer", &body, 4);
    let probes = load::start(server.addr(), "/v2/health/ready", 2);
    assert!(
        common::wait_until(PATIENCE, || server.count_log("Autorestarting worker") >= 4),
        "workers recycle: {}",
        server.log()
    );
    server.signal(Signal::SIGHUP);
    assert!(
        server.wait_log("Reload complete", PATIENCE),
        "{}",
        server.log()
    );
    assert!(probes.wait_for(100, PATIENCE));
    let (work, probes) = (work.finish(), probes.finish());
    assert_eq!(work.failed, 0, "{:?}", work.errors);
    assert_eq!(
        probes.failed, 0,
        "readiness answered 503: {:?}",
        probes.errors
    );
    assert!(probes.ok > 100);
}

#[test]
fn a_missing_or_broken_model_exits_4_before_any_fork() {
    for app in ["/nonexistent/model.onnx", file!()] {
        let mut s = Spawn::new(Bin::Serve, &["-b", "127.0.0.1:0", app]).spawn();
        assert_eq!(
            s.wait_exit(PATIENCE).and_then(|st| st.code()),
            Some(4),
            "{app}"
        );
        let log = s.log();
        let errors: Vec<&str> = log.lines().filter(|l| l.contains("[ERROR]")).collect();
        assert_eq!(errors.len(), 1, "{log}");
        assert!(!log.contains("Booting worker"), "{log}");
    }
}

#[test]
fn a_model_tract_cannot_build_stops_the_first_boot_and_check_config() {
    let dir = common::tempdir();
    let fancy = dir.path().join("fancy.onnx");
    std::fs::write(&fancy, fixtures::unimplemented_op()).unwrap();
    std::fs::copy(examples("iris/model.onnx"), dir.path().join("iris.onnx")).unwrap();
    let repo = dir.path().display().to_string();
    // The file alone, and a repository where another model would build: refused whole.
    for app in [fancy.to_str().unwrap(), repo.as_str()] {
        let mut s = Spawn::new(Bin::Serve, &["-w", "2", "-b", "127.0.0.1:0", app]).spawn();
        assert_eq!(
            s.wait_exit(PATIENCE).and_then(|st| st.code()),
            Some(4),
            "{app}"
        );
        let log = s.log();
        assert!(
            log.contains("cannot load the app: model fancy (")
                && log
                    .contains("tract does not implement the operator FancyOp (node \"FancyOp_y\")"),
            "{log}"
        );
        assert!(!log.contains("Booting worker"), "{log}");
    }
    let out = std::process::Command::new(Bin::Serve.path())
        .args(["--check-config", &repo])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("FancyOp"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Config OK"));
}

#[test]
fn a_tf2onnx_style_file_with_five_batch_names_serves_any_batch() {
    let dir = common::tempdir();
    let model = dir.path().join("keras.onnx");
    std::fs::write(&model, fixtures::separate_batch_names()).unwrap();
    let server = start(
        Bin::Serve,
        &["-w", "1", "-b", "127.0.0.1:0", model.to_str().unwrap()],
    );
    for n in [1usize, 8] {
        let inputs: Vec<String> = ["age", "fare", "sibsp", "parch", "pclass"]
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let data = vec![i.to_string(); n].join(",");
                format!(
                    r#"{{"name": "{name}", "shape": [{n}, 1], "datatype": "FP32", "data": [{data}]}}"#
                )
            })
            .collect();
        let body = format!(r#"{{"inputs": [{}]}}"#, inputs.join(","));
        let res = post(&server, "/v2/models/keras/infer", &body);
        assert_eq!(res.status, 200, "batch {n}: {}", res.text());
        let out = res.json();
        let sum = &out["outputs"][1];
        assert_eq!(sum["shape"], serde_json::json!([n, 1]));
        assert!(sum["data"].as_array().unwrap().iter().all(|v| v == 10.0));
    }
    assert!(!server.log().contains("pinned"), "{}", server.log());
}

#[test]
fn hup_reloads_the_model_and_a_broken_one_is_refused() {
    let _serial = serial();
    let dir = common::tempdir();
    let model = dir.path().join("iris.onnx");
    std::fs::copy(examples("iris/model.onnx"), &model).unwrap();
    let server = start(
        Bin::Serve,
        &["-w", "2", "-b", "127.0.0.1:0", model.to_str().unwrap()],
    );
    let before: BTreeSet<i32> = server.wait_workers(2).into_iter().collect();
    let body = format!(
        r#"{{"inputs": [{{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": {SETOSA}}}]}}"#
    );
    let l = load::start_post(server.addr(), "/v2/models/iris/infer", &body, 8);
    if !l.wait_for(200, PATIENCE) {
        panic!("the load does not flow: {:?}", l.finish().errors);
    }

    // A broken model: the proof fails, the old generation serves on.
    std::fs::write(&model, b"garbage").unwrap();
    server.signal(Signal::SIGHUP);
    assert!(
        server.wait_log("Reload failed", PATIENCE),
        "{}",
        server.log()
    );
    assert!(l.wait_for(200, PATIENCE));
    assert_eq!(
        server.workers().into_iter().collect::<BTreeSet<_>>(),
        before
    );

    // A good one: a new generation, nothing dropped.
    std::fs::copy(examples("iris/model.onnx"), &model).unwrap();
    server.signal(Signal::SIGHUP);
    assert!(
        server.wait_log("Reload complete", PATIENCE),
        "{}",
        server.log()
    );
    assert!(common::wait_until(PATIENCE, || {
        server
            .workers()
            .into_iter()
            .collect::<BTreeSet<_>>()
            .is_disjoint(&before)
    }));
    assert!(l.wait_for(200, PATIENCE));
    let stats = l.finish();
    assert_eq!(stats.failed, 0, "{:?}", stats.errors);
}

/// Every request here is wrong in its own way; each gets its status and a JSON error that
/// names the problem, and no worker dies or restarts.
#[test]
fn bad_requests_get_clear_errors_and_cost_no_worker() {
    let server = start(
        Bin::Serve,
        &[
            "-w",
            "2",
            "-b",
            "127.0.0.1:0",
            "--max-body-size",
            "64K",
            &examples("titanic"),
        ],
    );
    let workers = server.wait_workers(2);
    let infer = "/v2/models/titanic/infer";
    let tensor = |name: &str, dt: &str, shape: &str, data: &str| {
        format!(r#"{{"name":"{name}","datatype":"{dt}","shape":{shape},"data":{data}}}"#)
    };
    let good = [
        tensor("Age", "FP32", "[1,1]", "[22]"),
        tensor("Fare", "FP32", "[1,1]", "[7.25]"),
        tensor("Embarked", "BYTES", "[1,1]", r#"["S"]"#),
        tensor("Sex", "BYTES", "[1,1]", r#"["male"]"#),
        tensor("Pclass", "INT64", "[1,1]", "[3]"),
    ];
    let with = |i: usize, replacement: &str| {
        let mut t: Vec<String> = good.to_vec();
        if replacement.is_empty() {
            t.remove(i);
        } else {
            t[i] = replacement.to_string();
        }
        format!(r#"{{"inputs":[{}]}}"#, t.join(","))
    };
    let huge = "x".repeat(70 << 10);
    let cases: Vec<(&str, &str, String, u16, &[&str])> = vec![
        (
            "POST",
            infer,
            r#"{"inputs": [ {"name": "Age""#.into(),
            400,
            &["malformed JSON", "line 1", "column"],
        ),
        ("POST", infer, with(0, ""), 400, &["missing", "Age"]),
        (
            "POST",
            infer,
            format!(
                r#"{{"inputs":[{},{}]}}"#,
                good.join(","),
                tensor("Cabin", "BYTES", "[1,1]", r#"["C85"]"#)
            ),
            400,
            &["unknown input", "Cabin"],
        ),
        (
            "POST",
            infer,
            with(4, &tensor("Pclass", "FP32", "[1,1]", "[3]")),
            400,
            &["Pclass", "datatype"],
        ),
        (
            "POST",
            infer,
            with(0, &tensor("Age", "FP32", "[1,2]", "[22,23]")),
            400,
            &["Age", "[1, 2]", "batch"],
        ),
        (
            "POST",
            infer,
            with(0, &tensor("Age", "FP32", "[2,1]", "[22]")),
            400,
            &["Age"],
        ),
        (
            "POST",
            infer,
            with(0, &tensor("Age", "FP32", "[1,1]", r#"["old"]"#)),
            400,
            &["Age", "number"],
        ),
        (
            "POST",
            infer,
            with(4, &tensor("Pclass", "INT64", "[1,1]", "[NaN]")),
            400,
            &["Pclass", "NaN is a missing value", "INT64"],
        ),
        (
            "POST",
            infer,
            with(2, &tensor("Embarked", "BYTES", "[1,1]", "[Infinity]")),
            400,
            &["Embarked", "Infinity is an infinity", "BYTES"],
        ),
        ("POST", infer, r#"{"inputs": []}"#.into(), 400, &["empty"]),
        (
            "POST",
            infer,
            with(0, &tensor("Age", "FP32", "[1000000000000,1]", "[1]")),
            400,
            &["Age"],
        ),
        (
            "POST",
            "/v1/models/titanic:predict",
            r#"{"instances": []}"#.into(),
            400,
            &["instances", "empty"],
        ),
        (
            "POST",
            "/v1/models/titanic:predict",
            r#"{"instances": [{"Age": 1}]}"#.into(),
            400,
            &["Fare"],
        ),
        (
            "POST",
            "/model",
            r#"{"Age": "twenty"}"#.into(),
            400,
            &["Age"],
        ),
        ("POST", "/model", "[]".into(), 400, &["empty"]),
        (
            "POST",
            "/model",
            format!(r#"{{"Age": "{huge}"}}"#),
            413,
            &["--max-body-size"],
        ),
        ("POST", "/v2/models/nope/infer", with(0, ""), 404, &["nope"]),
        ("GET", infer, String::new(), 405, &["POST"]),
        ("DELETE", "/model", String::new(), 405, &[]),
        (
            "GET",
            "/v2/models/titanic/versions/9",
            String::new(),
            404,
            &["version"],
        ),
        ("GET", "/no/such/route", String::new(), 404, &[]),
    ];
    for (method, path, body, status, words) in &cases {
        let res = Conn::open(server.addr())
            .unwrap()
            .request(method, path, &[], body.as_bytes())
            .unwrap();
        let shown: String = body.chars().take(80).collect();
        assert_eq!(
            res.status,
            *status,
            "{method} {path} {shown}: {}",
            res.text()
        );
        let error = res.json()["error"].as_str().unwrap_or_default().to_string();
        assert!(!error.is_empty(), "{method} {path}: no error field");
        for w in *words {
            assert!(
                error.contains(w),
                "{method} {path} {shown}: {error:?} lacks {w:?}"
            );
        }
    }
    // A tensor whose batch is 0 is valid and answers empty outputs.
    let empty = format!(
        r#"{{"inputs":[{},{},{},{},{}]}}"#,
        tensor("Age", "FP32", "[0,1]", "[]"),
        tensor("Fare", "FP32", "[0,1]", "[]"),
        tensor("Embarked", "BYTES", "[0,1]", "[]"),
        tensor("Sex", "BYTES", "[0,1]", "[]"),
        tensor("Pclass", "INT64", "[0,1]", "[]")
    );
    let res = post(&server, infer, &empty);
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["outputs"][0]["shape"], serde_json::json!([0, 1]));
    assert_eq!(server.workers(), workers, "no worker died or restarted");
    assert_eq!(post(&server, infer, &with(0, &good[0])).status, 200);
}
