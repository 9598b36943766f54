//! Feeds arbitrary bytes to every built-in task plugin's `load` through the
//! host. A trap, an exhausted limit or output the host rejects is a finding;
//! an error the task returns for a malformed dataset is not.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use wow::plugin::{Limits, PluginKind, PluginRegistry, Sandbox, TaskPlugin};

static TASKS: LazyLock<Vec<TaskPlugin>> = LazyLock::new(|| {
    let registry = PluginRegistry::new(Sandbox::new(Limits::default()).expect("sandbox")).expect("built-in plugins");
    let names: Vec<String> = registry
        .list()
        .filter(|(manifest, _)| manifest.kind == PluginKind::Task)
        .map(|(manifest, _)| manifest.name.clone())
        .collect();
    names
        .iter()
        .map(|name| registry.task(name).expect("task loads"))
        .collect()
});

fuzz_target!(|data: &[u8]| {
    for task in TASKS.iter() {
        if let Err(error) = task.load(data, "fuzz input") {
            let fault = error.failure().is_none_or(|kind| kind.is_fault());
            assert!(!fault, "{} faulted: {error}", task.name());
        }
    }
});
