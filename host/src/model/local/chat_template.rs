//! Chat templates (Jinja, as in Hugging Face `tokenizer_config.json` and
//! GGUF `tokenizer.chat_template`) rendered with minijinja.

use crate::model::{Message, ModelError};
use minijinja::{Environment, Error, ErrorKind, context};

const TEMPLATE_NAME: &str = "chat";

/// A compiled chat template with the special-token strings it may reference.
#[derive(Debug)]
pub struct ChatTemplate {
    environment: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Compiles `source` with the settings of Hugging Face `transformers`
    /// (`trim_blocks`, `lstrip_blocks`, a `raise_exception` function).
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, ModelError> {
        let mut environment = Environment::new();
        environment.set_trim_blocks(true);
        environment.set_lstrip_blocks(true);
        environment.add_function("raise_exception", |message: String| -> Result<String, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, message))
        });
        // TODO: Python string methods (`.strip()`, `.split()`) need minijinja-contrib's pycompat callback.
        environment
            .add_template_owned(TEMPLATE_NAME, source.to_string())
            .map_err(template_error)?;
        Ok(Self {
            environment,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        })
    }

    /// Renders the conversation with the assistant turn opened
    /// (`add_generation_prompt=true`).
    pub fn render(&self, messages: &[Message]) -> Result<String, ModelError> {
        let template = self.environment.get_template(TEMPLATE_NAME).map_err(template_error)?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => true,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(template_error)
    }
}

fn template_error(error: Error) -> ModelError {
    ModelError::Template(format!("{error:#}"))
}
