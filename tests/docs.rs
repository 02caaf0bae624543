//! The requests and answers the docs show are the binary's: every `curl` in README.md and in
//! the shipped app.toml comments that is followed by an answer is sent to the real binary,
//! serving what the docs say answers it, and the answer compared.
//!
//! In README.md a `sh` block is served by its own `serve ARGS &` line, or by the sentence
//! before it, "The answers below are those of `serve ARGS`" (`SRC as NAME.onnx` serves a
//! corpus file under the name a reader's own file would have). An answer is the `# ` comment
//! after a `curl`: compared value by value, floats to the digits printed; `...` in it stands
//! for the part left out; an answer starting `# e.g.` is compared by shape only (a status page
//! with pids and times). In an app.toml the server is that file.

mod common;

use std::path::{Path, PathBuf};

use common::http::Conn;
use common::{Bin, Spawn};
use serde_json::Value;

/// One request the docs show, with its answer.
#[derive(Debug)]
struct Shown {
    /// Where: file and line.
    at: String,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    answer: String,
}

/// A server the docs name, and the requests it answers.
#[derive(Debug)]
struct Served {
    args: Vec<String>,
    shown: Vec<Shown>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `curl` command line and its answer lines, as read from the docs.
fn parse_curl(at: &str, command: &str, answer: String) -> Shown {
    let words = shlex::split(command).unwrap_or_else(|| panic!("{at}: cannot split {command}"));
    let mut shown = Shown {
        at: at.to_owned(),
        method: "GET".into(),
        path: String::new(),
        headers: Vec::new(),
        body: Vec::new(),
        answer,
    };
    let mut it = words.iter().skip(1);
    while let Some(w) = it.next() {
        match w.as_str() {
            "-s" => {}
            "-H" => {
                let h = it.next().unwrap();
                let (k, v) = h.split_once(':').unwrap();
                shown.headers.push((k.trim().into(), v.trim().into()));
            }
            "-d" | "--data" | "--data-binary" => {
                shown.body = it.next().unwrap().clone().into_bytes();
                shown.method = "POST".into();
            }
            "-X" => shown.method = it.next().unwrap().clone(),
            url => {
                let path = url.split_once('/').map(|(_, p)| p).unwrap_or("");
                shown.path = format!("/{path}");
            }
        }
    }
    shown
}

/// Lines of a block (`#`-prefixed in a toml header, stripped), read as commands and answers.
fn requests(file: &str, first_line: usize, lines: &[String]) -> Vec<Shown> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if !line.starts_with("curl ") {
            i += 1;
            continue;
        }
        let at = format!("{file}:{}", first_line + i);
        let mut command = String::new();
        let mut l = line.to_owned();
        while let Some(head) = l.strip_suffix('\\') {
            command.push_str(head);
            i += 1;
            l = lines[i].trim().to_owned();
        }
        command.push_str(&l);
        i += 1;
        // A quoted body may run over several lines.
        while command.matches('\'').count() % 2 == 1 && i < lines.len() {
            command.push('\n');
            command.push_str(lines[i].trim());
            i += 1;
        }
        // The answer: comment lines (or, in a toml header, plain lines) starting with { or [.
        let mut answer = String::new();
        while i < lines.len() {
            let l = lines[i].trim();
            let text = l.strip_prefix('#').map_or(l, str::trim);
            let continues = !answer.is_empty() && l.starts_with('#') && !text.starts_with("curl");
            let starts = answer.is_empty()
                && (text.starts_with('{') || text.starts_with('[') || text.starts_with("e.g. "));
            if !(starts || continues) || text.is_empty() {
                break;
            }
            answer.push_str(text);
            i += 1;
        }
        if !answer.is_empty() {
            out.push(parse_curl(&at, &command, answer));
        }
    }
    out
}

/// README.md's served blocks.
fn readme() -> Vec<Served> {
    let text = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() != "```sh" {
            i += 1;
            continue;
        }
        let start = i + 1;
        let end = start
            + lines[start..]
                .iter()
                .position(|l| l.trim() == "```")
                .unwrap();
        let block: Vec<String> = lines[start..end].iter().map(|l| l.to_string()).collect();
        let shown = requests("README.md", start + 1, &block);
        i = end + 1;
        if shown.is_empty() {
            continue;
        }
        let own = block.iter().find_map(|l| {
            l.trim()
                .strip_prefix("serve ")?
                .strip_suffix('&')
                .map(str::to_owned)
        });
        let said = lines[..start - 1].iter().rev().take(3).find_map(|l| {
            let (_, rest) = l.split_once("answers below are those of `serve")?;
            Some(rest.split_once('`')?.0.to_owned())
        });
        let args = own.or(said).unwrap_or_else(|| {
            panic!(
                "README.md:{start}: a block shows answers but names no server (a `serve ... &` \
                 line, or \"The answers below are those of `serve ...`\" before it)"
            )
        });
        out.push(Served {
            args: shlex::split(&args).unwrap(),
            shown,
        });
    }
    out
}

