//! Repository control (`--model-control explicit`, Triton's explicit model control) through
//! the real binary: load and unload requests over REST, each proven and served by a new
//! generation of workers; a model that cannot be built refused with the proof's error while
//! the running models serve on; loads that queue; HUP keeping what is loaded; and the start's
//! refusals. gRPC's RepositoryModelLoad/Unload are in tests/grpc.rs, tritonclient's in
//! tests/python.

mod common;

use std::path::Path;

use common::http::{Conn, Response};
use common::{Bin, PATIENCE, Spawn, examples, load, serial, start};
use nix::sys::signal::Signal;

#[path = "../crates/runtime/src/fixtures.rs"]
mod fixtures;

/// A repository: `iris` (a Triton model directory with a config.pbtxt), `titanic` (a file),
/// `sklearn` (`NAME/model.onnx`), and `fancy`, which tract cannot build (an operator it
/// does not implement): it passes every check but the proof's.
fn repository() -> tempfile::TempDir {
    let dir = common::tempdir();
    let at = dir.path().join("iris/1");
    std::fs::create_dir_all(&at).unwrap();
    std::fs::copy(examples("iris/model.onnx"), at.join("model.onnx")).unwrap();
    std::fs::write(
        dir.path().join("iris/config.pbtxt"),
        "name: \"iris\"\nmax_batch_size: 8\n",
    )
    .unwrap();
    std::fs::copy(
        examples("titanic/model.onnx"),
        dir.path().join("titanic.onnx"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("sklearn")).unwrap();
    std::fs::copy(
        examples("titanic/sklearn.onnx"),
        dir.path().join("sklearn/model.onnx"),
    )
    .unwrap();
    std::fs::write(dir.path().join("fancy.onnx"), fixtures::unimplemented_op()).unwrap();
    dir
}

fn serve(repo: &Path, extra: &[&str]) -> common::Server {
    let mut args = vec![
        "-w",
        "2",
        "-b",
        "127.0.0.1:0",
        "--model-control",
        "explicit",
    ];
    args.extend_from_slice(extra);
    args.push(repo.to_str().unwrap());
    start(Bin::Serve, &args)
}

fn post(server: &common::Server, path: &str, body: &str) -> Response {
    Conn::post_json(server.addr(), path, body.as_bytes())
}

fn load(server: &common::Server, model: &str, body: &str) -> Response {
    post(server, &format!("/v2/repository/models/{model}/load"), body)
}

fn unload(server: &common::Server, model: &str) -> Response {
    post(server, &format!("/v2/repository/models/{model}/unload"), "")
}

const IRIS_ROW: &str = r#"{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}"#;

fn infer_iris(server: &common::Server) -> Response {
    post(server, "/v2/models/iris/infer", IRIS_ROW)
}

/// The repository index as (name, state, reason), in the server's order.
fn index(server: &common::Server) -> Vec<(String, String, String)> {
    let res = post(server, "/v2/repository/index", "");
    assert_eq!(res.status, 200, "{}", res.text());
    res.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (s("name"), s("state"), s("reason"))
        })
        .collect()
}

fn state_of(server: &common::Server, model: &str) -> (String, String) {
    index(server)
        .into_iter()
        .find(|(n, _, _)| n == model)
        .map(|(_, s, r)| (s, r))
        .unwrap_or_else(|| panic!("{model} is not in the index"))
}

