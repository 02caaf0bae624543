//! The HTTP layer: gunicorn's limits answered with JSON errors that name the flag, bodies
//! bounded in size and time and decompressed, slow clients cut off, h2c, request ids, logs.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::http::Conn;
use common::{Addr, Bin, PATIENCE, Spawn, start};
use nix::sys::signal::Signal;

fn error_of(res: &common::http::Response) -> String {
    assert_eq!(res.header("content-type"), Some("application/json"));
    res.json()["error"]
        .as_str()
        .expect("an error field")
        .to_string()
}

#[test]
fn a_long_request_line_is_414_and_long_or_many_headers_431() {
    let server = start(
        Bin::TestApp,
        &[
            "-w",
            "1",
            "-b",
            "127.0.0.1:0",
            "--limit-request-line",
            "100",
            "--limit-request-fields",
            "10",
            "--limit-request-field-size",
            "200",
        ],
    );
    let mut c = Conn::open(server.addr()).unwrap();
    let res = c
        .request("GET", &format!("/pid?{}", "a".repeat(100)), &[], b"")
        .unwrap();
    assert_eq!(res.status, 414);
    assert!(error_of(&res).contains("--limit-request-line"));

    let big = "x".repeat(300);
    let res = Conn::open(server.addr())
        .unwrap()
        .request("GET", "/pid", &[("X-Big", &big)], b"")
        .unwrap();
    assert_eq!(res.status, 431);
    assert!(error_of(&res).contains("--limit-request-field-size"));

    let many: Vec<(String, String)> = (0..12).map(|i| (format!("X-H{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let res = Conn::open(server.addr())
        .unwrap()
        .request("GET", "/pid", &many, b"")
        .unwrap();
    assert_eq!(res.status, 431);
    // The worker is unharmed.
    assert_eq!(server.get("/pid").status, 200);
}

#[test]
fn more_headers_than_the_default_limit_is_431() {
    let server = start(Bin::TestApp, &["-w", "1", "-b", "127.0.0.1:0"]);
    let many: Vec<(String, String)> = (0..150).map(|i| (format!("X-H{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let res = Conn::open(server.addr())
        .unwrap()
        .request("GET", "/pid", &many, b"")
        .unwrap();
    assert_eq!(res.status, 431);
    assert_eq!(server.get("/pid").status, 200);
}

#[test]
fn bodies_are_bounded_and_decompressed() {
    let server = start(
        Bin::TestApp,
        &["-w", "1", "-b", "127.0.0.1:0", "--max-body-size", "1K"],
    );
    let echo = |headers: &[(&str, &str)], body: &[u8]| {
        Conn::open(server.addr())
            .unwrap()
            .request("POST", "/echo", headers, body)
            .unwrap()
    };
    let res = echo(&[], b"hello");
    assert_eq!((res.status, res.body.as_slice()), (200, &b"hello"[..]));

    let res = echo(&[], &[b'x'; 2000]);
    assert_eq!(res.status, 413);
    assert!(error_of(&res).contains("--max-body-size"));

    let gz = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let res = echo(&[("Content-Encoding", "gzip")], &gz(b"{\"inputs\":[]}"));
    assert_eq!(res.status, 200);
    assert_eq!(res.body, b"{\"inputs\":[]}");

    // Small on the wire, too large once decompressed.
    let bomb = gz(&[b'0'; 4096]);
    assert!(bomb.len() < 1024);
    let res = echo(&[("Content-Encoding", "gzip")], &bomb);
    assert_eq!(res.status, 413);
    assert!(error_of(&res).contains("after decompression"));

    let res = echo(&[("Content-Encoding", "gzip")], b"not gzip");
    assert_eq!(res.status, 400);
    let res = echo(&[("Content-Encoding", "br")], b"x");
    assert_eq!(res.status, 415);

    // A chunked body without a length is bounded too.
    let mut c = Conn::open(server.addr()).unwrap();
    let chunk = "x".repeat(800);
    let raw = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len(),
        chunk.len()
    );
    c.send_raw(raw.as_bytes()).unwrap();
    assert_eq!(c.read_response().unwrap().status, 413);
}

#[test]
fn answers_are_compressed_when_the_client_takes_it() {
    let server = start(Bin::TestApp, &["-w", "1", "-b", "127.0.0.1:0"]);
    let echo = |headers: &[(&str, &str)], body: &[u8]| {
        Conn::open(server.addr())
            .unwrap()
            .request("POST", "/echo", headers, body)
            .unwrap()
    };
    let big: Vec<u8> = (0..4000u32)
        .flat_map(|i| format!("{i},").into_bytes())
        .collect();
    // Not asked: as it is, but caches are told it varies.
    let res = echo(&[], &big);
    assert_eq!((res.status, &res.body), (200, &big));
    assert_eq!(res.header("content-encoding"), None);
    assert_eq!(res.header("vary"), Some("accept-encoding"));
    // gzip, preferred at equal weight.
    let res = echo(&[("Accept-Encoding", "deflate, gzip, br")], &big);
    assert_eq!(res.header("content-encoding"), Some("gzip"));
    assert!(res.body.len() < big.len() / 2, "{} bytes", res.body.len());
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&res.body[..]), &mut plain)
        .unwrap();
    assert_eq!(plain, big);
    // deflate (zlib, as HTTP's deflate is), when weighted higher.
    let res = echo(&[("Accept-Encoding", "gzip;q=0.5, deflate")], &big);
    assert_eq!(res.header("content-encoding"), Some("deflate"));
    let mut plain = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::ZlibDecoder::new(&res.body[..]),
        &mut plain,
    )
    .unwrap();
    assert_eq!(plain, big);
    // Refused by weight, or too small (--compress-min-size, 1K): as it is.
    let res = echo(&[("Accept-Encoding", "gzip;q=0")], &big);
    assert_eq!((res.header("content-encoding"), &res.body), (None, &big));
    let res = echo(&[("Accept-Encoding", "gzip")], b"small");
    assert_eq!(res.header("content-encoding"), None);
    assert_eq!(res.header("vary"), None);

    let off = start(
        Bin::TestApp,
        &["-w", "1", "-b", "127.0.0.1:0", "--compress-min-size", "0"],
    );
    let res = Conn::open(off.addr())
        .unwrap()
        .request("POST", "/echo", &[("Accept-Encoding", "gzip")], &big)
        .unwrap();
    assert_eq!((res.header("content-encoding"), &res.body), (None, &big));
}

#[test]
fn an_http_1_1_request_without_one_host_is_400() {
    let server = start(Bin::TestApp, &["-w", "1", "-b", "127.0.0.1:0"]);
    for (head, hosts) in [
        ("GET /pid HTTP/1.1\r\n\r\n", 0),
        ("GET /pid HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 2),
    ] {
        let mut c = Conn::open(server.addr()).unwrap();
        c.send_raw(head.as_bytes()).unwrap();
        let res = c.read_response().unwrap();
        assert_eq!(res.status, 400, "{head:?}");
        let e = error_of(&res);
        assert!(e.contains("exactly one Host header field"), "{e}");
        assert!(e.contains(&format!("this one has {hosts}")), "{e}");
    }
    // HTTP/1.0 needs no Host, and the worker that refused the others still serves.
    let mut c = Conn::open(server.addr()).unwrap();
    c.send_raw(b"GET /pid HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(c.read_response().unwrap().status, 200);
}

#[test]
fn a_body_that_never_arrives_is_408() {
    let server = start(
        Bin::TestApp,
        &["-w", "1", "-b", "127.0.0.1:0", "--body-timeout", "0.5"],
    );
    let mut c = Conn::open(server.addr()).unwrap();
    c.send_raw(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
        .unwrap();
    let res = c.read_response().unwrap();
    assert_eq!(res.status, 408);
    assert!(error_of(&res).contains("did not arrive"));
}

#[test]
fn a_slow_head_is_cut_off_and_idle_keep_alive_closes() {
    let server = start(
        Bin::TestApp,
        &[
            "-w",
            "1",
            "-b",
            "127.0.0.1:0",
            "--header-timeout",
            "0.5",
            "--keep-alive",
            "0.5",
        ],
    );
    // slowloris: half a head, then nothing.
    let mut c = Conn::open(server.addr()).unwrap();
    c.send_raw(b"GET /pid HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .unwrap();
    let t = Instant::now();
    assert!(c.closed_by_server());
    assert!(t.elapsed() < Duration::from_secs(10));

    // Keep-alive: a served connection left idle is closed after --keep-alive.
    let mut c = Conn::open(server.addr()).unwrap();
    assert_eq!(c.request("GET", "/pid", &[], b"").unwrap().status, 200);
    let t = Instant::now();
    assert!(c.closed_by_server());
    let idle = t.elapsed();
    assert!(
        idle >= Duration::from_millis(400) && idle < Duration::from_secs(10),
        "{idle:?}"
    );
    // A connection in use is not.
    let mut c = Conn::open(server.addr()).unwrap();
    for _ in 0..4 {
        assert_eq!(
            c.request("GET", "/sleep?ms=300", &[], b"").unwrap().status,
            200
        );
    }
}

#[test]
fn keep_alive_0_closes_after_each_response() {
    let server = start(
        Bin::TestApp,
        &["-w", "1", "-b", "127.0.0.1:0", "--keep-alive", "0"],
    );
    let mut c = Conn::open(server.addr()).unwrap();
    let res = c.request("GET", "/pid", &[], b"").unwrap();
    assert_eq!(res.status, 200);
    assert!(c.closed || c.closed_by_server());
}

#[test]
fn request_ids_are_echoed_or_made() {
    let server = start(Bin::TestApp, &["-w", "1", "-b", "127.0.0.1:0"]);
    let res = Conn::open(server.addr())
        .unwrap()
        .request("GET", "/client", &[("X-Request-Id", "abc-123")], b"")
        .unwrap();
    assert_eq!(res.header("x-request-id"), Some("abc-123"));
    assert_eq!(res.json()["request_id"], "abc-123");
    let a = server.get("/client");
    let b = server.get("/client");
    let (a, b) = (
        a.header("x-request-id").unwrap(),
        b.header("x-request-id").unwrap(),
    );
    assert!(!a.is_empty() && a != b);
}

#[test]
fn forwarded_for_is_believed_only_from_trusted_peers() {
    let server = start(Bin::TestApp, &["-w", "1", "-b", "127.0.0.1:0"]);
    let get = |s: &common::Server| {
        Conn::open(s.addr())
            .unwrap()
            .request(
                "GET",
                "/client",
                &[("X-Forwarded-For", "203.0.113.7, 10.0.0.1")],
                b"",
            )
            .unwrap()
            .json()["client"]
            .clone()
    };
    assert_eq!(get(&server), "203.0.113.7");
    let strict = start(
        Bin::TestApp,
        &[
            "-w",
            "1",
            "-b",
            "127.0.0.1:0",
            "--forwarded-allow-ips",
            "10.9.9.9",
        ],
    );
    assert_eq!(get(&strict), "127.0.0.1");
}

#[test]
fn h2c_with_prior_knowledge_is_served() {
    let server = start(Bin::TestApp, &["-w", "1", "-b", "127.0.0.1:0"]);
    let Addr::Tcp(addr) = server.addr().clone() else {
        unreachable!()
    };
    let rt = common::h2::runtime();
    rt.block_on(async move {
        use http_body_util::{BodyExt, Empty};
        let (mut send, _conn) = common::h2::connect(&addr).await;
        for _ in 0..3 {
            let req = hyper::Request::get(format!("http://{addr}/pid"))
                .body(Empty::<bytes::Bytes>::new())
                .unwrap();
            let res = send.send_request(req).await.unwrap();
            assert_eq!(res.status(), 200);
            assert_eq!(res.version(), hyper::Version::HTTP_2);
            let body = res.into_body().collect().await.unwrap().to_bytes();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert!(v["pid"].is_number());
        }
    });
}

#[test]
fn the_access_log_follows_the_format_and_json_on_request() {
    let server = start(
        Bin::TestApp,
        &["-w", "1", "-b", "127.0.0.1:0", "--access-logfile", "-"],
    );
    Conn::open(server.addr())
        .unwrap()
        .request("GET", "/pid?x=1", &[("User-Agent", "tester/1")], b"")
        .unwrap();
    assert!(common::wait_until(PATIENCE, || server
        .stdout()
        .contains("tester/1")));
    let line = server
        .stdout()
        .lines()
        .find(|l| l.contains("tester/1"))
        .unwrap()
        .to_string();
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(line.contains("] \"GET /pid?x=1 HTTP/1.1\" 200 "), "{line}");
    assert!(line.ends_with("\"-\" \"tester/1\""), "{line}");

    let json = start(
        Bin::TestApp,
        &[
            "-w",
            "1",
            "-b",
            "127.0.0.1:0",
            "--access-logfile",
            "-",
            "--log-format",
            "json",
            "--access-log-format",
            "%(s)s",
        ],
    );
    json.get("/pid");
    assert!(common::wait_until(PATIENCE, || json
        .stdout()
        .contains("\"status\":200")));
    let access: serde_json::Value =
        serde_json::from_str(json.stdout().lines().next().unwrap()).unwrap();
    assert_eq!(access["path"], "/pid");
    assert!(access["duration_us"].is_number() && access["request_id"].is_string());
    for line in json.log().lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(v["level"].is_string() && v["pid"].is_number() && v["message"].is_string());
    }
}

#[test]
fn usr1_reopens_the_log_files() {
    let dir = common::tempdir();
    let errors = dir.path().join("error.log");
    let access = dir.path().join("access.log");
    let server = Spawn::new(
        Bin::TestApp,
        &[
            "-w",
            "1",
            "-b",
            "127.0.0.1:0",
            "--error-logfile",
            errors.to_str().unwrap(),
            "--access-logfile",
            access.to_str().unwrap(),
        ],
    )
    .spawn();
    assert!(common::wait_until(PATIENCE, || {
        std::fs::read_to_string(&errors).is_ok_and(|s| s.contains("workers booted"))
    }));
    let log = std::fs::read_to_string(&errors).unwrap();
    let port = log
        .split("Listening at: http://")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .unwrap()
        .to_string();
    let addr = Addr::Tcp(port);
    let get = || {
        Conn::open(&addr)
            .unwrap()
            .request("GET", "/pid", &[], b"")
            .unwrap()
    };
    get();
    // logrotate: move the files away, then USR1.
    std::fs::rename(&errors, dir.path().join("error.log.1")).unwrap();
    std::fs::rename(&access, dir.path().join("access.log.1")).unwrap();
    server.signal(Signal::SIGUSR1);
    assert!(
        common::wait_until(PATIENCE, || errors.exists()),
        "the error log is reopened"
    );
    // The worker reopens its access log too: a request lands in the new file.
    assert!(common::wait_until(PATIENCE, || {
        get();
        std::fs::read_to_string(&access).is_ok_and(|s| s.contains("GET /pid"))
    }));
    // Once reopened, the moved file no longer grows (requests that raced the signal may
    // have landed there before).
    let moved = || std::fs::read_to_string(dir.path().join("access.log.1")).unwrap();
    let before = moved().lines().count();
    assert!(before >= 1);
    for _ in 0..3 {
        get();
    }
    assert!(common::wait_until(PATIENCE, || {
        std::fs::read_to_string(&access).is_ok_and(|s| s.lines().count() >= 4)
    }));
    assert_eq!(moved().lines().count(), before);
}
