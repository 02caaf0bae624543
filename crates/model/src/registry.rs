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
    /// Its index in the shared metrics (registered by the master under its name).
    pub metric: serve_app::ModelId,
}

impl Model {
    /// The protocols' view of a runtime model.
    pub fn new(core: serve_runtime::model::Model) -> Model {
        Model {
            by_name: RecordSpec::by_name(&core.meta),
            examples: ModelExamples::placeholders(&core.meta),
            metric: serve_app::metrics::model_id(&core.name),
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

impl Deref for Model {
    type Target = Arc<serve_runtime::model::Model>;

    fn deref(&self) -> &Self::Target {
        &self.core
    }
}

/// The app's models by name. Built once, read-only afterwards: no lock on lookups.
#[derive(Default)]
pub struct Registry {
    models: Vec<Arc<Model>>,
    by_name: HashMap<String, usize>,
}

impl Registry {
    /// Adds a model; two models of one name are an error.
    pub fn add(&mut self, model: Model) -> Result<(), String> {
        if self.by_name.contains_key(&model.name) {
            return Err(format!("two models are named \"{}\"", model.name));
        }
        self.by_name.insert(model.name.clone(), self.models.len());
        self.models.push(Arc::new(model));
        Ok(())
    }

    /// The model of this name.
    pub fn get(&self, name: &str) -> Option<&Arc<Model>> {
        self.by_name.get(name).map(|&i| &self.models[i])
    }

    /// Every model, in the order they were added.
    pub fn models(&self) -> &[Arc<Model>] {
        &self.models
    }

    /// The names, for messages.
    pub fn names(&self) -> String {
        crate::metadata::quoted_list(self.models.iter().map(|m| m.name.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::Settings;
    use crate::fixtures;
    use crate::source::Source;

    #[test]
    fn duplicate_names_are_refused() {
        let mut r = Registry::default();
        let open = || {
            Model::new(
                serve_runtime::model::Model::open(
                    "iris".into(),
                    Source::Bytes("test", fixtures::iris_like().into()),
                    Settings::default(),
                    None,
                    std::sync::Arc::new(serve_tract::Tract),
                )
                .unwrap(),
            )
        };
        r.add(open()).unwrap();
        assert!(r.add(open()).unwrap_err().contains("two models"));
        assert!(r.get("iris").is_some());
        assert!(r.get("nope").is_none());
    }
}
