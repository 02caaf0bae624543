//! `GET /`: the front page. What a person who opens the server's address sees: the server
//! and its version, every model with its inputs and outputs, every manifest route with its
//! record, and for each a `curl` line to copy and a form that sends an example request and
//! shows the answer.
//!
//! One HTML document written here, with its style and script compiled in (`assets/`): no
//! CDN, no font, no build step, so it works offline, in a container, behind any proxy. The
//! page is made per request (a few kilobytes of formatting, far from the hot path) because
//! its `curl` lines name the address the client used (the `Host` header; the script then
//! replaces it with the browser's own `location.origin`, which also knows the scheme).
//!
//! Everything interpolated is escaped ([`escape`]): model, input and key names come from
//! user files, and `Host` from the client. Forms carry stable hooks for browser tests:
//! `<form class="try" data-path="..." data-method="POST">`, its `<textarea>`, its
//! `<button type="submit">`, and `<pre class="answer" data-status="200">` once answered.

use std::fmt::Write as _;

use http::{HeaderValue, StatusCode, header};
use serve_app::{Request, Response};

use crate::error::fmt_shape;
use crate::metadata::TensorMeta;
use crate::registry::Model;
use crate::router::Inner;
use crate::routes::Route;

/// The page's style.
const CSS: &str = include_str!("../assets/front.css");
/// The page's script: origins, copy buttons, forms.
const JS: &str = include_str!("../assets/front.js");

/// `GET /` and `HEAD /`.
pub fn page(app: &Inner, req: &Request) -> Response {
    let origin = origin(req).unwrap_or_else(|| "http://localhost:8000".into());
    let mut res = Response::new(render(app, &origin).into());
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    *res.status_mut() = StatusCode::OK;
    res
}

/// The address the client used, from `Host` (and `X-Forwarded-Proto: https` behind a TLS
/// proxy): `None` when there is no `Host` or it is not a plain host and port.
pub fn origin(req: &Request) -> Option<String> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))?;
    let plain = |c: char| c.is_ascii_alphanumeric() || ".-:[]_".contains(c);
    if host.is_empty() || !host.chars().all(plain) {
        return None;
    }
    let https = req
        .headers()
        .get("x-forwarded-proto")
        .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"));
    Some(format!("{}://{host}", if https { "https" } else { "http" }))
}

/// Text made safe for HTML content and for attribute values in double or single quotes
/// (the same escaping as the worker's `/status` page).
pub use serve_app::escape_html as escape;

/// A POSIX shell single-quoted word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The whole page, the `curl` lines naming `origin`.
pub fn render(app: &Inner, origin: &str) -> String {
    let version = env!("CARGO_PKG_VERSION");
    let models: Vec<_> = app.registry.latest().collect();
    let mut h = String::with_capacity(16 * 1024);
    let names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>serve {version}: {}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n",
        escape(&names.join(", "))
    );
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let _ = write!(
        h,
        "<header>\n<h1>serve <span class=\"version\" id=\"version\">{version}</span></h1>\n\
         <p class=\"summary\">{}</p>\n<nav><a href=\"/openapi.json\">OpenAPI</a> \
         <a href=\"/v2\">/v2</a> <a href=\"/v2/health/ready\">ready</a> \
         <a href=\"/metrics\">metrics</a> <a href=\"/status\">status</a></nav>\n</header>\n\
         <main>\n",
        match app.routes.len() {
            0 => format!(
                "{} over KServe V2 and TF-Serving V1.",
                plural(models.len(), "model")
            ),
            n => format!(
                "{} over KServe V2 and TF-Serving V1, and {} of the manifest.",
                plural(models.len(), "model"),
                plural(n, "route")
            ),
        },
    );
    for model in models {
        let versions = crate::router::version_list(&app.registry, &model.name);
        model_section(&mut h, model, &versions, origin, app.grpc);
    }
    for route in &app.routes {
        route_section(&mut h, route, origin);
    }
    let _ = write!(
        h,
        "</main>\n<footer>serve {version} · every model also answers \
         <code>GET /v2/models/NAME</code> (metadata), <code>/ready</code> and \
         <code>/versions/V/…</code>; the whole API is in \
         <a href=\"/openapi.json\">/openapi.json</a>.</footer>\n<script>\n{JS}</script>\n\
         </body>\n</html>\n"
    );
    h
}

