//! A Triton model repository through the real binary: `NAME/VERSION/model.onnx` with and
//! without `config.pbtxt`, each version policy, the configuration extension, and every
//! refusal of a configuration serve cannot honour (exit 4 naming the fix).

mod common;

use std::path::Path;

use common::http::Conn;
use common::{Bin, examples, start};

/// A repository: `iris` in versions 1, 2 and 3 with `config` (none: no config.pbtxt), and
/// `plain` in version 1 without one.
fn repository(config: Option<&str>) -> tempfile::TempDir {
    let dir = common::tempdir();
    let iris = examples("iris/model.onnx");
    for v in ["1", "2", "3"] {
        let at = dir.path().join("iris").join(v);
        std::fs::create_dir_all(&at).unwrap();
        std::fs::copy(&iris, at.join("model.onnx")).unwrap();
    }
    // A directory that is not a version is not one (Triton skips it too).
    std::fs::create_dir_all(dir.path().join("iris/notes")).unwrap();
    if let Some(config) = config {
        std::fs::write(dir.path().join("iris/config.pbtxt"), config).unwrap();
    }
    std::fs::create_dir_all(dir.path().join("plain/1")).unwrap();
    std::fs::copy(&iris, dir.path().join("plain/1/model.onnx")).unwrap();
    dir
}

fn post(server: &common::Server, path: &str, body: &str) -> common::http::Response {
    Conn::post_json(server.addr(), path, body.as_bytes())
}

/// serve on `app` with one worker.
fn serve(app: &Path) -> common::Server {
    serve_workers(app, 1)
}

fn serve_workers(app: &Path, workers: usize) -> common::Server {
    let workers = workers.to_string();
    start(
        Bin::Serve,
        &["-w", &workers, "-b", "127.0.0.1:0", app.to_str().unwrap()],
    )
}

const ROW: &str = r#"{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}"#;

/// The version a request to `path` (an infer path) was answered by, or its status.
fn answered_by(server: &common::Server, path: &str) -> Result<String, (u16, String)> {
    let res = post(server, path, ROW);
    if res.status != 200 {
        return Err((res.status, res.json()["error"].as_str().unwrap().to_owned()));
    }
    Ok(res.json()["model_version"].as_str().unwrap().to_owned())
}

