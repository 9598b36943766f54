//! The `wow:plugin/host` imports: model access and logging for plugins.

use super::bindings::host::{self, Generation, Level, Sampling};
use super::bindings::types::{self, Message};
use super::sandbox::PluginState;
use super::validate;
use crate::model::{self, ChatModel, ModelError};

/// Largest `n` a plugin may request in one `generate` call.
const MAX_SAMPLES_PER_REQUEST: u32 = 64;

/// Largest `max-tokens` a plugin may request.
const MAX_TOKENS_PER_SAMPLE: u32 = 4096;

/// Most texts a plugin may embed in one `embed` call.
const MAX_TEXTS_PER_EMBED: usize = 256;

/// Most distinct counter names one plugin handle may create with `tally`,
/// and the longest name, in bytes; further names are dropped with a warning.
const MAX_TALLY_NAMES: usize = 64;
const MAX_TALLY_NAME_BYTES: usize = 64;

impl types::Host for PluginState {}

impl host::Host for PluginState {
    fn generate(&mut self, messages: Vec<Message>, sampling: Sampling) -> Result<Vec<Generation>, String> {
        check_sampling(&sampling)?;
        let messages = to_model_messages(messages);
        let sampling = model::Sampling {
            temperature: sampling.temperature,
            top_p: sampling.top_p,
            max_tokens: sampling.max_tokens,
            n: sampling.n,
            seed: sampling.seed,
        };

        let generations = self.with_model(|model| model.generate(&messages, &sampling))?;
        Ok(generations
            .into_iter()
            .map(|g| Generation {
                text: g.text,
                token_nll: g.token_nll,
            })
            .collect())
    }

    fn logprobs(&mut self, messages: Vec<Message>, continuation: String) -> Result<Vec<f32>, String> {
        let messages = to_model_messages(messages);
        self.with_model(|model| model.logprobs(&messages, &continuation))
    }

    fn embed(&mut self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, String> {
        if texts.len() > MAX_TEXTS_PER_EMBED {
            return Err(format!(
                "at most {MAX_TEXTS_PER_EMBED} texts per embed call, got {}",
                texts.len()
            ));
        }
        self.in_host(|state| {
            let embedder = state
                .embedder
                .as_ref()
                .ok_or("this run has no embedding model for plugins to call")?;
            embedder.get()?.embed(&texts).map_err(|e| e.to_string())
        })
    }

    fn setting(&mut self, name: String) -> Option<String> {
        self.scope.settings.get(&name).cloned()
    }

    fn tally(&mut self, name: String, count: u32) {
        let Ok(mut tallies) = self.scope.tallies.lock() else {
            return;
        };
        let known = tallies.contains_key(&name);
        if !known && (tallies.len() >= MAX_TALLY_NAMES || name.len() > MAX_TALLY_NAME_BYTES) {
            tracing::warn!(
                plugin = %self.plugin,
                "dropping counter {:?}: at most {MAX_TALLY_NAMES} counters of at most {MAX_TALLY_NAME_BYTES} bytes",
                validate::truncate(name, MAX_TALLY_NAME_BYTES)
            );
            return;
        }
        *tallies.entry(name).or_default() += u64::from(count);
    }

    fn log(&mut self, level: Level, message: String) {
        self.log_lines += 1;
        if self.log_lines > self.max_log_lines {
            if self.log_lines == self.max_log_lines + 1 {
                tracing::warn!(plugin = %self.plugin, "plugin log limit reached; dropping further lines of this call");
            }
            return;
        }

        let plugin = &*self.plugin;
        match level {
            Level::Error => tracing::error!(target: "wow::plugin", plugin, "{message}"),
            Level::Warn => tracing::warn!(target: "wow::plugin", plugin, "{message}"),
            Level::Info => tracing::info!(target: "wow::plugin", plugin, "{message}"),
            Level::Debug => tracing::debug!(target: "wow::plugin", plugin, "{message}"),
            Level::Trace => tracing::trace!(target: "wow::plugin", plugin, "{message}"),
        }
    }
}

fn check_sampling(sampling: &Sampling) -> Result<(), String> {
    if sampling.n == 0 || sampling.n > MAX_SAMPLES_PER_REQUEST {
        return Err(format!(
            "n must be in 1..={MAX_SAMPLES_PER_REQUEST}, got {}",
            sampling.n
        ));
    }
    if sampling.max_tokens > MAX_TOKENS_PER_SAMPLE {
        return Err(format!(
            "max-tokens must be at most {MAX_TOKENS_PER_SAMPLE}, got {}",
            sampling.max_tokens
        ));
    }
    if !(sampling.temperature.is_finite() && sampling.temperature >= 0.0) {
        return Err(format!(
            "temperature must be finite and non-negative, got {}",
            sampling.temperature
        ));
    }
    if !(sampling.top_p > 0.0 && sampling.top_p <= 1.0) {
        return Err(format!("top-p must be in (0, 1], got {}", sampling.top_p));
    }
    Ok(())
}

fn to_model_messages(messages: Vec<Message>) -> Vec<model::Message> {
    messages.into_iter().map(model::Message::from).collect()
}

impl PluginState {
    /// Runs `call` on the run's model as a host import, so its time does not
    /// count as guest time, and turns every failure into the guest's error.
    fn with_model<R>(&mut self, call: impl FnOnce(&mut dyn ChatModel) -> Result<R, ModelError>) -> Result<R, String> {
        self.in_host(|state| {
            let model = state
                .model
                .as_ref()
                .ok_or("this run has no model for plugins to call")?;
            let mut model = model
                .lock()
                .map_err(|_| "the model is unavailable after an earlier failure")?;
            call(model.as_mut()).map_err(|e| e.to_string())
        })
    }
}

impl From<Message> for model::Message {
    fn from(message: Message) -> Self {
        Self {
            role: message.role,
            content: message.content,
        }
    }
}
