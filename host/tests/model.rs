//! Tests of the local model back-end on the real default model (SmolLM2-135M
//! Instruct, Q4_1), fetched once into the cache directory when missing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

use candle_core::{DType, Device, Tensor};
use wow::model::{ChatModel, ChatTemplate, LocalModel, Message, Sampling, default_model_path};

/// The reference Hugging Face tokenizer files of SmolLM2-135M-Instruct.
const REFERENCE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/smollm2");

/// Loads the default model once for all tests of this binary.
fn model() -> MutexGuard<'static, LocalModel> {
    static MODEL: OnceLock<Mutex<LocalModel>> = OnceLock::new();
    let model = MODEL.get_or_init(|| {
        let path = default_model_path().expect("default model is available");
        Mutex::new(LocalModel::load(&path).expect("default model loads"))
    });
    model.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn reference_file(name: &str) -> PathBuf {
    let path = Path::new(REFERENCE_DIR).join(name);
    assert!(path.is_file(), "reference file {} not found", path.display());
    path
}

fn sampling(temperature: f32, n: u32, max_tokens: u32, seed: u64) -> Sampling {
    Sampling {
        temperature,
        top_p: 0.95,
        max_tokens,
        n,
        seed,
    }
}

fn question(text: &str) -> Vec<Message> {
    vec![Message::new("user", text)]
}

const TOKENIZER_CASES: &[&str] = &[
    "",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "  leading spaces and trailing   ",
    "tabs\tand\nnewlines\n\n\nand \r\n crlf",
    "1234567890 3.14159 -42 1e10 2+2=4",
    "naïve café über straße — “quotes” ‘single’",
    "日本語のテキストと中文文本",
    "emoji 😀🎉👍🏽 and 🇫🇷 flags",
    "Привет, мир! Γειά σου κόσμε",
    "code: fn main() { println!(\"hi\"); } // comment",
    "it's they're we'll I'd you've",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>text<|im_end|>",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n",
];

#[test]
fn tokenizer_matches_reference_ids() {
    let reference =
        tokenizers::Tokenizer::from_file(reference_file("tokenizer.json")).expect("reference tokenizer loads");
    let model = model();
    for &text in TOKENIZER_CASES {
        let expected = reference
            .encode(text, false)
            .expect("reference encodes")
            .get_ids()
            .to_vec();
        let actual = model.encode(text).expect("text encodes");
        assert_eq!(actual, expected, "token ids differ for {text:?}");
    }
    assert_eq!(model.tokenizer().get_vocab_size(true), reference.get_vocab_size(true));
}

#[test]
fn tokenizer_round_trips_text() {
    let model = model();
    for &text in TOKENIZER_CASES {
        let ids = model.encode(text).expect("text encodes");
        assert_eq!(model.decode(&ids).expect("ids decode"), text);
    }
}

#[test]
fn chat_template_matches_reference() {
    let model = model();
    let source = std::fs::read_to_string(reference_file("chat_template.jinja")).expect("reference template reads");
    let reference = ChatTemplate::new(&source, "<|im_start|>", "<|im_end|>").expect("reference template compiles");
    let conversations = [
        vec![Message::new("system", "Be brief."), Message::new("user", "Hi")],
        question("What is 2+2?"),
        vec![
            Message::new("user", "Hi"),
            Message::new("assistant", "Hello!"),
            Message::new("user", "Bye"),
        ],
    ];
    for messages in &conversations {
        let actual = model.chat_template().render(messages).expect("template renders");
        assert_eq!(actual, reference.render(messages).expect("reference renders"));
    }
}

#[test]
fn chat_template_renders_expected_string() {
    let model = model();
    let messages = [
        Message::new("system", "Be brief."),
        Message::new("user", "What is 2+2?"),
    ];
    let expected =
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n";
    assert_eq!(
        model.chat_template().render(&messages).expect("template renders"),
        expected
    );

    let with_default_system = model.chat_template().render(&question("Hi")).expect("template renders");
    let expected = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
                    <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
    assert_eq!(with_default_system, expected);
}

