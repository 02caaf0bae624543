//! What `APP` names: a model file, a model repository, an app directory, or nothing.
//!
//! - `model.onnx` / `iris.onnx`: one model, named after the file's stem, except that a file
//!   called `model.onnx` takes its directory's name (`examples/iris/model.onnx` is `iris`);
//! - a directory: its `app.toml` if it has one; its models are the manifest's `[[model]]`
//!   entries, or else every `NAME.onnx`, `NAME/model.onnx` and Triton model directory
//!   (`NAME/VERSION/model.onnx`, `NAME/config.pbtxt`: see [`crate::triton`]) in it;
//! - a Triton model directory: that model, in the versions its policy selects;
//! - `NAME/VERSION/model.onnx`, a file of a Triton layout: model NAME, version VERSION;
//! - an `app.toml` file: the same, for its directory;
//! - nothing: the iris model embedded in the binary.
//!
//! Resolution only finds files; [`serve_runtime::model::Model::open`] then reads each one's
//! metadata. Errors are one line naming the path and the cause, since the master prints
//! them before exiting 4.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::executor::Settings;
use crate::manifest::{self, Manifest, ModelEntry, RouteEntry};
use crate::source::Source;
use serve_runtime::io_error::io_cause;

/// The iris model of `examples/iris`, compiled in so that `serve` alone serves something.
pub static EMBEDDED_IRIS: &[u8] = include_bytes!("../../../examples/iris/model.onnx");

/// The embedded iris's example: the first row of the iris data set (a setosa, label 0),
/// what `examples/iris/app.toml` gives too.
fn embedded_iris_example() -> toml::Table {
    let row = [5.1, 3.5, 1.4, 0.2].map(toml::Value::Float);
    let mut example = toml::Table::new();
    example.insert("input".into(), toml::Value::Array(row.to_vec()));
    example
}

/// The version a model answers as when the manifest names none.
pub use serve_runtime::model::DEFAULT_VERSION;

/// A manifest's version: a non-empty path segment (Triton's are numbers; any such text is
/// accepted, as `/v2/models/NAME/versions/V` can carry it).
fn check_version(v: &str) -> Result<String, String> {
    if v.is_empty() || v.contains('/') || v.chars().any(char::is_whitespace) {
        return Err(format!(
            "version \"{v}\" must be one path segment (e.g. 2 or \"2024-06\")"
        ));
    }
    Ok(v.to_string())
}

/// A model to open.
#[derive(Debug)]
pub struct ModelSpec {
    /// Its name.
    pub name: String,
    /// Its bytes.
    pub source: Source,
    /// Its executor's settings.
    pub settings: Settings,
    /// The version it answers as (`model_version`); "1" unless the manifest says otherwise.
    pub version: String,
    /// The manifest's `[model.example]` (one row per input, by name), if any.
    pub example: Option<toml::Table>,
    /// The engine its manifest entry names; `None`: `--engine`'s.
    pub engine: Option<serve_settings::kinds::EngineName>,
    /// Its Triton `config.pbtxt`, if it has one.
    pub config: Option<Arc<crate::triton::Config>>,
}

/// What an APP resolved to.
#[derive(Debug)]
pub struct AppSpec {
    /// The models, in a stable order.
    pub models: Vec<ModelSpec>,
    /// The manifest's routes.
    pub routes: Vec<RouteEntry>,
    /// The manifest file, if any.
    pub manifest: Option<PathBuf>,
    /// Under `--model-control explicit`: the repository's models that are not loaded, by
    /// name (the repository index lists them as UNAVAILABLE). Empty otherwise.
    pub unloaded: Vec<String>,
}

