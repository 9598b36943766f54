//! Host-side bindings generated from the `wow:plugin` WIT package.
//!
//! The three worlds share the `types` and `host` interfaces, so the elicitor
//! and scorer worlds reuse the modules generated for the task world.

pub mod task {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "task-plugin",
        additional_derives: [PartialEq],
    });
}

pub mod elicitor {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "elicitor-plugin",
        with: {
            "wow:plugin/types": super::task::wow::plugin::types,
            "wow:plugin/host": super::task::wow::plugin::host,
        },
    });
}

pub mod scorer {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "scorer-plugin",
        with: {
            "wow:plugin/types": super::task::wow::plugin::types,
            "wow:plugin/host": super::task::wow::plugin::host,
        },
    });
}

pub use task::wow::plugin::host;
pub use task::wow::plugin::types;
