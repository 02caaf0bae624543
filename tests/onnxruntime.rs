//! The onnxruntime engine through the real binary: chosen by `--engine`, its library found
//! or refused at start with the places tried, proven in the short-lived child, loaded by the
//! workers and never by the master (its threads and a fork do not mix), with `--preload` too
//! (the master builds the rest; each worker builds its sessions as it boots). The tests that
//! need the library itself read it from `ORT_DYLIB_PATH` (see `common::onnxruntime_library`);
//! the others need none.

mod common;
#[path = "../crates/runtime/src/fixtures.rs"]
mod fixtures;

use std::time::Duration;

use common::http::Conn;
use common::{Bin, PATIENCE, Spawn, examples, load, procs, serial};
use nix::sys::signal::Signal;

fn iris() -> String {
    examples("iris/model.onnx")
}

/// Starts serve with these arguments, without ORT_DYLIB_PATH or a virtual environment (so
/// that only what the test names is found), and waits for it to exit: its code and log.
fn refused(args: &[&str]) -> (i32, String) {
    let mut cmd = std::process::Command::new(Bin::Serve.path());
    cmd.args(args)
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("VIRTUAL_ENV")
        .env_remove("SERVE_CMD_ARGS")
        .env_remove("PORT")
        .env_remove("WEB_CONCURRENCY");
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > PATIENCE {
            let _ = child.kill();
            panic!("serve {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    (status.code().unwrap_or(-1), log)
}

#[test]
fn a_missing_library_is_refused_at_start_naming_every_place_tried_and_the_fix() {
    let iris = iris();
    let (code, log) = refused(&["-b", "127.0.0.1:0", "--engine", "onnxruntime", &iris]);
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains(
            "model iris: the onnxruntime library was not found; looked at --onnxruntime (not \
             set), ORT_DYLIB_PATH (not set), "
        ),
        "{log}"
    );
    assert!(
        log.contains("Install it where serve runs (`pip install onnxruntime`)"),
        "{log}"
    );
    let (code, log) = refused(&[
        "-b",
        "127.0.0.1:0",
        "--engine=onnxruntime",
        "--onnxruntime=/nonexistent/libonnxruntime.so",
        &iris,
    ]);
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("--onnxruntime names /nonexistent/libonnxruntime.so, which is not a file"),
        "{log}"
    );
}

#[test]
fn a_file_that_is_not_the_library_fails_the_proof_in_the_child_not_the_master() {
    // Found (it is a file), so the master starts; loading it is the proving child's.
    let not_a_library = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let iris = iris();
    let (code, log) = refused(&[
        "-b",
        "127.0.0.1:0",
        "--engine",
        "onnxruntime",
        "--onnxruntime",
        not_a_library,
        &iris,
    ]);
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains(&format!(
            "cannot use the onnxruntime library {not_a_library}: failed to load"
        )),
        "{log}"
    );
    assert!(
        log.contains("serve needs onnxruntime 1.17 or later"),
        "{log}"
    );
}

#[test]
fn with_preload_the_library_is_still_proven_in_a_child_not_the_master() {
    let not_a_library = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let iris = iris();
    let (code, log) = refused(&[
        "-b",
        "127.0.0.1:0",
        "--preload",
        "--engine",
        "onnxruntime",
        "--onnxruntime",
        not_a_library,
        &iris,
    ]);
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("but for iris (onnxruntime): its engine starts threads, so a child proves it"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "cannot use the onnxruntime library {not_a_library}: failed to load"
        )),
        "{log}"
    );
}

/// Whether a process has mapped the onnxruntime library.
fn maps_onnxruntime(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_default()
        .contains("libonnxruntime")
}

/// iris on onnxruntime, 2 workers, with more arguments.
fn iris_on_onnxruntime(library: &str, more: &[&str]) -> common::Server {
    let iris = iris();
    let mut args = vec![
        "-w",
        "2",
        "-b",
        "127.0.0.1:0",
        "--engine",
        "onnxruntime",
        "--onnxruntime",
        library,
    ];
    args.extend_from_slice(more);
    args.push(&iris);
    Spawn::new(Bin::Serve, &args).start()
}

const SETOSA: &str =
    r#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}"#;