#[test]
fn greedy_generation_is_sensible_and_deterministic() {
    let mut model = model();
    let request = sampling(0.0, 1, 24, 0);
    let first = model
        .generate(&question("What is 2+2?"), &request)
        .expect("generation runs");
    let second = model
        .generate(&question("What is 2+2?"), &request)
        .expect("generation runs");
    assert_eq!(first.len(), 1);
    assert!(first[0].text.contains('4'), "unexpected answer {:?}", first[0].text);
    assert!(
        !first[0].text.contains("<|im_end|>"),
        "stop token leaked into {:?}",
        first[0].text
    );
    assert_eq!(first, second);
}

#[test]
fn seeded_sample_is_independent_of_n() {
    let mut model = model();
    let messages = question("Write one sentence about the sea.");
    let alone = model
        .generate(&messages, &sampling(0.9, 1, 16, 11))
        .expect("generation runs");
    let batch = model
        .generate(&messages, &sampling(0.9, 4, 16, 11))
        .expect("generation runs");
    let pair = model
        .generate(&messages, &sampling(0.9, 2, 16, 11))
        .expect("generation runs");
    assert_eq!(batch.len(), 4);
    assert_eq!(alone[0], batch[0]);
    assert_eq!(pair[1], batch[1]);
    assert_ne!(
        batch[0].text, batch[1].text,
        "different indices should draw different samples"
    );
}

#[test]
fn token_nlls_match_logprobs() {
    let mut model = model();
    let messages = question("Name a colour.");
    let generation = model
        .generate(&messages, &sampling(0.8, 1, 12, 3))
        .expect("generation runs")
        .remove(0);
    assert!(!generation.token_nll.is_empty());
    for &nll in &generation.token_nll {
        assert!(nll.is_finite(), "NLL {nll} is not finite");
        assert!(nll >= 0.0, "NLL {nll} is negative");
    }

    let logprobs = model.logprobs(&messages, &generation.text).expect("logprobs run");
    assert_eq!(
        logprobs.len(),
        generation.token_nll.len(),
        "re-tokenized text {:?} has another length",
        generation.text
    );
    // Decode steps use the quantized weights and `logprobs` their f32
    // dequantization, so only the summation order differs.
    for (logprob, nll) in logprobs.iter().zip(&generation.token_nll) {
        assert!((logprob + nll).abs() < 1e-2, "logprob {logprob} vs NLL {nll}");
    }
}

#[test]
fn f32_decode_matches_prompt_logprobs() {
    let mut model = model();
    model.set_quantized_decode(false);
    let prompt = model.encode_prompt(&question("Name a fruit.")).expect("prompt encodes");
    let result = model.sample_tokens(&prompt, &sampling(1.0, 1, 8, 5));
    model.set_quantized_decode(true);
    let sample = result.expect("generation runs").remove(0);
    let logprobs = model.logprobs_from_ids(&prompt, &sample.tokens).expect("logprobs run");
    assert_eq!(logprobs.len(), sample.token_nll.len());
    for (logprob, nll) in logprobs.iter().zip(&sample.token_nll) {
        assert!((logprob + nll).abs() < 1e-3, "logprob {logprob} vs NLL {nll}");
    }
}

#[test]
fn empty_request_returns_nothing() {
    let mut model = model();
    assert!(
        model
            .generate(&question("Hi"), &sampling(1.0, 0, 8, 0))
            .expect("generation runs")
            .is_empty()
    );
    let zero_tokens = model
        .generate(&question("Hi"), &sampling(1.0, 2, 0, 0))
        .expect("generation runs");
    assert!(zero_tokens.iter().all(|g| g.text.is_empty() && g.token_nll.is_empty()));
}

