//! Tests of preference training: loss gradients against finite differences,
//! DPO's first steps, adapter files, and the training forward pass against the
//! inference model on the real default model.

use candle_core::{DType, Device, Tensor, Var};
use indicatif::ProgressBar;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::AtomicBool;
use wow::align::adapter::{half_to_interleaved_rows, interleaved_to_half_rows, tensor_name};
use wow::align::train::preference_logprobs;
use wow::align::{
    ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, AdapterMode, CheckpointDir, LoraConfig, LoraLlama, LossConfig,
    PeftConfig, PreferenceLoss, Scheduler, TargetModule, TokenizedPair, TrainConfig, Trainer, TrainerState,
    clip_gradient_norm, cosine_learning_rate, evaluate_loss, load_adapter, save_adapter, split_validation,
};
use wow::model::Config;

const ALL_LOSSES: [PreferenceLoss; 6] = [
    PreferenceLoss::Dpo,
    PreferenceLoss::Ipo,
    PreferenceLoss::Hinge,
    PreferenceLoss::SppoHard,
    PreferenceLoss::Simpo,
    PreferenceLoss::Orpo,
];

/// Returns the configuration of a 2-layer llama with hidden size 16, 4 query heads sharing 2 KV heads and
/// a 32-token vocabulary.
fn tiny_config() -> Config {
    Config {
        hidden_size: 16,
        intermediate_size: 32,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 4,
        vocab_size: 32,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        context_length: 64,
        rope_interleaved: true,
    }
}

fn tiny_model(dtype: DType, adapter_seed: u64) -> LoraLlama {
    let lora = LoraConfig {
        rank: 4,
        alpha: 8.0,
        seed: adapter_seed,
        ..LoraConfig::default()
    };
    LoraLlama::random(tiny_config(), lora, 7, dtype, &Device::Cpu).expect("tiny model builds")
}

/// Sets every adapter's `B` to uniform noise in `±0.2`, so that the adapters
/// change the logits and `A` has a non-zero gradient.
fn randomize_b(model: &LoraLlama, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    for (_, _, adapter) in model.adapters() {
        let b = adapter.b.as_tensor();
        let values: Vec<f64> = (0..b.elem_count()).map(|_| rng.random_range(-0.2..0.2)).collect();
        let noise = Tensor::from_vec(values, b.dims(), b.device())
            .unwrap()
            .to_dtype(b.dtype())
            .unwrap();
        adapter.b.set(&noise).unwrap();
    }
}

/// Three pairs of different prompt and response lengths, so the batch is
/// padded.
fn pairs() -> Vec<TokenizedPair> {
    vec![
        TokenizedPair {
            prompt: vec![1, 5, 9, 2],
            chosen: vec![3, 4, 7],
            rejected: vec![8, 8, 30, 12, 6],
        },
        TokenizedPair {
            prompt: vec![1, 17, 2],
            chosen: vec![21, 22, 23, 24],
            rejected: vec![5],
        },
        TokenizedPair {
            prompt: vec![1, 11, 12, 13, 14, 2],
            chosen: vec![9, 10],
            rejected: vec![10, 9, 31],
        },
    ]
}

fn pair_refs(pairs: &[TokenizedPair]) -> Vec<&TokenizedPair> {
    pairs.iter().collect()
}

fn loss_value(model: &LoraLlama, loss: PreferenceLoss, config: &LossConfig, pairs: &[TokenizedPair]) -> Tensor {
    let pairs = pair_refs(pairs);
    let reference = preference_logprobs(model, &pairs, AdapterMode::Off).unwrap();
    let policy = preference_logprobs(model, &pairs, AdapterMode::On).unwrap();
    loss.compute(config, &policy, Some(&reference)).unwrap().loss
}