#[test]
fn an_empty_start_loads_serves_and_unloads_by_request() {
    let _serial = serial();
    let repo = repository();
    let server = serve(repo.path(), &[]);
    // No model, and ready: a server that waits to be told what to load.
    assert_eq!(server.get("/v2/health/ready").status, 200);
    assert!(
        server
            .log()
            .contains("under explicit model control, no model loaded"),
        "{}",
        server.log()
    );
    let names = index(&server);
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(
        names
            .iter()
            .all(|(_, s, r)| s == "UNAVAILABLE" && r == "unloaded"),
        "{names:?}"
    );
    let meta = server.get("/v2").json();
    assert!(
        meta["extensions"]
            .as_array()
            .unwrap()
            .contains(&"model_repository".into()),
        "{meta}"
    );
    assert_eq!(infer_iris(&server).status, 404);

    // A load answers once every worker of a new generation serves the model.
    let before = server.wait_workers(2);
    let res = load(&server, "iris", "");
    assert_eq!((res.status, res.text()), (200, String::new()));
    // Answered before the old generation is asked to drain: its worker had the request.
    let after = server.wait_workers(2);
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "a new generation serves the load: {before:?} then {after:?}"
    );
    assert_eq!(state_of(&server, "iris"), ("READY".into(), String::new()));
    for _ in 0..4 {
        assert_eq!(infer_iris(&server).status, 200);
    }
    // The configuration is config.pbtxt's.
    let config = server.get("/v2/models/iris/config").json();
    assert_eq!(config["max_batch_size"], 8, "{config}");

    // A model that cannot be built: the proof's error, and the models served serve on.
    let workers = server.wait_workers(2);
    let res = load(&server, "fancy", "");
    assert_eq!(res.status, 400, "{}", res.text());
    let e = res.json()["error"].as_str().unwrap().to_owned();
    assert!(
        e.starts_with("load of model \"fancy\" failed: ")
            && e.contains("tract does not implement the operator FancyOp")
            && e.ends_with("the models served before serve on"),
        "{e}"
    );
    assert_eq!(server.workers(), workers, "no generation started");
    assert_eq!(infer_iris(&server).status, 200);
    assert_eq!(
        state_of(&server, "fancy"),
        ("UNAVAILABLE".into(), "unloaded".into())
    );

    // Names, parameters and configurations are checked before the master is asked.
    let res = load(&server, "nope", "");
    assert_eq!(res.status, 400);
    let e = res.json()["error"].as_str().unwrap().to_owned();
    assert!(
        e.contains("model \"nope\" is not in the repository")
            && e.contains("fancy, iris, sklearn, titanic"),
        "{e}"
    );
    let res = load(
        &server,
        "iris",
        r#"{"parameters": {"file:1/model.onnx": "AAAA"}}"#,
    );
    assert_eq!(res.status, 400);
    assert!(
        res.text().contains("parameter \\\"file:1/model.onnx\\\"")
            && res.text().contains("does not take model files"),
        "{}",
        res.text()
    );
    let res = load(
        &server,
        "iris",
        r#"{"parameters": {"config": "{\"max_batch\": 4}"}}"#,
    );
    assert_eq!(res.status, 400);
    assert!(res.text().contains("max_batch"), "{}", res.text());
    let res = load(&server, "iris", r#"{"parameters": {"config": 4}}"#);
    assert_eq!(res.status, 400);
    assert!(
        res.text()
            .contains("parameter \\\"config\\\" must be a string"),
        "{}",
        res.text()
    );
    assert_eq!(server.workers(), workers, "no generation started");

    // A configuration given with the load replaces config.pbtxt; a load without one reads
    // the file again.
    let res = load(
        &server,
        "iris",
        r#"{"parameters": {"config": "{\"name\": \"iris\", \"max_batch_size\": 2}"}}"#,
    );
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(
        server.get("/v2/models/iris/config").json()["max_batch_size"],
        2
    );
    assert_eq!(load(&server, "iris", "{}").status, 200);
    assert_eq!(
        server.get("/v2/models/iris/config").json()["max_batch_size"],
        8
    );

    // Unload: a new generation without it. Unloading what is not loaded changes nothing.
    let res = unload(&server, "iris");
    assert_eq!((res.status, res.text()), (200, String::new()));
    assert_eq!(infer_iris(&server).status, 404);
    assert_eq!(
        state_of(&server, "iris"),
        ("UNAVAILABLE".into(), "unloaded".into())
    );
    let workers = server.wait_workers(2);
    assert_eq!(unload(&server, "iris").status, 200);
    assert_eq!(server.workers(), workers);
    assert_eq!(server.get("/v2/health/ready").status, 200);
}