fn versions(server: &common::Server, model: &str) -> Vec<String> {
    let meta = server.get(&format!("/v2/models/{model}")).json();
    meta["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn each_version_policy_serves_what_triton_would() {
    let cases: [(Option<&str>, &[&str]); 4] = [
        (None, &["3"]),
        (
            Some("version_policy: { latest { num_versions: 2 } }"),
            &["3", "2"],
        ),
        (Some("version_policy: { all { } }"), &["3", "2", "1"]),
        (
            Some("version_policy: { specific { versions: [1, 3] } }"),
            &["3", "1"],
        ),
    ];
    for (config, served) in cases {
        let repo = repository(config);
        let server = serve(repo.path());
        let at = format!("{config:?}");
        assert_eq!(versions(&server, "iris"), served, "{at}");
        assert_eq!(versions(&server, "plain"), ["1"], "{at}");
        // No version: the highest; each served version by its path; another is 404.
        assert_eq!(
            answered_by(&server, "/v2/models/iris/infer").unwrap(),
            "3",
            "{at}"
        );
        for v in ["1", "2", "3"] {
            let path = format!("/v2/models/iris/versions/{v}/infer");
            let ready = server.get(&format!("/v2/models/iris/versions/{v}/ready"));
            if served.contains(&v) {
                assert_eq!(answered_by(&server, &path).unwrap(), v, "{at}");
                assert_eq!(ready.status, 200, "{at}");
            } else {
                let (status, error) = answered_by(&server, &path).unwrap_err();
                assert_eq!(status, 404, "{at}");
                assert_eq!(
                    error,
                    format!(
                        "model iris has no version \"{v}\" (its versions: {})",
                        served.join(", ")
                    ),
                    "{at}"
                );
                assert_eq!(ready.status, 404, "{at}");
            }
        }
        // The repository index and V1's status list every version served.
        let index = post(&server, "/v2/repository/index", "").json();
        let listed: Vec<String> = index
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["name"] == "iris")
            .map(|m| m["version"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(listed, served, "{at}");
        let status = server.get("/v1/models/iris").json();
        assert_eq!(
            status["model_version_status"].as_array().unwrap().len(),
            served.len(),
            "{at}"
        );
        let v1 = post(
            &server,
            "/v1/models/iris:predict",
            r#"{"instances": [[5.1, 3.5, 1.4, 0.2]]}"#,
        );
        assert_eq!(v1.status, 200, "{at}: {}", v1.text());
        // The front page shows each model once, with every version served.
        let s = if served.len() > 1 { "s" } else { "" };
        let tag = format!("model · version{s} {} · on tract", served.join(", "));
        assert!(server.get("/").text().contains(&tag), "{at}: {tag}");
        let log = server.log();
        let named = match served {
            [one] => format!("iris (version {one})"),
            _ => format!("iris (versions {})", served.join(", ")),
        };
        assert!(
            log.contains(&format!("App: models {named}, plain (")),
            "{at}: {log}"
        );
    }
}

#[test]
fn classification_ranks_each_row_with_labels() {
    let repo = repository(Some(
        "max_batch_size: 8\ndynamic_batching { }\noutput [ { name: \"probabilities\", \
         data_type: TYPE_FP32, dims: [ 3 ], label_filename: \"species.txt\" } ]",
    ));
    std::fs::write(
        repo.path().join("iris/species.txt"),
        "setosa\nversicolor\nvirginica\n",
    )
    .unwrap();
    let server = serve(repo.path());
    let body = |binary: bool| {
        format!(
            r#"{{"inputs": [{{"name": "input", "shape": [2, 4], "datatype": "FP32",
                "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]}}],
              "outputs": [{{"name": "probabilities",
                "parameters": {{"classification": 2, "binary_data": {binary}}}}}]}}"#
        )
    };
    let res = post(&server, "/v2/models/iris/infer", &body(false));
    assert_eq!(res.status, 200, "{}", res.text());
    let out = &res.json()["outputs"][0];
    assert_eq!(out["datatype"], "BYTES");
    assert_eq!(out["shape"], serde_json::json!([2, 2]));
    let data: Vec<&str> = out["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(data[0].ends_with(":0:setosa"), "{data:?}");
    assert!(data[2].ends_with(":2:virginica"), "{data:?}");
    let first: f64 = data[0].split(':').next().unwrap().parse().unwrap();
    let second: f64 = data[1].split(':').next().unwrap().parse().unwrap();
    assert!(first >= second && first > 0.5, "{data:?}");
    // In binary: 4-byte lengths and the same strings.
    let res = post(&server, "/v2/models/iris/infer", &body(true));
    assert_eq!(res.status, 200);
    let json_len: usize = res
        .header("inference-header-content-length")
        .unwrap()
        .parse()
        .unwrap();
    let tail = &res.body[json_len..];
    let len = u32::from_le_bytes(tail[..4].try_into().unwrap()) as usize;
    assert_eq!(std::str::from_utf8(&tail[4..4 + len]).unwrap(), data[0]);
    // Without config.pbtxt, no labels: "value:index".
    let res = post(&server, "/v2/models/plain/infer", &body(false));
    let first = res.json()["outputs"][0]["data"][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(first.split(':').count(), 2, "{first}");
}

/// `(inference_count, execution_count, success, fail, queue, compute_infer)` counts and the
/// batch sizes' execution counts, of one entry of a statistics answer.
fn counts(entry: &serde_json::Value) -> ([u64; 6], Vec<(u64, u64)>) {
    let n = |v: &serde_json::Value| v.as_u64().unwrap();
    let s = &entry["inference_stats"];
    let batches = entry["batch_stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (n(&b["batch_size"]), n(&b["compute_infer"]["count"])))
        .collect();
    (
        [
            n(&entry["inference_count"]),
            n(&entry["execution_count"]),
            n(&s["success"]["count"]),
            n(&s["fail"]["count"]),
            n(&s["queue"]["count"]),
            n(&s["compute_infer"]["count"]),
        ],
        batches,
    )
}

#[test]
fn statistics_count_each_version_exactly_across_workers() {
    // max_batch_size 0: no request is merged with another, so each is one execution.
    let repo = repository(Some("version_policy: { all { } }"));
    let server = serve_workers(repo.path(), 2);
    let rows = |n: usize| {
        let data = vec!["5.1, 3.5, 1.4, 0.2"; n].join(", ");
        format!(
            r#"{{"inputs": [{{"name": "input", "shape": [{n}, 4], "datatype": "FP32", "data": [{data}]}}]}}"#
        )
    };
    for _ in 0..5 {
        assert_eq!(post(&server, "/v2/models/iris/infer", &rows(1)).status, 200);
    }
    for _ in 0..2 {
        assert_eq!(post(&server, "/v2/models/iris/infer", &rows(2)).status, 200);
    }
    let v1 = post(
        &server,
        "/v1/models/iris/versions/1:predict",
        r#"{"instances": [[5.1, 3.5, 1.4, 0.2]]}"#,
    );
    assert_eq!(v1.status, 200);
    let bad = post(
        &server,
        "/v2/models/iris/versions/2/infer",
        r#"{"inputs": []}"#,
    );
    assert_eq!(bad.status, 400);
    let check = |server: &common::Server| {
        let all = server.get("/v2/models/stats").json();
        let entries = all["model_stats"].as_array().unwrap();
        // Every version of every model, each apart.
        assert_eq!(entries.len(), 4, "{all}");
        let of = |version: &str| {
            entries
                .iter()
                .find(|e| e["name"] == "iris" && e["version"] == version)
                .unwrap()
        };
        assert_eq!(counts(of("3")), ([9, 7, 7, 0, 7, 7], vec![(1, 5), (2, 2)]));
        assert_eq!(counts(of("1")), ([1, 1, 1, 0, 1, 1], vec![(1, 1)]));
        assert_eq!(counts(of("2")), ([0, 0, 0, 1, 0, 0], vec![]));
        assert!(of("3")["last_inference"].as_u64().unwrap() > 1_700_000_000_000);
        assert_eq!(of("2")["inference_stats"]["cache_hit"]["count"], 0);
        // Per model (every version), and per version.
        let iris = server.get("/v2/models/iris/stats").json();
        assert_eq!(iris["model_stats"].as_array().unwrap().len(), 3);
        let one = server.get("/v2/models/iris/versions/3/stats").json();
        assert_eq!(one["model_stats"].as_array().unwrap().len(), 1);
        assert_eq!(counts(&one["model_stats"][0]), counts(of("3")));
    };
    check(&server);
    // A worker that dies takes none of its figures with it.
    let workers = server.wait_workers(2);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(workers[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(common::wait_until(common::PATIENCE, || {
        let now = server.workers();
        now.len() == 2 && !now.contains(&workers[0])
    }));
    check(&server);
}

#[test]
fn config_pbtxt_is_read_checked_and_answered_as_triton() {
    let repo = repository(Some(
        r#"
name: "iris"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "input", data_type: TYPE_FP32, dims: [ 4 ] } ]
output [ { name: "label", data_type: TYPE_INT64, dims: [ ] } ]
dynamic_batching { max_queue_delay_microseconds: 500 }
instance_group [ { count: 2, kind: KIND_CPU } ]
model_warmup [ { name: "w", batch_size: 1 } ]
"#,
    ));
    let server = serve(repo.path());
    let config = server.get("/v2/models/iris/config").json();
    assert_eq!(config["name"], "iris");
    assert_eq!(config["platform"], "onnx_onnxv1");
    assert_eq!(config["backend"], "tract");
    assert_eq!(config["max_batch_size"], 8);
    assert_eq!(
        config["dynamic_batching"]["max_queue_delay_microseconds"],
        500
    );
    assert_eq!(config["input"][0]["dims"], serde_json::json!([4]));
    assert_eq!(config["input"][0]["data_type"], "TYPE_FP32");
    // The output it did not list, filled in from the model, without the batch dimension.
    let probabilities = config["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "probabilities")
        .expect("probabilities filled in");
    assert_eq!(probabilities["dims"], serde_json::json!([3]));
    assert_eq!(server.get("/v2/models/iris/versions/3/config").status, 200);
    assert_eq!(server.get("/v2/models/iris/versions/1/config").status, 404);
    // Without a config.pbtxt: what serve knows.
    let plain = server.get("/v2/models/plain/config").json();
    assert_eq!(plain["name"], "plain");
    assert_eq!(plain["max_batch_size"], 64);
    assert_eq!(plain["input"][0]["dims"], serde_json::json!([4]));
    let log = server.log();
    assert_eq!(
        log.matches("serve does not honour instance_group, model_warmup")
            .count(),
        1,
        "{log}"
    );
}

/// `--check-config` on a repository whose iris has `config`: its exit code and stderr.
fn check(config: &str) -> (Option<i32>, String) {
    let repo = repository(Some(config));
    let out = std::process::Command::new(Bin::Serve.path())
        .args(["--check-config", repo.path().to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), err)
}

#[test]
fn configurations_serve_cannot_honour_exit_4_naming_the_fix() {
    let cases = [
        (
            r#"platform: "tensorrt_plan""#,
            r#"platform "tensorrt_plan" is not ONNX; serve runs ONNX models only"#,
        ),
        (r#"backend: "python""#, r#"backend "python" is not ONNX"#),
        (
            r#"name: "flowers""#,
            r#"name "flowers" is not the model's directory "iris""#,
        ),
        (
            "max_batch_size: 8\ninput [ { name: \"input\", data_type: TYPE_FP32, dims: [ 5 ] } ]",
            "input \"input\": dims [5] but the model's shape is [-1, 4] (without the batch \
             dimension, as max_batch_size > 0 reads dims: [4])",
        ),
        (
            "input [ { name: \"input\", data_type: TYPE_FP32, dims: [ 4 ] } ]",
            "input \"input\": dims [4] but the model's shape is [-1, 4]",
        ),
        (
            "max_batch_size: 8\ninput [ { name: \"input\", data_type: TYPE_FP64, dims: [ 4 ] } ]",
            "input \"input\": data_type TYPE_FP64 but the model's is TYPE_FP32 (FP32)",
        ),
        (
            "output [ { name: \"proba\", data_type: TYPE_FP32, dims: [ 3 ] } ]",
            "output \"proba\" is not an output of the model (its outputs: label, probabilities)",
        ),
        (
            "version_policy: { specific { versions: [4] } }",
            "specific version 4 has no directory 4/ holding the model (versions there: 3, 2, 1)",
        ),
        (
            "max_batch_size: 8\nbogus_field: 1",
            "config.pbtxt: line 2, column 1:",
        ),
    ];
    for (config, expected) in cases {
        let (code, err) = check(config);
        assert_eq!(code, Some(4), "{config}: {err}");
        assert!(
            err.contains(expected),
            "{config}:\n{err}\nexpected: {expected}"
        );
        assert!(err.contains("iris"), "{config}: {err}");
    }
}

#[test]
fn a_file_of_a_triton_layout_is_its_model_and_version() {
    let repo = repository(None);
    let file = repo.path().join("iris/2/model.onnx");
    let server = serve(&file);
    assert_eq!(versions(&server, "iris"), ["2"]);
    assert_eq!(answered_by(&server, "/v2/models/iris/infer").unwrap(), "2");
    // A Triton model directory alone is that model.
    drop(server);
    let server = serve(&repo.path().join("iris"));
    assert_eq!(versions(&server, "iris"), ["3"]);
}

#[test]
fn a_new_version_directory_is_served_after_hup_with_statistics_of_its_own() {
    let repo = repository(None);
    let server = serve(repo.path());
    assert_eq!(versions(&server, "iris"), ["3"]);
    let at = repo.path().join("iris/4");
    std::fs::create_dir_all(&at).unwrap();
    std::fs::copy(examples("iris/model.onnx"), at.join("model.onnx")).unwrap();
    let before = server.wait_workers(1);
    server.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(
        server.wait_log("Reload complete", common::PATIENCE),
        "{}",
        server.log()
    );
    // Every worker of the old generation gone: whichever answers is of the new one.
    assert!(common::wait_until(common::PATIENCE, || {
        let now = server.workers();
        now.len() == 1 && now != before
    }));
    assert_eq!(versions(&server, "iris"), ["4"]);
    assert_eq!(answered_by(&server, "/v2/models/iris/infer").unwrap(), "4");
    let stats = server.get("/v2/models/iris/versions/4/stats").json();
    assert_eq!(
        counts(&stats["model_stats"][0]).0,
        [1, 1, 1, 0, 1, 1],
        "{stats}"
    );
    // Version 3 is no longer served.
    assert_eq!(server.get("/v2/models/iris/versions/3/ready").status, 404);
}

/// `serve --check-config ARGS`: its exit code and standard error.
fn check_args(args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(Bin::Serve.path())
        .arg("--check-config")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn model_name_renames_the_one_model_of_a_start_and_refuses_two() {
    // A file whatever it is called, and a Triton model directory (its latest version, the
    // default policy).
    let repo = repository(None);
    let file = examples("iris/model.onnx");
    let named = |app: &str| {
        start(
            Bin::Serve,
            &[
                "-w",
                "1",
                "-b",
                "127.0.0.1:0",
                "--model-name",
                "flowers",
                app,
            ],
        )
    };
    let server = named(&file);
    assert_eq!(
        answered_by(&server, "/v2/models/flowers/infer"),
        Ok("1".into())
    );
    assert_eq!(server.get("/v2/models/iris").status, 404);
    drop(server);
    let server = named(repo.path().join("iris").to_str().unwrap());
    assert_eq!(
        answered_by(&server, "/v2/models/flowers/infer"),
        Ok("3".into())
    );
    drop(server);

    // Two models: refused at start, naming them.
    let (code, err) = check_args(&["--model-name", "flowers", repo.path().to_str().unwrap()]);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("2 models (iris, plain)") && err.contains("drop --model-name"),
        "{err}"
    );
    // A name that cannot be one.
    let (code, err) = check_args(&["--model-name", "a/b", &file]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("--model-name") && err.contains("URL"), "{err}");
}
