//! The models of an app by name, each the runtime's model with what the protocols keep
//! beside it.
//!
//! A model's lifecycle (its plan built lazily once, its executor, its readiness) is the
//! runtime's ([`serve_runtime::model`]); this crate adds what only its protocols need (the
//! records spec of V1's instances) and the lookup by name.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::Arc;

use crate::example::ModelExamples;
use crate::records::RecordSpec;

pub use serve_runtime::model::DEFAULT_VERSION;

/// One model of the app, in one worker: the runtime's model (reached through `Deref`:
/// `model.infer(...)`, `model.meta`), and what the protocols keep beside it.
pub struct Model {
    core: Arc<serve_runtime::model::Model>,
    /// Records keyed by input name (V1 instances).
    pub by_name: RecordSpec,
    /// The request bodies the front page and OpenAPI show: placeholders made from the
    /// metadata unless [`Model::with_example`] gave one.
    pub examples: ModelExamples,
    /// Its index in the shared metrics (registered by the master under its name: every
    /// version of a model counts under one).
    pub metric: serve_app::ModelId,
    /// Its Triton `config.pbtxt`, if it has one.
    pub config: Option<Arc<crate::triton::Config>>,
    /// Its version's index in the shared statistics, when the master registered one.
    pub stats: Option<serve_app::metrics::VersionId>,
}

impl Model {
    /// The protocols' view of a runtime model.
    pub fn new(core: serve_runtime::model::Model) -> Model {
        let metric = serve_app::metrics::model_id(&core.name);
        Model {
            by_name: RecordSpec::by_name(&core.meta),
            examples: ModelExamples::placeholders(&core.meta),
            metric,
            stats: serve_app::metrics::version_id(metric, &core.version),
            config: None,
            core: Arc::new(core),
        }
    }

    /// The model with the manifest's `[model.example]` (one row per input), checked by the
    /// decoders; the error names the model and the input, for the start's exit 4.
    pub fn with_example(mut self, rows: Option<&toml::Table>) -> Result<Model, String> {
        if rows.is_some() {
            self.examples = ModelExamples::new(&self.core.meta, rows)
                .map_err(|e| format!("model {}: {e}", self.core.name))?;
        }
        Ok(self)
    }
}

impl Model {
    /// Its version's figures for Triton's statistics extension, exact across workers (the
    /// shared region); zeros when the master registered none for it.
    pub fn statistics(&self) -> serve_app::metrics::VersionStats {
        match (serve_app::metrics::region(), self.stats) {
            (Some(region), Some(v)) => region.version_stats(v),
            _ => Default::default(),
        }
    }
}

impl Deref for Model {
    type Target = Arc<serve_runtime::model::Model>;

    fn deref(&self) -> &Self::Target {
        &self.core
    }
}

/// The app's models by name and version. Built once, read-only afterwards: no lock on
/// lookups.
#[derive(Default)]
pub struct Registry {
    /// Every version of every model, in the order they were added.
    models: Vec<Arc<Model>>,
    /// Each name's versions (indices into `models`), highest first.
    by_name: HashMap<String, Vec<usize>>,
    /// The names, in the order they were first added.
    names: Vec<String>,
}

/// Orders versions as Triton numbers them (numerically), and any other text after them.
fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

impl Registry {
    /// Adds a model; two of one name and version are an error.
    pub fn add(&mut self, model: Model) -> Result<(), String> {
        if self.version(&model.name, &model.version).is_some() {
            return Err(format!(
                "two models are named \"{}\" (version {})",
                model.name, model.version
            ));
        }
        if !self.by_name.contains_key(&model.name) {
            self.names.push(model.name.clone());
        }
        let versions = self.by_name.entry(model.name.clone()).or_default();
        versions.push(self.models.len());
        self.models.push(Arc::new(model));
        let models = &self.models;
        versions.sort_by(|&a, &b| version_order(&models[b].version, &models[a].version));
        Ok(())
    }

    /// The model of this name, in its highest version (what a request that names no
    /// version gets).
    pub fn get(&self, name: &str) -> Option<&Arc<Model>> {
        self.by_name.get(name).map(|v| &self.models[v[0]])
    }

    /// The model of this name in this version.
    pub fn version(&self, name: &str, version: &str) -> Option<&Arc<Model>> {
        self.versions(name).find(|m| m.version == version)
    }

    /// The versions of a model, highest first.
    pub fn versions<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Arc<Model>> + 'a {
        self.by_name
            .get(name)
            .into_iter()
            .flatten()
            .map(|&i| &self.models[i])
    }

    /// Every version of every model, in the order they were added.
    pub fn models(&self) -> &[Arc<Model>] {
        &self.models
    }

    /// Each model's highest version, in the order the names were first added.
    pub fn latest(&self) -> impl Iterator<Item = &Arc<Model>> {
        self.names.iter().filter_map(|n| self.get(n))
    }

    /// The names, for messages.
    pub fn names(&self) -> String {
        crate::metadata::quoted_list(self.names.iter().map(String::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::Settings;
    use crate::fixtures;
    use crate::source::Source;

    /// Iris in this version.
    fn iris(version: &str) -> Model {
        Model::new(
            serve_runtime::model::Model::open(
                "iris".into(),
                Source::Bytes("test", fixtures::iris_like().into()),
                Settings::default(),
                None,
                std::sync::Arc::new(serve_tract::Tract),
            )
            .unwrap()
            .with_version(version.into()),
        )
    }

    #[test]
    fn duplicate_names_are_refused() {
        let mut r = Registry::default();
        r.add(iris("1")).unwrap();
        assert!(r.add(iris("1")).unwrap_err().contains("two models"));
        assert!(r.get("iris").is_some());
        assert!(r.get("nope").is_none());
    }

    #[test]
    fn versions_are_ordered_as_numbers() {
        let mut r = Registry::default();
        for v in ["2", "10", "1"] {
            r.add(iris(v)).unwrap();
        }
        let versions: Vec<&str> = r.versions("iris").map(|m| m.version.as_str()).collect();
        assert_eq!(versions, ["10", "2", "1"]);
        assert_eq!(r.get("iris").unwrap().version, "10");
        assert_eq!(r.version("iris", "2").unwrap().version, "2");
        assert!(r.version("iris", "3").is_none());
        assert_eq!(r.latest().count(), 1);
        assert_eq!(r.names(), "\"iris\"");
    }
}