fn scalar(tensor: &Tensor) -> f64 {
    tensor.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

fn flat_values(var: &Var) -> Vec<f64> {
    var.as_tensor()
        .flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn set_entry(var: &Var, index: usize, value: f64) {
    let mut values = flat_values(var);
    values[index] = value;
    let tensor = Tensor::from_vec(values, var.as_tensor().dims(), &Device::Cpu)
        .unwrap()
        .to_dtype(var.dtype())
        .unwrap();
    var.set(&tensor).unwrap();
}

#[test]
fn loss_gradients_match_finite_differences() {
    let model = tiny_model(DType::F64, 1);
    randomize_b(&model, 2);
    let pairs = pairs();
    let config = LossConfig {
        beta: 0.5,
        simpo_gamma: 0.3,
        orpo_lambda: 0.7,
    };
    let vars = model.trainable_vars();
    let epsilon = 1e-5;

    for loss in ALL_LOSSES {
        let grads = loss_value(&model, loss, &config, &pairs).backward().unwrap();
        let mut largest_gradient: f64 = 0.0;
        // Check A and B of every adapter of both layers at two entries each.
        for (v, var) in vars.iter().enumerate() {
            let gradient: Vec<f64> = grads
                .get(var.as_tensor())
                .expect("every adapter has a gradient")
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let count = gradient.len();
            for index in [v % count, (7 * v + 3) % count] {
                let original = flat_values(var)[index];
                set_entry(var, index, original + epsilon);
                let plus = scalar(&loss_value(&model, loss, &config, &pairs));
                set_entry(var, index, original - epsilon);
                let minus = scalar(&loss_value(&model, loss, &config, &pairs));
                set_entry(var, index, original);
                let numeric = (plus - minus) / (2.0 * epsilon);
                let analytic = gradient[index];
                largest_gradient = largest_gradient.max(analytic.abs());
                assert!(
                    (analytic - numeric).abs() <= 1e-7 + 1e-5 * numeric.abs(),
                    "{loss:?}: variable {v} entry {index}: backprop gradient {analytic}, finite difference {numeric}"
                );
            }
        }
        assert!(
            largest_gradient > 1e-4,
            "{loss:?}: all checked gradients are near zero ({largest_gradient})"
        );
    }
}

#[test]
fn dpo_loss_is_ln2_at_step_zero() {
    let model = tiny_model(DType::F32, 1);
    let output = {
        let pairs = pairs();
        let refs = pair_refs(&pairs);
        let reference = preference_logprobs(&model, &refs, AdapterMode::Off).unwrap();
        let policy = preference_logprobs(&model, &refs, AdapterMode::On).unwrap();
        PreferenceLoss::Dpo
            .compute(&LossConfig::default(), &policy, Some(&reference))
            .unwrap()
    };
    assert!(
        (scalar(&output.loss) - std::f64::consts::LN_2).abs() < 1e-6,
        "loss {}",
        scalar(&output.loss)
    );
    assert_eq!(output.reward_margin, 0.0);
    assert_eq!(output.accuracy, 0.0);
}

#[test]
fn dpo_training_raises_reward_margin() {
    let model = tiny_model(DType::F32, 1);
    let pairs = pairs();
    let config = TrainConfig {
        learning_rate: 1e-2,
        epochs: 6,
        warmup_ratio: 0.0,
        batch_size: 3,
        gradient_accumulation_steps: 1,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(&model, config).unwrap();
    let logs = trainer.train(&model, &pairs).unwrap();

    assert_eq!(logs.len(), 6);
    assert!(
        (logs[0].loss - std::f64::consts::LN_2).abs() < 1e-6,
        "first loss {}",
        logs[0].loss
    );
    for window in logs.windows(2) {
        assert!(
            window[1].reward_margin > window[0].reward_margin,
            "reward margin fell: {logs:?}"
        );
    }
    assert!(logs[5].loss < logs[0].loss, "loss did not fall: {logs:?}");
    assert_eq!(logs[5].accuracy, 1.0, "{logs:?}");
}

#[test]
fn reference_free_training_lowers_loss() {
    for loss in [PreferenceLoss::Simpo, PreferenceLoss::Orpo] {
        let model = tiny_model(DType::F32, 1);
        let config = TrainConfig {
            loss,
            learning_rate: 1e-2,
            epochs: 4,
            warmup_ratio: 0.0,
            batch_size: 3,
            gradient_accumulation_steps: 1,
            ..TrainConfig::default()
        };
        let logs = Trainer::new(&model, config).unwrap().train(&model, &pairs()).unwrap();
        assert!(logs[3].loss < logs[0].loss, "{loss:?}: {logs:?}");
    }
}

#[test]
fn gradient_accumulation_matches_full_batch() {
    let full = tiny_model(DType::F64, 1);
    let accumulated = tiny_model(DType::F64, 1);
    let pairs = pairs();
    let base = TrainConfig {
        learning_rate: 1e-2,
        epochs: 1,
        warmup_ratio: 0.0,
        ..TrainConfig::default()
    };
    let full_logs = Trainer::new(
        &full,
        TrainConfig {
            batch_size: 3,
            gradient_accumulation_steps: 1,
            ..base.clone()
        },
    )
    .unwrap()
    .train(&full, &pairs)
    .unwrap();
    let accumulated_logs = Trainer::new(
        &accumulated,
        TrainConfig {
            batch_size: 1,
            gradient_accumulation_steps: 3,
            ..base
        },
    )
    .unwrap()
    .train(&accumulated, &pairs)
    .unwrap();

    assert_eq!(full_logs.len(), 1);
    assert_eq!(accumulated_logs.len(), 1);
    assert!((full_logs[0].loss - accumulated_logs[0].loss).abs() < 1e-12);
    for (a, b) in full.trainable_vars().iter().zip(accumulated.trainable_vars()) {
        let difference: f64 = flat_values(a)
            .iter()
            .zip(flat_values(&b))
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        assert!(difference < 1e-9, "parameters differ by {difference}");
    }
}

#[test]
fn cosine_schedule_warms_up_and_decays() {
    assert_eq!(cosine_learning_rate(1.0, 0, 2, 10), 0.0);
    assert_eq!(cosine_learning_rate(1.0, 1, 2, 10), 0.5);
    assert_eq!(cosine_learning_rate(1.0, 2, 2, 10), 1.0);
    assert!((cosine_learning_rate(1.0, 6, 2, 10) - 0.5).abs() < 1e-12);
    assert!(cosine_learning_rate(1.0, 10, 2, 10).abs() < 1e-12);
}

#[test]
fn linear_and_constant_schedules() {
    assert_eq!(Scheduler::Linear.learning_rate(1.0, 1, 2, 10), 0.5);
    assert_eq!(Scheduler::Linear.learning_rate(1.0, 2, 2, 10), 1.0);
    assert!((Scheduler::Linear.learning_rate(1.0, 6, 2, 10) - 0.5).abs() < 1e-12);
    assert_eq!(Scheduler::Constant.learning_rate(1.0, 1, 2, 10), 0.5);
    assert_eq!(Scheduler::Constant.learning_rate(1.0, 9, 2, 10), 1.0);
}

#[test]
fn gradient_clipping_scales_to_max_norm() {
    let a = Var::from_tensor(&Tensor::new(&[3.0f64, 0.0], &Device::Cpu).unwrap()).unwrap();
    let b = Var::from_tensor(&Tensor::new(&[0.0f64, 4.0], &Device::Cpu).unwrap()).unwrap();
    let loss = (a.as_tensor().sqr().unwrap().sum_all().unwrap() + b.as_tensor().sqr().unwrap().sum_all().unwrap())
        .unwrap()
        .affine(0.5, 0.0)
        .unwrap();
    let vars = [a.clone(), b.clone()];

    let mut unclipped = loss.backward().unwrap();
    assert_eq!(clip_gradient_norm(&mut unclipped, &vars, Some(10.0)).unwrap(), 5.0);
    let kept: Vec<f64> = unclipped.get(a.as_tensor()).unwrap().to_vec1().unwrap();
    assert_eq!(kept, vec![3.0, 0.0]);

    let mut clipped = loss.backward().unwrap();
    assert_eq!(clip_gradient_norm(&mut clipped, &vars, Some(1.0)).unwrap(), 5.0);
    let a_grad: Vec<f64> = clipped.get(a.as_tensor()).unwrap().to_vec1().unwrap();
    let b_grad: Vec<f64> = clipped.get(b.as_tensor()).unwrap().to_vec1().unwrap();
    let norm = (a_grad.iter().chain(&b_grad).map(|x| x * x).sum::<f64>()).sqrt();
    assert!((norm - 1.0).abs() < 1e-6, "clipped norm {norm}");
    assert!(
        (a_grad[0] / b_grad[1] - 0.75).abs() < 1e-12,
        "direction changed: {a_grad:?} {b_grad:?}"
    );
}

#[test]
fn validation_split_holds_out_a_tenth() {
    let many: Vec<TokenizedPair> = (0..40).map(|i| pairs()[i % 3].clone()).collect();
    let (train, validation) = split_validation(many, 0.1);
    assert_eq!((train.len(), validation.len()), (36, 4));

    let (train, validation) = split_validation(pairs(), 0.1);
    assert_eq!((train.len(), validation.len()), (2, 1));

    let (train, validation) = split_validation(pairs(), 0.0);
    assert_eq!((train.len(), validation.len()), (3, 0));

    let (train, validation) = split_validation(pairs()[..1].to_vec(), 0.5);
    assert_eq!((train.len(), validation.len()), (1, 0));
}

/// Four training pairs and one validation pair, trained for two epochs of
/// two optimizer steps each, with a checkpoint after every step.
fn checkpointed_config() -> TrainConfig {
    TrainConfig {
        learning_rate: 1e-2,
        epochs: 2,
        warmup_ratio: 0.0,
        batch_size: 1,
        gradient_accumulation_steps: 2,
        save_steps: 1,
        ..TrainConfig::default()
    }
}

fn checkpointed_pairs() -> (Vec<TokenizedPair>, Vec<TokenizedPair>) {
    let mut train = pairs();
    train.push(TokenizedPair {
        prompt: vec![1, 3, 2],
        chosen: vec![4, 4, 5],
        rejected: vec![19, 18],
    });
    let validation = vec![TokenizedPair {
        prompt: vec![1, 6, 7, 2],
        chosen: vec![3, 4],
        rejected: vec![8, 30],
    }];
    (train, validation)
}

fn fit_to_end(model: &mut LoraLlama, dir: &CheckpointDir, stop: &AtomicBool) -> TrainerState {
    let (train, validation) = checkpointed_pairs();
    let mut trainer = Trainer::resume(model, checkpointed_config(), dir, train.len(), validation.len()).unwrap();
    trainer
        .fit(model, &train, &validation, Some(dir), &ProgressBar::hidden(), stop)
        .unwrap()
}

fn adapter_values(model: &LoraLlama) -> Vec<f64> {
    model.trainable_vars().iter().flat_map(flat_values).collect()
}

/// Runs in f32, the dtype of real training, because adapter files store f32:
/// an f64 model would resume with rounded adapters.
#[test]
fn stopped_training_resumes_from_checkpoint() {
    let uninterrupted_dir = tempfile::tempdir().unwrap();
    let mut uninterrupted = tiny_model(DType::F32, 1);
    let never = AtomicBool::new(false);
    let expected = fit_to_end(
        &mut uninterrupted,
        &CheckpointDir::new(uninterrupted_dir.path(), None),
        &never,
    );
    assert!(expected.finished);
    assert_eq!(expected.global_step, 4);

    let dir = tempfile::tempdir().unwrap();
    let checkpoints = CheckpointDir::new(dir.path(), None);
    let mut first = tiny_model(DType::F32, 1);
    let stopped = fit_to_end(&mut first, &checkpoints, &AtomicBool::new(true));
    assert!(!stopped.finished);
    assert_eq!(stopped.global_step, 1);
    drop(first);

    let mut resumed = tiny_model(DType::F32, 1);
    let state = fit_to_end(&mut resumed, &checkpoints, &never);
    assert!(state.finished);
    assert_eq!(state.global_step, 4);
    let steps: Vec<usize> = state.log_history.iter().map(|log| log.step).collect();
    assert_eq!(steps, vec![1, 2, 3, 4]);
    for (resumed_log, expected_log) in state.log_history.iter().zip(&expected.log_history) {
        assert!(
            (resumed_log.loss - expected_log.loss).abs() < 1e-9,
            "step {}: loss {} after resuming, {} without a stop",
            resumed_log.step,
            resumed_log.loss,
            expected_log.loss
        );
    }
    let difference = adapter_values(&resumed)
        .iter()
        .zip(adapter_values(&uninterrupted))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(difference < 1e-9, "adapters differ by {difference}");
}

#[test]
fn finished_training_keeps_best_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = CheckpointDir::new(dir.path(), None);
    let mut model = tiny_model(DType::F64, 1);
    let state = fit_to_end(&mut model, &checkpoints, &AtomicBool::new(false));

    assert_eq!(state.validation_loss.len(), 2);
    let best = state.best_validation_loss.expect("validation pairs give a best loss");
    let lowest = state.evaluations.iter().map(|e| e.loss).fold(f64::INFINITY, f64::min);
    assert_eq!(best, lowest);
    assert!(state.best_epoch.is_some());

    let saved: TrainerState =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("trainer_state.json")).unwrap()).unwrap();
    assert_eq!(saved.best_validation_loss, Some(best));
    assert!(saved.finished);

    let mut reloaded = tiny_model(DType::F64, 1);
    load_adapter(&mut reloaded, dir.path()).unwrap();
    let (_, validation) = checkpointed_pairs();
    let reference = preference_logprobs(&reloaded, &pair_refs(&validation), AdapterMode::Off).unwrap();
    let cache = wow::align::checkpoint::ReferenceLogProbs {
        fingerprint: 0,
        chosen: reference.chosen.sum.to_vec1().unwrap(),
        rejected: reference.rejected.sum.to_vec1().unwrap(),
    };
    let (loss, _, _) = evaluate_loss(&reloaded, &checkpointed_config(), &validation, Some(&cache)).unwrap();
    assert!(
        (loss - best).abs() < 1e-9,
        "best adapter scores {loss}, recorded {best}"
    );
}