/// A model's section: its highest version's tensors and forms, and every version served
/// (`versions`, highest first).
fn model_section(h: &mut String, model: &Model, versions: &str, origin: &str, grpc: bool) {
    let name = escape(&model.name);
    let s = if versions.contains(',') { "s" } else { "" };
    let _ = write!(
        h,
        "<section class=\"model\" id=\"model-{name}\" data-model=\"{name}\">\n\
         <h2>{name} <span class=\"tag\">model · version{s} {} · on {}</span></h2>\n\
         <div class=\"io\">\n",
        escape(versions),
        model.engine().name()
    );
    tensor_table(h, "Inputs", "inputs", &model.meta.inputs);
    tensor_table(h, "Outputs", "outputs", &model.meta.outputs);
    h.push_str("</div>\n");
    let v2 = format!("/v2/models/{}/infer", model.name);
    try_block(h, "KServe V2", "POST", &v2, &model.examples.v2, origin);
    if let Some(v1) = &model.examples.v1 {
        let path = format!("/v1/models/{}:predict", model.name);
        try_block(h, "TF-Serving V1", "POST", &path, v1, origin);
    }
    if grpc && let Some(body) = grpc_example(&model.name, &model.examples.v2) {
        grpc_block(h, &body, origin);
    }
    h.push_str("</section>\n");
}

/// The V2 example as a gRPC ModelInferRequest in protobuf's JSON form (what `grpcurl -d`
/// takes): each input's values in the typed contents field of its datatype (BYTES in
/// base64, as protobuf's JSON writes bytes). `None` for a datatype with no typed field
/// (FP16, BF16: raw only).
pub fn grpc_example(model: &str, v2: &str) -> Option<String> {
    let v2: serde_json::Value = serde_json::from_str(v2).ok()?;
    let mut inputs = Vec::new();
    for input in v2["inputs"].as_array()? {
        let datatype = input["datatype"].as_str()?;
        let field = match datatype {
            "BOOL" => "bool_contents",
            "INT8" | "INT16" | "INT32" => "int_contents",
            "INT64" => "int64_contents",
            "UINT8" | "UINT16" | "UINT32" => "uint_contents",
            "UINT64" => "uint64_contents",
            "FP32" => "fp32_contents",
            "FP64" => "fp64_contents",
            "BYTES" => "bytes_contents",
            _ => return None,
        };
        let mut flat = Vec::new();
        flatten(&input["data"], &mut flat);
        if datatype == "BYTES" {
            flat = flat
                .iter()
                .map(|v| serde_json::Value::String(base64(v.as_str().unwrap_or("").as_bytes())))
                .collect();
        }
        inputs.push(serde_json::json!({
            "name": input["name"],
            "datatype": datatype,
            "shape": input["shape"],
            "contents": { field: flat },
        }));
    }
    Some(serde_json::json!({ "model_name": model, "inputs": inputs }).to_string())
}

fn flatten(v: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
    match v {
        serde_json::Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other.clone()),
    }
}

/// Standard base64, padded: protobuf's JSON form of `bytes`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A `grpcurl` line for a model's ModelInfer (reflection tells grpcurl the messages).
fn grpc_block(h: &mut String, body: &str, origin: &str) {
    let host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    let _ = write!(
        h,
        "<div class=\"try-block\">\n<h3>gRPC <code>inference.GRPCInferenceService/ModelInfer\
         </code></h3>\n<div class=\"curl-line\"><pre class=\"curl grpcurl\">grpcurl -plaintext \
         -d {} \\\n  <span class=\"host\">{}</span> inference.GRPCInferenceService/ModelInfer</pre>\
         <button type=\"button\" class=\"copy\">Copy</button></div>\n\
         <p class=\"note\">tritonclient.grpc and any gRPC client: the same port, the same \
         answers (outputs in raw_output_contents).</p>\n</div>\n",
        escape(&shell_quote(body)),
        escape(host),
    );
}