#[test]
fn loads_queue_and_the_loaded_models_answer_throughout_and_after_hup() {
    let _serial = serial();
    let repo = repository();
    let server = serve(repo.path(), &["--load-model", "iris"]);
    assert_eq!(infer_iris(&server).status, 200);
    let l = load::start_post(server.addr(), "/v2/models/iris/infer", IRIS_ROW, 4);
    assert!(l.wait_for(50, PATIENCE), "the load runs");

    // Four requests at once, from four connections (so from both workers): each waits its
    // turn, and each is answered for itself.
    let answers: Vec<(String, u16, String)> = std::thread::scope(|s| {
        let asks: Vec<_> = ["titanic", "fancy", "sklearn", "titanic"]
            .into_iter()
            .map(|m| {
                let server = &server;
                s.spawn(move || {
                    let r = load(server, m, "");
                    (m.to_owned(), r.status, r.text())
                })
            })
            .collect();
        asks.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (m, status, text) in &answers {
        let expected = if m == "fancy" { 400 } else { 200 };
        assert_eq!(*status, expected, "{m}: {text}");
    }
    assert!(l.wait_for(l.answered() + 50, PATIENCE), "the load goes on");
    let stats = l.finish();
    assert_eq!(stats.failed, 0, "{:?}", stats.errors);
    let log = server.log();
    let started = log.matches("Repository control: load of model").count();
    assert_eq!(started, 4, "one change at a time, each its own: {log}");
    for m in ["iris", "titanic", "sklearn"] {
        assert_eq!(state_of(&server, m).0, "READY", "{m}");
    }

    // HUP reads the files again and keeps what is loaded, not --load-model's list.
    let workers = server.workers();
    server.signal(Signal::SIGHUP);
    assert!(server.wait_log("Reload complete", PATIENCE));
    assert!(common::wait_until(PATIENCE, || server
        .workers()
        .iter()
        .all(|p| !workers.contains(p))));
    for m in ["iris", "titanic", "sklearn"] {
        assert_eq!(state_of(&server, m).0, "READY", "{m} after HUP");
    }
    assert_eq!(state_of(&server, "fancy").1, "unloaded");
    assert_eq!(infer_iris(&server).status, 200);
}

#[test]
fn an_answer_that_takes_longer_than_the_timeout_is_504_and_the_load_goes_on() {
    let repo = repository();
    let server = serve(repo.path(), &["--model-load-timeout", "0.001"]);
    let res = load(&server, "iris", "");
    assert_eq!(res.status, 504, "{}", res.text());
    assert!(
        res.text().contains("--model-load-timeout") && res.text().contains("the change goes on"),
        "{}",
        res.text()
    );
    assert!(common::wait_until(PATIENCE, || infer_iris(&server).status == 200));
}

#[test]
fn load_model_star_loads_all_and_the_start_refuses_what_cannot_work() {
    let repo = repository();
    std::fs::remove_file(repo.path().join("fancy.onnx")).unwrap();
    let server = serve(repo.path(), &["--load-model", "*"]);
    for m in ["iris", "titanic", "sklearn"] {
        assert_eq!(state_of(&server, m).0, "READY", "{m}");
    }
    drop(server);

    let exit = |args: &[&str]| {
        let mut s = Spawn::new(Bin::Serve, args).spawn();
        let code = s.wait_exit(PATIENCE).and_then(|st| st.code());
        (code, s.log())
    };
    let repo_arg = repo.path().to_str().unwrap();
    let (code, log) = exit(&["--load-model", "iris", repo_arg]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("add --model-control explicit"), "{log}");
    let (code, log) = exit(&[
        "--model-control",
        "explicit",
        "--load-model",
        "nope",
        repo_arg,
    ]);
    assert_eq!(code, Some(4), "{log}");
    assert!(
        log.contains("model \"nope\" is not in the repository"),
        "{log}"
    );
    let iris = examples("iris/model.onnx");
    let (code, log) = exit(&["--model-control", "explicit", &iris]);
    assert_eq!(code, Some(4), "{log}");
    assert!(
        log.contains("loads models by name from a repository, and this is a file"),
        "{log}"
    );
    let (code, log) = exit(&["--model-control", "explicit", "--model-name", "x", repo_arg]);
    assert_eq!(code, Some(4), "{log}");
    assert!(log.contains("each model keeps its name"), "{log}");
}

#[test]
fn without_explicit_control_load_and_unload_are_501_naming_hup() {
    let server = start(
        Bin::Serve,
        &["-b", "127.0.0.1:0", &examples("iris/model.onnx")],
    );
    for verb in ["load", "unload"] {
        let res = post(&server, &format!("/v2/repository/models/iris/{verb}"), "");
        assert_eq!(res.status, 501, "{verb}");
        assert!(
            res.text().contains("--model-control explicit"),
            "{}",
            res.text()
        );
    }
}
