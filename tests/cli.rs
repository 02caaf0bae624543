//! The command line and configuration: gunicorn's names, precedence, and one-line errors that
//! name the cause and the fix, with exit codes before any fork.

mod common;

use std::process::Command;

use common::{Bin, PATIENCE, Spawn};

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(Bin::TestApp.path());
    cmd.args(args)
        .env_remove("PORT")
        .env_remove("WEB_CONCURRENCY")
        .env_remove("SERVE_CMD_ARGS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn one_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{stderr}");
    lines[0]
}

#[test]
fn a_bad_flag_is_one_line_and_exit_2() {
    let (code, _, err) = run(&["--no-such-flag"], &[]);
    assert_eq!(code, 2);
    let line = one_line(&err);
    assert!(
        line.contains("--no-such-flag") && line.contains("serve --help"),
        "{line}"
    );
}

#[test]
fn a_bad_value_names_the_flag_and_what_is_expected() {
    let (code, _, err) = run(&["--timeout", "soon", "--check-config"], &[]);
    assert_eq!(code, 1);
    let line = one_line(&err);
    assert!(
        line.contains("--timeout") && line.contains("seconds"),
        "{line}"
    );
    let (code, _, err) = run(&["--max-body-size", "1T", "--check-config"], &[]);
    assert_eq!(code, 1);
    assert!(one_line(&err).contains("K, M or G"), "{err}");
}

#[test]
fn an_unbindable_address_is_one_line_exit_1_and_no_fork() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().to_string();
    let mut server = Spawn::new(Bin::TestApp, &["-w", "2", "-b", &taken]).spawn();
    let status = server.wait_exit(PATIENCE).expect("exits");
    assert_eq!(status.code(), Some(1));
    let log = server.log();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("[ERROR]")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(
        errors[0].contains(&format!("cannot bind {taken}: address in use"))
            && errors[0].contains("pass -b"),
        "{log}"
    );
    assert!(
        !log.contains("Booting worker"),
        "nothing may be forked: {log}"
    );
}

