//! TLS through the real binary, with certificates made at test time (a CA, the server's and
//! a client's): HTTP/1.1 and HTTP/2 (ALPN) with a client that trusts the CA, client
//! certificates required, cleartext, garbage and a stalled handshake on the TLS port (each
//! worker alive, its slot freed), certificates read again on HUP and when their file
//! changes, a broken key on HUP refused while the old certificate serves, `--metrics-bind`
//! in cleartext with the certificate's expiry, and the start's refusals.

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use common::tls::{Alpn, config, request, trusting};
use common::{Addr, Bin, PATIENCE, Server, Spawn, start};
use nix::sys::signal::Signal;
use serve_tls::testing::{self, Pki};

const ROW: &str =
    r#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}"#;

fn tcp(server: &Server) -> String {
    match server.addr() {
        Addr::Tcp(a) => a.clone(),
        Addr::Unix(_) => unreachable!("these tests bind TCP"),
    }
}

fn serve_tls(pki: &Pki, extra: &[&str]) -> Server {
    let (cert, key) = (
        pki.cert.display().to_string(),
        pki.key.display().to_string(),
    );
    let mut args = vec![
        "-w",
        "2",
        "-b",
        "127.0.0.1:0",
        "--certfile",
        &cert,
        "--keyfile",
        &key,
    ];
    args.extend_from_slice(extra);
    start(Bin::Serve, &args)
}

#[test]
fn http1_and_h2_over_tls_with_a_client_that_trusts_the_ca() {
    let dir = common::tempdir();
    let pki = testing::make(dir.path(), "serve.test", 30);
    let server = serve_tls(&pki, &["--metrics-bind", "127.0.0.1:0"]);
    let log = server.log();
    assert!(log.contains("Listening at: https://127.0.0.1:"), "{log}");
    assert!(
        log.contains("TLS: certificate CN=serve.test (")
            && log.contains(" days); client certificates not asked"),
        "{log}"
    );
    let addr = tcp(&server);
    common::h2::runtime().block_on(async {
        for (alpn, version) in [
            (Alpn::Http1, hyper::http::Version::HTTP_11),
            (Alpn::H2, hyper::http::Version::HTTP_2),
        ] {
            let a = request(
                &addr,
                config(&pki, alpn, false),
                "POST",
                "/v2/models/iris/infer",
                ROW,
            )
            .await
            .unwrap();
            assert_eq!((a.status, a.version), (200, version), "{a:?}");
            assert!(a.body.contains("\"probabilities\""), "{}", a.body);
            assert_eq!(a.server_cn, "serve.test");
        }
    });
    // --metrics-bind stays cleartext, and says when the certificate expires.
    let metrics = Addr::Tcp(server.logged_addr("Metrics and status at"));
    let text = common::http::Conn::open(&metrics)
        .unwrap()
        .request("GET", "/metrics", &[], b"")
        .unwrap()
        .text();
    let line = text
        .lines()
        .find(|l| l.starts_with("serve_tls_certificate_expiry_timestamp_seconds{"))
        .unwrap_or_else(|| panic!("{text}"));
    let expiry: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((expiry - now - 30 * 86400).abs() < 120, "{line}");
    assert!(line.contains(&pki.cert.display().to_string()), "{line}");
}

#[test]
fn cert_reqs_2_refuses_a_client_without_a_certificate_and_serves_one_with() {
    let dir = common::tempdir();
    let pki = testing::make(dir.path(), "serve.test", 30);
    let ca = pki.ca.display().to_string();
    let server = serve_tls(&pki, &["--ca-certs", &ca, "--cert-reqs", "2"]);
    let addr = tcp(&server);
    common::h2::runtime().block_on(async {
        // TLS 1.3: the client learns of the refusal when it reads the server's alert.
        let without = request(
            &addr,
            config(&pki, Alpn::Http1, false),
            "GET",
            "/v2/health/ready",
            "",
        )
        .await;
        assert!(without.is_err(), "{without:?}");
        let with = request(
            &addr,
            config(&pki, Alpn::H2, true),
            "GET",
            "/v2/health/ready",
            "",
        )
        .await
        .unwrap();
        assert_eq!(with.status, 200, "{with:?}");
    });
    assert!(server.log().contains("client certificates required"));
}

