//! Triton's model repository layout, read as Triton reads it: a model is a directory
//! `NAME/` with numbered version directories `NAME/VERSION/model.onnx` (or the configuration's
//! `default_model_filename`) and, optionally, `NAME/config.pbtxt`. The configuration's
//! version policy chooses the versions served (the latest one by default); its batching,
//! inputs and outputs are checked against the model and become its settings.
//!
//! What serve takes of a `config.pbtxt`:
//! - `max_batch_size`: 0, the model has no batch dimension (as `batch = false`); N, the
//!   first dimension is the batch, and `dynamic_batching` merges requests up to N rows per
//!   call (`max_queue_delay_microseconds` is the batching delay); without
//!   `dynamic_batching`, as Triton, requests run one by one;
//! - `input` / `output`: each must be one of the model's, of its datatype and its
//!   dimensions (without the batch dimension when `max_batch_size` > 0; -1 is any size);
//! - `platform` / `backend`: ONNX only (`onnxruntime_onnx`, `onnxruntime`), the engine
//!   being serve's (`--engine`, or app.toml's `engine`);
//! - `version_policy`, `name` (which must be the directory's), `default_model_filename`;
//! - the fields serve cannot honour (instance groups, optimization, warmup, ...) are logged
//!   once, by name, when the repository is read.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serve_triton::ModelConfig;

use crate::executor::Settings;
use crate::metadata::{ModelMeta, TensorMeta};
use crate::resolve::ModelSpec;
use crate::source::Source;
use serve_runtime::io_error::io_cause;

/// The configuration file of a model directory.
pub const CONFIG_FILE: &str = "config.pbtxt";

/// The model file of a version directory when the configuration names none.
const DEFAULT_FILE: &str = "model.onnx";

/// A model's `config.pbtxt`, as read.
#[derive(Debug)]
pub struct Config {
    /// The configuration.
    pub config: ModelConfig,
    /// Its file, for messages.
    pub file: PathBuf,
    /// The lines of each output's `label_filename` (classification's labels), by output.
    pub labels: Vec<(String, Vec<String>)>,
}

/// Whether `dir` is a Triton model directory: it has a `config.pbtxt`, or a numbered
/// directory holding `model.onnx`.
pub fn is_model_dir(dir: &Path) -> bool {
    dir.join(CONFIG_FILE).is_file() || !versions_in(dir, DEFAULT_FILE).is_empty()
}

/// The numbered directories of `dir` that hold `file`: each version and its directory's
/// name (`01` is version 1, as Triton reads it).
fn versions_in(dir: &Path, file: &str) -> Vec<(u64, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let name = name.to_str()?;
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let version = name.parse::<u64>().ok()?;
            e.path()
                .join(file)
                .is_file()
                .then(|| (version, name.to_owned()))
        })
        .collect()
}

/// The models of Triton model directory `dir`: one per version its policy selects (highest
/// first), named `name` (the manifest's) or the directory's name. `only`: the one version
/// the manifest names, instead of the policy's.
pub fn model_dir(
    dir: &Path,
    name: Option<&str>,
    only: Option<&str>,
    defaults: &Settings,
) -> Result<Vec<ModelSpec>, String> {
    model_dir_given(dir, name, only, defaults, None)
}