/// Writes a random two-layer llama in the Hugging Face layout, with the
/// default model's tokenizer, and returns the `model.safetensors` path.
fn write_tiny_llama(directory: &Path, model: &LocalModel) -> PathBuf {
    let (hidden, intermediate, heads, kv_heads, layers) = (32, 64, 4, 2, 2);
    let vocab = model.tokenizer().get_vocab_size(true);
    let head_dim = hidden / heads;
    let random = |shape: &[usize]| {
        Tensor::randn(0f32, 0.1, shape, &Device::Cpu)
            .expect("random tensor")
            .to_dtype(DType::BF16)
            .expect("bf16")
    };
    let ones = |size: usize| Tensor::ones(size, DType::BF16, &Device::Cpu).expect("ones");
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    tensors.insert("model.embed_tokens.weight".into(), random(&[vocab, hidden]));
    tensors.insert("model.norm.weight".into(), ones(hidden));
    for i in 0..layers {
        let prefix = format!("model.layers.{i}");
        tensors.insert(
            format!("{prefix}.self_attn.q_proj.weight"),
            random(&[heads * head_dim, hidden]),
        );
        tensors.insert(
            format!("{prefix}.self_attn.k_proj.weight"),
            random(&[kv_heads * head_dim, hidden]),
        );
        tensors.insert(
            format!("{prefix}.self_attn.v_proj.weight"),
            random(&[kv_heads * head_dim, hidden]),
        );
        tensors.insert(
            format!("{prefix}.self_attn.o_proj.weight"),
            random(&[hidden, heads * head_dim]),
        );
        tensors.insert(
            format!("{prefix}.mlp.gate_proj.weight"),
            random(&[intermediate, hidden]),
        );
        tensors.insert(format!("{prefix}.mlp.up_proj.weight"), random(&[intermediate, hidden]));
        tensors.insert(
            format!("{prefix}.mlp.down_proj.weight"),
            random(&[hidden, intermediate]),
        );
        tensors.insert(format!("{prefix}.input_layernorm.weight"), ones(hidden));
        tensors.insert(format!("{prefix}.post_attention_layernorm.weight"), ones(hidden));
    }
    let weights = directory.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &weights).expect("weights save");

    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "vocab_size": vocab,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "max_position_embeddings": 256,
        "tie_word_embeddings": true,
    });
    std::fs::write(directory.join("config.json"), config.to_string()).expect("config writes");
    let template = std::fs::read_to_string(reference_file("chat_template.jinja")).expect("template reads");
    let tokenizer_config = serde_json::json!({
        "chat_template": template,
        "bos_token": "<|im_start|>",
        "eos_token": {"content": "<|im_end|>"},
    });
    std::fs::write(directory.join("tokenizer_config.json"), tokenizer_config.to_string())
        .expect("tokenizer config writes");
    model
        .tokenizer()
        .save(directory.join("tokenizer.json"), false)
        .expect("tokenizer saves");
    weights
}

#[test]
fn safetensors_tiny_llama_loads_and_runs() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let weights = write_tiny_llama(directory.path(), &model());
    let mut tiny = LocalModel::load(&weights).expect("tiny llama loads");
    assert_eq!(tiny.config().num_layers, 2);

    let generations = tiny
        .generate(&question("Hi"), &sampling(1.0, 3, 5, 9))
        .expect("generation runs");
    assert_eq!(generations.len(), 3);
    for &nll in generations.iter().flat_map(|g| &g.token_nll) {
        assert!(nll.is_finite(), "NLL {nll} is not finite");
        assert!(nll >= 0.0, "NLL {nll} is negative");
    }
    let by_directory = LocalModel::load(directory.path()).expect("directory loads");
    assert_eq!(by_directory.config(), tiny.config());

    // The f32-only model decodes with the same kernels as `logprobs`.
    let prompt = tiny.encode_prompt(&question("Hi")).expect("prompt encodes");
    let sample = tiny
        .sample_tokens(&prompt, &sampling(1.0, 1, 5, 9))
        .expect("generation runs")
        .remove(0);
    let logprobs = tiny.logprobs_from_ids(&prompt, &sample.tokens).expect("logprobs run");
    assert_eq!(logprobs.len(), sample.token_nll.len());
    for (logprob, nll) in logprobs.iter().zip(&sample.token_nll) {
        assert!((logprob + nll).abs() < 1e-3, "logprob {logprob} vs NLL {nll}");
    }
}