/// Resolves APP; `defaults` are the command line's executor settings.
pub fn resolve(app: Option<&Path>, defaults: &Settings) -> Result<AppSpec, String> {
    let Some(app) = app else {
        return Ok(AppSpec {
            models: vec![ModelSpec {
                name: "iris".into(),
                source: Source::Bytes("embedded iris", bytes::Bytes::from_static(EMBEDDED_IRIS)),
                settings: defaults.clone(),
                version: DEFAULT_VERSION.into(),
                example: Some(embedded_iris_example()),
                engine: None,
                config: None,
            }],
            routes: vec![],
            manifest: None,
            unloaded: Vec::new(),
        });
    };
    let md = std::fs::metadata(app).map_err(|e| format!("{}: {}", app.display(), io_cause(&e)))?;
    if md.is_dir() {
        let toml = app.join("app.toml");
        if toml.is_file() {
            return from_manifest(&toml, defaults);
        }
        if crate::triton::is_model_dir(app) {
            return Ok(AppSpec {
                models: crate::triton::model_dir(app, None, None, defaults)?,
                routes: vec![],
                manifest: None,
                unloaded: Vec::new(),
            });
        }
        return Ok(AppSpec {
            models: scan(app, defaults)?,
            routes: vec![],
            manifest: None,
            unloaded: Vec::new(),
        });
    }
    match app.extension().and_then(|e| e.to_str()) {
        Some("onnx") => Ok(AppSpec {
            models: vec![ModelSpec {
                name: file_model_name(app)?,
                source: Source::read_file(app.to_path_buf())?,
                settings: defaults.clone(),
                version: file_version(app).unwrap_or_else(|| DEFAULT_VERSION.into()),
                example: None,
                engine: None,
                config: None,
            }],
            routes: vec![],
            manifest: None,
            unloaded: Vec::new(),
        }),
        Some("toml") => from_manifest(app, defaults),
        _ => Err(format!(
            "{}: not a model (expected an .onnx file, a directory or an app.toml)",
            app.display()
        )),
    }
}

fn from_manifest(file: &Path, defaults: &Settings) -> Result<AppSpec, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("{}: {}", file.display(), io_cause(&e)))?;
    let Manifest { models, routes } = manifest::parse(&text, file)?;
    let dir = file.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let models = if models.is_empty() {
        scan(dir, defaults)?
    } else {
        let single = models.len() == 1;
        let mut specs = Vec::new();
        for entry in &models {
            specs.extend(manifest_model(file, dir, entry, single, defaults)?);
        }
        specs
    };
    Ok(AppSpec {
        models,
        routes,
        manifest: Some(file.to_path_buf()),
        unloaded: Vec::new(),
    })
}

fn manifest_model(
    file: &Path,
    dir: &Path,
    entry: &ModelEntry,
    single: bool,
    defaults: &Settings,
) -> Result<Vec<ModelSpec>, String> {
    let path = match (&entry.path, &entry.name) {
        (Some(p), _) => dir.join(p),
        (None, Some(name)) => {
            let candidates = [
                dir.join(format!("{name}.onnx")),
                dir.join(name).join("model.onnx"),
            ];
            let fallback = single.then(|| dir.join("model.onnx"));
            let triton = Some(dir.join(name)).filter(|d| crate::triton::is_model_dir(d));
            candidates
                .into_iter()
                .filter(|p| p.is_file())
                .chain(triton)
                .chain(fallback.filter(|p| p.is_file()))
                .next()
                .ok_or_else(|| {
                    format!(
                        "{}: model \"{name}\" has no path and neither {name}.onnx, \
                         {name}/model.onnx nor {name}/VERSION/model.onnx exists",
                        file.display()
                    )
                })?
        }
        (None, None) => {
            return Err(format!(
                "{}: a [[model]] needs a name or a path",
                file.display()
            ));
        }
    };
    let name = match &entry.name {
        Some(n) => Some(check_name(n).map_err(|e| format!("{}: {e}", file.display()))?),
        None => None,
    };
    let version = match &entry.version {
        Some(v) => {
            Some(check_version(&v.to_string()).map_err(|e| format!("{}: {e}", file.display()))?)
        }
        None => None,
    };
    // The manifest's keys win over the configuration's and the command line's.
    let keys = |base: &Settings| Settings {
        max_batch_size: entry.max_batch_size.unwrap_or(base.max_batch_size),
        batch_timeout: entry
            .batch_timeout_us
            .map_or(base.batch_timeout, Duration::from_micros),
        max_queue: entry.max_queue.unwrap_or(base.max_queue),
        inline_below: base.inline_below,
        measure: base.measure,
        batch_dim: entry.batch.unwrap_or(base.batch_dim),
    };
    let mut specs = if path.is_dir() && crate::triton::is_model_dir(&path) {
        crate::triton::model_dir(&path, name.as_deref(), version.as_deref(), defaults)
            .map_err(|e| format!("{}: {e}", file.display()))?
    } else {
        vec![ModelSpec {
            name: match name {
                Some(n) => n,
                None => file_model_name(&path)?,
            },
            version: version
                .or_else(|| file_version(&path))
                .unwrap_or_else(|| DEFAULT_VERSION.into()),
            source: Source::read_file(path)?,
            settings: defaults.clone(),
            example: None,
            engine: None,
            config: None,
        }]
    };
    for spec in &mut specs {
        spec.settings = keys(&spec.settings);
        spec.example = entry.example.clone();
        spec.engine = entry.engine;
    }
    Ok(specs)
}