#[test]
fn workers_load_the_library_and_the_master_never_does() {
    let Some(library) = common::onnxruntime_library("onnxruntime.rs: workers load it") else {
        return;
    };
    let server = iris_on_onnxruntime(&library, &[]);
    assert!(
        server.log().contains("model iris (on onnxruntime)"),
        "{}",
        server.log()
    );
    let body = SETOSA.as_bytes();
    let mut served = Vec::new();
    // Each worker loads it on its own first request; ask until both have answered.
    assert!(common::wait_until(PATIENCE, || {
        let res = Conn::post_json(server.addr(), "/v2/models/iris/infer", body);
        assert_eq!(res.status, 200, "{}", res.text());
        let answer = res.json();
        assert_eq!(
            answer["outputs"][0]["data"],
            serde_json::json!([0]),
            "{answer}"
        );
        served = server
            .workers()
            .into_iter()
            .filter(|w| maps_onnxruntime(*w))
            .collect();
        served.len() == 2
    }));
    assert!(
        !maps_onnxruntime(server.master),
        "the master mapped libonnxruntime"
    );
}

/// Asks until every current worker has loaded the library (each does on its first request).
fn until_every_worker_loaded_it(server: &common::Server) {
    assert!(
        common::wait_until(PATIENCE, || {
            let res = Conn::post_json(server.addr(), "/v2/models/iris/infer", SETOSA.as_bytes());
            assert_eq!(res.status, 200, "{}", res.text());
            let workers = server.workers();
            workers.len() == 2 && workers.iter().all(|w| maps_onnxruntime(*w))
        }),
        "{}",
        server.log()
    );
}

#[test]
fn hup_under_load_drops_nothing_and_a_killed_worker_is_replaced_and_serves() {
    let Some(library) = common::onnxruntime_library("onnxruntime.rs: HUP and kill") else {
        return;
    };
    let _serial = serial();
    let server = iris_on_onnxruntime(&library, &[]);
    until_every_worker_loaded_it(&server);
    let before = server.wait_workers(2);

    let l = load::start_post(server.addr(), "/v2/models/iris/infer", SETOSA, 8);
    assert!(l.wait_for(200, PATIENCE), "{}", server.log());
    server.signal(Signal::SIGHUP);
    assert!(
        server.wait_log("Reload complete in", PATIENCE),
        "{}",
        server.log()
    );
    assert!(
        common::wait_until(PATIENCE, || before.iter().all(|p| !procs::alive(*p))),
        "the old workers must exit"
    );
    assert!(l.wait_for(200, PATIENCE), "{}", server.log());
    let stats = l.finish();
    assert_eq!(
        stats.failed, 0,
        "failed during the reload: {:?}",
        stats.errors
    );
    // The new generation was proven by a child that loaded the library, not by the master.
    assert!(!maps_onnxruntime(server.master));

    until_every_worker_loaded_it(&server);
    let victim = server.wait_workers(2)[0];
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(victim), Signal::SIGKILL).unwrap();
    assert!(
        common::wait_until(PATIENCE, || {
            let w = server.workers();
            w.len() == 2 && !w.contains(&victim)
        }),
        "the killed worker is replaced: {}",
        server.log()
    );
    // The replacement loads the library on its first request and answers.
    until_every_worker_loaded_it(&server);
    assert!(!maps_onnxruntime(server.master));
}

#[test]
fn with_preload_each_worker_builds_its_session_before_its_first_request() {
    let Some(library) = common::onnxruntime_library("onnxruntime.rs: preload") else {
        return;
    };
    let server = iris_on_onnxruntime(&library, &["--preload"]);
    let log = server.log();
    assert!(
        log.contains(
            "but for iris (onnxruntime): its engine starts threads, so a child proves it and \
             each worker builds it after the fork"
        ),
        "{log}"
    );
    assert!(log.contains("Proved the app in a child"), "{log}");
    // No request yet: both workers built it as they booted; the master did not.
    let workers = server.wait_workers(2);
    assert!(
        workers.iter().all(|w| maps_onnxruntime(*w)),
        "{workers:?}: {log}"
    );
    assert!(!maps_onnxruntime(server.master));
    // A reload with --preload proves the new generation in a child too, and it serves.
    let before = workers;
    server.signal(Signal::SIGHUP);
    assert!(
        server.wait_log("Reload complete in", PATIENCE),
        "{}",
        server.log()
    );
    assert!(common::wait_until(PATIENCE, || before
        .iter()
        .all(|p| !procs::alive(*p))));
    let res = Conn::post_json(server.addr(), "/v2/models/iris/infer", SETOSA.as_bytes());
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(!maps_onnxruntime(server.master));
}

