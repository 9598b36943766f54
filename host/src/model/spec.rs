//! Where a chat model comes from: a local file or an HTTP endpoint, written
//! as one string on the command line and in run configs.

use std::path::{Path, PathBuf};

use super::http::{HttpModel, HttpSettings};
use super::{ChatModel, ModelError, default_model_path, load_chat_model};

/// A chat model to load or connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpec {
    /// The default model, downloaded into the cache folder when missing.
    Default,
    /// A `.gguf` or `.safetensors` file, or a Hugging Face model folder.
    Local(PathBuf),
    /// An OpenAI-compatible endpoint: `BASE_URL#MODEL`, such as
    /// `http://127.0.0.1:8080/v1#smollm2`; without `#MODEL` the model name
    /// sent is `default`.
    Http { base_url: String, model: String },
}

impl ModelSpec {
    /// Parses `default`, an `http://` or `https://` URL with an optional
    /// `#MODEL`, or else a file path.
    pub fn parse(text: &str) -> Self {
        if text == "default" {
            return ModelSpec::Default;
        }
        if text.starts_with("http://") || text.starts_with("https://") {
            let (base_url, model) = text.split_once('#').unwrap_or((text, "default"));
            return ModelSpec::Http {
                base_url: base_url.trim_end_matches('/').to_string(),
                model: model.to_string(),
            };
        }
        ModelSpec::Local(PathBuf::from(text))
    }

    /// Returns the spec of an optional model path, where `None` is the
    /// default model.
    pub fn from_path(path: Option<&Path>) -> Self {
        match path {
            None => ModelSpec::Default,
            Some(path) => Self::parse(&path.to_string_lossy()),
        }
    }

    /// Returns the local file, downloading the default model if needed;
    /// `None` for an endpoint.
    pub fn local_path(&self) -> Result<Option<PathBuf>, ModelError> {
        match self {
            ModelSpec::Default => default_model_path().map(Some),
            ModelSpec::Local(path) => Ok(Some(path.clone())),
            ModelSpec::Http { .. } => Ok(None),
        }
    }

    /// Returns a string that names this model in cache keys and run files.
    pub fn identity(&self) -> String {
        match self {
            ModelSpec::Default => "default".to_string(),
            ModelSpec::Local(path) => path.display().to_string(),
            ModelSpec::Http { base_url, model } => format!("{base_url}#{model}"),
        }
    }

    /// Loads the local model or connects to the endpoint.
    pub fn open(&self, http: &HttpSettings) -> Result<Box<dyn ChatModel>, ModelError> {
        match self {
            ModelSpec::Http { base_url, model } => Ok(Box::new(HttpModel::new(base_url, model, http.clone())?)),
            local => {
                let path = local.local_path()?.expect("local specs have a path");
                load_chat_model(&path)
            }
        }
    }
}

/// A model that is loaded or connected on its first request, so a run whose
/// plugins never call the model does not pay for loading it.
pub struct LazyModel {
    spec: ModelSpec,
    http: HttpSettings,
    name: String,
    model: Option<Box<dyn ChatModel>>,
}

impl LazyModel {
    pub fn new(spec: ModelSpec, http: HttpSettings) -> Self {
        let name = spec.identity();
        Self {
            spec,
            http,
            name,
            model: None,
        }
    }

    fn model(&mut self) -> Result<&mut dyn ChatModel, ModelError> {
        if self.model.is_none() {
            tracing::info!(model = %self.spec, "loading the evaluator model");
            self.model = Some(self.spec.open(&self.http)?);
        }
        Ok(self.model.as_mut().expect("loaded above").as_mut())
    }
}

impl ChatModel for LazyModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn generate(
        &mut self,
        messages: &[super::Message],
        sampling: &super::Sampling,
    ) -> Result<Vec<super::Generation>, ModelError> {
        self.model()?.generate(messages, sampling)
    }

    fn logprobs(&mut self, messages: &[super::Message], continuation: &str) -> Result<Vec<f32>, ModelError> {
        self.model()?.logprobs(messages, continuation)
    }
}

impl std::fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.identity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_with_model_name() {
        assert_eq!(
            ModelSpec::parse("http://127.0.0.1:8080/v1/#smollm2"),
            ModelSpec::Http {
                base_url: "http://127.0.0.1:8080/v1".into(),
                model: "smollm2".into()
            }
        );
    }

    #[test]
    fn endpoint_without_model_name() {
        let ModelSpec::Http { model, .. } = ModelSpec::parse("https://api.example.com/v1") else {
            panic!("not an endpoint");
        };
        assert_eq!(model, "default");
    }

    #[test]
    fn paths_and_default() {
        assert_eq!(ModelSpec::parse("default"), ModelSpec::Default);
        assert_eq!(ModelSpec::parse("m.gguf"), ModelSpec::Local("m.gguf".into()));
        assert_eq!(ModelSpec::from_path(None), ModelSpec::Default);
    }
}