#[test]
fn an_unreadable_config_file_is_one_line_and_exit_1() {
    let (code, _, err) = run(&["-c", "/nonexistent/serve.toml"], &[]);
    assert_eq!(code, 1);
    let line = one_line(&err);
    assert!(
        line.contains("cannot read config file /nonexistent/serve.toml"),
        "{line}"
    );
    let dir = common::tempdir();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "workers = = 2\n").unwrap();
    let (code, _, err) = run(&["-c", bad.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(one_line(&err).contains("not valid TOML"), "{err}");
    std::fs::write(&bad, "wrokers = 2\n").unwrap();
    let (code, _, err) = run(&["-c", bad.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(
        one_line(&err).contains("unknown setting \"wrokers\""),
        "{err}"
    );
}

#[test]
fn precedence_is_cli_then_env_args_then_file_then_environment() {
    let dir = common::tempdir();
    let file = dir.path().join("serve.toml");
    std::fs::write(
        &file,
        "workers = 3\nkeep_alive = 7\ntimeout = 9\nbind = [\"127.0.0.1:7001\"]\npreload = true\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let (code, out, err) = run(
        &["-c", f, "--print-config", "--timeout", "11"],
        &[
            ("SERVE_CMD_ARGS", "--keep-alive 5 --timeout 10"),
            ("PORT", "9999"),
            ("WEB_CONCURRENCY", "8"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let v: toml::Table = out.parse().unwrap();
    assert_eq!(v["timeout"].as_float(), Some(11.0), "command line wins");
    assert_eq!(
        v["keep_alive"].as_float(),
        Some(5.0),
        "SERVE_CMD_ARGS beats the file"
    );
    assert_eq!(
        v["workers"].as_integer(),
        Some(3),
        "the file beats WEB_CONCURRENCY"
    );
    assert_eq!(
        v["bind"].as_array().unwrap()[0].as_str(),
        Some("127.0.0.1:7001")
    );
    assert_eq!(v["preload"].as_bool(), Some(true));

    let (_, out, _) = run(
        &["--print-config"],
        &[("PORT", "9999"), ("WEB_CONCURRENCY", "4")],
    );
    let v: toml::Table = out.parse().unwrap();
    assert_eq!(
        v["bind"].as_array().unwrap()[0].as_str(),
        Some("0.0.0.0:9999")
    );
    assert_eq!(v["workers"].as_integer(), Some(4));
}

#[test]
fn print_config_output_is_a_valid_config_file() {
    let dir = common::tempdir();
    let (code, out, _) = run(&["--print-config", "-w", "3", "--max-body-size", "2M"], &[]);
    assert_eq!(code, 0);
    let file = dir.path().join("printed.toml");
    std::fs::write(&file, &out).unwrap();
    let (code, again, err) = run(&["-c", file.to_str().unwrap(), "--print-config"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, again);
}

#[test]
fn help_shows_every_default() {
    let (code, out, _) = run(&["--help"], &[]);
    assert_eq!(code, 0);
    // Help text wraps at the terminal's width: compare with whitespace collapsed.
    let out = out.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "[default: 127.0.0.1:8000, or 0.0.0.0:$PORT when PORT is set]",
        "[default: $WEB_CONCURRENCY or 1]",
        "--timeout <SECONDS>",
        "[default: 30]",
        "[default: 2]",
        "[default: 2048]",
        "[default: 4094]",
        "[default: 8190]",
        "[default: 64M]",
        "--max-requests-jitter",
        "--graceful-timeout",
        "--forwarded-allow-ips",
        "--access-log-format",
        "--reuse-port",
        "--preload",
    ] {
        assert!(out.contains(needle), "--help lacks {needle:?}");
    }
    let (code, out, _) = run(&["--version"], &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with("serve "), "{out}");
}

#[test]
fn probe_asks_readiness_where_the_configuration_binds() {
    let server = common::start(Bin::Serve, &["-w", "1", "-b", "127.0.0.1:0"]);
    let common::Addr::Tcp(addr) = server.addr().clone() else {
        panic!("a TCP address")
    };
    let probe = |args: &[&str], env: &[(&str, String)]| {
        let mut cmd = Command::new(Bin::Serve.path());
        cmd.arg("--probe")
            .args(args)
            .env_remove("PORT")
            .env_remove("SERVE_CMD_ARGS");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let at = addr.clone();
    assert_eq!(probe(&["-b", &at], &[]), (Some(0), String::new()));
    // $PORT binds 0.0.0.0:$PORT; the probe asks it on loopback.
    let port = at.rsplit(':').next().unwrap().to_string();
    assert_eq!(probe(&[], &[("PORT", port)]), (Some(0), String::new()));
    // SERVE_CMD_ARGS moves it as it moves the server.
    let args = format!("-b {at}");
    assert_eq!(probe(&[], &[("SERVE_CMD_ARGS", args)]).0, Some(0));
    drop(server);
    let (code, err) = probe(&["-b", &at], &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with(&format!("serve --probe: cannot connect to {at}")),
        "{err}"
    );
}

#[test]
fn check_config_checks_the_app_and_exits() {
    let dir = common::tempdir();
    let app = dir.path().join("app.txt");
    std::fs::write(&app, "v1\n").unwrap();
    let (code, out, _) = run(&["--check-config", app.to_str().unwrap()], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("Config OK"), "{out}");
    std::fs::write(&app, "v1 fail-check\n").unwrap();
    let (code, _, err) = run(&["--check-config", app.to_str().unwrap()], &[]);
    assert_eq!(code, 4, "{err}");
}

#[test]
fn an_app_that_cannot_load_exits_4_before_any_fork() {
    let dir = common::tempdir();
    let app = dir.path().join("app.txt");
    std::fs::write(&app, "v1 fail-check\n").unwrap();
    let mut server = Spawn::new(
        Bin::TestApp,
        &["-w", "2", "-b", "127.0.0.1:0", app.to_str().unwrap()],
    )
    .spawn();
    assert_eq!(server.wait_exit(PATIENCE).and_then(|s| s.code()), Some(4));
    let log = server.log();
    assert!(
        log.contains("cannot load the app: the test app was told to fail-check"),
        "{log}"
    );
    assert!(!log.contains("Booting worker"), "{log}");
}

#[test]
fn a_worker_that_cannot_boot_at_first_boot_exits_3() {
    let dir = common::tempdir();
    let app = dir.path().join("app.txt");
    std::fs::write(&app, "v1 fail-boot\n").unwrap();
    let mut server = Spawn::new(
        Bin::TestApp,
        &["-w", "2", "-b", "127.0.0.1:0", app.to_str().unwrap()],
    )
    .spawn();
    assert_eq!(server.wait_exit(PATIENCE).and_then(|s| s.code()), Some(3));
    let log = server.log();
    assert!(log.contains("Worker failed to boot"), "{log}");
    assert!(common::procs::descendants(server.master).is_empty());
}

#[test]
fn the_reference_config_file_states_the_defaults() {
    let reference = concat!(env!("CARGO_MANIFEST_DIR"), "/config/serve.toml");
    let (code, with_file, err) = run(&["-c", reference, "--print-config"], &[]);
    assert_eq!(code, 0, "{err}");
    let (_, defaults, _) = run(&["--print-config"], &[]);
    assert_eq!(
        with_file, defaults,
        "config/serve.toml must state the defaults"
    );
}