/// Every `NAME.onnx`, `NAME/model.onnx` and Triton model directory of a directory, in
/// name order.
fn scan(dir: &Path, defaults: &Settings) -> Result<Vec<ModelSpec>, String> {
    let found = candidates(dir)?;
    if found.is_empty() {
        return Err(format!(
            "{}: no models found (expected NAME.onnx, NAME/model.onnx, \
             NAME/VERSION/model.onnx or an app.toml)",
            dir.display()
        ));
    }
    let mut specs = Vec::new();
    for (_, p) in found {
        specs.extend(read_candidate(p, defaults, None)?);
    }
    Ok(specs)
}

/// The models a directory holds, by name and path, in path order, none of them read: each
/// `NAME.onnx`, `NAME/model.onnx` (the file) and Triton model directory (the directory).
fn candidates(dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("{}: {}", dir.display(), io_cause(&e)))?;
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in entries.flatten() {
        let p = entry.path();
        if p.is_dir() {
            let inner = p.join("model.onnx");
            if crate::triton::is_model_dir(&p) {
                paths.push(p);
            } else if inner.is_file() {
                paths.push(inner);
            }
        } else if p.extension().is_some_and(|e| e == "onnx") {
            paths.push(p);
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let name = if p.is_dir() {
                check_name(&dir_name(&p)).map_err(|e| format!("{}: {e}", p.display()))?
            } else {
                file_model_name(&p)?
            };
            Ok((name, p))
        })
        .collect()
}

/// Reads one model [`candidates`] found: a Triton model directory (with the configuration
/// a load request gave, if any) or a file.
fn read_candidate(
    p: PathBuf,
    defaults: &Settings,
    given: Option<&str>,
) -> Result<Vec<ModelSpec>, String> {
    if p.is_dir() {
        return crate::triton::model_dir_given(&p, None, None, defaults, given);
    }
    if given.is_some() {
        return Err(format!(
            "{}: a load request's config applies to a Triton model directory (NAME/config.pbtxt \
             beside NAME/1/model.onnx), and this model is a file: move it to NAME/1/model.onnx, \
             or load it without config",
            p.display()
        ));
    }
    Ok(vec![ModelSpec {
        name: file_model_name(&p)?,
        source: Source::read_file(p)?,
        settings: defaults.clone(),
        version: DEFAULT_VERSION.into(),
        example: None,
        engine: None,
        config: None,
    }])
}

/// What `--model-control explicit` serves of the repository APP: the models `load` names
/// (`*`: every one), each read with the configuration `configs` gives it, if any; the
/// others are listed as unloaded, not read. An empty repository, or nothing loaded, is a
/// server with no model.
pub fn resolve_explicit(
    app: Option<&Path>,
    defaults: &Settings,
    load: &[String],
    configs: &BTreeMap<String, String>,
) -> Result<AppSpec, String> {
    const LAYOUT: &str = "a repository directory of models (NAME.onnx, NAME/model.onnx or \
                          NAME/VERSION/model.onnx with its config.pbtxt)";
    let Some(dir) = app else {
        return Err(format!(
            "--model-control explicit loads models by name from a repository: give APP, {LAYOUT}"
        ));
    };
    let md = std::fs::metadata(dir).map_err(|e| format!("{}: {}", dir.display(), io_cause(&e)))?;
    if !md.is_dir() || dir.join("app.toml").is_file() || crate::triton::is_model_dir(dir) {
        let what = if !md.is_dir() {
            "a file"
        } else if dir.join("app.toml").is_file() {
            "an app directory (app.toml names its models)"
        } else {
            "one model's Triton directory"
        };
        return Err(format!(
            "{}: --model-control explicit loads models by name from a repository, and this is \
             {what}: give {LAYOUT}, or drop --model-control explicit",
            dir.display()
        ));
    }
    let found = candidates(dir)?;
    let all = load.iter().any(|n| n == "*");
    for name in load.iter().filter(|n| *n != "*") {
        if !found.iter().any(|(n, _)| n == name) {
            let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
            return Err(format!(
                "model {name:?} is not in the repository {} (it holds {}): put it there as \
                 {name}.onnx or {name}/1/model.onnx",
                dir.display(),
                if names.is_empty() {
                    "no model".to_string()
                } else {
                    names.join(", ")
                }
            ));
        }
    }
    let mut models = Vec::new();
    let mut unloaded = Vec::new();
    for (name, p) in found {
        if all || load.contains(&name) {
            models.extend(read_candidate(
                p,
                defaults,
                configs.get(&name).map(String::as_str),
            )?);
        } else if !unloaded.contains(&name) {
            unloaded.push(name);
        }
    }
    Ok(AppSpec {
        models,
        routes: vec![],
        manifest: None,
        unloaded,
    })
}

