//! Slow clients cannot starve fast ones: request heads, TLS handshakes and bodies that
//! trickle are cut at `--min-rate` after their first second, instead of holding a
//! connection slot for all of `--header-timeout` or `--body-timeout`. A bounded black-box
//! run: 300 connections that each send a byte every 2 s (and reconnect when cut) against
//! `-w 2 --worker-connections 100` (the 3,000 against 2,000 slots, scaled to what a
//! test process may open), in clear and over TLS, while a client makes ordinary requests
//! on new connections with a 5 s timeout: every one is answered. The latency figure is the
//! bench's, not this test's.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use common::tls::{Alpn, config, request};
use common::{Addr, Bin, Server, start};
use serve_tls::testing;

const TRICKLERS: usize = 300;
const RUN: Duration = Duration::from_secs(8);

fn tcp(server: &Server) -> String {
    match server.addr() {
        Addr::Tcp(a) => a.clone(),
        Addr::Unix(_) => unreachable!("these tests bind TCP"),
    }
}

/// Connections that send `first` then one byte of `rest` every 2 s, reconnecting when the
/// server cuts them, until `stop`; returns how many times they were cut.
fn trickle(
    addr: &str,
    first: &'static [u8],
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    let addr = addr.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let cut = Arc::new(AtomicU64::new(0));
            let tasks: Vec<_> = (0..TRICKLERS)
                .map(|_| {
                    let (addr, stop, cut) = (addr.clone(), stop.clone(), cut.clone());
                    tokio::spawn(async move {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        while !stop.load(Relaxed) {
                            let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await else {
                                tokio::time::sleep(Duration::from_millis(100)).await;
                                continue;
                            };
                            if s.write_all(first).await.is_err() {
                                continue;
                            }
                            let mut buf = [0u8; 512];
                            loop {
                                tokio::select! {
                                    r = s.read(&mut buf) => {
                                        if matches!(r, Ok(0) | Err(_)) {
                                            cut.fetch_add(1, Relaxed);
                                            break;
                                        }
                                    }
                                    _ = tokio::time::sleep(Duration::from_secs(2)) => {
                                        if stop.load(Relaxed) || s.write_all(b"X").await.is_err() {
                                            break;
                                        }
                                    }
                                }
                            }
                        }
                    })
                })
                .collect();
            for t in tasks {
                let _ = t.await;
            }
            cut.load(Relaxed)
        })
    })
}

/// Plain requests on new connections for `RUN`, each with a 5 s timeout: (answered, failed
/// with what).
fn ordinary_requests(addr: &str) -> (u64, Vec<String>) {
    let started = Instant::now();
    let (mut ok, mut failed) = (0, Vec::new());
    while started.elapsed() < RUN {
        let asked = Instant::now();
        let result = (|| -> std::io::Result<String> {
            let mut s = TcpStream::connect(addr)?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
            let mut answer = String::new();
            s.read_to_string(&mut answer)?;
            Ok(answer)
        })();
        match result {
            Ok(a) if a.starts_with("HTTP/1.1 200") => ok += 1,
            Ok(a) => failed.push(format!(
                "after {:?}: {}",
                asked.elapsed(),
                a.lines().next().unwrap_or("")
            )),
            Err(e) => failed.push(format!("after {:?}: {e}", asked.elapsed())),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (ok, failed)
}

#[test]
fn trickling_heads_cannot_starve_ordinary_requests() {
    let _serial = common::serial();
    let server = start(
        Bin::Serve,
        &[
            "-w",
            "2",
            "--worker-connections",
            "100",
            "-b",
            "127.0.0.1:0",
        ],
    );
    let addr = tcp(&server);
    let stop = Arc::new(AtomicBool::new(false));
    let attack = trickle(&addr, b"G", stop.clone());
    std::thread::sleep(Duration::from_secs(1));
    let (ok, failed) = ordinary_requests(&addr);
    stop.store(true, Relaxed);
    let cut = attack.join().unwrap();
    common::report(
        "ordinary requests answered in 8 s among trickling heads",
        ok,
    );
    assert!(failed.is_empty(), "{} answered, failed: {failed:?}", ok);
    assert!(ok > 0, "{ok}");
    assert!(
        cut >= TRICKLERS as u64,
        "the trickling heads were cut: {cut}"
    );
    assert_eq!(server.workers().len(), 2);
}

#[test]
fn trickling_tls_handshakes_cannot_starve_ordinary_ones() {
    let _serial = common::serial();
    let dir = common::tempdir();
    let pki = testing::make(dir.path(), "serve.test", 30);
    let (cert, key) = (
        pki.cert.display().to_string(),
        pki.key.display().to_string(),
    );
    let server = start(
        Bin::Serve,
        &[
            "-w",
            "2",
            "--worker-connections",
            "100",
            "-b",
            "127.0.0.1:0",
            "--certfile",
            &cert,
            "--keyfile",
            &key,
        ],
    );
    let addr = tcp(&server);
    let stop = Arc::new(AtomicBool::new(false));
    // A TLS record header, then the trickle.
    let attack = trickle(&addr, &[0x16, 0x03, 0x01], stop.clone());
    std::thread::sleep(Duration::from_secs(1));
    let rt = common::h2::runtime();
    let started = Instant::now();
    let (mut ok, mut failed) = (0u64, Vec::new());
    while started.elapsed() < RUN {
        let asked = request(
            &addr,
            config(&pki, Alpn::Http1, false),
            "GET",
            "/v2/health/ready",
            "",
        );
        match rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), asked).await }) {
            Ok(Ok(a)) if a.status == 200 => ok += 1,
            other => failed.push(format!("{other:?}")),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Relaxed);
    let cut = attack.join().unwrap();
    common::report(
        "TLS requests answered in 8 s among trickling handshakes",
        ok,
    );
    assert!(failed.is_empty(), "{ok} answered, failed: {failed:?}");
    assert!(ok > 0, "{ok}");
    assert!(
        cut >= TRICKLERS as u64,
        "the trickling handshakes were cut: {cut}"
    );
}

#[test]
fn a_trickling_body_is_answered_408_after_its_first_second() {
    let server = start(Bin::Serve, &["-b", "127.0.0.1:0"]);
    let addr = tcp(&server);
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    s.write_all(
        b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
    )
    .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                    break;
                }
            }
        }
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("slower than --min-rate"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_http2_connection_may_wait_before_its_first_request() {
    // A gRPC channel connects (preface and settings) well before its first call: that is
    // no slow head, whatever --min-rate says.
    let server = start(Bin::Serve, &["-b", "127.0.0.1:0"]);
    let addr = tcp(&server);
    common::h2::runtime().block_on(async {
        let (mut send, _conn) = common::h2::connect(&addr).await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let req = hyper::Request::get(format!("http://{addr}/v2/health/ready"))
            .body(http_body_util::Empty::new())
            .unwrap();
        let res = send
            .send_request(req)
            .await
            .expect("the connection is still open");
        assert_eq!(res.status(), 200);
    });
}