fn tensor_table(h: &mut String, caption: &str, class: &str, list: &[TensorMeta]) {
    // The classes column only where a ZipMap gives labels.
    let with_classes = list.iter().any(|t| t.classes.is_some());
    let _ = write!(
        h,
        "<table class=\"{class}\">\n<caption>{caption}</caption>\n\
         <thead><tr><th>name</th><th>datatype</th><th>shape</th>{}</tr></thead>\n<tbody>\n",
        if with_classes { "<th>classes</th>" } else { "" }
    );
    for t in list {
        let classes = if with_classes {
            format!("<td>{}</td>", classes(t))
        } else {
            String::new()
        };
        let _ = writeln!(
            h,
            "<tr data-name=\"{0}\"><td><code>{0}</code></td><td>{1}</td><td>{2}</td>{classes}\
             </tr>",
            escape(&t.name),
            t.datatype.as_str(),
            fmt_shape(&t.shape_i64()),
        );
    }
    h.push_str("</tbody>\n</table>\n");
}

/// The class labels of a ZipMap's probabilities, escaped; empty for other tensors.
fn classes(t: &TensorMeta) -> String {
    let Some(classes) = &t.classes else {
        return String::new();
    };
    let labels: Vec<String> = match classes.to_json() {
        serde_json::Value::Array(v) => v
            .iter()
            .map(|l| match l {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        _ => Vec::new(),
    };
    escape(&labels.join(", "))
}

fn route_section(h: &mut String, route: &Route, origin: &str) {
    let meta = &route.model.meta;
    let _ = write!(
        h,
        "<section class=\"route\" data-path=\"{0}\" data-method=\"{1}\">\n\
         <h2><span class=\"method\">{1}</span> {0} <span class=\"tag\">route → model {2}</span>\
         </h2>\n<div class=\"io\">\n<table class=\"keys\">\n<caption>Record keys</caption>\n\
         <thead><tr><th>key</th><th>input</th><th>datatype</th><th>values</th></tr></thead>\n\
         <tbody>\n",
        escape(&route.path),
        escape(route.method.as_str()),
        escape(&route.model.name)
    );
    for (key, input, shared) in route.spec().key_feeds() {
        let t = &meta.inputs[input];
        let values = if shared {
            "1 (a feature)".to_string()
        } else {
            match t.row_dims() {
                Some(row) if t.fixed_row_size() == Some(1) && !row.is_empty() => "1".into(),
                Some(_) => format!("a row of {}", fmt_shape(&t.shape_i64())),
                None => fmt_shape(&t.shape_i64()),
            }
        };
        let _ = writeln!(
            h,
            "<tr data-key=\"{0}\"><td><code>{0}</code></td><td>{1}</td><td>{2}</td>\
             <td>{3}</td></tr>",
            escape(key),
            escape(&t.name),
            t.datatype.as_str(),
            escape(&values)
        );
    }
    let with_classes = route
        .response_keys()
        .iter()
        .any(|(_, o)| meta.outputs[*o].classes.is_some());
    let _ = write!(
        h,
        "</tbody>\n</table>\n<table class=\"response\">\n<caption>Response keys</caption>\n\
         <thead><tr><th>key</th><th>output</th><th>datatype</th>{}</tr></thead>\n<tbody>\n",
        if with_classes { "<th>classes</th>" } else { "" }
    );
    for (key, output) in route.response_keys() {
        let t = &meta.outputs[*output];
        let classes = if with_classes {
            format!("<td>{}</td>", classes(t))
        } else {
            String::new()
        };
        let _ = writeln!(
            h,
            "<tr data-key=\"{0}\"><td><code>{0}</code></td><td>{1}</td><td>{2}</td>{classes}\
             </tr>",
            escape(key),
            escape(&t.name),
            t.datatype.as_str(),
        );
    }
    h.push_str("</tbody>\n</table>\n</div>\n");
    try_block(
        h,
        "Route",
        route.method.as_str(),
        &route.path,
        &route.example,
        origin,
    );
    h.push_str("</section>\n");
}

/// A `curl` line and a form for one request.
fn try_block(h: &mut String, what: &str, method: &str, path: &str, body: &str, origin: &str) {
    let post = method == "POST";
    let x = if post {
        String::new()
    } else {
        format!("-X {} ", shell_quote(method))
    };
    let _ = write!(
        h,
        "<div class=\"try-block\">\n<h3>{} <code>{} {}</code></h3>\n\
         <div class=\"curl-line\"><pre class=\"curl\">curl -s {}<span class=\"origin\">{}</span>{} \
         \\\n  -H 'Content-Type: application/json' \\\n  -d <span class=\"body\">{}</span></pre>\
         <button type=\"button\" class=\"copy\">Copy</button></div>\n",
        escape(what),
        escape(method),
        escape(path),
        escape(&x),
        escape(origin),
        escape(&shell_quote_path(path)),
        escape(&shell_quote(body)),
    );
    // Tall enough for the example as it wraps in a half-width box (about 56 characters).
    let rows = body
        .lines()
        .map(|l| l.chars().count().div_ceil(56).max(1))
        .sum::<usize>()
        .clamp(3, 14);
    if method == "GET" || method == "HEAD" {
        let _ = writeln!(
            h,
            "<p class=\"note\">A browser cannot send a body with {}: use the curl line.</p>\n</div>",
            escape(method)
        );
        return;
    }
    let _ = write!(
        h,
        "<form class=\"try\" data-path=\"{}\" data-method=\"{}\">\n\
         <textarea name=\"body\" rows=\"{rows}\" spellcheck=\"false\" \
         aria-label=\"request body\">{}</textarea>\n\
         <div class=\"send\"><button type=\"submit\">Send</button></div>\n\
         <pre class=\"answer\" data-status=\"\" aria-live=\"polite\"></pre>\n</form>\n</div>\n",
        escape(path),
        escape(method),
        escape(body),
    );
}

/// A path as the shell reads it: as it is when it has no character the shell treats
/// specially, single-quoted otherwise (the origin before it is never quoted, so the
/// script can replace it).
fn shell_quote_path(path: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-:@%+,=".contains(c);
    if path.chars().all(plain) {
        path.to_string()
    } else {
        shell_quote(path)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn the_grpc_example_puts_each_input_in_its_typed_contents() {
        assert_eq!(base64(b"S"), "Uw==");
        assert_eq!(base64(b"ma"), "bWE=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b""), "");
        let v2 = r#"{"inputs":[
            {"name":"x","datatype":"FP32","shape":[1,2],"data":[[1.5,2]]},
            {"name":"s","datatype":"BYTES","shape":[1],"data":["male"]},
            {"name":"n","datatype":"INT64","shape":[1],"data":[3]}]}"#;
        let got: serde_json::Value = serde_json::from_str(&grpc_example("m", v2).unwrap()).unwrap();
        assert_eq!(
            got,
            serde_json::json!({"model_name": "m", "inputs": [
                {"name": "x", "datatype": "FP32", "shape": [1, 2],
                 "contents": {"fp32_contents": [1.5, 2]}},
                {"name": "s", "datatype": "BYTES", "shape": [1],
                 "contents": {"bytes_contents": ["bWFsZQ=="]}},
                {"name": "n", "datatype": "INT64", "shape": [1],
                 "contents": {"int64_contents": [3]}},
            ]})
        );
        let fp16 = r#"{"inputs":[{"name":"x","datatype":"FP16","shape":[1],"data":[1]}]}"#;
        assert_eq!(grpc_example("m", fp16), None);
    }
    use crate::executor::Settings;
    use crate::registry::Registry;
    use crate::source::Source;

    /// An app of the embedded iris (with its example) and one route, as the factory builds
    /// them, the model named `name`.
    pub(crate) fn app(name: &str, manifest_route: &str) -> Inner {
        let mut registry = Registry::default();
        let core = serve_runtime::model::Model::open(
            name.into(),
            Source::Bytes("test", crate::resolve::EMBEDDED_IRIS.into()),
            Settings::default(),
            None,
            std::sync::Arc::new(serve_tract::Tract),
        )
        .unwrap();
        let rows: toml::Table = "input = [5.1, 3.5, 1.4, 0.2]".parse().unwrap();
        registry
            .add(Model::new(core).with_example(Some(&rows)).unwrap())
            .unwrap();
        let manifest = crate::manifest::parse(manifest_route, std::path::Path::new("t")).unwrap();
        let routes = manifest
            .routes
            .iter()
            .map(|r| Route::compile(r, &registry).unwrap())
            .collect();
        Inner {
            registry,
            routes,
            grpc: true,
            explicit: false,
            unloaded: Vec::new(),
            auth: false,
        }
    }

    const ROUTE: &str = "[[route]]\npath = \"/predict\"\n[route.inputs]\n\
                         input = [\"sepal_length\", \"sepal_width\", \"petal_length\", \"petal_width\"]\n\
                         [route.outputs]\nspecies = \"label\"\n\
                         [route.example]\nsepal_length = 5.1\nsepal_width = 3.5\n\
                         petal_length = 1.4\npetal_width = 0.2\n";

    #[test]
    fn the_page_names_models_inputs_routes_and_has_a_form_each() {
        let page = render(&app("iris", ROUTE), "http://example.test:8000");
        for needle in [
            "<title>serve ",
            env!("CARGO_PKG_VERSION"),
            "data-model=\"iris\"",
            "<span class=\"tag\">model · version 1 · on tract</span>",
            "<tr data-name=\"input\"><td><code>input</code></td><td>FP32</td><td>[-1, 4]</td>",
            "<tr data-name=\"probabilities\">",
            "<form class=\"try\" data-path=\"/v2/models/iris/infer\" data-method=\"POST\">",
            "<form class=\"try\" data-path=\"/v1/models/iris:predict\" data-method=\"POST\">",
            "<form class=\"try\" data-path=\"/predict\" data-method=\"POST\">",
            "<tr data-key=\"sepal_width\">",
            "<tr data-key=\"species\">",
            "<span class=\"origin\">http://example.test:8000</span>/v2/models/iris/infer",
            "&quot;data&quot;: [5.1, 3.5, 1.4, 0.2]",
            "{&quot;sepal_length&quot;: 5.1, &quot;sepal_width&quot;: 3.5",
            "<button type=\"submit\">Send</button>",
            "<pre class=\"answer\"",
            "<pre class=\"curl grpcurl\">grpcurl -plaintext -d",
            "&quot;fp32_contents&quot;:[5.1,3.5,1.4,0.2]",
            "<span class=\"host\">example.test:8000</span> inference.GRPCInferenceService/ModelInfer",
        ] {
            assert!(page.contains(needle), "missing {needle}");
        }
        assert_eq!(page.matches("<form class=\"try\"").count(), 3);
        assert!(
            !page.contains("src=\"http") && !page.contains("href=\"http"),
            "nothing from elsewhere"
        );
    }

    #[test]
    fn user_names_are_escaped() {
        let route = "[[route]]\npath = \"/a<b>&'\\\"\"\n[route.inputs]\n\
                     input = [\"<k>\", \"b\", \"c\", \"d\"]\n";
        let page = render(&app("<script>x", route), "http://h");
        assert!(!page.contains("<script>x"), "a model name is escaped");
        assert!(page.contains("data-model=\"&lt;script&gt;x\""));
        assert!(!page.contains("/a<b>"), "a path is escaped");
        assert!(page.contains("data-path=\"/a&lt;b&gt;&amp;&#39;&quot;\""));
        assert!(page.contains("<code>&lt;k&gt;</code>"));
        // The curl line quotes the path for the shell, then for HTML.
        assert!(page.contains("&#39;/a&lt;b&gt;&amp;&#39;\\&#39;&#39;&quot;&#39;"));
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn the_origin_is_the_host_the_client_used_and_nothing_else() {
        let req = |host: &str, proto: Option<&str>| {
            let mut r = http::Request::builder().uri("/").header("host", host);
            if let Some(p) = proto {
                r = r.header("x-forwarded-proto", p);
            }
            r.body(bytes::Bytes::new()).unwrap()
        };
        assert_eq!(
            origin(&req("a.test:81", None)).as_deref(),
            Some("http://a.test:81")
        );
        assert_eq!(
            origin(&req("[::1]:8000", Some("https"))).as_deref(),
            Some("https://[::1]:8000")
        );
        assert_eq!(origin(&req("a\"><script>", None)), None);
    }
}