/// [`model_dir`], with the configuration a load request gave (`given`, in Triton's JSON
/// form or the text form) in place of the directory's `config.pbtxt`.
pub fn model_dir_given(
    dir: &Path,
    name: Option<&str>,
    only: Option<&str>,
    defaults: &Settings,
    given: Option<&str>,
) -> Result<Vec<ModelSpec>, String> {
    let dir_name = crate::resolve::dir_name(dir);
    let config_path = dir.join(CONFIG_FILE);
    let read = |config: ModelConfig, file: PathBuf| -> Result<_, String> {
        let labels = label_files(dir, &config, &file)?;
        Ok(Some(Arc::new(Config {
            config,
            file,
            labels,
        })))
    };
    let config = if let Some(text) = given {
        // Named so in every message: "…/iris/config.pbtxt (the load request's config)".
        let file = PathBuf::from(format!(
            "{} (the load request's config)",
            config_path.display()
        ));
        let config =
            serve_triton::parse_given(text).map_err(|e| format!("{}: {e}", file.display()))?;
        read(config, file)?
    } else if config_path.is_file() {
        let text = std::fs::read_to_string(&config_path)
            .map_err(|e| format!("{}: {}", config_path.display(), io_cause(&e)))?;
        let config =
            serve_triton::parse(&text).map_err(|e| format!("{}: {e}", config_path.display()))?;
        read(config, config_path)?
    } else {
        None
    };
    if let Some(c) = &config {
        check_header(c, &dir_name)?;
        let fields = serve_triton::unhonoured_fields(&c.config);
        if !fields.is_empty() {
            tracing::warn!(
                "{}: serve does not honour {} (it reads max_batch_size, dynamic_batching's \
                 delay, version_policy, input, output, default_model_filename and \
                 label_filename); they have no effect",
                c.file.display(),
                fields.join(", ")
            );
        }
    }
    let file = config
        .as_ref()
        .map(|c| c.config.default_model_filename.as_str())
        .filter(|f| !f.is_empty())
        .unwrap_or(DEFAULT_FILE);
    let found = versions_in(dir, file);
    let available: Vec<u64> = found.iter().map(|(v, _)| *v).collect();
    let versions = match only {
        Some(v) => match v.parse::<u64>().ok().filter(|v| available.contains(v)) {
            Some(v) => vec![v],
            None => {
                return Err(format!(
                    "{}: version {v} has no directory {v}/ holding {file}",
                    dir.display()
                ));
            }
        },
        None => serve_triton::select_versions(config.as_ref().map(|c| &c.config), &available)
            .map_err(|e| {
                let at = config.as_ref().map_or_else(
                    || dir.display().to_string(),
                    |c| c.file.display().to_string(),
                );
                format!("{at}: {e} (each version is a directory holding {file}, as 1/{file})")
            })?,
    };
    let name = match name {
        Some(n) => n.to_owned(),
        None => {
            crate::resolve::check_name(&dir_name).map_err(|e| format!("{}: {e}", dir.display()))?
        }
    };
    let settings = match &config {
        Some(c) => settings(&c.config, defaults),
        None => defaults.clone(),
    };
    let subdir = |v: u64| {
        found
            .iter()
            .find(|(n, _)| *n == v)
            .map_or_else(|| v.to_string(), |(_, d)| d.clone())
    };
    versions
        .into_iter()
        .map(|v| {
            Ok(ModelSpec {
                name: name.clone(),
                source: Source::read_file(dir.join(subdir(v)).join(file))?,
                settings: settings.clone(),
                version: v.to_string(),
                example: None,
                engine: None,
                config: config.clone(),
            })
        })
        .collect()
}

/// Reads the outputs' `label_filename`s (one label per line, relative to the model's
/// directory, as Triton reads them).
fn label_files(
    dir: &Path,
    config: &ModelConfig,
    at: &Path,
) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut labels = Vec::new();
    for output in config
        .output
        .iter()
        .filter(|o| !o.label_filename.is_empty())
    {
        let file = dir.join(&output.label_filename);
        let text = std::fs::read_to_string(&file).map_err(|e| {
            format!(
                "{}: output \"{}\": label_filename {}: {}",
                at.display(),
                output.name,
                file.display(),
                io_cause(&e)
            )
        })?;
        labels.push((
            output.name.clone(),
            text.lines().map(str::to_owned).collect(),
        ));
    }
    Ok(labels)
}

/// What a configuration must say for serve to run its model: its directory's name, and an
/// ONNX platform or backend.
fn check_header(c: &Config, dir_name: &str) -> Result<(), String> {
    let at = c.file.display();
    let config = &c.config;
    if !config.name.is_empty() && config.name != dir_name {
        return Err(format!(
            "{at}: name \"{}\" is not the model's directory \"{dir_name}\"; Triton requires \
             them equal: rename one",
            config.name
        ));
    }
    if !matches!(config.platform.as_str(), "" | "onnxruntime_onnx") {
        return Err(format!(
            "{at}: platform \"{}\" is not ONNX; serve runs ONNX models only (platform \
             \"onnxruntime_onnx\", or none): export the model to ONNX",
            config.platform
        ));
    }
    if !matches!(config.backend.as_str(), "" | "onnxruntime") {
        return Err(format!(
            "{at}: backend \"{}\" is not ONNX; serve runs ONNX models only (backend \
             \"onnxruntime\", or none): export the model to ONNX",
            config.backend
        ));
    }
    Ok(())
}

/// The executor's settings a configuration gives (see the module's doc).
fn settings(config: &ModelConfig, defaults: &Settings) -> Settings {
    let mut settings = defaults.clone();
    if config.max_batch_size <= 0 {
        settings.batch_dim = false;
        return settings;
    }
    settings.batch_dim = true;
    match serve_triton::dynamic_batching(config) {
        Some(batching) => {
            settings.max_batch_size = config.max_batch_size as usize;
            settings.batch_timeout = Duration::from_micros(batching.max_queue_delay_microseconds);
        }
        None => settings.max_batch_size = 1,
    }
    settings
}

