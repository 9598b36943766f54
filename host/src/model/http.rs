//! A chat model behind an OpenAI-compatible `/chat/completions` endpoint
//! (vLLM, llama.cpp's server, TGI, OpenAI), used as a generator or judge.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ChatModel, Generation, Message, ModelError, Sampling};

/// Connection settings of HTTP model back-ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Environment variable holding the API key, sent as a bearer token
    /// when it is set and non-empty.
    pub api_key_var: String,
    /// Requests in flight at once per back-end.
    pub concurrency: usize,
    /// Seconds one request may take, connection included.
    pub timeout_secs: f64,
    /// Retries of a request after a connection error, a timeout, 429 or 5xx.
    pub max_retries: u32,
    /// Wait before the first retry, in seconds; doubled at each retry and
    /// capped at 30 s. A `Retry-After` header takes precedence.
    pub backoff_secs: f64,
    /// Requests per-token log-probabilities (`logprobs: true`), which give
    /// each response its mean NLL.
    pub logprobs: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            api_key_var: "OPENAI_API_KEY".into(),
            concurrency: 4,
            timeout_secs: 120.0,
            max_retries: 4,
            backoff_secs: 1.0,
            logprobs: true,
        }
    }
}

/// Maximum wait between two retries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Bytes of an error response body quoted in error messages.
const ERROR_BODY_BYTES: usize = 300;

/// An OpenAI-compatible chat-completions endpoint.
pub struct HttpModel {
    name: String,
    url: String,
    model: String,
    api_key: Option<String>,
    settings: HttpSettings,
    client: reqwest::blocking::Client,
}

impl HttpModel {
    /// Connects lazily to `base_url` (such as `http://127.0.0.1:8080/v1`)
    /// for model `model`; nothing is sent until the first request.
    pub fn new(base_url: &str, model: &str, settings: HttpSettings) -> Result<Self, ModelError> {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs_f64(settings.timeout_secs))
            .build()
            .map_err(|e| http_error(base_url, format!("failed to create the HTTP client: {e}")))?;
        let api_key = std::env::var(&settings.api_key_var).ok().filter(|key| !key.is_empty());
        Ok(Self {
            name: format!("{model}@{base_url}"),
            url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            model: model.to_string(),
            api_key,
            settings,
            client,
        })
    }

    /// Sends one request for one response, with retries.
    fn complete(&self, messages: &[Message], sampling: &Sampling, seed: u64) -> Result<Generation, ModelError> {
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "seed": seed,
            "n": 1,
        });
        if self.settings.logprobs {
            // llama.cpp's Python server returns log-probabilities only when
            // `top_logprobs` is set too.
            body["logprobs"] = json!(true);
            body["top_logprobs"] = json!(1);
        }
        let reply = self.post_with_retries(&body)?;
        parse_completion(&reply).map_err(|message| http_error(&self.url, message))
    }

    fn post_with_retries(&self, body: &Value) -> Result<Value, ModelError> {
        let mut attempt = 0;
        loop {
            match self.post(body) {
                Ok(reply) => return Ok(reply),
                Err(Failure::Fatal(message)) => return Err(http_error(&self.url, message)),
                Err(Failure::Retryable { message, retry_after }) => {
                    if attempt >= self.settings.max_retries {
                        return Err(http_error(
                            &self.url,
                            format!("{message} (gave up after {} retries)", self.settings.max_retries),
                        ));
                    }
                    let wait = retry_after.unwrap_or_else(|| self.backoff(attempt));
                    tracing::warn!(url = %self.url, attempt = attempt + 1, wait_secs = wait.as_secs_f32(), "retrying: {message}");
                    std::thread::sleep(wait);
                    attempt += 1;
                }
            }
        }
    }

    fn post(&self, body: &Value) -> Result<Value, Failure> {
        let mut request = self.client.post(&self.url).json(body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().map_err(|e| Failure::Retryable {
            message: format!("request failed: {e}"),
            retry_after: None,
        })?;

        let status = response.status();
        let retry_after = retry_after(response.headers());
        let text = response.text().map_err(|e| Failure::Retryable {
            message: format!("reading the response failed: {e}"),
            retry_after: None,
        })?;
        if status.is_success() {
            return serde_json::from_str(&text)
                .map_err(|e| Failure::Fatal(format!("invalid JSON in the response: {e}")));
        }

        let message = format!("HTTP {status}: {}", snippet(&text));
        if status.as_u16() == 429 || status.is_server_error() {
            Err(Failure::Retryable { message, retry_after })
        } else {
            Err(Failure::Fatal(message))
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let seconds = self.settings.backoff_secs * 2f64.powi(attempt as i32);
        Duration::from_secs_f64(seconds.max(0.0)).min(MAX_BACKOFF)
    }
}

/// Failure of one request.
enum Failure {
    /// Worth sending again: no connection, a timeout, 429 or 5xx.
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Sending again would fail the same way: 4xx or an invalid reply.
    Fatal(String),
}

impl ChatModel for HttpModel {
    fn name(&self) -> &str {
        &self.name
    }

    /// Sends one request per response, at most `concurrency` at a time,
    /// because many servers ignore `n`. Response `i` carries seed
    /// `(seed, i)`, so servers that honour seeds sample reproducibly.
    fn generate(&mut self, messages: &[Message], sampling: &Sampling) -> Result<Vec<Generation>, ModelError> {
        let n = sampling.n as usize;
        let results: Vec<Mutex<Option<Result<Generation, ModelError>>>> = (0..n).map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        let workers = self.settings.concurrency.clamp(1, n.max(1));

        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        let result = self.complete(messages, sampling, response_seed(sampling.seed, i as u32));
                        *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
                    }
                });
            }
        });

        results
            .into_iter()
            .map(|slot| {
                slot.into_inner()
                    .unwrap_or_else(|e| e.into_inner())
                    .expect("every response index was requested")
            })
            .collect()
    }

    fn logprobs(&mut self, _messages: &[Message], _continuation: &str) -> Result<Vec<f32>, ModelError> {
        // TODO: score continuations through `/completions` with `echo` on
        // servers that support it; chat completions cannot.
        Err(ModelError::Unsupported(format!(
            "{} cannot score a given continuation over chat completions; use a local model for plugins that need logprobs",
            self.name
        )))
    }
}

