//! Fuzzes every task plugin's `load` through the host on stable Rust: a
//! bounded loop of byte strings mutated from the real NLGraph files and
//! from noise. No input may trap a task, exhaust its limits, make it return
//! output the host rejects, or crash the host.
//!
//! The loop runs for `WOW_FUZZ_SECS` seconds (default 10); `.ci/run` runs it
//! again for 60. `fuzz/` contains the same property as a cargo-fuzz target
//! for coverage-guided fuzzing on nightly.

use std::time::{Duration, Instant};

use wow::plugin::{Limits, PluginKind, TaskPlugin};
use wow_sdk::SplitMix64;
use wow_tests::{data_dir, registry_with_test_plugins};

/// Tasks whose `load` must survive every input. Test plugins written to
/// misbehave are left out.
const TASKS: [&str; 2] = ["nlgraph-shortest-path", "nlgraph-max-flow"];

/// Largest input, in bytes: a prefix of a benchmark file keeps each call fast.
const MAX_INPUT_BYTES: usize = 16 << 10;

fn fuzz_seconds() -> f64 {
    std::env::var("WOW_FUZZ_SECS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(10.0)
}

/// Returns one input: a slice of a seed file, mutated a few times.
fn mutate(seeds: &[Vec<u8>], rng: &mut SplitMix64) -> Vec<u8> {
    let seed = &seeds[rng.next_u64() as usize % seeds.len()];
    let start = rng.next_u64() as usize % seed.len().max(1);
    let len = rng.next_u64() as usize % MAX_INPUT_BYTES;
    let mut input = if rng.next_u64() % 4 == 0 {
        seed[..seed.len().min(MAX_INPUT_BYTES)].to_vec()
    } else {
        seed[start..seed.len().min(start + len)].to_vec()
    };

    for _ in 0..rng.next_u64() % 8 {
        let at = rng.next_u64() as usize % (input.len() + 1);
        match rng.next_u64() % 5 {
            0 if at < input.len() => input[at] ^= 1 << (rng.next_u64() % 8),
            1 => input.truncate(at),
            2 => input.insert(at, rng.next_u64() as u8),
            3 => input
                .splice(at..at, b"{\"0\": {\"question\": \"".iter().copied())
                .for_each(drop),
            _ => {
                let noise: Vec<u8> = (0..rng.next_u64() % 64).map(|_| rng.next_u64() as u8).collect();
                input.splice(at..at, noise).for_each(drop);
            }
        }
    }
    input
}

fn check_load(task: &TaskPlugin, input: &[u8]) {
    if let Err(error) = task.load(input, "fuzz input") {
        let fault = error.failure().is_none_or(|kind| kind.is_fault());
        assert!(
            !fault,
            "{} faulted on a {}-byte input {:?}: {error}",
            task.name(),
            input.len(),
            String::from_utf8_lossy(&input[..input.len().min(200)])
        );
    }
}

#[test]
fn task_load_survives_mutated_input() {
    let registry = registry_with_test_plugins(Limits::default());
    let tasks: Vec<TaskPlugin> = TASKS.iter().map(|name| registry.task(name).unwrap()).collect();
    assert!(registry.list().filter(|(m, _)| m.kind == PluginKind::Task).count() >= TASKS.len());
    let seeds = vec![
        std::fs::read(data_dir().join("nlgraph/shortest_path/train.json")).unwrap(),
        std::fs::read(data_dir().join("nlgraph/flow/train.json")).unwrap(),
        Vec::new(),
    ];

    let budget = Duration::from_secs_f64(fuzz_seconds());
    let started = Instant::now();
    let mut rng = SplitMix64::new(0x5eed);
    let mut inputs = 0;
    while started.elapsed() < budget {
        let input = mutate(&seeds, &mut rng);
        for task in &tasks {
            check_load(task, &input);
        }
        inputs += 1;
    }
    eprintln!(
        "{inputs} inputs fed to {} tasks in {:.1} s",
        tasks.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(inputs > 0, "no input was tried");
}
