//! Typed access to the functions the host exposes: the evaluator model, the
//! sentence encoder and the run log.
//!
//! Outside WebAssembly (native unit tests of plugin logic) there is no host:
//! [`generate`], [`logprobs`] and [`embed`] return an error and [`log`]
//! writes to standard error, so logic that logs stays testable natively.

use crate::Message;
use crate::bindings::task_world::wow::plugin::host as wit;

pub use wit::{Generation, Level, Sampling};

/// Error returned by the model functions outside WebAssembly.
#[cfg(not(target_arch = "wasm32"))]
const NO_HOST: &str = "no wow host: model calls work only inside a wasm32 component";

/// Samples `sampling.n` chat completions from the run's evaluator model.
///
/// Each [`Generation`] carries the text and the negative log-likelihood of
/// each generated token, in nats. The error is the host's message.
pub fn generate(messages: &[Message], sampling: Sampling) -> Result<Vec<Generation>, String> {
    #[cfg(target_arch = "wasm32")]
    return wit::generate(messages, sampling);
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (messages, sampling);
        Err(NO_HOST.to_owned())
    }
}

/// Returns the log-probability, in nats, of each token of `continuation`
/// when it follows the chat prompt built from `messages`.
pub fn logprobs(messages: &[Message], continuation: &str) -> Result<Vec<f32>, String> {
    #[cfg(target_arch = "wasm32")]
    return wit::logprobs(messages, continuation);
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (messages, continuation);
        Err(NO_HOST.to_owned())
    }
}

/// Returns one unit-length sentence embedding per text (all-MiniLM-L6-v2,
/// 384 dimensions), so the dot product of two is their cosine similarity.
pub fn embed(texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
    #[cfg(target_arch = "wasm32")]
    return wit::embed(texts);
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = texts;
        Err(NO_HOST.to_owned())
    }
}

/// Returns the value of setting `name` that the run gives this plugin, as in
/// `--elicitor score:k=5`, or `None` when it is unset (always outside
/// WebAssembly). Calling it needs the `setting` capability in the manifest.
pub fn setting(name: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    return wit::setting(name);
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = name;
        None
    }
}

/// Parses setting `name` as a `T`, returning `default` when it is unset and
/// an error naming the setting when it does not parse.
pub fn setting_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match setting(name) {
        None => Ok(default),
        Some(value) => value.parse().map_err(|_| format!("invalid setting {name}={value:?}")),
    }
}

/// Adds `count` to the run's counter `name` for this plugin; the host
/// reports the totals beside the plugin's results. Does nothing outside
/// WebAssembly.
pub fn tally(name: &str, count: u32) {
    #[cfg(target_arch = "wasm32")]
    wit::tally(name, count);
    #[cfg(not(target_arch = "wasm32"))]
    let _ = (name, count);
}

/// Writes `message` to the run log at `level`.
///
/// The [`error!`](crate::error), [`warn!`](crate::warn),
/// [`info!`](crate::info), [`debug!`](crate::debug) and
/// [`trace!`](crate::trace) macros format and call this.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    wit::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}