/// Sends `bytes` on a new connection to `addr` and reads until the server closes it;
/// returns how long that took.
fn closed_after(addr: &str, bytes: &[u8]) -> Duration {
    let started = Instant::now();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(bytes).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return started.elapsed(),
            Ok(_) => {}
        }
    }
}

#[test]
fn cleartext_garbage_and_stalled_handshakes_cost_no_worker_nor_slot() {
    let dir = common::tempdir();
    let pki = testing::make(dir.path(), "serve.test", 30);
    let server = serve_tls(
        &pki,
        &["--header-timeout", "1", "--worker-connections", "4"],
    );
    let addr = tcp(&server);
    let workers = server.wait_workers(2);
    // Cleartext HTTP and garbage: closed at once.
    let plain = closed_after(&addr, b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n");
    let garbage = closed_after(&addr, &[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4]);
    assert!(
        plain < Duration::from_secs(1) && garbage < Duration::from_secs(1),
        "{plain:?} {garbage:?}"
    );
    // Stalled handshakes, more than both workers' slots: each closed, after --header-timeout
    // (1 s here) or sooner when a worker is full and a new connection waits (the oldest
    // without a request gives way), and the slots come back.
    let stalled: Vec<_> = (0..10)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || closed_after(&addr, &[0x16, 0x03, 0x01]))
        })
        .collect();
    for s in stalled {
        let took = s.join().unwrap();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(10),
            "{took:?}"
        );
    }
    assert_eq!(server.workers(), workers, "no worker died");
    common::h2::runtime().block_on(async {
        let metrics = request(
            &addr,
            config(&pki, Alpn::Http1, false),
            "GET",
            "/metrics",
            "",
        )
        .await
        .unwrap()
        .body;
        let dropped = |reason: &str| -> u64 {
            let prefix = format!("serve_connections_dropped_total{{reason=\"{reason}\"}} ");
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .unwrap_or_else(|| panic!("{metrics}"))
                .parse()
                .unwrap()
        };
        assert_eq!(dropped("tls_handshake"), 2, "cleartext and garbage");
        assert_eq!(
            dropped("slow") + dropped("gave_way"),
            10,
            "the stalled ones"
        );
        for _ in 0..8 {
            let a = request(
                &addr,
                config(&pki, Alpn::Http1, false),
                "GET",
                "/v2/health/ready",
                "",
            )
            .await
            .unwrap();
            assert_eq!(a.status, 200);
        }
    });
}

#[test]
fn hup_and_a_changed_file_serve_the_new_certificate_and_a_broken_key_is_refused() {
    let _serial = common::serial();
    let dir = common::tempdir();
    let pki = testing::make(dir.path(), "first.test", 30);
    let server = serve_tls(&pki, &[]);
    let addr = tcp(&server);
    let rt = common::h2::runtime();
    let cn = |pki: &Pki| {
        rt.block_on(request(
            &addr,
            config(pki, Alpn::H2, false),
            "GET",
            "/v2/health/ready",
            "",
        ))
        .map(|a| a.server_cn)
    };
    assert_eq!(cn(&pki).unwrap(), "first.test");
    let next = common::tempdir();
    let second = testing::make(next.path(), "second.test", 30);
    let third_dir = common::tempdir();
    let third = testing::make(third_dir.path(), "third.test", 30);

    // A client that trusts every CA makes requests on new connections all along: none fails.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (addr, stop) = (addr.clone(), stop.clone());
        let client = trusting(&[&pki, &second, &third], Alpn::Http1, false);
        std::thread::spawn(move || {
            let rt = common::h2::runtime();
            let (mut ok, mut failed) = (0u64, Vec::new());
            while !stop.load(Relaxed) {
                let asked = request(&addr, client.clone(), "POST", "/v2/models/iris/infer", ROW);
                match rt.block_on(asked) {
                    Ok(a) if a.status == 200 => ok += 1,
                    other => failed.push(format!("{other:?}")),
                }
            }
            (ok, failed)
        })
    };

    // A new certificate and key (from a new CA) in place, then HUP.
    std::fs::copy(&second.cert, &pki.cert).unwrap();
    std::fs::copy(&second.key, &pki.key).unwrap();
    server.signal(Signal::SIGHUP);
    assert!(common::wait_until(PATIENCE, || cn(&second).is_ok_and(|c| c == "second.test")));

    // A broken key: the reload is refused, the certificate served stays.
    std::fs::write(&pki.key, "not a key\n").unwrap();
    server.signal(Signal::SIGHUP);
    assert!(
        server.wait_log("Reload failed: --keyfile", PATIENCE),
        "{}",
        server.log()
    );
    assert_eq!(cn(&second).unwrap(), "second.test");

    // Without HUP: a changed file is noticed (a rotated Kubernetes Secret sends none).
    std::fs::copy(&third.key, &pki.key).unwrap();
    std::fs::copy(&third.cert, &pki.cert).unwrap();
    assert!(common::wait_until(PATIENCE, || cn(&third).is_ok_and(|c| c == "third.test")));
    assert!(
        server.log().contains("changed: reloading, as on HUP"),
        "{}",
        server.log()
    );
    stop.store(true, Relaxed);
    let (ok, failed) = load.join().unwrap();
    assert!(failed.is_empty(), "{ok} answered, failed: {failed:?}");
    assert!(ok > 0);
}

