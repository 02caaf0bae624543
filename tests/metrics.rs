//! `/metrics` and `/status` from outside: exact figures of every worker from whichever worker a
//! scrape reaches, through a worker's crash, a reload and `--max-requests`.

mod common;
#[path = "../crates/runtime/src/fixtures.rs"]
mod fixtures;

use std::collections::BTreeMap;
use std::time::Duration;

use common::http::Conn;
use common::{Bin, PATIENCE, Spawn, examples, start, wait_until};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const IRIS_ROW: &str =
    r#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}"#;

/// One sample of a scrape.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text format (what serve writes: no timestamps, escaped label values).
fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("name and value");
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let mut labels = BTreeMap::new();
                let mut rest = rest.strip_suffix('}').expect("labels end with }");
                while !rest.is_empty() {
                    let (key, after) = rest.split_once("=\"").expect("key=\"");
                    let mut value = String::new();
                    let mut chars = after.char_indices();
                    let end = loop {
                        match chars.next().expect("a closing quote") {
                            (_, '\\') => match chars.next().unwrap().1 {
                                'n' => value.push('\n'),
                                c => value.push(c),
                            },
                            (i, '"') => break i,
                            (_, c) => value.push(c),
                        }
                    };
                    labels.insert(key.to_string(), value);
                    rest = after[end + 1..].trim_start_matches(',');
                }
                (name, labels)
            }
        };
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value: value.parse().expect("a number"),
        });
    }
    samples
}

/// The sum of the samples named `name` whose labels include `with`.
fn sum(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && with
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

fn scrape(server: &common::Server, accept: Option<&str>) -> common::http::Response {
    let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("Accept", *a)).collect();
    let res = Conn::open(server.addr())
        .and_then(|mut c| c.request("GET", "/metrics", &headers, b""))
        .expect("a scrape");
    assert_eq!(res.status, 200, "{}", res.text());
    res
}

/// One scrape in the text format, parsed.
fn scraped(server: &common::Server) -> Vec<Sample> {
    parse(&scrape(server, None).text())
}

fn status(server: &common::Server) -> serde_json::Value {
    let res = Conn::open(server.addr())
        .and_then(|mut c| c.request("GET", "/status", &[("Accept", "application/json")], b""))
        .expect("a status");
    assert_eq!(res.status, 200);
    res.json()
}

/// Sends one iris request on a new connection.
fn infer(server: &common::Server) {
    let res = Conn::open(server.addr())
        .and_then(|mut c| {
            c.request(
                "POST",
                "/v2/models/iris/infer",
                &[("Content-Type", "application/json")],
                IRIS_ROW.as_bytes(),
            )
        })
        .expect("an answer");
    assert_eq!(res.status, 200, "{}", res.text());
}