#[test]
fn resume_rejects_other_settings() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = CheckpointDir::new(dir.path(), None);
    let mut model = tiny_model(DType::F64, 1);
    fit_to_end(&mut model, &checkpoints, &AtomicBool::new(true));

    let other = TrainConfig {
        learning_rate: 1e-3,
        ..checkpointed_config()
    };
    let error = Trainer::resume(&mut model, other, &checkpoints, 4, 1)
        .err()
        .expect("other settings are rejected");
    assert!(error.to_string().contains("delete the folder"), "{error}");
}

#[test]
fn reference_losses_require_reference() {
    let model = tiny_model(DType::F32, 1);
    let pairs = pairs();
    let policy = preference_logprobs(&model, &pair_refs(&pairs), AdapterMode::On).unwrap();
    for loss in ALL_LOSSES {
        let result = loss.compute(&LossConfig::default(), &policy, None);
        assert_eq!(result.is_err(), loss.needs_reference(), "{loss:?}");
    }
}

#[test]
fn adapter_round_trip_keeps_logprobs() {
    let model = tiny_model(DType::F32, 1);
    randomize_b(&model, 3);
    let dir = tempfile::tempdir().unwrap();
    save_adapter(&model, dir.path(), Some("tiny".to_string())).unwrap();

    let mut loaded = tiny_model(DType::F32, 99);
    load_adapter(&mut loaded, dir.path()).unwrap();
    let pairs = pairs();
    let expected = preference_logprobs(&model, &pair_refs(&pairs), AdapterMode::On).unwrap();
    let actual = preference_logprobs(&loaded, &pair_refs(&pairs), AdapterMode::On).unwrap();
    let expected: Vec<f32> = expected.chosen.sum.to_vec1().unwrap();
    let actual: Vec<f32> = actual.chosen.sum.to_vec1().unwrap();
    assert_eq!(actual, expected);
}