/// A directory's own name (of its absolute path, so that `.` has one).
pub(crate) fn dir_name(dir: &Path) -> String {
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    abs.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("model")
        .to_string()
}

/// The version of a file in a Triton layout (`iris/3/model.onnx` is version 3).
fn file_version(path: &Path) -> Option<String> {
    let abs = std::path::absolute(path).ok()?;
    let version = abs.parent()?.file_name()?.to_str()?;
    let numbered = !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit());
    (numbered && abs.parent()?.parent()?.file_name().is_some()).then(|| version.to_string())
}

/// The model name a file gives: its stem, or its directory's name for `model.onnx` (the
/// directory above a numbered one: `iris/3/model.onnx` is iris, version 3).
pub fn file_model_name(path: &Path) -> Result<String, String> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let name = if stem == "model" {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let parent = abs.parent().unwrap_or(Path::new("model"));
        let named = match file_version(path) {
            Some(_) => parent.parent().unwrap_or(parent),
            None => parent,
        };
        dir_name(named)
    } else {
        stem.to_string()
    };
    check_name(&name).map_err(|e| format!("{}: {e}", path.display()))
}

/// A name that fits in a URL path segment as it is.
pub(crate) fn check_name(name: &str) -> Result<String, String> {
    let bad = |c: char| c.is_whitespace() || c.is_control() || "/:?#%\\\"".contains(c);
    if name.is_empty() || name.chars().any(bad) {
        return Err(format!(
            "\"{name}\" cannot be a model name (it must fit in a URL: no spaces, '/', ':', '?', \
             '#' or '%')"
        ));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::TempDir;

    fn names(spec: &AppSpec) -> Vec<&str> {
        spec.models.iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn nothing_is_the_embedded_iris() {
        let spec = resolve(None, &Settings::default()).unwrap();
        assert_eq!(names(&spec), ["iris"]);
    }

    #[test]
    fn a_file_named_model_takes_its_directory_name() {
        let d = TempDir::new("file");
        let p = d.file("iris/model.onnx", b"x");
        assert_eq!(
            names(&resolve(Some(&p), &Settings::default()).unwrap()),
            ["iris"]
        );
        let q = d.file("other.onnx", b"x");
        assert_eq!(
            names(&resolve(Some(&q), &Settings::default()).unwrap()),
            ["other"]
        );
    }

    #[test]
    fn a_directory_is_a_repository() {
        let d = TempDir::new("repo");
        d.file("b.onnx", b"x");
        d.file("a/model.onnx", b"x");
        d.file("notes.txt", b"x");
        d.file("empty/readme", b"x");
        let spec = resolve(Some(&d.0), &Settings::default()).unwrap();
        assert_eq!(names(&spec), ["a", "b"]);
    }

    #[test]
    fn an_app_directory_follows_its_manifest() {
        let d = TempDir::new("app");
        d.file("model.onnx", b"x");
        d.file(
            "app.toml",
            b"[[model]]\nname = \"titanic\"\nmax_batch_size = 8\n[[route]]\npath = \"/model\"\n",
        );
        let spec = resolve(Some(&d.0), &Settings::default()).unwrap();
        assert_eq!(names(&spec), ["titanic"]);
        assert_eq!(spec.models[0].settings.max_batch_size, 8);
        assert_eq!(spec.routes[0].path, "/model");
        let via_file = resolve(Some(&d.0.join("app.toml")), &Settings::default()).unwrap();
        assert_eq!(names(&via_file), ["titanic"]);
    }

    #[test]
    fn a_manifest_without_models_scans_its_directory() {
        let d = TempDir::new("scan");
        d.file("x.onnx", b"x");
        d.file("app.toml", b"");
        assert_eq!(
            names(&resolve(Some(&d.0), &Settings::default()).unwrap()),
            ["x"]
        );
    }

    #[test]
    fn a_triton_layout_is_read_by_versions() {
        let d = TempDir::new("triton");
        d.file("iris/1/model.onnx", b"x");
        d.file("iris/2/model.onnx", b"x");
        d.file("iris/10/other.onnx", b"x");
        d.file("b.onnx", b"x");
        d.file("padded/01/model.onnx", b"x");
        let spec = resolve(Some(&d.0), &Settings::default()).unwrap();
        assert_eq!(names(&spec), ["b", "iris", "padded"]);
        assert_eq!(spec.models[1].version, "2");
        assert_eq!(
            spec.models[2].version, "1",
            "01/ is version 1, as Triton reads it"
        );
        std::fs::remove_dir_all(d.0.join("padded")).unwrap();
        // A manifest names the model, and may name one version; its keys win.
        d.file(
            "app.toml",
            b"[[model]]\nname = \"iris\"\nversion = 1\nmax_batch_size = 4\n",
        );
        let spec = resolve(Some(&d.0), &Settings::default()).unwrap();
        assert_eq!(names(&spec), ["iris"]);
        assert_eq!(spec.models[0].version, "1");
        assert_eq!(spec.models[0].settings.max_batch_size, 4);
        d.file("app.toml", b"[[model]]\nname = \"iris\"\nversion = 3\n");
        let e = resolve(Some(&d.0), &Settings::default()).unwrap_err();
        assert!(e.contains("version 3 has no directory 3/"), "{e}");
        // config.pbtxt's batching becomes the settings.
        std::fs::remove_file(d.0.join("app.toml")).unwrap();
        d.file(
            "iris/config.pbtxt",
            b"max_batch_size: 16\ndynamic_batching { max_queue_delay_microseconds: 250 }\n\
              version_policy: { all { } }",
        );
        d.file("plain/config.pbtxt", b"max_batch_size: 4\n");
        d.file("plain/7/model.onnx", b"x");
        let spec = resolve(Some(&d.0), &Settings::default()).unwrap();
        let iris: Vec<&ModelSpec> = spec.models.iter().filter(|m| m.name == "iris").collect();
        assert_eq!(iris.len(), 2);
        assert_eq!(iris[0].version, "2");
        assert_eq!(iris[0].settings.max_batch_size, 16);
        assert_eq!(iris[0].settings.batch_timeout, Duration::from_micros(250));
        assert!(iris[0].settings.batch_dim);
        // Without dynamic_batching, Triton runs requests one by one.
        let plain = spec.models.iter().find(|m| m.name == "plain").unwrap();
        assert_eq!(plain.settings.max_batch_size, 1);
        d.file("plain/config.pbtxt", b"max_batch_size: 0\n");
        let spec = resolve(Some(&d.0), &Settings::default()).unwrap();
        let plain = spec.models.iter().find(|m| m.name == "plain").unwrap();
        assert!(
            !plain.settings.batch_dim,
            "max_batch_size 0 is batch = false"
        );
    }

    #[test]
    fn errors_name_the_path_and_the_cause() {
        let d = TempDir::new("errors");
        let e = resolve(Some(&d.0.join("nope.onnx")), &Settings::default()).unwrap_err();
        assert!(e.ends_with("nope.onnx: no such file"), "{e}");
        let e = resolve(Some(&d.0), &Settings::default()).unwrap_err();
        assert!(e.contains("no models found"), "{e}");
        let t = d.file("notes.txt", b"x");
        let e = resolve(Some(&t), &Settings::default()).unwrap_err();
        assert!(e.contains("not a model"), "{e}");
        let bad = d.file("my model.onnx", b"x");
        let e = resolve(Some(&bad), &Settings::default()).unwrap_err();
        assert!(e.contains("cannot be a model name"), "{e}");
        d.file(
            "app.toml",
            b"[[model]]\nname = \"ghost\"\n[[model]]\nname = \"x\"\n",
        );
        let e = resolve(Some(&d.0), &Settings::default()).unwrap_err();
        assert!(e.contains("model \"ghost\" has no path"), "{e}");
    }
}