/// Requests per worker pid, as `/status` shows them.
fn served(server: &common::Server) -> BTreeMap<i64, u64> {
    status(server)["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["pid"].as_i64().unwrap(), w["requests"].as_u64().unwrap()))
        .collect()
}

#[test]
fn counts_are_exact_across_workers_and_survive_a_crash() {
    let _serial = common::serial();
    let server = start(Bin::Serve, &["-w", "3", "-b", "127.0.0.1:0"]);
    let workers = server.wait_workers(3);
    // Batches of new connections until every worker has answered some (the kernel picks).
    let mut k = 0;
    let all_served = wait_until(PATIENCE, || {
        for _ in 0..10 {
            infer(&server);
            k += 1;
        }
        let by_pid = served(&server);
        workers
            .iter()
            .all(|p| by_pid.get(&i64::from(*p)).is_some_and(|n| *n > 0))
    });
    assert!(all_served, "not every worker served: {:?}", served(&server));

    let (&busiest, _) = served(&server)
        .iter()
        .filter(|(pid, _)| workers.contains(&(**pid as i32)))
        .max_by_key(|(_, n)| **n)
        .unwrap();
    kill(Pid::from_raw(busiest as i32), Signal::SIGKILL).unwrap();
    assert!(
        server.wait_log("was sent SIGKILL", PATIENCE),
        "{}",
        server.log()
    );
    let replaced = wait_until(PATIENCE, || {
        let now = server.workers();
        now.len() == 3 && !now.contains(&(busiest as i32))
    });
    assert!(
        replaced,
        "the killed worker was not replaced: {}",
        server.log()
    );
    for _ in 0..k {
        infer(&server);
    }

    // Several scrapes on new connections: whichever worker answers, the figures are the same.
    for _ in 0..6 {
        let samples = scraped(&server);
        let iris = [("model", "iris")];
        let total = sum(&samples, "serve_requests_total", &iris);
        assert_eq!(
            total,
            2.0 * k as f64,
            "serve_requests_total for iris, K = {k}"
        );
        assert_eq!(
            sum(
                &samples,
                "serve_requests_total",
                &[("model", "iris"), ("protocol", "v2"), ("code", "200")]
            ),
            total
        );
        assert_eq!(
            sum(&samples, "serve_request_duration_seconds_count", &iris),
            total,
            "the duration histogram counts every request"
        );
        assert_eq!(
            sum(&samples, "serve_queue_duration_seconds_count", &iris),
            total,
            "every request waited in the queue once"
        );
        let calls = sum(&samples, "serve_model_calls_total", &iris);
        assert!(
            calls >= 1.0 && calls <= total,
            "calls {calls}, requests {total}"
        );
        assert_eq!(
            sum(&samples, "serve_inference_duration_seconds_count", &iris),
            calls
        );
        assert_eq!(sum(&samples, "serve_batch_rows_count", &iris), calls);
        assert_eq!(
            sum(&samples, "serve_batch_rows_sum", &iris),
            total,
            "one row each"
        );
        assert_eq!(
            sum(
                &samples,
                "serve_worker_restarts_total",
                &[("cause", "crash")]
            ),
            1.0
        );
        assert_eq!(sum(&samples, "serve_workers", &[("state", "serving")]), 3.0);
        assert_eq!(sum(&samples, "serve_requests_in_flight", &iris), 0.0);
        assert_eq!(sum(&samples, "serve_build_info", &[]), 1.0);
        // Each scrape counts once it is answered, so the next one sees it.
        assert!(sum(&samples, "serve_requests_total", &[("protocol", "admin")]) >= 1.0);
        // A histogram's buckets are cumulative and end with the count.
        let inf = sum(
            &samples,
            "serve_request_duration_seconds_bucket",
            &[("model", "iris"), ("le", "+Inf")],
        );
        assert_eq!(inf, total);
    }
}

#[test]
fn counters_survive_a_reload_and_name_why_workers_were_replaced() {
    let _serial = common::serial();
    let server = start(
        Bin::Serve,
        &["-w", "2", "-b", "127.0.0.1:0", "--max-requests", "40"],
    );
    server.wait_workers(2);
    for _ in 0..10 {
        infer(&server);
    }
    let before = status(&server);
    let generation = before["master"]["generation"].as_u64().unwrap();
    server.signal(Signal::SIGHUP);
    assert!(
        server.wait_log("Reload complete", PATIENCE),
        "{}",
        server.log()
    );
    let reloaded = wait_until(PATIENCE, || {
        let samples = scraped(&server);
        sum(
            &samples,
            "serve_worker_restarts_total",
            &[("cause", "reload")],
        ) == 2.0
    });
    assert!(reloaded, "{}", scrape(&server, None).text());
    let samples = scraped(&server);
    assert_eq!(
        sum(&samples, "serve_requests_total", &[("model", "iris")]),
        10.0
    );
    assert_eq!(
        sum(&samples, "serve_reloads_total", &[("result", "ok")]),
        1.0
    );
    let after = status(&server);
    assert_eq!(
        after["master"]["generation"].as_u64().unwrap(),
        generation + 1
    );
    assert_eq!(after["master"]["last_reload"]["result"], "ok");

    // Past --max-requests (40; no jitter by default) a worker retires.
    for _ in 0..100 {
        infer(&server);
    }
    let recycled = wait_until(PATIENCE, || {
        let samples = scraped(&server);
        sum(
            &samples,
            "serve_worker_restarts_total",
            &[("cause", "max_requests")],
        ) >= 1.0
    });
    assert!(recycled, "{}", scrape(&server, None).text());
    let samples = scraped(&server);
    assert_eq!(
        sum(&samples, "serve_requests_total", &[("model", "iris")]),
        110.0
    );
    assert_eq!(
        sum(
            &samples,
            "serve_worker_restarts_total",
            &[("cause", "crash")]
        ),
        0.0
    );
}

#[test]
fn status_lists_the_live_workers_and_metrics_speak_openmetrics_on_request() {
    let server = start(Bin::Serve, &["-w", "2", "-b", "127.0.0.1:0"]);
    let workers = server.wait_workers(2);
    infer(&server);

    let res = server.get("/status");
    assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
    let html = res.text();
    for pid in &workers {
        assert!(
            html.contains(&format!("<tr data-pid=\"{pid}\">")),
            "{pid}: {html}"
        );
    }
    assert!(html.contains(&server.master.to_string()));
    let json = status(&server);
    assert_eq!(json["master"]["pid"], server.master);
    let listed: Vec<i64> = json["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["pid"].as_i64().unwrap())
        .collect();
    let mut expected: Vec<i64> = workers.iter().map(|p| i64::from(*p)).collect();
    expected.sort();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort();
    assert_eq!(listed_sorted, expected);

    let res = scrape(&server, Some("application/openmetrics-text; version=1.0.0"));
    assert!(
        res.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = res.text();
    assert!(text.ends_with("# EOF\n"));
    assert!(text.contains("# TYPE serve_requests counter\n"));
    let res = scrape(&server, None);
    assert!(
        res.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    assert!(res.text().contains("# TYPE serve_requests_total counter\n"));

    let res = Conn::open(server.addr())
        .and_then(|mut c| c.request("POST", "/metrics", &[], b""))
        .unwrap();
    assert_eq!(res.status, 405);
    assert_eq!(res.header("allow"), Some("GET, HEAD"));
    std::thread::sleep(Duration::ZERO);
}

#[test]
fn metrics_bind_moves_metrics_and_status_to_their_own_listener() {
    let mut server = common::Spawn::new(
        Bin::Serve,
        &[
            "-w",
            "1",
            "-b",
            "127.0.0.1:0",
            "--metrics-bind",
            "127.0.0.1:0",
        ],
    )
    .spawn();
    server.wait_booted();
    let admin = server.metrics_addr();
    let get = |addr: &common::Addr, path: &str| {
        Conn::open(addr)
            .and_then(|mut c| c.request("GET", path, &[], b""))
            .unwrap()
    };
    infer(&server);
    assert_eq!(get(server.addr(), "/metrics").status, 404);
    assert_eq!(get(server.addr(), "/status").status, 404);
    let res = get(&admin, "/metrics");
    assert_eq!(res.status, 200);
    let samples = parse(&res.text());
    assert_eq!(
        sum(&samples, "serve_requests_total", &[("model", "iris")]),
        1.0
    );
    assert_eq!(get(&admin, "/status").status, 200);
    let res = get(&admin, "/v2/models/iris");
    assert_eq!(res.status, 404);
    assert!(
        res.json()["error"]
            .as_str()
            .unwrap()
            .contains("--metrics-bind")
    );
}

#[test]
fn the_access_log_names_the_model_its_call_time_and_rows() {
    let server = start(
        Bin::Serve,
        &[
            "-w",
            "1",
            "-b",
            "127.0.0.1:0",
            "--access-logfile",
            "-",
            "--access-log-format",
            "%(U)s %(N)s %(I)s %(R)s",
        ],
    );
    infer(&server);
    assert_eq!(server.get("/v2/health/live").status, 200);
    let done = wait_until(PATIENCE, || server.stdout().lines().count() >= 2);
    assert!(done, "{}", server.stdout());
    let out = server.stdout();
    let lines: Vec<&str> = out.lines().collect();
    let infer_line: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(&infer_line[..2], ["/v2/models/iris/infer", "iris"], "{out}");
    assert!(infer_line[2].parse::<u64>().is_ok(), "{out}");
    assert_eq!(infer_line[3], "1", "{out}");
    assert_eq!(lines[1], "/v2/health/live - - -");
}

#[test]
fn queued_requests_whose_clients_left_never_reach_the_model() {
    let _serial = common::serial();
    let dir = common::tempdir();
    let model = dir.path().join("slow.onnx");
    std::fs::write(&model, fixtures::slow(512, 64)).unwrap();
    let server = start(
        Bin::Serve,
        &[
            "-w",
            "1",
            "-b",
            "127.0.0.1:0",
            "--max-batch-size",
            "1",
            model.to_str().unwrap(),
        ],
    );
    let body = |rows: usize| {
        let data = vec!["0.5"; rows * 512].join(",");
        format!(
            r#"{{"inputs":[{{"name":"x","shape":[{rows},512],"datatype":"FP32","data":[{data}]}}]}}"#
        )
    };
    let gauge = |name: &str| sum(&scraped(&server), name, &[("model", "slow")]);
    // A: a long call (256 rows through 64 MatMuls of 512 × 512: some 8 GFLOP), answered last.
    let addr = server.addr().clone();
    let long = body(256);
    let a = std::thread::spawn(move || {
        Conn::open(&addr)
            .and_then(|mut c| c.request("POST", "/v2/models/slow/infer", &[], long.as_bytes()))
    });
    let running = wait_until(PATIENCE, || {
        gauge("serve_requests_in_flight") == 1.0 && gauge("serve_queue_depth") == 0.0
    });
    assert!(running, "A never ran: {}", server.log());
    // Four more queue behind it; their clients leave before the model is free.
    let one = body(1);
    let request = format!(
        "POST /v2/models/slow/infer HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{one}",
        one.len()
    );
    let mut waiting: Vec<Conn> = (0..4)
        .map(|_| {
            let mut c = Conn::open(server.addr()).unwrap();
            c.send_raw(request.as_bytes()).unwrap();
            c
        })
        .collect();
    assert!(
        wait_until(PATIENCE, || gauge("serve_queue_depth") == 4.0),
        "the four never queued"
    );
    assert_eq!(gauge("serve_requests_in_flight"), 5.0, "A runs, four wait");
    waiting.clear();
    let res = a.join().unwrap().expect("A's answer");
    assert_eq!(res.status, 200, "{}", res.text());
    let samples = wait_until(PATIENCE, || {
        let samples = scraped(&server);
        sum(
            &samples,
            "serve_requests_cancelled_total",
            &[("model", "slow"), ("reason", "client_gone")],
        ) == 4.0
    });
    assert!(samples, "{}", scrape(&server, None).text());
    let samples = scraped(&server);
    assert_eq!(
        sum(&samples, "serve_model_calls_total", &[("model", "slow")]),
        1.0,
        "only A ran"
    );
    assert_eq!(
        sum(&samples, "serve_requests_in_flight", &[("model", "slow")]),
        0.0
    );
    assert_eq!(
        sum(&samples, "serve_queue_depth", &[("model", "slow")]),
        0.0
    );
    // A counts as answered; the four as their clients' leaving (nginx's 499).
    let slow = [("model", "slow"), ("protocol", "v2")];
    assert_eq!(
        sum(
            &samples,
            "serve_requests_total",
            &[slow[0], slow[1], ("code", "200")]
        ),
        1.0
    );
    assert_eq!(
        sum(&samples, "serve_requests_total", &[("code", "499")]),
        4.0
    );
    // And the worker's own count of requests in flight came back to the scrape alone.
    let workers = status(&server)["workers"].clone();
    assert_eq!(workers[0]["in_flight"], 1, "{workers}");
}

/// Every refusal the server makes is answered with its status and (but for hyper's own 431)
/// a JSON error, and counted: those whose path names a model under that model and protocol,
/// even when the body was refused before the app saw it (too large, an unknown encoding,
/// compression that does not decompress).
#[test]
fn every_refusal_is_answered_and_counted_under_its_model_and_protocol() {
    let dir = common::tempdir();
    let manifest = dir.path().join("app.toml");
    std::fs::write(
        &manifest,
        format!(
            "[[model]]\nname = \"iris\"\npath = \"{}\"\n\n[[route]]\npath = \"/predict\"\n\
             model = \"iris\"\n[route.inputs]\ninput = [\"a\", \"b\", \"c\", \"d\"]\n",
            examples("iris/model.onnx")
        ),
    )
    .unwrap();
    let server = Spawn::new(
        Bin::Serve,
        &[
            "-w",
            "1",
            "-b",
            "127.0.0.1:0",
            "--max-body-size",
            "1K",
            "--limit-request-line",
            "200",
            manifest.to_str().unwrap(),
        ],
    )
    .start();
    let infer = "/v2/models/iris/infer";
    let v1 = "/v1/models/iris:predict";
    let big = vec![b' '; 2048];
    let one = |method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]| {
        Conn::open(server.addr())
            .and_then(|mut c| c.request(method, path, headers, body))
            .unwrap()
    };
    // (status, what the error says, model, protocol) of each refusal.
    let cases: Vec<(common::http::Response, u16, &str, &str, &str)> = vec![
        (
            one("POST", infer, &[], &big),
            413,
            "--max-body-size",
            "iris",
            "v2",
        ),
        (
            one("POST", v1, &[], &big),
            413,
            "--max-body-size",
            "iris",
            "v1",
        ),
        (
            one("POST", "/predict", &[], &big),
            413,
            "--max-body-size",
            "iris",
            "route",
        ),
        (
            one("POST", infer, &[("Content-Encoding", "br")], b"{}"),
            415,
            "br",
            "iris",
            "v2",
        ),
        (
            one("POST", infer, &[("Content-Encoding", "gzip")], b"not gzip"),
            400,
            "cannot decompress",
            "iris",
            "v2",
        ),
        (
            one("POST", infer, &[], b"{"),
            400,
            "malformed JSON",
            "iris",
            "v2",
        ),
        (one("GET", infer, &[], b""), 405, "", "iris", "v2"),
        (
            one("POST", "/v2/models/nope/infer", &[], b"{}"),
            404,
            "unknown model",
            "",
            "v2",
        ),
        (
            one("GET", &format!("/v2/{}", "x".repeat(300)), &[], b""),
            414,
            "--limit-request-line",
            "",
            "v2",
        ),
        (one("GET", "/nowhere", &[], b""), 404, "", "", "other"),
    ];
    for (res, status, says, _, _) in &cases {
        assert_eq!(res.status, *status, "{}", res.text());
        assert!(res.text().contains(says), "{status}: {}", res.text());
        if *status != 405 || !says.is_empty() {
            assert!(res.json()["error"].is_string(), "{status}: {}", res.text());
        }
    }
    // hyper's own refusal: more header fields than --limit-request-fields (100).
    let mut c = Conn::open(server.addr()).unwrap();
    let mut head = format!("GET {infer} HTTP/1.1\r\nHost: t\r\n");
    for i in 0..150 {
        head.push_str(&format!("X-Field-{i}: v\r\n"));
    }
    head.push_str("\r\n");
    c.send_raw(head.as_bytes()).unwrap();
    let res = c.read_response().unwrap();
    assert_eq!(res.status, 431);
    assert!(
        server.wait_log("Refused a request from 127.0.0.1 with 431", PATIENCE),
        "{}",
        server.log()
    );

    let samples = scraped(&server);
    let mut expected: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    for (_, status, _, model, protocol) in &cases {
        *expected
            .entry((model.to_string(), protocol.to_string(), status.to_string()))
            .or_default() += 1.0;
    }
    *expected
        .entry((String::new(), "other".into(), "431".into()))
        .or_default() += 1.0;
    for ((model, protocol, code), n) in expected {
        let got = sum(
            &samples,
            "serve_requests_total",
            &[("model", &model), ("protocol", &protocol), ("code", &code)],
        );
        assert_eq!(
            got, n,
            "serve_requests_total{{model=\"{model}\",protocol=\"{protocol}\",code=\"{code}\"}}"
        );
    }
}
