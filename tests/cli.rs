//! The command line and configuration: gunicorn's names, precedence, and one-line errors that
//! name the cause and the fix, with exit codes before any fork.

mod common;

use std::process::Command;

use common::{Bin, PATIENCE, Spawn};

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    run_bin(Bin::TestApp, args, env)
}

fn run_bin(bin: Bin, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(bin.path());
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

/// The embedded model's path as a config file names it.
fn iris() -> String {
    common::examples("iris/model.onnx")
}

#[test]
fn app_may_come_first_last_or_between_the_keys_of_a_config_file() {
    let dir = common::tempdir();
    let app = format!("app = {:?}", iris());
    let orders = [
        format!("{app}\nworkers = 2\nkeep_alive = 5\n"),
        format!("workers = 2\n{app}\nkeep_alive = 5\n"),
        format!("workers = 2\nkeep_alive = 5\n{app}\n"),
    ];
    for (i, text) in orders.iter().enumerate() {
        let file = dir.path().join(format!("order{i}.toml"));
        std::fs::write(&file, text).unwrap();
        let file = file.to_str().unwrap();
        let (code, out, err) = run_bin(Bin::Serve, &["-c", file, "--check-config"], &[]);
        assert_eq!(code, 0, "{text}\n{err}");
        assert!(out.contains("Config OK: model iris"), "{out}");
        let (code, out, err) = run_bin(Bin::Serve, &["-c", file, "--print-config"], &[]);
        assert_eq!(code, 0, "{err}");
        let printed: toml::Table = out.parse().unwrap();
        assert_eq!(printed["workers"].as_integer(), Some(2), "{text}");
        assert_eq!(printed["keep_alive"].as_float(), Some(5.0), "{text}");
        assert_eq!(printed["app"].as_str(), Some(iris().as_str()), "{text}");
    }
}

/// A value other than the default for each flag of the table, by its placeholder (and its
/// name where two flags share one).
fn non_default(id: &str, value_name: &str, dir: &std::path::Path) -> String {
    match (id, value_name) {
        (_, "BOOL") => "true".into(),
        (_, "SECONDS") => "7.5".into(),
        (_, "N") => "3".into(),
        (_, "BYTES") => "5000".into(),
        (_, "SIZE") => "2M".into(),
        (_, "ROWS") => "8".into(),
        (_, "MICROSECONDS") => "250".into(),
        (_, "MASK") => "0o27".into(),
        (_, "NAME") => "myserve".into(),
        (_, "IPS") => "10.0.0.1,127.0.0.1".into(),
        (_, "LEVEL") => "debug".into(),
        (_, "ADDRESS") => "127.0.0.1:9999".into(),
        (_, "USER") => nix::unistd::geteuid().to_string(),
        (_, "GROUP") => nix::unistd::getegid().to_string(),
        ("log_format", _) => "json".into(),
        ("engine", _) => "onnxruntime".into(),
        ("model_control", _) => "explicit".into(),
        (_, "0|1|2") => "2".into(),
        (_, "VERSION") => "1.3".into(),
        (_, "SUITES") => "TLS13_AES_128_GCM_SHA256".into(),
        (_, "BYTES_PER_S") => "800".into(),
        ("access_log_format", _) => "%(h)s %(s)s %(L)s".into(),
        (_, "FILE") => dir.join(format!("{id}.file")).display().to_string(),
        other => panic!("no non-default value for {other:?}: add one for this new kind"),
    }
}

#[test]
fn print_config_round_trips_every_setting_of_the_table() {
    use clap::CommandFactory;
    let dir = common::tempdir();
    let (_, defaults, _) = run(&["--print-config"], &[]);
    let defaults: toml::Table = defaults.parse().unwrap();
    let mut args: Vec<String> = vec!["--print-config".into()];
    let mut set = Vec::new();
    for arg in serve::cli::Opts::command().get_arguments() {
        let (Some(long), Some(name)) = (arg.get_long(), arg.get_value_names()) else {
            continue;
        };
        let id = long.replace('-', "_");
        if !arg.get_action().takes_values() || ["config", "bind", "workers"].contains(&id.as_str())
        {
            continue;
        }
        let value = non_default(&id, name[0].as_str(), dir.path());
        args.push(format!("--{long}={value}"));
        set.push(id);
    }
    args.extend(["-b", "127.0.0.1:0", "-w", "3"].map(String::from));
    args.push(iris());
    assert!(
        set.len() >= 30,
        "the table has {} settings: {set:?}",
        set.len()
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, printed, err) = run(&args, &[]);
    assert_eq!(code, 0, "{err}");
    let table: toml::Table = printed.parse().unwrap();
    for id in &set {
        assert!(
            table.get(id).is_some() && table.get(id) != defaults.get(id),
            "{id}: printed {:?}, the default {:?}",
            table.get(id),
            defaults.get(id)
        );
    }
    let file = dir.path().join("printed.toml");
    std::fs::write(&file, &printed).unwrap();
    let (code, again, err) = run(&["-c", file.to_str().unwrap(), "--print-config"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        printed, again,
        "the printed file resolves to the same settings"
    );
}

#[test]
fn a_printed_config_checks_starts_answers_and_reloads() {
    use nix::sys::signal::Signal;
    let dir = common::tempdir();
    let (code, printed, err) = run_bin(
        Bin::Serve,
        &[
            "--print-config",
            "-b",
            "127.0.0.1:0",
            "-w",
            "2",
            "--keep-alive",
            "5",
            &iris(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(printed.starts_with("app = "), "app comes first: {printed}");
    let file = dir.path().join("serve.toml");
    std::fs::write(&file, &printed).unwrap();
    let file = file.to_str().unwrap();
    let (code, out, err) = run_bin(Bin::Serve, &["-c", file, "--check-config"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Config OK"), "{out}");

    let server = Spawn::new(Bin::Serve, &["-c", file]).start();
    let predict = |s: &common::Server| {
        common::http::Conn::open(s.addr())
            .and_then(|mut c| {
                c.request(
                    "POST",
                    "/v1/models/iris:predict",
                    &[("Content-Type", "application/json")],
                    br#"{"instances":[[6.7,3.0,5.2,2.3]]}"#,
                )
            })
            .unwrap()
    };
    assert_eq!(predict(&server).status, 200, "{}", server.log());
    assert_eq!(server.workers().len(), 2);
    server.signal(Signal::SIGHUP);
    assert!(
        server.wait_log("Reload complete in", PATIENCE),
        "{}",
        server.log()
    );
    assert!(!server.log().contains("Reload failed"), "{}", server.log());
    assert_eq!(predict(&server).status, 200, "{}", server.log());
}

#[test]
fn a_misspelt_flag_is_told_the_right_one() {
    let (code, _, err) = run(&["--worker", "4"], &[]);
    assert_eq!(code, 2);
    assert_eq!(
        one_line(&err),
        "serve: error: unexpected argument '--worker' found; did you mean '--workers'?; see serve --help"
    );
    let dir = common::tempdir();
    let file = dir.path().join("typo.toml");
    std::fs::write(&file, "keepalive = 5\n").unwrap();
    let (code, _, err) = run(&["-c", file.to_str().unwrap(), "--check-config"], &[]);
    assert_eq!(code, 1);
    assert_eq!(
        one_line(&err),
        format!(
            "serve: error: config file {}: unknown setting \"keepalive\" (did you mean keep_alive?); \
             settings are the long flag names with _ (keep_alive, max_requests, bind = [...]), \
             see serve --help",
            file.display()
        )
    );
}

#[test]
fn a_negative_number_reaches_the_settings_own_check() {
    let (code, _, err) = run(&["--timeout", "-1", "--check-config"], &[]);
    assert_eq!(code, 1);
    assert_eq!(
        one_line(&err),
        "serve: error: --timeout: -1 is not allowed here; expected 0 or more"
    );
    let (code, _, err) = run(&["--max-queue", "-3", "--check-config"], &[]);
    assert_eq!(code, 1);
    assert_eq!(
        one_line(&err),
        "serve: error: --max-queue: -3 is not allowed here; expected 1 or more"
    );
    let dir = common::tempdir();
    let file = dir.path().join("negative.toml");
    std::fs::write(&file, "max_requests = -5\n").unwrap();
    let (code, _, err) = run(&["-c", file.to_str().unwrap(), "--check-config"], &[]);
    assert_eq!(code, 1);
    assert_eq!(
        one_line(&err),
        "serve: error: --max-requests: -5 is not allowed here; expected 0 or more"
    );
}

#[test]
fn a_pid_file_or_log_file_that_cannot_be_written_names_its_flag_and_the_fix() {
    let dir = common::tempdir();
    let missing = dir.path().join("missing");
    let pid = missing.join("serve.pid");
    let mut server = Spawn::new(
        Bin::Serve,
        &["-b", "127.0.0.1:0", "-p", pid.to_str().unwrap()],
    )
    .spawn();
    assert_eq!(server.wait_exit(PATIENCE).and_then(|s| s.code()), Some(1));
    let log = server.log();
    let line = log.lines().find(|l| l.contains("[ERROR]")).expect(&log);
    assert!(
        line.ends_with(&format!(
            "[ERROR] --pid {}: cannot write it: the directory {} does not exist; create it, \
             or pass --pid with a writable path",
            pid.display(),
            missing.display()
        )),
        "{line}"
    );
    for flag in ["--error-logfile", "--access-logfile"] {
        let file = missing.join("serve.log");
        let (code, _, err) = run(&[flag, file.to_str().unwrap(), "-b", "127.0.0.1:0"], &[]);
        assert_eq!(code, 1);
        assert_eq!(
            one_line(&err),
            format!(
                "serve: error: {flag} {}: cannot write it: the directory {} does not exist; \
                 create it, or pass {flag} with a writable path",
                file.display(),
                missing.display()
            )
        );
    }
}