#[test]
fn one_app_serves_a_model_on_each_engine_and_says_which() {
    let Some(library) = common::onnxruntime_library("onnxruntime.rs: one model on each engine")
    else {
        return;
    };
    let dir = common::tempdir();
    std::fs::copy(iris(), dir.path().join("iris.onnx")).unwrap();
    let manifest = dir.path().join("app.toml");
    std::fs::write(
        &manifest,
        "[[model]]\nname = \"on_tract\"\npath = \"iris.onnx\"\n\n\
         [[model]]\nname = \"on_ort\"\npath = \"iris.onnx\"\nengine = \"onnxruntime\"\n",
    )
    .unwrap();
    let server = Spawn::new(
        Bin::Serve,
        &[
            "-w",
            "1",
            "-b",
            "127.0.0.1:0",
            "--onnxruntime",
            &library,
            manifest.to_str().unwrap(),
        ],
    )
    .start();
    let log = server.log();
    assert!(log.contains("model on_tract (on tract)"), "{log}");
    assert!(log.contains("model on_ort (on onnxruntime)"), "{log}");
    let mut answers = Vec::new();
    for (model, engine) in [("on_tract", "tract"), ("on_ort", "onnxruntime")] {
        let meta = server.get(&format!("/v2/models/{model}")).json();
        assert_eq!(meta["parameters"]["engine"], engine, "{meta}");
        let res = Conn::post_json(
            server.addr(),
            &format!("/v2/models/{model}/infer"),
            SETOSA.as_bytes(),
        );
        assert_eq!(res.status, 200, "{}", res.text());
        let answer = res.json();
        answers.push((
            answer["outputs"][0].clone(),
            answer["outputs"][1]["data"].clone(),
        ));
    }
    // The same label; probabilities to float rounding (each engine sums in its own order).
    assert_eq!(answers[0].0, answers[1].0);
    let (a, b) = (
        answers[0].1.as_array().unwrap(),
        answers[1].1.as_array().unwrap(),
    );
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
        assert!(
            (x - y).abs() <= 1e-6 * x.abs().max(1e-3),
            "{a:?} against {b:?}"
        );
    }
    let status = Conn::open(server.addr())
        .and_then(|mut c| c.request("GET", "/status", &[("Accept", "application/json")], b""))
        .unwrap()
        .json();
    let models = &status["models"];
    assert_eq!(
        models,
        &serde_json::json!([
            {"name": "on_tract", "engine": "tract", "loaded_in_workers": 1},
            {"name": "on_ort", "engine": "onnxruntime", "loaded_in_workers": 1},
        ]),
        "{status}"
    );
    // Only the worker mapped onnxruntime.
    assert!(maps_onnxruntime(server.wait_workers(1)[0]));
    assert!(!maps_onnxruntime(server.master));
}