#[test]
fn certificates_that_cannot_serve_stop_the_start_with_exit_1_naming_the_file() {
    let dir = common::tempdir();
    let expired = testing::make(dir.path(), "old.test", -1);
    let (cert, key) = (
        expired.cert.display().to_string(),
        expired.key.display().to_string(),
    );
    let mut s = Spawn::new(
        Bin::Serve,
        &["-b", "127.0.0.1:0", "--certfile", &cert, "--keyfile", &key],
    )
    .spawn();
    let code = s.wait_exit(PATIENCE).and_then(|st| st.code());
    let log = s.log();
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains(&format!(
            "--certfile {cert}: the certificate of CN=old.test expired"
        )),
        "{log}"
    );
}

/// `serve --probe` with the server's own flags: exit code and stderr.
fn probe(args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(Bin::Serve.path())
        .arg("--probe")
        .args(args)
        .env_remove("PORT")
        .env_remove("SERVE_CMD_ARGS")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn probes_speak_tls_or_use_the_cleartext_metrics_address() {
    let dir = common::tempdir();
    let pki = testing::make(dir.path(), "serve.test", 30);
    let (cert, key, ca) = (
        pki.cert.display().to_string(),
        pki.key.display().to_string(),
        pki.ca.display().to_string(),
    );
    // Over TLS on the --bind address: the certificate of --certfile is expected, its name
    // (serve.test, localhost) not checked against the address asked (127.0.0.1).
    let server = serve_tls(&pki, &[]);
    let at = tcp(&server);
    let tls = ["-b", &at, "--certfile", &cert, "--keyfile", &key];
    assert_eq!(probe(&tls), (Some(0), String::new()));
    // A cleartext probe on a TLS port fails, naming the address.
    let (code, err) = probe(&["-b", &at]);
    assert_eq!(code, Some(1), "{err}");
    drop(server);

    // Client certificates required: the probe has none, so it needs --metrics-bind, where
    // health is answered in cleartext.
    let server = serve_tls(
        &pki,
        &[
            "--ca-certs",
            &ca,
            "--cert-reqs",
            "2",
            "--metrics-bind",
            "127.0.0.1:0",
        ],
    );
    let at = tcp(&server);
    let metrics = server.logged_addr("Metrics and status at");
    let required = [
        "-b",
        &at,
        "--certfile",
        &cert,
        "--keyfile",
        &key,
        "--ca-certs",
        &ca,
        "--cert-reqs",
        "2",
    ];
    let (code, err) = probe(&required);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("give --metrics-bind"), "{err}");
    let mut with_metrics = required.to_vec();
    with_metrics.extend(["--metrics-bind", &metrics]);
    assert_eq!(probe(&with_metrics), (Some(0), String::new()));
    let m = Addr::Tcp(metrics);
    for path in ["/v2/health/ready", "/v2/health/live"] {
        let res = common::http::Conn::open(&m)
            .unwrap()
            .request("GET", path, &[], b"")
            .unwrap();
        assert_eq!(res.status, 200, "{path}: {}", res.text());
    }
    let res = common::http::Conn::open(&m)
        .unwrap()
        .request("GET", "/v2/models/iris", &[], b"")
        .unwrap();
    assert_eq!(res.status, 404, "the rest of the API is not here");
}