#[test]
fn adapter_files_follow_peft_layout() {
    let model = tiny_model(DType::F32, 1);
    let dir = tempfile::tempdir().unwrap();
    save_adapter(&model, dir.path(), None).unwrap();

    let json = std::fs::read_to_string(dir.path().join(ADAPTER_CONFIG_FILE)).unwrap();
    let config: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["task_type"], "CAUSAL_LM");
    assert_eq!(config["bias"], "none");
    assert_eq!(config["r"], 4);
    assert_eq!(config["lora_alpha"], 8.0);
    assert_eq!(config["lora_dropout"], 0.0);
    assert_eq!(config["target_modules"].as_array().unwrap().len(), 7);
    let parsed: PeftConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed.to_lora(0).unwrap().target_modules, TargetModule::ALL.to_vec());

    let tensors = candle_core::safetensors::load(dir.path().join(ADAPTER_WEIGHTS_FILE), &Device::Cpu).unwrap();
    assert_eq!(tensors.len(), 2 * 7 * 2);
    let c = tiny_config();
    let shapes = [
        (TargetModule::QProj, c.num_heads * c.head_dim, c.hidden_size),
        (TargetModule::KProj, c.num_kv_heads * c.head_dim, c.hidden_size),
        (TargetModule::OProj, c.hidden_size, c.num_heads * c.head_dim),
        (TargetModule::DownProj, c.hidden_size, c.intermediate_size),
    ];
    for (module, out_features, in_features) in shapes {
        assert_eq!(
            tensors[&tensor_name(1, module, 'A')].dims(),
            &[4, in_features],
            "{module:?} A"
        );
        assert_eq!(
            tensors[&tensor_name(1, module, 'B')].dims(),
            &[out_features, 4],
            "{module:?} B"
        );
        assert_eq!(tensors[&tensor_name(1, module, 'B')].dtype(), DType::F32);
    }
    assert!(tensors.contains_key("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
    assert!(tensors.contains_key("base_model.model.model.layers.1.mlp.gate_proj.lora_B.weight"));
}

#[test]
fn rope_row_permutation_matches_llama_cpp() {
    // One head of dimension 4: Hugging Face rows (0, 1 | 2, 3) pair row i
    // with row i + 2, and llama.cpp stores them as (0, 2, 1, 3).
    let rows = Tensor::new(&[[0f32], [1.], [2.], [3.]], &Device::Cpu).unwrap();
    let interleaved = half_to_interleaved_rows(&rows, 1).unwrap();
    assert_eq!(
        interleaved.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        vec![0., 2., 1., 3.]
    );
    let back = interleaved_to_half_rows(&interleaved, 1).unwrap();
    assert_eq!(
        back.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        vec![0., 1., 2., 3.]
    );

    let wide = Tensor::arange(0f32, 48., &Device::Cpu)
        .unwrap()
        .reshape((16, 3))
        .unwrap();
    let round_trip = interleaved_to_half_rows(&half_to_interleaved_rows(&wide, 2).unwrap(), 2).unwrap();
    assert_eq!(round_trip.to_vec2::<f32>().unwrap(), wide.to_vec2::<f32>().unwrap());
}

#[test]
fn peft_adapter_transfers_to_half_rope_model() {
    // The same base model exists in both RoPE layouts. A PEFT adapter saved
    // from the GGUF layout must give the same log-probs in the other layout.
    let model = tiny_model(DType::F64, 1);
    randomize_b(&model, 4);
    let mut half = model.to_half_rope().unwrap();
    let pairs = pairs();
    let refs = pair_refs(&pairs);

    let base = preference_logprobs(&model, &refs, AdapterMode::Off)
        .unwrap()
        .chosen
        .sum
        .to_vec1::<f64>()
        .unwrap();
    let half_base = preference_logprobs(&half, &refs, AdapterMode::Off)
        .unwrap()
        .chosen
        .sum
        .to_vec1::<f64>()
        .unwrap();
    for (a, b) in base.iter().zip(&half_base) {
        assert!((a - b).abs() < 1e-9, "base log-probs differ: {base:?} vs {half_base:?}");
    }

    let dir = tempfile::tempdir().unwrap();
    save_adapter(&model, dir.path(), None).unwrap();
    load_adapter(&mut half, dir.path()).unwrap();
    let adapted = preference_logprobs(&model, &refs, AdapterMode::On)
        .unwrap()
        .chosen
        .sum
        .to_vec1::<f64>()
        .unwrap();
    let half_adapted = preference_logprobs(&half, &refs, AdapterMode::On)
        .unwrap()
        .chosen
        .sum
        .to_vec1::<f64>()
        .unwrap();
    assert!(
        (adapted[0] - base[0]).abs() > 1e-3,
        "the adapter does not change the log-probs"
    );
    for (a, b) in adapted.iter().zip(&half_adapted) {
        assert!(
            (a - b).abs() < 1e-5,
            "adapted log-probs differ: {adapted:?} vs {half_adapted:?}"
        );
    }
}

/// Loads the default GGUF model (fetched into the cache directory when
/// missing) for both the inference and the training forward pass.
fn real_models() -> (wow::model::LocalModel, LoraLlama) {
    let path = wow::model::default_model_path().expect("default model is available");
    let local = wow::model::LocalModel::load_on(&path, &Device::Cpu).expect("default model loads");
    let training =
        LoraLlama::from_gguf(&path, LoraConfig::default(), &Device::Cpu).expect("default model loads for training");
    (local, training)
}

#[test]
fn real_model_matches_inference_logprobs() {
    let (local, training) = real_models();
    let prompt = local
        .encode_prompt(&[wow::model::Message::new("user", "What is 6 times 7?")])
        .unwrap();
    let chosen = local.encode("6 times 7 is 42.").unwrap();
    let rejected = local.encode("6 times 7 is 48, I think.").unwrap();
    let expected: f64 = local
        .logprobs_from_ids(&prompt, &chosen)
        .unwrap()
        .iter()
        .map(|&x| f64::from(x))
        .sum();

    let pair = TokenizedPair {
        prompt,
        chosen,
        rejected,
    };
    let off = preference_logprobs(&training, &[&pair], AdapterMode::Off).unwrap();
    let on = preference_logprobs(&training, &[&pair], AdapterMode::On).unwrap();
    let off_sum = scalar(&off.chosen.sum.squeeze(0).unwrap());
    let on_sum = scalar(&on.chosen.sum.squeeze(0).unwrap());
    // Both run the dequantized weights in f32 for a whole sequence, so only
    // the order of float operations differs.
    assert!(
        (off_sum - expected).abs() < 1e-2,
        "training forward {off_sum}, inference {expected}"
    );
    assert_eq!(off_sum, on_sum, "fresh adapters (B = 0) must not change the log-probs");

    let config = TrainConfig {
        batch_size: 1,
        gradient_accumulation_steps: 1,
        epochs: 1,
        warmup_ratio: 0.0,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(&training, config).unwrap();
    let started = std::time::Instant::now();
    let logs = trainer.train(&training, &[pair]).unwrap();
    eprintln!(
        "one DPO step (reference pass, policy forward and backward, AdamW) on SmolLM2-135M: {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        (logs[0].loss - std::f64::consts::LN_2).abs() < 1e-5,
        "first DPO loss {}",
        logs[0].loss
    );
}

#[test]
fn merged_adapter_matches_training_forward() {
    let path = wow::model::default_model_path().expect("default model is available");
    let (mut local, training) = real_models();
    let mut rng = StdRng::seed_from_u64(11);
    for (_, _, adapter) in training.adapters() {
        let shape = adapter.b.as_tensor().dims().to_vec();
        let values: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|_| rng.random_range(-0.02..0.02))
            .collect();
        adapter
            .b
            .set(&Tensor::from_vec(values, shape, &Device::Cpu).unwrap())
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    wow::align::save_adapter(&training, dir.path(), None).unwrap();

    let prompt = local
        .encode_prompt(&[wow::model::Message::new("user", "What is 6 times 7?")])
        .unwrap();
    let response = local.encode("6 times 7 is 42.").unwrap();
    let base: f64 = local
        .logprobs_from_ids(&prompt, &response)
        .unwrap()
        .iter()
        .map(|&x| f64::from(x))
        .sum();
    wow::align::merge_adapter(&mut local, &path, dir.path()).unwrap();
    let merged: f64 = local
        .logprobs_from_ids(&prompt, &response)
        .unwrap()
        .iter()
        .map(|&x| f64::from(x))
        .sum();

    let sums = training
        .sequence_logprobs(&[(&prompt, &response)], AdapterMode::On)
        .unwrap();
    let expected = scalar(&sums.sum.squeeze(0).unwrap());
    assert!(
        (merged - expected).abs() < 1e-2,
        "merged {merged}, adapter forward {expected}"
    );
    assert!(
        (merged - base).abs() > 1e-2,
        "the adapter changed nothing: {merged} vs {base}"
    );
}
