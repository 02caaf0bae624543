//! Bearer tokens (`--auth-token-file`) through the real binary: 401 without a token, with a
//! wrong one and with one removed from the file (after HUP); 200 with a valid one, over REST
//! and gRPC; health, the front page and OpenAPI open; the access log names the token's line
//! and never shows a token, even with a format that prints the Authorization header.

mod common;

use common::http::Conn;
use common::{Addr, Bin, PATIENCE, start};
use nix::sys::signal::Signal;
use serve_triton::pb;
use serve_triton::pb::grpc_inference_service_client::GrpcInferenceServiceClient;

const FIRST: &str = "tok-3f9a1c77e2b4";
const SECOND: &str = "tok-88d0aa51c6e3";
const ROW: &[u8] =
    br#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}"#;

fn call(
    server: &common::Server,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> common::http::Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a));
    }
    let body: &[u8] = if method == "POST" { ROW } else { b"" };
    Conn::open(server.addr())
        .unwrap()
        .request(method, path, &headers, body)
        .unwrap()
}

#[test]
fn the_api_needs_a_token_health_does_not_and_no_log_shows_one() {
    let dir = common::tempdir();
    let file = dir.path().join("tokens");
    std::fs::write(
        &file,
        format!("# who may call\n{FIRST} ci-runner\n\n{SECOND}\n"),
    )
    .unwrap();
    let file_arg = file.display().to_string();
    let server = start(
        Bin::Serve,
        &[
            "-w",
            "2",
            "-b",
            "127.0.0.1:0",
            "--auth-token-file",
            &file_arg,
            "--access-logfile",
            "-",
            "--access-log-format",
            "%(u)s %({authorization}i)s \"%(r)s\" %(s)s",
        ],
    );
    let infer = "/v2/models/iris/infer";
    let res = call(&server, "POST", infer, None);
    assert_eq!(res.status, 401, "{}", res.text());
    assert_eq!(res.header("www-authenticate"), Some("Bearer"));
    assert!(
        res.json()["error"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer TOKEN")
    );
    let res = call(&server, "POST", infer, Some("tok-guess"));
    assert_eq!(res.status, 401);
    assert_eq!(
        res.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    assert_eq!(call(&server, "POST", infer, Some(FIRST)).status, 200);
    assert_eq!(call(&server, "POST", infer, Some(SECOND)).status, 200);
    // Open: health, the front page, OpenAPI. Not: a model's readiness and metadata, /metrics.
    for path in ["/v2/health/ready", "/v2/health/live", "/", "/openapi.json"] {
        assert_eq!(call(&server, "GET", path, None).status, 200, "{path}");
    }
    let doc = call(&server, "GET", "/openapi.json", None).json();
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["security"][0]["bearer"], serde_json::json!([]));
    assert_eq!(
        doc["paths"]["/v2/health/ready"]["get"]["security"],
        serde_json::json!([])
    );
    for path in [
        "/v2/models/iris/ready",
        "/v2/models/iris",
        "/metrics",
        "/v2",
    ] {
        assert_eq!(call(&server, "GET", path, None).status, 401, "{path}");
        assert_eq!(
            call(&server, "GET", path, Some(SECOND)).status,
            200,
            "{path}"
        );
    }
    // The refusals count under their model and protocol, with their code.
    let metrics = call(&server, "GET", "/metrics", Some(FIRST)).text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("serve_requests_total{")
                && l.contains("model=\"iris\"")
                && l.contains("code=\"401\"")),
        "{metrics}"
    );

    // gRPC: the authorization metadata.
    let Addr::Tcp(addr) = server.addr().clone() else {
        unreachable!()
    };
    common::h2::runtime().block_on(async {
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut c = GrpcInferenceServiceClient::new(channel);
        let ready = || pb::ServerReadyRequest {};
        let e = c.server_ready(ready()).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
        let mut req = tonic::Request::new(ready());
        req.metadata_mut()
            .insert("authorization", format!("Bearer {FIRST}").parse().unwrap());
        assert!(c.server_ready(req).await.unwrap().into_inner().ready);
    });

    // A token removed from the file is refused after HUP.
    std::fs::write(&file, format!("{FIRST} ci-runner\n")).unwrap();
    server.signal(Signal::SIGHUP);
    assert!(common::wait_until(PATIENCE, || call(
        &server,
        "POST",
        infer,
        Some(SECOND)
    )
    .status
        == 401));
    assert_eq!(call(&server, "POST", infer, Some(FIRST)).status, 200);

    // The access log names the token's line; no line of any log holds a token.
    assert!(common::wait_until(PATIENCE, || server
        .stdout()
        .contains("ci-runner [redacted] \"POST /v2/models/iris/infer")));
    assert!(
        server.stdout().contains("line4 [redacted]"),
        "{}",
        server.stdout()
    );
    let logs = server.stdout() + &server.log();
    for token in [FIRST, SECOND] {
        assert!(!logs.contains(token), "a token in the logs:\n{logs}");
    }
}