/// Derives the seed of response `index` from the request seed.
fn response_seed(seed: u64, index: u32) -> u64 {
    seed.wrapping_add(u64::from(index).wrapping_mul(0x9E37_79B9_7F4A_7C15)) & (i64::MAX as u64)
}

/// Reads the text and, when present, the token log-probabilities of the
/// first choice of a chat-completions reply.
fn parse_completion(reply: &Value) -> Result<Generation, String> {
    let choice = reply
        .get("choices")
        .and_then(|choices| choices.get(0))
        .ok_or("the reply has no choices")?;
    let text = choice
        .pointer("/message/content")
        .and_then(Value::as_str)
        .ok_or("the reply's first choice has no message content")?
        .to_string();

    let token_nll = match choice.pointer("/logprobs/content").and_then(Value::as_array) {
        Some(tokens) => tokens
            .iter()
            .map(|token| {
                token
                    .get("logprob")
                    .and_then(Value::as_f64)
                    .map(|logprob| (-logprob) as f32)
                    .ok_or("a logprobs entry has no numeric `logprob`")
            })
            .collect::<Result<Vec<f32>, _>>()?,
        None => Vec::new(),
    };
    Ok(Generation { text, token_nll })
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds: f64 = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds).min(MAX_BACKOFF))
}

fn snippet(text: &str) -> String {
    let trimmed = text.trim();
    match trimmed.char_indices().nth(ERROR_BODY_BYTES) {
        Some((end, _)) => format!("{}...", &trimmed[..end]),
        None => trimmed.to_string(),
    }
}

fn http_error(url: &str, message: String) -> ModelError {
    ModelError::Http {
        url: url.to_string(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_with_logprobs() {
        let reply = json!({"choices": [{"message": {"role": "assistant", "content": "Hi"},
            "logprobs": {"content": [{"token": "H", "logprob": -0.5}, {"token": "i", "logprob": -1.5}]}}]});
        let generation = parse_completion(&reply).unwrap();
        assert_eq!(generation.text, "Hi");
        assert_eq!(generation.token_nll, vec![0.5, 1.5]);
    }

    #[test]
    fn completion_without_logprobs() {
        let reply = json!({"choices": [{"message": {"content": "Hi"}, "logprobs": null}]});
        assert!(parse_completion(&reply).unwrap().token_nll.is_empty());
    }

    #[test]
    fn completion_without_choices_is_an_error() {
        assert!(parse_completion(&json!({"error": "x"})).is_err());
        assert!(parse_completion(&json!({"choices": [{"message": {}}]})).is_err());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let model = HttpModel::new("http://127.0.0.1:9/v1", "m", HttpSettings::default()).unwrap();
        assert_eq!(model.backoff(0), Duration::from_secs(1));
        assert_eq!(model.backoff(2), Duration::from_secs(4));
        assert_eq!(model.backoff(10), MAX_BACKOFF);
    }

    #[test]
    fn response_seeds_differ_and_fit_i64() {
        let seeds: Vec<u64> = (0..4).map(|i| response_seed(u64::MAX, i)).collect();
        assert!(seeds.iter().all(|&s| s <= i64::MAX as u64));
        assert_ne!(seeds[0], seeds[1]);
    }
}