/// The shipped app.toml files whose header comments show requests.
fn app_tomls() -> Vec<Served> {
    let mut out = Vec::new();
    for rel in [
        "examples/app.toml",
        "examples/iris/app.toml",
        "examples/titanic/app.toml",
    ] {
        let text = std::fs::read_to_string(root().join(rel)).unwrap();
        let lines: Vec<String> = text
            .lines()
            .map(|l| l.strip_prefix('#').map_or("", str::trim).to_owned())
            .collect();
        out.push(Served {
            args: vec![rel.to_owned()],
            shown: requests(rel, 1, &lines),
        });
    }
    out
}

/// The server's arguments with `SRC as NAME` copied into `dir` under NAME.
fn materialize(args: &[String], dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        if it.peek().is_some_and(|n| *n == "as") {
            it.next();
            let name = it.next().unwrap();
            std::fs::copy(root().join(a), dir.join(name)).unwrap();
            out.push(dir.join(name).to_string_lossy().into_owned());
        } else {
            out.push(a.clone());
        }
    }
    out
}

/// The answer matches the docs': values (floats to the digits printed), or, for `e.g.`, shape.
fn matches(doc: &str, got: &str) -> Result<(), String> {
    if let Some(doc) = doc.strip_prefix("e.g. ") {
        let (d, g) = (parse(doc)?, parse(got)?);
        return same_shape(&d, &g, "");
    }
    if doc.contains("...") {
        // The pieces appear in order, the first at the start.
        let mut rest = got;
        for (n, piece) in doc.split("...").enumerate() {
            match rest.find(piece) {
                Some(0) => rest = &rest[piece.len()..],
                Some(i) if n > 0 => rest = &rest[i + piece.len()..],
                _ => return Err(format!("\"{piece}\" is not where the docs show it")),
            }
        }
        return Ok(());
    }
    let (d, g) = (parse(doc)?, parse(got)?);
    same(&d, &g, "")
}

fn parse(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("not JSON ({e}): {text}"))
}

fn same(d: &Value, g: &Value, at: &str) -> Result<(), String> {
    match (d, g) {
        (Value::Object(a), Value::Object(b)) => {
            let (ka, kb): (Vec<_>, Vec<_>) = (a.keys().collect(), b.keys().collect());
            if ka != kb {
                return Err(format!("{at}: keys {ka:?}, the binary's {kb:?}"));
            }
            a.iter()
                .try_for_each(|(k, v)| same(v, &b[k], &format!("{at}.{k}")))
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .try_for_each(|(i, (x, y))| same(x, y, &format!("{at}[{i}]"))),
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => Ok(()),
        (a, b) if a == b => Ok(()),
        (a, b) => Err(format!("{at}: the docs show {a}, the binary answers {b}")),
    }
}

fn same_shape(d: &Value, g: &Value, at: &str) -> Result<(), String> {
    match (d, g) {
        (Value::Object(a), Value::Object(b)) => a.iter().try_for_each(|(k, v)| match b.get(k) {
            Some(w) => same_shape(v, w, &format!("{at}.{k}")),
            None => Err(format!("{at}: the binary's answer has no \"{k}\"")),
        }),
        (Value::Array(a), Value::Array(b)) => match (a.first(), b.first()) {
            (Some(x), Some(y)) => same_shape(x, y, &format!("{at}[0]")),
            _ => Ok(()),
        },
        (a, b) if std::mem::discriminant(a) == std::mem::discriminant(b) => Ok(()),
        (a, b) => Err(format!("{at}: the docs show {a}, the binary answers {b}")),
    }
}

#[test]
fn every_answer_the_docs_show_is_the_binary_s() {
    let mut served = readme();
    served.extend(app_tomls());
    let total: usize = served.iter().map(|s| s.shown.len()).sum();
    assert!(
        total >= 12,
        "the docs show {total} answers: the parser lost some"
    );
    let mut wrong = Vec::new();
    for s in &served {
        let dir = common::tempdir();
        let mut args = vec![
            "-w".to_owned(),
            "1".into(),
            "-b".into(),
            "127.0.0.1:0".into(),
        ];
        args.extend(materialize(&s.args, dir.path()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = Spawn::new(Bin::Serve, &args).start();
        for r in &s.shown {
            let headers: Vec<(&str, &str)> = r
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let res = Conn::open(server.addr())
                .and_then(|mut c| c.request(&r.method, &r.path, &headers, &r.body))
                .unwrap();
            let got = res.text();
            if let Err(e) = matches(&r.answer, got.trim()) {
                wrong.push(format!(
                    "{} (serve {}): {e}\n    the docs: {}\n    the binary: {got}",
                    r.at,
                    s.args.join(" "),
                    r.answer
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {total} answers differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