/// Checks a configuration's inputs and outputs against the model's metadata: each names a
/// tensor of the model, of its datatype and dimensions. The error names both sides.
pub fn check(c: &Config, meta: &ModelMeta) -> Result<(), String> {
    let batched = c.config.max_batch_size > 0;
    let tensors = c
        .config
        .input
        .iter()
        .map(|i| ("input", &i.name, i.data_type, &i.dims, i.reshape.is_some()))
        .chain(
            c.config
                .output
                .iter()
                .map(|o| ("output", &o.name, o.data_type, &o.dims, o.reshape.is_some())),
        );
    for (kind, name, data_type, dims, reshaped) in tensors {
        let list = if kind == "input" {
            &meta.inputs
        } else {
            &meta.outputs
        };
        let at = format!("{}: {kind} \"{name}\"", c.file.display());
        let Some(t) = list.iter().find(|t| &t.name == name) else {
            let names: Vec<&str> = list.iter().map(|t| t.name.as_str()).collect();
            return Err(format!(
                "{at} is not an {kind} of the model (its {kind}s: {})",
                names.join(", ")
            ));
        };
        if let Some(expected) = serve_triton::v2_datatype(data_type)
            && expected != t.datatype.as_str()
        {
            return Err(format!(
                "{at}: data_type {} but the model's is {} ({})",
                serve_triton::pb::DataType::try_from(data_type).map_or("?", |d| d.as_str_name()),
                serve_triton::data_type(t.datatype.as_str()).as_str_name(),
                t.datatype.as_str()
            ));
        }
        if !reshaped {
            check_dims(&at, dims, t, batched)?;
        }
    }
    Ok(())
}

fn check_dims(at: &str, dims: &[i64], t: &TensorMeta, batched: bool) -> Result<(), String> {
    if t.shape.is_none() {
        // A file that declares no rank: nothing to check against.
        return Ok(());
    }
    let full = t.shape_i64();
    let model: &[i64] = if batched {
        match full.split_first() {
            Some((_, rest)) => rest,
            None => {
                return Err(format!(
                    "{at}: max_batch_size > 0 but the model's tensor has no dimension to batch \
                     (its shape is []); set max_batch_size: 0"
                ));
            }
        }
    } else {
        &full
    };
    let fits = model.len() == dims.len()
        && model
            .iter()
            .zip(dims)
            .all(|(&m, &d)| m < 0 || d < 0 || m == d);
    if fits {
        return Ok(());
    }
    let list = |d: &[i64]| {
        let d: Vec<String> = d.iter().map(i64::to_string).collect();
        format!("[{}]", d.join(", "))
    };
    let without = if batched {
        format!(
            " (without the batch dimension, as max_batch_size > 0 reads dims: {})",
            list(model)
        )
    } else {
        String::new()
    };
    Err(format!(
        "{at}: dims {} but the model's shape is {}{without}",
        list(dims),
        list(&full)
    ))
}

/// The model's configuration as the configuration extension answers it
/// (`GET /v2/models/NAME/config`, gRPC's ModelConfig): its `config.pbtxt` with what serve fills in (the name,
/// the platform the metadata says, the engine as the backend, the inputs and outputs it did
/// not list), or, without one, what serve knows of the model.
pub fn config(model: &crate::registry::Model) -> ModelConfig {
    let mut config = model
        .config
        .as_ref()
        .map(|c| c.config.clone())
        .unwrap_or_else(|| ModelConfig {
            max_batch_size: if model.settings.batch_dim {
                model.settings.max_batch_size as i32
            } else {
                0
            },
            ..ModelConfig::default()
        });
    config.name = model.name.clone();
    config.platform = crate::v2::PLATFORM.to_owned();
    config.backend = model.engine().name().to_owned();
    let batched = config.max_batch_size > 0;
    let dims = |t: &TensorMeta| {
        let shape = t.shape_i64();
        if batched && !shape.is_empty() {
            shape[1..].to_vec()
        } else {
            shape
        }
    };
    for t in &model.meta.inputs {
        if !config.input.iter().any(|i| i.name == t.name) {
            config.input.push(serve_triton::pb::ModelInput {
                name: t.name.clone(),
                data_type: serve_triton::data_type(t.datatype.as_str()) as i32,
                dims: dims(t),
                ..Default::default()
            });
        }
    }
    for t in &model.meta.outputs {
        if !config.output.iter().any(|o| o.name == t.name) {
            config.output.push(serve_triton::pb::ModelOutput {
                name: t.name.clone(),
                data_type: serve_triton::data_type(t.datatype.as_str()) as i32,
                dims: dims(t),
                ..Default::default()
            });
        }
    }
    config
}