#[test]
fn a_model_tract_cannot_build_is_refused_naming_onnxruntime_and_the_key_that_picks_it() {
    let dir = common::tempdir();
    let det = dir.path().join("det.onnx");
    std::fs::write(&det, fixtures::determinant()).unwrap();
    let manifest = dir.path().join("app.toml");
    std::fs::write(
        &manifest,
        "[[model]]\nname = \"det\"\npath = \"det.onnx\"\n",
    )
    .unwrap();
    // No library anywhere: onnxruntime is suggested, with how to install it.
    let (code, log) = refused(&["-b", "127.0.0.1:0", manifest.to_str().unwrap()]);
    assert_eq!(code, 4, "{log}");
    assert!(log.contains("Det"), "{log}");
    assert!(
        log.contains(&format!(
            "; onnxruntime may build it: `pip install onnxruntime`, then set `engine = \
             \"onnxruntime\"` on model det in {}",
            manifest.display()
        )),
        "{log}"
    );
    let Some(library) = common::onnxruntime_library("onnxruntime.rs: what tract cannot build")
    else {
        return;
    };
    // With the library, the proof tries it: onnxruntime builds it.
    let file = det.to_str().unwrap();
    let (code, log) = refused(&["-b", "127.0.0.1:0", "--onnxruntime", &library, file]);
    assert_eq!(code, 4, "{log}");
    assert!(
        log.contains("; onnxruntime builds it: pass --engine onnxruntime"),
        "{log}"
    );
    // And as it says, it serves there.
    let server = Spawn::new(
        Bin::Serve,
        &[
            "-w",
            "1",
            "-b",
            "127.0.0.1:0",
            "--engine",
            "onnxruntime",
            "--onnxruntime",
            &library,
            file,
        ],
    )
    .start();
    let res = Conn::post_json(
        server.addr(),
        "/v2/models/det/infer",
        br#"{"inputs":[{"name":"x","shape":[1,2,2],"datatype":"FP32","data":[1,2,3,4]}]}"#,
    );
    assert_eq!(res.status, 200, "{}", res.text());
    let det = res.json()["outputs"][0]["data"][0].as_f64().unwrap();
    assert!((det + 2.0).abs() < 1e-5, "det [[1, 2], [3, 4]] = {det}");
}

/// A V2 binary request of `rows` iris rows, every output asked as raw bytes.
fn binary_rows(rows: usize) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let header = serde_json::json!({
        "inputs": [{"name": "input", "shape": [rows, 4], "datatype": "FP32",
                    "parameters": {"binary_data_size": rows * 16}}],
        "outputs": [{"name": "label", "parameters": {"binary_data": true}},
                    {"name": "probabilities", "parameters": {"binary_data": true}}],
    })
    .to_string();
    let mut body = header.clone().into_bytes();
    for _ in 0..rows {
        for x in [5.1f32, 3.5, 1.4, 0.2] {
            body.extend_from_slice(&x.to_le_bytes());
        }
    }
    let headers = vec![
        ("Content-Type", "application/octet-stream".to_string()),
        ("Inference-Header-Content-Length", header.len().to_string()),
    ];
    (headers, body)
}

/// onnxruntime's arena keeps the peak of the largest call: one request of a million rows
/// takes a worker from about 10 MiB of its own memory to about 40 and it stays there. With
/// the limit between the two, that worker answers it, then is replaced; nothing fails.
#[test]
fn a_worker_whose_memory_grew_past_the_limit_answers_then_is_replaced_under_load() {
    let Some(library) = common::onnxruntime_library("onnxruntime.rs: --max-worker-memory") else {
        return;
    };
    let _serial = serial();
    let server = iris_on_onnxruntime(
        &library,
        &["--max-worker-memory", "26M", "--log-level", "debug"],
    );
    until_every_worker_loaded_it(&server);
    let first = server.wait_workers(2);
    let l = load::start_post(server.addr(), "/v2/models/iris/infer", SETOSA, 8);
    assert!(l.wait_for(200, PATIENCE), "{}", server.log());
    // Each worker has read its floor (the first reading once it has served), under the limit.
    assert!(
        common::wait_until(PATIENCE, || server.count_log("memory floor:") >= 2),
        "{}",
        server.log()
    );
    assert_eq!(server.restarts("memory"), 0, "{}", server.log());

    let (headers, body) = binary_rows(1_000_000);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = Conn::open(server.addr())
        .and_then(|mut c| c.request("POST", "/v2/models/iris/infer", &headers, &body))
        .unwrap();
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(
        common::wait_until(PATIENCE, || server.restarts("memory") == 1),
        "{}",
        server.log()
    );
    assert!(l.wait_for(200, PATIENCE), "{}", server.log());
    let stats = l.finish();
    assert_eq!(stats.failed, 0, "{:?}", stats.errors);
    let now = server.wait_workers(2);
    assert_eq!(
        now.iter().filter(|w| first.contains(w)).count(),
        1,
        "one worker replaced, the other serving on: {first:?} then {now:?}"
    );
    let log = server.log();
    assert!(
        log.contains("passed --max-worker-memory (26.0 MiB)"),
        "{log}"
    );
    assert_eq!(server.restarts("memory"), 1);
}
